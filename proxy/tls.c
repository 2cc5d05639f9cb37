/*
 * tls - certificates and server-side TLS over memory BIOs; see tls.h.
 *
 * tls_set_build() makes one SSL_CTX per configured certificate and keeps,
 * per listener, the normalised names each one serves and its key type.
 * Every context carries the same client-hello callback: it reads SNI and
 * signature_algorithms from the raw ClientHello, asks certname_select()
 * for the best certificates and switches the SSL to the chosen context
 * before version and cipher negotiation happen.  The set is immutable once
 * built, so workers share it without locks.
 *
 * One connection is tls_conn.c, certificate files are tls_file.c, the
 * -t report is tls_report.c; what they share is in tls_int.h.
 */
#include <sys/types.h>

#include <errno.h>
#include <pthread.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "certname.h"
#include "config.h"
#include "tls.h"
#include "tls_int.h"

#define TLS_GROUPS		"X25519:P-256:X448:P-384:P-521"

/*
 * Default cipher choice (SPEC 3), in the server's order.  TLS 1.2:
 * forward-secret AEAD only, AES-128-GCM first (as safe as AES-256 here and
 * cheaper per byte), no CBC (LUCKY13).  TLS 1.0 and 1.1 know no AEAD suite:
 * a listener that allows them also gets the ECDHE CBC suites they can use,
 * after every AEAD one, so a TLS 1.2 client still gets AEAD.
 */
#define TLS_CIPHERS_AEAD						\
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"	\
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"	\
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define TLS_CIPHERS		TLS_CIPHERS_AEAD
#define TLS_CIPHERS_LEGACY	TLS_CIPHERS_AEAD ":"			\
	"ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:"			\
	"ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA"
#define TLS_SUITES							\
	"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"		\
	"TLS_CHACHA20_POLY1305_SHA256"
#define TLS_MAXCAND		16	/* equally good certificates for one name */

/* verify_client "optional": accept any client certificate (or none); the
 * result stays in SSL_get_verify_result() for the policy to judge. */
static int
tls_verify_accept(int ok, X509_STORE_CTX *xs)
{
	(void)ok;
	(void)xs;
	return 1;
}

static const char *
tls_where(const struct config *cfg, const struct cfg_listener *l, char *buf,
    size_t size)
{
	if (cfg->path != NULL && l->line > 0)
		snprintf(buf, size, "%s:%d", cfg->path, l->line);
	else if (cfg->path != NULL)
		snprintf(buf, size, "%s: listener %s", cfg->path,
		    l->name != NULL ? l->name : "?");
	else
		snprintf(buf, size, "listener %s",
		    l->name != NULL ? l->name : "?");
	return buf;
}

static int	tls_on_client_hello(SSL *, int *, void *);

/*
 * TLS 1.0 and 1.1 sign the key exchange with MD5+SHA-1 (RSA) or SHA-1
 * (ECDSA), and OpenSSL 3 rates those below 80 bits: every security level
 * above 0 (Debian builds with 2) then fails these handshakes with "no
 * suitable signature algorithm".  That is the only check they trip, so
 * rather than dropping to level 0 (which turns off every check: weak
 * client certificate keys, anonymous or export suites in an operator's
 * list), listeners that allow old versions get a security callback that
 * keeps OpenSSL's own verdict except for exactly those two digests on a
 * connection that negotiated TLS 1.0 or 1.1.  TLS 1.2 and 1.3 sessions on
 * the same listener keep the full level.
 */
typedef int	(*tls_sec_fn)(const SSL *, const SSL_CTX *, int, int, int,
		    void *, void *);

static pthread_once_t	tls_sec_once = PTHREAD_ONCE_INIT;
static tls_sec_fn	tls_sec_default;	/* OpenSSL's, set once */

static void
tls_sec_init(void)
{
	SSL_CTX	*ctx;

	if ((ctx = SSL_CTX_new(TLS_server_method())) != NULL) {
		tls_sec_default = SSL_CTX_get_security_callback(ctx);
		SSL_CTX_free(ctx);
	}
}

static int
tls_sec_legacy(const SSL *ssl, const SSL_CTX *ctx, int op, int bits, int nid,
    void *other, void *ex)
{
	if (tls_sec_default(ssl, ctx, op, bits, nid, other, ex))
		return 1;
	return ssl != NULL &&
	    (op & SSL_SECOP_OTHER_TYPE) == SSL_SECOP_OTHER_SIGALG &&
	    (nid == NID_sha1 || nid == NID_md5_sha1) &&
	    SSL_version(ssl) >= TLS1_VERSION &&
	    SSL_version(ssl) < TLS1_2_VERSION;
}

/* Let TLS 1.0 and 1.1 handshakes sign as they must.  Returns 0 or -1. */
static int
tls_legacy_sec(SSL_CTX *ctx)
{
	if (pthread_once(&tls_sec_once, tls_sec_init) != 0 ||
	    tls_sec_default == NULL)
		return -1;
	SSL_CTX_set_security_callback(ctx, tls_sec_legacy);
	return 0;
}

/*
 * The listener-wide settings of one context.  When report is set,
 * problems (bad cipher strings, client_ca) go to errs.  Returns 0 or -1.
 */
static int
tls_ctx_setup(SSL_CTX *ctx, const struct config *cfg,
    const struct cfg_listener *l, size_t li, struct strlist *errs, int report)
{
	STACK_OF(X509_NAME)	*cas;
	unsigned char		 sid[SSL_MAX_SID_CTX_LENGTH];
	const char		*ciphers, *suites;
	char			 where[1024];
	int			 n, rv = 0, minv, mode;

	minv = l->tls.min_version > 0 ? l->tls.min_version : TLS1_2_VERSION;
	if (!SSL_CTX_set_min_proto_version(ctx, minv)) {
		if (report)
			strlist_add(errs, "%s: unsupported version 0x%04x",
			    cfg_where(cfg, where, sizeof(where),
			    "listeners[%zu].tls.min_version", li), minv);
		rv = -1;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_clear_options(ctx, SSL_OP_NO_TICKET);
	/* TLS 1.3 tickets are not sent with the handshake: tls_handshake()
	 * queues one that leaves with the first reply (one write, not two). */
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	/* Resumption comes from stateless tickets, which every worker and
	 * every copy behind a balancer can take; a per-process session cache
	 * would only hold memory (one SSL_SESSION per recent client). */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_clear_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE);
	SSL_CTX_set_default_passwd_cb(ctx, tls_nopass);
	SSL_CTX_set_dh_auto(ctx, 1);
	if (!SSL_CTX_set1_groups_list(ctx, TLS_GROUPS)) {
		if (report)
			strlist_add(errs, "%s: cannot set the key exchange "
			    "groups %s", tls_where(cfg, l, where,
			    sizeof(where)), TLS_GROUPS);
		rv = -1;
	}

	ciphers = l->tls.ciphers != NULL && l->tls.ciphers[0] != '\0' ?
	    l->tls.ciphers : minv < TLS1_2_VERSION ? TLS_CIPHERS_LEGACY :
	    TLS_CIPHERS;
	if (!SSL_CTX_set_cipher_list(ctx, ciphers)) {
		if (report)
			strlist_add(errs, "%s: no usable cipher in \"%s\"",
			    cfg_where(cfg, where, sizeof(where),
			    "listeners[%zu].tls.ciphers", li), ciphers);
		rv = -1;
	}
	suites = l->tls.ciphersuites != NULL &&
	    l->tls.ciphersuites[0] != '\0' ? l->tls.ciphersuites : TLS_SUITES;
	if (!SSL_CTX_set_ciphersuites(ctx, suites)) {
		if (report)
			strlist_add(errs, "%s: bad suite list \"%s\"",
			    cfg_where(cfg, where, sizeof(where),
			    "listeners[%zu].tls.ciphersuites", li), suites);
		rv = -1;
	}
	if (minv < TLS1_2_VERSION && tls_legacy_sec(ctx) == -1) {
		if (report)
			strlist_add(errs, "%s: cannot allow the signatures "
			    "of TLS 1.0/1.1", cfg_where(cfg, where,
			    sizeof(where), "listeners[%zu].tls.min_version",
			    li));
		rv = -1;
	}

	/* One session id context per listener: a session resumes only on
	 * the listener that made it. */
	n = snprintf((char *)sid, sizeof(sid), "stp/%zu/%s", li,
	    l->name != NULL ? l->name : "");
	if (n < 0 || (size_t)n >= sizeof(sid))
		n = sizeof(sid) - 1;
	if (!SSL_CTX_set_session_id_context(ctx, sid, (unsigned)n))
		rv = -1;

	if (l->tls.client_ca != NULL && l->tls.client_ca[0] != '\0') {
		ERR_clear_error();
		if (!SSL_CTX_load_verify_locations(ctx, l->tls.client_ca,
		    NULL)) {
			if (report)
				strlist_add(errs, "%s: %s: %s", cfg_where(cfg,
				    where, sizeof(where),
				    "listeners[%zu].tls.client_ca", li),
				    l->tls.client_ca,
				    tls_errstr("cannot read certificates"));
			rv = -1;
		} else if ((cas = SSL_load_client_CA_file(l->tls.client_ca)) ==
		    NULL) {
			if (report)
				strlist_add(errs, "%s: %s: no certificates",
				    cfg_where(cfg, where, sizeof(where),
				    "listeners[%zu].tls.client_ca", li),
				    l->tls.client_ca);
			rv = -1;
		} else
			SSL_CTX_set_client_CA_list(ctx, cas);
		ERR_clear_error();
	} else if (l->tls.verify_client != VERIFY_NONE)
		SSL_CTX_set_default_verify_paths(ctx);

	switch (l->tls.verify_client) {
	case VERIFY_OPTIONAL:
		mode = SSL_VERIFY_PEER;
		SSL_CTX_set_verify(ctx, mode, tls_verify_accept);
		break;
	case VERIFY_REQUIRED:
		mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
		SSL_CTX_set_verify(ctx, mode, NULL);
		break;
	default:
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
		break;
	}
	return rv;
}

/* What the logs and metrics say about a served certificate. */
static void
tls_cert_facts(struct tls_cert *tc, X509 *x)
{
	unsigned char	 md[EVP_MAX_MD_SIZE];
	unsigned int	 mdlen = 0, i;
	struct tm	 tm;

	tls_keydesc(X509_get0_pubkey(x), tc->keydesc, sizeof(tc->keydesc));
	memset(&tm, 0, sizeof(tm));
	tc->not_after = ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) ?
	    timegm(&tm) : 0;
	tc->sha256[0] = '\0';
	if (X509_digest(x, EVP_sha256(), md, &mdlen) && mdlen == 32)
		for (i = 0; i < mdlen; i++)
			snprintf(tc->sha256 + 3 * i, sizeof(tc->sha256) - 3 * i,
			    i + 1 < mdlen ? "%02X:" : "%02X", md[i]);
}

int
tls_cert_info(const struct config *cfg, const struct tls_set *set,
    size_t li, size_t ci, struct tls_cert_info *out)
{
	const struct tls_cert	*tc;

	if (set == NULL || li >= set->n_lsn || ci >= set->lsn[li].n_certs ||
	    ci >= cfg->listeners[li].tls.n_certs)
		return -1;
	tc = &set->lsn[li].certs[ci];
	out->path = cfg->listeners[li].tls.certs[ci].cert;
	out->names = (const char *const *)tc->names;
	out->n_names = tc->n_names;
	out->key = tc->keydesc;
	out->key_type = tls_keytype_name(tc->keytype);
	out->not_after = tc->not_after;
	out->sha256 = tc->sha256;
	return 0;
}

/* "file:LINE: listeners[li].tls.certificates[ci].KEY" for messages. */
#define TLS_WHERE_CERT(key)						\
	cfg_where(cfg, where, sizeof(where),				\
	    "listeners[%zu].tls.certificates[%zu]." key, li, ci)

/*
 * Build certs[ci] of listener li.  Returns 0, or -1 after adding to errs.
 */
static int
tls_cert_build(const struct config *cfg, size_t li, struct tls_lsn *tl,
    size_t ci, struct strlist *errs, struct strlist *warns)
{
	const struct cfg_listener	*l = &cfg->listeners[li];
	const struct cfg_cert		*cc = &l->tls.certs[ci];
	struct tls_cert			*tc = &tl->certs[ci];
	X509				*x = NULL;
	EVP_PKEY			*pk = NULL;
	char				 err[256], norm[TLS_NAMELEN], when[64];
	char				 where[1024];
	size_t				 i;
	int				 rv = -1, setup;

	if (cc->cert == NULL || cc->cert[0] == '\0') {
		strlist_add(errs, "%s: certificate without a cert path",
		    tls_where(cfg, l, err, sizeof(err)));
		return -1;
	}
	if (tls_read_cert(cc->cert, &x, NULL, err, sizeof(err)) == -1) {
		strlist_add(errs, "%s: %s: %s", TLS_WHERE_CERT("cert"),
		    cc->cert, err);
		return -1;
	}
	tc->keytype = tls_keytype(X509_get0_pubkey(x));

	/* Served anyway: opportunistic senders still get encryption. */
	if (warns != NULL &&
	    X509_cmp_current_time(X509_get0_notBefore(x)) > 0) {
		tls_timestr(X509_get0_notBefore(x), when, sizeof(when));
		strlist_add_error(warns, "%s: certificate not valid before %s"
		    " (served anyway)", cc->cert, when);
	}
	if (warns != NULL &&
	    X509_cmp_current_time(X509_get0_notAfter(x)) < 0) {
		tls_timestr(X509_get0_notAfter(x), when, sizeof(when));
		strlist_add_error(warns, "%s: certificate expired on %s"
		    " (served anyway)", cc->cert, when);
	}

	if (cc->n_names > 0) {
		for (i = 0; i < cc->n_names; i++) {
			if (certname_normalize(cc->names[i], norm,
			    sizeof(norm)) == -1) {
				strlist_add(errs, "%s: %s: invalid name \"%s\"",
				    TLS_WHERE_CERT("names"), cc->cert,
				    cc->names[i]);
				goto out;
			}
			if (tls_names_add(&tc->names, &tc->n_names,
			    (const unsigned char *)norm, strlen(norm)) == -1)
				goto nomem;
		}
	} else if (tls_cert_names(x, &tc->names, &tc->n_names) == -1)
		goto nomem;

	if ((tc->ctx = SSL_CTX_new(TLS_server_method())) == NULL)
		goto nomem;
	/* Failures were reported by tls_lsn_check(); go on, so that one run
	 * also shows the certificate's own problems. */
	setup = tls_ctx_setup(tc->ctx, cfg, l, li, errs, 0);

	ERR_clear_error();
	if (!SSL_CTX_use_certificate_chain_file(tc->ctx, cc->cert)) {
		strlist_add(errs, "%s: %s: %s", TLS_WHERE_CERT("cert"),
		    cc->cert, tls_errstr("cannot load the certificate chain"));
		goto out;
	}
	if (cc->key == NULL || cc->key[0] == '\0') {
		strlist_add(errs, "%s: %s: no key file", TLS_WHERE_CERT("key"),
		    cc->cert);
		goto out;
	}
	/* Read it ourselves first for a clear message (errno, not a key). */
	if (tls_read_key(cc->key, &pk, err, sizeof(err)) == -1) {
		strlist_add(errs, "%s: %s: %s", TLS_WHERE_CERT("key"), cc->key,
		    err);
		goto out;
	}
	ERR_clear_error();
	if (!SSL_CTX_use_PrivateKey(tc->ctx, pk) ||
	    !SSL_CTX_check_private_key(tc->ctx)) {
		strlist_add(errs, "%s: %s: key %s does not match the "
		    "certificate", TLS_WHERE_CERT("key"), cc->cert, cc->key);
		goto out;
	}
	SSL_CTX_set_client_hello_cb(tc->ctx, tls_on_client_hello, tl);
	/* The facts of what is served (the file may have changed since x). */
	tls_cert_facts(tc, SSL_CTX_get0_certificate(tc->ctx));
	rv = setup;
	goto out;

 nomem:
	strlist_add(errs, "%s: out of memory", cc->cert);
 out:
	ERR_clear_error();
	EVP_PKEY_free(pk);
	X509_free(x);
	return rv;
}

/* The listener-wide settings, checked once on a scratch context so that
 * each problem is reported once. */
static void
tls_lsn_check(const struct config *cfg, size_t li, struct strlist *errs)
{
	SSL_CTX	*ctx;
	char	 where[512];

	ERR_clear_error();
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		strlist_add(errs, "%s: out of memory", tls_where(cfg,
		    &cfg->listeners[li], where, sizeof(where)));
		return;
	}
	(void)tls_ctx_setup(ctx, cfg, &cfg->listeners[li], li, errs, 1);
	SSL_CTX_free(ctx);
	ERR_clear_error();
}

static void
tls_lsn_free(struct tls_lsn *tl)
{
	size_t	i;

	for (i = 0; i < tl->n_certs; i++) {
		SSL_CTX_free(tl->certs[i].ctx);
		strvec_free(tl->certs[i].names, tl->certs[i].n_names);
	}
	free(tl->certs);
	free(tl->namev);
	free(tl->nnames);
	free(tl->dflt);
	memset(tl, 0, sizeof(*tl));
}

void
tls_set_free(struct tls_set *set)
{
	size_t	i;

	if (set == NULL)
		return;
	for (i = 0; i < set->n_lsn; i++)
		tls_lsn_free(&set->lsn[i]);
	free(set->lsn);
	free(set);
}

/* The default group: certificate 0 and every other one that serves its
 * first name (an RSA and an ECDSA certificate for the one MX name). */
static int
tls_lsn_index(struct tls_lsn *tl)
{
	size_t	i, j;

	if ((tl->namev = calloc(tl->n_certs, sizeof(*tl->namev))) == NULL ||
	    (tl->nnames = calloc(tl->n_certs, sizeof(*tl->nnames))) == NULL ||
	    (tl->dflt = calloc(tl->n_certs, sizeof(*tl->dflt))) == NULL)
		return -1;
	for (i = 0; i < tl->n_certs; i++) {
		tl->namev[i] = (const char *const *)tl->certs[i].names;
		tl->nnames[i] = tl->certs[i].n_names;
	}
	tl->dflt[tl->n_dflt++] = 0;
	if (tl->certs[0].n_names == 0)
		return 0;
	for (i = 1; i < tl->n_certs; i++)
		for (j = 0; j < tl->certs[i].n_names; j++)
			if (strcmp(tl->certs[i].names[j],
			    tl->certs[0].names[0]) == 0) {
				tl->dflt[tl->n_dflt++] = i;
				break;
			}
	return 0;
}

struct tls_set *
tls_set_build(const struct config *cfg, struct strlist *errs,
    struct strlist *warns)
{
	struct tls_set			*set;
	struct tls_lsn			*tl;
	const struct cfg_listener	*l;
	size_t				 li, ci, nerr = errs->n;
	char				 where[512];

	if ((set = calloc(1, sizeof(*set))) == NULL ||
	    (cfg->n_listeners > 0 && (set->lsn = calloc(cfg->n_listeners,
	    sizeof(*set->lsn))) == NULL)) {
		free(set);
		strlist_add(errs, "%s: out of memory",
		    cfg->path != NULL ? cfg->path : "tls");
		return NULL;
	}
	set->n_lsn = cfg->n_listeners;
	for (li = 0; li < cfg->n_listeners; li++) {
		l = &cfg->listeners[li];
		tl = &set->lsn[li];
		if (l->tls.n_certs == 0)
			continue;
		if ((tl->certs = calloc(l->tls.n_certs,
		    sizeof(*tl->certs))) == NULL) {
			strlist_add(errs, "%s: out of memory",
			    tls_where(cfg, l, where, sizeof(where)));
			continue;
		}
		tl->n_certs = l->tls.n_certs;
		tls_lsn_check(cfg, li, errs);
		for (ci = 0; ci < l->tls.n_certs; ci++)
			(void)tls_cert_build(cfg, li, tl, ci, errs, warns);
		if (tls_lsn_index(tl) == -1)
			strlist_add(errs, "%s: out of memory",
			    tls_where(cfg, l, where, sizeof(where)));
	}
	if (errs->n > nerr) {
		tls_set_free(set);
		return NULL;
	}
	return set;
}

bool
tls_listener_has_cert(const struct tls_set *set, size_t li)
{
	return set != NULL && li < set->n_lsn && set->lsn[li].n_certs > 0;
}

/*
 * ClientHello parsing.  Both extensions are read from the client's raw
 * bytes, so every length is checked against what is left.
 */

/* The host_name of a server_name extension (RFC 6066 §3) into out.
 * Returns 1, 0 when there is none, -1 when it is malformed. */
static int
tls_hello_sni(SSL *ssl, char *out, size_t outsize)
{
	const unsigned char	*p;
	size_t			 len, list, n;
	unsigned		 type;

	if (!SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len))
		return 0;
	if (len < 2)
		return -1;
	list = (size_t)p[0] << 8 | p[1];
	p += 2;
	len -= 2;
	if (list != len)
		return -1;
	while (len > 0) {
		if (len < 3)
			return -1;
		type = p[0];
		n = (size_t)p[1] << 8 | p[2];
		p += 3;
		len -= 3;
		if (n > len)
			return -1;
		if (type == TLSEXT_NAMETYPE_host_name) {
			if (n == 0 || n >= outsize || memchr(p, '\0', n) != NULL)
				return -1;
			memcpy(out, p, n);
			out[n] = '\0';
			return 1;
		}
		p += n;
		len -= n;
	}
	return 0;
}

/* The key types the client's signature_algorithms (RFC 8446 §4.2.3,
 * RFC 5246 §7.4.1.4.1) allow, as TLS_KEYBIT()s; 0 when absent or
 * malformed. */
static unsigned
tls_hello_keytypes(SSL *ssl)
{
	const unsigned char	*p;
	size_t			 len, list, i;
	unsigned		 scheme, kt = 0;

	if (!SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_signature_algorithms,
	    &p, &len) || len < 2)
		return 0;
	list = (size_t)p[0] << 8 | p[1];
	if (list != len - 2 || list % 2 != 0)
		return 0;
	for (i = 2; i < len; i += 2) {
		scheme = (unsigned)p[i] << 8 | p[i + 1];
		if (scheme >= 0x0201 && scheme <= 0x0603 &&
		    (scheme & 0xff) == 0x01)
			kt |= TLS_KEYBIT(TLS_KEY_RSA);	/* rsa_pkcs1_* */
		else if (scheme >= 0x0203 && scheme <= 0x0603 &&
		    (scheme & 0xff) == 0x03)
			kt |= TLS_KEYBIT(TLS_KEY_EC);	/* ecdsa_* */
		else if (scheme >= 0x0804 && scheme <= 0x0806)
			kt |= TLS_KEYBIT(TLS_KEY_RSA);	/* rsa_pss_rsae_* */
		else if (scheme == 0x0807 || scheme == 0x0808)
			kt |= TLS_KEYBIT(TLS_KEY_ED);	/* ed25519, ed448 */
		else if (scheme >= 0x081a && scheme <= 0x081c)
			kt |= TLS_KEYBIT(TLS_KEY_EC);	/* ecdsa_brainpool* */
	}
	return kt;
}

/* Does the ClientHello offer TLS 1.3 (supported_versions)? */
static int
tls_hello_offers_13(SSL *ssl)
{
	const unsigned char	*p;
	size_t			 len, i;

	if (!SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_supported_versions,
	    &p, &len) || len < 1 || p[0] != len - 1)
		return 0;
	for (i = 1; i + 1 < len; i += 2)
		if (p[i] == 0x03 && p[i + 1] == 0x04)
			return 1;
	return 0;
}

/*
 * Key types the client can use as far as its cipher suites go: with TLS 1.3
 * any (the suite does not name the key), with TLS 1.2 only those its
 * ECDHE_ECDSA / ECDHE_RSA (or plain RSA) suites allow.  A client that
 * offers only RSA suites but lists ECDSA signature algorithms must still
 * get the RSA certificate (SPEC §5: "the one the client can use").
 */
static unsigned
tls_hello_suite_keytypes(SSL *ssl)
{
	const unsigned char	*p;
	const SSL_CIPHER	*c;
	size_t			 len, i;
	unsigned		 kt = 0;

	if (tls_hello_offers_13(ssl))
		return ~0u;
	len = SSL_client_hello_get0_ciphers(ssl, &p);
	for (i = 0; i + 1 < len; i += 2) {
		if ((c = SSL_CIPHER_find(ssl, p + i)) == NULL)
			continue;
		switch (SSL_CIPHER_get_auth_nid(c)) {
		case NID_auth_rsa:
			kt |= TLS_KEYBIT(TLS_KEY_RSA);
			break;
		case NID_auth_ecdsa:
			kt |= TLS_KEYBIT(TLS_KEY_EC) | TLS_KEYBIT(TLS_KEY_ED);
			break;
		/* NID_auth_any: TLS 1.3 suites (handled above) and the
		 * signalling values (renegotiation_info, fallback SCSV),
		 * which say nothing about keys. */
		}
	}
	return kt;
}

/* Among equally good candidates: ECDSA when the client offers it, else
 * the first one whose key type it allows, else the first. */
static size_t
tls_pick(const struct tls_lsn *tl, const size_t *cand, size_t n,
    unsigned offered)
{
	size_t	i;

	if (n == 1 || offered == 0)
		return cand[0];
	if (offered & TLS_KEYBIT(TLS_KEY_EC))
		for (i = 0; i < n; i++)
			if (tl->certs[cand[i]].keytype == TLS_KEY_EC)
				return cand[i];
	for (i = 0; i < n; i++)
		if (offered & TLS_KEYBIT(tl->certs[cand[i]].keytype))
			return cand[i];
	return cand[0];
}

/*
 * Called for each ClientHello before the version, cipher and certificate
 * are chosen.  Picks the certificate by SNI and moves the SSL to its
 * context.  May run twice (HelloRetryRequest): it is idempotent.
 */
static int
tls_on_client_hello(SSL *ssl, int *al, void *arg)
{
	struct tls_conn		*c = SSL_get_app_data(ssl);
	const struct tls_lsn	*tl = arg;
	char			 raw[TLS_NAMELEN];
	size_t			 cand[TLS_MAXCAND], n = 0, pick;
	unsigned		 usable;
	SSL_CTX			*ctx;

	if (c == NULL || tl == NULL || tl->n_certs == 0)
		return SSL_CLIENT_HELLO_SUCCESS;
	c->has_sni = 0;
	if (tls_hello_sni(ssl, raw, sizeof(raw)) == 1 &&
	    certname_normalize(raw, c->sni, sizeof(c->sni)) == 0)
		c->has_sni = 1;
	if (c->has_sni)
		n = certname_select(tl->namev, tl->nnames, tl->n_certs, c->sni,
		    cand, TLS_MAXCAND);
	usable = tls_hello_keytypes(ssl);
	if (usable == 0)	/* no signature_algorithms: TLS 1.2 defaults */
		usable = ~0u;
	if ((usable & tls_hello_suite_keytypes(ssl)) != 0)
		usable &= tls_hello_suite_keytypes(ssl);
	if (n == 0)
		pick = tls_pick(tl, tl->dflt, tl->n_dflt, usable);
	else
		pick = tls_pick(tl, cand, n, usable);
	if (pick >= tl->n_certs)
		pick = 0;
	c->chosen = pick;
	c->picked = 1;

	ctx = tl->certs[pick].ctx;
	if (SSL_get_SSL_CTX(ssl) != ctx) {
		if (SSL_set_SSL_CTX(ssl, ctx) != ctx) {
			*al = SSL_AD_INTERNAL_ERROR;
			return SSL_CLIENT_HELLO_ERROR;
		}
		/* SSL_set_SSL_CTX() swaps only the certificate: the per-SSL
		 * copies made at SSL_new() follow the new context by hand. */
		SSL_set_options(ssl, SSL_CTX_get_options(ctx));
		SSL_set_min_proto_version(ssl,
		    SSL_CTX_get_min_proto_version(ctx));
		SSL_set_verify(ssl, SSL_CTX_get_verify_mode(ctx),
		    SSL_CTX_get_verify_callback(ctx));
	}
	return SSL_CLIENT_HELLO_SUCCESS;
}

const char *
tls_library_version(void)
{
	return OpenSSL_version(OPENSSL_VERSION);
}
