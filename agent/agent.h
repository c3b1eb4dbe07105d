/*
 * agent: the program side of p11enroll.  Reads the configuration, turns
 * secrets sources into buffers that are wiped on free, drives the token
 * layer (tok.h) and the protocol layer (cmpc.h), and decides what the user
 * sees.
 */
#ifndef P11ENROLL_AGENT_H
#define P11ENROLL_AGENT_H

#include <stddef.h>
#include <stdio.h>
#include <syslog.h>

/*
 * The outcome of every command and of every step of one: the process's exit
 * status, as p11enroll(1) documents it (EXIT STATUS).  A function that
 * returns one has failed when it is not EXIT_OK.
 */
typedef enum {
	EXIT_OK = 0,
	EXIT_INTERNAL = 1,   /* internal error, out of memory */
	EXIT_USAGE = 2,      /* bad command line or configuration */
	EXIT_TOKEN = 3,      /* module, token absent, token operation failed */
	EXIT_PIN = 4,        /* PIN unavailable, incorrect or locked */
	EXIT_TRANSPORT = 5,  /* server unreachable, HTTP or TLS failure */
	EXIT_REJECTED = 6,   /* the CA rejected the request */
	EXIT_PROTOCOL = 7,   /* malformed or wrongly protected response */
	EXIT_CERT = 8,       /* issued certificate failed verification */
	EXIT_WAITING = 9,    /* the CA did not deliver before the timeout */
	EXIT_ABSENT = 10,    /* no token matches the token URI (not inserted?) */
	EXIT_BUSY = 11,      /* another process works on the enrollment */
	/* SIGINT, SIGTERM or SIGHUP stopped it, after undoing what it had
	 * started (128 + SIGINT, the shell's convention) */
	EXIT_INTERRUPTED = 130,
} agent_rc;

/* progress.c: a log line for stderr; a progress line on the terminal is
 * taken off first (it comes back at the next tick). */
void agent_progress_print(const char *line);

/* log.c */
void log_init(const char *progname, int verbosity, int use_syslog);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The verbosity log_init set: -1 errors only, 0 also warnings and notices,
 * 1 also info, 2 and more also debug. */
int log_verbosity(void);
/* The last error log_msg() was given, escaped, or "". */
const char *log_last_error(void);
/* Forgets it: the next request's outcome is not given an earlier one's error. */
void log_clear_last_error(void);
/* A command for several enrollments works on name now (NULL: none): each
 * line says so after its level; a name starts the last error afresh. */
void log_set_subject(const char *name);
/* Prints the OpenSSL error queue at debug level and clears it. */
void log_openssl_errors(void);
/* For the helpers that return 0 or -1: the message into why, and -1. */
int agent_fail(char *why, size_t whylen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/*
 * escape.c: s (NULL: "") as text that is safe in a terminal, a log line, a
 * key=value line, JSON (before JSON's own quoting) and a hook's
 * environment: valid printable UTF-8 is kept; ESC and the other C0
 * controls (CR, LF, TAB included), DEL, the C1 controls (U+0080..U+009F)
 * and every byte that is not part of valid UTF-8 become "\xNN".  Written to
 * out (at most outlen - 1 bytes and a NUL; an escape or a character is never
 * cut); returns out.  4 * strlen(s) + 1 bytes always suffice.
 */
const char *agent_escape(const char *s, char *out, size_t outlen);
/*
 * An error message travels whole (the log, the step's record, the agent's
 * state file, status and --json, a hook's P11ENROLL_ERROR): its hint, at
 * the end, says what to do.  It is bounded at AGENT_ERROR_MAX bytes with
 * the NUL, escaped; a longer one is cut before a whole character and ends
 * in AGENT_CUT_MARK.
 */
#define AGENT_ERROR_MAX 4096
#define AGENT_CUT_MARK " [cut: longer than 4096 bytes]"
/* agent_escape() of s into out, whole, or cut as above (outlen at least
 * sizeof(AGENT_CUT_MARK) + 4); returns out. */
const char *agent_escape_bounded(const char *s, char *out, size_t outlen);
/* s, of at most size - 1 bytes, was cut (by snprintf) at size - 1 bytes:
 * it is cut back to the last whole UTF-8 character that leaves room for
 * AGENT_CUT_MARK, which is appended. */
void agent_mark_cut(char *s, size_t size);
/* The same, for text shown to people: in a locale whose codeset is not
 * UTF-8 (agent_escape_locale()) every byte above 0x7F becomes "\xNN" too.
 * Never for data (JSON, files, labels): those are UTF-8 whatever the
 * locale. */
const char *agent_escape_shown(const char *s, char *out, size_t outlen);
/* agent_escape (utf8 1) or its ASCII-only form (utf8 0). */
const char *agent_escape_mode(const char *s, char *out, size_t outlen, int utf8);
/* Reads the locale's codeset (LC_CTYPE from the environment, restored to
 * what it was after): 1 when it is UTF-8, which agent_escape_shown then
 * keeps.  Called once by the program at start. */
int agent_escape_locale(void);
/* The token's identity for people: "label 'L', manufacturer 'M', model 'M',
 * serial S", and when the serial does not name the token alone (unique 0:
 * empty, all zeros, or another token's too) " (not unique: identified by
 * label, model and manufacturer)".  Each field agent_escape()'d (which
 * leaves escaped text as it is); returns out. */
const char *agent_token_identity(const char *label, const char *manufacturer, const char *model,
				 const char *serial, int unique, char *out, size_t outlen);
/* raw (NULL: "") as a quoted JSON string, agent_escape()'d first; malloc'ed, NULL
 * when out of memory (json.c). */
char *agent_json_string(const char *raw);

/* jsonw.c: a JSON document written to f as it goes.  key NULL: a member
 * of an array.  Each string agent_json_string()'d; NULL strings are null. */
#define AGENT_JW_DEPTH 8
typedef struct {
	FILE *f;
	int depth, bad;
	int first[AGENT_JW_DEPTH];
} agent_jw;
void agent_jw_init(agent_jw *w, FILE *f);
void agent_jw_object(agent_jw *w, const char *key);
void agent_jw_array(agent_jw *w, const char *key);
void agent_jw_close(agent_jw *w, char brace); /* '}' or ']' */
void agent_jw_str(agent_jw *w, const char *key, const char *raw);
void agent_jw_int(agent_jw *w, const char *key, long long v);
void agent_jw_bool(agent_jw *w, const char *key, int v); /* v < 0: null */
void agent_jw_null(agent_jw *w, const char *key);
/* t (Unix time) as its integer, as every JSON document gives times (status
 * --json too); null when !known. */
void agent_jw_time(agent_jw *w, const char *key, long long t, int known);
/* Ends the document with a newline: 0, or -1 when a write failed or memory
 * ran out on the way (the document is then not whole). */
int agent_jw_end(agent_jw *w);
/* Unix time t as RFC 3339 UTC ("" when it cannot be shown); returns out. */
const char *agent_rfc3339(long long t, char *out, size_t outlen);
/* hex.c: lower-case hex of the bytes p[0..n) (key ids, transaction ids),
 * as many whole bytes as fit in out with a NUL. */
void agent_hex(const unsigned char *p, size_t n, char *out, size_t outlen);
/* The same in upper case: a row mark's card serial (rowstate.h). */
void agent_hex_upper(const unsigned char *p, size_t n, char *out, size_t outlen);

/* secret.c: a PIN or shared secret; the buffer is NUL-terminated and
 * wiped by secret_free. */
typedef struct {
	char *buf;
	size_t len;
} secret;

/*
 * src is "file:PATH", "fd:N" or "env:NAME".  The first line is the secret
 * (a trailing newline is dropped).  On failure writes a message to err
 * (never containing the secret) and returns -1.
 */
int secret_read(const char *src, const char *what, secret **ret, char *err, size_t errlen);
void secret_free(secret *s);

/*
 * pingen.c: a new PIN of len characters, each drawn uniformly (no modulo
 * bias) from alphabet (NULL: the ten digits) with RAND_priv_bytes, into buf
 * with a NUL (bufsize > len).  0, or -1 (bad arguments, the RNG failed:
 * buf wiped).  The caller wipes buf with OPENSSL_cleanse.
 */
int secret_pin_generate(char *buf, size_t bufsize, size_t len, const char *alphabet);

/* conf.c: one enrollment, from the configuration file and the command
 * line (the command line wins).  The fields are the settings (settings.h):
 * text settings are NULL when unset, the others CONF_FIELD_UNSET. */
#include "agent/settings.h"

/* conf_pool.c: the text values of a configuration, each kept once
 * (conf_file_get() points enrollments here).  Counted references:
 * conf_pool_free() drops one; _free(NULL) is a no-op. */
typedef struct conf_pool conf_pool;
conf_pool *conf_pool_new(void); /* NULL when out of memory */
conf_pool *conf_pool_up(conf_pool *p);
void conf_pool_free(conf_pool *p);
/* The pool's copy of s, the same for equal strings until conf_pool_seal()
 * (which drops the lookup, once nothing more is loaded); NULL when out of
 * memory. */
const char *conf_pool_get0(conf_pool *p, const char *s);
void conf_pool_seal(conf_pool *p);

#define SETTING_ONE(...) +1
enum { CONF_N_SETTINGS = 0 P11E_SETTINGS(SETTING_ONE) };

typedef struct {
	char *name;
	P11E_SETTINGS(SETTING_FIELD)
	/* the text fields that point into pool (bit i: conf_settings[i]),
	 * which conf_enrollment_clear() leaves alone; the others are the
	 * enrollment's own */
	conf_pool *pool;
	unsigned char pooled[(CONF_N_SETTINGS + 7) / 8];
} conf_enrollment;

/* The most setting flags one command line may give. */
#define AGENT_CLI_SETTINGS_MAX 128

/* Options of single commands, only from the command line. */
typedef struct {
	const char *cert_file;   /* revoke --cert */
	int delete_objs;         /* revoke --delete */
	int replaced;            /* revoke --replaced */
	const char *ca_certs;    /* genm --ca-certs FILE */
	int root_update;         /* genm --root-update */
	int template_;           /* genm --template */
	const char *crls;        /* genm --crls FILE */
	int store;               /* genm --ca-certs --store */
	const char *out;         /* genm --root-update --out FILE */
	int abandon;             /* resume --abandon */
	int recover;             /* check --recover */
	int json;                /* status --json */
	int local;               /* renew: do it here, not through a running agent */
	const char *config;      /* -c FILE, for the agent */
	int named;               /* the command line named the enrollment (list) */
	const char *batch;       /* enroll --batch FILE */
	int prompt;              /* station --prompt */
	const char *request_out; /* enroll, cr, p10cr, renew, resume --request-out FILE */
	const char *response_in; /* resume --response-in FILE */
	int new_key;             /* ccr --new-key */
	/* The settings given on the command line, in order: the flag's name
	 * (without "--") and its argument (NULL for a yes/no flag); a station
	 * passes them on to each card's process.  Pointers into argv and the
	 * option table. */
	const char *set_flag[AGENT_CLI_SETTINGS_MAX];
	const char *set_arg[AGENT_CLI_SETTINGS_MAX];
	int nset;
} agent_cmd_opts;

#define CONF_FIELD_UNSET -1

void conf_enrollment_init(conf_enrollment *e);
void conf_enrollment_clear(conf_enrollment *e);
/* A deep copy of src (dst uninitialised): 0, or -1 when out of memory. */
int conf_enrollment_copy(conf_enrollment *dst, const conf_enrollment *src);

/*
 * What a configuration check found: one line per problem, each naming
 * file:line, the section and the key, what is wrong and what is allowed.
 */
typedef struct {
	char *text; /* NUL-terminated, or NULL when nothing was said */
	size_t len, cap;
	int errors, warnings;
} conf_diag;
void conf_diag_add(conf_diag *d, int is_error, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void conf_diag_clear(conf_diag *d);

/*
 * A configuration file, loaded and checked whole: every key of every
 * section against the settings table (unknown keys, duplicates, scope,
 * types and ranges, paths, PIN and secret files).  path NULL:
 * $P11ENROLL_CONF, else the default file; a missing default file is an
 * empty configuration.  Returns -1 when d holds errors (*ret_cf is then
 * NULL).
 */
typedef struct conf_file conf_file;
/* flags: CONF_CHECK_ACCESS also checks that this process may read the PIN
 * and secret files and run the hooks: for the processes that will (a
 * client of the agent, say a control_group member, need not). */
#define CONF_CHECK_ACCESS 1
/* CONF_CHECK_PIN_OPTIONAL: a pin_source whose file or variable is not there
 * is no error (list shows the public objects without it). */
#define CONF_CHECK_PIN_OPTIONAL 2
int conf_file_load(const char *path, int flags, conf_file **ret_cf, conf_diag *d);
/*
 * What a client of the agent (status, reload, clear) needs, without
 * loading and checking thousands of sections: the enrollments' names, and
 * of the sections only the unnamed one and the first enrollment's (by
 * name: the agent's control socket is the first enrollment's), whose
 * control_socket and state_dir are checked.  conf_file_get() gives those
 * two keys only.  A file the head alone cannot answer for (a .include or
 * .pragma, an unusual section name, a mistake in those keys, a value from
 * another section) is loaded as conf_file_load() loads it, with its
 * messages.  -1 when d holds errors.
 */
int conf_file_load_head(const char *path, conf_file **ret_cf, conf_diag *d);
/* The required keys of every enrollment but skip (the one the command
 * line completes: conf_check_required checks it after), with the unnamed
 * section's defaults; -1 when d got errors. */
int conf_file_check_required(const conf_file *cf, const char *skip, conf_diag *d);
void conf_file_free(conf_file *cf);
const char *conf_file_path(const conf_file *cf);
/* The enrollment sections, in file order. */
size_t conf_file_count(const conf_file *cf);
const char *conf_file_name(const conf_file *cf, size_t i);
/* The section a command for name (NULL: the only one) uses; NULL with err. */
const char *conf_file_pick(const conf_file *cf, const char *name, char *err, size_t errlen);
/* The enrollment name (NULL: the only one) into e: its section, then the
 * unnamed section, for every field e does not have yet.  -1 with err. */
int conf_file_get(const conf_file *cf, const char *name, conf_enrollment *e, char *err,
		  size_t errlen);
/* Errors into d for each required setting e lacks (where: its origin);
 * -1 when there was any. */
int conf_check_required(const conf_enrollment *e, const char *where, conf_diag *d);
/* spool_remote.c: the settings of an ftp://, ftps://, sftp:// or scp://
 * server (the SSH host keys readable); 0, or -1 with why. */
int spool_remote_check(const conf_enrollment *e, char *why, size_t whylen);
/* One value of a setting, as the file and the command line give it: 0, or
 * -1 with what is wrong and what is allowed in why. */
int conf_check_value(const setting *s, const char *value, int flags, int *ret_int, char *why,
		     size_t whylen);
/* The row of a key, or NULL; the key nearest to a misspelt one, or NULL. */
const setting *conf_setting(const char *key);
const char *conf_near_key(const char *key);

/* conf_file_load + conf_file_get: for the unit tests and simple callers;
 * -1 with the first problem in err (one line). */
int conf_load(const char *path, const char *name, conf_enrollment *e, char *err, size_t errlen);
const char *conf_default_path(void);

/* userdirs.c, --user: the per-user defaults under the XDG base directories
 * (the configuration, the state directory, made if missing, and the
 * control socket in $XDG_RUNTIME_DIR/p11enroll, made too): 0, or -1 with
 * why in err.  The getters give NULL without --user (the socket also
 * without XDG_RUNTIME_DIR: then it is STATE_DIR/control). */
int agent_user_init(char *err, size_t errlen);
int agent_user_mode(void); /* 1 after agent_user_init() */
const char *agent_user_conf(void);
const char *agent_user_state_dir(void);
const char *agent_user_socket(void);

/* -1 when a token URI carries a PIN (a pin-value attribute): PINs come
 * from a pin_source, never from the configuration or the command line. */
int conf_check_token_uri(const char *uri);

/* Key type "ec:P-256" etc. into alg/bits (tok_keyspec values); -1 if bad. */
int conf_parse_key_type(const char *s, int *ret_alg, int *ret_bits);
/* name.c: "/CN=x/O=y" (openssl -subj syntax) and OpenSSL's subjectAltName
 * syntax; NULL with a message in err on error. */
struct X509_name_st;
struct stack_st_GENERAL_NAME;
struct X509_name_st *conf_parse_subject(const char *s, char *err, size_t errlen);
struct stack_st_GENERAL_NAME *conf_parse_sans(const char *s, char *err, size_t errlen);

/* conf_ext.c: the extension a request setting asks for (key_usage,
 * extended_key_usage, policies, basic_constraints; key names which),
 * built with OpenSSL's X509V3 functions; NULL with why naming the bad
 * item.  conf_request_extensions: those of e (*ret NULL: none); -1 with
 * why ("KEY: ...") when one is bad. */
struct X509_extension_st;
struct stack_st_X509_EXTENSION;
struct X509_extension_st *conf_parse_extension(const char *key, const char *v, char *why,
					      size_t whylen);
int conf_request_extensions(const conf_enrollment *e, struct stack_st_X509_EXTENSION **ret,
			    char *why, size_t whylen);

/* Hex digits (an even number, at most max bytes) into out; -1 if not. */
int conf_parse_hex(const char *s, unsigned char *out, size_t max, size_t *ret_len);
/* A decimal number in [min, max] into ret; -1 if it is not one. */
int conf_parse_long(const char *s, long min, long max, long *ret);
/* Longest timeout accepted, in seconds (30 days). */
#define CONF_MAX_SECONDS (86400L * 30)

/* "yes"/"no"/"true"/"false"/"1"/"0"; -1 if neither. */
int conf_parse_bool(const char *s);

/* A CRL reason (RFC 5280 5.3.1) by name (keyCompromise, case-insensitive) or
 * number (0..10 but 7) into ret; -1 if it is neither.  conf_reason_name:
 * the name of a code, "unknown" for others. */
int conf_parse_reason(const char *s, int *ret);
const char *conf_reason_name(int code);

/* PBM algorithm names into OpenSSL NIDs: "sha256" (OWF), "hmac-sha256"
 * (MAC); -1 if not one of the supported names. */
int conf_parse_pbm_owf(const char *s, int *ret_nid);
int conf_parse_pbm_mac(const char *s, int *ret_nid);

/* The commands; each returns its outcome.  request.c: enroll, cr,
 * p10cr; list.c, renew.c, revoke.c, genm.c: the others. */
agent_rc agent_enroll(const conf_enrollment *e);
/* The enrollment's objects when named (its label, the marks of an
 * unfinished run, what shares their ids, the CA certificates), else the
 * whole token; json: as the document of p11enroll-formats(5).  Without a
 * PIN (none configured, or its source cannot be read) only the public
 * objects, and no C_Login. */
agent_rc agent_list(const conf_enrollment *e, int named, int json);
/* tokens.c: every token of e->module (NULL: of p11-kit's modules) with
 * its pkcs11: URI; json: as p11enroll-formats(5). */
agent_rc agent_tokens(const conf_enrollment *e, int json);
/* tracked.c: status --all / list-tracked: every enrollment of config (or
 * only the one named; cli: the command line's settings) as the
 * configuration and the agent's state files show it, without an agent, a
 * token or a PIN; json: p11enroll-formats(5). */
agent_rc agent_tracked(const char *config, const conf_enrollment *cli, const char *only,
		       int json);
agent_rc agent_renew(const conf_enrollment *e);
agent_rc agent_cr(const conf_enrollment *e);
agent_rc agent_p10cr(const conf_enrollment *e);
agent_rc agent_revoke(const conf_enrollment *e, const agent_cmd_opts *o);
agent_rc agent_genm(const conf_enrollment *e, const agent_cmd_opts *o);
/* ccr.c: cross-certification of the enrollment's (a CA's) key. */
agent_rc agent_ccr(const conf_enrollment *e, const agent_cmd_opts *o);
/* resume.c: finish (or abandon) the pending transaction of an enrollment. */
agent_rc agent_resume(const conf_enrollment *e, const agent_cmd_opts *o);
/* agentd.c: p11enroll agent, the long-running agent. */
agent_rc agent_daemon(const char *config, const conf_enrollment *cli);
/* ctl.c, for the commands that talk to a running agent: 0 with the agent's
 * answer (the command's outcome there) in *ret_rc, or -1 when no agent
 * answers (logged, but for renew, which the caller then runs itself). */
int agent_ctl(const char *cmd, const conf_enrollment *e, const agent_cmd_opts *o,
	      agent_rc *ret_rc);

/*
 * atomic.c: the one way p11enroll writes a file.  fn writes the content to
 * f (returns -1 on failure); it goes to a new temporary file in path's
 * directory (mkstemp: no symlink is followed), is fsync'ed and renamed
 * over path (a symlink at path is replaced, not followed), and the
 * directory is fsync'ed.  mode: the new file's permissions, or
 * AGENT_MODE_KEEP for those of the regular file being replaced (0644 when
 * there is none).  On failure (-1) the temporary file is removed, path is
 * untouched, and err says what failed, why and what to do.
 */
#define AGENT_MODE_KEEP (-1)
typedef int (*agent_write_fn)(FILE *f, void *arg);
int agent_atomic_write(const char *path, int mode, agent_write_fn fn, void *arg, char *err,
		       size_t errlen);
/* fsync() of a directory, so that a rename() or unlink() in it is durable;
 * -1 with errno set. */
int agent_fsync_dir(const char *dir);
/*
 * Many files written as agent_atomic_write() writes one, with one sync for
 * all: each is written to its temporary file by agent_atomic_batch_add(),
 * then agent_atomic_batch_commit() syncs their filesystem once (syncfs),
 * renames each over its target and fsyncs each directory once.  The agent
 * saves the state of thousands of enrollments in one round of its loop; an
 * fsync per file cost some 6 ms on a plain disk.
 */
typedef struct agent_atomic_batch agent_atomic_batch;
agent_atomic_batch *agent_atomic_batch_new(void); /* NULL when out of memory */
/* 0, or -1 with err as agent_atomic_write() (nothing of path is left). */
int agent_atomic_batch_add(agent_atomic_batch *b, const char *path, int mode, agent_write_fn fn,
			   void *arg, char *err, size_t errlen);
/* The renames; the number of files that could not be renamed, 0 when all
 * were (err: why the first could not).  Frees b. */
int agent_atomic_batch_commit(agent_atomic_batch *b, char *err, size_t errlen);

/* output.c: shared by the commands. */
struct x509_st;
struct stack_st_X509;
/* Writes cert and/or certs as PEM via a temporary file and rename(); -1
 * after logging why. */
int agent_write_pem(const char *path, struct x509_st *cert, struct stack_st_X509 *certs);
/* The label of a CA certificate object: its subject CN, else the whole name;
 * -1 when the CN cannot be converted to UTF-8 (no memory). */
int agent_ca_label(struct x509_st *ca, char *out, size_t outlen);
/* A distinguished name as "/CN=V/O=V" (as X509_NAME_oneline) but with its
 * values in UTF-8, not "\xC3\xA9", agent_escape()'d; returns out. */
struct X509_name_st;
const char *agent_name_text(const struct X509_name_st *name, char *out, size_t outlen);
/* The first PEM certificate in path; NULL after logging "cannot read WHAT
 * PATH" or "WHAT PATH holds no PEM certificate: HINT". */
struct x509_st *agent_read_cert(const char *path, const char *what, const char *hint);
/* "enrolled NAME" / "renewed NAME" ... and the certificate's details. */
void agent_print_cert(const char *verb, const conf_enrollment *e, const unsigned char *id,
		      size_t idlen, const char *label, struct x509_st *cert);
/* The EXIT_* code for a cmpc_rv. */
agent_rc agent_exit_from_cmpc(int cmpc_rv);
/* A cmpc_log_fn that forwards to log_msg. */
void agent_cmp_log(int level, const char *msg, void *arg);

/* token.c: helpers shared by the commands.  They log the failure once and
 * return the outcome it makes (agent_exit_from_tok only maps, and logs
 * nothing; a token gone is noted as "token 0" in the result record). */
struct tok_ctx;
/* need_login 0: no login; 1: log in (no PIN source, or one that cannot be
 * read, fails with EXIT_PIN); AGENT_LOGIN_IF_PIN: log in when there is a
 * PIN to log in with, else go on without (a warning when the source
 * cannot be read): no PIN try is spent either way (tok_logged_in says). */
#define AGENT_LOGIN_IF_PIN 2
agent_rc agent_token_open(const conf_enrollment *e, struct tok_ctx **ret_tok, int need_login);
agent_rc agent_token_fail(struct tok_ctx *tok, int tok_rv, const char *what);
agent_rc agent_exit_from_tok(int tok_rv);

#endif
