/*
 * PBM (RFC 4210 5.1.3.1) protection of outgoing messages with the layer's
 * parameters.  OpenSSL 3.0 fixes the iteration count at 500 and has no
 * sender setter, so the transfer callback decodes the message OpenSSL
 * built, puts in a fresh PBMParameter (and the configured sender), and
 * recomputes the MAC over DER(ProtectedPart{header, body}) with the secret.
 * The message is read and written with the layer's ASN.1 templates
 * (cmpc_asn1.c); the body is kept as it was encoded.
 *
 * The key PBM derives from the secret (RFC 4211 4.4: the one-way function
 * over secret and salt, iterated) costs all its iterations (10,000 SHA-256
 * by default, some 2 ms) and the MAC then one HMAC.  A context keeps one
 * salt and the key derived with it, so that an enrollment's certConf and
 * a batch's messages cost an HMAC each.  One salt for the messages of one
 * secret gives an attacker nothing: a dictionary attack on any of them
 * finds the secret of all, and the salt's task is to make that work start
 * anew for each secret.
 */
#include "config.h"

#include <string.h>

#include <openssl/asn1t.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "cmp/cmpc-int.h"

int cmpc_msg_check_sender(const CMPC_HDR *h, const X509_NAME *expected, char *actual,
			  size_t actual_len)
{
	const GENERAL_NAME *s = h->sender;
	int ok = s->type == GEN_DIRNAME && X509_NAME_cmp(s->d.directoryName, expected) == 0;

	if (!ok && s->type == GEN_DIRNAME)
		X509_NAME_oneline(s->d.directoryName, actual, (int)actual_len);
	else if (!ok)
		snprintf(actual, actual_len, "(not a directory name)");
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

void cmpc_pbm_forget(cmpc_ctx *ctx)
{
	OPENSSL_free(ctx->pbm_param);
	ctx->pbm_param = NULL;
	ctx->pbm_param_len = 0;
	OPENSSL_cleanse(ctx->pbm_key, sizeof(ctx->pbm_key));
	ctx->pbm_key_len = 0;
}

/* The PBMParameter with a fresh salt, and the key derived with it. */
static int pbm_prepare(cmpc_ctx *ctx)
{
	CMPC_PBMP *p = NULL;
	EVP_MD *owf = NULL;
	EVP_MD_CTX *md = NULL;
	unsigned char salt[16];
	int i, ok = 0;

	if (ctx->pbm_key_len > 0)
		return 1;
	if (RAND_bytes(salt, sizeof(salt)) <= 0 ||
	    (p = (CMPC_PBMP *)ASN1_item_new(ASN1_ITEM_rptr(CMPC_PBMP))) == NULL ||
	    !ASN1_OCTET_STRING_set(p->salt, salt, sizeof(salt)) ||
	    !X509_ALGOR_set0(p->owf, OBJ_nid2obj(ctx->pbm_owf), V_ASN1_UNDEF, NULL) ||
	    !ASN1_INTEGER_set(p->iterationCount, ctx->pbm_iter) ||
	    !X509_ALGOR_set0(p->mac, OBJ_nid2obj(ctx->pbm_mac), V_ASN1_UNDEF, NULL) ||
	    (ctx->pbm_param_len =
		 ASN1_item_i2d((ASN1_VALUE *)p, &ctx->pbm_param, ASN1_ITEM_rptr(CMPC_PBMP))) <= 0)
		goto out;
	/* the first round over secret and salt, then over its own output */
	if ((owf = EVP_MD_fetch(NULL, OBJ_nid2sn(ctx->pbm_owf), NULL)) == NULL ||
	    (md = EVP_MD_CTX_new()) == NULL || !EVP_DigestInit_ex(md, owf, NULL) ||
	    !EVP_DigestUpdate(md, ctx->pbm_secret, ctx->pbm_secret_len) ||
	    !EVP_DigestUpdate(md, salt, sizeof(salt)) ||
	    !EVP_DigestFinal_ex(md, ctx->pbm_key, &ctx->pbm_key_len))
		goto out;
	for (i = 1; i < ctx->pbm_iter; i++)
		if (!EVP_DigestInit_ex(md, owf, NULL) ||
		    !EVP_DigestUpdate(md, ctx->pbm_key, ctx->pbm_key_len) ||
		    !EVP_DigestFinal_ex(md, ctx->pbm_key, &ctx->pbm_key_len))
			goto out;
	ok = 1;
out:
	if (!ok)
		cmpc_pbm_forget(ctx);
	EVP_MD_CTX_free(md);
	EVP_MD_free(owf);
	ASN1_item_free((ASN1_VALUE *)p, ASN1_ITEM_rptr(CMPC_PBMP));
	return ok;
}

/* HMAC with the key and the MAC algorithm's digest over data. */
static int pbm_mac(const cmpc_ctx *ctx, const unsigned char *data, size_t len, unsigned char *mac,
		   size_t *maclen)
{
	int hash_nid = NID_undef;

	return EVP_PBE_find(EVP_PBE_TYPE_PRF, ctx->pbm_mac, NULL, &hash_nid, NULL) &&
	       EVP_Q_mac(NULL, "HMAC", NULL, OBJ_nid2sn(hash_nid), NULL, ctx->pbm_key,
			 ctx->pbm_key_len, data, len, mac, EVP_MAX_MD_SIZE, maclen) != NULL;
}

int cmpc_pbm_reprotect(cmpc_ctx *ctx, unsigned char **der, int *derlen)
{
	CMPC_PKIMSG *m = NULL;
	CMPC_PROTPART pp;
	ASN1_STRING *param = NULL;
	ASN1_OBJECT *alg = NULL;
	unsigned char *ppder = NULL, *out = NULL, mac[EVP_MAX_MD_SIZE];
	size_t maclen = 0;
	int pplen, outlen, ret = 0;

	if (*derlen <= 0 || (m = cmpc_msg_decode(*der, (size_t)*derlen)) == NULL)
		goto out;
	if (m->header->protectionAlg == NULL ||
	    OBJ_obj2nid(m->header->protectionAlg->algorithm) != NID_id_PasswordBasedMAC ||
	    m->protection == NULL) {
		ret = 1; /* not PBM: left as OpenSSL made it */
		goto out;
	}
	if (ctx->pbm_secret == NULL || !pbm_prepare(ctx))
		goto out;
	if (ctx->sender != NULL && !set_sender(m->header, ctx->sender))
		goto out;
	if ((param = ASN1_STRING_new()) == NULL ||
	    !ASN1_STRING_set(param, ctx->pbm_param, ctx->pbm_param_len) ||
	    (alg = OBJ_nid2obj(NID_id_PasswordBasedMAC)) == NULL ||
	    !X509_ALGOR_set0(m->header->protectionAlg, alg, V_ASN1_SEQUENCE, param))
		goto out;
	param = NULL; /* owned by the AlgorithmIdentifier now */
	pp.header = m->header;
	pp.body = m->body;
	if ((pplen = ASN1_item_i2d((ASN1_VALUE *)&pp, &ppder, ASN1_ITEM_rptr(CMPC_PROTPART))) <=
		0 ||
	    !pbm_mac(ctx, ppder, (size_t)pplen, mac, &maclen) ||
	    !ASN1_BIT_STRING_set(m->protection, mac, (int)maclen))
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
	OPENSSL_free(ppder);
	ASN1_STRING_free(param);
	ASN1_item_free((ASN1_VALUE *)m, ASN1_ITEM_rptr(CMPC_PKIMSG));
	return ret;
}
