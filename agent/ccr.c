/*
 * p11enroll ccr: cross-certification (RFC 4210 5.3.11).  The requesting
 * CA's key pair is the enrollment's on the token, its own certificate
 * under the label; the CA of the enrollment's server (another CA)
 * certifies that key.  The cross-certificate is written to --out and,
 * with --store, stored on the token as an authority certificate with the
 * key pair's CKA_ID; the CA's own certificate stays as it is.
 */
#include "config.h"

#include <stdio.h>

#include <openssl/x509.h>

#include "agent/agent-cmd.h"

static void print_name(const char *what, const X509_NAME *name)
{
	char buf[512];

	X509_NAME_oneline(name, buf, sizeof(buf));
	printf("  %s%s\n", what, buf);
}

/* The cross-certificate to --out and (--store) onto the token, with the
 * CKA_ID of its key pair (id). */
static agent_rc keep(const agent_cmd_opts *o, tok_ctx *tok, X509 *cross, const tok_id *id)
{
	char label[256];
	int created = 0;
	tok_rv trv;

	if (o->out != NULL) {
		if (agent_write_pem(o->out, cross, NULL) < 0)
			return EXIT_INTERNAL;
		if (log_verbosity() >= 0)
			printf("written to %s\n", o->out);
	}
	if (!o->store)
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

agent_rc agent_ccr(const conf_enrollment *e, const agent_cmd_opts *o)
{
	cmpc_ctx *cmp = NULL;
	tok_ctx *tok = NULL;
	X509 *own = NULL, *cross = NULL;
	STACK_OF(X509) *chain = NULL;
	EVP_PKEY *key = NULL;
	tok_id id;
	cmpc_rv rv;
	agent_rc rc;

	if (o->out == NULL && !o->store) {
		log_msg(LOG_ERR, "ccr: say where the cross-certificate goes: --out FILE, --store "
				 "(onto the token) or both");
		return EXIT_USAGE;
	}
	if ((cmp = agent_cmpc_new()) == NULL)
		return EXIT_INTERNAL;
	if ((rc = agent_cmp_setup(e, cmp)) != EXIT_OK ||
	    (rc = agent_token_open(e, &tok, 1)) != EXIT_OK)
		goto out;
	if ((rc = find_key(e, tok, &id, &own, &key)) != EXIT_OK)
		goto out;
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
	if ((rc = agent_cmp_tls_client(e, cmp, tok, own, key)) != EXIT_OK ||
	    (rc = agent_cmp_protect(e, cmp, tok, 0, "the ccr")) != EXIT_OK)
		goto out;
	log_msg(LOG_INFO, "sending ccr to %s", e->server);
	if ((rv = cmpc_ccr(cmp, key, -1, &cross, &chain)) != CMPC_OK) {
		log_msg(LOG_ERR, "cross-certification failed: %s: %s", cmpc_strerror(rv),
			cmpc_errmsg(cmp));
		log_openssl_errors();
		rc = agent_exit_from_cmpc(rv);
		goto out;
	}
	printf("cross-certificate\n");
	print_name("subject: ", X509_get_subject_name(cross));
	print_name("issuer:  ", X509_get_issuer_name(cross));
	rc = keep(o, tok, cross, &id);
out:
	X509_free(own);
	X509_free(cross);
	sk_X509_pop_free(chain, X509_free);
	/* The cmpc context and the key may hold the token's module: they go
	 * first, while it is still loaded. */
	cmpc_free(cmp);
	EVP_PKEY_free(key);
	tok_free(tok);
	return rc;
}
