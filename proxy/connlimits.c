/*
 * connlimits - the connection limits of one listener (max_connections,
 * max_connections_per_ip), counted across all workers.
 *
 * The only state the workers share: one mutex per listener, taken when a
 * connection is accepted (limits_take) and when it closes
 * (limits_release), never on the data path.  Per-address counts live in
 * a small hash table (FNV-1a of the address, IPv4 as v4-mapped IPv6, so
 * one client counts once whichever way it arrives); an address whose
 * count drops to 0 leaves the table.  The counts live as long as the
 * listener's name (kept across reloads, see worker.h's lsn_shared).
 */
#include <sys/socket.h>

#include <netinet/in.h>

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "connlimits.h"

#define LIMITS_BUCKETS	1024

struct ip_count {
	struct ip_count	*next;
	uint8_t		 key[16];
	int		 count;
};

struct lsn_limits {
	pthread_mutex_t	 mu;
	int		 total;
	struct ip_count	*b[LIMITS_BUCKETS];
};

struct lsn_limits *
limits_new(void)
{
	struct lsn_limits *l;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		return NULL;
	pthread_mutex_init(&l->mu, NULL);
	return l;
}

void
limits_free(struct lsn_limits *l)
{
	struct ip_count *c, *n;
	size_t i;

	if (l == NULL)
		return;
	for (i = 0; i < LIMITS_BUCKETS; i++)
		for (c = l->b[i]; c != NULL; c = n) {
			n = c->next;
			free(c);
		}
	pthread_mutex_destroy(&l->mu);
	free(l);
}

/* The address as 16 bytes (IPv4 as v4-mapped IPv6) and its bucket. */
static unsigned
limits_key(const struct sockaddr *sa, uint8_t key[16])
{
	unsigned h = 2166136261u;
	size_t i;

	memset(key, 0, 16);
	if (sa->sa_family == AF_INET) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6)
		memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
	for (i = 0; i < 16; i++)
		h = (h ^ key[i]) * 16777619u;
	return h % LIMITS_BUCKETS;
}

int
limits_take(struct lsn_limits *l, const struct cfg_listener *lc,
    const struct sockaddr *sa)
{
	uint8_t key[16];
	unsigned h = limits_key(sa, key);
	struct ip_count *c;
	int r = -1;

	pthread_mutex_lock(&l->mu);
	for (c = l->b[h]; c != NULL; c = c->next)
		if (memcmp(c->key, key, 16) == 0)
			break;
	if (l->total >= lc->limits.max_connections ||
	    (c != NULL && c->count >= lc->limits.max_connections_per_ip))
		goto out;
	if (c == NULL) {
		if ((c = calloc(1, sizeof(*c))) == NULL)
			goto out;
		memcpy(c->key, key, 16);
		c->next = l->b[h];
		l->b[h] = c;
	}
	c->count++;
	l->total++;
	r = 0;
out:
	pthread_mutex_unlock(&l->mu);
	return r;
}

void
limits_release(struct lsn_limits *l, const struct sockaddr *sa)
{
	uint8_t key[16];
	unsigned h = limits_key(sa, key);
	struct ip_count *c, **pp;

	pthread_mutex_lock(&l->mu);
	for (pp = &l->b[h]; (c = *pp) != NULL; pp = &c->next)
		if (memcmp(c->key, key, 16) == 0) {
			l->total--;
			if (--c->count == 0) {
				*pp = c->next;
				free(c);
			}
			break;
		}
	pthread_mutex_unlock(&l->mu);
}
