/*
 * test_wbuf - the bounded writer: each row is a buffer size and a list of
 * appends, with the bytes, length and fullness expected after them.
 * Every row also checks that nothing was written past size (canary
 * bytes), and each row is replayed at every smaller size: there the
 * result must be a prefix made of whole pieces, marked full.
 */
#include <stdint.h>
#include <string.h>

#include "unit.h"
#include "wbuf.h"

enum op { OP_END = 0, OP_PUT, OP_PUTS, OP_PUTC, OP_FMT, OP_U64, OP_NUL };

struct step {
	enum op		 op;
	const char	*s;		/* PUT (with n), PUTS */
	size_t		 n;
	uint64_t	 v;		/* PUTC, FMT (as %d), U64 */
};

#define PUT(s, n)	{ OP_PUT, (s), (n), 0 }
#define PUTS(s)		{ OP_PUTS, (s), 0, 0 }
#define PUTC(c)		{ OP_PUTC, NULL, 0, (c) }
#define FMT(v)		{ OP_FMT, NULL, 0, (v) }
#define U64(v)		{ OP_U64, NULL, 0, (v) }
#define NUL		{ OP_NUL, NULL, 0, 0 }

struct row {
	const char	*name;
	size_t		 size;
	struct step	 steps[8];
	const char	*want;		/* bytes expected (with NUL when asked) */
	size_t		 want_len;	/* len of the writer */
	int		 full;
	int		 nul;		/* a NUL expected right after the bytes */
};

static const struct row rows[] = {
	{ "empty", 8, { { OP_END, NULL, 0, 0 } }, "", 0, 0, 0 },
	{ "one string", 8, { PUTS("abc") }, "abc", 3, 0, 0 },
	{ "exact fit", 3, { PUTS("abc") }, "abc", 3, 0, 0 },
	{ "one over: nothing written", 2, { PUTS("abc") }, "", 0, 1, 0 },
	{ "whole pieces only", 5, { PUTS("abc"), PUTS("def") }, "abc", 3, 1, 0 },
	{ "full stays full", 5,
	    { PUTS("abc"), PUTS("defg"), PUTS("h") }, "abc", 3, 1, 0 },
	{ "binary with NUL", 4, { PUT("a\0b", 3), PUTC(0xff) },
	    "a\0b\xff", 4, 0, 0 },
	{ "zero bytes fit a full buffer", 2, { PUTS("ab"), PUT("", 0) },
	    "ab", 2, 0, 0 },
	{ "bytes", 3, { PUTC('x'), PUTC('\r'), PUTC('\n') }, "x\r\n", 3, 0, 0 },
	{ "formatted", 16, { PUTS("n="), FMT(-42), PUTC(';') }, "n=-42;", 6,
	    0, 0 },
	{ "formatted, no room: nothing", 4, { PUTS("n="), FMT(-42) }, "n=",
	    2, 1, 0 },
	{ "u64 max", 20, { U64(UINT64_MAX) }, "18446744073709551615", 20, 0, 0 },
	{ "u64 zero", 4, { U64(0) }, "0", 1, 0, 0 },
	{ "nul after text", 4, { PUTS("abc"), NUL }, "abc\0", 3, 0, 1 },
	{ "nul, no room", 3, { PUTS("abc"), NUL }, "abc", 3, 1, 0 },
	{ "nothing at size 0", 0, { PUTS("a"), PUTC('b') }, "", 0, 1, 0 },
};

#define CANARY	0x5a
#define PAD	16

/* Run the steps into a buffer of size bytes; returns the writer. */
static struct wbuf
run(const struct row *r, size_t size, unsigned char *mem)
{
	struct wbuf		 w;
	const struct step	*st;

	memset(mem, CANARY, size + PAD);
	wbuf_init(&w, mem, size);
	for (st = r->steps; st < r->steps + 8 && st->op != OP_END; st++) {
		switch (st->op) {
		case OP_PUT:
			wbuf_put(&w, st->s, st->n);
			break;
		case OP_PUTS:
			wbuf_puts(&w, st->s);
			break;
		case OP_PUTC:
			wbuf_putc(&w, (unsigned char)st->v);
			break;
		case OP_FMT:
			wbuf_fmt(&w, "%d", (int)(int64_t)st->v);
			break;
		case OP_U64:
			wbuf_u64(&w, st->v);
			break;
		case OP_NUL:
			wbuf_nul(&w);
			break;
		case OP_END:
			break;
		}
	}
	return w;
}

static int
canary_intact(const unsigned char *mem, size_t from, size_t to)
{
	size_t	i;

	for (i = from; i < to; i++)
		if (mem[i] != CANARY)
			return 0;
	return 1;
}

static void
test_rows(void)
{
	unsigned char	 mem[64 + PAD];
	struct wbuf	 w;
	const struct row *r;
	size_t		 i, size;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		r = &rows[i];
		w = run(r, r->size, mem);
		if (w.len != r->want_len || (int)w.full != r->full)
			fprintf(stderr, "  row \"%s\"\n", r->name);
		ASSERT_EQ(w.len, r->want_len);
		ASSERT_EQ(w.full, r->full);
		ASSERT_MEM_EQ(mem, w.len + r->nul, r->want, r->want_len + r->nul);
		ASSERT_TRUE(canary_intact(mem, r->size, r->size + PAD));

		/* Smaller buffers: a prefix of whole pieces, marked full. */
		for (size = 0; size < r->size; size++) {
			w = run(r, size, mem);
			ASSERT_TRUE(w.len <= size);
			ASSERT_TRUE(memcmp(mem, r->want, w.len) == 0);
			ASSERT_TRUE(canary_intact(mem, size, size + PAD));
			if (w.len < r->want_len)
				ASSERT_TRUE(w.full);
		}
	}
}

/* The NUL of wbuf_nul() sits right after the bytes and is not counted. */
static void
test_nul(void)
{
	char		 mem[8];
	struct wbuf	 w;

	memset(mem, 'x', sizeof(mem));
	wbuf_init(&w, mem, sizeof(mem));
	ASSERT_TRUE(wbuf_puts(&w, "hi"));
	ASSERT_TRUE(wbuf_nul(&w));
	ASSERT_EQ(w.len, 2);
	ASSERT_STR_EQ(mem, "hi");
	ASSERT_TRUE(wbuf_puts(&w, "!"));	/* over the NUL */
	ASSERT_TRUE(wbuf_nul(&w));
	ASSERT_STR_EQ(mem, "hi!");
}

/* Open fields: rewind to a mark (drop a half-written item), patch a
 * length written earlier. */
static void
test_rewind_patch(void)
{
	char		 mem[8];
	struct wbuf	 w;
	size_t		 mark;

	wbuf_init(&w, mem, sizeof(mem));
	wbuf_puts(&w, "k=");
	mark = w.len;
	wbuf_putc(&w, 0);
	wbuf_puts(&w, "1234567");	/* does not fit */
	ASSERT_TRUE(w.full);
	w.len = mark;
	ASSERT_EQ(w.len, 2);
	ASSERT_TRUE(w.full);		/* still full: nothing more goes in */
	ASSERT_FALSE(wbuf_puts(&w, "x"));
	ASSERT_EQ(w.len, 2);

	wbuf_init(&w, mem, sizeof(mem));
	wbuf_putc(&w, 0);
	wbuf_puts(&w, "abc");
	w.p[0] = (char)(w.len - 1);
	ASSERT_MEM_EQ(mem, w.len, "\3abc", 4);
}

/* wbuf_fmt: a piece longer than WBUF_FMT_MAX marks full, writes nothing. */
static void
test_fmt_max(void)
{
	static char	mem[2 * WBUF_FMT_MAX];
	struct wbuf	w;

	wbuf_init(&w, mem, sizeof(mem));
	ASSERT_TRUE(wbuf_fmt(&w, "%*d", WBUF_FMT_MAX, 7));
	ASSERT_EQ(w.len, WBUF_FMT_MAX);
	wbuf_init(&w, mem, sizeof(mem));
	ASSERT_FALSE(wbuf_fmt(&w, "%*d", WBUF_FMT_MAX + 1, 7));
	ASSERT_EQ(w.len, 0);
	ASSERT_TRUE(w.full);
}

int
main(void)
{
	test_rows();
	test_nul();
	test_rewind_patch();
	test_fmt_max();
	return unit_done();
}
