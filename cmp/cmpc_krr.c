/*
 * Key recovery (krr/krp, RFC 4210 5.3.8 and 5.3.9): an end entity asks the
 * CA for the private key of a certificate that the CA archived.  OpenSSL
 * 3.0's client builds no krr and its server none of the answer, so the
 * PKIMessage is built with the layer's templates and OpenSSL's CRMF API
 * (as the ccr is), protected by OpenSSL, and the krp (KeyRecRepContent) is
 * read with the layer's templates from the received bytes.  A krp whose
 * key is an EnvelopedData (RFC 9480's EncryptedKey) OpenSSL 3.0 cannot
 * decode at all: its protection is verified by the layer
 * (cmpc_own_validate), as for central key generation.
 *
 * What the request says: CertReqMessages with one CertReqMsg (certReqId 0)
 * whose template carries the certificate's subject and public key, the
 * oldCertID control (RFC 4211 6.5: issuer and serial of the certificate
 * whose key is wanted) and the protocolEncrKey control (RFC 4211 6.6: the
 * key the CA encrypts the recovered key to, a transport key on the token).
 * No POP: the private key is what was lost.  The message's protection is
 * what the user still has: a MAC secret from the CA (PBM) or another
 * certificate and key (a signer), never the lost key.
 *
 * No certConf: RFC 4210 defines the confirmation for newly issued
 * certificates (ir, cr, kur, ccr and p10cr); the certificates of a krp's
 * keyPairHist were issued and confirmed before, and a newSigCert is not
 * asked for here (the template names an existing key).  The krp ends the
 * transaction.
 */
#include "config.h"

#include <string.h>

#include <openssl/crmf.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "cmp/cmpc-int.h"

#define NONCE_LEN CMPC_MSG_NONCE_LEN

/* CertReqMessages naming cert (template, oldCertID) with tpub as the
 * protocolEncrKey; NULL on failure (out of memory). */
static OSSL_CRMF_MSGS *krr_msgs(X509 *cert, EVP_PKEY *tpub)
{
	OSSL_CRMF_MSGS *msgs = OSSL_CRMF_MSGS_new();
	OSSL_CRMF_MSG *crm = OSSL_CRMF_MSG_new();
	OSSL_CRMF_CERTID *cid = OSSL_CRMF_CERTID_gen(X509_get_issuer_name(cert),
						     X509_get0_serialNumber(cert));
	X509_PUBKEY *xpub = NULL;
	int ok;

	ok = msgs != NULL && crm != NULL && cid != NULL && X509_PUBKEY_set(&xpub, tpub) == 1 &&
	     OSSL_CRMF_MSG_set_certReqId(crm, 0) &&
	     OSSL_CRMF_CERTTEMPLATE_fill(OSSL_CRMF_MSG_get0_tmpl(crm), X509_get0_pubkey(cert),
					 X509_get_subject_name(cert), NULL, NULL) &&
	     OSSL_CRMF_MSG_set1_regCtrl_oldCertID(crm, cid) &&
	     OSSL_CRMF_MSG_set1_regCtrl_protocolEncrKey(crm, xpub) &&
	     sk_OSSL_CRMF_MSG_push(msgs, crm) > 0;
	if (ok)
		crm = NULL;
	OSSL_CRMF_CERTID_free(cid);
	X509_PUBKEY_free(xpub);
	OSSL_CRMF_MSG_free(crm);
	if (!ok) {
		OSSL_CRMF_MSGS_free(msgs);
		return NULL;
	}
	return msgs;
}

/* The CA's refusal: cmpc_status_text, then the status's name and the
 * failInfo bits by name. */
static void status_text(const CMPC_PKISI *si, char *buf, size_t len)
{
	const char *name = cmpc_status_name((int)ASN1_INTEGER_get(si->status));
	char fi[256];
	size_t off;
	int bits = 0, i;

	for (i = 0; si->failInfo != NULL && i < 27; i++)
		if (ASN1_BIT_STRING_get_bit(si->failInfo, i))
			bits |= 1 << i;
	cmpc_failinfo_names(bits, fi, sizeof(fi));
	cmpc_status_text(si, buf, len);
	off = strlen(buf);
	snprintf(buf + off, len - off, " (%s%s%s)", name != NULL ? name : "unknown status",
		 fi[0] != '\0' ? ", failInfo " : "", fi);
}

cmpc_rv cmpc_krp_read(const unsigned char *der, size_t len, X509 *want, X509 **ret_cert,
		      cmpc_privkey *ret_key, STACK_OF(X509) **ret_untrusted, int *ret_others,
		      char *why, size_t whylen)
{
	CMPC_PKIMSG *m = cmpc_msg_decode(der, len);
	CMPC_BODY *b = cmpc_body_decode(m);
	STACK_OF(X509) *untrusted = NULL;
	CMPC_CKP *ckp, *found = NULL;
	CMPC_KRP *krp;
	char fi[128];
	int i, status;
	cmpc_rv rv = CMPC_ERR_PROTOCOL;

	*ret_cert = NULL;
	memset(ret_key, 0, sizeof(*ret_key));
	*ret_untrusted = NULL;
	*ret_others = 0;
	if (b == NULL || b->type != CMPC_SEL_KRP) {
		snprintf(why, whylen, "the CA's krp is malformed; report it to the CA operator");
		goto out;
	}
	krp = b->value.krp;
	status = (int)ASN1_INTEGER_get(krp->status->status);
	if (status != OSSL_CMP_PKISTATUS_accepted && status != OSSL_CMP_PKISTATUS_grantedWithMods) {
		status_text(krp->status, why, whylen);
		rv = CMPC_ERR_REJECTED;
		goto out;
	}
	for (i = 0; i < sk_CMPC_CKP_num(krp->keyPairHist); i++) {
		ckp = sk_CMPC_CKP_value(krp->keyPairHist, i);
		if (found == NULL && ckp->certOrEncCert->type == 0 &&
		    cmpc_same_pubkey(ckp->certOrEncCert->value.certificate, X509_get0_pubkey(want)))
			found = ckp;
		else
			(*ret_others)++;
	}
	if (found == NULL) {
		snprintf(why, whylen, "the CA's krp carries no certificate with the public key asked "
				      "for (%d other key pair(s)); report it to the CA operator",
			 *ret_others);
		goto out;
	}
	if (found->privateKey == NULL) {
		snprintf(why, whylen, "the CA's krp carries the certificate but no private key; ask "
				      "the CA operator whether the key was archived");
		goto out;
	}
	if (!cmpc_privkey_from_any(found->privateKey, ret_key, fi, sizeof(fi))) {
		snprintf(why, whylen, "the recovered key in the CA's krp cannot be read: %s; report "
				      "it to the CA operator",
			 fi);
		goto out;
	}
	if ((untrusted = sk_X509_new_null()) == NULL ||
	    !X509_add_certs(untrusted, krp->caCerts, X509_ADD_FLAG_UP_REF) ||
	    !X509_add_certs(untrusted, m->extraCerts, X509_ADD_FLAG_UP_REF)) {
		snprintf(why, whylen, "out of memory reading the krp");
		cmpc_privkey_clear(ret_key);
		sk_X509_pop_free(untrusted, X509_free);
		rv = CMPC_ERR_INTERNAL;
		goto out;
	}
	*ret_untrusted = untrusted;
	*ret_cert = found->certOrEncCert->value.certificate;
	found->certOrEncCert->value.certificate = NULL;
	rv = CMPC_OK;
out:
	cmpc_body_free(b);
	cmpc_msg_free(m);
	return rv;
}

int cmpc_krp_enveloped(const unsigned char *der, size_t len)
{
	CMPC_PKIMSG *m = cmpc_msg_decode(der, len);
	CMPC_BODY *b = cmpc_body_decode(m);
	cmpc_privkey k;
	char why[64];
	int i, env = 0;

	for (i = 0; b != NULL && b->type == CMPC_SEL_KRP && !env &&
		    i < sk_CMPC_CKP_num(b->value.krp->keyPairHist);
	     i++) {
		const ASN1_TYPE *pk = sk_CMPC_CKP_value(b->value.krp->keyPairHist, i)->privateKey;

		memset(&k, 0, sizeof(k));
		env = pk != NULL && cmpc_privkey_from_any(pk, &k, why, sizeof(why)) &&
		      k.kind == CMPC_PRIVKEY_ENVELOPED;
		cmpc_privkey_clear(&k);
	}
	ERR_clear_error();
	cmpc_body_free(b);
	cmpc_msg_free(m);
	return env;
}

/* The krp in ctx->x.rbuf: the keyPairHist entry for want (*ret_cert,
 * *ret_key), its certificate checked, its chain's CA certificates in
 * *ret_cacerts; *others: the other entries. */
static cmpc_rv krp_key(cmpc_ctx *ctx, X509 *want, X509 **ret_cert, cmpc_privkey *ret_key,
		       STACK_OF(X509) **ret_cacerts, int *others)
{
	STACK_OF(X509) *untrusted = NULL;
	X509 *cert = NULL;
	char why[CMPC_CA_TEXT_MAX + 256];
	cmpc_rv rv;

	rv = cmpc_krp_read(ctx->x.rbuf, ctx->x.rlen, want, &cert, ret_key, &untrusted, others, why,
			   sizeof(why));
	if (rv == CMPC_ERR_REJECTED) {
		cmpc_seterr(ctx, "CMP krr: the CA did not recover the key: %s", why);
		return rv;
	}
	if (rv != CMPC_OK) {
		cmpc_seterr(ctx, "CMP krr: %s", why);
		return rv;
	}
	if ((rv = cmpc_certrep_chain(ctx, cert, untrusted, "CMP krr",
				     "certificate of the recovered key")) == CMPC_OK &&
	    !cmpc_signer_may_answer_for(ctx, cert)) {
		cmpc_seterr(ctx, "CMP krr: %s; pin the CA's CMP certificate (srv_cert) or name it "
				 "(expected_sender)",
			    ctx->x.signer_msg);
		rv = CMPC_ERR_PROTOCOL;
	}
	if (rv == CMPC_OK && (*ret_cacerts = cmpc_ca_certs(ctx)) == NULL) {
		cmpc_seterr(ctx, "CMP krr: out of memory");
		rv = CMPC_ERR_INTERNAL;
	}
	sk_X509_pop_free(untrusted, X509_free);
	if (rv != CMPC_OK) {
		cmpc_privkey_clear(ret_key);
		X509_free(cert);
		return rv;
	}
	*ret_cert = cert;
	return CMPC_OK;
}

cmpc_rv cmpc_krr(cmpc_ctx *ctx, X509 *cert, EVP_PKEY *tpub, X509 **ret_cert,
		 cmpc_privkey *ret_key, STACK_OF(X509) **ret_cacerts, int *ret_others)
{
	CMPC_BODY b = {CMPC_SEL_KRR, {NULL}};
	OSSL_CMP_MSG *req = NULL, *rsp = NULL;
	unsigned char nonce[NONCE_LEN];
	cmpc_pending p;
	cmpc_rv rv;

	*ret_cert = NULL;
	memset(ret_key, 0, sizeof(*ret_key));
	*ret_cacerts = NULL;
	*ret_others = 0;
	if (cert == NULL || tpub == NULL)
		return CMPC_ERR_INTERNAL;
	if ((rv = cmpc_xchg_begin(ctx, "CMP krr")) != CMPC_OK)
		return rv;
	ctx->x.own_enveloped = 1;
	cmpc_log_enter(ctx);
	if ((b.value.krr = krr_msgs(cert, tpub)) != NULL)
		req = cmpc_msg_build(ctx, &b, NULL, 0, NULL, 0, nonce);
	OSSL_CRMF_MSGS_free(b.value.krr);
	if (req == NULL) {
		cmpc_ossl_errors(ctx->x.msg, sizeof(ctx->x.msg));
		cmpc_seterr(ctx, "CMP krr: cannot build or protect the request: %s; check the "
				 "signer key or the MAC secret",
			    ctx->x.msg);
		rv = CMPC_ERR_INTERNAL;
		goto out;
	}
	if ((rv = cmpc_own_send(ctx, req, nonce, "CMP krr", "key recovery", CMPC_BODY_KRP, &p,
				&rsp)) != CMPC_OK)
		goto out;
	rv = krp_key(ctx, cert, ret_cert, ret_key, ret_cacerts, ret_others);
out:
	OSSL_CMP_MSG_free(rsp);
	cmpc_log_leave();
	cmpc_xchg_end(ctx);
	return rv;
}
