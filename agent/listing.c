/*
 * The token's objects read once, sorted by label, for work over many
 * enrollments of one token: the agent's pass (check.c) and a batch
 * (batch.c).  A search costs a module like SoftHSM2 (file store) a read
 * of every object file whatever its template, so a search per enrollment
 * made such work quadratic in the enrollments; one listing answers each
 * enrollment's questions (are there marks of an unfinished run, which
 * objects carry its label) by binary search.
 *
 * A listing is a snapshot: it holds only while nothing else changes the
 * labels it is asked about.  Its users ask about enrollments they hold the
 * lock of, or their own rows.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "agent/agent-cmd.h"

static int by_label(const void *a, const void *b)
{
	return strcmp((*(const tok_object *const *)a)->label, (*(const tok_object *const *)b)->label);
}

tok_rv agent_listing_take(tok_ctx *tok, agent_listing *l)
{
	tok_rv rv;
	size_t i;

	memset(l, 0, sizeof(*l));
	if ((rv = tok_objects(tok, &l->objs, &l->n)) != TOK_OK)
		return rv;
	if (l->n > 0 && (l->by_label = malloc(l->n * sizeof(*l->by_label))) == NULL) {
		tok_objects_free(l->objs, l->n);
		memset(l, 0, sizeof(*l));
		return TOK_ERR_NOMEM;
	}
	if (l->n == 0)
		return TOK_OK; /* qsort must not see the NULL array */
	for (i = 0; i < l->n; i++)
		l->by_label[i] = &l->objs[i];
	qsort(l->by_label, l->n, sizeof(*l->by_label), by_label);
	return TOK_OK;
}

void agent_listing_free(agent_listing *l)
{
	free(l->by_label);
	tok_objects_free(l->objs, l->n);
	memset(l, 0, sizeof(*l));
}

size_t agent_listing_first(const agent_listing *l, const char *label)
{
	size_t lo = 0, hi = l->n, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (strcmp(l->by_label[mid]->label, label) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < l->n && strcmp(l->by_label[lo]->label, label) == 0 ? lo : l->n;
}

/* Whether any object carries label + suffix; out of memory says yes, so
 * that the caller does the work the listing would have spared it. */
static int carried(const agent_listing *l, const char *label, const char *suffix)
{
	char *s = agent_label_with(label, suffix);
	int r = s == NULL || agent_listing_first(l, s) < l->n;

	free(s);
	return r;
}

int agent_listing_has(const agent_listing *l, const char *label)
{
	return carried(l, label, "");
}

int agent_listing_leftovers(const agent_listing *l, const char *label)
{
	return carried(l, label, AGENT_MARK_NEW) || carried(l, label, AGENT_MARK_REPLACED) ||
	       carried(l, label, AGENT_MARK_REVOKED);
}
