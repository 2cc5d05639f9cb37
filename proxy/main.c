/*
 * main - command line, configuration check, start.
 *
 * Order: parse arguments, load and check the configuration, load every
 * certificate and key, then run the workers.  "-t" stops after the checks
 * and prints the certificate report.  Configuration errors exit 1, never
 * a crash.
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

#include "config.h"
#include "log.h"
#include "master.h"
#include "tls.h"

#define DEFAULT_CONFIG	"config/starttls-proxy.conf"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: starttls-proxy [-c FILE]      run in the foreground, log to stderr\n"
	    "       starttls-proxy -t [-c FILE]   check the configuration and every certificate\n"
	    "       starttls-proxy -V             print version information\n"
	    "       starttls-proxy -h             this help\n"
	    "The configuration file is FILE, else $STARTTLS_PROXY_CONFIG, else\n"
	    DEFAULT_CONFIG " (relative to the working directory).\n");
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

/* Messages already "error: "-prefixed (certificate validity) are left to
 * the certificate report, which prints them with their path. */
static void
print_list(FILE *f, const char *prefix, const struct strlist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (strncmp(l->v[i], "error: ", 7) != 0)
			fprintf(f, "%s%s\n", prefix, l->v[i]);
}

int
main(int argc, char *argv[])
{
	struct strlist errs = { 0 }, warns = { 0 };
	struct config *cfg;
	const char *path = NULL;
	int ch, test = 0, rc;

	while ((ch = getopt(argc, argv, "c:thV")) != -1) {
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
	if (path == NULL && (path = getenv("STARTTLS_PROXY_CONFIG")) != NULL &&
	    *path == '\0')
		path = NULL;
	if (path == NULL)
		path = DEFAULT_CONFIG;
	signal(SIGPIPE, SIG_IGN);
	/*
	 * Session buffers (64 KiB) come and go with every burst of message
	 * data: keep freed memory in the process instead of handing it back
	 * to the kernel and faulting it in again on the next burst.
	 */
	mallopt(M_TRIM_THRESHOLD, 32 * 1024 * 1024);
	mallopt(M_MMAP_THRESHOLD, 1024 * 1024);

	cfg = master_load(path, &errs, &warns);
	if (test) {
		print_list(stderr, "", &errs);
		print_list(stderr, "warning: ", &warns);
		if (cfg == NULL) {
			fprintf(stderr, "%s: configuration has errors\n", path);
			rc = 1;
		} else {
			rc = tls_check_report(cfg, stdout) > 0;
			if (rc == 0)
				printf("%s: configuration OK\n", path);
			else
				fprintf(stderr, "%s: certificate errors\n",
				    path);
			cfg_unref(cfg);
		}
		strlist_free(&errs);
		strlist_free(&warns);
		return rc;
	}
	if (cfg == NULL) {
		print_list(stderr, "", &errs);
		fprintf(stderr, "%s: configuration has errors, not starting\n",
		    path);
		strlist_free(&errs);
		strlist_free(&warns);
		return 1;
	}
	log_init(cfg->log_level, cfg->log_format == LOG_FORMAT_JSON);
	strlist_log_warnings(&warns);
	strlist_free(&errs);
	strlist_free(&warns);
	log_info("starttls-proxy %s starting (%s)", STP_VERSION, path);
	rc = master_run(cfg);
	cfg_unref(cfg);
	return rc;
}
