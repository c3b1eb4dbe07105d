/* Unit tests of the agent's parsers: configuration, names, secret sources,
 * pending transaction files. */
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/x509v3.h>

#include "agent/agent-cmd.h"
#include "agent/agent.h"
#include "agent/track.h"
#include "tests/unit/tap.h"

static char tmpdir[] = "/tmp/p11enroll-unit.XXXXXX";

static const char *write_file(const char *name, const char *content)
{
	static char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	if (f == NULL)
		abort();
	fputs(content, f);
	fclose(f);
	return path;
}

static void test_subject(void)
{
	char err[256] = "", buf[256];
	X509_NAME *n = conf_parse_subject("/CN=a\\/b/O=Example Org", err, sizeof(err));

	tap_check(n != NULL && X509_NAME_entry_count(n) == 2 &&
		       X509_NAME_get_text_by_NID(n, NID_commonName, buf, sizeof(buf)) == 3 &&
		       strcmp(buf, "a/b") == 0,
	       "/conf/subject/escaped-slash");
	X509_NAME_free(n);
	n = conf_parse_subject("CN=x", err, sizeof(err));
	tap_check(n == NULL && strstr(err, "must start with '/'") != NULL, "/conf/subject/no-slash");
	n = conf_parse_subject("/XX=1", err, sizeof(err));
	tap_check(n == NULL && strstr(err, "'XX' is unknown") != NULL, "/conf/subject/unknown-type");
	n = conf_parse_subject("/CN", err, sizeof(err));
	tap_check(n == NULL && strstr(err, "not TYPE=value") != NULL, "/conf/subject/no-value");
	n = conf_parse_subject("/", err, sizeof(err));
	tap_check(n == NULL && strstr(err, "empty") != NULL, "/conf/subject/empty");
}

static void test_sans(void)
{
	char err[256] = "";
	GENERAL_NAMES *g = conf_parse_sans("DNS:a.example, email:x@example.org, IP:192.0.2.1", err,
					   sizeof(err));

	tap_check(g != NULL && sk_GENERAL_NAME_num(g) == 3, "/conf/san/three-names");
	GENERAL_NAMES_free(g);
	g = conf_parse_sans("bogus:x", err, sizeof(err));
	tap_check(g == NULL && strstr(err, "OpenSSL's syntax") != NULL, "/conf/san/bad");
	/* Names that refer to a configuration section or to the subject:
	 * OpenSSL 3.0 read through a NULL context for these (fuzz-conf). */
	g = conf_parse_sans("URI:http://x, dirName:sect", err, sizeof(err));
	tap_check(g == NULL && strstr(err, "dirName") != NULL, "/conf/san/dirname-refused");
	g = conf_parse_sans("email:copy", err, sizeof(err));
	tap_check(g == NULL && strstr(err, "OpenSSL's syntax") != NULL, "/conf/san/email-copy-refused");
	g = conf_parse_sans("otherName:1.2.3.4;SEQUENCE:sect", err, sizeof(err));
	tap_check(g == NULL && strstr(err, "OpenSSL's syntax") != NULL,
	       "/conf/san/othername-section-refused");
	g = conf_parse_sans("otherName:1.3.6.1.4.1.311.20.2.3;UTF8:u@example.org, RID:1.2.3", err,
			    sizeof(err));
	tap_check(g != NULL && sk_GENERAL_NAME_num(g) == 2, "/conf/san/othername-utf8");
	GENERAL_NAMES_free(g);
}

static void test_key_type(void)
{
	int alg = 0, bits = 0;

	tap_check(conf_parse_key_type("ec:P-384", &alg, &bits) == 0 && alg == 1 && bits == 384,
	       "/conf/key-type/p384");
	tap_check(conf_parse_key_type("RSA:3072", &alg, &bits) == 0 && alg == 2 && bits == 3072,
	       "/conf/key-type/rsa3072-any-case");
	tap_check(conf_parse_key_type("rsa:1024", &alg, &bits) < 0, "/conf/key-type/rsa1024-refused");
	tap_check(conf_parse_bool("Yes") == 1 && conf_parse_bool("off") == 0 &&
		       conf_parse_bool("maybe") == -1,
	       "/conf/bool");
}

static void test_secret(void)
{
	char err[256] = "";
	secret *s = NULL;
	char big[5000];
	int fds[2];

	write_file("pin", "1234\nsecond line\n");
	char src[600];
	snprintf(src, sizeof(src), "file:%s/pin", tmpdir);
	tap_check(secret_read(src, "PIN", &s, err, sizeof(err)) == 0 && s->len == 4 &&
		       strcmp(s->buf, "1234") == 0,
	       "/secret/file/first-line");
	secret_free(s);
	s = NULL;
	write_file("crlf", "abc\r\n");
	snprintf(src, sizeof(src), "file:%s/crlf", tmpdir);
	tap_check(secret_read(src, "PIN", &s, err, sizeof(err)) == 0 && strcmp(s->buf, "abc") == 0,
	       "/secret/file/crlf");
	secret_free(s);
	s = NULL;
	write_file("empty", "\n");
	snprintf(src, sizeof(src), "file:%s/empty", tmpdir);
	tap_check(secret_read(src, "PIN", &s, err, sizeof(err)) < 0 && strstr(err, "empty") != NULL,
	       "/secret/file/empty-refused");
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	write_file("big", big);
	snprintf(src, sizeof(src), "file:%s/big", tmpdir);
	tap_check(secret_read(src, "PIN", &s, err, sizeof(err)) < 0 && strstr(err, "longer") != NULL,
	       "/secret/file/too-long");
	tap_check(secret_read("file:/nonexistent/p", "PIN", &s, err, sizeof(err)) < 0 &&
		       strstr(err, "/nonexistent/p") != NULL,
	       "/secret/file/missing");
	setenv("UNIT_SECRET", "s3cr3t", 1);
	tap_check(secret_read("env:UNIT_SECRET", "secret", &s, err, sizeof(err)) == 0 &&
		       strcmp(s->buf, "s3cr3t") == 0,
	       "/secret/env");
	secret_free(s);
	s = NULL;
	unsetenv("UNIT_SECRET");
	tap_check(secret_read("env:UNIT_SECRET", "secret", &s, err, sizeof(err)) < 0,
	       "/secret/env/unset");
	if (pipe(fds) == 0) {
		if (write(fds[1], "fdpin\n", 6) != 6)
			abort();
		close(fds[1]);
		snprintf(src, sizeof(src), "fd:%d", fds[0]);
		tap_check(secret_read(src, "PIN", &s, err, sizeof(err)) == 0 &&
			       strcmp(s->buf, "fdpin") == 0,
		       "/secret/fd");
		secret_free(s);
		s = NULL;
	}
	tap_check(secret_read("fd:x", "PIN", &s, err, sizeof(err)) < 0, "/secret/fd/bad-number");
	tap_check(secret_read("hunter2", "PIN", &s, err, sizeof(err)) < 0 &&
		       strstr(err, "hunter2") == NULL,
	       "/secret/literal-refused-not-echoed");
	secret_free(NULL);
}

static void test_conf(void)
{
	conf_enrollment e;
	char err[512] = "";
	const char *path = write_file("a.conf", "server = http://default\nlabel = dflt\n"
						"token = pkcs11:\ntrusted = /anchors.pem\n"
						"[one]\nlabel = one\ntimeout = 7\n"
						"[two]\nimplicit_confirm = yes\n");

	conf_enrollment_init(&e);
	e.label = strdup("cli");
	tap_check(conf_load(path, "one", &e, err, sizeof(err)) == 0 && strcmp(e.label, "cli") == 0 &&
		       strcmp(e.server, "http://default") == 0 && e.timeout == 7,
	       "/conf/load/cli-wins-defaults-apply");
	conf_enrollment_clear(&e);
	tap_check(conf_load(path, "two", &e, err, sizeof(err)) == 0 &&
		       strcmp(e.label, "dflt") == 0 && e.implicit_confirm == 1,
	       "/conf/load/default-section");
	conf_enrollment_clear(&e);
	tap_check(conf_load(path, NULL, &e, err, sizeof(err)) < 0 &&
		       strstr(err, "several") != NULL,
	       "/conf/load/must-name-one");
	conf_enrollment_clear(&e);
	tap_check(conf_load(path, "default", &e, err, sizeof(err)) < 0,
	       "/conf/load/default-is-not-an-enrollment");
	conf_enrollment_clear(&e);
	path = write_file("b.conf", "[x]\ntimeout = -3\n");
	tap_check(conf_load(path, NULL, &e, err, sizeof(err)) < 0 &&
		       strstr(err, ":2: [x] timeout: '-3' is not a number of seconds") != NULL,
	       "/conf/load/negative-timeout");
	conf_enrollment_clear(&e);
	path = write_file("c.conf", "[x]\nmax_response_size = 10\n");
	tap_check(conf_load(path, NULL, &e, err, sizeof(err)) < 0, "/conf/load/tiny-max-response");
	conf_enrollment_clear(&e);
	unsetenv("P11ENROLL_CONF");
	if (access(conf_default_path(), F_OK) != 0)
		tap_check(conf_load(NULL, NULL, &e, err, sizeof(err)) == 0,
		       "/conf/load/absent-default-file-ok");
	conf_enrollment_clear(&e);
	setenv("P11ENROLL_CONF", "/nonexistent.conf", 1);
	tap_check(conf_load(NULL, NULL, &e, err, sizeof(err)) < 0 &&
		       strstr(err, "/nonexistent.conf") != NULL,
	       "/conf/load/absent-env-file-error");
	unsetenv("P11ENROLL_CONF");
	conf_enrollment_clear(&e);
	tap_check(conf_load("/nonexistent.conf", NULL, &e, err, sizeof(err)) < 0,
	       "/conf/load/absent-explicit-file-error");
	conf_enrollment_clear(&e);
}

/* Enrollments point at one copy of each value (conf_pool), which outlives
 * the file; a copy owns its strings. */
static void test_conf_pool(void)
{
	const char *path = write_file("pool.conf", "server = http://shared\n"
						   "[a]\nlabel = x\ntoken = pkcs11:token=t\n"
						   "[b]\nlabel = y\ntoken = pkcs11:token=t\n");
	conf_diag d = { 0 };
	conf_file *cf = NULL;
	conf_enrollment ea, eb, c;
	conf_pool *p;
	const char *x, *big;
	char err[512], *long_text, name[32];
	int ok = 1, i;

	conf_enrollment_init(&ea);
	conf_enrollment_init(&eb);
	conf_enrollment_init(&c);
	tap_check(conf_file_load(path, 0, &cf, &d) == 0 &&
		       conf_file_get(cf, "a", &ea, err, sizeof(err)) == 0 &&
		       conf_file_get(cf, "b", &eb, err, sizeof(err)) == 0 && ea.server == eb.server &&
		       ea.token == eb.token && strcmp(ea.label, "x") == 0 &&
		       strcmp(eb.label, "y") == 0,
	       "/conf/pool/equal-values-shared");
	conf_file_free(cf);
	tap_check(ea.server != NULL && strcmp(ea.server, "http://shared") == 0 &&
		       strcmp(eb.token, "pkcs11:token=t") == 0,
	       "/conf/pool/outlives-file");
	tap_check(conf_enrollment_copy(&c, &ea) == 0 && c.server != ea.server &&
		       strcmp(c.server, ea.server) == 0,
	       "/conf/pool/copy-owns");
	conf_enrollment_clear(&ea);
	conf_enrollment_clear(&eb);
	tap_check(strcmp(c.label, "x") == 0, "/conf/pool/copy-outlives");
	conf_enrollment_clear(&c);
	conf_diag_clear(&d);

	/* many strings, one longer than a block, each found again */
	p = conf_pool_new();
	long_text = malloc(200000);
	if (p == NULL || long_text == NULL)
		abort();
	memset(long_text, 'z', 199999);
	long_text[199999] = '\0';
	x = conf_pool_get0(p, "x");
	big = conf_pool_get0(p, long_text);
	for (i = 0; i < 20000 && ok; i++) {
		snprintf(name, sizeof(name), "e-%d", i);
		ok = conf_pool_get0(p, name) != NULL;
	}
	for (i = 0; i < 20000 && ok; i++) {
		const char *again;

		snprintf(name, sizeof(name), "e-%d", i);
		again = conf_pool_get0(p, name);
		ok = again != NULL && strcmp(again, name) == 0 && again == conf_pool_get0(p, name);
	}
	tap_check(ok && x != NULL && x == conf_pool_get0(p, "x") && big != NULL &&
		       strcmp(big, long_text) == 0 && big == conf_pool_get0(p, long_text),
	       "/conf/pool/intern");
	free(long_text);
	conf_pool_free(p);
}

/* A client's head of the file: the enrollments' names, and of the
 * sections only the keys that decide the control socket. */
static void test_conf_head(void)
{
	const char *path = write_file("head.conf", "state_dir = /var/tmp/h\nserver = http://x\n"
						   "[zz]\nretry_min = soon\nno_such_key = 1\n"
						   "[aa]\nlabel = first\n"
						   "[mm]\nlabel = m\n");
	conf_diag d = { 0 };
	conf_file *cf = NULL;
	conf_enrollment e;
	char err[512];

	conf_enrollment_init(&e);
	tap_check(conf_file_load_head(path, &cf, &d) == 0 && conf_file_count(cf) == 3 &&
		       strcmp(conf_file_name(cf, 0), "aa") == 0 &&
		       conf_file_pick(cf, "zz", err, sizeof(err)) != NULL &&
		       conf_file_pick(cf, "nosuch", err, sizeof(err)) == NULL,
	       "/conf/head/names-other-sections-unchecked");
	tap_check(cf != NULL && conf_file_get(cf, "aa", &e, err, sizeof(err)) == 0 &&
		       e.state_dir != NULL && strcmp(e.state_dir, "/var/tmp/h") == 0 &&
		       e.label == NULL && e.server == NULL,
	       "/conf/head/socket-keys-only");
	conf_enrollment_clear(&e);
	conf_file_free(cf);
	conf_diag_clear(&d);
}

/* conf_file_load over text: the error count and the diagnostics. */
static int diag_of(const char *name, const char *text, conf_diag *d)
{
	conf_file *cf = NULL;
	const char *path = write_file(name, text);
	int rc;

	memset(d, 0, sizeof(*d));
	rc = conf_file_load(path, CONF_CHECK_ACCESS, &cf, d);
	if (rc == 0)
		rc = conf_file_check_required(cf, NULL, d);
	conf_file_free(cf);
	return rc;
}

static int said(const conf_diag *d, const char *text)
{
	if (d->text != NULL && strstr(d->text, text) != NULL)
		return 1;
	printf("# '%s' not in:\n# %s\n", text, d->text != NULL ? d->text : "(nothing)");
	return 0;
}

/* The whole file is checked at load, every error said at once with its
 * line, section and key. */
static void test_conf_check(void)
{
	static const char req[] = "token = pkcs11:token=t\nlabel = l\nserver = http://ca\n"
				  "trusted = /anchors.pem\n";
	char text[2048];
	conf_diag d;

	snprintf(text, sizeof(text),
		 "%s[a]\nkey_type = ec:P-521\nkeepold = yes\n# comment\ntimeout = 1\n"
		 "timeout = 2\nhook_success = notify-send done\ncontrol_socket = /run/s\n"
		 "[b]\nretry_min = 5h\nretry_max = 1h\n",
		 req);
	tap_check(diag_of("k1.conf", text, &d) < 0 && d.errors == 5 &&
		       said(&d, "k1.conf:6: [a] key_type: 'ec:P-521' is not supported") &&
		       said(&d, "k1.conf:7: [a] keepold: unknown key (did you mean 'keep_old'?)") &&
		       said(&d, "k1.conf:10: [a] timeout: set again (first on line 9)") &&
		       said(&d, "k1.conf:11: [a] hook_success: 'notify-send' is not an absolute") &&
		       said(&d, "k1.conf:12: [a] control_socket: is a setting of the whole agent"),
	       "/conf/check/every-error-at-once");
	conf_diag_clear(&d);
	snprintf(text, sizeof(text), "%s[a]\n[b]\nretry_min = 5h\nretry_max = 1h\n", req);
	tap_check(diag_of("k2.conf", text, &d) < 0 && d.errors == 1 &&
		       said(&d, "[b] retry_min 5h is longer than retry_max 1h"),
	       "/conf/check/retry-order");
	conf_diag_clear(&d);
	tap_check(diag_of("k3.conf", "label = l\n[a]\ntoken = pkcs11:\n[b]\nserver = http://x\n",
		       &d) < 0 &&
		       d.errors == 4 && said(&d, "[a] lacks server, which every enrollment needs") &&
		       said(&d, "[a] lacks trusted") && said(&d, "[b] lacks token") &&
		       said(&d, "[b] lacks trusted"),
	       "/conf/check/required-per-enrollment");
	conf_diag_clear(&d);
	/* a continued line is one key; the next key's line is counted right */
	snprintf(text, sizeof(text),
		 "%s[a]\nsubject = /CN=a\\\n/O=b\nkey_id = 0g\nkey_id = 01\n", req);
	/* (NCONF keeps only the last of two: the duplicate is the error) */
	tap_check(diag_of("k4.conf", text, &d) < 0 && d.errors == 1 &&
		       said(&d, "k4.conf:9: [a] key_id: set again (first on line 8)"),
	       "/conf/check/continuation-lines");
	conf_diag_clear(&d);
	snprintf(text, sizeof(text), "%skey_id = 01\n[a]\nstate_dir = var/lib\n", req);
	tap_check(diag_of("k5.conf", text, &d) < 0 && d.errors == 2 &&
		       said(&d, "k5.conf:5: [default] key_id: belongs to one enrollment") &&
		       said(&d, "k5.conf:7: [a] state_dir: 'var/lib' is not an absolute path"),
	       "/conf/check/scope-and-absolute");
	conf_diag_clear(&d);
	unsetenv("P11E_UNSET_FOR_TEST");
	snprintf(text, sizeof(text),
		 "%s[a]\npin_source = file:%s/no-pin\nsecret_source = env:P11E_UNSET_FOR_TEST\n"
		 "[b]\npin_source = 1234\ntoken = pkcs11:token=x;pin-value=1234\n",
		 req, tmpdir);
	tap_check(diag_of("k6.conf", text, &d) < 0 && d.errors == 4 &&
		       said(&d, "[a] pin_source: cannot read") &&
		       said(&d, "variable P11E_UNSET_FOR_TEST is not set") &&
		       said(&d, "[b] pin_source: not a source") &&
		       said(&d, "[b] token: the URI carries a PIN") && strstr(d.text, "1234") == NULL,
	       "/conf/check/secret-sources-never-echoed");
	conf_diag_clear(&d);
	snprintf(text, sizeof(text), "%s[a]\ntoken = pkcs11:token=x;colour=red\n", req);
	tap_check(diag_of("k7.conf", text, &d) < 0 && said(&d, "[a] token: not a valid pkcs11: URI"),
	       "/conf/check/token-uri");
	conf_diag_clear(&d);
	snprintf(text, sizeof(text), "%s[a]\n[b]\nlabel = m\n", req);
	tap_check(diag_of("k8.conf", text, &d) == 0 && d.errors == 0 && d.text == NULL,
	       "/conf/check/clean-file");
	conf_diag_clear(&d);
}

static void test_cmp_settings(void)
{
	conf_enrollment e;
	char err[512] = "";
	int r = -1, nid = 0;
	const char *path = write_file(
	    "cmp.conf", "keep_old = yes\n[r]\nsigner = dev id\nprotection_cert = c.pem\n"
		        "protection_key = k.pem\ncert_profile = tls\nsender = /CN=me\n"
		        "recipient = /CN=ca\npbm_owf = sha384\npbm_mac = hmac-sha512\n"
		        "pbm_iterations = 50000\nunprotected_errors = yes\nreason = superseded\n"
		        "delete_revoked = true\nuse_template = 1\n");

	conf_enrollment_init(&e);
	tap_check(e.keep_old == CONF_FIELD_UNSET && e.pbm_iterations == CONF_FIELD_UNSET &&
		       e.use_template == CONF_FIELD_UNSET,
	       "/conf/cmp-settings/unset-by-default");
	e.pbm_iterations = 200; /* the command line wins */
	tap_check(conf_load(path, "r", &e, err, sizeof(err)) == 0 && e.keep_old == 1 &&
		       strcmp(e.signer, "dev id") == 0 && strcmp(e.protection_cert, "c.pem") == 0 &&
		       strcmp(e.protection_key, "k.pem") == 0 && strcmp(e.cert_profile, "tls") == 0 &&
		       strcmp(e.sender, "/CN=me") == 0 && strcmp(e.recipient, "/CN=ca") == 0 &&
		       strcmp(e.pbm_owf, "sha384") == 0 && strcmp(e.pbm_mac, "hmac-sha512") == 0 &&
		       e.pbm_iterations == 200 && e.unprotected_errors == 1 &&
		       strcmp(e.reason, "superseded") == 0 && e.delete_revoked == 1 &&
		       e.use_template == 1,
	       "/conf/cmp-settings/every-key");
	if (err[0] != '\0')
		printf("# %s\n", err);
	conf_enrollment_clear(&e);
	path = write_file("cmp-b.conf", "[r]\npbm_iterations = 99\n");
	tap_check(conf_load(path, NULL, &e, err, sizeof(err)) < 0 &&
		       strstr(err, "'99' is not a number from 100 to 100000") != NULL,
	       "/conf/cmp-settings/iterations-too-few");
	conf_enrollment_clear(&e);
	path = write_file("cmp-c.conf", "[r]\npbm_iterations = 100001\n");
	tap_check(conf_load(path, NULL, &e, err, sizeof(err)) < 0,
	       "/conf/cmp-settings/iterations-too-many");
	conf_enrollment_clear(&e);
	path = write_file("cmp-d.conf", "[r]\nkeep_old = perhaps\n");
	tap_check(conf_load(path, NULL, &e, err, sizeof(err)) < 0 && strstr(err, "keep_old") != NULL,
	       "/conf/cmp-settings/bad-bool");
	conf_enrollment_clear(&e);
	path = write_file("cmp-e.conf", "[r]\nkeepold = yes\n");
	tap_check(conf_load(path, NULL, &e, err, sizeof(err)) < 0 && strstr(err, "keepold") != NULL,
	       "/conf/cmp-settings/typo-rejected");
	conf_enrollment_clear(&e);

	tap_check(conf_parse_reason("keyCompromise", &r) == 0 && r == 1, "/conf/reason/name");
	tap_check(conf_parse_reason("AACOMPROMISE", &r) == 0 && r == 10, "/conf/reason/case");
	tap_check(conf_parse_reason("4", &r) == 0 && r == 4, "/conf/reason/number");
	r = -5;
	tap_check(conf_parse_reason("7", &r) < 0 && conf_parse_reason("11", &r) < 0 &&
		       conf_parse_reason("-1", &r) < 0 && conf_parse_reason("lost", &r) < 0 &&
		       conf_parse_reason("", &r) < 0 && r == -5,
	       "/conf/reason/bad");
	tap_check(strcmp(conf_reason_name(0), "unspecified") == 0 &&
		       strcmp(conf_reason_name(5), "cessationOfOperation") == 0 &&
		       strcmp(conf_reason_name(7), "unknown") == 0 &&
		       strcmp(conf_reason_name(42), "unknown") == 0,
	       "/conf/reason/names");
	tap_check(conf_parse_pbm_owf("SHA512", &nid) == 0 && nid == NID_sha512 &&
		       conf_parse_pbm_owf("md5", &nid) < 0,
	       "/conf/pbm/owf");
	tap_check(conf_parse_pbm_mac("hmac-sha256", &nid) == 0 && nid == NID_hmacWithSHA256 &&
		       conf_parse_pbm_mac("hmac-sha1", &nid) < 0,
	       "/conf/pbm/mac");
}

/* ---- pending transactions (agent/pending.c) ------------------------- */

#define SERIAL16 "0123456789ABCDEF"
#define HEX32 "00112233445566778899aabbccddeeff"

static const char *const pending_keys[] = { "version",	   "request",	    "transaction_id",
					    "recip_nonce", "cert_req_id",   "check_after",
					    "key_id",	   "key_generated", "token_serial",
					    "saved" };
static const char *const pending_values[] = { "1",
					      "kur",
					      HEX32,
					      "0102030405060708090a0b0c0d0e0f10",
					      "0",
					      "30",
					      "4a1f",
					      "yes",
					      SERIAL16,
					      "1764200000" };
#define NKEYS (sizeof(pending_keys) / sizeof(pending_keys[0]))

/*
 * A pending file as pending_save writes it, with the line of key replaced
 * by "key value" (value NULL: the line left out) and extra appended.
 */
static const char *pending_text(const char *key, const char *value, const char *extra)
{
	static char buf[16384];
	size_t i, n;

	n = (size_t)snprintf(buf, sizeof(buf), "# p11enroll: a comment\n\n");
	for (i = 0; i < NKEYS; i++) {
		const char *v = pending_values[i];

		if (key != NULL && strcmp(key, pending_keys[i]) == 0) {
			if (value == NULL)
				continue;
			v = value;
		}
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s %s\n", pending_keys[i], v);
	}
	if (extra != NULL)
		snprintf(buf + n, sizeof(buf) - n, "%s", extra);
	return buf;
}

static int parse_ok(const char *text, agent_pending *ap)
{
	char err[256] = "";
	int r = pending_parse(text, strlen(text), ap, err, sizeof(err));

	if (r != 0)
		printf("# unexpected: %s\n", err);
	return r == 0;
}

/* Refused, with want in the message. */
static int parse_refused(const char *text, size_t len, const char *want)
{
	char err[256] = "";
	agent_pending ap;

	if (pending_parse(text, len, &ap, err, sizeof(err)) == 0) {
		printf("# accepted, should have been refused\n");
		return 0;
	}
	if (strstr(err, want) == NULL) {
		printf("# message '%s' lacks '%s'\n", err, want);
		return 0;
	}
	return 1;
}

static int refused(const char *key, const char *value, const char *want)
{
	const char *t = pending_text(key, value, NULL);

	return parse_refused(t, strlen(t), want);
}

static int same_pending(const agent_pending *a, const agent_pending *b)
{
	return a->p.type == b->p.type && a->p.tid_len == b->p.tid_len &&
	       memcmp(a->p.tid, b->p.tid, a->p.tid_len) == 0 && a->p.nonce_len == b->p.nonce_len &&
	       memcmp(a->p.nonce, b->p.nonce, a->p.nonce_len) == 0 &&
	       a->p.cert_req_id == b->p.cert_req_id && a->p.check_after == b->p.check_after &&
	       a->key_id_len == b->key_id_len && memcmp(a->key_id, b->key_id, a->key_id_len) == 0 &&
	       a->key_generated == b->key_generated &&
	       strcmp(a->token_serial, b->token_serial) == 0 && a->saved == b->saved;
}

static void test_pending_parse(void)
{
	static const unsigned char tid[16] = { 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
					       0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff };
	static const unsigned char nonce[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };
	static const unsigned char kid[2] = { 0x4a, 0x1f };
	char hex[200], name[64], big[6000];
	const char *t;
	agent_pending ap;
	size_t i, n;
	int ok;

	tap_check(parse_ok(pending_text(NULL, NULL, NULL), &ap) && ap.p.type == CMPC_REQ_KUR &&
		       ap.p.tid_len == 16 && memcmp(ap.p.tid, tid, 16) == 0 &&
		       ap.p.nonce_len == 16 && memcmp(ap.p.nonce, nonce, 16) == 0 &&
		       ap.p.cert_req_id == 0 && ap.p.check_after == 30 && ap.key_id_len == 2 &&
		       memcmp(ap.key_id, kid, 2) == 0 && ap.key_generated == 1 &&
		       strcmp(ap.token_serial, SERIAL16) == 0 && ap.saved == (time_t)1764200000,
	       "/pending/parse/every-field");
	ok = 1;
	for (i = 0; i < 4; i++) {
		static const char *const names[] = { "ir", "cr", "kur", "p10cr" };
		static const cmpc_req_type types[] = { CMPC_REQ_IR, CMPC_REQ_CR, CMPC_REQ_KUR,
						       CMPC_REQ_P10CR };
		const char *id = types[i] == CMPC_REQ_P10CR ? "-1" : "0";
		char text[2048];

		snprintf(text, sizeof(text), "%s", pending_text("request", names[i], NULL));
		/* cert_req_id follows request: replace it in the copy */
		if (types[i] == CMPC_REQ_P10CR) {
			char *c = strstr(text, "cert_req_id 0\n");

			memmove(c + 13, c + 12, strlen(c + 12) + 1);
			memcpy(c + 12, id, 2);
		}
		if (!parse_ok(text, &ap) || ap.p.type != types[i] ||
		    ap.p.cert_req_id != (int)strtol(id, NULL, 10) ||
		    strcmp(pending_req_name(ap.p.type), names[i]) != 0)
			ok = 0;
	}
	tap_check(ok, "/pending/parse/every-request-type");
	tap_check(strcmp(pending_req_name(-1), "?") == 0 && strcmp(pending_req_name(4), "?") == 0,
	       "/pending/req-name/out-of-range");
	tap_check(parse_ok(pending_text("key_generated", "no", NULL), &ap) && ap.key_generated == 0,
	       "/pending/parse/key-generated-no");
	tap_check(parse_ok(pending_text("token_serial", "", NULL), &ap) && ap.token_serial[0] == '\0',
	       "/pending/parse/empty-token-serial");
	tap_check(parse_ok(pending_text("check_after", "0", NULL), &ap) && ap.p.check_after == 0,
	       "/pending/parse/check-after-zero");
	for (i = 0; i < 64; i++)
		snprintf(hex + 2 * i, 3, "%02x", (unsigned)(i + 0xc0));
	tap_check(parse_ok(pending_text("transaction_id", hex, NULL), &ap) && ap.p.tid_len == 64 &&
		       ap.p.tid[0] == 0xc0 && ap.p.tid[63] == 0xff,
	       "/pending/parse/hex-64-bytes");
	tap_check(parse_ok(pending_text("key_id", "4A1F", NULL), &ap) && ap.key_id_len == 2 &&
		       memcmp(ap.key_id, kid, 2) == 0,
	       "/pending/parse/hex-upper-case");

	tap_check(refused("version", "2", "version '2' is not 1"), "/pending/refused/version-2");
	tap_check(refused("version", "01", "is not 1"), "/pending/refused/version-01");
	t = pending_text(NULL, NULL, "colour blue\n");
	tap_check(parse_refused(t, strlen(t), "unknown key 'colour'"), "/pending/refused/unknown-key");
	t = pending_text(NULL, NULL, "Version 1\n");
	tap_check(parse_refused(t, strlen(t), "unknown key"), "/pending/refused/key-case-matters");
	t = pending_text(NULL, NULL, "version 1\n");
	tap_check(parse_refused(t, strlen(t), "'version' given twice"),
	       "/pending/refused/duplicate-version");
	t = pending_text(NULL, NULL, "key_id 4a1f\n");
	tap_check(parse_refused(t, strlen(t), "'key_id' given twice"),
	       "/pending/refused/duplicate-key-id");
	t = pending_text(NULL, NULL, "saved\n");
	tap_check(parse_refused(t, strlen(t), "has no value"), "/pending/refused/no-value");
	t = pending_text(NULL, NULL, "transaction_id\n");
	tap_check(parse_refused(t, strlen(t), "line 13"), "/pending/refused/names-line");
	ok = 1;
	for (i = 0; i < NKEYS; i++) {
		if (strcmp(pending_keys[i], "token_serial") == 0)
			continue; /* may be left out: tokens without a serial */
		if (!refused(pending_keys[i], NULL, "incomplete")) {
			printf("# without %s\n", pending_keys[i]);
			ok = 0;
		}
	}
	tap_check(ok, "/pending/refused/each-key-missing");
	tap_check(parse_refused("", 0, "incomplete"), "/pending/refused/empty");
	t = "# only a comment\n";
	tap_check(parse_refused(t, strlen(t), "incomplete"), "/pending/refused/only-comment");

	tap_check(refused("transaction_id", "abc", "bad value for 'transaction_id'"),
	       "/pending/refused/hex-odd-length");
	tap_check(refused("recip_nonce", "0g", "bad value for 'recip_nonce'"),
	       "/pending/refused/hex-not-hex");
	tap_check(refused("key_id", "4a 1f", "bad value for 'key_id'"),
	       "/pending/refused/hex-with-space");
	tap_check(refused("key_id", "", "bad value for 'key_id'"), "/pending/refused/hex-empty");
	tap_check(refused("key_id", "0x4a1f", "bad value for 'key_id'"), "/pending/refused/hex-0x");
	memcpy(hex + 128, "00", 3); /* 65 bytes */
	tap_check(refused("transaction_id", hex, "bad value for 'transaction_id'") &&
		       refused("recip_nonce", hex, "bad value for 'recip_nonce'") &&
		       refused("key_id", hex, "bad value for 'key_id'"),
	       "/pending/refused/hex-65-bytes");

	tap_check(refused("request", "xyz", "bad value for 'request'") &&
		       refused("request", "IR", "bad value for 'request'") &&
		       refused("request", "", "bad value for 'request'"),
	       "/pending/refused/request-xyz");
	t = pending_text("request", "p10cr", NULL); /* cert_req_id 0 */
	tap_check(parse_refused(t, strlen(t), "cert_req_id 0 does not fit a p10cr"),
	       "/pending/refused/p10cr-cert-req-id-0");
	tap_check(refused("cert_req_id", "-1", "cert_req_id -1 does not fit a kur"),
	       "/pending/refused/kur-cert-req-id-minus-1");
	snprintf(big, sizeof(big), "%s", pending_text("request", "ir", NULL));
	{
		char *c = strstr(big, "cert_req_id 0\n");

		memmove(c + 13, c + 12, strlen(c + 12) + 1);
		memcpy(c + 12, "-1", 2);
	}
	tap_check(parse_refused(big, strlen(big), "cert_req_id -1 does not fit a ir"),
	       "/pending/refused/ir-cert-req-id-minus-1");
	tap_check(refused("cert_req_id", "1", "does not fit") &&
		       refused("cert_req_id", "-2", "bad value for 'cert_req_id'") &&
		       refused("cert_req_id", "0x0", "bad value for 'cert_req_id'"),
	       "/pending/refused/cert-req-id-other");
	tap_check(refused("check_after", "-1", "bad value for 'check_after'") &&
		       refused("check_after", "2147483648", "bad value for 'check_after'") &&
		       refused("check_after", "30s", "bad value for 'check_after'") &&
		       refused("check_after", "", "bad value for 'check_after'"),
	       "/pending/refused/check-after-negative-or-junk");
	tap_check(refused("saved", "-5", "bad value for 'saved'") &&
		       refused("saved", "99999999999999999999", "bad value for 'saved'"),
	       "/pending/refused/saved-out-of-range");
	tap_check(refused("key_generated", "maybe", "bad value for 'key_generated'"),
	       "/pending/refused/key-generated-maybe");
	tap_check(refused("token_serial", "ab\tcd", "bad value for 'token_serial'") &&
		       refused("token_serial", "ab\x1b[2Jcd", "bad value for 'token_serial'") &&
		       refused("token_serial", "ab\x7f", "bad value for 'token_serial'") &&
		       refused("token_serial", "ab\xc3\xa9", "bad value for 'token_serial'") &&
		       refused("token_serial", "ab\rcd", "bad value for 'token_serial'"),
	       "/pending/refused/token-serial-control");
	tap_check(refused("token_serial", SERIAL16 "0", "bad value for 'token_serial'"),
	       "/pending/refused/token-serial-17");
	tap_check(parse_ok(pending_text("token_serial", "a b", NULL), &ap) &&
		       strcmp(ap.token_serial, "a b") == 0,
	       "/pending/parse/token-serial-space");

	t = pending_text(NULL, NULL, NULL);
	n = strlen(t);
	memcpy(big, t, n + 1);
	big[20] = '\0';
	tap_check(parse_refused(big, n, "not text"), "/pending/refused/nul-in-comment");
	memcpy(big, t, n + 1);
	big[n - 1] = '\0'; /* the final newline */
	tap_check(parse_refused(big, n, "not text"), "/pending/refused/nul-at-end");

	/* Exactly 4096 bytes is the largest file: pad with a comment. */
	memcpy(big, t, n);
	memset(big + n, '#', 4096 - n - 1);
	big[4095] = '\n';
	tap_check(pending_parse(big, 4096, &ap, name, sizeof(name)) == 0,
	       "/pending/parse/4096-bytes");
	big[4095] = '#';
	big[4096] = '\n';
	tap_check(parse_refused(big, 4097, "too large"), "/pending/refused/4097-bytes");

	/* The message never gets longer than the buffer given. */
	memset(name, 'x', sizeof(name));
	tap_check(pending_parse("colour blue\n", 12, &ap, name, 8) < 0 && strlen(name) == 7,
	       "/pending/refused/err-truncated");
}

static int dir_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* Lines of path that start with key and a blank. */
static int lines_with(const char *path, const char *key)
{
	char line[4096];
	FILE *f = fopen(path, "r");
	int n = 0;

	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, key, strlen(key)) == 0 && line[strlen(key)] == ' ')
			n++;
	if (f != NULL)
		fclose(f);
	return n;
}

/* An earlier version's STATE_DIR/NAME.pending for the token with serial. */
static void write_legacy(const char *path, const char *serial)
{
	FILE *f = fopen(path, "w");

	if (f == NULL)
		return;
	fprintf(f, "version 1\nrequest ir\ntransaction_id 0102\nrecip_nonce 03\ncert_req_id 0\n"
		   "check_after 5\nkey_id 04\nkey_generated yes\ntoken_serial %s\nsaved 7\n",
		serial);
	fclose(f);
}

static void test_pending_keys(const char *dir)
{
	conf_enrollment e;
	tok_info ti, ti2;
	agent_pending ap, back;
	char key[512], key2[512], path[1024], legacy[1024], err[1024] = "", lab[301];
	struct stat st;

	memset(&ti, 0, sizeof(ti));
	snprintf(ti.serial, sizeof(ti.serial), "%s", SERIAL16);
	snprintf(ti.label, sizeof(ti.label), "card A");
	snprintf(ti.model, sizeof(ti.model), "Model/1");
	snprintf(ti.manufacturer, sizeof(ti.manufacturer), "Manu");
	tap_check(pending_key("badge", &ti, key, sizeof(key)) == 0 &&
		       strcmp(key, "badge@" SERIAL16) == 0,
	       "/pending/key/label-and-serial");
	tap_check(pending_key(".a b/c@d", &ti, key, sizeof(key)) == 0 &&
		       strcmp(key, "%2Ea%20b%2Fc%40d@" SERIAL16) == 0,
	       "/pending/key/encoded");
	ti2 = ti;
	ti2.serial[0] = '\0';
	tap_check(pending_key("badge", &ti2, key, sizeof(key)) == 0 &&
		       strcmp(key, "badge@~Manu~Model%2F1~card%20A") == 0,
	       "/pending/key/no-serial-token-info");
	snprintf(ti2.serial, sizeof(ti2.serial), "0000");
	tap_check(pending_key("badge", &ti2, key2, sizeof(key2)) == 0 && strcmp(key, key2) == 0,
	       "/pending/key/zero-serial-token-info");
	memset(lab, 'x', 300);
	lab[300] = '\0';
	tap_check(pending_key(lab, &ti, key, sizeof(key)) == 0 && strlen(key) < 130 &&
		       strchr(key, '#') != NULL && (lab[299] = 'y') &&
		       pending_key(lab, &ti, key2, sizeof(key2)) == 0 && strcmp(key, key2) != 0,
	       "/pending/key/long-label-cut-and-hashed");

	ti2 = ti;
	ti2.serial[0] = '\0';
	memset(ti2.label, 1, 32);
	memset(ti2.model, 2, 16);
	tap_check(pending_key("badge", &ti2, key, sizeof(key)) == 0 && strlen(key) <= 200 &&
		       strncmp(key, "badge@~Manu~%5Cx02", 18) == 0 && strchr(key, '#') != NULL &&
		       (ti2.label[0] = 3) && pending_key("badge", &ti2, key2, sizeof(key2)) == 0 &&
		       strcmp(key, key2) != 0,
	       "/pending/key/odd-token-info-cut-and-hashed");

	/* Two tokens, one enrollment: two files; resume finds both by name
	 * and label, and each token loads its own. */
	conf_enrollment_init(&e);
	e.name = strdup("station");
	e.label = strdup("badge");
	e.state_dir = strdup(dir);
	ti2 = ti;
	snprintf(ti2.serial, sizeof(ti2.serial), "B2");
	memset(&ap, 0, sizeof(ap));
	ap.p.type = CMPC_REQ_IR;
	ap.p.tid_len = ap.p.nonce_len = ap.key_id_len = 1;
	ap.saved = 3;
	pending_set_owner(&ap, &e, &ti);
	tap_check(pending_save(&e, &ap, err, sizeof(err)) == 0 &&
		       (ap.p.check_after = 9, pending_set_owner(&ap, &e, &ti2), 1) &&
		       pending_save(&e, &ap, err, sizeof(err)) == 0 &&
		       pending_find(&e, 0, &back, err, sizeof(err)) == 2 &&
		       strcmp(back.name, "station") == 0 && strcmp(back.label, "badge") == 0 &&
		       pending_load(&e, &ti, &back, err, sizeof(err)) == 1 &&
		       back.p.check_after == 0 && strcmp(back.token_label, "card A") == 0 &&
		       pending_load(&e, &ti2, &back, err, sizeof(err)) == 1 &&
		       back.p.check_after == 9,
	       "/pending/find/two-tokens-two-files");
	free(e.label);
	e.label = strdup("other");
	tap_check(pending_find(&e, 0, &back, err, sizeof(err)) == 0 &&
		       pending_load(&e, &ti, &back, err, sizeof(err)) == 0 &&
		       pending_find(&e, 1, &back, err, sizeof(err)) == 2 &&
		       strcmp(back.label, "badge") == 0,
	       "/pending/find/other-label-none-any-label-both");
	free(e.label);
	e.label = strdup("badge");

	/* An earlier version's file: found by resume before the token is
	 * known, moved under the token whose serial it names. */
	snprintf(legacy, sizeof(legacy), "%s/station.pending", dir);
	write_legacy(legacy, "C3");
	tap_check(pending_find(&e, 0, &back, err, sizeof(err)) == 3,
		  "/pending/legacy/found-by-resume");
	tap_check(pending_load(&e, &ti, &back, err, sizeof(err)) == 1 && !back.legacy &&
		       back.p.check_after == 0 && stat(legacy, &st) == 0,
	       "/pending/legacy/other-token-left");
	snprintf(ti2.serial, sizeof(ti2.serial), "C3");
	tap_check(pending_load(&e, &ti2, &back, err, sizeof(err)) == 1 &&
		       back.p.check_after == 5 && stat(legacy, &st) < 0 &&
		       pending_path(&e, &ti2, "pending", path, sizeof(path)) == 0 &&
		       stat(path, &st) == 0 && lines_with(path, "enrollment") == 1,
	       "/pending/legacy/moved-once-token-known");
	conf_enrollment_clear(&e);
}

static void test_pending_files(void)
{
	conf_enrollment e;
	agent_pending ap, back;
	tok_info ti;
	char err[1024] = "", dir[600], sub[700], path[1024], want[1024];
	struct stat st;
	size_t i;
	FILE *f;

	memset(&ap, 0, sizeof(ap));
	ap.p.type = CMPC_REQ_P10CR;
	for (i = 0; i < 20; i++)
		ap.p.tid[i] = (unsigned char)(0xf0 + i);
	ap.p.tid_len = 20;
	for (i = 0; i < CMPC_ID_MAX; i++)
		ap.p.nonce[i] = (unsigned char)i;
	ap.p.nonce_len = CMPC_ID_MAX;
	ap.p.cert_req_id = -1;
	ap.p.check_after = 2147483647L;
	ap.key_id[0] = 0;
	ap.key_id[1] = 0xff;
	ap.key_id_len = 2;
	ap.key_generated = 0;
	ap.saved = (time_t)1764200000;
	memset(&ti, 0, sizeof(ti));
	snprintf(ti.serial, sizeof(ti.serial), "%s", SERIAL16);

	conf_enrollment_init(&e);
	tap_check(strcmp(pending_state_dir(&e), LOCALSTATEDIR "/lib/p11enroll") == 0,
	       "/pending/state-dir/default");
	snprintf(dir, sizeof(dir), "%s/state", tmpdir);
	e.name = strdup("badge");
	e.label = strdup("my key");
	e.state_dir = strdup(dir);
	snprintf(sub, sizeof(sub), "%s/pending", dir);
	pending_set_owner(&ap, &e, &ti);
	tap_check(strcmp(pending_state_dir(&e), dir) == 0, "/pending/state-dir/configured");
	snprintf(want, sizeof(want), "%s/pending/my%%20key@%s.pending", dir, SERIAL16);
	tap_check(pending_path(&e, &ti, "pending", path, sizeof(path)) == 0 &&
		       strcmp(path, want) == 0,
	       "/pending/path");
	tap_check(pending_path(&e, &ti, "pending", path, 10) < 0,
		  "/pending/path/too-long-for-buffer");
	tap_check(pending_load(&e, &ti, &back, err, sizeof(err)) == 0, "/pending/load/none-yet");
	tap_check(stat(dir, &st) < 0, "/pending/load/does-not-create-dir");
	tap_check(pending_remove(&e, &ap) == 0, "/pending/remove/none-is-ok");

	tap_check(pending_save(&e, &ap, err, sizeof(err)) == 0, "/pending/save");
	if (err[0] != '\0')
		printf("# %s\n", err);
	tap_check(stat(dir, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 07777) == 0700 &&
		       stat(sub, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 07777) == 0700,
	       "/pending/save/state-dir-created-0700");
	tap_check(stat(want, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0600,
	       "/pending/save/file-0600");
	tap_check(dir_entries(sub) == 1, "/pending/save/no-temporary-left");
	memset(&back, 0x5a, sizeof(back));
	tap_check(pending_load(&e, &ti, &back, err, sizeof(err)) == 1 && same_pending(&ap, &back),
	       "/pending/save-load/round-trip");

	/* Saved again: replaced, with the new values. */
	ap.p.check_after = 0;
	ap.p.nonce_len = 1;
	ap.key_generated = 1;
	tap_check(pending_save(&e, &ap, err, sizeof(err)) == 0 &&
		       pending_load(&e, &ti, &back, err, sizeof(err)) == 1 && same_pending(&ap, &back) &&
		       dir_entries(sub) == 1,
	       "/pending/save-load/replaced");
	ap.p.type = CMPC_REQ_IR;
	ap.p.cert_req_id = 0;
	tap_check(pending_save(&e, &ap, err, sizeof(err)) == 0 &&
		       pending_load(&e, &ti, &back, err, sizeof(err)) == 1 && same_pending(&ap, &back),
	       "/pending/save-load/ir");

	/* An existing directory keeps its mode. */
	tap_check(chmod(dir, 0750) == 0 && pending_save(&e, &ap, err, sizeof(err)) == 0 &&
		       stat(dir, &st) == 0 && (st.st_mode & 07777) == 0750,
	       "/pending/save/existing-dir-untouched");

	/* A broken file: -1, with its path. */
	if ((f = fopen(want, "w")) != NULL) {
		fputs("version 1\nrequest xyz\n", f);
		fclose(f);
	}
	tap_check(pending_load(&e, &ti, &back, err, sizeof(err)) < 0 && strstr(err, want) != NULL &&
		       strstr(err, "'request'") != NULL,
	       "/pending/load/broken-names-file");
	tap_check(pending_remove(&e, &ap) == 0 && stat(want, &st) < 0 &&
		       pending_load(&e, &ti, &back, err, sizeof(err)) == 0,
	       "/pending/remove");

	/* Names that are no file names. */
	free(e.name);
	e.name = strdup("a/b");
	tap_check(pending_name_path(&e, "pending", path, sizeof(path)) < 0,
		  "/pending/path/slash-refused");
	err[0] = '\0';
	tap_check(pending_save(&e, &ap, err, sizeof(err)) < 0 && strstr(err, "name") != NULL,
	       "/pending/save/slash-refused");
	tap_check(pending_load(&e, &ti, &back, err, sizeof(err)) == 0 && pending_remove(&e, &ap) == 0,
	       "/pending/load/slash-nothing");
	free(e.name);
	e.name = strdup("../evil");
	tap_check(pending_name_path(&e, "pending", path, sizeof(path)) < 0,
		  "/pending/path/dotdot-refused");
	free(e.name);
	e.name = strdup(".hidden");
	tap_check(pending_name_path(&e, "pending", path, sizeof(path)) < 0,
		  "/pending/path/leading-dot-refused");
	free(e.name);
	e.name = strdup("two words");
	tap_check(pending_name_path(&e, "pending", path, sizeof(path)) < 0,
		  "/pending/path/space-refused");
	free(e.name);
	e.name = strdup("");
	tap_check(pending_name_path(&e, "pending", path, sizeof(path)) < 0,
		  "/pending/path/empty-refused");
	free(e.name);
	e.name = NULL;
	tap_check(pending_name_path(&e, "pending", path, sizeof(path)) < 0 &&
		       pending_save(&e, &ap, err, sizeof(err)) < 0,
	       "/pending/path/no-name-refused");
	e.name = strdup("badge");
	tap_check(dir_entries(sub) == 0, "/pending/save/nothing-written-for-bad-names");

	test_pending_keys(dir);

	/* Only the last component is created. */
	free(e.state_dir);
	snprintf(dir, sizeof(dir), "%s/no/such/dir", tmpdir);
	e.state_dir = strdup(dir);
	err[0] = '\0';
	tap_check(pending_save(&e, &ap, err, sizeof(err)) < 0 &&
		       strstr(err, "cannot create the state directory") != NULL &&
		       strstr(err, dir) != NULL,
	       "/pending/save/missing-parent");
	conf_enrollment_clear(&e);
}

static void test_pending_conf(void)
{
	conf_enrollment e;
	char err[512] = "";
	const char *path = write_file("st.conf", "state_dir = /var/tmp/st\n[one]\nlabel = x\n");

	conf_enrollment_init(&e);
	tap_check(conf_load(path, "one", &e, err, sizeof(err)) == 0 && e.state_dir != NULL &&
		       strcmp(e.state_dir, "/var/tmp/st") == 0 && strcmp(e.name, "one") == 0,
	       "/conf/state-dir");
	conf_enrollment_clear(&e);
}

/* No ESC, no other C0 but newline, no DEL, no C1 (C2 80..9F), and valid
 * UTF-8: what a terminal, a log or a JSON parser can take. */
static int clean_text(const char *s, int newlines_ok)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p != '\0') {
		int n = *p < 0x80 ? 1 : (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3 :
			(*p & 0xf8) == 0xf0 ? 4 : 0;
		int i;

		if (n == 0 || (*p < 0x20 && !(newlines_ok && *p == '\n')) || *p == 0x7f ||
		    (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) || (n == 2 && *p < 0xc2))
			return 0;
		for (i = 1; i < n; i++)
			if ((p[i] & 0xc0) != 0x80)
				return 0;
		p += n;
	}
	return 1;
}

static const char hostile[] = "weird \033[2J\033]0;owned\007 \xc2\x9b" "31m \xff\xfe "
			      "\xe2\x82 cut \xc0\xaf overlong \x7f del \r\nforged: line";

static void test_escape(void)
{
	static const struct {
		const char *in, *out, *name;
	} cases[] = {
		{ "plain ASCII, \\ and \"", "plain ASCII, \\ and \"", "/escape/ascii-kept" },
		{ "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 \xc2\xa0",
		  "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 \xc2\xa0",
		  "/escape/utf8-kept" },
		{ "a\033[2Jb", "a\\x1B[2Jb", "/escape/esc" },
		{ "l1\r\nl2\tx\x7f", "l1\\x0D\\x0Al2\\x09x\\x7F", "/escape/c0-del" },
		{ "\xc2\x80 \xc2\x9b" "1m \xc2\x9f", "\\xC2\\x80 \\xC2\\x9B1m \\xC2\\x9F",
		  "/escape/c1" },
		{ "\xff\xfe \xc0\xaf \xe0\x80\xaf \xed\xa0\x80 \xf4\x90\x80\x80",
		  "\\xFF\\xFE \\xC0\\xAF \\xE0\\x80\\xAF \\xED\\xA0\\x80 "
		  "\\xF4\\x90\\x80\\x80",
		  "/escape/invalid-utf8" },
		{ "cut \xe2\x82", "cut \\xE2\\x82", "/escape/truncated-sequence" },
	};
	char out[256];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		agent_escape(cases[i].in, out, sizeof(out));
		tap_check(strcmp(out, cases[i].out) == 0, cases[i].name);
	}
	/* Truncation never cuts an escape or a character. */
	agent_escape("ab\033c", out, 6);
	tap_check(strcmp(out, "ab") == 0, "/escape/truncate-escape");
	agent_escape("a\xc3\xa9", out, 3);
	tap_check(strcmp(out, "a") == 0, "/escape/truncate-utf8");
	tap_check(strcmp(agent_escape(NULL, out, sizeof(out)), "") == 0, "/escape/null");
}

/* One encoder: lower case for key ids, upper case for a row mark's card
 * serial; whole bytes only. */
static void test_hex(void)
{
	static const unsigned char b[] = { 0x00, 0xab, 0x7f, 0xff };
	char out[16];

	agent_hex(b, sizeof(b), out, sizeof(out));
	tap_check(strcmp(out, "00ab7fff") == 0, "/hex/lower");
	agent_hex_upper(b, sizeof(b), out, sizeof(out));
	tap_check(strcmp(out, "00AB7FFF") == 0, "/hex/upper");
	agent_hex_upper(b, sizeof(b), out, 6);
	tap_check(strcmp(out, "00AB") == 0, "/hex/upper-whole-bytes");
}

/* Strings from a token or a CA in the key=value files: a newline never
 * makes a field of its own. */
/* What a track holds goes before the track is cleared for the next case. */
static void track_reset(track *t)
{
	track_set_error(t, NULL);
	track_set_pin_latch(t, NULL);
	memset(t, 0, sizeof(*t));
}

static void test_line_writers(void)
{
	conf_enrollment e;
	agent_pending ap, back;
	tok_info ti;
	track t;
	char err[1024] = "", dir[600], path[1024];

	conf_enrollment_init(&e);
	snprintf(dir, sizeof(dir), "%s/lines", tmpdir);
	e.name = strdup("hostile");
	e.state_dir = strdup(dir);
	memset(&ap, 0, sizeof(ap));
	ap.p.type = CMPC_REQ_IR;
	ap.p.tid_len = ap.p.nonce_len = 16;
	ap.key_id[0] = 1;
	ap.key_id_len = 1;
	ap.key_generated = 1;
	snprintf(ap.token_serial, sizeof(ap.token_serial), "1\nkey_id 02");
	ap.saved = 1;
	memset(&ti, 0, sizeof(ti));
	snprintf(ti.serial, sizeof(ti.serial), "%s", ap.token_serial);
	e.label = strdup("l");
	(void)pending_path(&e, &ti, "pending", path, sizeof(path));
	tap_check(pending_save(&e, &ap, err, sizeof(err)) == 0 && lines_with(path, "key_id") == 1 &&
		       lines_with(path, "token_serial") == 1 &&
		       pending_load(&e, &ti, &back, err, sizeof(err)) == 1 && back.key_id[0] == 1 &&
		       strchr(back.token_serial, '\n') == NULL,
	       "/lines/pending/token-serial");

	memset(&t, 0, sizeof(t));
	t.name = e.name;
	t.e = e;
	track_set_error(&t, "CA says: \nstopped 1\r\nfailures 99");
	track_set_pin_latch(&t, "file:/x\nseed 7");
	t.seed = 5;
	snprintf(path, sizeof(path), "%s/hostile.agent", dir);
	tap_check(track_save(&t) == 0 && lines_with(path, "stopped") == 1 &&
		       lines_with(path, "failures") == 1 && lines_with(path, "seed") == 1,
	       "/lines/state/last-error");
	track_reset(&t);
	t.name = e.name;
	t.e = e;
	tap_check(track_load(&t) == 0 && t.st != T_STOPPED && t.failures == 0 && t.seed == 5 &&
		       strstr(track_error(&t), "stopped 1") != NULL,
	       "/lines/state/round-trip");
	/* A 40-octet serial (80 hex digits), as a CA has sent: kept whole. */
	track_reset(&t);
	t.name = e.name;
	t.e = e;
	memset(t.cert_serial, 'A', 80);
	t.cert_serial[80] = '\0';
	t.not_after = 1;
	t.have_cert = 1;
	tap_check(track_save(&t) == 0, "/lines/state/long-serial-saved");
	track_reset(&t);
	t.name = e.name;
	t.e = e;
	tap_check(track_load(&t) == 0 && strlen(t.cert_serial) == 80,
	       "/lines/state/long-serial-whole");
	track_reset(&t);
	conf_enrollment_clear(&e);
}

static void test_status_hostile(void)
{
	track t, *ts[1] = { &t };
	char *text, *json;
	size_t len = 0;

	memset(&t, 0, sizeof(t));
	t.name = (char *)"web";
	t.st = T_BACKOFF;
	snprintf(t.token_serial, sizeof(t.token_serial), "ab\033[2J\xc2\x9b\n");
	track_set_error(&t, "%s", hostile);
	text = track_status_text(ts, 1, 1000, &len);
	tap_check(text != NULL && clean_text(text, 1) && strstr(text, "forged") != NULL &&
		       strstr(text, "\nforged") == NULL,
	       "/escape/status-text");
	json = track_status_json(ts, 1, 1000, 1, &len);
	tap_check(json != NULL && clean_text(json, 1) && strstr(json, "forged") != NULL,
	       "/escape/status-json");
	free(text);
	free(json);
	track_reset(&t);
}

/* the number of checks main runs */
#define PLAN 162

int main(void)
{
	char cmd[600];

	tap_plan(PLAN);
	if (mkdtemp(tmpdir) == NULL)
		return 99;
	log_init("test-agent", -1, 0);
	test_subject();
	test_sans();
	test_key_type();
	test_secret();
	test_conf();
	test_conf_pool();
	test_conf_head();
	test_conf_check();
	test_cmp_settings();
	test_pending_parse();
	test_pending_files();
	test_pending_conf();
	test_escape();
	test_hex();
	test_status_hostile();
	test_line_writers();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		tap_nfail++;
	return tap_done();
}
