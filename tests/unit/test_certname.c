/*
 * test_certname - table tests for certificate name matching and the
 * SNI choice among a listener's certificates.
 */
#include <string.h>

#include "certname.h"
#include "unit.h"

struct norm_row {
	const char	*in;
	const char	*want;		/* NULL: -1 */
};

static const struct norm_row norm_rows[] = {
	{ "mx.example.org", "mx.example.org" },
	{ "MX.Example.ORG", "mx.example.org" },
	{ "mx.example.org.", "mx.example.org" },
	{ "*.example.org", "*.example.org" },
	{ "under_score-dash.example", "under_score-dash.example" },
	{ "localhost", "localhost" },
	{ "", NULL },
	{ ".", NULL },
	{ "..", NULL },
	{ ".example.org", NULL },
	{ "mx..example.org", NULL },
	{ "mx.example.org..", NULL },
	{ "mx example.org", NULL },
	{ "mx.ex\xc3\xa4mple.org", NULL },
	{ "mx.example.org\r\n", NULL },
	{ "mx/example", NULL },
	{ "mx:25", NULL },
};

static void
test_normalize(void)
{
	char	out[300], big[300];
	size_t	i;
	int	r;

	for (i = 0; i < sizeof(norm_rows) / sizeof(norm_rows[0]); i++) {
		memset(out, 'Z', sizeof(out));
		r = certname_normalize(norm_rows[i].in, out, sizeof(out));
		if (norm_rows[i].want == NULL)
			ASSERT_EQ(r, -1);
		else {
			ASSERT_EQ(r, 0);
			ASSERT_STR_EQ(out, norm_rows[i].want);
		}
		UNIT_ROW("normalize row %zu \"%s\"", i, norm_rows[i].in);
	}

	/* 253 octets pass, 254 do not; a trailing dot is not counted. */
	memset(big, 'a', sizeof(big));
	for (i = 63; i < 253; i += 64)
		big[i] = '.';
	big[253] = '\0';
	ASSERT_EQ(certname_normalize(big, out, sizeof(out)), 0);
	ASSERT_EQ(strlen(out), 253);
	big[253] = '.';
	big[254] = '\0';
	ASSERT_EQ(certname_normalize(big, out, sizeof(out)), 0);
	big[253] = 'a';
	ASSERT_EQ(certname_normalize(big, out, sizeof(out)), -1);

	/* The output must fit with its NUL. */
	ASSERT_EQ(certname_normalize("abc", out, 4), 0);
	ASSERT_EQ(certname_normalize("abc", out, 3), -1);
	ASSERT_EQ(certname_normalize("abc.", out, 4), 0);
	ASSERT_STR_EQ(out, "abc");
	ASSERT_EQ(certname_normalize(NULL, out, 4), -1);
}

struct match_row {
	const char	*pattern;
	const char	*host;
	int		 exact;
	int		 wild;
};

static const struct match_row match_rows[] = {
	{ "mx.example.org", "mx.example.org", 1, 0 },
	{ "mx.example.org", "MX.EXAMPLE.ORG", 1, 0 },
	{ "MX.Example.Org.", "mx.example.org", 1, 0 },
	{ "mx.example.org", "mx.example.org.", 1, 0 },
	{ "mx.example.org.", "mx.example.org.", 1, 0 },
	{ "mx.example.org", "mx.example.or", 0, 0 },
	{ "mx.example.org", "mx.example.org..", 0, 0 },
	{ "mx.example.org", "xmx.example.org", 0, 0 },
	{ "mx.example.org", "", 0, 0 },
	{ "", "", 0, 0 },
	{ ".", ".", 0, 0 },
	{ "*.example.org", "mx.example.org", 0, 1 },
	{ "*.example.org", "MX.Example.ORG.", 0, 1 },
	{ "*.Example.Org.", "mx.example.org", 0, 1 },
	{ "*.example.org", "example.org", 0, 0 },
	{ "*.example.org", ".example.org", 0, 0 },
	{ "*.example.org", "a.b.example.org", 0, 0 },
	{ "*.example.org", "mxexample.org", 0, 0 },
	{ "*.example.org", "mx.example.org.uk", 0, 0 },
	{ "*.example.org", "mx.example.com", 0, 0 },
	{ "*.example.org", "*.example.org", 1, 0 },
	{ "*.example.org", "mx.*.example.org", 0, 0 },
	{ "*.org", "example.org", 0, 1 },
	{ "*.", "a.", 0, 0 },
	{ "*", "a", 0, 0 },
	{ "mx*.example.org", "mx1.example.org", 0, 0 },
	{ "a.*.example.org", "a.b.example.org", 0, 0 },
	{ "**.example.org", "a.example.org", 0, 0 },
	{ "*example.org", "mxexample.org", 0, 0 },
};

static void
test_match(void)
{
	size_t	i;

	for (i = 0; i < sizeof(match_rows) / sizeof(match_rows[0]); i++) {
		ASSERT_EQ(certname_match_exact(match_rows[i].pattern,
		    match_rows[i].host), match_rows[i].exact);
		ASSERT_EQ(certname_match_wildcard(match_rows[i].pattern,
		    match_rows[i].host), match_rows[i].wild);
		UNIT_ROW("match row %zu \"%s\" vs \"%s\"", i,
		    match_rows[i].pattern, match_rows[i].host);
	}
	ASSERT_EQ(certname_match_exact(NULL, "a"), 0);
	ASSERT_EQ(certname_match_wildcard("*.a", NULL), 0);
}

/*
 * A listener's certificates:
 *   0 default: mx1.example.org (RSA)
 *   1 *.example.org (RSA)
 *   2 mx2.example.org, mail.example.net (RSA)
 *   3 mx2.example.org (ECDSA)
 *   4 *.example.org (ECDSA)
 *   5 no names
 *   6 *.example.net
 */
static const char *const n0[] = { "mx1.example.org" };
static const char *const n1[] = { "*.example.org" };
static const char *const n2[] = { "MX2.example.org", "mail.example.net" };
static const char *const n3[] = { "mx2.example.org." };
static const char *const n4[] = { "*.EXAMPLE.org" };
static const char *const n6[] = { "*.example.net" };
static const char *const *const names[] = { n0, n1, n2, n3, n4, NULL, n6 };
static const size_t nnames[] = { 1, 1, 2, 1, 1, 0, 1 };

struct select_row {
	const char	*host;
	size_t		 maxout;
	size_t		 n;
	size_t		 want[4];
};

static const struct select_row select_rows[] = {
	{ "mx1.example.org", 4, 1, { 0 } },
	{ "MX1.EXAMPLE.ORG.", 4, 1, { 0 } },
	/* Exact on two certs (RSA + ECDSA) beats the two wildcards. */
	{ "mx2.example.org", 4, 2, { 2, 3 } },
	{ "mx2.example.org", 1, 1, { 2 } },
	{ "mx3.example.org", 4, 2, { 1, 4 } },
	{ "mx3.example.org", 1, 1, { 1 } },
	{ "mail.example.net", 4, 1, { 2 } },
	{ "other.example.net", 4, 1, { 6 } },
	{ "a.mx1.example.org", 4, 0, { 0 } },
	{ "example.org", 4, 0, { 0 } },
	{ "example.com", 4, 0, { 0 } },
	{ "", 4, 0, { 0 } },
	{ ".", 4, 0, { 0 } },
	{ "mx2.example.org", 0, 0, { 0 } },
};

static void
test_select(void)
{
	size_t	out[8], i, j, n;

	for (i = 0; i < sizeof(select_rows) / sizeof(select_rows[0]); i++) {
		memset(out, 0xff, sizeof(out));
		n = certname_select(names, nnames, 7, select_rows[i].host, out,
		    select_rows[i].maxout);
		ASSERT_EQ(n, select_rows[i].n);
		for (j = 0; j < n && j < 4; j++)
			ASSERT_EQ(out[j], select_rows[i].want[j]);
		/* Nothing written past what it returned. */
		ASSERT_EQ(out[n], (size_t)-1);
		UNIT_ROW("select row %zu \"%s\"", i, select_rows[i].host);
	}
	ASSERT_EQ(certname_select(names, nnames, 7, NULL, out, 4), 0);
	ASSERT_EQ(certname_select(names, nnames, 0, "mx1.example.org", out, 4),
	    0);
	/* Only the first two certificates looked at. */
	n = certname_select(names, nnames, 2, "mx2.example.org", out, 4);
	ASSERT_EQ(n, 1);
	ASSERT_EQ(out[0], 1);
}

int
main(void)
{
	test_normalize();
	test_match();
	test_select();
	return unit_done();
}
