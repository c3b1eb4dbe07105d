/*
 * The one certificate request sequence, for every kind (ir, cr, p10cr,
 * kur; the kind's own set-up is its prepare step).  It carries the
 * crash-safety rule (STATE-MACHINE.md, "Interrupted runs"): a new key pair
 * is generated under "LABEL (new)" and keeps that label until the CA has
 * confirmed its certificate; only then does swap_in move the labels
 * (old pair first) and delete or keep the old pair.  A killed run is
 * finished by agent_recover at the next start; a failed one leaves the
 * token as it found it, but for what the CA may still deliver (the
 * pending transaction, the unconfirmed certificate kept for recovery).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "agent/agent-cmd.h"
#include "agent/journal.h"
#include "agent/result.h"

agent_rc agent_key_spec(const conf_enrollment *e, tok_keyspec *spec)
{
	int alg, bits;

	*spec = (tok_keyspec){ .alg = TOK_KEY_EC, .bits = 256 };
	if (e->key_type == NULL)
		return EXIT_OK;
	if (conf_parse_key_type(e->key_type, &alg, &bits) < 0) {
		log_msg(LOG_ERR, "key type '%s' is not one of ec:P-256, ec:P-384, rsa:2048, "
				 "rsa:3072, rsa:4096",
			e->key_type);
		return EXIT_USAGE;
	}
	spec->alg = (tok_keyalg)alg;
	spec->bits = bits;
	return EXIT_OK;
}

struct store_ctx {
	tok_ctx *tok;
	const tok_id *id; /* len 0: not on the token, only cert_out */
	const char *label;
	const char *cert_out;
	int chain_now;
	/* The callback's last word: stored (the certificate, and with
	 * chain_now its CA chain, are on the token), or why storing failed. */
	int stored;
	agent_rc rc;
	/* CA certificates this run put on the token: taken off again when the
	 * request fails after all (a failed certConf, say). */
	STACK_OF(X509) *created;
};

/*
 * The accept callback: the certificate goes on the token before the
 * certConf says it is accepted, so that a certificate the CA holds as
 * confirmed is never lost.  An enrollment stores the CA chain with it (a
 * failure to store it refuses the certificate); a renewal adds the chain
 * only after success (swap_in), so that a failed one adds nothing.  The
 * chain goes first and the certificate last: a certificate under the
 * temporary label then means that everything was stored and the certConf
 * accepted it, so recovery (after a kill, or a card pulled out while the
 * chain was written) never adopts one the CA was told is refused.
 */
static int store_cb(X509 *cert, STACK_OF(X509) *cacerts, void *arg, char *why, size_t whylen)
{
	struct store_ctx *s = arg;
	char label[256];
	tok_rv rv;
	int i, created;

	s->stored = 0;
	/* Interrupted after the CA issued it and before the certConf: the CA
	 * is told in the certConf that it is refused, and the key goes. */
	if (agent_interrupted() != 0) {
		agent_undo_begin();
		snprintf(why, whylen, "the run was interrupted (%s) before it was stored",
			 agent_signal_name(agent_interrupted()));
		s->rc = EXIT_INTERRUPTED;
		return -1;
	}
	if (s->id->len == 0) {
		/* a given CSR whose key is not on the token: the file is the
		 * only copy, and a certificate that cannot be written there is
		 * refused in the certConf */
		if (agent_write_pem(s->cert_out, cert, NULL) < 0) {
			snprintf(why, whylen, "writing it to %s failed", s->cert_out);
			s->rc = EXIT_CERT;
			return -1;
		}
		s->stored = 1;
		s->rc = EXIT_OK;
		return 0;
	}
	for (i = 0; s->chain_now && i < sk_X509_num(cacerts); i++) {
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
	if ((rv = tok_cert_store(s->tok, cert, s->id, s->label)) != TOK_OK) {
		snprintf(why, whylen, "storing it on the token failed: %s: %s", tok_strerror(rv),
			 tok_errmsg(s->tok));
		s->rc = agent_exit_from_tok(rv);
		return -1;
	}
	/* Interrupted while it was stored: it goes again before the certConf
	 * refuses it, as recovery would adopt it.  If it cannot go, the run
	 * goes on as if there had been no signal. */
	if (agent_interrupted() != 0 && tok_cacert_destroy(s->tok, cert) == TOK_OK) {
		agent_undo_begin();
		snprintf(why, whylen, "the run was interrupted (%s) while it was stored",
			 agent_signal_name(agent_interrupted()));
		s->rc = EXIT_INTERRUPTED;
		return -1;
	}
	s->stored = 1;
	s->rc = EXIT_OK;
	return 0;
}

/* key_source = central: the CA's key onto the token under the temporary
 * label, then the certificate beside it as store_cb stores any; the pair
 * is this run's (*generated) from the moment it exists. */
struct central_ctx {
	agent_central c;
	const tok_keyspec *spec; /* what key_type asked for */
	struct store_ctx *sc;
	tok_id *id;
	int *generated;
};

static int central_cb(X509 *cert, STACK_OF(X509) *cacerts, const cmpc_privkey *k, void *arg,
		      char *why, size_t whylen)
{
	struct central_ctx *cc = arg;

	EVP_PKEY *pub = X509_get0_pubkey(cert);
	int rsa = pub != NULL && EVP_PKEY_is_a(pub, "RSA");

	if (agent_interrupted() != 0)
		return store_cb(cert, cacerts, cc->sc, why, whylen);
	/* The CA decides (RFC 9483 4.1.6 sends no RSA size): said, not refused. */
	if (pub != NULL && (rsa != (cc->spec->alg == TOK_KEY_RSA) ||
			    EVP_PKEY_get_bits(pub) != cc->spec->bits))
		log_msg(LOG_WARNING, "the CA made an %s %d key, key_type asked for %s %d",
			rsa ? "RSA" : "EC", EVP_PKEY_get_bits(pub),
			cc->spec->alg == TOK_KEY_RSA ? "RSA" : "EC", cc->spec->bits);
	agent_wait_show("unwrapping the CA's key on token '%s'...",
			tok_opened_info(cc->c.tok)->label);
	if (agent_central_import(&cc->c, cert, cacerts, k, why, whylen) != 0) {
		agent_wait_done();
		cc->sc->rc = cc->c.rc;
		return -1;
	}
	agent_wait_done();
	*cc->id = cc->c.id;
	*cc->generated = 1;
	if (cc->c.software)
		log_msg(LOG_WARNING, "the private key passed through this process's memory "
				     "(allow_software_import = yes): the token did not unwrap it");
	else
		log_msg(LOG_INFO, "the CA's private key was unwrapped on the token (C_UnwrapKey): "
				  "it never was in this process's memory");
	return store_cb(cert, cacerts, cc->sc, why, whylen);
}

/* The request of key_source = central (RFC 9483 4.1.6): no key is made
 * here; the CA's comes in the answer. */
static cmpc_rv central_request(agent_req *r, const char *new_label, tok_id *id, int *generated,
			       struct store_ctx *sc, X509 **cert, STACK_OF(X509) **cacerts,
			       agent_rc *rc)
{
	struct central_ctx cc;
	cmpc_central_req rq;
	EVP_PKEY *tpub = NULL;
	cmpc_rv crv;

	memset(&cc, 0, sizeof(cc));
	memset(&rq, 0, sizeof(rq));
	if ((*rc = agent_central_begin(&cc.c, r->tok, r->e, new_label, &tpub)) != EXIT_OK)
		return CMPC_ERR_INTERNAL;
	cc.sc = sc;
	cc.spec = &r->spec;
	cc.id = id;
	cc.generated = generated;
	sc->tok = r->tok;
	sc->id = id;
	sc->label = new_label;
	sc->cert_out = r->e->cert_out;
	sc->chain_now = r->type != CMPC_REQ_KUR;
	sc->created = sk_X509_new_null();
	rq.key_alg = r->spec.alg == TOK_KEY_RSA ? CMPC_CENTRAL_RSA : CMPC_CENTRAL_EC;
	rq.key_bits = r->spec.bits;
	rq.transport = tpub;
	rq.oldcert = r->old_cert;
	rq.import = central_cb;
	rq.arg = &cc;
	agent_wait_show("asking %s for a centrally generated key...", r->e->server);
	log_msg(LOG_INFO, "sending the %s to %s: the CA makes the key pair (key_source = central)",
		pending_req_name(r->type), r->e->server);
	crv = cmpc_central(r->cmp, r->type, &rq, cert, cacerts);
	agent_central_end(&cc.c);
	EVP_PKEY_free(tpub);
	return crv;
}

/* The CMP layer only saw that signing failed; the token may say why. */
static void explain_key_failure(tok_ctx *tok)
{
	tok_info info;
	tok_rv rv = tok_get_info(tok, &info);

	if (rv != TOK_OK)
		agent_token_fail(tok, rv, "the token did not sign");
}

static const char *key_name(const tok_keyspec *spec)
{
	if (spec->alg == TOK_KEY_RSA)
		return spec->bits == 4096 ? "n RSA 4096" : spec->bits == 3072 ? "n RSA 3072"
									  : "n RSA 2048";
	return spec->bits == 384 ? "n EC P-384" : "n EC P-256";
}

/* The key the request certifies: the pending transaction's, the user's
 * (key_id), or a new pair under new_label.  *ret_generated: this run (or
 * the pending one) made it, and it goes if the request fails. */
static agent_rc pick_key(agent_req *r, const char *new_label, tok_id *id, int *ret_generated)
{
	const conf_enrollment *e = r->e;
	char hex[2 * TOK_ID_MAX + 1];
	tok_rv trv;

	if (r->resume != NULL && r->csr == NULL) {
		memcpy(id->id, r->resume->key_id, r->resume->key_id_len);
		id->len = r->resume->key_id_len;
		*ret_generated = r->resume->key_generated;
		agent_hex(id->id, id->len, hex, sizeof(hex));
		log_msg(LOG_INFO, "resuming the pending %s for the key pair with id %s",
			pending_req_name(r->type), hex);
		return EXIT_OK;
	}
	if (r->csr != NULL) {
		/* The CSR's own key: certified where it is, never generated
		 * nor removed here; id len 0 when the token does not hold it. */
		*ret_generated = 0;
		memset(id, 0, sizeof(*id));
		trv = tok_key_find(r->tok, X509_REQ_get0_pubkey(r->csr), id);
		if (trv == TOK_OK) {
			agent_hex(id->id, id->len, hex, sizeof(hex));
			log_msg(LOG_INFO, "the csr is for the key pair with id %s on the token",
				hex);
			return EXIT_OK;
		}
		if (trv != TOK_ERR_NOT_FOUND)
			return agent_token_fail(r->tok, trv, "looking for the csr's key on the "
							     "token failed");
		log_msg(LOG_INFO, "%s", tok_errmsg(r->tok));
		id->len = 0;
		if (e->cert_out == NULL) {
			log_msg(LOG_ERR, "the csr %s is for a key that is not on token '%s': the "
					 "certificate cannot be stored next to its key; set cert_out "
					 "(--cert-out FILE) to receive it in a file instead",
				e->csr, tok_opened_info(r->tok)->label);
			return EXIT_USAGE;
		}
		log_msg(LOG_INFO, "the csr is for a key that is not on the token: the "
				  "certificate goes to %s only",
			e->cert_out);
		return EXIT_OK;
	}
	if (r->type != CMPC_REQ_KUR && e->key_id != NULL) {
		/* The user's key: never generated nor removed here. */
		if (conf_parse_hex(e->key_id, id->id, sizeof(id->id), &id->len) < 0) {
			log_msg(LOG_ERR, "key_id '%.80s' is not a CKA_ID in hex (an even number of "
					 "hex digits, at most %d bytes)",
				e->key_id, TOK_ID_MAX);
			return EXIT_USAGE;
		}
		log_msg(LOG_INFO, "certifying the existing key pair with id %s", e->key_id);
		return EXIT_OK;
	}
	agent_wait_show("generating a%s key on token '%s'...", key_name(&r->spec),
			tok_opened_info(r->tok)->label);
	trv = tok_keygen(r->tok, &r->spec, new_label, id);
	agent_wait_done();
	if (trv != TOK_OK)
		return agent_token_fail(r->tok, trv, "generating the new key pair on the token failed");
	if (tok_keygen_notice(r->tok)[0] != '\0')
		log_msg(LOG_NOTICE, "%s", tok_keygen_notice(r->tok));
	*ret_generated = 1;
	agent_hex(id->id, id->len, hex, sizeof(hex));
	log_msg(LOG_INFO, "generated a new key pair on the token, id %s, label '%s'", hex,
		new_label);
	return EXIT_OK;
}

static void store_cacerts(tok_ctx *tok, STACK_OF(X509) *cacerts)
{
	char label[256];
	tok_rv rv;
	int i;

	for (i = 0; i < sk_X509_num(cacerts); i++) {
		X509 *ca = sk_X509_value(cacerts, i);

		if (agent_ca_label(ca, label, sizeof(label)) < 0)
			log_msg(LOG_WARNING, "naming a CA certificate for the token failed (out of "
					     "memory?): not stored");
		else if ((rv = tok_cacert_store(tok, ca, label, NULL)) != TOK_OK)
			log_msg(LOG_WARNING, "storing CA certificate '%s' on the token failed: %s: %s",
				label, tok_strerror(rv), tok_errmsg(tok));
	}
}

/*
 * After the CA confirmed the certificate stored for new_id under the
 * temporary label: the old pair (old_id, may be NULL) becomes "LABEL
 * (replaced)" (keep_old: "LABEL (old)"; revoke_replaced: "LABEL (to
 * revoke)"), the new one LABEL, the CA certificates are stored, the old
 * pair deleted unless keep_old (revoke_replaced: revoked, then deleted or
 * kept), the summary printed ("VERB NAME ...") and the files exported.
 */
static agent_rc swap_in(const conf_enrollment *e, tok_ctx *tok, const tok_id *new_id,
			const tok_id *old_id, const char *verb, X509 *cert, STACK_OF(X509) *cacerts,
			int store_chain)
{
	/* A pair to be deleted carries "(replaced)", so that recovery never
	 * mistakes it for one kept by keep_old; one to be revoked "(to
	 * revoke)", which recovery leaves to agent_revoke_replaced. */
	int revoke = old_id != NULL && e->revoke_replaced == 1;
	const char *mark = revoke ? AGENT_MARK_TO_REVOKE
			   : e->keep_old == 1 ? AGENT_MARK_OLD
					      : AGENT_MARK_REPLACED;
	char *old_label = agent_label_with(e->label, mark);
	char cmd[512];
	char hex[2 * TOK_ID_MAX + 1];
	tok_rv trv;
	agent_rc rc = EXIT_OK;

	if (old_label == NULL)
		return EXIT_INTERNAL;
	/* Old first: at no point do two pairs carry the enrollment's label.  An
	 * interruption anywhere here is finished by agent_recover. */
	if (old_id != NULL && (trv = tok_relabel(tok, old_id, old_label)) != TOK_OK) {
		rc = agent_token_fail(tok, trv, "the new certificate is stored, but relabelling the "
						"old pair failed");
		goto fail;
	}
	if ((trv = tok_relabel(tok, new_id, e->label)) != TOK_OK) {
		rc = agent_token_fail(tok, trv, "the new certificate is stored, but relabelling it "
						"failed");
		goto fail;
	}
	if (store_chain)
		store_cacerts(tok, cacerts);
	agent_print_cert(verb, e, new_id->id, new_id->len, e->label, cert);
	if (old_id != NULL) {
		agent_hex(old_id->id, old_id->len, hex, sizeof(hex));
		if (revoke) {
			if ((rc = agent_revoke_replaced(e, tok, NULL, 1)) != EXIT_OK) {
				log_msg(LOG_ERR, "the new certificate is in place and in use; only the "
						 "revocation of the one it replaced is left to do");
				agent_revoke_replaced_unrevoked(rc);
			}
		} else if (e->keep_old == 1) {
			if (log_verbosity() >= 0)
				printf("  old pair:   key id %s kept, label '%s'\n", hex, old_label);
		} else if ((trv = tok_key_destroy(tok, old_id, 1)) != TOK_OK) {
			rc = agent_token_fail(tok, trv, "the new certificate is in place, but deleting "
							"the old pair failed");
			log_msg(LOG_ERR, "the old pair is labelled '%s': delete it by hand", old_label);
		} else if (log_verbosity() >= 0) {
			printf("  old pair:   key id %s and its certificate deleted\n", hex);
		}
	}
	if ((e->cert_out != NULL && agent_write_pem(e->cert_out, cert, NULL) < 0) ||
	    (e->chain_out != NULL && agent_write_pem(e->chain_out, NULL, cacerts) < 0))
		log_msg(LOG_WARNING, "the certificate is on the token, but a file copy failed");
	free(old_label);
	return rc;
fail:
	/* plain `check` does no recovery: --recover is part of the advice */
	log_msg(LOG_ERR, "the next p11enroll run for '%s' (or `%s`) finishes the relabelling",
		e->name != NULL ? e->name : "this enrollment", agent_recover_cmd(e, cmd, sizeof(cmd)));
	free(old_label);
	return rc;
}

/* After the CA confirmed: the user's key is certified where it is; a new
 * pair takes the label from the one it replaces. */
static agent_rc finish(agent_req *r, const tok_id *id, int generated, X509 *cert,
		       STACK_OF(X509) *cacerts)
{
	const conf_enrollment *e = r->e;
	X509 *cur = NULL;
	tok_id cur_id;
	agent_rc rc;

	if (id->len == 0) {
		/* the accept callback wrote cert_out, the only copy */
		if (e->chain_out != NULL && agent_write_pem(e->chain_out, NULL, cacerts) < 0)
			log_msg(LOG_WARNING, "the certificate is in %s, but the chain file failed",
				e->cert_out);
		agent_print_cert(r->verb, e, NULL, 0, "(not on the token)", cert);
		printf("  written to: %s\n", e->cert_out);
		return EXIT_OK;
	}
	if (!generated) {
		if ((e->cert_out != NULL && agent_write_pem(e->cert_out, cert, NULL) < 0) ||
		    (e->chain_out != NULL && agent_write_pem(e->chain_out, NULL, cacerts) < 0))
			log_msg(LOG_WARNING, "the certificate is on the token, but a file copy "
					     "failed");
		agent_print_cert(r->verb, e, id->id, id->len, e->label, cert);
		return EXIT_OK;
	}
	if (r->have_old) {
		cur_id = r->old_id;
	} else if (r->cur_looked) {
		cur_id = r->cur_id; /* the guard looked; the lock kept the label as it was */
		if (cur_id.len == id->len && memcmp(cur_id.id, id->id, id->len) == 0)
			cur_id.len = 0;
	} else if ((r->known & AGENT_REQ_LABEL_FREE) ||
		   tok_find_cert(r->tok, e->label, NULL, &cur_id, &cur) != TOK_OK ||
		   (cur_id.len == id->len && memcmp(cur_id.id, id->id, id->len) == 0)) {
		cur_id.len = 0; /* nothing to replace */
	}
	X509_free(cur);
	/* the accept callback stored the chain of an enrollment already */
	rc = swap_in(e, r->tok, id, cur_id.len > 0 ? &cur_id : NULL, r->verb, cert, cacerts,
		     r->type == CMPC_REQ_KUR);
	if (log_verbosity() >= 0)
		printf("  transaction: %s\n", cmpc_transaction_id(r->cmp));
	return rc;
}

static agent_rc interrupted(const char *what)
{
	log_msg(LOG_ERR, "interrupted (%s) %s", agent_signal_name(agent_interrupted()), what);
	return EXIT_INTERRUPTED;
}

/*
 * The request was stopped by a signal (or failed after one): what the run
 * started is undone as far as it can be.  The certificate stored under
 * the temporary label after its certConf went out stays for recovery: the
 * CA may hold it as confirmed.  A transaction the CA answered "waiting"
 * is given up at the CA (a resumed one is kept: this run did not start
 * it), and the new key pair goes (*generated stays set for out:).
 */
static agent_rc undo(agent_req *r, pending_saver *ps, struct store_ctx *sc, int *generated)
{
	agent_undo_begin();
	log_msg(LOG_NOTICE, "%s stopped: %s", r->what, cmpc_errmsg(r->cmp));
	/* The accept callback refused it for the signal: the certConf ended
	 * the transaction, also a resumed one. */
	if (sc->rc == EXIT_INTERRUPTED) {
		(void)pending_after(ps, r->cmp, CMPC_ERR_CERT);
		return interrupted(*generated ? "after the CA issued the certificate: it was "
						"refused in the certConf and the new key pair is "
						"removed"
					      : "after the CA issued the certificate: it was refused "
						"in the certConf");
	}
	if (sc->stored && agent_keep_unconfirmed(r->e, CMPC_ERR_STOPPED, 1)) {
		*generated = 0;
		(void)pending_after(ps, r->cmp, CMPC_ERR_CERT);
		return interrupted("after the certificate was stored and its certConf sent");
	}
	if (r->resume != NULL) {
		*generated = 0;
		log_msg(LOG_NOTICE, "the pending %s is kept: run `p11enroll resume %s` to go on",
			pending_req_name(r->type), r->e->name);
		return interrupted("while polling the CA: nothing to undo");
	}
	(void)pending_after(ps, r->cmp, CMPC_ERR_STOPPED);
	return interrupted(*generated ? "during the request: the new key pair is removed"
				      : "during the request");
}

/* The CA's rejection, for the agent's status: its PKIStatus and failInfo
 * names in the step's record. */
static void note_rejection(const cmpc_ctx *cmp)
{
	agent_result *res = agent_result_self();
	int fi = cmpc_rejection(cmp);

	if (fi < 0)
		return;
	snprintf(res->ca_status, sizeof(res->ca_status), "rejection");
	cmpc_failinfo_names(fi, res->ca_fail_info, sizeof(res->ca_fail_info));
}

agent_rc agent_certreq_run(agent_req *r, const agent_pending *resume, int abandon)
{
	const conf_enrollment *e = r->e;
	struct store_ctx sc = { 0 };
	pending_saver ps;
	agent_pending own;
	STACK_OF(X509) *cacerts = NULL;
	EVP_PKEY *key = NULL;
	X509 *cert = NULL, *archive_cert = NULL;
	char *new_label = NULL;
	tok_id id;
	int generated = 0, finished = 0, i;
	agent_rc rc;
	tok_rv trv;
	cmpc_rv crv;

	/* A batch lends its token and CMP context: used, not opened or freed. */
	int own_tok = r->tok == NULL, own_cmp = r->cmp == NULL;

	memset(&ps, 0, sizeof(ps));
	memset(&id, 0, sizeof(id));
	/* A copy: an old version's file gets its new name once the token is
	 * known (pending_check_token). */
	if (resume != NULL) {
		own = *resume;
		resume = &own;
	}
	r->resume = resume;
	if (e->label == NULL) {
		log_msg(LOG_ERR, "no label: the key and certificate are found by it; set label or "
				 "--label");
		return EXIT_USAGE;
	}
	if ((rc = agent_central_check(e, r->type)) != EXIT_OK)
		return rc;
	if ((rc = agent_key_spec(e, &r->spec)) != EXIT_OK)
		return rc;
	r->spec.allow_decrypt = e->allow_decrypt == 1;
	r->spec.archivable = e->archive_key == 1 && resume == NULL;
	if (resume == NULL && (rc = agent_archive_check(e, r->type, r->spec.alg)) != EXIT_OK)
		goto out;
	if ((new_label = agent_label_with(e->label, AGENT_MARK_NEW)) == NULL ||
	    (own_cmp && (r->cmp = agent_cmpc_new()) == NULL)) {
		rc = EXIT_INTERNAL;
		goto out;
	}
	/* Everything that can be checked before the token is touched first:
	 * an ir is always protected with PBM, a kur never (no secret is
	 * given to its context at all). */
	if ((rc = agent_cmp_setup(e, r->cmp)) != EXIT_OK ||
	    (r->type == CMPC_REQ_IR && (rc = agent_cmp_use_pbm(e, r->cmp, "the ir")) != EXIT_OK) ||
	    (resume == NULL && (rc = agent_archive_cert(e, r->cmp, &archive_cert)) != EXIT_OK))
		goto out;
	if (own_tok && (rc = agent_token_open(e, &r->tok, 1)) != EXIT_OK)
		goto out;
	if (resume != NULL && (rc = pending_check_token(e, r->tok, &own)) != EXIT_OK)
		goto out;
	if (resume == NULL && (rc = pending_refuse_new(e, r->tok)) != EXIT_OK)
		goto out;
	if (resume == NULL && !(r->known & AGENT_REQ_NO_LEFTOVERS) &&
	    (rc = agent_recover_run(e, r->tok, &finished)) != EXIT_OK)
		goto out;
	/* A killed run got its certificate (the CA may have its certConf): that
	 * run is finished, and no second certificate is requested. */
	if (finished) {
		rc = agent_recover_report(e, r->tok, r->verb);
		if (rc == EXIT_OK && e->revoke_replaced == 1 &&
		    (rc = agent_revoke_replaced(e, r->tok, NULL, 1)) != EXIT_OK)
			agent_revoke_replaced_unrevoked(rc); /* that run is done */
		goto out;
	}
	/* The replaced certificate of an earlier run is revoked before
	 * another one can be queued: at most one pair waits under the mark.
	 * That run got its certificate (killed, or its rr failed): like a
	 * run recovery finished, it is done, and no second one is asked. */
	if (e->revoke_replaced == 1 && !(r->known & AGENT_REQ_NO_LEFTOVERS)) {
		if ((rc = agent_revoke_replaced(e, r->tok, &finished, 1)) != EXIT_OK) {
			log_msg(LOG_ERR, "no new request is sent until it is revoked (or set "
					 "revoke_replaced = no and delete the pair by hand)");
			goto out;
		}
		if (finished && resume == NULL) {
			rc = agent_recover_report(e, r->tok, r->verb);
			goto out;
		}
	}
	/* Before a key is made: a valid certificate is replaced only on
	 * purpose (kur is for replacing; a resumed request was let through
	 * when it began; the user's own key_id replaces nothing). */
	if (resume == NULL && r->type != CMPC_REQ_KUR && e->key_id == NULL && r->csr == NULL) {
		if ((rc = agent_replace_guard(e, r->tok, r->known, &r->cur_id)) != EXIT_OK)
			goto out;
		r->cur_looked = 1;
	}
	if ((rc = r->prepare(r)) != EXIT_OK)
		goto out;
	if (abandon) {
		rc = pending_abandon(e, r->cmp, r->tok, resume);
		goto out;
	}
	if (e->use_template == 1 &&
	    ((rc = agent_template_fetch(e, r->tok, r->old_cert, r->old_key, &r->tmpl)) != EXIT_OK ||
	     (rc = agent_template_apply(e, &r->tmpl, &r->spec, r->cmp)) != EXIT_OK))
		goto out;
	if (agent_interrupted() != 0) {
		rc = interrupted("before a new key was made: nothing to undo");
		goto out;
	}
	if (agent_is_central(e)) {
		/* nothing to resume: the transport key ends with this run */
		pending_saver_init(&ps, e, r->tok, &id, 0, NULL);
		crv = central_request(r, new_label, &id, &generated, &sc, &cert, &cacerts, &rc);
		if (rc != EXIT_OK)
			goto out;
		goto answered;
	}
	if ((rc = pick_key(r, new_label, &id, &generated)) != EXIT_OK)
		goto out;
	if (agent_interrupted() != 0 && generated && resume == NULL) {
		rc = interrupted("before the request was sent: the new key pair is removed");
		goto out;
	}
	/* Wrapped for the CA before it is used: from here on it is not
	 * extractable, whatever happens to the request. */
	if (generated && resume == NULL &&
	    (rc = agent_archive_wrap(e, r->tok, &id, r->cmp, archive_cert)) != EXIT_OK)
		goto out;
	if (id.len == 0 && r->csr != NULL) {
		/* Not on the token: the request is the CSR, signed already; the
		 * public key is what the issued certificate is checked against. */
		key = X509_REQ_get0_pubkey(r->csr);
		if (key == NULL || !EVP_PKEY_up_ref(key)) {
			key = NULL;
			rc = EXIT_INTERNAL;
			goto out;
		}
	} else if ((trv = tok_key_get1_private(r->tok, &id, &key)) != TOK_OK) {
		rc = agent_token_fail(r->tok, trv,
				      resume != NULL ? "cannot use the key of the pending request"
				      : generated    ? "cannot use the new key"
						     : "cannot use the key pair with that key_id");
		/* The pending transaction owns its key: a failure to read it
		 * (the token busy, out of memory) must not delete it. */
		if (resume != NULL) {
			if (trv == TOK_ERR_NOT_FOUND)
				log_msg(LOG_ERR, "the key pair is gone: give the request up with "
						 "`p11enroll resume --abandon %s`",
					e->name);
			else
				log_msg(LOG_ERR, "the key pair and the pending request are kept: "
						 "run `p11enroll resume %s` again",
					e->name);
			generated = 0;
		}
		goto out;
	}
	pending_saver_init(&ps, e, r->tok, &id, generated, resume);
	/* A transaction for a key that is not on the token is not kept: it
	 * has no key to resume with (run p10cr again). */
	if (id.len > 0)
		cmpc_set_pending_cb(r->cmp, pending_saver_cb, &ps);
	sc.tok = r->tok;
	sc.id = &id;
	sc.label = generated ? new_label : e->label;
	sc.cert_out = e->cert_out;
	sc.chain_now = r->type != CMPC_REQ_KUR;
	sc.created = sk_X509_new_null();
	cmpc_set_accept_cb(r->cmp, store_cb, &sc);
	/* A slow token's signatures come first, then the CA's answer. */
	agent_wait_show("signing the %s with the key%s on token '%s'...", pending_req_name(r->type),
			r->have_old ? "s" : "", tok_opened_info(r->tok)->label);
	/* For p10cr the protocol layer makes the CSR from the subject and SANs
	 * set up above (template included) and the token signs it, unless one
	 * is given (csr). */
	if (resume != NULL) {
		log_msg(LOG_INFO, "polling %s for the pending %s", e->server,
			pending_req_name(r->type));
		agent_spool_resume(resume);
		crv = cmpc_resume(r->cmp, &resume->p, key, r->old_cert, r->csr, &cert, &cacerts);
	} else {
		log_msg(LOG_INFO, "sending the %s to %s%s", pending_req_name(r->type), e->server,
			r->have_old ? ", signed with the old key" : "");
		crv = cmpc_certreq(r->cmp, r->type, key, r->old_cert, r->csr, &cert, &cacerts);
	}
answered:
	agent_wait_done();
	snprintf(agent_result_self()->transaction, sizeof(agent_result_self()->transaction), "%s",
		 cmpc_transaction_id(r->cmp));
	if (crv != CMPC_OK && (crv == CMPC_ERR_STOPPED || agent_interrupted() != 0)) {
		rc = undo(r, &ps, &sc, &generated);
		goto out;
	}
	if (crv != CMPC_OK) {
		note_rejection(r->cmp);
		log_msg(LOG_ERR, "%s failed%s%s%s: %s: %s", r->what,
			*cmpc_transaction_id(r->cmp) ? " (transaction " : "",
			cmpc_transaction_id(r->cmp), *cmpc_transaction_id(r->cmp) ? ")" : "",
			cmpc_strerror(crv), cmpc_errmsg(r->cmp));
		log_openssl_errors();
		rc = sc.rc != EXIT_OK ? sc.rc : agent_exit_from_cmpc(crv);
		if (crv == CMPC_ERR_KEY)
			explain_key_failure(r->tok);
		if (agent_keep_unconfirmed(e, crv, sc.stored)) {
			/* Kept for recovery to adopt; no transaction is left. */
			(void)pending_after(&ps, r->cmp, CMPC_ERR_CERT);
			generated = 0;
		} else if (pending_after(&ps, r->cmp, crv)) {
			generated = 0; /* kept for `p11enroll resume` */
		}
		goto out;
	}
	(void)pending_after(&ps, r->cmp, CMPC_OK);
	rc = finish(r, &id, generated, cert, cacerts);
	generated = 0; /* the CA confirmed it: from here on the new pair stays */
out:
	if (!abandon)
		agent_journal_request(e, pending_req_name(r->type), rc, r->tok, r->cmp, cert);
	EVP_PKEY_free(key);
	if (generated) {
		/* The token ends as it began: the new pair and its certificate go. */
		if ((trv = tok_key_destroy(r->tok, &id, 1)) != TOK_OK)
			agent_leftover_fail(e, r->tok, trv, sc.stored);
		else
			log_msg(LOG_NOTICE, "the new key pair was removed from the token%s",
				r->have_old ? "; the old key and certificate are unchanged" : "");
		for (i = 0; i < sk_X509_num(sc.created); i++)
			if ((trv = tok_cacert_destroy(r->tok, sk_X509_value(sc.created, i))) != TOK_OK)
				agent_token_fail(r->tok, trv, "could not remove a CA certificate stored "
							      "by the failed run");
	}
	sk_X509_pop_free(sc.created, X509_free);
	cmpc_template_clear(&r->tmpl);
	X509_free(archive_cert);
	free(new_label);
	X509_free(cert);
	sk_X509_pop_free(cacerts, X509_free);
	EVP_PKEY_free(r->old_key);
	X509_free(r->old_cert);
	r->old_key = NULL;
	r->old_cert = NULL;
	/* A batch lends its context to the next enrollment: this one's
	 * archived key must not go with that one's request. */
	if (!own_cmp && r->cmp != NULL)
		(void)cmpc_set1_archive(r->cmp, NULL);
	/* The cmpc context may hold a token key (the signer): it goes first,
	 * while the module is still loaded. */
	if (own_cmp)
		cmpc_free(r->cmp);
	if (own_tok)
		tok_free(r->tok);
	r->cmp = NULL;
	r->tok = NULL;
	return rc;
}
