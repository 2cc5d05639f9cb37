/*
 * replyq - ordered reply slots; see replyq.h.
 *
 * A ring of cap slots that grows (doubling) up to max, so that an idle
 * session holds a few slots only.  Invariant: the backend slots that are not ready
 * form a suffix-free sequence in backend order, so the first not-ready
 * backend slot from the head is the one the next backend reply answers;
 * nwait counts them so that "is anything waiting" is O(1).
 */
#include <stdlib.h>
#include <string.h>

#include "replyq.h"

#define REPLYQ_START	4	/* slots allocated at first; grows to max */

int
replyq_init(struct replyq *q, size_t max)
{
	memset(q, 0, sizeof(*q));
	q->max = max;
	q->cap = max < REPLYQ_START ? max : REPLYQ_START;
	if ((q->v = calloc(q->cap, sizeof(*q->v))) == NULL)
		return -1;
	return 0;
}

/* Double the ring (up to max), unwrapping it; slot pointers held by the
 * caller are invalid afterwards. */
static int
replyq_grow(struct replyq *q)
{
	struct reply_slot *nv;
	size_t ncap = q->cap * 2, i;

	if (ncap > q->max)
		ncap = q->max;
	if ((nv = calloc(ncap, sizeof(*nv))) == NULL)
		return -1;
	for (i = 0; i < q->n; i++)
		nv[i] = q->v[(q->head + i) % q->cap];
	free(q->v);
	q->v = nv;
	q->cap = ncap;
	q->head = 0;
	return 0;
}

void
replyq_free(struct replyq *q)
{
	while (q->n > 0) {
		q->v[q->head].flags |= RS_READY;
		replyq_pop(q);
	}
	free(q->v);
	memset(q, 0, sizeof(*q));
}

size_t
replyq_space(const struct replyq *q)
{
	return q->max - q->n;
}

static struct reply_slot *
replyq_push(struct replyq *q, uint8_t verb, uint16_t flags)
{
	struct reply_slot *s;

	if (q->n == q->cap && (q->cap == q->max || replyq_grow(q) < 0))
		return NULL;
	s = &q->v[(q->head + q->n) % q->cap];
	s->flags = flags;
	s->verb = verb;
	s->text = NULL;
	s->len = 0;
	q->n++;
	return s;
}

struct reply_slot *
replyq_push_local(struct replyq *q, uint8_t verb, uint16_t flags,
    const char *text, size_t len)
{
	struct reply_slot *s;
	char *copy;

	if (q->n == q->max || (copy = malloc(len ? len : 1)) == NULL)
		return NULL;
	memcpy(copy, text, len);
	if ((s = replyq_push(q, verb, (flags | RS_READY) & ~RS_BACKEND)) ==
	    NULL) {
		free(copy);
		return NULL;
	}
	s->text = copy;
	s->len = len;
	return s;
}

struct reply_slot *
replyq_push_backend(struct replyq *q, uint8_t verb, uint16_t flags)
{
	struct reply_slot *s;

	if ((s = replyq_push(q, verb, (flags | RS_BACKEND) & ~RS_READY)) != NULL)
		q->nwait++;
	return s;
}

struct reply_slot *
replyq_waiting(struct replyq *q)
{
	size_t i;
	struct reply_slot *s;

	if (q->nwait == 0)
		return NULL;
	for (i = 0; i < q->n; i++) {
		s = &q->v[(q->head + i) % q->cap];
		if ((s->flags & (RS_BACKEND | RS_READY)) == RS_BACKEND)
			return s;
	}
	return NULL;
}

int
replyq_fill(struct replyq *q, struct reply_slot *s, const char *text,
    size_t len)
{
	char *copy;

	if ((copy = malloc(len ? len : 1)) == NULL)
		return -1;
	memcpy(copy, text, len);
	free(s->text);
	s->text = copy;
	s->len = len;
	if ((s->flags & RS_READY) == 0 && (s->flags & RS_BACKEND))
		q->nwait--;
	s->flags |= RS_READY;
	return 0;
}

struct reply_slot *
replyq_ready_head(struct replyq *q)
{
	struct reply_slot *s;

	if (q->n == 0)
		return NULL;
	s = &q->v[q->head];
	return (s->flags & RS_READY) ? s : NULL;
}

void
replyq_pop(struct replyq *q)
{
	struct reply_slot *s;

	if (q->n == 0)
		return;
	s = &q->v[q->head];
	if ((s->flags & (RS_BACKEND | RS_READY)) == RS_BACKEND)
		q->nwait--;
	free(s->text);
	s->text = NULL;
	q->head = (q->head + 1) % q->cap;
	q->n--;
}
