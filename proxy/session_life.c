/*
 * session_life - the beginning and the end of a session: accept, the
 * PROXY header of a load balancer, the limits, the session id, the
 * backend's connect (and its outbound PROXY header), close, and the
 * session's log line.  session.c runs the session in between; see
 * session_int.h.
 */
#include <sys/random.h>
#include <sys/socket.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "connlimits.h"
#include "log.h"
#include "proxyproto.h"
#include "session.h"
#include "session_int.h"
#include "stats.h"

#define PROXY_MAX	(16 + 1024)	/* bytes of a PROXY header, at most */

_Static_assert(RELAY_LOG_INFO == LOG_INFO, "relay log level");

static void	sess_on_closed(uv_handle_t *);

static const struct relay_log sess_relay_log = {
	log_warnx, log_info, log_kv
};

/* --- the backend's connect --------------------------------------------- */

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
		sess_backend_failed(s, "backend unavailable", R421_UNAVAILABLE);
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
			sess_backend_failed(s, "backend PROXY header failed",
			    R421_UNAVAILABLE);
			return;
		}
	}
	sess_enter(s, SS_GREETING);
	sess_arm_timer(s);
	sess_pump(s);
}

static const struct backend_cb sess_backend_cb = {
	on_backend_connect, sess_on_backend_input, sess_on_backend_written,
	sess_alloc, sess_on_closed
};

/* --- lifecycle --------------------------------------------------------- */

static void
sess_on_closed(uv_handle_t *h)
{
	struct session *s = h->data;

	if (--s->handles > 0)
		return;
	client_free(&s->cl);
	relay_free(&s->r);
	backend_free(&s->be);
	gen_unref(s->gen);
	free(s);
}

static void
sess_log(struct session *s)
{
	char msgs[16], bin[24], bout[24], refs[16], dur[24];
	uint64_t ms = uv_now(s->ss->loop) - s->start_ms;
	int tls = (s->flags & SF_TLS) != 0;
	const char *sni = s->cl.tls != NULL ? tls_conn_sni(s->cl.tls) : NULL;
	const char *cert = NULL, *cert_key = NULL;

	/* The certificate served, also when the handshake failed after it
	 * (a client that did not trust it wants to be found). */
	if (s->cl.tls != NULL)
		(void)tls_conn_cert(s->cl.tls, &cert, &cert_key);
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
	    "cert", cert ? cert : "-",
	    "cert_key", cert_key ? cert_key : "-",
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

void
sess_close(struct session *s, const char *why)
{
	struct sessions *ss = s->ss;

	if (s->state == SS_CLOSED)
		return;
	if (s->end == NULL)
		s->end = why;
	if (s->flags & SF_PREHEADER)
		ss->n_preheader--;
	sess_enter(s, SS_CLOSED);
	if (s->r.unsol_replies > 0 || s->r.stale_bytes > 0)
		log_info("%s: dropped backend output nobody asked for: %u "
		    "unsolicited replies (%" PRIu64 " bytes), %" PRIu64
		    " bytes sent before the TLS handshake", s->id,
		    s->r.unsol_replies, s->r.unsol_bytes, s->r.stale_bytes);
	sess_log(s);
	stats_add(&s->st->conn_active, (uint64_t)-1);
	sess_count_bytes(s);
	if (s->flags & SF_COUNTED)
		limits_release(s->limits, (struct sockaddr *)&s->peer);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		ss->head = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	ss->n--;

	uv_close((uv_handle_t *)&s->cl.tcp, sess_on_closed);
	uv_close((uv_handle_t *)&s->timer, sess_on_closed);
	backend_close(&s->be);
	if (ss->gone != NULL)
		ss->gone(ss->gone_arg);
}

/* Connect to the backend; its greeting will fill the first slot. */
void
sess_backend_start(struct session *s)
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
	r = backend_connect(&s->be, s->ss->loop, &s->lc->backend.address,
	    &sess_backend_cb, s);
	if (s->be.state != BE_NONE)
		s->handles++;
	if (r < 0) {
		log_warnx("%s: backend %s: %s", s->id,
		    s->lc->backend.address.text, uv_strerror(r));
		sess_backend_failed(s, "backend unavailable", R421_UNAVAILABLE);
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
	if (s->ss->stopping) {
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
		sess_backend_start(s);
		return;
	}
	if (client_start_tls(&s->cl, s->gen->tls, s->li) < 0) {
		sess_close(s, "tls setup failed");
		return;
	}
	/* Bytes after a PROXY header are the start of the ClientHello. */
	if (s->cl.in.len > 0 && client_feed(&s->cl, buf_data(&s->cl.in),
	    s->cl.in.len) < 0) {
		sess_close(s, "out of memory");
		return;
	}
	buf_consume(&s->cl.in, s->cl.in.len);
	sess_enter(s, SS_HANDSHAKE);
	s->hs_start_ms = uv_now(s->ss->loop);
	sess_arm_timer(s);
	sess_pump(s);		/* starts reading the client */
}

/* A load balancer's PROXY header: strict, bounded, else close silently. */
void
sess_proxy_header(struct session *s)
{
	struct proxy_hdr h;

	switch (proxy_parse(buf_data(&s->cl.in), s->cl.in.len, &h)) {
	case PROXY_AGAIN:
		if (s->cl.in.len > PROXY_MAX)
			sess_close(s, "bad PROXY header");
		return;
	case PROXY_INVALID:
		log_info("%s: bad PROXY header from %s", s->id, s->peer_addr);
		sess_close(s, "bad PROXY header");
		return;
	case PROXY_OK:
		break;
	}
	buf_consume(&s->cl.in, h.len);
	s->flags &= ~SF_PREHEADER;
	s->ss->n_preheader--;
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
	rc.hostname = s->gen->cfg->hostname[0] != '\0' ?
	    s->gen->cfg->hostname : s->ss->hostname;
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
	    tls_listener_has_cert(s->gen->tls, s->li));
}

int
session_accept(struct sessions *ss, size_t li, struct lsn_limits *limits,
    struct stats *st, int fd)
{
	struct session *s;
	int len;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return -1;
	s->ss = ss;
	s->gen = gen_ref(ss->gen);
	s->li = li;
	s->lc = &s->gen->cfg->listeners[li];
	s->limits = limits;
	s->st = st;
	if (sess_relay_init(s) < 0) {
		relay_free(&s->r);
		gen_unref(s->gen);
		free(s);
		return -1;
	}
	stats_add(&s->st->conn_total, 1);
	stats_add(&s->st->conn_active, 1);
	s->start_ms = uv_now(ss->loop);
	session_id(s->id, sizeof(s->id), ss->index, ++ss->next_id);

	uv_tcp_init(ss->loop, &s->cl.tcp);
	s->cl.tcp.data = s;
	client_init(&s->cl, s->id, ss->wrbuf, sizeof(ss->wrbuf),
	    sess_on_client_written);
	s->handles++;
	uv_timer_init(ss->loop, &s->timer);
	s->timer.data = s;
	s->handles++;
	s->next = ss->head;
	if (ss->head != NULL)
		ss->head->prev = s;
	ss->head = s;
	ss->n++;

	if (uv_tcp_open(&s->cl.tcp, fd) < 0) {
		close(fd);
		sess_close(s, "accept failed");
		return 0;
	}
	len = sizeof(s->peer);
	uv_tcp_getpeername(&s->cl.tcp, (struct sockaddr *)&s->peer, &len);
	if (s->lc->backend.proxy_protocol != PROXY_OUT_NONE) {	/* only user */
		len = sizeof(s->local);
		uv_tcp_getsockname(&s->cl.tcp, (struct sockaddr *)&s->local,
		    &len);
	}
	uv_tcp_nodelay(&s->cl.tcp, 1);
	if (s->lc->proxy_protocol) {
		addr_text(&s->peer, s->peer_addr, sizeof(s->peer_addr),
		    s->peer_port, sizeof(s->peer_port));
		/* The limits count real clients, known only from the header;
		 * until then this worker holds at most max_connections. */
		if (ss->n_preheader >= (size_t)s->lc->limits.max_connections) {
			stats_add(&s->st->conn_rejected_limit, 1);
			sess_close(s, "too many connections without PROXY header");
			return 0;
		}
		ss->n_preheader++;
		s->flags |= SF_PREHEADER;
		sess_arm_timer(s);	/* SS_PROXY_HEADER: calloc's zero */
		sess_update_reads(s);
		return 0;
	}
	sess_begin(s);
	return 0;
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
