/*
 * The badge station's parts (internal): the loop and the card events
 * (station.c), the queue and its row marks (station_queue.c), one card's
 * enrollment in a child process (station_child.c).  Blank cards:
 * station_init.h.
 */
#ifndef P11ENROLL_STATION_H
#define P11ENROLL_STATION_H

#include <stddef.h>

#include "agent/agent-cmd.h"
#include "agent/csv.h"
#include "agent/result.h"
#include "agent/rowstate.h"

/* Cards that appear while one is being handled, kept for after it. */
#define STATION_WAITING_MAX 16

typedef struct {
	const conf_enrollment *e;
	const char *config;
	const agent_cmd_opts *o; /* its command-line settings go to each child */
	char self[4096];
	tok_watch *w;
	/* the queue, or NULL path */
	const char *queue;
	agent_csv csv;
	agent_rowstate *rs;
	unsigned char *used; /* per row: this run marked it */
	secret *pin;	     /* read once; NULL: the child reads pin_source */
	secret *so_pin;	     /* init_token: read once */
	tok_watch_event waiting[STATION_WAITING_MAX];
	size_t nwaiting;
	char (*done)[sizeof(((tok_info *)0)->serial)];
	size_t ndone;
	/* cards pulled out in the middle this run: recovered when back */
	char (*pulled)[sizeof(((tok_info *)0)->serial)];
	size_t npulled;
	int ok, failed, skipped, waiting_n;
	int gone;   /* the card handled last is out already */
	int tty;    /* stdout is a terminal: colour and progress */
	int prompt; /* no queue: the operator types each card's subject */
	char typed_subject[1024], typed_san[1024];
} station;

/* What one card's enrollment gets. */
typedef struct {
	const char *label, *subject, *san, *key_type, *profile;
	int look;    /* check --recover instead of enroll */
	int resume;  /* resume: the CA answered waiting before */
	int replace; /* the row's replace column says yes */
	const char *token_label; /* a blank card's: the row's, else token_label */
} card_job;

/* station.c */
/* Seconds on a monotonic clock. */
double station_now(void);
/* The token as the operator reads it: its serial, else its label (a
 * blank card may have neither). */
const char *station_card_name(const tok_watch_event *ev);

/* station_queue.c */
/* Loads s->queue and opens its row state: EXIT_OK, or the exit code with
 * the reason logged. */
int station_queue_open(station *s);
/* The card's serial as a row mark's serial field holds it (upper-case
 * hex of its bytes): the card a row was taken for. */
void station_card_hex(const tok_info *ti, char *out, size_t len);
/*
 * The row for a card: one an earlier run (or this one) took or left
 * waiting for this card (*ret_resumed: 1 taken, the station stopped in the
 * middle; 2 waiting, the CA's answer is to be fetched), else the one
 * naming its serial, else the next one without a token_serial; never a
 * row done, used by this run or kept for another card.  NULL when there
 * is none.
 */
agent_csv_row *station_queue_pick(station *s, const tok_info *ti, size_t *ret_i,
				  int *ret_resumed);
/* Marks row i: 0, or -1 (logged): the station must stop, nothing it does
 * would be recorded. */
int station_queue_mark(station *s, size_t i, agent_row_state st, const char *serial);

/* station_child.c */
/* Runs the enrollment of the card ev for job: its exit code with its
 * record in r, or -1 with why in r->error when it left none. */
int station_run_child(const station *s, const tok_watch_event *ev, const card_job *job,
		      agent_result *r);

#endif
