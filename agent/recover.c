/*
 * Crash recovery on the token.  enroll and renew generate the new key pair
 * under the temporary label "LABEL (new)", store the new certificate under
 * that label before it is confirmed, and only after the CA's confirmation
 * move the labels (old pair to "LABEL (replaced)", new pair to LABEL) and
 * delete the old pair (with keep_old it becomes "LABEL (old)" and stays).
 * Whatever an interrupted run left (kill -9, power loss) is
 * therefore recognisable by label alone, and one rule finishes or undoes it:
 *   - a new key without a certificate: the certificate never arrived, so
 *     the CA holds no confirmed certificate for it: the key is deleted (a
 *     cross-certificate beside it, ccr --new-key, with it);
 *   - a new key with its certificate: the CA may have had the certConf, so
 *     no second certificate is requested: the pair is adopted;
 *   - a new public key or certificate without its private key (a kill
 *     between the CKA_ID updates of a key generation, or while a pair was
 *     being deleted): deleted;
 *   - a replaced pair next to a complete current pair: deleted.  A pair kept
 *     by keep_old ("LABEL (old)") is never touched;
 *   - what revoke --delete had marked "LABEL (revoked)" and not yet
 *     deleted: deleted;
 *   - a pair marked "LABEL (to revoke)" (revoke_replaced) is never
 *     deleted: its key is the one that signs its revocation, which
 *     agent_revoke_replaced (replace.c) sends at the next run.  A swap
 *     interrupted while moving the old pair there is finished there.
 * Adopting a pair, or deleting a replaced pair, finishes a run that got its
 * certificate: enroll and renew report that run's outcome and request none.
 * A saved pending transaction owns its new key: it is left to `resume`.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "agent/agent-cmd.h"

char *agent_label_with(const char *label, const char *suffix)
{
	size_t n = strlen(label) + strlen(suffix) + 1;
	char *s = malloc(n);

	if (s == NULL) {
		log_msg(LOG_ERR, "out of memory");
		return NULL;
	}
	snprintf(s, n, "%s%s", label, suffix);
	return s;
}

static int same_id(const tok_id *a, const tok_id *b)
{
	return a->len == b->len && memcmp(a->id, b->id, a->len) == 0;
}

/* The end-entity certificate object with that label, else NULL (the first
 * one: tok_find_cert reports duplicates elsewhere). */
static const tok_object *ee_cert(const tok_object *o, size_t n, const char *label)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (o[i].cls == TOK_CKO_CERTIFICATE && o[i].cert_category != 2 &&
		    strcmp(o[i].label, label) == 0)
			return &o[i];
	return NULL;
}

static int has(const tok_object *o, size_t n, unsigned long cls, const tok_id *id)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (o[i].cls == cls && same_id(&o[i].id, id))
			return 1;
	return 0;
}

/* Whether an end-entity certificate with id is there. */
static int has_ee(const tok_object *o, size_t n, const tok_id *id)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (o[i].cls == TOK_CKO_CERTIFICATE && o[i].cert_category != 2 &&
		    same_id(&o[i].id, id))
			return 1;
	return 0;
}

/* Whether an object with id carries label. */
static int labelled(const tok_object *o, size_t n, const tok_id *id, const char *label)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (same_id(&o[i].id, id) && strcmp(o[i].label, label) == 0)
			return 1;
	return 0;
}

static agent_rc destroy(tok_ctx *tok, const tok_id *id, const char *why)
{
	char hex[2 * TOK_ID_MAX + 1];
	tok_rv rv = tok_key_destroy(tok, id, 1);

	agent_hex(id->id, id->len, hex, sizeof(hex));
	if (rv != TOK_OK && rv != TOK_ERR_NOT_FOUND)
		return agent_token_fail(tok, rv, "recovery: deleting a left-over key pair failed");
	log_msg(LOG_NOTICE, "recovery: deleted the key pair with id %s: %s", hex, why);
	return EXIT_OK;
}

static agent_rc relabel(tok_ctx *tok, const tok_id *id, const char *label)
{
	tok_rv rv = tok_relabel(tok, id, label);

	if (rv != TOK_OK)
		return agent_token_fail(tok, rv, "recovery: relabelling failed");
	return EXIT_OK;
}

/* One pass; *again is set when the objects changed and must be read anew,
 * *finished when an interrupted run's certificate was put in place. */
static agent_rc pass(const conf_enrollment *e, tok_ctx *tok, const char *newl, const char *oldl,
		     const char *gonel, const char *revokedl, const char *tol, int *again,
		     int *finished)
{
	const char *labels[5] = {e->label, newl, gonel, revokedl, tol};
	tok_object *o = NULL;
	const tok_object *nc, *cur;
	char hex[2 * TOK_ID_MAX + 1];
	size_t n = 0, i;
	tok_rv rv;
	agent_rc rc = EXIT_OK;

	*again = 0;
	/* Only this enrollment's objects: on an HSM the rest can be thousands.
	 * Nothing under the three marks of an unfinished run (the usual
	 * case): nothing to do, after three searches. */
	if ((rv = tok_objects_for(tok, labels + 1, 3, 0, &o, &n)) != TOK_OK)
		return agent_token_fail(tok, rv, "recovery: cannot list the token's objects");
	if (n == 0)
		goto out;
	tok_objects_free(o, n);
	o = NULL;
	n = 0;
	/* "(to revoke)" is not among the marks looked for above: a whole pair
	 * under it is agent_revoke_replaced's, never recovery's.  It is read
	 * here to finish a swap that was moving the old pair there. */
	if ((rv = tok_objects_for(tok, labels, 5, TOK_FOR_IDS, &o, &n)) != TOK_OK)
		return agent_token_fail(tok, rv, "recovery: cannot list the token's objects");
	/* A new key whose certificate never came (a cross-certificate beside
	 * it, ccr --new-key, is no end-entity certificate: it goes too). */
	for (i = 0; i < n && rc == EXIT_OK; i++)
		if (o[i].cls == TOK_CKO_PRIVATE_KEY && strcmp(o[i].label, newl) == 0 &&
		    !has_ee(o, n, &o[i].id)) {
			rc = destroy(tok, &o[i].id, "an interrupted request left it without a "
						    "certificate");
			*again = 1;
			goto out;
		}
	/* What is left of a new pair whose private key is gone. */
	for (i = 0; i < n && rc == EXIT_OK; i++)
		if ((o[i].cls == TOK_CKO_PUBLIC_KEY ||
		     (o[i].cls == TOK_CKO_CERTIFICATE && o[i].cert_category != 2)) &&
		    strcmp(o[i].label, newl) == 0 && !has(o, n, TOK_CKO_PRIVATE_KEY, &o[i].id)) {
			rc = destroy(tok, &o[i].id, "an interrupted run left it without its private "
						    "key");
			*again = 1;
			goto out;
		}
	/* A new pair with its certificate: adopted, the current one becomes old. */
	if ((nc = ee_cert(o, n, newl)) != NULL && has(o, n, TOK_CKO_PRIVATE_KEY, &nc->id)) {
		agent_hex(nc->id.id, nc->id.len, hex, sizeof(hex));
		log_msg(LOG_NOTICE, "recovery: adopting the certified new key pair with id %s that "
				    "an interrupted run stored",
			hex);
		cur = ee_cert(o, n, e->label);
		/* The old pair goes where the interrupted swap was moving it:
		 * "(to revoke)" when part of it is there already. */
		if (cur != NULL && !same_id(&cur->id, &nc->id)) {
			const char *to = e->keep_old == 1 ? oldl : gonel;

			if (e->revoke_replaced == 1 || labelled(o, n, &cur->id, tol))
				to = tol;
			rc = relabel(tok, &cur->id, to);
		}
		if (rc == EXIT_OK)
			rc = relabel(tok, &nc->id, e->label);
		*again = 1;
		*finished = 1;
		goto out;
	}
	/* Revoked, and its deletion (revoke --delete) did not finish. */
	for (i = 0; i < n && rc == EXIT_OK; i++)
		if (o[i].cert_category != 2 && strcmp(o[i].label, revokedl) == 0) {
			rc = destroy(tok, &o[i].id, "its certificate is revoked, and the deletion "
						    "revoke --delete began did not finish");
			*again = 1;
			goto out;
		}
	/* A replaced pair next to a complete current one: the run that replaced
	 * it was interrupted before (or while) deleting it. */
	cur = ee_cert(o, n, e->label);
	if (cur != NULL && has(o, n, TOK_CKO_PRIVATE_KEY, &cur->id))
		for (i = 0; i < n && rc == EXIT_OK; i++)
			if (o[i].cert_category != 2 && strcmp(o[i].label, gonel) == 0 &&
			    !same_id(&o[i].id, &cur->id)) {
				*finished = 1;
				rc = destroy(tok, &o[i].id, "the run that replaced it was "
							    "interrupted before deleting it");
				*again = 1;
				goto out;
			}
out:
	tok_objects_free(o, n);
	return rc;
}

agent_rc agent_recover_run(const conf_enrollment *e, tok_ctx *tok, int *finished)
{
	agent_pending ap;
	char err[512], *newl = NULL, *oldl = NULL, *gonel = NULL, *revokedl = NULL, *tol = NULL;
	agent_rc rc = EXIT_OK;
	int again = 1, rounds = 0, done = 0;

	if (finished != NULL)
		*finished = 0;
	if (e->label == NULL)
		return EXIT_OK;
	/* The pending transaction's key is not left over: resume owns it. */
	if (pending_load(e, tok_opened_info(tok), &ap, err, sizeof(err)) != 0)
		return EXIT_OK;
	if ((newl = agent_label_with(e->label, AGENT_MARK_NEW)) == NULL ||
	    (oldl = agent_label_with(e->label, AGENT_MARK_OLD)) == NULL ||
	    (gonel = agent_label_with(e->label, AGENT_MARK_REPLACED)) == NULL ||
	    (revokedl = agent_label_with(e->label, AGENT_MARK_REVOKED)) == NULL ||
	    (tol = agent_label_with(e->label, AGENT_MARK_TO_REVOKE)) == NULL) {
		rc = EXIT_INTERNAL;
		goto out;
	}
	/* Each pass fixes one thing; a token holds few objects of one label. */
	while (again && rc == EXIT_OK && rounds++ < 64)
		rc = pass(e, tok, newl, oldl, gonel, revokedl, tol, &again, &done);
	if (finished != NULL)
		*finished = done && rc == EXIT_OK;
out:
	free(newl);
	free(oldl);
	free(gonel);
	free(revokedl);
	free(tol);
	return rc;
}

/* The command that finishes what a run left under "LABEL (new)".  The
 * label is spelt out: a run given --label (cr, a badge) left it under a
 * label the configuration does not name, and recovery looks only there. */
const char *agent_recover_cmd(const conf_enrollment *e, char *buf, size_t len)
{
	snprintf(buf, len, "p11enroll check %s --label '%s' --recover",
		 e->name != NULL ? e->name : "NAME", e->label);
	return buf;
}

int agent_keep_unconfirmed(const conf_enrollment *e, int crv, int stored)
{
	char cmd[512];

	/* The CA answered the certConf with an error: not confirmed, gone. */
	if (!stored || (crv != CMPC_ERR_TRANSPORT && crv != CMPC_ERR_TLS &&
			crv != CMPC_ERR_PROTOCOL && crv != CMPC_ERR_STOPPED))
		return 0;
	log_msg(LOG_WARNING,
		"the certificate is stored, but the confirmation exchange failed, so the CA may "
		"count it as confirmed: it is kept under '%s (new)', and the next run (or "
		"`%s`) puts it in place without a new request",
		e->label, agent_recover_cmd(e, cmd, sizeof(cmd)));
	return 1;
}

void agent_leftover_fail(const conf_enrollment *e, tok_ctx *tok, int trv, int stored)
{
	const char *name = e->name != NULL ? e->name : "NAME";
	char cmd[512];

	agent_token_fail(tok, trv, "could not remove the new key pair after the failure");
	/* Recovery would adopt a pair with its certificate: it is not the
	 * one to remove a certificate the CA did not confirm. */
	if (stored)
		log_msg(LOG_ERR, "the new key pair and its certificate, which the CA did not "
				 "confirm, are left on the token labelled '%s (new)': delete them by "
				 "hand (p11enroll list shows them)",
			e->label);
	else
		log_msg(LOG_ERR, "the new key pair is left on the token labelled '%s (new)': the "
				 "next p11enroll run for '%s' (or `%s`) removes it",
			e->label, name, agent_recover_cmd(e, cmd, sizeof(cmd)));
}

agent_rc agent_recover(const conf_enrollment *e, tok_ctx *tok)
{
	return agent_recover_run(e, tok, NULL);
}

agent_rc agent_recover_report(const conf_enrollment *e, tok_ctx *tok, const char *verb)
{
	X509 *cert = NULL;
	tok_id id;
	tok_rv rv;

	if ((rv = tok_find_cert(tok, e->label, NULL, &id, &cert)) != TOK_OK)
		return agent_token_fail(tok, rv, "cannot read the certificate the recovery put in "
						 "place");
	log_msg(LOG_NOTICE, "the interrupted run's certificate is in place: no new request is "
			    "sent (run the command again for another certificate)");
	agent_print_cert(verb, e, id.id, id.len, e->label, cert);
	if (e->cert_out != NULL && agent_write_pem(e->cert_out, cert, NULL) < 0)
		log_msg(LOG_WARNING, "the certificate is on the token, but a file copy failed");
	X509_free(cert);
	return EXIT_OK;
}
