/*
 * metrics_http - the small HTTP/1.1 server of `stats = { listen = ...; }`:
 * GET /metrics (Prometheus text format) and GET /healthz (200 when every
 * worker loop answers a ping in time, else 503).  It runs in the master's
 * loop and knows nothing about workers or counters: the master hands it
 * three callbacks.  /healthz only pings event loops; it never opens a
 * backend connection.
 */
#ifndef STP_METRICS_HTTP_H
#define STP_METRICS_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"

struct metrics_http_ops {
	void	*arg;
	/* The /metrics body into out[0..size); its length, or 0 (500). */
	size_t	(*render)(void *arg, char *out, size_t size);
	/* Ask every worker loop to answer; returns the sequence number to
	 * wait for, or 0 when the process is not healthy anyway
	 * (stopping). */
	uint64_t (*ping)(void *arg);
	/* How many loops have not answered seq yet (0: all have). */
	int	(*unanswered)(void *arg, uint64_t seq);
};

struct metrics_http;

/* Listen on addr; NULL after logging why. */
struct metrics_http	*metrics_http_open(uv_loop_t *loop,
			    const struct cfg_addr *addr,
			    const struct metrics_http_ops *ops);
/* Stop listening and close its open connections; memory goes when the
 * last handle has closed.  NULL is fine. */
void			 metrics_http_close(struct metrics_http *h);
/* The address text it listens on. */
const char		*metrics_http_addr(const struct metrics_http *h);

#endif
