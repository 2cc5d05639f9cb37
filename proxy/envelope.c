/*
 * envelope - the accepted sender and recipients of the transaction, for
 * the message and refusal log lines.  See envelope.h.
 */
#include <stdlib.h>
#include <string.h>

#include "envelope.h"

/* Up to the first space outside the angle brackets ("<a b@c> X=1"). */
void
envelope_path(const char *arg, size_t len, char *out)
{
	const char *p = memchr(arg, ':', len);
	size_t i, n = 0;

	if (p != NULL) {
		len -= (size_t)(p + 1 - arg);
		arg = p + 1;
	}
	while (len > 0 && (*arg == ' ' || *arg == '\t')) {
		arg++;
		len--;
	}
	for (i = 0; i < len && n < ENVELOPE_PATH_SIZE - 1; i++) {
		if (arg[i] == ' ' && (arg[0] != '<' || (i > 0 &&
		    arg[i - 1] == '>')))
			break;
		out[n++] = (arg[i] > 32 && arg[i] < 127) ? arg[i] : '?';
	}
	out[n] = '\0';
}

void
envelope_push(struct envelope *e, enum smtp_verb verb, const char *arg,
    size_t arglen)
{
	struct envelope_pend *pe;

	if (e->pend == NULL &&
	    (e->pend = calloc(ENVELOPE_PEND_MAX, sizeof(*e->pend))) == NULL)
		return;
	if (e->n == ENVELOPE_PEND_MAX)
		return;
	pe = &e->pend[(e->head + e->n++) % ENVELOPE_PEND_MAX];
	pe->verb = (uint8_t)verb;
	if ((pe->path = malloc(ENVELOPE_PATH_SIZE)) != NULL)
		envelope_path(arg, arglen, pe->path);
}

void
envelope_reset(struct envelope *e)
{
	free(e->from);
	free(e->rcpts);
	e->from = e->rcpts = NULL;
	e->rcpts_len = 0;
	e->nrcpt = 0;
	e->msg_size = 0;
}

void
envelope_answer(struct envelope *e, enum smtp_verb verb, int code)
{
	struct envelope_pend pe;
	size_t n;
	char *r;

	if (e->n == 0 || e->pend[e->head].verb != verb)
		return;
	pe = e->pend[e->head];
	e->head = (e->head + 1) % ENVELOPE_PEND_MAX;
	e->n--;
	if (code < 200 || code > 299 || pe.path == NULL) {
		free(pe.path);
		return;
	}
	if (verb == SMTP_V_MAIL) {
		envelope_reset(e);
		e->from = pe.path;
		return;
	}
	n = strlen(pe.path);
	if (e->rcpts_len + n + 2 <= ENVELOPE_RCPTS_MAX &&
	    (r = realloc(e->rcpts, e->rcpts_len + n + 2)) != NULL) {
		if (e->rcpts_len > 0)
			r[e->rcpts_len++] = ',';
		memcpy(r + e->rcpts_len, pe.path, n + 1);
		e->rcpts_len += n;
		e->rcpts = r;
	}
	e->nrcpt++;
	free(pe.path);
}

void
envelope_free(struct envelope *e)
{
	while (e->n > 0) {
		free(e->pend[e->head].path);
		e->head = (e->head + 1) % ENVELOPE_PEND_MAX;
		e->n--;
	}
	free(e->pend);
	e->pend = NULL;
	envelope_reset(e);
}
