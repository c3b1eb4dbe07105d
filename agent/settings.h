/*
 * Every setting of p11enroll.conf(5), declared once.  The rows generate the
 * conf_enrollment fields (agent.h), the file's keys and their checks
 * (conf.c, conf_check.c), the command-line flags (main.c), help and
 * completion (help.c) and `p11enroll check-config --keys`, which
 * tests/man.sh compares with the man page.  A new setting is one row here,
 * its use, and its man page entry.
 *
 * SETTING(key, flag, type, scope, required, min, max, arg, default, help)
 *   key       the file's key and the conf_enrollment field
 *   flag      the command-line flag ("--flag"), NULL for file-only keys
 *             (the agent's alone: it takes them from the file, again on
 *             reload; p11enroll.conf(5) says so); a yes/no setting also
 *             gets "--no-flag"
 *   type      SET_* below: decides the field's C type and the check
 *   scope     where the key may stand: SC_GLOBAL only before the first
 *             [section] (one agent, one value), SC_ENROLLMENT only in an
 *             enrollment's section, SC_BOTH in either (the unnamed section
 *             is every enrollment's default)
 *   required  1: every enrollment must have it (from its section, the
 *             unnamed one, or the command line)
 *   min, max  the range of a SET_INT
 *   arg       the flag's argument in --help
 *   default   what applies when the key is absent, for --help and --keys
 *   help      one line
 */
#ifndef P11ENROLL_SETTINGS_H
#define P11ENROLL_SETTINGS_H

#define P11E_SETTINGS(X)                                                                           \
	X(module, "module", SET_MODULE, SC_BOTH, 0, 0, 0, "MODULE", "p11-kit's proxy",             \
	  "PKCS#11 module path or p11-kit module name")                                            \
	X(token, "token", SET_TOKEN_URI, SC_BOTH, 1, 0, 0, "URI", NULL,                            \
	  "pkcs11: URI of the token (\"pkcs11:\" alone: the only one)")                            \
	X(pin_source, "pin-source", SET_PIN_SOURCE, SC_BOTH, 0, 0, 0, "SRC", NULL,                 \
	  "user PIN from file:PATH, fd:N, env:NAME, or protected")                                 \
	X(key_type, "key-type", SET_KEY_TYPE, SC_BOTH, 0, 0, 0, "TYPE", "ec:P-256",                \
	  "ec:P-256, ec:P-384, rsa:2048, rsa:3072 or rsa:4096")                                    \
	X(key_id, "key-id", SET_HEX, SC_ENROLLMENT, 0, 0, 0, "HEX", NULL,                          \
	  "certify the existing key pair with this CKA_ID (enroll, cr, p10cr, ccr)")               \
	X(csr, "csr", SET_PATH, SC_ENROLLMENT, 0, 0, 0, "FILE", NULL,                              \
	  "p10cr: send this PKCS#10 request (PEM or DER) as is; no key is generated")              \
	X(key_source, "key-source", SET_KEY_SOURCE, SC_BOTH, 0, 0, 0, "SRC", "token",              \
	  "where new keys are made: token, or central (by the CA, RFC 9483 4.1.6)")                \
	X(allow_software_import, "allow-software-import", SET_BOOL, SC_BOTH, 0, 0, 0, NULL, NULL,  \
	  "central: a key the token cannot unwrap may pass through host memory")                   \
	X(label, "label", SET_TEXT, SC_BOTH, 1, 0, 0, "LABEL", NULL,                               \
	  "CKA_LABEL of the key and certificate")                                                  \
	X(subject, "subject", SET_DN, SC_BOTH, 0, 0, 0, "DN", NULL, "subject, as /CN=name/O=org")   \
	X(san, "san", SET_SANS, SC_BOTH, 0, 0, 0, "NAMES", NULL,                                   \
	  "subject alternative names, as DNS:a.example,email:x@y")                                 \
	X(key_usage, "key-usage", SET_EXTENSION, SC_BOTH, 0, 0, 0, "LIST", NULL,                   \
	  "requested keyUsage, as digitalSignature,keyEncipherment (critical)")                    \
	X(extended_key_usage, "extended-key-usage", SET_EXTENSION, SC_BOTH, 0, 0, 0, "LIST", NULL, \
	  "requested extendedKeyUsage, as clientAuth,serverAuth or dotted OIDs")                   \
	X(policies, "policies", SET_EXTENSION, SC_BOTH, 0, 0, 0, "OIDS", NULL,                     \
	  "requested certificatePolicies, as dotted OIDs")                                         \
	X(basic_constraints, "basic-constraints", SET_EXTENSION, SC_BOTH, 0, 0, 0, "BC", NULL,     \
	  "requested basicConstraints: CA:FALSE, or CA:TRUE[,pathlen:N] (critical)")               \
	X(name_constraints, "name-constraints", SET_EXTENSION, SC_BOTH, 0, 0, 0, "NC", NULL,       \
	  "requested nameConstraints (CA certificates, ccr): permitted;DNS:.example.com,"          \
	  "excluded;IP:10.0.0.0/255.0.0.0 (critical)")                                            \
	X(days, "days", SET_INT, SC_BOTH, 0, 1, 36500, "N", NULL,                                  \
	  "requested validity in days from now (ir, cr, kur; a CSR has no such field)")            \
	X(server, "server", SET_URL, SC_BOTH, 1, 0, 0, "URL", NULL,                                \
	  "CMP server, http(s)://host[:port]/.well-known/cmp")                                     \
	X(reference, "reference", SET_TEXT, SC_BOTH, 0, 0, 0, "REF", NULL,                         \
	  "PBM reference value (senderKID)")                                                       \
	X(secret_source, "secret-source", SET_SECRET_SOURCE, SC_BOTH, 0, 0, 0, "SRC", NULL,        \
	  "PBM shared secret from file:PATH, fd:N or env:NAME")                                    \
	X(trusted, "trusted", SET_PATH, SC_BOTH, 1, 0, 0, "FILE", NULL,                            \
	  "PEM trust anchors for the issued certificate")                                          \
	X(archive_key, "archive-key", SET_BOOL, SC_BOTH, 0, 0, 0, NULL, "no",                      \
	  "send the new (encryption) key to the CA for archive")                                   \
	X(archive_cert, "archive-cert", SET_PATH, SC_BOTH, 0, 0, 0, "FILE", NULL,                  \
	  "the CA's key-archive certificate (PEM) that archived keys are encrypted to")            \
	X(archive_format, "archive-format", SET_TEXT, SC_BOTH, 0, 0, 0, "FORMAT", "enveloped",     \
	  "archived key as enveloped (EnvelopedData) or encrypted-value")                          \
	X(tls_trusted, "tls-trusted", SET_PATH, SC_BOTH, 0, 0, 0, "FILE", NULL,                    \
	  "PEM CA bundle that verifies an HTTPS server")                                           \
	X(tls_client, "tls-client", SET_TEXT, SC_BOTH, 0, 0, 0, "LABEL", NULL,                     \
	  "HTTPS client authentication with the token certificate LABEL (renew: self)")            \
	X(proxy, "proxy", SET_PROXY, SC_BOTH, 0, 0, 0, "URL", NULL,                                \
	  "HTTP(S) proxy for the CMP server, as http://host:port (default: http_proxy etc.)")      \
	X(no_proxy, "no-proxy", SET_TEXT, SC_BOTH, 0, 0, 0, "HOSTS", NULL,                         \
	  "hosts reached without the proxy, comma-separated (default: no_proxy)")                  \
	X(cert_out, "cert-out", SET_PATH, SC_ENROLLMENT, 0, 0, 0, "FILE", NULL,                    \
	  "also write the new certificate to FILE")                                                \
	X(chain_out, "chain-out", SET_PATH, SC_ENROLLMENT, 0, 0, 0, "FILE", NULL,                  \
	  "also write the CA certificates to FILE")                                                \
	X(journal, "journal", SET_PATH, SC_BOTH, 0, 0, 0, "FILE", NULL,                            \
	  "append one JSON line per request outcome to FILE")                                      \
	X(implicit_confirm, "implicit-confirm", SET_BOOL, SC_BOTH, 0, 0, 0, NULL, "no",            \
	  "ask the CA to skip certConf (used only if granted)")                                    \
	X(allow_decrypt, "allow-decrypt", SET_BOOL, SC_BOTH, 0, 0, 0, NULL, "no",                  \
	  "the new key may also decrypt and unwrap (default: sign only)")                          \
	X(connect_timeout, "connect-timeout", SET_SECONDS, SC_BOTH, 0, 0, 0, "S", "10",            \
	  "seconds for connecting to the server")                                                  \
	X(timeout, "timeout", SET_SECONDS, SC_BOTH, 0, 0, 0, "S", "60",                            \
	  "seconds for each message exchange")                                                     \
	X(total_timeout, "total-timeout", SET_SECONDS, SC_BOTH, 0, 0, 0, "S", "300",               \
	  "seconds for a whole transaction, polling included")                                     \
	X(mail_from, "mail-from", SET_TEXT, SC_BOTH, 0, 0, 0, "ADDR", NULL,                        \
	  "mailto: server: our address, the From: of the request mails")                           \
	X(smtp_server, "smtp-server", SET_TEXT, SC_BOTH, 0, 0, 0, "URL", NULL,                     \
	  "mailto: server: where requests are mailed, smtp[s]://host[:port]")                      \
	X(mail_inbox, "mail-inbox", SET_TEXT, SC_BOTH, 0, 0, 0, "URL", NULL,                       \
	  "mailto: server: where answers arrive, imap[s]://host[:port]/BOX or pop3[s]://host")     \
	X(mail_user, "mail-user", SET_TEXT, SC_BOTH, 0, 0, 0, "USER", NULL,                        \
	  "mailto: server: login for mail_inbox (and smtp_server over TLS)")                       \
	X(mail_password_source, "mail-password-source", SET_SECRET_SOURCE, SC_BOTH, 0, 0, 0, "SRC",\
	  NULL, "mailto: server: mail_user's password from file:PATH, fd:N or env:NAME")           \
	X(mail_starttls, "mail-starttls", SET_BOOL, SC_BOTH, 0, 0, 0, NULL, "no",                  \
	  "mailto: server: require STARTTLS on smtp://, imap:// and pop3:// URLs")                 \
	X(store_wait, "store-wait", SET_SECONDS, SC_BOTH, 0, 0, 0, "S", "30",                     \
	  "file, FTP, SSH or mail server: seconds to wait for the CA's answer before saving")   \
	X(store_request_name, "store-request-name", SET_TEXT, SC_BOTH, 0, 0, 0, "TEMPLATE",       \
	  "%t.%n.req.der",                                                                         \
	  "file:// server: the request's file name (%t transactionID, %n number)")                \
	X(store_response_name, "store-response-name", SET_TEXT, SC_BOTH, 0, 0, 0, "TEMPLATE",     \
	  "%t.%n.rsp.der", "file:// server: the answer's file name (%t, %n as for the request)")   \
	X(store_user, "store-user", SET_TEXT, SC_BOTH, 0, 0, 0, "USER", NULL,                      \
	  "ftp, sftp, scp server: the login user (default: the URL's)")                            \
	X(store_password_source, "store-password-source", SET_SECRET_SOURCE,                       \
	  SC_BOTH, 0, 0, 0, "SRC", NULL,                                                           \
	  "ftp, sftp, scp server: the password from file:PATH, fd:N or env:NAME")                  \
	X(store_ssh_key, "store-ssh-key", SET_PATH, SC_BOTH, 0, 0, 0, "FILE", NULL,                \
	  "sftp, scp server: the SSH private key file")                                            \
	X(store_ssh_passphrase_source, "store-ssh-passphrase-source", SET_SECRET_SOURCE,           \
	  SC_BOTH, 0, 0, 0, "SRC", NULL,                                                           \
	  "sftp, scp server: the key's passphrase from file:PATH, fd:N or env:NAME")               \
	X(store_ssh_agent, "store-ssh-agent", SET_BOOL, SC_BOTH, 0, 0, 0, NULL, "no",              \
	  "sftp, scp server: also log in with the keys of the SSH agent")                          \
	X(store_known_hosts, "store-known-hosts", SET_PATH, SC_BOTH, 0, 0, 0, "FILE", NULL,        \
	  "sftp, scp server: the accepted host keys (default: ~/.ssh/known_hosts)")                \
	X(store_ftp_tls, "store-ftp-tls", SET_BOOL, SC_BOTH, 0, 0, 0, NULL, "no",                  \
	  "ftp:// server: require TLS (AUTH TLS), verified as for HTTPS")                          \
	X(max_response_size, "max-response-size", SET_INT, SC_BOTH, 0, 1024, 1073741824, "BYTES",  \
	  "1048576",                                                                               \
	  "largest response accepted, in bytes")                                                   \
	X(keep_old, "keep-old", SET_BOOL, SC_BOTH, 0, 0, 0, NULL, "no",                            \
	  "enroll, renew: keep the replaced pair as \"LABEL (old)\"")                              \
	X(replace, "replace", SET_BOOL, SC_BOTH, 0, 0, 0, NULL, "no",                              \
	  "enroll, cr, p10cr: replace a valid certificate under the label (else refused)")         \
	X(revoke_replaced, "revoke-replaced", SET_BOOL, SC_BOTH, 0, 0, 0, NULL, "no",              \
	  "revoke the replaced certificate (superseded) once the new one is stored")               \
	X(signer, "signer", SET_TEXT, SC_BOTH, 0, 0, 0, "LABEL", NULL,                             \
	  "sign requests with the token certificate LABEL and its key")                            \
	X(protection_cert, "protection-cert", SET_PATH, SC_BOTH, 0, 0, 0, "FILE", NULL,            \
	  "sign requests with this software certificate (PEM)")                                    \
	X(protection_key, "protection-key", SET_PATH, SC_BOTH, 0, 0, 0, "FILE", NULL,              \
	  "the private key of protection_cert (PEM, for the owner only)")                          \
	X(cert_profile, "cert-profile", SET_TEXT, SC_BOTH, 0, 0, 0, "NAME", NULL,                  \
	  "certProfile to request")                                                                \
	X(sender, "sender", SET_DN, SC_BOTH, 0, 0, 0, "DN", NULL,                                  \
	  "sender name in the CMP header, as /CN=name")                                            \
	X(recipient, "recipient", SET_DN, SC_BOTH, 0, 0, 0, "DN", NULL,                            \
	  "recipient name in the CMP header, as /CN=name")                                         \
	X(expected_sender, "expected-sender", SET_DN, SC_BOTH, 0, 0, 0, "DN", NULL,                \
	  "refuse responses from any other sender")                                                \
	X(srv_trusted, "srv-trusted", SET_PATH, SC_BOTH, 0, 0, 0, "FILE", "trusted",               \
	  "PEM anchors for the signers of responses")                                              \
	X(srv_cert, "srv-cert", SET_PATH, SC_BOTH, 0, 0, 0, "FILE", NULL,                          \
	  "pin the CMP server's certificate (PEM): responses must be signed with its key")         \
	X(allow_any_response_signer, "allow-any-response-signer", SET_BOOL, SC_BOTH, 0, 0, 0,      \
	  NULL, "no", "accept responses signed by any certificate that chains to the anchors "     \
		      "(unsafe)")                                                                  \
	X(rr_protection, "rr-protection", SET_RR_PROTECTION, SC_BOTH, 0, 0, 0, "P", "own-key",     \
	  "revoke: own-key, signer, or pbm")                                                       \
	X(pbm_owf, "pbm-owf", SET_PBM_OWF, SC_BOTH, 0, 0, 0, "ALG", "sha256",                      \
	  "PBM one-way function: sha256, sha384, sha512")                                          \
	X(pbm_mac, "pbm-mac", SET_PBM_MAC, SC_BOTH, 0, 0, 0, "ALG", "hmac-sha256",                 \
	  "PBM MAC: hmac-sha256, hmac-sha384, hmac-sha512")                                        \
	X(pbm_iterations, "pbm-iterations", SET_INT, SC_BOTH, 0, 100, 100000, "N", "10000",        \
	  "PBM iteration count")                                                                   \
	X(unprotected_errors, "unprotected-errors", SET_BOOL, SC_BOTH, 0, 0, 0, NULL, "no",        \
	  "accept unprotected error messages (shown as unverified)")                               \
	X(reason, "reason", SET_REASON, SC_BOTH, 0, 0, 0, "R", "none",                             \
	  "revoke: CRL reason name (keyCompromise ...) or number")                                 \
	X(delete_revoked, "delete-revoked", SET_BOOL, SC_BOTH, 0, 0, 0, NULL, "no",                \
	  "revoke: then delete the certificate and its key from the token")                        \
	X(use_template, "use-template", SET_BOOL, SC_BOTH, 0, 0, 0, NULL, "no",                    \
	  "fill the request from the CA's certificate template")                                   \
	X(state_dir, "state-dir", SET_ABSPATH, SC_BOTH, 0, 0, 0, "DIR", LOCALSTATEDIR "/lib/p11enroll", \
	  "where pending transactions and the agent's state are kept")                            \
	X(renew_at, NULL, SET_RENEW_AT, SC_BOTH, 0, 0, 0, NULL, "66%",                             \
	  "renew at this share of the lifetime, or this long before expiry (30d)")                 \
	X(retry_min, NULL, SET_DURATION, SC_BOTH, 0, 0, 0, NULL, "60s",                            \
	  "first pause after a failed step (60s, 5m, 4h, 1d)")                                     \
	X(retry_max, NULL, SET_DURATION, SC_BOTH, 0, 0, 0, NULL, "4h",                             \
	  "longest pause after failed steps")                                                      \
	X(bootstrap, NULL, SET_BOOL, SC_BOTH, 0, 0, 0, NULL, "no",                                 \
	  "agent: enroll (ir) with reference and secret when there is no certificate "             \
	  "or the CA refuses the kur")                                                             \
	X(hook_success, NULL, SET_COMMAND, SC_BOTH, 0, 0, 0, NULL, NULL,                           \
	  "agent: program (absolute path, arguments) run after each success")                      \
	X(hook_failure, NULL, SET_COMMAND, SC_BOTH, 0, 0, 0, NULL, NULL,                           \
	  "agent: program (absolute path, arguments) run after each failure")                      \
	X(hook_timeout, NULL, SET_SECONDS, SC_BOTH, 0, 0, 0, NULL, "30",                           \
	  "agent: seconds a hook may run")                                                         \
	X(control_socket, NULL, SET_ABSPATH, SC_GLOBAL, 0, 0, 0, NULL, "STATE_DIR/control",        \
	  "agent: its control socket")                                                             \
	X(control_group, NULL, SET_GROUP, SC_GLOBAL, 0, 0, 0, NULL, NULL,                          \
	  "agent: group whose members may use the control socket")                                 \
	X(metrics_file, NULL, SET_ABSPATH, SC_GLOBAL, 0, 0, 0, NULL, NULL,                         \
	  "agent: Prometheus metrics file, rewritten after each event")                            \
	X(token_poll, NULL, SET_SECONDS, SC_BOTH, 0, 0, 0, NULL, "10",                             \
	  "agent: seconds between looks for an absent token")                                      \
	X(queue, "queue", SET_PATH, SC_BOTH, 0, 0, 0, "FILE", NULL,                                \
	  "station: the CSV file of who each card is for")                                         \
	X(station_poll, "station-poll", SET_INT, SC_BOTH, 0, 20, 60000, "MS", "500",               \
	  "station: milliseconds between looks for inserted and removed cards")                    \
	X(init_token, "init-token", SET_BOOL, SC_BOTH, 0, 0, 0, NULL, "no",                        \
	  "station: initialize blank cards (C_InitToken, C_InitPIN)")                              \
	X(so_pin_source, "so-pin-source", SET_SECRET_SOURCE, SC_BOTH, 0, 0, 0, "SRC", NULL,        \
	  "station: SO PIN for blank cards from file:PATH, fd:N or env:NAME")                      \
	X(token_label, "token-label", SET_TEXT, SC_BOTH, 0, 0, 0, "LABEL", "badge-%s",             \
	  "station: a blank card's new token label; %s: its serial or a random suffix")            \
	X(pin_length, "pin-length", SET_INT, SC_BOTH, 0, 4, 64, "N", "8",                          \
	  "station: digits of a blank card's generated user PIN")                                  \
	X(pin_mailer, "pin-mailer", SET_ABSPATH, SC_BOTH, 0, 0, 0, "PROG", NULL,                   \
	  "station: program given each generated user PIN on its standard input")

/* The types.  Text types keep the string (checked at load); the others are
 * parsed into an int. */
enum setting_type {
	SET_TEXT,          /* any non-empty text */
	SET_PATH,          /* a file name */
	SET_ABSPATH,       /* an absolute file name */
	SET_COMMAND,       /* absolute path of an executable, then arguments */
	SET_MODULE,        /* absolute path of a module, or a p11-kit module name */
	SET_TOKEN_URI,     /* pkcs11: URI without a PIN */
	SET_URL,           /* http:// or https:// URL */
	SET_PIN_SOURCE,    /* file:, fd:, env: or protected */
	SET_SECRET_SOURCE, /* file:, fd: or env: */
	SET_KEY_TYPE,      /* enum */
	SET_RR_PROTECTION, /* enum */
	SET_KEY_SOURCE,    /* enum */
	SET_PBM_OWF,       /* enum */
	SET_PBM_MAC,       /* enum */
	SET_REASON,        /* enum or number */
	SET_HEX,           /* hex bytes */
	SET_DN,            /* /CN=x/O=y */
	SET_SANS,          /* subjectAltName list */
	SET_EXTENSION,     /* a requested extension, by key (conf_ext.c) */
	SET_PROXY,         /* [scheme://]host[:port], no credentials */
	SET_DURATION,      /* 60s, 5m, 4h, 1d */
	SET_RENEW_AT,      /* percentage or duration */
	SET_GROUP,         /* a group of this system */
	SET_BOOL,          /* yes/no: int */
	SET_SECONDS,       /* 0 to 30 days: int */
	SET_INT,           /* min to max: int */
};

enum setting_scope { SC_GLOBAL, SC_ENROLLMENT, SC_BOTH };

/* The C type of a field, by setting type. */
#define SETTING_CTYPE_SET_TEXT char *
#define SETTING_CTYPE_SET_PATH char *
#define SETTING_CTYPE_SET_ABSPATH char *
#define SETTING_CTYPE_SET_COMMAND char *
#define SETTING_CTYPE_SET_MODULE char *
#define SETTING_CTYPE_SET_TOKEN_URI char *
#define SETTING_CTYPE_SET_URL char *
#define SETTING_CTYPE_SET_PIN_SOURCE char *
#define SETTING_CTYPE_SET_SECRET_SOURCE char *
#define SETTING_CTYPE_SET_KEY_TYPE char *
#define SETTING_CTYPE_SET_RR_PROTECTION char *
#define SETTING_CTYPE_SET_KEY_SOURCE char *
#define SETTING_CTYPE_SET_PBM_OWF char *
#define SETTING_CTYPE_SET_PBM_MAC char *
#define SETTING_CTYPE_SET_REASON char *
#define SETTING_CTYPE_SET_HEX char *
#define SETTING_CTYPE_SET_DN char *
#define SETTING_CTYPE_SET_SANS char *
#define SETTING_CTYPE_SET_EXTENSION char *
#define SETTING_CTYPE_SET_PROXY char *
#define SETTING_CTYPE_SET_DURATION char *
#define SETTING_CTYPE_SET_RENEW_AT char *
#define SETTING_CTYPE_SET_GROUP char *
#define SETTING_CTYPE_SET_BOOL int
#define SETTING_CTYPE_SET_SECONDS int
#define SETTING_CTYPE_SET_INT int

#define SETTING_FIELD(key, flag, type, scope, req, min, max, arg, def, help)                       \
	SETTING_CTYPE_##type key;

/* One row, as data. */
typedef struct {
	const char *key;
	const char *flag;
	enum setting_type type;
	enum setting_scope scope;
	int required;
	long min, max;
	const char *arg;
	const char *def;
	const char *help;
	size_t off; /* of the field in conf_enrollment */
} setting;

/* The table (conf.c), and the number of rows. */
extern const setting conf_settings[];
extern const size_t conf_n_settings;

#endif
