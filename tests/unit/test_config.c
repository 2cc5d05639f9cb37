/*
 * test_config - cfg_load() on config files written into a temporary
 * directory: values and defaults, path resolution, every kind of error
 * with its "file:LINE:" place, unknown keys refused with "did you mean",
 * syntax errors with a hint on what was meant (cfghint.c), the places
 * cfg_where() gives; cfg_parse_addr() and the TLS version names; and,
 * since log.c has no test binary of its own, the log line formats (fd 2
 * captured into a file).
 *
 * Line numbers are never hard-coded: line_of() finds the line of a marker
 * in the text that was written.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "tls.h"
#include "unit.h"

static char	tmpdir[PATH_MAX];		/* realpath of mkdtemp's */
static char	conf[PATH_MAX + 16];	/* tmpdir/t.conf */

static void
write_file(const char *path, const char *text)
{
	FILE	*f;

	if ((f = fopen(path, "w")) == NULL) {
		perror(path);
		exit(2);
	}
	fputs(text, f);
	fclose(f);
}

/* 1-based line of the first occurrence of needle in text, 0 if none. */
static int
line_of(const char *text, const char *needle)
{
	const char	*p = strstr(text, needle), *q;
	int		 line = 1;

	if (p == NULL)
		return 0;
	for (q = text; q < p; q++)
		if (*q == '\n')
			line++;
	return line;
}

static struct config *
load(const char *text, struct strlist *errs, struct strlist *warns)
{
	write_file(conf, text);
	return cfg_load(conf, errs, warns);
}

static void
dump(const char *tag, const struct strlist *l)
{
	size_t	i;

	for (i = 0; i < l->n; i++)
		fprintf(stderr, "    %s[%zu]: %s\n", tag, i, l->v[i]);
}

/* Is there a message "conf:LINE: ...needle..." (LINE 0: "conf: ")? */
static int
has_msg(const struct strlist *l, int line, const char *needle)
{
	char	pfx[PATH_MAX + 32];
	size_t	i;

	if (line > 0)
		snprintf(pfx, sizeof(pfx), "%s:%d: ", conf, line);
	else
		snprintf(pfx, sizeof(pfx), "%s: ", conf);
	for (i = 0; i < l->n; i++)
		if (strncmp(l->v[i], pfx, strlen(pfx)) == 0 &&
		    strstr(l->v[i] + strlen(pfx), needle) != NULL)
			return 1;
	return 0;
}

#define ASSERT_MSG(l, line, needle) do {				\
	int unit_h_ = has_msg((l), (line), (needle));			\
	ASSERT_TRUE(unit_h_);						\
	if (!unit_h_) {							\
		fprintf(stderr, "    wanted line %d: %s\n", (line),	\
		    (needle));						\
		dump("got", (l));					\
	}								\
} while (0)

/* A listener that loads, for error tests to break one thing at a time. */
#define GOOD_LISTENER							\
	"  { name = \"mx\"; listen = \"127.0.0.1:2525\";\n"		\
	"    backend = { address = \"127.0.0.1:25\"; }; }\n"

static const char full_conf[] =
	"# every key, none at its default\n"
	"workers = 4;\n"
	"user = \"mail\";\n"
	"shutdown_timeout = 0;\n"
	"log = { level = \"debug\"; format = \"json\"; };\n"
	"stats = { listen = \"127.0.0.1:9125\"; };\n"
	"watch_certificates = false;\n"
	"listeners = (\n"
	"  {\n"
	"    name = \"mx\";\n"
	"    listen = \"[::1]:2525\";\n"
	"    proxy_protocol = true;\n"
	"    tls_mode = \"implicit\";\n"
	"    banner = \"mx.example.org ESMTP\";\n"
	"    backend = {\n"
	"      address = \"unix:sock/exim.sock\";\n"
	"      proxy_protocol = \"v2\";\n"
	"      xclient = true;\n"
	"      connect_timeout = 3600;\n"
	"    };\n"
	"    tls = {\n"
	"      certificates = (\n"
	"        { cert = \"certs/mx1.pem\"; key = \"/etc/keys/mx1.key\"; },\n"
	"        { cert = \"mx2.pem\"; key = \"../mx2.key\";\n"
	"          names = [ \"mx2.example.org\", \"*.example.net\" ]; }\n"
	"      );\n"
	"      min_version = \"TLSv1.3\";\n"
	"      ciphers = \"HIGH:!aNULL\";\n"
	"      ciphersuites = \"TLS_AES_256_GCM_SHA384\";\n"
	"      client_ca = \"ca.pem\";\n"
	"      verify_client = \"optional\";\n"
	"      handshake_timeout = 1;\n"
	"    };\n"
	"    policy = {\n"
	"      require_tls = true;\n"
	"      before_tls_code = 554;\n"
	"      reject_code = 530;\n"
	"      min_version = \"TLSv1.2\";\n"
	"      min_cipher_bits = 128;\n"
	"      require_client_cert = true;\n"
	"      tls_required_domains = [ \"Example.ORG\",\n"
	"        \".bank.example.\" ];\n"
	"      hide_auth_before_tls = false;\n"
	"      bare_newline = \"pass\";\n"
	"    };\n"
	"    received_header = false;\n"
	"    limits = {\n"
	"      max_connections = 1000000L;\n"
	"      max_connections_per_ip = 1;\n"
	"      idle_timeout = 86400;\n"
	"      data_timeout = 60;\n"
	"      max_line = 512;\n"
	"    };\n"
	"  },\n"
	"  {\n"
	"    name = \"second\";\n"
	"    listen = \"127.0.0.1:2526\";\n"
	"    backend = { address = \"localhost:25\"; };\n"
	"  }\n"
	");\n";

static void
test_full(void)
{
	struct strlist		 errs = { 0 }, warns = { 0 };
	struct config		*c;
	struct cfg_listener	*l;
	struct sockaddr_in6	*sin6;
	char			 want[PATH_MAX + 64];

	c = load(full_conf, &errs, &warns);
	ASSERT_TRUE(c != NULL);
	ASSERT_EQ(errs.n, 0);
	ASSERT_EQ(warns.n, 0);
	dump("err", &errs);
	dump("warn", &warns);
	if (c == NULL)
		goto out;
	ASSERT_STR_EQ(c->path, conf);
	ASSERT_STR_EQ(c->dir, tmpdir);
	ASSERT_EQ(c->workers, 4);
	ASSERT_STR_EQ(c->user, "mail");
	ASSERT_EQ(c->shutdown_timeout, 0);
	ASSERT_EQ(c->log_level, LOG_DEBUG);
	ASSERT_EQ(c->log_format, LOG_FORMAT_JSON);
	ASSERT_TRUE(c->stats_enabled);
	ASSERT_STR_EQ(c->stats_listen.text, "127.0.0.1:9125");
	ASSERT_EQ(c->stats_listen.ss.ss_family, AF_INET);
	ASSERT_FALSE(c->watch_certificates);
	ASSERT_EQ(c->n_listeners, 2);

	l = &c->listeners[0];
	ASSERT_STR_EQ(l->name, "mx");
	ASSERT_EQ(l->line, line_of(full_conf, "  {\n"));
	ASSERT_STR_EQ(l->listen.text, "[::1]:2525");
	ASSERT_FALSE(l->listen.is_unix);
	ASSERT_EQ(l->listen.ss.ss_family, AF_INET6);
	ASSERT_EQ(l->listen.sslen, sizeof(struct sockaddr_in6));
	sin6 = (struct sockaddr_in6 *)&l->listen.ss;
	ASSERT_EQ(ntohs(sin6->sin6_port), 2525);
	ASSERT_TRUE(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));
	ASSERT_TRUE(l->proxy_protocol);
	ASSERT_EQ(l->tls_mode, TLS_MODE_IMPLICIT);
	ASSERT_STR_EQ(l->banner, "mx.example.org ESMTP");

	ASSERT_TRUE(l->backend.address.is_unix);
	ASSERT_STR_EQ(l->backend.address.text, "unix:sock/exim.sock");
	snprintf(want, sizeof(want), "%s/sock/exim.sock", tmpdir);
	ASSERT_STR_EQ(l->backend.address.unix_path, want);
	ASSERT_EQ(l->backend.proxy_protocol, PROXY_OUT_V2);
	ASSERT_TRUE(l->backend.xclient);
	ASSERT_EQ(l->backend.connect_timeout, 3600);

	ASSERT_EQ(l->tls.n_certs, 2);
	if (l->tls.n_certs == 2) {
		snprintf(want, sizeof(want), "%s/certs/mx1.pem", tmpdir);
		ASSERT_STR_EQ(l->tls.certs[0].cert, want);
		ASSERT_STR_EQ(l->tls.certs[0].key, "/etc/keys/mx1.key");
		ASSERT_TRUE(l->tls.certs[0].names == NULL);
		ASSERT_EQ(l->tls.certs[0].n_names, 0);
		ASSERT_EQ(l->tls.certs[0].line,
		    line_of(full_conf, "{ cert = \"certs/mx1.pem\""));
		snprintf(want, sizeof(want), "%s/mx2.pem", tmpdir);
		ASSERT_STR_EQ(l->tls.certs[1].cert, want);
		snprintf(want, sizeof(want), "%s/../mx2.key", tmpdir);
		ASSERT_STR_EQ(l->tls.certs[1].key, want);
		ASSERT_EQ(l->tls.certs[1].n_names, 2);
		if (l->tls.certs[1].n_names == 2) {
			ASSERT_STR_EQ(l->tls.certs[1].names[0],
			    "mx2.example.org");
			ASSERT_STR_EQ(l->tls.certs[1].names[1],
			    "*.example.net");
		}
		ASSERT_EQ(l->tls.certs[1].line,
		    line_of(full_conf, "{ cert = \"mx2.pem\""));
	}
	ASSERT_EQ(l->tls.min_version, 0x0304);
	ASSERT_STR_EQ(l->tls.ciphers, "HIGH:!aNULL");
	ASSERT_STR_EQ(l->tls.ciphersuites, "TLS_AES_256_GCM_SHA384");
	snprintf(want, sizeof(want), "%s/ca.pem", tmpdir);
	ASSERT_STR_EQ(l->tls.client_ca, want);
	ASSERT_EQ(l->tls.verify_client, VERIFY_OPTIONAL);
	ASSERT_EQ(l->tls.handshake_timeout, 1);

	ASSERT_TRUE(l->policy.require_tls);
	ASSERT_EQ(l->policy.before_tls_code, 554);
	ASSERT_EQ(l->policy.reject_code, 530);
	ASSERT_EQ(l->policy.min_version, 0x0303);
	ASSERT_EQ(l->policy.min_cipher_bits, 128);
	ASSERT_TRUE(l->policy.require_client_cert);
	ASSERT_EQ(l->policy.n_tls_required_domains, 2);
	if (l->policy.n_tls_required_domains == 2) {
		ASSERT_STR_EQ(l->policy.tls_required_domains[0],
		    "example.org");
		ASSERT_STR_EQ(l->policy.tls_required_domains[1],
		    ".bank.example");
	}
	ASSERT_FALSE(l->policy.hide_auth_before_tls);
	ASSERT_EQ(l->policy.bare_newline, BARE_NEWLINE_PASS);
	ASSERT_FALSE(l->received_header);
	ASSERT_EQ(l->limits.max_connections, 1000000);
	ASSERT_EQ(l->limits.max_connections_per_ip, 1);
	ASSERT_EQ(l->limits.idle_timeout, 86400);
	ASSERT_EQ(l->limits.data_timeout, 60);
	ASSERT_EQ(l->limits.max_line, 512);

	l = &c->listeners[1];
	ASSERT_STR_EQ(l->name, "second");
	ASSERT_FALSE(l->backend.address.is_unix);
	ASSERT_TRUE(l->backend.address.ss.ss_family == AF_INET ||
	    l->backend.address.ss.ss_family == AF_INET6);

	cfg_free(c);		/* ASan sees what it leaves */
	cfg_free(NULL);
out:
	strlist_free(&errs);
	strlist_free(&warns);
}

static void
test_defaults(void)
{
	struct strlist		 errs = { 0 }, warns = { 0 };
	struct config		*c;
	struct cfg_listener	*l;
	struct sockaddr_in	*sin;

	c = load("listeners = (\n" GOOD_LISTENER ");\n", &errs, &warns);
	ASSERT_TRUE(c != NULL);
	ASSERT_EQ(errs.n, 0);
	ASSERT_EQ(warns.n, 0);
	dump("err", &errs);
	if (c == NULL)
		goto out;
	ASSERT_EQ(c->workers, 0);
	ASSERT_STR_EQ(c->user, "");
	ASSERT_EQ(c->shutdown_timeout, 30);
	ASSERT_EQ(c->log_level, LOG_INFO);
	ASSERT_EQ(c->log_format, LOG_FORMAT_TEXT);
	ASSERT_FALSE(c->stats_enabled);
	ASSERT_TRUE(c->stats_listen.text == NULL);
	ASSERT_TRUE(c->watch_certificates);
	ASSERT_EQ(c->n_listeners, 1);

	l = &c->listeners[0];
	ASSERT_STR_EQ(l->name, "mx");
	ASSERT_EQ(l->line, 2);
	ASSERT_STR_EQ(l->listen.text, "127.0.0.1:2525");
	ASSERT_EQ(l->listen.ss.ss_family, AF_INET);
	ASSERT_EQ(l->listen.sslen, sizeof(struct sockaddr_in));
	sin = (struct sockaddr_in *)&l->listen.ss;
	ASSERT_EQ(ntohs(sin->sin_port), 2525);
	ASSERT_EQ(ntohl(sin->sin_addr.s_addr), 0x7f000001);
	ASSERT_FALSE(l->proxy_protocol);
	ASSERT_EQ(l->tls_mode, TLS_MODE_STARTTLS);
	ASSERT_STR_EQ(l->banner, "");
	ASSERT_EQ(l->backend.proxy_protocol, PROXY_OUT_NONE);
	ASSERT_FALSE(l->backend.xclient);
	ASSERT_EQ(l->backend.connect_timeout, 10);
	ASSERT_EQ(l->tls.n_certs, 0);
	ASSERT_TRUE(l->tls.certs == NULL);
	ASSERT_EQ(l->tls.min_version, 0x0303);
	ASSERT_STR_EQ(l->tls.ciphers, "");
	ASSERT_STR_EQ(l->tls.ciphersuites, "");
	ASSERT_STR_EQ(l->tls.client_ca, "");
	ASSERT_EQ(l->tls.verify_client, VERIFY_NONE);
	ASSERT_EQ(l->tls.handshake_timeout, 30);
	ASSERT_FALSE(l->policy.require_tls);
	ASSERT_EQ(l->policy.before_tls_code, 530);
	ASSERT_EQ(l->policy.reject_code, 554);
	ASSERT_EQ(l->policy.min_version, 0);
	ASSERT_EQ(l->policy.min_cipher_bits, 0);
	ASSERT_FALSE(l->policy.require_client_cert);
	ASSERT_EQ(l->policy.n_tls_required_domains, 0);
	ASSERT_TRUE(l->policy.hide_auth_before_tls);
	ASSERT_EQ(l->policy.bare_newline, BARE_NEWLINE_REJECT);
	ASSERT_TRUE(l->received_header);
	ASSERT_EQ(l->limits.max_connections, 10000);
	ASSERT_EQ(l->limits.max_connections_per_ip, 100);
	ASSERT_EQ(l->limits.idle_timeout, 300);
	ASSERT_EQ(l->limits.data_timeout, 3600);
	ASSERT_EQ(l->limits.max_line, 4096);
	cfg_free(c);
out:
	strlist_free(&errs);
	strlist_free(&warns);
}

/* Empty certificate lists and empty groups are fine. */
static void
test_empty_tls(void)
{
	struct strlist	 errs = { 0 };
	struct config	*c;
	static const char *texts[] = {
		("listeners = ({ name = \"a\"; listen = \"127.0.0.1:1\";\n"
		"  backend = { address = \"127.0.0.1:2\"; };\n"
		"  tls = { certificates = (); }; });\n"),
		("listeners = ({ name = \"a\"; listen = \"127.0.0.1:1\";\n"
		"  backend = { address = \"127.0.0.1:2\"; };\n"
		"  tls = { certificates = [ ]; }; policy = {};\n"
		"  limits = {}; });\n"),
		("listeners = ({ name = \"a\"; listen = \"127.0.0.1:1\";\n"
		"  backend = { address = \"127.0.0.1:2\"; }; tls = {}; });\n"),
	};
	size_t	i;

	for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		c = load(texts[i], &errs, NULL);
		ASSERT_TRUE(c != NULL);
		dump("err", &errs);
		if (c != NULL) {
			ASSERT_EQ(c->listeners[0].tls.n_certs, 0);
			cfg_free(c);
		}
		strlist_free(&errs);
	}
}

/* One broken setting per row: the error's line and text. */
struct err_case {
	const char	*text;
	const char	*marker;	/* the line the error points at */
	const char	*msg;
};

#define LST(body)							\
	"listeners = (\n  {\n    name = \"mx\";\n"			\
	"    listen = \"127.0.0.1:2525\";\n"				\
	"    backend = { address = \"127.0.0.1:25\"; };\n"		\
	body "  }\n);\n"
#define LSTB(more)							\
	"listeners = (\n  {\n    name = \"mx\";\n"			\
	"    listen = \"127.0.0.1:2525\";\n"				\
	"    backend = { address = \"127.0.0.1:25\";\n"		\
	"      " more " };\n  }\n);\n"
#define LSTA(listen, backend)						\
	"listeners = (\n  {\n    name = \"mx\";\n"			\
	"    listen = \"" listen "\";\n"				\
	"    backend = {\n      address = \"" backend "\";\n    };\n"	\
	"  }\n);\n"

static const struct err_case err_cases[] = {
	/* syntax */
	{ "workers = 1;\nuser = \"x\";\nshutdown_timeout = ;\n",
	    "shutdown_timeout", "syntax error" },
	{ "workers = 1;\nworkers = 2;\n", "workers = 2", "duplicate" },
	/* types */
	{ "workers = \"four\";\nlisteners = (\n" GOOD_LISTENER ");\n",
	    "workers", "workers must be an integer" },
	{ LST("    limits = { max_line = \"big\"; };\n"), "max_line",
	    "listeners[0].limits.max_line must be an integer" },
	{ LST("    limits = { max_line = 1.5; };\n"), "max_line",
	    "listeners[0].limits.max_line must be an integer" },
	{ LSTB("xclient = 1;"),
	    "xclient", "xclient must be true or false" },
	{ LST("    received_header = \"yes\";\n"), "received_header",
	    "listeners[0].received_header must be true or false" },
	{ LST("    banner = 220;\n"), "banner",
	    "listeners[0].banner must be a string" },
	{ LST("    tls = \"on\";\n"), "tls = ",
	    "listeners[0].tls must be a group" },
	{ LST("    policy = { tls_required_domains = \"example.org\"; };\n"),
	    "tls_required", "must be an array of strings" },
	{ "log = { level = 3; };\nlisteners = (\n" GOOD_LISTENER ");\n",
	    "level", "log.level must be a string" },
	/* ranges */
	{ LST("    limits = { max_line = 100; };\n"), "max_line",
	    "listeners[0].limits.max_line must be between 512 and 65536" },
	{ LST("    limits = { max_connections = 0; };\n"), "max_conn",
	    "limits.max_connections must be between 1 and 1000000" },
	{ LST("    limits = { idle_timeout = 86401; };\n"), "idle_timeout",
	    "limits.idle_timeout must be between 1 and 86400" },
	{ LST("    tls = { handshake_timeout = 0; };\n"), "handshake",
	    "tls.handshake_timeout must be between 1 and 3600" },
	{ LSTB("connect_timeout = 99999999999;"), "connect_timeout",
	    "connect_timeout must be between 1 and 3600" },
	{ LST("    policy = { min_cipher_bits = 513; };\n"), "min_cipher",
	    "policy.min_cipher_bits must be between 0 and 512" },
	{ LST("    policy = { before_tls_code = 550; };\n"), "before_tls",
	    "policy.before_tls_code must be 530 or 554" },
	{ LST("    policy = { reject_code = 421; };\n"), "reject_code",
	    "policy.reject_code must be 554 or 530" },
	{ "workers = 1025;\nlisteners = (\n" GOOD_LISTENER ");\n",
	    "workers", "workers must be between 0 and 1024" },
	{ "shutdown_timeout = -1;\nlisteners = (\n" GOOD_LISTENER ");\n",
	    "shutdown", "shutdown_timeout must be at least 0" },
	/* enums */
	{ LST("    tls_mode = \"sometimes\";\n"), "tls_mode",
	    "listeners[0].tls_mode must be one of \"starttls\" or "
	    "\"implicit\"" },
	{ LST("    policy = { bare_newline = \"fix\"; };\n"), "bare_newline",
	    "policy.bare_newline must be one of" },
	{ LSTB("proxy_protocol = \"v3\";"), "v3",
	    "backend.proxy_protocol must be one of \"none\", \"v1\" or "
	    "\"v2\"" },
	{ LST("    tls = { verify_client = \"yes\"; };\n"), "verify_client",
	    "tls.verify_client must be one of" },
	{ LST("    tls = { min_version = \"TLSv1.4\"; };\n"), "min_version",
	    "tls.min_version must be one of \"TLSv1\"" },
	{ LST("    tls = { min_version = \"\"; };\n"), "min_version",
	    "tls.min_version must be one of" },
	{ LST("    policy = { min_version = \"SSLv3\"; };\n"), "min_version",
	    "policy.min_version must be one of" },
	{ "log = { format = \"xml\"; };\nlisteners = (\n" GOOD_LISTENER ");\n",
	    "format", "log.format must be one of \"text\" or \"json\"" },
	/* required settings; missing ones point at the enclosing group */
	{ "listeners = (\n  {\n    name = \"mx\";\n"
	    "    backend = { address = \"127.0.0.1:25\"; };\n  }\n);\n",
	    "  {\n", "missing required setting listeners[0].listen" },
	{ "listeners = (\n  {\n    name = \"mx\";\n"
	    "    listen = \"127.0.0.1:2525\";\n  }\n);\n",
	    "  {\n", "missing required setting listeners[0].backend" },
	{ "listeners = (\n  {\n    name = \"mx\";\n"
	    "    listen = \"127.0.0.1:2525\";\n"
	    "    backend = { xclient = true; };\n  }\n);\n",
	    "backend", "missing required setting "
	    "listeners[0].backend.address" },
	{ "listeners = (\n  {\n    listen = \"127.0.0.1:2525\";\n"
	    "    backend = { address = \"127.0.0.1:25\"; };\n  }\n);\n",
	    "  {\n", "missing required setting listeners[0].name" },
	{ LST("    tls = { certificates = ( { cert = \"a.pem\"; } ); };\n"),
	    "cert = ", "missing required setting "
	    "listeners[0].tls.certificates[0].key" },
	{ "workers = 1;\n", NULL, "missing required setting listeners" },
	{ "listeners = ( );\n", "listeners", "listeners must not be empty" },
	{ "listeners = { name = \"x\"; };\n", "listeners",
	    "listeners must be a list" },
	{ "listeners = ( 1 );\n", "listeners", "listeners[0] must be a group" },
	{ "stats = { };\nlisteners = (\n" GOOD_LISTENER ");\n", "stats",
	    "missing required setting stats.listen" },
	{ LST("    tls = { certificates = (\n"
	    "      { cert = \"\"; key = \"k\"; } ); };\n"),
	    "cert = ", "certificates[0].cert must not be empty" },
	/* addresses */
	{ LSTA("1.2.3.4", "127.0.0.1:25"), "1.2.3.4",
	    "listeners[0].listen: bad address \"1.2.3.4\": missing port" },
	{ LSTA("[::1]", "127.0.0.1:25"), "[::1]",
	    "listeners[0].listen: bad address \"[::1]\": missing port" },
	{ LSTA("localhost:99999", "127.0.0.1:25"), "99999",
	    "listeners[0].listen: bad address \"localhost:99999\": bad port" },
	{ LSTA("127.0.0.1:0", "127.0.0.1:25"), "listen = ",
	    "bad port" },
	{ LSTA("127.0.0.1:25x", "127.0.0.1:25"), "listen = ",
	    "bad port" },
	{ LSTA("::1:25", "127.0.0.1:25"), "listen = ",
	    "must be in brackets" },
	{ LSTA("[::1:25", "127.0.0.1:25"), "listen = ", "missing ']'" },
	{ LSTA("[1.2.3.4]:25", "127.0.0.1:25"), "listen = ",
	    "bad IPv6 address" },
	{ LSTA(":25", "127.0.0.1:25"), "listen = ", "missing host" },
	{ LSTA("", "127.0.0.1:25"), "listen = ", "empty address" },
	{ LSTA("no-such-host.invalid:25", "127.0.0.1:25"), "listen = ",
	    "cannot resolve host" },
	{ LSTA("unix:/run/x.sock", "127.0.0.1:25"), "listen = ",
	    "unix: addresses are not allowed here" },
	{ LSTA("127.0.0.1:25", "unix:"), "unix:",
	    "backend.address: bad address \"unix:\": empty unix socket path" },
	{ LSTA("127.0.0.1:25", "127.0.0.1"), "address",
	    "backend.address: bad address \"127.0.0.1\": missing port" },
	{ "stats = { listen = \"9125\"; };\nlisteners = (\n" GOOD_LISTENER
	    ");\n", "stats", "stats.listen: bad address" },
	/* lists of names */
	{ LST("    policy = { tls_required_domains = [ \"a..b\" ]; };\n"),
	    "a..b", "tls_required_domains[0]: bad domain \"a..b\": "
	    "empty label" },
	{ LST("    policy = { tls_required_domains = [ \"ok.org\",\n"
	    "      \"\" ]; };\n"), "\"\" ]",
	    "tls_required_domains[1]: bad domain \"\": empty domain" },
	{ LST("    policy = { tls_required_domains = [ \"a b.org\" ]; };\n"),
	    "a b", "invalid character" },
	{ LST("    policy = { tls_required_domains = [ \"-a.org\" ]; };\n"),
	    "-a.org", "label starts or ends with '-'" },
	{ LST("    policy = { tls_required_domains = ( 1 ); };\n"),
	    "tls_required", "tls_required_domains[0] must be a string" },
	{ LST("    tls = { certificates = ( { cert = \"c\"; key = \"k\";\n"
	    "      names = [ ]; } ); };\n"), "names",
	    "certificates[0].names must not be empty" },
	{ LST("    tls = { certificates = ( { cert = \"c\"; key = \"k\";\n"
	    "      names = [ \"a/b\" ]; } ); };\n"), "names",
	    "certificates[0].names[0]: bad name \"a/b\"" },
	{ LST("    tls = { certificates = ( \"c.pem\" ); };\n"), "c.pem",
	    "certificates[0] must be a group" },
	/* strings that would break a reply or a log line */
	{ LST("    banner = \"mx\\r\\n250 ok\";\n"), "banner",
	    "banner must not contain control characters" },
	/* unknown keys, in every group: an error, with the closest key */
	{ "workers = 1;\nwokers = 2;\n" "listeners = (\n" GOOD_LISTENER ");\n", "wokers",
	    "unknown key 'wokers' (did you mean 'workers'?)" },
	{ "Workers = 2;\n" "listeners = (\n" GOOD_LISTENER ");\n", "Workers",
	    "unknown key 'Workers' (did you mean 'workers'?)" },
	{ "watch_certificate = true;\n" "listeners = (\n" GOOD_LISTENER ");\n", "watch",
	    "unknown key 'watch_certificate' (did you mean "
	    "'watch_certificates'?)" },
	{ "foo = 1;\n" "listeners = (\n" GOOD_LISTENER ");\n", "foo", "unknown key 'foo'" },
	{ "log = { level = \"info\";\n  levle = \"debug\"; };\n" "listeners = (\n" GOOD_LISTENER ");\n",
	    "levle", "unknown key 'log.levle' (did you mean 'log.level'?)" },
	{ "stats = { listen = \"127.0.0.1:9125\";\n  lisen = \"x\"; };\n"
	    "listeners = (\n" GOOD_LISTENER ");\n", "lisen",
	    "unknown key 'stats.lisen' (did you mean 'stats.listen'?)" },
	{ LST("    nmae = \"x\";\n"), "nmae",
	    "unknown key 'listeners[0].nmae' (did you mean "
	    "'listeners[0].name'?)" },
	{ LSTB("adress = \"typo\";"), "adress",
	    "unknown key 'listeners[0].backend.adress' (did you mean "
	    "'listeners[0].backend.address'?)" },
	{ LST("    tls = { cipher = \"HIGH\"; };\n"), "cipher",
	    "unknown key 'listeners[0].tls.cipher' (did you mean "
	    "'listeners[0].tls.ciphers'?)" },
	{ LST("    tls = { certificates = ( { cert = \"c\"; key = \"k\";\n"
	    "      chain = \"x\"; } ); };\n"), "chain",
	    "unknown key 'listeners[0].tls.certificates[0].chain'" },
	{ LST("    tls = { certificates = ( { cert = \"c\"; key = \"k\";\n"
	    "      name = [ \"x\" ]; } ); };\n"), "name = [",
	    "unknown key 'listeners[0].tls.certificates[0].name' (did you "
	    "mean 'listeners[0].tls.certificates[0].names'?)" },
	{ LST("    policy = {\n      requre_tls = true; };\n"), "requre",
	    "unknown key 'listeners[0].policy.requre_tls' (did you mean "
	    "'listeners[0].policy.require_tls'?)" },
	{ LST("    limits = {\n      max_connection = 5; };\n"), "max_conn",
	    "unknown key 'listeners[0].limits.max_connection' (did you mean "
	    "'listeners[0].limits.max_connections'?)" },
	{ LST("    limits = {\n      data_timout = 5; };\n"), "data_",
	    "(did you mean 'listeners[0].limits.data_timeout'?)" },
	/* a key in the wrong group: its right place */
	{ "require_tls = true;\n" "listeners = (\n" GOOD_LISTENER ");\n", "require_tls",
	    "unknown key 'require_tls' (did you mean "
	    "'listeners[N].policy.require_tls'?)" },
	{ "workers = 1;\nrequre_tls = true;\n" "listeners = (\n" GOOD_LISTENER ");\n", "requre",
	    "unknown key 'requre_tls' (did you mean "
	    "'listeners[N].policy.require_tls'?)" },
	{ LST("    require_tls = true;\n"), "require_tls",
	    "unknown key 'listeners[0].require_tls' (did you mean "
	    "'listeners[0].policy.require_tls'?)" },
	{ LST("    idle_timeout = 5;\n"), "idle",
	    "(did you mean 'listeners[0].limits.idle_timeout'?)" },
	{ LST("    workers = 2;\n"), "workers",
	    "unknown key 'listeners[0].workers' (did you mean 'workers'?)" },
	{ LST("    tls = { key = \"k.pem\"; };\n"), "key",
	    "(did you mean 'listeners[0].tls.certificates[N].key'?)" },
	/* values: the closest allowed one */
	{ "log = { level = \"warn\"; };\n" "listeners = (\n" GOOD_LISTENER ");\n", "warn",
	    "log.level must be one of \"error\", \"warning\", \"info\" or "
	    "\"debug\" (did you mean \"warning\"?)" },
	{ LST("    tls_mode = \"startls\";\n"), "tls_mode",
	    "(did you mean \"starttls\"?)" },
	{ LST("    tls = { min_version = \"tlsv1.2\"; };\n"), "min_version",
	    "(did you mean \"TLSv1.2\"?)" },
	/* syntax errors: libconfig's line and what was probably meant */
	{ "workers = 1;\nuser = mail;\n", "user",
	    "syntax error: unquoted string 'mail' on line 2: strings need "
	    "double quotes (\"mail\")" },
	{ "workers = 1;\nlisteners = (\n  { name = \"a\"; }\n"
	    "  { name = \"b\"; }\n);\n", "\"b\"",
	    "syntax error: a ',' is missing between the list elements ending "
	    "on line 3 and starting on line 4" },
	{ "workers = 1;\nlog = { level = \"info\"; }};\n", "log",
	    "syntax error: '}' on line 2 closes nothing" },
	{ "a = 1;\nb = yes;\n", "b =",
	    "syntax error: 'yes' on line 2 is not a value: booleans are "
	    "written true or false" },
	{ "l = ( { a = 1; }, );\n", "l =",
	    "syntax error: a ',' before the ')' on line 1" },
	{ "a = ;\n", "a =", "syntax error: a value is missing after '=' on "
	    "line 1" },
	/* across settings */
	{ LST("    tls_mode = \"implicit\";\n"), "  {\n",
	    "tls_mode \"implicit\" needs at least one tls.certificates" },
	{ LST("    tls = { verify_client = \"required\"; };\n"), "tls = ",
	    "tls.verify_client needs tls.client_ca" },
	{ "workers = 1;\nuser = \"stp-no-such-user\";\nlisteners = (\n"
	    GOOD_LISTENER ");\n", "user",
	    "user \"stp-no-such-user\": no such user" },
	{ "stats = { listen = \"127.0.0.1:2525\"; };\nlisteners = (\n"
	    GOOD_LISTENER ");\n", "stats", "stats.listen \"127.0.0.1:2525\" "
	    "collides with listeners[0].listen \"127.0.0.1:2525\"" },
	{ "stats = {\n  listen = \"0.0.0.0:2525\"; };\nlisteners = (\n"
	    GOOD_LISTENER ");\n", "listen = \"0", "stats.listen "
	    "\"0.0.0.0:2525\" collides with listeners[0].listen" },
};

static void
test_errors(void)
{
	struct strlist	 errs, warns;
	struct config	*c;
	size_t		 i;
	int		 line;

	for (i = 0; i < sizeof(err_cases) / sizeof(err_cases[0]); i++) {
		const struct err_case *t = &err_cases[i];

		if (t->text == NULL || t->msg == NULL)
			continue;
		memset(&errs, 0, sizeof(errs));
		memset(&warns, 0, sizeof(warns));
		c = load(t->text, &errs, &warns);
		ASSERT_TRUE(c == NULL);
		ASSERT_TRUE(errs.n >= 1);
		line = t->marker != NULL ? line_of(t->text, t->marker) : 0;
		ASSERT_MSG(&errs, line, t->msg);
		UNIT_ROW("err_cases[%zu] (%s)", i, t->msg);
		cfg_free(c);
		strlist_free(&errs);
		strlist_free(&warns);
	}
}

static const char dup_conf[] =
	"listeners = (\n"
	"  { name = \"mx\"; listen = \"127.0.0.1:2525\";\n"
	"    backend = { address = \"127.0.0.1:25\"; }; },\n"
	"  { name = \"mx\";\n"
	"    listen = \"127.0.0.1:2526\";\n"
	"    backend = { address = \"127.0.0.1:25\"; }; },\n"
	"  { name = \"other\";\n"
	"    listen = \"127.0.0.1:2525\";\n"
	"    backend = { address = \"127.0.0.1:25\"; }; }\n"
	");\n";

static void
test_duplicates(void)
{
	struct strlist	 errs = { 0 };
	struct config	*c;

	c = load(dup_conf, &errs, NULL);
	ASSERT_TRUE(c == NULL);
	ASSERT_EQ(errs.n, 2);
	ASSERT_MSG(&errs, 4, "listeners[1].name \"mx\" is already used by "
	    "listeners[0]");
	ASSERT_MSG(&errs, 8, "listeners[2].listen \"127.0.0.1:2525\" is the "
	    "same address as listeners[0]");
	strlist_free(&errs);
}

/*
 * stats.listen against a listener's address, as the kernel sees them: the
 * stats socket is dual-stack and has no SO_REUSEPORT, listeners are
 * IPV6_V6ONLY.
 */
static const struct {
	const char	*stats, *listen;
	int		 collides;
} stats_cases[] = {
	{ "127.0.0.1:2525", "127.0.0.1:2525", 1 },
	{ "0.0.0.0:2525", "127.0.0.1:2525", 1 },
	{ "127.0.0.1:2525", "0.0.0.0:2525", 1 },
	{ "[::]:2525", "127.0.0.1:2525", 1 },
	{ "[::]:2525", "[::1]:2525", 1 },
	{ "[::1]:2525", "[::]:2525", 1 },
	{ "[::ffff:127.0.0.1]:2525", "127.0.0.1:2525", 1 },
	{ "127.0.0.1:2526", "127.0.0.1:2525", 0 },
	{ "0.0.0.0:2526", "0.0.0.0:2525", 0 },
	{ "127.0.0.2:2525", "127.0.0.1:2525", 0 },
	{ "[::1]:2525", "127.0.0.1:2525", 0 },
	{ "0.0.0.0:2525", "[::]:2525", 0 },
};

static void
test_stats_listen(void)
{
	struct strlist	 errs;
	struct config	*c;
	char		 text[512];
	size_t		 i;

	for (i = 0; i < sizeof(stats_cases) / sizeof(stats_cases[0]); i++) {
		memset(&errs, 0, sizeof(errs));
		snprintf(text, sizeof(text), "stats = { listen = \"%s\"; };\n"
		    "listeners = (\n"
		    "  { name = \"other\"; listen = \"127.0.0.3:2527\";\n"
		    "    backend = { address = \"127.0.0.1:25\"; }; },\n"
		    "  { name = \"mx\"; listen = \"%s\";\n"
		    "    backend = { address = \"127.0.0.1:25\"; }; }\n"
		    ");\n", stats_cases[i].stats, stats_cases[i].listen);
		c = load(text, &errs, NULL);
		if (stats_cases[i].collides) {
			ASSERT_TRUE(c == NULL);
			ASSERT_EQ(errs.n, 1);
			ASSERT_MSG(&errs, 1, "collides with listeners[1].listen");
		} else {
			ASSERT_TRUE(c != NULL);
			if (c == NULL)
				dump("errs", &errs);
		}
		UNIT_ROW("stats_cases[%zu] (%s, %s)", i, stats_cases[i].stats,
		    stats_cases[i].listen);
		cfg_free(c);
		strlist_free(&errs);
	}
}

/* Every error of one file is reported, in file order, and only those. */
static const char multi_conf[] =
	"workers = -1;\n"
	"log = { level = \"loud\"; };\n"
	"listeners = (\n"
	"  {\n"
	"    name = \"mx\";\n"
	"    listen = \"1.2.3.4\";\n"
	"    backend = { address = \"127.0.0.1:25\"; connect_timeout = 0; };\n"
	"    limits = { max_line = 65537; idle_timeout = \"5m\"; };\n"
	"  },\n"
	"  {\n"
	"    listen = \"[::1]:25\";\n"
	"  }\n"
	");\n";

static void
test_multiple(void)
{
	struct strlist	 errs = { 0 };
	struct config	*c;

	c = load(multi_conf, &errs, NULL);
	ASSERT_TRUE(c == NULL);
	ASSERT_EQ(errs.n, 8);
	ASSERT_MSG(&errs, 1, "workers must be between 0 and 1024");
	ASSERT_MSG(&errs, 2, "log.level must be one of \"error\", "
	    "\"warning\", \"info\" or \"debug\"");
	ASSERT_MSG(&errs, 6, "listeners[0].listen: bad address \"1.2.3.4\": "
	    "missing port");
	ASSERT_MSG(&errs, 7, "listeners[0].backend.connect_timeout must be "
	    "between 1 and 3600");
	ASSERT_MSG(&errs, 8, "listeners[0].limits.max_line must be between "
	    "512 and 65536");
	ASSERT_MSG(&errs, 8, "listeners[0].limits.idle_timeout must be an "
	    "integer");
	ASSERT_MSG(&errs, 10, "missing required setting listeners[1].name");
	ASSERT_MSG(&errs, 10, "missing required setting listeners[1].backend");
	strlist_free(&errs);
}

/* Unknown keys are errors (SPEC §2), all of them reported, none ignored. */
static const char unknown_conf[] =
	"workers = 1;\n"
	"foo = 1;\n"
	"listeners = (\n"
	"  { name = \"mx\"; listen = \"127.0.0.1:2525\";\n"
	"    backend = { address = \"127.0.0.1:25\";\n"
	"      adress = \"typo\"; };\n"
	"    tls = { certificates = ( { cert = \"c\"; key = \"k\";\n"
	"      chain = \"x\"; } ); };\n"
	"  }\n"
	");\n";

static void
test_unknown_keys(void)
{
	struct strlist	 errs = { 0 }, warns = { 0 };
	struct config	*c;

	c = load(unknown_conf, &errs, &warns);
	ASSERT_TRUE(c == NULL);
	ASSERT_EQ(errs.n, 3);
	ASSERT_EQ(warns.n, 0);
	ASSERT_MSG(&errs, 2, "unknown key 'foo'");
	ASSERT_MSG(&errs, 6, "unknown key 'listeners[0].backend.adress' "
	    "(did you mean 'listeners[0].backend.address'?)");
	ASSERT_MSG(&errs, 8, "unknown key "
	    "'listeners[0].tls.certificates[0].chain'");
	cfg_free(c);
	strlist_free(&errs);

	/* warns may be NULL */
	c = load(unknown_conf, &errs, NULL);
	ASSERT_TRUE(c == NULL);
	ASSERT_EQ(errs.n, 3);
	strlist_free(&errs);
	strlist_free(&warns);
}

/* Settings that load but cannot work as the operator expects. */
static void
test_warnings(void)
{
	struct strlist	 errs = { 0 }, warns = { 0 };
	struct config	*c;

	c = load(LST("    policy = { require_tls = true;\n"
	    "      require_client_cert = true; };\n"), &errs, &warns);
	ASSERT_TRUE(c != NULL);
	ASSERT_EQ(warns.n, 2);
	ASSERT_MSG(&warns, 2, "policy.require_client_cert with "
	    "tls.verify_client \"none\"");
	ASSERT_MSG(&warns, 2, "policy.require_tls without certificates");
	cfg_free(c);
	strlist_free(&errs);
	strlist_free(&warns);
}

static void
test_unreadable(void)
{
	struct strlist	 errs = { 0 };
	struct config	*c;
	char		 path[PATH_MAX + 16], want[PATH_MAX + 64];

	snprintf(path, sizeof(path), "%s/nope.conf", tmpdir);
	c = cfg_load(path, &errs, NULL);
	ASSERT_TRUE(c == NULL);
	ASSERT_EQ(errs.n, 1);
	snprintf(want, sizeof(want), "%s: cannot read: ", path);
	if (errs.n == 1)
		ASSERT_EQ(strncmp(errs.v[0], want, strlen(want)), 0);
	else
		dump("err", &errs);
	strlist_free(&errs);
}

/* A config file given by a relative path resolves against its own
 * directory, made absolute. */
static void
test_relative_config_path(void)
{
	struct strlist	 errs = { 0 };
	struct config	*c;
	char		 cwd[PATH_MAX], sub[PATH_MAX + 8];
	char		 want[PATH_MAX + 32];

	snprintf(sub, sizeof(sub), "%s/etc", tmpdir);
	if (mkdir(sub, 0700) == -1 && errno != EEXIST) {
		perror(sub);
		exit(2);
	}
	snprintf(want, sizeof(want), "%s/etc/rel.conf", tmpdir);
	write_file(want, "listeners = ({ name = \"a\";\n"
	    "  listen = \"127.0.0.1:1\";\n"
	    "  backend = { address = \"unix:../run/b.sock\"; };\n"
	    "  tls = { client_ca = \"ca/roots.pem\"; }; });\n");
	if (getcwd(cwd, sizeof(cwd)) == NULL || chdir(tmpdir) == -1) {
		perror("chdir");
		exit(2);
	}
	c = cfg_load("etc/rel.conf", &errs, NULL);
	ASSERT_TRUE(c != NULL);
	dump("err", &errs);
	if (c != NULL) {
		ASSERT_STR_EQ(c->path, "etc/rel.conf");
		ASSERT_STR_EQ(c->dir, sub);
		snprintf(want, sizeof(want), "%s/../run/b.sock", sub);
		ASSERT_STR_EQ(c->listeners[0].backend.address.unix_path, want);
		ASSERT_STR_EQ(c->listeners[0].backend.address.text,
		    "unix:../run/b.sock");
		snprintf(want, sizeof(want), "%s/ca/roots.pem", sub);
		ASSERT_STR_EQ(c->listeners[0].tls.client_ca, want);
		cfg_free(c);
	}
	if (chdir(cwd) == -1) {
		perror("chdir");
		exit(2);
	}
	strlist_free(&errs);
}

static void
test_parse_addr(void)
{
	struct cfg_addr		 a;
	struct sockaddr_in	*sin;
	struct sockaddr_in6	*sin6;
	const char		*e;
	char			 big[200];

	e = cfg_parse_addr("[::1]:25", NULL, 0, &a);
	ASSERT_TRUE(e == NULL);
	ASSERT_FALSE(a.is_unix);
	ASSERT_EQ(a.ss.ss_family, AF_INET6);
	ASSERT_EQ(a.sslen, sizeof(struct sockaddr_in6));
	sin6 = (struct sockaddr_in6 *)&a.ss;
	ASSERT_EQ(ntohs(sin6->sin6_port), 25);
	ASSERT_TRUE(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));
	ASSERT_STR_EQ(a.text, "[::1]:25");
	free(a.text);

	e = cfg_parse_addr("192.0.2.7:65535", NULL, 0, &a);
	ASSERT_TRUE(e == NULL);
	ASSERT_EQ(a.ss.ss_family, AF_INET);
	ASSERT_EQ(a.sslen, sizeof(struct sockaddr_in));
	sin = (struct sockaddr_in *)&a.ss;
	ASSERT_EQ(ntohs(sin->sin_port), 65535);
	ASSERT_EQ(ntohl(sin->sin_addr.s_addr), 0xc0000207);
	free(a.text);

	e = cfg_parse_addr("0.0.0.0:25", NULL, 0, &a);
	ASSERT_TRUE(e == NULL);
	free(a.text);

	e = cfg_parse_addr("localhost:587", NULL, 0, &a);
	ASSERT_TRUE(e == NULL);
	ASSERT_TRUE(a.ss.ss_family == AF_INET || a.ss.ss_family == AF_INET6);
	free(a.text);

	e = cfg_parse_addr("unix:/run/x.sock", "/etc/stp", 1, &a);
	ASSERT_TRUE(e == NULL);
	ASSERT_TRUE(a.is_unix);
	ASSERT_STR_EQ(a.unix_path, "/run/x.sock");
	ASSERT_STR_EQ(a.text, "unix:/run/x.sock");
	free(a.text);
	free(a.unix_path);

	e = cfg_parse_addr("unix:x.sock", "/etc/stp", 1, &a);
	ASSERT_TRUE(e == NULL);
	ASSERT_STR_EQ(a.unix_path, "/etc/stp/x.sock");
	free(a.text);
	free(a.unix_path);

	e = cfg_parse_addr("unix:/run/x.sock", NULL, 0, &a);
	ASSERT_STR_EQ(e, "unix: addresses are not allowed here");
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "unix:/", 6);
	e = cfg_parse_addr(big, NULL, 1, &a);
	ASSERT_STR_EQ(e, "unix socket path too long");
	ASSERT_TRUE(a.text == NULL && a.unix_path == NULL);

	ASSERT_STR_EQ(cfg_parse_addr("1.2.3.4", NULL, 0, &a), "missing port");
	ASSERT_STR_EQ(cfg_parse_addr("[::1]", NULL, 0, &a), "missing port");
	ASSERT_STR_EQ(cfg_parse_addr("[::1]:", NULL, 0, &a), "missing port");
	ASSERT_STR_EQ(cfg_parse_addr("1.2.3.4:", NULL, 0, &a), "missing port");
	ASSERT_STR_EQ(cfg_parse_addr("host:99999", NULL, 0, &a), "bad port");
	ASSERT_STR_EQ(cfg_parse_addr("host:-1", NULL, 0, &a), "bad port");
	ASSERT_STR_EQ(cfg_parse_addr("host:+25", NULL, 0, &a), "bad port");
	ASSERT_STR_EQ(cfg_parse_addr("host:000025", NULL, 0, &a), "bad port");
	ASSERT_STR_EQ(cfg_parse_addr("1.2.3.4:0", NULL, 0, &a), "bad port");
	ASSERT_STR_EQ(cfg_parse_addr("[zz]:25", NULL, 0, &a),
	    "bad IPv6 address");
	ASSERT_STR_EQ(cfg_parse_addr("", NULL, 0, &a), "empty address");
	ASSERT_STR_EQ(cfg_parse_addr(NULL, NULL, 0, &a), "empty address");
	ASSERT_TRUE(a.text == NULL);
}

static void
test_tls_versions(void)
{
	ASSERT_EQ(cfg_tls_version("TLSv1"), 0x0301);
	ASSERT_EQ(cfg_tls_version("TLSv1.1"), 0x0302);
	ASSERT_EQ(cfg_tls_version("TLSv1.2"), 0x0303);
	ASSERT_EQ(cfg_tls_version("TLSv1.3"), 0x0304);
	ASSERT_EQ(cfg_tls_version(""), 0);
	ASSERT_EQ(cfg_tls_version("tlsv1.2"), -1);
	ASSERT_EQ(cfg_tls_version("SSLv3"), -1);
	ASSERT_EQ(cfg_tls_version(NULL), -1);
	ASSERT_STR_EQ(cfg_tls_version_name(0x0301), "TLSv1");
	ASSERT_STR_EQ(cfg_tls_version_name(0x0302), "TLSv1.1");
	ASSERT_STR_EQ(cfg_tls_version_name(0x0303), "TLSv1.2");
	ASSERT_STR_EQ(cfg_tls_version_name(0x0304), "TLSv1.3");
	ASSERT_STR_EQ(cfg_tls_version_name(0), "");
	ASSERT_STR_EQ(cfg_tls_version_name(0x0300), "unknown");
}

static void
test_strlist(void)
{
	struct strlist	l = { 0 };

	strlist_add(&l, "%s:%d: %s", "f", 3, "m");
	strlist_add(&l, "two");
	ASSERT_EQ(l.n, 2);
	ASSERT_STR_EQ(l.v[0], "f:3: m");
	ASSERT_STR_EQ(l.v[1], "two");
	strlist_add(NULL, "ignored");
	strlist_free(&l);
	ASSERT_EQ(l.n, 0);
	ASSERT_TRUE(l.v == NULL);
	strlist_free(&l);
}

/* Edit distance for "did you mean": one row per pair. */
static const struct {
	const char	*a, *b;
	size_t		 d;
} dist_cases[] = {
	{ "", "", 0 },
	{ "", "abc", 3 },
	{ "abc", "", 3 },
	{ "require_tls", "require_tls", 0 },
	{ "requre_tls", "require_tls", 1 },	/* deletion */
	{ "require_tlss", "require_tls", 1 },	/* insertion */
	{ "requirx_tls", "require_tls", 1 },	/* substitution */
	{ "reqiure_tls", "require_tls", 1 },	/* transposition */
	{ "Workers", "workers", 0 },		/* case ignored */
	{ "adress", "address", 1 },
	{ "chain", "cert", 4 },
	{ "kitten", "sitting", 3 },
};

static void
test_edit_distance(void)
{
	size_t	i;

	for (i = 0; i < sizeof(dist_cases) / sizeof(dist_cases[0]); i++) {
		ASSERT_EQ(cfg_edit_distance(dist_cases[i].a, dist_cases[i].b),
		    dist_cases[i].d);
		UNIT_ROW("dist_cases[%zu] (%s, %s)", i, dist_cases[i].a,
		    dist_cases[i].b);
	}
}

/*
 * cfg_syntax_hint() on text libconfig refuses: the hint names the lines
 * involved.  hint NULL: valid text, no hint.
 */
static const struct {
	const char	*text;
	const char	*hint;
} hint_cases[] = {
	{ "a = 1;\nb = \"x\" \"y\";\nc = [ 1, 2 ];\nd = ( { e = true; },"
	    " ( ) );\n# comment\n// comment\n/* a\n b */ f : -1.5e3;\n"
	    "g = { h = 0x1F; i = 100L; j = FALSE, }\n", NULL },
	{ "@include \"other.conf\"\na = 1;\n", NULL },
	{ "a = 1;\nuser = mail;\n", "unquoted string 'mail' on line 2: "
	    "strings need double quotes (\"mail\")" },
	{ "a = on;\n", "'on' on line 1 is not a value: booleans are written "
	    "true or false" },
	{ "a = 1;\nb = ;\n", "a value is missing after '=' on line 2" },
	{ "a = 1;\nb =\n", "a value is missing after '=' on line 2" },
	{ "a  1;\n", "an '=' is missing after 'a' on line 1 (found a number "
	    "on line 1)" },
	{ "g = {\n  a = 1;\n\n", "the group '{' opened on line 1 is never "
	    "closed (a '}' is missing)" },
	{ "g = {\n  h = {\n    a = 1;\n  };\n", "the group '{' opened on "
	    "line 1 is never closed" },
	{ "g = {\n  a = 1;\n}};\n", "'}' on line 3 closes nothing" },
	{ "g = {\n  a = 1;\n);\n", "')' on line 3, but the group '{' opened "
	    "on line 1 is still open (a '}' is missing)" },
	{ "l = (\n  { a = 1; }\n  { b = 2; }\n);\n", "a ',' is missing "
	    "between the list elements ending on line 2 and starting on "
	    "line 3" },
	{ "l = ( 1, 2\n", "the list '(' opened on line 1 is never closed (a "
	    "')' is missing)" },
	{ "l = ( { a = 1; }, );\n", "a ',' before the ')' on line 1: the "
	    "last element of a list takes no ','" },
	{ "l = ( a = 1; );\n", "a setting ('a' on line 1) directly in the "
	    "list opened on line 1" },
	{ "a = [ \"x\",\n  \"y\" ;\n", "the array '[' opened on line 1 is "
	    "not closed: expected ',' or ']', found ';' on line 2" },
	{ "a = [ \"x\", ];\n", "a ',' before the ']' on line 1: the last "
	    "element of an array takes no ','" },
	{ "a = [ 1\n 2 ];\n", "a ',' is missing between the array elements "
	    "on lines 1 and 2" },
	{ "a = [ { b = 1; } ];\n", "an array [ ... ] on line 1 holds only "
	    "strings, numbers or booleans" },
	{ "a = 1;\ns = \"abc;\nb = 2;\n", "the string that starts on line 2 "
	    "is never closed (a '\"' is missing)" },
	{ "g = { a = 1; };;\n", "an extra ';' on line 1" },
	{ "a = 1;\n\"x\" = 2;\n", "expected a setting name, found a string "
	    "on line 2" },
	{ "a = 1;\nb = 2 % 3;\n", "expected a setting name, found '%' on "
	    "line 2" },
};

static void
test_syntax_hints(void)
{
	char		 buf[512];
	const char	*h;
	size_t		 i;

	for (i = 0; i < sizeof(hint_cases) / sizeof(hint_cases[0]); i++) {
		h = cfg_syntax_hint(hint_cases[i].text, buf, sizeof(buf));
		if (hint_cases[i].hint == NULL)
			ASSERT_TRUE(h == NULL);
		else {
			ASSERT_TRUE(h != NULL && strstr(h,
			    hint_cases[i].hint) != NULL);
			if (h == NULL || strstr(h, hint_cases[i].hint) == NULL)
				fprintf(stderr, "    got: %s\n", h != NULL ?
				    h : "(none)");
		}
		UNIT_ROW("hint_cases[%zu]", i);
	}
	/* The reference configs of this file have nothing to hint at. */
	ASSERT_TRUE(cfg_syntax_hint(full_conf, buf, sizeof(buf)) == NULL);
	ASSERT_TRUE(cfg_syntax_hint(unknown_conf, buf, sizeof(buf)) == NULL);
	ASSERT_TRUE(cfg_syntax_hint("", buf, sizeof(buf)) == NULL);
	ASSERT_TRUE(cfg_syntax_hint(NULL, buf, sizeof(buf)) == NULL);
}

/* A syntax error in a file: libconfig's line, its text and the hint. */
static void
test_syntax_error_message(void)
{
	static const char	 text[] = "workers = 1;\n"
	    "listeners = (\n  {\n    name = \"mx\";\n";
	struct strlist		 errs = { 0 };
	struct config		*c;

	c = load(text, &errs, NULL);
	ASSERT_TRUE(c == NULL);
	ASSERT_EQ(errs.n, 1);
	ASSERT_MSG(&errs, 5, "syntax error: the group '{' opened on line 3 "
	    "is never closed (a '}' is missing)");
	strlist_free(&errs);
}

/* cfg_where(): the line of the setting named, else of the nearest
 * enclosing group written, with the key path. */
static const char where_conf[] =
	"workers = 1;\n"
	"listeners = (\n"
	"  {\n"
	"    name = \"mx\";\n"
	"    listen = \"127.0.0.1:2525\";\n"
	"    backend = { address = \"127.0.0.1:25\"; };\n"
	"    tls = {\n"
	"      certificates = (\n"
	"        { cert = \"a.pem\";\n"
	"          key = \"a.key\"; }\n"
	"      );\n"
	"      ciphers = \"HIGH\";\n"
	"    };\n"
	"  }\n"
	");\n";

static void
test_where(void)
{
	static const struct {
		const char	*key;
		const char	*marker;	/* NULL: no line */
	} rows[] = {
		{ "workers", "workers" },
		{ "listeners[0].tls.ciphers", "ciphers" },
		{ "listeners[0].tls.ciphersuites", "tls = {" },	/* default */
		{ "listeners[0].tls.certificates[0].cert", "cert =" },
		{ "listeners[0].tls.certificates[0].key", "key =" },
		{ "listeners[0].tls.certificates[0].names", "{ cert" },
		{ "listeners[0].limits.max_line", "  {\n" },
		{ "listeners[0]", "  {\n" },
		{ "shutdown_timeout", NULL },
	};
	struct strlist	 errs = { 0 };
	struct config	*c;
	char		 buf[PATH_MAX + 300], want[PATH_MAX + 300];
	size_t		 i;

	c = load(where_conf, &errs, NULL);
	ASSERT_TRUE(c != NULL);
	dump("err", &errs);
	if (c == NULL)
		goto out;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		if (rows[i].marker != NULL)
			snprintf(want, sizeof(want), "%s:%d: %s", conf,
			    line_of(where_conf, rows[i].marker), rows[i].key);
		else
			snprintf(want, sizeof(want), "%s: %s", conf,
			    rows[i].key);
		ASSERT_STR_EQ(cfg_where(c, buf, sizeof(buf), "%s",
		    rows[i].key), want);
		UNIT_ROW("where rows[%zu] (%s)", i, rows[i].key);
	}
	/* printf-style keys */
	snprintf(want, sizeof(want), "%s:%d: listeners[0].tls.ciphers", conf,
	    line_of(where_conf, "ciphers"));
	ASSERT_STR_EQ(cfg_where(c, buf, sizeof(buf), "listeners[%zu].tls.%s",
	    (size_t)0, "ciphers"), want);
	/* No config: the key alone */
	ASSERT_STR_EQ(cfg_where(NULL, buf, sizeof(buf), "x.y"), "x.y");
	cfg_free(c);
out:
	strlist_free(&errs);
}

/* log.c: run fn with fd 2 sent to a file, return what it wrote. */
static char *
capture(void (*fn)(void))
{
	char	 path[PATH_MAX + 16], *buf;
	int	 fd, saved;
	off_t	 n;

	snprintf(path, sizeof(path), "%s/log.out", tmpdir);
	if ((fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600)) == -1 ||
	    (saved = dup(2)) == -1 || dup2(fd, 2) == -1) {
		perror("capture");
		exit(2);
	}
	fn();
	dup2(saved, 2);
	close(saved);
	n = lseek(fd, 0, SEEK_END);
	if ((buf = calloc(1, (size_t)n + 1)) == NULL ||
	    pread(fd, buf, (size_t)n, 0) != n) {
		perror("capture");
		exit(2);
	}
	close(fd);
	return buf;
}

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" at s? */
static int
is_timestamp(const char *s)
{
	const char	*pat = "dddd-dd-ddTdd:dd:dd.dddZ";
	size_t		 i;

	for (i = 0; pat[i] != '\0'; i++) {
		if (pat[i] == 'd' ? !(s[i] >= '0' && s[i] <= '9') :
		    s[i] != pat[i])
			return 0;
	}
	return 1;
}

#define TS_LEN	24

/* Check one captured line: timestamp, then rest exactly. */
#define ASSERT_LINE(out, prefix, rest) do {				\
	const char *unit_o_ = (out);					\
	ASSERT_EQ(strncmp(unit_o_, prefix, strlen(prefix)), 0);		\
	ASSERT_TRUE(is_timestamp(unit_o_ + strlen(prefix)));		\
	ASSERT_STR_EQ(unit_o_ + strlen(prefix) + TS_LEN, rest);		\
} while (0)

static void
log_text_lines(void)
{
	log_init(LOG_INFO, 0);
	log_info("hello %d", 42);
}

static void
log_text_kv(void)
{
	log_init(LOG_INFO, 0);
	log_kv(LOG_INFO, "session", "client", "192.0.2.1", "sni",
	    "mx.example.org", "helo", "a b", "q", "x\"y\\z", "eq", "k=v",
	    "ctl", "a\r\nb\x01", "#n", "12", "empty", "", "none", NULL,
	    "utf8", "caf\xc3\xa9", "bad", "\xff\xc3(", NULL);
}

static void
log_filtered(void)
{
	log_init(LOG_WARNING, 0);
	log_info("not shown");
	log_debug("not shown");
	log_kv(LOG_INFO, "not shown", NULL);
	log_error("shown %s", "error");
	errno = ENOENT;
	log_warn("open %s", "x");
	log_warnx("no errno");
}

static void
log_json_kv(void)
{
	log_init(LOG_DEBUG, 1);
	log_kv(LOG_INFO, "session", "key", "value", "#n", "12",
	    "#notnum", "12abc", "ctl", "a\"\\\n\x01\x7f", "none", NULL,
	    "utf8", "\xe2\x82\xac", "bad", "\xed\xa0\x80!", NULL);
	log_debug("dbg \"q\"");
}

static char	longval[20000];

static void
log_long(void)
{
	log_init(LOG_INFO, 1);
	log_kv(LOG_INFO, "long", "a", "1", "big", longval, "after", "x",
	    NULL);
	log_init(LOG_INFO, 0);
	log_kv(LOG_INFO, "long", "big", longval, NULL);
	log_info("%s", longval);
}

static void
test_log(void)
{
	char	*out, *nl, *l2, *l3;

	out = capture(log_text_lines);
	ASSERT_LINE(out, "", " info: hello 42\n");
	free(out);

	out = capture(log_text_kv);
	ASSERT_LINE(out, "", " info session client=192.0.2.1 "
	    "sni=mx.example.org helo=\"a b\" q=\"x\\\"y\\\\z\" eq=\"k=v\" "
	    "ctl=\"a\\r\\nb\\x01\" n=12 empty=\"\" none=\"\" utf8=caf\xc3\xa9 "
	    "bad=?" "?(\n");
	free(out);

	out = capture(log_filtered);
	nl = strchr(out, '\n');
	ASSERT_TRUE(nl != NULL);
	if (nl != NULL) {
		*nl = '\0';
		ASSERT_LINE(out, "", " error: shown error");
		l2 = nl + 1;
		nl = strchr(l2, '\n');
		ASSERT_TRUE(nl != NULL);
		if (nl != NULL) {
			l3 = nl + 1;
			*nl = '\0';
			ASSERT_LINE(l2, "", " warning: open x: No such file or "
			    "directory");
			ASSERT_LINE(l3, "", " warning: no errno\n");
		}
	}
	free(out);

	out = capture(log_json_kv);
	nl = strchr(out, '\n');
	ASSERT_TRUE(nl != NULL);
	if (nl != NULL) {
		char *l1 = strndup(out, (size_t)(nl - out) + 1);

		l2 = nl + 1;
		ASSERT_LINE(l1, "{\"ts\":\"", "\",\"level\":\"info\","
		    "\"event\":\"session\",\"key\":\"value\",\"n\":12,"
		    "\"notnum\":\"12abc\","
		    "\"ctl\":\"a\\\"\\\\\\n\\u0001\\u007f\","
		    "\"none\":null,\"utf8\":\"\xe2\x82\xac\","
		    "\"bad\":\"?" "?" "?!\"}\n");
		ASSERT_LINE(l2, "{\"ts\":\"", "\",\"level\":\"debug\","
		    "\"msg\":\"dbg \\\"q\\\"\"}\n");
		free(l1);
	}
	free(out);

	memset(longval, 'x', sizeof(longval) - 1);
	memcpy(longval + 8000, "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\n\n\n\n",
	    12);
	out = capture(log_long);
	nl = strchr(out, '\n');
	ASSERT_TRUE(nl != NULL);
	if (nl != NULL) {
		size_t n = (size_t)(nl - out) + 1;
		const char *end = ",\"truncated\":true}\n";

		ASSERT_TRUE(n <= 8192);
		ASSERT_TRUE(n > 8000);
		ASSERT_EQ(strncmp(nl + 1 - strlen(end), end, strlen(end)), 0);
		ASSERT_EQ(strncmp(out + 7 + TS_LEN, "\",\"level\":\"info\","
		    "\"event\":\"long\",\"a\":\"1\",\"big\":\"xxx", 44), 0);
		ASSERT_TRUE(strstr(out, "after") == NULL);
		/* the string was closed right before the marker */
		ASSERT_EQ(nl[-(int)strlen(end)], '"');
		l2 = nl + 1;
		nl = strchr(l2, '\n');
		ASSERT_TRUE(nl != NULL);
		if (nl != NULL) {
			n = (size_t)(nl - l2) + 1;
			ASSERT_TRUE(n <= 8192 && n > 8000);
			ASSERT_EQ(strncmp(nl - 13, "\" [truncated]", 13), 0);
			l3 = nl + 1;
			nl = strchr(l3, '\n');
			ASSERT_TRUE(nl != NULL);
			if (nl != NULL) {
				n = (size_t)(nl - l3) + 1;
				ASSERT_TRUE(n <= 8192 && n > 8000);
				ASSERT_EQ(strncmp(nl - 12, " [truncated]",
				    12), 0);
				ASSERT_EQ(nl[1], '\0');
			}
		}
	}
	free(out);
	log_init(LOG_INFO, 0);
}

int
main(void)
{
	char	tmpl[] = "/tmp/test_config.XXXXXX";
	char	cmd[PATH_MAX + 16];

	if (mkdtemp(tmpl) == NULL || realpath(tmpl, tmpdir) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	snprintf(conf, sizeof(conf), "%s/t.conf", tmpdir);

	test_full();
	test_defaults();
	test_empty_tls();
	test_errors();
	test_duplicates();
	test_stats_listen();
	test_multiple();
	test_unknown_keys();
	test_edit_distance();
	test_syntax_hints();
	test_syntax_error_message();
	test_where();
	test_warnings();
	test_unreadable();
	test_relative_config_path();
	test_parse_addr();
	test_tls_versions();
	test_strlist();
	test_log();

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	return unit_done();
}
