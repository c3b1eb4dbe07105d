/* Unit tests of the agent's parsers: configuration, names, secret sources. */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/x509v3.h>

#include "agent/agent.h"

static int n_tests, n_failed;

static void result(int ok, const char *name)
{
	n_tests++;
	if (!ok)
		n_failed++;
	printf("%s %d - %s\n", ok ? "ok" : "not ok", n_tests, name);
}

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

	result(n != NULL && X509_NAME_entry_count(n) == 2 &&
		       X509_NAME_get_text_by_NID(n, NID_commonName, buf, sizeof(buf)) == 3 &&
		       strcmp(buf, "a/b") == 0,
	       "/conf/subject/escaped-slash");
	X509_NAME_free(n);
	n = conf_parse_subject("CN=x", err, sizeof(err));
	result(n == NULL && strstr(err, "must start with '/'") != NULL, "/conf/subject/no-slash");
	n = conf_parse_subject("/XX=1", err, sizeof(err));
	result(n == NULL && strstr(err, "'XX' is unknown") != NULL, "/conf/subject/unknown-type");
	n = conf_parse_subject("/CN", err, sizeof(err));
	result(n == NULL && strstr(err, "not TYPE=value") != NULL, "/conf/subject/no-value");
	n = conf_parse_subject("/", err, sizeof(err));
	result(n == NULL && strstr(err, "empty") != NULL, "/conf/subject/empty");
}

static void test_sans(void)
{
	char err[256] = "";
	GENERAL_NAMES *g = conf_parse_sans("DNS:a.example, email:x@example.org, IP:192.0.2.1", err,
					   sizeof(err));

	result(g != NULL && sk_GENERAL_NAME_num(g) == 3, "/conf/san/three-names");
	GENERAL_NAMES_free(g);
	g = conf_parse_sans("bogus:x", err, sizeof(err));
	result(g == NULL && strstr(err, "OpenSSL's syntax") != NULL, "/conf/san/bad");
}

static void test_key_type(void)
{
	int alg = 0, bits = 0;

	result(conf_parse_key_type("ec:P-384", &alg, &bits) == 0 && alg == 1 && bits == 384,
	       "/conf/key-type/p384");
	result(conf_parse_key_type("RSA:3072", &alg, &bits) == 0 && alg == 2 && bits == 3072,
	       "/conf/key-type/rsa3072-any-case");
	result(conf_parse_key_type("rsa:1024", &alg, &bits) < 0, "/conf/key-type/rsa1024-refused");
	result(conf_parse_bool("Yes") == 1 && conf_parse_bool("off") == 0 &&
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
	result(secret_read(src, "PIN", &s, err, sizeof(err)) == 0 && s->len == 4 &&
		       strcmp(s->buf, "1234") == 0,
	       "/secret/file/first-line");
	secret_free(s);
	s = NULL;
	write_file("crlf", "abc\r\n");
	snprintf(src, sizeof(src), "file:%s/crlf", tmpdir);
	result(secret_read(src, "PIN", &s, err, sizeof(err)) == 0 && strcmp(s->buf, "abc") == 0,
	       "/secret/file/crlf");
	secret_free(s);
	s = NULL;
	write_file("empty", "\n");
	snprintf(src, sizeof(src), "file:%s/empty", tmpdir);
	result(secret_read(src, "PIN", &s, err, sizeof(err)) < 0 && strstr(err, "empty") != NULL,
	       "/secret/file/empty-refused");
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	write_file("big", big);
	snprintf(src, sizeof(src), "file:%s/big", tmpdir);
	result(secret_read(src, "PIN", &s, err, sizeof(err)) < 0 && strstr(err, "longer") != NULL,
	       "/secret/file/too-long");
	result(secret_read("file:/nonexistent/p", "PIN", &s, err, sizeof(err)) < 0 &&
		       strstr(err, "/nonexistent/p") != NULL,
	       "/secret/file/missing");
	setenv("UNIT_SECRET", "s3cr3t", 1);
	result(secret_read("env:UNIT_SECRET", "secret", &s, err, sizeof(err)) == 0 &&
		       strcmp(s->buf, "s3cr3t") == 0,
	       "/secret/env");
	secret_free(s);
	s = NULL;
	unsetenv("UNIT_SECRET");
	result(secret_read("env:UNIT_SECRET", "secret", &s, err, sizeof(err)) < 0,
	       "/secret/env/unset");
	if (pipe(fds) == 0) {
		if (write(fds[1], "fdpin\n", 6) != 6)
			abort();
		close(fds[1]);
		snprintf(src, sizeof(src), "fd:%d", fds[0]);
		result(secret_read(src, "PIN", &s, err, sizeof(err)) == 0 &&
			       strcmp(s->buf, "fdpin") == 0,
		       "/secret/fd");
		secret_free(s);
		s = NULL;
	}
	result(secret_read("fd:x", "PIN", &s, err, sizeof(err)) < 0, "/secret/fd/bad-number");
	result(secret_read("hunter2", "PIN", &s, err, sizeof(err)) < 0 &&
		       strstr(err, "hunter2") == NULL,
	       "/secret/literal-refused-not-echoed");
	secret_free(NULL);
}

static void test_conf(void)
{
	conf_enrollment e;
	char err[512] = "";
	const char *path = write_file("a.conf", "server = http://default\nlabel = dflt\n"
						"[one]\nlabel = one\ntimeout = 7\n"
						"[two]\nimplicit_confirm = yes\n");

	conf_enrollment_init(&e);
	e.label = strdup("cli");
	result(conf_load(path, "one", &e, err, sizeof(err)) == 0 && strcmp(e.label, "cli") == 0 &&
		       strcmp(e.server, "http://default") == 0 && e.timeout == 7,
	       "/conf/load/cli-wins-defaults-apply");
	conf_enrollment_clear(&e);
	result(conf_load(path, "two", &e, err, sizeof(err)) == 0 &&
		       strcmp(e.label, "dflt") == 0 && e.implicit_confirm == 1,
	       "/conf/load/default-section");
	conf_enrollment_clear(&e);
	result(conf_load(path, NULL, &e, err, sizeof(err)) < 0 &&
		       strstr(err, "several") != NULL,
	       "/conf/load/must-name-one");
	conf_enrollment_clear(&e);
	result(conf_load(path, "default", &e, err, sizeof(err)) < 0,
	       "/conf/load/default-is-not-an-enrollment");
	conf_enrollment_clear(&e);
	path = write_file("b.conf", "[x]\ntimeout = -3\n");
	result(conf_load(path, NULL, &e, err, sizeof(err)) < 0 &&
		       strstr(err, "timeout = '-3'") != NULL,
	       "/conf/load/negative-timeout");
	conf_enrollment_clear(&e);
	path = write_file("c.conf", "[x]\nmax_response_size = 10\n");
	result(conf_load(path, NULL, &e, err, sizeof(err)) < 0, "/conf/load/tiny-max-response");
	conf_enrollment_clear(&e);
	unsetenv("P11ENROLL_CONF");
	if (access(conf_default_path(), F_OK) != 0)
		result(conf_load(NULL, NULL, &e, err, sizeof(err)) == 0,
		       "/conf/load/absent-default-file-ok");
	conf_enrollment_clear(&e);
	setenv("P11ENROLL_CONF", "/nonexistent.conf", 1);
	result(conf_load(NULL, NULL, &e, err, sizeof(err)) < 0 &&
		       strstr(err, "/nonexistent.conf") != NULL,
	       "/conf/load/absent-env-file-error");
	unsetenv("P11ENROLL_CONF");
	conf_enrollment_clear(&e);
	result(conf_load("/nonexistent.conf", NULL, &e, err, sizeof(err)) < 0,
	       "/conf/load/absent-explicit-file-error");
	conf_enrollment_clear(&e);
}

static void test_issue3_keys(void)
{
	conf_enrollment e;
	char err[512] = "";
	int r = -1, nid = 0;
	const char *path = write_file(
	    "i3.conf", "keep_old = yes\n[r]\nsigner = dev id\nprotection_cert = c.pem\n"
		       "protection_key = k.pem\ncert_profile = tls\nsender = /CN=me\n"
		       "recipient = /CN=ca\npbm_owf = sha384\npbm_mac = hmac-sha512\n"
		       "pbm_iterations = 50000\nunprotected_errors = yes\nreason = superseded\n"
		       "delete_revoked = true\nuse_template = 1\n");

	conf_enrollment_init(&e);
	result(e.keep_old == CONF_FIELD_UNSET && e.pbm_iterations == CONF_FIELD_UNSET &&
		       e.use_template == CONF_FIELD_UNSET,
	       "/conf/issue3/unset-by-default");
	e.pbm_iterations = 200; /* the command line wins */
	result(conf_load(path, "r", &e, err, sizeof(err)) == 0 && e.keep_old == 1 &&
		       strcmp(e.signer, "dev id") == 0 && strcmp(e.protection_cert, "c.pem") == 0 &&
		       strcmp(e.protection_key, "k.pem") == 0 && strcmp(e.cert_profile, "tls") == 0 &&
		       strcmp(e.sender, "/CN=me") == 0 && strcmp(e.recipient, "/CN=ca") == 0 &&
		       strcmp(e.pbm_owf, "sha384") == 0 && strcmp(e.pbm_mac, "hmac-sha512") == 0 &&
		       e.pbm_iterations == 200 && e.unprotected_errors == 1 &&
		       strcmp(e.reason, "superseded") == 0 && e.delete_revoked == 1 &&
		       e.use_template == 1,
	       "/conf/issue3/every-key");
	if (err[0] != '\0')
		printf("# %s\n", err);
	conf_enrollment_clear(&e);
	path = write_file("i3b.conf", "[r]\npbm_iterations = 99\n");
	result(conf_load(path, NULL, &e, err, sizeof(err)) < 0 &&
		       strstr(err, "iteration count") != NULL,
	       "/conf/issue3/iterations-too-few");
	conf_enrollment_clear(&e);
	path = write_file("i3c.conf", "[r]\npbm_iterations = 100001\n");
	result(conf_load(path, NULL, &e, err, sizeof(err)) < 0, "/conf/issue3/iterations-too-many");
	conf_enrollment_clear(&e);
	path = write_file("i3d.conf", "[r]\nkeep_old = perhaps\n");
	result(conf_load(path, NULL, &e, err, sizeof(err)) < 0 && strstr(err, "keep_old") != NULL,
	       "/conf/issue3/bad-bool");
	conf_enrollment_clear(&e);
	path = write_file("i3e.conf", "[r]\nkeepold = yes\n");
	result(conf_load(path, NULL, &e, err, sizeof(err)) < 0 && strstr(err, "keepold") != NULL,
	       "/conf/issue3/typo-rejected");
	conf_enrollment_clear(&e);

	result(conf_parse_reason("keyCompromise", &r) == 0 && r == 1, "/conf/reason/name");
	result(conf_parse_reason("AACOMPROMISE", &r) == 0 && r == 10, "/conf/reason/case");
	result(conf_parse_reason("4", &r) == 0 && r == 4, "/conf/reason/number");
	r = -5;
	result(conf_parse_reason("7", &r) < 0 && conf_parse_reason("11", &r) < 0 &&
		       conf_parse_reason("-1", &r) < 0 && conf_parse_reason("lost", &r) < 0 &&
		       conf_parse_reason("", &r) < 0 && r == -5,
	       "/conf/reason/bad");
	result(strcmp(conf_reason_name(0), "unspecified") == 0 &&
		       strcmp(conf_reason_name(5), "cessationOfOperation") == 0 &&
		       strcmp(conf_reason_name(7), "unknown") == 0 &&
		       strcmp(conf_reason_name(42), "unknown") == 0,
	       "/conf/reason/names");
	result(conf_parse_pbm_owf("SHA512", &nid) == 0 && nid == NID_sha512 &&
		       conf_parse_pbm_owf("md5", &nid) < 0,
	       "/conf/pbm/owf");
	result(conf_parse_pbm_mac("hmac-sha256", &nid) == 0 && nid == NID_hmacWithSHA256 &&
		       conf_parse_pbm_mac("hmac-sha1", &nid) < 0,
	       "/conf/pbm/mac");
}

int main(void)
{
	char cmd[600];

	if (mkdtemp(tmpdir) == NULL)
		return 99;
	log_init("test-agent", -1, 0);
	test_subject();
	test_sans();
	test_key_type();
	test_secret();
	test_conf();
	test_issue3_keys();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		n_failed++;
	printf("1..%d\n", n_tests);
	return n_failed ? 1 : 0;
}
