/*
 * The daemon's view of its enrollments as a metrics file, for
 * node_exporter's textfile collector or any agent that reads files: a file
 * needs no listening socket in the daemon.  It is Prometheus' text format,
 * the one the textfile collector parses, with OpenMetrics' names (units in
 * the name, counters end in "_total") and its "# UNIT" and "# EOF" lines,
 * which are comments in the text format.
 *
 * The file is replaced through agent_atomic_write(), so a scraper never
 * reads half of it; its temporary file starts with '.' and does not end in
 * ".prom", so that the textfile collector, which reads "*.prom", never
 * picks it up.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "agent/agent.h"
#include "agent/daemon.h"

enum {
	F_NOT_BEFORE,
	F_NOT_AFTER,
	F_LAST_SUCCESS,
	F_FAILURES,
	F_NEXT_ATTEMPT,
	F_STATE,
	F_CA,
	F_CA_CONTACT,
	F_RENEWALS,
	F_STEP_SECONDS,
	F_STEP_FAILED,
	F_COUNT
};

/* A counter's family is named with its "_total", as the text format wants
 * it: OpenMetrics' family without the suffix would leave node_exporter's
 * parser a family with no samples and the samples untyped, without HELP.
 * A summary's samples are the family's name with "_sum" and "_count". */
static const struct {
	const char *name, *type, *unit, *help;
} families[F_COUNT] = {
	[F_NOT_BEFORE] = { "p11enroll_certificate_not_before_seconds", "gauge", "seconds",
			   "When the enrolled certificate became valid, in seconds since the epoch." },
	[F_NOT_AFTER] = { "p11enroll_certificate_not_after_seconds", "gauge", "seconds",
			  "When the enrolled certificate expires, in seconds since the epoch." },
	[F_LAST_SUCCESS] = { "p11enroll_last_success_seconds", "gauge", "seconds",
			     "When the enrollment last succeeded, in seconds since the epoch." },
	[F_FAILURES] = { "p11enroll_consecutive_failures", "gauge", NULL,
			 "Attempts that failed since the last success." },
	[F_NEXT_ATTEMPT] = { "p11enroll_next_attempt_seconds", "gauge", "seconds",
			     "When the next attempt is due, in seconds since the epoch." },
	[F_STATE] = { "p11enroll_state", "gauge", NULL,
		      "The state the enrollment is in (the sample with value 1)." },
	[F_CA] = { "p11enroll_ca_info", "gauge", NULL,
		   "The CA the enrollment uses: its URL is the label ca (the value is 1)." },
	[F_CA_CONTACT] = { "p11enroll_ca_last_contact_seconds", "gauge", "seconds",
			   "When the CA last answered a step (issued, refused or said waiting), "
			   "in seconds since the epoch." },
	[F_RENEWALS] = { "p11enroll_renewals_total", "counter", NULL,
			 "Certificates the agent has replaced on the token." },
	[F_STEP_SECONDS] = { "p11enroll_step_duration_seconds", "summary", "seconds",
			     "How long the agent's steps ran since it started, per kind of step." },
	[F_STEP_FAILED] = { "p11enroll_step_failures_total", "counter", NULL,
			    "The agent's steps that failed since it started, per kind of step." },
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

/* The CA's URL without its userinfo ("user:password@"): the file is
 * world-readable, and a password in the URL must not land in it. */
static void put_url(FILE *f, const char *url)
{
	const char *host = strstr(url, "://"), *at, *end;
	char part[1024];
	size_t n;

	if (host == NULL) {
		put_label_value(f, url);
		return;
	}
	host += 3;
	end = host + strcspn(host, "/?#");
	at = memchr(host, '@', (size_t)(end - host));
	n = (size_t)(host - url);
	if (at == NULL || n >= sizeof(part)) {
		put_label_value(f, url);
		return;
	}
	memcpy(part, url, n);
	part[n] = '\0';
	put_label_value(f, part);
	put_label_value(f, at + 1);
}

static void put_labels(FILE *f, const char *sample, const metrics_enrollment *m)
{
	fprintf(f, "%s{enrollment=\"", sample);
	put_label_value(f, m->name);
}

static void put_sample(FILE *f, int fam, const metrics_enrollment *m, long long value)
{
	put_labels(f, families[fam].name, m);
	if (fam == F_STATE) {
		fputs("\",state=\"", f);
		put_label_value(f, m->state);
	} else if (fam == F_CA) {
		fputs("\",ca=\"", f);
		put_url(f, m->ca);
	}
	fprintf(f, "\"} %lld\n", value);
}

/* The agent's steps, one sample (a summary: two) per kind: without the
 * label enrollment, so the file does not grow with them. */
static void put_steps(FILE *f, int fam, const metrics_step *steps, size_t nsteps)
{
	size_t k;

	for (k = 0; k < nsteps; k++) {
		fprintf(f, "%s%s{step=\"", families[fam].name, fam == F_STEP_SECONDS ? "_sum" : "");
		put_label_value(f, steps[k].name);
		if (fam == F_STEP_SECONDS) {
			fprintf(f, "\"} %.3f\n%s_count{step=\"", steps[k].seconds, families[fam].name);
			put_label_value(f, steps[k].name);
			fprintf(f, "\"} %ld\n", steps[k].count);
		} else {
			fprintf(f, "\"} %ld\n", steps[k].failed);
		}
	}
}

static void put_one(FILE *f, int fam, const metrics_enrollment *m)
{
	/* 0 is "unknown": no sample rather than a false 1970. */
	if (fam == F_NOT_BEFORE && m->not_before != 0)
		put_sample(f, fam, m, m->not_before);
	else if (fam == F_NOT_AFTER && m->not_after != 0)
		put_sample(f, fam, m, m->not_after);
	else if (fam == F_LAST_SUCCESS && m->last_success != 0)
		put_sample(f, fam, m, m->last_success);
	else if (fam == F_FAILURES)
		put_sample(f, fam, m, m->consecutive_failures);
	else if (fam == F_NEXT_ATTEMPT && m->next_attempt != 0)
		put_sample(f, fam, m, m->next_attempt);
	else if (fam == F_STATE && m->state != NULL)
		put_sample(f, fam, m, 1);
	else if (fam == F_CA && m->ca != NULL)
		put_sample(f, fam, m, 1);
	else if (fam == F_CA_CONTACT && m->ca_contact != 0)
		put_sample(f, fam, m, m->ca_contact);
	else if (fam == F_RENEWALS) {
		put_labels(f, families[fam].name, m);
		fprintf(f, "\"} %ld\n", m->renewals);
	}
}

struct metrics_out {
	metrics_get_fn *get;
	void *arg;
	size_t n;
	const metrics_step *steps;
	size_t nsteps;
};

static int put_file(FILE *f, void *arg)
{
	const struct metrics_out *o = arg;
	metrics_enrollment m;
	size_t i;
	int fam;

	for (fam = 0; fam < F_COUNT; fam++) {
		fprintf(f, "# TYPE %s %s\n", families[fam].name, families[fam].type);
		if (families[fam].unit != NULL)
			fprintf(f, "# UNIT %s %s\n", families[fam].name, families[fam].unit);
		fprintf(f, "# HELP %s %s\n", families[fam].name, families[fam].help);
		if (fam == F_STEP_SECONDS || fam == F_STEP_FAILED) {
			put_steps(f, fam, o->steps, o->nsteps);
			continue;
		}
		for (i = 0; i < o->n; i++) {
			memset(&m, 0, sizeof(m));
			o->get(i, &m, o->arg);
			put_one(f, fam, &m);
		}
	}
	fputs("# EOF\n", f);
	return 0;
}

int metrics_write(const char *path, metrics_get_fn *get, void *arg, size_t n,
		  const metrics_step *steps, size_t nsteps, char *err, size_t errlen)
{
	struct metrics_out o = { get, arg, n, steps, nsteps };
	metrics_enrollment m;
	size_t i;

	for (i = 0; i < n; i++) {
		memset(&m, 0, sizeof(m));
		get(i, &m, arg);
		if (m.name == NULL) {
			snprintf(err, errlen, "metrics: enrollment %zu has no name", i + 1);
			return -1;
		}
	}
	/* 0644: the collector runs as another user, and nothing here is secret. */
	return agent_atomic_write(path, 0644, put_file, &o, err, errlen);
}
