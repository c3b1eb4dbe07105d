/*
 * Which rows of a queue file are done: FILE.state next to FILE, so that
 * each row is used once even across crashes and reruns.
 *
 * A row is known by the SHA-256 of its values (agent_rowstate_row_id),
 * not by its line: editing, adding or reordering other rows does not move
 * a row's state.  Two rows with the same values are one row.
 *
 * Before a row's request the run marks it taken (with the serial of the
 * certificate its label held before, if any), after it done (with the new
 * certificate's serial), failed or waiting.  Each mark is one line
 * appended and fsync'ed before the run goes on, with a checksum of its
 * own: a line a crash tore or anything else corrupted is ignored (with a
 * warning), so the row keeps its state before it.  At open the file is
 * read and rewritten atomically with one line per row (agent/atomic.c),
 * and it stays locked (flock) while the run lasts: a second run on the
 * same file is refused.  The format: p11enroll-formats(5).
 */
#ifndef P11ENROLL_ROWSTATE_H
#define P11ENROLL_ROWSTATE_H

#include <stddef.h>

#include "agent/csv.h"

typedef enum {
	AGENT_ROW_NEW = 0, /* never marked */
	AGENT_ROW_TAKEN,   /* a run began it and did not say how it ended */
	AGENT_ROW_DONE,
	AGENT_ROW_FAILED,
	AGENT_ROW_WAITING, /* the CA said "waiting"; a rerun requests again */
} agent_row_state;

#define AGENT_ROW_ID_LEN 32

typedef struct {
	unsigned char id[AGENT_ROW_ID_LEN];
	agent_row_state st;
	long long time; /* of the mark */
	/* done: the certificate's serial; taken: the one the label held
	 * before ("" none), so that a crashed run's certificate is told from
	 * an older one without trusting clocks */
	char serial[129];
} agent_row_mark;

typedef struct agent_rowstate agent_rowstate;

const char *agent_row_state_name(agent_row_state st);
/* The row's identity: its values by column name, empty ones left out. */
void agent_rowstate_row_id(const agent_csv_row *r, unsigned char id[AGENT_ROW_ID_LEN]);
/* csv_path's state file, opened, locked, read and compacted: 0 with
 * *ret; -1 with err; -2 (err says so) when another run holds it. */
int agent_rowstate_open(const char *csv_path, agent_rowstate **ret, char *err, size_t errlen);
/* Lines read and ignored (torn or corrupt; each logged as a warning). */
size_t agent_rowstate_ignored(const agent_rowstate *rs);
/* The row's last mark, or NULL (AGENT_ROW_NEW). */
const agent_row_mark *agent_rowstate_get(const agent_rowstate *rs,
					 const unsigned char id[AGENT_ROW_ID_LEN]);
/* Appends a mark and fsyncs it (serial: NULL or ""): 0, or -1 with err;
 * after a failure the run must stop: nothing it does is recorded. */
int agent_rowstate_mark(agent_rowstate *rs, const unsigned char id[AGENT_ROW_ID_LEN],
			agent_row_state st, const char *serial, char *err, size_t errlen);
/* Unlocks and frees (NULL: nothing). */
void agent_rowstate_close(agent_rowstate *rs);

/* Exposed for the tests: text of a state file read into rs's table (as
 * open does); the number of lines ignored.  rs from agent_rowstate_new. */
agent_rowstate *agent_rowstate_new(void);
size_t agent_rowstate_read(agent_rowstate *rs, const char *text, size_t len);
/* The line a mark is written as (with its '\n'), in out[len]: 0 or -1. */
int agent_rowstate_format(const agent_row_mark *m, char *out, size_t len);

#endif
