/*
 * tok: initializing a blank token (C_InitToken, then the user PIN with
 * C_InitPIN as the security officer).  tok_open refuses uninitialized
 * tokens; this is the one way to make them usable, and it never touches
 * an initialized one: C_InitToken on it would erase every key.
 *
 * The module is loaded as the watcher loads it (tok_raw.c), not through
 * libp11: libp11 0.4.12 has no C_InitPIN as SO on a token it did not list
 * as initialized, and its slot list would be stale after C_InitToken.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "pkcs11/tok-int.h"

size_t tok_label_pad(const char *label, unsigned char out[32])
{
	size_t n = strlen(label);

	if (n > 32) {
		n = 32;
		/* Back over continuation bytes (10xxxxxx) to the start of the
		 * character that straddles the limit, and leave it out. */
		while (n > 0 && ((unsigned char)label[n] & 0xc0) == 0x80)
			n--;
	}
	memset(out, ' ', 32);
	memcpy(out, label, n);
	return n;
}

/* Whether label is UTF-8 without control characters (it comes from a
 * queue file or a template: a token's label is shown to people and put in
 * URIs and file names). */
static int printable_utf8(const char *label)
{
	const unsigned char *p = (const unsigned char *)label;
	size_t k, more;
	unsigned long cp;

	while (*p != '\0') {
		if (*p < 0x80) {
			if (*p < 0x20 || *p == 0x7f)
				return 0;
			p++;
			continue;
		}
		if (*p >= 0xc2 && *p <= 0xdf)
			more = 1, cp = *p & 0x1f;
		else if (*p >= 0xe0 && *p <= 0xef)
			more = 2, cp = *p & 0x0f;
		else if (*p >= 0xf0 && *p <= 0xf4)
			more = 3, cp = *p & 0x07;
		else
			return 0;
		for (k = 1; k <= more; k++) {
			if ((p[k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (p[k] & 0x3f);
		}
		/* overlong, surrogates, beyond U+10FFFF, C1 controls */
		if ((more == 2 && cp < 0x800) || (more == 3 && cp < 0x10000) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff || (cp >= 0x80 && cp < 0xa0))
			return 0;
		p += more + 1;
	}
	return 1;
}

/* What to do after a failed call, by its CKR. */
static const char *advice(CK_RV rv, int so)
{
	switch (rv) {
	case CKR_PIN_INCORRECT:
		return so ? "the token has an SO PIN already and this is not it: give the "
			    "token's SO PIN (tried once, not again)"
			  : "check the PIN source";
	case CKR_PIN_LOCKED:
		return "the SO PIN is locked: the token cannot be initialized here";
	case CKR_PIN_LEN_RANGE:
	case CKR_PIN_INVALID:
		return "the token refuses a PIN of this length or these characters: see its "
		       "PIN policy";
	case CKR_SESSION_EXISTS:
		return "another program has a session on the token: close it and try again";
	case CKR_TOKEN_WRITE_PROTECTED:
		return "the token is write-protected";
	case CKR_FUNCTION_NOT_SUPPORTED:
		return "the module cannot initialize tokens: use the token vendor's tool";
	default:
		return NULL;
	}
}

/* The one token of the module that uri selects, initialized or not. */
static tok_rv select_slot(tok_ctx *ctx, tok_raw *r, P11KitUri *uri, const char *uri_text,
			  CK_SLOT_ID *ret_slot, CK_TOKEN_INFO *ret_ti)
{
	tok_raw_token *all;
	size_t n, i, nmatch = 0;
	CK_RV ckr;
	char *shown;
	tok_rv rv = TOK_OK;

	if ((ckr = tok_raw_tokens(r->f, &all, &n)) != CKR_OK)
		return tok_fail_ckr(ctx, "C_GetSlotList", ckr, NULL);
	for (i = 0; i < n; i++) {
		if (all[i].rv != CKR_OK || !tok_raw_match(r->f, uri, all[i].slot, &all[i].ti))
			continue;
		if (nmatch++ == 0) {
			*ret_slot = all[i].slot;
			*ret_ti = all[i].ti;
		}
	}
	OPENSSL_free(all);
	if (nmatch == 1)
		return TOK_OK;
	shown = tok_redact_uri(uri_text);
	if (nmatch == 0)
		rv = tok_fail(ctx, TOK_ERR_ABSENT,
			      "selecting the token to initialize '%s' failed: no token matches: "
			      "insert it or correct the URI",
			      shown ? shown : "(uri)");
	else
		rv = tok_fail(ctx, TOK_ERR_AMBIGUOUS,
			      "selecting the token to initialize '%s' failed: %zu tokens match: "
			      "add serial= or slot-id= to the URI",
			      shown ? shown : "(uri)", nmatch);
	OPENSSL_free(shown);
	return rv;
}

static tok_rv init_token(tok_ctx *ctx, tok_raw *r, P11KitUri *uri, const char *uri_text,
			 const char *so_pin, const char *label, const char *user_pin,
			 tok_info *ret_info)
{
	CK_SLOT_ID slot = 0;
	CK_TOKEN_INFO ti;
	CK_SESSION_HANDLE s;
	unsigned char lab[32];
	char what[96], shown[33];
	const char *stage;
	CK_RV ckr;
	tok_rv rv;

	if ((rv = select_slot(ctx, r, uri, uri_text, &slot, &ti)) != TOK_OK)
		return rv;
	if (ti.flags & CKF_TOKEN_INITIALIZED) {
		tok_describe_token(&ti, what, sizeof(what), 0);
		return tok_fail(ctx, TOK_ERR_CONFIG,
				"initializing token %s refused: it is initialized already, and "
				"initializing it again would erase it: select a blank token",
				what);
	}
	/* Not refused on CKF_SO_PIN_LOCKED: SoftHSM2 sets it (with
	 * CKF_SO_PIN_TO_BE_CHANGED) on every blank token; a token whose SO PIN
	 * is really locked answers CKR_PIN_LOCKED, which the message explains. */
	tok_label_pad(label, lab);
	tok_copy_padded(shown, sizeof(shown), lab, sizeof(lab));
	ckr = r->f->C_InitToken(slot, (CK_UTF8CHAR *)so_pin, (CK_ULONG)strlen(so_pin), lab);
	if (ckr != CKR_OK) {
		snprintf(what, sizeof(what), "C_InitToken (slot %lu, label '%s')",
			 (unsigned long)slot, shown);
		return tok_fail_ckr(ctx, what, ckr, advice(ckr, 1));
	}
	/* From here on the token is initialized: a failure leaves it without
	 * a user PIN, which the message says how to set. */
	stage = "C_OpenSession";
	ckr = r->f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s);
	if (ckr == CKR_OK) {
		stage = "C_Login as SO";
		ckr = r->f->C_Login(s, CKU_SO, (CK_UTF8CHAR *)so_pin, (CK_ULONG)strlen(so_pin));
		if (ckr == CKR_OK) {
			stage = "C_InitPIN";
			ckr = r->f->C_InitPIN(s, (CK_UTF8CHAR *)user_pin,
					      (CK_ULONG)strlen(user_pin));
			r->f->C_Logout(s);
		}
		r->f->C_CloseSession(s);
	}
	if (ckr != CKR_OK) {
		const char *a = advice(ckr, 0);

		return tok_fail(ctx, tok_rv_from_ckr(ckr),
				"setting the user PIN of token '%s' (just initialized) failed: %s: "
				"%s: %s%sthe token has an SO PIN but no user PIN: set it with "
				"pkcs11-tool --init-pin --login --login-type so",
				shown, stage, tok_ckr_name(ckr), a != NULL ? a : "",
				a != NULL ? "; " : "");
	}
	if (ret_info != NULL) {
		if ((ckr = r->f->C_GetTokenInfo(slot, &ti)) != CKR_OK) {
			snprintf(what, sizeof(what), "C_GetTokenInfo of token '%s' (initialized)",
				 shown);
			return tok_fail_ckr(ctx, what, ckr, NULL);
		}
		tok_info_from_ck(&ti, ret_info);
	}
	return TOK_OK;
}

tok_rv tok_init_token(const char *module, const char *uri, const char *so_pin, const char *label,
		      const char *user_pin, tok_info *ret_info, char *err, size_t errlen)
{
	tok_ctx *ctx = OPENSSL_zalloc(sizeof(*ctx));
	P11KitUri *puri = p11_kit_uri_new();
	tok_raw r;
	char *path = NULL;
	tok_rv rv;

	memset(&r, 0, sizeof(r));
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (ctx == NULL || puri == NULL) {
		rv = TOK_ERR_NOMEM;
		goto out;
	}
	if (uri == NULL || so_pin == NULL || label == NULL || user_pin == NULL) {
		rv = tok_fail(ctx, TOK_ERR_CONFIG,
			      "initializing a token failed: the URI, SO PIN, label and user PIN "
			      "are all needed");
		goto out;
	}
	if (!printable_utf8(label) || label[0] == '\0') {
		rv = tok_fail(ctx, TOK_ERR_CONFIG,
			      "initializing a token failed: its label is empty, not UTF-8 or has "
			      "control characters: give a printable label");
		goto out;
	}
	if ((rv = tok_uri_parse(ctx, uri, puri, "token URI", "pkcs11:model=NAME;slot-id=N")) !=
	    TOK_OK)
		goto out;
	if ((rv = tok_module_file(ctx, module, puri, &path)) != TOK_OK)
		goto out;
	if ((rv = tok_raw_load(ctx, path, &r)) != TOK_OK)
		goto out;
	if ((rv = tok_raw_init(ctx, &r)) != TOK_OK)
		goto out;
	rv = init_token(ctx, &r, puri, uri, so_pin, label, user_pin, ret_info);
out:
	tok_raw_unload(&r);
	OPENSSL_free(path);
	if (puri != NULL)
		p11_kit_uri_free(puri);
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "%s", ctx != NULL ? ctx->errmsg : "out of memory");
	OPENSSL_free(ctx);
	return rv;
}
