/*
 * proxyproto - the PROXY protocol (HAProxy's proxy-protocol.txt), v1 and
 * v2, parsed from a load balancer and encoded toward a backend.  Pure core.
 *
 * Parsing is strict: a header that is not exactly well formed is
 * PROXY_INVALID and the caller closes the connection without a reply.
 * v1: "PROXY TCP4|TCP6|UNKNOWN src dst sport dport\r\n", at most 107 bytes.
 * v2: the 12-byte signature, version 2, command LOCAL or PROXY, family
 * AF_INET/AF_INET6 (or UNSPEC with LOCAL), STREAM, and a length that is
 * at least the address block; TLVs are skipped (CRC32C checked if
 * present). LOCAL means "use the real connection's addresses".
 * Our bounds: a v2 length field over 1024 is PROXY_INVALID; LOCAL is
 * accepted with any family and its payload is skipped unread.
 * PROXY_AGAIN only while the bytes so far can still begin a valid
 * header: anything else (e.g. "EHLO") is PROXY_INVALID at once.
 */
#ifndef STP_PROXYPROTO_H
#define STP_PROXYPROTO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum proxy_parse {
	PROXY_AGAIN = 0,	/* need more bytes (caller bounds the wait) */
	PROXY_OK,
	PROXY_INVALID
};

struct proxy_hdr {
	int			 local;		/* v2 LOCAL / v1 UNKNOWN: no addresses */
	struct sockaddr_storage	 src, dst;	/* when !local */
	size_t			 len;		/* header bytes to drop */
};

/* Look for a whole v1 or v2 header at buf[0..len). */
enum proxy_parse proxy_parse(const void *buf, size_t len,
	    struct proxy_hdr *out);

/* TLS facts for v2 TLVs (PP2_TYPE_SSL with VERSION/CIPHER/CN subtypes,
 * PP2_TYPE_AUTHORITY = SNI).  Any pointer may be NULL = not sent. */
struct proxy_tls {
	const char	*version;	/* "TLSv1.3" */
	const char	*cipher;
	const char	*client_cn;
	const char	*sni;
	int		 client_cert_verified;
};

/*
 * Encode a header for src -> dst (both AF_INET or both AF_INET6; a mix is
 * sent with v4 addresses mapped to v6; anything else, or NULL, is sent as
 * v1 "UNKNOWN" / v2 LOCAL).  v is 1 or 2; tls (v2 only, may be NULL) adds
 * TLVs; a TLS string too long for its TLV (SNI and CN 255, version 32,
 * cipher 64 bytes) is left out, not cut.  Returns the length written to
 * out, or 0 if outsize is too small (PROXY_HDR_MAX always suffices).
 */
#define PROXY_HDR_MAX	1024
size_t	proxy_encode(int v, const struct sockaddr *src,
	    const struct sockaddr *dst, const struct proxy_tls *tls,
	    void *out, size_t outsize);

/*
 * xtext (RFC 3461 §4) for XCLIENT values: every byte outside '!'..'~', and
 * '+' and '=', becomes "+XX".  Returns the length written (NUL-terminated)
 * or 0 if it does not fit.
 */
size_t	xtext_encode(const char *in, size_t inlen, char *out, size_t outsize);

/*
 * The XCLIENT command line (without CRLF) for the given attributes; NULL
 * attributes are omitted; the line never exceeds 512 bytes including CRLF
 * (an attribute that would overflow is dropped: HELO first, then NAME,
 * PROTO, PORT, ADDR).  An ADDR holding ':' gets the "IPV6:" tag.  out is
 * NUL-terminated; returns the length (0 only if outsize < 8).
 */
size_t	xclient_line(const char *addr, const char *port, const char *name,
	    const char *helo, const char *proto, char *out, size_t outsize);

#endif
