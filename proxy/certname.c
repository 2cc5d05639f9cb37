/*
 * certname - match a TLS server name (SNI) against certificate names.
 *
 * Exact names beat wildcards; "*.rest" stands for exactly one left-most
 * label.  Comparison ignores case and one trailing dot on either side.
 * Nothing is allocated: names are compared in place.  A host that holds
 * '*' never matches a wildcard (a client cannot ask for "*.d").
 */
#include <string.h>

#include "ascii.h"
#include "certname.h"

#define CERTNAME_MAX	253

/* Length without one trailing dot. */
static size_t
name_len(const char *s)
{
	size_t	n = strlen(s);

	if (n > 0 && s[n - 1] == '.')
		n--;
	return n;
}

int
certname_normalize(const char *name, char *out, size_t outsize)
{
	size_t	n, i;
	int	c;

	if (name == NULL)
		return -1;
	n = name_len(name);
	if (n == 0 || n > CERTNAME_MAX || n + 1 > outsize ||
	    name[n - 1] == '.')
		return -1;
	for (i = 0; i < n; i++) {
		c = (unsigned char)name[i];
		if (c == '.' && (i == 0 || name[i - 1] == '.'))
			return -1;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		    c == '.' || c == '*'))
			return -1;
		out[i] = (char)ascii_lower(c);
	}
	out[n] = '\0';
	return 0;
}

int
certname_match_exact(const char *pattern, const char *host)
{
	size_t	pn, hn;

	if (pattern == NULL || host == NULL)
		return 0;
	pn = name_len(pattern);
	hn = name_len(host);
	return pn > 0 && pn == hn && ascii_ieq(pattern, host, pn);
}

int
certname_match_wildcard(const char *pattern, const char *host)
{
	const char	*dot;
	size_t		 pn, hn, label;

	if (pattern == NULL || host == NULL)
		return 0;
	pn = name_len(pattern);
	hn = name_len(host);
	if (pn < 3 || pattern[0] != '*' || pattern[1] != '.')
		return 0;
	if (memchr(host, '*', hn) != NULL)
		return 0;
	dot = memchr(host, '.', hn);
	if (dot == NULL)
		return 0;
	label = (size_t)(dot - host);
	/* "label" + ".rest" against "*" + ".rest" */
	return label > 0 && hn - label == pn - 1 &&
	    ascii_ieq(pattern + 1, dot, pn - 1);
}

size_t
certname_select(const char *const *const *names, const size_t *nnames,
    size_t n, const char *host, size_t *out, size_t maxout)
{
	size_t	i, j, k;
	int	pass, hit;

	if (host == NULL || name_len(host) == 0)
		return 0;
	for (pass = 0; pass < 2; pass++) {
		k = 0;
		for (i = 0; i < n; i++) {
			hit = 0;
			for (j = 0; j < nnames[i] && !hit; j++)
				hit = pass == 0 ?
				    certname_match_exact(names[i][j], host) :
				    certname_match_wildcard(names[i][j], host);
			if (hit && k < maxout)
				out[k++] = i;
		}
		if (k > 0)
			return k;
	}
	return 0;
}
