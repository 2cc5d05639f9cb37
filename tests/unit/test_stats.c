/*
 * test_stats - counter helpers, shard sums, histogram bucket placement at
 * the bounds, and the /metrics text: every line is parsed back and held
 * to the exposition format 0.0.4 grammar (HELP and TYPE once per family,
 * before its samples; names, labels, escapes and numbers), then the
 * values are looked up sample by sample.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "stats.h"
#include "unit.h"

#define NROWS(a)	(sizeof(a) / sizeof((a)[0]))
#define PFX		"starttls_proxy_"

static void
test_add_sum(void)
{
	struct stats		 a, b, c, sum;
	const struct stats	*shards[4] = { &a, &b, NULL, &c };
	size_t			 k;

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	memset(&c, 0, sizeof(c));

	stats_add(&a.conn_total, 3);
	stats_add(&a.conn_total, 4);
	ASSERT_EQ(a.conn_total, 7);
	stats_add(&b.conn_total, 10);
	stats_add(&c.conn_total, UINT64_C(1) << 40);

	/* A gauge goes down by adding -1. */
	stats_add(&a.conn_active, 2);
	stats_add(&a.conn_active, (uint64_t)-1);
	stats_add(&b.conn_active, 5);
	ASSERT_EQ(a.conn_active, 1);

	for (k = 0; k < HSF__COUNT; k++)
		stats_add(&b.hs_failed[k], k + 1);
	for (k = 0; k < PR__COUNT; k++)
		stats_add(&c.refusals[k], 100 + k);
	stats_add(&a.conn_rejected_limit, 1);
	stats_add(&b.conn_rejected_descriptors, 7);
	stats_add(&c.conn_rejected_descriptors, 1);
	stats_add(&c.conn_rejected_memory, 3);
	stats_add(&a.hs_ok, 2);
	stats_add(&b.hs_ok, 3);
	stats_add(&a.messages, 4);
	stats_add(&c.messages, 5);
	stats_add(&a.bytes_in, 1000);
	stats_add(&b.bytes_out, 2000);
	stats_add(&c.backend_failures, 6);
	stats_add(&a.hs_hist[0], 1);
	stats_add(&b.hs_hist[0], 1);
	stats_add(&c.hs_hist[STATS_HS_BUCKETS], 9);
	stats_add(&a.hs_sum_us, 11);
	stats_add(&c.hs_sum_us, 22);

	memset(&sum, 0xff, sizeof(sum));
	stats_sum(shards, 4, &sum);
	ASSERT_EQ(sum.conn_total, 17 + (UINT64_C(1) << 40));
	ASSERT_EQ(sum.conn_active, 6);
	ASSERT_EQ(sum.conn_rejected_limit, 1);
	ASSERT_EQ(sum.conn_rejected_descriptors, 8);
	ASSERT_EQ(sum.conn_rejected_memory, 3);
	ASSERT_EQ(sum.hs_ok, 5);
	for (k = 0; k < HSF__COUNT; k++)
		ASSERT_EQ(sum.hs_failed[k], k + 1);
	for (k = 0; k < PR__COUNT; k++)
		ASSERT_EQ(sum.refusals[k], 100 + k);
	ASSERT_EQ(sum.messages, 9);
	ASSERT_EQ(sum.bytes_in, 1000);
	ASSERT_EQ(sum.bytes_out, 2000);
	ASSERT_EQ(sum.backend_failures, 6);
	ASSERT_EQ(sum.hs_hist[0], 2);
	for (k = 1; k < STATS_HS_BUCKETS; k++)
		ASSERT_EQ(sum.hs_hist[k], 0);
	ASSERT_EQ(sum.hs_hist[STATS_HS_BUCKETS], 9);
	ASSERT_EQ(sum.hs_sum_us, 33);

	/* No shards: all zero. */
	memset(&sum, 0xff, sizeof(sum));
	stats_sum(shards, 0, &sum);
	ASSERT_EQ(sum.conn_total, 0);
	ASSERT_EQ(sum.hs_sum_us, 0);
}

/* Which bucket did one observation land in?  -1 if not exactly one. */
static int
bucket_of(double seconds)
{
	struct stats	s;
	int		k, at = -1;

	memset(&s, 0, sizeof(s));
	stats_hs_observe(&s, seconds);
	for (k = 0; k <= STATS_HS_BUCKETS; k++) {
		if (s.hs_hist[k] == 0)
			continue;
		if (s.hs_hist[k] != 1 || at != -1)
			return -1;
		at = k;
	}
	return at;
}

static void
test_histogram(void)
{
	static const double	want[STATS_HS_BUCKETS] = {
		0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
		2.5, 5
	};
	struct stats		s;
	int			k;

	for (k = 0; k < STATS_HS_BUCKETS; k++) {
		ASSERT_TRUE(stats_hs_bounds[k] == want[k]);
		/* le is "less than or equal": the bound itself is in. */
		ASSERT_EQ(bucket_of(stats_hs_bounds[k]), k);
		ASSERT_EQ(bucket_of(stats_hs_bounds[k] * (1 + 1e-9)), k + 1);
		ASSERT_EQ(bucket_of(stats_hs_bounds[k] * (1 - 1e-9)), k);
		UNIT_ROW("bucket %d", k);
	}
	ASSERT_EQ(bucket_of(0), 0);
	ASSERT_EQ(bucket_of(-1), 0);
	ASSERT_EQ(bucket_of(0.0 / 0.0), 0);
	ASSERT_EQ(bucket_of(5.000001), STATS_HS_BUCKETS);
	ASSERT_EQ(bucket_of(1e300), STATS_HS_BUCKETS);
	ASSERT_EQ(bucket_of(1.0 / 0.0), STATS_HS_BUCKETS);

	memset(&s, 0, sizeof(s));
	stats_hs_observe(&s, 0.0015);
	stats_hs_observe(&s, 2);
	stats_hs_observe(&s, -3);
	ASSERT_EQ(s.hs_sum_us, 2001500);
	ASSERT_EQ(s.hs_hist[1], 1);
	ASSERT_EQ(s.hs_hist[10], 1);
	ASSERT_EQ(s.hs_hist[0], 1);
}

static void
test_names(void)
{
	ASSERT_STR_EQ(stats_hs_fail_name(HSF_PROTOCOL), "protocol");
	ASSERT_STR_EQ(stats_hs_fail_name(HSF_CIPHER), "cipher");
	ASSERT_STR_EQ(stats_hs_fail_name(HSF_CERT), "certificate");
	ASSERT_STR_EQ(stats_hs_fail_name(HSF_TIMEOUT), "timeout");
	ASSERT_STR_EQ(stats_hs_fail_name(HSF_CLOSED), "closed");
	ASSERT_STR_EQ(stats_hs_fail_name(HSF_OTHER), "other");
	ASSERT_STR_EQ(stats_hs_fail_name(HSF__COUNT), "unknown");
}

/* ---- the exposition text, parsed back ---- */

#define MAX_FAM		32
#define MAX_SAMPLES	256
#define MAX_LABELS	4

struct label {
	char	key[32];
	char	val[128];	/* unescaped */
};

struct sample {
	char		name[96];
	struct label	labels[MAX_LABELS];
	int		nlabels;
	char		value[48];
	int		family;
};

struct family {
	char	name[96];
	char	type[16];
	int	help, typed, nsamples;
};

struct expo {
	struct family	fam[MAX_FAM];
	int		nfam;
	struct sample	s[MAX_SAMPLES];
	int		ns;
};

static int
is_name_start(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
	    c == ':';
}

static int
is_name_char(int c)
{
	return is_name_start(c) || (c >= '0' && c <= '9');
}

/* [a-zA-Z_:][a-zA-Z0-9_:]* at *p; copied into out.  0 if none. */
static int
take_name(const char **p, const char *end, char *out, size_t outsize,
    int colon)
{
	const char	*s = *p;
	size_t		 n = 0;

	if (s >= end || !is_name_start(*s) || (!colon && *s == ':'))
		return 0;
	while (s < end && is_name_char(*s) && (colon || *s != ':')) {
		if (n + 1 >= outsize)
			return 0;
		out[n++] = *s++;
	}
	out[n] = '\0';
	*p = s;
	return 1;
}

/*
 * A sample value.  The format allows any Go float ("1e3", "NaN"); we hold
 * our own output to plain decimals: [-]digits[.digits] without leading
 * zeros, or "+Inf".
 */
static int
plain_number(const char *s, size_t n)
{
	size_t	i = 0, d = 0;

	if (n == 4 && memcmp(s, "+Inf", 4) == 0)
		return 1;
	if (n > 0 && s[0] == '-') {
		s++;
		n--;
	}
	while (i < n && s[i] >= '0' && s[i] <= '9') {
		i++;
		d++;
	}
	if (d == 0 || (d > 1 && s[0] == '0'))
		return 0;
	if (i < n && s[i] == '.') {
		i++;
		d = 0;
		while (i < n && s[i] >= '0' && s[i] <= '9') {
			i++;
			d++;
		}
		if (d == 0)
			return 0;
	}
	return i == n;
}

static int
find_family(struct expo *e, const char *name)
{
	int	i;

	for (i = 0; i < e->nfam; i++)
		if (strcmp(e->fam[i].name, name) == 0)
			return i;
	return -1;
}

static int
ends_with(const char *s, const char *suf)
{
	size_t	a = strlen(s), b = strlen(suf);

	return a >= b && strcmp(s + a - b, suf) == 0;
}

/* May sample name belong to family f? */
static int
sample_of(const struct family *f, const char *name)
{
	size_t	n = strlen(f->name);

	if (strcmp(name, f->name) == 0)
		return strcmp(f->type, "histogram") != 0;
	if (strcmp(f->type, "histogram") != 0 ||
	    strncmp(name, f->name, n) != 0)
		return 0;
	return strcmp(name + n, "_bucket") == 0 ||
	    strcmp(name + n, "_sum") == 0 || strcmp(name + n, "_count") == 0;
}

/* One comment line "# HELP name text" or "# TYPE name type". */
static int
parse_comment(struct expo *e, const char *p, const char *end, int *cur)
{
	char	name[96], what[8];
	int	f;

	if (end - p < 7 || p[0] != '#' || p[1] != ' ')
		return 10;
	memcpy(what, p + 2, 4);
	what[4] = '\0';
	if (p[6] != ' ')
		return 11;
	p += 7;
	if (!take_name(&p, end, name, sizeof(name), 1))
		return 12;
	if (p >= end || *p != ' ' || p + 1 >= end)
		return 13;
	p++;
	if (strncmp(name, PFX, strlen(PFX)) != 0 &&
	    strcmp(name, "process_start_time_seconds") != 0)
		return 14;	/* ours, or the one standard process family */
	f = find_family(e, name);
	if (strcmp(what, "HELP") == 0) {
		if (f != -1 || e->nfam == MAX_FAM)
			return 15;	/* a second HELP: family split */
		f = e->nfam++;
		memset(&e->fam[f], 0, sizeof(e->fam[f]));
		strcpy(e->fam[f].name, name);
		e->fam[f].help = 1;
		*cur = f;
		return 0;
	}
	if (strcmp(what, "TYPE") != 0)
		return 16;
	if (f == -1 || f != *cur || e->fam[f].typed || e->fam[f].nsamples)
		return 17;
	if ((size_t)(end - p) >= sizeof(e->fam[f].type))
		return 18;
	memcpy(e->fam[f].type, p, (size_t)(end - p));
	e->fam[f].type[end - p] = '\0';
	if (strcmp(e->fam[f].type, "counter") != 0 &&
	    strcmp(e->fam[f].type, "gauge") != 0 &&
	    strcmp(e->fam[f].type, "histogram") != 0)
		return 19;
	if (strcmp(e->fam[f].type, "counter") == 0 &&
	    !ends_with(name, "_total"))
		return 20;
	e->fam[f].typed = 1;
	return 0;
}

/* name{k="v",...} value */
static int
parse_sample(struct expo *e, const char *p, const char *end, int cur)
{
	struct sample	*s;
	struct label	*l;
	const char	*v;
	size_t		 n;

	if (e->ns == MAX_SAMPLES || cur < 0 || !e->fam[cur].typed)
		return 30;
	s = &e->s[e->ns];
	memset(s, 0, sizeof(*s));
	if (!take_name(&p, end, s->name, sizeof(s->name), 1))
		return 31;
	if (!sample_of(&e->fam[cur], s->name))
		return 32;	/* outside its family's block */
	if (p < end && *p == '{') {
		p++;
		for (;;) {
			if (s->nlabels == MAX_LABELS)
				return 33;
			l = &s->labels[s->nlabels++];
			if (!take_name(&p, end, l->key, sizeof(l->key), 0))
				return 34;
			if (end - p < 2 || p[0] != '=' || p[1] != '"')
				return 35;
			p += 2;
			n = 0;
			while (p < end && *p != '"') {
				char c = *p++;

				if (c == '\n')
					return 36;
				if (c == '\\') {
					if (p >= end)
						return 37;
					c = *p++;
					if (c == 'n')
						c = '\n';
					else if (c != '\\' && c != '"')
						return 38;
				}
				if (n + 1 >= sizeof(l->val))
					return 39;
				l->val[n++] = c;
			}
			if (p >= end)
				return 40;
			l->val[n] = '\0';
			p++;
			if (p < end && *p == ',') {
				p++;
				continue;
			}
			if (p < end && *p == '}') {
				p++;
				break;
			}
			return 41;
		}
	}
	if (p >= end || *p != ' ')
		return 42;
	v = ++p;
	if (!plain_number(v, (size_t)(end - v)) ||
	    (size_t)(end - v) >= sizeof(s->value))
		return 43;
	memcpy(s->value, v, (size_t)(end - v));
	s->family = cur;
	e->fam[cur].nsamples++;
	e->ns++;
	return 0;
}

/* Split into lines and check each; 0 when the whole text is good. */
static int
parse_expo(const char *text, size_t n, struct expo *e)
{
	const char	*p = text, *nl, *end = text + n;
	int		 cur = -1, r, i;

	memset(e, 0, sizeof(*e));
	if (n == 0 || text[n - 1] != '\n' || strlen(text) != n)
		return 1;
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == p || memchr(p, '\r', (size_t)(nl - p)) != NULL)
			return 2;
		r = *p == '#' ? parse_comment(e, p, nl, &cur) :
		    parse_sample(e, p, nl, cur);
		if (r != 0) {
			fprintf(stderr, "    bad line (%d): %.*s\n", r,
			    (int)(nl - p), p);
			return r;
		}
		p = nl + 1;
	}
	for (i = 0; i < e->nfam; i++)
		if (!e->fam[i].typed)
			return 3;
	return 0;
}

/* The value of name{labels...} (NULL-terminated key, value pairs). */
static const char *
lookup(const struct expo *e, const char *name, ...)
{
	const char	*k[MAX_LABELS + 1], *v[MAX_LABELS + 1];
	va_list		 ap;
	int		 nk = 0, i, j, found;

	va_start(ap, name);
	while (nk < MAX_LABELS && (k[nk] = va_arg(ap, const char *)) != NULL) {
		v[nk] = va_arg(ap, const char *);
		nk++;
	}
	va_end(ap);
	for (i = 0; i < e->ns; i++) {
		if (strcmp(e->s[i].name, name) != 0 || e->s[i].nlabels != nk)
			continue;
		found = 1;
		for (j = 0; j < nk && found; j++)
			found = strcmp(e->s[i].labels[j].key, k[j]) == 0 &&
			    strcmp(e->s[i].labels[j].val, v[j]) == 0;
		if (found)
			return e->s[i].value;
	}
	return "(missing)";
}

#define WEIRD	"we\"ird\\na\nme"

static void
test_render(void)
{
	static const char *const names[2] = { "mx", WEIRD };
	static const char *const lnames[2] = { "mx", WEIRD };
	static const char *const les[STATS_HS_BUCKETS + 1] = {
		"0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
		"0.25", "0.5", "1", "2.5", "5", "+Inf"
	};
	static struct expo	 e;
	struct stats		 t[2];
	char			*out, want[64];
	size_t			 n, k, sz = 65536;
	int			 i, f;
	uint64_t		 prev;

	out = malloc(sz);
	memset(t, 0, sizeof(t));
	t[0].conn_total = 7;
	t[0].conn_active = 3;
	t[0].conn_rejected_limit = 2;
	t[0].conn_rejected_descriptors = 8;
	t[0].conn_rejected_memory = 9;
	t[0].hs_ok = 5;
	for (k = 0; k < HSF__COUNT; k++)
		t[0].hs_failed[k] = 10 + k;
	for (k = 0; k < PR__COUNT; k++)
		t[0].refusals[k] = 20 + k;
	t[0].messages = 4;
	t[0].bytes_in = 123456789012ULL;
	t[0].bytes_out = 42;
	t[0].backend_failures = 1;
	stats_hs_observe(&t[0], 0.001);
	stats_hs_observe(&t[0], 0.003);
	stats_hs_observe(&t[0], 0.003);
	stats_hs_observe(&t[0], 7);
	t[1].conn_total = UINT64_MAX;
	t[1].conn_active = (uint64_t)-2;	/* a bug would show as -2 */

	n = stats_render(names, t, 2, 12.5, out, sz);
	ASSERT_TRUE(n > 0);
	ASSERT_EQ(n, strlen(out));
	ASSERT_EQ(parse_expo(out, n, &e), 0);

	/* Twelve families, each HELP + TYPE once, samples per listener (no
	 * TLS session yet: tls_sessions_total has none); rejected
	 * connections by three reasons. */
	ASSERT_EQ(e.nfam, 12);
	ASSERT_EQ(e.ns, 2 * (1 + 1 + 3 + 1 + HSF__COUNT + (PR__COUNT - 1) +
	    1 + 2 + 1 + (STATS_HS_BUCKETS + 1 + 2)) + 1);
	f = find_family(&e, PFX "connections_active");
	ASSERT_TRUE(f >= 0 && strcmp(e.fam[f].type, "gauge") == 0);
	f = find_family(&e, PFX "handshake_duration_seconds");
	ASSERT_TRUE(f >= 0 && strcmp(e.fam[f].type, "histogram") == 0);
	f = find_family(&e, PFX "uptime_seconds");
	ASSERT_TRUE(f >= 0 && strcmp(e.fam[f].type, "gauge") == 0);
	f = find_family(&e, PFX "bytes_total");
	ASSERT_TRUE(f >= 0 && strcmp(e.fam[f].type, "counter") == 0);

	ASSERT_STR_EQ(lookup(&e, PFX "connections_total", "listener", "mx",
	    NULL), "7");
	ASSERT_STR_EQ(lookup(&e, PFX "connections_total", "listener", WEIRD,
	    NULL), "18446744073709551615");
	ASSERT_STR_EQ(lookup(&e, PFX "connections_active", "listener", "mx",
	    NULL), "3");
	ASSERT_STR_EQ(lookup(&e, PFX "connections_rejected_total", "listener",
	    "mx", "reason", "limit", NULL), "2");
	ASSERT_STR_EQ(lookup(&e, PFX "connections_rejected_total", "listener",
	    "mx", "reason", "descriptors", NULL), "8");
	ASSERT_STR_EQ(lookup(&e, PFX "connections_rejected_total", "listener",
	    "mx", "reason", "memory", NULL), "9");
	ASSERT_STR_EQ(lookup(&e, PFX "connections_rejected_total", "listener",
	    WEIRD, "reason", "descriptors", NULL), "0");
	ASSERT_STR_EQ(lookup(&e, PFX "handshakes_total", "listener", "mx",
	    "result", "ok", NULL), "5");
	for (k = 0; k < HSF__COUNT; k++) {
		snprintf(want, sizeof(want), "%zu", 10 + k);
		ASSERT_STR_EQ(lookup(&e, PFX "handshakes_failed_total",
		    "listener", "mx", "reason", stats_hs_fail_name(k), NULL),
		    want);
		ASSERT_STR_EQ(lookup(&e, PFX "handshakes_failed_total",
		    "listener", WEIRD, "reason", stats_hs_fail_name(k), NULL),
		    "0");
	}
	for (k = PR_NONE + 1; k < PR__COUNT; k++) {
		snprintf(want, sizeof(want), "%zu", 20 + k);
		ASSERT_STR_EQ(lookup(&e, PFX "policy_refusals_total",
		    "listener", "mx", "reason", policy_reason_name(k), NULL),
		    want);
	}
	ASSERT_STR_EQ(lookup(&e, PFX "policy_refusals_total", "listener",
	    "mx", "reason", policy_reason_name(PR_NONE), NULL), "(missing)");
	ASSERT_STR_EQ(lookup(&e, PFX "messages_total", "listener", "mx",
	    NULL), "4");
	ASSERT_STR_EQ(lookup(&e, PFX "bytes_total", "listener", "mx",
	    "direction", "in", NULL), "123456789012");
	ASSERT_STR_EQ(lookup(&e, PFX "bytes_total", "listener", "mx",
	    "direction", "out", NULL), "42");
	ASSERT_STR_EQ(lookup(&e, PFX "backend_failures_total", "listener",
	    "mx", NULL), "1");
	ASSERT_STR_EQ(lookup(&e, PFX "uptime_seconds", NULL), "12.500");

	/* The histogram: cumulative, ending in +Inf == _count. */
	for (i = 0; i < 2; i++) {
		prev = 0;
		for (k = 0; k <= STATS_HS_BUCKETS; k++) {
			const char *v = lookup(&e,
			    PFX "handshake_duration_seconds_bucket",
			    "listener", lnames[i], "le", les[k], NULL);
			uint64_t c = strtoull(v, NULL, 10);

			ASSERT_TRUE(strcmp(v, "(missing)") != 0);
			ASSERT_TRUE(c >= prev);
			prev = c;
		}
		snprintf(want, sizeof(want), "%llu", (unsigned long long)prev);
		ASSERT_STR_EQ(lookup(&e, PFX "handshake_duration_seconds_count",
		    "listener", lnames[i], NULL), want);
		UNIT_ROW("histogram of listener %d", i);
	}
	ASSERT_STR_EQ(lookup(&e, PFX "handshake_duration_seconds_bucket",
	    "listener", "mx", "le", "0.001", NULL), "1");
	ASSERT_STR_EQ(lookup(&e, PFX "handshake_duration_seconds_bucket",
	    "listener", "mx", "le", "0.0025", NULL), "1");
	ASSERT_STR_EQ(lookup(&e, PFX "handshake_duration_seconds_bucket",
	    "listener", "mx", "le", "0.005", NULL), "3");
	ASSERT_STR_EQ(lookup(&e, PFX "handshake_duration_seconds_bucket",
	    "listener", "mx", "le", "5", NULL), "3");
	ASSERT_STR_EQ(lookup(&e, PFX "handshake_duration_seconds_bucket",
	    "listener", "mx", "le", "+Inf", NULL), "4");
	ASSERT_STR_EQ(lookup(&e, PFX "handshake_duration_seconds_sum",
	    "listener", "mx", NULL), "7.007000");
	ASSERT_STR_EQ(lookup(&e, PFX "handshake_duration_seconds_sum",
	    "listener", WEIRD, NULL), "0.000000");

	/* The escapes as written. */
	ASSERT_TRUE(strstr(out, "{listener=\"we\\\"ird\\\\na\\nme\"}") != NULL);

	/* A gauge that went below zero shows as negative, not as 2^64-2. */
	ASSERT_STR_EQ(lookup(&e, PFX "connections_active", "listener", WEIRD,
	    NULL), "-2");

	/* Room: exactly enough (with the NUL), then one byte less. */
	ASSERT_EQ(stats_render(names, t, 2, 12.5, out, n + 1), n);
	ASSERT_EQ(stats_render(names, t, 2, 12.5, out, n), 0);
	ASSERT_EQ(stats_render(names, t, 2, 12.5, out, n / 2), 0);
	ASSERT_EQ(stats_render(names, t, 2, 12.5, out, 0), 0);

	/* No listeners: families and uptime only, still well formed. */
	n = stats_render(names, t, 0, 0, out, sz);
	ASSERT_TRUE(n > 0);
	ASSERT_EQ(parse_expo(out, n, &e), 0);
	ASSERT_EQ(e.nfam, 12);
	ASSERT_EQ(e.ns, 1);
	ASSERT_STR_EQ(lookup(&e, PFX "uptime_seconds", NULL), "0.000");
	free(out);
}

/* TLS sessions by (version, cipher): slots per shard, merged by name in
 * the sum, the overflow in "other", rendered with both labels. */
static void
test_tls_sessions(void)
{
	static const struct {
		const char	*version, *cipher;
		int		 shard;
	} rows[] = {
		{ "TLSv1.3", "TLS_AES_128_GCM_SHA256", 0 },
		{ "TLSv1.3", "TLS_AES_128_GCM_SHA256", 0 },
		{ "TLSv1.3", "TLS_AES_128_GCM_SHA256", 1 },
		{ "TLSv1.2", "ECDHE-ECDSA-AES128-GCM-SHA256", 1 },
		{ "TLSv1.3", "TLS_CHACHA20_POLY1305_SHA256", 2 },
		{ NULL, NULL, 2 },		/* "unknown" */
		{ "", "", 2 },			/* "unknown" too */
	};
	static struct expo	 e;
	struct stats		 sh[3], sum, one;
	const struct stats	*shards[3] = { &sh[0], &sh[1], &sh[2] };
	const char		*names[1] = { "mx" };
	char			 cipher[32], *out;
	size_t			 i, n, sz = 65536;

	memset(sh, 0, sizeof(sh));
	for (i = 0; i < NROWS(rows); i++)
		stats_tls_session(&sh[rows[i].shard], rows[i].version,
		    rows[i].cipher);
	ASSERT_EQ(sh[0].tls_n, 1);
	ASSERT_EQ(sh[0].tls[0].count, 2);
	ASSERT_EQ(sh[2].tls_n, 2);
	ASSERT_STR_EQ(sh[2].tls[1].version, "unknown");
	ASSERT_EQ(sh[2].tls[1].count, 2);

	stats_sum(shards, 3, &sum);
	ASSERT_EQ(sum.tls_n, 4);
	ASSERT_STR_EQ(sum.tls[0].cipher, "TLS_AES_128_GCM_SHA256");
	ASSERT_EQ(sum.tls[0].count, 3);
	ASSERT_STR_EQ(sum.tls[1].version, "TLSv1.2");
	ASSERT_EQ(sum.tls[1].count, 1);

	out = malloc(sz);
	n = stats_render(names, &sum, 1, 1, out, sz);
	ASSERT_TRUE(n > 0);
	ASSERT_EQ(parse_expo(out, n, &e), 0);
	ASSERT_STR_EQ(lookup(&e, PFX "tls_sessions_total", "listener", "mx",
	    "version", "TLSv1.3", "cipher", "TLS_AES_128_GCM_SHA256", NULL),
	    "3");
	ASSERT_STR_EQ(lookup(&e, PFX "tls_sessions_total", "listener", "mx",
	    "version", "TLSv1.2", "cipher", "ECDHE-ECDSA-AES128-GCM-SHA256",
	    NULL), "1");
	ASSERT_STR_EQ(lookup(&e, PFX "tls_sessions_total", "listener", "mx",
	    "version", "unknown", "cipher", "unknown", NULL), "2");

	/* More combinations than slots: the rest count as "other". */
	memset(&one, 0, sizeof(one));
	for (i = 0; i < STATS_TLS_SLOTS + 10; i++) {
		snprintf(cipher, sizeof(cipher), "C%zu", i);
		stats_tls_session(&one, "TLSv1.2", cipher);
		stats_tls_session(&one, "TLSv1.2", cipher);
	}
	stats_tls_session(&one, "TLSv1.2", "C0");
	ASSERT_EQ(one.tls_n, STATS_TLS_SLOTS);
	ASSERT_EQ(one.tls[0].count, 3);
	ASSERT_STR_EQ(one.tls[STATS_TLS_SLOTS - 1].cipher, "other");
	ASSERT_EQ(one.tls[STATS_TLS_SLOTS - 1].count, 2 * 11);
	/* Summing two full shards stays within the table. */
	shards[0] = shards[1] = &one;
	stats_sum(shards, 2, &sum);
	ASSERT_EQ(sum.tls_n, STATS_TLS_SLOTS);
	ASSERT_EQ(sum.tls[STATS_TLS_SLOTS - 1].count, 4 * 11);
	free(out);
}

/* The process families: build_info, start time, reloads, expiry. */
static void
test_render_process(void)
{
	static const struct stats_cert certs[] = {
		{ "mx", "mx1.example.org", "EC", 1800000000 },
		{ "mx", "mx1.example.org", "RSA", 1800000100 },
		{ "mx", "mx1.example.org", "EC", 1700000000 },	/* same labels */
		{ "sub", "we\"ird", "EC", 1900000000 },
		{ "sub", "neg", "EC", -5 },
	};
	static struct expo	 e;
	struct stats_process	 p;
	char			*out;
	size_t			 n, sz = 16384;
	int			 f;

	memset(&p, 0, sizeof(p));
	p.start_time = 1700000000.25;
	p.version = "0.1.0";
	p.openssl = "OpenSSL 3.0.11";
	p.libuv = "1.44.2";
	p.reloads_ok = 3;
	p.reloads_failed = 1;
	p.reload_last_success = 1700000100.5;
	p.certs = certs;
	p.n_certs = NROWS(certs);
	out = malloc(sz);
	n = stats_render_process(&p, out, sz);
	ASSERT_TRUE(n > 0);
	ASSERT_EQ(parse_expo(out, n, &e), 0);
	ASSERT_EQ(e.nfam, 5);
	f = find_family(&e, "process_start_time_seconds");
	ASSERT_TRUE(f >= 0 && strcmp(e.fam[f].type, "gauge") == 0);
	ASSERT_STR_EQ(lookup(&e, "process_start_time_seconds", NULL),
	    "1700000000.250");
	ASSERT_STR_EQ(lookup(&e, PFX "build_info", "version", "0.1.0",
	    "openssl", "OpenSSL 3.0.11", "libuv", "1.44.2", NULL), "1");
	f = find_family(&e, PFX "reloads_total");
	ASSERT_TRUE(f >= 0 && strcmp(e.fam[f].type, "counter") == 0);
	ASSERT_STR_EQ(lookup(&e, PFX "reloads_total", "result", "ok", NULL),
	    "3");
	ASSERT_STR_EQ(lookup(&e, PFX "reloads_total", "result", "failed",
	    NULL), "1");
	ASSERT_STR_EQ(lookup(&e, PFX "reload_last_success_timestamp_seconds",
	    NULL), "1700000100.500");
	/* One sample per (listener, name, key_type): the earliest. */
	ASSERT_STR_EQ(lookup(&e, PFX "certificate_expiry_timestamp_seconds",
	    "listener", "mx", "name", "mx1.example.org", "key_type", "EC",
	    NULL), "1700000000");
	ASSERT_STR_EQ(lookup(&e, PFX "certificate_expiry_timestamp_seconds",
	    "listener", "mx", "name", "mx1.example.org", "key_type", "RSA",
	    NULL), "1800000100");
	ASSERT_STR_EQ(lookup(&e, PFX "certificate_expiry_timestamp_seconds",
	    "listener", "sub", "name", "we\"ird", "key_type", "EC", NULL),
	    "1900000000");
	ASSERT_STR_EQ(lookup(&e, PFX "certificate_expiry_timestamp_seconds",
	    "listener", "sub", "name", "neg", "key_type", "EC", NULL), "0");
	ASSERT_EQ(e.ns, 1 + 1 + 2 + 1 + 4);

	/* Too small: 0, never a cut text. */
	ASSERT_EQ(stats_render_process(&p, out, n + 1), n);
	ASSERT_EQ(stats_render_process(&p, out, n), 0);
	ASSERT_EQ(stats_render_process(&p, out, 0), 0);

	/* No certificates: the family is there without samples. */
	p.n_certs = 0;
	n = stats_render_process(&p, out, sz);
	ASSERT_EQ(parse_expo(out, n, &e), 0);
	ASSERT_EQ(e.ns, 1 + 1 + 2 + 1);
	free(out);
}

int
main(void)
{
	test_add_sum();
	test_histogram();
	test_names();
	test_render();
	test_tls_sessions();
	test_render_process();
	return unit_done();
}
