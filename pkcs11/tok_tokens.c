/*
 * tok: every token a module shows (or, without a module, every module of
 * p11-kit's configuration that its proxy would show), each with the
 * RFC 7512 URI that names it as `p11tool --list-token-urls` does: token,
 * manufacturer, serial and model, percent-encoded by p11-kit.  Nothing is
 * logged in to and no session is opened: C_GetSlotList and C_GetTokenInfo
 * only.  Tokens that are not initialized are left out, as p11tool leaves
 * them out: no URI selects them for use.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <p11-kit/p11-kit.h>

#include "pkcs11/tok-int.h"

typedef struct {
	tok_token *t;
	size_t n, cap;
	size_t silent; /* tokens whose C_GetTokenInfo failed */
} list;

/* The URI of ti, token attributes only, as p11-kit formats it. */
static char *token_uri(const CK_TOKEN_INFO *ti)
{
	P11KitUri *u = p11_kit_uri_new();
	CK_TOKEN_INFO *ut;
	char *text = NULL, *out = NULL;

	if (u == NULL)
		return NULL;
	ut = p11_kit_uri_get_token_info(u);
	memcpy(ut->label, ti->label, sizeof(ut->label));
	memcpy(ut->manufacturerID, ti->manufacturerID, sizeof(ut->manufacturerID));
	memcpy(ut->model, ti->model, sizeof(ut->model));
	memcpy(ut->serialNumber, ti->serialNumber, sizeof(ut->serialNumber));
	if (p11_kit_uri_format(u, P11_KIT_URI_FOR_TOKEN, &text) == P11_KIT_URI_OK)
		out = OPENSSL_strdup(text);
	free(text);
	p11_kit_uri_free(u);
	return out;
}

/* The initialized tokens of module f (file path) appended to l. */
static tok_rv module_tokens(tok_ctx *ctx, CK_FUNCTION_LIST *f, const char *path, list *l)
{
	tok_raw_token *t = NULL;
	size_t n = 0, i;
	CK_RV ckr;

	if ((ckr = tok_raw_tokens(f, &t, &n)) != CKR_OK)
		return tok_fail_ckr(ctx, "C_GetSlotList", ckr, NULL);
	for (i = 0; i < n; i++) {
		tok_token *e;

		/* a token that does not answer is counted, not listed; the
		 * others are */
		if (t[i].rv != CKR_OK)
			l->silent++;
		if (t[i].rv != CKR_OK || !(t[i].ti.flags & CKF_TOKEN_INITIALIZED))
			continue;
		if (l->n == l->cap) {
			size_t cap = l->cap ? 2 * l->cap : 8;
			tok_token *nt = OPENSSL_realloc(l->t, cap * sizeof(*nt));

			if (nt == NULL)
				goto nomem;
			l->t = nt;
			l->cap = cap;
		}
		e = &l->t[l->n];
		memset(e, 0, sizeof(*e));
		tok_info_from_ck(&t[i].ti, &e->info);
		e->slot_id = t[i].slot;
		e->uri = token_uri(&t[i].ti);
		e->module = OPENSSL_strdup(path != NULL ? path : "");
		if (e->uri == NULL || e->module == NULL) {
			OPENSSL_free(e->uri);
			OPENSSL_free(e->module);
			goto nomem;
		}
		l->n++;
	}
	OPENSSL_free(t);
	return TOK_OK;
nomem:
	OPENSSL_free(t);
	return tok_fail(ctx, TOK_ERR_NOMEM, "out of memory");
}

/* Every module p11-kit's proxy shows. */
static tok_rv p11kit_tokens(tok_ctx *ctx, list *l)
{
	CK_FUNCTION_LIST **mods = p11_kit_modules_load_and_initialize(0);
	tok_rv rv = TOK_OK;
	size_t i;

	if (mods == NULL)
		return tok_fail(ctx, TOK_ERR_MODULE,
				"loading p11-kit's configured modules failed: %s: give the module "
				"with --module",
				p11_kit_message() ? p11_kit_message() : "no detail");
	for (i = 0; mods[i] != NULL && rv != TOK_ERR_NOMEM; i++) {
		char *file;

		if (!tok_p11kit_in_proxy(mods[i]))
			continue;
		file = p11_kit_module_get_filename(mods[i]);
		/* one module that fails does not hide the others' tokens */
		rv = module_tokens(ctx, mods[i], file, l);
		free(file);
	}
	p11_kit_modules_finalize_and_release(mods);
	return rv == TOK_ERR_NOMEM ? rv : TOK_OK;
}

/* The one module given (a path or a p11-kit module name). */
static tok_rv one_module(tok_ctx *ctx, const char *module, list *l)
{
	P11KitUri *none = p11_kit_uri_new();
	char *path = NULL;
	tok_raw r;
	tok_rv rv;

	memset(&r, 0, sizeof(r));
	if (none == NULL)
		return tok_fail(ctx, TOK_ERR_NOMEM, "out of memory");
	if ((rv = tok_module_file(ctx, module, none, &path)) == TOK_OK &&
	    (rv = tok_raw_load(ctx, path, &r)) == TOK_OK && (rv = tok_raw_init(ctx, &r)) == TOK_OK)
		rv = module_tokens(ctx, r.f, path, l);
	tok_raw_unload(&r);
	OPENSSL_free(path);
	p11_kit_uri_free(none);
	return rv;
}

tok_rv tok_tokens(const char *module, tok_token **ret_t, size_t *ret_n, size_t *ret_silent,
		  char *err, size_t errlen)
{
	tok_ctx *ctx = OPENSSL_zalloc(sizeof(*ctx));
	list l = { NULL, 0, 0, 0 };
	tok_rv rv;

	if (ctx == NULL) {
		snprintf(err, errlen, "out of memory");
		return TOK_ERR_NOMEM;
	}
	rv = module != NULL ? one_module(ctx, module, &l) : p11kit_tokens(ctx, &l);
	if (rv != TOK_OK) {
		snprintf(err, errlen, "%s", ctx->errmsg);
		tok_tokens_free(l.t, l.n);
	} else {
		*ret_t = l.t;
		*ret_n = l.n;
		*ret_silent = l.silent;
	}
	OPENSSL_free(ctx);
	return rv;
}

void tok_tokens_free(tok_token *t, size_t n)
{
	size_t i;

	for (i = 0; t != NULL && i < n; i++) {
		OPENSSL_free(t[i].uri);
		OPENSSL_free(t[i].module);
	}
	OPENSSL_free(t);
}
