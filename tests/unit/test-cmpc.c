/*
 * cmpc against real peers, started by test-cmpc.sh: OpenSSL's CMP mock
 * server in several configurations and a Python HTTP server that answers
 * wrongly on purpose.  Their URLs and the test PKI come in T_* variables.
 * Prints TAP; exits 1 if a test failed, 77 if run without the script.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cmp/cmpc.h"

static int ntest, nfail;
static char logbuf[1 << 20];
static size_t loglen;
static const char *dir, *ref, *secret;
static const char *wrong_secret = "wr0ng-Secret-ABC";

static void collect(int level, const char *msg, void *arg)
{
	int n;

	(void)arg;
	if (loglen >= sizeof(logbuf) - 1)
		return;
	n = snprintf(logbuf + loglen, sizeof(logbuf) - loglen, "<%d>%s\n", level, msg);
	if (n > 0)
		loglen +=
		    (size_t)n < sizeof(logbuf) - loglen ? (size_t)n : sizeof(logbuf) - loglen - 1;
	if (getenv("T_VERBOSE") != NULL)
		fprintf(stderr, "log<%d> %s\n", level, msg);
}

static void ok(int cond, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void ok(int cond, const char *name, const char *fmt, ...)
{
	va_list ap;

	ntest++;
	printf("%sok %d - %s", cond ? "" : "not ", ntest, name);
	if (!cond) {
		nfail++;
		printf(" # ");
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
	}
	printf("\n");
	fflush(stdout);
}

static const char *env(const char *name)
{
	const char *v = getenv(name);

	if (v == NULL) {
		printf("1..0 # SKIP %s not set: run test-cmpc.sh\n", name);
		exit(77);
	}
	return v;
}

static char *path(const char *file)
{
	static char buf[8][1024];
	static int i;

	i = (i + 1) % 8;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, file);
	return buf[i];
}

static char *url(const char *base, const char *suffix)
{
	static char buf[4][512];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s%s", base, suffix);
	return buf[i];
}

static X509 *read_cert(const char *file)
{
	FILE *f = fopen(path(file), "r");
	X509 *x;

	if (f == NULL)
		return NULL;
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	return x;
}

static EVP_PKEY *read_key(const char *file)
{
	FILE *f = fopen(path(file), "r");
	EVP_PKEY *k;

	if (f == NULL)
		return NULL;
	k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	return k;
}

/* A context as the agent sets one up: subject CN=client, one DNS SAN. */
static cmpc_ctx *mk(const char *server, const char *sec, const char *anchors, const char *cn)
{
	cmpc_ctx *ctx = cmpc_new();
	X509_NAME *name = X509_NAME_new();
	GENERAL_NAMES *sans = GENERAL_NAMES_new();
	GENERAL_NAME *gn = GENERAL_NAME_new();
	ASN1_IA5STRING *dns = ASN1_IA5STRING_new();
	int fail = 0;

	if (ctx == NULL || name == NULL || sans == NULL || gn == NULL || dns == NULL)
		abort();
	cmpc_set_log_cb(ctx, collect, NULL);
	cmpc_set_timeouts(ctx, 5, 20, 60);
	if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1,
					0) ||
	    !ASN1_STRING_set(dns, "client.example", -1))
		abort();
	GENERAL_NAME_set0_value(gn, GEN_DNS, dns);
	if (!sk_GENERAL_NAME_push(sans, gn))
		abort();
	fail |= cmpc_set_server(ctx, server) != CMPC_OK;
	fail |= cmpc_set1_pbm(ctx, (const unsigned char *)ref, strlen(ref),
			      (const unsigned char *)sec, strlen(sec)) != CMPC_OK;
	if (anchors != NULL)
		fail |= cmpc_load_trusted(ctx, path(anchors)) != CMPC_OK;
	fail |= cmpc_set1_subject(ctx, name) != CMPC_OK;
	fail |= cmpc_set1_sans(ctx, sans) != CMPC_OK;
	X509_NAME_free(name);
	GENERAL_NAMES_free(sans);
	if (fail) {
		fprintf(stderr, "setting up the context failed: %s\n", cmpc_errmsg(ctx));
		abort();
	}
	return ctx;
}

static int contains(const char *hay, const char *needle)
{
	return strstr(hay, needle) != NULL;
}

/* The message is there, names no secret, and says what is expected. */
static int msg_ok(cmpc_ctx *ctx, const char *must)
{
	const char *m = cmpc_errmsg(ctx);

	return m[0] != '\0' && !contains(m, secret) && !contains(m, wrong_secret) &&
	       (must == NULL || contains(m, must));
}

/* One failing ir: expects rv, a message with `must`, untouched outputs. */
static void expect_fail(const char *name, cmpc_ctx *ctx, EVP_PKEY *key, cmpc_rv want,
			const char *must)
{
	X509 *sentinel_cert = (X509 *)&ntest;
	STACK_OF(X509) *sentinel_ca = (STACK_OF(X509) *)&nfail;
	X509 *cert = sentinel_cert;
	STACK_OF(X509) *ca = sentinel_ca;
	cmpc_rv rv = cmpc_ir(ctx, key, &cert, &ca);

	ok(rv == want && msg_ok(ctx, must) && cert == sentinel_cert && ca == sentinel_ca, name,
	   "rv %d (%s), want %d; message: %s", rv, cmpc_strerror(rv), want, cmpc_errmsg(ctx));
	if (getenv("T_VERBOSE") != NULL)
		fprintf(stderr, "%s: %s\n", name, cmpc_errmsg(ctx));
}

/* A successful ir; checks the key and the CA certificates, issuer first. */
static void expect_ok(const char *name, cmpc_ctx *ctx, EVP_PKEY *key, const char *const *cas)
{
	X509 *cert = NULL, *x;
	STACK_OF(X509) *ca = NULL;
	cmpc_rv rv = cmpc_ir(ctx, key, &cert, &ca);
	int good = rv == CMPC_OK && cert != NULL && ca != NULL, i, n = 0;
	char why[256] = "";

	if (good && EVP_PKEY_eq(X509_get0_pubkey(cert), key) != 1) {
		good = 0;
		snprintf(why, sizeof(why), "wrong public key");
	}
	for (i = 0; good && cas != NULL && cas[i] != NULL; i++, n++) {
		x = read_cert(cas[i]);
		if (x == NULL || i >= sk_X509_num(ca) || X509_cmp(x, sk_X509_value(ca, i)) != 0) {
			good = 0;
			snprintf(why, sizeof(why), "CA certificate %d is not %s", i, cas[i]);
		}
		X509_free(x);
	}
	if (good && cas != NULL && sk_X509_num(ca) != n) {
		good = 0;
		snprintf(why, sizeof(why), "%d CA certificates, want %d", sk_X509_num(ca), n);
	}
	ok(good, name, "rv %d (%s): %s %s", rv, cmpc_strerror(rv), cmpc_errmsg(ctx), why);
	X509_free(cert);
	sk_X509_pop_free(ca, X509_free);
}

static void test_config(EVP_PKEY *key)
{
	const char *t_ok = env("T_OK");
	cmpc_ctx *ctx;
	X509 *cert = NULL;
	cmpc_rv rv;
	int i, good = 1;

	for (i = CMPC_OK; i <= CMPC_ERR_INTERNAL; i++)
		good &= cmpc_strerror((cmpc_rv)i)[0] != '\0';
	ok(good, "/cmpc/strerror", "an empty string");

	ctx = mk(t_ok, secret, NULL, "client");
	expect_fail("/cmpc/config/no-anchors", ctx, key, CMPC_ERR_CONFIG, "trust anchor");
	cmpc_free(ctx);

	ctx = cmpc_new();
	rv = cmpc_set_server(ctx, "ftp://127.0.0.1/x");
	ok(rv == CMPC_ERR_CONFIG && msg_ok(ctx, "http"), "/cmpc/config/url-scheme", "%d %s", rv,
	   cmpc_errmsg(ctx));
	rv = cmpc_set_server(ctx, "http://user:pw-Hidden-1@127.0.0.1/x");
	ok(rv == CMPC_ERR_CONFIG && msg_ok(ctx, NULL) && !contains(cmpc_errmsg(ctx), "pw-Hidden-1"),
	   "/cmpc/config/url-userinfo", "%d %s", rv, cmpc_errmsg(ctx));
	rv = cmpc_set_server(ctx, "not a url");
	ok(rv == CMPC_ERR_CONFIG && msg_ok(ctx, NULL), "/cmpc/config/url-garbage", "%d %s", rv,
	   cmpc_errmsg(ctx));
	rv = cmpc_load_trusted(ctx, path("no-such-file.pem"));
	ok(rv == CMPC_ERR_CONFIG && msg_ok(ctx, "no-such-file.pem"), "/cmpc/config/anchors-missing",
	   "%d %s", rv, cmpc_errmsg(ctx));
	rv = cmpc_load_trusted(ctx, path("client.pub"));
	ok(rv == CMPC_ERR_CONFIG && msg_ok(ctx, "no certificate"), "/cmpc/config/anchors-no-cert",
	   "%d %s", rv, cmpc_errmsg(ctx));
	rv = cmpc_set_tls_trust(ctx, path("no-such-file.pem"));
	ok(rv == CMPC_ERR_CONFIG && msg_ok(ctx, "no-such-file.pem"), "/cmpc/config/tls-trust",
	   "%d %s", rv, cmpc_errmsg(ctx));
	rv = cmpc_set1_pbm(ctx, (const unsigned char *)"r", 1, (const unsigned char *)"", 0);
	ok(rv == CMPC_ERR_CONFIG && msg_ok(ctx, "secret"), "/cmpc/config/empty-secret", "%d %s", rv,
	   cmpc_errmsg(ctx));
	(void)cmpc_set_server(ctx, t_ok);
	(void)cmpc_load_trusted(ctx, path("ca1.pem"));
	rv = cmpc_ir(ctx, key, &cert, NULL);
	ok(rv == CMPC_ERR_CONFIG && cert == NULL && msg_ok(ctx, "reference value"),
	   "/cmpc/config/no-pbm", "%d %s", rv, cmpc_errmsg(ctx));
	cmpc_free(ctx);
	cmpc_free(NULL);
}

static void test_ir(EVP_PKEY *key)
{
	static const char *const sub_ca1[] = {"sub1.pem", "ca1.pem", NULL};
	static const char *const ca1[] = {"ca1.pem", NULL};
	const char *t_ok = env("T_OK");
	EVP_PKEY *other;
	cmpc_ctx *ctx;
	size_t mark;

	ctx = mk(t_ok, secret, "ca1.pem", "client");
	mark = loglen;
	expect_ok("/cmpc/ir/ok", ctx, key, sub_ca1);
	ok(contains(logbuf + mark, "(certConf)"), "/cmpc/ir/ok-sent-certconf", "no certConf seen");
	expect_ok("/cmpc/ir/ok-twice", ctx, key, sub_ca1);
	cmpc_free(ctx);

	ctx = mk(t_ok, wrong_secret, "ca1.pem", "client");
	expect_fail("/cmpc/ir/wrong-secret", ctx, key, CMPC_ERR_PROTOCOL,
		    "reference value and secret");
	cmpc_free(ctx);

	/* caPubs of the other CA in a MAC-protected ip must not become anchors. */
	ctx = mk(env("T_ROGUE"), secret, "ca1.pem", "client");
	expect_fail("/cmpc/ir/other-ca", ctx, key, CMPC_ERR_CERT, "trust anchor");
	cmpc_free(ctx);

	ctx = mk(t_ok, secret, "ca2.pem", "client");
	expect_fail("/cmpc/ir/wrong-anchor", ctx, key, CMPC_ERR_CERT, "trust anchor");
	cmpc_free(ctx);

	ctx = mk(t_ok, secret, "ca1.pem", "someone else");
	expect_fail("/cmpc/ir/subject-mismatch", ctx, key, CMPC_ERR_CERT, "CN=someone else");
	cmpc_free(ctx);

	if ((other = EVP_EC_gen("P-256")) == NULL)
		abort();
	ctx = mk(t_ok, secret, "ca1.pem", "client");
	expect_fail("/cmpc/ir/key-mismatch", ctx, other, CMPC_ERR_CERT, "public key");
	cmpc_free(ctx);
	EVP_PKEY_free(other);

	ctx = mk(env("T_REJ"), secret, "ca1.pem", "client");
	expect_fail("/cmpc/ir/rejected", ctx, key, CMPC_ERR_REJECTED, "badPOP");
	ok(contains(cmpc_errmsg(ctx), "POP did not verify (test)"), "/cmpc/ir/rejected-text", "%s",
	   cmpc_errmsg(ctx));
	cmpc_free(ctx);

	ctx = mk(env("T_POLL"), secret, "ca1.pem", "client");
	expect_ok("/cmpc/ir/polling", ctx, key, ca1);
	cmpc_free(ctx);

	ctx = mk(env("T_WAIT"), secret, "ca1.pem", "client");
	cmpc_set_timeouts(ctx, 5, 20, 2);
	expect_fail("/cmpc/ir/waiting", ctx, key, CMPC_ERR_WAITING, "waiting");
	cmpc_free(ctx);

	ctx = mk(env("T_IMPL"), secret, "ca1.pem", "client");
	cmpc_set_implicit_confirm(ctx, 1);
	mark = loglen;
	expect_ok("/cmpc/ir/implicit-confirm", ctx, key, ca1);
	ok(!contains(logbuf + mark, "(certConf)"), "/cmpc/ir/implicit-confirm-no-certconf",
	   "a certConf was sent");
	cmpc_free(ctx);

	ctx = mk(env("T_SIGNED"), secret, "ca1.pem", "client");
	expect_ok("/cmpc/ir/signed-response", ctx, key, ca1);
	cmpc_free(ctx);
	ctx = mk(env("T_SIGNED"), secret, "ca2.pem", "client");
	expect_fail("/cmpc/ir/signed-response-untrusted", ctx, key, CMPC_ERR_PROTOCOL,
		    "trust anchors hold the root");
	cmpc_free(ctx);
}

static void test_http(EVP_PKEY *key)
{
	const char *w = env("T_WRONG");
	cmpc_ctx *ctx;

	ctx = mk(env("T_DEAD"), secret, "ca1.pem", "client");
	expect_fail("/cmpc/http/not-listening", ctx, key, CMPC_ERR_TRANSPORT,
		    "check the server URL");
	cmpc_free(ctx);

	ctx = mk(url(w, "/html"), secret, "ca1.pem", "client");
	expect_fail("/cmpc/http/not-cmp", ctx, key, CMPC_ERR_TRANSPORT, "text/html");
	cmpc_free(ctx);

	ctx = mk(url(w, "/redirect"), secret, "ca1.pem", "client");
	expect_fail("/cmpc/http/redirect", ctx, key, CMPC_ERR_TRANSPORT,
		    "redirected (HTTP 302) to http://127.0.0.1:1/elsewhere");
	cmpc_free(ctx);

	ctx = mk(url(w, "/big"), secret, "ca1.pem", "client");
	cmpc_set_max_response(ctx, 65536);
	expect_fail("/cmpc/http/too-big", ctx, key, CMPC_ERR_TRANSPORT, "65536 bytes");
	cmpc_free(ctx);

	ctx = mk(url(w, "/bignolen"), secret, "ca1.pem", "client");
	cmpc_set_max_response(ctx, 65536);
	expect_fail("/cmpc/http/too-big-no-length", ctx, key, CMPC_ERR_TRANSPORT, "65536 bytes");
	cmpc_free(ctx);

	ctx = mk(url(w, "/big"), secret, "ca1.pem", "client");
	expect_fail("/cmpc/http/too-big-default", ctx, key, CMPC_ERR_TRANSPORT, "1048576 bytes");
	cmpc_free(ctx);

	ctx = mk(url(w, "/garbage"), secret, "ca1.pem", "client");
	expect_fail("/cmpc/http/garbage", ctx, key, CMPC_ERR_PROTOCOL, "not a CMP message");
	cmpc_free(ctx);

	ctx = mk(url(w, "/truncated"), secret, "ca1.pem", "client");
	expect_fail("/cmpc/http/truncated", ctx, key, CMPC_ERR_PROTOCOL, "not a CMP message");
	cmpc_free(ctx);

	ctx = mk(url(w, "/error500"), secret, "ca1.pem", "client");
	expect_fail("/cmpc/http/status-500", ctx, key, CMPC_ERR_TRANSPORT, "HTTP 500");
	cmpc_free(ctx);

	ctx = mk(url(w, "/slow"), secret, "ca1.pem", "client");
	cmpc_set_timeouts(ctx, 5, 1, 60);
	expect_fail("/cmpc/http/msg-timeout", ctx, key, CMPC_ERR_TRANSPORT, "within 1 s");
	cmpc_free(ctx);
}

static int has_bytes(const unsigned char *buf, size_t len, const void *what, size_t n)
{
	size_t i;

	for (i = 0; i + n <= len; i++)
		if (memcmp(buf + i, what, n) == 0)
			return 1;
	return 0;
}

/* What the ir carries, from the DER the Python server saved. */
static void test_request(EVP_PKEY *key)
{
	static const unsigned char san_oid[] = {0x06, 0x03, 0x55, 0x1d, 0x11};
	static const unsigned char pbm_oid[] = {0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
						0xf6, 0x7d, 0x07, 0x42, 0x0d};
	static const unsigned char hmac_sha256[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
						    0x86, 0xf7, 0x0d, 0x02, 0x09};
	static const unsigned char sha256[] = {0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
					       0x65, 0x03, 0x04, 0x02, 0x01};
	unsigned char buf[8192];
	size_t len = 0;
	cmpc_ctx *ctx;
	FILE *f;

	ctx = mk(url(env("T_WRONG"), "/capture"), secret, "ca1.pem", "client");
	expect_fail("/cmpc/request/sent", ctx, key, CMPC_ERR_TRANSPORT, "HTTP 500");
	cmpc_free(ctx);
	if ((f = fopen(path("captured.der"), "rb")) != NULL) {
		len = fread(buf, 1, sizeof(buf), f);
		fclose(f);
	}
	ok(len > 0 && has_bytes(buf, len, san_oid, sizeof(san_oid)) &&
	       has_bytes(buf, len, "client.example", 14),
	   "/cmpc/request/san", "no SAN extension with client.example in the ir");
	ok(has_bytes(buf, len, pbm_oid, sizeof(pbm_oid)) &&
	       has_bytes(buf, len, hmac_sha256, sizeof(hmac_sha256)) &&
	       has_bytes(buf, len, sha256, sizeof(sha256)),
	   "/cmpc/request/pbm-hmac-sha256", "not PBM with SHA-256 and HMAC-SHA256");
	ok(has_bytes(buf, len, ref, strlen(ref)) && !has_bytes(buf, len, secret, strlen(secret)),
	   "/cmpc/request/ref-not-secret", "reference value missing or secret present");
}

static void test_tls(EVP_PKEY *key)
{
	static const char *const sub_ca1[] = {"sub1.pem", "ca1.pem", NULL};
	cmpc_ctx *ctx;

	ctx = mk(env("T_TLS"), secret, "ca1.pem", "client");
	if (cmpc_set_tls_trust(ctx, path("ca1.pem")) != CMPC_OK)
		abort();
	expect_ok("/cmpc/tls/ok", ctx, key, sub_ca1);
	cmpc_free(ctx);

	ctx = mk(env("T_TLS"), secret, "ca1.pem", "client");
	if (cmpc_set_tls_trust(ctx, path("ca2.pem")) != CMPC_OK)
		abort();
	expect_fail("/cmpc/tls/untrusted", ctx, key, CMPC_ERR_TLS,
		    "unable to get local issuer certificate");
	cmpc_free(ctx);
}

int main(void)
{
	EVP_PKEY *key;

	dir = env("T_DIR");
	ref = env("T_REF");
	secret = env("T_SECRET");
	if (cmpc_global_init() != 0) {
		printf("Bail out! cmpc_global_init failed\n");
		return 1;
	}
	if ((key = read_key("client.key")) == NULL) {
		printf("Bail out! cannot read %s\n", path("client.key"));
		return 1;
	}
	test_config(key);
	test_ir(key);
	test_http(key);
	test_request(key);
	test_tls(key);
	ok(loglen > 0 && !contains(logbuf, secret) && !contains(logbuf, wrong_secret),
	   "/cmpc/log/no-secret", "log empty or holds a secret");
	ok(contains(logbuf, "curl: ") && contains(logbuf, "CMP: "), "/cmpc/log/forwarded",
	   "no curl or OpenSSL lines in the log");
	EVP_PKEY_free(key);
	cmpc_global_cleanup();
	printf("1..%d\n", ntest);
	return nfail > 0 ? 1 : 0;
}
