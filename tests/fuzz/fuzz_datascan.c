/*
 * fuzz_datascan - the DATA end scanner must not care how content is
 * split.  The input is scanned whole, split at a point taken from its
 * first byte, split again at a point from its second, and (when short)
 * byte at a time; all must agree on the end offset, the bare flag and
 * where the first bare CR/LF was found, and with a plain reference.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_parse.h"

#define CHECK(c)	do { if (!(c)) abort(); } while (0)

struct result {
	size_t	end;		/* 0: not ended */
	size_t	bare_at;	/* absolute, (size_t)-1: none */
	int	bare;
};

static void
scan(const uint8_t *data, size_t size, const size_t *cuts, size_t ncuts,
    struct result *res)
{
	struct smtp_datascan	 ds;
	size_t			 at = 0, next, i, used, bat;
	char			*buf;
	int			 ended = 0;

	smtp_datascan_init(&ds);
	res->end = 0;
	res->bare_at = (size_t)-1;
	for (i = 0; i <= ncuts && !ended; i++) {
		next = i < ncuts ? cuts[i] : size;
		buf = malloc(next - at ? next - at : 1);
		memcpy(buf, data + at, next - at);
		used = smtp_datascan_feed(&ds, buf, next - at, &ended, &bat);
		free(buf);
		CHECK(used <= next - at);
		CHECK(ended || used == next - at);
		if (bat != (size_t)-1) {
			CHECK(bat < used);
			if (res->bare_at == (size_t)-1)
				res->bare_at = at + bat;
		}
		if (ended)
			res->end = at + used;
		at = next;
	}
	res->bare = ds.bare;
	CHECK(res->bare == (res->bare_at != (size_t)-1));
}

static void
oracle(const uint8_t *d, size_t n, struct result *res)
{
	size_t	i, lim;

	res->end = 0;
	for (i = 0; i + 3 <= n; i++)
		if (d[i] == '.' && d[i + 1] == '\r' && d[i + 2] == '\n' &&
		    (i == 0 || (i >= 2 && d[i - 2] == '\r' &&
		    d[i - 1] == '\n'))) {
			res->end = i + 3;
			break;
		}
	lim = res->end ? res->end : n;
	res->bare_at = (size_t)-1;
	for (i = 0; i < lim; i++) {
		if (d[i] == '\n' && (i == 0 || d[i - 1] != '\r')) {
			res->bare_at = i;
			break;
		}
		if (d[i] == '\r' && i + 1 < lim && d[i + 1] != '\n') {
			res->bare_at = i + 1;
			break;
		}
	}
	res->bare = res->bare_at != (size_t)-1;
}

static void
same(const struct result *a, const struct result *b)
{
	CHECK(a->end == b->end);
	CHECK(a->bare == b->bare);
	CHECK(a->bare_at == b->bare_at);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct result	 whole, part, ref;
	size_t		 cuts[2], *bytes, i;

	scan(data, size, NULL, 0, &whole);
	oracle(data, size, &ref);
	same(&whole, &ref);
	if (size == 0)
		return 0;

	cuts[0] = data[0] % (size + 1);
	scan(data, size, cuts, 1, &part);
	same(&whole, &part);
	if (size > 1) {
		cuts[1] = cuts[0] + data[1] % (size - cuts[0] + 1);
		scan(data, size, cuts, 2, &part);
		same(&whole, &part);
	}
	if (size <= 512) {
		bytes = malloc(size * sizeof(*bytes));
		for (i = 0; i < size; i++)
			bytes[i] = i;
		scan(data, size, bytes, size, &part);
		same(&whole, &part);
		free(bytes);
	}
	return 0;
}
