/*
 * The journal (setting journal = PATH): one JSON object per line for each
 * certificate request's outcome (enroll, cr, p10cr, renew, resume, and each
 * row of enroll --batch), appended with O_APPEND and fsync'ed, for an
 * operator or a security officer to read or feed to a log collector.
 * Fields and their meaning: p11enroll-formats(5).  Never a PIN or secret:
 * only what the token, the CA and the configuration say in the open.
 */
#ifndef P11ENROLL_JOURNAL_H
#define P11ENROLL_JOURNAL_H

#include <openssl/x509.h>

#include "agent/agent-cmd.h"

typedef struct {
	long long time;		/* seconds since the epoch */
	char request[16];	/* "ir", "kur", ... or "" */
	char source[320];	/* "FILE:LINE" for a queue row, or "" */
	char token_serial[72];	/* "" unknown */
	char label[256];
	char subject[512];	/* the certificate's, else the one requested */
	char cert_serial[129];	/* upper-case hex, "" none */
	long long not_after;	/* 0: no certificate */
	char transaction[257];	/* hex, "" none */
	const char *outcome;	/* "ok", "failed", "waiting", "refused", "skipped" */
	char error[AGENT_ERROR_MAX]; /* "" none; whole, as logged */
} agent_journal_entry;

/* outcome from an exit code: ok, waiting (EXIT_WAITING), else failed. */
const char *agent_journal_outcome(int exit_code);
/* The entry as one JSON line with its '\n' (malloc'ed), or NULL. */
char *agent_journal_format(const agent_journal_entry *j);
/* Appends it to path (created 0640): 0, or -1 with err. */
int agent_journal_append(const char *path, const agent_journal_entry *j, char *err,
			 size_t errlen);

/* The request sequence (certreq.c) at its end: the outcome, kept as this
 * process's last entry and appended to e->journal when set (a failure to
 * write it is logged as a warning: the certificate is on the token). */
void agent_journal_request(const conf_enrollment *e, const char *request, agent_rc rc,
			   tok_ctx *tok, cmpc_ctx *cmp, X509 *cert);
/* The last entry agent_journal_request made, or NULL (batch: the row's). */
const agent_journal_entry *agent_journal_last(void);
/* Forgets it, and sets the source of the next ones ("" or NULL: none). */
void agent_journal_begin(const char *source);

#endif
