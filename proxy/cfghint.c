/*
 * cfghint - what a libconfig syntax error probably was.
 *
 * libconfig reports a syntax error as a line number and the words "syntax
 * error", and the line is often not where the mistake is: a '{' that is
 * never closed is reported at the end of the file, a missing ',' between
 * two list elements at the line after it.  When cfg_load() gets such an
 * error it hands the file's text to cfg_syntax_hint(), which reads it
 * again with a small recursive-descent parser of the same grammar:
 *
 *	file     = setting*
 *	setting  = NAME ('=' | ':') value [';' | ',']   |   @include STRING
 *	value    = STRING+ | NUMBER | true | false | array | list | group
 *	array    = '[' [scalar (',' scalar)*] ']'
 *	list     = '(' [value (',' value)*] ')'
 *	group    = '{' setting* '}'
 *
 * and stops at the first token that does not fit, saying what was expected
 * there and naming the lines involved (the '{' that was opened, the
 * element after which a ',' is missing).  It is a hint, not a verdict:
 * libconfig stays the judge of what is valid (element types, numbers),
 * and when this parser finds nothing wrong no hint is given.
 */

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config.h"

enum hk {
	HK_EOF, HK_NAME, HK_BOOL, HK_STRING, HK_NUMBER, HK_DIRECTIVE,
	HK_BADSTR,	/* a string that runs to the end of the file */
	HK_PUNCT,	/* one of = : ; , { } ( ) [ ] */
	HK_OTHER
};

struct htok {
	enum hk		 kind;
	int		 line;
	char		 c;		/* HK_PUNCT, HK_OTHER */
	const char	*s;		/* HK_NAME: the name */
	size_t		 len;
};

struct hparse {
	const char	*p;
	int		 line;
	struct htok	 tk;		/* the next token */
	struct htok	 prev;		/* the last token taken */
	char		*buf;
	size_t		 size;
	int		 failed;
	int		 depth;
};

#define HINT_DEPTH	64

static void
h_skip(struct hparse *h)
{
	for (;;) {
		while (*h->p != '\0' && isspace((unsigned char)*h->p)) {
			if (*h->p == '\n')
				h->line++;
			h->p++;
		}
		if (*h->p == '#' || (h->p[0] == '/' && h->p[1] == '/')) {
			while (*h->p != '\0' && *h->p != '\n')
				h->p++;
		} else if (h->p[0] == '/' && h->p[1] == '*') {
			for (h->p += 2; *h->p != '\0' &&
			    !(h->p[0] == '*' && h->p[1] == '/'); h->p++)
				if (*h->p == '\n')
					h->line++;
			if (*h->p != '\0')
				h->p += 2;
		} else
			return;
	}
}

static int
is_name_start(int c)
{
	return isalpha(c) || c == '*';
}

static int
is_name_char(int c)
{
	return isalnum(c) || c == '-' || c == '_' || c == '*';
}

/* Read the next token into h->tk. */
static void
h_next(struct hparse *h)
{
	struct htok	*t = &h->tk;
	const char	*q;

	h->prev = *t;
	h_skip(h);
	memset(t, 0, sizeof(*t));
	t->line = h->line;
	q = h->p;
	if (*q == '\0') {
		t->kind = HK_EOF;
		return;
	}
	if (*q == '"') {
		for (q++; *q != '\0' && *q != '"'; q++) {
			if (*q == '\\' && q[1] != '\0')
				q++;
			if (*q == '\n')
				h->line++;
		}
		if (*q == '\0') {
			t->kind = HK_BADSTR;
			h->p = q;
			return;
		}
		t->kind = HK_STRING;
		h->p = q + 1;
		return;
	}
	if (*q == '@' || is_name_start((unsigned char)*q)) {
		for (q++; is_name_char((unsigned char)*q); q++)
			;
		t->s = h->p;
		t->len = (size_t)(q - h->p);
		if (*h->p == '@')
			t->kind = HK_DIRECTIVE;
		else if ((t->len == 4 && strncasecmp(t->s, "true", 4) == 0) ||
		    (t->len == 5 && strncasecmp(t->s, "false", 5) == 0))
			t->kind = HK_BOOL;
		else
			t->kind = HK_NAME;
		h->p = q;
		return;
	}
	if (isdigit((unsigned char)*q) || ((*q == '-' || *q == '+' ||
	    *q == '.') && (isdigit((unsigned char)q[1]) || q[1] == '.'))) {
		for (q++; isalnum((unsigned char)*q) || *q == '.' ||
		    ((*q == '-' || *q == '+') && (q[-1] == 'e' || q[-1] == 'E'));
		    q++)
			;
		t->kind = HK_NUMBER;
		h->p = q;
		return;
	}
	t->c = *q;
	t->kind = strchr("=:;,{}()[]", *q) != NULL ? HK_PUNCT : HK_OTHER;
	h->p = q + 1;
}

static int
h_is(const struct htok *t, char c)
{
	return t->kind == HK_PUNCT && t->c == c;
}

/* Record the first failure only. */
static void __attribute__((format(printf, 2, 3)))
h_fail(struct hparse *h, const char *fmt, ...)
{
	va_list	ap;

	if (h->failed)
		return;
	h->failed = 1;
	va_start(ap, fmt);
	vsnprintf(h->buf, h->size, fmt, ap);
	va_end(ap);
}

/* A short description of token t for messages. */
static const char *
h_desc(const struct htok *t, char *buf, size_t size)
{
	switch (t->kind) {
	case HK_EOF:
		return "the end of the file";
	case HK_NAME:
	case HK_DIRECTIVE:
		snprintf(buf, size, "'%.*s' on line %d", (int)(t->len > 40 ?
		    40 : t->len), t->s, t->line);
		return buf;
	case HK_BOOL:
		snprintf(buf, size, "a boolean on line %d", t->line);
		return buf;
	case HK_STRING:
	case HK_BADSTR:
		snprintf(buf, size, "a string on line %d", t->line);
		return buf;
	case HK_NUMBER:
		snprintf(buf, size, "a number on line %d", t->line);
		return buf;
	default:
		snprintf(buf, size, "'%c' on line %d", t->c, t->line);
		return buf;
	}
}

/* Does t begin a value? */
static int
h_starts_value(const struct htok *t)
{
	return t->kind == HK_STRING || t->kind == HK_NUMBER ||
	    t->kind == HK_BOOL || h_is(t, '{') || h_is(t, '(') ||
	    h_is(t, '[');
}

static void	h_settings(struct hparse *, char, int);
static void	h_value(struct hparse *, int);

/* A token that cannot start a value where one is needed. */
static void
h_bad_value(struct hparse *h, int eqline)
{
	const struct htok	*t = &h->tk;
	char			 d[80];

	if (t->kind == HK_BADSTR)
		h_fail(h, "the string that starts on line %d is never closed "
		    "(a '\"' is missing)", t->line);
	else if (t->kind == HK_NAME && ((t->len == 3 &&
	    (strncasecmp(t->s, "yes", 3) == 0 ||
	    strncasecmp(t->s, "off", 3) == 0)) || (t->len == 2 &&
	    (strncasecmp(t->s, "no", 2) == 0 ||
	    strncasecmp(t->s, "on", 2) == 0))))
		h_fail(h, "'%.*s' on line %d is not a value: booleans are "
		    "written true or false", (int)t->len, t->s, t->line);
	else if (t->kind == HK_NAME)
		h_fail(h, "unquoted string '%.*s' on line %d: strings need "
		    "double quotes (\"%.*s\")", (int)(t->len > 40 ? 40 :
		    t->len), t->s, t->line, (int)(t->len > 40 ? 40 : t->len),
		    t->s);
	else if (h_is(t, ';') || h_is(t, ',') || h_is(t, '}') ||
	    h_is(t, ')') || h_is(t, ']') || t->kind == HK_EOF)
		h_fail(h, "a value is missing after '=' on line %d", eqline);
	else
		h_fail(h, "expected a value, found %s", h_desc(t, d,
		    sizeof(d)));
}

static void
h_array(struct hparse *h)
{
	int	open = h->tk.line;
	char	d[80];

	h_next(h);			/* '[' */
	if (h_is(&h->tk, ']')) {
		h_next(h);
		return;
	}
	for (;;) {
		if (h->tk.kind == HK_STRING) {
			while (h->tk.kind == HK_STRING)
				h_next(h);
		} else if (h->tk.kind == HK_NUMBER || h->tk.kind == HK_BOOL)
			h_next(h);
		else if (h_is(&h->tk, '{') || h_is(&h->tk, '(') ||
		    h_is(&h->tk, '[')) {
			h_fail(h, "an array [ ... ] on line %d holds only "
			    "strings, numbers or booleans; use a list ( ... ) "
			    "for groups", open);
			return;
		} else {
			h_bad_value(h, h->prev.line);
			return;
		}
		if (h_is(&h->tk, ']')) {
			h_next(h);
			return;
		}
		if (!h_is(&h->tk, ',')) {
			if (h_starts_value(&h->tk) || h->tk.kind == HK_NAME)
				h_fail(h, "a ',' is missing between the array "
				    "elements on lines %d and %d",
				    h->prev.line, h->tk.line);
			else
				h_fail(h, "the array '[' opened on line %d is "
				    "not closed: expected ',' or ']', found %s",
				    open, h_desc(&h->tk, d, sizeof(d)));
			return;
		}
		h_next(h);		/* ',' */
		if (h_is(&h->tk, ']')) {
			h_fail(h, "a ',' before the ']' on line %d: the last "
			    "element of an array takes no ','", h->tk.line);
			return;
		}
	}
}

static void
h_list(struct hparse *h, int depth)
{
	int	open = h->tk.line;
	char	d[80];

	h_next(h);			/* '(' */
	if (h_is(&h->tk, ')')) {
		h_next(h);
		return;
	}
	for (;;) {
		if (h->tk.kind == HK_NAME && h->p[strspn(h->p, " \t")] != '\0' &&
		    strchr("=:", h->p[strspn(h->p, " \t")]) != NULL) {
			h_fail(h, "a setting ('%.*s' on line %d) directly in "
			    "the list opened on line %d: settings in a list go "
			    "inside a group, ( { %.*s = ...; } )",
			    (int)h->tk.len, h->tk.s, h->tk.line, open,
			    (int)h->tk.len, h->tk.s);
			return;
		}
		h_value(h, depth + 1);
		if (h->failed)
			return;
		if (h_is(&h->tk, ')')) {
			h_next(h);
			return;
		}
		if (!h_is(&h->tk, ',')) {
			if (h_starts_value(&h->tk))
				h_fail(h, "a ',' is missing between the list "
				    "elements ending on line %d and starting "
				    "on line %d", h->prev.line, h->tk.line);
			else if (h->tk.kind == HK_EOF)
				h_fail(h, "the list '(' opened on line %d is "
				    "never closed (a ')' is missing)", open);
			else
				h_fail(h, "the list '(' opened on line %d is "
				    "not closed: expected ',' or ')', found %s",
				    open, h_desc(&h->tk, d, sizeof(d)));
			return;
		}
		h_next(h);		/* ',' */
		if (h_is(&h->tk, ')')) {
			h_fail(h, "a ',' before the ')' on line %d: the last "
			    "element of a list takes no ','", h->tk.line);
			return;
		}
	}
}

static void
h_value(struct hparse *h, int depth)
{
	if (depth > HINT_DEPTH) {
		h_fail(h, "groups and lists nested too deeply");
		return;
	}
	switch (h->tk.kind) {
	case HK_STRING:
		while (h->tk.kind == HK_STRING)
			h_next(h);
		return;
	case HK_NUMBER:
	case HK_BOOL:
		h_next(h);
		return;
	default:
		break;
	}
	if (h_is(&h->tk, '[')) {
		h_array(h);
		return;
	}
	if (h_is(&h->tk, '(')) {
		h_list(h, depth);
		return;
	}
	if (h_is(&h->tk, '{')) {
		h_next(h);
		h_settings(h, '}', depth + 1);
		if (!h->failed && h_is(&h->tk, '}'))
			h_next(h);
		return;
	}
	h_bad_value(h, h->prev.line);
}

static void
h_setting(struct hparse *h, int depth)
{
	struct htok	name = h->tk;
	char		d[80];

	h_next(h);
	if (!h_is(&h->tk, '=') && !h_is(&h->tk, ':')) {
		if (h->tk.kind == HK_BADSTR)
			h_bad_value(h, name.line);
		else
			h_fail(h, "an '=' is missing after '%.*s' on line %d "
			    "(found %s)", (int)(name.len > 40 ? 40 : name.len),
			    name.s, name.line, h_desc(&h->tk, d, sizeof(d)));
		return;
	}
	h_next(h);
	h_value(h, depth);
	if (h->failed)
		return;
	if (h_is(&h->tk, ';') || h_is(&h->tk, ','))
		h_next(h);
}

/* Settings until close ('}', or 0 for the end of the file). */
static void
h_settings(struct hparse *h, char close, int depth)
{
	int	open = h->prev.line;
	char	d[80];

	while (!h->failed) {
		if (close != 0 && h_is(&h->tk, close))
			return;
		switch (h->tk.kind) {
		case HK_EOF:
			if (close != 0)
				h_fail(h, "the group '{' opened on line %d is "
				    "never closed (a '}' is missing)", open);
			return;
		case HK_NAME:
			h_setting(h, depth);
			continue;
		case HK_DIRECTIVE:
			h_next(h);
			if (h->tk.kind != HK_STRING) {
				h_fail(h, "expected a file name in quotes "
				    "after %s", h_desc(&h->prev, d, sizeof(d)));
				return;
			}
			h_next(h);
			continue;
		case HK_BADSTR:
			h_bad_value(h, h->tk.line);
			return;
		default:
			break;
		}
		if (h_is(&h->tk, ';'))
			h_fail(h, "an extra ';' on line %d", h->tk.line);
		else if (h_is(&h->tk, '}') || h_is(&h->tk, ')') ||
		    h_is(&h->tk, ']')) {
			if (close != 0)
				h_fail(h, "'%c' on line %d, but the group '{' "
				    "opened on line %d is still open (a '}' "
				    "is missing)", h->tk.c, h->tk.line, open);
			else
				h_fail(h, "'%c' on line %d closes nothing "
				    "(one too many, or its opening bracket is "
				    "missing)", h->tk.c, h->tk.line);
		} else if (h_starts_value(&h->tk) && (h->prev.kind ==
		    HK_STRING || h->prev.kind == HK_NUMBER ||
		    h->prev.kind == HK_BOOL || h_is(&h->prev, '}') ||
		    h_is(&h->prev, ')') || h_is(&h->prev, ']')))
			h_fail(h, "expected a setting name, found %s: a value "
			    "without a name, or a missing ',' in the list "
			    "before it", h_desc(&h->tk, d, sizeof(d)));
		else
			h_fail(h, "expected a setting name, found %s",
			    h_desc(&h->tk, d, sizeof(d)));
	}
}

const char *
cfg_syntax_hint(const char *text, char *buf, size_t size)
{
	struct hparse	h;

	if (text == NULL || size == 0)
		return NULL;
	memset(&h, 0, sizeof(h));
	h.p = text;
	h.line = 1;
	h.buf = buf;
	h.size = size;
	buf[0] = '\0';
	h_next(&h);
	h_settings(&h, 0, 0);
	return h.failed ? buf : NULL;
}
