/*
 * stp-bench - load generator for SMTP STARTTLS front-ends.
 *
 * Runs up to -c SMTP sessions at once against host:port, -n in all, for at
 * most -t seconds.  One session: greeting, EHLO, STARTTLS, TLS handshake
 * (TLS 1.3, X25519 first; optional SNI and session resumption), EHLO again,
 * -m messages of -s bytes (MAIL, RCPT, DATA pipelined in one write when the
 * server advertises PIPELINING), QUIT.  Every reply code is checked; a
 * session that meets an unexpected reply, a closed connection, a TLS error
 * or a time-out is counted as failed, by kind and by step, and never stops
 * the run.
 *
 * --idle K --hold T: open K sessions (-c of them in progress at once), take
 * each through STARTTLS, TLS and EHLO, print "ESTABLISHED ..." when all are
 * up, hold them idle for T seconds, then QUIT each.  --idle-txn also sends
 * MAIL and RCPT before holding, so that a proxy which connects to its
 * backend only for a transaction (nginx) holds that connection too.
 *
 * One thread, one epoll set, non-blocking sockets with OpenSSL on the file
 * descriptor.  Only loopback addresses are accepted as targets.  Every
 * operation has a time-out (-T); the whole run ends by -t + -T (plus the
 * hold time), whatever the server does.
 *
 * Output: a human-readable summary, then one "RESULT key=value ..." line.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/ssl.h>

#define IN_SIZE		4096	/* one reply line must fit */
#define CMD_SIZE	512
#define MAX_EXPECT	8
#define WRITE_CHUNK	(256 * 1024)
#define MAX_EVENTS	512
#define TICK_MS		50
#define MAX_SAMPLES	5	/* failures described on stderr */
#define MAX_LATENCIES	10000000	/* sessions whose latencies are kept */
#define EHLO_NAME	"bench.client.example"
#define MAIL_FROM	"bench@client.example"
#define RCPT_TO		"sink@server.example"

enum step {
	ST_CONNECT,
	ST_GREETING,
	ST_EHLO,
	ST_STARTTLS,
	ST_HANDSHAKE,
	ST_EHLO_TLS,
	ST_MAIL,
	ST_RCPT,
	ST_DATA,
	ST_BODY,
	ST_DOT,
	ST_IDLE,
	ST_QUIT,
	ST_COUNT
};

static const char *step_names[ST_COUNT] = {
	"connect", "greeting", "ehlo", "starttls", "handshake", "ehlo_tls",
	"mail", "rcpt", "data", "body", "dot", "idle", "quit"
};

/* The reply code each step waits for (0: not a reply). */
static const int step_code[ST_COUNT] = {
	0, 220, 250, 220, 0, 250, 250, 250, 354, 0, 250, 0, 221
};

enum err_kind {
	EK_CONNECT,	/* connect() failed */
	EK_TIMEOUT,	/* no progress within -T seconds */
	EK_CLOSED,	/* the server closed the connection */
	EK_IO,		/* read/write error */
	EK_TLS,		/* handshake or record error */
	EK_REPLY,	/* a reply code other than the expected one */
	EK_PROTO,	/* malformed reply, missing STARTTLS, stray bytes */
	EK_CUT,		/* still running at the hard end of the run */
	EK_COUNT
};

static const char *kind_names[EK_COUNT] = {
	"connect", "timeout", "closed", "io", "tls", "reply", "proto", "cut"
};

struct conn {
	int		 fd;		/* -1: slot free */
	SSL		*ssl;
	enum step	 step;		/* what the session is doing now */
	int		 want_out;	/* epoll interest holds EPOLLOUT */
	int		 tls_want_write;
	int		 pipelining;
	int		 has_starttls;
	int		 msgs;		/* messages accepted so far */
	int		 estab;		/* counted in "establishing" */
	double		 t_start;	/* connect() */
	double		 t_starttls;	/* STARTTLS written */
	double		 t_tls;		/* handshake done */
	double		 t_ready;	/* EHLO after TLS answered */
	double		 deadline;
	/* output: one region at a time, commands or the shared message */
	const char	*out;
	size_t		 outlen;
	size_t		 outoff;
	char		 cmd[CMD_SIZE];
	/* replies awaited, in order */
	enum step	 expect[MAX_EXPECT];
	int		 nexpect;
	/* input, and the reply being parsed (multi-line) */
	char		 in[IN_SIZE];
	size_t		 inlen;
	int		 rcode;		/* code of the reply in progress, 0: none */
};

struct opts {
	const char	*target;
	int		 conc;
	long		 total;
	double		 tlimit;
	int		 msgs;
	long		 size;
	double		 op_timeout;
	const char	*sni;
	int		 resume;
	long		 idle;
	double		 hold;
	int		 idle_txn;
};

static struct opts	 o = {
	.conc = 1, .total = 100, .tlimit = 10, .msgs = 1, .size = 1024,
	.op_timeout = 30, .hold = 10
};

static struct sockaddr_storage	 target_sa;
static socklen_t		 target_len;
static SSL_CTX			*ctx;
static SSL_SESSION		*saved_session;
static int			 ep = -1;
static struct conn		*conns;
static long			 nslots;
static char			*message;	/* content + ".\r\n" */
static size_t			 message_len;	/* without ".\r\n" */

/* Run state and counters. */
static long	 started, active, establishing, ok_sessions, failed_sessions;
static long	 messages_done, resumed, idle_ready;
static long	 errs[EK_COUNT][ST_COUNT];
static int	 samples;
static double	 t_begin, t_first_done, t_last_done;
static double	*lat_hs, *lat_ready, *lat_sess;
static long	 nlat, lat_cap;
static char	 neg_proto[32], neg_cipher[64], neg_group[32];
static volatile sig_atomic_t interrupted;

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("stp-bench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: stp-bench [options] host:port\n"
	    "  -c N        sessions in progress at once [1]\n"
	    "  -n N        sessions in all [100]\n"
	    "  -t SECONDS  start no session after this [10]\n"
	    "  -m N        messages per session [1]\n"
	    "  -s BYTES    message size (content as sent, dot-stuffed) [1024];\n"
	    "              suffixes k and m mean KiB and MiB\n"
	    "  -T SECONDS  time-out of each operation [30]\n"
	    "  --sni NAME  send SNI\n"
	    "  --resume    resume TLS sessions (tickets) after the first\n"
	    "  --idle K    open K sessions, hold them idle, then QUIT\n"
	    "  --hold SECONDS  how long --idle holds [10]\n"
	    "  --idle-txn  with --idle: send MAIL and RCPT before holding\n"
	    "host must be a loopback address (127.0.0.0/8 or ::1).\n");
}

static long
parse_long(const char *s, const char *what, long lo, long hi)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno == 0 && end != s) {
		if (*end == 'k' || *end == 'K') {
			v *= 1024;
			end++;
		} else if (*end == 'm' || *end == 'M') {
			v *= 1024 * 1024;
			end++;
		}
	}
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
		die("%s: bad value '%s' (%ld..%ld)", what, s, lo, hi);
	return v;
}

static double
parse_double(const char *s, const char *what, double lo, double hi)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(v >= lo && v <= hi))
		die("%s: bad value '%s' (%g..%g)", what, s, lo, hi);
	return v;
}

/* Resolve host:port or [v6]:port to a loopback address; refuse others. */
static void
parse_target(const char *t)
{
	struct addrinfo hints, *res;
	char host[256];
	const char *port, *colon;
	size_t hl;
	int r;

	if (t[0] == '[') {
		const char *rb = strchr(t, ']');

		if (rb == NULL || rb[1] != ':')
			die("bad target '%s'", t);
		hl = (size_t)(rb - t - 1);
		if (hl >= sizeof(host))
			die("bad target '%s'", t);
		memcpy(host, t + 1, hl);
		port = rb + 2;
	} else {
		if ((colon = strrchr(t, ':')) == NULL)
			die("bad target '%s' (host:port)", t);
		hl = (size_t)(colon - t);
		if (hl >= sizeof(host))
			die("bad target '%s'", t);
		memcpy(host, t, hl);
		port = colon + 1;
	}
	host[hl] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
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
	} else
		die("%s: unsupported address family", t);
	memcpy(&target_sa, res->ai_addr, res->ai_addrlen);
	target_len = res->ai_addrlen;
	freeaddrinfo(res);
}

static void
raise_nofile(long need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	if ((long)rl.rlim_cur >= need)
		return;
	if ((long)rl.rlim_max < need) {
		rl.rlim_max = (rlim_t)need;
		rl.rlim_cur = (rlim_t)need;
		if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
			return;
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	getrlimit(RLIMIT_NOFILE, &rl);
	if ((long)rl.rlim_cur < need)
		fprintf(stderr, "stp-bench: warning: RLIMIT_NOFILE is %ld, "
		    "%ld wanted\n", (long)rl.rlim_cur, need);
}

/*
 * The message: RFC 5322 headers, then lines of at most 80 bytes (CRLF
 * included), every 16th starting with a dot, sent stuffed as "..".
 * message_len is exactly -s when -s leaves room for the headers.
 */
static void
build_message(void)
{
	char hdr[1024], date[64];
	time_t t = time(NULL);
	struct tm tm;
	size_t hl, pos, left, n, i;
	long line;

	gmtime_r(&t, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	hl = (size_t)snprintf(hdr, sizeof(hdr),
	    "From: Bench Sender <" MAIL_FROM ">\r\n"
	    "To: Sink <" RCPT_TO ">\r\n"
	    "Subject: stp-bench message of %ld bytes\r\n"
	    "Date: %s\r\n"
	    "Message-ID: <stp-bench.%ld.%ld@client.example>\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=us-ascii\r\n"
	    "\r\n", o.size, date, (long)getpid(), (long)t);
	left = (size_t)o.size > hl + 3 ? (size_t)o.size - hl : 3;
	message_len = hl + left;
	if ((message = malloc(message_len + 3)) == NULL)
		die("out of memory");
	memcpy(message, hdr, hl);
	pos = hl;
	for (line = 0; left > 0; line++) {
		n = left > 80 ? 80 : left;
		if (left - n > 0 && left - n < 3)
			n = left - 3;	/* leave a whole line, "x\r\n" at least */
		i = 0;
		if (line % 16 == 7 && n >= 5) {
			message[pos++] = '.';
			message[pos++] = '.';
			i = 2;
		}
		for (; i < n - 2; i++)
			message[pos++] = (char)('a' + (line + i) % 26);
		message[pos++] = '\r';
		message[pos++] = '\n';
		left -= n;
	}
	memcpy(message + pos, ".\r\n", 3);
}

static void
set_events(struct conn *c, int want_out)
{
	struct epoll_event ev;

	if (want_out == c->want_out)
		return;
	ev.events = EPOLLIN | (want_out ? EPOLLOUT : 0);
	ev.data.ptr = c;
	if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) != 0)
		die("epoll_ctl: %s", strerror(errno));
	c->want_out = want_out;
}

static void
conn_close(struct conn *c)
{
	if (c->ssl != NULL) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	if (c->estab) {
		c->estab = 0;
		establishing--;
	}
	active--;
}

static void
conn_fail(struct conn *c, enum err_kind k, const char *fmt, ...)
{
	enum step st = c->nexpect > 0 ? c->expect[0] : c->step;

	errs[k][st]++;
	failed_sessions++;
	if (c->step == ST_IDLE)
		idle_ready--;
	if (samples < MAX_SAMPLES) {
		va_list ap;

		samples++;
		fprintf(stderr, "stp-bench: session failed at %s: %s: ",
		    step_names[st], kind_names[k]);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	}
	conn_close(c);
}

static void
conn_done(struct conn *c)
{
	double t = now_s();

	if (c->ssl != NULL) {
		ERR_clear_error();
		SSL_shutdown(c->ssl);	/* close_notify; no wait for theirs */
	}
	ok_sessions++;
	if (nlat < lat_cap) {
		lat_hs[nlat] = (c->t_tls - c->t_starttls) * 1e3;
		lat_ready[nlat] = (c->t_ready - c->t_start) * 1e3;
		lat_sess[nlat] = (t - c->t_start) * 1e3;
		nlat++;
	}
	if (c->ssl != NULL && SSL_session_reused(c->ssl))
		resumed++;
	if (t_first_done == 0)
		t_first_done = t;
	t_last_done = t;
	conn_close(c);
}

static void
queue_out(struct conn *c, const char *p, size_t len)
{
	c->out = p;
	c->outlen = len;
	c->outoff = 0;
}

static void
queue_cmd(struct conn *c, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(c->cmd, sizeof(c->cmd), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(c->cmd))
		die("command too long");
	queue_out(c, c->cmd, (size_t)n);
}

static void
expect(struct conn *c, enum step st)
{
	if (c->nexpect == MAX_EXPECT)
		die("too many replies awaited");
	c->expect[c->nexpect++] = st;
}

static int
start_session(struct conn *c)
{
	struct epoll_event ev;
	int one = 1, fd;

	memset(c, 0, offsetof(struct conn, in));
	c->inlen = 0;
	c->fd = -1;
	started++;
	active++;
	establishing++;
	c->estab = 1;
	c->step = ST_CONNECT;
	c->t_start = now_s();
	c->deadline = c->t_start + o.op_timeout;
	fd = socket(target_sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fd < 0) {
		conn_fail(c, EK_CONNECT, "socket: %s", strerror(errno));
		return -1;
	}
	c->fd = fd;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&target_sa, target_len) != 0 &&
	    errno != EINPROGRESS) {
		conn_fail(c, EK_CONNECT, "%s", strerror(errno));
		return -1;
	}
	ev.events = EPOLLIN | EPOLLOUT;
	ev.data.ptr = c;
	c->want_out = 1;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
		die("epoll_ctl: %s", strerror(errno));
	return 0;
}

static void
start_message(struct conn *c)
{
	c->step = ST_MAIL;
	if (c->pipelining) {
		queue_cmd(c, "MAIL FROM:<" MAIL_FROM ">\r\n"
		    "RCPT TO:<" RCPT_TO ">\r\n%s",
		    o.idle_txn && o.idle ? "" : "DATA\r\n");
		expect(c, ST_MAIL);
		expect(c, ST_RCPT);
		if (!(o.idle_txn && o.idle))
			expect(c, ST_DATA);
	} else {
		queue_cmd(c, "MAIL FROM:<" MAIL_FROM ">\r\n");
		expect(c, ST_MAIL);
	}
}

static void
go_idle(struct conn *c)
{
	c->step = ST_IDLE;
	c->deadline = INFINITY;
	c->estab = 0;
	establishing--;
	idle_ready++;
	if (c->t_ready == 0)
		c->t_ready = now_s();
}

static void
start_tls(struct conn *c)
{
	c->ssl = SSL_new(ctx);
	if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1)
		die("SSL_new/SSL_set_fd failed");
	if (o.sni != NULL)
		SSL_set_tlsext_host_name(c->ssl, o.sni);
	if (o.resume && saved_session != NULL)
		SSL_set_session(c->ssl, saved_session);
	SSL_set_connect_state(c->ssl);
	c->step = ST_HANDSHAKE;
	c->deadline = now_s() + o.op_timeout;
}

static void
note_tls_facts(SSL *ssl)
{
	int nid;

	if (neg_proto[0] != '\0')
		return;
	snprintf(neg_proto, sizeof(neg_proto), "%s", SSL_get_version(ssl));
	snprintf(neg_cipher, sizeof(neg_cipher), "%s",
	    SSL_CIPHER_get_name(SSL_get_current_cipher(ssl)));
	nid = SSL_get_negotiated_group(ssl);
	snprintf(neg_group, sizeof(neg_group), "%s",
	    nid > 0 && OBJ_nid2sn(nid) != NULL ? OBJ_nid2sn(nid) : "unknown");
}

/*
 * A complete reply (its last line) arrived: check it against the oldest
 * awaited one and move the session on.  Returns -1 when the session is
 * over (closed).
 */
static int
on_reply(struct conn *c, int code, const char *line)
{
	enum step st;

	if (c->nexpect == 0) {
		conn_fail(c, EK_PROTO, "unsolicited reply: %s", line);
		return -1;
	}
	st = c->expect[0];
	if (code != step_code[st]) {
		conn_fail(c, EK_REPLY, "%s", line);
		return -1;
	}
	if (st == ST_EHLO && !c->has_starttls) {
		conn_fail(c, EK_PROTO, "STARTTLS not offered");
		return -1;
	}
	if (st == ST_STARTTLS && c->inlen > 0) {
		conn_fail(c, EK_PROTO, "bytes after the STARTTLS 220");
		return -1;
	}
	memmove(c->expect, c->expect + 1,
	    (size_t)(c->nexpect - 1) * sizeof(c->expect[0]));
	c->nexpect--;
	switch (st) {
	case ST_GREETING:
		c->step = ST_EHLO;
		queue_cmd(c, "EHLO " EHLO_NAME "\r\n");
		expect(c, ST_EHLO);
		break;
	case ST_EHLO:
		c->step = ST_STARTTLS;
		queue_cmd(c, "STARTTLS\r\n");
		expect(c, ST_STARTTLS);
		break;
	case ST_STARTTLS:
		start_tls(c);
		break;
	case ST_EHLO_TLS:
		c->t_ready = now_s();
		if (o.idle) {
			if (o.idle_txn)
				start_message(c);
			else
				go_idle(c);
		} else if (o.msgs > 0)
			start_message(c);
		else {
			c->step = ST_QUIT;
			queue_cmd(c, "QUIT\r\n");
			expect(c, ST_QUIT);
		}
		break;
	case ST_MAIL:
		if (!c->pipelining) {
			c->step = ST_RCPT;
			queue_cmd(c, "RCPT TO:<" RCPT_TO ">\r\n");
			expect(c, ST_RCPT);
		}
		break;
	case ST_RCPT:
		if (o.idle) {
			go_idle(c);
		} else if (!c->pipelining) {
			c->step = ST_DATA;
			queue_cmd(c, "DATA\r\n");
			expect(c, ST_DATA);
		}
		break;
	case ST_DATA:
		c->step = ST_BODY;
		queue_out(c, message, message_len + 3);
		expect(c, ST_DOT);
		break;
	case ST_DOT:
		c->msgs++;
		messages_done++;
		if (c->msgs < o.msgs)
			start_message(c);
		else {
			c->step = ST_QUIT;
			queue_cmd(c, "QUIT\r\n");
			expect(c, ST_QUIT);
		}
		break;
	case ST_QUIT:
		conn_done(c);
		return -1;
	default:
		break;
	}
	c->deadline = now_s() + o.op_timeout;
	return 0;
}

/* EHLO keywords that matter here, from one reply line "250-KEYWORD ...". */
static void
ehlo_line(struct conn *c, const char *kw, size_t len)
{
	if (len >= 8 && strncasecmp(kw, "STARTTLS", 8) == 0 &&
	    (len == 8 || kw[8] == ' '))
		c->has_starttls = 1;
	if (len >= 10 && strncasecmp(kw, "PIPELINING", 10) == 0 &&
	    (len == 10 || kw[10] == ' '))
		c->pipelining = 1;
}

/* Parse every complete reply line in c->in.  -1: session over. */
static int
parse_input(struct conn *c)
{
	size_t pos = 0;

	while (pos < c->inlen) {
		char *line = c->in + pos, *lf;
		size_t len;
		int code;

		lf = memchr(line, '\n', c->inlen - pos);
		if (lf == NULL)
			break;
		len = (size_t)(lf - line);	/* without LF */
		if (len > 0 && line[len - 1] == '\r')
			len--;
		line[len] = '\0';
		pos = (size_t)(lf - c->in) + 1;
		if (len < 3 || line[0] < '2' || line[0] > '5' ||
		    line[1] < '0' || line[1] > '9' ||
		    line[2] < '0' || line[2] > '9' ||
		    (len > 3 && line[3] != ' ' && line[3] != '-')) {
			conn_fail(c, EK_PROTO, "malformed reply line: %.80s",
			    line);
			return -1;
		}
		code = (line[0] - '0') * 100 + (line[1] - '0') * 10 +
		    (line[2] - '0');
		if (c->rcode != 0 && code != c->rcode) {
			conn_fail(c, EK_PROTO, "reply code changes within a "
			    "reply: %.80s", line);
			return -1;
		}
		c->rcode = code;
		if (c->nexpect > 0 && (c->expect[0] == ST_EHLO ||
		    c->expect[0] == ST_EHLO_TLS) && len > 4)
			ehlo_line(c, line + 4, len - 4);
		if (len > 3 && line[3] == '-')
			continue;
		c->rcode = 0;
		/* Replies handled; what follows stays in the buffer. */
		memmove(c->in, c->in + pos, c->inlen - pos);
		c->inlen -= pos;
		pos = 0;
		if (on_reply(c, code, line) != 0)
			return -1;
	}
	if (pos > 0) {
		memmove(c->in, c->in + pos, c->inlen - pos);
		c->inlen -= pos;
	}
	if (c->inlen == sizeof(c->in)) {
		conn_fail(c, EK_PROTO, "reply line longer than %d bytes",
		    IN_SIZE);
		return -1;
	}
	return 0;
}

/*
 * OpenSSL's verdict after a failed call: 0 = try again later (the
 * wanted direction is noted), -1 = the session failed (closed).
 */
static int
tls_error(struct conn *c, int r, const char *what)
{
	int e = SSL_get_error(c->ssl, r);
	unsigned long ec;
	char buf[256];

	switch (e) {
	case SSL_ERROR_WANT_READ:
		c->tls_want_write = 0;
		return 0;
	case SSL_ERROR_WANT_WRITE:
		c->tls_want_write = 1;
		return 0;
	case SSL_ERROR_ZERO_RETURN:
		conn_fail(c, EK_CLOSED, "%s: TLS closed by the server", what);
		return -1;
	case SSL_ERROR_SYSCALL:
		if (errno == 0 || errno == ECONNRESET || errno == EPIPE)
			conn_fail(c, EK_CLOSED, "%s: connection closed (%s)",
			    what, errno ? strerror(errno) : "EOF");
		else
			conn_fail(c, EK_IO, "%s: %s", what, strerror(errno));
		return -1;
	default:
		ec = ERR_get_error();
		ERR_error_string_n(ec, buf, sizeof(buf));
		conn_fail(c, EK_TLS, "%s: %s", what, buf);
		return -1;
	}
}

static int
do_handshake(struct conn *c)
{
	int r;

	ERR_clear_error();
	errno = 0;
	r = SSL_do_handshake(c->ssl);
	if (r != 1)
		return tls_error(c, r, "handshake");
	c->t_tls = now_s();
	c->tls_want_write = 0;
	note_tls_facts(c->ssl);
	c->step = ST_EHLO_TLS;
	c->has_starttls = 0;
	c->pipelining = 0;
	queue_cmd(c, "EHLO " EHLO_NAME "\r\n");
	expect(c, ST_EHLO_TLS);
	c->deadline = now_s() + o.op_timeout;
	return 0;
}

/* Write what is queued.  0: done or blocked, -1: session over. */
static int
flush_out(struct conn *c)
{
	while (c->outoff < c->outlen) {
		size_t n = c->outlen - c->outoff;
		ssize_t w;

		if (n > WRITE_CHUNK)
			n = WRITE_CHUNK;
		if (c->ssl != NULL) {
			int r;

			ERR_clear_error();
			errno = 0;
			r = SSL_write(c->ssl, c->out + c->outoff, (int)n);
			if (r <= 0)
				return tls_error(c, r, "write");
			w = r;
			c->tls_want_write = 0;
		} else {
			w = write(c->fd, c->out + c->outoff, n);
			if (w < 0) {
				if (errno == EAGAIN || errno == EINTR)
					return 0;
				if (errno == EPIPE || errno == ECONNRESET)
					conn_fail(c, EK_CLOSED, "write: %s",
					    strerror(errno));
				else
					conn_fail(c, EK_IO, "write: %s",
					    strerror(errno));
				return -1;
			}
		}
		c->outoff += (size_t)w;
		c->deadline = now_s() + o.op_timeout;
	}
	if (c->step == ST_STARTTLS && c->t_starttls == 0)
		c->t_starttls = now_s();
	return 0;
}

/* Read what there is.  0: fine (maybe nothing), -1: session over. */
static int
read_in(struct conn *c)
{
	int rounds;

	/* With read-ahead, SSL may hold records already read: drain it. */
	for (rounds = 0; rounds < 1024; rounds++) {
		size_t room = sizeof(c->in) - c->inlen;
		ssize_t r;

		if (c->ssl != NULL) {
			int n;

			ERR_clear_error();
			errno = 0;
			n = SSL_read(c->ssl, c->in + c->inlen, (int)room);
			if (n <= 0)
				return tls_error(c, n, "read");
			r = n;
		} else {
			r = read(c->fd, c->in + c->inlen, room);
			if (r < 0) {
				if (errno == EAGAIN || errno == EINTR)
					return 0;
				conn_fail(c, errno == ECONNRESET ? EK_CLOSED :
				    EK_IO, "read: %s", strerror(errno));
				return -1;
			}
			if (r == 0) {
				conn_fail(c, EK_CLOSED, "connection closed");
				return -1;
			}
		}
		c->inlen += (size_t)r;
		if (parse_input(c) != 0)
			return -1;
		/* The STARTTLS 220 switched to TLS: read the handshake next. */
		if (c->step == ST_HANDSHAKE)
			return 0;
	}
	conn_fail(c, EK_PROTO, "the server does not stop talking");
	return -1;
}

static void
conn_event(struct conn *c, uint32_t events)
{
	int rounds;

	if (c->step == ST_CONNECT) {
		int err = 0;
		socklen_t len = sizeof(err);

		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err != 0) {
			conn_fail(c, EK_CONNECT, "%s",
			    strerror(err));
			return;
		}
		c->step = ST_GREETING;
		expect(c, ST_GREETING);
		c->deadline = now_s() + o.op_timeout;
	}
	/* Each round may change the step; a few rounds settle it. */
	for (rounds = 0; rounds < 8; rounds++) {
		enum step before = c->step;
		size_t outoff = c->outoff, inlen = c->inlen;

		if (c->step == ST_HANDSHAKE) {
			if (do_handshake(c) != 0)
				return;
			if (c->step == ST_HANDSHAKE)
				break;
		}
		if (flush_out(c) != 0)
			return;
		if (read_in(c) != 0)
			return;
		if (c->step == before && c->outoff == outoff &&
		    c->inlen == inlen && c->outoff == c->outlen)
			break;
	}
	set_events(c, c->outoff < c->outlen || c->tls_want_write);
}

static void
check_timeouts(double t)
{
	long i;

	for (i = 0; i < nslots; i++) {
		struct conn *c = &conns[i];

		if (c->fd < 0 || t < c->deadline)
			continue;
		conn_fail(c, EK_TIMEOUT, "no progress for %g s", o.op_timeout);
	}
}

static void
cut_all(void)
{
	long i;

	for (i = 0; i < nslots; i++)
		if (conns[i].fd >= 0)
			conn_fail(&conns[i], EK_CUT, "run time is up");
}

static void
quit_idle(void)
{
	long i;
	double t = now_s();

	for (i = 0; i < nslots; i++) {
		struct conn *c = &conns[i];

		if (c->fd < 0 || c->step != ST_IDLE)
			continue;
		idle_ready--;
		c->step = ST_QUIT;
		c->deadline = t + o.op_timeout;
		queue_cmd(c, "QUIT\r\n");
		expect(c, ST_QUIT);
		conn_event(c, 0);
	}
}

static struct conn *
free_slot(long *hint)
{
	long i;

	for (i = 0; i < nslots; i++) {
		long k = (*hint + i) % nslots;

		if (conns[k].fd < 0) {
			*hint = (k + 1) % nslots;
			return &conns[k];
		}
	}
	return NULL;
}

static int
new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
	(void)ssl;
	if (saved_session != NULL)
		SSL_SESSION_free(saved_session);
	saved_session = sess;
	return 1;	/* we keep the reference */
}

static void
setup_tls(void)
{
	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL)
		die("SSL_CTX_new failed");
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	if (SSL_CTX_set1_groups_list(ctx, "X25519:P-256") != 1)
		die("cannot set groups X25519:P-256");
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_read_ahead(ctx, 1);	/* fewer read()s for the client */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
	if (o.resume) {
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT |
		    SSL_SESS_CACHE_NO_INTERNAL_STORE);
		SSL_CTX_sess_set_new_cb(ctx, new_session_cb);
	}
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
pct(double *v, long n, double p)
{
	long k;

	if (n == 0)
		return 0;
	k = (long)ceil(p / 100.0 * (double)n) - 1;
	if (k < 0)
		k = 0;
	if (k >= n)
		k = n - 1;
	return v[k];
}

static void
on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void
report(double t_end)
{
	double elapsed, spm, mbytes, cpu;
	double h50, h90, h99, r50, r90, r99, s50, s90, s99;
	struct rusage ru;
	long k, s, nerr = 0;

	qsort(lat_hs, (size_t)nlat, sizeof(double), cmp_double);
	qsort(lat_ready, (size_t)nlat, sizeof(double), cmp_double);
	qsort(lat_sess, (size_t)nlat, sizeof(double), cmp_double);
	h50 = pct(lat_hs, nlat, 50);
	h90 = pct(lat_hs, nlat, 90);
	h99 = pct(lat_hs, nlat, 99);
	r50 = pct(lat_ready, nlat, 50);
	r90 = pct(lat_ready, nlat, 90);
	r99 = pct(lat_ready, nlat, 99);
	s50 = pct(lat_sess, nlat, 50);
	s90 = pct(lat_sess, nlat, 90);
	s99 = pct(lat_sess, nlat, 99);
	elapsed = (t_last_done > 0 ? t_last_done : t_end) - t_begin;
	if (elapsed <= 0)
		elapsed = 1e-9;
	mbytes = (double)messages_done * (double)message_len / 1e6;
	getrusage(RUSAGE_SELF, &ru);
	cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	    ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
	spm = (double)ok_sessions / elapsed;

	printf("target     %s  %s  (%s %s %s)\n", o.target,
	    o.idle ? "idle" : "load", neg_proto[0] ? neg_proto : "-",
	    neg_cipher[0] ? neg_cipher : "-", neg_group[0] ? neg_group : "-");
	if (o.idle)
		printf("settings   idle=%ld hold=%gs c=%d%s\n", o.idle, o.hold,
		    o.conc, o.idle_txn ? " (MAIL+RCPT before holding)" : "");
	else
		printf("settings   c=%d n=%ld t=%gs m=%d s=%zu%s%s%s\n",
		    o.conc, o.total, o.tlimit, o.msgs, message_len,
		    o.sni ? " sni=" : "", o.sni ? o.sni : "",
		    o.resume ? " resume" : "");
	printf("sessions   %ld ok, %ld failed, %ld started in %.3f s: "
	    "%.1f sessions/s\n", ok_sessions, failed_sessions, started,
	    elapsed, spm);
	printf("messages   %ld: %.1f messages/s, %.2f MB/s "
	    "(MB = 10^6 bytes of message content)\n", messages_done,
	    (double)messages_done / elapsed, mbytes / elapsed);
	printf("handshake  p50 %.3f  p90 %.3f  p99 %.3f ms "
	    "(STARTTLS sent to TLS up)\n", h50, h90, h99);
	printf("ready      p50 %.3f  p90 %.3f  p99 %.3f ms "
	    "(connect to EHLO answered under TLS)\n", r50, r90, r99);
	printf("session    p50 %.3f  p90 %.3f  p99 %.3f ms "
	    "(connect to 221)\n", s50, s90, s99);
	printf("resumed    %ld of %ld\n", resumed, ok_sessions);
	printf("errors    ");
	for (k = 0; k < EK_COUNT; k++)
		for (s = 0; s < ST_COUNT; s++)
			if (errs[k][s] > 0) {
				printf(" %s@%s=%ld", kind_names[k],
				    step_names[s], errs[k][s]);
				nerr += errs[k][s];
			}
	printf("%s\n", nerr ? "" : " none");
	printf("client CPU %.3f s\n", cpu);

	printf("RESULT mode=%s ok=%ld failed=%ld started=%ld elapsed_s=%.3f "
	    "sessions_per_s=%.2f messages=%ld messages_per_s=%.2f "
	    "mbytes=%.3f mb_per_s=%.3f msg_size=%zu "
	    "hs_p50_ms=%.3f hs_p90_ms=%.3f hs_p99_ms=%.3f "
	    "ready_p50_ms=%.3f ready_p90_ms=%.3f ready_p99_ms=%.3f "
	    "sess_p50_ms=%.3f sess_p90_ms=%.3f sess_p99_ms=%.3f "
	    "resumed=%ld errors=%ld client_cpu_s=%.3f proto=%s cipher=%s "
	    "group=%s",
	    o.idle ? "idle" : "load", ok_sessions, failed_sessions, started,
	    elapsed, spm, messages_done, (double)messages_done / elapsed,
	    mbytes, mbytes / elapsed, message_len, h50, h90, h99, r50, r90,
	    r99, s50, s90, s99, resumed, nerr, cpu,
	    neg_proto[0] ? neg_proto : "-", neg_cipher[0] ? neg_cipher : "-",
	    neg_group[0] ? neg_group : "-");
	for (k = 0; k < EK_COUNT; k++)
		for (s = 0; s < ST_COUNT; s++)
			if (errs[k][s] > 0)
				printf(" err.%s.%s=%ld", kind_names[k],
				    step_names[s], errs[k][s]);
	printf("\n");
	fflush(stdout);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "sni", required_argument, NULL, 'S' },
		{ "resume", no_argument, NULL, 'R' },
		{ "idle", required_argument, NULL, 'I' },
		{ "hold", required_argument, NULL, 'H' },
		{ "idle-txn", no_argument, NULL, 'X' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct epoll_event evs[MAX_EVENTS];
	double t, t_stop, t_hard, t_hold_end = 0, t_tick = 0;
	long hint = 0, cap, i;
	int ch, announced = 0, quitting = 0;

	while ((ch = getopt_long(argc, argv, "c:n:t:m:s:T:h", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'c':
			o.conc = (int)parse_long(optarg, "-c", 1, 100000);
			break;
		case 'n':
			o.total = parse_long(optarg, "-n", 1, 100000000);
			break;
		case 't':
			o.tlimit = parse_double(optarg, "-t", 0.1, 86400);
			break;
		case 'm':
			o.msgs = (int)parse_long(optarg, "-m", 0, 1000000);
			break;
		case 's':
			o.size = parse_long(optarg, "-s", 1, 1L << 30);
			break;
		case 'T':
			o.op_timeout = parse_double(optarg, "-T", 0.1, 3600);
			break;
		case 'S':
			o.sni = optarg;
			break;
		case 'R':
			o.resume = 1;
			break;
		case 'I':
			o.idle = parse_long(optarg, "--idle", 1, 1000000);
			break;
		case 'H':
			o.hold = parse_double(optarg, "--hold", 0, 86400);
			break;
		case 'X':
			o.idle_txn = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	if (o.idle_txn && !o.idle)
		die("--idle-txn needs --idle");
	o.target = argv[optind];
	parse_target(o.target);

	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	nslots = o.idle ? o.idle : (o.conc < o.total ? o.conc : o.total);
	cap = lat_cap = o.idle ? o.idle : o.total;
	if (cap > MAX_LATENCIES)
		cap = lat_cap = MAX_LATENCIES;	/* percentiles of the first ones */
	raise_nofile(nslots + 64);
	build_message();
	setup_tls();
	if ((conns = calloc((size_t)nslots, sizeof(*conns))) == NULL ||
	    (lat_hs = calloc((size_t)cap, sizeof(double))) == NULL ||
	    (lat_ready = calloc((size_t)cap, sizeof(double))) == NULL ||
	    (lat_sess = calloc((size_t)cap, sizeof(double))) == NULL)
		die("out of memory");
	for (i = 0; i < nslots; i++)
		conns[i].fd = -1;
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		die("epoll_create1: %s", strerror(errno));

	t_begin = now_s();
	t_stop = t_begin + o.tlimit;
	t_hard = t_stop + o.op_timeout + 1;
	for (;;) {
		int nev, k;

		t = now_s();
		if (interrupted) {
			cut_all();
			break;
		}
		/* Start sessions while there is room and time. */
		if (!quitting && t < t_stop) {
			long want = o.idle ? o.idle : o.total;
			long guard = 0;

			while (started < want && active < nslots &&
			    (!o.idle || establishing < o.conc) &&
			    guard++ < 1024) {
				struct conn *c = free_slot(&hint);

				if (c == NULL)
					break;
				start_session(c);
			}
		}
		if (o.idle) {
			if (!announced && establishing == 0 &&
			    (started == o.idle || t >= t_stop)) {
				announced = 1;
				printf("ESTABLISHED ok=%ld failed=%ld "
				    "in=%.3fs\n", idle_ready, failed_sessions,
				    t - t_begin);
				fflush(stdout);
				t_hold_end = t + o.hold;
				t_hard = t_hold_end + o.op_timeout + 1;
			}
			if (announced && !quitting && t >= t_hold_end) {
				quitting = 1;
				quit_idle();
			}
			if (quitting && active == 0)
				break;
		} else if (active == 0 && (started >= o.total || t >= t_stop))
			break;
		if (t >= t_hard) {
			cut_all();
			break;
		}
		nev = epoll_wait(ep, evs, MAX_EVENTS, TICK_MS);
		if (nev < 0 && errno != EINTR)
			die("epoll_wait: %s", strerror(errno));
		for (k = 0; k < nev; k++) {
			struct conn *c = evs[k].data.ptr;

			if (c->fd >= 0)
				conn_event(c, evs[k].events);
		}
		t = now_s();
		if (t >= t_tick) {
			check_timeouts(t);
			t_tick = t + TICK_MS / 1e3;
		}
	}
	report(now_s());
	return failed_sessions > 0 ? 1 : 0;
}
