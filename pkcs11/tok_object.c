/*
 * tok: token keys as EVP_PKEYs (tok_sign.c signs with them), key
 * destruction and the object listing.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "pkcs11/tok-int.h"

tok_rv tok_key_get1_private(tok_ctx *ctx, const tok_id *id, EVP_PKEY **ret_pkey)
{
	CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
	CK_SESSION_HANDLE s;
	EVP_PKEY *pub = NULL;
	char hex[2 * TOK_ID_MAX + 1];
	tok_rv rv;

	if (ctx == NULL || id == NULL || ret_pkey == NULL || id->len > TOK_ID_MAX)
		return TOK_ERR_CONFIG;
	tok_clear_err(ctx);
	if (!ctx->logged_in)
		return tok_need_login(ctx, "getting a private key");
	if ((rv = tok_session_open(ctx, 0, &s)) != TOK_OK)
		return rv;
	rv = tok_pubkey_by_id(ctx, s, id, &pub, &h);
	tok_session_close(ctx, s);
	if ((rv == TOK_OK || rv == TOK_ERR_NOT_FOUND) && h == CK_INVALID_HANDLE)
		rv = tok_fail(ctx, TOK_ERR_NOT_FOUND,
			      "finding private key %s on token '%s' failed: no such key: list "
			      "the token's objects to see which keys exist",
			      tok_id_hex(id, hex, sizeof(hex)), ctx->label);
	if (rv == TOK_OK)
		rv = tok_signer_wrap(ctx, h, pub, ret_pkey);
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
	tok_made_forget(ctx, id);
	rv = tok_find_by_id(ctx, s, id, with_certs, &hs, &n, NULL);
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

/* Where each attribute object_fill reads sits in its request. */
enum { A_ID, A_LABEL, A_CATEGORY, A_VALUE, A_CLASS = A_VALUE };
#define CLS_UNKNOWN (~(CK_OBJECT_CLASS)0)
enum { K_TYPE = 2, K_LOCAL, K_SIZE, K_EC_PARAMS, K_SENSITIVE, K_ALWAYS_SENSITIVE, K_EXTRACTABLE,
       K_NEVER_EXTRACTABLE };

/*
 * o from object h of class cls, read in one C_GetAttributeValue when the
 * token has every attribute asked: CKA_ID, CKA_LABEL, a certificate's
 * category, and with details everything `list` shows (a certificate's
 * value, a key's type, size and protection).  cls CLS_UNKNOWN: the class
 * is read too (not with details), and -1 says it is none of the three.
 * 0: out of memory, or the token failed (*ret_ckr).
 */
static int object_fill(tok_ctx *ctx, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, CK_OBJECT_CLASS cls,
		       int details, tok_object *o, CK_RV *ret_ckr)
{
	tok_attr_val a[TOK_ATTRS_MAX];
	const unsigned char *p;
	CK_ULONG ul;
	size_t n = 2;
	CK_RV rv;

	memset(o, 0, sizeof(*o));
	o->cls = cls;
	o->key_type = ~0UL;
	o->sensitive = o->always_sensitive = o->extractable = o->never_extractable = -1;
	o->local = -1;
	o->cert_category = -1;
	a[A_ID].type = CKA_ID;
	a[A_LABEL].type = CKA_LABEL;
	if (cls == CLS_UNKNOWN) {
		/* found without a class: ask it, and the category it may have */
		a[n++].type = CKA_CERTIFICATE_CATEGORY;
		a[n++].type = CKA_CLASS;
	} else if (cls == CKO_CERTIFICATE) {
		a[n++].type = CKA_CERTIFICATE_CATEGORY;
		if (details)
			a[n++].type = CKA_VALUE;
	} else if (details) {
		a[n++].type = CKA_KEY_TYPE;
		a[n++].type = CKA_LOCAL;
		/* a public RSA key says its size; a private one only through
		 * its modulus */
		a[n++].type = cls == CKO_PUBLIC_KEY ? CKA_MODULUS_BITS : CKA_MODULUS;
		a[n++].type = CKA_EC_PARAMS;
		if (cls == CKO_PRIVATE_KEY) {
			a[n++].type = CKA_SENSITIVE;
			a[n++].type = CKA_ALWAYS_SENSITIVE;
			a[n++].type = CKA_EXTRACTABLE;
			a[n++].type = CKA_NEVER_EXTRACTABLE;
		}
	}
	if ((rv = tok_attrs_read(ctx, s, h, a, n)) != CKR_OK) {
		*ret_ckr = rv;
		return 0;
	}
	if (cls == CLS_UNKNOWN) {
		if (tok_attr_val_ulong(&a[A_CLASS], &ul) != 0 ||
		    (ul != CKO_PRIVATE_KEY && ul != CKO_PUBLIC_KEY && ul != CKO_CERTIFICATE)) {
			tok_attrs_free(a, n);
			return -1; /* a data object, a secret key: not ours */
		}
		o->cls = cls = ul;
	}
	if (a[A_ID].v != NULL && a[A_ID].len <= TOK_ID_MAX) {
		memcpy(o->id.id, a[A_ID].v, a[A_ID].len);
		o->id.len = a[A_ID].len;
	}
	/* the label as a C string: from its first NUL on it is not shown */
	o->label = OPENSSL_strdup(a[A_LABEL].v != NULL ? (const char *)a[A_LABEL].v : "");
	if (o->label == NULL) {
		tok_attrs_free(a, n);
		*ret_ckr = CKR_HOST_MEMORY;
		return 0;
	}
	if (cls == CKO_CERTIFICATE) {
		if (tok_attr_val_ulong(&a[A_CATEGORY], &ul) == 0)
			o->cert_category = (int)ul;
		if (details && a[A_VALUE].v != NULL && a[A_VALUE].len > 0) {
			p = a[A_VALUE].v;
			o->cert = d2i_X509(NULL, &p, (long)a[A_VALUE].len);
		}
	} else if (details) {
		if (tok_attr_val_ulong(&a[K_TYPE], &ul) == 0)
			o->key_type = ul;
		o->local = tok_attr_val_bool(&a[K_LOCAL]);
		if (o->key_type == CKK_RSA && cls == CKO_PUBLIC_KEY &&
		    tok_attr_val_ulong(&a[K_SIZE], &ul) == 0)
			o->key_bits = (int)ul;
		else if (o->key_type == CKK_RSA && cls == CKO_PRIVATE_KEY && a[K_SIZE].v != NULL)
			o->key_bits = (int)a[K_SIZE].len * 8;
		else if (o->key_type == CKK_EC && a[K_EC_PARAMS].v != NULL)
			o->key_bits = tok_ec_params_bits(a[K_EC_PARAMS].v, a[K_EC_PARAMS].len);
		if (cls == CKO_PRIVATE_KEY) {
			o->sensitive = tok_attr_val_bool(&a[K_SENSITIVE]);
			o->always_sensitive = tok_attr_val_bool(&a[K_ALWAYS_SENSITIVE]);
			o->extractable = tok_attr_val_bool(&a[K_EXTRACTABLE]);
			o->never_extractable = tok_attr_val_bool(&a[K_NEVER_EXTRACTABLE]);
		}
	}
	tok_attrs_free(a, n);
	return 1;
}

/* A growing list of objects, and the handles it holds.  overlap: its
 * searches may find an object twice (by label, then by id), so each is
 * checked against the list; tok_objects's searches by class cannot, and a
 * listing of the whole token is not made quadratic by the check. */
typedef struct {
	tok_object *o;
	CK_OBJECT_HANDLE *h;
	size_t n, cap;
	int overlap;
} obj_list;

static int seen(const obj_list *l, CK_OBJECT_HANDLE h)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (l->h[i] == h)
			return 1;
	return 0;
}

/* Every object of class cls matching tmpl that l does not hold yet. */
static tok_rv collect(tok_ctx *ctx, CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls, CK_ATTRIBUTE *tmpl,
		      CK_ULONG ntmpl, int details, obj_list *l)
{
	CK_OBJECT_HANDLE *hs = NULL;
	CK_ULONG nh = 0, j;
	char what[96];
	tok_rv rv;
	CK_RV ckr;

	if ((rv = tok_find_all(ctx, s, tmpl, ntmpl, &hs, &nh)) != TOK_OK)
		return rv;
	for (j = 0; j < nh && rv == TOK_OK; j++) {
		if (l->overlap && seen(l, hs[j]))
			continue;
		if (l->n == l->cap) {
			size_t cap = l->cap ? 2 * l->cap : 16;
			tok_object *o = OPENSSL_realloc(l->o, cap * sizeof(*o));
			CK_OBJECT_HANDLE *h = o ? OPENSSL_realloc(l->h, cap * sizeof(*h)) : NULL;

			if (o != NULL)
				l->o = o;
			if (h == NULL) {
				rv = tok_fail(ctx, TOK_ERR_NOMEM, "out of memory");
				break;
			}
			l->h = h;
			l->cap = cap;
		}
		int got = object_fill(ctx, s, hs[j], cls, cls == CLS_UNKNOWN ? 0 : details,
				      &l->o[l->n], &ckr);

		/* the class known now, the details come in a second read */
		if (got > 0 && cls == CLS_UNKNOWN && details) {
			CK_OBJECT_CLASS known = l->o[l->n].cls;

			OPENSSL_free(l->o[l->n].label);
			got = object_fill(ctx, s, hs[j], known, 1, &l->o[l->n], &ckr);
		}

		if (got < 0)
			continue;
		if (got == 0) {
			if (ckr == CKR_OBJECT_HANDLE_INVALID)
				continue; /* deleted since the search: not there */
			snprintf(what, sizeof(what), "reading an object's attributes on token '%s'",
				 ctx->label);
			rv = ckr == CKR_HOST_MEMORY ? tok_fail(ctx, TOK_ERR_NOMEM, "out of memory")
						    : tok_fail_ckr(ctx, what, ckr, NULL);
			break;
		}
		l->h[l->n++] = hs[j];
	}
	OPENSSL_free(hs);
	return rv;
}

static const CK_OBJECT_CLASS classes[3] = {CKO_PRIVATE_KEY, CKO_PUBLIC_KEY, CKO_CERTIFICATE};

static tok_rv finish(tok_ctx *ctx, CK_SESSION_HANDLE s, tok_rv rv, obj_list *l,
		     tok_object **ret_objs, size_t *ret_n)
{
	tok_session_close(ctx, s);
	OPENSSL_free(l->h);
	if (rv != TOK_OK) {
		tok_objects_free(l->o, l->n);
		return rv;
	}
	if (l->o == NULL && (l->o = OPENSSL_zalloc(sizeof(*l->o))) == NULL)
		return tok_fail(ctx, TOK_ERR_NOMEM, "out of memory");
	*ret_objs = l->o;
	*ret_n = l->n;
	return TOK_OK;
}

tok_rv tok_objects(tok_ctx *ctx, tok_object **ret_objs, size_t *ret_n)
{
	CK_OBJECT_CLASS cls;
	CK_ATTRIBUTE tmpl = {CKA_CLASS, &cls, sizeof(cls)};
	CK_SESSION_HANDLE s;
	obj_list l = {NULL, NULL, 0, 0, 0};
	tok_rv rv = TOK_OK;
	int i;

	if (ctx == NULL || ret_objs == NULL || ret_n == NULL)
		return TOK_ERR_CONFIG;
	tok_clear_err(ctx);
	if ((rv = tok_session_open(ctx, 0, &s)) != TOK_OK)
		return rv;
	for (i = 0; i < 3 && rv == TOK_OK; i++) {
		cls = classes[i];
		rv = collect(ctx, s, cls, &tmpl, 1, 1, &l);
	}
	return finish(ctx, s, rv, &l, ret_objs, ret_n);
}

tok_rv tok_objects_for(tok_ctx *ctx, const char *const *labels, size_t nlabels, unsigned flags,
		       tok_object **ret_objs, size_t *ret_n)
{
	static const CK_OBJECT_CLASS cert_cls = CKO_CERTIFICATE;
	static const CK_ULONG authority = 2;
	CK_ATTRIBUTE ca[2] = {{CKA_CLASS, (void *)&cert_cls, sizeof(cert_cls)},
			      {CKA_CERTIFICATE_CATEGORY, (void *)&authority, sizeof(authority)}};
	int details = (flags & TOK_FOR_DETAILS) != 0;
	CK_ATTRIBUTE tmpl = {CKA_LABEL, NULL, 0};
	CK_SESSION_HANDLE s;
	obj_list l = {NULL, NULL, 0, 0, 1};
	size_t j, k, labelled;
	tok_rv rv = TOK_OK;

	if (ctx == NULL || labels == NULL || ret_objs == NULL || ret_n == NULL)
		return TOK_ERR_CONFIG;
	tok_clear_err(ctx);
	if ((rv = tok_session_open(ctx, 0, &s)) != TOK_OK)
		return rv;
	/* One search per label and per id, without a class: on SoftHSM2 each
	 * search reads every object file of the token. */
	for (j = 0; j < nlabels && rv == TOK_OK; j++) {
		tmpl.pValue = (void *)labels[j];
		tmpl.ulValueLen = strlen(labels[j]);
		rv = collect(ctx, s, CLS_UNKNOWN, &tmpl, 1, details, &l);
	}
	/* Then whatever shares an id with them, under any label. */
	labelled = flags & TOK_FOR_IDS ? l.n : 0;
	tmpl.type = CKA_ID;
	for (j = 0; j < labelled && rv == TOK_OK; j++) {
		tok_id id;

		if (l.o[j].id.len == 0)
			continue;
		for (k = 0; k < j; k++)
			if (l.o[k].id.len == l.o[j].id.len &&
			    memcmp(l.o[k].id.id, l.o[j].id.id, l.o[j].id.len) == 0)
				break;
		if (k < j)
			continue; /* this id was searched already */
		id = l.o[j].id; /* collect() may move l.o */
		tmpl.pValue = id.id;
		tmpl.ulValueLen = id.len;
		rv = collect(ctx, s, CLS_UNKNOWN, &tmpl, 1, details, &l);
	}
	if (rv == TOK_OK && (flags & TOK_FOR_CA_CERTS))
		rv = collect(ctx, s, CKO_CERTIFICATE, ca, 2, details, &l);
	return finish(ctx, s, rv, &l, ret_objs, ret_n);
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
