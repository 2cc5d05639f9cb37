/*
 * session - one client connection: the transport around the dialogue.
 *
 * The only file that sees the client socket, TLS and the backend together,
 * and it knows no SMTP: the dialogue is smtp_relay's (pure), the backend
 * leg is backend.c's.  Here: accept, the PROXY header, limits, the TLS
 * glue, timers, the linger before close, and the pump.  libuv callbacks
 * only translate (bytes in, write done, timer, EOF) and call sess_pump(),
 * which decides everything in one place: advance the handshake, pull
 * plaintext out of TLS, give backend bytes and client bytes to the relay
 * step by step and act on its events (sess_apply), send ready replies,
 * and finally choose which sides to read (update_reads).
 *
 * Invariants:
 *  - message content goes from the (decrypted) input straight to the
 *    backend socket, after whatever the relay queued before it;
 *  - STARTTLS: once our 220 is out, client bytes are dropped until the
 *    handshake, which starts only when the 220 has left (CVE-2011-0411);
 *  - every buffer is bounded; a full one stops reading from its source;
 *  - every state change goes through sess_enter().
 * After sess_close() the session is SS_CLOSED and is freed from the last
 * handle's close callback, never earlier: code that may close checks the
 * state and returns without further work.
 */
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "buf.h"
#include "log.h"
#include "proxyproto.h"
#include "session.h"
#include "smtp_relay.h"
#include "stats.h"
#include "tls.h"
#include "worker.h"

#define CIN_CAP		(64 * 1024)	/* client plaintext not yet processed */
#define BIN_CAP		(64 * 1024)	/* backend bytes not yet framed */
#define HIGH_MARK	(256 * 1024)	/* queued toward one side: stop the other */
#define TLS_IN_CAP	(64 * 1024)	/* ciphertext not yet decrypted */
#define STALE_DRAIN_MAX	(4 * 1024 * 1024) /* stale bytes read at once, at most */
#define CLOSE_LINGER	5		/* seconds to flush a last reply */
#define DRAIN_LINGER	2		/* seconds to read the client's last bytes */
#define PROXY_TIMEOUT	10		/* seconds for a PROXY header (SPEC §3) */
#define PROXY_MAX	(16 + 1024)	/* bytes of a PROXY header, at most */

_Static_assert(RELAY_LOG_INFO == LOG_INFO, "relay log level");

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

#define SF_TLS			0x0001
#define SF_CLIENT_EOF		0x0002
#define SF_CLIENT_READING	0x0004
#define SF_CLOSE_AFTER_FLUSH	0x0008
#define SF_PUMPING		0x0010
#define SF_REPUMP		0x0020
#define SF_COUNTED		0x0040	/* holds a connection limit slot */
#define SF_TLS_SHUT		0x0080	/* close_notify queued */
#define SF_LINGER		0x0100	/* last reply sent: FIN, drain, close */
#define SF_QUIT			0x0200	/* that last reply answered QUIT */
#define SF_PREHEADER		0x0400	/* counted in w->n_preheader */

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
	unsigned		 flags;

	uv_tcp_t		 client;
	uv_shutdown_t		 shut_req;
	uv_timer_t		 timer;
	int			 handles;	/* open libuv handles */
	int			 client_writes;	/* uv_write requests in flight */

	struct tls_conn		*tls;
	struct tls_info		 tinfo;
	struct smtp_relay	 r;		/* the dialogue */
	struct backend		 be;		/* its in/out are the backend's
						   queues; the relay writes out */
	struct buf		 cin;		/* client plaintext, unprocessed */
	struct buf		 cout;		/* replies to send (plaintext) */

	struct sockaddr_storage	 peer;		/* the client (PROXY-in's source) */
	struct sockaddr_storage	 local;		/* where it connected to */
	char			 peer_addr[INET6_ADDRSTRLEN];
	char			 peer_port[8];
	const char		*end;		/* how it ended, for the log */
	uint64_t		 start_ms;
	uint64_t		 hs_start_ms;
};

static const struct relay_log sess_relay_log = {
	log_warnx, log_info, log_kv
};

static void	sess_pump(struct session *);
static void	sess_close(struct session *, const char *);
static void	sess_fail(struct session *, const char *, const char *);
static void	backend_failed(struct session *, const char *, const char *);
static void	sess_arm_timer(struct session *);
static void	on_client_read(uv_stream_t *, ssize_t, const uv_buf_t *);
static void	on_handle_closed(uv_handle_t *);
static void	backend_start(struct session *);
static void	sess_linger(struct session *);
static void	on_timer(uv_timer_t *);
static void	alloc_cb(uv_handle_t *, size_t, uv_buf_t *);
static void	proxy_header(struct session *);
static void	stale_drain(struct session *);

static void
sess_enter(struct session *s, enum sess_state st)
{
	if (s->state == st)
		return;
	log_debug("%s: %s -> %s", s->id, sess_state_names[s->state],
	    sess_state_names[st]);
	s->state = st;
}

/* --- writing --------------------------------------------------------- */

static void
on_client_written(uv_write_t *req, int status)
{
	struct session *s = stream_req_data(req);

	free(req);		/* the bytes live behind it */
	s->client_writes--;
	if (s->state == SS_CLOSED)
		return;
	if (status < 0) {
		log_info("%s: write to client %s: %s", s->id, s->peer_addr,
		    uv_strerror(status));
		sess_close(s, "client write error");
		return;
	}
	sess_pump(s);
}

static int
client_send(struct session *s, const char *p, size_t len)
{
	int r;

	r = stream_send((uv_stream_t *)&s->client, p, len, on_client_written,
	    s, s->id, "client");
	if (r > 0)
		s->client_writes++;
	return r < 0 ? -1 : 0;
}

/* Move TLS output (handshake records, encrypted replies) to the socket,
 * through the worker's scratch buffer. */
static int
flush_tls_out(struct session *s)
{
	size_t n;

	while (s->tls != NULL && tls_pending_out(s->tls) > 0) {
		n = tls_take_out(s->tls, s->w->wrbuf, sizeof(s->w->wrbuf));
		if (n == 0 || client_send(s, s->w->wrbuf, n) < 0)
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
		} else if (client_send(s, buf_data(&s->cout),
		    s->cout.len) < 0) {
			sess_close(s, "client write error");
			return;
		}
		buf_consume(&s->cout, s->cout.len);
		buf_release(&s->cout);
	}
	if (flush_tls_out(s) < 0)
		sess_close(s, "client write error");
}

/* Can bytes be written to the backend (connecting, up, or half-closed)? */
static int
backend_writable(const struct session *s)
{
	switch (s->be.state) {
	case BE_CONNECTING:
	case BE_OPEN:
	case BE_EOF:
		return 1;
	case BE_NONE:
	case BE_CLOSED:
		break;
	}
	return 0;
}

/* Send what the relay queued for the backend, then p[0..len) (message
 * content, not copied); -1 when the backend is gone or just failed. */
static int
backend_out(struct session *s, const char *p, size_t len)
{
	if (s->state == SS_CLOSED)
		return -1;
	if (!backend_writable(s)) {
		buf_consume(&s->be.out, s->be.out.len);
		buf_release(&s->be.out);
		return -1;
	}
	if (backend_send(&s->be, p, len, s->id) < 0) {
		backend_failed(s, "backend write error", R421_LOST);
		return -1;
	}
	return 0;
}

static void
flush_backend(struct session *s)
{
	if (s->be.out.len > 0)
		(void)backend_out(s, NULL, 0);
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
backend_queued_all(struct session *s)
{
	return backend_queued(&s->be) + s->r.held.len;
}

/* --- the relay's steps ------------------------------------------------- */

static void
sess_step_init(struct session *s, struct relay_in *in, struct relay_out *out)
{
	in->ms = uv_now(&s->w->loop);
	in->now = time(NULL);
	in->client_full = client_queued(s) > HIGH_MARK;
	in->backend_full = backend_queued_all(s) > HIGH_MARK;
	memset(out, 0, sizeof(*out));
	out->to_backend = &s->be.out;
	out->to_client = &s->cout;
}

/*
 * Act on what one relay step asked for, in this order: its bytes go
 * behind what is queued, failure last.  Returns 0 when the caller must
 * stop (closed, or failing: nothing more is read).
 */
static int
sess_apply(struct session *s, const struct relay_out *out)
{
	unsigned ev = out->ev;

	if (ev & RELAY_EV_OOM) {
		sess_close(s, "out of memory");
		return 0;
	}
	if (ev & RELAY_EV_GREETING)
		sess_enter(s, SS_COMMANDS);
	if (ev & RELAY_EV_DRAIN)
		stale_drain(s);
	if (s->tls != NULL && (ev & RELAY_EV_BULK_ON))
		tls_set_bulk(s->tls, 1);
	if (out->fwd != NULL && backend_out(s, out->fwd, out->fwd_len) < 0)
		return 0;
	if (s->tls != NULL && (ev & RELAY_EV_BULK_OFF))
		tls_set_bulk(s->tls, 0);
	if (ev & RELAY_EV_STARTTLS) {
		sess_enter(s, SS_STARTTLS_DRAIN);
		buf_consume(&s->cin, s->cin.len);
	}
	if (ev & RELAY_EV_CLOSE)
		s->flags |= SF_CLOSE_AFTER_FLUSH |
		    ((ev & RELAY_EV_QUIT) ? SF_QUIT : 0);
	if (ev & RELAY_EV_FAIL) {
		if (out->backend_fault)
			backend_failed(s, out->why, out->reply);
		else
			sess_fail(s, out->why, out->reply);
		return 0;
	}
	if (s->state == SS_CLOSED)
		return 0;
	if (ev & RELAY_EV_REARM)
		sess_arm_timer(s);
	return 1;
}

/* --- failure paths --------------------------------------------------- */

static void
backend_gone(struct session *s)
{
	backend_close(&s->be);
	relay_backend_gone(&s->r);
}

/*
 * The session cannot go on (backend lost, shutdown, smuggling): answer
 * reply (a complete "421 ..." line) in the slot that waits for the backend,
 * or after the replies already given, then close.  Never a 2xx.
 */
static void
sess_fail(struct session *s, const char *why, const char *reply)
{
	if (s->state == SS_CLOSED || (s->flags & SF_CLOSE_AFTER_FLUSH))
		return;
	if (s->end == NULL)
		s->end = why;
	log_debug("%s: %s", s->id, why);
	backend_gone(s);
	buf_consume(&s->cin, s->cin.len);
	switch (s->state) {
	case SS_HANDSHAKE:
	case SS_STARTTLS_DRAIN:
		sess_close(s, why);
		return;
	default:
		break;
	}
	switch (relay_fail(&s->r, reply)) {
	case -1:
		sess_close(s, "out of memory");
		return;
	case -2:
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
	struct relay_tls t;
	struct relay_in in;
	struct relay_out out;

	tls_get_info(s->tls, &s->tinfo);
	stats_add(&s->st->hs_ok, 1);
	stats_hs_observe(s->st,
	    (double)(uv_now(&s->w->loop) - s->hs_start_ms) / 1000.0);
	s->flags |= SF_TLS;
	memset(&t, 0, sizeof(t));
	t.version = s->tinfo.version;
	t.version_num = s->tinfo.version_num;
	t.cipher = s->tinfo.cipher;
	t.cipher_bits = s->tinfo.cipher_bits;
	t.sni = s->tinfo.sni;
	t.client_subject = s->tinfo.client_subject[0] ?
	    s->tinfo.client_subject : NULL;
	t.client_verified = s->tinfo.client_verified;
	sess_step_init(s, &in, &out);
	relay_tls_done(&s->r, &t, &in);
	buf_consume(&s->be.in, s->be.in.len);
	if (s->be.state == BE_NONE) {		/* implicit TLS: now the backend */
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

/* --- input ------------------------------------------------------------- */

static void
backend_input(struct session *s)
{
	struct relay_in in;
	struct relay_out out;
	size_t used;
	int more;

	while (s->state != SS_CLOSED && s->be.in.len > 0 &&
	    s->be.state != BE_CLOSED) {
		sess_step_init(s, &in, &out);
		more = relay_backend_step(&s->r, &in, buf_data(&s->be.in),
		    s->be.in.len, &used, &out);
		buf_consume(&s->be.in, used);
		if (!sess_apply(s, &out) || !more)
			break;
	}
	if (s->be.in.len == 0)
		buf_release(&s->be.in);
}

/* The backend closed: once every complete reply before it was taken, the
 * session fails (unless its last reply is already on its way). */
static void
backend_eof(struct session *s)
{
	if (s->be.state != BE_EOF || s->state == SS_CLOSED ||
	    (s->be.in.len > 0 && client_queued(s) > HIGH_MARK))
		return;
	if (s->flags & SF_CLOSE_AFTER_FLUSH)
		backend_gone(s);
	else if (s->state == SS_GREETING)
		backend_failed(s, "backend closed before greeting",
		    R421_UNAVAILABLE);
	else
		backend_failed(s, "backend closed", R421_LOST);
}

/*
 * The first command after TLS is about to leave: whatever the backend sent
 * before it is stale, read or not (SPEC §4).  Drop what is buffered and
 * what still sits unread in the socket, read here until it would block;
 * what arrives later is a reply or counted as unsolicited.
 */
static void
stale_drain(struct session *s)
{
	size_t total;

	relay_stale(&s->r, s->be.in.len);
	buf_consume(&s->be.in, s->be.in.len);
	total = backend_drain(&s->be, s->w->rdbuf, sizeof(s->w->rdbuf),
	    STALE_DRAIN_MAX);
	relay_stale(&s->r, total);
	if (total >= STALE_DRAIN_MAX)
		backend_failed(s, "backend keeps sending unsolicited output",
		    R421_PROTOCOL);
}

static void
process_client_input(struct session *s)
{
	struct relay_in in;
	struct relay_out out;
	size_t used;
	int more;

	while (s->state == SS_COMMANDS && s->cin.len > 0) {
		sess_step_init(s, &in, &out);
		more = relay_client_step(&s->r, &in, buf_data(&s->cin),
		    s->cin.len, &used, &out);
		/* out.fwd points into cin: sent before cin moves. */
		if (!sess_apply(s, &out))
			break;
		buf_consume(&s->cin, used);
		if (!more)
			break;
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
	struct relay_in in;
	struct relay_out out;

	if (s->state == SS_CLOSED)
		return;
	sess_step_init(s, &in, &out);
	relay_flush(&s->r, &out);
	(void)sess_apply(s, &out);
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

/* Does this state read the client at all (else: the backend first)? */
static int
state_reads_client(enum sess_state st)
{
	switch (st) {
	case SS_PROXY_HEADER:
	case SS_COMMANDS:
	case SS_STARTTLS_DRAIN:
	case SS_HANDSHAKE:
		return 1;
	case SS_BACKEND_CONNECT:
	case SS_GREETING:
	case SS_CLOSED:
		break;
	}
	return 0;
}

/* Does this state read the backend (once it is connected)? */
static int
state_reads_backend(enum sess_state st)
{
	switch (st) {
	case SS_GREETING:
	case SS_COMMANDS:
	case SS_STARTTLS_DRAIN:
	case SS_HANDSHAKE:
		return 1;
	case SS_PROXY_HEADER:
	case SS_BACKEND_CONNECT:
	case SS_CLOSED:
		break;
	}
	return 0;
}

/* The only place that starts or stops reading (but the linger). */
static void
update_reads(struct session *s)
{
	int want_client, want_be;

	if (s->state == SS_CLOSED || (s->flags & SF_LINGER))
		return;
	want_client = !(s->flags & (SF_CLIENT_EOF | SF_CLOSE_AFTER_FLUSH)) &&
	    state_reads_client(s->state) &&
	    s->cin.len < CIN_CAP &&
	    (s->tls == NULL || tls_pending_in(s->tls) < TLS_IN_CAP) &&
	    backend_queued_all(s) <= HIGH_MARK &&
	    !(s->state == SS_COMMANDS && relay_waits_354(&s->r) &&
	    s->cin.len >= CIN_CAP / 2);
	want_be = s->be.state == BE_OPEN && state_reads_backend(s->state) &&
	    s->be.in.len < BIN_CAP && client_queued(s) <= HIGH_MARK;

	if (want_client && !(s->flags & SF_CLIENT_READING)) {
		if (uv_read_start((uv_stream_t *)&s->client, alloc_cb,
		    on_client_read) == 0)
			s->flags |= SF_CLIENT_READING;
	} else if (!want_client && (s->flags & SF_CLIENT_READING)) {
		uv_read_stop((uv_stream_t *)&s->client);
		s->flags &= ~SF_CLIENT_READING;
	}
	if (s->be.state != BE_NONE)
		backend_read(&s->be, want_be);
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
	const char *why = NULL;
	int now;

	switch (s->state) {
	case SS_COMMANDS:
		break;
	case SS_BACKEND_CONNECT:
	case SS_GREETING:
		return s->cin.len == 0;	/* else commands wait for it */
	default:
		return 1;
	}
	now = relay_may_end(&s->r, &why);
	if (why != NULL && s->end == NULL)
		s->end = why;
	return now;
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
		backend_input(s);
		backend_eof(s);
		client_input(s);
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
	backend_gone(s);
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
on_timer(uv_timer_t *t)
{
	struct session *s = t->data;
	struct relay_in in;
	struct relay_out out;

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
		backend_failed(s, "backend timeout", R421_UNAVAILABLE);
		break;
	case SS_HANDSHAKE:
		stats_add(&s->st->hs_failed[HSF_TIMEOUT], 1);
		sess_close(s, "handshake timeout");
		break;
	case SS_COMMANDS:
	case SS_STARTTLS_DRAIN:
		sess_step_init(s, &in, &out);
		relay_timeout(&s->r, &out);
		(void)sess_apply(s, &out);
		break;
	case SS_CLOSED:
		break;
	}
}

/*
 * (Re)start the one timer for what the session waits for now: the PROXY
 * header, the backend's connect or greeting, the handshake, the dialogue's
 * deadline (relay_deadline), or the last reply's flush.
 */
static void
sess_arm_timer(struct session *s)
{
	uint64_t secs, now, at;

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
	case SS_COMMANDS:
	case SS_STARTTLS_DRAIN:
		now = uv_now(&s->w->loop);
		at = relay_deadline(&s->r);
		uv_timer_start(&s->timer, on_timer, at > now ? at - now : 0,
		    0);
		return;
	case SS_CLOSED:
	default:
		return;
	}
	uv_timer_start(&s->timer, on_timer, secs * 1000, 0);
}

/* --- the backend's callbacks ------------------------------------------- */

static void
on_backend_connect(void *arg, int status)
{
	struct session *s = arg;
	struct proxy_tls pt, *ptp = NULL;

	if (s->state == SS_CLOSED)
		return;
	if (status < 0) {
		log_warnx("%s: backend %s: %s", s->id,
		    s->lc->backend.address.text, uv_strerror(status));
		backend_failed(s, "backend unavailable", R421_UNAVAILABLE);
		return;
	}
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
		if (backend_proxy_header(&s->be, s->lc->backend.proxy_protocol
		    == PROXY_OUT_V1 ? 1 : 2, &s->peer, &s->local, ptp) < 0) {
			backend_failed(s, "backend PROXY header failed",
			    R421_UNAVAILABLE);
			return;
		}
	}
	sess_enter(s, SS_GREETING);
	sess_arm_timer(s);
	sess_pump(s);
}

static void
on_backend_input(void *arg, int status)
{
	struct session *s = arg;

	if (s->state == SS_CLOSED)
		return;
	if (status < 0) {
		sess_close(s, "out of memory");
		return;
	}
	sess_pump(s);
}

static void
on_backend_written(void *arg, int status)
{
	struct session *s = arg;

	if (s->state == SS_CLOSED)
		return;
	if (status < 0) {
		if (s->be.state != BE_CLOSED)	/* else cancelled by our close */
			backend_failed(s, "backend write error", R421_LOST);
		return;
	}
	sess_pump(s);
}

static const struct backend_cb sess_backend_cb = {
	on_backend_connect, on_backend_input, on_backend_written, alloc_cb,
	on_handle_closed
};

/* --- lifecycle --------------------------------------------------------- */

static void
on_handle_closed(uv_handle_t *h)
{
	struct session *s = h->data;

	if (--s->handles > 0)
		return;
	if (s->tls != NULL)
		tls_conn_free(s->tls);
	relay_free(&s->r);
	backend_free(&s->be);
	free(s->cin.p);
	free(s->cout.p);
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

	snprintf(msgs, sizeof(msgs), "%u", s->r.messages);
	snprintf(bin, sizeof(bin), "%" PRIu64, s->r.bytes_in);
	snprintf(bout, sizeof(bout), "%" PRIu64, s->r.bytes_out);
	snprintf(refs, sizeof(refs), "%u", s->r.refusals);
	snprintf(dur, sizeof(dur), "%" PRIu64 ".%03u", ms / 1000,
	    (unsigned)(ms % 1000));
	log_kv(LOG_INFO, "session",
	    "id", s->id,
	    "client", s->peer_addr,
	    "#client_port", s->peer_port,
	    "listener", s->lc->name,
	    "helo", s->r.helo ? s->r.helo : "-",
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
	if (s->r.unsol_replies > 0 || s->r.stale_bytes > 0)
		log_info("%s: dropped backend output nobody asked for: %u "
		    "unsolicited replies (%" PRIu64 " bytes), %" PRIu64
		    " bytes sent before the TLS handshake", s->id,
		    s->r.unsol_replies, s->r.unsol_bytes, s->r.stale_bytes);
	sess_log(s);
	stats_add(&s->st->conn_active, (uint64_t)-1);
	stats_add(&s->st->bytes_in, s->r.bytes_in);
	stats_add(&s->st->bytes_out, s->r.bytes_out);
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
	backend_close(&s->be);
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

/* Connect to the backend; its greeting will fill the first slot. */
static void
backend_start(struct session *s)
{
	struct relay_in in;
	struct relay_out out;
	int r;

	sess_enter(s, SS_BACKEND_CONNECT);
	sess_step_init(s, &in, &out);
	if (relay_start(&s->r, &in) < 0) {
		sess_close(s, "out of memory");
		return;
	}
	r = backend_connect(&s->be, &s->w->loop, &s->lc->backend.address,
	    &sess_backend_cb, s);
	if (s->be.state != BE_NONE)
		s->handles++;
	if (r < 0) {
		log_warnx("%s: backend %s: %s", s->id,
		    s->lc->backend.address.text, uv_strerror(r));
		backend_failed(s, "backend unavailable", R421_UNAVAILABLE);
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
	s->r.cfg.peer_v6 = s->peer.ss_family == AF_INET6;
	if (s->w->stopping) {
		if (implicit) {
			sess_close(s, "shutting down");
			return;
		}
		sess_enter(s, SS_COMMANDS);
		sess_fail(s, "shutting down", R421_SHUTDOWN);
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
		sess_enter(s, SS_COMMANDS);
		sess_fail(s, "too many connections", R421_TOO_MANY);
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

/* The dialogue's constants, from the listener. */
static int
sess_relay_init(struct session *s)
{
	const struct cfg_listener *lc = s->lc;
	struct relay_cfg rc;

	memset(&rc, 0, sizeof(rc));
	rc.policy = &lc->policy;
	rc.banner = lc->banner;
	rc.backend = lc->backend.address.text;
	rc.hostname = s->w->hostname;
	rc.listener = lc->name;
	rc.id = s->id;
	rc.peer_addr = s->peer_addr;
	rc.peer_port = s->peer_port;
	rc.xclient = lc->backend.xclient;
	rc.received_header = lc->received_header;
	rc.max_line = (size_t)lc->limits.max_line;
	rc.idle_ms = (uint64_t)lc->limits.idle_timeout * 1000;
	rc.data_ms = (uint64_t)lc->limits.data_timeout * 1000;
	rc.st = s->st;
	rc.log = &sess_relay_log;
	return relay_init(&s->r, &rc, lc->tls_mode == TLS_MODE_STARTTLS &&
	    tls_listener_has_cert(s->cfg->tls, s->li));
}

void
session_accept(struct lsn *l)
{
	struct worker *w = l->w;
	struct session *s;
	int len;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return;
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

	if (sess_relay_init(s) < 0 ||
	    uv_accept((uv_stream_t *)&l->tcp, (uv_stream_t *)&s->client) < 0) {
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
		sess_arm_timer(s);	/* SS_PROXY_HEADER: calloc's zero */
		update_reads(s);
		return;
	}
	sess_begin(s);
}

void
session_shutdown(struct session *s)
{
	switch (s->state) {
	case SS_CLOSED:
		return;
	case SS_PROXY_HEADER:
		sess_close(s, "shutdown");
		return;
	case SS_HANDSHAKE:
		if (s->be.state == BE_NONE) {	/* implicit TLS: no plaintext */
			sess_close(s, "shutdown");
			return;
		}
		break;
	case SS_BACKEND_CONNECT:
	case SS_GREETING:
		sess_enter(s, SS_COMMANDS);	/* the greeting's slot: 421 */
		break;
	case SS_COMMANDS:
	case SS_STARTTLS_DRAIN:
		break;
	}
	sess_fail(s, "shutdown", R421_SHUTDOWN);
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
