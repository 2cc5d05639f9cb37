/*
 * gen - a configuration and its TLS set as one reference-counted value
 * (see gen.h).
 */
#include <stdio.h>
#include <stdlib.h>

#include "gen.h"

struct gen *
gen_load(const char *path, struct strlist *errs, struct strlist *warns)
{
	struct config	*cfg;
	struct tls_set	*tls;
	struct gen	*g;

	if ((cfg = cfg_load(path, errs, warns)) == NULL)
		return NULL;
	if ((tls = tls_set_build(cfg, errs, warns)) == NULL ||
	    errs->n > 0) {
		tls_set_free(tls);
		cfg_free(cfg);
		return NULL;
	}
	if ((g = calloc(1, sizeof(*g))) == NULL) {
		strlist_add(errs, "%s: out of memory", path);
		tls_set_free(tls);
		cfg_free(cfg);
		return NULL;
	}
	g->refs = 1;
	g->cfg = cfg;
	g->tls = tls;
	return g;
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
