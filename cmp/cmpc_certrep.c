/*
 * The parts of a CertRepMessage exchange (ip, cp, kup, ccp) that the layer
 * does itself where OpenSSL 3.0's client cannot (a ccr, and what else it
 * builds with its own templates): the CertResponse read from the received
 * DER (3.0 exports no OSSL_CMP_CERTREPMESSAGE_it and no getters), the
 * chain of the certificate to the anchors, and its certConf/pkiConf.
 */
#include "config.h"

#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "cmp/cmpc-int.h"

#define NONCE_LEN CMPC_MSG_NONCE_LEN

int cmpc_same_pubkey(X509 *cert, EVP_PKEY *key)
{
	unsigned char *a = NULL, *b = NULL;
	int alen = i2d_PUBKEY(X509_get0_pubkey(cert), &a), blen = i2d_PUBKEY(key, &b);
	int same = alen > 0 && alen == blen && memcmp(a, b, (size_t)alen) == 0;

	OPENSSL_free(a);
	OPENSSL_free(b);
	return same;
}

void cmpc_status_text(const CMPC_PKISI *si, char *buf, size_t len)
{
	size_t off;
	int i, j;

	snprintf(buf, len, "PKIStatus %ld", ASN1_INTEGER_get(si->status));
	off = strlen(buf);
	for (i = 0; i < sk_ASN1_UTF8STRING_num(si->statusString) && off + 3 < len; i++) {
		const ASN1_UTF8STRING *t = sk_ASN1_UTF8STRING_value(si->statusString, i);

		buf[off++] = i == 0 ? ':' : ';';
		buf[off++] = ' ';
		for (j = 0; j < t->length && off + 1 < len; j++)
			buf[off++] = t->data[j] >= 0x20 && t->data[j] < 0x7f ? (char)t->data[j] : '?';
	}
	buf[off] = '\0';
}

X509 *cmpc_certrep_get(cmpc_ctx *ctx, int sel, long cert_req_id, const char *what,
		       const char *noun, STACK_OF(X509) **capubs, cmpc_rv *rv)
{
	CMPC_PKIMSG *m = cmpc_msg_decode(ctx->x.rbuf, ctx->x.rlen);
	CMPC_BODY *b = cmpc_body_decode(m);
	CMPC_CERTRESP *r;
	X509 *cert = NULL;
	char st[256];
	int status;

	*rv = CMPC_ERR_PROTOCOL;
	/* Every CertRepMessage alternative of CMPC_BODY is a CMPC_CERTREP *. */
	if (b == NULL || b->type != sel || sk_CMPC_CERTRESP_num(b->value.ccp->response) != 1) {
		cmpc_seterr(ctx, "%s: the CA's answer is malformed or answers more than one "
				 "request; report it to the CA operator",
			    what);
		goto out;
	}
	r = sk_CMPC_CERTRESP_value(b->value.ccp->response, 0);
	status = (int)ASN1_INTEGER_get(r->status->status);
	if (ASN1_INTEGER_get(r->certReqId) != cert_req_id) {
		cmpc_seterr(ctx, "%s: the CA's answer is for another certReqId than %ld; "
				 "report it to the CA operator",
			    what, cert_req_id);
		goto out;
	}
	if (status == OSSL_CMP_PKISTATUS_waiting) {
		/* RFC 4210 5.3.22: the caller polls (cmpc_poll_until). */
		cmpc_seterr(ctx, "%s: the CA answered 'waiting'", what);
		*rv = CMPC_ERR_WAITING;
		goto out;
	}
	if (status != OSSL_CMP_PKISTATUS_accepted && status != OSSL_CMP_PKISTATUS_grantedWithMods) {
		cmpc_status_text(r->status, st, sizeof(st));
		cmpc_seterr(ctx, "%s: the CA did not issue the %s: %s", what, noun, st);
		*rv = CMPC_ERR_REJECTED;
		goto out;
	}
	if (r->certifiedKeyPair == NULL || r->certifiedKeyPair->certOrEncCert->type != 0) {
		cmpc_seterr(ctx, "%s: the CA's answer carries no certificate in the clear; "
				 "report it to the CA operator",
			    what);
		goto out;
	}
	cert = r->certifiedKeyPair->certOrEncCert->value.certificate;
	r->certifiedKeyPair->certOrEncCert->value.certificate = NULL;
	*capubs = b->value.ccp->caPubs;
	b->value.ccp->caPubs = NULL;
	*rv = CMPC_OK;
out:
	cmpc_body_free(b);
	cmpc_msg_free(m);
	return cert;
}

cmpc_rv cmpc_certrep_chain(cmpc_ctx *ctx, X509 *cert, STACK_OF(X509) *untrusted,
			   const char *what, const char *noun)
{
	X509_STORE *store = cmpc_anchor_store(ctx);
	X509_STORE_CTX *sctx = X509_STORE_CTX_new();
	char name[256];
	cmpc_rv rv = CMPC_OK;

	sk_X509_pop_free(ctx->x.chain, X509_free);
	ctx->x.chain = NULL;
	if (store == NULL || sctx == NULL || !X509_STORE_CTX_init(sctx, store, cert, untrusted)) {
		cmpc_seterr(ctx, "%s: out of memory verifying the %s", what, noun);
		rv = CMPC_ERR_INTERNAL;
	} else if (X509_verify_cert(sctx) != 1) {
		cmpc_name_str(X509_get_issuer_name(cert), name, sizeof(name), "(empty)");
		cmpc_seterr(ctx,
			    "%s: the %s (issuer '%s') does not verify against the configured "
			    "trust anchors: %s (at chain depth %d); check that the trust anchor "
			    "file holds the root of the other CA",
			    what, noun, name,
			    X509_verify_cert_error_string(X509_STORE_CTX_get_error(sctx)),
			    X509_STORE_CTX_get_error_depth(sctx));
		rv = CMPC_ERR_CERT;
	} else if ((ctx->x.chain = X509_STORE_CTX_get1_chain(sctx)) == NULL) {
		cmpc_seterr(ctx, "%s: out of memory verifying the %s", what, noun);
		rv = CMPC_ERR_INTERNAL;
	}
	ERR_clear_error();
	X509_STORE_CTX_free(sctx);
	X509_STORE_free(store);
	return rv;
}

static void free_status(CMPC_CERTSTATUS *cs)
{
	ASN1_item_free((ASN1_VALUE *)cs, ASN1_ITEM_rptr(CMPC_CERTSTATUS));
}

cmpc_rv cmpc_certrep_confirm(cmpc_ctx *ctx, X509 *cert, long cert_req_id, const cmpc_pending *p,
			     int fail_bit, const char *what, const char *noun)
{
	CMPC_BODY b = {CMPC_SEL_CERTCONF, {NULL}};
	CMPC_CERTSTATUS *cs = NULL;
	ASN1_OCTET_STRING *hash = NULL;
	OSSL_CMP_MSG *req = NULL, *rsp = NULL;
	unsigned char nonce[NONCE_LEN];
	char xwhat[64];
	cmpc_pending cur = *p;
	cmpc_rv rv;

	/* RFC 4210 5.3.18: the hash of the certificate with the algorithm of
	 * its signature, as OpenSSL's own certConf (X509_digest_sig). */
	if ((hash = X509_digest_sig(cert, NULL, NULL)) == NULL ||
	    (b.value.certConf = sk_CMPC_CERTSTATUS_new_null()) == NULL ||
	    (cs = (CMPC_CERTSTATUS *)ASN1_item_new(ASN1_ITEM_rptr(CMPC_CERTSTATUS))) == NULL ||
	    sk_CMPC_CERTSTATUS_push(b.value.certConf, cs) <= 0) {
		ASN1_item_free((ASN1_VALUE *)cs, ASN1_ITEM_rptr(CMPC_CERTSTATUS));
		goto oom;
	}
	if (!ASN1_OCTET_STRING_set(cs->certHash, hash->data, hash->length) ||
	    !ASN1_INTEGER_set(cs->certReqId, cert_req_id) ||
	    (cs->statusInfo = fail_bit < 0
				  ? OSSL_CMP_STATUSINFO_new(OSSL_CMP_PKISTATUS_accepted, 0, NULL)
				  : OSSL_CMP_STATUSINFO_new(OSSL_CMP_PKISTATUS_rejection,
							    1 << fail_bit, NULL)) == NULL ||
	    (req = cmpc_msg_build(ctx, &b, ctx->x.rsp.nonce, ctx->x.rsp.nonce_len, NULL, 0,
				  nonce)) == NULL)
		goto oom;
	memcpy(cur.nonce, ctx->x.rsp.nonce, ctx->x.rsp.nonce_len);
	cur.nonce_len = ctx->x.rsp.nonce_len;
	snprintf(xwhat, sizeof(xwhat), "%s certConf", what);
	rv = cmpc_msg_exchange(ctx, &cur, req, nonce, NONCE_LEN, xwhat, &rsp);
	req = NULL;
	if (rv == CMPC_OK && OSSL_CMP_MSG_get_bodytype(rsp) != CMPC_BODY_PKICONF) {
		cmpc_seterr(ctx, "%s: the CA answered the certConf with a %s, not a pkiConf; "
				 "the %s may not be published",
			    what, cmpc_body_name(OSSL_CMP_MSG_get_bodytype(rsp)), noun);
		rv = CMPC_ERR_PROTOCOL;
	}
	goto out;
oom:
	cmpc_seterr(ctx, "%s: cannot build the certConf (out of memory?)", what);
	rv = CMPC_ERR_INTERNAL;
out:
	OSSL_CMP_MSG_free(req);
	OSSL_CMP_MSG_free(rsp);
	ASN1_OCTET_STRING_free(hash);
	sk_CMPC_CERTSTATUS_pop_free(b.value.certConf, free_status);
	return rv;
}

cmpc_rv cmpc_own_send(cmpc_ctx *ctx, OSSL_CMP_MSG *req, const unsigned char *nonce,
		      const char *what, const char *exchange, int want_type, cmpc_pending *p,
		      OSSL_CMP_MSG **rsp)
{
	const ASN1_OCTET_STRING *tid = OSSL_CMP_HDR_get0_transactionID(OSSL_CMP_MSG_get0_header(req));
	cmpc_pending_fn pending_fn;
	cmpc_rv rv;
	int type;

	*rsp = NULL;
	memset(p, 0, sizeof(*p));
	if (tid == NULL || tid->length <= 0 || (size_t)tid->length > sizeof(p->tid)) {
		OSSL_CMP_MSG_free(req);
		cmpc_seterr(ctx, "%s: the request has no transactionID (out of memory?)", what);
		return CMPC_ERR_INTERNAL;
	}
	memcpy(p->tid, tid->data, (size_t)tid->length);
	p->tid_len = (size_t)tid->length;
	/* Nothing to resume: these exchanges end with the run (a transport
	 * key that ends with the process, a ccr nobody would fetch), so a
	 * store-and-forward transport's stored request is not announced. */
	pending_fn = ctx->pending_fn;
	ctx->pending_fn = NULL;
	rv = cmpc_msg_exchange(ctx, p, req, nonce, CMPC_MSG_NONCE_LEN, what, rsp);
	ctx->pending_fn = pending_fn;
	if (rv == CMPC_ERR_WAITING && ctx->x.stored) {
		cmpc_seterr(ctx, "%s: %s over a store-and-forward transport is not supported: use an "
				 "http(s):// or tcp:// URL",
			    what, exchange);
		return CMPC_ERR_CONFIG;
	}
	if (rv != CMPC_OK)
		return rv;
	if ((type = OSSL_CMP_MSG_get_bodytype(*rsp)) != want_type) {
		cmpc_seterr(ctx, "%s: the CA answered with a%s %s, not a%s %s%s%s%s", what,
			    type == CMPC_BODY_ERROR ? "n" : "", cmpc_body_name(type),
			    want_type == CMPC_BODY_IP ? "n" : "", cmpc_body_name(want_type),
			    type == CMPC_BODY_ERROR ? ": it does not do " : "",
			    type == CMPC_BODY_ERROR ? exchange : "",
			    type == CMPC_BODY_ERROR ? ", or refused this request; ask the CA operator"
						    : "; report it to the CA operator");
		return type == CMPC_BODY_ERROR ? CMPC_ERR_REJECTED : CMPC_ERR_PROTOCOL;
	}
	return CMPC_OK;
}
