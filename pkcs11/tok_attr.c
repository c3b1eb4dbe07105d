/*
 * tok: raw sessions and attribute reads on the function list of the
 * module instance libp11 loaded.
 */
#include "config.h"

#include <stdio.h>

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
