/*
 * test_smtp_ehlo - table tests for the EHLO reply rewriter.
 *
 * Each row is a backend reply, the flags, the exact bytes the client must
 * get and the EHLO_HAS_* bits.  Every 250 output is also checked to be a
 * well-formed reply: CRLF everywhere, "250-" on all lines but the last.
 */
#include <string.h>

#include "smtp_ehlo.h"
#include "smtp_parse.h"
#include "unit.h"

#define ALL_HAS	(EHLO_HAS_CHUNKING | EHLO_HAS_XCLIENT | EHLO_HAS_PIPELINING | \
    EHLO_HAS_STARTTLS | EHLO_HAS_XFORWARD | EHLO_HAS_AUTH | \
    EHLO_HAS_8BITMIME | EHLO_HAS_SMTPUTF8)

#define BIG_EHLO \
	"250-mx.example.org Hello\r\n" \
	"250-PIPELINING\r\n" \
	"250-SIZE 10240000\r\n" \
	"250-AUTH PLAIN LOGIN\r\n" \
	"250-AUTH=LOGIN\r\n" \
	"250-STARTTLS\r\n" \
	"250-XCLIENT NAME ADDR PROTO HELO\r\n" \
	"250-XFORWARD NAME ADDR\r\n" \
	"250-ENHANCEDSTATUSCODES\r\n" \
	"250-8BITMIME\r\n" \
	"250-DSN\r\n" \
	"250-CHUNKING\r\n" \
	"250 SMTPUTF8\r\n"

struct ehlo_row {
	const char	*in;
	int		 flags;
	const char	*want;
	int		 seen;
};

static const struct ehlo_row ehlo_rows[] = {
	/* Before TLS: hide AUTH, offer STARTTLS. */
	{ BIG_EHLO, EHLO_ADD_STARTTLS | EHLO_HIDE_AUTH,
	    "250-mx.example.org Hello\r\n"
	    "250-PIPELINING\r\n"
	    "250-SIZE 10240000\r\n"
	    "250-ENHANCEDSTATUSCODES\r\n"
	    "250-8BITMIME\r\n"
	    "250-DSN\r\n"
	    "250-CHUNKING\r\n"
	    "250-SMTPUTF8\r\n"
	    "250 STARTTLS\r\n", ALL_HAS },
	/* After TLS: AUTH shown, never STARTTLS. */
	{ BIG_EHLO, 0,
	    "250-mx.example.org Hello\r\n"
	    "250-PIPELINING\r\n"
	    "250-SIZE 10240000\r\n"
	    "250-AUTH PLAIN LOGIN\r\n"
	    "250-AUTH=LOGIN\r\n"
	    "250-ENHANCEDSTATUSCODES\r\n"
	    "250-8BITMIME\r\n"
	    "250-DSN\r\n"
	    "250-CHUNKING\r\n"
	    "250 SMTPUTF8\r\n", ALL_HAS },
	/* Before TLS without a certificate: no STARTTLS at all. */
	{ BIG_EHLO, EHLO_HIDE_AUTH,
	    "250-mx.example.org Hello\r\n"
	    "250-PIPELINING\r\n"
	    "250-SIZE 10240000\r\n"
	    "250-ENHANCEDSTATUSCODES\r\n"
	    "250-8BITMIME\r\n"
	    "250-DSN\r\n"
	    "250-CHUNKING\r\n"
	    "250 SMTPUTF8\r\n", ALL_HAS },
	{ "250 host\r\n", EHLO_ADD_STARTTLS,
	    "250-host\r\n250 STARTTLS\r\n", 0 },
	{ "250 host\r\n", 0, "250 host\r\n", 0 },
	{ "250 host\n", EHLO_ADD_STARTTLS,
	    "250-host\r\n250 STARTTLS\r\n", 0 },
	{ "250 host\n", EHLO_HIDE_AUTH, "250 host\r\n", 0 },
	{ "250-host\n250-pipelining\n250 starttls\n", 0,
	    "250-host\r\n250 pipelining\r\n",
	    EHLO_HAS_PIPELINING | EHLO_HAS_STARTTLS },
	{ "250-host\r\n250-SIZE 1\r\n250 STARTTLS\r\n", 0,
	    "250-host\r\n250 SIZE 1\r\n", EHLO_HAS_STARTTLS },
	{ "250-host\r\n250-SIZE 1\r\n250 STARTTLS\r\n", EHLO_ADD_STARTTLS,
	    "250-host\r\n250-SIZE 1\r\n250 STARTTLS\r\n", EHLO_HAS_STARTTLS },
	{ "250-host\r\n250-auth login\r\n250-Auth=Login\r\n250 xclient ADDR\r\n",
	    EHLO_HIDE_AUTH, "250 host\r\n", EHLO_HAS_AUTH | EHLO_HAS_XCLIENT },
	{ "250-host\r\n250-AUTH\tPLAIN\r\n250 OK\r\n", EHLO_HIDE_AUTH,
	    "250-host\r\n250 OK\r\n", EHLO_HAS_AUTH },
	{ "250-host\r\n250-AUTH\r\n250 OK\r\n", EHLO_HIDE_AUTH,
	    "250-host\r\n250 OK\r\n", EHLO_HAS_AUTH },
	/* Near misses stay. */
	{ "250-host\r\n250-AUTHENTICATE\r\n250-X-AUTH\r\n250-STARTTLSX\r\n"
	    "250-XCLIENTS\r\n250 AUTH_X\r\n", EHLO_HIDE_AUTH,
	    "250-host\r\n250-AUTHENTICATE\r\n250-X-AUTH\r\n250-STARTTLSX\r\n"
	    "250-XCLIENTS\r\n250 AUTH_X\r\n", 0 },
	{ "250-host\r\n250-XFORWARD\r\n250-xForward ADDR\r\n250 DSN\r\n",
	    EHLO_ADD_STARTTLS,
	    "250-host\r\n250-DSN\r\n250 STARTTLS\r\n", EHLO_HAS_XFORWARD },
	/* Empty keyword lines go. */
	{ "250-host\r\n250-\r\n250 PIPELINING\r\n", 0,
	    "250-host\r\n250 PIPELINING\r\n", EHLO_HAS_PIPELINING },
	{ "250-host\r\n250\r\n", 0, "250 host\r\n", 0 },
	/* The first line is the host name, never a keyword. */
	{ "250-STARTTLS\r\n250 SIZE\r\n", 0, "250-STARTTLS\r\n250 SIZE\r\n", 0 },
	{ "250-host\r\n250-8bitmime\r\n250-SmtpUtf8\r\n250 Chunking\r\n",
	    EHLO_ADD_STARTTLS,
	    "250-host\r\n250-8bitmime\r\n250-SmtpUtf8\r\n250-Chunking\r\n"
	    "250 STARTTLS\r\n",
	    EHLO_HAS_8BITMIME | EHLO_HAS_SMTPUTF8 | EHLO_HAS_CHUNKING },
	/* Only STARTTLS-like lines: just the host line remains. */
	{ "250-host\r\n250-STARTTLS\r\n250-XCLIENT A\r\n250 XFORWARD B\r\n",
	    0, "250 host\r\n",
	    EHLO_HAS_STARTTLS | EHLO_HAS_XCLIENT | EHLO_HAS_XFORWARD },
	/* Not 250: copied as it came, bytes and all. */
	{ "550 5.7.1 go away\r\n", EHLO_ADD_STARTTLS | EHLO_HIDE_AUTH,
	    "550 5.7.1 go away\r\n", 0 },
	{ "421-4.3.2 a\n421 4.3.2 STARTTLS\n", EHLO_ADD_STARTTLS,
	    "421-4.3.2 a\n421 4.3.2 STARTTLS\n", 0 },
	{ "502 5.5.1 no EHLO\r\n", 0, "502 5.5.1 no EHLO\r\n", 0 },
};

/* out must be a complete reply: CRLF only, "250-" ... "250 ". */
static int
well_formed(const char *out, size_t len)
{
	struct smtp_reply	 r;
	const char		*line;
	size_t			 pos = 0, linelen, i, crlf = 0;

	if (smtp_reply_parse(out, len, len, &r) != SMTP_OK || r.len != len ||
	    r.code != 250)
		return 0;
	for (i = 0; i < len; i++) {
		if (out[i] == '\n' && (i == 0 || out[i - 1] != '\r'))
			return 0;
		if (out[i] == '\r' && (i + 1 == len || out[i + 1] != '\n'))
			return 0;
		if (out[i] == '\n')
			crlf++;
	}
	if (crlf != r.nlines)
		return 0;
	for (i = 0; smtp_reply_next_line(out, len, &pos, &line, &linelen);
	    i++)
		if (linelen < 4 || line[3] != (i + 1 < r.nlines ? '-' : ' '))
			return 0;
	return 1;
}

static void
test_rows(void)
{
	const struct ehlo_row	*row;
	struct smtp_reply	 r;
	char			 out[2048];
	size_t			 i, len, n, wlen;
	int			 seen;

	for (i = 0; i < sizeof(ehlo_rows) / sizeof(ehlo_rows[0]); i++) {
		row = &ehlo_rows[i];
		len = strlen(row->in);
		ASSERT_EQ(smtp_reply_parse(row->in, len, 4096, &r), SMTP_OK);
		ASSERT_EQ(r.len, len);
		seen = -1;
		n = smtp_ehlo_rewrite(row->in, len, row->flags, out,
		    sizeof(out), &seen);
		wlen = strlen(row->want);
		ASSERT_MEM_EQ(out, n, row->want, wlen);
		ASSERT_EQ(seen, row->seen);
		if (r.code == 250)
			ASSERT_TRUE(well_formed(out, n));
		ASSERT_TRUE(n <= len + r.nlines + 16);

		/* Exactly enough room works, one byte less gives 0. */
		ASSERT_EQ(smtp_ehlo_rewrite(row->in, len, row->flags, out,
		    wlen, NULL), wlen);
		ASSERT_EQ(smtp_ehlo_rewrite(row->in, len, row->flags, out,
		    wlen - 1, NULL), 0);
		UNIT_ROW("ehlo row %zu", i);
	}
}

/* The worst growth: many short LF-terminated lines plus STARTTLS. */
static void
test_growth(void)
{
	char		in[1024], out[4096];
	size_t		len = 0, n, i;
	int		seen;

	len += (size_t)snprintf(in, sizeof(in), "250-h\n");
	for (i = 0; i < 100; i++)
		len += (size_t)snprintf(in + len, sizeof(in) - len,
		    "250-X\n");
	len += (size_t)snprintf(in + len, sizeof(in) - len, "250 Y\n");
	n = smtp_ehlo_rewrite(in, len, EHLO_ADD_STARTTLS, out, sizeof(out),
	    &seen);
	/* 102 lines each gain a CR, plus "250 STARTTLS\r\n". */
	ASSERT_EQ(n, len + 102 + 14);
	ASSERT_TRUE(n <= 2 * len + 16);
	ASSERT_TRUE(well_formed(out, n));
	ASSERT_EQ(smtp_ehlo_rewrite(in, len, EHLO_ADD_STARTTLS, out, len + 16,
	    NULL), 0);
	ASSERT_EQ(smtp_ehlo_rewrite(in, len, 0, out, 0, NULL), 0);
	ASSERT_EQ(smtp_ehlo_rewrite("550 x\r\n", 7, 0, out, 6, NULL), 0);
}

int
main(void)
{
	test_rows();
	test_growth();
	return unit_done();
}
