/*
 * smtp_relay_data - message content, the other half of smtp_relay (see
 * smtp_relay_int.h): DATA content after the 354 (the end scanner, the
 * bare CR/LF defence, the CR held back), BDAT chunks (relayed, or dropped
 * after a refusal), the Received: header that goes before a message's
 * content, and the dialogue's deadlines (inside content: the longest
 * pause and the whole content; else the backend's reply or the client's
 * next command).  smtp_relay.c reads the commands and the backend's
 * replies and calls in here for the content.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "received.h"
#include "smtp_relay.h"
#include "smtp_relay_int.h"

/* What a refused message is logged as. */
static const struct smtp_cmd data_cmd = { SMTP_V_DATA, "", 0 };

/* The Received: header for this session's next message; its length. */
static size_t
make_received(struct smtp_relay *r, const struct relay_in *in, char *hdr,
    size_t size, int esmtp)
{
	struct received_info ri;

	memset(&ri, 0, sizeof(ri));
	ri.helo = r->helo;
	ri.client_addr = r->cfg.peer_addr;
	ri.by_host = r->cfg.hostname;
	ri.listener = r->cfg.listener;
	ri.session_id = r->cfg.id;
	if (r->flags & RF_TLS) {
		ri.tls_version = r->tls.version;
		ri.cipher = r->tls.cipher;
		ri.cipher_bits = r->tls.cipher_bits;
		ri.sni = r->tls.sni;
		ri.client_subject = r->tls.client_subject;
	}
	ri.esmtp = esmtp;
	ri.now = in->now;
	return received_header(&ri, hdr, size);
}

/* --- message content --------------------------------------------------- */

/* BDAT: its chunk follows.  The first of a transaction carries the
 * Received: header, so the size sent on counts it. */
void
rly_bdat_command(struct smtp_relay *r, const struct relay_in *in,
    struct relay_out *out, const struct smtp_cmd *cmd, const char *line,
    size_t len)
{
	uint64_t size;
	int last, n;
	char hdr[RECEIVED_MAX], head[64];
	size_t hl = 0;

	if (smtp_bdat_parse(cmd->arg, cmd->arglen, &size, &last) < 0) {
		rly_reply_local(r, out, SMTP_V_BDAT, 0, 501, "5.5.4",
		    "Syntax error in BDAT parameters");
		return;
	}
	if (rly_push_backend(r, in, out, SMTP_V_BDAT, last ? RS_MSGEND : 0) < 0)
		return;
	if (r->cfg.received_header && !(r->flags & RF_BDAT_TX))
		hl = make_received(r, in, hdr, sizeof(hdr), 1);
	if (hl > 0) {
		n = snprintf(head, sizeof(head), "BDAT %" PRIu64 "%s",
		    size + hl, last ? " LAST" : "");
		if (rly_forward_line(r, out, head, (size_t)n) < 0 ||
		    rly_send(r, out, hdr, hl) < 0)
			return;
		r->flags |= RF_BDAT_TX;
	} else
		(void)rly_forward_line(r, out, line, len);
	if (last)
		r->flags &= ~RF_BDAT_TX;
	if (size > 0) {
		r->bdat_left = size;
		r->in = RIN_BDAT;
		r->t_content = r->t_content_last = in->ms;
	}
}

/* A refused BDAT's chunk still follows: drop it, never parse it as
 * commands (RFC 3030 §2). */
void
rly_bdat_refused(struct smtp_relay *r, const struct relay_in *in,
    const struct smtp_cmd *cmd)
{
	uint64_t size;
	int last;

	if (cmd->verb == SMTP_V_BDAT &&
	    smtp_bdat_parse(cmd->arg, cmd->arglen, &size, &last) == 0 &&
	    size > 0) {
		r->bdat_left = size;
		r->in = RIN_BDAT_DISCARD;
		r->t_content = r->t_content_last = in->ms;
	}
}

/*
 * Message content after DATA's 354.  A CR that ends the input is held
 * back, unread by the scanner, until the next byte shows whether it
 * starts a CRLF: a backend must never get a CR that the proxy later finds
 * bare (a legacy parser may take "\r\n.\r" as the end of the message, and
 * whatever the client sends next as commands).
 */
int
rly_client_data(struct smtp_relay *r, const struct relay_in *in, const char *p,
    size_t len, size_t *used, struct relay_out *out)
{
	char hdr[RECEIVED_MAX];
	size_t n, fwd, bare_at, hl, avail = len;
	int ended = 0;

	if (p[avail - 1] == '\r' && --avail == 0)
		return 0;
	if (r->flags & RF_HDR_PENDING) {
		r->flags &= ~RF_HDR_PENDING;
		hl = make_received(r, in, hdr, sizeof(hdr),
		    (r->flags & RF_ESMTP) != 0);
		if (hl > 0 && rly_send(r, out, hdr, hl) < 0)
			return 0;
	}
	out->ev |= RELAY_EV_BULK_ON;
	r->t_content_last = in->ms;
	n = smtp_datascan_feed(&r->ds, p, avail, &ended, &bare_at);
	/* The scan ended on a CR and the held-back CR follows it: that
	 * one is bare, though the scanner learns so only from the next
	 * byte.  Never forward it ("\r\n.\r" may end a message). */
	if (bare_at == (size_t)-1 && !ended && avail < len &&
	    p[avail - 1] == '\r')
		bare_at = avail;
	fwd = n;
	if (r->in == RIN_DATA && bare_at != (size_t)-1 &&
	    r->cfg.policy->bare_newline == BARE_NEWLINE_REJECT) {
		/* Smuggling defence: the backend gets nothing from the
		 * first bare CR/LF on, so never this message's end. */
		fwd = bare_at;
		if (fwd > 0 && p[fwd - 1] == '\r')
			fwd--;
		r->in = RIN_DATA_POISONED;
		LOG(r)->info("%s: bare CR or LF in message content from %s",
		    r->cfg.id, r->cfg.peer_addr);
	}
	if (r->in == RIN_DATA || fwd < n) {
		if (r->flags & RF_XHOLD) {
			if (rly_send(r, out, p, fwd) < 0)
				return 0;
		} else {
			/* Straight from the input to the socket. */
			out->fwd = p;
			out->fwd_len = fwd;
		}
		r->bytes_in += fwd;
		r->env.msg_size += fwd;
	}
	*used = n;
	if (!ended)
		return 1;
	out->ev |= RELAY_EV_BULK_OFF;
	if (r->in == RIN_DATA) {
		r->in = RIN_CMD;
		r->env.msg_size -= r->env.msg_size >= 3 ? 3 :
		    r->env.msg_size;		/* ".\r\n" */
		(void)rly_push_backend(r, in, out, SMTP_V_DATA, RS_MSGEND);
		return 1;
	}
	/* Poisoned: refuse it and drop the backend, which still waits for
	 * the end of this message and so never completes it. */
	rly_log_refusal(r, &data_cmd, 554, "5.5.2", PR_BARE_NEWLINE);
	rly_reply_local(r, out, SMTP_V_DATA, 0, 554, "5.5.2",
	    "Message refused: bare CR or LF in message content");
	rly_fail(out, "smuggling attempt refused", R421_REFUSED_MSG, false);
	return 1;
}

void
rly_client_bdat_chunk(struct smtp_relay *r, const struct relay_in *in,
    const char *p, size_t n, size_t *used, struct relay_out *out)
{
	if (n > r->bdat_left)
		n = (size_t)r->bdat_left;
	if (r->in == RIN_BDAT) {
		if (rly_send(r, out, p, n) < 0)
			return;
		r->bytes_in += n;
		r->env.msg_size += n;
	}
	*used = n;
	r->bdat_left -= n;
	r->t_content_last = in->ms;
	if (r->bdat_left == 0) {
		r->in = RIN_CMD;
		r->t_wait = r->t_content_last;	/* the backend's turn */
	}
}

/* --- timers ------------------------------------------------------------ */

/* Seconds a backend may take to answer a command (RFC 5321 §4.5.3.2). */
static uint64_t
reply_timeout(const struct reply_slot *slot)
{
	if (slot->flags & (RS_MSGEND | RS_GREETING))
		return (slot->flags & RS_MSGEND) ? 600 : 300;
	switch (slot->verb) {
	case SMTP_V_DATA:
		return 120;
	case SMTP_V_BDAT:
		return 600;	/* a chunk's reply is an end-of-data reply */
	default:
		return 300;
	}
}

/*
 * Inside message content the longest pause (idle_timeout) and the whole
 * content (data_timeout) run; else the backend's reply to the oldest
 * command still waiting, measured from when the backend got its turn
 * (RFC 5321 §4.5.3.2); else the client's next complete command.
 */
uint64_t
relay_deadline(struct smtp_relay *r)
{
	const struct reply_slot *slot;
	uint64_t at, at2;

	switch (r->in) {
	case RIN_DATA:
	case RIN_DATA_POISONED:
	case RIN_BDAT:
	case RIN_BDAT_DISCARD:
		at = r->t_content_last + r->cfg.idle_ms;
		at2 = r->t_content + r->cfg.data_ms;
		r->tk = at <= at2 ? RT_PAUSE : RT_CONTENT;
		return at2 < at ? at2 : at;
	default:
		if ((slot = replyq_waiting(&r->rq)) != NULL) {
			r->tk = RT_REPLY;
			return r->t_wait + reply_timeout(slot) * 1000;
		}
		r->tk = RT_IDLE;
		return r->t_active + r->cfg.idle_ms;
	}
}

void
relay_timeout(struct smtp_relay *r, struct relay_out *out)
{
	switch (r->tk) {
	case RT_REPLY:
		LOG(r)->warnx("%s: backend %s: reply timeout", r->cfg.id,
		    r->cfg.backend);
		rly_fail(out, "backend reply timeout", R421_TIMEOUT, true);
		break;
	case RT_PAUSE:
		rly_fail(out, "idle timeout in message content", R421_IDLE,
		    false);
		break;
	case RT_CONTENT:
		LOG(r)->info("%s: message content from %s took longer than "
		    "%d s", r->cfg.id, r->cfg.peer_addr,
		    (int)(r->cfg.data_ms / 1000));
		rly_fail(out, "data timeout", R421_TOO_LONG, false);
		break;
	case RT_IDLE:
		rly_fail(out, "idle timeout", R421_IDLE, false);
		break;
	}
}
