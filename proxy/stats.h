/*
 * stats - counters for /metrics (Prometheus text format, SPEC §6).
 *
 * Each worker owns one struct stats per listener and is its only writer;
 * the metrics reader sums them across workers with relaxed atomic loads,
 * so no lock is ever taken on the data path.  Rendering is pure: it takes
 * snapshots and writes text.
 */
#ifndef STP_STATS_H
#define STP_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "policy.h"

enum hs_fail {
	HSF_PROTOCOL = 0,	/* unsupported protocol / version too low */
	HSF_CIPHER,		/* no shared cipher */
	HSF_CERT,		/* client certificate required / bad */
	HSF_TIMEOUT,
	HSF_CLOSED,		/* peer closed during the handshake */
	HSF_OTHER,
	HSF__COUNT
};

/* Upper bounds (seconds) of the handshake latency histogram. */
#define STATS_HS_BUCKETS 12
extern const double stats_hs_bounds[STATS_HS_BUCKETS];

/*
 * TLS sessions by protocol version and cipher: a small table per shard.
 * The writer fills a slot's names before it publishes the slot (release
 * store of tls_n); readers load tls_n (acquire) and only look below it.
 * When the table is full, further combinations count in a last slot
 * named "other"/"other" (a handful of combinations occur in practice).
 */
#define STATS_TLS_SLOTS	24
struct stats_tls_slot {
	char		version[12];	/* "TLSv1.3" */
	char		cipher[52];	/* "TLS_AES_128_GCM_SHA256" */
	uint64_t	count;
};

struct stats {
	uint64_t	conn_total;
	uint64_t	conn_active;		/* up and down: reader may see a
						 * transiently odd sum, never torn */
	uint64_t	conn_rejected_limit;
	uint64_t	conn_rejected_descriptors;	/* out of descriptors */
	uint64_t	conn_rejected_memory;		/* out of memory */
	uint64_t	hs_ok;
	uint64_t	hs_failed[HSF__COUNT];
	uint64_t	refusals[PR__COUNT];
	uint64_t	messages;
	uint64_t	bytes_in;		/* client -> backend */
	uint64_t	bytes_out;		/* backend -> client */
	uint64_t	backend_failures;
	uint64_t	hs_hist[STATS_HS_BUCKETS + 1];	/* last = +Inf */
	uint64_t	hs_sum_us;		/* microseconds */
	uint64_t	tls_n;			/* slots of tls[] in use */
	struct stats_tls_slot tls[STATS_TLS_SLOTS];
};

/* Writer side (one thread): plain increments through these helpers. */
void	stats_add(uint64_t *c, uint64_t n);
void	stats_hs_observe(struct stats *s, double seconds);
/* One TLS session established with this version and cipher. */
void	stats_tls_session(struct stats *s, const char *version,
	    const char *cipher);

/* Reader side: sum of n shards with relaxed loads into out. */
void	stats_sum(const struct stats *const *shards, size_t n,
	    struct stats *out);

const char *stats_hs_fail_name(enum hs_fail f);

/*
 * Render the metrics of nl listeners (names[i], totals[i]) plus process
 * facts into out[0..outsize) in Prometheus text exposition format 0.0.4
 * (HELP and TYPE lines, counters ending in _total, the histogram with
 * _bucket{le=...}, _sum, _count).  Returns the length, or 0 if it does
 * not fit.
 */
size_t	stats_render(const char *const *names, const struct stats *totals,
	    size_t nl, double uptime_seconds, char *out, size_t outsize);

/* A served certificate, for its expiry gauge. */
struct stats_cert {
	const char	*listener;
	const char	*name;		/* its first name */
	const char	*key_type;	/* "ECDSA", "RSA", "EdDSA" ... */
	double		 not_after;	/* Unix seconds */
};

/* Facts of the process rather than of a listener. */
struct stats_process {
	double			 start_time;	/* Unix seconds */
	const char		*version;	/* of this program */
	const char		*openssl;
	const char		*libuv;
	uint64_t		 reloads_ok;
	uint64_t		 reloads_failed;
	double			 reload_last_success;	/* Unix seconds */
	const struct stats_cert	*certs;
	size_t			 n_certs;
};

/*
 * Render the process families (build_info, process_start_time_seconds,
 * reloads by result, the time of the last good load, each certificate's
 * notAfter) into out[0..outsize), to follow stats_render()'s text.
 * Certificates with the same listener, name and key type are one sample
 * (the earliest notAfter).  Returns the length, or 0 if it does not fit.
 */
size_t	stats_render_process(const struct stats_process *p, char *out,
	    size_t outsize);

#endif
