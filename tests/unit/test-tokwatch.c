/*
 * Unit tests of the token watcher's and tok_init_token's refusals that
 * need no token (tests/tokwatch.sh has the rest, on SoftHSM2), and of
 * tok_label_pad, the 32-byte label with its UTF-8-safe cut.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "pkcs11/tok.h"
#include "tests/unit/tap.h"

static int padded(const char *label, const char *want, size_t kept)
{
	unsigned char out[32], exp[32];
	size_t n = tok_label_pad(label, out);

	memset(exp, ' ', sizeof(exp));
	memcpy(exp, want, strlen(want));
	return n == kept && memcmp(out, exp, sizeof(exp)) == 0;
}

static void test_label_pad(void)
{
	/* 31 ASCII bytes, then "é" (2 bytes): the cut falls inside it. */
	const char *long_e = "0123456789012345678901234567890\xc3\xa9";
	/* 30 bytes, then a 4-byte character (U+1F600). */
	const char *long_4 = "012345678901234567890123456789\xf0\x9f\x98\x80";

	tap_check(padded("badge-1", "badge-1", 7), "/tokwatch/label-pad/short-blank-padded");
	tap_check(padded("01234567890123456789012345678901", "01234567890123456789012345678901",
			 32),
		  "/tokwatch/label-pad/exactly-32");
	tap_check(padded(long_e, "0123456789012345678901234567890", 31),
		  "/tokwatch/label-pad/cut-before-2-byte-char");
	tap_check(padded(long_4, "012345678901234567890123456789", 30),
		  "/tokwatch/label-pad/cut-before-4-byte-char");
	tap_check(padded("", "", 0), "/tokwatch/label-pad/empty");
}

static void test_refusals(void)
{
	tok_watch *w = NULL;
	tok_watch_event e;
	char err[768];
	tok_rv rv;

	tok_watch_free(NULL);
	tap_check(tok_watch_new(NULL, NULL, 0, 0, NULL) == TOK_ERR_CONFIG,
		  "/tokwatch/new/null-ret-refused");
	rv = tok_watch_new(NULL, "pkcs11:model=x", 0, 0, &w);
	tap_ok(rv == TOK_ERR_CONFIG && strstr(tok_watch_errmsg(w), "none given") != NULL,
	       "/tokwatch/new/no-module-refused", "%s: %s", tok_strerror(rv), tok_watch_errmsg(w));
	/* A watcher that did not start refuses, rather than using no module. */
	rv = tok_watch_next(w, 0, &e);
	tap_ok(rv == TOK_ERR_MODULE && strstr(tok_watch_errmsg(w), "did not start") != NULL,
	       "/tokwatch/next/after-failed-new", "%s: %s", tok_strerror(rv), tok_watch_errmsg(w));
	tap_check(tok_watch_suspend(w) == TOK_OK && tok_watch_resume(w) == TOK_ERR_MODULE,
		  "/tokwatch/resume/after-failed-new");
	tok_watch_free(w);
	w = NULL;
	rv = tok_watch_new("/nonexistent/module.so", NULL, 0, 0, &w);
	tap_ok(rv == TOK_ERR_MODULE && strstr(tok_watch_errmsg(w), "No such file") != NULL,
	       "/tokwatch/new/missing-module", "%s: %s", tok_strerror(rv), tok_watch_errmsg(w));
	tok_watch_free(w);
	tap_check(tok_watch_next(NULL, 0, &e) == TOK_ERR_CONFIG && tok_watch_poll(NULL) ==
		  TOK_ERR_CONFIG && tok_watch_uses_events(NULL) == 0 &&
		  strcmp(tok_watch_errmsg(NULL), "") == 0,
		  "/tokwatch/null-watcher");

	rv = tok_init_token("/nonexistent/module.so", "pkcs11:token=", "so", NULL, "user", NULL,
			    err, sizeof(err));
	tap_ok(rv == TOK_ERR_CONFIG && strstr(err, "are all needed") != NULL,
	       "/tokinit/null-label-refused", "%s: %s", tok_strerror(rv), err);
	rv = tok_init_token(NULL, "pkcs11:token=", "so", "badge", "user", NULL, err, sizeof(err));
	tap_ok(rv == TOK_ERR_CONFIG && strstr(err, "none given") != NULL,
	       "/tokinit/no-module-refused", "%s: %s", tok_strerror(rv), err);
	rv = tok_init_token(NULL, "pkcs11:colour=red", "so", "badge", "user", NULL, err,
			    sizeof(err));
	tap_ok(rv == TOK_ERR_CONFIG && strstr(err, "parsing token URI") != NULL,
	       "/tokinit/bad-uri-refused", "%s: %s", tok_strerror(rv), err);
	/* "/" written in two bytes (overlong) */
	rv = tok_init_token(NULL, "pkcs11:token=", "so", "a\xc0\xaf"
			    "b",
			    "user", NULL, err, sizeof(err));
	tap_ok(rv == TOK_ERR_CONFIG && strstr(err, "not UTF-8") != NULL,
	       "/tokinit/overlong-utf8-label-refused", "%s: %s", tok_strerror(rv), err);
	rv = tok_init_token(NULL, "pkcs11:token=", "so", "a\xc2\x85", "user", NULL, err,
			    sizeof(err));
	tap_ok(rv == TOK_ERR_CONFIG && strstr(err, "control characters") != NULL,
	       "/tokinit/c1-control-label-refused", "%s: %s", tok_strerror(rv), err);
}

int main(void)
{
	tap_plan(16);
	test_label_pad();
	test_refusals();
	return tap_done();
}
