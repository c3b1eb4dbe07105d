/* TAP output and a log collector shared by the C unit tests. */
#ifndef P11ENROLL_TAP_H
#define P11ENROLL_TAP_H

#include <stddef.h>

extern int tap_ntest, tap_nfail, tap_nplan;
extern char tap_log[];    /* every line given to tap_collect, "<level>msg\n" */
extern size_t tap_loglen;

/* A cmpc_log_fn: appends to tap_log (and to stderr with T_VERBOSE set). */
void tap_collect(int level, const char *msg, void *arg);
/* One "ok N - name" line; on failure "not ok", with fmt as the reason. */
void tap_ok(int cond, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The same for a check whose name says all there is to say. */
void tap_check(int cond, const char *name);
/* "ok N - name # SKIP why": a check that cannot run here.  tools/test.sh
 * fails the suite on a skip that tests/SKIPS does not list. */
void tap_skip(const char *name, const char *why);
/* "Bail out! ..." and exit 1: the test cannot go on (a fixture failed). */
void tap_bail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
/* The plan, "1..N", printed before the first check: N fixed in the test,
 * never counted from what ran. */
void tap_plan(int n);
/* The exit status: 1 if a check failed or the checks run differ from the plan. */
int tap_done(void);
/* The environment variable the .sh wrapper sets; without it: Bail out! (1). */
const char *tap_env(const char *name);

#endif
