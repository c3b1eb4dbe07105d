/*
 * p11enroll station NAME: a badge station.  A foreground loop that waits
 * for a token (a card) matching the enrollment's token URI to appear,
 * decides who it is for (the next row of the queue file, or the
 * enrollment's own subject), enrolls it, prints one line for the operator,
 * appends one journal record, asks for the card to be removed and waits
 * for that, then for the next.
 *
 * The station process only watches (tok_watch: its own dlopen of the
 * module, no libp11, no login).  Each card's enrollment is this program's
 * `enroll NAME --token URI` in a child process, as the agent runs its
 * steps (agent/child.c): a module that crashes, or a card pulled out in
 * the middle, ends the child and never the station, and the watcher's
 * C_Finalize never meets libp11 in one process.  The child's PIN comes on
 * a pipe (pin-source fd:4), its result record on descriptor 3
 * (agent/result.h); its own journal goes to /dev/null, so that the
 * station writes one record per card, with the outcomes only the station
 * knows (a bad row, a card skipped).
 *
 * A queue row is marked taken (agent/rowstate.c) before the card is
 * touched and done, failed or waiting after it; a card pulled out in the
 * middle keeps it taken, and is recovered when it is back.
 *
 * This file is the loop and the card events; the queue is in
 * station_queue.c, the child in station_child.c, blank cards in
 * station_init.c (station.h).
 */
#include "config.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent/journal.h"
#include "agent/station.h"
#include "agent/station_init.h"

/* The longest wait for the watcher: a stop asked for between the check of
 * the flag and the watcher's sleep is seen after it. */
#define WAIT_MS 250
/* Cards this run enrolled, not enrolled again while it lasts. */
#define DONE_MAX 4096

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
	(void)sig;
	stop_requested = 1;
}

double station_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The token as the operator reads it: its serial, else its label (a
 * blank card may have neither). */
const char *station_card_name(const tok_watch_event *ev)
{
	return ev->info.serial[0] != '\0' ? ev->info.serial
	       : ev->info.label[0] != '\0' ? ev->info.label
					   : "(blank)";
}

static int same_card(const tok_info *a, const tok_info *b)
{
	return strcmp(a->serial, b->serial) == 0 && strcmp(a->label, b->label) == 0 &&
	       strcmp(a->model, b->model) == 0 && strcmp(a->manufacturer, b->manufacturer) == 0;
}

/* The index of the card's serial in list[0..n), or -1. */
static long in_list(char (*list)[sizeof(((tok_info *)0)->serial)], size_t n, const tok_info *ti)
{
	size_t i;

	if (ti->serial[0] == '\0')
		return -1;
	for (i = 0; i < n; i++)
		if (strcmp(list[i], ti->serial) == 0)
			return (long)i;
	return -1;
}

static int enrolled_before(const station *s, const tok_info *ti)
{
	return in_list(s->done, s->ndone, ti) >= 0;
}

static void remember(station *s, const tok_info *ti)
{
	if (ti->serial[0] == '\0' || enrolled_before(s, ti) || s->ndone >= DONE_MAX)
		return;
	snprintf(s->done[s->ndone++], sizeof(s->done[0]), "%s", ti->serial);
}

/* A card pulled out in the middle: remembered (pulled 1) until it is
 * back and recovered (pulled 0).  1 when it was remembered before. */
static int pulled_mark(station *s, const tok_info *ti, int pulled)
{
	long i = in_list(s->pulled, s->npulled, ti);

	if (pulled && i < 0 && ti->serial[0] != '\0' && s->npulled < DONE_MAX)
		snprintf(s->pulled[s->npulled++], sizeof(s->pulled[0]), "%s", ti->serial);
	if (!pulled && i >= 0)
		memmove(s->pulled + i, s->pulled + i + 1,
			(--s->npulled - (size_t)i) * sizeof(s->pulled[0]));
	return i >= 0;
}

/* The operator's line: on stdout, one line, escaped (token and CA text). */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void say(const char *fmt, ...)
{
	char line[2048], esc[4096];
	va_list ap;

	if (log_verbosity() < 0) /* -q: errors only */
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	printf("%s\n", agent_escape(line, esc, sizeof(esc)));
	fflush(stdout);
}

/* The card's outcome line: on a terminal the word in colour (green, red,
 * yellow) over the progress line; plain text otherwise. */
static void say_outcome(const station *s, const char *word, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void say_outcome(const station *s, const char *word, const char *fmt, ...)
{
	char line[2048], esc[4096];
	const char *colour = word[0] == 'O' ? "32" : word[0] == 'F' ? "31" : "33";
	va_list ap;

	/* -q: a card that failed only */
	if (log_verbosity() < 0 && word[0] != 'F')
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	agent_escape(line, esc, sizeof(esc));
	if (s->tty)
		printf("\r\033[K\033[1;%sm%s\033[0m %s\n", colour, word, esc);
	else
		printf("%s %s\n", word, esc);
	fflush(stdout);
}


static void journal(const station *s, const tok_watch_event *ev, const char *source,
		    const char *label, const char *subject, const agent_result *r,
		    const char *outcome, const char *error)
{
	agent_journal_entry j;
	char err[1200];

	if (s->e->journal == NULL)
		return;
	memset(&j, 0, sizeof(j));
	j.time = (long long)time(NULL);
	snprintf(j.request, sizeof(j.request), "%s", r != NULL ? "ir" : "");
	snprintf(j.source, sizeof(j.source), "%s", source != NULL ? source : "");
	snprintf(j.token_serial, sizeof(j.token_serial), "%s", ev->info.serial);
	snprintf(j.label, sizeof(j.label), "%s", label != NULL ? label : "");
	snprintf(j.subject, sizeof(j.subject), "%s", subject != NULL ? subject : "");
	if (r != NULL) {
		snprintf(j.cert_serial, sizeof(j.cert_serial), "%s",
			 r->exit_code == EXIT_OK ? r->cert_serial : "");
		j.not_after = r->exit_code == EXIT_OK ? r->not_after : 0;
		snprintf(j.transaction, sizeof(j.transaction), "%s", r->transaction);
	}
	j.outcome = outcome;
	snprintf(j.error, sizeof(j.error), "%s", error != NULL ? error : "");
	if (agent_journal_append(s->e->journal, &j, err, sizeof(err)) < 0)
		log_msg(LOG_WARNING, "%s", err);
}


/* Collects a row's first error for the operator's line. */
typedef struct {
	char msg[768];
	int n;
} row_errors;

static void row_error(void *arg, long line, const char *msg)
{
	row_errors *re = arg;

	(void)line;
	if (re->n++ == 0)
		snprintf(re->msg, sizeof(re->msg), "%s", msg);
}

/* ---- the loop ---------------------------------------------------------- */

/* A watcher's event while card is in: 1 when it is card's removal; other
 * cards that come are kept for after it. */
static int card_event(station *s, const tok_watch_event *ev, const tok_watch_event *card)
{
	size_t i;

	if (ev->kind == TOK_WATCH_APPEARED) {
		/* the card the station initialised, seen anew */
		if (same_card(&ev->info, &card->info))
			return 0;
		if (s->nwaiting < STATION_WAITING_MAX)
			s->waiting[s->nwaiting++] = *ev;
		else
			log_msg(LOG_WARNING, "card %s ignored: too many cards at once",
				station_card_name(ev));
	} else if (ev->kind == TOK_WATCH_REMOVED) {
		if (same_card(&ev->info, &card->info))
			return 1;
		for (i = 0; i < s->nwaiting; i++)
			if (same_card(&ev->info, &s->waiting[i].info)) {
				memmove(s->waiting + i, s->waiting + i + 1,
					(--s->nwaiting - i) * sizeof(s->waiting[0]));
				break;
			}
	}
	return 0;
}

/* Whether the card is out now (one look): an enrollment that failed
 * without seeing it go (a module that only finds its objects gone). */
static int card_out(station *s, const tok_watch_event *card)
{
	tok_watch_event ev;

	if (tok_watch_poll(s->w) != TOK_OK)
		return 0;
	while (tok_watch_next(s->w, 0, &ev) == TOK_OK && ev.kind != TOK_WATCH_NONE)
		if (card_event(s, &ev, card))
			s->gone = 1;
	return s->gone;
}

/* Waits until the card is removed; other cards that come meanwhile are
 * kept for after it. */
static void wait_removed(station *s, const tok_watch_event *card)
{
	tok_watch_event ev;

	if (s->gone) {
		s->gone = 0;
		return;
	}
	say("remove the card %s", station_card_name(card));
	for (;;) {
		if (stop_requested)
			return;
		if (tok_watch_next(s->w, WAIT_MS, &ev) != TOK_OK) {
			log_msg(LOG_WARNING, "looking for cards: %s", tok_watch_errmsg(s->w));
			(void)tok_watch_next(s->w, 1000, &ev);
			continue;
		}
		if (card_event(s, &ev, card))
			return;
	}
}

/*
 * Prompt mode: the answer to question, checked as the setting key's value
 * is, into out; asked again until it passes.  An empty answer is def (NULL:
 * none, out ""); 0, or -1 on end of input or a stop.
 */
static int ask(const char *question, const char *key, const char *def, char *out, size_t len)
{
	const setting *set = conf_setting(key);
	char why[600];
	int v;

	for (;;) {
		size_t n;

		printf("%s%s%s%s: ", question, def != NULL ? " [" : "", def != NULL ? def : "",
		       def != NULL ? "]" : "");
		fflush(stdout);
		if (stop_requested || fgets(out, (int)len, stdin) == NULL) {
			printf("\n");
			out[0] = '\0';
			return -1;
		}
		n = strcspn(out, "\r\n");
		if (out[n] == '\0' && n + 1 == len) {
			int c;

			while ((c = getchar()) != EOF && c != '\n')
				;
			printf("  too long: at most %zu characters\n", len - 2);
			continue;
		}
		out[n] = '\0';
		if (n == 0) {
			snprintf(out, len, "%s", def != NULL ? def : "");
			return 0;
		}
		if (set == NULL || conf_check_value(set, out, 0, &v, why, sizeof(why)) == 0)
			return 0;
		printf("  %s: try again\n", why);
	}
}

/* Whether a pending request is saved for the card and label. */
static int saved_request(const station *s, const tok_watch_event *ev, const char *label)
{
	conf_enrollment e = *s->e; /* a shallow copy: only read */
	char path[4096];

	e.label = (char *)label;
	return pending_path(&e, &ev->info, "pending", path, sizeof(path)) == 0 &&
	       access(path, F_OK) == 0;
}

/* A card that gets nothing: said, journalled, counted. */
static void skip_card(station *s, const tok_watch_event *ev, const char *why)
{
	say_outcome(s, "SKIPPED", "card %s: %s", station_card_name(ev), why);
	journal(s, ev, NULL, NULL, NULL, NULL, "skipped", why);
	s->skipped++;
}

/* A blank card (init_token): initialised, *ev then the new token and
 * *ret_pin its generated user PIN (NULL: pin_source's).  0, or 1 when it
 * failed (said, journalled, counted). */
static int blank_card(station *s, tok_watch_event *ev, const char *source, const card_job *job,
		      secret **ret_pin)
{
	char why[1800];

	say("card %s: blank: initialising it", station_card_name(ev));
	if (station_init_card(s->e, s->so_pin, s->pin, s->w, ev, job->token_label, job->subject,
			      ret_pin, why, sizeof(why)) == 0)
		return 0;
	say_outcome(s, "FAILED", "card %s: %s", station_card_name(ev), why);
	log_msg(LOG_ERR, "card %s: %s", station_card_name(ev), why);
	journal(s, ev, source, job->label, job->subject, NULL, "failed", why);
	s->failed++;
	return 1;
}

/* The card ev: decided, enrolled, said and journalled.  -1 when the
 * station must stop (the row state cannot be written); 1 when the card
 * was a blank one left blank: no removal to wait for (the watcher reports
 * it again only once removed and inserted again). */
static int handle_card(station *s, tok_watch_event *ev)
{
	char source[320], why[1024];
	agent_csv_row *row = NULL;
	card_job job = { 0 };
	agent_result *r;
	char mine[2 * sizeof(ev->info.serial) + 1];
	size_t ri = 0;
	double t0 = station_now();
	int rc, resumed = 0, pulled;
	secret *card_pin = NULL, *station_pin = s->pin;

	/* Not counted: SoftHSM2 always shows one, as many readers an empty
	 * card. */
	if (!ev->initialized && s->e->init_token != 1) {
		say_outcome(s, "SKIPPED", "card %s: blank card: set init_token = yes or initialise "
					  "it",
			    station_card_name(ev));
		return 1;
	}
	if (enrolled_before(s, &ev->info)) {
		skip_card(s, ev, "this station enrolled it already");
		return 0;
	}
	/* As the token information says, without a login: a login would
	 * fail and take nothing from the queue. */
	if (ev->info.flags & TOK_F_USER_PIN_LOCKED) {
		skip_card(s, ev, "its user PIN is locked: unblock it with the SO PIN (or use "
				 "another card), then insert it again");
		return 0;
	}
	job.label = s->e->label;
	job.subject = s->e->subject;
	job.san = s->e->san;
	source[0] = '\0';
	/* typed and checked before the card is touched */
	if (s->prompt) {
		say("card %s: who is it for?", station_card_name(ev));
		if (ask("subject (as /CN=name/O=org)", "subject", s->e->subject, s->typed_subject,
			sizeof(s->typed_subject)) < 0 ||
		    (s->typed_subject[0] != '\0' &&
		     ask("subjectAltNames (as email:a@b,DNS:c; empty: none)", "san", s->e->san,
			 s->typed_san, sizeof(s->typed_san)) < 0)) {
			skip_card(s, ev, "nothing typed for it");
			return 0;
		}
		if (s->typed_subject[0] == '\0') {
			skip_card(s, ev, "no subject typed for it");
			return 0;
		}
		job.subject = s->typed_subject;
		job.san = s->typed_san[0] != '\0' ? s->typed_san : NULL;
	}
	while (s->queue != NULL) {
		row_errors re = { { 0 }, 0 };

		if ((row = station_queue_pick(s, &ev->info, &ri, &resumed)) == NULL) {
			skip_card(s, ev, "no row of the queue is left for it");
			return 0;
		}
		snprintf(source, sizeof(source), "%s:%ld", s->queue, row->line);
		agent_csv_check_row(row, row_error, &re);
		if (re.n == 0) {
			if (row->v[AGENT_CSV_LABEL] != NULL)
				job.label = row->v[AGENT_CSV_LABEL];
			if (row->v[AGENT_CSV_SUBJECT] != NULL)
				job.subject = row->v[AGENT_CSV_SUBJECT];
			if (row->v[AGENT_CSV_SAN] != NULL)
				job.san = row->v[AGENT_CSV_SAN];
			job.key_type = row->v[AGENT_CSV_KEY_TYPE];
			job.profile = row->v[AGENT_CSV_CERT_PROFILE];
			job.replace = agent_csv_replace(row);
			job.token_label = row->v[AGENT_CSV_TOKEN_LABEL];
			if (job.subject == NULL)
				snprintf(re.msg, sizeof(re.msg),
					 "subject: empty, and the enrollment has none");
			else
				break;
		}
		/* a bad row: failed, the card untouched, the next row */
		snprintf(why, sizeof(why), "%s: %s: correct the row (it is marked failed)", source,
			 re.msg);
		say_outcome(s, "FAILED", "row %s: %s", source, re.msg);
		log_msg(LOG_ERR, "%s", why);
		journal(s, ev, source, row->v[AGENT_CSV_LABEL], row->v[AGENT_CSV_SUBJECT], NULL,
			"failed", why);
		s->failed++;
		if (station_queue_mark(s, ri, AGENT_ROW_FAILED, NULL) < 0)
			return -1;
	}
	if (!ev->initialized) {
		if (blank_card(s, ev, source, &job, &card_pin) != 0)
			return ev->initialized ? 0 : 1;
		if (card_pin != NULL)
			s->pin = card_pin;
	}
	if ((r = malloc(sizeof(*r))) == NULL) {
		log_msg(LOG_ERR, "out of memory");
		s->pin = station_pin;
		secret_free(card_pin);
		return -1;
	}
	/* The station stopped while this card had the row, or the card was
	 * pulled out in the middle: the card says whether that run got its
	 * certificate (recovery finishes or undoes what it left), so that the
	 * row is never enrolled twice. */
	pulled = pulled_mark(s, &ev->info, 0);
	if (resumed == 2) {
		say("card %s: the CA answered waiting for it: asking again", station_card_name(ev));
		job.resume = 1;
	} else if (resumed || pulled) {
		say(pulled ? "card %s: it was pulled out while being enrolled: recovering it"
			   : "card %s: the station stopped while enrolling it: looking at the card",
		    station_card_name(ev));
		job.look = 1;
		rc = station_run_child(s, ev, &job, r);
		job.look = 0;
		if (rc == EXIT_OK && r->cert == 1) {
			say_outcome(s, "OK", "card %s: %s: certificate %s (%s), %.2f s",
				    station_card_name(ev), job.subject, r->cert_serial,
				    pulled ? "recovered: stored before it was pulled out"
					   : "from before the station stopped",
				    station_now() - t0);
			s->ok++;
			remember(s, &ev->info);
			journal(s, ev, source, job.label, job.subject, r, "ok", NULL);
			rc = row == NULL ? 0 : station_queue_mark(s, ri, AGENT_ROW_DONE, r->cert_serial);
			free(r);
			return rc;
		}
		if (pulled && rc == EXIT_OK)
			say("card %s: recovered: no certificate reached it before it was pulled "
			    "out, anything left half-done is removed",
			    station_card_name(ev));
	}
	/* A request for this card and label is saved (the CA answered
	 * waiting, or a run ended before it was over): it is finished, never
	 * requested anew. */
	if (!job.resume && saved_request(s, ev, job.label)) {
		say("card %s: a request for it is saved: asking the CA for it", station_card_name(ev));
		job.resume = 1;
	}
	station_card_hex(&ev->info, mine, sizeof(mine));
	/* taken for this card: a restart after a crash gives the row to it
	 * alone */
	if (row != NULL && station_queue_mark(s, ri, AGENT_ROW_TAKEN, mine) < 0) {
		free(r);
		s->pin = station_pin;
		secret_free(card_pin);
		return -1;
	}
	if (!job.resume)
		say("card %s: enrolling %s", station_card_name(ev), job.subject);
	rc = station_run_child(s, ev, &job, r);
	/* A saved request the CA no longer knows (it ended the transaction,
	 * resume removed the new pair and the saved state): requested anew,
	 * once. */
	if (job.resume && rc != EXIT_OK && rc != EXIT_WAITING && rc >= 0 &&
	    !saved_request(s, ev, job.label)) {
		say("card %s: the saved request could not be finished (exit %d): enrolling %s anew",
		    station_card_name(ev), rc, job.subject);
		job.resume = 0;
		rc = station_run_child(s, ev, &job, r);
	}
	s->pin = station_pin;
	secret_free(card_pin);
	if (rc == EXIT_WAITING && row != NULL) {
		say_outcome(s, "WAITING", "card %s: %s: the CA answered waiting and the request is "
					  "saved: insert the card again later to fetch the "
					  "certificate, %.2f s",
			    station_card_name(ev), job.subject, station_now() - t0);
		s->waiting_n++;
	} else if (rc == EXIT_OK) {
		say_outcome(s, "OK", "card %s: %s: certificate %s, %.2f s", station_card_name(ev),
			    job.subject, r->cert_serial, station_now() - t0);
		s->ok++;
		remember(s, &ev->info);
	} else {
		say_outcome(s, "FAILED", "card %s: %s: %s (exit %d), %.2f s", station_card_name(ev),
			    job.subject, r->error[0] != '\0' ? r->error : "no reason given", rc,
			    station_now() - t0);
		s->failed++;
	}
	/* Pulled out in the middle (the token went away under the child): the
	 * row stays the card's, as after a station crash, and the card is
	 * recovered when it is back. */
	pulled = rc != EXIT_OK && rc != EXIT_WAITING && ev->info.serial[0] != '\0' &&
		 (rc == EXIT_ABSENT || r->token == 0 || card_out(s, ev));
	if (pulled) {
		pulled_mark(s, &ev->info, 1);
		say("card %s was pulled out while being enrolled: insert it again to finish or "
		    "undo what was left%s",
		    station_card_name(ev), row != NULL ? " (its row is kept for it)" : "");
	}
	journal(s, ev, source, job.label, job.subject, r,
		rc < 0 ? "failed" : agent_journal_outcome(rc), rc == EXIT_OK ? NULL : r->error);
	rc = row == NULL ? 0
	     : station_queue_mark(s, ri,
			  rc == EXIT_OK	       ? AGENT_ROW_DONE
			  : rc == EXIT_WAITING ? AGENT_ROW_WAITING
			  : pulled	       ? AGENT_ROW_TAKEN
					       : AGENT_ROW_FAILED,
			  rc == EXIT_OK			    ? r->cert_serial
			  : rc == EXIT_WAITING || pulled ? mine
							 : NULL);
	free(r);
	return rc;
}

/* The next card event: one kept while a card was handled, else the
 * watcher's.  TOK_WATCH_NONE when a stop was asked for. */
static void next_event(station *s, tok_watch_event *ev)
{
	tok_rv rv;

	if (s->nwaiting > 0) {
		*ev = s->waiting[0];
		memmove(s->waiting, s->waiting + 1, --s->nwaiting * sizeof(s->waiting[0]));
		return;
	}
	ev->kind = TOK_WATCH_NONE;
	while (!stop_requested) {
		if ((rv = tok_watch_next(s->w, WAIT_MS, ev)) != TOK_OK) {
			log_msg(LOG_WARNING, "looking for cards: %s", tok_watch_errmsg(s->w));
			/* the next call tries again, after a poll interval */
			(void)tok_watch_next(s->w, 1000, ev);
			ev->kind = TOK_WATCH_NONE;
			continue;
		}
		if (ev->kind != TOK_WATCH_NONE)
			return;
	}
}


static agent_rc setup(station *s)
{
	struct sigaction sa;
	char err[1024];
	ssize_t len;
	int poll_ms = s->e->station_poll > 0 ? s->e->station_poll : 500;
	agent_rc rc;
	tok_rv rv;

	if ((len = readlink("/proc/self/exe", s->self, sizeof(s->self) - 1)) <= 0) {
		log_msg(LOG_ERR, "cannot find this program (/proc/self/exe)");
		return EXIT_INTERNAL;
	}
	s->self[len] = '\0';
	if (s->queue == NULL && (s->prompt || isatty(STDIN_FILENO)))
		s->prompt = 1;
	if (s->queue == NULL && !s->prompt && s->e->subject == NULL) {
		log_msg(LOG_ERR, "station: no queue and no subject: set queue = FILE.csv (or "
				 "--queue FILE.csv) or the enrollment's subject, or type each card's "
				 "subject (--prompt, or a terminal on standard input)");
		return EXIT_USAGE;
	}
	if (s->queue != NULL && (rc = station_queue_open(s)) != EXIT_OK)
		return rc;
	/* Read once: an fd: source gives its PIN once, and a PIN that cannot
	 * be read stops the station before any card is touched. */
	if (s->e->pin_source != NULL && strcmp(s->e->pin_source, "protected") != 0 &&
	    secret_read(s->e->pin_source, "PIN", &s->pin, err, sizeof(err)) < 0) {
		log_msg(LOG_ERR, "%s", err);
		return EXIT_PIN;
	}
	if ((rc = station_init_check(s->e, s->tty, &s->so_pin)) != EXIT_OK)
		return rc;
	if ((s->done = calloc(DONE_MAX, sizeof(s->done[0]))) == NULL ||
	    (s->pulled = calloc(DONE_MAX, sizeof(s->pulled[0]))) == NULL) {
		log_msg(LOG_ERR, "out of memory");
		return EXIT_INTERNAL;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	/* no SA_RESTART: the watcher's wait returns */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* blank cards too: initialised (init_token) or said to be skipped */
	if ((rv = tok_watch_new(s->e->module, s->e->token, poll_ms, TOK_WATCH_BLANK, &s->w)) !=
	    TOK_OK) {
		log_msg(LOG_ERR, "station: cannot watch for cards: %s", tok_watch_errmsg(s->w));
		return EXIT_TOKEN;
	}
	return EXIT_OK;
}

agent_rc agent_station(const conf_enrollment *e, const agent_cmd_opts *o)
{
	station s;
	tok_watch_event ev;
	agent_rc rc;
	int hc;

	memset(&s, 0, sizeof(s));
	s.e = e;
	s.config = o->config;
	s.o = o;
	s.queue = e->queue;
	s.tty = isatty(STDOUT_FILENO);
	s.prompt = o->prompt;
	if ((rc = setup(&s)) != EXIT_OK)
		goto out;
	say("station %s: waiting for a card%s%s%s", e->name != NULL ? e->name : "",
	    s.queue != NULL ? " (queue " : "", s.queue != NULL ? s.queue : "",
	    s.queue != NULL ? ")" : "");
	for (;;) {
		next_event(&s, &ev);
		if (stop_requested)
			break;
		if (ev.kind != TOK_WATCH_APPEARED)
			continue;
		if ((hc = handle_card(&s, &ev)) < 0) {
			rc = EXIT_INTERNAL;
			break;
		}
		/* a blank card left blank: nothing to remove */
		if (hc > 0)
			continue;
		wait_removed(&s, &ev);
		if (stop_requested)
			break;
		say("waiting for a card");
	}
	if (s.waiting_n > 0)
		say("station: %d enrolled, %d failed, %d skipped, %d waiting", s.ok, s.failed,
		    s.skipped, s.waiting_n);
	else
		say("station: %d enrolled, %d failed, %d skipped", s.ok, s.failed, s.skipped);
out:
	tok_watch_free(s.w);
	agent_rowstate_close(s.rs);
	agent_csv_free(&s.csv);
	free(s.used);
	free(s.done);
	free(s.pulled);
	secret_free(s.pin);
	secret_free(s.so_pin);
	return rc;
}
