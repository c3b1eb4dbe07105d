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
#include <openssl/err.h>
#include <openssl/rsa.h>

#include "pkcs11/tok-int.h"

/* What a wrapped key needs to sign: the context (NULL once it is freed)
 * and the private key object.  Linked into ctx->signers so that tok_free
 * can cut the tie of keys that outlive it. */
struct tok_signer {
	tok_ctx *ctx;
	CK_OBJECT_HANDLE h;
	struct tok_signer *next;
};

static CRYPTO_ONCE once = CRYPTO_ONCE_STATIC_INIT;
static int ec_idx = -1, rsa_idx = -1;
static EC_KEY_METHOD *ec_meth;
static RSA_METHOD *rsa_meth;

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
static int token_sign(struct tok_signer *k, CK_MECHANISM_TYPE mech, const unsigned char *in,
		      size_t inlen, unsigned char *out, CK_ULONG *outlen)
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
	if (rv == CKR_OK)
		rv = ctx->f->C_Sign(ctx->anchor, (CK_BYTE_PTR)in, (CK_ULONG)inlen, out, outlen);
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
