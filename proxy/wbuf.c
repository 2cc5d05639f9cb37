/*
 * wbuf - a bounded writer into a caller's buffer; see wbuf.h.
 *
 * Every append goes through wbuf_put(), the one place that checks the
 * bound.  Formatted text is built in a small local buffer first, so that
 * it too is appended whole or not at all (vsnprintf straight into the
 * tail would leave a cut piece behind).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "wbuf.h"

void
wbuf_init(struct wbuf *w, void *buf, size_t size)
{
	w->p = buf;
	w->size = buf != NULL ? size : 0;
	w->len = 0;
	w->full = false;
}

bool
wbuf_put(struct wbuf *w, const void *s, size_t n)
{
	if (w->full || w->size - w->len < n) {
		w->full = true;
		return false;
	}
	if (n > 0)
		memcpy(w->p + w->len, s, n);
	w->len += n;
	return true;
}

bool
wbuf_puts(struct wbuf *w, const char *s)
{
	return wbuf_put(w, s, strlen(s));
}

bool
wbuf_putc(struct wbuf *w, unsigned char c)
{
	return wbuf_put(w, &c, 1);
}

bool
wbuf_fmt(struct wbuf *w, const char *fmt, ...)
{
	char	tmp[WBUF_FMT_MAX + 1];
	va_list	ap;
	int	n;

	if (w->full)
		return false;
	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		w->full = true;
		return false;
	}
	return wbuf_put(w, tmp, (size_t)n);
}

bool
wbuf_u64(struct wbuf *w, uint64_t v)
{
	return wbuf_fmt(w, "%" PRIu64, v);
}

bool
wbuf_nul(struct wbuf *w)
{
	if (w->full || w->len >= w->size) {
		w->full = true;
		return false;
	}
	w->p[w->len] = '\0';
	return true;
}
