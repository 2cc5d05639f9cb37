/*
 * backend - the session's connection to the backend MTA: connect over TCP
 * or a unix socket, the outbound PROXY header, send (straight to the
 * socket when nothing is queued, else through uv_write from a copy),
 * read into its input buffer, drain, close.  It knows nothing of SMTP:
 * the session decides what to send and what a failure means, through the
 * callbacks.  One state, changed only here.
 */
#ifndef STP_BACKEND_H
#define STP_BACKEND_H

#include <stdbool.h>
#include <uv.h>

#include "buf.h"
#include "config.h"
#include "proxyproto.h"

enum be_state {
	BE_NONE = 0,		/* no handle yet */
	BE_CONNECTING,
	BE_OPEN,		/* connected */
	BE_EOF,			/* it closed its side, or a read failed */
	BE_CLOSED		/* given up: no more I/O (the handle may still
				   be closing) */
};

struct backend_cb {
	void	(*connected)(void *arg, int status);
	void	(*input)(void *arg, int status);	/* bytes in be->in, or
						   EOF; -1: out of memory */
	void	(*written)(void *arg, int status);	/* a queued write */
	uv_alloc_cb	alloc;
	uv_close_cb	closed;			/* handle->data is arg */
};

struct backend {
	union {
		uv_handle_t	 handle;
		uv_stream_t	 stream;
		uv_tcp_t	 tcp;
		uv_pipe_t	 pipe;
	}			 h;		/* first: the callbacks find us */
	uv_connect_t		 req;
	enum be_state		 state;
	bool			 reading;
	struct buf		 in;		/* read, not yet framed */
	struct buf		 out;		/* to send */
	const struct backend_cb	*cb;
	void			*arg;
};

/*
 * Start connecting to a.  Returns 0, or a libuv error; either way, when
 * be->state is no longer BE_NONE a handle exists that closing will pass
 * to cb->closed.
 */
int	backend_connect(struct backend *be, uv_loop_t *loop,
	    const struct cfg_addr *a, const struct backend_cb *cb, void *arg);

/* Queue a PROXY header (version 1 or 2) to go first.  -1 on failure. */
int	backend_proxy_header(struct backend *be, int version,
	    const struct sockaddr_storage *src,
	    const struct sockaddr_storage *dst, const struct proxy_tls *pt);

/* Send be->out, then p[0..len).  0, or -1 on a write error (logged with
 * id). */
int	backend_send(struct backend *be, const char *p, size_t len,
	    const char *id);
/* Bytes queued toward the backend, ours and the kernel-side queue's. */
size_t	backend_queued(const struct backend *be);
/* Reading on or off (idempotent). */
void	backend_read(struct backend *be, bool on);
/*
 * Read and drop what sits unread in the socket, up to max bytes, without
 * blocking; returns the count (EOF or an error makes the state BE_EOF).
 */
size_t	backend_drain(struct backend *be, char *scratch, size_t size,
	    size_t max);
/* No more I/O; the handle is closed (cb->closed).  Idempotent. */
void	backend_close(struct backend *be);
void	backend_free(struct backend *be);

/*
 * Send p[0..len) on st: straight to the socket when nothing is queued
 * before it (uv_try_write: no request, no callback, and none of the
 * epoll_ctl calls that every completed uv_write costs), the rest through
 * uv_write from a copy, whose callback cb gets data (stream_req_data).
 * Returns 0 when all was written, 1 when a request is queued, -1 on a
 * write error (logged as "ID: write to TO: error").
 */
int	stream_send(uv_stream_t *st, const char *p, size_t len,
	    uv_write_cb cb, void *data, const char *id, const char *to);
void	*stream_req_data(uv_write_t *req);

#endif
