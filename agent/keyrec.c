/*
 * p11enroll recover: key recovery (krr/krp, RFC 4210 5.3.8 and 5.3.9).
 * The CA archived the private key of a certificate (an encryption key);
 * the key is lost from the token, the certificate is not: it is the one
 * under the enrollment's label, or --cert FILE.  The CA encrypts the key
 * to a transport key made on the token for this one run, and the token
 * unwraps it (C_UnwrapKey): the key never exists in clear in this
 * process.  It goes beside its certificate (same CKA_ID and label),
 * checked against the certificate's public key; a failure leaves the
 * token as it was (the transport key is a session object).  A key the
 * CA sends in an EnvelopedData (RFC 9480) no token unwraps: with
 * allow_software_import = yes it is opened as for key_source = central
 * (agent_central_import: content decrypted on the token into this
 * process, the SignedData verified as the issuer's, the key created on
 * the token); without, it is refused.
 *
 * Not agent/recover.c, which finishes what an interrupted run left.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509v3.h>

#include "agent/agent-cmd.h"
#include "agent/keyimport.h"

/* Key recovery is for keys that decrypt; a certificate without keyUsage
 * says nothing against it. */
static int may_decrypt(X509 *cert)
{
	uint32_t ku = X509_get_key_usage(cert);

	return ku == UINT32_MAX ||
	       (ku & (KU_KEY_ENCIPHERMENT | KU_DATA_ENCIPHERMENT | KU_KEY_AGREEMENT)) != 0;
}

/* The certificate whose key is wanted and where it is: *on_token 1 with
 * its CKA_ID in *id when it is the label's certificate.  --cert names one
 * that goes under the label, which must then be free or hold it. */
static agent_rc find_cert(const conf_enrollment *e, const agent_cmd_opts *o, tok_ctx *tok,
			  X509 **cert, tok_id *id, int *on_token)
{
	X509 *own = NULL;
	tok_rv trv;

	*on_token = 0;
	trv = tok_find_cert(tok, e->label, NULL, id, &own);
	if (trv != TOK_OK && trv != TOK_ERR_NOT_FOUND)
		return agent_token_fail(tok, trv, "finding the certificate under the label failed");
	if (o->cert_file == NULL) {
		if (own == NULL) {
			log_msg(LOG_ERR, "recover: no certificate under the label '%s' on the token: "
					 "give the certificate whose key is wanted with --cert FILE",
				e->label);
			return EXIT_USAGE;
		}
		*cert = own;
		*on_token = 1;
		return EXIT_OK;
	}
	if ((*cert = agent_read_cert(o->cert_file, "--cert",
				     "give the certificate whose key is wanted in PEM")) == NULL) {
		X509_free(own);
		return EXIT_USAGE;
	}
	if (own != NULL && X509_cmp(own, *cert) != 0) {
		log_msg(LOG_ERR, "recover: the label '%s' holds another certificate: choose a free "
				 "label for the recovered key (--label)",
			e->label);
		X509_free(own);
		return EXIT_USAGE;
	}
	*on_token = own != NULL;
	X509_free(own);
	return EXIT_OK;
}

/* The krp's key k for cert: unwrapped on the token (w), or an
 * EnvelopedData opened by agent_central_import (cacerts: cert's chain);
 * under label with want_id (NULL: the key identifier) into *got. */
struct recovered {
	tok_transport *t;
	const cmpc_privkey *k;
	const tok_wrapped *w;
	STACK_OF(X509) *cacerts;
	int software; /* the key passed through host memory */
};

static agent_rc put_key(const conf_enrollment *e, tok_ctx *tok, struct recovered *r, X509 *cert,
			const char *label, const tok_id *want_id, tok_id *got)
{
	agent_central c;
	char why[512];
	tok_rv trv;

	if (r->k->kind != CMPC_PRIVKEY_ENVELOPED) {
		trv = tok_unwrap_private_id(tok, r->t, r->w, X509_get0_pubkey(cert), label,
					    may_decrypt(cert), want_id, got);
		if (trv != TOK_OK)
			return agent_token_fail(tok, trv, "importing the recovered key failed");
		return EXIT_OK;
	}
	memset(&c, 0, sizeof(c));
	c.tok = tok;
	c.t = r->t;
	c.label = label;
	c.want_id = want_id;
	c.allow_decrypt = may_decrypt(cert);
	c.allow_software = e->allow_software_import == 1;
	if (agent_central_import(&c, cert, r->cacerts, r->k, why, sizeof(why)) != 0) {
		log_msg(LOG_ERR, "key recovery failed: the recovered key is not imported: %s", why);
		return c.rc;
	}
	*got = c.id;
	r->software = c.software;
	return EXIT_OK;
}

/* The key of the krp onto the token: beside its certificate there (id),
 * or with the certificate under "LABEL (new)" first, then under the label:
 * an interrupted run leaves what agent/recover.c finishes (a key without
 * its certificate deleted, a whole pair adopted). */
static agent_rc import(const conf_enrollment *e, tok_ctx *tok, struct recovered *r, X509 *cert,
		       const tok_id *id, int on_token)
{
	char *tmp = NULL, hex[2 * TOK_ID_MAX + 1];
	tok_id got;
	tok_rv trv;
	agent_rc rc;

	if (on_token) {
		if ((rc = put_key(e, tok, r, cert, e->label, id, &got)) != EXIT_OK)
			return rc;
	} else {
		if ((tmp = agent_label_with(e->label, AGENT_MARK_NEW)) == NULL)
			return EXIT_INTERNAL;
		if ((rc = put_key(e, tok, r, cert, tmp, NULL, &got)) != EXIT_OK) {
			free(tmp);
			return rc;
		}
		if ((trv = tok_cert_store(tok, cert, &got, tmp)) != TOK_OK) {
			agent_token_fail(tok, trv, "storing the certificate beside the recovered key "
						   "failed");
			if (tok_key_destroy(tok, &got, 1) != TOK_OK)
				log_msg(LOG_ERR, "recover: the imported key could not be removed "
						 "again: it stays as '%s'; the next run deletes it",
					tmp);
			free(tmp);
			return EXIT_TOKEN;
		}
		free(tmp);
		if ((trv = tok_relabel(tok, &got, e->label)) != TOK_OK)
			return agent_token_fail(tok, trv, "labelling the recovered key pair failed; "
							  "the next run finishes it");
	}
	agent_hex(got.id, got.len, hex, sizeof(hex));
	printf("recovered the private key of the certificate under label \"%s\" (id %s)\n",
	       e->label, hex);
	if (r->software) {
		log_msg(LOG_WARNING, "the recovered key passed through this process's memory "
				     "(allow_software_import = yes): the CA sent it in an "
				     "EnvelopedData, which no token unwraps");
		printf("  in an EnvelopedData: decrypted on the token into this process's memory "
		       "(allow_software_import = yes), created on the token sensitive and not "
		       "extractable\n");
	} else
		printf("  unwrapped on the token (C_UnwrapKey): it was never in this process's "
		       "memory\n");
	return EXIT_OK;
}

/* The exchange and the import, with the token's transport key. */
static agent_rc recover_key(const conf_enrollment *e, cmpc_ctx *cmp, tok_ctx *tok, X509 *cert,
			    const tok_id *id, int on_token)
{
	STACK_OF(X509) *cacerts = NULL;
	struct recovered r;
	tok_transport *t = NULL;
	EVP_PKEY *tpub = NULL;
	X509 *got = NULL;
	cmpc_privkey k;
	tok_wrapped w;
	char why[256];
	int others = 0;
	tok_rv trv;
	cmpc_rv rv;
	agent_rc rc;

	memset(&k, 0, sizeof(k));
	if ((trv = tok_transport_new(tok, &t, &tpub)) != TOK_OK)
		return agent_token_fail(tok, trv, "making the transport key on the token failed");
	log_msg(LOG_INFO, "sending krr to %s", e->server);
	if ((rv = cmpc_krr(cmp, cert, tpub, &got, &k, &cacerts, &others)) != CMPC_OK) {
		log_msg(LOG_ERR, "key recovery failed: %s: %s", cmpc_strerror(rv),
			cmpc_errmsg(cmp));
		log_openssl_errors();
		rc = agent_exit_from_cmpc(rv);
		goto out;
	}
	if (others > 0)
		log_msg(LOG_NOTICE, "recover: the CA sent %d more key pair(s) of the key history; "
				    "only the certificate's own key is imported",
			others);
	memset(&r, 0, sizeof(r));
	r.t = t;
	r.k = &k;
	r.w = &w;
	r.cacerts = cacerts;
	if (k.kind != CMPC_PRIVKEY_ENVELOPED &&
	    !agent_wrapped_from_privkey(&k, &w, why, sizeof(why))) {
		log_msg(LOG_ERR, "key recovery failed: the CA sent the key in a form the token "
				 "cannot unwrap: %s; ask the CA for an EncryptedValue (AES key wrap "
				 "with padding, RSA-OAEP or PKCS#1 v1.5)",
			why);
		rc = EXIT_PROTOCOL;
		goto out;
	}
	rc = import(e, tok, &r, on_token ? cert : got, id, on_token);
out:
	sk_X509_pop_free(cacerts, X509_free);
	cmpc_privkey_clear(&k);
	X509_free(got);
	EVP_PKEY_free(tpub);
	tok_transport_free(t);
	return rc;
}

agent_rc agent_keyrec(const conf_enrollment *e, const agent_cmd_opts *o)
{
	cmpc_ctx *cmp = NULL;
	tok_ctx *tok = NULL;
	X509 *cert = NULL;
	tok_id id, have;
	char hex[2 * TOK_ID_MAX + 1];
	int on_token = 0;
	tok_rv trv;
	agent_rc rc;

	if (e->label == NULL) {
		log_msg(LOG_ERR, "recover: the recovered key goes under the enrollment's label: set "
				 "label (or --label)");
		return EXIT_USAGE;
	}
	if ((cmp = agent_cmpc_new()) == NULL)
		return EXIT_INTERNAL;
	if ((rc = agent_cmp_setup(e, cmp)) != EXIT_OK ||
	    (rc = agent_token_open(e, &tok, 1)) != EXIT_OK ||
	    (rc = find_cert(e, o, tok, &cert, &id, &on_token)) != EXIT_OK)
		goto out;
	/* A key the token holds is not fetched twice. */
	trv = tok_key_find(tok, X509_get0_pubkey(cert), &have);
	if (trv == TOK_OK) {
		agent_hex(have.id, have.len, hex, sizeof(hex));
		printf("the private key of the certificate is on the token already (id %s): "
		       "nothing to recover\n",
		       hex);
		goto out;
	}
	if (trv != TOK_ERR_NOT_FOUND) {
		rc = agent_token_fail(tok, trv, "looking for the certificate's key on the token "
						"failed");
		goto out;
	}
	/* The lost key protects nothing: a signer (another certificate) or
	 * the MAC secret from the CA does. */
	if ((rc = agent_cmp_tls_client(e, cmp, tok, NULL, NULL)) != EXIT_OK ||
	    (rc = agent_cmp_protect(e, cmp, tok, 0, "the krr")) != EXIT_OK)
		goto out;
	rc = recover_key(e, cmp, tok, cert, &id, on_token);
out:
	X509_free(cert);
	/* The cmpc context may hold the token's module (a signer): it goes
	 * first, while it is still loaded. */
	cmpc_free(cmp);
	tok_free(tok);
	return rc;
}
