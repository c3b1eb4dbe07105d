/*
 * p11enroll renew: key update (kur).  The request and certConf are signed
 * with the OLD key and certificate; the new pair is made, certified and
 * swapped in by certreq.c's sequence, and the old pair stays untouched
 * until the new certificate is confirmed and stored.  Only then do labels
 * move and the old pair go (or stay as "<label> (old)").
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "agent/agent-cmd.h"

/* A renewal without configured SANs asks for the old certificate's (the
 * certConf check then holds the CA to them); a template may still set others. */
static agent_rc keep_sans(cmpc_ctx *cmp, X509 *old_cert)
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

/* After recovery: the pair renewed, whose key signs the kur and its
 * certConf (and authenticates TLS, tls_client = self). */
static agent_rc prepare_kur(agent_req *r)
{
	const conf_enrollment *e = r->e;
	char hex[2 * TOK_ID_MAX + 1];
	tok_rv trv;
	cmpc_rv crv;
	agent_rc rc;

	if (agent_has_signer(e))
		log_msg(LOG_NOTICE, "renew signs with the old key and certificate; the configured "
				    "signer is not used");
	if ((trv = tok_find_cert(r->tok, e->label, NULL, &r->old_id, &r->old_cert)) != TOK_OK) {
		rc = agent_token_fail(r->tok, trv, "cannot find the certificate to renew");
		if (trv == TOK_ERR_NOT_FOUND)
			log_msg(LOG_ERR, "renew needs a certificate labelled '%s' on the token: run "
					 "p11enroll enroll first",
				e->label);
		return rc;
	}
	r->have_old = 1;
	if ((trv = tok_key_get1_private(r->tok, &r->old_id, &r->old_key)) != TOK_OK)
		return agent_token_fail(r->tok, trv,
					"cannot use the key of the certificate to renew");
	agent_hex(r->old_id.id, r->old_id.len, hex, sizeof(hex));
	log_msg(LOG_INFO, "renewing the certificate labelled '%s', key id %s", e->label, hex);
	/* Before any exchange and before the new key exists. */
	if ((rc = agent_cmp_tls_client(e, r->cmp, r->tok, r->old_cert, r->old_key)) != EXIT_OK)
		return rc;
	if (e->key_type == NULL)
		spec_from_cert(r->old_cert, &r->spec);
	if (e->san == NULL && (rc = keep_sans(r->cmp, r->old_cert)) != EXIT_OK)
		return rc;
	if ((crv = cmpc_set1_signer(r->cmp, r->old_cert, r->old_key, NULL)) != CMPC_OK) {
		log_msg(LOG_ERR, "cannot sign with the old key: %s: %s", cmpc_strerror(crv),
			cmpc_errmsg(r->cmp));
		return agent_exit_from_cmpc(crv);
	}
	return EXIT_OK;
}

agent_rc agent_renew_run(const conf_enrollment *e, const agent_pending *resume, int abandon)
{
	agent_req r = { 0 };

	r.type = CMPC_REQ_KUR;
	r.what = "key update";
	r.verb = "renewed";
	r.prepare = prepare_kur;
	r.e = e;
	return agent_certreq_run(&r, resume, abandon);
}

agent_rc agent_renew(const conf_enrollment *e)
{
	return agent_renew_run(e, NULL, 0);
}
