/*
 * Prints the agent's status document (track_status_json, agent/track.c)
 * for enrollments whose name, token serial and last error are given in
 * hex on the command line: any bytes but NUL.  Run by test-status-json.sh,
 * which parses the document and compares the strings with its own
 * escaping of the raw bytes.
 *
 * status-json NAME_HEX SERIAL_HEX ERROR_HEX [NAME_HEX SERIAL_HEX ERROR_HEX...]
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/track.h"

/* The bytes of hex into out (NUL-terminated); -1 if not hex, holding a
 * NUL byte or longer than outlen - 1. */
static int unhex(const char *hex, char *out, size_t outlen)
{
	size_t n = strlen(hex), i;
	unsigned int b;

	if (n % 2 != 0 || n / 2 >= outlen)
		return -1;
	for (i = 0; i < n / 2; i++) {
		if (sscanf(hex + 2 * i, "%2x", &b) != 1 || b == 0)
			return -1;
		out[i] = (char)b;
	}
	out[n / 2] = '\0';
	return 0;
}

int main(int argc, char **argv)
{
	track *t, **ts;
	size_t n, i, len = 0;
	char *doc;

	if (argc < 4 || (argc - 1) % 3 != 0) {
		fprintf(stderr, "usage: status-json NAME_HEX SERIAL_HEX ERROR_HEX...\n");
		return 2;
	}
	n = (size_t)(argc - 1) / 3;
	if ((t = calloc(n, sizeof(*t))) == NULL || (ts = calloc(n, sizeof(*ts))) == NULL)
		return 1;
	for (i = 0; i < n; i++) {
		size_t nlen = strlen(argv[1 + 3 * i]) / 2 + 1;
		char err[TRACK_ERROR_MAX];

		ts[i] = &t[i];
		t[i].st = T_BACKOFF;
		if ((t[i].e.name = malloc(nlen)) == NULL)
			return 1;
		t[i].name = t[i].e.name; /* as track_new() has it */
		if (unhex(argv[1 + 3 * i], t[i].e.name, nlen) < 0 ||
		    unhex(argv[2 + 3 * i], t[i].token_serial, sizeof(t[i].token_serial)) < 0 ||
		    unhex(argv[3 + 3 * i], err, sizeof(err)) < 0) {
			fprintf(stderr, "status-json: enrollment %zu: not hex, a NUL byte or too long\n",
				i + 1);
			return 2;
		}
		track_set_error(&t[i], "%s", err);
	}
	if ((doc = track_status_json(ts, n, 1000, 1, &len)) == NULL)
		return 1;
	fwrite(doc, 1, len, stdout);
	free(doc);
	for (i = 0; i < n; i++) {
		free(t[i].e.name);
		free(t[i].last_error);
	}
	free(ts);
	free(t);
	return 0;
}
