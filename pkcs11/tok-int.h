/*
 * tok layer internals: the context and the helpers the tok_*.c files share.
 * Not for use outside pkcs11/.
 */
#ifndef P11ENROLL_TOK_INT_H
#define P11ENROLL_TOK_INT_H

#include <stdarg.h>
#include <stddef.h>

#include <libp11.h>
#include <p11-kit/pkcs11.h>
#include <p11-kit/uri.h>

#include "pkcs11/tok.h"

#define TOK_CACERTS_KNOWN 16

struct tok_ctx {
	PKCS11_CTX *p11;    /* libp11: loads the module, owns C_Finalize */
	PKCS11_SLOT *slots; /* libp11's slot list; slot points into it */
	unsigned int nslots;
	PKCS11_SLOT *slot;   /* the selected token's slot */
	void *dl;	     /* our reference to the module libp11 loaded */
	int loaded;	     /* PKCS11_CTX_load succeeded: unload finalizes */
	CK_FUNCTION_LIST *f; /* raw function list of that same instance */
	CK_SLOT_ID slot_id;
	/*
	 * Held open from tok_open to tok_free: the login state of a token
	 * ends with the application's last session, and libp11 may close its
	 * pooled ones.
	 */
	CK_SESSION_HANDLE anchor;
	int have_anchor;
	int logged_in;
	int pin_rejected; /* C_Login refused the PIN: never try again */
	tok_lockout lockout; /* why the last tok_login found the PIN locked */
	int anchor_rw;	  /* the anchor is a R/W session (read-only tokens: not) */
	struct tok_signer *signers; /* keys handed out that sign through anchor */
	/* Which CKM_SHA*_RSA_PKCS the token lists (tok_sign.c), once asked. */
	int rsa_mechs_known;
	unsigned int rsa_mechs;
	/* The pair tok_keygen made last: the calls that use it next (its
	 * private key, the certificate check) need no search, which costs in
	 * proportion to the token.  Forgotten when it is destroyed. */
	struct {
		tok_id id;
		CK_OBJECT_HANDLE priv, pub;
		CK_OBJECT_HANDLE cert; /* its certificate, once tok_cert_store made it */
		EVP_PKEY *pkey;	       /* its public key */
	} made;
	/* SHA-256 of the CA certificates this context stored or found on the
	 * token: a batch stores the same chain for every row, one search. */
	unsigned char cacerts[TOK_CACERTS_KNOWN][32];
	size_t ncacerts;
	char label[33];	  /* for messages */
	char serial[17];  /* as tok_info has it, read when the token was opened */
	tok_info opened;  /* all of it, flags as they were then */
	int serial_seen;  /* tok_serial_unique(): 0 not asked yet, 1 unique, 2 not */
	/* select_token: the slot listing failed every try (tok_open then
	 * initializes the module again, once: reinit) */
	int listing_failed, reinit;
	char errmsg[768];
	char notice[256]; /* tok_keygen_notice */
};

/* Sets the error text ("what failed: why: what to do") and returns rv. */
tok_rv tok_fail(tok_ctx *ctx, tok_rv rv, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * The same for a failed PKCS#11 call: "<what> failed: CKR_X: <todo>"; the
 * result follows the CKR (removal → TOK_ERR_ABSENT, etc.).  todo NULL
 * picks a default advice for the code.
 */
tok_rv tok_fail_ckr(tok_ctx *ctx, const char *what, CK_RV ckr, const char *todo);

/* The tok_rv that a CKR maps to. */
tok_rv tok_rv_from_ckr(CK_RV ckr);

/* Clears the error text at the start of a public call. */
void tok_clear_err(tok_ctx *ctx);

/* Copies a blank-padded PKCS#11 string into a NUL-terminated one. */
void tok_copy_padded(char *dst, size_t dstsize, const unsigned char *src, size_t srclen);
/* p11_kit_uri_match_token_info() on ti with NUL padding taken as blanks:
 * tpm2-pkcs11 copies the TPM's vendor string into the model with its NULs
 * ("SW   TPM" and eight NULs on swtpm), so that p11-kit, which compares the
 * blank-padded field, never matched a model= of it, nor the token pinned
 * by its identity (tok_uri_pin_identity). */
int tok_match_token_info(P11KitUri *uri, const CK_TOKEN_INFO *ti);

/* tok_get_info's copy of what C_GetTokenInfo returned (fuzz-tokstr). */
void tok_info_from_ck(const CK_TOKEN_INFO *ti, tok_info *ret_info);

/* A copy of a URI fit for messages: pin-value redacted.  OPENSSL_free it. */
char *tok_redact_uri(const char *uri);

/* Parses uri into puri; on failure ctx's message names what (e.g. "token
 * URI"), the URI (redacted), why, and example, an RFC 7512 URI to write
 * instead.  TOK_OK or TOK_ERR_CONFIG. */
tok_rv tok_uri_parse(tok_ctx *ctx, const char *uri, P11KitUri *puri, const char *what,
		     const char *example);

/* "'label' (serial S, model M)", preceded by ", " when comma. */
void tok_describe_token(const CK_TOKEN_INFO *ti, char *buf, size_t size, int comma);

/*
 * The module's slot IDs (token_present: only those with a token) into
 * *ret_ids (OPENSSL_free it), *ret_n of them; none: NULL and 0.  Asks
 * again when a slot appeared between the count and the list
 * (CKR_BUFFER_TOO_SMALL); more than 4096 slots is taken as an answer gone
 * wrong (CKR_GENERAL_ERROR).
 */
CK_RV tok_slot_ids(CK_FUNCTION_LIST *f, CK_BBOOL token_present, CK_SLOT_ID **ret_ids,
		   CK_ULONG *ret_n);

/*
 * The file of the one module in p11-kit's configuration whose token uri
 * selects (OPENSSL_free it); TOK_ERR_ABSENT / TOK_ERR_AMBIGUOUS otherwise.
 */
/* Whether p11-kit's proxy would show this module (its enable-in /
 * disable-in options). */
int tok_p11kit_in_proxy(CK_FUNCTION_LIST *mod);
tok_rv tok_probe_p11kit(tok_ctx *ctx, P11KitUri *uri, const char *uri_text, char **ret_path);

/* Opens / closes a raw session of our own (never one of libp11's pool). */
tok_rv tok_session_open(tok_ctx *ctx, int rw, CK_SESSION_HANDLE *ret_s);
void tok_session_close(tok_ctx *ctx, CK_SESSION_HANDLE s);

/*
 * A new anchor session in place of the old one, which is closed: after a
 * C_Sign that failed, a module may still hold the operation active (the
 * standard says it ends; not every module, or a wrapper, agrees), and
 * every later call on the session would answer CKR_OPERATION_ACTIVE.
 * When no new session opens, the old one stays.
 */
void tok_anchor_renew(tok_ctx *ctx);

/*
 * Finds up to max objects matching tmpl; *ret_n is the number found (can
 * be less than there are when max is reached).
 */
tok_rv tok_find(tok_ctx *ctx, CK_SESSION_HANDLE s, CK_ATTRIBUTE *tmpl, CK_ULONG ntmpl,
		CK_OBJECT_HANDLE *ret_h, CK_ULONG max, CK_ULONG *ret_n);

/*
 * Finds every object matching tmpl into a malloc'd array (*ret_h, free
 * with OPENSSL_free; NULL when none).
 */
tok_rv tok_find_all(tok_ctx *ctx, CK_SESSION_HANDLE s, CK_ATTRIBUTE *tmpl, CK_ULONG ntmpl,
		    CK_OBJECT_HANDLE **ret_h, CK_ULONG *ret_n);

/*
 * The private keys, public keys and (with_certs) certificates with CKA_ID
 * id, in that order, into a malloc'd array as tok_find_all (one search).
 * ret_npriv (may be NULL): how many of them, at the start, are private
 * keys.
 */
tok_rv tok_find_by_id(tok_ctx *ctx, CK_SESSION_HANDLE s, const tok_id *id, int with_certs,
		      CK_OBJECT_HANDLE **ret_h, CK_ULONG *ret_n, CK_ULONG *ret_npriv);

/*
 * Reads one variable-length attribute into a malloc'd buffer (free with
 * OPENSSL_free).  Returns the raw CKR; *ret_v NULL and *ret_len 0 for an
 * empty value.
 */
CK_RV tok_attr_get(tok_ctx *ctx, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type,
		   unsigned char **ret_v, CK_ULONG *ret_len);

/*
 * Several attributes of one object, read together: one C_GetAttributeValue
 * when each value fits a first guess of its size (the usual case), else
 * up to two more for the rest.  Each a[i].type is set by the caller; on
 * CKR_OK a[i].v holds the value (OPENSSL_malloc'd, a NUL after it) and
 * a[i].len its length, or a[i].v is NULL and a[i].len is
 * CK_UNAVAILABLE_INFORMATION when the object has no such attribute, it is
 * sensitive, or longer than TOK_ATTR_VALUE_MAX.  Another CKR: nothing
 * allocated.  Free with tok_attrs_free.
 */
#define TOK_ATTRS_MAX 16
#define TOK_ATTR_VALUE_MAX (1UL << 20)
typedef struct {
	CK_ATTRIBUTE_TYPE type;
	unsigned char *v;
	CK_ULONG len;
} tok_attr_val;
CK_RV tok_attrs_read(tok_ctx *ctx, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, tok_attr_val *a,
		     size_t n);
void tok_attrs_free(tok_attr_val *a, size_t n);
/* A CK_ULONG / CK_BBOOL value read by tok_attrs_read: 0 with *ret_v, or -1. */
int tok_attr_val_ulong(const tok_attr_val *a, CK_ULONG *ret_v);
/* 1, 0, or -1 when absent. */
int tok_attr_val_bool(const tok_attr_val *a);

/* Reads a CK_BBOOL attribute: 1, 0, or -1 when absent or unreadable. */
int tok_attr_bool(tok_ctx *ctx, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type);

/* Reads a CK_ULONG attribute; returns 0 on success. */
int tok_attr_ulong(tok_ctx *ctx, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type,
		   CK_ULONG *ret_v);

/*
 * The public key of a key object (public or private, whichever carries
 * CKA_MODULUS / CKA_EC_POINT) as an EVP_PKEY holding only the public part.
 */
tok_rv tok_pubkey_from_object(tok_ctx *ctx, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
			      EVP_PKEY **ret_pkey);

/*
 * The public key of the key pair with CKA_ID id: from its public key
 * object, else from its private key object.  TOK_ERR_NOT_FOUND when
 * neither exists.  ret_priv (may be NULL): the private key object, or
 * CK_INVALID_HANDLE when there is none.
 */
tok_rv tok_pubkey_by_id(tok_ctx *ctx, CK_SESSION_HANDLE s, const tok_id *id, EVP_PKEY **ret_pkey,
			CK_OBJECT_HANDLE *ret_priv);

/* Field size in bits of the named curve in DER CKA_EC_PARAMS; 0 unknown. */
int tok_ec_params_bits(const unsigned char *params, size_t plen);

/* 1 when a and b hold the same public key. */
int tok_pubkey_equal(EVP_PKEY *a, EVP_PKEY *b);

/* SHA-1 of the subjectPublicKey BIT STRING contents (RFC 5280 4.2.1.2 (1)). */
int tok_key_identifier(EVP_PKEY *pkey, tok_id *ret_id);

/* Lower-case hex of an id for messages, into buf (truncated with "..." if long). */
const char *tok_id_hex(const tok_id *id, char *buf, size_t bufsize);

/*
 * The private key object h as an EVP_PKEY that signs with C_Sign on the
 * context's session and carries pub's public key (EC or RSA).  After
 * tok_free the key refuses to sign; it never touches the freed context.
 */
tok_rv tok_signer_wrap(tok_ctx *ctx, CK_OBJECT_HANDLE h, EVP_PKEY *pub, EVP_PKEY **ret_pkey);
void tok_signers_detach(tok_ctx *ctx);

/* 1 when id is the pair ctx->made remembers. */
int tok_made_is(const tok_ctx *ctx, const tok_id *id);
/* Forgets ctx->made (all of it when id is NULL, else if it is that pair). */
void tok_made_forget(tok_ctx *ctx, const tok_id *id);

/* The login a key operation needs: TOK_ERR_NOT_LOGGED_IN with a message. */
tok_rv tok_need_login(tok_ctx *ctx, const char *what);

/*
 * The module file for a watcher or tok_init_token: module (a path or a
 * p11-kit module name), else the URI's module-path / module-name;
 * TOK_ERR_CONFIG when there is none (these load one module of their own,
 * never p11-kit's search for a token, which an uninitialized or absent
 * token cannot match).  OPENSSL_free *ret_path.
 */
tok_rv tok_module_file(tok_ctx *ctx, const char *module, P11KitUri *uri, char **ret_path);

/* A module loaded by this layer itself, not by libp11 (tok_raw.c). */
typedef struct {
	void *dl;
	CK_FUNCTION_LIST *f;
	int initialized; /* our C_Initialize succeeded: ours to finalize */
	char *path;
} tok_raw;

/* dlopen + C_GetFunctionList; errors into ctx.  Not initialized yet. */
tok_rv tok_raw_load(tok_ctx *ctx, const char *path, tok_raw *r);
/* C_Initialize (OS locking); CKR_CRYPTOKI_ALREADY_INITIALIZED means some
 * other user in the process holds the module: refused with a message. */
tok_rv tok_raw_init(tok_ctx *ctx, tok_raw *r);
/* C_Finalize when ours to call. */
void tok_raw_fini(tok_raw *r);
/* Whether a raw user (a watcher not suspended, tok_init_token) holds the
 * module with this dlopen handle initialized. */
int tok_raw_holds(void *dl);
/* Finalizes if needed and dlcloses; r is zeroed.  NULL-safe fields. */
void tok_raw_unload(tok_raw *r);

/* One slot with a token, as C_GetTokenInfo answered. */
typedef struct {
	CK_SLOT_ID slot;
	CK_RV rv; /* of C_GetTokenInfo: ti is valid only when CKR_OK */
	CK_TOKEN_INFO ti;
} tok_raw_token;

/* C_GetSlotList(CK_TRUE) and C_GetTokenInfo of each: *ret_t (OPENSSL_free)
 * and *ret_n; a failed C_GetSlotList is returned, a failed C_GetTokenInfo
 * is kept in that entry's rv. */
CK_RV tok_raw_tokens(CK_FUNCTION_LIST *f, tok_raw_token **ret_t, size_t *ret_n);

/* Whether slot s's token ti matches uri (token, slot-id and, when uri names
 * them, slot attributes: one C_GetSlotInfo). */
int tok_raw_match(CK_FUNCTION_LIST *f, P11KitUri *uri, CK_SLOT_ID s, const CK_TOKEN_INFO *ti);

#endif
