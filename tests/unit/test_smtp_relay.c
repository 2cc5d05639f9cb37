/*
 * test_smtp_relay - table tests for the SMTP dialogue (smtp_relay.c),
 * without a socket: relay_harness.h plays the transport.
 *
 * A row is a script of steps: "C..." client bytes, "B..." backend bytes,
 * "T" the TLS handshake completes, "L" the backend is lost (during the
 * handshake), "?..." the backend must have got exactly this so far.
 * Every row is run with each client step whole,
 * split at every byte offset, and byte at a time: the client's replies,
 * the backend's bytes, the ending and the harness's invariant checks
 * (relay_harness.h) must not change.  Then: client EOF at every point of
 * a transaction.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "relay_harness.h"
#include "unit.h"

#define MAX_STEPS	12

struct relay_row {
	const char	*name;
	unsigned	 opts;
	const char	*steps[MAX_STEPS];
	const char	*client;	/* every reply the client got */
	const char	*backend;	/* every byte the backend got */
	const char	*end;		/* "" open, "closed", or the failure */
	long		 stale;		/* r.stale_bytes, -1: any */
};

#define GREET_MX	"B220 mx ESMTP\r\n"
#define TXN		"CMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"
#define TXN_OK		"B250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go\r\n"
#define TXN_BE		"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"
#define TXN_CL		"220 mx ESMTP\r\n250 2.1.0 ok\r\n250 2.1.5 ok\r\n" \
			"354 go\r\n"
#define REFUSED		"554 5.5.2 Message refused: bare CR or LF in " \
			"message content\r\n" R421_REFUSED_MSG

static const struct relay_row rows[] = {
	{ "starttls: pipelined bytes after it dropped, RFC 3207 reset",
	  RH_CERT,
	  { GREET_MX, "CEHLO a\r\nSTARTTLS\r\nMAIL FROM:<evil@x>\r\n",
	    "B250-mx\r\n250 PIPELINING\r\n", "T",
	    "CMAIL FROM:<a@b>\r\nEHLO b\r\n", "B250-mx\r\n250 PIPELINING\r\n" },
	  "220 mx ESMTP\r\n250-mx\r\n250-PIPELINING\r\n250 STARTTLS\r\n"
	  "220 2.0.0 Ready to start TLS\r\n"
	  "503 5.5.1 Send EHLO/HELO first after STARTTLS\r\n"
	  "250-mx\r\n250 PIPELINING\r\n",
	  "EHLO a\r\nEHLO b\r\n", "", 0 },
	{ "starttls: stale backend bytes never reach the client",
	  RH_CERT,
	  { GREET_MX, "CEHLO a\r\n", "B250 mx\r\n", "CSTARTTLS\r\n",
	    "B250 stale\r\n", "T", "B421 stale too\r\n", "CEHLO b\r\n",
	    "B250 fresh\r\n" },
	  "220 mx ESMTP\r\n250-mx\r\n250 STARTTLS\r\n"
	  "220 2.0.0 Ready to start TLS\r\n250 fresh\r\n",
	  "EHLO a\r\nEHLO b\r\n", "", 26 },
	{ "starttls: backend lost in the handshake, 421 after TLS, nothing "
	  "forwarded",
	  RH_CERT,
	  { GREET_MX, "CEHLO a\r\nSTARTTLS\r\n", "B250 mx\r\n", "L", "T",
	    "CEHLO b\r\n" },
	  "220 mx ESMTP\r\n250-mx\r\n250 STARTTLS\r\n"
	  "220 2.0.0 Ready to start TLS\r\n" R421_LOST,
	  "EHLO a\r\n", "closed", 0 },
	{ "backend greets 421: relayed alone, then close",
	  0,
	  { "B421 4.3.2 busy, try later\r\n", "CEHLO a\r\n" },
	  "421 4.3.2 busy, try later\r\n",
	  "", "closed", 0 },
	{ "backend answers 421: its reply is the last, nothing after it",
	  0,
	  { GREET_MX, "CMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n",
	    "B421 4.3.2 going away\r\n", "CNOOP\r\n", "B250 late\r\n" },
	  "220 mx ESMTP\r\n421 4.3.2 going away\r\n",
	  "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n", "closed", 0 },
	{ "starttls without a certificate: 454, nothing dropped",
	  0,
	  { GREET_MX, "CSTARTTLS\r\nNOOP\r\n", "B250 noop\r\n" },
	  "220 mx ESMTP\r\n454 4.7.0 TLS not available due to temporary "
	  "reason\r\n250 noop\r\n",
	  "NOOP\r\n", "", 0 },
	{ "pipelining: local refusals in their slots, refused BDAT's chunk "
	  "dropped",
	  0,
	  { GREET_MX, "CEHLO a\r\nMAIL FROM:<a@b>\r\nXCLIENT ADDR=1.2.3.4\r\n"
	    "RCPT TO:<c@d>\r\nBDAT 6\r\nNOOP\r\nNOOP\r\n",
	    "B250 mx\r\n250 2.1.0 ok\r\n250 2.1.5 ok\r\n250 2.0.0 noop\r\n" },
	  "220 mx ESMTP\r\n250 mx\r\n250 2.1.0 ok\r\n"
	  "502 5.5.1 Command not implemented\r\n250 2.1.5 ok\r\n"
	  "502 5.5.1 Command not implemented\r\n250 2.0.0 noop\r\n",
	  "EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nNOOP\r\n", "", 0 },
	{ "require_tls: refusal before TLS, EHLO relayed",
	  RH_CERT | RH_REQUIRE_TLS,
	  { GREET_MX, "CEHLO a\r\nMAIL FROM:<a@b>\r\nQUIT\r\n",
	    "B250 mx\r\n221 bye\r\n" },
	  "220 mx ESMTP\r\n250-mx\r\n250 STARTTLS\r\n"
	  "530 5.7.0 Must issue a STARTTLS command first\r\n221 bye\r\n",
	  "EHLO a\r\nQUIT\r\n", "closed", 0 },
	{ "bdat: chunks byte-exact when the backend offers CHUNKING",
	  0,
	  { GREET_MX, "CEHLO a\r\n", "B250-mx\r\n250 CHUNKING\r\n",
	    "CBDAT 7\r\nab\r\n.\r\nBDAT 2 LAST\r\nxy",
	    "B250 2.0.0 chunk\r\n250 2.0.0 queued\r\n" },
	  "220 mx ESMTP\r\n250-mx\r\n250 CHUNKING\r\n250 2.0.0 chunk\r\n"
	  "250 2.0.0 queued\r\n",
	  "EHLO a\r\nBDAT 7\r\nab\r\n.\r\nBDAT 2 LAST\r\nxy", "", 0 },
	{ "data: content exact, dots as sent, QUIT after",
	  0,
	  { GREET_MX, TXN, TXN_OK, "CSubject: x\r\n\r\n..dot\r\n.\r\nQUIT\r\n",
	    "B250 2.0.0 queued\r\n221 bye\r\n" },
	  TXN_CL "250 2.0.0 queued\r\n221 bye\r\n",
	  TXN_BE "Subject: x\r\n\r\n..dot\r\n.\r\nQUIT\r\n", "closed", 0 },
	{ "data: content before 354 waits for it",
	  0,
	  { GREET_MX, "CMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nhi\r\n"
	    ".\r\n", "?MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n", TXN_OK,
	    "B250 2.0.0 queued\r\n" },
	  TXN_CL "250 2.0.0 queued\r\n", TXN_BE "hi\r\n.\r\n", "", 0 },
	{ "data: a refused DATA goes back to commands",
	  0,
	  { GREET_MX, "CMAIL FROM:<a@b>\r\nDATA\r\nNOOP\r\n",
	    "?MAIL FROM:<a@b>\r\nDATA\r\n", "B250 ok\r\n554 no\r\n",
	    "?MAIL FROM:<a@b>\r\nDATA\r\nNOOP\r\n", "B250 noop\r\n" },
	  "220 mx ESMTP\r\n250 ok\r\n554 no\r\n250 noop\r\n",
	  "MAIL FROM:<a@b>\r\nDATA\r\nNOOP\r\n", "", 0 },
	{ "smuggling: a bare CR after CRLF. ends nothing, the end is withheld",
	  0,
	  { GREET_MX, TXN, TXN_OK, "Cabc\r\n.\rMAIL FROM:<x@y>\r\n.\r\n" },
	  TXN_CL REFUSED, TXN_BE "abc\r\n.", "smuggling attempt refused", 0 },
	{ "smuggling: a bare LF",
	  0,
	  { GREET_MX, TXN, TXN_OK, "Cabc\n.\nRSET\r\n.\r\n" },
	  TXN_CL REFUSED, TXN_BE "abc", "smuggling attempt refused", 0 },
	{ "smuggling: CR at the very end of one read, LF never comes",
	  0,
	  { GREET_MX, TXN, TXN_OK, "Cabc\r\n.\r", "Cx\r\n.\r\n" },
	  TXN_CL REFUSED, TXN_BE "abc\r\n.", "smuggling attempt refused", 0 },
	{ "smuggling: CR CR ending a read: the first is bare, never sent",
	  0,
	  { GREET_MX, TXN, TXN_OK, "Cabc\r\n.\r\r", "Cx\r\n.\r\n" },
	  TXN_CL REFUSED, TXN_BE "abc\r\n.", "smuggling attempt refused", 0 },
	{ "smuggling: CR CR with bare_newline = pass is relayed",
	  RH_BARE_PASS,
	  { GREET_MX, TXN, TXN_OK, "Cabc\r\n.\r\r", "Cx\r\n.\r\n",
	    "B250 queued\r\n" },
	  TXN_CL "250 queued\r\n", TXN_BE "abc\r\n.\r\rx\r\n.\r\n", "", 0 },
	{ "smuggling: bare_newline = pass relays it whole",
	  RH_BARE_PASS,
	  { GREET_MX, TXN, TXN_OK, "Cabc\n.\nRSET\r\n.\r\n",
	    "B250 queued\r\n" },
	  TXN_CL "250 queued\r\n", TXN_BE "abc\n.\nRSET\r\n.\r\n", "", 0 },
	{ "xclient: probe, then XCLIENT alone, commands after its reply",
	  RH_XCLIENT,
	  { "B220 pf ESMTP\r\n", "?EHLO proxy.test\r\n",
	    "CEHLO c.test\r\nMAIL FROM:<a@b>\r\n",
	    "?EHLO proxy.test\r\n",
	    "B250-pf\r\n250 XCLIENT NAME ADDR PORT PROTO HELO\r\n",
	    "?EHLO proxy.test\r\nXCLIENT ADDR=192.0.2.1 PORT=4321 "
	    "NAME=[UNAVAILABLE] HELO=c.test PROTO=ESMTP\r\n",
	    "B220 pf again\r\n", "B250 pf\r\n250 ok\r\n" },
	  "220 pf ESMTP\r\n250 pf\r\n250 ok\r\n",
	  "EHLO proxy.test\r\nXCLIENT ADDR=192.0.2.1 PORT=4321 "
	  "NAME=[UNAVAILABLE] HELO=c.test PROTO=ESMTP\r\nEHLO c.test\r\n"
	  "MAIL FROM:<a@b>\r\n", "", 0 },
	{ "xclient: not offered, not sent",
	  RH_XCLIENT,
	  { "B220 pf ESMTP\r\n", "CEHLO c\r\n", "B250 pf\r\n", "B250 pf\r\n" },
	  "220 pf ESMTP\r\n250 pf\r\n",
	  "EHLO proxy.test\r\nEHLO c\r\n", "", 0 },
	{ "unsolicited backend output is dropped",
	  0,
	  { GREET_MX, "B250 nobody asked\r\n", "CNOOP\r\n", "B250 noop\r\n" },
	  "220 mx ESMTP\r\n250 noop\r\n", "NOOP\r\n", "", 0 },
	{ "malformed backend reply fails the waiting slot with 421",
	  0,
	  { GREET_MX, "CNOOP\r\n", "Bgarbage\r\n" },
	  "220 mx ESMTP\r\n" R421_PROTOCOL, "NOOP\r\n",
	  "backend protocol error", 0 },
	{ "command lines: bare LF accepted, NUL and bare CR refused",
	  0,
	  { GREET_MX, "CNOOP\nNO\rOP\r\nNO\0OP\r\nRSET\r\n",
	    "B250 a\r\n250 b\r\n" },
	  "220 mx ESMTP\r\n250 a\r\n"
	  "500 5.5.2 Syntax error (NUL or bare CR in command)\r\n"
	  "500 5.5.2 Syntax error (NUL or bare CR in command)\r\n250 b\r\n",
	  "NOOP\r\nRSET\r\n", "", 0 },
};

/* Length of a step's text: up to the NUL that ends the literal, except
 * that the one row with an embedded NUL is written out here. */
static size_t
step_len(const char *s)
{
	if (strcmp(s, "CNOOP\nNO\rOP\r\nNO") == 0)
		return sizeof("CNOOP\nNO\rOP\r\nNO\0OP\r\nRSET\r\n") - 1;
	return strlen(s);
}

/* split: 0 whole, k > 0 every client step cut at k, -1 byte at a time. */
static void
run_row(const struct relay_row *row, long split, struct rh *h)
{
	const char *s, *p;
	size_t i, n, k;

	rh_init(h, row->opts);
	for (i = 0; i < MAX_STEPS && row->steps[i] != NULL; i++) {
		s = row->steps[i];
		n = step_len(s) - 1;
		p = s + 1;
		switch (s[0]) {
		case 'B':
			rh_backend(h, p, n);
			break;
		case 'T':
			ASSERT_TRUE(rh_tls(h));
			break;
		case 'L':
			rh_lost(h);
			break;
		case '?':
			ASSERT_MEM_EQ(buf_data(&h->be_got), h->be_got.len, p,
			    n);
			break;
		case 'C':
			if (split < 0) {
				for (k = 0; k < n; k++)
					rh_client(h, p + k, 1);
			} else if (split > 0 && (size_t)split < n) {
				rh_client(h, p, (size_t)split);
				rh_client(h, p + split, n - (size_t)split);
			} else
				rh_client(h, p, n);
			break;
		}
	}
}

/* What b holds is exactly the string want (an empty buf may have no
 * memory at all). */
static int
same(const struct buf *b, const char *want)
{
	return b->len == strlen(want) &&
	    (b->len == 0 || memcmp(buf_data(b), want, b->len) == 0);
}

static void
test_rows(void)
{
	const struct relay_row *row;
	struct rh h;
	size_t i;
	long split;
	const char *end;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		row = &rows[i];
		for (split = -1; split < 80; split++) {
			run_row(row, split, &h);
			end = h.failed ? h.why : h.closed ? "closed" : "";
			if (h.violations > 0 || strcmp(end, row->end) != 0 ||
			    !same(&h.cl_got, row->client) ||
			    !same(&h.be_got, row->backend))
				fprintf(stderr, "row \"%s\", split %ld:\n",
				    row->name, split);
			ASSERT_EQ(h.violations, 0);
			if (h.violations > 0)
				fprintf(stderr, "    %s\n", h.what);
			ASSERT_STR_EQ(end, row->end);
			ASSERT_MEM_EQ(buf_data(&h.cl_got), h.cl_got.len,
			    row->client, strlen(row->client));
			ASSERT_MEM_EQ(buf_data(&h.be_got), h.be_got.len,
			    row->backend, strlen(row->backend));
			if (row->stale >= 0)
				ASSERT_EQ(h.r.stale_bytes, row->stale);
			rh_free(&h);
		}
	}
}

/*
 * Client EOF after every prefix of two transactions (the second left
 * incomplete), with a backend that answers everything: inside content the
 * session may end at once and says so; elsewhere once nothing is owed; the
 * backend completed exactly the messages the client ended.
 */
static void
test_eof_everywhere(void)
{
	static const char t[] =
	    "EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"
	    "Subject: x\r\n\r\nbody\r\n.\r\n"
	    "MAIL FROM:<e@f>\r\nRCPT TO:<g@h>\r\nDATA\r\nmore\r\n.";
	const char *first_end = strstr(t, "\r\n.\r\n") + 5;
	const char *data1 = strstr(t, "DATA\r\n") + 6;
	const char *data2 = strstr(first_end, "DATA\r\n") + 6;
	size_t k, n = sizeof(t) - 1, a = (size_t)(data1 - t),
	    b = (size_t)(first_end - t), c = (size_t)(data2 - t);
	struct rh h;
	const char *why;
	bool end, content;

	for (k = 0; k <= n; k++) {
		rh_init(&h, RH_AUTO);
		rh_backend(&h, "220 mx\r\n", 8);
		rh_client(&h, t, k);
		why = NULL;
		end = relay_may_end(&h.r, &why);
		content = (k >= a && k < b) || k >= c;
		ASSERT_TRUE(end);
		ASSERT_EQ(why != NULL, content);
		ASSERT_EQ(h.r.messages, k >= b ? 1 : 0);
		ASSERT_EQ(h.r.rq.n, 0);
		ASSERT_EQ(h.violations, 0);
		if (h.violations > 0)
			fprintf(stderr, "    at %zu: %s\n", k, h.what);
		rh_free(&h);
	}
}

/* The deadline: the reply timeout while a command waits, idle else, the
 * pause and whole-content limits inside content. */
static void
test_deadlines(void)
{
	struct rh h;

	rh_init(&h, 0);
	ASSERT_EQ(relay_deadline(&h.r), 300 * 1000);	/* greeting */
	ASSERT_EQ(h.r.tk, RT_REPLY);
	rh_backend(&h, "220 mx\r\n", 8);
	ASSERT_EQ(h.r.tk, RT_REPLY);
	(void)relay_deadline(&h.r);
	ASSERT_EQ(h.r.tk, RT_IDLE);
	rh_client(&h, "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n", 38);
	ASSERT_EQ(relay_deadline(&h.r), h.r.t_wait + 300 * 1000);
	rh_backend(&h, "250 a\r\n250 b\r\n", 14);
	ASSERT_EQ(relay_deadline(&h.r), h.r.t_wait + 120 * 1000); /* DATA */
	rh_backend(&h, "354 go\r\n", 8);
	ASSERT_EQ(relay_deadline(&h.r), h.r.t_content_last + 300 * 1000);
	ASSERT_EQ(h.r.tk, RT_PAUSE);
	rh_client(&h, "x\r\n.\r\n", 6);
	ASSERT_EQ(relay_deadline(&h.r), h.r.t_wait + 600 * 1000);
	ASSERT_EQ(h.r.tk, RT_REPLY);
	rh_free(&h);
}

int
main(void)
{
	test_rows();
	test_eof_everywhere();
	test_deadlines();
	return unit_done();
}
