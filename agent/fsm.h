/*
 * The agent's state machine (agent/STATE-MACHINE.md) as a pure function:
 * an enrollment's state, an event and the time go in; the new state and
 * the actions to carry out come out.  No I/O, no clock, no processes: the
 * loop (agentd.c) feeds the events and carries the actions out, and
 * tests/unit/test-fsm.c checks every row of the document.
 */
#ifndef P11ENROLL_FSM_H
#define P11ENROLL_FSM_H

#include "agent/result.h"
#include "agent/track.h"

typedef enum {
	EV_TICK,	  /* no child runs for it nor on its token: what next? */
	EV_STARTED,	  /* the step of the last ACT_START runs */
	EV_LAUNCH_FAILED, /* ... could not be started (pipe, fork) */
	EV_STEP_DONE,	  /* the step's child ended */
	EV_CLEAR,	  /* a control client asks: clear NAME */
	EV_RENEW,	  /* a control client asks: renew NAME */
	EV_LOCKED,	  /* another enrollment's step found the PIN locked, and the
			   * lockout covers this one too (fsm_lock_covers) */
	EV_UNLOCKED,	  /* clear NAME lifted the lockout of another enrollment
			   * whose lockout covers this one */
} fsm_event_kind;

typedef struct {
	fsm_event_kind kind;
	long long now; /* agent seconds (a test clock may run faster) */
	/* The PIN source's fingerprint now (track_pin_fingerprint()); needed
	 * in T_PIN, for EV_CLEAR and when a step exits 4. */
	const char *pin_fp;
	/* EV_STARTED, EV_LAUNCH_FAILED, EV_STEP_DONE */
	track_op op;
	/* EV_STEP_DONE: how the child ended, and its record (NULL: none
	 * or unreadable, res_why says why) */
	int exited, exit_code, signal;
	double seconds; /* how long it ran (real seconds, for the metrics) */
	const agent_result *res;
	const char *res_why;
	/* EV_CLEAR, EV_RENEW: the client */
	int fd, privileged;
	long uid, agent_uid;
	long long wall; /* real seconds now, for the time told to the client */
	long rate;	/* agent seconds per real second */
	/* EV_LOCKED: whose lockout ("token" or "tpm", agent_result.pin_locked)
	 * and the enrollment whose step found it */
	const char *lock, *lock_by;
} fsm_event;

typedef enum {
	ACT_START,	   /* start step op */
	ACT_WAKE,	   /* nothing to start: look again at `at` (agent seconds) */
	ACT_HOOK,	   /* run the success (ok) or failure hook */
	ACT_PUBLISH,	   /* save the enrollment's state, write the metrics */
	ACT_ANSWER,	   /* answer the client on fd: text, then "exit code" */
	ACT_ANSWER_OUTPUT, /* the same after the step's stdout and stderr; the
			      text only when ok or the step wrote no stderr */
	ACT_WAIT,	   /* the client on fd waits for the outcome of a step */
	ACT_LOG,	   /* log text at level */
} fsm_act_kind;

typedef struct {
	fsm_act_kind kind;
	track_op op;
	long long at;
	int ok, fd, code, level;
	char text[TRACK_ERROR_MAX + 512];
} fsm_action;

#define FSM_MAX_ACTIONS 8

typedef struct {
	size_t n;
	fsm_action a[FSM_MAX_ACTIONS];
} fsm_actions;

/* Agent seconds between looks at the PIN source of a pin-rejected
 * enrollment: a stat() of a file, only while a PIN is latched, so that a
 * corrected PIN file is tried within seconds. */
#define FSM_PIN_POLL 5

/* Moves t by ev; out receives the actions, in the order to carry out.
 * An EV_TICK that starts a look (ACT_START of OP_RECOVER or OP_CHECK)
 * leaves t as a second tick would find it, and that tick asks for the
 * same start: the loop may leave the start to the token's next pass. */
void fsm_step(track *t, const fsm_event *ev, fsm_actions *out);

/*
 * Looks run as passes: one child looks at several enrollments of a token
 * (check [--recover] NAME...), with one login.  Whether t, whose tick
 * started op, joins the pass that lead's op started: the same kind of
 * look, for a recovery the same PIN source, and the same token serial seen
 * last (the URI the pass pins).  Both share the token's module and URI:
 * the loop asks only about enrollments of one token.
 */
int fsm_joins_pass(const track *lead, track_op lead_op, const track *t, track_op op);

/*
 * Whether the lockout of kind lock ("token" or "tpm") that a step of t
 * found covers u as well (u != t).  A token's own lockout covers the
 * enrollments of the same token: the same module and token settings.  The
 * TPM's covers every enrollment of the same module setting: the module
 * reaches the TPM through the TCTI of the agent's environment, the same
 * for every step, so every token it shows is on that one TPM.  (The
 * tokens' manufacturer and model, the TPM's vendor and vendor string, are
 * the same on every TPM of a make and tell nothing more.)
 */
int fsm_lock_covers(const track *t, const char *lock, const track *u);

#endif
