/*
 * A JSON string from text from outside: first agent_escape() (no terminal
 * escapes, valid UTF-8, so a JSON parser never meets a broken sequence),
 * then JSON's quoting of quotes, backslashes and what is left of control
 * characters.  Shared by status --json and the journal.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"

char *agent_json_string(const char *raw)
{
	size_t size = 4 * strlen(raw != NULL ? raw : "") + 1, o = 0;
	char *safe = malloc(size), *out = NULL;
	const char *s;

	/* agent_escape: at most 4 bytes out per byte in; quoting: at most
	 * 6 per byte of that (\u00XX), and the two quotes. */
	if (safe == NULL || (out = malloc(6 * size + 3)) == NULL)
		goto out;
	s = agent_escape(raw, safe, size);
	out[o++] = '"';
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			snprintf(out + o, 7, "\\u%04x", c);
			o += 6;
		} else {
			out[o++] = (char)c;
		}
	}
	out[o++] = '"';
	out[o] = '\0';
out:
	free(safe);
	return out;
}
