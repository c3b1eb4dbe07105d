/*
 * Fuzz target: CMP responses as the client meets them.  The input is a
 * series of messages, each a 2-byte big-endian length and that many bytes;
 * the transfer callback hands them to OpenSSL in turn, in place of the
 * HTTP transport, so that an ir runs through decoding, the response
 * checks (protection, transactionID, nonces, status), the certificate
 * verification and the failure classification of the protocol layer.
 */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "cmp/cmpc-int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct feed {
	const uint8_t *p;
	size_t left;
};

static struct feed *feed; /* the input of the run under way */

static OSSL_CMP_MSG *feed_transfer(OSSL_CMP_CTX *cmp, const OSSL_CMP_MSG *req)
{
	struct feed *f = feed;
	const unsigned char *p;
	OSSL_CMP_MSG *rsp;
	size_t n;

	(void)cmp;
	(void)req;
	if (f->left < 2)
		return NULL;
	n = ((size_t)f->p[0] << 8) | f->p[1];
	f->p += 2;
	f->left -= 2;
	if (n > f->left)
		n = f->left;
	p = f->p;
	rsp = d2i_OSSL_CMP_MSG(NULL, &p, (long)n);
	f->p += n;
	f->left -= n;
	return rsp;
}

static EVP_PKEY *key;
static X509 *anchor;

static void setup_once(void)
{
	EVP_PKEY *ca;

	if (key != NULL)
		return;
	key = EVP_EC_gen("P-256");
	ca = EVP_EC_gen("P-256");
	anchor = X509_new();
	if (key == NULL || ca == NULL || anchor == NULL)
		abort();
	X509_NAME_add_entry_by_txt(X509_get_subject_name(anchor), "CN", MBSTRING_ASC,
				   (const unsigned char *)"fuzz root", -1, -1, 0);
	X509_set_issuer_name(anchor, X509_get_subject_name(anchor));
	X509_gmtime_adj(X509_getm_notBefore(anchor), 0);
	X509_gmtime_adj(X509_getm_notAfter(anchor), 86400);
	X509_set_pubkey(anchor, ca);
	if (!X509_sign(anchor, ca, EVP_sha256()))
		abort();
	EVP_PKEY_free(ca);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned char ref[] = "4711", secret[] = "shared-secret-8c1f2e";
	struct feed f = { data, size };
	cmpc_ctx *ctx;
	X509_NAME *subj = X509_NAME_new();
	X509 *cert = NULL;
	STACK_OF(X509) *cas = NULL;

	setup_once();
	if (subj == NULL || (ctx = cmpc_new()) == NULL) {
		X509_NAME_free(subj);
		return 0;
	}
	X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_ASC, (const unsigned char *)"fuzz", -1, -1,
				   0);
	if (cmpc_set_server(ctx, "http://127.0.0.1:9/.well-known/cmp") == CMPC_OK &&
	    cmpc_set1_pbm(ctx, ref, sizeof(ref) - 1, secret, sizeof(secret) - 1) == CMPC_OK &&
	    cmpc_set1_subject(ctx, subj) == CMPC_OK && X509_up_ref(anchor) &&
	    sk_X509_push(ctx->anchors, anchor) > 0) {
		cmpc_set_timeouts(ctx, 1, 1, 5);
		/* Lets unprotected error and rejection answers past the
		 * protection check, into the status and text handling. */
		cmpc_set_unprotected_errors(ctx, 1);
		feed = &f;
		OSSL_CMP_CTX_set_transfer_cb(ctx->cmp, feed_transfer);
		(void)cmpc_ir(ctx, key, &cert, &cas);
		(void)cmpc_errmsg(ctx);
	}
	X509_free(cert);
	sk_X509_pop_free(cas, X509_free);
	X509_NAME_free(subj);
	cmpc_free(ctx);
	return 0;
}
