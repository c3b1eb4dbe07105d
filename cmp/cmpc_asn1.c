/*
 * ASN.1 templates for the parts of CMP (RFC 4210/9810, module with EXPLICIT
 * tags) that OpenSSL 3.0 does not expose: the PKIHeader fields, a
 * PKIMessage whose body stays encoded, and the bodies this layer builds or
 * reads itself (pollReq, pollRep, error) when it continues a transaction
 * that an earlier process started, and the cross-certification exchange
 * (ccr, ccp, its certConf) and key recovery (krr, krp), which 3.0's client
 * cannot make at all.
 */
#include "config.h"

#include <openssl/asn1t.h>
#include <openssl/crmf.h>
#include <openssl/err.h>

#include "cmp/cmpc-int.h"

ASN1_SEQUENCE(CMPC_HDR) = {
	ASN1_SIMPLE(CMPC_HDR, pvno, ASN1_INTEGER),
	ASN1_SIMPLE(CMPC_HDR, sender, GENERAL_NAME),
	ASN1_SIMPLE(CMPC_HDR, recipient, GENERAL_NAME),
	ASN1_EXP_OPT(CMPC_HDR, messageTime, ASN1_GENERALIZEDTIME, 0),
	ASN1_EXP_OPT(CMPC_HDR, protectionAlg, X509_ALGOR, 1),
	ASN1_EXP_OPT(CMPC_HDR, senderKID, ASN1_OCTET_STRING, 2),
	ASN1_EXP_OPT(CMPC_HDR, recipKID, ASN1_OCTET_STRING, 3),
	ASN1_EXP_OPT(CMPC_HDR, transactionID, ASN1_OCTET_STRING, 4),
	ASN1_EXP_OPT(CMPC_HDR, senderNonce, ASN1_OCTET_STRING, 5),
	ASN1_EXP_OPT(CMPC_HDR, recipNonce, ASN1_OCTET_STRING, 6),
	ASN1_EXP_SEQUENCE_OF_OPT(CMPC_HDR, freeText, ASN1_UTF8STRING, 7),
	ASN1_EXP_SEQUENCE_OF_OPT(CMPC_HDR, generalInfo, ASN1_ANY, 8),
} ASN1_SEQUENCE_END(CMPC_HDR)

ASN1_SEQUENCE(CMPC_PKIMSG) = {
	ASN1_SIMPLE(CMPC_PKIMSG, header, CMPC_HDR),
	ASN1_SIMPLE(CMPC_PKIMSG, body, ASN1_ANY),
	ASN1_EXP_OPT(CMPC_PKIMSG, protection, ASN1_BIT_STRING, 0),
	ASN1_EXP_SEQUENCE_OF_OPT(CMPC_PKIMSG, extraCerts, X509, 1),
} ASN1_SEQUENCE_END(CMPC_PKIMSG)

ASN1_SEQUENCE(CMPC_PKIMSG_HEAD) = {
	ASN1_SIMPLE(CMPC_PKIMSG_HEAD, header, CMPC_HDR),
	ASN1_SIMPLE(CMPC_PKIMSG_HEAD, body, ASN1_ANY),
	ASN1_EXP_OPT(CMPC_PKIMSG_HEAD, protection, ASN1_BIT_STRING, 0),
	ASN1_EXP_SEQUENCE_OF_OPT(CMPC_PKIMSG_HEAD, extraCerts, ASN1_ANY, 1),
} ASN1_SEQUENCE_END(CMPC_PKIMSG_HEAD)

ASN1_SEQUENCE(CMPC_PBMP) = {
	ASN1_SIMPLE(CMPC_PBMP, salt, ASN1_OCTET_STRING),
	ASN1_SIMPLE(CMPC_PBMP, owf, X509_ALGOR),
	ASN1_SIMPLE(CMPC_PBMP, iterationCount, ASN1_INTEGER),
	ASN1_SIMPLE(CMPC_PBMP, mac, X509_ALGOR),
} ASN1_SEQUENCE_END(CMPC_PBMP)

ASN1_SEQUENCE(CMPC_PROTPART) = {
	ASN1_SIMPLE(CMPC_PROTPART, header, CMPC_HDR),
	ASN1_SIMPLE(CMPC_PROTPART, body, ASN1_ANY),
} ASN1_SEQUENCE_END(CMPC_PROTPART)

/* PollReqContent ::= SEQUENCE OF SEQUENCE { certReqId INTEGER } */
ASN1_SEQUENCE(CMPC_POLLREQ) = {
	ASN1_SIMPLE(CMPC_POLLREQ, certReqId, ASN1_INTEGER),
} ASN1_SEQUENCE_END(CMPC_POLLREQ)

/* PollRepContent ::= SEQUENCE OF SEQUENCE { certReqId INTEGER,
 *     checkAfter INTEGER, reason PKIFreeText OPTIONAL } */
ASN1_SEQUENCE(CMPC_POLLREP) = {
	ASN1_SIMPLE(CMPC_POLLREP, certReqId, ASN1_INTEGER),
	ASN1_SIMPLE(CMPC_POLLREP, checkAfter, ASN1_INTEGER),
	ASN1_SEQUENCE_OF_OPT(CMPC_POLLREP, reason, ASN1_UTF8STRING),
} ASN1_SEQUENCE_END(CMPC_POLLREP)

/* ErrorMsgContent ::= SEQUENCE { pKIStatusInfo PKIStatusInfo,
 *     errorCode INTEGER OPTIONAL, errorDetails PKIFreeText OPTIONAL } */
ASN1_SEQUENCE(CMPC_ERRMSG) = {
	ASN1_SIMPLE(CMPC_ERRMSG, status, OSSL_CMP_PKISI),
	ASN1_OPT(CMPC_ERRMSG, errorCode, ASN1_INTEGER),
	ASN1_SEQUENCE_OF_OPT(CMPC_ERRMSG, errorDetails, ASN1_UTF8STRING),
} ASN1_SEQUENCE_END(CMPC_ERRMSG)

/* CertOrEncCert ::= CHOICE { certificate [0] CMPCertificate,
 *     encryptedCert [1] EncryptedKey }: the second is kept encoded. */
ASN1_CHOICE(CMPC_CERTORENC) = {
	ASN1_EXP(CMPC_CERTORENC, value.certificate, X509, 0),
	ASN1_EXP(CMPC_CERTORENC, value.encrypted, ASN1_ANY, 1),
} ASN1_CHOICE_END(CMPC_CERTORENC)

/* CertifiedKeyPair ::= SEQUENCE { certOrEncCert CertOrEncCert,
 *     privateKey [0] EncryptedKey OPTIONAL,
 *     publicationInfo [1] PKIPublicationInfo OPTIONAL } */
ASN1_SEQUENCE(CMPC_CKP) = {
	ASN1_SIMPLE(CMPC_CKP, certOrEncCert, CMPC_CERTORENC),
	ASN1_EXP_OPT(CMPC_CKP, privateKey, ASN1_ANY, 0),
	ASN1_EXP_OPT(CMPC_CKP, publicationInfo, ASN1_ANY, 1),
} ASN1_SEQUENCE_END(CMPC_CKP)

/* PKIStatusInfo ::= SEQUENCE { status PKIStatus, statusString
 *     PKIFreeText OPTIONAL, failInfo PKIFailureInfo OPTIONAL }: read here,
 * as 3.0 has no getter for the fields of its OSSL_CMP_PKISI. */
ASN1_SEQUENCE(CMPC_PKISI) = {
	ASN1_SIMPLE(CMPC_PKISI, status, ASN1_INTEGER),
	ASN1_SEQUENCE_OF_OPT(CMPC_PKISI, statusString, ASN1_UTF8STRING),
	ASN1_OPT(CMPC_PKISI, failInfo, ASN1_BIT_STRING),
} ASN1_SEQUENCE_END(CMPC_PKISI)

/* CertResponse ::= SEQUENCE { certReqId INTEGER, status PKIStatusInfo,
 *     certifiedKeyPair CertifiedKeyPair OPTIONAL, rspInfo OCTET STRING OPTIONAL } */
ASN1_SEQUENCE(CMPC_CERTRESP) = {
	ASN1_SIMPLE(CMPC_CERTRESP, certReqId, ASN1_INTEGER),
	ASN1_SIMPLE(CMPC_CERTRESP, status, CMPC_PKISI),
	ASN1_OPT(CMPC_CERTRESP, certifiedKeyPair, CMPC_CKP),
	ASN1_OPT(CMPC_CERTRESP, rspInfo, ASN1_OCTET_STRING),
} ASN1_SEQUENCE_END(CMPC_CERTRESP)

/* CertRepMessage ::= SEQUENCE { caPubs [1] SEQUENCE OF CMPCertificate
 *     OPTIONAL, response SEQUENCE OF CertResponse }: the body of ip, cp,
 * kup and ccp (3.0 does not export its own OSSL_CMP_CERTREPMESSAGE_it). */
ASN1_SEQUENCE(CMPC_CERTREP) = {
	ASN1_EXP_SEQUENCE_OF_OPT(CMPC_CERTREP, caPubs, X509, 1),
	ASN1_SEQUENCE_OF(CMPC_CERTREP, response, CMPC_CERTRESP),
} ASN1_SEQUENCE_END(CMPC_CERTREP)

/* CertStatus ::= SEQUENCE { certHash OCTET STRING, certReqId INTEGER,
 *     statusInfo PKIStatusInfo OPTIONAL } (RFC 4210; hashAlg of RFC 9480
 * left out: the certificate's signature hash is used) */
ASN1_SEQUENCE(CMPC_CERTSTATUS) = {
	ASN1_SIMPLE(CMPC_CERTSTATUS, certHash, ASN1_OCTET_STRING),
	ASN1_SIMPLE(CMPC_CERTSTATUS, certReqId, ASN1_INTEGER),
	ASN1_OPT(CMPC_CERTSTATUS, statusInfo, OSSL_CMP_PKISI),
} ASN1_SEQUENCE_END(CMPC_CERTSTATUS)

/* KeyRecRepContent ::= SEQUENCE { status PKIStatusInfo, newSigCert [0]
 *     CMPCertificate OPTIONAL, caCerts [1] SEQUENCE SIZE (1..MAX) OF
 *     CMPCertificate OPTIONAL, keyPairHist [2] SEQUENCE SIZE (1..MAX) OF
 *     CertifiedKeyPair OPTIONAL } (RFC 4210 5.3.9; EXPLICIT tags) */
ASN1_SEQUENCE(CMPC_KRP) = {
	ASN1_SIMPLE(CMPC_KRP, status, CMPC_PKISI),
	ASN1_EXP_OPT(CMPC_KRP, newSigCert, X509, 0),
	ASN1_EXP_SEQUENCE_OF_OPT(CMPC_KRP, caCerts, X509, 1),
	ASN1_EXP_SEQUENCE_OF_OPT(CMPC_KRP, keyPairHist, CMPC_CKP, 2),
} ASN1_SEQUENCE_END(CMPC_KRP)

/* The PKIBody alternatives of this layer: error [23], pollReq [25],
 * pollRep [26], pkiConf [19] (NULL), ccr [13], ccp [14], certConf [24],
 * krr [9], krp [10].  New ones go at the end: the selector is the index
 * (CMPC_SEL_*). */
ASN1_CHOICE(CMPC_BODY) = {
	ASN1_EXP(CMPC_BODY, value.error, CMPC_ERRMSG, CMPC_BODY_ERROR),
	ASN1_EXP(CMPC_BODY, value.pkiconf, ASN1_NULL, CMPC_BODY_PKICONF),
	ASN1_EXP_SEQUENCE_OF(CMPC_BODY, value.pollReq, CMPC_POLLREQ, CMPC_BODY_POLLREQ),
	ASN1_EXP_SEQUENCE_OF(CMPC_BODY, value.pollRep, CMPC_POLLREP, CMPC_BODY_POLLREP),
	ASN1_EXP(CMPC_BODY, value.ccr, OSSL_CRMF_MSGS, CMPC_BODY_CCR),
	ASN1_EXP(CMPC_BODY, value.ccp, CMPC_CERTREP, CMPC_BODY_CCP),
	ASN1_EXP_SEQUENCE_OF(CMPC_BODY, value.certConf, CMPC_CERTSTATUS, CMPC_BODY_CERTCONF),
	ASN1_EXP(CMPC_BODY, value.krr, OSSL_CRMF_MSGS, CMPC_BODY_KRR),
	ASN1_EXP(CMPC_BODY, value.krp, CMPC_KRP, CMPC_BODY_KRP),
	/* central key generation (cmpc_central.c): 3.0 cannot build its
	 * requests, nor read an ip whose privateKey is an EnvelopedData */
	ASN1_EXP(CMPC_BODY, value.ir, OSSL_CRMF_MSGS, CMPC_BODY_IR),
	ASN1_EXP(CMPC_BODY, value.ip, CMPC_CERTREP, CMPC_BODY_IP),
	ASN1_EXP(CMPC_BODY, value.cr, OSSL_CRMF_MSGS, CMPC_BODY_CR),
	ASN1_EXP(CMPC_BODY, value.cp, CMPC_CERTREP, CMPC_BODY_CP),
	ASN1_EXP(CMPC_BODY, value.kur, OSSL_CRMF_MSGS, CMPC_BODY_KUR),
	ASN1_EXP(CMPC_BODY, value.kup, CMPC_CERTREP, CMPC_BODY_KUP),
} ASN1_CHOICE_END(CMPC_BODY)

/*
 * CertReqMsg (RFC 4211 3) with its CertTemplate decoded: OpenSSL 3.0 puts
 * a public key into every template it fills, and RFC 9483 4.1.6 asks for
 * one with the algorithm and an empty subjectPublicKey.  Tagging as in
 * OpenSSL's crmf_asn.c (the CRMF module has IMPLICIT tags); the controls
 * stay encoded.  Only for a request without POP and regInfo: that is what
 * central key generation sends.
 */
ASN1_SEQUENCE(CMPC_OPTVALIDITY) = {
	ASN1_EXP_OPT(CMPC_OPTVALIDITY, notBefore, ASN1_TIME, 0),
	ASN1_EXP_OPT(CMPC_OPTVALIDITY, notAfter, ASN1_TIME, 1),
} ASN1_SEQUENCE_END(CMPC_OPTVALIDITY)

ASN1_SEQUENCE(CMPC_CERTTEMPLATE) = {
	ASN1_IMP_OPT(CMPC_CERTTEMPLATE, version, ASN1_INTEGER, 0),
	ASN1_IMP_OPT(CMPC_CERTTEMPLATE, serialNumber, ASN1_INTEGER, 1),
	ASN1_IMP_OPT(CMPC_CERTTEMPLATE, signingAlg, X509_ALGOR, 2),
	ASN1_EXP_OPT(CMPC_CERTTEMPLATE, issuer, X509_NAME, 3),
	ASN1_IMP_OPT(CMPC_CERTTEMPLATE, validity, CMPC_OPTVALIDITY, 4),
	ASN1_EXP_OPT(CMPC_CERTTEMPLATE, subject, X509_NAME, 5),
	ASN1_IMP_OPT(CMPC_CERTTEMPLATE, publicKey, X509_PUBKEY, 6),
	ASN1_IMP_OPT(CMPC_CERTTEMPLATE, issuerUID, ASN1_BIT_STRING, 7),
	ASN1_IMP_OPT(CMPC_CERTTEMPLATE, subjectUID, ASN1_BIT_STRING, 8),
	ASN1_IMP_SEQUENCE_OF_OPT(CMPC_CERTTEMPLATE, extensions, X509_EXTENSION, 9),
} ASN1_SEQUENCE_END(CMPC_CERTTEMPLATE)

ASN1_SEQUENCE(CMPC_CERTREQUEST) = {
	ASN1_SIMPLE(CMPC_CERTREQUEST, certReqId, ASN1_INTEGER),
	ASN1_SIMPLE(CMPC_CERTREQUEST, certTemplate, CMPC_CERTTEMPLATE),
	ASN1_SEQUENCE_OF_OPT(CMPC_CERTREQUEST, controls, ASN1_ANY),
} ASN1_SEQUENCE_END(CMPC_CERTREQUEST)

ASN1_SEQUENCE(CMPC_CERTREQMSG) = {
	ASN1_SIMPLE(CMPC_CERTREQMSG, certReq, CMPC_CERTREQUEST),
} ASN1_SEQUENCE_END(CMPC_CERTREQMSG)

/* RFC 4211's module has IMPLICIT tags. */
ASN1_SEQUENCE(CMPC_ENCVAL) = {
	ASN1_IMP_OPT(CMPC_ENCVAL, intendedAlg, X509_ALGOR, 0),
	ASN1_IMP_OPT(CMPC_ENCVAL, symmAlg, X509_ALGOR, 1),
	ASN1_IMP_OPT(CMPC_ENCVAL, encSymmKey, ASN1_BIT_STRING, 2),
	ASN1_IMP_OPT(CMPC_ENCVAL, keyAlg, X509_ALGOR, 3),
	ASN1_IMP_OPT(CMPC_ENCVAL, valueHint, ASN1_OCTET_STRING, 4),
	ASN1_SIMPLE(CMPC_ENCVAL, encValue, ASN1_BIT_STRING),
} ASN1_SEQUENCE_END(CMPC_ENCVAL)

CMPC_PKIMSG *cmpc_msg_decode(const unsigned char *der, size_t len)
{
	const unsigned char *p = der;
	CMPC_PKIMSG *m;

	if (len == 0 || len > 0x7fffffff)
		return NULL;
	m = (CMPC_PKIMSG *)ASN1_item_d2i(NULL, &p, (long)len, ASN1_ITEM_rptr(CMPC_PKIMSG));
	if (m != NULL && p != der + len) {
		cmpc_msg_free(m);
		m = NULL;
	}
	return m;
}

void cmpc_msg_free(CMPC_PKIMSG *m)
{
	ASN1_item_free((ASN1_VALUE *)m, ASN1_ITEM_rptr(CMPC_PKIMSG));
}

CMPC_PKIMSG_HEAD *cmpc_msg_head_decode(const unsigned char *der, size_t len)
{
	const unsigned char *p = der;
	CMPC_PKIMSG_HEAD *m;

	if (len == 0 || len > 0x7fffffff)
		return NULL;
	m = (CMPC_PKIMSG_HEAD *)ASN1_item_d2i(NULL, &p, (long)len,
					       ASN1_ITEM_rptr(CMPC_PKIMSG_HEAD));
	if (m != NULL && p != der + len) {
		cmpc_msg_head_free(m);
		m = NULL;
	}
	return m;
}

void cmpc_msg_head_free(CMPC_PKIMSG_HEAD *m)
{
	ASN1_item_free((ASN1_VALUE *)m, ASN1_ITEM_rptr(CMPC_PKIMSG_HEAD));
}

CMPC_BODY *cmpc_body_decode(const CMPC_PKIMSG *m)
{
	const ASN1_STRING *s;
	const unsigned char *p;
	CMPC_BODY *b;

	/* A context-tagged CHOICE arrives as V_ASN1_OTHER: the whole TLV. */
	if (m == NULL || m->body == NULL || m->body->type != V_ASN1_OTHER)
		return NULL;
	s = m->body->value.asn1_string;
	p = s->data;
	b = (CMPC_BODY *)ASN1_item_d2i(NULL, &p, s->length, ASN1_ITEM_rptr(CMPC_BODY));
	if (b != NULL && p != s->data + s->length) {
		cmpc_body_free(b);
		b = NULL;
	}
	ERR_clear_error();
	return b;
}

void cmpc_body_free(CMPC_BODY *b)
{
	ASN1_item_free((ASN1_VALUE *)b, ASN1_ITEM_rptr(CMPC_BODY));
}

int cmpc_body_set(CMPC_PKIMSG *m, const CMPC_BODY *b)
{
	unsigned char *der = NULL;
	ASN1_STRING *s = NULL;
	ASN1_TYPE *t = NULL;
	int len;

	if ((len = ASN1_item_i2d((ASN1_VALUE *)b, &der, ASN1_ITEM_rptr(CMPC_BODY))) <= 0 ||
	    (s = ASN1_STRING_type_new(V_ASN1_OTHER)) == NULL || (t = ASN1_TYPE_new()) == NULL) {
		OPENSSL_free(der);
		ASN1_STRING_free(s);
		return 0;
	}
	ASN1_STRING_set0(s, der, len);
	ASN1_TYPE_set(t, V_ASN1_OTHER, s);
	ASN1_TYPE_free(m->body);
	m->body = t;
	return 1;
}

const char *cmpc_body_name(int type)
{
	static const char *const names[] = {
		"ir",	  "ip",	  "cr",	    "cp",     "p10cr",	 "popdecc", "popdecr",
		"kur",	  "kup",  "krr",    "krp",    "rr",	 "rp",	    "ccr",
		"ccp",	  "ckuann", "cann", "rann",   "crlann",	 "pkiConf", "nested",
		"genm",	  "genp", "error",  "certConf", "pollReq", "pollRep",
	};

	if (type >= 0 && (size_t)type < sizeof(names) / sizeof(names[0]))
		return names[type];
	return "message of unknown body type";
}
