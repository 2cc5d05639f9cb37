/*
 * master - the process: listening sockets, privileges, workers, signals,
 * reload, and what /metrics and /healthz report.
 *
 * The master thread binds every listening socket (one SO_REUSEPORT socket
 * per listener per worker, so that each worker accepts on its own and no
 * lock sits on the accept path), drops privileges, starts the workers and
 * then only handles signals, metrics scrapes and health probes (served by
 * metrics_http.c) and the certificate watch (certwatch.c, which asks for
 * the same reload as SIGHUP when a file changes).  SIGHUP loads the new
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "certwatch.h"
#include "gen.h"
#include "log.h"
#include "master.h"
#include "metrics_http.h"
#include "notify.h"
#include "stats.h"
#include "tls.h"
#include "worker.h"

/* Descriptors besides the sessions': stdio, loops, signals, metrics,
 * files read on reload, and per worker its loop, listeners and reserve. */
#define FD_SLACK	64
#define FD_PER_WORKER	8

struct master {
	uv_loop_t		*loop;
	struct gen		*gen;		/* the running generation */
	int			 nworkers;
	struct worker		**w;
	struct lsn_shared	*registry;
	uv_signal_t		 sig_term, sig_int, sig_hup;
	uv_async_t		 done;
	atomic_int		 n_done;
	int			 stopping;
	uint64_t		 start_ms;
	double			 start_time;	/* Unix seconds */
	struct metrics_http	*http;		/* /metrics, or NULL */
	uint64_t		 ping_seq;	/* /healthz */
	struct certwatch	*cw;		/* certificate files, or NULL */
	uint64_t		 reloads_ok;
	uint64_t		 reloads_failed;
	double			 last_good;	/* Unix seconds of the last load */
};

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
 * SO_REUSEPORT lets every socket of our user that sets it share a port, so
 * a second instance (or an MTA that sets it) would silently split the
 * connections with us.  Before binding a new address, bind a plain socket
 * without SO_REUSEPORT to it: EADDRINUSE means another socket listens
 * there, or on an address that overlaps it (0.0.0.0 against 127.0.0.1).
 * A listener of the running configuration on the same port could be that
 * socket, and goes away with the switch: no probe then.
 */
static int
listen_busy(const struct config *old, const struct cfg_addr *a)
{
	const struct cfg_addr *o;
	int fd, one = 1, busy = 0;
	size_t j;

	for (j = 0; old != NULL && j < old->n_listeners; j++) {
		o = &old->listeners[j].listen;
		if (o->ss.ss_family == a->ss.ss_family &&
		    ((const struct sockaddr_in *)&o->ss)->sin_port ==
		    ((const struct sockaddr_in *)&a->ss)->sin_port)
			return 0;	/* sin6_port: same offset */
	}
	fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;		/* bind_one will say why */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
	    (a->ss.ss_family != AF_INET6 || setsockopt(fd, IPPROTO_IPV6,
	    IPV6_V6ONLY, &one, sizeof(one)) == 0) &&
	    bind(fd, (const struct sockaddr *)&a->ss, a->sslen) < 0 &&
	    errno == EADDRINUSE)
		busy = 1;
	close(fd);
	return busy;
}

/*
 * Raise the soft RLIMIT_NOFILE to the hard limit (at start), and warn when
 * it is below what max_connections may need: two descriptors a session
 * (client and backend) plus the proxy's own.
 */
static void
fd_limit_check(const struct config *cfg, int nworkers, int raise)
{
	unsigned long long conns = 0, need, old;
	struct rlimit rl;
	size_t i;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		log_warn("getrlimit(RLIMIT_NOFILE)");
		return;
	}
	if (raise && rl.rlim_cur != rl.rlim_max) {
		old = (unsigned long long)rl.rlim_cur;
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
			log_warn("cannot raise the descriptor limit from %llu "
			    "to %llu", old, (unsigned long long)rl.rlim_max);
			rl.rlim_cur = (rlim_t)old;
		} else
			log_info("descriptor limit raised from %llu to %llu",
			    old, (unsigned long long)rl.rlim_cur);
	}
	for (i = 0; i < cfg->n_listeners; i++)
		conns += (unsigned long long)
		    cfg->listeners[i].limits.max_connections;
	need = 2 * conns + FD_SLACK + (unsigned long long)nworkers *
	    (cfg->n_listeners + FD_PER_WORKER);
	if (rl.rlim_cur != RLIM_INFINITY &&
	    (unsigned long long)rl.rlim_cur < need)
		log_warnx("descriptor limit (RLIMIT_NOFILE) is %llu, below the "
		    "%llu that max_connections needs (%llu connections in "
		    "all, 2 descriptors each, and %llu for the proxy): "
		    "connections beyond it will be refused with 421; raise "
		    "the hard limit (LimitNOFILE= or ulimit -Hn) or lower "
		    "limits.max_connections", (unsigned long long)rl.rlim_cur,
		    need, conns, need - 2 * conns);
}

/*
 * Prepare one message per worker switching to g (old may be NULL): new
 * sockets for new addresses, kept ones for unchanged addresses.  Returns 0,
 * or -1 (logged) with nothing changed.
 */
static int
master_prepare(struct master *m, struct config *old, struct gen *g,
    struct worker_msg **msgs)
{
	const struct config *cfg = g->cfg;
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
	/* Probe every new address before binding any of ours. */
	for (i = 0; i < n; i++)
		if (listen_busy(old, &cfg->listeners[i].listen)) {
			log_error("%s:%d: listener \"%s\": listen address %s "
			    "is already in use (by another program or "
			    "another starttls-proxy)", cfg->path,
			    cfg->listeners[i].listen_line,
			    cfg->listeners[i].name,
			    cfg->listeners[i].listen.text);
			goto fail;
		}
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
		msg->gen = gen_ref(g);
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

/* --- /metrics and /healthz (served by metrics_http.c) ---------------- */

static double
wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The served certificates of g, for their expiry gauge; NULL when
 * there are none or no memory. */
static struct stats_cert *
metrics_certs(const struct gen *g, size_t *n)
{
	const struct config *cfg = g->cfg;
	struct stats_cert *v;
	struct tls_cert_info ci;
	size_t li, i, max = 0;

	*n = 0;
	for (li = 0; li < cfg->n_listeners; li++)
		max += cfg->listeners[li].tls.n_certs;
	if (max == 0 || (v = calloc(max, sizeof(*v))) == NULL)
		return NULL;
	for (li = 0; li < cfg->n_listeners; li++)
		for (i = 0; *n < max &&
		    tls_cert_info(cfg, g->tls, li, i, &ci) == 0; i++) {
			v[*n].listener = cfg->listeners[li].name;
			v[*n].name = ci.n_names > 0 ? ci.names[0] : "";
			v[*n].key_type = ci.key_type;
			v[*n].not_after = (double)ci.not_after;
			(*n)++;
		}
	return v;
}

static size_t
metrics_render(void *arg, char *out, size_t size)
{
	struct master *m = arg;
	const struct config *cfg = m->gen->cfg;
	const char **names = NULL;
	const struct stats **shards = NULL;
	struct stats *totals = NULL;
	struct stats_process proc;
	struct stats_cert *certs = NULL;
	struct lsn_shared *sh;
	size_t nl = 0, i, len = 0, plen;
	int k;

	for (sh = m->registry; sh != NULL; sh = sh->next)
		nl++;
	names = calloc(nl + 1, sizeof(*names));
	totals = calloc(nl + 1, sizeof(*totals));
	shards = calloc((size_t)m->nworkers, sizeof(*shards));
	if (names == NULL || totals == NULL || shards == NULL)
		goto done;
	/* Listeners of the current config, in config order; names dropped
	 * by a reload are not shown (their counters stay in the registry
	 * and come back if the name does). */
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
	    (double)(uv_now(m->loop) - m->start_ms) / 1000.0, out, size);
	if (len == 0)
		goto done;
	memset(&proc, 0, sizeof(proc));
	proc.start_time = m->start_time;
	proc.version = STP_VERSION;
	proc.openssl = tls_library_version();
	proc.libuv = uv_version_string();
	proc.reloads_ok = m->reloads_ok;
	proc.reloads_failed = m->reloads_failed;
	proc.reload_last_success = m->last_good;
	proc.certs = certs = metrics_certs(m->gen, &proc.n_certs);
	plen = stats_render_process(&proc, out + len, size - len);
	len = plen > 0 ? len + plen : 0;
done:
	free(names);
	free(totals);
	free(shards);
	free(certs);
	return len;
}

/* /healthz: ask every worker loop to answer a new sequence number. */
static uint64_t
health_ping(void *arg)
{
	struct master *m = arg;
	int k;

	if (m->stopping)
		return 0;
	m->ping_seq++;
	for (k = 0; k < m->nworkers; k++)
		if (m->w[k] != NULL)
			worker_ping(m->w[k], m->ping_seq);
	return m->ping_seq;
}

static int
health_unanswered(void *arg, uint64_t seq)
{
	struct master *m = arg;
	int k, n = 0;

	for (k = 0; k < m->nworkers; k++)
		if (m->w[k] == NULL || worker_pong(m->w[k]) < seq)
			n++;
	return n;
}

static void
stats_close(struct master *m)
{
	metrics_http_close(m->http);
	m->http = NULL;
}

static int
stats_open(struct master *m, const struct config *cfg)
{
	static const struct metrics_http_ops ops = {
		.render = metrics_render,
		.ping = health_ping,
		.unanswered = health_unanswered,
	};
	struct metrics_http_ops o = ops;

	if (!cfg->stats_enabled) {
		stats_close(m);
		return 0;
	}
	if (m->http != NULL &&
	    strcmp(metrics_http_addr(m->http), cfg->stats_listen.text) == 0)
		return 0;
	stats_close(m);
	o.arg = m;
	if ((m->http = metrics_http_open(m->loop, &cfg->stats_listen,
	    &o)) == NULL)
		return -1;
	return 0;
}

/* --- signals ---------------------------------------------------------- */

/* A failed reload: counted, logged, the running set stays. */
static void
reload_failed(struct master *m)
{
	m->reloads_failed++;
	log_error("reload failed: keeping the running configuration");
}

static void
reload_config(struct master *m, const char *why)
{
	struct strlist errs = { 0 }, warns = { 0 };
	struct worker_msg **msgs;
	struct config *cfg;
	struct gen *g;
	size_t i;
	int k;

	log_info("%s: reloading %s", why, m->gen->cfg->path);
	g = gen_load(m->gen->cfg->path, &errs, &warns);
	for (i = 0; i < errs.n; i++)
		log_error("%s", errs.v[i]);
	cfg_log_warnings(&warns);
	strlist_free(&errs);
	strlist_free(&warns);
	if (g == NULL) {
		reload_failed(m);
		return;
	}
	cfg = g->cfg;
	if (cfg->workers != m->gen->cfg->workers)
		log_warnx("reload: workers cannot change without a restart "
		    "(keeping %d)", m->nworkers);
	if ((msgs = calloc((size_t)m->nworkers, sizeof(*msgs))) == NULL ||
	    master_prepare(m, m->gen->cfg, g, msgs) < 0) {
		free(msgs);
		gen_unref(g);
		reload_failed(m);
		return;
	}
	for (k = 0; k < m->nworkers; k++)
		if (worker_post(m->w[k], msgs[k]) < 0) {
			log_error("worker %d: busy, reload not applied", k);
			worker_msg_free(msgs[k]);
		}
	free(msgs);
	log_init(cfg->log_level, cfg->log_format == LOG_FORMAT_JSON);
	fd_limit_check(cfg, m->nworkers, 0);
	stats_open(m, cfg);
	gen_unref(m->gen);
	m->gen = g;
	m->reloads_ok++;
	m->last_good = wall_now();
	certwatch_set(m->cw, cfg);
	log_listeners(cfg);
	certs_log(cfg, g->tls);
	log_info("reload done");
}

/* A reload, bracketed for systemd (RELOADING=1 ... READY=1), whatever
 * started it and however it ends. */
static void
master_reload(struct master *m, const char *why)
{
	notify_reloading();
	reload_config(m, why);
	notify_ready();
}

static void
on_cert_change(void *arg)
{
	struct master *m = arg;

	if (!m->stopping)
		master_reload(m, "certificate files changed");
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
		if (!m->stopping)
			master_reload(m, "SIGHUP");
		return;
	}
	if (m->stopping) {
		log_info("second stop signal: closing all sessions now");
		post_stop(m, 2);
		return;
	}
	log_info("%s: stopping; open sessions get up to %d s",
	    signum == SIGTERM ? "SIGTERM" : "SIGINT",
	    m->gen->cfg->shutdown_timeout);
	m->stopping = 1;
	notify_stopping();
	stats_close(m);
	certwatch_free(m->cw);
	m->cw = NULL;
	post_stop(m, 1);
}

/* A worker's loop has ended (called from its thread). */
static void
master_worker_done(void *arg)
{
	struct master *m = arg;

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
	certwatch_free(m->cw);
	m->cw = NULL;
}

int
master_run(struct gen *g)
{
	const struct config *cfg = g->cfg;
	struct master mm, *m = &mm;
	struct worker_msg **msgs = NULL;
	struct lsn_shared *sh, *next;
	int k, started = 0, rc = 1;

	memset(m, 0, sizeof(*m));
	m->loop = uv_default_loop();
	m->gen = gen_ref(g);
	m->start_ms = uv_now(m->loop);
	m->start_time = m->last_good = wall_now();
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

	fd_limit_check(cfg, m->nworkers, 1);
	if (master_prepare(m, NULL, g, msgs) < 0 ||
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
		if ((m->w[k] = worker_new(k, msgs[k], master_worker_done,
		    m)) == NULL || worker_start(m->w[k]) != 0) {
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
		certs_log(cfg, g->tls);
		if ((m->cw = certwatch_new(m->loop, on_cert_change, m)) != NULL)
			certwatch_set(m->cw, cfg);
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
	gen_unref(m->gen);
	return rc;
}
