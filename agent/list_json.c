/*
 * p11enroll list --json: the token and its objects as the document of
 * p11enroll-formats(5) (man/schema/list.schema.json).  Every object has
 * every key, null where it does not apply, so that a script reads
 * certificates and keys alike.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/x509.h>

#include "agent/agent-cmd.h"

/* PKCS#11 values, so that this file needs no PKCS#11 header. */
#define P_CKK_RSA 0UL
#define P_CKK_EC 3UL

static const char *class_key(unsigned long cls)
{
	switch (cls) {
	case TOK_CKO_CERTIFICATE:
		return "certificate";
	case TOK_CKO_PUBLIC_KEY:
		return "public-key";
	case TOK_CKO_PRIVATE_KEY:
		return "private-key";
	default:
		return "other";
	}
}

static int cert_time(const ASN1_TIME *t, long long *ret)
{
	struct tm tm;

	if (t == NULL || !ASN1_TIME_to_tm(t, &tm))
		return 0;
	*ret = (long long)timegm(&tm);
	return 1;
}

/* The certificate's key: its type and size from the certificate itself. */
static void cert_key(agent_jw *w, X509 *cert)
{
	EVP_PKEY *pk = X509_get0_pubkey(cert);
	int id = pk != NULL ? EVP_PKEY_get_base_id(pk) : 0;

	agent_jw_str(w, "key_type", pk == NULL ? NULL : id == EVP_PKEY_EC ? "EC" :
				    id == EVP_PKEY_RSA ? "RSA" : "other");
	if (pk != NULL && EVP_PKEY_get_bits(pk) > 0)
		agent_jw_int(w, "key_bits", EVP_PKEY_get_bits(pk));
	else
		agent_jw_null(w, "key_bits");
}

static void cert_fields(agent_jw *w, const tok_object *o)
{
	BIGNUM *bn;
	char *serial = NULL, name[2048];
	long long t = 0;
	int known;

	if (o->cert == NULL) {
		/* a certificate object whose value does not parse */
		agent_jw_null(w, "key_type");
		agent_jw_null(w, "key_bits");
		agent_jw_null(w, "subject");
		agent_jw_null(w, "issuer");
		agent_jw_null(w, "serial");
		agent_jw_null(w, "not_before");
		agent_jw_null(w, "not_after");
		agent_jw_bool(w, "authority", o->cert_category == 2);
		return;
	}
	bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(o->cert), NULL);
	if (bn == NULL || (serial = BN_bn2hex(bn)) == NULL)
		w->bad = 1; /* no memory */
	cert_key(w, o->cert);
	agent_name_text(X509_get_subject_name(o->cert), name, sizeof(name));
	agent_jw_str(w, "subject", name);
	agent_name_text(X509_get_issuer_name(o->cert), name, sizeof(name));
	agent_jw_str(w, "issuer", name);
	agent_jw_str(w, "serial", serial);
	known = cert_time(X509_get0_notBefore(o->cert), &t);
	agent_jw_time(w, "not_before", t, known);
	known = cert_time(X509_get0_notAfter(o->cert), &t);
	agent_jw_time(w, "not_after", t, known);
	agent_jw_bool(w, "authority", o->cert_category == 2);
	OPENSSL_free(serial);
	BN_free(bn);
}

static void key_fields(agent_jw *w, const tok_object *o)
{
	agent_jw_str(w, "key_type", o->key_type == P_CKK_EC	 ? "EC"
				    : o->key_type == P_CKK_RSA ? "RSA"
								 : "other");
	if (o->key_bits > 0)
		agent_jw_int(w, "key_bits", o->key_bits);
	else
		agent_jw_null(w, "key_bits");
	agent_jw_null(w, "subject");
	agent_jw_null(w, "issuer");
	agent_jw_null(w, "serial");
	agent_jw_null(w, "not_before");
	agent_jw_null(w, "not_after");
	agent_jw_null(w, "authority");
}

/* The private key attributes: null for anything else and where the token
 * does not tell. */
static void access_fields(agent_jw *w, const tok_object *o)
{
	int priv = o->cls == TOK_CKO_PRIVATE_KEY;

	agent_jw_bool(w, "sensitive", priv ? o->sensitive : -1);
	agent_jw_bool(w, "always_sensitive", priv ? o->always_sensitive : -1);
	agent_jw_bool(w, "extractable", priv ? o->extractable : -1);
	agent_jw_bool(w, "never_extractable", priv ? o->never_extractable : -1);
	agent_jw_bool(w, "local", priv ? o->local : -1);
}

int agent_list_json(tok_ctx *tok, const tok_object *objs, size_t n)
{
	const tok_info *info = tok_opened_info(tok);
	char hex[2 * TOK_ID_MAX + 1];
	agent_jw w;
	size_t i;

	agent_jw_init(&w, stdout);
	agent_jw_object(&w, NULL);
	agent_jw_object(&w, "token");
	agent_jw_str(&w, "label", info->label);
	agent_jw_str(&w, "manufacturer", info->manufacturer);
	agent_jw_str(&w, "model", info->model);
	agent_jw_str(&w, "serial", info->serial);
	agent_jw_bool(&w, "serial_unique", tok_serial_unique(tok));
	agent_jw_close(&w, '}');
	agent_jw_bool(&w, "logged_in", tok_logged_in(tok));
	agent_jw_array(&w, "objects");
	for (i = 0; i < n; i++) {
		const tok_object *o = &objs[i];

		agent_jw_object(&w, NULL);
		agent_jw_str(&w, "class", class_key(o->cls));
		agent_jw_str(&w, "label", o->label);
		agent_hex(o->id.id, o->id.len, hex, sizeof(hex));
		agent_jw_str(&w, "id", hex);
		if (o->cls == TOK_CKO_CERTIFICATE)
			cert_fields(&w, o);
		else
			key_fields(&w, o);
		access_fields(&w, o);
		agent_jw_close(&w, '}');
	}
	agent_jw_close(&w, ']');
	agent_jw_close(&w, '}');
	return agent_jw_end(&w);
}
