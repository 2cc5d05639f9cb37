/*
 * config_int - what the parts of config share (config.c: the load, the
 * messages, the checks across settings; config_schema.c: the field tables
 * and their walker; config_addr.c: addresses).  Internal to them; other
 * modules use config.h.
 */
#ifndef STP_CONFIG_INT_H
#define STP_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <libconfig.h>

#include "config.h"

/* State of one load. */
struct cfg_ctx {
	struct config	*c;
	const char	*path;
	const char	*dir;
	struct strlist	*errs;
	struct strlist	*warns;
	size_t		 nerr;
};

#define KEYMAX	256	/* a key path for messages ("listeners[0].tls...") */

/* config.c: messages ("file:LINE: ...") and places. */
void	cfg_err(struct cfg_ctx *x, const config_setting_t *s,
	    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void	cfg_warn(struct cfg_ctx *x, const config_setting_t *s,
	    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void	cfg_keyf(char *buf, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	cfg_key(char *buf, const char *prefix, const char *name);
void	cfg_note(struct cfg_ctx *x, const char *key,
	    const config_setting_t *s);
/* Small helpers: strdup or abort; a path made relative to dir; does s
 * hold a control character? */
char	*cfg_strdup(const char *s);
char	*cfg_resolve(const char *dir, const char *p);
int	 cfg_has_ctl(const char *s);

/* config_schema.c: apply the tables (defaults, checks, unknown keys). */
void	cfg_apply_top(struct cfg_ctx *x, const config_setting_t *root,
	    struct config *c);
void	cfg_apply_listener(struct cfg_ctx *x, const config_setting_t *grp,
	    const char *key, struct cfg_listener *l);
/* NULL when s is a host name (or "*.host"), else why not. */
const char *cfg_check_hostname(const char *s);
/* Is s a list or an array (of anything)? */
int	cfg_is_list(const config_setting_t *s);

/* config_addr.c */
void	cfg_addr_clear(struct cfg_addr *a);
/* Would a connection to backend b arrive at listen address l? */
int	cfg_addr_reaches(const struct cfg_addr *b, const struct cfg_addr *l);
/* Would a dual-stack socket bound to a (stats.listen) collide with a
 * listener bound to l? */
int	cfg_addr_collides(const struct cfg_addr *a, const struct cfg_addr *l);

#endif
