/*
 * smtp_ehlo - rewrite a backend's EHLO reply for the client.
 *
 * The backend's keywords pass through in order, except: its own STARTTLS
 * (the proxy owns TLS), XCLIENT and XFORWARD (proxy-to-backend only) are
 * never shown; AUTH (and the old "AUTH=" form) is dropped when asked (before
 * TLS with hide_auth_before_tls); empty keyword lines are dropped; STARTTLS
 * is appended when the proxy offers it.  The first line (the host name) is
 * always kept.  Keywords match case-insensitively.  Continuation markers
 * are recomputed so that only the last line has "250 ".  Lines are written
 * with CRLF.  Pure core: no I/O.
 */
#ifndef STP_SMTP_EHLO_H
#define STP_SMTP_EHLO_H

#include <stddef.h>

#define EHLO_ADD_STARTTLS	0x01	/* offer STARTTLS */
#define EHLO_HIDE_AUTH		0x02	/* drop AUTH / AUTH= */

/* What the backend advertised (keywords seen, before any removal). */
#define EHLO_HAS_CHUNKING	0x01
#define EHLO_HAS_XCLIENT	0x02
#define EHLO_HAS_PIPELINING	0x04
#define EHLO_HAS_STARTTLS	0x08
#define EHLO_HAS_XFORWARD	0x10
#define EHLO_HAS_AUTH		0x20
#define EHLO_HAS_8BITMIME	0x40
#define EHLO_HAS_SMTPUTF8	0x80

/*
 * reply[0..len) is one complete reply as framed by smtp_reply_parse(). If
 * its code is not 250 it is copied unchanged.  Writes the result to
 * out[0..outsize) and returns its length, or 0 if it does not fit (never a
 * cut reply).  Each LF-only line grows by one byte (CRLF) and STARTTLS adds
 * 14, so len + nlines + 16 always fits (nlines from smtp_reply_parse), and
 * so does 2 * len + 16.  *seen (may be NULL) receives the EHLO_HAS_* bits
 * of the keywords the backend sent (0 for a non-250 reply).
 */
size_t	smtp_ehlo_rewrite(const char *reply, size_t len, int flags,
	    char *out, size_t outsize, int *seen);

#endif
