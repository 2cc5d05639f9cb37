/*
 * master - the process around the workers; see master.c.
 */
#ifndef STP_MASTER_H
#define STP_MASTER_H

#include "gen.h"

/* Bind, drop privileges, run the workers on g (gen_load()) until
 * stopped; reloads replace it.  0 or 1. */
int		 master_run(struct gen *g);

#endif
