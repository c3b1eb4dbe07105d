/*
 * tok: key pair generation on the token with C_GenerateKeyPair on the raw
 * function list (libp11 0.4.12 generates RSA only and never sets
 * CKA_EXTRACTABLE).  The pair is generated under a random temporary
 * CKA_ID, then given the RFC 5280 key identifier of its public key; any
 * failure after generation destroys both objects.
 *
 * The template is strict on every token.  What the token cannot do is
 * refused before anything is generated (C_GetMechanismInfo); a module that
 * refuses the public key's usage attributes gets them left to itself (see
 * generate()), and the private key it made is read back and refused unless
 * it signs only, is sensitive and not extractable.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <openssl/rand.h>

#include "pkcs11/tok-int.h"

/* DER OIDs: prime256v1 (1.2.840.10045.3.1.7) and secp384r1 (1.3.132.0.34). */
static const unsigned char oid_p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
					 0xce, 0x3d, 0x03, 0x01, 0x07};
static const unsigned char oid_p384[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22};
static const unsigned char f4[] = {0x01, 0x00, 0x01};

static tok_rv check_spec(tok_ctx *ctx, const tok_keyspec *spec)
{
	if (spec->alg == TOK_KEY_EC && (spec->bits == 256 || spec->bits == 384))
		return TOK_OK;
	if (spec->alg == TOK_KEY_RSA &&
	    (spec->bits == 2048 || spec->bits == 3072 || spec->bits == 4096))
		return TOK_OK;
	return tok_fail(ctx, TOK_ERR_CONFIG,
			"generating a key on token '%s' failed: unsupported key type (alg %d, "
			"%d bits): use EC P-256/P-384 or RSA 2048/3072/4096",
			ctx->label, (int)spec->alg, spec->bits);
}

/*
 * What the module says of generating alg keys: 1 it does, sizes
 * *ret_min..*ret_max bits (0..0: it gives none); 0 it does not
 * (CKR_MECHANISM_INVALID, or the mechanism lacks CKF_GENERATE_KEY_PAIR); -1
 * it did not say (C_GetMechanismInfo failed otherwise).
 */
static int mech_sizes(tok_ctx *ctx, tok_keyalg alg, CK_ULONG *ret_min, CK_ULONG *ret_max)
{
	CK_MECHANISM_TYPE m = alg == TOK_KEY_EC ? CKM_EC_KEY_PAIR_GEN : CKM_RSA_PKCS_KEY_PAIR_GEN;
	CK_MECHANISM_INFO mi;
	CK_RV ckr;

	memset(&mi, 0, sizeof(mi));
	ckr = ctx->f->C_GetMechanismInfo(ctx->slot_id, m, &mi);
	if (ckr == CKR_MECHANISM_INVALID)
		return 0;
	if (ckr != CKR_OK)
		return -1;
	/* flags 0: a module that fills in no flags says nothing */
	if (mi.flags != 0 && !(mi.flags & CKF_GENERATE_KEY_PAIR))
		return 0;
	/* EC sizes are the field's bits since PKCS#11 2.40; older modules give
	 * bytes (32..66), and no curve in use is smaller than 160 bits */
	if (alg == TOK_KEY_EC && mi.ulMaxKeySize > 0 && mi.ulMaxKeySize < 100) {
		mi.ulMinKeySize *= 8;
		mi.ulMaxKeySize *= 8;
	}
	if (mi.ulMaxKeySize < mi.ulMinKeySize)
		mi.ulMinKeySize = mi.ulMaxKeySize = 0;
	*ret_min = mi.ulMinKeySize;
	*ret_max = mi.ulMaxKeySize;
	return 1;
}

/* ", EC 256-384 bits" (or ", EC" without sizes) when the token generates
 * alg keys, appended to buf. */
static void add_sizes(tok_ctx *ctx, tok_keyalg alg, char *buf, size_t size)
{
	CK_ULONG min = 0, max = 0;
	size_t n = strlen(buf);
	const char *name = alg == TOK_KEY_EC ? "EC" : "RSA";

	if (mech_sizes(ctx, alg, &min, &max) != 1)
		return;
	if (max == 0)
		snprintf(buf + n, size - n, "%s%s keys", n ? " and " : "", name);
	else
		snprintf(buf + n, size - n, "%s%s %lu-%lu bits", n ? " and " : "", name,
			 (unsigned long)min, (unsigned long)max);
}

/*
 * Refuses a key the token says it cannot generate, naming what it can.  A
 * module that does not answer C_GetMechanismInfo, or gives no sizes, is
 * not refused: C_GenerateKeyPair will say.
 */
static tok_rv check_token_can(tok_ctx *ctx, const tok_keyspec *spec)
{
	CK_ULONG min = 0, max = 0, bits = (CK_ULONG)spec->bits;
	char can[96] = "";
	int r = mech_sizes(ctx, spec->alg, &min, &max);

	if (r < 0 || (r == 1 && (max == 0 || (bits >= min && bits <= max))))
		return TOK_OK;
	add_sizes(ctx, TOK_KEY_EC, can, sizeof(can));
	add_sizes(ctx, TOK_KEY_RSA, can, sizeof(can));
	if (can[0] == '\0')
		return tok_fail(ctx, TOK_ERR_CONFIG,
				"token '%s' cannot generate %s %d keys: it generates neither EC nor "
				"RSA key pairs: use another token, or certify a key pair already on "
				"it (key_id)",
				ctx->label, spec->alg == TOK_KEY_EC ? "EC" : "RSA", spec->bits);
	return tok_fail(ctx, TOK_ERR_CONFIG,
			"token '%s' cannot generate %s %d keys: it supports %s: set key_type to "
			"one of them",
			ctx->label, spec->alg == TOK_KEY_EC ? "EC" : "RSA", spec->bits, can);
}

/* Both objects of a half-made pair go; the message of the failure that
 * made it half-made gets what could not be removed. */
static void destroy_pair(tok_ctx *ctx, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE pub,
			 CK_OBJECT_HANDLE priv, const char *label)
{
	CK_RV ckr = ctx->f->C_DestroyObject(s, priv), ckr2 = ctx->f->C_DestroyObject(s, pub);
	size_t n = strlen(ctx->errmsg);

	if (ckr == CKR_OK && ckr2 == CKR_OK)
		return;
	snprintf(ctx->errmsg + n, sizeof(ctx->errmsg) - n,
		 "; removing the half-made key pair failed too (C_DestroyObject: %s): %s is "
		 "left on the token, labelled '%s'",
		 tok_ckr_name(ckr != CKR_OK ? ckr : ckr2),
		 ckr != CKR_OK && ckr2 != CKR_OK ? "the pair"
		 : ckr != CKR_OK		 ? "its private key"
						 : "its public key",
		 label);
}

/* Sets CKA_ID on both objects, from the public key the token made. */
static tok_rv finish_pair(tok_ctx *ctx, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE pub,
			  CK_OBJECT_HANDLE priv, tok_id *ret_id)
{
	EVP_PKEY *pkey = NULL;
	tok_id id;
	CK_ATTRIBUTE set = {CKA_ID, id.id, 0};
	char what[96];
	tok_rv rv;
	CK_RV ckr;

	if ((rv = tok_pubkey_from_object(ctx, s, pub, &pkey)) != TOK_OK)
		return rv;
	if (!tok_key_identifier(pkey, &id)) {
		EVP_PKEY_free(pkey);
		return tok_fail(ctx, TOK_ERR_DEVICE,
				"generating a key on token '%s' failed: OpenSSL could not encode "
				"its public key: report this",
				ctx->label);
	}
	set.ulValueLen = id.len;
	ckr = ctx->f->C_SetAttributeValue(s, priv, &set, 1);
	if (ckr == CKR_OK)
		ckr = ctx->f->C_SetAttributeValue(s, pub, &set, 1);
	if (ckr != CKR_OK) {
		EVP_PKEY_free(pkey);
		snprintf(what, sizeof(what), "setting CKA_ID of a new key on token '%s'",
			 ctx->label);
		return tok_fail_ckr(ctx, what, ckr, NULL);
	}
	tok_made_forget(ctx, NULL);
	ctx->made.id = id;
	ctx->made.priv = priv;
	ctx->made.pub = pub;
	ctx->made.cert = CK_INVALID_HANDLE;
	ctx->made.pkey = pkey;
	*ret_id = id;
	return TOK_OK;
}

/*
 * The private key as the token made it: it signs, is sensitive and not
 * extractable, and neither decrypts nor unwraps (unless allowed) nor, for
 * EC, derives.  One C_GetAttributeValue.  Checked on every token: a module
 * whose template was relaxed (generate()) decides some of these itself.
 */
static tok_rv check_private(tok_ctx *ctx, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE priv,
			    const tok_keyspec *spec)
{
	enum { SIGN, SENSITIVE, EXTRACTABLE, DECRYPT, UNWRAP, DERIVE, N };
	static const char *const name[N] = {"CKA_SIGN",	   "CKA_SENSITIVE", "CKA_EXTRACTABLE",
					    "CKA_DECRYPT", "CKA_UNWRAP",    "CKA_DERIVE"};
	CK_BBOOL v[N];
	CK_ATTRIBUTE a[N];
	CK_ULONG n = spec->alg == TOK_KEY_EC ? N : DERIVE;
	int val[N], bad = -1, i;
	char what[96];
	CK_RV ckr;

	for (i = 0; i < N; i++)
		a[i] = (CK_ATTRIBUTE){(CK_ATTRIBUTE_TYPE)0, &v[i], sizeof(v[i])};
	a[SIGN].type = CKA_SIGN;
	a[SENSITIVE].type = CKA_SENSITIVE;
	a[EXTRACTABLE].type = CKA_EXTRACTABLE;
	a[DECRYPT].type = CKA_DECRYPT;
	a[UNWRAP].type = CKA_UNWRAP;
	a[DERIVE].type = CKA_DERIVE;
	ckr = ctx->f->C_GetAttributeValue(s, priv, a, n);
	/* an attribute the key lacks leaves its length -1, the others read */
	if (ckr != CKR_OK && ckr != CKR_ATTRIBUTE_TYPE_INVALID) {
		snprintf(what, sizeof(what), "reading the usage of the new key on token '%s'",
			 ctx->label);
		return tok_fail_ckr(ctx, what, ckr, NULL);
	}
	for (i = 0; i < N; i++)
		val[i] = (CK_ULONG)i < n && a[i].ulValueLen == sizeof(CK_BBOOL) ? v[i] != CK_FALSE
									     : -1;
	if (val[SIGN] != 1)
		bad = SIGN;
	else if (val[SENSITIVE] != 1)
		bad = SENSITIVE;
	else if (val[EXTRACTABLE] != (spec->archivable ? 1 : 0))
		bad = EXTRACTABLE;
	else if (!spec->allow_decrypt && val[DECRYPT] == 1)
		bad = DECRYPT;
	else if (!spec->allow_decrypt && val[UNWRAP] == 1)
		bad = UNWRAP;
	else if (val[DERIVE] == 1)
		bad = DERIVE;
	if (bad < 0)
		return TOK_OK;
	return tok_fail(ctx, TOK_ERR_DEVICE,
			"token '%s' made a private key other than asked: its %s is %s, where "
			"p11enroll needs a key that signs, is sensitive and not extractable "
			"(until archived with archive_key = yes), and decrypts only with "
			"allow_decrypt = yes: %s",
			ctx->label, name[bad],
			val[bad] < 0 ? "missing" : val[bad] ? "TRUE" : "FALSE",
			bad == DECRYPT || bad == UNWRAP
			    ? "set allow_decrypt = yes if the key may decrypt, or use another token"
			    : "use another token or module");
}

/* The public key's usage attributes, left out of a second try. */
static int usage_attr(CK_ATTRIBUTE_TYPE t)
{
	return t == CKA_VERIFY || t == CKA_ENCRYPT || t == CKA_WRAP;
}

/* What a module answers to a template it will not take as it is. */
static int template_refused(CK_RV ckr)
{
	return ckr == CKR_GENERAL_ERROR || ckr == CKR_TEMPLATE_INCONSISTENT ||
	       ckr == CKR_ATTRIBUTE_VALUE_INVALID || ckr == CKR_ATTRIBUTE_TYPE_INVALID;
}

/*
 * C_GenerateKeyPair with the strict templates; when the module refuses
 * them, once more with the public key's CKA_VERIFY, CKA_ENCRYPT and
 * CKA_WRAP left to the module.  tpm2-pkcs11 1.9 needs it: it maps
 * CKA_VERIFY and CKA_DECRYPT to one TPM attribute (and CKA_SIGN and
 * CKA_ENCRYPT to another), so that public VERIFY=TRUE with private
 * DECRYPT=FALSE contradict, and answers CKR_GENERAL_ERROR.  A public key's
 * usage protects nothing; the private key is checked after (check_private).
 * *ret_first: the first try's CKR when a second was made, else CKR_OK.
 */
static CK_RV generate(tok_ctx *ctx, CK_SESSION_HANDLE s, CK_MECHANISM *mech, CK_ATTRIBUTE *pub_t,
		      CK_ULONG npub, CK_ATTRIBUTE *priv_t, CK_ULONG npriv, CK_OBJECT_HANDLE *ret_pub,
		      CK_OBJECT_HANDLE *ret_priv, CK_RV *ret_first)
{
	CK_ATTRIBUTE relaxed[16];
	CK_ULONG i, n = 0;
	CK_RV ckr;

	*ret_first = CKR_OK;
	ckr = ctx->f->C_GenerateKeyPair(s, mech, pub_t, npub, priv_t, npriv, ret_pub, ret_priv);
	if (!template_refused(ckr))
		return ckr;
	*ret_first = ckr;
	for (i = 0; i < npub && n < sizeof(relaxed) / sizeof(relaxed[0]); i++)
		if (!usage_attr(pub_t[i].type))
			relaxed[n++] = pub_t[i];
	return ctx->f->C_GenerateKeyPair(s, mech, relaxed, n, priv_t, npriv, ret_pub, ret_priv);
}

const char *tok_keygen_notice(const tok_ctx *ctx)
{
	return ctx != NULL ? ctx->notice : "";
}

tok_rv tok_keygen(tok_ctx *ctx, const tok_keyspec *spec, const char *label, tok_id *ret_id)
{
	static const CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	const CK_BBOOL *dec;
	CK_MECHANISM mech = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
	CK_ULONG bits;
	unsigned char tmp_id[20];
	CK_ULONG label_len;
	CK_ATTRIBUTE pub_t[10], priv_t[12];
	CK_ULONG npub = 0, npriv = 0;
	CK_OBJECT_HANDLE pub = CK_INVALID_HANDLE, priv = CK_INVALID_HANDLE;
	CK_SESSION_HANDLE s;
	char what[160];
	size_t n;
	tok_rv rv;
	CK_RV ckr, first;

	if (ctx == NULL || spec == NULL || ret_id == NULL)
		return TOK_ERR_CONFIG;
	tok_clear_err(ctx);
	ctx->notice[0] = '\0';
	if ((rv = check_spec(ctx, spec)) != TOK_OK)
		return rv;
	if (!ctx->logged_in)
		return tok_need_login(ctx, "generating a key");
	if ((rv = check_token_can(ctx, spec)) != TOK_OK)
		return rv;
	if (label == NULL)
		label = "";
	label_len = (CK_ULONG)strlen(label);
	if (RAND_bytes(tmp_id, sizeof(tmp_id)) != 1)
		return tok_fail(ctx, TOK_ERR_DEVICE,
				"generating a key on token '%s' failed: OpenSSL has no random "
				"numbers: check the system's entropy source",
				ctx->label);
	dec = spec->allow_decrypt ? &yes : &no;

#define ADD(t, n, type, ptr, len)                                                                  \
	(t)[(n)++] = (CK_ATTRIBUTE){(type), (void *)(ptr), (CK_ULONG)(len)}
	ADD(pub_t, npub, CKA_TOKEN, &yes, sizeof(yes));
	ADD(pub_t, npub, CKA_PRIVATE, &no, sizeof(no));
	ADD(pub_t, npub, CKA_VERIFY, &yes, sizeof(yes));
	ADD(pub_t, npub, CKA_ENCRYPT, dec, sizeof(*dec));
	ADD(pub_t, npub, CKA_WRAP, dec, sizeof(*dec));
	ADD(pub_t, npub, CKA_ID, tmp_id, sizeof(tmp_id));
	ADD(pub_t, npub, CKA_LABEL, label, label_len);

	ADD(priv_t, npriv, CKA_TOKEN, &yes, sizeof(yes));
	ADD(priv_t, npriv, CKA_PRIVATE, &yes, sizeof(yes));
	ADD(priv_t, npriv, CKA_SENSITIVE, &yes, sizeof(yes));
	/* An archivable key stays sensitive: it leaves the token only wrapped,
	 * once (tok_wrap_private), and is then made non-extractable. */
	ADD(priv_t, npriv, CKA_EXTRACTABLE, spec->archivable ? &yes : &no, sizeof(no));
	ADD(priv_t, npriv, CKA_SIGN, &yes, sizeof(yes));
	ADD(priv_t, npriv, CKA_DECRYPT, dec, sizeof(*dec));
	ADD(priv_t, npriv, CKA_UNWRAP, dec, sizeof(*dec));
	ADD(priv_t, npriv, CKA_ID, tmp_id, sizeof(tmp_id));
	ADD(priv_t, npriv, CKA_LABEL, label, label_len);

	if (spec->alg == TOK_KEY_EC) {
		if (spec->bits == 256)
			ADD(pub_t, npub, CKA_EC_PARAMS, oid_p256, sizeof(oid_p256));
		else
			ADD(pub_t, npub, CKA_EC_PARAMS, oid_p384, sizeof(oid_p384));
		/* SoftHSM's default would allow ECDH with the key. */
		ADD(priv_t, npriv, CKA_DERIVE, &no, sizeof(no));
	} else {
		mech.mechanism = CKM_RSA_PKCS_KEY_PAIR_GEN;
		bits = (CK_ULONG)spec->bits;
		ADD(pub_t, npub, CKA_MODULUS_BITS, &bits, sizeof(bits));
		ADD(pub_t, npub, CKA_PUBLIC_EXPONENT, f4, sizeof(f4));
	}
#undef ADD

	if ((rv = tok_session_open(ctx, 1, &s)) != TOK_OK)
		return rv;
	ckr = generate(ctx, s, &mech, pub_t, npub, priv_t, npriv, &pub, &priv, &first);
	snprintf(what, sizeof(what), "C_GenerateKeyPair (%s %d) on token '%s'",
		 spec->alg == TOK_KEY_EC ? "EC" : "RSA", spec->bits, ctx->label);
	if (ckr != CKR_OK) {
		tok_session_close(ctx, s);
		if (first == CKR_OK)
			return tok_fail_ckr(ctx, what, ckr, NULL);
		n = strlen(what);
		snprintf(what + n, sizeof(what) - n, " (%s, then without the public key's usage)",
			 tok_ckr_name(first));
		return tok_fail_ckr(ctx, what, ckr, NULL);
	}
	if (first != CKR_OK)
		snprintf(ctx->notice, sizeof(ctx->notice),
			 "token '%s' refused the key template (%s): generated the key pair "
			 "with the public key's CKA_VERIFY, CKA_ENCRYPT and CKA_WRAP left to the "
			 "module; the private key is checked",
			 ctx->label, tok_ckr_name(first));
	rv = check_private(ctx, s, priv, spec);
	if (rv == TOK_OK)
		rv = finish_pair(ctx, s, pub, priv, ret_id);
	if (rv != TOK_OK)
		destroy_pair(ctx, s, pub, priv, label);
	tok_session_close(ctx, s);
	return rv;
}
