/*
 * tok: token keys as EVP_PKEYs (through libp11), key destruction and the
 * object listing (raw calls).
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "pkcs11/tok-int.h"

static int id_eq(const unsigned char *a, size_t alen, const tok_id *id)
{
	return alen == id->len && (alen == 0 || memcmp(a, id->id, alen) == 0);
}

/*
 * libp11's key list is refreshed on every call; it may still hold entries
 * for objects destroyed through the raw function list, so every candidate
 * is checked against the public key read from the token just now.
 */
static tok_rv libp11_private_key(tok_ctx *ctx, const tok_id *id, EVP_PKEY *pub, EVP_PKEY **ret_pkey)
{
	PKCS11_KEY *keys = NULL;
	unsigned int n = 0, i;
	char err[256], hex[2 * TOK_ID_MAX + 1];

	ERR_clear_error();
	if (PKCS11_enumerate_keys(ctx->slot->token, &keys, &n) != 0) {
		ERR_error_string_n(ERR_peek_last_error(), err, sizeof(err));
		ERR_clear_error();
		return tok_fail(ctx, TOK_ERR_DEVICE,
				"listing the keys of token '%s' with libp11 failed: %s: check "
				"that the token is present and start again",
				ctx->label, err);
	}
	for (i = 0; i < n; i++) {
		EVP_PKEY *pkey;

		if (!keys[i].isPrivate || !id_eq(keys[i].id, keys[i].id_len, id))
			continue;
		pkey = PKCS11_get_private_key(&keys[i]);
		if (pkey == NULL)
			continue;
		if (tok_pubkey_equal(pkey, pub)) {
			*ret_pkey = pkey;
			return TOK_OK;
		}
		EVP_PKEY_free(pkey);
	}
	ERR_clear_error();
	return tok_fail(ctx, TOK_ERR_DEVICE,
			"getting private key %s of token '%s' from libp11 failed: libp11 gives "
			"no key with the token's public key: start again; report it if it "
			"persists",
			tok_id_hex(id, hex, sizeof(hex)), ctx->label);
}

tok_rv tok_key_get1_private(tok_ctx *ctx, const tok_id *id, EVP_PKEY **ret_pkey)
{
	static const CK_OBJECT_CLASS priv_cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE tmpl[2] = {
	    {CKA_CLASS, (void *)&priv_cls, sizeof(priv_cls)},
	    {CKA_ID, NULL, 0},
	};
	CK_OBJECT_HANDLE h;
	CK_ULONG n;
	CK_SESSION_HANDLE s;
	EVP_PKEY *pub = NULL;
	char hex[2 * TOK_ID_MAX + 1];
	tok_rv rv;

	if (ctx == NULL || id == NULL || ret_pkey == NULL || id->len > TOK_ID_MAX)
		return TOK_ERR_CONFIG;
	tok_clear_err(ctx);
	if (!ctx->logged_in)
		return tok_need_login(ctx, "getting a private key");
	tmpl[1].pValue = (void *)id->id;
	tmpl[1].ulValueLen = id->len;
	if ((rv = tok_session_open(ctx, 0, &s)) != TOK_OK)
		return rv;
	rv = tok_find(ctx, s, tmpl, 2, &h, 1, &n);
	if (rv == TOK_OK && n == 0)
		rv = tok_fail(ctx, TOK_ERR_NOT_FOUND,
			      "finding private key %s on token '%s' failed: no such key: list "
			      "the token's objects to see which keys exist",
			      tok_id_hex(id, hex, sizeof(hex)), ctx->label);
	if (rv == TOK_OK)
		rv = tok_pubkey_by_id(ctx, s, id, &pub);
	tok_session_close(ctx, s);
	if (rv == TOK_OK)
		rv = libp11_private_key(ctx, id, pub, ret_pkey);
	EVP_PKEY_free(pub);
	return rv;
}

tok_rv tok_key_destroy(tok_ctx *ctx, const tok_id *id, int with_certs)
{
	CK_OBJECT_HANDLE *hs = NULL;
	CK_ULONG n = 0, j;
	CK_SESSION_HANDLE s;
	char what[96], hex[2 * TOK_ID_MAX + 1];
	tok_rv rv;
	CK_RV ckr;

	if (ctx == NULL || id == NULL || id->len > TOK_ID_MAX)
		return TOK_ERR_CONFIG;
	tok_clear_err(ctx);
	if (!ctx->logged_in)
		return tok_need_login(ctx, "destroying a key");
	if ((rv = tok_session_open(ctx, 1, &s)) != TOK_OK)
		return rv;
	rv = tok_find_by_id(ctx, s, id, with_certs, &hs, &n);
	for (j = 0; rv == TOK_OK && j < n; j++) {
		ckr = ctx->f->C_DestroyObject(s, hs[j]);
		if (ckr != CKR_OK) {
			snprintf(what, sizeof(what), "C_DestroyObject on token '%s'", ctx->label);
			rv = tok_fail_ckr(ctx, what, ckr, NULL);
		}
	}
	OPENSSL_free(hs);
	tok_session_close(ctx, s);
	if (rv == TOK_OK && n == 0)
		rv = tok_fail(ctx, TOK_ERR_NOT_FOUND,
			      "destroying key %s on token '%s' failed: no such key: list the "
			      "token's objects to see which keys exist",
			      tok_id_hex(id, hex, sizeof(hex)), ctx->label);
	return rv;
}

static int object_fill(tok_ctx *ctx, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, CK_OBJECT_CLASS cls,
		       tok_object *o)
{
	unsigned char *v = NULL;
	const unsigned char *p;
	CK_ULONG len = 0, ul;

	o->cls = cls;
	o->key_type = ~0UL;
	o->sensitive = o->always_sensitive = o->extractable = o->never_extractable = -1;
	o->local = -1;
	o->cert_category = -1;
	if (tok_attr_get(ctx, s, h, CKA_ID, &v, &len) == CKR_OK && len <= TOK_ID_MAX) {
		if (len > 0)
			memcpy(o->id.id, v, len);
		o->id.len = len;
	}
	OPENSSL_free(v);
	v = NULL;
	if (tok_attr_get(ctx, s, h, CKA_LABEL, &v, &len) != CKR_OK)
		len = 0;
	o->label = OPENSSL_zalloc(len + 1);
	if (o->label == NULL) {
		OPENSSL_free(v);
		return 0;
	}
	if (len > 0)
		memcpy(o->label, v, len);
	OPENSSL_free(v);
	v = NULL;

	if (cls == CKO_CERTIFICATE) {
		if (tok_attr_ulong(ctx, s, h, CKA_CERTIFICATE_CATEGORY, &ul) == 0)
			o->cert_category = (int)ul;
		if (tok_attr_get(ctx, s, h, CKA_VALUE, &v, &len) == CKR_OK && len > 0) {
			p = v;
			o->cert = d2i_X509(NULL, &p, (long)len);
		}
		OPENSSL_free(v);
		return 1;
	}
	if (tok_attr_ulong(ctx, s, h, CKA_KEY_TYPE, &ul) == 0)
		o->key_type = ul;
	if (o->key_type == CKK_RSA) {
		if (tok_attr_ulong(ctx, s, h, CKA_MODULUS_BITS, &ul) == 0)
			o->key_bits = (int)ul;
		else if (tok_attr_get(ctx, s, h, CKA_MODULUS, &v, &len) == CKR_OK)
			o->key_bits = (int)len * 8;
	} else if (o->key_type == CKK_EC) {
		if (tok_attr_get(ctx, s, h, CKA_EC_PARAMS, &v, &len) == CKR_OK && len > 0)
			o->key_bits = tok_ec_params_bits(v, len);
	}
	OPENSSL_free(v);
	o->local = tok_attr_bool(ctx, s, h, CKA_LOCAL);
	if (cls == CKO_PRIVATE_KEY) {
		o->sensitive = tok_attr_bool(ctx, s, h, CKA_SENSITIVE);
		o->always_sensitive = tok_attr_bool(ctx, s, h, CKA_ALWAYS_SENSITIVE);
		o->extractable = tok_attr_bool(ctx, s, h, CKA_EXTRACTABLE);
		o->never_extractable = tok_attr_bool(ctx, s, h, CKA_NEVER_EXTRACTABLE);
	}
	return 1;
}

tok_rv tok_objects(tok_ctx *ctx, tok_object **ret_objs, size_t *ret_n)
{
	static const CK_OBJECT_CLASS classes[3] = {CKO_PRIVATE_KEY, CKO_PUBLIC_KEY,
						   CKO_CERTIFICATE};
	CK_OBJECT_CLASS cls;
	CK_ATTRIBUTE tmpl = {CKA_CLASS, &cls, sizeof(cls)};
	CK_OBJECT_HANDLE *hs[3] = {NULL, NULL, NULL};
	CK_ULONG ns[3] = {0, 0, 0}, j;
	CK_SESSION_HANDLE s;
	tok_object *objs = NULL;
	size_t total = 0, k = 0;
	tok_rv rv;
	int i;

	if (ctx == NULL || ret_objs == NULL || ret_n == NULL)
		return TOK_ERR_CONFIG;
	tok_clear_err(ctx);
	if ((rv = tok_session_open(ctx, 0, &s)) != TOK_OK)
		return rv;
	for (i = 0; i < 3; i++) {
		cls = classes[i];
		if ((rv = tok_find_all(ctx, s, &tmpl, 1, &hs[i], &ns[i])) != TOK_OK)
			goto out;
		total += ns[i];
	}
	objs = OPENSSL_zalloc((total ? total : 1) * sizeof(*objs));
	if (objs == NULL) {
		rv = tok_fail(ctx, TOK_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < 3; i++) {
		for (j = 0; j < ns[i]; j++) {
			if (!object_fill(ctx, s, hs[i][j], classes[i], &objs[k++])) {
				tok_objects_free(objs, k);
				objs = NULL;
				rv = tok_fail(ctx, TOK_ERR_NOMEM, "out of memory");
				goto out;
			}
		}
	}
	*ret_objs = objs;
	*ret_n = total;
out:
	for (i = 0; i < 3; i++)
		OPENSSL_free(hs[i]);
	tok_session_close(ctx, s);
	return rv;
}

void tok_objects_free(tok_object *objs, size_t n)
{
	size_t i;

	if (objs == NULL)
		return;
	for (i = 0; i < n; i++) {
		OPENSSL_free(objs[i].label);
		X509_free(objs[i].cert);
	}
	OPENSSL_free(objs);
}
