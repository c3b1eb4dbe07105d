/*
 * Replacing an issued identity only on purpose.  A request that generates a
 * new key pair under a label whose certificate is still valid would, once
 * confirmed, delete that certificate's key: the identity is gone, and with
 * it whatever the card or HSM was issued for.  agent_replace_guard refuses
 * that unless replace = yes.  renew (kur) is not guarded: replacing is
 * what it is for.
 *
 * revoke_replaced = yes: swap_in (certreq.c) marks the replaced pair
 * "LABEL (to revoke)" instead of deleting it, and agent_revoke_replaced
 * sends an rr signed by that pair's own key, reason superseded, then
 * deletes the pair (keep_old: relabels it "LABEL (old)").  The pair stays
 * until the CA has revoked the certificate: it holds the only key that can
 * sign the rr, so a failed revocation is retried by every later run for
 * the label (and `p11enroll revoke NAME --replaced`), and recovery never
 * deletes it.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/x509.h>

#include "agent/agent-cmd.h"
#include "agent/result.h"

#define REASON_SUPERSEDED 4 /* RFC 5280 5.3.1 */

/* Why the last revocation of a replaced certificate failed, as logged:
 * for the result record (agent_revoke_replaced_unrevoked). */
static char unrevoked_why[sizeof(((agent_result *)0)->unrevoked_error)];

/* The last error logged as the reason, whole (it is bounded as the
 * record's field is, AGENT_ERROR_MAX): the record's parser takes it. */
static void note_why(void)
{
	agent_escape_bounded(log_last_error(), unrevoked_why, sizeof(unrevoked_why));
}

void agent_revoke_replaced_unrevoked(agent_rc rc)
{
	agent_result *res = agent_result_self();

	res->unrevoked = rc != EXIT_OK ? rc : EXIT_INTERNAL;
	memcpy(res->unrevoked_error, unrevoked_why, sizeof(res->unrevoked_error));
}

/* Subject, serial and notAfter, for messages. */
static void describe(X509 *cert, char *subj, size_t slen, char *serial, size_t serlen,
		     char *date, size_t dlen)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
	char *s = bn != NULL ? BN_bn2hex(bn) : NULL;
	BIO *b = BIO_new(BIO_s_mem());
	int n;

	X509_NAME_oneline(X509_get_subject_name(cert), subj, (int)slen);
	snprintf(serial, serlen, "%.42s", s != NULL ? s : "?");
	snprintf(date, dlen, "?");
	if (b != NULL && ASN1_TIME_print(b, X509_get0_notAfter(cert)) &&
	    (n = BIO_read(b, date, (int)dlen - 1)) > 0)
		date[n] = '\0';
	BIO_free(b);
	OPENSSL_free(s);
	BN_free(bn);
}

agent_rc agent_replace_guard(const conf_enrollment *e, tok_ctx *tok, unsigned known,
			     tok_id *ret_cur)
{
	char subj[512], serial[48], date[64];
	X509 *cert = NULL;
	tok_rv trv;

	ret_cur->len = 0;
	/* The batch's listing saw nothing under the label: no token call. */
	if (known & AGENT_REQ_LABEL_FREE)
		return EXIT_OK;
	trv = tok_find_cert(tok, e->label, NULL, ret_cur, &cert);
	if (trv == TOK_ERR_NOT_FOUND) {
		ret_cur->len = 0;
		return EXIT_OK;
	}
	if (trv == TOK_ERR_AMBIGUOUS) {
		/* Several certificates: which one is the identity cannot be
		 * told.  --replace goes on as before the guard, replacing none. */
		ret_cur->len = 0;
		if (e->replace == 1) {
			log_msg(LOG_NOTICE, "%s: with --replace the new pair is made all the same",
				tok_errmsg(tok));
			return EXIT_OK;
		}
		agent_token_fail(tok, trv, "cannot tell which certificate a new key pair would "
					   "replace");
		log_msg(LOG_ERR, "give --replace (replace = yes) to enroll under '%s' all the same, "
				 "or pick another label",
			e->label);
		return EXIT_USAGE;
	}
	if (trv != TOK_OK) {
		ret_cur->len = 0;
		return agent_token_fail(tok, trv, "cannot look for a certificate the new key pair "
						  "would replace");
	}
	/* Expired (-1): replaced as before.  Not yet valid counts as issued,
	 * and so does a notAfter that cannot be compared (0). */
	if (X509_cmp_time(X509_get0_notAfter(cert), NULL) < 0 || e->replace == 1) {
		X509_free(cert);
		return EXIT_OK;
	}
	describe(cert, subj, sizeof(subj), serial, sizeof(serial), date, sizeof(date));
	X509_free(cert);
	ret_cur->len = 0;
	log_msg(LOG_ERR,
		"label '%s' holds a valid certificate (subject %s, serial %s, not after %s): a new "
		"key pair would replace it%s; give --replace (replace = yes) to replace it and %s "
		"it, or pick another label",
		e->label, subj, serial, date,
		e->keep_old == 1 ? "" : " and delete its key",
		e->keep_old == 1 ? "keep" : "delete");
	return EXIT_USAGE;
}

/* A line of the command's summary (print), else of the log: check prints
 * key=value lines only. */
static void say(int print, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say(int print, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (!print)
		log_msg(LOG_NOTICE, "%s", line + strspn(line, " "));
	else if (log_verbosity() >= 0) /* -q: errors only */
		printf("%s\n", line);
}

/* The rr for cert, signed by its own key (id), reason superseded. */
static agent_rc send_rr(const conf_enrollment *e, tok_ctx *tok, EVP_PKEY *key, X509 *cert,
			const char *serial)
{
	cmpc_ctx *cmp = NULL;
	cmpc_rr_status st = CMPC_RR_ACCEPTED;
	agent_rc rc;
	cmpc_rv crv;

	if ((cmp = agent_cmpc_new()) == NULL)
		return EXIT_INTERNAL;
	if ((rc = agent_cmp_setup(e, cmp)) != EXIT_OK ||
	    (rc = agent_cmp_tls_client(e, cmp, tok, NULL, NULL)) != EXIT_OK)
		goto out;
	if ((crv = cmpc_set1_signer(cmp, cert, key, NULL)) != CMPC_OK) {
		log_msg(LOG_ERR, "cannot sign with the replaced certificate's key: %s: %s",
			cmpc_strerror(crv), cmpc_errmsg(cmp));
		rc = agent_exit_from_cmpc(crv);
		goto out;
	}
	log_msg(LOG_INFO, "sending rr for the replaced certificate, serial %s, reason "
			  "superseded, to %s",
		serial, e->server);
	if ((crv = cmpc_rr(cmp, cert, REASON_SUPERSEDED, &st)) == CMPC_OK) {
		rc = EXIT_OK;
	} else if (crv == CMPC_ERR_REJECTED && cmpc_rr_already_revoked(cmp)) {
		/* What an earlier attempt asked (its answer lost) is done. */
		log_msg(LOG_NOTICE, "the CA says the replaced certificate, serial %s, is already "
				    "revoked",
			serial);
		rc = EXIT_OK;
	} else {
		log_msg(LOG_ERR, "revoking the replaced certificate, serial %s, failed: %s: %s",
			serial, cmpc_strerror(crv), cmpc_errmsg(cmp));
		log_openssl_errors();
		rc = agent_exit_from_cmpc(crv);
	}
out:
	/* the context holds the token key: it goes while the module is loaded */
	cmpc_free(cmp);
	return rc;
}

agent_rc agent_revoke_replaced(const conf_enrollment *e, tok_ctx *tok, int *ret_found,
			       int print)
{
	char subj[512], serial[48], date[64], hex[2 * TOK_ID_MAX + 1];
	char *tol = NULL, *oldl = NULL;
	X509 *cert = NULL;
	EVP_PKEY *key = NULL;
	tok_id id;
	tok_rv trv;
	agent_rc rc = EXIT_OK;

	if (ret_found != NULL)
		*ret_found = 0;
	unrevoked_why[0] = '\0';
	if (e->label == NULL)
		return EXIT_OK;
	if ((tol = agent_label_with(e->label, AGENT_MARK_TO_REVOKE)) == NULL)
		return EXIT_INTERNAL;
	trv = tok_find_cert(tok, tol, NULL, &id, &cert);
	if (trv == TOK_ERR_NOT_FOUND)
		goto out;
	if (trv != TOK_OK) {
		rc = agent_token_fail(tok, trv, "cannot read the replaced certificate waiting to be "
						"revoked");
		goto out;
	}
	if (ret_found != NULL)
		*ret_found = 1;
	describe(cert, subj, sizeof(subj), serial, sizeof(serial), date, sizeof(date));
	agent_hex(id.id, id.len, hex, sizeof(hex));
	/* A pair loses its private key (deleted first) only after the CA
	 * revoked its certificate: what is left of it is deleted. */
	if ((trv = tok_key_get1_private(tok, &id, &key)) == TOK_ERR_NOT_FOUND) {
		if ((trv = tok_key_destroy(tok, &id, 1)) != TOK_OK && trv != TOK_ERR_NOT_FOUND) {
			rc = agent_token_fail(tok, trv, "deleting what is left of a revoked replaced "
							"pair failed");
			goto out;
		}
		log_msg(LOG_NOTICE, "deleted what was left of the replaced pair with id %s (serial "
				    "%s): its certificate is revoked, and a run was interrupted while "
				    "deleting it",
			hex, serial);
		goto out;
	}
	if (trv != TOK_OK) {
		rc = agent_token_fail(tok, trv, "cannot sign the revocation of the replaced "
						"certificate with its key");
		goto out;
	}
	if ((rc = send_rr(e, tok, key, cert, serial)) != EXIT_OK) {
		note_why(); /* the rr's reason, not the advice below */
		log_msg(LOG_ERR,
			"the replaced certificate (subject %s, serial %s) is not revoked; its key "
			"pair stays on the token labelled '%s' and the revocation is retried by the "
			"next run for '%s' (or `p11enroll revoke %s --replaced`)",
			subj, serial, tol, e->name != NULL ? e->name : e->label,
			e->name != NULL ? e->name : "NAME");
		goto out;
	}
	say(print, "  revoked:    replaced certificate, serial %s, reason superseded", serial);
	if (e->keep_old == 1) {
		if ((oldl = agent_label_with(e->label, AGENT_MARK_OLD)) == NULL) {
			rc = EXIT_INTERNAL;
		} else if ((trv = tok_relabel(tok, &id, oldl)) != TOK_OK) {
			rc = agent_token_fail(tok, trv, "the replaced certificate is revoked, but "
							"relabelling its pair failed");
			log_msg(LOG_ERR, "the next run asks the CA again (it answers that it is "
					 "already revoked) and relabels it '%s'",
				oldl);
		} else {
			say(print, "  old pair:   key id %s kept, label '%s'", hex, oldl);
		}
	} else if ((trv = tok_key_destroy(tok, &id, 1)) != TOK_OK) {
		rc = agent_token_fail(tok, trv, "the replaced certificate is revoked, but deleting "
						"its pair failed");
		log_msg(LOG_ERR, "the pair is labelled '%s': the next run for it (or `p11enroll "
				 "revoke %s --replaced`) deletes it",
			tol, e->name != NULL ? e->name : "NAME");
	} else {
		say(print, "  old pair:   key id %s and its certificate deleted", hex);
	}
out:
	if (rc != EXIT_OK && unrevoked_why[0] == '\0')
		note_why();
	EVP_PKEY_free(key);
	X509_free(cert);
	free(tol);
	free(oldl);
	return rc;
}
