/*
 * metrics_http - GET /metrics and GET /healthz for Prometheus and probes.
 *
 * One request per connection (Connection: close), read whole within
 * HTTP_READ_MS or the connection is dropped, answered, then closed.
 * /metrics asks the master to render the text.  /healthz asks the master
 * to ping every worker loop and then looks every HEALTH_POLL_MS whether
 * all have answered; all within HEALTH_MS is 200 "ok", else 503 naming
 * how many did not (a loop stuck in a long computation, or a stopping
 * process).  Nothing here touches a session or a backend, so container
 * and load-balancer probes create no backend sessions and no log lines.
 *
 * The server owns its connections: closing it (a reload that moves
 * stats.listen, or the stop) closes them too, and its memory goes when
 * the last handle's close callback has run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics_http.h"

#define HTTP_REQ_MAX	4096
#define METRICS_MAX	(256 * 1024)
#define HTTP_READ_MS	10000	/* the whole request within this */
#define HEALTH_MS	500	/* every worker loop answers within this */
#define HEALTH_POLL_MS	5

struct http_conn;

struct metrics_http {
	uv_tcp_t		 tcp;
	struct metrics_http_ops	 ops;
	char			*addr;
	int			 refs;		/* the listener + connections */
	int			 closing;
	struct http_conn	*conns;
};

struct http_conn {
	struct http_conn	*next, *prev;
	struct metrics_http	*h;
	uv_tcp_t		 tcp;
	uv_timer_t		 timer;
	int			 handles;	/* open handles; 0 = free */
	int			 closing;
	uint64_t		 seq;		/* /healthz: the ping to wait for */
	uint64_t		 deadline;	/* /healthz: uv_now() limit */
	size_t			 len;
	char			 req[HTTP_REQ_MAX];
};

static void
mh_unref(struct metrics_http *h)
{
	if (--h->refs > 0)
		return;
	free(h->addr);
	free(h);
}

static void
on_conn_handle_closed(uv_handle_t *hd)
{
	struct http_conn *c = hd->data;

	if (--c->handles > 0)
		return;
	mh_unref(c->h);
	free(c);
}

static void
conn_close(struct http_conn *c)
{
	if (c->closing)
		return;
	c->closing = 1;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		c->h->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
	uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
}

static void
on_written(uv_write_t *req, int status)
{
	struct http_conn *c = req->data;

	(void)status;
	free(((char **)(req + 1))[0]);
	free(req);
	conn_close(c);
}

static void
http_send(struct http_conn *c, const char *status, const char *ctype,
    const char *body, size_t blen)
{
	uv_write_t *req;
	char *out;
	uv_buf_t b;
	int n;

	uv_timer_stop(&c->timer);
	req = malloc(sizeof(*req) + sizeof(char *));
	out = malloc(blen + 256);
	if (req == NULL || out == NULL) {
		free(req);
		free(out);
		conn_close(c);
		return;
	}
	n = snprintf(out, 256, "HTTP/1.1 %s\r\nContent-Type: %s\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n\r\n", status, ctype,
	    blen);
	memcpy(out + n, body, blen);
	((char **)(req + 1))[0] = out;
	req->data = c;
	b = uv_buf_init(out, (unsigned)((size_t)n + blen));
	if (uv_write(req, (uv_stream_t *)&c->tcp, &b, 1, on_written) < 0) {
		free(out);
		free(req);
		conn_close(c);
	}
}

static void
metrics_reply(struct http_conn *c)
{
	char *out;
	size_t len = 0;

	if ((out = malloc(METRICS_MAX)) != NULL)
		len = c->h->ops.render(c->h->ops.arg, out, METRICS_MAX);
	if (len > 0)
		http_send(c, "200 OK", "text/plain; version=0.0.4", out, len);
	else
		http_send(c, "500 Internal Server Error", "text/plain",
		    "error\n", 6);
	free(out);
}

/* Answer /healthz when every loop has answered or the time is up. */
static void
health_check(uv_timer_t *t)
{
	struct http_conn *c = t->data;
	struct metrics_http *h = c->h;
	char body[128];
	int left, n;

	if ((left = h->ops.unanswered(h->ops.arg, c->seq)) == 0) {
		http_send(c, "200 OK", "text/plain", "ok\n", 3);
		return;
	}
	if (uv_now(t->loop) < c->deadline)
		return;
	n = snprintf(body, sizeof(body), "%d worker loop(s) did not answer "
	    "within %d ms\n", left, HEALTH_MS);
	log_warnx("healthz: %d worker loop(s) did not answer within %d ms",
	    left, HEALTH_MS);
	http_send(c, "503 Service Unavailable", "text/plain", body,
	    (size_t)n);
}

static void
health_reply(struct http_conn *c)
{
	struct metrics_http *h = c->h;

	if ((c->seq = h->ops.ping(h->ops.arg)) == 0) {
		http_send(c, "503 Service Unavailable", "text/plain",
		    "stopping\n", 9);
		return;
	}
	c->deadline = uv_now(c->tcp.loop) + HEALTH_MS;
	uv_timer_start(&c->timer, health_check, HEALTH_POLL_MS,
	    HEALTH_POLL_MS);
}

/* "GET /path " or "GET /path?query": the path matches exactly. */
static int
is_get(const char *req, const char *path)
{
	size_t n = strlen(path);

	return strncmp(req, "GET ", 4) == 0 &&
	    strncmp(req + 4, path, n) == 0 &&
	    (req[4 + n] == ' ' || req[4 + n] == '?');
}

static void
http_alloc(uv_handle_t *hd, size_t hint, uv_buf_t *b)
{
	struct http_conn *c = hd->data;

	(void)hint;
	b->base = c->req + c->len;
	b->len = sizeof(c->req) - c->len - 1;
}

static void
on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
	struct http_conn *c = st->data;

	(void)b;
	if (nread == 0)
		return;
	if (nread < 0) {
		conn_close(c);
		return;
	}
	c->len += (size_t)nread;
	c->req[c->len] = '\0';
	if (strstr(c->req, "\r\n\r\n") == NULL &&
	    strstr(c->req, "\n\n") == NULL) {
		if (c->len >= sizeof(c->req) - 1) {
			uv_read_stop(st);
			http_send(c, "431 Request Header Fields Too Large",
			    "text/plain", "too large\n", 10);
		}
		return;
	}
	uv_read_stop(st);
	uv_timer_stop(&c->timer);
	if (is_get(c->req, "/metrics"))
		metrics_reply(c);
	else if (is_get(c->req, "/healthz"))
		health_reply(c);
	else if (strncmp(c->req, "GET ", 4) == 0)
		http_send(c, "404 Not Found", "text/plain", "not found\n", 10);
	else
		http_send(c, "405 Method Not Allowed", "text/plain",
		    "method not allowed\n", 19);
}

static void
on_read_timeout(uv_timer_t *t)
{
	conn_close(t->data);
}

static void
on_conn(uv_stream_t *server, int status)
{
	struct metrics_http *h = server->data;
	struct http_conn *c;

	if (status < 0 || (c = calloc(1, sizeof(*c))) == NULL)
		return;
	c->h = h;
	h->refs++;
	uv_tcp_init(server->loop, &c->tcp);
	uv_timer_init(server->loop, &c->timer);
	c->tcp.data = c->timer.data = c;
	c->handles = 2;
	c->next = h->conns;
	if (h->conns != NULL)
		h->conns->prev = c;
	h->conns = c;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0 ||
	    uv_read_start((uv_stream_t *)&c->tcp, http_alloc, on_read) < 0) {
		conn_close(c);
		return;
	}
	uv_timer_start(&c->timer, on_read_timeout, HTTP_READ_MS, 0);
}

static void
on_listener_closed(uv_handle_t *hd)
{
	mh_unref(hd->data);
}

struct metrics_http *
metrics_http_open(uv_loop_t *loop, const struct cfg_addr *addr,
    const struct metrics_http_ops *ops)
{
	struct metrics_http *h;
	int r;

	if ((h = calloc(1, sizeof(*h))) == NULL ||
	    (h->addr = strdup(addr->text)) == NULL) {
		free(h);
		log_error("stats: out of memory");
		return NULL;
	}
	h->ops = *ops;
	h->refs = 1;
	uv_tcp_init(loop, &h->tcp);
	h->tcp.data = h;
	if ((r = uv_tcp_bind(&h->tcp, (const struct sockaddr *)&addr->ss,
	    0)) < 0 ||
	    (r = uv_listen((uv_stream_t *)&h->tcp, 64, on_conn)) < 0) {
		log_error("stats: cannot listen on %s: %s", addr->text,
		    uv_strerror(r));
		metrics_http_close(h);
		return NULL;
	}
	log_info("stats: /metrics and /healthz on http://%s/", addr->text);
	return h;
}

void
metrics_http_close(struct metrics_http *h)
{
	if (h == NULL || h->closing)
		return;
	h->closing = 1;
	while (h->conns != NULL)
		conn_close(h->conns);
	uv_close((uv_handle_t *)&h->tcp, on_listener_closed);
}

const char *
metrics_http_addr(const struct metrics_http *h)
{
	return h->addr;
}
