/*
 * p11enroll enroll NAME --batch FILE: every row of a CSV file enrolled on
 * the enrollment's token in one process.  The module is loaded, the token
 * logged in to and its session opened once, and one CMP context (one
 * libcurl handle: the connection to the CA stays open) serves every row;
 * a row is the enrollment's settings with the row's columns in their
 * place, and nothing of it outlives its request.
 *
 * The file (agent/csv.c): a header naming the columns, then one row per
 * enrollment.  Columns are settings of p11enroll.conf(5): label (required:
 * each row its own), subject, san, key_type, cert_profile (also
 * "profile"), and token_serial (the row is refused on another token).
 * Every row is checked before the token is touched.  A row that fails
 * does not stop the others.
 *
 * Each row is used once (agent/rowstate.c): marked taken before its
 * request and done (or failed, waiting) after it, in FILE.state.  A rerun
 * skips the rows done; one that a crash left taken is decided on the
 * token: recovery finishes or undoes the interrupted pair, and a
 * certificate under the row's label that was not there when the row was
 * taken makes it done; otherwise it is requested again.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/x509.h>

#include "agent/agent-cmd.h"
#include "agent/csv.h"
#include "agent/journal.h"
#include "agent/rowstate.h"

/* errors printed; the rest counted */
#define ERRORS_SHOWN 50

typedef struct {
	const char *path;
	agent_csv csv;
	unsigned *known; /* per row, AGENT_REQ_*: from the listing at the start */
	int errors;
} batch;

static void report(void *arg, long line, const char *msg)
{
	batch *b = arg;

	if (b->errors++ >= ERRORS_SHOWN)
		return;
	if (line > 0)
		log_msg(LOG_ERR, "%s:%ld: %s", b->path, line, msg);
	else
		log_msg(LOG_ERR, "the batch file %s: %s", b->path, msg);
}

static void row_error(batch *b, long line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void row_error(batch *b, long line, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	report(b, line, msg);
}

static const char *label_of(const agent_csv_row *r)
{
	return r->v[AGENT_CSV_LABEL] != NULL ? r->v[AGENT_CSV_LABEL] : "";
}

/* By label, then by line. */
static int by_label(const void *a, const void *b)
{
	const agent_csv_row *x = *(const agent_csv_row *const *)a;
	const agent_csv_row *y = *(const agent_csv_row *const *)b;
	int c = strcmp(label_of(x), label_of(y));

	return c != 0 ? c : (x->line > y->line) - (x->line < y->line);
}

/* A label given twice: each later row is named with the first one's line.
 * Sorted, not row against row: a file may hold hundreds of thousands. */
static void check_duplicates(batch *b)
{
	const agent_csv_row **sorted;
	size_t i, first = 0, n = b->csv.n;

	if (n < 2)
		return;
	if ((sorted = malloc(n * sizeof(*sorted))) == NULL) {
		row_error(b, 1, "out of memory");
		return;
	}
	for (i = 0; i < n; i++)
		sorted[i] = &b->csv.rows[i];
	qsort(sorted, n, sizeof(*sorted), by_label);
	for (i = 1; i < n; i++) {
		if (*label_of(sorted[i]) == '\0' ||
		    strcmp(label_of(sorted[i]), label_of(sorted[first])) != 0) {
			first = i;
			continue;
		}
		row_error(b, sorted[i]->line, "label '%.64s' is the label of the row on line %ld "
					      "too: each row needs its own",
			  label_of(sorted[i]), sorted[first]->line);
	}
	free(sorted);
}

static int load(batch *b)
{
	size_t i;

	if (agent_csv_load(b->path, &b->csv, report, b) < 0 && b->csv.n == 0 && b->errors == 0)
		row_error(b, 0, "cannot be read");
	if (b->errors == 0 && !b->csv.has[AGENT_CSV_LABEL])
		row_error(b, 1, "no label column: each row needs its own label, the key and its "
				"certificate are found by it");
	if (b->errors > 0)
		goto out;
	for (i = 0; i < b->csv.n; i++) {
		const agent_csv_row *r = &b->csv.rows[i];

		agent_csv_check_row(r, report, b);
		if (r->v[AGENT_CSV_LABEL] == NULL)
			row_error(b, r->line, "label: empty; each row needs its own label");
	}
	check_duplicates(b);
	if (b->csv.n == 0 && b->errors == 0)
		row_error(b, 2, "no rows after the header: nothing to enroll");
	if (b->errors == 0 && (b->known = calloc(b->csv.n, sizeof(*b->known))) == NULL)
		row_error(b, 0, "out of memory");
out:
	if (b->errors > ERRORS_SHOWN)
		log_msg(LOG_ERR, "%s: %d errors in all", b->path, b->errors);
	return b->errors > 0 ? -1 : 0;
}

/* Whether a replaced pair waits for its revocation under label's mark. */
static int waits(const agent_listing *l, const char *label)
{
	char *s = agent_label_with(label, AGENT_MARK_TO_REVOKE);
	int r = s == NULL || agent_listing_has(l, s);

	free(s);
	return r;
}

/*
 * One listing of the token for the whole batch (a search costs as much as
 * the token holds on SoftHSM2, and each row would make four): a row whose
 * label no object carries needs no pair replaced, one whose marks no object
 * carries needs no recovery.  The rows' labels are the batch's own (each
 * once in the file, the enrollment locked): nothing else makes them while
 * it runs.  A listing that fails only costs the searches.
 */
static void look_ahead(const conf_enrollment *e, batch *b, tok_ctx *tok)
{
	agent_listing l;
	size_t i;

	if (agent_listing_take(tok, &l) != TOK_OK) {
		log_msg(LOG_INFO, "cannot list the token's objects: each row searches for its own");
		return;
	}
	for (i = 0; i < b->csv.n; i++) {
		const char *label = label_of(&b->csv.rows[i]);

		/* revoke_replaced: a pair waiting under "(to revoke)" is one
		 * more thing a row finishes before its request */
		if (!agent_listing_leftovers(&l, label) &&
		    (e->revoke_replaced != 1 || !waits(&l, label)))
			b->known[i] |= AGENT_REQ_NO_LEFTOVERS;
		if (!agent_listing_has(&l, label))
			b->known[i] |= AGENT_REQ_LABEL_FREE;
	}
	agent_listing_free(&l);
}

/* The enrollment of one row: e's settings, the row's columns in their
 * place.  Nameless: its state (a pending request) is not e's. */
static void row_enrollment(const conf_enrollment *e, const agent_csv_row *r,
			   conf_enrollment *out)
{
	*out = *e;
	out->name = NULL;
	out->label = r->v[AGENT_CSV_LABEL];
	if (r->v[AGENT_CSV_SUBJECT] != NULL)
		out->subject = r->v[AGENT_CSV_SUBJECT];
	if (r->v[AGENT_CSV_SAN] != NULL)
		out->san = r->v[AGENT_CSV_SAN];
	if (r->v[AGENT_CSV_KEY_TYPE] != NULL)
		out->key_type = r->v[AGENT_CSV_KEY_TYPE];
	if (r->v[AGENT_CSV_CERT_PROFILE] != NULL)
		out->cert_profile = r->v[AGENT_CSV_CERT_PROFILE];
	if (r->v[AGENT_CSV_REPLACE] != NULL)
		out->replace = agent_csv_replace(r);
}

/* The certificate under label (*ret_cert, NULL none) and its serial in hex
 * ("" none): 0, or -1 when the token could not be searched (logged). */
static int label_cert(tok_ctx *tok, const char *label, X509 **ret_cert, char *serial,
		      size_t len)
{
	X509 *cert = NULL;
	BIGNUM *bn;
	char *hex;
	tok_id id;
	tok_rv rv;

	*ret_cert = NULL;
	serial[0] = '\0';
	if ((rv = tok_find_cert(tok, label, NULL, &id, &cert)) == TOK_ERR_NOT_FOUND)
		return 0;
	if (rv != TOK_OK) {
		agent_token_fail(tok, rv, "searching the token for the row's certificate failed");
		return -1;
	}
	bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
	hex = bn != NULL ? BN_bn2hex(bn) : NULL;
	snprintf(serial, len, "%s", hex != NULL ? hex : "");
	OPENSSL_free(hex);
	BN_free(bn);
	*ret_cert = cert;
	return 0;
}

/* The certificate is for the row's subject (or the enrollment's). */
static int same_subject(X509 *cert, const conf_enrollment *row)
{
	X509_NAME *want;
	char err[256];
	int same;

	if (row->subject == NULL)
		return 1; /* nothing to compare with: the label is the row's own */
	if ((want = conf_parse_subject(row->subject, err, sizeof(err))) == NULL)
		return 0;
	same = X509_NAME_cmp(want, X509_get_subject_name(cert)) == 0;
	X509_NAME_free(want);
	return same;
}

/*
 * A row a crashed run left taken: recovery first finishes or undoes what
 * that run left under the label's marks; then a certificate for the row's
 * subject under its label that is not the one the label held when the row
 * was taken was that run's.  1: done (serial in serial), 0: request it
 * again, -1: the token could not be searched.
 */
static int decide_taken(const conf_enrollment *row, tok_ctx *tok, const agent_row_mark *m,
			char *serial, size_t len, long long *ret_not_after)
{
	struct tm tm;
	X509 *cert = NULL;
	int done;

	log_msg(LOG_NOTICE, "row '%s' was taken by a run that did not finish it: looking at the "
			    "token",
		row->label);
	if (agent_recover(row, tok) != EXIT_OK)
		return -1;
	if (label_cert(tok, row->label, &cert, serial, len) < 0)
		return -1;
	done = cert != NULL && strcmp(serial, m->serial) != 0 && same_subject(cert, row);
	*ret_not_after = 0;
	if (done && ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm))
		*ret_not_after = (long long)timegm(&tm);
	X509_free(cert);
	return done;
}

/* A journal line of the batch's own: a row refused before its request,
 * or one that an interrupted run finished. */
static void journal_row(const conf_enrollment *row, const char *source, const char *token_serial,
			const char *outcome, const char *serial, long long not_after,
			const char *error)
{
	agent_journal_entry j;
	char err[1200];

	if (row->journal == NULL)
		return;
	memset(&j, 0, sizeof(j));
	j.time = (long long)time(NULL);
	j.outcome = outcome;
	snprintf(j.source, sizeof(j.source), "%s", source);
	snprintf(j.token_serial, sizeof(j.token_serial), "%s", token_serial);
	snprintf(j.label, sizeof(j.label), "%s", row->label);
	snprintf(j.subject, sizeof(j.subject), "%s", row->subject != NULL ? row->subject : "");
	snprintf(j.cert_serial, sizeof(j.cert_serial), "%s", serial);
	j.not_after = not_after;
	snprintf(j.error, sizeof(j.error), "%s", error);
	if (agent_journal_append(row->journal, &j, err, sizeof(err)) < 0)
		log_msg(LOG_WARNING, "%s", err);
}

typedef struct {
	size_t enrolled, failed, skipped;
	agent_rc first; /* the first failure's exit code */
} tally;

static void failed(tally *t, agent_rc rc)
{
	t->failed++;
	if (t->first == EXIT_OK)
		t->first = rc;
}

/* One row that is not done: -1 when the run must stop (its state cannot
 * be recorded, or the token cannot be searched). */
static int one_row(batch *b, size_t i, const conf_enrollment *e, tok_ctx *tok, cmpc_ctx *cmp,
		   const char *token_serial, agent_rowstate *rs, tally *t)
{
	const agent_csv_row *r = &b->csv.rows[i];
	unsigned char id[AGENT_ROW_ID_LEN];
	const agent_row_mark *m;
	const agent_journal_entry *j;
	conf_enrollment row;
	char source[320], serial[129], err[1200];
	X509 *cert = NULL;
	agent_row_state st;
	long long not_after;
	agent_rc rc;
	int d;

	row_enrollment(e, r, &row);
	snprintf(source, sizeof(source), "%s:%ld", b->path, r->line);
	agent_rowstate_row_id(r, id);
	m = agent_rowstate_get(rs, id);
	if (r->v[AGENT_CSV_TOKEN_SERIAL] != NULL &&
	    strcmp(r->v[AGENT_CSV_TOKEN_SERIAL], token_serial) != 0) {
		snprintf(err, sizeof(err), "the row is for the token with serial '%.32s', this one's "
					   "is '%s': run it on that token",
			 r->v[AGENT_CSV_TOKEN_SERIAL], token_serial);
		log_msg(LOG_ERR, "%s: row '%s' refused: %s", source, row.label, err);
		journal_row(&row, source, token_serial, "refused", "", 0, err);
		failed(t, EXIT_TOKEN);
		return 0;
	}
	if (m != NULL && m->st == AGENT_ROW_TAKEN) {
		b->known[i] = 0; /* recovery changes what the listing saw */
		if ((d = decide_taken(&row, tok, m, serial, sizeof(serial), &not_after)) < 0)
			return -1;
		if (d == 1) {
			if (log_verbosity() >= 0)
				printf("row '%s' (%s): enrolled by the interrupted run, "
				       "certificate %s\n",
				       row.label, source, serial);
			journal_row(&row, source, token_serial, "ok", serial, not_after, "");
			t->enrolled++;
			if (agent_rowstate_mark(rs, id, AGENT_ROW_DONE, serial, err, sizeof(err)) < 0) {
				log_msg(LOG_ERR, "%s: row '%s': %s", source, row.label, err);
				return -1;
			}
			return 0;
		}
		log_msg(LOG_NOTICE, "row '%s' has no certificate from that run: requesting it again",
			row.label);
	}
	/* taken, with the serial the label holds now: that run's certificate
	 * is the one that differs */
	serial[0] = '\0';
	if (!(b->known[i] & AGENT_REQ_LABEL_FREE)) {
		if (label_cert(tok, row.label, &cert, serial, sizeof(serial)) < 0)
			return -1;
		X509_free(cert);
	}
	if (agent_rowstate_mark(rs, id, AGENT_ROW_TAKEN, serial, err, sizeof(err)) < 0) {
		log_msg(LOG_ERR, "%s: row '%s' not started: %s", source, row.label, err);
		return -1;
	}
	agent_journal_begin(source);
	rc = agent_request_shared(&row, CMPC_REQ_IR, tok, cmp, b->known[i]);
	j = agent_journal_last();
	agent_journal_begin(NULL);
	if (rc == EXIT_OK) {
		t->enrolled++;
		st = AGENT_ROW_DONE;
	} else {
		log_msg(LOG_ERR, "%s: row '%s' not enrolled (exit %d)", source, row.label, (int)rc);
		failed(t, rc);
		st = rc == EXIT_WAITING ? AGENT_ROW_WAITING : AGENT_ROW_FAILED;
	}
	serial[0] = '\0';
	if (rc == EXIT_OK && j != NULL && j->cert_serial[0] != '\0') {
		snprintf(serial, sizeof(serial), "%s", j->cert_serial);
	} else if (rc == EXIT_OK) {
		/* recovery put a killed run's certificate in place: no request */
		if (label_cert(tok, row.label, &cert, serial, sizeof(serial)) == 0)
			X509_free(cert);
	}
	if (agent_rowstate_mark(rs, id, st, serial, err, sizeof(err)) < 0) {
		log_msg(LOG_ERR, "%s: row '%s': %s", source, row.label, err);
		return -1;
	}
	return 0;
}

agent_rc agent_enroll_batch(const conf_enrollment *e, const char *path)
{
	batch b;
	agent_rowstate *rs = NULL;
	tok_ctx *tok = NULL;
	cmpc_ctx *cmp = NULL;
	tok_info info;
	tally t = {0, 0, 0, EXIT_OK};
	char err[1200];
	size_t i, todo = 0;
	agent_rc rc = EXIT_OK;
	tok_rv trv;
	int r;

	memset(&b, 0, sizeof(b));
	b.path = path;
	if (load(&b) < 0) {
		rc = EXIT_USAGE;
		goto out;
	}
	if ((r = agent_rowstate_open(path, &rs, err, sizeof(err))) < 0) {
		log_msg(LOG_ERR, "%s", err);
		rc = r == -2 ? EXIT_BUSY : EXIT_USAGE;
		goto out;
	}
	for (i = 0; i < b.csv.n; i++) {
		unsigned char id[AGENT_ROW_ID_LEN];
		const agent_row_mark *m;

		agent_rowstate_row_id(&b.csv.rows[i], id);
		m = agent_rowstate_get(rs, id);
		if (m != NULL && m->st == AGENT_ROW_DONE)
			b.known[i] = ~0U; /* marks the row skipped below */
		else
			todo++;
	}
	t.skipped = b.csv.n - todo;
	if (todo == 0)
		goto summary;
	/* Once for every row: module, login, session, CMP context. */
	if ((cmp = agent_cmpc_new()) == NULL) {
		rc = EXIT_INTERNAL;
		goto out;
	}
	if ((rc = agent_token_open(e, &tok, 1)) != EXIT_OK)
		goto out;
	if ((trv = tok_get_info(tok, &info)) != TOK_OK) {
		rc = agent_token_fail(tok, trv, "cannot read the token's serial");
		goto out;
	}
	for (i = 0; i < b.csv.n; i++)
		if (b.known[i] != ~0U)
			b.known[i] = 0;
	look_ahead(e, &b, tok);
	for (i = 0; i < b.csv.n; i++) {
		if (b.known[i] == ~0U)
			continue;
		/* the interrupted row was undone; the rest wait for the next run */
		if (agent_interrupted() != 0) {
			log_msg(LOG_ERR, "interrupted (%s): the batch stops before line %ld",
				agent_signal_name(agent_interrupted()), b.csv.rows[i].line);
			t.first = EXIT_INTERRUPTED;
			break;
		}
		if (one_row(&b, i, e, tok, cmp, info.serial, rs, &t) < 0) {
			log_msg(LOG_ERR, "the batch stops at line %ld: the rows after it are left as "
					 "they are for the next run",
				b.csv.rows[i].line);
			if (t.first == EXIT_OK)
				t.first = EXIT_INTERNAL;
			break;
		}
		/* nothing of the row stays: its strings go with it */
		agent_csv_row_clear(&b.csv.rows[i]);
	}
summary:
	if (log_verbosity() >= 0)
		printf("batch %s: %zu row%s: %zu enrolled, %zu failed, %zu skipped (done "
		       "before)\n",
		       path, b.csv.n, b.csv.n == 1 ? "" : "s", t.enrolled, t.failed, t.skipped);
	rc = t.first;
out:
	/* the signer keys the CMP context may hold go before the module */
	cmpc_free(cmp);
	tok_free(tok);
	agent_rowstate_close(rs);
	agent_csv_free(&b.csv);
	free(b.known);
	return rc;
}
