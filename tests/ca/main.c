/*
 * p11enroll-testca: command line, logging, signals, start-up.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>

#include "tests/ca/testca.h"

#define PROG "p11enroll-testca"
#define SECRET_MAX 4096

static volatile sig_atomic_t stop_flag;
static FILE *log_file;
static int log_quiet, log_verbose;

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: " PROG " --dir DIR [options]\n"
	    "A CMP test CA on 127.0.0.1 (HTTP); prints \"port N\" once listening.\n"
	    "\n"
	    "  --dir DIR               state: root.pem/key, ca.pem/key, chain.pem, srv.pem/key,\n"
	    "                          issued/, revoked, crl.pem, port (created on first start),\n"
	    "                          last-response.der (the last certificate response)\n"
	    "  --port N                TCP port on 127.0.0.1; 0 (default) picks a free one\n"
	    "  --ref REF               PBM reference value (senderKID of PBM responses)\n"
	    "  --secret-file FILE      PBM secret: the file's bytes, trailing newline stripped\n"
	    "  --protection pbm|sig    protect responses to PBM requests with PBM (default)\n"
	    "                          or sign every response with DIR/srv.pem\n"
	    "  --signer srv|ca|device  what signs signed responses: srv.pem (cmcRA, the\n"
	    "                          default), ca.pem (the issuing CA, no EKU, as EJBCA)\n"
	    "                          or device.pem (an end entity of the PKI: a rogue)\n"
	    "  --accept-unprotected    accept requests without (or with invalid) protection\n"
	    "  --grant-implicit-confirm  grant implicitConfirm when requested (default)\n"
	    "  --no-implicit-confirm   never grant implicitConfirm: certConf is required\n"
	    "  --days N                validity of issued certificates (default 365)\n"
	    "  --validity-seconds N    validity in seconds (short-lived certs); overrides --days\n"
	    "  --poll N                answer cert requests with 'waiting', deliver after N s\n"
	    "  --deliver-when FILE     with --poll: deliver as soon as FILE exists\n"
	    "  --max-requests N        exit 0 after N requests\n"
	    "  --new-root              also a second root DIR/newroot.pem/key and the link\n"
	    "                          certificates newwithold.pem, oldwithnew.pem: genm\n"
	    "                          rootCaCert naming the current root (or none) is\n"
	    "                          answered with them; else rootCaKeyUpdate has no value\n"
	    "  --rr-status N           an rr that revokes is answered with PKIStatus N\n"
	    "                          (0 accepted, 1 grantedWithMods, 4 revocationWarning,\n"
	    "                          5 revocationNotification)\n"
	    "  --template SPEC         answer genm certReqTemplate with SPEC, e.g.\n"
	    "                          \"subject=/CN=name/O=org;key=ec:P-384\" or key=rsa:3072,\n"
	    "                          san=DNS:a.example,IP:10.0.0.1 (subjectAltName),\n"
	    "                          ext=NAME:VALUE (any extension, OpenSSL's syntax,\n"
	    "                          e.g. ext=keyUsage:critical,digitalSignature)\n"
	    "                          (without: no value); genm crlStatusList gets DIR/crl.pem\n"
	    "  --fault NAME[=ARG]      misbehave (repeatable): http500 drop garbage truncated\n"
	    "                          wrong-tid wrong-nonce unprotected-error bad-protection\n"
	    "                          slow=SECONDS reject=FAILINFO wrong-key wrong-subject\n"
	    "                          untrusted content-type redirect huge\n"
	    "                          unprotected (response without protection)\n"
	    "                          replay (send DIR/last-response.der, the last good\n"
	    "                          certificate response) wrong-sender wrong-certreqid\n"
	    "                          capubs-in-kup many-extracerts=N check-after-huge\n"
	    "                          (checkAfter 2^31 s) endless-poll (checkAfter 1 s forever)\n"
	    "                          sender-format (sender CN=%%n%%s%%x...) oversized-serial\n"
	    "                          (40 bytes) weird-text (rejection text with escapes,\n"
	    "                          format directives, a C1 control, invalid UTF-8)\n"
	    "                          forged-root-update\n"
	    "                          (genm: newWithOld signed by an unrelated key)\n"
	    "                          expired-new-root, new-root-not-ca (genm: newWithNew\n"
	    "                          expired, or CA:FALSE; linked by newWithOld)\n"
	    "                          foreign-cacerts (genm caCerts: also an unrelated CA)\n"
	    "                          wrong-body (an ip goes as cp, a cp or kup as ip)\n"
	    "                          (wrong-certreqid also edits a pollRep; unprotected-error\n"
	    "                          answering a pollReq leaves the CA's transaction open,\n"
	    "                          as if someone on the path had sent it)\n"
	    "  --fault-all             faults hit every response, not only cert requests\n"
	    "  --fault-count N         faults hit only the first N eligible requests\n"
	    "  --fault-on TYPE         faults hit only answers to TYPE (pollReq, certConf...)\n"
	    "  --fault-skip N          faults spare the first N eligible requests\n"
	    "  --fault-when FILE       faults hit only while FILE exists\n"
	    "  --ccr-trusted FILE      signed requests (a ccr of a CA of a foreign PKI, and its\n"
	    "                          certConf) may also chain to FILE's certificates\n"
	    "  --reject-text FILE      the statusString of reject=FAILINFO: FILE's bytes, as\n"
	    "                          they are (up to 16 KiB, a final newline dropped)\n"
	    "  --spool DIR             also answer DIR's NAME.req.der files into NAME.rsp.der\n"
	    "  --mail MAILDIR          also answer the request mails in MAILDIR/new (CMP by\n"
	    "                          e-mail, RFC 2510 5.3) by SMTP; each goes to MAILDIR/cur\n"
	    "  --mail-smtp URL         with --mail: the SMTP server (smtp:// or smtps://)\n"
	    "  --mail-from ADDR        with --mail: the CA's address, the answers' From\n"
	    "  --mail-cacert FILE      with --mail: the CA certificates of an smtps:// server\n"
	    "  --mail-ctype TYPE       the answers' Content-Type (application/pkixcmp)\n"
	    "  --mail-multipart        each answer in a multipart/mixed after a text part\n"
	    "  --archive               key archive: keep the private key of a request's\n"
	    "                          pkiArchiveOptions (DIR/archive/SERIAL.pem), decrypted\n"
	    "                          with DIR/archive-key.pem (made with archive-cert.pem)\n"
	    "  --archive-key FILE, --archive-cert FILE  the key-archive key pair (--archive)\n"
	    "  --archive-require       (--archive) reject a request without pkiArchiveOptions\n"
	    "  --archive-fault NAME    (--archive) refuse (every archive), other-key (decrypt\n"
	    "                          with another key)\n"
	    "  --mail-fault NAME       dup (each answer sent twice), wrong-tid (another\n"
	    "                          transaction's id in subject and header), garbage\n"
	    "                          (base64 of no DER), no-subject-tid (no id in subject\n"
	    "                          or header; In-Reply-To right)\n"
	    "  --hang-on TYPE          process requests of TYPE (ir, certConf, pollReq, kur...)\n"
	    "                          as usual but never answer: the connection is held open\n"
	    "                          until the client closes it or 120 s pass, while other\n"
	    "                          connections are served (log: \"hang: TYPE received\")\n"
	    "  --hang-count N          hang only on the first N requests of TYPE (default all)\n"
	    "  --ckg-fault NAME        central key generation (a request without a public key)\n"
	    "                          broken: other-pubkey other-recipient garbage\n"
	    "                          key-mismatch no-key\n"
	    "  --ckg-enveloped         send a centrally generated key in an EnvelopedData\n"
	    "                          (default: an EncryptedValue)\n"
	    "  --ckg-cbc               an EncryptedValue under AES-256-CBC, not key wrap\n"
	    "  --tcp                   CMP over TCP (version 10 frames, RFC 2510 5.2) instead of\n"
	    "                          HTTP on the port\n"
	    "  --tcp-fault NAME        with --tcp, break every answer frame: truncated-frame\n"
	    "                          garbage-frame wrong-version oversize-length error-msg,\n"
	    "                          or answer in rfc2510 form\n"
	    "  --krr-enveloped         send a recovered key in an EnvelopedData\n"
	    "  --krr-fault NAME        break the krp: wrong-key other-recipient garbage\n"
	    "                          unprotected reject no-key, or an earlier key pair\n"
	    "                          first in keyPairHist (history)\n"
	    "  --tcp-poll N            with --tcp, answer with pollRep (check back in N s)\n"
	    "                          and deliver on the client's pollReq\n"
	    "  --tcp-poll-close        the pollRep also closes the connection\n"
	    "  --log FILE              append request and event lines (POP, certConf, ...)\n"
	    "  -q, --quiet             nothing on stderr but errors\n"
	    "  -v, --verbose           event lines on stderr too\n"
	    "  -h, --help              this text\n"
	    "\n"
	    "Exit: 0 on SIGTERM/SIGINT or after --max-requests, 1 error, 2 usage.\n");
}

int ca_stopping(void)
{
	return stop_flag != 0;
}

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void vlog(int is_event, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void vlog(int is_event, const char *fmt, va_list ap)
{
	char line[1024];
	char stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	char *p;

	vsnprintf(line, sizeof(line), fmt, ap);
	/* text from a request (or a fault) never reaches a terminal raw */
	for (p = line; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	if (!log_quiet && (!is_event || log_verbose))
		fprintf(stderr, PROG ": %s\n", line);
	if (log_file != NULL) {
		strftime(stamp, sizeof(stamp), "%H:%M:%S", localtime_r(&now, &tm));
		fprintf(log_file, "%s %s\n", stamp, line);
	}
}

void ca_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(0, fmt, ap);
	va_end(ap);
}

void ca_event(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(1, fmt, ap);
	va_end(ap);
}

static int print_err(const char *str, size_t len, void *u)
{
	(void)u;
	fprintf(stderr, PROG ":   %.*s", (int)len, str);
	if (log_file != NULL)
		fprintf(log_file, "  %.*s", (int)len, str);
	return 1;
}

void ca_log_openssl_errors(const char *what)
{
	fprintf(stderr, PROG ": error %s\n", what);
	if (log_file != NULL)
		fprintf(log_file, "error %s\n", what);
	ERR_print_errors_cb(print_err, NULL);
}

/* The index of arg in names (NULL-terminated, names[0] the unset value),
 * or 0 after saying that --opt knows no such name. */
static int pick(const char *opt, const char *arg, const char *const *names)
{
	int i;

	for (i = 1; names[i] != NULL; i++)
		if (strcmp(arg, names[i]) == 0)
			return i;
	fprintf(stderr, PROG ": unknown --%s '%s' (see --help)\n", opt, arg);
	return 0;
}

static int parse_long(const char *s, long min, long max, long *ret)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		return 0;
	*ret = v;
	return 1;
}

static const struct {
	const char *name;
	unsigned int bit;
} fault_names[] = {
    {"http500", CA_FAULT_HTTP500},
    {"drop", CA_FAULT_DROP},
    {"garbage", CA_FAULT_GARBAGE},
    {"truncated", CA_FAULT_TRUNCATED},
    {"wrong-tid", CA_FAULT_WRONG_TID},
    {"wrong-nonce", CA_FAULT_WRONG_NONCE},
    {"unprotected-error", CA_FAULT_UNPROTECTED_ERROR},
    {"bad-protection", CA_FAULT_BAD_PROTECTION},
    {"slow", CA_FAULT_SLOW},
    {"reject", CA_FAULT_REJECT},
    {"wrong-key", CA_FAULT_WRONG_KEY},
    {"wrong-subject", CA_FAULT_WRONG_SUBJECT},
    {"untrusted", CA_FAULT_UNTRUSTED},
    {"content-type", CA_FAULT_CONTENT_TYPE},
    {"redirect", CA_FAULT_REDIRECT},
    {"huge", CA_FAULT_HUGE},
    {"replay", CA_FAULT_REPLAY},
    {"unprotected", CA_FAULT_UNPROTECTED},
    {"wrong-sender", CA_FAULT_WRONG_SENDER},
    {"wrong-certreqid", CA_FAULT_WRONG_CERTREQID},
    {"capubs-in-kup", CA_FAULT_CAPUBS_IN_KUP},
    {"many-extracerts", CA_FAULT_MANY_EXTRACERTS},
    {"check-after-huge", CA_FAULT_CHECK_AFTER_HUGE},
    {"endless-poll", CA_FAULT_ENDLESS_POLL},
    {"sender-format", CA_FAULT_SENDER_FORMAT},
    {"oversized-serial", CA_FAULT_OVERSIZED_SERIAL},
    {"weird-text", CA_FAULT_WEIRD_TEXT},
    {"forged-root-update", CA_FAULT_FORGED_ROOT_UPDATE},
    {"expired-new-root", CA_FAULT_EXPIRED_NEW_ROOT},
    {"new-root-not-ca", CA_FAULT_NEW_ROOT_NOT_CA},
    {"foreign-cacerts", CA_FAULT_FOREIGN_CACERTS},
    {"wrong-body", CA_FAULT_WRONG_BODY},
};

static int parse_fault(struct ca_opts *o, const char *arg)
{
	const char *eq = strchr(arg, '=');
	size_t n = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
	size_t i;
	long v;

	for (i = 0; i < sizeof(fault_names) / sizeof(fault_names[0]); i++) {
		if (strlen(fault_names[i].name) != n || strncmp(arg, fault_names[i].name, n) != 0)
			continue;
		if (fault_names[i].bit == CA_FAULT_SLOW) {
			if (eq == NULL || !parse_long(eq + 1, 1, 3600, &v)) {
				fprintf(stderr, PROG ": --fault slow=SECONDS (1..3600)\n");
				return 0;
			}
			o->slow_seconds = (int)v;
		} else if (fault_names[i].bit == CA_FAULT_MANY_EXTRACERTS) {
			if (eq == NULL || !parse_long(eq + 1, 1, 100000, &v)) {
				fprintf(stderr, PROG ": --fault many-extracerts=N (1..100000)\n");
				return 0;
			}
			o->many_extracerts = (int)v;
		} else if (fault_names[i].bit == CA_FAULT_REJECT) {
			if (eq == NULL || (o->reject_bit = ca_failinfo_bit(eq + 1)) < 0) {
				fprintf(stderr,
					PROG ": --fault reject=FAILINFO needs a failInfo bit name"
					     " such as badPOP, badCertTemplate, badRequest\n");
				return 0;
			}
		} else if (eq != NULL) {
			fprintf(stderr, PROG ": --fault %.*s takes no argument\n", (int)n, arg);
			return 0;
		}
		o->faults |= fault_names[i].bit;
		return 1;
	}
	fprintf(stderr, PROG ": unknown fault '%s' (see --help)\n", arg);
	return 0;
}

/* The secret file's bytes without trailing CR/LF; never echoed anywhere. */
static int read_secret(struct ca_opts *o, const char *path)
{
	unsigned char buf[SECRET_MAX + 1];
	size_t n;
	FILE *f = fopen(path, "rb");

	if (f == NULL) {
		fprintf(stderr, PROG ": cannot open secret file %s: %s\n", path, strerror(errno));
		return 0;
	}
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	if (n == 0 || n > SECRET_MAX) {
		fprintf(stderr, PROG ": secret file %s is empty or longer than %d bytes\n", path,
			SECRET_MAX);
		OPENSSL_cleanse(buf, sizeof(buf));
		return 0;
	}
	if ((o->secret = OPENSSL_memdup(buf, n)) == NULL) {
		OPENSSL_cleanse(buf, sizeof(buf));
		return 0;
	}
	o->secret_len = n;
	OPENSSL_cleanse(buf, sizeof(buf));
	return 1;
}

enum {
	OPT_DIR = 256,
	OPT_PORT,
	OPT_REF,
	OPT_SECRET_FILE,
	OPT_PROTECTION,
	OPT_SIGNER,
	OPT_ACCEPT_UNPROT,
	OPT_GRANT_IC,
	OPT_NO_IC,
	OPT_DAYS,
	OPT_VALIDITY_SECONDS,
	OPT_POLL,
	OPT_MAX_REQUESTS,
	OPT_FAULT,
	OPT_FAULT_ALL,
	OPT_FAULT_COUNT,
	OPT_FAULT_ON,
	OPT_FAULT_SKIP,
	OPT_LOG,
	OPT_NEW_ROOT,
	OPT_RR_STATUS,
	OPT_TEMPLATE,
	OPT_HANG_ON,
	OPT_HANG_COUNT,
	OPT_DELIVER_WHEN,
	OPT_CCR_TRUSTED,
	OPT_FAULT_WHEN,
	OPT_REJECT_TEXT,
	OPT_CKG_FAULT,
	OPT_CKG_ENVELOPED,
	OPT_CKG_CBC,
	OPT_TCP,
	OPT_TCP_FAULT,
	OPT_TCP_POLL,
	OPT_TCP_POLL_CLOSE,
	OPT_KRR_FAULT,
	OPT_KRR_ENVELOPED,
	OPT_SPOOL,
	OPT_MAIL,
	OPT_MAIL_SMTP,
	OPT_MAIL_FROM,
	OPT_MAIL_CACERT,
	OPT_MAIL_CTYPE,
	OPT_MAIL_MULTIPART,
	OPT_MAIL_FAULT,
	OPT_ARCHIVE,
	OPT_ARCHIVE_KEY,
	OPT_ARCHIVE_CERT,
	OPT_ARCHIVE_REQUIRE,
	OPT_ARCHIVE_FAULT,
};

static const struct option long_opts[] = {
    {"dir", required_argument, NULL, OPT_DIR},
    {"port", required_argument, NULL, OPT_PORT},
    {"ref", required_argument, NULL, OPT_REF},
    {"secret-file", required_argument, NULL, OPT_SECRET_FILE},
    {"protection", required_argument, NULL, OPT_PROTECTION},
    {"signer", required_argument, NULL, OPT_SIGNER},
    {"accept-unprotected", no_argument, NULL, OPT_ACCEPT_UNPROT},
    {"grant-implicit-confirm", no_argument, NULL, OPT_GRANT_IC},
    {"no-implicit-confirm", no_argument, NULL, OPT_NO_IC},
    {"days", required_argument, NULL, OPT_DAYS},
    {"validity-seconds", required_argument, NULL, OPT_VALIDITY_SECONDS},
    {"poll", required_argument, NULL, OPT_POLL},
    {"max-requests", required_argument, NULL, OPT_MAX_REQUESTS},
    {"fault", required_argument, NULL, OPT_FAULT},
    {"fault-all", no_argument, NULL, OPT_FAULT_ALL},
    {"fault-count", required_argument, NULL, OPT_FAULT_COUNT},
    {"fault-on", required_argument, NULL, OPT_FAULT_ON},
    {"fault-skip", required_argument, NULL, OPT_FAULT_SKIP},
    {"log", required_argument, NULL, OPT_LOG},
    {"new-root", no_argument, NULL, OPT_NEW_ROOT},
    {"rr-status", required_argument, NULL, OPT_RR_STATUS},
    {"template", required_argument, NULL, OPT_TEMPLATE},
    {"hang-on", required_argument, NULL, OPT_HANG_ON},
    {"hang-count", required_argument, NULL, OPT_HANG_COUNT},
    {"deliver-when", required_argument, NULL, OPT_DELIVER_WHEN},
    {"ccr-trusted", required_argument, NULL, OPT_CCR_TRUSTED},
    {"fault-when", required_argument, NULL, OPT_FAULT_WHEN},
    {"reject-text", required_argument, NULL, OPT_REJECT_TEXT},
    {"ckg-fault", required_argument, NULL, OPT_CKG_FAULT},
    {"ckg-enveloped", no_argument, NULL, OPT_CKG_ENVELOPED},
    {"ckg-cbc", no_argument, NULL, OPT_CKG_CBC},
    {"tcp", no_argument, NULL, OPT_TCP},
    {"tcp-fault", required_argument, NULL, OPT_TCP_FAULT},
    {"krr-fault", required_argument, NULL, OPT_KRR_FAULT},
    {"krr-enveloped", no_argument, NULL, OPT_KRR_ENVELOPED},
    {"tcp-poll", required_argument, NULL, OPT_TCP_POLL},
    {"tcp-poll-close", no_argument, NULL, OPT_TCP_POLL_CLOSE},
    {"spool", required_argument, NULL, OPT_SPOOL},
    {"mail", required_argument, NULL, OPT_MAIL},
    {"mail-smtp", required_argument, NULL, OPT_MAIL_SMTP},
    {"mail-from", required_argument, NULL, OPT_MAIL_FROM},
    {"mail-cacert", required_argument, NULL, OPT_MAIL_CACERT},
    {"mail-ctype", required_argument, NULL, OPT_MAIL_CTYPE},
    {"mail-multipart", no_argument, NULL, OPT_MAIL_MULTIPART},
    {"mail-fault", required_argument, NULL, OPT_MAIL_FAULT},
    {"archive", no_argument, NULL, OPT_ARCHIVE},
    {"archive-key", required_argument, NULL, OPT_ARCHIVE_KEY},
    {"archive-cert", required_argument, NULL, OPT_ARCHIVE_CERT},
    {"archive-require", no_argument, NULL, OPT_ARCHIVE_REQUIRE},
    {"archive-fault", required_argument, NULL, OPT_ARCHIVE_FAULT},
    {"quiet", no_argument, NULL, 'q'},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, struct ca_opts *o)
{
	const char *secret_file = NULL;
	long v;
	int c;

	o->days = 365;
	o->implicit_confirm = 1;
	while ((c = getopt_long(argc, argv, "qvh", long_opts, NULL)) != -1) {
		switch (c) {
		case OPT_DIR:
			o->dir = optarg;
			break;
		case OPT_PORT:
			if (!parse_long(optarg, 0, 65535, &v))
				goto bad_number;
			o->port = (int)v;
			break;
		case OPT_REF:
			OPENSSL_free(o->ref);
			o->ref_len = strlen(optarg);
			if ((o->ref = (unsigned char *)OPENSSL_strdup(optarg)) == NULL)
				return CA_EXIT_ERROR;
			break;
		case OPT_SECRET_FILE:
			secret_file = optarg;
			break;
		case OPT_PROTECTION:
			if (strcmp(optarg, "pbm") != 0 && strcmp(optarg, "sig") != 0) {
				fprintf(stderr, PROG ": --protection pbm or sig\n");
				return CA_EXIT_USAGE;
			}
			o->protection_sig = strcmp(optarg, "sig") == 0;
			break;
		case OPT_SIGNER:
			if (strcmp(optarg, "srv") == 0)
				o->signer = CA_SIGNER_SRV;
			else if (strcmp(optarg, "ca") == 0)
				o->signer = CA_SIGNER_CA;
			else if (strcmp(optarg, "device") == 0)
				o->signer = CA_SIGNER_DEVICE;
			else {
				fprintf(stderr, PROG ": --signer srv, ca or device\n");
				return CA_EXIT_USAGE;
			}
			break;
		case OPT_ACCEPT_UNPROT:
			o->accept_unprotected = 1;
			break;
		case OPT_GRANT_IC:
			o->implicit_confirm = 1;
			break;
		case OPT_NO_IC:
			o->implicit_confirm = 0;
			break;
		case OPT_DAYS:
			if (!parse_long(optarg, 1, 36500, &o->days))
				goto bad_number;
			break;
		case OPT_VALIDITY_SECONDS:
			if (!parse_long(optarg, 1, LONG_MAX / 2, &o->validity_seconds))
				goto bad_number;
			break;
		case OPT_POLL:
			if (!parse_long(optarg, 0, 3600, &v))
				goto bad_number;
			o->poll_seconds = (int)v;
			break;
		case OPT_MAX_REQUESTS:
			if (!parse_long(optarg, 1, LONG_MAX, &o->max_requests))
				goto bad_number;
			break;
		case OPT_FAULT:
			if (!parse_fault(o, optarg))
				return CA_EXIT_USAGE;
			break;
		case OPT_FAULT_ALL:
			o->fault_all = 1;
			break;
		case OPT_FAULT_COUNT:
			if (!parse_long(optarg, 1, LONG_MAX, &o->fault_count))
				goto bad_number;
			break;
		case OPT_FAULT_ON:
			o->fault_on = optarg;
			break;
		case OPT_FAULT_SKIP:
			if (!parse_long(optarg, 1, LONG_MAX, &o->fault_skip))
				goto bad_number;
			break;
		case OPT_HANG_ON:
			if (ca_body_type(optarg) < 0) {
				fprintf(stderr, PROG
					": --hang-on TYPE: a PKIBody name such as ir, cr, p10cr, "
					"kur, rr, genm, certConf, pollReq\n");
				return CA_EXIT_USAGE;
			}
			o->hang_on = optarg;
			break;
		case OPT_HANG_COUNT:
			if (!parse_long(optarg, 1, LONG_MAX, &o->hang_count))
				goto bad_number;
			break;
		case OPT_DELIVER_WHEN:
			o->deliver_when = optarg;
			break;
		case OPT_CCR_TRUSTED:
			o->ccr_trusted = optarg;
			break;
		case OPT_FAULT_WHEN:
			o->fault_when = optarg;
			break;
		case OPT_REJECT_TEXT:
			o->reject_text = optarg;
			break;
		case OPT_CKG_FAULT: {
			static const char *const names[] = { "",	      "other-pubkey",
							     "other-recipient", "garbage",
							     "key-mismatch",	      "no-key",
							     NULL };

			if ((o->ckg_fault = pick("ckg-fault", optarg, names)) == 0)
				return CA_EXIT_USAGE;
			break;
		}
		case OPT_CKG_ENVELOPED:
			o->ckg_enveloped = 1;
			break;
		case OPT_CKG_CBC:
			o->ckg_enveloped = -1;
			break;
		case OPT_TCP:
			o->tcp = 1;
			break;
		case OPT_TCP_FAULT: {
			static const char *const names[] = { "",	     "truncated-frame",
							     "garbage-frame", "wrong-version",
							     "oversize-length", "error-msg",
							     "rfc2510",	     NULL };

			if ((o->tcp_opts.fault = pick("tcp-fault", optarg, names)) == 0)
				return CA_EXIT_USAGE;
			break;
		}
		case OPT_KRR_ENVELOPED:
			o->krr_enveloped = 1;
			break;
		case OPT_KRR_FAULT:
			if ((o->krr_fault = pick("krr-fault", optarg, ca_krr_fault_names())) == 0)
				return CA_EXIT_USAGE;
			break;
		case OPT_TCP_POLL:
			if (!parse_long(optarg, 0, 3600, &v))
				goto bad_number;
			o->tcp_opts.poll_s = (int)v;
			break;
		case OPT_TCP_POLL_CLOSE:
			o->tcp_opts.poll_close = 1;
			break;
		case OPT_SPOOL:
			o->spool = optarg;
			break;
		case OPT_MAIL:
			o->mail.maildir = optarg;
			break;
		case OPT_MAIL_SMTP:
			o->mail.smtp = optarg;
			break;
		case OPT_MAIL_FROM:
			o->mail.from = optarg;
			break;
		case OPT_MAIL_CACERT:
			o->mail.cacert = optarg;
			break;
		case OPT_MAIL_CTYPE:
			o->mail.ctype = optarg;
			break;
		case OPT_MAIL_MULTIPART:
			o->mail.multipart = 1;
			break;
		case OPT_MAIL_FAULT: {
			static const char *const names[] = { "",	"dup", "wrong-tid", "garbage",
							     "no-subject-tid", NULL };

			if ((o->mail.fault = pick("mail-fault", optarg, names)) == 0)
				return CA_EXIT_USAGE;
			break;
		}
		case OPT_ARCHIVE:
			o->archive.on = 1;
			break;
		case OPT_ARCHIVE_KEY:
			o->archive.key_file = optarg;
			break;
		case OPT_ARCHIVE_CERT:
			o->archive.cert_file = optarg;
			break;
		case OPT_ARCHIVE_REQUIRE:
			o->archive.require = 1;
			break;
		case OPT_ARCHIVE_FAULT: {
			static const char *const names[] = { "", "refuse", "other-key", NULL };

			if ((o->archive.fault = pick("archive-fault", optarg, names)) == 0)
				return CA_EXIT_USAGE;
			break;
		}
		case OPT_LOG:
			o->log_file = optarg;
			break;
		case OPT_NEW_ROOT:
			o->new_root = 1;
			break;
		case OPT_RR_STATUS:
			/* accepted, grantedWithMods, revocationWarning or
			 * revocationNotification: what RFC 4210 lets an rr end in */
			if (!parse_long(optarg, 0, 5, &v) || v == 2 || v == 3) {
				fprintf(stderr, PROG ": --rr-status 0, 1, 4 or 5\n");
				return CA_EXIT_USAGE;
			}
			o->rr_status = (int)v;
			break;
		case OPT_TEMPLATE: {
			ASN1_TYPE *t = ca_template_value(optarg);

			if (t == NULL) {
				fprintf(stderr, PROG
					": --template \"subject=/CN=...;key=ec:CURVE|rsa:BITS\"\n");
				return CA_EXIT_USAGE;
			}
			ASN1_TYPE_free(t);
			o->template_spec = optarg;
			break;
		}
		case 'q':
			o->quiet = 1;
			break;
		case 'v':
			o->verbose = 1;
			break;
		case 'h':
			usage(stdout);
			return CA_EXIT_OK;
		default:
			usage(stderr);
			return CA_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, PROG ": unexpected argument '%s'\n", argv[optind]);
		return CA_EXIT_USAGE;
	}
	if (o->dir == NULL) {
		fprintf(stderr, PROG ": --dir DIR is required (see --help)\n");
		return CA_EXIT_USAGE;
	}
	if (o->mail.maildir != NULL && (o->mail.smtp == NULL || o->mail.from == NULL)) {
		fprintf(stderr,
			PROG ": --mail MAILDIR needs --mail-smtp URL and --mail-from ADDR\n");
		return CA_EXIT_USAGE;
	}
	if (o->hang_count > 0 && o->hang_on == NULL) {
		fprintf(stderr, PROG ": --hang-count needs --hang-on TYPE\n");
		return CA_EXIT_USAGE;
	}
	if (secret_file == NULL && !o->accept_unprotected)
		fprintf(stderr, PROG ": no --secret-file: only signed requests will be accepted\n");
	if (secret_file != NULL && !read_secret(o, secret_file))
		return CA_EXIT_ERROR;
	return -1;
bad_number:
	fprintf(stderr, PROG ": bad number '%s' for --%s\n", optarg, long_opts[c - OPT_DIR].name);
	return CA_EXIT_USAGE;
}

static int write_port(const char *dir, int port)
{
	char path[PATH_MAX];
	FILE *f;

	if (snprintf(path, sizeof(path), "%s/port", dir) >= (int)sizeof(path) ||
	    (f = fopen(path, "w")) == NULL)
		return 0;
	fprintf(f, "%d\n", port);
	return fclose(f) == 0;
}

int main(int argc, char **argv)
{
	struct ca_opts opts;
	struct ca_ca ca;
	struct ca_srv *srv = NULL;
	struct sigaction sa;
	int rc, lfd = -1, port = 0;
	pid_t mail_pid = -1;

	memset(&opts, 0, sizeof(opts));
	memset(&ca, 0, sizeof(ca));
	if ((rc = parse_args(argc, argv, &opts)) >= 0)
		goto out;
	rc = CA_EXIT_ERROR;
	log_quiet = opts.quiet;
	log_verbose = opts.verbose;
	if (opts.log_file != NULL) {
		if ((log_file = fopen(opts.log_file, "a")) == NULL) {
			fprintf(stderr, PROG ": cannot open log %s: %s\n", opts.log_file,
				strerror(errno));
			goto out;
		}
		setvbuf(log_file, NULL, _IOLBF, 0);
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal; /* no SA_RESTART: poll() returns EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	ca.days = opts.days;
	ca.validity_seconds = opts.validity_seconds;
	ca.want_new_root = opts.new_root;
	if (!ca_ca_load_or_create(&ca, opts.dir) ||
	    (opts.archive.on && !ca_archive_setup(&ca, &opts.archive)))
		goto out;
	if ((srv = ca_srv_new(&opts, &ca)) == NULL)
		goto out;
	if ((lfd = ca_http_listen(opts.port, &port)) < 0)
		goto out;
	if (!write_port(opts.dir, port)) {
		fprintf(stderr, PROG ": cannot write %s/port\n", opts.dir);
		goto out;
	}
	/* The spool in a child of its own, gone with the CA. */
	if (opts.spool != NULL) {
		pid_t pid = fork();

		if (pid < 0)
			goto out;
		if (pid == 0) {
			(void)prctl(PR_SET_PDEATHSIG, SIGTERM);
			close(lfd);
			if (getppid() == 1)
				_exit(0);
			_exit(ca_spool_serve(opts.spool, ca_srv_handle, srv));
		}
	}
	/* The mailbox likewise; it ends before the CA does, so that a CA started
	 * next never races it for a request mail. */
	if (opts.mail.maildir != NULL) {
		pid_t pid = mail_pid = fork();

		if (pid < 0)
			goto out;
		if (pid == 0) {
			(void)prctl(PR_SET_PDEATHSIG, SIGTERM);
			close(lfd);
			if (getppid() == 1)
				_exit(0);
			_exit(ca_mail_serve(&opts.mail, ca_srv_handle, srv));
		}
	}
	printf("port %d\n", port);
	fflush(stdout);
	ca_log("listening on 127.0.0.1:%d (%s), state in %s, %s protection%s%s%s", port,
	       opts.tcp ? "CMP over TCP" : "HTTP", opts.dir,
	       opts.protection_sig ? "signature" : "PBM", opts.faults != 0 ? ", faults on" : "",
	       opts.hang_on != NULL ? ", hanging on " : "",
	       opts.hang_on != NULL ? opts.hang_on : "");
	if ((opts.tcp ? ca_tcp_serve(lfd, opts.max_requests, &opts.tcp_opts, ca_srv_handle, srv)
		      : ca_http_serve(lfd, opts.max_requests, ca_srv_handle, srv)) != 0)
		goto out;
	ca_log("stopped");
	rc = CA_EXIT_OK;
out:
	if (mail_pid > 0) {
		kill(mail_pid, SIGTERM);
		(void)waitpid(mail_pid, NULL, 0);
	}
	if (lfd >= 0)
		close(lfd);
	ca_srv_free(srv);
	ca_archive_cleanup(&opts.archive);
	ca_ca_cleanup(&ca);
	if (opts.secret != NULL)
		OPENSSL_clear_free(opts.secret, opts.secret_len);
	OPENSSL_free(opts.ref);
	if (log_file != NULL)
		fclose(log_file);
	return rc;
}
