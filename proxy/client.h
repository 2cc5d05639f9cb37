/*
 * client - the session's client leg: the accepted TCP stream and, once
 * the handshake starts (STARTTLS or implicit TLS), the TLS session over
 * it in memory (tls.c).  It moves bytes: ciphertext or plaintext in,
 * plaintext into in, replies from out to the socket (through TLS when
 * on), and counts what is queued.  It decides nothing: the session reads
 * in, fills out and says when to read.  No SMTP here.
 */
#ifndef STP_CLIENT_H
#define STP_CLIENT_H

#include <stdbool.h>
#include <sys/socket.h>
#include <uv.h>

#include "buf.h"
#include "tls.h"

/* What went wrong; the session names it in its log line. */
enum client_err {
	CLIENT_OK = 0,
	CLIENT_OOM,		/* "out of memory" */
	CLIENT_WRITE,		/* "client write error" */
	CLIENT_TLS_WRITE,	/* "tls write error" */
	CLIENT_TLS		/* "tls error" (tls_conn_error says more) */
};

struct client {
	uv_tcp_t		 tcp;		/* first; data is the session */
	struct tls_conn		*tls;		/* NULL until the handshake */
	struct buf		 in;		/* plaintext, not yet processed */
	struct buf		 out;		/* plaintext replies to send */
	int			 writes;	/* uv_write requests in flight */
	bool			 reading;
	bool			 eof;		/* FIN or close_notify seen */
	bool			 shut;		/* close_notify queued */
	char			*scratch;	/* the worker's, for TLS output */
	size_t			 scratch_size;
	const char		*id;		/* the session's, for logs */
	void			(*written)(void *arg, int status);
};

/* Take the connection: uv_tcp_init is the caller's (it counts handles). */
void	client_init(struct client *c, const char *id, char *scratch,
	    size_t scratch_size, void (*written)(void *, int));
void	client_free(struct client *c);

/* Start TLS: later input is ciphertext.  -1 when out of memory. */
int	client_start_tls(struct client *c, const struct tls_set *set,
	    size_t li);
/* Bytes read from the socket: to TLS, or to in.  -1 when out of memory. */
int	client_feed(struct client *c, const char *p, size_t len);
/* Advance the handshake and send what it produced. */
enum tls_status client_handshake(struct client *c, enum client_err *err);
/* Decrypt into in while it holds less than cap (eof on close_notify). */
enum client_err client_pull(struct client *c, size_t cap);
/* Send out (encrypted when TLS is on; close_notify after it when last),
 * then any TLS output. */
enum client_err client_flush(struct client *c, bool last);
/* Bytes on their way to the client: out, the write queue, TLS output. */
size_t	client_queued(const struct client *c);
/* Reading on or off (idempotent). */
void	client_read(struct client *c, bool on, uv_alloc_cb alloc,
	    uv_read_cb cb);
/* Bytes the client sent that nobody has read yet; -1 when unknown. */
int	client_unread(struct client *c);

/* Text forms of an address for logs, XCLIENT and Received. */
void	addr_text(const struct sockaddr_storage *ss, char *addr,
	    size_t addrlen, char *port, size_t portlen);

#endif
