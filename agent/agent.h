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

/* Exit codes of p11enroll(1); documented in the man page. */
enum {
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
};

/* log.c */
void log_init(const char *progname, int verbosity, int use_syslog);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int log_verbosity(void);
/* Prints the OpenSSL error queue at debug level and clears it. */
void log_openssl_errors(void);

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

/* conf.c: one enrollment, from the configuration file and the command
 * line (the command line wins). */
typedef struct {
	char *name;
	char *module;
	char *token;          /* pkcs11: URI */
	char *pin_source;     /* file:/fd:/env:, or "protected" for a PIN pad */
	char *key_type;       /* ec:P-256 (default), ec:P-384, rsa:2048 ... */
	char *key_id;         /* hex CKA_ID of an existing key pair to certify */
	char *label;
	char *subject;        /* /CN=.../O=... */
	char *san;            /* OpenSSL subjectAltName syntax */
	char *server;         /* http(s):// URL */
	char *reference;      /* PBM reference value (senderKID) */
	char *secret_source;  /* file:/fd:/env: */
	char *trusted;        /* PEM trust anchors */
	char *tls_trusted;    /* PEM file for HTTPS server verification */
	char *tls_client;     /* label of the token certificate for TLS client
	                         authentication, or "self" (renew) */
	char *cert_out;       /* also write the certificate here (PEM) */
	char *chain_out;      /* also write the CA certificates here (PEM) */
	int implicit_confirm; /* -1 unset, 0 no, 1 yes */
	int allow_decrypt;    /* -1 unset */
	int connect_timeout, timeout, total_timeout; /* seconds; 0 default */
	long max_response;    /* bytes; 0 default */
	/* issue 3: renewal, other requests, revocation, genm */
	int keep_old;           /* renew: keep the old pair as "<label> (old)" */
	char *signer;           /* label of a token certificate that signs requests */
	char *protection_cert;  /* PEM certificate of a software protection key */
	char *protection_key;   /* PEM private key (not group/world readable) */
	char *cert_profile;     /* certProfile in generalInfo */
	char *sender;           /* PKIHeader sender, /CN=... */
	char *recipient;        /* PKIHeader recipient, /CN=... */
	char *expected_sender;  /* responses must name this sender, /CN=... */
	char *srv_trusted;      /* PEM anchors for response signers (default: trusted) */
	char *srv_cert;         /* PEM: the pinned CMP server certificate */
	int any_response_signer; /* allow_any_response_signer: -1 unset */
	char *rr_protection;    /* own-key (default), signer, pbm */
	char *pbm_owf;          /* PBM one-way function: sha256, sha384, sha512 */
	char *pbm_mac;          /* PBM MAC: hmac-sha256, hmac-sha384, hmac-sha512 */
	int pbm_iterations;     /* 100..100000; -1 unset */
	int unprotected_errors; /* accept unprotected error messages */
	char *reason;           /* revoke: CRL reason name or number */
	int delete_revoked;     /* revoke: delete the certificate and key afterwards */
	int use_template;       /* fill the next request from the CA's certReqTemplate */
	char *state_dir;        /* pending transactions (default LOCALSTATEDIR/lib/p11enroll) */
	/* issue 4: the agent */
	char *renew_at;         /* "66%" of the lifetime, or a duration before notAfter */
	char *retry_min, *retry_max; /* backoff after failures, durations */
	int bootstrap;          /* fall back to ir with reference+secret when kur fails */
	char *hook_success, *hook_failure; /* programs (absolute path, args), no shell */
	int hook_timeout;       /* seconds (default 30) */
	char *control_socket;   /* the agent's UNIX socket */
	char *control_group;    /* group allowed to use it */
	char *metrics_file;     /* OpenMetrics text, rewritten after each event */
	int token_poll;         /* seconds between token presence checks (default 10) */
} conf_enrollment;

/* Options of single commands, only from the command line. */
typedef struct {
	const char *cert_file;   /* revoke --cert */
	int delete_objs;         /* revoke --delete */
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
} agent_cmd_opts;

#define CONF_FIELD_UNSET -1

void conf_enrollment_init(conf_enrollment *e);
void conf_enrollment_clear(conf_enrollment *e);

/*
 * Loads section name (or the only enrollment section when name is NULL)
 * from path into e; fields already set in e (from the command line) are
 * kept.  path NULL: $P11ENROLL_CONF, else the default file, which may be
 * absent.  Returns -1
 * with a message naming the file, line and key on error.
 */
int conf_load(const char *path, const char *name, conf_enrollment *e, char *err, size_t errlen);
const char *conf_default_path(void);
/* The enrollment section names of path (NULL: as conf_load), malloc'ed,
 * NULL-terminated; -1 with err. */
int conf_list_names(const char *path, char ***ret_names, size_t *ret_n, char *err, size_t errlen);

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

/* enroll.c / list.c: the commands; return an EXIT_* code. */
int agent_enroll(const conf_enrollment *e);
int agent_list(const conf_enrollment *e);
/* renew.c, request.c, revoke.c, genm.c: the issue 3 commands. */
int agent_renew(const conf_enrollment *e);
int agent_cr(const conf_enrollment *e);
int agent_p10cr(const conf_enrollment *e);
int agent_revoke(const conf_enrollment *e, const agent_cmd_opts *o);
int agent_genm(const conf_enrollment *e, const agent_cmd_opts *o);
/* resume.c: finish (or abandon) the pending transaction of an enrollment. */
int agent_resume(const conf_enrollment *e, const agent_cmd_opts *o);
/* agentd.c: p11enroll agent, the long-running agent. */
int agent_daemon(const char *config, const conf_enrollment *cli);
/* ctl.c, for the commands that talk to a running agent. */
int agent_ctl(const char *cmd, const conf_enrollment *e, const agent_cmd_opts *o);

/*
 * atomic.c: the one way p11enroll writes a file.  fn writes the content to
 * f (returns -1 on failure); it goes to a new temporary file in path's
 * directory (mkstemp: no symlink is followed), is fsync'ed and renamed
 * over path (a symlink at path is replaced, not followed), and the
 * directory is fsync'ed.  mode: the new file's permissions, or
 * AGENT_MODE_KEEP for those of the regular file being replaced (0644 when
 * there is none).  On failure the temporary file is removed, path is
 * untouched, and err says what failed, why and what to do.
 */
#define AGENT_MODE_KEEP (-1)
typedef int (*agent_write_fn)(FILE *f, void *arg);
int agent_atomic_write(const char *path, int mode, agent_write_fn fn, void *arg, char *err,
		       size_t errlen);
/* fsync() of a directory, so that a rename() or unlink() in it is durable. */
int agent_fsync_dir(const char *dir);

/* output.c: shared by the commands. */
struct x509_st;
struct stack_st_X509;
/* Writes cert and/or certs as PEM via a temporary file and rename(). */
int agent_write_pem(const char *path, struct x509_st *cert, struct stack_st_X509 *certs);
/* The label of a CA certificate object: its subject CN, else the whole name;
 * -1 when the CN cannot be converted to UTF-8 (no memory). */
int agent_ca_label(struct x509_st *ca, char *out, size_t outlen);
/* The first PEM certificate in path; NULL after logging "cannot read WHAT
 * PATH" or "WHAT PATH holds no PEM certificate: HINT". */
struct x509_st *agent_read_cert(const char *path, const char *what, const char *hint);
/* "enrolled NAME" / "renewed NAME" ... and the certificate's details. */
void agent_print_cert(const char *verb, const conf_enrollment *e, const unsigned char *id,
		      size_t idlen, const char *label, struct x509_st *cert);
/* The EXIT_* code for a cmpc_rv. */
int agent_exit_from_cmpc(int cmpc_rv);
/* A cmpc_log_fn that forwards to log_msg. */
void agent_cmp_log(int level, const char *msg, void *arg);

/* token.c: helpers shared by the commands.  They log the failure once and
 * return the EXIT_* code for it. */
struct tok_ctx;
int agent_token_open(const conf_enrollment *e, struct tok_ctx **ret_tok, int need_login);
int agent_token_fail(struct tok_ctx *tok, int tok_rv, const char *what);
int agent_exit_from_tok(int tok_rv);
void agent_hex(const unsigned char *p, size_t n, char *out, size_t outlen);

#endif
