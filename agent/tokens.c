/*
 * p11enroll tokens: every token of the configured module (or, without one,
 * of every module p11-kit knows), each with the pkcs11: URI that selects
 * it, for --token or token = in the configuration.  No login, no PIN.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "agent/agent-cmd.h"

static void print_json(const tok_token *t, size_t n, agent_jw *w)
{
	size_t i;

	agent_jw_object(w, NULL);
	agent_jw_array(w, "tokens");
	for (i = 0; i < n; i++) {
		unsigned long f = t[i].info.flags;

		agent_jw_object(w, NULL);
		agent_jw_str(w, "uri", t[i].uri);
		agent_jw_str(w, "label", t[i].info.label);
		agent_jw_str(w, "manufacturer", t[i].info.manufacturer);
		agent_jw_str(w, "model", t[i].info.model);
		agent_jw_str(w, "serial", t[i].info.serial);
		agent_jw_str(w, "module", t[i].module[0] != '\0' ? t[i].module : NULL);
		agent_jw_int(w, "slot_id", (long long)t[i].slot_id);
		agent_jw_bool(w, "login_required", (f & TOK_F_LOGIN_REQUIRED) != 0);
		agent_jw_bool(w, "protected_authentication_path",
			      (f & TOK_F_PROTECTED_AUTHENTICATION_PATH) != 0);
		agent_jw_bool(w, "user_pin_count_low", (f & TOK_F_USER_PIN_COUNT_LOW) != 0);
		agent_jw_bool(w, "user_pin_final_try", (f & TOK_F_USER_PIN_FINAL_TRY) != 0);
		agent_jw_bool(w, "user_pin_locked", (f & TOK_F_USER_PIN_LOCKED) != 0);
		agent_jw_close(w, '}');
	}
	agent_jw_close(w, ']');
	agent_jw_close(w, '}');
}

/* The URI first, alone on its line (what a script or a copy takes), then
 * the label for people and where the token is. */
static void print_text(const tok_token *t, size_t n)
{
	char label[4 * 33], manuf[4 * 33], model[4 * 17];
	size_t i;

	for (i = 0; i < n; i++) {
		printf("%s\n  label '%s', manufacturer '%s', model '%s'\n", t[i].uri,
		       agent_escape_shown(t[i].info.label, label, sizeof(label)),
		       agent_escape_shown(t[i].info.manufacturer, manuf, sizeof(manuf)),
		       agent_escape_shown(t[i].info.model, model, sizeof(model)));
		if (t[i].module[0] != '\0')
			printf("  module %s\n", t[i].module);
	}
	printf("%zu token%s\n", n, n == 1 ? "" : "s");
}

agent_rc agent_tokens(const conf_enrollment *e, int json)
{
	tok_token *t = NULL;
	size_t n = 0, silent = 0;
	char err[1024];
	tok_rv rv;
	agent_jw w;
	agent_rc rc = EXIT_OK;

	if ((rv = tok_tokens(e->module, &t, &n, &silent, err, sizeof(err))) != TOK_OK) {
		log_msg(LOG_ERR, "cannot list the tokens: %s: %s", tok_strerror(rv), err);
		return agent_exit_from_tok(rv);
	}
	if (silent > 0)
		log_msg(LOG_WARNING,
			"%zu token%s did not answer (C_GetTokenInfo failed) and %s not listed: "
			"remove and re-insert %s, or restart its service",
			silent, silent == 1 ? "" : "s", silent == 1 ? "is" : "are",
			silent == 1 ? "it" : "them");
	if (json) {
		agent_jw_init(&w, stdout);
		print_json(t, n, &w);
		if (agent_jw_end(&w) < 0) {
			log_msg(LOG_ERR, "cannot write the token list: out of memory or stdout failed");
			rc = EXIT_INTERNAL;
		}
	} else {
		print_text(t, n);
	}
	tok_tokens_free(t, n);
	return rc;
}
