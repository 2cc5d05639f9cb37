/*
 * test_received - the Received: header: exact text for normal sessions,
 * and shape invariants for hostile values (no raw CR/LF/NUL/8-bit, no
 * way out of a comment, no line over 998 bytes, fits RECEIVED_MAX).
 */
#include <stdlib.h>
#include <string.h>

#include "received.h"
#include "unit.h"

static const struct received_info base = {
	.helo = "client.example.net",
	.client_addr = "192.0.2.1",
	.by_host = "mx.example.org",
	.listener = "mx",
	.session_id = "1a2b3c",
	.tls_version = "TLSv1.3",
	.cipher = "TLS_AES_256_GCM_SHA384",
	.cipher_bits = 256,
	.sni = "mx.example.org",
	.client_subject = "CN=client.example.net",
	.esmtp = 1,
	.now = 1709632800,
};

/*
 * The header's shape: "Received: " first; CR only in CRLF; every CRLF but
 * the last followed by TAB; printable ASCII otherwise; comments never
 * nest; lines <= 998 bytes.  Returns 0 when good, else a small code.
 */
static int
shape(const char *h, size_t n)
{
	size_t	i, col = 0;
	int	depth = 0;

	if (n < 12 || strncmp(h, "Received: ", 10) != 0)
		return 1;
	if (strlen(h) != n)
		return 2;
	if (h[n - 2] != '\r' || h[n - 1] != '\n')
		return 3;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)h[i];

		if (c == '\r') {
			if (i + 1 >= n || h[i + 1] != '\n')
				return 4;
			if (i + 2 < n && h[i + 2] != '\t')
				return 5;
			if (col > 998)
				return 6;
			col = 0;
			i++;
			continue;
		}
		if (c == '\n')
			return 7;
		if (c != '\t' && (c < 0x20 || c > 0x7e))
			return 8;
		if (c == '(' && ++depth > 1)
			return 9;
		if (c == ')' && --depth < 0)
			return 10;
		col++;
	}
	if (depth != 0)
		return 11;
	return 0;
}

static void
test_exact(void)
{
	struct received_info	 ri;
	char			 out[RECEIVED_MAX];
	size_t			 n;
	const char		*want;

	ri = base;
	n = received_header(&ri, out, sizeof(out));
	want = "Received: from client.example.net (client [192.0.2.1])\r\n"
	    "\tby mx.example.org (starttls-proxy, listener mx)\r\n"
	    "\twith ESMTPS id 1a2b3c\r\n"
	    "\t(version=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384 bits=256"
	    " sni=mx.example.org\r\n"
	    "\tclient-subject=CN=client.example.net)\r\n"
	    "\t; Tue, 5 Mar 2024 10:00:00 +0000\r\n";
	ASSERT_MEM_EQ(out, n, want, strlen(want));
	ASSERT_EQ(shape(out, n), 0);

	/* No SNI, no client certificate, HELO. */
	ri.sni = NULL;
	ri.client_subject = NULL;
	ri.esmtp = 0;
	n = received_header(&ri, out, sizeof(out));
	want = "Received: from client.example.net (client [192.0.2.1])\r\n"
	    "\tby mx.example.org (starttls-proxy, listener mx)\r\n"
	    "\twith SMTPS id 1a2b3c\r\n"
	    "\t(version=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384 bits=256)\r\n"
	    "\t; Tue, 5 Mar 2024 10:00:00 +0000\r\n";
	ASSERT_MEM_EQ(out, n, want, strlen(want));

	/* Plain text: no TLS comment. */
	ri = base;
	ri.tls_version = NULL;
	n = received_header(&ri, out, sizeof(out));
	want = "Received: from client.example.net (client [192.0.2.1])\r\n"
	    "\tby mx.example.org (starttls-proxy, listener mx)\r\n"
	    "\twith ESMTP id 1a2b3c\r\n"
	    "\t; Tue, 5 Mar 2024 10:00:00 +0000\r\n";
	ASSERT_MEM_EQ(out, n, want, strlen(want));
	ri.esmtp = 0;
	ri.helo = NULL;
	ri.client_addr = "2001:db8::1";
	ri.session_id = NULL;
	ri.listener = NULL;
	n = received_header(&ri, out, sizeof(out));
	want = "Received: from unknown (client [2001:db8::1])\r\n"
	    "\tby mx.example.org (starttls-proxy)\r\n"
	    "\twith SMTP\r\n"
	    "\t; Tue, 5 Mar 2024 10:00:00 +0000\r\n";
	ASSERT_MEM_EQ(out, n, want, strlen(want));
	ASSERT_EQ(shape(out, n), 0);
}

struct date_row {
	time_t		 t;
	const char	*want;
};

static const struct date_row date_rows[] = {
	{ 0, "\t; Thu, 1 Jan 1970 00:00:00 +0000\r\n" },
	{ 951782400, "\t; Tue, 29 Feb 2000 00:00:00 +0000\r\n" },
	{ 1735689599, "\t; Tue, 31 Dec 2024 23:59:59 +0000\r\n" },
	{ 4102444800LL, "\t; Fri, 1 Jan 2100 00:00:00 +0000\r\n" },
	{ 1700000000, "\t; Tue, 14 Nov 2023 22:13:20 +0000\r\n" },
	{ 1234567890, "\t; Fri, 13 Feb 2009 23:31:30 +0000\r\n" },
	{ 1720000000, "\t; Wed, 3 Jul 2024 09:46:40 +0000\r\n" },
};

static void
test_dates(void)
{
	struct received_info	 ri = base;
	char			 out[RECEIVED_MAX];
	const char		*tail;
	size_t			 i, n, wl;

	for (i = 0; i < sizeof(date_rows) / sizeof(date_rows[0]); i++) {
		ri.now = date_rows[i].t;
		n = received_header(&ri, out, sizeof(out));
		wl = strlen(date_rows[i].want);
		ASSERT_TRUE(n > wl);
		tail = n > wl ? out + n - wl : out;
		ASSERT_MEM_EQ(tail, n > wl ? wl : n, date_rows[i].want, wl);
		UNIT_ROW("date row %zu", i);
	}
}

struct hostile_row {
	const char	*helo;
	const char	*sni;
	const char	*subject;
	const char	*want_helo;	/* expected text after "from " */
	const char	*want_sni;	/* expected "sni=..." item */
	const char	*want_subj;	/* expected "client-subject=..." item */
};

static const struct hostile_row hostile_rows[] = {
	{ "evil\r\nX-Injected: 1 (a)\\\"", "a\r\nb", "CN=x\r\n.\r\n",
	    "from evil??X-Injected:?1??a??? (client",
	    "sni=a??b", "client-subject=CN=x??.??" ")" },
	{ "a b by trusted.example with ESMTPS;", "x y", "CN=Foo Bar, O=Org",
	    "from a?b?by?trusted.example?with?ESMTPS? (client",
	    "sni=x?y", "client-subject=CN=Foo Bar, O=Org)" },
	{ "h\xc3\xa4llo", "\xe2\x82\xac.example", "CN=\xff\x80)(",
	    "from h??llo (client", "sni=???.example",
	    "client-subject=CN=????" ")" },
	{ "x)", "(y", "CN=a) (b", "from x? (client", "sni=?y",
	    "client-subject=CN=a? ?b)" },
	{ "\t\x7f\x01", "\x1b[31m", "\\\"", "from ??? (client", "sni=?[31m",
	    "client-subject=??" ")" },
	{ "", "", "", "from unknown (client", "sni=unknown",
	    "client-subject=unknown)" },
};

static void
test_hostile(void)
{
	struct received_info	 ri = base;
	char			 out[RECEIVED_MAX];
	size_t			 i, n;

	for (i = 0; i < sizeof(hostile_rows) / sizeof(hostile_rows[0]); i++) {
		ri.helo = hostile_rows[i].helo;
		ri.sni = hostile_rows[i].sni;
		ri.client_subject = hostile_rows[i].subject;
		n = received_header(&ri, out, sizeof(out));
		ASSERT_TRUE(n > 0);
		ASSERT_EQ(shape(out, n), 0);
		ASSERT_TRUE(strstr(out, hostile_rows[i].want_helo) != NULL);
		ASSERT_TRUE(strstr(out, hostile_rows[i].want_sni) != NULL);
		ASSERT_TRUE(strstr(out, hostile_rows[i].want_subj) != NULL);
		UNIT_ROW("hostile row %zu", i);
	}
}

/* Every value 1000 bytes: values cut, lines short, fits RECEIVED_MAX. */
static void
test_long(void)
{
	struct received_info	 ri;
	char			 out[RECEIVED_MAX], *big[3], *p;
	size_t			 n, i, run, maxrun;

	for (i = 0; i < 3; i++) {
		big[i] = malloc(1001);
		memset(big[i], "Axy"[i], 1000);
		big[i][1000] = '\0';
	}
	ri.helo = ri.sni = ri.client_subject = big[0];
	ri.client_addr = ri.listener = ri.session_id = big[1];
	ri.by_host = ri.tls_version = ri.cipher = big[2];
	ri.cipher_bits = -2147483647 - 1;
	ri.esmtp = 1;
	ri.now = 1709632800;
	n = received_header(&ri, out, sizeof(out));
	ASSERT_TRUE(n > 0);
	ASSERT_TRUE(n < RECEIVED_MAX);
	ASSERT_EQ(shape(out, n), 0);
	ASSERT_TRUE(strstr(out, "bits=-2147483648") != NULL);

	/* No value longer than 255 bytes made it through. */
	maxrun = run = 0;
	for (p = out; *p != '\0'; p++) {
		run = (*p == 'A' || *p == 'x' || *p == 'y') ? run + 1 : 0;
		if (run > maxrun)
			maxrun = run;
	}
	ASSERT_TRUE(maxrun <= 255);
	ASSERT_TRUE(maxrun >= 64);

	/* Too small: 0, never a cut header. */
	ASSERT_EQ(received_header(&ri, out, n), 0);
	ASSERT_EQ(received_header(&ri, out, n + 1), n);
	ASSERT_EQ(received_header(&ri, out, 10), 0);
	ASSERT_EQ(received_header(&ri, out, 0), 0);
	for (i = 0; i < 3; i++)
		free(big[i]);
}

int
main(void)
{
	test_exact();
	test_dates();
	test_hostile();
	test_long();
	return unit_done();
}
