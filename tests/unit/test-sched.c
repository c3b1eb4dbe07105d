/* Unit tests of the renewal and retry policy (agent/sched.c). */
#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/sched.h"
#include "tests/unit/tap.h"

#define DAY 86400L
/* an ordinary issuance time, so that the tests do not depend on the clock */
#define T0 ((time_t)1764200000)

/* xorshift32: the same 100 "enrollment seeds" on every run */
static uint32_t prng(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static int cmp_time(const void *a, const void *b)
{
	time_t x = *(const time_t *)a, y = *(const time_t *)b;

	return x < y ? -1 : x > y;
}

static void test_defaults(void)
{
	sched_policy p;

	memset(&p, 0x5a, sizeof(p));
	sched_policy_default(&p);
	tap_ok(p.renew_percent == 66 && p.renew_before == 0 && p.jitter_permille == 50 &&
		       p.backoff_min == 60 && p.backoff_max == 14400,
	       "/sched/defaults", "%d %ld %d %ld %ld", p.renew_percent, p.renew_before,
	       p.jitter_permille, p.backoff_min, p.backoff_max);
}

static void test_renew(void)
{
	sched_policy p;
	time_t na = T0 + 100 * DAY, r, lo, hi;
	int ok = 1;
	long life;
	uint32_t seed;

	sched_policy_default(&p);
	p.jitter_permille = 0;
	r = sched_renew_time(&p, T0, na, 12345);
	tap_ok(r == T0 + 66 * DAY, "/sched/renew/percent", "%lld days", (long long)(r - T0) / DAY);
	p.renew_percent = 50;
	r = sched_renew_time(&p, T0, na, 12345);
	tap_ok(r == T0 + 50 * DAY, "/sched/renew/percent-50", "got T0%+lld", (long long)(r - T0));
	p.renew_before = 30 * DAY;
	r = sched_renew_time(&p, T0, na, 12345);
	tap_ok(r == na - 30 * DAY, "/sched/renew/before", "got T0%+lld", (long long)(r - T0));
	p.renew_before = 101 * DAY;
	r = sched_renew_time(&p, T0, na, 12345);
	tap_ok(r == T0, "/sched/renew/before-longer-than-lifetime", "got T0%+lld",
	       (long long)(r - T0));
	p.renew_before = 100 * DAY;
	r = sched_renew_time(&p, T0, na, 12345);
	tap_ok(r == T0, "/sched/renew/before-equal-lifetime", "got T0%+lld", (long long)(r - T0));
	p.renew_before = 1;
	r = sched_renew_time(&p, T0, na, 12345);
	tap_ok(r == na - 1, "/sched/renew/before-one-second", "got na%+lld", (long long)(r - na));

	/* With jitter the renew_before case stays in the later half of its margin
	 * rather than running into notAfter (5% of a year is 18 days). */
	sched_policy_default(&p);
	p.renew_before = 3600;
	na = T0 + 365 * DAY;
	ok = 1;
	for (seed = 0; seed < 1000; seed++) {
		r = sched_renew_time(&p, T0, na, seed * 2654435761U);
		if (r < na - 3600 || r > na - 1800)
			ok = 0;
	}
	tap_ok(ok, "/sched/renew/before-jitter-within-half-margin", "na%+lld", (long long)(r - na));

	sched_policy_default(&p);
	r = sched_renew_time(&p, T0, T0, 7);
	tap_ok(r == T0 - 1, "/sched/renew/zero-lifetime", "got T0%+lld", (long long)(r - T0));
	r = sched_renew_time(&p, T0, T0 - DAY, 7);
	tap_ok(r == T0 - DAY - 1, "/sched/renew/negative-lifetime", "got T0%+lld",
	       (long long)(r - T0));

	/* short lifetimes, every seed pattern: never before notBefore, never at
	 * or after notAfter */
	ok = 1;
	seed = 1;
	for (life = 1; life <= 300 && ok; life++) {
		int k;

		for (k = 0; k < 20; k++) {
			p.renew_before = k % 2 ? 0 : k;
			r = sched_renew_time(&p, T0, T0 + life, prng(&seed));
			if (r < T0 || r > T0 + life - 1) {
				printf("# lifetime %ld renew_before %ld: T0%+lld\n", life,
				       p.renew_before, (long long)(r - T0));
				ok = 0;
			}
		}
	}
	tap_ok(ok, "/sched/renew/short-lifetimes-inside", "see above");

	if (sizeof(time_t) == 8) {
		/* the widest X.509 validity: year 0000 to 99991231235959Z */
		lo = (time_t)-62167219200LL;
		hi = (time_t)253402300799LL;
		sched_policy_default(&p);
		p.jitter_permille = 0;
		r = sched_renew_time(&p, lo, hi, 1);
		tap_ok(r == lo + (hi - lo) / 100 * 66 + (hi - lo) % 100 * 66 / 100,
		       "/sched/renew/widest-x509-validity", "got %lld", (long long)r);
		/* beyond what int64_t can subtract: saturates, stays inside */
		lo = (time_t)(INT64_MIN + 10);
		hi = (time_t)(INT64_MAX - 10);
		sched_policy_default(&p);
		r = sched_renew_time(&p, lo, hi, 0xffffffffU);
		tap_ok(r > lo && r < hi, "/sched/renew/huge-span-no-overflow", "got %lld",
		       (long long)r);
	}
}

static void test_jitter(void)
{
	sched_policy p;
	time_t na = T0 + 90 * DAY, base, jitter, t[100];
	uint32_t s = 0x2545f491U;
	int i, distinct = 1, inside = 1;

	sched_policy_default(&p);
	base = T0 + 90 * DAY * 66 / 100;
	jitter = 90 * DAY * 50 / 1000;
	for (i = 0; i < 100; i++) {
		t[i] = sched_renew_time(&p, T0, na, prng(&s));
		if (t[i] < base || t[i] > base + jitter)
			inside = 0;
	}
	qsort(t, 100, sizeof(t[0]), cmp_time);
	for (i = 1; i < 100; i++)
		if (t[i] != t[i - 1])
			distinct++;
	printf("# jitter window %lld s: %d distinct, spread %lld s (%lld%%)\n", (long long)jitter,
	       distinct, (long long)(t[99] - t[0]), (long long)((t[99] - t[0]) * 100 / jitter));
	tap_ok(inside, "/sched/jitter/inside-window", "[%lld, %lld] outside [base, base+%lld]",
	       (long long)(t[0] - base), (long long)(t[99] - base), (long long)jitter);
	tap_ok(distinct >= 90, "/sched/jitter/distinct", "%d distinct", distinct);
	tap_ok((t[99] - t[0]) * 10 >= jitter * 8, "/sched/jitter/spread", "spread %lld of %lld",
	       (long long)(t[99] - t[0]), (long long)jitter);
	tap_ok(sched_renew_time(&p, T0, na, 0xdeadbeefU) == sched_renew_time(&p, T0, na, 0xdeadbeefU),
	       "/sched/jitter/same-seed-same-time", "differs");
	/* a counter as seed still spreads: the seed is mixed */
	tap_ok(sched_renew_time(&p, T0, na, 1) != sched_renew_time(&p, T0, na, 2) &&
		       llabs((long long)(sched_renew_time(&p, T0, na, 1) -
					 sched_renew_time(&p, T0, na, 2))) > 60,
	       "/sched/jitter/neighbour-seeds-apart", "too close");
}

static void test_retry(void)
{
	sched_policy p;
	time_t now = T0, r;
	long want = 60;
	int f, ok = 1;

	sched_policy_default(&p);
	for (f = 1; f <= 8; f++, want *= 2) {
		r = sched_retry_time(&p, now, 0, f);
		if (r - now != want) {
			printf("# failures %d: %lld, want %ld\n", f, (long long)(r - now), want);
			ok = 0;
		}
	}
	tap_ok(ok, "/sched/retry/doubling", "see above");
	r = sched_retry_time(&p, now, 0, 9);
	tap_ok(r - now == 14400, "/sched/retry/cap-no-certificate", "%lld", (long long)(r - now));
	r = sched_retry_time(&p, now, now + 30 * DAY, 12);
	tap_ok(r - now == 14400, "/sched/retry/cap-far-from-expiry", "%lld", (long long)(r - now));
	r = sched_retry_time(&p, now, now + 3600, 12);
	tap_ok(r - now == 1800, "/sched/retry/cap-one-hour-left", "%lld", (long long)(r - now));
	r = sched_retry_time(&p, now, now + 600, 12);
	tap_ok(r - now == 300, "/sched/retry/cap-ten-minutes-left", "%lld", (long long)(r - now));
	r = sched_retry_time(&p, now, now + 90, 12);
	tap_ok(r - now == 60, "/sched/retry/cap-never-below-min", "%lld", (long long)(r - now));
	r = sched_retry_time(&p, now, now + 3600, 1);
	tap_ok(r - now == 60, "/sched/retry/first-near-expiry", "%lld", (long long)(r - now));
	r = sched_retry_time(&p, now, now, 12);
	tap_ok(r - now == 14400, "/sched/retry/expired-now", "%lld", (long long)(r - now));
	r = sched_retry_time(&p, now, now - DAY, 12);
	tap_ok(r - now == 14400, "/sched/retry/expired", "%lld", (long long)(r - now));
	r = sched_retry_time(&p, now, 0, 1000);
	tap_ok(r - now == 14400, "/sched/retry/overflow-1000", "%lld", (long long)(r - now));
	r = sched_retry_time(&p, now, now + 3600, INT_MAX);
	tap_ok(r - now == 1800, "/sched/retry/overflow-int-max", "%lld", (long long)(r - now));
	r = sched_retry_time(&p, now, 0, 0);
	tap_ok(r - now == 60 && sched_retry_time(&p, now, 0, -7) - now == 60,
	       "/sched/retry/no-failure-count-as-one", "%lld", (long long)(r - now));
	if (sizeof(time_t) == 8) {
		r = sched_retry_time(&p, (time_t)(INT64_MAX - 10), 0, 5);
		tap_ok(r == (time_t)INT64_MAX, "/sched/retry/end-of-time-saturates", "%lld",
		       (long long)r);
	}
	p.backoff_min = 0;
	p.backoff_max = -5;
	r = sched_retry_time(&p, now, 0, 1);
	tap_ok(r - now == 1 && sched_retry_time(&p, now, 0, 50) - now == 1,
	       "/sched/retry/bad-policy-clamped", "%lld", (long long)(r - now));
}

/*
 * A CA outage of one day beginning at start: the attempts the agent makes
 * before it ends (the one at start included).  *last: the last attempt.
 */
static int outage(const sched_policy *p, time_t start, time_t not_after, time_t *last)
{
	time_t now = start;
	int n = 0, failures = 1;

	while (now < start + DAY) {
		n++;
		*last = now;
		now = sched_retry_time(p, now, not_after, failures++);
	}
	return n;
}

static void test_budget(void)
{
	static const struct {
		const char *name;
		long left;
	} cases[] = {
		{ "30-days-left", 30 * DAY }, { "2-days-left", 2 * DAY },
		{ "1-day-left", DAY },	      { "2-hours-left", 7200 },
		{ "10-minutes-left", 600 },   { "expired", -3600 },
	};
	sched_policy p;
	char name[80];
	time_t last, worst_at = 0, t;
	long left;
	size_t i;
	int n, worst = 0, failures;

	sched_policy_default(&p);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		n = outage(&p, T0, T0 + cases[i].left, &last);
		printf("# budget: one-day outage, %s: %d attempts\n", cases[i].name, n);
		snprintf(name, sizeof(name), "/sched/retry/budget/%s", cases[i].name);
		tap_ok(n <= 30, name, "%d attempts", n);
	}
	/* and any start in between, every five minutes */
	for (left = 40 * DAY; left >= -DAY; left -= 300) {
		n = outage(&p, T0, T0 + left, &last);
		if (n > worst) {
			worst = n;
			worst_at = left;
		}
	}
	printf("# budget: worst start %lld s before expiry: %d attempts\n", (long long)worst_at,
	       worst);
	tap_ok(worst <= 30, "/sched/retry/budget/any-start", "%d attempts", worst);
	/* the tightened cap is what makes an attempt land in the last minutes
	 * of validity; a flat 4 h cap would leave the last 3.75 h unused */
	n = 0;
	for (t = T0, failures = 1; t < T0 + DAY; t = sched_retry_time(&p, t, T0 + DAY, failures++))
		if (t >= T0 + DAY - 600)
			n++;
	tap_ok(n >= 1, "/sched/retry/attempt-in-last-ten-minutes", "%d attempts there", n);
}

static void test_poll(void)
{
	sched_policy p;

	sched_policy_default(&p);
	tap_ok(sched_poll_time(&p, T0, 30) == T0 + 30, "/sched/poll/as-asked", "wrong");
	tap_ok(sched_poll_time(&p, T0, 0) == T0 + 1 && sched_poll_time(&p, T0, -5) == T0 + 1,
	       "/sched/poll/at-least-one-second", "wrong");
	tap_ok(sched_poll_time(&p, T0, 86400) == T0 + 86400 &&
		       sched_poll_time(&p, T0, 86401) == T0 + 86400 &&
		       sched_poll_time(&p, T0, LONG_MAX) == T0 + 86400,
	       "/sched/poll/at-most-six-backoff-max", "wrong");
}

static void test_parse(void)
{
	static const char *const bad_at[] = { "0%",  "100%", "abc", "-5d", "99999999999d", "",
					      "%",   "5x",   "5 d", " 5",  "+5",	   "5d5",
					      "0",   "0s",   "1.5h", "5%%", "-5%",	  "d",
					      "18251d", "99999999999999999999999" };
	static const struct {
		const char *s;
		long v;
	} good[] = { { "30d", 30 * DAY },	{ "12h", 12 * 3600 },	{ "90m", 5400 },
		     { "3600s", 3600 },		{ "3600", 3600 },	{ "4h", 14400 },
		     { "18250d", 18250 * DAY }, { "007s", 7 } };
	sched_policy p;
	long v;
	size_t i;
	int ok;

	sched_policy_default(&p);
	p.renew_before = 5;
	tap_ok(sched_parse_renew_at("75%", &p) == 0 && p.renew_percent == 75 &&
		       p.renew_before == 0,
	       "/sched/parse/percent", "%d %ld", p.renew_percent, p.renew_before);
	tap_ok(sched_parse_renew_at("1%", &p) == 0 && p.renew_percent == 1 &&
		       sched_parse_renew_at("99%", &p) == 0 && p.renew_percent == 99,
	       "/sched/parse/percent-bounds", "%d", p.renew_percent);
	tap_ok(sched_parse_renew_at("30d", &p) == 0 && p.renew_before == 30 * DAY &&
		       p.renew_percent == 99,
	       "/sched/parse/renew-before", "%ld", p.renew_before);
	ok = 1;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		v = -1;
		if (sched_parse_duration(good[i].s, &v) != 0 || v != good[i].v) {
			printf("# '%s': %ld, want %ld\n", good[i].s, v, good[i].v);
			ok = 0;
		}
	}
	tap_ok(ok, "/sched/parse/durations", "see above");
	ok = 1;
	for (i = 0; i < sizeof(bad_at) / sizeof(bad_at[0]); i++) {
		sched_policy q = p;

		v = -1;
		/* none of them is a duration either */
		if (sched_parse_renew_at(bad_at[i], &q) == 0 || memcmp(&q, &p, sizeof(p)) != 0 ||
		    sched_parse_duration(bad_at[i], &v) == 0 || v != -1) {
			printf("# '%s' accepted or policy changed\n", bad_at[i]);
			ok = 0;
		}
	}
	tap_ok(ok, "/sched/parse/rejected-untouched", "see above");
}

int main(void)
{
	tap_plan(48);
	test_defaults();
	test_renew();
	test_jitter();
	test_retry();
	test_budget();
	test_poll();
	test_parse();
	return tap_done();
}
