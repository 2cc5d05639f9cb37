/*
 * backend - the connection to the backend MTA.  See backend.h.
 *
 * Writes: stream_send() tries the socket first and copies only what the
 * kernel did not take; be->out holds what must go before the next
 * write (the PROXY header).  Reads land in the worker's buffer (cb->alloc)
 * and are appended to be->in; EOF or a read error stops reading and makes
 * the state BE_EOF.  The session decides what either means.
 */
#include <sys/socket.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "log.h"

struct wreq {
	uv_write_t	 req;
	void		*data;
};

void *
stream_req_data(uv_write_t *req)
{
	return ((struct wreq *)req)->data;
}

int
stream_send(uv_stream_t *st, const char *p, size_t len, uv_write_cb cb,
    void *data, const char *id, const char *to)
{
	struct wreq *wr;
	char *copy;
	uv_buf_t b;
	int r;

	if (len == 0)
		return 0;
	if (uv_stream_get_write_queue_size(st) == 0) {
		b = uv_buf_init((char *)(uintptr_t)p, (unsigned)len);
		r = uv_try_write(st, &b, 1);
		if (r < 0 && r != UV_EAGAIN) {
			log_info("%s: write to %s: %s", id, to, uv_strerror(r));
			return -1;
		}
		if (r > 0) {
			p += r;
			len -= (size_t)r;
		}
		if (len == 0)
			return 0;
	}
	/* The bytes live behind the request, freed by the callback. */
	if ((wr = malloc(sizeof(*wr) + len)) == NULL)
		return -1;
	wr->data = data;
	copy = (char *)(wr + 1);
	memcpy(copy, p, len);
	b = uv_buf_init(copy, (unsigned)len);
	if ((r = uv_write(&wr->req, st, &b, 1, cb)) < 0) {
		log_info("%s: write: %s", id, uv_strerror(r));
		free(wr);
		return -1;
	}
	return 1;
}

/* Has a handle been initialised (uv_*_init sets its type)? */
static bool
has_handle(const struct backend *be)
{
	return be->h.handle.type != UV_UNKNOWN_HANDLE;
}

static void
on_written(uv_write_t *req, int status)
{
	struct backend *be = stream_req_data(req);

	free(req);
	be->cb->written(be->arg, status);
}

static void
on_connect(uv_connect_t *req, int status)
{
	struct backend *be = req->data;

	if (be->state != BE_CONNECTING)
		return;		/* closed meanwhile */
	if (status == 0) {
		be->state = BE_OPEN;
		if (be->h.handle.type == UV_TCP)
			uv_tcp_nodelay(&be->h.tcp, 1);
	}
	be->cb->connected(be->arg, status);
}

int
backend_connect(struct backend *be, uv_loop_t *loop, const struct cfg_addr *a,
    const struct backend_cb *cb, void *arg)
{
	int r;

	be->cb = cb;
	be->arg = arg;
	be->req.data = be;
	if (a->is_unix) {
		if ((r = uv_pipe_init(loop, &be->h.pipe, 0)) < 0)
			return r;
		be->h.handle.data = arg;
		be->state = BE_CONNECTING;
		uv_pipe_connect(&be->req, &be->h.pipe, a->unix_path,
		    on_connect);
		return 0;
	}
	if ((r = uv_tcp_init(loop, &be->h.tcp)) < 0)
		return r;
	be->h.handle.data = arg;
	be->state = BE_CONNECTING;
	return uv_tcp_connect(&be->req, &be->h.tcp,
	    (const struct sockaddr *)&a->ss, on_connect);
}

int
backend_proxy_header(struct backend *be, int version,
    const struct sockaddr_storage *src, const struct sockaddr_storage *dst,
    const struct proxy_tls *pt)
{
	char hdr[PROXY_HDR_MAX];
	size_t n;

	n = proxy_encode(version, (const struct sockaddr *)src,
	    (const struct sockaddr *)dst, pt, hdr, sizeof(hdr));
	if (n == 0 || buf_append(&be->out, hdr, n) < 0)
		return -1;
	return 0;
}

int
backend_send(struct backend *be, const char *p, size_t len, const char *id)
{
	int r = 0;

	if (be->out.len > 0) {
		r = stream_send(&be->h.stream, buf_data(&be->out), be->out.len,
		    on_written, be, id, "backend");
		buf_consume(&be->out, be->out.len);
		buf_release(&be->out);
	}
	if (r >= 0)
		r = stream_send(&be->h.stream, p, len, on_written, be, id,
		    "backend");
	return r < 0 ? -1 : 0;
}

size_t
backend_queued(const struct backend *be)
{
	size_t n = be->out.len;

	if (has_handle(be))
		n += uv_stream_get_write_queue_size(&be->h.stream);
	return n;
}

static void
on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
	struct backend *be = (struct backend *)st;

	if (nread == 0 || be->state == BE_CLOSED)
		return;
	if (nread < 0) {
		be->state = BE_EOF;
		backend_read(be, false);
	} else if (buf_append(&be->in, b->base, (size_t)nread) < 0) {
		be->cb->input(be->arg, -1);
		return;
	}
	be->cb->input(be->arg, 0);
}

void
backend_read(struct backend *be, bool on)
{
	if (on && !be->reading) {
		if (uv_read_start(&be->h.stream, be->cb->alloc, on_read) == 0)
			be->reading = true;
	} else if (!on && be->reading) {
		uv_read_stop(&be->h.stream);
		be->reading = false;
	}
}

size_t
backend_drain(struct backend *be, char *scratch, size_t size, size_t max)
{
	uv_os_fd_t fd;
	ssize_t n;
	size_t total = 0;

	if (be->state != BE_OPEN || uv_fileno(&be->h.handle, &fd) < 0)
		return 0;
	while (total < max) {
		n = recv(fd, scratch, size, MSG_DONTWAIT);
		if (n > 0) {
			total += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		be->state = BE_EOF;		/* closed, or an error */
		backend_read(be, false);
		break;
	}
	return total;
}

void
backend_close(struct backend *be)
{
	be->state = BE_CLOSED;
	if (!has_handle(be) || uv_is_closing(&be->h.handle))
		return;
	backend_read(be, false);
	uv_close(&be->h.handle, be->cb->closed);
}

void
backend_free(struct backend *be)
{
	free(be->in.p);
	free(be->out.p);
}
