/*
 * gen - a configuration and its TLS set as one reference-counted value
 * (see gen.h).
 */
#include <stdlib.h>

#include "gen.h"

struct gen *
gen_load(const char *path, struct strlist *errs, struct strlist *warns)
{
	struct config	*cfg;
	struct tls_set	*tls = NULL;
	struct gen	*g;

	if ((cfg = cfg_load(path, errs, warns)) == NULL)
		return NULL;
	if ((tls = tls_set_build(cfg, errs, warns)) == NULL || errs->n > 0)
		goto fail;
	if ((g = calloc(1, sizeof(*g))) == NULL) {
		strlist_add(errs, "%s: out of memory", path);
		goto fail;
	}
	g->refs = 1;
	g->cfg = cfg;
	g->tls = tls;
	return g;
fail:
	tls_set_free(tls);
	cfg_free(cfg);
	return NULL;
}

struct gen *
gen_ref(struct gen *g)
{
	if (g != NULL)
		__atomic_add_fetch(&g->refs, 1, __ATOMIC_RELAXED);
	return g;
}

void
gen_unref(struct gen *g)
{
	if (g == NULL ||
	    __atomic_sub_fetch(&g->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	tls_set_free(g->tls);
	cfg_free(g->cfg);
	free(g);
}
