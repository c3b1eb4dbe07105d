/*
 * tok: private keys as EVP_PKEYs whose signatures the token makes with
 * C_Sign on the context's own session.
 *
 * libp11 0.4.12 hands out a key only from PKCS11_enumerate_keys, which
 * reads every key on the token: on an HSM holding thousands of keys each
 * enrollment would read them all.  Here the key is found by a template and
 * wrapped directly.  OpenSSL 3.0 runs a key whose EC_KEY_METHOD or
 * RSA_METHOD is not its own through its legacy code ("foreign" keys), as it
 * does libp11's; those method APIs are deprecated in 3.0, hence the macro.
 */
#include "config.h"

#define OPENSSL_SUPPRESS_DEPRECATED 1

#include <stdio.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/engine.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "pkcs11/tok-int.h"

/* What a wrapped key needs to sign: the context (NULL once it is freed)
 * and the private key object.  Linked into ctx->signers so that tok_free
 * can cut the tie of keys that outlive it. */
struct tok_signer {
	tok_ctx *ctx;
	CK_OBJECT_HANDLE h;
	int no_hash_mech; /* the token lacks a hash-and-sign mechanism asked */
	struct tok_signer *next;
};

static CRYPTO_ONCE once = CRYPTO_ONCE_STATIC_INIT;
static int ec_idx = -1, rsa_idx = -1;
static EC_KEY_METHOD *ec_meth;
static RSA_METHOD *rsa_meth;
/* An RSA EVP_PKEY_METHOD with a one-shot digestsign, reached only through
 * an ENGINE of our own that the wrapped RSA keys name (see rsa_digestsign);
 * registering it globally would put every RSA key of the process, the
 * module's own included, on the legacy path. */
static EVP_PKEY_METHOD *rsa_pmeth;
static int (*rsa_def_sign)(EVP_PKEY_CTX *, unsigned char *, size_t *, const unsigned char *,
			   size_t);
static ENGINE *rsa_engine;

static void unlink_signer(struct tok_signer *k)
{
	struct tok_signer **p;

	if (k->ctx == NULL)
		return;
	for (p = &k->ctx->signers; *p != NULL; p = &(*p)->next)
		if (*p == k) {
			*p = k->next;
			break;
		}
	k->ctx = NULL;
}

static void signer_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
			void *argp)
{
	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	if (ptr == NULL)
		return;
	unlink_signer(ptr);
	OPENSSL_free(ptr);
}

/*
 * One C_SignInit + C_Sign of in with mech; *outlen is the room in out and
 * then the signature's length.  A failure is said on OpenSSL's error queue
 * (the CMP layer reports it) and in the context's error text.
 */
static int token_sign_rv(struct tok_signer *k, CK_MECHANISM_TYPE mech, const unsigned char *in,
			 size_t inlen, unsigned char *out, CK_ULONG *outlen, CK_RV *ret_rv);

static int token_sign(struct tok_signer *k, CK_MECHANISM_TYPE mech, const unsigned char *in,
		      size_t inlen, unsigned char *out, CK_ULONG *outlen)
{
	CK_RV rv;

	return token_sign_rv(k, mech, in, inlen, out, outlen, &rv);
}

/* token_sign, and the CKR in *ret_rv (CKR_OK when it signed). */
static int token_sign_rv(struct tok_signer *k, CK_MECHANISM_TYPE mech, const unsigned char *in,
			 size_t inlen, unsigned char *out, CK_ULONG *outlen, CK_RV *ret_rv)
{
	CK_MECHANISM m = {mech, NULL, 0};
	tok_ctx *ctx = k->ctx;
	const char *todo = NULL;
	char what[96];
	CK_RV rv;

	if (ctx == NULL || ctx->f == NULL || !ctx->have_anchor) {
		ERR_raise_data(ERR_LIB_USER, ERR_R_PASSED_INVALID_ARGUMENT,
			       "the token of this key was closed");
		return 0;
	}
	rv = ctx->f->C_SignInit(ctx->anchor, &m, k->h);
	/* a hash-and-sign mechanism the token lacks: the caller signs the
	 * digest instead (rsa_digestsign) */
	*ret_rv = rv;
	if (rv == CKR_MECHANISM_INVALID && mech != CKM_RSA_PKCS && mech != CKM_RSA_X_509 &&
	    mech != CKM_ECDSA)
		return 0;
	if (rv == CKR_OK)
		rv = ctx->f->C_Sign(ctx->anchor, (CK_BYTE_PTR)in, (CK_ULONG)inlen, out, outlen);
	*ret_rv = rv;
	if (rv != CKR_OK) {
		/* tpm2-pkcs11 1.9 makes CKM_RSA_PKCS signatures with the TPM's RSA
		 * decryption: a key that may not decrypt cannot sign that way */
		if (mech == CKM_RSA_PKCS && rv == CKR_GENERAL_ERROR &&
		    tok_attr_bool(ctx, ctx->anchor, k->h, CKA_DECRYPT) == 0)
			todo = "the module may make RSA PKCS#1 signatures by decryption, which "
			       "this key may not do (tpm2-pkcs11 does so): use an EC key "
			       "(key_type = ec:P-256), or set allow_decrypt = yes for RSA keys on "
			       "this token";
		tok_anchor_renew(ctx);
		snprintf(what, sizeof(what), "C_Sign on token '%s'", ctx->label);
		(void)tok_fail_ckr(ctx, what, rv, todo);
		ERR_raise_data(ERR_LIB_USER, ERR_R_OPERATION_FAIL, "%s failed: %s%s%s", what,
			       tok_ckr_name(rv), todo != NULL ? ": " : "", todo != NULL ? todo : "");
		return 0;
	}
	return 1;
}

static ECDSA_SIG *ec_sign_sig(const unsigned char *dgst, int dlen, const BIGNUM *kinv,
			      const BIGNUM *r, EC_KEY *ec)
{
	struct tok_signer *k = EC_KEY_get_ex_data(ec, ec_idx);
	unsigned char sig[2 * 66 + 2]; /* r || s of P-521 at most */
	CK_ULONG len = sizeof(sig);
	BIGNUM *br = NULL, *bs = NULL;
	ECDSA_SIG *out;

	(void)kinv;
	(void)r;
	if (k == NULL || dlen < 0 || !token_sign(k, CKM_ECDSA, dgst, (size_t)dlen, sig, &len))
		return NULL;
	if (len == 0 || len % 2 != 0) {
		ERR_raise_data(ERR_LIB_USER, ERR_R_OPERATION_FAIL,
			       "the token's ECDSA signature has an odd length (%lu bytes)", len);
		return NULL;
	}
	if ((out = ECDSA_SIG_new()) == NULL || (br = BN_bin2bn(sig, (int)(len / 2), NULL)) == NULL ||
	    (bs = BN_bin2bn(sig + len / 2, (int)(len / 2), NULL)) == NULL ||
	    !ECDSA_SIG_set0(out, br, bs)) {
		BN_free(br);
		BN_free(bs);
		ECDSA_SIG_free(out);
		return NULL;
	}
	return out;
}

/* PKCS#1 v1.5 (OpenSSL passes the DigestInfo) or raw (PSS, already
 * padded by OpenSSL). */
static int rsa_priv_enc(int flen, const unsigned char *from, unsigned char *to, RSA *rsa,
			int padding)
{
	struct tok_signer *k = RSA_get_ex_data(rsa, rsa_idx);
	CK_ULONG len = (CK_ULONG)RSA_size(rsa);
	CK_MECHANISM_TYPE mech;

	if (padding == RSA_PKCS1_PADDING)
		mech = CKM_RSA_PKCS;
	else if (padding == RSA_NO_PADDING)
		mech = CKM_RSA_X_509;
	else {
		ERR_raise_data(ERR_LIB_USER, ERR_R_UNSUPPORTED, "RSA padding %d on a token key",
			       padding);
		return -1;
	}
	if (k == NULL || flen < 0 || !token_sign(k, mech, from, (size_t)flen, to, &len))
		return -1;
	return (int)len;
}

static int rsa_priv_dec(int flen, const unsigned char *from, unsigned char *to, RSA *rsa,
			int padding)
{
	(void)flen;
	(void)from;
	(void)to;
	(void)rsa;
	(void)padding;
	ERR_raise_data(ERR_LIB_USER, ERR_R_UNSUPPORTED, "a token key here only signs");
	return -1;
}

/* The PKCS#11 hash-and-sign mechanism for PKCS#1 v1.5 with md, 0 if none. */
static CK_MECHANISM_TYPE hash_mech(const EVP_MD *md)
{
	switch (md != NULL ? EVP_MD_get_type(md) : NID_undef) {
	case NID_sha256:
		return CKM_SHA256_RSA_PKCS;
	case NID_sha384:
		return CKM_SHA384_RSA_PKCS;
	case NID_sha512:
		return CKM_SHA512_RSA_PKCS;
	case NID_sha1:
		return CKM_SHA1_RSA_PKCS;
	default:
		return 0;
	}
}

/*
 * EVP_DigestSign with a wrapped RSA key (OpenSSL's one-shot signing, as
 * ASN1_item_sign and libssl use it): PKCS#1 v1.5 signatures are made by
 * the token from the data (CKM_SHA256_RSA_PKCS and the like), which needs
 * no more of the key than signing.  tpm2-pkcs11 1.9 makes CKM_RSA_PKCS
 * signatures of a digest with the TPM's RSA decryption, which a sign-only
 * key may not do; its hash-and-sign mechanisms are the TPM's own signing.
 * Any other padding (PSS), a digest without such a mechanism, or a token
 * that lacks it: OpenSSL's way, a digest signed through the RSA method.
 */
static int rsa_digestsign(EVP_MD_CTX *mctx, unsigned char *sig, size_t *siglen,
			  const unsigned char *tbs, size_t tbslen)
{
	EVP_PKEY_CTX *pctx = EVP_MD_CTX_get_pkey_ctx(mctx);
	const RSA *rsa = EVP_PKEY_get0_RSA(EVP_PKEY_CTX_get0_pkey(pctx));
	struct tok_signer *k = rsa != NULL ? RSA_get_ex_data(rsa, rsa_idx) : NULL;
	const EVP_MD *md = NULL;
	unsigned char dgst[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;
	CK_MECHANISM_TYPE mech;
	CK_ULONG len;
	CK_RV rv;
	int pad = 0;

	if (rsa == NULL || EVP_PKEY_CTX_get_signature_md(pctx, &md) <= 0 || md == NULL)
		return 0;
	if (EVP_PKEY_CTX_get_rsa_padding(pctx, &pad) <= 0)
		pad = 0;
	mech = hash_mech(md);
	if (k != NULL && pad == RSA_PKCS1_PADDING && mech != 0 && !k->no_hash_mech) {
		len = (CK_ULONG)RSA_size(rsa);
		if (sig == NULL) {
			*siglen = (size_t)len;
			return 1;
		}
		if (*siglen < (size_t)len)
			return 0;
		if (token_sign_rv(k, mech, tbs, tbslen, sig, &len, &rv)) {
			*siglen = (size_t)len;
			return 1;
		}
		if (rv != CKR_MECHANISM_INVALID)
			return 0;
		k->no_hash_mech = 1;
	}
	if (sig == NULL) {
		*siglen = (size_t)RSA_size(rsa);
		return 1;
	}
	if (rsa_def_sign == NULL || !EVP_Digest(tbs, tbslen, dgst, &dlen, md, NULL))
		return 0;
	return rsa_def_sign(pctx, sig, siglen, dgst, dlen);
}

static int engine_pkey_meths(ENGINE *e, EVP_PKEY_METHOD **pmeth, const int **nids, int nid)
{
	static const int ids[] = {EVP_PKEY_RSA};

	(void)e;
	if (pmeth == NULL) {
		*nids = ids;
		return 1;
	}
	*pmeth = nid == EVP_PKEY_RSA ? rsa_pmeth : NULL;
	return *pmeth != NULL;
}

/* The engine the wrapped RSA keys name for their EVP_PKEY_METHOD; none
 * (NULL) leaves them on OpenSSL's RSA method only. */
static void init_rsa_engine(void)
{
	const EVP_PKEY_METHOD *def = EVP_PKEY_meth_find(EVP_PKEY_RSA);
	int (*sign_init)(EVP_PKEY_CTX *) = NULL;
	ENGINE *e;

	if (def == NULL || (rsa_pmeth = EVP_PKEY_meth_new(EVP_PKEY_RSA, 0)) == NULL)
		return;
	EVP_PKEY_meth_copy(rsa_pmeth, def);
	EVP_PKEY_meth_get_sign(def, &sign_init, &rsa_def_sign);
	EVP_PKEY_meth_set_digestsign(rsa_pmeth, rsa_digestsign);
	if ((e = ENGINE_new()) == NULL)
		goto fail;
	if (!ENGINE_set_id(e, "p11enroll-token") ||
	    !ENGINE_set_name(e, "p11enroll: RSA signatures by the token") ||
	    !ENGINE_set_pkey_meths(e, engine_pkey_meths) || !ENGINE_init(e)) {
		ENGINE_free(e);
		goto fail;
	}
	rsa_engine = e;
	return;
fail:
	ERR_clear_error();
	EVP_PKEY_meth_free(rsa_pmeth);
	rsa_pmeth = NULL;
}

static void init_methods(void)
{
	int (*sign)(int, const unsigned char *, int, unsigned char *, unsigned int *,
		    const BIGNUM *, const BIGNUM *, EC_KEY *) = NULL;

	ec_idx = EC_KEY_get_ex_new_index(0, NULL, NULL, NULL, signer_free);
	rsa_idx = RSA_get_ex_new_index(0, NULL, NULL, NULL, signer_free);
	if ((ec_meth = EC_KEY_METHOD_new(EC_KEY_OpenSSL())) != NULL) {
		/* OpenSSL's sign (DER around sign_sig) stays; sign_sig is ours. */
		EC_KEY_METHOD_get_sign(ec_meth, &sign, NULL, NULL);
		EC_KEY_METHOD_set_sign(ec_meth, sign, NULL, ec_sign_sig);
	}
	if ((rsa_meth = RSA_meth_dup(RSA_PKCS1_OpenSSL())) != NULL &&
	    (!RSA_meth_set1_name(rsa_meth, "p11enroll token key") ||
	     !RSA_meth_set_priv_enc(rsa_meth, rsa_priv_enc) ||
	     !RSA_meth_set_priv_dec(rsa_meth, rsa_priv_dec))) {
		RSA_meth_free(rsa_meth);
		rsa_meth = NULL;
	}
	init_rsa_engine();
}

static struct tok_signer *signer_new(tok_ctx *ctx, CK_OBJECT_HANDLE h)
{
	struct tok_signer *k = OPENSSL_zalloc(sizeof(*k));

	if (k == NULL)
		return NULL;
	k->ctx = ctx;
	k->h = h;
	k->next = ctx->signers;
	ctx->signers = k;
	return k;
}

static EVP_PKEY *wrap_ec(tok_ctx *ctx, CK_OBJECT_HANDLE h, EVP_PKEY *pub)
{
	const EC_KEY *src = EVP_PKEY_get0_EC_KEY(pub);
	EC_KEY *ec = NULL;
	EVP_PKEY *pkey = NULL;
	struct tok_signer *k;

	if (src == NULL || ec_meth == NULL || (ec = EC_KEY_new()) == NULL ||
	    !EC_KEY_set_method(ec, ec_meth) || !EC_KEY_set_group(ec, EC_KEY_get0_group(src)) ||
	    !EC_KEY_set_public_key(ec, EC_KEY_get0_public_key(src)))
		goto fail;
	if ((k = signer_new(ctx, h)) == NULL)
		goto fail;
	if (!EC_KEY_set_ex_data(ec, ec_idx, k)) {
		unlink_signer(k);
		OPENSSL_free(k);
		goto fail;
	}
	if ((pkey = EVP_PKEY_new()) == NULL || !EVP_PKEY_assign_EC_KEY(pkey, ec))
		goto fail;
	return pkey;
fail:
	EVP_PKEY_free(pkey);
	EC_KEY_free(ec);
	return NULL;
}

static EVP_PKEY *wrap_rsa(tok_ctx *ctx, CK_OBJECT_HANDLE h, EVP_PKEY *pub)
{
	const RSA *src = EVP_PKEY_get0_RSA(pub);
	const BIGNUM *n = NULL, *e = NULL;
	BIGNUM *n2 = NULL, *e2 = NULL;
	RSA *rsa = NULL;
	EVP_PKEY *pkey = NULL;
	struct tok_signer *k;

	if (src == NULL || rsa_meth == NULL || (rsa = RSA_new()) == NULL ||
	    !RSA_set_method(rsa, rsa_meth))
		goto fail;
	RSA_get0_key(src, &n, &e, NULL);
	if ((n2 = BN_dup(n)) == NULL || (e2 = BN_dup(e)) == NULL || !RSA_set0_key(rsa, n2, e2, NULL)) {
		BN_free(n2);
		BN_free(e2);
		goto fail;
	}
	if ((k = signer_new(ctx, h)) == NULL)
		goto fail;
	if (!RSA_set_ex_data(rsa, rsa_idx, k)) {
		unlink_signer(k);
		OPENSSL_free(k);
		goto fail;
	}
	if ((pkey = EVP_PKEY_new()) == NULL || !EVP_PKEY_assign_RSA(pkey, rsa))
		goto fail;
	/* without it the key still signs, by digest (rsa_digestsign) */
	if (rsa_engine != NULL && !EVP_PKEY_set1_engine(pkey, rsa_engine))
		ERR_clear_error();
	return pkey;
fail:
	EVP_PKEY_free(pkey);
	RSA_free(rsa);
	return NULL;
}

tok_rv tok_signer_wrap(tok_ctx *ctx, CK_OBJECT_HANDLE h, EVP_PKEY *pub, EVP_PKEY **ret_pkey)
{
	EVP_PKEY *pkey = NULL;

	if (!CRYPTO_THREAD_run_once(&once, init_methods))
		return tok_fail(ctx, TOK_ERR_NOMEM, "out of memory");
	if (EVP_PKEY_is_a(pub, "EC"))
		pkey = wrap_ec(ctx, h, pub);
	else if (EVP_PKEY_is_a(pub, "RSA"))
		pkey = wrap_rsa(ctx, h, pub);
	else
		return tok_fail(ctx, TOK_ERR_DEVICE,
				"using a key of token '%s' failed: its type is neither EC nor RSA: "
				"use an EC or RSA key",
				ctx->label);
	if (pkey == NULL) {
		ERR_clear_error();
		return tok_fail(ctx, TOK_ERR_NOMEM, "out of memory");
	}
	*ret_pkey = pkey;
	return TOK_OK;
}

void tok_signers_detach(tok_ctx *ctx)
{
	while (ctx->signers != NULL)
		unlink_signer(ctx->signers);
}
