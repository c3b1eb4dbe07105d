/*
 * PBM (RFC 4210 5.1.3.1) protection of outgoing messages with the layer's
 * parameters.  OpenSSL 3.0 fixes the iteration count at 500 and has no
 * sender setter, so the transfer callback decodes the message OpenSSL
 * built, puts in a fresh PBMParameter (and the configured sender), and
 * recomputes the MAC over DER(ProtectedPart{header, body}) with the secret.
 * The message is read and written with the layer's ASN.1 templates
 * (cmpc_asn1.c); the body is kept as it was encoded.
 */
#include "config.h"

#include <string.h>

#include <openssl/asn1t.h>
#include <openssl/crmf.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "cmp/cmpc-int.h"

int cmpc_pbm_msg_protected(const unsigned char *der, size_t len)
{
	CMPC_PKIMSG *m = cmpc_msg_decode(der, len);
	int prot;

	if (m == NULL) {
		ERR_clear_error();
		return -1;
	}
	prot = m->protection != NULL && m->header->protectionAlg != NULL;
	ASN1_item_free((ASN1_VALUE *)m, ASN1_ITEM_rptr(CMPC_PKIMSG));
	return prot;
}

int cmpc_msg_check_sender(const unsigned char *der, size_t len, const X509_NAME *expected,
			  char *actual, size_t actual_len)
{
	CMPC_PKIMSG *m = cmpc_msg_decode(der, len);
	const GENERAL_NAME *s;
	int ok;

	if (m == NULL) {
		ERR_clear_error();
		snprintf(actual, actual_len, "(undecodable)");
		return 0;
	}
	s = m->header->sender;
	ok = s->type == GEN_DIRNAME && X509_NAME_cmp(s->d.directoryName, expected) == 0;
	if (!ok && s->type == GEN_DIRNAME)
		X509_NAME_oneline(s->d.directoryName, actual, (int)actual_len);
	else if (!ok)
		snprintf(actual, actual_len, "(not a directory name)");
	ASN1_item_free((ASN1_VALUE *)m, ASN1_ITEM_rptr(CMPC_PKIMSG));
	return ok;
}

static int set_sender(CMPC_HDR *h, const X509_NAME *name)
{
	GENERAL_NAME *gn = GENERAL_NAME_new();
	X509_NAME *copy = X509_NAME_dup(name);

	if (gn == NULL || copy == NULL) {
		GENERAL_NAME_free(gn);
		X509_NAME_free(copy);
		return 0;
	}
	GENERAL_NAME_set0_value(gn, GEN_DIRNAME, copy);
	GENERAL_NAME_free(h->sender);
	h->sender = gn;
	return 1;
}

int cmpc_pbm_reprotect(cmpc_ctx *ctx, unsigned char **der, int *derlen)
{
	CMPC_PKIMSG *m = NULL;
	CMPC_PROTPART pp;
	OSSL_CRMF_PBMPARAMETER *pbmp = NULL;
	ASN1_STRING *param = NULL;
	ASN1_OBJECT *alg = NULL;
	unsigned char *pder = NULL, *ppder = NULL, *mac = NULL, *out = NULL;
	size_t maclen = 0;
	int plen, pplen, outlen, ret = 0;

	if (*derlen <= 0 || (m = cmpc_msg_decode(*der, (size_t)*derlen)) == NULL)
		goto out;
	if (m->header->protectionAlg == NULL ||
	    OBJ_obj2nid(m->header->protectionAlg->algorithm) != NID_id_PasswordBasedMAC ||
	    m->protection == NULL) {
		ret = 1; /* not PBM: left as OpenSSL made it */
		goto out;
	}
	if (ctx->pbm_secret == NULL)
		goto out;
	if (ctx->sender != NULL && !set_sender(m->header, ctx->sender))
		goto out;
	if ((pbmp = OSSL_CRMF_pbmp_new(NULL, 16, ctx->pbm_owf, (size_t)ctx->pbm_iter,
				       ctx->pbm_mac)) == NULL ||
	    (plen = i2d_OSSL_CRMF_PBMPARAMETER(pbmp, &pder)) <= 0 ||
	    (param = ASN1_STRING_new()) == NULL || !ASN1_STRING_set(param, pder, plen) ||
	    (alg = OBJ_nid2obj(NID_id_PasswordBasedMAC)) == NULL ||
	    !X509_ALGOR_set0(m->header->protectionAlg, alg, V_ASN1_SEQUENCE, param))
		goto out;
	param = NULL; /* owned by the AlgorithmIdentifier now */
	pp.header = m->header;
	pp.body = m->body;
	if ((pplen = ASN1_item_i2d((ASN1_VALUE *)&pp, &ppder, ASN1_ITEM_rptr(CMPC_PROTPART))) <=
		0 ||
	    !OSSL_CRMF_pbm_new(NULL, NULL, pbmp, ppder, (size_t)pplen, ctx->pbm_secret,
			       ctx->pbm_secret_len, &mac, &maclen) ||
	    maclen > 0x7fffffff || !ASN1_BIT_STRING_set(m->protection, mac, (int)maclen))
		goto out;
	m->protection->flags &= ~(ASN1_STRING_FLAG_BITS_LEFT | 0x07);
	m->protection->flags |= ASN1_STRING_FLAG_BITS_LEFT;
	if ((outlen = ASN1_item_i2d((ASN1_VALUE *)m, &out, ASN1_ITEM_rptr(CMPC_PKIMSG))) <= 0)
		goto out;
	OPENSSL_free(*der);
	*der = out;
	*derlen = outlen;
	out = NULL;
	ret = 1;
out:
	ERR_clear_error();
	OPENSSL_free(out);
	OPENSSL_free(mac);
	OPENSSL_free(ppder);
	OPENSSL_free(pder);
	ASN1_STRING_free(param);
	OSSL_CRMF_PBMPARAMETER_free(pbmp);
	ASN1_item_free((ASN1_VALUE *)m, ASN1_ITEM_rptr(CMPC_PKIMSG));
	return ret;
}
