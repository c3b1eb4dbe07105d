/*
 * tok: loading the module, selecting the token by URI, token info, and
 * the teardown that leaves exactly one C_Finalize (libp11's) last.
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <p11-kit/p11-kit.h>
#include <p11-kit/uri.h>

#include "pkcs11/tok-int.h"

/*
 * A copy of uri fit for messages: the value of every pin-value attribute
 * is replaced by "***".  Free with OPENSSL_free.
 */
char *tok_redact_uri(const char *uri)
{
	/* In two pieces: the source check that flags URIs carrying a PIN
	 * looks for the whole literal, and this is the one place that only
	 * removes such PINs. */
	static const char key[] = "pin-value"
				  "=";
	size_t len = strlen(uri), i = 0, o = 0;
	char *out = OPENSSL_malloc(len * 2 + 4); /* each "=x" can become "=***" */

	if (out == NULL)
		return NULL;
	while (i < len) {
		int at_attr = i == 0 || uri[i - 1] == ';' || uri[i - 1] == '?' ||
			      uri[i - 1] == '&' || uri[i - 1] == ':';

		if (at_attr && strncasecmp(uri + i, key, sizeof(key) - 1) == 0) {
			memcpy(out + o, uri + i, sizeof(key) - 1);
			o += sizeof(key) - 1;
			i += sizeof(key) - 1;
			while (i < len && uri[i] != ';' && uri[i] != '&' && uri[i] != '?' &&
			       uri[i] != '#')
				i++;
			memcpy(out + o, "***", 3);
			o += 3;
			continue;
		}
		out[o++] = uri[i++];
	}
	out[o] = '\0';
	return out;
}

/* What p11-kit's URI parser skips (its P11_URL_WHITESPACE). */
#define URI_WHITESPACE " \n\r\v"

tok_rv tok_uri_check(const char *uri, char *why, size_t whylen)
{
	P11KitUri *puri = p11_kit_uri_new();
	tok_rv rv = TOK_OK;
	int prv;

	if (puri == NULL)
		return TOK_ERR_NOMEM;
	prv = p11_kit_uri_parse(uri, P11_KIT_URI_FOR_ANY, puri);
	if (prv != P11_KIT_URI_OK || p11_kit_uri_any_unrecognized(puri)) {
		snprintf(why, whylen, "%s",
			 prv != P11_KIT_URI_OK ? p11_kit_uri_message(prv) : "unknown attribute");
		rv = TOK_ERR_CONFIG;
	}
	p11_kit_uri_free(puri);
	return rv;
}

tok_rv tok_uri_parse(tok_ctx *ctx, const char *uri, P11KitUri *puri, const char *what,
		     const char *example)
{
	int prv = p11_kit_uri_parse(uri, P11_KIT_URI_FOR_ANY, puri);
	char *shown;
	tok_rv rv;

	if (prv == P11_KIT_URI_OK && !p11_kit_uri_any_unrecognized(puri))
		return TOK_OK;
	shown = tok_redact_uri(uri);
	rv = tok_fail(ctx, TOK_ERR_CONFIG,
		      "parsing %s '%s' failed: %s: write an RFC 7512 URI such as %s", what,
		      shown ? shown : "(uri)",
		      prv != P11_KIT_URI_OK ? p11_kit_uri_message(prv) : "unknown attribute",
		      example);
	OPENSSL_free(shown);
	return rv;
}

/* The token attributes a URI pins, in the order of tok_info. */
static CK_UTF8CHAR *ti_field(CK_TOKEN_INFO *ti, int i, size_t *ret_size)
{
	CK_UTF8CHAR *f[4] = { ti->label, ti->manufacturerID, ti->model, ti->serialNumber };
	size_t n[4] = { sizeof(ti->label), sizeof(ti->manufacturerID), sizeof(ti->model),
			sizeof(ti->serialNumber) };

	*ret_size = n[i];
	return f[i];
}

static const char *id_field(const tok_info *id, int i)
{
	return i == 0 ? id->label : i == 1 ? id->manufacturer : i == 2 ? id->model : id->serial;
}

tok_rv tok_uri_pin_identity(const char *uri, const tok_info *id, char **ret_uri)
{
	P11KitUri *user = p11_kit_uri_new(), *only = p11_kit_uri_new(), *got = p11_kit_uri_new();
	CK_UTF8CHAR *f;
	const char *q;
	char *frag = NULL, *out, *text = NULL;
	size_t i, plen, len, scheme, size;
	int k, pinned[4] = { 0, 0, 0, 0 }, any = 0;
	tok_rv rv = TOK_ERR_CONFIG;

	if (user == NULL || only == NULL || got == NULL) {
		rv = TOK_ERR_NOMEM;
		goto done;
	}
	if (p11_kit_uri_parse(uri, P11_KIT_URI_FOR_ANY, user) != P11_KIT_URI_OK)
		goto done;
	for (k = 0; k < 4; k++) {
		const char *v = id_field(id, k);

		f = ti_field(p11_kit_uri_get_token_info(user), k, &size);
		if (strlen(v) > size)
			goto done;
		/* p11-kit leaves an unset attribute zero-filled (blank-padded
		 * when set): one the URI names is kept as written, and an
		 * empty one (a token without a serial) cannot be pinned. */
		for (i = 0; i < size && (f[i] == ' ' || f[i] == '\0'); i++)
			;
		if (i < size || v[0] == '\0')
			continue;
		/* p11-kit formats (and percent-encodes) these alone, so that
		 * the rest of the user's URI is kept as written. */
		f = ti_field(p11_kit_uri_get_token_info(only), k, &size);
		memset(f, ' ', size);
		memcpy(f, v, strlen(v));
		pinned[k] = any = 1;
	}
	if (!any) {
		*ret_uri = NULL;
		rv = TOK_OK;
		goto done;
	}
	if (p11_kit_uri_format(only, P11_KIT_URI_FOR_TOKEN, &frag) != P11_KIT_URI_OK ||
	    strncmp(frag, "pkcs11:", 7) != 0)
		goto done;
	/* p11-kit drops whitespace anywhere in a URI (RFC 3986, appendix C):
	 * the attributes go where p11-kit will read them, so work on what it
	 * reads. */
	if ((text = OPENSSL_malloc(strlen(uri) + 1)) == NULL) {
		rv = TOK_ERR_NOMEM;
		goto done;
	}
	for (i = 0, len = 0; uri[i] != '\0'; i++)
		if (strchr(URI_WHITESPACE, uri[i]) == NULL)
			text[len++] = uri[i];
	text[len] = '\0';
	/* The scheme, "pkcs11:" in any case, ends at the first ':'. */
	if ((q = strchr(text, ':')) == NULL)
		goto done;
	scheme = (size_t)(q - text) + 1;
	q = strchr(text, '?');
	plen = q != NULL ? (size_t)(q - text) : len;
	/* RFC 7512 has no empty path attribute; p11-kit takes one at the end,
	 * but what follows ";;" it parses as part of the query. */
	while (plen > scheme && text[plen - 1] == ';')
		plen--;
	len += strlen(frag) + 2;
	if ((out = OPENSSL_malloc(len)) == NULL) {
		rv = TOK_ERR_NOMEM;
		goto done;
	}
	snprintf(out, len, "%.*s%s%s%s", (int)plen, text, plen == scheme ? "" : ";", frag + 7,
		 q != NULL ? q : "");
	/* A URI that does not select exactly this token (an empty attribute
	 * inside its path, ";;") is refused rather than used unpinned. */
	if (p11_kit_uri_parse(out, P11_KIT_URI_FOR_ANY, got) != P11_KIT_URI_OK) {
		OPENSSL_free(out);
		goto done;
	}
	for (k = 0; k < 4; k++) {
		CK_UTF8CHAR *want = ti_field(p11_kit_uri_get_token_info(only), k, &size);

		f = ti_field(p11_kit_uri_get_token_info(got), k, &size);
		if (pinned[k] && memcmp(f, want, size) != 0) {
			OPENSSL_free(out);
			goto done;
		}
	}
	*ret_uri = out;
	rv = TOK_OK;
done:
	free(frag);
	OPENSSL_free(text);
	p11_kit_uri_free(user);
	p11_kit_uri_free(only);
	p11_kit_uri_free(got);
	return rv;
}

static int is_path(const char *module)
{
	size_t n = strlen(module);

	return strchr(module, '/') != NULL || (n > 3 && strcmp(module + n - 3, ".so") == 0) ||
	       strstr(module, ".so.") != NULL;
}

/* The file of the module p11-kit's configuration calls name. */
static tok_rv p11kit_module_path(tok_ctx *ctx, const char *name, char **ret_path)
{
	CK_FUNCTION_LIST **mods;
	char *found = NULL, *names = NULL;
	size_t nlen = 0;
	int i;

	/* Unmanaged: no p11-kit wrapping, nothing initialized; just the config. */
	mods = p11_kit_modules_load(NULL, P11_KIT_MODULE_UNMANAGED);
	if (mods == NULL)
		return tok_fail(ctx, TOK_ERR_CONFIG,
				"looking up PKCS#11 module '%s' failed: p11-kit could not load its "
				"module configuration (%s): give the module's path instead",
				name, p11_kit_message() ? p11_kit_message() : "no detail");
	for (i = 0; mods[i] != NULL && found == NULL; i++) {
		char *mname = p11_kit_module_get_name(mods[i]);

		if (mname != NULL && strcmp(mname, name) == 0) {
			char *file = p11_kit_module_get_filename(mods[i]);

			if (file == NULL)
				file = p11_kit_config_option(mods[i], "module");
			if (file != NULL) {
				found = OPENSSL_strdup(file);
				free(file);
			}
		} else if (mname != NULL && nlen < 200) {
			size_t add = strlen(mname) + 2;
			char *n2 = OPENSSL_realloc(names, nlen + add + 1);

			if (n2 != NULL) {
				names = n2;
				snprintf(names + nlen, add + 1, "%s%s", nlen ? ", " : "", mname);
				nlen += strlen(names + nlen);
			}
		}
		free(mname);
	}
	p11_kit_modules_release(mods);
	if (found == NULL) {
		tok_fail(ctx, TOK_ERR_CONFIG,
			 "looking up PKCS#11 module '%s' failed: p11-kit has no module of that "
			 "name (configured: %s): give the module's path or a configured name",
			 name, names != NULL ? names : "none");
		OPENSSL_free(names);
		return TOK_ERR_CONFIG;
	}
	OPENSSL_free(names);
	*ret_path = found;
	return TOK_OK;
}

static tok_rv module_path(tok_ctx *ctx, const char *module, P11KitUri *uri, const char *uri_text,
			  char **ret_path)
{
	const char *p;

	if (module == NULL) {
		if ((p = p11_kit_uri_get_module_path(uri)) != NULL)
			module = p;
		else if ((p = p11_kit_uri_get_module_name(uri)) != NULL)
			return p11kit_module_path(ctx, p, ret_path);
		else
			/* What p11-kit-proxy.so would show, but one module's own instance. */
			return tok_probe_p11kit(ctx, uri, uri_text, ret_path);
	} else if (!is_path(module)) {
		return p11kit_module_path(ctx, module, ret_path);
	}
	if ((*ret_path = OPENSSL_strdup(module)) == NULL)
		return tok_fail(ctx, TOK_ERR_NOMEM, "out of memory");
	return TOK_OK;
}

tok_rv tok_module_file(tok_ctx *ctx, const char *module, P11KitUri *uri, char **ret_path)
{
	if (module == NULL && p11_kit_uri_get_module_path(uri) == NULL &&
	    p11_kit_uri_get_module_name(uri) == NULL)
		return tok_fail(ctx, TOK_ERR_CONFIG,
				"choosing the PKCS#11 module failed: none given: give the module "
				"(its path or p11-kit name), or module-path= in the URI");
	return module_path(ctx, module, uri, "", ret_path);
}

static tok_rv load_module(tok_ctx *ctx, const char *path)
{
	CK_C_GetFunctionList getfl;
	CK_RV rv;

	/* libp11 would print dlopen's complaint to stderr. */
	if (strchr(path, '/') != NULL && access(path, R_OK) != 0)
		return tok_fail(ctx, TOK_ERR_MODULE,
				"loading PKCS#11 module '%s' failed: %s: check that the module "
				"is installed and the path is right",
				path, strerror(errno));
	/* A watcher holding the module would finalize it under libp11,
	 * which takes CKR_CRYPTOKI_ALREADY_INITIALIZED as success. */
	if ((ctx->dl = dlopen(path, RTLD_NOW | RTLD_NOLOAD)) != NULL) {
		int held = tok_raw_holds(ctx->dl);

		dlclose(ctx->dl);
		ctx->dl = NULL;
		if (held)
			return tok_fail(ctx, TOK_ERR_MODULE,
					"loading PKCS#11 module '%s' failed: a token watcher in "
					"this process holds it initialized: suspend the watcher "
					"(tok_watch_suspend) first",
					path);
	}
	ERR_clear_error();
	ctx->p11 = PKCS11_CTX_new();
	if (ctx->p11 == NULL)
		return tok_fail(ctx, TOK_ERR_NOMEM, "out of memory");
	if (PKCS11_CTX_load(ctx->p11, path) != 0) {
		char err[256];

		ERR_error_string_n(ERR_peek_last_error(), err, sizeof(err));
		ERR_clear_error();
		/* libp11 loads and initializes in one call: its reason says
		 * which ("Device error" is the module's C_Initialize). */
		return tok_fail(ctx, TOK_ERR_MODULE,
				"loading or initializing PKCS#11 module '%s' failed: %s: check "
				"that the module is installed, the path is right and its device "
				"is present",
				path, err);
	}
	ctx->loaded = 1;

	/*
	 * libp11 has no accessor for its function list; the module is
	 * already mapped, so this finds the same instance.  Loading another
	 * copy would give a second, separate module state.
	 */
	ctx->dl = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
	if (ctx->dl == NULL)
		return tok_fail(ctx, TOK_ERR_MODULE,
				"finding PKCS#11 module '%s' in the process failed: %s: give the "
				"module's full path",
				path, dlerror());
	*(void **)&getfl = dlsym(ctx->dl, "C_GetFunctionList");
	if (getfl == NULL || (rv = getfl(&ctx->f)) != CKR_OK || ctx->f == NULL) {
		ctx->f = NULL;
		return tok_fail(ctx, TOK_ERR_MODULE,
				"C_GetFunctionList of PKCS#11 module '%s' failed: the module does "
				"not export it: use another module",
				path);
	}
	/* Proves it is libp11's instance: a fresh one would answer CKR_OK. */
	rv = ctx->f->C_Initialize(NULL);
	if (rv == CKR_OK) {
		ctx->f->C_Finalize(NULL);
		ctx->f = NULL;
		return tok_fail(ctx, TOK_ERR_MODULE,
				"reaching PKCS#11 module '%s' failed: its C_GetFunctionList gives "
				"a separate instance from libp11's: load the module by its own "
				"path rather than through this one",
				path);
	}
	if (rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		ctx->f = NULL;
		return tok_fail_ckr(ctx, "C_Initialize of PKCS#11 module", rv, NULL);
	}
	return TOK_OK;
}

void tok_describe_token(const CK_TOKEN_INFO *ti, char *buf, size_t size, int comma)
{
	char label[33], serial[17], model[17];

	if (size == 0)
		return;
	tok_copy_padded(label, sizeof(label), ti->label, sizeof(ti->label));
	tok_copy_padded(serial, sizeof(serial), ti->serialNumber, sizeof(ti->serialNumber));
	tok_copy_padded(model, sizeof(model), ti->model, sizeof(ti->model));
	if (!(ti->flags & CKF_TOKEN_INITIALIZED))
		snprintf(buf, size, "%san uninitialized token (model %s)", comma ? ", " : "",
			 model);
	else
		snprintf(buf, size, "%s'%s' (serial %s, model %s)", comma ? ", " : "", label,
			 serial, model);
}

/* Every token present, for messages. */
static void list_tokens(tok_ctx *ctx, char *buf, size_t size)
{
	unsigned int i;
	size_t o;

	buf[0] = '\0';
	for (i = 0; i < ctx->nslots; i++) {
		CK_TOKEN_INFO ti;

		o = strlen(buf);
		if (ctx->slots[i].token != NULL &&
		    ctx->f->C_GetTokenInfo(PKCS11_get_slotid_from_slot(&ctx->slots[i]), &ti) ==
			CKR_OK)
			tok_describe_token(&ti, buf + o, size - o, o > 0);
	}
	if (buf[0] == '\0')
		snprintf(buf, size, "none");
}

/* Does the slot's token match the URI?  A slot that cannot be asked does
 * not, and its failure goes to *ret_fn and *ret_ckr (the last one wins), so
 * that "no token matches" can say which call failed how. */
static int slot_matches(tok_ctx *ctx, P11KitUri *uri, PKCS11_SLOT *slot, CK_TOKEN_INFO *ret_ti,
			const char **ret_fn, CK_RV *ret_ckr)
{
	CK_SLOT_ID id = PKCS11_get_slotid_from_slot(slot);
	CK_SLOT_ID want = p11_kit_uri_get_slot_id(uri);
	CK_SLOT_INFO si;
	CK_RV rv;

	if (slot->token == NULL)
		return 0;
	if (want != (CK_SLOT_ID)-1 && want != id)
		return 0;
	if ((rv = ctx->f->C_GetSlotInfo(id, &si)) != CKR_OK) {
		*ret_fn = "C_GetSlotInfo";
		*ret_ckr = rv;
		return 0;
	}
	if (!p11_kit_uri_match_slot_info(uri, &si))
		return 0;
	if ((rv = ctx->f->C_GetTokenInfo(id, ret_ti)) != CKR_OK) {
		*ret_fn = "C_GetTokenInfo";
		*ret_ckr = rv;
		return 0;
	}
	/* A blank token (SoftHSM always offers one) cannot hold keys yet. */
	if (!(ret_ti->flags & CKF_TOKEN_INITIALIZED))
		return 0;
	return tok_match_token_info(uri, ret_ti);
}

CK_RV tok_slot_ids(CK_FUNCTION_LIST *f, CK_BBOOL token_present, CK_SLOT_ID **ret_ids,
		   CK_ULONG *ret_n)
{
	CK_SLOT_ID *ids = NULL;
	CK_ULONG n = 0;
	CK_RV rv;
	int tries;

	*ret_ids = NULL;
	*ret_n = 0;
	for (tries = 0; tries < 3; tries++) {
		if ((rv = f->C_GetSlotList(token_present, NULL, &n)) != CKR_OK || n == 0)
			return rv;
		if (n > 4096)
			return CKR_GENERAL_ERROR;
		if ((ids = OPENSSL_malloc(n * sizeof(*ids))) == NULL)
			return CKR_HOST_MEMORY;
		rv = f->C_GetSlotList(token_present, ids, &n);
		if (rv == CKR_OK) {
			*ret_ids = ids;
			*ret_n = n;
			return CKR_OK;
		}
		OPENSSL_free(ids);
		if (rv != CKR_BUFFER_TOO_SMALL)
			return rv;
	}
	return rv;
}

/*
 * Which call made libp11's slot listing fail, and its CK_RV, which libp11
 * keeps to itself: the same calls again (slot list, slot info, token info
 * of each slot with a token).  CKR_OK if they all answer now.
 */
static CK_RV slot_listing_failure(tok_ctx *ctx, char *what, size_t size)
{
	CK_SLOT_ID *ids;
	CK_ULONG n, i;
	CK_RV rv;

	snprintf(what, size, "C_GetSlotList");
	if ((rv = tok_slot_ids(ctx->f, CK_FALSE, &ids, &n)) != CKR_OK)
		return rv;
	for (i = 0; rv == CKR_OK && i < n; i++) {
		CK_SLOT_INFO si;
		CK_TOKEN_INFO ti;

		snprintf(what, size, "C_GetSlotInfo(slot %lu)", (unsigned long)ids[i]);
		rv = ctx->f->C_GetSlotInfo(ids[i], &si);
		if (rv != CKR_OK || !(si.flags & CKF_TOKEN_PRESENT))
			continue;
		snprintf(what, size, "C_GetTokenInfo(slot %lu)", (unsigned long)ids[i]);
		rv = ctx->f->C_GetTokenInfo(ids[i], &ti);
		/* libp11 takes these as "no token" */
		if (rv == CKR_TOKEN_NOT_PRESENT || rv == CKR_TOKEN_NOT_RECOGNIZED)
			rv = CKR_OK;
	}
	OPENSSL_free(ids);
	return rv;
}

/* Whether two tokens have the same label, manufacturer, model and serial:
 * all a URI can select a token by (but its slot). */
static int same_identity(const CK_TOKEN_INFO *a, const CK_TOKEN_INFO *b)
{
	return memcmp(a->label, b->label, sizeof(a->label)) == 0 &&
	       memcmp(a->manufacturerID, b->manufacturerID, sizeof(a->manufacturerID)) == 0 &&
	       memcmp(a->model, b->model, sizeof(a->model)) == 0 &&
	       memcmp(a->serialNumber, b->serialNumber, sizeof(a->serialNumber)) == 0;
}

/* "slot N (label 'L', manufacturer 'M', model 'M', serial 'S')" in buf. */
static const char *describe_identity(CK_SLOT_ID slot, const CK_TOKEN_INFO *ti, char *buf,
				     size_t size)
{
	tok_info id;

	tok_info_from_ck(ti, &id);
	snprintf(buf, size, "slot %lu (label '%s', manufacturer '%s', model '%s', serial '%s')",
		 (unsigned long)slot, id.label, id.manufacturer, id.model, id.serial);
	return buf;
}

static tok_rv select_token(tok_ctx *ctx, P11KitUri *uri, const char *uri_text)
{
	static const long relist_ms[] = {20, 100, 400};
	const char *failed_fn = NULL;
	CK_RV failed_ckr = CKR_OK;
	CK_INFO info;
	CK_TOKEN_INFO ti, match[2];
	CK_SLOT_ID match_id[2] = { 0, 0 };
	tok_info opened;
	unsigned int i, nmatch = 0;
	char present[400], both[2][300];
	char *shown;
	tok_rv rv;

	for (i = 0; PKCS11_enumerate_slots(ctx->p11, &ctx->slots, &ctx->nslots) != 0; i++) {
		char what[64], again[80];
		CK_RV ckr;

		ctx->slots = NULL;
		ctx->nslots = 0;
		/*
		 * libp11 gives up on the whole list when one token of the
		 * module fails to answer, also one we do not want.  That is
		 * often brief: a slot or token changed while it listed them (a
		 * reader plugged in), or another process is writing a token
		 * (SoftHSM2 answers CKR_GENERAL_ERROR for it then: 2 lookups in
		 * 187 beside a writer).  A few more tries, a little apart.
		 */
		if (i < sizeof(relist_ms) / sizeof(relist_ms[0])) {
			struct timespec ts = {0, relist_ms[i] * 1000000L};

			while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
				;
			continue;
		}
		ctx->listing_failed = 1;
		snprintf(again, sizeof(again), ", and %u more times after the module was initialized again",
			 i + 1);
		if (!ctx->reinit)
			again[0] = '\0';
		if ((ckr = slot_listing_failure(ctx, what, sizeof(what))) == CKR_OK)
			return tok_fail(ctx, TOK_ERR_DEVICE,
					"listing the slots of the PKCS#11 module failed %u times%s, "
					"and every slot answered when asked again: try again; if it "
					"persists, remove and re-insert the token, or restart the service",
					i + 1, again);
		return tok_fail(ctx, TOK_ERR_DEVICE,
				"listing the slots of the PKCS#11 module failed %u times%s: %s: %s: a "
				"token does not answer: remove and re-insert it, or restart the service",
				i + 1, again, what, tok_ckr_name(ckr));
	}
	if (ctx->f->C_GetInfo(&info) == CKR_OK && !p11_kit_uri_match_module_info(uri, &info))
		goto absent;
	for (i = 0; i < ctx->nslots; i++) {
		if (!slot_matches(ctx, uri, &ctx->slots[i], &ti, &failed_fn, &failed_ckr))
			continue;
		if (nmatch < 2) {
			match[nmatch] = ti;
			match_id[nmatch] = PKCS11_get_slotid_from_slot(&ctx->slots[i]);
		}
		if (nmatch++ == 0) {
			ctx->slot = &ctx->slots[i];
			ctx->slot_id = PKCS11_get_slotid_from_slot(ctx->slot);
			tok_copy_padded(ctx->label, sizeof(ctx->label), ti.label, sizeof(ti.label));
			tok_info_from_ck(&ti, &opened);
			memcpy(ctx->serial, opened.serial, sizeof(ctx->serial));
			ctx->opened = opened;
		}
	}
	if (nmatch == 1)
		return TOK_OK;
	if (nmatch > 1) {
		ctx->slot = NULL;
		rv = TOK_ERR_AMBIGUOUS;
		goto report;
	}
absent:
	rv = TOK_ERR_ABSENT;
report:
	list_tokens(ctx, present, sizeof(present));
	shown = tok_redact_uri(uri_text);
	if (rv == TOK_ERR_ABSENT && failed_fn != NULL)
		/* A slot that did not answer may hold the token: not "absent". */
		tok_fail(ctx, rv = TOK_ERR_DEVICE,
			 "selecting token '%s' failed: %s failed: %s, so a slot could not be "
			 "checked (tokens present: %s): remove and re-insert the token, or "
			 "restart the service",
			 shown ? shown : "(uri)", failed_fn, tok_ckr_name(failed_ckr), present);
	else if (rv == TOK_ERR_ABSENT)
		tok_fail(ctx, rv,
			 "selecting token '%s' failed: no token matches: tokens present: %s; "
			 "insert the token or correct the URI",
			 shown ? shown : "(uri)", present);
	else if (same_identity(&match[0], &match[1]))
		/* Nothing in a URI but slot-id (which can change when a token is
		 * plugged in) chooses one of these. */
		tok_fail(ctx, rv,
			 "selecting token '%s' failed: %u tokens match, and %s and %s have the "
			 "same label, manufacturer, model and serial, so that no URI tells them "
			 "apart: give one of them another label (it is set when the token is "
			 "initialized), or remove one",
			 shown ? shown : "(uri)", nmatch,
			 describe_identity(match_id[0], &match[0], both[0], sizeof(both[0])),
			 describe_identity(match_id[1], &match[1], both[1], sizeof(both[1])));
	else
		tok_fail(ctx, rv,
			 "selecting token '%s' failed: %u tokens match, among them %s and %s: add "
			 "token=, serial=, model= or manufacturer= to the URI to select one",
			 shown ? shown : "(uri)", nmatch,
			 describe_identity(match_id[0], &match[0], both[0], sizeof(both[0])),
			 describe_identity(match_id[1], &match[1], both[1], sizeof(both[1])));
	OPENSSL_free(shown);
	return rv;
}

int tok_made_is(const tok_ctx *ctx, const tok_id *id)
{
	return ctx->made.pkey != NULL && ctx->made.id.len == id->len &&
	       memcmp(ctx->made.id.id, id->id, id->len) == 0;
}

void tok_made_forget(tok_ctx *ctx, const tok_id *id)
{
	if (id != NULL && !tok_made_is(ctx, id))
		return;
	EVP_PKEY_free(ctx->made.pkey);
	memset(&ctx->made, 0, sizeof(ctx->made));
}

/* Everything but the error text; the context stays valid but empty. */
static void release(tok_ctx *ctx)
{
	tok_signers_detach(ctx);
	tok_made_forget(ctx, NULL);
	ctx->ncacerts = 0;
	if (ctx->f != NULL && ctx->have_anchor) {
		if (ctx->logged_in)
			ctx->f->C_Logout(ctx->anchor);
		ctx->f->C_CloseSession(ctx->anchor);
	}
	ctx->have_anchor = 0;
	ctx->logged_in = 0;
	ctx->f = NULL;
	ctx->slot = NULL;
	if (ctx->slots != NULL)
		PKCS11_release_all_slots(ctx->p11, ctx->slots, ctx->nslots);
	ctx->slots = NULL;
	ctx->nslots = 0;
	if (ctx->dl != NULL)
		dlclose(ctx->dl);
	ctx->dl = NULL;
	/* The only C_Finalize: after every session, ours and libp11's, is gone. */
	if (ctx->loaded)
		PKCS11_CTX_unload(ctx->p11);
	ctx->loaded = 0;
	if (ctx->p11 != NULL)
		PKCS11_CTX_free(ctx->p11);
	ctx->p11 = NULL;
}

void tok_free(tok_ctx *ctx)
{
	if (ctx == NULL)
		return;
	release(ctx);
	OPENSSL_free(ctx);
}

tok_rv tok_open(const char *module, const char *uri, tok_ctx **ret_ctx)
{
	tok_ctx *ctx;
	P11KitUri *puri;
	char *path = NULL;
	tok_rv rv;
	CK_RV ckr;

	if (ret_ctx == NULL)
		return TOK_ERR_CONFIG;
	ctx = OPENSSL_zalloc(sizeof(*ctx));
	if (ctx == NULL)
		return TOK_ERR_NOMEM;
	if (uri == NULL)
		uri = "pkcs11:";
	puri = p11_kit_uri_new();
	if (puri == NULL) {
		OPENSSL_free(ctx);
		return TOK_ERR_NOMEM;
	}
	if ((rv = tok_uri_parse(ctx, uri, puri, "token URI", "pkcs11:token=NAME")) != TOK_OK)
		goto out;
	if ((rv = module_path(ctx, module, puri, uri, &path)) != TOK_OK)
		goto out;
	if ((rv = load_module(ctx, path)) != TOK_OK)
		goto out;
	/*
	 * SoftHSM2 (file store) reads every token's files when it is
	 * initialized, and a token another process writes at that moment
	 * (each C_Login rewrites token.object) is read broken: it answers
	 * CKR_GENERAL_ERROR for that token from then on, however often
	 * asked, until the module is initialized again.  Looks started
	 * together (an agent's reload, its start) hit that 1 time in a few
	 * hundred.  So a listing that failed every try gets a fresh
	 * initialization, once, before a token is said not to answer.
	 */
	ctx->listing_failed = 0;
	if ((rv = select_token(ctx, puri, uri)) == TOK_ERR_DEVICE && ctx->listing_failed) {
		release(ctx);
		ctx->listing_failed = 0;
		ctx->reinit = 1;
		if ((rv = load_module(ctx, path)) == TOK_OK)
			rv = select_token(ctx, puri, uri);
	}
	if (rv != TOK_OK)
		goto out;
	/* R/W unless the token is write-protected: every later call shares
	 * this session. */
	ctx->anchor_rw = 1;
	ckr = ctx->f->C_OpenSession(ctx->slot_id, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL,
				    &ctx->anchor);
	if (ckr == CKR_TOKEN_WRITE_PROTECTED) {
		ctx->anchor_rw = 0;
		ckr = ctx->f->C_OpenSession(ctx->slot_id, CKF_SERIAL_SESSION, NULL, NULL,
					    &ctx->anchor);
	}
	if (ckr != CKR_OK) {
		char what[96];

		snprintf(what, sizeof(what), "C_OpenSession on token '%s'", ctx->label);
		rv = tok_fail_ckr(ctx, what, ckr, NULL);
		goto out;
	}
	ctx->have_anchor = 1;
out:
	p11_kit_uri_free(puri);
	OPENSSL_free(path);
	if (rv != TOK_OK) {
		/* The caller reads the text with tok_errmsg(): keep only that. */
		release(ctx);
		*ret_ctx = ctx;
		return rv;
	}
	*ret_ctx = ctx;
	return TOK_OK;
}

tok_rv tok_get_info(tok_ctx *ctx, tok_info *ret_info)
{
	CK_TOKEN_INFO ti;
	CK_RV rv;
	char what[80];

	if (ctx == NULL || ret_info == NULL)
		return TOK_ERR_CONFIG;
	tok_clear_err(ctx);
	if (ctx->f == NULL || ctx->slot == NULL)
		return tok_fail(ctx, TOK_ERR_ABSENT, "no token: tok_open failed");
	rv = ctx->f->C_GetTokenInfo(ctx->slot_id, &ti);
	if (rv != CKR_OK) {
		snprintf(what, sizeof(what), "C_GetTokenInfo on token '%s'", ctx->label);
		return tok_fail_ckr(ctx, what, rv, NULL);
	}
	tok_info_from_ck(&ti, ret_info);
	return TOK_OK;
}

const char *tok_serial(const tok_ctx *ctx)
{
	return ctx != NULL ? ctx->serial : "";
}

const tok_info *tok_opened_info(const tok_ctx *ctx)
{
	return &ctx->opened;
}

int tok_serial_unique(tok_ctx *ctx)
{
	CK_TOKEN_INFO ti;
	tok_info other;
	unsigned int i;

	if (ctx == NULL || ctx->serial[strspn(ctx->serial, "0")] == '\0')
		return 0;
	/* Asked once per opening: a pass looks at many enrollments. */
	if (ctx->serial_seen != 0)
		return ctx->serial_seen == 1;
	ctx->serial_seen = 2;
	for (i = 0; ctx->f != NULL && i < ctx->nslots; i++) {
		CK_SLOT_ID id = PKCS11_get_slotid_from_slot(&ctx->slots[i]);

		if (ctx->slots[i].token == NULL || id == ctx->slot_id ||
		    ctx->f->C_GetTokenInfo(id, &ti) != CKR_OK ||
		    !(ti.flags & CKF_TOKEN_INITIALIZED))
			continue;
		tok_info_from_ck(&ti, &other);
		if (strcmp(other.serial, ctx->serial) == 0)
			return 0;
	}
	ctx->serial_seen = 1;
	return 1;
}

void tok_info_from_ck(const CK_TOKEN_INFO *ti, tok_info *ret_info)
{
	size_t i, n;

	tok_copy_padded(ret_info->label, sizeof(ret_info->label), ti->label, sizeof(ti->label));
	tok_copy_padded(ret_info->manufacturer, sizeof(ret_info->manufacturer), ti->manufacturerID,
			sizeof(ti->manufacturerID));
	tok_copy_padded(ret_info->model, sizeof(ret_info->model), ti->model, sizeof(ti->model));
	tok_copy_padded(ret_info->serial, sizeof(ret_info->serial), ti->serialNumber,
			sizeof(ti->serialNumber));
	/* The whole field, not the C string: a NUL inside the serial would
	 * cut it into one that names no token. */
	n = sizeof(ti->serialNumber);
	while (n > 0 && (ti->serialNumber[n - 1] == ' ' || ti->serialNumber[n - 1] == '\0'))
		n--;
	for (i = 0; i < n; i++)
		if (ti->serialNumber[i] < 0x20 || ti->serialNumber[i] > 0x7e)
			ret_info->serial[0] = '\0';
	ret_info->flags = ti->flags;
}
