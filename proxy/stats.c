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
 *
 * TLS sessions by version and cipher live in a small slot table per shard
 * (see stats.h); summing merges the tables by name.  The process families
 * (build_info, process_start_time_seconds, reloads, certificate expiry)
 * are rendered separately from facts the master passes in.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "stats.h"
#include "wbuf.h"

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

/* The slot of (version, cipher) among the first n, or n. */
static size_t
tls_find(const struct stats *s, size_t n, const char *version,
    const char *cipher)
{
	size_t	i;

	for (i = 0; i < n; i++)
		if (strcmp(s->tls[i].version, version) == 0 &&
		    strcmp(s->tls[i].cipher, cipher) == 0)
			break;
	return i;
}

/* Count n sessions of (version, cipher) in s; s has one writer. */
static void
tls_count(struct stats *s, const char *version, const char *cipher,
    uint64_t n)
{
	size_t	used, i;

	used = (size_t)__atomic_load_n(&s->tls_n, __ATOMIC_RELAXED);
	if (used > STATS_TLS_SLOTS)
		used = STATS_TLS_SLOTS;
	i = tls_find(s, used, version, cipher);
	if (i == used && used >= STATS_TLS_SLOTS - 1) {
		version = cipher = "other";	/* full: the last slot */
		i = tls_find(s, used, version, cipher);
	}
	if (i == used) {
		snprintf(s->tls[i].version, sizeof(s->tls[i].version), "%s",
		    version);
		snprintf(s->tls[i].cipher, sizeof(s->tls[i].cipher), "%s",
		    cipher);
		__atomic_store_n(&s->tls[i].count, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&s->tls_n, (uint64_t)used + 1,
		    __ATOMIC_RELEASE);
	}
	stats_add(&s->tls[i].count, n);
}

void
stats_tls_session(struct stats *s, const char *version, const char *cipher)
{
	tls_count(s, version != NULL && *version != '\0' ? version : "unknown",
	    cipher != NULL && *cipher != '\0' ? cipher : "unknown", 1);
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
	size_t			 i, k, m;

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
		m = (size_t)__atomic_load_n(&s->tls_n, __ATOMIC_ACQUIRE);
		for (k = 0; k < m && k < STATS_TLS_SLOTS; k++)
			tls_count(out, s->tls[k].version, s->tls[k].cipher,
			    ld(&s->tls[k].count));
	}
}

const char *
stats_hs_fail_name(enum hs_fail f)
{
	if ((unsigned)f >= HSF__COUNT)
		return "unknown";
	return hs_fail_names[f];
}

/* The text is a string also when cut: NUL after what was written (the
 * writer was given one byte less than the buffer).  Its length, 0 when
 * something did not fit. */
static size_t
render_end(struct wbuf *o)
{
	o->p[o->len] = '\0';
	return o->full ? 0 : o->len;
}

/* A label value, escaped for the text format. */
static void
out_label(struct wbuf *o, const char *v)
{
	const char	*s;

	for (s = v; *s != '\0'; s++) {
		if (*s == '\\')
			wbuf_puts(o, "\\\\");
		else if (*s == '"')
			wbuf_puts(o, "\\\"");
		else if (*s == '\n')
			wbuf_puts(o, "\\n");
		else
			wbuf_put(o, s, 1);
	}
}

static void
out_family(struct wbuf *o, const char *name, const char *type,
    const char *help)
{
	wbuf_fmt(o, "# HELP " METRIC_PREFIX "%s %s\n", name, help);
	wbuf_fmt(o, "# TYPE " METRIC_PREFIX "%s %s\n", name, type);
}

/*
 * One sample: name{listener="L"[,key="val"]} value.  The value is already
 * text so that counters, gauges and sums share one writer.
 */
static void
out_sample(struct wbuf *o, const char *name, const char *listener,
    const char *key, const char *val, const char *value)
{
	wbuf_fmt(o, METRIC_PREFIX "%s{listener=\"", name);
	out_label(o, listener != NULL ? listener : "");
	wbuf_puts(o, "\"");
	if (key != NULL) {
		wbuf_fmt(o, ",%s=\"", key);
		out_label(o, val);
		wbuf_puts(o, "\"");
	}
	wbuf_fmt(o, "} %s\n", value);
}

/* A sample with any labels: (key, value) pairs ended by NULL; name is
 * written as given (no prefix added). */
static void
out_samplev(struct wbuf *o, const char *name, const char *value, ...)
{
	va_list		 ap;
	const char	*k, *v, *sep = "{";

	wbuf_puts(o, name);
	va_start(ap, value);
	while ((k = va_arg(ap, const char *)) != NULL) {
		v = va_arg(ap, const char *);
		wbuf_fmt(o, "%s%s=\"", sep, k);
		out_label(o, v != NULL ? v : "");
		wbuf_puts(o, "\"");
		sep = ",";
	}
	va_end(ap);
	if (sep[0] == ',')
		wbuf_puts(o, "}");
	wbuf_fmt(o, " %s\n", value);
}

/* A Unix time or other seconds value: finite, not negative, whole
 * milliseconds. */
static void
seconds_text(double v, char *buf, size_t size)
{
	if (!(v >= 0))			/* negative or NaN */
		v = 0;
	if (v > 1e12)			/* and +Inf */
		v = 1e12;
	snprintf(buf, size, "%.3f", v);
}

static void
out_counter(struct wbuf *o, const char *name, const char *listener,
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
	struct wbuf		 o;
	char			 num[48], le[32];
	uint64_t		 cum;
	size_t			 i, k;

	if (outsize == 0)
		return 0;
	out[0] = '\0';
	wbuf_init(&o, out, outsize - 1);	/* room for the NUL */

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

	out_family(&o, "tls_sessions_total", "counter",
	    "TLS sessions established, by protocol version and cipher.");
	for (i = 0; i < nl; i++) {
		t = &totals[i];
		for (k = 0; k < t->tls_n && k < STATS_TLS_SLOTS; k++) {
			snprintf(num, sizeof(num), "%" PRIu64, t->tls[k].count);
			wbuf_puts(&o, METRIC_PREFIX);
			out_samplev(&o, "tls_sessions_total", num,
			    "listener", names[i], "version",
			    t->tls[k].version, "cipher", t->tls[k].cipher,
			    (const char *)NULL);
		}
	}

	out_family(&o, "uptime_seconds", "gauge",
	    "Seconds since the process started.");
	if (!(uptime_seconds >= 0))
		uptime_seconds = 0;
	if (uptime_seconds > 1e12)		/* and +Inf */
		uptime_seconds = 1e12;
	wbuf_fmt(&o, METRIC_PREFIX "uptime_seconds %.3f\n", uptime_seconds);

	return render_end(&o);
}

/* Index of the first certificate with i's labels; i when it is the first. */
static size_t
cert_first(const struct stats_cert *c, size_t i)
{
	size_t	j;

	for (j = 0; j < i; j++)
		if (strcmp(c[j].listener, c[i].listener) == 0 &&
		    strcmp(c[j].name, c[i].name) == 0 &&
		    strcmp(c[j].key_type, c[i].key_type) == 0)
			return j;
	return i;
}

size_t
stats_render_process(const struct stats_process *p, char *out,
    size_t outsize)
{
	struct wbuf	 o;
	char		 num[48];
	double		 when;
	size_t		 i, j;

	if (outsize == 0)
		return 0;
	out[0] = '\0';
	wbuf_init(&o, out, outsize - 1);	/* room for the NUL */

	out_family(&o, "build_info", "gauge",
	    "Always 1; the labels say which build runs.");
	wbuf_puts(&o, METRIC_PREFIX);
	out_samplev(&o, "build_info", "1", "version", p->version, "openssl",
	    p->openssl, "libuv", p->libuv, (const char *)NULL);

	wbuf_puts(&o, "# HELP process_start_time_seconds Start time of the "
	    "process since the Unix epoch in seconds.\n"
	    "# TYPE process_start_time_seconds gauge\n");
	seconds_text(p->start_time, num, sizeof(num));
	out_samplev(&o, "process_start_time_seconds", num, (const char *)NULL);

	out_family(&o, "reloads_total", "counter",
	    "Reloads of the configuration and certificates (SIGHUP or a "
	    "certificate change), by result.");
	snprintf(num, sizeof(num), "%" PRIu64, p->reloads_ok);
	wbuf_puts(&o, METRIC_PREFIX);
	out_samplev(&o, "reloads_total", num, "result", "ok",
	    (const char *)NULL);
	snprintf(num, sizeof(num), "%" PRIu64, p->reloads_failed);
	wbuf_puts(&o, METRIC_PREFIX);
	out_samplev(&o, "reloads_total", num, "result", "failed",
	    (const char *)NULL);

	out_family(&o, "reload_last_success_timestamp_seconds", "gauge",
	    "When the running configuration and certificates were loaded "
	    "(start or last good reload), since the Unix epoch.");
	seconds_text(p->reload_last_success, num, sizeof(num));
	wbuf_puts(&o, METRIC_PREFIX);
	out_samplev(&o, "reload_last_success_timestamp_seconds", num,
	    (const char *)NULL);

	out_family(&o, "certificate_expiry_timestamp_seconds", "gauge",
	    "notAfter of each served certificate, since the Unix epoch.");
	for (i = 0; i < p->n_certs; i++) {
		if (cert_first(p->certs, i) != i)
			continue;
		when = p->certs[i].not_after;
		for (j = i + 1; j < p->n_certs; j++)
			if (cert_first(p->certs, j) == i &&
			    p->certs[j].not_after < when)
				when = p->certs[j].not_after;
		if (!(when >= 0))
			when = 0;
		if (when > 1e12)
			when = 1e12;
		snprintf(num, sizeof(num), "%.0f", when);
		wbuf_puts(&o, METRIC_PREFIX);
		out_samplev(&o, "certificate_expiry_timestamp_seconds", num,
		    "listener", p->certs[i].listener, "name", p->certs[i].name,
		    "key_type", p->certs[i].key_type, (const char *)NULL);
	}
	return render_end(&o);
}
