/*
 * fuzz_smtp_cmd - the command side of smtp_parse: framer, verb split,
 * path domain and BDAT argument over arbitrary client bytes.
 *
 * The input is framed twice, once whole and once in chunks whose sizes
 * come from the input itself; both runs must see the same events.  Each
 * call gets a fresh exact-size copy so ASan catches any read past len.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_parse.h"

#define CHECK(c)	do { if (!(c)) abort(); } while (0)

static uint64_t
mix(uint64_t h, uint64_t v)
{
	h ^= v;
	return h * 0x100000001b3ULL;
}

static void
check_line(const char *line, size_t len)
{
	struct smtp_cmd	 cmd;
	const char	*dom;
	size_t		 domlen, i;
	uint64_t	 size;
	int		 last;
	char		*copy;

	for (i = 0; i < len; i++)
		CHECK(line[i] != '\0' && line[i] != '\r' && line[i] != '\n');
	copy = malloc(len ? len : 1);
	memcpy(copy, line, len);
	smtp_cmd_parse(copy, len, &cmd);
	CHECK(cmd.verb < SMTP_V__COUNT);
	CHECK(smtp_verb_name(cmd.verb) != NULL);
	CHECK(cmd.arg >= copy && cmd.arg + cmd.arglen <= copy + len);
	if (cmd.arglen > 0)
		CHECK(cmd.arg[cmd.arglen - 1] != ' ' &&
		    cmd.arg[cmd.arglen - 1] != '\t');
	if (smtp_path_domain(cmd.arg, cmd.arglen, &dom, &domlen) == 0) {
		CHECK(domlen > 0);
		CHECK(dom > cmd.arg && dom + domlen <= cmd.arg + cmd.arglen);
		CHECK(dom[-1] == '@');
	}
	if (smtp_bdat_parse(cmd.arg, cmd.arglen, &size, &last) == 0) {
		CHECK(size <= INT64_MAX);
		CHECK(last == 0 || last == 1);
		CHECK(cmd.arglen > 0 && cmd.arg[0] >= '0' && cmd.arg[0] <= '9');
	}
	free(copy);
}

/*
 * Frame data[0..size) delivered in chunks (chunk == 0: all at once).
 * Returns a hash of the events.
 */
static uint64_t
frame(const uint8_t *data, size_t size, size_t max_line, uint32_t seed,
    int chunked)
{
	struct smtp_framer	 f;
	enum smtp_parse		 r;
	uint64_t		 h = 0xcbf29ce484222325ULL;
	size_t			 start = 0, avail, linelen, consumed, i;
	char			*buf;
	int			 was;

	smtp_framer_init(&f, max_line);
	avail = chunked ? 0 : size;
	for (;;) {
		if (chunked && avail < size) {
			seed = seed * 1103515245u + 12345u;
			avail += 1 + (seed >> 16) % 64;
			if (avail > size)
				avail = size;
		}
		for (;;) {
			buf = malloc(avail - start ? avail - start : 1);
			memcpy(buf, data + start, avail - start);
			was = f.discarding;
			r = smtp_frame_line(&f, buf, avail - start, &linelen,
			    &consumed);
			CHECK(consumed <= avail - start);
			if (r == SMTP_OK) {
				CHECK(!was);
				CHECK(linelen < consumed && consumed <= max_line);
				CHECK(buf[consumed - 1] == '\n');
				check_line(buf, linelen);
				h = mix(h, 1);
				for (i = 0; i < linelen; i++)
					h = mix(h, (uint8_t)buf[i]);
			} else if (r == SMTP_INVALID) {
				CHECK(!was && consumed <= max_line);
				CHECK(buf[consumed - 1] == '\n');
				h = mix(h, 2);
			} else if (r == SMTP_TOOLONG) {
				/* Once per line, and only without an LF. */
				CHECK(!was);
				CHECK(avail - start >= max_line);
				CHECK(memchr(buf, '\n', max_line) == NULL);
				h = mix(h, 3);
			}
			free(buf);
			start += consumed;
			if (r == SMTP_AGAIN && consumed == 0)
				break;
		}
		if (avail == size)
			break;
	}
	return mix(h, avail - start);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t		max_line;
	uint32_t	seed = 0;
	size_t		i;

	if (size < 1)
		return 0;
	max_line = 2 + data[0] % 128;
	for (i = 0; i < size && i < 8; i++)
		seed = seed * 31 + data[i];
	CHECK(frame(data + 1, size - 1, max_line, seed, 0) ==
	    frame(data + 1, size - 1, max_line, seed, 1));
	CHECK(frame(data + 1, size - 1, 4096, seed, 0) ==
	    frame(data + 1, size - 1, 4096, seed ^ 0x5a5a, 1));
	return 0;
}
