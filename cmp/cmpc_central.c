/*
 * Central key generation (RFC 9483 4.1.6): an ir, cr or kur whose
 * certTemplate names only the key type (publicKey with the algorithm and
 * an empty subjectPublicKey), without POP, and with the key the CA is to
 * encrypt the new private key to in the protocolEncrKey control (RFC 4211
 * 6.6).  OpenSSL 3.0 puts a public key into every request it builds
 * (crm_new: CMP_R_NULL_ARGUMENT without one) and cannot read an ip whose
 * privateKey is an EnvelopedData, so the request and the answer are the
 * layer's own, as for ccr: built with OpenSSL's CRMF API and the layer's
 * templates, protected by OpenSSL, exchanged by cmpc_msg_exchange.  The
 * caller's import callback puts the key and the certificate on the token
 * before the certConf says that the certificate is accepted.
 */
#include "config.h"

#include <string.h>
#include <syslog.h>
#include <time.h>

#include <openssl/crmf.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "cmp/cmpc-int.h"

/* The template's publicKey as RFC 9483 4.1.6 asks for a key type: the
 * algorithm (with the curve for EC) and a zero-length subjectPublicKey. */
static X509_PUBKEY *key_type(int alg, int bits)
{
	X509_PUBKEY *pk = X509_PUBKEY_new();
	int ok;

	if (pk == NULL)
		return NULL;
	if (alg == CMPC_CENTRAL_RSA)
		ok = X509_PUBKEY_set0_param(pk, OBJ_nid2obj(NID_rsaEncryption), V_ASN1_NULL, NULL,
					    NULL, 0);
	else
		ok = X509_PUBKEY_set0_param(pk, OBJ_nid2obj(NID_X9_62_id_ecPublicKey),
					    V_ASN1_OBJECT,
					    OBJ_nid2obj(bits == 384 ? NID_secp384r1
								    : NID_X9_62_prime256v1),
					    NULL, 0);
	if (!ok) {
		X509_PUBKEY_free(pk);
		return NULL;
	}
	return pk;
}

/* crm again with the key type as its template's publicKey: OpenSSL's
 * template setter takes a whole key only. */
static OSSL_CRMF_MSG *with_key_type(const OSSL_CRMF_MSG *crm, int alg, int bits)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	CMPC_CERTREQMSG *m = NULL;
	OSSL_CRMF_MSG *out = NULL;
	int len;

	if ((len = i2d_OSSL_CRMF_MSG(crm, &der)) <= 0)
		return NULL;
	p = der;
	m = (CMPC_CERTREQMSG *)ASN1_item_d2i(NULL, &p, len, ASN1_ITEM_rptr(CMPC_CERTREQMSG));
	OPENSSL_free(der);
	der = NULL;
	if (m == NULL)
		return NULL;
	X509_PUBKEY_free(m->certReq->certTemplate->publicKey);
	if ((m->certReq->certTemplate->publicKey = key_type(alg, bits)) != NULL &&
	    (len = ASN1_item_i2d((ASN1_VALUE *)m, &der, ASN1_ITEM_rptr(CMPC_CERTREQMSG))) > 0) {
		p = der;
		out = d2i_OSSL_CRMF_MSG(NULL, &p, len);
	}
	OPENSSL_free(der);
	ASN1_item_free((ASN1_VALUE *)m, ASN1_ITEM_rptr(CMPC_CERTREQMSG));
	return out;
}

/* CertReqMessages with one request (certReqId 0): subject (for a kur the
 * old certificate's unless one is set), validity, extensions, the key
 * type, controls protocolEncrKey (and oldCertID for a kur); no POP (RFC
 * 9483 4.1.6: there is no key to prove possession of). */
static OSSL_CRMF_MSGS *central_msgs(cmpc_ctx *ctx, const cmpc_central_req *rq, int kur)
{
	OSSL_CRMF_MSGS *msgs = OSSL_CRMF_MSGS_new();
	OSSL_CRMF_MSG *crm = OSSL_CRMF_MSG_new(), *full = NULL;
	const X509_NAME *subject = ctx->subject;
	X509_EXTENSIONS *exts = NULL;
	X509_PUBKEY *tpub = NULL;
	OSSL_CRMF_CERTID *cid = NULL;
	ASN1_TIME *from = NULL, *to = NULL;
	int ok;

	if (kur && (subject == NULL || X509_NAME_entry_count(subject) == 0))
		subject = X509_get_subject_name(rq->oldcert);
	ok = msgs != NULL && crm != NULL && OSSL_CRMF_MSG_set_certReqId(crm, 0) &&
	     OSSL_CRMF_CERTTEMPLATE_fill(OSSL_CRMF_MSG_get0_tmpl(crm), NULL, subject, NULL, NULL) &&
	     cmpc_req_exts(ctx, subject == NULL || X509_NAME_entry_count(subject) == 0, &exts) &&
	     X509_PUBKEY_set(&tpub, rq->transport) &&
	     OSSL_CRMF_MSG_set1_regCtrl_protocolEncrKey(crm, tpub);
	if (ok && exts != NULL && (ok = OSSL_CRMF_MSG_set0_extensions(crm, exts)))
		exts = NULL;
	if (ok && kur)
		ok = (cid = OSSL_CRMF_CERTID_gen(X509_get_issuer_name(rq->oldcert),
						 X509_get0_serialNumber(rq->oldcert))) != NULL &&
		     OSSL_CRMF_MSG_set1_regCtrl_oldCertID(crm, cid);
	if (ok && ctx->days > 0) {
		ok = (from = ASN1_TIME_set(NULL, time(NULL))) != NULL &&
		     (to = X509_time_adj_ex(NULL, ctx->days, 0, NULL)) != NULL &&
		     OSSL_CRMF_MSG_set0_validity(crm, from, to);
		if (ok)
			from = to = NULL;
	}
	if (ok && (full = with_key_type(crm, rq->key_alg, rq->key_bits)) != NULL &&
	    sk_OSSL_CRMF_MSG_push(msgs, full) > 0)
		full = NULL;
	else
		ok = 0;
	ASN1_TIME_free(from);
	ASN1_TIME_free(to);
	OSSL_CRMF_CERTID_free(cid);
	X509_PUBKEY_free(tpub);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	OSSL_CRMF_MSG_free(crm);
	OSSL_CRMF_MSG_free(full);
	if (!ok) {
		OSSL_CRMF_MSGS_free(msgs);
		return NULL;
	}
	return msgs;
}

static int body_sel(cmpc_req_type type)
{
	return type == CMPC_REQ_KUR ? CMPC_SEL_KUR : type == CMPC_REQ_CR ? CMPC_SEL_CR : CMPC_SEL_IR;
}

OSSL_CMP_MSG *cmpc_central_new(cmpc_ctx *ctx, cmpc_req_type type, const cmpc_central_req *rq,
			       unsigned char nonce[CMPC_MSG_NONCE_LEN])
{
	CMPC_BODY b = {body_sel(type), {NULL}};
	OSSL_CRMF_MSGS *msgs;
	OSSL_CMP_MSG *msg;

	if ((msgs = central_msgs(ctx, rq, type == CMPC_REQ_KUR)) == NULL)
		return NULL;
	b.value.ir = msgs; /* ir, cr and kur share the type */
	msg = cmpc_msg_build(ctx, &b, NULL, 0, NULL, 0, nonce);
	OSSL_CRMF_MSGS_free(msgs);
	return msg;
}

/* The certificate as requested: subject, a chain to the anchors (caPubs
 * and extraCerts as intermediates; ctx->x.chain), a response signer that
 * may speak for its issuer.  Its key is checked by the import (the
 * private key must match it). */
static cmpc_rv check_cert(cmpc_ctx *ctx, const char *what, X509 *cert, const X509_NAME *want,
			  STACK_OF(X509) *capubs, int *fail_bit)
{
	CMPC_PKIMSG *m = cmpc_msg_decode(ctx->x.rbuf, ctx->x.rlen);
	STACK_OF(X509) *untrusted = sk_X509_new_null();
	char a[256], b[256];
	cmpc_rv rv = CMPC_ERR_CERT;

	if (m == NULL || untrusted == NULL ||
	    !X509_add_certs(untrusted, capubs, X509_ADD_FLAG_UP_REF) ||
	    !X509_add_certs(untrusted, m->extraCerts, X509_ADD_FLAG_UP_REF)) {
		cmpc_seterr(ctx, "%s: out of memory checking the certificate", what);
		rv = CMPC_ERR_INTERNAL;
		goto out;
	}
	*fail_bit = OSSL_CMP_PKIFAILUREINFO_badCertTemplate;
	if (want != NULL && X509_NAME_entry_count(want) > 0 &&
	    X509_NAME_cmp(X509_get_subject_name(cert), want) != 0) {
		cmpc_name_str(want, a, sizeof(a), "(empty)");
		cmpc_name_str(X509_get_subject_name(cert), b, sizeof(b), "(empty)");
		cmpc_seterr(ctx, "%s: the certificate names subject '%s', requested was '%s'; "
				 "report it to the CA operator",
			    what, b, a);
		goto out;
	}
	*fail_bit = OSSL_CMP_PKIFAILUREINFO_signerNotTrusted;
	if ((rv = cmpc_certrep_chain(ctx, cert, untrusted, what, "certificate")) != CMPC_OK)
		goto out;
	*fail_bit = OSSL_CMP_PKIFAILUREINFO_wrongAuthority;
	if (!cmpc_signer_may_answer_for(ctx, cert)) {
		cmpc_seterr(ctx, "%s: %s; pin the CA's CMP certificate (srv_cert) or name it "
				 "(expected_sender)",
			    what, ctx->x.signer_msg);
		rv = CMPC_ERR_PROTOCOL;
	}
out:
	sk_X509_pop_free(untrusted, X509_free);
	cmpc_msg_free(m);
	return rv;
}

/* The certificate is refused: the CA learns it in the certConf (RFC 4210
 * 5.3.18) and may revoke it; what failed stays the message. */
static void refuse(cmpc_ctx *ctx, const char *what, X509 *cert, const cmpc_pending *p,
		   int fail_bit)
{
	char why[CMPC_ERRMSG_LEN];

	memcpy(why, ctx->errmsg, sizeof(why));
	if (cmpc_certrep_confirm(ctx, cert, 0, p, fail_bit, what, "certificate") == CMPC_OK)
		cmpc_log(ctx, LOG_INFO, "%s: the certificate was refused in the certConf", what);
	memcpy(ctx->errmsg, why, sizeof(why));
}

cmpc_rv cmpc_central(cmpc_ctx *ctx, cmpc_req_type type, const cmpc_central_req *rq,
		     X509 **ret_cert, STACK_OF(X509) **ret_cacerts)
{
	const char *what = type == CMPC_REQ_KUR  ? "CMP kur (central key generation)"
			   : type == CMPC_REQ_CR ? "CMP cr (central key generation)"
						 : "CMP ir (central key generation)";
	int want_type = type == CMPC_REQ_KUR  ? CMPC_BODY_KUP
			: type == CMPC_REQ_CR ? CMPC_BODY_CP
					      : CMPC_BODY_IP;
	int want_sel = type == CMPC_REQ_KUR  ? CMPC_SEL_KUP
		       : type == CMPC_REQ_CR ? CMPC_SEL_CP
					     : CMPC_SEL_IP;
	OSSL_CMP_MSG *req, *rsp = NULL;
	STACK_OF(X509) *capubs = NULL, *cacerts = NULL;
	const X509_NAME *want;
	unsigned char nonce[CMPC_MSG_NONCE_LEN];
	cmpc_privkey k;
	cmpc_pending p;
	X509 *cert = NULL;
	char why[512];
	int fail_bit = 0, got;
	cmpc_rv rv;

	memset(&k, 0, sizeof(k));
	*ret_cert = NULL;
	if (ret_cacerts != NULL)
		*ret_cacerts = NULL;
	if (type == CMPC_REQ_P10CR || (type == CMPC_REQ_KUR && rq->oldcert == NULL) ||
	    rq->transport == NULL || rq->import == NULL) {
		cmpc_seterr(ctx, "%s: a p10cr carries a public key, and a kur needs the old "
				 "certificate",
			    what);
		return CMPC_ERR_CONFIG;
	}
	if ((rv = cmpc_xchg_begin(ctx, what)) != CMPC_OK)
		return rv;
	ctx->x.own_enveloped = 1;
	cmpc_log_enter(ctx);
	if ((req = cmpc_central_new(ctx, type, rq, nonce)) == NULL) {
		cmpc_ossl_errors(ctx->x.msg, sizeof(ctx->x.msg));
		cmpc_seterr(ctx, "%s: cannot build or protect the request: %s; check the signer "
				 "key or the MAC secret",
			    what, ctx->x.msg);
		rv = CMPC_ERR_INTERNAL;
		goto out;
	}
	if ((rv = cmpc_own_send(ctx, req, nonce, what, "central key generation", want_type, &p,
				&rsp)) != CMPC_OK)
		goto out;
	if ((cert = cmpc_certrep_get(ctx, want_sel, 0, what, "certificate", &capubs, &rv)) ==
	    NULL) {
		if (rv == CMPC_ERR_WAITING) {
			cmpc_seterr(ctx, "%s: the CA answered \"waiting\": a centrally generated key "
					 "is not polled for (its transport key ends with this run); "
					 "ask the CA operator to issue such requests at once, or use "
					 "key_source = token",
				    what);
			rv = CMPC_ERR_PROTOCOL;
		}
		goto out;
	}
	want = ctx->subject;
	if (type == CMPC_REQ_KUR && (want == NULL || X509_NAME_entry_count(want) == 0))
		want = X509_get_subject_name(rq->oldcert);
	if ((rv = check_cert(ctx, what, cert, want, capubs, &fail_bit)) != CMPC_OK) {
		if (rv != CMPC_ERR_INTERNAL)
			refuse(ctx, what, cert, &p, fail_bit);
		goto out;
	}
	if ((cacerts = cmpc_ca_certs(ctx)) == NULL) {
		cmpc_seterr(ctx, "%s: out of memory", what);
		rv = CMPC_ERR_INTERNAL;
		goto out;
	}
	/* The answer's protection verified above: its private key is the CA's. */
	got = cmpc_privkey_get(ctx->x.rbuf, ctx->x.rlen, 0, &k, why, sizeof(why));
	if (got <= 0) {
		cmpc_seterr(ctx, "%s: the CA issued a certificate but %s; the certificate is "
				 "refused; report it to the CA operator",
			    what, got == 0 ? "sent no private key with it" : why);
		rv = CMPC_ERR_PROTOCOL;
		refuse(ctx, what, cert, &p, OSSL_CMP_PKIFAILUREINFO_badDataFormat);
		goto out;
	}
	why[0] = '\0';
	if (rq->import(cert, cacerts, &k, rq->arg, why, sizeof(why)) != 0) {
		cmpc_seterr(ctx, "%s: the certificate is refused: %s", what,
			    why[0] != '\0' ? why : "the key could not be imported");
		rv = CMPC_ERR_CERT;
		refuse(ctx, what, cert, &p, OSSL_CMP_PKIFAILUREINFO_badDataFormat);
		goto out;
	}
	if ((rv = cmpc_certrep_confirm(ctx, cert, 0, &p, -1, what, "certificate")) != CMPC_OK)
		goto out;
	*ret_cert = cert;
	cert = NULL;
	if (ret_cacerts != NULL) {
		*ret_cacerts = cacerts;
		cacerts = NULL;
	}
out:
	cmpc_privkey_clear(&k);
	X509_free(cert);
	sk_X509_pop_free(capubs, X509_free);
	sk_X509_pop_free(cacerts, X509_free);
	OSSL_CMP_MSG_free(rsp);
	cmpc_log_leave();
	cmpc_xchg_end(ctx);
	return rv;
}
