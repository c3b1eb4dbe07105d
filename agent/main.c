/* p11enroll: command line. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "agent/agent-cmd.h"
#include "agent/help.h"
#include "agent/result.h"
#include "cmp/cmpc.h"

/* getopt's table: the command options, two rows per setting,
 * -c/--user/-v/-q/-h/-V. */
static struct option options[64 + 2 * 96 + 8];
static char no_flags[96][48];

static int build_options(void)
{
	size_t i, n = 0;

	if (conf_n_settings > 96 || agent_n_cli_opts > 64)
		return -1;
	for (i = 0; i < agent_n_cli_opts; i++)
		options[n++] = (struct option){ agent_cli_opts[i].name,
						agent_cli_opts[i].has_arg ? required_argument
									  : no_argument,
						NULL, agent_cli_opts[i].val };
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
	options[n++] = (struct option){ "syslog", no_argument, NULL, OPT_SYSLOG };
	options[n++] = (struct option){ "verbose", no_argument, NULL, 'v' };
	options[n++] = (struct option){ "quiet", no_argument, NULL, 'q' };
	options[n++] = (struct option){ "help", no_argument, NULL, 'h' };
	options[n++] = (struct option){ "version", no_argument, NULL, 'V' };
	options[n] = (struct option){ NULL, 0, NULL, 0 };
	return 0;
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

/* Commands that only talk to a running agent. */
static int is_client(const char *cmd)
{
	return strcmp(cmd, "status") == 0 || strcmp(cmd, "reload") == 0 ||
	       strcmp(cmd, "clear") == 0;
}

/* The progress line: not with -q or --syslog (main). */
static int progress_show;

/* The one-shot commands that wait for a CA (enroll --batch too). */
static int speaks_cmp(const char *cmd)
{
	static const char *const cmp[] = { "enroll", "renew",  "cr",  "p10cr",
					   "resume", "revoke", "genm",	"ccr" };
	size_t i;

	for (i = 0; i < sizeof(cmp) / sizeof(cmp[0]); i++)
		if (strcmp(cmd, cmp[i]) == 0)
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
	if (strcmp(cmd, "ccr") == 0 && (o->store || o->new_key))
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
	if (strcmp(cmd, "renew") == 0 && !o->local && o->request_out == NULL && e->name != NULL &&
	    agent_ctl(cmd, e, o, &rc) == 0)
		return rc;
	if ((rc = agent_offline_begin(cmd, o)) != EXIT_OK)
		return rc;
	/* Ctrl-C undoes what a request started (certreq.c); the waits of
	 * every command that speaks CMP are shown on a terminal. */
	if (speaks_cmp(cmd))
		agent_progress_start(progress_show);
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
	if (strcmp(cmd, "ccr") == 0)
		return agent_ccr(e, o);
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
static agent_rc check_config(const char *config, int keys, int names)
{
	conf_diag d = { 0 };
	conf_file *cf = NULL;
	size_t i;
	agent_rc rc = EXIT_OK;

	if (keys) {
		print_keys();
		return EXIT_OK;
	}
	/* --names, for the shell's completion: no PIN file need be readable */
	if (conf_file_load(config, names ? 0 : CONF_CHECK_ACCESS, &cf, &d) < 0 ||
	    (!names && conf_file_check_required(cf, NULL, &d) < 0)) {
		print_diag(&d);
		fprintf(stderr, "p11enroll: %d error(s) in %s\n", d.errors,
			cf != NULL		  ? conf_file_path(cf)
			: config != NULL	  ? config
			: getenv("P11ENROLL_CONF") ? getenv("P11ENROLL_CONF")
						  : conf_default_path());
		rc = EXIT_USAGE;
	} else if (names) {
		for (i = 0; i < conf_file_count(cf); i++)
			printf("%s\n", conf_file_name(cf, i));
	} else if (log_verbosity() >= 0) {
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

/* What getopt refused (opterr 0: it says nothing), as the message's
 * start; c is its '?' or ':'. */
static void refused_option(int c, char **argv, char *out, size_t len)
{
	const char *arg = argv[optind - 1];

	if (c == ':')
		snprintf(out, len, "option '%s' needs an argument",
			 optopt < 256 ? (char[]){ '-', (char)optopt, '\0' } : arg);
	else if (optopt == 0)
		snprintf(out, len, "unknown option '%.*s'", (int)strcspn(arg, "="), arg);
	else if (optopt < 256)
		snprintf(out, len, "unknown option '-%c'", optopt);
	else
		snprintf(out, len, "option '%.*s' takes no argument", (int)strcspn(arg, "="), arg);
}

/* The command option whose getopt value is val (agent_cli_opts), or NULL. */
static const char *cli_opt_name(int val)
{
	size_t i;

	for (i = 0; i < agent_n_cli_opts; i++)
		if (agent_cli_opts[i].val == val)
			return agent_cli_opts[i].name;
	return NULL;
}

/* The first option given that cmd does not take, as "--flag" into out;
 * -1 when there is none.  seen: the command options given (OPT_* values,
 * n of them); o: the settings given. */
static int not_taken(const agent_cli_cmd *cmd, const int *seen, size_t n, const int *set_opt,
		     const agent_cmd_opts *o, char *out, size_t len)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!agent_cli_cmd_takes(cmd, seen[i])) {
			snprintf(out, len, "--%s", cli_opt_name(seen[i]));
			return 0;
		}
	for (i = 0; i < (size_t)o->nset; i++)
		if (!agent_cli_cmd_takes_setting(cmd, (size_t)(set_opt[i] - OPT_SETTING) / 2)) {
			snprintf(out, len, "--%s", o->set_flag[i]);
			return 0;
		}
	return -1;
}

static agent_rc p11enroll_main(int argc, char **argv)
{
	conf_enrollment e;
	agent_cmd_opts o;
	const agent_cli_cmd *command = NULL;
	const char *config = NULL, *cmd, *name = NULL;
	int c, verbosity = 0, quiet = 0, idx, use_syslog = 0, keys = 0, names = 0, user = 0, all = 0;
	int help = 0, complete = 0, seen[64], set_opt[AGENT_CLI_SETTINGS_MAX];
	int load_flags;
	size_t n_seen = 0, i;
	char err[512], refused[200] = "", flag[80];
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
	/* every option is read before any is refused: the refusal names the
	 * command, which may come after it */
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":c:vqhV", options, &idx)) != -1) {
		if (c == '?' || c == ':') {
			if (refused[0] == '\0')
				refused_option(c, argv, refused, sizeof(refused));
			continue;
		}
		if (c >= OPT_SETTING && (size_t)(c - OPT_SETTING) / 2 < conf_n_settings) {
			if (o.nset == AGENT_CLI_SETTINGS_MAX) {
				log_msg(LOG_ERR, "more than %d settings on the command line",
					AGENT_CLI_SETTINGS_MAX);
				conf_enrollment_clear(&e);
				return EXIT_USAGE;
			}
			/* set once the command is known to take it; kept for the
			 * processes a station starts */
			set_opt[o.nset] = c;
			o.set_flag[o.nset] = options[idx].name;
			o.set_arg[o.nset++] = options[idx].has_arg != no_argument ? optarg : NULL;
			continue;
		}
		if (cli_opt_name(c) != NULL && n_seen < sizeof(seen) / sizeof(seen[0]))
			seen[n_seen++] = c;
		switch (c) {
		case 'c': config = optarg; break;
		case OPT_USER: user = 1; break;
		case 'v': verbosity++; break;
		case 'q': quiet = 1; break;
		case 'h': help = 1; break;
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
		case OPT_NEW_KEY: o.new_key = 1; break;
		case OPT_ABANDON: o.abandon = 1; break;
		case OPT_RECOVER: o.recover = 1; break;
		case OPT_JSON: o.json = 1; break;
		case OPT_ALL: all = 1; break;
		case OPT_LOCAL: o.local = 1; break;
		case OPT_KEYS: keys = 1; break;
		case OPT_NAMES: names = 1; break;
		case OPT_SYSLOG: use_syslog = 1; break;
		case OPT_BATCH: o.batch = optarg; break;
		case OPT_PROMPT: o.prompt = 1; break;
		case OPT_REQUEST_OUT: o.request_out = optarg; break;
		case OPT_RESPONSE_IN: o.response_in = optarg; break;
		case OPT_COMPLETE: complete = 1; break;
		default: break;
		}
	}
	log_init(NULL, quiet ? -1 : verbosity, use_syslog);
	cmd = optind < argc ? argv[optind++] : NULL;
	if (cmd != NULL && (command = agent_cli_cmd_find(cmd)) == NULL) {
		log_msg(LOG_ERR, "unknown command '%s'; see 'p11enroll help'", cmd);
		conf_enrollment_clear(&e);
		return EXIT_USAGE;
	}
	if (refused[0] != '\0') {
		log_msg(LOG_ERR, "%s; see 'p11enroll help%s%s'", refused,
			command != NULL ? " " : "", command != NULL ? command->name : "");
		conf_enrollment_clear(&e);
		return EXIT_USAGE;
	}
	if (help) {
		if (command != NULL && strcmp(command->name, "help") != 0)
			agent_help_command(stdout, command);
		else
			agent_help_overview(stdout);
		conf_enrollment_clear(&e);
		return EXIT_OK;
	}
	if (command == NULL) {
		log_msg(LOG_ERR, "no command given; see 'p11enroll help'");
		conf_enrollment_clear(&e);
		return EXIT_USAGE;
	}
	if (not_taken(command, seen, n_seen, set_opt, &o, flag, sizeof(flag)) == 0) {
		log_msg(LOG_ERR, "%s does not apply to %s; see 'p11enroll help %s'", flag,
			command->name, command->name);
		conf_enrollment_clear(&e);
		return EXIT_USAGE;
	}
	for (i = 0; i < (size_t)o.nset; i++)
		if (set_setting(&e, set_opt[i], o.set_arg[i]) < 0) {
			conf_enrollment_clear(&e);
			return EXIT_USAGE;
		}
	if (user && agent_user_init(err, sizeof(err)) < 0) {
		log_msg(LOG_ERR, "%s", err);
		conf_enrollment_clear(&e);
		return EXIT_USAGE;
	}
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
		log_msg(LOG_ERR, "unexpected argument '%s'; see 'p11enroll help %s'", argv[optind],
			cmd);
		conf_enrollment_clear(&e);
		return EXIT_USAGE;
	}
	if (strcmp(cmd, "help") == 0) {
		const agent_cli_cmd *about = name != NULL ? agent_cli_cmd_find(name) : NULL;

		conf_enrollment_clear(&e);
		if (name != NULL && about == NULL) {
			log_msg(LOG_ERR, "unknown command '%s'; see 'p11enroll help'", name);
			return EXIT_USAGE;
		}
		if (complete)
			agent_help_complete(stdout, about);
		else if (about != NULL)
			agent_help_command(stdout, about);
		else
			agent_help_overview(stdout);
		return EXIT_OK;
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
		rc = strcmp(cmd, "agent") == 0 ? agent_daemon(config, &e)
					       : check_config(config, keys, names);
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
	progress_show = !quiet && !use_syslog;
	rc = run(cmd, &e, &o);
	agent_progress_stop();
	agent_offline_end(rc);
	/* Whatever failed after a signal failed because of it (a PIN prompt
	 * cut short, a transfer stopped); a run that finished all the same
	 * keeps its 0. */
	if (rc != EXIT_OK && agent_interrupted() != 0)
		rc = EXIT_INTERRUPTED;
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
