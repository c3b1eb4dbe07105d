/*
 * The badge station's queue (station.h): the CSV file's rows, which row a
 * card gets, and the row marks that say what became of each
 * (agent/rowstate.c).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/station.h"

static void csv_error(void *arg, long line, const char *msg)
{
	station *s = arg;

	if (line > 0)
		log_msg(LOG_ERR, "%s:%ld: %s", s->queue, line, msg);
	else
		log_msg(LOG_ERR, "the queue %s: %s", s->queue, msg);
}

int station_queue_open(station *s)
{
	char err[1024];
	int r;

	if (agent_csv_load(s->queue, &s->csv, csv_error, s) < 0) {
		log_msg(LOG_ERR, "the queue %s cannot be used: correct it and start the station "
				 "again",
			s->queue);
		return EXIT_USAGE;
	}
	if (!s->csv.has[AGENT_CSV_SUBJECT] && s->e->subject == NULL) {
		log_msg(LOG_ERR, "the queue %s has no subject column and the enrollment no subject: "
				 "add the column",
			s->queue);
		return EXIT_USAGE;
	}
	if ((s->used = calloc(s->csv.n + 1, 1)) == NULL) {
		log_msg(LOG_ERR, "out of memory");
		return EXIT_INTERNAL;
	}
	if ((r = agent_rowstate_open(s->queue, &s->rs, err, sizeof(err))) < 0) {
		log_msg(LOG_ERR, "%s", err);
		return r == -2 ? EXIT_BUSY : EXIT_USAGE;
	}
	return EXIT_OK;
}

void station_card_hex(const tok_info *ti, char *out, size_t len)
{
	agent_hex_upper((const unsigned char *)ti->serial, strlen(ti->serial), out, len);
}

agent_csv_row *station_queue_pick(station *s, const tok_info *ti, size_t *ret_i,
				  int *ret_resumed)
{
	unsigned char id[AGENT_ROW_ID_LEN];
	const agent_row_mark *m;
	char mine[2 * sizeof(ti->serial) + 1];
	int pass;
	size_t i;

	station_card_hex(ti, mine, sizeof(mine));
	*ret_resumed = 0;
	for (pass = 0; pass < 3; pass++)
		for (i = 0; i < s->csv.n; i++) {
			agent_csv_row *r = &s->csv.rows[i];
			const char *ts = r->v[AGENT_CSV_TOKEN_SERIAL];
			int kept, kept_mine;

			agent_rowstate_row_id(r, id);
			m = agent_rowstate_get(s->rs, id);
			if (m != NULL && m->st == AGENT_ROW_DONE)
				continue;
			kept = m != NULL && (m->st == AGENT_ROW_TAKEN || m->st == AGENT_ROW_WAITING) &&
			       m->serial[0] != '\0';
			kept_mine = kept && mine[0] != '\0' && strcmp(m->serial, mine) == 0;
			/* a waiting row stays the card's, also within this run, and
			 * so does a taken one (its card was pulled out) */
			if (s->used[i] && !kept_mine)
				continue;
			if (pass == 0 ? !kept_mine : kept)
				continue;
			if (pass == 1 && (ts == NULL || strcmp(ts, ti->serial) != 0))
				continue;
			if (pass == 2 && ts != NULL)
				continue;
			*ret_i = i;
			*ret_resumed = pass != 0 ? 0 : m->st == AGENT_ROW_WAITING ? 2 : 1;
			return r;
		}
	return NULL;
}

int station_queue_mark(station *s, size_t i, agent_row_state st, const char *serial)
{
	unsigned char id[AGENT_ROW_ID_LEN];
	char err[1024];

	agent_rowstate_row_id(&s->csv.rows[i], id);
	s->used[i] = 1;
	if (agent_rowstate_mark(s->rs, id, st, serial, err, sizeof(err)) == 0)
		return 0;
	log_msg(LOG_ERR, "%s: the station stops", err);
	return -1;
}
