/*
 * What OpenSSL 3.0 does not expose of a request message: the protection
 * algorithm, senderKID, the signer certificate (first of extraCerts) and
 * the revocation reason of an rr.  Read from the DER with the tests' own
 * ASN.1 templates of PKIMessage (tests/common/cmp-asn1.h, shared with the
 * unit tests) and those below, which only the CA needs.  Kept apart from
 * cmp/cmpc_asn1.c on purpose: a client ASN.1 bug must not be mirrored by the CA.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <openssl/asn1t.h>
#include <openssl/x509v3.h>

#include "tests/ca/testca.h"
#include "tests/common/cmp-asn1.h"

/* RevDetails (RFC 4210, 5.3.9), the first of an rr's RevReqContent. */
typedef struct {
	ASN1_TYPE *certDetails;
	STACK_OF(X509_EXTENSION) *crlEntryDetails;
} CA_REVDETAILS;

ASN1_SEQUENCE(CA_REVDETAILS) = {
	ASN1_SIMPLE(CA_REVDETAILS, certDetails, ASN1_ANY),
	ASN1_SEQUENCE_OF_OPT(CA_REVDETAILS, crlEntryDetails, X509_EXTENSION),
} static_ASN1_SEQUENCE_END(CA_REVDETAILS)

/* InfoTypeAndValue (RFC 4210, 5.3.19). */
typedef struct {
	ASN1_OBJECT *type;
	ASN1_TYPE *value;
} CA_ITAV;

ASN1_SEQUENCE(CA_ITAV) = {
	ASN1_SIMPLE(CA_ITAV, type, ASN1_OBJECT),
	ASN1_OPT(CA_ITAV, value, ASN1_ANY),
} static_ASN1_SEQUENCE_END(CA_ITAV)

/* A directoryName as "/CN=x/O=y", anything else as "-". */
static void name_text(const GENERAL_NAME *gn, char *out, size_t len)
{
	snprintf(out, len, "-");
	if (gn != NULL && gn->type == GEN_DIRNAME && X509_NAME_entry_count(gn->d.dirn) > 0)
		X509_NAME_oneline(gn->d.dirn, out, (int)len);
}

/* "owf,mac,iterations" by short names, from the PBM protectionAlg. */
static void pbm_text(const X509_ALGOR *alg, char *out, size_t len)
{
	const ASN1_OBJECT *oid;
	const void *pval;
	int ptype;
	const unsigned char *p;
	TCMP_PBMPARAMETER *pp;

	X509_ALGOR_get0(&oid, &ptype, &pval, alg);
	if (OBJ_obj2nid(oid) != NID_id_PasswordBasedMAC || ptype != V_ASN1_SEQUENCE)
		return;
	p = ((const ASN1_STRING *)pval)->data;
	pp = (TCMP_PBMPARAMETER *)ASN1_item_d2i(NULL, &p, ((const ASN1_STRING *)pval)->length,
					  ASN1_ITEM_rptr(TCMP_PBMPARAMETER));
	if (pp == NULL)
		return;
	snprintf(out, len, "%s,%s,%ld", OBJ_nid2sn(OBJ_obj2nid(pp->owf->algorithm)),
		 OBJ_nid2sn(OBJ_obj2nid(pp->mac->algorithm)), ASN1_INTEGER_get(pp->iterationCount));
	ASN1_item_free((ASN1_VALUE *)pp, ASN1_ITEM_rptr(TCMP_PBMPARAMETER));
}

/* certProfile (the first UTF8String of its SEQUENCE) and implicitConfirm. */
static void general_info(const STACK_OF(ASN1_TYPE) *gi, struct ca_reqinfo *ri)
{
	int i;

	for (i = 0; i < sk_ASN1_TYPE_num(gi); i++) {
		const ASN1_TYPE *t = sk_ASN1_TYPE_value(gi, i);
		const unsigned char *p;
		CA_ITAV *itav;
		STACK_OF(ASN1_TYPE) *names = NULL;
		char oid[64];

		if (t->type != V_ASN1_SEQUENCE)
			continue;
		p = t->value.sequence->data;
		itav = (CA_ITAV *)ASN1_item_d2i(NULL, &p, t->value.sequence->length,
					       ASN1_ITEM_rptr(CA_ITAV));
		if (itav == NULL)
			continue;
		/* id-it-certProfile (RFC 9480): no NID in OpenSSL 3.0 */
		OBJ_obj2txt(oid, sizeof(oid), itav->type, 1);
		if (OBJ_obj2nid(itav->type) == NID_id_it_implicitConfirm) {
			ri->implicit = 1;
		} else if (strcmp(oid, "1.3.6.1.5.5.7.4.21") == 0) {
			if (itav->value != NULL && itav->value->type == V_ASN1_SEQUENCE) {
				p = itav->value->value.sequence->data;
				names = d2i_ASN1_SEQUENCE_ANY(NULL, &p,
							      itav->value->value.sequence->length);
			}
			if (sk_ASN1_TYPE_num(names) > 0 &&
			    sk_ASN1_TYPE_value(names, 0)->type == V_ASN1_UTF8STRING) {
				const ASN1_STRING *u = sk_ASN1_TYPE_value(names, 0)->value.utf8string;

				snprintf(ri->profile, sizeof(ri->profile), "%.*s", u->length,
					 (const char *)u->data);
			}
			sk_ASN1_TYPE_pop_free(names, ASN1_TYPE_free);
		}
		ASN1_item_free((ASN1_VALUE *)itav, ASN1_ITEM_rptr(CA_ITAV));
	}
}

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
	TCMP_PKIMESSAGE *m;
	TCMP_PKIHEADER *h;

	memset(ri, 0, sizeof(*ri));
	ri->prot = CA_PROT_NONE;
	ri->rr_reason = -1;
	snprintf(ri->sender, sizeof(ri->sender), "-");
	snprintf(ri->recipient, sizeof(ri->recipient), "-");
	snprintf(ri->profile, sizeof(ri->profile), "-");
	snprintf(ri->pbm, sizeof(ri->pbm), "-");
	if (len > 0x7fffffff)
		return 0;
	m = (TCMP_PKIMESSAGE *)ASN1_item_d2i(NULL, &p, (long)len, ASN1_ITEM_rptr(TCMP_PKIMESSAGE));
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
	name_text(h->sender, ri->sender, sizeof(ri->sender));
	name_text(h->recipient, ri->recipient, sizeof(ri->recipient));
	if (h->protectionAlg != NULL)
		pbm_text(h->protectionAlg, ri->pbm, sizeof(ri->pbm));
	general_info(h->generalInfo, ri);
	ASN1_item_free((ASN1_VALUE *)m, ASN1_ITEM_rptr(TCMP_PKIMESSAGE));
	return 1;
}

void ca_reqinfo_clear(struct ca_reqinfo *ri)
{
	X509_free(ri->signer);
	OPENSSL_cleanse(ri, sizeof(*ri));
	ri->rr_reason = -1;
}

/* CertifiedKeyPair, CertResponse, CertRepMessage (RFC 4210, 5.3.4): what the edits need. */
typedef struct {
	ASN1_TYPE *certOrEncCert; /* CHOICE of [0] and [1]: kept encoded */
	ASN1_TYPE *privateKey;
	ASN1_TYPE *publicationInfo;
} CA_CERTIFIEDKEYPAIR;

ASN1_SEQUENCE(CA_CERTIFIEDKEYPAIR) = {
	ASN1_SIMPLE(CA_CERTIFIEDKEYPAIR, certOrEncCert, ASN1_ANY),
	ASN1_EXP_OPT(CA_CERTIFIEDKEYPAIR, privateKey, ASN1_ANY, 0),
	ASN1_EXP_OPT(CA_CERTIFIEDKEYPAIR, publicationInfo, ASN1_ANY, 1),
} static_ASN1_SEQUENCE_END(CA_CERTIFIEDKEYPAIR)

typedef struct {
	ASN1_INTEGER *certReqId;
	STACK_OF(ASN1_TYPE) *status;
	CA_CERTIFIEDKEYPAIR *certifiedKeyPair;
	ASN1_OCTET_STRING *rspInfo;
} CA_CERTRESPONSE;

ASN1_SEQUENCE(CA_CERTRESPONSE) = {
	ASN1_SIMPLE(CA_CERTRESPONSE, certReqId, ASN1_INTEGER),
	ASN1_SIMPLE(CA_CERTRESPONSE, status, ASN1_SEQUENCE_ANY),
	ASN1_OPT(CA_CERTRESPONSE, certifiedKeyPair, CA_CERTIFIEDKEYPAIR),
	ASN1_OPT(CA_CERTRESPONSE, rspInfo, ASN1_OCTET_STRING),
} static_ASN1_SEQUENCE_END(CA_CERTRESPONSE)

DEFINE_STACK_OF(CA_CERTRESPONSE)

typedef struct {
	STACK_OF(X509) *caPubs;
	STACK_OF(CA_CERTRESPONSE) *response;
} CA_CERTREP;

ASN1_SEQUENCE(CA_CERTREP) = {
	ASN1_EXP_SEQUENCE_OF_OPT(CA_CERTREP, caPubs, X509, 1),
	ASN1_SEQUENCE_OF(CA_CERTREP, response, CA_CERTRESPONSE),
} static_ASN1_SEQUENCE_END(CA_CERTREP)

/* PollRepContent (RFC 4210, 5.3.22). */
typedef struct {
	ASN1_INTEGER *certReqId;
	ASN1_INTEGER *checkAfter;
	STACK_OF(ASN1_UTF8STRING) *reason;
} CA_POLLREP;

ASN1_SEQUENCE(CA_POLLREP) = {
	ASN1_SIMPLE(CA_POLLREP, certReqId, ASN1_INTEGER),
	ASN1_SIMPLE(CA_POLLREP, checkAfter, ASN1_INTEGER),
	ASN1_SEQUENCE_OF_OPT(CA_POLLREP, reason, ASN1_UTF8STRING),
} static_ASN1_SEQUENCE_END(CA_POLLREP)

DEFINE_STACK_OF(CA_POLLREP)
typedef STACK_OF(CA_POLLREP) CA_POLLREPCONTENT;

ASN1_ITEM_TEMPLATE(CA_POLLREPCONTENT) =
	ASN1_EX_TEMPLATE_TYPE(ASN1_TFLG_SEQUENCE_OF, 0, CA_POLLREPCONTENT, CA_POLLREP)
static_ASN1_ITEM_TEMPLATE_END(CA_POLLREPCONTENT)

static int shift_id(ASN1_INTEGER *id, int delta)
{
	int64_t v;

	return ASN1_INTEGER_get_int64(&v, id) && ASN1_INTEGER_set_int64(id, v + delta);
}

/* The content of a body edited by e, or NULL: a CertRepMessage (certReqIds,
 * caPubs) or a pollRep (certReqIds). */
static ASN1_VALUE *edit_content(int tag, const unsigned char *p, long len, const struct ca_edit *e,
				const ASN1_ITEM **ret_it)
{
	CA_CERTREP *rep;
	CA_POLLREPCONTENT *polls;
	int i;

	if (tag == CA_BODY_POLLREP) {
		*ret_it = ASN1_ITEM_rptr(CA_POLLREPCONTENT);
		if ((polls = (CA_POLLREPCONTENT *)ASN1_item_d2i(NULL, &p, len, *ret_it)) == NULL)
			return NULL;
		for (i = 0; i < sk_CA_POLLREP_num(polls); i++)
			if (!shift_id(sk_CA_POLLREP_value(polls, i)->certReqId, e->certreqid_delta))
				goto bad_polls;
		return (ASN1_VALUE *)polls;
bad_polls:
		ASN1_item_free((ASN1_VALUE *)polls, *ret_it);
		return NULL;
	}
	*ret_it = ASN1_ITEM_rptr(CA_CERTREP);
	if ((rep = (CA_CERTREP *)ASN1_item_d2i(NULL, &p, len, *ret_it)) == NULL)
		return NULL;
	for (i = 0; e->certreqid_delta != 0 && i < sk_CA_CERTRESPONSE_num(rep->response); i++)
		if (!shift_id(sk_CA_CERTRESPONSE_value(rep->response, i)->certReqId,
			      e->certreqid_delta))
			goto bad_rep;
	if (e->privkey != NULL && sk_CA_CERTRESPONSE_num(rep->response) > 0 &&
	    sk_CA_CERTRESPONSE_value(rep->response, 0)->certifiedKeyPair != NULL) {
		CA_CERTIFIEDKEYPAIR *ckp = sk_CA_CERTRESPONSE_value(rep->response, 0)->certifiedKeyPair;

		ASN1_TYPE_free(ckp->privateKey);
		if ((ckp->privateKey = ASN1_TYPE_new()) == NULL ||
		    !ASN1_TYPE_set1(ckp->privateKey, e->privkey->type,
				    e->privkey->type == V_ASN1_BOOLEAN
					    ? NULL
					    : (const void *)e->privkey->value.ptr))
			goto bad_rep;
	}
	if (e->capubs != NULL) {
		sk_X509_pop_free(rep->caPubs, X509_free);
		if ((rep->caPubs = X509_chain_up_ref(e->capubs)) == NULL)
			goto bad_rep;
	}
	return (ASN1_VALUE *)rep;
bad_rep:
	ASN1_item_free((ASN1_VALUE *)rep, *ret_it);
	return NULL;
}

/* The body's content (p, len: inside its [tag]) under the tag new_tag. */
static int retag_body(ASN1_TYPE *body, const unsigned char *p, long len, int new_tag)
{
	int total = ASN1_object_size(1, (int)len, new_tag), ok;
	unsigned char *buf, *w;

	if (total <= 0 || (buf = OPENSSL_malloc((size_t)total)) == NULL)
		return 0;
	w = buf;
	ASN1_put_object(&w, 1, (int)len, new_tag, V_ASN1_CONTEXT_SPECIFIC);
	memcpy(w, p, (size_t)len);
	ok = ASN1_STRING_set(body->value.asn1_string, buf, total);
	OPENSSL_free(buf);
	return ok;
}

/* Rewrites the CertRepMessage inside an ip/cp/kup body, or the pollRep
 * (kept as raw TLV); a CertRepMessage may change its body type too. */
static int edit_body(ASN1_TYPE *body, const struct ca_edit *e)
{
	const unsigned char *p;
	long len;
	int tag, xclass, ret, dlen, total, ok = 0, certrep;
	const ASN1_ITEM *it = NULL;
	ASN1_VALUE *content = NULL;
	unsigned char *der = NULL, *buf = NULL, *w;

	if (body->type != V_ASN1_OTHER)
		return 0;
	p = body->value.asn1_string->data;
	len = body->value.asn1_string->length;
	ret = ASN1_get_object(&p, &len, &tag, &xclass, len);
	if ((ret & 0x80) || !(ret & V_ASN1_CONSTRUCTED) || xclass != V_ASN1_CONTEXT_SPECIFIC)
		return 1;
	certrep = tag == CA_BODY_IP || tag == CA_BODY_CP || tag == CA_BODY_KUP;
	if (e->retag > 0 &&
	    (!certrep || (e->certreqid_delta == 0 && e->capubs == NULL && e->privkey == NULL)))
		return retag_body(body, p, len, e->retag - 1);
	if (!certrep && (tag != CA_BODY_POLLREP || e->certreqid_delta == 0))
		return 1; /* nothing to edit */
	if ((content = edit_content(tag, p, len, e, &it)) == NULL)
		return 0;
	if ((dlen = ASN1_item_i2d(content, &der, it)) <= 0)
		goto done;
	if (certrep && e->swap_body)
		tag = tag == CA_BODY_IP ? CA_BODY_CP : CA_BODY_IP;
	if (e->retag > 0) /* a ccp with its faults */
		tag = e->retag - 1;
	total = ASN1_object_size(1, dlen, tag);
	if (total <= 0 || (buf = OPENSSL_malloc((size_t)total)) == NULL)
		goto done;
	w = buf;
	ASN1_put_object(&w, 1, dlen, tag, V_ASN1_CONTEXT_SPECIFIC);
	memcpy(w, der, (size_t)dlen);
	ok = ASN1_STRING_set(body->value.asn1_string, buf, total);
done:
	OPENSSL_free(buf);
	OPENSSL_free(der);
	ASN1_item_free(content, it);
	return ok;
}

int ca_body_edit(ASN1_TYPE *body, const struct ca_edit *e)
{
	return edit_body(body, e);
}

/*
 * Decodes msg with our own templates, applies e, encodes it again.  The
 * header and body edits break the protection: the caller protects again.
 * extraCerts are outside the protection.
 */
OSSL_CMP_MSG *ca_msg_edit(const OSSL_CMP_MSG *msg, const struct ca_edit *e)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	int len, i;
	TCMP_PKIMESSAGE *m = NULL;
	OSSL_CMP_MSG *out = NULL;
	GENERAL_NAME *gn = NULL;

	if ((len = i2d_OSSL_CMP_MSG(msg, &der)) <= 0)
		return NULL;
	p = der;
	m = (TCMP_PKIMESSAGE *)ASN1_item_d2i(NULL, &p, len, ASN1_ITEM_rptr(TCMP_PKIMESSAGE));
	OPENSSL_free(der);
	der = NULL;
	if (m == NULL)
		return NULL;
	if (e->sender != NULL) {
		if ((gn = GENERAL_NAME_new()) == NULL ||
		    (gn->d.directoryName = X509_NAME_dup(e->sender)) == NULL)
			goto done;
		gn->type = GEN_DIRNAME;
		GENERAL_NAME_free(m->header->sender);
		m->header->sender = gn;
		gn = NULL;
	}
	if ((e->certreqid_delta != 0 || e->capubs != NULL || e->swap_body || e->retag > 0 ||
	     e->privkey != NULL) &&
	    !edit_body(m->body, e))
		goto done;
	if (e->unprotect) {
		X509_ALGOR_free(m->header->protectionAlg);
		m->header->protectionAlg = NULL;
		ASN1_BIT_STRING_free(m->protection);
		m->protection = NULL;
	}
	for (i = 0; i < sk_X509_num(e->extra); i++) {
		if (m->extraCerts == NULL && (m->extraCerts = sk_X509_new_null()) == NULL)
			goto done;
		if (!X509_add_cert(m->extraCerts, sk_X509_value(e->extra, i), X509_ADD_FLAG_UP_REF))
			goto done;
	}
	if ((len = ASN1_item_i2d((ASN1_VALUE *)m, &der, ASN1_ITEM_rptr(TCMP_PKIMESSAGE))) <= 0)
		goto done;
	p = der;
	out = d2i_OSSL_CMP_MSG(NULL, &p, len);
done:
	GENERAL_NAME_free(gn);
	OPENSSL_free(der);
	ASN1_item_free((ASN1_VALUE *)m, ASN1_ITEM_rptr(TCMP_PKIMESSAGE));
	return out;
}
