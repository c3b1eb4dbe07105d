/*
 * What a step's child process tells the agent: one versioned record,
 * written on a file descriptor of its own when the process ends.  The agent
 * decides on this record alone; the child's stdout and stderr are for
 * people (the log, a waiting control client).
 *
 *	p11enroll-result 1
 *	exit 3
 *	category token
 *	error cannot read the token information: CKR_DEVICE_ERROR ...
 *	token present
 *	token_serial 1a2b3c
 *	token_label my token
 *	token_manufacturer ...
 *	token_model ...
 *	token_serial_unique yes
 *	...
 *	unrevoked 6
 *	unrevoked_error revoking the replaced certificate, serial 1F, failed: ...
 *	pin_locked tpm
 *	ca_status rejection
 *	ca_fail_info badPOP badCertTemplate
 *	end
 *
 * One "key value" per line, each key at most once, in any order between
 * the first line and "end"; values are printable (agent_escape()).
 *
 * `check NAME...` looks at several enrollments of one token and writes a
 * sequence of records, one per name, in the order of its arguments, each
 * with "name NAME" and each as soon as that enrollment is done: the agent
 * reads them while the process runs (agent_result_next()), so that a pass
 * killed half-way leaves the enrollments it finished with their records.
 */
#ifndef P11ENROLL_RESULT_H
#define P11ENROLL_RESULT_H

#include <stddef.h>

#include "agent/agent.h"

#define AGENT_RESULT_VERSION 1
/* A longer record is refused: the fields' bounds add up to less. */
#define AGENT_RESULT_MAX 16384
/* The descriptor number, set by the agent in the child's environment. */
#define AGENT_RESULT_FD_ENV "P11ENROLL_RESULT_FD"
/* Where agent_exec_self() puts the record's pipe and a PIN's pipe (the
 * child's pin-source is then AGENT_PIN_SOURCE). */
#define AGENT_RESULT_FD 3
#define AGENT_PIN_FD 4
#define AGENT_PIN_SOURCE "fd:4"

/* The longest enrollment name a record carries. */
#define AGENT_RESULT_NAME_MAX 256

typedef struct {
	char name[AGENT_RESULT_NAME_MAX]; /* the enrollment (check NAME...), or "" */
	int exit_code;		 /* EXIT_* (130: a signal stopped it; category "interrupted") */
	char error[AGENT_ERROR_MAX]; /* the last error the step logged, whole; "" none */
	char transaction[257];	 /* hex transactionID of the step's exchange, or "" */
	int token;		 /* -1 not looked at, 0 absent, 1 present */
	char token_serial[72];	 /* as the token gives it, escaped */
	/* the rest of the token's identity (escaped), and whether its serial
	 * names it alone (-1 not known; tok_serial_unique()) */
	char token_label[132], token_manufacturer[132], token_model[68];
	int token_serial_unique;
	int cert;		 /* -1 not looked at, 0 none, 1 present */
	char cert_serial[129];	 /* upper-case hex, as BN_bn2hex writes it */
	long long not_before, not_after;
	char pending[8];	 /* the pending request ("ir", "kur"...), or "" */
	long long pending_saved; /* when the pending transaction was saved */
	long pending_check_after;
	/* revoke_replaced: the step's own work is done (renew, enroll, resume:
	 * the new certificate is in place; check --recover: the look), but
	 * the revocation of the certificate it replaced, whose pair waits as
	 * "LABEL (to revoke)", failed with this exit code; 0: none failed. */
	int unrevoked;
	char unrevoked_error[AGENT_ERROR_MAX]; /* why, as logged (whole); "" unknown */
	/* exit 4 because the PIN is locked (tok_login_lockout()): "token" (that
	 * token's own), "tpm" (the TPM's dictionary-attack lockout, over every
	 * token of the TPM), or "" (not locked; any other exit). */
	char pin_locked[8];
	/* the CA rejected the request (verified as the CA's answer): its
	 * PKIStatus ("rejection") and failInfo bit names, space-separated
	 * ("" none given); "" and "" when it did not */
	char ca_status[32];
	char ca_fail_info[600];
} agent_result;

void agent_result_init(agent_result *r);
/* "ok", "usage", "token"...: the exit code's category (EXIT_* in agent.h). */
const char *agent_result_category(int exit_code);
/* The record's text in buf; its length, or -1 when buf is too small. */
int agent_result_format(const agent_result *r, char *buf, size_t len);
/* Strict: the whole of buf[0..len) is one record of this version, or -1
 * with why (one line). */
int agent_result_parse(const char *buf, size_t len, agent_result *r, char *why, size_t whylen);
/* The first record of a sequence in buf[0..len): 1 with its length in
 * *ret_used; 0 when buf holds no whole record yet (then len is at most
 * AGENT_RESULT_MAX); -1 with why when it cannot become a valid record. */
int agent_result_next(const char *buf, size_t len, size_t *ret_used, agent_result *r, char *why,
		      size_t whylen);

/* The child's side: this process's record, filled in as the step goes. */
agent_result *agent_result_self(void);
/* At the start of main(): takes the descriptor AGENT_RESULT_FD_ENV names
 * (close-on-exec) and removes the variable. */
void agent_result_claim(void);
/* Writes the record with exit_code and the last error logged
 * (log_last_error()) on that descriptor, once, and closes it; without one,
 * does nothing. */
void agent_result_emit(int exit_code);
/* For check NAME...: writes this process's record for the enrollment name
 * with exit_code and the last error logged, and starts the next one
 * afresh; the descriptor stays open.  0, or -1 when it could not be
 * written (no descriptor: 0). */
int agent_result_emit_named(const char *name, int exit_code);
/* Every record is written: agent_result_emit() writes no other. */
void agent_result_close(void);

/* The parent's side (exec.c): how a forked child becomes this program's
 * command. */
typedef struct {
	const char *self;	/* this program, as /proc/self/exe names it */
	int res;		/* the record's pipe, on AGENT_RESULT_FD (and in the environment) */
	int pin;		/* a PIN's pipe, on AGENT_PIN_FD; -1: none */
	int out, err;		/* become stdout and stderr; -1: kept */
	int own_group;		/* setpgid(0, 0): a process group of its own */
	const int *dfl_signals; /* 0-terminated: the parent's handlers, set to SIG_DFL */
} agent_exec;

/* In the child after fork(): the descriptors in place, then execv(x->self,
 * argv).  Never returns: a failure ends the child with EXIT_INTERNAL. */
void agent_exec_self(const agent_exec *x, const char *const *argv)
	__attribute__((noreturn));

#endif
