/*
 * received - the Received: trace header the proxy prepends to each message
 * (RFC 5321 §4.4), naming the client, the listener and the TLS facts.
 * Pure core.  Values that came from the network (HELO name, SNI, client
 * certificate subject) are untrusted: every byte outside printable ASCII,
 * and '(' ')' '\\' '"', is replaced by '?' (in HELO and SNI, which stand as
 * words, also ' ' and ';'), and each value is cut to at most 255 bytes, so
 * the header can never carry CR/LF or break its comments.
 * Lines are folded (CRLF + TAB) so that none exceeds 998 bytes.
 */
#ifndef STP_RECEIVED_H
#define STP_RECEIVED_H

#include <stddef.h>
#include <time.h>

struct received_info {
	const char	*helo;		/* client's EHLO/HELO argument, or NULL */
	const char	*client_addr;	/* "192.0.2.1" or "2001:db8::1" */
	const char	*by_host;	/* the proxy's host name */
	const char	*listener;	/* listener name */
	const char	*session_id;	/* proxy's session id, for "id" */
	const char	*tls_version;	/* "TLSv1.3", NULL without TLS */
	const char	*cipher;	/* OpenSSL cipher name */
	int		 cipher_bits;
	const char	*sni;		/* NULL when the client sent none */
	const char	*client_subject;/* verified client cert subject, or NULL */
	int		 esmtp;		/* EHLO (1) or HELO (0) */
	time_t		 now;
};

/*
 * Write the header, ending in CRLF and followed by a NUL, to out[0..outsize).
 * Returns its length (without the NUL), or 0 if outsize is too small
 * (RECEIVED_MAX always suffices) or now is out of gmtime_r's range.
 */
#define RECEIVED_MAX 2048
size_t	received_header(const struct received_info *ri, char *out,
	    size_t outsize);

#endif
