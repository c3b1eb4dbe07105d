/*
 * Fuzz target: the row state file of a queue (FILE.csv.state,
 * agent/rowstate.c), which a crash may have torn and anything else may
 * have changed.  The input is the file's text.  Whatever it holds,
 * agent_rowstate_read keeps only whole lines whose checksum matches; each
 * of those marks, written again with agent_rowstate_format and read back,
 * must be the same mark.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "agent/rowstate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int init;
	agent_rowstate *rs, *again;
	const agent_row_mark *m, *m2;
	const char *p, *end, *nl;
	char *text, line[400];

	if (!init) {
		log_init("fuzz-rowstate", -1, 0);
		init = 1;
	}
	/* an exact copy: a read past the end is a sanitizer report */
	if ((text = malloc(size ? size : 1)) == NULL || (rs = agent_rowstate_new()) == NULL ||
	    (again = agent_rowstate_new()) == NULL)
		abort();
	memcpy(text, data, size);
	agent_rowstate_read(rs, text, size);
	/* each line that parsed alone: the table holds it or a later mark */
	for (p = text, end = text + size; p < end && (nl = memchr(p, '\n', (size_t)(end - p)));
	     p = nl + 1) {
		agent_rowstate *one = agent_rowstate_new();

		if (one == NULL)
			abort();
		if (agent_rowstate_read(one, p, (size_t)(nl - p) + 1) == 0 && nl - p > 70) {
			unsigned char id[AGENT_ROW_ID_LEN];
			size_t i;

			for (i = 0; i < AGENT_ROW_ID_LEN; i++) {
				int h = p[strcspn(p, " ") + 1 + 2 * i], l = p[strcspn(p, " ") + 2 + 2 * i];

				id[i] = (unsigned char)(((h <= '9' ? h - '0' : h - 'a' + 10) << 4) |
							(l <= '9' ? l - '0' : l - 'a' + 10));
			}
			if ((m = agent_rowstate_get(one, id)) == NULL ||
			    agent_rowstate_get(rs, id) == NULL)
				abort();
			if (agent_rowstate_format(m, line, sizeof(line)) < 0 ||
			    agent_rowstate_read(again, line, strlen(line)) != 0 ||
			    (m2 = agent_rowstate_get(again, id)) == NULL || m2->st != m->st ||
			    m2->time != m->time || strcmp(m2->serial, m->serial) != 0)
				abort();
		}
		agent_rowstate_close(one);
	}
	agent_rowstate_close(again);
	agent_rowstate_close(rs);
	free(text);
	return 0;
}
