/*
 * buf - a byte buffer with a read offset, for the session's input queues.
 *
 * Data is p[off .. off+len).  Consuming moves off; appending compacts
 * first when the tail is short.  buf itself has no limit: every caller
 * bounds what it appends (CIN_CAP, BIN_CAP, the high marks in session.c,
 * the reply queue's size in smtp_relay.c).  An empty buffer may give its
 * memory back (buf_release) so that idle sessions hold no big buffers.
 */
#ifndef STP_BUF_H
#define STP_BUF_H

#include <stdlib.h>
#include <string.h>

struct buf {
	char	*p;
	size_t	 off, len, cap;
};

/* The data; NULL for a buffer that never held any. */
static inline char *
buf_data(const struct buf *b)
{
	return b->p == NULL ? NULL : b->p + b->off;
}

/* Make room for n more bytes at the tail; returns the tail or NULL. */
static inline char *
buf_reserve(struct buf *b, size_t n)
{
	char *np;
	size_t ncap;

	if (b->off + b->len + n <= b->cap)
		return b->p + b->off + b->len;
	if (b->off > 0) {
		memmove(b->p, b->p + b->off, b->len);
		b->off = 0;
		if (b->len + n <= b->cap)
			return b->p + b->len;
	}
	ncap = b->cap ? b->cap : 1024;
	while (ncap < b->len + n)
		ncap *= 2;
	if ((np = realloc(b->p, ncap)) == NULL)
		return NULL;
	b->p = np;
	b->cap = ncap;
	return b->p + b->len;
}

static inline int
buf_append(struct buf *b, const void *d, size_t n)
{
	char *t;

	if (n == 0)
		return 0;
	if ((t = buf_reserve(b, n)) == NULL)
		return -1;
	memcpy(t, d, n);
	b->len += n;
	return 0;
}

static inline void
buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		b->off = 0;
		b->len = 0;
	} else {
		b->off += n;
		b->len -= n;
	}
}

static inline void
buf_release(struct buf *b)
{
	if (b->len == 0) {
		free(b->p);
		b->p = NULL;
		b->off = b->cap = 0;
	}
}

#endif
