/*
 * Unit tests of the step result record (agent/result.c): what the child
 * writes parses back to the same facts, and the parser refuses every
 * record that is not exactly one of this version.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "agent/result.h"
#include "tests/unit/tap.h"

static int parses(const char *text, agent_result *r, char *why, size_t whylen)
{
	return agent_result_parse(text, strlen(text), r, why, whylen);
}

static void test_round_trip(void)
{
	agent_result a, b;
	char buf[AGENT_RESULT_MAX], why[200] = "";
	int n;

	agent_result_init(&a);
	memset(a.name, 'n', sizeof(a.name) - 1);
	a.name[sizeof(a.name) - 1] = '\0';
	a.exit_code = EXIT_OK;
	a.token = 1;
	snprintf(a.token_serial, sizeof(a.token_serial), "a1b2 \\x1B");
	memset(a.token_label, 'l', sizeof(a.token_label) - 1);
	snprintf(a.token_manufacturer, sizeof(a.token_manufacturer), "IBM");
	snprintf(a.token_model, sizeof(a.token_model), "SW   TPM");
	a.token_serial_unique = 0;
	a.cert = 1;
	snprintf(a.cert_serial, sizeof(a.cert_serial), "-7F00");
	a.not_before = -5;
	a.not_after = 1900000000;
	snprintf(a.pending, sizeof(a.pending), "p10cr");
	a.pending_saved = 1764200000;
	a.pending_check_after = 30;
	snprintf(a.transaction, sizeof(a.transaction), "00ff");
	memset(a.error, 'e', sizeof(a.error) - 1);
	a.error[sizeof(a.error) - 1] = '\0';
	a.unrevoked = 255;
	memset(a.unrevoked_error, 'u', sizeof(a.unrevoked_error) - 1);
	a.unrevoked_error[sizeof(a.unrevoked_error) - 1] = '\0';
	n = agent_result_format(&a, buf, sizeof(buf));
	tap_ok(n > 0 && agent_result_parse(buf, (size_t)n, &b, why, sizeof(why)) == 0 &&
		       memcmp(&a, &b, sizeof(a)) == 0,
	       "/result/round-trip", "%d bytes: %s", n, why);
	tap_ok(agent_result_format(&a, buf, 100) == -1, "/result/format-too-small", "fits?");

	agent_result_init(&a);
	a.exit_code = EXIT_PIN;
	snprintf(a.pin_locked, sizeof(a.pin_locked), "tpm");
	n = agent_result_format(&a, buf, sizeof(buf));
	tap_ok(n > 0 && strstr(buf, "\npin_locked tpm\n") != NULL &&
		       agent_result_parse(buf, (size_t)n, &b, why, sizeof(why)) == 0 &&
		       strcmp(b.pin_locked, "tpm") == 0,
	       "/result/pin-locked-round-trip", "%s %s", buf, why);

	agent_result_init(&a);
	a.exit_code = EXIT_ABSENT;
	a.token = 0;
	n = agent_result_format(&a, buf, sizeof(buf));
	tap_ok(n > 0 && strcmp(buf, "p11enroll-result 1\nexit 10\ncategory absent\ntoken absent\n"
				    "end\n") == 0,
	       "/result/format-absent", "%s", buf);
	tap_ok(strcmp(agent_result_category(EXIT_BUSY), "busy") == 0 &&
		       strcmp(agent_result_category(12), "unknown") == 0 &&
		       strcmp(agent_result_category(EXIT_INTERRUPTED), "interrupted") == 0 &&
		       strcmp(agent_result_category(129), "unknown") == 0 &&
		       strcmp(agent_result_category(-1), "unknown") == 0,
	       "/result/categories", "%s", agent_result_category(EXIT_BUSY));
}

static const struct {
	const char *name, *text, *why;
} bad[] = {
	{ "empty", "", "empty" },
	{ "version-2", "p11enroll-result 2\nexit 0\ncategory ok\nend\n", "not a version 1" },
	{ "no-newline", "p11enroll-result 1\nexit 0\ncategory ok\nend", "no newline" },
	{ "no-end", "p11enroll-result 1\nexit 0\ncategory ok\n", "no \"end\"" },
	{ "after-end", "p11enroll-result 1\nexit 0\ncategory ok\nend\nexit 1\n", "after \"end\"" },
	{ "unknown-key", "p11enroll-result 1\nexit 0\ncategory ok\nsecret x\nend\n", "unknown key" },
	{ "twice", "p11enroll-result 1\nexit 0\nexit 0\ncategory ok\nend\n", "given twice" },
	{ "no-value", "p11enroll-result 1\nexit\ncategory ok\nend\n", "not \"key value\"" },
	{ "no-exit", "p11enroll-result 1\ncategory ok\nend\n", "no exit code" },
	{ "category", "p11enroll-result 1\nexit 3\ncategory ok\nend\n", "does not match" },
	{ "exit-range", "p11enroll-result 1\nexit 256\ncategory unknown\nend\n", "invalid exit" },
	{ "exit-sign", "p11enroll-result 1\nexit +0\ncategory ok\nend\n", "invalid exit" },
	{ "exit-junk", "p11enroll-result 1\nexit 0x\ncategory ok\nend\n", "invalid exit" },
	{ "error-control", "p11enroll-result 1\nexit 3\ncategory token\nerror a\tb\nend\n",
	  "invalid error" },
	{ "error-cr", "p11enroll-result 1\nexit 3\ncategory token\nerror a\rstopped 1\nend\n",
	  "invalid error" },
	{ "transaction", "p11enroll-result 1\nexit 0\ncategory ok\ntransaction 0g\nend\n",
	  "invalid transaction" },
	{ "token", "p11enroll-result 1\nexit 0\ncategory ok\ntoken maybe\nend\n", "invalid token" },
	{ "token-serial-unique",
	  "p11enroll-result 1\nexit 0\ncategory ok\ntoken_serial_unique maybe\nend\n",
	  "invalid token_serial_unique" },
	{ "token-label-control", "p11enroll-result 1\nexit 0\ncategory ok\ntoken_label a\tb\nend\n",
	  "invalid token_label" },
	{ "token-model-long",
	  "p11enroll-result 1\nexit 0\ncategory ok\ntoken_model "
	  "mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm\nend\n",
	  "invalid token_model" },
	{ "cert-serial-lower",
	  "p11enroll-result 1\nexit 0\ncategory ok\ncert present\ncert_serial 0a\nnot_before 1\n"
	  "not_after 2\nend\n",
	  "invalid cert_serial" },
	{ "cert-without-validity",
	  "p11enroll-result 1\nexit 0\ncategory ok\ncert present\ncert_serial 0A\nend\n",
	  "without its serial or validity" },
	{ "facts-without-cert",
	  "p11enroll-result 1\nexit 0\ncategory ok\ncert none\nnot_after 2\nend\n",
	  "without a certificate" },
	{ "time-range",
	  "p11enroll-result 1\nexit 0\ncategory ok\ncert present\ncert_serial 0A\nnot_before "
	  "99999999999999\nnot_after 2\nend\n",
	  "invalid not_before" },
	{ "pending-kind",
	  "p11enroll-result 1\nexit 0\ncategory ok\npending rr\npending_saved 1\n"
	  "pending_check_after 1\nend\n",
	  "invalid pending" },
	{ "name-empty", "p11enroll-result 1\nname \nexit 0\ncategory ok\nend\n", "invalid name" },
	{ "name-control", "p11enroll-result 1\nname a\tb\nexit 0\ncategory ok\nend\n",
	  "invalid name" },
	{ "name-twice", "p11enroll-result 1\nname a\nname b\nexit 0\ncategory ok\nend\n",
	  "given twice" },
	{ "pending-partial", "p11enroll-result 1\nexit 0\ncategory ok\npending ir\nend\n",
	  "pending_saved and" },
	{ "check-after-negative",
	  "p11enroll-result 1\nexit 0\ncategory ok\npending ir\npending_saved 1\n"
	  "pending_check_after -1\nend\n",
	  "invalid pending_check_after" },
	{ "unrevoked-0", "p11enroll-result 1\nexit 0\ncategory ok\nunrevoked 0\nend\n",
	  "invalid unrevoked" },
	{ "unrevoked-range", "p11enroll-result 1\nexit 0\ncategory ok\nunrevoked 256\nend\n",
	  "invalid unrevoked" },
	{ "unrevoked-error-alone",
	  "p11enroll-result 1\nexit 0\ncategory ok\nunrevoked_error no\nend\n",
	  "unrevoked_error without unrevoked" },
	{ "unrevoked-error-empty",
	  "p11enroll-result 1\nexit 6\ncategory rejected\nunrevoked 6\nunrevoked_error \nend\n",
	  "invalid unrevoked_error" },
	{ "unrevoked-error-control",
	  "p11enroll-result 1\nexit 6\ncategory rejected\nunrevoked 6\nunrevoked_error a\x1b"
	  "b\nend\n",
	  "invalid unrevoked_error" },
	{ "pin-locked-kind", "p11enroll-result 1\nexit 4\ncategory pin\npin_locked card\nend\n",
	  "invalid pin_locked" },
	{ "pin-locked-not-exit-4",
	  "p11enroll-result 1\nexit 3\ncategory token\npin_locked tpm\nend\n",
	  "pin_locked with exit 3" },
};

static void test_refused(void)
{
	agent_result r;
	char why[200], big[AGENT_RESULT_MAX + 10];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char name[64];

		why[0] = '\0';
		snprintf(name, sizeof(name), "/result/refused/%s", bad[i].name);
		tap_ok(parses(bad[i].text, &r, why, sizeof(why)) == -1 &&
			       strstr(why, bad[i].why) != NULL,
		       name, "why: %s", why);
	}
	static const char nul[] = "p11enroll-result 1\nexit 0\0\ncategory ok\nend\n";

	tap_ok(agent_result_parse(nul, sizeof(nul) - 1, &r, why, sizeof(why)) == -1 &&
		       strstr(why, "NUL") != NULL,
	       "/result/refused/nul", "why: %s", why);
	memset(big, 'x', sizeof(big));
	tap_ok(agent_result_parse(big, sizeof(big), &r, why, sizeof(why)) == -1 &&
		       strstr(why, "longer than") != NULL,
	       "/result/refused/too-long", "why: %s", why);
}

/* check NAME...: records one after the other, taken as they come. */
static void test_sequence(void)
{
	static char buf[3 * AGENT_RESULT_MAX], big[AGENT_RESULT_MAX + 10];
	agent_result a, r;
	char why[200] = "";
	size_t len = 0, off = 0, used = 0, first = 0;
	int n, i, got = 0, ok = 1;
	const char *names[] = { "e1", "e2", "e3" };

	for (i = 0; i < 3; i++) {
		agent_result_init(&a);
		snprintf(a.name, sizeof(a.name), "%s", names[i]);
		a.exit_code = i == 1 ? EXIT_TOKEN : EXIT_OK;
		a.token = 1;
		n = agent_result_format(&a, buf + len, sizeof(buf) - len);
		if (n < 0)
			ok = 0;
		else
			len += (size_t)n;
		if (i == 0)
			first = len;
	}
	/* half of the first record: not yet */
	tap_ok(ok && agent_result_next(buf, first / 2, &used, &r, why, sizeof(why)) == 0,
	       "/result/sequence/partial-waits", "why: %s", why);
	while (ok && (n = agent_result_next(buf + off, len - off, &used, &r, why, sizeof(why))) == 1) {
		ok = got < 3 && strcmp(r.name, names[got]) == 0 &&
		     r.exit_code == (got == 1 ? EXIT_TOKEN : EXIT_OK);
		got++;
		off += used;
	}
	tap_ok(ok && got == 3 && off == len && n == 0, "/result/sequence/in-order",
	       "%d records, %zu of %zu bytes: %s", got, off, len, why);
	memcpy(buf + first, "p11enroll-result 1\nexit 0\ncategory ok\nend\nx", 44);
	tap_ok(agent_result_next(buf, first + 44, &used, &r, why, sizeof(why)) == 1 &&
		       agent_result_next(buf + first, 44, &used, &r, why, sizeof(why)) == 1 &&
		       r.name[0] == '\0' &&
		       agent_result_next(buf + first + used, 44 - used, &used, &r, why,
					 sizeof(why)) == 0,
	       "/result/sequence/nameless-and-partial", "why: %s", why);
	memcpy(buf, "p11enroll-result 1\nexit 0\ncategory nope\nend\n", 45);
	tap_ok(agent_result_next(buf, 45, &used, &r, why, sizeof(why)) == -1 &&
		       strstr(why, "does not match") != NULL,
	       "/result/sequence/invalid", "why: %s", why);
	memset(big, 'x', sizeof(big));
	tap_ok(agent_result_next(big, AGENT_RESULT_MAX, &used, &r, why, sizeof(why)) == 0 &&
		       agent_result_next(big, sizeof(big), &used, &r, why, sizeof(why)) == -1 &&
		       strstr(why, "longer than") != NULL,
	       "/result/sequence/bounded", "why: %s", why);
}

int main(void)
{
	tap_plan(49);
	test_round_trip();
	test_refused();
	test_sequence();
	return tap_done();
}
