/*
 * relay_harness.h - plays session.c around an smtp_relay, in memory, for
 * the unit tables (test_smtp_relay.c) and the fuzzer (fuzz_smtp_relay.c).
 *
 * What the relay queues for the backend and the content it names (fwd)
 * are appended to be_got in wire order; replies to cl_got.  A failure is
 * answered the way sess_fail() does (relay_fail); the STARTTLS 220 drops
 * the client's pending bytes and waits for rh_tls() (the handshake).
 * Along the way it checks the dialogue's invariants and counts breaches
 * in h->violations, with the first one described in h->what:
 *  - while a STARTTLS is taken and its handshake not done, no client step
 *    sends the backend anything (CVE-2011-0411);
 *  - message content reaching the backend has only CRLF line ends and no
 *    CR at its end (held back), holds no CRLF.CRLF but at its end, and a
 *    message the relay ends ends with CRLF.CRLF both in the client's
 *    bytes and at the backend;
 *  - every 2xx the client gets is the proxy's own (220 for STARTTLS, 221
 *    for a local QUIT) or one the backend gave (same code and text).
 * Header-only; everything static.
 */
#ifndef STP_RELAY_HARNESS_H
#define STP_RELAY_HARNESS_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_relay.h"

#define RH_XCLIENT	0x01	/* probe and send XCLIENT */
#define RH_CERT		0x02	/* STARTTLS available */
#define RH_BARE_PASS	0x04	/* bare_newline = pass */
#define RH_REQUIRE_TLS	0x08
#define RH_HIDE_AUTH	0x10
#define RH_RECEIVED	0x20	/* Received: header */
#define RH_AUTO		0x40	/* a scripted backend answers by itself */

enum rh_state { RH_GREETING, RH_COMMANDS, RH_TLS_WAIT, RH_DONE };

struct rh {
	struct smtp_relay	 r;
	struct policy_cfg	 pol;
	unsigned		 opts;
	enum rh_state		 state;
	struct buf		 cin, bin, tobe, tocl;
	struct buf		 be_got, cl_got;
	struct buf		 cl_used;	/* client bytes the relay took */
	uint64_t		 ms;
	int			 drains, closed, failed, lost, window;
	char			 why[128];
	unsigned		 violations;
	char			 what[160];
	size_t			 client2xx;	/* relayed 2xx replies */
	struct buf		 be_all;
	struct buf		 be_first;	/* per byte: 1 starts a chunk */	/* every byte the backend sent */
	/* content at the backend */
	size_t			 content_from;
	int			 in_content;
	/* RH_AUTO: where the scripted backend has read to, its mode */
	size_t			 auto_pos;
	int			 auto_data;
};

static void
rh_violation(struct rh *h, const char *fmt, ...)
{
	va_list ap;

	if (h->violations++ > 0)
		return;
	va_start(ap, fmt);
	vsnprintf(h->what, sizeof(h->what), fmt, ap);
	va_end(ap);
}

static void
rh_init(struct rh *h, unsigned opts)
{
	struct relay_cfg rc;
	struct relay_in in;

	memset(h, 0, sizeof(*h));
	h->opts = opts;
	h->pol.before_tls_code = 530;
	h->pol.reject_code = 554;
	h->pol.require_tls = (opts & RH_REQUIRE_TLS) != 0;
	h->pol.hide_auth_before_tls = (opts & RH_HIDE_AUTH) != 0;
	h->pol.bare_newline = (opts & RH_BARE_PASS) ? BARE_NEWLINE_PASS :
	    BARE_NEWLINE_REJECT;
	memset(&rc, 0, sizeof(rc));
	rc.policy = &h->pol;
	rc.banner = "";
	rc.backend = "127.0.0.1:25";
	rc.hostname = "proxy.test";
	rc.listener = "smtp";
	rc.id = "0123456789abcdef0123";
	rc.peer_addr = "192.0.2.1";
	rc.peer_port = "4321";
	rc.xclient = (opts & RH_XCLIENT) != 0;
	rc.received_header = (opts & RH_RECEIVED) != 0;
	rc.max_line = 512;
	rc.idle_ms = 300000;
	rc.data_ms = 600000;
	if (relay_init(&h->r, &rc, (opts & RH_CERT) != 0) < 0)
		abort();
	memset(&in, 0, sizeof(in));
	if (relay_start(&h->r, &in) < 0)
		abort();
}

static void
rh_free(struct rh *h)
{
	relay_free(&h->r);
	free(h->cin.p);
	free(h->bin.p);
	free(h->tobe.p);
	free(h->tocl.p);
	free(h->be_got.p);
	free(h->cl_got.p);
	free(h->cl_used.p);
	free(h->be_all.p);
	free(h->be_first.p);
}

static void
rh_append(struct buf *b, const char *p, size_t n)
{
	if (buf_append(b, p, n) < 0)
		abort();
}

/* The length of a reply's first line, without its end. */
static size_t
rh_first_line(const char *p, size_t len)
{
	size_t n = 0;

	while (n < len && p[n] != '\r' && p[n] != '\n')
		n++;
	return n;
}

/* Does the backend's stream hold line at a line start, and how many
 * final 2xx lines does it hold?  (Bytes the relay drops as stale or
 * unsolicited stay in the stream: a plain scan, no framing to lose.) */
static int
rh_backend_said(const struct rh *h, const char *line, size_t ll,
    size_t *final2xx)
{
	const char *p = buf_data(&h->be_all), *l;
	const char *first = buf_data(&h->be_first);
	size_t n = h->be_all.len, at, rest, bl;
	int found = 0;

	*final2xx = 0;
	while (ll > 4 && line[ll - 1] == ' ')
		ll--;
	if (ll == 4)
		ll = 3;		/* "250" may come back as "250 " or "250-" */
	if (ll < 3)
		return 0;
	/* A line starts after an LF or where a chunk of backend bytes
	 * starts (stale chunks are dropped whole: framing restarts). */
	for (at = 0; at < n; at++) {
		if (at > 0 && p[at - 1] != '\n' && !first[at])
			continue;
		l = p + at;
		rest = n - at;
		if (rest >= 4 && l[0] == '2' && (l[3] == ' ' || l[3] == '\r' ||
		    l[3] == '\n'))
			(*final2xx)++;
		bl = rh_first_line(l, rest);
		while (bl > 4 && l[bl - 1] == ' ')
			bl--;
		if (bl == 4)
			bl = 3;
		if (bl == ll && memcmp(l, line, 3) == 0 && (ll <= 4 ||
		    memcmp(l + 4, line + 4, ll - 4) == 0))
			found = 1;
	}
	return found;
}

/* The client got these replies: every 2xx must be accounted for. */
static void
rh_check_replies(struct rh *h, const char *p, size_t len)
{
	struct smtp_reply rp;
	size_t final2xx, fl;

	while (len > 0 && smtp_reply_parse(p, len, 1 << 20, &rp) == SMTP_OK) {
		if (rp.code >= 200 && rp.code < 300 &&
		    !(rp.len == 30 && memcmp(p, "220 2.0.0 Ready to start TLS"
		    "\r\n", 30) == 0) &&
		    !(rp.len == 15 && memcmp(p, "221 2.0.0 Bye\r\n", 15) == 0)) {
			fl = rh_first_line(p, rp.len);
			h->client2xx++;
			if (!rh_backend_said(h, p, fl, &final2xx) ||
			    h->client2xx > final2xx)
				rh_violation(h, "2xx the backend never gave: "
				    "%.*s", (int)(fl > 60 ? 60 : fl), p);
		}
		p += rp.len;
		len -= rp.len;
	}
}

/* Content at the backend since 354: CRLF only, no early end. */
static void
rh_check_content(struct rh *h, int ended)
{
	const char *c = buf_data(&h->be_got) + h->content_from;
	size_t n = h->be_got.len - h->content_from, i;

	for (i = 0; i < n; i++) {
		if (h->opts & RH_BARE_PASS)
			;	/* relayed as sent, by request */
		else if (c[i] == '\n' && (i == 0 || c[i - 1] != '\r'))
			rh_violation(h, "bare LF reached the backend at %zu", i);
		else if (c[i] == '\r' && (i + 1 == n || c[i + 1] != '\n'))
			rh_violation(h, "bare or trailing CR reached the "
			    "backend at %zu", i);
		if (i >= 2 && i + 3 <= n && i + 3 != n &&
		    memcmp(c + i - 2, "\r\n.\r\n", 5) == 0)
			rh_violation(h, "CRLF.CRLF inside the content");
	}
	if (!ended)
		return;
	if (!((n == 3 && memcmp(c, ".\r\n", 3) == 0) ||
	    (n >= 5 && memcmp(c + n - 5, "\r\n.\r\n", 5) == 0)))
		rh_violation(h, "message ended without CRLF.CRLF at the "
		    "backend");
	if (h->cl_used.len < 3 || memcmp(buf_data(&h->cl_used) +
	    h->cl_used.len - 3, ".\r\n", 3) != 0)
		rh_violation(h, "message ended without .CRLF from the client");
}

/* Is a STARTTLS 220 waiting in the queue? */
static int
rh_starttls_queued(const struct smtp_relay *r)
{
	size_t i;

	for (i = 0; i < r->rq.n; i++)
		if (r->rq.v[(r->rq.head + i) % r->rq.cap].flags & RS_STARTTLS)
			return 1;
	return 0;
}

static void
rh_flush_backend(struct rh *h)
{
	rh_append(&h->be_got, buf_data(&h->tobe), h->tobe.len);
	buf_consume(&h->tobe, h->tobe.len);
}

static int
rh_apply(struct rh *h, struct relay_out *out)
{
	int r;

	if (out->ev & RELAY_EV_OOM)
		abort();
	if (out->ev & RELAY_EV_GREETING)
		h->state = RH_COMMANDS;
	if (out->ev & RELAY_EV_DRAIN) {
		h->drains++;
		relay_stale(&h->r, h->bin.len);
		buf_consume(&h->bin, h->bin.len);
	}
	rh_flush_backend(h);
	if (out->fwd != NULL)
		rh_append(&h->be_got, out->fwd, out->fwd_len);
	if (out->ev & RELAY_EV_STARTTLS) {
		h->state = RH_TLS_WAIT;
		buf_consume(&h->cin, h->cin.len);
	}
	if (out->ev & RELAY_EV_CLOSE)
		h->closed = 1;
	if (out->ev & RELAY_EV_FAIL) {
		if (!h->failed)
			snprintf(h->why, sizeof(h->why), "%s", out->why);
		h->failed = 1;
		buf_consume(&h->cin, h->cin.len);
		r = relay_fail(&h->r, out->reply);
		if (r == -1)
			abort();
		return 0;
	}
	return 1;
}

static void
rh_out(struct rh *h, struct relay_out *out)
{
	memset(out, 0, sizeof(*out));
	out->to_backend = &h->tobe;
	out->to_client = &h->tocl;
}

static void
rh_in(struct rh *h, struct relay_in *in)
{
	memset(in, 0, sizeof(in[0]));
	in->ms = h->ms;
	in->now = 0;
}

/* The scripted backend (RH_AUTO): 354 to DATA, 221 to QUIT, 250 else,
 * 250 at the end of content (CRLF.CRLF; the content starts as if just
 * after a CRLF). */
static void
rh_auto_reply(struct rh *h, const char *rep)
{
	size_t i;

	rh_append(&h->bin, rep, strlen(rep));
	rh_append(&h->be_all, rep, strlen(rep));
	for (i = 0; rep[i] != '\0'; i++)
		rh_append(&h->be_first, i == 0 ? "\1" : "\0", 1);
}

static void
rh_auto(struct rh *h)
{
	const char *p = buf_data(&h->be_got), *e;
	size_t n = h->be_got.len, at = h->auto_pos;

	while (at < n) {
		if (h->auto_data) {
			if (n - at >= 3 && memcmp(p + at, ".\r\n", 3) == 0)
				at += 3;
			else if ((e = memmem(p + at, n - at, "\r\n.\r\n",
			    5)) != NULL)
				at = (size_t)(e - p) + 5;
			else
				break;
			h->auto_data = 0;
			rh_auto_reply(h, "250 queued\r\n");
			continue;
		}
		if ((e = memchr(p + at, '\n', n - at)) == NULL)
			break;
		if (strncmp(p + at, "DATA\r", 5) == 0) {
			h->auto_data = 1;
			rh_auto_reply(h, "354 go\r\n");
		} else if (strncmp(p + at, "QUIT\r", 5) == 0)
			rh_auto_reply(h, "221 bye\r\n");
		else
			rh_auto_reply(h, "250 ok\r\n");
		at = (size_t)(e - p) + 1;
	}
	h->auto_pos = at;
}

/* Run steps until nothing moves. */
static void
rh_pump(struct rh *h)
{
	struct relay_in in;
	struct relay_out out;
	size_t used, before;
	int progress, more, window, was;
	enum relay_mode prev;

	do {
		progress = 0;
		while (h->bin.len > 0 && !h->failed) {
			rh_in(h, &in);
			rh_out(h, &out);
			prev = h->r.in;
			more = relay_backend_step(&h->r, &in, buf_data(&h->bin),
			    h->bin.len, &used, &out);
			buf_consume(&h->bin, used);
			if (!rh_apply(h, &out))
				break;
			if (prev != RIN_DATA && h->r.in == RIN_DATA) {
				h->content_from = h->be_got.len;
				h->in_content = 1;
			}
			if (!more)
				break;
			progress = 1;
		}
		while (h->state == RH_COMMANDS && h->cin.len > 0 &&
		    !h->failed) {
			rh_in(h, &in);
			rh_out(h, &out);
			prev = h->r.in;
			window = h->window;
			before = h->r.held.len;
			more = relay_client_step(&h->r, &in, buf_data(&h->cin),
			    h->cin.len, &used, &out);
			if (window && (h->tobe.len > 0 || out.fwd != NULL ||
			    h->r.held.len != before))
				rh_violation(h, "forwarded client bytes after "
				    "STARTTLS, before the handshake");
			rh_append(&h->cl_used, buf_data(&h->cin), used);
			was = rh_apply(h, &out);
			buf_consume(&h->cin, used);
			if (rh_starttls_queued(&h->r))
				h->window = 1;
			if (h->in_content && (prev == RIN_DATA ||
			    prev == RIN_DATA_POISONED)) {
				rh_check_content(h, prev == RIN_DATA &&
				    h->r.in == RIN_CMD);
				if (h->r.in != RIN_DATA &&
				    h->r.in != RIN_DATA_POISONED)
					h->in_content = 0;
			}
			if (!was || !more)
				break;
			progress = 1;
		}
		rh_out(h, &out);
		if (h->state != RH_TLS_WAIT)	/* no plaintext in the handshake */
			relay_flush(&h->r, &out);
		if (h->tocl.len > 0) {
			rh_check_replies(h, buf_data(&h->tocl), h->tocl.len);
			rh_append(&h->cl_got, buf_data(&h->tocl), h->tocl.len);
			buf_consume(&h->tocl, h->tocl.len);
			progress = 1;
		}
		(void)rh_apply(h, &out);
		if (h->opts & RH_AUTO) {
			before = h->bin.len;
			rh_auto(h);
			if (h->bin.len != before)
				progress = 1;
		}
		h->ms += 10;
	} while (progress && !h->closed);
}

static void
rh_client(struct rh *h, const char *p, size_t n)
{
	/* The transport drops what comes after the 220 until the
	 * handshake; before the 220 is out the relay must drop it. */
	if (h->state != RH_TLS_WAIT && !h->failed && !h->closed)
		rh_append(&h->cin, p, n);
	rh_pump(h);
}

static void
rh_backend(struct rh *h, const char *p, size_t n)
{
	size_t i;

	rh_append(&h->be_all, p, n);
	for (i = 0; i < n; i++)
		rh_append(&h->be_first, i == 0 ? "\1" : "\0", 1);
	if (!h->failed && !h->closed)
		rh_append(&h->bin, p, n);
	rh_pump(h);
}

/* The backend is lost during the handshake: the session fails, its 421
 * waits in the queue for TLS (sess_fail in SS_HANDSHAKE). */
static void
rh_lost(struct rh *h)
{
	int r;

	if (h->lost)		/* once, as SF_FAILING in sess_fail() */
		return;
	h->lost = 1;
	if ((r = relay_fail(&h->r, R421_LOST)) == -1)
		abort();
	if (r < 0)
		h->closed = 1;	/* no slot for it: the session closes */
}

/* The handshake completes (only after the 220 went out). */
static int
rh_tls(struct rh *h)
{
	struct relay_tls t;
	struct relay_in in;

	if (h->state != RH_TLS_WAIT || h->failed || h->closed)
		return 0;
	memset(&t, 0, sizeof(t));
	t.version = "TLSv1.3";
	t.version_num = 0x0304;
	t.cipher = "TLS_AES_256_GCM_SHA384";
	t.cipher_bits = 256;
	rh_in(h, &in);
	relay_tls_done(&h->r, &t, &in);
	buf_consume(&h->bin, h->bin.len);	/* as handshake_done() */
	h->state = RH_COMMANDS;
	h->window = 0;
	rh_pump(h);
	return 1;
}

#endif
