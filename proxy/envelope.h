/*
 * envelope - the transaction as the backend accepted it, for the log lines
 * (SPEC §6): the sender, the recipients and the message size.
 *
 * A MAIL or RCPT forwarded is remembered (its path only, printable, cut
 * to 256 bytes) until the backend answers it; a 2xx makes it part of the
 * envelope.  Answers come in command order, so the pending paths are a
 * ring in that order.  Out of memory only loses log detail, never fails.
 * Pure core.
 */
#ifndef STP_ENVELOPE_H
#define STP_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include "smtp_parse.h"

#define ENVELOPE_PEND_MAX	128	/* = commands in flight, at most */
#define ENVELOPE_RCPTS_MAX	4096	/* bytes of the "a,b" list */

struct envelope_pend {
	uint8_t		 verb;
	char		*path;
};

struct envelope {
	struct envelope_pend	*pend;		/* ring, allocated lazily */
	size_t			 head, n;
	char			*from;		/* accepted sender path */
	char			*rcpts;		/* accepted recipients, "a,b" */
	size_t			 rcpts_len;
	unsigned		 nrcpt;
	uint64_t		 msg_size;	/* content bytes of this message */
};

#define ENVELOPE_PATH_SIZE	257	/* a path as logged, with its NUL */

/* The path of a MAIL or RCPT argument ("FROM:<a@b> SIZE=1" gives
 * "<a@b>"), printable ('?' for anything else), cut to fit out
 * (ENVELOPE_PATH_SIZE bytes). */
void	envelope_path(const char *arg, size_t len, char *out);
/* A MAIL or RCPT with this argument ("FROM:<a@b> SIZE=1") was forwarded. */
void	envelope_push(struct envelope *e, enum smtp_verb verb, const char *arg,
	    size_t arglen);
/* The backend answered the oldest pending MAIL or RCPT with code. */
void	envelope_answer(struct envelope *e, enum smtp_verb verb, int code);
/* A new transaction (RSET, EHLO, end of a message, TLS): forget it. */
void	envelope_reset(struct envelope *e);
void	envelope_free(struct envelope *e);

#endif
