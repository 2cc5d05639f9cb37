/*
 * worker - one event-loop thread: accepting on its own listening sockets,
 * applying what the master posts (a new configuration, stop), and the
 * graceful stop.  The per-listener connection limits, the only state
 * shared between workers, are in connlimits.c.
 *
 * Accepting is done here, not by uv_listen: a poll handle says the socket
 * is readable and accept4() takes up to ACCEPT_BATCH connections.  Out of
 * descriptors (EMFILE/ENFILE), the worker closes its reserve descriptor,
 * accepts the waiting connection with the slot, answers it "421 4.7.0"
 * (STARTTLS listeners without PROXY header only: elsewhere plaintext makes
 * no sense) and closes it, then takes the reserve back.  A connection
 * accepted without room left for its backend socket is refused the same
 * way.  When even that cannot be done the listener pauses for
 * ACCEPT_BACKOFF_MS instead of spinning; refusals are counted per listener
 * and logged at most once a second per worker.
 *
 * Reload: the new config arrives with, per listener, either a new socket
 * or the index of an old listener whose socket stays open (same address:
 * no connection is refused during a reload).  Old listeners not kept are
 * closed.  Sessions keep the config they started with (their own ref).
 *
 * Health: the master stores a sequence number in ping_want and wakes the
 * loop through the same uv_async as its messages (which coalesces, so a
 * flood of probes cannot fill the inbox); the loop copies it to ping_seen.
 * A loop that is stuck never answers, and /healthz says so.
 *
 * Stop: close the listeners, let sessions finish for shutdown_timeout
 * seconds, then answer "421 4.3.2" to what is left, and close whatever
 * still lingers CLOSE_GRACE seconds later.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include "log.h"
#include "session.h"
#include "worker.h"

#define CLOSE_GRACE	5	/* seconds after the 421s, then abort */
#define ACCEPT_BATCH	64	/* connections accepted per wakeup */
#define ACCEPT_BACKOFF_MS 100	/* pause after running out of descriptors */
#define REFUSE_LOG_MS	1000	/* at most one refusal line per worker */
#define HEADROOM_MAX	16

/* Why a connection was refused before it became a session. */
enum refuse_reason { REFUSE_DESCRIPTORS = 0, REFUSE_MEMORY };

/* The listener li of w's current configuration. */
#define LSN_CFG(w, li)	(&(w)->ss.gen->cfg->listeners[(li)])

/* --- accepting ------------------------------------------------------ */

/*
 * The first refusal is logged at once and starts a REFUSE_LOG_MS timer;
 * refusals while it runs are only counted, and when it fires one line
 * gives their number (and starts the next interval).  At most one line per
 * REFUSE_LOG_MS per worker, however many connections arrive.
 */
static void
on_refuse_timer(uv_timer_t *t)
{
	struct worker *w = t->data;

	if (w->refuse_quiet == 0)
		return;
	log_warnx("worker %d: %" PRIu64 " more connection(s) refused or "
	    "delayed for lack of descriptors or memory", w->index,
	    w->refuse_quiet);
	w->refuse_quiet = 0;
	uv_timer_start(&w->refuse_timer, on_refuse_timer, REFUSE_LOG_MS, 0);
}

static void
refuse_log(struct worker *w, const char *listener, enum refuse_reason why)
{
	if (uv_is_active((uv_handle_t *)&w->refuse_timer)) {
		w->refuse_quiet++;
		return;
	}
	if (why == REFUSE_MEMORY)
		log_warnx("listener %s: connection refused: out of memory",
		    listener);
	else
		log_warnx("listener %s: connection refused: out of file "
		    "descriptors (raise the limit, e.g. LimitNOFILE=, or "
		    "lower max_connections)", listener);
	uv_timer_start(&w->refuse_timer, on_refuse_timer, REFUSE_LOG_MS, 0);
}

/* Refuse the accepted connection fd of listener l: "421 4.7.0" where the
 * listener speaks plaintext first, then close fd; counted in the
 * listener's stats and logged at a bounded rate. */
static void
lsn_refuse(struct lsn *l, int fd, enum refuse_reason why)
{
	static const char reply[] =
	    "421 4.7.0 Too many connections, try again later\r\n";
	struct worker *w = l->w;
	const struct cfg_listener *lc = LSN_CFG(w, l->li);
	struct stats *st = &l->sh->shards[w->index];

	/* No plaintext on an implicit TLS port, nor before a PROXY header
	 * (the peer is a load balancer).  The socket is non-blocking and
	 * fresh: the reply fits its send buffer or is dropped. */
	if (lc->tls_mode == TLS_MODE_STARTTLS && !lc->proxy_protocol)
		(void)send(fd, reply, sizeof(reply) - 1,
		    MSG_DONTWAIT | MSG_NOSIGNAL);
	close(fd);
	stats_add(why == REFUSE_MEMORY ? &st->conn_rejected_memory :
	    &st->conn_rejected_descriptors, 1);
	refuse_log(w, lc->name, why);
}

static int
reserve_open(void)
{
	return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/*
 * A new session needs its client socket and then a backend socket, and
 * the other workers may be taking descriptors at the same moment: after
 * accepting, check that w->headroom more could still be opened.
 */
static int
fd_headroom(int fd, int n)
{
	int probe[HEADROOM_MAX], i, ok = 1;

	for (i = 0; i < n && i < HEADROOM_MAX; i++)
		if ((probe[i] = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0) {
			ok = 0;
			break;
		}
	while (i-- > 0)
		close(probe[i]);
	return ok;
}

static void	on_lsn_readable(uv_poll_t *, int, int);

static void
on_backoff(uv_timer_t *t)
{
	struct lsn *l = t->data;

	if (l->w->reserve_fd < 0)
		l->w->reserve_fd = reserve_open();
	uv_poll_start(&l->poll, UV_READABLE, on_lsn_readable);
}

/* Stop accepting on l for a moment instead of spinning on an error that
 * only time (sessions ending) will clear. */
static void
lsn_pause(struct lsn *l)
{
	log_debug("listener %s: worker %d pauses accepting for %d ms",
	    LSN_CFG(l->w, l->li)->name, l->w->index, ACCEPT_BACKOFF_MS);
	uv_poll_stop(&l->poll);
	uv_timer_start(&l->backoff, on_backoff, ACCEPT_BACKOFF_MS, 0);
}

/*
 * Out of descriptors with a connection waiting: give up the reserve
 * descriptor, accept the connection with it, refuse it and take the
 * reserve back.  0 when one connection was refused (go on), 1 when none
 * was waiting, -1 when this cannot go on now (pause).
 */
static int
lsn_refuse_spare(struct lsn *l)
{
	struct worker *w = l->w;
	int fd, e;

	if (w->reserve_fd < 0)
		return -1;
	close(w->reserve_fd);
	fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	e = errno;
	if (fd >= 0)
		lsn_refuse(l, fd, REFUSE_DESCRIPTORS);
	w->reserve_fd = reserve_open();
	if (fd < 0)
		return e == EAGAIN || e == EWOULDBLOCK ? 1 : -1;
	return w->reserve_fd < 0 ? -1 : 0;
}

/* Accept what is waiting on l, at most ACCEPT_BATCH connections a
 * wakeup so that one busy listener does not starve the sessions. */
static void
lsn_accept(struct lsn *l)
{
	const char *name;
	int fd, i, r;

	for (i = 0; i < ACCEPT_BATCH; i++) {
		if (uv_is_closing((uv_handle_t *)&l->poll))
			return;
		fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			if (!fd_headroom(fd, l->w->headroom))
				lsn_refuse(l, fd, REFUSE_DESCRIPTORS);
			else if (session_accept(&l->w->ss, l->li,
			    l->sh->limits, &l->sh->shards[l->w->index],
			    fd) < 0)
				lsn_refuse(l, fd, REFUSE_MEMORY);
			continue;
		}
		switch (errno) {
		case EAGAIN:
#if EWOULDBLOCK != EAGAIN
		case EWOULDBLOCK:
#endif
			return;
		case EINTR:
		case ECONNABORTED:	/* gone before we got to it */
		case EPROTO:
		case ENETDOWN:		/* accept4(2): pending network */
		case ENOPROTOOPT:	/* errors of that connection */
		case EHOSTDOWN:
		case ENONET:
		case EHOSTUNREACH:
		case EOPNOTSUPP:
		case ENETUNREACH:
			continue;
		case EMFILE:
		case ENFILE:
			if ((r = lsn_refuse_spare(l)) == 1)
				return;
			if (r < 0) {
				/* Counted and answered when the reserve
				 * is back; logged now (rate-bounded). */
				refuse_log(l->w,
				    LSN_CFG(l->w, l->li)->name,
				    REFUSE_DESCRIPTORS);
				lsn_pause(l);
				return;
			}
			continue;
		case ENOBUFS:
		case ENOMEM:
			/* The connection stays queued; try again soon. */
			refuse_log(l->w, LSN_CFG(l->w, l->li)->name,
			    REFUSE_MEMORY);
			lsn_pause(l);
			return;
		default:
			name = LSN_CFG(l->w, l->li)->name;
			log_warn("listener %s: accept", name);
			lsn_pause(l);
			return;
		}
	}
}

static void
on_lsn_readable(uv_poll_t *p, int status, int events)
{
	struct lsn *l = p->data;

	if (status < 0) {
		log_warnx("listener %s: poll: %s",
		    LSN_CFG(l->w, l->li)->name, uv_strerror(status));
		lsn_pause(l);
		return;
	}
	if (events & UV_READABLE)
		lsn_accept(l);
}

static void
on_lsn_closed(uv_handle_t *h)
{
	struct lsn *l = h->data;

	if (--l->handles > 0)
		return;
	close(l->fd);
	free(l);
}

static void
lsn_close(struct lsn *l)
{
	if (uv_is_closing((uv_handle_t *)&l->poll))
		return;
	uv_close((uv_handle_t *)&l->poll, on_lsn_closed);
	uv_close((uv_handle_t *)&l->backoff, on_lsn_closed);
}

static struct lsn *
lsn_open(struct worker *w, size_t li, int fd, struct lsn_shared *sh)
{
	const struct cfg_listener *lc = LSN_CFG(w, li);
	struct lsn *l;
	int r;

	if ((l = calloc(1, sizeof(*l))) == NULL) {
		close(fd);
		return NULL;
	}
	l->w = w;
	l->li = li;
	l->sh = sh;
	l->fd = fd;
	if ((r = uv_poll_init_socket(&w->loop, &l->poll, fd)) < 0) {
		log_error("listener %s: cannot listen on %s: %s", lc->name,
		    lc->listen.text, uv_strerror(r));
		close(fd);
		free(l);
		return NULL;
	}
	l->poll.data = l;
	uv_timer_init(&w->loop, &l->backoff);
	l->backoff.data = l;
	l->handles = 2;
	if ((r = uv_poll_start(&l->poll, UV_READABLE, on_lsn_readable)) < 0) {
		log_error("listener %s: cannot listen on %s: %s", lc->name,
		    lc->listen.text, uv_strerror(r));
		lsn_close(l);
		return NULL;
	}
	return l;
}

void
worker_msg_free(struct worker_msg *msg)
{
	size_t i;

	if (msg == NULL)
		return;
	if (msg->fd != NULL)
		for (i = 0; i < msg->n; i++)
			if (msg->fd[i] >= 0)
				close(msg->fd[i]);
	gen_unref(msg->gen);
	free(msg->fd);
	free(msg->keep);
	free(msg->sh);
	free(msg);
}

/* Switch to msg's config and listeners. */
static void
worker_apply(struct worker *w, struct worker_msg *msg)
{
	struct lsn **nl;
	size_t i;

	if ((nl = calloc(msg->n ? msg->n : 1, sizeof(*nl))) == NULL) {
		log_error("worker %d: out of memory applying configuration",
		    w->index);
		return;
	}
	gen_unref(w->ss.gen);
	w->ss.gen = msg->gen;
	msg->gen = NULL;
	for (i = 0; i < msg->n; i++) {
		if (msg->keep[i] >= 0 && (size_t)msg->keep[i] < w->n_lsn &&
		    w->lsn[msg->keep[i]] != NULL) {
			nl[i] = w->lsn[msg->keep[i]];
			w->lsn[msg->keep[i]] = NULL;
			nl[i]->li = i;
			nl[i]->sh = msg->sh[i];
		} else if (msg->fd[i] >= 0) {
			nl[i] = lsn_open(w, i, msg->fd[i], msg->sh[i]);
			msg->fd[i] = -1;
		}
	}
	for (i = 0; i < w->n_lsn; i++)
		if (w->lsn[i] != NULL)
			lsn_close(w->lsn[i]);
	free(w->lsn);
	w->lsn = nl;
	w->n_lsn = msg->n;
}

static void
worker_close_all(struct worker *w)
{
	size_t i;

	for (i = 0; i < w->n_lsn; i++)
		if (w->lsn[i] != NULL) {
			lsn_close(w->lsn[i]);
			w->lsn[i] = NULL;
		}
	if (!uv_is_closing((uv_handle_t *)&w->async))
		uv_close((uv_handle_t *)&w->async, NULL);
	if (!uv_is_closing((uv_handle_t *)&w->stop_timer))
		uv_close((uv_handle_t *)&w->stop_timer, NULL);
	if (!uv_is_closing((uv_handle_t *)&w->refuse_timer))
		uv_close((uv_handle_t *)&w->refuse_timer, NULL);
}

/* A session has closed: the last one ends a graceful stop. */
static void
on_session_gone(void *arg)
{
	struct worker *w = arg;

	if (w->ss.stopping && w->ss.n == 0)
		worker_close_all(w);
}

static void
on_stop_timer(uv_timer_t *t)
{
	struct worker *w = t->data;
	struct session *s, *next;

	if (w->ss.stopping == 1) {
		if (w->ss.n > 0)
			log_info("worker %d: %zu session(s) left after the "
			    "grace period, closing them with 421", w->index,
			    w->ss.n);
		w->ss.stopping = 2;
		for (s = w->ss.head; s != NULL; s = next) {
			next = session_next(s);
			session_shutdown(s);
		}
		if (w->ss.n > 0)
			uv_timer_start(&w->stop_timer, on_stop_timer,
			    CLOSE_GRACE * 1000, 0);
		return;
	}
	for (s = w->ss.head; s != NULL; s = next) {
		next = session_next(s);
		session_abort(s, "shutdown");
	}
}

static void
worker_stop(struct worker *w, int how)
{
	size_t i;

	if (w->ss.stopping && how == 1)
		return;
	if (!w->ss.stopping) {
		for (i = 0; i < w->n_lsn; i++)
			if (w->lsn[i] != NULL) {
				lsn_close(w->lsn[i]);
				w->lsn[i] = NULL;
			}
		w->ss.stopping = 1;
	}
	if (w->ss.n == 0) {
		worker_close_all(w);
		return;
	}
	if (how == 2) {
		on_stop_timer(&w->stop_timer);	/* 421 now */
		return;
	}
	uv_timer_start(&w->stop_timer, on_stop_timer,
	    (uint64_t)w->ss.gen->cfg->shutdown_timeout * 1000, 0);
}

static void
on_async(uv_async_t *a)
{
	struct worker *w = a->data;
	struct worker_msg *msgs[8];
	size_t i, n;

	__atomic_store_n(&w->ping_seen, __atomic_load_n(&w->ping_want,
	    __ATOMIC_ACQUIRE), __ATOMIC_RELEASE);
	uv_mutex_lock(&w->mu);
	n = w->n_inbox;
	memcpy(msgs, w->inbox, n * sizeof(msgs[0]));
	w->n_inbox = 0;
	uv_mutex_unlock(&w->mu);
	for (i = 0; i < n; i++) {
		if (msgs[i]->stop)
			worker_stop(w, msgs[i]->stop);
		else if (msgs[i]->gen != NULL && !w->ss.stopping)
			worker_apply(w, msgs[i]);
		worker_msg_free(msgs[i]);
	}
}

int
worker_post(struct worker *w, struct worker_msg *msg)
{
	int r = -1;

	uv_mutex_lock(&w->mu);
	if (w->n_inbox < sizeof(w->inbox) / sizeof(w->inbox[0])) {
		w->inbox[w->n_inbox++] = msg;
		r = 0;
	}
	uv_mutex_unlock(&w->mu);
	if (r == 0)
		uv_async_send(&w->async);
	return r;
}

void
worker_ping(struct worker *w, uint64_t seq)
{
	__atomic_store_n(&w->ping_want, seq, __ATOMIC_RELEASE);
	uv_async_send(&w->async);
}

uint64_t
worker_pong(const struct worker *w)
{
	return __atomic_load_n(&w->ping_seen, __ATOMIC_ACQUIRE);
}

struct worker *
worker_new(int index, struct worker_msg *msg, void (*done)(void *),
    void *arg)
{
	struct worker *w;
	int workers;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		return NULL;
	w->done = done;
	w->done_arg = arg;
	w->index = index;
	if (uv_loop_init(&w->loop) < 0) {
		free(w);
		return NULL;
	}
	uv_mutex_init(&w->mu);
	w->ss.loop = &w->loop;
	w->ss.index = (unsigned)index;
	w->ss.gone = on_session_gone;
	w->ss.gone_arg = w;
	if (gethostname(w->ss.hostname, sizeof(w->ss.hostname) - 1) < 0)
		strcpy(w->ss.hostname, "localhost");
	uv_timer_init(&w->loop, &w->stop_timer);
	w->stop_timer.data = w;
	uv_async_init(&w->loop, &w->async, on_async);
	w->async.data = w;
	uv_timer_init(&w->loop, &w->refuse_timer);
	w->refuse_timer.data = w;
	w->reserve_fd = reserve_open();
	workers = msg->gen->cfg->workers > 0 ? msg->gen->cfg->workers :
	    (int)uv_available_parallelism();
	w->headroom = workers < 1 ? 2 : workers >= HEADROOM_MAX ?
	    HEADROOM_MAX : workers + 1;
	worker_apply(w, msg);
	worker_msg_free(msg);
	return w;
}

static void
worker_main(void *arg)
{
	struct worker *w = arg;

	uv_run(&w->loop, UV_RUN_DEFAULT);
	w->done(w->done_arg);
}

int
worker_start(struct worker *w)
{
	return uv_thread_create(&w->thread, worker_main, w);
}

void
worker_join_free(struct worker *w)
{
	uv_thread_join(&w->thread);
	/* Run close callbacks still pending, then free. */
	uv_run(&w->loop, UV_RUN_NOWAIT);
	uv_loop_close(&w->loop);
	if (w->reserve_fd >= 0)
		close(w->reserve_fd);
	free(w->lsn);
	gen_unref(w->ss.gen);
	uv_mutex_destroy(&w->mu);
	free(w);
}
