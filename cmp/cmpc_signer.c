/*
 * Who may speak for the CA.  A signature that verifies under the trust
 * anchors proves only that its signer belongs to the PKI; any device
 * certificate of it does.  RFC 9483 3.5 and RFC 9480 2.10: a response
 * counts when its signer is the CA itself (the certificate that issues
 * what the response is about, or a trust anchor) or carries id-kp-cmcCA or
 * id-kp-cmcRA; or, as configured, the pinned srv_cert or expected sender.
 *
 * OpenSSL 3.0 has no hook between "the signature verifies" and "the
 * response is used", and no getter for the signer it chose.  Its path
 * validation of the signer runs through the store's verify callback, once
 * for each certificate from the anchor down to the signer: at the signer,
 * the callback refuses those that may not speak for the CA, so OpenSSL
 * rejects the message before it looks at its body, and it records the
 * signer for the checks that need the issued certificate.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "cmp/cmpc-int.h"

static CRYPTO_ONCE once = CRYPTO_ONCE_STATIC_INIT;
static int store_idx = -1;

static void init_idx(void)
{
	store_idx = X509_STORE_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

static int has_cmc_eku(X509 *cert)
{
	EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(cert, NID_ext_key_usage, NULL, NULL);
	int i, nid, found = 0;

	for (i = 0; !found && i < sk_ASN1_OBJECT_num(eku); i++) {
		nid = OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, i));
		found = nid == NID_cmcCA || nid == NID_cmcRA;
	}
	EXTENDED_KEY_USAGE_free(eku);
	ERR_clear_error();
	return found;
}

static int is_anchor(const cmpc_ctx *ctx, X509 *cert)
{
	const STACK_OF(X509) *a = ctx->srv_anchors != NULL ? ctx->srv_anchors : ctx->anchors;
	int i;

	for (i = 0; i < sk_X509_num(a); i++)
		if (X509_cmp(sk_X509_value(a, i), cert) == 0)
			return 1;
	return 0;
}

static int classify(const cmpc_ctx *ctx, X509 *signer)
{
	if (ctx->any_signer)
		return CMPC_SIGNER_ANY;
	if (ctx->expected_sender != NULL &&
	    X509_NAME_cmp(X509_get_subject_name(signer), ctx->expected_sender) == 0)
		return CMPC_SIGNER_PINNED;
	if (has_cmc_eku(signer))
		return CMPC_SIGNER_EKU;
	if (is_anchor(ctx, signer))
		return CMPC_SIGNER_ANCHOR;
	/* CA:TRUE (X509_check_ca also counts v1 and keyUsage-only certs) */
	if ((X509_get_extension_flags(signer) & EXFLAG_CA) != 0)
		return CMPC_SIGNER_CA;
	return CMPC_SIGNER_NONE;
}

static void not_issuer_msg(cmpc_ctx *ctx, X509 *signer, X509 *cert)
{
	char name[256], issuer[256];

	cmpc_name_str(X509_get_subject_name(signer), name, sizeof(name), "(empty name)");
	cmpc_name_str(X509_get_issuer_name(cert), issuer, sizeof(issuer), "(empty name)");
	ERR_clear_error();
	snprintf(ctx->x.signer_msg, sizeof(ctx->x.signer_msg),
		 "the response is signed by the CA certificate '%s', which did not issue the "
		 "certificate concerned (issuer '%s') and carries no id-kp-cmcCA/cmcRA extended "
		 "key usage",
		 name, issuer);
}

static int authorize_cb(int ok, X509_STORE_CTX *sctx)
{
	X509_STORE *st = X509_STORE_CTX_get0_store(sctx);
	cmpc_ctx *ctx = st != NULL ? X509_STORE_get_ex_data(st, store_idx) : NULL;
	X509 *signer = X509_STORE_CTX_get0_cert(sctx);
	char name[256];
	int kind;

	/* Only the final word on the signer itself; errors stay OpenSSL's. */
	if (!ok || ctx == NULL || signer == NULL || X509_STORE_CTX_get_error_depth(sctx) != 0 ||
	    X509_STORE_CTX_get_current_cert(sctx) != signer)
		return ok;
	if ((kind = classify(ctx, signer)) == CMPC_SIGNER_NONE) {
		cmpc_name_str(X509_get_subject_name(signer), name, sizeof(name), "(empty name)");
		ERR_clear_error();
		snprintf(ctx->x.signer_msg, sizeof(ctx->x.signer_msg),
			 "the response is signed by '%s', which chains to the trust anchors but "
			 "may not speak for the CA (not a CA certificate or trust anchor, no "
			 "id-kp-cmcCA/cmcRA extended key usage)",
			 name);
		X509_STORE_CTX_set_error(sctx, X509_V_ERR_INVALID_PURPOSE);
		return 0;
	}
	if (kind == CMPC_SIGNER_CA && ctx->x.issued_by_signer != NULL &&
	    X509_check_issued(signer, ctx->x.issued_by_signer) != X509_V_OK) {
		not_issuer_msg(ctx, signer, ctx->x.issued_by_signer);
		X509_STORE_CTX_set_error(sctx, X509_V_ERR_INVALID_PURPOSE);
		return 0;
	}
	if (!X509_up_ref(signer))
		return 0;
	X509_free(ctx->x.signer);
	ctx->x.signer = signer;
	ctx->x.signer_kind = kind;
	ctx->x.signer_msg[0] = '\0';
	return 1;
}

X509_STORE *cmpc_srv_store(cmpc_ctx *ctx)
{
	const STACK_OF(X509) *a = ctx->srv_anchors != NULL ? ctx->srv_anchors : ctx->anchors;
	X509_STORE *st;
	int i;

	if (!CRYPTO_THREAD_run_once(&once, init_idx) || store_idx < 0 ||
	    (st = X509_STORE_new()) == NULL)
		return NULL;
	for (i = 0; i < sk_X509_num(a); i++)
		if (!X509_STORE_add_cert(st, sk_X509_value(a, i)))
			goto err;
	if (!X509_STORE_set_ex_data(st, store_idx, ctx))
		goto err;
	X509_STORE_set_verify_cb(st, authorize_cb);
	return st;
err:
	X509_STORE_free(st);
	return NULL;
}

int cmpc_srv_trust_setup(cmpc_ctx *ctx)
{
	X509_STORE *st;

	X509_free(ctx->x.signer);
	ctx->x.signer = NULL;
	ctx->x.signer_kind = CMPC_SIGNER_NONE;
	ctx->x.signer_msg[0] = '\0';
	if ((st = cmpc_srv_store(ctx)) == NULL)
		return 0;
	if (!OSSL_CMP_CTX_set0_trustedStore(ctx->cmp, st)) {
		X509_STORE_free(st);
		return 0;
	}
	/* 3.0 checks the signature with srvCert alone, without a path. */
	return OSSL_CMP_CTX_set1_srvCert(ctx->cmp, ctx->srv_cert);
}

int cmpc_signer_may_answer_for(cmpc_ctx *ctx, X509 *cert)
{
	if (ctx->x.signer_kind != CMPC_SIGNER_CA || cert == NULL ||
	    X509_check_issued(ctx->x.signer, cert) == X509_V_OK)
		return 1;
	not_issuer_msg(ctx, ctx->x.signer, cert);
	return 0;
}
