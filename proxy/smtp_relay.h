/*
 * smtp_relay - the SMTP dialogue between one client and its backend, with
 * no I/O: the transport (session.c) hands it bytes and it answers with
 * bytes and events.
 *
 * It owns what the dialogue means: the input mode (commands, waiting for
 * 354, message content, BDAT chunks, ignoring), the command framer and the
 * policy verdicts, the reply slots (RFC 2920 order, the proxy's own
 * replies included), the DATA end scanner with the smuggling defence, the
 * BDAT count, the EHLO rewriting, XCLIENT (probe, send, hold everything
 * until its reply), the Received: header, the STARTTLS window (stale
 * backend output), unsolicited output and the envelope for the log.
 *
 * It never touches a socket, a clock, libuv or OpenSSL: the caller passes
 * the time in (struct relay_in), owns the output buffers (struct relay_out)
 * and acts on the events.  Each step does one thing (one command line, one
 * piece of content, one backend reply) so the caller can look at its
 * queues between steps.  Message content is not copied: a DATA step names
 * the bytes of the input to send (fwd), after whatever to_backend holds.
 *
 * Invariants (SPEC §4): a 2xx for a message only ever comes from the
 * backend; STARTTLS is never forwarded and every client byte after it is
 * dropped until relay_tls_done(); with bare_newline = reject the backend
 * never gets the end of a message with a bare CR or LF, and a CR ending the
 * input is held back until the next byte shows what it is.
 */
#ifndef STP_SMTP_RELAY_H
#define STP_SMTP_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"
#include "envelope.h"
#include "policy.h"
#include "replyq.h"
#include "smtp_parse.h"

struct stats;

#define RELAY_REPLYQ_CAP	ENVELOPE_PEND_MAX /* commands in flight */
#define RELAY_REPLY_MAX		(32 * 1024)	/* one backend reply */
#define RELAY_UNSOLICITED_MAX	(1024 * 1024)	/* unsolicited bytes tolerated */

/* The proxy's own 421 replies (SPEC §4), named once. */
#define R421_UNAVAILABLE	"421 4.3.0 Mail server temporarily unavailable\r\n"
#define R421_INTERNAL		"421 4.3.0 Internal error\r\n"
#define R421_REFUSED_MSG	"421 4.3.0 Closing connection after a refused " \
				"message\r\n"
#define R421_SHUTDOWN		"421 4.3.2 Service shutting down, try again " \
				"later\r\n"
#define R421_LOST		"421 4.4.2 Connection to the mail server lost\r\n"
#define R421_PROTOCOL		"421 4.4.2 Mail server protocol error\r\n"
#define R421_TIMEOUT		"421 4.4.2 Mail server timeout\r\n"
#define R421_IDLE		"421 4.4.2 Idle timeout, closing connection\r\n"
#define R421_TOO_LONG		"421 4.4.2 Message took too long, closing " \
				"connection\r\n"
#define R421_TOO_MANY		"421 4.7.0 Too many connections, try again " \
				"later\r\n"

/* What the next client bytes are. */
enum relay_mode {
	RIN_CMD = 0,		/* command lines */
	RIN_DATA_WAIT,		/* DATA sent: wait for 354 before reading on */
	RIN_DATA,		/* message content, relayed */
	RIN_DATA_POISONED,	/* content with a bare CR/LF: dropped to its end */
	RIN_BDAT,		/* a BDAT chunk, relayed */
	RIN_BDAT_DISCARD,	/* a refused BDAT chunk, dropped */
	RIN_IGNORE		/* nothing more is read as commands */
};

/* What the dialogue's deadline (relay_deadline) measures. */
enum relay_timer {
	RT_IDLE = 0,		/* no complete command for idle_timeout */
	RT_REPLY,		/* the backend's reply to the oldest command */
	RT_PAUSE,		/* a pause inside message content */
	RT_CONTENT		/* one message's (or chunk's) whole content */
};

/* Log sinks (log.c's functions in the proxy; stubs in tests).  The level
 * given to kv is RELAY_LOG_INFO, log.h's LOG_INFO. */
#define RELAY_LOG_INFO	2
struct relay_log {
	void	(*warnx)(const char *fmt, ...);
	void	(*info)(const char *fmt, ...);
	void	(*kv)(int level, const char *event, ...);
};

/* The session's constants; strings must outlive the relay. */
struct relay_cfg {
	const struct policy_cfg	*policy;
	const char		*banner;	/* "" = relay the backend's */
	const char		*backend;	/* its address, for logs */
	const char		*hostname;	/* ours: EHLO probe, Received */
	const char		*listener;
	const char		*id;		/* the session id */
	const char		*peer_addr;	/* the client, as text */
	const char		*peer_port;
	bool			 peer_v6;	/* XCLIENT ADDR=IPV6:... */
	bool			 xclient;	/* probe and send XCLIENT */
	bool			 received_header;
	size_t			 max_line;
	uint64_t		 idle_ms;	/* limits.idle_timeout */
	uint64_t		 data_ms;	/* limits.data_timeout */
	struct stats		*st;		/* counters to add to, or NULL */
	const struct relay_log	*log;		/* NULL: no logging */
};

/* Facts of the TLS handshake; strings live as long as the TLS session. */
struct relay_tls {
	const char	*version;		/* "TLSv1.3" */
	int		 version_num;		/* 0x0304 */
	const char	*cipher;
	int		 cipher_bits;
	const char	*sni;			/* NULL: none */
	const char	*client_subject;	/* NULL: no certificate */
	bool		 client_verified;
};

/* Given to each step. */
struct relay_in {
	uint64_t	 ms;		/* monotonic milliseconds (timers) */
	time_t		 now;		/* wall clock (Received:) */
	bool		 client_full;	/* replies toward the client above the mark */
	bool		 backend_full;	/* bytes toward the backend above the mark */
};

#define RELAY_EV_OOM		0x0001	/* out of memory: close the session */
#define RELAY_EV_FAIL		0x0002	/* fail with why/reply (sess_fail) */
#define RELAY_EV_DRAIN		0x0004	/* stale window over: drop what the
					   backend sent, read or unread, before
					   sending anything (relay_stale) */
#define RELAY_EV_REARM		0x0008	/* the deadline may have moved */
#define RELAY_EV_GREETING	0x0010	/* the backend greeted: dialogue on */
#define RELAY_EV_STARTTLS	0x0020	/* our 220 is out: handshake once sent */
#define RELAY_EV_CLOSE		0x0040	/* the last reply is out: close */
#define RELAY_EV_QUIT		0x0080	/* ... and it answered QUIT */
#define RELAY_EV_BULK_ON	0x0100	/* message content is flowing */
#define RELAY_EV_BULK_OFF	0x0200	/* ... and has ended */

/* What a step produced.  The caller sets the buffers, clears the rest. */
struct relay_out {
	struct buf	*to_backend;	/* bytes for the backend, in order */
	struct buf	*to_client;	/* replies for the client (relay_flush) */
	unsigned	 ev;		/* RELAY_EV_* */
	const char	*fwd;		/* input bytes to send after to_backend */
	size_t		 fwd_len;
	const char	*why;		/* RELAY_EV_FAIL: for the log */
	const char	*reply;		/* RELAY_EV_FAIL: the 421 line */
	bool		 backend_fault;	/* RELAY_EV_FAIL: count a backend failure */
};

struct smtp_relay {
	struct relay_cfg	 cfg;
	enum relay_mode		 in;
	unsigned		 flags;		/* RF_* in smtp_relay_int.h */
	struct sec_facts	 facts;
	struct relay_tls	 tls;
	char			*helo;
	struct replyq		 rq;
	struct smtp_framer	 framer;
	struct smtp_datascan	 ds;
	uint64_t		 bdat_left;
	struct buf		 held;		/* for the backend after XCLIENT's
						   reply */
	struct envelope		 env;

	/* Deadline bases, milliseconds of relay_in.ms. */
	uint64_t		 t_active;	/* last command or reply */
	uint64_t		 t_wait;	/* the oldest waiting command's clock */
	uint64_t		 t_content;	/* this content's first byte */
	uint64_t		 t_content_last; /* its latest byte */
	enum relay_timer	 tk;

	/* Counters, for the session line and the metrics. */
	uint64_t		 bytes_in;	/* client -> backend */
	uint64_t		 bytes_out;	/* backend -> client */
	unsigned		 messages;
	unsigned		 refusals;
	uint64_t		 unsol_bytes;	/* outside the STARTTLS window */
	unsigned		 unsol_replies;
	uint64_t		 stale_bytes;	/* dropped around STARTTLS */
};

/* cfg is copied; cert_available says whether STARTTLS can be offered.
 * 0, or -1 when out of memory. */
int	relay_init(struct smtp_relay *r, const struct relay_cfg *cfg,
	    bool cert_available);
void	relay_free(struct smtp_relay *r);

/* A backend connection starts: its greeting takes the next slot. -1 when
 * out of memory. */
int	relay_start(struct smtp_relay *r, const struct relay_in *in);

/*
 * One step over client plaintext p[0..len): sets *used (bytes to drop
 * from the front of p) and returns 1, or returns 0 when nothing can be
 * done before more input, a reply, or room (in->*_full).
 */
int	relay_client_step(struct smtp_relay *r, const struct relay_in *in,
	    const char *p, size_t len, size_t *used, struct relay_out *out);

/* One step over backend bytes p[0..len): one reply (or the stale bytes);
 * same returns. */
int	relay_backend_step(struct smtp_relay *r, const struct relay_in *in,
	    const char *p, size_t len, size_t *used, struct relay_out *out);

/* Move ready replies, in order, to out->to_client, up to a STARTTLS 220
 * or a last reply (RELAY_EV_STARTTLS / RELAY_EV_CLOSE). */
void	relay_flush(struct smtp_relay *r, struct relay_out *out);

/*
 * The session cannot go on (backend lost, shutdown, timeout, smuggling):
 * reply (a complete "421 ..." line) goes in the slot that waits for the
 * backend, or after the replies already given, and closes the session.
 * Nothing more is read.  0; -1 when out of memory; -2 when the queue is
 * full (close without a reply).
 */
int	relay_fail(struct smtp_relay *r, const char *reply);

/* The backend connection is gone (no XCLIENT, QUIT answered locally). */
void	relay_backend_gone(struct smtp_relay *r);

/* RELAY_EV_DRAIN: n stale backend bytes were dropped. */
void	relay_stale(struct smtp_relay *r, uint64_t n);

/* The handshake is done: take its facts and reset the dialogue
 * (RFC 3207 §4.2); after relay_fail() it still reads nothing. */
void	relay_tls_done(struct smtp_relay *r, const struct relay_tls *t,
	    const struct relay_in *in);

/* When the dialogue times out (milliseconds of relay_in.ms); r->tk says
 * what for. */
uint64_t relay_deadline(struct smtp_relay *r);
/* That deadline passed: RELAY_EV_FAIL with its reply. */
void	relay_timeout(struct smtp_relay *r, struct relay_out *out);

/*
 * The client closed (all its bytes processed): may the session end now?
 * At once inside message content (*why says so), else once no reply is
 * owed (SPEC §4 "Client gone").
 */
bool	relay_may_end(const struct smtp_relay *r, const char **why);

/* DATA sent, 354 not yet back: input waits. */
bool	relay_waits_354(const struct smtp_relay *r);

#endif
