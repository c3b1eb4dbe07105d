/*
 * p11enroll enroll / cr / p10cr: a new key pair on the token, certified
 * with an ir (PBM; the token signs the POP), a cr protected by a signature,
 * or a PKCS#10 request signed by the new key on the token (p10cr, PBM or a
 * signer); the certificate and its CA chain are stored next to the key.  A
 * key generated here never outlives a failed request.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "agent/agent-cmd.h"

struct store_ctx {
	tok_ctx *tok;
	const tok_id *id;
	const char *label;
	int rc;
	/* CA certificates this run put on the token: taken off again when the
	 * enrollment fails after all (a failed certConf, say). */
	STACK_OF(X509) *created;
};

static int store_cb(X509 *cert, STACK_OF(X509) *cacerts, void *arg, char *why, size_t whylen)
{
	struct store_ctx *s = arg;
	char label[256];
	tok_rv rv;
	int i, created;

	if ((rv = tok_cert_store(s->tok, cert, s->id, s->label)) != TOK_OK) {
		snprintf(why, whylen, "storing it on the token failed: %s: %s", tok_strerror(rv),
			 tok_errmsg(s->tok));
		s->rc = agent_exit_from_tok(rv);
		return -1;
	}
	for (i = 0; i < sk_X509_num(cacerts); i++) {
		X509 *ca = sk_X509_value(cacerts, i);

		if (agent_ca_label(ca, label, sizeof(label)) < 0) {
			snprintf(why, whylen, "naming a CA certificate for the token failed "
					      "(out of memory?)");
			s->rc = EXIT_INTERNAL;
			return -1;
		}
		if ((rv = tok_cacert_store(s->tok, ca, label, &created)) != TOK_OK) {
			snprintf(why, whylen, "storing CA certificate '%s' on the token failed: %s: %s",
				 label, tok_strerror(rv), tok_errmsg(s->tok));
			s->rc = agent_exit_from_tok(rv);
			return -1;
		}
		if (created && s->created != NULL && X509_up_ref(ca) &&
		    !sk_X509_push(s->created, ca))
			X509_free(ca);
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

int agent_request_run(const conf_enrollment *e, cmpc_req_type type, const agent_pending *resume,
		      int abandon)
{
	const char *cmd = type == CMPC_REQ_IR ? "enrollment" : type == CMPC_REQ_CR ? "cr" : "p10cr";
	tok_keyspec spec = { .alg = TOK_KEY_EC, .bits = 256 };
	cmpc_ctx *cmp = NULL;
	tok_ctx *tok = NULL;
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	STACK_OF(X509) *cacerts = NULL;
	cmpc_template tmpl;
	struct store_ctx sc = { 0 };
	int i;
	pending_saver ps;
	tok_id id, old_id;
	char *new_label = NULL;
	X509 *old_cert = NULL;
	int have_key = 0, have_old = 0, finished = 0, alg, bits, rc;
	char hex[2 * TOK_ID_MAX + 1];
	tok_rv trv;
	cmpc_rv crv;

	memset(&tmpl, 0, sizeof(tmpl));
	memset(&ps, 0, sizeof(ps));
	sc.rc = -1; /* nothing stored */
	if (resume == NULL && (rc = pending_refuse_new(e)) != EXIT_OK)
		return rc;
	if (e->key_type != NULL) {
		if (conf_parse_key_type(e->key_type, &alg, &bits) < 0) {
			log_msg(LOG_ERR, "key type '%s' is not one of ec:P-256, ec:P-384, rsa:2048, "
					 "rsa:3072, rsa:4096",
				e->key_type);
			return EXIT_USAGE;
		}
		spec.alg = (tok_keyalg)alg;
		spec.bits = bits;
	}
	spec.allow_decrypt = e->allow_decrypt == 1;
	if (e->label == NULL) {
		log_msg(LOG_ERR, "no label for the key: set label or --label");
		return EXIT_USAGE;
	}
	if (e->key_id != NULL && conf_parse_hex(e->key_id, id.id, sizeof(id.id), &id.len) < 0) {
		log_msg(LOG_ERR, "key_id '%.80s' is not a CKA_ID in hex (an even number of hex "
				 "digits, at most %d bytes)",
			e->key_id, TOK_ID_MAX);
		return EXIT_USAGE;
	}
	if (e->subject == NULL && e->use_template != 1) {
		log_msg(LOG_ERR, "enrollment '%s' lacks the subject (subject): set it in the "
				 "configuration or on the command line",
			e->name != NULL ? e->name : "(command line)");
		return EXIT_USAGE;
	}
	/* A generated pair carries "LABEL (new)" until the CA confirmed its
	 * certificate (agent_recover finishes an interrupted run). */
	if ((new_label = agent_label_with(e->label, " (new)")) == NULL)
		return EXIT_INTERNAL;
	/* Everything that can be checked before a key exists is checked first. */
	if ((cmp = agent_cmpc_new()) == NULL) {
		free(new_label);
		return EXIT_INTERNAL;
	}
	if ((rc = agent_cmp_setup(e, cmp)) != EXIT_OK)
		goto out;
	/* An ir is always protected with PBM: its secret is checked before the
	 * token is touched. */
	if (type == CMPC_REQ_IR && (rc = agent_cmp_use_pbm(e, cmp, "the ir")) != EXIT_OK)
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
		rc = agent_recover_report(e, tok, "enrolled");
		goto out;
	}
	if ((rc = agent_cmp_tls_client(e, cmp, tok, NULL, NULL)) != EXIT_OK)
		goto out;
	if (type != CMPC_REQ_IR &&
	    (rc = agent_cmp_protect(e, cmp, tok, type == CMPC_REQ_CR,
				    type == CMPC_REQ_CR ? "a cr" : "the p10cr")) != EXIT_OK)
		goto out;
	if (abandon) {
		rc = pending_abandon(e, cmp, tok, resume);
		goto out;
	}
	if (e->use_template == 1) {
		if ((rc = agent_template_fetch(e, tok, NULL, NULL, &tmpl)) != EXIT_OK ||
		    (rc = agent_template_apply(e, &tmpl, &spec, cmp)) != EXIT_OK)
			goto out;
	}
	if (resume != NULL) {
		memcpy(id.id, resume->key_id, resume->key_id_len);
		id.len = resume->key_id_len;
		have_key = resume->key_generated;
		agent_hex(id.id, id.len, hex, sizeof(hex));
		log_msg(LOG_INFO, "resuming the pending %s for the key pair with id %s", cmd, hex);
	} else if (e->key_id != NULL) {
		/* The user's key: never generated nor removed here. */
		log_msg(LOG_INFO, "certifying the existing key pair with id %s", e->key_id);
	} else {
		if ((trv = tok_keygen(tok, &spec, new_label, &id)) != TOK_OK) {
			rc = agent_token_fail(tok, trv, "key generation on the token failed");
			goto out;
		}
		have_key = 1;
		agent_hex(id.id, id.len, hex, sizeof(hex));
		log_msg(LOG_INFO, "generated a key pair on the token, id %s", hex);
	}
	if ((trv = tok_key_get1_private(tok, &id, &key)) != TOK_OK) {
		rc = agent_token_fail(tok, trv,
				      resume != NULL ? "cannot use the key of the pending request"
				      : e->key_id != NULL ? "cannot use the key pair with that key_id"
							  : "cannot use the new key");
		/* The pending transaction owns its key: a failure to read it
		 * (the token busy, out of memory) must not delete it. */
		if (resume != NULL) {
			pending_key_unusable(e, trv, "key pair");
			have_key = 0;
		}
		goto out;
	}
	pending_saver_init(&ps, e, tok, &id, have_key, resume);
	cmpc_set_pending_cb(cmp, pending_saver_cb, &ps);
	sc.tok = tok;
	sc.id = &id;
	sc.label = have_key ? new_label : e->label;
	sc.rc = -1;
	sc.created = sk_X509_new_null();
	cmpc_set_accept_cb(cmp, store_cb, &sc);
	/* For p10cr the protocol layer makes the CSR from the subject and SANs
	 * set up above (template included) and the token signs it. */
	if (resume != NULL) {
		log_msg(LOG_INFO, "polling %s for the pending %s", e->server, cmd);
		crv = cmpc_resume(cmp, &resume->p, key, NULL, NULL, &cert, &cacerts);
	} else {
		log_msg(LOG_INFO, "sending %s to %s", cmd, e->server);
		crv = cmpc_certreq(cmp, type, key, NULL, NULL, &cert, &cacerts);
	}
	if (crv != CMPC_OK) {
		log_msg(LOG_ERR, "%s failed%s%s%s: %s: %s", cmd,
			*cmpc_transaction_id(cmp) ? " (transaction " : "", cmpc_transaction_id(cmp),
			*cmpc_transaction_id(cmp) ? ")" : "", cmpc_strerror(crv), cmpc_errmsg(cmp));
		log_openssl_errors();
		rc = sc.rc > 0 ? sc.rc : agent_exit_from_cmpc(crv);
		if (crv == CMPC_ERR_KEY)
			explain_key_failure(tok);
		if (agent_keep_unconfirmed(e, crv, sc.rc == EXIT_OK)) {
			/* Kept for recovery to adopt; no transaction is left. */
			(void)pending_after(&ps, cmp, CMPC_ERR_CERT);
			have_key = 0;
		} else if (pending_after(&ps, cmp, crv)) {
			have_key = 0; /* kept for `p11enroll resume` */
		}
		goto out;
	}
	(void)pending_after(&ps, cmp, CMPC_OK);
	if (!have_key) {
		/* The user's key pair (key_id): certified where it is. */
		if ((e->cert_out != NULL && agent_write_pem(e->cert_out, cert, NULL) < 0) ||
		    (e->chain_out != NULL && agent_write_pem(e->chain_out, NULL, cacerts) < 0))
			log_msg(LOG_WARNING, "the certificate is on the token, but a file copy "
					     "failed");
		agent_print_cert("enrolled", e, id.id, id.len, e->label, cert);
		rc = EXIT_OK;
		goto out;
	}
	have_key = 0;
	/* A pair the enrollment had before is replaced, as by renew. */
	have_old = tok_find_cert(tok, e->label, NULL, &old_id, &old_cert) == TOK_OK &&
		   !(old_id.len == id.len && memcmp(old_id.id, id.id, id.len) == 0);
	rc = agent_swap_in(e, tok, &id, have_old ? &old_id : NULL, "enrolled", cert, cacerts);
	printf("  transaction: %s\n", cmpc_transaction_id(cmp));
out:
	EVP_PKEY_free(key);
	if (have_key) {
		trv = tok_key_destroy(tok, &id, 1);
		if (trv != TOK_OK)
			agent_leftover_fail(e, tok, trv, sc.rc == EXIT_OK);
		else
			log_msg(LOG_NOTICE, "the new key pair was removed from the token");
		for (i = 0; i < sk_X509_num(sc.created); i++)
			if ((trv = tok_cacert_destroy(tok, sk_X509_value(sc.created, i))) != TOK_OK)
				agent_token_fail(tok, trv, "could not remove a CA certificate stored "
							   "by the failed run");
	}
	sk_X509_pop_free(sc.created, X509_free);
	cmpc_template_clear(&tmpl);
	free(new_label);
	X509_free(old_cert);
	X509_free(cert);
	sk_X509_pop_free(cacerts, X509_free);
	/* The cmpc context may hold a token key (the signer): it goes first,
	 * while the module is still loaded. */
	cmpc_free(cmp);
	tok_free(tok);
	return rc;
}

int agent_enroll(const conf_enrollment *e)
{
	return agent_request_run(e, CMPC_REQ_IR, NULL, 0);
}

int agent_cr(const conf_enrollment *e)
{
	return agent_request_run(e, CMPC_REQ_CR, NULL, 0);
}

int agent_p10cr(const conf_enrollment *e)
{
	return agent_request_run(e, CMPC_REQ_P10CR, NULL, 0);
}
