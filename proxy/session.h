/*
 * session - one client connection and the backend connection it owns.
 */
#ifndef STP_SESSION_H
#define STP_SESSION_H

#include <uv.h>

struct worker;
struct lsn;
struct session;

/* A connection accepted on l (fd: non-blocking, close-on-exec) becomes a
 * session; fd is always taken (closed on failure, refused with 421 when
 * there is no memory for a session). */
void	session_accept(struct lsn *l, int fd);

/* Graceful stop: answer "421 4.3.2" at the next opportunity and close. */
void	session_shutdown(struct session *s);
/* Close now, whatever state (end of the shutdown grace period). */
void	session_abort(struct session *s, const char *why);
struct session *session_next(struct session *s);

#endif
