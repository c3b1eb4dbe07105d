/* sched: the renewal and retry policy of the agent (see sched.h). */
#include "config.h"

#include <string.h>

#include "agent/sched.h"

/*
 * time_t is a signed integer of 32 or 64 bits on the systems we build for.
 * Arithmetic is done in int64_t, saturating, and the result clamped into
 * time_t's range, so that certificates with absurd dates (notAfter
 * 99991231235959Z, negative notBefore) cannot make a time wrap around into
 * "renew never" or "retry in a busy loop".
 */
#define T_MAX ((int64_t)(sizeof(time_t) == 4 ? INT32_MAX : INT64_MAX))
#define T_MIN (-T_MAX - 1)

/*
 * The retry cap is the time left until expiry divided by this.  The cap
 * then shrinks geometrically towards expiry, which takes
 * log(max/min) / log(D/(D-1)) attempts: 8 with D = 2 but 52 with D = 10,
 * which would spend some 64 attempts on a one-day CA outage that ends at
 * expiry.  tests/unit/test-sched.c holds every start of such an outage to
 * 30 attempts.
 */
#define RETRY_CAP_DIVISOR 2

/* A checkAfter longer than this many backoff_max is probably a broken CA;
 * with the defaults it still allows a day of manual approval. */
#define POLL_MAX_FACTOR 6

typedef struct {
	int64_t percent, permille, bmin, bmax;
} limits;

static int64_t clamp(int64_t v, int64_t lo, int64_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

static limits get_limits(const sched_policy *p)
{
	limits l;

	l.percent = clamp(p->renew_percent, 1, 99);
	l.permille = clamp(p->jitter_permille, 0, 1000);
	l.bmin = clamp(p->backoff_min, 1, SCHED_MAX_SECONDS);
	l.bmax = clamp(p->backoff_max, l.bmin, SCHED_MAX_SECONDS);
	return l;
}

static time_t to_time(int64_t t)
{
	return (time_t)clamp(t, T_MIN, T_MAX);
}

/* a + d for d >= 0, saturating. */
static int64_t add(int64_t a, int64_t d)
{
	return a > INT64_MAX - d ? INT64_MAX : a + d;
}

/* a - b for a >= b, saturating. */
static int64_t span(int64_t a, int64_t b)
{
	return b < 0 && a > INT64_MAX + b ? INT64_MAX : a - b;
}

/* v * num / den for v >= 0 and 0 <= num <= den, without overflow. */
static int64_t share(int64_t v, int64_t num, int64_t den)
{
	return v / den * num + v % den * num / den;
}

/*
 * The caller's seed may be a counter or a hostname hash rather than good
 * randomness; a bijective mixer (MurmurHash3's finaliser) spreads nearby
 * seeds over the whole window while keeping distinct seeds distinct.
 */
static uint32_t mix(uint32_t x)
{
	x ^= x >> 16;
	x *= 0x85ebca6bU;
	x ^= x >> 13;
	x *= 0xc2b2ae35U;
	x ^= x >> 16;
	return x;
}

/* floor(m * (j + 1) / 2^32): uniform in [0, j] for m uniform in 32 bits;
 * split in halves so that the product fits 64 bits for any j. */
static int64_t pick(uint32_t seed, int64_t j)
{
	uint64_t q = (uint64_t)j + 1, m = mix(seed);

	return (int64_t)((q >> 32) * m + (((q & 0xffffffffU) * m) >> 32));
}

void sched_policy_default(sched_policy *p)
{
	memset(p, 0, sizeof(*p));
	p->renew_percent = SCHED_DEFAULT_PERCENT;
	p->renew_before = 0;
	p->jitter_permille = SCHED_DEFAULT_JITTER_PERMILLE;
	p->backoff_min = SCHED_DEFAULT_BACKOFF_MIN;
	p->backoff_max = SCHED_DEFAULT_BACKOFF_MAX;
}

time_t sched_renew_time(const sched_policy *p, time_t not_before, time_t not_after, uint32_t seed)
{
	limits l = get_limits(p);
	int64_t nb = not_before, na = not_after, life, base, jitter;

	if (na <= nb) /* never valid: due at once */
		return to_time(na > INT64_MIN ? na - 1 : na);
	life = span(na, nb);
	if (p->renew_before <= 0)
		base = nb + share(life, l.percent, 100);
	else if (p->renew_before >= life)
		base = nb;
	else
		base = na - p->renew_before;
	/* base < na, so half the margin keeps base + jitter <= na - 1 */
	jitter = share(life, l.permille, 1000);
	if (jitter > span(na, base) / 2)
		jitter = span(na, base) / 2;
	return to_time(base + pick(seed, jitter));
}

time_t sched_retry_time(const sched_policy *p, time_t now, time_t not_after, int failures)
{
	limits l = get_limits(p);
	int64_t cap = l.bmax, delay = l.bmin;
	int i;

	if (not_after != 0 && not_after > now)
		cap = clamp(span(not_after, now) / RETRY_CAP_DIVISOR, l.bmin, l.bmax);
	/* stops once the cap is reached: at most ~32 rounds, whatever failures is */
	for (i = 1; i < failures && delay < cap; i++)
		delay = delay > cap / 2 ? cap : delay * 2;
	return to_time(add(now, delay));
}

time_t sched_poll_time(const sched_policy *p, time_t now, long check_after)
{
	limits l = get_limits(p);

	return to_time(add(now, clamp(check_after, 1, l.bmax * POLL_MAX_FACTOR)));
}

int sched_parse_duration(const char *s, long *ret_seconds)
{
	int64_t v = 0, unit = 1;

	if (*s < '0' || *s > '9')
		return -1;
	/* by hand: strtol would take leading blanks and signs */
	for (; *s >= '0' && *s <= '9'; s++) {
		v = v * 10 + (*s - '0');
		if (v > SCHED_MAX_SECONDS)
			return -1;
	}
	switch (*s) {
	case '\0':
		break;
	case 's':
		s++;
		break;
	case 'm':
		unit = 60;
		s++;
		break;
	case 'h':
		unit = 3600;
		s++;
		break;
	case 'd':
		unit = 86400;
		s++;
		break;
	default:
		return -1;
	}
	if (*s != '\0' || v == 0 || v > SCHED_MAX_SECONDS / unit)
		return -1;
	*ret_seconds = (long)(v * unit);
	return 0;
}

int sched_parse_renew_at(const char *s, sched_policy *p)
{
	size_t n = strlen(s), i;
	long v = 0;

	if (n == 0 || s[n - 1] != '%') {
		if (sched_parse_duration(s, &v) < 0)
			return -1;
		p->renew_before = v;
		return 0;
	}
	if (n == 1)
		return -1;
	for (i = 0; i + 1 < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
		if (v > 99)
			return -1;
	}
	if (v < 1)
		return -1;
	p->renew_percent = (int)v;
	p->renew_before = 0;
	return 0;
}
