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
 * A tls_conn never sees a socket: ciphertext goes in through tls_feed()
 * and out through tls_take_out().  The input BIO reads as "retry" when
 * empty, so OpenSSL never mistakes a slow client for EOF.  Renegotiation
 * is refused (SSL_OP_NO_RENEGOTIATION, CVE-2009-3555 and CPU exhaustion);
 * an attempt ends the session.
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
#define TLS_NAMELEN		256	/* 253 octets, a dot and NUL, rounded */
#define TLS_MAXCAND		16	/* equally good certificates for one name */
#define TLS_EXPIRY_WARN_DAYS	14

enum tls_keytype {
	TLS_KEY_OTHER = 0,
	TLS_KEY_RSA,
	TLS_KEY_EC,
	TLS_KEY_ED
};
#define TLS_KEYBIT(t)	(1u << (t))

struct tls_lsn;

struct tls_cert {
	SSL_CTX		*ctx;
	char		**names;	/* normalised */
	size_t		  n_names;
	enum tls_keytype  keytype;
	char		  keydesc[48];	/* "EC P-256" */
	time_t		  not_after;
	char		  sha256[3 * 32];	/* "AB:CD:..." of the DER */
};

struct tls_lsn {
	struct tls_cert	 *certs;	/* certs[0] is the default */
	size_t		  n_certs;
	const char *const **namev;	/* namev[i] = certs[i].names */
	size_t		 *nnames;
	size_t		 *dflt;		/* certs serving certs[0]'s first name */
	size_t		  n_dflt;
};

struct tls_set {
	struct tls_lsn	*lsn;
	size_t		 n_lsn;
};

struct tls_conn {
	SSL			*ssl;
	BIO			*rbio;		/* owned by ssl */
	BIO			*wbio;		/* owned by ssl */
	const struct tls_lsn	*lsn;
	size_t			 chosen;	/* index into lsn->certs */
	int			 has_sni;
	int			 reneg;		/* a renegotiation was refused */
	int			 ticket;	/* TLS 1.3 session ticket queued */
	char			 sni[TLS_NAMELEN];
	char			 err[160];
};

/* Never prompt for a pass phrase: encrypted keys are refused. */
static int
tls_nopass(char *buf, int size, int rwflag, void *arg)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)arg;
	return -1;
}

/* verify_client "optional": accept any client certificate (or none); the
 * result stays in SSL_get_verify_result() for the policy to judge. */
static int
tls_verify_accept(int ok, X509_STORE_CTX *xs)
{
	(void)ok;
	(void)xs;
	return 1;
}

/* The reason of the oldest queued OpenSSL error, or dflt. */
static const char *
tls_errstr(const char *dflt)
{
	unsigned long	 e;
	const char	*r;

	if ((e = ERR_peek_error()) == 0)
		return dflt;
	if ((r = ERR_reason_error_string(e)) == NULL)
		return dflt;
	return r;
}

static void
tls_timestr(const ASN1_TIME *t, char *buf, size_t size)
{
	struct tm	tm;

	memset(&tm, 0, sizeof(tm));
	if (t == NULL || !ASN1_TIME_to_tm(t, &tm) ||
	    strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(buf, size, "(invalid time)");
}

static enum tls_keytype
tls_keytype(const EVP_PKEY *pk)
{
	if (pk == NULL)
		return TLS_KEY_OTHER;
	switch (EVP_PKEY_get_base_id(pk)) {
	case EVP_PKEY_RSA:
		return TLS_KEY_RSA;
	case EVP_PKEY_EC:
		return TLS_KEY_EC;
	case EVP_PKEY_ED25519:
	case EVP_PKEY_ED448:
		return TLS_KEY_ED;
	default:
		return TLS_KEY_OTHER;
	}
}

/* "EC P-256", "RSA 2048", "ED25519" */
static void
tls_keydesc(const EVP_PKEY *pk, char *buf, size_t size)
{
	char		 group[64];
	const char	*nist = NULL;
	int		 nid;

	if (pk == NULL) {
		snprintf(buf, size, "unknown");
		return;
	}
	switch (EVP_PKEY_get_base_id(pk)) {
	case EVP_PKEY_RSA:
		snprintf(buf, size, "RSA %d", EVP_PKEY_get_bits(pk));
		break;
	case EVP_PKEY_RSA_PSS:
		snprintf(buf, size, "RSA-PSS %d", EVP_PKEY_get_bits(pk));
		break;
	case EVP_PKEY_EC:
		if (!EVP_PKEY_get_group_name(pk, group, sizeof(group), NULL)) {
			snprintf(buf, size, "EC %d", EVP_PKEY_get_bits(pk));
			break;
		}
		if ((nid = OBJ_sn2nid(group)) != NID_undef)
			nist = EC_curve_nid2nist(nid);
		snprintf(buf, size, "EC %s", nist != NULL ? nist : group);
		break;
	case EVP_PKEY_ED25519:
		snprintf(buf, size, "ED25519");
		break;
	case EVP_PKEY_ED448:
		snprintf(buf, size, "ED448");
		break;
	default:
		snprintf(buf, size, "%s %d", OBJ_nid2sn(EVP_PKEY_get_base_id(pk)),
		    EVP_PKEY_get_bits(pk));
		break;
	}
}

/* A PEM file as a BIO, or NULL with err set (the system's reason, such as
 * "No such file or directory"). */
static BIO *
tls_open_pem(const char *path, char *err, size_t errsize)
{
	FILE	*fp;
	BIO	*bio;

	if ((fp = fopen(path, "r")) == NULL) {
		snprintf(err, errsize, "%s", strerror(errno));
		return NULL;
	}
	if ((bio = BIO_new_fp(fp, BIO_CLOSE)) == NULL) {
		fclose(fp);
		snprintf(err, errsize, "out of memory");
		return NULL;
	}
	ERR_clear_error();
	return bio;
}

/*
 * Read the leaf certificate (and, if chain is not NULL, the certificates
 * after it) from a PEM file.  On failure writes a message without the path
 * to err and returns -1.
 */
static int
tls_read_cert(const char *path, X509 **leaf, STACK_OF(X509) **chain,
    char *err, size_t errsize)
{
	BIO	*bio;
	X509	*x;

	*leaf = NULL;
	if (chain != NULL)
		*chain = NULL;
	if ((bio = tls_open_pem(path, err, errsize)) == NULL)
		return -1;
	if ((*leaf = PEM_read_bio_X509(bio, NULL, tls_nopass, NULL)) == NULL) {
		BIO_free(bio);
		ERR_clear_error();
		snprintf(err, errsize, "not a PEM certificate");
		return -1;
	}
	if (chain != NULL) {
		if ((*chain = sk_X509_new_null()) == NULL)
			goto nomem;
		while ((x = PEM_read_bio_X509(bio, NULL, tls_nopass, NULL)) !=
		    NULL) {
			if (!sk_X509_push(*chain, x)) {
				X509_free(x);
				goto nomem;
			}
		}
	}
	ERR_clear_error();
	BIO_free(bio);
	return 0;

 nomem:
	BIO_free(bio);
	X509_free(*leaf);
	*leaf = NULL;
	if (chain != NULL) {
		sk_X509_pop_free(*chain, X509_free);
		*chain = NULL;
	}
	snprintf(err, errsize, "out of memory");
	return -1;
}

static int
tls_read_key(const char *path, EVP_PKEY **pk, char *err, size_t errsize)
{
	BIO	*bio;

	*pk = NULL;
	if ((bio = tls_open_pem(path, err, errsize)) == NULL)
		return -1;
	*pk = PEM_read_bio_PrivateKey(bio, NULL, tls_nopass, NULL);
	BIO_free(bio);
	ERR_clear_error();
	if (*pk == NULL) {
		snprintf(err, errsize,
		    "no usable PEM private key (encrypted keys are not supported)");
		return -1;
	}
	return 0;
}

/* Append the normalised form of the len bytes at s; skips invalid names
 * and duplicates.  Returns -1 on allocation failure. */
static int
tls_names_add(char ***v, size_t *n, const unsigned char *s, size_t len)
{
	char	 raw[TLS_NAMELEN], norm[TLS_NAMELEN];
	size_t	 i;

	if (len == 0 || len >= sizeof(raw) || memchr(s, '\0', len) != NULL)
		return 0;
	memcpy(raw, s, len);
	raw[len] = '\0';
	if (certname_normalize(raw, norm, sizeof(norm)) == -1)
		return 0;
	for (i = 0; i < *n; i++)
		if (strcmp((*v)[i], norm) == 0)
			return 0;
	return strvec_add(v, n, norm);
}

/* The names a certificate carries: its subjectAltName dNSNames, else its
 * subject CN (RFC 6125 §6.4.4).  Returns -1 on allocation failure. */
static int
tls_cert_names(X509 *x, char ***v, size_t *n)
{
	GENERAL_NAMES		*gens;
	const GENERAL_NAME	*g;
	const X509_NAME		*subj;
	const X509_NAME_ENTRY	*ne;
	const ASN1_STRING	*as;
	unsigned char		*utf8;
	int			 i, len, rv = 0;

	*v = NULL;
	*n = 0;
	gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	if (gens != NULL) {
		for (i = 0; i < sk_GENERAL_NAME_num(gens) && rv == 0; i++) {
			g = sk_GENERAL_NAME_value(gens, i);
			if (g->type != GEN_DNS)
				continue;
			as = g->d.dNSName;
			if (ASN1_STRING_type(as) != V_ASN1_IA5STRING ||
			    (len = ASN1_STRING_length(as)) <= 0)
				continue;
			rv = tls_names_add(v, n, ASN1_STRING_get0_data(as),
			    (size_t)len);
		}
		GENERAL_NAMES_free(gens);
		if (rv == -1 || *n > 0)
			return rv;
	}
	if ((subj = X509_get_subject_name(x)) == NULL)
		return 0;
	i = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
	if (i < 0 || (ne = X509_NAME_get_entry(subj, i)) == NULL)
		return 0;
	if ((len = ASN1_STRING_to_UTF8(&utf8,
	    X509_NAME_ENTRY_get_data(ne))) < 0)
		return 0;
	rv = tls_names_add(v, n, utf8, (size_t)len);
	OPENSSL_free(utf8);
	return rv;
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

static const char	*tls_keytype_name(enum tls_keytype);

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
tls_cert_info(const struct config *cfg, size_t li, size_t ci,
    struct tls_cert_info *out)
{
	const struct tls_set	*set = cfg->tls;
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

/* For struct config, which frees the set without knowing its type. */
static void
tls_set_free_opaque(void *set)
{
	tls_set_free(set);
}

int
tls_set_build(struct config *cfg, struct strlist *errs,
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
		return -1;
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
		return -1;
	}
	if (cfg->tls != NULL && cfg->tls_free != NULL)
		cfg->tls_free(cfg->tls);
	cfg->tls = set;
	cfg->tls_free = tls_set_free_opaque;
	return 0;
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

/* Notes our no_renegotiation alert: the session is then ended. */
static void
tls_on_info(const SSL *ssl, int where, int ret)
{
	struct tls_conn	*c;

	if ((where & SSL_CB_WRITE_ALERT) == 0 ||
	    (ret & 0xff) != SSL_AD_NO_RENEGOTIATION)
		return;
	if ((c = SSL_get_app_data(ssl)) != NULL)
		c->reneg = 1;
}

struct tls_conn *
tls_conn_new(const struct tls_set *set, size_t li)
{
	struct tls_conn	*c;

	if (!tls_listener_has_cert(set, li) || set->lsn[li].certs[0].ctx == NULL)
		return NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->lsn = &set->lsn[li];
	ERR_clear_error();
	if ((c->ssl = SSL_new(c->lsn->certs[0].ctx)) == NULL)
		goto fail;
	if ((c->rbio = BIO_new(BIO_s_mem())) == NULL)
		goto fail;
	if ((c->wbio = BIO_new(BIO_s_mem())) == NULL) {
		BIO_free(c->rbio);
		goto fail;
	}
	BIO_set_mem_eof_return(c->rbio, -1);
	BIO_set_mem_eof_return(c->wbio, -1);
	SSL_set_bio(c->ssl, c->rbio, c->wbio);
	SSL_set_app_data(c->ssl, c);
	SSL_set_info_callback(c->ssl, tls_on_info);
	SSL_set_accept_state(c->ssl);
	return c;

 fail:
	ERR_clear_error();
	SSL_free(c->ssl);
	free(c);
	return NULL;
}

void
tls_conn_free(struct tls_conn *c)
{
	if (c == NULL)
		return;
	SSL_free(c->ssl);
	ERR_clear_error();
	free(c);
}

/*
 * A memory BIO keeps the largest buffer it ever held.  Once one is drained
 * and holds any buffer at all, swap in a fresh BIO so that an idle
 * session keeps no TLS buffer (a new BIO costs less than the memory of
 * thousands of idle sessions).
 */
static void
tls_bio_trim(struct tls_conn *c, int rd)
{
	BUF_MEM	*bm = NULL;
	BIO	*nb;

	BIO_get_mem_ptr(rd ? c->rbio : c->wbio, &bm);
	if (bm == NULL || bm->max == 0 ||
	    (nb = BIO_new(BIO_s_mem())) == NULL)
		return;
	BIO_set_mem_eof_return(nb, -1);
	if (rd) {
		SSL_set0_rbio(c->ssl, nb);
		c->rbio = nb;
	} else {
		SSL_set0_wbio(c->ssl, nb);
		c->wbio = nb;
	}
}

void
tls_set_bulk(struct tls_conn *c, int on)
{
	if (on)
		SSL_clear_mode(c->ssl, SSL_MODE_RELEASE_BUFFERS);
	else
		SSL_set_mode(c->ssl, SSL_MODE_RELEASE_BUFFERS);
}

int
tls_feed(struct tls_conn *c, const void *buf, size_t len)
{
	const unsigned char	*p = buf;
	int			 n, chunk;

	while (len > 0) {
		chunk = len > INT_MAX ? INT_MAX : (int)len;
		if ((n = BIO_write(c->rbio, p, chunk)) <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

size_t
tls_pending_in(const struct tls_conn *c)
{
	return BIO_ctrl_pending(c->rbio);
}

size_t
tls_pending_out(const struct tls_conn *c)
{
	return BIO_ctrl_pending(c->wbio);
}

size_t
tls_take_out(struct tls_conn *c, void *buf, size_t len)
{
	int	n;

	if (len == 0)
		return 0;
	n = BIO_read(c->wbio, buf, len > INT_MAX ? INT_MAX : (int)len);
	if (BIO_ctrl_pending(c->wbio) == 0)
		tls_bio_trim(c, 0);
	return n > 0 ? (size_t)n : 0;
}

static void
tls_fail(struct tls_conn *c, const char *what, int sslerr)
{
	const char	*why;

	if (c->reneg)
		why = "renegotiation refused";
	else if (sslerr == SSL_ERROR_ZERO_RETURN)
		why = "peer closed";
	else if (sslerr == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
		why = "peer closed";
	else
		why = tls_errstr("protocol error");
	if (c->reneg)
		snprintf(c->err, sizeof(c->err), "%s", why);
	else
		snprintf(c->err, sizeof(c->err), "%s: %s", what, why);
	ERR_clear_error();
}

enum tls_status
tls_handshake(struct tls_conn *c)
{
	int	r, e;

	ERR_clear_error();
	if ((r = SSL_do_handshake(c->ssl)) == 1) {
		if (!c->ticket && SSL_version(c->ssl) == TLS1_3_VERSION) {
			c->ticket = 1;
			if (SSL_new_session_ticket(c->ssl) != 1)
				ERR_clear_error();	/* no resumption, no harm */
		}
		return TLS_OK;
	}
	switch ((e = SSL_get_error(c->ssl, r))) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		ERR_clear_error();
		return TLS_AGAIN;
	default:
		tls_fail(c, "handshake", e);
		return TLS_ERROR;
	}
}

size_t
tls_read(struct tls_conn *c, void *buf, size_t len, enum tls_status *st)
{
	size_t	n = 0;
	int	e;

	ERR_clear_error();
	if (len > 0 && SSL_read_ex(c->ssl, buf, len, &n) == 1 && n > 0) {
		*st = TLS_OK;
		return n;
	}
	e = len > 0 ? SSL_get_error(c->ssl, 0) : SSL_ERROR_WANT_READ;
	if (c->reneg) {
		tls_fail(c, "read", e);
		*st = TLS_ERROR;
		return 0;
	}
	switch (e) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		ERR_clear_error();
		*st = TLS_AGAIN;
		if (BIO_ctrl_pending(c->rbio) == 0)
			tls_bio_trim(c, 1);
		break;
	case SSL_ERROR_ZERO_RETURN:
		ERR_clear_error();
		*st = TLS_CLOSED;
		break;
	default:
		tls_fail(c, "read", e);
		*st = TLS_ERROR;
		break;
	}
	return 0;
}

int
tls_write(struct tls_conn *c, const void *buf, size_t len)
{
	size_t	n = 0;
	int	e;

	if (len == 0)
		return 0;
	ERR_clear_error();
	if (SSL_write_ex(c->ssl, buf, len, &n) == 1 && n == len)
		return 0;
	e = SSL_get_error(c->ssl, 0);
	tls_fail(c, "write", e);
	return -1;
}

void
tls_shutdown(struct tls_conn *c)
{
	ERR_clear_error();
	(void)SSL_shutdown(c->ssl);
	ERR_clear_error();
}

static const char *
tls_keytype_name(enum tls_keytype t)
{
	switch (t) {
	case TLS_KEY_RSA:
		return "RSA";
	case TLS_KEY_EC:
		return "ECDSA";
	case TLS_KEY_ED:
		return "EdDSA";
	default:
		return "other";
	}
}

const char *
tls_conn_sni(const struct tls_conn *c)
{
	return c->has_sni ? c->sni : NULL;
}

void
tls_get_info(struct tls_conn *c, struct tls_info *out)
{
	const SSL_CIPHER	*ciph;
	const struct tls_cert	*tc;
	X509			*peer;
	BIO			*bio;
	int			 alg_bits = 0, n;

	memset(out, 0, sizeof(*out));
	out->version = SSL_get_version(c->ssl);
	out->version_num = SSL_version(c->ssl);
	if ((ciph = SSL_get_current_cipher(c->ssl)) != NULL) {
		out->cipher = SSL_CIPHER_get_name(ciph);
		(void)SSL_CIPHER_get_bits(ciph, &alg_bits);
		out->cipher_bits = alg_bits;
	}
	out->sni = c->has_sni ? c->sni : NULL;
	tc = &c->lsn->certs[c->chosen];
	out->cert_name = tc->n_names > 0 ? tc->names[0] : NULL;
	out->cert_keytype = tls_keytype_name(tc->keytype);

	if ((peer = SSL_get1_peer_certificate(c->ssl)) == NULL)
		return;
	out->client_verified = SSL_get_verify_result(c->ssl) == X509_V_OK;
	if ((bio = BIO_new(BIO_s_mem())) != NULL) {
		if (X509_NAME_print_ex(bio, X509_get_subject_name(peer), 0,
		    XN_FLAG_RFC2253) >= 0) {
			n = BIO_read(bio, out->client_subject,
			    sizeof(out->client_subject) - 1);
			if (n > 0)
				out->client_subject[n] = '\0';
		}
		BIO_free(bio);
	}
	if (X509_NAME_get_text_by_NID(X509_get_subject_name(peer),
	    NID_commonName, out->client_cn, sizeof(out->client_cn)) < 0)
		out->client_cn[0] = '\0';
	X509_free(peer);
	ERR_clear_error();
}

const char *
tls_conn_error(const struct tls_conn *c)
{
	return c->err[0] != '\0' ? c->err : "no error";
}

const char *
tls_library_version(void)
{
	return OpenSSL_version(OPENSSL_VERSION);
}

/*
 * tls_check_report() and its helpers: "starttls-proxy -t".
 */

static void
tls_print_name(FILE *out, const char *label, const X509_NAME *name)
{
	BIO	*bio;
	char	 buf[512];
	int	 n = 0;

	buf[0] = '\0';
	if ((bio = BIO_new(BIO_s_mem())) != NULL) {
		if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) >= 0 &&
		    (n = BIO_read(bio, buf, sizeof(buf) - 1)) > 0)
			buf[n] = '\0';
		BIO_free(bio);
	}
	fprintf(out, "    %s: %s\n", label, buf[0] != '\0' ? buf : "(empty)");
}

/* Verify leaf + chain against the system trust store. */
static void
tls_print_chain(FILE *out, X509 *leaf, STACK_OF(X509) *chain)
{
	X509_STORE	*store;
	X509_STORE_CTX	*xs = NULL;
	int		 e;

	ERR_clear_error();
	if ((store = X509_STORE_new()) == NULL ||
	    !X509_STORE_set_default_paths(store) ||
	    (xs = X509_STORE_CTX_new()) == NULL ||
	    !X509_STORE_CTX_init(xs, store, leaf, chain)) {
		fprintf(out, "    chain: not checked (out of memory)\n");
		goto done;
	}
	X509_STORE_CTX_set_purpose(xs, X509_PURPOSE_SSL_SERVER);
	if (X509_verify_cert(xs) == 1) {
		fprintf(out, "    chain: ok\n");
		goto done;
	}
	e = X509_STORE_CTX_get_error(xs);
	if (e == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT ||
	    e == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN)
		fprintf(out, "    chain: self-signed\n");
	else
		fprintf(out, "    chain: %s\n", X509_verify_cert_error_string(e));
 done:
	X509_STORE_CTX_free(xs);
	X509_STORE_free(store);
	ERR_clear_error();
}

/*
 * DANE-EE records for the names served (RFC 7671/7672: usage 3, selector 1
 * = SubjectPublicKeyInfo, matching 1 = SHA-256), ready to publish.  They
 * pin the key, so they survive a renewal that keeps the key.
 */
static void
tls_print_tlsa(FILE *out, X509 *x, char **names, size_t n, int port)
{
	unsigned char	*der = NULL, md[EVP_MAX_MD_SIZE];
	unsigned int	 mdlen = 0, k;
	char		 hex[2 * EVP_MAX_MD_SIZE + 1];
	size_t		 i;
	int		 len;

	if ((len = i2d_PUBKEY(X509_get0_pubkey(x), &der)) <= 0)
		return;
	if (EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL) == 1) {
		for (k = 0; k < mdlen; k++)
			snprintf(hex + 2 * k, 3, "%02x", md[k]);
		for (i = 0; i < n; i++)
			if (names[i][0] != '*')
				fprintf(out, "    tlsa: _%d._tcp.%s. IN TLSA "
				    "3 1 1 %s\n", port, names[i], hex);
	}
	OPENSSL_free(der);
}

/* One certificate; returns its number of errors. */
static int
tls_check_cert(const struct cfg_cert *cc, int port, FILE *out)
{
	X509		*x = NULL;
	STACK_OF(X509)	*chain = NULL;
	EVP_PKEY	*pk = NULL;
	char		**names = NULL, norm[TLS_NAMELEN], err[256], when[64];
	size_t		 n_names = 0, i, j;
	int		 nerr = 0, days = 0, secs = 0, found;

	fprintf(out, "  certificate %s\n", cc->cert != NULL ? cc->cert : "");
	if (cc->cert == NULL || tls_read_cert(cc->cert, &x, &chain, err,
	    sizeof(err)) == -1) {
		fprintf(out, "error: %s: %s\n", cc->cert != NULL ? cc->cert :
		    "(none)", cc->cert != NULL ? err : "no cert path");
		return 1;
	}
	fprintf(out, "    key file: %s\n", cc->key != NULL ? cc->key : "");

	if (tls_cert_names(x, &names, &n_names) == -1) {
		fprintf(out, "error: %s: out of memory\n", cc->cert);
		nerr++;
		goto done;
	}
	fprintf(out, "    names:");
	if (cc->n_names > 0)
		for (i = 0; i < cc->n_names; i++)
			fprintf(out, " %s", cc->names[i]);
	else
		for (i = 0; i < n_names; i++)
			fprintf(out, " %s", names[i]);
	if (cc->n_names == 0 && n_names == 0)
		fprintf(out, " (none)");
	fprintf(out, "%s\n", cc->n_names > 0 ? " (configured)" : "");

	tls_keydesc(X509_get0_pubkey(x), err, sizeof(err));
	fprintf(out, "    key type: %s\n", err);
	tls_timestr(X509_get0_notBefore(x), when, sizeof(when));
	fprintf(out, "    not before: %s\n", when);
	tls_timestr(X509_get0_notAfter(x), when, sizeof(when));
	fprintf(out, "    not after: %s\n", when);
	tls_print_name(out, "issuer", X509_get_issuer_name(x));
	fprintf(out, "    self-signed: %s\n", X509_self_signed(x, 0) == 1 ?
	    "yes" : "no");
	tls_print_chain(out, x, chain);
	tls_print_tlsa(out, x, cc->n_names > 0 ? cc->names : names,
	    cc->n_names > 0 ? cc->n_names : n_names, port);

	for (i = 0; i < cc->n_names; i++) {
		if (certname_normalize(cc->names[i], norm, sizeof(norm)) == -1) {
			fprintf(out, "error: %s: invalid name \"%s\"\n",
			    cc->cert, cc->names[i]);
			nerr++;
			continue;
		}
		for (found = 0, j = 0; j < n_names && !found; j++)
			found = certname_match_exact(names[j], norm) ||
			    certname_match_wildcard(names[j], norm);
		if (!found)
			fprintf(out, "warning: %s: configured name %s is not "
			    "in the certificate\n", cc->cert, norm);
	}

	if (cc->key == NULL || cc->key[0] == '\0') {
		fprintf(out, "error: %s: no key file\n", cc->cert);
		nerr++;
	} else if (tls_read_key(cc->key, &pk, err, sizeof(err)) == -1) {
		fprintf(out, "error: %s: %s\n", cc->key, err);
		nerr++;
	} else if (X509_check_private_key(x, pk) != 1) {
		fprintf(out, "error: %s: key %s does not match the "
		    "certificate\n", cc->cert, cc->key);
		nerr++;
	}

	if (X509_cmp_current_time(X509_get0_notBefore(x)) > 0) {
		tls_timestr(X509_get0_notBefore(x), when, sizeof(when));
		fprintf(out, "error: %s: certificate not valid before %s\n",
		    cc->cert, when);
		nerr++;
	}
	if (X509_cmp_current_time(X509_get0_notAfter(x)) < 0) {
		tls_timestr(X509_get0_notAfter(x), when, sizeof(when));
		fprintf(out, "error: %s: certificate expired on %s\n",
		    cc->cert, when);
		nerr++;
	} else if (ASN1_TIME_diff(&days, &secs, NULL,
	    X509_get0_notAfter(x)) && days < TLS_EXPIRY_WARN_DAYS)
		fprintf(out, "warning: %s: certificate expires in %d days\n",
		    cc->cert, days);

 done:
	ERR_clear_error();
	strvec_free(names, n_names);
	EVP_PKEY_free(pk);
	sk_X509_pop_free(chain, X509_free);
	X509_free(x);
	return nerr;
}

int
tls_check_report(struct config *cfg, FILE *out)
{
	const struct cfg_listener	*l;
	size_t				 li, ci;
	int				 nerr = 0, port;

	for (li = 0; li < cfg->n_listeners; li++) {
		l = &cfg->listeners[li];
		if (l->tls.n_certs == 0) {
			fprintf(out, "listener %s: no certificates (STARTTLS "
			    "not offered)\n", l->name != NULL ? l->name : "?");
			continue;
		}
		fprintf(out, "listener %s:\n", l->name != NULL ? l->name : "?");
		port = cfg_addr_port(&l->listen);
		for (ci = 0; ci < l->tls.n_certs; ci++)
			nerr += tls_check_cert(&l->tls.certs[ci],
			    port != 0 ? port : 25, out);
	}
	fflush(out);
	return nerr;
}
