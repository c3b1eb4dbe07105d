/*
 * The daemon's view of its enrollments as an OpenMetrics text file, for
 * node_exporter's textfile collector or any agent that reads files: a file
 * needs no listening socket in the daemon.  Prometheus' older text format
 * reads it too (the "# UNIT" and "# EOF" lines are comments there).
 *
 * The file is replaced by rename(), so a scraper never reads half of it.
 * The temporary file starts with '.' and does not end in ".prom", so that
 * the textfile collector, which reads "*.prom", never picks it up.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r;

	if (fd < 0)
		return -1;
	r = fsync(fd);
	close(fd);
	return r;
}

int metrics_write(const char *path, const metrics_enrollment *e, size_t n, char *err,
		  size_t errlen)
{
	const char *slash = strrchr(path, '/'), *base = slash != NULL ? slash + 1 : path;
	char dir[4096], tmp[4200];
	FILE *f = NULL;
	size_t i;
	int fd, len;

	for (i = 0; i < n; i++)
		if (e[i].name == NULL) {
			snprintf(err, errlen, "metrics: enrollment %zu has no name", i + 1);
			return -1;
		}
	if (*base == '\0') {
		snprintf(err, errlen, "metrics file %s is a directory name", path);
		return -1;
	}
	if (slash == NULL)
		len = snprintf(dir, sizeof(dir), ".");
	else
		len = snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path),
			       path);
	if (len < 0 || (size_t)len >= sizeof(dir) ||
	    (len = snprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", dir, base)) < 0 ||
	    (size_t)len >= sizeof(tmp)) {
		snprintf(err, errlen, "metrics file name %s is too long", path);
		return -1;
	}
	fd = mkstemp(tmp);
	if (fd < 0) {
		snprintf(err, errlen,
			 "cannot write the metrics file %s: cannot create a file in %s: %s", path,
			 dir, strerror(errno));
		return -1;
	}
	/* mkstemp() makes it 0600; the collector runs as another user. */
	if (fchmod(fd, 0644) < 0 || (f = fdopen(fd, "w")) == NULL) {
		snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
		close(fd);
		unlink(tmp);
		return -1;
	}
	put_all(f, e, n);
	errno = EIO; /* what ferror() alone means */
	if (fflush(f) != 0 || ferror(f) || fsync(fd) != 0) {
		snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
		fclose(f);
		unlink(tmp);
		return -1;
	}
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		snprintf(err, errlen, "cannot replace the metrics file %s: %s", path,
			 strerror(errno));
		unlink(tmp);
		return -1;
	}
	(void)fsync_dir(dir);
	return 0;
}
