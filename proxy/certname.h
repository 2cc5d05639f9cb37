/*
 * certname - host names as certificate names (RFC 6125 style), pure core.
 *
 * Names compare case-insensitively and a trailing dot is ignored. A
 * wildcard "*.example.org" matches exactly one left-most label
 * ("mx.example.org", not "example.org" nor "a.b.example.org"); no other
 * wildcard form is honoured.
 */
#ifndef STP_CERTNAME_H
#define STP_CERTNAME_H

#include <stddef.h>

/*
 * Copy name into out (size outsize) lower-cased, without a trailing dot.
 * Returns 0, or -1 when the name is empty, too long (> 253 octets), has
 * an empty label, or holds a byte outside [A-Za-z0-9-_.*].
 */
int	certname_normalize(const char *name, char *out, size_t outsize);

/* 1 if pattern (a certificate name, maybe "*.d") matches host exactly
 * (case-insensitively, trailing dots ignored), else 0. */
int	certname_match_exact(const char *pattern, const char *host);

/* 1 if pattern is "*.rest" and host is "label.rest" with one label (a
 * host holding '*' never matches). */
int	certname_match_wildcard(const char *pattern, const char *host);

/*
 * Choose among n certificates, each with its own list of names:
 * names[i][0..nnames[i]).  An exact match on any certificate wins over
 * a wildcard match; among equals, the lowest index.  Writes up to maxout
 * indexes of equally good certificates (same best name, e.g. one RSA and
 * one ECDSA) to out and returns how many; 0 means no match (use the
 * default).  host may be NULL (no SNI): returns 0.
 */
size_t	certname_select(const char *const *const *names, const size_t *nnames,
	    size_t n, const char *host, size_t *out, size_t maxout);

#endif
