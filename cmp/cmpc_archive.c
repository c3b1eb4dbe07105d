/*
 * Key archive (RFC 4211 6.4): the pkiArchiveOptions control of an
 * ir/cr/kur, carrying the private key encrypted to the CA's key-archive
 * certificate.  The token wraps the key (pkcs11/tok_wrap.c); this layer
 * only packs what it made, with its own asn1t templates (OpenSSL 3.0 has
 * no PKIArchiveOptions API: neither the type's functions nor
 * OSSL_CRMF_MSG_set1_regCtrl_pkiArchiveOptions are exported).
 *
 * EncryptedKey (RFC 4211 4.2, RFC 9480 2.7):
 *   [0] EnvelopedData: one KeyTransRecipientInfo (issuerAndSerialNumber of
 *       the archive certificate, RSA-OAEP SHA-1 or rsaEncryption), the
 *       content the DER PrivateKeyInfo as id-data under aes256-CBC (IV as
 *       parameter) or, where the token wraps only with it (SoftHSM2 2.6.1),
 *       id-aes256-wrap-pad.  RFC 4211 4.4 offers EncKeyWithID for the
 *       content; its SEQUENCE around the PrivateKeyInfo would have to be
 *       inside the encryption, and C_WrapKey produces the bare
 *       PrivateKeyInfo only, so the key is sent as id-data.
 *   EncryptedValue (deprecated, for CAs that speak only it): symmAlg the
 *       same AES algorithm, encSymmKey the wrapped AES key, keyAlg the
 *       key transport algorithm, encValue the wrapped PrivateKeyInfo.
 *
 * Into the request: OpenSSL 3.0 builds the CertReqMsg itself and has no
 * hook for controls.  Building the ir/cr/kur ourselves (as ccr does) would
 * also mean doing its polling, certConf and resume ourselves; instead the
 * request OpenSSL made is edited in the transfer path (cmpc_msg_transfer):
 * the control is appended to the CertRequest, the POP signed again with
 * the new key (it covers the controls), and the message protected again
 * with OSSL_CMP_MSG_update_transactionID (same transactionID and
 * senderNonce), so that OpenSSL's response checks, polling, certConf and
 * the layer's resume go on as for any request.
 *
 * The POP stays a signature by the new key: p11enroll generates every key
 * with CKA_SIGN, encryption keys too.  A key that could not sign (an RSA
 * key that only decrypts) would fail OpenSSL's own POP before the request
 * reaches the transfer path; RFC 4211 4.2's POP for such a key
 * (keyEncipherment, thisMessage: the same encrypted key) is not
 * implemented.  A POP other than a signature (raVerified) is kept as it
 * was.
 */
#include "config.h"

#include <string.h>

#include <openssl/asn1t.h>
#include <openssl/crmf.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "cmp/cmpc-int.h"

typedef struct {
	X509_NAME *issuer;
	ASN1_INTEGER *serial;
} ARC_IAS;

typedef struct {
	ASN1_INTEGER *version;
	ARC_IAS *rid;
	X509_ALGOR *keyEncryptionAlgorithm;
	ASN1_OCTET_STRING *encryptedKey;
} ARC_KTRI;
DEFINE_STACK_OF(ARC_KTRI)

typedef struct {
	ASN1_OBJECT *contentType;
	X509_ALGOR *contentEncryptionAlgorithm;
	ASN1_OCTET_STRING *encryptedContent;
} ARC_ECI;

typedef struct {
	ASN1_INTEGER *version;
	STACK_OF(ARC_KTRI) *recipientInfos;
	ARC_ECI *encryptedContentInfo;
} ARC_ENV;

typedef struct {
	int type;
	union {
		CMPC_ENCVAL *encryptedValue;
		ARC_ENV *envelopedData;
	} value;
} ARC_EKEY;

typedef struct {
	int type;
	union {
		ARC_EKEY *encryptedPrivKey;
	} value;
} ARC_OPTS;

typedef struct {
	ASN1_OBJECT *type;
	ASN1_TYPE *value;
} ARC_ATAV;
DEFINE_STACK_OF(ARC_ATAV)

typedef struct {
	ASN1_INTEGER *certReqId;
	ASN1_TYPE *certTemplate;
	STACK_OF(ARC_ATAV) *controls;
} ARC_CREQ;

/* ProofOfPossession, its alternatives kept encoded but told apart */
typedef struct {
	int type;
	union {
		ASN1_NULL *raVerified;
		STACK_OF(ASN1_TYPE) *signature;
		ASN1_TYPE *keyEncipherment;
		ASN1_TYPE *keyAgreement;
	} value;
} ARC_POPO;

typedef struct {
	ARC_CREQ *certReq;
	ARC_POPO *popo;
	STACK_OF(ASN1_TYPE) *regInfo;
} ARC_CRM;

/* ir [0], cr [2], kur [7]: CertReqMessages */
typedef struct {
	int type;
	union {
		OSSL_CRMF_MSGS *msgs;
	} value;
} ARC_BODY;

ASN1_SEQUENCE(ARC_IAS) = {
	ASN1_SIMPLE(ARC_IAS, issuer, X509_NAME),
	ASN1_SIMPLE(ARC_IAS, serial, ASN1_INTEGER),
} static_ASN1_SEQUENCE_END(ARC_IAS)

ASN1_SEQUENCE(ARC_KTRI) = {
	ASN1_SIMPLE(ARC_KTRI, version, ASN1_INTEGER),
	ASN1_SIMPLE(ARC_KTRI, rid, ARC_IAS),
	ASN1_SIMPLE(ARC_KTRI, keyEncryptionAlgorithm, X509_ALGOR),
	ASN1_SIMPLE(ARC_KTRI, encryptedKey, ASN1_OCTET_STRING),
} static_ASN1_SEQUENCE_END(ARC_KTRI)

ASN1_SEQUENCE(ARC_ECI) = {
	ASN1_SIMPLE(ARC_ECI, contentType, ASN1_OBJECT),
	ASN1_SIMPLE(ARC_ECI, contentEncryptionAlgorithm, X509_ALGOR),
	ASN1_IMP_OPT(ARC_ECI, encryptedContent, ASN1_OCTET_STRING, 0),
} static_ASN1_SEQUENCE_END(ARC_ECI)

ASN1_SEQUENCE(ARC_ENV) = {
	ASN1_SIMPLE(ARC_ENV, version, ASN1_INTEGER),
	ASN1_SET_OF(ARC_ENV, recipientInfos, ARC_KTRI),
	ASN1_SIMPLE(ARC_ENV, encryptedContentInfo, ARC_ECI),
} static_ASN1_SEQUENCE_END(ARC_ENV)

ASN1_CHOICE(ARC_EKEY) = {
	ASN1_SIMPLE(ARC_EKEY, value.encryptedValue, CMPC_ENCVAL),
	ASN1_IMP(ARC_EKEY, value.envelopedData, ARC_ENV, 0),
} static_ASN1_CHOICE_END(ARC_EKEY)

/* PKIArchiveOptions: only encryptedPrivKey [0] (a CHOICE: EXPLICIT) */
ASN1_CHOICE(ARC_OPTS) = {
	ASN1_EXP(ARC_OPTS, value.encryptedPrivKey, ARC_EKEY, 0),
} static_ASN1_CHOICE_END(ARC_OPTS)

ASN1_SEQUENCE(ARC_ATAV) = {
	ASN1_SIMPLE(ARC_ATAV, type, ASN1_OBJECT),
	ASN1_SIMPLE(ARC_ATAV, value, ASN1_ANY),
} static_ASN1_SEQUENCE_END(ARC_ATAV)

ASN1_SEQUENCE(ARC_CREQ) = {
	ASN1_SIMPLE(ARC_CREQ, certReqId, ASN1_INTEGER),
	ASN1_SIMPLE(ARC_CREQ, certTemplate, ASN1_ANY),
	ASN1_SEQUENCE_OF_OPT(ARC_CREQ, controls, ARC_ATAV),
} static_ASN1_SEQUENCE_END(ARC_CREQ)

ASN1_CHOICE(ARC_POPO) = {
	ASN1_IMP(ARC_POPO, value.raVerified, ASN1_NULL, 0),
	ASN1_IMP_SEQUENCE_OF(ARC_POPO, value.signature, ASN1_ANY, 1),
	ASN1_EXP(ARC_POPO, value.keyEncipherment, ASN1_ANY, 2),
	ASN1_EXP(ARC_POPO, value.keyAgreement, ASN1_ANY, 3),
} static_ASN1_CHOICE_END(ARC_POPO)

ASN1_SEQUENCE(ARC_CRM) = {
	ASN1_SIMPLE(ARC_CRM, certReq, ARC_CREQ),
	ASN1_OPT(ARC_CRM, popo, ARC_POPO),
	ASN1_SEQUENCE_OF_OPT(ARC_CRM, regInfo, ASN1_ANY),
} static_ASN1_SEQUENCE_END(ARC_CRM)

ASN1_CHOICE(ARC_BODY) = {
	ASN1_EXP(ARC_BODY, value.msgs, OSSL_CRMF_MSGS, CMPC_BODY_IR),
	ASN1_EXP(ARC_BODY, value.msgs, OSSL_CRMF_MSGS, CMPC_BODY_CR),
	ASN1_EXP(ARC_BODY, value.msgs, OSSL_CRMF_MSGS, CMPC_BODY_KUR),
} static_ASN1_CHOICE_END(ARC_BODY)

#define ARC_FUNCS(T)                                                                               \
	static T *T##_new(void)                                                                    \
	{                                                                                          \
		return (T *)ASN1_item_new(ASN1_ITEM_rptr(T));                                      \
	}                                                                                          \
	static void T##_free(T *v)                                                                 \
	{                                                                                          \
		ASN1_item_free((ASN1_VALUE *)v, ASN1_ITEM_rptr(T));                                \
	}
ARC_FUNCS(ARC_KTRI)
ARC_FUNCS(ARC_ENV)
ARC_FUNCS(CMPC_ENCVAL)
ARC_FUNCS(ARC_OPTS)
ARC_FUNCS(ARC_ATAV)
static void ARC_CRM_free(ARC_CRM *v)
{
	ASN1_item_free((ASN1_VALUE *)v, ASN1_ITEM_rptr(ARC_CRM));
}
static void ARC_BODY_free(ARC_BODY *v)
{
	ASN1_item_free((ASN1_VALUE *)v, ASN1_ITEM_rptr(ARC_BODY));
}

/* The AES algorithm the token wrapped with: aes256-CBC (IV) or KWP. */
static int set_symm(X509_ALGOR *alg, const cmpc_archive *a)
{
	ASN1_OCTET_STRING *iv;

	if (!a->cbc)
		return X509_ALGOR_set0(alg, OBJ_nid2obj(NID_id_aes256_wrap_pad), V_ASN1_UNDEF,
				       NULL);
	if ((iv = ASN1_OCTET_STRING_new()) == NULL ||
	    !ASN1_OCTET_STRING_set(iv, a->iv, (int)sizeof(a->iv)) ||
	    !X509_ALGOR_set0(alg, OBJ_nid2obj(NID_aes_256_cbc), V_ASN1_OCTET_STRING, iv)) {
		ASN1_OCTET_STRING_free(iv);
		return 0;
	}
	return 1;
}

/* rsaEncryption (NULL parameters) or id-RSAES-OAEP with the default
 * parameters, SHA-1 and MGF1-SHA-1 (an empty RSAES-OAEP-params). */
static int set_kt(X509_ALGOR *alg, const cmpc_archive *a)
{
	ASN1_STRING *seq;

	if (!a->oaep)
		return X509_ALGOR_set0(alg, OBJ_nid2obj(NID_rsaEncryption), V_ASN1_NULL, NULL);
	if ((seq = ASN1_STRING_new()) == NULL || !ASN1_STRING_set(seq, "\x30\x00", 2) ||
	    !X509_ALGOR_set0(alg, OBJ_nid2obj(NID_rsaesOaep), V_ASN1_SEQUENCE, seq)) {
		ASN1_STRING_free(seq);
		return 0;
	}
	return 1;
}

static int bits_set(ASN1_BIT_STRING *b, const unsigned char *p, size_t len)
{
	if (!ASN1_BIT_STRING_set(b, (unsigned char *)p, (int)len))
		return 0;
	b->flags &= ~(ASN1_STRING_FLAG_BITS_LEFT | 0x07);
	b->flags |= ASN1_STRING_FLAG_BITS_LEFT;
	return 1;
}

static ARC_ENV *enveloped(const cmpc_archive *a)
{
	ARC_ENV *e = ARC_ENV_new();
	ARC_KTRI *k = ARC_KTRI_new();

	if (e == NULL || k == NULL || !sk_ARC_KTRI_push(e->recipientInfos, k)) {
		ARC_KTRI_free(k);
		ARC_ENV_free(e);
		return NULL;
	}
	/* version 0: only a KTRI with issuerAndSerialNumber, no attributes */
	if (!ASN1_INTEGER_set(e->version, 0) || !ASN1_INTEGER_set(k->version, 0) ||
	    !X509_NAME_set(&k->rid->issuer, X509_get_issuer_name(a->recipient)) ||
	    (ASN1_INTEGER_free(k->rid->serial),
	     (k->rid->serial = ASN1_INTEGER_dup(X509_get0_serialNumber(a->recipient))) == NULL) ||
	    !set_kt(k->keyEncryptionAlgorithm, a) ||
	    !ASN1_OCTET_STRING_set(k->encryptedKey, a->enc_cek, (int)a->enc_cek_len) ||
	    !set_symm(e->encryptedContentInfo->contentEncryptionAlgorithm, a) ||
	    (e->encryptedContentInfo->encryptedContent = ASN1_OCTET_STRING_new()) == NULL ||
	    !ASN1_OCTET_STRING_set(e->encryptedContentInfo->encryptedContent, a->enc_key,
				   (int)a->enc_key_len)) {
		ARC_ENV_free(e);
		return NULL;
	}
	ASN1_OBJECT_free(e->encryptedContentInfo->contentType);
	e->encryptedContentInfo->contentType = OBJ_nid2obj(NID_pkcs7_data);
	return e;
}

static CMPC_ENCVAL *encvalue(const cmpc_archive *a)
{
	CMPC_ENCVAL *v = CMPC_ENCVAL_new();

	if (v == NULL || (v->symmAlg = X509_ALGOR_new()) == NULL || !set_symm(v->symmAlg, a) ||
	    (v->encSymmKey = ASN1_BIT_STRING_new()) == NULL ||
	    !bits_set(v->encSymmKey, a->enc_cek, a->enc_cek_len) ||
	    (v->keyAlg = X509_ALGOR_new()) == NULL || !set_kt(v->keyAlg, a) ||
	    !bits_set(v->encValue, a->enc_key, a->enc_key_len)) {
		CMPC_ENCVAL_free(v);
		return NULL;
	}
	return v;
}

cmpc_rv cmpc_set1_archive(cmpc_ctx *ctx, const cmpc_archive *a)
{
	ARC_OPTS *o = NULL;
	ARC_EKEY *k;
	unsigned char *der = NULL;
	int len = 0;

	OPENSSL_free(ctx->archive_der);
	ctx->archive_der = NULL;
	ctx->archive_len = 0;
	if (a == NULL)
		return CMPC_OK;
	if (a->recipient == NULL || a->enc_cek == NULL || a->enc_key == NULL ||
	    (a->format != CMPC_ARCHIVE_ENVELOPED && a->format != CMPC_ARCHIVE_ENCVALUE)) {
		cmpc_seterr(ctx, "key archive: incomplete wrapped key (report this)");
		return CMPC_ERR_INTERNAL;
	}
	if ((o = ARC_OPTS_new()) == NULL ||
	    (o->value.encryptedPrivKey = k =
		 (ARC_EKEY *)ASN1_item_new(ASN1_ITEM_rptr(ARC_EKEY))) == NULL)
		goto oom;
	o->type = 0;
	if (a->format == CMPC_ARCHIVE_ENVELOPED) {
		k->type = 1;
		k->value.envelopedData = enveloped(a);
	} else {
		k->type = 0;
		k->value.encryptedValue = encvalue(a);
	}
	if (k->value.envelopedData == NULL ||
	    (len = ASN1_item_i2d((ASN1_VALUE *)o, &der, ASN1_ITEM_rptr(ARC_OPTS))) <= 0)
		goto oom;
	ARC_OPTS_free(o);
	ctx->archive_der = der;
	ctx->archive_len = len;
	return CMPC_OK;
oom:
	ARC_OPTS_free(o);
	cmpc_seterr(ctx, "key archive: cannot encode the PKIArchiveOptions (out of memory?)");
	return CMPC_ERR_INTERNAL;
}

/* As OpenSSL's own POP: SHA-256, none for Ed25519/Ed448. */
static const EVP_MD *pop_digest(EVP_PKEY *key)
{
	if (EVP_PKEY_is_a(key, "ED25519") || EVP_PKEY_is_a(key, "ED448"))
		return NULL;
	return EVP_sha256();
}

/* crm with the pkiArchiveOptions control appended; *ret_resign: its POP
 * was a signature, to be made again over the new CertRequest. */
static OSSL_CRMF_MSG *add_control(cmpc_ctx *ctx, OSSL_CRMF_MSG *crm, int *ret_resign)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	ARC_CRM *c = NULL;
	ARC_ATAV *av = NULL;
	ASN1_STRING *s = NULL;
	OSSL_CRMF_MSG *out = NULL;
	int len;

	if ((len = ASN1_item_i2d((ASN1_VALUE *)crm, &der, ASN1_ITEM_rptr(OSSL_CRMF_MSG))) <= 0)
		goto out;
	p = der;
	if ((c = (ARC_CRM *)ASN1_item_d2i(NULL, &p, len, ASN1_ITEM_rptr(ARC_CRM))) == NULL)
		goto out;
	OPENSSL_free(der);
	der = NULL;
	if (c->certReq->controls == NULL && (c->certReq->controls = sk_ARC_ATAV_new_null()) == NULL)
		goto out;
	if ((av = ARC_ATAV_new()) == NULL || (s = ASN1_STRING_new()) == NULL ||
	    !ASN1_STRING_set(s, ctx->archive_der, ctx->archive_len))
		goto out;
	ASN1_OBJECT_free(av->type);
	av->type = OBJ_nid2obj(NID_id_regCtrl_pkiArchiveOptions);
	/* a CHOICE ([0] encryptedPrivKey): kept encoded as it is */
	ASN1_TYPE_set(av->value, V_ASN1_OTHER, s);
	s = NULL;
	if (!sk_ARC_ATAV_push(c->certReq->controls, av))
		goto out;
	av = NULL;
	*ret_resign = c->popo != NULL && c->popo->type == 1;
	if (*ret_resign) {
		ASN1_item_free((ASN1_VALUE *)c->popo, ASN1_ITEM_rptr(ARC_POPO));
		c->popo = NULL;
	}
	if ((len = ASN1_item_i2d((ASN1_VALUE *)c, &der, ASN1_ITEM_rptr(ARC_CRM))) <= 0)
		goto out;
	p = der;
	out = (OSSL_CRMF_MSG *)ASN1_item_d2i(NULL, &p, len, ASN1_ITEM_rptr(OSSL_CRMF_MSG));
out:
	OPENSSL_free(der);
	ASN1_STRING_free(s);
	ARC_ATAV_free(av);
	ARC_CRM_free(c);
	return out;
}

/* The body b (ir/cr/kur) with the control in its first CertReqMsg. */
static int edit_body(cmpc_ctx *ctx, ASN1_TYPE *body, const char **why)
{
	const unsigned char *p;
	ARC_BODY *b = NULL;
	OSSL_CRMF_MSG *crm, *edited = NULL;
	EVP_PKEY *key = OSSL_CMP_CTX_get0_newPkey(ctx->cmp, 1);
	unsigned char *der = NULL;
	ASN1_STRING *s = NULL;
	int len, resign = 0, ok = 0;

	*why = "the request does not decode as CertReqMessages";
	if (body == NULL || body->type != V_ASN1_OTHER)
		return 0;
	p = body->value.asn1_string->data;
	b = (ARC_BODY *)ASN1_item_d2i(NULL, &p, body->value.asn1_string->length,
				      ASN1_ITEM_rptr(ARC_BODY));
	if (b == NULL || sk_OSSL_CRMF_MSG_num(b->value.msgs) != 1)
		goto out;
	crm = sk_OSSL_CRMF_MSG_value(b->value.msgs, 0);
	*why = "cannot add the control to the CertReqMsg";
	if ((edited = add_control(ctx, crm, &resign)) == NULL)
		goto out;
	/* The POP signs the CertRequest, controls included (RFC 4211 4.1). */
	*why = "the new key could not sign the POP again";
	if (resign &&
	    (key == NULL ||
	     !OSSL_CRMF_MSG_create_popo(OSSL_CRMF_POPO_SIGNATURE, edited, key,
					pop_digest(key), NULL, NULL)))
		goto out;
	(void)sk_OSSL_CRMF_MSG_set(b->value.msgs, 0, edited);
	OSSL_CRMF_MSG_free(crm);
	edited = NULL;
	*why = "cannot encode the edited request";
	if ((len = ASN1_item_i2d((ASN1_VALUE *)b, &der, ASN1_ITEM_rptr(ARC_BODY))) <= 0 ||
	    (s = ASN1_STRING_type_new(V_ASN1_OTHER)) == NULL)
		goto out;
	ASN1_STRING_set0(s, der, len);
	der = NULL;
	ASN1_TYPE_set(body, V_ASN1_OTHER, s);
	ok = 1;
out:
	OPENSSL_free(der);
	OSSL_CRMF_MSG_free(edited);
	ARC_BODY_free(b);
	return ok;
}

OSSL_CMP_MSG *cmpc_archive_edit(cmpc_ctx *ctx, const OSSL_CMP_MSG *req)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	CMPC_PKIMSG *m = NULL;
	OSSL_CMP_MSG *out = NULL;
	const char *why = "cannot encode the request";
	int len;

	if ((len = i2d_OSSL_CMP_MSG(req, &der)) <= 0 ||
	    (m = cmpc_msg_decode(der, (size_t)len)) == NULL)
		goto out;
	OPENSSL_free(der);
	der = NULL;
	if (!edit_body(ctx, m->body, &why))
		goto out;
	/* OpenSSL protects it again: a protectionAlg is present. */
	why = "cannot protect the edited request";
	ASN1_BIT_STRING_free(m->protection);
	m->protection = NULL;
	if ((len = ASN1_item_i2d((ASN1_VALUE *)m, &der, ASN1_ITEM_rptr(CMPC_PKIMSG))) <= 0)
		goto out;
	p = der;
	if ((out = d2i_OSSL_CMP_MSG(NULL, &p, len)) != NULL &&
	    (m->header->protectionAlg != NULL && !OSSL_CMP_MSG_update_transactionID(ctx->cmp, out))) {
		OSSL_CMP_MSG_free(out);
		out = NULL;
	}
out:
	if (out == NULL)
		cmpc_xfer_fail(ctx, CMPC_ERR_INTERNAL,
			       "%s: adding the archived key (pkiArchiveOptions) failed: %s",
			       ctx->x.what, why);
	OPENSSL_free(der);
	cmpc_msg_free(m);
	return out;
}
