/*
 * tok: user login.  One C_Login, on our own long-lived session, with the
 * caller's PIN buffer (no copy is made).  libp11 is not told the PIN: it
 * would keep a heap copy and replay it (after fork, on reload); the login
 * state is the application's anyway, so its pooled sessions share it.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "pkcs11/tok-int.h"

#define PIN_REFUSE_FLAGS (CKF_USER_PIN_LOCKED | CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_TO_BE_CHANGED)

static tok_rv refuse(tok_ctx *ctx, CK_FLAGS flags)
{
	const char *why, *todo;

	if (flags & CKF_USER_PIN_LOCKED) {
		why = "the user PIN is locked";
		todo = "unblock it with the SO PIN (e.g. pkcs11-tool --init-pin) and try again";
	} else if (flags & CKF_USER_PIN_FINAL_TRY) {
		why = "the next wrong PIN would lock the token";
		todo = "verify the PIN by hand with the token's own tool, then try again";
	} else {
		why = "the user PIN must be changed first";
		todo = "change it (e.g. pkcs11-tool --change-pin) and try again";
	}
	return tok_fail(ctx, TOK_ERR_PIN_LOCKED, "login to token '%s' refused: %s (not tried): %s",
			ctx->label, why, todo);
}

tok_rv tok_login(tok_ctx *ctx, const char *pin)
{
	CK_TOKEN_INFO ti;
	CK_RV rv;
	char what[96];
	const char *todo = NULL;

	if (ctx == NULL)
		return TOK_ERR_CONFIG;
	tok_clear_err(ctx);
	if (ctx->f == NULL || !ctx->have_anchor)
		return tok_fail(ctx, TOK_ERR_ABSENT, "no token: tok_open failed");
	if (ctx->pin_rejected)
		return tok_fail(ctx, TOK_ERR_PIN_INCORRECT,
				"login to token '%s' refused: the token already rejected a PIN in "
				"this session and it is not tried again: check the PIN source and "
				"start again",
				ctx->label);
	if (ctx->logged_in)
		return TOK_OK;

	rv = ctx->f->C_GetTokenInfo(ctx->slot_id, &ti);
	if (rv != CKR_OK) {
		snprintf(what, sizeof(what), "C_GetTokenInfo on token '%s'", ctx->label);
		return tok_fail_ckr(ctx, what, rv, NULL);
	}
	if (ti.flags & PIN_REFUSE_FLAGS)
		return refuse(ctx, ti.flags);
	if (!(ti.flags & CKF_LOGIN_REQUIRED) && pin == NULL)
		return TOK_OK;
	if (ti.flags & CKF_PROTECTED_AUTHENTICATION_PATH)
		pin = NULL; /* the PIN pad asks; never send a PIN alongside */
	else if (pin == NULL)
		/* C_Login without a PIN on a token without a pad is a wasted
		 * (and on some tokens, counted) attempt */
		return tok_fail(ctx, TOK_ERR_CONFIG,
				"token '%s' has no PIN pad (no protected authentication path): "
				"it cannot ask for the PIN itself; give a PIN source (file:, fd: "
				"or env:) instead of protected",
				ctx->label);

	rv = ctx->f->C_Login(ctx->anchor, CKU_USER, (CK_UTF8CHAR *)pin,
			     pin != NULL ? (CK_ULONG)strlen(pin) : 0);
	if (rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN) {
		ctx->logged_in = 1;
		return TOK_OK;
	}
	switch (tok_rv_from_ckr(rv)) {
	case TOK_ERR_PIN_INCORRECT:
		ctx->pin_rejected = 1;
		todo = "the PIN was tried once and not again; check the PIN source";
		break;
	case TOK_ERR_PIN_LOCKED:
		todo = rv == CKR_PIN_EXPIRED ? "change the PIN and try again"
					     : "unblock the PIN with the SO PIN and try again";
		break;
	default:
		if (rv == CKR_USER_PIN_NOT_INITIALIZED)
			todo = "set the user PIN first (e.g. pkcs11-tool --init-pin)";
		else if (rv == CKR_FUNCTION_CANCELED)
			todo = "the PIN entry was cancelled on the reader; try again";
		break;
	}
	snprintf(what, sizeof(what), "C_Login on token '%s'", ctx->label);
	return tok_fail_ckr(ctx, what, rv, todo);
}
