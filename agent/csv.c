/*
 * The queue file's reader (agent/csv.h): RFC 4180 CSV.  Fields are bare
 * or quoted ("..." with "" for a quote; commas and line breaks inside),
 * records end in LF or CRLF, a UTF-8 byte order mark (as spreadsheets
 * write it) is skipped, empty lines are skipped.  A field is measured
 * before it is copied, so that each takes the memory it needs and a file
 * of many rows does not take the file's size per field.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "agent/csv.h"

static const char *const names[AGENT_CSV_NCOLS] = {
    "label", "subject", "san", "key_type", "cert_profile", "token_serial", "replace", "token_label",
};

const char *agent_csv_column(int col)
{
	return col >= 0 && col < AGENT_CSV_NCOLS ? names[col] : "?";
}

static void report(agent_csv *c, agent_csv_error_fn err, void *arg, long line, const char *fmt,
		   ...) __attribute__((format(printf, 5, 6)));

static void report(agent_csv *c, agent_csv_error_fn err, void *arg, long line, const char *fmt,
		   ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c != NULL)
		c->errors++;
	if (err != NULL)
		err(arg, line, msg);
}

/* What next_field found wrong. */
enum { F_OK, F_OOM, F_OPEN_QUOTE, F_AFTER_QUOTE, F_QUOTE_IN_BARE, F_LONE_CR };

static const char *field_error(int e)
{
	switch (e) {
	case F_OOM:
		return "out of memory";
	case F_OPEN_QUOTE:
		return "a quoted field never closes: close it with '\"' (a quote inside is "
		       "written twice)";
	case F_AFTER_QUOTE:
		return "text after a quoted field's closing quote: a quote inside a quoted field "
		       "is written twice";
	case F_QUOTE_IN_BARE:
		return "a quote inside an unquoted field: quote the whole field and write the "
		       "quote twice";
	case F_LONE_CR:
		return "a carriage return that does not end a line (CR LF)";
	}
	return "?";
}

/*
 * The next field of a record at *p (end: the end of the text), malloc'ed
 * in *ret: 0 with *ret_last set when the record ends after it, or F_*.
 * *line counts the line breaks inside a quoted field.
 */
static int next_field(const char **p, const char *end, long *line, char **ret, int *ret_last)
{
	const char *s = *p, *q;
	size_t n = 0;
	long breaks = 0;
	char *out, *o;

	*ret = NULL;
	if (s < end && *s == '"') {
		/* measure: up to the closing quote */
		for (q = s + 1;; q++) {
			if (q >= end)
				return F_OPEN_QUOTE;
			if (*q == '"') {
				if (q + 1 < end && q[1] == '"') {
					q++;
					n++;
					continue;
				}
				break;
			}
			if (*q == '\n')
				breaks++;
			n++;
		}
		if ((out = malloc(n + 1)) == NULL)
			return F_OOM;
		for (o = out, s++; s < q; s++) {
			*o++ = *s;
			if (*s == '"')
				s++; /* the second of "" */
		}
		*o = '\0';
		s = q + 1;
		if (s < end && *s != ',' && *s != '\n' && !(*s == '\r' && s + 1 < end && s[1] == '\n')) {
			free(out);
			return F_AFTER_QUOTE;
		}
		*line += breaks;
	} else {
		for (q = s; q < end && *q != ',' && *q != '\n' && *q != '\r'; q++)
			if (*q == '"')
				return F_QUOTE_IN_BARE;
		if ((out = malloc((size_t)(q - s) + 1)) == NULL)
			return F_OOM;
		memcpy(out, s, (size_t)(q - s));
		out[q - s] = '\0';
		s = q;
	}
	if (s < end && *s == '\r') {
		if (s + 1 >= end || s[1] != '\n') {
			free(out);
			return F_LONE_CR;
		}
		s++;
	}
	*ret_last = s >= end || *s == '\n';
	if (s < end)
		s++; /* the comma or the line feed */
	*p = s;
	*ret = out;
	return F_OK;
}

static int column_of(const char *name)
{
	int i;

	if (strcmp(name, "profile") == 0)
		name = "cert_profile";
	for (i = 0; i < AGENT_CSV_NCOLS; i++)
		if (strcmp(name, names[i]) == 0)
			return i;
	return -1;
}

void agent_csv_row_clear(agent_csv_row *r)
{
	int i;

	for (i = 0; i < AGENT_CSV_NCOLS; i++)
		free(r->v[i]);
	memset(r, 0, sizeof(*r));
}

void agent_csv_free(agent_csv *c)
{
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < c->n; i++)
		agent_csv_row_clear(&c->rows[i]);
	free(c->rows);
	c->rows = NULL;
	c->n = c->cap = 0;
}

/* The header: col[i] is the column of the file's field i. */
static int header(agent_csv *c, const char **p, const char *end, long *line, int *col,
		  size_t *ret_ncols, agent_csv_error_fn err, void *arg)
{
	size_t ncols = 0;
	int last = 0, k, e;
	char *f, safe[80];

	while (!last) {
		if ((e = next_field(p, end, line, &f, &last)) != F_OK) {
			report(c, err, arg, 1, "header: %s", field_error(e));
			return -1;
		}
		k = column_of(f);
		if (k < 0 || c->has[k]) {
			report(c, err, arg, 1,
			       "column '%s' %s: the columns are label, subject, san, key_type, "
			       "cert_profile (or profile), token_serial, replace, token_label, each "
			       "once",
			       agent_escape(f, safe, 65), k < 0 ? "is not known" : "stands twice");
			free(f);
			return -1;
		}
		free(f);
		c->has[k] = 1;
		col[ncols++] = k; /* at most AGENT_CSV_NCOLS: each column once */
	}
	(*line)++;
	*ret_ncols = ncols;
	return 0;
}

static int add_row(agent_csv *c, agent_csv_row *r)
{
	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 64;
		agent_csv_row *rows = realloc(c->rows, cap * sizeof(*rows));

		if (rows == NULL)
			return -1;
		c->rows = rows;
		c->cap = cap;
	}
	c->rows[c->n++] = *r;
	return 0;
}

int agent_csv_parse(const char *text, size_t len, agent_csv *c, agent_csv_error_fn err,
		    void *arg)
{
	const char *p = text, *end = text + len;
	int col[AGENT_CSV_NCOLS], last, e;
	size_t ncols, k;
	long line = 1;

	memset(c, 0, sizeof(*c));
	if (len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0)
		p += 3;
	if (p == end) {
		report(c, err, arg, 1, "the file is empty: it needs a header line naming the columns");
		return -1;
	}
	if (header(c, &p, end, &line, col, &ncols, err, arg) < 0)
		return -1;
	while (p < end) {
		agent_csv_row r;
		char *f;

		if (*p == '\n' || (*p == '\r' && p + 1 < end && p[1] == '\n')) {
			p += *p == '\r' ? 2 : 1; /* an empty line */
			line++;
			continue;
		}
		memset(&r, 0, sizeof(r));
		r.line = line;
		for (k = 0, last = 0; !last; k++) {
			if ((e = next_field(&p, end, &line, &f, &last)) != F_OK) {
				report(c, err, arg, r.line, "%s", field_error(e));
				agent_csv_row_clear(&r);
				/* nothing after it can be read for sure */
				return -1;
			}
			if (k >= ncols || f[0] == '\0')
				free(f); /* empty: the enrollment's own setting */
			else
				r.v[col[k]] = f;
		}
		line++;
		if (k != ncols) {
			report(c, err, arg, r.line, "%zu fields where the header has %zu", k, ncols);
			agent_csv_row_clear(&r);
			continue;
		}
		if (add_row(c, &r) < 0) {
			agent_csv_row_clear(&r);
			report(c, err, arg, r.line, "out of memory");
			return -1;
		}
	}
	return c->errors > 0 ? -1 : 0;
}

int agent_csv_load(const char *path, agent_csv *c, agent_csv_error_fn err, void *arg)
{
	FILE *f = fopen(path, "rb");
	char *text = NULL;
	size_t len = 0;
	long size;
	int rc = -1;

	memset(c, 0, sizeof(*c));
	if (f == NULL) {
		report(c, err, arg, 0, "cannot open it: %s", strerror(errno));
		return -1;
	}
	if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0 ||
	    size > AGENT_CSV_FILE_MAX) {
		report(c, err, arg, 0, "not a regular file of at most %ld bytes: split it",
		       AGENT_CSV_FILE_MAX);
		goto out;
	}
	if ((text = malloc((size_t)size + 1)) == NULL ||
	    (len = fread(text, 1, (size_t)size, f)) != (size_t)size) {
		report(c, err, arg, 0, "cannot read it%s", text == NULL ? ": out of memory" : "");
		goto out;
	}
	if (memchr(text, '\0', len) != NULL) {
		report(c, err, arg, 0, "it holds a NUL byte: it is not CSV text");
		goto out;
	}
	rc = agent_csv_parse(text, len, c, err, arg);
out:
	free(text);
	fclose(f);
	return rc;
}

int agent_csv_check_row(const agent_csv_row *r, agent_csv_error_fn err, void *arg)
{
	char why[512];
	const char *v;
	int i, dummy, n = 0;

	for (i = 0; i < AGENT_CSV_NCOLS; i++) {
		const setting *s;

		if ((v = r->v[i]) == NULL)
			continue;
		if (i == AGENT_CSV_TOKEN_SERIAL) {
			size_t k, len = strlen(v);

			for (k = 0; k < len && v[k] > 0x20 && v[k] < 0x7f; k++)
				;
			if (k < len || len > 32) {
				report(NULL, err, arg, r->line, "token_serial: not a token serial "
								"(printable, no spaces, at most 32)");
				n++;
			}
		} else if (i == AGENT_CSV_REPLACE) {
			if (strcmp(v, "yes") != 0 && strcmp(v, "no") != 0) {
				report(NULL, err, arg, r->line, "replace: give yes or no");
				n++;
			}
		} else if ((s = conf_setting(names[i])) != NULL &&
			   conf_check_value(s, v, 0, &dummy, why, sizeof(why)) < 0) {
			report(NULL, err, arg, r->line, "%s: %s", names[i], why);
			n++;
		}
	}
	return n;
}

int agent_csv_replace(const agent_csv_row *r)
{
	return r->v[AGENT_CSV_REPLACE] != NULL && strcmp(r->v[AGENT_CSV_REPLACE], "yes") == 0;
}
