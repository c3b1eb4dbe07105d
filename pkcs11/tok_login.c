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

/* On a tpm2-pkcs11 token: what its lockout (CKR_PIN_LOCKED) is and how it
 * ends, and what a rejected PIN (CKR_PIN_INCORRECT) costs.  The token's
 * flags never show the TPM's lockout coming. */
#define TPM_LOCKOUT_WHY                                                                        \
	"on a TPM (tpm2-pkcs11) this is the TPM's dictionary-attack lockout, shared by every "  \
	"token and key on this machine's TPM"
#define TPM_LOCKOUT_END                                                                        \
	"it ends by itself after the TPM's recovery time (tpm2_getcap properties-variable "     \
	"shows TPM2_PT_LOCKOUT_COUNTER), or an administrator clears it with "                   \
	"`tpm2_dictionarylockout -c` (with -p and the lockout authorisation if one is set)"
#define TPM_REJECTED                                                                           \
	"the PIN was tried once and not again; check the PIN source: every wrong PIN counts "   \
	"towards the TPM's dictionary-attack lockout, shared by every token and key on this "   \
	"machine's TPM"

int tok_module_is_tpm(const tok_ctx *ctx)
{
	static const char tpm2_pkcs11[] = "tpm2-software.github.io";
	CK_INFO info;
	char man[sizeof(info.manufacturerID) + 1];

	if (ctx == NULL || ctx->f == NULL || ctx->f->C_GetInfo(&info) != CKR_OK)
		return 0;
	tok_copy_padded(man, sizeof(man), info.manufacturerID, sizeof(info.manufacturerID));
	return strcmp(man, tpm2_pkcs11) == 0;
}

int tok_logged_in(const tok_ctx *ctx)
{
	return ctx != NULL && ctx->logged_in;
}

tok_lockout tok_login_lockout(const tok_ctx *ctx)
{
	return ctx != NULL ? ctx->lockout : TOK_LOCK_NONE;
}

static tok_rv refuse(tok_ctx *ctx, CK_FLAGS flags)
{
	const char *why, *todo;

	if (flags & CKF_USER_PIN_LOCKED) {
		ctx->lockout = tok_module_is_tpm(ctx) ? TOK_LOCK_TPM : TOK_LOCK_TOKEN;
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

/* C_Login answered CKR_PIN_LOCKED: no PIN is tried on this token (or, on
 * a TPM, on any token of the TPM) until the lockout ends. */
static tok_rv locked(tok_ctx *ctx)
{
	ctx->pin_rejected = 1;
	if (tok_module_is_tpm(ctx)) {
		ctx->lockout = TOK_LOCK_TPM;
		return tok_fail(ctx, TOK_ERR_PIN_LOCKED,
				"C_Login on token '%s' failed: CKR_PIN_LOCKED: the PIN is locked: "
				"%s; no PIN is tried while it lasts: %s",
				ctx->label, TPM_LOCKOUT_WHY, TPM_LOCKOUT_END);
	}
	ctx->lockout = TOK_LOCK_TOKEN;
	return tok_fail(ctx, TOK_ERR_PIN_LOCKED,
			"C_Login on token '%s' failed: CKR_PIN_LOCKED: the PIN is locked and no "
			"PIN is tried while it is: unblock it with the SO PIN (e.g. pkcs11-tool "
			"--init-pin) or the token's own tool",
			ctx->label);
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
	if (ctx->pin_rejected && ctx->lockout != TOK_LOCK_NONE)
		return tok_fail(ctx, TOK_ERR_PIN_LOCKED,
				"login to token '%s' refused: the token found the PIN locked in "
				"this session and no PIN is tried again",
				ctx->label);
	if (ctx->pin_rejected)
		return tok_fail(ctx, TOK_ERR_PIN_INCORRECT,
				"login to token '%s' refused: the token already rejected a PIN in "
				"this session and it is not tried again: check the PIN source and "
				"start again",
				ctx->label);
	if (ctx->logged_in)
		return TOK_OK;
	ctx->lockout = TOK_LOCK_NONE;

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
		todo = tok_module_is_tpm(ctx) ? TPM_REJECTED : "the PIN was tried once and not "
							      "again; check the PIN source";
		break;
	case TOK_ERR_PIN_LOCKED:
		if (rv == CKR_PIN_LOCKED)
			return locked(ctx);
		todo = "change the PIN and try again";
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
