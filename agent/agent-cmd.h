/*
 * agent internals shared by the commands: setting up a cmpc context from an
 * enrollment and choosing its protection (protect.c), the agent's helpers,
 * crash recovery, pending transactions and the one certificate request
 * sequence (certreq.c).  Each function that returns an agent_rc has logged
 * the failure once when it is not EXIT_OK.
 */
#ifndef P11ENROLL_AGENT_CMD_H
#define P11ENROLL_AGENT_CMD_H

#include <time.h>

#include "agent/agent.h"
#include "cmp/cmpc.h"
#include "pkcs11/tok.h"

/*
 * progress.c: the waits and interruptions of the one-shot commands.
 * agent_progress_start installs the handlers of SIGINT, SIGTERM and SIGHUP
 * (they only note the signal) and, with show and stderr a terminal, the
 * progress line; agent_progress_stop takes the line away.
 */
void agent_progress_start(int show);
void agent_progress_stop(void);
/* The first of those signals that came, 0 if none. */
int agent_interrupted(void);
/* "SIGINT", "SIGTERM", "SIGHUP". */
const char *agent_signal_name(int sig);
/* The undo of an interrupted run begins: its own exchanges go on until the
 * next signal (agent_stop_wanted says 1 again only after one). */
void agent_undo_begin(void);
int agent_stop_wanted(void);
/* The current wait, shown once it has lasted a second (printf format);
 * agent_wait_done: it is over. */
void agent_wait_show(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void agent_wait_done(void);
/* The cmpc_wait_fn of every context agent_cmpc_new makes. */
int agent_cmp_wait(const cmpc_wait *w, void *arg);

/* cmpc_new(), with the failure logged. */
cmpc_ctx *agent_cmpc_new(void);
/* Everything but the protection: server, trust, timeouts, names, profile,
 * PBM parameters, subject and SANs when configured. */
agent_rc agent_cmp_setup(const conf_enrollment *e, cmpc_ctx *cmp);

/* PBM with reference and secret_source; what names the command for messages. */
agent_rc agent_cmp_use_pbm(const conf_enrollment *e, cmpc_ctx *cmp, const char *what);

/* 1 when a signer (token label or protection files) is configured. */
int agent_has_signer(const conf_enrollment *e);

/*
 * The configured signature credentials: the certificate labelled signer on
 * the token and its key (tok must be logged in), or protection_cert and
 * protection_key from files.  The key file must not be readable by group
 * or others, and must hold the certificate's key.
 */
agent_rc agent_signer_load(const conf_enrollment *e, tok_ctx *tok, X509 **ret_cert,
			   EVP_PKEY **ret_key);

/* Signature protection when a signer is configured, else PBM (or, with
 * signer_required, an error naming what to configure). */
agent_rc agent_cmp_protect(const conf_enrollment *e, cmpc_ctx *cmp, tok_ctx *tok,
			   int signer_required, const char *what);

/*
 * TLS client authentication when tls_client is configured: the certificate
 * with that label on the token and its key (tok must be logged in), or, for
 * "self", self_cert and self_key (the certificate being renewed; NULL where
 * there is none).  Call before the first exchange of cmp, and free cmp
 * before tok: its connections hold the token key.
 */
agent_rc agent_cmp_tls_client(const conf_enrollment *e, cmpc_ctx *cmp, tok_ctx *tok,
			      X509 *self_cert, EVP_PKEY *self_key);

/* The CA's certReqTemplate, asked with a context of its own protected like
 * the request (TLS client authentication too, self_cert/self_key as for
 * agent_cmp_tls_client); the fields it leaves open are 0/NULL. */
agent_rc agent_template_fetch(const conf_enrollment *e, tok_ctx *tok, X509 *self_cert,
			      EVP_PKEY *self_key, cmpc_template *ret_t);

/*
 * Fills what the template asks for into the request where the command line
 * and configuration left it open: key type and size into spec, subject and
 * subjectAltName into cmp.  Other template extensions cannot be requested
 * through the cmpc layer and are reported as ignored.
 */
agent_rc agent_template_apply(const conf_enrollment *e, const cmpc_template *t,
			      tok_keyspec *spec, cmpc_ctx *cmp);

/* Prints a template (genm --template). */
void agent_template_print(const cmpc_template *t);

/* ---- the agent's helpers (check.c, lock.c) ------------------------------ */

/* p11enroll check: key=value lines about the enrollment; recover: log in
 * and run agent_recover first. */
agent_rc agent_check(const conf_enrollment *e, int recover, int json);
/* p11enroll check NAME NAME...: the enrollments of config (with the
 * command line's settings, cli) on one token, each after "name=NAME", each
 * with a result record of its own, in order (agent/result.h); the token is
 * opened and logged in to once.  EXIT_OK when every look succeeded, else
 * the first failure's exit code. */
agent_rc agent_check_names(const char *config, const conf_enrollment *cli, char *const *names,
			   size_t n, int recover, int json);
/* list_json.c: list --json of objs[0..n) on tok: 0, or -1 when the
 * document could not be written whole (out of memory, stdout failed). */
int agent_list_json(tok_ctx *tok, const tok_object *objs, size_t n);
/* Takes the lock of e's label on the token ti for the rest of the process;
 * -1 (logged) when another process holds it, 0 otherwise (also without a
 * state dir, and when this process holds it already). */
int agent_lock(const conf_enrollment *e, const tok_info *ti);
/* Whether agent_token_open takes the lock (agent_lock) as soon as it knows
 * the token: set by a command that changes the token. */
void agent_lock_on_open(int on);
int agent_lock_wanted(void);
/* Releases the lock agent_lock() took, for a command that works on several
 * enrollments one after the other (check NAME...). */
void agent_unlock(void);

/* ---- crash recovery (recover.c) ---------------------------------------- */

/* The marks a label carries while a run changes its pair (STATE-MACHINE.md):
 * the pair being made, the pair kept by keep_old, the pair to delete, the
 * pair revoke --delete is removing.  Recovery acts on NEW, REPLACED and
 * REVOKED; OLD is the user's to keep. */
#define AGENT_MARK_NEW " (new)"
#define AGENT_MARK_OLD " (old)"
#define AGENT_MARK_REPLACED " (replaced)"
#define AGENT_MARK_REVOKED " (revoked)"
/* revoke_replaced: the replaced pair until the CA revoked its certificate
 * (its key signs the rr).  Recovery never deletes it whole (replace.c). */
#define AGENT_MARK_TO_REVOKE " (to revoke)"

/* label + suffix, malloc'ed (NULL when out of memory, logged). */
char *agent_label_with(const char *label, const char *suffix);

/* ---- the token's objects by label, read once (listing.c) -------------- */

typedef struct {
	tok_object *objs;
	size_t n;
	const tok_object **by_label; /* objs sorted by label */
} agent_listing;

/* Lists the token (not logged: the caller says what it costs). */
tok_rv agent_listing_take(tok_ctx *tok, agent_listing *l);
void agent_listing_free(agent_listing *l);
/* The first object labelled label (its index in by_label), or l->n. */
size_t agent_listing_first(const agent_listing *l, const char *label);
/* Whether any object carries label. */
int agent_listing_has(const agent_listing *l, const char *label);
/* Whether any object carries a mark of label that recovery acts on. */
int agent_listing_leftovers(const agent_listing *l, const char *label);

/*
 * Finishes or undoes what an interrupted enroll/renew left under the
 * enrollment's labels: a "LABEL (new)" key without certificate is deleted,
 * one with its certificate adopted (labels moved), a "LABEL (old)" pair
 * next to a complete current pair deleted (unless keep_old), what revoke
 * --delete marked "(revoked)" deleted.  Nothing is
 * done while a pending transaction is saved.  Logs each action.
 */
agent_rc agent_recover(const conf_enrollment *e, tok_ctx *tok);
/* "p11enroll check NAME --label 'LABEL' --recover": what finishes or undoes
 * what a run left on the token under LABEL's temporary labels. */
const char *agent_recover_cmd(const conf_enrollment *e, char *buf, size_t len);

/* After a failed request whose certificate the accept callback stored
 * (stored): 1 when the pair must stay for recovery to adopt, because the
 * failure came after the certConf went out (transport, TLS, a bad
 * pkiConf), so the CA may hold it as confirmed.  Logs why. */
int agent_keep_unconfirmed(const conf_enrollment *e, int cmpc_rv, int stored);
/* A failed run could not remove its new pair (trv): logs it and what
 * happens to the pair, left under "LABEL (new)"; stored: its certificate
 * (not confirmed) is stored with it. */
void agent_leftover_fail(const conf_enrollment *e, tok_ctx *tok, int trv, int stored);
/* agent_recover; *finished = 1 when it put an interrupted run's certificate
 * in place (adopted its pair, or deleted the rest of a half-deleted old
 * pair; a whole "(old)" pair may be one kept by keep_old before). */
agent_rc agent_recover_run(const conf_enrollment *e, tok_ctx *tok, int *finished);
/* After agent_recover_run finished a run: its summary ("VERB NAME ...") and
 * the cert_out copy, for enroll and renew, which then request nothing. */
agent_rc agent_recover_report(const conf_enrollment *e, tok_ctx *tok, const char *verb);

/* ---- pending transactions (pending.c, resume.c) ----------------------- */

/*
 * A transaction the CA answered "waiting", as saved in the state directory:
 * STATE_DIR/pending/LABEL@TOKEN.pending, one per token and label, so that
 * one enrollment section used with many tokens keeps a transaction per
 * token (pending.c says how TOKEN is made).  The token fields are as the
 * token gave them, escaped (agent_escape()).
 */
typedef struct {
	cmpc_pending p;
	unsigned char key_id[TOK_ID_MAX]; /* CKA_ID of the new key pair */
	size_t key_id_len;
	int key_generated; /* generated for this request: deleted when it is given up */
	char token_serial[17];
	char token_label[33 * 4];
	char token_model[17 * 4];
	char token_manufacturer[33 * 4];
	char name[201];	 /* the enrollment, for status and resume ("" in an old file) */
	char label[256]; /* its label, escaped ("" in an old file) */
	time_t saved;
	int legacy; /* read from STATE_DIR/NAME.pending, of an earlier version */
	int store_seq; /* file:// server: number of the stored message (spool.c), else 0 */
} agent_pending;

const char *pending_state_dir(const conf_enrollment *e);
const char *pending_req_name(int cmpc_req_type);
/* STATE_DIR/NAME.EXT (the agent's state, an old pending file); -1 when the
 * enrollment has no name usable as a file name. */
int pending_name_path(const conf_enrollment *e, const char *ext, char *out, size_t len);
/* The file name, without directory and extension, of e's label on the token
 * ti: LABEL@TOKEN, both percent-encoded; -1 without a label. */
int pending_key(const char *label, const tok_info *ti, char *out, size_t len);
/* STATE_DIR/pending/LABEL@TOKEN.EXT for e's label on ti; -1 without. */
int pending_path(const conf_enrollment *e, const tok_info *ti, const char *ext, char *out,
		 size_t len);
/* Fills ap's token, enrollment and label fields for e on ti. */
void pending_set_owner(agent_pending *ap, const conf_enrollment *e, const tok_info *ti);
/* Atomic (temporary file, fsync, rename) under ap's token and e's label;
 * -1 with a message in err. */
int pending_save(const conf_enrollment *e, const agent_pending *ap, char *err, size_t errlen);
/* The transaction of e's label on token ti: 1 loaded, 0 none saved, -1
 * unreadable or malformed (message in err).  A file of an earlier version
 * (STATE_DIR/NAME.pending) for this token's serial is moved to its new
 * name here. */
int pending_load(const conf_enrollment *e, const tok_info *ti, agent_pending *ap, char *err,
		 size_t errlen);
/* Before the token is known (resume): the transactions saved for e's name
 * and label (any_label: for its name under any label), an old
 * STATE_DIR/NAME.pending included; the count, with the first in ap (-1: no
 * file of e's and one unreadable, message in err). */
int pending_find(const conf_enrollment *e, int any_label, agent_pending *ap, char *err,
		 size_t errlen);
/* An ap read from an old NAME.pending (ap->legacy) is moved to its file
 * under the token ti, now known to be its own; 0 when there is nothing to
 * move, -1 with err. */
int pending_legacy_move(const conf_enrollment *e, agent_pending *ap, const tok_info *ti,
			char *err, size_t errlen);
/* The file's text (untrusted: checked field by field); -1 with err. */
int pending_parse(const char *text, size_t len, agent_pending *ap, char *err, size_t errlen);
/* ap's file goes (a missing one too, and an old NAME.pending when ap came
 * from one); -1 when it cannot be removed. */
int pending_remove(const conf_enrollment *e, const agent_pending *ap);

/*
 * What a certificate request command does about polling: it saves every
 * "waiting" answer (cmpc pending callback) and, when the request ends,
 * pending_after decides whether the transaction stays pending (1: keep the
 * new key for `p11enroll resume`) or is over (0: the file is removed; a
 * transaction that could not be saved is abandoned at the CA).
 */
typedef struct {
	const conf_enrollment *e;
	tok_ctx *tok;
	agent_pending ap;
	int have;  /* ap.p holds a transaction */
	int saved; /* and it is saved */
	int warned;
} pending_saver;

/* resume: the transaction being continued, or NULL for a new request. */
void pending_saver_init(pending_saver *s, const conf_enrollment *e, tok_ctx *tok,
			const tok_id *key, int key_generated, const agent_pending *resume);
void pending_saver_cb(const cmpc_pending *p, void *arg);
/* 1: the transaction stays pending, and the new key with it; 0: it is over. */
int pending_after(pending_saver *s, cmpc_ctx *cmp, cmpc_rv crv);

/* EXIT_USAGE (logged) when e's label on tok has a pending transaction (or
 * one that cannot be read): a new request would orphan it. */
agent_rc pending_refuse_new(const conf_enrollment *e, tok_ctx *tok);
/* EXIT_TOKEN (logged) unless tok is the token the transaction began on; a
 * transaction from an old NAME.pending is moved to its new name then. */
agent_rc pending_check_token(const conf_enrollment *e, tok_ctx *tok, agent_pending *ap);
/* Abandons ap: error message to the CA (cmp set up and protected like the
 * request), the new key deleted when it was generated, the file removed. */
agent_rc pending_abandon(const conf_enrollment *e, cmpc_ctx *cmp, tok_ctx *tok,
			 const agent_pending *ap);

/* The key pair to generate: key_type (default EC P-256), usage flags
 * left clear; EXIT_USAGE (logged) for a key_type not known (certreq.c). */
agent_rc agent_key_spec(const conf_enrollment *e, tok_keyspec *spec);

/*
 * certreq.c: the one certificate request sequence (see there).  The kind
 * sets type, what, verb and prepare; prepare runs once the token is open
 * and recovered, and sets up the protection (and for kur finds the pair
 * it replaces: old_*, have_old).  agent_certreq_run frees what prepare
 * left in old_cert/old_key.
 */
typedef struct agent_req agent_req;
struct agent_req {
	cmpc_req_type type;
	const char *what; /* "ir", "kur" ... in messages */
	const char *verb; /* "enrolled", "renewed" */
	agent_rc (*prepare)(agent_req *r);
	/* the run, for prepare */
	const conf_enrollment *e;
	const agent_pending *resume;
	cmpc_ctx *cmp;
	tok_ctx *tok;
	tok_keyspec spec;
	cmpc_template tmpl;
	X509 *old_cert; /* kur: the certificate renewed; its key signs */
	EVP_PKEY *old_key;
	tok_id old_id;
	int have_old;
	/* what a batch knows from its listing of the token at its start */
	unsigned known;
	/* the guard's look (replace.c): the pair a new one replaces */
	tok_id cur_id;
	int cur_looked;
	/* p10cr with csr: the request sent as is; the certificate goes next
	 * to the token's key pair with its public key, or (none there) only
	 * to cert_out */
	X509_REQ *csr;
};
#define AGENT_REQ_NO_LEFTOVERS 1U /* nothing carries the label's marks: no recovery */
#define AGENT_REQ_LABEL_FREE 2U	  /* nothing carries the label: no pair to replace */
agent_rc agent_certreq_run(agent_req *r, const agent_pending *resume, int abandon);

/* ---- key_source = central (central.c) ----------------------------------- */
/* RFC 9483 4.1.6: the CA makes the key pair; the private key comes
 * encrypted to a transport key on the token and is unwrapped there. */
typedef struct {
	tok_ctx *tok;
	tok_transport *t;
	const char *label; /* of the new pair ("LABEL (new)") */
	const tok_id *want_id; /* its CKA_ID (recover: the certificate's), NULL: pub's */
	int allow_decrypt, allow_software;
	tok_id id;    /* the imported pair's, len 0: none */
	int software; /* the key passed through host memory */
	agent_rc rc;  /* why agent_central_import failed, as an exit code */
} agent_central;
int agent_is_central(const conf_enrollment *e);
/* A configuration central key generation cannot serve (p10cr, csr,
 * key_id): EXIT_USAGE with the reason logged. */
agent_rc agent_central_check(const conf_enrollment *e, cmpc_req_type type);
/* The transport key on tok; its public key in *ret_pub (for the CA). */
agent_rc agent_central_begin(agent_central *c, tok_ctx *tok, const conf_enrollment *e,
			     const char *label, EVP_PKEY **ret_pub);
/* The CA's private key k for cert onto the token under c->label (c->id);
 * cacerts: the CA certificates of cert's verified chain (an EnvelopedData's
 * SignedData must be signed by its issuer).  0, or -1 with why, c->rc and
 * the token unchanged. */
int agent_central_import(agent_central *c, X509 *cert, STACK_OF(X509) *cacerts,
			 const cmpc_privkey *k, char *why, size_t whylen);
void agent_central_end(agent_central *c);

/* The request commands with a transaction to resume or abandon (NULL: a new one). */
agent_rc agent_request_run(const conf_enrollment *e, cmpc_req_type type,
			   const agent_pending *resume, int abandon);
agent_rc agent_renew_run(const conf_enrollment *e, const agent_pending *resume, int abandon);
/* A new request on a token and a CMP context the caller keeps open (a
 * batch): neither is opened nor freed here. */
agent_rc agent_request_shared(const conf_enrollment *e, cmpc_req_type type, tok_ctx *tok,
			      cmpc_ctx *cmp, unsigned known);
/* ---- replacing an issued identity (replace.c) --------------------------- */

/*
 * Before a new key pair is generated under e->label: EXIT_OK when the label
 * holds no certificate, an expired one, or replace = yes (ret_cur: the
 * certificate's id, len 0 when none); else EXIT_USAGE, logged with the
 * certificate's subject, serial and notAfter and what to do.  known: the
 * batch's AGENT_REQ_* (AGENT_REQ_LABEL_FREE: no token call).
 */
agent_rc agent_replace_guard(const conf_enrollment *e, tok_ctx *tok, unsigned known,
			     tok_id *ret_cur);
/*
 * The pair marked "LABEL (to revoke)": an rr signed by its own key, reason
 * superseded; on success (or "already revoked") the pair is deleted (with
 * keep_old relabelled "LABEL (old)").  EXIT_OK when there is none (*ret_found
 * 0); a failure is logged with what to do, and the pair stays for the next
 * run.  The remains of a deletion that stopped half-way (no private key
 * left) are deleted.  print: the outcome on stdout (else in the log).
 */
agent_rc agent_revoke_replaced(const conf_enrollment *e, tok_ctx *tok, int *ret_found,
			       int print);
/* After agent_revoke_replaced failed with rc in a step whose own work is
 * done: this process's result record says so ("unrevoked", with the
 * reason the rr failed), and the agent counts the step a success and
 * retries the revocation (agent/STATE-MACHINE.md). */
void agent_revoke_replaced_unrevoked(agent_rc rc);

/* batch.c: enroll --batch FILE */
agent_rc agent_enroll_batch(const conf_enrollment *e, const char *path);
/* p11enroll station NAME (station.c): enrolls each card that appears, until
 * SIGINT or SIGTERM; o->config: the file the children read (NULL: theirs),
 * with o's command-line settings on top; o->prompt: without a queue, ask
 * for each card's subject on stdin. */
agent_rc agent_station(const conf_enrollment *e, const agent_cmd_opts *o);

/* offline.c: --request-out / --response-in (the CMP messages in files
 * carried to and from the CA).  begin: checks and keeps o's files for the
 * process (EXIT_USAGE when they do not fit together); apply: every CMP
 * context of the command moves its messages through them; end: says what
 * the operator carries back after a resume. */
agent_rc agent_offline_begin(const char *cmd, const agent_cmd_opts *o);
int agent_offline(void); /* 1 when the messages go through files */
const char *agent_offline_request_out(void);
void agent_offline_apply(cmpc_ctx *cmp);
void agent_offline_end(agent_rc rc);
/* One DER message written to path atomically (agent_atomic_write). */
int agent_write_der(const char *path, const unsigned char *p, size_t len, char *err,
		    size_t errlen);
/* The answer in the open file fd (closed here), path for messages and hint
 * after "not a regular file", passed to the CMP layer as the transfer's
 * answer. */
cmpc_rv agent_read_answer(cmpc_ctx *ctx, int fd, const char *path, const char *hint);

/* spool.c: store-and-forward servers (file:///DIR and the stores of
 * spool.h).  apply: when e's server is one, every message goes through
 * its store (EXIT_USAGE when the store cannot be set up); close: lets
 * the store go; seq: the number of the last stored message (0: none), for
 * the pending file; resume: continues ap's transaction's numbering before
 * cmpc_resume. */
int agent_spool_server(const char *url); /* 1 for a store-and-forward URL */
agent_rc agent_spool_apply(const conf_enrollment *e, cmpc_ctx *cmp);
void agent_spool_close(void);
int agent_spool_seq(void);
/* The last store's kind and place, for messages ("spool directory", DIR),
 * and whether it sends mails rather than files. */
int agent_spool_by_mail(void);
const char *agent_spool_kind(void);
const char *agent_spool_where(void);
void agent_spool_resume(const agent_pending *ap);

/* stored.c: an rr or genm whose message a store-and-forward transport
 * stored (spool directory, --request-out) and whose answer has not come:
 * saved in STATE_DIR/NAME.KIND, read later by the same command (spool) or
 * with --response-in.  kind ("rr", "genm"), cmd ("revoke", "genm") and asks
 * (what the exchange is for: the serial, the genm's option) are set by the
 * caller.  begin: before the exchange (may set cmp to read the saved
 * message's answer); end: after it, with its exit code: 1 and *ret_rc when
 * it handled the outcome (saved, exit 9), else 0 (a record that was used
 * goes when the CA's answer ended the exchange). */
typedef struct {
	const char *kind, *cmd;
	char asks[64], saved_asks[64];
	agent_pending ap; /* p.tid, p.sent_nonce, store_seq, saved */
	char path[1024];
	int used;
} agent_stored;
agent_rc agent_stored_begin(const conf_enrollment *e, const agent_cmd_opts *o, agent_stored *st,
			    cmpc_ctx *cmp);
int agent_stored_end(const conf_enrollment *e, agent_stored *st, cmpc_ctx *cmp, agent_rc ex,
		     agent_rc *ret_rc);
agent_rc agent_stored_abandon(const conf_enrollment *e, agent_stored *st);

/* token.c: the token's identity into this process's result record
 * (escaped); agent_token_open() records it before the login. */
void agent_token_record(tok_ctx *tok, const tok_info *info);

/*
 * archive.c: key archive at enrollment (archive_key).  agent_archive_check:
 * the configuration, before anything is done (only encryption keys, no
 * key_id, no p10cr); agent_archive_cert: the key-archive certificate,
 * RSA with keyEncipherment, verified under the trust anchors of cmp
 * (*ret_cert NULL when archive is off); agent_archive_wrap: the new key
 * id wrapped on the token for cert, made non-extractable, and handed to
 * cmp for the request.
 */
int agent_archive_format(const conf_enrollment *e);
agent_rc agent_archive_check(const conf_enrollment *e, int req_type, int key_alg);
agent_rc agent_archive_cert(const conf_enrollment *e, cmpc_ctx *cmp, X509 **ret_cert);
agent_rc agent_archive_wrap(const conf_enrollment *e, tok_ctx *tok, const tok_id *id,
			    cmpc_ctx *cmp, X509 *cert);

#endif
