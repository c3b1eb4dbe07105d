/* The agent's transitions (agent/fsm.h, agent/STATE-MACHINE.md). */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "agent/fsm.h"

static fsm_action *act(fsm_actions *out, fsm_act_kind kind)
{
	fsm_action *a;

	/* FSM_MAX_ACTIONS bounds what one event can ask for; test-fsm
	 * checks that none asks for more. */
	if (out->n == FSM_MAX_ACTIONS)
		out->n--;
	a = &out->a[out->n++];
	memset(a, 0, sizeof(*a) - sizeof(a->text));
	a->kind = kind;
	a->text[0] = '\0';
	return a;
}

static void say(fsm_actions *out, int level, const char *fmt, ...)
{
	fsm_action *a = act(out, ACT_LOG);
	va_list ap;

	a->level = level;
	va_start(ap, fmt);
	vsnprintf(a->text, sizeof(a->text), fmt, ap);
	va_end(ap);
}

static void answer(fsm_actions *out, int fd, int code, const char *fmt, ...)
{
	fsm_action *a = act(out, ACT_ANSWER);
	va_list ap;

	a->fd = fd;
	a->code = code;
	va_start(ap, fmt);
	vsnprintf(a->text, sizeof(a->text), fmt, ap);
	va_end(ap);
}

static void hook(fsm_actions *out, int ok)
{
	act(out, ACT_HOOK)->ok = ok;
}

static void publish(fsm_actions *out)
{
	act(out, ACT_PUBLISH);
}

/* The client waiting for a renewal, if any, is answered: code and text. */
static void answer_waiter(track *t, fsm_actions *out, int code, const char *text)
{
	if (t->waiter_fd < 0)
		return;
	answer(out, t->waiter_fd, code, "%s", text);
	t->waiter_fd = -1;
}

/* A renewal asked for that will not run now: answered at once, rather than
 * left waiting (or making the loop start steps without pause). */
static void refuse_waiter(track *t, fsm_actions *out, int code, const char *why)
{
	char msg[sizeof(((fsm_action *)0)->text)];

	if (t->waiter_fd < 0)
		return;
	snprintf(msg, sizeof(msg), "%s: not renewed: %s", t->name, why);
	answer_waiter(t, out, code, msg);
}

/* The outcome of a step for the client waiting on it: the step's output
 * (stdout and stderr, as a run by hand prints them) and its exit status;
 * text is what the agent makes of it, which the client gets too when the
 * step said nothing or could not say it (it died, it left no record), or
 * when the agent goes on where the step stopped. */
static void answer_outcome(track *t, fsm_actions *out, const fsm_event *ev, int done)
{
	fsm_action *a;
	int fd = t->waiter_fd;

	if (fd < 0)
		return;
	/* Done, but the revocation after it failed: the exit code of the rr,
	 * as the command gives it, and what is left to do (the client takes
	 * a failure's text for an error message). */
	if (done && t->exit_code != EXIT_OK)
		answer(out, fd, t->exit_code, "%s: %s done; %s", t->name, track_op_name(ev->op),
		       track_error(t));
	else if (t->exit_code == EXIT_OK)
		answer(out, fd, EXIT_OK, "%s", "");
	else
		answer(out, fd, t->exit_code, "%s: %s failed: %s", t->name, track_op_name(ev->op),
		       track_error(t)[0] != '\0' ? track_error(t) : "the agent's log says why");
	a = &out->a[out->n - 1];
	a->kind = ACT_ANSWER_OUTPUT;
	/* the agent's words too where it does more than a run by hand: it
	 * retries the revocation */
	a->ok = !ev->exited || ev->res == NULL || (done && t->exit_code != EXIT_OK);
	t->waiter_fd = -1;
}

static void stop(track *t, fsm_actions *out, const char *why)
{
	t->st = T_STOPPED;
	/* why may be the error itself, which this replaces */
	track_set_error(t, "%s", why);
	say(out, LOG_ERR, "%s: stopped: %s", t->name, track_error(t));
}

/* Which of the settings the agent needs to enroll anew (bootstrap = yes
 * and the credentials of the ir, reference and secret_source) are not
 * set, in words, for a message that ends in what to do. */
static const char *bootstrap_missing(const track *t, char *buf, size_t len)
{
	const char *miss[3], *have[2];
	size_t nm = 0, nh = 0, n;

	if (t->e.bootstrap != 1)
		miss[nm++] = "`bootstrap = yes`";
	*(t->e.reference == NULL ? &miss[nm++] : &have[nh++]) = "reference";
	*(t->e.secret_source == NULL ? &miss[nm++] : &have[nh++]) = "secret_source";
	if (nm == 1)
		snprintf(buf, len, "%s is not set", miss[0]);
	else if (nm == 2)
		snprintf(buf, len, "%s and %s are not set", miss[0], miss[1]);
	else
		snprintf(buf, len, "%s, %s and %s are not set", miss[0], miss[1], miss[2]);
	n = strlen(buf);
	if (nh == 1)
		snprintf(buf + n, len - n, " (%s is)", have[0]);
	else if (nh == 2)
		snprintf(buf + n, len - n, " (%s and %s are)", have[0], have[1]);
	return buf;
}

static const char *set_what(const track *t)
{
	return (t->e.bootstrap != 1) + (t->e.reference == NULL) + (t->e.secret_source == NULL) > 1
		       ? "them"
		       : "it";
}

static void backoff(track *t, fsm_actions *out, long long n)
{
	char tn[TRACK_TOKEN_NAME];

	t->failures++;
	t->next = (long long)sched_retry_time(&t->pol, (time_t)n, (time_t)t->not_after,
					       t->failures);
	t->st = T_BACKOFF;
	/* One line per event: the enrollment, the token and what failed (the
	 * step's error names its transaction when it had one). */
	say(out, LOG_NOTICE, "%s: attempt %d failed (token %s): %s; next in %lld s", t->name,
	    t->failures, track_token_name(t, tn, sizeof(tn)),
	    track_error(t)[0] != '\0' ? track_error(t) : "see above", t->next - n);
}

static void absent(track *t, long long n)
{
	t->st = T_NO_TOKEN;
	t->need_recover = 1;
	t->next = n + (t->e.token_poll > 0 ? t->e.token_poll : 10);
}

/* Whose lockout, in words. */
static const char *lockout_words(const char *lock)
{
	return strcmp(lock, "tpm") == 0 ? "the TPM's dictionary-attack lockout, shared by every "
					  "token and key on the TPM"
					: "the token's PIN lockout";
}

/* The PIN is locked: no step until clear NAME.  by: the enrollment whose
 * step found it, when not t's own. */
static void lock(track *t, fsm_actions *out, const char *lock, const char *by)
{
	snprintf(t->pin_locked, sizeof(t->pin_locked), "%s", lock);
	t->st = T_LOCKED;
	if (by != NULL)
		track_set_error(t,
				"the PIN is locked: %s, which a step of %s met, covers this "
				"enrollment too; when the lockout is over, `p11enroll clear %s`",
				lockout_words(lock), by, t->name);
	say(out, LOG_ERR,
	    "%s: the PIN is locked (%s%s%s): no login is tried for it until `p11enroll clear %s`",
	    t->name, lockout_words(lock), by != NULL ? ", met by " : "", by != NULL ? by : "",
	    t->name);
}

/* The lockout latch is lifted: the next step is a recovery look (a PIN
 * that was rejected before stays latched). */
static void unlock(track *t, long long n)
{
	t->pin_locked[0] = '\0';
	t->st = t->pin_latch != NULL ? T_PIN : T_START;
	t->failures = 0;
	t->need_recover = 1;
	t->next = n;
}

int fsm_lock_covers(const track *t, const char *lock, const track *u)
{
	const char *tm = t->e.module != NULL ? t->e.module : "";
	const char *um = u->e.module != NULL ? u->e.module : "";

	if (t == u || strcmp(tm, um) != 0)
		return 0;
	if (strcmp(lock, "tpm") == 0)
		return 1;
	return strcmp(t->e.token != NULL ? t->e.token : "", u->e.token != NULL ? u->e.token : "") ==
	       0;
}

/* No certificate, or an expired one, and no bootstrap: stopped, saying
 * which setting is missing. */
static void stop_no_bootstrap(track *t, fsm_actions *out)
{
	char why[600], miss[160];

	snprintf(why, sizeof(why),
		 "%s only with bootstrap credentials: %s; set %s in the configuration, `p11enroll "
		 "reload` and `p11enroll clear %s`, or %s",
		 t->have_cert ? "the certificate expired, and the agent enrolls anew"
			      : "no certificate on the token, and the agent enrolls",
		 bootstrap_missing(t, miss, sizeof(miss)), set_what(t), t->name,
		 t->have_cert ? "enroll by hand" : "run p11enroll enroll first");
	stop(t, out, why);
}

/* The CA refused a kur without bootstrap: the CA's reason (the step's
 * error), and which setting is missing for the ir instead. */
static void refused_renewal(track *t)
{
	char miss[160];

	track_set_error(t,
			"the CA refused the renewal (%s), and the agent enrolls anew only with "
			"bootstrap credentials: %s; set %s in the configuration, `p11enroll "
			"reload` and `p11enroll clear %s`, or enroll by hand",
			track_error(t)[0] != '\0' ? track_error(t) : "no reason given",
			bootstrap_missing(t, miss, sizeof(miss)), set_what(t), t->name);
}

/* ---- EV_TICK: the next step of an idle enrollment --------------------------- */

static void tick(track *t, const fsm_event *ev, fsm_actions *out)
{
	long long n = ev->now;
	track_op op = OP_NONE;

	if (t->st == T_STOPPED) {
		refuse_waiter(t, out, EXIT_USAGE, track_error(t));
		return;
	}
	if (t->st == T_LOCKED) {
		refuse_waiter(t, out, EXIT_PIN, track_error(t));
		return;
	}
	if (t->st == T_PIN) {
		if (strcmp(ev->pin_fp != NULL ? ev->pin_fp : "", track_pin_latch(t)) == 0) {
			refuse_waiter(t, out, EXIT_PIN,
				      "the PIN was refused; change the PIN source or run "
				      "p11enroll clear");
			/* Nothing else says when the PIN source changes. */
			act(out, ACT_WAKE)->at = n + FSM_PIN_POLL;
			return;
		}
		say(out, LOG_NOTICE, "%s: the PIN source changed: trying again", t->name);
		track_set_pin_latch(t, NULL);
		/* The latch is gone: a tick that does not start the look at
		 * once (the token is busy) must not say so again. */
		t->st = T_START;
		t->need_recover = 1;
		t->next = n;
	}
	/* An absent token is looked for every token_poll seconds, a failed look
	 * repeated after its backoff: not in every round of the loop. */
	if ((t->st == T_NO_TOKEN || t->st == T_BACKOFF) && t->next > n && t->waiter_fd < 0)
		op = OP_NONE;
	else if (t->need_recover)
		op = OP_RECOVER;
	else if (t->need_refresh)
		op = OP_CHECK; /* need_refresh is cleared when it starts */
	else if (t->st == T_VALID && t->revoke_at > 0 && t->revoke_at <= n)
		op = OP_RECOVER; /* it retries the revocation of the replaced certificate */
	else if (t->next > n && t->waiter_fd < 0)
		op = OP_NONE;
	else if (t->st == T_NO_TOKEN)
		op = OP_RECOVER;
	else if (t->st == T_VALID && t->revoke_failures > 0 && t->revoke_at > n) {
		/* A step would send the rr first and request nothing while it
		 * fails (exit 6 read as a refused renewal): the renewal waits
		 * for the revocation's retry. */
		refuse_waiter(t, out, EXIT_BUSY, track_error(t));
		op = OP_NONE;
	} else if (t->pending)
		op = OP_RESUME;
	else if (t->bootstrap_next != OP_NONE) {
		t->bootstrap_next = OP_NONE;
		op = OP_ENROLL;
	} else if (!t->have_cert || (t->not_after > 0 && t->not_after <= n)) {
		if (t->e.bootstrap != 1) {
			stop_no_bootstrap(t, out);
			hook(out, 0);
			publish(out);
			refuse_waiter(t, out, EXIT_USAGE, track_error(t));
			return;
		}
		op = OP_ENROLL;
	} else {
		op = OP_RENEW;
	}
	if (op != OP_NONE)
		act(out, ACT_START)->op = op;
	else if (t->st == T_VALID && t->revoke_at > 0 && (t->revoke_at < t->next || t->next <= n))
		act(out, ACT_WAKE)->at = t->revoke_at;
	else
		act(out, ACT_WAKE)->at = t->next;
}

int fsm_joins_pass(const track *lead, track_op lead_op, const track *t, track_op op)
{
	if ((lead_op != OP_RECOVER && lead_op != OP_CHECK) || op != lead_op)
		return 0;
	/* One login for the pass: the lead's PIN source is the one tried. */
	if (op == OP_RECOVER && strcmp(lead->e.pin_source != NULL ? lead->e.pin_source : "",
				       t->e.pin_source != NULL ? t->e.pin_source : "") != 0)
		return 0;
	/* The pass opens the token the lead's URI (pinned to the token it
	 * saw last) selects: the same serial is not enough, for serials
	 * repeat (every tpm2-pkcs11 token of one TPM has 0000000000000000). */
	return track_same_token(lead, t);
}

static void started(track *t, const fsm_event *ev, fsm_actions *out)
{
	char tn[TRACK_TOKEN_NAME];

	t->st = t->st == T_NO_TOKEN || t->st == T_POLLING ? t->st : T_BUSY;
	if (ev->op == OP_CHECK)
		t->need_refresh = 0;
	if (ev->op != OP_CHECK && ev->op != OP_RECOVER) {
		t->last_attempt = ev->now;
		say(out, LOG_NOTICE, "%s: %s started (token %s)", t->name, track_op_name(ev->op),
		    track_token_name(t, tn, sizeof(tn)));
	}
}

/* ---- EV_STEP_DONE ------------------------------------------------------------ */

/*
 * The step's own work is done, but the certificate it replaced is not
 * revoked (res->unrevoked: the rr's exit code): a warning, and a recovery
 * look, which retries the rr, after the retry backoff of these failures.
 */
static void unrevoked(track *t, fsm_actions *out, const agent_result *res, long long n)
{
	t->revoke_failures++;
	t->revoke_at = (long long)sched_retry_time(&t->pol, (time_t)n, (time_t)t->not_after,
						   t->revoke_failures);
	track_set_error(t,
			"the replaced certificate (label '%s (to revoke)') is not revoked yet: "
			"%s (exit %d); retried in %lld s",
			t->e.label != NULL ? t->e.label : "?",
			res->unrevoked_error[0] != '\0' ? res->unrevoked_error : "see the log",
			res->unrevoked, t->revoke_at - n);
	say(out, LOG_WARNING, "%s: %s (attempt %d)", t->name, track_error(t),
	    t->revoke_failures);
}

/* The token's identity the step's record gives (read from the token's
 * information, without a login: a step the PIN failed has it too); 0 when
 * it gives none. */
static int saw_token(track *t, const agent_result *res)
{
	if (res == NULL || (res->token_serial[0] == '\0' && res->token_label[0] == '\0'))
		return 0;
	snprintf(t->token_serial, sizeof(t->token_serial), "%.16s", res->token_serial);
	snprintf(t->token_label, sizeof(t->token_label), "%s", res->token_label);
	snprintf(t->token_manufacturer, sizeof(t->token_manufacturer), "%s",
		 res->token_manufacturer);
	snprintf(t->token_model, sizeof(t->token_model), "%s", res->token_model);
	t->token_serial_unique = res->token_serial_unique;
	return 1;
}

/* What the token showed (check, check --recover). */
static void took_look(track *t, fsm_actions *out, int rc, const agent_result *res, long long n)
{
	char tn[TRACK_TOKEN_NAME];
	long long due;

	/* A look that failed says nothing about the certificate: what was known
	 * stays, and the look is tried again after a pause (never at once: that
	 * was a loop of child processes; never "no certificate": that was an ir
	 * or a stop after a transient token error). */
	/* A configuration the look refused (exit 2: no token line, a
	 * setting it cannot use) is the same on every retry: it waits for
	 * the operator, as a step's exit 2 does. */
	if (rc == EXIT_USAGE) {
		stop(t, out, track_error(t)[0] != '\0'
				     ? track_error(t)
				     : "configuration error (see the log); fix it, `p11enroll "
				       "reload` and `p11enroll clear NAME`");
		hook(out, 0);
		return;
	}
	if (rc != EXIT_OK && rc != EXIT_ABSENT && rc != EXIT_PIN) {
		backoff(t, out, n);
		return;
	}
	if (rc == EXIT_PIN)
		return; /* handled by the caller */
	if (rc == EXIT_ABSENT || res == NULL || res->token != 1) {
		if (t->st != T_NO_TOKEN)
			say(out, LOG_NOTICE, "%s: the token %s is not present: waiting for it",
			    t->name, track_token_name(t, tn, sizeof(tn)));
		absent(t, n);
		return;
	}
	if (saw_token(t, res) && t->st == T_NO_TOKEN)
		say(out, LOG_NOTICE, "%s: token %s is back", t->name,
		    track_token_name(t, tn, sizeof(tn)));
	t->have_cert = res->cert == 1;
	if (t->have_cert) {
		snprintf(t->cert_serial, sizeof(t->cert_serial), "%s", res->cert_serial);
		t->not_before = res->not_before;
		t->not_after = res->not_after;
	}
	t->pending = res->pending[0] != '\0';
	if (t->pending) {
		t->st = T_POLLING;
		t->next = (long long)sched_poll_time(&t->pol, (time_t)res->pending_saved,
						     res->pending_check_after);
		if (t->next < n)
			t->next = n;
		return;
	}
	if (t->st == T_STOPPED)
		return;
	if (!t->have_cert) {
		t->st = T_VALID;
		t->next = n; /* the next tick enrolls or stops */
		return;
	}
	due = (long long)sched_renew_time(&t->pol, (time_t)t->not_before, (time_t)t->not_after,
					  t->seed);
	/* A certificate not yet due needs no retry: the failures are over
	 * (say, recovery adopted the certificate of a step killed after it
	 * was stored; renewing it again would be a second certificate). */
	if (due > n && t->failures > 0) {
		say(out, LOG_NOTICE,
		    "%s: the certificate on the token is not due for renewal (due at %lld): the "
		    "earlier failures are over; no retry at %lld",
		    t->name, due, t->next);
		t->failures = 0;
		track_set_error(t, NULL);
	}
	if (t->failures > 0 && t->next > n) {
		t->st = T_BACKOFF;
		return;
	}
	t->st = T_VALID;
	t->next = due;
	/* A look that found the certificate in place and nothing left to
	 * retry: an error from before (a PIN since fixed, a cleared stop, a
	 * failure before a restart) is over. */
	if (t->revoke_failures == 0)
		track_set_error(t, NULL);
	/* The decision, once per change: tests check the agent's schedule
	 * here, not how soon a loaded machine carried it out. */
	if (due != t->due_logged) {
		t->due_logged = due;
		say(out, LOG_INFO,
		    "%s: certificate %s (notBefore %lld, notAfter %lld) is not due for renewal "
		    "before %lld",
		    t->name, t->cert_serial, t->not_before, t->not_after, due);
	}
}

static void looked(track *t, const fsm_event *ev, fsm_actions *out, int rc)
{
	track_op op = ev->op;

	if (op == OP_RECOVER && rc == EXIT_OK)
		t->need_recover = 0;
	if (rc != EXIT_OK && rc != EXIT_ABSENT)
		say(out, LOG_WARNING, "%s: looking at the token failed (exit %d)", t->name, rc);
	took_look(t, out, rc, ev->res, ev->now);
	/* Only a recovery look retries the revocation, and says how it went. */
	if (op == OP_RECOVER && rc == EXIT_OK && t->st != T_NO_TOKEN) {
		if (ev->res->unrevoked > 0) {
			unrevoked(t, out, ev->res, ev->now);
		} else if (t->revoke_failures > 0) {
			say(out, LOG_NOTICE,
			    "%s: no replaced certificate waits for its revocation any more", t->name);
			t->revoke_failures = 0;
			t->revoke_at = 0;
			if (t->failures == 0)
				track_set_error(t, NULL);
		}
	}
	if (op == OP_CHECK && rc != EXIT_OK && rc != EXIT_ABSENT)
		t->need_refresh = 1; /* the look after a success, once more */
	if (t->hook_due && rc == EXIT_OK) {
		t->hook_due = 0;
		hook(out, 1);
	}
	/* a requested renewal waits for no token and no failed look: the
	 * client is told which token, or why the look failed */
	if (t->st == T_NO_TOKEN) {
		char tn[1024], why[1024 + 64];

		track_token_name(t, tn, sizeof(tn));
		snprintf(why, sizeof(why), "the token is not present (token %s): insert it and ask "
					   "again",
			 tn);
		refuse_waiter(t, out, EXIT_ABSENT, why);
	} else if (rc != EXIT_OK) {
		char why[TRACK_ERROR_MAX + 64];

		snprintf(why, sizeof(why), "looking at the token failed: %s",
			 ev->res != NULL && ev->res->error[0] != '\0' ? ev->res->error
			 : track_error(t)[0] != '\0'		       ? track_error(t)
								       : "the agent's log says why");
		refuse_waiter(t, out, rc, why);
	}
}

/* renew, enroll, resume */
static void requested(track *t, const fsm_event *ev, fsm_actions *out, int rc)
{
	track_op op = ev->op;
	long long n = ev->now;
	char why[TRACK_ERROR_MAX], tn[TRACK_TOKEN_NAME];
	/* Done, but the revocation of the certificate it replaced failed: the
	 * command exits with the rr's code, the renewal is a success. */
	int done = rc == EXIT_OK || (ev->res != NULL && ev->res->unrevoked == rc);

	switch (done ? EXIT_OK : rc) {
	case EXIT_OK:
		t->failures = 0;
		t->last_success = n;
		t->renewals++;
		track_set_error(t, NULL);
		t->pending = 0;
		t->need_refresh = 1;
		t->hook_due = 1;
		/* the agent's first certificate for it: "enrolled", not "renewed" */
		t->hook_enrolled = !t->have_cert;
		t->next = n;
		say(out, LOG_NOTICE, "%s: %s done (token %s, transaction %s)", t->name,
		    track_op_name(op), track_token_name(t, tn, sizeof(tn)),
		    ev->res->transaction[0] != '\0' ? ev->res->transaction : "?");
		if (rc != EXIT_OK) {
			unrevoked(t, out, ev->res, n);
		} else {
			/* it revoked what waited, or it would have refused */
			t->revoke_failures = 0;
			t->revoke_at = 0;
		}
		break;
	case EXIT_WAITING:
		t->st = T_POLLING;
		t->pending = 1;
		t->need_refresh = 1;
		t->next = n;
		break;
	case EXIT_ABSENT:
		absent(t, n);
		break;
	case EXIT_BUSY:
		/* Someone works on it by hand (renew --local): not a failure. */
		say(out, LOG_NOTICE, "%s: another process holds the enrollment: trying again in 5 s",
		    t->name);
		t->st = T_VALID;
		t->next = n + 5;
		break;
	case EXIT_REJECTED:
		if (op == OP_RENEW && t->e.bootstrap == 1) {
			say(out, LOG_NOTICE,
			    "%s: the CA refused the kur: enrolling anew with the bootstrap "
			    "credentials (ir)",
			    t->name);
			t->bootstrap_next = OP_ENROLL;
			t->next = n;
			return; /* a requested renewal gets the ir's outcome */
		}
		/* The step's error holds the CA's reason: the operator needs
		 * it, whole (track_set_error() bounds it). */
		if (op == OP_RENEW) {
			refused_renewal(t);
		} else {
			track_set_error(t, "the CA refused the request%s%s",
					track_error(t)[0] != '\0' ? ": " : "", track_error(t));
		}
		snprintf(why, sizeof(why), "%s", track_error(t));
		stop(t, out, why);
		hook(out, 0);
		break;
	case EXIT_USAGE:
		if (op == OP_RESUME) {
			/* The transaction ended meanwhile (abandoned by hand, or
			 * over after a failure): look at the token again. */
			t->pending = 0;
			t->need_refresh = 1;
			t->next = n;
			break;
		}
		stop(t, out, "configuration error (see the log); fix it, then `p11enroll clear NAME`");
		hook(out, 0);
		break;
	default:
		backoff(t, out, n);
		hook(out, 0);
		break;
	}
	answer_outcome(t, out, ev, done);
}

/* Whether the CA answered the step, for the metrics file.  An answer is a
 * contact even when it refused or said "waiting": the alert on an
 * unreachable CA must not fire for a CA that works and says no.  A look or
 * a recovery needs no CA.  (The agent counts the steps themselves.) */
static void ca_answered(track *t, const fsm_event *ev, int rc)
{
	if (ev->op != OP_CHECK && ev->op != OP_RECOVER &&
	    (rc == EXIT_OK || rc == EXIT_REJECTED || rc == EXIT_WAITING))
		t->ca_contact = ev->now;
}

static void step_done(track *t, const fsm_event *ev, fsm_actions *out)
{
	int rc = ev->exited ? ev->exit_code : EXIT_INTERNAL;

	if (!ev->exited) {
		track_set_error(t, "the %s step died (signal %d)", track_op_name(ev->op), ev->signal);
	} else if (ev->res == NULL) {
		/* Every run of the program writes its record: a step without
		 * one failed in a way it could not report. */
		track_set_error(t, "the %s step (exit %d) left no result record: %s",
				track_op_name(ev->op), rc, ev->res_why != NULL ? ev->res_why : "none");
		rc = EXIT_INTERNAL;
	} else if (rc != EXIT_OK && ev->res->error[0] != '\0') {
		track_set_error(t, "%s", ev->res->error);
	}
	if (rc != EXIT_OK && t->last_error != NULL) {
		/* the CA's rejection this error reports, or none */
		snprintf(t->ca_status, sizeof(t->ca_status), "%s",
			 ev->res != NULL ? ev->res->ca_status : "");
		snprintf(t->ca_fail_info, sizeof(t->ca_fail_info), "%s",
			 ev->res != NULL ? ev->res->ca_fail_info : "");
	}
	t->exit_code = rc;
	ca_answered(t, ev, rc);
	/* a PIN failure is a failure too, and the hook names the token it
	 * met (its information needs no login) */
	if (rc == EXIT_PIN) {
		t->failures++;
		(void)saw_token(t, ev->res);
	}
	if (rc == EXIT_PIN && ev->res != NULL && ev->res->pin_locked[0] != '\0') {
		lock(t, out, ev->res->pin_locked, NULL);
		hook(out, 0);
		answer_outcome(t, out, ev, 0);
	} else if (rc == EXIT_PIN) {
		track_set_pin_latch(t, ev->pin_fp);
		t->st = T_PIN;
		say(out, LOG_ERR,
		    "%s: the PIN was refused or is unusable; not trying it again until the PIN "
		    "source changes or `p11enroll clear %s`",
		    t->name, t->name);
		hook(out, 0);
		answer_outcome(t, out, ev, 0);
	} else if (ev->op == OP_RECOVER || ev->op == OP_CHECK) {
		looked(t, ev, out, rc);
	} else {
		requested(t, ev, out, rc);
	}
	publish(out);
}

static void step(track *t, const fsm_event *ev, fsm_actions *out);

/* ---- control requests -------------------------------------------------------- */

/* A step before its time that a client other than root and the agent's user
 * asks for: at most one per enrollment per retry_min, so that the control
 * group cannot make the agent hammer the CA or the token faster than its
 * own quickest retry.  0 when allowed (and counted); else -1, answered. */
static int forced_allowed(track *t, const fsm_event *ev, fsm_actions *out, const char *what)
{
	long long n = ev->now, gap = t->pol.backoff_min > 0 ? t->pol.backoff_min : 1, at;
	char msg[1400], when[32] = "?";
	size_t len = sizeof(msg);
	time_t wall;
	struct tm tm;

	if (ev->privileged)
		return 0;
	if (t->forced_at == 0 || n - t->forced_at >= gap) {
		t->forced_at = n;
		return 0;
	}
	at = t->forced_at + gap;
	wall = (time_t)(ev->wall + (at - n) / (ev->rate > 1 ? ev->rate : 1));
	if (gmtime_r(&wall, &tm) != NULL)
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
	snprintf(msg, len,
		 "%s: not %s: a client forced a step %lld s ago, and one is allowed per %lld s "
		 "(retry_min) while the enrollment is in %s: the next is allowed in %lld s "
		 "(%s UTC)",
		 t->name, what, n - t->forced_at, gap, track_state_name(t->st), at - n, when);
	if (t->st == T_BACKOFF && t->next > n)
		snprintf(msg + strlen(msg), len - strlen(msg), "; the agent retries by itself in %lld s",
			 t->next - n);
	snprintf(msg + strlen(msg), len - strlen(msg), "\n");
	say(out, LOG_NOTICE,
	    "control: %s: uid %ld forced a step too soon (%s): the next is allowed in %lld s",
	    t->name, ev->uid, what, at - n);
	answer(out, ev->fd, EXIT_BUSY, "%s", msg);
	return -1;
}

/* clear NAME.  A PIN latch keeps a PIN the token rejected from being tried
 * again: lifting it costs a login attempt, so only root and the agent's
 * user may, unless the PIN source changed since (then the agent would lift
 * it by itself). */
static void clear(track *t, const fsm_event *ev, fsm_actions *out)
{
	int skips = t->st == T_STOPPED || (t->st == T_BACKOFF && t->next > ev->now);

	if (t->st == T_LOCKED && !ev->privileged) {
		say(out, LOG_WARNING,
		    "control: refused to clear the PIN lockout latch of %s for uid %ld", t->name,
		    ev->uid);
		answer(out, ev->fd, EXIT_USAGE,
		       "%s: not cleared: the PIN is locked (%s); only root or the agent's user "
		       "(uid %ld) may clear the lockout latch, once the lockout is over\n",
		       t->name, lockout_words(t->pin_locked), ev->agent_uid);
		return;
	}
	if (t->st == T_LOCKED) {
		say(out, LOG_NOTICE, "%s: PIN lockout latch (%s) cleared by uid %ld", t->name,
		    t->pin_locked, ev->uid);
		t->pin_locked[0] = '\0';
		t->st = T_START;
	}
	if (t->st == T_PIN && !ev->privileged &&
	    strcmp(ev->pin_fp != NULL ? ev->pin_fp : "", track_pin_latch(t)) == 0) {
		say(out, LOG_WARNING, "control: refused to clear the PIN latch of %s for uid %ld",
		    t->name, ev->uid);
		answer(out, ev->fd, EXIT_USAGE,
		       "%s: not cleared: the token rejected the PIN and the PIN source has not "
		       "changed since; only root or the agent's user (uid %ld) may clear the PIN "
		       "latch, or change the PIN source (a new PIN file) and the agent tries it\n",
		       t->name, ev->agent_uid);
		return;
	}
	if (skips && forced_allowed(t, ev, out, "cleared") < 0)
		return;
	if (t->st == T_PIN)
		say(out, LOG_NOTICE, "%s: PIN latch cleared by uid %ld", t->name, ev->uid);
	track_set_pin_latch(t, NULL);
	if (t->st == T_STOPPED || t->st == T_PIN)
		t->st = T_START;
	t->failures = 0;
	t->need_recover = 1;
	t->next = ev->now;
	publish(out);
	answer(out, ev->fd, EXIT_OK, "cleared %s\n", t->name);
}

/* renew NAME: answered when the step ends, or at once when it will not
 * run. */
static void renew(track *t, const fsm_event *ev, fsm_actions *out)
{
	if (t->waiter_fd >= 0) {
		answer(out, ev->fd, EXIT_USAGE, "a renewal of this enrollment was already requested\n");
		return;
	}
	if (t->st == T_BACKOFF && t->next > ev->now && forced_allowed(t, ev, out, "renewed") < 0)
		return;
	t->waiter_fd = ev->fd;
	act(out, ACT_WAIT)->fd = ev->fd;
	if (t->st != T_POLLING)
		t->next = ev->now;
}

void fsm_step(track *t, const fsm_event *ev, fsm_actions *out)
{
	unsigned seq = t->error_seq;

	out->n = 0;
	step(t, ev, out);
	/* when the error last changed: status shows how old it is */
	if (t->error_seq != seq && t->last_error != NULL)
		t->last_error_at = ev->now;
}

static void step(track *t, const fsm_event *ev, fsm_actions *out)
{
	switch (ev->kind) {
	case EV_TICK: tick(t, ev, out); break;
	case EV_STARTED: started(t, ev, out); break;
	case EV_LAUNCH_FAILED:
		track_set_error(t, "the %s step could not be started", track_op_name(ev->op));
		backoff(t, out, ev->now);
		publish(out);
		break;
	case EV_STEP_DONE: step_done(t, ev, out); break;
	case EV_CLEAR: clear(t, ev, out); break;
	case EV_RENEW: renew(t, ev, out); break;
	case EV_LOCKED:
		/* a running step finds out for itself; a stop stays a stop */
		if (t->op != OP_NONE || t->st == T_STOPPED || t->st == T_LOCKED)
			break;
		lock(t, out, ev->lock != NULL ? ev->lock : "token",
		     ev->lock_by != NULL ? ev->lock_by : "?");
		refuse_waiter(t, out, EXIT_PIN, track_error(t));
		publish(out);
		break;
	case EV_UNLOCKED:
		if (t->st != T_LOCKED)
			break;
		unlock(t, ev->now);
		say(out, LOG_NOTICE, "%s: PIN lockout latch cleared with %s's%s", t->name,
		    ev->lock_by != NULL ? ev->lock_by : "another enrollment",
		    t->st == T_PIN ? "; the PIN it rejected before stays latched" : "");
		track_set_error(t, NULL);
		publish(out);
		break;
	}
}
