/*
 * fuzz_smtp_reply - backend replies: framing, line iteration and the EHLO
 * rewrite over arbitrary bytes.
 *
 * Every reply found is checked: its lines add up to its length, a
 * shorter prefix is not complete, and a rewritten 250 reply is itself a
 * well-formed reply without STARTTLS/XCLIENT/XFORWARD (or AUTH when
 * hidden) except the STARTTLS we add.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_ehlo.h"
#include "smtp_parse.h"

#define CHECK(c)	do { if (!(c)) abort(); } while (0)

static int
lc(int c)
{
	return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
}

static int
kw(const char *line, size_t n, const char *word)
{
	size_t	wl = strlen(word), i;

	if (n < 4 + wl)
		return 0;
	for (i = 0; i < wl; i++)
		if (lc((unsigned char)line[4 + i]) != lc(word[i]))
			return 0;
	return n == 4 + wl || line[4 + wl] == ' ' || line[4 + wl] == '\t' ||
	    (word[wl - 1] == '=');
}

static void
check_ehlo(const char *rep, size_t len, int flags)
{
	struct smtp_reply	 r;
	const char		*line;
	size_t			 outsize = 2 * len + 16, n, pos = 0, ll, i = 0;
	char			*out = malloc(outsize);
	int			 seen;

	n = smtp_ehlo_rewrite(rep, len, flags, out, outsize, &seen);
	CHECK(n > 0 && n <= outsize);
	if (rep[0] != '2' || rep[1] != '5' || rep[2] != '0') {
		CHECK(n == len && memcmp(out, rep, len) == 0);
		CHECK(seen == 0);
		free(out);
		return;
	}
	CHECK(smtp_reply_parse(out, n, n, &r) == SMTP_OK);
	CHECK(r.len == n && r.code == 250);
	while (smtp_reply_next_line(out, n, &pos, &line, &ll)) {
		CHECK(line + ll + 2 <= out + n);
		CHECK(line[ll] == '\r' && line[ll + 1] == '\n');
		CHECK(ll >= 4 && line[3] == (i + 1 < r.nlines ? '-' : ' '));
		if (i > 0) {
			CHECK(!kw(line, ll, "XCLIENT"));
			CHECK(!kw(line, ll, "XFORWARD"));
			if (flags & EHLO_HIDE_AUTH) {
				CHECK(!kw(line, ll, "AUTH"));
				CHECK(!kw(line, ll, "AUTH="));
			}
			if (kw(line, ll, "STARTTLS"))
				CHECK((flags & EHLO_ADD_STARTTLS) &&
				    i + 1 == r.nlines && ll == 12);
		}
		i++;
	}
	CHECK(i == r.nlines);
	if (flags & EHLO_ADD_STARTTLS)
		CHECK(n >= 14 && memcmp(out + n - 14, "250 STARTTLS\r\n", 14)
		    == 0);
	/* A too small buffer gives 0, not a cut reply. */
	CHECK(smtp_ehlo_rewrite(rep, len, flags, out, n - 1, NULL) == 0);
	free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_reply	 r, r2;
	enum smtp_parse		 res;
	const char		*line;
	size_t			 max, pos, ll, nl, off = 0, avail, sum;
	char			*buf;
	int			 flags;

	if (size < 2)
		return 0;
	max = 4 + data[0] * 4;
	flags = data[1] & 3;
	data += 2;
	size -= 2;
	while (off < size) {
		avail = size - off;
		buf = malloc(avail);
		memcpy(buf, data + off, avail);
		res = smtp_reply_parse(buf, avail, max, &r);
		if (res != SMTP_OK) {
			CHECK(res != SMTP_TOOLONG || avail >= max);
			free(buf);
			break;
		}
		CHECK(r.len > 0 && r.len <= avail && r.len <= max);
		CHECK(r.code >= 100 && r.code <= 599);
		CHECK(buf[r.len - 1] == '\n');
		/* The reply alone parses the same; one byte less does not. */
		CHECK(smtp_reply_parse(buf, r.len, max, &r2) == SMTP_OK);
		CHECK(r2.len == r.len && r2.nlines == r.nlines &&
		    r2.code == r.code);
		CHECK(smtp_reply_parse(buf, r.len - 1, max, &r2) ==
		    SMTP_AGAIN);
		pos = 0;
		nl = 0;
		sum = 0;
		while (smtp_reply_next_line(buf, r.len, &pos, &line, &ll)) {
			CHECK(line >= buf && line + ll <= buf + r.len);
			CHECK(ll >= 3);
			CHECK((line[0] - '0') * 100 + (line[1] - '0') * 10 +
			    (line[2] - '0') == r.code);
			sum += ll;
			nl++;
		}
		CHECK(nl == r.nlines);
		CHECK(sum + nl <= r.len && r.len <= sum + 2 * nl);
		check_ehlo(buf, r.len, flags);
		off += r.len;
		free(buf);
	}
	return 0;
}
