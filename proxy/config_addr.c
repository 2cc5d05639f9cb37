/*
 * config_addr - socket addresses as written in the config; part of config
 * (see config.h).
 *
 * "host:port", "[v6]:port" and (backend only) "unix:/path".  A host name
 * is resolved once, at load; a port is a number, never a service name.
 * The listener checks ask here whether a backend address would come back
 * to the proxy's own listener (a loop), with the local interfaces'
 * addresses standing in for a wildcard listen address.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <netinet/in.h>

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "config_int.h"

void
cfg_addr_clear(struct cfg_addr *a)
{
	free(a->text);
	free(a->unix_path);
	memset(a, 0, sizeof(*a));
}

static int
parse_port(const char *s, in_port_t *port)
{
	unsigned long	v = 0;
	size_t		i;

	if (s[0] == '\0' || strlen(s) > 5)
		return -1;
	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v < 1 || v > 65535)
		return -1;
	*port = htons((in_port_t)v);
	return 0;
}

/*
 * A host name is resolved here, once; of several addresses the first one
 * getaddrinfo() gives is kept.  On error nothing is left allocated in out.
 */
const char *
cfg_parse_addr(const char *text, const char *dir, int allow_unix,
    struct cfg_addr *out)
{
	struct addrinfo		 hints, *res = NULL;
	struct sockaddr_un	 sun;
	const char		*ps, *err = NULL;
	char			*host = NULL;
	in_port_t		 port;
	size_t			 hl;
	int			 r;

	memset(out, 0, sizeof(*out));
	if (text == NULL || text[0] == '\0')
		return "empty address";

	if (strncmp(text, "unix:", 5) == 0) {
		if (!allow_unix)
			return "unix: addresses are not allowed here";
		if (text[5] == '\0')
			return "empty unix socket path";
		if (cfg_has_ctl(text + 5))
			return "bad unix socket path";
		out->unix_path = cfg_resolve(dir, text + 5);
		if (strlen(out->unix_path) >= sizeof(sun.sun_path)) {
			cfg_addr_clear(out);
			return "unix socket path too long";
		}
		out->is_unix = 1;
		out->text = cfg_strdup(text);
		return NULL;
	}

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	if (text[0] == '[') {
		const char *rb = strchr(text, ']');

		if (rb == NULL)
			return "missing ']'";
		if (rb[1] != ':' || rb[2] == '\0')
			return "missing port";
		ps = rb + 2;
		hl = (size_t)(rb - text - 1);
		if (hl == 0)
			return "missing host";
		host = strndup(text + 1, hl);
		hints.ai_family = AF_INET6;
		hints.ai_flags = AI_NUMERICHOST;
	} else {
		const char *colon = strrchr(text, ':');

		if (colon == NULL || colon[1] == '\0')
			return "missing port";
		hl = (size_t)(colon - text);
		if (memchr(text, ':', hl) != NULL)
			return "IPv6 address must be in brackets";
		if (hl == 0)
			return "missing host";
		ps = colon + 1;
		host = strndup(text, hl);
		hints.ai_family = AF_UNSPEC;
	}
	if (host == NULL)
		return "out of memory";
	if (parse_port(ps, &port) == -1) {
		err = "bad port";
		goto done;
	}
	r = getaddrinfo(host, NULL, &hints, &res);
	if (r != 0 || res == NULL) {
		err = hints.ai_family == AF_INET6 ? "bad IPv6 address" :
		    "cannot resolve host";
		goto done;
	}
	if ((res->ai_family != AF_INET && res->ai_family != AF_INET6) ||
	    res->ai_addrlen > sizeof(out->ss)) {
		err = "cannot resolve host";
		goto done;
	}
	memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
	out->sslen = res->ai_addrlen;
	if (res->ai_family == AF_INET)
		((struct sockaddr_in *)&out->ss)->sin_port = port;
	else
		((struct sockaddr_in6 *)&out->ss)->sin6_port = port;
	out->text = cfg_strdup(text);
done:
	if (res != NULL)
		freeaddrinfo(res);
	free(host);
	return err;
}

int
cfg_addr_port(const struct cfg_addr *a)
{
	if (a->is_unix)
		return 0;
	if (a->ss.ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
	if (a->ss.ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
	return 0;
}

/* a as IPv4 when it is IPv4 or v4-mapped IPv6; else a copy. */
static void
addr_plain(const struct sockaddr_storage *a, struct sockaddr_storage *out)
{
	const struct sockaddr_in6	*s6 = (const struct sockaddr_in6 *)a;
	struct sockaddr_in		*s4 = (struct sockaddr_in *)out;

	memcpy(out, a, sizeof(*out));
	if (a->ss_family == AF_INET6 &&
	    IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
		memset(out, 0, sizeof(*out));
		s4->sin_family = AF_INET;
		s4->sin_port = s6->sin6_port;
		memcpy(&s4->sin_addr, &s6->sin6_addr.s6_addr[12], 4);
	}
}

/* The tests below take one family and ignore the port. */
static int
addr_is_any(const struct sockaddr_storage *a)
{
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		    htonl(INADDR_ANY);
	return a->ss_family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(
	    &((const struct sockaddr_in6 *)a)->sin6_addr);
}

static int
addr_is_loopback(const struct sockaddr_storage *a)
{
	if (a->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr)
		    >> 24) == 127;
	return a->ss_family == AF_INET6 && IN6_IS_ADDR_LOOPBACK(
	    &((const struct sockaddr_in6 *)a)->sin6_addr);
}

static int
addr_same(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return 0;
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		    ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	return a->ss_family == AF_INET6 &&
	    memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
	    &((const struct sockaddr_in6 *)b)->sin6_addr, 16) == 0;
}

/* Is a the unspecified, a loopback address, or one of this host's
 * interface addresses?  Where a wildcard listener would take a
 * connection to it. */
static int
addr_is_local(const struct sockaddr_storage *a)
{
	const struct sockaddr_in	*s4 = (const struct sockaddr_in *)a;
	const struct sockaddr_in6	*s6 = (const struct sockaddr_in6 *)a;
	struct ifaddrs			*ifs, *i;
	int				 r = 0;

	if (addr_is_any(a) || addr_is_loopback(a))
		return 1;
	if (getifaddrs(&ifs) < 0)
		return 0;
	for (i = ifs; i != NULL && !r; i = i->ifa_next) {
		if (i->ifa_addr == NULL || i->ifa_addr->sa_family !=
		    a->ss_family)
			continue;
		if (a->ss_family == AF_INET)
			r = memcmp(&((struct sockaddr_in *)(void *)
			    i->ifa_addr)->sin_addr, &s4->sin_addr, 4) == 0;
		else
			r = memcmp(&((struct sockaddr_in6 *)(void *)
			    i->ifa_addr)->sin6_addr, &s6->sin6_addr, 16) == 0;
	}
	freeifaddrs(ifs);
	return r;
}

/* a and b, v4-mapped ones as IPv4, into as and bs; 0 when they do not
 * share a TCP port. */
static int
addr_pair(const struct cfg_addr *a, const struct cfg_addr *b,
    struct sockaddr_storage *as, struct sockaddr_storage *bs)
{
	if (a->is_unix || b->is_unix || cfg_addr_port(a) != cfg_addr_port(b))
		return 0;
	addr_plain(&a->ss, as);
	addr_plain(&b->ss, bs);
	return 1;
}

/*
 * Would a connection to backend b arrive at listen address l, i.e. the
 * proxy connect to itself?  Same port and family, and the same address,
 * or l a wildcard and b an address of this host (loopback included), or
 * b unspecified (a connect to 0.0.0.0 goes to the loopback) and l
 * loopback.  (IPv6 listeners are IPV6_V6ONLY: no cross-family case.)
 */
int
cfg_addr_reaches(const struct cfg_addr *b, const struct cfg_addr *l)
{
	struct sockaddr_storage	bs, ls;

	if (!addr_pair(b, l, &bs, &ls) || bs.ss_family != ls.ss_family)
		return 0;
	if (addr_same(&bs, &ls))
		return 1;
	if (addr_is_any(&ls))
		return addr_is_local(&bs);
	return addr_is_any(&bs) && addr_is_loopback(&ls);
}

/*
 * Would binding a, without SO_REUSEPORT, fail with EADDRINUSE because of
 * a listener bound to l?  Same port, and the same address or a wildcard
 * on either side.  a is dual-stack (libuv clears IPV6_V6ONLY), so a's
 * "[::]" also holds the IPv4 port; listeners are IPV6_V6ONLY, so l's
 * "[::]" does not.
 */
int
cfg_addr_collides(const struct cfg_addr *a, const struct cfg_addr *l)
{
	struct sockaddr_storage	as, ls;

	if (!addr_pair(a, l, &as, &ls))
		return 0;
	if (as.ss_family != ls.ss_family)
		return as.ss_family == AF_INET6 && addr_is_any(&as);
	return addr_same(&as, &ls) || addr_is_any(&as) || addr_is_any(&ls);
}
