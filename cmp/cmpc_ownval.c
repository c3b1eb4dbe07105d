/*
 * A response OpenSSL 3.0 cannot decode: an ip, cp or kup (or a krp, whose
 * keyPairHist holds CertifiedKeyPairs) whose CertifiedKeyPair.privateKey
 * is an EnvelopedData (RFC 9480's EncryptedKey; 3.0 knows only
 * EncryptedValue there).  For central key generation and key recovery its
 * protection is verified here as OSSL_CMP_validate_msg verifies it (PBM
 * with the secret; a signature by the pinned srv_cert, or by a
 * certificate among extraCerts and the untrusted ones that names the
 * header's sender and chains to the anchors through the store that
 * decides who may speak for the CA), and the exchange goes on with the
 * same message without its private keys, which cmpc_privkey_get reads
 * (or cmpc_krp_read) from the bytes received.
 */
#include "config.h"

#include <string.h>

#include <openssl/crmf.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "cmp/cmpc-int.h"

static int sig_ok(X509 *signer, const EVP_MD *md, const ASN1_BIT_STRING *sig,
		  const unsigned char *tbs, size_t tbslen)
{
	EVP_MD_CTX *mc = EVP_MD_CTX_new();
	EVP_PKEY *pub = X509_get0_pubkey(signer);
	int ok = mc != NULL && pub != NULL && EVP_DigestVerifyInit(mc, NULL, md, NULL, pub) > 0 &&
		 EVP_DigestVerify(mc, sig->data, (size_t)sig->length, tbs, tbslen) == 1;

	EVP_MD_CTX_free(mc);
	ERR_clear_error();
	return ok;
}

/* The signer among extraCerts and the untrusted certificates: names the
 * sender, its signature verifies, it chains to the anchors (the store's
 * callback records it in ctx->x.signer). */
static int signed_ok(cmpc_ctx *ctx, const CMPC_PKIMSG *m, const unsigned char *tbs, size_t len)
{
	const X509_NAME *sender = m->header->sender != NULL &&
					  m->header->sender->type == GEN_DIRNAME
				      ? m->header->sender->d.directoryName
				      : NULL;
	STACK_OF(X509) *cands = sk_X509_new_null();
	X509_STORE *st = OSSL_CMP_CTX_get0_trustedStore(ctx->cmp);
	X509_STORE_CTX *sctx = NULL;
	const EVP_MD *md = NULL;
	int nid, mdnid = NID_undef, pknid, i, ok = 0;

	nid = OBJ_obj2nid(m->header->protectionAlg->algorithm);
	if (!OBJ_find_sigid_algs(nid, &mdnid, &pknid) ||
	    (mdnid != NID_undef && (md = EVP_get_digestbynid(mdnid)) == NULL))
		goto out;
	if (ctx->srv_cert != NULL) {
		/* as 3.0: the pinned certificate's key, no path */
		ok = sig_ok(ctx->srv_cert, md, m->protection, tbs, len);
		goto out;
	}
	if (cands == NULL || st == NULL ||
	    !X509_add_certs(cands, m->extraCerts, X509_ADD_FLAG_UP_REF) ||
	    !X509_add_certs(cands, OSSL_CMP_CTX_get0_untrusted(ctx->cmp),
			    X509_ADD_FLAG_UP_REF | X509_ADD_FLAG_NO_DUP))
		goto out;
	for (i = 0; !ok && i < sk_X509_num(cands); i++) {
		X509 *c = sk_X509_value(cands, i);

		if (sender == NULL || X509_NAME_cmp(X509_get_subject_name(c), sender) != 0 ||
		    !sig_ok(c, md, m->protection, tbs, len))
			continue;
		X509_STORE_CTX_free(sctx);
		ok = (sctx = X509_STORE_CTX_new()) != NULL &&
		     X509_STORE_CTX_init(sctx, st, c, cands) && X509_verify_cert(sctx) == 1;
	}
out:
	ERR_clear_error();
	X509_STORE_CTX_free(sctx);
	sk_X509_pop_free(cands, X509_free);
	return ok;
}

static int pbm_ok(cmpc_ctx *ctx, const CMPC_PKIMSG *m, const unsigned char *tbs, size_t len)
{
	const ASN1_TYPE *param = m->header->protectionAlg->parameter;
	OSSL_CRMF_PBMPARAMETER *pbm = NULL;
	const unsigned char *p;
	unsigned char *mac = NULL;
	size_t maclen = 0;
	int ok;

	if (ctx->pbm_secret == NULL || param == NULL || param->type != V_ASN1_SEQUENCE)
		return 0;
	p = param->value.sequence->data;
	ok = (pbm = d2i_OSSL_CRMF_PBMPARAMETER(NULL, &p, param->value.sequence->length)) != NULL &&
	     OSSL_CRMF_pbm_new(NULL, NULL, pbm, tbs, len, ctx->pbm_secret, ctx->pbm_secret_len,
			       &mac, &maclen) &&
	     maclen == (size_t)m->protection->length &&
	     CRYPTO_memcmp(mac, m->protection->data, maclen) == 0;
	OPENSSL_free(mac);
	OSSL_CRMF_PBMPARAMETER_free(pbm);
	ERR_clear_error();
	return ok;
}

/* m's protection over its header and body as received. */
static int protection_ok(cmpc_ctx *ctx, const CMPC_PKIMSG *m)
{
	CMPC_PROTPART pp;
	unsigned char *tbs = NULL;
	int len, ok;

	pp.header = m->header;
	pp.body = m->body;
	if ((len = ASN1_item_i2d((ASN1_VALUE *)&pp, &tbs, ASN1_ITEM_rptr(CMPC_PROTPART))) <= 0)
		return 0;
	ok = OBJ_obj2nid(m->header->protectionAlg->algorithm) == NID_id_PasswordBasedMAC
		     ? pbm_ok(ctx, m, tbs, (size_t)len)
		     : signed_ok(ctx, m, tbs, (size_t)len);
	OPENSSL_free(tbs);
	return ok;
}

OSSL_CMP_MSG *cmpc_own_validate(cmpc_ctx *ctx, const char *what)
{
	CMPC_PKIMSG *m = cmpc_msg_decode(ctx->x.rbuf, ctx->x.rlen);
	CMPC_BODY *b = cmpc_body_decode(m);
	CMPC_CERTREP *rep = NULL;
	STACK_OF(CMPC_CKP) *hist = NULL;
	OSSL_CMP_MSG *out = NULL;
	unsigned char *der = NULL;
	const unsigned char *p;
	int i, len;

	if (b != NULL && (b->type == CMPC_SEL_IP || b->type == CMPC_SEL_CP || b->type == CMPC_SEL_KUP))
		rep = b->value.ip;
	if (b != NULL && b->type == CMPC_SEL_KRP)
		hist = b->value.krp->keyPairHist;
	if (rep == NULL && (b == NULL || b->type != CMPC_SEL_KRP)) {
		cmpc_xfer_fail(ctx, CMPC_ERR_PROTOCOL,
			       "%s: the response does not decode as a CMP message; report it to "
			       "the CA operator",
			       what);
		goto done;
	}
	if (m->header->protectionAlg != NULL && m->protection != NULL) {
		if (!protection_ok(ctx, m)) {
			cmpc_xfer_fail(ctx, CMPC_ERR_PROTOCOL,
				       "%s: the protection of the CA's answer (with a private key "
				       "in an EnvelopedData) does not verify%s%s; check the "
				       "reference value and secret, or the trust anchors",
				       what, ctx->x.signer_msg[0] != '\0' ? ": " : "",
				       ctx->x.signer_msg);
			goto done;
		}
		ctx->x.own_verified = 1;
	}
	/* The rest of the exchange reads the message without its keys. */
	for (i = 0; rep != NULL && i < sk_CMPC_CERTRESP_num(rep->response); i++) {
		CMPC_CKP *ckp = sk_CMPC_CERTRESP_value(rep->response, i)->certifiedKeyPair;

		if (ckp != NULL) {
			ASN1_TYPE_free(ckp->privateKey);
			ckp->privateKey = NULL;
		}
	}
	for (i = 0; i < sk_CMPC_CKP_num(hist); i++) {
		ASN1_TYPE_free(sk_CMPC_CKP_value(hist, i)->privateKey);
		sk_CMPC_CKP_value(hist, i)->privateKey = NULL;
	}
	if (!cmpc_body_set(m, b) ||
	    (len = ASN1_item_i2d((ASN1_VALUE *)m, &der, ASN1_ITEM_rptr(CMPC_PKIMSG))) <= 0) {
		cmpc_xfer_fail(ctx, CMPC_ERR_INTERNAL, "%s: out of memory reading the answer", what);
		goto done;
	}
	p = der;
	if ((out = d2i_OSSL_CMP_MSG(NULL, &p, len)) == NULL)
		cmpc_xfer_fail(ctx, CMPC_ERR_PROTOCOL,
			       "%s: the CA's answer does not decode as a CMP message without its "
			       "private key; report it to the CA operator",
			       what);
done:
	if (out == NULL)
		ctx->x.own_verified = 0;
	ERR_clear_error();
	OPENSSL_free(der);
	cmpc_body_free(b);
	cmpc_msg_free(m);
	return out;
}
