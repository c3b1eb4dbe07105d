/*
 * The daemon's (p11enrolld) dealings with the rest of the machine: running
 * hook programs after an enrollment, a metrics file for a Prometheus
 * textfile collector, and systemd's readiness protocol.  Each lives in its
 * own file (hook.c, metrics.c, notify.c) and needs no other part of the
 * agent, so that the tests can drive them alone.
 */
#ifndef P11ENROLL_DAEMON_H
#define P11ENROLL_DAEMON_H

#include <stddef.h>

/*
 * hook.c: runs command, a program path followed by arguments separated by
 * blanks (no quoting: no shell is involved, and nothing from env is ever
 * put into the command line, so that values from the CA cannot become
 * code).  The path must be absolute.  env is a NULL-terminated list of
 * "NAME=value" strings; the hook gets exactly these and
 * PATH=/usr/sbin:/usr/bin:/sbin:/bin (unless env has its own PATH).  Its
 * stdin is /dev/null, its stdout and stderr are the caller's stderr, and it
 * runs in a process group of its own, which is killed with SIGKILL after
 * timeout_s seconds (0 or less: no limit).
 *
 * Returns 0 when the hook exited with status 0.  Otherwise -1, with err
 * saying why: not found, not executable, exit status N, killed by signal N,
 * timed out after N s.  *ret_status (may be NULL) gets the waitpid()
 * status whenever the hook ran; it is untouched when it could not be
 * started.  The child is always reaped, and waited for by its pid only, so
 * a SIGCHLD handler of the caller does no harm, as long as it does not reap
 * children itself.
 */
int hook_run(const char *command, const char *const *env, int timeout_s, int *ret_status,
	     char *err, size_t errlen);

/* metrics.c: the steps of one kind (name: "renew" ...) that the agent ran
 * since it started, for all its enrollments: their seconds, how many, how
 * many failed.  Not per enrollment: five kinds times three samples for
 * each of 10,000 enrollments made the file 6.4 times larger (15 MB) for
 * what consecutive_failures and state already tell per enrollment. */
typedef struct {
	const char *name;
	double seconds;
	long count, failed;
} metrics_step;

/* metrics.c: the state of one enrollment.  Times are seconds since the
 * epoch; 0 means unknown (the sample is left out), as does state NULL and
 * ca NULL (the CA's URL, the "server" setting).  ca_contact: when the CA
 * last answered; renewals: certificates it replaced. */
typedef struct {
	const char *name;
	long long not_after, last_success, next_attempt;
	int consecutive_failures;
	const char *state;
	const char *ca;
	long long ca_contact;
	long renewals;
	long long not_before; /* of the certificate: with not_after, its lifetime */
} metrics_enrollment;

/* metrics.c: fills *m with enrollment i (of the n that metrics_write
 * asks for), from the caller's own records: the file is written without a
 * copy of all of them (10,000 enrollments: 1 MB, kept by the heap). */
typedef void metrics_get_fn(size_t i, metrics_enrollment *m, void *arg);

/*
 * Writes the metrics of n enrollments (get(0..n-1, ..., arg)) and of the
 * agent's steps[0..nsteps) (Prometheus' text format) to path, through a
 * temporary file in the same directory that is fsync'ed and renamed over
 * path, so that a scraper reads either the old or the new file.  The file
 * is readable by everyone (0644): it holds no secrets, and the collector
 * usually runs as another user.  Returns -1 with a message in err on error.
 */
int metrics_write(const char *path, metrics_get_fn *get, void *arg, size_t n,
		  const metrics_step *steps, size_t nsteps, char *err, size_t errlen);

/*
 * notify.c: sends state ("READY=1", "STATUS=...", "STOPPING=1",
 * "RELOADING=1", several separated by newlines) to the service manager
 * over the socket named in $NOTIFY_SOCKET (a path, or an abstract socket
 * when it starts with '@').  Returns 0 without doing anything when
 * NOTIFY_SOCKET is unset or empty; -1 with errno set when it cannot be
 * sent.
 */
int notify_send(const char *state);

#endif
