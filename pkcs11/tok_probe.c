/*
 * tok: finding which module of p11-kit's configuration holds the token a
 * URI selects, for tok_open(NULL, uri) without module-path/module-name.
 *
 * Why not simply load p11-kit-proxy.so: every C_GetFunctionList call on
 * the proxy creates a new proxy instance, so the raw function list this
 * layer needs for key generation could not be the one libp11 loaded.
 * Instead the configured modules are initialized once here, searched the
 * way the proxy would show them, and finalized again before libp11 loads
 * the one module that holds the token.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <p11-kit/p11-kit.h>

#include "pkcs11/tok-int.h"

int tok_p11kit_in_proxy(CK_FUNCTION_LIST *mod)
{
	char *enable = p11_kit_config_option(mod, "enable-in");
	char *disable = p11_kit_config_option(mod, "disable-in");
	int shown = 1;

	if (enable != NULL && strstr(enable, "p11-kit-proxy") == NULL)
		shown = 0;
	if (disable != NULL && strstr(disable, "p11-kit-proxy") != NULL)
		shown = 0;
	free(enable);
	free(disable);
	return shown;
}

/* Matching tokens in one module; appends each token present to list. */
static unsigned int module_matches(CK_FUNCTION_LIST *mod, P11KitUri *uri, char *list, size_t size)
{
	CK_SLOT_ID *slots = NULL;
	CK_ULONG n = 0, i;
	CK_INFO info;
	unsigned int matches = 0;
	int mod_ok;

	mod_ok = mod->C_GetInfo(&info) == CKR_OK && p11_kit_uri_match_module_info(uri, &info);
	if (tok_slot_ids(mod, CK_TRUE, &slots, &n) != CKR_OK)
		return 0;
	for (i = 0; i < n; i++) {
		CK_SLOT_INFO si;
		CK_TOKEN_INFO ti;
		CK_SLOT_ID want = p11_kit_uri_get_slot_id(uri);
		size_t o = strlen(list);

		if (mod->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
			continue;
		tok_describe_token(&ti, list + o, size - o, o > 0);
		if (mod_ok && (ti.flags & CKF_TOKEN_INITIALIZED) &&
		    (want == (CK_SLOT_ID)-1 || want == slots[i]) &&
		    mod->C_GetSlotInfo(slots[i], &si) == CKR_OK &&
		    p11_kit_uri_match_slot_info(uri, &si) && tok_match_token_info(uri, &ti))
			matches++;
	}
	OPENSSL_free(slots);
	return matches;
}

tok_rv tok_probe_p11kit(tok_ctx *ctx, P11KitUri *uri, const char *uri_text, char **ret_path)
{
	CK_FUNCTION_LIST **mods;
	char present[400] = "", *found = NULL, *shown;
	unsigned int total = 0, m;
	tok_rv rv = TOK_OK;
	int i;

	mods = p11_kit_modules_load_and_initialize(0);
	if (mods == NULL)
		return tok_fail(ctx, TOK_ERR_MODULE,
				"loading p11-kit's configured modules failed: %s: give the module "
				"with --module or module-path= in the URI",
				p11_kit_message() ? p11_kit_message() : "no detail");
	for (i = 0; mods[i] != NULL; i++) {
		if (!tok_p11kit_in_proxy(mods[i]))
			continue;
		m = module_matches(mods[i], uri, present, sizeof(present));
		if (m > 0 && found == NULL) {
			char *file = p11_kit_module_get_filename(mods[i]);

			if (file != NULL) {
				found = OPENSSL_strdup(file);
				free(file);
			}
		}
		total += m;
	}
	p11_kit_modules_finalize_and_release(mods);

	if (total == 1 && found != NULL) {
		*ret_path = found;
		return TOK_OK;
	}
	OPENSSL_free(found);
	shown = tok_redact_uri(uri_text);
	if (total == 0) {
		rv = tok_fail(ctx, TOK_ERR_ABSENT,
			      "selecting token '%s' in p11-kit's modules failed: no token "
			      "matches: tokens present: %s; insert the token or correct the URI",
			      shown ? shown : "(uri)", present[0] ? present : "none");
	} else if (total > 1) {
		rv = tok_fail(ctx, TOK_ERR_AMBIGUOUS,
			      "selecting token '%s' in p11-kit's modules failed: %u tokens "
			      "match: tokens present: %s; add serial= or token= to the URI",
			      shown ? shown : "(uri)", total, present);
	} else {
		rv = tok_fail(ctx, TOK_ERR_MODULE,
			      "selecting token '%s' in p11-kit's modules failed: p11-kit does "
			      "not tell the module's file: give the module with --module",
			      shown ? shown : "(uri)");
	}
	OPENSSL_free(shown);
	return rv;
}
