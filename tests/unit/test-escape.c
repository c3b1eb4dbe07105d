/*
 * agent_escape in its two modes: UTF-8 kept (data, and text for people in
 * a UTF-8 locale) and ASCII only (text for people in any other locale);
 * in both, control characters (C0, DEL, C1), bidi overrides and isolates,
 * and invalid or overlong UTF-8 become \xNN.  agent_escape_locale() and
 * agent_escape_shown() under LC_ALL=C.UTF-8 and LC_ALL=C.  Also the JSON
 * writer (jsonw.c) and DNs in UTF-8 (agent_name_text).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "agent/agent.h"
#include "tests/unit/tap.h"

#define PLAN 33

static const struct {
	const char *in, *utf8, *ascii, *name;
} cases[] = {
	{ "plain ASCII, \\ and \"", "plain ASCII, \\ and \"", "plain ASCII, \\ and \"", "ascii" },
	{ "Zo\xc3\xab \xc3\xa9", "Zo\xc3\xab \xc3\xa9", "Zo\\xC3\\xAB \\xC3\\xA9", "latin" },
	{ "\xe6\x97\xa5\xf0\x9f\x98\x80", "\xe6\x97\xa5\xf0\x9f\x98\x80",
	  "\\xE6\\x97\\xA5\\xF0\\x9F\\x98\\x80", "cjk-emoji" },
	{ "a\033[2Jb", "a\\x1B[2Jb", "a\\x1B[2Jb", "esc" },
	{ "l1\r\nl2\tx\x7f", "l1\\x0D\\x0Al2\\x09x\\x7F", "l1\\x0D\\x0Al2\\x09x\\x7F", "c0-del" },
	{ "\xc2\x80 \xc2\x9b", "\\xC2\\x80 \\xC2\\x9B", "\\xC2\\x80 \\xC2\\x9B", "c1" },
	/* U+00A0, the first character after the C1 controls, is kept */
	{ "\xc2\xa0", "\xc2\xa0", "\\xC2\\xA0", "nbsp" },
	/* U+202A..202E and U+2066..2069 escaped; U+2029 and U+206A kept */
	{ "a\xe2\x80\xaa" "b\xe2\x80\xae" "c\xe2\x81\xa6" "d\xe2\x81\xa9" "e",
	  "a\\xE2\\x80\\xAAb\\xE2\\x80\\xAEc\\xE2\\x81\\xA6d\\xE2\\x81\\xA9e",
	  "a\\xE2\\x80\\xAAb\\xE2\\x80\\xAEc\\xE2\\x81\\xA6d\\xE2\\x81\\xA9e", "bidi" },
	{ "\xe2\x80\xa9\xe2\x81\xaa", "\xe2\x80\xa9\xe2\x81\xaa",
	  "\\xE2\\x80\\xA9\\xE2\\x81\\xAA", "bidi-neighbours" },
	{ "\xc0\xaf \xe0\x80\xaf \xf0\x80\x80\xaf", "\\xC0\\xAF \\xE0\\x80\\xAF \\xF0\\x80\\x80\\xAF",
	  "\\xC0\\xAF \\xE0\\x80\\xAF \\xF0\\x80\\x80\\xAF", "overlong" },
	{ "\xff\xfe \xed\xa0\x80 \xf4\x90\x80\x80", "\\xFF\\xFE \\xED\\xA0\\x80 \\xF4\\x90\\x80\\x80",
	  "\\xFF\\xFE \\xED\\xA0\\x80 \\xF4\\x90\\x80\\x80", "invalid" },
	{ "cut \xe2\x82", "cut \\xE2\\x82", "cut \\xE2\\x82", "truncated-sequence" },
};

static void test_modes(void)
{
	char out[256], name[80];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(name, sizeof(name), "/escape/utf8/%s", cases[i].name);
		agent_escape_mode(cases[i].in, out, sizeof(out), 1);
		tap_ok(strcmp(out, cases[i].utf8) == 0, name, "got '%s'", out);
		snprintf(name, sizeof(name), "/escape/ascii/%s", cases[i].name);
		agent_escape_mode(cases[i].in, out, sizeof(out), 0);
		tap_ok(strcmp(out, cases[i].ascii) == 0, name, "got '%s'", out);
	}
	/* an escape is never cut by the buffer's end */
	agent_escape_mode("a\xc3\xa9", out, 5, 0);
	tap_ok(strcmp(out, "a") == 0, "/escape/ascii/truncate", "got '%s'", out);
}

/* The locale decides agent_escape_shown, never agent_escape. */
static void test_locale(void)
{
	static const char label[] = "Zo\xc3\xab \xc3\xa9";
	char out[64];

	setenv("LC_ALL", "C.UTF-8", 1);
	tap_check(agent_escape_locale() == 1, "/escape/locale/c-utf8-is-utf8");
	tap_check(strcmp(agent_escape_shown(label, out, sizeof(out)), label) == 0,
		  "/escape/locale/c-utf8-shown-kept");
	setenv("LC_ALL", "C", 1);
	tap_check(agent_escape_locale() == 0, "/escape/locale/c-is-not-utf8");
	tap_check(strcmp(agent_escape_shown(label, out, sizeof(out)), "Zo\\xC3\\xAB \\xC3\\xA9") == 0,
		  "/escape/locale/c-shown-escaped");
	tap_check(strcmp(agent_escape(label, out, sizeof(out)), label) == 0,
		  "/escape/locale/c-data-kept");
}

/* A DN in UTF-8, whatever its string types. */
static void test_name(void)
{
	X509_NAME *n = X509_NAME_new();
	char out[256];

	if (n == NULL ||
	    !X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)"Zo\xc3\xab",
					-1, -1, 0) ||
	    !X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC, (const unsigned char *)"Ex\033ample",
					-1, -1, 0))
		tap_bail("cannot make a name");
	agent_name_text(n, out, sizeof(out));
	tap_ok(strcmp(out, "/CN=Zo\xc3\xab/O=Ex\\x1Bample") == 0, "/escape/name/utf8", "got '%s'",
	       out);
	X509_NAME_free(n);
}

static void test_jsonw(void)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	agent_jw w;
	int r;

	if (f == NULL)
		tap_bail("open_memstream");
	agent_jw_init(&w, f);
	agent_jw_object(&w, NULL);
	agent_jw_str(&w, "s", "a\"\xe2\x80\xae");
	agent_jw_null(&w, "n");
	agent_jw_bool(&w, "b", 0);
	agent_jw_bool(&w, "u", -1);
	agent_jw_time(&w, "t", 1796320669, 1);
	agent_jw_time(&w, "t0", 0, 0);
	agent_jw_array(&w, "a");
	agent_jw_int(&w, NULL, 1);
	agent_jw_int(&w, NULL, -2);
	agent_jw_close(&w, ']');
	agent_jw_array(&w, "e");
	agent_jw_close(&w, ']');
	agent_jw_close(&w, '}');
	r = agent_jw_end(&w);
	fclose(f);
	tap_check(r == 0, "/jsonw/end");
	tap_ok(buf != NULL && strcmp(buf, "{\"s\": \"a\\\"\\\\xE2\\\\x80\\\\xAE\", \"n\": null, "
					  "\"b\": false, \"u\": null, \"t\": "
					  "1796320669, \"t0\": null, \"a\": [\n  1,\n  "
					  "-2\n], \"e\": []}\n") == 0,
	       "/jsonw/document", "got '%s'", buf != NULL ? buf : "(null)");
	free(buf);
}

int main(void)
{
	tap_plan(PLAN);
	test_modes();
	test_locale();
	test_name();
	test_jsonw();
	return tap_done();
}
