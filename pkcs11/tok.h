/*
 * tok: the token layer.  Loads a PKCS#11 module, selects one token by an
 * RFC 7512 URI, logs in, generates key pairs on the token and stores
 * certificates next to them.  Meets the protocol layer only through
 * OpenSSL's EVP_PKEY and X509.
 *
 * Conventions: functions return a tok_rv; output parameters are ret_* and
 * untouched on failure; the detail of the last failure (what failed, the
 * CKR_* name, what to do) is kept in the context for tok_errmsg().  This
 * layer prints nothing.
 */
#ifndef P11ENROLL_TOK_H
#define P11ENROLL_TOK_H

#include <stddef.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

typedef enum {
	TOK_OK = 0,
	TOK_ERR_CONFIG,        /* malformed URI, unknown module name, bad key spec */
	TOK_ERR_MODULE,        /* the module could not be loaded or initialized */
	TOK_ERR_ABSENT,        /* no token matches the URI, or it was removed */
	TOK_ERR_AMBIGUOUS,     /* more than one token matches the URI */
	TOK_ERR_PIN_INCORRECT, /* the token rejected the PIN (tried once only) */
	TOK_ERR_PIN_LOCKED,    /* PIN locked, on its final try, or must be changed: not tried */
	TOK_ERR_NOT_LOGGED_IN, /* an operation needs a login first */
	TOK_ERR_NOT_FOUND,     /* no such object on the token */
	TOK_ERR_MISMATCH,      /* a certificate does not carry the key's public key */
	TOK_ERR_DEVICE,        /* any other failure reported by the module (CKR_*) */
	TOK_ERR_NOMEM,
} tok_rv;

const char *tok_strerror(tok_rv rv);

/* "CKR_PIN_INCORRECT" for 0xa0; never NULL ("CKR_VENDOR_DEFINED+0x..." or
 * "unknown CKR 0x..." in a static buffer for codes without a name). */
const char *tok_ckr_name(unsigned long ckr);

typedef struct tok_ctx tok_ctx;

/*
 * module: path of a PKCS#11 module, or the name of a module in p11-kit's
 * configuration (e.g. "softhsm2"), or NULL: module-path / module-name from
 * the URI, else p11-kit's proxy module.
 * uri: "pkcs11:" URI whose token attributes (token, serial, manufacturer,
 * model, slot-id) must select exactly one token; "pkcs11:" alone selects
 * the only token present.
 * On failure *ret_ctx is a context that holds only the error text, for
 * tok_errmsg(); free it with tok_free() (NULL only when out of memory).
 */
tok_rv tok_open(const char *module, const char *uri, tok_ctx **ret_ctx);

/*
 * Whether uri parses as tok_open() will parse it (RFC 7512, no unknown
 * attribute): TOK_OK, or TOK_ERR_CONFIG with p11-kit's reason in why.
 * Nothing is loaded; a configuration check calls it.
 */
tok_rv tok_uri_check(const char *uri, char *why, size_t whylen);


/* Logs out, releases every object; C_Finalize happens exactly once, last.
 * tok_free(NULL) is a no-op. */
void tok_free(tok_ctx *ctx);

/* What the last failing call on ctx found: what failed, why (CKR_* name),
 * what to do.  Never contains a PIN.  "" when nothing failed. */
const char *tok_errmsg(const tok_ctx *ctx);

typedef struct {
	char label[33];         /* blank-padding removed, NUL-terminated */
	char manufacturer[33];
	char model[17];
	/* The token's identity: pinned into its URI, kept in the pending
	 * file, compared on resume.  PKCS#11 makes it CK_CHAR, printable
	 * ASCII; any other byte leaves it "" (as a token without a serial)
	 * rather than a name that would not match the token again. */
	char serial[17];
	unsigned long flags;    /* CK_TOKEN_INFO.flags */
} tok_info;

tok_rv tok_get_info(tok_ctx *ctx, tok_info *ret_info);
/* The token's serial (as tok_info has it) read when it was opened: it names
 * the token for good, and a row of a batch needs no C_GetTokenInfo for it. */
const char *tok_serial(const tok_ctx *ctx);
/* All of the token information read when it was opened (its flags may be
 * out of date): the identity a pending transaction is kept under. */
const tok_info *tok_opened_info(const tok_ctx *ctx);

/*
 * uri with the token's identity added to its path (before any query):
 * ";token=LABEL;manufacturer=M;model=M;serial=S" for each of id's fields
 * that is not empty and that uri does not name already, percent-encoded by
 * p11-kit (RFC 7512), so that the URI selects only that token, also where
 * serials repeat (every tpm2-pkcs11 token on one TPM has the serial
 * 0000000000000000): a new string in *ret_uri (OPENSSL_free).  *ret_uri is
 * NULL when there is nothing to add.  TOK_ERR_CONFIG when uri does not
 * parse, a field is longer than its CK_TOKEN_INFO field, or the result
 * would not select these values (an empty attribute, ";;", inside uri's
 * path: p11-kit then reads the rest as query attributes).
 */
tok_rv tok_uri_pin_identity(const char *uri, const tok_info *id, char **ret_uri);

/* Whether the opened token's serial names it alone: 0 when it is empty or
 * all zeros, or another token of the module has the same one (its label,
 * model and manufacturer then tell it apart); 1 otherwise.  Asks every
 * other slot's token (C_GetTokenInfo); one that does not answer counts as
 * not repeating it. */
int tok_serial_unique(tok_ctx *ctx);

/*
 * Logs in as the user.  pin is NUL-terminated; NULL means the token's
 * protected authentication path (PIN pad).  Refuses without calling
 * C_Login when the flags say the PIN is locked, on its final try or must be
 * changed.  A rejected PIN is never tried again.
 */
tok_rv tok_login(tok_ctx *ctx, const char *pin);
/* 1 when a tok_login on ctx succeeded. */
int tok_logged_in(const tok_ctx *ctx);

/*
 * Whose lockout ended the last tok_login (TOK_ERR_PIN_LOCKED): the module
 * answered CKR_PIN_LOCKED, or the token's flags say CKF_USER_PIN_LOCKED.
 * TOK_LOCK_TPM when the module is tpm2-pkcs11 (its C_GetInfo says so): the
 * TPM's dictionary-attack lockout, which covers every token and key on the
 * TPM and never shows in the token flags.  TOK_LOCK_NONE for any other
 * outcome (a PIN on its final try or to be changed is no lockout).
 */
typedef enum { TOK_LOCK_NONE, TOK_LOCK_TOKEN, TOK_LOCK_TPM } tok_lockout;
tok_lockout tok_login_lockout(const tok_ctx *ctx);
/* 1 when the module is tpm2-pkcs11: its C_GetInfo manufacturerID is
 * "tpm2-software.github.io" (tpm2-pkcs11 1.x, src/lib/general.c).  The
 * token information names the TPM's vendor and its vendor string instead,
 * which tell no TPM from other hardware. */
int tok_module_is_tpm(const tok_ctx *ctx);

typedef enum { TOK_KEY_EC = 1, TOK_KEY_RSA = 2 } tok_keyalg;

typedef struct {
	tok_keyalg alg;
	int bits;            /* EC: 256 (P-256) or 384 (P-384); RSA: 2048, 3072, 4096 */
	int allow_decrypt;   /* set CKA_DECRYPT and CKA_UNWRAP (else FALSE) */
	int archivable;      /* CKA_EXTRACTABLE TRUE until tok_wrap_private (key archive) */
} tok_keyspec;

#define TOK_ID_MAX 64
typedef struct {
	unsigned char id[TOK_ID_MAX];
	size_t len;
} tok_id;

/*
 * Generates a key pair on the token: CKA_TOKEN, CKA_PRIVATE,
 * CKA_SENSITIVE, CKA_EXTRACTABLE=FALSE, CKA_SIGN; CKA_ID is the SHA-1 of
 * the subjectPublicKey bits (the RFC 5280 key identifier), CKA_LABEL is
 * label.  Needs a login.  A key the token says it cannot generate
 * (C_GetMechanismInfo) is TOK_ERR_CONFIG, the message naming what it can;
 * a private key that is not as asked is destroyed (TOK_ERR_DEVICE).
 */
tok_rv tok_keygen(tok_ctx *ctx, const tok_keyspec *spec, const char *label,
		  tok_id *ret_id);

/*
 * What the last tok_keygen did otherwise than its strict template says,
 * for a notice ("" when nothing): the module refused the template and the
 * public key's usage was left to it.  The private key was checked all the
 * same: sign only (decrypt only with allow_decrypt), sensitive, never
 * extractable.
 */
const char *tok_keygen_notice(const tok_ctx *ctx);

/* The private key with CKA_ID id as an EVP_PKEY whose signatures the
 * token computes; the EVP_PKEY also carries the public key. */
tok_rv tok_key_get1_private(tok_ctx *ctx, const tok_id *id, EVP_PKEY **ret_pkey);

/* The CKA_ID of the key pair whose private key object has the public key
 * pub (read from its public key object, else from the private key's own
 * attributes).  TOK_ERR_NOT_FOUND when none, TOK_ERR_AMBIGUOUS when pairs
 * under several ids carry it. */
tok_rv tok_key_find(tok_ctx *ctx, EVP_PKEY *pub, tok_id *ret_id);

/* Destroys the private and public key objects with CKA_ID id, and, when
 * with_certs, the certificates with that CKA_ID. TOK_ERR_NOT_FOUND when
 * there was nothing to destroy. */
tok_rv tok_key_destroy(tok_ctx *ctx, const tok_id *id, int with_certs);

/*
 * Stores an end-entity certificate with CKA_ID id and CKA_LABEL label
 * (plus CKA_SUBJECT, CKA_ISSUER, CKA_SERIAL_NUMBER).  First checks that
 * the certificate's public key is the key pair's (TOK_ERR_MISMATCH), then
 * reads the stored object back and checks it again.
 */
tok_rv tok_cert_store(tok_ctx *ctx, X509 *cert, const tok_id *id, const char *label);

/* Stores a CA certificate as its own object (CKA_CERTIFICATE_CATEGORY
 * authority, CKA_ID its subject key identifier); does nothing when the
 * same certificate is already on the token.  *ret_created (if not NULL)
 * says whether an object was made. */
tok_rv tok_cacert_store(tok_ctx *ctx, X509 *cert, const char *label, int *ret_created);
/* The same with CKA_ID key_id (the CA key pair it certifies: a
 * cross-certificate) instead of the subject key identifier. */
tok_rv tok_cacert_store_id(tok_ctx *ctx, X509 *cert, const tok_id *key_id, const char *label,
			   int *ret_created);

/* Destroys the certificate objects holding exactly this certificate (to
 * undo tok_cacert_store). */
tok_rv tok_cacert_destroy(tok_ctx *ctx, X509 *cert);

/* Object classes (the PKCS#11 CKO_* values), for callers without pkcs11.h. */
#define TOK_CKO_CERTIFICATE 1UL
#define TOK_CKO_PUBLIC_KEY 2UL
#define TOK_CKO_PRIVATE_KEY 3UL

typedef struct {
	unsigned long cls;       /* TOK_CKO_PRIVATE_KEY, _PUBLIC_KEY, _CERTIFICATE */
	tok_id id;
	char *label;             /* never NULL */
	unsigned long key_type;  /* CKK_* for keys, else ~0UL */
	int key_bits;            /* RSA modulus bits or EC field bits; 0 unknown */
	/* key attributes: 1 true, 0 false, -1 absent or unreadable */
	int sensitive, always_sensitive, extractable, never_extractable, local;
	int cert_category;       /* CKA_CERTIFICATE_CATEGORY, -1 absent */
	X509 *cert;              /* certificates only, else NULL */
} tok_object;

/* ---- what renewal and revocation need ---------------------------------- */

/*
 * The end-entity certificate (not CKA_CERTIFICATE_CATEGORY authority)
 * selected by label and/or id (either may be NULL, not both), with its
 * CKA_ID.  TOK_ERR_NOT_FOUND when none, TOK_ERR_AMBIGUOUS when several
 * match (the message lists their ids).
 */
tok_rv tok_find_cert(tok_ctx *ctx, const char *label, const tok_id *id, tok_id *ret_id,
		     X509 **ret_cert);

/* Sets CKA_LABEL on every key and certificate object with CKA_ID id. */
tok_rv tok_relabel(tok_ctx *ctx, const tok_id *id, const char *label);

/* Every key and certificate object visible in the session (list). */
tok_rv tok_objects(tok_ctx *ctx, tok_object **ret_objs, size_t *ret_n);

/*
 * The key and certificate objects carrying one of labels, found by
 * templates so that the work does not grow with the rest of the token
 * (one search per label, per id, and for the CA certificates): what one
 * enrollment's recovery and `list NAME` look at.  flags:
 *   TOK_FOR_IDS       also the objects that share a CKA_ID with one of
 *                     them, under any label;
 *   TOK_FOR_CA_CERTS  also every CA certificate (category authority);
 *   TOK_FOR_DETAILS   everything tok_objects fills in; without it only
 *                     cls, id, label and cert_category (cert NULL).
 */
#define TOK_FOR_IDS 1U
#define TOK_FOR_DETAILS 2U
#define TOK_FOR_CA_CERTS 4U
tok_rv tok_objects_for(tok_ctx *ctx, const char *const *labels, size_t nlabels, unsigned flags,
		       tok_object **ret_objs, size_t *ret_n);
void tok_objects_free(tok_object *objs, size_t n);

/* CK_TOKEN_INFO.flags bits that tok_info.flags carries (the PKCS#11 CKF_*
 * values), for callers without pkcs11.h: what a station checks before it
 * logs in to or initializes a token. */
#define TOK_F_LOGIN_REQUIRED 0x4UL
#define TOK_F_USER_PIN_INITIALIZED 0x8UL
#define TOK_F_PROTECTED_AUTHENTICATION_PATH 0x100UL
#define TOK_F_TOKEN_INITIALIZED 0x400UL
#define TOK_F_USER_PIN_COUNT_LOW 0x10000UL
#define TOK_F_USER_PIN_FINAL_TRY 0x20000UL
#define TOK_F_USER_PIN_LOCKED 0x40000UL
#define TOK_F_USER_PIN_TO_BE_CHANGED 0x80000UL
#define TOK_F_SO_PIN_LOCKED 0x400000UL

/* ---- every token (tok_tokens.c) ----------------------------------------- */
typedef struct {
	tok_info info;
	/* "pkcs11:model=M;manufacturer=M;serial=S;token=L" as p11-kit
	 * formats it (RFC 7512, percent-encoded), as p11tool
	 * --list-token-urls prints it */
	char *uri;
	char *module;          /* the module's file ("" when p11-kit does not tell) */
	unsigned long slot_id; /* as the module numbered it this time */
} tok_token;
/*
 * The initialized tokens of module (a path or a p11-kit module name), or,
 * with module NULL, of every module p11-kit's proxy would show.  Nothing
 * is logged in to and no session opened.  *ret_t (tok_tokens_free) and
 * *ret_n (0 and NULL when there are none); *ret_silent: the tokens left
 * out because C_GetTokenInfo failed on them.  On failure why in err.
 */
tok_rv tok_tokens(const char *module, tok_token **ret_t, size_t *ret_n, size_t *ret_silent,
		  char *err, size_t errlen);
void tok_tokens_free(tok_token *t, size_t n);

/* ---- watching a module for tokens (tok_watch.c) ------------------------ */

/*
 * A watcher loads the module itself (dlopen, its own function list, no
 * libp11) and initializes it.  Rule: in one process, a watcher and a
 * tok_open() context (or tok_init_token) on the same module never hold the
 * module at the same time: a dlopen of the same file gives the same module
 * instance, and each poll's C_Finalize would end the other's sessions and
 * login.  Suspend the watcher (tok_watch_suspend) before tok_open and resume
 * it after tok_free.  tok_watch_new and tok_watch_resume refuse
 * (TOK_ERR_MODULE, CKR_CRYPTOKI_ALREADY_INITIALIZED named) when someone else
 * in the process holds the module initialized.
 *
 * Polling touches no token: per poll C_Finalize + C_Initialize (the only
 * way SoftHSM2, p11-kit and tpm2-pkcs11 show tokens made or removed by
 * another process), C_GetSlotList and C_GetTokenInfo of each slot with a
 * token; C_GetSlotInfo only when the pattern names slot attributes.  No
 * session, no login.  A module whose C_WaitForSlotEvent(CKF_DONT_BLOCK)
 * works is asked that instead and is re-read (without re-initializing) on
 * an event; TOK_WATCH_POLL forces polling.
 *
 * A token's identity across polls is its serial, label, model and
 * manufacturer; tokens alike in all four are told apart by slot ID (which
 * p11-kit renumbers on each initialization: such twins may be reported as
 * removed and appeared again).  Blank tokens without serial or label all
 * look alike: one replaced by another between two polls is not reported
 * (SoftHSM2's ever-present free slot is one token, whichever slot it
 * moves to after a C_InitToken).  A polled module is re-initialized and
 * read twice more, 20 ms apart, before a token missing from its slot list
 * counts as removed (SoftHSM2 leaves out a token that another process
 * writes).
 */
#define TOK_WATCH_BLANK 1U      /* also report uninitialized tokens (for tok_init_token) */
#define TOK_WATCH_NO_PRESENT 2U /* do not report the tokens present at the start */
#define TOK_WATCH_POLL 4U       /* poll even when the module offers slot events */

typedef enum { TOK_WATCH_NONE = 0, TOK_WATCH_APPEARED, TOK_WATCH_REMOVED } tok_watch_kind;

#define TOK_URI_MAX 512
typedef struct {
	tok_watch_kind kind;
	tok_info info;          /* as C_GetTokenInfo told it (for REMOVED: when last seen) */
	unsigned long slot_id;  /* of the poll that saw it: not stable across polls */
	int initialized;        /* CKF_TOKEN_INITIALIZED */
	/* pkcs11: URI selecting exactly this token among those present: model,
	 * manufacturer, serial and token label, plus slot-id only when another
	 * token present has the same four (or for a blank token without
	 * serial).  For tok_open / tok_init_token with the same module. */
	char uri[TOK_URI_MAX];
} tok_watch_event;

typedef struct tok_watch tok_watch;

/*
 * module: a module path or a p11-kit module name (as tok_open; NULL: the
 * pattern's module-path / module-name, which it then must have).
 * pattern: RFC 7512 URI of token (and module, slot) attributes the tokens
 * must match; NULL, "" or "pkcs11:" match any.  interval_ms <= 0: 500.
 * Makes the first poll: the tokens present (unless TOK_WATCH_NO_PRESENT)
 * are the first events.  On failure *ret_w holds only the error text for
 * tok_watch_errmsg (NULL when out of memory); free it with tok_watch_free.
 */
tok_rv tok_watch_new(const char *module, const char *pattern, int interval_ms, unsigned flags,
		     tok_watch **ret_w);

/*
 * The next event, waiting at most timeout_ms (< 0: no limit; 0: only what
 * is queued or a poll that is due).  ret_event->kind TOK_WATCH_NONE on
 * timeout, and when a signal interrupts the wait (a station's Ctrl-C
 * handler then gets control back).  A failed poll (the module did not
 * initialize again, a slot list failed) returns the error; the next call
 * tries again.
 */
tok_rv tok_watch_next(tok_watch *w, int timeout_ms, tok_watch_event *ret_event);

/* One poll now, whatever the interval (events are queued for
 * tok_watch_next): after a resume, and for measuring a poll's cost. */
tok_rv tok_watch_poll(tok_watch *w);

/* Finalizes the module (the watcher keeps what it knows) so that tok_open
 * or tok_init_token may use it; tok_watch_resume initializes it again and
 * polls: what changed meanwhile becomes events. */
tok_rv tok_watch_suspend(tok_watch *w);
tok_rv tok_watch_resume(tok_watch *w);

/* 1 when the watcher is waiting on the module's slot events, 0 polling. */
int tok_watch_uses_events(const tok_watch *w);

const char *tok_watch_errmsg(const tok_watch *w);

/* Finalizes the module (if the watcher holds it) and unloads it; NULL: no-op. */
void tok_watch_free(tok_watch *w);

/* ---- initializing a blank token (tok_init.c) --------------------------- */

/*
 * Initializes the one uninitialized token that uri selects (a
 * tok_watch_event's uri, or e.g. pkcs11:model=...;slot-id=N): C_InitToken
 * with so_pin and label (blank-padded to 32 bytes; a longer label is cut at
 * a UTF-8 character boundary), then C_Login as SO, C_InitPIN with user_pin,
 * C_Logout.  label must be printable UTF-8, not empty (TOK_ERR_CONFIG).
 * Refuses an initialized token (TOK_ERR_CONFIG): C_InitToken
 * would erase it.  module as for tok_watch_new; loaded like a watcher's
 * (same rule: not while a tok_open context or an unsuspended watcher holds
 * the module).  PINs are NUL-terminated, used as given and never copied,
 * logged or put in err; the caller wipes them.  ret_info (may be NULL): the
 * token afterwards.  err: what failed, the CKR_* name, what to do.
 */
tok_rv tok_init_token(const char *module, const char *uri, const char *so_pin, const char *label,
		      const char *user_pin, tok_info *ret_info, char *err, size_t errlen);

/* label blank-padded into the 32 bytes of a CK_TOKEN_INFO label: at most
 * 32 bytes of it, cut before a UTF-8 character that would not fit whole.
 * Returns how many bytes of label were kept. */
size_t tok_label_pad(const char *label, unsigned char out[32]);

/*
 * Central key generation and key recovery (tok_unwrap.c): a private key
 * that a CA encrypted to a short-lived transport key on the token is
 * unwrapped there (C_UnwrapKey) and never exists in clear in this process.
 *
 * tok_transport_new makes an RSA 2048 key pair of session objects
 * (CKA_TOKEN FALSE: a process that dies leaves none) whose private key
 * only unwraps; *ret_pub is its public key, for the CA (EVP_PKEY_free).
 * tok_transport_free destroys both; call it before tok_free.
 */
typedef struct tok_transport tok_transport;
tok_rv tok_transport_new(tok_ctx *ctx, tok_transport **ret_t, EVP_PKEY **ret_pub);
void tok_transport_free(tok_transport *t);

/* How the content-encryption key was encrypted to the transport key. */
typedef enum { TOK_KT_RSA_OAEP_SHA1, TOK_KT_RSA_OAEP_SHA256, TOK_KT_RSA_PKCS1 } tok_kt;
/* How the PKCS#8 PrivateKeyInfo was encrypted with that (AES) key. */
typedef enum { TOK_ENC_AES_CBC_PAD, TOK_ENC_AES_KWP } tok_enc;
typedef struct {
	tok_kt kt;
	const unsigned char *enc_cek; /* the AES key, encrypted to the transport key */
	size_t enc_cek_len;
	tok_enc enc;
	unsigned char iv[16]; /* TOK_ENC_AES_CBC_PAD */
	const unsigned char *enc_key; /* the PrivateKeyInfo DER, encrypted */
	size_t enc_key_len;
} tok_wrapped;

/*
 * Unwraps w with t into a private key object on the token: sensitive,
 * never extractable, signs; decrypts (RSA) or derives (EC) only with
 * allow_decrypt.  It must sign what pub verifies (else it is removed
 * again: TOK_ERR_MISMATCH); then it gets pub's RFC 5280 key identifier
 * as CKA_ID (*ret_id), a public key object beside it, and label on both.
 */
tok_rv tok_unwrap_private(tok_ctx *ctx, tok_transport *t, const tok_wrapped *w, EVP_PKEY *pub,
			  const char *label, int allow_decrypt, tok_id *ret_id);
/* The same with want_id as the pair's CKA_ID (NULL: pub's key identifier):
 * a recovered key goes beside its certificate, whatever CKA_ID that has. */
tok_rv tok_unwrap_private_id(tok_ctx *ctx, tok_transport *t, const tok_wrapped *w,
			     EVP_PKEY *pub, const char *label, int allow_decrypt,
			     const tok_id *want_id, tok_id *ret_id);

/*
 * The software path, for allow_software_import only: what no token can
 * unwrap as a key, such as RFC 9483's EnvelopedData, whose content is a
 * SignedData around the key.
 *
 * tok_transport_decrypt: w's AES key is unwrapped on the token (it never
 * leaves it) and decrypts w->enc_key (TOK_ENC_AES_CBC_PAD only) with
 * C_Decrypt into *ret_out (*ret_len bytes; OPENSSL_clear_free it with
 * *ret_len): the plaintext is in this process's memory.
 *
 * tok_import_private: key's private parts into a new private key object
 * with C_CreateObject, then as tok_unwrap_private (template, checks,
 * CKA_ID, public key object, label).  Every buffer that held a private
 * part is cleansed; the caller cleanses and frees key.
 */
tok_rv tok_transport_decrypt(tok_ctx *ctx, tok_transport *t, const tok_wrapped *w,
			     unsigned char **ret_out, size_t *ret_len);
tok_rv tok_import_private(tok_ctx *ctx, EVP_PKEY *key, EVP_PKEY *pub, const char *label,
			  int allow_decrypt, tok_id *ret_id);
/* The same with want_id as the pair's CKA_ID (NULL: pub's key identifier),
 * as tok_unwrap_private_id. */
tok_rv tok_import_private_id(tok_ctx *ctx, EVP_PKEY *key, EVP_PKEY *pub, const char *label,
			     int allow_decrypt, const tok_id *want_id, tok_id *ret_id);

/*
 * Key archive (tok_wrap.c): the private key with CKA_ID id, generated
 * archivable, wrapped on the token for the CA's key-archive key to
 * (RSA): a session AES-256 key wraps the PrivateKeyInfo (C_WrapKey with
 * CKM_AES_CBC_PAD or CKM_AES_KEY_WRAP_PAD, cbc_first picks the order; the
 * token's choice is in enc), to wraps that AES key (kt; OAEP falls back to
 * PKCS#1 v1.5 on a token without it: ret_w->kt says which).  Then the key is
 * made non-extractable for good.  The plaintext never leaves the token.
 */
typedef struct {
	tok_kt kt;
	unsigned char *enc_cek; /* the AES key, wrapped to the archive key */
	size_t enc_cek_len;
	tok_enc enc;
	unsigned char iv[16]; /* TOK_ENC_AES_CBC_PAD */
	unsigned char *enc_key; /* the PrivateKeyInfo, wrapped with the AES key */
	size_t enc_key_len;
} tok_wrapout;
tok_rv tok_wrap_private(tok_ctx *ctx, const tok_id *id, EVP_PKEY *to, tok_kt kt, int cbc_first,
			tok_wrapout *ret_w);
void tok_wrapout_clear(tok_wrapout *w);

#endif
