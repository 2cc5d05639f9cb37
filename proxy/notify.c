/*
 * notify - what a service manager or a container runtime expects of the
 * process.
 *
 * Under systemd (Type=notify) the manager passes the path of a datagram
 * socket in NOTIFY_SOCKET and waits for "READY=1" before it calls the
 * service started; "RELOADING=1" ... "READY=1" bracket a reload and
 * "STOPPING=1" announces a stop (sd_notify(3)).  The protocol is one
 * datagram of newline-separated assignments, so it is written here rather
 * than linked from libsystemd.  A name starting with '@' is an abstract
 * socket: the '@' becomes a NUL byte.  Without NOTIFY_SOCKET every call is
 * a no-op; a failed send is logged once and otherwise ignored, since the
 * proxy serves mail whether or not anyone listens.
 *
 * In a container the proxy is often PID 1, and every process whose parent
 * dies (a `podman exec` shell's children, say) is re-parented to it.  The
 * proxy starts no children of its own, so it lets the kernel reap them:
 * with SIGCHLD set to SIG_IGN, children of PID 1 never become zombies.
 */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "notify.h"

static struct sockaddr_un	notify_sun;
static socklen_t		notify_len;	/* 0: not under systemd */
static int			notify_warned;

void
notify_init(void)
{
	const char *path;
	size_t n;

	if (getpid() == 1)
		signal(SIGCHLD, SIG_IGN);

	notify_len = 0;
	if ((path = getenv("NOTIFY_SOCKET")) == NULL || path[0] == '\0')
		return;
	n = strlen(path);
	if ((path[0] != '/' && path[0] != '@') ||
	    n >= sizeof(notify_sun.sun_path)) {
		log_warnx("NOTIFY_SOCKET=%s: not a unix socket path; "
		    "not notifying", path);
		return;
	}
	memset(&notify_sun, 0, sizeof(notify_sun));
	notify_sun.sun_family = AF_UNIX;
	memcpy(notify_sun.sun_path, path, n);
	if (path[0] == '@')
		notify_sun.sun_path[0] = '\0';
	/* An abstract name is exactly n bytes long: no trailing NUL. */
	notify_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n +
	    (path[0] == '/'));
}

static void
notify_send(const char *msg)
{
	int fd;

	if (notify_len == 0)
		return;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || sendto(fd, msg, strlen(msg), MSG_NOSIGNAL,
	    (struct sockaddr *)&notify_sun, notify_len) < 0) {
		if (!notify_warned++)
			log_warn("NOTIFY_SOCKET: cannot send");
	}
	if (fd >= 0)
		close(fd);
}

void
notify_ready(void)
{
	notify_send("READY=1\nSTATUS=serving");
}

void
notify_reloading(void)
{
	struct timespec ts;
	char msg[96];

	/* systemd >= 253 wants the time of the request with RELOADING=1. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof(msg), "RELOADING=1\nSTATUS=reloading\n"
	    "MONOTONIC_USEC=%llu", (unsigned long long)ts.tv_sec * 1000000ULL +
	    (unsigned long long)ts.tv_nsec / 1000);
	notify_send(msg);
}

void
notify_stopping(void)
{
	notify_send("STOPPING=1\nSTATUS=stopping");
}
