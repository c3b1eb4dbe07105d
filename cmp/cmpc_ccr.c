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
#define WHAT "CMP ccr"
#define NOUN "cross-certificate"

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

OSSL_CMP_MSG *cmpc_ccr_new(cmpc_ctx *ctx, EVP_PKEY *key, int path_len,
			   unsigned char nonce[CMPC_CCR_NONCE_LEN], int *key_failed)
{
	CMPC_BODY b = {CMPC_SEL_CCR, {NULL}};
	OSSL_CMP_MSG *msg;

	if ((b.value.ccr = ccr_msgs(ctx, key, path_len, key_failed)) == NULL)
		return NULL;
	/* A first message: OpenSSL's random transactionID, no recipNonce. */
	msg = cmpc_msg_build(ctx, &b, NULL, 0, NULL, 0, nonce);
	OSSL_CRMF_MSGS_free(b.value.ccr);
	return msg;
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
	if (!cmpc_same_pubkey(cert, key)) {
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
	if ((rv = cmpc_certrep_chain(ctx, cert, untrusted, WHAT, NOUN)) != CMPC_OK)
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

cmpc_rv cmpc_ccr(cmpc_ctx *ctx, EVP_PKEY *key, int path_len, X509 **ret_cert,
		 STACK_OF(X509) **ret_chain)
{
	OSSL_CMP_MSG *req, *rsp = NULL;
	STACK_OF(X509) *capubs = NULL;
	unsigned char nonce[NONCE_LEN];
	cmpc_pending p;
	X509 *cert = NULL;
	char why[CMPC_ERRMSG_LEN];
	int key_failed, fail_bit;
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
	if ((rv = cmpc_own_send(ctx, req, nonce, "CMP ccr", "cross-certification",
				CMPC_BODY_CCP, &p, &rsp)) != CMPC_OK)
		goto out;
	cert = cmpc_certrep_get(ctx, CMPC_SEL_CCP, 0, WHAT, NOUN, &capubs, &rv);
	if (cert == NULL && rv == CMPC_ERR_WAITING) {
		/* RFC 4210 5.3.22: pollReq until the ccp comes, within the
		 * total timeout (checkAfter of each pollRep). */
		cmpc_log(ctx, LOG_INFO, "CMP ccr: the CA answered 'waiting'; polling");
		memcpy(p.nonce, ctx->x.rsp.nonce, ctx->x.rsp.nonce_len);
		p.nonce_len = ctx->x.rsp.nonce_len;
		OSSL_CMP_MSG_free(rsp);
		rsp = NULL;
		if ((rv = cmpc_poll_until(ctx, &p, CMPC_BODY_CCR, CMPC_BODY_CCP, WHAT, &rsp)) !=
		    CMPC_OK)
			goto out;
		ctx->errmsg[0] = '\0'; /* the 'waiting' is over */
		cert = cmpc_certrep_get(ctx, CMPC_SEL_CCP, 0, WHAT, NOUN, &capubs, &rv);
		if (cert == NULL && rv == CMPC_ERR_WAITING) {
			cmpc_seterr(ctx, "CMP ccr: the CA answered a pollReq with a 'waiting' "
					 "ccp; report it to the CA operator");
			rv = CMPC_ERR_PROTOCOL;
		}
	}
	if (cert == NULL)
		goto out;
	if ((rv = check_cert(ctx, cert, key, capubs, &fail_bit)) != CMPC_OK) {
		/* The CA learns that its certificate is refused (RFC 4210
		 * 5.3.18) and may revoke it; what failed stays the message. */
		if (rv != CMPC_ERR_INTERNAL) {
			memcpy(why, ctx->errmsg, sizeof(why));
			if (cmpc_certrep_confirm(ctx, cert, 0, &p, fail_bit, WHAT, NOUN) == CMPC_OK)
				cmpc_log(ctx, LOG_INFO, "CMP ccr: the cross-certificate was "
							"refused in the certConf");
			memcpy(ctx->errmsg, why, sizeof(why));
		}
		goto out;
	}
	if ((rv = cmpc_certrep_confirm(ctx, cert, 0, &p, -1, WHAT, NOUN)) != CMPC_OK)
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
