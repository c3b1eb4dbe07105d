/*
 * p11enroll enroll NAME --batch FILE: every row of a CSV file enrolled on
 * the enrollment's token in one process.  The module is loaded, the token
 * logged in to and its session opened once, and one CMP context (one
 * libcurl handle: the connection to the CA stays open) serves every row;
 * a row is the enrollment's settings with the row's columns in their
 * place, and nothing of it outlives its request.
 *
 * The file (RFC 4180): a header naming the columns, then one row per
 * enrollment.  Columns are settings of p11enroll.conf(5): label (required:
 * each row its own), subject, san, key_type, cert_profile (also
 * "profile").  Every row is checked before the token is touched.  A row
 * that fails does not stop the others.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "agent/agent-cmd.h"

#define BATCH_FILE_MAX (16L << 20)
#define BATCH_COLS 8

static const char *const columns[] = {"label", "subject", "san", "key_type", "cert_profile"};
#define NCOLUMNS (sizeof(columns) / sizeof(columns[0]))

typedef struct {
	long line;
	char *v[NCOLUMNS]; /* NULL: not given */
	unsigned known;	   /* AGENT_REQ_*: from the listing at the start */
} batch_row;

typedef struct {
	const char *path;
	int col[BATCH_COLS]; /* the file's column i is columns[col[i]] */
	size_t ncols;
	batch_row *rows;
	size_t n, cap;
	int errors;
} batch;

static void row_error(batch *b, long line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void row_error(batch *b, long line, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (b->errors++ < 50)
		log_msg(LOG_ERR, "%s:%ld: %s", b->path, line, msg);
}

/*
 * The next field of a record at *p: quoted ("..." with "" for a quote,
 * line breaks allowed) or bare; at the end of the text, an empty last
 * field (after a final comma).  *ret_end: the record ended after it.
 * NULL when out of memory; (char *)-1 for a quote that never closes.
 */
static char *next_field(const char **p, const char *end, long *line, int *ret_end)
{
	const char *s = *p;
	char *out, *o;

	if ((out = malloc((size_t)(end - s) + 1)) == NULL)
		return NULL;
	o = out;
	if (*s == '"') {
		for (s++;; s++) {
			if (s >= end) {
				free(out);
				return (char *)-1;
			}
			if (*s == '"') {
				if (s + 1 < end && s[1] == '"') {
					*o++ = '"';
					s++;
					continue;
				}
				s++;
				break;
			}
			if (*s == '\n')
				(*line)++;
			*o++ = *s;
		}
	} else {
		while (s < end && *s != ',' && *s != '\n' && *s != '\r')
			*o++ = *s++;
	}
	*o = '\0';
	if (s < end && *s == '\r')
		s++;
	*ret_end = s >= end || *s == '\n';
	if (s < end)
		s++; /* the comma or the newline */
	*p = s;
	return out;
}

static int column_of(const char *name)
{
	size_t i;

	if (strcmp(name, "profile") == 0)
		name = "cert_profile";
	for (i = 0; i < NCOLUMNS; i++)
		if (strcmp(name, columns[i]) == 0)
			return (int)i;
	return -1;
}

static void row_clear(batch_row *r)
{
	size_t i;

	for (i = 0; i < NCOLUMNS; i++)
		free(r->v[i]);
	memset(r, 0, sizeof(*r));
}

static void batch_free(batch *b)
{
	size_t i;

	for (i = 0; i < b->n; i++)
		row_clear(&b->rows[i]);
	free(b->rows);
	b->rows = NULL;
	b->n = b->cap = 0;
}

static int header(batch *b, const char **p, const char *end, long *line)
{
	int seen[NCOLUMNS] = {0}, last = 0, c;
	char *f;

	while (!last) {
		f = next_field(p, end, line, &last);
		if (f == NULL || f == (char *)-1) {
			row_error(b, *line, f == NULL ? "out of memory" : "a quoted field never closes");
			return -1;
		}
		if (b->ncols == BATCH_COLS) {
			row_error(b, *line, "more than %d columns", BATCH_COLS);
			free(f);
			return -1;
		}
		if ((c = column_of(f)) < 0 || seen[c]) {
			row_error(b, *line, "column '%.64s' %s: the columns are label, subject, "
					    "san, key_type, cert_profile (or profile), each once",
				  f, c < 0 ? "is not known" : "stands twice");
			free(f);
			return -1;
		}
		seen[c] = 1;
		b->col[b->ncols++] = c;
		free(f);
	}
	(*line)++;
	if (!seen[0]) {
		row_error(b, 1, "no label column: each row needs its own label, the key and its "
				"certificate are found by it");
		return -1;
	}
	return 0;
}

/* One row's values, each checked as its setting is in the file. */
static void check_row(batch *b, batch_row *r)
{
	char why[512];
	size_t i;
	int dummy;

	for (i = 0; i < NCOLUMNS; i++) {
		const setting *s = conf_setting(columns[i]);

		if (r->v[i] == NULL)
			continue;
		if (s != NULL && conf_check_value(s, r->v[i], 0, &dummy, why, sizeof(why)) < 0)
			row_error(b, r->line, "%s: %s", columns[i], why);
	}
	if (r->v[0] == NULL || r->v[0][0] == '\0')
		row_error(b, r->line, "label: empty; each row needs its own label");
}

/* By label, then by line (rows without a label first). */
static int by_label(const void *a, const void *b)
{
	const batch_row *x = *(const batch_row *const *)a, *y = *(const batch_row *const *)b;
	int c = strcmp(x->v[0] != NULL ? x->v[0] : "", y->v[0] != NULL ? y->v[0] : "");

	return c != 0 ? c : (x->line > y->line) - (x->line < y->line);
}

/* A label given twice: each later row is named with the first one's line.
 * Sorted, not row against row: a file may hold hundreds of thousands. */
static void check_duplicates(batch *b)
{
	const batch_row **sorted;
	size_t i, first = 0;

	if (b->n < 2)
		return;
	if ((sorted = malloc(b->n * sizeof(*sorted))) == NULL) {
		row_error(b, 1, "out of memory");
		return;
	}
	for (i = 0; i < b->n; i++)
		sorted[i] = &b->rows[i];
	qsort(sorted, b->n, sizeof(*sorted), by_label);
	for (i = 1; i < b->n; i++) {
		if (sorted[i]->v[0] == NULL || sorted[first]->v[0] == NULL ||
		    strcmp(sorted[i]->v[0], sorted[first]->v[0]) != 0) {
			first = i;
			continue;
		}
		row_error(b, sorted[i]->line, "label '%.64s' is the label of the row on line %ld "
					      "too: each row needs its own",
			  sorted[i]->v[0], sorted[first]->line);
	}
	free(sorted);
}

static int parse(batch *b, const char *text, size_t len)
{
	const char *p = text, *end = text + len;
	long line = 1;
	size_t k;
	int last;

	if (header(b, &p, end, &line) < 0)
		return -1;
	while (p < end) {
		batch_row r;
		char *f;

		if (*p == '\n' || (*p == '\r' && p + 1 < end && p[1] == '\n')) {
			p += *p == '\r' ? 2 : 1; /* an empty line */
			line++;
			continue;
		}
		memset(&r, 0, sizeof(r));
		r.line = line;
		for (k = 0, last = 0; !last; k++) {
			f = next_field(&p, end, &line, &last);
			if (f == (char *)-1) {
				row_error(b, r.line, "a quoted field never closes");
				row_clear(&r);
				return -1;
			}
			if (f == NULL) {
				row_clear(&r);
				row_error(b, line, "out of memory");
				return -1;
			}
			if (k >= b->ncols) {
				free(f);
				continue;
			}
			if (f[0] == '\0')
				free(f); /* empty: the enrollment's own setting */
			else
				r.v[b->col[k]] = f;
		}
		line++;
		if (k != b->ncols) {
			row_error(b, r.line, "%zu fields where the header has %zu", k, b->ncols);
			row_clear(&r);
			continue;
		}
		if (b->n == b->cap) {
			size_t cap = b->cap ? 2 * b->cap : 64;
			batch_row *rows = realloc(b->rows, cap * sizeof(*rows));

			if (rows == NULL) {
				row_clear(&r);
				row_error(b, r.line, "out of memory");
				return -1;
			}
			b->rows = rows;
			b->cap = cap;
		}
		b->rows[b->n++] = r;
		check_row(b, &b->rows[b->n - 1]);
	}
	check_duplicates(b);
	if (b->n == 0)
		row_error(b, line, "no rows after the header: nothing to enroll");
	return b->errors > 0 ? -1 : 0;
}

static int load(batch *b)
{
	FILE *f = fopen(b->path, "rb");
	char *text = NULL;
	size_t len = 0;
	long size;
	int rc = -1;

	if (f == NULL) {
		log_msg(LOG_ERR, "cannot open the batch file %s: %s", b->path, strerror(errno));
		return -1;
	}
	if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0 ||
	    size > BATCH_FILE_MAX) {
		log_msg(LOG_ERR, "the batch file %s is not a regular file of at most %ld bytes",
			b->path, BATCH_FILE_MAX);
		goto out;
	}
	if ((text = malloc((size_t)size + 1)) == NULL ||
	    (len = fread(text, 1, (size_t)size, f)) != (size_t)size) {
		log_msg(LOG_ERR, "cannot read the batch file %s", b->path);
		goto out;
	}
	text[len] = '\0';
	if (memchr(text, '\0', len) != NULL) {
		log_msg(LOG_ERR, "the batch file %s holds a NUL byte: it is not CSV text", b->path);
		goto out;
	}
	rc = parse(b, text, len);
	if (rc < 0 && b->errors > 50)
		log_msg(LOG_ERR, "%s: %d errors in all", b->path, b->errors);
out:
	free(text);
	fclose(f);
	return rc;
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
	for (i = 0; i < b->n; i++) {
		const char *label = b->rows[i].v[0];

		/* revoke_replaced: a pair waiting under "(to revoke)" is one
		 * more thing a row finishes before its request */
		if (!agent_listing_leftovers(&l, label) &&
		    (e->revoke_replaced != 1 || !waits(&l, label)))
			b->rows[i].known |= AGENT_REQ_NO_LEFTOVERS;
		if (!agent_listing_has(&l, label))
			b->rows[i].known |= AGENT_REQ_LABEL_FREE;
	}
	agent_listing_free(&l);
}

/* The enrollment of one row: e's settings, the row's columns in their
 * place.  Nameless: its state (a pending request) is not e's. */
static void row_enrollment(const conf_enrollment *e, const batch_row *r, conf_enrollment *out)
{
	*out = *e;
	out->name = NULL;
	out->label = r->v[0];
	if (r->v[1] != NULL)
		out->subject = r->v[1];
	if (r->v[2] != NULL)
		out->san = r->v[2];
	if (r->v[3] != NULL)
		out->key_type = r->v[3];
	if (r->v[4] != NULL)
		out->cert_profile = r->v[4];
}

agent_rc agent_enroll_batch(const conf_enrollment *e, const char *path)
{
	batch b = {0};
	tok_ctx *tok = NULL;
	cmpc_ctx *cmp = NULL;
	size_t i, ok = 0;
	agent_rc rc, first = EXIT_OK;

	b.path = path;
	if (load(&b) < 0) {
		batch_free(&b);
		return EXIT_USAGE;
	}
	/* Once for every row: module, login, session, CMP context. */
	if ((cmp = agent_cmpc_new()) == NULL) {
		batch_free(&b);
		return EXIT_INTERNAL;
	}
	if ((rc = agent_token_open(e, &tok, 1)) != EXIT_OK) {
		cmpc_free(cmp);
		batch_free(&b);
		return rc;
	}
	look_ahead(e, &b, tok);
	for (i = 0; i < b.n; i++) {
		conf_enrollment row;

		row_enrollment(e, &b.rows[i], &row);
		rc = agent_request_shared(&row, CMPC_REQ_IR, tok, cmp, b.rows[i].known);
		if (rc == EXIT_OK) {
			ok++;
		} else {
			log_msg(LOG_ERR, "%s:%ld: row '%s' not enrolled (exit %d)", path,
				b.rows[i].line, b.rows[i].v[0], (int)rc);
			if (first == EXIT_OK)
				first = rc;
		}
		/* nothing of the row stays: its strings go with it */
		row_clear(&b.rows[i]);
	}
	printf("batch %s: %zu row%s, %zu enrolled, %zu failed\n", path, b.n, b.n == 1 ? "" : "s",
	       ok, b.n - ok);
	/* the signer keys the CMP context may hold go before the module */
	cmpc_free(cmp);
	tok_free(tok);
	batch_free(&b);
	return first;
}
