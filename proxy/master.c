/*
 * master - the process: listening sockets, privileges, workers, signals,
 * reload, and the /metrics endpoint.
 *
 * The master thread binds every listening socket (one SO_REUSEPORT socket
 * per listener per worker, so that each worker accepts on its own and no
 * lock sits on the accept path), drops privileges, starts the workers and
 * then only handles signals and metrics scrapes.  SIGHUP loads the new
 * configuration and certificates beside the running ones; only when all
 * of it is good are the workers told to switch (a listener whose address
 * did not change keeps its sockets).  SIGTERM/SIGINT ask every worker for a
 * graceful stop; a second one stops at once.
 */
#include <errno.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "master.h"
#include "notify.h"
#include "stats.h"
#include "tls.h"
#include "worker.h"

#define HTTP_REQ_MAX	4096
#define METRICS_MAX	(256 * 1024)

struct master {
	uv_loop_t		*loop;
	struct config		*cfg;
	int			 nworkers;
	struct worker		**w;
	struct lsn_shared	*registry;
	uv_signal_t		 sig_term, sig_int, sig_hup;
	uv_async_t		 done;
	atomic_int		 n_done;
	int			 stopping;
	uint64_t		 start_ms;
	uv_tcp_t		*stats;		/* the /metrics listener, or NULL */
	char			*stats_addr;	/* what stats listens on now */
};

struct http_conn {
	uv_tcp_t		 tcp;
	struct master		*m;
	size_t			 len;
	char			 req[HTTP_REQ_MAX];
};

/* Load, check and build everything of a configuration; NULL on error
 * (logged, or printed by the caller). */
struct config *
master_load(const char *path, struct strlist *errs, struct strlist *warns)
{
	struct config *cfg;

	if ((cfg = cfg_load(path, errs, warns)) == NULL)
		return NULL;
	if (tls_set_build(cfg, errs, warns) < 0 || errs->n > 0) {
		cfg_unref(cfg);
		return NULL;
	}
	return cfg;
}

static struct lsn_shared *
registry_get(struct master *m, const char *name)
{
	struct lsn_shared *sh;

	for (sh = m->registry; sh != NULL; sh = sh->next)
		if (strcmp(sh->name, name) == 0)
			return sh;
	if ((sh = calloc(1, sizeof(*sh))) == NULL ||
	    (sh->name = strdup(name)) == NULL ||
	    (sh->limits = limits_new()) == NULL ||
	    (sh->shards = calloc((size_t)m->nworkers,
	    sizeof(*sh->shards))) == NULL) {
		if (sh != NULL) {
			free(sh->name);
			limits_free(sh->limits);
			free(sh);
		}
		return NULL;
	}
	sh->next = m->registry;
	m->registry = sh;
	return sh;
}

static int
addr_equal(const struct cfg_addr *a, const struct cfg_addr *b)
{
	return a->sslen == b->sslen && memcmp(&a->ss, &b->ss, a->sslen) == 0;
}

/* One listening socket with SO_REUSEPORT; -1 with errno on failure. */
static int
bind_one(const struct cfg_addr *a)
{
	int fd, one = 1, e;

	fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    (a->ss.ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6,
	    IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
	    bind(fd, (const struct sockaddr *)&a->ss, a->sslen) < 0 ||
	    listen(fd, 511) < 0) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/*
 * Prepare one message per worker switching to cfg (old may be NULL): new
 * sockets for new addresses, kept ones for unchanged addresses.  Returns 0,
 * or -1 (logged) with nothing changed.
 */
static int
master_prepare(struct master *m, struct config *old, struct config *cfg,
    struct worker_msg **msgs)
{
	size_t n = cfg->n_listeners, i, j;
	long *keep = NULL;
	int *fds = NULL, k, e;
	struct lsn_shared **sh = NULL;
	char *used = NULL;

	keep = calloc(n ? n : 1, sizeof(*keep));
	fds = malloc((n ? n : 1) * (size_t)m->nworkers * sizeof(*fds));
	sh = calloc(n ? n : 1, sizeof(*sh));
	used = calloc(old ? old->n_listeners + 1 : 1, 1);
	if (keep == NULL || fds == NULL || sh == NULL || used == NULL)
		goto fail;
	for (i = 0; i < n * (size_t)m->nworkers; i++)
		fds[i] = -1;
	for (i = 0; i < n; i++) {
		keep[i] = -1;
		if ((sh[i] = registry_get(m, cfg->listeners[i].name)) == NULL)
			goto fail;
		for (j = 0; old != NULL && j < old->n_listeners; j++)
			if (!used[j] && addr_equal(&old->listeners[j].listen,
			    &cfg->listeners[i].listen)) {
				used[j] = 1;
				keep[i] = (long)j;
				break;
			}
		if (keep[i] >= 0)
			continue;
		for (k = 0; k < m->nworkers; k++)
			if ((fds[i * (size_t)m->nworkers + (size_t)k] =
			    bind_one(&cfg->listeners[i].listen)) < 0) {
				e = errno;
				log_error("listener %s: cannot listen on %s: %s",
				    cfg->listeners[i].name,
				    cfg->listeners[i].listen.text, strerror(e));
				goto fail;
			}
	}
	for (k = 0; k < m->nworkers; k++) {
		struct worker_msg *msg;

		if ((msg = msgs[k] = calloc(1, sizeof(*msg))) == NULL)
			goto fail;
		msg->n = n;
		msg->fd = malloc((n ? n : 1) * sizeof(int));
		msg->keep = malloc((n ? n : 1) * sizeof(long));
		msg->sh = malloc((n ? n : 1) * sizeof(*msg->sh));
		if (msg->fd == NULL || msg->keep == NULL || msg->sh == NULL)
			goto fail;
		for (i = 0; i < n; i++) {
			msg->fd[i] = fds[i * (size_t)m->nworkers + (size_t)k];
			msg->keep[i] = keep[i];
			msg->sh[i] = sh[i];
		}
		msg->cfg = cfg_ref(cfg);
	}
	free(keep);
	free(fds);
	free(sh);
	free(used);
	return 0;
fail:
	for (k = 0; k < m->nworkers; k++) {
		if (msgs[k] != NULL && msgs[k]->fd != NULL)
			for (i = 0; i < n; i++)
				msgs[k]->fd[i] = -1;	/* closed below */
		worker_msg_free(msgs[k]);
		msgs[k] = NULL;
	}
	if (fds != NULL)
		for (i = 0; i < n * (size_t)m->nworkers; i++)
			if (fds[i] >= 0)
				close(fds[i]);
	free(keep);
	free(fds);
	free(sh);
	free(used);
	return -1;
}

static void
log_listeners(const struct config *cfg)
{
	size_t i;

	for (i = 0; i < cfg->n_listeners; i++)
		log_info("listener %s: %s -> %s (%s)", cfg->listeners[i].name,
		    cfg->listeners[i].listen.text,
		    cfg->listeners[i].backend.address.text,
		    cfg->listeners[i].tls_mode == TLS_MODE_IMPLICIT ?
		    "implicit TLS" : cfg->listeners[i].tls.n_certs > 0 ?
		    "STARTTLS" : "no TLS");
}

static int
drop_privileges(const char *user)
{
	struct passwd *pw;

	if (user[0] == '\0') {
		if (geteuid() == 0)
			log_warnx("running as root: set user = \"...\" to "
			    "drop privileges after binding");
		return 0;
	}
	if ((pw = getpwnam(user)) == NULL) {
		log_error("user %s: no such user", user);
		return -1;
	}
	if (geteuid() != 0) {
		if (getuid() == pw->pw_uid)
			return 0;
		log_error("user %s: cannot switch users without root", user);
		return -1;
	}
	if (initgroups(pw->pw_name, pw->pw_gid) < 0 ||
	    setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0) {
		log_error("user %s: cannot drop privileges: %s", user,
		    strerror(errno));
		return -1;
	}
	if (setuid(0) == 0) {
		log_error("user %s: privileges could be regained", user);
		return -1;
	}
	log_info("running as user %s (uid %u, gid %u)", user,
	    (unsigned)pw->pw_uid, (unsigned)pw->pw_gid);
	return 0;
}

/* --- /metrics -------------------------------------------------------- */

static void
on_http_closed(uv_handle_t *h)
{
	free(h->data);
}

static void
on_http_written(uv_write_t *req, int status)
{
	struct http_conn *hc = req->data;

	(void)status;
	free(((char **)(req + 1))[0]);
	free(req);
	uv_close((uv_handle_t *)&hc->tcp, on_http_closed);
}

static void
http_send(struct http_conn *hc, const char *status, const char *ctype,
    const char *body, size_t blen)
{
	uv_write_t *req;
	char *out;
	uv_buf_t b;
	int n;

	req = malloc(sizeof(*req) + sizeof(char *));
	out = malloc(blen + 256);
	if (req == NULL || out == NULL) {
		free(req);
		free(out);
		uv_close((uv_handle_t *)&hc->tcp, on_http_closed);
		return;
	}
	n = snprintf(out, 256, "HTTP/1.1 %s\r\nContent-Type: %s\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n\r\n", status, ctype,
	    blen);
	memcpy(out + n, body, blen);
	((char **)(req + 1))[0] = out;
	req->data = hc;
	b = uv_buf_init(out, (unsigned)((size_t)n + blen));
	if (uv_write(req, (uv_stream_t *)&hc->tcp, &b, 1,
	    on_http_written) < 0) {
		free(out);
		free(req);
		uv_close((uv_handle_t *)&hc->tcp, on_http_closed);
	}
}

static void
metrics_reply(struct http_conn *hc)
{
	struct master *m = hc->m;
	const struct config *cfg = m->cfg;
	const char **names = NULL;
	const struct stats **shards = NULL;
	struct stats *totals = NULL;
	struct lsn_shared *sh;
	size_t nl = 0, i, len = 0;
	char *out = NULL;
	int k;

	for (sh = m->registry; sh != NULL; sh = sh->next)
		nl++;
	names = calloc(nl + 1, sizeof(*names));
	totals = calloc(nl + 1, sizeof(*totals));
	shards = calloc((size_t)m->nworkers, sizeof(*shards));
	out = malloc(METRICS_MAX);
	if (names == NULL || totals == NULL || shards == NULL || out == NULL)
		goto done;
	/* Listeners of the current config first, in config order; names
	 * dropped by a reload keep their (final) counters after them. */
	i = 0;
	for (size_t c = 0; c < cfg->n_listeners; c++)
		for (sh = m->registry; sh != NULL; sh = sh->next)
			if (strcmp(sh->name, cfg->listeners[c].name) == 0) {
				names[i] = sh->name;
				for (k = 0; k < m->nworkers; k++)
					shards[k] = &sh->shards[k];
				stats_sum(shards, (size_t)m->nworkers,
				    &totals[i]);
				i++;
			}
	nl = i;
	len = stats_render(names, totals, nl,
	    (double)(uv_now(m->loop) - m->start_ms) / 1000.0, out,
	    METRICS_MAX);
done:
	if (len > 0)
		http_send(hc, "200 OK", "text/plain; version=0.0.4", out, len);
	else
		http_send(hc, "500 Internal Server Error", "text/plain",
		    "error\n", 6);
	free(names);
	free(totals);
	free(shards);
	free(out);
}

static void
http_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct http_conn *hc = h->data;

	(void)hint;
	b->base = hc->req + hc->len;
	b->len = sizeof(hc->req) - hc->len - 1;
}

static void
on_http_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
	struct http_conn *hc = st->data;

	(void)b;
	if (nread == 0)
		return;
	if (nread < 0) {
		uv_close((uv_handle_t *)&hc->tcp, on_http_closed);
		return;
	}
	hc->len += (size_t)nread;
	hc->req[hc->len] = '\0';
	if (strstr(hc->req, "\r\n\r\n") == NULL &&
	    strstr(hc->req, "\n\n") == NULL) {
		if (hc->len >= sizeof(hc->req) - 1) {
			uv_read_stop(st);
			http_send(hc, "431 Request Header Fields Too Large",
			    "text/plain", "too large\n", 10);
		}
		return;
	}
	uv_read_stop(st);
	if (strncmp(hc->req, "GET /metrics ", 13) == 0 ||
	    strncmp(hc->req, "GET /metrics?", 13) == 0)
		metrics_reply(hc);
	else if (strncmp(hc->req, "GET ", 4) == 0)
		http_send(hc, "404 Not Found", "text/plain", "not found\n", 10);
	else
		http_send(hc, "405 Method Not Allowed", "text/plain",
		    "method not allowed\n", 19);
}

static void
on_http_conn(uv_stream_t *server, int status)
{
	struct master *m = server->data;
	struct http_conn *hc;

	if (status < 0 || (hc = calloc(1, sizeof(*hc))) == NULL)
		return;
	hc->m = m;
	uv_tcp_init(m->loop, &hc->tcp);
	hc->tcp.data = hc;
	if (uv_accept(server, (uv_stream_t *)&hc->tcp) < 0 ||
	    uv_read_start((uv_stream_t *)&hc->tcp, http_alloc,
	    on_http_read) < 0)
		uv_close((uv_handle_t *)&hc->tcp, on_http_closed);
}

static void
on_stats_closed(uv_handle_t *h)
{
	free(h);
}

/* Close the /metrics listener.  Its memory goes in the close callback, so a
 * reload may open a new one at once. */
static void
stats_close(struct master *m)
{
	if (m->stats != NULL) {
		uv_close((uv_handle_t *)m->stats, on_stats_closed);
		m->stats = NULL;
	}
	free(m->stats_addr);
	m->stats_addr = NULL;
}

static int
stats_open(struct master *m, const struct config *cfg)
{
	int r;

	if (!cfg->stats_enabled) {
		stats_close(m);
		return 0;
	}
	if (m->stats != NULL && strcmp(m->stats_addr, cfg->stats_listen.text) == 0)
		return 0;
	stats_close(m);
	if ((m->stats = malloc(sizeof(*m->stats))) == NULL)
		return -1;
	uv_tcp_init(m->loop, m->stats);
	m->stats->data = m;
	if ((r = uv_tcp_bind(m->stats,
	    (const struct sockaddr *)&cfg->stats_listen.ss, 0)) < 0 ||
	    (r = uv_listen((uv_stream_t *)m->stats, 64, on_http_conn)) < 0) {
		log_error("stats: cannot listen on %s: %s",
		    cfg->stats_listen.text, uv_strerror(r));
		stats_close(m);
		return -1;
	}
	m->stats_addr = strdup(cfg->stats_listen.text);
	log_info("stats: /metrics on http://%s/metrics", cfg->stats_listen.text);
	return 0;
}

/* --- signals ---------------------------------------------------------- */

static void
master_reload(struct master *m)
{
	struct strlist errs = { 0 }, warns = { 0 };
	struct worker_msg **msgs;
	struct config *cfg;
	size_t i;
	int k;

	log_info("SIGHUP: reloading %s", m->cfg->path);
	cfg = master_load(m->cfg->path, &errs, &warns);
	for (i = 0; i < errs.n; i++)
		log_error("%s", errs.v[i]);
	strlist_log_warnings(&warns);
	strlist_free(&errs);
	strlist_free(&warns);
	if (cfg == NULL) {
		log_error("reload failed: keeping the running configuration");
		return;
	}
	if (cfg->workers != m->cfg->workers)
		log_warnx("reload: workers cannot change without a restart "
		    "(keeping %d)", m->nworkers);
	if ((msgs = calloc((size_t)m->nworkers, sizeof(*msgs))) == NULL ||
	    master_prepare(m, m->cfg, cfg, msgs) < 0) {
		free(msgs);
		cfg_unref(cfg);
		log_error("reload failed: keeping the running configuration");
		return;
	}
	for (k = 0; k < m->nworkers; k++)
		if (worker_post(m->w[k], msgs[k]) < 0) {
			log_error("worker %d: busy, reload not applied", k);
			worker_msg_free(msgs[k]);
		}
	free(msgs);
	log_init(cfg->log_level, cfg->log_format == LOG_FORMAT_JSON);
	stats_open(m, cfg);
	cfg_unref(m->cfg);
	m->cfg = cfg;
	log_listeners(cfg);
	log_info("reload done");
}

static void
post_stop(struct master *m, int how)
{
	struct worker_msg *msg;
	int k;

	for (k = 0; k < m->nworkers; k++) {
		if ((msg = calloc(1, sizeof(*msg))) == NULL)
			continue;
		msg->stop = how;
		if (worker_post(m->w[k], msg) < 0)
			free(msg);
	}
}

static void
on_signal(uv_signal_t *h, int signum)
{
	struct master *m = h->data;

	if (signum == SIGHUP) {
		if (!m->stopping) {
			notify_reloading();
			master_reload(m);
			notify_ready();
		}
		return;
	}
	if (m->stopping) {
		log_info("second stop signal: closing all sessions now");
		post_stop(m, 2);
		return;
	}
	log_info("%s: stopping; open sessions get up to %d s",
	    signum == SIGTERM ? "SIGTERM" : "SIGINT", m->cfg->shutdown_timeout);
	m->stopping = 1;
	notify_stopping();
	stats_close(m);
	post_stop(m, 1);
}

void
master_worker_done(struct master *m)
{
	atomic_fetch_add(&m->n_done, 1);
	uv_async_send(&m->done);
}

static void
on_done(uv_async_t *a)
{
	struct master *m = a->data;

	if (atomic_load(&m->n_done) < m->nworkers)
		return;
	uv_close((uv_handle_t *)&m->sig_term, NULL);
	uv_close((uv_handle_t *)&m->sig_int, NULL);
	uv_close((uv_handle_t *)&m->sig_hup, NULL);
	uv_close((uv_handle_t *)&m->done, NULL);
	stats_close(m);
}

int
master_run(struct config *cfg)
{
	struct master mm, *m = &mm;
	struct worker_msg **msgs = NULL;
	struct lsn_shared *sh, *next;
	int k, started = 0, rc = 1;

	memset(m, 0, sizeof(*m));
	m->loop = uv_default_loop();
	m->cfg = cfg_ref(cfg);
	m->start_ms = uv_now(m->loop);
	m->nworkers = cfg->workers > 0 ? cfg->workers :
	    (int)uv_available_parallelism();
	if (m->nworkers < 1)
		m->nworkers = 1;
	if ((m->w = calloc((size_t)m->nworkers, sizeof(*m->w))) == NULL ||
	    (msgs = calloc((size_t)m->nworkers, sizeof(*msgs))) == NULL)
		goto out;
	atomic_init(&m->n_done, 0);
	uv_async_init(m->loop, &m->done, on_done);
	m->done.data = m;
	uv_signal_init(m->loop, &m->sig_term);
	uv_signal_init(m->loop, &m->sig_int);
	uv_signal_init(m->loop, &m->sig_hup);
	m->sig_term.data = m->sig_int.data = m->sig_hup.data = m;
	uv_signal_start(&m->sig_term, on_signal, SIGTERM);
	uv_signal_start(&m->sig_int, on_signal, SIGINT);
	uv_signal_start(&m->sig_hup, on_signal, SIGHUP);
	notify_init();

	if (master_prepare(m, NULL, cfg, msgs) < 0 ||
	    stats_open(m, cfg) < 0 || drop_privileges(cfg->user) < 0) {
		for (k = 0; k < m->nworkers; k++)
			worker_msg_free(msgs[k]);
		uv_close((uv_handle_t *)&m->sig_term, NULL);
		uv_close((uv_handle_t *)&m->sig_int, NULL);
		uv_close((uv_handle_t *)&m->sig_hup, NULL);
		uv_close((uv_handle_t *)&m->done, NULL);
		stats_close(m);
		uv_run(m->loop, UV_RUN_DEFAULT);
		goto out;
	}
	for (k = 0; k < m->nworkers; k++) {
		if ((m->w[k] = worker_new(m, k, msgs[k])) == NULL ||
		    worker_start(m->w[k]) != 0) {
			log_error("cannot start worker %d", k);
			if (m->w[k] != NULL) {
				uv_loop_close(&m->w[k]->loop);
				free(m->w[k]);
				m->w[k] = NULL;
			}
			for (k = k + 1; k < m->nworkers; k++)
				worker_msg_free(msgs[k]);
			break;
		}
		started++;
	}
	if (started < m->nworkers) {
		/* Stop the ones that run and wait for them. */
		m->nworkers = started;
		m->stopping = 1;
		post_stop(m, 2);
	} else {
		log_listeners(cfg);
		log_info("%d worker(s) running", m->nworkers);
		notify_ready();
		rc = 0;
	}
	uv_run(m->loop, UV_RUN_DEFAULT);
	for (k = 0; k < m->nworkers; k++)
		if (m->w[k] != NULL)
			worker_join_free(m->w[k]);
	if (rc == 0)
		log_info("stopped");
out:
	uv_loop_close(m->loop);
	for (sh = m->registry; sh != NULL; sh = next) {
		next = sh->next;
		free(sh->name);
		limits_free(sh->limits);
		free(sh->shards);
		free(sh);
	}
	free(m->w);
	free(msgs);
	cfg_unref(m->cfg);
	return rc;
}
