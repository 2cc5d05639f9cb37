/*
 * stp-sink - a fast SMTP sink for the benchmarks: the backend behind the
 * proxies under test, built so that it is never the bottleneck.
 *
 * Speaks ESMTP (EHLO offers PIPELINING, 8BITMIME, SIZE and
 * ENHANCEDSTATUSCODES), answers MAIL, RCPT, DATA, RSET, NOOP, HELO and QUIT,
 * takes message content until CRLF.CRLF and answers 250, and keeps no
 * message.  Pipelined commands are answered in one write per read.  Command
 * order is checked (RCPT needs MAIL, DATA needs RCPT) so that a proxy that
 * garbles a dialogue shows up as failed sessions in stp-bench.
 *
 * One thread, one epoll set, one shared read buffer; per connection only a
 * partial command line and the pending replies.  It listens on a loopback
 * address only, prints "LISTENING host:port" once ready (port 0 picks one),
 * and runs until SIGTERM/SIGINT or -t seconds, then prints its counters.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#define READ_SIZE	(256 * 1024)
#define LINE_MAX_LEN	4096
#define OUT_LIMIT	(64 * 1024)	/* stop reading above this backlog */
#define OUT_CAP		(1024 * 1024)	/* close a client that floods us */
#define MAX_EVENTS	256
#define ACCEPT_BURST	64
#define HOSTNAME	"sink.bench.test"

struct sconn {
	int	 fd;
	int	 in_data;	/* reading message content */
	int	 dm;		/* bytes of CRLF.CRLF matched */
	int	 has_mail;
	int	 nrcpt;
	int	 closing;	/* close once the replies are out */
	int	 skipping;	/* discarding the rest of an overlong line */
	int	 events;	/* epoll interest now */
	size_t	 linelen;
	char	 line[LINE_MAX_LEN];
	char	*out;
	size_t	 outlen, outoff, outcap;
};

static int			 ep = -1, lfd = -1;
static char			 rbuf[READ_SIZE];
static volatile sig_atomic_t	 stop;
static unsigned long long	 n_conns, n_msgs, n_bytes, n_cmds, n_open;

static void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("stp-sink: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void
set_events(struct sconn *c)
{
	struct epoll_event ev;
	int want = 0;

	if (c->outlen < OUT_LIMIT && !c->closing)
		want |= EPOLLIN;
	if (c->outoff < c->outlen)
		want |= EPOLLOUT;
	if (want == c->events)
		return;
	ev.events = (uint32_t)want;
	ev.data.ptr = c;
	if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) != 0)
		die("epoll_ctl: %s", strerror(errno));
	c->events = want;
}

static void
conn_free(struct sconn *c)
{
	close(c->fd);
	free(c->out);
	free(c);
	n_open--;
}

/* Queue a reply.  -1: the client let too much pile up. */
static int
reply(struct sconn *c, const char *s, size_t n)
{
	if (c->outoff == c->outlen)
		c->outoff = c->outlen = 0;
	if (c->outlen + n > c->outcap) {
		size_t cap = c->outcap ? c->outcap : 1024;
		char *p;

		while (cap < c->outlen + n)
			cap *= 2;
		if (cap > OUT_CAP || (p = realloc(c->out, cap)) == NULL)
			return -1;
		c->out = p;
		c->outcap = cap;
	}
	memcpy(c->out + c->outlen, s, n);
	c->outlen += n;
	return 0;
}

#define REPLY(c, lit)	reply((c), lit, sizeof(lit) - 1)

static int
verb_is(const char *line, size_t len, const char *verb)
{
	size_t vl = strlen(verb);

	return len >= vl && strncasecmp(line, verb, vl) == 0 &&
	    (len == vl || line[vl] == ' ');
}

/* One command line, CRLF (or LF) removed. */
static int
command(struct sconn *c, const char *line, size_t len)
{
	char buf[64];
	int n;

	n_cmds++;
	if (verb_is(line, len, "EHLO"))
		return REPLY(c, "250-" HOSTNAME "\r\n250-PIPELINING\r\n"
		    "250-8BITMIME\r\n250-SIZE 1073741824\r\n"
		    "250 ENHANCEDSTATUSCODES\r\n");
	if (verb_is(line, len, "HELO"))
		return REPLY(c, "250 " HOSTNAME "\r\n");
	if (verb_is(line, len, "MAIL")) {
		if (c->has_mail)
			return REPLY(c, "503 5.5.1 Error: nested MAIL "
			    "command\r\n");
		c->has_mail = 1;
		return REPLY(c, "250 2.1.0 Ok\r\n");
	}
	if (verb_is(line, len, "RCPT")) {
		if (!c->has_mail)
			return REPLY(c, "503 5.5.1 Error: need MAIL "
			    "command\r\n");
		c->nrcpt++;
		return REPLY(c, "250 2.1.5 Ok\r\n");
	}
	if (verb_is(line, len, "DATA")) {
		if (c->nrcpt == 0)
			return REPLY(c, "503 5.5.1 Error: need RCPT "
			    "command\r\n");
		c->in_data = 1;
		c->dm = 2;	/* at the start of a line */
		return REPLY(c, "354 End data with <CR><LF>.<CR><LF>\r\n");
	}
	if (verb_is(line, len, "RSET")) {
		c->has_mail = 0;
		c->nrcpt = 0;
		return REPLY(c, "250 2.0.0 Ok\r\n");
	}
	if (verb_is(line, len, "NOOP"))
		return REPLY(c, "250 2.0.0 Ok\r\n");
	if (verb_is(line, len, "QUIT")) {
		c->closing = 1;
		return REPLY(c, "221 2.0.0 Bye\r\n");
	}
	n = snprintf(buf, sizeof(buf), "502 5.5.2 Error: command not "
	    "recognized\r\n");
	return reply(c, buf, (size_t)n);
}

/*
 * Message content: find CRLF.CRLF, whose first CRLF may be the one that
 * ended the DATA line (dm starts at 2).  Returns the bytes used, up to
 * and including the terminator.
 */
static size_t
content(struct sconn *c, const char *p, size_t n)
{
	const char *s = p, *end = p + n;
	char buf[64];
	int len;

	while (s < end) {
		char ch;

		if (c->dm == 0) {
			const char *cr = memchr(s, '\r', (size_t)(end - s));

			if (cr == NULL) {
				s = end;
				break;
			}
			s = cr + 1;
			c->dm = 1;
			continue;
		}
		ch = *s++;
		switch (c->dm) {
		case 1:		/* CR */
			c->dm = ch == '\n' ? 2 : ch == '\r' ? 1 : 0;
			break;
		case 2:		/* CRLF */
			c->dm = ch == '.' ? 3 : ch == '\r' ? 1 : 0;
			break;
		case 3:		/* CRLF. */
			c->dm = ch == '\r' ? 4 : 0;
			break;
		case 4:		/* CRLF.CR */
			if (ch == '\n') {
				c->dm = 0;
				c->in_data = 0;
				c->has_mail = 0;
				c->nrcpt = 0;
				n_msgs++;
				len = snprintf(buf, sizeof(buf), "250 2.0.0 Ok: "
				    "queued as %llu\r\n", n_msgs);
				if (reply(c, buf, (size_t)len) != 0)
					c->closing = 2;
				n_bytes += (size_t)(s - p);
				return (size_t)(s - p);
			}
			c->dm = ch == '\r' ? 1 : 0;
			break;
		}
	}
	n_bytes += n;
	return n;
}

/* Everything read: content and command lines.  -1: drop the client. */
static int
consume(struct sconn *c, const char *p, size_t n)
{
	while (n > 0 && !c->closing) {
		const char *lf;
		size_t used;

		if (c->in_data) {
			used = content(c, p, n);
			p += used;
			n -= used;
			continue;
		}
		lf = memchr(p, '\n', n);
		used = lf ? (size_t)(lf - p) + 1 : n;
		if (c->skipping) {
			if (lf)
				c->skipping = 0;
		} else if (c->linelen + used > LINE_MAX_LEN) {
			c->linelen = 0;
			c->skipping = lf == NULL;
			if (REPLY(c, "500 5.5.2 Error: line too long\r\n") != 0)
				return -1;
		} else if (lf == NULL) {
			memcpy(c->line + c->linelen, p, used);
			c->linelen += used;
		} else {
			const char *line = p;
			size_t len = used - 1;

			if (c->linelen > 0) {
				memcpy(c->line + c->linelen, p, used);
				line = c->line;
				len = c->linelen + used - 1;
				c->linelen = 0;
			}
			if (len > 0 && line[len - 1] == '\r')
				len--;
			if (command(c, line, len) != 0)
				return -1;
		}
		p += used;
		n -= used;
	}
	return c->closing == 2 ? -1 : 0;
}

/* Send pending replies.  -1: the connection is gone (freed). */
static int
flush(struct sconn *c)
{
	while (c->outoff < c->outlen) {
		ssize_t w = write(c->fd, c->out + c->outoff,
		    c->outlen - c->outoff);

		if (w < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return 0;
			conn_free(c);
			return -1;
		}
		c->outoff += (size_t)w;
	}
	c->outoff = c->outlen = 0;
	if (c->closing) {
		conn_free(c);
		return -1;
	}
	return 0;
}

static void
on_conn(struct sconn *c, uint32_t events)
{
	int rounds;

	if ((events & EPOLLOUT) && flush(c) != 0)
		return;
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		for (rounds = 0; rounds < 8 && !c->closing &&
		    c->outlen < OUT_LIMIT; rounds++) {
			ssize_t r = read(c->fd, rbuf, sizeof(rbuf));

			if (r < 0 && (errno == EAGAIN || errno == EINTR))
				break;
			if (r <= 0) {
				conn_free(c);
				return;
			}
			if (consume(c, rbuf, (size_t)r) != 0) {
				conn_free(c);
				return;
			}
			if ((size_t)r < sizeof(rbuf))
				break;
		}
		if (flush(c) != 0)
			return;
	}
	set_events(c);
}

static void
on_accept(void)
{
	int i;

	for (i = 0; i < ACCEPT_BURST; i++) {
		struct epoll_event ev;
		struct sconn *c;
		int fd, one = 1;

		fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				fprintf(stderr, "stp-sink: accept: %s\n",
				    strerror(errno));
			return;
		}
		if ((c = calloc(1, sizeof(*c))) == NULL) {
			close(fd);
			return;
		}
		c->fd = fd;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		n_conns++;
		n_open++;
		REPLY(c, "220 " HOSTNAME " ESMTP stp-sink\r\n");
		c->events = EPOLLIN;
		ev.events = EPOLLIN;
		ev.data.ptr = c;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
			die("epoll_ctl: %s", strerror(errno));
		if (flush(c) == 0)
			set_events(c);
	}
}

static void
listen_on(const char *t)
{
	struct addrinfo hints, *res;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[256], hbuf[NI_MAXHOST], pbuf[NI_MAXSERV];
	const char *port, *colon;
	size_t hl;
	int one = 1, r;

	if (t[0] == '[') {
		const char *rb = strchr(t, ']');

		if (rb == NULL || rb[1] != ':' || (size_t)(rb - t) > sizeof(host))
			die("bad address '%s'", t);
		hl = (size_t)(rb - t - 1);
		memcpy(host, t + 1, hl);
		port = rb + 2;
	} else {
		if ((colon = strrchr(t, ':')) == NULL ||
		    (size_t)(colon - t) >= sizeof(host))
			die("bad address '%s' (host:port)", t);
		hl = (size_t)(colon - t);
		memcpy(host, t, hl);
		port = colon + 1;
	}
	host[hl] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST;
	if ((r = getaddrinfo(host, port, &hints, &res)) != 0)
		die("%s: %s", t, gai_strerror(r));
	if (res->ai_family == AF_INET) {
		const struct sockaddr_in *s4 = (void *)res->ai_addr;

		if ((ntohl(s4->sin_addr.s_addr) >> 24) != 127)
			die("%s: not a loopback address", t);
	} else if (res->ai_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (void *)res->ai_addr;

		if (!IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr))
			die("%s: not a loopback address", t);
	}
	lfd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (lfd < 0)
		die("socket: %s", strerror(errno));
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, res->ai_addr, res->ai_addrlen) != 0)
		die("bind %s: %s", t, strerror(errno));
	if (listen(lfd, 4096) != 0)
		die("listen: %s", strerror(errno));
	freeaddrinfo(res);
	getsockname(lfd, (struct sockaddr *)&ss, &sl);
	getnameinfo((struct sockaddr *)&ss, sl, hbuf, sizeof(hbuf), pbuf,
	    sizeof(pbuf), NI_NUMERICHOST | NI_NUMERICSERV);
	printf(ss.ss_family == AF_INET6 ? "LISTENING [%s]:%s\n" :
	    "LISTENING %s:%s\n", hbuf, pbuf);
	fflush(stdout);
}

int
main(int argc, char **argv)
{
	struct epoll_event evs[MAX_EVENTS], ev;
	struct rlimit rl;
	const char *addr = "127.0.0.1:0";
	double lifetime = 7200;
	time_t t_end;
	int ch, quiet = 0;

	while ((ch = getopt(argc, argv, "l:t:qh")) != -1) {
		switch (ch) {
		case 'l':
			addr = optarg;
			break;
		case 't':
			lifetime = atof(optarg);
			if (lifetime <= 0 || lifetime > 86400)
				die("-t: 1..86400 seconds");
			break;
		case 'q':
			quiet = 1;
			break;
		case 'h':
		default:
			fprintf(ch == 'h' ? stdout : stderr,
			    "usage: stp-sink [-l host:port] [-t seconds] [-q]\n"
			    "  -l  loopback address to listen on "
			    "[127.0.0.1:0]\n"
			    "  -t  exit after this many seconds [7200]\n"
			    "  -q  no counters at exit\n");
			return ch == 'h' ? 0 : 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		die("epoll_create1: %s", strerror(errno));
	listen_on(addr);
	ev.events = EPOLLIN;
	ev.data.ptr = NULL;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) != 0)
		die("epoll_ctl: %s", strerror(errno));
	t_end = time(NULL) + (time_t)lifetime;
	while (!stop && time(NULL) < t_end) {
		int n, i;

		n = epoll_wait(ep, evs, MAX_EVENTS, 500);
		if (n < 0 && errno != EINTR)
			die("epoll_wait: %s", strerror(errno));
		for (i = 0; i < n; i++) {
			if (evs[i].data.ptr == NULL)
				on_accept();
			else
				on_conn(evs[i].data.ptr, evs[i].events);
		}
	}
	if (!quiet)
		fprintf(stderr, "stp-sink: connections=%llu open=%llu "
		    "commands=%llu messages=%llu bytes=%llu\n", n_conns,
		    n_open, n_cmds, n_msgs, n_bytes);
	return 0;
}
