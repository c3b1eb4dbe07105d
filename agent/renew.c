/*
 * p11enroll renew: key update (kur).  The new key pair is generated on the
 * token under a temporary label, the request and certConf are signed with
 * the OLD key and certificate, and the old pair stays untouched until the
 * new certificate is confirmed and stored.  Only then do labels move and
 * the old pair go (or stay as "<label> (old)").  On any failure before that
 * the token ends as it began.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "agent/agent-cmd.h"

struct renew_store {
	tok_ctx *tok;
	const tok_id *id;
	const char *label;
	int rc;
};

/* Stores only the end-entity certificate while the CA waits for certConf;
 * CA certificates are added after success, so a failed kur adds nothing. */
static int store_new(X509 *cert, STACK_OF(X509) *cacerts, void *arg, char *why, size_t whylen)
{
	struct renew_store *s = arg;
	tok_rv rv;

	(void)cacerts;
	if ((rv = tok_cert_store(s->tok, cert, s->id, s->label)) != TOK_OK) {
		snprintf(why, whylen, "storing it on the token failed: %s: %s", tok_strerror(rv),
			 tok_errmsg(s->tok));
		s->rc = agent_exit_from_tok(rv);
		return -1;
	}
	s->rc = EXIT_OK;
	return 0;
}

/* A renewal without configured SANs asks for the old certificate's (the
 * certConf check then holds the CA to them); a template may still set others. */
static int keep_sans(cmpc_ctx *cmp, X509 *old_cert)
{
	GENERAL_NAMES *sans = X509_get_ext_d2i(old_cert, NID_subject_alt_name, NULL, NULL);
	cmpc_rv crv;

	if (sans == NULL)
		return EXIT_OK;
	crv = cmpc_set1_sans(cmp, sans);
	GENERAL_NAMES_free(sans);
	if (crv != CMPC_OK) {
		log_msg(LOG_ERR, "cannot request the old certificate's names: %s: %s",
			cmpc_strerror(crv), cmpc_errmsg(cmp));
		return agent_exit_from_cmpc(crv);
	}
	return EXIT_OK;
}

/* The old key's type and size, for a renewal that keeps them. */
static void spec_from_cert(X509 *cert, tok_keyspec *spec)
{
	EVP_PKEY *pub = X509_get0_pubkey(cert);

	if (pub == NULL)
		return;
	if (EVP_PKEY_is_a(pub, "RSA")) {
		int bits = EVP_PKEY_get_bits(pub);

		spec->alg = TOK_KEY_RSA;
		spec->bits = bits >= 4096 ? 4096 : bits >= 3072 ? 3072 : 2048;
	} else if (EVP_PKEY_is_a(pub, "EC")) {
		spec->alg = TOK_KEY_EC;
		spec->bits = EVP_PKEY_get_bits(pub) > 256 ? 384 : 256;
	}
}

int agent_renew_run(const conf_enrollment *e, const agent_pending *resume, int abandon)
{
	tok_keyspec spec = { .alg = TOK_KEY_EC, .bits = 256 };
	char *new_label = NULL, hex[2 * TOK_ID_MAX + 1];
	cmpc_ctx *cmp = NULL;
	tok_ctx *tok = NULL;
	EVP_PKEY *old_key = NULL, *new_key = NULL;
	X509 *old_cert = NULL, *cert = NULL;
	STACK_OF(X509) *cacerts = NULL;
	cmpc_template tmpl;
	struct renew_store sc;
	pending_saver ps;
	tok_id old_id, new_id;
	int have_new = 0, finished = 0, alg, bits, rc;
	tok_rv trv;
	cmpc_rv crv;

	memset(&tmpl, 0, sizeof(tmpl));
	memset(&ps, 0, sizeof(ps));
	sc.rc = -1; /* nothing stored */
	if (resume == NULL && (rc = pending_refuse_new(e)) != EXIT_OK)
		return rc;
	if (e->label == NULL) {
		log_msg(LOG_ERR, "no label: renew finds the enrollment's certificate by its label; "
				 "set label or --label");
		return EXIT_USAGE;
	}
	if (e->key_type != NULL && conf_parse_key_type(e->key_type, &alg, &bits) < 0) {
		log_msg(LOG_ERR, "key type '%s' is not one of ec:P-256, ec:P-384, rsa:2048, "
				 "rsa:3072, rsa:4096",
			e->key_type);
		return EXIT_USAGE;
	}
	if (agent_has_signer(e))
		log_msg(LOG_NOTICE, "renew signs with the old key and certificate; the configured "
				    "signer is not used");
	if ((new_label = agent_label_with(e->label, " (new)")) == NULL ||
	    (cmp = agent_cmpc_new()) == NULL) {
		rc = EXIT_INTERNAL;
		goto out;
	}
	/* Never PBM for kur: no secret is given to this context at all. */
	if ((rc = agent_cmp_setup(e, cmp)) != EXIT_OK)
		goto out;
	if ((rc = agent_token_open(e, &tok, 1)) != EXIT_OK)
		goto out;
	if (resume != NULL && (rc = pending_check_token(tok, resume)) != EXIT_OK)
		goto out;
	if (resume == NULL && (rc = agent_recover_run(e, tok, &finished)) != EXIT_OK)
		goto out;
	/* A killed run got its certificate (the CA may have its certConf): that
	 * run is finished, and no second certificate is requested. */
	if (finished) {
		rc = agent_recover_report(e, tok, "renewed");
		goto out;
	}
	if ((trv = tok_find_cert(tok, e->label, NULL, &old_id, &old_cert)) != TOK_OK) {
		rc = agent_token_fail(tok, trv, "cannot find the certificate to renew");
		if (trv == TOK_ERR_NOT_FOUND)
			log_msg(LOG_ERR, "renew needs a certificate labelled '%s' on the token: run "
					 "p11enroll enroll first",
				e->label);
		goto out;
	}
	if ((trv = tok_key_get1_private(tok, &old_id, &old_key)) != TOK_OK) {
		rc = agent_token_fail(tok, trv, "cannot use the key of the certificate to renew");
		goto out;
	}
	agent_hex(old_id.id, old_id.len, hex, sizeof(hex));
	log_msg(LOG_INFO, "renewing the certificate labelled '%s', key id %s", e->label, hex);
	/* Before any exchange and before the new key exists. */
	if ((rc = agent_cmp_tls_client(e, cmp, tok, old_cert, old_key)) != EXIT_OK)
		goto out;
	if (e->key_type != NULL) {
		spec.alg = (tok_keyalg)alg;
		spec.bits = bits;
	} else {
		spec_from_cert(old_cert, &spec);
	}
	spec.allow_decrypt = e->allow_decrypt == 1;
	if (e->san == NULL && (rc = keep_sans(cmp, old_cert)) != EXIT_OK)
		goto out;
	if (e->use_template == 1) {
		if ((rc = agent_template_fetch(e, tok, old_cert, old_key, &tmpl)) != EXIT_OK ||
		    (rc = agent_template_apply(e, &tmpl, &spec, cmp)) != EXIT_OK)
			goto out;
	}
	if ((crv = cmpc_set1_signer(cmp, old_cert, old_key, NULL)) != CMPC_OK) {
		log_msg(LOG_ERR, "cannot sign with the old key: %s: %s", cmpc_strerror(crv),
			cmpc_errmsg(cmp));
		rc = agent_exit_from_cmpc(crv);
		goto out;
	}
	if (abandon) {
		rc = pending_abandon(e, cmp, tok, resume);
		goto out;
	}

	if (resume != NULL) {
		memcpy(new_id.id, resume->key_id, resume->key_id_len);
		new_id.len = resume->key_id_len;
		have_new = resume->key_generated;
		agent_hex(new_id.id, new_id.len, hex, sizeof(hex));
		log_msg(LOG_INFO, "resuming the pending kur for the new key pair, id %s", hex);
	} else {
		if ((trv = tok_keygen(tok, &spec, new_label, &new_id)) != TOK_OK) {
			rc = agent_token_fail(tok, trv,
					      "generating the new key pair on the token failed");
			goto out;
		}
		have_new = 1;
		agent_hex(new_id.id, new_id.len, hex, sizeof(hex));
		log_msg(LOG_INFO, "generated the new key pair, id %s, label '%s'", hex, new_label);
	}
	if ((trv = tok_key_get1_private(tok, &new_id, &new_key)) != TOK_OK) {
		rc = agent_token_fail(tok, trv, "cannot use the new key");
		/* The pending transaction owns its key: a failure to read it
		 * (the token busy, out of memory) must not delete it. */
		if (resume != NULL) {
			pending_key_unusable(e, trv, "new key pair");
			have_new = 0;
		}
		goto out;
	}
	pending_saver_init(&ps, e, tok, &new_id, 1, resume);
	cmpc_set_pending_cb(cmp, pending_saver_cb, &ps);
	sc.tok = tok;
	sc.id = &new_id;
	sc.label = new_label;
	sc.rc = -1;
	cmpc_set_accept_cb(cmp, store_new, &sc);
	if (resume != NULL) {
		log_msg(LOG_INFO, "polling %s for the pending kur", e->server);
		crv = cmpc_resume(cmp, &resume->p, new_key, old_cert, NULL, &cert, &cacerts);
	} else {
		log_msg(LOG_INFO, "sending kur to %s, signed with the old key", e->server);
		crv = cmpc_certreq(cmp, CMPC_REQ_KUR, new_key, old_cert, NULL, &cert, &cacerts);
	}
	if (crv != CMPC_OK) {
		log_msg(LOG_ERR, "key update failed%s%s%s: %s: %s",
			*cmpc_transaction_id(cmp) ? " (transaction " : "", cmpc_transaction_id(cmp),
			*cmpc_transaction_id(cmp) ? ")" : "", cmpc_strerror(crv), cmpc_errmsg(cmp));
		log_openssl_errors();
		rc = sc.rc > 0 ? sc.rc : agent_exit_from_cmpc(crv);
		if (agent_keep_unconfirmed(e, crv, sc.rc == EXIT_OK)) {
			/* Kept for recovery to adopt; no transaction is left. */
			(void)pending_after(&ps, cmp, CMPC_ERR_CERT);
			have_new = 0;
		} else if (pending_after(&ps, cmp, crv)) {
			have_new = 0; /* kept for `p11enroll resume` */
		}
		goto out;
	}
	(void)pending_after(&ps, cmp, CMPC_OK);
	have_new = 0; /* the CA confirmed it: from here on the new pair stays */

	rc = agent_swap_in(e, tok, &new_id, &old_id, "renewed", cert, cacerts);
	printf("  transaction: %s\n", cmpc_transaction_id(cmp));
out:
	EVP_PKEY_free(new_key);
	if (have_new) {
		/* The token ends as it began: the new pair and its certificate go. */
		trv = tok_key_destroy(tok, &new_id, 1);
		if (trv != TOK_OK)
			agent_leftover_fail(e, tok, trv, sc.rc == EXIT_OK);
		else
			log_msg(LOG_NOTICE, "the new key pair was removed; the old key and certificate "
					    "are unchanged");
	}
	cmpc_template_clear(&tmpl);
	EVP_PKEY_free(old_key);
	X509_free(old_cert);
	X509_free(cert);
	sk_X509_pop_free(cacerts, X509_free);
	/* The cmpc context may hold a token key (the signer): it goes first,
	 * while the module is still loaded. */
	cmpc_free(cmp);
	tok_free(tok);
	free(new_label);
	return rc;
}

int agent_renew(const conf_enrollment *e)
{
	return agent_renew_run(e, NULL, 0);
}
