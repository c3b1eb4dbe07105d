/*
 * The queue file of enroll --batch and of the station: CSV text (RFC
 * 4180) with a header that names its columns, one row per certificate.
 * The reader knows the columns, not what they are for: a caller checks
 * what its own use needs (batch: a label in every row, each once).
 *
 * The file is untrusted input: whatever it holds, the reader returns rows
 * or errors, each with its line number, and never reads past its text.
 */
#ifndef P11ENROLL_CSV_H
#define P11ENROLL_CSV_H

#include <stddef.h>

/* The columns, in the order a row's v[] holds them. */
enum {
	AGENT_CSV_LABEL,
	AGENT_CSV_SUBJECT,
	AGENT_CSV_SAN,
	AGENT_CSV_KEY_TYPE,
	AGENT_CSV_CERT_PROFILE, /* also "profile" in the header */
	AGENT_CSV_TOKEN_SERIAL, /* the token the row is for */
	AGENT_CSV_REPLACE,	/* yes/no: the row may replace a valid certificate */
	AGENT_CSV_TOKEN_LABEL,	/* station: the label a blank card gets */
	AGENT_CSV_NCOLS
};

/* The largest file read (a queue of some 100,000 rows). */
#define AGENT_CSV_FILE_MAX (16L << 20)

typedef struct {
	long line;		       /* where the row starts */
	char *v[AGENT_CSV_NCOLS]; /* NULL: not given or empty */
} agent_csv_row;

typedef struct {
	int has[AGENT_CSV_NCOLS]; /* the header names the column */
	agent_csv_row *rows;
	size_t n, cap;
	int errors;
} agent_csv;

/* Called for each error: line (1 is the header) and one line of text
 * saying what is wrong and what to do. */
typedef void (*agent_csv_error_fn)(void *arg, long line, const char *msg);

/* The column's name in a header ("label", "cert_profile"...). */
const char *agent_csv_column(int col);
/* text[0..len) (no NUL needed) into out (zeroed first): 0, or -1 after
 * err was called for every error found (out->errors of them; the rows
 * read until then stay in out, for agent_csv_free).  Rows with the wrong
 * number of fields are reported and left out; the values are not checked
 * (agent_csv_check_row). */
int agent_csv_parse(const char *text, size_t len, agent_csv *out, agent_csv_error_fn err,
		    void *arg);
/* agent_csv_parse of the file at path (at most AGENT_CSV_FILE_MAX bytes,
 * no NUL byte); errors that concern the file itself have line 0. */
int agent_csv_load(const char *path, agent_csv *out, agent_csv_error_fn err, void *arg);
/* Each of the row's values checked as its setting of p11enroll.conf(5) is
 * (token_serial: printable, at most 32 bytes; replace: yes or no): the
 * number of errors reported through err. */
int agent_csv_check_row(const agent_csv_row *r, agent_csv_error_fn err, void *arg);
/* replace column: 1 yes, 0 no or not given. */
int agent_csv_replace(const agent_csv_row *r);
void agent_csv_row_clear(agent_csv_row *r);
void agent_csv_free(agent_csv *c);

#endif
