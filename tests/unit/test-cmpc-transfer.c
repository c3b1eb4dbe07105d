/*
 * The transport seam (cmp/cmpc_transfer.c) with an in-memory transport:
 * no socket, no HTTP.  Real exchanges (ir with PBM and its certConf, genm,
 * rr) go through it to OpenSSL's generic CMP server (OSSL_CMP_SRV_CTX) in
 * this process, whose callbacks issue from a CA made here; then the
 * failures a transport can meet (its own error, a timeout, an answer over
 * the size limit, garbage, nothing, a reason left unsaid), each with the
 * cmpc_rv and the message the caller gets.  Prints TAP.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/cmp.h>
#include <openssl/crmf.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cmp/cmpc.h"
#include "tests/unit/cmpc-fixture.h"
#include "tests/unit/tap.h"

#define URL "http://ca.in-memory.test/.well-known/cmp"
#define IT_CA_CERTS "1.3.6.1.5.5.7.4.17"

static const char ref[] = "in-memory-ref", secret[] = "in-memory-Secret-7f3a";

/* ---- a CA and the CMP server OpenSSL provides --------------------------- */

/* What the server issues from and what it saw. */
static struct {
	X509 *ca;
	EVP_PKEY *ca_key, *client_key;
	int reject; /* the next certificate request is rejected */
	int cert_confs, rrs;
	char genm_oid[64];
} srv;

static OSSL_CMP_PKISI *on_cert_request(OSSL_CMP_SRV_CTX *ctx, const OSSL_CMP_MSG *req, int rid,
				       const OSSL_CRMF_MSG *crm, const X509_REQ *p10cr,
				       X509 **ret_cert, STACK_OF(X509) * *ret_chain,
				       STACK_OF(X509) * *ret_capubs)
{
	const X509_NAME *subj = OSSL_CRMF_CERTTEMPLATE_get0_subject(OSSL_CRMF_MSG_get0_tmpl(crm));

	(void)ctx;
	(void)req;
	(void)rid;
	(void)p10cr;
	(void)ret_chain;
	if (srv.reject)
		return OSSL_CMP_STATUSINFO_new(OSSL_CMP_PKISTATUS_rejection,
					       1 << OSSL_CMP_PKIFAILUREINFO_badRequest,
					       "not today (in-memory CA)");
	/* 3.0 has no getter for the template's key: the test knows it. */
	*ret_cert = cfx_issue(subj, srv.client_key, srv.ca, srv.ca_key, 1000 + srv.cert_confs);
	if ((*ret_capubs = sk_X509_new_null()) == NULL || !X509_up_ref(srv.ca) ||
	    !sk_X509_push(*ret_capubs, srv.ca))
		abort();
	return OSSL_CMP_STATUSINFO_new(OSSL_CMP_PKISTATUS_accepted, 0, NULL);
}

static int on_cert_conf(OSSL_CMP_SRV_CTX *ctx, const OSSL_CMP_MSG *req, int rid,
			const ASN1_OCTET_STRING *hash, const OSSL_CMP_PKISI *si)
{
	(void)ctx;
	(void)req;
	(void)rid;
	(void)hash;
	(void)si;
	srv.cert_confs++;
	return 1;
}

static OSSL_CMP_PKISI *on_rr(OSSL_CMP_SRV_CTX *ctx, const OSSL_CMP_MSG *req,
			     const X509_NAME *issuer, const ASN1_INTEGER *serial)
{
	(void)ctx;
	(void)req;
	(void)serial;
	srv.rrs++;
	if (X509_NAME_cmp(issuer, X509_get_subject_name(srv.ca)) != 0)
		return OSSL_CMP_STATUSINFO_new(OSSL_CMP_PKISTATUS_rejection,
					       1 << OSSL_CMP_PKIFAILUREINFO_badCertId, NULL);
	return OSSL_CMP_STATUSINFO_new(OSSL_CMP_PKISTATUS_accepted, 0, NULL);
}

/* Answers caCerts with the value absent: "no CA certificates to publish". */
static int on_genm(OSSL_CMP_SRV_CTX *ctx, const OSSL_CMP_MSG *req,
		   const STACK_OF(OSSL_CMP_ITAV) * in, STACK_OF(OSSL_CMP_ITAV) * *out)
{
	OSSL_CMP_ITAV *itav;
	ASN1_OBJECT *type;

	(void)ctx;
	(void)req;
	if (sk_OSSL_CMP_ITAV_num(in) != 1)
		return 0;
	OBJ_obj2txt(srv.genm_oid, sizeof(srv.genm_oid),
		    OSSL_CMP_ITAV_get0_type(sk_OSSL_CMP_ITAV_value(in, 0)), 1);
	if ((*out = sk_OSSL_CMP_ITAV_new_null()) == NULL ||
	    (type = OBJ_txt2obj(IT_CA_CERTS, 1)) == NULL ||
	    (itav = OSSL_CMP_ITAV_create(type, NULL)) == NULL || !sk_OSSL_CMP_ITAV_push(*out, itav))
		abort();
	return 1;
}

static OSSL_CMP_SRV_CTX *new_server(void)
{
	OSSL_CMP_SRV_CTX *s = cfx_srv_new(ref, secret, X509_get_subject_name(srv.ca),
					  on_cert_request, on_rr, on_genm, on_cert_conf);

	if (s == NULL)
		abort();
	return s;
}

/* ---- the in-memory transport -------------------------------------------- */

enum mode {
	SERVE,		/* the server above answers */
	SERVE_TRAILING, /* its answer and one byte more */
	FAIL,		/* cmpc_transfer_fail with peer.fail_rv */
	TIMEOUT,	/* cmpc_transfer_timeout */
	BIG,		/* writes until cmpc_transfer_write refuses, then fails */
	BIG_IGNORED,	/* writes past the limit and claims success */
	GARBAGE,	/* bytes that are no PKIMessage */
	EMPTY,		/* success, and no byte */
	SILENT,		/* fails without a word */
};

static struct {
	OSSL_CMP_SRV_CTX *srv;
	enum mode mode;
	cmpc_rv fail_rv;
	int calls;
	char sent[128];	 /* body types of the requests, "ir certConf" */
	long timeout_ms; /* of the last call */
	int refused;	 /* cmpc_transfer_write said 0 */
} peer;

static void note_sent(const unsigned char *req, size_t len)
{
	const unsigned char *p = req;
	OSSL_CMP_MSG *m = d2i_OSSL_CMP_MSG(NULL, &p, (long)len);
	static const char *const names[] = {[0] = "ir",	   [2] = "cr",	      [11] = "rr",
					    [21] = "genm", [24] = "certConf", [25] = "pollReq"};
	int t = m != NULL ? OSSL_CMP_MSG_get_bodytype(m) : -1;
	size_t off = strlen(peer.sent);

	snprintf(peer.sent + off, sizeof(peer.sent) - off, "%s%s", off > 0 ? " " : "",
		 t >= 0 && t < 26 && names[t] != NULL ? names[t] : "?");
	OSSL_CMP_MSG_free(m);
}

static cmpc_rv mem_transfer(cmpc_ctx *ctx, const unsigned char *req, size_t len, long timeout_ms,
			    void *arg)
{
	static const char junk[] = "<html>not CMP</html>";
	unsigned char block[700], *der;
	int n = 0, i;

	if (arg != &peer)
		return cmpc_transfer_fail(ctx, CMPC_ERR_INTERNAL, "the wrong argument came");
	peer.calls++;
	peer.timeout_ms = timeout_ms;
	note_sent(req, len);
	memset(block, 0x30, sizeof(block));
	switch (peer.mode) {
	case SERVE:
	case SERVE_TRAILING:
		if ((der = cfx_srv_answer(peer.srv, req, len, &n)) == NULL)
			return cmpc_transfer_fail(ctx, CMPC_ERR_TRANSPORT,
						  "the server gave no answer");
		/* in two parts, as a network delivers them */
		i = cmpc_transfer_write(ctx, der, (size_t)n / 2) &&
		    cmpc_transfer_write(ctx, der + n / 2, (size_t)(n - n / 2)) &&
		    (peer.mode == SERVE || cmpc_transfer_write(ctx, "", 1));
		OPENSSL_free(der);
		return i ? CMPC_OK : CMPC_ERR_TRANSPORT;
	case FAIL:
		return cmpc_transfer_fail(ctx, peer.fail_rv,
					  "the line is down (%d); check the cable", 42);
	case TIMEOUT:
		return cmpc_transfer_timeout(ctx, "no answer on the in-memory line");
	case BIG:
		for (i = 0; i < 100; i++)
			if (!cmpc_transfer_write(ctx, block, sizeof(block))) {
				peer.refused = 1;
				return CMPC_ERR_TRANSPORT;
			}
		return CMPC_OK;
	case BIG_IGNORED:
		for (i = 0; i < 3; i++)
			peer.refused |= !cmpc_transfer_write(ctx, block, sizeof(block));
		return CMPC_OK;
	case GARBAGE:
		return cmpc_transfer_write(ctx, junk, sizeof(junk) - 1) ? CMPC_OK
									: CMPC_ERR_TRANSPORT;
	case EMPTY:
		return CMPC_OK;
	case SILENT:
		break;
	}
	return CMPC_ERR_TRANSPORT;
}

/* ---- the tests ---------------------------------------------------------- */

static char anchors[256];

static void reset_peer(enum mode mode)
{
	peer.mode = mode;
	peer.fail_rv = CMPC_ERR_TRANSPORT;
	peer.calls = 0;
	peer.sent[0] = '\0';
	peer.timeout_ms = -1;
	peer.refused = 0;
}

/* A context that speaks PBM to the in-memory server (1000 iterations:
 * the PBM parameters are not what this test is about, its run time is). */
static cmpc_ctx *mk(void)
{
	cmpc_ctx *ctx = cmpc_new();
	X509_NAME *me = cfx_cn_name("in-memory client");

	if (ctx == NULL || cmpc_set1_server(ctx, URL) != CMPC_OK ||
	    cmpc_set1_pbm(ctx, (const unsigned char *)ref, sizeof(ref) - 1,
			  (const unsigned char *)secret, sizeof(secret) - 1) != CMPC_OK ||
	    cmpc_set_pbm_params(ctx, 0, 0, 1000) != CMPC_OK ||
	    cmpc_load_trusted(ctx, anchors) != CMPC_OK || cmpc_set1_subject(ctx, me) != CMPC_OK ||
	    cmpc_set1_expected_sender(ctx, X509_get_subject_name(srv.ca)) != CMPC_OK)
		abort();
	X509_NAME_free(me);
	cmpc_set_log_cb(ctx, tap_collect, NULL);
	cmpc_set_transfer_cb(ctx, mem_transfer, &peer);
	return ctx;
}

/* A genm caCerts through the transport in mode: its result, the message
 * and what was sent checked. */
static void genm_case(const char *name, enum mode mode, cmpc_rv want, const char *must,
		      const char *sent)
{
	cmpc_ctx *ctx = mk();
	STACK_OF(X509) *certs = NULL;
	cmpc_rv rv;

	reset_peer(mode);
	rv = cmpc_genm_ca_certs(ctx, &certs);
	tap_ok(rv == want && (must == NULL || cfx_contains(cmpc_errmsg(ctx), must)) &&
		   !cfx_contains(cmpc_errmsg(ctx), secret) && strcmp(peer.sent, sent) == 0 &&
		   (rv == CMPC_OK) == (certs != NULL),
	       name, "rv %d (%s), want %d; sent '%s'; message: %s", rv, cmpc_strerror(rv), want,
	       peer.sent, cmpc_errmsg(ctx));
	if (getenv("T_VERBOSE") != NULL)
		fprintf(stderr, "%s: %s\n", name, cmpc_errmsg(ctx));
	sk_X509_pop_free(certs, X509_free);
	cmpc_free(ctx);
}

static void test_exchanges(void)
{
	cmpc_ctx *ctx = mk();
	X509 *cert = NULL, *none = NULL;
	STACK_OF(X509) *cas = NULL;
	cmpc_rr_status st = CMPC_RR_GRANTED_WITH_MODS;
	cmpc_rv rv;

	reset_peer(SERVE);
	cmpc_set_timeouts(ctx, 5, 7, 300);
	rv = cmpc_ir(ctx, srv.client_key, &cert, &cas);
	tap_ok(rv == CMPC_OK && cert != NULL &&
		   EVP_PKEY_eq(X509_get0_pubkey(cert), srv.client_key) == 1 &&
		   sk_X509_num(cas) == 1 && X509_cmp(sk_X509_value(cas, 0), srv.ca) == 0,
	       "/cmpc-xfer/ir/issued", "rv %d: %s", rv, cmpc_errmsg(ctx));
	tap_ok(strcmp(peer.sent, "ir certConf") == 0 && srv.cert_confs == 1,
	       "/cmpc-xfer/ir/ir-and-certconf-through-the-transport", "sent '%s', %d certConf",
	       peer.sent, srv.cert_confs);
	tap_ok(peer.timeout_ms == 7000, "/cmpc-xfer/ir/message-timeout-given", "%ld ms",
	       peer.timeout_ms);

	reset_peer(SERVE);
	srv.reject = 1;
	rv = cmpc_ir(ctx, srv.client_key, &none, NULL);
	srv.reject = 0;
	tap_ok(rv == CMPC_ERR_REJECTED && none == NULL &&
		   cfx_contains(cmpc_errmsg(ctx), "not today (in-memory CA)") &&
		   strcmp(peer.sent, "ir") == 0,
	       "/cmpc-xfer/ir/rejected", "rv %d, sent '%s': %s", rv, peer.sent, cmpc_errmsg(ctx));

	reset_peer(SERVE);
	rv = cmpc_rr(ctx, cert, 1, &st);
	tap_ok(rv == CMPC_OK && st == CMPC_RR_ACCEPTED && srv.rrs == 1 &&
		   strcmp(peer.sent, "rr") == 0,
	       "/cmpc-xfer/rr/accepted", "rv %d, status %d, sent '%s': %s", rv, (int)st, peer.sent,
	       cmpc_errmsg(ctx));
	X509_free(cert);
	sk_X509_pop_free(cas, X509_free);
	cmpc_free(ctx);

	genm_case("/cmpc-xfer/genm/ca-certs", SERVE, CMPC_OK, NULL, "genm");
	tap_ok(strcmp(srv.genm_oid, IT_CA_CERTS) == 0, "/cmpc-xfer/genm/server-saw-ca-certs",
	       "'%s'", srv.genm_oid);
}

static void test_failures(void)
{
	cmpc_ctx *ctx;
	STACK_OF(X509) *certs = NULL;
	cmpc_rv rv;

	genm_case("/cmpc-xfer/fail/transport", FAIL, CMPC_ERR_TRANSPORT,
		  "CMP genm caCerts failed: sending the genm to " URL
		  ": the line is down (42); check the cable",
		  "genm");
	reset_peer(FAIL);
	peer.fail_rv = CMPC_ERR_TLS;
	ctx = mk();
	rv = cmpc_genm_ca_certs(ctx, &certs);
	tap_ok(rv == CMPC_ERR_TLS && cfx_contains(cmpc_errmsg(ctx), "the line is down") &&
		   certs == NULL,
	       "/cmpc-xfer/fail/tls-kept", "rv %d: %s", rv, cmpc_errmsg(ctx));
	cmpc_free(ctx);

	genm_case("/cmpc-xfer/fail/timeout", TIMEOUT, CMPC_ERR_TRANSPORT,
		  ": no complete response within 60 s (no answer on the in-memory line); check "
		  "that the server is reachable",
		  "genm");
	reset_peer(TIMEOUT);
	ctx = mk();
	cmpc_set_timeouts(ctx, 0, 0, 2);
	rv = cmpc_genm_ca_certs(ctx, &certs);
	tap_ok(rv == CMPC_ERR_TRANSPORT && peer.timeout_ms > 0 && peer.timeout_ms <= 2000 &&
		   cfx_contains(cmpc_errmsg(ctx), "within 2 s") &&
		   cfx_contains(cmpc_errmsg(ctx), "the total timeout ran out"),
	       "/cmpc-xfer/fail/total-timeout", "rv %d, %ld ms: %s", rv, peer.timeout_ms,
	       cmpc_errmsg(ctx));
	cmpc_free(ctx);

	reset_peer(BIG);
	ctx = mk();
	cmpc_set_max_response(ctx, 2000);
	rv = cmpc_genm_ca_certs(ctx, &certs);
	tap_ok(rv == CMPC_ERR_TRANSPORT && peer.refused &&
		   cfx_contains(cmpc_errmsg(ctx),
				"sending the genm to " URL
				": the response is larger than the limit of 2000 bytes"),
	       "/cmpc-xfer/fail/oversize", "rv %d, refused %d: %s", rv, peer.refused,
	       cmpc_errmsg(ctx));
	reset_peer(BIG_IGNORED);
	rv = cmpc_genm_ca_certs(ctx, &certs);
	tap_ok(rv == CMPC_ERR_TRANSPORT && peer.refused &&
		   cfx_contains(cmpc_errmsg(ctx), "larger than the limit of 2000 bytes"),
	       "/cmpc-xfer/fail/oversize-claimed-ok", "rv %d, refused %d: %s", rv, peer.refused,
	       cmpc_errmsg(ctx));
	cmpc_free(ctx);

	genm_case("/cmpc-xfer/fail/garbage", GARBAGE, CMPC_ERR_PROTOCOL,
		  ": the response is not a CMP message (20 bytes that do not decode as one "
		  "PKIMessage)",
		  "genm");
	genm_case("/cmpc-xfer/fail/trailing-byte", SERVE_TRAILING, CMPC_ERR_PROTOCOL,
		  "do not decode as one PKIMessage", "genm");
	genm_case("/cmpc-xfer/fail/empty", EMPTY, CMPC_ERR_PROTOCOL, "not a CMP message (0 bytes",
		  "genm");
	genm_case("/cmpc-xfer/fail/no-reason", SILENT, CMPC_ERR_TRANSPORT,
		  "sending the genm to " URL ": the transport failed (CMP transport error) and "
		  "gave no reason",
		  "genm");

	/* The default comes back: HTTP to the URL, here a port nobody has. */
	reset_peer(SERVE);
	ctx = mk();
	if (cmpc_set1_server(ctx, "http://127.0.0.1:9/.well-known/cmp") != CMPC_OK)
		abort();
	cmpc_set_transfer_cb(ctx, NULL, NULL);
	rv = cmpc_genm_ca_certs(ctx, &certs);
	tap_ok(rv == CMPC_ERR_TRANSPORT && peer.calls == 0 &&
		   cfx_contains(cmpc_errmsg(ctx), "cannot connect"),
	       "/cmpc-xfer/default-is-http", "rv %d, %d calls: %s", rv, peer.calls,
	       cmpc_errmsg(ctx));
	cmpc_free(ctx);
}

/* What the wait callback was told. */
static struct {
	int answer, done, stop, bad;
	char what[64];
} waits;

static int on_wait(const cmpc_wait *w, void *arg)
{
	if (arg != &waits || w->what == NULL || w->url == NULL || strcmp(w->url, URL) != 0)
		waits.bad++;
	if (w->kind == CMPC_WAIT_DONE) {
		waits.done++;
		return 1; /* ignored */
	}
	if (w->kind != CMPC_WAIT_ANSWER || w->until < time(NULL) || waits.done > 0)
		waits.bad++;
	waits.answer++;
	snprintf(waits.what, sizeof(waits.what), "%s", w->what);
	return waits.stop;
}

static void test_waits(void)
{
	STACK_OF(X509) *certs = NULL;
	cmpc_ctx *ctx = mk();
	cmpc_rv rv;

	memset(&waits, 0, sizeof(waits));
	cmpc_set_wait_cb(ctx, on_wait, &waits);
	reset_peer(SERVE);
	rv = cmpc_genm_ca_certs(ctx, &certs);
	tap_ok(rv == CMPC_OK && waits.answer >= 1 && waits.done == 1 && waits.bad == 0 &&
		   strcmp(waits.what, "the genm") == 0,
	       "/cmpc-xfer/wait/told-then-done", "rv %d, %d answer, %d done, %d bad, what '%s'",
	       rv, waits.answer, waits.done, waits.bad, waits.what);
	sk_X509_pop_free(certs, X509_free);
	certs = NULL;

	/* A stop asked for before the message leaves: it never leaves. */
	memset(&waits, 0, sizeof(waits));
	waits.stop = 1;
	reset_peer(SERVE);
	rv = cmpc_genm_ca_certs(ctx, &certs);
	tap_ok(rv == CMPC_ERR_STOPPED && peer.calls == 0 && certs == NULL && waits.done == 1 &&
		   cfx_contains(cmpc_errmsg(ctx), "sending the genm to " URL
						  ": stopped before it was sent"),
	       "/cmpc-xfer/wait/stop-before-send", "rv %d, %d calls, %d done: %s", rv,
	       peer.calls, waits.done, cmpc_errmsg(ctx));
	cmpc_free(ctx);
}

int main(void)
{
	char dir[] = "/tmp/test-cmpc-transfer.XXXXXX";
	X509_NAME *ca_name = cfx_cn_name("In-Memory CA");
	FILE *f;

	tap_plan(20);
	if (cmpc_global_init() != 0 || mkdtemp(dir) == NULL)
		abort();
	srv.ca_key = cfx_ec_key();
	srv.client_key = cfx_ec_key();
	srv.ca = cfx_issue(ca_name, srv.ca_key, NULL, srv.ca_key, 1);
	snprintf(anchors, sizeof(anchors), "%s/anchor.pem", dir);
	if ((f = fopen(anchors, "w")) == NULL || !PEM_write_X509(f, srv.ca) || fclose(f) != 0)
		abort();
	peer.srv = new_server();

	test_exchanges();
	test_failures();
	test_waits();

	unlink(anchors);
	rmdir(dir);
	OSSL_CMP_SRV_CTX_free(peer.srv);
	X509_free(srv.ca);
	EVP_PKEY_free(srv.ca_key);
	EVP_PKEY_free(srv.client_key);
	X509_NAME_free(ca_name);
	cmpc_global_cleanup();
	return tap_done();
}
