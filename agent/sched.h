/*
 * sched: when the long-running agent renews a certificate and when it tries
 * again after a failure.  Pure functions of their arguments (no clock, no
 * I/O, no hidden random state): a restarted agent computes the same times
 * again, and the tests can simulate days of outage in microseconds.
 */
#ifndef P11ENROLL_SCHED_H
#define P11ENROLL_SCHED_H

#include <stdint.h>
#include <time.h>

typedef struct {
	int renew_percent;   /* renew at this percentage of the lifetime after
				notBefore, 1..99 */
	long renew_before;   /* > 0: renew this many seconds before notAfter
				instead of renew_percent */
	int jitter_permille; /* random delay up to this many per mille of the
				lifetime, 0..1000 */
	long backoff_min;    /* first retry after a failure, seconds */
	long backoff_max;    /* longest retry delay, seconds */
} sched_policy;

#define SCHED_DEFAULT_PERCENT 66
#define SCHED_DEFAULT_JITTER_PERMILLE 50
#define SCHED_DEFAULT_BACKOFF_MIN 60L
#define SCHED_DEFAULT_BACKOFF_MAX 14400L
/* Longest duration the parsers accept: 50 years, which still fits a 32-bit
 * long and outlives any certificate worth renewing automatically. */
#define SCHED_MAX_SECONDS (86400L * 365 * 50)

void sched_policy_default(sched_policy *p);

/*
 * The functions below clamp out-of-range policy fields into the ranges
 * above (backoff_min to at least 1, backoff_max to at least backoff_min), so
 * that a bad policy gives an odd schedule, never a busy loop or overflow.
 */

/*
 * When to renew a certificate valid from not_before to not_after.  seed: a
 * random value the caller draws once per enrollment and keeps, so that a
 * restart gives the same time and a fleet with identical certificates
 * spreads out.  The jitter, derived from seed, is uniform in [0, J] with
 * J = lifetime * jitter_permille / 1000, but at most half of the time left
 * between the base time and not_after, so that a short renew_before keeps
 * its meaning.  A renew_before of the lifetime or more means not_before
 * (renew now).  Never after not_after - 1; with no lifetime (not_after <=
 * not_before) exactly not_after - 1, which is due already.
 */
time_t sched_renew_time(const sched_policy *p, time_t not_before, time_t not_after, uint32_t seed);

/*
 * When to try again after `failures` consecutive failures (values below 1
 * count as 1) at time now: backoff_min * 2^(failures-1), but at most a cap
 * that tightens as not_after approaches: clamp((not_after - now) / 2,
 * backoff_min, backoff_max).  After expiry, or with not_after == 0 (no
 * certificate yet), the cap is backoff_max.  Safe for any failure count.
 */
time_t sched_retry_time(const sched_policy *p, time_t now, time_t not_after, int failures);

/* When to poll again for a CA that answered "waiting" with check_after
 * seconds: check_after bounded to [1, backoff_max * 6]. */
time_t sched_poll_time(const sched_policy *p, time_t now, long check_after);

/*
 * "66%" (1..99) sets renew_percent and clears renew_before; a duration sets
 * renew_before.  -1 if s is neither; p is then untouched.
 */
int sched_parse_renew_at(const char *s, sched_policy *p);

/*
 * Decimal digits with an optional unit s, m, h or d ("30d", "12h", "90m",
 * "3600s", "3600") into 1..SCHED_MAX_SECONDS seconds; -1 otherwise (signs,
 * spaces, fractions, zero, too long), and ret_seconds is then untouched.
 */
int sched_parse_duration(const char *s, long *ret_seconds);

#endif
