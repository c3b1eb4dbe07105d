/* p11enroll: command line. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "agent/agent-cmd.h"
#include "agent/result.h"
#include "cmp/cmpc.h"

/* Options of single commands: not settings (those come from settings.h). */
enum {
	OPT_CERT = 256,
	OPT_DELETE,
	OPT_CA_CERTS,
	OPT_ROOT_UPDATE,
	OPT_TEMPLATE,
	OPT_CRLS,
	OPT_STORE,
	OPT_OUT,
	OPT_ABANDON,
	OPT_RECOVER,
	OPT_JSON,
	OPT_LOCAL,
	OPT_KEYS,
	OPT_SYSLOG,
	OPT_BATCH,
	OPT_PROMPT,
	OPT_REPLACED,
	OPT_USER,
	OPT_ALL,
	/* setting i: OPT_SETTING + 2 * i, its --no- form + 1 */
	OPT_SETTING = 1024,
};

static const struct cmd_opt {
	const char *name;
	int has_arg, val;
	const char *arg, *help;
} cmd_opts[] = {
	{ "cert", 1, OPT_CERT, "FILE", "revoke: the certificate to revoke (PEM) instead of the token's" },
	{ "delete", 0, OPT_DELETE, NULL, "revoke: then delete the certificate and its key from the token" },
	{ "replaced", 0, OPT_REPLACED, NULL, "revoke: the replaced pair left as \"LABEL (to revoke)\"" },
	{ "ca-certs", 1, OPT_CA_CERTS, "FILE", "genm: write the CA's certificates to FILE" },
	{ "store", 0, OPT_STORE, NULL, "genm --ca-certs: also store them on the token" },
	{ "root-update", 0, OPT_ROOT_UPDATE, NULL, "genm: ask for a successor of the trusted root" },
	{ "out", 1, OPT_OUT, "FILE", "genm --root-update: write the verified new root to FILE" },
	{ "template", 0, OPT_TEMPLATE, NULL, "genm: show the CA's certificate request template" },
	{ "crls", 1, OPT_CRLS, "FILE", "genm: write the CA's current CRLs to FILE" },
	{ "abandon", 0, OPT_ABANDON, NULL, "resume: tell the CA the request is given up" },
	{ "recover", 0, OPT_RECOVER, NULL, "check: log in and clean up after an interrupted run" },
	{ "json", 0, OPT_JSON, NULL, "list, check, tokens, status: as a JSON document (p11enroll-formats(5))" },
	{ "all", 0, OPT_ALL, NULL, "status: every enrollment from the state files, no agent needed" },
	{ "local", 0, OPT_LOCAL, NULL, "renew: do it in this process even if an agent runs" },
	{ "keys", 0, OPT_KEYS, NULL, "check-config: list every setting (key, flag, scope, default)" },
	{ "syslog", 0, OPT_SYSLOG, NULL, "log to syslog instead of stderr" },
	{ "batch", 1, OPT_BATCH, "FILE", "enroll: every row of a CSV file, in one process" },
	{ "prompt", 0, OPT_PROMPT, NULL, "station: ask for each card's subject and SANs on stdin" },
};
#define N_CMD_OPTS (sizeof(cmd_opts) / sizeof(cmd_opts[0]))

/* getopt's table: the command options, two rows per setting,
 * -c/--user/-v/-q/-h/-V. */
static struct option options[N_CMD_OPTS + 2 * 64 + 7];
static char no_flags[64][48];

static int build_options(void)
{
	size_t i, n = 0;

	if (conf_n_settings > 64)
		return -1;
	for (i = 0; i < N_CMD_OPTS; i++)
		options[n++] = (struct option){ cmd_opts[i].name,
						cmd_opts[i].has_arg ? required_argument
								    : no_argument,
						NULL, cmd_opts[i].val };
	for (i = 0; i < conf_n_settings; i++) {
		const setting *s = &conf_settings[i];

		if (s->flag == NULL)
			continue;
		options[n++] = (struct option){ s->flag,
						s->type == SET_BOOL ? no_argument : required_argument,
						NULL, OPT_SETTING + 2 * (int)i };
		if (s->type == SET_BOOL) {
			snprintf(no_flags[i], sizeof(no_flags[i]), "no-%s", s->flag);
			options[n++] = (struct option){ no_flags[i], no_argument, NULL,
							OPT_SETTING + 2 * (int)i + 1 };
		}
	}
	options[n++] = (struct option){ "config", required_argument, NULL, 'c' };
	options[n++] = (struct option){ "user", no_argument, NULL, OPT_USER };
	options[n++] = (struct option){ "verbose", no_argument, NULL, 'v' };
	options[n++] = (struct option){ "quiet", no_argument, NULL, 'q' };
	options[n++] = (struct option){ "help", no_argument, NULL, 'h' };
	options[n++] = (struct option){ "version", no_argument, NULL, 'V' };
	options[n] = (struct option){ NULL, 0, NULL, 0 };
	return 0;
}

/* "  --flag ARG   help", the help wrapped at 100 columns from column 25. */
static void print_opt(FILE *f, const char *left, const char *help)
{
	const char *p = help;
	int col = fprintf(f, "%s", left);

	while (*p != '\0') {
		size_t n = strlen(p), cut = n;

		if (col >= 25) {
			fprintf(f, "\n");
			col = 0;
		}
		fprintf(f, "%*s", 25 - col, "");
		if (n > 75) {
			for (cut = 75; cut > 0 && p[cut] != ' '; cut--)
				;
			if (cut == 0)
				cut = n;
		}
		fprintf(f, "%.*s\n", (int)cut, p);
		col = 0;
		p += cut;
		p += strspn(p, " ");
	}
	if (col > 0)
		fprintf(f, "\n");
}

static void usage(FILE *f)
{
	char left[80];
	size_t i;

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
		"  tokens                 every token of the module (or of p11-kit's modules)\n"
		"                         with its pkcs11: URI\n"
		"  check NAME [NAME...]   the enrollment's token and certificate, as key=value\n"
		"                         lines; --recover: finish an interrupted run first\n"
		"  check-config           check the whole configuration file and say what is wrong;\n"
		"                         --keys: list every setting\n"
		"  agent                  track every enrollment and renew before expiry\n"
		"  status                 ask the running agent (--json: as JSON); --all: every\n"
		"                         enrollment from the state files, without an agent\n"
		"  list-tracked [NAME]    the same as status --all\n"
		"  reload                 make the running agent read the configuration again\n"
		"  clear NAME             let the agent try a stopped or PIN-latched enrollment\n"
		"  station NAME           badge station: enroll each card as it is inserted\n"
		"\n"
		"Settings (override the enrollment NAME in the configuration file; each yes/no\n"
		"setting also has a --no- form):\n"
		"  -c, --config FILE      configuration file (default $P11ENROLL_CONF or\n"
		"                         " SYSCONFDIR "/p11enroll/p11enroll.conf)\n"
		"      --user             a user's own agent: the defaults become\n"
		"                         $XDG_CONFIG_HOME/p11enroll/p11enroll.conf, the state\n"
		"                         directory $XDG_STATE_HOME/p11enroll and the control\n"
		"                         socket $XDG_RUNTIME_DIR/p11enroll/control\n");
	for (i = 0; i < conf_n_settings; i++) {
		const setting *s = &conf_settings[i];

		if (s->flag == NULL)
			continue;
		snprintf(left, sizeof(left), "      --%s%s%s", s->flag, s->arg != NULL ? " " : "",
			 s->arg != NULL ? s->arg : "");
		print_opt(f, left, s->help);
	}
	fprintf(f, "\nCommand options:\n");
	for (i = 0; i < N_CMD_OPTS; i++) {
		snprintf(left, sizeof(left), "      --%s%s%s", cmd_opts[i].name,
			 cmd_opts[i].arg != NULL ? " " : "",
			 cmd_opts[i].arg != NULL ? cmd_opts[i].arg : "");
		print_opt(f, left, cmd_opts[i].help);
	}
	fprintf(f, "  -v, --verbose          more detail (twice: debug)\n"
		   "  -q, --quiet            errors only\n"
		   "  -h, --help             this help\n"
		   "  -V, --version          print the version\n"
		   "\n"
		   "PINs and secrets never go on the command line. Exit codes: see p11enroll(1).\n");
}

static const char *const scope_names[] = { "global", "enrollment", "both" };

/* check-config --keys: the table, one setting per line. */
static void print_keys(void)
{
	size_t i;

	for (i = 0; i < conf_n_settings; i++) {
		const setting *s = &conf_settings[i];

		printf("%s\t%s%s\t%s\t%s\t%s\t%s\n", s->key, s->flag != NULL ? "--" : "-",
		       s->flag != NULL ? s->flag : "", scope_names[s->scope],
		       s->required ? "required" : "optional", s->def != NULL ? s->def : "-",
		       s->help);
	}
}

/* --flag VALUE (or --no-flag) into e, checked as the file's value is. */
static int set_setting(conf_enrollment *e, int opt, const char *value)
{
	const setting *s = &conf_settings[(opt - OPT_SETTING) / 2];
	char *field = (char *)e + s->off, why[600];
	int v = 0;

	if (s->type == SET_BOOL) {
		*(int *)field = (opt - OPT_SETTING) % 2 == 0;
		return 0;
	}
	if (conf_check_value(s, value, CONF_CHECK_ACCESS, &v, why, sizeof(why)) < 0) {
		log_msg(LOG_ERR, "--%s: %s", s->flag, why);
		return -1;
	}
	if (s->type == SET_SECONDS || s->type == SET_INT) {
		*(int *)field = v;
		return 0;
	}
	free(*(char **)field);
	if ((*(char **)field = strdup(value)) == NULL) {
		log_msg(LOG_ERR, "out of memory");
		return -1;
	}
	return 0;
}

static const char *const commands[] = { "enroll", "list",  "renew",  "cr",    "p10cr",
					"revoke", "genm",  "resume", "check", "agent",
					"status", "reload", "clear", "check-config", "station",
					"tokens", "list-tracked" };

static int known_command(const char *cmd)
{
	size_t i;

	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(cmd, commands[i]) == 0)
			return 1;
	return 0;
}

/* Commands that only talk to a running agent. */
static int is_client(const char *cmd)
{
	return strcmp(cmd, "status") == 0 || strcmp(cmd, "reload") == 0 ||
	       strcmp(cmd, "clear") == 0;
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

static agent_rc run(const char *cmd, const conf_enrollment *e, const agent_cmd_opts *o)
{
	agent_rc rc;

	/* No agent answering is a transport failure (exit 5), as for a CA. */
	if (is_client(cmd))
		return agent_ctl(cmd, e, o, &rc) < 0 ? EXIT_TRANSPORT : rc;
	/* With an agent running, a renewal by hand goes through it: never two
	 * operations on one enrollment at once. */
	if (strcmp(cmd, "renew") == 0 && !o->local && e->name != NULL &&
	    agent_ctl(cmd, e, o, &rc) == 0)
		return rc;
	/* Taken when the token is opened: it is by token and label. */
	agent_lock_on_open(needs_lock(cmd, o));
	if (strcmp(cmd, "check") == 0)
		return agent_check(e, o->recover, o->json);
	if (strcmp(cmd, "enroll") == 0)
		return o->batch != NULL ? agent_enroll_batch(e, o->batch) : agent_enroll(e);
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
	if (strcmp(cmd, "station") == 0)
		return agent_station(e, o);
	if (strcmp(cmd, "tokens") == 0)
		return agent_tokens(e, o->json);
	return agent_list(e, o->named, o->json);
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

/* Each line of d as an error (or a warning). */
static void print_diag(const conf_diag *d)
{
	const char *p = d->text != NULL ? d->text : "out of memory\n";

	while (*p != '\0') {
		size_t n = strcspn(p, "\n");

		log_msg(LOG_ERR, "%.*s", (int)n, p);
		p += n + (p[n] == '\n');
	}
}

/* p11enroll check-config: the checks every command and the agent make,
 * with nothing else done. */
static agent_rc check_config(const char *config, int keys)
{
	conf_diag d = { 0 };
	conf_file *cf = NULL;
	size_t i;
	agent_rc rc = EXIT_OK;

	if (keys) {
		print_keys();
		return EXIT_OK;
	}
	if (conf_file_load(config, CONF_CHECK_ACCESS, &cf, &d) < 0 ||
	    conf_file_check_required(cf, NULL, &d) < 0) {
		print_diag(&d);
		fprintf(stderr, "p11enroll: %d error(s) in %s\n", d.errors,
			cf != NULL		  ? conf_file_path(cf)
			: config != NULL	  ? config
			: getenv("P11ENROLL_CONF") ? getenv("P11ENROLL_CONF")
						  : conf_default_path());
		rc = EXIT_USAGE;
	} else {
		printf("%s: ok, %zu enrollment(s)", conf_file_path(cf), conf_file_count(cf));
		for (i = 0; i < conf_file_count(cf); i++)
			printf("%s%s", i == 0 ? ": " : ", ", conf_file_name(cf, i));
		printf("\n");
	}
	conf_file_free(cf);
	conf_diag_clear(&d);
	return rc;
}

/* The file, checked whole, and the enrollment name from it into e (which
 * holds the command line's settings).  A client of the agent reads only
 * what decides the control socket (conf_file_load_head()): the agent,
 * running with the last file it accepted, says what it makes of the rest
 * (reload) or has no use for it (status, clear). */
static agent_rc load_config(const char *config, const char *cmd, const char *name, int flags,
			    conf_enrollment *e)
{
	conf_diag d = { 0 };
	conf_file *cf = NULL;
	const char *picked = name;
	char err[1024];
	agent_rc rc = EXIT_USAGE;
	int client = is_client(cmd);

	if ((client ? conf_file_load_head(config, &cf, &d)
		    : conf_file_load(config, flags, &cf, &d)) < 0)
		goto out;
	/* status and reload talk to the agent of the whole file, whose control
	 * socket its first enrollment names (agent_daemon()): a file with
	 * several enrollments needs no name for them; nor does tokens, which
	 * takes the module from the first. */
	if (name == NULL &&
	    (strcmp(cmd, "status") == 0 || strcmp(cmd, "reload") == 0 ||
	     strcmp(cmd, "tokens") == 0) &&
	    conf_file_count(cf) > 1)
		name = picked = conf_file_name(cf, 0);
	if (conf_file_count(cf) > 0 && (picked = conf_file_pick(cf, name, err, sizeof(err))) == NULL) {
		log_msg(LOG_ERR, "%s", err);
		goto out;
	}
	if (client && conf_file_count(cf) > 0) {
		/* the enrollment the request names; the socket, the first's */
		if ((e->name = strdup(picked)) == NULL) {
			log_msg(LOG_ERR, "out of memory");
			goto out;
		}
		name = conf_file_name(cf, 0);
	}
	if (!client && conf_file_check_required(cf, picked, &d) < 0)
		goto out;
	if (conf_file_get(cf, name, e, err, sizeof(err)) < 0) {
		log_msg(LOG_ERR, "%s", err);
		goto out;
	}
	/* the enrollment the command line completes; without a file, the
	 * command says what it lacks */
	if (!client && picked != NULL && conf_check_required(e, conf_file_path(cf), &d) < 0)
		goto out;
	rc = EXIT_OK;
out:
	if (d.errors > 0)
		print_diag(&d);
	conf_file_free(cf);
	conf_diag_clear(&d);
	return rc;
}

static agent_rc p11enroll_main(int argc, char **argv)
{
	conf_enrollment e;
	agent_cmd_opts o;
	const char *config = NULL, *cmd, *name = NULL;
	int c, verbosity = 0, quiet = 0, idx, use_syslog = 0, keys = 0, user = 0, all = 0;
	int load_flags;
	char err[512];
	agent_rc rc;

	no_core_dumps();
	(void)agent_escape_locale();
	conf_enrollment_init(&e);
	memset(&o, 0, sizeof(o));
	log_init("p11enroll", 0, 0);
	if (build_options() < 0) {
		log_msg(LOG_ERR, "internal error: too many settings for the option table");
		return EXIT_INTERNAL;
	}
	while ((c = getopt_long(argc, argv, "c:vqhV", options, &idx)) != -1) {
		int r = 0;

		if (c >= OPT_SETTING && (size_t)(c - OPT_SETTING) / 2 < conf_n_settings) {
			if (set_setting(&e, c, optarg) < 0) {
				conf_enrollment_clear(&e);
				return EXIT_USAGE;
			}
			if (o.nset == AGENT_CLI_SETTINGS_MAX) {
				log_msg(LOG_ERR, "more than %d settings on the command line",
					AGENT_CLI_SETTINGS_MAX);
				conf_enrollment_clear(&e);
				return EXIT_USAGE;
			}
			/* kept for the processes a station starts */
			o.set_flag[o.nset] = options[idx].name;
			o.set_arg[o.nset++] = options[idx].has_arg != no_argument ? optarg : NULL;
			continue;
		}
		switch (c) {
		case 'c': config = optarg; break;
		case OPT_USER: user = 1; break;
		case 'v': verbosity++; break;
		case 'q': quiet = 1; break;
		case 'h': usage(stdout); return EXIT_OK;
		case 'V': printf("p11enroll %s\n", PACKAGE_VERSION); return EXIT_OK;
		case OPT_CERT: o.cert_file = optarg; break;
		case OPT_DELETE: o.delete_objs = 1; break;
		case OPT_REPLACED: o.replaced = 1; break;
		case OPT_CA_CERTS: o.ca_certs = optarg; break;
		case OPT_ROOT_UPDATE: o.root_update = 1; break;
		case OPT_TEMPLATE: o.template_ = 1; break;
		case OPT_CRLS: o.crls = optarg; break;
		case OPT_STORE: o.store = 1; break;
		case OPT_OUT: o.out = optarg; break;
		case OPT_ABANDON: o.abandon = 1; break;
		case OPT_RECOVER: o.recover = 1; break;
		case OPT_JSON: o.json = 1; break;
		case OPT_ALL: all = 1; break;
		case OPT_LOCAL: o.local = 1; break;
		case OPT_KEYS: keys = 1; break;
		case OPT_SYSLOG: use_syslog = 1; break;
		case OPT_BATCH: o.batch = optarg; break;
		case OPT_PROMPT: o.prompt = 1; break;
		default: r = -1; break;
		}
		if (r < 0) {
			usage(stderr);
			conf_enrollment_clear(&e);
			return EXIT_USAGE;
		}
	}
	log_init(NULL, quiet ? -1 : verbosity, use_syslog);
	if (user && agent_user_init(err, sizeof(err)) < 0) {
		log_msg(LOG_ERR, "%s", err);
		conf_enrollment_clear(&e);
		return EXIT_USAGE;
	}
	if (optind >= argc) {
		usage(stderr);
		conf_enrollment_clear(&e);
		return EXIT_USAGE;
	}
	cmd = argv[optind++];
	if (optind < argc)
		name = argv[optind++];
	/* check NAME NAME...: one pass over enrollments of one token. */
	if (strcmp(cmd, "check") == 0 && optind < argc) {
		rc = agent_check_names(config, &e, argv + optind - 1, (size_t)(argc - optind + 1),
				       o.recover, o.json);
		conf_enrollment_clear(&e);
		return rc;
	}
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
	/* From the files alone: read before any agent is asked. */
	if ((strcmp(cmd, "status") == 0 && all) || strcmp(cmd, "list-tracked") == 0) {
		rc = agent_tracked(config, &e, name, o.json);
		conf_enrollment_clear(&e);
		return rc;
	}
	if (strcmp(cmd, "check-config") == 0 || strcmp(cmd, "agent") == 0) {
		if (name != NULL) {
			log_msg(LOG_ERR, "%s reads every enrollment of the file: give no name",
				strcmp(cmd, "agent") == 0 ? "the agent" : "check-config");
			conf_enrollment_clear(&e);
			return EXIT_USAGE;
		}
		rc = strcmp(cmd, "agent") == 0 ? agent_daemon(config, &e) : check_config(config, keys);
		conf_enrollment_clear(&e);
		return rc;
	}
	/* A client of the agent reads no secret and runs no hook: a
	 * control_group member may use a file whose PIN file it cannot read
	 * (renew goes through a running agent; run alone, it reads the
	 * secrets and says so if it cannot).  list shows the public objects
	 * without a PIN it cannot read. */
	if (is_client(cmd) || (strcmp(cmd, "renew") == 0 && !o.local))
		load_flags = 0;
	else if (strcmp(cmd, "list") == 0)
		load_flags = CONF_CHECK_PIN_OPTIONAL;
	else
		load_flags = CONF_CHECK_ACCESS;
	if (load_config(config, cmd, name, load_flags, &e) != EXIT_OK) {
		conf_enrollment_clear(&e);
		return EXIT_USAGE;
	}
	if (cmpc_global_init() < 0) {
		log_msg(LOG_ERR, "cannot initialize libcurl");
		conf_enrollment_clear(&e);
		return EXIT_INTERNAL;
	}
	o.named = name != NULL;
	o.config = config;
	if (o.batch != NULL && strcmp(cmd, "enroll") != 0) {
		log_msg(LOG_ERR, "--batch is an option of enroll, not of %s", cmd);
		cmpc_global_cleanup();
		conf_enrollment_clear(&e);
		return EXIT_USAGE;
	}
	rc = run(cmd, &e, &o);
	cmpc_global_cleanup();
	conf_enrollment_clear(&e);
	return rc;
}

/* The command's agent_rc becomes the exit status and the result record's. */
int main(int argc, char **argv)
{
	agent_rc rc;

	agent_result_claim();
	rc = p11enroll_main(argc, argv);
	agent_result_emit((int)rc);
	return (int)rc;
}
