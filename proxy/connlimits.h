/*
 * connlimits - connection counts of one listener across workers, for
 * max_connections and max_connections_per_ip; see connlimits.c.
 */
#ifndef STP_CONNLIMITS_H
#define STP_CONNLIMITS_H

#include <sys/socket.h>

#include "config.h"

struct lsn_limits;

struct lsn_limits *limits_new(void);
void	limits_free(struct lsn_limits *l);
/* 0 when the connection from sa may proceed (and is counted), -1 when a
 * limit of lc is reached (or out of memory). */
int	limits_take(struct lsn_limits *l, const struct cfg_listener *lc,
	    const struct sockaddr *sa);
/* The connection from sa has closed. */
void	limits_release(struct lsn_limits *l, const struct sockaddr *sa);

#endif
