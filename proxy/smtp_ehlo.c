/*
 * smtp_ehlo - rewrite a backend's 250 EHLO reply for the client.
 *
 * The first line (the backend's host name) always stays.  Each later line
 * is one keyword with optional parameters; STARTTLS, XCLIENT and XFORWARD
 * are always dropped, AUTH and "AUTH=" on EHLO_HIDE_AUTH, empty lines
 * always.  STARTTLS is appended on EHLO_ADD_STARTTLS.  Every output line
 * ends in CRLF and only the last one has "250 ".
 *
 * Invariant: nothing is written past out[outsize); a short buffer gives 0,
 * never a truncated reply.
 */
#include <string.h>

#include "ascii.h"
#include "smtp_ehlo.h"
#include "smtp_parse.h"
#include "wbuf.h"

struct ehlo_out {
	struct wbuf	 w;
	int		 lines;		/* lines written so far */
};

/*
 * Lines are written one behind: each new line first flushes the previous
 * one with "250-"; the last one gets "250 " at the end.
 */
static void
out_line(struct ehlo_out *o, const char **pend, size_t *pendlen,
    const char *text, size_t n)
{
	if (*pend != NULL) {
		wbuf_put(&o->w, "250-", 4);
		wbuf_put(&o->w, *pend, *pendlen);
		wbuf_put(&o->w, "\r\n", 2);
	}
	*pend = text;
	*pendlen = n;
	o->lines++;
}

size_t
smtp_ehlo_rewrite(const char *reply, size_t len, int flags, char *out,
    size_t outsize, int *seen)
{
	struct ehlo_out	 o = { .lines = 0 };
	const char	*line, *text, *pend = NULL;
	size_t		 pos = 0, n, tn, kn, pendlen = 0;
	int		 has = 0, drop;

	if (seen != NULL)
		*seen = 0;
	if (len < 3 || memcmp(reply, "250", 3) != 0) {
		if (len > outsize)
			return 0;
		memcpy(out, reply, len);
		return len;
	}
	wbuf_init(&o.w, out, outsize);

	while (smtp_reply_next_line(reply, len, &pos, &line, &n)) {
		text = n > 4 ? line + 4 : line + n;
		tn = n > 4 ? n - 4 : 0;
		if (o.lines == 0) {
			out_line(&o, &pend, &pendlen, text, tn);
			continue;
		}
		for (kn = 0; kn < tn && text[kn] != ' ' && text[kn] != '\t';
		    kn++)
			;
		drop = 0;
		if (kn == 0)
			drop = 1;
		else if (ascii_word_eq(text, kn, "STARTTLS")) {
			has |= EHLO_HAS_STARTTLS;
			drop = 1;
		} else if (ascii_word_eq(text, kn, "XCLIENT")) {
			has |= EHLO_HAS_XCLIENT;
			drop = 1;
		} else if (ascii_word_eq(text, kn, "XFORWARD")) {
			has |= EHLO_HAS_XFORWARD;
			drop = 1;
		} else if (ascii_word_eq(text, kn, "AUTH") ||
		    (kn >= 5 && ascii_word_eq(text, 5, "AUTH="))) {
			has |= EHLO_HAS_AUTH;
			drop = (flags & EHLO_HIDE_AUTH) != 0;
		} else if (ascii_word_eq(text, kn, "CHUNKING"))
			has |= EHLO_HAS_CHUNKING;
		else if (ascii_word_eq(text, kn, "PIPELINING"))
			has |= EHLO_HAS_PIPELINING;
		else if (ascii_word_eq(text, kn, "8BITMIME"))
			has |= EHLO_HAS_8BITMIME;
		else if (ascii_word_eq(text, kn, "SMTPUTF8"))
			has |= EHLO_HAS_SMTPUTF8;
		if (!drop)
			out_line(&o, &pend, &pendlen, text, tn);
	}
	if (flags & EHLO_ADD_STARTTLS)
		out_line(&o, &pend, &pendlen, "STARTTLS", 8);
	if (pend != NULL) {
		wbuf_put(&o.w, "250 ", 4);
		wbuf_put(&o.w, pend, pendlen);
		wbuf_put(&o.w, "\r\n", 2);
	}
	if (seen != NULL)
		*seen = has;
	return o.w.full ? 0 : o.w.len;
}
