/*
 * worker - the event loop: listening sockets, signals, graceful stop, and
 * the per-listener connection limits.
 *
 * One worker per loop; today the proxy runs one, in the main thread.  All
 * per-loop state lives in struct worker so that more loops are a loop over
 * workers.  The limits are the only state shared between loops: a mutex
 * taken on accept and on close, never on the data path.
 *
 * Stop (SIGTERM/SIGINT): close the listeners, let sessions finish for
 * shutdown_timeout seconds, then answer "421 4.3.2" to what is left, and
 * close whatever still lingers CLOSE_GRACE seconds later.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <netinet/in.h>

#include "log.h"
#include "session.h"
#include "worker.h"

#define LIMITS_BUCKETS	1024
#define CLOSE_GRACE	5	/* seconds after the 421s, then abort */

struct ip_count {
	struct ip_count	*next;
	uint8_t		 key[16];
	int		 count;
};

struct lsn_limits {
	pthread_mutex_t	 mu;
	int		 total;
	struct ip_count	*b[LIMITS_BUCKETS];
};

static struct lsn_limits *
limits_new(void)
{
	struct lsn_limits *l;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		return NULL;
	pthread_mutex_init(&l->mu, NULL);
	return l;
}

static void
limits_free(struct lsn_limits *l)
{
	struct ip_count *c, *n;
	size_t i;

	if (l == NULL)
		return;
	for (i = 0; i < LIMITS_BUCKETS; i++)
		for (c = l->b[i]; c != NULL; c = n) {
			n = c->next;
			free(c);
		}
	pthread_mutex_destroy(&l->mu);
	free(l);
}

/* The address as 16 bytes (IPv4 as v4-mapped IPv6) and its bucket. */
static unsigned
limits_key(const struct sockaddr *sa, uint8_t key[16])
{
	unsigned h = 2166136261u;
	size_t i;

	memset(key, 0, 16);
	if (sa->sa_family == AF_INET) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6)
		memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
	for (i = 0; i < 16; i++)
		h = (h ^ key[i]) * 16777619u;
	return h % LIMITS_BUCKETS;
}

int
limits_take(struct lsn_limits *l, const struct cfg_listener *lc,
    const struct sockaddr *sa)
{
	uint8_t key[16];
	unsigned h = limits_key(sa, key);
	struct ip_count *c;
	int r = -1;

	pthread_mutex_lock(&l->mu);
	for (c = l->b[h]; c != NULL; c = c->next)
		if (memcmp(c->key, key, 16) == 0)
			break;
	if (l->total >= lc->limits.max_connections ||
	    (c != NULL && c->count >= lc->limits.max_connections_per_ip))
		goto out;
	if (c == NULL) {
		if ((c = calloc(1, sizeof(*c))) == NULL)
			goto out;
		memcpy(c->key, key, 16);
		c->next = l->b[h];
		l->b[h] = c;
	}
	c->count++;
	l->total++;
	r = 0;
out:
	pthread_mutex_unlock(&l->mu);
	return r;
}

void
limits_release(struct lsn_limits *l, const struct sockaddr *sa)
{
	uint8_t key[16];
	unsigned h = limits_key(sa, key);
	struct ip_count *c, **pp;

	pthread_mutex_lock(&l->mu);
	for (pp = &l->b[h]; (c = *pp) != NULL; pp = &c->next)
		if (memcmp(c->key, key, 16) == 0) {
			l->total--;
			if (--c->count == 0) {
				*pp = c->next;
				free(c);
			}
			break;
		}
	pthread_mutex_unlock(&l->mu);
}

static void
on_connection(uv_stream_t *server, int status)
{
	struct lsn *l = server->data;

	if (status < 0) {
		log_warnx("listener %s: accept: %s",
		    l->w->cfg->listeners[l->li].name, uv_strerror(status));
		return;
	}
	session_accept(l);
}

static int
lsn_open(struct worker *w, size_t li)
{
	const struct cfg_listener *lc = &w->cfg->listeners[li];
	struct lsn *l = &w->lsn[li];
	int r;

	l->w = w;
	l->li = li;
	uv_tcp_init(&w->loop, &l->tcp);
	l->tcp.data = l;
	l->open = 1;
	if ((r = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&lc->listen.ss,
	    0)) < 0 || (r = uv_listen((uv_stream_t *)&l->tcp, 511,
	    on_connection)) < 0) {
		log_error("listener %s: cannot listen on %s: %s", lc->name,
		    lc->listen.text, uv_strerror(r));
		return -1;
	}
	log_info("listener %s: listening on %s, backend %s", lc->name,
	    lc->listen.text, lc->backend.address.text);
	return 0;
}

static void
worker_close_all(struct worker *w)
{
	size_t i;

	for (i = 0; i < w->n_lsn; i++)
		if (w->lsn[i].open && !uv_is_closing((uv_handle_t *)&w->lsn[i].tcp))
			uv_close((uv_handle_t *)&w->lsn[i].tcp, NULL);
	if (!uv_is_closing((uv_handle_t *)&w->sig_term)) {
		uv_close((uv_handle_t *)&w->sig_term, NULL);
		uv_close((uv_handle_t *)&w->sig_int, NULL);
		uv_close((uv_handle_t *)&w->sig_hup, NULL);
	}
	if (!uv_is_closing((uv_handle_t *)&w->stop_timer))
		uv_close((uv_handle_t *)&w->stop_timer, NULL);
}

void
worker_session_gone(struct worker *w)
{
	if (w->stopping && w->n_sessions == 0)
		worker_close_all(w);
}

static void
on_stop_timer(uv_timer_t *t)
{
	struct worker *w = t->data;
	struct session *s, *next;

	if (w->stopping == 1) {
		log_info("shutdown: %zu session(s) left after %d s, closing "
		    "them with 421", w->n_sessions, w->cfg->shutdown_timeout);
		w->stopping = 2;
		for (s = w->sessions; s != NULL; s = next) {
			next = session_next(s);
			session_shutdown(s);
		}
		if (w->n_sessions > 0)
			uv_timer_start(&w->stop_timer, on_stop_timer,
			    CLOSE_GRACE * 1000, 0);
		return;
	}
	for (s = w->sessions; s != NULL; s = next) {
		next = session_next(s);
		session_abort(s, "shutdown");
	}
}

static void
on_signal(uv_signal_t *h, int signum)
{
	struct worker *w = h->data;
	size_t i;

	if (signum == SIGHUP) {
		log_warnx("SIGHUP: configuration reload is not supported yet; "
		    "ignored");
		return;
	}
	if (w->stopping) {
		log_info("second stop signal: closing all sessions now");
		w->stopping = 1;
		on_stop_timer(&w->stop_timer);
		return;
	}
	log_info("received %s: stopping (%zu open session(s), up to %d s)",
	    signum == SIGTERM ? "SIGTERM" : "SIGINT", w->n_sessions,
	    w->cfg->shutdown_timeout);
	w->stopping = 1;
	for (i = 0; i < w->n_lsn; i++)
		if (w->lsn[i].open)
			uv_close((uv_handle_t *)&w->lsn[i].tcp, NULL);
	for (i = 0; i < w->n_lsn; i++)
		w->lsn[i].open = 0;
	if (w->n_sessions == 0) {
		worker_close_all(w);
		return;
	}
	uv_timer_start(&w->stop_timer, on_stop_timer,
	    (uint64_t)w->cfg->shutdown_timeout * 1000, 0);
}

int
worker_run(struct config *cfg)
{
	struct worker *w;
	size_t i;
	int rc = 0;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		return -1;
	uv_loop_init(&w->loop);
	w->cfg = cfg_ref(cfg);
	if (gethostname(w->hostname, sizeof(w->hostname) - 1) < 0)
		strcpy(w->hostname, "localhost");
	w->n_lsn = cfg->n_listeners;
	w->lsn = calloc(w->n_lsn, sizeof(*w->lsn));
	w->limits = calloc(w->n_lsn, sizeof(*w->limits));
	if (w->lsn == NULL || w->limits == NULL) {
		rc = -1;
		goto done;
	}
	for (i = 0; i < w->n_lsn; i++)
		if ((w->limits[i] = limits_new()) == NULL) {
			rc = -1;
			goto done;
		}
	uv_timer_init(&w->loop, &w->stop_timer);
	w->stop_timer.data = w;
	uv_signal_init(&w->loop, &w->sig_term);
	uv_signal_init(&w->loop, &w->sig_int);
	uv_signal_init(&w->loop, &w->sig_hup);
	w->sig_term.data = w->sig_int.data = w->sig_hup.data = w;
	uv_signal_start(&w->sig_term, on_signal, SIGTERM);
	uv_signal_start(&w->sig_int, on_signal, SIGINT);
	uv_signal_start(&w->sig_hup, on_signal, SIGHUP);
	for (i = 0; i < w->n_lsn; i++)
		if (lsn_open(w, i) < 0) {
			rc = -1;
			break;
		}
	if (rc < 0)
		worker_close_all(w);
	uv_run(&w->loop, UV_RUN_DEFAULT);
	if (rc == 0)
		log_info("stopped");
done:
	uv_loop_close(&w->loop);
	if (w->limits != NULL)
		for (i = 0; i < w->n_lsn; i++)
			limits_free(w->limits[i]);
	free(w->limits);
	free(w->lsn);
	cfg_unref(w->cfg);
	free(w);
	return rc;
}
