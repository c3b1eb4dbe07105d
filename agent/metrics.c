/*
 * The daemon's view of its enrollments as an OpenMetrics text file, for
 * node_exporter's textfile collector or any agent that reads files: a file
 * needs no listening socket in the daemon.  Prometheus' older text format
 * reads it too (the "# UNIT" and "# EOF" lines are comments there).
 *
 * The file is replaced through agent_atomic_write(), so a scraper never
 * reads half of it; its temporary file starts with '.' and does not end in
 * ".prom", so that the textfile collector, which reads "*.prom", never
 * picks it up.
 */
#include "config.h"

#include <stdio.h>

#include "agent/agent.h"
#include "agent/daemon.h"

enum { F_NOT_AFTER, F_LAST_SUCCESS, F_FAILURES, F_NEXT_ATTEMPT, F_STATE, F_COUNT };

static const struct {
	const char *name, *unit, *help;
} families[F_COUNT] = {
	[F_NOT_AFTER] = { "p11enroll_certificate_not_after_seconds", "seconds",
			  "When the enrolled certificate expires, in seconds since the epoch." },
	[F_LAST_SUCCESS] = { "p11enroll_last_success_seconds", "seconds",
			     "When the enrollment last succeeded, in seconds since the epoch." },
	[F_FAILURES] = { "p11enroll_consecutive_failures", NULL,
			 "Attempts that failed since the last success." },
	[F_NEXT_ATTEMPT] = { "p11enroll_next_attempt_seconds", "seconds",
			     "When the next attempt is due, in seconds since the epoch." },
	[F_STATE] = { "p11enroll_state", NULL,
		      "The state the enrollment is in (the sample with value 1)." },
};

/* A label value: OpenMetrics escapes backslash, double quote and newline. */
static void put_label_value(FILE *f, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\')
			fputs("\\\\", f);
		else if (*s == '"')
			fputs("\\\"", f);
		else if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
}

static void put_sample(FILE *f, int fam, const metrics_enrollment *m, long long value)
{
	fprintf(f, "%s{enrollment=\"", families[fam].name);
	put_label_value(f, m->name);
	if (fam == F_STATE) {
		fputs("\",state=\"", f);
		put_label_value(f, m->state);
	}
	fprintf(f, "\"} %lld\n", value);
}

static void put_all(FILE *f, const metrics_enrollment *e, size_t n)
{
	size_t i;
	int fam;

	for (fam = 0; fam < F_COUNT; fam++) {
		fprintf(f, "# TYPE %s gauge\n", families[fam].name);
		if (families[fam].unit != NULL)
			fprintf(f, "# UNIT %s %s\n", families[fam].name, families[fam].unit);
		fprintf(f, "# HELP %s %s\n", families[fam].name, families[fam].help);
		for (i = 0; i < n; i++) {
			const metrics_enrollment *m = &e[i];

			/* 0 is "unknown": no sample rather than a false 1970. */
			if (fam == F_NOT_AFTER && m->not_after != 0)
				put_sample(f, fam, m, m->not_after);
			else if (fam == F_LAST_SUCCESS && m->last_success != 0)
				put_sample(f, fam, m, m->last_success);
			else if (fam == F_FAILURES)
				put_sample(f, fam, m, m->consecutive_failures);
			else if (fam == F_NEXT_ATTEMPT && m->next_attempt != 0)
				put_sample(f, fam, m, m->next_attempt);
			else if (fam == F_STATE && m->state != NULL)
				put_sample(f, fam, m, 1);
		}
	}
	fputs("# EOF\n", f);
}

struct metrics_out {
	const metrics_enrollment *e;
	size_t n;
};

static int put_file(FILE *f, void *arg)
{
	const struct metrics_out *m = arg;

	put_all(f, m->e, m->n);
	return 0;
}

int metrics_write(const char *path, const metrics_enrollment *e, size_t n, char *err,
		  size_t errlen)
{
	struct metrics_out m = { e, n };
	size_t i;

	for (i = 0; i < n; i++)
		if (e[i].name == NULL) {
			snprintf(err, errlen, "metrics: enrollment %zu has no name", i + 1);
			return -1;
		}
	/* 0644: the collector runs as another user, and nothing here is secret. */
	return agent_atomic_write(path, 0644, put_file, &m, err, errlen);
}
