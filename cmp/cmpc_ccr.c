/*
 * Cross-certification (ccr/ccp, RFC 4210 5.3.11): a CA asks another CA to
 * certify its key.  OpenSSL 3.0's client builds no ccr (its certificate
 * requests are ir, cr, p10cr and kur only), so the PKIMessage is built
 * here with the layer's templates and OpenSSL's CRMF API, decoded into an
 * OSSL_CMP_MSG and protected by OpenSSL (OSSL_CMP_MSG_update_transactionID
 * protects a message that names a protectionAlg); the ccp is validated by
 * OpenSSL (protection) and by cmpc_poll.c's exchange (transaction, nonce),
 * and read with the layer's CertRepMessage template.
 */
#include "config.h"

#include <string.h>
#include <syslog.h>
#include <time.h>

#include <openssl/crmf.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "cmp/cmpc-int.h"

#define NONCE_LEN CMPC_MSG_NONCE_LEN

/* Whether exts hold a basicConstraints (1 CA:TRUE, 0 CA:FALSE, -1 none)
 * and a keyUsage with keyCertSign (*ku_ok). */
static int configured(const X509_EXTENSIONS *exts, int *ku_ok)
{
	BASIC_CONSTRAINTS *bc = X509V3_get_d2i(exts, NID_basic_constraints, NULL, NULL);
	ASN1_BIT_STRING *ku = X509V3_get_d2i(exts, NID_key_usage, NULL, NULL);
	int ca = bc == NULL ? -1 : bc->ca != 0;

	*ku_ok = ku != NULL && ASN1_BIT_STRING_get_bit(ku, 5);
	BASIC_CONSTRAINTS_free(bc);
	ASN1_BIT_STRING_free(ku);
	ERR_clear_error();
	return ca;
}

/* The extensions a CA certificate needs after the configured ones and the
 * SANs: basicConstraints CA:TRUE (path_len unless negative) unless one
 * with CA:TRUE is configured (with its path length), keyUsage keyCertSign
 * and cRLSign unless the configured one has keyCertSign; both critical.
 * NULL with *ca_false set when basicConstraints CA:FALSE is configured. */
static X509_EXTENSIONS *ca_exts(const cmpc_ctx *ctx, int path_len, int *ca_false)
{
	X509_EXTENSIONS *exts = NULL;
	BASIC_CONSTRAINTS *bc = BASIC_CONSTRAINTS_new();
	ASN1_BIT_STRING *ku = ASN1_BIT_STRING_new();
	int i, ok = bc != NULL && ku != NULL, ca = -1, ku_ok = 0;

	for (i = 0; ok && i < sk_X509_EXTENSION_num(ctx->req_exts); i++)
		ok = X509v3_add_ext(&exts, sk_X509_EXTENSION_value(ctx->req_exts, i), -1) != NULL;
	if (ok && ctx->sans != NULL)
		ok = X509V3_add1_i2d(&exts, NID_subject_alt_name, ctx->sans, 0,
				     X509V3_ADD_REPLACE) == 1;
	if (ok)
		ca = configured(exts, &ku_ok);
	*ca_false = ca == 0;
	ok = ok && ca != 0;
	if (ok && ca < 0) {
		bc->ca = 0xff;
		if (path_len >= 0)
			ok = (bc->pathlen = ASN1_INTEGER_new()) != NULL &&
			     ASN1_INTEGER_set(bc->pathlen, path_len);
		ok = ok && X509V3_add1_i2d(&exts, NID_basic_constraints, bc, 1,
					   X509V3_ADD_REPLACE) == 1;
	}
	if (ok && !ku_ok)
		ok = ASN1_BIT_STRING_set_bit(ku, 5, 1) && ASN1_BIT_STRING_set_bit(ku, 6, 1) &&
		     X509V3_add1_i2d(&exts, NID_key_usage, ku, 1, X509V3_ADD_REPLACE) == 1;
	BASIC_CONSTRAINTS_free(bc);
	ASN1_BIT_STRING_free(ku);
	if (!ok) {
		sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
		return NULL;
	}
	return exts;
}

/* CertReqMessages with one request (certReqId 0) for key: subject, public
 * key, validity, the CA extensions; POP: a signature by key. */
static OSSL_CRMF_MSGS *ccr_msgs(cmpc_ctx *ctx, EVP_PKEY *key, int path_len, int *key_failed)
{
	OSSL_CRMF_MSGS *msgs = OSSL_CRMF_MSGS_new();
	OSSL_CRMF_MSG *crm = OSSL_CRMF_MSG_new();
	int ca_false = 0;
	X509_EXTENSIONS *exts = ca_exts(ctx, path_len, &ca_false);
	ASN1_TIME *from = NULL, *to = NULL;
	const EVP_MD *md = NULL;
	int ok;

	*key_failed = ca_false ? 2 : 0;
	ok = msgs != NULL && crm != NULL && exts != NULL && OSSL_CRMF_MSG_set_certReqId(crm, 0) &&
	     OSSL_CRMF_CERTTEMPLATE_fill(OSSL_CRMF_MSG_get0_tmpl(crm), key, ctx->subject, NULL,
					 NULL) &&
	     OSSL_CRMF_MSG_set0_extensions(crm, exts);
	if (ok)
		exts = NULL;
	if (ok && ctx->days > 0) {
		ok = (from = ASN1_TIME_set(NULL, time(NULL))) != NULL &&
		     (to = X509_time_adj_ex(NULL, ctx->days, 0, NULL)) != NULL &&
		     OSSL_CRMF_MSG_set0_validity(crm, from, to);
		if (ok)
			from = to = NULL;
	}
	/* Ed25519 and Ed448 sign without a separate digest. */
	if (ok && EVP_PKEY_get_default_digest_nid(key, &(int){0}) > 0 &&
	    !EVP_PKEY_is_a(key, "ED25519") && !EVP_PKEY_is_a(key, "ED448"))
		md = EVP_sha256();
	if (ok && !OSSL_CRMF_MSG_create_popo(OSSL_CRMF_POPO_SIGNATURE, crm, key, md, NULL, NULL)) {
		*key_failed = 1;
		ok = 0;
	}
	if (ok && sk_OSSL_CRMF_MSG_push(msgs, crm) > 0)
		crm = NULL;
	else
		ok = 0;
	ASN1_TIME_free(from);
	ASN1_TIME_free(to);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	OSSL_CRMF_MSG_free(crm);
	if (!ok) {
		OSSL_CRMF_MSGS_free(msgs);
		return NULL;
	}
	return msgs;
}

/* A message of the current transaction (OpenSSL's transactionID, random
 * for a first message) with body b: recip (the CA's last senderNonce)
 * NULL for the first. */
static OSSL_CMP_MSG *build(cmpc_ctx *ctx, const CMPC_BODY *b, const cmpc_ids *recip,
			   unsigned char nonce[NONCE_LEN])
{
	return cmpc_msg_build(ctx, b, recip != NULL ? recip->nonce : NULL,
			      recip != NULL ? recip->nonce_len : 0, NULL, 0, nonce);
}

OSSL_CMP_MSG *cmpc_ccr_new(cmpc_ctx *ctx, EVP_PKEY *key, int path_len,
			   unsigned char nonce[CMPC_CCR_NONCE_LEN], int *key_failed)
{
	CMPC_BODY b = {CMPC_SEL_CCR, {NULL}};
	OSSL_CMP_MSG *msg;

	if ((b.value.ccr = ccr_msgs(ctx, key, path_len, key_failed)) == NULL)
		return NULL;
	msg = build(ctx, &b, NULL, nonce);
	OSSL_CRMF_MSGS_free(b.value.ccr);
	return msg;
}

static int same_pubkey(X509 *cert, EVP_PKEY *key)
{
	unsigned char *a = NULL, *b = NULL;
	int alen = i2d_PUBKEY(X509_get0_pubkey(cert), &a), blen = i2d_PUBKEY(key, &b);
	int same = alen > 0 && alen == blen && memcmp(a, b, (size_t)alen) == 0;

	OPENSSL_free(a);
	OPENSSL_free(b);
	return same;
}

/* "status N: text" of si, printable ASCII only (the CA's text). */
static void status_text(const CMPC_PKISI *si, char *buf, size_t len)
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

/* The certificate of the ccp in ctx->x.rbuf, checked against the request;
 * its caPubs into *capubs.  NULL with errmsg and *rv set. */
static X509 *ccp_cert(cmpc_ctx *ctx, EVP_PKEY *key, STACK_OF(X509) **capubs, cmpc_rv *rv)
{
	CMPC_PKIMSG *m = cmpc_msg_decode(ctx->x.rbuf, ctx->x.rlen);
	CMPC_BODY *b = cmpc_body_decode(m);
	CMPC_CERTRESP *r;
	X509 *cert = NULL;
	char st[256];
	int status;

	*rv = CMPC_ERR_PROTOCOL;
	if (b == NULL || b->type != CMPC_SEL_CCP ||
	    sk_CMPC_CERTRESP_num(b->value.ccp->response) != 1) {
		cmpc_seterr(ctx, "CMP ccr: the CA's ccp is malformed or answers more than one "
				 "request; report it to the CA operator");
		goto out;
	}
	r = sk_CMPC_CERTRESP_value(b->value.ccp->response, 0);
	status = (int)ASN1_INTEGER_get(r->status->status);
	if (ASN1_INTEGER_get(r->certReqId) != 0) {
		cmpc_seterr(ctx, "CMP ccr: the CA's ccp answers another certReqId than 0; "
				 "report it to the CA operator");
		goto out;
	}
	if (status != OSSL_CMP_PKISTATUS_accepted && status != OSSL_CMP_PKISTATUS_grantedWithMods) {
		status_text(r->status, st, sizeof(st));
		cmpc_seterr(ctx, "CMP ccr: the CA did not issue the cross-certificate: %s", st);
		*rv = CMPC_ERR_REJECTED;
		goto out;
	}
	if (r->certifiedKeyPair == NULL || r->certifiedKeyPair->certOrEncCert->type != 0) {
		cmpc_seterr(ctx, "CMP ccr: the CA's ccp carries no certificate in the clear; "
				 "report it to the CA operator");
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

/* cert under the anchors, its chain into ctx->x.chain (for cmpc_ca_certs
 * and the signer check). */
static cmpc_rv verify_chain(cmpc_ctx *ctx, X509 *cert, STACK_OF(X509) *untrusted)
{
	X509_STORE *store = cmpc_anchor_store(ctx);
	X509_STORE_CTX *sctx = X509_STORE_CTX_new();
	char name[256];
	cmpc_rv rv = CMPC_OK;

	sk_X509_pop_free(ctx->x.chain, X509_free);
	ctx->x.chain = NULL;
	if (store == NULL || sctx == NULL || !X509_STORE_CTX_init(sctx, store, cert, untrusted)) {
		cmpc_seterr(ctx, "CMP ccr: out of memory verifying the cross-certificate");
		rv = CMPC_ERR_INTERNAL;
	} else if (X509_verify_cert(sctx) != 1) {
		cmpc_name_str(X509_get_issuer_name(cert), name, sizeof(name), "(empty)");
		cmpc_seterr(ctx,
			    "CMP ccr: the cross-certificate (issuer '%s') does not verify against "
			    "the configured trust anchors: %s (at chain depth %d); check that the "
			    "trust anchor file holds the root of the other CA",
			    name, X509_verify_cert_error_string(X509_STORE_CTX_get_error(sctx)),
			    X509_STORE_CTX_get_error_depth(sctx));
		rv = CMPC_ERR_CERT;
	} else if ((ctx->x.chain = X509_STORE_CTX_get1_chain(sctx)) == NULL) {
		cmpc_seterr(ctx, "CMP ccr: out of memory verifying the cross-certificate");
		rv = CMPC_ERR_INTERNAL;
	}
	ERR_clear_error();
	X509_STORE_CTX_free(sctx);
	X509_STORE_free(store);
	return rv;
}

/* The certificate as the request asked: its public key, its subject, a
 * chain to the anchors (caPubs and extraCerts as intermediates), and a
 * response signer that may speak for its issuer. */
static cmpc_rv check_cert(cmpc_ctx *ctx, X509 *cert, EVP_PKEY *key, STACK_OF(X509) *capubs,
			  int *fail_bit)
{
	CMPC_PKIMSG *m = cmpc_msg_decode(ctx->x.rbuf, ctx->x.rlen);
	STACK_OF(X509) *untrusted = sk_X509_new_null();
	char want[256], got[256];
	cmpc_rv rv = CMPC_ERR_CERT;

	if (m == NULL || untrusted == NULL ||
	    !X509_add_certs(untrusted, capubs, X509_ADD_FLAG_UP_REF) ||
	    !X509_add_certs(untrusted, m->extraCerts, X509_ADD_FLAG_UP_REF)) {
		cmpc_seterr(ctx, "CMP ccr: out of memory checking the cross-certificate");
		rv = CMPC_ERR_INTERNAL;
		goto out;
	}
	*fail_bit = OSSL_CMP_PKIFAILUREINFO_incorrectData;
	if (!same_pubkey(cert, key)) {
		cmpc_seterr(ctx, "CMP ccr: the cross-certificate carries another public key than "
				 "the request; report it to the CA operator");
		goto out;
	}
	if (ctx->subject != NULL &&
	    X509_NAME_cmp(X509_get_subject_name(cert), ctx->subject) != 0) {
		*fail_bit = OSSL_CMP_PKIFAILUREINFO_badCertTemplate;
		cmpc_name_str(ctx->subject, want, sizeof(want), "(empty)");
		cmpc_name_str(X509_get_subject_name(cert), got, sizeof(got), "(empty)");
		cmpc_seterr(ctx, "CMP ccr: the cross-certificate names subject '%s', requested "
				 "was '%s'; report it to the CA operator",
			    got, want);
		goto out;
	}
	*fail_bit = OSSL_CMP_PKIFAILUREINFO_signerNotTrusted;
	if ((rv = verify_chain(ctx, cert, untrusted)) != CMPC_OK)
		goto out;
	*fail_bit = OSSL_CMP_PKIFAILUREINFO_wrongAuthority;
	if (!cmpc_signer_may_answer_for(ctx, cert)) {
		cmpc_seterr(ctx, "CMP ccr: %s; pin the CA's CMP certificate (srv_cert) or name it "
				 "(expected_sender)",
			    ctx->x.signer_msg);
		rv = CMPC_ERR_PROTOCOL;
	}
out:
	sk_X509_pop_free(untrusted, X509_free);
	cmpc_msg_free(m);
	return rv;
}

static void free_status(CMPC_CERTSTATUS *cs)
{
	ASN1_item_free((ASN1_VALUE *)cs, ASN1_ITEM_rptr(CMPC_CERTSTATUS));
}

/* certConf for cert (certReqId 0): accepted, or with fail_bit >= 0
 * rejected for that reason; answered by a pkiConf. */
static cmpc_rv confirm(cmpc_ctx *ctx, X509 *cert, const cmpc_pending *p, int fail_bit)
{
	CMPC_BODY b = {CMPC_SEL_CERTCONF, {NULL}};
	CMPC_CERTSTATUS *cs = NULL;
	ASN1_OCTET_STRING *hash = NULL;
	OSSL_CMP_MSG *req = NULL, *rsp = NULL;
	unsigned char nonce[NONCE_LEN];
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
	    !ASN1_INTEGER_set(cs->certReqId, 0) ||
	    (cs->statusInfo = fail_bit < 0
				  ? OSSL_CMP_STATUSINFO_new(OSSL_CMP_PKISTATUS_accepted, 0, NULL)
				  : OSSL_CMP_STATUSINFO_new(OSSL_CMP_PKISTATUS_rejection,
							    1 << fail_bit, NULL)) == NULL ||
	    (req = build(ctx, &b, &ctx->x.rsp, nonce)) == NULL)
		goto oom;
	memcpy(cur.nonce, ctx->x.rsp.nonce, ctx->x.rsp.nonce_len);
	cur.nonce_len = ctx->x.rsp.nonce_len;
	rv = cmpc_msg_exchange(ctx, &cur, req, nonce, NONCE_LEN, "CMP ccr certConf", &rsp);
	req = NULL;
	if (rv == CMPC_OK && OSSL_CMP_MSG_get_bodytype(rsp) != CMPC_BODY_PKICONF) {
		cmpc_seterr(ctx, "CMP ccr: the CA answered the certConf with a %s, not a pkiConf; "
				 "the cross-certificate may not be published",
			    cmpc_body_name(OSSL_CMP_MSG_get_bodytype(rsp)));
		rv = CMPC_ERR_PROTOCOL;
	}
	goto out;
oom:
	cmpc_seterr(ctx, "CMP ccr: cannot build the certConf (out of memory?)");
	rv = CMPC_ERR_INTERNAL;
out:
	OSSL_CMP_MSG_free(req);
	OSSL_CMP_MSG_free(rsp);
	ASN1_OCTET_STRING_free(hash);
	sk_CMPC_CERTSTATUS_pop_free(b.value.certConf, free_status);
	return rv;
}

cmpc_rv cmpc_ccr(cmpc_ctx *ctx, EVP_PKEY *key, int path_len, X509 **ret_cert,
		 STACK_OF(X509) **ret_chain)
{
	OSSL_CMP_MSG *req, *rsp = NULL;
	const OSSL_CMP_PKIHEADER *hdr;
	const ASN1_OCTET_STRING *tid;
	STACK_OF(X509) *capubs = NULL;
	unsigned char nonce[NONCE_LEN];
	cmpc_pending_fn pending_fn;
	cmpc_pending p;
	X509 *cert = NULL;
	char why[CMPC_ERRMSG_LEN];
	int key_failed, type, fail_bit;
	cmpc_rv rv;

	*ret_cert = NULL;
	if (ret_chain != NULL)
		*ret_chain = NULL;
	if ((rv = cmpc_xchg_begin(ctx, "CMP ccr")) != CMPC_OK)
		return rv;
	cmpc_log_enter(ctx);
	if ((req = cmpc_ccr_new(ctx, key, path_len, nonce, &key_failed)) == NULL) {
		cmpc_ossl_errors(ctx->x.msg, sizeof(ctx->x.msg));
		if (key_failed == 2)
			cmpc_seterr(ctx, "CMP ccr: the requested basicConstraints say CA:FALSE: a "
					 "cross-certificate is a CA certificate; request CA:TRUE "
					 "(with a path length if wanted) or none");
		else
			cmpc_seterr(ctx,
				    key_failed ? "CMP ccr: the CA key cannot sign the proof of "
						 "possession: %s; check the key and its token"
					       : "CMP ccr: cannot build or protect the request: %s; "
						 "check the signer key or the MAC secret",
				    ctx->x.msg);
		rv = key_failed == 1 ? CMPC_ERR_KEY
		     : key_failed == 2 ? CMPC_ERR_CONFIG
				       : CMPC_ERR_INTERNAL;
		goto out;
	}
	memset(&p, 0, sizeof(p));
	hdr = OSSL_CMP_MSG_get0_header(req);
	tid = OSSL_CMP_HDR_get0_transactionID(hdr);
	if (tid == NULL || tid->length <= 0 || (size_t)tid->length > sizeof(p.tid)) {
		OSSL_CMP_MSG_free(req);
		cmpc_seterr(ctx, "CMP ccr: the request has no transactionID (out of memory?)");
		rv = CMPC_ERR_INTERNAL;
		goto out;
	}
	memcpy(p.tid, tid->data, (size_t)tid->length);
	p.tid_len = (size_t)tid->length;
	/* No ccr to resume: a store-and-forward transport's stored ccr is
	 * not announced to the pending callback, and the exchange fails. */
	pending_fn = ctx->pending_fn;
	ctx->pending_fn = NULL;
	rv = cmpc_msg_exchange(ctx, &p, req, nonce, NONCE_LEN, "CMP ccr", &rsp);
	ctx->pending_fn = pending_fn;
	if (rv == CMPC_ERR_WAITING && ctx->x.stored) {
		cmpc_seterr(ctx, "CMP ccr: cross-certification over a store-and-forward "
				 "transport is not supported: use an http(s):// or tcp:// URL");
		rv = CMPC_ERR_CONFIG;
	}
	if (rv != CMPC_OK)
		goto out;
	if ((type = OSSL_CMP_MSG_get_bodytype(rsp)) != CMPC_BODY_CCP) {
		cmpc_seterr(ctx, "CMP ccr: the CA answered with a%s %s, not a ccp%s",
			    type == CMPC_BODY_ERROR ? "n" : "", cmpc_body_name(type),
			    type == CMPC_BODY_ERROR ? ": it does not do cross-certification, or "
						      "refused this request; ask the CA operator"
						    : "; report it to the CA operator");
		rv = type == CMPC_BODY_ERROR ? CMPC_ERR_REJECTED : CMPC_ERR_PROTOCOL;
		goto out;
	}
	if ((cert = ccp_cert(ctx, key, &capubs, &rv)) == NULL)
		goto out;
	if ((rv = check_cert(ctx, cert, key, capubs, &fail_bit)) != CMPC_OK) {
		/* The CA learns that its certificate is refused (RFC 4210
		 * 5.3.18) and may revoke it; what failed stays the message. */
		if (rv != CMPC_ERR_INTERNAL) {
			memcpy(why, ctx->errmsg, sizeof(why));
			if (confirm(ctx, cert, &p, fail_bit) == CMPC_OK)
				cmpc_log(ctx, LOG_INFO, "CMP ccr: the cross-certificate was "
							"refused in the certConf");
			memcpy(ctx->errmsg, why, sizeof(why));
		}
		goto out;
	}
	if ((rv = confirm(ctx, cert, &p, -1)) != CMPC_OK)
		goto out;
	if (ret_chain != NULL && (*ret_chain = cmpc_ca_certs(ctx)) == NULL) {
		cmpc_seterr(ctx, "CMP ccr: out of memory");
		rv = CMPC_ERR_INTERNAL;
		goto out;
	}
	*ret_cert = cert;
	cert = NULL;
out:
	X509_free(cert);
	sk_X509_pop_free(capubs, X509_free);
	OSSL_CMP_MSG_free(rsp);
	cmpc_log_leave();
	cmpc_xchg_end(ctx);
	return rv;
}
