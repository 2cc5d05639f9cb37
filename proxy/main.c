/*
 * main - command line, configuration check, start.
 *
 * Order: parse arguments, find the configuration file, load and check it,
 * load every certificate and key, then run the workers.  "-t" stops after
 * the checks and prints the certificate report.  Configuration errors
 * exit 1, never a crash.
 *
 * The configuration file (SPEC §2) is the first of: -c FILE,
 * $STARTTLS_PROXY_CONFIG, config/starttls-proxy.conf under the working
 * directory when it exists, the installed default under SYSCONFDIR when
 * it exists.  When none applies the message lists every place looked at.
 */
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libconfig.h>
#include <uv.h>

#include "certwatch.h"
#include "config.h"
#include "gen.h"
#include "log.h"
#include "master.h"
#include "tls.h"

#ifndef STP_SYSCONFDIR
#define STP_SYSCONFDIR	"/usr/local/etc"
#endif

#define CWD_CONFIG	"config/starttls-proxy.conf"
#define ENV_CONFIG	"STARTTLS_PROXY_CONFIG"
#define SYS_CONFIG	STP_SYSCONFDIR "/starttls-proxy/starttls-proxy.conf"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: starttls-proxy [-c FILE]      run in the foreground, log to stderr\n"
	    "       starttls-proxy -t [-c FILE]   check the configuration and every certificate\n"
	    "       starttls-proxy -V, --version  print version information\n"
	    "       starttls-proxy -h, --help     this help\n"
	    "The configuration file is FILE, else $" ENV_CONFIG ", else\n"
	    CWD_CONFIG " under the working directory when it exists,\n"
	    "else " SYS_CONFIG ".\n");
}

static void
version(void)
{
	printf("starttls-proxy %s\n", STP_VERSION);
	printf("OpenSSL: %s\n", tls_library_version());
	printf("libuv: %s\n", uv_version_string());
	printf("libconfig: %d.%d.%d\n", LIBCONFIG_VER_MAJOR,
	    LIBCONFIG_VER_MINOR, LIBCONFIG_VER_REVISION);
}

/*
 * The configuration file to use, or NULL after saying on stderr where it
 * was looked for.
 */
static const char *
config_path(const char *given)
{
	const char	*env = getenv(ENV_CONFIG);
	char		 cwd[4096];

	if (given != NULL)
		return given;
	if (env != NULL && env[0] != '\0')
		return env;
	if (access(CWD_CONFIG, F_OK) == 0)
		return CWD_CONFIG;
	if (access(SYS_CONFIG, F_OK) == 0)
		return SYS_CONFIG;
	if (getcwd(cwd, sizeof(cwd)) == NULL)
		snprintf(cwd, sizeof(cwd), ".");
	fprintf(stderr,
	    "starttls-proxy: no configuration file found.  Looked for:\n"
	    "  -c FILE                not given\n"
	    "  $" ENV_CONFIG "  %s\n"
	    "  %s/" CWD_CONFIG "  no such file\n"
	    "  " SYS_CONFIG "  no such file\n"
	    "Give one with -c FILE (see starttls-proxy -h).\n",
	    env == NULL ? "not set" : "set but empty", cwd);
	return NULL;
}

/* Warnings that are errors (certificate validity) are left to the
 * certificate report, which prints them with their path. */
static void
print_list(FILE *f, const char *prefix, const struct strlist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (strlist_level(l, i) != SL_ERROR)
			fprintf(f, "%s%s\n", prefix, l->v[i]);
}

int
main(int argc, char *argv[])
{
	struct strlist errs = { 0 }, warns = { 0 };
	struct gen *g;
	const char *path = NULL;
	int ch, test = 0, rc;

	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};

	while ((ch = getopt_long(argc, argv, "c:thV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 't':
			test = 1;
			break;
		case 'V':
			version();
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 1;
	}
	if ((path = config_path(path)) == NULL)
		return 1;
	signal(SIGPIPE, SIG_IGN);
	/*
	 * Session buffers (64 KiB) come and go with every burst of message
	 * data: keep freed memory in the process instead of handing it back
	 * to the kernel and faulting it in again on the next burst.
	 */
	mallopt(M_TRIM_THRESHOLD, 32 * 1024 * 1024);
	mallopt(M_MMAP_THRESHOLD, 1024 * 1024);

	g = gen_load(path, &errs, &warns);
	if (test) {
		if (g != NULL)	/* as root: what `user` could not read */
			certs_check_user(g->cfg, &warns);
		print_list(stderr, "", &errs);
		print_list(stderr, "warning: ", &warns);
		if (g == NULL) {
			fprintf(stderr, "%s: configuration has errors\n", path);
			rc = 1;
		} else {
			rc = tls_check_report(g->cfg, stdout) > 0;
			if (rc == 0)
				printf("%s: configuration OK\n", path);
			else
				fprintf(stderr, "%s: certificate errors\n",
				    path);
			gen_unref(g);
		}
		strlist_free(&errs);
		strlist_free(&warns);
		return rc;
	}
	if (g == NULL) {
		print_list(stderr, "", &errs);
		fprintf(stderr, "%s: configuration has errors, not starting\n",
		    path);
		strlist_free(&errs);
		strlist_free(&warns);
		return 1;
	}
	log_init(g->cfg->log_level,
	    g->cfg->log_format == LOG_FORMAT_JSON);
	cfg_log_warnings(&warns);
	strlist_free(&errs);
	strlist_free(&warns);
	log_info("starttls-proxy %s starting (%s)", STP_VERSION, path);
	rc = master_run(g);
	gen_unref(g);
	return rc;
}
