/* tok: CKR names, result strings, and the error text kept in the context. */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "pkcs11/tok-int.h"

/*
 * Every return value of PKCS#11 v2.40 (pkcs11t.h of the OASIS standard),
 * by value, so that the table does not depend on which header is used.
 */
static const struct {
	unsigned long code;
	const char *name;
} ckr_names[] = {
    {0x000UL, "CKR_OK"},
    {0x001UL, "CKR_CANCEL"},
    {0x002UL, "CKR_HOST_MEMORY"},
    {0x003UL, "CKR_SLOT_ID_INVALID"},
    {0x005UL, "CKR_GENERAL_ERROR"},
    {0x006UL, "CKR_FUNCTION_FAILED"},
    {0x007UL, "CKR_ARGUMENTS_BAD"},
    {0x008UL, "CKR_NO_EVENT"},
    {0x009UL, "CKR_NEED_TO_CREATE_THREADS"},
    {0x00aUL, "CKR_CANT_LOCK"},
    {0x010UL, "CKR_ATTRIBUTE_READ_ONLY"},
    {0x011UL, "CKR_ATTRIBUTE_SENSITIVE"},
    {0x012UL, "CKR_ATTRIBUTE_TYPE_INVALID"},
    {0x013UL, "CKR_ATTRIBUTE_VALUE_INVALID"},
    {0x01bUL, "CKR_ACTION_PROHIBITED"},
    {0x020UL, "CKR_DATA_INVALID"},
    {0x021UL, "CKR_DATA_LEN_RANGE"},
    {0x030UL, "CKR_DEVICE_ERROR"},
    {0x031UL, "CKR_DEVICE_MEMORY"},
    {0x032UL, "CKR_DEVICE_REMOVED"},
    {0x040UL, "CKR_ENCRYPTED_DATA_INVALID"},
    {0x041UL, "CKR_ENCRYPTED_DATA_LEN_RANGE"},
    {0x050UL, "CKR_FUNCTION_CANCELED"},
    {0x051UL, "CKR_FUNCTION_NOT_PARALLEL"},
    {0x054UL, "CKR_FUNCTION_NOT_SUPPORTED"},
    {0x060UL, "CKR_KEY_HANDLE_INVALID"},
    {0x062UL, "CKR_KEY_SIZE_RANGE"},
    {0x063UL, "CKR_KEY_TYPE_INCONSISTENT"},
    {0x064UL, "CKR_KEY_NOT_NEEDED"},
    {0x065UL, "CKR_KEY_CHANGED"},
    {0x066UL, "CKR_KEY_NEEDED"},
    {0x067UL, "CKR_KEY_INDIGESTIBLE"},
    {0x068UL, "CKR_KEY_FUNCTION_NOT_PERMITTED"},
    {0x069UL, "CKR_KEY_NOT_WRAPPABLE"},
    {0x06aUL, "CKR_KEY_UNEXTRACTABLE"},
    {0x070UL, "CKR_MECHANISM_INVALID"},
    {0x071UL, "CKR_MECHANISM_PARAM_INVALID"},
    {0x082UL, "CKR_OBJECT_HANDLE_INVALID"},
    {0x090UL, "CKR_OPERATION_ACTIVE"},
    {0x091UL, "CKR_OPERATION_NOT_INITIALIZED"},
    {0x0a0UL, "CKR_PIN_INCORRECT"},
    {0x0a1UL, "CKR_PIN_INVALID"},
    {0x0a2UL, "CKR_PIN_LEN_RANGE"},
    {0x0a3UL, "CKR_PIN_EXPIRED"},
    {0x0a4UL, "CKR_PIN_LOCKED"},
    {0x0b0UL, "CKR_SESSION_CLOSED"},
    {0x0b1UL, "CKR_SESSION_COUNT"},
    {0x0b3UL, "CKR_SESSION_HANDLE_INVALID"},
    {0x0b4UL, "CKR_SESSION_PARALLEL_NOT_SUPPORTED"},
    {0x0b5UL, "CKR_SESSION_READ_ONLY"},
    {0x0b6UL, "CKR_SESSION_EXISTS"},
    {0x0b7UL, "CKR_SESSION_READ_ONLY_EXISTS"},
    {0x0b8UL, "CKR_SESSION_READ_WRITE_SO_EXISTS"},
    {0x0c0UL, "CKR_SIGNATURE_INVALID"},
    {0x0c1UL, "CKR_SIGNATURE_LEN_RANGE"},
    {0x0d0UL, "CKR_TEMPLATE_INCOMPLETE"},
    {0x0d1UL, "CKR_TEMPLATE_INCONSISTENT"},
    {0x0e0UL, "CKR_TOKEN_NOT_PRESENT"},
    {0x0e1UL, "CKR_TOKEN_NOT_RECOGNIZED"},
    {0x0e2UL, "CKR_TOKEN_WRITE_PROTECTED"},
    {0x0f0UL, "CKR_UNWRAPPING_KEY_HANDLE_INVALID"},
    {0x0f1UL, "CKR_UNWRAPPING_KEY_SIZE_RANGE"},
    {0x0f2UL, "CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT"},
    {0x100UL, "CKR_USER_ALREADY_LOGGED_IN"},
    {0x101UL, "CKR_USER_NOT_LOGGED_IN"},
    {0x102UL, "CKR_USER_PIN_NOT_INITIALIZED"},
    {0x103UL, "CKR_USER_TYPE_INVALID"},
    {0x104UL, "CKR_USER_ANOTHER_ALREADY_LOGGED_IN"},
    {0x105UL, "CKR_USER_TOO_MANY_TYPES"},
    {0x110UL, "CKR_WRAPPED_KEY_INVALID"},
    {0x112UL, "CKR_WRAPPED_KEY_LEN_RANGE"},
    {0x113UL, "CKR_WRAPPING_KEY_HANDLE_INVALID"},
    {0x114UL, "CKR_WRAPPING_KEY_SIZE_RANGE"},
    {0x115UL, "CKR_WRAPPING_KEY_TYPE_INCONSISTENT"},
    {0x120UL, "CKR_RANDOM_SEED_NOT_SUPPORTED"},
    {0x121UL, "CKR_RANDOM_NO_RNG"},
    {0x130UL, "CKR_DOMAIN_PARAMS_INVALID"},
    {0x140UL, "CKR_CURVE_NOT_SUPPORTED"},
    {0x150UL, "CKR_BUFFER_TOO_SMALL"},
    {0x160UL, "CKR_SAVED_STATE_INVALID"},
    {0x170UL, "CKR_INFORMATION_SENSITIVE"},
    {0x180UL, "CKR_STATE_UNSAVEABLE"},
    {0x190UL, "CKR_CRYPTOKI_NOT_INITIALIZED"},
    {0x191UL, "CKR_CRYPTOKI_ALREADY_INITIALIZED"},
    {0x1a0UL, "CKR_MUTEX_BAD"},
    {0x1a1UL, "CKR_MUTEX_NOT_LOCKED"},
    {0x1b0UL, "CKR_NEW_PIN_MODE"},
    {0x1b1UL, "CKR_NEXT_OTP"},
    {0x1c0UL, "CKR_EXCEEDED_MAX_ITERATIONS"},
    {0x1c1UL, "CKR_FIPS_SELF_TEST_FAILED"},
    {0x1c2UL, "CKR_LIBRARY_LOAD_FAILED"},
    {0x1c3UL, "CKR_PIN_TOO_WEAK"},
    {0x1c4UL, "CKR_PUBLIC_KEY_INVALID"},
    {0x200UL, "CKR_FUNCTION_REJECTED"},
};

const char *tok_ckr_name(unsigned long ckr)
{
	/* Only for codes without a name; not thread-safe, like strerror(). */
	static char unknown[48];
	size_t i;

	for (i = 0; i < sizeof(ckr_names) / sizeof(ckr_names[0]); i++) {
		if (ckr_names[i].code == ckr)
			return ckr_names[i].name;
	}
	if (ckr >= CKR_VENDOR_DEFINED)
		snprintf(unknown, sizeof(unknown), "CKR_VENDOR_DEFINED+0x%lx",
			 ckr - (unsigned long)CKR_VENDOR_DEFINED);
	else
		snprintf(unknown, sizeof(unknown), "unknown CKR 0x%lx", ckr);
	return unknown;
}

const char *tok_strerror(tok_rv rv)
{
	switch (rv) {
	case TOK_OK:
		return "success";
	case TOK_ERR_CONFIG:
		return "invalid token configuration";
	case TOK_ERR_MODULE:
		return "PKCS#11 module could not be loaded";
	case TOK_ERR_ABSENT:
		return "token not present";
	case TOK_ERR_AMBIGUOUS:
		return "more than one token matches";
	case TOK_ERR_PIN_INCORRECT:
		return "PIN incorrect";
	case TOK_ERR_PIN_LOCKED:
		return "PIN locked or must be changed";
	case TOK_ERR_NOT_LOGGED_IN:
		return "not logged in to the token";
	case TOK_ERR_NOT_FOUND:
		return "object not found on the token";
	case TOK_ERR_MISMATCH:
		return "certificate does not match the key";
	case TOK_ERR_DEVICE:
		return "token error";
	case TOK_ERR_NOMEM:
		return "out of memory";
	}
	return "unknown token error";
}

const char *tok_errmsg(const tok_ctx *ctx)
{
	return ctx != NULL ? ctx->errmsg : "";
}

void tok_clear_err(tok_ctx *ctx)
{
	ctx->errmsg[0] = '\0';
}

tok_rv tok_fail(tok_ctx *ctx, tok_rv rv, const char *fmt, ...)
{
	va_list ap;

	if (ctx == NULL)
		return rv;
	va_start(ap, fmt);
	vsnprintf(ctx->errmsg, sizeof(ctx->errmsg), fmt, ap);
	va_end(ap);
	return rv;
}

tok_rv tok_rv_from_ckr(CK_RV ckr)
{
	switch (ckr) {
	case CKR_OK:
		return TOK_OK;
	case CKR_HOST_MEMORY:
		return TOK_ERR_NOMEM;
	case CKR_DEVICE_REMOVED:
	case CKR_TOKEN_NOT_PRESENT:
	case CKR_TOKEN_NOT_RECOGNIZED:
	case CKR_SESSION_HANDLE_INVALID:
	case CKR_SESSION_CLOSED:
	case CKR_SLOT_ID_INVALID:
		return TOK_ERR_ABSENT;
	case CKR_PIN_INCORRECT:
	case CKR_PIN_INVALID:
	case CKR_PIN_LEN_RANGE:
		return TOK_ERR_PIN_INCORRECT;
	case CKR_PIN_LOCKED:
	case CKR_PIN_EXPIRED:
		return TOK_ERR_PIN_LOCKED;
	case CKR_USER_NOT_LOGGED_IN:
		return TOK_ERR_NOT_LOGGED_IN;
	case CKR_CRYPTOKI_NOT_INITIALIZED:
		return TOK_ERR_MODULE;
	default:
		return TOK_ERR_DEVICE;
	}
}

static const char *default_todo(CK_RV ckr)
{
	switch (tok_rv_from_ckr(ckr)) {
	case TOK_ERR_ABSENT:
		return "the token was removed or is no longer available; insert it and start again";
	case TOK_ERR_NOT_LOGGED_IN:
		return "log in to the token first";
	case TOK_ERR_NOMEM:
		return "the module ran out of memory";
	case TOK_ERR_MODULE:
		return "the module was finalized by another user in this process; start again";
	default:
		break;
	}
	switch (ckr) {
	case CKR_TOKEN_WRITE_PROTECTED:
		return "the token is write-protected";
	case CKR_DEVICE_MEMORY:
		return "the token is full; remove unused objects";
	case CKR_MECHANISM_INVALID:
	case CKR_KEY_SIZE_RANGE:
	case CKR_CURVE_NOT_SUPPORTED:
	case CKR_DOMAIN_PARAMS_INVALID:
	case CKR_FUNCTION_NOT_SUPPORTED:
		return "the token does not support this; choose another key type";
	case CKR_TEMPLATE_INCONSISTENT:
	case CKR_ATTRIBUTE_VALUE_INVALID:
	case CKR_ATTRIBUTE_TYPE_INVALID:
		return "the token refused the object's attributes";
	default:
		return "see the module's documentation or log";
	}
}

tok_rv tok_fail_ckr(tok_ctx *ctx, const char *what, CK_RV ckr, const char *todo)
{
	return tok_fail(ctx, tok_rv_from_ckr(ckr), "%s failed: %s: %s", what, tok_ckr_name(ckr),
			todo != NULL ? todo : default_todo(ckr));
}

tok_rv tok_need_login(tok_ctx *ctx, const char *what)
{
	return tok_fail(ctx, TOK_ERR_NOT_LOGGED_IN,
			"%s on token '%s' failed: not logged in: call tok_login first", what,
			ctx->label);
}

void tok_copy_padded(char *dst, size_t dstsize, const unsigned char *src, size_t srclen)
{
	size_t n = srclen < dstsize - 1 ? srclen : dstsize - 1;

	memcpy(dst, src, n);
	while (n > 0 && (dst[n - 1] == ' ' || dst[n - 1] == '\0'))
		n--;
	dst[n] = '\0';
}

static void blank_padding(CK_UTF8CHAR *f, size_t n)
{
	while (n > 0 && (f[n - 1] == ' ' || f[n - 1] == '\0'))
		f[--n] = ' ';
}

int tok_match_token_info(P11KitUri *uri, const CK_TOKEN_INFO *ti)
{
	CK_TOKEN_INFO t = *ti;

	blank_padding(t.label, sizeof(t.label));
	blank_padding(t.manufacturerID, sizeof(t.manufacturerID));
	blank_padding(t.model, sizeof(t.model));
	blank_padding(t.serialNumber, sizeof(t.serialNumber));
	return p11_kit_uri_match_token_info(uri, &t);
}

/* OpenSSL's encoder, as in the cmp layer and the agent (agent_hex).  It
 * writes upper case; the agent prints the same ids in lower case, and a key
 * should read the same in both.  Only the whole bytes that fit are encoded:
 * OpenSSL refuses a short buffer and leaves an error on its queue. */
const char *tok_id_hex(const tok_id *id, char *buf, size_t bufsize)
{
	size_t n = id->len;
	char *c;

	if (bufsize == 0)
		return buf;
	if (n > (bufsize - 1) / 2)
		n = (bufsize - 1) / 2;
	if (!OPENSSL_buf2hexstr_ex(buf, bufsize, NULL, id->id, n, '\0'))
		buf[0] = '\0';
	for (c = buf; *c != '\0'; c++)
		*c = (char)tolower((unsigned char)*c);
	if (n < id->len && 2 * n >= 3)
		memcpy(buf + 2 * n - 3, "...", 3);
	return buf;
}
