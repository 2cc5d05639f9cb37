/*
 * certwatch - the certificate lifecycle around reloads (SPEC §2, §5):
 * notice when a configured certificate or key file changes and ask for
 * the same reload as SIGHUP about 2 s after the last change; log each
 * served certificate at start and reload; and, for "-t" run as root,
 * find the files that the configured `user` could not read.
 */
#ifndef STP_CERTWATCH_H
#define STP_CERTWATCH_H

#include <uv.h>

#include "config.h"

struct tls_set;

struct certwatch;

/* fn(arg) runs in loop's thread when the files have settled after a
 * change; the watcher has already taken the new state as its baseline. */
struct certwatch	*certwatch_new(uv_loop_t *loop, void (*fn)(void *),
			    void *arg);
/* Watch cfg's certificate, key and client CA files (nothing when
 * cfg->watch_certificates is off).  Paths watched before keep their
 * baseline; new ones start from their state now. */
void			 certwatch_set(struct certwatch *cw,
			    const struct config *cfg);
/* Stop; the memory goes in the timer's close callback. NULL is fine. */
void			 certwatch_free(struct certwatch *cw);

/* One log line per served certificate of cfg, whose TLS set is set:
 * listener, names, key type, notAfter, SHA-256 fingerprint, path (log_kv
 * event "certificate"). */
void			 certs_log(const struct config *cfg,
			    const struct tls_set *set);

/*
 * When running as root with cfg->user set: try, in a child process that
 * has become that user (its groups included), to open every certificate,
 * key and client CA file, and add a warning for each one it cannot read.
 * Returns the number of warnings added.
 */
int			 certs_check_user(const struct config *cfg,
			    struct strlist *warns);

#endif
