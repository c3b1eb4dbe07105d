/*
 * cmpc against real peers, started by test-cmpc.sh: OpenSSL's CMP mock
 * server in several configurations and a Python HTTP server that answers
 * wrongly on purpose.  Their URLs and the test PKI come in T_* variables.
 * Prints TAP; exits 1 if a test failed, 77 if run without the script.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cmp/cmpc.h"
#include "tests/common/cmp-asn1.h"
#include "tests/unit/cmpc-fixture.h"
#include "tests/unit/tap.h"

static const char *dir;

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

/* A context as the agent sets one up: subject CN=cn, one DNS SAN; anchors
 * is a file in T_DIR. */
static cmpc_ctx *mk(const char *server, const char *sec, const char *anchors, const char *cn)
{
	cmpc_ctx *ctx = cfx_ctx_new(server, sec, anchors != NULL ? path(anchors) : NULL);
	X509_NAME *name = cfx_cn_name(cn);
	GENERAL_NAMES *sans = cfx_dns_sans("client.example");

	if (cmpc_set1_subject(ctx, name) != CMPC_OK || cmpc_set1_sans(ctx, sans) != CMPC_OK) {
		fprintf(stderr, "setting up the context failed: %s\n", cmpc_errmsg(ctx));
		abort();
	}
	X509_NAME_free(name);
	GENERAL_NAMES_free(sans);
	return ctx;
}

/* One failing ir: expects rv, a message with `must`, untouched outputs. */
static void expect_fail(const char *name, cmpc_ctx *ctx, EVP_PKEY *key, cmpc_rv want,
			const char *must)
{
	X509 *sentinel_cert = (X509 *)&tap_ntest;
	STACK_OF(X509) *sentinel_ca = (STACK_OF(X509) *)&tap_nfail;
	X509 *cert = sentinel_cert;
	STACK_OF(X509) *ca = sentinel_ca;
	cmpc_rv rv = cmpc_ir(ctx, key, &cert, &ca);

	tap_ok(rv == want && cfx_msg_ok(ctx, must) && cert == sentinel_cert && ca == sentinel_ca,
	       name, "rv %d (%s), want %d; message: %s", rv, cmpc_strerror(rv), want,
	       cmpc_errmsg(ctx));
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
		x = cfx_read_cert(path(cas[i]));
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
	tap_ok(good, name, "rv %d (%s): %s %s", rv, cmpc_strerror(rv), cmpc_errmsg(ctx), why);
	X509_free(cert);
	sk_X509_pop_free(ca, X509_free);
}

static void test_config(EVP_PKEY *key)
{
	const char *t_ok = tap_env("T_OK");
	cmpc_ctx *ctx;
	X509 *cert = NULL;
	cmpc_rv rv;
	int i, good = 1;

	for (i = CMPC_OK; i <= CMPC_ERR_INTERNAL; i++)
		good &= cmpc_strerror((cmpc_rv)i)[0] != '\0';
	tap_ok(good, "/cmpc/strerror", "an empty string");

	ctx = mk(t_ok, cfx_secret, NULL, "client");
	expect_fail("/cmpc/config/no-anchors", ctx, key, CMPC_ERR_CONFIG, "trust anchor");
	cmpc_free(ctx);

	ctx = cmpc_new();
	rv = cmpc_set1_server(ctx, "gopher://127.0.0.1/x");
	tap_ok(rv == CMPC_ERR_CONFIG && cfx_msg_ok(ctx, "http"), "/cmpc/config/url-scheme", "%d %s",
	       rv, cmpc_errmsg(ctx));
	rv = cmpc_set1_server(ctx, "http://user:pw-Hidden-1@127.0.0.1/x");
	tap_ok(rv == CMPC_ERR_CONFIG && cfx_msg_ok(ctx, NULL) &&
		   !cfx_contains(cmpc_errmsg(ctx), "pw-Hidden-1"),
	       "/cmpc/config/url-userinfo", "%d %s", rv, cmpc_errmsg(ctx));
	rv = cmpc_set1_server(ctx, "not a url");
	tap_ok(rv == CMPC_ERR_CONFIG && cfx_msg_ok(ctx, NULL), "/cmpc/config/url-garbage", "%d %s",
	       rv, cmpc_errmsg(ctx));
	rv = cmpc_load_trusted(ctx, path("no-such-file.pem"));
	tap_ok(rv == CMPC_ERR_CONFIG && cfx_msg_ok(ctx, "no-such-file.pem"),
	       "/cmpc/config/anchors-missing", "%d %s", rv, cmpc_errmsg(ctx));
	rv = cmpc_load_trusted(ctx, path("client.pub"));
	tap_ok(rv == CMPC_ERR_CONFIG && cfx_msg_ok(ctx, "no certificate"),
	       "/cmpc/config/anchors-no-cert", "%d %s", rv, cmpc_errmsg(ctx));
	rv = cmpc_set1_tls_trust(ctx, path("no-such-file.pem"));
	tap_ok(rv == CMPC_ERR_CONFIG && cfx_msg_ok(ctx, "no-such-file.pem"),
	       "/cmpc/config/tls-trust", "%d %s", rv, cmpc_errmsg(ctx));
	rv = cmpc_set1_pbm(ctx, (const unsigned char *)"r", 1, (const unsigned char *)"", 0);
	tap_ok(rv == CMPC_ERR_CONFIG && cfx_msg_ok(ctx, "secret"), "/cmpc/config/empty-secret",
	       "%d %s", rv, cmpc_errmsg(ctx));
	(void)cmpc_set1_server(ctx, t_ok);
	(void)cmpc_load_trusted(ctx, path("ca1.pem"));
	rv = cmpc_ir(ctx, key, &cert, NULL);
	tap_ok(rv == CMPC_ERR_CONFIG && cert == NULL && cfx_msg_ok(ctx, "reference value"),
	       "/cmpc/config/no-pbm", "%d %s", rv, cmpc_errmsg(ctx));
	cmpc_free(ctx);
	cmpc_free(NULL);

	/* TLS trust and TLS client credentials are independent settings, in
	 * either order (the trust setter once freed the credentials and left
	 * the pointers: a double free at cmpc_free). */
	{
		X509 *c1 = cfx_read_cert(path("c1.pem"));

		if (c1 == NULL)
			abort();
		ctx = cmpc_new();
		rv = cmpc_set1_tls_client(ctx, c1, key, NULL);
		if (rv == CMPC_OK)
			rv = cmpc_set1_tls_trust(ctx, path("ca1.pem"));
		if (rv == CMPC_OK)
			rv = cmpc_set1_tls_trust(ctx, NULL);
		cmpc_free(ctx);
		tap_ok(rv == CMPC_OK, "/cmpc/config/tls-client-then-trust", "%d", rv);
		ctx = cmpc_new();
		rv = cmpc_set1_tls_trust(ctx, path("ca1.pem"));
		if (rv == CMPC_OK)
			rv = cmpc_set1_tls_client(ctx, c1, key, NULL);
		if (rv == CMPC_OK)
			rv = cmpc_set1_tls_trust(ctx, path("ca2.pem"));
		cmpc_free(ctx);
		tap_ok(rv == CMPC_OK, "/cmpc/config/tls-trust-then-client", "%d", rv);
		tap_ok(X509_get_ext_count(c1) > 0, "/cmpc/config/tls-client-ref-kept",
		       "certificate freed under the caller");
		X509_free(c1);
	}
}

static void test_ir(EVP_PKEY *key)
{
	static const char *const sub_ca1[] = {"sub1.pem", "ca1.pem", NULL};
	static const char *const ca1[] = {"ca1.pem", NULL};
	const char *t_ok = tap_env("T_OK");
	EVP_PKEY *other;
	cmpc_ctx *ctx;
	size_t mark;

	ctx = mk(t_ok, cfx_secret, "ca1.pem", "client");
	mark = tap_loglen;
	expect_ok("/cmpc/ir/ok", ctx, key, sub_ca1);
	tap_ok(cfx_contains(tap_log + mark, "(certConf)"), "/cmpc/ir/ok-sent-certconf",
	       "no certConf seen");
	expect_ok("/cmpc/ir/ok-twice", ctx, key, sub_ca1);
	cmpc_free(ctx);

	ctx = mk(t_ok, cfx_wrong_secret, "ca1.pem", "client");
	expect_fail("/cmpc/ir/wrong-secret", ctx, key, CMPC_ERR_PROTOCOL,
		    "reference value and secret");
	cmpc_free(ctx);

	/* caPubs of the other CA in a MAC-protected ip must not become anchors. */
	ctx = mk(tap_env("T_ROGUE"), cfx_secret, "ca1.pem", "client");
	expect_fail("/cmpc/ir/other-ca", ctx, key, CMPC_ERR_CERT, "trust anchor");
	cmpc_free(ctx);

	ctx = mk(t_ok, cfx_secret, "ca2.pem", "client");
	expect_fail("/cmpc/ir/wrong-anchor", ctx, key, CMPC_ERR_CERT, "trust anchor");
	cmpc_free(ctx);

	ctx = mk(t_ok, cfx_secret, "ca1.pem", "someone else");
	expect_fail("/cmpc/ir/subject-mismatch", ctx, key, CMPC_ERR_CERT, "CN=someone else");
	cmpc_free(ctx);

	if ((other = EVP_EC_gen("P-256")) == NULL)
		abort();
	ctx = mk(t_ok, cfx_secret, "ca1.pem", "client");
	expect_fail("/cmpc/ir/key-mismatch", ctx, other, CMPC_ERR_CERT, "public key");
	cmpc_free(ctx);
	EVP_PKEY_free(other);

	ctx = mk(tap_env("T_REJ"), cfx_secret, "ca1.pem", "client");
	expect_fail("/cmpc/ir/rejected", ctx, key, CMPC_ERR_REJECTED, "badPOP");
	tap_ok(cfx_contains(cmpc_errmsg(ctx), "POP did not verify (test)"),
	       "/cmpc/ir/rejected-text", "%s", cmpc_errmsg(ctx));
	cmpc_free(ctx);

	ctx = mk(tap_env("T_POLL"), cfx_secret, "ca1.pem", "client");
	expect_ok("/cmpc/ir/polling", ctx, key, ca1);
	cmpc_free(ctx);

	ctx = mk(tap_env("T_WAIT"), cfx_secret, "ca1.pem", "client");
	cmpc_set_timeouts(ctx, 5, 20, 2);
	expect_fail("/cmpc/ir/waiting", ctx, key, CMPC_ERR_WAITING, "waiting");
	cmpc_free(ctx);

	ctx = mk(tap_env("T_IMPL"), cfx_secret, "ca1.pem", "client");
	cmpc_set_implicit_confirm(ctx, 1);
	mark = tap_loglen;
	expect_ok("/cmpc/ir/implicit-confirm", ctx, key, ca1);
	tap_ok(!cfx_contains(tap_log + mark, "(certConf)"), "/cmpc/ir/implicit-confirm-no-certconf",
	       "a certConf was sent");
	cmpc_free(ctx);

	ctx = mk(tap_env("T_SIGNED"), cfx_secret, "ca1.pem", "client");
	expect_ok("/cmpc/ir/signed-response", ctx, key, ca1);
	cmpc_free(ctx);
	ctx = mk(tap_env("T_SIGNED"), cfx_secret, "ca2.pem", "client");
	expect_fail("/cmpc/ir/signed-response-untrusted", ctx, key, CMPC_ERR_PROTOCOL,
		    "trust anchors hold the root");
	cmpc_free(ctx);

	/* An end entity of the same PKI (no cmcCA/cmcRA) may not speak for
	 * the CA; pinned as srv_cert, or with any signer allowed, it may. */
	cfx_accepted = 0;
	ctx = mk(tap_env("T_SIGNED_EE"), cfx_secret, "ca1.pem", "client");
	cmpc_set_accept_cb(ctx, cfx_count_accept, NULL);
	expect_fail("/cmpc/trust/ee-signer-refused", ctx, key, CMPC_ERR_PROTOCOL,
		    "may not speak for the CA");
	tap_ok(cfx_accepted == 0, "/cmpc/trust/ee-signer-refused/nothing-accepted", "accepted %d",
	       cfx_accepted);
	cmpc_free(ctx);
	ctx = mk(tap_env("T_SIGNED_EE"), cfx_secret, "ca1.pem", "client");
	cmpc_set_any_response_signer(ctx, 1);
	expect_ok("/cmpc/trust/any-signer", ctx, key, ca1);
	cmpc_free(ctx);
	{
		X509 *srv = cfx_read_cert(path("srv1.pem"));

		ctx = mk(tap_env("T_SIGNED_EE"), cfx_secret, "ca2.pem", "client");
		if (srv == NULL || cmpc_set1_srv_cert(ctx, srv) != CMPC_OK)
			abort();
		X509_free(srv);
		/* the issued certificate is still checked against ca2: refused,
		 * but only after the pinned signer was accepted */
		expect_fail("/cmpc/trust/srv-cert-pinned", ctx, key, CMPC_ERR_CERT,
			    "trust anchors");
		cmpc_free(ctx);
	}
	ctx = mk(tap_env("T_SIGNED"), cfx_secret, "ca2.pem", "client");
	if (cmpc_load_srv_trusted(ctx, path("ca1.pem")) != CMPC_OK)
		abort();
	expect_fail("/cmpc/trust/srv-trusted-separate", ctx, key, CMPC_ERR_CERT, "trust anchors");
	cmpc_free(ctx);
}

static void test_http(EVP_PKEY *key)
{
	const char *w = tap_env("T_WRONG");
	cmpc_ctx *ctx;

	ctx = mk(tap_env("T_DEAD"), cfx_secret, "ca1.pem", "client");
	expect_fail("/cmpc/http/not-listening", ctx, key, CMPC_ERR_TRANSPORT,
		    "check the server URL");
	cmpc_free(ctx);

	ctx = mk(url(w, "/html"), cfx_secret, "ca1.pem", "client");
	expect_fail("/cmpc/http/not-cmp", ctx, key, CMPC_ERR_TRANSPORT, "text/html");
	cmpc_free(ctx);

	ctx = mk(url(w, "/redirect"), cfx_secret, "ca1.pem", "client");
	expect_fail("/cmpc/http/redirect", ctx, key, CMPC_ERR_TRANSPORT,
		    "redirected (HTTP 302) to http://127.0.0.1:1/elsewhere");
	cmpc_free(ctx);

	ctx = mk(url(w, "/big"), cfx_secret, "ca1.pem", "client");
	cmpc_set_max_response(ctx, 65536);
	expect_fail("/cmpc/http/too-big", ctx, key, CMPC_ERR_TRANSPORT, "65536 bytes");
	cmpc_free(ctx);

	ctx = mk(url(w, "/bignolen"), cfx_secret, "ca1.pem", "client");
	cmpc_set_max_response(ctx, 65536);
	expect_fail("/cmpc/http/too-big-no-length", ctx, key, CMPC_ERR_TRANSPORT, "65536 bytes");
	cmpc_free(ctx);

	ctx = mk(url(w, "/big"), cfx_secret, "ca1.pem", "client");
	expect_fail("/cmpc/http/too-big-default", ctx, key, CMPC_ERR_TRANSPORT, "1048576 bytes");
	cmpc_free(ctx);

	ctx = mk(url(w, "/garbage"), cfx_secret, "ca1.pem", "client");
	expect_fail("/cmpc/http/garbage", ctx, key, CMPC_ERR_PROTOCOL, "not a CMP message");
	cmpc_free(ctx);

	ctx = mk(url(w, "/truncated"), cfx_secret, "ca1.pem", "client");
	expect_fail("/cmpc/http/truncated", ctx, key, CMPC_ERR_PROTOCOL, "not a CMP message");
	cmpc_free(ctx);

	ctx = mk(url(w, "/error500"), cfx_secret, "ca1.pem", "client");
	expect_fail("/cmpc/http/status-500", ctx, key, CMPC_ERR_TRANSPORT, "HTTP 500");
	cmpc_free(ctx);

	ctx = mk(url(w, "/slow"), cfx_secret, "ca1.pem", "client");
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

	ctx = mk(url(tap_env("T_WRONG"), "/capture"), cfx_secret, "ca1.pem", "client");
	expect_fail("/cmpc/request/sent", ctx, key, CMPC_ERR_TRANSPORT, "HTTP 500");
	cmpc_free(ctx);
	if ((f = fopen(path("captured.der"), "rb")) != NULL) {
		len = fread(buf, 1, sizeof(buf), f);
		fclose(f);
	}
	tap_ok(len > 0 && has_bytes(buf, len, san_oid, sizeof(san_oid)) &&
	       has_bytes(buf, len, "client.example", 14),
	   "/cmpc/request/san", "no SAN extension with client.example in the ir");
	tap_ok(has_bytes(buf, len, pbm_oid, sizeof(pbm_oid)) &&
	       has_bytes(buf, len, hmac_sha256, sizeof(hmac_sha256)) &&
	       has_bytes(buf, len, sha256, sizeof(sha256)),
	   "/cmpc/request/pbm-hmac-sha256", "not PBM with SHA-256 and HMAC-SHA256");
	tap_ok(has_bytes(buf, len, cfx_ref, strlen(cfx_ref)) &&
		   !has_bytes(buf, len, cfx_secret, strlen(cfx_secret)),
	       "/cmpc/request/ref-not-secret", "reference value missing or secret present");
}

static void test_tls(EVP_PKEY *key)
{
	static const char *const sub_ca1[] = {"sub1.pem", "ca1.pem", NULL};
	cmpc_ctx *ctx;

	ctx = mk(tap_env("T_TLS"), cfx_secret, "ca1.pem", "client");
	if (cmpc_set1_tls_trust(ctx, path("ca1.pem")) != CMPC_OK)
		abort();
	expect_ok("/cmpc/tls/ok", ctx, key, sub_ca1);
	cmpc_free(ctx);

	ctx = mk(tap_env("T_TLS"), cfx_secret, "ca1.pem", "client");
	if (cmpc_set1_tls_trust(ctx, path("ca2.pem")) != CMPC_OK)
		abort();
	expect_fail("/cmpc/tls/untrusted", ctx, key, CMPC_ERR_TLS,
		    "unable to get local issuer certificate");
	cmpc_free(ctx);
}

/* ---- certreq of every kind, signer, PBM parameters, header ------------- */

/* Our own reading of a captured PKIMessage (tests/common/cmp-asn1.h):
 * OpenSSL 3.0 has no getters for the protection parameters.  Not the
 * client's templates (cmp/cmpc-int.h): the client encodes PBM-protected
 * requests with them (cmpc_pbm.c), and a bug there must not be read back. */
static void free_msg(TCMP_PKIMESSAGE *m)
{
	ASN1_item_free((ASN1_VALUE *)m, ASN1_ITEM_rptr(TCMP_PKIMESSAGE));
}

/* Sends one request of type to the capturing server and decodes it. */
static TCMP_PKIMESSAGE *capture(cmpc_ctx *ctx, cmpc_req_type type, EVP_PKEY *key, X509 *old)
{
	static unsigned char buf[16384];
	const unsigned char *p = buf;
	X509 *cert = NULL;
	size_t len = 0;
	FILE *f;

	remove(path("captured.der"));
	if (cmpc_set1_server(ctx, url(tap_env("T_WRONG"), "/capture")) != CMPC_OK ||
	    cmpc_certreq(ctx, type, key, old, NULL, &cert, NULL) != CMPC_ERR_TRANSPORT) {
		X509_free(cert);
		return NULL;
	}
	if ((f = fopen(path("captured.der"), "rb")) != NULL) {
		len = fread(buf, 1, sizeof(buf), f);
		fclose(f);
	}
	if (len == 0)
		return NULL;
	return (TCMP_PKIMESSAGE *)ASN1_item_d2i(NULL, &p, (long)len, ASN1_ITEM_rptr(TCMP_PKIMESSAGE));
}

static int prot_nid(const TCMP_PKIMESSAGE *m)
{
	return m != NULL && m->header->protectionAlg != NULL
		   ? OBJ_obj2nid(m->header->protectionAlg->algorithm)
		   : NID_undef;
}

/* The iteration count of a PBM-protected message, -1 if none. */
static long pbm_iter(const TCMP_PKIMESSAGE *m, int *ret_salt_len, int *ret_owf, int *ret_mac)
{
	const ASN1_STRING *seq;
	const unsigned char *p;
	const void *pval;
	int ptype;
	TCMP_PBMPARAMETER *pb;
	long it;

	if (prot_nid(m) != NID_id_PasswordBasedMAC)
		return -1;
	X509_ALGOR_get0(NULL, &ptype, &pval, m->header->protectionAlg);
	if (ptype != V_ASN1_SEQUENCE)
		return -1;
	seq = pval;
	p = seq->data;
	pb = (TCMP_PBMPARAMETER *)ASN1_item_d2i(NULL, &p, seq->length,
						 ASN1_ITEM_rptr(TCMP_PBMPARAMETER));
	if (pb == NULL)
		return -1;
	it = ASN1_INTEGER_get(pb->iterationCount);
	*ret_salt_len = pb->salt->length;
	*ret_owf = OBJ_obj2nid(pb->owf->algorithm);
	*ret_mac = OBJ_obj2nid(pb->mac->algorithm);
	ASN1_item_free((ASN1_VALUE *)pb, ASN1_ITEM_rptr(TCMP_PBMPARAMETER));
	return it;
}

/* The UTF8String of the certProfile ITAV in generalInfo, or "". */
static void cert_profile(const TCMP_PKIMESSAGE *m, char *out, size_t len)
{
	STACK_OF(ASN1_TYPE) *itav = NULL, *names = NULL;
	const ASN1_TYPE *t, *oid, *val, *first;
	const unsigned char *p;
	int i;

	out[0] = '\0';
	for (i = 0; m != NULL && i < sk_ASN1_TYPE_num(m->header->generalInfo); i++) {
		t = sk_ASN1_TYPE_value(m->header->generalInfo, i);
		if (t->type != V_ASN1_SEQUENCE)
			continue;
		p = t->value.sequence->data;
		itav = d2i_ASN1_SEQUENCE_ANY(NULL, &p, t->value.sequence->length);
		if (itav != NULL && sk_ASN1_TYPE_num(itav) == 2 &&
		    (oid = sk_ASN1_TYPE_value(itav, 0))->type == V_ASN1_OBJECT &&
		    OBJ_obj2nid(oid->value.object) == NID_undef) {
			char txt[64];

			OBJ_obj2txt(txt, sizeof(txt), oid->value.object, 1);
			val = sk_ASN1_TYPE_value(itav, 1);
			if (strcmp(txt, "1.3.6.1.5.5.7.4.21") == 0 &&
			    val->type == V_ASN1_SEQUENCE) {
				p = val->value.sequence->data;
				names = d2i_ASN1_SEQUENCE_ANY(NULL, &p,
							      val->value.sequence->length);
				if (names != NULL && sk_ASN1_TYPE_num(names) == 1 &&
				    (first = sk_ASN1_TYPE_value(names, 0))->type ==
					V_ASN1_UTF8STRING)
					snprintf(out, len, "%.*s",
						 first->value.utf8string->length,
						 (const char *)first->value.utf8string->data);
				sk_ASN1_TYPE_pop_free(names, ASN1_TYPE_free);
			}
		}
		sk_ASN1_TYPE_pop_free(itav, ASN1_TYPE_free);
	}
}

static int gn_is(const GENERAL_NAME *gn, const X509_NAME *name)
{
	return gn != NULL && gn->type == GEN_DIRNAME && X509_NAME_cmp(gn->d.dirn, name) == 0;
}

static void test_header(EVP_PKEY *key)
{
	X509_NAME *snd = cfx_cn_name("sender-x"), *rcp = cfx_cn_name("recipient-y");
	char prof[128];
	int salt = 0, owf = 0, mac = 0;
	cmpc_ctx *ctx;
	TCMP_PKIMESSAGE *m;
	long it;
	cmpc_rv rv;

	ctx = mk(tap_env("T_OK"), cfx_secret, "ca1.pem", "client");
	m = capture(ctx, CMPC_REQ_IR, key, NULL);
	it = pbm_iter(m, &salt, &owf, &mac);
	tap_ok(it == 10000 && salt == 16 && owf == NID_sha256 && mac == NID_hmacWithSHA256,
	   "/cmpc/pbm/default-10000", "iterations %ld salt %d owf %d mac %d", it, salt, owf, mac);
	free_msg(m);

	rv = cmpc_set_pbm_params(ctx, NID_sha512, NID_hmacWithSHA512, 2345);
	m = capture(ctx, CMPC_REQ_IR, key, NULL);
	it = pbm_iter(m, &salt, &owf, &mac);
	tap_ok(rv == CMPC_OK && it == 2345 && salt == 16 && owf == NID_sha512 &&
	       mac == NID_hmacWithSHA512,
	   "/cmpc/pbm/iterations-sent", "rv %d iterations %ld salt %d owf %d mac %d", rv, it, salt,
	   owf, mac);
	free_msg(m);
	/* the openssl mock server verifies the re-protected request */
	(void)cmpc_set1_server(ctx, tap_env("T_OK"));
	expect_ok("/cmpc/pbm/iterations-accepted-by-openssl", ctx, key, NULL);
	rv = cmpc_set_pbm_params(ctx, 0, 0, 99);
	tap_ok(rv == CMPC_ERR_CONFIG && cfx_msg_ok(ctx, "100..100000"),
	       "/cmpc/pbm/iterations-range", "%d %s", rv, cmpc_errmsg(ctx));
	rv = cmpc_set_pbm_params(ctx, NID_sha256, NID_sha256, 1000);
	tap_ok(rv == CMPC_ERR_CONFIG && cfx_msg_ok(ctx, "MAC"), "/cmpc/pbm/bad-mac", "%d %s", rv,
	       cmpc_errmsg(ctx));
	cmpc_free(ctx);

	ctx = mk(tap_env("T_OK"), cfx_secret, "ca1.pem", "client");
	if (cmpc_set1_cert_profile(ctx, "tls-server") != CMPC_OK ||
	    cmpc_set1_sender(ctx, snd) != CMPC_OK || cmpc_set1_recipient(ctx, rcp) != CMPC_OK)
		abort();
	m = capture(ctx, CMPC_REQ_IR, key, NULL);
	cert_profile(m, prof, sizeof(prof));
	tap_ok(strcmp(prof, "tls-server") == 0, "/cmpc/header/cert-profile", "certProfile '%s'", prof);
	tap_ok(m != NULL && gn_is(m->header->sender, snd), "/cmpc/header/sender",
	   "sender not CN=sender-x");
	tap_ok(m != NULL && gn_is(m->header->recipient, rcp), "/cmpc/header/recipient",
	   "recipient not CN=recipient-y");
	free_msg(m);
	(void)cmpc_set1_cert_profile(ctx, NULL);
	m = capture(ctx, CMPC_REQ_IR, key, NULL);
	cert_profile(m, prof, sizeof(prof));
	tap_ok(m != NULL && prof[0] == '\0', "/cmpc/header/cert-profile-cleared", "certProfile '%s'",
	   prof);
	free_msg(m);
	cmpc_free(ctx);
	X509_NAME_free(snd);
	X509_NAME_free(rcp);
}

/* Count of needle in the CA log. */
static int ca_events(const char *log, const char *needle)
{
	char *text = cfx_read_file(path(log));
	const char *s = text;
	int n = 0;

	while (s != NULL && (s = strstr(s, needle)) != NULL) {
		n++;
		s += strlen(needle);
	}
	free(text);
	return n;
}

static cmpc_rv req(cmpc_ctx *ctx, cmpc_req_type type, EVP_PKEY *key, X509 *old, X509_REQ *csr,
		   X509 **cert, STACK_OF(X509) **cas)
{
	cmpc_rv rv = cmpc_certreq(ctx, type, key, old, csr, cert, cas);

	if (getenv("T_VERBOSE") != NULL)
		fprintf(stderr, "certreq %d: %d %s\n", type, rv, cmpc_errmsg(ctx));
	return rv;
}

static void test_testca(void)
{
	const char *base = getenv("T_CA");
	char u[512], u2[512];
	EVP_PKEY *k1, *k2, *k3, *k4;
	X509 *c1 = NULL, *c2 = NULL, *c3 = NULL, *c4 = NULL, *x = NULL;
	STACK_OF(X509) *cas1 = NULL;
	X509_REQ *csr;
	cmpc_ctx *ctx;
	cmpc_rv rv;
	size_t mark;
	TCMP_PKIMESSAGE *m;
	int n;

	if (base == NULL) {
		/* a failure, and short of the plan */
		tap_ok(0, "/cmpc/ca", "the test CA is not built (T_CA)");
		return;
	}
	if ((k1 = EVP_EC_gen("P-256")) == NULL || (k2 = EVP_EC_gen("P-256")) == NULL ||
	    (k3 = EVP_EC_gen("P-256")) == NULL || (k4 = EVP_EC_gen("P-256")) == NULL)
		abort();
	snprintf(u, sizeof(u), "%s/.well-known/cmp", base);
	snprintf(u2, sizeof(u2), "%s/.well-known/cmp/p/tls-server", base);

	/* RFC 9811 URL forms: kept, no warning; another path warns only. */
	mark = tap_loglen;
	ctx = mk(u, cfx_secret, "ca/root.pem", "client");
	rv = cmpc_set1_server(ctx, u2);
	tap_ok(rv == CMPC_OK && !cfx_contains(tap_log + mark, "RFC 9811"),
	       "/cmpc/url/well-known-forms", "%d %s", rv, tap_log + mark);
	mark = tap_loglen;
	rv = cmpc_set1_server(ctx, url(base, "/cmp"));
	tap_ok(rv == CMPC_OK && cfx_contains(tap_log + mark, "RFC 9811"),
	       "/cmpc/url/other-path-warns", "%d, no warning", rv);
	cmpc_free(ctx);

	/* ir with PBM at .../.well-known/cmp, then cr signed by the new certificate */
	ctx = mk(u, cfx_secret, "ca/root.pem", "client");
	rv = req(ctx, CMPC_REQ_IR, k1, NULL, NULL, &c1, &cas1);
	tap_ok(rv == CMPC_OK && c1 != NULL, "/cmpc/ca/ir", "%d %s", rv, cmpc_errmsg(ctx));
	if (c1 == NULL)
		goto out;
	(void)cmpc_set1_server(ctx, u2);
	rv = req(ctx, CMPC_REQ_CR, k2, NULL, NULL, &c2, NULL);
	tap_ok(rv == CMPC_ERR_CONFIG && cfx_msg_ok(ctx, "signer"), "/cmpc/ca/cr-needs-signer",
	       "%d %s", rv, cmpc_errmsg(ctx));
	rv = cmpc_set1_signer(ctx, c1, k2, NULL);
	tap_ok(rv == CMPC_ERR_CONFIG, "/cmpc/ca/signer-key-mismatch", "%d %s", rv, cmpc_errmsg(ctx));
	if (cmpc_set1_signer(ctx, c1, k1, cas1) != CMPC_OK)
		abort();
	n = ca_events("ca-main.log", "cr: POP verified");
	rv = req(ctx, CMPC_REQ_CR, k2, NULL, NULL, &c2, NULL);
	tap_ok(rv == CMPC_OK && c2 != NULL && EVP_PKEY_eq(X509_get0_pubkey(c2), k2) == 1 &&
	       ca_events("ca-main.log", "cr: POP verified") == n + 1,
	   "/cmpc/ca/cr-signed", "%d %s", rv, cmpc_errmsg(ctx));
	m = capture(ctx, CMPC_REQ_CR, k2, NULL);
	tap_ok(prot_nid(m) == NID_ecdsa_with_SHA256 && m->extraCerts != NULL &&
	       X509_cmp(sk_X509_value(m->extraCerts, 0), c1) == 0,
	   "/cmpc/ca/cr-signature-protected", "protection %d", prot_nid(m));
	free_msg(m);
	/* back to PBM */
	if (cmpc_set1_signer(ctx, NULL, NULL, NULL) != CMPC_OK)
		abort();
	m = capture(ctx, CMPC_REQ_IR, k2, NULL);
	tap_ok(prot_nid(m) == NID_id_PasswordBasedMAC, "/cmpc/ca/signer-cleared-pbm", "protection %d",
	   prot_nid(m));
	free_msg(m);
	cmpc_free(ctx);

	/* kur signed by the old certificate, with a secret configured as well,
	 * no subject: the new certificate keeps the old subject */
	ctx = mk(u, cfx_secret, "ca/root.pem", "client");
	(void)cmpc_set1_subject(ctx, NULL);
	(void)cmpc_set1_sans(ctx, NULL);
	rv = req(ctx, CMPC_REQ_KUR, k3, c1, NULL, &c3, NULL);
	tap_ok(rv == CMPC_ERR_CONFIG && cfx_msg_ok(ctx, "signer"), "/cmpc/ca/kur-needs-old-signer",
	       "%d %s", rv, cmpc_errmsg(ctx));
	if (cmpc_set1_signer(ctx, c1, k1, cas1) != CMPC_OK ||
	    cmpc_set1_pbm(ctx, (const unsigned char *)cfx_ref, strlen(cfx_ref),
			  (const unsigned char *)cfx_secret, strlen(cfx_secret)) != CMPC_OK)
		abort();
	n = ca_events("ca-main.log", "kur: oldCertID matches an issued certificate");
	rv = req(ctx, CMPC_REQ_KUR, k3, c1, NULL, &c3, NULL);
	tap_ok(rv == CMPC_OK && c3 != NULL && EVP_PKEY_eq(X509_get0_pubkey(c3), k3) == 1 &&
	       X509_NAME_cmp(X509_get_subject_name(c3), X509_get_subject_name(c1)) == 0,
	   "/cmpc/ca/kur", "%d %s", rv, cmpc_errmsg(ctx));
	/* The CA rejects a kur that is not signed by the certificate it updates. */
	tap_ok(ca_events("ca-main.log", "kur: oldCertID matches an issued certificate") == n + 1 &&
	       ca_events("ca-main.log", "kur: POP verified") >= 1,
	   "/cmpc/ca/kur-ca-log", "CA log lacks the kur events");
	m = capture(ctx, CMPC_REQ_KUR, k3, c1);
	tap_ok(prot_nid(m) == NID_ecdsa_with_SHA256 && m->extraCerts != NULL &&
	       X509_cmp(sk_X509_value(m->extraCerts, 0), c1) == 0,
	   "/cmpc/ca/kur-signed-not-pbm", "protection %d", prot_nid(m));
	free_msg(m);
	cmpc_free(ctx);

	/* kur whose new certificate changes the subject */
	ctx = mk(url(base, "/.well-known/cmp"), cfx_secret, "ca/root.pem", "client");
	(void)cmpc_set1_subject(ctx, NULL);
	(void)cmpc_set1_sans(ctx, NULL);
	(void)cmpc_set1_server(ctx, url(tap_env("T_CA_WS"), "/.well-known/cmp"));
	(void)cmpc_set1_signer(ctx, c1, k1, cas1);
	cfx_accepted = 0;
	cmpc_set_accept_cb(ctx, cfx_count_accept, NULL);
	n = ca_events("ca-wrongsubj.log", "rejected the certificate (PKIStatus: rejection; "
					  "PKIFailureInfo: badCertTemplate");
	rv = req(ctx, CMPC_REQ_KUR, k4, c1, NULL, &x, NULL);
	tap_ok(rv == CMPC_ERR_CERT && cfx_msg_ok(ctx, "CN=wrong subject") &&
		   cfx_msg_ok(ctx, "certConf") && cfx_accepted == 0 && x == NULL,
	       "/cmpc/ca/kur-subject-changed", "%d %s", rv, cmpc_errmsg(ctx));
	tap_ok(ca_events("ca-wrongsubj.log", "rejected the certificate (PKIStatus: rejection; "
					 "PKIFailureInfo: badCertTemplate") == n + 1,
	   "/cmpc/ca/kur-subject-changed-badCertTemplate",
	   "the CA saw no certConf with badCertTemplate");
	(void)cmpc_set1_signer(ctx, NULL, NULL, NULL);
	(void)cmpc_set1_subject(ctx, X509_get_subject_name(c1));
	rv = req(ctx, CMPC_REQ_IR, k4, NULL, NULL, &x, NULL);
	tap_ok(rv == CMPC_ERR_CERT && cfx_msg_ok(ctx, "wrong subject") && cfx_accepted == 0 &&
		   x == NULL,
	       "/cmpc/ca/ir-wrong-subject", "%d %s", rv, cmpc_errmsg(ctx));
	cmpc_free(ctx);

	/* p10cr: a CSR made from subject and SANs, signed by the new key */
	ctx = mk(u, cfx_secret, "ca/root.pem", "client");
	n = ca_events("ca-main.log", "p10cr: POP verified (CSR signature)");
	rv = req(ctx, CMPC_REQ_P10CR, k4, NULL, NULL, &c4, NULL);
	tap_ok(rv == CMPC_OK && c4 != NULL && EVP_PKEY_eq(X509_get0_pubkey(c4), k4) == 1 &&
	       ca_events("ca-main.log", "p10cr: POP verified (CSR signature)") == n + 1,
	   "/cmpc/ca/p10cr", "%d %s", rv, cmpc_errmsg(ctx));
	/* a CSR of the caller; its subject is what is expected */
	csr = X509_REQ_new();
	if (csr == NULL || !X509_REQ_set_subject_name(csr, X509_get_subject_name(c1)) ||
	    !X509_REQ_set_pubkey(csr, k4) || X509_REQ_sign(csr, k4, EVP_sha256()) <= 0)
		abort();
	rv = req(ctx, CMPC_REQ_P10CR, k4, NULL, csr, &x, NULL);
	tap_ok(rv == CMPC_OK && x != NULL, "/cmpc/ca/p10cr-given-csr", "%d %s", rv, cmpc_errmsg(ctx));
	X509_free(x);
	x = NULL;
	rv = req(ctx, CMPC_REQ_P10CR, k3, NULL, csr, &x, NULL);
	tap_ok(rv == CMPC_ERR_CONFIG && x == NULL, "/cmpc/ca/p10cr-csr-other-key", "%d %s", rv,
	   cmpc_errmsg(ctx));
	X509_REQ_free(csr);
	/* PBM with other parameters and a sender name: the test CA verifies it */
	{
		X509_NAME *snd = cfx_cn_name("sender-x");

		if (cmpc_set_pbm_params(ctx, NID_sha512, NID_hmacWithSHA512, 100000) != CMPC_OK ||
		    cmpc_set1_sender(ctx, snd) != CMPC_OK)
			abort();
		X509_NAME_free(snd);
		rv = req(ctx, CMPC_REQ_IR, k4, NULL, NULL, &x, NULL);
		tap_ok(rv == CMPC_OK && x != NULL, "/cmpc/ca/pbm-params-and-sender", "%d %s", rv,
		   cmpc_errmsg(ctx));
		X509_free(x);
		x = NULL;
	}
	cmpc_free(ctx);

	/* unprotected error answers */
	ctx = mk(url(tap_env("T_CA_UE"), "/.well-known/cmp"), cfx_secret, "ca/root.pem", "client");
	rv = req(ctx, CMPC_REQ_IR, k4, NULL, NULL, &x, NULL);
	tap_ok(rv == CMPC_ERR_PROTOCOL && x == NULL, "/cmpc/ca/unprotected-error-refused", "%d %s", rv,
	   cmpc_errmsg(ctx));
	cmpc_set_unprotected_errors(ctx, 1);
	rv = req(ctx, CMPC_REQ_IR, k4, NULL, NULL, &x, NULL);
	/* shown, but not a verdict: anyone on the path can send one */
	tap_ok(rv == CMPC_ERR_PROTOCOL && cfx_msg_ok(ctx, "unverified") &&
		   cfx_msg_ok(ctx, "unprotected-error"),
	       "/cmpc/ca/unprotected-error-accepted", "%d %s", rv, cmpc_errmsg(ctx));
	cmpc_free(ctx);
out:
	X509_free(c1);
	X509_free(c2);
	X509_free(c3);
	X509_free(c4);
	X509_free(x);
	sk_X509_pop_free(cas1, X509_free);
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
	EVP_PKEY_free(k3);
	EVP_PKEY_free(k4);
}

/* Signed requests against OpenSSL's mock server: cr signed by another
 * certificate, kur signed by the certificate it updates (the mock wants
 * oldCertID to name the certificate it answers with, so the key stays). */
static void test_mock_signed(EVP_PKEY *key)
{
	static const char *const ca1[] = {"ca1.pem", NULL};
	X509 *signer = cfx_read_cert(path("signer.pem")), *c1 = cfx_read_cert(path("c1.pem")),
	     *cert = NULL;
	EVP_PKEY *skey = cfx_read_key(path("signer.key"));
	cmpc_ctx *ctx;
	cmpc_rv rv;

	if (signer == NULL || c1 == NULL || skey == NULL)
		abort();
	ctx = mk(tap_env("T_SIGREQ"), cfx_secret, "ca1.pem", "client");
	if (cmpc_set1_signer(ctx, signer, skey, NULL) != CMPC_OK)
		abort();
	rv = cmpc_certreq(ctx, CMPC_REQ_CR, key, NULL, NULL, &cert, NULL);
	tap_ok(rv == CMPC_OK && cert != NULL, "/cmpc/mock/cr-signed", "%d %s", rv, cmpc_errmsg(ctx));
	X509_free(cert);
	cert = NULL;
	/* with the signer gone, PBM: this mock has no secret and refuses it */
	(void)cmpc_set1_signer(ctx, NULL, NULL, NULL);
	expect_fail("/cmpc/mock/pbm-after-signer-cleared", ctx, key, CMPC_ERR_REJECTED,
		    "missing secret");
	cmpc_free(ctx);

	ctx = mk(tap_env("T_SIGREQ"), cfx_secret, "ca1.pem", "client");
	(void)cmpc_set1_subject(ctx, NULL);
	if (cmpc_set1_signer(ctx, c1, key, NULL) != CMPC_OK)
		abort();
	rv = cmpc_certreq(ctx, CMPC_REQ_KUR, key, c1, NULL, &cert, NULL);
	tap_ok(rv == CMPC_OK && cert != NULL && X509_cmp(cert, c1) == 0, "/cmpc/mock/kur-signed",
	   "%d %s", rv, cmpc_errmsg(ctx));
	X509_free(cert);
	cmpc_free(ctx);
	(void)ca1;
	X509_free(signer);
	X509_free(c1);
	EVP_PKEY_free(skey);
}

/* The issued certificate's SANs differ from the requested ones: refused in
 * certConf, never shown to the accept callback. */
static void test_san_mismatch(EVP_PKEY *key)
{
	GENERAL_NAMES *sans = GENERAL_NAMES_new();
	GENERAL_NAME *gn = GENERAL_NAME_new();
	ASN1_IA5STRING *dns = ASN1_IA5STRING_new();
	X509 *cert = NULL;
	cmpc_ctx *ctx;
	cmpc_rv rv;

	if (sans == NULL || gn == NULL || dns == NULL || !ASN1_STRING_set(dns, "other.example", -1))
		abort();
	GENERAL_NAME_set0_value(gn, GEN_DNS, dns);
	if (!sk_GENERAL_NAME_push(sans, gn))
		abort();
	ctx = mk(tap_env("T_OK"), cfx_secret, "ca1.pem", "client");
	(void)cmpc_set1_sans(ctx, sans);
	cfx_accepted = 0;
	cmpc_set_accept_cb(ctx, cfx_count_accept, NULL);
	rv = cmpc_certreq(ctx, CMPC_REQ_IR, key, NULL, NULL, &cert, NULL);
	tap_ok(rv == CMPC_ERR_CERT && cfx_msg_ok(ctx, "subjectAltName") &&
		   cfx_msg_ok(ctx, "other.example") && cfx_accepted == 0 && cert == NULL,
	       "/cmpc/ir/san-mismatch", "%d %s", rv, cmpc_errmsg(ctx));
	cmpc_free(ctx);
	GENERAL_NAMES_free(sans);
}

int main(void)
{
	EVP_PKEY *key;

	tap_plan(86);
	dir = tap_env("T_DIR");
	cfx_pbm_from_env();
	if (cmpc_global_init() != 0) {
		printf("Bail out! cmpc_global_init failed\n");
		return 1;
	}
	if ((key = cfx_read_key(path("client.key"))) == NULL) {
		printf("Bail out! cannot read %s\n", path("client.key"));
		return 1;
	}
	test_config(key);
	test_ir(key);
	test_http(key);
	test_request(key);
	test_tls(key);
	test_header(key);
	test_san_mismatch(key);
	test_mock_signed(key);
	test_testca();
	tap_ok(tap_loglen > 0 && !cfx_contains(tap_log, cfx_secret) &&
		   !cfx_contains(tap_log, cfx_wrong_secret),
	       "/cmpc/log/no-secret", "log empty or holds a secret");
	tap_ok(cfx_contains(tap_log, "curl: ") && cfx_contains(tap_log, "CMP: "),
	       "/cmpc/log/forwarded", "no curl or OpenSSL lines in the log");
	EVP_PKEY_free(key);
	cmpc_global_cleanup();
	return tap_done();
}
