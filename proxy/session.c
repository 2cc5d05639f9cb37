/*
 * session - one client connection: the transport around the dialogue.
 *
 * Where the client leg (client.c), the backend leg (backend.c) and the
 * dialogue (smtp_relay.c, pure) meet; it knows no SMTP itself.  Here the
 * running session: the pump, the TLS glue, timers, the linger before
 * close; session_life.c begins and ends it (session_int.h).  libuv
 * callbacks only translate (bytes in, write done, timer, EOF) and call
 * sess_pump(), which decides everything in one place: advance the
 * handshake, pull plaintext out of TLS, give backend bytes and client
 * bytes to the relay step by step and act on its events (sess_apply),
 * send ready replies, and finally choose which sides to read
 * (sess_update_reads).
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
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "session.h"
#include "session_int.h"
#include "stats.h"

#define CIN_CAP		(64 * 1024)	/* client plaintext not yet processed */
#define BIN_CAP		(64 * 1024)	/* backend bytes not yet framed */
#define HIGH_MARK	(256 * 1024)	/* queued toward one side: stop the other */
#define TLS_IN_CAP	(64 * 1024)	/* ciphertext not yet decrypted */
#define STALE_DRAIN_MAX	(4 * 1024 * 1024) /* stale bytes read at once, at most */
#define CLOSE_LINGER	5		/* seconds to flush a last reply */
#define DRAIN_LINGER	2		/* seconds to read the client's last bytes */

static const char *const sess_state_names[] = {
	"PROXY_HEADER", "BACKEND_CONNECT", "GREETING", "COMMANDS", "STARTTLS_DRAIN",
	"HANDSHAKE", "CLOSED"
};

static void	on_client_read(uv_stream_t *, ssize_t, const uv_buf_t *);
static void	sess_linger(struct session *);
static void	on_timer(uv_timer_t *);
static void	stale_drain(struct session *);

void
sess_enter(struct session *s, enum sess_state st)
{
	if (s->state == st)
		return;
	log_debug("%s: %s -> %s", s->id, sess_state_names[s->state],
	    sess_state_names[st]);
	s->state = st;
}

/* --- writing --------------------------------------------------------- */

void
sess_on_client_written(void *arg, int status)
{
	struct session *s = arg;

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

/* A client leg failed: close with its reason. */
static void
client_failed(struct session *s, enum client_err e)
{
	switch (e) {
	case CLIENT_OK:
		return;
	case CLIENT_OOM:
		sess_close(s, "out of memory");
		return;
	case CLIENT_WRITE:
		sess_close(s, "client write error");
		return;
	case CLIENT_TLS_WRITE:
		sess_close(s, "tls write error");
		return;
	case CLIENT_TLS:
		log_info("%s: TLS error: %s", s->id,
		    tls_conn_error(s->cl.tls));
		sess_close(s, "tls error");
		return;
	}
}

static void
flush_client(struct session *s)
{
	if (s->state != SS_CLOSED)
		client_failed(s, client_flush(&s->cl,
		    (s->flags & SF_CLOSE_AFTER_FLUSH) != 0));
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
		sess_backend_failed(s, "backend write error", R421_LOST);
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
backend_queued_all(struct session *s)
{
	return backend_queued(&s->be) + s->r.held.len;
}

/* --- the relay's steps ------------------------------------------------- */

void
sess_step_init(struct session *s, struct relay_in *in, struct relay_out *out)
{
	in->ms = uv_now(s->ss->loop);
	in->now = time(NULL);
	in->client_full = client_queued(&s->cl) > HIGH_MARK;
	in->backend_full = backend_queued_all(s) > HIGH_MARK;
	memset(out, 0, sizeof(*out));
	out->to_backend = &s->be.out;
	out->to_client = &s->cl.out;
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
	if (s->cl.tls != NULL && (ev & RELAY_EV_BULK_ON))
		tls_set_bulk(s->cl.tls, 1);
	if (out->fwd != NULL && backend_out(s, out->fwd, out->fwd_len) < 0)
		return 0;
	if (s->cl.tls != NULL && (ev & RELAY_EV_BULK_OFF))
		tls_set_bulk(s->cl.tls, 0);
	if (ev & RELAY_EV_STARTTLS) {
		sess_enter(s, SS_STARTTLS_DRAIN);
		buf_consume(&s->cl.in, s->cl.in.len);
	}
	if (ev & RELAY_EV_CLOSE)
		s->flags |= SF_CLOSE_AFTER_FLUSH |
		    ((ev & RELAY_EV_QUIT) ? SF_QUIT : 0);
	if (ev & RELAY_EV_FAIL) {
		if (out->backend_fault)
			sess_backend_failed(s, out->why, out->reply);
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
void
sess_fail(struct session *s, const char *why, const char *reply)
{
	bool had_backend;

	if (s->state == SS_CLOSED ||
	    (s->flags & (SF_CLOSE_AFTER_FLUSH | SF_FAILING)))
		return;
	if (s->end == NULL)
		s->end = why;
	log_debug("%s: %s", s->id, why);
	had_backend = s->be.state != BE_NONE;
	backend_gone(s);
	buf_consume(&s->cl.in, s->cl.in.len);
	switch (s->state) {
	case SS_HANDSHAKE:
	case SS_STARTTLS_DRAIN:
		/* After STARTTLS's 220 the client completes its handshake
		 * and sends a command (a TLS 1.3 client may already have):
		 * answer that with the reply once TLS is up, rather than
		 * with a close that looks like a dropped command.  Implicit
		 * TLS has no backend yet and owes nothing. */
		if (!had_backend || relay_fail(&s->r, reply) < 0) {
			sess_close(s, why);
			return;
		}
		s->flags |= SF_FAILING;
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

void
sess_backend_failed(struct session *s, const char *why, const char *reply)
{
	if (s->state != SS_CLOSED && !(s->flags & SF_CLOSE_AFTER_FLUSH))
		stats_add(&s->st->backend_failures, 1);
	sess_fail(s, why, reply);
}

/* --- TLS ------------------------------------------------------------- */

static void
start_tls(struct session *s)
{
	if (client_start_tls(&s->cl, s->gen->tls, s->li) < 0) {
		sess_close(s, "tls setup failed");
		return;
	}
	buf_consume(&s->cl.in, s->cl.in.len);	/* CVE-2011-0411 */
	sess_enter(s, SS_HANDSHAKE);
	s->hs_start_ms = uv_now(s->ss->loop);
	sess_arm_timer(s);
}

static void
handshake_done(struct session *s)
{
	struct relay_tls t;
	struct relay_in in;
	struct relay_out out;

	tls_get_info(s->cl.tls, &s->tinfo);
	stats_add(&s->st->hs_ok, 1);
	stats_tls_session(s->st, s->tinfo.version, s->tinfo.cipher);
	stats_hs_observe(s->st,
	    (double)(uv_now(s->ss->loop) - s->hs_start_ms) / 1000.0);
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
		sess_backend_start(s);
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
	enum client_err e;
	enum tls_status st;

	st = client_handshake(&s->cl, &e);
	if (e != CLIENT_OK) {
		client_failed(s, e);
		return;
	}
	if (st == TLS_OK)
		handshake_done(s);
	else if (st != TLS_AGAIN) {
		log_info("%s: TLS handshake failed with %s: %s", s->id,
		    s->peer_addr, tls_conn_error(s->cl.tls));
		stats_add(&s->st->hs_failed[tls_conn_fail_reason(s->cl.tls)],
		    1);
		sess_close(s, "handshake failed");
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
	    (s->be.in.len > 0 && client_queued(&s->cl) > HIGH_MARK))
		return;
	if (s->flags & SF_CLOSE_AFTER_FLUSH)
		backend_gone(s);
	else if (s->state == SS_GREETING)
		sess_backend_failed(s, "backend closed before greeting",
		    R421_UNAVAILABLE);
	else
		sess_backend_failed(s, "backend closed", R421_LOST);
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
	total = backend_drain(&s->be, s->ss->rdbuf, sizeof(s->ss->rdbuf),
	    STALE_DRAIN_MAX);
	relay_stale(&s->r, total);
	/* A backend gone while it was drained: no read event will come to
	 * say so, so the pump must look again (the command just queued is
	 * owed a 421, not silence until its reply timeout). */
	if (s->be.state == BE_EOF)
		s->flags |= SF_REPUMP;
	if (total >= STALE_DRAIN_MAX)
		sess_backend_failed(s, "backend keeps sending unsolicited output",
		    R421_PROTOCOL);
}

static void
process_client_input(struct session *s)
{
	struct relay_in in;
	struct relay_out out;
	size_t used;
	int more;

	while (s->state == SS_COMMANDS && s->cl.in.len > 0) {
		sess_step_init(s, &in, &out);
		more = relay_client_step(&s->r, &in, buf_data(&s->cl.in),
		    s->cl.in.len, &used, &out);
		/* out.fwd points into cin: sent before cin moves. */
		if (!sess_apply(s, &out))
			break;
		buf_consume(&s->cl.in, used);
		if (!more)
			break;
	}
	if (s->cl.in.len == 0)
		buf_release(&s->cl.in);
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
		if (s->state == SS_COMMANDS && s->cl.tls != NULL) {
			before = s->cl.in.len;
			client_failed(s, client_pull(&s->cl, CIN_CAP));
			pulled = s->cl.in.len - before;
		}
		before = s->cl.in.len;
		process_client_input(s);
		if (s->cl.tls == NULL || s->state != SS_COMMANDS ||
		    (pulled == 0 && s->cl.in.len == before))
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

void
sess_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct session *s = h->data;

	(void)hint;
	/* One read buffer per loop: every read callback consumes it fully
	 * before returning. */
	b->base = s->ss->rdbuf;
	b->len = sizeof(s->ss->rdbuf);
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
void
sess_update_reads(struct session *s)
{
	int want_client, want_be;

	if (s->state == SS_CLOSED || (s->flags & SF_LINGER))
		return;
	want_client = !s->cl.eof && !(s->flags & SF_CLOSE_AFTER_FLUSH) &&
	    state_reads_client(s->state) &&
	    s->cl.in.len < CIN_CAP &&
	    (s->cl.tls == NULL || tls_pending_in(s->cl.tls) < TLS_IN_CAP) &&
	    backend_queued_all(s) <= HIGH_MARK &&
	    !(s->state == SS_COMMANDS && relay_waits_354(&s->r) &&
	    s->cl.in.len >= CIN_CAP / 2);
	want_be = s->be.state == BE_OPEN && state_reads_backend(s->state) &&
	    s->be.in.len < BIN_CAP && client_queued(&s->cl) <= HIGH_MARK;

	client_read(&s->cl, want_client, sess_alloc, on_client_read);
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
		return s->cl.in.len == 0;	/* else commands wait for it */
	default:
		return 1;
	}
	now = relay_may_end(&s->r, &why);
	if (why != NULL && s->end == NULL)
		s->end = why;
	return now;
}

/* The session's bytes into the metrics as they move, not only at its
 * end: a long session is seen on /metrics while it runs. */
void
sess_count_bytes(struct session *s)
{
	if (s->r.bytes_in != s->counted_in) {
		stats_add(&s->st->bytes_in, s->r.bytes_in - s->counted_in);
		s->counted_in = s->r.bytes_in;
	}
	if (s->r.bytes_out != s->counted_out) {
		stats_add(&s->st->bytes_out, s->r.bytes_out - s->counted_out);
		s->counted_out = s->r.bytes_out;
	}
}

void
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
			sess_proxy_header(s);
		if (s->state == SS_HANDSHAKE)
			do_handshake(s);
		if (s->state == SS_CLOSED)
			break;
		backend_input(s);
		backend_eof(s);
		client_input(s);
		if (s->state != SS_STARTTLS_DRAIN && s->state != SS_HANDSHAKE)
			flush_slots(s);
		flush_backend(s);
		flush_client(s);
		if (s->state == SS_CLOSED)
			break;
		if (s->cl.eof && client_gone(s)) {
			sess_close(s, s->end ? s->end : "client closed");
			break;
		}
		if ((s->flags & SF_CLOSE_AFTER_FLUSH) && s->cl.writes == 0 &&
		    client_queued(&s->cl) == 0) {
			sess_linger(s);
			break;
		}
		if (s->state == SS_STARTTLS_DRAIN && s->cl.writes == 0)
			start_tls(s);
	} while ((s->flags & SF_REPUMP) && s->state != SS_CLOSED);
	s->flags &= ~SF_PUMPING;
	if (s->state != SS_CLOSED)
		sess_count_bytes(s);
	sess_update_reads(s);
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
	int unread;

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
	if (s->cl.eof || (s->flags & SF_QUIT) ||
	    (unread = client_unread(&s->cl)) < 0 ||
	    (unread == 0 && s->ss->stopping)) {
		sess_close(s, s->end ? s->end : "quit");
		return;
	}
	if (uv_shutdown(&s->shut_req, (uv_stream_t *)&s->cl.tcp,
	    on_shutdown) < 0) {
		sess_close(s, s->end ? s->end : "quit");
		return;
	}
	uv_timer_start(&s->timer, on_timer, DRAIN_LINGER * 1000, 0);
	client_read(&s->cl, true, sess_alloc, on_client_read);
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
		s->cl.eof = true;
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
	if (client_feed(&s->cl, b->base, (size_t)nread) < 0) {
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
	case SS_BACKEND_CONNECT:	/* not reached: 4.3.0 (SPEC §4) */
		log_warnx("%s: backend %s: connect timeout", s->id,
		    s->lc->backend.address.text);
		sess_backend_failed(s, "backend timeout", R421_UNAVAILABLE);
		break;
	case SS_GREETING:		/* a reply timeout: 4.4.2 */
		log_warnx("%s: backend %s: greeting timeout", s->id,
		    s->lc->backend.address.text);
		sess_backend_failed(s, "backend timeout", R421_TIMEOUT);
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
void
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
		now = uv_now(s->ss->loop);
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

void
sess_on_backend_input(void *arg, int status)
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

void
sess_on_backend_written(void *arg, int status)
{
	struct session *s = arg;

	if (s->state == SS_CLOSED)
		return;
	if (status < 0) {
		if (s->be.state != BE_CLOSED)	/* else cancelled by our close */
			sess_backend_failed(s, "backend write error", R421_LOST);
		return;
	}
	sess_pump(s);
}
