/*
 * tok: raw sessions, object search and attribute reads on the function
 * list of the module instance libp11 loaded.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "pkcs11/tok-int.h"

tok_rv tok_session_open(tok_ctx *ctx, int rw, CK_SESSION_HANDLE *ret_s)
{
	CK_FLAGS flags = CKF_SERIAL_SESSION | (rw ? CKF_RW_SESSION : 0);
	char what[96];
	CK_RV rv;

	if (ctx->f == NULL || ctx->slot == NULL)
		return tok_fail(ctx, TOK_ERR_ABSENT, "no token: tok_open failed");
	rv = ctx->f->C_OpenSession(ctx->slot_id, flags, NULL, NULL, ret_s);
	if (rv != CKR_OK) {
		snprintf(what, sizeof(what), "C_OpenSession (%s) on token '%s'", rw ? "R/W" : "R/O",
			 ctx->label);
		return tok_fail_ckr(ctx, what, rv, NULL);
	}
	return TOK_OK;
}

void tok_session_close(tok_ctx *ctx, CK_SESSION_HANDLE s)
{
	ctx->f->C_CloseSession(s);
}

static tok_rv find_fail(tok_ctx *ctx, const char *fn, CK_RV rv)
{
	char what[96];

	snprintf(what, sizeof(what), "%s on token '%s'", fn, ctx->label);
	return tok_fail_ckr(ctx, what, rv, NULL);
}

tok_rv tok_find(tok_ctx *ctx, CK_SESSION_HANDLE s, CK_ATTRIBUTE *tmpl, CK_ULONG ntmpl,
		CK_OBJECT_HANDLE *ret_h, CK_ULONG max, CK_ULONG *ret_n)
{
	CK_RV rv;
	CK_ULONG n = 0;

	rv = ctx->f->C_FindObjectsInit(s, tmpl, ntmpl);
	if (rv != CKR_OK)
		return find_fail(ctx, "C_FindObjectsInit", rv);
	rv = ctx->f->C_FindObjects(s, ret_h, max, &n);
	if (rv != CKR_OK) {
		ctx->f->C_FindObjectsFinal(s);
		return find_fail(ctx, "C_FindObjects", rv);
	}
	/* A search left active makes the session's next search fail
	 * (CKR_OPERATION_ACTIVE): this failure is the one to report. */
	if ((rv = ctx->f->C_FindObjectsFinal(s)) != CKR_OK)
		return find_fail(ctx, "C_FindObjectsFinal", rv);
	*ret_n = n;
	return TOK_OK;
}

tok_rv tok_find_all(tok_ctx *ctx, CK_SESSION_HANDLE s, CK_ATTRIBUTE *tmpl, CK_ULONG ntmpl,
		    CK_OBJECT_HANDLE **ret_h, CK_ULONG *ret_n)
{
	CK_OBJECT_HANDLE *all = NULL, *tmp, chunk[32];
	CK_ULONG n = 0, got;
	CK_RV rv;

	rv = ctx->f->C_FindObjectsInit(s, tmpl, ntmpl);
	if (rv != CKR_OK)
		return find_fail(ctx, "C_FindObjectsInit", rv);
	do {
		rv = ctx->f->C_FindObjects(s, chunk, 32, &got);
		if (rv != CKR_OK) {
			ctx->f->C_FindObjectsFinal(s);
			OPENSSL_free(all);
			return find_fail(ctx, "C_FindObjects", rv);
		}
		if (got == 0)
			break;
		tmp = OPENSSL_realloc(all, (n + got) * sizeof(*all));
		if (tmp == NULL) {
			ctx->f->C_FindObjectsFinal(s);
			OPENSSL_free(all);
			return tok_fail(ctx, TOK_ERR_NOMEM, "out of memory");
		}
		all = tmp;
		memcpy(all + n, chunk, got * sizeof(*all));
		n += got;
	} while (got == 32);
	if ((rv = ctx->f->C_FindObjectsFinal(s)) != CKR_OK) {
		OPENSSL_free(all);
		return find_fail(ctx, "C_FindObjectsFinal", rv);
	}
	*ret_h = all;
	*ret_n = n;
	return TOK_OK;
}

tok_rv tok_find_by_id(tok_ctx *ctx, CK_SESSION_HANDLE s, const tok_id *id, int with_certs,
		      CK_OBJECT_HANDLE **ret_h, CK_ULONG *ret_n)
{
	static const CK_OBJECT_CLASS classes[3] = {CKO_PRIVATE_KEY, CKO_PUBLIC_KEY,
						   CKO_CERTIFICATE};
	CK_OBJECT_CLASS cls;
	CK_ATTRIBUTE tmpl[2] = {
	    {CKA_CLASS, &cls, sizeof(cls)},
	    {CKA_ID, (void *)id->id, id->len},
	};
	CK_OBJECT_HANDLE *all = NULL, *some, *tmp;
	CK_ULONG n = 0, got;
	tok_rv rv;
	int i;

	for (i = 0; i < (with_certs ? 3 : 2); i++) {
		cls = classes[i];
		if ((rv = tok_find_all(ctx, s, tmpl, 2, &some, &got)) != TOK_OK) {
			OPENSSL_free(all);
			return rv;
		}
		if (got > 0) {
			if ((tmp = OPENSSL_realloc(all, (n + got) * sizeof(*all))) == NULL) {
				OPENSSL_free(some);
				OPENSSL_free(all);
				return tok_fail(ctx, TOK_ERR_NOMEM, "out of memory");
			}
			all = tmp;
			memcpy(all + n, some, got * sizeof(*all));
			n += got;
		}
		OPENSSL_free(some);
	}
	*ret_h = all;
	*ret_n = n;
	return TOK_OK;
}

CK_RV tok_attr_get(tok_ctx *ctx, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type,
		   unsigned char **ret_v, CK_ULONG *ret_len)
{
	CK_ATTRIBUTE a = {type, NULL, 0};
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
	a.pValue = OPENSSL_malloc(a.ulValueLen);
	if (a.pValue == NULL)
		return CKR_HOST_MEMORY;
	rv = ctx->f->C_GetAttributeValue(s, h, &a, 1);
	if (rv != CKR_OK) {
		OPENSSL_free(a.pValue);
		return rv;
	}
	*ret_v = a.pValue;
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
