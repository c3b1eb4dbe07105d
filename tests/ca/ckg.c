/*
 * Central key generation (RFC 9483 4.1.6) in the test CA.  An ir, cr or
 * kur whose certTemplate has no publicKey, or one with an empty
 * subjectPublicKey, gets its key pair made here: EC on the template's
 * curve (P-256 when it names none) or RSA 2048.  OpenSSL 3.0's server
 * cannot serve such a request (it needs a key and a POP), so the request
 * is rewritten: its protection verified here, the new public key put into
 * the template, a POP signed with the new key, and it goes to OpenSSL
 * unprotected (accepted for this one request), as ccr_as_cr does.  The
 * answer gets the private key (ca_ckg_response): an EncryptedValue (AES
 * key wrap with padding of the PKCS#8, the AES key RSA-OAEP-SHA1 to the
 * protocolEncrKey), or with --ckg-enveloped an EnvelopedData (KTRI to the
 * protocolEncrKey, AES-256-CBC, content a SignedData by the issuing CA
 * around an AsymmetricKeyPackage); with --ckg-cbc an EncryptedValue under
 * AES-256-CBC instead of key wrap.  The key goes to the key recovery
 * store (ca_archive_put).  --ckg-fault NAME breaks it on purpose.
 */
#include "config.h"

#include <string.h>

#include <openssl/asn1t.h>
#include <openssl/cms.h>
#include <openssl/crmf.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include "tests/ca/testca.h"
#include "tests/common/cmp-asn1.h"

/* id-ct-KP-aKeyPackage (RFC 5958) */
#define OID_AKEY_PACKAGE "2.16.840.1.101.2.1.2.78.5"

struct ca_ckg {
	EVP_PKEY *key;	     /* the new key pair */
	EVP_PKEY *recipient; /* protocolEncrKey */
	ASN1_TYPE *env;	     /* the EnvelopedData for ca_ckg_finish */
};

/* ContentInfo, to take the EnvelopedData out of CMS's encoding. */
typedef struct {
	ASN1_OBJECT *contentType;
	ASN1_TYPE *content;
} CKG_CONTENTINFO;

ASN1_SEQUENCE(CKG_CONTENTINFO) = {
	ASN1_SIMPLE(CKG_CONTENTINFO, contentType, ASN1_OBJECT),
	ASN1_EXP(CKG_CONTENTINFO, content, ASN1_ANY, 0),
} static_ASN1_SEQUENCE_END(CKG_CONTENTINFO)

void ca_ckg_free(struct ca_ckg *k)
{
	if (k == NULL)
		return;
	EVP_PKEY_free(k->key);
	EVP_PKEY_free(k->recipient);
	ASN1_TYPE_free(k->env);
	OPENSSL_free(k);
}

/* The key type the template asks for: 0 none (a key is there), 1 EC
 * (curve in *nid), 2 RSA; -1 unreadable. */
static int wanted(const OSSL_CRMF_CERTTEMPLATE *tmpl, int *nid, int *empty)
{
	unsigned char *der = NULL;
	const unsigned char *p, *pk;
	const ASN1_OBJECT *obj;
	X509_ALGOR *alg;
	const void *pval;
	int len, pklen, ptype, ret = -1;
	CA_CERTTEMPLATE *t;

	*nid = NID_X9_62_prime256v1;
	*empty = 0;
	if ((len = i2d_OSSL_CRMF_CERTTEMPLATE(tmpl, &der)) <= 0)
		return -1;
	p = der;
	t = (CA_CERTTEMPLATE *)ASN1_item_d2i(NULL, &p, len, ASN1_ITEM_rptr(CA_CERTTEMPLATE));
	OPENSSL_free(der);
	if (t == NULL)
		return -1;
	if (t->publicKey == NULL) {
		ret = 1;
		goto done;
	}
	if (!X509_PUBKEY_get0_param(NULL, &pk, &pklen, &alg, t->publicKey))
		goto done;
	if (pklen > 0) {
		ret = 0;
		goto done;
	}
	*empty = 1;
	X509_ALGOR_get0(&obj, &ptype, &pval, alg);
	if (OBJ_obj2nid(obj) == NID_rsaEncryption) {
		ret = 2;
	} else if (OBJ_obj2nid(obj) == NID_X9_62_id_ecPublicKey) {
		if (ptype == V_ASN1_OBJECT)
			*nid = OBJ_obj2nid(pval);
		ret = 1;
	}
done:
	ASN1_item_free((ASN1_VALUE *)t, ASN1_ITEM_rptr(CA_CERTTEMPLATE));
	return ret;
}

/* Whether crm carries a proof of possession: a context-tagged element
 * after its CertRequest (regInfo is a SEQUENCE). */
static int has_pop(const OSSL_CRMF_MSG *crm)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	STACK_OF(ASN1_TYPE) *seq;
	int len, pop;

	if ((len = i2d_OSSL_CRMF_MSG(crm, &der)) <= 0)
		return -1;
	p = der;
	seq = d2i_ASN1_SEQUENCE_ANY(NULL, &p, len);
	OPENSSL_free(der);
	if (seq == NULL)
		return -1;
	pop = sk_ASN1_TYPE_num(seq) > 1 && sk_ASN1_TYPE_value(seq, 1)->type == V_ASN1_OTHER;
	sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
	return pop;
}

static EVP_PKEY *new_key(int type, int nid)
{
	if (type == 2)
		return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	return EVP_PKEY_Q_keygen(NULL, NULL, "EC", OBJ_nid2sn(nid));
}

/* The CertReqMessages inside body (a [tag] TLV) rewritten by fn; 0 when
 * it is not one, or on failure. */
static OSSL_CRMF_MSGS *body_msgs(const ASN1_TYPE *body, int *tag)
{
	const unsigned char *p;
	long len;
	int xclass, ret;

	if (body->type != V_ASN1_OTHER)
		return NULL;
	p = body->value.asn1_string->data;
	len = body->value.asn1_string->length;
	ret = ASN1_get_object(&p, &len, tag, &xclass, len);
	if ((ret & 0x80) || xclass != V_ASN1_CONTEXT_SPECIFIC)
		return NULL;
	return d2i_OSSL_CRMF_MSGS(NULL, &p, len);
}

static int set_body(ASN1_TYPE *body, const OSSL_CRMF_MSGS *msgs, int tag)
{
	unsigned char *der = NULL, *buf, *w;
	int dlen, total, ok;

	if ((dlen = i2d_OSSL_CRMF_MSGS(msgs, &der)) <= 0)
		return 0;
	total = ASN1_object_size(1, dlen, tag);
	if (total <= 0 || (buf = OPENSSL_malloc((size_t)total)) == NULL) {
		OPENSSL_free(der);
		return 0;
	}
	w = buf;
	ASN1_put_object(&w, 1, dlen, tag, V_ASN1_CONTEXT_SPECIFIC);
	memcpy(w, der, (size_t)dlen);
	ok = ASN1_STRING_set(body->value.asn1_string, buf, total);
	OPENSSL_free(buf);
	OPENSSL_free(der);
	return ok;
}

int ca_ckg_request(OSSL_CMP_CTX *ctx, int fault, OSSL_CMP_MSG **req, struct ca_ckg **ret)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	int len, tag, type, nid, empty, ok = -1;
	TCMP_PKIMESSAGE *m = NULL;
	OSSL_CRMF_MSGS *msgs = NULL;
	OSSL_CRMF_MSG *crm;
	X509_PUBKEY *rcp;
	EVP_PKEY *certified = NULL;
	OSSL_CMP_MSG *out = NULL;
	struct ca_ckg *k = NULL;
	const char *bn;

	*ret = NULL;
	if ((len = i2d_OSSL_CMP_MSG(*req, &der)) <= 0)
		return -1;
	p = der;
	m = (TCMP_PKIMESSAGE *)ASN1_item_d2i(NULL, &p, len, ASN1_ITEM_rptr(TCMP_PKIMESSAGE));
	OPENSSL_free(der);
	der = NULL;
	if (m == NULL || (msgs = body_msgs(m->body, &tag)) == NULL ||
	    sk_OSSL_CRMF_MSG_num(msgs) < 1) {
		ok = 0; /* OpenSSL answers what it cannot read */
		goto done;
	}
	bn = tag == 0 ? "ir" : tag == 2 ? "cr" : "kur";
	crm = sk_OSSL_CRMF_MSG_value(msgs, 0);
	if ((type = wanted(OSSL_CRMF_MSG_get0_tmpl(crm), &nid, &empty)) <= 0) {
		ok = 0;
		goto done;
	}
	/* A new transaction, as OpenSSL's server starts one for a request
	 * like this: what 3.0 kept of the last one (the signer it validated,
	 * validatedSrvCert, tried first) must not meet this message, and the
	 * server would drop it only after this check. */
	if (!OSSL_CMP_CTX_reinit(ctx))
		goto done;
	if (!OSSL_CMP_validate_msg(ctx, *req)) {
		ca_event("%s: central key generation: protection does not verify", bn);
		ca_log_openssl_errors("verifying the request");
		ok = 0;
		goto done;
	}
	if ((rcp = OSSL_CRMF_MSG_get0_regCtrl_protocolEncrKey(crm)) == NULL) {
		/* OpenSSL refuses it: no public key in the request */
		ca_event("%s: central key generation asked without protocolEncrKey", bn);
		ok = 0;
		goto done;
	}
	if ((k = OPENSSL_zalloc(sizeof(*k))) == NULL ||
	    (k->recipient = X509_PUBKEY_get(rcp)) == NULL ||
	    (k->key = new_key(type, nid)) == NULL)
		goto done;
	ca_event("%s: central key generation: template publicKey %s, POP %s", bn,
		 empty ? "with the algorithm and an empty key" : "absent",
		 has_pop(crm) == 0 ? "none" : "present");
	ca_event("%s: central key generation: %s key made, protocolEncrKey %s %d bits", bn,
		 type == 2 ? "RSA 2048" : OBJ_nid2sn(nid), EVP_PKEY_get0_type_name(k->recipient),
		 EVP_PKEY_get_bits(k->recipient));
	certified = k->key;
	if (fault == CA_CKG_FAULT_OTHER_PUBKEY) {
		if ((certified = new_key(type, nid)) == NULL)
			goto done;
		ca_event("%s: ckg-fault other-pubkey: the certificate is for another key", bn);
	} else {
		EVP_PKEY_up_ref(certified);
	}
	if (!OSSL_CRMF_CERTTEMPLATE_fill(OSSL_CRMF_MSG_get0_tmpl(crm), certified, NULL, NULL,
					 NULL) ||
	    !OSSL_CRMF_MSG_create_popo(OSSL_CRMF_POPO_SIGNATURE, crm, certified, EVP_sha256(), NULL,
				       NULL) ||
	    !set_body(m->body, msgs, tag))
		goto done;
	X509_ALGOR_free(m->header->protectionAlg);
	m->header->protectionAlg = NULL;
	ASN1_BIT_STRING_free(m->protection);
	m->protection = NULL;
	if ((len = ASN1_item_i2d((ASN1_VALUE *)m, &der, ASN1_ITEM_rptr(TCMP_PKIMESSAGE))) <= 0)
		goto done;
	p = der;
	if ((out = d2i_OSSL_CMP_MSG(NULL, &p, len)) == NULL)
		goto done;
	OSSL_CMP_MSG_free(*req);
	*req = out;
	*ret = k;
	k = NULL;
	ok = 1;
done:
	if (ok < 0)
		ca_log_openssl_errors("central key generation");
	EVP_PKEY_free(certified);
	OPENSSL_free(der);
	OSSL_CRMF_MSGS_free(msgs);
	ASN1_item_free((ASN1_VALUE *)m, ASN1_ITEM_rptr(TCMP_PKIMESSAGE));
	ca_ckg_free(k);
	return ok;
}

/* RSA-OAEP (SHA-1, RFC 4055's default) of in to pub. */
static unsigned char *oaep(EVP_PKEY *pub, const unsigned char *in, size_t inlen, size_t *outlen)
{
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(pub, NULL);
	unsigned char *out = NULL;

	if (c == NULL || EVP_PKEY_encrypt_init(c) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_OAEP_PADDING) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md(c, EVP_sha1()) <= 0 ||
	    EVP_PKEY_encrypt(c, NULL, outlen, in, inlen) <= 0 ||
	    (out = OPENSSL_malloc(*outlen)) == NULL ||
	    EVP_PKEY_encrypt(c, out, outlen, in, inlen) <= 0) {
		OPENSSL_free(out);
		out = NULL;
	}
	EVP_PKEY_CTX_free(c);
	return out;
}

/* PrivateKeyInfo (PKCS#8) DER of key: what C_UnwrapKey takes (i2d_PrivateKey
 * writes the traditional form). */
static int pkcs8(EVP_PKEY *key, unsigned char **der)
{
	PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(key);
	int len = p8 != NULL ? i2d_PKCS8_PRIV_KEY_INFO(p8, der) : -1;

	PKCS8_PRIV_KEY_INFO_free(p8);
	return len;
}

static void whole_octets(ASN1_BIT_STRING *b)
{
	b->flags &= ~(ASN1_STRING_FLAG_BITS_LEFT | 0x07);
	b->flags |= ASN1_STRING_FLAG_BITS_LEFT;
}

int ca_ckg_encrypted_value(EVP_PKEY *key, EVP_PKEY *rcp, int garbage, int cbc,
			   unsigned char **ret)
{
	unsigned char cek[32], iv[16], *p8 = NULL, *wrapped = NULL, *ek = NULL;
	ASN1_OCTET_STRING *ivs = NULL;
	int p8len = 0, outl = 0, fin = 0, len = -1;
	size_t eklen = 0;
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	TCMP_ENCVAL *ev = (TCMP_ENCVAL *)ASN1_item_new(ASN1_ITEM_rptr(TCMP_ENCVAL));
	RSA_OAEP_PARAMS *op = RSA_OAEP_PARAMS_new();
	ASN1_STRING *ops = NULL;

	if (c == NULL || ev == NULL || op == NULL || RAND_bytes(cek, sizeof(cek)) != 1 ||
	    (p8len = pkcs8(key, &p8)) <= 0 ||
	    (wrapped = OPENSSL_malloc((size_t)p8len + 16)) == NULL)
		goto done;
	EVP_CIPHER_CTX_set_flags(c, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
	if (RAND_bytes(iv, sizeof(iv)) != 1 ||
	    !EVP_EncryptInit_ex(c, cbc ? EVP_aes_256_cbc() : EVP_aes_256_wrap_pad(), NULL, cek,
				cbc ? iv : NULL) ||
	    !EVP_EncryptUpdate(c, wrapped, &outl, p8, p8len) ||
	    !EVP_EncryptFinal_ex(c, wrapped + outl, &fin))
		goto done;
	outl += fin;
	if (garbage)
		RAND_bytes(wrapped, outl);
	if ((ek = oaep(rcp, cek, sizeof(cek), &eklen)) == NULL)
		goto done;
	if (cbc && ((ivs = ASN1_OCTET_STRING_new()) == NULL ||
		    !ASN1_OCTET_STRING_set(ivs, iv, sizeof(iv))))
		goto done;
	if ((ev->symmAlg = X509_ALGOR_new()) == NULL ||
	    !X509_ALGOR_set0(ev->symmAlg, OBJ_nid2obj(cbc ? NID_aes_256_cbc : NID_id_aes256_wrap_pad),
			     cbc ? V_ASN1_OCTET_STRING : V_ASN1_UNDEF, ivs) ||
	    (ev->keyAlg = X509_ALGOR_new()) == NULL ||
	    (ops = ASN1_item_pack(op, ASN1_ITEM_rptr(RSA_OAEP_PARAMS), NULL)) == NULL ||
	    !X509_ALGOR_set0(ev->keyAlg, OBJ_nid2obj(NID_rsaesOaep), V_ASN1_SEQUENCE, ops))
		goto done;
	ops = NULL;
	ivs = NULL; /* the algorithm's now */
	if ((ev->encSymmKey = ASN1_BIT_STRING_new()) == NULL ||
	    !ASN1_BIT_STRING_set(ev->encSymmKey, ek, (int)eklen) ||
	    !ASN1_BIT_STRING_set(ev->encValue, wrapped, outl))
		goto done;
	/* whole octets: without the flag, i2d drops trailing zero bits */
	whole_octets(ev->encSymmKey);
	whole_octets(ev->encValue);
	len = ASN1_item_i2d((ASN1_VALUE *)ev, ret, ASN1_ITEM_rptr(TCMP_ENCVAL));
done:
	OPENSSL_cleanse(cek, sizeof(cek));
	if (p8 != NULL)
		OPENSSL_clear_free(p8, (size_t)p8len);
	OPENSSL_free(wrapped);
	OPENSSL_free(ek);
	ASN1_STRING_free(ops);
	ASN1_OCTET_STRING_free(ivs);
	RSA_OAEP_PARAMS_free(op);
	ASN1_item_free((ASN1_VALUE *)ev, ASN1_ITEM_rptr(TCMP_ENCVAL));
	EVP_CIPHER_CTX_free(c);
	return len;
}

/* A certificate for the transport key, only so that CMS names the
 * recipient (by its subjectKeyIdentifier). */
static X509 *recipient_cert(struct ca_ca *ca, EVP_PKEY *rcp)
{
	X509_NAME *n = X509_NAME_new();
	X509 *c = NULL;

	if (n != NULL && X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8,
						    (const unsigned char *)"transport key", -1,
						    -1, 0))
		c = ca_issue(ca, n, rcp, NULL, NULL, NULL);
	X509_NAME_free(n);
	return c;
}

/* EnvelopedData (RFC 9483 4.1.6.1 as far as the recipient goes: KTRI to
 * the protocolEncrKey): AES-256-CBC of a SignedData by the issuing CA of
 * an AsymmetricKeyPackage (one OneAsymmetricKey: the PKCS#8); DER of the
 * EnvelopedData in *ret, its SEQUENCE tag made [0] (IMPLICIT, the CRMF
 * module's EncryptedKey). */
int ca_ckg_enveloped(struct ca_ca *ca, EVP_PKEY *key, EVP_PKEY *rcp, int garbage,
		     unsigned char **ret)
{
	unsigned char *p8 = NULL, *pkg = NULL, *ci = NULL;
	int p8len = 0, pkglen = 0, cilen, len = -1;
	const unsigned char *p;
	STACK_OF(ASN1_TYPE) *seq = sk_ASN1_TYPE_new_null();
	ASN1_TYPE *one = NULL;
	CMS_ContentInfo *sig = NULL, *env = NULL;
	STACK_OF(X509) *rcps = NULL;
	X509 *rc = NULL;
	BIO *in = NULL;
	CKG_CONTENTINFO *info = NULL;
	ASN1_STRING *s;

	if (seq == NULL || (p8len = pkcs8(key, &p8)) <= 0)
		goto done;
	p = p8;
	if ((one = d2i_ASN1_TYPE(NULL, &p, p8len)) == NULL || !sk_ASN1_TYPE_push(seq, one))
		goto done;
	one = NULL;
	if ((pkglen = i2d_ASN1_SEQUENCE_ANY(seq, &pkg)) <= 0)
		goto done;
	if (garbage)
		RAND_bytes(pkg, pkglen);
	if ((in = BIO_new_mem_buf(pkg, pkglen)) == NULL ||
	    (sig = CMS_sign(ca->sub, ca->sub_key, NULL, NULL, CMS_BINARY | CMS_PARTIAL)) == NULL ||
	    !CMS_set1_eContentType(sig, OBJ_txt2obj(OID_AKEY_PACKAGE, 1)) ||
	    !CMS_final(sig, in, NULL, CMS_BINARY))
		goto done;
	BIO_free(in);
	in = NULL;
	/* the SignedData itself is the enveloped content (contentType
	 * id-signedData), not its ContentInfo */
	if ((cilen = i2d_CMS_ContentInfo(sig, &ci)) <= 0)
		goto done;
	p = ci;
	if ((info = (CKG_CONTENTINFO *)ASN1_item_d2i(NULL, &p, cilen,
						     ASN1_ITEM_rptr(CKG_CONTENTINFO))) == NULL ||
	    info->content->type != V_ASN1_SEQUENCE)
		goto done;
	s = info->content->value.sequence;
	if ((rc = recipient_cert(ca, rcp)) == NULL || (rcps = sk_X509_new_null()) == NULL ||
	    !sk_X509_push(rcps, rc))
		goto done;
	rc = NULL;
	if ((in = BIO_new_mem_buf(s->data, s->length)) == NULL ||
	    (env = CMS_encrypt(rcps, NULL, EVP_aes_256_cbc(),
			       CMS_BINARY | CMS_PARTIAL | CMS_USE_KEYID)) == NULL ||
	    !CMS_set1_eContentType(env, OBJ_nid2obj(NID_pkcs7_signed)) ||
	    !CMS_final(env, in, NULL, CMS_BINARY))
		goto done;
	OPENSSL_free(ci);
	ci = NULL;
	ASN1_item_free((ASN1_VALUE *)info, ASN1_ITEM_rptr(CKG_CONTENTINFO));
	info = NULL;
	if ((cilen = i2d_CMS_ContentInfo(env, &ci)) <= 0)
		goto done;
	p = ci;
	if ((info = (CKG_CONTENTINFO *)ASN1_item_d2i(NULL, &p, cilen,
						     ASN1_ITEM_rptr(CKG_CONTENTINFO))) == NULL ||
	    info->content->type != V_ASN1_SEQUENCE)
		goto done;
	s = info->content->value.sequence;
	if ((*ret = OPENSSL_memdup(s->data, (size_t)s->length)) == NULL)
		goto done;
	(*ret)[0] = 0xa0; /* [0] IMPLICIT: constructed, context 0 */
	len = s->length;
done:
	if (p8 != NULL)
		OPENSSL_clear_free(p8, (size_t)p8len);
	if (pkg != NULL)
		OPENSSL_clear_free(pkg, (size_t)pkglen);
	OPENSSL_free(ci);
	ASN1_TYPE_free(one);
	sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
	CMS_ContentInfo_free(sig);
	CMS_ContentInfo_free(env);
	sk_X509_pop_free(rcps, X509_free);
	X509_free(rc);
	BIO_free(in);
	ASN1_item_free((ASN1_VALUE *)info, ASN1_ITEM_rptr(CKG_CONTENTINFO));
	return len;
}

int ca_ckg_response(struct ca_ckg *k, struct ca_ca *ca, X509 *issued, int fault, int env,
		    OSSL_CMP_MSG **rsp)
{
	struct ca_edit e;
	unsigned char *der = NULL;
	const unsigned char *p;
	EVP_PKEY *sent = k->key, *rcp = k->recipient, *other = NULL, *other_rcp = NULL;
	OSSL_CMP_MSG *edited;
	int len, ok = 0;

	memset(&e, 0, sizeof(e));
	if (issued != NULL && !ca_archive_put(ca, X509_get0_serialNumber(issued), k->key))
		ca_event("central key generation: the key could not go to the archive");
	if (fault == CA_CKG_FAULT_NO_KEY) {
		ca_event("ckg-fault no-key: no private key in the answer");
		return 1;
	}
	if (fault == CA_CKG_FAULT_KEY_MISMATCH) {
		if ((other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) == NULL)
			return 0;
		sent = other;
		ca_event("ckg-fault key-mismatch: another private key than the certificate's");
	}
	if (fault == CA_CKG_FAULT_OTHER_RECIPIENT) {
		if ((other_rcp = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)) == NULL)
			goto done;
		rcp = other_rcp;
		ca_event("ckg-fault other-recipient: encrypted to another key");
	}
	if (fault == CA_CKG_FAULT_GARBAGE)
		ca_event("ckg-fault garbage: the encrypted key is random bytes");
	len = env > 0 ? ca_ckg_enveloped(ca, sent, rcp, fault == CA_CKG_FAULT_GARBAGE, &der)
		  : ca_ckg_encrypted_value(sent, rcp, fault == CA_CKG_FAULT_GARBAGE, env < 0, &der);
	if (len <= 0)
		goto done;
	p = der;
	if ((e.privkey = d2i_ASN1_TYPE(NULL, &p, len)) == NULL)
		goto done;
	if (env > 0) {
		/* OpenSSL 3.0 cannot decode it: put in by ca_ckg_finish */
		ASN1_TYPE_free(k->env);
		k->env = e.privkey;
		e.privkey = NULL;
		ok = 1;
		goto done;
	}
	if ((edited = ca_msg_edit(*rsp, &e)) == NULL)
		goto done;
	OSSL_CMP_MSG_free(*rsp);
	*rsp = edited;
	ca_event("central key generation: private key sent in an EncryptedValue");
	ok = 1;
done:
	if (!ok)
		ca_log_openssl_errors("sending the central key");
	ASN1_TYPE_free(e.privkey);
	OPENSSL_free(der);
	EVP_PKEY_free(other);
	EVP_PKEY_free(other_rcp);
	return ok;
}

int ca_ckg_protect(TCMP_PKIMESSAGE *m, OSSL_CMP_CTX *ctx, const unsigned char *secret,
		   size_t secret_len)
{
	TCMP_PROTECTEDPART pp;
	unsigned char *der = NULL, *mac = NULL;
	const unsigned char *p;
	size_t maclen = 0;
	int len, nid, mdnid = NID_undef, pknid, ok = 0;
	OSSL_CRMF_PBMPARAMETER *pbm = NULL;
	EVP_MD_CTX *mc = NULL;
	EVP_PKEY *key;
	const ASN1_TYPE *param;

	if (m->header->protectionAlg == NULL)
		return 1;
	pp.header = m->header;
	pp.body = m->body;
	if ((len = ASN1_item_i2d((ASN1_VALUE *)&pp, &der, ASN1_ITEM_rptr(TCMP_PROTECTEDPART))) <= 0)
		return 0;
	nid = OBJ_obj2nid(m->header->protectionAlg->algorithm);
	param = m->header->protectionAlg->parameter;
	if (nid == NID_id_PasswordBasedMAC) {
		if (secret == NULL || param == NULL || param->type != V_ASN1_SEQUENCE)
			goto done;
		p = param->value.sequence->data;
		if ((pbm = d2i_OSSL_CRMF_PBMPARAMETER(NULL, &p, param->value.sequence->length)) ==
			    NULL ||
		    !OSSL_CRMF_pbm_new(NULL, NULL, pbm, der, (size_t)len, secret, secret_len, &mac,
				       &maclen))
			goto done;
	} else {
		if ((key = OSSL_CMP_CTX_get0_newPkey(ctx, 1)) == NULL ||
		    !OBJ_find_sigid_algs(nid, &mdnid, &pknid) || (mc = EVP_MD_CTX_new()) == NULL ||
		    EVP_DigestSignInit(mc, NULL,
				       mdnid == NID_undef ? NULL : EVP_get_digestbynid(mdnid), NULL,
				       key) <= 0 ||
		    EVP_DigestSign(mc, NULL, &maclen, der, (size_t)len) <= 0 ||
		    (mac = OPENSSL_malloc(maclen)) == NULL ||
		    EVP_DigestSign(mc, mac, &maclen, der, (size_t)len) <= 0)
			goto done;
	}
	if (!ASN1_BIT_STRING_set(m->protection, mac, (int)maclen))
		goto done;
	whole_octets(m->protection);
	ok = 1;
done:
	OPENSSL_free(der);
	OPENSSL_free(mac);
	OSSL_CRMF_PBMPARAMETER_free(pbm);
	EVP_MD_CTX_free(mc);
	return ok;
}

int ca_ckg_finish(struct ca_ckg *k, OSSL_CMP_CTX *ctx, const unsigned char *secret,
		  size_t secret_len, unsigned char **der, int *len)
{
	struct ca_edit e;
	const unsigned char *p = *der;
	unsigned char *out = NULL;
	TCMP_PKIMESSAGE *m;
	int olen, ok = 0;

	if (k == NULL || k->env == NULL)
		return 1;
	memset(&e, 0, sizeof(e));
	e.privkey = k->env;
	m = (TCMP_PKIMESSAGE *)ASN1_item_d2i(NULL, &p, *len, ASN1_ITEM_rptr(TCMP_PKIMESSAGE));
	if (m == NULL || !ca_body_edit(m->body, &e) ||
	    (m->header->protectionAlg != NULL && m->protection == NULL &&
	     (m->protection = ASN1_BIT_STRING_new()) == NULL) ||
	    !ca_ckg_protect(m, ctx, secret, secret_len) ||
	    (olen = ASN1_item_i2d((ASN1_VALUE *)m, &out, ASN1_ITEM_rptr(TCMP_PKIMESSAGE))) <= 0)
		goto done;
	OPENSSL_free(*der);
	*der = out;
	*len = olen;
	out = NULL;
	ok = 1;
	ca_event("central key generation: private key sent in an EnvelopedData");
done:
	if (!ok)
		ca_log_openssl_errors("putting the EnvelopedData into the answer");
	OPENSSL_free(out);
	ASN1_item_free((ASN1_VALUE *)m, ASN1_ITEM_rptr(TCMP_PKIMESSAGE));
	return ok;
}
