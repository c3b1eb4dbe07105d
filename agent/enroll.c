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

#include "agent/agent.h"
#include "cmp/cmpc.h"
#include "pkcs11/tok.h"

static int exit_from_cmpc(cmpc_rv rv)
{
	switch (rv) {
	case CMPC_OK:
		return EXIT_OK;
	case CMPC_ERR_CONFIG:
		return EXIT_USAGE;
	case CMPC_ERR_TRANSPORT:
	case CMPC_ERR_TLS:
		return EXIT_TRANSPORT;
	case CMPC_ERR_PROTOCOL:
		return EXIT_PROTOCOL;
	case CMPC_ERR_REJECTED:
		return EXIT_REJECTED;
	case CMPC_ERR_WAITING:
		return EXIT_WAITING;
	case CMPC_ERR_CERT:
		return EXIT_CERT;
	case CMPC_ERR_KEY:
		return EXIT_TOKEN;
	default:
		return EXIT_INTERNAL;
	}
}

static void cmp_log(int level, const char *msg, void *arg)
{
	(void)arg;
	log_msg(level > LOG_INFO ? LOG_DEBUG : level < LOG_WARNING ? LOG_INFO : level, "cmp: %s",
		msg);
}

/* Writes via a temporary file and rename(), so a reader never sees half. */
static int write_pem(const char *path, X509 *cert, STACK_OF(X509) *certs)
{
	size_t n = strlen(path) + 8;
	char *tmp = malloc(n);
	FILE *f;
	int ok = 1, i;

	if (tmp == NULL)
		return -1;
	snprintf(tmp, n, "%s.tmp", path);
	if ((f = fopen(tmp, "w")) == NULL) {
		log_msg(LOG_ERR, "cannot write %s: %m", tmp);
		free(tmp);
		return -1;
	}
	if (cert != NULL)
		ok = PEM_write_X509(f, cert);
	for (i = 0; ok && i < sk_X509_num(certs); i++)
		ok = PEM_write_X509(f, sk_X509_value(certs, i));
	if (fclose(f) != 0 || !ok || rename(tmp, path) != 0) {
		log_msg(LOG_ERR, "cannot write %s", path);
		unlink(tmp);
		free(tmp);
		return -1;
	}
	free(tmp);
	return 0;
}

/* The label of a CA certificate object: its subject CN, else the whole name. */
static void ca_label(X509 *ca, char *out, size_t outlen)
{
	X509_NAME *subj = X509_get_subject_name(ca);
	int i = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);

	out[0] = '\0';
	if (i >= 0) {
		ASN1_STRING *d = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, i));
		unsigned char *utf8 = NULL;
		int len = ASN1_STRING_to_UTF8(&utf8, d);

		if (len > 0)
			snprintf(out, outlen, "%.*s", len, (char *)utf8);
		OPENSSL_free(utf8);
	}
	if (out[0] == '\0')
		X509_NAME_oneline(subj, out, (int)outlen);
}

static void print_result(const conf_enrollment *e, const tok_id *id, X509 *cert)
{
	char hex[2 * TOK_ID_MAX + 1], subj[512], iss[512], date[64] = "";
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
	char *serial = bn != NULL ? BN_bn2hex(bn) : NULL;
	BIO *b = BIO_new(BIO_s_mem());

	agent_hex(id->id, id->len, hex, sizeof(hex));
	X509_NAME_oneline(X509_get_subject_name(cert), subj, sizeof(subj));
	X509_NAME_oneline(X509_get_issuer_name(cert), iss, sizeof(iss));
	if (b != NULL && ASN1_TIME_print(b, X509_get0_notAfter(cert)))
		BIO_read(b, date, sizeof(date) - 1);
	printf("enrolled %s\n  subject:    %s\n  issuer:     %s\n  serial:     %s\n"
	       "  not after:  %s\n  key id:     %s\n  label:      %s\n",
	       e->name != NULL ? e->name : "", subj, iss, serial != NULL ? serial : "?", date,
	       hex, e->label);
	BIO_free(b);
	OPENSSL_free(serial);
	BN_free(bn);
}

/* Everything the CMP exchange needs, from the enrollment. */
static int setup_cmp(const conf_enrollment *e, cmpc_ctx *cmp)
{
	char err[512];
	secret *sec = NULL;
	X509_NAME *subj = NULL;
	GENERAL_NAMES *sans = NULL;
	cmpc_rv rv;
	int rc = EXIT_USAGE;

	if (e->server == NULL || e->trusted == NULL || e->reference == NULL ||
	    e->secret_source == NULL || e->subject == NULL) {
		log_msg(LOG_ERR, "enrollment '%s' lacks %s: set it in the configuration or on "
				 "the command line",
			e->name != NULL ? e->name : "(command line)",
			e->server == NULL    ? "the server URL (server)" :
			e->trusted == NULL   ? "the trust anchors (trusted)" :
			e->reference == NULL ? "the reference value (reference)" :
			e->subject == NULL   ? "the subject (subject)" :
					       "the MAC secret source (secret_source)");
		return EXIT_USAGE;
	}
	cmpc_set_log_cb(cmp, cmp_log, NULL);
	if ((subj = conf_parse_subject(e->subject, err, sizeof(err))) == NULL ||
	    (e->san != NULL && (sans = conf_parse_sans(e->san, err, sizeof(err))) == NULL)) {
		log_msg(LOG_ERR, "%s", err);
		goto out;
	}
	if (secret_read(e->secret_source, "MAC secret", &sec, err, sizeof(err)) < 0) {
		log_msg(LOG_ERR, "%s", err);
		goto out;
	}
	cmpc_set_timeouts(cmp, e->connect_timeout > 0 ? e->connect_timeout : 0,
			  e->timeout > 0 ? e->timeout : 0, e->total_timeout > 0 ? e->total_timeout : 0);
	if (e->max_response > 0)
		cmpc_set_max_response(cmp, (size_t)e->max_response);
	cmpc_set_implicit_confirm(cmp, e->implicit_confirm == 1);
	if ((rv = cmpc_set_server(cmp, e->server)) != CMPC_OK ||
	    (rv = cmpc_set_tls_trust(cmp, e->tls_trusted)) != CMPC_OK ||
	    (rv = cmpc_load_trusted(cmp, e->trusted)) != CMPC_OK ||
	    (rv = cmpc_set1_pbm(cmp, (const unsigned char *)e->reference, strlen(e->reference),
				(const unsigned char *)sec->buf, sec->len)) != CMPC_OK ||
	    (rv = cmpc_set1_subject(cmp, subj)) != CMPC_OK ||
	    (sans != NULL && (rv = cmpc_set1_sans(cmp, sans)) != CMPC_OK)) {
		log_msg(LOG_ERR, "%s: %s", cmpc_strerror(rv), cmpc_errmsg(cmp));
		rc = exit_from_cmpc(rv);
		goto out;
	}
	rc = EXIT_OK;
out:
	secret_free(sec);
	X509_NAME_free(subj);
	GENERAL_NAMES_free(sans);
	return rc;
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

		ca_label(ca, label, sizeof(label));
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
		rc = sc.rc > 0 ? sc.rc : exit_from_cmpc(crv);
		if (crv == CMPC_ERR_KEY)
			explain_key_failure(tok);
		goto out;
	}
	have_key = 0; /* from here on the key belongs to the certificate */
	if ((e->cert_out != NULL && write_pem(e->cert_out, cert, NULL) < 0) ||
	    (e->chain_out != NULL && write_pem(e->chain_out, NULL, cacerts) < 0))
		log_msg(LOG_WARNING, "the certificate is on the token, but a file copy failed");
	print_result(e, &id, cert);
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
	tok_free(tok);
	cmpc_free(cmp);
	return rc;
}
