/*
 * key_source = central (RFC 9483 4.1.6): the CA makes the key pair and
 * sends the private key encrypted to a transport key that lives on the
 * token for this one request.  An EncryptedValue (AES key wrap of the
 * PKCS#8, its AES key RSA-encrypted to the transport key) is unwrapped on
 * the token (C_UnwrapKey): the key never exists in this process.  What
 * the token cannot unwrap passes through host memory, and only with
 * allow_software_import = yes; the output then says so.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "agent/agent-cmd.h"
#include "agent/keyimport.h"

int agent_is_central(const conf_enrollment *e)
{
	return e->key_source != NULL && strcmp(e->key_source, "central") == 0;
}

agent_rc agent_central_check(const conf_enrollment *e, cmpc_req_type type)
{
	if (!agent_is_central(e))
		return EXIT_OK;
	if (type == CMPC_REQ_P10CR || e->csr != NULL) {
		log_msg(LOG_ERR, "key_source = central: a PKCS#10 request carries its public key, "
				 "so the CA cannot make the key; use enroll or cr, or set "
				 "key_source = token");
		return EXIT_USAGE;
	}
	if (e->key_id != NULL && type != CMPC_REQ_KUR) {
		log_msg(LOG_ERR, "key_source = central makes a new key at the CA, and key_id names "
				 "an existing one: remove one of them");
		return EXIT_USAGE;
	}
	/* The CA made the key and may keep it for recovery already; a copy
	 * sent back for archive would only widen who saw it. */
	if (e->archive_key == 1) {
		log_msg(LOG_ERR, "key_source = central and archive_key = yes: the CA made the key, "
				 "so it is the CA's to keep (ask the CA operator whether it keeps "
				 "centrally generated keys for recovery); set archive_key = no");
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

/* The software path: the PKCS#8 decrypted in this process (the AES key
 * unwrapped on the token), imported with C_CreateObject, every buffer
 * cleansed.  EncryptedValue with AES-CBC only: what tok_transport_decrypt
 * decrypts. */
static int software(agent_central *c, const tok_wrapped *w, EVP_PKEY *pub, char *why,
		    size_t whylen)
{
	unsigned char *plain = NULL;
	const unsigned char *p;
	size_t len = 0;
	EVP_PKEY *key = NULL;
	tok_rv trv;

	c->rc = EXIT_TOKEN;
	if ((trv = tok_transport_decrypt(c->tok, c->t, w, &plain, &len)) != TOK_OK) {
		snprintf(why, whylen, "decrypting the key failed: %s: %s", tok_strerror(trv),
			 tok_errmsg(c->tok));
		return -1;
	}
	p = plain;
	if (len > 0x7fffffff || (key = d2i_AutoPrivateKey(NULL, &p, (long)len)) == NULL) {
		OPENSSL_clear_free(plain, len);
		snprintf(why, whylen, "what the CA encrypted is no PKCS#8 private key");
		c->rc = EXIT_PROTOCOL;
		return -1;
	}
	OPENSSL_clear_free(plain, len);
	trv = tok_import_private(c->tok, key, pub, c->label, c->allow_decrypt, &c->id);
	EVP_PKEY_free(key);
	if (trv != TOK_OK) {
		snprintf(why, whylen, "importing the key into the token failed: %s: %s",
			 tok_strerror(trv), tok_errmsg(c->tok));
		c->rc = trv == TOK_ERR_MISMATCH ? EXIT_CERT : agent_exit_from_tok(trv);
		return -1;
	}
	c->software = 1;
	return 0;
}

/* RFC 9483's EnvelopedData, allow_software_import only: its AES key
 * unwrapped on the token, which decrypts the content (C_Decrypt) into
 * this process: a SignedData by the issuing CA around the key, verified
 * and unpacked; the key created on the token (C_CreateObject). */
static int enveloped(agent_central *c, X509 *cert, STACK_OF(X509) *cacerts,
		     const cmpc_privkey *k, char *why, size_t whylen)
{
	unsigned char *plain = NULL;
	size_t len = 0;
	cmpc_envparts e;
	EVP_PKEY *key = NULL;
	char reason[256];
	tok_wrapped w;
	tok_rv trv;
	int ret = -1;

	c->rc = EXIT_PROTOCOL;
	if (!cmpc_enveloped_parts(k, &e, reason, sizeof(reason))) {
		snprintf(why, whylen, "the encrypted private key cannot be used: %s", reason);
		return -1;
	}
	memset(&w, 0, sizeof(w));
	if (e.keyenc_nid == NID_rsaEncryption)
		w.kt = TOK_KT_RSA_PKCS1;
	else if (e.keyenc_nid == NID_rsaesOaep && e.oaep_md_nid == NID_sha1)
		w.kt = TOK_KT_RSA_OAEP_SHA1;
	else if (e.keyenc_nid == NID_rsaesOaep && e.oaep_md_nid == NID_sha256)
		w.kt = TOK_KT_RSA_OAEP_SHA256;
	else {
		snprintf(why, whylen, "its key transport is neither RSA PKCS#1 v1.5 nor "
				      "RSAES-OAEP with SHA-1 or SHA-256");
		goto out;
	}
	if (e.content_nid != NID_aes_128_cbc && e.content_nid != NID_aes_192_cbc &&
	    e.content_nid != NID_aes_256_cbc) {
		snprintf(why, whylen, "its content is not encrypted with AES-CBC");
		goto out;
	}
	w.enc_cek = e.enc_key;
	w.enc_cek_len = e.enc_key_len;
	w.enc = TOK_ENC_AES_CBC_PAD;
	memcpy(w.iv, e.iv, sizeof(w.iv));
	w.enc_key = e.enc_content;
	w.enc_key_len = e.enc_content_len;
	if ((trv = tok_transport_decrypt(c->tok, c->t, &w, &plain, &len)) != TOK_OK) {
		snprintf(why, whylen, "decrypting the EnvelopedData failed: %s: %s",
			 tok_strerror(trv), tok_errmsg(c->tok));
		c->rc = EXIT_TOKEN;
		goto out;
	}
	if (!cmpc_keypkg_open(plain, len, cert, cacerts, &key, reason, sizeof(reason))) {
		snprintf(why, whylen, "the EnvelopedData's content cannot be used: %s", reason);
		goto out;
	}
	if ((trv = tok_import_private_id(c->tok, key, X509_get0_pubkey(cert), c->label,
					 c->allow_decrypt, c->want_id, &c->id)) != TOK_OK) {
		snprintf(why, whylen, "importing the key into the token failed: %s: %s",
			 tok_strerror(trv), tok_errmsg(c->tok));
		c->rc = trv == TOK_ERR_MISMATCH ? EXIT_CERT : agent_exit_from_tok(trv);
		c->id.len = 0;
		goto out;
	}
	c->software = 1;
	ret = 0;
out:
	if (plain != NULL)
		OPENSSL_clear_free(plain, len);
	EVP_PKEY_free(key);
	cmpc_envparts_clear(&e);
	return ret;
}

int agent_central_import(agent_central *c, X509 *cert, STACK_OF(X509) *cacerts,
			 const cmpc_privkey *k, char *why, size_t whylen)
{
	EVP_PKEY *pub = X509_get0_pubkey(cert);
	char reason[256];
	tok_wrapped w;
	tok_rv trv;

	c->id.len = 0;
	c->rc = EXIT_PROTOCOL;
	if (pub == NULL) {
		snprintf(why, whylen, "its public key cannot be read");
		return -1;
	}
	if (k->kind == CMPC_PRIVKEY_ENVELOPED) {
		c->rc = EXIT_USAGE;
		if (c->allow_software == 1)
			return enveloped(c, cert, cacerts, k, why, whylen);
		snprintf(why, whylen,
			 "the CA sent the private key in an EnvelopedData (RFC 9483), whose "
			 "content (a SignedData around the key) no token can unwrap: it would "
			 "pass through this process's memory; set allow_software_import = yes "
			 "to accept that, or ask the CA operator for an EncryptedValue");
		return -1;
	}
	if (!agent_wrapped_from_privkey(k, &w, reason, sizeof(reason))) {
		snprintf(why, whylen, "the encrypted private key cannot be used: %s", reason);
		return -1;
	}
	if (w.enc == TOK_ENC_AES_CBC_PAD && c->allow_software == 1)
		return software(c, &w, pub, why, whylen);
	if ((trv = tok_unwrap_private(c->tok, c->t, &w, pub, c->label, c->allow_decrypt, &c->id)) !=
	    TOK_OK) {
		snprintf(why, whylen, "the token did not take the private key: %s: %s%s",
			 tok_strerror(trv), tok_errmsg(c->tok),
			 w.enc == TOK_ENC_AES_CBC_PAD
				 ? " (a token that cannot unwrap AES-CBC: allow_software_import = "
				   "yes decrypts in host memory instead)"
				 : "");
		c->id.len = 0;
		c->rc = trv == TOK_ERR_MISMATCH ? EXIT_CERT : agent_exit_from_tok(trv);
		return -1;
	}
	return 0;
}

agent_rc agent_central_begin(agent_central *c, tok_ctx *tok, const conf_enrollment *e,
			     const char *label, EVP_PKEY **ret_pub)
{
	tok_rv trv;

	memset(c, 0, sizeof(*c));
	c->tok = tok;
	c->label = label;
	c->allow_decrypt = e->allow_decrypt == 1;
	c->allow_software = e->allow_software_import == 1;
	agent_wait_show("making a transport key on token '%s'...", tok_opened_info(tok)->label);
	trv = tok_transport_new(tok, &c->t, ret_pub);
	agent_wait_done();
	if (trv != TOK_OK)
		return agent_token_fail(tok, trv, "making the transport key for the CA's private "
						  "key failed");
	return EXIT_OK;
}

void agent_central_end(agent_central *c)
{
	tok_transport_free(c->t);
	c->t = NULL;
}
