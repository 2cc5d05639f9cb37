/*
 * config_schema - the settings as tables, and the walker that applies
 * them; part of config (see config.c and config.h).
 *
 * Every setting is described by one row of a field table: its name, its
 * type, its default, its bounds and where it goes (offsetof).  One walker
 * applies a table to a libconfig group: it converts and checks what is
 * there, fills in defaults for what is not, and refuses keys it does not
 * know, naming the closest known key ("did you mean") from the same
 * group or, for a key written in the wrong group, the group it belongs
 * to.  Nested groups are rows pointing to another table, with offsets
 * still relative to the same base structure.  Problems go through
 * cfg_err()/cfg_warn() of config.c.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <ctype.h>
#include <errno.h>
#include <libconfig.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "config_int.h"
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

/* Enum names */

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

static void	cfg_walk(struct cfg_ctx *, const config_setting_t *,
		    const char *, const struct cfg_field *, void *);

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
const char *
cfg_check_hostname(const char *s)
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

int
cfg_is_list(const config_setting_t *s)
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

	if (!cfg_is_list(s)) {
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
		d = cfg_strdup(v);
		why = NULL;
		if (f->flags & F_DOMAIN)
			why = check_domain(d);
		else if (f->flags & F_HOSTNAME)
			why = cfg_check_hostname(d);
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

	if (!cfg_is_list(s)) {
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
			*(char **)p = cfg_strdup(f->sdef);
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
	if ((f->flags & F_NOCTL) && cfg_has_ctl(sv)) {
		cfg_err(x, s, "%s must not contain control characters", key);
		return;
	}
	switch (f->type) {
	case FT_STR:
		*(char **)p = cfg_strdup(sv);
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

void
cfg_apply_top(struct cfg_ctx *x, const config_setting_t *root,
    struct config *c)
{
	cfg_walk(x, root, "", top_fields, c);
}

void
cfg_apply_listener(struct cfg_ctx *x, const config_setting_t *grp,
    const char *key, struct cfg_listener *l)
{
	cfg_walk(x, grp, key, listener_fields, l);
}
