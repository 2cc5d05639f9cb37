/*
 * replyq - the ordered reply slots of one SMTP session (RFC 2920).
 *
 * Every client command takes one slot, in command order.  A slot is filled
 * either at once by the proxy (a local reply: policy refusal, 220 for
 * STARTTLS, 500 for a bad line) or later by the backend's next reply; the
 * backend answers the commands it was sent in order, so a backend reply
 * always fills the oldest slot still waiting for one.  Replies leave from
 * the head only, and only once the head is filled: the client sees them in
 * command order, local and relayed alike.  Bounded: a full queue means the
 * session stops reading commands until the client has read some replies.
 * Pure core.
 */
#ifndef STP_REPLYQ_H
#define STP_REPLYQ_H

#include <stddef.h>
#include <stdint.h>

#define RS_READY	0x01	/* text is final */
#define RS_BACKEND	0x02	/* filled by the backend */
#define RS_SWALLOW	0x04	/* the proxy's own command: never relayed */
#define RS_STARTTLS	0x08	/* the 220 of STARTTLS: handshake after it */
#define RS_CLOSE	0x10	/* close the session once this is sent */
#define RS_GREETING	0x20	/* the backend's greeting */
#define RS_MSGEND	0x40	/* reply to the end of a message (DATA or BDAT LAST) */

struct reply_slot {
	uint16_t	 flags;
	uint8_t		 verb;		/* enum smtp_verb of the command */
	char		*text;		/* complete reply, CRLF-terminated */
	size_t		 len;
};

struct replyq {
	struct reply_slot	*v;
	size_t			 cap, head, n;
	size_t			 max;		/* cap grows up to this */
	size_t			 nwait;		/* backend slots not yet filled */
};

/* At most max slots; a few are allocated now, more as needed (pushing may
 * move the slots: pointers from replyq_waiting()/replyq_ready_head() are
 * valid only until the next push). 0 or -1. */
int	replyq_init(struct replyq *q, size_t max);
void	replyq_free(struct replyq *q);
size_t	replyq_space(const struct replyq *q);

/* A slot already answered by the proxy; text is copied. NULL when full
 * or out of memory. */
struct reply_slot *replyq_push_local(struct replyq *q, uint8_t verb,
	    uint16_t flags, const char *text, size_t len);
/* A slot the backend will fill. NULL when full. */
struct reply_slot *replyq_push_backend(struct replyq *q, uint8_t verb,
	    uint16_t flags);

/* The oldest backend slot still waiting, or NULL (unsolicited reply). */
struct reply_slot *replyq_waiting(struct replyq *q);
/* Fill that slot with a copy of text; -1 on allocation failure. */
int	replyq_fill(struct replyq *q, struct reply_slot *s, const char *text,
	    size_t len);

/* The head slot if it is ready, else NULL; replyq_pop() drops it. */
struct reply_slot *replyq_ready_head(struct replyq *q);
void	replyq_pop(struct replyq *q);

#endif
