/*
 * session - one client connection and the backend connection it owns.
 *
 * The sessions of one event loop share a struct sessions, which the
 * worker (worker.c) owns: the worker accepts and stops, the sessions run
 * themselves.  Nothing here knows the worker; it learns through gone()
 * that a session has left.
 */
#ifndef STP_SESSION_H
#define STP_SESSION_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define SESSION_BUF	(64 * 1024)

struct gen;
struct lsn_limits;
struct session;
struct stats;

struct sessions {
	uv_loop_t		*loop;
	unsigned		 index;		/* the worker's, in session ids */
	struct gen		*gen;		/* new sessions take a ref */
	int			 stopping;	/* 0; 1 grace period, 2 421 sent */
	struct session		*head;		/* the open sessions */
	size_t			 n;
	size_t			 n_preheader;	/* waiting for a PROXY header */
	uint64_t		 next_id;
	void			(*gone)(void *);	/* a session left head */
	void			*gone_arg;
	char			 hostname[256];	/* the system's */
	char			 rdbuf[SESSION_BUF];	/* every read lands here */
	char			 wrbuf[SESSION_BUF];	/* TLS output on its way */
};

/*
 * A connection accepted on listener li of ss->gen (fd: non-blocking,
 * close-on-exec) becomes a session counted in limits and st.  0: fd is
 * the session's (closed on any later failure); -1: no memory for a
 * session, fd untouched, for the caller to refuse.
 */
int	session_accept(struct sessions *ss, size_t li,
	    struct lsn_limits *limits, struct stats *st, int fd);

/* Graceful stop: answer "421 4.3.2" at the next opportunity and close. */
void	session_shutdown(struct session *s);
/* Close now, whatever state (end of the shutdown grace period). */
void	session_abort(struct session *s, const char *why);
struct session *session_next(struct session *s);

#endif
