/*
 * Fuzz target: the result record a step's child writes for the agent
 * (agent/result.h).  The agent reads it from a process that may have been
 * half-killed or, in a bad day, from a different program: what the parser
 * accepts must be within its bounds and must write out and parse back to
 * the same facts; what it refuses, it refuses with a reason.
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static agent_result r, again;
	static char text[AGENT_RESULT_MAX];
	char why[256];
	int n;

	why[0] = '\0';
	if (agent_result_parse((const char *)data, size, &r, why, sizeof(why)) < 0) {
		if (why[0] == '\0')
			abort();
		return 0;
	}
	if (r.exit_code < 0 || r.exit_code > 255 || r.token < -1 || r.token > 1 || r.cert < -1 ||
	    r.cert > 1 || r.pending_check_after < 0 || !terminated(r.error, sizeof(r.error)) ||
	    !terminated(r.transaction, sizeof(r.transaction)) ||
	    !terminated(r.token_serial, sizeof(r.token_serial)) ||
	    !terminated(r.cert_serial, sizeof(r.cert_serial)) ||
	    !terminated(r.pending, sizeof(r.pending)) || strchr(r.error, '\n') != NULL)
		abort();
	n = agent_result_format(&r, text, sizeof(text));
	if (n < 0 || agent_result_parse(text, (size_t)n, &again, why, sizeof(why)) < 0 ||
	    memcmp(&r, &again, sizeof(r)) != 0)
		abort();
	return 0;
}
