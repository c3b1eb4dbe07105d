/*
 * tok: key archive (RFC 4211 6.4).  A private key generated archivable
 * (tok_keyspec.archivable: CKA_EXTRACTABLE TRUE, still CKA_SENSITIVE) is
 * wrapped out on the token for the CA's key-archive certificate and then
 * made non-extractable (CKA_EXTRACTABLE TRUE -> FALSE, the one change
 * PKCS#11 allows).  Its plaintext never reaches this process: a session
 * AES-256 key wraps it (C_WrapKey), and a session copy of the archive
 * certificate's RSA public key wraps that AES key (C_WrapKey again).
 *
 * CKA_WRAP_WITH_TRUSTED is not used: with it, the wrapping AES key must be
 * CKA_TRUSTED, which only the SO can set (SoftHSM2 2.6.1: CKA_TRUSTED is
 * CKR_ATTRIBUTE_READ_ONLY for the user, and C_WrapKey of such a key with
 * an untrusted key is CKR_KEY_NOT_WRAPPABLE), so every enrollment would
 * need the SO PIN.  What protects the key instead is the short window:
 * extractable from generation until the wrap, a few seconds, then never.
 *
 * SoftHSM2 2.6.1 (Debian 12), measured: C_WrapKey of an RSA or EC private
 * key works with CKM_AES_KEY_WRAP_PAD and CKM_AES_KEY_WRAP; CKM_AES_CBC_PAD
 * answers CKR_MECHANISM_INVALID although C_GetMechanismInfo gives it
 * CKF_WRAP (CKM_AES_CBC: CKR_GENERAL_ERROR); an AES key wraps under an RSA
 * public key with CKM_RSA_PKCS_OAEP (SHA-1) and CKM_RSA_PKCS.  CKA_EXTRACTABLE
 * TRUE -> FALSE is taken, FALSE -> TRUE is CKR_ATTRIBUTE_READ_ONLY, and
 * C_WrapKey after it CKR_KEY_UNEXTRACTABLE; CKA_NEVER_EXTRACTABLE stays FALSE.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/rand.h>

#include "pkcs11/tok-int.h"

#define ADD(t, n, type, ptr, len)                                                                  \
	(t)[(n)++] = (CK_ATTRIBUTE){(type), (void *)(ptr), (CK_ULONG)(len)}

static const CK_BBOOL yes = CK_TRUE, no = CK_FALSE;

void tok_wrapout_clear(tok_wrapout *w)
{
	if (w == NULL)
		return;
	OPENSSL_free(w->enc_cek);
	OPENSSL_free(w->enc_key);
	memset(w, 0, sizeof(*w));
}

/* The archive key as a session public key object that only wraps. */
static tok_rv make_pub(tok_ctx *ctx, CK_SESSION_HANDLE s, EVP_PKEY *to, CK_OBJECT_HANDLE *ret)
{
	static const CK_OBJECT_CLASS cls = CKO_PUBLIC_KEY;
	static const CK_KEY_TYPE kt = CKK_RSA;
	BIGNUM *n = NULL, *e = NULL;
	unsigned char *nb = NULL, *eb = NULL;
	int nl, el;
	CK_ATTRIBUTE t[9];
	CK_ULONG nt = 0;
	char what[128];
	tok_rv rv;
	CK_RV ckr;

	if (EVP_PKEY_get_base_id(to) != EVP_PKEY_RSA)
		return tok_fail(ctx, TOK_ERR_CONFIG,
				"wrapping a key for archive on token '%s' failed: the archive "
				"certificate's key is not RSA (key agreement recipients are not "
				"supported): ask the CA for an RSA key-archive certificate",
				ctx->label);
	if (!EVP_PKEY_get_bn_param(to, OSSL_PKEY_PARAM_RSA_N, &n) ||
	    !EVP_PKEY_get_bn_param(to, OSSL_PKEY_PARAM_RSA_E, &e) ||
	    (nl = BN_num_bytes(n)) <= 0 || (el = BN_num_bytes(e)) <= 0 ||
	    (nb = OPENSSL_malloc((size_t)nl)) == NULL || (eb = OPENSSL_malloc((size_t)el)) == NULL) {
		rv = tok_fail(ctx, TOK_ERR_NOMEM,
			      "wrapping a key for archive: cannot read the archive key (out of "
			      "memory?)");
		goto out;
	}
	BN_bn2bin(n, nb);
	BN_bn2bin(e, eb);
	ADD(t, nt, CKA_CLASS, &cls, sizeof(cls));
	ADD(t, nt, CKA_KEY_TYPE, &kt, sizeof(kt));
	ADD(t, nt, CKA_TOKEN, &no, sizeof(no));
	ADD(t, nt, CKA_WRAP, &yes, sizeof(yes));
	ADD(t, nt, CKA_ENCRYPT, &no, sizeof(no));
	ADD(t, nt, CKA_VERIFY, &no, sizeof(no));
	ADD(t, nt, CKA_MODULUS, nb, nl);
	ADD(t, nt, CKA_PUBLIC_EXPONENT, eb, el);
	ckr = ctx->f->C_CreateObject(s, t, nt, ret);
	rv = TOK_OK;
	if (ckr != CKR_OK) {
		snprintf(what, sizeof(what),
			 "C_CreateObject (the archive certificate's public key) on token '%s'",
			 ctx->label);
		rv = tok_fail_ckr(ctx, what, ckr, NULL);
	}
out:
	BN_free(n);
	BN_free(e);
	OPENSSL_free(nb);
	OPENSSL_free(eb);
	return rv;
}

/* C_WrapKey into a malloc'd buffer (two calls: the length, then the data). */
static CK_RV wrap(tok_ctx *ctx, CK_SESSION_HANDLE s, CK_MECHANISM *m, CK_OBJECT_HANDLE wk,
		  CK_OBJECT_HANDLE k, unsigned char **ret, size_t *ret_len)
{
	CK_ULONG len = 0;
	unsigned char *p;
	CK_RV ckr;

	*ret = NULL;
	*ret_len = 0;
	if ((ckr = ctx->f->C_WrapKey(s, m, wk, k, NULL, &len)) != CKR_OK)
		return ckr;
	if (len == 0 || len > TOK_ATTR_VALUE_MAX || (p = OPENSSL_malloc(len)) == NULL)
		return CKR_HOST_MEMORY;
	if ((ckr = ctx->f->C_WrapKey(s, m, wk, k, p, &len)) != CKR_OK) {
		OPENSSL_free(p);
		return ckr;
	}
	*ret = p;
	*ret_len = len;
	return CKR_OK;
}

/* The private key with CKA_ID id, checked to be archivable. */
static tok_rv find_key(tok_ctx *ctx, CK_SESSION_HANDLE s, const tok_id *id, CK_OBJECT_HANDLE *ret)
{
	CK_OBJECT_HANDLE *h = NULL;
	CK_ULONG n = 0, npriv = 0;
	char hex[2 * TOK_ID_MAX + 1];
	tok_rv rv;

	if ((rv = tok_find_by_id(ctx, s, id, 0, &h, &n, &npriv)) != TOK_OK)
		return rv;
	if (npriv != 1) {
		OPENSSL_free(h);
		return tok_fail(ctx, npriv == 0 ? TOK_ERR_NOT_FOUND : TOK_ERR_DEVICE,
				"wrapping a key for archive on token '%s' failed: %s private key "
				"with id %s",
				ctx->label, npriv == 0 ? "no" : "more than one",
				tok_id_hex(id, hex, sizeof(hex)));
	}
	*ret = h[0];
	OPENSSL_free(h);
	if (tok_attr_bool(ctx, s, *ret, CKA_EXTRACTABLE) != 1)
		return tok_fail(ctx, TOK_ERR_CONFIG,
				"wrapping a key for archive on token '%s' failed: the key with id %s "
				"is not extractable (it was not generated for archive, or was "
				"archived already): only a key generated with archive_key = yes can "
				"be archived",
				ctx->label, tok_id_hex(id, hex, sizeof(hex)));
	if (tok_attr_bool(ctx, s, *ret, CKA_SENSITIVE) != 1)
		return tok_fail(ctx, TOK_ERR_DEVICE,
				"wrapping a key for archive on token '%s' failed: the key with id %s "
				"is not sensitive: it is not archived from a token that would show it",
				ctx->label, tok_id_hex(id, hex, sizeof(hex)));
	return TOK_OK;
}

/* The private key's wrap under aes: the first of the mechanisms that the
 * token takes (w->enc says which). */
static CK_RV wrap_key(tok_ctx *ctx, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE aes,
		      CK_OBJECT_HANDLE priv, int cbc_first, tok_wrapout *w)
{
	CK_MECHANISM kwp = {CKM_AES_KEY_WRAP_PAD, NULL, 0}, cbc = {CKM_AES_CBC_PAD, w->iv, 16};
	CK_MECHANISM *order[2];
	CK_RV ckr = CKR_MECHANISM_INVALID, first = CKR_OK;
	int i;

	if (RAND_bytes(w->iv, sizeof(w->iv)) != 1)
		return CKR_FUNCTION_FAILED;
	order[0] = cbc_first ? &cbc : &kwp;
	order[1] = cbc_first ? &kwp : &cbc;
	for (i = 0; i < 2; i++) {
		ckr = wrap(ctx, s, order[i], aes, priv, &w->enc_key, &w->enc_key_len);
		if (ckr == CKR_OK) {
			w->enc = order[i] == &cbc ? TOK_ENC_AES_CBC_PAD : TOK_ENC_AES_KWP;
			return CKR_OK;
		}
		if (first == CKR_OK)
			first = ckr;
		/* only a mechanism the token lacks gets the other one */
		if (ckr != CKR_MECHANISM_INVALID && ckr != CKR_MECHANISM_PARAM_INVALID)
			break;
	}
	return first;
}

tok_rv tok_wrap_private(tok_ctx *ctx, const tok_id *id, EVP_PKEY *to, tok_kt kt, int cbc_first,
			tok_wrapout *ret_w)
{
	static const CK_OBJECT_CLASS sec = CKO_SECRET_KEY;
	static const CK_KEY_TYPE aes_t = CKK_AES;
	static const CK_ULONG aes_len = 32;
	CK_MECHANISM gen = {CKM_AES_KEY_GEN, NULL, 0};
	CK_RSA_PKCS_OAEP_PARAMS oaep = {CKM_SHA_1, CKG_MGF1_SHA1, CKZ_DATA_SPECIFIED, NULL, 0};
	CK_MECHANISM km = {CKM_RSA_PKCS_OAEP, &oaep, sizeof(oaep)};
	CK_ATTRIBUTE at[9], lock = {CKA_EXTRACTABLE, (void *)&no, sizeof(no)};
	CK_ULONG na = 0;
	CK_OBJECT_HANDLE priv = CK_INVALID_HANDLE, pub = CK_INVALID_HANDLE, aes = CK_INVALID_HANDLE;
	CK_SESSION_HANDLE s;
	tok_wrapout w;
	char what[160];
	tok_rv rv;
	CK_RV ckr;

	if (ctx == NULL || id == NULL || to == NULL || ret_w == NULL)
		return TOK_ERR_CONFIG;
	tok_clear_err(ctx);
	memset(&w, 0, sizeof(w));
	if (!ctx->logged_in)
		return tok_need_login(ctx, "wrapping a key for archive");
	if (kt == TOK_KT_RSA_PKCS1)
		km = (CK_MECHANISM){CKM_RSA_PKCS, NULL, 0};
	else if (kt != TOK_KT_RSA_OAEP_SHA1)
		return tok_fail(ctx, TOK_ERR_CONFIG,
				"wrapping a key for archive: only RSA-OAEP with SHA-1 or PKCS#1 v1.5 "
				"(what PKCS#11 tokens wrap with) is supported");
	w.kt = kt;
	if ((rv = tok_session_open(ctx, 1, &s)) != TOK_OK)
		return rv;
	if ((rv = find_key(ctx, s, id, &priv)) != TOK_OK)
		goto out;
	if ((rv = make_pub(ctx, s, to, &pub)) != TOK_OK)
		goto out;
	/* The AES key: a session object that wraps and nothing else, and
	 * leaves the token only wrapped to the archive key. */
	ADD(at, na, CKA_CLASS, &sec, sizeof(sec));
	ADD(at, na, CKA_KEY_TYPE, &aes_t, sizeof(aes_t));
	ADD(at, na, CKA_TOKEN, &no, sizeof(no));
	ADD(at, na, CKA_VALUE_LEN, &aes_len, sizeof(aes_len));
	ADD(at, na, CKA_WRAP, &yes, sizeof(yes));
	ADD(at, na, CKA_ENCRYPT, &no, sizeof(no));
	ADD(at, na, CKA_DECRYPT, &no, sizeof(no));
	ADD(at, na, CKA_SENSITIVE, &yes, sizeof(yes));
	ADD(at, na, CKA_EXTRACTABLE, &yes, sizeof(yes));
	if ((ckr = ctx->f->C_GenerateKey(s, &gen, at, na, &aes)) != CKR_OK) {
		snprintf(what, sizeof(what), "C_GenerateKey (AES-256 for the archive) on token '%s'",
			 ctx->label);
		rv = tok_fail_ckr(ctx, what, ckr, NULL);
		goto out;
	}
	if ((ckr = wrap_key(ctx, s, aes, priv, cbc_first, &w)) != CKR_OK) {
		snprintf(what, sizeof(what),
			 "C_WrapKey of the private key (AES-CBC-PAD, AES-KWP) on token '%s'",
			 ctx->label);
		rv = tok_fail_ckr(ctx, what, ckr,
				  ckr == CKR_MECHANISM_INVALID
				      ? "the token cannot wrap private keys with AES: set archive_key "
					"= no, or use a token that can"
				      : NULL);
		goto out;
	}
	ckr = wrap(ctx, s, &km, pub, aes, &w.enc_cek, &w.enc_cek_len);
	/* a token without OAEP wrapping: PKCS#1 v1.5, which every CA decrypts */
	if (kt == TOK_KT_RSA_OAEP_SHA1 &&
	    (ckr == CKR_MECHANISM_INVALID || ckr == CKR_MECHANISM_PARAM_INVALID)) {
		km = (CK_MECHANISM){CKM_RSA_PKCS, NULL, 0};
		kt = w.kt = TOK_KT_RSA_PKCS1;
		ckr = wrap(ctx, s, &km, pub, aes, &w.enc_cek, &w.enc_cek_len);
	}
	if (ckr != CKR_OK) {
		snprintf(what, sizeof(what),
			 "C_WrapKey of the AES key to the archive certificate (%s) on token '%s'",
			 kt == TOK_KT_RSA_PKCS1 ? "RSA PKCS#1 v1.5" : "RSA-OAEP SHA-1", ctx->label);
		rv = tok_fail_ckr(ctx, what, ckr, NULL);
		goto out;
	}
	/* Archived: from now on nobody exports it, not even wrapped. */
	if ((ckr = ctx->f->C_SetAttributeValue(s, priv, &lock, 1)) != CKR_OK ||
	    tok_attr_bool(ctx, s, priv, CKA_EXTRACTABLE) != 0) {
		snprintf(what, sizeof(what),
			 "making the archived key non-extractable (CKA_EXTRACTABLE FALSE) on "
			 "token '%s'",
			 ctx->label);
		rv = tok_fail_ckr(ctx, what, ckr != CKR_OK ? ckr : CKR_ATTRIBUTE_VALUE_INVALID,
				  "the token keeps the key extractable: it is not archived from "
				  "this token; set archive_key = no, or use another token");
		goto out;
	}
	*ret_w = w;
	memset(&w, 0, sizeof(w));
	rv = TOK_OK;
out:
	if (aes != CK_INVALID_HANDLE)
		(void)ctx->f->C_DestroyObject(s, aes);
	if (pub != CK_INVALID_HANDLE)
		(void)ctx->f->C_DestroyObject(s, pub);
	tok_session_close(ctx, s);
	tok_wrapout_clear(&w);
	return rv;
}
