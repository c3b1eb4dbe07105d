/* p11enroll: command line. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "agent/agent-cmd.h"
#include "cmp/cmpc.h"

enum {
	OPT_MODULE = 256,
	OPT_TOKEN,
	OPT_PIN_SOURCE,
	OPT_KEY_TYPE,
	OPT_KEY_ID,
	OPT_LABEL,
	OPT_SUBJECT,
	OPT_SAN,
	OPT_SERVER,
	OPT_REFERENCE,
	OPT_SECRET_SOURCE,
	OPT_TRUSTED,
	OPT_TLS_TRUSTED,
	OPT_TLS_CLIENT,
	OPT_CERT_OUT,
	OPT_CHAIN_OUT,
	OPT_IMPLICIT,
	OPT_NO_IMPLICIT,
	OPT_CONNECT_TIMEOUT,
	OPT_TIMEOUT,
	OPT_TOTAL_TIMEOUT,
	OPT_KEEP_OLD,
	OPT_SIGNER,
	OPT_PROTECTION_CERT,
	OPT_PROTECTION_KEY,
	OPT_CERT_PROFILE,
	OPT_SENDER,
	OPT_RECIPIENT,
	OPT_EXPECTED_SENDER,
	OPT_SRV_TRUSTED,
	OPT_SRV_CERT,
	OPT_ANY_SIGNER,
	OPT_RR_PROTECTION,
	OPT_PBM_OWF,
	OPT_PBM_MAC,
	OPT_PBM_ITERATIONS,
	OPT_UNPROTECTED_ERRORS,
	OPT_REASON,
	OPT_CERT,
	OPT_DELETE,
	OPT_USE_TEMPLATE,
	OPT_CA_CERTS,
	OPT_ROOT_UPDATE,
	OPT_TEMPLATE,
	OPT_CRLS,
	OPT_STORE,
	OPT_OUT,
	OPT_STATE_DIR,
	OPT_ABANDON,
	OPT_RECOVER,
	OPT_JSON,
	OPT_LOCAL,
	OPT_SYSLOG,
};

static const struct option options[] = {
	{ "config", required_argument, NULL, 'c' },
	{ "module", required_argument, NULL, OPT_MODULE },
	{ "token", required_argument, NULL, OPT_TOKEN },
	{ "pin-source", required_argument, NULL, OPT_PIN_SOURCE },
	{ "key-type", required_argument, NULL, OPT_KEY_TYPE },
	{ "key-id", required_argument, NULL, OPT_KEY_ID },
	{ "label", required_argument, NULL, OPT_LABEL },
	{ "subject", required_argument, NULL, OPT_SUBJECT },
	{ "san", required_argument, NULL, OPT_SAN },
	{ "server", required_argument, NULL, OPT_SERVER },
	{ "reference", required_argument, NULL, OPT_REFERENCE },
	{ "secret-source", required_argument, NULL, OPT_SECRET_SOURCE },
	{ "trusted", required_argument, NULL, OPT_TRUSTED },
	{ "tls-trusted", required_argument, NULL, OPT_TLS_TRUSTED },
	{ "tls-client", required_argument, NULL, OPT_TLS_CLIENT },
	{ "cert-out", required_argument, NULL, OPT_CERT_OUT },
	{ "chain-out", required_argument, NULL, OPT_CHAIN_OUT },
	{ "implicit-confirm", no_argument, NULL, OPT_IMPLICIT },
	{ "no-implicit-confirm", no_argument, NULL, OPT_NO_IMPLICIT },
	{ "connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "total-timeout", required_argument, NULL, OPT_TOTAL_TIMEOUT },
	{ "keep-old", no_argument, NULL, OPT_KEEP_OLD },
	{ "signer", required_argument, NULL, OPT_SIGNER },
	{ "protection-cert", required_argument, NULL, OPT_PROTECTION_CERT },
	{ "protection-key", required_argument, NULL, OPT_PROTECTION_KEY },
	{ "cert-profile", required_argument, NULL, OPT_CERT_PROFILE },
	{ "sender", required_argument, NULL, OPT_SENDER },
	{ "recipient", required_argument, NULL, OPT_RECIPIENT },
	{ "expected-sender", required_argument, NULL, OPT_EXPECTED_SENDER },
	{ "srv-trusted", required_argument, NULL, OPT_SRV_TRUSTED },
	{ "srv-cert", required_argument, NULL, OPT_SRV_CERT },
	{ "allow-any-response-signer", no_argument, NULL, OPT_ANY_SIGNER },
	{ "rr-protection", required_argument, NULL, OPT_RR_PROTECTION },
	{ "pbm-owf", required_argument, NULL, OPT_PBM_OWF },
	{ "pbm-mac", required_argument, NULL, OPT_PBM_MAC },
	{ "pbm-iterations", required_argument, NULL, OPT_PBM_ITERATIONS },
	{ "unprotected-errors", no_argument, NULL, OPT_UNPROTECTED_ERRORS },
	{ "reason", required_argument, NULL, OPT_REASON },
	{ "cert", required_argument, NULL, OPT_CERT },
	{ "delete", no_argument, NULL, OPT_DELETE },
	{ "use-template", no_argument, NULL, OPT_USE_TEMPLATE },
	{ "ca-certs", required_argument, NULL, OPT_CA_CERTS },
	{ "root-update", no_argument, NULL, OPT_ROOT_UPDATE },
	{ "template", no_argument, NULL, OPT_TEMPLATE },
	{ "crls", required_argument, NULL, OPT_CRLS },
	{ "store", no_argument, NULL, OPT_STORE },
	{ "out", required_argument, NULL, OPT_OUT },
	{ "state-dir", required_argument, NULL, OPT_STATE_DIR },
	{ "abandon", no_argument, NULL, OPT_ABANDON },
	{ "recover", no_argument, NULL, OPT_RECOVER },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "local", no_argument, NULL, OPT_LOCAL },
	{ "syslog", no_argument, NULL, OPT_SYSLOG },
	{ "verbose", no_argument, NULL, 'v' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: p11enroll [options] COMMAND [NAME]\n"
		"\n"
		"Commands:\n"
		"  enroll [NAME]          generate a key pair on the token, enroll it with a CMP ir\n"
		"                         and store the certificate next to the key\n"
		"  renew [NAME]           new key pair on the token, certified with a kur signed by\n"
		"                         the old key; the old pair is deleted (or kept) after success\n"
		"  cr [NAME]              new key pair, certified with a cr signed by a signer\n"
		"  p10cr [NAME]           new key pair, certified with a PKCS#10 request\n"
		"  revoke [NAME]          revoke the enrollment's certificate (rr)\n"
		"  genm [NAME]            ask the CA: --ca-certs FILE, --root-update, --template,\n"
		"                         --crls FILE\n"
		"  resume [NAME]          finish a request the CA answered 'waiting' (polling);\n"
		"                         with --abandon, give it up and delete its new key\n"
		"  list [NAME]            show the keys and certificates on the token\n"
		"  check NAME             the enrollment's token and certificate, as key=value\n"
		"                         lines; --recover: finish an interrupted run first\n"
		"  agent                  track every enrollment and renew before expiry\n"
		"  status                 ask the running agent (--json: as JSON)\n"
		"  reload                 make the running agent read the configuration again\n"
		"  clear NAME             let the agent try a stopped or PIN-latched enrollment\n"
		"\n"
		"Options (override the enrollment NAME in the configuration file):\n"
		"  -c, --config FILE      configuration file (default $P11ENROLL_CONF or\n"
		"                         " SYSCONFDIR "/p11enroll/p11enroll.conf)\n"
		"      --module MODULE    PKCS#11 module path or p11-kit module name\n"
		"      --token URI        pkcs11: URI of the token\n"
		"      --pin-source SRC   user PIN from file:PATH, fd:N, env:NAME, or protected\n"
		"      --key-type TYPE    ec:P-256 (default), ec:P-384, rsa:2048, rsa:3072, rsa:4096\n"
		"      --key-id HEX       certify the existing key pair with this CKA_ID instead\n"
		"                         of generating one (enroll, cr, p10cr)\n"
		"      --label LABEL      CKA_LABEL of the new key and certificate\n"
		"      --subject DN       subject, as /CN=name/O=org\n"
		"      --san NAMES        subject alternative names, as DNS:a.example,email:x@y\n"
		"      --server URL       CMP server, http(s)://host[:port]/.well-known/cmp\n"
		"      --reference REF    PBM reference value (senderKID)\n"
		"      --secret-source SRC  PBM shared secret from file:PATH, fd:N or env:NAME\n"
		"      --trusted FILE     PEM trust anchors for the issued certificate\n"
		"      --tls-trusted FILE PEM CA bundle that verifies an HTTPS server\n"
		"      --tls-client LABEL authenticate to the HTTPS server with the token\n"
		"                         certificate LABEL and its key (renew: self, the\n"
		"                         certificate being renewed)\n"
		"      --cert-out FILE    also write the new certificate to FILE\n"
		"      --chain-out FILE   also write the CA certificates to FILE\n"
		"      --implicit-confirm, --no-implicit-confirm\n"
		"                         ask the CA to skip certConf (used only if granted)\n"
		"      --connect-timeout S, --timeout S, --total-timeout S\n"
		"                         seconds for connecting, per message, in all\n"
		"      --keep-old         enroll, renew: keep the replaced pair as \"LABEL (old)\"\n"
		"      --signer LABEL     sign requests with the token certificate LABEL and its key\n"
		"      --protection-cert FILE, --protection-key FILE\n"
		"                         sign requests with a software certificate and key (PEM)\n"
		"      --cert-profile NAME  certProfile to request\n"
		"      --sender DN, --recipient DN  names in the CMP header, as /CN=name\n"
		"      --expected-sender DN  refuse responses from any other sender\n"
		"      --srv-trusted FILE PEM anchors for the signers of responses (default:\n"
		"                         --trusted)\n"
		"      --srv-cert FILE    pin the CMP server's certificate (PEM): responses must\n"
		"                         be signed with its key\n"
		"      --allow-any-response-signer\n"
		"                         accept responses signed by any certificate that\n"
		"                         chains to the anchors, not only the CA's (unsafe)\n"
		"      --rr-protection P  revoke: own-key (default: the revoked certificate's\n"
		"                         key), signer, or pbm\n"
		"      --pbm-owf ALG      PBM one-way function: sha256 (default), sha384, sha512\n"
		"      --pbm-mac ALG      PBM MAC: hmac-sha256 (default), hmac-sha384, hmac-sha512\n"
		"      --pbm-iterations N PBM iteration count, 100 to 100000 (default 10000)\n"
		"      --unprotected-errors  accept unprotected error messages (shown as unverified)\n"
		"      --use-template     fill the request from the CA's certificate template\n"
		"      --reason R         revoke: CRL reason name (keyCompromise ...) or number\n"
		"      --cert FILE        revoke: the certificate to revoke (PEM) instead of the token's\n"
		"      --delete           revoke: then delete the certificate and its key from the token\n"
		"      --ca-certs FILE    genm: write the CA's certificates to FILE\n"
		"      --store            genm --ca-certs: also store them on the token\n"
		"      --root-update      genm: ask for a successor of the trusted root\n"
		"      --out FILE         genm --root-update: write the verified new root to FILE\n"
		"      --template         genm: show the CA's certificate request template\n"
		"      --crls FILE        genm: write the CA's current CRLs to FILE\n"
		"      --state-dir DIR    where pending transactions are kept (default\n"
		"                         " LOCALSTATEDIR "/lib/p11enroll)\n"
		"      --abandon          resume: tell the CA the request is given up\n"
		"      --recover          check: log in and clean up after an interrupted run\n"
		"      --json             status: the agent's status as a JSON document\n"
		"      --local            renew: do it in this process even if an agent runs\n"
		"      --syslog           log to syslog instead of stderr\n"
		"  -v, --verbose          more detail (twice: debug)\n"
		"  -q, --quiet            errors only\n"
		"  -h, --help             this help\n"
		"  -V, --version          print the version\n"
		"\n"
		"PINs and secrets never go on the command line. Exit codes: see p11enroll(1).\n");
}

static int set_str(char **field, const char *value)
{
	free(*field);
	if ((*field = strdup(value)) == NULL) {
		log_msg(LOG_ERR, "out of memory");
		return -1;
	}
	return 0;
}

static int set_iterations(int *field, const char *value)
{
	long v;

	if (conf_parse_long(value, 100, 100000, &v) < 0) {
		log_msg(LOG_ERR, "--pbm-iterations '%s' is not a number from 100 to 100000", value);
		return -1;
	}
	*field = (int)v;
	return 0;
}

static const char *const commands[] = { "enroll", "list",  "renew",  "cr",    "p10cr",
					"revoke", "genm",  "resume", "check", "agent",
					"status", "reload", "clear" };

static int known_command(const char *cmd)
{
	size_t i;

	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(cmd, commands[i]) == 0)
			return 1;
	return 0;
}

/* Commands that change the token take the enrollment's lock. */
static int needs_lock(const char *cmd, const agent_cmd_opts *o)
{
	static const char *const writers[] = { "enroll", "renew", "cr", "p10cr", "resume", "revoke" };
	size_t i;

	for (i = 0; i < sizeof(writers) / sizeof(writers[0]); i++)
		if (strcmp(cmd, writers[i]) == 0)
			return 1;
	return strcmp(cmd, "check") == 0 && o->recover;
}

static int run(const char *cmd, const conf_enrollment *e, const agent_cmd_opts *o)
{
	int rc;

	/* No agent answering is a transport failure (exit 5), as for a CA. */
	if (strcmp(cmd, "status") == 0 || strcmp(cmd, "reload") == 0 || strcmp(cmd, "clear") == 0)
		return (rc = agent_ctl(cmd, e, o)) < 0 ? EXIT_TRANSPORT : rc;
	/* With an agent running, a renewal by hand goes through it: never two
	 * operations on one enrollment at once. */
	if (strcmp(cmd, "renew") == 0 && !o->local && e->name != NULL &&
	    (rc = agent_ctl(cmd, e, o)) >= 0)
		return rc;
	if (needs_lock(cmd, o) && agent_lock(e) < 0)
		return EXIT_BUSY;
	if (strcmp(cmd, "check") == 0)
		return agent_check(e, o->recover);
	if (strcmp(cmd, "enroll") == 0)
		return agent_enroll(e);
	if (strcmp(cmd, "renew") == 0)
		return agent_renew(e);
	if (strcmp(cmd, "cr") == 0)
		return agent_cr(e);
	if (strcmp(cmd, "p10cr") == 0)
		return agent_p10cr(e);
	if (strcmp(cmd, "revoke") == 0)
		return agent_revoke(e, o);
	if (strcmp(cmd, "genm") == 0)
		return agent_genm(e, o);
	if (strcmp(cmd, "resume") == 0)
		return agent_resume(e, o);
	return agent_list(e);
}

static int set_seconds(int *field, const char *opt, const char *value)
{
	long v;

	if (conf_parse_long(value, 0, CONF_MAX_SECONDS, &v) < 0) {
		log_msg(LOG_ERR, "--%s '%s' is not a number of seconds", opt, value);
		return -1;
	}
	*field = (int)v;
	return 0;
}

/* PINs and secrets pass through this process's memory: no core dump may
 * carry them to disk, and other processes of the same user may not read
 * them through ptrace or /proc. */
static void no_core_dumps(void)
{
	struct rlimit none = { 0, 0 };

	(void)setrlimit(RLIMIT_CORE, &none);
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

int main(int argc, char **argv)
{
	conf_enrollment e;
	agent_cmd_opts o;
	const char *config = NULL, *cmd, *name = NULL;
	int c, verbosity = 0, quiet = 0, rc, idx, use_syslog = 0;
	char err[1024];

	no_core_dumps();
	conf_enrollment_init(&e);
	memset(&o, 0, sizeof(o));
	log_init("p11enroll", 0, 0);
	while ((c = getopt_long(argc, argv, "c:vqhV", options, &idx)) != -1) {
		int r = 0;

		switch (c) {
		case 'c': config = optarg; break;
		case 'v': verbosity++; break;
		case 'q': quiet = 1; break;
		case 'h': usage(stdout); return EXIT_OK;
		case 'V': printf("p11enroll %s\n", PACKAGE_VERSION); return EXIT_OK;
		case OPT_MODULE: r = set_str(&e.module, optarg); break;
		case OPT_TOKEN:
			if (conf_check_token_uri(optarg) < 0) {
				/* The value is the PIN's carrier: never part of the message. */
				log_msg(LOG_ERR, "--token: the URI carries a PIN (pin-value): a "
						 "PIN does not belong on the command line, where "
						 "other users see it; remove it and give "
						 "--pin-source file:PATH (or fd:N, env:NAME)");
				r = -1;
				break;
			}
			r = set_str(&e.token, optarg);
			break;
		case OPT_PIN_SOURCE: r = set_str(&e.pin_source, optarg); break;
		case OPT_KEY_TYPE: r = set_str(&e.key_type, optarg); break;
		case OPT_KEY_ID: r = set_str(&e.key_id, optarg); break;
		case OPT_LABEL: r = set_str(&e.label, optarg); break;
		case OPT_SUBJECT: r = set_str(&e.subject, optarg); break;
		case OPT_SAN: r = set_str(&e.san, optarg); break;
		case OPT_SERVER: r = set_str(&e.server, optarg); break;
		case OPT_REFERENCE: r = set_str(&e.reference, optarg); break;
		case OPT_SECRET_SOURCE: r = set_str(&e.secret_source, optarg); break;
		case OPT_TRUSTED: r = set_str(&e.trusted, optarg); break;
		case OPT_TLS_TRUSTED: r = set_str(&e.tls_trusted, optarg); break;
		case OPT_TLS_CLIENT: r = set_str(&e.tls_client, optarg); break;
		case OPT_CERT_OUT: r = set_str(&e.cert_out, optarg); break;
		case OPT_CHAIN_OUT: r = set_str(&e.chain_out, optarg); break;
		case OPT_IMPLICIT: e.implicit_confirm = 1; break;
		case OPT_NO_IMPLICIT: e.implicit_confirm = 0; break;
		case OPT_CONNECT_TIMEOUT:
			r = set_seconds(&e.connect_timeout, "connect-timeout", optarg);
			break;
		case OPT_TIMEOUT: r = set_seconds(&e.timeout, "timeout", optarg); break;
		case OPT_TOTAL_TIMEOUT:
			r = set_seconds(&e.total_timeout, "total-timeout", optarg);
			break;
		case OPT_KEEP_OLD: e.keep_old = 1; break;
		case OPT_SIGNER: r = set_str(&e.signer, optarg); break;
		case OPT_PROTECTION_CERT: r = set_str(&e.protection_cert, optarg); break;
		case OPT_PROTECTION_KEY: r = set_str(&e.protection_key, optarg); break;
		case OPT_CERT_PROFILE: r = set_str(&e.cert_profile, optarg); break;
		case OPT_SENDER: r = set_str(&e.sender, optarg); break;
		case OPT_RECIPIENT: r = set_str(&e.recipient, optarg); break;
		case OPT_EXPECTED_SENDER: r = set_str(&e.expected_sender, optarg); break;
		case OPT_SRV_TRUSTED: r = set_str(&e.srv_trusted, optarg); break;
		case OPT_SRV_CERT: r = set_str(&e.srv_cert, optarg); break;
		case OPT_ANY_SIGNER: e.any_response_signer = 1; break;
		case OPT_RR_PROTECTION: r = set_str(&e.rr_protection, optarg); break;
		case OPT_PBM_OWF: r = set_str(&e.pbm_owf, optarg); break;
		case OPT_PBM_MAC: r = set_str(&e.pbm_mac, optarg); break;
		case OPT_PBM_ITERATIONS: r = set_iterations(&e.pbm_iterations, optarg); break;
		case OPT_UNPROTECTED_ERRORS: e.unprotected_errors = 1; break;
		case OPT_REASON: r = set_str(&e.reason, optarg); break;
		case OPT_USE_TEMPLATE: e.use_template = 1; break;
		case OPT_CERT: o.cert_file = optarg; break;
		case OPT_DELETE: o.delete_objs = 1; break;
		case OPT_CA_CERTS: o.ca_certs = optarg; break;
		case OPT_ROOT_UPDATE: o.root_update = 1; break;
		case OPT_TEMPLATE: o.template_ = 1; break;
		case OPT_CRLS: o.crls = optarg; break;
		case OPT_STORE: o.store = 1; break;
		case OPT_OUT: o.out = optarg; break;
		case OPT_STATE_DIR: r = set_str(&e.state_dir, optarg); break;
		case OPT_ABANDON: o.abandon = 1; break;
		case OPT_RECOVER: o.recover = 1; break;
		case OPT_JSON: o.json = 1; break;
		case OPT_LOCAL: o.local = 1; break;
		case OPT_SYSLOG: use_syslog = 1; break;
		default:
			usage(stderr);
			conf_enrollment_clear(&e);
			return EXIT_USAGE;
		}
		if (r < 0) {
			conf_enrollment_clear(&e);
			return EXIT_USAGE;
		}
	}
	log_init(NULL, quiet ? -1 : verbosity, use_syslog);
	if (optind >= argc) {
		usage(stderr);
		conf_enrollment_clear(&e);
		return EXIT_USAGE;
	}
	cmd = argv[optind++];
	if (optind < argc)
		name = argv[optind++];
	if (optind < argc) {
		log_msg(LOG_ERR, "unexpected argument '%s'; see p11enroll --help", argv[optind]);
		conf_enrollment_clear(&e);
		return EXIT_USAGE;
	}
	if (!known_command(cmd)) {
		log_msg(LOG_ERR, "unknown command '%s'; see p11enroll --help", cmd);
		conf_enrollment_clear(&e);
		return EXIT_USAGE;
	}
	if (strcmp(cmd, "agent") == 0) {
		if (name != NULL) {
			log_msg(LOG_ERR, "the agent tracks every enrollment of the file: give no name");
			conf_enrollment_clear(&e);
			return EXIT_USAGE;
		}
		rc = agent_daemon(config, &e);
		conf_enrollment_clear(&e);
		return rc;
	}
	/* status and reload talk to the agent of the whole file, whose control
	 * socket its first enrollment names (agent_daemon()): a file with
	 * several enrollments needs no name for them. */
	char **names = NULL;
	size_t n_names = 0, k;

	if (name == NULL && (strcmp(cmd, "status") == 0 || strcmp(cmd, "reload") == 0) &&
	    conf_list_names(config, &names, &n_names, err, sizeof(err)) == 0 && n_names > 1)
		name = names[0];
	rc = conf_load(config, name, &e, err, sizeof(err));
	for (k = 0; k < n_names; k++)
		free(names[k]);
	free(names);
	name = NULL;
	if (rc < 0) {
		log_msg(LOG_ERR, "%s", err);
		conf_enrollment_clear(&e);
		return EXIT_USAGE;
	}
	if (cmpc_global_init() < 0) {
		log_msg(LOG_ERR, "cannot initialize libcurl");
		conf_enrollment_clear(&e);
		return EXIT_INTERNAL;
	}
	rc = run(cmd, &e, &o);
	cmpc_global_cleanup();
	conf_enrollment_clear(&e);
	return rc;
}
