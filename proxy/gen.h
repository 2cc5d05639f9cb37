/*
 * gen - one generation of the running configuration: the parsed
 * configuration and the TLS set built from it, loaded together and freed
 * together.  The master holds the current one; each worker holds the one
 * its new sessions get; each session holds the one it began with, so a
 * reload never changes a session midway.  Reference counted across
 * threads.
 *
 * config.c knows nothing of TLS and tls.c nothing of generations: this
 * is the one place that ties them.
 */
#ifndef STP_GEN_H
#define STP_GEN_H

#include "config.h"
#include "strlist.h"
#include "tls.h"

struct gen {
	int			 refs;		/* atomic */
	struct config		*cfg;
	struct tls_set		*tls;
};

/*
 * Load and check the configuration at path, then every certificate and
 * key it names.  Returns a generation with one reference, or NULL after
 * adding at least one message to errs; warnings go to warns.
 */
struct gen	*gen_load(const char *path, struct strlist *errs,
		    struct strlist *warns);
struct gen	*gen_ref(struct gen *g);
void		 gen_unref(struct gen *g);	/* frees at 0; NULL is fine */

#endif
