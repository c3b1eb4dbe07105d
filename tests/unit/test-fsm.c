/*
 * Unit tests of the agent's transitions (agent/fsm.c), one or more per row
 * of agent/STATE-MACHINE.md: the decision, the exits of each step, the
 * control requests.  Each test builds an enrollment's state, feeds one
 * event at a fixed time and checks the new state and the actions.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/fsm.h"
#include "tests/unit/tap.h"

#define NOW 1764200000LL
#define DAY 86400LL
#define FP "file:/etc/pin inode 1 size 4 mtime 5"

static track T;
static fsm_actions out;
static int overflow;

/* An enrollment with a valid certificate (issued yesterday, 100 days),
 * idle, no jitter: its renewal time is notBefore + 66 days. */
static void fresh(void)
{
	conf_enrollment_clear(&T.e);
	free(T.last_error);
	track_set_pin_latch(&T, NULL);
	memset(&T, 0, sizeof(T));
	T.name = (char *)"e1";
	conf_enrollment_init(&T.e);
	sched_policy_default(&T.pol);
	T.pol.jitter_permille = 0;
	T.st = T_VALID;
	T.seed = 1;
	T.waiter_fd = -1;
	T.have_cert = 1;
	T.not_before = NOW - DAY;
	T.not_after = NOW + 99 * DAY;
	T.next = NOW + 65 * DAY;
	snprintf(T.cert_serial, sizeof(T.cert_serial), "0A");
	snprintf(T.token_serial, sizeof(T.token_serial), "tok1");
}

static void feed(fsm_event *ev)
{
	ev->now = ev->now != 0 ? ev->now : NOW;
	if (ev->pin_fp == NULL)
		ev->pin_fp = FP;
	memset(&out, 0x5a, sizeof(out));
	fsm_step(&T, ev, &out);
	if (out.n >= FSM_MAX_ACTIONS)
		overflow++;
}

static void tick(void)
{
	fsm_event ev = { .kind = EV_TICK };

	feed(&ev);
}

/* A step's end: exit code, and a record (NULL: the default one, with
 * the exit code and error "boom"). */
static agent_result R;

static void record(int code)
{
	agent_result_init(&R);
	R.exit_code = code;
	if (code != 0)
		snprintf(R.error, sizeof(R.error), "boom %d", code);
}

static void done(track_op op, int code)
{
	fsm_event ev = { .kind = EV_STEP_DONE, .op = op, .exited = 1, .exit_code = code };

	ev.res = &R;
	R.exit_code = code;
	feed(&ev);
}

/* A look that found the token and what record says of the certificate. */
static void looked_cert(track_op op, long long nb, long long na)
{
	record(0);
	R.token = 1;
	snprintf(R.token_serial, sizeof(R.token_serial), "tok1");
	R.cert = 1;
	snprintf(R.cert_serial, sizeof(R.cert_serial), "0B");
	R.not_before = nb;
	R.not_after = na;
	done(op, 0);
}

static int count(fsm_act_kind k)
{
	size_t i;
	int n = 0;

	for (i = 0; i < out.n; i++)
		n += out.a[i].kind == k;
	return n;
}

static const fsm_action *first(fsm_act_kind k)
{
	size_t i;

	for (i = 0; i < out.n; i++)
		if (out.a[i].kind == k)
			return &out.a[i];
	return NULL;
}

static track_op started(void)
{
	const fsm_action *a = first(ACT_START);

	return a != NULL ? a->op : OP_NONE;
}

static int logged(const char *s)
{
	size_t i;

	for (i = 0; i < out.n; i++)
		if (out.a[i].kind == ACT_LOG && strstr(out.a[i].text, s) != NULL)
			return 1;
	return 0;
}

/* The answer to the client on fd: its exit code, or -1 when none; the
 * text must hold s. */
static int answered(int fd, const char *s)
{
	size_t i;

	for (i = 0; i < out.n; i++)
		if ((out.a[i].kind == ACT_ANSWER || out.a[i].kind == ACT_ANSWER_OUTPUT) &&
		    out.a[i].fd == fd && (s == NULL || strstr(out.a[i].text, s) != NULL))
			return out.a[i].code;
	return -1;
}

static int hooked(int ok)
{
	const fsm_action *a = first(ACT_HOOK);

	return a != NULL && a->ok == ok && count(ACT_HOOK) == 1;
}

/* ---- the decision ---------------------------------------------------------- */

static void test_decide(void)
{
	fresh();
	T.st = T_STOPPED;
	track_set_error(&T, "why it stopped");
	T.waiter_fd = 7;
	T.next = NOW - 1;
	tick();
	tap_ok(started() == OP_NONE && count(ACT_WAKE) == 0 &&
		       answered(7, "e1: not renewed: why it stopped") == EXIT_USAGE &&
		       T.waiter_fd == -1,
	       "/fsm/decide/1-stopped", "%zu actions", out.n);

	fresh();
	T.st = T_PIN;
	track_set_pin_latch(&T, FP);
	T.waiter_fd = 7;
	tick();
	tap_ok(started() == OP_NONE && answered(7, "the PIN was refused") == EXIT_PIN &&
		       T.st == T_PIN && first(ACT_WAKE) != NULL &&
		       first(ACT_WAKE)->at == NOW + FSM_PIN_POLL,
	       "/fsm/decide/2-pin-latched", "st %d", T.st);

	fresh();
	T.st = T_PIN;
	track_set_pin_latch(&T, "an older PIN file");
	tick();
	tap_ok(started() == OP_RECOVER && track_pin_latch(&T)[0] == '\0' && T.need_recover &&
		       logged("the PIN source changed: trying again") && T.st == T_START,
	       "/fsm/decide/2-pin-changed", "op %d", started());
	/* the token was busy: the next tick asks again, without the news */
	tick();
	tap_ok(started() == OP_RECOVER && !logged("the PIN source changed"),
	       "/fsm/decide/2-pin-changed-tick-again", "op %d", started());

	fresh();
	T.st = T_NO_TOKEN;
	T.need_recover = 1;
	T.next = NOW + 10;
	tick();
	tap_ok(started() == OP_NONE && first(ACT_WAKE) != NULL && first(ACT_WAKE)->at == NOW + 10,
	       "/fsm/decide/3-no-token-not-yet", "op %d", started());
	T.waiter_fd = 7;
	tick();
	tap_ok(started() == OP_RECOVER, "/fsm/decide/3-no-token-client-waits", "op %d",
	       started());

	fresh();
	T.st = T_BACKOFF;
	T.failures = 2;
	T.next = NOW + 100;
	tick();
	tap_ok(started() == OP_NONE && first(ACT_WAKE)->at == NOW + 100,
	       "/fsm/decide/3-backoff-not-yet", "op %d", started());
	T.next = NOW;
	tick();
	tap_ok(started() == OP_RENEW, "/fsm/decide/3-backoff-due", "op %d", started());

	fresh();
	T.st = T_START;
	T.need_recover = 1;
	T.need_refresh = 1;
	tick();
	tap_ok(started() == OP_RECOVER && T.need_recover && T.need_refresh,
	       "/fsm/decide/4-recover-first", "op %d", started());

	fresh();
	T.need_refresh = 1;
	tick();
	{
		fsm_event ev = { .kind = EV_STARTED, .op = OP_CHECK };
		int asked = started() == OP_CHECK && T.need_refresh;

		/* the refresh is done once it runs, not when a tick asks */
		feed(&ev);
		asked = asked && !T.need_refresh;
		tap_ok(asked, "/fsm/decide/5-refresh", "need_refresh %d", T.need_refresh);
	}

	fresh();
	tick();
	tap_ok(started() == OP_NONE && first(ACT_WAKE)->at == NOW + 65 * DAY,
	       "/fsm/decide/6-not-due", "op %d", started());
	T.waiter_fd = 7;
	tick();
	tap_ok(started() == OP_RENEW, "/fsm/decide/6-client-waits", "op %d", started());

	fresh();
	T.st = T_NO_TOKEN;
	T.next = NOW;
	tick();
	tap_ok(started() == OP_RECOVER, "/fsm/decide/7-no-token-due", "op %d", started());

	fresh();
	T.st = T_POLLING;
	T.pending = 1;
	T.next = NOW;
	tick();
	tap_ok(started() == OP_RESUME, "/fsm/decide/8-pending", "op %d", started());

	fresh();
	T.bootstrap_next = OP_ENROLL;
	T.next = NOW;
	tick();
	tap_ok(started() == OP_ENROLL && T.bootstrap_next == OP_NONE,
	       "/fsm/decide/9-bootstrap-once", "op %d", started());

	fresh();
	T.have_cert = 0;
	T.next = NOW;
	T.e.bootstrap = 1;
	tick();
	tap_ok(started() == OP_ENROLL, "/fsm/decide/10-no-cert-bootstrap", "op %d", started());

	fresh();
	T.have_cert = 0;
	T.next = NOW;
	T.waiter_fd = 7;
	tick();
	tap_ok(started() == OP_NONE && T.st == T_STOPPED &&
		       strstr(track_error(&T), "no certificate on the token, and the agent "
					       "enrolls only with bootstrap credentials: "
					       "`bootstrap = yes`, reference and secret_source "
					       "are not set; set them") &&
		       hooked(0) && count(ACT_PUBLISH) == 1 &&
		       answered(7, "not renewed: no certificate") == EXIT_USAGE,
	       "/fsm/decide/10-no-cert-stops", "st %d: %s", T.st, track_error(&T));

	fresh();
	T.not_after = NOW;
	T.next = NOW;
	tick();
	tap_ok(started() == OP_NONE && T.st == T_STOPPED &&
		       strstr(track_error(&T), "the certificate expired, and the agent enrolls "
					       "anew only with bootstrap credentials: "
					       "`bootstrap = yes`, reference and secret_source "
					       "are not set; set them") &&
		       hooked(0),
	       "/fsm/decide/10-expired-stops", "%s", track_error(&T));

	fresh();
	T.not_after = NOW - 5;
	T.next = NOW;
	T.e.bootstrap = 1;
	tick();
	tap_ok(started() == OP_ENROLL, "/fsm/decide/10-expired-bootstrap", "op %d", started());

	fresh();
	T.next = NOW;
	tick();
	tap_ok(started() == OP_RENEW && count(ACT_HOOK) == 0, "/fsm/decide/11-renew", "op %d",
	       started());
}

static void test_started(void)
{
	fsm_event ev = { .kind = EV_STARTED, .op = OP_RENEW };

	fresh();
	feed(&ev);
	tap_ok(T.st == T_BUSY && T.last_attempt == NOW && logged("e1: renew started (token tok1)"),
	       "/fsm/started/renew", "st %d", T.st);
	fresh();
	T.st = T_NO_TOKEN;
	ev.op = OP_RECOVER;
	feed(&ev);
	tap_ok(T.st == T_NO_TOKEN && T.last_attempt == 0 && out.n == 0,
	       "/fsm/started/look-keeps-waiting-token", "st %d, %zu actions", T.st, out.n);
	fresh();
	T.st = T_POLLING;
	ev.op = OP_RESUME;
	feed(&ev);
	tap_ok(T.st == T_POLLING && T.last_attempt == NOW, "/fsm/started/resume-keeps-waiting-ca",
	       "st %d", T.st);
	fresh();
	ev.kind = EV_LAUNCH_FAILED;
	ev.op = OP_RENEW;
	feed(&ev);
	tap_ok(T.st == T_BACKOFF && T.failures == 1 && T.next == NOW + 60 &&
		       count(ACT_PUBLISH) == 1 && strstr(track_error(&T), "could not be started"),
	       "/fsm/started/launch-failed", "st %d next %+lld", T.st, T.next - NOW);
}

/* ---- any step: exit 4 -------------------------------------------------------- */

static void test_pin(void)
{
	fresh();
	T.waiter_fd = 7;
	record(EXIT_PIN);
	done(OP_RENEW, EXIT_PIN);
	tap_ok(T.st == T_PIN && strcmp(track_pin_latch(&T), FP) == 0 && hooked(0) &&
		       answered(7, "renew failed: boom 4") == EXIT_PIN && count(ACT_PUBLISH) == 1,
	       "/fsm/any/exit-4-latches", "st %d latch '%s'", T.st, track_pin_latch(&T));
	fresh();
	record(EXIT_PIN);
	done(OP_RECOVER, EXIT_PIN);
	tap_ok(T.st == T_PIN && strcmp(track_pin_latch(&T), FP) == 0, "/fsm/any/exit-4-of-a-look",
	       "st %d", T.st);
}

/* ---- check --recover and check -------------------------------------------- */

static void test_look(void)
{
	fresh();
	T.need_recover = 1;
	T.waiter_fd = 7;
	record(EXIT_TOKEN);
	done(OP_RECOVER, EXIT_TOKEN);
	tap_ok(T.st == T_BACKOFF && T.failures == 1 && count(ACT_HOOK) == 0 && T.need_recover &&
		       T.have_cert && T.not_after == NOW + 99 * DAY &&
		       strcmp(track_error(&T), "boom 3") == 0 &&
		       answered(7, "looking at the token failed") == EXIT_TOKEN,
	       "/fsm/look/failed-backoff", "st %d failures %d", T.st, T.failures);
	fresh();
	record(EXIT_TOKEN);
	done(OP_CHECK, EXIT_TOKEN);
	tap_ok(T.st == T_BACKOFF && T.need_refresh, "/fsm/look/failed-refresh-again", "st %d",
	       T.st);

	fresh();
	T.need_recover = 1;
	T.e.token_poll = 7;
	T.waiter_fd = 7;
	record(EXIT_ABSENT);
	R.token = 0;
	done(OP_RECOVER, EXIT_ABSENT);
	tap_ok(T.st == T_NO_TOKEN && T.need_recover && T.next == NOW + 7 &&
		       logged("is not present: waiting for it") &&
		       answered(7, "not renewed: the token is not present") == EXIT_ABSENT,
	       "/fsm/look/exit-10", "st %d next %+lld", T.st, T.next - NOW);
	fresh();
	record(0);
	R.token = 0;
	done(OP_CHECK, 0);
	tap_ok(T.st == T_NO_TOKEN && T.next == NOW + 10, "/fsm/look/token-absent", "st %d", T.st);

	fresh();
	T.st = T_NO_TOKEN;
	looked_cert(OP_RECOVER, NOW - DAY, NOW + 99 * DAY);
	tap_ok(T.st == T_VALID && logged("e1: token tok1 is back"), "/fsm/look/token-back",
	       "st %d", T.st);

	fresh();
	record(0);
	R.token = 1;
	R.cert = 1;
	snprintf(R.cert_serial, sizeof(R.cert_serial), "0C");
	R.not_before = NOW - DAY;
	R.not_after = NOW + 99 * DAY;
	snprintf(R.pending, sizeof(R.pending), "kur");
	R.pending_saved = NOW - 30;
	R.pending_check_after = 100;
	done(OP_RECOVER, 0);
	tap_ok(T.st == T_POLLING && T.pending && T.next == NOW + 70, "/fsm/look/pending",
	       "st %d next %+lld", T.st, T.next - NOW);
	R.pending_saved = NOW - 3000;
	done(OP_CHECK, 0);
	tap_ok(T.st == T_POLLING && T.next == NOW, "/fsm/look/pending-overdue", "next %+lld",
	       T.next - NOW);

	fresh();
	record(0);
	R.token = 1;
	R.cert = 0;
	done(OP_CHECK, 0);
	tap_ok(T.st == T_VALID && !T.have_cert && T.next == NOW, "/fsm/look/no-cert",
	       "st %d next %+lld", T.st, T.next - NOW);

	fresh();
	T.st = T_BACKOFF;
	T.failures = 3;
	T.next = NOW + 500;
	track_set_error(&T, "old");
	looked_cert(OP_RECOVER, NOW - DAY, NOW + 99 * DAY);
	tap_ok(T.st == T_VALID && T.failures == 0 && track_error(&T)[0] == '\0' &&
		       T.next == NOW + 65 * DAY && logged("the earlier failures are over"),
	       "/fsm/look/not-due-ends-failures", "st %d failures %d", T.st, T.failures);

	/* the boundary: due in 1 s is "not yet due"; due now is due */
	fresh();
	T.failures = 1;
	T.next = NOW + 500;
	looked_cert(OP_RECOVER, NOW - 65, NOW + 35);
	tap_ok(T.failures == 0 && T.st == T_VALID && T.next == NOW + 1,
	       "/fsm/look/not-due-by-one-second", "failures %d next %+lld", T.failures,
	       T.next - NOW);
	fresh();
	T.failures = 1;
	T.next = NOW + 500;
	looked_cert(OP_RECOVER, NOW - 66, NOW + 34);
	tap_ok(T.failures == 1 && T.st == T_BACKOFF && T.next == NOW + 500,
	       "/fsm/look/due-now-keeps-failures", "failures %d st %d", T.failures, T.st);

	fresh();
	T.failures = 1;
	T.next = NOW + 500;
	looked_cert(OP_RECOVER, NOW - 90 * DAY, NOW + 10 * DAY);
	tap_ok(T.st == T_BACKOFF && T.next == NOW + 500 && T.failures == 1,
	       "/fsm/look/due-keeps-backoff", "st %d", T.st);

	fresh();
	T.need_recover = 1;
	looked_cert(OP_RECOVER, NOW - DAY, NOW + 99 * DAY);
	tap_ok(T.st == T_VALID && T.next == NOW + 65 * DAY && !T.need_recover &&
		       strcmp(T.cert_serial, "0B") == 0 && logged("is not due for renewal before"),
	       "/fsm/look/valid", "st %d next %+lld", T.st, T.next - NOW);
	looked_cert(OP_CHECK, NOW - DAY, NOW + 99 * DAY);
	tap_ok(!logged("is not due for renewal before"), "/fsm/look/due-logged-once",
	       "%zu actions", out.n);

	fresh();
	T.hook_due = 1;
	looked_cert(OP_CHECK, NOW - DAY, NOW + 99 * DAY);
	tap_ok(hooked(1) && !T.hook_due, "/fsm/look/success-hook-after-refresh", "hooks %d",
	       count(ACT_HOOK));
	fresh();
	T.hook_due = 1;
	record(EXIT_TOKEN);
	done(OP_CHECK, EXIT_TOKEN);
	tap_ok(count(ACT_HOOK) == 0 && T.hook_due, "/fsm/look/success-hook-waits",
	       "hooks %d", count(ACT_HOOK));
}

/* ---- renew, enroll, resume ------------------------------------------------- */

static void test_request(void)
{
	fresh();
	T.failures = 2;
	T.waiter_fd = 7;
	T.renewals = 4;
	record(0);
	snprintf(R.transaction, sizeof(R.transaction), "c0ffee");
	done(OP_RENEW, 0);
	tap_ok(T.failures == 0 && T.last_success == NOW && T.renewals == 5 &&
		       track_error(&T)[0] == '\0' && T.need_refresh && T.hook_due && T.next == NOW &&
		       count(ACT_HOOK) == 0 && first(ACT_ANSWER_OUTPUT) != NULL &&
		       first(ACT_ANSWER_OUTPUT)->fd == 7 && T.waiter_fd == -1 &&
		       logged("e1: renew done (token tok1, transaction c0ffee)"),
	       "/fsm/step/exit-0", "failures %d renewals %ld", T.failures, T.renewals);

	fresh();
	record(EXIT_WAITING);
	done(OP_ENROLL, EXIT_WAITING);
	tap_ok(T.st == T_POLLING && T.pending && T.need_refresh && count(ACT_HOOK) == 0,
	       "/fsm/step/exit-9", "st %d", T.st);

	fresh();
	record(EXIT_ABSENT);
	done(OP_RENEW, EXIT_ABSENT);
	tap_ok(T.st == T_NO_TOKEN && T.need_recover && T.next == NOW + 10 && count(ACT_HOOK) == 0,
	       "/fsm/step/exit-10", "st %d", T.st);

	fresh();
	T.e.bootstrap = 1;
	T.waiter_fd = 7;
	record(EXIT_REJECTED);
	done(OP_RENEW, EXIT_REJECTED);
	tap_ok(T.bootstrap_next == OP_ENROLL && T.st == T_VALID && count(ACT_HOOK) == 0 &&
		       T.waiter_fd == 7 && answered(7, NULL) < 0,
	       "/fsm/step/exit-6-bootstrap", "st %d", T.st);
	T.next = NOW;
	tick();
	tap_ok(started() == OP_ENROLL, "/fsm/step/exit-6-bootstrap-enrolls", "op %d", started());

	fresh();
	record(EXIT_REJECTED);
	done(OP_RENEW, EXIT_REJECTED);
	tap_ok(T.st == T_STOPPED &&
		       strstr(track_error(&T), "the CA refused the renewal (boom 6), and the agent "
					       "enrolls anew only with bootstrap credentials") &&
		       hooked(0),
	       "/fsm/step/exit-6-stops", "%s", track_error(&T));
	fresh();
	T.e.bootstrap = 1;
	record(EXIT_REJECTED);
	snprintf(R.error, sizeof(R.error), "rejection: badPOP: the CA says no");
	done(OP_RESUME, EXIT_REJECTED);
	tap_ok(T.st == T_STOPPED &&
		       strcmp(track_error(&T),
			      "the CA refused the request: rejection: badPOP: the CA says no") == 0 &&
		       hooked(0),
	       "/fsm/step/exit-6-resume-stops", "%s", track_error(&T));

	fresh();
	record(EXIT_USAGE);
	done(OP_RENEW, EXIT_USAGE);
	tap_ok(T.st == T_STOPPED && strstr(track_error(&T), "configuration error") && hooked(0),
	       "/fsm/step/exit-2-stops", "%s", track_error(&T));
	fresh();
	T.st = T_POLLING;
	T.pending = 1;
	record(EXIT_USAGE);
	done(OP_RESUME, EXIT_USAGE);
	tap_ok(T.st == T_POLLING && !T.pending && T.need_refresh && count(ACT_HOOK) == 0,
	       "/fsm/step/exit-2-resume-looks-again", "st %d", T.st);

	fresh();
	T.waiter_fd = 7;
	T.failures = 1;
	record(EXIT_TRANSPORT);
	snprintf(R.error, sizeof(R.error), "the CA cannot be reached: %0300d", 0);
	done(OP_RENEW, EXIT_TRANSPORT);
	tap_ok(T.st == T_BACKOFF && T.failures == 2 && T.next == NOW + 120 && hooked(0) &&
		       strlen(track_error(&T)) == strlen(R.error) &&
		       answered(7, "e1: renew failed: the CA cannot be reached") == EXIT_TRANSPORT &&
		       logged("e1: attempt 2 failed (token tok1): the CA cannot be reached"),
	       "/fsm/step/exit-5-backoff", "st %d failures %d next %+lld", T.st, T.failures,
	       T.next - NOW);

	fresh();
	{
		fsm_event ev = { .kind = EV_STEP_DONE, .op = OP_ENROLL, .signal = 9 };

		feed(&ev);
	}
	tap_ok(T.st == T_BACKOFF && T.exit_code == EXIT_INTERNAL &&
		       strcmp(track_error(&T), "the enroll step died (signal 9)") == 0 && hooked(0),
	       "/fsm/step/signal", "%s", track_error(&T));

	fresh();
	{
		fsm_event ev = { .kind = EV_STEP_DONE, .op = OP_RENEW, .exited = 1,
				 .res_why = "line 1: not a version 1 result record" };

		feed(&ev);
	}
	tap_ok(T.st == T_BACKOFF && T.exit_code == EXIT_INTERNAL &&
		       strstr(track_error(&T), "left no result record: line 1: not a version 1"),
	       "/fsm/step/no-record", "%s", track_error(&T));

	fresh();
	record(EXIT_BUSY);
	done(OP_RENEW, EXIT_BUSY);
	tap_ok(T.st == T_VALID && T.next == NOW + 5 && T.failures == 0 && count(ACT_HOOK) == 0,
	       "/fsm/step/exit-11", "st %d", T.st);
	tap_ok(overflow == 0, "/fsm/actions-bounded", "%d events filled the action list",
	       overflow);
}

/* ---- revoke_replaced: the step is done, the revocation after it failed -------- */

static void unrevoked_record(int code, const char *why)
{
	record(code);
	R.unrevoked = code;
	snprintf(R.error, sizeof(R.error), "the new certificate is in place and in use");
	snprintf(R.unrevoked_error, sizeof(R.unrevoked_error), "%s", why);
}

static void test_unrevoked(void)
{
	fresh();
	T.e.bootstrap = 1;
	T.e.label = strdup("lab");
	T.waiter_fd = 7;
	T.renewals = 4;
	T.failures = 1;
	unrevoked_record(EXIT_REJECTED, "revoking the replaced certificate, serial 1F, failed: no");
	done(OP_RENEW, EXIT_REJECTED);
	tap_ok(T.st != T_STOPPED && T.bootstrap_next == OP_NONE && T.failures == 0 &&
		       T.renewals == 5 && T.last_success == NOW && T.need_refresh && T.hook_due &&
		       T.next == NOW && count(ACT_HOOK) == 0 && T.revoke_failures == 1 &&
		       T.revoke_at == NOW + 60 &&
		       strcmp(track_error(&T),
			      "the replaced certificate (label 'lab (to revoke)') is not revoked yet: "
			      "revoking the replaced certificate, serial 1F, failed: no (exit 6); "
			      "retried in 60 s") == 0 &&
		       answered(7, "e1: renew done; the replaced certificate (label 'lab (to "
				   "revoke)') is not revoked yet: revoking") == EXIT_REJECTED &&
		       logged("e1: renew done") && logged("is not revoked yet"),
	       "/fsm/step/unrevoked-6-renewed", "st %d failures %d revoke %d at %+lld: %s", T.st,
	       T.failures, T.revoke_failures, T.revoke_at - NOW, track_error(&T));
	/* the refresh look, then the renewal's due time or the retry, which
	 * comes first */
	{
		fsm_event ev = { .kind = EV_STARTED, .op = OP_CHECK };

		feed(&ev);
	}
	looked_cert(OP_CHECK, NOW, NOW + 100 * DAY);
	tap_ok(T.st == T_VALID && T.revoke_failures == 1 && hooked(1) &&
		       strstr(track_error(&T), "is not revoked yet") != NULL,
	       "/fsm/step/unrevoked-refresh-keeps-it", "st %d: %s", T.st, track_error(&T));
	tick();
	tap_ok(started() == OP_NONE && first(ACT_WAKE) != NULL && first(ACT_WAKE)->at == NOW + 60,
	       "/fsm/decide/unrevoked-wakes-for-retry", "op %d", started());
	T.revoke_at = NOW;
	tick();
	tap_ok(started() == OP_RECOVER, "/fsm/decide/unrevoked-retry-recovers", "op %d", started());
	unrevoked_record(EXIT_TRANSPORT, "the CA cannot be reached");
	R.exit_code = 0;
	R.token = 1;
	R.cert = 1;
	snprintf(R.cert_serial, sizeof(R.cert_serial), "0B");
	R.not_before = NOW;
	R.not_after = NOW + 100 * DAY;
	R.error[0] = '\0';
	done(OP_RECOVER, 0);
	tap_ok(T.st == T_VALID && T.revoke_failures == 2 && T.revoke_at == NOW + 120 &&
		       T.failures == 0 && strstr(track_error(&T), "cannot be reached (exit 5)"),
	       "/fsm/look/unrevoked-again-backs-off", "revoke %d at %+lld: %s", T.revoke_failures,
	       T.revoke_at - NOW, track_error(&T));
	looked_cert(OP_RECOVER, NOW, NOW + 100 * DAY);
	tap_ok(T.st == T_VALID && T.revoke_failures == 0 && T.revoke_at == 0 &&
		       track_error(&T)[0] == '\0' && logged("no replaced certificate waits"),
	       "/fsm/look/revoked-clears", "revoke %d: %s", T.revoke_failures, track_error(&T));

	/* the renewal comes due meanwhile: it waits for the revocation (a
	 * step would send the rr first and request nothing while it fails) */
	fresh();
	T.revoke_failures = 1;
	T.revoke_at = NOW + 60;
	track_set_error(&T, "not revoked yet");
	T.next = NOW - 1;
	T.waiter_fd = 7;
	tick();
	tap_ok(started() == OP_NONE && first(ACT_WAKE) != NULL && first(ACT_WAKE)->at == NOW + 60 &&
		       answered(7, "e1: not renewed: not revoked yet") == EXIT_BUSY &&
		       T.waiter_fd == -1 && T.st == T_VALID,
	       "/fsm/decide/unrevoked-renewal-waits", "op %d", started());
	T.revoke_at = NOW;
	tick();
	tap_ok(started() == OP_RECOVER, "/fsm/decide/unrevoked-retry-before-renewal", "op %d",
	       started());

	/* a plain look says nothing of it */
	fresh();
	T.revoke_failures = 1;
	T.revoke_at = NOW + 60;
	track_set_error(&T, "not revoked yet");
	looked_cert(OP_CHECK, NOW, NOW + 100 * DAY);
	tap_ok(T.revoke_failures == 1 && T.revoke_at == NOW + 60 &&
		       strcmp(track_error(&T), "not revoked yet") == 0,
	       "/fsm/look/check-keeps-unrevoked", "revoke %d", T.revoke_failures);
	/* a renewal that exits 0 revoked it first (else it would have failed) */
	record(0);
	done(OP_RENEW, 0);
	tap_ok(T.revoke_failures == 0 && T.revoke_at == 0 && track_error(&T)[0] == '\0',
	       "/fsm/step/exit-0-clears-unrevoked", "revoke %d", T.revoke_failures);

	/* transport failures of the rr likewise; a resume too */
	fresh();
	unrevoked_record(EXIT_TRANSPORT, "cannot connect");
	done(OP_RESUME, EXIT_TRANSPORT);
	tap_ok(T.st != T_BACKOFF && T.failures == 0 && T.renewals == 1 && T.revoke_failures == 1 &&
		       count(ACT_HOOK) == 0,
	       "/fsm/step/unrevoked-5-resumed", "st %d failures %d", T.st, T.failures);

	/* strict: an exit that is not the rr's is the step's own failure */
	fresh();
	unrevoked_record(EXIT_TRANSPORT, "cannot connect");
	done(OP_RENEW, EXIT_REJECTED);
	tap_ok(T.st == T_STOPPED && T.revoke_failures == 0 && hooked(0),
	       "/fsm/step/unrevoked-other-exit-fails", "st %d", T.st);
	free(T.e.label);
	T.e.label = NULL;
}

/* ---- control requests -------------------------------------------------------- */

static void control(fsm_event_kind kind, int fd, int privileged)
{
	fsm_event ev = { .kind = kind, .fd = fd, .privileged = privileged, .uid = 1000,
			 .agent_uid = 0, .wall = NOW, .rate = 1 };

	feed(&ev);
}

static void test_control(void)
{
	fresh();
	control(EV_RENEW, 9, 0);
	tap_ok(T.waiter_fd == 9 && first(ACT_WAIT) != NULL && first(ACT_WAIT)->fd == 9 &&
		       T.next == NOW,
	       "/fsm/ctl/renew-waits", "waiter %d", T.waiter_fd);
	control(EV_RENEW, 10, 1);
	tap_ok(T.waiter_fd == 9 && answered(10, "already requested") == EXIT_USAGE,
	       "/fsm/ctl/renew-twice", "waiter %d", T.waiter_fd);
	fresh();
	T.st = T_POLLING;
	T.next = NOW + 50;
	control(EV_RENEW, 9, 0);
	tap_ok(T.waiter_fd == 9 && T.next == NOW + 50, "/fsm/ctl/renew-waiting-ca-keeps-time",
	       "next %+lld", T.next - NOW);

	fresh();
	T.st = T_BACKOFF;
	T.next = NOW + 300;
	control(EV_RENEW, 9, 0);
	tap_ok(T.waiter_fd == 9 && T.forced_at == NOW, "/fsm/ctl/renew-forced-once",
	       "waiter %d", T.waiter_fd);
	/* the forced step ran and failed again */
	T.waiter_fd = -1;
	T.next = NOW + 300;
	control(EV_RENEW, 10, 0);
	tap_ok(T.waiter_fd == -1 &&
		       answered(10, "the next is allowed in 60 s (2025-11-26 23:34:20 UTC); "
				    "the agent retries by itself in 300 s") == EXIT_BUSY,
	       "/fsm/ctl/renew-forced-too-soon", "%s", out.n ? out.a[out.n - 1].text : "");
	control(EV_RENEW, 11, 1);
	tap_ok(T.waiter_fd == 11, "/fsm/ctl/renew-privileged-not-limited", "waiter %d",
	       T.waiter_fd);

	fresh();
	T.st = T_STOPPED;
	T.failures = 4;
	track_set_pin_latch(&T, "x");
	control(EV_CLEAR, 9, 1);
	tap_ok(T.st == T_START && T.failures == 0 && T.need_recover && T.next == NOW &&
		       track_pin_latch(&T)[0] == '\0' && count(ACT_PUBLISH) == 1 &&
		       answered(9, "cleared e1") == EXIT_OK,
	       "/fsm/ctl/clear", "st %d", T.st);

	fresh();
	T.st = T_PIN;
	track_set_pin_latch(&T, FP);
	control(EV_CLEAR, 9, 0);
	tap_ok(T.st == T_PIN && answered(9, "not cleared: the token rejected the PIN") == EXIT_USAGE,
	       "/fsm/ctl/clear-pin-refused", "st %d", T.st);
	control(EV_CLEAR, 9, 1);
	tap_ok(T.st == T_START && track_pin_latch(&T)[0] == '\0' && logged("PIN latch cleared by uid 1000"),
	       "/fsm/ctl/clear-pin-privileged", "st %d", T.st);
	fresh();
	T.st = T_PIN;
	track_set_pin_latch(&T, "an older PIN file");
	control(EV_CLEAR, 9, 0);
	tap_ok(T.st == T_START, "/fsm/ctl/clear-pin-source-changed", "st %d", T.st);

	fresh();
	T.st = T_STOPPED;
	control(EV_CLEAR, 9, 0);
	T.st = T_STOPPED;
	control(EV_CLEAR, 10, 0);
	tap_ok(T.st == T_STOPPED && answered(10, "not cleared: a client forced a step") == EXIT_BUSY,
	       "/fsm/ctl/clear-stopped-forced-limit", "st %d", T.st);
}

/* ---- a locked PIN (the token's or the TPM's lockout) ------------------------ */

static void test_lockout(void)
{
	track U;
	fsm_event ev = { .kind = EV_LOCKED, .lock = "tpm", .lock_by = "e2" };

	fresh();
	T.waiter_fd = 7;
	record(EXIT_PIN);
	snprintf(R.pin_locked, sizeof(R.pin_locked), "tpm");
	done(OP_RENEW, EXIT_PIN);
	tap_ok(T.st == T_LOCKED && strcmp(T.pin_locked, "tpm") == 0 &&
		       track_pin_latch(&T)[0] == '\0' && hooked(0) && count(ACT_PUBLISH) == 1 &&
		       answered(7, "renew failed: boom 4") == EXIT_PIN &&
		       logged("dictionary-attack lockout") && logged("`p11enroll clear e1`"),
	       "/fsm/lock/exit-4-locked-latches", "st %d locked '%s'", T.st, T.pin_locked);
	/* nothing, not even a wake-up; a PIN source change lifts nothing */
	T.waiter_fd = 8;
	{
		fsm_event t2 = { .kind = EV_TICK,
				 .pin_fp = "file:/etc/pin inode 2 size 4 mtime 6" };

		feed(&t2);
	}
	tap_ok(T.st == T_LOCKED && started() == OP_NONE && first(ACT_WAKE) == NULL &&
		       answered(8, "not renewed: boom 4") == EXIT_PIN,
	       "/fsm/lock/tick-nothing", "st %d n %zu", T.st, out.n);
	control(EV_CLEAR, 9, 0);
	tap_ok(T.st == T_LOCKED && answered(9, "not cleared: the PIN is locked") == EXIT_USAGE,
	       "/fsm/lock/clear-refused", "st %d", T.st);
	control(EV_CLEAR, 9, 1);
	tap_ok(T.st == T_START && T.pin_locked[0] == '\0' && T.need_recover && T.next == NOW &&
		       answered(9, "cleared e1") == EXIT_OK &&
		       logged("lockout latch (tpm) cleared"),
	       "/fsm/lock/clear-privileged", "st %d", T.st);

	/* another enrollment's step met the lockout */
	fresh();
	T.waiter_fd = 7;
	feed(&ev);
	tap_ok(T.st == T_LOCKED && strcmp(T.pin_locked, "tpm") == 0 &&
		       strstr(track_error(&T), "a step of e2 met") != NULL &&
		       answered(7, "not renewed: the PIN is locked") == EXIT_PIN &&
		       count(ACT_PUBLISH) == 1 && count(ACT_HOOK) == 0,
	       "/fsm/lock/covered", "st %d '%s'", T.st, track_error(&T));
	fresh();
	T.op = OP_RENEW;
	feed(&ev);
	tap_ok(T.st == T_VALID && out.n == 0, "/fsm/lock/covered-running-step-finds-out",
	       "st %d", T.st);
	fresh();
	T.st = T_STOPPED;
	feed(&ev);
	tap_ok(T.st == T_STOPPED && out.n == 0, "/fsm/lock/covered-stopped-stays", "st %d", T.st);
	fresh();
	T.st = T_LOCKED;
	snprintf(T.pin_locked, sizeof(T.pin_locked), "token");
	feed(&ev);
	tap_ok(T.st == T_LOCKED && strcmp(T.pin_locked, "token") == 0 && out.n == 0,
	       "/fsm/lock/covered-locked-stays", "st %d '%s'", T.st, T.pin_locked);

	/* clear NAME of that other enrollment */
	fresh();
	T.st = T_LOCKED;
	snprintf(T.pin_locked, sizeof(T.pin_locked), "tpm");
	ev.kind = EV_UNLOCKED;
	feed(&ev);
	tap_ok(T.st == T_START && T.pin_locked[0] == '\0' && T.need_recover &&
		       count(ACT_PUBLISH) == 1,
	       "/fsm/lock/uncovered", "st %d", T.st);
	fresh();
	T.st = T_LOCKED;
	track_set_pin_latch(&T, FP);
	feed(&ev);
	tap_ok(T.st == T_PIN && strcmp(track_pin_latch(&T), FP) == 0,
	       "/fsm/lock/uncovered-rejected-pin-stays", "st %d", T.st);
	fresh();
	feed(&ev);
	tap_ok(T.st == T_VALID && out.n == 0, "/fsm/lock/uncovered-not-locked", "st %d", T.st);

	/* whom a lockout covers */
	fresh();
	memset(&U, 0, sizeof(U));
	T.e.module = (char *)"/m/tpm.so";
	T.e.token = (char *)"pkcs11:token=a";
	U.e.module = (char *)"/m/tpm.so";
	U.e.token = (char *)"pkcs11:token=b";
	tap_ok(fsm_lock_covers(&T, "tpm", &U) && !fsm_lock_covers(&T, "token", &U) &&
		       !fsm_lock_covers(&T, "tpm", &T),
	       "/fsm/lock/covers-module-for-tpm", "%s", "covers");
	U.e.token = (char *)"pkcs11:token=a";
	tap_ok(fsm_lock_covers(&T, "token", &U), "/fsm/lock/covers-token", "%s", "covers");
	U.e.module = (char *)"/m/other.so";
	tap_ok(!fsm_lock_covers(&T, "tpm", &U) && !fsm_lock_covers(&T, "token", &U),
	       "/fsm/lock/covers-not-other-module", "%s", "covers");
	T.e.module = NULL;
	T.e.token = NULL;
}

/* ---- looks in passes: one child for several enrollments of a token ---------- */

static void test_pass(void)
{
	track U;
	fsm_actions uo;
	fsm_event ev = { .kind = EV_STEP_DONE, .op = OP_RECOVER, .now = NOW, .pin_fp = FP };
	track_state st;
	long long next;

	/* A tick that starts a look leaves the track as the next tick finds
	 * it: the loop may leave the start to the token's next pass. */
	fresh();
	T.st = T_START;
	T.need_recover = 1;
	T.next = 0;
	tick();
	st = T.st;
	next = T.next;
	tick();
	tap_ok(started() == OP_RECOVER && T.st == st && T.next == next && T.need_recover,
	       "/fsm/pass/tick-again-same-start", "op %d st %d", started(), T.st);

	/* who joins a pass */
	fresh();
	T.e.pin_source = strdup("file:/a");
	memcpy(&U, &T, sizeof(U));
	U.e.pin_source = (char *)"file:/a";
	tap_ok(fsm_joins_pass(&T, OP_RECOVER, &U, OP_RECOVER) &&
		       fsm_joins_pass(&T, OP_CHECK, &U, OP_CHECK) &&
		       !fsm_joins_pass(&T, OP_RECOVER, &U, OP_CHECK) &&
		       !fsm_joins_pass(&T, OP_CHECK, &U, OP_RECOVER) &&
		       !fsm_joins_pass(&T, OP_RENEW, &U, OP_RENEW),
	       "/fsm/pass/joins-same-look", "%s", "who joins");
	U.e.pin_source = (char *)"file:/b";
	tap_ok(!fsm_joins_pass(&T, OP_RECOVER, &U, OP_RECOVER) &&
		       fsm_joins_pass(&T, OP_CHECK, &U, OP_CHECK),
	       "/fsm/pass/recovery-needs-same-pin-source", "%s", "pin source");
	U.e.pin_source = (char *)"file:/a";
	snprintf(U.token_serial, sizeof(U.token_serial), "tok2");
	tap_ok(!fsm_joins_pass(&T, OP_RECOVER, &U, OP_RECOVER) &&
		       !fsm_joins_pass(&T, OP_CHECK, &U, OP_CHECK),
	       "/fsm/pass/same-token-serial", "%s", "serial");
	/* Serials repeat (every tpm2-pkcs11 token of one TPM has
	 * 0000000000000000): the same serial on another token is not the
	 * same token. */
	snprintf(U.token_serial, sizeof(U.token_serial), "%s", T.token_serial);
	snprintf(U.token_label, sizeof(U.token_label), "other");
	tap_ok(!fsm_joins_pass(&T, OP_CHECK, &U, OP_CHECK), "/fsm/pass/same-serial-other-label",
	       "%s", "label");
	U.token_label[0] = '\0';
	snprintf(U.token_model, sizeof(U.token_model), "other");
	tap_ok(!fsm_joins_pass(&T, OP_CHECK, &U, OP_CHECK), "/fsm/pass/same-serial-other-model",
	       "%s", "model");
	U.token_model[0] = '\0';
	snprintf(U.token_manufacturer, sizeof(U.token_manufacturer), "other");
	tap_ok(!fsm_joins_pass(&T, OP_CHECK, &U, OP_CHECK),
	       "/fsm/pass/same-serial-other-manufacturer", "%s", "manufacturer");
	U.token_manufacturer[0] = '\0';
	tap_ok(fsm_joins_pass(&T, OP_CHECK, &U, OP_CHECK), "/fsm/pass/same-identity", "%s",
	       "identity");

	/* Each enrollment of a pass ends by its own record; one without a
	 * record (the pass was killed after the others') gets a missing
	 * record's end, the others keep theirs. */
	fresh();
	T.st = T_BUSY;
	T.need_recover = 1;
	looked_cert(OP_RECOVER, NOW - DAY, NOW + 99 * DAY);
	memset(&U, 0, sizeof(U));
	U.name = (char *)"e2";
	conf_enrollment_init(&U.e);
	sched_policy_default(&U.pol);
	U.st = T_BUSY;
	U.need_recover = 1;
	U.waiter_fd = -1;
	ev.exited = 1;
	ev.exit_code = 0;
	ev.res = NULL;
	ev.res_why = "the look at 2 enrollments ended after 1 records";
	fsm_step(&U, &ev, &uo);
	tap_ok(T.st == T_VALID && !T.need_recover && U.st == T_BACKOFF && U.need_recover &&
		       U.failures == 1 &&
		       strstr(track_error(&U), "left no result record: the look at 2 enrollments "
					       "ended after 1 records") != NULL,
	       "/fsm/pass/record-each", "st %d/%d: %s", T.st, U.st, track_error(&U));
	track_set_error(&U, NULL);
	U.st = T_BUSY;
	ev.exited = 0;
	ev.signal = 9;
	fsm_step(&U, &ev, &uo);
	tap_ok(U.st == T_BACKOFF && U.failures == 2 && U.need_recover &&
		       strcmp(track_error(&U), "the recover step died (signal 9)") == 0,
	       "/fsm/pass/killed", "st %d: %s", U.st, track_error(&U));
	track_set_error(&U, NULL);
}

/* ---- the record: errors, their time, the CA's status, hooks ------------------ */

/* A kur the CA refused, with some of the bootstrap settings: the stop says
 * exactly which are missing. */
static void refused_with(const char *ref, const char *sec, const char *want, const char *name)
{
	fresh();
	T.e.reference = ref != NULL ? strdup(ref) : NULL;
	T.e.secret_source = sec != NULL ? strdup(sec) : NULL;
	record(EXIT_REJECTED);
	done(OP_RENEW, EXIT_REJECTED);
	tap_ok(T.st == T_STOPPED && strstr(track_error(&T), want) != NULL, name, "%s",
	       track_error(&T));
}

static void test_record(void)
{
	char big[TRACK_ERROR_MAX + 100];
	size_t n;

	refused_with("r", "file:/s",
		     "bootstrap credentials: `bootstrap = yes` is not set (reference and "
		     "secret_source are); set it in the configuration",
		     "/fsm/record/bootstrap-missing-only");
	refused_with(NULL, "file:/s",
		     "bootstrap credentials: `bootstrap = yes` and reference are not set "
		     "(secret_source is); set them",
		     "/fsm/record/bootstrap-and-reference-missing");
	refused_with("r", NULL,
		     "bootstrap credentials: `bootstrap = yes` and secret_source are not set "
		     "(reference is); set them",
		     "/fsm/record/bootstrap-and-secret-missing");
	refused_with(NULL, NULL,
		     "bootstrap credentials: `bootstrap = yes`, reference and secret_source are "
		     "not set; set them",
		     "/fsm/record/all-missing");

	/* the error's time, and the CA's rejection with it */
	fresh();
	record(EXIT_REJECTED);
	snprintf(R.ca_status, sizeof(R.ca_status), "rejection");
	snprintf(R.ca_fail_info, sizeof(R.ca_fail_info), "badPOP badCertTemplate");
	done(OP_RENEW, EXIT_REJECTED);
	tap_ok(T.last_error_at == NOW && strcmp(T.ca_status, "rejection") == 0 &&
		       strcmp(T.ca_fail_info, "badPOP badCertTemplate") == 0,
	       "/fsm/record/time-and-ca-status", "at %lld, '%s' '%s'", T.last_error_at, T.ca_status,
	       T.ca_fail_info);

	/* an error from before is over when a look finds the certificate in
	 * place (here after clear NAME) */
	T.st = T_START;
	T.need_recover = 1;
	looked_cert(OP_RECOVER, NOW - DAY, NOW + 99 * DAY);
	tap_ok(T.st == T_VALID && track_error(&T)[0] == '\0' && T.last_error_at == 0 &&
		       T.ca_status[0] == '\0' && T.ca_fail_info[0] == '\0',
	       "/fsm/record/valid-look-clears", "st %d: '%s'", T.st, track_error(&T));

	/* a PIN failure counts, and the token it met is known */
	fresh();
	T.token_serial[0] = '\0';
	record(EXIT_PIN);
	snprintf(R.token_serial, sizeof(R.token_serial), "tok9");
	snprintf(R.token_label, sizeof(R.token_label), "lab9");
	done(OP_RECOVER, EXIT_PIN);
	tap_ok(T.st == T_PIN && T.failures == 1 && strcmp(T.token_serial, "tok9") == 0 &&
		       strcmp(T.token_label, "lab9") == 0 && hooked(0),
	       "/fsm/record/pin-counted-with-serial", "st %d, failures %d, serial '%s'", T.st,
	       T.failures, T.token_serial);

	/* a look's exit 2 (a configuration it cannot use) stops */
	fresh();
	record(EXIT_USAGE);
	done(OP_RECOVER, EXIT_USAGE);
	tap_ok(T.st == T_STOPPED && strcmp(track_error(&T), "boom 2") == 0 && hooked(0) &&
		       T.failures == 0,
	       "/fsm/record/look-exit-2-stops", "st %d: %s", T.st, track_error(&T));

	/* the success hook of the first enrollment says "enrolled", of a
	 * renewal "renewed" */
	fresh();
	T.have_cert = 0;
	record(0);
	done(OP_ENROLL, 0);
	tap_ok(T.hook_due && T.hook_enrolled, "/fsm/record/first-enrollment-enrolled", "%d %d",
	       T.hook_due, T.hook_enrolled);
	fresh();
	record(0);
	done(OP_RENEW, 0);
	tap_ok(T.hook_due && !T.hook_enrolled, "/fsm/record/renewal-renewed", "%d %d", T.hook_due,
	       T.hook_enrolled);

	/* an error longer than the bound: cut before a whole character, marked */
	fresh();
	memset(big, 'a', sizeof(big));
	n = TRACK_ERROR_MAX - sizeof(AGENT_CUT_MARK) - 1;
	memcpy(big + n, "\xc3\xa9", 2); /* U+00E9 over the cut */
	big[sizeof(big) - 1] = '\0';
	track_set_error(&T, "%s", big);
	n = strlen(track_error(&T));
	tap_ok(n < TRACK_ERROR_MAX && n >= TRACK_ERROR_MAX - sizeof(AGENT_CUT_MARK) - 2 &&
		       strcmp(track_error(&T) + n - (sizeof(AGENT_CUT_MARK) - 1), AGENT_CUT_MARK) ==
			       0 &&
		       track_error(&T)[n - sizeof(AGENT_CUT_MARK)] == 'a',
	       "/fsm/record/cut-at-character", "length %zu", n);
	track_set_error(&T, NULL);
}

int main(void)
{
	tap_plan(103 + 11);
	test_decide();
	test_started();
	test_pin();
	test_look();
	test_request();
	test_unrevoked();
	test_control();
	test_lockout();
	test_pass();
	test_record();
	conf_enrollment_clear(&T.e);
	return tap_done();
}
