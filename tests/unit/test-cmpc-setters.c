/*
 * The CMP layer's settings (cmp/cmpc_ctx.c) on their own, no peer needed:
 * the refusals a caller can meet (the agent checks most of them earlier,
 * so only a direct call reaches them), those of a request before it sends
 * anything (cmp/cmpc_certreq.c), and every setter with each of its OpenSSL
 * allocations failing in turn.  The second part installs an
 * allocation hook (CRYPTO_set_mem_functions) before OpenSSL allocates
 * anything; armed, it fails the n-th allocation and no other.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cmp/cmpc.h"
#include "tests/unit/cmpc-fixture.h"
#include "tests/unit/tap.h"

/* ---- the allocation hook ---------------------------------------------- */

static unsigned long fail_at; /* 0: disarmed */
static unsigned long seen;    /* allocations since armed */
static int hit;		      /* the n-th one came and failed */

static void *hook_malloc(size_t n, const char *file, int line)
{
	(void)file;
	(void)line;
	if (fail_at != 0 && ++seen == fail_at) {
		hit = 1;
		return NULL;
	}
	return malloc(n);
}

static void *hook_realloc(void *p, size_t n, const char *file, int line)
{
	(void)file;
	(void)line;
	if (fail_at != 0 && ++seen == fail_at) {
		hit = 1;
		return NULL;
	}
	return realloc(p, n);
}

static void hook_free(void *p, const char *file, int line)
{
	(void)file;
	(void)line;
	free(p);
}

static void arm(unsigned long n)
{
	seen = 0;
	hit = 0;
	fail_at = n;
}

static void disarm(void)
{
	fail_at = 0;
}

/* ---- fixtures ----------------------------------------------------------- */

static char tmpdir[256];

static const char *tmp(const char *file)
{
	static char buf[4][512];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", tmpdir, file);
	return buf[i];
}

static void write_file(const char *file, const char *text, X509 *a, X509 *b)
{
	FILE *f = fopen(tmp(file), "w");

	if (f == NULL || (a != NULL && !PEM_write_X509(f, a)) ||
	    (b != NULL && !PEM_write_X509(f, b)) || (text != NULL && fputs(text, f) < 0) ||
	    fclose(f) != 0)
		abort();
}

/* rv must be CMPC_ERR_CONFIG with must in the message. */
static void config_refused(const char *name, cmpc_ctx *ctx, cmpc_rv rv, const char *must)
{
	tap_ok(rv == CMPC_ERR_CONFIG && cfx_contains(cmpc_errmsg(ctx), must), name, "%d %s", rv,
	       cmpc_errmsg(ctx));
}

/* ---- trust anchors: a second file replaces the first ------------------- */

/* A batch sets every row up on one context: the anchors must not pile up
 * (each row appended them again), and a file loaded already is not read
 * again; a different file replaces them. */
static void test_anchors_replaced(X509 *ca, X509 *cert)
{
	cmpc_ctx *ctx = cmpc_new();

	if (ctx == NULL)
		abort();
	write_file("a1.pem", NULL, ca, NULL);
	write_file("a2.pem", NULL, cert, NULL);
	if (cmpc_load_trusted(ctx, tmp("a1.pem")) != CMPC_OK)
		abort();
	unlink(tmp("a1.pem"));
	tap_ok(cmpc_load_trusted(ctx, tmp("a1.pem")) == CMPC_OK &&
		       cmpc_verify_under_anchors(ctx, ca, NULL) == CMPC_OK,
	       "/cmpc-set/trusted/same-file-not-read-again", "%s", cmpc_errmsg(ctx));
	tap_ok(cmpc_load_trusted(ctx, tmp("a2.pem")) == CMPC_OK &&
		       cmpc_verify_under_anchors(ctx, cert, NULL) == CMPC_OK,
	       "/cmpc-set/trusted/other-file-loaded", "%s", cmpc_errmsg(ctx));
	tap_ok(cmpc_verify_under_anchors(ctx, ca, NULL) == CMPC_ERR_CERT,
	       "/cmpc-set/trusted/other-file-replaces", "the first file's anchor still verifies");
	unlink(tmp("a2.pem"));
	cmpc_free(ctx);
}

/* ---- refusals ----------------------------------------------------------- */

static void test_refusals(EVP_PKEY *key, X509 *cert, EVP_PKEY *other, X509 *ca)
{
	cmpc_ctx *ctx = cmpc_new();
	STACK_OF(X509) *chain = sk_X509_new_null();
	unsigned char big[1025];
	cmpc_rv rv;

	if (ctx == NULL || chain == NULL || !sk_X509_push(chain, ca))
		abort();
	memset(big, 'x', sizeof(big));
	tap_ok(strcmp(cmpc_strerror((cmpc_rv)999), "unknown CMP layer error") == 0,
	       "/cmpc-set/strerror-unknown", "%s", cmpc_strerror((cmpc_rv)999));
	tap_ok(strcmp(cmpc_errmsg(NULL), "") == 0 && strcmp(cmpc_transaction_id(NULL), "") == 0 &&
		   !cmpc_left_open(NULL),
	       "/cmpc-set/null-ctx-queries", "not empty");

	/* before a log callback is set, a warning goes nowhere (no crash) */
	rv = cmpc_set1_server(ctx, "http://127.0.0.1/elsewhere");
	tap_ok(rv == CMPC_OK, "/cmpc-set/server/no-log-cb", "%d %s", rv, cmpc_errmsg(ctx));
	cmpc_set_log_cb(ctx, tap_collect, NULL);

	config_refused("/cmpc-set/server/null", ctx, cmpc_set1_server(ctx, NULL),
		       "no CMP server URL given");
	config_refused("/cmpc-set/server/empty", ctx, cmpc_set1_server(ctx, ""),
		       "no CMP server URL given");
	/* RFC 9811 3.3 paths: the profile form is quiet, an empty or nested
	 * profile name only warns */
	tap_loglen = 0;
	tap_log[0] = '\0';
	rv = cmpc_set1_server(ctx, "http://127.0.0.1/.well-known/cmp/p/tls-profile/");
	tap_ok(rv == CMPC_OK && !cfx_contains(tap_log, "RFC 9811"), "/cmpc-set/server/profile-path",
	       "%d %s", rv, tap_log);
	rv = cmpc_set1_server(ctx, "http://127.0.0.1/.well-known/cmp/p/");
	tap_ok(rv == CMPC_OK && cfx_contains(tap_log, "neither /.well-known/cmp"),
	       "/cmpc-set/server/empty-profile-warns", "%d %s", rv, tap_log);
	tap_loglen = 0;
	tap_log[0] = '\0';
	rv = cmpc_set1_server(ctx, "http://127.0.0.1/.well-known/cmp/p/a/b");
	tap_ok(rv == CMPC_OK && cfx_contains(tap_log, "neither /.well-known/cmp"),
	       "/cmpc-set/server/nested-profile-warns", "%d %s", rv, tap_log);

	/* TLS client credentials: both or neither, matching, https only */
	config_refused("/cmpc-set/tls-client/cert-only", ctx,
		       cmpc_set1_tls_client(ctx, cert, NULL, NULL),
		       "needs both a certificate and its key");
	config_refused("/cmpc-set/tls-client/wrong-key", ctx,
		       cmpc_set1_tls_client(ctx, cert, other, NULL), "does not belong");
	config_refused("/cmpc-set/tls-client/http-url", ctx,
		       cmpc_set1_tls_client(ctx, cert, key, chain), "not https://");
	(void)cmpc_set1_server(ctx, "https://127.0.0.1/.well-known/cmp");
	rv = cmpc_set1_tls_client(ctx, cert, key, chain);
	tap_ok(rv == CMPC_OK, "/cmpc-set/tls-client/with-chain", "%d %s", rv, cmpc_errmsg(ctx));
	rv = cmpc_set1_tls_client(ctx, NULL, NULL, NULL);
	tap_ok(rv == CMPC_OK, "/cmpc-set/tls-client/cleared", "%d %s", rv, cmpc_errmsg(ctx));

	/* PBM: the bounds of the reference value and the secret */
	config_refused("/cmpc-set/pbm/no-ref", ctx,
		       cmpc_set1_pbm(ctx, NULL, 0, (const unsigned char *)"s", 1),
		       "reference value is empty");
	config_refused("/cmpc-set/pbm/long-ref", ctx,
		       cmpc_set1_pbm(ctx, big, sizeof(big), (const unsigned char *)"s", 1),
		       "reference value is longer than 1024");
	config_refused("/cmpc-set/pbm/long-secret", ctx,
		       cmpc_set1_pbm(ctx, (const unsigned char *)"r", 1, big, sizeof(big)),
		       "secret is longer than 1024");
	tap_ok(!cfx_contains(cmpc_errmsg(ctx), "xxxxxxxx"), "/cmpc-set/pbm/secret-not-echoed", "%s",
	       cmpc_errmsg(ctx));
	config_refused("/cmpc-set/pbm/owf-not-digest", ctx,
		       cmpc_set_pbm_params(ctx, NID_rsaEncryption, 0, 0),
		       "rsaEncryption is not a digest");
	config_refused("/cmpc-set/pbm/mac-not-hmac", ctx,
		       cmpc_set_pbm_params(ctx, 0, NID_sha256, 0), "SHA256 is not an HMAC");
	config_refused("/cmpc-set/pbm/iterations-low", ctx, cmpc_set_pbm_params(ctx, 0, 0, 99),
		       "99 is outside 100..100000");
	config_refused("/cmpc-set/pbm/iterations-high", ctx, cmpc_set_pbm_params(ctx, 0, 0, 100001),
		       "100001 is outside");
	rv = cmpc_set_pbm_params(ctx, NID_sha512, NID_hmacWithSHA512, 100);
	tap_ok(rv == CMPC_OK, "/cmpc-set/pbm/sha512", "%d %s", rv, cmpc_errmsg(ctx));

	/* trust anchor files */
	config_refused("/cmpc-set/trusted/null", ctx, cmpc_load_trusted(ctx, NULL),
		       "no trust anchor file given");
	config_refused("/cmpc-set/srv-trusted/null", ctx, cmpc_load_srv_trusted(ctx, NULL),
		       "no file of trust anchors");
	rv = cmpc_load_srv_trusted(ctx, tmp("absent.pem"));
	tap_ok(rv == CMPC_ERR_CONFIG &&
		   cfx_contains(cmpc_errmsg(ctx), "server trust anchor file (srv_trusted)") &&
		   cfx_contains(cmpc_errmsg(ctx), "absent.pem"),
	       "/cmpc-set/srv-trusted/missing", "%d %s", rv, cmpc_errmsg(ctx));
	write_file("bad.pem",
		   "-----BEGIN CERTIFICATE-----\nnot base64 !\n-----END CERTIFICATE-----\n", NULL,
		   NULL);
	config_refused("/cmpc-set/srv-trusted/bad-pem", ctx,
		       cmpc_load_srv_trusted(ctx, tmp("bad.pem")), "cannot read certificate 1 of");
	write_file("second-bad.pem",
		   "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", ca, NULL);
	config_refused("/cmpc-set/trusted/second-bad", ctx,
		       cmpc_load_trusted(ctx, tmp("second-bad.pem")),
		       "cannot read certificate 2 of");

	/* the signer: both or neither, matching; back to PBM keeps the secret */
	config_refused("/cmpc-set/signer/key-only", ctx, cmpc_set1_signer(ctx, NULL, key, NULL),
		       "signer needs both");
	config_refused("/cmpc-set/signer/wrong-key", ctx, cmpc_set1_signer(ctx, cert, other, NULL),
		       "signer key does not belong");
	rv = cmpc_set1_pbm(ctx, (const unsigned char *)"r", 1, (const unsigned char *)"s", 1);
	if (rv == CMPC_OK)
		rv = cmpc_set1_signer(ctx, cert, key, chain);
	if (rv == CMPC_OK)
		rv = cmpc_set1_signer(ctx, NULL, NULL, NULL);
	tap_ok(rv == CMPC_OK, "/cmpc-set/signer/set-and-back-to-pbm", "%d %s", rv,
	       cmpc_errmsg(ctx));

	config_refused("/cmpc-set/profile/empty", ctx, cmpc_set1_cert_profile(ctx, ""),
		       "profile name is empty");
	rv = cmpc_set1_cert_profile(ctx, NULL);
	tap_ok(rv == CMPC_OK, "/cmpc-set/profile/cleared", "%d %s", rv, cmpc_errmsg(ctx));
	cmpc_set_timeouts(ctx, 0, 0, 0);
	cmpc_set_max_response(ctx, 0);

	sk_X509_free(chain);
	cmpc_free(ctx);
}

/* ---- a request's refusals before it sends ------------------------------ */

/* A request that must fail before any byte is sent: the server URL, when
 * set, is a port nobody listens on, so that a request that did send would
 * fail differently (CMPC_ERR_TRANSPORT). */
static void refused(const char *name, cmpc_ctx *ctx, cmpc_req_type type, EVP_PKEY *key, X509 *old,
		    X509_REQ *csr, const cmpc_pending *resume, cmpc_rv want, const char *must)
{
	X509 *cert = NULL;
	STACK_OF(X509) *cas = NULL;
	cmpc_rv rv;

	rv = resume != NULL ? cmpc_resume(ctx, resume, key, old, csr, &cert, &cas)
			    : cmpc_certreq(ctx, type, key, old, csr, &cert, &cas);
	tap_ok(rv == want && cert == NULL && cas == NULL && cfx_contains(cmpc_errmsg(ctx), must),
	       name, "%d %s", rv, cmpc_errmsg(ctx));
	X509_free(cert);
	sk_X509_pop_free(cas, X509_free);
}

static void test_request_refusals(EVP_PKEY *key, X509 *cert, X509 *ca, EVP_PKEY *other)
{
	static const char nobody[] = "http://127.0.0.1:9/.well-known/cmp";
	cmpc_ctx *ctx = cmpc_new();
	cmpc_pending p;
	X509_NAME *n = cfx_cn_name("someone else");
	X509_REQ *csr = X509_REQ_new();
	X509 *got = NULL;

	if (ctx == NULL || csr == NULL || !X509_REQ_set_pubkey(csr, other))
		abort();
	tap_ok(cmpc_certreq(NULL, CMPC_REQ_IR, key, NULL, NULL, &got, NULL) == CMPC_ERR_INTERNAL &&
		   cmpc_resume(ctx, NULL, key, NULL, NULL, &got, NULL) == CMPC_ERR_INTERNAL,
	       "/cmpc-req/null-ctx-or-pending", "accepted");
	refused("/cmpc-req/no-key", ctx, CMPC_REQ_IR, NULL, NULL, NULL, NULL, CMPC_ERR_INTERNAL,
		"ir): no key");
	refused("/cmpc-req/unknown-type", ctx, (cmpc_req_type)99, key, NULL, NULL, NULL,
		CMPC_ERR_INTERNAL, "CMP request: no key, no place");
	memset(&p, 0, sizeof(p));
	p.type = CMPC_REQ_IR;
	p.nonce_len = 16;
	refused("/cmpc-req/resume-no-tid", ctx, CMPC_REQ_IR, key, NULL, NULL, &p, CMPC_ERR_CONFIG,
		"lacks its transactionID or nonce");
	p.tid_len = CMPC_ID_MAX + 1;
	refused("/cmpc-req/resume-long-tid", ctx, CMPC_REQ_IR, key, NULL, NULL, &p, CMPC_ERR_CONFIG,
		"lacks its transactionID or nonce");
	refused("/cmpc-req/no-url", ctx, CMPC_REQ_IR, key, NULL, NULL, NULL, CMPC_ERR_CONFIG,
		"no CMP server URL set");
	(void)cmpc_set1_server(ctx, nobody);
	refused("/cmpc-req/cr-unsigned", ctx, CMPC_REQ_CR, key, NULL, NULL, NULL, CMPC_ERR_CONFIG,
		"a cr is signed, and no signer is set");
	refused("/cmpc-req/kur-no-old", ctx, CMPC_REQ_KUR, key, NULL, NULL, NULL, CMPC_ERR_CONFIG,
		"no certificate to update given");
	refused("/cmpc-req/kur-not-signer", ctx, CMPC_REQ_KUR, other, cert, NULL, NULL,
		CMPC_ERR_CONFIG, "a kur must be signed with the certificate being updated");
	refused("/cmpc-req/no-pbm", ctx, CMPC_REQ_IR, key, NULL, NULL, NULL, CMPC_ERR_CONFIG,
		"no reference value and secret set");
	if (cmpc_set1_signer(ctx, cert, key, NULL) != CMPC_OK ||
	    cmpc_set1_sender(ctx, n) != CMPC_OK)
		abort();
	refused("/cmpc-req/sender-not-signer", ctx, CMPC_REQ_CR, other, NULL, NULL, NULL,
		CMPC_ERR_CONFIG, "a sender name other than the signer certificate's subject");
	(void)cmpc_set1_sender(ctx, NULL);
	refused("/cmpc-req/csr-other-key", ctx, CMPC_REQ_P10CR, key, NULL, csr, NULL,
		CMPC_ERR_CONFIG, "the CSR is not for the new key");
	refused("/cmpc-req/no-anchors", ctx, CMPC_REQ_CR, other, NULL, NULL, NULL, CMPC_ERR_CONFIG,
		"no trust anchors loaded");
	write_file("anchor.pem", NULL, ca, NULL);
	if (cmpc_load_trusted(ctx, tmp("anchor.pem")) != CMPC_OK)
		abort();
	refused("/cmpc-req/p10cr-no-subject", ctx, CMPC_REQ_P10CR, other, NULL, NULL, NULL,
		CMPC_ERR_CONFIG, "no subject set, so no CSR can be made");
	unlink(tmp("anchor.pem"));

	/* the other exchanges: no context, no place for the answer, no URL */
	{
		cmpc_ctx *bare = cmpc_new();
		STACK_OF(X509) *certs = NULL;
		STACK_OF(X509_CRL) *crls = NULL;
		cmpc_template tmpl;
		cmpc_rr_status st;
		X509 *root = NULL;
		int refused = 1;

		memset(&tmpl, 0, sizeof(tmpl));
		if (bare == NULL)
			abort();
		refused &= cmpc_genm_ca_certs(NULL, &certs) == CMPC_ERR_INTERNAL;
		refused &= cmpc_genm_ca_certs(ctx, NULL) == CMPC_ERR_INTERNAL &&
			   cfx_contains(cmpc_errmsg(ctx), "no place for the certificates");
		refused &= cmpc_genm_ca_certs(bare, &certs) == CMPC_ERR_CONFIG &&
			   cfx_contains(cmpc_errmsg(bare), "no CMP server URL set");
		refused &= cmpc_genm_root_update(NULL, ca, &root, NULL) == CMPC_ERR_INTERNAL;
		refused &= cmpc_genm_root_update(ctx, NULL, &root, NULL) == CMPC_ERR_INTERNAL &&
			   cfx_contains(cmpc_errmsg(ctx), "no old root certificate");
		refused &= cmpc_genm_cert_template(NULL, &tmpl) == CMPC_ERR_INTERNAL;
		refused &= cmpc_genm_cert_template(ctx, NULL) == CMPC_ERR_INTERNAL &&
			   cfx_contains(cmpc_errmsg(ctx), "no place for the template");
		refused &= cmpc_genm_crls(NULL, NULL, &crls) == CMPC_ERR_INTERNAL;
		refused &= cmpc_genm_crls(ctx, NULL, NULL) == CMPC_ERR_INTERNAL &&
			   cfx_contains(cmpc_errmsg(ctx), "no place for the CRLs");
		refused &= cmpc_rr(NULL, cert, 1, &st) == CMPC_ERR_INTERNAL;
		refused &= cmpc_abandon(NULL, &p, "x") == CMPC_ERR_INTERNAL &&
			   cmpc_abandon(ctx, NULL, "x") == CMPC_ERR_INTERNAL;
		tap_ok(refused && certs == NULL && crls == NULL && root == NULL,
		       "/cmpc-req/genm-rr-abandon-refusals", "%s / %s", cmpc_errmsg(ctx),
		       cmpc_errmsg(bare));
		cmpc_free(bare);
	}
	X509_REQ_free(csr);
	X509_NAME_free(n);
	cmpc_free(ctx);
}

/* ---- every allocation of a setter failing ------------------------------ */

struct fixture {
	EVP_PKEY *key;
	X509 *cert, *ca;
	STACK_OF(X509) * chain;
	X509_NAME *name;
	GENERAL_NAMES *sans;
};

enum setter {
	S_SERVER,
	S_TLS_TRUST,
	S_TLS_CLIENT,
	S_PBM,
	S_TRUSTED,
	S_SRV_TRUSTED,
	S_SUBJECT,
	S_SANS,
	S_SIGNER,
	S_PROFILE,
	S_SENDER,
	S_RECIPIENT,
	S_EXPECTED_SENDER,
	S_COUNT
};

static const char *const setter_name[S_COUNT] = {
    "server", "tls-trust", "tls-client", "pbm",	   "trusted",	"srv-trusted",	  "subject",
    "sans",   "signer",	   "profile",	 "sender", "recipient", "expected-sender"};

static cmpc_rv call_setter(cmpc_ctx *ctx, enum setter s, const struct fixture *f)
{
	switch (s) {
	case S_SERVER:
		return cmpc_set1_server(ctx, "https://127.0.0.1/.well-known/cmp");
	case S_TLS_TRUST:
		return cmpc_set1_tls_trust(ctx, tmp("ca.pem"));
	case S_TLS_CLIENT:
		return cmpc_set1_tls_client(ctx, f->cert, f->key, f->chain);
	case S_PBM:
		return cmpc_set1_pbm(ctx, (const unsigned char *)"ref", 3,
				     (const unsigned char *)"Secret-1", 8);
	case S_TRUSTED:
		return cmpc_load_trusted(ctx, tmp("two.pem"));
	case S_SRV_TRUSTED:
		return cmpc_load_srv_trusted(ctx, tmp("two.pem"));
	case S_SUBJECT:
		return cmpc_set1_subject(ctx, f->name);
	case S_SANS:
		return cmpc_set1_sans(ctx, f->sans);
	case S_SIGNER:
		return cmpc_set1_signer(ctx, f->cert, f->key, f->chain);
	case S_PROFILE:
		return cmpc_set1_cert_profile(ctx, "tls-server");
	case S_SENDER:
		return cmpc_set1_sender(ctx, f->name);
	case S_RECIPIENT:
		return cmpc_set1_recipient(ctx, f->name);
	case S_EXPECTED_SENDER:
		return cmpc_set1_expected_sender(ctx, f->name);
	case S_COUNT:
		break;
	}
	return CMPC_ERR_INTERNAL;
}

/*
 * For n = 1, 2, ...: a fresh context, the n-th allocation of the setter
 * failing.  Each run must end in CMPC_OK (OpenSSL absorbed it) or in
 * CMPC_ERR_INTERNAL saying "out of memory", never in another error, and
 * the context must stay usable: the same setter then succeeds, and
 * cmpc_free releases everything (LeakSanitizer in the ASan build).  The
 * sweep ends at the first n the setter does not reach.
 */
static void sweep(enum setter s, const struct fixture *f)
{
	unsigned long n;
	int refused = 0, bad = 0, ended = 0;
	char why[600] = "", name[64];

	for (n = 1; n < 5000 && !ended; n++) {
		cmpc_ctx *ctx = cmpc_new();
		cmpc_rv rv;

		if (ctx == NULL)
			abort();
		if (s == S_TLS_CLIENT)
			(void)cmpc_set1_server(ctx, "https://127.0.0.1/.well-known/cmp");
		arm(n);
		rv = call_setter(ctx, s, f);
		disarm();
		if (!hit)
			ended = 1;
		if (hit && rv == CMPC_ERR_INTERNAL &&
		    cfx_contains(cmpc_errmsg(ctx), "out of memory"))
			refused++;
		else if (rv != CMPC_OK && bad++ == 0)
			snprintf(why, sizeof(why), "n=%lu: %d %s", n, rv, cmpc_errmsg(ctx));
		if (hit && (rv = call_setter(ctx, s, f)) != CMPC_OK && bad++ == 0)
			snprintf(why, sizeof(why), "n=%lu, again: %d %s", n, rv, cmpc_errmsg(ctx));
		cmpc_free(ctx);
		ERR_clear_error();
	}
	snprintf(name, sizeof(name), "/cmpc-set/oom/%s", setter_name[s]);
	tap_ok(ended && bad == 0 && refused > 0, name,
	       "%lu points, %d said out of memory, %d bad%s%s", n - 1, refused, bad,
	       why[0] ? ": " : "", why);
}

/* cmpc_new itself: NULL or a whole context, never half of one. */
static void sweep_new(void)
{
	unsigned long n;
	int nulls = 0, ended = 0;

	for (n = 1; n < 500 && !ended; n++) {
		cmpc_ctx *ctx;

		arm(n);
		ctx = cmpc_new();
		disarm();
		if (!hit)
			ended = 1;
		if (ctx == NULL)
			nulls++;
		cmpc_free(ctx);
		ERR_clear_error();
	}
	tap_ok(ended && nulls > 0, "/cmpc-set/oom/new", "%lu points, %d gave NULL", n - 1, nulls);
}

int main(void)
{
	const char *base = getenv("TMPDIR");
	struct fixture f;
	EVP_PKEY *other, *ca_key;
	int s;

	/* before OpenSSL's first allocation, or the hook does not take */
	if (!CRYPTO_set_mem_functions(hook_malloc, hook_realloc, hook_free)) {
		printf("Bail out! CRYPTO_set_mem_functions refused the hook\n");
		return 1;
	}
	snprintf(tmpdir, sizeof(tmpdir), "%s/cmpc-set.XXXXXX", base != NULL ? base : "/tmp");
	if (mkdtemp(tmpdir) == NULL || cmpc_global_init() != 0) {
		printf("Bail out! no temporary directory or no libcurl\n");
		return 1;
	}
	tap_plan(64);
	f.key = cfx_ec_key();
	other = cfx_ec_key();
	ca_key = cfx_ec_key();
	f.cert = cfx_self_signed(f.key, "client");
	f.ca = cfx_self_signed(ca_key, "Test CA");
	f.chain = sk_X509_new_null();
	f.name = cfx_cn_name("Test CA");
	f.sans = cfx_dns_sans("client.example");
	if (f.chain == NULL || !sk_X509_push(f.chain, f.ca))
		abort();
	write_file("ca.pem", NULL, f.ca, NULL);
	write_file("two.pem", NULL, f.ca, f.cert);

	test_refusals(f.key, f.cert, other, f.ca);
	test_request_refusals(f.key, f.cert, f.ca, other);
	test_anchors_replaced(f.ca, f.cert);
	for (s = 0; s < S_COUNT; s++)
		sweep((enum setter)s, &f);
	sweep_new();

	sk_X509_free(f.chain);
	GENERAL_NAMES_free(f.sans);
	X509_NAME_free(f.name);
	X509_free(f.cert);
	X509_free(f.ca);
	EVP_PKEY_free(f.key);
	EVP_PKEY_free(other);
	EVP_PKEY_free(ca_key);
	unlink(tmp("ca.pem"));
	unlink(tmp("two.pem"));
	unlink(tmp("bad.pem"));
	unlink(tmp("second-bad.pem"));
	rmdir(tmpdir);
	cmpc_global_cleanup();
	return tap_done();
}
