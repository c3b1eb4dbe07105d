/*
 * tok: certificates written with C_CreateObject on the raw function list
 * (see CONTRIBUTING.md: libp11's PKCS11_store_certificate adds attributes
 * that pre-2.30 modules reject and cannot set CKA_CERTIFICATE_CATEGORY).
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "pkcs11/tok-int.h"

#define CATEGORY_AUTHORITY 2UL

/* The DER encodings a certificate object carries. */
typedef struct {
	unsigned char *value, *subject, *issuer, *serial;
	int value_len, subject_len, issuer_len, serial_len;
} cert_der;

static void cert_der_free(cert_der *d)
{
	OPENSSL_free(d->value);
	OPENSSL_free(d->subject);
	OPENSSL_free(d->issuer);
	OPENSSL_free(d->serial);
}

static int cert_der_init(X509 *cert, cert_der *d)
{
	memset(d, 0, sizeof(*d));
	d->value_len = i2d_X509(cert, &d->value);
	d->subject_len = i2d_X509_NAME(X509_get_subject_name(cert), &d->subject);
	d->issuer_len = i2d_X509_NAME(X509_get_issuer_name(cert), &d->issuer);
	d->serial_len = i2d_ASN1_INTEGER(X509_get0_serialNumber(cert), &d->serial);
	if (d->value_len > 0 && d->subject_len > 0 && d->issuer_len > 0 && d->serial_len > 0)
		return 1;
	cert_der_free(d);
	return 0;
}

/* Whether a certificate object with exactly this DER (and id, if given) exists. */
static tok_rv cert_exists(tok_ctx *ctx, CK_SESSION_HANDLE s, const cert_der *d,
			  const unsigned char *id, size_t id_len, int *ret_exists)
{
	static const CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
	CK_ATTRIBUTE tmpl[3] = {
	    {CKA_CLASS, (void *)&cls, sizeof(cls)},
	    {CKA_VALUE, d->value, (CK_ULONG)d->value_len},
	    {CKA_ID, (void *)id, id_len},
	};
	CK_OBJECT_HANDLE h;
	CK_ULONG n;
	tok_rv rv;

	rv = tok_find(ctx, s, tmpl, id != NULL ? 3 : 2, &h, 1, &n);
	if (rv == TOK_OK)
		*ret_exists = n > 0;
	return rv;
}

static tok_rv create_cert(tok_ctx *ctx, CK_SESSION_HANDLE s, const cert_der *d,
			  const unsigned char *id, size_t id_len, const char *label, int authority,
			  CK_OBJECT_HANDLE *ret_h)
{
	static const CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
	static const CK_CERTIFICATE_TYPE ctype = CKC_X_509;
	static const CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	static const CK_ULONG category = CATEGORY_AUTHORITY;
	CK_ATTRIBUTE tmpl[] = {
	    {CKA_CLASS, (void *)&cls, sizeof(cls)},
	    {CKA_CERTIFICATE_TYPE, (void *)&ctype, sizeof(ctype)},
	    {CKA_TOKEN, (void *)&yes, sizeof(yes)},
	    {CKA_PRIVATE, (void *)&no, sizeof(no)},
	    {CKA_ID, (void *)id, id_len},
	    {CKA_LABEL, (void *)label, strlen(label)},
	    {CKA_SUBJECT, d->subject, (CK_ULONG)d->subject_len},
	    {CKA_ISSUER, d->issuer, (CK_ULONG)d->issuer_len},
	    {CKA_SERIAL_NUMBER, d->serial, (CK_ULONG)d->serial_len},
	    {CKA_VALUE, d->value, (CK_ULONG)d->value_len},
	    {CKA_CERTIFICATE_CATEGORY, (void *)&category, sizeof(category)},
	};
	CK_ULONG n = sizeof(tmpl) / sizeof(tmpl[0]) - (authority ? 0 : 1);
	char what[96];
	CK_RV ckr;

	ckr = ctx->f->C_CreateObject(s, tmpl, n, ret_h);
	/* Modules before PKCS#11 v2.30 do not know the category: store without it. */
	if (authority && ckr == CKR_ATTRIBUTE_TYPE_INVALID)
		ckr = ctx->f->C_CreateObject(s, tmpl, n - 1, ret_h);
	if (ckr != CKR_OK) {
		snprintf(what, sizeof(what), "C_CreateObject (certificate) on token '%s'",
			 ctx->label);
		return tok_fail_ckr(ctx, what, ckr, NULL);
	}
	return TOK_OK;
}

static tok_rv mismatch(tok_ctx *ctx, const tok_id *id, const char *when)
{
	char hex[2 * TOK_ID_MAX + 1];

	return tok_fail(ctx, TOK_ERR_MISMATCH,
			"storing a certificate for key %s on token '%s' failed: the "
			"certificate's public key is not the key's (%s): check that the CA "
			"issued it for this request; nothing was stored",
			tok_id_hex(id, hex, sizeof(hex)), ctx->label, when);
}

/* Reads the new object back and checks it still carries the key.  The
 * message leaves what became of the object to the caller. */
static tok_rv verify_stored(tok_ctx *ctx, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, const tok_id *id,
			    const cert_der *d, EVP_PKEY *pub)
{
	unsigned char *v = NULL;
	const unsigned char *p;
	CK_ULONG len = 0;
	X509 *back = NULL;
	char what[96], hex[2 * TOK_ID_MAX + 1];
	CK_RV ckr;
	tok_rv rv;

	ckr = tok_attr_get(ctx, s, h, CKA_VALUE, &v, &len);
	if (ckr != CKR_OK) {
		snprintf(what, sizeof(what), "reading back a stored certificate on token '%s'",
			 ctx->label);
		return tok_fail_ckr(ctx, what, ckr, NULL);
	}
	/* the bytes written: nothing to decode */
	if (len == (CK_ULONG)d->value_len && memcmp(v, d->value, len) == 0) {
		OPENSSL_free(v);
		return TOK_OK;
	}
	p = v;
	if (len > 0)
		back = d2i_X509(NULL, &p, (long)len);
	if (back == NULL || p != v + len)
		rv = tok_fail(ctx, TOK_ERR_DEVICE,
			      "reading back a stored certificate on token '%s' failed: the token "
			      "returned a damaged certificate: check the token",
			      ctx->label);
	else if (!tok_pubkey_equal(X509_get0_pubkey(back), pub))
		/* The CA's certificate was checked before it was stored: the
		 * token is the one to blame. */
		rv = tok_fail(ctx, TOK_ERR_MISMATCH,
			      "reading back the certificate stored for key %s on token '%s' "
			      "failed: the token returned another certificate, not one for this "
			      "key: check the token",
			      tok_id_hex(id, hex, sizeof(hex)), ctx->label);
	else
		rv = TOK_OK;
	X509_free(back);
	OPENSSL_free(v);
	return rv;
}

/* A stored certificate that did not read back right goes again. */
static void unstore(tok_ctx *ctx, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, const char *label)
{
	CK_RV ckr = ctx->f->C_DestroyObject(s, h);
	size_t n = strlen(ctx->errmsg);

	if (ckr == CKR_OK)
		snprintf(ctx->errmsg + n, sizeof(ctx->errmsg) - n,
			 "; the object was removed again");
	else
		snprintf(ctx->errmsg + n, sizeof(ctx->errmsg) - n,
			 "; removing the object failed too (C_DestroyObject: %s): it is left on "
			 "the token, labelled '%s'",
			 tok_ckr_name(ckr), label);
}

tok_rv tok_cert_store(tok_ctx *ctx, X509 *cert, const tok_id *id, const char *label)
{
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
	EVP_PKEY *pub = NULL;
	cert_der d;
	int exists = 0;
	tok_rv rv;

	if (ctx == NULL || cert == NULL || id == NULL || id->len == 0 || id->len > TOK_ID_MAX)
		return TOK_ERR_CONFIG;
	tok_clear_err(ctx);
	if (label == NULL)
		label = "";
	if (!cert_der_init(cert, &d))
		return tok_fail(ctx, TOK_ERR_CONFIG,
				"storing a certificate on token '%s' failed: OpenSSL cannot "
				"encode it: check the certificate",
				ctx->label);
	if ((rv = tok_session_open(ctx, 1, &s)) != TOK_OK) {
		cert_der_free(&d);
		return rv;
	}
	rv = tok_pubkey_by_id(ctx, s, id, &pub, NULL);
	if (rv == TOK_OK && !tok_pubkey_equal(X509_get0_pubkey(cert), pub))
		rv = mismatch(ctx, id, "before storing");
	/* The pair this context just made has no certificate yet but the one
	 * it stores: no search for it. */
	if (rv == TOK_OK && !(tok_made_is(ctx, id) && ctx->made.cert == CK_INVALID_HANDLE))
		rv = cert_exists(ctx, s, &d, id->id, id->len, &exists);
	if (rv == TOK_OK && !exists) {
		rv = create_cert(ctx, s, &d, id->id, id->len, label, 0, &h);
		if (rv == TOK_OK && (rv = verify_stored(ctx, s, h, id, &d, pub)) != TOK_OK)
			unstore(ctx, s, h, label);
		else if (rv == TOK_OK && tok_made_is(ctx, id))
			ctx->made.cert = h;
	}
	tok_session_close(ctx, s);
	EVP_PKEY_free(pub);
	cert_der_free(&d);
	return rv;
}

/* The certificate's SHA-256 into md (all zero when it cannot be made:
 * never remembered then), and whether this context knows it is on the
 * token. */
static int cacert_known(const tok_ctx *ctx, const cert_der *d, unsigned char md[32])
{
	size_t i;

	if (EVP_Digest(d->value, (size_t)d->value_len, md, NULL, EVP_sha256(), NULL) != 1) {
		memset(md, 0, 32);
		return 0;
	}
	for (i = 0; i < ctx->ncacerts; i++)
		if (memcmp(ctx->cacerts[i], md, 32) == 0)
			return 1;
	return 0;
}

static void cacert_forget(tok_ctx *ctx, const unsigned char md[32])
{
	size_t i;

	for (i = 0; i < ctx->ncacerts; i++)
		if (memcmp(ctx->cacerts[i], md, 32) == 0) {
			memmove(ctx->cacerts[i], ctx->cacerts[i + 1],
				(ctx->ncacerts - i - 1) * sizeof(ctx->cacerts[0]));
			ctx->ncacerts--;
			return;
		}
}

tok_rv tok_cacert_store(tok_ctx *ctx, X509 *cert, const char *label, int *ret_created)
{
	return tok_cacert_store_id(ctx, cert, NULL, label, ret_created);
}

tok_rv tok_cacert_store_id(tok_ctx *ctx, X509 *cert, const tok_id *key_id, const char *label,
			   int *ret_created)
{
	static const unsigned char none[32];
	unsigned char md[32];
	const ASN1_OCTET_STRING *ski;
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE h;
	tok_id kid;
	const unsigned char *id;
	size_t id_len;
	cert_der d;
	int exists = 0;
	tok_rv rv;

	if (ctx == NULL || cert == NULL)
		return TOK_ERR_CONFIG;
	tok_clear_err(ctx);
	if (label == NULL)
		label = "";
	ski = X509_get0_subject_key_id(cert);
	if (key_id != NULL && key_id->len > 0) {
		id = key_id->id;
		id_len = key_id->len;
	} else if (ski != NULL && ASN1_STRING_length(ski) > 0) {
		id = ASN1_STRING_get0_data(ski);
		id_len = (size_t)ASN1_STRING_length(ski);
	} else if (X509_get0_pubkey(cert) != NULL &&
		   tok_key_identifier(X509_get0_pubkey(cert), &kid)) {
		id = kid.id;
		id_len = kid.len;
	} else {
		return tok_fail(ctx, TOK_ERR_CONFIG,
				"storing a CA certificate on token '%s' failed: its public key "
				"cannot be read: check the certificate",
				ctx->label);
	}
	if (!cert_der_init(cert, &d))
		return tok_fail(ctx, TOK_ERR_CONFIG,
				"storing a CA certificate on token '%s' failed: OpenSSL cannot "
				"encode it: check the certificate",
				ctx->label);
	/* stored or seen by this context already (a batch's every row) */
	if (cacert_known(ctx, &d, md)) {
		cert_der_free(&d);
		if (ret_created != NULL)
			*ret_created = 0;
		return TOK_OK;
	}
	if ((rv = tok_session_open(ctx, 1, &s)) != TOK_OK) {
		cert_der_free(&d);
		return rv;
	}
	rv = cert_exists(ctx, s, &d, NULL, 0, &exists);
	if (rv == TOK_OK && !exists)
		rv = create_cert(ctx, s, &d, id, id_len, label, 1, &h);
	tok_session_close(ctx, s);
	cert_der_free(&d);
	if (rv == TOK_OK && ctx->ncacerts < TOK_CACERTS_KNOWN && memcmp(md, none, 32) != 0)
		memcpy(ctx->cacerts[ctx->ncacerts++], md, 32);
	if (rv == TOK_OK && ret_created != NULL)
		*ret_created = !exists;
	return rv;
}

tok_rv tok_cacert_destroy(tok_ctx *ctx, X509 *cert)
{
	static const CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE hs[8];
	CK_ULONG n = 0, i;
	CK_RV ckr;
	cert_der d;
	tok_rv rv;
	char what[160];

	if (ctx == NULL || cert == NULL)
		return TOK_ERR_CONFIG;
	tok_clear_err(ctx);
	if (!cert_der_init(cert, &d))
		return tok_fail(ctx, TOK_ERR_CONFIG,
				"removing a CA certificate from token '%s' failed: OpenSSL cannot "
				"encode it",
				ctx->label);
	if ((rv = tok_session_open(ctx, 1, &s)) != TOK_OK) {
		cert_der_free(&d);
		return rv;
	}
	CK_ATTRIBUTE tmpl[2] = {
	    {CKA_CLASS, (void *)&cls, sizeof(cls)},
	    {CKA_VALUE, d.value, (CK_ULONG)d.value_len},
	};
	{
		unsigned char md[32];

		if (cacert_known(ctx, &d, md))
			cacert_forget(ctx, md);
	}
	rv = tok_find(ctx, s, tmpl, 2, hs, 8, &n);
	for (i = 0; rv == TOK_OK && i < n; i++)
		if ((ckr = ctx->f->C_DestroyObject(s, hs[i])) != CKR_OK) {
			snprintf(what, sizeof(what), "C_DestroyObject (CA certificate) on token '%s'",
				 ctx->label);
			rv = tok_fail_ckr(ctx, what, ckr, NULL);
		}
	tok_session_close(ctx, s);
	cert_der_free(&d);
	return rv;
}
