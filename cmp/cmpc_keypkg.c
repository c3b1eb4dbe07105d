/*
 * The EnvelopedData of RFC 9483 4.1.6 (a private key sent by the CA): its
 * parts for the token, which unwraps the content-encryption key with the
 * transport key and decrypts the content (cmpc_enveloped_parts), and the
 * content, a SignedData by the CA around an AsymmetricKeyPackage (RFC
 * 5958), verified and unpacked (cmpc_keypkg_open).  The EnvelopedData is
 * read with the layer's templates (3.0's CMS would want the recipient's
 * private key as an EVP_PKEY: it is on the token, and unwraps only); the
 * SignedData with OpenSSL's CMS.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <openssl/asn1t.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "cmp/cmpc-int.h"

/* id-ct-KP-aKeyPackage (RFC 5958) */
#define OID_AKEY_PACKAGE "2.16.840.1.101.2.1.2.78.5"

/* KeyTransRecipientInfo (RFC 5652 6.2.1); rid kept encoded. */
typedef struct {
	ASN1_INTEGER *version;
	ASN1_TYPE *rid;
	X509_ALGOR *keyEncryptionAlgorithm;
	ASN1_OCTET_STRING *encryptedKey;
} KTRI;

ASN1_SEQUENCE(KTRI) = {
	ASN1_SIMPLE(KTRI, version, ASN1_INTEGER),
	ASN1_SIMPLE(KTRI, rid, ASN1_ANY),
	ASN1_SIMPLE(KTRI, keyEncryptionAlgorithm, X509_ALGOR),
	ASN1_SIMPLE(KTRI, encryptedKey, ASN1_OCTET_STRING),
} static_ASN1_SEQUENCE_END(KTRI)

/* EncryptedContentInfo (RFC 5652 6.1) */
typedef struct {
	ASN1_OBJECT *contentType;
	X509_ALGOR *alg;
	ASN1_OCTET_STRING *encryptedContent;
} ECI;

ASN1_SEQUENCE(ECI) = {
	ASN1_SIMPLE(ECI, contentType, ASN1_OBJECT),
	ASN1_SIMPLE(ECI, alg, X509_ALGOR),
	ASN1_IMP_OPT(ECI, encryptedContent, ASN1_OCTET_STRING, 0),
} static_ASN1_SEQUENCE_END(ECI)

/* EnvelopedData (RFC 5652 6.1, IMPLICIT tags); RecipientInfo is a CHOICE
 * whose ktri is the untagged SEQUENCE: kept encoded, read below. */
typedef struct {
	ASN1_INTEGER *version;
	STACK_OF(ASN1_TYPE) *originatorInfo;
	STACK_OF(ASN1_TYPE) *recipientInfos;
	ECI *eci;
	STACK_OF(ASN1_TYPE) *unprotectedAttrs;
} ENVD;

ASN1_SEQUENCE(ENVD) = {
	ASN1_SIMPLE(ENVD, version, ASN1_INTEGER),
	ASN1_IMP_SEQUENCE_OF_OPT(ENVD, originatorInfo, ASN1_ANY, 0),
	ASN1_SET_OF(ENVD, recipientInfos, ASN1_ANY),
	ASN1_SIMPLE(ENVD, eci, ECI),
	ASN1_IMP_SET_OF_OPT(ENVD, unprotectedAttrs, ASN1_ANY, 1),
} static_ASN1_SEQUENCE_END(ENVD)

/* ContentInfo (RFC 5652 3): the SignedData as OpenSSL's CMS reads it. */
typedef struct {
	ASN1_OBJECT *contentType;
	ASN1_TYPE *content;
} CINFO;

ASN1_SEQUENCE(CINFO) = {
	ASN1_SIMPLE(CINFO, contentType, ASN1_OBJECT),
	ASN1_EXP(CINFO, content, ASN1_ANY, 0),
} static_ASN1_SEQUENCE_END(CINFO)

void cmpc_envparts_clear(cmpc_envparts *e)
{
	OPENSSL_free(e->enc_key);
	OPENSSL_free(e->enc_content);
	memset(e, 0, sizeof(*e));
}

static unsigned char *copy(const ASN1_STRING *s, size_t *len)
{
	unsigned char *p = OPENSSL_memdup(s->data, s->length > 0 ? (size_t)s->length : 1);

	*len = p != NULL ? (size_t)s->length : 0;
	return p;
}

int cmpc_enveloped_parts(const cmpc_privkey *k, cmpc_envparts *ret, char *why, size_t whylen)
{
	const unsigned char *p = k->enveloped;
	ENVD *env = NULL;
	KTRI *kt = NULL;
	const ASN1_OBJECT *obj;
	const void *pval;
	RSA_OAEP_PARAMS *oaep = NULL;
	int i, ptype, ok = 0;

	memset(ret, 0, sizeof(*ret));
	if (k->kind != CMPC_PRIVKEY_ENVELOPED || k->enveloped_len > 0x7fffffff ||
	    (env = (ENVD *)ASN1_item_d2i(NULL, &p, (long)k->enveloped_len,
					 ASN1_ITEM_rptr(ENVD))) == NULL ||
	    p != k->enveloped + k->enveloped_len) {
		snprintf(why, whylen, "its EnvelopedData does not parse");
		goto out;
	}
	for (i = 0; kt == NULL && i < sk_ASN1_TYPE_num(env->recipientInfos); i++) {
		const ASN1_TYPE *ri = sk_ASN1_TYPE_value(env->recipientInfos, i);

		if (ri->type == V_ASN1_SEQUENCE)
			kt = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(KTRI), ri);
	}
	if (kt == NULL) {
		snprintf(why, whylen, "its EnvelopedData has no key transport recipient (the "
				      "transport key is RSA)");
		goto out;
	}
	X509_ALGOR_get0(&obj, &ptype, &pval, kt->keyEncryptionAlgorithm);
	ret->keyenc_nid = OBJ_obj2nid(obj);
	ret->oaep_md_nid = NID_sha1;
	if (ret->keyenc_nid == NID_rsaesOaep && ptype == V_ASN1_SEQUENCE) {
		if ((oaep = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(RSA_OAEP_PARAMS),
						      kt->keyEncryptionAlgorithm->parameter)) ==
		    NULL) {
			snprintf(why, whylen, "its RSAES-OAEP parameters do not parse");
			goto out;
		}
		if (oaep->hashFunc != NULL)
			ret->oaep_md_nid = OBJ_obj2nid(oaep->hashFunc->algorithm);
	}
	if (OBJ_obj2nid(env->eci->contentType) != NID_pkcs7_signed) {
		snprintf(why, whylen, "its EnvelopedData's content is not a SignedData (RFC 9483 "
				      "4.1.6)");
		goto out;
	}
	X509_ALGOR_get0(&obj, &ptype, &pval, env->eci->alg);
	ret->content_nid = OBJ_obj2nid(obj);
	if (ptype != V_ASN1_OCTET_STRING ||
	    ((const ASN1_STRING *)pval)->length != (int)sizeof(ret->iv)) {
		snprintf(why, whylen, "its content encryption has no 16-byte IV (AES-CBC expected)");
		goto out;
	}
	memcpy(ret->iv, ((const ASN1_STRING *)pval)->data, sizeof(ret->iv));
	if (env->eci->encryptedContent == NULL || env->eci->encryptedContent->length <= 0 ||
	    kt->encryptedKey->length <= 0) {
		snprintf(why, whylen, "its EnvelopedData carries no encrypted content or key");
		goto out;
	}
	if ((ret->enc_key = copy(kt->encryptedKey, &ret->enc_key_len)) == NULL ||
	    (ret->enc_content = copy(env->eci->encryptedContent, &ret->enc_content_len)) ==
		    NULL) {
		snprintf(why, whylen, "out of memory");
		goto out;
	}
	ok = 1;
out:
	if (!ok)
		cmpc_envparts_clear(ret);
	ERR_clear_error();
	RSA_OAEP_PARAMS_free(oaep);
	ASN1_item_free((ASN1_VALUE *)kt, ASN1_ITEM_rptr(KTRI));
	ASN1_item_free((ASN1_VALUE *)env, ASN1_ITEM_rptr(ENVD));
	return ok;
}

static void cleanse_string(ASN1_STRING *s)
{
	if (s != NULL && s->data != NULL)
		OPENSSL_cleanse(s->data, (size_t)s->length);
}

/* The SignedData DER as a CMS_ContentInfo. */
static CMS_ContentInfo *as_cms(const unsigned char *sd, size_t len)
{
	CINFO ci;
	ASN1_TYPE *t = NULL;
	unsigned char *der = NULL;
	const unsigned char *p = sd;
	CMS_ContentInfo *cms = NULL;
	int dlen = 0;

	if (len > 0x7fffffff || (t = d2i_ASN1_TYPE(NULL, &p, (long)len)) == NULL ||
	    p != sd + len || t->type != V_ASN1_SEQUENCE)
		goto out;
	ci.contentType = OBJ_nid2obj(NID_pkcs7_signed);
	ci.content = t;
	if ((dlen = ASN1_item_i2d((ASN1_VALUE *)&ci, &der, ASN1_ITEM_rptr(CINFO))) <= 0)
		goto out;
	p = der;
	cms = d2i_CMS_ContentInfo(NULL, &p, dlen);
out:
	if (t != NULL && t->type == V_ASN1_SEQUENCE)
		cleanse_string(t->value.sequence);
	ASN1_TYPE_free(t);
	if (der != NULL)
		OPENSSL_clear_free(der, (size_t)dlen);
	return cms;
}

/* The first OneAsymmetricKey of an AsymmetricKeyPackage (DER in pkg). */
static EVP_PKEY *first_key(const unsigned char *pkg, long len)
{
	const unsigned char *p = pkg;
	STACK_OF(ASN1_TYPE) *seq = d2i_ASN1_SEQUENCE_ANY(NULL, &p, len);
	PKCS8_PRIV_KEY_INFO *p8 = NULL;
	EVP_PKEY *key = NULL;
	ASN1_TYPE *one;
	int i;

	if (seq != NULL && p == pkg + len && sk_ASN1_TYPE_num(seq) >= 1 &&
	    (one = sk_ASN1_TYPE_value(seq, 0))->type == V_ASN1_SEQUENCE) {
		p = one->value.sequence->data;
		if ((p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, one->value.sequence->length)) != NULL)
			key = EVP_PKCS82PKEY(p8);
	}
	for (i = 0; i < sk_ASN1_TYPE_num(seq); i++)
		if (sk_ASN1_TYPE_value(seq, i)->type == V_ASN1_SEQUENCE)
			cleanse_string(sk_ASN1_TYPE_value(seq, i)->value.sequence);
	sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
	PKCS8_PRIV_KEY_INFO_free(p8); /* its template cleanses the key */
	return key;
}

int cmpc_keypkg_open(const unsigned char *sd, size_t len, X509 *cert, STACK_OF(X509) *cacerts,
		     EVP_PKEY **ret_key, char *why, size_t whylen)
{
	CMS_ContentInfo *cms = as_cms(sd, len);
	STACK_OF(X509) *signers = NULL;
	ASN1_OCTET_STRING **content;
	BIO *out = BIO_new(BIO_s_secmem());
	ASN1_OBJECT *want = OBJ_txt2obj(OID_AKEY_PACKAGE, 1);
	X509 *signer;
	char *data = NULL;
	long dlen = 0;
	int i, ok = 0;

	*ret_key = NULL;
	if (cert == NULL || sk_X509_num(cacerts) <= 0) {
		snprintf(why, whylen, "no verified certificate and CA chain to check its signer "
				      "against");
		goto done;
	}
	if (out == NULL || want == NULL) {
		snprintf(why, whylen, "out of memory");
		goto done;
	}
	if (cms == NULL || OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed) {
		snprintf(why, whylen, "the decrypted content is not a SignedData");
		goto done;
	}
	if (CMS_get0_eContentType(cms) == NULL || OBJ_cmp(CMS_get0_eContentType(cms), want) != 0) {
		snprintf(why, whylen, "the SignedData does not hold an AsymmetricKeyPackage (RFC "
				      "5958)");
		goto done;
	}
	/* The signature here; the signer below: the certificate's issuer as
	 * verified with the chain of the answer. */
	if (CMS_verify(cms, cacerts, NULL, NULL, out, CMS_NO_SIGNER_CERT_VERIFY | CMS_BINARY) != 1 ||
	    (signers = CMS_get0_signers(cms)) == NULL || sk_X509_num(signers) != 1) {
		snprintf(why, whylen, "the SignedData around the key does not verify");
		goto done;
	}
	signer = sk_X509_value(signers, 0);
	for (i = 0; i < sk_X509_num(cacerts); i++)
		if (X509_cmp(sk_X509_value(cacerts, i), signer) == 0)
			break;
	if (i == sk_X509_num(cacerts) || X509_check_issued(signer, cert) != X509_V_OK) {
		snprintf(why, whylen, "the SignedData around the key is not signed by the CA that "
				      "issued the certificate");
		goto done;
	}
	dlen = BIO_get_mem_data(out, &data);
	if (dlen <= 0 || (*ret_key = first_key((const unsigned char *)data, dlen)) == NULL) {
		snprintf(why, whylen, "the AsymmetricKeyPackage holds no private key that parses");
		goto done;
	}
	ok = 1;
done:
	if (data != NULL && dlen > 0)
		OPENSSL_cleanse(data, (size_t)dlen);
	if (cms != NULL && (content = CMS_get0_content(cms)) != NULL)
		cleanse_string(*content);
	sk_X509_free(signers);
	BIO_free(out);
	ASN1_OBJECT_free(want);
	CMS_ContentInfo_free(cms);
	ERR_clear_error();
	return ok;
}
