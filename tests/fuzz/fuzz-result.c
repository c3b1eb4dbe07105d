/*
 * Fuzz target: the result record a step's child writes for the agent
 * (agent/result.h).  The agent reads it from a process that may have been
 * half-killed or, in a bad day, from a different program: what the parser
 * accepts must be within its bounds and must write out and parse back to
 * the same facts; what it refuses, it refuses with a reason.  The same
 * input read as a sequence of records (check NAME...) yields records with
 * the same guarantees, each within its bound.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/result.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int terminated(const char *s, size_t len)
{
	return memchr(s, '\0', len) != NULL;
}

/* What a parsed record must be. */
static void check(const agent_result *r)
{
	static agent_result again;
	static char text[AGENT_RESULT_MAX];
	char why[256];
	int n;

	if (r->exit_code < 0 || r->exit_code > 255 || r->token < -1 || r->token > 1 || r->cert < -1 ||
	    r->cert > 1 || r->pending_check_after < 0 || !terminated(r->error, sizeof(r->error)) ||
	    !terminated(r->name, sizeof(r->name)) || strchr(r->name, '\n') != NULL ||
	    !terminated(r->transaction, sizeof(r->transaction)) ||
	    !terminated(r->token_serial, sizeof(r->token_serial)) ||
	    !terminated(r->cert_serial, sizeof(r->cert_serial)) ||
	    !terminated(r->pending, sizeof(r->pending)) || strchr(r->error, '\n') != NULL)
		abort();
	n = agent_result_format(r, text, sizeof(text));
	if (n < 0 || agent_result_parse(text, (size_t)n, &again, why, sizeof(why)) < 0 ||
	    memcmp(r, &again, sizeof(*r)) != 0)
		abort();
}

static void sequence(const char *p, size_t size)
{
	static agent_result r;
	size_t used, off = 0;
	char why[256];
	int k;

	while ((k = agent_result_next(p + off, size - off, &used, &r, why, sizeof(why))) == 1) {
		if (used == 0 || used > size - off || used > AGENT_RESULT_MAX)
			abort();
		check(&r);
		off += used;
	}
	if (k == 0 && size - off > AGENT_RESULT_MAX)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static agent_result r;
	char why[256];

	sequence((const char *)data, size);
	why[0] = '\0';
	if (agent_result_parse((const char *)data, size, &r, why, sizeof(why)) < 0) {
		if (why[0] == '\0')
			abort();
		return 0;
	}
	check(&r);
	return 0;
}
