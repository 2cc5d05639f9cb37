/*
 * tls_int - what the TLS files share, internal to them (other modules use
 * tls.h): the structures of a TLS set and of a connection (tls.c builds
 * the set and picks the certificate in the ClientHello; tls_conn.c runs
 * one connection), and certificate reading (tls_file.c), which tls.c and
 * tls_report.c (the -t report) share so that both judge a file the same
 * way.
 */
#ifndef STP_TLS_INT_H
#define STP_TLS_INT_H

#include <stddef.h>

#include <time.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "stats.h"

#define TLS_NAMELEN	256	/* 253 octets, a dot and NUL, rounded */

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
	int			 picked;	/* chosen was set by a ClientHello */
	int			 has_sni;
	int			 reneg;		/* a renegotiation was refused */
	int			 ticket;	/* TLS 1.3 session ticket queued */
	char			 sni[TLS_NAMELEN];
	char			 err[160];
	enum hs_fail		 fail;		/* the class of err */
};

/* tls_file.c */

/* Never prompt for a pass phrase (a pem_password_cb). */
int	tls_nopass(char *buf, int size, int rwflag, void *arg);
/* The reason of the oldest queued OpenSSL error, or dflt. */
const char *tls_errstr(const char *dflt);
enum tls_keytype tls_keytype(const EVP_PKEY *pk);
const char *tls_keytype_name(enum tls_keytype t);	/* "ECDSA" */
/* Append the normalised form of the len bytes at s to the strvec v, n;
 * skips invalid names and duplicates.  -1 when out of memory. */
int	tls_names_add(char ***v, size_t *n, const unsigned char *s,
	    size_t len);

/* "2025-01-31 12:00:00 UTC", or "(invalid time)". */
void	tls_timestr(const ASN1_TIME *t, char *buf, size_t size);
/* "EC P-256", "RSA 2048", "ED25519" */
void	tls_keydesc(const EVP_PKEY *pk, char *buf, size_t size);
/* The leaf (and with chain, the rest) of a PEM file; 0, or -1 with a
 * message without the path in err. */
int	tls_read_cert(const char *path, X509 **leaf, STACK_OF(X509) **chain,
	    char *err, size_t errsize);
/* An unencrypted PEM private key; 0, or -1 with a message in err. */
int	tls_read_key(const char *path, EVP_PKEY **pk, char *err,
	    size_t errsize);
/* The normalised names a certificate serves (subjectAltName dNSNames,
 * else its CN) as a strvec; 0, or -1 when out of memory. */
int	tls_cert_names(X509 *x, char ***v, size_t *n);

#endif
