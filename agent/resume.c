/*
 * A request the CA answered "waiting" outlives the process that sent it.
 * The request sequence (certreq.c) saves each "waiting" answer
 * (pending_saver), refuses a new request while one is pending, and on
 * `p11enroll resume` (request.c) checks the token and continues the
 * transaction with pollReq, or with --abandon tells the CA it is given up
 * and deletes the new key.  The new key stays on the token only while a
 * saved transaction can still bring its certificate.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "agent/agent-cmd.h"

void pending_saver_init(pending_saver *s, const conf_enrollment *e, tok_ctx *tok,
			const tok_id *key, int key_generated, const agent_pending *resume)
{
	memset(s, 0, sizeof(*s));
	s->e = e;
	s->tok = tok;
	if (resume != NULL) {
		s->ap = *resume;
		s->have = s->saved = 1;
		return;
	}
	memcpy(s->ap.key_id, key->id, key->len);
	s->ap.key_id_len = key->len;
	s->ap.key_generated = key_generated;
	pending_set_owner(&s->ap, e, tok_opened_info(tok));
}

void pending_saver_cb(const cmpc_pending *p, void *arg)
{
	pending_saver *s = arg;
	char err[512], path[1024];

	s->ap.p = *p;
	s->ap.store_seq = agent_spool_seq();
	s->ap.saved = time(NULL);
	s->have = 1;
	if (pending_save(s->e, &s->ap, err, sizeof(err)) < 0) {
		/* Said once: the callback runs at every "waiting". */
		if (!s->warned)
			log_msg(LOG_WARNING, "cannot save the pending transaction: %s", err);
		s->warned = 1;
		s->saved = 0;
		return;
	}
	if (!s->saved &&
	    pending_path(s->e, tok_opened_info(s->tok), "pending", path, sizeof(path)) == 0)
		log_msg(LOG_INFO, "the CA answered 'waiting'; the transaction is saved in %s", path);
	s->saved = 1;
}

static int keeps_pending(cmpc_rv crv)
{
	/* The CA may still deliver: the client ran out of time, or could not
	 * reach it.  Everything else ends the transaction. */
	return crv == CMPC_ERR_WAITING || crv == CMPC_ERR_TRANSPORT || crv == CMPC_ERR_TLS;
}

/* The request never reached the CA: the saved transaction goes. */
static int unsent(pending_saver *s, const char *name)
{
	if (pending_remove(s->e, &s->ap) < 0)
		log_msg(LOG_WARNING, "cannot remove the pending transaction file of '%s'; delete "
				     "it by hand",
			name);
	s->saved = 0;
	return 0;
}

int pending_after(pending_saver *s, cmpc_ctx *cmp, cmpc_rv crv)
{
	const char *name = s->e->name;
	char err[512];
	cmpc_rv arv;

	if (!s->have)
		return 0;
	if (s->saved && cmpc_store_failed(cmp)) {
		/* Saved as stored just before the storing, which failed: the
		 * CA never got the message.  A request: nothing waits at the
		 * CA, the transaction ends below.  A pollReq: the CA's
		 * "waiting" still holds; the next resume polls anew. */
		if (s->ap.p.nonce_len == 0)
			return unsent(s, name);
		s->ap.p.sent_nonce_len = 0;
		if (pending_save(s->e, &s->ap, err, sizeof(err)) < 0)
			log_msg(LOG_WARNING, "cannot save the pending transaction: %s", err);
	}
	if (crv == CMPC_ERR_WAITING && s->saved && s->ap.p.sent_nonce_len > 0 &&
	    agent_offline_request_out() != NULL) {
		log_msg(LOG_NOTICE,
			"the %s for the CA is in %s (transaction saved): carry it to the CA, bring "
			"back the CA's answer and run `p11enroll resume --response-in ANSWER "
			"--request-out CERTCONF %s` (or `p11enroll resume --abandon %s` to give it "
			"up)",
			s->ap.p.nonce_len > 0 ? "pollReq" : pending_req_name(s->ap.p.type),
			agent_offline_request_out(), name, name);
		return 1;
	}
	if (crv != CMPC_OK && s->saved && s->ap.p.sent_nonce_len > 0 &&
	    (keeps_pending(crv) || cmpc_left_open(cmp)) && agent_spool_server(s->e->server)) {
		log_msg(LOG_NOTICE,
			"the %s %s %s %s, the transaction saved: `p11enroll resume %s` (or the "
			"agent) reads the CA's answer once it is there; `p11enroll resume "
			"--abandon %s` gives it up",
			pending_req_name(s->ap.p.type),
			agent_spool_by_mail() ? "went in a mail to the CA," : "is in the",
			agent_spool_kind(), agent_spool_where(), name, name);
		return 1;
	}
	if (crv != CMPC_OK && s->saved && s->ap.p.sent_nonce_len > 0 &&
	    (keeps_pending(crv) || cmpc_left_open(cmp))) {
		log_msg(LOG_NOTICE,
			"the %s and its key are kept, still waiting for the CA's answer: run "
			"`p11enroll resume --response-in ANSWER --request-out CERTCONF %s` with the "
			"right file (or `p11enroll resume --abandon %s` to give it up)",
			pending_req_name(s->ap.p.type), name, name);
		return 1;
	}
	if (crv != CMPC_OK && (keeps_pending(crv) || cmpc_left_open(cmp)) && s->saved) {
		log_msg(LOG_NOTICE,
			"the %s is still pending at the CA (next poll in about %ld s): run "
			"`p11enroll resume %s` to finish it, or `p11enroll resume --abandon %s` "
			"to give it up",
			pending_req_name(s->ap.p.type), s->ap.p.check_after, name, name);
		return 1;
	}
	if (crv == CMPC_ERR_WAITING || crv == CMPC_ERR_STOPPED) {
		/* Nowhere to keep it, or interrupted: the CA is told, and the
		 * key goes. */
		log_msg(LOG_NOTICE, "%s: telling the CA that the transaction is given up",
			crv == CMPC_ERR_STOPPED ? "interrupted"
						: "the transaction could not be saved for "
						  "`p11enroll resume`");
		if ((arv = cmpc_abandon(cmp, &s->ap.p,
					crv == CMPC_ERR_STOPPED ? "interrupted by the user"
								: "the client could not keep the "
								  "transaction")) != CMPC_OK)
			log_msg(LOG_WARNING, "could not tell the CA: %s: %s", cmpc_strerror(arv),
				cmpc_errmsg(cmp));
	}
	if (s->saved && pending_remove(s->e, &s->ap) < 0)
		log_msg(LOG_WARNING, "cannot remove the pending transaction file of '%s'; delete "
				     "it by hand",
			name);
	s->saved = 0;
	return 0;
}

agent_rc pending_refuse_new(const conf_enrollment *e, tok_ctx *tok)
{
	agent_pending ap;
	char err[1024], when[32], key[512];
	struct tm tm;
	int r = pending_load(e, tok_opened_info(tok), &ap, err, sizeof(err));

	if (r == 0)
		return EXIT_OK;
	if (r < 0) {
		log_msg(LOG_ERR, "the pending transaction of '%s' is unreadable: %s", e->name, err);
		return EXIT_USAGE;
	}
	if (gmtime_r(&ap.saved, &tm) == NULL ||
	    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(when, sizeof(when), "(unknown time)");
	if (pending_key(e->label, tok_opened_info(tok), key, sizeof(key)) < 0)
		snprintf(key, sizeof(key), "?");
	log_msg(LOG_ERR,
		"enrollment '%s' has a pending %s on this token (%s), waiting for the CA since "
		"%s: finish it with `p11enroll resume %s`, or give it up with `p11enroll resume "
		"--abandon %s`",
		e->name, pending_req_name(ap.p.type), key, when, e->name, e->name);
	return EXIT_USAGE;
}

agent_rc pending_check_token(const conf_enrollment *e, tok_ctx *tok, agent_pending *ap)
{
	const char *tf[4] = { ap->token_serial, ap->token_manufacturer, ap->token_model,
			      ap->token_label };
	char err[1024], safe[4 * sizeof(ap->token_label)];
	tok_info info;
	tok_rv rv;
	int zero;

	if ((rv = tok_get_info(tok, &info)) != TOK_OK)
		return agent_token_fail(tok, rv, "cannot read the token information");
	/* The token is its label, manufacturer, model and serial: serials
	 * repeat (a token without a usable one is told apart by the rest, as
	 * its file name is).  An old file has only the serial, a file of an
	 * earlier version leaves the rest empty. */
	zero = info.serial[strspn(info.serial, "0")] == '\0';
	if (strcmp(info.serial, ap->token_serial) != 0 ||
	    (!ap->legacy &&
	     ((zero || tf[1][0] != '\0' || tf[2][0] != '\0' || tf[3][0] != '\0') &&
	      (strcmp(agent_escape(info.manufacturer, safe, sizeof(safe)), tf[1]) != 0 ||
	       strcmp(agent_escape(info.model, safe, sizeof(safe)), tf[2]) != 0 ||
	       strcmp(agent_escape(info.label, safe, sizeof(safe)), tf[3]) != 0)))) {
		log_msg(LOG_ERR,
			"the pending transaction's key is on the token with serial '%s' (label "
			"'%s'), and this token's serial is '%s' (label '%s'): insert that token, or "
			"select it with --token",
			ap->token_serial, ap->token_label, info.serial,
			agent_escape(info.label, safe, sizeof(safe)));
		return EXIT_TOKEN;
	}
	if (pending_legacy_move(e, ap, &info, err, sizeof(err)) < 0)
		log_msg(LOG_WARNING, "cannot move the pending transaction of '%s' to its new "
				     "file: %s; it stays where it is",
			e->name, err);
	return EXIT_OK;
}

static const char *hex_tid(const agent_pending *ap, char *out, size_t len)
{
	agent_hex(ap->p.tid, ap->p.tid_len, out, len);
	return out;
}

agent_rc pending_abandon(const conf_enrollment *e, cmpc_ctx *cmp, tok_ctx *tok,
			 const agent_pending *ap)
{
	char hex[2 * TOK_ID_MAX + 1], tid[2 * CMPC_ID_MAX + 1];
	tok_id id;
	cmpc_rv crv;
	tok_rv trv;
	agent_rc rc = EXIT_OK;

	log_msg(LOG_INFO, "abandoning the pending %s of '%s'", pending_req_name(ap->p.type),
		e->name);
	if (ap->p.nonce_len == 0 && ap->p.sent_nonce_len > 0) {
		/* Written to a file and never answered: the CA may never have
		 * seen it, and nothing reaches it from here. */
		log_msg(LOG_NOTICE, "the %s was written to a file for the CA and not answered: "
				    "nothing is sent; if it reached the CA, tell its operator "
				    "(transaction %s)",
			pending_req_name(ap->p.type), hex_tid(ap, tid, sizeof(tid)));
	} else if ((crv = cmpc_abandon(cmp, &ap->p, "abandoned by the operator")) != CMPC_OK) {
		log_msg(LOG_ERR, "could not tell the CA that the request is given up: %s: %s",
			cmpc_strerror(crv), cmpc_errmsg(cmp));
		log_msg(LOG_NOTICE, "the transaction is given up here all the same; the CA ends it "
				    "on its own timeout");
		rc = agent_exit_from_cmpc(crv);
	}
	memcpy(id.id, ap->key_id, ap->key_id_len);
	id.len = ap->key_id_len;
	agent_hex(id.id, id.len, hex, sizeof(hex));
	if (ap->key_generated) {
		trv = tok_key_destroy(tok, &id, 1);
		if (trv == TOK_ERR_NOT_FOUND) {
			log_msg(LOG_NOTICE, "the new key pair (id %s) is already gone", hex);
		} else if (trv != TOK_OK) {
			rc = agent_token_fail(tok, trv, "could not delete the new key pair");
			log_msg(LOG_ERR, "delete the key pair with id %s by hand", hex);
		} else {
			log_msg(LOG_NOTICE, "the new key pair (id %s) was deleted", hex);
		}
	}
	if (pending_remove(e, ap) < 0) {
		log_msg(LOG_ERR, "cannot remove the pending transaction file of '%s'", e->name);
		if (rc == EXIT_OK)
			rc = EXIT_INTERNAL;
	}
	if (rc == EXIT_OK && log_verbosity() >= 0)
		printf("abandoned %s: the pending %s\n", e->name, pending_req_name(ap->p.type));
	return rc;
}
