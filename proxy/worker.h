/*
 * worker - one event loop and everything that belongs to it: the listening
 * handles, the sessions, the shared read buffer.  Nothing here is shared
 * between loops except the connection counters (struct lsn_limits, taken
 * on accept and release only, never on the data path).
 */
#ifndef STP_WORKER_H
#define STP_WORKER_H

#include <stdint.h>
#include <uv.h>

#include "config.h"

struct session;

/* Connection counts of one listener, across workers. */
struct lsn_limits;

struct lsn {
	uv_tcp_t		 tcp;
	struct worker		*w;
	size_t			 li;		/* index in cfg->listeners */
	int			 open;
};

#define WORKER_RDBUF	(64 * 1024)

struct worker {
	uv_loop_t		 loop;
	int			 index;
	struct config		*cfg;		/* ref; what new sessions use */
	struct lsn		*lsn;
	size_t			 n_lsn;
	struct lsn_limits	**limits;	/* per listener, shared */
	struct session		*sessions;	/* list head */
	size_t			 n_sessions;
	uint64_t		 next_id;
	int			 stopping;
	uv_timer_t		 stop_timer;
	uv_signal_t		 sig_term, sig_int, sig_hup;
	char			 hostname[256];
	char			 rdbuf[WORKER_RDBUF];
};

/* Process-wide pieces (one per proxy, shared by the workers). */
int	worker_run(struct config *cfg);
/* A session of w has closed (for the graceful stop). */
void	worker_session_gone(struct worker *w);

/* Limits: 0 when the connection may proceed (and is counted), else -1. */
int	limits_take(struct lsn_limits *l, const struct cfg_listener *lc,
	    const struct sockaddr *sa);
void	limits_release(struct lsn_limits *l, const struct sockaddr *sa);

#endif
