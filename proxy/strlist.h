/*
 * strlist - a growing list of messages (errors, warnings), each with its
 * severity; and strvec, the plain vector of strings under it.
 *
 * The list says what its messages are (cfg_load() takes an errors list
 * and a warnings list); a message can also say it is worse than its list:
 * an expired certificate is served anyway, so it sits among the warnings,
 * but it is an error all the same and is logged at error level.  The
 * severity is a value set when the message is added, never a prefix of
 * its text.  Pure: no logging here (cfg_log_warnings() in config.c logs a
 * warnings list).  Out of memory drops the message.
 */
#ifndef STP_STRLIST_H
#define STP_STRLIST_H

#include <stddef.h>

enum strlist_level {
	SL_LIST = 0,	/* what the list holds: a warning among warnings */
	SL_ERROR	/* an error, even in a warnings list */
};

struct strlist {
	char		**v;		/* the messages */
	unsigned char	 *level;	/* enum strlist_level of each */
	size_t		  n;
};

void	strlist_add(struct strlist *l, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	strlist_add_error(struct strlist *l, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
/* The severity of message i. */
enum strlist_level strlist_level(const struct strlist *l, size_t i);
void	strlist_free(struct strlist *l);

/* A plain vector of strings, char **v with its count n (names in the
 * config and the TLS set).  strvec_add appends a copy of s: 0, or -1 when
 * out of memory (v and n unchanged).  strvec_free frees the strings and
 * v. */
int	strvec_add(char ***v, size_t *n, const char *s);
void	strvec_free(char **v, size_t n);

#endif
