/*
 * smtp_relay - the SMTP dialogue, pure: commands and policy, reply slots,
 * backend replies, EHLO rewriting, XCLIENT, the STARTTLS window, failure.
 * Message content (DATA, BDAT, Received:) and the deadlines are in
 * smtp_relay_data.c (smtp_relay_int.h is what the two share).  See
 * smtp_relay.h for the contract with the transport.
 *
 * Every client command takes a reply slot in command order; the backend's
 * replies fill the oldest slot waiting for one; the proxy's own replies
 * fill theirs at once; relay_flush() lets them out from the head only.
 * Commands the proxy makes itself (the EHLO probe for XCLIENT, XCLIENT)
 * take slots too, marked RS_SWALLOW: their replies are never relayed.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxyproto.h"
#include "smtp_ehlo.h"
#include "smtp_relay.h"
#include "smtp_relay_int.h"
#include "stats.h"

static void	nolog(const char *fmt, ...) { (void)fmt; }
static void	nolog_kv(int level, const char *event, ...)
{ (void)level; (void)event; }
static const struct relay_log relay_nolog = { nolog, nolog, nolog_kv };

void
rly_fail(struct relay_out *out, const char *why, const char *reply,
    bool backend)
{
	out->ev |= RELAY_EV_FAIL;
	out->why = why;
	out->reply = reply;
	out->backend_fault = backend;
}

/* --- the log lines ----------------------------------------------------- */

/* The backend's final reply to a message: one line per message. */
static void
log_message(struct smtp_relay *r, const char *text, size_t len)
{
	char reply[256], size[24], nr[16];
	size_t n = len;

	if (n > 0 && memchr(text, '\n', n) != NULL)
		n = (size_t)((const char *)memchr(text, '\n', n) - text);
	while (n > 0 && (text[n - 1] == '\r' || text[n - 1] == '\n'))
		n--;
	if (n >= sizeof(reply))
		n = sizeof(reply) - 1;
	memcpy(reply, text, n);
	reply[n] = '\0';
	snprintf(size, sizeof(size), "%" PRIu64, r->env.msg_size);
	snprintf(nr, sizeof(nr), "%u", r->env.nrcpt);
	LOG(r)->kv(RELAY_LOG_INFO, "message",
	    "id", r->cfg.id,
	    "client", r->cfg.peer_addr,
	    "from", r->env.from ? r->env.from : "-",
	    "to", r->env.rcpts ? r->env.rcpts : "-",
	    "#nrcpt", nr,
	    "#size", size,
	    "reply", reply,
	    (char *)NULL);
}

/* A command the proxy refused itself (policy): counted, one line with
 * the envelope known so far, the refused MAIL's or RCPT's path
 * included. */
void
rly_log_refusal(struct smtp_relay *r, const struct smtp_cmd *cmd, int code,
    const char *enh, enum policy_reason reason)
{
	enum smtp_verb verb = cmd->verb;
	char c[8], path[ENVELOPE_PATH_SIZE] = "-";
	const char *from = r->env.from ? r->env.from : "-";

	r->refusals++;
	if (r->cfg.st != NULL)
		stats_add(&r->cfg.st->refusals[reason], 1);
	if (verb == SMTP_V_MAIL || verb == SMTP_V_RCPT)
		envelope_path(cmd->arg, cmd->arglen, path);
	if (verb == SMTP_V_MAIL)
		from = path;
	snprintf(c, sizeof(c), "%d", code);
	LOG(r)->kv(RELAY_LOG_INFO, "refused",
	    "id", r->cfg.id,
	    "client", r->cfg.peer_addr,
	    "command", smtp_verb_name(verb),
	    "#code", c,
	    "enhanced", enh,
	    "reason", policy_reason_name(reason),
	    "helo", r->helo ? r->helo : "-",
	    "from", from,
	    "to", r->env.rcpts ? r->env.rcpts : "-",
	    "rcpt", verb == SMTP_V_RCPT ? path : "-",
	    (char *)NULL);
}

/* --- slots and output -------------------------------------------------- */

/* Queue the proxy's own reply "CODE ENH TEXT" in the next slot. */
void
rly_reply_local(struct smtp_relay *r, struct relay_out *out,
    enum smtp_verb verb, uint16_t flags, int code, const char *enh,
    const char *text)
{
	char line[512];
	int n;

	n = snprintf(line, sizeof(line), "%d %s %s\r\n", code, enh, text);
	if (n < 0 || (size_t)n >= sizeof(line))
		n = snprintf(line, sizeof(line), "%d %s\r\n", code, enh);
	if (replyq_push_local(&r->rq, verb, flags, line, (size_t)n) == NULL)
		out->ev |= RELAY_EV_OOM;
}

/* A slot for a command the backend will answer; the clock of its reply
 * timeout starts now when nothing else is waiting.  -1 when full. */
int
rly_push_backend(struct smtp_relay *r, const struct relay_in *in,
    struct relay_out *out, enum smtp_verb verb, uint16_t flags)
{
	if (r->rq.nwait == 0)
		r->t_wait = in->ms;
	if (replyq_push_backend(&r->rq, verb, flags) == NULL) {
		out->ev |= RELAY_EV_OOM;
		return -1;
	}
	return 0;
}

/* Bytes for the backend: after XCLIENT, held until its reply. */
int
rly_send(struct smtp_relay *r, struct relay_out *out, const char *p,
    size_t len)
{
	struct buf *b = (r->flags & RF_XHOLD) ? &r->held : out->to_backend;

	if (buf_append(b, p, len) < 0) {
		out->ev |= RELAY_EV_OOM;
		return -1;
	}
	return 0;
}

int
rly_forward_line(struct smtp_relay *r, struct relay_out *out, const char *line,
    size_t len)
{
	/* The first command after TLS: what the backend sent before it is
	 * stale, read or not (SPEC §4). */
	if (r->flags & RF_STALE) {
		r->flags &= ~RF_STALE;
		out->ev |= RELAY_EV_DRAIN;
	}
	if (rly_send(r, out, line, len) < 0 ||
	    rly_send(r, out, "\r\n", 2) < 0)
		return -1;
	r->bytes_in += len + 2;
	return 0;
}

static void
forward_cmd(struct smtp_relay *r, const struct relay_in *in,
    struct relay_out *out, enum smtp_verb verb, uint16_t flags,
    const char *line, size_t len)
{
	if (rly_push_backend(r, in, out, verb, flags) == 0)
		(void)rly_forward_line(r, out, line, len);
}

/* --- backend replies --------------------------------------------------- */

/* XCLIENT answered: what was held may go. */
static void
release_held(struct smtp_relay *r, struct relay_out *out)
{
	r->flags &= ~RF_XHOLD;
	if (r->held.len > 0 && buf_append(out->to_backend,
	    buf_data(&r->held), r->held.len) < 0)
		out->ev |= RELAY_EV_OOM;
	buf_consume(&r->held, r->held.len);
	buf_release(&r->held);
}

/* The reply to one of our own commands (EHLO probe, XCLIENT). */
static void
swallowed_reply(struct smtp_relay *r, struct relay_out *out,
    const struct reply_slot *slot, const char *text,
    const struct smtp_reply *rp)
{
	int seen = 0;

	if (slot->verb == SMTP_V_EHLO) {
		r->flags &= ~RF_XPROBE;
		(void)smtp_ehlo_rewrite(text, rp->len, 0, NULL, 0, &seen);
		if (rp->code == 250 && (seen & EHLO_HAS_XCLIENT))
			r->flags |= RF_BE_XCLIENT;
		else
			LOG(r)->warnx("%s: backend %s does not offer XCLIENT;"
			    " not sending it", r->cfg.id, r->cfg.backend);
		if (rp->code == 250)
			r->facts.backend_chunking =
			    (seen & EHLO_HAS_CHUNKING) != 0;
	} else if (slot->verb == SMTP_V_XCLIENT) {
		release_held(r, out);
		if (rp->code != 220)
			LOG(r)->warnx("%s: backend %s refused XCLIENT: %.*s",
			    r->cfg.id, r->cfg.backend,
			    (int)(rp->len > 200 ? 200 : rp->len - 2), text);
	}
}

static void
backend_reply(struct smtp_relay *r, const struct relay_in *in,
    struct relay_out *out, struct reply_slot *slot, const char *text,
    const struct smtp_reply *rp)
{
	char *buf = NULL, ehlo[300];
	const char *rep = text;
	size_t replen = rp->len;
	int flags, seen = 0, probe = 0, n;

	if (slot->flags & RS_GREETING) {
		if (rp->code == 220 && r->cfg.banner[0] != '\0') {
			if ((buf = malloc(strlen(r->cfg.banner) + 8)) == NULL)
				goto oom;
			replen = (size_t)sprintf(buf, "220 %s\r\n",
			    r->cfg.banner);
			rep = buf;
		}
		out->ev |= RELAY_EV_GREETING | RELAY_EV_REARM;
		probe = rp->code == 220 && r->cfg.xclient;
	} else if (slot->flags & RS_SWALLOW) {
		swallowed_reply(r, out, slot, text, rp);
	} else if (slot->verb == SMTP_V_EHLO) {
		flags = 0;
		if (!(r->flags & RF_TLS)) {
			if (r->facts.cert_available)
				flags |= EHLO_ADD_STARTTLS;
			if (r->cfg.policy->hide_auth_before_tls)
				flags |= EHLO_HIDE_AUTH;
		}
		if ((buf = malloc(2 * rp->len + 16)) == NULL)
			goto oom;
		replen = smtp_ehlo_rewrite(text, rp->len, flags, buf,
		    2 * rp->len + 16, &seen);
		if (replen == 0) {
			rly_fail(out, "EHLO reply rewrite failed",
			    R421_INTERNAL, false);
			free(buf);
			return;
		}
		rep = buf;
		if (rp->code == 250)
			r->facts.backend_chunking =
			    (seen & EHLO_HAS_CHUNKING) != 0;
	} else if (slot->verb == SMTP_V_DATA && !(slot->flags & RS_MSGEND)) {
		if (rp->code == 354) {
			r->in = RIN_DATA;
			r->t_content = r->t_content_last = in->ms;
			smtp_datascan_init(&r->ds);
			/* The header leaves with the first content bytes. */
			if (r->cfg.received_header)
				r->flags |= RF_HDR_PENDING;
		} else
			r->in = RIN_CMD;
	}
	if (!(slot->flags & (RS_SWALLOW | RS_GREETING))) {
		switch (slot->verb) {
		case SMTP_V_MAIL:
		case SMTP_V_RCPT:
			envelope_answer(&r->env, slot->verb, rp->code);
			break;
		case SMTP_V_RSET:
		case SMTP_V_EHLO:
		case SMTP_V_HELO:
			envelope_reset(&r->env);
			break;
		default:
			break;
		}
	}
	if (slot->flags & RS_MSGEND) {
		if (rp->code >= 200 && rp->code < 300) {
			r->messages++;
			if (r->cfg.st != NULL)
				stats_add(&r->cfg.st->messages, 1);
		}
		log_message(r, text, rp->len);
		envelope_reset(&r->env);	/* the transaction is over */
	}
	/* 421: the backend is closing the channel (RFC 5321 §3.8).  Its
	 * reply is the client's last; no 421 of ours follows it when the
	 * close arrives. */
	if (rp->code == 421 && !(slot->flags & RS_SWALLOW))
		slot->flags |= RS_CLOSE;
	if (replyq_fill(&r->rq, slot, rep, replen) < 0)
		goto oom;
	free(buf);
	if (probe) {
		/* Learn whether the backend offers XCLIENT (after the fill:
		 * a push may move the slots). */
		n = snprintf(ehlo, sizeof(ehlo), "EHLO %s", r->cfg.hostname);
		if (rly_push_backend(r, in, out, SMTP_V_EHLO, RS_SWALLOW) < 0)
			return;
		(void)rly_forward_line(r, out, ehlo, (size_t)n);
		r->flags |= RF_XPROBE;
	}
	return;
oom:
	free(buf);
	out->ev |= RELAY_EV_OOM;
}

int
relay_backend_step(struct smtp_relay *r, const struct relay_in *in,
    const char *p, size_t len, size_t *used, struct relay_out *out)
{
	struct smtp_reply rp;
	struct reply_slot *slot;
	enum smtp_parse st;

	*used = 0;
	if (len == 0 || (r->flags & RF_BE_GONE))
		return 0;
	if (r->flags & RF_STALE) {
		/* Sent before the handshake: never for the client. */
		r->stale_bytes += len;
		*used = len;
		return 1;
	}
	if (in->client_full)
		return 0;
	st = smtp_reply_parse(p, len, RELAY_REPLY_MAX, &rp);
	if (st == SMTP_AGAIN)
		return 0;
	if (st != SMTP_OK) {
		LOG(r)->warnx("%s: malformed reply from backend %s",
		    r->cfg.id, r->cfg.backend);
		rly_fail(out, "backend protocol error", R421_PROTOCOL, true);
		return 1;
	}
	if ((slot = replyq_waiting(&r->rq)) == NULL) {
		/* Counted and logged once, at the end (SPEC §4). */
		r->unsol_replies++;
		r->unsol_bytes += rp.len;
		if (r->unsol_bytes > RELAY_UNSOLICITED_MAX) {
			*used = len;
			rly_fail(out,
			    "backend keeps sending unsolicited output",
			    R421_PROTOCOL, true);
			return 1;
		}
	} else {
		backend_reply(r, in, out, slot, p, &rp);
		r->t_active = r->t_wait = in->ms;
	}
	*used = rp.len;
	out->ev |= RELAY_EV_REARM;
	return 1;
}

/* --- client commands --------------------------------------------------- */

/*
 * Tell a Postfix-style backend who the client is (XCLIENT, sent only when
 * the backend offered it), once per backend connection, before the first
 * command forwarded, with what is known then (the HELO name when that
 * command is EHLO/HELO).  Its 220 is the proxy's, never relayed; until it
 * comes nothing else is sent (Postfix refuses pipelining after XCLIENT).
 * Values are xtext, so nothing from the client can add a CR, LF or space.
 */
static void
send_xclient(struct smtp_relay *r, const struct relay_in *in,
    struct relay_out *out, const struct smtp_cmd *cmd)
{
	char line[600], addr[64], helo[256];
	const char *h = NULL, *proto = NULL;
	size_t n;

	r->flags |= RF_XSENT;
	if (r->cfg.peer_v6 && strchr(r->cfg.peer_addr, ':'))
		snprintf(addr, sizeof(addr), "IPV6:%s", r->cfg.peer_addr);
	else
		snprintf(addr, sizeof(addr), "%s", r->cfg.peer_addr);
	if (cmd->verb == SMTP_V_EHLO || cmd->verb == SMTP_V_HELO) {
		n = cmd->arglen < sizeof(helo) ? cmd->arglen : sizeof(helo) - 1;
		memcpy(helo, cmd->arg, n);
		helo[n] = '\0';
		h = helo;
		proto = cmd->verb == SMTP_V_EHLO ? "ESMTP" : "SMTP";
	}
	n = xclient_line(addr, r->cfg.peer_port, "[UNAVAILABLE]", h, proto,
	    line, sizeof(line));
	if (n == 0)
		return;
	if (rly_push_backend(r, in, out, SMTP_V_XCLIENT, RS_SWALLOW) < 0 ||
	    rly_forward_line(r, out, line, n) < 0)
		return;
	r->flags |= RF_XHOLD;
}

static void
handle_command(struct smtp_relay *r, const struct relay_in *in,
    struct relay_out *out, const char *line, size_t len, size_t *used,
    size_t avail)
{
	struct smtp_cmd cmd;
	struct policy_verdict v;

	smtp_cmd_parse(line, len, &cmd);
	policy_decide(r->cfg.policy, &r->facts, &cmd, &v);

	if (v.action == POLICY_REPLY) {
		if (v.reason != PR_PROTOCOL)
			rly_log_refusal(r, &cmd, v.code, v.enh, v.reason);
		rly_reply_local(r, out, cmd.verb, 0, v.code, v.enh, v.text);
		rly_bdat_refused(r, in, &cmd);
		return;
	}
	if (v.action == POLICY_STARTTLS) {
		rly_reply_local(r, out, SMTP_V_STARTTLS, RS_STARTTLS, 220,
		    "2.0.0", "Ready to start TLS");
		/* CVE-2011-0411: what follows STARTTLS is not a command. */
		r->in = RIN_IGNORE;
		*used = avail;
		return;
	}
	if ((r->flags & (RF_BE_XCLIENT | RF_XSENT | RF_BE_GONE)) ==
	    RF_BE_XCLIENT && cmd.verb != SMTP_V_QUIT) {
		send_xclient(r, in, out, &cmd);
		if (out->ev & RELAY_EV_OOM)
			return;
	}
	switch (cmd.verb) {
	case SMTP_V_EHLO:
	case SMTP_V_HELO:
		free(r->helo);
		r->helo = strndup(cmd.arg, cmd.arglen > 255 ? 255 :
		    cmd.arglen);
		if (cmd.verb == SMTP_V_EHLO)
			r->flags |= RF_ESMTP;
		else
			r->flags &= ~RF_ESMTP;
		if (r->flags & RF_TLS)
			r->facts.helo_since_tls = true;
		r->flags &= ~RF_BDAT_TX;
		forward_cmd(r, in, out, cmd.verb, 0, line, len);
		break;
	case SMTP_V_MAIL:
	case SMTP_V_RSET:
		r->flags &= ~RF_BDAT_TX;
		if (cmd.verb == SMTP_V_MAIL)
			envelope_push(&r->env, SMTP_V_MAIL, cmd.arg,
			    cmd.arglen);
		forward_cmd(r, in, out, cmd.verb, 0, line, len);
		break;
	case SMTP_V_RCPT:
		envelope_push(&r->env, SMTP_V_RCPT, cmd.arg, cmd.arglen);
		forward_cmd(r, in, out, cmd.verb, 0, line, len);
		break;
	case SMTP_V_DATA:
		forward_cmd(r, in, out, SMTP_V_DATA, 0, line, len);
		r->in = RIN_DATA_WAIT;
		break;
	case SMTP_V_BDAT:
		rly_bdat_command(r, in, out, &cmd, line, len);
		break;
	case SMTP_V_QUIT:
		if ((r->flags & RF_BE_GONE) || policy_tls_insufficient(
		    r->cfg.policy, &r->facts) != PR_NONE)
			rly_reply_local(r, out, SMTP_V_QUIT, RS_CLOSE, 221,
			    "2.0.0", "Bye");
		else
			forward_cmd(r, in, out, SMTP_V_QUIT, RS_CLOSE, line,
			    len);
		r->in = RIN_IGNORE;
		break;
	default:
		forward_cmd(r, in, out, cmd.verb, 0, line, len);
		break;
	}
}

/* One command line. */
static int
client_command(struct smtp_relay *r, const struct relay_in *in,
    const char *p, size_t len, size_t *used, struct relay_out *out)
{
	size_t linelen;
	enum smtp_parse st;

	if (replyq_space(&r->rq) < 3 || (r->flags & RF_XPROBE))
		return 0;
	st = smtp_frame_line(&r->framer, p, len, &linelen, used);
	switch (st) {
	case SMTP_AGAIN:
		/* The tail of an overlong line may have been dropped, with
		 * a whole command behind it: go round again. */
		return *used > 0;
	case SMTP_TOOLONG:
		rly_reply_local(r, out, SMTP_V_UNKNOWN, 0, 500, "5.5.2",
		    "Line too long");
		break;
	case SMTP_INVALID:
		rly_reply_local(r, out, SMTP_V_UNKNOWN, 0, 500, "5.5.2",
		    "Syntax error (NUL or bare CR in command)");
		break;
	case SMTP_OK:
		handle_command(r, in, out, p, linelen, used, len);
		break;
	}
	r->t_active = in->ms;
	out->ev |= RELAY_EV_REARM;
	return 1;
}

int
relay_client_step(struct smtp_relay *r, const struct relay_in *in,
    const char *p, size_t len, size_t *used, struct relay_out *out)
{
	*used = 0;
	if (len == 0)
		return 0;
	if (r->in != RIN_IGNORE && r->in != RIN_BDAT_DISCARD &&
	    r->in != RIN_DATA_POISONED && in->backend_full)
		return 0;
	switch (r->in) {
	case RIN_IGNORE:
		*used = len;
		return 1;
	case RIN_DATA_WAIT:
		return 0;
	case RIN_CMD:
		/* A client that sends but never reads must not grow our
		 * output: local replies count too. */
		if (in->client_full)
			return 0;
		return client_command(r, in, p, len, used, out);
	case RIN_DATA:
	case RIN_DATA_POISONED:
		if (!rly_client_data(r, in, p, len, used, out))
			return 0;
		out->ev |= RELAY_EV_REARM;
		return 1;
	case RIN_BDAT:
	case RIN_BDAT_DISCARD:
		rly_client_bdat_chunk(r, in, p, len, used, out);
		out->ev |= RELAY_EV_REARM;
		return 1;
	}
	return 0;
}

/* --- replies out, failure, TLS ----------------------------------------- */

void
relay_flush(struct smtp_relay *r, struct relay_out *out)
{
	struct reply_slot *slot;
	uint16_t flags;
	uint8_t verb;

	while ((slot = replyq_ready_head(&r->rq)) != NULL) {
		flags = slot->flags;
		verb = slot->verb;
		if (!(flags & RS_SWALLOW)) {
			if (buf_append(out->to_client, slot->text,
			    slot->len) < 0) {
				out->ev |= RELAY_EV_OOM;
				return;
			}
			r->bytes_out += slot->len;
		}
		replyq_pop(&r->rq);
		if (flags & RS_STARTTLS) {
			r->in = RIN_IGNORE;
			/* Every reply owed is out: what the backend sends
			 * from now until the first command after TLS is
			 * stale (SPEC §4). */
			r->flags |= RF_STALE;
			out->ev |= RELAY_EV_STARTTLS;
			break;
		}
		if (flags & RS_CLOSE) {
			out->ev |= RELAY_EV_CLOSE | RELAY_EV_REARM;
			if (verb == SMTP_V_QUIT)
				out->ev |= RELAY_EV_QUIT;
			r->in = RIN_IGNORE;
			break;
		}
	}
}

int
relay_fail(struct smtp_relay *r, const char *reply)
{
	struct reply_slot *slot;

	r->flags |= RF_BE_GONE | RF_FAILED;
	r->in = RIN_IGNORE;
	if ((slot = replyq_waiting(&r->rq)) != NULL) {
		if (replyq_fill(&r->rq, slot, reply, strlen(reply)) < 0)
			return -1;
		slot->flags = (slot->flags | RS_CLOSE) &
		    ~(RS_SWALLOW | RS_STARTTLS | RS_GREETING);
	} else if (replyq_push_local(&r->rq, SMTP_V_UNKNOWN, RS_CLOSE, reply,
	    strlen(reply)) == NULL)
		return -2;
	return 0;
}

void
relay_backend_gone(struct smtp_relay *r)
{
	r->flags |= RF_BE_GONE;
}

void
relay_stale(struct smtp_relay *r, uint64_t n)
{
	r->stale_bytes += n;
}

void
relay_tls_done(struct smtp_relay *r, const struct relay_tls *t,
    const struct relay_in *in)
{
	r->tls = *t;
	r->flags |= RF_TLS;
	r->facts.tls = true;
	r->facts.tls_version = t->version_num;
	r->facts.cipher_bits = t->cipher_bits;
	r->facts.client_cert = t->client_verified;
	r->facts.helo_since_tls = false;
	/* RFC 3207 §4.2: forget everything learnt before TLS.  The HELO
	 * name stays for the log lines only (a session refused after TLS
	 * is still named); policy needs a new one (helo_since_tls), and a
	 * Received header is written only after it. */
	envelope_reset(&r->env);
	r->flags &= ~(RF_BDAT_TX | RF_ESMTP);
	smtp_framer_init(&r->framer, r->cfg.max_line);
	/* Failed during the handshake: its reply waits, nothing is read. */
	r->in = (r->flags & RF_FAILED) ? RIN_IGNORE : RIN_CMD;
	r->t_active = in->ms;
}

bool
relay_may_end(const struct smtp_relay *r, const char **why)
{
	switch (r->in) {
	case RIN_DATA:
	case RIN_DATA_POISONED:
	case RIN_BDAT:
	case RIN_BDAT_DISCARD:
		*why = "client closed in message content";
		return true;
	default:
		return r->rq.n == 0;
	}
}

bool
relay_waits_354(const struct smtp_relay *r)
{
	return r->in == RIN_DATA_WAIT;
}

int
relay_start(struct smtp_relay *r, const struct relay_in *in)
{
	struct relay_out out;

	memset(&out, 0, sizeof(out));
	return rly_push_backend(r, in, &out, SMTP_V_UNKNOWN, RS_GREETING);
}

int
relay_init(struct smtp_relay *r, const struct relay_cfg *cfg,
    bool cert_available)
{
	memset(r, 0, sizeof(*r));
	r->cfg = *cfg;
	if (r->cfg.log == NULL)
		r->cfg.log = &relay_nolog;
	r->facts.cert_available = cert_available;
	smtp_framer_init(&r->framer, cfg->max_line);
	return replyq_init(&r->rq, RELAY_REPLYQ_CAP);
}

void
relay_free(struct smtp_relay *r)
{
	replyq_free(&r->rq);
	free(r->held.p);
	free(r->helo);
	envelope_free(&r->env);
}
