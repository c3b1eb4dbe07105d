/*
 * ASN.1 templates of the CMP structures the tests read and write
 * themselves, shared by the test CA (tests/ca/), the unit tests
 * (tests/unit/) and the fuzz harness that plays the CA
 * (tests/fuzz/fuzz-rsp.c): the PKIMessage (RFC 4210, 5.1), whose protection
 * parameters and header fields OpenSSL 3.0 has no getters for, and the
 * values of genm/genp (RFC 9480) that OpenSSL 3.0 does not know.
 *
 * Independent of cmp/cmpc_asn1.c on purpose: the client encodes with its
 * own templates, and a bug there must be caught by the tests, not mirrored.
 * The CMP module has EXPLICIT tags; the CRMF parts mirror OpenSSL's crmf_asn.c.
 */
#ifndef P11ENROLL_TESTS_CMP_ASN1_H
#define P11ENROLL_TESTS_CMP_ASN1_H

#include <openssl/asn1.h>
#include <openssl/crmf.h>
#include <openssl/safestack.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* PKIHeader (RFC 4210, 5.1.1). */
typedef struct {
	ASN1_INTEGER *pvno;
	GENERAL_NAME *sender;
	GENERAL_NAME *recipient;
	ASN1_GENERALIZEDTIME *messageTime;
	X509_ALGOR *protectionAlg;
	ASN1_OCTET_STRING *senderKID;
	ASN1_OCTET_STRING *recipKID;
	ASN1_OCTET_STRING *transactionID;
	ASN1_OCTET_STRING *senderNonce;
	ASN1_OCTET_STRING *recipNonce;
	STACK_OF(ASN1_UTF8STRING) *freeText;
	STACK_OF(ASN1_TYPE) *generalInfo;
} TCMP_PKIHEADER;
DECLARE_ASN1_ITEM(TCMP_PKIHEADER)

/* PKIMessage (RFC 4210, 5.1). */
typedef struct {
	TCMP_PKIHEADER *header;
	ASN1_TYPE *body; /* a context-tagged CHOICE: kept encoded (V_ASN1_OTHER) */
	ASN1_BIT_STRING *protection;
	STACK_OF(X509) *extraCerts;
} TCMP_PKIMESSAGE;
DECLARE_ASN1_ITEM(TCMP_PKIMESSAGE)

/* ProtectedPart (RFC 4210, 5.1.3): what PBM and signature protection cover. */
typedef struct {
	TCMP_PKIHEADER *header;
	ASN1_TYPE *body;
} TCMP_PROTECTEDPART;
DECLARE_ASN1_ITEM(TCMP_PROTECTEDPART)

/* PBMParameter (RFC 4210, 5.1.3.1; RFC 4211, 4.4), the parameters of a
 * PasswordBasedMac protectionAlg. */
typedef struct {
	ASN1_OCTET_STRING *salt;
	X509_ALGOR *owf;
	ASN1_INTEGER *iterationCount;
	X509_ALGOR *mac;
} TCMP_PBMPARAMETER;
DECLARE_ASN1_ITEM(TCMP_PBMPARAMETER)

/* SEQUENCE OF Certificate, the value of id-it-caCerts (RFC 9480). */
typedef STACK_OF(X509) TCMP_CACERTS;
DECLARE_ASN1_ITEM(TCMP_CACERTS)

/* SEQUENCE SIZE (1..MAX) OF CertificateList, the value of id-it-crls (RFC 9480). */
typedef STACK_OF(X509_CRL) TCMP_CRLS;
DECLARE_ASN1_ITEM(TCMP_CRLS)

/* RootCaKeyUpdateContent (RFC 9480, 2.14), the value of id-it-rootCaKeyUpdate. */
typedef struct {
	X509 *newWithNew;
	X509 *newWithOld;
	X509 *oldWithNew;
} TCMP_ROOTCAKEYUPDATE;
DECLARE_ASN1_ITEM(TCMP_ROOTCAKEYUPDATE)

/* AttributeTypeAndValue (RFC 4211, 6), an element of keySpec (Controls). */
typedef struct {
	ASN1_OBJECT *type;
	ASN1_TYPE *value;
} TCMP_ATAV;
DECLARE_ASN1_ITEM(TCMP_ATAV)
DEFINE_STACK_OF(TCMP_ATAV)

/* CertReqTemplateContent (RFC 9480, 2.16), the value of id-it-certReqTemplate. */
typedef struct {
	OSSL_CRMF_CERTTEMPLATE *certTemplate;
	STACK_OF(TCMP_ATAV) *keySpec;
} TCMP_CERTREQTEMPLATE;
DECLARE_ASN1_ITEM(TCMP_CERTREQTEMPLATE)

/* CRLSource (RFC 9480): where a CRL comes from. */
typedef struct {
	int type;
	union {
		DIST_POINT_NAME *dpn;
		GENERAL_NAMES *issuer;
	} value;
} TCMP_CRLSOURCE;
DECLARE_ASN1_ITEM(TCMP_CRLSOURCE)

/* CRLStatus (RFC 9480), an element of the id-it-crlStatusList value. */
typedef struct {
	TCMP_CRLSOURCE *source;
	ASN1_TIME *thisUpdate;
} TCMP_CRLSTATUS;
DECLARE_ASN1_ITEM(TCMP_CRLSTATUS)
DEFINE_STACK_OF(TCMP_CRLSTATUS)

/* SEQUENCE SIZE (1..MAX) OF CRLStatus, the value of id-it-crlStatusList. */
typedef STACK_OF(TCMP_CRLSTATUS) TCMP_CRLSTATUSLIST;
DECLARE_ASN1_ITEM(TCMP_CRLSTATUSLIST)

/* EncryptedValue (RFC 4211 2.1): a private key in pkiArchiveOptions or a
 * CertifiedKeyPair, as the test CA reads and writes it. */
typedef struct {
	X509_ALGOR *intendedAlg, *symmAlg;
	ASN1_BIT_STRING *encSymmKey;
	X509_ALGOR *keyAlg;
	ASN1_OCTET_STRING *valueHint;
	ASN1_BIT_STRING *encValue;
} TCMP_ENCVAL;
DECLARE_ASN1_ITEM(TCMP_ENCVAL)

#endif
