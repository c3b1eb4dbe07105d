/*
 * p11enroll ccr: cross-certification (RFC 4210 5.3.11).  The requesting
 * CA's key pair is on the token: the one of its own certificate under the
 * label, or key_id's, or (--new-key) a pair generated for this request;
 * the CA of the enrollment's server (another CA) certifies that key.  The
 * cross-certificate is written to --out and, with --store, stored on the
 * token as an authority certificate with the key pair's CKA_ID; the CA's
 * own certificate stays as it is.
 *
 * A new key follows the crash-safety rule of enroll (recover.c): it is
 * generated under "LABEL (new)", the cross-certificate stored beside it
 * under that label once the CA has its certConf, and only then does the
 * pair (with it) move to LABEL.  A failed run deletes the pair; a killed
 * one leaves a "(new)" key with no end-entity certificate, which recovery
 * deletes with whatever carries its CKA_ID.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "agent/agent-cmd.h"

static void print_name(const char *what, const X509_NAME *name)
{
	char buf[512];

	X509_NAME_oneline(name, buf, sizeof(buf));
	printf("  %s%s\n", what, buf);
}

/* The cross-certificate to --out (else cert_out) and, --store, onto the
 * token, with the CKA_ID of its key pair (id).  A new key's always goes
 * onto the token, first (the file is no use if the pair cannot stay),
 * under its "(new)" label (new_label), which then moves to the label;
 * *placed once it has. */
static agent_rc keep(const conf_enrollment *e, const agent_cmd_opts *o, tok_ctx *tok,
		     X509 *cross, const tok_id *id, const char *new_label, int *placed)
{
	const char *out = o->out != NULL ? o->out : e->cert_out;
	char label[256];
	int created = 0;
	tok_rv trv;

	if (new_label != NULL) {
		if ((trv = tok_cacert_store_id(tok, cross, id, new_label, &created)) != TOK_OK)
			return agent_token_fail(tok, trv,
						"storing the cross-certificate on the token failed");
		if ((trv = tok_relabel(tok, id, e->label)) != TOK_OK)
			return agent_token_fail(tok, trv, "moving the new key pair and its "
							  "cross-certificate to the label failed");
		*placed = 1;
		if (log_verbosity() >= 0)
			printf("stored on the token as an authority certificate (label \"%s\") "
			       "beside the new key pair\n",
			       e->label);
	}
	if (out != NULL) {
		if (agent_write_pem(out, cross, NULL) < 0)
			return EXIT_INTERNAL;
		if (log_verbosity() >= 0)
			printf("written to %s\n", out);
	}
	if (!o->store || new_label != NULL)
		return EXIT_OK;
	if (agent_ca_label(cross, label, sizeof(label)) < 0) {
		log_msg(LOG_ERR, "storing the cross-certificate on the token failed: out of memory");
		return EXIT_INTERNAL;
	}
	if ((trv = tok_cacert_store_id(tok, cross, id, label, &created)) != TOK_OK)
		return agent_token_fail(tok, trv,
					"storing the cross-certificate on the token failed");
	if (log_verbosity() >= 0)
		printf("%s on the token as an authority certificate (label \"%s\")\n",
		       created ? "stored" : "already", label);
	return EXIT_OK;
}

/* The requesting CA's key: key_id's, else the one of the certificate
 * under the label; its certificate (*own, NULL if key_id's has none). */
static agent_rc find_key(const conf_enrollment *e, tok_ctx *tok, tok_id *id, X509 **own,
			 EVP_PKEY **key)
{
	tok_id found;
	tok_rv trv;

	if (e->key_id == NULL) {
		if ((trv = tok_find_cert(tok, e->label, NULL, id, own)) != TOK_OK)
			return agent_token_fail(tok, trv,
						"finding the requesting CA's certificate under "
						"the enrollment's label failed (or set key_id)");
	} else if (conf_parse_hex(e->key_id, id->id, sizeof(id->id), &id->len) < 0) {
		log_msg(LOG_ERR, "key_id '%.80s' is not a CKA_ID in hex (an even number of hex "
				 "digits, at most %d bytes)",
			e->key_id, TOK_ID_MAX);
		return EXIT_USAGE;
	} else if ((trv = tok_find_cert(tok, NULL, id, &found, own)) != TOK_OK &&
		   trv != TOK_ERR_NOT_FOUND) {
		return agent_token_fail(tok, trv, "finding the certificate of key_id failed");
	}
	if ((trv = tok_key_get1_private(tok, id, key)) != TOK_OK)
		return agent_token_fail(tok, trv,
					"finding the requesting CA's private key on the token failed");
	return EXIT_OK;
}

/* Before a new key is made: what an interrupted run left is cleaned up,
 * and the label must be free (the new pair takes it). */
static agent_rc label_free(const conf_enrollment *e, tok_ctx *tok)
{
	const char *labels[1] = { e->label };
	tok_object *objs = NULL;
	size_t n = 0;
	agent_rc rc;
	tok_rv trv;

	if ((rc = agent_recover_run(e, tok, NULL)) != EXIT_OK)
		return rc;
	if ((trv = tok_objects_for(tok, labels, 1, 0, &objs, &n)) != TOK_OK)
		return agent_token_fail(tok, trv, "listing the token's objects failed");
	tok_objects_free(objs, n);
	if (n > 0) {
		log_msg(LOG_ERR, "ccr --new-key: the label '%s' holds %zu object(s) already: the new "
				 "CA key pair needs a label of its own (--label), or drop --new-key "
				 "to cross-certify the key that is there",
			e->label, n);
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

/* A new key pair "as for enroll" (key_type, default EC P-256), signing
 * only, under new_label; its CKA_ID into id, *made once it exists. */
static agent_rc new_key(const conf_enrollment *e, tok_ctx *tok, const char *new_label, tok_id *id,
			EVP_PKEY **key, int *made)
{
	tok_keyspec spec;
	char hex[2 * TOK_ID_MAX + 1];
	agent_rc rc;
	tok_rv trv;

	if ((rc = agent_key_spec(e, &spec)) != EXIT_OK)
		return rc;
	agent_wait_show("generating the CA's new key on token '%s'...", tok_opened_info(tok)->label);
	trv = tok_keygen(tok, &spec, new_label, id);
	agent_wait_done();
	if (trv != TOK_OK)
		return agent_token_fail(tok, trv, "generating the new CA key pair on the token failed");
	*made = 1;
	if (tok_keygen_notice(tok)[0] != '\0')
		log_msg(LOG_NOTICE, "%s", tok_keygen_notice(tok));
	agent_hex(id->id, id->len, hex, sizeof(hex));
	log_msg(LOG_INFO, "generated a new key pair on the token, id %s, label '%s'", hex, new_label);
	if ((trv = tok_key_get1_private(tok, id, key)) != TOK_OK)
		return agent_token_fail(tok, trv, "cannot use the new key");
	return EXIT_OK;
}

agent_rc agent_ccr(const conf_enrollment *e, const agent_cmd_opts *o)
{
	cmpc_ctx *cmp = NULL;
	tok_ctx *tok = NULL;
	X509 *own = NULL, *cross = NULL;
	STACK_OF(X509) *chain = NULL;
	EVP_PKEY *key = NULL;
	char *new_label = NULL;
	int generated = 0, placed = 0;
	tok_id id;
	cmpc_rv rv;
	agent_rc rc;
	tok_rv trv;

	memset(&id, 0, sizeof(id));
	if (o->out == NULL && e->cert_out == NULL && !o->store && !o->new_key) {
		log_msg(LOG_ERR, "ccr: say where the cross-certificate goes: --out FILE (or "
				 "cert_out), --store (onto the token) or both");
		return EXIT_USAGE;
	}
	if (o->new_key && e->key_id != NULL) {
		log_msg(LOG_ERR, "ccr: --new-key makes a key pair, key_id names an existing one: "
				 "give one of them");
		return EXIT_USAGE;
	}
	/* Refused before anything is stored for a CA to answer: a ccr is
	 * not resumed, so an answer in a store would never be fetched. */
	if (e->server != NULL && agent_spool_server(e->server)) {
		log_msg(LOG_ERR, "ccr: cross-certification over a store-and-forward transport is "
				 "not supported (server %.200s): use an http(s):// or tcp:// URL",
			e->server);
		return EXIT_USAGE;
	}
	/* A new key has no certificate to take the CA's name from. */
	if (o->new_key && e->subject == NULL) {
		log_msg(LOG_ERR, "ccr --new-key: the new CA key has no certificate to take the CA's "
				 "name from: set subject (--subject)");
		return EXIT_USAGE;
	}
	if (o->new_key && (e->label == NULL ||
			   (new_label = agent_label_with(e->label, AGENT_MARK_NEW)) == NULL)) {
		if (e->label == NULL)
			log_msg(LOG_ERR, "ccr --new-key: no label: set label or --label");
		return e->label == NULL ? EXIT_USAGE : EXIT_INTERNAL;
	}
	if ((cmp = agent_cmpc_new()) == NULL) {
		rc = EXIT_INTERNAL;
		goto out;
	}
	if ((rc = agent_cmp_setup(e, cmp)) != EXIT_OK ||
	    (rc = agent_token_open(e, &tok, 1)) != EXIT_OK)
		goto out;
	if (o->new_key) {
		if ((rc = label_free(e, tok)) != EXIT_OK)
			goto out;
		if ((rc = new_key(e, tok, new_label, &id, &key, &generated)) != EXIT_OK)
			goto out;
	} else if ((rc = find_key(e, tok, &id, &own, &key)) != EXIT_OK) {
		goto out;
	}
	/* Without a configured subject, the CA's own name is certified. */
	if (e->subject == NULL && own == NULL) {
		log_msg(LOG_ERR, "ccr: the key with id %s has no certificate on the token to take "
				 "the CA's name from: set subject",
			e->key_id);
		rc = EXIT_USAGE;
		goto out;
	}
	if (e->subject == NULL &&
	    (rv = cmpc_set1_subject(cmp, X509_get_subject_name(own))) != CMPC_OK) {
		log_msg(LOG_ERR, "ccr: %s", cmpc_errmsg(cmp));
		rc = agent_exit_from_cmpc(rv);
		goto out;
	}
	/* A new CA key has no certificate: PBM, unless a signer is set. */
	if ((rc = agent_cmp_tls_client(e, cmp, tok, own, key)) != EXIT_OK ||
	    (rc = agent_cmp_protect(e, cmp, tok, 0, "the ccr")) != EXIT_OK)
		goto out;
	log_msg(LOG_INFO, "sending ccr to %s", e->server);
	if ((rv = cmpc_ccr(cmp, key, -1, &cross, &chain)) != CMPC_OK) {
		log_msg(LOG_ERR, "cross-certification failed: %s: %s", cmpc_strerror(rv),
			cmpc_errmsg(cmp));
		if (rv == CMPC_ERR_WAITING)
			log_msg(LOG_ERR, "a ccr is not resumed: run `p11enroll ccr` again later (a new "
					 "request)");
		log_openssl_errors();
		rc = agent_exit_from_cmpc(rv);
		goto out;
	}
	printf("cross-certificate\n");
	print_name("subject: ", X509_get_subject_name(cross));
	print_name("issuer:  ", X509_get_issuer_name(cross));
	rc = keep(e, o, tok, cross, &id, generated ? new_label : NULL, &placed);
	/* Under the label with its certificate: from here on the new pair
	 * stays, whatever became of --out. */
	if (placed)
		generated = 0;
out:
	X509_free(own);
	X509_free(cross);
	sk_X509_pop_free(chain, X509_free);
	/* The cmpc context and the key may hold the token's module: they go
	 * first, while it is still loaded. */
	cmpc_free(cmp);
	EVP_PKEY_free(key);
	if (generated) {
		/* The token ends as it began: the new pair (and a
		 * cross-certificate stored beside it) goes. */
		if ((trv = tok_key_destroy(tok, &id, 1)) != TOK_OK)
			agent_token_fail(tok, trv, "removing the new key pair from the token failed: "
						   "`p11enroll check --recover` deletes it");
		else
			log_msg(LOG_NOTICE, "the new key pair was removed from the token");
	}
	tok_free(tok);
	free(new_label);
	return rc;
}
