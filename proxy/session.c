/*
 * session - one client connection and the backend connection it owns.
 *
 * The only file that sees the client socket, TLS and the backend together.
 * libuv callbacks only translate (bytes in, write done, timer, EOF) and call
 * sess_pump(), which decides everything in one place: advance the
 * handshake, pull plaintext out of TLS, frame backend replies into their
 * slots, frame client commands (policy, then a slot, then forward), relay
 * message content, send ready replies in command order, and finally choose
 * which sides to read (the only caller of uv_read_start/stop).
 *
 * Invariants:
 *  - the client sees replies only from the head of the reply queue, so in
 *    command order (RFC 2920), the proxy's own replies included;
 *  - a 2xx for a message only ever comes from the backend; every failure
 *    becomes a 4xx in the slot that was waiting (nothing is lost);
 *  - STARTTLS is never forwarded; every byte the client sent after it and
 *    before the handshake is dropped (CVE-2011-0411), and no plaintext
 *    moves either way until the handshake is done;
 *  - with bare_newline = reject, the backend never receives the end of a
 *    message that held a bare CR or LF (SMTP smuggling);
 *  - every buffer is bounded; a full one stops reading from its source.
 * After sess_close() the session is SS_CLOSED and is freed from the last
 * handle's close callback, never earlier: code that may close checks the
 * state and returns without further work.
 */
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "policy.h"
#include "proxyproto.h"
#include "received.h"
#include "replyq.h"
#include "session.h"
#include "smtp_ehlo.h"
#include "smtp_parse.h"
#include "stats.h"
#include "tls.h"
#include "worker.h"

#define CIN_CAP		(64 * 1024)	/* client plaintext not yet processed */
#define BIN_CAP		(64 * 1024)	/* backend bytes not yet framed */
#define REPLY_MAX	(32 * 1024)	/* one backend reply, all lines */
#define HIGH_MARK	(256 * 1024)	/* queued toward one side: stop the other */
#define TLS_IN_CAP	(64 * 1024)	/* ciphertext not yet decrypted */
#define REPLYQ_CAP	128		/* pipelined commands in flight */
#define UNSOLICITED_MAX	(1024 * 1024)	/* unsolicited backend bytes tolerated */
#define STALE_DRAIN_MAX	(4 * 1024 * 1024) /* stale bytes read at once, at most */
#define CLOSE_LINGER	5		/* seconds to flush a last reply */
#define DRAIN_LINGER	2		/* seconds to read the client's last bytes */
#define PROXY_TIMEOUT	10		/* seconds for a PROXY header (SPEC §3) */
#define PROXY_MAX	(16 + 1024)	/* bytes of a PROXY header, at most */

enum sess_state {
	SS_PROXY_HEADER = 0,	/* reading the PROXY header of a load balancer */
	SS_BACKEND_CONNECT,	/* connecting to the backend */
	SS_GREETING,		/* waiting for the backend's greeting */
	SS_COMMANDS,		/* SMTP dialogue (plaintext or inside TLS) */
	SS_STARTTLS_DRAIN,	/* our 220 queued; client input discarded */
	SS_HANDSHAKE,		/* TLS handshake: no plaintext either way */
	SS_CLOSED
};

static const char *const sess_state_names[] = {
	"PROXY_HEADER", "BACKEND_CONNECT", "GREETING", "COMMANDS", "STARTTLS_DRAIN",
	"HANDSHAKE", "CLOSED"
};

/* What the next client bytes are, in SS_COMMANDS. */
enum in_mode {
	IN_CMD = 0,		/* command lines */
	IN_DATA_WAIT,		/* DATA sent: wait for 354 before reading on */
	IN_DATA,		/* message content, relayed */
	IN_DATA_POISONED,	/* content with a bare CR/LF: dropped to its end */
	IN_BDAT,		/* a BDAT chunk, relayed */
	IN_BDAT_DISCARD,	/* a refused BDAT chunk, dropped */
	IN_IGNORE		/* nothing more is read as commands */
};

#define SF_TLS			0x0001
#define SF_BE_OPEN		0x0002	/* backend handle initialised */
#define SF_BE_GONE		0x0004	/* backend closed or failed */
#define SF_BE_EOF		0x0008
#define SF_CLIENT_EOF		0x0010
#define SF_CLIENT_READING	0x0020
#define SF_BE_READING		0x0040
#define SF_CLOSE_AFTER_FLUSH	0x0080
#define SF_BDAT_TX		0x0100	/* this BDAT transaction has its header */
#define SF_PUMPING		0x0200
#define SF_REPUMP		0x0400
#define SF_COUNTED		0x0800	/* holds a connection limit slot */
#define SF_ESMTP		0x1000
#define SF_TLS_SHUT		0x2000	/* close_notify queued */
#define SF_XPROBE		0x4000	/* our EHLO to learn XCLIENT pending */
#define SF_BE_XCLIENT		0x8000	/* backend offers XCLIENT */
#define SF_LINGER		0x10000	/* last reply sent: FIN, drain, close */
#define SF_QUIT			0x20000	/* that last reply answered QUIT */
#define SF_HDR_PENDING		0x40000	/* Received: goes before the next content */
#define SF_PREHEADER		0x80000	/* counted in w->n_preheader */
#define SF_STALE		0x100000 /* STARTTLS taken: backend bytes are stale
					    until the first command after TLS */
#define SF_XSENT		0x200000 /* XCLIENT sent on this backend connection */
#define SF_XHOLD		0x400000 /* XCLIENT's reply pending: send nothing */
#define SF_FAILING		0x800000 /* failed mid-handshake: the reply waits
					    in the queue for TLS to be up */

/* What the session timer measures in SS_COMMANDS (see sess_arm_timer). */
enum timer_kind {
	TK_IDLE = 0,		/* no complete command for idle_timeout */
	TK_REPLY,		/* the backend's reply to the oldest command */
	TK_PAUSE,		/* a pause inside message content */
	TK_CONTENT		/* one message's (or chunk's) whole content */
};

/* A MAIL or RCPT forwarded and not yet answered: its path, for the log. */
struct pend {
	uint8_t		 verb;
	char		*path;
};

struct wreq {
	uv_write_t	 req;
	struct session	*s;
	char		*base;
	int		 to_client;
};

struct session {
	struct session		*next, *prev;
	struct worker		*w;
	struct config		*cfg;		/* ref held for the session's life */
	const struct cfg_listener *lc;
	size_t			 li;
	struct lsn_limits	*limits;
	struct stats		*st;		/* this worker's shard */
	char			 id[32];
	enum sess_state		 state;
	enum in_mode		 in;
	unsigned		 flags;

	uv_tcp_t		 client;
	union {
		uv_handle_t	 handle;
		uv_stream_t	 stream;
		uv_tcp_t	 tcp;
		uv_pipe_t	 pipe;
	}			 be;
	uv_connect_t		 be_req;
	uv_shutdown_t		 shut_req;
	uv_timer_t		 timer;
	int			 handles;	/* open libuv handles */
	int			 client_writes;	/* uv_write requests in flight */

	struct tls_conn		*tls;
	struct tls_info		 tinfo;
	struct sec_facts	 facts;
	struct smtp_framer	 framer;
	struct smtp_datascan	 ds;
	uint64_t		 bdat_left;

	struct buf		 cin;	/* client plaintext, unprocessed */
	struct buf		 bin;	/* backend bytes, unframed */
	struct buf		 cout;	/* replies to send (plaintext) */
	struct buf		 bout;	/* bytes to send to the backend */
	struct replyq		 rq;

	struct sockaddr_storage	 peer;		/* the client (PROXY-in's source) */
	struct sockaddr_storage	 local;		/* where it connected to */
	char			 peer_addr[INET6_ADDRSTRLEN];
	char			 peer_port[8];
	char			*helo;
	const char		*end;		/* how it ended, for the log */
	uint64_t		 bytes_in;	/* client -> backend */
	uint64_t		 bytes_out;	/* backend -> client */
	unsigned		 messages;
	unsigned		 refusals;
	uint64_t		 start_ms;
	uint64_t		 hs_start_ms;

	/* Timer bases, loop milliseconds (sess_arm_timer). */
	uint64_t		 t_active;	/* last command or reply */
	uint64_t		 t_wait;	/* the oldest waiting command's clock */
	uint64_t		 t_content;	/* this content's first byte */
	uint64_t		 t_content_last; /* its latest byte */
	enum timer_kind		 tk;

	/* The transaction, for the message and refusal lines (SPEC §6). */
	struct pend		*pend;		/* ring of REPLYQ_CAP, lazily */
	size_t			 pend_head, pend_n;
	char			*from;		/* accepted sender path */
	char			*rcpts;		/* accepted recipients, "a,b" */
	size_t			 rcpts_len;
	unsigned		 nrcpt;
	uint64_t		 msg_size;	/* content bytes of this message */

	/* Backend output nobody asked for: counted, logged once. */
	uint64_t		 unsol_bytes;	/* outside the STARTTLS window */
	unsigned		 unsol_replies;
	uint64_t		 stale_bytes;	/* discarded around STARTTLS */
};

static void	sess_pump(struct session *);
static void	sess_close(struct session *, const char *);
static void	sess_fail(struct session *, const char *, const char *);
static void	backend_failed(struct session *, const char *, const char *);
static void	sess_arm_timer(struct session *);
static void	on_client_read(uv_stream_t *, ssize_t, const uv_buf_t *);
static void	on_backend_read(uv_stream_t *, ssize_t, const uv_buf_t *);
static void	on_handle_closed(uv_handle_t *);
static void	backend_start(struct session *);
static void	sess_linger(struct session *);
static void	on_timer(uv_timer_t *);
static void	alloc_cb(uv_handle_t *, size_t, uv_buf_t *);
static void	proxy_header(struct session *);
static void	forward_line(struct session *, const char *, size_t);

static void
sess_enter(struct session *s, enum sess_state st)
{
	if (s->state == st)
		return;
	log_debug("%s: %s -> %s", s->id, sess_state_names[s->state],
	    sess_state_names[st]);
	s->state = st;
}

/* --- the envelope, for the log --------------------------------------- */

/* The path of "FROM:<a@b> SIZE=1" / "TO:<c@d>": "<a@b>", printable only,
 * at most 256 bytes; NULL when out of memory. */
static char *
envelope_path(const char *arg, size_t len)
{
	const char *p = memchr(arg, ':', len);
	char *out;
	size_t i, n = 0;

	if (p != NULL) {
		len -= (size_t)(p + 1 - arg);
		arg = p + 1;
	}
	while (len > 0 && (*arg == ' ' || *arg == '\t')) {
		arg++;
		len--;
	}
	if ((out = malloc(258)) == NULL)
		return NULL;
	for (i = 0; i < len && n < 256; i++) {
		if (arg[i] == ' ' && (arg[0] != '<' || (i > 0 &&
		    arg[i - 1] == '>')))
			break;
		out[n++] = (arg[i] > 32 && arg[i] < 127) ? arg[i] : '?';
	}
	out[n] = '\0';
	return out;
}

/* MAIL or RCPT forwarded: remember its path until the backend answers. */
static void
envelope_push(struct session *s, enum smtp_verb verb, const struct smtp_cmd *cmd)
{
	struct pend *pe;

	if (s->pend == NULL &&
	    (s->pend = calloc(REPLYQ_CAP, sizeof(*s->pend))) == NULL)
		return;
	if (s->pend_n == REPLYQ_CAP)
		return;
	pe = &s->pend[(s->pend_head + s->pend_n++) % REPLYQ_CAP];
	pe->verb = (uint8_t)verb;
	pe->path = envelope_path(cmd->arg, cmd->arglen);
}

static void
envelope_reset(struct session *s)
{
	free(s->from);
	free(s->rcpts);
	s->from = s->rcpts = NULL;
	s->rcpts_len = 0;
	s->nrcpt = 0;
	s->msg_size = 0;
}

/* The backend answered a MAIL or RCPT with code. */
static void
envelope_answer(struct session *s, enum smtp_verb verb, int code)
{
	struct pend pe;
	size_t n;
	char *r;

	if (s->pend_n == 0 || s->pend[s->pend_head].verb != verb)
		return;
	pe = s->pend[s->pend_head];
	s->pend_head = (s->pend_head + 1) % REPLYQ_CAP;
	s->pend_n--;
	if (code < 200 || code > 299 || pe.path == NULL) {
		free(pe.path);
		return;
	}
	if (verb == SMTP_V_MAIL) {
		envelope_reset(s);
		s->from = pe.path;
		return;
	}
	n = strlen(pe.path);
	if (s->rcpts_len + n + 2 <= 4096 &&
	    (r = realloc(s->rcpts, s->rcpts_len + n + 2)) != NULL) {
		if (s->rcpts_len > 0)
			r[s->rcpts_len++] = ',';
		memcpy(r + s->rcpts_len, pe.path, n + 1);
		s->rcpts_len += n;
		s->rcpts = r;
	}
	s->nrcpt++;
	free(pe.path);
}

static void
envelope_free(struct session *s)
{
	while (s->pend_n > 0) {
		free(s->pend[s->pend_head].path);
		s->pend_head = (s->pend_head + 1) % REPLYQ_CAP;
		s->pend_n--;
	}
	free(s->pend);
	envelope_reset(s);
}

/* The backend's final reply to a message: one line per message. */
static void
log_message(struct session *s, const char *text, size_t len)
{
	char reply[256], size[24], nr[16];
	size_t n = len;

	if (n > 0 && memchr(text, '\n', n) != NULL)
		n = (size_t)((const char *)memchr(text, '\n', n) - text);
	while (n > 0 && (text[n - 1] == '\r' || text[n - 1] == '\n'))
		n--;
	if (n >= sizeof(reply))
		n = sizeof(reply) - 1;
	memcpy(reply, text, n);
	reply[n] = '\0';
	snprintf(size, sizeof(size), "%" PRIu64, s->msg_size);
	snprintf(nr, sizeof(nr), "%u", s->nrcpt);
	log_kv(LOG_INFO, "message",
	    "id", s->id,
	    "client", s->peer_addr,
	    "from", s->from ? s->from : "-",
	    "to", s->rcpts ? s->rcpts : "-",
	    "#nrcpt", nr,
	    "#size", size,
	    "reply", reply,
	    (char *)NULL);
}

/* A command the proxy refused itself (policy): one line. */
static void
log_refusal(struct session *s, enum smtp_verb verb, int code,
    const char *enh, const char *reason)
{
	char c[8];

	snprintf(c, sizeof(c), "%d", code);
	log_kv(LOG_INFO, "refused",
	    "id", s->id,
	    "client", s->peer_addr,
	    "command", smtp_verb_name(verb),
	    "#code", c,
	    "enhanced", enh,
	    "reason", reason,
	    "helo", s->helo ? s->helo : "-",
	    "from", s->from ? s->from : "-",
	    "to", s->rcpts ? s->rcpts : "-",
	    (char *)NULL);
}

/* --- replies --------------------------------------------------------- */

/* Queue the proxy's own reply "CODE ENH TEXT" in the next slot. */
static void
reply_local(struct session *s, enum smtp_verb verb, uint16_t flags,
    int code, const char *enh, const char *text)
{
	char line[512];
	int n;

	n = snprintf(line, sizeof(line), "%d %s %s\r\n", code, enh, text);
	if (n < 0 || (size_t)n >= sizeof(line))
		n = snprintf(line, sizeof(line), "%d %s\r\n", code, enh);
	if (replyq_push_local(&s->rq, verb, flags, line, (size_t)n) == NULL)
		sess_close(s, "out of memory");
}

/* A slot for a command the backend will answer; the clock of its reply
 * timeout starts now when nothing else is waiting.  NULL when full. */
static struct reply_slot *
push_backend(struct session *s, enum smtp_verb verb, uint16_t flags)
{
	if (s->rq.nwait == 0)
		s->t_wait = uv_now(&s->w->loop);
	return replyq_push_backend(&s->rq, verb, flags);
}

/* --- writing --------------------------------------------------------- */

static void
on_write_done(uv_write_t *req, int status)
{
	struct wreq *wr = (struct wreq *)req;
	struct session *s = wr->s;
	int to_client = wr->to_client;

	free(wr);		/* the bytes live behind it */
	if (to_client)
		s->client_writes--;
	if (s->state == SS_CLOSED)
		return;
	if (status < 0 && !to_client && (s->flags & SF_BE_GONE))
		return;		/* cancelled by our own backend_close() */
	if (status < 0) {
		if (to_client) {
			log_info("%s: write to client %s: %s", s->id,
			    s->peer_addr, uv_strerror(status));
			sess_close(s, "client write error");
		} else
			backend_failed(s, "backend write error",
			    "421 4.4.2 Connection to the mail server lost\r\n");
		return;
	}
	sess_pump(s);
}

/*
 * Send p[0..len) on st: straight to the socket when nothing is queued
 * before it (uv_try_write: no request, no callback, and none of the
 * epoll_ctl calls that every completed uv_write costs), the rest through
 * uv_write from a copy.  Returns 0, or -1 on a write error.
 */
static int
stream_send(struct session *s, uv_stream_t *st, const char *p, size_t len,
    int to_client)
{
	struct wreq *wr;
	uv_buf_t b;
	int r;

	if (len == 0)
		return 0;
	if (uv_stream_get_write_queue_size(st) == 0) {
		b = uv_buf_init((char *)(uintptr_t)p, (unsigned)len);
		r = uv_try_write(st, &b, 1);
		if (r < 0 && r != UV_EAGAIN) {
			log_info("%s: write to %s: %s", s->id, to_client ?
			    "client" : "backend", uv_strerror(r));
			return -1;
		}
		if (r > 0) {
			p += r;
			len -= (size_t)r;
		}
		if (len == 0)
			return 0;
	}
	if ((wr = malloc(sizeof(*wr) + len)) == NULL)
		return -1;
	wr->s = s;
	wr->base = (char *)(wr + 1);
	wr->to_client = to_client;
	memcpy(wr->base, p, len);
	b = uv_buf_init(wr->base, (unsigned)len);
	if ((r = uv_write(&wr->req, st, &b, 1, on_write_done)) < 0) {
		log_info("%s: write: %s", s->id, uv_strerror(r));
		free(wr);
		return -1;
	}
	if (to_client)
		s->client_writes++;
	return 0;
}

/* Move TLS output (handshake records, encrypted replies) to the socket,
 * through the worker's scratch buffer. */
static int
flush_tls_out(struct session *s)
{
	size_t n;

	while (s->tls != NULL && tls_pending_out(s->tls) > 0) {
		n = tls_take_out(s->tls, s->w->wrbuf, sizeof(s->w->wrbuf));
		if (n == 0 || stream_send(s, (uv_stream_t *)&s->client,
		    s->w->wrbuf, n, 1) < 0)
			return -1;
	}
	return 0;
}

static void
flush_client(struct session *s)
{
	if (s->state == SS_CLOSED)
		return;
	if (s->cout.len > 0) {
		if (s->tls != NULL) {
			if (tls_write(s->tls, buf_data(&s->cout),
			    s->cout.len) < 0) {
				sess_close(s, "tls write error");
				return;
			}
			if ((s->flags & SF_CLOSE_AFTER_FLUSH) &&
			    !(s->flags & SF_TLS_SHUT)) {
				s->flags |= SF_TLS_SHUT;
				tls_shutdown(s->tls);
			}
		} else if (stream_send(s, (uv_stream_t *)&s->client,
		    buf_data(&s->cout), s->cout.len, 1) < 0) {
			sess_close(s, "client write error");
			return;
		}
		buf_consume(&s->cout, s->cout.len);
		buf_release(&s->cout);
	}
	if (flush_tls_out(s) < 0)
		sess_close(s, "client write error");
}

static void
flush_backend(struct session *s)
{
	/* After XCLIENT nothing leaves before its reply (SPEC §4). */
	if (s->state == SS_CLOSED || s->bout.len == 0 ||
	    (s->flags & SF_XHOLD))
		return;
	if (!(s->flags & SF_BE_GONE) && stream_send(s, &s->be.stream,
	    buf_data(&s->bout), s->bout.len, 0) < 0) {
		buf_consume(&s->bout, s->bout.len);
		buf_release(&s->bout);
		backend_failed(s, "backend write error",
		    "421 4.4.2 Connection to the mail server lost\r\n");
		return;
	}
	buf_consume(&s->bout, s->bout.len);
	buf_release(&s->bout);
}

/* Send p[0..len) to the backend after whatever bout holds; -1 when the
 * backend failed (the session is failing: touch nothing more). */
static int
backend_send(struct session *s, const char *p, size_t len)
{
	flush_backend(s);
	if (s->state == SS_CLOSED || (s->flags & SF_BE_GONE))
		return -1;
	if (s->flags & SF_XHOLD) {
		if (buf_append(&s->bout, p, len) < 0) {
			sess_close(s, "out of memory");
			return -1;
		}
		return 0;
	}
	if (stream_send(s, &s->be.stream, p, len, 0) < 0) {
		backend_failed(s, "backend write error",
		    "421 4.4.2 Connection to the mail server lost\r\n");
		return -1;
	}
	return 0;
}

static size_t
client_queued(struct session *s)
{
	size_t n = s->cout.len;

	n += uv_stream_get_write_queue_size((uv_stream_t *)&s->client);
	if (s->tls != NULL)
		n += tls_pending_out(s->tls);
	return n;
}

static size_t
backend_queued(struct session *s)
{
	size_t n = s->bout.len;

	if (s->flags & SF_BE_OPEN)
		n += uv_stream_get_write_queue_size(&s->be.stream);
	return n;
}

/* --- failure paths --------------------------------------------------- */

static void
backend_close(struct session *s)
{
	s->flags |= SF_BE_GONE;
	if ((s->flags & SF_BE_OPEN) && !uv_is_closing(&s->be.handle)) {
		if (s->flags & SF_BE_READING) {
			uv_read_stop(&s->be.stream);
			s->flags &= ~SF_BE_READING;
		}
		uv_close(&s->be.handle, on_handle_closed);
	}
}

/*
 * The session cannot go on (backend lost, shutdown, smuggling): answer
 * reply (a complete "421 ..." line) in the slot that waits for the backend,
 * or after the replies already given, then close.  Never a 2xx.
 */
static void
sess_fail(struct session *s, const char *why, const char *reply)
{
	struct reply_slot *slot;

	if (s->state == SS_CLOSED ||
	    (s->flags & (SF_CLOSE_AFTER_FLUSH | SF_FAILING)))
		return;
	if (s->end == NULL)
		s->end = why;
	log_debug("%s: %s", s->id, why);
	backend_close(s);
	s->in = IN_IGNORE;
	buf_consume(&s->cin, s->cin.len);
	if (s->state == SS_HANDSHAKE || s->state == SS_STARTTLS_DRAIN) {
		/* After STARTTLS's 220 the client completes its handshake
		 * and sends a command (a TLS 1.3 client may already have):
		 * answer that with the reply once TLS is up, rather than
		 * with a close that looks like a dropped command.  Implicit
		 * TLS has no backend yet and owes nothing. */
		if (!(s->flags & SF_BE_OPEN) || replyq_push_local(&s->rq,
		    SMTP_V_UNKNOWN, RS_CLOSE, reply, strlen(reply)) == NULL) {
			sess_close(s, why);
			return;
		}
		s->flags |= SF_FAILING;
		return;
	}
	if ((slot = replyq_waiting(&s->rq)) != NULL) {
		if (replyq_fill(&s->rq, slot, reply, strlen(reply)) < 0) {
			sess_close(s, "out of memory");
			return;
		}
		slot->flags = (slot->flags | RS_CLOSE) &
		    ~(RS_SWALLOW | RS_STARTTLS | RS_GREETING);
	} else if (replyq_push_local(&s->rq, SMTP_V_UNKNOWN, RS_CLOSE, reply,
	    strlen(reply)) == NULL) {
		sess_close(s, why);
		return;
	}
	sess_pump(s);
	if (s->state != SS_CLOSED)
		sess_arm_timer(s);
}

static void
backend_failed(struct session *s, const char *why, const char *reply)
{
	if (s->state != SS_CLOSED && !(s->flags & SF_CLOSE_AFTER_FLUSH))
		stats_add(&s->st->backend_failures, 1);
	sess_fail(s, why, reply);
}

/* --- TLS ------------------------------------------------------------- */

static enum hs_fail
hs_fail_reason(const char *err)
{
	if (err == NULL)
		return HSF_OTHER;
	if (strstr(err, "protocol") || strstr(err, "version"))
		return HSF_PROTOCOL;
	if (strstr(err, "cipher") || strstr(err, "group") ||
	    strstr(err, "sigalg"))
		return HSF_CIPHER;
	if (strstr(err, "certificate"))
		return HSF_CERT;
	if (strstr(err, "closed") || strstr(err, "eof"))
		return HSF_CLOSED;
	return HSF_OTHER;
}

static void
start_tls(struct session *s)
{
	if ((s->tls = tls_conn_new(s->cfg->tls, s->li)) == NULL) {
		sess_close(s, "tls setup failed");
		return;
	}
	buf_consume(&s->cin, s->cin.len);	/* CVE-2011-0411 */
	sess_enter(s, SS_HANDSHAKE);
	s->hs_start_ms = uv_now(&s->w->loop);
	sess_arm_timer(s);
}

static void
handshake_done(struct session *s)
{
	tls_get_info(s->tls, &s->tinfo);
	stats_add(&s->st->hs_ok, 1);
	stats_tls_session(s->st, s->tinfo.version, s->tinfo.cipher);
	stats_hs_observe(s->st,
	    (double)(uv_now(&s->w->loop) - s->hs_start_ms) / 1000.0);
	s->flags |= SF_TLS;
	s->facts.tls = true;
	s->facts.tls_version = s->tinfo.version_num;
	s->facts.cipher_bits = s->tinfo.cipher_bits;
	s->facts.client_cert = s->tinfo.client_verified;
	s->facts.helo_since_tls = false;
	/* RFC 3207 §4.2: forget everything learnt before TLS. */
	free(s->helo);
	s->helo = NULL;
	envelope_reset(s);
	s->flags &= ~(SF_BDAT_TX | SF_ESMTP);
	smtp_framer_init(&s->framer, (size_t)s->lc->limits.max_line);
	buf_consume(&s->bin, s->bin.len);
	s->in = (s->flags & SF_FAILING) ? IN_IGNORE : IN_CMD;
	s->t_active = uv_now(&s->w->loop);
	if (!(s->flags & SF_BE_OPEN)) {		/* implicit TLS: now the backend */
		backend_start(s);
		return;
	}
	sess_enter(s, SS_COMMANDS);
	log_debug("%s: TLS %s %s sni=%s", s->id, s->tinfo.version,
	    s->tinfo.cipher, s->tinfo.sni ? s->tinfo.sni : "-");
	sess_arm_timer(s);
}

static void
do_handshake(struct session *s)
{
	enum tls_status st;

	st = tls_handshake(s->tls);
	if (flush_tls_out(s) < 0) {
		sess_close(s, "client write error");
		return;
	}
	if (st == TLS_OK)
		handshake_done(s);
	else if (st != TLS_AGAIN) {
		log_info("%s: TLS handshake failed with %s: %s", s->id,
		    s->peer_addr, tls_conn_error(s->tls));
		stats_add(&s->st->hs_failed[hs_fail_reason(
		    tls_conn_error(s->tls))], 1);
		sess_close(s, "handshake failed");
	}
}

/* Decrypt what is there into cin, as far as cin has room. */
static void
tls_pull(struct session *s)
{
	enum tls_status st = TLS_AGAIN;
	size_t n, room;
	char *t;

	while (s->cin.len < CIN_CAP) {
		room = CIN_CAP - s->cin.len;
		if (room > 16384)
			room = 16384;
		if ((t = buf_reserve(&s->cin, room)) == NULL) {
			sess_close(s, "out of memory");
			return;
		}
		n = tls_read(s->tls, t, room, &st);
		if (n == 0)
			break;
		s->cin.len += n;
	}
	if (s->cin.len == 0)
		buf_release(&s->cin);
	if (flush_tls_out(s) < 0) {
		sess_close(s, "client write error");
		return;
	}
	if (st == TLS_CLOSED)
		s->flags |= SF_CLIENT_EOF;
	else if (st == TLS_ERROR) {
		log_info("%s: TLS error: %s", s->id, tls_conn_error(s->tls));
		sess_close(s, "tls error");
	}
}

/* --- backend replies ------------------------------------------------- */

static void
handle_backend_reply(struct session *s, struct reply_slot *slot,
    const char *text, const struct smtp_reply *r)
{
	char *out = NULL;
	const char *rep = text;
	size_t replen = r->len;
	int flags, seen = 0, probe = 0;

	if (slot->flags & RS_GREETING) {
		if (r->code == 220 && s->lc->banner[0] != '\0') {
			if ((out = malloc(strlen(s->lc->banner) + 8)) == NULL)
				goto oom;
			replen = (size_t)sprintf(out, "220 %s\r\n",
			    s->lc->banner);
			rep = out;
		}
		sess_enter(s, SS_COMMANDS);
		sess_arm_timer(s);
		probe = r->code == 220 && s->lc->backend.xclient;
	} else if (slot->flags & RS_SWALLOW) {
		if (slot->verb == SMTP_V_EHLO) {
			s->flags &= ~SF_XPROBE;
			(void)smtp_ehlo_rewrite(text, r->len, 0, NULL, 0, &seen);
			if (r->code == 250 && (seen & EHLO_HAS_XCLIENT))
				s->flags |= SF_BE_XCLIENT;
			else
				log_warnx("%s: backend %s does not offer XCLIENT;"
				    " not sending it", s->id,
				    s->lc->backend.address.text);
			if (r->code == 250)
				s->facts.backend_chunking =
				    (seen & EHLO_HAS_CHUNKING) != 0;
		} else if (slot->verb == SMTP_V_XCLIENT) {
			s->flags &= ~SF_XHOLD;	/* held commands may go */
			if (r->code != 220)
				log_warnx("%s: backend %s refused XCLIENT: %.*s", s->id,
			    s->lc->backend.address.text,
			    (int)(r->len > 200 ? 200 : r->len - 2), text);
		}
	} else if (slot->verb == SMTP_V_EHLO) {
		flags = 0;
		if (!(s->flags & SF_TLS)) {
			if (s->facts.cert_available)
				flags |= EHLO_ADD_STARTTLS;
			if (s->lc->policy.hide_auth_before_tls)
				flags |= EHLO_HIDE_AUTH;
		}
		if ((out = malloc(2 * r->len + 16)) == NULL)
			goto oom;
		replen = smtp_ehlo_rewrite(text, r->len, flags, out,
		    2 * r->len + 16, &seen);
		if (replen == 0) {
			sess_fail(s, "EHLO reply rewrite failed",
			    "421 4.3.0 Internal error\r\n");
			free(out);
			return;
		}
		rep = out;
		if (r->code == 250)
			s->facts.backend_chunking =
			    (seen & EHLO_HAS_CHUNKING) != 0;
	} else if (slot->verb == SMTP_V_DATA && !(slot->flags & RS_MSGEND)) {
		if (r->code == 354) {
			s->in = IN_DATA;
			s->t_content = s->t_content_last = uv_now(&s->w->loop);
			smtp_datascan_init(&s->ds);
			/* The header leaves with the first content bytes. */
			if (s->lc->received_header)
				s->flags |= SF_HDR_PENDING;
		} else
			s->in = IN_CMD;
	}
	if (!(slot->flags & (RS_SWALLOW | RS_GREETING))) {
		switch (slot->verb) {
		case SMTP_V_MAIL:
		case SMTP_V_RCPT:
			envelope_answer(s, slot->verb, r->code);
			break;
		case SMTP_V_RSET:
		case SMTP_V_EHLO:
		case SMTP_V_HELO:
			envelope_reset(s);
			break;
		default:
			break;
		}
	}
	if (slot->flags & RS_MSGEND) {
		if (r->code >= 200 && r->code < 300) {
			s->messages++;
			stats_add(&s->st->messages, 1);
		}
		log_message(s, text, r->len);
		envelope_reset(s);	/* the transaction is over */
	}
	if (replyq_fill(&s->rq, slot, rep, replen) < 0)
		goto oom;
	free(out);
	if (probe) {
		/* Learn whether the backend offers XCLIENT (after the fill:
		 * a push may move the slots). */
		char ehlo[300];
		int n = snprintf(ehlo, sizeof(ehlo), "EHLO %s",
		    s->w->hostname);

		if (push_backend(s, SMTP_V_EHLO, RS_SWALLOW) ==
		    NULL) {
			sess_close(s, "out of memory");
			return;
		}
		forward_line(s, ehlo, (size_t)n);
		s->flags |= SF_XPROBE;
	}
	return;
oom:
	free(out);
	sess_close(s, "out of memory");
}

static void
process_backend_input(struct session *s)
{
	struct smtp_reply r;
	struct reply_slot *slot;
	enum smtp_parse st;

	while (s->state != SS_CLOSED && s->bin.len > 0 &&
	    !(s->flags & SF_BE_GONE)) {
		if (s->flags & SF_STALE) {
			/* Sent before the handshake: never for the client. */
			s->stale_bytes += s->bin.len;
			buf_consume(&s->bin, s->bin.len);
			break;
		}
		if (client_queued(s) > HIGH_MARK)
			break;
		st = smtp_reply_parse(buf_data(&s->bin), s->bin.len,
		    REPLY_MAX, &r);
		if (st == SMTP_AGAIN)
			break;
		if (st != SMTP_OK) {
			log_warnx("%s: malformed reply from backend %s",
			    s->id, s->lc->backend.address.text);
			backend_failed(s, "backend protocol error",
			    "421 4.4.2 Mail server protocol error\r\n");
			return;
		}
		if ((slot = replyq_waiting(&s->rq)) == NULL) {
			/* Counted and logged once, at the end (SPEC §4). */
			s->unsol_replies++;
			s->unsol_bytes += r.len;
			if (s->unsol_bytes > UNSOLICITED_MAX) {
				buf_consume(&s->bin, s->bin.len);
				backend_failed(s, "backend keeps sending "
				    "unsolicited output", "421 4.4.2 Mail "
				    "server protocol error\r\n");
				return;
			}
		} else {
			handle_backend_reply(s, slot, buf_data(&s->bin), &r);
			s->t_active = s->t_wait = uv_now(&s->w->loop);
		}
		buf_consume(&s->bin, r.len);
		if (s->state != SS_CLOSED)
			sess_arm_timer(s);
	}
	if (s->bin.len == 0)
		buf_release(&s->bin);
}

/* --- client commands ------------------------------------------------- */

/*
 * The first command after TLS is about to leave: whatever the backend sent
 * before it is stale, read or not (SPEC §4).  Drop what is buffered and
 * what still sits unread in the socket, read here until it would block;
 * what arrives later is a reply or counted as unsolicited.
 */
static void
stale_drain(struct session *s)
{
	uv_os_fd_t fd;
	ssize_t n;
	size_t total = 0;

	s->flags &= ~SF_STALE;
	s->stale_bytes += s->bin.len;
	buf_consume(&s->bin, s->bin.len);
	if (!(s->flags & SF_BE_OPEN) || (s->flags & (SF_BE_GONE | SF_BE_EOF)) ||
	    uv_fileno(&s->be.handle, &fd) < 0)
		return;
	while (total < STALE_DRAIN_MAX) {
		n = recv(fd, s->w->rdbuf, sizeof(s->w->rdbuf), MSG_DONTWAIT);
		if (n > 0) {
			total += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		s->flags |= SF_BE_EOF;		/* closed, or an error */
		if (s->flags & SF_BE_READING) {
			uv_read_stop(&s->be.stream);
			s->flags &= ~SF_BE_READING;
		}
		break;
	}
	s->stale_bytes += total;
	if (total >= STALE_DRAIN_MAX)
		backend_failed(s, "backend keeps sending unsolicited output",
		    "421 4.4.2 Mail server protocol error\r\n");
}

static void
forward_line(struct session *s, const char *line, size_t len)
{
	if (s->flags & SF_STALE)
		stale_drain(s);
	if (buf_append(&s->bout, line, len) < 0 ||
	    buf_append(&s->bout, "\r\n", 2) < 0) {
		sess_close(s, "out of memory");
		return;
	}
	s->bytes_in += len + 2;
}

static void
forward_cmd(struct session *s, enum smtp_verb verb, uint16_t flags,
    const char *line, size_t len)
{
	if (push_backend(s, verb, flags) == NULL) {
		sess_close(s, "out of memory");
		return;
	}
	forward_line(s, line, len);
}

/* The Received: header for this session's next message; its length. */
static size_t
make_received(struct session *s, char *hdr, size_t size, int esmtp)
{
	struct received_info ri;

	memset(&ri, 0, sizeof(ri));
	ri.helo = s->helo;
	ri.client_addr = s->peer_addr;
	ri.by_host = s->w->hostname;
	ri.listener = s->lc->name;
	ri.session_id = s->id;
	if (s->flags & SF_TLS) {
		ri.tls_version = s->tinfo.version;
		ri.cipher = s->tinfo.cipher;
		ri.cipher_bits = s->tinfo.cipher_bits;
		ri.sni = s->tinfo.sni;
		if (s->tinfo.client_subject[0])
			ri.client_subject = s->tinfo.client_subject;
	}
	ri.esmtp = esmtp;
	ri.now = time(NULL);
	return received_header(&ri, hdr, size);
}

static void
do_bdat(struct session *s, const struct smtp_cmd *cmd, const char *line,
    size_t len)
{
	uint64_t size;
	int last;
	char hdr[RECEIVED_MAX], head[64];
	size_t hl = 0;
	int n;

	if (smtp_bdat_parse(cmd->arg, cmd->arglen, &size, &last) < 0) {
		reply_local(s, SMTP_V_BDAT, 0, 501, "5.5.4",
		    "Syntax error in BDAT parameters");
		return;
	}
	if (push_backend(s, SMTP_V_BDAT,
	    last ? RS_MSGEND : 0) == NULL) {
		sess_close(s, "out of memory");
		return;
	}
	if (s->lc->received_header && !(s->flags & SF_BDAT_TX))
		hl = make_received(s, hdr, sizeof(hdr), 1);
	if (hl > 0) {
		n = snprintf(head, sizeof(head), "BDAT %" PRIu64 "%s",
		    size + hl, last ? " LAST" : "");
		forward_line(s, head, (size_t)n);
		if (buf_append(&s->bout, hdr, hl) < 0) {
			sess_close(s, "out of memory");
			return;
		}
		s->flags |= SF_BDAT_TX;
	} else
		forward_line(s, line, len);
	if (last)
		s->flags &= ~SF_BDAT_TX;
	if (size > 0) {
		s->bdat_left = size;
		s->in = IN_BDAT;
		s->t_content = s->t_content_last = uv_now(&s->w->loop);
	}
}

/*
 * Tell a Postfix-style backend who the client is (XCLIENT, sent only when
 * the backend offered it), once per backend connection, before the first
 * command forwarded, with what is known then (the HELO name when that
 * command is EHLO/HELO).  Its 220 is the proxy's, never relayed; until it
 * comes nothing else is sent (Postfix refuses pipelining after XCLIENT).
 * Values are xtext, so nothing from the client can add a CR, LF or space.
 */
static void
send_xclient(struct session *s, const struct smtp_cmd *cmd)
{
	char line[600], addr[INET6_ADDRSTRLEN + 8], helo[256];
	const char *h = NULL, *proto = NULL;
	size_t n;

	s->flags |= SF_XSENT;
	if (s->peer.ss_family == AF_INET6 && strchr(s->peer_addr, ':'))
		snprintf(addr, sizeof(addr), "IPV6:%s", s->peer_addr);
	else
		snprintf(addr, sizeof(addr), "%s", s->peer_addr);
	if (cmd->verb == SMTP_V_EHLO || cmd->verb == SMTP_V_HELO) {
		n = cmd->arglen < sizeof(helo) ? cmd->arglen : sizeof(helo) - 1;
		memcpy(helo, cmd->arg, n);
		helo[n] = '\0';
		h = helo;
		proto = cmd->verb == SMTP_V_EHLO ? "ESMTP" : "SMTP";
	}
	n = xclient_line(addr, s->peer_port, "[UNAVAILABLE]", h, proto, line,
	    sizeof(line));
	if (n == 0)
		return;
	if (push_backend(s, SMTP_V_XCLIENT, RS_SWALLOW) == NULL) {
		sess_close(s, "out of memory");
		return;
	}
	forward_line(s, line, n);
	flush_backend(s);
	s->flags |= SF_XHOLD;
}

static void
handle_command(struct session *s, const char *line, size_t len)
{
	struct smtp_cmd cmd;
	struct policy_verdict v;
	uint64_t size;
	int last;

	smtp_cmd_parse(line, len, &cmd);
	policy_decide(&s->lc->policy, &s->facts, &cmd, &v);

	if (v.action == POLICY_REPLY) {
		if (v.reason != PR_PROTOCOL) {
			s->refusals++;
			stats_add(&s->st->refusals[v.reason], 1);
			log_refusal(s, cmd.verb, v.code, v.enh,
			    policy_reason_name(v.reason));
		}
		reply_local(s, cmd.verb, 0, v.code, v.enh, v.text);
		/* A refused BDAT's chunk still follows: drop it, never parse
		 * it as commands (RFC 3030 §2). */
		if (cmd.verb == SMTP_V_BDAT &&
		    smtp_bdat_parse(cmd.arg, cmd.arglen, &size, &last) == 0 &&
		    size > 0) {
			s->bdat_left = size;
			s->in = IN_BDAT_DISCARD;
			s->t_content = s->t_content_last =
			    uv_now(&s->w->loop);
		}
		return;
	}
	if (v.action == POLICY_STARTTLS) {
		reply_local(s, SMTP_V_STARTTLS, RS_STARTTLS, 220, "2.0.0",
		    "Ready to start TLS");
		/* CVE-2011-0411: what follows STARTTLS is not a command. */
		s->in = IN_IGNORE;
		buf_consume(&s->cin, s->cin.len);
		return;
	}

	if ((s->flags & (SF_BE_XCLIENT | SF_XSENT | SF_BE_GONE)) ==
	    SF_BE_XCLIENT && cmd.verb != SMTP_V_QUIT) {
		send_xclient(s, &cmd);
		if (s->state == SS_CLOSED)
			return;
	}
	switch (cmd.verb) {
	case SMTP_V_EHLO:
	case SMTP_V_HELO:
		free(s->helo);
		s->helo = strndup(cmd.arg, cmd.arglen > 255 ? 255 :
		    cmd.arglen);
		if (cmd.verb == SMTP_V_EHLO)
			s->flags |= SF_ESMTP;
		else
			s->flags &= ~SF_ESMTP;
		if (s->flags & SF_TLS)
			s->facts.helo_since_tls = true;
		s->flags &= ~SF_BDAT_TX;
		forward_cmd(s, cmd.verb, 0, line, len);
		break;
	case SMTP_V_MAIL:
	case SMTP_V_RSET:
		s->flags &= ~SF_BDAT_TX;
		if (cmd.verb == SMTP_V_MAIL)
			envelope_push(s, SMTP_V_MAIL, &cmd);
		forward_cmd(s, cmd.verb, 0, line, len);
		break;
	case SMTP_V_RCPT:
		envelope_push(s, SMTP_V_RCPT, &cmd);
		forward_cmd(s, cmd.verb, 0, line, len);
		break;
	case SMTP_V_DATA:
		forward_cmd(s, SMTP_V_DATA, 0, line, len);
		s->in = IN_DATA_WAIT;
		break;
	case SMTP_V_BDAT:
		do_bdat(s, &cmd, line, len);
		break;
	case SMTP_V_QUIT:
		if ((s->flags & SF_BE_GONE) || policy_tls_insufficient(
		    &s->lc->policy, &s->facts) != PR_NONE) {
			reply_local(s, SMTP_V_QUIT, RS_CLOSE, 221, "2.0.0",
			    "Bye");
		} else
			forward_cmd(s, SMTP_V_QUIT, RS_CLOSE, line, len);
		s->in = IN_IGNORE;
		break;
	default:
		forward_cmd(s, cmd.verb, 0, line, len);
		break;
	}
}

/* One command line; returns 0 when no progress can be made now. */
static int
client_command(struct session *s)
{
	size_t linelen, consumed;
	enum smtp_parse st;
	const char *line;

	if (replyq_space(&s->rq) < 3 || (s->flags & SF_XPROBE))
		return 0;
	line = buf_data(&s->cin);
	st = smtp_frame_line(&s->framer, line, s->cin.len, &linelen,
	    &consumed);
	buf_consume(&s->cin, consumed);	/* memory stays valid until append */
	switch (st) {
	case SMTP_AGAIN:
		/* The tail of an overlong line may have been dropped, with
		 * a whole command behind it: go round again. */
		return consumed > 0;
	case SMTP_TOOLONG:
		reply_local(s, SMTP_V_UNKNOWN, 0, 500, "5.5.2",
		    "Line too long");
		break;
	case SMTP_INVALID:
		reply_local(s, SMTP_V_UNKNOWN, 0, 500, "5.5.2",
		    "Syntax error (NUL or bare CR in command)");
		break;
	case SMTP_OK:
		handle_command(s, line, linelen);
		break;
	}
	s->t_active = uv_now(&s->w->loop);
	sess_arm_timer(s);
	return 1;
}

/*
 * Message content after DATA's 354; returns 0 when nothing can be done
 * until more bytes arrive.  A CR that ends the input is held back, unread
 * by the scanner, until the next byte shows whether it starts a CRLF: a
 * backend must never get a CR that the proxy later finds bare (a legacy
 * parser may take "\r\n.\r" as the end of the message, and whatever the
 * client sends next as commands).
 */
static int
client_data(struct session *s)
{
	const char *p = buf_data(&s->cin);
	size_t n, fwd, bare_at, avail = s->cin.len;
	int ended = 0;

	if (p[avail - 1] == '\r' && --avail == 0)
		return 0;
	if (s->flags & SF_HDR_PENDING) {
		char hdr[RECEIVED_MAX];
		size_t hl;

		s->flags &= ~SF_HDR_PENDING;
		hl = make_received(s, hdr, sizeof(hdr),
		    (s->flags & SF_ESMTP) != 0);
		if (hl > 0 && buf_append(&s->bout, hdr, hl) < 0) {
			sess_close(s, "out of memory");
			return 0;
		}
	}
	if (s->tls != NULL)
		tls_set_bulk(s->tls, 1);
	s->t_content_last = uv_now(&s->w->loop);
	n = smtp_datascan_feed(&s->ds, p, avail, &ended, &bare_at);
	fwd = n;
	if (s->in == IN_DATA && bare_at != (size_t)-1 &&
	    s->lc->policy.bare_newline == BARE_NEWLINE_REJECT) {
		/* Smuggling defence: the backend gets nothing from the
		 * first bare CR/LF on, so never this message's end. */
		fwd = bare_at;
		if (fwd > 0 && p[fwd - 1] == '\r')
			fwd--;
		s->in = IN_DATA_POISONED;
		log_info("%s: bare CR or LF in message content from %s",
		    s->id, s->peer_addr);
	}
	if (s->in == IN_DATA || fwd < n) {
		/* Straight from the decrypted input to the socket. */
		if (backend_send(s, p, fwd) < 0)
			return 0;
		s->bytes_in += fwd;
		s->msg_size += fwd;
	}
	buf_consume(&s->cin, n);
	if (!ended)
		return 1;
	if (s->tls != NULL)
		tls_set_bulk(s->tls, 0);
	if (s->in == IN_DATA) {
		s->in = IN_CMD;
		s->msg_size -= s->msg_size >= 3 ? 3 : s->msg_size; /* ".\r\n" */
		if (push_backend(s, SMTP_V_DATA, RS_MSGEND) == NULL)
			sess_close(s, "out of memory");
		return 1;
	}
	/* Poisoned: refuse it and drop the backend, which still waits for
	 * the end of this message and so never completes it. */
	s->refusals++;
	stats_add(&s->st->refusals[PR_BARE_NEWLINE], 1);
	log_refusal(s, SMTP_V_DATA, 554, "5.5.2",
	    policy_reason_name(PR_BARE_NEWLINE));
	reply_local(s, SMTP_V_DATA, 0, 554, "5.5.2",
	    "Message refused: bare CR or LF in message content");
	sess_fail(s, "smuggling attempt refused",
	    "421 4.3.0 Closing connection after a refused message\r\n");
	return 1;
}

static void
client_bdat_chunk(struct session *s)
{
	size_t n = s->cin.len;

	if (n > s->bdat_left)
		n = (size_t)s->bdat_left;
	if (s->in == IN_BDAT) {
		if (buf_append(&s->bout, buf_data(&s->cin), n) < 0) {
			sess_close(s, "out of memory");
			return;
		}
		s->bytes_in += n;
		s->msg_size += n;
	}
	buf_consume(&s->cin, n);
	s->bdat_left -= n;
	s->t_content_last = uv_now(&s->w->loop);
	if (s->bdat_left == 0) {
		s->in = IN_CMD;
		s->t_wait = s->t_content_last;	/* the backend's turn */
	}
}

static void
process_client_input(struct session *s)
{
	while (s->state == SS_COMMANDS && s->cin.len > 0) {
		if (s->in != IN_IGNORE && s->in != IN_BDAT_DISCARD &&
		    s->in != IN_DATA_POISONED && backend_queued(s) > HIGH_MARK)
			break;
		switch (s->in) {
		case IN_IGNORE:
			buf_consume(&s->cin, s->cin.len);
			break;
		case IN_DATA_WAIT:
			return;
		case IN_CMD:
			/* A client that sends but never reads must not grow
			 * our output: local replies count too. */
			if (client_queued(s) > HIGH_MARK ||
			    !client_command(s))
				return;
			break;
		case IN_DATA:
		case IN_DATA_POISONED:
			if (!client_data(s))
				return;
			sess_arm_timer(s);
			break;
		case IN_BDAT:
		case IN_BDAT_DISCARD:
			client_bdat_chunk(s);
			sess_arm_timer(s);
			break;
		}
	}
	if (s->cin.len == 0)
		buf_release(&s->cin);
}

/*
 * Pull plaintext out of TLS and process it until neither makes progress:
 * ciphertext may already sit in the input BIO with the socket no longer
 * read (its cap), and no other event would come to move it.
 */
static void
client_input(struct session *s)
{
	size_t pulled, before;

	for (;;) {
		pulled = 0;
		if (s->state == SS_COMMANDS && s->tls != NULL) {
			before = s->cin.len;
			tls_pull(s);
			pulled = s->cin.len - before;
		}
		before = s->cin.len;
		process_client_input(s);
		if (s->tls == NULL || s->state != SS_COMMANDS ||
		    (pulled == 0 && s->cin.len == before))
			break;
	}
}

/* Send ready replies, in order, up to a STARTTLS or closing one. */
static void
flush_slots(struct session *s)
{
	struct reply_slot *slot;
	uint16_t flags;
	uint8_t verb;

	while (s->state != SS_CLOSED &&
	    (slot = replyq_ready_head(&s->rq)) != NULL) {
		flags = slot->flags;
		verb = slot->verb;
		if (!(flags & RS_SWALLOW)) {
			if (buf_append(&s->cout, slot->text, slot->len) < 0) {
				sess_close(s, "out of memory");
				return;
			}
			s->bytes_out += slot->len;
		}
		replyq_pop(&s->rq);
		if (flags & RS_STARTTLS) {
			sess_enter(s, SS_STARTTLS_DRAIN);
			s->in = IN_IGNORE;
			buf_consume(&s->cin, s->cin.len);
			/* Every reply owed is out: what the backend sends
			 * from now until the first command after TLS is
			 * stale (SPEC §4). */
			s->flags |= SF_STALE;
			break;
		}
		if (flags & RS_CLOSE) {
			s->flags |= SF_CLOSE_AFTER_FLUSH;
			if (verb == SMTP_V_QUIT)
				s->flags |= SF_QUIT;
			s->in = IN_IGNORE;
			sess_arm_timer(s);
			break;
		}
	}
}

/* --- reading control -------------------------------------------------- */

static void
alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct session *s = h->data;

	(void)hint;
	/* One read buffer per loop: every read callback consumes it fully
	 * before returning. */
	b->base = s->w->rdbuf;
	b->len = sizeof(s->w->rdbuf);
}

static void
update_reads(struct session *s)
{
	int want_client, want_be;

	if (s->state == SS_CLOSED || (s->flags & SF_LINGER))
		return;
	want_client = !(s->flags & (SF_CLIENT_EOF | SF_CLOSE_AFTER_FLUSH)) &&
	    (s->state >= SS_COMMANDS || s->state == SS_PROXY_HEADER) &&
	    s->cin.len < CIN_CAP &&
	    (s->tls == NULL || tls_pending_in(s->tls) < TLS_IN_CAP) &&
	    backend_queued(s) <= HIGH_MARK &&
	    !(s->state == SS_COMMANDS && s->in == IN_DATA_WAIT &&
	    s->cin.len >= CIN_CAP / 2);
	want_be = (s->flags & SF_BE_OPEN) &&
	    !(s->flags & (SF_BE_GONE | SF_BE_EOF)) &&
	    s->state >= SS_GREETING && s->bin.len < BIN_CAP &&
	    client_queued(s) <= HIGH_MARK;

	if (want_client && !(s->flags & SF_CLIENT_READING)) {
		if (uv_read_start((uv_stream_t *)&s->client, alloc_cb,
		    on_client_read) == 0)
			s->flags |= SF_CLIENT_READING;
	} else if (!want_client && (s->flags & SF_CLIENT_READING)) {
		uv_read_stop((uv_stream_t *)&s->client);
		s->flags &= ~SF_CLIENT_READING;
	}
	if (want_be && !(s->flags & SF_BE_READING)) {
		if (uv_read_start(&s->be.stream, alloc_cb,
		    on_backend_read) == 0)
			s->flags |= SF_BE_READING;
	} else if (!want_be && (s->flags & SF_BE_READING)) {
		uv_read_stop(&s->be.stream);
		s->flags &= ~SF_BE_READING;
	}
}

/* --- the pump ---------------------------------------------------------- */

/*
 * The client closed its side (all its bytes processed): may the session
 * end now?  Yes, at once, with an incomplete message (DATA content or a
 * BDAT chunk: abandoned, the backend never gets its end) and before the
 * dialogue (nothing owed); otherwise once the replies owed to commands
 * the backend already has are sent (SPEC §4 "Client gone").
 */
static int
client_gone(struct session *s)
{
	switch (s->state) {
	case SS_COMMANDS:
		break;
	case SS_BACKEND_CONNECT:
	case SS_GREETING:
		return s->cin.len == 0;	/* else commands wait for it */
	default:
		return 1;
	}
	switch (s->in) {
	case IN_DATA:
	case IN_DATA_POISONED:
	case IN_BDAT:
	case IN_BDAT_DISCARD:
		if (s->end == NULL)
			s->end = "client closed in message content";
		return 1;
	default:
		return s->rq.n == 0;
	}
}

static void
sess_pump(struct session *s)
{
	if (s->state == SS_CLOSED)
		return;
	if (s->flags & SF_PUMPING) {
		s->flags |= SF_REPUMP;
		return;
	}
	s->flags |= SF_PUMPING;
	do {
		s->flags &= ~SF_REPUMP;
		if (s->state == SS_PROXY_HEADER)
			proxy_header(s);
		if (s->state == SS_HANDSHAKE)
			do_handshake(s);
		if (s->state == SS_CLOSED)
			break;
		process_backend_input(s);
		/* EOF only once every complete reply before it was taken. */
		if ((s->flags & SF_BE_EOF) && !(s->flags & SF_BE_GONE) &&
		    s->state != SS_CLOSED &&
		    (s->bin.len == 0 || client_queued(s) <= HIGH_MARK)) {
			s->flags |= SF_BE_GONE;
			if (!(s->flags & SF_CLOSE_AFTER_FLUSH)) {
				if (s->state == SS_GREETING)
					backend_failed(s, "backend closed before "
					    "greeting", "421 4.3.0 Mail server "
					    "temporarily unavailable\r\n");
				else
					backend_failed(s, "backend closed",
					    "421 4.4.2 Connection to the mail "
					    "server lost\r\n");
			}
		}
		client_input(s);
		if (s->state != SS_STARTTLS_DRAIN && s->state != SS_HANDSHAKE)
			flush_slots(s);
		flush_backend(s);
		flush_client(s);
		if (s->state == SS_CLOSED)
			break;
		if ((s->flags & SF_CLIENT_EOF) && client_gone(s)) {
			sess_close(s, s->end ? s->end : "client closed");
			break;
		}
		if ((s->flags & SF_CLOSE_AFTER_FLUSH) && s->client_writes == 0 &&
		    client_queued(s) == 0) {
			sess_linger(s);
			break;
		}
		if (s->state == SS_STARTTLS_DRAIN && s->client_writes == 0)
			start_tls(s);
	} while ((s->flags & SF_REPUMP) && s->state != SS_CLOSED);
	s->flags &= ~SF_PUMPING;
	update_reads(s);
}

/* --- libuv callbacks --------------------------------------------------- */

static void
on_shutdown(uv_shutdown_t *req, int status)
{
	(void)req;
	(void)status;	/* the drain below or its timer ends the session */
}

/*
 * The last reply is in the kernel: send FIN after it and read (and drop)
 * what the client still sends for a moment, so that unread input does not
 * turn our close into a reset that could destroy that reply at the client
 * (a 421 to a client that pipelined, say).  Then close.
 */
static void
sess_linger(struct session *s)
{
	uv_os_fd_t fd;
	int unread = 0;

	if (s->flags & SF_LINGER)
		return;
	s->flags |= SF_LINGER;
	if (!(s->flags & SF_BE_GONE))
		backend_close(s);
	/* After QUIT's 221 the client wants nothing more (and a TLS client's
	 * close_notify may be all that is unread).  Any other last reply (a
	 * 421 the client did not ask for, say) may cross a command already
	 * on its way: a close now would answer that command with a reset,
	 * which can destroy the reply at the client, so drain even when
	 * nothing is unread yet (but not while the process stops: it must
	 * exit within shutdown_timeout). */
	if ((s->flags & (SF_CLIENT_EOF | SF_QUIT)) ||
	    uv_fileno((uv_handle_t *)&s->client, &fd) < 0 ||
	    ioctl(fd, FIONREAD, &unread) < 0 ||
	    (unread == 0 && s->w->stopping)) {
		sess_close(s, s->end ? s->end : "quit");
		return;
	}
	if (uv_shutdown(&s->shut_req, (uv_stream_t *)&s->client,
	    on_shutdown) < 0) {
		sess_close(s, s->end ? s->end : "quit");
		return;
	}
	uv_timer_start(&s->timer, on_timer, DRAIN_LINGER * 1000, 0);
	if (!(s->flags & SF_CLIENT_READING) && uv_read_start(
	    (uv_stream_t *)&s->client, alloc_cb, on_client_read) == 0)
		s->flags |= SF_CLIENT_READING;
}

static void
on_client_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
	struct session *s = st->data;

	if (nread == 0 || s->state == SS_CLOSED)
		return;
	if (s->flags & SF_LINGER) {
		if (nread < 0)
			sess_close(s, s->end ? s->end : "quit");
		return;
	}
	if (nread < 0) {
		if (nread != UV_EOF) {
			/* A reset: no reply can reach it any more. */
			log_debug("%s: client read: %s", s->id,
			    uv_strerror((int)nread));
			if (s->state == SS_HANDSHAKE)
				stats_add(&s->st->hs_failed[HSF_CLOSED], 1);
			sess_close(s, "client reset");
			return;
		}
		s->flags |= SF_CLIENT_EOF;
		if (s->state == SS_HANDSHAKE) {
			stats_add(&s->st->hs_failed[HSF_CLOSED], 1);
			sess_close(s, "client closed during handshake");
			return;
		}
		sess_pump(s);
		return;
	}
	if (s->state == SS_STARTTLS_DRAIN) {
		/* Sent after STARTTLS, before our 220: never a command. */
		log_debug("%s: dropped %zd bytes sent after STARTTLS", s->id,
		    nread);
		return;
	}
	if (s->tls != NULL) {
		if (tls_feed(s->tls, b->base, (size_t)nread) < 0) {
			sess_close(s, "out of memory");
			return;
		}
	} else if (buf_append(&s->cin, b->base, (size_t)nread) < 0) {
		sess_close(s, "out of memory");
		return;
	}
	sess_pump(s);
}

static void
on_backend_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
	struct session *s = st->data;

	if (nread == 0 || s->state == SS_CLOSED)
		return;
	if (nread < 0) {
		s->flags |= SF_BE_EOF;
		if (s->flags & SF_BE_READING) {
			uv_read_stop(st);
			s->flags &= ~SF_BE_READING;
		}
		sess_pump(s);
		return;
	}
	if (buf_append(&s->bin, b->base, (size_t)nread) < 0) {
		sess_close(s, "out of memory");
		return;
	}
	sess_pump(s);
}

static void
on_timer(uv_timer_t *t)
{
	struct session *s = t->data;

	if (s->flags & (SF_CLOSE_AFTER_FLUSH | SF_LINGER)) {
		sess_close(s, s->end ? s->end : "close timeout");
		return;
	}
	switch (s->state) {
	case SS_PROXY_HEADER:
		log_info("%s: no PROXY header from %s within %d s", s->id,
		    s->peer_addr, PROXY_TIMEOUT);
		sess_close(s, "PROXY header timeout");
		break;
	case SS_BACKEND_CONNECT:
	case SS_GREETING:
		log_warnx("%s: backend %s: %s timeout", s->id,
		    s->lc->backend.address.text, s->state == SS_GREETING ?
		    "greeting" : "connect");
		backend_failed(s, "backend timeout",
		    "421 4.3.0 Mail server temporarily unavailable\r\n");
		break;
	case SS_HANDSHAKE:
		stats_add(&s->st->hs_failed[HSF_TIMEOUT], 1);
		sess_close(s, "handshake timeout");
		break;
	case SS_COMMANDS:
	case SS_STARTTLS_DRAIN:
		switch (s->tk) {
		case TK_REPLY:
			log_warnx("%s: backend %s: reply timeout", s->id,
			    s->lc->backend.address.text);
			backend_failed(s, "backend reply timeout",
			    "421 4.4.2 Mail server timeout\r\n");
			break;
		case TK_PAUSE:
			sess_fail(s, "idle timeout in message content",
			    "421 4.4.2 Idle timeout, closing connection\r\n");
			break;
		case TK_CONTENT:
			log_info("%s: message content from %s took longer than "
			    "%d s", s->id, s->peer_addr,
			    s->lc->limits.data_timeout);
			sess_fail(s, "data timeout",
			    "421 4.4.2 Message took too long, closing "
			    "connection\r\n");
			break;
		case TK_IDLE:
			sess_fail(s, "idle timeout",
			    "421 4.4.2 Idle timeout, closing connection\r\n");
			break;
		}
		break;
	case SS_CLOSED:
		break;
	}
}

/* Seconds a backend may take to answer a command (RFC 5321 §4.5.3.2). */
static uint64_t
reply_timeout(const struct reply_slot *slot)
{
	if (slot->flags & (RS_MSGEND | RS_GREETING))
		return (slot->flags & RS_MSGEND) ? 600 : 300;
	switch (slot->verb) {
	case SMTP_V_DATA:
		return 120;
	case SMTP_V_BDAT:
		return 600;	/* a chunk's reply is an end-of-data reply */
	default:
		return 300;
	}
}

/*
 * (Re)start the one timer for what the session waits for now.  In the
 * dialogue: inside message content, the longest pause (idle_timeout) and
 * the whole content (data_timeout) run; else the backend's reply to the
 * oldest command still waiting, measured from when the backend got its
 * turn (RFC 5321 §4.5.3.2); else the client's next complete command.
 */
static void
sess_arm_timer(struct session *s)
{
	const struct reply_slot *slot;
	uint64_t secs, now, at, at2;

	if (s->flags & SF_CLOSE_AFTER_FLUSH) {
		uv_timer_start(&s->timer, on_timer, CLOSE_LINGER * 1000, 0);
		return;
	}
	switch (s->state) {
	case SS_PROXY_HEADER:
		secs = PROXY_TIMEOUT;
		break;
	case SS_BACKEND_CONNECT:
		secs = (uint64_t)s->lc->backend.connect_timeout;
		break;
	case SS_GREETING:
		secs = 300;
		break;
	case SS_HANDSHAKE:
		secs = (uint64_t)s->lc->tls.handshake_timeout;
		break;
	case SS_CLOSED:
		return;
	case SS_COMMANDS:
	case SS_STARTTLS_DRAIN:
	default:
		now = uv_now(&s->w->loop);
		switch (s->in) {
		case IN_DATA:
		case IN_DATA_POISONED:
		case IN_BDAT:
		case IN_BDAT_DISCARD:
			at = s->t_content_last +
			    (uint64_t)s->lc->limits.idle_timeout * 1000;
			at2 = s->t_content +
			    (uint64_t)s->lc->limits.data_timeout * 1000;
			s->tk = at <= at2 ? TK_PAUSE : TK_CONTENT;
			if (at2 < at)
				at = at2;
			break;
		default:
			if ((slot = replyq_waiting(&s->rq)) != NULL) {
				at = s->t_wait + reply_timeout(slot) * 1000;
				s->tk = TK_REPLY;
			} else {
				at = s->t_active +
				    (uint64_t)s->lc->limits.idle_timeout * 1000;
				s->tk = TK_IDLE;
			}
			break;
		}
		uv_timer_start(&s->timer, on_timer, at > now ? at - now : 0,
		    0);
		return;
	}
	uv_timer_start(&s->timer, on_timer, secs * 1000, 0);
}

/* --- lifecycle --------------------------------------------------------- */

static void
on_handle_closed(uv_handle_t *h)
{
	struct session *s = h->data;

	if (--s->handles > 0)
		return;
	if (s->tls != NULL)
		tls_conn_free(s->tls);
	replyq_free(&s->rq);
	free(s->cin.p);
	free(s->bin.p);
	free(s->cout.p);
	free(s->bout.p);
	free(s->helo);
	envelope_free(s);
	cfg_unref(s->cfg);
	free(s);
}

static void
sess_log(struct session *s)
{
	char msgs[16], bin[24], bout[24], refs[16], dur[24];
	uint64_t ms = uv_now(&s->w->loop) - s->start_ms;
	int tls = (s->flags & SF_TLS) != 0;
	const char *sni = s->tls != NULL ? tls_conn_sni(s->tls) : NULL;

	snprintf(msgs, sizeof(msgs), "%u", s->messages);
	snprintf(bin, sizeof(bin), "%" PRIu64, s->bytes_in);
	snprintf(bout, sizeof(bout), "%" PRIu64, s->bytes_out);
	snprintf(refs, sizeof(refs), "%u", s->refusals);
	snprintf(dur, sizeof(dur), "%" PRIu64 ".%03u", ms / 1000,
	    (unsigned)(ms % 1000));
	log_kv(LOG_INFO, "session",
	    "id", s->id,
	    "client", s->peer_addr,
	    "#client_port", s->peer_port,
	    "listener", s->lc->name,
	    "helo", s->helo ? s->helo : "-",
	    "sni", sni ? sni : "-",
	    "cert", tls && s->tinfo.cert_name ? s->tinfo.cert_name : "-",
	    "cert_key", tls && s->tinfo.cert_keytype ? s->tinfo.cert_keytype :
		"-",
	    "tls", tls ? s->tinfo.version : "-",
	    "cipher", tls ? s->tinfo.cipher : "-",
	    "client_cert", tls && s->tinfo.client_subject[0] ?
		s->tinfo.client_subject : "-",
	    "backend", s->lc->backend.address.text,
	    "#messages", msgs,
	    "#bytes_in", bin,
	    "#bytes_out", bout,
	    "#refusals", refs,
	    "end", s->end ? s->end : "closed",
	    "#duration", dur,
	    (char *)NULL);
}

static void
sess_close(struct session *s, const char *why)
{
	struct worker *w = s->w;

	if (s->state == SS_CLOSED)
		return;
	if (s->end == NULL)
		s->end = why;
	if (s->flags & SF_PREHEADER)
		w->n_preheader--;
	sess_enter(s, SS_CLOSED);
	if (s->unsol_replies > 0 || s->stale_bytes > 0)
		log_info("%s: dropped backend output nobody asked for: %u "
		    "unsolicited replies (%" PRIu64 " bytes), %" PRIu64
		    " bytes sent before the TLS handshake", s->id,
		    s->unsol_replies, s->unsol_bytes, s->stale_bytes);
	sess_log(s);
	stats_add(&s->st->conn_active, (uint64_t)-1);
	stats_add(&s->st->bytes_in, s->bytes_in);
	stats_add(&s->st->bytes_out, s->bytes_out);
	if (s->flags & SF_COUNTED)
		limits_release(s->limits, (struct sockaddr *)&s->peer);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		w->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	w->n_sessions--;

	uv_close((uv_handle_t *)&s->client, on_handle_closed);
	uv_close((uv_handle_t *)&s->timer, on_handle_closed);
	if ((s->flags & SF_BE_OPEN) && !uv_is_closing(&s->be.handle))
		uv_close(&s->be.handle, on_handle_closed);
	worker_session_gone(w);
}

/* Text forms of an address for logs, XCLIENT and Received. */
static void
addr_text(const struct sockaddr_storage *ss, char *addr, size_t addrlen,
    char *port, size_t portlen)
{
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
	const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;

	addr[0] = '\0';
	if (ss->ss_family == AF_INET6) {
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
			inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], addr,
			    (socklen_t)addrlen);
		else
			inet_ntop(AF_INET6, &sin6->sin6_addr, addr,
			    (socklen_t)addrlen);
		snprintf(port, portlen, "%u", ntohs(sin6->sin6_port));
	} else if (ss->ss_family == AF_INET) {
		inet_ntop(AF_INET, &sin->sin_addr, addr, (socklen_t)addrlen);
		snprintf(port, portlen, "%u", ntohs(sin->sin_port));
	} else {
		snprintf(addr, addrlen, "unknown");
		snprintf(port, portlen, "0");
	}
}

static void
on_backend_connect(uv_connect_t *req, int status)
{
	struct session *s = req->data;
	char hdr[PROXY_HDR_MAX];
	struct proxy_tls pt, *ptp = NULL;
	size_t n;

	if (s->state == SS_CLOSED || (s->flags & SF_BE_GONE))
		return;
	if (status < 0) {
		log_warnx("%s: backend %s: %s", s->id,
		    s->lc->backend.address.text, uv_strerror(status));
		backend_failed(s, "backend unavailable",
		    "421 4.3.0 Mail server temporarily unavailable\r\n");
		return;
	}
	if (s->lc->backend.address.is_unix == 0)
		uv_tcp_nodelay(&s->be.tcp, 1);
	if (s->lc->backend.proxy_protocol != PROXY_OUT_NONE) {
		if (s->flags & SF_TLS) {	/* implicit TLS: facts known */
			memset(&pt, 0, sizeof(pt));
			pt.version = s->tinfo.version;
			pt.cipher = s->tinfo.cipher;
			pt.sni = s->tinfo.sni;
			pt.client_cn = s->tinfo.client_cn[0] ?
			    s->tinfo.client_cn : NULL;
			pt.client_cert_verified = s->tinfo.client_verified;
			ptp = &pt;
		}
		n = proxy_encode(s->lc->backend.proxy_protocol ==
		    PROXY_OUT_V1 ? 1 : 2, (struct sockaddr *)&s->peer,
		    (struct sockaddr *)&s->local, ptp, hdr, sizeof(hdr));
		if (n == 0 || buf_append(&s->bout, hdr, n) < 0) {
			backend_failed(s, "backend PROXY header failed",
			    "421 4.3.0 Mail server temporarily unavailable\r\n");
			return;
		}
	}
	sess_enter(s, SS_GREETING);
	sess_arm_timer(s);
	sess_pump(s);
}

static int
backend_connect(struct session *s)
{
	const struct cfg_addr *a = &s->lc->backend.address;
	int r;

	s->be_req.data = s;
	if (a->is_unix) {
		if ((r = uv_pipe_init(&s->w->loop, &s->be.pipe, 0)) < 0)
			return r;
		s->be.handle.data = s;
		s->handles++;
		s->flags |= SF_BE_OPEN;
		uv_pipe_connect(&s->be_req, &s->be.pipe, a->unix_path,
		    on_backend_connect);
		return 0;
	}
	if ((r = uv_tcp_init(&s->w->loop, &s->be.tcp)) < 0)
		return r;
	s->be.handle.data = s;
	s->handles++;
	s->flags |= SF_BE_OPEN;
	return uv_tcp_connect(&s->be_req, &s->be.tcp,
	    (const struct sockaddr *)&a->ss, on_backend_connect);
}

/* Connect to the backend; its greeting will fill the first slot. */
static void
backend_start(struct session *s)
{
	int r;

	sess_enter(s, SS_BACKEND_CONNECT);
	if (push_backend(s, SMTP_V_UNKNOWN, RS_GREETING) == NULL) {
		sess_close(s, "out of memory");
		return;
	}
	if ((r = backend_connect(s)) < 0) {
		log_warnx("%s: backend %s: %s", s->id,
		    s->lc->backend.address.text, uv_strerror(r));
		backend_failed(s, "backend unavailable",
		    "421 4.3.0 Mail server temporarily unavailable\r\n");
		return;
	}
	sess_arm_timer(s);
}

/*
 * The client's address is known (from the socket or a PROXY header):
 * apply the limits, then TLS first (implicit) or the backend (STARTTLS).
 */
static void
sess_begin(struct session *s)
{
	int implicit = s->lc->tls_mode == TLS_MODE_IMPLICIT;

	addr_text(&s->peer, s->peer_addr, sizeof(s->peer_addr), s->peer_port,
	    sizeof(s->peer_port));
	if (s->w->stopping) {
		if (implicit) {
			sess_close(s, "shutting down");
			return;
		}
		s->state = SS_COMMANDS;
		sess_fail(s, "shutting down",
		    "421 4.3.2 Service shutting down, try again later\r\n");
		return;
	}
	if (limits_take(s->limits, s->lc, (struct sockaddr *)&s->peer) < 0) {
		log_info("%s: too many connections from %s on %s", s->id,
		    s->peer_addr, s->lc->name);
		stats_add(&s->st->conn_rejected_limit, 1);
		if (implicit) {		/* no plaintext on a TLS port */
			sess_close(s, "too many connections");
			return;
		}
		s->state = SS_COMMANDS;
		sess_fail(s, "too many connections",
		    "421 4.7.0 Too many connections, try again later\r\n");
		return;
	}
	s->flags |= SF_COUNTED;
	if (!implicit) {
		backend_start(s);
		return;
	}
	if ((s->tls = tls_conn_new(s->cfg->tls, s->li)) == NULL) {
		sess_close(s, "tls setup failed");
		return;
	}
	/* Bytes after a PROXY header are the start of the ClientHello. */
	if (s->cin.len > 0 && tls_feed(s->tls, buf_data(&s->cin),
	    s->cin.len) < 0) {
		sess_close(s, "out of memory");
		return;
	}
	buf_consume(&s->cin, s->cin.len);
	sess_enter(s, SS_HANDSHAKE);
	s->hs_start_ms = uv_now(&s->w->loop);
	sess_arm_timer(s);
	sess_pump(s);		/* starts reading the client */
}

/* A load balancer's PROXY header: strict, bounded, else close silently. */
static void
proxy_header(struct session *s)
{
	struct proxy_hdr h;

	switch (proxy_parse(buf_data(&s->cin), s->cin.len, &h)) {
	case PROXY_AGAIN:
		if (s->cin.len > PROXY_MAX)
			sess_close(s, "bad PROXY header");
		return;
	case PROXY_INVALID:
		log_info("%s: bad PROXY header from %s", s->id, s->peer_addr);
		sess_close(s, "bad PROXY header");
		return;
	case PROXY_OK:
		break;
	}
	buf_consume(&s->cin, h.len);
	s->flags &= ~SF_PREHEADER;
	s->w->n_preheader--;
	if (!h.local) {
		s->peer = h.src;
		s->local = h.dst;
	}
	sess_begin(s);
}

/*
 * Session ids are unique across restarts and across copies behind one
 * load balancer: the process's start time (seconds) and 16 random bits,
 * then the worker and its counter.  20 hex digits, in logs and Received.
 */
static pthread_once_t	id_once = PTHREAD_ONCE_INIT;
static uint32_t		id_time;
static uint16_t		id_rand;

static void
session_id_init(void)
{
	uint16_t r = 0;

	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
		r = (uint16_t)(getpid() ^ (uintptr_t)&r);
	id_time = (uint32_t)time(NULL);
	id_rand = r;
}

static void
session_id(char *out, size_t size, unsigned worker, uint64_t n)
{
	(void)pthread_once(&id_once, session_id_init);
	snprintf(out, size, "%08" PRIx32 "%04x%02x%06" PRIx64, id_time,
	    (unsigned)id_rand, worker & 0xff, n);
}

void
session_accept(struct lsn *l, int fd)
{
	struct worker *w = l->w;
	struct session *s;
	int len;

	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    replyq_init(&s->rq, REPLYQ_CAP) < 0) {
		free(s);
		worker_refuse(l, fd, REFUSE_MEMORY);
		return;
	}
	s->w = w;
	s->cfg = cfg_ref(w->cfg);
	s->li = l->li;
	s->lc = &s->cfg->listeners[l->li];
	s->limits = l->sh->limits;
	s->st = &l->sh->shards[w->index];
	stats_add(&s->st->conn_total, 1);
	stats_add(&s->st->conn_active, 1);
	s->start_ms = uv_now(&w->loop);
	session_id(s->id, sizeof(s->id), w->index, ++w->next_id);
	smtp_framer_init(&s->framer, (size_t)s->lc->limits.max_line);
	s->facts.cert_available = s->lc->tls_mode == TLS_MODE_STARTTLS &&
	    tls_listener_has_cert(s->cfg->tls, s->li);

	uv_tcp_init(&w->loop, &s->client);
	s->client.data = s;
	s->handles++;
	uv_timer_init(&w->loop, &s->timer);
	s->timer.data = s;
	s->handles++;
	s->next = w->sessions;
	if (w->sessions != NULL)
		w->sessions->prev = s;
	w->sessions = s;
	w->n_sessions++;

	if (uv_tcp_open(&s->client, fd) < 0) {
		close(fd);
		sess_close(s, "accept failed");
		return;
	}
	len = sizeof(s->peer);
	uv_tcp_getpeername(&s->client, (struct sockaddr *)&s->peer, &len);
	if (s->lc->backend.proxy_protocol != PROXY_OUT_NONE) {	/* only user */
		len = sizeof(s->local);
		uv_tcp_getsockname(&s->client, (struct sockaddr *)&s->local,
		    &len);
	}
	uv_tcp_nodelay(&s->client, 1);
	if (s->lc->proxy_protocol) {
		addr_text(&s->peer, s->peer_addr, sizeof(s->peer_addr),
		    s->peer_port, sizeof(s->peer_port));
		/* The limits count real clients, known only from the header;
		 * until then this worker holds at most max_connections. */
		if (w->n_preheader >= (size_t)s->lc->limits.max_connections) {
			stats_add(&s->st->conn_rejected_limit, 1);
			sess_close(s, "too many connections without PROXY header");
			return;
		}
		w->n_preheader++;
		s->flags |= SF_PREHEADER;
		s->state = SS_PROXY_HEADER;
		sess_arm_timer(s);
		update_reads(s);
		return;
	}
	sess_begin(s);
}

void
session_shutdown(struct session *s)
{
	if (s->state == SS_CLOSED)
		return;
	if (s->state == SS_PROXY_HEADER ||
	    (s->state == SS_HANDSHAKE && !(s->flags & SF_BE_OPEN))) {
		sess_close(s, "shutdown");
		return;
	}
	if (s->state == SS_BACKEND_CONNECT || s->state == SS_GREETING)
		s->state = SS_COMMANDS;
	sess_fail(s, "shutdown",
	    "421 4.3.2 Service shutting down, try again later\r\n");
	if (s->state != SS_CLOSED)
		sess_arm_timer(s);
}

void
session_abort(struct session *s, const char *why)
{
	sess_close(s, why);
}

struct session *
session_next(struct session *s)
{
	return s->next;
}
