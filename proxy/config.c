/*
 * config - libconfig file -> one immutable, reference-counted struct config.
 *
 * Every setting is described by one row of a field table, applied by one
 * walker (config_schema.c); addresses are parsed and compared in
 * config_addr.c.  This file holds the load itself, the checks across a
 * listener's settings, the messages and places, and the reference count;
 * config_int.h is what the three share.
 *
 * Errors are collected, never fatal: a run reports every problem it can
 * find as "file:LINE: message", and cfg_load() returns NULL if there was
 * any.  The place of every setting written is kept in the config (key
 * path -> file and line), so that tls.c can report a bad cipher list or
 * an unreadable certificate at the line that names it (cfg_where()).
 * A libconfig syntax error gets a sentence on what was probably meant
 * (cfghint.c).  Nothing here opens certificates or sockets; host names
 * in addresses are resolved once, here, and so is the user.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <netinet/in.h>

#include <ctype.h>
#include <errno.h>
#include <ifaddrs.h>
#include <libconfig.h>
#include <limits.h>
#include <netdb.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "config_int.h"
#include "log.h"


#define CFG_HINT_MAX	(1024 * 1024)	/* bytes of a file read for a hint */

/* Messages */

void
cfg_log_warnings(const struct strlist *warns)
{
	size_t	i;

	for (i = 0; i < warns->n; i++) {
		if (strlist_level(warns, i) == SL_ERROR)
			log_error("%s", warns->v[i]);
		else
			log_warnx("%s", warns->v[i]);
	}
}

/* Add "file:LINE: message" (or "file: message" without a line) to l. */
static void
cfg_vmsg(struct cfg_ctx *x, struct strlist *l, const config_setting_t *s,
    const char *fmt, va_list ap)
{
	const char	*file = NULL;
	unsigned int	 line = 0;
	char		*m;

	if (s != NULL) {
		file = config_setting_source_file(s);
		line = config_setting_source_line(s);
	}
	if (file == NULL)
		file = x->path;
	if (vasprintf(&m, fmt, ap) < 0)
		return;
	if (line > 0)
		strlist_add(l, "%s:%u: %s", file, line, m);
	else
		strlist_add(l, "%s: %s", file, m);
	free(m);
}

void
cfg_err(struct cfg_ctx *x, const config_setting_t *s, const char *fmt, ...)
{
	va_list	ap;

	x->nerr++;
	va_start(ap, fmt);
	cfg_vmsg(x, x->errs, s, fmt, ap);
	va_end(ap);
}

void
cfg_warn(struct cfg_ctx *x, const config_setting_t *s, const char *fmt, ...)
{
	va_list	ap;

	if (x->warns == NULL)
		return;
	va_start(ap, fmt);
	cfg_vmsg(x, x->warns, s, fmt, ap);
	va_end(ap);
}

/* A key path for messages; one cut at KEYMAX bytes is still readable. */
void
cfg_keyf(char *buf, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(buf, KEYMAX, fmt, ap);
	va_end(ap);
}

void
cfg_key(char *buf, const char *prefix, const char *name)
{
	if (prefix[0] == '\0')
		cfg_keyf(buf, "%s", name);
	else
		cfg_keyf(buf, "%s.%s", prefix, name);
}

/* Places */


/* Remember where the setting at key was written (cfg_where()). */
void
cfg_note(struct cfg_ctx *x, const char *key, const config_setting_t *s)
{
	struct config		*c = x->c;
	struct cfg_place	*v, *p;
	const char		*file;

	if (c == NULL || s == NULL)
		return;
	if ((v = realloc(c->places, (c->n_places + 1) * sizeof(*v))) == NULL) {
		perror("realloc");
		abort();
	}
	c->places = v;
	p = &v[c->n_places++];
	p->key = cfg_strdup(key);
	file = config_setting_source_file(s);
	p->file = file != NULL && strcmp(file, x->path) != 0 ?
	    cfg_strdup(file) : NULL;
	p->line = (int)config_setting_source_line(s);
}

/* For a config built without a file (tests): the line kept in the
 * listener or certificate that key is in, else 0. */
static int
cfg_struct_line(const struct config *c, const char *key)
{
	const struct cfg_listener	*l;
	size_t				 li, ci;
	int				 n = 0;

	if (sscanf(key, "listeners[%zu]%n", &li, &n) != 1 || n == 0 ||
	    li >= c->n_listeners)
		return 0;
	l = &c->listeners[li];
	if (sscanf(key + n, ".tls.certificates[%zu]", &ci) == 1 &&
	    ci < l->tls.n_certs && l->tls.certs[ci].line > 0)
		return l->tls.certs[ci].line;
	return l->line;
}

const char *
cfg_where(const struct config *c, char *buf, size_t size, const char *fmt,
    ...)
{
	const struct cfg_place	*p = NULL;
	va_list			 ap;
	char			 key[KEYMAX], k[KEYMAX], *dot, *br;
	size_t			 i;
	int			 line = 0;

	va_start(ap, fmt);
	vsnprintf(key, sizeof(key), fmt, ap);
	va_end(ap);
	memcpy(k, key, sizeof(k));
	/* The setting, else the nearest enclosing group that was written. */
	for (;;) {
		for (i = 0; c != NULL && i < c->n_places && p == NULL; i++)
			if (strcmp(c->places[i].key, k) == 0)
				p = &c->places[i];
		if (p != NULL)
			break;
		dot = strrchr(k, '.');
		br = strrchr(k, '[');
		if (dot == NULL && br == NULL)
			break;
		if (dot == NULL || (br != NULL && br > dot))
			dot = br;
		*dot = '\0';
	}
	if (p == NULL && c != NULL)
		line = cfg_struct_line(c, key);
	if (c == NULL || c->path == NULL)
		snprintf(buf, size, "%s", key);
	else if (line > 0)
		snprintf(buf, size, "%s:%d: %s", c->path, line, key);
	else if (p != NULL && p->line > 0)
		snprintf(buf, size, "%s:%d: %s", p->file != NULL ? p->file :
		    c->path, p->line, key);
	else
		snprintf(buf, size, "%s: %s", c->path, key);
	return buf;
}

/* Small helpers */

char *
cfg_strdup(const char *s)
{
	char	*p;

	if ((p = strdup(s)) == NULL) {
		perror("strdup");
		abort();
	}
	return p;
}

/* A path as configured -> relative to dir unless absolute or empty. */
char *
cfg_resolve(const char *dir, const char *p)
{
	char	*r;

	if (p[0] == '/' || p[0] == '\0' || dir == NULL)
		return cfg_strdup(p);
	if (asprintf(&r, "%s/%s", dir, p) < 0) {
		perror("asprintf");
		abort();
	}
	return r;
}

int
cfg_has_ctl(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

/* Checks across one listener's settings and against earlier ones. */
static void
cfg_check_listener(struct cfg_ctx *x, struct config *c, size_t li,
    const config_setting_t *ls)
{
	struct cfg_listener	*l = &c->listeners[li];
	const config_setting_t	*s;
	size_t			 j;

	if (l->name != NULL) {
		for (j = 0; j < li; j++) {
			if (c->listeners[j].name != NULL &&
			    strcmp(c->listeners[j].name, l->name) == 0) {
				s = config_setting_get_member(ls, "name");
				cfg_err(x, s, "listeners[%zu].name \"%s\" is "
				    "already used by listeners[%zu]", li,
				    l->name, j);
				break;
			}
		}
	}
	s = config_setting_get_member(ls, "listen");
	l->listen_line = s != NULL ? (int)config_setting_source_line(s) :
	    l->line;
	if (l->listen.text != NULL && l->backend.address.text != NULL &&
	    !l->backend.address.is_unix &&
	    cfg_addr_reaches(&l->backend.address, &l->listen)) {
		if ((s = config_setting_get_member(ls, "backend")) != NULL &&
		    config_setting_get_member(s, "address") != NULL)
			s = config_setting_get_member(s, "address");
		cfg_err(x, s, "listeners[%zu].backend.address \"%s\" is the "
		    "listener's own listen address \"%s\": the proxy would "
		    "connect to itself", li, l->backend.address.text,
		    l->listen.text);
	}
	if (l->listen.text != NULL) {
		for (j = 0; j < li; j++) {
			struct cfg_addr *o = &c->listeners[j].listen;

			if (o->text != NULL && o->sslen == l->listen.sslen &&
			    memcmp(&o->ss, &l->listen.ss, o->sslen) == 0) {
				s = config_setting_get_member(ls, "listen");
				cfg_err(x, s, "listeners[%zu].listen \"%s\" is "
				    "the same address as listeners[%zu]", li,
				    l->listen.text, j);
				break;
			}
		}
	}

	s = config_setting_get_member(ls, "tls");
	if (s == NULL)
		s = ls;
	if (l->tls_mode == TLS_MODE_IMPLICIT && l->tls.n_certs == 0)
		cfg_err(x, s, "listeners[%zu]: tls_mode \"implicit\" needs at "
		    "least one tls.certificates entry", li);
	if (l->tls.verify_client != VERIFY_NONE && l->tls.client_ca != NULL &&
	    l->tls.client_ca[0] == '\0')
		cfg_err(x, s, "listeners[%zu].tls.verify_client needs "
		    "tls.client_ca", li);
	if (l->policy.require_client_cert &&
	    l->tls.verify_client == VERIFY_NONE)
		cfg_warn(x, s, "listeners[%zu]: policy.require_client_cert "
		    "with tls.verify_client \"none\": every TLS session will "
		    "be refused", li);
	if (l->policy.require_tls && l->tls.n_certs == 0)
		cfg_warn(x, s, "listeners[%zu]: policy.require_tls without "
		    "certificates: every transaction will be refused", li);
}

static void
cfg_listeners(struct cfg_ctx *x, struct config *c,
    const config_setting_t *root)
{
	const config_setting_t	*ls, *e;
	char			 key[KEYMAX];
	int			 i, n;

	ls = config_setting_get_member(root, "listeners");
	if (ls == NULL) {
		cfg_err(x, NULL, "missing required setting listeners");
		return;
	}
	cfg_note(x, "listeners", ls);
	if (!cfg_is_list(ls)) {
		cfg_err(x, ls, "listeners must be a list of groups "
		    "( { ... }, ... )");
		return;
	}
	if ((n = config_setting_length(ls)) == 0) {
		cfg_err(x, ls, "listeners must not be empty");
		return;
	}
	if ((c->listeners = calloc((size_t)n, sizeof(*c->listeners))) == NULL) {
		perror("calloc");
		abort();
	}
	for (i = 0; i < n; i++) {
		e = config_setting_get_elem(ls, (unsigned int)i);
		cfg_keyf(key, "listeners[%d]", i);
		if (!config_setting_is_group(e)) {
			cfg_err(x, e, "%s must be a group { ... }", key);
			continue;
		}
		c->listeners[c->n_listeners].line =
		    (int)config_setting_source_line(e);
		cfg_note(x, key, e);
		cfg_apply_listener(x, e, key, &c->listeners[c->n_listeners]);
		cfg_check_listener(x, c, c->n_listeners, e);
		c->n_listeners++;
	}
}

/*
 * A user that does not exist: an error here, at its line, rather than a
 * start that fails after binding (and a -t that passed).
 */
static void
cfg_check_user(struct cfg_ctx *x, const struct config *c,
    const config_setting_t *root)
{
	const config_setting_t	*s;

	if (c->user == NULL || c->user[0] == '\0')
		return;
	errno = 0;
	if (getpwnam(c->user) != NULL)
		return;
	s = config_setting_get_member(root, "user");
	/* getpwnam(3): these mean "not found", others a lookup failure */
	if (errno == 0 || errno == ENOENT || errno == ESRCH ||
	    errno == EBADF || errno == EPERM)
		cfg_err(x, s, "user \"%s\": no such user", c->user);
	else
		cfg_err(x, s, "user \"%s\": cannot look it up: %s", c->user,
		    strerror(errno));
}

/*
 * The stats server binds without SO_REUSEPORT: on a listener's port it
 * would fail at start, after -t had passed.
 */
static void
cfg_check_stats(struct cfg_ctx *x, const struct config *c,
    const config_setting_t *root)
{
	const config_setting_t	*s;
	const struct cfg_addr	*l;
	size_t			 i;

	if (c->stats_listen.text == NULL)
		return;
	for (i = 0; i < c->n_listeners; i++) {
		l = &c->listeners[i].listen;
		if (l->text == NULL || !cfg_addr_collides(&c->stats_listen, l))
			continue;
		if ((s = config_setting_get_member(root, "stats")) != NULL)
			s = config_setting_get_member(s, "listen");
		cfg_err(x, s, "stats.listen \"%s\" collides with "
		    "listeners[%zu].listen \"%s\": the same port on the same "
		    "or a wildcard address", c->stats_listen.text, i, l->text);
		return;
	}
}

/* The config file's directory, absolute when it can be. */
static char *
cfg_dirname(const char *path)
{
	const char	*slash = strrchr(path, '/');
	char		*d, *r;

	if (slash == NULL)
		d = cfg_strdup(".");
	else if (slash == path)
		d = cfg_strdup("/");
	else if ((d = strndup(path, (size_t)(slash - path))) == NULL) {
		perror("strndup");
		abort();
	}
	if ((r = realpath(d, NULL)) != NULL) {
		free(d);
		return r;
	}
	return d;
}

/*
 * libconfig's own message ("syntax error") with what probably went wrong,
 * read from the file again (cfghint.c).
 */
static void
cfg_syntax_error(struct strlist *errs, const char *file, int line,
    const char *text)
{
	FILE		*f;
	char		*buf = NULL, hint[512];
	const char	*h = NULL;
	size_t		 n = 0;

	if ((f = fopen(file, "r")) != NULL) {
		if ((buf = malloc(CFG_HINT_MAX + 1)) != NULL) {
			n = fread(buf, 1, CFG_HINT_MAX, f);
			buf[n] = '\0';
			if (n < CFG_HINT_MAX && memchr(buf, '\0', n) == NULL)
				h = cfg_syntax_hint(buf, hint, sizeof(hint));
		}
		fclose(f);
	}
	if (h != NULL)
		strlist_add(errs, "%s:%d: %s: %s", file, line, text, h);
	else
		strlist_add(errs, "%s:%d: %s", file, line, text);
	free(buf);
}

struct config *
cfg_load(const char *path, struct strlist *errs, struct strlist *warns)
{
	struct cfg_ctx		 x;
	struct config		*c;
	config_t		 cf;
	const char		*ef;
	int			 saved;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		perror("calloc");
		abort();
	}
	c->path = cfg_strdup(path);
	c->dir = cfg_dirname(path);

	memset(&x, 0, sizeof(x));
	x.c = c;
	x.path = path;
	x.dir = c->dir;
	x.errs = errs;
	x.warns = warns;

	config_init(&cf);
	config_set_include_dir(&cf, c->dir);
	errno = 0;
	if (config_read_file(&cf, path) != CONFIG_TRUE) {
		saved = errno;
		ef = config_error_file(&cf);
		if (config_error_type(&cf) == CONFIG_ERR_FILE_IO || ef == NULL)
			strlist_add(errs, "%s: cannot read: %s", path,
			    saved != 0 ? strerror(saved) :
			    config_error_text(&cf));
		else
			cfg_syntax_error(errs, ef, config_error_line(&cf),
			    config_error_text(&cf));
		config_destroy(&cf);
		cfg_free(c);
		return NULL;
	}

	cfg_apply_top(&x, config_root_setting(&cf), c);
	c->stats_enabled = c->stats_listen.text != NULL;
	if (c->hostname[0] != '\0' &&
	    (cfg_check_hostname(c->hostname) != NULL ||
	    strchr(c->hostname, '*') != NULL))
		cfg_err(&x, config_setting_get_member(config_root_setting(&cf),
		    "hostname"), "hostname \"%s\": not a host name",
		    c->hostname);
	cfg_check_user(&x, c, config_root_setting(&cf));
	cfg_listeners(&x, c, config_root_setting(&cf));
	cfg_check_stats(&x, c, config_root_setting(&cf));

	config_destroy(&cf);
	if (x.nerr > 0) {
		cfg_free(c);
		return NULL;
	}
	return c;
}

/* Freeing */

void
cfg_free(struct config *c)
{
	struct cfg_listener	*l;
	size_t			 i, j;

	if (c == NULL)
		return;
	for (i = 0; i < c->n_listeners; i++) {
		l = &c->listeners[i];
		free(l->name);
		free(l->banner);
		cfg_addr_clear(&l->listen);
		cfg_addr_clear(&l->backend.address);
		for (j = 0; j < l->tls.n_certs; j++) {
			free(l->tls.certs[j].cert);
			free(l->tls.certs[j].key);
			strvec_free(l->tls.certs[j].names,
			    l->tls.certs[j].n_names);
		}
		free(l->tls.certs);
		free(l->tls.ciphers);
		free(l->tls.ciphersuites);
		free(l->tls.client_ca);
		strvec_free(l->policy.tls_required_domains,
		    l->policy.n_tls_required_domains);
	}
	free(c->listeners);
	for (i = 0; i < c->n_places; i++) {
		free(c->places[i].key);
		free(c->places[i].file);
	}
	free(c->places);
	cfg_addr_clear(&c->stats_listen);
	free(c->user);
	free(c->hostname);
	free(c->dir);
	free(c->path);
	free(c);
}
