/*
 * strlist - a growing list of messages with their severity; see strlist.h.
 *
 * v and level grow together, one entry at a time (lists are short: the
 * problems of one configuration).  A failed allocation leaves the list as
 * it was.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strlist.h"

static void
strlist_vadd(struct strlist *l, enum strlist_level lv, const char *fmt,
    va_list ap)
{
	unsigned char	*nl;
	char		*s, **nv;

	if (l == NULL || vasprintf(&s, fmt, ap) < 0)
		return;
	if ((nv = realloc(l->v, (l->n + 1) * sizeof(*l->v))) == NULL) {
		free(s);
		return;
	}
	l->v = nv;
	if ((nl = realloc(l->level, l->n + 1)) == NULL) {
		free(s);
		return;
	}
	l->level = nl;
	l->v[l->n] = s;
	l->level[l->n++] = (unsigned char)lv;
}

void
strlist_add(struct strlist *l, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	strlist_vadd(l, SL_LIST, fmt, ap);
	va_end(ap);
}

void
strlist_add_error(struct strlist *l, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	strlist_vadd(l, SL_ERROR, fmt, ap);
	va_end(ap);
}

enum strlist_level
strlist_level(const struct strlist *l, size_t i)
{
	if (l == NULL || i >= l->n || l->level == NULL)
		return SL_LIST;
	return (enum strlist_level)l->level[i];
}

void
strlist_free(struct strlist *l)
{
	if (l == NULL)
		return;
	strvec_free(l->v, l->n);
	free(l->level);
	l->v = NULL;
	l->level = NULL;
	l->n = 0;
}

int
strvec_add(char ***v, size_t *n, const char *s)
{
	char	**nv, *d;

	if ((d = strdup(s)) == NULL)
		return -1;
	if ((nv = reallocarray(*v, *n + 1, sizeof(*nv))) == NULL) {
		free(d);
		return -1;
	}
	nv[(*n)++] = d;
	*v = nv;
	return 0;
}

void
strvec_free(char **v, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}
