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

/*
 * uri with ";serial=SERIAL" added to its path (before any query), the
 * serial percent-encoded by p11-kit (RFC 7512), so that the URI selects only
 * the token with that serial: a new string in *ret_uri (OPENSSL_free).
 * *ret_uri is NULL when uri names a serial already.  TOK_ERR_CONFIG when
 * uri does not parse, serial is empty or longer than 16 bytes, or the
 * result would not select that serial (an empty attribute, ";;", inside
 * uri's path: p11-kit then reads the rest as query attributes).
 */
tok_rv tok_uri_pin_serial(const char *uri, const char *serial, char **ret_uri);

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
 * Logs in as the user.  pin is NUL-terminated; NULL means the token's
 * protected authentication path (PIN pad).  Refuses without calling
 * C_Login when the flags say the PIN is locked, on its final try or must be
 * changed.  A rejected PIN is never tried again.
 */
tok_rv tok_login(tok_ctx *ctx, const char *pin);

typedef enum { TOK_KEY_EC = 1, TOK_KEY_RSA = 2 } tok_keyalg;

typedef struct {
	tok_keyalg alg;
	int bits;            /* EC: 256 (P-256) or 384 (P-384); RSA: 2048, 3072, 4096 */
	int allow_decrypt;   /* set CKA_DECRYPT and CKA_UNWRAP (else FALSE) */
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
 * label.  Needs a login.
 */
tok_rv tok_keygen(tok_ctx *ctx, const tok_keyspec *spec, const char *label,
		  tok_id *ret_id);

/* The private key with CKA_ID id as an EVP_PKEY whose signatures the
 * token computes; the EVP_PKEY also carries the public key. */
tok_rv tok_key_get1_private(tok_ctx *ctx, const tok_id *id, EVP_PKEY **ret_pkey);

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

#endif
