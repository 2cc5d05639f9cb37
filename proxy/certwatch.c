/*
 * certwatch - watch certificate and key files, log served certificates,
 * check what the unprivileged user can read.
 *
 * Watching is a cheap periodic stat, not inotify.  Every POLL_MS the
 * master thread stat()s each configured certificate, key and client CA
 * path (following symlinks: device, inode, size, mtime, ctime) and
 * lstat()s the path itself.  Any difference from the last state, or a
 * change between "exists" and an error, is a change; the reload runs once
 * nothing has changed for SETTLE_MS (so about 2 s after the last write,
 * at most POLL_MS later).  Why not inotify (libuv fs events): an inotify
 * watch on a file follows its inode, so it misses a new file renamed over
 * the path (certbot, `mv`) and a swapped symlink above it (Kubernetes
 * Secret volumes: `dir/tls.crt` -> `..data/tls.crt`, `..data` ->
 * `..2024_05_01_...`; the swap renames `..data`).  Catching those needs
 * watches on every directory along every symlink chain, re-armed when a
 * directory is replaced; stat() resolves the whole chain every time, on
 * any file system (NFS and overlay included).  The cost is two system
 * calls per file per second in a thread that is otherwise idle.
 *
 * A half-written pair is harmless: the reload builds the new set beside
 * the running one and switches only when every certificate loads and
 * matches its key; otherwise the old set stays and the next change (the
 * rest of the pair arriving) triggers another try.
 *
 * certs_check_user() forks: the child takes the user's uid, gid and
 * supplementary groups as the running proxy would, and open()s each file;
 * that answers for ACLs and directory permissions too, which reading the
 * mode bits would not.
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "certwatch.h"
#include "log.h"
#include "tls.h"

#define POLL_MS		1000
#define SETTLE_MS	2000

/* What stat() and lstat() said about one path. */
struct fstate {
	int		err;		/* errno of stat(), or 0 */
	dev_t		dev;
	ino_t		ino;
	off_t		size;
	struct timespec	mtim, ctim;
	int		lerr;		/* errno of lstat(), or 0 */
	dev_t		ldev;
	ino_t		lino;
	struct timespec	lmtim, lctim;
};

struct wfile {
	char		*path;
	struct fstate	 st;
};

struct certwatch {
	uv_timer_t	 timer;
	void		(*fn)(void *);
	void		*arg;
	struct wfile	*f;
	size_t		 n;
	int		 pending;	/* a change waits to settle */
	uint64_t	 changed_ms;	/* uv_now() of the last change seen */
};

static void
fstate_get(const char *path, struct fstate *s)
{
	struct stat sb;

	memset(s, 0, sizeof(*s));
	if (stat(path, &sb) < 0)
		s->err = errno;
	else {
		s->dev = sb.st_dev;
		s->ino = sb.st_ino;
		s->size = sb.st_size;
		s->mtim = sb.st_mtim;
		s->ctim = sb.st_ctim;
	}
	if (lstat(path, &sb) < 0)
		s->lerr = errno;
	else {
		s->ldev = sb.st_dev;
		s->lino = sb.st_ino;
		s->lmtim = sb.st_mtim;
		s->lctim = sb.st_ctim;
	}
}

static int
ts_eq(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

static int
fstate_eq(const struct fstate *a, const struct fstate *b)
{
	return a->err == b->err && a->dev == b->dev && a->ino == b->ino &&
	    a->size == b->size && ts_eq(&a->mtim, &b->mtim) &&
	    ts_eq(&a->ctim, &b->ctim) && a->lerr == b->lerr &&
	    a->ldev == b->ldev && a->lino == b->lino &&
	    ts_eq(&a->lmtim, &b->lmtim) && ts_eq(&a->lctim, &b->lctim);
}

static void
on_poll(uv_timer_t *t)
{
	struct certwatch *cw = t->data;
	struct fstate now;
	size_t i;

	for (i = 0; i < cw->n; i++) {
		fstate_get(cw->f[i].path, &now);
		if (fstate_eq(&now, &cw->f[i].st))
			continue;
		cw->f[i].st = now;
		if (!cw->pending)
			log_info("certificates: %s changed; reloading when "
			    "the files have settled", cw->f[i].path);
		else
			log_debug("certificates: %s changed", cw->f[i].path);
		cw->pending = 1;
		cw->changed_ms = uv_now(t->loop);
	}
	if (cw->pending && uv_now(t->loop) - cw->changed_ms >= SETTLE_MS) {
		cw->pending = 0;
		cw->fn(cw->arg);
	}
}

struct certwatch *
certwatch_new(uv_loop_t *loop, void (*fn)(void *), void *arg)
{
	struct certwatch *cw;

	if ((cw = calloc(1, sizeof(*cw))) == NULL)
		return NULL;
	cw->fn = fn;
	cw->arg = arg;
	uv_timer_init(loop, &cw->timer);
	cw->timer.data = cw;
	return cw;
}

static void
wfiles_free(struct wfile *f, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(f[i].path);
	free(f);
}

/* Add path to f[0..*n) unless it is there; the state comes from old when
 * old watched it.  -1 when out of memory. */
static int
wfile_add(struct wfile *f, size_t *n, const char *path,
    const struct wfile *old, size_t nold)
{
	size_t i;

	if (path == NULL || *path == '\0')
		return 0;
	for (i = 0; i < *n; i++)
		if (strcmp(f[i].path, path) == 0)
			return 0;
	if ((f[*n].path = strdup(path)) == NULL)
		return -1;
	for (i = 0; i < nold; i++)
		if (strcmp(old[i].path, path) == 0)
			break;
	if (i < nold)
		f[*n].st = old[i].st;
	else
		fstate_get(path, &f[*n].st);
	(*n)++;
	return 0;
}

void
certwatch_set(struct certwatch *cw, const struct config *cfg)
{
	const struct cfg_listener *l;
	struct wfile *f = NULL;
	size_t max = 0, n = 0, li, ci;

	if (cw == NULL)
		return;
	if (cfg->watch_certificates) {
		for (li = 0; li < cfg->n_listeners; li++)
			max += 2 * cfg->listeners[li].tls.n_certs + 1;
		if ((f = calloc(max + 1, sizeof(*f))) == NULL) {
			log_error("certificates: out of memory; not watching");
			max = 0;
		}
	}
	for (li = 0; f != NULL && li < cfg->n_listeners; li++) {
		l = &cfg->listeners[li];
		for (ci = 0; ci < l->tls.n_certs; ci++)
			if (wfile_add(f, &n, l->tls.certs[ci].cert, cw->f,
			    cw->n) < 0 || wfile_add(f, &n, l->tls.certs[ci].key,
			    cw->f, cw->n) < 0)
				goto nomem;
		if (l->tls.n_certs > 0 && wfile_add(f, &n, l->tls.client_ca,
		    cw->f, cw->n) < 0)
			goto nomem;
	}
	wfiles_free(cw->f, cw->n);
	cw->f = f;
	cw->n = n;
	if (n > 0 && !uv_is_active((uv_handle_t *)&cw->timer)) {
		uv_timer_start(&cw->timer, on_poll, POLL_MS, POLL_MS);
		log_info("certificates: watching %zu file(s) for changes", n);
	} else if (n == 0 && uv_is_active((uv_handle_t *)&cw->timer)) {
		uv_timer_stop(&cw->timer);
		cw->pending = 0;
		log_info("certificates: not watching files");
	}
	return;
nomem:
	wfiles_free(f, n);
	log_error("certificates: out of memory; keeping the old watch list");
}

static void
on_timer_closed(uv_handle_t *h)
{
	struct certwatch *cw = h->data;

	wfiles_free(cw->f, cw->n);
	free(cw);
}

void
certwatch_free(struct certwatch *cw)
{
	if (cw != NULL)
		uv_close((uv_handle_t *)&cw->timer, on_timer_closed);
}

/* --- log lines ---------------------------------------------------------- */

void
certs_log(const struct config *cfg, const struct tls_set *set)
{
	struct tls_cert_info ci;
	char names[1024], when[32];
	struct tm tm;
	size_t li, i, k, len;

	for (li = 0; li < cfg->n_listeners; li++)
		for (i = 0; tls_cert_info(cfg, set, li, i, &ci) == 0; i++) {
			names[0] = '\0';
			for (k = 0, len = 0; k < ci.n_names &&
			    len < sizeof(names); k++)
				len += (size_t)snprintf(names + len,
				    sizeof(names) - len, "%s%s",
				    k > 0 ? "," : "", ci.names[k]);
			if (gmtime_r(&ci.not_after, &tm) == NULL ||
			    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ",
			    &tm) == 0)
				snprintf(when, sizeof(when), "-");
			log_kv(LOG_INFO, "certificate",
			    "listener", cfg->listeners[li].name,
			    "names", names[0] != '\0' ? names : "-",
			    "key", ci.key,
			    "not_after", when,
			    "sha256", ci.sha256,
			    "path", ci.path,
			    (const char *)NULL);
		}
}

/* --- what the user can read --------------------------------------------- */

/* In the child: open each file as pw; one line per failure to fd. */
static void
check_as_user(const struct config *cfg, const struct passwd *pw, int fd)
{
	const struct cfg_listener *l;
	const char *what[3], *path[3];
	char line[2048];
	size_t li, ci, k, n;
	int f, len;

	if (initgroups(pw->pw_name, pw->pw_gid) < 0 ||
	    setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0) {
		len = snprintf(line, sizeof(line), "user %s: cannot switch "
		    "to it to check file access: %s\n", pw->pw_name,
		    strerror(errno));
		(void)!write(fd, line, (size_t)len);
		return;
	}
	for (li = 0; li < cfg->n_listeners; li++) {
		l = &cfg->listeners[li];
		for (ci = 0; ci <= l->tls.n_certs; ci++) {
			n = 0;
			if (ci < l->tls.n_certs) {
				what[n] = "certificate";
				path[n++] = l->tls.certs[ci].cert;
				what[n] = "key";
				path[n++] = l->tls.certs[ci].key;
			} else if (l->tls.n_certs > 0 &&
			    l->tls.client_ca != NULL &&
			    l->tls.client_ca[0] != '\0') {
				what[n] = "client CA file";
				path[n++] = l->tls.client_ca;
			}
			for (k = 0; k < n; k++) {
				if (path[k] == NULL || path[k][0] == '\0')
					continue;
				if ((f = open(path[k], O_RDONLY)) >= 0) {
					close(f);
					continue;
				}
				len = snprintf(line, sizeof(line), "%s: user "
				    "%s cannot read this %s (%s); a reload "
				    "after privileges are dropped will fail: "
				    "make it readable by one of the user's "
				    "groups (e.g. root:ssl-cert, mode 0640)\n",
				    path[k], pw->pw_name, what[k],
				    strerror(errno));
				if (len > 0 && (size_t)len < sizeof(line))
					(void)!write(fd, line, (size_t)len);
			}
		}
	}
}

int
certs_check_user(const struct config *cfg, struct strlist *warns)
{
	struct passwd *pw;
	char buf[4096], *acc = NULL, *p, *nl, *tmp;
	size_t alen = 0;
	ssize_t r;
	pid_t pid;
	int fds[2], added = 0, status;

	if (cfg->user == NULL || cfg->user[0] == '\0' || geteuid() != 0)
		return 0;
	/* A missing user is cfg_load()'s error, reported with its line. */
	if ((pw = getpwnam(cfg->user)) == NULL || pw->pw_uid == 0)
		return 0;
	fflush(stdout);
	fflush(stderr);
	if (pipe(fds) < 0 || (pid = fork()) < 0) {
		strlist_add(warns, "user %s: cannot check which files it can "
		    "read: %s", cfg->user, strerror(errno));
		return 1;
	}
	if (pid == 0) {
		close(fds[0]);
		check_as_user(cfg, pw, fds[1]);
		_exit(0);
	}
	close(fds[1]);
	while ((r = read(fds[0], buf, sizeof(buf))) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if ((tmp = realloc(acc, alen + (size_t)r + 1)) == NULL)
			break;
		acc = tmp;
		memcpy(acc + alen, buf, (size_t)r);
		alen += (size_t)r;
		acc[alen] = '\0';
	}
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	for (p = acc; p != NULL && *p != '\0'; p = nl + 1) {
		if ((nl = strchr(p, '\n')) == NULL)
			break;
		*nl = '\0';
		strlist_add(warns, "%s", p);
		added++;
	}
	free(acc);
	return added;
}
