/*
 * The cmpc context of every command that talks CMP: transport, trust,
 * header names and the protection (PBM or a signature with a token or
 * software key), and the CA's certReqTemplate.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "agent/agent-cmd.h"

static const char *ename(const conf_enrollment *e)
{
	return e->name != NULL ? e->name : "(command line)";
}

static agent_rc cmp_fail(cmpc_ctx *cmp, cmpc_rv rv, const char *what)
{
	log_msg(LOG_ERR, "%s: %s: %s", what, cmpc_strerror(rv), cmpc_errmsg(cmp));
	log_openssl_errors();
	return agent_exit_from_cmpc(rv);
}

static agent_rc set_name(cmpc_ctx *cmp, const char *value, const char *key,
			 cmpc_rv (*set)(cmpc_ctx *, const X509_NAME *))
{
	char err[512], what[64];
	X509_NAME *n;
	cmpc_rv rv;

	if (value == NULL)
		return EXIT_OK;
	if ((n = conf_parse_subject(value, err, sizeof(err))) == NULL) {
		log_msg(LOG_ERR, "%s: %s", key, err);
		return EXIT_USAGE;
	}
	rv = set(cmp, n);
	X509_NAME_free(n);
	snprintf(what, sizeof(what), "setting the %s name", key);
	return rv == CMPC_OK ? EXIT_OK : cmp_fail(cmp, rv, what);
}

agent_rc agent_cmp_setup(const conf_enrollment *e, cmpc_ctx *cmp)
{
	char err[512];
	X509_NAME *subj = NULL;
	GENERAL_NAMES *sans = NULL;
	STACK_OF(X509_EXTENSION) *exts = NULL;
	int owf = 0, mac = 0;
	agent_rc rc;
	cmpc_rv rv;

	if (e->server == NULL || e->trusted == NULL) {
		log_msg(LOG_ERR, "enrollment '%s' lacks %s: set it in the configuration or on the "
				 "command line",
			ename(e),
			e->server == NULL ? "the server URL (server)" : "the trust anchors (trusted)");
		return EXIT_USAGE;
	}
	if (e->pbm_owf != NULL && conf_parse_pbm_owf(e->pbm_owf, &owf) < 0) {
		log_msg(LOG_ERR, "pbm_owf '%s' is not one of sha256, sha384, sha512", e->pbm_owf);
		return EXIT_USAGE;
	}
	if (e->pbm_mac != NULL && conf_parse_pbm_mac(e->pbm_mac, &mac) < 0) {
		log_msg(LOG_ERR, "pbm_mac '%s' is not one of hmac-sha256, hmac-sha384, hmac-sha512",
			e->pbm_mac);
		return EXIT_USAGE;
	}
	cmpc_set_log_cb(cmp, agent_cmp_log, NULL);
	if ((rc = agent_spool_apply(e, cmp)) != EXIT_OK)
		return rc;
	agent_offline_apply(cmp); /* wins over the server's transport */
	cmpc_set_timeouts(cmp, e->connect_timeout > 0 ? e->connect_timeout : 0,
			  e->timeout > 0 ? e->timeout : 0, e->total_timeout > 0 ? e->total_timeout : 0);
	if (e->max_response_size > 0)
		cmpc_set_max_response(cmp, (size_t)e->max_response_size);
	cmpc_set_implicit_confirm(cmp, e->implicit_confirm == 1);
	cmpc_set_unprotected_errors(cmp, e->unprotected_errors == 1);
	cmpc_set_any_response_signer(cmp, e->allow_any_response_signer == 1);
	if (e->allow_any_response_signer == 1)
		log_msg(LOG_WARNING, "allow_any_response_signer is set: any certificate that "
				     "chains to the anchors may speak for the CA");
	if ((rv = cmpc_set1_server(cmp, e->server)) != CMPC_OK ||
	    (rv = cmpc_set1_tls_trust(cmp, e->tls_trusted)) != CMPC_OK ||
	    (rv = cmpc_set1_proxy(cmp, e->proxy, e->no_proxy)) != CMPC_OK ||
	    (rv = cmpc_load_trusted(cmp, e->trusted)) != CMPC_OK ||
	    (e->srv_trusted != NULL && (rv = cmpc_load_srv_trusted(cmp, e->srv_trusted)) != CMPC_OK) ||
	    ((owf != 0 || mac != 0 || e->pbm_iterations > 0) &&
	     (rv = cmpc_set_pbm_params(cmp, owf, mac,
				       e->pbm_iterations > 0 ? e->pbm_iterations : 10000)) !=
		 CMPC_OK) ||
	    (e->cert_profile != NULL &&
	     (rv = cmpc_set1_cert_profile(cmp, e->cert_profile)) != CMPC_OK))
		return cmp_fail(cmp, rv, "setting up the CMP exchange failed");
	if (e->srv_cert != NULL) {
		X509 *srv = agent_read_cert(e->srv_cert, "srv_cert",
					    "give the CMP server's certificate in PEM");

		if (srv == NULL)
			return EXIT_USAGE;
		rv = cmpc_set1_srv_cert(cmp, srv);
		X509_free(srv);
		if (rv != CMPC_OK)
			return cmp_fail(cmp, rv, "setting the pinned server certificate failed");
	}
	if ((rc = set_name(cmp, e->sender, "sender", cmpc_set1_sender)) != EXIT_OK ||
	    (rc = set_name(cmp, e->recipient, "recipient", cmpc_set1_recipient)) != EXIT_OK ||
	    (rc = set_name(cmp, e->expected_sender, "expected sender",
			   cmpc_set1_expected_sender)) != EXIT_OK)
		return rc;
	if ((e->subject != NULL && (subj = conf_parse_subject(e->subject, err, sizeof(err))) == NULL) ||
	    (e->san != NULL && (sans = conf_parse_sans(e->san, err, sizeof(err))) == NULL)) {
		log_msg(LOG_ERR, "%s", err);
		X509_NAME_free(subj);
		return EXIT_USAGE;
	}
	if (conf_request_extensions(e, &exts, err, sizeof(err)) < 0) {
		log_msg(LOG_ERR, "%s", err);
		X509_NAME_free(subj);
		GENERAL_NAMES_free(sans);
		return EXIT_USAGE;
	}
	rc = EXIT_OK;
	if ((subj != NULL && (rv = cmpc_set1_subject(cmp, subj)) != CMPC_OK) ||
	    (sans != NULL && (rv = cmpc_set1_sans(cmp, sans)) != CMPC_OK) ||
	    (rv = cmpc_set1_req_extensions(cmp, exts)) != CMPC_OK)
		rc = cmp_fail(cmp, rv, "setting the requested names and extensions failed");
	cmpc_set_validity_days(cmp, e->days > 0 ? e->days : 0);
	X509_NAME_free(subj);
	GENERAL_NAMES_free(sans);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	return rc;
}

agent_rc agent_cmp_use_pbm(const conf_enrollment *e, cmpc_ctx *cmp, const char *what)
{
	char err[512];
	secret *sec = NULL;
	cmpc_rv rv;

	if (e->reference == NULL || e->secret_source == NULL) {
		log_msg(LOG_ERR, "%s needs protection: enrollment '%s' lacks %s; or configure a "
				 "signer (signer, or protection_cert and protection_key)",
			what, ename(e),
			e->reference == NULL ? "the reference value (reference)" :
					       "the MAC secret source (secret_source)");
		return EXIT_USAGE;
	}
	if (secret_read(e->secret_source, "MAC secret", &sec, err, sizeof(err)) < 0) {
		log_msg(LOG_ERR, "%s", err);
		return EXIT_USAGE;
	}
	rv = cmpc_set1_pbm(cmp, (const unsigned char *)e->reference, strlen(e->reference),
			   (const unsigned char *)sec->buf, sec->len);
	secret_free(sec);
	return rv == CMPC_OK ? EXIT_OK : cmp_fail(cmp, rv, "setting the PBM credentials failed");
}

int agent_has_signer(const conf_enrollment *e)
{
	return e->signer != NULL || e->protection_cert != NULL || e->protection_key != NULL;
}

/* A PEM private key that only its owner can read; no passphrase prompt. */
static int no_passphrase(char *buf, int size, int rw, void *u)
{
	(void)buf;
	(void)size;
	(void)rw;
	(void)u;
	return -1;
}

static agent_rc load_files(const conf_enrollment *e, X509 **ret_cert, EVP_PKEY **ret_key)
{
	struct stat st;
	X509 *cert = NULL;
	EVP_PKEY *key = NULL;
	FILE *f;

	if (e->protection_cert == NULL || e->protection_key == NULL) {
		log_msg(LOG_ERR, "signature protection with files needs both protection_cert and "
				 "protection_key; %s is missing",
			e->protection_cert == NULL ? "protection_cert" : "protection_key");
		return EXIT_USAGE;
	}
	if ((cert = agent_read_cert(e->protection_cert, "protection_cert",
				    "give the signer's certificate in PEM")) == NULL)
		return EXIT_USAGE;
	if ((f = fopen(e->protection_key, "r")) == NULL) {
		log_msg(LOG_ERR, "cannot read protection_key %s: %s", e->protection_key,
			strerror(errno));
		X509_free(cert);
		return EXIT_USAGE;
	}
	if (fstat(fileno(f), &st) != 0 || (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
		log_msg(LOG_ERR, "protection_key %s is accessible by group or others: restrict it "
				 "with chmod 600 (the key protects your requests)",
			e->protection_key);
		fclose(f);
		X509_free(cert);
		return EXIT_USAGE;
	}
	key = PEM_read_PrivateKey(f, NULL, no_passphrase, NULL);
	fclose(f);
	if (key == NULL) {
		log_msg(LOG_ERR, "protection_key %s holds no unencrypted PEM private key: give the "
				 "key in PEM without a passphrase",
			e->protection_key);
		log_openssl_errors();
		X509_free(cert);
		return EXIT_USAGE;
	}
	if (X509_check_private_key(cert, key) != 1) {
		log_msg(LOG_ERR, "protection_key %s is not the key of protection_cert %s: give the "
				 "matching pair",
			e->protection_key, e->protection_cert);
		ERR_clear_error();
		X509_free(cert);
		EVP_PKEY_free(key);
		return EXIT_USAGE;
	}
	*ret_cert = cert;
	*ret_key = key;
	return EXIT_OK;
}

agent_rc agent_signer_load(const conf_enrollment *e, tok_ctx *tok, X509 **ret_cert,
			   EVP_PKEY **ret_key)
{
	X509 *cert = NULL;
	EVP_PKEY *key = NULL;
	tok_id id;
	tok_rv rv;
	char what[300];

	if (e->signer != NULL && (e->protection_cert != NULL || e->protection_key != NULL)) {
		log_msg(LOG_ERR, "both signer and protection_cert/protection_key are set: choose "
				 "the token signer or the files");
		return EXIT_USAGE;
	}
	if (e->signer == NULL)
		return load_files(e, ret_cert, ret_key);
	if ((rv = tok_find_cert(tok, e->signer, NULL, &id, &cert)) != TOK_OK) {
		snprintf(what, sizeof(what), "cannot use signer '%.200s'", e->signer);
		return agent_token_fail(tok, rv, what);
	}
	if ((rv = tok_key_get1_private(tok, &id, &key)) != TOK_OK) {
		snprintf(what, sizeof(what), "cannot use the key of signer '%.200s'", e->signer);
		X509_free(cert);
		return agent_token_fail(tok, rv, what);
	}
	*ret_cert = cert;
	*ret_key = key;
	return EXIT_OK;
}

agent_rc agent_cmp_protect(const conf_enrollment *e, cmpc_ctx *cmp, tok_ctx *tok,
			   int signer_required, const char *what)
{
	X509 *cert = NULL;
	EVP_PKEY *key = NULL;
	cmpc_rv rv;
	agent_rc rc;

	if (!agent_has_signer(e)) {
		if (!signer_required)
			return agent_cmp_use_pbm(e, cmp, what);
		log_msg(LOG_ERR, "%s must be signed: configure signer = LABEL (a certificate and key "
				 "on the token) or protection_cert and protection_key (files)",
			what);
		return EXIT_USAGE;
	}
	if ((rc = agent_signer_load(e, tok, &cert, &key)) != EXIT_OK)
		return rc;
	rv = cmpc_set1_signer(cmp, cert, key, NULL);
	X509_free(cert);
	EVP_PKEY_free(key);
	if (rv != CMPC_OK)
		return cmp_fail(cmp, rv, "setting the signer failed");
	log_msg(LOG_INFO, "%s is signed with %s", what,
		e->signer != NULL ? "the signer's key on the token" : "protection_key");
	return EXIT_OK;
}

agent_rc agent_cmp_tls_client(const conf_enrollment *e, cmpc_ctx *cmp, tok_ctx *tok,
			      X509 *self_cert, EVP_PKEY *self_key)
{
	X509 *cert = NULL;
	EVP_PKEY *key = NULL;
	tok_id id;
	tok_rv trv;
	cmpc_rv rv;
	char what[300];
	agent_rc rc;
	int self;

	if (e->tls_client == NULL)
		return EXIT_OK;
	self = strcmp(e->tls_client, "self") == 0;
	if (self && (self_cert == NULL || self_key == NULL)) {
		log_msg(LOG_ERR, "tls_client = self means the certificate being renewed, and this "
				 "command renews none: set tls_client to the label of a certificate "
				 "on the token");
		return EXIT_USAGE;
	}
	if (self) {
		cert = self_cert;
		key = self_key;
	} else {
		if (tok == NULL) {
			log_msg(LOG_ERR, "tls_client needs the token, which is not open");
			return EXIT_INTERNAL;
		}
		if ((trv = tok_find_cert(tok, e->tls_client, NULL, &id, &cert)) != TOK_OK) {
			snprintf(what, sizeof(what),
				 "cannot use the TLS client certificate '%.200s'", e->tls_client);
			rc = agent_token_fail(tok, trv, what);
			if (trv == TOK_ERR_NOT_FOUND)
				log_msg(LOG_ERR, "tls_client must name a certificate on the token: "
						 "there is none labelled '%s' (see p11enroll list)",
					e->tls_client);
			return rc;
		}
		if ((trv = tok_key_get1_private(tok, &id, &key)) != TOK_OK) {
			snprintf(what, sizeof(what),
				 "cannot use the key of the TLS client certificate '%.200s'",
				 e->tls_client);
			X509_free(cert);
			return agent_token_fail(tok, trv, what);
		}
	}
	rv = cmpc_set1_tls_client(cmp, cert, key, NULL);
	if (!self) {
		X509_free(cert);
		EVP_PKEY_free(key);
	}
	if (rv != CMPC_OK)
		return cmp_fail(cmp, rv, "setting up TLS client authentication failed");
	log_msg(LOG_INFO, "TLS client authentication with %s%s%s",
		self ? "the certificate being renewed" : "the certificate '",
		self ? "" : e->tls_client, self ? "" : "' on the token");
	return EXIT_OK;
}

cmpc_ctx *agent_cmpc_new(void)
{
	cmpc_ctx *cmp = cmpc_new();

	if (cmp == NULL)
		log_msg(LOG_ERR, "cannot create the CMP context: out of memory");
	else
		cmpc_set_wait_cb(cmp, agent_cmp_wait, NULL);
	return cmp;
}

agent_rc agent_template_fetch(const conf_enrollment *e, tok_ctx *tok, X509 *self_cert,
			      EVP_PKEY *self_key, cmpc_template *ret_t)
{
	cmpc_ctx *cmp = agent_cmpc_new();
	cmpc_rv rv;
	agent_rc rc;

	if (cmp == NULL)
		return EXIT_INTERNAL;
	if ((rc = agent_cmp_setup(e, cmp)) != EXIT_OK ||
	    (rc = agent_cmp_tls_client(e, cmp, tok, self_cert, self_key)) != EXIT_OK ||
	    (rc = agent_cmp_protect(e, cmp, tok, 0, "the genm for the certificate template")) !=
		EXIT_OK) {
		cmpc_free(cmp);
		return rc;
	}
	log_msg(LOG_INFO, "asking %s for its certificate request template", e->server);
	if ((rv = cmpc_genm_cert_template(cmp, ret_t)) != CMPC_OK)
		rc = cmp_fail(cmp, rv, "asking the CA for its certificate template failed");
	cmpc_free(cmp);
	return rc;
}

agent_rc agent_template_apply(const conf_enrollment *e, const cmpc_template *t,
			      tok_keyspec *spec, cmpc_ctx *cmp)
{
	int i, ignored = 0, san_ignored = 0;
	cmpc_rv rv;

	if (e->key_type == NULL && t->key_alg != 0) {
		spec->alg = (tok_keyalg)t->key_alg;
		if (t->key_bits != 0)
			spec->bits = t->key_bits;
		else
			spec->bits = t->key_alg == TOK_KEY_RSA ? 2048 : 256;
		log_msg(LOG_INFO, "template: key %s %d", spec->alg == TOK_KEY_RSA ? "RSA" : "EC",
			spec->bits);
	}
	if (e->subject == NULL && t->subject != NULL) {
		if ((rv = cmpc_set1_subject(cmp, t->subject)) != CMPC_OK)
			return cmp_fail(cmp, rv, "using the template's subject failed");
		log_msg(LOG_INFO, "template: subject from the CA");
	}
	for (i = 0; i < sk_X509_EXTENSION_num(t->extensions); i++) {
		X509_EXTENSION *ext = sk_X509_EXTENSION_value(t->extensions, i);

		if (OBJ_obj2nid(X509_EXTENSION_get_object(ext)) == NID_subject_alt_name &&
		    e->san != NULL) {
			san_ignored = 1;
		} else if (OBJ_obj2nid(X509_EXTENSION_get_object(ext)) == NID_subject_alt_name) {
			GENERAL_NAMES *sans = X509V3_EXT_d2i(ext);

			rv = sans != NULL ? cmpc_set1_sans(cmp, sans) : CMPC_ERR_CONFIG;
			GENERAL_NAMES_free(sans);
			if (rv != CMPC_OK)
				return cmp_fail(cmp, rv, "using the template's subjectAltName failed");
			log_msg(LOG_INFO, "template: subjectAltName from the CA");
		} else {
			ignored++;
		}
	}
	if (san_ignored)
		log_msg(LOG_NOTICE, "template: its subjectAltName is not requested: san is configured, "
				    "and the configuration wins");
	if (ignored > 0)
		log_msg(LOG_NOTICE, "template: %d extension%s other than subjectAltName not "
				    "requested; the CA adds its own",
			ignored, ignored == 1 ? "" : "s");
	return EXIT_OK;
}

void agent_template_print(const cmpc_template *t)
{
	char buf[512], safe[4 * 400];
	int i;

	if (t->subject != NULL)
		X509_NAME_oneline(t->subject, buf, sizeof(buf));
	printf("certificate request template\n  subject:    %s\n",
	       t->subject != NULL ? buf : "(open)");
	if (t->key_alg == 0)
		printf("  key:        (open)\n");
	else if (t->key_bits == 0)
		printf("  key:        %s\n", t->key_alg == TOK_KEY_RSA ? "RSA" : "EC");
	else
		printf("  key:        %s %d bits\n", t->key_alg == TOK_KEY_RSA ? "RSA" : "EC",
		       t->key_bits);
	for (i = 0; i < sk_X509_EXTENSION_num(t->extensions); i++) {
		X509_EXTENSION *ext = sk_X509_EXTENSION_value(t->extensions, i);
		BIO *b = BIO_new(BIO_s_mem());
		char val[400] = "";
		int n;

		OBJ_obj2txt(buf, sizeof(buf), X509_EXTENSION_get_object(ext), 0);
		if (b != NULL && X509V3_EXT_print(b, ext, 0, 0) == 1 &&
		    (n = BIO_read(b, val, sizeof(val) - 1)) > 0) {
			val[n] = '\0';
			/* A multi-line value (several names) on one line. */
			for (char *c = val; *c != '\0'; c++)
				if (*c == '\n' || *c == '\r')
					*c = ' ';
		}
		BIO_free(b);
		/* The values are the CA's (a dNSName may hold any byte). */
		printf("  extension:  %s%s%s\n", buf, val[0] ? ": " : "",
		       agent_escape(val, safe, sizeof(safe)));
	}
}
