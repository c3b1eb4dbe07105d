/*
 * p11enroll genm: general messages to the CA: its CA certificates, a root
 * CA key update, its certificate request template, its current CRLs.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "agent/agent-cmd.h"

static agent_rc cmp_fail(cmpc_ctx *cmp, cmpc_rv rv, const char *what)
{
	/* stored for the CA: agent_stored_end says what next */
	if (rv == CMPC_ERR_WAITING)
		return EXIT_WAITING;
	log_msg(LOG_ERR, "%s: %s: %s", what, cmpc_strerror(rv), cmpc_errmsg(cmp));
	log_openssl_errors();
	return agent_exit_from_cmpc(rv);
}

static void print_name(const char *what, X509 *cert)
{
	char buf[512];

	X509_NAME_oneline(X509_get_subject_name(cert), buf, sizeof(buf));
	printf("  %s%s\n", what, buf);
}

static agent_rc ca_certs(const conf_enrollment *e, const agent_cmd_opts *o, cmpc_ctx *cmp,
			 tok_ctx *tok)
{
	STACK_OF(X509) *certs = NULL, *made = NULL;
	char label[256];
	cmpc_rv rv;
	tok_rv trv;
	agent_rc rc = EXIT_OK;
	int i, unverified = 0;

	(void)e;
	if ((rv = cmpc_genm_ca_certs(cmp, &certs)) != CMPC_OK)
		return cmp_fail(cmp, rv, "asking the CA for its CA certificates failed");
	printf("CA certificates: %d\n", sk_X509_num(certs));
	/* The answer is the CA's word only: what goes onto the token, where
	 * applications take it for a trust anchor, must chain to trusted. */
	for (i = 0; i < sk_X509_num(certs); i++) {
		print_name("", sk_X509_value(certs, i));
		if ((rv = cmpc_verify_under_anchors(cmp, sk_X509_value(certs, i), certs)) == CMPC_OK)
			continue;
		if (rv != CMPC_ERR_CERT) {
			sk_X509_pop_free(certs, X509_free);
			return cmp_fail(cmp, rv, "verifying the CA certificates failed");
		}
		printf("    NOT verified: does not chain to the trust anchors\n");
		log_msg(LOG_WARNING, "CA certificate %d of %d: %s", i + 1, sk_X509_num(certs),
			cmpc_errmsg(cmp));
		unverified++;
	}
	if (unverified > 0 && tok != NULL) {
		log_msg(LOG_ERR, "refusing to store the CA certificates on the token: %d of them do "
				 "not chain to the trust anchors (trusted); check them out of band "
				 "and add their root to the trust anchors first",
			unverified);
		sk_X509_pop_free(certs, X509_free);
		return EXIT_CERT;
	}
	if (o->ca_certs != NULL) {
		if (agent_write_pem(o->ca_certs, NULL, certs) < 0)
			rc = EXIT_INTERNAL;
		else if (log_verbosity() >= 0)
			printf("written to %s\n", o->ca_certs);
	}
	/* All or none: on a failure the certificates this run added go again. */
	if (tok != NULL && rc == EXIT_OK && (made = sk_X509_new_null()) == NULL)
		rc = EXIT_INTERNAL;
	for (i = 0; tok != NULL && rc == EXIT_OK && i < sk_X509_num(certs); i++) {
		X509 *ca = sk_X509_value(certs, i);
		int created = 0;

		if (agent_ca_label(ca, label, sizeof(label)) < 0) {
			rc = EXIT_INTERNAL;
		} else if ((trv = tok_cacert_store(tok, ca, label, &created)) != TOK_OK) {
			rc = agent_token_fail(tok, trv, "storing a CA certificate on the token failed");
		} else if (created && !X509_up_ref(ca)) {
			rc = EXIT_INTERNAL;
		} else if (created && !sk_X509_push(made, ca)) {
			X509_free(ca);
			rc = EXIT_INTERNAL;
		}
		if (rc == EXIT_INTERNAL && created)
			(void)tok_cacert_destroy(tok, ca);
	}
	if (rc == EXIT_INTERNAL)
		log_msg(LOG_ERR, "storing the CA certificates on the token failed: out of memory");
	for (i = 0; rc != EXIT_OK && i < sk_X509_num(made); i++)
		if ((trv = tok_cacert_destroy(tok, sk_X509_value(made, i))) != TOK_OK)
			agent_token_fail(tok, trv, "removing a CA certificate stored before the failure failed");
	sk_X509_pop_free(made, X509_free);
	if (tok != NULL && rc == EXIT_OK && log_verbosity() >= 0)
		printf("stored on the token\n");
	sk_X509_pop_free(certs, X509_free);
	return rc;
}


static agent_rc root_update(const conf_enrollment *e, const agent_cmd_opts *o, cmpc_ctx *cmp)
{
	X509 *old_root, *new_root = NULL, *link = NULL;
	cmpc_rv rv;
	agent_rc rc = EXIT_OK;

	if ((old_root = agent_read_cert(e->trusted, "the trust anchors", "trusted must name the root")) == NULL)
		return EXIT_USAGE;
	if ((rv = cmpc_genm_root_update(cmp, old_root, &new_root, &link)) != CMPC_OK) {
		rc = cmp_fail(cmp, rv, "asking the CA for a root CA update failed");
		goto out;
	}
	print_name("current root: ", old_root);
	if (new_root == NULL) {
		printf("no root CA update\n");
		goto out;
	}
	printf("root CA update (newWithOld verified under the current root)\n");
	print_name("new root:     ", new_root);
	if (o->out != NULL) {
		if (agent_write_pem(o->out, new_root, NULL) < 0)
			rc = EXIT_INTERNAL;
		else if (log_verbosity() >= 0)
			printf("new root written to %s; add it to the trust anchors when you "
			       "trust it\n",
			       o->out);
	}
out:
	X509_free(old_root);
	X509_free(new_root);
	X509_free(link);
	return rc;
}

static int put_crls(FILE *f, void *arg)
{
	STACK_OF(X509_CRL) *list = arg;
	int i;

	for (i = 0; i < sk_X509_CRL_num(list); i++)
		if (!PEM_write_X509_CRL(f, sk_X509_CRL_value(list, i)))
			return -1;
	return 0;
}

static agent_rc crls(const agent_cmd_opts *o, cmpc_ctx *cmp)
{
	STACK_OF(X509_CRL) *list = NULL;
	char err[4400];
	cmpc_rv rv;
	agent_rc rc = EXIT_OK;

	if ((rv = cmpc_genm_crls(cmp, NULL, &list)) != CMPC_OK)
		return cmp_fail(cmp, rv, "asking the CA for its CRLs failed");
	printf("CRLs: %d\n", sk_X509_CRL_num(list));
	if (agent_atomic_write(o->crls, AGENT_MODE_KEEP, put_crls, list, err, sizeof(err)) < 0) {
		log_msg(LOG_ERR, "%s", err);
		log_openssl_errors();
		rc = EXIT_INTERNAL;
	} else if (log_verbosity() >= 0) {
		printf("written to %s\n", o->crls);
	}
	sk_X509_CRL_pop_free(list, X509_CRL_free);
	return rc;
}

agent_rc agent_genm(const conf_enrollment *e, const agent_cmd_opts *o)
{
	cmpc_ctx *cmp = NULL;
	tok_ctx *tok = NULL;
	cmpc_template t;
	int n = (o->ca_certs != NULL) + o->root_update + o->template_ + (o->crls != NULL);
	agent_stored sx = { .kind = "genm", .cmd = "genm" };
	agent_rc rc;
	cmpc_rv rv;

	memset(&t, 0, sizeof(t));
	if (o->abandon)
		return agent_stored_abandon(e, &sx);
	if (n != 1) {
		log_msg(LOG_ERR, "genm asks one thing at a time: give exactly one of --ca-certs FILE, "
				 "--root-update, --template, --crls FILE");
		return EXIT_USAGE;
	}
	if (o->store && o->ca_certs == NULL) {
		log_msg(LOG_ERR, "--store goes with --ca-certs");
		return EXIT_USAGE;
	}
	if ((cmp = agent_cmpc_new()) == NULL)
		return EXIT_INTERNAL;
	if ((rc = agent_cmp_setup(e, cmp)) != EXIT_OK)
		goto out;
	if ((o->store || e->signer != NULL || e->tls_client != NULL) &&
	    (rc = agent_token_open(e, &tok, 1)) != EXIT_OK)
		goto out;
	if ((rc = agent_cmp_tls_client(e, cmp, tok, NULL, NULL)) != EXIT_OK)
		goto out;
	if ((rc = agent_cmp_protect(e, cmp, tok, 0, "the genm")) != EXIT_OK)
		goto out;
	snprintf(sx.asks, sizeof(sx.asks), "%s",
		 o->ca_certs != NULL ? "ca-certs"
		 : o->root_update    ? "root-update"
		 : o->template_	     ? "template"
				     : "crls");
	if ((rc = agent_stored_begin(e, o, &sx, cmp)) != EXIT_OK)
		goto out;
	if (!sx.used)
		log_msg(LOG_INFO, "sending genm to %s", e->server);
	if (o->ca_certs != NULL) {
		rc = ca_certs(e, o, cmp, o->store ? tok : NULL);
	} else if (o->root_update) {
		rc = root_update(e, o, cmp);
	} else if (o->template_) {
		if ((rv = cmpc_genm_cert_template(cmp, &t)) != CMPC_OK)
			rc = cmp_fail(cmp, rv, "asking the CA for its certificate template failed");
		else
			agent_template_print(&t);
	} else {
		rc = crls(o, cmp);
	}
	(void)agent_stored_end(e, &sx, cmp, rc, &rc);
out:
	cmpc_template_clear(&t);
	/* The cmpc context may hold a token key (the signer): it goes first,
	 * while the module is still loaded. */
	cmpc_free(cmp);
	tok_free(tok);
	return rc;
}
