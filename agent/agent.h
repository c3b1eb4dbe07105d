/*
 * agent: the program side of p11enroll.  Reads the configuration, turns
 * secrets sources into buffers that are wiped on free, drives the token
 * layer (tok.h) and the protocol layer (cmpc.h), and decides what the user
 * sees.
 */
#ifndef P11ENROLL_AGENT_H
#define P11ENROLL_AGENT_H

#include <stddef.h>
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
};

/* log.c */
void log_init(const char *progname, int verbosity, int use_syslog);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int log_verbosity(void);
/* Prints the OpenSSL error queue at debug level and clears it. */
void log_openssl_errors(void);

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
	char *label;
	char *subject;        /* /CN=.../O=... */
	char *san;            /* OpenSSL subjectAltName syntax */
	char *server;         /* http(s):// URL */
	char *reference;      /* PBM reference value (senderKID) */
	char *secret_source;  /* file:/fd:/env: */
	char *trusted;        /* PEM trust anchors */
	char *tls_trusted;    /* PEM file for HTTPS server verification */
	char *cert_out;       /* also write the certificate here (PEM) */
	char *chain_out;      /* also write the CA certificates here (PEM) */
	int implicit_confirm; /* -1 unset, 0 no, 1 yes */
	int allow_decrypt;    /* -1 unset */
	int connect_timeout, timeout, total_timeout; /* seconds; 0 default */
	long max_response;    /* bytes; 0 default */
} conf_enrollment;

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

/* Key type "ec:P-256" etc. into alg/bits (tok_keyspec values); -1 if bad. */
int conf_parse_key_type(const char *s, int *ret_alg, int *ret_bits);
/* name.c: "/CN=x/O=y" (openssl -subj syntax) and OpenSSL's subjectAltName
 * syntax; NULL with a message in err on error. */
struct X509_name_st;
struct stack_st_GENERAL_NAME;
struct X509_name_st *conf_parse_subject(const char *s, char *err, size_t errlen);
struct stack_st_GENERAL_NAME *conf_parse_sans(const char *s, char *err, size_t errlen);

/* A decimal number in [min, max] into ret; -1 if it is not one. */
int conf_parse_long(const char *s, long min, long max, long *ret);
/* Longest timeout accepted, in seconds (30 days). */
#define CONF_MAX_SECONDS (86400L * 30)

/* "yes"/"no"/"true"/"false"/"1"/"0"; -1 if neither. */
int conf_parse_bool(const char *s);

/* enroll.c / list.c: the commands; return an EXIT_* code. */
int agent_enroll(const conf_enrollment *e);
int agent_list(const conf_enrollment *e);

/* token.c: helpers shared by the commands.  They log the failure once and
 * return the EXIT_* code for it. */
struct tok_ctx;
int agent_token_open(const conf_enrollment *e, struct tok_ctx **ret_tok, int need_login);
int agent_token_fail(struct tok_ctx *tok, int tok_rv, const char *what);
int agent_exit_from_tok(int tok_rv);
void agent_hex(const unsigned char *p, size_t n, char *out, size_t outlen);

#endif
