/*
 * notify - what a service manager or a container runtime expects of the
 * process: systemd's readiness protocol, and reaping orphans as PID 1.
 * See notify.c.
 */
#ifndef STP_NOTIFY_H
#define STP_NOTIFY_H

/* Read NOTIFY_SOCKET; as PID 1, have the kernel reap orphaned children. */
void	notify_init(void);
/* READY=1: listening (again, after a reload). */
void	notify_ready(void);
/* RELOADING=1 with the time, before a reload. */
void	notify_reloading(void);
/* STOPPING=1: the graceful stop has begun. */
void	notify_stopping(void);

#endif
