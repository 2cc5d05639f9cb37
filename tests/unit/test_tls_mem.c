/*
 * test_tls_mem - tls.c over memory: certificate loading, SNI choice, key
 * type choice, version floor, renegotiation refusal, client certificates,
 * application data, the default ciphers and old TLS versions, and the "-t"
 * report.
 *
 * Keys and certificates are generated at run time in a fresh temporary
 * directory (removed at the end); none is ever checked in.  The
 * configuration is built by hand so that the test depends on tls.c and
 * certname.c only.  Every handshake is pumped by a bounded loop.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "config.h"
#include "tls.h"

static int	npass, nfail;

#define CHECK(cond, ...) do {						\
	if (cond)							\
		npass++;						\
	else {								\
		nfail++;						\
		fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__,	\
		    #cond);						\
		fprintf(stderr, __VA_ARGS__);				\
		fputc('\n', stderr);					\
	}								\
} while (0)

static char	tmpdir[64];
static struct tls_set *tset;	/* the set of the test at hand */

static char *
tpath(const char *name, const char *ext)
{
	char	*p;

	if (asprintf(&p, "%s/%s.%s", tmpdir, name, ext) == -1)
		abort();
	return p;
}

enum { K_EC, K_RSA };

/*
 * Write tmpdir/NAME.pem and tmpdir/NAME.key: a self-signed certificate
 * valid from nb to na days from now, with subject CN cn and, unless san is
 * NULL, a subjectAltName extension ("DNS:a,DNS:b").
 */
static void
mkcert(const char *name, int kt, const char *cn, const char *san, long nb,
    long na)
{
	EVP_PKEY	*pk;
	X509		*x;
	X509_NAME	*xn;
	X509_EXTENSION	*ext;
	X509V3_CTX	 v3;
	FILE		*fp;
	char		*p;
	static long	 serial = 1;

	pk = kt == K_RSA ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
	if (pk == NULL || (x = X509_new()) == NULL)
		abort();
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	X509_gmtime_adj(X509_getm_notBefore(x), nb * 86400);
	X509_gmtime_adj(X509_getm_notAfter(x), na * 86400);
	X509_set_pubkey(x, pk);
	xn = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(xn, "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, xn);
	if (san != NULL) {
		X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
		ext = X509V3_EXT_nconf_nid(NULL, &v3, NID_subject_alt_name, san);
		if (ext == NULL || !X509_add_ext(x, ext, -1))
			abort();
		X509_EXTENSION_free(ext);
	}
	if (!X509_sign(x, pk, EVP_sha256()))
		abort();

	p = tpath(name, "pem");
	if ((fp = fopen(p, "w")) == NULL || !PEM_write_X509(fp, x))
		abort();
	fclose(fp);
	free(p);
	p = tpath(name, "key");
	if ((fp = fopen(p, "w")) == NULL ||
	    !PEM_write_PrivateKey(fp, pk, NULL, NULL, 0, NULL, NULL))
		abort();
	fclose(fp);
	free(p);
	X509_free(x);
	EVP_PKEY_free(pk);
}

static void
rmtree(void)
{
	DIR		*d;
	struct dirent	*de;
	char		 p[512];

	if ((d = opendir(tmpdir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", tmpdir, de->d_name);
		unlink(p);
	}
	closedir(d);
	rmdir(tmpdir);
}

/* A cfg_cert for tmpdir/cert.pem + tmpdir/key.key with optional names. */
static void
setcert(struct cfg_cert *cc, const char *cert, const char *key,
    const char *n1, const char *n2)
{
	memset(cc, 0, sizeof(*cc));
	cc->cert = tpath(cert, "pem");
	cc->key = tpath(key, "key");
	if (n1 != NULL) {
		cc->names = calloc(2, sizeof(*cc->names));
		cc->names[cc->n_names++] = strdup(n1);
		if (n2 != NULL)
			cc->names[cc->n_names++] = strdup(n2);
	}
}

static void
setlistener(struct cfg_listener *l, const char *name, size_t ncerts)
{
	memset(l, 0, sizeof(*l));
	l->name = strdup(name);
	l->line = 10;
	l->tls.certs = ncerts ? calloc(ncerts, sizeof(*l->tls.certs)) : NULL;
	l->tls.n_certs = ncerts;
	l->tls.min_version = 0x0303;
	l->tls.ciphers = strdup("");
	l->tls.ciphersuites = strdup("");
	l->tls.client_ca = strdup("");
}

static struct config *
newcfg(size_t nl)
{
	struct config	*cfg;

	cfg = calloc(1, sizeof(*cfg));
	cfg->path = strdup("test.conf");
	cfg->listeners = calloc(nl, sizeof(*cfg->listeners));
	cfg->n_listeners = nl;
	return cfg;
}

static void
freecfg(struct config *cfg)
{
	struct cfg_listener	*l;
	size_t			 li, ci, i;

	tls_set_free(tset);
	tset = NULL;
	for (li = 0; li < cfg->n_listeners; li++) {
		l = &cfg->listeners[li];
		for (ci = 0; ci < l->tls.n_certs; ci++) {
			free(l->tls.certs[ci].cert);
			free(l->tls.certs[ci].key);
			for (i = 0; i < l->tls.certs[ci].n_names; i++)
				free(l->tls.certs[ci].names[i]);
			free(l->tls.certs[ci].names);
		}
		free(l->tls.certs);
		free(l->name);
		free(l->tls.ciphers);
		free(l->tls.ciphersuites);
		free(l->tls.client_ca);
	}
	free(cfg->listeners);
	free(cfg->path);
	free(cfg);
}

static int
haveline(const struct strlist *l, const char *a, const char *b)
{
	size_t	i;

	for (i = 0; i < l->n; i++)
		if (strstr(l->v[i], a) != NULL &&
		    (b == NULL || strstr(l->v[i], b) != NULL))
			return 1;
	return 0;
}

static void
dumplist(const char *what, const struct strlist *l)
{
	size_t	i;

	for (i = 0; i < l->n; i++)
		fprintf(stderr, "  %s: %s\n", what, l->v[i]);
}

/*
 * One client/server pair over memory.
 */
struct pair {
	SSL_CTX		*cctx;
	SSL		*cli;
	BIO		*crd;		/* client's input, owned by cli */
	BIO		*cwr;		/* client's output, owned by cli */
	struct tls_conn	*srv;
	int		 cdone, cfail, sdone, sfail;
};

struct copts {
	const char	*sni;
	const char	*sigalgs;
	int		 maxver;	/* 0 = any */
	int		 minver;
	const char	*ccert;		/* client certificate base name */
	const char	*groups;	/* client key exchange groups */
	SSL_SESSION	*sess;		/* to resume */
	const char	*ciphers;	/* client's TLS <= 1.2 list, its order */
	const char	*suites;	/* client's TLS 1.3 suites, its order */
};

static void
shuttle(struct pair *p)
{
	unsigned char	buf[4096];
	size_t		n;
	int		r;

	while ((r = BIO_read(p->cwr, buf, sizeof(buf))) > 0)
		if (tls_feed(p->srv, buf, (size_t)r) != 0)
			abort();
	while ((n = tls_take_out(p->srv, buf, sizeof(buf))) > 0)
		if (BIO_write(p->crd, buf, (int)n) != (int)n)
			abort();
}

static int
pair_open(struct pair *p, const struct tls_set *set, size_t li,
    const struct copts *o)
{
	char	*cp, *kp;
	int	 i, r;

	memset(p, 0, sizeof(*p));
	if ((p->cctx = SSL_CTX_new(TLS_client_method())) == NULL)
		abort();
	SSL_CTX_set_verify(p->cctx, SSL_VERIFY_NONE, NULL);
	if (o->maxver != 0) {
		SSL_CTX_set_max_proto_version(p->cctx, o->maxver);
		if (o->maxver < TLS1_2_VERSION)
			SSL_CTX_set_cipher_list(p->cctx, "DEFAULT:@SECLEVEL=0");
	}
	if (o->minver != 0)
		SSL_CTX_set_min_proto_version(p->cctx, o->minver);
	if (o->ccert != NULL) {
		cp = tpath(o->ccert, "pem");
		kp = tpath(o->ccert, "key");
		if (!SSL_CTX_use_certificate_file(p->cctx, cp,
		    SSL_FILETYPE_PEM) ||
		    !SSL_CTX_use_PrivateKey_file(p->cctx, kp, SSL_FILETYPE_PEM))
			abort();
		free(cp);
		free(kp);
	}
	if ((p->cli = SSL_new(p->cctx)) == NULL)
		abort();
	if (o->sigalgs != NULL && !SSL_set1_sigalgs_list(p->cli, o->sigalgs))
		abort();
	if (o->sni != NULL && !SSL_set_tlsext_host_name(p->cli, o->sni))
		abort();
	if (o->groups != NULL && !SSL_set1_groups_list(p->cli, o->groups))
		abort();
	if (o->sess != NULL && !SSL_set_session(p->cli, o->sess))
		abort();
	if (o->ciphers != NULL && !SSL_set_cipher_list(p->cli, o->ciphers))
		abort();
	if (o->suites != NULL && !SSL_set_ciphersuites(p->cli, o->suites))
		abort();
	p->crd = BIO_new(BIO_s_mem());
	p->cwr = BIO_new(BIO_s_mem());
	BIO_set_mem_eof_return(p->crd, -1);
	BIO_set_mem_eof_return(p->cwr, -1);
	SSL_set_bio(p->cli, p->crd, p->cwr);
	SSL_set_connect_state(p->cli);
	if ((p->srv = tls_conn_new(set, li)) == NULL)
		return -1;

	for (i = 0; i < 50; i++) {
		if (!p->cdone && !p->cfail) {
			ERR_clear_error();
			if ((r = SSL_do_handshake(p->cli)) == 1)
				p->cdone = 1;
			else if (SSL_get_error(p->cli, r) != SSL_ERROR_WANT_READ)
				p->cfail = 1;
		}
		shuttle(p);
		if (!p->sdone && !p->sfail) {
			switch (tls_handshake(p->srv)) {
			case TLS_OK:
				p->sdone = 1;
				break;
			case TLS_AGAIN:
				break;
			default:
				p->sfail = 1;
				break;
			}
		}
		shuttle(p);
		if ((p->cdone || p->cfail) && (p->sdone || p->sfail) &&
		    BIO_ctrl_pending(p->crd) == 0 &&
		    tls_pending_in(p->srv) == 0)
			break;
	}
	ERR_clear_error();
	return p->cdone && p->sdone ? 0 : -1;
}

static void
pair_close(struct pair *p)
{
	tls_conn_free(p->srv);
	SSL_free(p->cli);
	SSL_CTX_free(p->cctx);
	ERR_clear_error();
}

/* The name the client saw: first SAN dNSName of the peer certificate. */
static int
peer_has(struct pair *p, const char *host)
{
	X509	*x;
	int	 r;

	if ((x = SSL_get1_peer_certificate(p->cli)) == NULL)
		return 0;
	r = X509_check_host(x, host, 0, X509_CHECK_FLAG_NO_WILDCARDS, NULL);
	X509_free(x);
	return r == 1;
}

static int
peer_keytype(struct pair *p)
{
	X509	*x;
	int	 t;

	if ((x = SSL_get1_peer_certificate(p->cli)) == NULL)
		return -1;
	t = EVP_PKEY_get_base_id(X509_get0_pubkey(x));
	X509_free(x);
	return t;
}

static const char *
nz(const char *s)
{
	return s != NULL ? s : "(null)";
}

/* Handshake with SNI sni and check the certificate served. */
static void
check_sni(const struct tls_set *set, const char *sni, const char *expect_san,
    const char *expect_name, const char *expect_sni)
{
	struct pair	p;
	struct copts	o = { .sni = sni };
	struct tls_info	ti;
	int		ok;

	ok = pair_open(&p, set, 0, &o) == 0;
	CHECK(ok, "handshake with SNI %s: %s", nz(sni),
	    p.srv ? tls_conn_error(p.srv) : "no conn");
	if (ok) {
		CHECK(peer_has(&p, expect_san), "SNI %s: peer cert lacks %s",
		    nz(sni), expect_san);
		tls_get_info(p.srv, &ti);
		CHECK(ti.cert_name != NULL &&
		    strcmp(ti.cert_name, expect_name) == 0,
		    "SNI %s: cert_name %s, want %s", nz(sni),
		    nz(ti.cert_name), expect_name);
		if (expect_sni == NULL)
			CHECK(ti.sni == NULL, "SNI %s: info sni %s, want none",
			    nz(sni), ti.sni);
		else
			CHECK(ti.sni != NULL && strcmp(ti.sni, expect_sni) == 0,
			    "SNI %s: info sni %s, want %s", nz(sni),
			    nz(ti.sni), expect_sni);
	}
	pair_close(&p);
}

static void
check_dual(const struct tls_set *set, const char *sigalgs, int maxver,
    int want)
{
	struct pair	p;
	struct copts	o = { .sni = "dual.example.org", .sigalgs = sigalgs,
			    .maxver = maxver };
	int		ok, kt;

	ok = pair_open(&p, set, 0, &o) == 0;
	CHECK(ok, "dual %s: %s", sigalgs, p.srv ? tls_conn_error(p.srv) : "");
	if (ok) {
		kt = peer_keytype(&p);
		CHECK(kt == want, "dual %s (max %x): key type %d, want %d",
		    sigalgs, maxver, kt, want);
		CHECK(peer_has(&p, "dual.example.org"), "dual: wrong cert");
	}
	pair_close(&p);
}

/* Read exactly len bytes of plaintext from the server side. */
static int
srv_read_all(struct pair *p, unsigned char *buf, size_t len)
{
	enum tls_status	st;
	size_t		got = 0, n;
	int		i;

	for (i = 0; i < 1000 && got < len; i++) {
		n = tls_read(p->srv, buf + got, len - got, &st);
		shuttle(p);
		if (n == 0 && st != TLS_AGAIN)
			return -1;
		got += n;
		if (n == 0)
			break;
	}
	return got == len ? 0 : -1;
}

static void
test_data(const struct tls_set *set, int maxver)
{
	struct pair	 p;
	struct copts	 o = { .sni = "mx1.example.org", .maxver = maxver };
	unsigned char	*big, *back;
	size_t		 bigsz = 100000, got, n, i;
	enum tls_status	 st;
	struct tls_info	 ti;
	int		 ok, r;

	big = malloc(bigsz);
	back = malloc(bigsz);
	for (i = 0; i < bigsz; i++)
		big[i] = (unsigned char)(i * 7 + 3);

	ok = pair_open(&p, set, 0, &o) == 0;
	CHECK(ok, "data handshake (max %x)", maxver);
	if (!ok)
		goto out;
	tls_get_info(p.srv, &ti);
	CHECK(ti.version != NULL && ti.version_num ==
	    (maxver ? maxver : TLS1_3_VERSION), "version %s %x", nz(ti.version),
	    ti.version_num);
	CHECK(ti.cipher != NULL && ti.cipher_bits >= 128, "cipher %s %d",
	    nz(ti.cipher), ti.cipher_bits);
	CHECK(!ti.client_verified && ti.client_subject[0] == '\0',
	    "no client cert expected");

	/* Nothing yet: AGAIN. */
	n = tls_read(p.srv, back, 10, &st);
	CHECK(n == 0 && st == TLS_AGAIN, "empty read: %zu %d", n, st);
	shuttle(&p);

	/* client -> server */
	CHECK(SSL_write(p.cli, big, (int)bigsz) == (int)bigsz, "client write");
	shuttle(&p);
	CHECK(tls_pending_in(p.srv) > bigsz, "pending in %zu",
	    tls_pending_in(p.srv));
	memset(back, 0, bigsz);
	CHECK(srv_read_all(&p, back, bigsz) == 0 &&
	    memcmp(big, back, bigsz) == 0, "client->server data");

	/* server -> client */
	CHECK(tls_write(p.srv, big, bigsz) == 0, "server write");
	CHECK(tls_pending_out(p.srv) > bigsz, "pending out");
	shuttle(&p);
	memset(back, 0, bigsz);
	for (got = 0, i = 0; i < 1000 && got < bigsz; i++) {
		ERR_clear_error();
		r = SSL_read(p.cli, back + got, (int)(bigsz - got));
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	CHECK(got == bigsz && memcmp(big, back, bigsz) == 0,
	    "server->client data (%zu)", got);
	shuttle(&p);

	/* close_notify from the client: TLS_CLOSED. */
	SSL_shutdown(p.cli);
	shuttle(&p);
	n = tls_read(p.srv, back, 10, &st);
	CHECK(n == 0 && st == TLS_CLOSED, "close_notify: %zu %d", n, st);
	tls_shutdown(p.srv);
	CHECK(tls_pending_out(p.srv) > 0, "our close_notify queued");
 out:
	pair_close(&p);
	free(big);
	free(back);
}

/* The ClientHello fed one byte at a time: no output until it is whole. */
static void
test_trickle(const struct tls_set *set)
{
	struct tls_conn	*srv;
	SSL_CTX		*cctx;
	SSL		*cli;
	BIO		*crd, *cwr;
	unsigned char	 hello[4096], buf[8192];
	int		 len, i, early = 0, r, cdone = 0;
	enum tls_status	 st = TLS_AGAIN;
	size_t		 n;

	cctx = SSL_CTX_new(TLS_client_method());
	cli = SSL_new(cctx);
	crd = BIO_new(BIO_s_mem());
	cwr = BIO_new(BIO_s_mem());
	BIO_set_mem_eof_return(crd, -1);
	SSL_set_bio(cli, crd, cwr);
	SSL_set_connect_state(cli);
	SSL_set_tlsext_host_name(cli, "a.wild.example.org");
	srv = tls_conn_new(set, 0);
	(void)SSL_do_handshake(cli);
	len = BIO_read(cwr, hello, sizeof(hello));
	CHECK(len > 100, "client hello of %d bytes", len);
	for (i = 0; i < len; i++) {
		tls_feed(srv, hello + i, 1);
		st = tls_handshake(srv);
		if (i < len - 1 && (st != TLS_AGAIN || tls_pending_out(srv)))
			early++;
	}
	CHECK(early == 0, "no server output before the whole hello");
	CHECK(st == TLS_AGAIN && tls_pending_out(srv) > 0,
	    "server answered the hello");
	for (i = 0; i < 20 && !(cdone && st == TLS_OK); i++) {
		while ((n = tls_take_out(srv, buf, sizeof(buf))) > 0)
			BIO_write(crd, buf, (int)n);
		ERR_clear_error();
		if ((r = SSL_do_handshake(cli)) == 1)
			cdone = 1;
		while ((r = BIO_read(cwr, buf, sizeof(buf))) > 0)
			tls_feed(srv, buf, (size_t)r);
		if (st != TLS_OK)
			st = tls_handshake(srv);
	}
	CHECK(cdone && st == TLS_OK, "trickled handshake completes: %s",
	    tls_conn_error(srv));
	tls_conn_free(srv);
	SSL_free(cli);
	SSL_CTX_free(cctx);
	ERR_clear_error();
}

/* A HelloRetryRequest runs the client-hello callback twice. */
static void
test_hrr(const struct tls_set *set)
{
	struct pair	p;
	struct copts	o = { .sni = "mx2.example.org",
			    .groups = "ffdhe2048:X25519" };
	struct tls_info	ti;
	int		ok;

	ok = pair_open(&p, set, 0, &o) == 0;
	CHECK(ok, "HRR handshake: %s", p.srv ? tls_conn_error(p.srv) : "");
	if (ok) {
		CHECK(peer_has(&p, "mx2.example.org"), "HRR: mx2 cert");
		tls_get_info(p.srv, &ti);
		CHECK(ti.cert_name != NULL &&
		    strcmp(ti.cert_name, "mx2.example.org") == 0,
		    "HRR: cert_name %s", nz(ti.cert_name));
	}
	pair_close(&p);
}

/* A session made on a switched context resumes (tickets are kept by the
 * listener's default context, the session id context is per listener).
 * The TLS 1.3 ticket goes out with the first reply, not the handshake. */
static void
test_resume(const struct tls_set *set, int maxver)
{
	struct pair	 p;
	struct copts	 o = { .sni = "mx2.example.org", .maxver = maxver };
	SSL_SESSION	*sess = NULL;
	unsigned char	 buf[16];
	int		 ok;

	ok = pair_open(&p, set, 0, &o) == 0;
	CHECK(ok, "resume: first handshake");
	if (ok) {
		/* The TLS 1.3 ticket leaves with the server's first reply,
		 * not as a write of its own right after the handshake. */
		if (maxver != TLS1_2_VERSION) {
			ERR_clear_error();
			(void)SSL_read(p.cli, buf, sizeof(buf));
			CHECK(!SSL_SESSION_is_resumable(SSL_get_session(p.cli)),
			    "resume: no ticket before the first reply");
		}
		CHECK(tls_write(p.srv, "250 ok\r\n", 8) == 0,
		    "resume: first reply");
		shuttle(&p);
		ERR_clear_error();
		(void)SSL_read(p.cli, buf, sizeof(buf));	/* tickets */
		sess = SSL_get1_session(p.cli);
		/* Freeing an SSL that did not shut down spoils its session. */
		(void)SSL_shutdown(p.cli);
	}
	pair_close(&p);
	CHECK(sess != NULL && SSL_SESSION_is_resumable(sess),
	    "resume: got a resumable session (max %x)", maxver);
	if (sess == NULL)
		return;
	o.sess = sess;
	ok = pair_open(&p, set, 0, &o) == 0;
	CHECK(ok && SSL_session_reused(p.cli), "resume: session reused "
	    "(max %x)", maxver);
	CHECK(ok && peer_has(&p, "mx2.example.org"), "resume: mx2 cert");
	pair_close(&p);
	SSL_SESSION_free(sess);
}

static void
test_reneg(const struct tls_set *set)
{
	struct pair	p;
	struct copts	o = { .sni = "mx1.example.org",
			    .maxver = TLS1_2_VERSION };
	unsigned char	buf[16];
	enum tls_status	st;
	size_t		n;
	int		ok, r, i, cok = 0, sst = TLS_AGAIN;

	ok = pair_open(&p, set, 0, &o) == 0;
	CHECK(ok, "reneg: handshake");
	if (!ok)
		goto out;
	CHECK(SSL_renegotiate(p.cli) == 1, "client may ask to renegotiate");
	for (i = 0; i < 10; i++) {
		ERR_clear_error();
		r = SSL_do_handshake(p.cli);
		if (r == 1)
			cok = 1;
		shuttle(&p);
		n = tls_read(p.srv, buf, sizeof(buf), &st);
		if (n == 0 && st != TLS_AGAIN) {
			sst = st;
			shuttle(&p);
			break;
		}
		shuttle(&p);
	}
	ERR_clear_error();
	r = SSL_do_handshake(p.cli);
	CHECK(!cok && r != 1, "client renegotiation must not complete");
	CHECK(sst == TLS_ERROR, "server ends the session: %d", sst);
	CHECK(strcmp(tls_conn_error(p.srv), "renegotiation refused") == 0,
	    "reneg error: %s", tls_conn_error(p.srv));
 out:
	pair_close(&p);
}

static void
test_client_cert(const struct tls_set *set)
{
	struct pair	p;
	struct copts	o = { .sni = "mx1.example.org", .ccert = "client" };
	struct copts	o2 = { .sni = "mx1.example.org", .ccert = "mx2" };
	struct copts	o3 = { .sni = "mx1.example.org" };
	struct tls_info	ti;
	int		ok;

	ok = pair_open(&p, set, 1, &o) == 0;
	CHECK(ok, "client cert handshake: %s",
	    p.srv ? tls_conn_error(p.srv) : "");
	if (ok) {
		tls_get_info(p.srv, &ti);
		CHECK(ti.client_verified, "client cert verified");
		CHECK(strcmp(ti.client_subject, "CN=client.example.org") == 0,
		    "subject %s", ti.client_subject);
	}
	pair_close(&p);

	ok = pair_open(&p, set, 1, &o2) == 0;
	CHECK(ok, "untrusted client cert still accepted (optional)");
	if (ok) {
		tls_get_info(p.srv, &ti);
		CHECK(!ti.client_verified, "untrusted cert not verified");
		CHECK(strcmp(ti.client_subject, "CN=mx2.example.org") == 0,
		    "subject %s", ti.client_subject);
	}
	pair_close(&p);

	ok = pair_open(&p, set, 1, &o3) == 0;
	CHECK(ok, "no client cert accepted (optional)");
	if (ok) {
		tls_get_info(p.srv, &ti);
		CHECK(!ti.client_verified && ti.client_subject[0] == '\0',
		    "no cert: not verified");
	}
	pair_close(&p);
}

static void
test_good(void)
{
	struct config	*cfg;
	struct cfg_listener *l;
	struct strlist	 errs = { 0 }, warns = { 0 };
	struct pair	 p;
	struct copts	 o11 = { .sni = "mx1.example.org",
			    .maxver = TLS1_1_VERSION, .minver = TLS1_VERSION };
	char		*exp;
	int		 r;

	cfg = newcfg(3);
	l = &cfg->listeners[0];
	setlistener(l, "mx", 7);
	setcert(&l->tls.certs[0], "mx1", "mx1", NULL, NULL);
	setcert(&l->tls.certs[1], "mx2", "mx2", NULL, NULL);
	setcert(&l->tls.certs[2], "wild", "wild", NULL, NULL);
	setcert(&l->tls.certs[3], "dualrsa", "dualrsa", NULL, NULL);
	setcert(&l->tls.certs[4], "dualec", "dualec", NULL, NULL);
	setcert(&l->tls.certs[5], "cn", "cn", NULL, NULL);
	setcert(&l->tls.certs[6], "expired", "expired", "Old.Example.ORG.",
	    NULL);
	l = &cfg->listeners[1];
	setlistener(l, "auth", 1);
	setcert(&l->tls.certs[0], "mx1", "mx1", NULL, NULL);
	free(l->tls.client_ca);
	l->tls.client_ca = tpath("client", "pem");
	l->tls.verify_client = VERIFY_OPTIONAL;
	setlistener(&cfg->listeners[2], "plain", 0);

	tset = tls_set_build(cfg, &errs, &warns);
	r = tset != NULL ? 0 : -1;
	dumplist("err", &errs);
	CHECK(r == 0 && errs.n == 0 && tset != NULL, "build good set");
	exp = tpath("expired", "pem");
	CHECK(haveline(&warns, exp, "expired"), "expired cert warned");
	free(exp);
	if (r != 0) {
		freecfg(cfg);
		strlist_free(&errs);
		strlist_free(&warns);
		return;
	}
	CHECK(tls_listener_has_cert(tset, 0), "listener 0 has certs");
	CHECK(!tls_listener_has_cert(tset, 2), "listener 2 has none");
	CHECK(!tls_listener_has_cert(tset, 9), "no listener 9");
	CHECK(tls_conn_new(tset, 2) == NULL, "no conn without certs");

	check_sni(tset, "mx2.example.org", "mx2.example.org",
	    "mx2.example.org", "mx2.example.org");
	check_sni(tset, "mx1.example.org", "mx1.example.org",
	    "mx1.example.org", "mx1.example.org");
	check_sni(tset, NULL, "mx1.example.org", "mx1.example.org", NULL);
	check_sni(tset, "unknown.example.org", "mx1.example.org",
	    "mx1.example.org", "unknown.example.org");
	check_sni(tset, "a.wild.example.org", "*.wild.example.org",
	    "*.wild.example.org", "a.wild.example.org");
	check_sni(tset, "a.b.wild.example.org", "mx1.example.org",
	    "mx1.example.org", "a.b.wild.example.org");
	check_sni(tset, "wild.example.org", "mx1.example.org",
	    "mx1.example.org", "wild.example.org");
	check_sni(tset, "MX2.Example.ORG.", "mx2.example.org",
	    "mx2.example.org", "mx2.example.org");
	check_sni(tset, "cn.example.org", "cn.example.org",
	    "cn.example.org", "cn.example.org");
	/* Configured names replace the certificate's own. */
	check_sni(tset, "old.example.org", "expired.example.org",
	    "old.example.org", "old.example.org");
	check_sni(tset, "expired.example.org", "mx1.example.org",
	    "mx1.example.org", "expired.example.org");
	/* Not a host name: treated as no SNI. */
	check_sni(tset, "bad name!", "mx1.example.org",
	    "mx1.example.org", NULL);

	check_dual(tset, "RSA-PSS+SHA256:RSA+SHA256", 0, EVP_PKEY_RSA);
	check_dual(tset, "ECDSA+SHA256", 0, EVP_PKEY_EC);
	check_dual(tset, "RSA+SHA256", TLS1_2_VERSION, EVP_PKEY_RSA);
	check_dual(tset, "ECDSA+SHA256:RSA+SHA256", TLS1_2_VERSION,
	    EVP_PKEY_EC);

	/* TLS 1.1 client against min_version TLSv1.2. */
	r = pair_open(&p, tset, 0, &o11);
	CHECK(r != 0 && p.sfail, "TLS 1.1 refused");
	CHECK(p.srv != NULL && strstr(tls_conn_error(p.srv),
	    "unsupported protocol") != NULL, "reason: %s",
	    p.srv ? tls_conn_error(p.srv) : "");
	CHECK(p.srv != NULL && strncmp(tls_conn_error(p.srv), "handshake: ",
	    11) == 0, "reason prefix: %s", p.srv ? tls_conn_error(p.srv) : "");
	pair_close(&p);

	test_data(tset, 0);
	test_data(tset, TLS1_2_VERSION);
	test_reneg(tset);
	test_hrr(tset);
	test_trickle(tset);
	test_resume(tset, 0);
	test_resume(tset, TLS1_2_VERSION);
	test_client_cert(tset);

	freecfg(cfg);
	strlist_free(&errs);
	strlist_free(&warns);
}

/*
 * One handshake on listener li; returns 1 when it worked and the
 * negotiated version and cipher are want_ver and want (NULL: any).
 */
static int
try_cipher(const struct tls_set *set, size_t li, const struct copts *o,
    const char *want_ver, const char *want)
{
	struct pair	p;
	const char	*v = "", *c = "";
	int		ok;

	ok = pair_open(&p, set, li, o) == 0;
	if (ok) {
		v = SSL_get_version(p.cli);
		c = SSL_get_cipher_name(p.cli);
		ok = (want_ver == NULL || strcmp(v, want_ver) == 0) &&
		    (want == NULL || strcmp(c, want) == 0);
		if (!ok)
			fprintf(stderr, "  listener %zu: got %s %s, want %s %s\n",
			    li, v, c, nz(want_ver), nz(want));
	}
	pair_close(&p);
	return ok;
}

/*
 * SPEC 3 defaults: AEAD only, AES-128-GCM first, the server's order; TLS
 * 1.3 with TLS_AES_128_GCM_SHA256 first; min_version below TLSv1.2 adds the
 * ECDHE CBC suites and lets TLS 1.0/1.1 sign with SHA-1 and MD5+SHA-1,
 * but only TLS 1.0/1.1 connections.  Listeners: 0 default (EC and RSA
 * certificates), 1 min_version TLSv1 (EC), 2 min_version TLSv1 (RSA),
 * 3 the operator's own lists, 4 min_version TLSv1.1 (EC).
 */
static void
test_ciphers(void)
{
	struct config	*cfg;
	struct cfg_listener *l;
	struct strlist	 errs = { 0 }, warns = { 0 };
	struct copts	 o;
	const char	*cbc[] = { "ECDHE-ECDSA-AES128-SHA256",
			    "ECDHE-ECDSA-AES256-SHA384", "ECDHE-ECDSA-AES128-SHA",
			    "ECDHE-ECDSA-AES256-SHA", "ECDHE-RSA-AES128-SHA256",
			    "ECDHE-RSA-AES128-SHA", "AES128-SHA256", "AES128-SHA",
			    "AES128-GCM-SHA256", "DHE-RSA-AES128-GCM-SHA256" };
	size_t		 i;
	int		 r;

	cfg = newcfg(5);
	setlistener(&cfg->listeners[0], "default", 2);
	setcert(&cfg->listeners[0].tls.certs[0], "mx1", "mx1", NULL, NULL);
	setcert(&cfg->listeners[0].tls.certs[1], "dualrsa", "dualrsa",
	    "mx1.example.org", NULL);
	setlistener(&cfg->listeners[1], "old-ec", 1);
	cfg->listeners[1].tls.min_version = TLS1_VERSION;
	setcert(&cfg->listeners[1].tls.certs[0], "mx1", "mx1", NULL, NULL);
	setlistener(&cfg->listeners[2], "old-rsa", 1);
	cfg->listeners[2].tls.min_version = TLS1_VERSION;
	setcert(&cfg->listeners[2].tls.certs[0], "dualrsa", "dualrsa", NULL,
	    NULL);
	l = &cfg->listeners[3];
	setlistener(l, "custom", 1);
	setcert(&l->tls.certs[0], "mx1", "mx1", NULL, NULL);
	free(l->tls.ciphers);
	l->tls.ciphers = strdup("ECDHE-ECDSA-AES256-GCM-SHA384:"
	    "ECDHE-ECDSA-AES128-SHA");
	free(l->tls.ciphersuites);
	l->tls.ciphersuites = strdup("TLS_CHACHA20_POLY1305_SHA256:"
	    "TLS_AES_128_GCM_SHA256");
	setlistener(&cfg->listeners[4], "old11", 1);
	cfg->listeners[4].tls.min_version = TLS1_1_VERSION;
	setcert(&cfg->listeners[4].tls.certs[0], "mx1", "mx1", NULL, NULL);

	tset = tls_set_build(cfg, &errs, &warns);
	r = tset != NULL ? 0 : -1;
	dumplist("err", &errs);
	CHECK(r == 0 && errs.n == 0, "build cipher set");
	if (r != 0)
		goto out;

	/* TLS 1.2: the client's order (AES-256 and ChaCha20 first) loses. */
	memset(&o, 0, sizeof(o));
	o.maxver = TLS1_2_VERSION;
	o.ciphers = "ECDHE-ECDSA-AES256-GCM-SHA384:"
	    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256:"
	    "ECDHE-ECDSA-AES128-SHA256";
	CHECK(try_cipher(tset, 0, &o, "TLSv1.2",
	    "ECDHE-ECDSA-AES128-GCM-SHA256"), "TLS 1.2 default AES-128-GCM");
	o.ciphers = "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256";
	CHECK(try_cipher(tset, 0, &o, "TLSv1.2",
	    "ECDHE-RSA-AES128-GCM-SHA256"), "TLS 1.2 RSA AES-128-GCM");
	o.ciphers = "ECDHE-ECDSA-AES256-GCM-SHA384";
	CHECK(try_cipher(tset, 0, &o, "TLSv1.2",
	    "ECDHE-ECDSA-AES256-GCM-SHA384"), "TLS 1.2 AES-256-GCM served");
	o.ciphers = "ECDHE-ECDSA-CHACHA20-POLY1305";
	CHECK(try_cipher(tset, 0, &o, "TLSv1.2",
	    "ECDHE-ECDSA-CHACHA20-POLY1305"), "TLS 1.2 ChaCha20 served");
	/* No CBC (LUCKY13), no static RSA, no DHE by default. */
	for (i = 0; i < sizeof(cbc) / sizeof(cbc[0]); i++) {
		o.ciphers = cbc[i];
		CHECK(!try_cipher(tset, 0, &o, NULL, NULL),
		    "default refuses %s", cbc[i]);
		CHECK(!try_cipher(tset, 1, &o, "TLSv1.2", NULL) ||
		    strstr(cbc[i], "ECDHE") != NULL,
		    "old listener refuses non-ECDHE %s", cbc[i]);
	}

	/* TLS 1.3: TLS_AES_128_GCM_SHA256 before the client's AES-256. */
	memset(&o, 0, sizeof(o));
	o.suites = "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:"
	    "TLS_AES_128_GCM_SHA256";
	CHECK(try_cipher(tset, 0, &o, "TLSv1.3", "TLS_AES_128_GCM_SHA256"),
	    "TLS 1.3 default AES-128-GCM");
	o.suites = "TLS_CHACHA20_POLY1305_SHA256";
	CHECK(try_cipher(tset, 0, &o, "TLSv1.3",
	    "TLS_CHACHA20_POLY1305_SHA256"), "TLS 1.3 ChaCha20 served");

	/* The operator's lists replace the defaults, CBC included. */
	memset(&o, 0, sizeof(o));
	o.maxver = TLS1_2_VERSION;
	CHECK(try_cipher(tset, 3, &o, "TLSv1.2",
	    "ECDHE-ECDSA-AES256-GCM-SHA384"), "custom ciphers");
	o.ciphers = "ECDHE-ECDSA-AES128-SHA";
	CHECK(try_cipher(tset, 3, &o, "TLSv1.2", "ECDHE-ECDSA-AES128-SHA"),
	    "custom CBC");
	memset(&o, 0, sizeof(o));
	CHECK(try_cipher(tset, 3, &o, "TLSv1.3",
	    "TLS_CHACHA20_POLY1305_SHA256"), "custom suites");

	/* TLS 1.0 and 1.1: refused by default, served when allowed, with an
	 * EC key (SHA-1 signature) and an RSA key (MD5+SHA-1). */
	memset(&o, 0, sizeof(o));
	o.maxver = TLS1_VERSION;
	CHECK(!try_cipher(tset, 0, &o, NULL, NULL), "TLS 1.0 refused");
	CHECK(try_cipher(tset, 1, &o, "TLSv1", "ECDHE-ECDSA-AES128-SHA"),
	    "TLS 1.0 EC");
	CHECK(try_cipher(tset, 2, &o, "TLSv1", "ECDHE-RSA-AES128-SHA"),
	    "TLS 1.0 RSA");
	CHECK(!try_cipher(tset, 4, &o, NULL, NULL),
	    "TLS 1.0 refused by TLSv1.1");
	o.maxver = TLS1_1_VERSION;
	CHECK(!try_cipher(tset, 0, &o, NULL, NULL), "TLS 1.1 refused");
	CHECK(try_cipher(tset, 1, &o, "TLSv1.1", "ECDHE-ECDSA-AES128-SHA"),
	    "TLS 1.1 EC");
	CHECK(try_cipher(tset, 2, &o, "TLSv1.1", "ECDHE-RSA-AES128-SHA"),
	    "TLS 1.1 RSA");
	CHECK(try_cipher(tset, 4, &o, "TLSv1.1", "ECDHE-ECDSA-AES128-SHA"),
	    "TLS 1.1 on TLSv1.1");

	/* The same listeners keep AEAD and the security level for TLS 1.2:
	 * no SHA-1 signature there. */
	memset(&o, 0, sizeof(o));
	CHECK(try_cipher(tset, 1, &o, "TLSv1.3", "TLS_AES_128_GCM_SHA256"),
	    "old listener TLS 1.3");
	o.maxver = TLS1_2_VERSION;
	CHECK(try_cipher(tset, 1, &o, "TLSv1.2",
	    "ECDHE-ECDSA-AES128-GCM-SHA256"), "old listener TLS 1.2 AEAD");
	o.ciphers = "DEFAULT:@SECLEVEL=0";
	o.sigalgs = "ECDSA+SHA1";
	CHECK(!try_cipher(tset, 1, &o, NULL, NULL),
	    "old listener refuses TLS 1.2 SHA-1 signatures (EC)");
	o.sigalgs = "RSA+SHA1";
	CHECK(!try_cipher(tset, 2, &o, NULL, NULL),
	    "old listener refuses TLS 1.2 SHA-1 signatures (RSA)");
	o.sigalgs = "ECDSA+SHA256";
	CHECK(try_cipher(tset, 1, &o, "TLSv1.2", NULL),
	    "old listener TLS 1.2 SHA-256 signature");
 out:
	freecfg(cfg);
	strlist_free(&errs);
	strlist_free(&warns);
}

static void
test_bad(void)
{
	struct config	*cfg;
	struct cfg_listener *l;
	struct strlist	 errs = { 0 }, warns = { 0 };
	char		*p;
	FILE		*fp;
	int		 r;

	p = tpath("garbage", "pem");
	fp = fopen(p, "w");
	fputs("this is not a certificate\n", fp);
	fclose(fp);
	free(p);
	p = tpath("garbage", "key");
	fp = fopen(p, "w");
	fputs("-----BEGIN PRIVATE KEY-----\nnot base64 !\n"
	    "-----END PRIVATE KEY-----\n", fp);
	fclose(fp);
	free(p);

	cfg = newcfg(3);
	l = &cfg->listeners[0];
	setlistener(l, "bad", 5);
	setcert(&l->tls.certs[0], "mx1", "dualec", NULL, NULL);	/* mismatch */
	setcert(&l->tls.certs[1], "missing", "mx1", NULL, NULL);
	setcert(&l->tls.certs[2], "mx2", "nokey", NULL, NULL);
	setcert(&l->tls.certs[3], "garbage", "mx1", NULL, NULL);
	setcert(&l->tls.certs[4], "mx2", "garbage", NULL, NULL);
	free(l->tls.ciphers);
	l->tls.ciphers = strdup("NO-SUCH-CIPHER");
	l = &cfg->listeners[1];
	setlistener(l, "badca", 1);
	setcert(&l->tls.certs[0], "mx1", "mx1", NULL, NULL);
	free(l->tls.client_ca);
	l->tls.client_ca = tpath("nosuchca", "pem");
	l->tls.verify_client = VERIFY_REQUIRED;
	/* Listener settings are reported even when no certificate loads. */
	l = &cfg->listeners[2];
	setlistener(l, "badfirst", 1);
	l->line = 20;
	setcert(&l->tls.certs[0], "missing", "missing", NULL, NULL);
	free(l->tls.ciphersuites);
	l->tls.ciphersuites = strdup("TLS_NO_SUCH_SUITE");

	tset = tls_set_build(cfg, &errs, &warns);
	r = tset != NULL ? 0 : -1;
	CHECK(r == -1 && tset == NULL, "bad set refused");

	p = tpath("mx1", "pem");
	CHECK(haveline(&errs, p, "does not match"), "mismatch names path");
	free(p);
	p = tpath("missing", "pem");
	CHECK(haveline(&errs, p, "No such file"), "missing file names path");
	free(p);
	p = tpath("nokey", "key");
	CHECK(haveline(&errs, p, "No such file"), "missing key names path");
	free(p);
	p = tpath("garbage", "pem");
	CHECK(haveline(&errs, p, "not a PEM certificate"), "not a cert");
	free(p);
	p = tpath("garbage", "key");
	CHECK(haveline(&errs, p, "private key"), "not a key");
	free(p);
	CHECK(haveline(&errs, "test.conf:10: listeners[0].tls.ciphers",
	    "NO-SUCH-CIPHER"),
	    "bad cipher list");
	p = tpath("nosuchca", "pem");
	CHECK(haveline(&errs, p, "client_ca"), "unreadable client_ca");
	free(p);
	CHECK(haveline(&errs, "test.conf:20: listeners[2].tls.ciphersuites",
	    "TLS_NO_SUCH_SUITE"), "bad ciphersuites");
	CHECK(!haveline(&errs, "listeners[0].tls.ciphersuites", NULL),
	    "good ciphersuites not flagged");
	if (nfail)
		dumplist("err", &errs);

	freecfg(cfg);
	strlist_free(&errs);
	strlist_free(&warns);
}

static void
test_report(void)
{
	struct config	*cfg;
	struct cfg_listener *l;
	char		*buf = NULL, *p, line[600];
	size_t		 len = 0;
	FILE		*out;
	int		 n;

	cfg = newcfg(2);
	l = &cfg->listeners[0];
	setlistener(l, "mx", 5);
	setcert(&l->tls.certs[0], "mx2", "mx2", "mx2.example.org",
	    "other.example.org");
	setcert(&l->tls.certs[1], "expired", "expired", NULL, NULL);
	setcert(&l->tls.certs[2], "soon", "soon", NULL, NULL);
	setcert(&l->tls.certs[3], "dualrsa", "dualrsa", NULL, NULL);
	setcert(&l->tls.certs[4], "mx1", "dualec", NULL, NULL);
	setlistener(&cfg->listeners[1], "none", 0);

	out = open_memstream(&buf, &len);
	n = tls_check_report(cfg, out);
	fclose(out);
	CHECK(n == 2, "report errors %d, want 2 (expired, mismatch)", n);

	p = tpath("expired", "pem");
	snprintf(line, sizeof(line), "error: %s: certificate expired on ", p);
	CHECK(strstr(buf, line) != NULL, "expired flagged");
	free(p);
	p = tpath("soon", "pem");
	snprintf(line, sizeof(line), "warning: %s: certificate expires in ", p);
	CHECK(strstr(buf, line) != NULL, "expiring soon flagged");
	free(p);
	p = tpath("mx1", "pem");
	snprintf(line, sizeof(line), "error: %s: key ", p);
	CHECK(strstr(buf, line) != NULL && strstr(buf, "does not match"),
	    "mismatch flagged");
	free(p);
	CHECK(strstr(buf, "configured name other.example.org is not") != NULL,
	    "missing configured name flagged");
	CHECK(strstr(buf, "configured name mx2.example.org") == NULL,
	    "present configured name not flagged");
	CHECK(strncmp(buf, "listener mx:\n", 13) == 0, "listener header");
	CHECK(strstr(buf, "listener none: no certificates (STARTTLS not "
	    "offered)") != NULL, "no-cert listener");
	CHECK(strstr(buf, "key type: EC P-256") != NULL, "EC key type");
	CHECK(strstr(buf, "key type: RSA 2048") != NULL, "RSA key type");
	CHECK(strstr(buf, "chain: self-signed") != NULL, "chain self-signed");
	CHECK(strstr(buf, "self-signed: yes") != NULL, "self-signed");
	CHECK(strstr(buf, "issuer: CN=mx2.example.org") != NULL, "issuer");
	CHECK(strstr(buf, "names: dual.example.org") != NULL, "SAN names");
	if (nfail || getenv("TLS_TEST_VERBOSE") != NULL)
		fputs(buf, stderr);
	free(buf);
	freecfg(cfg);
}

int
main(void)
{
	const char	*t;

	t = getenv("TMPDIR");
	snprintf(tmpdir, sizeof(tmpdir), "%s/stp-tls-XXXXXX",
	    t != NULL && strlen(t) < 40 ? t : "/tmp");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	mkcert("mx1", K_EC, "mx1.example.org", "DNS:mx1.example.org", -1, 365);
	mkcert("mx2", K_EC, "mx2.example.org", "DNS:mx2.example.org", -1, 365);
	mkcert("wild", K_EC, "wild", "DNS:*.wild.example.org", -1, 365);
	mkcert("dualrsa", K_RSA, "dual rsa", "DNS:dual.example.org", -1, 365);
	mkcert("dualec", K_EC, "dual ec", "DNS:dual.example.org", -1, 365);
	mkcert("cn", K_EC, "cn.example.org", NULL, -1, 365);
	mkcert("expired", K_EC, "expired", "DNS:expired.example.org", -30, -1);
	mkcert("soon", K_EC, "soon", "DNS:soon.example.org", -1, 5);
	mkcert("client", K_EC, "client.example.org", NULL, -1, 365);

	printf("OpenSSL: %s\n", tls_library_version());
	CHECK(strstr(tls_library_version(), "OpenSSL") != NULL, "version");
	test_good();
	test_ciphers();
	test_bad();
	test_report();

	rmtree();
	printf("%d passed, %d failed\n", npass, nfail);
	return nfail ? 1 : 0;
}
