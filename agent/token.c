/* Opening the configured token and logging in: shared by every command. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "agent/agent-cmd.h"
#include "agent/result.h"

agent_rc agent_exit_from_tok(int rv)
{
	switch ((tok_rv)rv) {
	case TOK_OK:
		return EXIT_OK;
	case TOK_ERR_CONFIG:
		return EXIT_USAGE;
	case TOK_ERR_PIN_INCORRECT:
	case TOK_ERR_PIN_LOCKED:
	case TOK_ERR_NOT_LOGGED_IN:
		return EXIT_PIN;
	case TOK_ERR_NOMEM:
		return EXIT_INTERNAL;
	case TOK_ERR_ABSENT:
		/* gone in the middle (a card pulled out): the record says so, and
		 * a station keeps the card's row for its return */
		agent_result_self()->token = 0;
		return EXIT_TOKEN;
	default:
		return EXIT_TOKEN;
	}
}

agent_rc agent_token_fail(tok_ctx *tok, int rv, const char *what)
{
	const char *detail = tok != NULL ? tok_errmsg(tok) : "";

	log_msg(LOG_ERR, "%s: %s%s%s", what, tok_strerror((tok_rv)rv), detail[0] ? ": " : "", detail);
	log_openssl_errors();
	return agent_exit_from_tok(rv);
}

static agent_rc login(const conf_enrollment *e, tok_ctx *tok, const tok_info *info, int mode)
{
	char err[512];
	secret *pin = NULL;
	tok_rv rv;

	if (e->pin_source == NULL && mode == AGENT_LOGIN_IF_PIN)
		return EXIT_OK;
	if (e->pin_source == NULL) {
		log_msg(LOG_ERR,
			"no PIN source for token '%s': set pin_source (file:PATH, fd:N, env:NAME "
			"or protected) or --pin-source",
			info->label);
		return EXIT_PIN;
	}
	if (info->flags & 0x00010000UL) /* CKF_USER_PIN_COUNT_LOW */
		log_msg(LOG_WARNING,
			"token '%s' reports that a wrong user PIN was entered recently; the PIN "
			"will be tried once",
			info->label);
	if (strcmp(e->pin_source, "protected") == 0) {
		log_msg(LOG_NOTICE, "enter the PIN for token '%s' on its PIN pad", info->label);
		agent_wait_show("waiting for the PIN on the PIN pad of token '%s'...", info->label);
		rv = tok_login(tok, NULL);
	} else {
		if (secret_read(e->pin_source, "PIN", &pin, err, sizeof(err)) < 0) {
			if (mode == AGENT_LOGIN_IF_PIN) {
				/* nothing was tried: no PIN attempt is spent */
				log_msg(LOG_WARNING, "%s; not logged in", err);
				return EXIT_OK;
			}
			log_msg(LOG_ERR, "%s", err);
			return EXIT_PIN;
		}
		/* a TPM's or a network HSM's login can take seconds */
		agent_wait_show("logging in to token '%s'...", info->label);
		rv = tok_login(tok, pin->buf);
		secret_free(pin);
	}
	agent_wait_done();
	if (rv != TOK_OK && tok_login_lockout(tok) != TOK_LOCK_NONE) {
		/* The agent latches every enrollment the lockout covers (the
		 * record says whose), until clear NAME. */
		snprintf(agent_result_self()->pin_locked, sizeof(agent_result_self()->pin_locked),
			 "%s", tok_login_lockout(tok) == TOK_LOCK_TPM ? "tpm" : "token");
		log_msg(LOG_ERR,
			"login failed: %s: %s; then `p11enroll clear %s`, so that the agent tries "
			"this enrollment again",
			tok_strerror(rv), tok_errmsg(tok), e->name != NULL ? e->name : "NAME");
		return EXIT_PIN;
	}
	if (rv != TOK_OK)
		return agent_token_fail(tok, rv, "login failed");
	return EXIT_OK;
}

void agent_token_record(tok_ctx *tok, const tok_info *info)
{
	agent_result *res = agent_result_self();

	/* The values are the token's choice: escaped, as every value of the
	 * record. */
	res->token = 1;
	agent_escape(info->serial, res->token_serial, sizeof(res->token_serial));
	agent_escape(info->label, res->token_label, sizeof(res->token_label));
	agent_escape(info->manufacturer, res->token_manufacturer, sizeof(res->token_manufacturer));
	agent_escape(info->model, res->token_model, sizeof(res->token_model));
	res->token_serial_unique = tok_serial_unique(tok);
}

agent_rc agent_token_open(const conf_enrollment *e, tok_ctx **ret_tok, int need_login)
{
	tok_ctx *tok = NULL;
	tok_info info;
	tok_rv rv;
	agent_rc rc;

	if (e->token == NULL) {
		log_msg(LOG_ERR, "no token selected: set token = pkcs11:token=LABEL or --token");
		return EXIT_USAGE;
	}
	rv = tok_open(e->module, e->token, &tok);
	if (rv != TOK_OK) {
		rc = agent_token_fail(tok, rv, "cannot open the token");
		tok_free(tok);
		/* Told apart for the agent, which waits for the token then. */
		return rv == TOK_ERR_ABSENT ? EXIT_ABSENT : rc;
	}
	rv = tok_get_info(tok, &info);
	if (rv != TOK_OK) {
		rc = agent_token_fail(tok, rv, "cannot read the token information");
		tok_free(tok);
		return rc;
	}
	log_msg(LOG_INFO, "token '%s' (manufacturer '%s', model '%s', serial '%s')", info.label,
		info.manufacturer, info.model, info.serial);
	/* Known before the login: the agent names the token a PIN failure
	 * met (P11ENROLL_TOKEN_SERIAL). */
	agent_token_record(tok, &info);
	/* Before the login: a second process on the same label and token
	 * stops here, having changed nothing. */
	if (agent_lock_wanted() && agent_lock(e, &info) < 0) {
		tok_free(tok);
		return EXIT_BUSY;
	}
	if (need_login && (rc = login(e, tok, &info, need_login)) != EXIT_OK) {
		tok_free(tok);
		return rc;
	}
	*ret_tok = tok;
	return EXIT_OK;
}
