/*
 * Key archive at enrollment (RFC 4211 6.4, archive_key = yes): the new
 * key pair is generated archivable, wrapped on the token for the CA's
 * key-archive certificate (tok_wrap_private) and made non-extractable, and
 * the request carries it in its pkiArchiveOptions control
 * (cmpc_set1_archive).  Only encryption keys: a key that only signs is
 * never archived (whoever holds an archived copy could sign as its
 * owner).
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "agent/agent-cmd.h"

/* The keyUsage bits of e's key_usage; -1 when it has none or it is bad. */
static long key_usage_bits(const conf_enrollment *e)
{
	X509_EXTENSION *ext;
	ASN1_BIT_STRING *bits;
	char why[256];
	long v = 0;
	int i;

	if (e->key_usage == NULL ||
	    (ext = conf_parse_extension("key_usage", e->key_usage, why, sizeof(why))) == NULL)
		return -1;
	bits = X509V3_EXT_d2i(ext);
	X509_EXTENSION_free(ext);
	if (bits == NULL)
		return -1;
	for (i = 0; i < 9; i++)
		if (ASN1_BIT_STRING_get_bit(bits, i))
			v |= 1L << i;
	ASN1_BIT_STRING_free(bits);
	return v;
}

/* keyUsage bit numbers (RFC 5280 4.2.1.3) */
#define KU_KEYENC (1L << 2)
#define KU_DATAENC (1L << 3)
#define KU_AGREE (1L << 4)

int agent_archive_format(const conf_enrollment *e)
{
	if (e->archive_format == NULL || strcmp(e->archive_format, "enveloped") == 0)
		return CMPC_ARCHIVE_ENVELOPED;
	if (strcmp(e->archive_format, "encrypted-value") == 0)
		return CMPC_ARCHIVE_ENCVALUE;
	return -1;
}

agent_rc agent_archive_check(const conf_enrollment *e, int req_type, int key_alg)
{
	long ku;

	if (e->archive_key != 1)
		return EXIT_OK;
	if (agent_archive_format(e) < 0) {
		log_msg(LOG_ERR, "archive_format '%.40s' is neither 'enveloped' nor "
				 "'encrypted-value'",
			e->archive_format);
		return EXIT_USAGE;
	}
	if (e->archive_cert == NULL) {
		log_msg(LOG_ERR, "archive_key = yes needs archive_cert, the CA's key-archive "
				 "certificate: ask the CA operator for it");
		return EXIT_USAGE;
	}
	if (req_type == CMPC_REQ_P10CR || e->csr != NULL) {
		log_msg(LOG_ERR, "archive_key = yes: a PKCS#10 request has no place for the "
				 "archived key: use ir, cr or kur");
		return EXIT_USAGE;
	}
	if (e->key_id != NULL && req_type != CMPC_REQ_KUR) {
		log_msg(LOG_ERR, "archive_key = yes archives only a key pair generated for it; "
				 "the key with key_id was not (it is not extractable): leave key_id "
				 "out");
		return EXIT_USAGE;
	}
	ku = key_usage_bits(e);
	if (e->allow_decrypt != 1 || ku < 0 ||
	    !(ku & (key_alg == TOK_KEY_EC ? KU_AGREE : (KU_KEYENC | KU_DATAENC)))) {
		log_msg(LOG_ERR,
			"archive_key = yes is only for encryption keys, and this one is a "
			"signing key (%s): a signing key is never archived, as whoever holds "
			"the copy could sign as its owner; set allow_decrypt = yes and key_usage "
			"with %s, or archive_key = no",
			e->allow_decrypt != 1 ? "allow_decrypt is no"
			: ku < 0	      ? "key_usage is not set"
					      : "key_usage has no encryption usage",
			key_alg == TOK_KEY_EC ? "keyAgreement (an EC key)"
					      : "keyEncipherment or dataEncipherment (an RSA key)");
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

/* The archive certificate and any CA certificates after it in the file. */
static agent_rc load(const char *path, X509 **ret, STACK_OF(X509) **ret_more)
{
	FILE *f = fopen(path, "r");
	X509 *x;

	*ret = NULL;
	*ret_more = sk_X509_new_null();
	if (f == NULL || *ret_more == NULL) {
		log_msg(LOG_ERR, "archive_cert '%s' cannot be read: %m: check the path", path);
		if (f != NULL)
			fclose(f);
		return EXIT_USAGE;
	}
	*ret = PEM_read_X509(f, NULL, NULL, NULL);
	while (*ret != NULL && (x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL)
		if (!sk_X509_push(*ret_more, x))
			X509_free(x);
	ERR_clear_error();
	fclose(f);
	if (*ret == NULL) {
		log_msg(LOG_ERR, "archive_cert '%s' holds no PEM certificate: give the CA's "
				 "key-archive certificate",
			path);
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

/* An RSA key that may encipher keys: the recipient of a KTRI. */
static int usable(X509 *cert, const char **why)
{
	uint32_t ku = X509_get_key_usage(cert);

	if (EVP_PKEY_get_base_id(X509_get0_pubkey(cert)) != EVP_PKEY_RSA) {
		*why = "its key is not RSA (key agreement recipients are not supported)";
		return 0;
	}
	if (ku != UINT32_MAX && !(ku & KU_KEY_ENCIPHERMENT)) {
		*why = "its keyUsage lacks keyEncipherment";
		return 0;
	}
	return 1;
}

agent_rc agent_archive_cert(const conf_enrollment *e, cmpc_ctx *cmp, X509 **ret_cert)
{
	X509 *cert = NULL;
	STACK_OF(X509) *more = NULL;
	const char *why;
	agent_rc rc;

	*ret_cert = NULL;
	if (e->archive_key != 1)
		return EXIT_OK;
	if ((rc = load(e->archive_cert, &cert, &more)) != EXIT_OK)
		goto out;
	rc = EXIT_USAGE;
	if (!usable(cert, &why)) {
		log_msg(LOG_ERR, "archive_cert '%s' is not a key-archive certificate: %s: ask the "
				 "CA operator for its key-archive (encryption) certificate",
			e->archive_cert, why);
		goto out;
	}
	/* The key goes only to a certificate of the PKI the enrollment trusts. */
	if (cmpc_verify_under_anchors(cmp, cert, more) != CMPC_OK) {
		log_msg(LOG_ERR, "archive_cert '%s' is not trusted: %s: give the key-archive "
				 "certificate of the CA in trusted (with its intermediates after it "
				 "in the file)",
			e->archive_cert, cmpc_errmsg(cmp));
		goto out;
	}
	*ret_cert = cert;
	cert = NULL;
	rc = EXIT_OK;
out:
	X509_free(cert);
	sk_X509_pop_free(more, X509_free);
	return rc;
}

agent_rc agent_archive_wrap(const conf_enrollment *e, tok_ctx *tok, const tok_id *id,
			    cmpc_ctx *cmp, X509 *cert)
{
	tok_wrapout w;
	cmpc_archive a;
	int fmt = agent_archive_format(e);
	agent_rc rc;
	tok_rv trv;

	memset(&w, 0, sizeof(w));
	if (e->archive_key != 1 || cert == NULL)
		return EXIT_OK;
	trv = tok_wrap_private(tok, id, X509_get0_pubkey(cert), TOK_KT_RSA_OAEP_SHA1,
			       fmt == CMPC_ARCHIVE_ENVELOPED, &w);
	if (trv != TOK_OK)
		return agent_token_fail(tok, trv, "wrapping the new key for archive failed");
	memset(&a, 0, sizeof(a));
	a.format = (cmpc_archive_format)fmt;
	a.recipient = cert;
	a.oaep = w.kt == TOK_KT_RSA_OAEP_SHA1;
	a.enc_cek = w.enc_cek;
	a.enc_cek_len = w.enc_cek_len;
	a.cbc = w.enc == TOK_ENC_AES_CBC_PAD;
	memcpy(a.iv, w.iv, sizeof(a.iv));
	a.enc_key = w.enc_key;
	a.enc_key_len = w.enc_key_len;
	rc = EXIT_OK;
	if (cmpc_set1_archive(cmp, &a) != CMPC_OK) {
		log_msg(LOG_ERR, "%s", cmpc_errmsg(cmp));
		rc = EXIT_INTERNAL;
	} else {
		log_msg(LOG_INFO,
			"the new key was wrapped on the token for archive by the CA (%s in %s, "
			"to '%s') and is no longer extractable",
			a.cbc ? "AES-256-CBC" : "AES-256-KWP",
			fmt == CMPC_ARCHIVE_ENVELOPED ? "EnvelopedData" : "EncryptedValue",
			e->archive_cert);
	}
	tok_wrapout_clear(&w);
	return rc;
}
