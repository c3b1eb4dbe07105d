/*
 * Setting up and ending an exchange that carries no new key: rr, genm and
 * the error message that abandons a transaction.  (Certificate requests
 * set up their own in cmpc_certreq.c: a new key, and no total timeout for
 * OpenSSL, as their polling is bounded there.)
 */
#include "config.h"

#include <string.h>

#include <openssl/err.h>

#include "cmp/cmpc-int.h"

/*
 * Drops the extraCerts of an earlier exchange.  3.0 turns an empty stack
 * given to set1_untrusted into a NULL list and then fails ("passed a null
 * parameter") on the first response with extraCerts; without anchors
 * (optional for rr and genm), the list it made itself is emptied instead.
 */
static int drop_untrusted(cmpc_ctx *ctx)
{
	STACK_OF(X509) *u;

	if (sk_X509_num(ctx->anchors) > 0)
		return OSSL_CMP_CTX_set1_untrusted(ctx->cmp, ctx->anchors);
	if ((u = OSSL_CMP_CTX_get0_untrusted(ctx->cmp)) == NULL)
		return 1; /* responses with extraCerts will fail; nothing to be done in 3.0 */
	while (sk_X509_num(u) > 0)
		X509_free(sk_X509_pop(u));
	return 1;
}

cmpc_rv cmpc_xchg_begin(cmpc_ctx *ctx, const char *what)
{
	OSSL_CMP_CTX *c = ctx->cmp;
	cmpc_rv rv;

	if (ctx->url == NULL) {
		cmpc_seterr(ctx, "%s: no CMP server URL set: configure the server URL", what);
		return CMPC_ERR_CONFIG;
	}
	/* With no new key set, 3.0 answers the signer's key here. */
	if (!ctx->have_pbm && OSSL_CMP_CTX_get0_newPkey(c, 1) == NULL) {
		cmpc_seterr(ctx,
			    "%s: no protection configured: set the reference value and secret "
			    "the CA gave, or a signer certificate and key",
			    what);
		return CMPC_ERR_CONFIG;
	}
	cmpc_x_reset(ctx);
	ERR_clear_error();
	if (!OSSL_CMP_CTX_reinit(c) || !cmpc_srv_trust_setup(ctx) || !drop_untrusted(ctx) ||
	    !OSSL_CMP_CTX_set_option(c, OSSL_CMP_OPT_MSG_TIMEOUT, (int)ctx->msg_s) ||
	    !OSSL_CMP_CTX_set_option(c, OSSL_CMP_OPT_TOTAL_TIMEOUT, (int)ctx->total_s))
		goto oom;
	if ((rv = cmpc_transfer_prepare(ctx)) != CMPC_OK)
		return rv;
	ctx->x.deadline_ms = cmpc_now_ms() + (long long)ctx->total_s * 1000;
	return CMPC_OK;
oom:
	ERR_clear_error();
	cmpc_seterr(ctx, "%s: cannot set up the CMP context (out of memory?)", what);
	return CMPC_ERR_INTERNAL;
}

void cmpc_xchg_end(cmpc_ctx *ctx)
{
	/* what the caller keeps of a stored message outlives the exchange */
	ctx->have_last_stored = ctx->x.stored && ctx->x.stored_ids.tid_len > 0 &&
				ctx->x.stored_ids.nonce_len > 0;
	ctx->last_stored = ctx->x.stored_ids;
	cmpc_x_reset(ctx);
	ERR_clear_error();
}

void cmpc_set_stored_answer(cmpc_ctx *ctx, const cmpc_pending *p)
{
	ctx->have_stored_ans = p != NULL && p->tid_len > 0 && p->sent_nonce_len > 0;
	if (p != NULL)
		ctx->stored_ans = *p;
}

int cmpc_stored_ids(const cmpc_ctx *ctx, cmpc_pending *ret)
{
	memset(ret, 0, sizeof(*ret));
	if (ctx == NULL || !ctx->have_last_stored)
		return 0;
	memcpy(ret->tid, ctx->last_stored.tid, ctx->last_stored.tid_len);
	ret->tid_len = ctx->last_stored.tid_len;
	memcpy(ret->sent_nonce, ctx->last_stored.nonce, ctx->last_stored.nonce_len);
	ret->sent_nonce_len = ctx->last_stored.nonce_len;
	return 1;
}
