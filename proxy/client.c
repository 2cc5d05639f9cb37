/*
 * client - the client leg of a session.  See client.h.
 *
 * Writes go straight to the socket when nothing is queued before them
 * (stream_send); TLS output (handshake records, encrypted replies) leaves
 * through the worker's scratch buffer after every TLS call, since even a
 * read can produce some (an alert).
 */
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>

#include "backend.h"
#include "client.h"

void
client_init(struct client *c, const char *id, char *scratch,
    size_t scratch_size, void (*written)(void *, int))
{
	c->id = id;
	c->scratch = scratch;
	c->scratch_size = scratch_size;
	c->written = written;
}

void
client_free(struct client *c)
{
	if (c->tls != NULL)
		tls_conn_free(c->tls);
	free(c->in.p);
	free(c->out.p);
}

static void
on_written(uv_write_t *req, int status)
{
	struct client *c = stream_req_data(req);

	free(req);		/* the bytes live behind it */
	c->writes--;
	c->written(c->tcp.data, status);
}

static int
client_send(struct client *c, const char *p, size_t len)
{
	int r;

	r = stream_send((uv_stream_t *)&c->tcp, p, len, on_written, c, c->id,
	    "client");
	if (r > 0)
		c->writes++;
	return r < 0 ? -1 : 0;
}

static int
flush_tls_out(struct client *c)
{
	size_t n;

	while (c->tls != NULL && tls_pending_out(c->tls) > 0) {
		n = tls_take_out(c->tls, c->scratch, c->scratch_size);
		if (n == 0 || client_send(c, c->scratch, n) < 0)
			return -1;
	}
	return 0;
}

int
client_start_tls(struct client *c, const struct tls_set *set, size_t li)
{
	if ((c->tls = tls_conn_new(set, li)) == NULL)
		return -1;
	return 0;
}

int
client_feed(struct client *c, const char *p, size_t len)
{
	if (c->tls != NULL)
		return tls_feed(c->tls, p, len);
	return buf_append(&c->in, p, len);
}

enum tls_status
client_handshake(struct client *c, enum client_err *err)
{
	enum tls_status st;

	st = tls_handshake(c->tls);
	*err = flush_tls_out(c) < 0 ? CLIENT_WRITE : CLIENT_OK;
	return st;
}

enum client_err
client_pull(struct client *c, size_t cap)
{
	enum tls_status st = TLS_AGAIN;
	size_t n, room;
	char *t;

	while (c->in.len < cap) {
		room = cap - c->in.len;
		if (room > 16384)
			room = 16384;
		if ((t = buf_reserve(&c->in, room)) == NULL)
			return CLIENT_OOM;
		n = tls_read(c->tls, t, room, &st);
		if (n == 0)
			break;
		c->in.len += n;
	}
	if (c->in.len == 0)
		buf_release(&c->in);
	if (flush_tls_out(c) < 0)
		return CLIENT_WRITE;
	if (st == TLS_CLOSED)
		c->eof = true;
	else if (st == TLS_ERROR)
		return CLIENT_TLS;
	return CLIENT_OK;
}

enum client_err
client_flush(struct client *c, bool last)
{
	if (c->out.len > 0) {
		if (c->tls != NULL) {
			if (tls_write(c->tls, buf_data(&c->out),
			    c->out.len) < 0)
				return CLIENT_TLS_WRITE;
			if (last && !c->shut) {
				c->shut = true;
				tls_shutdown(c->tls);
			}
		} else if (client_send(c, buf_data(&c->out), c->out.len) < 0)
			return CLIENT_WRITE;
		buf_consume(&c->out, c->out.len);
		buf_release(&c->out);
	}
	return flush_tls_out(c) < 0 ? CLIENT_WRITE : CLIENT_OK;
}

size_t
client_queued(const struct client *c)
{
	size_t n = c->out.len;

	n += uv_stream_get_write_queue_size((const uv_stream_t *)&c->tcp);
	if (c->tls != NULL)
		n += tls_pending_out(c->tls);
	return n;
}

void
client_read(struct client *c, bool on, uv_alloc_cb alloc, uv_read_cb cb)
{
	if (on && !c->reading) {
		if (uv_read_start((uv_stream_t *)&c->tcp, alloc, cb) == 0)
			c->reading = true;
	} else if (!on && c->reading) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->reading = false;
	}
}

int
client_unread(struct client *c)
{
	uv_os_fd_t fd;
	int unread = 0;

	if (uv_fileno((uv_handle_t *)&c->tcp, &fd) < 0 ||
	    ioctl(fd, FIONREAD, &unread) < 0)
		return -1;
	return unread;
}

void
addr_text(const struct sockaddr_storage *ss, char *addr, size_t addrlen,
    char *port, size_t portlen)
{
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
	const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;

	addr[0] = '\0';
	if (ss->ss_family == AF_INET6) {
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
			inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], addr,
			    (socklen_t)addrlen);
		else
			inet_ntop(AF_INET6, &sin6->sin6_addr, addr,
			    (socklen_t)addrlen);
		snprintf(port, portlen, "%u", ntohs(sin6->sin6_port));
	} else if (ss->ss_family == AF_INET) {
		inet_ntop(AF_INET, &sin->sin_addr, addr, (socklen_t)addrlen);
		snprintf(port, portlen, "%u", ntohs(sin->sin_port));
	} else {
		snprintf(addr, addrlen, "unknown");
		snprintf(port, portlen, "0");
	}
}
