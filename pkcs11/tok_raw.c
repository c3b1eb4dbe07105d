/*
 * tok: a module loaded by this layer itself (dlopen and its own
 * C_GetFunctionList), for what needs no libp11 and must be able to
 * re-initialize the module at will: the token watcher and token
 * initialization.  tok_open's libp11 context stays the only other user.
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "pkcs11/tok-int.h"

/*
 * The modules this layer's raw users hold initialized (their dlopen
 * handles: one per loaded file, whatever path named it), for tok_open to
 * refuse them: libp11 takes CKR_CRYPTOKI_ALREADY_INITIALIZED as success,
 * and would then share the module with a watcher that finalizes it on
 * every poll.  Watchers and tok_open are used from one thread.
 */
#define HELD_MAX 16
static void *held[HELD_MAX];

int tok_raw_holds(void *dl)
{
	size_t i;

	for (i = 0; dl != NULL && i < HELD_MAX; i++)
		if (held[i] == dl)
			return 1;
	return 0;
}

static void hold(void *dl, int on)
{
	size_t i;

	for (i = 0; i < HELD_MAX; i++) {
		if (on && held[i] == NULL) {
			held[i] = dl;
			return;
		}
		if (!on && held[i] == dl) {
			held[i] = NULL;
			return;
		}
	}
}

tok_rv tok_raw_load(tok_ctx *ctx, const char *path, tok_raw *r)
{
	CK_C_GetFunctionList getfl;
	CK_RV rv;

	memset(r, 0, sizeof(*r));
	if (strchr(path, '/') != NULL && access(path, R_OK) != 0)
		return tok_fail(ctx, TOK_ERR_MODULE,
				"loading PKCS#11 module '%s' failed: %s: check that the module "
				"is installed and the path is right",
				path, strerror(errno));
	if ((r->path = OPENSSL_strdup(path)) == NULL)
		return tok_fail(ctx, TOK_ERR_NOMEM, "out of memory");
	/* The same instance as libp11's when libp11 has it loaded: that is
	 * what tok_raw_init detects and refuses. */
	r->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (r->dl == NULL) {
		tok_fail(ctx, TOK_ERR_MODULE,
			 "loading PKCS#11 module '%s' failed: %s: check that the module is "
			 "installed and the path is right",
			 path, dlerror());
		tok_raw_unload(r);
		return TOK_ERR_MODULE;
	}
	*(void **)&getfl = dlsym(r->dl, "C_GetFunctionList");
	if (getfl == NULL || (rv = getfl(&r->f)) != CKR_OK || r->f == NULL) {
		tok_fail(ctx, TOK_ERR_MODULE,
			 "C_GetFunctionList of PKCS#11 module '%s' failed: the module does not "
			 "export it or refused: use another module",
			 path);
		r->f = NULL;
		tok_raw_unload(r);
		return TOK_ERR_MODULE;
	}
	return TOK_OK;
}

tok_rv tok_raw_init(tok_ctx *ctx, tok_raw *r)
{
	CK_C_INITIALIZE_ARGS args;
	CK_RV rv;

	if (r->initialized)
		return TOK_OK;
	memset(&args, 0, sizeof(args));
	args.flags = CKF_OS_LOCKING_OK;
	rv = r->f->C_Initialize(&args);
	if (rv == CKR_OK) {
		r->initialized = 1;
		hold(r->dl, 1);
		return TOK_OK;
	}
	if (rv == CKR_CRYPTOKI_ALREADY_INITIALIZED)
		/* Ours would be the C_Finalize that breaks the other user. */
		return tok_fail(ctx, TOK_ERR_MODULE,
				"C_Initialize of PKCS#11 module '%s' failed: "
				"CKR_CRYPTOKI_ALREADY_INITIALIZED: another user in this process "
				"(an open token context, or a watcher not suspended) holds the "
				"module: free or suspend it first",
				r->path);
	return tok_fail(ctx, TOK_ERR_MODULE,
			"C_Initialize of PKCS#11 module '%s' failed: %s: check that the module's "
			"device or service is available",
			r->path, tok_ckr_name(rv));
}

void tok_raw_fini(tok_raw *r)
{
	if (r->f != NULL && r->initialized) {
		r->f->C_Finalize(NULL);
		hold(r->dl, 0);
	}
	r->initialized = 0;
}

void tok_raw_unload(tok_raw *r)
{
	tok_raw_fini(r);
	if (r->dl != NULL)
		dlclose(r->dl);
	OPENSSL_free(r->path);
	memset(r, 0, sizeof(*r));
}

CK_RV tok_raw_tokens(CK_FUNCTION_LIST *f, tok_raw_token **ret_t, size_t *ret_n)
{
	CK_SLOT_ID *ids;
	CK_ULONG n, i;
	tok_raw_token *t = NULL;
	CK_RV rv;

	*ret_t = NULL;
	*ret_n = 0;
	if ((rv = tok_slot_ids(f, CK_TRUE, &ids, &n)) != CKR_OK)
		return rv;
	if (n == 0)
		return CKR_OK;
	if ((t = OPENSSL_zalloc(n * sizeof(*t))) == NULL) {
		OPENSSL_free(ids);
		return CKR_HOST_MEMORY;
	}
	for (i = 0; i < n; i++) {
		t[i].slot = ids[i];
		t[i].rv = f->C_GetTokenInfo(ids[i], &t[i].ti);
	}
	OPENSSL_free(ids);
	*ret_t = t;
	*ret_n = n;
	return CKR_OK;
}

/* Whether the URI names a slot attribute other than slot-id. */
static int names_slot_info(P11KitUri *uri)
{
	CK_SLOT_INFO *si = p11_kit_uri_get_slot_info(uri);
	size_t i;

	for (i = 0; i < sizeof(si->slotDescription); i++)
		if (si->slotDescription[i] != 0)
			return 1;
	for (i = 0; i < sizeof(si->manufacturerID); i++)
		if (si->manufacturerID[i] != 0)
			return 1;
	return 0;
}

int tok_raw_match(CK_FUNCTION_LIST *f, P11KitUri *uri, CK_SLOT_ID s, const CK_TOKEN_INFO *ti)
{
	CK_SLOT_ID want = p11_kit_uri_get_slot_id(uri);
	CK_SLOT_INFO si;

	if (want != (CK_SLOT_ID)-1 && want != s)
		return 0;
	if (!tok_match_token_info(uri, ti))
		return 0;
	if (names_slot_info(uri))
		return f->C_GetSlotInfo(s, &si) == CKR_OK && p11_kit_uri_match_slot_info(uri, &si);
	return 1;
}
