/*
 * config - libconfig file -> one immutable, reference-counted struct config.
 *
 * Every setting is described by one row of a field table: its name, its
 * type, its default, its bounds and where it goes (offsetof).  One walker
 * applies a table to a libconfig group: it converts and checks what is
 * there, fills in defaults for what is not, and refuses keys it does not
 * know, naming the closest known key ("did you mean") from the same
 * group or, for a key written in the wrong group, the group it belongs
 * to.  Nested groups are rows pointing to another table, with offsets
 * still relative to the same base structure.
 *
 * Errors are collected, never fatal: a run reports every problem it can
 * find as "file:LINE: message", and cfg_load() returns NULL if there was
 * any.  The place of every setting written is kept in the config (key
 * path -> file and line), so that tls.c can report a bad cipher list or
 * an unreadable certificate at the line that names it (cfg_where()).
 * A libconfig syntax error gets a sentence on what was probably meant
 * (cfghint.c).  Nothing here opens certificates or sockets; host names
 * in addresses are resolved once, here.
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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "log.h"

/* Types of settings, and what the walker does with each. */
enum cfg_ftype {
	FT_INT,		/* int within [min, max] */
	FT_CODE,	/* int, either min or max (SMTP reply codes) */
	FT_BOOL,
	FT_STR,
	FT_PATH,	/* string; relative -> against the config directory */
	FT_ENUM,	/* string from names[], stored as its int value */
	FT_TLSVER,	/* "TLSv1" .. "TLSv1.3", stored as the wire number */
	FT_TLSVER0,	/* the same, or "" stored as 0 */
	FT_ADDR,	/* "host:port" or "[v6]:port" into a struct cfg_addr */
	FT_ADDR_UNIX,	/* the same, or "unix:/path" */
	FT_STRV,	/* strings into char ** (off), count (off2) */
	FT_CERTS,	/* list of certificate groups, see cert_fields */
	FT_GROUP,	/* nested group described by sub */
	FT_CUSTOM	/* known key, handled outside the walker */
};

#define F_REQUIRED	0x01	/* missing is an error */
#define F_NOCTL		0x02	/* string: no control characters */
#define F_NONEMPTY	0x04	/* string: not "" */
#define F_ABSENT_OFF	0x08	/* group: absent = off, no defaults */
#define F_DOMAIN	0x10	/* FT_STRV: mail domains "d" / ".d" */
#define F_HOSTNAME	0x20	/* FT_STRV: certificate names */

struct cfg_name {
	const char	*name;
	int		 value;
};

struct cfg_field {
	const char		*name;
	enum cfg_ftype		 type;
	int			 flags;
	long long		 def;	/* FT_INT, FT_CODE, FT_BOOL */
	const char		*sdef;	/* string-valued types */
	long long		 min, max;
	const struct cfg_name	*names;	/* FT_ENUM, NULL-ended */
	const struct cfg_field	*sub;	/* FT_GROUP, FT_CERTS */
	size_t			 off;
	size_t			 off2;	/* FT_STRV, FT_CERTS: n */
};

#define F_INT(n, d, lo, hi, s, m) \
	{ .name = (n), .type = FT_INT, .def = (d), .min = (lo), .max = (hi), \
	  .off = offsetof(s, m) }
#define F_CODE(n, d, a, b, s, m) \
	{ .name = (n), .type = FT_CODE, .def = (d), .min = (a), .max = (b), \
	  .off = offsetof(s, m) }
#define F_BOOL(n, d, s, m) \
	{ .name = (n), .type = FT_BOOL, .def = (d), .off = offsetof(s, m) }
#define F_STR(n, d, fl, s, m) \
	{ .name = (n), .type = FT_STR, .flags = (fl), .sdef = (d), \
	  .off = offsetof(s, m) }
#define F_PATH(n, d, fl, s, m) \
	{ .name = (n), .type = FT_PATH, .flags = (fl), .sdef = (d), \
	  .off = offsetof(s, m) }
#define F_ENUM(n, d, tab, s, m) \
	{ .name = (n), .type = FT_ENUM, .sdef = (d), .names = (tab), \
	  .off = offsetof(s, m) }
#define F_TYPED(n, t, fl, d, s, m) \
	{ .name = (n), .type = (t), .flags = (fl), .sdef = (d), \
	  .off = offsetof(s, m) }
#define F_VEC(n, t, fl, tab, s, m, cnt) \
	{ .name = (n), .type = (t), .flags = (fl), .sub = (tab), \
	  .off = offsetof(s, m), .off2 = offsetof(s, cnt) }
#define F_GROUP(n, fl, tab) \
	{ .name = (n), .type = FT_GROUP, .flags = (fl), .sub = (tab) }
#define F_CUSTOM(n) \
	{ .name = (n), .type = FT_CUSTOM }
#define F_END	{ .name = NULL }

/* Enum values are stored through an int lvalue. */
_Static_assert(sizeof(enum tls_mode) == sizeof(int), "enum size");
_Static_assert(sizeof(enum verify_client) == sizeof(int), "enum size");
_Static_assert(sizeof(enum proxy_out) == sizeof(int), "enum size");
_Static_assert(sizeof(enum log_format) == sizeof(int), "enum size");
_Static_assert(sizeof(enum bare_newline) == sizeof(int), "enum size");

static const struct cfg_name log_levels[] = {
	{ "error", LOG_ERROR }, { "warning", LOG_WARNING },
	{ "info", LOG_INFO }, { "debug", LOG_DEBUG }, { NULL, 0 }
};
static const struct cfg_name log_formats[] = {
	{ "text", LOG_FORMAT_TEXT }, { "json", LOG_FORMAT_JSON }, { NULL, 0 }
};
static const struct cfg_name tls_modes[] = {
	{ "starttls", TLS_MODE_STARTTLS }, { "implicit", TLS_MODE_IMPLICIT },
	{ NULL, 0 }
};
static const struct cfg_name proxy_outs[] = {
	{ "none", PROXY_OUT_NONE }, { "v1", PROXY_OUT_V1 },
	{ "v2", PROXY_OUT_V2 }, { NULL, 0 }
};
static const struct cfg_name verify_clients[] = {
	{ "none", VERIFY_NONE }, { "optional", VERIFY_OPTIONAL },
	{ "required", VERIFY_REQUIRED }, { NULL, 0 }
};
static const struct cfg_name bare_newlines[] = {
	{ "reject", BARE_NEWLINE_REJECT }, { "pass", BARE_NEWLINE_PASS },
	{ NULL, 0 }
};
static const struct cfg_name tls_versions[] = {
	{ "TLSv1", 0x0301 }, { "TLSv1.1", 0x0302 }, { "TLSv1.2", 0x0303 },
	{ "TLSv1.3", 0x0304 }, { NULL, 0 }
};

#define L	struct cfg_listener

static const struct cfg_field backend_fields[] = {
	F_TYPED("address", FT_ADDR_UNIX, F_REQUIRED, NULL, L, backend.address),
	F_ENUM("proxy_protocol", "none", proxy_outs, L, backend.proxy_protocol),
	F_BOOL("xclient", 0, L, backend.xclient),
	F_INT("connect_timeout", 10, 1, 3600, L, backend.connect_timeout),
	F_END
};

static const struct cfg_field cert_fields[] = {
	F_PATH("cert", NULL, F_REQUIRED | F_NONEMPTY, struct cfg_cert, cert),
	F_PATH("key", NULL, F_REQUIRED | F_NONEMPTY, struct cfg_cert, key),
	F_VEC("names", FT_STRV, F_HOSTNAME, NULL, struct cfg_cert, names,
	    n_names),
	F_END
};

static const struct cfg_field tls_fields[] = {
	F_VEC("certificates", FT_CERTS, 0, cert_fields, L, tls.certs,
	    tls.n_certs),
	F_TYPED("min_version", FT_TLSVER, 0, "TLSv1.2", L, tls.min_version),
	F_STR("ciphers", "", F_NOCTL, L, tls.ciphers),
	F_STR("ciphersuites", "", F_NOCTL, L, tls.ciphersuites),
	F_PATH("client_ca", "", 0, L, tls.client_ca),
	F_ENUM("verify_client", "none", verify_clients, L, tls.verify_client),
	F_INT("handshake_timeout", 30, 1, 3600, L, tls.handshake_timeout),
	F_END
};

static const struct cfg_field policy_fields[] = {
	F_BOOL("require_tls", 0, L, policy.require_tls),
	F_CODE("before_tls_code", 530, 530, 554, L, policy.before_tls_code),
	F_CODE("reject_code", 554, 554, 530, L, policy.reject_code),
	F_TYPED("min_version", FT_TLSVER0, 0, "", L, policy.min_version),
	F_INT("min_cipher_bits", 0, 0, 512, L, policy.min_cipher_bits),
	F_BOOL("require_client_cert", 0, L, policy.require_client_cert),
	F_VEC("tls_required_domains", FT_STRV, F_DOMAIN, NULL, L,
	    policy.tls_required_domains, policy.n_tls_required_domains),
	F_BOOL("hide_auth_before_tls", 1, L, policy.hide_auth_before_tls),
	F_ENUM("bare_newline", "reject", bare_newlines, L,
	    policy.bare_newline),
	F_END
};

static const struct cfg_field limits_fields[] = {
	F_INT("max_connections", 10000, 1, 1000000, L, limits.max_connections),
	F_INT("max_connections_per_ip", 100, 1, 1000000, L,
	    limits.max_connections_per_ip),
	F_INT("idle_timeout", 300, 1, 86400, L, limits.idle_timeout),
	F_INT("data_timeout", 3600, 1, 86400, L, limits.data_timeout),
	F_INT("max_line", 4096, 512, 65536, L, limits.max_line),
	F_END
};

static const struct cfg_field listener_fields[] = {
	F_STR("name", NULL, F_REQUIRED | F_NOCTL | F_NONEMPTY, L, name),
	F_TYPED("listen", FT_ADDR, F_REQUIRED, NULL, L, listen),
	F_BOOL("proxy_protocol", 0, L, proxy_protocol),
	F_ENUM("tls_mode", "starttls", tls_modes, L, tls_mode),
	F_STR("banner", "", F_NOCTL, L, banner),
	F_GROUP("backend", F_REQUIRED, backend_fields),
	F_GROUP("tls", 0, tls_fields),
	F_GROUP("policy", 0, policy_fields),
	F_BOOL("received_header", 1, L, received_header),
	F_GROUP("limits", 0, limits_fields),
	F_END
};

#undef L

static const struct cfg_field log_fields[] = {
	F_ENUM("level", "info", log_levels, struct config, log_level),
	F_ENUM("format", "text", log_formats, struct config, log_format),
	F_END
};

static const struct cfg_field stats_fields[] = {
	F_TYPED("listen", FT_ADDR, F_REQUIRED, NULL, struct config,
	    stats_listen),
	F_END
};

static const struct cfg_field top_fields[] = {
	F_INT("workers", 0, 0, 1024, struct config, workers),
	F_STR("user", "", F_NOCTL, struct config, user),
	F_INT("shutdown_timeout", 30, 0, INT_MAX, struct config,
	    shutdown_timeout),
	F_GROUP("log", 0, log_fields),
	F_GROUP("stats", F_ABSENT_OFF, stats_fields),
	F_BOOL("watch_certificates", 1, struct config, watch_certificates),
	F_STR("hostname", "", F_NOCTL, struct config, hostname),
	F_CUSTOM("listeners"),
	F_END
};

/*
 * Every table, with where its keys live, for "did you mean" across
 * groups: a key written in the wrong group is named with its right path.
 */
static const struct cfg_scope {
	const struct cfg_field	*tab;
	const char		*path;		/* within the top or a listener */
	int			 in_listener;
} cfg_scopes[] = {
	{ top_fields, "", 0 },
	{ log_fields, "log.", 0 },
	{ stats_fields, "stats.", 0 },
	{ listener_fields, "", 1 },
	{ backend_fields, "backend.", 1 },
	{ tls_fields, "tls.", 1 },
	{ cert_fields, "tls.certificates[].", 1 },
	{ policy_fields, "policy.", 1 },
	{ limits_fields, "limits.", 1 },
};

/* State of one load. */
struct cfg_ctx {
	struct config	*c;
	const char	*path;
	const char	*dir;
	struct strlist	*errs;
	struct strlist	*warns;
	size_t		 nerr;
};

#define KEYMAX	256
#define CFG_HINT_MAX	(1024 * 1024)	/* bytes of a file read for a hint */

static void	cfg_walk(struct cfg_ctx *, const config_setting_t *,
		    const char *, const struct cfg_field *, void *);
static void	cfg_free(struct config *);

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

static void __attribute__((format(printf, 3, 4)))
cfg_err(struct cfg_ctx *x, const config_setting_t *s, const char *fmt, ...)
{
	va_list	ap;

	x->nerr++;
	va_start(ap, fmt);
	cfg_vmsg(x, x->errs, s, fmt, ap);
	va_end(ap);
}

static void __attribute__((format(printf, 3, 4)))
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
static void __attribute__((format(printf, 2, 3)))
cfg_keyf(char *buf, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(buf, KEYMAX, fmt, ap);
	va_end(ap);
}

static void
cfg_key(char *buf, const char *prefix, const char *name)
{
	if (prefix[0] == '\0')
		cfg_keyf(buf, "%s", name);
	else
		cfg_keyf(buf, "%s.%s", prefix, name);
}

/* Places */

static char	*xstrdup(const char *);

/* Remember where the setting at key was written (cfg_where()). */
static void
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
	p->key = xstrdup(key);
	file = config_setting_source_file(s);
	p->file = file != NULL && strcmp(file, x->path) != 0 ?
	    xstrdup(file) : NULL;
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

static char *
xstrdup(const char *s)
{
	char	*p;

	if ((p = strdup(s)) == NULL) {
		perror("strdup");
		abort();
	}
	return p;
}

/* A path as configured -> relative to dir unless absolute or empty. */
static char *
cfg_resolve(const char *dir, const char *p)
{
	char	*r;

	if (p[0] == '/' || p[0] == '\0' || dir == NULL)
		return xstrdup(p);
	if (asprintf(&r, "%s/%s", dir, p) < 0) {
		perror("asprintf");
		abort();
	}
	return r;
}

static int
has_ctl(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

/* Write the names of an enum table as "a, b or c" into buf. */
static const char *
cfg_names_list(const struct cfg_name *t, char *buf, size_t size)
{
	size_t	i, len = 0;

	buf[0] = '\0';
	for (i = 0; t[i].name != NULL && len < size; i++) {
		len += snprintf(buf + len, size - len, "%s\"%s\"",
		    i == 0 ? "" : t[i + 1].name == NULL ? " or " : ", ",
		    t[i].name);
	}
	return buf;
}

static int
cfg_name_lookup(const struct cfg_name *t, const char *s, int *v)
{
	for (; t->name != NULL; t++) {
		if (strcmp(t->name, s) == 0) {
			*v = t->value;
			return 0;
		}
	}
	return -1;
}

/* "Did you mean" */

size_t
cfg_edit_distance(const char *a, const char *b)
{
	size_t	 la = strlen(a), lb = strlen(b), i, j, d, best;
	size_t	*base, *row0, *row1, *row2, *t;

	if ((base = calloc(3 * (lb + 1), sizeof(*base))) == NULL) {
		perror("calloc");
		abort();
	}
	row0 = base;
	row1 = row0 + (lb + 1);
	row2 = row1 + (lb + 1);
	/* row2: i - 2, row0: i - 1, row1: i (optimal string alignment) */
	for (j = 0; j <= lb; j++)
		row0[j] = j;
	for (i = 1; i <= la; i++) {
		row1[0] = i;
		for (j = 1; j <= lb; j++) {
			int ca = tolower((unsigned char)a[i - 1]);
			int cb = tolower((unsigned char)b[j - 1]);

			best = row0[j - 1] + (ca != cb);
			if ((d = row0[j] + 1) < best)
				best = d;
			if ((d = row1[j - 1] + 1) < best)
				best = d;
			if (i > 1 && j > 1 &&
			    ca == tolower((unsigned char)b[j - 2]) &&
			    cb == tolower((unsigned char)a[i - 2]) &&
			    (d = row2[j - 2] + 1) < best)
				best = d;
			row1[j] = best;
		}
		t = row2;
		row2 = row0;
		row0 = row1;
		row1 = t;
	}
	d = row0[lb];
	free(base);
	return d;
}

/* How many edits still make a "did you mean" for a word of length n. */
static size_t
cfg_near(size_t n)
{
	size_t	m = (n + 2) / 4;

	return m < 1 ? 1 : m > 3 ? 3 : m;
}

/* " (did you mean \"x\"?)" for an enum value close to one of t, or "". */
static const char *
cfg_suggest_value(const struct cfg_name *t0, const char *s, char *buf,
    size_t size)
{
	const struct cfg_name	*t;
	const char	*best = NULL;
	size_t		 d, bd = (size_t)-1;

	for (t = t0; t->name != NULL; t++)
		if ((d = cfg_edit_distance(s, t->name)) < bd) {
			bd = d;
			best = t->name;
		}
	for (t = t0; bd > 0 && t->name != NULL; t++)
		if (s[0] != '\0' && (strncasecmp(t->name, s, strlen(s)) == 0 ||
		    strncasecmp(s, t->name, strlen(t->name)) == 0)) {
			bd = 0;		/* "warn" for "warning" */
			best = t->name;
		}
	buf[0] = '\0';
	if (best != NULL && bd <= cfg_near(strlen(s)))
		snprintf(buf, size, " (did you mean \"%s\"?)", best);
	return buf;
}

/*
 * " (did you mean 'k'?)" for an unknown key name written in the group at
 * prefix whose table is tab: the closest key of the same group, else the
 * closest key of any other group (one written in the wrong group is
 * found this way, at distance 0), with its full path.  "" when nothing is
 * close.
 */
static const char *
cfg_suggest_key(const struct cfg_field *tab, const char *prefix,
    const char *name, char *buf, size_t size)
{
	const struct cfg_field	*f, *best = NULL;
	const struct cfg_scope	*sc, *bsc = NULL;
	char			 lst[KEYMAX], path[KEYMAX], grp[KEYMAX];
	const char		*br;
	size_t			 d, bd = (size_t)-1, lim = cfg_near(strlen(name));
	size_t			 i, n;

	buf[0] = '\0';
	for (f = tab; f->name != NULL; f++)
		if ((d = cfg_edit_distance(name, f->name)) < bd) {
			bd = d;
			best = f;
		}
	if (best != NULL && bd <= lim) {
		cfg_key(path, prefix, best->name);
		snprintf(buf, size, " (did you mean '%s'?)", path);
		return buf;
	}
	bd = (size_t)-1;
	for (i = 0; i < sizeof(cfg_scopes) / sizeof(cfg_scopes[0]); i++) {
		sc = &cfg_scopes[i];
		if (sc->tab == tab)
			continue;
		for (f = sc->tab; f->name != NULL; f++)
			if ((d = cfg_edit_distance(name, f->name)) < bd) {
				bd = d;
				best = f;
				bsc = sc;
			}
	}
	if (bsc == NULL || bd > lim)
		return buf;
	/* The listener this group is in, else any listener. */
	if (strncmp(prefix, "listeners[", 10) == 0 &&
	    (n = strcspn(prefix, "]")) < strlen(prefix))
		snprintf(lst, sizeof(lst), "%.*s", (int)n + 1, prefix);
	else
		snprintf(lst, sizeof(lst), "listeners[N]");
	/* "tls.certificates[]." -> "tls.certificates[N]." */
	if ((br = strstr(bsc->path, "[]")) != NULL)
		cfg_keyf(grp, "%.*s[N]%s", (int)(br - bsc->path), bsc->path,
		    br + 2);
	else
		cfg_keyf(grp, "%s", bsc->path);
	if (bsc->in_listener)
		cfg_keyf(path, "%s.%s%s", lst, grp, best->name);
	else
		cfg_keyf(path, "%s%s", grp, best->name);
	snprintf(buf, size, " (did you mean '%s'?)", path);
	return buf;
}

/* Addresses */

static void
cfg_addr_clear(struct cfg_addr *a)
{
	free(a->text);
	free(a->unix_path);
	memset(a, 0, sizeof(*a));
}

static int
parse_port(const char *s, in_port_t *port)
{
	unsigned long	v = 0;
	size_t		i;

	if (s[0] == '\0' || strlen(s) > 5)
		return -1;
	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v < 1 || v > 65535)
		return -1;
	*port = htons((in_port_t)v);
	return 0;
}

/*
 * A host name is resolved here, once; of several addresses the first one
 * getaddrinfo() gives is kept.  On error nothing is left allocated in out.
 */
const char *
cfg_parse_addr(const char *text, const char *dir, int allow_unix,
    struct cfg_addr *out)
{
	struct addrinfo		 hints, *res = NULL;
	struct sockaddr_un	 sun;
	const char		*ps, *err = NULL;
	char			*host = NULL;
	in_port_t		 port;
	size_t			 hl;
	int			 r;

	memset(out, 0, sizeof(*out));
	if (text == NULL || text[0] == '\0')
		return "empty address";

	if (strncmp(text, "unix:", 5) == 0) {
		if (!allow_unix)
			return "unix: addresses are not allowed here";
		if (text[5] == '\0')
			return "empty unix socket path";
		if (has_ctl(text + 5))
			return "bad unix socket path";
		out->unix_path = cfg_resolve(dir, text + 5);
		if (strlen(out->unix_path) >= sizeof(sun.sun_path)) {
			cfg_addr_clear(out);
			return "unix socket path too long";
		}
		out->is_unix = 1;
		out->text = xstrdup(text);
		return NULL;
	}

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	if (text[0] == '[') {
		const char *rb = strchr(text, ']');

		if (rb == NULL)
			return "missing ']'";
		if (rb[1] != ':' || rb[2] == '\0')
			return "missing port";
		ps = rb + 2;
		hl = (size_t)(rb - text - 1);
		if (hl == 0)
			return "missing host";
		host = strndup(text + 1, hl);
		hints.ai_family = AF_INET6;
		hints.ai_flags = AI_NUMERICHOST;
	} else {
		const char *colon = strrchr(text, ':');

		if (colon == NULL || colon[1] == '\0')
			return "missing port";
		hl = (size_t)(colon - text);
		if (memchr(text, ':', hl) != NULL)
			return "IPv6 address must be in brackets";
		if (hl == 0)
			return "missing host";
		ps = colon + 1;
		host = strndup(text, hl);
		hints.ai_family = AF_UNSPEC;
	}
	if (host == NULL)
		return "out of memory";
	if (parse_port(ps, &port) == -1) {
		err = "bad port";
		goto done;
	}
	r = getaddrinfo(host, NULL, &hints, &res);
	if (r != 0 || res == NULL) {
		err = hints.ai_family == AF_INET6 ? "bad IPv6 address" :
		    "cannot resolve host";
		goto done;
	}
	if ((res->ai_family != AF_INET && res->ai_family != AF_INET6) ||
	    res->ai_addrlen > sizeof(out->ss)) {
		err = "cannot resolve host";
		goto done;
	}
	memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
	out->sslen = res->ai_addrlen;
	if (res->ai_family == AF_INET)
		((struct sockaddr_in *)&out->ss)->sin_port = port;
	else
		((struct sockaddr_in6 *)&out->ss)->sin6_port = port;
	out->text = xstrdup(text);
done:
	if (res != NULL)
		freeaddrinfo(res);
	free(host);
	return err;
}

int
cfg_addr_port(const struct cfg_addr *a)
{
	if (a->is_unix)
		return 0;
	if (a->ss.ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
	if (a->ss.ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
	return 0;
}

/* TLS versions */

int
cfg_tls_version(const char *s)
{
	int	v;

	if (s == NULL)
		return -1;
	if (s[0] == '\0')
		return 0;
	if (cfg_name_lookup(tls_versions, s, &v) == -1)
		return -1;
	return v;
}

const char *
cfg_tls_version_name(int v)
{
	const struct cfg_name	*t;

	if (v == 0)
		return "";
	for (t = tls_versions; t->name != NULL; t++)
		if (t->value == v)
			return t->name;
	return "unknown";
}

/* Values */

/* Lower-case d in place and check it is "domain" or ".domain" (LDH
 * labels); a trailing dot is dropped.  Returns NULL or why not. */
static const char *
check_domain(char *d)
{
	char	*p = d, *lab;
	size_t	 n;

	if (*p == '.')
		p++;
	n = strlen(p);
	if (n > 0 && p[n - 1] == '.')
		p[--n] = '\0';
	if (n == 0)
		return "empty domain";
	if (n > 253)
		return "domain too long";
	for (lab = p; *lab != '\0'; ) {
		size_t	len = strcspn(lab, ".");
		size_t	i;

		if (len == 0)
			return "empty label";
		if (len > 63)
			return "label longer than 63 characters";
		if (lab[0] == '-' || lab[len - 1] == '-')
			return "label starts or ends with '-'";
		for (i = 0; i < len; i++) {
			unsigned char c = (unsigned char)lab[i];

			if (c >= 'A' && c <= 'Z')
				lab[i] = (char)(c - 'A' + 'a');
			else if (!((c >= 'a' && c <= 'z') ||
			    (c >= '0' && c <= '9') || c == '-'))
				return "invalid character";
		}
		lab += len;
		if (*lab == '.')
			lab++;
	}
	return NULL;
}

/* A certificate name: a host name, maybe "*.host". */
static const char *
check_hostname(const char *s)
{
	size_t	i;

	if (s[0] == '\0')
		return "empty name";
	if (strlen(s) > 253)
		return "name too long";
	for (i = 0; s[i] != '\0'; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		    c == '.' || c == '*'))
			return "invalid character";
	}
	return NULL;
}

static int
is_strv(const config_setting_t *s)
{
	return config_setting_is_array(s) || config_setting_is_list(s);
}

static void
set_strv(struct cfg_ctx *x, const config_setting_t *s, const char *key,
    const struct cfg_field *f, char ***vp, size_t *np)
{
	const config_setting_t	*e;
	const char		*v, *why;
	char			*d;
	int			 i, n;

	if (!is_strv(s)) {
		cfg_err(x, s, "%s must be an array of strings", key);
		return;
	}
	n = config_setting_length(s);
	if (n == 0) {
		if (f->flags & F_HOSTNAME)
			cfg_err(x, s, "%s must not be empty (leave it out to "
			    "use the certificate's own names)", key);
		return;
	}
	if ((*vp = calloc((size_t)n, sizeof(**vp))) == NULL) {
		perror("calloc");
		abort();
	}
	for (i = 0; i < n; i++) {
		e = config_setting_get_elem(s, (unsigned int)i);
		if (config_setting_type(e) != CONFIG_TYPE_STRING) {
			cfg_err(x, e, "%s[%d] must be a string", key, i);
			continue;
		}
		v = config_setting_get_string(e);
		d = xstrdup(v);
		why = NULL;
		if (f->flags & F_DOMAIN)
			why = check_domain(d);
		else if (f->flags & F_HOSTNAME)
			why = check_hostname(d);
		if (why != NULL) {
			cfg_err(x, e, "%s[%d]: bad %s \"%s\": %s", key, i,
			    (f->flags & F_DOMAIN) ? "domain" : "name", v, why);
			free(d);
			continue;
		}
		(*vp)[(*np)++] = d;
	}
}

static void
set_certs(struct cfg_ctx *x, const config_setting_t *s, const char *key,
    const struct cfg_field *f, struct cfg_cert **cp, size_t *np)
{
	const config_setting_t	*e;
	char			 ekey[KEYMAX];
	int			 i, n;

	if (!is_strv(s)) {
		cfg_err(x, s, "%s must be a list of groups", key);
		return;
	}
	if ((n = config_setting_length(s)) == 0)
		return;
	if ((*cp = calloc((size_t)n, sizeof(**cp))) == NULL) {
		perror("calloc");
		abort();
	}
	for (i = 0; i < n; i++) {
		e = config_setting_get_elem(s, (unsigned int)i);
		cfg_keyf(ekey, "%s[%d]", key, i);
		if (!config_setting_is_group(e)) {
			cfg_err(x, e, "%s must be a group "
			    "{ cert = \"...\"; key = \"...\"; }", ekey);
			continue;
		}
		(*cp)[*np].line = (int)config_setting_source_line(e);
		cfg_note(x, ekey, e);
		cfg_walk(x, e, ekey, f->sub, &(*cp)[*np]);
		(*np)++;
	}
}

/* Store the default of f at base. */
static void
field_default(struct cfg_ctx *x, const struct cfg_field *f, void *base)
{
	void	*p = (char *)base + f->off;
	int	 v;

	switch (f->type) {
	case FT_INT:
	case FT_CODE:
		*(int *)p = (int)f->def;
		break;
	case FT_BOOL:
		*(bool *)p = f->def != 0;
		break;
	case FT_STR:
	case FT_PATH:
		if (f->sdef != NULL)
			*(char **)p = xstrdup(f->sdef);
		break;
	case FT_ENUM:
		if (cfg_name_lookup(f->names, f->sdef, &v) == 0)
			*(int *)p = v;
		break;
	case FT_TLSVER:
	case FT_TLSVER0:
		*(int *)p = cfg_tls_version(f->sdef);
		break;
	case FT_GROUP:
		cfg_walk(x, NULL, "", f->sub, base);
		break;
	case FT_ADDR:
	case FT_ADDR_UNIX:
	case FT_STRV:
	case FT_CERTS:
	case FT_CUSTOM:
		break;		/* zero: none */
	}
}

/* Convert and check setting s for field f, store it at base. */
static void
field_set(struct cfg_ctx *x, const config_setting_t *s, const char *key,
    const struct cfg_field *f, void *base)
{
	void		*p = (char *)base + f->off;
	const char	*sv = NULL, *why;
	char		 buf[128], hint[64];
	long long	 n;
	int		 t = config_setting_type(s), v;

	switch (f->type) {
	case FT_INT:
	case FT_CODE:
		if (t == CONFIG_TYPE_INT)
			n = config_setting_get_int(s);
		else if (t == CONFIG_TYPE_INT64)
			n = config_setting_get_int64(s);
		else {
			cfg_err(x, s, "%s must be an integer", key);
			return;
		}
		if (f->type == FT_CODE && n != f->min && n != f->max) {
			cfg_err(x, s, "%s must be %lld or %lld", key, f->min,
			    f->max);
			return;
		}
		if (f->type == FT_INT && (n < f->min || n > f->max)) {
			if (f->max == INT_MAX)
				cfg_err(x, s, "%s must be at least %lld", key,
				    f->min);
			else
				cfg_err(x, s, "%s must be between %lld and "
				    "%lld", key, f->min, f->max);
			return;
		}
		*(int *)p = (int)n;
		return;
	case FT_BOOL:
		if (t != CONFIG_TYPE_BOOL) {
			cfg_err(x, s, "%s must be true or false", key);
			return;
		}
		*(bool *)p = config_setting_get_bool(s) != 0;
		return;
	case FT_GROUP:
		if (!config_setting_is_group(s)) {
			cfg_err(x, s, "%s must be a group { ... }", key);
			if (!(f->flags & F_ABSENT_OFF))
				field_default(x, f, base);
			return;
		}
		cfg_walk(x, s, key, f->sub, base);
		return;
	case FT_STRV:
		set_strv(x, s, key, f, (char ***)p,
		    (size_t *)((char *)base + f->off2));
		return;
	case FT_CERTS:
		set_certs(x, s, key, f, (struct cfg_cert **)p,
		    (size_t *)((char *)base + f->off2));
		return;
	case FT_CUSTOM:
		return;
	default:
		break;
	}

	/* The rest are strings. */
	if (t != CONFIG_TYPE_STRING) {
		cfg_err(x, s, "%s must be a string", key);
		return;
	}
	sv = config_setting_get_string(s);
	if ((f->flags & F_NONEMPTY) && sv[0] == '\0') {
		cfg_err(x, s, "%s must not be empty", key);
		return;
	}
	if ((f->flags & F_NOCTL) && has_ctl(sv)) {
		cfg_err(x, s, "%s must not contain control characters", key);
		return;
	}
	switch (f->type) {
	case FT_STR:
		*(char **)p = xstrdup(sv);
		break;
	case FT_PATH:
		*(char **)p = cfg_resolve(x->dir, sv);
		break;
	case FT_ENUM:
		if (cfg_name_lookup(f->names, sv, &v) == -1) {
			cfg_err(x, s, "%s must be one of %s%s", key,
			    cfg_names_list(f->names, buf, sizeof(buf)),
			    cfg_suggest_value(f->names, sv, hint,
			    sizeof(hint)));
			break;
		}
		*(int *)p = v;
		break;
	case FT_TLSVER:
	case FT_TLSVER0:
		v = cfg_tls_version(sv);
		if (v == -1 || (v == 0 && f->type == FT_TLSVER)) {
			cfg_err(x, s, "%s must be one of %s%s%s", key,
			    cfg_names_list(tls_versions, buf, sizeof(buf)),
			    f->type == FT_TLSVER0 ? " (or \"\" for none)" : "",
			    sv[0] != '\0' ? cfg_suggest_value(tls_versions,
			    sv, hint, sizeof(hint)) : "");
			break;
		}
		*(int *)p = v;
		break;
	case FT_ADDR:
	case FT_ADDR_UNIX:
		why = cfg_parse_addr(sv, x->dir, f->type == FT_ADDR_UNIX,
		    (struct cfg_addr *)p);
		if (why != NULL)
			cfg_err(x, s, "%s: bad address \"%s\": %s", key, sv,
			    why);
		break;
	default:
		break;
	}
}

/*
 * Apply table tab to group grp (NULL: absent, defaults only), storing at
 * base.  prefix names grp in messages ("listeners[0].tls").
 */
static void
cfg_walk(struct cfg_ctx *x, const config_setting_t *grp, const char *prefix,
    const struct cfg_field *tab, void *base)
{
	const struct cfg_field	*f;
	const config_setting_t	*s;
	char			 key[KEYMAX], hint[KEYMAX + 32];
	int			 i, n;

	for (f = tab; f->name != NULL; f++) {
		cfg_key(key, prefix, f->name);
		s = grp != NULL ? config_setting_get_member(grp, f->name) :
		    NULL;
		if (s != NULL) {
			cfg_note(x, key, s);
			field_set(x, s, key, f, base);
			continue;
		}
		if (f->flags & F_REQUIRED) {
			/* grp == NULL: an enclosing error was reported */
			if (grp != NULL)
				cfg_err(x, grp, "missing required setting %s",
				    key);
		} else if (!(f->flags & F_ABSENT_OFF))
			field_default(x, f, base);
	}
	if (grp == NULL)
		return;
	n = config_setting_length(grp);
	for (i = 0; i < n; i++) {
		s = config_setting_get_elem(grp, (unsigned int)i);
		for (f = tab; f->name != NULL; f++)
			if (strcmp(f->name, config_setting_name(s)) == 0)
				break;
		if (f->name == NULL) {
			cfg_key(key, prefix, config_setting_name(s));
			cfg_err(x, s, "unknown key '%s'%s", key,
			    cfg_suggest_key(tab, prefix,
			    config_setting_name(s), hint, sizeof(hint)));
		}
	}
}

/* a as IPv4 when it is IPv4 or v4-mapped IPv6; else a copy. */
static void
addr_plain(const struct sockaddr_storage *a, struct sockaddr_storage *out)
{
	const struct sockaddr_in6	*s6 = (const struct sockaddr_in6 *)a;
	struct sockaddr_in		*s4 = (struct sockaddr_in *)out;

	memcpy(out, a, sizeof(*out));
	if (a->ss_family == AF_INET6 &&
	    IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
		memset(out, 0, sizeof(*out));
		s4->sin_family = AF_INET;
		s4->sin_port = s6->sin6_port;
		memcpy(&s4->sin_addr, &s6->sin6_addr.s6_addr[12], 4);
	}
}

/* Is a (one family, no port) the unspecified, a loopback address, or
 * one of this host's interface addresses?  Where a wildcard listener
 * would take a connection to it. */
static int
addr_is_local(const struct sockaddr_storage *a)
{
	const struct sockaddr_in	*s4 = (const struct sockaddr_in *)a;
	const struct sockaddr_in6	*s6 = (const struct sockaddr_in6 *)a;
	struct ifaddrs			*ifs, *i;
	int				 r = 0;

	if (a->ss_family == AF_INET &&
	    (s4->sin_addr.s_addr == htonl(INADDR_ANY) ||
	    (ntohl(s4->sin_addr.s_addr) >> 24) == 127))
		return 1;
	if (a->ss_family == AF_INET6 &&
	    (IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr) ||
	    IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr)))
		return 1;
	if (getifaddrs(&ifs) < 0)
		return 0;
	for (i = ifs; i != NULL && !r; i = i->ifa_next) {
		if (i->ifa_addr == NULL || i->ifa_addr->sa_family !=
		    a->ss_family)
			continue;
		if (a->ss_family == AF_INET)
			r = memcmp(&((struct sockaddr_in *)(void *)
			    i->ifa_addr)->sin_addr, &s4->sin_addr, 4) == 0;
		else
			r = memcmp(&((struct sockaddr_in6 *)(void *)
			    i->ifa_addr)->sin6_addr, &s6->sin6_addr, 16) == 0;
	}
	freeifaddrs(ifs);
	return r;
}

/*
 * Would a connection to backend b arrive at listen address l, i.e. the
 * proxy connect to itself?  Same port and family, and the same address,
 * or l a wildcard and b an address of this host (loopback included), or
 * b unspecified (a connect to 0.0.0.0 goes to the loopback) and l
 * loopback.  (IPv6 listeners are IPV6_V6ONLY: no cross-family case.)
 */
static int
addr_reaches(const struct cfg_addr *b, const struct cfg_addr *l)
{
	struct sockaddr_storage		 bs, ls;
	const struct sockaddr_in	*b4 = (const struct sockaddr_in *)&bs;
	const struct sockaddr_in	*l4 = (const struct sockaddr_in *)&ls;
	const struct sockaddr_in6	*b6 = (const struct sockaddr_in6 *)&bs;
	const struct sockaddr_in6	*l6 = (const struct sockaddr_in6 *)&ls;

	addr_plain(&b->ss, &bs);
	addr_plain(&l->ss, &ls);
	if (bs.ss_family != ls.ss_family)
		return 0;
	if (bs.ss_family == AF_INET) {
		if (b4->sin_port != l4->sin_port)
			return 0;
		if (b4->sin_addr.s_addr == l4->sin_addr.s_addr)
			return 1;
		if (l4->sin_addr.s_addr == htonl(INADDR_ANY))
			return addr_is_local(&bs);
		return b4->sin_addr.s_addr == htonl(INADDR_ANY) &&
		    (ntohl(l4->sin_addr.s_addr) >> 24) == 127;
	}
	if (bs.ss_family == AF_INET6) {
		if (b6->sin6_port != l6->sin6_port)
			return 0;
		if (memcmp(&b6->sin6_addr, &l6->sin6_addr, 16) == 0)
			return 1;
		if (IN6_IS_ADDR_UNSPECIFIED(&l6->sin6_addr))
			return addr_is_local(&bs);
		return IN6_IS_ADDR_UNSPECIFIED(&b6->sin6_addr) &&
		    IN6_IS_ADDR_LOOPBACK(&l6->sin6_addr);
	}
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
	    addr_reaches(&l->backend.address, &l->listen)) {
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
	if (!is_strv(ls)) {
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
		cfg_walk(x, e, key, listener_fields,
		    &c->listeners[c->n_listeners]);
		cfg_check_listener(x, c, c->n_listeners, e);
		c->n_listeners++;
	}
}

/* The config file's directory, absolute when it can be. */
static char *
cfg_dirname(const char *path)
{
	const char	*slash = strrchr(path, '/');
	char		*d, *r;

	if (slash == NULL)
		d = xstrdup(".");
	else if (slash == path)
		d = xstrdup("/");
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
	c->refs = 1;
	c->path = xstrdup(path);
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

	cfg_walk(&x, config_root_setting(&cf), "", top_fields, c);
	c->stats_enabled = c->stats_listen.text != NULL;
	if (c->hostname[0] != '\0' && (check_hostname(c->hostname) != NULL ||
	    strchr(c->hostname, '*') != NULL))
		cfg_err(&x, config_setting_get_member(config_root_setting(&cf),
		    "hostname"), "hostname \"%s\": not a host name",
		    c->hostname);
	cfg_listeners(&x, c, config_root_setting(&cf));

	config_destroy(&cf);
	if (x.nerr > 0) {
		cfg_free(c);
		return NULL;
	}
	return c;
}

/* Reference counting and freeing */

static void
cfg_free(struct config *c)
{
	struct cfg_listener	*l;
	size_t			 i, j;

	if (c == NULL)
		return;
	if (c->tls != NULL && c->tls_free != NULL)
		c->tls_free(c->tls);
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

struct config *
cfg_ref(struct config *c)
{
	if (c != NULL)
		__atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
	return c;
}

void
cfg_unref(struct config *c)
{
	if (c == NULL)
		return;
	if (__atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) == 0)
		cfg_free(c);
}
