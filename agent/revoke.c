/*
 * p11enroll revoke: a revocation request (rr) for the enrollment's
 * certificate on the token, or for a certificate given as a PEM file;
 * optionally the revoked certificate and its key are deleted afterwards.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "agent/agent-cmd.h"


static const char *status_text(cmpc_rr_status st)
{
	switch (st) {
	case CMPC_RR_ACCEPTED:
		return "accepted";
	case CMPC_RR_GRANTED_WITH_MODS:
		return "granted with modifications";
	case CMPC_RR_REVOCATION_WARNING:
		return "revocationWarning (a revocation is imminent)";
	case CMPC_RR_REVOCATION_NOTIFICATION:
		return "revocationNotification (the certificate was revoked)";
	default:
		return "unknown status";
	}
}

enum rr_protection { RR_OWN_KEY, RR_SIGNER, RR_PBM };

/* rr_protection: own-key by default where the key is on the token; else a
 * configured signer; PBM only by name. */
static agent_rc rr_mode(const conf_enrollment *e, int have_key, enum rr_protection *ret)
{
	const char *p = e->rr_protection;

	if (p == NULL)
		p = have_key || !agent_has_signer(e) ? "own-key" : "signer";
	if (strcmp(p, "pbm") == 0) {
		*ret = RR_PBM;
	} else if (strcmp(p, "signer") == 0) {
		if (!agent_has_signer(e)) {
			log_msg(LOG_ERR, "rr_protection = signer, but no signer is configured: set "
					 "signer (a token certificate) or protection_cert and "
					 "protection_key");
			return EXIT_USAGE;
		}
		*ret = RR_SIGNER;
	} else if (strcmp(p, "own-key") == 0) {
		if (!have_key) {
			log_msg(LOG_ERR,
				"the revocation request must be signed with the key of the "
				"certificate being revoked (RFC 9483 4.2), but that certificate and "
				"key are not on the token under label '%s': revoke the token's "
				"certificate, configure a signer (rr_protection = signer) if the CA "
				"lets it revoke on behalf, or set rr_protection = pbm if the CA "
				"accepts MAC-protected revocation",
				e->label != NULL ? e->label : "");
			return EXIT_USAGE;
		}
		*ret = RR_OWN_KEY;
	} else {
		log_msg(LOG_ERR, "rr_protection '%s' is not one of own-key, signer, pbm", p);
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

/*
 * --delete after a revocation.  The pair is first relabelled "LABEL
 * (revoked)" (tok_relabel puts the labels back when it fails), then
 * deleted: a deletion that stops half-way leaves only objects under that
 * label, which recovery deletes, never half a pair under LABEL.
 */
static agent_rc delete_revoked(const conf_enrollment *e, tok_ctx *tok, const tok_id *id)
{
	char hex[2 * TOK_ID_MAX + 1], cmd[512];
	char *revl = agent_label_with(e->label, AGENT_MARK_REVOKED);
	tok_rv trv;
	agent_rc rc;

	if (revl == NULL)
		return EXIT_INTERNAL;
	if ((trv = tok_relabel(tok, id, revl)) != TOK_OK) {
		rc = agent_token_fail(tok, trv, "the certificate is revoked, but marking it and "
						"its key for deletion failed, so nothing was deleted");
		log_msg(LOG_ERR, "run `p11enroll revoke %s --delete` again to delete them (the CA "
				 "answers that it is already revoked)",
			e->name != NULL ? e->name : "NAME");
	} else if ((trv = tok_key_destroy(tok, id, 1)) != TOK_OK) {
		rc = agent_token_fail(tok, trv, "the certificate is revoked, but deleting it and "
						"its key from the token failed");
		log_msg(LOG_ERR, "what is left is labelled '%s': `%s` (or the next run) deletes it",
			revl, agent_recover_cmd(e, cmd, sizeof(cmd)));
	} else {
		agent_hex(id->id, id->len, hex, sizeof(hex));
		if (log_verbosity() >= 0)
			printf("  deleted:    key id %s and its certificate\n", hex);
		rc = EXIT_OK;
	}
	free(revl);
	return rc;
}

/*
 * --replaced: the pair revoke_replaced left under "LABEL (to revoke)" when
 * its revocation failed.  Recovery first, as if revoke_replaced were set:
 * a swap that was interrupted while moving the old pair is finished with
 * the old pair under that mark, not deleted unrevoked.
 */
static agent_rc revoke_replaced(const conf_enrollment *e, const agent_cmd_opts *o)
{
	conf_enrollment r = *e;
	tok_ctx *tok = NULL;
	agent_rc rc;
	int found = 0;

	if (o->cert_file != NULL || o->delete_objs) {
		log_msg(LOG_ERR, "--replaced revokes the pair labelled 'LABEL (to revoke)' and then "
				 "deletes it: it takes neither --cert nor --delete");
		return EXIT_USAGE;
	}
	if (e->label == NULL) {
		log_msg(LOG_ERR, "--replaced needs the enrollment's label (label or --label)");
		return EXIT_USAGE;
	}
	r.revoke_replaced = 1;
	if ((rc = agent_token_open(&r, &tok, 1)) != EXIT_OK)
		return rc;
	if ((rc = agent_recover(&r, tok)) == EXIT_OK &&
	    (rc = agent_revoke_replaced(&r, tok, &found, 1)) == EXIT_OK && !found &&
	    log_verbosity() >= 0)
		printf("nothing to revoke: no certificate is labelled '%s%s'\n", e->label,
		       AGENT_MARK_TO_REVOKE);
	tok_free(tok);
	return rc;
}

agent_rc agent_revoke(const conf_enrollment *e, const agent_cmd_opts *o)
{
	enum rr_protection mode;
	cmpc_ctx *cmp = NULL;
	tok_ctx *tok = NULL;
	X509 *cert = NULL, *on_token = NULL;
	EVP_PKEY *key = NULL;
	tok_id id;
	int reason = -1, have_id = 0, del = o->delete_objs || e->delete_revoked == 1;
	agent_rc rc;
	char serial_hex[2 * 20 + 3] = "?";
	cmpc_rr_status st = CMPC_RR_ACCEPTED;
	tok_rv trv;
	cmpc_rv crv;
	agent_stored sx = { .kind = "rr", .cmd = "revoke" };

	if (o->abandon)
		return agent_stored_abandon(e, &sx);
	if (o->replaced)
		return revoke_replaced(e, o);
	if (e->reason != NULL && conf_parse_reason(e->reason, &reason) < 0) {
		log_msg(LOG_ERR, "revocation reason '%s' is not a CRL reason: use unspecified, "
				 "keyCompromise, cACompromise, affiliationChanged, superseded, "
				 "cessationOfOperation, certificateHold, removeFromCRL, "
				 "privilegeWithdrawn, aACompromise or their numbers 0-10 (not 7)",
			e->reason);
		return EXIT_USAGE;
	}
	if (o->cert_file == NULL && e->label == NULL) {
		log_msg(LOG_ERR, "nothing to revoke: set label (the enrollment's certificate on the "
				 "token) or give --cert FILE");
		return EXIT_USAGE;
	}
	if (o->cert_file != NULL && (cert = agent_read_cert(o->cert_file, "--cert", "give the certificate to revoke in PEM")) == NULL)
		return EXIT_USAGE;
	if ((cmp = agent_cmpc_new()) == NULL) {
		rc = EXIT_INTERNAL;
		goto out;
	}
	if ((rc = agent_cmp_setup(e, cmp)) != EXIT_OK)
		goto out;
	/* The token is needed for its certificate, for a signer, for the TLS
	 * client certificate or for --delete. */
	if ((o->cert_file == NULL || del || e->signer != NULL || e->tls_client != NULL ||
	     (e->label != NULL && (e->rr_protection == NULL || strcmp(e->rr_protection, "own-key") == 0))) &&
	    (rc = agent_token_open(e, &tok, 1)) != EXIT_OK)
		goto out;
	if ((rc = agent_cmp_tls_client(e, cmp, tok, NULL, NULL)) != EXIT_OK)
		goto out;
	if (tok != NULL && e->label != NULL) {
		trv = tok_find_cert(tok, e->label, NULL, &id, &on_token);
		if (trv == TOK_OK) {
			have_id = 1;
		} else if (o->cert_file == NULL || trv != TOK_ERR_NOT_FOUND) {
			rc = agent_token_fail(tok, trv, "cannot find the certificate to revoke");
			goto out;
		}
	}
	if (cert == NULL) {
		cert = on_token;
		on_token = NULL;
	} else if (have_id && X509_cmp(cert, on_token) != 0) {
		/* --cert names another certificate: the token's pair is not its. */
		have_id = 0;
	}
	{
		BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
		char *s = bn != NULL ? BN_bn2hex(bn) : NULL;

		if (s != NULL)
			snprintf(serial_hex, sizeof(serial_hex), "%.42s", s);
		OPENSSL_free(s);
		BN_free(bn);
	}
	/*
	 * Protection (RFC 9483 4.2): the rr is signed with the key of the
	 * certificate being revoked -- proof that its holder asks.  A signer
	 * (an RA revoking on behalf) or PBM only when asked for.
	 */
	if ((rc = rr_mode(e, have_id, &mode)) != EXIT_OK)
		goto out;
	if (mode == RR_PBM) {
		if ((rc = agent_cmp_use_pbm(e, cmp, "the revocation request")) != EXIT_OK)
			goto out;
	} else if (mode == RR_SIGNER) {
		if ((rc = agent_cmp_protect(e, cmp, tok, 0, "the revocation request")) != EXIT_OK)
			goto out;
	} else {
		if ((trv = tok_key_get1_private(tok, &id, &key)) != TOK_OK) {
			rc = agent_token_fail(tok, trv, "cannot sign the revocation request with the "
							"certificate's key");
			goto out;
		}
		if ((crv = cmpc_set1_signer(cmp, cert, key, NULL)) != CMPC_OK) {
			log_msg(LOG_ERR, "cannot sign with the certificate's key: %s: %s",
				cmpc_strerror(crv), cmpc_errmsg(cmp));
			rc = agent_exit_from_cmpc(crv);
			goto out;
		}
	}
	snprintf(sx.asks, sizeof(sx.asks), "serial-%s", serial_hex);
	if ((rc = agent_stored_begin(e, o, &sx, cmp)) != EXIT_OK)
		goto out;
	if (!sx.used)
		log_msg(LOG_INFO, "sending rr for serial %s, reason %s, to %s", serial_hex,
			reason >= 0 ? conf_reason_name(reason) : "unspecified (none given)",
			e->server);
	crv = cmpc_rr(cmp, cert, reason, &st);
	if (agent_stored_end(e, &sx, cmp, agent_exit_from_cmpc(crv), &rc))
		goto out;
	if (crv != CMPC_OK) {
		/* A verified "already revoked" finishes an earlier revoke
		 * --delete whose deletion failed: the deletion is still asked. */
		if (crv == CMPC_ERR_REJECTED && del && have_id && cmpc_rr_already_revoked(cmp)) {
			log_msg(LOG_NOTICE, "the CA says serial %s is already revoked: deleting it "
					    "from the token, as --delete asks",
				serial_hex);
			rc = delete_revoked(e, tok, &id);
			goto out;
		}
		log_msg(LOG_ERR, "revocation of serial %s failed: %s: %s", serial_hex,
			cmpc_strerror(crv), cmpc_errmsg(cmp));
		log_openssl_errors();
		rc = agent_exit_from_cmpc(crv);
		goto out;
	}
	if (log_verbosity() >= 0)
		printf("revoked %s\n  serial:     %s\n  reason:     %s\n  status:     %s\n",
		       e->name != NULL ? e->name : "", serial_hex,
		       reason >= 0 ? conf_reason_name(reason) : "unspecified (none given)",
		       status_text(st));
	if (st == CMPC_RR_REVOCATION_WARNING || st == CMPC_RR_REVOCATION_NOTIFICATION)
		log_msg(LOG_NOTICE, "the CA answered %s", status_text(st));
	rc = EXIT_OK;
	if (del) {
		if (!have_id)
			log_msg(LOG_WARNING, "the revoked certificate is not on the token under label "
					     "'%s': nothing deleted",
				e->label != NULL ? e->label : "");
		else
			rc = delete_revoked(e, tok, &id);
	}
out:
	EVP_PKEY_free(key);
	X509_free(cert);
	X509_free(on_token);
	/* The cmpc context may hold a token key (the signer): it goes first,
	 * while the module is still loaded. */
	cmpc_free(cmp);
	tok_free(tok);
	return rc;
}
