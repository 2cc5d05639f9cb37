/*
 * test_smtp_parse - table tests for smtp_parse.c.
 *
 * Every incremental parser is fed each input whole, split at every byte
 * boundary, and byte at a time; the outcome must not change.  The DATA
 * scanner is also checked against a plain reference over every string of
 * up to 8 bytes from { CR, LF, '.', 'a' }.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "smtp_parse.h"
#include "unit.h"

#define S(x)	x, sizeof(x) - 1	/* literal with its length (NULs too) */

/*
 * Framer.  The driver plays the session: it appends input chunks to a
 * buffer, calls smtp_frame_line() until it says AGAIN without consuming,
 * and writes each event to a string: "OK:<line>;", "TOOLONG;",
 * "INVALID;", then "REST:<n>" for the bytes left unframed.
 */
struct frame_row {
	const char	*in;
	size_t		 len;
	size_t		 max;
	const char	*want;
};

static const struct frame_row frame_rows[] = {
	{ S("EHLO x\r\n"), 64, "OK:EHLO x;REST:0" },
	{ S("EHLO x\n"), 64, "OK:EHLO x;REST:0" },
	{ S("EHLO x"), 64, "REST:6" },
	{ S("EHLO x\r"), 64, "REST:7" },
	{ S("\r\n"), 64, "OK:;REST:0" },
	{ S("\n"), 64, "OK:;REST:0" },
	{ S("\n\n\r\n"), 64, "OK:;OK:;OK:;REST:0" },
	{ S("EH\0LO\r\n"), 64, "INVALID;REST:0" },
	{ S("\0\n"), 64, "INVALID;REST:0" },
	{ S("EHLO x\0\r\nNOOP\r\n"), 64, "INVALID;OK:NOOP;REST:0" },
	{ S("EHLO\rx\r\n"), 64, "INVALID;REST:0" },
	{ S("EHLO x\r\r\n"), 64, "INVALID;REST:0" },
	{ S("\r\r\r\n"), 64, "INVALID;REST:0" },
	{ S("A\rB\nNOOP\r\n"), 64, "INVALID;OK:NOOP;REST:0" },
	{ S("RCPT TO:<a@b>\r\n.\r\nQUIT\n"), 64,
	    "OK:RCPT TO:<a@b>;OK:.;OK:QUIT;REST:0" },
	{ S("EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"), 4096,
	    "OK:EHLO x;OK:MAIL FROM:<a@b>;OK:RCPT TO:<c@d>;OK:DATA;REST:0" },
	{ S("EHLO x\nMAIL FROM:<a@b>\nRCPT TO:<c@d>\r\nDATA\n"), 16,
	    "OK:EHLO x;OK:MAIL FROM:<a@b>;OK:RCPT TO:<c@d>;OK:DATA;REST:0" },
	/* max_line 16 counts CRLF: 14 + 2 fits, 15 + 2 does not. */
	{ S("AAAAAAAAAAAAAA\r\n"), 16, "OK:AAAAAAAAAAAAAA;REST:0" },
	{ S("AAAAAAAAAAAAAAA\n"), 16, "OK:AAAAAAAAAAAAAAA;REST:0" },
	{ S("AAAAAAAAAAAAAAA\r\n"), 16, "TOOLONG;REST:0" },
	{ S("AAAAAAAAAAAAAAAA\n"), 16, "TOOLONG;REST:0" },
	{ S("AAAAAAAAAAAAAAA\r\nQUIT\r\n"), 16, "TOOLONG;OK:QUIT;REST:0" },
	{ S("AAAAAAAAAAAAAAAA"), 16, "TOOLONG;REST:0" },
	{ S("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	    "AAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\nNOOP\r\n"), 16,
	    "TOOLONG;OK:NOOP;REST:0" },
	/* The tail of an overlong line is never parsed as a command. */
	{ S("AAAAAAAAAAAAAAAAAAAASTARTTLS\r\nQUIT\r\n"), 16,
	    "TOOLONG;OK:QUIT;REST:0" },
	{ S("AAAAAAAA\0AAAAAAAAAAAAAAAAAA\r\n"), 16, "TOOLONG;REST:0" },
	{ S("AAAAAAAAAAAAAAAAAAAA\rAAAAAAAAAAAAAA\nX"), 16,
	    "TOOLONG;REST:1" },
	{ S("NOOP\r\nAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\nNOOP\r\nAAAAAAAAAAAA"
	    "AAAAAAAAAAAAAA\nQUIT\r\n"), 16,
	    "OK:NOOP;TOOLONG;OK:NOOP;TOOLONG;OK:QUIT;REST:0" },
	{ S("\xff\xfe\x80 \r\n"), 16, "OK:\xff\xfe\x80 ;REST:0" },
};

#define BATCH_ROW	15

static size_t
frame_feed(struct smtp_framer *f, char *buf, size_t *blen, const char *in,
    size_t n, char *ev, size_t evsize, size_t evlen)
{
	enum smtp_parse	 r;
	size_t		 linelen, consumed;

	memcpy(buf + *blen, in, n);
	*blen += n;
	for (;;) {
		r = smtp_frame_line(f, buf, *blen, &linelen, &consumed);
		if (consumed > *blen) {
			evlen += (size_t)snprintf(ev + evlen, evsize - evlen,
			    "OVERRUN;");
			consumed = *blen;
		}
		if (r == SMTP_OK)
			evlen += (size_t)snprintf(ev + evlen, evsize - evlen,
			    "OK:%.*s;", (int)linelen, buf);
		else if (r == SMTP_TOOLONG)
			evlen += (size_t)snprintf(ev + evlen, evsize - evlen,
			    "TOOLONG;");
		else if (r == SMTP_INVALID)
			evlen += (size_t)snprintf(ev + evlen, evsize - evlen,
			    "INVALID;");
		memmove(buf, buf + consumed, *blen - consumed);
		*blen -= consumed;
		if (r == SMTP_AGAIN && consumed == 0)
			break;
		if (evlen >= evsize)
			break;
	}
	return evlen;
}

/* Feed row split at cuts[0..ncuts) (ascending offsets). */
static void
frame_run(const struct frame_row *row, const size_t *cuts, size_t ncuts,
    char *ev, size_t evsize)
{
	struct smtp_framer	f;
	char			buf[1024];
	size_t			blen = 0, evlen = 0, at = 0, i, next;

	smtp_framer_init(&f, row->max);
	for (i = 0; i <= ncuts; i++) {
		next = i < ncuts ? cuts[i] : row->len;
		evlen = frame_feed(&f, buf, &blen, row->in + at, next - at,
		    ev, evsize, evlen);
		at = next;
	}
	snprintf(ev + evlen, evsize - evlen, "REST:%zu", blen);
}

static void
test_framer(void)
{
	const struct frame_row	*row;
	char			 ev[1024];
	size_t			 i, a, b, cuts[2], bytes[256];

	for (i = 0; i < sizeof(frame_rows) / sizeof(frame_rows[0]); i++) {
		row = &frame_rows[i];
		frame_run(row, NULL, 0, ev, sizeof(ev));
		ASSERT_STR_EQ(ev, row->want);
		UNIT_ROW("frame row %zu (whole)", i);
		for (a = 0; a <= row->len; a++) {
			cuts[0] = a;
			frame_run(row, cuts, 1, ev, sizeof(ev));
			ASSERT_STR_EQ(ev, row->want);
			UNIT_ROW("frame row %zu split at %zu", i, a);
		}
		for (a = 0; a < row->len; a++)
			bytes[a] = a;
		frame_run(row, bytes, row->len, ev, sizeof(ev));
		ASSERT_STR_EQ(ev, row->want);
		UNIT_ROW("frame row %zu byte at a time", i);
	}

	/* The pipelined batch split at every pair of points. */
	row = &frame_rows[BATCH_ROW];
	ASSERT_EQ(memcmp(row->in, "EHLO x\r\nMAIL", 12), 0);
	for (a = 0; a <= row->len; a++)
		for (b = a; b <= row->len; b++) {
			cuts[0] = a;
			cuts[1] = b;
			frame_run(row, cuts, 2, ev, sizeof(ev));
			ASSERT_STR_EQ(ev, row->want);
			UNIT_ROW("batch split at %zu,%zu", a, b);
		}
}

/* An overlong line reports TOOLONG once, however many calls it spans. */
static void
test_framer_toolong_once(void)
{
	struct smtp_framer	f;
	char			chunk[10];
	size_t			linelen, consumed, i;
	int			toolong = 0, again_consumed = 0;
	enum smtp_parse		r;

	memset(chunk, 'A', sizeof(chunk));
	/* 10 bytes without LF under max_line 16: wait, keep everything. */
	smtp_framer_init(&f, 16);
	r = smtp_frame_line(&f, chunk, sizeof(chunk), &linelen, &consumed);
	ASSERT_EQ(r, SMTP_AGAIN);
	ASSERT_EQ(consumed, 0);
	ASSERT_EQ(f.discarding, 0);

	smtp_framer_init(&f, 8);
	toolong = again_consumed = 0;
	for (i = 0; i < 10; i++) {
		r = smtp_frame_line(&f, chunk, sizeof(chunk), &linelen,
		    &consumed);
		ASSERT_EQ(consumed, sizeof(chunk));
		if (r == SMTP_TOOLONG)
			toolong++;
		else if (r == SMTP_AGAIN)
			again_consumed++;
	}
	ASSERT_EQ(toolong, 1);
	ASSERT_EQ(again_consumed, 9);
	r = smtp_frame_line(&f, "AA\r\nQUIT\r\n", 10, &linelen, &consumed);
	ASSERT_EQ(r, SMTP_AGAIN);
	ASSERT_EQ(consumed, 4);
	r = smtp_frame_line(&f, "QUIT\r\n", 6, &linelen, &consumed);
	ASSERT_EQ(r, SMTP_OK);
	ASSERT_EQ(linelen, 4);
	ASSERT_EQ(consumed, 6);
}

struct cmd_row {
	const char	*line;
	enum smtp_verb	 verb;
	const char	*arg;
};

static const struct cmd_row cmd_rows[] = {
	{ "EHLO mx.example.org", SMTP_V_EHLO, "mx.example.org" },
	{ "ehlo  x  ", SMTP_V_EHLO, "x" },
	{ "HeLo x", SMTP_V_HELO, "x" },
	{ "MAIL FROM:<a@b> SIZE=10", SMTP_V_MAIL, "FROM:<a@b> SIZE=10" },
	{ "RCPT TO:<c@d>", SMTP_V_RCPT, "TO:<c@d>" },
	{ "RCPT\tTO:<c@d>\t", SMTP_V_RCPT, "TO:<c@d>" },
	{ "DATA", SMTP_V_DATA, "" },
	{ "BDAT 100 LAST", SMTP_V_BDAT, "100 LAST" },
	{ "rset", SMTP_V_RSET, "" },
	{ "NoOp hello", SMTP_V_NOOP, "hello" },
	{ "QUIT", SMTP_V_QUIT, "" },
	{ "STARTTLS", SMTP_V_STARTTLS, "" },
	{ "STARTTLS ", SMTP_V_STARTTLS, "" },
	{ "starttls\t", SMTP_V_STARTTLS, "" },
	{ "STARTTLS foo", SMTP_V_STARTTLS, "foo" },
	{ "STARTTLSX", SMTP_V_UNKNOWN, "" },
	{ "STARTTL", SMTP_V_UNKNOWN, "" },
	{ "AUTH PLAIN AHVzZXIAcGFzcw==", SMTP_V_AUTH, "PLAIN AHVzZXIAcGFzcw==" },
	{ "VRFY u", SMTP_V_VRFY, "u" },
	{ "EXPN l", SMTP_V_EXPN, "l" },
	{ "HELP", SMTP_V_HELP, "" },
	{ "XCLIENT ADDR=192.0.2.1", SMTP_V_XCLIENT, "ADDR=192.0.2.1" },
	{ "xforward NAME=x", SMTP_V_XFORWARD, "NAME=x" },
	{ "ETRN example.org", SMTP_V_ETRN, "example.org" },
	{ "", SMTP_V_UNKNOWN, "" },
	{ "   ", SMTP_V_UNKNOWN, "" },
	{ " EHLO x", SMTP_V_UNKNOWN, "EHLO x" },
	{ "MAI", SMTP_V_UNKNOWN, "" },
	{ "MAILX FROM:<>", SMTP_V_UNKNOWN, "FROM:<>" },
	{ "\xc5HLO x", SMTP_V_UNKNOWN, "x" },
};

static void
test_cmd(void)
{
	struct smtp_cmd	c;
	size_t		i;
	int		v;

	for (i = 0; i < sizeof(cmd_rows) / sizeof(cmd_rows[0]); i++) {
		smtp_cmd_parse(cmd_rows[i].line, strlen(cmd_rows[i].line), &c);
		ASSERT_EQ(c.verb, cmd_rows[i].verb);
		ASSERT_MEM_EQ(c.arg, c.arglen, cmd_rows[i].arg,
		    strlen(cmd_rows[i].arg));
		UNIT_ROW("cmd row %zu \"%s\"", i, cmd_rows[i].line);
	}

	/* The length bounds the parse, not a NUL. */
	smtp_cmd_parse("QUITTER", 4, &c);
	ASSERT_EQ(c.verb, SMTP_V_QUIT);
	ASSERT_EQ(c.arglen, 0);

	for (v = SMTP_V_UNKNOWN + 1; v < SMTP_V__COUNT; v++) {
		const char *name = smtp_verb_name((enum smtp_verb)v);

		smtp_cmd_parse(name, strlen(name), &c);
		ASSERT_EQ(c.verb, v);
	}
	ASSERT_STR_EQ(smtp_verb_name(SMTP_V_UNKNOWN), "UNKNOWN");
	ASSERT_STR_EQ(smtp_verb_name(SMTP_V__COUNT), "UNKNOWN");
	ASSERT_STR_EQ(smtp_verb_name((enum smtp_verb)-1), "UNKNOWN");
	ASSERT_STR_EQ(smtp_verb_name(SMTP_V_STARTTLS), "STARTTLS");
}

struct path_row {
	const char	*arg;
	const char	*dom;		/* NULL: expect -1 */
};

static const struct path_row path_rows[] = {
	{ "TO:<user@Example.ORG>", "Example.ORG" },
	{ "TO: <u@d>", "d" },
	{ "To:<u@d>", "d" },
	{ "TO:<\"a@b\"@real.example>", "real.example" },
	{ "TO:<\"a\\\"@b\"@real.example>", "real.example" },
	{ "TO:<\"a\\\\\"@real.example>", "real.example" },
	{ "TO:<\"x y@z\"@d.example>", "d.example" },
	{ "TO:<@r1.example,@r2.example:u@d.example>", "d.example" },
	{ "TO:<@r1.example:u@d.example>", "d.example" },
	{ "TO:<@r1.example>", NULL },
	{ "TO:<u@d.example> NOTIFY=SUCCESS ORCPT=rfc822;x@evil.example",
	    "d.example" },
	{ "TO:u@d", "d" },
	{ "TO:u@d NOTIFY=NEVER", "d" },
	{ "TO:<u@d", "d" },
	{ "TO:<u@d NOTIFY=NEVER", "d" },
	{ "<u@d>", "d" },
	{ "u@d", "d" },
	{ "TO:<>", NULL },
	{ "TO:<postmaster>", NULL },
	{ "TO:<Postmaster> NOTIFY=NEVER", NULL },
	{ "FROM:<>", NULL },
	{ "FROM:<> SIZE=100", NULL },
	{ "FROM:<a@b> SIZE=100", "b" },
	{ "to:<a@B.example.>", "B.example." },
	{ "TO:<u@>", NULL },
	{ "TO:<u@> X=a@b", NULL },
	{ "", NULL },
	{ "TO:", NULL },
	{ "TO:<", NULL },
	{ "TO:<a@b@c>", "c" },
	{ "TO:<\"unterminated@d>", NULL },
	{ "TO:<\"q\"@d\"x\">", "d\"x\"" },
	{ "TO:<u@[192.0.2.1]>", "[192.0.2.1]" },
	{ "TO:<u@[IPv6:2001:db8::1]>", "[IPv6:2001:db8::1]" },
	{ "TO:<@>", NULL },
	{ "TO:<:u@d>", "d" },
};

static void
test_path(void)
{
	const char	*dom;
	size_t		 i, domlen;
	int		 r;

	for (i = 0; i < sizeof(path_rows) / sizeof(path_rows[0]); i++) {
		dom = NULL;
		domlen = 0;
		r = smtp_path_domain(path_rows[i].arg,
		    strlen(path_rows[i].arg), &dom, &domlen);
		if (path_rows[i].dom == NULL)
			ASSERT_EQ(r, -1);
		else {
			ASSERT_EQ(r, 0);
			if (r == 0)
				ASSERT_MEM_EQ(dom, domlen, path_rows[i].dom,
				    strlen(path_rows[i].dom));
		}
		UNIT_ROW("path row %zu \"%s\"", i, path_rows[i].arg);
	}
	/* arglen bounds the scan. */
	r = smtp_path_domain("TO:<u@dom.example>", 8, &dom, &domlen);
	ASSERT_EQ(r, 0);
	ASSERT_MEM_EQ(dom, domlen, "do", 2);
}

struct reply_row {
	const char	*in;
	size_t		 max;
	enum smtp_parse	 want;
	int		 code;
	size_t		 len;
	size_t		 nlines;
};

static const struct reply_row reply_rows[] = {
	{ "250 ok\r\n", 512, SMTP_OK, 250, 8, 1 },
	{ "250 ok\n", 512, SMTP_OK, 250, 7, 1 },
	{ "250\r\n", 512, SMTP_OK, 250, 5, 1 },
	{ "250\n", 512, SMTP_OK, 250, 4, 1 },
	{ "220 mx.example.org ESMTP\r\n", 512, SMTP_OK, 220, 26, 1 },
	{ "250-a\r\n250-b\r\n250 c\r\n", 512, SMTP_OK, 250, 21, 3 },
	{ "250-a\n250 b\n", 512, SMTP_OK, 250, 12, 2 },
	{ "250-a\r\n250-b\n250 c\r\n", 512, SMTP_OK, 250, 20, 3 },
	{ "250-a\r\n250\r\n", 512, SMTP_OK, 250, 12, 2 },
	{ "250 ok\r\n220 next\r\n", 512, SMTP_OK, 250, 8, 1 },
	{ "554-5.7.1 no\r\n554 5.7.1 really\r\n", 512, SMTP_OK, 554, 32, 2 },
	{ "100 x\r\n", 512, SMTP_OK, 100, 7, 1 },
	{ "599 x\r\n", 512, SMTP_OK, 599, 7, 1 },
	{ "250-a\r\n251 b\r\n", 512, SMTP_INVALID, 0, 0, 0 },
	{ "250-a\r\n25 b\r\n", 512, SMTP_INVALID, 0, 0, 0 },
	{ "25 x\r\n", 512, SMTP_INVALID, 0, 0, 0 },
	{ "2500 x\r\n", 512, SMTP_INVALID, 0, 0, 0 },
	{ "250x\r\n", 512, SMTP_INVALID, 0, 0, 0 },
	{ "abc\r\n", 512, SMTP_INVALID, 0, 0, 0 },
	{ "\r\n", 512, SMTP_INVALID, 0, 0, 0 },
	{ "\n", 512, SMTP_INVALID, 0, 0, 0 },
	{ "099 x\r\n", 512, SMTP_INVALID, 0, 0, 0 },
	{ "600 x\r\n", 512, SMTP_INVALID, 0, 0, 0 },
	{ "250-a\r\n\r\n250 b\r\n", 512, SMTP_INVALID, 0, 0, 0 },
	{ "250\rx\r\n", 512, SMTP_INVALID, 0, 0, 0 },
	{ "250-a\r\n", 512, SMTP_AGAIN, 0, 0, 0 },
	{ "250-a\r\n250", 512, SMTP_AGAIN, 0, 0, 0 },
	{ "250 x\r", 512, SMTP_AGAIN, 0, 0, 0 },
	{ "", 512, SMTP_AGAIN, 0, 0, 0 },
	{ "250 ok", 100, SMTP_AGAIN, 0, 0, 0 },
	{ "250 ok", 4, SMTP_TOOLONG, 0, 0, 0 },
	{ "250 ok", 6, SMTP_TOOLONG, 0, 0, 0 },
	{ "250-aaaa\r\n250 b\r\n", 17, SMTP_OK, 250, 17, 2 },
	{ "250-aaaa\r\n250 b\r\n", 16, SMTP_TOOLONG, 0, 0, 0 },
	{ "250-a\r\n250-a\r\n250-a\r\n250-a\r\n", 20, SMTP_TOOLONG, 0, 0, 0 },
};

static void
test_reply(void)
{
	const struct reply_row	*row;
	struct smtp_reply	 r;
	enum smtp_parse		 got;
	size_t			 i, k, len;
	int			 bad;

	for (i = 0; i < sizeof(reply_rows) / sizeof(reply_rows[0]); i++) {
		row = &reply_rows[i];
		len = strlen(row->in);
		got = smtp_reply_parse(row->in, len, row->max, &r);
		ASSERT_EQ(got, row->want);
		if (got == SMTP_OK) {
			ASSERT_EQ(r.code, row->code);
			ASSERT_EQ(r.len, row->len);
			ASSERT_EQ(r.nlines, row->nlines);
		}
		UNIT_ROW("reply row %zu", i);

		/*
		 * Every prefix (the reply split at every byte): a prefix of
		 * an OK reply is AGAIN; a prefix of a bad one is AGAIN or
		 * the same verdict; a TOOLONG appears only at max.
		 */
		bad = 0;
		for (k = 0; k < len; k++) {
			got = smtp_reply_parse(row->in, k, row->max, &r);
			if (row->want == SMTP_OK && k < row->len &&
			    got != SMTP_AGAIN)
				bad = 1;
			if (row->want == SMTP_OK && k >= row->len &&
			    (got != SMTP_OK || r.len != row->len))
				bad = 1;
			if (row->want == SMTP_INVALID && got != SMTP_AGAIN &&
			    got != SMTP_INVALID)
				bad = 1;
			if (got == SMTP_TOOLONG && k < row->max)
				bad = 1;
		}
		ASSERT_EQ(bad, 0);
		UNIT_ROW("reply row %zu prefixes", i);
	}
}

static void
test_reply_lines(void)
{
	static const char	 rep[] = "250-a\r\n250-bb\n250 ccc\r\n";
	static const char	*want[] = { "250-a", "250-bb", "250 ccc" };
	const char		*line;
	size_t			 pos = 0, linelen, n = 0;

	while (smtp_reply_next_line(rep, sizeof(rep) - 1, &pos, &line,
	    &linelen)) {
		if (n < 3)
			ASSERT_MEM_EQ(line, linelen, want[n], strlen(want[n]));
		n++;
	}
	ASSERT_EQ(n, 3);
	ASSERT_EQ(pos, sizeof(rep) - 1);
	ASSERT_EQ(smtp_reply_next_line(rep, sizeof(rep) - 1, &pos, &line,
	    &linelen), 0);

	pos = 0;
	ASSERT_EQ(smtp_reply_next_line("", 0, &pos, &line, &linelen), 0);

	/* A missing terminator still yields the last line. */
	pos = 0;
	ASSERT_EQ(smtp_reply_next_line("250 x", 5, &pos, &line, &linelen), 1);
	ASSERT_MEM_EQ(line, linelen, "250 x", 5);
	ASSERT_EQ(smtp_reply_next_line("250 x", 5, &pos, &line, &linelen), 0);
}

/*
 * DATA scanner.  end: offset just past ".\r\n" or 0 when not ended;
 * bare: offset at which the first bare CR/LF is detected, or -1.
 */
struct ds_row {
	const char	*in;
	size_t		 len;
	size_t		 end;
	long		 bare;
};

static const struct ds_row ds_rows[] = {
	{ S(".\r\n"), 3, -1 },
	{ S("\r\n.\r\n"), 5, -1 },
	{ S("Subject: x\r\n\r\nbody\r\n.\r\n"), 23, -1 },
	{ S("body\r\n.\r\nMAIL FROM:<x>\r\n"), 9, -1 },
	{ S("..\r\n.\r\n"), 7, -1 },
	{ S("a\r\n..\r\n.\r\n"), 10, -1 },
	{ S("a\0b\r\n.\r\n"), 8, -1 },
	{ S("abc"), 0, -1 },
	{ S(""), 0, -1 },
	{ S("x.\r\n"), 0, -1 },
	{ S("\r\n..\r\n"), 0, -1 },
	{ S("a\r"), 0, -1 },
	{ S(".\r"), 0, -1 },
	/* Smuggling shapes: none of them ends the content; all are bare. */
	{ S("a\n.\nMAIL FROM:<x>\r\n"), 0, 1 },
	{ S("a\r.\rMAIL FROM:<x>\r\n"), 0, 2 },
	{ S("a\n.\r\nMAIL FROM:<x>\r\n"), 0, 1 },
	{ S("a\r\n.\nMAIL FROM:<x>\r\n"), 0, 4 },
	{ S("a\r\n.\rMAIL FROM:<x>\r\n"), 0, 5 },
	{ S("a\r.\r\nMAIL FROM:<x>\r\n"), 0, 2 },
	{ S("\n.\r\n"), 0, 0 },
	{ S(".\n"), 0, 1 },
	{ S(".\r.\r\n"), 0, 2 },
	{ S("\r.\r"), 0, 1 },
	/* ... and a real end afterwards still ends it, flagged. */
	{ S("a\n.\nb\r\n.\r\n"), 10, 1 },
	{ S("a\r.\rb\r\n.\r\n"), 10, 2 },
	{ S("a\r\r\n.\r\n"), 7, 2 },
	{ S("\r\n.\r\r\n.\r\n"), 9, 4 },
	{ S("\r\n.\r\n\n"), 5, -1 },
	{ S("a\r\n.\r\nb\n.\n"), 6, -1 },
};

/* Run the scanner over in[] split at cuts; report end and first bare. */
static void
ds_run(const char *in, size_t len, const size_t *cuts, size_t ncuts,
    size_t *end, long *bare, int *flag)
{
	struct smtp_datascan	ds;
	size_t			at = 0, next, i, used, bat;
	int			ended = 0;

	smtp_datascan_init(&ds);
	*end = 0;
	*bare = -1;
	for (i = 0; i <= ncuts && !ended; i++) {
		next = i < ncuts ? cuts[i] : len;
		used = smtp_datascan_feed(&ds, in + at, next - at, &ended, &bat);
		if (bat != (size_t)-1 && *bare < 0)
			*bare = (long)(at + bat);
		if (bat != (size_t)-1 && bat >= used)
			*bare = -2;	/* detected outside what it used */
		if (ended)
			*end = at + used;
		else if (used != next - at)
			*bare = -3;	/* used less without an end */
		at = next;
	}
	*flag = ds.bare;
}

static void
test_datascan_rows(void)
{
	const struct ds_row	*row;
	size_t			 i, a, end, bytes[64];
	long			 bare;
	int			 flag;

	for (i = 0; i < sizeof(ds_rows) / sizeof(ds_rows[0]); i++) {
		row = &ds_rows[i];
		ds_run(row->in, row->len, NULL, 0, &end, &bare, &flag);
		ASSERT_EQ(end, row->end);
		ASSERT_EQ(bare, row->bare);
		ASSERT_EQ(flag, row->bare >= 0);
		UNIT_ROW("datascan row %zu whole", i);
		for (a = 0; a <= row->len; a++) {
			ds_run(row->in, row->len, &a, 1, &end, &bare, &flag);
			ASSERT_EQ(end, row->end);
			ASSERT_EQ(bare, row->bare);
			ASSERT_EQ(flag, row->bare >= 0);
			UNIT_ROW("datascan row %zu split at %zu", i, a);
		}
		for (a = 0; a < row->len; a++)
			bytes[a] = a;
		ds_run(row->in, row->len, bytes, row->len, &end, &bare, &flag);
		ASSERT_EQ(end, row->end);
		ASSERT_EQ(bare, row->bare);
		UNIT_ROW("datascan row %zu byte at a time", i);
	}
}

/* Reference: the content with "\r\n" in front, first "\r\n.\r\n". */
static void
ds_oracle(const char *in, size_t len, size_t *end, long *bare)
{
	char	pad[64];
	size_t	i, lim;

	memcpy(pad, "\r\n", 2);
	memcpy(pad + 2, in, len);
	*end = 0;
	for (i = 0; i + 5 <= len + 2; i++)
		if (memcmp(pad + i, "\r\n.\r\n", 5) == 0) {
			*end = i + 3;
			break;
		}
	lim = *end ? *end : len;
	*bare = -1;
	for (i = 0; i < lim; i++) {
		if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r')) {
			*bare = (long)i;
			break;
		}
		if (in[i] == '\r' && i + 1 < lim && in[i + 1] != '\n') {
			*bare = (long)i + 1;
			break;
		}
	}
}

static void
test_datascan_exhaustive(void)
{
	static const char	 alpha[4] = { '\r', '\n', '.', 'a' };
	char			 in[8];
	size_t			 len, i, a, end, oend, checked = 0, bad = 0;
	unsigned long		 k, total;
	long			 bare, obare;
	int			 flag;

	for (len = 0; len <= 8; len++) {
		total = 1UL << (2 * len);
		for (k = 0; k < total; k++) {
			for (i = 0; i < len; i++)
				in[i] = alpha[(k >> (2 * i)) & 3];
			ds_oracle(in, len, &oend, &obare);
			for (a = 0; a <= len; a++) {
				ds_run(in, len, &a, 1, &end, &bare, &flag);
				checked++;
				if (end != oend || bare != obare ||
				    flag != (obare >= 0)) {
					if (bad++ < 5)
						unit_print_bytes("mismatch",
						    in, len);
				}
			}
		}
	}
	ASSERT_EQ(bad, 0);
	ASSERT_TRUE(checked > 500000);
}

/*
 * Long random contents (mostly text, a few CR, LF and dots) against a plain
 * reference, whole and split at random points: exercises the 16-byte skip
 * inside lines, which the short exhaustive strings never reach.
 */
static void
test_datascan_long_random(void)
{
	static char	 in[4096], pad[4096 + 2];
	unsigned long	 x = 88172645463325252UL;
	size_t		 len, i, oend, end, lim, cut[3], bad = 0, n;
	long		 obare, bare;
	int		 flag, round, density;

	for (round = 0; round < 3000; round++) {
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		len = 1 + x % sizeof(in);
		density = 8 + (int)((x >> 20) % 200);
		for (i = 0; i < len; i++) {
			x ^= x << 13; x ^= x >> 7; x ^= x << 17;
			switch (x % (unsigned long)density) {
			case 0: in[i] = '\r'; break;
			case 1: in[i] = '\n'; break;
			case 2: in[i] = '.'; break;
			default: in[i] = (char)('a' + x % 26); break;
			}
			/* Mostly proper CRLF pairs, sometimes a real end. */
			if (in[i] == '\r' && i + 1 < len && (x >> 8) % 4 != 0)
				in[++i] = '\n';
		}
		memcpy(pad, "\r\n", 2);
		memcpy(pad + 2, in, len);
		oend = 0;
		for (i = 0; i + 5 <= len + 2; i++)
			if (memcmp(pad + i, "\r\n.\r\n", 5) == 0) {
				oend = i + 3;
				break;
			}
		lim = oend ? oend : len;
		obare = -1;
		for (i = 0; i < lim; i++) {
			if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r')) {
				obare = (long)i;
				break;
			}
			if (in[i] == '\r' && i + 1 < lim && in[i + 1] != '\n') {
				obare = (long)i + 1;
				break;
			}
		}
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		cut[0] = x % (len + 1);
		cut[1] = (x >> 16) % (len + 1);
		if (cut[1] < cut[0]) {
			n = cut[0]; cut[0] = cut[1]; cut[1] = n;
		}
		ds_run(in, len, cut, 2, &end, &bare, &flag);
		if (end != oend || bare != obare || flag != (obare >= 0)) {
			if (bad++ < 3)
				fprintf(stderr, "long random round %d: end %zu/%zu"
				    " bare %ld/%ld\n", round, end, oend, bare,
				    obare);
		}
	}
	ASSERT_EQ(bad, 0);
}

static void
test_datascan_after_end(void)
{
	struct smtp_datascan	ds;
	size_t			used, bat;
	int			ended;

	smtp_datascan_init(&ds);
	used = smtp_datascan_feed(&ds, ".\r\nQUIT\r\n", 9, &ended, &bat);
	ASSERT_EQ(used, 3);
	ASSERT_EQ(ended, 1);
	ASSERT_EQ(bat, (size_t)-1);
	used = smtp_datascan_feed(&ds, "x\n", 2, &ended, &bat);
	ASSERT_EQ(used, 0);
	ASSERT_EQ(ended, 1);
	ASSERT_EQ(ds.bare, 0);

	/* bare_at may be NULL; the flag still sticks across calls. */
	smtp_datascan_init(&ds);
	used = smtp_datascan_feed(&ds, "a\nb", 3, &ended, NULL);
	ASSERT_EQ(used, 3);
	ASSERT_EQ(ended, 0);
	ASSERT_EQ(ds.bare, 1);
	used = smtp_datascan_feed(&ds, "\r\n.\r\n", 5, &ended, &bat);
	ASSERT_EQ(used, 5);
	ASSERT_EQ(ended, 1);
	ASSERT_EQ(bat, (size_t)-1);
	ASSERT_EQ(ds.bare, 1);

	/* A bare CR at the end of one call is found at offset 0 of the next. */
	smtp_datascan_init(&ds);
	smtp_datascan_feed(&ds, "ab\r", 3, &ended, &bat);
	ASSERT_EQ(bat, (size_t)-1);
	ASSERT_EQ(ds.bare, 0);
	smtp_datascan_feed(&ds, "c", 1, &ended, &bat);
	ASSERT_EQ(bat, 0);
	ASSERT_EQ(ds.bare, 1);
}

struct bdat_row {
	const char	*arg;
	int		 ret;
	uint64_t	 size;
	int		 last;
};

static const struct bdat_row bdat_rows[] = {
	{ "100", 0, 100, 0 },
	{ "100 LAST", 0, 100, 1 },
	{ "100 last", 0, 100, 1 },
	{ "100 LaSt", 0, 100, 1 },
	{ "0", 0, 0, 0 },
	{ "0 LAST", 0, 0, 1 },
	{ "100  LAST", 0, 100, 1 },
	{ "100\tLAST", 0, 100, 1 },
	{ "100 LAST ", 0, 100, 1 },
	{ "100 ", 0, 100, 0 },
	{ "00012", 0, 12, 0 },
	{ "9223372036854775807", 0, UINT64_C(9223372036854775807), 0 },
	{ "9223372036854775807 LAST", 0, UINT64_C(9223372036854775807), 1 },
	{ "9223372036854775808", -1, 0, 0 },
	{ "18446744073709551615", -1, 0, 0 },
	{ "18446744073709551616", -1, 0, 0 },
	{ "99999999999999999999999", -1, 0, 0 },
	{ "", -1, 0, 0 },
	{ " ", -1, 0, 0 },
	{ "LAST", -1, 0, 0 },
	{ " 100", -1, 0, 0 },
	{ "-1", -1, 0, 0 },
	{ "+1", -1, 0, 0 },
	{ "10x", -1, 0, 0 },
	{ "0x10", -1, 0, 0 },
	{ "1e3", -1, 0, 0 },
	{ "100LAST", -1, 0, 0 },
	{ "100 LASTX", -1, 0, 0 },
	{ "100 LAS", -1, 0, 0 },
	{ "100 LAST LAST", -1, 0, 0 },
	{ "100 200", -1, 0, 0 },
};

static void
test_bdat(void)
{
	uint64_t	size;
	size_t		i;
	int		last, r;

	for (i = 0; i < sizeof(bdat_rows) / sizeof(bdat_rows[0]); i++) {
		size = 12345;
		last = 7;
		r = smtp_bdat_parse(bdat_rows[i].arg, strlen(bdat_rows[i].arg),
		    &size, &last);
		ASSERT_EQ(r, bdat_rows[i].ret);
		if (r == 0) {
			ASSERT_TRUE(size == bdat_rows[i].size);
			ASSERT_EQ(last, bdat_rows[i].last);
		} else {
			ASSERT_TRUE(size == 12345);
			ASSERT_EQ(last, 7);
		}
		UNIT_ROW("bdat row %zu \"%s\"", i, bdat_rows[i].arg);
	}
	/* arglen bounds the scan. */
	r = smtp_bdat_parse("12 LASTING", 7, &size, &last);
	ASSERT_EQ(r, 0);
	ASSERT_TRUE(size == 12);
	ASSERT_EQ(last, 1);
}

int
main(void)
{
	test_framer();
	test_framer_toolong_once();
	test_cmd();
	test_path();
	test_reply();
	test_reply_lines();
	test_datascan_rows();
	test_datascan_exhaustive();
	test_datascan_long_random();
	test_datascan_after_end();
	test_bdat();
	return unit_done();
}
