/* p11enroll's command line as tables: the help texts, and what each
 * command takes (help.h). */
#include "config.h"

#include <string.h>

#include "agent/agent.h"
#include "agent/help.h"

const agent_cli_opt agent_cli_opts[] = {
	{ "cert", 1, OPT_CERT, "FILE", "the certificate to revoke (PEM) instead of the token's" },
	{ "delete", 0, OPT_DELETE, NULL, "then delete the certificate and its key from the token" },
	{ "replaced", 0, OPT_REPLACED, NULL, "the replaced pair left as \"LABEL (to revoke)\"" },
	{ "ca-certs", 1, OPT_CA_CERTS, "FILE", "write the CA's certificates to FILE" },
	{ "store", 0, OPT_STORE, NULL,
	  "with --ca-certs (or ccr): also store them on the token" },
	{ "root-update", 0, OPT_ROOT_UPDATE, NULL, "ask for a successor of the trusted root" },
	{ "out", 1, OPT_OUT, "FILE",
	  "with --root-update: write the verified new root (ccr: the cross-certificate) to FILE" },
	{ "template", 0, OPT_TEMPLATE, NULL, "show the CA's certificate request template" },
	{ "crls", 1, OPT_CRLS, "FILE", "write the CA's current CRLs to FILE" },
	{ "abandon", 0, OPT_ABANDON, NULL, "tell the CA the request is given up" },
	{ "recover", 0, OPT_RECOVER, NULL, "log in and clean up after an interrupted run" },
	{ "json", 0, OPT_JSON, NULL, "as a JSON document (p11enroll-formats(5))" },
	{ "all", 0, OPT_ALL, NULL, "every enrollment from the state files, no agent needed" },
	{ "local", 0, OPT_LOCAL, NULL, "do it in this process even if an agent runs" },
	{ "keys", 0, OPT_KEYS, NULL, "list every setting (key, flag, scope, default)" },
	{ "names", 0, OPT_NAMES, NULL, "list the file's enrollments, one a line" },
	{ "batch", 1, OPT_BATCH, "FILE", "every row of a CSV file, in one process" },
	{ "prompt", 0, OPT_PROMPT, NULL, "ask for each card's subject and SANs on stdin" },
	{ "request-out", 1, OPT_REQUEST_OUT, "FILE",
	  "offline: write the CMP message (DER) to FILE for the CA instead of sending it" },
	{ "response-in", 1, OPT_RESPONSE_IN, "FILE",
	  "offline: the CA's answer (DER) to the message --request-out wrote" },
	{ "new-key", 0, OPT_NEW_KEY, NULL,
	  "ccr: generate a new CA key pair on the token (key_type) and cross-certify it" },
	{ "complete", 0, OPT_COMPLETE, NULL, NULL },
};
const size_t agent_n_cli_opts = sizeof(agent_cli_opts) / sizeof(agent_cli_opts[0]);

const agent_cli_cmd agent_cli_cmds[] = {
	{ "enroll", "[--batch FILE | --request-out FILE] [NAME]",
	  "generate a key pair on the token, enroll it with a CMP ir and store the certificate "
	  "next to the key",
	  "Generates a key pair on the token, asks the CA for its certificate with an "
	  "initialization request (ir) and stores the certificate on the token under the "
	  "enrollment's label, next to its key. A valid certificate already under the label is "
	  "replaced only with --replace. With --batch, enrolls every row of a CSV file in one "
	  "process. With --request-out, the request is written to a file for the CA instead "
	  "(offline; finish with resume --response-in).",
	  "batch request-out", CLI_SETTINGS_ALL },
	{ "renew", "[--local] [--request-out FILE] [NAME]",
	  "new key pair on the token, certified with a kur signed by the old key; the old pair is "
	  "deleted (or kept) after success",
	  "Generates a new key pair, certified with a key update request (kur) that the current "
	  "key signs; after success the old pair is deleted (or kept as \"LABEL (old)\" with "
	  "--keep-old). With an agent running, the renewal goes through the agent unless --local "
	  "is given. With --request-out, the request is written to a file for the CA instead, "
	  "in this process (offline; finish with resume --response-in).",
	  "local request-out", CLI_SETTINGS_ALL },
	{ "cr", "[--request-out FILE] [NAME]",
	  "new key pair, certified with a cr signed by a signer",
	  "Generates a new key pair, certified with a certification request (cr) protected by "
	  "the signer's certificate and key (--signer, or --protection-cert and "
	  "--protection-key). --request-out: offline, as for enroll.",
	  "request-out", CLI_SETTINGS_ALL },
	{ "p10cr", "[--request-out FILE] [NAME]", "new key pair, certified with a PKCS#10 request",
	  "Generates a new key pair, certified with a PKCS#10 certification request (p10cr) "
	  "signed by the new key and protected like an ir (PBM or a signer). --request-out: "
	  "offline, as for enroll.",
	  "request-out", CLI_SETTINGS_ALL },
	{ "revoke",
	  "[--cert FILE | --replaced] [--delete] [--request-out FILE | --response-in FILE | "
	  "--abandon] [NAME]",
	  "revoke the enrollment's certificate (rr)",
	  "Asks the CA to revoke the enrollment's certificate (rr), with the reason --reason "
	  "gives; --cert revokes a certificate from a file instead, --replaced the pair a "
	  "replacement left as \"LABEL (to revoke)\". With --delete, the certificate and its key "
	  "are then deleted from the token. With --request-out, the rr is written to a file for "
	  "the CA (offline); --response-in then reads the CA's answer, --abandon forgets it.",
	  "cert delete replaced request-out response-in abandon", CLI_SETTINGS_ALL },
	{ "genm", "[--ca-certs FILE [--store]] [--root-update [--out FILE]] [--template] "
		  "[--crls FILE] [--request-out FILE | --response-in FILE | --abandon] [NAME]",
	  "ask the CA: --ca-certs FILE, --root-update, --template, --crls FILE",
	  "Asks the CA with a general message (genm) for its certificates, a successor of the "
	  "trusted root, its certificate request template or its current CRLs, verifies what "
	  "it answers and prints or writes it. With --request-out, the genm is written to a "
	  "file for the CA (offline); --response-in then reads the CA's answer, --abandon "
	  "forgets it.",
	  "ca-certs store root-update out template crls request-out response-in abandon",
	  CLI_SETTINGS_ALL },
	{ "ccr", "[--new-key] [--out FILE] [--store] [NAME]",
	  "cross-certification: another CA certifies the key of the CA on the token",
	  "Asks the CA of the server (another CA) to certify the key pair of the enrollment, a "
	  "CA's key on the token with its own certificate under the label (or key_id's; with "
	  "--new-key a pair generated for it under the label, which must be free), in a "
	  "cross-certification request (ccr) with basicConstraints CA:TRUE and keyUsage "
	  "keyCertSign and cRLSign, its POP signed by the token key and the message protected "
	  "like a cr (signer) or by PBM. The answer (ccp) is checked like an ip and confirmed. "
	  "The cross-certificate is written to --out and, with --store (always with "
	  "--new-key), stored on the token as an authority certificate; the CA's own "
	  "certificate stays. A CA answering 'waiting' is polled within the timeouts; a ccr "
	  "is not resumed later.",
	  "new-key out store", CLI_SETTINGS_ALL },
	{ "resume", "[--abandon | --response-in FILE [--request-out FILE]] [NAME]",
	  "finish a request the CA answered 'waiting' (polling); with --abandon, give it up and "
	  "delete its new key",
	  "Finishes a request the CA answered \"waiting\" by polling it, and stores the "
	  "certificate. With --abandon, tells the CA the request is given up and deletes the "
	  "key generated for it. A request written with --request-out is finished with "
	  "--response-in, the CA's answer; the certConf for the CA goes to --request-out.",
	  "abandon response-in request-out", CLI_SETTINGS_ALL },
	{ "list", "[--json] [NAME]", "show the keys and certificates on the token",
	  "Shows the keys and certificates on the enrollment's token: label, id, type, access "
	  "and, for certificates, subject, issuer and expiry. Without a PIN, the public objects "
	  "only, and no login is tried.",
	  "json", CLI_SETTINGS_ALL },
	{ "tokens", "[--json]",
	  "every token of the module (or of p11-kit's modules) with its pkcs11: URI",
	  "Lists every initialized token of --module (or of every module p11-kit knows) with "
	  "its pkcs11: URI (RFC 7512), for the token setting.",
	  "json", CLI_SETTINGS_ALL },
	{ "check", "[--recover] [--json] NAME [NAME...]",
	  "the enrollment's token and certificate, as key=value lines; --recover: finish an "
	  "interrupted run first",
	  "Prints the enrollment's token and certificate as key=value lines (token, serial, "
	  "notBefore, notAfter, pending request); for several names, each after name=NAME, "
	  "with the token opened once. With --recover, logs in and finishes or undoes what an "
	  "interrupted run left on the token first.",
	  "recover json", CLI_SETTINGS_ALL },
	{ "check-config", "[--keys | --names]",
	  "check the whole configuration file and say what is wrong; --keys: list every setting",
	  "Checks the whole configuration file as every command and the agent do, and reports "
	  "every problem at once. --keys lists every setting of p11enroll.conf(5) instead, "
	  "--names the file's enrollments.",
	  "keys names", CLI_SETTINGS_NONE },
	{ "agent", "", "track every enrollment and renew before expiry",
	  "Runs the agent: tracks every enrollment of the configuration file, renews each "
	  "certificate before it expires, retries failures with a backoff and answers status, "
	  "reload, clear and renew on its control socket. See p11enroll-agent(8).",
	  "", CLI_SETTINGS_STATE_DIR },
	{ "status", "[--json] [--all] [NAME]",
	  "ask the running agent (--json: as JSON); --all: from the state files, no agent",
	  "Asks the running agent what it tracks: each enrollment's state, certificate expiry, "
	  "next step and last error. With --all, reads the configuration and the agent's state "
	  "files instead, without an agent, token or PIN.",
	  "json all", CLI_SETTINGS_STATE_DIR },
	{ "list-tracked", "[--json] [NAME]", "the same as status --all",
	  "Shows each enrollment from the configuration and the agent's state files: subject, "
	  "CA, token, certificate serial, notAfter, state and next attempt, without an agent.",
	  "json", CLI_SETTINGS_STATE_DIR },
	{ "reload", "[NAME]", "make the running agent read the configuration again",
	  "Makes the running agent read the configuration file again; a file with errors is "
	  "refused and the agent keeps the one it has.",
	  "", CLI_SETTINGS_STATE_DIR },
	{ "clear", "NAME", "let the agent try a stopped or PIN-latched enrollment",
	  "Lets the running agent try an enrollment it stopped, or whose PIN the token "
	  "rejected, again now.",
	  "", CLI_SETTINGS_STATE_DIR },
	{ "station", "[--prompt] [NAME]", "badge station: enroll each card as it is inserted",
	  "Badge station: enrolls each card as it is inserted, for the next row of the --queue "
	  "file or, with --prompt, the subject typed for it, until interrupted.",
	  "prompt", CLI_SETTINGS_ALL },
	{ "help", "[COMMAND]", "this overview, or a command's synopsis, options and settings",
	  "Prints the overview of the commands, or COMMAND's synopsis, what it does, its "
	  "options and the settings flags it takes; `p11enroll COMMAND --help` does the same.",
	  "complete", CLI_SETTINGS_NONE },
};
const size_t agent_n_cli_cmds = sizeof(agent_cli_cmds) / sizeof(agent_cli_cmds[0]);

const agent_cli_cmd *agent_cli_cmd_find(const char *name)
{
	size_t i;

	for (i = 0; i < agent_n_cli_cmds; i++)
		if (strcmp(agent_cli_cmds[i].name, name) == 0)
			return &agent_cli_cmds[i];
	return NULL;
}

const agent_cli_opt *agent_cli_opt_find(const char *name)
{
	size_t i;

	for (i = 0; i < agent_n_cli_opts; i++)
		if (strcmp(agent_cli_opts[i].name, name) == 0)
			return &agent_cli_opts[i];
	return NULL;
}

/* Whether the " "-separated list has word. */
static int has_word(const char *list, const char *word)
{
	size_t n = strlen(word);
	const char *p = list;

	while (*p != '\0') {
		size_t len = strcspn(p, " ");

		if (len == n && strncmp(p, word, n) == 0)
			return 1;
		p += len;
		p += strspn(p, " ");
	}
	return 0;
}

int agent_cli_cmd_takes(const agent_cli_cmd *c, int opt)
{
	size_t i;

	for (i = 0; i < agent_n_cli_opts; i++)
		if (agent_cli_opts[i].val == opt)
			return has_word(c->opts, agent_cli_opts[i].name);
	return 0;
}

int agent_cli_cmd_takes_setting(const agent_cli_cmd *c, size_t i)
{
	if (i >= conf_n_settings || conf_settings[i].flag == NULL)
		return 0;
	if (c->settings == CLI_SETTINGS_ALL)
		return 1;
	return c->settings == CLI_SETTINGS_STATE_DIR &&
	       strcmp(conf_settings[i].key, "state_dir") == 0;
}

/* text from column indent, wrapped before column 80; first: the column
 * the first line's text starts after (its left part printed). */
static void wrap(FILE *f, int first, int indent, const char *text)
{
	const char *p = text;
	int col = first;

	while (*p != '\0') {
		size_t n = strlen(p), cut = n;

		if (col > indent) {
			fputc('\n', f);
			col = 0;
		}
		fprintf(f, "%*s", indent - col, "");
		if ((int)n > 79 - indent) {
			for (cut = (size_t)(79 - indent); cut > 0 && p[cut] != ' '; cut--)
				;
			if (cut == 0)
				cut = strcspn(p, " ");
		}
		fprintf(f, "%.*s\n", (int)cut, p);
		col = 0;
		p += cut;
		p += strspn(p, " ");
	}
	if (col > 0)
		fputc('\n', f);
}

static const char general[] =
	"  -c, --config FILE      configuration file (default $P11ENROLL_CONF or\n"
	"                         " SYSCONFDIR "/p11enroll/p11enroll.conf)\n"
	"      --user             a user's own agent: the defaults become\n"
	"                         $XDG_CONFIG_HOME/p11enroll/p11enroll.conf, the state\n"
	"                         directory $XDG_STATE_HOME/p11enroll and the control\n"
	"                         socket $XDG_RUNTIME_DIR/p11enroll/control\n"
	"      --syslog           log to syslog instead of stderr\n"
	"  -v, --verbose          more detail (twice: debug)\n"
	"  -q, --quiet            errors only\n"
	"  -h, --help             this help\n"
	"  -V, --version          print the version\n";

/* " " and args without its options ("[-...]" groups) into out: the
 * synopsis's operands, for the overview. */
static void operands(const char *args, char *out, size_t len)
{
	const char *p = args;
	size_t n = 0;
	int depth = 0;

	while (*p != '\0' && n + 2 < len) {
		if (depth > 0 || (p[0] == '[' && p[1] == '-')) {
			depth += *p == '[' ? 1 : *p == ']' ? -1 : 0;
			p++;
			p += depth == 0 ? strspn(p, " ") : 0;
			continue;
		}
		if (n == 0)
			out[n++] = ' ';
		out[n++] = *p++;
	}
	while (n > 0 && out[n - 1] == ' ')
		n--;
	out[n] = '\0';
}

void agent_help_overview(FILE *f)
{
	char left[64];
	size_t i;

	fprintf(f, "usage: p11enroll [options] COMMAND [NAME]\n\nCommands:\n");
	for (i = 0; i < agent_n_cli_cmds; i++) {
		const agent_cli_cmd *c = &agent_cli_cmds[i];

		snprintf(left, sizeof(left), "  %s", c->name);
		operands(c->args, left + strlen(left), sizeof(left) - strlen(left));
		fprintf(f, "%s", left);
		wrap(f, (int)strlen(left), 25, c->summary);
	}
	fprintf(f,
		"\nOptions of every command:\n%s\n"
		"A command's own options and the settings it takes: p11enroll help COMMAND.\n"
		"Every setting: p11enroll check-config --keys and p11enroll.conf(5).\n"
		"PINs and secrets never go on the command line. Exit codes: see p11enroll(1).\n",
		general);
}

void agent_help_command(FILE *f, const agent_cli_cmd *c)
{
	char left[80];
	size_t i;
	int col;

	fprintf(f, "usage: p11enroll [options] %s%s%s\n\n", c->name, c->args[0] != '\0' ? " " : "",
		c->args);
	wrap(f, 0, 0, c->about);
	if (c->opts[0] != '\0') {
		int any = 0;

		for (i = 0; i < agent_n_cli_opts; i++) {
			const agent_cli_opt *o = &agent_cli_opts[i];

			if (o->help == NULL || !agent_cli_cmd_takes(c, o->val))
				continue;
			if (!any++)
				fprintf(f, "\nOptions:\n");
			snprintf(left, sizeof(left), "      --%s%s%s", o->name,
				 o->arg != NULL ? " " : "", o->arg != NULL ? o->arg : "");
			fprintf(f, "%s", left);
			wrap(f, (int)strlen(left), 25, o->help);
		}
	}
	if (c->settings != CLI_SETTINGS_NONE) {
		fprintf(f, "\nSettings (override the enrollment's keys in the configuration file, "
			   "see\np11enroll.conf(5); a yes/no setting also has a --no- form):\n");
		col = 0;
		for (i = 0; i < conf_n_settings; i++) {
			const setting *s = &conf_settings[i];
			int n;

			if (!agent_cli_cmd_takes_setting(c, i))
				continue;
			n = snprintf(left, sizeof(left), "--%s%s%s", s->flag,
				     s->arg != NULL ? " " : "", s->arg != NULL ? s->arg : "");
			if (col > 2 && col + n + 2 > 79) {
				fprintf(f, ",\n");
				col = 0;
			} else if (col > 2) {
				col += fprintf(f, ", ");
			}
			if (col == 0)
				col = fprintf(f, "  ");
			col += fprintf(f, "%s", left);
		}
		fprintf(f, "\n");
	}
	fprintf(f, "\nEvery command also takes -c FILE, --user, --syslog, -v, -q (p11enroll "
		   "help).\n");
}

void agent_help_complete(FILE *f, const agent_cli_cmd *c)
{
	size_t i;

	if (c == NULL) {
		for (i = 0; i < agent_n_cli_cmds; i++)
			fprintf(f, "%s\n", agent_cli_cmds[i].name);
		return;
	}
	for (i = 0; i < agent_n_cli_opts; i++) {
		const agent_cli_opt *o = &agent_cli_opts[i];

		if (o->help != NULL && agent_cli_cmd_takes(c, o->val))
			fprintf(f, "--%s%s%s\n", o->name, o->arg != NULL ? " " : "",
				o->arg != NULL ? o->arg : "");
	}
	for (i = 0; i < conf_n_settings; i++) {
		const setting *s = &conf_settings[i];

		if (!agent_cli_cmd_takes_setting(c, i))
			continue;
		fprintf(f, "--%s%s%s\n", s->flag, s->arg != NULL ? " " : "",
			s->arg != NULL ? s->arg : "");
		if (s->type == SET_BOOL)
			fprintf(f, "--no-%s\n", s->flag);
	}
	fprintf(f, "--config FILE\n--user\n--syslog\n--verbose\n--quiet\n--help\n--version\n");
}
