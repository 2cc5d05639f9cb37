/*
 * fuzz_proxyproto - PROXY header parsing over arbitrary bytes, plus the
 * encoders fed from the same bytes.
 *
 * Checked for every input: the verdict never changes back (a prefix that
 * is INVALID stays INVALID with more bytes; every prefix of an accepted
 * header is AGAIN); an accepted header's addresses, re-encoded as v1 and
 * as v2 (with TLS TLVs made of input bytes), parse back to the same
 * addresses; xtext and XCLIENT output never holds CR, LF, NUL or space
 * inside a value, and the XCLIENT line stays within 510 bytes.
 */
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxyproto.h"

#define CHECK(c)	do { if (!(c)) abort(); } while (0)

static int
same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	const struct sockaddr_in	*a4 = (const void *)a, *b4 = (const void *)b;
	const struct sockaddr_in6	*a6 = (const void *)a, *b6 = (const void *)b;

	if (a->ss_family != b->ss_family)
		return 0;
	if (a->ss_family == AF_INET)
		return a4->sin_port == b4->sin_port &&
		    memcmp(&a4->sin_addr, &b4->sin_addr, 4) == 0;
	return a->ss_family == AF_INET6 && a6->sin6_port == b6->sin6_port &&
	    memcmp(&a6->sin6_addr, &b6->sin6_addr, 16) == 0;
}

/* A NUL-terminated string of up to max bytes cut from the input. */
static void
take_str(const uint8_t **d, size_t *n, char *out, size_t max)
{
	size_t	l = 0;

	if (*n > 0) {
		l = **d % (max + 1);
		(*d)++;
		(*n)--;
	}
	if (l > *n)
		l = *n;
	memcpy(out, *d, l);
	out[l] = '\0';
	*d += l;
	*n -= l;
}

static void
check_reencode(const struct proxy_hdr *h, const uint8_t *d, size_t n)
{
	struct proxy_tls	 tls;
	struct proxy_hdr	 h2;
	unsigned char		 out[PROXY_HDR_MAX];
	char			 ver[40], ciph[80], cn[300], sni[300];
	size_t			 len;
	int			 v;

	take_str(&d, &n, ver, 36);
	take_str(&d, &n, ciph, 70);
	take_str(&d, &n, cn, 260);
	take_str(&d, &n, sni, 260);
	tls.version = ver;
	tls.cipher = ciph;
	tls.client_cn = cn;
	tls.sni = sni;
	tls.client_cert_verified = n > 0 && (d[0] & 1);

	for (v = 1; v <= 2; v++) {
		len = proxy_encode(v, (const struct sockaddr *)&h->src,
		    (const struct sockaddr *)&h->dst, v == 2 ? &tls : NULL,
		    out, sizeof(out));
		CHECK(len > 0 && len <= sizeof(out));
		CHECK(proxy_parse(out, len, &h2) == PROXY_OK);
		CHECK(h2.len == len && h2.local == 0);
		CHECK(same_addr(&h->src, &h2.src));
		CHECK(same_addr(&h->dst, &h2.dst));
		CHECK(proxy_parse(out, len - 1, &h2) == PROXY_AGAIN);
		CHECK(proxy_encode(v, (const struct sockaddr *)&h->src,
		    (const struct sockaddr *)&h->dst, v == 2 ? &tls : NULL,
		    out, len - 1) == 0);
	}
}

static void
check_xclient(const uint8_t *d, size_t n)
{
	char	vals[5][200], enc[700], line[600];
	size_t	i, len;
	int	in_val = 0;

	for (i = 0; i < 5; i++)
		take_str(&d, &n, vals[i], 199);

	len = xtext_encode(vals[3], strlen(vals[3]), enc, sizeof(enc));
	CHECK(len == strlen(enc));
	for (i = 0; i < len; i++)
		CHECK(enc[i] > ' ' && enc[i] <= '~' && enc[i] != '=');

	len = xclient_line(vals[0], vals[1], vals[2], vals[3], vals[4], line,
	    sizeof(line));
	CHECK(len >= 7 && len <= 510 && len == strlen(line));
	CHECK(memcmp(line, "XCLIENT", 7) == 0);
	for (i = 7; i < len; i++) {
		CHECK(line[i] >= ' ' && line[i] <= '~');
		if (line[i] == ' ')
			in_val = 0;
		else if (line[i] == '=') {
			CHECK(!in_val);
			in_val = 1;
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_hdr	h, h2;
	enum proxy_parse	r, r2;
	size_t			k, lim;

	r = proxy_parse(data, size, &h);
	if (r == PROXY_OK) {
		CHECK(h.len > 0 && h.len <= size);
		CHECK(h.len <= 107 || data[0] == '\r');
		CHECK(h.len <= 16 + 1024);
		/* The header alone is the same header. */
		CHECK(proxy_parse(data, h.len, &h2) == PROXY_OK);
		CHECK(h2.len == h.len && h2.local == h.local);
		for (k = 0; k < h.len; k++)
			CHECK(proxy_parse(data, k, &h2) == PROXY_AGAIN);
		if (!h.local) {
			CHECK(h.src.ss_family == AF_INET ||
			    h.src.ss_family == AF_INET6);
			CHECK(h.src.ss_family == h.dst.ss_family);
			check_reencode(&h, data + h.len, size - h.len);
		}
	} else {
		/* A verdict is final: once INVALID, longer stays INVALID;
		 * AGAIN means every shorter prefix was AGAIN too. */
		lim = size < 1100 ? size : 1100;
		for (k = 0; k < lim; k++) {
			r2 = proxy_parse(data, k, &h2);
			CHECK(r2 != PROXY_OK);
			if (r == PROXY_AGAIN)
				CHECK(r2 == PROXY_AGAIN);
			else if (r2 == PROXY_INVALID)
				break;
		}
		if (r == PROXY_INVALID)
			for (; k < lim; k++)
				CHECK(proxy_parse(data, k, &h2) ==
				    PROXY_INVALID);
	}
	check_xclient(data, size);
	return 0;
}
