/*
 * worker - one event loop thread and everything that belongs to it: its
 * listening handles (one SO_REUSEPORT socket per listener per worker), its
 * sessions, its read buffer, its stats shards.  Nothing on the data path is
 * shared between workers.  The master (master.c) talks to a worker only
 * through worker_post() + the worker's uv_async: a new configuration with
 * its listening sockets, or stop.
 */
#ifndef STP_WORKER_H
#define STP_WORKER_H

#include <stdint.h>
#include <uv.h>

#include "connlimits.h"
#include "gen.h"
#include "session.h"
#include "stats.h"

/* Process-wide state of one listener name: kept across reloads. */
struct lsn_shared {
	struct lsn_shared	*next;
	char			*name;
	struct lsn_limits	*limits;
	struct stats		*shards;	/* one per worker */
};

/* One listening socket of one worker.  The worker accepts itself
 * (worker.c: uv_poll on the socket, accept4) so that running out of
 * descriptors is answered, counted and paced here, not inside libuv. */
struct lsn {
	uv_poll_t		 poll;		/* readable: connections wait */
	uv_timer_t		 backoff;	/* pause after exhaustion */
	int			 fd;		/* the listening socket (owned) */
	int			 handles;	/* open handles, freed at 0 */
	struct worker		*w;
	size_t			 li;		/* index in the listeners of
						 * w->ss.gen */
	struct lsn_shared	*sh;
};

/* What the master posts to a worker. */
struct worker_msg {
	int			 stop;		/* 1 graceful, 2 now */
	struct gen		*gen;		/* new generation (a ref), or NULL */
	size_t			 n;		/* = its cfg->n_listeners */
	int			*fd;		/* per listener: new socket, or -1 */
	long			*keep;		/* per listener: old index kept, or -1 */
	struct lsn_shared	**sh;		/* per listener */
};

struct worker {
	uv_loop_t		 loop;
	uv_thread_t		 thread;
	int			 index;
	void			(*done)(void *);	/* loop ended */
	void			*done_arg;
	struct lsn		**lsn;
	size_t			 n_lsn;
	int			 reserve_fd;	/* spare descriptor (worker.c) */
	int			 headroom;	/* free descriptors a new session
						 * needs to find (worker.c) */
	uv_timer_t		 refuse_timer;	/* logs the refusals not logged */
	uint64_t		 refuse_quiet;	/* refusals since, not logged */
	uv_timer_t		 stop_timer;
	uv_async_t		 async;
	uv_mutex_t		 mu;		/* guards inbox */
	struct worker_msg	*inbox[8];
	size_t			 n_inbox;
	uint64_t		 ping_want;	/* health: asked (atomic) */
	uint64_t		 ping_seen;	/* health: answered (atomic) */
	struct sessions		 ss;		/* its sessions; ss.gen is what
						 * new ones get, ss.stopping
						 * the graceful stop */
};

/* Create worker index (not started); apply msg (the first config).
 * done(arg) is called from the worker's thread when its loop has ended. */
struct worker	*worker_new(int index, struct worker_msg *msg,
		    void (*done)(void *), void *arg);
int		 worker_start(struct worker *w);
/* Hand msg to w (thread-safe); the worker frees it. -1 if the inbox is
 * full (the caller frees it). */
int		 worker_post(struct worker *w, struct worker_msg *msg);
void		 worker_join_free(struct worker *w);
void		 worker_msg_free(struct worker_msg *msg);

/* Health check (/healthz): ask w's loop to answer seq (thread-safe; only
 * while w runs, not after a stop was posted); worker_pong() is the
 * highest seq it has answered. */
void		 worker_ping(struct worker *w, uint64_t seq);
uint64_t	 worker_pong(const struct worker *w);

#endif
