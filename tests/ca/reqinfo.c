/*
 * What OpenSSL 3.0 does not expose of a request message: the protection
 * algorithm, senderKID, the signer certificate (first of extraCerts) and
 * the revocation reason of an rr.  Read from the DER with our own ASN.1
 * templates of PKIMessage (RFC 4210, 5.1; the CMP module has EXPLICIT tags).
 */
#include "config.h"

#include <string.h>

#include <openssl/asn1t.h>
#include <openssl/x509v3.h>

#include "tests/ca/testca.h"

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
} CA_HDR;

/* clang-format off */
ASN1_SEQUENCE(CA_HDR) = {
	ASN1_SIMPLE(CA_HDR, pvno, ASN1_INTEGER),
	ASN1_SIMPLE(CA_HDR, sender, GENERAL_NAME),
	ASN1_SIMPLE(CA_HDR, recipient, GENERAL_NAME),
	ASN1_EXP_OPT(CA_HDR, messageTime, ASN1_GENERALIZEDTIME, 0),
	ASN1_EXP_OPT(CA_HDR, protectionAlg, X509_ALGOR, 1),
	ASN1_EXP_OPT(CA_HDR, senderKID, ASN1_OCTET_STRING, 2),
	ASN1_EXP_OPT(CA_HDR, recipKID, ASN1_OCTET_STRING, 3),
	ASN1_EXP_OPT(CA_HDR, transactionID, ASN1_OCTET_STRING, 4),
	ASN1_EXP_OPT(CA_HDR, senderNonce, ASN1_OCTET_STRING, 5),
	ASN1_EXP_OPT(CA_HDR, recipNonce, ASN1_OCTET_STRING, 6),
	ASN1_EXP_SEQUENCE_OF_OPT(CA_HDR, freeText, ASN1_UTF8STRING, 7),
	ASN1_EXP_SEQUENCE_OF_OPT(CA_HDR, generalInfo, ASN1_ANY, 8),
} static_ASN1_SEQUENCE_END(CA_HDR)
/* clang-format on */

typedef struct {
	CA_HDR *header;
	ASN1_TYPE *body; /* a context-tagged CHOICE: kept encoded (V_ASN1_OTHER) */
	ASN1_BIT_STRING *protection;
	STACK_OF(X509) *extraCerts;
} CA_PKIMSG;

/* clang-format off */
ASN1_SEQUENCE(CA_PKIMSG) = {
	ASN1_SIMPLE(CA_PKIMSG, header, CA_HDR),
	ASN1_SIMPLE(CA_PKIMSG, body, ASN1_ANY),
	ASN1_EXP_OPT(CA_PKIMSG, protection, ASN1_BIT_STRING, 0),
	ASN1_EXP_SEQUENCE_OF_OPT(CA_PKIMSG, extraCerts, X509, 1),
} static_ASN1_SEQUENCE_END(CA_PKIMSG)
/* clang-format on */

typedef struct {
	ASN1_TYPE *certDetails;
	STACK_OF(X509_EXTENSION) *crlEntryDetails;
} CA_REVDETAILS;

/* clang-format off */
ASN1_SEQUENCE(CA_REVDETAILS) = {
	ASN1_SIMPLE(CA_REVDETAILS, certDetails, ASN1_ANY),
	ASN1_SEQUENCE_OF_OPT(CA_REVDETAILS, crlEntryDetails, X509_EXTENSION),
} static_ASN1_SEQUENCE_END(CA_REVDETAILS)
/* clang-format on */

/* The CRLReason of the first RevDetails of an rr body, or -1. */
static int rr_reason(const ASN1_TYPE *body)
{
	const unsigned char *p, *q;
	long len;
	int tag, xclass, reason = -1;
	STACK_OF(ASN1_TYPE) *seq = NULL;
	ASN1_TYPE *first;
	CA_REVDETAILS *rd = NULL;
	ASN1_ENUMERATED *e = NULL;

	if (body->type != V_ASN1_OTHER)
		return -1;
	p = body->value.asn1_string->data;
	len = body->value.asn1_string->length;
	if (ASN1_get_object(&p, &len, &tag, &xclass, len) & 0x80 || tag != CA_BODY_RR)
		return -1;
	if ((seq = d2i_ASN1_SEQUENCE_ANY(NULL, &p, len)) == NULL || sk_ASN1_TYPE_num(seq) < 1)
		goto done;
	first = sk_ASN1_TYPE_value(seq, 0);
	if (first->type != V_ASN1_SEQUENCE)
		goto done;
	q = first->value.sequence->data;
	rd = (CA_REVDETAILS *)ASN1_item_d2i(NULL, &q, first->value.sequence->length,
					    ASN1_ITEM_rptr(CA_REVDETAILS));
	if (rd == NULL || rd->crlEntryDetails == NULL)
		goto done;
	e = X509V3_get_d2i(rd->crlEntryDetails, NID_crl_reason, NULL, NULL);
	if (e != NULL)
		reason = (int)ASN1_ENUMERATED_get(e);
done:
	ASN1_ENUMERATED_free(e);
	ASN1_item_free((ASN1_VALUE *)rd, ASN1_ITEM_rptr(CA_REVDETAILS));
	sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
	return reason;
}

int ca_reqinfo_get(const unsigned char *der, size_t len, struct ca_reqinfo *ri)
{
	const unsigned char *p = der;
	CA_PKIMSG *m;
	CA_HDR *h;

	memset(ri, 0, sizeof(*ri));
	ri->prot = CA_PROT_NONE;
	ri->rr_reason = -1;
	if (len > 0x7fffffff)
		return 0;
	m = (CA_PKIMSG *)ASN1_item_d2i(NULL, &p, (long)len, ASN1_ITEM_rptr(CA_PKIMSG));
	if (m == NULL)
		return 0;
	h = m->header;
	if (h->protectionAlg != NULL)
		ri->prot = OBJ_obj2nid(h->protectionAlg->algorithm) == NID_id_PasswordBasedMAC
				   ? CA_PROT_PBM
				   : CA_PROT_SIG;
	if (h->senderKID != NULL && h->senderKID->length <= (int)sizeof(ri->kid)) {
		memcpy(ri->kid, h->senderKID->data, (size_t)h->senderKID->length);
		ri->kid_len = h->senderKID->length;
		ri->has_kid = 1;
	}
	if (ri->prot == CA_PROT_SIG && sk_X509_num(m->extraCerts) > 0) {
		ri->signer = sk_X509_value(m->extraCerts, 0);
		X509_up_ref(ri->signer);
	}
	ri->rr_reason = rr_reason(m->body);
	ASN1_item_free((ASN1_VALUE *)m, ASN1_ITEM_rptr(CA_PKIMSG));
	return 1;
}

void ca_reqinfo_clear(struct ca_reqinfo *ri)
{
	X509_free(ri->signer);
	OPENSSL_cleanse(ri, sizeof(*ri));
	ri->rr_reason = -1;
}
