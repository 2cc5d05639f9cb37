/*
 * proxyproto - PROXY protocol headers: a strict incremental parser for
 * what a load balancer sends us, an encoder for what we send a backend,
 * and the xtext/XCLIENT text that a backend may get instead.
 *
 * The parser answers PROXY_AGAIN only while the bytes seen so far are a
 * prefix of some valid header, so a client that talks SMTP to a PROXY
 * listener is refused at its first byte, not when the caller's timer
 * fires.  It never reads past 107 bytes (v1) or 16 + 1024 bytes (v2).
 * v1 addresses go through our own grammar (dotted quads without leading
 * zeros; IPv6 groups with one "::" standing for at least one group)
 * before inet_pton() converts them, so prefix and whole-token checks
 * agree.  v2 TLVs are walked only to prove they fit; a CRC32C TLV is
 * verified with its field read as zero (the input is never written).
 *
 * The encoder writes a whole header or nothing.  TLV strings longer than
 * their cap are left out rather than cut (a cut CN or SNI would be a
 * different name), which keeps the worst case under PROXY_HDR_MAX.
 * XCLIENT values are xtext: no byte of untrusted input reaches the
 * backend as CR, LF, NUL, space, '+' or '='.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "proxyproto.h"
#include "wbuf.h"

#define V1_MAX		107	/* whole line, CRLF included */
#define V2_SIG_LEN	12
#define V2_HDR_LEN	16
#define V2_LEN_MAX	1024	/* our bound on the v2 length field */

#define PP2_CMD_LOCAL	0x20	/* version 2, LOCAL */
#define PP2_CMD_PROXY	0x21	/* version 2, PROXY */
#define PP2_FAM_UNSPEC	0x00
#define PP2_FAM_TCP4	0x11
#define PP2_FAM_TCP6	0x21

#define PP2_TYPE_AUTHORITY	0x02
#define PP2_TYPE_CRC32C		0x03
#define PP2_TYPE_SSL		0x20
#define PP2_SUBTYPE_SSL_VERSION	0x21
#define PP2_SUBTYPE_SSL_CN	0x22
#define PP2_SUBTYPE_SSL_CIPHER	0x23
#define PP2_CLIENT_SSL		0x01
#define PP2_CLIENT_CERT_CONN	0x02
#define PP2_CLIENT_CERT_SESS	0x04

/*
 * Caps on the strings we put in TLVs.  Worst case:
 * 16 + 36 + (3 + 255) + (3 + 1 + 4 + (3 + 32) + (3 + 255) + (3 + 64)) = 678.
 */
#define TLV_NAME_MAX	255	/* SNI, client CN */
#define TLV_VERSION_MAX	32
#define TLV_CIPHER_MAX	64

#define XCLIENT_MAX	512	/* command line, CRLF included */

static const unsigned char v2_sig[V2_SIG_LEN] = {
	'\r', '\n', '\r', '\n', '\0', '\r', '\n', 'Q', 'U', 'I', 'T', '\n'
};

/* A token is checked whole, or as the start of what may still come. */
enum tok_mode { TOK_PREFIX, TOK_FULL };

/* One end of a connection, family-normalised for encoding. */
struct pp_addr {
	int		 family;	/* AF_INET, AF_INET6 */
	unsigned char	 a[16];		/* AF_INET: the first 4 */
	uint16_t	 port;		/* host order */
};

static int
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static int
is_hex(int c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* s[0..n) is word (TOK_FULL) or a start of it (TOK_PREFIX). */
static int
word_text(const char *s, size_t n, const char *word, enum tok_mode m)
{
	size_t	wl = strlen(word);

	if (n > wl || (m == TOK_FULL && n != wl))
		return 0;
	return memcmp(s, word, n) == 0;
}

/* Four decimal octets 0..255, no leading zeros, no signs. */
static int
v4_text(const char *s, size_t n, enum tok_mode m)
{
	size_t		i, dots = 0, digits = 0;
	unsigned	val = 0;

	for (i = 0; i < n; i++) {
		if (s[i] == '.') {
			if (digits == 0 || ++dots == 4)
				return 0;
			digits = 0;
			val = 0;
		} else if (is_digit(s[i])) {
			if (digits == 1 && val == 0)
				return 0;
			val = val * 10 + (unsigned)(s[i] - '0');
			if (++digits > 3 || val > 255)
				return 0;
		} else
			return 0;
	}
	return m == TOK_PREFIX || (dots == 3 && digits > 0);
}

/*
 * Groups of 1..4 hex digits split by ':', eight in all; at most one "::",
 * standing for one or more zero groups; optionally a dotted quad as the
 * last two groups.  In TOK_PREFIX mode: could more text make it so?
 */
static int
v6_text(const char *s, size_t n, enum tok_mode m)
{
	size_t	i, groups = 0, hex = 0, need;
	int	dc = 0, sep = 0;

	if (n == 1 && s[0] == ':')
		return m == TOK_PREFIX;
	for (i = 0; i < n; i++) {
		if (s[i] == ':') {
			if (i > 0 && s[i - 1] == ':') {
				if (dc)
					return 0;	/* ":::" or a 2nd "::" */
				dc = 1;
				sep = 0;
			} else if (i == 0) {
				if (s[1] != ':')
					return 0;
			} else {
				groups++;
				hex = 0;
				sep = 1;
			}
		} else if (is_hex(s[i])) {
			if (++hex > 4)
				return 0;
			sep = 0;
		} else if (s[i] == '.') {
			/* The current group was the first octet: the tail
			 * takes two groups and nothing may follow it. */
			if (!v4_text(s + i - hex, n - (i - hex), m))
				return 0;
			return dc ? groups + 2 + 1 <= 8 : groups + 2 == 8;
		} else
			return 0;
		need = groups + (hex > 0) + (size_t)sep + (size_t)dc;
		if (need > 8)
			return 0;
	}
	if (m == TOK_PREFIX)
		return 1;
	if (sep)
		return 0;
	need = groups + (hex > 0);
	return dc ? need + 1 <= 8 : need == 8;
}

/* 0..65535, decimal, no leading zeros, no signs. */
static int
port_text(const char *s, size_t n, enum tok_mode m, unsigned *port)
{
	size_t		i;
	unsigned	v = 0;

	if (n == 0)
		return m == TOK_PREFIX;
	if (s[0] == '0' && n > 1)
		return 0;
	for (i = 0; i < n; i++) {
		if (!is_digit(s[i]))
			return 0;
		v = v * 10 + (unsigned)(s[i] - '0');
		if (v > 65535)
			return 0;
	}
	*port = v;
	return 1;
}

/* Check an address token; when whole, store it in ss. */
static int
v1_addr(const char *s, size_t n, int family, enum tok_mode m,
    struct sockaddr_storage *ss)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)ss;
	char			 tmp[INET6_ADDRSTRLEN];

	if (family == AF_INET ? !v4_text(s, n, m) : !v6_text(s, n, m))
		return 0;
	if (m == TOK_PREFIX)
		return 1;
	if (n >= sizeof(tmp))
		return 0;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	if (family == AF_INET) {
		sin->sin_family = AF_INET;
		return inet_pton(AF_INET, tmp, &sin->sin_addr) == 1;
	}
	sin6->sin6_family = AF_INET6;
	return inet_pton(AF_INET6, tmp, &sin6->sin6_addr) == 1;
}

static void
set_port(struct sockaddr_storage *ss, unsigned port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
}

/*
 * "PROXY" SP proto SP src SP dst SP sport SP dport CRLF, or
 * "PROXY UNKNOWN" [SP anything] CRLF.  The line is split on single
 * spaces; every token followed by a space must be whole, the one the
 * input stops in must be a possible start.
 */
static enum proxy_parse
v1_parse(const char *b, size_t len, struct proxy_hdr *h)
{
	struct proxy_hdr	 tmp;
	const char		*tok;
	size_t			 eol, p, start, tlen, field;
	int			 family = 0, cr = 0, complete = 0, last;
	unsigned		 sport = 0, dport = 0;
	enum tok_mode		 m;

	for (eol = 0; eol < len && eol < V1_MAX - 2; eol++)
		if (b[eol] == '\r' || b[eol] == '\n')
			break;
	if (eol < len) {
		/* A bare LF, or no room left for the CRLF. */
		if (b[eol] != '\r')
			return PROXY_INVALID;
		cr = 1;
		if (eol + 1 < len) {
			if (b[eol + 1] != '\n')
				return PROXY_INVALID;
			complete = 1;
		}
	}

	memset(&tmp, 0, sizeof(tmp));
	p = 0;
	for (field = 0; field < 6; field++) {
		start = p;
		while (p < eol && b[p] != ' ')
			p++;
		tok = b + start;
		tlen = p - start;
		last = p == eol;
		m = (last && !cr) ? TOK_PREFIX : TOK_FULL;

		switch (field) {
		case 0:
			if (!word_text(tok, tlen, "PROXY", m))
				return PROXY_INVALID;
			break;
		case 1:
			if (word_text(tok, tlen, "UNKNOWN", TOK_FULL) &&
			    m == TOK_FULL) {
				if (!complete)
					return PROXY_AGAIN;
				tmp.local = 1;
				tmp.len = eol + 2;
				*h = tmp;
				return PROXY_OK;
			}
			if (word_text(tok, tlen, "TCP4", m))
				family = AF_INET;
			else if (word_text(tok, tlen, "TCP6", m))
				family = AF_INET6;
			else if (!word_text(tok, tlen, "UNKNOWN", m))
				return PROXY_INVALID;
			break;
		case 2:
		case 3:
			if (!v1_addr(tok, tlen, family, m,
			    field == 2 ? &tmp.src : &tmp.dst))
				return PROXY_INVALID;
			break;
		case 4:
		case 5:
			if (!port_text(tok, tlen, m,
			    field == 4 ? &sport : &dport))
				return PROXY_INVALID;
			break;
		}

		if (last) {
			if (m == TOK_PREFIX)
				return PROXY_AGAIN;
			if (field != 5)
				return PROXY_INVALID;	/* CR too early */
			if (!complete)
				return PROXY_AGAIN;
			set_port(&tmp.src, sport);
			set_port(&tmp.dst, dport);
			tmp.len = eol + 2;
			*h = tmp;
			return PROXY_OK;
		}
		p++;	/* the one space */
	}
	return PROXY_INVALID;	/* a space after the destination port */
}

/* CRC32C (Castagnoli, reflected), with p[zero_at..zero_at+4) read as 0. */
static uint32_t
crc32c(const unsigned char *p, size_t n, size_t zero_at)
{
	uint32_t	crc = 0xffffffffU;
	size_t		i;
	int		k;

	for (i = 0; i < n; i++) {
		crc ^= (i - zero_at < 4) ? 0 : p[i];
		for (k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82f63b78U & (0U - (crc & 1U)));
	}
	return ~crc;
}

/* TLVs in b[off..end): each must fit; at most one CRC32C, and it must
 * match the whole header b[0..end). */
static int
v2_tlvs_ok(const unsigned char *b, size_t off, size_t end)
{
	size_t		tl, crc_at = 0;
	uint32_t	want;

	while (off < end) {
		if (end - off < 3)
			return 0;
		tl = (size_t)b[off + 1] << 8 | b[off + 2];
		if (end - off - 3 < tl)
			return 0;
		if (b[off] == PP2_TYPE_CRC32C) {
			if (tl != 4 || crc_at != 0)
				return 0;
			crc_at = off + 3;
		}
		off += 3 + tl;
	}
	if (crc_at == 0)
		return 1;
	want = (uint32_t)b[crc_at] << 24 | (uint32_t)b[crc_at + 1] << 16 |
	    (uint32_t)b[crc_at + 2] << 8 | b[crc_at + 3];
	return crc32c(b, end, crc_at) == want;
}

/*
 * Signature, then ver/cmd, family and length are each judged as soon as
 * they arrive.  LOCAL is accepted with any family and its payload is
 * skipped unread: a health check needs no addresses.
 */
static enum proxy_parse
v2_parse(const unsigned char *b, size_t len, struct proxy_hdr *h)
{
	struct sockaddr_in	*s4, *d4;
	struct sockaddr_in6	*s6, *d6;
	struct proxy_hdr	 tmp;
	const unsigned char	*a;
	size_t			 n, plen, block = 0, total;
	unsigned char		 cmd, fam;

	n = len < V2_SIG_LEN ? len : V2_SIG_LEN;
	if (memcmp(b, v2_sig, n) != 0)
		return PROXY_INVALID;
	if (len <= V2_SIG_LEN)
		return PROXY_AGAIN;
	cmd = b[12];
	if (cmd != PP2_CMD_LOCAL && cmd != PP2_CMD_PROXY)
		return PROXY_INVALID;
	if (len <= 13)
		return PROXY_AGAIN;
	fam = b[13];
	if (cmd == PP2_CMD_PROXY) {
		if (fam == PP2_FAM_TCP4)
			block = 12;
		else if (fam == PP2_FAM_TCP6)
			block = 36;
		else
			return PROXY_INVALID;
	}
	if (len < V2_HDR_LEN)
		return PROXY_AGAIN;
	plen = (size_t)b[14] << 8 | b[15];
	if (plen > V2_LEN_MAX || plen < block)
		return PROXY_INVALID;
	total = V2_HDR_LEN + plen;
	if (len < total)
		return PROXY_AGAIN;

	memset(&tmp, 0, sizeof(tmp));
	tmp.len = total;
	if (cmd == PP2_CMD_LOCAL) {
		tmp.local = 1;
		*h = tmp;
		return PROXY_OK;
	}
	if (!v2_tlvs_ok(b, V2_HDR_LEN + block, total))
		return PROXY_INVALID;

	a = b + V2_HDR_LEN;
	if (fam == PP2_FAM_TCP4) {
		s4 = (struct sockaddr_in *)&tmp.src;
		d4 = (struct sockaddr_in *)&tmp.dst;
		s4->sin_family = d4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, a, 4);
		memcpy(&d4->sin_addr, a + 4, 4);
		memcpy(&s4->sin_port, a + 8, 2);
		memcpy(&d4->sin_port, a + 10, 2);
	} else {
		s6 = (struct sockaddr_in6 *)&tmp.src;
		d6 = (struct sockaddr_in6 *)&tmp.dst;
		s6->sin6_family = d6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, a, 16);
		memcpy(&d6->sin6_addr, a + 16, 16);
		memcpy(&s6->sin6_port, a + 32, 2);
		memcpy(&d6->sin6_port, a + 34, 2);
	}
	*h = tmp;
	return PROXY_OK;
}

enum proxy_parse
proxy_parse(const void *buf, size_t len, struct proxy_hdr *out)
{
	const unsigned char	*b = buf;

	if (len == 0)
		return PROXY_AGAIN;
	if (b[0] == 'P')
		return v1_parse(buf, len, out);
	if (b[0] == '\r')
		return v2_parse(b, len, out);
	return PROXY_INVALID;
}

/* Copy sa into pa; 0 unless it is AF_INET or AF_INET6. */
static int
pp_addr_get(const struct sockaddr *sa, struct pp_addr *pa)
{
	const struct sockaddr_in	*sin;
	const struct sockaddr_in6	*sin6;

	memset(pa, 0, sizeof(*pa));
	if (sa == NULL)
		return 0;
	if (sa->sa_family == AF_INET) {
		sin = (const struct sockaddr_in *)sa;
		pa->family = AF_INET;
		memcpy(pa->a, &sin->sin_addr, 4);
		pa->port = ntohs(sin->sin_port);
		return 1;
	}
	if (sa->sa_family == AF_INET6) {
		sin6 = (const struct sockaddr_in6 *)sa;
		pa->family = AF_INET6;
		memcpy(pa->a, &sin6->sin6_addr, 16);
		pa->port = ntohs(sin6->sin6_port);
		return 1;
	}
	return 0;
}

/* IPv4 a.b.c.d as ::ffff:a.b.c.d. */
static void
pp_addr_map6(struct pp_addr *pa)
{
	if (pa->family != AF_INET)
		return;
	memmove(pa->a + 12, pa->a, 4);
	memset(pa->a, 0, 10);
	pa->a[10] = pa->a[11] = 0xff;
	pa->family = AF_INET6;
}

/* Both ends in one family; 0 if either is not an IP address. */
static int
pp_pair(const struct sockaddr *src, const struct sockaddr *dst,
    struct pp_addr *s, struct pp_addr *d)
{
	if (!pp_addr_get(src, s) || !pp_addr_get(dst, d))
		return 0;
	if (s->family != d->family) {
		pp_addr_map6(s);
		pp_addr_map6(d);
	}
	return 1;
}

static size_t
v1_encode(int ok, const struct pp_addr *s, const struct pp_addr *d,
    unsigned char *out, size_t outsize)
{
	char	line[160], sa[INET6_ADDRSTRLEN], da[INET6_ADDRSTRLEN];
	int	n;

	if (!ok)
		n = snprintf(line, sizeof(line), "PROXY UNKNOWN\r\n");
	else {
		if (inet_ntop(s->family, s->a, sa, sizeof(sa)) == NULL ||
		    inet_ntop(d->family, d->a, da, sizeof(da)) == NULL)
			return 0;
		n = snprintf(line, sizeof(line), "PROXY %s %s %s %u %u\r\n",
		    s->family == AF_INET ? "TCP4" : "TCP6", sa, da,
		    (unsigned)s->port, (unsigned)d->port);
	}
	if (n < 0 || (size_t)n >= sizeof(line) || (size_t)n > V1_MAX ||
	    (size_t)n > outsize)
		return 0;
	memcpy(out, line, (size_t)n);
	return (size_t)n;
}

static void
wb_byte(struct wbuf *w, unsigned v)
{
	wbuf_putc(w, (unsigned char)v);
}

static void
wb_u16(struct wbuf *w, size_t v)
{
	wb_byte(w, (unsigned)(v >> 8) & 0xff);
	wb_byte(w, (unsigned)v & 0xff);
}

/* Overwrite a 16-bit length written earlier at off. */
static void
wb_set16(struct wbuf *w, size_t off, size_t v)
{
	if (w->full)
		return;
	((unsigned char *)w->p)[off] = (unsigned char)(v >> 8);
	((unsigned char *)w->p)[off + 1] = (unsigned char)v;
}

/* A string TLV, left out when absent, empty or longer than max. */
static void
wb_tlv_str(struct wbuf *w, unsigned type, const char *s, size_t max)
{
	size_t	n;

	if (s == NULL || (n = strlen(s)) == 0 || n > max)
		return;
	wb_byte(w, type);
	wb_u16(w, n);
	wbuf_put(w, s, n);
}

static size_t
v2_encode(int ok, const struct pp_addr *s, const struct pp_addr *d,
    const struct proxy_tls *tls, unsigned char *out, size_t outsize)
{
	unsigned char	 hdr[PROXY_HDR_MAX];
	struct wbuf	 w;
	size_t		 ssl_at, alen;
	unsigned	 client;
	int		 v4;

	wbuf_init(&w, hdr, sizeof(hdr));
	wbuf_put(&w, v2_sig, sizeof(v2_sig));
	if (!ok) {
		wb_byte(&w, PP2_CMD_LOCAL);
		wb_byte(&w, PP2_FAM_UNSPEC);
		wb_u16(&w, 0);
	} else {
		v4 = s->family == AF_INET;
		alen = v4 ? 4 : 16;
		wb_byte(&w, PP2_CMD_PROXY);
		wb_byte(&w, v4 ? PP2_FAM_TCP4 : PP2_FAM_TCP6);
		wb_u16(&w, 0);		/* set below */
		wbuf_put(&w, s->a, alen);
		wbuf_put(&w, d->a, alen);
		wb_u16(&w, s->port);
		wb_u16(&w, d->port);
		if (tls != NULL) {
			wb_tlv_str(&w, PP2_TYPE_AUTHORITY, tls->sni,
			    TLV_NAME_MAX);
			client = PP2_CLIENT_SSL;
			if (tls->client_cert_verified)
				client |= PP2_CLIENT_CERT_CONN |
				    PP2_CLIENT_CERT_SESS;
			wb_byte(&w, PP2_TYPE_SSL);
			ssl_at = w.len;
			wb_u16(&w, 0);
			wb_byte(&w, client);
			/* verify: 0 means a client certificate verified */
			wbuf_put(&w, tls->client_cert_verified ?
			    "\0\0\0\0" : "\0\0\0\1", 4);
			wb_tlv_str(&w, PP2_SUBTYPE_SSL_VERSION, tls->version,
			    TLV_VERSION_MAX);
			wb_tlv_str(&w, PP2_SUBTYPE_SSL_CN, tls->client_cn,
			    TLV_NAME_MAX);
			wb_tlv_str(&w, PP2_SUBTYPE_SSL_CIPHER, tls->cipher,
			    TLV_CIPHER_MAX);
			wb_set16(&w, ssl_at, w.len - ssl_at - 2);
		}
		wb_set16(&w, 14, w.len - V2_HDR_LEN);
	}
	if (w.full || w.len > outsize)
		return 0;
	memcpy(out, hdr, w.len);
	return w.len;
}

size_t
proxy_encode(int v, const struct sockaddr *src, const struct sockaddr *dst,
    const struct proxy_tls *tls, void *out, size_t outsize)
{
	struct pp_addr	s, d;
	int		ok;

	ok = pp_pair(src, dst, &s, &d);
	if (v == 1)
		return v1_encode(ok, &s, &d, out, outsize);
	if (v == 2)
		return v2_encode(ok, &s, &d, tls, out, outsize);
	return 0;
}

size_t
xtext_encode(const char *in, size_t inlen, char *out, size_t outsize)
{
	static const char	 hex[] = "0123456789ABCDEF";
	size_t			 i, o = 0;
	unsigned char		 c;

	if (outsize == 0)
		return 0;
	out[0] = '\0';
	for (i = 0; i < inlen; i++) {
		c = (unsigned char)in[i];
		if (c < '!' || c > '~' || c == '+' || c == '=') {
			if (outsize - o < 4) {
				out[0] = '\0';
				return 0;
			}
			out[o++] = '+';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 0xf];
		} else {
			if (outsize - o < 2) {
				out[0] = '\0';
				return 0;
			}
			out[o++] = (char)c;
		}
	}
	out[o] = '\0';
	return o;
}

enum { XA_ADDR, XA_PORT, XA_NAME, XA_HELO, XA_PROTO, XA__COUNT };

/* " KEY=xtext(pfx value)" into out; 0 if over outsize - 1. */
static size_t
xclient_attr(const char *key, const char *pfx, const char *val, char *out,
    size_t outsize)
{
	size_t	n, k, vl;
	int	r;

	r = snprintf(out, outsize, " %s=%s", key, pfx);
	if (r < 0 || (size_t)r >= outsize)
		return 0;
	n = (size_t)r;
	vl = strlen(val);
	if (vl == 0)
		return n;
	k = xtext_encode(val, vl, out + n, outsize - n);
	return k == 0 ? 0 : n + k;
}

/* An address with a ':' is IPv6; Postfix wants it tagged "IPV6:". */
static const char *
xclient_addr_pfx(const char *addr)
{
	if (strchr(addr, ':') == NULL || strncasecmp(addr, "IPV6:", 5) == 0)
		return "";
	return "IPV6:";
}

size_t
xclient_line(const char *addr, const char *port, const char *name,
    const char *helo, const char *proto, char *out, size_t outsize)
{
	static const char *const	 keys[XA__COUNT] = {
		"ADDR", "PORT", "NAME", "HELO", "PROTO"
	};
	/* Whom to give up first when the line is too long. */
	static const int		 drop[XA__COUNT] = {
		XA_HELO, XA_NAME, XA_PROTO, XA_PORT, XA_ADDR
	};
	const char			*vals[XA__COUNT];
	char				 enc[XA__COUNT][XCLIENT_MAX];
	size_t				 elen[XA__COUNT], limit, total, o;
	int				 i;

	vals[XA_ADDR] = addr;
	vals[XA_PORT] = port;
	vals[XA_NAME] = name;
	vals[XA_HELO] = helo;
	vals[XA_PROTO] = proto;

	if (outsize == 0)
		return 0;
	out[0] = '\0';
	limit = XCLIENT_MAX - 2;
	if (outsize - 1 < limit)
		limit = outsize - 1;
	total = strlen("XCLIENT");
	if (total > limit)
		return 0;

	for (i = 0; i < XA__COUNT; i++) {
		elen[i] = 0;
		if (vals[i] != NULL)
			elen[i] = xclient_attr(keys[i], i == XA_ADDR ?
			    xclient_addr_pfx(vals[i]) : "", vals[i], enc[i],
			    sizeof(enc[i]));
		total += elen[i];
	}
	for (i = 0; i < XA__COUNT && total > limit; i++) {
		total -= elen[drop[i]];
		elen[drop[i]] = 0;
	}

	memcpy(out, "XCLIENT", 7);
	o = 7;
	for (i = 0; i < XA__COUNT; i++) {
		memcpy(out + o, enc[i], elen[i]);
		o += elen[i];
	}
	out[o] = '\0';
	return o;
}
