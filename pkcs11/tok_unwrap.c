/*
 * tok: a private key that a CA generated (central key generation) or
 * recovered, brought onto the token with C_UnwrapKey so that it never
 * exists in clear in this process.  The CA encrypts a content-encryption
 * key (AES) to a short-lived RSA transport key made on the token for one
 * transaction; the token unwraps that AES key (a session object) and with
 * it the PKCS#8 PrivateKeyInfo into a sensitive, non-extractable private
 * key.  libp11 0.4.12 has no unwrap: the raw function list throughout.
 *
 * Transport keys and the AES key are session objects (CKA_TOKEN FALSE):
 * a process that dies leaves none of them on the token.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "pkcs11/tok-int.h"

struct tok_transport {
	tok_ctx *ctx;
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE pub, priv;
};

#define ADD(t, n, type, ptr, len)                                                                  \
	(t)[(n)++] = (CK_ATTRIBUTE){(type), (void *)(ptr), (CK_ULONG)(len)}

static const CK_BBOOL yes = CK_TRUE, no = CK_FALSE;

tok_rv tok_transport_new(tok_ctx *ctx, tok_transport **ret_t, EVP_PKEY **ret_pub)
{
	static const unsigned char f4[] = {0x01, 0x00, 0x01};
	CK_MECHANISM mech = {CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0};
	CK_ULONG bits = 2048;
	CK_ATTRIBUTE pub_t[6], priv_t[8];
	CK_ULONG npub = 0, npriv = 0;
	tok_transport *t;
	char what[96];
	tok_rv rv;
	CK_RV ckr;

	if (ctx == NULL || ret_t == NULL || ret_pub == NULL)
		return TOK_ERR_CONFIG;
	tok_clear_err(ctx);
	if (!ctx->logged_in)
		return tok_need_login(ctx, "making a transport key");
	if ((t = OPENSSL_zalloc(sizeof(*t))) == NULL)
		return tok_fail(ctx, TOK_ERR_NOMEM, "out of memory");
	t->ctx = ctx;
	ADD(pub_t, npub, CKA_TOKEN, &no, sizeof(no));
	ADD(pub_t, npub, CKA_WRAP, &yes, sizeof(yes));
	ADD(pub_t, npub, CKA_ENCRYPT, &yes, sizeof(yes));
	ADD(pub_t, npub, CKA_VERIFY, &no, sizeof(no));
	ADD(pub_t, npub, CKA_MODULUS_BITS, &bits, sizeof(bits));
	ADD(pub_t, npub, CKA_PUBLIC_EXPONENT, f4, sizeof(f4));
	/* Unwraps and nothing else: it cannot decrypt a wrapped key out into
	 * this process's memory (C_Decrypt), nor sign. */
	ADD(priv_t, npriv, CKA_TOKEN, &no, sizeof(no));
	ADD(priv_t, npriv, CKA_PRIVATE, &yes, sizeof(yes));
	ADD(priv_t, npriv, CKA_SENSITIVE, &yes, sizeof(yes));
	ADD(priv_t, npriv, CKA_EXTRACTABLE, &no, sizeof(no));
	ADD(priv_t, npriv, CKA_UNWRAP, &yes, sizeof(yes));
	ADD(priv_t, npriv, CKA_DECRYPT, &no, sizeof(no));
	ADD(priv_t, npriv, CKA_SIGN, &no, sizeof(no));
	if ((rv = tok_session_open(ctx, 1, &t->s)) != TOK_OK) {
		OPENSSL_free(t);
		return rv;
	}
	ckr = ctx->f->C_GenerateKeyPair(t->s, &mech, pub_t, npub, priv_t, npriv, &t->pub, &t->priv);
	if (ckr != CKR_OK) {
		tok_session_close(ctx, t->s);
		OPENSSL_free(t);
		snprintf(what, sizeof(what),
			 "C_GenerateKeyPair (RSA 2048 transport key) on token '%s'", ctx->label);
		return tok_fail_ckr(ctx, what, ckr, NULL);
	}
	if ((rv = tok_pubkey_from_object(ctx, t->s, t->pub, ret_pub)) != TOK_OK) {
		tok_transport_free(t);
		return rv;
	}
	*ret_t = t;
	return TOK_OK;
}

void tok_transport_free(tok_transport *t)
{
	if (t == NULL)
		return;
	/* Session objects would go with the session anyway; the anchor may
	 * live on, so they are destroyed now. */
	t->ctx->f->C_DestroyObject(t->s, t->priv);
	t->ctx->f->C_DestroyObject(t->s, t->pub);
	tok_session_close(t->ctx, t->s);
	OPENSSL_free(t);
}

/* What a token answers to a mechanism, or parameters of one, it lacks. */
static int unsupported(CK_RV ckr)
{
	return ckr == CKR_MECHANISM_INVALID || ckr == CKR_MECHANISM_PARAM_INVALID ||
	       ckr == CKR_ARGUMENTS_BAD || ckr == CKR_FUNCTION_NOT_SUPPORTED;
}

/* The content-encryption key, unwrapped with the transport key into an AES
 * session key that unwraps only (decrypts instead, with decrypt). */
static CK_RV unwrap_cek(tok_transport *t, const tok_wrapped *w, int decrypt,
			CK_OBJECT_HANDLE *ret_k)
{
	static const CK_OBJECT_CLASS secret = CKO_SECRET_KEY;
	static const CK_KEY_TYPE aes = CKK_AES;
	CK_RSA_PKCS_OAEP_PARAMS oaep = {CKM_SHA_1, CKG_MGF1_SHA1, CKZ_DATA_SPECIFIED, NULL, 0};
	CK_MECHANISM mech = {CKM_RSA_PKCS_OAEP, &oaep, sizeof(oaep)};
	CK_ATTRIBUTE tmpl[8];
	CK_ULONG n = 0;

	if (w->kt == TOK_KT_RSA_OAEP_SHA256) {
		oaep.hashAlg = CKM_SHA256;
		oaep.mgf = CKG_MGF1_SHA256;
	} else if (w->kt == TOK_KT_RSA_PKCS1) {
		mech.mechanism = CKM_RSA_PKCS;
		mech.pParameter = NULL;
		mech.ulParameterLen = 0;
	}
	ADD(tmpl, n, CKA_CLASS, &secret, sizeof(secret));
	ADD(tmpl, n, CKA_KEY_TYPE, &aes, sizeof(aes));
	ADD(tmpl, n, CKA_TOKEN, &no, sizeof(no));
	ADD(tmpl, n, CKA_SENSITIVE, &yes, sizeof(yes));
	ADD(tmpl, n, CKA_EXTRACTABLE, &no, sizeof(no));
	ADD(tmpl, n, CKA_UNWRAP, decrypt ? &no : &yes, sizeof(yes));
	ADD(tmpl, n, CKA_DECRYPT, decrypt ? &yes : &no, sizeof(no));
	ADD(tmpl, n, CKA_ENCRYPT, &no, sizeof(no));
	return t->ctx->f->C_UnwrapKey(t->s, &mech, t->priv, (CK_BYTE_PTR)w->enc_cek,
				      (CK_ULONG)w->enc_cek_len, tmpl, n, ret_k);
}

/*
 * Whether the private key h belongs to pub: it signs 32 random bytes
 * (CKM_RSA_PKCS or CKM_ECDSA) and pub verifies the signature.  One way
 * for both key types: an EC private key object shows no public point.
 * 1 it does, 0 it does not, -1 the token could not sign (*ret_ckr).
 */
static int key_matches(tok_ctx *ctx, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, EVP_PKEY *pub,
		       CK_RV *ret_ckr)
{
	CK_MECHANISM mech = {CKM_RSA_PKCS, NULL, 0};
	unsigned char tbs[32], sig[1024], *der = NULL;
	CK_ULONG siglen = sizeof(sig);
	const unsigned char *verify_sig = sig;
	size_t verify_len;
	EVP_PKEY_CTX *vc = NULL;
	ECDSA_SIG *es = NULL;
	BIGNUM *r = NULL, *sv = NULL;
	int ec = EVP_PKEY_is_a(pub, "EC"), ok = 0, len;
	CK_RV ckr;

	if (RAND_bytes(tbs, sizeof(tbs)) != 1)
		return 0;
	if (ec)
		mech.mechanism = CKM_ECDSA;
	ckr = ctx->f->C_SignInit(s, &mech, h);
	if (ckr == CKR_OK)
		ckr = ctx->f->C_Sign(s, tbs, sizeof(tbs), sig, &siglen);
	if (ckr != CKR_OK) {
		*ret_ckr = ckr;
		return -1;
	}
	verify_len = siglen;
	if (ec) {
		/* PKCS#11 gives r || s; OpenSSL verifies the DER ECDSA-Sig-Value */
		if (siglen % 2 != 0 || (es = ECDSA_SIG_new()) == NULL ||
		    (r = BN_bin2bn(sig, (int)(siglen / 2), NULL)) == NULL ||
		    (sv = BN_bin2bn(sig + siglen / 2, (int)(siglen / 2), NULL)) == NULL ||
		    !ECDSA_SIG_set0(es, r, sv)) {
			BN_free(r);
			BN_free(sv);
			ECDSA_SIG_free(es);
			return 0;
		}
		if ((len = i2d_ECDSA_SIG(es, &der)) <= 0) {
			ECDSA_SIG_free(es);
			return 0;
		}
		verify_sig = der;
		verify_len = (size_t)len;
	}
	vc = EVP_PKEY_CTX_new_from_pkey(NULL, pub, NULL);
	if (vc != NULL && EVP_PKEY_verify_init(vc) == 1 &&
	    (ec || EVP_PKEY_CTX_set_rsa_padding(vc, RSA_PKCS1_PADDING) == 1))
		ok = EVP_PKEY_verify(vc, verify_sig, verify_len, tbs, sizeof(tbs)) == 1;
	EVP_PKEY_CTX_free(vc);
	ECDSA_SIG_free(es);
	OPENSSL_free(der);
	return ok;
}

/* 1 when the token made the key as asked: sensitive and not extractable
 * (a module may ignore a template's attributes). */
static int protected_key(tok_ctx *ctx, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h)
{
	CK_BBOOL sens = CK_FALSE, extr = CK_TRUE;
	CK_ATTRIBUTE a[2] = {{CKA_SENSITIVE, &sens, sizeof(sens)},
			     {CKA_EXTRACTABLE, &extr, sizeof(extr)}};

	return ctx->f->C_GetAttributeValue(s, h, a, 2) == CKR_OK && sens == CK_TRUE &&
	       extr == CK_FALSE;
}

/* The public key object beside the private one: an EC private key object
 * carries no public point, and the rest of this layer reads it there. */
static CK_RV create_public(tok_ctx *ctx, CK_SESSION_HANDLE s, EVP_PKEY *pub, const tok_id *id,
			   const char *label, const CK_BBOOL *dec, CK_OBJECT_HANDLE *ret_h)
{
	static const CK_OBJECT_CLASS cls = CKO_PUBLIC_KEY;
	CK_KEY_TYPE kt = EVP_PKEY_is_a(pub, "EC") ? CKK_EC : CKK_RSA;
	CK_ATTRIBUTE tmpl[13];
	CK_ULONG n = 0;
	unsigned char *a = NULL, *b = NULL;
	BIGNUM *bn_n = NULL, *bn_e = NULL;
	ASN1_OCTET_STRING *os = NULL;
	unsigned char pt[133];
	size_t ptlen = 0;
	int alen = 0, blen = 0;
	EC_GROUP *grp = NULL;
	char curve[64];
	CK_RV ckr = CKR_HOST_MEMORY;

	ADD(tmpl, n, CKA_CLASS, &cls, sizeof(cls));
	ADD(tmpl, n, CKA_KEY_TYPE, &kt, sizeof(kt));
	ADD(tmpl, n, CKA_TOKEN, &yes, sizeof(yes));
	ADD(tmpl, n, CKA_PRIVATE, &no, sizeof(no));
	ADD(tmpl, n, CKA_VERIFY, &yes, sizeof(yes));
	ADD(tmpl, n, CKA_ENCRYPT, kt == CKK_RSA ? dec : &no, sizeof(*dec));
	ADD(tmpl, n, CKA_WRAP, kt == CKK_RSA ? dec : &no, sizeof(*dec));
	ADD(tmpl, n, CKA_ID, id->id, id->len);
	ADD(tmpl, n, CKA_LABEL, label, strlen(label));
	if (kt == CKK_EC) {
		/* CKA_EC_PARAMS: the named curve's OID; CKA_EC_POINT: the
		 * uncompressed point in an OCTET STRING (PKCS#11 2.40) */
		if (!EVP_PKEY_get_utf8_string_param(pub, "group", curve, sizeof(curve), NULL) ||
		    (grp = EC_GROUP_new_by_curve_name(OBJ_sn2nid(curve))) == NULL ||
		    (alen = i2d_ECPKParameters(grp, &a)) <= 0 ||
		    !EVP_PKEY_get_octet_string_param(pub, "encoded-pub-key", pt, sizeof(pt),
						     &ptlen) ||
		    (os = ASN1_OCTET_STRING_new()) == NULL ||
		    !ASN1_OCTET_STRING_set(os, pt, (int)ptlen) ||
		    (blen = i2d_ASN1_OCTET_STRING(os, &b)) <= 0)
			goto out;
		ADD(tmpl, n, CKA_EC_PARAMS, a, alen);
		ADD(tmpl, n, CKA_EC_POINT, b, blen);
	} else {
		if (!EVP_PKEY_get_bn_param(pub, "n", &bn_n) ||
		    !EVP_PKEY_get_bn_param(pub, "e", &bn_e) ||
		    (a = OPENSSL_malloc((size_t)BN_num_bytes(bn_n) + 1)) == NULL ||
		    (b = OPENSSL_malloc((size_t)BN_num_bytes(bn_e) + 1)) == NULL)
			goto out;
		alen = BN_bn2bin(bn_n, a);
		blen = BN_bn2bin(bn_e, b);
		ADD(tmpl, n, CKA_MODULUS, a, alen);
		ADD(tmpl, n, CKA_PUBLIC_EXPONENT, b, blen);
	}
	ckr = ctx->f->C_CreateObject(s, tmpl, n, ret_h);
out:
	OPENSSL_free(a);
	OPENSSL_free(b);
	BN_free(bn_n);
	BN_free(bn_e);
	ASN1_OCTET_STRING_free(os);
	EC_GROUP_free(grp);
	return ckr;
}

/* What a new private key object of pub's type gets, whatever brings its
 * key material: into tmpl (room for 12), *n set. */
struct newkey {
	CK_OBJECT_CLASS cls;
	CK_KEY_TYPE kt;
	unsigned char tmp_id[20];
	tok_id id;
	const CK_BBOOL *dec;
};

static tok_rv newkey_init(tok_ctx *ctx, EVP_PKEY *pub, int allow_decrypt, struct newkey *k)
{
	k->cls = CKO_PRIVATE_KEY;
	k->dec = allow_decrypt ? &yes : &no;
	if (EVP_PKEY_is_a(pub, "EC"))
		k->kt = CKK_EC;
	else if (EVP_PKEY_is_a(pub, "RSA"))
		k->kt = CKK_RSA;
	else
		return tok_fail(ctx, TOK_ERR_CONFIG,
				"importing a key into token '%s' failed: its certificate holds "
				"neither an EC nor an RSA key: only these can be imported",
				ctx->label);
	if (!tok_key_identifier(pub, &k->id) || RAND_bytes(k->tmp_id, sizeof(k->tmp_id)) != 1)
		return tok_fail(ctx, TOK_ERR_DEVICE,
				"importing a key into token '%s' failed: OpenSSL could not make "
				"its identifier: report this",
				ctx->label);
	return TOK_OK;
}

static void newkey_template(const struct newkey *k, const char *label, CK_ATTRIBUTE *tmpl,
			    CK_ULONG *ret_n)
{
	CK_ULONG n = 0;

	ADD(tmpl, n, CKA_CLASS, &k->cls, sizeof(k->cls));
	ADD(tmpl, n, CKA_KEY_TYPE, &k->kt, sizeof(k->kt));
	ADD(tmpl, n, CKA_TOKEN, &yes, sizeof(yes));
	ADD(tmpl, n, CKA_PRIVATE, &yes, sizeof(yes));
	ADD(tmpl, n, CKA_SENSITIVE, &yes, sizeof(yes));
	ADD(tmpl, n, CKA_EXTRACTABLE, &no, sizeof(no));
	ADD(tmpl, n, CKA_SIGN, &yes, sizeof(yes));
	/* Every usage stated: SoftHSM2 gives an unwrapped EC key CKA_DECRYPT
	 * and CKA_UNWRAP TRUE when the template is silent.  ECDH is how an EC
	 * key decrypts. */
	ADD(tmpl, n, CKA_DECRYPT, k->kt == CKK_RSA ? k->dec : &no, sizeof(CK_BBOOL));
	ADD(tmpl, n, CKA_UNWRAP, k->kt == CKK_RSA ? k->dec : &no, sizeof(CK_BBOOL));
	if (k->kt == CKK_EC)
		ADD(tmpl, n, CKA_DERIVE, k->dec, sizeof(CK_BBOOL));
	ADD(tmpl, n, CKA_ID, k->tmp_id, sizeof(k->tmp_id));
	ADD(tmpl, n, CKA_LABEL, label, strlen(label));
	*ret_n = n;
}

/* Whether a public key object with CKA_ID id holds pub. */
static int has_public(tok_ctx *ctx, CK_SESSION_HANDLE s, const tok_id *id, EVP_PKEY *pub)
{
	static const CK_OBJECT_CLASS cls = CKO_PUBLIC_KEY;
	CK_ATTRIBUTE tmpl[2] = {{CKA_CLASS, (void *)&cls, sizeof(cls)},
				{CKA_ID, (void *)id->id, (CK_ULONG)id->len}};
	CK_OBJECT_HANDLE *hs = NULL;
	CK_ULONG n = 0, i;
	EVP_PKEY *have;
	int found = 0;

	if (tok_find_all(ctx, s, tmpl, 2, &hs, &n) != TOK_OK) {
		tok_clear_err(ctx);
		return 0;
	}
	for (i = 0; i < n && !found; i++) {
		have = NULL;
		if (tok_pubkey_from_object(ctx, s, hs[i], &have) == TOK_OK)
			found = EVP_PKEY_eq(have, pub) == 1;
		EVP_PKEY_free(have);
	}
	tok_clear_err(ctx);
	OPENSSL_free(hs);
	return found;
}

/*
 * The new private key priv is checked (protected, belongs to pub), gets
 * its public key object and its CKA_ID; on failure it is destroyed again.
 */
static tok_rv newkey_finish(tok_ctx *ctx, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE priv,
			    EVP_PKEY *pub, const struct newkey *k, const char *label,
			    tok_id *ret_id)
{
	CK_ATTRIBUTE set = {CKA_ID, (void *)k->id.id, (CK_ULONG)k->id.len};
	CK_OBJECT_HANDLE pubh = CK_INVALID_HANDLE;
	char what[128];
	tok_rv rv;
	CK_RV ckr = CKR_OK;
	int m = protected_key(ctx, s, priv) ? key_matches(ctx, s, priv, pub, &ckr) : -2;

	if (m != 1) {
		if (m == -2) {
			rv = tok_fail(ctx, TOK_ERR_DEVICE,
				      "importing a key into token '%s' failed: the token made it "
				      "extractable or not sensitive, against the template: the key "
				      "was removed again; use another token or module",
				      ctx->label);
		} else if (m < 0) {
			snprintf(what, sizeof(what), "signing with the imported key on token '%s'",
				 ctx->label);
			rv = tok_fail_ckr(ctx, what, ckr, NULL);
		} else {
			rv = tok_fail(ctx, TOK_ERR_MISMATCH,
				      "importing a key into token '%s' failed: the key the CA sent "
				      "does not belong to the public key of its certificate: the "
				      "key was removed again; report this to the CA",
				      ctx->label);
		}
		ctx->f->C_DestroyObject(s, priv);
		return rv;
	}
	/* A recovered key's pair may still have its public key object (only
	 * the private key was lost): it stays, and no second one is made. */
	ckr = CKR_OK;
	if (!has_public(ctx, s, &k->id, pub))
		ckr = create_public(ctx, s, pub, &k->id, label, k->dec, &pubh);
	if (ckr == CKR_OK)
		ckr = ctx->f->C_SetAttributeValue(s, priv, &set, 1);
	if (ckr != CKR_OK) {
		if (pubh != CK_INVALID_HANDLE)
			ctx->f->C_DestroyObject(s, pubh);
		ctx->f->C_DestroyObject(s, priv);
		snprintf(what, sizeof(what), "storing the imported key pair on token '%s'",
			 ctx->label);
		return tok_fail_ckr(ctx, what, ckr, NULL);
	}
	*ret_id = k->id;
	return TOK_OK;
}

/* The CEK on the token (decrypt: it may decrypt, for
 * tok_transport_decrypt), or the failure in ctx's message. */
static tok_rv cek_on_token(tok_ctx *ctx, tok_transport *t, const tok_wrapped *w, int decrypt,
			   CK_OBJECT_HANDLE *ret_k)
{
	char what[128];
	CK_RV ckr = unwrap_cek(t, w, decrypt, ret_k);

	if (ckr == CKR_OK)
		return TOK_OK;
	snprintf(what, sizeof(what),
		 "C_UnwrapKey (the content-encryption key, with the transport key) on token '%s'",
		 ctx->label);
	return tok_fail_ckr(ctx, what, ckr,
			    unsupported(ckr)
				? "the token does not unwrap with this RSA mechanism (SoftHSM2 "
				  "2.6: OAEP with SHA-1 or PKCS#1 v1.5 only): ask the CA for "
				  "one of these"
				: "the key was encrypted to another recipient or is damaged: "
				  "ask the CA again");
}

static const char no_mech_todo[] =
    "the token does not unwrap with this mechanism (SoftHSM2 2.6: AES key wrap only, no "
    "CKM_AES_CBC_PAD): ask the CA for AES key wrap with padding, or use another token";
static const char damaged_todo[] = "the encrypted key is damaged or of a type the token does "
				   "not import: ask the CA again, or use another token";

tok_rv tok_unwrap_private(tok_ctx *ctx, tok_transport *t, const tok_wrapped *w, EVP_PKEY *pub,
			  const char *label, int allow_decrypt, tok_id *ret_id)
{
	return tok_unwrap_private_id(ctx, t, w, pub, label, allow_decrypt, NULL, ret_id);
}

tok_rv tok_unwrap_private_id(tok_ctx *ctx, tok_transport *t, const tok_wrapped *w,
			     EVP_PKEY *pub, const char *label, int allow_decrypt,
			     const tok_id *want_id, tok_id *ret_id)
{
	CK_MECHANISM mech = {CKM_AES_CBC_PAD, NULL, 0};
	unsigned char iv[16];
	CK_ATTRIBUTE tmpl[16];
	CK_ULONG n = 0;
	CK_OBJECT_HANDLE cek = CK_INVALID_HANDLE, priv = CK_INVALID_HANDLE;
	struct newkey k;
	char what[128];
	tok_rv rv;
	CK_RV ckr;

	if (ctx == NULL || t == NULL || w == NULL || pub == NULL || ret_id == NULL ||
	    t->ctx != ctx)
		return TOK_ERR_CONFIG;
	tok_clear_err(ctx);
	if (label == NULL)
		label = "";
	if (want_id != NULL && (want_id->len == 0 || want_id->len > sizeof(want_id->id)))
		return TOK_ERR_CONFIG;
	if ((rv = newkey_init(ctx, pub, allow_decrypt, &k)) != TOK_OK)
		return rv;
	if (want_id != NULL)
		k.id = *want_id;
	if ((rv = cek_on_token(ctx, t, w, 0, &cek)) != TOK_OK)
		return rv;
	if (w->enc == TOK_ENC_AES_KWP) {
		mech.mechanism = CKM_AES_KEY_WRAP_PAD;
	} else {
		memcpy(iv, w->iv, sizeof(iv));
		mech.pParameter = iv;
		mech.ulParameterLen = sizeof(iv);
	}
	newkey_template(&k, label, tmpl, &n);
	ckr = ctx->f->C_UnwrapKey(t->s, &mech, cek, (CK_BYTE_PTR)w->enc_key,
				  (CK_ULONG)w->enc_key_len, tmpl, n, &priv);
	ctx->f->C_DestroyObject(t->s, cek);
	OPENSSL_cleanse(iv, sizeof(iv));
	if (ckr != CKR_OK) {
		snprintf(what, sizeof(what), "C_UnwrapKey (%s, the private key) on token '%s'",
			 w->enc == TOK_ENC_AES_KWP ? "CKM_AES_KEY_WRAP_PAD" : "CKM_AES_CBC_PAD",
			 ctx->label);
		return tok_fail_ckr(ctx, what, ckr, unsupported(ckr) ? no_mech_todo : damaged_todo);
	}
	return newkey_finish(ctx, t->s, priv, pub, &k, label, ret_id);
}

tok_rv tok_transport_decrypt(tok_ctx *ctx, tok_transport *t, const tok_wrapped *w,
			     unsigned char **ret_out, size_t *ret_len)
{
	CK_MECHANISM mech = {CKM_AES_CBC_PAD, NULL, 0};
	unsigned char iv[16], *out = NULL;
	CK_ULONG len = 0;
	CK_OBJECT_HANDLE cek = CK_INVALID_HANDLE;
	char what[128];
	tok_rv rv;
	CK_RV ckr;

	if (ctx == NULL || t == NULL || w == NULL || ret_out == NULL || ret_len == NULL ||
	    t->ctx != ctx || w->enc != TOK_ENC_AES_CBC_PAD)
		return TOK_ERR_CONFIG;
	tok_clear_err(ctx);
	if ((rv = cek_on_token(ctx, t, w, 1, &cek)) != TOK_OK)
		return rv;
	memcpy(iv, w->iv, sizeof(iv));
	mech.pParameter = iv;
	mech.ulParameterLen = sizeof(iv);
	/* CBC with padding never gives more than it is given */
	len = (CK_ULONG)w->enc_key_len;
	if ((out = OPENSSL_malloc(w->enc_key_len + 1)) == NULL) {
		ctx->f->C_DestroyObject(t->s, cek);
		return tok_fail(ctx, TOK_ERR_NOMEM, "out of memory");
	}
	ckr = ctx->f->C_DecryptInit(t->s, &mech, cek);
	if (ckr == CKR_OK)
		ckr = ctx->f->C_Decrypt(t->s, (CK_BYTE_PTR)w->enc_key, (CK_ULONG)w->enc_key_len,
					out, &len);
	ctx->f->C_DestroyObject(t->s, cek);
	OPENSSL_cleanse(iv, sizeof(iv));
	if (ckr != CKR_OK || len > w->enc_key_len) {
		OPENSSL_clear_free(out, w->enc_key_len + 1);
		snprintf(what, sizeof(what), "C_Decrypt (CKM_AES_CBC_PAD) on token '%s'",
			 ctx->label);
		return tok_fail_ckr(ctx, what, ckr != CKR_OK ? ckr : CKR_GENERAL_ERROR,
				    "the encrypted content is damaged: ask the CA again");
	}
	*ret_out = out;
	*ret_len = (size_t)len;
	return TOK_OK;
}

/* A big-endian copy of a key parameter, for a template; NULL on failure.
 * OPENSSL_clear_free(*ret, *ret_len) it. */
static unsigned char *param_bytes(EVP_PKEY *key, const char *name, size_t pad,
				  CK_ULONG *ret_len)
{
	BIGNUM *bn = NULL;
	unsigned char *b = NULL;
	int len;

	if (!EVP_PKEY_get_bn_param(key, name, &bn))
		return NULL;
	len = BN_num_bytes(bn);
	if ((size_t)len < pad)
		len = (int)pad;
	if ((b = OPENSSL_malloc((size_t)len + 1)) != NULL && BN_bn2binpad(bn, b, len) != len) {
		OPENSSL_clear_free(b, (size_t)len + 1);
		b = NULL;
	}
	BN_clear_free(bn);
	*ret_len = (CK_ULONG)len;
	return b;
}

tok_rv tok_import_private(tok_ctx *ctx, EVP_PKEY *key, EVP_PKEY *pub, const char *label,
			  int allow_decrypt, tok_id *ret_id)
{
	return tok_import_private_id(ctx, key, pub, label, allow_decrypt, NULL, ret_id);
}

tok_rv tok_import_private_id(tok_ctx *ctx, EVP_PKEY *key, EVP_PKEY *pub, const char *label,
			     int allow_decrypt, const tok_id *want_id, tok_id *ret_id)
{
	static const char *const rsa_names[] = {"n",		 "e",		  "d",
						"rsa-factor1",	 "rsa-factor2",	  "rsa-exponent1",
						"rsa-exponent2", "rsa-coefficient1"};
	static const CK_ATTRIBUTE_TYPE rsa_types[] = {
	    CKA_MODULUS, CKA_PUBLIC_EXPONENT, CKA_PRIVATE_EXPONENT, CKA_PRIME_1,
	    CKA_PRIME_2, CKA_EXPONENT_1,      CKA_EXPONENT_2,	    CKA_COEFFICIENT};
	unsigned char *parts[8] = {NULL};
	CK_ULONG lens[8] = {0};
	size_t i, nparts = 0;
	unsigned char *params = NULL;
	int plen = 0, bits;
	EC_GROUP *grp = NULL;
	char curve[64];
	CK_ATTRIBUTE tmpl[24];
	CK_ULONG n = 0;
	CK_OBJECT_HANDLE priv = CK_INVALID_HANDLE;
	CK_SESSION_HANDLE s;
	struct newkey k;
	char what[128];
	tok_rv rv;
	CK_RV ckr;

	if (ctx == NULL || key == NULL || pub == NULL || ret_id == NULL)
		return TOK_ERR_CONFIG;
	tok_clear_err(ctx);
	if (label == NULL)
		label = "";
	if (want_id != NULL && (want_id->len == 0 || want_id->len > sizeof(want_id->id)))
		return TOK_ERR_CONFIG;
	if (!ctx->logged_in)
		return tok_need_login(ctx, "importing a key");
	if ((rv = newkey_init(ctx, pub, allow_decrypt, &k)) != TOK_OK)
		return rv;
	if (want_id != NULL)
		k.id = *want_id;
	if (!EVP_PKEY_is_a(key, k.kt == CKK_EC ? "EC" : "RSA"))
		return tok_fail(ctx, TOK_ERR_MISMATCH,
				"importing a key into token '%s' failed: the key the CA sent is "
				"not of its certificate's key type: report this to the CA",
				ctx->label);
	newkey_template(&k, label, tmpl, &n);
	rv = TOK_ERR_NOMEM;
	if (k.kt == CKK_RSA) {
		for (i = 0; i < 8; i++, nparts++)
			if ((parts[i] = param_bytes(key, rsa_names[i], 0, &lens[i])) == NULL)
				goto out;
		for (i = 0; i < 8; i++)
			ADD(tmpl, n, rsa_types[i], parts[i], lens[i]);
	} else {
		/* CKA_VALUE: the private scalar, as long as the field */
		if (!EVP_PKEY_get_utf8_string_param(key, "group", curve, sizeof(curve), NULL) ||
		    (grp = EC_GROUP_new_by_curve_name(OBJ_sn2nid(curve))) == NULL ||
		    (plen = i2d_ECPKParameters(grp, &params)) <= 0 ||
		    (bits = EVP_PKEY_get_bits(key)) <= 0)
			goto out;
		nparts = 1;
		if ((parts[0] = param_bytes(key, "priv", ((size_t)bits + 7) / 8, &lens[0])) == NULL)
			goto out;
		ADD(tmpl, n, CKA_EC_PARAMS, params, plen);
		ADD(tmpl, n, CKA_VALUE, parts[0], lens[0]);
	}
	if ((rv = tok_session_open(ctx, 1, &s)) != TOK_OK)
		goto out;
	ckr = ctx->f->C_CreateObject(s, tmpl, n, &priv);
	if (ckr != CKR_OK) {
		snprintf(what, sizeof(what), "C_CreateObject (the private key) on token '%s'",
			 ctx->label);
		rv = tok_fail_ckr(ctx, what, ckr, NULL);
	} else {
		rv = newkey_finish(ctx, s, priv, pub, &k, label, ret_id);
	}
	tok_session_close(ctx, s);
out:
	for (i = 0; i < nparts; i++)
		if (parts[i] != NULL)
			OPENSSL_clear_free(parts[i], lens[i] + 1);
	OPENSSL_free(params);
	EC_GROUP_free(grp);
	if (rv == TOK_ERR_NOMEM && ctx->errmsg[0] == '\0')
		tok_fail(ctx, rv,
			 "importing a key into token '%s' failed: OpenSSL could not read the "
			 "key's parts: out of memory, or a key OpenSSL does not know",
			 ctx->label);
	return rv;
}
