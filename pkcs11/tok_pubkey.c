/*
 * tok: public keys read from token objects, as OpenSSL EVP_PKEYs, and the
 * RFC 5280 key identifier used as CKA_ID.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "pkcs11/tok-int.h"

static EVP_PKEY *pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	EVP_PKEY *pkey = NULL;

	if (params == NULL || pctx == NULL || EVP_PKEY_fromdata_init(pctx) <= 0 ||
	    EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		pkey = NULL;
	EVP_PKEY_CTX_free(pctx);
	OSSL_PARAM_free(params);
	return pkey;
}

static EVP_PKEY *rsa_pub(const unsigned char *n, size_t nlen, const unsigned char *e, size_t elen)
{
	BIGNUM *bn = BN_bin2bn(n, (int)nlen, NULL), *be = BN_bin2bn(e, (int)elen, NULL);
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	EVP_PKEY *pkey = NULL;

	if (bn != NULL && be != NULL && bld != NULL &&
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) &&
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be))
		pkey = pkey_fromdata("RSA", bld);
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn);
	BN_free(be);
	return pkey;
}

/*
 * params: DER OID of a named curve.  point: the uncompressed point, raw or
 * wrapped in a DER OCTET STRING (PKCS#11 v2.20 says wrapped; SoftHSM
 * wraps; some modules do not).
 */
static EVP_PKEY *ec_pub(const unsigned char *params, size_t plen, const unsigned char *point,
			size_t ptlen)
{
	const unsigned char *p = params;
	ASN1_OBJECT *oid = d2i_ASN1_OBJECT(NULL, &p, (long)plen);
	ASN1_OCTET_STRING *os = NULL;
	EC_GROUP *group = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	EVP_PKEY *pkey = NULL;
	const char *name;
	size_t fieldlen;
	int nid;

	if (oid == NULL || p != params + plen)
		goto out;
	nid = OBJ_obj2nid(oid);
	name = OBJ_nid2sn(nid);
	group = EC_GROUP_new_by_curve_name(nid);
	if (nid == NID_undef || name == NULL || group == NULL)
		goto out;
	fieldlen = ((size_t)EC_GROUP_get_degree(group) + 7) / 8;
	if (!(ptlen == 1 + 2 * fieldlen && point[0] == 0x04)) {
		p = point;
		os = d2i_ASN1_OCTET_STRING(NULL, &p, (long)ptlen);
		if (os == NULL || p != point + ptlen)
			goto out;
		point = ASN1_STRING_get0_data(os);
		ptlen = (size_t)ASN1_STRING_length(os);
	}
	bld = OSSL_PARAM_BLD_new();
	if (bld != NULL &&
	    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, name, 0) &&
	    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, ptlen))
		pkey = pkey_fromdata("EC", bld);
out:
	OSSL_PARAM_BLD_free(bld);
	EC_GROUP_free(group);
	ASN1_OCTET_STRING_free(os);
	ASN1_OBJECT_free(oid);
	return pkey;
}

int tok_ec_params_bits(const unsigned char *params, size_t plen)
{
	const unsigned char *p = params;
	ASN1_OBJECT *oid = d2i_ASN1_OBJECT(NULL, &p, (long)plen);
	EC_GROUP *group = oid != NULL ? EC_GROUP_new_by_curve_name(OBJ_obj2nid(oid)) : NULL;
	int bits = group != NULL ? EC_GROUP_get_degree(group) : 0;

	EC_GROUP_free(group);
	ASN1_OBJECT_free(oid);
	return bits;
}

int tok_pubkey_equal(EVP_PKEY *a, EVP_PKEY *b)
{
	unsigned char *da = NULL, *db = NULL;
	int la, lb, eq;

	if (a == NULL || b == NULL)
		return 0;
	eq = EVP_PKEY_eq(a, b);
	if (eq >= 0)
		return eq == 1;
	/* -1/-2: types or key management differ; compare the encodings. */
	la = i2d_PUBKEY(a, &da);
	lb = i2d_PUBKEY(b, &db);
	eq = la > 0 && la == lb && memcmp(da, db, (size_t)la) == 0;
	OPENSSL_free(da);
	OPENSSL_free(db);
	return eq;
}

tok_rv tok_pubkey_from_object(tok_ctx *ctx, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
			      EVP_PKEY **ret_pkey)
{
	unsigned char *a = NULL, *b = NULL;
	CK_ULONG alen = 0, blen = 0, type = 0;
	EVP_PKEY *pkey = NULL;
	char what[96];
	CK_ATTRIBUTE ta = {CKA_KEY_TYPE, &type, sizeof(type)};
	CK_RV rv;

	/* A read that fails is the token's error, not a key of another type. */
	if ((rv = ctx->f->C_GetAttributeValue(s, h, &ta, 1)) != CKR_OK &&
	    rv != CKR_ATTRIBUTE_TYPE_INVALID) {
		snprintf(what, sizeof(what), "reading the key type on token '%s'", ctx->label);
		return tok_fail_ckr(ctx, what, rv, NULL);
	}
	if (rv != CKR_OK || ta.ulValueLen != sizeof(type))
		type = (CK_ULONG)-1;
	switch (type) {
	case CKK_RSA:
		rv = tok_attr_get(ctx, s, h, CKA_MODULUS, &a, &alen);
		if (rv == CKR_OK)
			rv = tok_attr_get(ctx, s, h, CKA_PUBLIC_EXPONENT, &b, &blen);
		if (rv == CKR_OK && alen > 0 && blen > 0)
			pkey = rsa_pub(a, alen, b, blen);
		break;
	case CKK_EC:
		rv = tok_attr_get(ctx, s, h, CKA_EC_PARAMS, &a, &alen);
		if (rv == CKR_OK)
			rv = tok_attr_get(ctx, s, h, CKA_EC_POINT, &b, &blen);
		if (rv == CKR_OK && alen > 0 && blen > 0)
			pkey = ec_pub(a, alen, b, blen);
		break;
	default:
		return tok_fail(ctx, TOK_ERR_DEVICE,
				"reading a public key on token '%s' failed: key type 0x%lx is not "
				"RSA or EC: use an RSA or EC key",
				ctx->label, (unsigned long)type);
	}
	OPENSSL_free(a);
	OPENSSL_free(b);
	if (rv != CKR_OK) {
		snprintf(what, sizeof(what), "reading a public key on token '%s'", ctx->label);
		return tok_fail_ckr(ctx, what, rv, NULL);
	}
	if (pkey == NULL)
		return tok_fail(ctx, TOK_ERR_DEVICE,
				"reading a public key on token '%s' failed: the token's key "
				"attributes are not a valid %s public key: report this to the "
				"module's maintainers",
				ctx->label, type == CKK_RSA ? "RSA" : "EC named-curve");
	*ret_pkey = pkey;
	return TOK_OK;
}

tok_rv tok_pubkey_by_id(tok_ctx *ctx, CK_SESSION_HANDLE s, const tok_id *id, EVP_PKEY **ret_pkey,
			CK_OBJECT_HANDLE *ret_priv)
{
	CK_OBJECT_HANDLE *hs = NULL, priv = CK_INVALID_HANDLE, from = CK_INVALID_HANDLE;
	CK_ULONG n = 0, npriv = 0;
	char hex[2 * TOK_ID_MAX + 1];
	tok_rv rv;

	if (tok_made_is(ctx, id)) {
		if (!EVP_PKEY_up_ref(ctx->made.pkey))
			return tok_fail(ctx, TOK_ERR_NOMEM, "out of memory");
		*ret_pkey = ctx->made.pkey;
		if (ret_priv != NULL)
			*ret_priv = ctx->made.priv;
		return TOK_OK;
	}

	/* private keys first, then public keys */
	if ((rv = tok_find_by_id(ctx, s, id, 0, &hs, &n, &npriv)) != TOK_OK)
		return rv;
	if (npriv > 0)
		priv = hs[0];
	if (n > npriv)
		from = hs[npriv];
	OPENSSL_free(hs);
	/* The public key object first; the private one when there is none (it
	 * may lack the public point: EC on SoftHSM).  A public key object that
	 * fails to read is that failure: reading the private one would hide it
	 * behind a missing attribute. */
	if (from == CK_INVALID_HANDLE)
		from = priv;
	if (from == CK_INVALID_HANDLE)
		return tok_fail(ctx, TOK_ERR_NOT_FOUND,
				"finding key id %s on token '%s' failed: no such key: list the "
				"token's objects to see which keys exist",
				tok_id_hex(id, hex, sizeof(hex)), ctx->label);
	if ((rv = tok_pubkey_from_object(ctx, s, from, ret_pkey)) == TOK_OK && ret_priv != NULL)
		*ret_priv = priv;
	return rv;
}

int tok_key_identifier(EVP_PKEY *pkey, tok_id *ret_id)
{
	X509_PUBKEY *xpk = NULL;
	const unsigned char *bits;
	unsigned char *der = NULL, point[256];
	size_t len = 0;
	int nbits, ok = 0;

	/* The subjectPublicKey's bits without the round trip through
	 * OpenSSL's encoders and decoders that X509_PUBKEY_set makes (most of
	 * what finding the id of a new key cost): an EC key's point as the
	 * key encodes it, an RSA key's RSAPublicKey. */
	if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_EC &&
	    EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point,
					    sizeof(point), &len)) {
		SHA1(point, len, ret_id->id);
		ret_id->len = SHA_DIGEST_LENGTH;
		return 1;
	}
	if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_RSA && (nbits = i2d_PublicKey(pkey, &der)) > 0) {
		SHA1(der, (size_t)nbits, ret_id->id);
		ret_id->len = SHA_DIGEST_LENGTH;
		OPENSSL_free(der);
		return 1;
	}
	if (X509_PUBKEY_set(&xpk, pkey) == 1 &&
	    X509_PUBKEY_get0_param(NULL, &bits, &nbits, NULL, xpk) == 1 && nbits > 0) {
		SHA1(bits, (size_t)nbits, ret_id->id);
		ret_id->len = SHA_DIGEST_LENGTH;
		ok = 1;
	}
	X509_PUBKEY_free(xpk);
	return ok;
}

tok_rv tok_key_find(tok_ctx *ctx, EVP_PKEY *pub, tok_id *ret_id)
{
	static const CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE tmpl[1] = {{CKA_CLASS, (void *)&cls, sizeof(cls)}};
	CK_OBJECT_HANDLE *hs = NULL;
	CK_SESSION_HANDLE s;
	CK_ULONG n = 0, i, len;
	unsigned char *v = NULL;
	char hex[2 * TOK_ID_MAX + 1], what[96];
	EVP_PKEY *pk;
	tok_id id, found;
	size_t matches = 0, unreadable = 0;
	tok_rv rv;
	CK_RV ckr;

	if (ctx == NULL || pub == NULL || ret_id == NULL)
		return TOK_ERR_CONFIG;
	tok_clear_err(ctx);
	memset(&found, 0, sizeof(found));
	if ((rv = tok_session_open(ctx, 0, &s)) != TOK_OK)
		return rv;
	if ((rv = tok_find_all(ctx, s, tmpl, 1, &hs, &n)) != TOK_OK)
		goto out;
	for (i = 0; i < n; i++) {
		if ((ckr = tok_attr_get(ctx, s, hs[i], CKA_ID, &v, &len)) != CKR_OK) {
			if (ckr == CKR_OBJECT_HANDLE_INVALID)
				continue; /* deleted since the search */
			snprintf(what, sizeof(what), "reading a key's CKA_ID on token '%s'",
				 ctx->label);
			rv = tok_fail_ckr(ctx, what, ckr, NULL);
			goto out;
		}
		/* a pair without an id cannot carry a certificate next to it */
		if (v == NULL || len == 0 || len > TOK_ID_MAX) {
			OPENSSL_free(v);
			v = NULL;
			continue;
		}
		memset(&id, 0, sizeof(id));
		memcpy(id.id, v, len);
		id.len = len;
		OPENSSL_free(v);
		v = NULL;
		pk = NULL;
		rv = tok_pubkey_by_id(ctx, s, &id, &pk, NULL);
		/* A pair whose public key cannot be read (no public key object,
		 * and a private key without the point, as SoftHSM2 keeps EC
		 * keys) is not it as far as can be told: the others count. */
		if (rv == TOK_ERR_DEVICE || rv == TOK_ERR_NOT_FOUND) {
			unreadable++;
			continue;
		}
		if (rv != TOK_OK)
			goto out;
		if (tok_pubkey_equal(pk, pub) &&
		    (matches == 0 || found.len != id.len || memcmp(found.id, id.id, id.len) != 0)) {
			found = id;
			matches++;
		}
		EVP_PKEY_free(pk);
	}
	if (matches == 0) {
		rv = tok_fail(ctx, TOK_ERR_NOT_FOUND,
			      "finding the key pair of a public key on token '%s' failed: no "
			      "private key on it has that public key%s",
			      ctx->label,
			      unreadable > 0 ? " (some pairs have no readable public key: "
					       "store their public key objects to have them compared)"
					     : "");
		goto out;
	}
	if (matches > 1) {
		rv = tok_fail(ctx, TOK_ERR_AMBIGUOUS,
			      "finding the key pair of a public key on token '%s' failed: %zu key "
			      "pairs carry it (one is id %s): delete the copies",
			      ctx->label, matches, tok_id_hex(&found, hex, sizeof(hex)));
		goto out;
	}
	*ret_id = found;
	rv = TOK_OK;
out:
	OPENSSL_free(hs);
	tok_session_close(ctx, s);
	return rv;
}
