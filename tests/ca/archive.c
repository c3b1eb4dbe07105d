/*
 * Key archive for the test CA (RFC 4211 6.4): a request's
 * pkiArchiveOptions control (encryptedPrivKey as [0] EnvelopedData with
 * one KeyTransRecipientInfo, or EncryptedValue) is decrypted with the
 * CA's key-archive key, the PrivateKeyInfo must hold the private key of
 * the requested public key (else the request is rejected, badPOP), and
 * the issued certificate's key goes to the recovery store
 * (ca_archive_put).  The archive key pair is --archive-key/--archive-cert,
 * or DIR/archive-key.pem and DIR/archive-cert.pem (RSA 2048, issued by
 * the sub-CA with keyUsage keyEncipherment, made on first start; the
 * sub-CA's certificate follows it in the file).
 * --archive-require rejects a request without the control;
 * --archive-fault NAME: refuse (rejects every archive, notAuthorized),
 * other-key (decrypts with another key, as if the client encrypted to the
 * wrong recipient).
 *
 * Own templates, written from RFC 4211/5652 and independent of the
 * client's (cmp/cmpc_archive.c).
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <openssl/asn1t.h>
#include <openssl/crmf.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include "tests/ca/testca.h"

typedef struct {
	X509_NAME *issuer;
	ASN1_INTEGER *serial;
} T_IAS;
typedef struct {
	ASN1_INTEGER *version;
	T_IAS *rid;
	X509_ALGOR *kea;
	ASN1_OCTET_STRING *ek;
} T_KTRI;
DEFINE_STACK_OF(T_KTRI)
typedef struct {
	ASN1_OBJECT *type;
	X509_ALGOR *alg;
	ASN1_OCTET_STRING *content;
} T_ECI;
typedef struct {
	ASN1_INTEGER *version;
	STACK_OF(T_KTRI) *ris;
	T_ECI *eci;
} T_ENV;
typedef struct {
	int type;
	union {
		TCMP_ENCVAL *ev;
		T_ENV *env;
	} value;
} T_EKEY;
typedef struct {
	int type;
	union {
		T_EKEY *key;
		ASN1_TYPE *other;
	} value;
} T_OPTS;
typedef struct {
	ASN1_OBJECT *type;
	ASN1_TYPE *value;
} T_ATAV;
DEFINE_STACK_OF(T_ATAV)
typedef struct {
	ASN1_INTEGER *id;
	ASN1_TYPE *tmpl;
	STACK_OF(T_ATAV) *controls;
} T_CREQ;
/* ProofOfPossession: its alternatives told apart, not looked at (an
 * OPTIONAL ANY is not allowed in a template) */
typedef struct {
	int type;
	union {
		ASN1_TYPE *any;
		STACK_OF(ASN1_TYPE) *seq;
	} value;
} T_POPO;
typedef struct {
	T_CREQ *req;
	T_POPO *popo;
	STACK_OF(ASN1_TYPE) *regInfo;
} T_CRM;

ASN1_SEQUENCE(T_IAS) = {
	ASN1_SIMPLE(T_IAS, issuer, X509_NAME),
	ASN1_SIMPLE(T_IAS, serial, ASN1_INTEGER),
} static_ASN1_SEQUENCE_END(T_IAS)
ASN1_SEQUENCE(T_KTRI) = {
	ASN1_SIMPLE(T_KTRI, version, ASN1_INTEGER),
	ASN1_SIMPLE(T_KTRI, rid, T_IAS),
	ASN1_SIMPLE(T_KTRI, kea, X509_ALGOR),
	ASN1_SIMPLE(T_KTRI, ek, ASN1_OCTET_STRING),
} static_ASN1_SEQUENCE_END(T_KTRI)
ASN1_SEQUENCE(T_ECI) = {
	ASN1_SIMPLE(T_ECI, type, ASN1_OBJECT),
	ASN1_SIMPLE(T_ECI, alg, X509_ALGOR),
	ASN1_IMP_OPT(T_ECI, content, ASN1_OCTET_STRING, 0),
} static_ASN1_SEQUENCE_END(T_ECI)
ASN1_SEQUENCE(T_ENV) = {
	ASN1_SIMPLE(T_ENV, version, ASN1_INTEGER),
	ASN1_SET_OF(T_ENV, ris, T_KTRI),
	ASN1_SIMPLE(T_ENV, eci, T_ECI),
} static_ASN1_SEQUENCE_END(T_ENV)
ASN1_CHOICE(T_EKEY) = {
	ASN1_SIMPLE(T_EKEY, value.ev, TCMP_ENCVAL),
	ASN1_IMP(T_EKEY, value.env, T_ENV, 0),
} static_ASN1_CHOICE_END(T_EKEY)
ASN1_CHOICE(T_OPTS) = {
	ASN1_EXP(T_OPTS, value.key, T_EKEY, 0),
	ASN1_EXP(T_OPTS, value.other, ASN1_ANY, 1),
	ASN1_EXP(T_OPTS, value.other, ASN1_ANY, 2),
} static_ASN1_CHOICE_END(T_OPTS)
ASN1_SEQUENCE(T_ATAV) = {
	ASN1_SIMPLE(T_ATAV, type, ASN1_OBJECT),
	ASN1_SIMPLE(T_ATAV, value, ASN1_ANY),
} static_ASN1_SEQUENCE_END(T_ATAV)
ASN1_SEQUENCE(T_CREQ) = {
	ASN1_SIMPLE(T_CREQ, id, ASN1_INTEGER),
	ASN1_SIMPLE(T_CREQ, tmpl, ASN1_ANY),
	ASN1_SEQUENCE_OF_OPT(T_CREQ, controls, T_ATAV),
} static_ASN1_SEQUENCE_END(T_CREQ)
ASN1_CHOICE(T_POPO) = {
	ASN1_IMP(T_POPO, value.any, ASN1_NULL, 0),
	ASN1_IMP_SEQUENCE_OF(T_POPO, value.seq, ASN1_ANY, 1),
	ASN1_EXP(T_POPO, value.any, ASN1_ANY, 2),
	ASN1_EXP(T_POPO, value.any, ASN1_ANY, 3),
} static_ASN1_CHOICE_END(T_POPO)
ASN1_SEQUENCE(T_CRM) = {
	ASN1_SIMPLE(T_CRM, req, T_CREQ),
	ASN1_OPT(T_CRM, popo, T_POPO),
	ASN1_SEQUENCE_OF_OPT(T_CRM, regInfo, ASN1_ANY),
} static_ASN1_SEQUENCE_END(T_CRM)

/* The archive key pair: loaded, else made (RSA 2048, keyEncipherment). */
int ca_archive_setup(struct ca_ca *ca, struct ca_archive_opts *o)
{
	char kpath[4096], cpath[4096];
	const char *kp = o->key_file, *cp = o->cert_file;
	X509_NAME *name = NULL;
	STACK_OF(X509_EXTENSION) *exts = NULL;
	X509_EXTENSION *ku = NULL;
	FILE *f;
	int ok = 0;

	snprintf(kpath, sizeof(kpath), "%s/archive-key.pem", ca->dir);
	snprintf(cpath, sizeof(cpath), "%s/archive-cert.pem", ca->dir);
	if (kp == NULL)
		kp = kpath;
	if (cp == NULL)
		cp = cpath;
	if ((f = fopen(kp, "r")) != NULL) {
		o->key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
		if ((f = fopen(cp, "r")) != NULL) {
			o->cert = PEM_read_X509(f, NULL, NULL, NULL);
			fclose(f);
		}
		if (o->key == NULL || o->cert == NULL) {
			fprintf(stderr, "p11enroll-testca: cannot read the archive key %s or "
					"certificate %s\n",
				kp, cp);
			return 0;
		}
		return 1;
	}
	if (o->key_file != NULL) {
		fprintf(stderr, "p11enroll-testca: --archive-key %s: cannot open it\n", kp);
		return 0;
	}
	if ((o->key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)) == NULL ||
	    (name = X509_NAME_new()) == NULL ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
					(const unsigned char *)"p11enroll Test Key Archive", -1,
					-1, 0) ||
	    (ku = X509V3_EXT_conf_nid(NULL, NULL, NID_key_usage,
				      "critical,keyEncipherment")) == NULL ||
	    (exts = sk_X509_EXTENSION_new_null()) == NULL || !sk_X509_EXTENSION_push(exts, ku))
		goto out;
	ku = NULL;
	if ((o->cert = ca_issue(ca, name, o->key, exts, NULL, NULL)) == NULL)
		goto out;
	if ((f = fopen(kp, "w")) == NULL || !PEM_write_PrivateKey(f, o->key, NULL, NULL, 0, NULL,
								    NULL)) {
		if (f != NULL)
			fclose(f);
		goto out;
	}
	fclose(f);
	/* the issuing CA after it: the client verifies it under the root */
	if ((f = fopen(cp, "w")) == NULL || !PEM_write_X509(f, o->cert) ||
	    !PEM_write_X509(f, ca->sub)) {
		if (f != NULL)
			fclose(f);
		goto out;
	}
	fclose(f);
	ok = 1;
out:
	if (!ok)
		fprintf(stderr, "p11enroll-testca: cannot make the archive key pair in %s\n",
			ca->dir);
	X509_EXTENSION_free(ku);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_NAME_free(name);
	return ok;
}

void ca_archive_cleanup(struct ca_archive_opts *o)
{
	EVP_PKEY_free(o->key);
	X509_free(o->cert);
	o->key = NULL;
	o->cert = NULL;
}

/* The AES key: RSA-OAEP (SHA-1 defaults, as the client sends) or PKCS#1 v1.5. */
static unsigned char *decrypt_cek(EVP_PKEY *key, const X509_ALGOR *alg, const unsigned char *in,
				  size_t inlen, size_t *ret_len)
{
	int nid = OBJ_obj2nid(alg->algorithm);
	EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new(key, NULL);
	unsigned char *out = NULL;
	size_t n = 0;

	if (pc == NULL || EVP_PKEY_decrypt_init(pc) <= 0 ||
	    (nid != NID_rsaesOaep && nid != NID_rsaEncryption) ||
	    EVP_PKEY_CTX_set_rsa_padding(pc, nid == NID_rsaesOaep ? RSA_PKCS1_OAEP_PADDING
								: RSA_PKCS1_PADDING) <= 0 ||
	    EVP_PKEY_decrypt(pc, NULL, &n, in, inlen) <= 0 || (out = OPENSSL_malloc(n)) == NULL ||
	    EVP_PKEY_decrypt(pc, out, &n, in, inlen) <= 0) {
		OPENSSL_clear_free(out, n);
		out = NULL;
	}
	EVP_PKEY_CTX_free(pc);
	*ret_len = n;
	return out;
}

/* The PrivateKeyInfo: aes256-CBC (IV parameter) or id-aes256-wrap-pad. */
static EVP_PKEY *decrypt_key(const X509_ALGOR *alg, const unsigned char *cek, size_t ceklen,
			     const unsigned char *in, int inlen, const char **why)
{
	int nid = OBJ_obj2nid(alg->algorithm), n = 0, m = 0;
	const EVP_CIPHER *c = nid == NID_aes_256_cbc	   ? EVP_aes_256_cbc()
			      : nid == NID_id_aes256_wrap_pad ? EVP_aes_256_wrap_pad()
							      : NULL;
	const unsigned char *iv = NULL, *p;
	EVP_CIPHER_CTX *cc = NULL;
	unsigned char *out = NULL;
	PKCS8_PRIV_KEY_INFO *p8 = NULL;
	EVP_PKEY *k = NULL;

	*why = "unknown content-encryption algorithm";
	if (c == NULL || ceklen != 32 || inlen <= 0)
		return NULL;
	if (nid == NID_aes_256_cbc) {
		if (alg->parameter == NULL || alg->parameter->type != V_ASN1_OCTET_STRING ||
		    alg->parameter->value.octet_string->length != 16)
			return NULL;
		iv = alg->parameter->value.octet_string->data;
	}
	*why = "the content does not decrypt with the key";
	if ((cc = EVP_CIPHER_CTX_new()) == NULL || (out = OPENSSL_malloc(inlen + 32)) == NULL)
		goto out;
	EVP_CIPHER_CTX_set_flags(cc, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
	if (!EVP_DecryptInit_ex(cc, c, NULL, cek, iv) ||
	    !EVP_DecryptUpdate(cc, out, &n, in, inlen) || !EVP_DecryptFinal_ex(cc, out + n, &m))
		goto out;
	*why = "the content is not a PrivateKeyInfo";
	p = out;
	if ((p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, n + m)) != NULL)
		k = EVP_PKCS82PKEY(p8);
out:
	PKCS8_PRIV_KEY_INFO_free(p8);
	EVP_CIPHER_CTX_free(cc);
	OPENSSL_clear_free(out, (size_t)inlen + 32);
	return k;
}

static EVP_PKEY *open_ekey(const struct ca_archive_opts *o, EVP_PKEY *dkey, const T_EKEY *ek,
			   const char **why)
{
	const T_KTRI *ri;
	unsigned char *cek = NULL;
	size_t ceklen = 0;
	EVP_PKEY *k = NULL;

	if (ek->type == 1) {
		const T_ENV *e = ek->value.env;

		*why = "the EnvelopedData has not exactly one KeyTransRecipientInfo";
		if (sk_T_KTRI_num(e->ris) != 1 || e->eci->content == NULL)
			return NULL;
		ri = sk_T_KTRI_value(e->ris, 0);
		*why = "the EnvelopedData is for another recipient";
		if (X509_NAME_cmp(ri->rid->issuer, X509_get_issuer_name(o->cert)) != 0 ||
		    ASN1_INTEGER_cmp(ri->rid->serial, X509_get0_serialNumber(o->cert)) != 0)
			return NULL;
		*why = "the content-encryption key does not decrypt with the archive key";
		if ((cek = decrypt_cek(dkey, ri->kea, ri->ek->data, (size_t)ri->ek->length,
				       &ceklen)) == NULL)
			return NULL;
		ca_event("archive: EnvelopedData, %s, %s", OBJ_nid2sn(OBJ_obj2nid(ri->kea->algorithm)),
			 OBJ_nid2sn(OBJ_obj2nid(e->eci->alg->algorithm)));
		k = decrypt_key(e->eci->alg, cek, ceklen, e->eci->content->data,
				e->eci->content->length, why);
	} else {
		const TCMP_ENCVAL *v = ek->value.ev;

		*why = "the EncryptedValue lacks symmAlg, encSymmKey or keyAlg";
		if (v->symmAlg == NULL || v->encSymmKey == NULL || v->keyAlg == NULL)
			return NULL;
		*why = "the content-encryption key does not decrypt with the archive key";
		if ((cek = decrypt_cek(dkey, v->keyAlg, v->encSymmKey->data,
				       (size_t)v->encSymmKey->length, &ceklen)) == NULL)
			return NULL;
		ca_event("archive: EncryptedValue, %s, %s",
			 OBJ_nid2sn(OBJ_obj2nid(v->keyAlg->algorithm)),
			 OBJ_nid2sn(OBJ_obj2nid(v->symmAlg->algorithm)));
		k = decrypt_key(v->symmAlg, cek, ceklen, v->encValue->data, v->encValue->length,
				why);
	}
	OPENSSL_clear_free(cek, ceklen);
	return k;
}

int ca_archive_take(const struct ca_archive_opts *o, const OSSL_CRMF_MSG *crm, EVP_PKEY *pub,
		    EVP_PKEY **ret_key, int *ret_bit, const char **ret_why)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	T_CRM *c = NULL;
	T_OPTS *opts = NULL;
	const T_ATAV *av = NULL;
	EVP_PKEY *k = NULL, *other = NULL;
	int len, i, ok = 0;

	*ret_key = NULL;
	*ret_bit = OSSL_CMP_PKIFAILUREINFO_badDataFormat;
	*ret_why = "the CertReqMsg does not decode";
	if (crm == NULL) {
		*ret_bit = OSSL_CMP_PKIFAILUREINFO_badRequest;
		*ret_why = "key archive is required, and a PKCS#10 request cannot carry it";
		return !o->require;
	}
	if ((len = ASN1_item_i2d((ASN1_VALUE *)crm, &der, ASN1_ITEM_rptr(OSSL_CRMF_MSG))) <= 0)
		goto out;
	p = der;
	if ((c = (T_CRM *)ASN1_item_d2i(NULL, &p, len, ASN1_ITEM_rptr(T_CRM))) == NULL)
		goto out;
	for (i = 0; i < sk_T_ATAV_num(c->req->controls); i++)
		if (OBJ_obj2nid(sk_T_ATAV_value(c->req->controls, i)->type) ==
		    NID_id_regCtrl_pkiArchiveOptions)
			av = sk_T_ATAV_value(c->req->controls, i);
	if (av == NULL) {
		*ret_bit = OSSL_CMP_PKIFAILUREINFO_badRequest;
		*ret_why = "key archive is required (--archive-require) and the request has no "
			   "pkiArchiveOptions";
		ok = !o->require;
		goto out;
	}
	ca_event("archive: the request has pkiArchiveOptions");
	if (!o->on) {
		*ret_bit = OSSL_CMP_PKIFAILUREINFO_badRequest;
		*ret_why = "this CA does not archive keys (no --archive)";
		goto out;
	}
	if (o->fault == CA_ARCHIVE_FAULT_REFUSE) {
		*ret_bit = OSSL_CMP_PKIFAILUREINFO_notAuthorized;
		*ret_why = "this CA does not archive keys (--archive-fault refuse)";
		goto out;
	}
	*ret_why = "the pkiArchiveOptions do not decode as encryptedPrivKey";
	if (av->value->type != V_ASN1_OTHER && av->value->type != V_ASN1_SEQUENCE)
		goto out;
	p = av->value->value.asn1_string->data;
	if ((opts = (T_OPTS *)ASN1_item_d2i(NULL, &p, av->value->value.asn1_string->length,
					    ASN1_ITEM_rptr(T_OPTS))) == NULL ||
	    opts->type != 0)
		goto out;
	if (o->fault == CA_ARCHIVE_FAULT_OTHER_KEY) {
		other = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
		ca_event("archive: fault other-key");
	}
	*ret_bit = OSSL_CMP_PKIFAILUREINFO_badPOP;
	if ((k = open_ekey(o, other != NULL ? other : o->key, opts->value.key, ret_why)) == NULL)
		goto out;
	if (EVP_PKEY_eq(k, pub) != 1) {
		*ret_why = "the archived private key does not belong to the requested public key";
		goto out;
	}
	ca_event("archive: the archived key matches the requested public key");
	*ret_key = k;
	k = NULL;
	ok = 1;
out:
	ERR_clear_error();
	EVP_PKEY_free(k);
	EVP_PKEY_free(other);
	ASN1_item_free((ASN1_VALUE *)opts, ASN1_ITEM_rptr(T_OPTS));
	ASN1_item_free((ASN1_VALUE *)c, ASN1_ITEM_rptr(T_CRM));
	OPENSSL_free(der);
	return ok;
}
