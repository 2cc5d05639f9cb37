/*
 * ascii - case-insensitive comparison of protocol words and host names,
 * ASCII only and locale-free (SMTP verbs and keywords, DNS names).
 * Pure core.
 */
#ifndef STP_ASCII_H
#define STP_ASCII_H

#include <stddef.h>

static inline int
ascii_lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
}

/* The n bytes at a and b are equal but for ASCII case. */
static inline int
ascii_ieq(const char *a, const char *b, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		if (ascii_lower((unsigned char)a[i]) !=
		    ascii_lower((unsigned char)b[i]))
			return 0;
	return 1;
}

/* s[0..len) is exactly the NUL-terminated word, but for ASCII case. */
static inline int
ascii_word_eq(const char *s, size_t len, const char *word)
{
	size_t	i;

	for (i = 0; i < len; i++)
		if (word[i] == '\0' || ascii_lower((unsigned char)s[i]) !=
		    ascii_lower((unsigned char)word[i]))
			return 0;
	return word[len] == '\0';
}

#endif
