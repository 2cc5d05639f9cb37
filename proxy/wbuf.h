/*
 * wbuf - a bounded writer into a caller's buffer.
 *
 * Each append is all or nothing: a piece that does not fit in what is
 * left is not written, and the writer turns full; once full it stays full
 * and adds nothing more, so the caller checks once, at the end (and knows
 * the output was cut).  Nothing is ever written at or past p[size).  The
 * bytes are not NUL-terminated unless the caller asks (wbuf_nul), so a
 * binary header can fill the buffer exactly.  Pure: no I/O, no allocation.
 *
 * The fields are open: a writer may remember len and later rewind to it
 * (dropping a half-written item) or patch bytes it wrote (a length field
 * known only at the end).
 */
#ifndef STP_WBUF_H
#define STP_WBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct wbuf {
	char	*p;
	size_t	 size;		/* bytes the writer may use */
	size_t	 len;		/* bytes written */
	bool	 full;		/* something did not fit */
};

/* Longest piece wbuf_fmt() formats; a longer one marks the writer full. */
#define WBUF_FMT_MAX	512

void	wbuf_init(struct wbuf *w, void *buf, size_t size);

/* Append n bytes (all or nothing).  Returns true when they were written. */
bool	wbuf_put(struct wbuf *w, const void *s, size_t n);
bool	wbuf_puts(struct wbuf *w, const char *s);
bool	wbuf_putc(struct wbuf *w, unsigned char c);

/* Append printf-formatted text (numbers, names: at most WBUF_FMT_MAX
 * bytes), all or nothing. */
bool	wbuf_fmt(struct wbuf *w, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
/* Append v in decimal. */
bool	wbuf_u64(struct wbuf *w, uint64_t v);

/* Write a NUL after the bytes, not counted in len; false (and full) when
 * there is no room for it. */
bool	wbuf_nul(struct wbuf *w);

#endif
