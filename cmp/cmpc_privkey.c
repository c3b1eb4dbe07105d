/*
 * The private key a CA sends in a certificate response (central key
 * generation, RFC 9483 4.1.6) or a key recovery response:
 * CertifiedKeyPair.privateKey, [0] EncryptedKey ::= CHOICE {
 * encryptedValue EncryptedValue, envelopedData [0] EnvelopedData } (RFC
 * 9480 2.7; the CHOICE comes from the CRMF module, IMPLICIT tags).
 * OpenSSL 3.0 never reads this field, and its template (an EncryptedValue
 * only) fails on the whole message when it holds an EnvelopedData: read
 * from the response's bytes with templates of our own.
 */
#include "config.h"

#include <string.h>

#include <openssl/asn1t.h>
#include <openssl/objects.h>
#include <openssl/rsa.h>

#include "cmp/cmpc-int.h"

typedef struct {
	int type;
	union {
		CMPC_ENCVAL *encryptedValue;
		ASN1_SEQUENCE_ANY *envelopedData; /* its fields, kept encoded */
	} value;
} ENCKEY;

ASN1_CHOICE(ENCKEY) = {
	ASN1_SIMPLE(ENCKEY, value.encryptedValue, CMPC_ENCVAL),
	ASN1_IMP_SEQUENCE_OF(ENCKEY, value.envelopedData, ASN1_ANY, 0),
} static_ASN1_CHOICE_END(ENCKEY)

typedef struct {
	ASN1_TYPE *certOrEncCert;
	ENCKEY *privateKey;
	ASN1_TYPE *publicationInfo;
} CKP;

/* CertifiedKeyPair (CMP module: EXPLICIT tags) */
ASN1_SEQUENCE(CKP) = {
	ASN1_SIMPLE(CKP, certOrEncCert, ASN1_ANY),
	ASN1_EXP_OPT(CKP, privateKey, ENCKEY, 0),
	ASN1_EXP_OPT(CKP, publicationInfo, ASN1_ANY, 1),
} static_ASN1_SEQUENCE_END(CKP)

typedef struct {
	ASN1_INTEGER *certReqId;
	ASN1_TYPE *status;
	CKP *certifiedKeyPair;
	ASN1_OCTET_STRING *rspInfo;
} CERTRESP;

ASN1_SEQUENCE(CERTRESP) = {
	ASN1_SIMPLE(CERTRESP, certReqId, ASN1_INTEGER),
	ASN1_SIMPLE(CERTRESP, status, ASN1_ANY),
	ASN1_OPT(CERTRESP, certifiedKeyPair, CKP),
	ASN1_OPT(CERTRESP, rspInfo, ASN1_OCTET_STRING),
} static_ASN1_SEQUENCE_END(CERTRESP)

DEFINE_STACK_OF(CERTRESP)

typedef struct {
	STACK_OF(ASN1_TYPE) *caPubs;
	STACK_OF(CERTRESP) *response;
} CERTREP;

ASN1_SEQUENCE(CERTREP) = {
	ASN1_EXP_SEQUENCE_OF_OPT(CERTREP, caPubs, ASN1_ANY, 1),
	ASN1_SEQUENCE_OF(CERTREP, response, CERTRESP),
} static_ASN1_SEQUENCE_END(CERTREP)

/* The bodies that carry a CertRepMessage: ip [1], cp [3], kup [8]. */
typedef struct {
	int type;
	union {
		CERTREP *rep;
	} value;
} REPBODY;

ASN1_CHOICE(REPBODY) = {
	ASN1_EXP(REPBODY, value.rep, CERTREP, 1),
	ASN1_EXP(REPBODY, value.rep, CERTREP, 3),
	ASN1_EXP(REPBODY, value.rep, CERTREP, 8),
} static_ASN1_CHOICE_END(REPBODY)

void cmpc_privkey_clear(cmpc_privkey *k)
{
	if (k == NULL)
		return;
	OPENSSL_free(k->enc_symm_key);
	OPENSSL_free(k->enc_value);
	OPENSSL_free(k->enveloped);
	memset(k, 0, sizeof(*k));
}

static int copy_bits(const ASN1_BIT_STRING *b, unsigned char **ret, size_t *ret_len)
{
	/* an encrypted value is whole octets: a BIT STRING with unused bits
	 * is none */
	if (b == NULL || b->length <= 0 || (b->flags & ASN1_STRING_FLAG_BITS_LEFT &&
					    (b->flags & 0x07) != 0))
		return 0;
	if ((*ret = OPENSSL_memdup(b->data, (size_t)b->length)) == NULL)
		return 0;
	*ret_len = (size_t)b->length;
	return 1;
}

/* The algorithms of an EncryptedValue into k; 0 with why when one is
 * missing or not understood. */
static int read_algs(const CMPC_ENCVAL *ev, cmpc_privkey *k, char *why, size_t whylen)
{
	const ASN1_OBJECT *obj;
	const void *pval;
	int ptype;
	RSA_OAEP_PARAMS *oaep = NULL;
	ASN1_OCTET_STRING *iv = NULL;

	if (ev->symmAlg == NULL || ev->keyAlg == NULL || ev->encSymmKey == NULL) {
		snprintf(why, whylen, "its EncryptedValue lacks symmAlg, keyAlg or encSymmKey");
		return 0;
	}
	X509_ALGOR_get0(&obj, &ptype, &pval, ev->symmAlg);
	k->symm_nid = OBJ_obj2nid(obj);
	if (ptype == V_ASN1_OCTET_STRING) {
		iv = (ASN1_OCTET_STRING *)pval;
		if (iv->length <= 0 || (size_t)iv->length > sizeof(k->iv)) {
			snprintf(why, whylen, "its symmAlg's IV is %d bytes long", iv->length);
			return 0;
		}
		memcpy(k->iv, iv->data, (size_t)iv->length);
		k->iv_len = (size_t)iv->length;
	}
	X509_ALGOR_get0(&obj, &ptype, &pval, ev->keyAlg);
	k->keyenc_nid = OBJ_obj2nid(obj);
	k->oaep_md_nid = NID_sha1;
	if (k->keyenc_nid == NID_rsaesOaep && ptype == V_ASN1_SEQUENCE) {
		oaep = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(RSA_OAEP_PARAMS),
						 (const ASN1_TYPE *)ev->keyAlg->parameter);
		if (oaep == NULL) {
			snprintf(why, whylen, "its keyAlg's RSAES-OAEP parameters do not parse");
			return 0;
		}
		if (oaep->hashFunc != NULL)
			k->oaep_md_nid = OBJ_obj2nid(oaep->hashFunc->algorithm);
		RSA_OAEP_PARAMS_free(oaep);
	}
	return 1;
}

/* The EncryptedKey ek into k; 0 with why. */
static int read_enckey(const ENCKEY *ek, cmpc_privkey *k, char *why, size_t whylen)
{
	unsigned char *out = NULL;
	int n;

	if (ek->type == 0) {
		k->kind = CMPC_PRIVKEY_ENCVALUE;
		if (!read_algs(ek->value.encryptedValue, k, why, whylen))
			return 0;
		if (!copy_bits(ek->value.encryptedValue->encSymmKey, &k->enc_symm_key,
			       &k->enc_symm_key_len) ||
		    !copy_bits(ek->value.encryptedValue->encValue, &k->enc_value,
			       &k->enc_value_len)) {
			snprintf(why, whylen, "its encSymmKey or encValue is empty or not whole "
					      "octets");
			return 0;
		}
		return 1;
	}
	/* as a SEQUENCE again: the EnvelopedData that CMS reads */
	k->kind = CMPC_PRIVKEY_ENVELOPED;
	n = i2d_ASN1_SEQUENCE_ANY(ek->value.envelopedData, &out);
	if (n <= 0) {
		snprintf(why, whylen, "its EnvelopedData does not encode again");
		return 0;
	}
	k->enveloped = out;
	k->enveloped_len = (size_t)n;
	return 1;
}

int cmpc_privkey_get(const unsigned char *der, size_t len, long rid, cmpc_privkey *ret_k,
		     char *why, size_t whylen)
{
	CMPC_PKIMSG *m = NULL;
	REPBODY *body = NULL;
	const unsigned char *p;
	CERTRESP *r = NULL;
	cmpc_privkey k;
	int i, n, res = -1;

	memset(&k, 0, sizeof(k));
	if (why != NULL && whylen > 0)
		why[0] = '\0';
	if ((m = cmpc_msg_decode(der, len)) == NULL) {
		snprintf(why, whylen, "the response is no PKIMessage");
		goto out;
	}
	if (m->body == NULL || m->body->type != V_ASN1_OTHER ||
	    m->body->value.asn1_string == NULL) {
		snprintf(why, whylen, "the response's body is not tagged as a PKIBody is");
		goto out;
	}
	p = m->body->value.asn1_string->data;
	n = m->body->value.asn1_string->length;
	body = (REPBODY *)ASN1_item_d2i(NULL, &p, n, ASN1_ITEM_rptr(REPBODY));
	if (body == NULL || p != m->body->value.asn1_string->data + n) {
		snprintf(why, whylen, "the response is no ip, cp or kup, or its CertRepMessage "
				      "does not parse");
		goto out;
	}
	for (i = 0; i < sk_CERTRESP_num(body->value.rep->response) && r == NULL; i++) {
		r = sk_CERTRESP_value(body->value.rep->response, i);
		if (rid >= 0 && ASN1_INTEGER_get(r->certReqId) != rid)
			r = NULL;
	}
	if (r == NULL) {
		snprintf(why, whylen, "the response has no CertResponse for certReqId %ld", rid);
		goto out;
	}
	if (r->certifiedKeyPair == NULL || r->certifiedKeyPair->privateKey == NULL) {
		res = 0;
		goto out;
	}
	if (!read_enckey(r->certifiedKeyPair->privateKey, &k, why, whylen))
		goto out;
	*ret_k = k;
	memset(&k, 0, sizeof(k));
	res = 1;
out:
	cmpc_privkey_clear(&k);
	ASN1_item_free((ASN1_VALUE *)body, ASN1_ITEM_rptr(REPBODY));
	cmpc_msg_free(m);
	return res;
}

int cmpc_privkey_from_any(const ASN1_TYPE *ek, cmpc_privkey *ret_k, char *why, size_t whylen)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	ENCKEY *e = NULL;
	cmpc_privkey k;
	int n, ok = 0;

	memset(&k, 0, sizeof(k));
	if (why != NULL && whylen > 0)
		why[0] = '\0';
	/* the value of the [0] as it came: a SEQUENCE (EncryptedValue) or
	 * the [0] IMPLICIT EnvelopedData, read again as the CHOICE */
	if (ek == NULL || (n = i2d_ASN1_TYPE(ek, &der)) <= 0) {
		snprintf(why, whylen, "its privateKey does not encode again");
		goto out;
	}
	p = der;
	e = (ENCKEY *)ASN1_item_d2i(NULL, &p, n, ASN1_ITEM_rptr(ENCKEY));
	if (e == NULL || p != der + n) {
		snprintf(why, whylen, "its privateKey is neither an EncryptedValue nor an "
				      "EnvelopedData");
		goto out;
	}
	if (!read_enckey(e, &k, why, whylen))
		goto out;
	*ret_k = k;
	memset(&k, 0, sizeof(k));
	ok = 1;
out:
	cmpc_privkey_clear(&k);
	ASN1_item_free((ASN1_VALUE *)e, ASN1_ITEM_rptr(ENCKEY));
	OPENSSL_free(der);
	return ok;
}
