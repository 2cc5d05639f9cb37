/*
 * smtp_parse - incremental SMTP parsing: command lines, verbs, paths,
 * replies, the DATA end scanner and the BDAT argument.
 *
 * Invariants:
 *  - no allocation, no I/O; every function reads only buf[0..len) and
 *    reports how much it used, so a caller may split input anywhere;
 *  - the framer never accepts a line holding NUL or a CR that is not part
 *    of the CRLF, and never lets a line grow past max_line;
 *  - the DATA scanner ends content only on <CRLF>.<CRLF> (CVE-2023-51764)
 *    and keeps all its state in struct smtp_datascan, so the result does
 *    not depend on how the content was split.
 */
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <stdint.h>
#include <string.h>

#include "ascii.h"
#include "smtp_parse.h"

static int
is_sp(int c)
{
	return c == ' ' || c == '\t';
}

void
smtp_framer_init(struct smtp_framer *f, size_t max_line)
{
	f->max_line = max_line;
	f->discarding = 0;
}

enum smtp_parse
smtp_frame_line(struct smtp_framer *f, const char *buf, size_t len,
    size_t *linelen, size_t *consumed)
{
	const char	*lf;
	size_t		 n, i, end;

	*linelen = 0;
	*consumed = 0;
	if (len == 0)
		return SMTP_AGAIN;

	if (f->discarding) {
		lf = memchr(buf, '\n', len);
		if (lf == NULL) {
			*consumed = len;
			return SMTP_AGAIN;
		}
		/* Tail of an overlong line: drop it, caller calls again. */
		f->discarding = 0;
		*consumed = (size_t)(lf - buf) + 1;
		return SMTP_AGAIN;
	}

	n = len < f->max_line ? len : f->max_line;
	lf = memchr(buf, '\n', n);
	if (lf == NULL) {
		if (len < f->max_line)
			return SMTP_AGAIN;
		/* Overlong: drop what we have, up to an LF if one is here. */
		lf = memchr(buf, '\n', len);
		if (lf != NULL)
			*consumed = (size_t)(lf - buf) + 1;
		else {
			*consumed = len;
			f->discarding = 1;
		}
		return SMTP_TOOLONG;
	}

	end = (size_t)(lf - buf);
	*consumed = end + 1;
	if (end > 0 && buf[end - 1] == '\r')
		end--;
	for (i = 0; i < end; i++)
		if (buf[i] == '\0' || buf[i] == '\r')
			return SMTP_INVALID;
	*linelen = end;
	return SMTP_OK;
}

static const char *const verb_names[SMTP_V__COUNT] = {
	[SMTP_V_UNKNOWN] = "UNKNOWN",
	[SMTP_V_EHLO] = "EHLO",
	[SMTP_V_HELO] = "HELO",
	[SMTP_V_MAIL] = "MAIL",
	[SMTP_V_RCPT] = "RCPT",
	[SMTP_V_DATA] = "DATA",
	[SMTP_V_BDAT] = "BDAT",
	[SMTP_V_RSET] = "RSET",
	[SMTP_V_NOOP] = "NOOP",
	[SMTP_V_QUIT] = "QUIT",
	[SMTP_V_STARTTLS] = "STARTTLS",
	[SMTP_V_AUTH] = "AUTH",
	[SMTP_V_VRFY] = "VRFY",
	[SMTP_V_EXPN] = "EXPN",
	[SMTP_V_HELP] = "HELP",
	[SMTP_V_XCLIENT] = "XCLIENT",
	[SMTP_V_XFORWARD] = "XFORWARD",
	[SMTP_V_ETRN] = "ETRN",
};

const char *
smtp_verb_name(enum smtp_verb v)
{
	if ((unsigned)v >= SMTP_V__COUNT)
		return "UNKNOWN";
	return verb_names[v];
}

void
smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *out)
{
	size_t	vlen, a;
	int	v;

	/* Space or tab ends the verb, as in the MTAs behind us. */
	for (vlen = 0; vlen < len && !is_sp(line[vlen]); vlen++)
		;
	out->verb = SMTP_V_UNKNOWN;
	for (v = SMTP_V_UNKNOWN + 1; v < SMTP_V__COUNT; v++)
		if (vlen > 0 && ascii_word_eq(line, vlen, verb_names[v])) {
			out->verb = (enum smtp_verb)v;
			break;
		}
	for (a = vlen; a < len && is_sp(line[a]); a++)
		;
	while (len > a && is_sp(line[len - 1]))
		len--;
	out->arg = line + a;
	out->arglen = len - a;
}

int
smtp_path_domain(const char *arg, size_t arglen, const char **dom,
    size_t *domlen)
{
	size_t	i, start, end, at;
	int	quoted, angle, found;

	/* Skip "TO:" / "FROM:" when present, then a tolerated space. */
	for (i = 0; i < arglen && ((arg[i] >= 'A' && arg[i] <= 'Z') ||
	    (arg[i] >= 'a' && arg[i] <= 'z')); i++)
		;
	if (i > 0 && i < arglen && arg[i] == ':')
		i++;
	else
		i = 0;
	while (i < arglen && is_sp(arg[i]))
		i++;
	angle = 0;
	if (i < arglen && arg[i] == '<') {
		angle = 1;
		i++;
	}
	start = i;

	/* The path ends at an unquoted '>' or space (ESMTP parameters). */
	quoted = 0;
	for (end = start; end < arglen; end++) {
		char c = arg[end];

		if (quoted) {
			if (c == '\\' && end + 1 < arglen)
				end++;
			else if (c == '"')
				quoted = 0;
			continue;
		}
		if (c == '"')
			quoted = 1;
		else if ((angle && c == '>') || is_sp(c))
			break;
	}

	/* A source route "@r1,@r2:" goes before the mailbox. */
	if (start < end && arg[start] == '@') {
		for (i = start; i < end && arg[i] != ':'; i++)
			;
		if (i == end)
			return -1;
		start = i + 1;
	}

	quoted = 0;
	found = 0;
	at = 0;
	for (i = start; i < end; i++) {
		char c = arg[i];

		if (quoted) {
			if (c == '\\' && i + 1 < end)
				i++;
			else if (c == '"')
				quoted = 0;
			continue;
		}
		if (c == '"')
			quoted = 1;
		else if (c == '@') {
			at = i;
			found = 1;
		}
	}
	if (!found || at + 1 >= end)
		return -1;
	*dom = arg + at + 1;
	*domlen = end - at - 1;
	return 0;
}

/*
 * Check one complete reply line (without terminator).  Returns the code,
 * or -1.  *more is set when the line is a continuation ("ddd-").
 */
static int
reply_line(const char *l, size_t n, int *more)
{
	int	code;

	if (n < 3 || l[0] < '1' || l[0] > '5' || l[1] < '0' || l[1] > '9' ||
	    l[2] < '0' || l[2] > '9')
		return -1;
	code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
	*more = 0;
	if (n == 3 || l[3] == ' ')
		return code;
	if (l[3] == '-') {
		*more = 1;
		return code;
	}
	return -1;
}

enum smtp_parse
smtp_reply_parse(const char *buf, size_t len, size_t max,
    struct smtp_reply *r)
{
	const char	*lf;
	size_t		 pos, lim, n;
	int		 code, more;

	r->code = 0;
	r->len = 0;
	r->nlines = 0;
	lim = len < max ? len : max;
	pos = 0;
	for (;;) {
		lf = memchr(buf + pos, '\n', lim - pos);
		if (lf == NULL)
			return len >= max ? SMTP_TOOLONG : SMTP_AGAIN;
		n = (size_t)(lf - (buf + pos));
		if (n > 0 && buf[pos + n - 1] == '\r')
			n--;
		code = reply_line(buf + pos, n, &more);
		if (code < 0 || (r->nlines > 0 && code != r->code))
			return SMTP_INVALID;
		r->code = code;
		r->nlines++;
		pos = (size_t)(lf - buf) + 1;
		if (!more) {
			r->len = pos;
			return SMTP_OK;
		}
	}
}

int
smtp_reply_next_line(const char *reply, size_t len, size_t *pos,
    const char **line, size_t *linelen)
{
	const char	*lf;
	size_t		 p = *pos, n;

	if (p >= len)
		return 0;
	lf = memchr(reply + p, '\n', len - p);
	if (lf == NULL) {
		n = len - p;
		*pos = len;
	} else {
		n = (size_t)(lf - (reply + p));
		*pos = p + n + 1;
	}
	if (n > 0 && reply[p + n - 1] == '\r')
		n--;
	*line = reply + p;
	*linelen = n;
	return 1;
}

/*
 * Scanner states.  BOL is "just after CRLF" (and the start); only from
 * there can ".\r\n" end the content.  A bare LF leads to TEXT, not BOL,
 * so "\n.\r\n" and "\r\n.\n" never end the content.
 */
enum {
	DS_BOL = 0,
	DS_TEXT,
	DS_CR,		/* CR seen, LF decides */
	DS_DOT,		/* "." at BOL */
	DS_DOTCR,	/* ".\r" at BOL */
	DS_END
};

void
smtp_datascan_init(struct smtp_datascan *ds)
{
	ds->state = DS_BOL;
	ds->bare = 0;
}

/* Offset of the first CR or LF in p[0..n), or n (16 bytes a step where
 * SSE2 is there: message content is the hot path). */
static size_t
skip_text(const char *p, size_t n)
{
	size_t i = 0;
#if defined(__SSE2__)
	const __m128i cr = _mm_set1_epi8('\r'), lf = _mm_set1_epi8('\n');
	__m128i v;
	unsigned m;

	for (; i + 16 <= n; i += 16) {
		v = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
		m = (unsigned)_mm_movemask_epi8(_mm_or_si128(
		    _mm_cmpeq_epi8(v, cr), _mm_cmpeq_epi8(v, lf)));
		if (m != 0)
			return i + (size_t)__builtin_ctz(m);
	}
#endif
	for (; i < n; i++)
		if (p[i] == '\r' || p[i] == '\n')
			return i;
	return n;
}

size_t
smtp_datascan_feed(struct smtp_datascan *ds, const char *buf, size_t len,
    int *ended, size_t *bare_at)
{
	size_t		 i, bat = (size_t)-1;
	unsigned char	 c;
	int		 bare;

	*ended = 0;
	if (ds->state == DS_END) {
		*ended = 1;
		if (bare_at != NULL)
			*bare_at = bat;
		return 0;
	}
	for (i = 0; i < len; i++) {
		while (ds->state == DS_TEXT) {
			/* Inside a line only CR and LF matter: skip to one. */
			i += skip_text(buf + i, len - i);
			if (i == len)
				break;
			/* The common line end "\r\n" before an ordinary line
			 * start: stay in the fast loop. */
			if (i + 2 < len && buf[i] == '\r' && buf[i + 1] == '\n' &&
			    buf[i + 2] != '.' && buf[i + 2] != '\r' &&
			    buf[i + 2] != '\n') {
				i += 3;
				continue;
			}
			break;
		}
		if (i == len)
			break;
		c = (unsigned char)buf[i];
		bare = 0;
		switch (ds->state) {
		case DS_BOL:
		case DS_TEXT:
			if (c == '\r')
				ds->state = DS_CR;
			else if (c == '\n') {
				bare = 1;
				ds->state = DS_TEXT;
			} else if (c == '.' && ds->state == DS_BOL)
				ds->state = DS_DOT;
			else
				ds->state = DS_TEXT;
			break;
		case DS_CR:
		case DS_DOTCR:
			if (c == '\n') {
				if (ds->state == DS_DOTCR) {
					ds->state = DS_END;
					*ended = 1;
					if (bare_at != NULL)
						*bare_at = bat;
					return i + 1;
				}
				ds->state = DS_BOL;
				break;
			}
			/* The CR before this byte was bare. */
			bare = 1;
			ds->state = c == '\r' ? DS_CR : DS_TEXT;
			break;
		case DS_DOT:
			if (c == '\r')
				ds->state = DS_DOTCR;
			else {
				if (c == '\n')
					bare = 1;
				ds->state = DS_TEXT;
			}
			break;
		}
		if (bare) {
			ds->bare = 1;
			if (bat == (size_t)-1)
				bat = i;
		}
	}
	if (bare_at != NULL)
		*bare_at = bat;
	return len;
}

int
smtp_bdat_parse(const char *arg, size_t arglen, uint64_t *size, int *last)
{
	uint64_t	v = 0;
	size_t		i = 0, j;
	int		l = 0;

	while (arglen > 0 && is_sp(arg[arglen - 1]))
		arglen--;
	if (arglen == 0 || arg[0] < '0' || arg[0] > '9')
		return -1;
	for (; i < arglen && arg[i] >= '0' && arg[i] <= '9'; i++) {
		if (v > (UINT64_C(0x7fffffffffffffff) - (uint64_t)(arg[i] -
		    '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(arg[i] - '0');
	}
	if (i < arglen) {
		for (j = i; j < arglen && is_sp(arg[j]); j++)
			;
		if (j == i || arglen - j != 4 ||
		    !ascii_word_eq(arg + j, 4, "LAST"))
			return -1;
		l = 1;
	}
	*size = v;
	*last = l;
	return 0;
}
