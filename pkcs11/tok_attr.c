/*
 * tok: raw sessions and attribute reads on the function list of the
 * module instance libp11 loaded.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "pkcs11/tok-int.h"

/*
 * Every call shares the context's anchor session: each session a module
 * opens or closes costs (SoftHSM2 re-reads its object files), and one
 * session keeps the login.  Only a read-only token, whose anchor could
 * not be R/W, gets a session of its own for a write (which then fails
 * with the token's own CKR).
 */
tok_rv tok_session_open(tok_ctx *ctx, int rw, CK_SESSION_HANDLE *ret_s)
{
	CK_FLAGS flags = CKF_SERIAL_SESSION | (rw ? CKF_RW_SESSION : 0);
	char what[96];
	CK_RV rv;

	if (ctx->f == NULL || ctx->slot == NULL)
		return tok_fail(ctx, TOK_ERR_ABSENT, "no token: tok_open failed");
	if (ctx->have_anchor && (!rw || ctx->anchor_rw)) {
		*ret_s = ctx->anchor;
		return TOK_OK;
	}
	rv = ctx->f->C_OpenSession(ctx->slot_id, flags, NULL, NULL, ret_s);
	if (rv != CKR_OK) {
		snprintf(what, sizeof(what), "C_OpenSession (%s) on token '%s'", rw ? "R/W" : "R/O",
			 ctx->label);
		return tok_fail_ckr(ctx, what, rv, NULL);
	}
	return TOK_OK;
}

void tok_anchor_renew(tok_ctx *ctx)
{
	CK_FLAGS flags = CKF_SERIAL_SESSION | (ctx->anchor_rw ? CKF_RW_SESSION : 0);
	CK_SESSION_HANDLE s;

	if (ctx->f == NULL || !ctx->have_anchor ||
	    ctx->f->C_OpenSession(ctx->slot_id, flags, NULL, NULL, &s) != CKR_OK)
		return;
	/* the new session is open: closing the old one keeps the login */
	ctx->f->C_CloseSession(ctx->anchor);
	ctx->anchor = s;
}

void tok_session_close(tok_ctx *ctx, CK_SESSION_HANDLE s)
{
	if (ctx->have_anchor && s == ctx->anchor)
		return;
	ctx->f->C_CloseSession(s);
}

CK_RV tok_attr_get(tok_ctx *ctx, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type,
		   unsigned char **ret_v, CK_ULONG *ret_len)
{
	CK_ATTRIBUTE a = {type, NULL, 0};
	unsigned char *v;
	CK_RV rv;

	*ret_v = NULL;
	*ret_len = 0;
	rv = ctx->f->C_GetAttributeValue(s, h, &a, 1);
	if (rv != CKR_OK)
		return rv;
	if (a.ulValueLen == (CK_ULONG)-1)
		return CKR_ATTRIBUTE_TYPE_INVALID;
	if (a.ulValueLen == 0)
		return CKR_OK;
	if ((v = a.pValue = OPENSSL_malloc(a.ulValueLen)) == NULL)
		return CKR_HOST_MEMORY;
	rv = ctx->f->C_GetAttributeValue(s, h, &a, 1);
	/* the module may have set pValue to NULL (tok_attrs_read) */
	if (rv != CKR_OK || a.ulValueLen == CK_UNAVAILABLE_INFORMATION) {
		OPENSSL_free(v);
		return rv != CKR_OK ? rv : CKR_ATTRIBUTE_TYPE_INVALID;
	}
	*ret_v = v;
	*ret_len = a.ulValueLen;
	return CKR_OK;
}

int tok_attr_bool(tok_ctx *ctx, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type)
{
	CK_BBOOL v = CK_FALSE;
	CK_ATTRIBUTE a = {type, &v, sizeof(v)};

	if (ctx->f->C_GetAttributeValue(s, h, &a, 1) != CKR_OK || a.ulValueLen != sizeof(v))
		return -1;
	return v ? 1 : 0;
}

int tok_attr_ulong(tok_ctx *ctx, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type,
		   CK_ULONG *ret_v)
{
	CK_ULONG v = 0;
	CK_ATTRIBUTE a = {type, &v, sizeof(v)};

	if (ctx->f->C_GetAttributeValue(s, h, &a, 1) != CKR_OK || a.ulValueLen != sizeof(v))
		return -1;
	*ret_v = v;
	return 0;
}

/* Room for a first try at reading a value of this type: enough for what
 * tokens usually hold, so that one call reads an object. */
static CK_ULONG first_room(CK_ATTRIBUTE_TYPE type)
{
	switch (type) {
	case CKA_CLASS:
	case CKA_KEY_TYPE:
	case CKA_CERTIFICATE_TYPE:
	case CKA_CERTIFICATE_CATEGORY:
	case CKA_MODULUS_BITS:
	case CKA_TOKEN:
	case CKA_PRIVATE:
	case CKA_SENSITIVE:
	case CKA_ALWAYS_SENSITIVE:
	case CKA_EXTRACTABLE:
	case CKA_NEVER_EXTRACTABLE:
	case CKA_LOCAL:
		return sizeof(CK_ULONG);
	case CKA_ID:
	case CKA_EC_PARAMS:
		return 128;
	case CKA_LABEL:
	case CKA_EC_POINT:
		return 256;
	default:
		return 2048;
	}
}

void tok_attrs_free(tok_attr_val *a, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		OPENSSL_free(a[i].v);
		a[i].v = NULL;
		a[i].len = CK_UNAVAILABLE_INFORMATION;
	}
}

CK_RV tok_attrs_read(tok_ctx *ctx, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, tok_attr_val *a,
		     size_t n)
{
	CK_ATTRIBUTE t[TOK_ATTRS_MAX], again[TOK_ATTRS_MAX];
	unsigned char *buf[TOK_ATTRS_MAX];
	size_t idx[TOK_ATTRS_MAX], i, m = 0;
	CK_RV rv;

	if (n == 0 || n > TOK_ATTRS_MAX)
		return CKR_ARGUMENTS_BAD;
	for (i = 0; i < n; i++) {
		a[i].v = NULL;
		a[i].len = CK_UNAVAILABLE_INFORMATION;
		t[i].pValue = NULL;
	}
	for (i = 0; i < n; i++) {
		t[i].type = a[i].type;
		t[i].ulValueLen = first_room(a[i].type);
		if ((t[i].pValue = buf[i] = OPENSSL_malloc(t[i].ulValueLen + 1)) == NULL) {
			rv = CKR_HOST_MEMORY;
			goto fail;
		}
	}
	rv = ctx->f->C_GetAttributeValue(s, h, t, (CK_ULONG)n);
	/* tpm2-pkcs11 1.9 sets pValue to NULL for an attribute the object
	 * lacks: the buffers are ours to keep track of */
	for (i = 0; i < n; i++)
		t[i].pValue = buf[i];
	/* These three leave the other values filled in (PKCS#11 2.40 5.7). */
	if (rv != CKR_OK && rv != CKR_ATTRIBUTE_SENSITIVE && rv != CKR_ATTRIBUTE_TYPE_INVALID &&
	    rv != CKR_BUFFER_TOO_SMALL)
		goto fail;
	for (i = 0; i < n; i++) {
		CK_ULONG room = first_room(a[i].type);

		if (t[i].ulValueLen == CK_UNAVAILABLE_INFORMATION || t[i].ulValueLen > room) {
			/* too small, absent or sensitive: its length is asked */
			OPENSSL_free(t[i].pValue);
			t[i].pValue = NULL;
			again[m].type = a[i].type;
			again[m].pValue = NULL;
			again[m].ulValueLen = 0;
			idx[m++] = i;
			continue;
		}
		a[i].v = t[i].pValue;
		a[i].v[t[i].ulValueLen] = '\0';
		a[i].len = t[i].ulValueLen;
		t[i].pValue = NULL;
	}
	if (m == 0)
		return CKR_OK;
	rv = ctx->f->C_GetAttributeValue(s, h, again, (CK_ULONG)m);
	if (rv != CKR_OK && rv != CKR_ATTRIBUTE_SENSITIVE && rv != CKR_ATTRIBUTE_TYPE_INVALID)
		goto fail;
	for (i = 0; i < m; i++) {
		if (again[i].ulValueLen == CK_UNAVAILABLE_INFORMATION ||
		    again[i].ulValueLen > TOK_ATTR_VALUE_MAX) {
			again[i].ulValueLen = CK_UNAVAILABLE_INFORMATION;
			continue;
		}
		if ((again[i].pValue = OPENSSL_malloc(again[i].ulValueLen + 1)) == NULL) {
			rv = CKR_HOST_MEMORY;
			goto fail_again;
		}
	}
	/* Only those with a length: the rest are absent. */
	{
		CK_ATTRIBUTE third[TOK_ATTRS_MAX];
		size_t which[TOK_ATTRS_MAX], k = 0;

		for (i = 0; i < m; i++)
			if (again[i].pValue != NULL) {
				third[k] = again[i];
				which[k++] = i;
			}
		rv = k == 0 ? CKR_OK : ctx->f->C_GetAttributeValue(s, h, third, (CK_ULONG)k);
		if (rv != CKR_OK)
			goto fail_again;
		for (i = 0; i < k; i++) {
			size_t j = idx[which[i]];

			a[j].v = again[which[i]].pValue;
			a[j].len = third[i].ulValueLen;
			a[j].v[a[j].len] = '\0';
			again[which[i]].pValue = NULL;
		}
	}
	return CKR_OK;
fail_again:
	for (i = 0; i < m; i++)
		OPENSSL_free(again[i].pValue);
fail:
	for (i = 0; i < n; i++)
		OPENSSL_free(t[i].pValue);
	tok_attrs_free(a, n);
	return rv;
}

int tok_attr_val_ulong(const tok_attr_val *a, CK_ULONG *ret_v)
{
	if (a->v == NULL || a->len != sizeof(CK_ULONG))
		return -1;
	memcpy(ret_v, a->v, sizeof(CK_ULONG));
	return 0;
}

int tok_attr_val_bool(const tok_attr_val *a)
{
	if (a->v == NULL || a->len != sizeof(CK_BBOOL))
		return -1;
	return a->v[0] ? 1 : 0;
}
