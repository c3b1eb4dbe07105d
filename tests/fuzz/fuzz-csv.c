/*
 * Fuzz target: the queue file of enroll --batch and the station
 * (agent/csv.c).  The input is the file's text.  Whatever it holds, the
 * reader returns rows within the bounds its callers rely on: each row
 * starts after the header, each value a NUL-terminated string of the
 * input's bytes; the value checks and the row identity run on every row.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "agent/csv.h"
#include "agent/rowstate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void quiet(void *arg, long line, const char *msg)
{
	(void)arg;
	if (line < 0 || msg == NULL || strlen(msg) > 1024)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int init;
	unsigned char id[AGENT_ROW_ID_LEN];
	agent_csv c;
	size_t i;
	int k;

	if (!init) {
		log_init("fuzz-csv", -1, 0);
		init = 1;
	}
	/* an exact copy: a read past the end is a sanitizer report */
	char *text = malloc(size ? size : 1);

	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	agent_csv_parse(text, size, &c, quiet, NULL);
	for (i = 0; i < c.n; i++) {
		if (c.rows[i].line < 2 || (i > 0 && c.rows[i].line <= c.rows[i - 1].line))
			abort();
		for (k = 0; k < AGENT_CSV_NCOLS; k++)
			if (c.rows[i].v[k] != NULL && (c.rows[i].v[k][0] == '\0' || !c.has[k]))
				abort();
		agent_csv_check_row(&c.rows[i], quiet, NULL);
		agent_rowstate_row_id(&c.rows[i], id);
	}
	agent_csv_free(&c);
	free(text);
	return 0;
}
