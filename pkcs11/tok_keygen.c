/*
 * tok: key pair generation on the token with C_GenerateKeyPair on the raw
 * function list (libp11 0.4.12 generates RSA only and never sets
 * CKA_EXTRACTABLE).  The pair is generated under a random temporary
 * CKA_ID, then given the RFC 5280 key identifier of its public key; any
 * failure after generation destroys both objects.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <openssl/rand.h>

#include "pkcs11/tok-int.h"

/* DER OIDs: prime256v1 (1.2.840.10045.3.1.7) and secp384r1 (1.3.132.0.34). */
static const unsigned char oid_p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
					 0xce, 0x3d, 0x03, 0x01, 0x07};
static const unsigned char oid_p384[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22};
static const unsigned char f4[] = {0x01, 0x00, 0x01};

static tok_rv check_spec(tok_ctx *ctx, const tok_keyspec *spec)
{
	if (spec->alg == TOK_KEY_EC && (spec->bits == 256 || spec->bits == 384))
		return TOK_OK;
	if (spec->alg == TOK_KEY_RSA &&
	    (spec->bits == 2048 || spec->bits == 3072 || spec->bits == 4096))
		return TOK_OK;
	return tok_fail(ctx, TOK_ERR_CONFIG,
			"generating a key on token '%s' failed: unsupported key type (alg %d, "
			"%d bits): use EC P-256/P-384 or RSA 2048/3072/4096",
			ctx->label, (int)spec->alg, spec->bits);
}

/* Both objects of a half-made pair go; the message of the failure that
 * made it half-made gets what could not be removed. */
static void destroy_pair(tok_ctx *ctx, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE pub,
			 CK_OBJECT_HANDLE priv, const char *label)
{
	CK_RV ckr = ctx->f->C_DestroyObject(s, priv), ckr2 = ctx->f->C_DestroyObject(s, pub);
	size_t n = strlen(ctx->errmsg);

	if (ckr == CKR_OK && ckr2 == CKR_OK)
		return;
	snprintf(ctx->errmsg + n, sizeof(ctx->errmsg) - n,
		 "; removing the half-made key pair failed too (C_DestroyObject: %s): %s is "
		 "left on the token, labelled '%s'",
		 tok_ckr_name(ckr != CKR_OK ? ckr : ckr2),
		 ckr != CKR_OK && ckr2 != CKR_OK ? "the pair"
		 : ckr != CKR_OK		 ? "its private key"
						 : "its public key",
		 label);
}

/* Sets CKA_ID on both objects, from the public key the token made. */
static tok_rv finish_pair(tok_ctx *ctx, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE pub,
			  CK_OBJECT_HANDLE priv, tok_id *ret_id)
{
	EVP_PKEY *pkey = NULL;
	tok_id id;
	CK_ATTRIBUTE set = {CKA_ID, id.id, 0};
	char what[96];
	tok_rv rv;
	CK_RV ckr;

	if ((rv = tok_pubkey_from_object(ctx, s, pub, &pkey)) != TOK_OK)
		return rv;
	if (!tok_key_identifier(pkey, &id)) {
		EVP_PKEY_free(pkey);
		return tok_fail(ctx, TOK_ERR_DEVICE,
				"generating a key on token '%s' failed: OpenSSL could not encode "
				"its public key: report this",
				ctx->label);
	}
	set.ulValueLen = id.len;
	ckr = ctx->f->C_SetAttributeValue(s, priv, &set, 1);
	if (ckr == CKR_OK)
		ckr = ctx->f->C_SetAttributeValue(s, pub, &set, 1);
	if (ckr != CKR_OK) {
		EVP_PKEY_free(pkey);
		snprintf(what, sizeof(what), "setting CKA_ID of a new key on token '%s'",
			 ctx->label);
		return tok_fail_ckr(ctx, what, ckr, NULL);
	}
	tok_made_forget(ctx, NULL);
	ctx->made.id = id;
	ctx->made.priv = priv;
	ctx->made.pub = pub;
	ctx->made.cert = CK_INVALID_HANDLE;
	ctx->made.pkey = pkey;
	*ret_id = id;
	return TOK_OK;
}

tok_rv tok_keygen(tok_ctx *ctx, const tok_keyspec *spec, const char *label, tok_id *ret_id)
{
	static const CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	const CK_BBOOL *dec;
	CK_MECHANISM mech = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
	CK_ULONG bits;
	unsigned char tmp_id[20];
	CK_ULONG label_len;
	CK_ATTRIBUTE pub_t[10], priv_t[12];
	CK_ULONG npub = 0, npriv = 0;
	CK_OBJECT_HANDLE pub = CK_INVALID_HANDLE, priv = CK_INVALID_HANDLE;
	CK_SESSION_HANDLE s;
	char what[96];
	tok_rv rv;
	CK_RV ckr;

	if (ctx == NULL || spec == NULL || ret_id == NULL)
		return TOK_ERR_CONFIG;
	tok_clear_err(ctx);
	if ((rv = check_spec(ctx, spec)) != TOK_OK)
		return rv;
	if (!ctx->logged_in)
		return tok_need_login(ctx, "generating a key");
	if (label == NULL)
		label = "";
	label_len = (CK_ULONG)strlen(label);
	if (RAND_bytes(tmp_id, sizeof(tmp_id)) != 1)
		return tok_fail(ctx, TOK_ERR_DEVICE,
				"generating a key on token '%s' failed: OpenSSL has no random "
				"numbers: check the system's entropy source",
				ctx->label);
	dec = spec->allow_decrypt ? &yes : &no;

#define ADD(t, n, type, ptr, len)                                                                  \
	(t)[(n)++] = (CK_ATTRIBUTE){(type), (void *)(ptr), (CK_ULONG)(len)}
	ADD(pub_t, npub, CKA_TOKEN, &yes, sizeof(yes));
	ADD(pub_t, npub, CKA_PRIVATE, &no, sizeof(no));
	ADD(pub_t, npub, CKA_VERIFY, &yes, sizeof(yes));
	ADD(pub_t, npub, CKA_ENCRYPT, dec, sizeof(*dec));
	ADD(pub_t, npub, CKA_WRAP, dec, sizeof(*dec));
	ADD(pub_t, npub, CKA_ID, tmp_id, sizeof(tmp_id));
	ADD(pub_t, npub, CKA_LABEL, label, label_len);

	ADD(priv_t, npriv, CKA_TOKEN, &yes, sizeof(yes));
	ADD(priv_t, npriv, CKA_PRIVATE, &yes, sizeof(yes));
	ADD(priv_t, npriv, CKA_SENSITIVE, &yes, sizeof(yes));
	ADD(priv_t, npriv, CKA_EXTRACTABLE, &no, sizeof(no));
	ADD(priv_t, npriv, CKA_SIGN, &yes, sizeof(yes));
	ADD(priv_t, npriv, CKA_DECRYPT, dec, sizeof(*dec));
	ADD(priv_t, npriv, CKA_UNWRAP, dec, sizeof(*dec));
	ADD(priv_t, npriv, CKA_ID, tmp_id, sizeof(tmp_id));
	ADD(priv_t, npriv, CKA_LABEL, label, label_len);

	if (spec->alg == TOK_KEY_EC) {
		if (spec->bits == 256)
			ADD(pub_t, npub, CKA_EC_PARAMS, oid_p256, sizeof(oid_p256));
		else
			ADD(pub_t, npub, CKA_EC_PARAMS, oid_p384, sizeof(oid_p384));
		/* SoftHSM's default would allow ECDH with the key. */
		ADD(priv_t, npriv, CKA_DERIVE, &no, sizeof(no));
	} else {
		mech.mechanism = CKM_RSA_PKCS_KEY_PAIR_GEN;
		bits = (CK_ULONG)spec->bits;
		ADD(pub_t, npub, CKA_MODULUS_BITS, &bits, sizeof(bits));
		ADD(pub_t, npub, CKA_PUBLIC_EXPONENT, f4, sizeof(f4));
	}
#undef ADD

	if ((rv = tok_session_open(ctx, 1, &s)) != TOK_OK)
		return rv;
	ckr = ctx->f->C_GenerateKeyPair(s, &mech, pub_t, npub, priv_t, npriv, &pub, &priv);
	if (ckr != CKR_OK) {
		tok_session_close(ctx, s);
		snprintf(what, sizeof(what), "C_GenerateKeyPair (%s %d) on token '%s'",
			 spec->alg == TOK_KEY_EC ? "EC" : "RSA", spec->bits, ctx->label);
		return tok_fail_ckr(ctx, what, ckr, NULL);
	}
	rv = finish_pair(ctx, s, pub, priv, ret_id);
	if (rv != TOK_OK)
		destroy_pair(ctx, s, pub, priv, label);
	tok_session_close(ctx, s);
	return rv;
}
