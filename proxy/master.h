/*
 * master - the process around the workers; see master.c.
 */
#ifndef STP_MASTER_H
#define STP_MASTER_H

#include "config.h"

/* Load a configuration and build its TLS set; NULL with errs filled. */
struct config	*master_load(const char *path, struct strlist *errs,
		    struct strlist *warns);
/* Bind, drop privileges, run the workers until stopped.  0 or 1. */
int		 master_run(struct config *cfg);

#endif
