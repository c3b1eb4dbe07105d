/*
 * Fuzz target: the request line of the agent's control socket
 * (ctl_parse_request), as handle_client gets it from one read of at most
 * 511 bytes.  The result must be what the code before the parser was
 * factored out of agentd.c decided (kept below as the oracle), the name
 * must lie within the line, and the line rebuilt from the result must
 * parse to the same request.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/track.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* handle_client's decision as it was written inline. */
static ctl_verb oracle(const uint8_t *data, size_t n, char *name, size_t namelen)
{
	char line[512];

	memcpy(line, data, n);
	line[n] = '\0';
	line[strcspn(line, "\r\n")] = '\0';
	if (strcmp(line, "status") == 0 || strcmp(line, "status-text") == 0)
		return line[6] == '\0' ? CTL_STATUS_JSON : CTL_STATUS_TEXT;
	if (strcmp(line, "reload") == 0)
		return CTL_RELOAD;
	if (strncmp(line, "renew ", 6) == 0 || strncmp(line, "clear ", 6) == 0) {
		if (strlen(line + 6) >= namelen)
			abort();
		memcpy(name, line + 6, strlen(line + 6) + 1);
		return line[0] == 'c' ? CTL_CLEAR : CTL_RENEW;
	}
	return CTL_UNKNOWN;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const words[] = { "", "status", "status-text", "reload", "renew ",
					     "clear " };
	char buf[512], again[520], want[512];
	const char *name = NULL, *name2 = NULL;
	size_t n = size < sizeof(buf) - 1 ? size : sizeof(buf) - 1, len;
	ctl_verb v, w;

	memcpy(buf, data, n);
	v = ctl_parse_request(buf, n, &name);
	if (v != oracle(data, n, want, sizeof(want)))
		abort();
	if (v == CTL_RENEW || v == CTL_CLEAR) {
		if (name == NULL || name < buf + 6 || name > buf + n || strcmp(name, want) != 0 ||
		    strpbrk(name, "\r\n") != NULL)
			abort();
	}
	if (v == CTL_UNKNOWN)
		return 0;
	/* The canonical line of the request parses to the same request. */
	len = strlen(words[v]);
	memcpy(again, words[v], len);
	if (v == CTL_RENEW || v == CTL_CLEAR) {
		memcpy(again + len, name, strlen(name));
		len += strlen(name);
	}
	again[len++] = '\n'; /* at most 6 + 505 + 1 bytes: room for the NUL */
	if ((w = ctl_parse_request(again, len, &name2)) != v ||
	    ((v == CTL_RENEW || v == CTL_CLEAR) && strcmp(name2, name) != 0))
		abort();
	return 0;
}
