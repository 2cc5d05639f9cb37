/*
 * test_proxyproto - PROXY v1/v2 parsing (valid, invalid, and exactly when
 * an invalid header is noticed), encode -> parse round trips with and
 * without TLVs, xtext, and the XCLIENT line's length and byte limits.
 *
 * Every valid header is also fed at every split point: each shorter
 * prefix must be PROXY_AGAIN.  Every invalid row says at which length it
 * first becomes PROXY_INVALID: shorter prefixes are AGAIN, longer ones
 * stay INVALID.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxyproto.h"
#include "unit.h"

#define NROWS(a)	(sizeof(a) / sizeof((a)[0]))

static const unsigned char sig[12] = {
	'\r', '\n', '\r', '\n', '\0', '\r', '\n', 'Q', 'U', 'I', 'T', '\n'
};

static void
mkaddr(struct sockaddr_storage *ss, const char *ip, unsigned port)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (strchr(ip, ':') != NULL) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, ip, &sin6->sin6_addr) != 1)
			abort();
	} else {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, ip, &sin->sin_addr) != 1)
			abort();
	}
}

/* 1 if a and b are the same family, address and port. */
static int
addr_eq(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	const struct sockaddr_in	*a4 = (const void *)a, *b4 = (const void *)b;
	const struct sockaddr_in6	*a6 = (const void *)a, *b6 = (const void *)b;

	if (a->ss_family != b->ss_family)
		return 0;
	if (a->ss_family == AF_INET)
		return a4->sin_port == b4->sin_port &&
		    memcmp(&a4->sin_addr, &b4->sin_addr, 4) == 0;
	if (a->ss_family == AF_INET6)
		return a6->sin6_port == b6->sin6_port &&
		    memcmp(&a6->sin6_addr, &b6->sin6_addr, 16) == 0;
	return 0;
}

/* Every proper prefix of a valid header is AGAIN; returns the failures. */
static unsigned long
prefixes_again(const void *buf, size_t n)
{
	struct proxy_hdr	h;
	unsigned long		bad = 0;
	size_t			k;

	for (k = 0; k < n; k++)
		if (proxy_parse(buf, k, &h) != PROXY_AGAIN) {
			fprintf(stderr, "    prefix %zu of %zu is not AGAIN\n",
			    k, n);
			bad++;
		}
	return bad;
}

/* An invalid input: AGAIN below at, INVALID from at to n. */
static void
check_invalid_at(const void *buf, size_t n, size_t at)
{
	struct proxy_hdr	h;
	size_t			k;
	int			bad = 0;

	for (k = 0; k <= n; k++) {
		enum proxy_parse r = proxy_parse(buf, k, &h);

		if (k < at && r != PROXY_AGAIN && bad++ == 0)
			fprintf(stderr, "    length %zu: %d, want AGAIN\n",
			    k, (int)r);
		if (k >= at && r != PROXY_INVALID && bad++ == 0)
			fprintf(stderr, "    length %zu: %d, want INVALID\n",
			    k, (int)r);
	}
	ASSERT_EQ(bad, 0);
}

/* ---- v1 ---- */

struct v1_ok_row {
	const char	*in;
	int		 local;
	const char	*src, *dst;
	unsigned	 sport, dport;
};

#define FULL6	"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"

static const struct v1_ok_row v1_ok_rows[] = {
	{ "PROXY TCP4 192.0.2.1 192.0.2.2 12345 25\r\n", 0,
	    "192.0.2.1", "192.0.2.2", 12345, 25 },
	{ "PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n", 0,
	    "0.0.0.0", "255.255.255.255", 0, 65535 },
	{ "PROXY TCP4 10.100.200.9 1.2.3.4 1 10\r\n", 0,
	    "10.100.200.9", "1.2.3.4", 1, 10 },
	{ "PROXY TCP6 2001:db8::1 2001:db8::2 65535 0\r\n", 0,
	    "2001:db8::1", "2001:db8::2", 65535, 0 },
	{ "PROXY TCP6 2001:DB8::A 2001:0db8:0000::00b 587 465\r\n", 0,
	    "2001:db8::a", "2001:db8::b", 587, 465 },
	{ "PROXY TCP6 ::ffff:192.0.2.1 ::1 1 2\r\n", 0,
	    "::ffff:192.0.2.1", "::1", 1, 2 },
	{ "PROXY TCP6 :: 1:2:3:4:5:6:7:8 25 25\r\n", 0,
	    "::", "1:2:3:4:5:6:7:8", 25, 25 },
	{ "PROXY TCP6 1:2:3:4:5:6:7:: ::2:3:4:5:6:7:8 25 25\r\n", 0,
	    "1:2:3:4:5:6:7:0", "0:2:3:4:5:6:7:8", 25, 25 },
	{ "PROXY TCP6 1:2:3:4:5:6:1.2.3.4 ::1.2.3.4 25 25\r\n", 0,
	    "1:2:3:4:5:6:102:304", "::102:304", 25, 25 },
	{ "PROXY TCP6 1::5:6:1.2.3.4 1:2:3:4:5::0.0.0.0 25 25\r\n", 0,
	    "1::5:6:102:304", "1:2:3:4:5::", 25, 25 },
	/* The longest possible TCP6 line: 104 bytes. */
	{ "PROXY TCP6 " FULL6 " " FULL6 " 65535 65535\r\n", 0,
	    FULL6, FULL6, 65535, 65535 },
	{ "PROXY UNKNOWN\r\n", 1, NULL, NULL, 0, 0 },
	{ "PROXY UNKNOWN " FULL6 " " FULL6 " 65535 65535\r\n", 1,
	    NULL, NULL, 0, 0 },
	{ "PROXY UNKNOWN  what ever\t\x01\xff\r\n", 1, NULL, NULL, 0, 0 },
	/* Exactly 107 bytes. */
	{ "PROXY UNKNOWN "
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxx\r\n", 1, NULL, NULL, 0, 0 },
};

static void
test_v1_ok(void)
{
	struct sockaddr_storage	 src, dst;
	struct proxy_hdr	 h;
	char			 buf[256];
	size_t			 i, n;

	for (i = 0; i < NROWS(v1_ok_rows); i++) {
		const struct v1_ok_row *r = &v1_ok_rows[i];

		n = strlen(r->in);
		ASSERT_TRUE(n <= 107);
		memset(&h, 0xa5, sizeof(h));
		ASSERT_EQ(proxy_parse(r->in, n, &h), PROXY_OK);
		ASSERT_EQ(h.len, n);
		ASSERT_EQ(h.local, r->local);
		if (!r->local) {
			mkaddr(&src, r->src, r->sport);
			mkaddr(&dst, r->dst, r->dport);
			ASSERT_TRUE(addr_eq(&h.src, &src));
			ASSERT_TRUE(addr_eq(&h.dst, &dst));
		}
		ASSERT_EQ(prefixes_again(r->in, n), 0);

		/* SMTP that follows in the same read is not eaten. */
		memcpy(buf, r->in, n);
		memcpy(buf + n, "EHLO x\r\n", 8);
		ASSERT_EQ(proxy_parse(buf, n + 8, &h), PROXY_OK);
		ASSERT_EQ(h.len, n);
		UNIT_ROW("v1 ok row %zu", i);
	}
}

struct bad_row {
	const char	*in;
	size_t		 at;	/* first length that is INVALID */
};

#define V1_HEAD	"PROXY TCP4 1.2.3.4 5.6.7.8 "	/* 27 bytes */

static const struct bad_row v1_bad_rows[] = {
	{ "EHLO x\r\n", 1 },
	{ "HELO x\r\n", 1 },
	{ "GET / HTTP/1.0\r\n", 1 },
	{ "\x00PROXY", 1 },
	{ " PROXY TCP4", 1 },
	{ "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", 1 },
	{ "PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", 7 },
	{ "PROXYTCP4", 6 },
	{ "PROXY\tTCP4", 6 },
	{ "PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", 7 },
	{ "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", 10 },
	{ "PROXY TCP44 1.2.3.4", 11 },
	{ "PROXY UNKNOWNX\r\n", 14 },
	{ "PROXY UNKNOWN\n", 14 },
	{ "PROXY UNKNOWN\rX", 15 },
	{ "PROXY\r\n", 6 },
	{ "PROXY TCP4\r\n", 11 },
	{ "PROXY TCP4 1.2.3.4 5.6.7.8\r\n", 27 },
	{ "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", 20 },
	{ "PROXY TCP4 1.2.3.4 5.6.7.8  1 2\r\n", 28 },
	{ "PROXY TCP4 1.2.3.4 5.6.7.8 1  2\r\n", 30 },
	/* Addresses. */
	{ "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", 17 },
	{ "PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n", 19 },
	{ "PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n", 19 },
	{ "PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", 20 },
	{ "PROXY TCP4 1.2.3.1000 5.6.7.8 1 2\r\n", 21 },
	{ "PROXY TCP4 1..2.3 5.6.7.8 1 2\r\n", 14 },
	{ "PROXY TCP4 .1.2.3 5.6.7.8 1 2\r\n", 12 },
	{ "PROXY TCP4 ::1 5.6.7.8 1 2\r\n", 12 },
	{ "PROXY TCP4 1.2.3.4 ::1 1 2\r\n", 20 },
	{ "PROXY TCP4 1.2.3.x 5.6.7.8 1 2\r\n", 18 },
	{ "PROXY TCP6 1.2.3.4 ::1 1 2\r\n", 13 },
	{ "PROXY TCP6 ::1 1.2.3.4 1 2\r\n", 17 },
	{ "PROXY TCP6 1:::2 ::1 1 2\r\n", 15 },
	{ ":::", 1 },
	{ "PROXY TCP6 :1::2 ::1 1 2\r\n", 13 },
	{ "PROXY TCP6 1::2::3 ::1 1 2\r\n", 17 },
	{ "PROXY TCP6 12345::1 ::1 1 2\r\n", 16 },
	{ "PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n", 27 },
	{ "PROXY TCP6 1:2:3:4:5:6:7:8:: ::1 1 2\r\n", 27 },
	{ "PROXY TCP6 1:2:3:4:5:6:7::8 ::1 1 2\r\n", 27 },
	{ "PROXY TCP6 1:2:3:4:5:6:7 ::1 1 2\r\n", 25 },
	{ "PROXY TCP6 1:2:3:4:5:6:7: ::1 1 2\r\n", 26 },
	{ "PROXY TCP6 1:2:3:4:5:6:7:1.2.3.4 ::1 1 2\r\n", 27 },
	{ "PROXY TCP6 1:2:3:4:5:6::1.2.3.4 ::1 1 2\r\n", 26 },
	{ "PROXY TCP6 ::1.2.3.4:5 ::1 1 2\r\n", 21 },
	{ "PROXY TCP6 ::a.2.3.4 ::1 1 2\r\n", 15 },
	{ "PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", 19 },
	{ "PROXY TCP6 [::1] ::1 1 2\r\n", 12 },
	/* Ports. */
	{ V1_HEAD "65536 25\r\n", 32 },
	{ V1_HEAD "99999 25\r\n", 32 },
	{ V1_HEAD "025 25\r\n", 29 },
	{ V1_HEAD "00 25\r\n", 29 },
	{ V1_HEAD "+25 25\r\n", 28 },
	{ V1_HEAD "-1 25\r\n", 28 },
	{ V1_HEAD "25 0x19\r\n", 32 },
	{ V1_HEAD "25 \r\n", 31 },
	{ V1_HEAD "25\r\n", 30 },
	{ V1_HEAD "25 25 \r\n", 33 },
	{ V1_HEAD "25 25 25\r\n", 33 },
	{ V1_HEAD "25 25\n", 33 },
	{ V1_HEAD "25 25\rX", 34 },
	{ V1_HEAD "25 25\r\r\n", 34 },
	/* 108 bytes: the CR would be the 107th byte. */
	{ "PROXY UNKNOWN "
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxx\r\n", 106 },
	{ "PROXY UNKNOWN\xe2\x80\x8b\r\n", 14 },
};

static void
test_v1_bad(void)
{
	char	big[400];
	size_t	i;

	for (i = 0; i < NROWS(v1_bad_rows); i++) {
		check_invalid_at(v1_bad_rows[i].in, strlen(v1_bad_rows[i].in),
		    v1_bad_rows[i].at);
		UNIT_ROW("v1 bad row %zu \"%s\"", i, v1_bad_rows[i].in);
	}

	/* A long line with no CR at all is refused by byte 106. */
	memset(big, 'x', sizeof(big));
	memcpy(big, "PROXY UNKNOWN ", 14);
	check_invalid_at(big, sizeof(big), 106);

	/* A NUL inside the row tables would cut them: test it here. */
	check_invalid_at("PROXY TCP4 1.2.3.4\0", 19, 19);
	check_invalid_at("PROXY UNKNOWN\0\r\n", 16, 14);
}

/* ---- v2 ---- */

static size_t
v2_build(unsigned char *b, unsigned cmd, unsigned fam, const void *payload,
    size_t plen)
{
	memcpy(b, sig, 12);
	b[12] = (unsigned char)cmd;
	b[13] = (unsigned char)fam;
	b[14] = (unsigned char)(plen >> 8);
	b[15] = (unsigned char)plen;
	memcpy(b + 16, payload, plen);
	return 16 + plen;
}

/* 192.0.2.1:12345 -> 192.0.2.2:25 */
static const unsigned char tcp4_block[12] = {
	192, 0, 2, 1, 192, 0, 2, 2, 0x30, 0x39, 0, 25
};

/* 2001:db8::1:12345 -> 2001:db8::2:25 */
static const unsigned char tcp6_block[36] = {
	0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
	0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
	0x30, 0x39, 0, 25
};

/* The bitwise CRC32C of RFC 3720 Appendix B.4, written for the test. */
static uint32_t
test_crc32c(const unsigned char *p, size_t n)
{
	uint32_t	c = 0xffffffffU;
	size_t		i;
	int		k;

	for (i = 0; i < n; i++) {
		c ^= p[i];
		for (k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ 0x82f63b78U : c >> 1;
	}
	return c ^ 0xffffffffU;
}

/* Append a TLV to a v2 header built by v2_build, fixing its length. */
static size_t
v2_add_tlv(unsigned char *b, size_t n, unsigned type, const void *v,
    size_t vl)
{
	size_t	plen;

	b[n] = (unsigned char)type;
	b[n + 1] = (unsigned char)(vl >> 8);
	b[n + 2] = (unsigned char)vl;
	memcpy(b + n + 3, v, vl);
	n += 3 + vl;
	plen = n - 16;
	b[14] = (unsigned char)(plen >> 8);
	b[15] = (unsigned char)plen;
	return n;
}

/* Add a CRC32C TLV over the whole header and fill it in. */
static size_t
v2_add_crc(unsigned char *b, size_t n)
{
	uint32_t	c;

	n = v2_add_tlv(b, n, 0x03, "\0\0\0\0", 4);
	c = test_crc32c(b, n);
	b[n - 4] = (unsigned char)(c >> 24);
	b[n - 3] = (unsigned char)(c >> 16);
	b[n - 2] = (unsigned char)(c >> 8);
	b[n - 1] = (unsigned char)c;
	return n;
}

static void
check_v2_ok(const unsigned char *b, size_t n, int fam6)
{
	struct sockaddr_storage	src, dst;
	struct proxy_hdr	h;

	mkaddr(&src, fam6 ? "2001:db8::1" : "192.0.2.1", 12345);
	mkaddr(&dst, fam6 ? "2001:db8::2" : "192.0.2.2", 25);
	ASSERT_EQ(proxy_parse(b, n, &h), PROXY_OK);
	ASSERT_EQ(h.len, n);
	ASSERT_EQ(h.local, 0);
	ASSERT_TRUE(addr_eq(&h.src, &src));
	ASSERT_TRUE(addr_eq(&h.dst, &dst));
	ASSERT_EQ(prefixes_again(b, n), 0);
}

static void
test_v2(void)
{
	static const unsigned char ehlo[] = "EHLO x\r\n";
	unsigned char		b[2048], big[1100];
	struct proxy_hdr	h;
	size_t			n, i;
	unsigned		f;

	/* The CRC helper itself: the standard check value. */
	ASSERT_EQ(test_crc32c((const unsigned char *)"123456789", 9),
	    0xe3069283U);

	n = v2_build(b, 0x21, 0x11, tcp4_block, 12);
	check_v2_ok(b, n, 0);
	memcpy(b + n, ehlo, 8);
	ASSERT_EQ(proxy_parse(b, n + 8, &h), PROXY_OK);
	ASSERT_EQ(h.len, n);

	n = v2_build(b, 0x21, 0x21, tcp6_block, 36);
	check_v2_ok(b, n, 1);

	/* TLVs are skipped: NOOP, an empty one, an SSL one. */
	n = v2_build(b, 0x21, 0x11, tcp4_block, 12);
	n = v2_add_tlv(b, n, 0x04, "pad", 3);
	n = v2_add_tlv(b, n, 0xe0, "", 0);
	n = v2_add_tlv(b, n, 0x20, "\x01\0\0\0\0\x21\0\x07TLSv1.3", 15);
	check_v2_ok(b, n, 0);

	/* CRC32C: good, bad value, a covered byte changed, bad length. */
	n = v2_build(b, 0x21, 0x21, tcp6_block, 36);
	n = v2_add_tlv(b, n, 0x02, "mx.example.org", 14);
	n = v2_add_crc(b, n);
	check_v2_ok(b, n, 1);
	b[n - 1] ^= 1;
	check_invalid_at(b, n, n);
	b[n - 1] ^= 1;
	b[16] ^= 0x80;
	check_invalid_at(b, n, n);
	b[16] ^= 0x80;
	ASSERT_EQ(proxy_parse(b, n, &h), PROXY_OK);

	n = v2_build(b, 0x21, 0x11, tcp4_block, 12);
	n = v2_add_crc(b, n);
	n = v2_add_tlv(b, n, 0x04, "after", 5);	/* outside the CRC */
	check_invalid_at(b, n, n);
	n = v2_build(b, 0x21, 0x11, tcp4_block, 12);
	n = v2_add_tlv(b, n, 0x04, "before", 6);
	n = v2_add_crc(b, n);
	check_v2_ok(b, n, 0);
	n = v2_add_tlv(b, n, 0x03, "\0\0\0\0", 4);	/* a second CRC */
	check_invalid_at(b, n, n);
	n = v2_build(b, 0x21, 0x11, tcp4_block, 12);
	n = v2_add_tlv(b, n, 0x03, "\0\0\0", 3);
	check_invalid_at(b, n, n);

	/* TLVs that do not fit the length. */
	n = v2_build(b, 0x21, 0x11, tcp4_block, 12);
	n = v2_add_tlv(b, n, 0x04, "abcd", 4);
	b[n - 5] = 5;			/* claims 5, has 4 */
	check_invalid_at(b, n, n);
	n = v2_build(b, 0x21, 0x11, tcp4_block, 12);
	memcpy(b + n, "\x04\x00", 2);	/* 2 bytes: no room for a TLV */
	b[15] += 2;
	check_invalid_at(b, n + 2, n + 2);

	/* LOCAL: any family, payload skipped, no addresses. */
	n = v2_build(b, 0x20, 0x00, "", 0);
	ASSERT_EQ(proxy_parse(b, n, &h), PROXY_OK);
	ASSERT_EQ(h.local, 1);
	ASSERT_EQ(h.len, 16);
	ASSERT_EQ(prefixes_again(b, n), 0);
	n = v2_build(b, 0x20, 0x11, tcp4_block, 12);
	ASSERT_EQ(proxy_parse(b, n, &h), PROXY_OK);
	ASSERT_EQ(h.local, 1);
	ASSERT_EQ(h.len, 28);
	n = v2_build(b, 0x20, 0x31, tcp6_block, 36);
	ASSERT_EQ(proxy_parse(b, n, &h), PROXY_OK);
	ASSERT_EQ(h.local, 1);
	ASSERT_EQ(h.len, 52);

	/* Signature: each byte wrong is noticed at that byte. */
	for (i = 1; i < 12; i++) {
		n = v2_build(b, 0x21, 0x11, tcp4_block, 12);
		b[i] ^= 0x40;
		check_invalid_at(b, n, i + 1);
		UNIT_ROW("v2 signature byte %zu", i);
	}
	check_invalid_at("\r\nEHLO x\r\n", 10, 3);
	check_invalid_at("\r\r", 2, 2);

	/* Version and command. */
	for (f = 0; f < 256; f++) {
		if (f == 0x20 || f == 0x21)
			continue;
		n = v2_build(b, f, 0x11, tcp4_block, 12);
		check_invalid_at(b, n, 13);
		UNIT_ROW("v2 ver/cmd 0x%02x", f);
	}

	/* Families other than TCP over IPv4/IPv6 with PROXY. */
	for (f = 0; f < 256; f++) {
		if (f == 0x11 || f == 0x21)
			continue;
		n = v2_build(b, 0x21, f, tcp6_block, 36);
		check_invalid_at(b, n, 14);
		UNIT_ROW("v2 family 0x%02x", f);
	}

	/* Lengths: too short for the addresses, over our bound. */
	n = v2_build(b, 0x21, 0x11, tcp4_block, 11);
	check_invalid_at(b, n, 16);
	n = v2_build(b, 0x21, 0x21, tcp6_block, 35);
	check_invalid_at(b, n, 16);
	n = v2_build(b, 0x21, 0x21, tcp4_block, 12);
	check_invalid_at(b, n, 16);
	memset(big, 0, sizeof(big));
	memcpy(big, tcp4_block, 12);
	big[12] = 0x04;			/* one NOOP TLV to the end */
	big[13] = (1024 - 15) >> 8;
	big[14] = (1024 - 15) & 0xff;
	n = v2_build(b, 0x21, 0x11, big, 1024);
	check_v2_ok(b, n, 0);
	big[14]++;
	n = v2_build(b, 0x21, 0x11, big, 1025);
	check_invalid_at(b, n, 16);
	n = v2_build(b, 0x20, 0x00, big, 1025);
	check_invalid_at(b, n, 16);
	b[14] = 0xff;
	b[15] = 0xff;
	check_invalid_at(b, 16, 16);
}

/* ---- encode -> parse ---- */

/* Find TLV type t in b[off..end); its value and length, or NULL. */
static const unsigned char *
tlv_find(const unsigned char *b, size_t off, size_t end, unsigned t,
    size_t *vl)
{
	size_t	l;

	while (off + 3 <= end) {
		l = (size_t)b[off + 1] << 8 | b[off + 2];
		if (off + 3 + l > end)
			return NULL;
		if (b[off] == t) {
			*vl = l;
			return b + off + 3;
		}
		off += 3 + l;
	}
	return NULL;
}

static void
check_tlv_str(const unsigned char *b, size_t off, size_t end, unsigned t,
    const char *want)
{
	const unsigned char	*v;
	size_t			 vl = 0;

	v = tlv_find(b, off, end, t, &vl);
	if (want == NULL) {
		ASSERT_TRUE(v == NULL);
		return;
	}
	ASSERT_TRUE(v != NULL);
	if (v != NULL)
		ASSERT_MEM_EQ(v, vl, want, strlen(want));
}

struct rt_row {
	const char	*src, *dst;
	unsigned	 sport, dport;
	const char	*want_src, *want_dst;	/* after mapping */
};

static const struct rt_row rt_rows[] = {
	{ "192.0.2.1", "192.0.2.2", 12345, 25, NULL, NULL },
	{ "0.0.0.0", "255.255.255.255", 0, 65535, NULL, NULL },
	{ "2001:db8::1", "2001:db8::2", 40000, 587, NULL, NULL },
	{ FULL6, "::", 65535, 0, NULL, NULL },
	{ "::ffff:192.0.2.1", "::1", 1, 2, NULL, NULL },
	{ "192.0.2.1", "2001:db8::2", 1025, 25,
	    "::ffff:192.0.2.1", NULL },
	{ "2001:db8::1", "192.0.2.2", 1025, 25,
	    NULL, "::ffff:192.0.2.2" },
};

static void
test_roundtrip(void)
{
	struct sockaddr_storage	 src, dst, wsrc, wdst;
	struct proxy_tls	 tls = { "TLSv1.3", "TLS_AES_256_GCM_SHA384",
				     "client.example.net", "mx.example.org", 1 };
	const struct proxy_tls	*tp;
	struct proxy_hdr	 h;
	unsigned char		 out[PROXY_HDR_MAX], *ssl;
	size_t			 i, n, ab, sl = 0;
	int			 v, t;

	for (i = 0; i < NROWS(rt_rows); i++) {
		const struct rt_row *r = &rt_rows[i];

		mkaddr(&src, r->src, r->sport);
		mkaddr(&dst, r->dst, r->dport);
		mkaddr(&wsrc, r->want_src ? r->want_src : r->src, r->sport);
		mkaddr(&wdst, r->want_dst ? r->want_dst : r->dst, r->dport);
		for (v = 1; v <= 2; v++) {
			for (t = 0; t < 2; t++) {
				tp = t ? &tls : NULL;
				n = proxy_encode(v, (struct sockaddr *)&src,
				    (struct sockaddr *)&dst, tp, out,
				    sizeof(out));
				ASSERT_TRUE(n > 0);
				ASSERT_EQ(proxy_parse(out, n, &h), PROXY_OK);
				ASSERT_EQ(h.len, n);
				ASSERT_EQ(h.local, 0);
				ASSERT_TRUE(addr_eq(&h.src, &wsrc));
				ASSERT_TRUE(addr_eq(&h.dst, &wdst));
				ASSERT_EQ(prefixes_again(out, n), 0);
				/* One byte short of room: nothing. */
				ASSERT_EQ(proxy_encode(v,
				    (struct sockaddr *)&src,
				    (struct sockaddr *)&dst, tp, out, n - 1),
				    0);
				if (v == 1)
					ASSERT_TRUE(n <= 107);
				if (v != 2)
					continue;
				ab = wsrc.ss_family == AF_INET ? 12 : 36;
				if (!t) {
					ASSERT_EQ(n, 16 + ab);
					continue;
				}
				check_tlv_str(out, 16 + ab, n, 0x02,
				    "mx.example.org");
				ssl = (unsigned char *)tlv_find(out, 16 + ab,
				    n, 0x20, &sl);
				ASSERT_TRUE(ssl != NULL && sl >= 5);
				if (ssl == NULL || sl < 5)
					continue;
				ASSERT_EQ(ssl[0], 0x07);	/* SSL|CONN|SESS */
				ASSERT_MEM_EQ(ssl + 1, 4, "\0\0\0\0", 4);
				check_tlv_str(ssl, 5, sl, 0x21, "TLSv1.3");
				check_tlv_str(ssl, 5, sl, 0x22,
				    "client.example.net");
				check_tlv_str(ssl, 5, sl, 0x23,
				    "TLS_AES_256_GCM_SHA384");
			}
		}
		UNIT_ROW("round trip row %zu %s -> %s", i, r->src, r->dst);
	}

	/* The exact v1 text. */
	mkaddr(&src, "192.0.2.1", 12345);
	mkaddr(&dst, "192.0.2.2", 25);
	n = proxy_encode(1, (struct sockaddr *)&src, (struct sockaddr *)&dst,
	    NULL, out, sizeof(out));
	ASSERT_MEM_EQ(out, n, "PROXY TCP4 192.0.2.1 192.0.2.2 12345 25\r\n",
	    41);
	mkaddr(&src, "2001:db8::1", 12345);
	mkaddr(&dst, "2001:db8::2", 25);
	n = proxy_encode(1, (struct sockaddr *)&src, (struct sockaddr *)&dst,
	    NULL, out, sizeof(out));
	ASSERT_MEM_EQ(out, n,
	    "PROXY TCP6 2001:db8::1 2001:db8::2 12345 25\r\n", 45);

	/* The exact v2 bytes without TLVs. */
	mkaddr(&src, "192.0.2.1", 12345);
	mkaddr(&dst, "192.0.2.2", 25);
	n = proxy_encode(2, (struct sockaddr *)&src, (struct sockaddr *)&dst,
	    NULL, out, sizeof(out));
	ASSERT_EQ(n, 28);
	ASSERT_MEM_EQ(out, 12, sig, 12);
	ASSERT_MEM_EQ(out + 12, 4, "\x21\x11\x00\x0c", 4);
	ASSERT_MEM_EQ(out + 16, 12, tcp4_block, 12);

	/* No client certificate: bits SSL only, verify non-zero; absent
	 * and empty strings are not sent. */
	tls.client_cert_verified = 0;
	tls.client_cn = NULL;
	tls.sni = "";
	n = proxy_encode(2, (struct sockaddr *)&src, (struct sockaddr *)&dst,
	    &tls, out, sizeof(out));
	ASSERT_EQ(proxy_parse(out, n, &h), PROXY_OK);
	check_tlv_str(out, 28, n, 0x02, NULL);
	ssl = (unsigned char *)tlv_find(out, 28, n, 0x20, &sl);
	ASSERT_TRUE(ssl != NULL);
	if (ssl != NULL) {
		ASSERT_EQ(ssl[0], 0x01);
		ASSERT_TRUE(memcmp(ssl + 1, "\0\0\0\0", 4) != 0);
		check_tlv_str(ssl, 5, sl, 0x22, NULL);
		check_tlv_str(ssl, 5, sl, 0x21, "TLSv1.3");
	}

	/* Not IP addresses (or none): v1 UNKNOWN, v2 LOCAL. */
	n = proxy_encode(1, NULL, (struct sockaddr *)&dst, NULL, out,
	    sizeof(out));
	ASSERT_MEM_EQ(out, n, "PROXY UNKNOWN\r\n", 15);
	n = proxy_encode(2, (struct sockaddr *)&src, NULL, &tls, out,
	    sizeof(out));
	ASSERT_EQ(n, 16);
	ASSERT_EQ(proxy_parse(out, n, &h), PROXY_OK);
	ASSERT_EQ(h.local, 1);
	ASSERT_EQ(proxy_encode(3, (struct sockaddr *)&src,
	    (struct sockaddr *)&dst, NULL, out, sizeof(out)), 0);
}

/* The largest strings still fit; longer ones are left out, not cut. */
static void
test_tlv_caps(void)
{
	struct sockaddr_storage	 src, dst;
	struct proxy_tls	 tls;
	struct proxy_hdr	 h;
	unsigned char		 out[PROXY_HDR_MAX], *ssl;
	char			 sni[257], cn[257], ver[34], ciph[66];
	size_t			 n, sl = 0;

	mkaddr(&src, FULL6, 65535);
	mkaddr(&dst, FULL6, 65535);
	memset(sni, 's', 255);
	sni[255] = '\0';
	memset(cn, 'c', 255);
	cn[255] = '\0';
	memset(ver, 'v', 32);
	ver[32] = '\0';
	memset(ciph, 'x', 64);
	ciph[64] = '\0';
	tls.sni = sni;
	tls.client_cn = cn;
	tls.version = ver;
	tls.cipher = ciph;
	tls.client_cert_verified = 1;
	n = proxy_encode(2, (struct sockaddr *)&src, (struct sockaddr *)&dst,
	    &tls, out, sizeof(out));
	ASSERT_TRUE(n > 0 && n <= PROXY_HDR_MAX);
	ASSERT_EQ(proxy_parse(out, n, &h), PROXY_OK);
	ASSERT_EQ(h.len, n);
	check_tlv_str(out, 52, n, 0x02, sni);
	ssl = (unsigned char *)tlv_find(out, 52, n, 0x20, &sl);
	ASSERT_TRUE(ssl != NULL);
	if (ssl != NULL) {
		check_tlv_str(ssl, 5, sl, 0x21, ver);
		check_tlv_str(ssl, 5, sl, 0x22, cn);
		check_tlv_str(ssl, 5, sl, 0x23, ciph);
	}

	sni[255] = 's';
	sni[256] = '\0';
	cn[255] = 'c';
	cn[256] = '\0';
	ver[32] = 'v';
	ver[33] = '\0';
	ciph[64] = 'x';
	ciph[65] = '\0';
	n = proxy_encode(2, (struct sockaddr *)&src, (struct sockaddr *)&dst,
	    &tls, out, sizeof(out));
	ASSERT_EQ(proxy_parse(out, n, &h), PROXY_OK);
	check_tlv_str(out, 52, n, 0x02, NULL);
	ssl = (unsigned char *)tlv_find(out, 52, n, 0x20, &sl);
	ASSERT_TRUE(ssl != NULL);
	ASSERT_EQ(sl, 5);
}

/* ---- xtext and XCLIENT ---- */

struct xt_row {
	const char	*in;
	size_t		 inlen;
	const char	*want;
};

static const struct xt_row xt_rows[] = {
	{ "a b+c=d\r\n", 9, "a+20b+2Bc+3Dd+0D+0A" },
	{ "plain", 5, "plain" },
	{ "!~[]<>@:", 8, "!~[]<>@:" },
	{ "a\0b", 3, "a+00b" },
	{ "\x7f\x80\xff\t", 4, "+7F+80+FF+09" },
	{ "", 0, "" },
};

static void
test_xtext(void)
{
	char	out[64];
	size_t	i, n;

	for (i = 0; i < NROWS(xt_rows); i++) {
		memset(out, 'Z', sizeof(out));
		n = xtext_encode(xt_rows[i].in, xt_rows[i].inlen, out,
		    sizeof(out));
		ASSERT_EQ(n, strlen(xt_rows[i].want));
		ASSERT_STR_EQ(out, xt_rows[i].want);
		/* Exactly enough room, then one byte less. */
		n = strlen(xt_rows[i].want);
		ASSERT_EQ(xtext_encode(xt_rows[i].in, xt_rows[i].inlen, out,
		    n + 1), n);
		if (n > 0) {
			ASSERT_EQ(xtext_encode(xt_rows[i].in,
			    xt_rows[i].inlen, out, n), 0);
			ASSERT_STR_EQ(out, "");
		}
		UNIT_ROW("xtext row %zu", i);
	}
	ASSERT_EQ(xtext_encode("a", 1, out, 0), 0);
}

/*
 * The shape of an XCLIENT line: "XCLIENT" then " KEY=value" items;
 * printable ASCII only; values without space, '=' or a '+' that is not
 * "+XX" in upper-case hex.  Returns 0 when good.
 */
static int
xclient_shape(const char *s, size_t n)
{
	size_t	i;
	int	in_val = 0;

	if (n > 510 || strlen(s) != n || strncmp(s, "XCLIENT", 7) != 0)
		return 1;
	for (i = 7; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c > 0x7e)
			return 2;
		if (c == ' ') {
			in_val = 0;
			continue;
		}
		if (!in_val) {
			if (c == '=')
				in_val = 1;
			else if (c < 'A' || c > 'Z')
				return 3;
			continue;
		}
		if (c == '=')
			return 4;
		if (c == '+') {
			if (i + 2 >= n || !strchr("0123456789ABCDEF",
			    s[i + 1]) || !strchr("0123456789ABCDEF", s[i + 2]))
				return 5;
			i += 2;
		}
	}
	return 0;
}

static void
test_xclient(void)
{
	char	out[1024], huge[2000], name[600];
	size_t	n, i, k;
	unsigned long	seed = 12345;

	n = xclient_line("1.2.3.4", "25", "[UNAVAILABLE]", "x", "ESMTP", out,
	    sizeof(out));
	ASSERT_STR_EQ(out,
	    "XCLIENT ADDR=1.2.3.4 PORT=25 NAME=[UNAVAILABLE] HELO=x PROTO=ESMTP");
	ASSERT_EQ(n, strlen(out));

	xclient_line("2001:db8::1", "25", NULL, NULL, "SMTP", out,
	    sizeof(out));
	ASSERT_STR_EQ(out, "XCLIENT ADDR=IPV6:2001:db8::1 PORT=25 PROTO=SMTP");
	xclient_line("IPV6:2001:db8::1", NULL, NULL, NULL, NULL, out,
	    sizeof(out));
	ASSERT_STR_EQ(out, "XCLIENT ADDR=IPV6:2001:db8::1");
	n = xclient_line(NULL, NULL, NULL, NULL, NULL, out, sizeof(out));
	ASSERT_EQ(n, 7);
	ASSERT_STR_EQ(out, "XCLIENT");

	/* Hostile HELO: no CRLF, spaces or '=' reach the line. */
	n = xclient_line("1.2.3.4", "25", "[UNAVAILABLE]",
	    "evil\r\nRCPT TO:<a=b+c>", "ESMTP", out, sizeof(out));
	ASSERT_STR_EQ(out, "XCLIENT ADDR=1.2.3.4 PORT=25 NAME=[UNAVAILABLE] "
	    "HELO=evil+0D+0ARCPT+20TO:<a+3Db+2Bc> PROTO=ESMTP");
	ASSERT_EQ(xclient_shape(out, n), 0);

	/* A huge HELO is dropped, the rest stays. */
	memset(huge, 'h', sizeof(huge) - 1);
	huge[sizeof(huge) - 1] = '\0';
	n = xclient_line("192.0.2.1", "12345", "client.example.net", huge,
	    "ESMTP", out, sizeof(out));
	ASSERT_STR_EQ(out, "XCLIENT ADDR=192.0.2.1 PORT=12345 "
	    "NAME=client.example.net PROTO=ESMTP");
	ASSERT_EQ(xclient_shape(out, n), 0);

	/* A HELO that fits only before encoding is dropped too. */
	memset(huge, ' ', 200);
	huge[200] = '\0';
	n = xclient_line("192.0.2.1", "25", "n", huge, "ESMTP", out,
	    sizeof(out));
	ASSERT_STR_EQ(out, "XCLIENT ADDR=192.0.2.1 PORT=25 NAME=n PROTO=ESMTP");

	/* A HELO that just fits is kept: 510 bytes exactly. */
	k = 510 - strlen("XCLIENT ADDR=192.0.2.1 HELO=");
	memset(huge, 'h', k);
	huge[k] = '\0';
	n = xclient_line("192.0.2.1", NULL, NULL, huge, NULL, out,
	    sizeof(out));
	ASSERT_EQ(n, 510);
	huge[k] = 'h';
	huge[k + 1] = '\0';
	n = xclient_line("192.0.2.1", NULL, NULL, huge, NULL, out,
	    sizeof(out));
	ASSERT_STR_EQ(out, "XCLIENT ADDR=192.0.2.1");

	/* Long NAME and HELO: HELO goes first, NAME stays if it fits. */
	memset(huge, 'h', 300);
	huge[300] = '\0';
	memset(name, 'n', 300);
	name[300] = '\0';
	n = xclient_line("192.0.2.1", "25", name, huge, "ESMTP", out,
	    sizeof(out));
	ASSERT_TRUE(strstr(out, " HELO=") == NULL);
	ASSERT_TRUE(strstr(out, " NAME=nnn") != NULL);
	ASSERT_TRUE(strstr(out, " PROTO=ESMTP") != NULL);
	ASSERT_EQ(xclient_shape(out, n), 0);
	/* A NAME that can never fit goes; the HELO then fits and stays. */
	memset(name, 'n', 599);
	name[599] = '\0';
	n = xclient_line("192.0.2.1", "25", name, huge, "ESMTP", out,
	    sizeof(out));
	ASSERT_TRUE(strstr(out, " NAME=") == NULL);
	ASSERT_TRUE(strstr(out, " HELO=hhh") != NULL);
	ASSERT_EQ(n, strlen("XCLIENT ADDR=192.0.2.1 PORT=25 HELO= PROTO=ESMTP")
	    + 300);
	ASSERT_EQ(xclient_shape(out, n), 0);

	/* A small output buffer bounds the line too. */
	n = xclient_line("192.0.2.1", "25", NULL, NULL, NULL, out, 20);
	ASSERT_TRUE(n < 20);
	ASSERT_EQ(n, strlen(out));
	ASSERT_EQ(xclient_line("1.2.3.4", NULL, NULL, NULL, NULL, out, 8), 7);
	ASSERT_EQ(xclient_line("1.2.3.4", NULL, NULL, NULL, NULL, out, 7), 0);

	/* Random bytes in every value: the line keeps its shape. */
	for (i = 0; i < 2000; i++) {
		char	v[5][200];
		size_t	j, l;

		for (j = 0; j < 5; j++) {
			seed = seed * 6364136223846793005UL + 1442695040888963407UL;
			l = (seed >> 33) % (i % 3 == 0 ? 199 : 40);
			for (k = 0; k < l; k++) {
				seed = seed * 6364136223846793005UL +
				    1442695040888963407UL;
				v[j][k] = (char)(1 + (seed >> 40) % 255);
			}
			v[j][l] = '\0';
		}
		n = xclient_line(v[0], v[1], v[2], v[3], v[4], out,
		    sizeof(out));
		ASSERT_EQ(xclient_shape(out, n), 0);
		ASSERT_TRUE(memchr(out, '\r', n) == NULL &&
		    memchr(out, '\n', n) == NULL && memchr(out, '\0', n) == NULL);
		UNIT_ROW("xclient random %zu", i);
	}
}

int
main(void)
{
	test_v1_ok();
	test_v1_bad();
	test_v2();
	test_roundtrip();
	test_tlv_caps();
	test_xtext();
	test_xclient();
	return unit_done();
}
