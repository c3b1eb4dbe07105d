/* TAP output and a log collector shared by the C unit tests. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "tests/unit/tap.h"

#define TAP_LOG_SIZE (1 << 20)

int tap_ntest, tap_nfail, tap_nplan;
char tap_log[TAP_LOG_SIZE];
size_t tap_loglen;

void tap_collect(int level, const char *msg, void *arg)
{
	int n;

	(void)arg;
	if (tap_loglen >= TAP_LOG_SIZE - 1)
		return;
	n = snprintf(tap_log + tap_loglen, TAP_LOG_SIZE - tap_loglen, "<%d>%s\n", level, msg);
	if (n > 0)
		tap_loglen += (size_t)n < TAP_LOG_SIZE - tap_loglen ? (size_t)n
								    : TAP_LOG_SIZE - tap_loglen - 1;
	if (getenv("T_VERBOSE") != NULL)
		fprintf(stderr, "log<%d> %s\n", level, msg);
}

void tap_ok(int cond, const char *name, const char *fmt, ...)
{
	va_list ap;

	tap_ntest++;
	printf("%sok %d - %s", cond ? "" : "not ", tap_ntest, name);
	if (!cond) {
		tap_nfail++;
		printf(" # ");
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
	}
	printf("\n");
	fflush(stdout);
}

void tap_check(int cond, const char *name)
{
	tap_ok(cond, name, "%s", "see above");
}

void tap_skip(const char *name, const char *why)
{
	tap_ntest++;
	printf("ok %d - %s # SKIP %s\n", tap_ntest, name, why);
	fflush(stdout);
}

void tap_bail(const char *fmt, ...)
{
	va_list ap;

	printf("Bail out! ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	exit(1);
}

const char *tap_env(const char *name)
{
	const char *v = getenv(name);

	if (v == NULL)
		tap_bail("%s not set: run this test through its .sh wrapper", name);
	return v;
}

void tap_plan(int n)
{
	tap_nplan = n;
	printf("1..%d\n", n);
	fflush(stdout);
}

int tap_done(void)
{
	if (tap_ntest != tap_nplan) {
		printf("# planned %d checks, ran %d\n", tap_nplan, tap_ntest);
		return 1;
	}
	return tap_nfail ? 1 : 0;
}
