/*
 * p11enroll enroll: generate a key pair on the token, get it certified
 * with a CMP ir whose POP the token signs, and store the certificate and
 * its CA chain next to the key.  A key generated here never outlives a
 * failed enrollment.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "agent/agent-cmd.h"

/* Everything the CMP exchange needs, from the enrollment: an ir is
 * always protected with PBM. */
static int setup_cmp(const conf_enrollment *e, cmpc_ctx *cmp)
{
	int rc;

	if (e->reference == NULL || e->secret_source == NULL ||
	    (e->subject == NULL && e->use_template != 1)) {
		log_msg(LOG_ERR, "enrollment '%s' lacks %s: set it in the configuration or on "
				 "the command line",
			e->name != NULL ? e->name : "(command line)",
			e->reference == NULL ? "the reference value (reference)" :
			e->subject == NULL   ? "the subject (subject)" :
					       "the MAC secret source (secret_source)");
		return EXIT_USAGE;
	}
	if ((rc = agent_cmp_setup(e, cmp)) != EXIT_OK)
		return rc;
	return agent_cmp_use_pbm(e, cmp, "the ir");
}

/* What the accept callback needs, and what it found. */
struct store_ctx {
	const conf_enrollment *e;
	tok_ctx *tok;
	const tok_id *id;
	int rc; /* EXIT_* of the storing */
};

/*
 * Stores the certificate and CA certificates while the CA still waits for
 * the certConf, so that a certificate the token cannot hold is rejected
 * rather than confirmed.  On failure the caller removes the key pair (and
 * whatever was stored with its CKA_ID).
 */
static int store_cb(X509 *cert, STACK_OF(X509) *cacerts, void *arg, char *why, size_t whylen)
{
	struct store_ctx *s = arg;
	char label[256];
	tok_rv rv;
	int i;

	if ((rv = tok_cert_store(s->tok, cert, s->id, s->e->label)) != TOK_OK) {
		snprintf(why, whylen, "storing it on the token failed: %s: %s", tok_strerror(rv),
			 tok_errmsg(s->tok));
		s->rc = agent_exit_from_tok(rv);
		return -1;
	}
	for (i = 0; i < sk_X509_num(cacerts); i++) {
		X509 *ca = sk_X509_value(cacerts, i);

		agent_ca_label(ca, label, sizeof(label));
		if ((rv = tok_cacert_store(s->tok, ca, label)) != TOK_OK) {
			snprintf(why, whylen, "storing CA certificate '%s' on the token failed: %s: %s",
				 label, tok_strerror(rv), tok_errmsg(s->tok));
			s->rc = agent_exit_from_tok(rv);
			return -1;
		}
	}
	s->rc = EXIT_OK;
	return 0;
}

/* The CMP layer only saw that signing failed; the token may say why. */
static void explain_key_failure(tok_ctx *tok)
{
	tok_info info;
	tok_rv rv = tok_get_info(tok, &info);

	if (rv != TOK_OK)
		agent_token_fail(tok, rv, "the token did not sign");
}

int agent_enroll(const conf_enrollment *e)
{
	tok_keyspec spec = { .alg = TOK_KEY_EC, .bits = 256 };
	const char *key_type = e->key_type != NULL ? e->key_type : "ec:P-256";
	cmpc_ctx *cmp = NULL;
	tok_ctx *tok = NULL;
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	STACK_OF(X509) *cacerts = NULL;
	struct store_ctx sc;
	tok_id id;
	int have_key = 0, alg, bits, rc;
	tok_rv trv;
	cmpc_rv crv;

	if (conf_parse_key_type(key_type, &alg, &bits) < 0) {
		log_msg(LOG_ERR, "key type '%s' is not one of ec:P-256, ec:P-384, rsa:2048, "
				 "rsa:3072, rsa:4096",
			key_type);
		return EXIT_USAGE;
	}
	spec.alg = (tok_keyalg)alg;
	spec.bits = bits;
	spec.allow_decrypt = e->allow_decrypt == 1;
	if (e->label == NULL) {
		log_msg(LOG_ERR, "no label for the key: set label or --label");
		return EXIT_USAGE;
	}
	/* Everything that can be checked without the token is checked first,
	 * so that a configuration error never leaves a key behind. */
	if ((cmp = cmpc_new()) == NULL)
		return EXIT_INTERNAL;
	if ((rc = setup_cmp(e, cmp)) != EXIT_OK)
		goto out;
	if ((rc = agent_token_open(e, &tok, 1)) != EXIT_OK)
		goto out;
	if ((rc = agent_cmp_tls_client(e, cmp, tok, NULL, NULL)) != EXIT_OK)
		goto out;
	if (e->use_template == 1) {
		cmpc_template t;

		memset(&t, 0, sizeof(t));
		rc = agent_template_fetch(e, tok, NULL, NULL, &t);
		if (rc == EXIT_OK)
			rc = agent_template_apply(e, &t, &spec, cmp);
		cmpc_template_clear(&t);
		if (rc != EXIT_OK)
			goto out;
	}

	if ((trv = tok_keygen(tok, &spec, e->label, &id)) != TOK_OK) {
		rc = agent_token_fail(tok, trv, "key generation on the token failed");
		goto out;
	}
	have_key = 1;
	{
		char hex[2 * TOK_ID_MAX + 1];

		agent_hex(id.id, id.len, hex, sizeof(hex));
		log_msg(LOG_INFO, "generated a %s key pair on the token, id %s", key_type, hex);
	}
	if ((trv = tok_key_get1_private(tok, &id, &key)) != TOK_OK) {
		rc = agent_token_fail(tok, trv, "cannot use the new key");
		goto out;
	}
	log_msg(LOG_INFO, "sending ir to %s", e->server);
	sc.e = e;
	sc.tok = tok;
	sc.id = &id;
	sc.rc = -1;
	cmpc_set_accept_cb(cmp, store_cb, &sc);
	if ((crv = cmpc_ir(cmp, key, &cert, &cacerts)) != CMPC_OK) {
		log_msg(LOG_ERR, "enrollment failed: %s: %s", cmpc_strerror(crv), cmpc_errmsg(cmp));
		log_openssl_errors();
		rc = sc.rc > 0 ? sc.rc : agent_exit_from_cmpc(crv);
		if (crv == CMPC_ERR_KEY)
			explain_key_failure(tok);
		goto out;
	}
	have_key = 0; /* from here on the key belongs to the certificate */
	if ((e->cert_out != NULL && agent_write_pem(e->cert_out, cert, NULL) < 0) ||
	    (e->chain_out != NULL && agent_write_pem(e->chain_out, NULL, cacerts) < 0))
		log_msg(LOG_WARNING, "the certificate is on the token, but a file copy failed");
	agent_print_cert("enrolled", e, id.id, id.len, e->label, cert);
	rc = EXIT_OK;
out:
	EVP_PKEY_free(key);
	if (have_key) {
		/* No orphan keys: the pair (and a certificate stored half-way) goes. */
		trv = tok_key_destroy(tok, &id, 1);
		if (trv != TOK_OK)
			agent_token_fail(tok, trv, "could not remove the new key pair after the "
						   "failure; delete it by hand");
		else
			log_msg(LOG_NOTICE, "the new key pair was removed from the token");
	}
	X509_free(cert);
	sk_X509_pop_free(cacerts, X509_free);
	/* The cmpc context may hold a token key (the signer): it goes first,
	 * while the module is still loaded. */
	cmpc_free(cmp);
	tok_free(tok);
	return rc;
}
