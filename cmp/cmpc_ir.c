/*
 * The initialization request (ir/ip/certConf/pkiConf, with polling).
 */
#include <string.h>
#include <syslog.h>

#include <openssl/err.h>

#include "cmp/cmpc-int.h"

static void reset_exchange(cmpc_ctx *ctx)
{
	sk_X509_pop_free(ctx->x.chain, X509_free);
	OPENSSL_free(ctx->x.rbuf);
	memset(&ctx->x, 0, sizeof(ctx->x));
	ctx->x.rv = CMPC_OK;
}

/* The SANs go into the template as an extension; critical when the
 * subject is empty (RFC 5280 4.2.1.6). */
static int set_sans(cmpc_ctx *ctx)
{
	X509_EXTENSIONS *exts = NULL;
	int crit;

	if (ctx->sans == NULL)
		return OSSL_CMP_CTX_set0_reqExtensions(ctx->cmp, NULL);
	crit = ctx->subject == NULL || X509_NAME_entry_count(ctx->subject) == 0;
	if (X509V3_add1_i2d(&exts, NID_subject_alt_name, ctx->sans, crit, X509V3_ADD_REPLACE) != 1)
		return 0;
	if (!OSSL_CMP_CTX_set0_reqExtensions(ctx->cmp, exts)) {
		sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
		return 0;
	}
	return 1;
}

/* Per exchange: fresh trust store (OpenSSL may add caPubs to it), no
 * untrusted certificates left from an earlier exchange. */
static int setup_exchange(cmpc_ctx *ctx, EVP_PKEY *key)
{
	OSSL_CMP_CTX *c = ctx->cmp;
	X509_STORE *store;

	if (!OSSL_CMP_CTX_reinit(c))
		return 0;
	if ((store = cmpc_anchor_store(ctx)) == NULL)
		return 0;
	if (!OSSL_CMP_CTX_set0_trustedStore(c, store)) {
		X509_STORE_free(store);
		return 0;
	}
	/* Drops the extraCerts of an earlier exchange.  Not an empty stack:
	 * 3.0 then leaves the list NULL and fails on the first extraCerts. */
	if (!OSSL_CMP_CTX_set1_untrusted(c, ctx->anchors) || !set_sans(ctx) ||
	    !OSSL_CMP_CTX_set_option(c, OSSL_CMP_OPT_MSG_TIMEOUT, (int)ctx->msg_s) ||
	    !OSSL_CMP_CTX_set_option(c, OSSL_CMP_OPT_TOTAL_TIMEOUT, (int)ctx->total_s))
		return 0;
	if (!EVP_PKEY_up_ref(key))
		return 0;
	if (!OSSL_CMP_CTX_set0_newPkey(c, 1, key)) {
		EVP_PKEY_free(key);
		return 0;
	}
	ctx->x.key = key;
	return 1;
}

STACK_OF(X509) *cmpc_ca_certs(cmpc_ctx *ctx)
{
	STACK_OF(X509) *out, *pubs;
	int i, ok = 1;

	if ((out = sk_X509_new_null()) == NULL)
		return NULL;
	for (i = 1; ok && i < sk_X509_num(ctx->x.chain); i++)
		ok = X509_add_cert(out, sk_X509_value(ctx->x.chain, i),
				   X509_ADD_FLAG_UP_REF | X509_ADD_FLAG_NO_DUP);
	pubs = OSSL_CMP_CTX_get1_caPubs(ctx->cmp);
	if (ok)
		ok = X509_add_certs(out, pubs, X509_ADD_FLAG_UP_REF | X509_ADD_FLAG_NO_DUP);
	sk_X509_pop_free(pubs, X509_free);
	if (!ok) {
		sk_X509_pop_free(out, X509_free);
		return NULL;
	}
	return out;
}

cmpc_rv cmpc_ir(cmpc_ctx *ctx, EVP_PKEY *key, X509 **ret_cert, STACK_OF(X509) **ret_cacerts)
{
	const char *what = "CMP initialization request (ir)";
	STACK_OF(X509) *cacerts = NULL;
	X509 *cert;
	cmpc_rv rv;

	if (ctx == NULL)
		return CMPC_ERR_INTERNAL;
	ctx->errmsg[0] = '\0';
	if (key == NULL || ret_cert == NULL) {
		cmpc_seterr(ctx, "%s: no key or no place for the certificate given", what);
		return CMPC_ERR_INTERNAL;
	}
	if (ctx->url == NULL) {
		cmpc_seterr(ctx, "%s: no CMP server URL set: configure the server URL", what);
		return CMPC_ERR_CONFIG;
	}
	if (!ctx->have_pbm) {
		cmpc_seterr(ctx,
			    "%s: no reference value and secret set: configure the ones the "
			    "CA gave for this enrollment",
			    what);
		return CMPC_ERR_CONFIG;
	}
	if (sk_X509_num(ctx->anchors) <= 0) {
		cmpc_seterr(ctx,
			    "%s: no trust anchors loaded, so the issued certificate could not "
			    "be verified: configure the CA's root certificate as trust anchor",
			    what);
		return CMPC_ERR_CONFIG;
	}

	reset_exchange(ctx);
	ERR_clear_error();
	if (!setup_exchange(ctx, key)) {
		cmpc_seterr(ctx, "%s: cannot set up the CMP context (out of memory?)", what);
		rv = CMPC_ERR_INTERNAL;
		goto out;
	}
	if ((rv = cmpc_http_prepare(ctx)) != CMPC_OK)
		goto out;
	ctx->x.deadline = time(NULL) + ctx->total_s;

	cmpc_log(ctx, LOG_INFO, "sending an ir to %s", ctx->url);
	cmpc_log_enter(ctx);
	cert = OSSL_CMP_exec_IR_ses(ctx->cmp);
	cmpc_log_leave();

	if (cert == NULL) {
		rv = cmpc_classify_failure(ctx, what);
		goto out;
	}
	if (ctx->x.chain == NULL) {
		/* Cannot happen: OpenSSL calls the certConf callback before success. */
		cmpc_seterr(ctx, "%s: the certificate was not verified (no certConf callback)",
			    what);
		rv = CMPC_ERR_INTERNAL;
		goto out;
	}
	if (ret_cacerts != NULL && (cacerts = cmpc_ca_certs(ctx)) == NULL) {
		cmpc_seterr(ctx, "%s: out of memory collecting the CA certificates", what);
		rv = CMPC_ERR_INTERNAL;
		goto out;
	}
	if (!X509_up_ref(cert)) {
		sk_X509_pop_free(cacerts, X509_free);
		cmpc_seterr(ctx, "%s: out of memory", what);
		rv = CMPC_ERR_INTERNAL;
		goto out;
	}
	*ret_cert = cert;
	if (ret_cacerts != NULL)
		*ret_cacerts = cacerts;
	cmpc_log(ctx, LOG_INFO, "certificate received and verified, %d CA certificate(s)",
		 cacerts != NULL ? sk_X509_num(cacerts) : 0);
	rv = CMPC_OK;
out:
	/* Drop the reference to the token key: its owner may unload it. */
	(void)OSSL_CMP_CTX_set0_newPkey(ctx->cmp, 1, NULL);
	reset_exchange(ctx);
	ERR_clear_error();
	return rv;
}
