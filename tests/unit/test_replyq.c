/*
 * test_replyq - reply ordering under pipelining (RFC 2920).
 *
 * Each row is a script of operations on a queue and the replies the client
 * must see, in order.  Ops: 'L' push a local reply (its text is the next
 * letter), 'B' push a backend slot, 'F' the backend answers (text = next
 * letter), 'D' drain every ready head.
 */
#include <stdlib.h>
#include <string.h>

#include "replyq.h"
#include "unit.h"

struct row {
	const char	*script;
	const char	*seen;		/* what the client saw, in order */
	const char	*dropped;	/* backend replies with no slot */
	size_t		 left;		/* slots still queued at the end */
};

static const struct row rows[] = {
	{ "BFxD",		"x",	"",	0 },
	{ "LaD",		"a",	"",	0 },
	{ "BLaD",		"",	"",	2 },	/* local waits behind backend */
	{ "BLaFxD",		"xa",	"",	0 },
	{ "BBLaBFxFyFzD",	"xyaz",	"",	0 },
	{ "BBFxDLaD",		"x",	"",	2 },	/* a waits behind the 2nd B */
	{ "LaBLbBFxFyD",	"axby",	"",	0 },
	{ "FxD",		"",	"x",	0 },	/* unsolicited: dropped */
	{ "BFxFyD",		"x",	"y",	0 },
	{ "LaLbLcD",		"abc",	"",	0 },
	{ "BBBFxD",		"x",	"",	2 },
	/* More slots than the first allocation: the ring grows, in order. */
	{ "BBBLaBBBFxFyFzFuFvFwD", "xyzauvw", "", 0 },
	{ "BFxDBBBBLaBBFyFzFuFvFwFtD", "xyzuvawt", "", 0 },
};

static void
run(const struct row *r)
{
	struct replyq q;
	struct reply_slot *s;
	char seen[64], dropped[64], t;
	size_t ns = 0, nd = 0;
	const char *p;

	ASSERT_EQ(replyq_init(&q, 8), 0);
	for (p = r->script; *p; p++) {
		switch (*p) {
		case 'L':
			t = *++p;
			ASSERT_TRUE(replyq_push_local(&q, 0, 0, &t, 1) != NULL);
			break;
		case 'B':
			ASSERT_TRUE(replyq_push_backend(&q, 0, 0) != NULL);
			break;
		case 'F':
			t = *++p;
			if ((s = replyq_waiting(&q)) == NULL)
				dropped[nd++] = t;
			else
				ASSERT_EQ(replyq_fill(&q, s, &t, 1), 0);
			break;
		case 'D':
			while ((s = replyq_ready_head(&q)) != NULL) {
				seen[ns++] = s->text[0];
				replyq_pop(&q);
			}
			break;
		}
	}
	ASSERT_MEM_EQ(seen, ns, r->seen, strlen(r->seen));
	ASSERT_MEM_EQ(dropped, nd, r->dropped, strlen(r->dropped));
	ASSERT_EQ(q.n, r->left);
	replyq_free(&q);
}

int
main(void)
{
	struct replyq q;
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		run(&rows[i]);

	/* Bounded: a full queue refuses more, and says how much is left. */
	ASSERT_EQ(replyq_init(&q, 3), 0);
	ASSERT_EQ(replyq_space(&q), 3);
	ASSERT_TRUE(replyq_push_backend(&q, 0, 0) != NULL);
	ASSERT_TRUE(replyq_push_local(&q, 0, 0, "a", 1) != NULL);
	ASSERT_TRUE(replyq_push_backend(&q, 0, RS_CLOSE) != NULL);
	ASSERT_EQ(replyq_space(&q), 0);
	ASSERT_TRUE(replyq_push_backend(&q, 0, 0) == NULL);
	ASSERT_TRUE(replyq_push_local(&q, 0, 0, "b", 1) == NULL);
	ASSERT_EQ(q.nwait, 2);
	/* Flags survive filling; the ring wraps. */
	ASSERT_EQ(replyq_fill(&q, replyq_waiting(&q), "x", 1), 0);
	ASSERT_EQ(q.nwait, 1);
	replyq_pop(&q);
	replyq_pop(&q);
	ASSERT_TRUE(replyq_push_local(&q, 0, 0, "c", 1) != NULL);
	ASSERT_TRUE(replyq_ready_head(&q) == NULL);
	ASSERT_EQ(replyq_fill(&q, replyq_waiting(&q), "y", 1), 0);
	ASSERT_TRUE(replyq_ready_head(&q) != NULL);
	ASSERT_TRUE(replyq_ready_head(&q)->flags & RS_CLOSE);
	ASSERT_EQ(q.nwait, 0);
	replyq_free(&q);
	return unit_done();
}
