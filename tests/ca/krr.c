/*
 * Key recovery (krr/krp, RFC 4210 5.3.8 and 5.3.9) for the test CA.
 * OpenSSL 3.0's server refuses a krr (CMP_R_UNEXPECTED_PKIBODY): srv.c
 * lets it answer with its error message, whose header (transactionID,
 * nonces, sender) is the right one, and here the body becomes the krp and
 * the message is protected again as the other answers are.
 *
 * The krr names the certificate by its oldCertID control (issuer and
 * serial; RFC 4211 6.5) and the key to encrypt to by its protocolEncrKey
 * control (6.6).  The key comes from the recovery store (ca_archive_get)
 * as an EncryptedValue (RFC 4211 2.1): the PKCS#8 PrivateKeyInfo under
 * AES-256 key wrap with padding, the AES key under RSA-OAEP (SHA-1) to the
 * protocolEncrKey.  With --krr-enveloped the key goes in an EnvelopedData
 * instead (RFC 9480's EncryptedKey, made as ckg.c makes it for
 * --ckg-enveloped), which OpenSSL 3.0 cannot hold: the krp is built with
 * an EncryptedValue, and ca_krr_finish puts the EnvelopedData into the
 * encoded answer and protects it again.  Templates of its own: the
 * client's must not be mirrored.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <openssl/asn1t.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "tests/ca/testca.h"
#include "tests/common/cmp-asn1.h"

/* CertifiedKeyPair with certOrEncCert = certificate [0]; privateKey [0]
 * EncryptedKey (CMP module: EXPLICIT), kept encoded: an EncryptedValue or
 * the [0] EnvelopedData. */
typedef struct {
	X509 *cert;
	ASN1_TYPE *privateKey;
} KRR_CKP;

ASN1_SEQUENCE(KRR_CKP) = {
	ASN1_EXP(KRR_CKP, cert, X509, 0),
	ASN1_EXP_OPT(KRR_CKP, privateKey, ASN1_ANY, 0),
} static_ASN1_SEQUENCE_END(KRR_CKP)

DEFINE_STACK_OF(KRR_CKP)

/* KeyRecRepContent (newSigCert never sent) */
typedef struct {
	OSSL_CMP_PKISI *status;
	STACK_OF(X509) *caCerts;
	STACK_OF(KRR_CKP) *keyPairHist;
} KRR_KRP;

ASN1_SEQUENCE(KRR_KRP) = {
	ASN1_SIMPLE(KRR_KRP, status, OSSL_CMP_PKISI),
	ASN1_EXP_SEQUENCE_OF_OPT(KRR_KRP, caCerts, X509, 1),
	ASN1_EXP_SEQUENCE_OF_OPT(KRR_KRP, keyPairHist, KRR_CKP, 2),
} static_ASN1_SEQUENCE_END(KRR_KRP)

/* PKIBody krr [9] and krp [10] */
typedef struct {
	int type;
	union {
		OSSL_CRMF_MSGS *krr;
		KRR_KRP *krp;
	} value;
} KRR_BODY;

ASN1_CHOICE(KRR_BODY) = {
	ASN1_EXP(KRR_BODY, value.krr, OSSL_CRMF_MSGS, CA_BODY_KRR),
	ASN1_EXP(KRR_BODY, value.krp, KRR_KRP, CA_BODY_KRP),
} static_ASN1_CHOICE_END(KRR_BODY)

static const char *const fault_names[] = {
	"",	 "wrong-key", "other-recipient", "garbage", "unprotected",
	"reject", "no-key",    "history",	  NULL,
};

const char *const *ca_krr_fault_names(void)
{
	return fault_names;
}

/* The request's CertReqMessages, or NULL. */
static OSSL_CRMF_MSGS *krr_msgs(const unsigned char *der, size_t len)
{
	const unsigned char *p = der;
	TCMP_PKIMESSAGE *m = (TCMP_PKIMESSAGE *)ASN1_item_d2i(NULL, &p, (long)len,
							      ASN1_ITEM_rptr(TCMP_PKIMESSAGE));
	KRR_BODY *b = NULL;
	OSSL_CRMF_MSGS *msgs = NULL;

	if (m != NULL && m->body != NULL && m->body->type == V_ASN1_OTHER) {
		p = m->body->value.asn1_string->data;
		b = (KRR_BODY *)ASN1_item_d2i(NULL, &p, m->body->value.asn1_string->length,
					      ASN1_ITEM_rptr(KRR_BODY));
	}
	if (b != NULL && b->type == 0) {
		msgs = b->value.krr;
		b->value.krr = NULL;
	}
	ASN1_item_free((ASN1_VALUE *)b, ASN1_ITEM_rptr(KRR_BODY));
	ASN1_item_free((ASN1_VALUE *)m, ASN1_ITEM_rptr(TCMP_PKIMESSAGE));
	return msgs;
}

static EVP_PKEY *same_type_key(EVP_PKEY *like)
{
	return EVP_PKEY_is_a(like, "RSA") ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)
					  : ca_new_ec_key();
}

/* The EnvelopedData of the last krp, for ca_krr_finish (the test CA
 * answers one request at a time). */
static ASN1_TYPE *pending_env;

static ASN1_TYPE *as_any(const unsigned char *der, int len)
{
	const unsigned char *p = der;

	return len > 0 ? d2i_ASN1_TYPE(NULL, &p, len) : NULL;
}

/* key as an EncryptedValue to `to' (the faults: another key, another
 * recipient, garbage); with env, the same in an EnvelopedData into
 * pending_env, and the EncryptedValue stands in for it until then. */
static ASN1_TYPE *encrypt_key(struct ca_ca *ca, EVP_PKEY *key, EVP_PKEY *to, int fault, int env)
{
	EVP_PKEY *other = NULL, *wrong = NULL;
	unsigned char *out = NULL;
	ASN1_TYPE *any = NULL;
	int olen, garbage = fault == CA_KRR_FAULT_GARBAGE;

	if (fault == CA_KRR_FAULT_WRONG_KEY && (wrong = same_type_key(key)) != NULL)
		key = wrong;
	if (fault == CA_KRR_FAULT_OTHER_RECIPIENT &&
	    (other = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)) != NULL)
		to = other;
	if ((olen = ca_ckg_encrypted_value(key, to, garbage, 0, &out)) <= 0 ||
	    (any = as_any(out, olen)) == NULL)
		goto out;
	if (env) {
		OPENSSL_free(out);
		out = NULL;
		ASN1_TYPE_free(pending_env);
		olen = ca_ckg_enveloped(ca, key, to, garbage, &out);
		if ((pending_env = as_any(out, olen)) == NULL) {
			ASN1_TYPE_free(any);
			any = NULL;
		}
	}
out:
	OPENSSL_free(out);
	EVP_PKEY_free(other);
	EVP_PKEY_free(wrong);
	return any;
}

static int push_history(struct ca_ca *ca, KRR_KRP *krp, EVP_PKEY *to)
{
	KRR_CKP *old = (KRR_CKP *)ASN1_item_new(ASN1_ITEM_rptr(KRR_CKP));
	EVP_PKEY *key = ca_new_ec_key();
	int ok = old != NULL && key != NULL && ca->device != NULL &&
		 (old->privateKey = encrypt_key(ca, key, to, 0, 0)) != NULL;

	if (ok) {
		X509_free(old->cert);
		old->cert = X509_dup(ca->device);
		ok = old->cert != NULL && sk_KRR_CKP_push(krp->keyPairHist, old) > 0;
	}
	if (!ok)
		ASN1_item_free((ASN1_VALUE *)old, ASN1_ITEM_rptr(KRR_CKP));
	EVP_PKEY_free(key);
	return ok;
}

/* The KeyRecRepContent for the request: a rejection with failInfo bit
 * and text, or the certificate with its key. */
static KRR_KRP *krp_for(struct ca_ca *ca, OSSL_CRMF_MSGS *msgs, int fault, int env)
{
	KRR_KRP *krp = (KRR_KRP *)ASN1_item_new(ASN1_ITEM_rptr(KRR_KRP));
	OSSL_CRMF_MSG *crm = sk_OSSL_CRMF_MSG_value(msgs, 0);
	OSSL_CRMF_CERTID *cid = crm != NULL ? OSSL_CRMF_MSG_get0_regCtrl_oldCertID(crm) : NULL;
	X509_PUBKEY *xpub = crm != NULL ? OSSL_CRMF_MSG_get0_regCtrl_protocolEncrKey(crm) : NULL;
	EVP_PKEY *to = xpub != NULL ? X509_PUBKEY_get0(xpub) : NULL, *key = NULL;
	const ASN1_INTEGER *serial = NULL;
	X509 *cert = NULL;
	KRR_CKP *ckp = NULL;
	const char *text = NULL;
	char *hex = NULL;
	int bit = -1;

	if (krp == NULL)
		return NULL;
	if (cid != NULL)
		serial = OSSL_CRMF_CERTID_get0_serialNumber(cid);
	if (fault == CA_KRR_FAULT_REJECT) {
		bit = OSSL_CMP_PKIFAILUREINFO_notAuthorized;
		text = "key recovery refused by the test CA (fault reject)";
	} else if (sk_OSSL_CRMF_MSG_num(msgs) != 1 || serial == NULL) {
		bit = OSSL_CMP_PKIFAILUREINFO_badRequest;
		text = "one CertReqMsg with an oldCertID control expected";
	} else if (to == NULL || !EVP_PKEY_is_a(to, "RSA")) {
		bit = OSSL_CMP_PKIFAILUREINFO_badRequest;
		text = "no RSA key in the protocolEncrKey control to encrypt to";
	} else if ((cert = ca_find_issued(ca, OSSL_CRMF_CERTID_get0_issuer(cid), serial)) ==
		   NULL) {
		bit = OSSL_CMP_PKIFAILUREINFO_badCertId;
		text = "no certificate of this CA with that issuer and serial";
	} else if (OSSL_CRMF_CERTTEMPLATE_get0_subject(OSSL_CRMF_MSG_get0_tmpl(crm)) != NULL &&
		   X509_NAME_cmp(OSSL_CRMF_CERTTEMPLATE_get0_subject(OSSL_CRMF_MSG_get0_tmpl(crm)),
				 X509_get_subject_name(cert)) != 0) {
		bit = OSSL_CMP_PKIFAILUREINFO_badCertTemplate;
		text = "the template's subject is not the certificate's";
	} else if ((key = ca_archive_get(ca, serial)) == NULL) {
		bit = OSSL_CMP_PKIFAILUREINFO_badCertId;
		text = "no archived key for this certificate";
	}
	hex = serial != NULL ? ca_serial_hex(serial) : NULL;
	ca_event("krr: oldCertID serial %s, protocolEncrKey %s %d bits",
		 hex != NULL ? hex : "-", to != NULL ? EVP_PKEY_get0_type_name(to) : "-",
		 to != NULL ? EVP_PKEY_get_bits(to) : 0);
	if (bit >= 0) {
		ca_event("krr: serial %s: rejected: %s", hex != NULL ? hex : "-", text);
		OSSL_CMP_PKISI_free(krp->status);
		krp->status = OSSL_CMP_STATUSINFO_new(OSSL_CMP_PKISTATUS_rejection, 1 << bit, text);
		goto out;
	}
	if ((ckp = (KRR_CKP *)ASN1_item_new(ASN1_ITEM_rptr(KRR_CKP))) == NULL ||
	    (krp->keyPairHist = sk_KRR_CKP_new_null()) == NULL ||
	    (krp->caCerts = sk_X509_new_null()) == NULL || !sk_X509_push(krp->caCerts, ca->sub))
		goto fail;
	X509_up_ref(ca->sub);
	X509_free(ckp->cert);
	ckp->cert = cert;
	cert = NULL;
	if (fault != CA_KRR_FAULT_NO_KEY &&
	    (ckp->privateKey = encrypt_key(ca, key, to, fault, env)) == NULL)
		goto fail;
	/* history: an earlier key pair (the device's certificate, a fresh
	 * key) comes first */
	if (fault == CA_KRR_FAULT_HISTORY && !push_history(ca, krp, to))
		goto fail;
	if (!sk_KRR_CKP_push(krp->keyPairHist, ckp))
		goto fail;
	ckp = NULL;
	OSSL_CMP_PKISI_free(krp->status);
	krp->status = OSSL_CMP_STATUSINFO_new(OSSL_CMP_PKISTATUS_accepted, 0, NULL);
	ca_event("krr: serial %s: key recovered%s%s%s", hex,
		 env && fault != CA_KRR_FAULT_NO_KEY ? " (in an EnvelopedData)" : "",
		 fault != 0 ? ", fault " : "", fault_names[fault]);
	goto out;
fail:
	ASN1_item_free((ASN1_VALUE *)krp, ASN1_ITEM_rptr(KRR_KRP));
	krp = NULL;
out:
	ASN1_item_free((ASN1_VALUE *)ckp, ASN1_ITEM_rptr(KRR_CKP));
	OPENSSL_free(hex);
	X509_free(cert);
	EVP_PKEY_free(key);
	if (krp != NULL && krp->status == NULL) {
		ASN1_item_free((ASN1_VALUE *)krp, ASN1_ITEM_rptr(KRR_KRP));
		krp = NULL;
	}
	return krp;
}

/* rsp with body b (DER), its protection dropped (NULL on failure). */
static OSSL_CMP_MSG *with_body(const OSSL_CMP_MSG *rsp, unsigned char *b, int blen)
{
	unsigned char *der = NULL, *out = NULL;
	const unsigned char *p;
	int len = i2d_OSSL_CMP_MSG(rsp, &der), olen;
	TCMP_PKIMESSAGE *m = NULL;
	OSSL_CMP_MSG *msg = NULL;
	ASN1_STRING *s = NULL;

	p = der;
	if (len <= 0 || (m = (TCMP_PKIMESSAGE *)ASN1_item_d2i(NULL, &p, len,
							      ASN1_ITEM_rptr(TCMP_PKIMESSAGE))) ==
			    NULL ||
	    (s = ASN1_STRING_type_new(V_ASN1_OTHER)) == NULL || !ASN1_STRING_set(s, b, blen))
		goto out;
	ASN1_TYPE_set(m->body, V_ASN1_OTHER, s);
	s = NULL;
	if ((olen = ASN1_item_i2d((ASN1_VALUE *)m, &out, ASN1_ITEM_rptr(TCMP_PKIMESSAGE))) <= 0)
		goto out;
	p = out;
	msg = d2i_OSSL_CMP_MSG(NULL, &p, olen);
out:
	ASN1_STRING_free(s);
	ASN1_item_free((ASN1_VALUE *)m, ASN1_ITEM_rptr(TCMP_PKIMESSAGE));
	OPENSSL_free(der);
	OPENSSL_free(out);
	return msg;
}

/* DIR/last-krp.der: the last krp as sent, for the fuzz seeds
 * (tools/make-krp-seeds.sh). */
static char *krp_path;

static void save(const unsigned char *der, int len)
{
	FILE *f;

	if (krp_path == NULL || len <= 0)
		return;
	if ((f = fopen(krp_path, "wb")) != NULL) {
		if (fwrite(der, 1, (size_t)len, f) != (size_t)len)
			ca_event("krr: cannot write %s", krp_path);
		fclose(f);
	}
}

static void save_msg(struct ca_ca *ca, const OSSL_CMP_MSG *msg)
{
	size_t n = strlen(ca->dir) + 16;
	unsigned char *der = NULL;
	int len = i2d_OSSL_CMP_MSG(msg, &der);

	OPENSSL_free(krp_path);
	if ((krp_path = OPENSSL_malloc(n)) != NULL)
		snprintf(krp_path, n, "%s/last-krp.der", ca->dir);
	save(der, len);
	OPENSSL_free(der);
}

int ca_krr_answer(struct ca_ca *ca, OSSL_CMP_CTX *ctx, const unsigned char *req, size_t len,
		  OSSL_CMP_MSG **rsp, int fault, int env)
{
	OSSL_CRMF_MSGS *msgs = krr_msgs(req, len);
	KRR_BODY b = {1, {NULL}};
	OSSL_CMP_MSG *msg = NULL;
	unsigned char *der = NULL;
	int dlen = -1, ok = 0;

	if (msgs == NULL) {
		ca_event("krr: the body does not parse: OpenSSL's error answer goes");
		return 1;
	}
	ASN1_TYPE_free(pending_env);
	pending_env = NULL;
	if ((b.value.krp = krp_for(ca, msgs, fault, env)) == NULL ||
	    (dlen = ASN1_item_i2d((ASN1_VALUE *)&b, &der, ASN1_ITEM_rptr(KRR_BODY))) <= 0 ||
	    (msg = with_body(*rsp, der, dlen)) == NULL)
		goto out;
	/* protected as every answer: OpenSSL closed the transaction with its
	 * error, the krp goes in it all the same */
	OSSL_CMP_CTX_set1_transactionID(
	    ctx, OSSL_CMP_HDR_get0_transactionID(OSSL_CMP_MSG_get0_header(msg)));
	if (fault == CA_KRR_FAULT_UNPROTECTED)
		OSSL_CMP_CTX_set_option(ctx, OSSL_CMP_OPT_UNPROTECTED_SEND, 1);
	ok = OSSL_CMP_MSG_update_transactionID(ctx, msg);
	OSSL_CMP_CTX_set_option(ctx, OSSL_CMP_OPT_UNPROTECTED_SEND, 0);
	OSSL_CMP_CTX_set1_transactionID(ctx, NULL);
	if (!ok)
		goto out;
	save_msg(ca, msg);
	OSSL_CMP_MSG_free(*rsp);
	*rsp = msg;
	msg = NULL;
out:
	if (!ok)
		ca_log_openssl_errors("building the krp");
	OSSL_CMP_MSG_free(msg);
	OPENSSL_free(der);
	ASN1_item_free((ASN1_VALUE *)b.value.krp, ASN1_ITEM_rptr(KRR_KRP));
	OSSL_CRMF_MSGS_free(msgs);
	return ok;
}

int ca_krr_finish(OSSL_CMP_CTX *ctx, const unsigned char *secret, size_t secret_len,
		  unsigned char **der, int *len)
{
	const unsigned char *p = *der;
	unsigned char *b = NULL, *out = NULL;
	TCMP_PKIMESSAGE *m;
	KRR_BODY *body = NULL;
	KRR_CKP *ckp;
	ASN1_STRING *s = NULL;
	int blen, olen, n, ok = 0;

	if (pending_env == NULL)
		return 1;
	m = (TCMP_PKIMESSAGE *)ASN1_item_d2i(NULL, &p, *len, ASN1_ITEM_rptr(TCMP_PKIMESSAGE));
	if (m == NULL || m->body == NULL || m->body->type != V_ASN1_OTHER)
		goto done;
	p = m->body->value.asn1_string->data;
	body = (KRR_BODY *)ASN1_item_d2i(NULL, &p, m->body->value.asn1_string->length,
					 ASN1_ITEM_rptr(KRR_BODY));
	/* the certificate's own entry is the last one */
	if (body == NULL || body->type != 1 ||
	    (n = sk_KRR_CKP_num(body->value.krp->keyPairHist)) <= 0)
		goto done;
	ckp = sk_KRR_CKP_value(body->value.krp->keyPairHist, n - 1);
	ASN1_TYPE_free(ckp->privateKey);
	ckp->privateKey = pending_env;
	pending_env = NULL;
	if ((blen = ASN1_item_i2d((ASN1_VALUE *)body, &b, ASN1_ITEM_rptr(KRR_BODY))) <= 0 ||
	    (s = ASN1_STRING_type_new(V_ASN1_OTHER)) == NULL || !ASN1_STRING_set(s, b, blen))
		goto done;
	ASN1_TYPE_set(m->body, V_ASN1_OTHER, s);
	s = NULL;
	if ((m->header->protectionAlg != NULL && m->protection == NULL &&
	     (m->protection = ASN1_BIT_STRING_new()) == NULL) ||
	    !ca_ckg_protect(m, ctx, secret, secret_len) ||
	    (olen = ASN1_item_i2d((ASN1_VALUE *)m, &out, ASN1_ITEM_rptr(TCMP_PKIMESSAGE))) <= 0)
		goto done;
	OPENSSL_free(*der);
	*der = out;
	*len = olen;
	out = NULL;
	save(*der, *len);
	ok = 1;
	ca_event("krr: private key sent in an EnvelopedData");
done:
	if (!ok)
		ca_log_openssl_errors("putting the EnvelopedData into the krp");
	ASN1_TYPE_free(pending_env);
	pending_env = NULL;
	ASN1_STRING_free(s);
	OPENSSL_free(b);
	OPENSSL_free(out);
	ASN1_item_free((ASN1_VALUE *)body, ASN1_ITEM_rptr(KRR_BODY));
	ASN1_item_free((ASN1_VALUE *)m, ASN1_ITEM_rptr(TCMP_PKIMESSAGE));
	return ok;
}
