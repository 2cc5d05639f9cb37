/*
 * log - levelled logging to stderr, as text or one JSON object per line.
 *
 * Each line is built in a fixed buffer on the stack and written with one
 * write(2), so lines from several threads never interleave.  A line never
 * exceeds LOG_LINE_MAX bytes: a longer one is cut at a character boundary,
 * its quoting closed, and marked (" [truncated]" in text, "truncated":true
 * in JSON), so every line stays parseable.
 *
 * What is logged often comes from the network.  Control characters are
 * always escaped and invalid UTF-8 bytes become '?': a log line is one
 * line, and JSON output is always valid JSON.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "wbuf.h"

#define LOG_LINE_MAX	8192
#define LOG_RESERVE	32	/* for closing a truncated line */

/* Set by the master on start and reload while workers log: relaxed
 * atomics (a line may still use the old setting, never a torn one). */
static atomic_int	log_max = LOG_INFO;
static atomic_bool	log_json;

static const char *const log_names[] = {
	"error", "warning", "info", "debug"
};

/* An output line under construction: w writes into buf up to the
 * reserve; w.full means something did not fit (the line is truncated). */
struct lbuf {
	char		buf[LOG_LINE_MAX];
	struct wbuf	w;
	bool		in_str;		/* inside a quoted string */
	bool	json;		/* log_json when the line began */
};

void
log_init(int level, int json)
{
	atomic_store_explicit(&log_max, level, memory_order_relaxed);
	atomic_store_explicit(&log_json, json != 0, memory_order_relaxed);
}

int
log_enabled(int level)
{
	return level <= atomic_load_explicit(&log_max, memory_order_relaxed);
}

static const char *
level_name(int level)
{
	if (level < LOG_ERROR || level > LOG_DEBUG)
		return "unknown";
	return log_names[level];
}

/* Append the closing bytes past the writer's end, into the reserve. */
static void
lb_close(struct lbuf *b, const char *s)
{
	size_t	n = strlen(s);

	if (b->w.len + n > sizeof(b->buf))
		n = sizeof(b->buf) - b->w.len;
	memcpy(b->buf + b->w.len, s, n);
	b->w.len += n;
}

/* Length of the valid UTF-8 sequence (2-4 bytes) at s, or 0. */
static size_t
utf8_len(const unsigned char *s)
{
	unsigned int	cp;
	size_t		n, i;

	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		cp = s[0] & 0x07;
	} else
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)	/* the NUL ends it here too */
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return n;
}

enum esc {
	ESC_JSON,	/* inside a JSON string */
	ESC_QUOTED,	/* inside a quoted text value: \" \\ \n \r \t \xHH */
	ESC_TEXT	/* free text: control characters only */
};

/*
 * Append str escaped as mode says.  Valid UTF-8 passes through, invalid
 * bytes become '?'.
 */
static void
lb_escape(struct lbuf *b, const char *str, enum esc mode)
{
	bool			 json = mode == ESC_JSON;
	const unsigned char	*s = (const unsigned char *)str;
	size_t			 n;

	while (*s != '\0' && !b->w.full) {
		n = 1;
		if ((*s == '"' || *s == '\\') && mode == ESC_TEXT) {
			wbuf_put(&b->w, (const char *)s, 1);
			s++;
			continue;
		}
		switch (*s) {
		case '"':
			wbuf_put(&b->w, "\\\"", 2);
			break;
		case '\\':
			wbuf_put(&b->w, "\\\\", 2);
			break;
		case '\n':
			wbuf_put(&b->w, "\\n", 2);
			break;
		case '\r':
			wbuf_put(&b->w, "\\r", 2);
			break;
		case '\t':
			wbuf_put(&b->w, "\\t", 2);
			break;
		default:
			if (*s < 0x20 || *s == 0x7f)
				wbuf_fmt(&b->w, json ? "\\u%04x" : "\\x%02x",
				    *s);
			else if (*s < 0x80)
				wbuf_put(&b->w, (const char *)s, 1);
			else if ((n = utf8_len(s)) > 0)
				wbuf_put(&b->w, (const char *)s, n);
			else {
				n = 1;
				wbuf_put(&b->w, "?", 1);
			}
			break;
		}
		s += n;
	}
}

static void
lb_timestamp(struct lbuf *b)
{
	struct timespec	ts;
	struct tm	tm;
	char		tmp[40];
	size_t		n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(tmp, sizeof(tmp), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(tmp + n, sizeof(tmp) - n, ".%03ldZ", ts.tv_nsec / 1000000);
	wbuf_puts(&b->w, tmp);
}

/* Start a line: timestamp and level, the JSON object opened. */
static void
lb_begin(struct lbuf *b, int level)
{
	wbuf_init(&b->w, b->buf, sizeof(b->buf) - LOG_RESERVE);
	b->in_str = false;
	b->json = atomic_load_explicit(&log_json, memory_order_relaxed);
	if (b->json) {
		wbuf_puts(&b->w, "{\"ts\":\"");
		lb_timestamp(b);
		wbuf_puts(&b->w, "\",\"level\":\"");
		wbuf_puts(&b->w, level_name(level));
		wbuf_puts(&b->w, "\"");
	} else {
		lb_timestamp(b);
		wbuf_puts(&b->w, " ");
		wbuf_puts(&b->w, level_name(level));
	}
}

/* Close whatever is open, end the line and write it. */
static void
lb_end(struct lbuf *b)
{
	size_t	off = 0;
	ssize_t	r;

	if (b->w.full && b->in_str)
		lb_close(b, "\"");
	if (b->json)
		lb_close(b, b->w.full ? ",\"truncated\":true}\n" : "}\n");
	else
		lb_close(b, b->w.full ? " [truncated]\n" : "\n");
	while (off < b->w.len) {
		r = write(STDERR_FILENO, b->buf + off, b->w.len - off);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		off += (size_t)r;
	}
}

/* JSON: ,"key":"value" (a partial value is kept and closed later). */
static void
lb_json_str(struct lbuf *b, const char *key, const char *val)
{
	size_t	mark = b->w.len;

	wbuf_puts(&b->w, ",\"");
	lb_escape(b, key, ESC_JSON);
	wbuf_puts(&b->w, "\":");
	if (val == NULL)
		wbuf_puts(&b->w, "null");
	else if (wbuf_puts(&b->w, "\"")) {
		b->in_str = true;
		lb_escape(b, val, ESC_JSON);
		if (wbuf_puts(&b->w, "\""))
			b->in_str = false;
		return;
	}
	if (b->w.full)
		b->w.len = mark;
}

/* Does s hold a JSON number? */
static bool
is_number(const char *s)
{
	if (*s == '-')
		s++;
	if (*s == '0')
		s++;
	else if (*s >= '1' && *s <= '9')
		while (*s >= '0' && *s <= '9')
			s++;
	else
		return false;
	if (*s == '.') {
		s++;
		if (!(*s >= '0' && *s <= '9'))
			return false;
		while (*s >= '0' && *s <= '9')
			s++;
	}
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '+' || *s == '-')
			s++;
		if (!(*s >= '0' && *s <= '9'))
			return false;
		while (*s >= '0' && *s <= '9')
			s++;
	}
	return *s == '\0';
}

static void
lb_json_num(struct lbuf *b, const char *key, const char *val)
{
	size_t	mark = b->w.len;

	if (val == NULL || !is_number(val)) {
		lb_json_str(b, key, val);
		return;
	}
	wbuf_puts(&b->w, ",\"");
	lb_escape(b, key, ESC_JSON);
	wbuf_puts(&b->w, "\":");
	wbuf_puts(&b->w, val);
	if (b->w.full)
		b->w.len = mark;
}

/* Text: quote when empty or holding a space, '"', '=', '\\' or a byte
 * that would be escaped. */
static bool
needs_quotes(const char *s)
{
	if (*s == '\0')
		return true;
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f)
			return true;
	}
	return false;
}

static void
lb_text_kv(struct lbuf *b, const char *key, const char *val)
{
	size_t	mark = b->w.len;

	wbuf_puts(&b->w, " ");
	lb_escape(b, key, ESC_TEXT);
	wbuf_puts(&b->w, "=");
	if (b->w.full) {
		b->w.len = mark;
		return;
	}
	if (val == NULL)
		val = "";
	if (needs_quotes(val)) {
		if (!wbuf_puts(&b->w, "\"")) {
			b->w.len = mark;
			return;
		}
		b->in_str = true;
		lb_escape(b, val, ESC_QUOTED);
		if (wbuf_puts(&b->w, "\""))
			b->in_str = false;
	} else
		lb_escape(b, val, ESC_TEXT);
}

static void
log_vmsg(int level, int with_errno, const char *fmt, va_list ap)
{
	struct lbuf	b;
	char		msg[LOG_LINE_MAX], ebuf[128];
	const char	*es;
	int		saved = errno;
	size_t		n;

	if (!log_enabled(level))
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (with_errno) {
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
		es = strerror_r(saved, ebuf, sizeof(ebuf));
#else
		if (strerror_r(saved, ebuf, sizeof(ebuf)) != 0)
			snprintf(ebuf, sizeof(ebuf), "error %d", saved);
		es = ebuf;
#endif
		n = strlen(msg);
		snprintf(msg + n, sizeof(msg) - n, ": %s", es);
	}
	lb_begin(&b, level);
	if (b.json)
		lb_json_str(&b, "msg", msg);
	else {
		wbuf_puts(&b.w, ": ");
		lb_escape(&b, msg, ESC_TEXT);
	}
	lb_end(&b);
	errno = saved;
}

void
log_error(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_vmsg(LOG_ERROR, 0, fmt, ap);
	va_end(ap);
}

void
log_warn(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_vmsg(LOG_WARNING, 1, fmt, ap);
	va_end(ap);
}

void
log_warnx(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_vmsg(LOG_WARNING, 0, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_vmsg(LOG_INFO, 0, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_vmsg(LOG_DEBUG, 0, fmt, ap);
	va_end(ap);
}

void
log_kv(int level, const char *event, ...)
{
	struct lbuf	 b;
	va_list		 ap;
	const char	*key, *val;
	int		 saved = errno;

	if (!log_enabled(level))
		return;
	lb_begin(&b, level);
	if (b.json)
		lb_json_str(&b, "event", event);
	else {
		wbuf_puts(&b.w, " ");
		lb_escape(&b, event != NULL ? event : "-", ESC_TEXT);
	}
	va_start(ap, event);
	while ((key = va_arg(ap, const char *)) != NULL) {
		val = va_arg(ap, const char *);
		if (b.w.full)
			continue;
		if (b.json) {
			if (key[0] == '#')
				lb_json_num(&b, key + 1, val);
			else
				lb_json_str(&b, key, val);
		} else
			lb_text_kv(&b, key[0] == '#' ? key + 1 : key, val);
	}
	va_end(ap);
	lb_end(&b);
	errno = saved;
}
