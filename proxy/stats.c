/*
 * stats - per-listener counters and their Prometheus rendering.
 *
 * Each struct stats has exactly one writer (its worker thread).  The
 * writer updates a counter with a relaxed load and a relaxed store, not a
 * locked read-modify-write: nobody else writes, so no update is lost, and
 * the atomic accesses keep a concurrent reader from seeing a torn value.
 * The reader sums shards with relaxed loads; the sum is a moment-ish
 * snapshot, not a consistent cut (a handshake may be in hs_ok before it
 * is in the histogram).
 *
 * Rendering is pure text exposition 0.0.4: for each family one HELP and
 * one TYPE line, then its samples for every listener, label values
 * escaped (\\, \", \n).  The histogram's buckets are stored per bucket
 * and rendered cumulative; _count is the +Inf bucket.  A gauge that goes
 * down (connections_active) is stored as a wrapping uint64 and printed
 * signed.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "stats.h"

#define METRIC_PREFIX	"starttls_proxy_"

/* Longest observation we store (a day), so hs_sum_us cannot be flooded. */
#define HS_MAX_SECONDS	86400.0

const double stats_hs_bounds[STATS_HS_BUCKETS] = {
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5
};

static const char *const hs_fail_names[HSF__COUNT] = {
	[HSF_PROTOCOL] = "protocol",
	[HSF_CIPHER] = "cipher",
	[HSF_CERT] = "certificate",
	[HSF_TIMEOUT] = "timeout",
	[HSF_CLOSED] = "closed",
	[HSF_OTHER] = "other",
};

void
stats_add(uint64_t *c, uint64_t n)
{
	__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + n,
	    __ATOMIC_RELAXED);
}

void
stats_hs_observe(struct stats *s, double seconds)
{
	size_t	i;

	if (!(seconds >= 0))		/* negative or NaN */
		seconds = 0;
	if (seconds > HS_MAX_SECONDS)
		seconds = HS_MAX_SECONDS;
	for (i = 0; i < STATS_HS_BUCKETS; i++)
		if (seconds <= stats_hs_bounds[i])
			break;
	stats_add(&s->hs_hist[i], 1);
	stats_add(&s->hs_sum_us, (uint64_t)(seconds * 1e6 + 0.5));
}

static uint64_t
ld(const uint64_t *c)
{
	return __atomic_load_n(c, __ATOMIC_RELAXED);
}

void
stats_sum(const struct stats *const *shards, size_t n, struct stats *out)
{
	const struct stats	*s;
	size_t			 i, k;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < n; i++) {
		if ((s = shards[i]) == NULL)
			continue;
		out->conn_total += ld(&s->conn_total);
		out->conn_active += ld(&s->conn_active);
		out->conn_rejected_limit += ld(&s->conn_rejected_limit);
		out->conn_rejected_descriptors +=
		    ld(&s->conn_rejected_descriptors);
		out->conn_rejected_memory += ld(&s->conn_rejected_memory);
		out->hs_ok += ld(&s->hs_ok);
		for (k = 0; k < HSF__COUNT; k++)
			out->hs_failed[k] += ld(&s->hs_failed[k]);
		for (k = 0; k < PR__COUNT; k++)
			out->refusals[k] += ld(&s->refusals[k]);
		out->messages += ld(&s->messages);
		out->bytes_in += ld(&s->bytes_in);
		out->bytes_out += ld(&s->bytes_out);
		out->backend_failures += ld(&s->backend_failures);
		for (k = 0; k < STATS_HS_BUCKETS + 1; k++)
			out->hs_hist[k] += ld(&s->hs_hist[k]);
		out->hs_sum_us += ld(&s->hs_sum_us);
	}
}

const char *
stats_hs_fail_name(enum hs_fail f)
{
	if ((unsigned)f >= HSF__COUNT)
		return "unknown";
	return hs_fail_names[f];
}

/* The output buffer: once something did not fit, nothing more is added. */
struct out {
	char	*p;
	size_t	 len, size;
	int	 full;
};

static void
out_put(struct out *o, const char *s, size_t n)
{
	if (o->full || o->size - o->len <= n) {	/* keep room for the NUL */
		o->full = 1;
		return;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
	o->p[o->len] = '\0';
}

static void
out_str(struct out *o, const char *s)
{
	out_put(o, s, strlen(s));
}

static void
out_fmt(struct out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
out_fmt(struct out *o, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	if (o->full)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->p + o->len, o->size - o->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->size - o->len) {
		o->full = 1;
		return;
	}
	o->len += (size_t)n;
}

/* A label value, escaped for the text format. */
static void
out_label(struct out *o, const char *v)
{
	const char	*s;

	for (s = v; *s != '\0'; s++) {
		if (*s == '\\')
			out_str(o, "\\\\");
		else if (*s == '"')
			out_str(o, "\\\"");
		else if (*s == '\n')
			out_str(o, "\\n");
		else
			out_put(o, s, 1);
	}
}

static void
out_family(struct out *o, const char *name, const char *type,
    const char *help)
{
	out_fmt(o, "# HELP " METRIC_PREFIX "%s %s\n", name, help);
	out_fmt(o, "# TYPE " METRIC_PREFIX "%s %s\n", name, type);
}

/*
 * One sample: name{listener="L"[,key="val"]} value.  The value is already
 * text so that counters, gauges and sums share one writer.
 */
static void
out_sample(struct out *o, const char *name, const char *listener,
    const char *key, const char *val, const char *value)
{
	out_fmt(o, METRIC_PREFIX "%s{listener=\"", name);
	out_label(o, listener != NULL ? listener : "");
	out_str(o, "\"");
	if (key != NULL) {
		out_fmt(o, ",%s=\"", key);
		out_label(o, val);
		out_str(o, "\"");
	}
	out_fmt(o, "} %s\n", value);
}

static void
out_counter(struct out *o, const char *name, const char *listener,
    const char *key, const char *val, uint64_t v)
{
	char	num[32];

	snprintf(num, sizeof(num), "%" PRIu64, v);
	out_sample(o, name, listener, key, val, num);
}

size_t
stats_render(const char *const *names, const struct stats *totals,
    size_t nl, double uptime_seconds, char *out, size_t outsize)
{
	const struct stats	*t;
	struct out		 o = { out, 0, outsize, 0 };
	char			 num[48], le[32];
	uint64_t		 cum;
	size_t			 i, k;

	if (outsize == 0)
		return 0;
	out[0] = '\0';

	out_family(&o, "connections_total", "counter",
	    "Client connections accepted.");
	for (i = 0; i < nl; i++)
		out_counter(&o, "connections_total", names[i], NULL, NULL,
		    totals[i].conn_total);

	out_family(&o, "connections_active", "gauge",
	    "Client connections open now.");
	for (i = 0; i < nl; i++) {
		snprintf(num, sizeof(num), "%" PRId64,
		    (int64_t)totals[i].conn_active);
		out_sample(&o, "connections_active", names[i], NULL, NULL,
		    num);
	}

	out_family(&o, "connections_rejected_total", "counter",
	    "Client connections refused before the greeting.");
	for (i = 0; i < nl; i++) {
		out_counter(&o, "connections_rejected_total", names[i],
		    "reason", "limit", totals[i].conn_rejected_limit);
		out_counter(&o, "connections_rejected_total", names[i],
		    "reason", "descriptors",
		    totals[i].conn_rejected_descriptors);
		out_counter(&o, "connections_rejected_total", names[i],
		    "reason", "memory", totals[i].conn_rejected_memory);
	}

	out_family(&o, "handshakes_total", "counter",
	    "TLS handshakes completed.");
	for (i = 0; i < nl; i++)
		out_counter(&o, "handshakes_total", names[i], "result", "ok",
		    totals[i].hs_ok);

	out_family(&o, "handshakes_failed_total", "counter",
	    "TLS handshakes failed, by reason.");
	for (i = 0; i < nl; i++)
		for (k = 0; k < HSF__COUNT; k++)
			out_counter(&o, "handshakes_failed_total", names[i],
			    "reason", stats_hs_fail_name(k),
			    totals[i].hs_failed[k]);

	out_family(&o, "policy_refusals_total", "counter",
	    "Client commands refused by policy, by reason.");
	for (i = 0; i < nl; i++)
		for (k = PR_NONE + 1; k < PR__COUNT; k++)
			out_counter(&o, "policy_refusals_total", names[i],
			    "reason", policy_reason_name(k),
			    totals[i].refusals[k]);

	out_family(&o, "messages_total", "counter",
	    "Messages relayed to the backend.");
	for (i = 0; i < nl; i++)
		out_counter(&o, "messages_total", names[i], NULL, NULL,
		    totals[i].messages);

	out_family(&o, "bytes_total", "counter",
	    "Bytes relayed: in is client to backend, out backend to client.");
	for (i = 0; i < nl; i++) {
		out_counter(&o, "bytes_total", names[i], "direction", "in",
		    totals[i].bytes_in);
		out_counter(&o, "bytes_total", names[i], "direction", "out",
		    totals[i].bytes_out);
	}

	out_family(&o, "backend_failures_total", "counter",
	    "Backend connections that failed or were lost.");
	for (i = 0; i < nl; i++)
		out_counter(&o, "backend_failures_total", names[i], NULL, NULL,
		    totals[i].backend_failures);

	out_family(&o, "handshake_duration_seconds", "histogram",
	    "TLS handshake latency.");
	for (i = 0; i < nl; i++) {
		t = &totals[i];
		cum = 0;
		for (k = 0; k <= STATS_HS_BUCKETS; k++) {
			cum += t->hs_hist[k];
			if (k < STATS_HS_BUCKETS)
				snprintf(le, sizeof(le), "%g",
				    stats_hs_bounds[k]);
			else
				snprintf(le, sizeof(le), "+Inf");
			out_counter(&o, "handshake_duration_seconds_bucket",
			    names[i], "le", le, cum);
		}
		snprintf(num, sizeof(num), "%" PRIu64 ".%06" PRIu64,
		    t->hs_sum_us / 1000000, t->hs_sum_us % 1000000);
		out_sample(&o, "handshake_duration_seconds_sum", names[i],
		    NULL, NULL, num);
		out_counter(&o, "handshake_duration_seconds_count", names[i],
		    NULL, NULL, cum);
	}

	out_family(&o, "uptime_seconds", "gauge",
	    "Seconds since the process started.");
	if (!(uptime_seconds >= 0))
		uptime_seconds = 0;
	if (uptime_seconds > 1e12)		/* and +Inf */
		uptime_seconds = 1e12;
	out_fmt(&o, METRIC_PREFIX "uptime_seconds %.3f\n", uptime_seconds);

	return o.full ? 0 : o.len;
}
