/*
 * Unit tests of secret_pin_generate (agent/pingen.c): length, alphabet,
 * refusals, and no modulo bias: with digits, a byte taken modulo 10 would
 * make 0..5 4% more frequent than 6..9; 200,000 digits tell that apart
 * from chance (the means of the two groups differ by 0.35% at one
 * standard deviation; the check allows 2%).
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "agent/agent.h"
#include "tests/unit/tap.h"

#define SAMPLES 200000

static void test_shape(void)
{
	char buf[33];
	size_t i;
	int ok = 1;

	tap_check(secret_pin_generate(buf, sizeof(buf), 32, NULL) == 0, "/pingen/digits/made");
	for (i = 0; i < 32; i++)
		ok &= buf[i] >= '0' && buf[i] <= '9';
	tap_check(ok && strlen(buf) == 32, "/pingen/digits/32-digits");
	tap_check(secret_pin_generate(buf, sizeof(buf), 20, "abc") == 0 &&
			  strspn(buf, "abc") == 20 && strlen(buf) == 20,
		  "/pingen/alphabet/only-its-characters");
	tap_check(secret_pin_generate(buf, sizeof(buf), 0, NULL) == 0 && buf[0] == '\0',
		  "/pingen/empty");
	tap_check(secret_pin_generate(buf, 8, 8, NULL) == -1, "/pingen/refuses-no-room-for-nul");
	tap_check(secret_pin_generate(buf, sizeof(buf), 4, "") == -1,
		  "/pingen/refuses-empty-alphabet");
}

static void test_uniform(void)
{
	static char buf[SAMPLES + 1];
	long count[10] = {0};
	double low = 0, high = 0;
	size_t i;

	if (secret_pin_generate(buf, sizeof(buf), SAMPLES, NULL) != 0)
		tap_bail("secret_pin_generate failed");
	for (i = 0; i < SAMPLES; i++)
		count[buf[i] - '0']++;
	for (i = 0; i < 6; i++)
		low += count[i] / 6.0;
	for (i = 6; i < 10; i++)
		high += count[i] / 4.0;
	tap_ok(low / high < 1.02 && high / low < 1.02, "/pingen/digits/no-modulo-bias",
	       "mean count of 0..5 %.0f, of 6..9 %.0f", low, high);
}

int main(void)
{
	tap_plan(7);
	test_shape();
	test_uniform();
	return tap_done();
}
