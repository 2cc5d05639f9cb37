/*
 * unit.h - a tiny assertion kit for the table-driven unit tests.
 *
 * Each ASSERT_* counts one check, prints both operands with file:line on
 * failure and carries on (so one run shows every broken row).  A test
 * file's main() ends with "return unit_done();", which prints
 * "N passed, M failed" on its own line and returns non-zero on failure.
 * Header-only: the counters are static, one set per test binary.
 */
#ifndef STP_UNIT_H
#define STP_UNIT_H

#include <stdio.h>
#include <string.h>

static unsigned long unit_passed, unit_failed;

static inline void
unit_fail_head(const char *file, int line, const char *what)
{
	unit_failed++;
	fprintf(stderr, "%s:%d: FAIL %s\n", file, line, what);
}

/* Print a byte string with C escapes so CR/LF/NUL show. */
static inline void
unit_print_bytes(const char *tag, const void *p, size_t n)
{
	const unsigned char	*s = p;
	size_t			 i;

	fprintf(stderr, "    %s (%zu): \"", tag, n);
	for (i = 0; i < n && i < 512; i++) {
		if (s[i] == '\r')
			fputs("\\r", stderr);
		else if (s[i] == '\n')
			fputs("\\n", stderr);
		else if (s[i] == '\t')
			fputs("\\t", stderr);
		else if (s[i] == '"' || s[i] == '\\')
			fprintf(stderr, "\\%c", s[i]);
		else if (s[i] < 0x20 || s[i] > 0x7e)
			fprintf(stderr, "\\x%02x", s[i]);
		else
			fputc(s[i], stderr);
	}
	fputs(i < n ? "\"...\n" : "\"\n", stderr);
}

#define ASSERT_EQ(a, b) do {						\
	long long unit_a_ = (long long)(a), unit_b_ = (long long)(b);	\
	if (unit_a_ == unit_b_)						\
		unit_passed++;						\
	else {								\
		unit_fail_head(__FILE__, __LINE__, #a " == " #b);	\
		fprintf(stderr, "    left:  %lld\n    right: %lld\n",	\
		    unit_a_, unit_b_);					\
	}								\
} while (0)

#define ASSERT_NE(a, b) do {						\
	long long unit_a_ = (long long)(a), unit_b_ = (long long)(b);	\
	if (unit_a_ != unit_b_)						\
		unit_passed++;						\
	else {								\
		unit_fail_head(__FILE__, __LINE__, #a " != " #b);	\
		fprintf(stderr, "    both:  %lld\n", unit_a_);		\
	}								\
} while (0)

#define ASSERT_TRUE(c)	ASSERT_NE(!!(c), 0)
#define ASSERT_FALSE(c)	ASSERT_EQ(!!(c), 0)

/* Byte strings: lengths and contents. */
#define ASSERT_MEM_EQ(a, alen, b, blen) do {				\
	const void *unit_pa_ = (a), *unit_pb_ = (b);			\
	size_t unit_la_ = (alen), unit_lb_ = (blen);			\
	if (unit_la_ == unit_lb_ &&					\
	    (unit_la_ == 0 || memcmp(unit_pa_, unit_pb_, unit_la_) == 0)) \
		unit_passed++;						\
	else {								\
		unit_fail_head(__FILE__, __LINE__, #a " == " #b);	\
		unit_print_bytes("left ", unit_pa_, unit_la_);		\
		unit_print_bytes("right", unit_pb_, unit_lb_);		\
	}								\
} while (0)

#define ASSERT_STR_EQ(a, b) do {					\
	const char *unit_sa_ = (a), *unit_sb_ = (b);			\
	if (unit_sa_ != NULL && unit_sb_ != NULL &&			\
	    strcmp(unit_sa_, unit_sb_) == 0)				\
		unit_passed++;						\
	else {								\
		unit_fail_head(__FILE__, __LINE__, #a " == " #b);	\
		fprintf(stderr, "    left:  \"%s\"\n    right: \"%s\"\n", \
		    unit_sa_ ? unit_sa_ : "(null)",			\
		    unit_sb_ ? unit_sb_ : "(null)");			\
	}								\
} while (0)

/* Print which table row a failure came from. */
#define UNIT_ROW(fmt, ...) do {						\
	if (unit_failed != unit_row_failed_) {				\
		fprintf(stderr, "    ^ in " fmt "\n", __VA_ARGS__);	\
		unit_row_failed_ = unit_failed;				\
	}								\
} while (0)
static unsigned long unit_row_failed_;

static inline int
unit_done(void)
{
	(void)unit_row_failed_;
	printf("%lu passed, %lu failed\n", unit_passed, unit_failed);
	return unit_failed != 0;
}

#endif
