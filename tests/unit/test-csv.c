/*
 * The queue file modules on their own: the CSV reader (agent/csv.c) with
 * well-formed and malformed files (every prefix and every one-byte change
 * of a valid file too: under ASan no read past the text), the row state
 * file's lines, identities and lock (agent/rowstate.c), and the journal's
 * JSON line (agent/journal.c).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/csv.h"
#include "agent/journal.h"
#include "agent/rowstate.h"
#include "tests/unit/tap.h"

static char errs[8192];
static long first_line;
static int nerr;

static void collect(void *arg, long line, const char *msg)
{
	size_t n = strlen(errs);

	(void)arg;
	if (nerr++ == 0)
		first_line = line;
	snprintf(errs + n, sizeof(errs) - n, "%ld: %s\n", line, msg);
}

/* text parsed: its return, errors in errs (first line in first_line). */
static int parse(const char *text, agent_csv *c)
{
	errs[0] = '\0';
	nerr = 0;
	first_line = -1;
	return agent_csv_parse(text, strlen(text), c, collect, NULL);
}

static int eq(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcmp(a, b) == 0;
}

static void test_good(void)
{
	agent_csv c;
	int rc;

	rc = parse("\xef\xbb\xbflabel,subject,san,profile\r\n"
		   "a,/CN=a,DNS:a.example,p1\r\n"
		   "\r\n"
		   "b,\"/CN=b/O=Comma, Inc.\",\"DNS:b,DNS:c\",\n"
		   "\"c\",\"/CN=\"\"q\"\"\",\"line\nbreak\",x\n"
		   "d,/CN=d,,",
		   &c);
	tap_ok(rc == 0 && c.n == 4, "/csv/good/parsed", "rc %d rows %zu: %s", rc, c.n, errs);
	if (c.n == 4) {
		tap_check(c.has[AGENT_CSV_CERT_PROFILE] && !c.has[AGENT_CSV_KEY_TYPE],
			  "/csv/good/profile-alias");
		tap_check(eq(c.rows[0].v[AGENT_CSV_LABEL], "a") &&
			      eq(c.rows[0].v[AGENT_CSV_CERT_PROFILE], "p1"),
			  "/csv/good/crlf");
		tap_check(eq(c.rows[1].v[AGENT_CSV_SUBJECT], "/CN=b/O=Comma, Inc.") &&
			      eq(c.rows[1].v[AGENT_CSV_SAN], "DNS:b,DNS:c") &&
			      c.rows[1].v[AGENT_CSV_CERT_PROFILE] == NULL,
			  "/csv/good/quoted-commas-empty-last");
		tap_check(eq(c.rows[2].v[AGENT_CSV_SUBJECT], "/CN=\"q\"") &&
			      eq(c.rows[2].v[AGENT_CSV_SAN], "line\nbreak"),
			  "/csv/good/quote-and-newline-inside");
		tap_ok(c.rows[0].line == 2 && c.rows[1].line == 4 && c.rows[2].line == 5 &&
			   c.rows[3].line == 7,
		       "/csv/good/line-numbers", "%ld %ld %ld %ld", c.rows[0].line, c.rows[1].line,
		       c.rows[2].line, c.rows[3].line);
		tap_check(eq(c.rows[3].v[AGENT_CSV_LABEL], "d") && c.rows[3].v[AGENT_CSV_SAN] == NULL,
			  "/csv/good/no-final-newline");
	} else {
		tap_ok(0, "/csv/good/rows", "skipped: not parsed");
		tap_ok(0, "/csv/good/rows", "skipped");
		tap_ok(0, "/csv/good/rows", "skipped");
		tap_ok(0, "/csv/good/rows", "skipped");
		tap_ok(0, "/csv/good/rows", "skipped");
		tap_ok(0, "/csv/good/rows", "skipped");
	}
	agent_csv_free(&c);
	rc = parse("label,token_serial,replace\n", &c);
	tap_check(rc == 0 && c.n == 0 && c.has[AGENT_CSV_REPLACE], "/csv/good/header-only");
	agent_csv_free(&c);
}

/* refused TEXT LINE WHAT: parse fails, the first error on LINE says WHAT. */
static void refused(const char *name, const char *text, long line, const char *what)
{
	agent_csv c;
	int rc = parse(text, &c);

	tap_ok(rc < 0 && first_line == line && strstr(errs, what) != NULL, name,
	       "rc %d, first error on line %ld: %s", rc, first_line, errs);
	agent_csv_free(&c);
}

static void test_bad(void)
{
	agent_csv c;
	int rc;

	refused("/csv/bad/empty", "", 1, "empty");
	refused("/csv/bad/unknown-column", "label,colour\nx,red\n", 1, "'colour' is not known");
	refused("/csv/bad/column-twice", "label,profile,cert_profile\n", 1, "stands twice");
	refused("/csv/bad/open-quote", "label,subject\nx,/CN=x\ny,\"/CN=y\n", 3, "never closes");
	refused("/csv/bad/after-quote", "label,subject\nx,\"/CN=x\"y\n", 2, "after a quoted");
	refused("/csv/bad/quote-in-bare", "label,subject\nx,/CN=\"x\"\n", 2, "quote inside an "
									     "unquoted");
	refused("/csv/bad/lone-cr", "label,subject\nx,/CN=x\ry\n", 2, "carriage return");
	refused("/csv/bad/header-quote", "\"label,subject\n", 1, "header: a quoted field");
	refused("/csv/bad/escape-in-name", "label,\x1b[31m\n", 1, "\\x1B[31m");
	/* a row with the wrong count is left out, the others are read */
	rc = parse("label,subject\na,/CN=a\nb\nc,/CN=c,extra\nd,/CN=d\n", &c);
	tap_ok(rc < 0 && nerr == 2 && c.n == 2 && eq(c.rows[1].v[AGENT_CSV_LABEL], "d") &&
		   strstr(errs, "3: 1 fields where the header has 2") != NULL &&
		   strstr(errs, "4: 3 fields where the header has 2") != NULL,
	       "/csv/bad/field-counts", "rc %d n %zu: %s", rc, c.n, errs);
	agent_csv_free(&c);
}

static void test_check_row(void)
{
	agent_csv c;
	int n;

	parse("label,subject,token_serial,replace,key_type\n"
	      "a,/CN=a,0123abcd,yes,ec:P-384\n"
	      "b,CN=b,has space,maybe,dsa:1024\n",
	      &c);
	if (c.n != 2)
		tap_bail("check_row: the file did not parse: %s", errs);
	errs[0] = '\0';
	nerr = 0;
	n = agent_csv_check_row(&c.rows[0], collect, NULL);
	tap_ok(n == 0 && agent_csv_replace(&c.rows[0]), "/csv/check/good", "%d: %s", n, errs);
	n = agent_csv_check_row(&c.rows[1], collect, NULL);
	tap_ok(n == 4 && strstr(errs, "3: subject: ") && strstr(errs, "3: token_serial: ") &&
		   strstr(errs, "3: replace: give yes or no") && strstr(errs, "3: key_type: ") &&
		   !agent_csv_replace(&c.rows[1]),
	       "/csv/check/bad", "%d: %s", n, errs);
	agent_csv_free(&c);
}

/* Every prefix and every byte changed to each of a few bytes: parsed
 * without a crash (ASan: without a read out of bounds), and every row has
 * as many values as the header allows. */
static void test_mangled(void)
{
	static const char good[] = "label,subject,san\r\na,\"/CN=a,\"\"b\"\"\",\"x\ny\"\r\n"
				   "b,/CN=b,\n";
	static const char bytes[] = "\",\r\n\0a";
	char buf[sizeof(good)];
	size_t len = sizeof(good) - 1, i, k, bad = 0, runs = 0;
	agent_csv c;

	for (i = 0; i <= len; i++) {
		/* a copy of exactly i bytes, no NUL after it */
		char *p = malloc(i ? i : 1);

		memcpy(p, good, i);
		agent_csv_parse(p, i, &c, NULL, NULL);
		agent_csv_free(&c);
		free(p);
		runs++;
	}
	for (i = 0; i < len; i++) {
		for (k = 0; k < sizeof(bytes) - 1; k++) {
			char *p = malloc(len);
			size_t r;

			memcpy(buf, good, len);
			buf[i] = bytes[k];
			memcpy(p, buf, len);
			if (agent_csv_parse(p, len, &c, NULL, NULL) == 0)
				for (r = 0; r < c.n; r++)
					if (c.rows[r].line < 2)
						bad++;
			agent_csv_free(&c);
			free(p);
			runs++;
		}
	}
	tap_ok(bad == 0, "/csv/mangled", "%zu inputs, %zu rows with impossible lines", runs, bad);
}

static void test_row_id(void)
{
	unsigned char a[AGENT_ROW_ID_LEN], b[AGENT_ROW_ID_LEN], c2[AGENT_ROW_ID_LEN];
	agent_csv x, y;

	parse("label,subject,san\nr,/CN=r,\nq,/CN=q,\n", &x);
	parse("subject,label\n/CN=r,r\n\"/CN=q\",q2\n", &y);
	if (x.n != 2 || y.n != 2)
		tap_bail("row ids: the files did not parse: %s", errs);
	agent_rowstate_row_id(&x.rows[0], a);
	agent_rowstate_row_id(&y.rows[0], b);
	tap_check(memcmp(a, b, sizeof(a)) == 0, "/rowstate/id/column-order-and-empty");
	agent_rowstate_row_id(&x.rows[1], b);
	agent_rowstate_row_id(&y.rows[1], c2);
	tap_check(memcmp(a, b, sizeof(a)) != 0 && memcmp(b, c2, sizeof(b)) != 0,
		  "/rowstate/id/values-count");
	agent_csv_free(&x);
	agent_csv_free(&y);
}

static void test_rowstate_lines(void)
{
	agent_row_mark m = {{0}, AGENT_ROW_DONE, 1764763200LL, "7A3F01"}, t = m;
	const agent_row_mark *got;
	agent_rowstate *rs = agent_rowstate_new();
	char l1[300], l2[300], text[1200];
	size_t ign;

	memset(m.id, 0xab, sizeof(m.id));
	t = m;
	t.st = AGENT_ROW_TAKEN;
	t.serial[0] = '\0';
	if (rs == NULL || agent_rowstate_format(&t, l1, sizeof(l1)) < 0 ||
	    agent_rowstate_format(&m, l2, sizeof(l2)) < 0)
		tap_bail("rowstate: cannot format");
	tap_ok(strncmp(l1, "taken abab", 10) == 0 && strstr(l1, " 1764763200 - ") != NULL,
	       "/rowstate/format", "%s", l1);
	/* taken, then done: done wins */
	snprintf(text, sizeof(text), "p11enroll-rowstate 1\n%s%s", l1, l2);
	ign = agent_rowstate_read(rs, text, strlen(text));
	got = agent_rowstate_get(rs, m.id);
	tap_ok(ign == 0 && got != NULL && got->st == AGENT_ROW_DONE && eq(got->serial, "7A3F01") &&
		   got->time == 1764763200LL,
	       "/rowstate/read/last-wins", "ignored %zu", ign);
	agent_rowstate_close(rs);
	/* done torn: the row stays taken */
	rs = agent_rowstate_new();
	snprintf(text, sizeof(text), "%s%.*s", l1, (int)strlen(l2) - 1, l2);
	ign = agent_rowstate_read(rs, text, strlen(text));
	got = agent_rowstate_get(rs, m.id);
	tap_ok(ign == 1 && got != NULL && got->st == AGENT_ROW_TAKEN, "/rowstate/read/torn",
	       "ignored %zu", ign);
	agent_rowstate_close(rs);
	/* done with one byte changed (the serial): ignored */
	rs = agent_rowstate_new();
	snprintf(text, sizeof(text), "%s%s", l1, l2);
	*strstr(text + strlen(l1), "7A3F01") = '8';
	ign = agent_rowstate_read(rs, text, strlen(text));
	got = agent_rowstate_get(rs, m.id);
	tap_ok(ign == 1 && got != NULL && got->st == AGENT_ROW_TAKEN, "/rowstate/read/corrupt",
	       "ignored %zu", ign);
	agent_rowstate_close(rs);
	/* garbage of every kind: ignored, nothing marked */
	rs = agent_rowstate_new();
	snprintf(text, sizeof(text), "done\n\n \nfoo bar baz qux quux\n%s", "done x 1 - 00000000\n");
	ign = agent_rowstate_read(rs, text, strlen(text));
	tap_ok(ign == 5 && agent_rowstate_get(rs, m.id) == NULL, "/rowstate/read/garbage",
	       "ignored %zu", ign);
	agent_rowstate_close(rs);
}

static void test_rowstate_file(void)
{
	char dir[] = "/tmp/test-csv.XXXXXX", csv[64], state[80], err[1024], text[4096];
	unsigned char id[AGENT_ROW_ID_LEN];
	agent_rowstate *rs, *rs2 = NULL;
	const agent_row_mark *m;
	FILE *f;
	size_t n;
	int rc;

	if (mkdtemp(dir) == NULL)
		tap_bail("mkdtemp");
	snprintf(csv, sizeof(csv), "%s/q.csv", dir);
	snprintf(state, sizeof(state), "%s.state", csv);
	memset(id, 7, sizeof(id));
	rc = agent_rowstate_open(csv, &rs, err, sizeof(err));
	if (rc != 0)
		tap_bail("rowstate open: %s", err);
	rc = agent_rowstate_open(csv, &rs2, err, sizeof(err));
	tap_ok(rc == -2 && rs2 == NULL && strstr(err, "another p11enroll run") != NULL,
	       "/rowstate/file/locked", "rc %d: %s", rc, err);
	tap_check(agent_rowstate_mark(rs, id, AGENT_ROW_TAKEN, NULL, err, sizeof(err)) == 0 &&
		      agent_rowstate_mark(rs, id, AGENT_ROW_DONE, "0A", err, sizeof(err)) == 0,
		  "/rowstate/file/mark");
	agent_rowstate_close(rs);
	rc = agent_rowstate_open(csv, &rs, err, sizeof(err));
	m = rc == 0 ? agent_rowstate_get(rs, id) : NULL;
	tap_ok(m != NULL && m->st == AGENT_ROW_DONE && eq(m->serial, "0A"), "/rowstate/file/reopen",
	       "rc %d", rc);
	/* compacted at that open: the header and one line */
	f = fopen(state, "r");
	n = f != NULL ? fread(text, 1, sizeof(text) - 1, f) : 0;
	text[n] = '\0';
	if (f != NULL)
		fclose(f);
	tap_ok(strncmp(text, "p11enroll-rowstate 1\ndone 0707", 30) == 0 &&
		   strchr(strchr(text, '\n') + 1, '\n') == text + n - 1,
	       "/rowstate/file/compacted", "%s", text);
	agent_rowstate_close(rs);
	unlink(state);
	rmdir(dir);
}

static void test_journal(void)
{
	agent_journal_entry j;
	char *line;
	size_t i, ctl = 0;

	memset(&j, 0, sizeof(j));
	j.time = 1764763200LL;
	j.outcome = "failed";
	snprintf(j.label, sizeof(j.label), "l\"\\\n\x1b[2J\xff");
	snprintf(j.error, sizeof(j.error), "why: \x7f\t");
	line = agent_journal_format(&j);
	if (line == NULL)
		tap_bail("journal: out of memory");
	for (i = 0; line[i] != '\0'; i++)
		if ((unsigned char)line[i] < 0x20 && line[i + 1] != '\0')
			ctl++;
	tap_ok(ctl == 0 && line[strlen(line) - 1] == '\n' &&
		   strstr(line, "\"time\": \"2025-12-03T12:00:00Z\"") != NULL &&
		   strstr(line, "\"cert_serial\": null") != NULL &&
		   strstr(line, "\"label\": \"l\\\"\\\\\\\\x0A\\\\x1B[2J\\\\xFF\"") != NULL,
	       "/journal/format", "%s", line);
	free(line);
}

int main(void)
{
	log_init("test-csv", -1, 0);
	tap_plan(33);
	test_good();
	test_bad();
	test_check_row();
	test_mangled();
	test_row_id();
	test_rowstate_lines();
	test_rowstate_file();
	test_journal();
	return tap_done();
}
