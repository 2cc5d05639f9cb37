/*
 * tls - certificates and TLS for the proxy, over memory only.
 *
 * A tls_set is built once per configuration: for each listener, one
 * SSL_CTX per configured certificate (built once, shared by all sessions
 * and workers), the names each certificate serves (configured "names", else
 * its subjectAltName dNSNames, else its CN) and a client-hello callback that
 * picks the certificate by SNI through certname_select(): exact, then
 * wildcard, else the listener's default (its first certificate); among
 * equally good certificates (RSA and ECDSA for one name) the one whose key
 * type the client's signature algorithms allow.
 *
 * A tls_conn is one server-side TLS session over two memory BIOs: the
 * session feeds it ciphertext read from the socket and takes ciphertext to
 * write; it never touches a socket or an event loop (no uv.h here).
 * Renegotiation is refused; SSL_MODE_RELEASE_BUFFERS is on.
 */
#ifndef STP_TLS_H
#define STP_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

#include "config.h"
#include "stats.h"

struct tls_set;
struct tls_conn;

/*
 * Load every certificate and key of cfg and build the contexts.  Problems
 * go to errs as "PATH: message" (missing, unreadable, not a certificate,
 * key does not match, bad cipher list, client_ca unreadable).  An expired
 * or not-yet-valid certificate goes to warns as an error (SL_ERROR: it is
 * served, opportunistic senders still get encryption, but it is logged at
 * error level).  Returns the set, or NULL when errs got something.  The
 * set does not point into cfg.
 */
struct tls_set	*tls_set_build(const struct config *cfg, struct strlist *errs,
		    struct strlist *warns);
void	tls_set_free(struct tls_set *set);

/* A served certificate, for the start/reload log lines and the expiry
 * metric.  Pointers live as long as cfg and set. */
struct tls_cert_info {
	const char		*path;
	const char *const	*names;		/* the names it serves */
	size_t			 n_names;
	const char		*key;		/* "EC P-256", "RSA 2048" */
	const char		*key_type;	/* "ECDSA", "RSA", "EdDSA" */
	time_t			 not_after;
	const char		*sha256;	/* "AB:CD:..." of the DER */
};
/* Certificate ci of listener li of cfg, whose set is set; 0, or -1 if
 * none. */
int	tls_cert_info(const struct config *cfg, const struct tls_set *set,
	    size_t li, size_t ci, struct tls_cert_info *out);

/* Does listener li (index into cfg->listeners) have a certificate? */
bool	tls_listener_has_cert(const struct tls_set *set, size_t li);

/*
 * "starttls-proxy -t": for each listener and certificate print to out the
 * path, the names served, key type and size, notBefore/notAfter, issuer;
 * errors (expired, not yet valid, mismatch, unreadable) as lines starting
 * "error: " and expiry within 14 days as "warning: ".  Returns the number
 * of errors.
 */
int	tls_check_report(struct config *cfg, FILE *out);

struct tls_conn	*tls_conn_new(const struct tls_set *set, size_t li);
void		 tls_conn_free(struct tls_conn *c);

/* Ciphertext from the client.  Returns 0, -1 on allocation failure. */
int		 tls_feed(struct tls_conn *c, const void *buf, size_t len);
/* Ciphertext buffered in the input BIO, not yet consumed by OpenSSL. */
size_t		 tls_pending_in(const struct tls_conn *c);

enum tls_status {
	TLS_OK = 0,	/* handshake: done */
	TLS_AGAIN,	/* needs more ciphertext in (or output to be flushed) */
	TLS_CLOSED,	/* close_notify received (read) */
	TLS_ERROR	/* fatal; tls_conn_error() says why */
};

/* Advance the handshake.  Output (ServerHello, alerts, tickets) is left in
 * the output BIO; call tls_take_out() after every call here. */
enum tls_status	 tls_handshake(struct tls_conn *c);

/*
 * Decrypt up to len bytes of plaintext into buf.  Returns the number of
 * bytes (> 0), 0 with *st = TLS_AGAIN when nothing is available yet, or 0
 * with *st = TLS_CLOSED / TLS_ERROR.
 */
size_t		 tls_read(struct tls_conn *c, void *buf, size_t len,
		    enum tls_status *st);

/* Encrypt all of buf into the output BIO.  Returns 0, or -1 (TLS_ERROR). */
int		 tls_write(struct tls_conn *c, const void *buf, size_t len);

/* During bulk transfer keep OpenSSL's record buffers (on = 1) instead of
 * freeing and reallocating them around every record; off again releases
 * them whenever idle (SSL_MODE_RELEASE_BUFFERS). */
void		 tls_set_bulk(struct tls_conn *c, int on);

/* Queue a close_notify alert. */
void		 tls_shutdown(struct tls_conn *c);

/* Ciphertext waiting to go to the client. */
size_t		 tls_pending_out(const struct tls_conn *c);
/* Move up to len bytes of it into buf; returns the count. */
size_t		 tls_take_out(struct tls_conn *c, void *buf, size_t len);

struct tls_info {
	const char	*version;	/* "TLSv1.3" */
	int		 version_num;	/* 0x0304 */
	const char	*cipher;	/* "TLS_AES_256_GCM_SHA384" */
	int		 cipher_bits;
	const char	*sni;		/* NULL when none was sent */
	bool		 client_verified;
	char		 client_subject[256];	/* "" when none */
	char		 client_cn[256];	/* its CN, "" when none */
	const char	*cert_name;	/* first name of the certificate served */
	const char	*cert_keytype;	/* its key type: "ECDSA", "RSA", ... */
};
/* Facts of a completed handshake; pointers live as long as the conn. */
void		 tls_get_info(struct tls_conn *c, struct tls_info *out);

/* The server name the client asked for (SNI), also when the handshake
 * failed after its ClientHello; NULL when none was sent. */
const char	*tls_conn_sni(const struct tls_conn *c);
/* The certificate chosen for the client's ClientHello (first name, key
 * type), also when the handshake failed after it; -1 before one came. */
int		 tls_conn_cert(const struct tls_conn *c, const char **name,
		    const char **keytype);

/* Why the last TLS_ERROR happened, a short static-ish string for logs
 * ("handshake: no shared cipher", "renegotiation refused"...). */
const char	*tls_conn_error(const struct tls_conn *c);
/* Its class for the metrics, from OpenSSL's reason code (HSF_OTHER when
 * nothing failed). */
enum hs_fail	 tls_conn_fail_reason(const struct tls_conn *c);

/* Library versions for -V. */
const char	*tls_library_version(void);

#endif
