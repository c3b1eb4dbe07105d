/*
 * The command line's tables (help.c): the options of single commands, and
 * per command its synopsis, what it does, which of those options it takes
 * and whether the settings flags (agent/settings.h) apply to it.  main.c
 * parses and refuses by them; `p11enroll help` and the shell completion
 * (`p11enroll help --complete`) print from them, so that neither can list
 * what the parser refuses.
 */
#ifndef P11ENROLL_HELP_H
#define P11ENROLL_HELP_H

#include <stddef.h>
#include <stdio.h>

/* getopt values of the command options (settings come after OPT_SETTING). */
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
	OPT_NAMES,
	OPT_SYSLOG,
	OPT_BATCH,
	OPT_PROMPT,
	OPT_REPLACED,
	OPT_USER,
	OPT_COMPLETE,
	OPT_ALL,
	OPT_REQUEST_OUT,
	OPT_RESPONSE_IN,
	OPT_NEW_KEY,
	/* setting i: OPT_SETTING + 2 * i, its --no- form + 1 */
	OPT_SETTING = 1024,
};

/* A command option: help NULL for a hidden one (help --complete). */
typedef struct {
	const char *name;
	int has_arg, val;
	const char *arg, *help;
} agent_cli_opt;

extern const agent_cli_opt agent_cli_opts[];
extern const size_t agent_n_cli_opts;

/* Which settings flags a command takes. */
enum agent_cli_settings {
	CLI_SETTINGS_NONE,
	CLI_SETTINGS_STATE_DIR, /* --state-dir alone: where the agent's socket is */
	CLI_SETTINGS_ALL,	/* it loads an enrollment, which they complete */
};

typedef struct {
	const char *name;
	const char *args;    /* after the name in the synopsis */
	const char *summary; /* the overview's line */
	const char *about;   /* help COMMAND's paragraph */
	const char *opts;    /* the command options it takes, " "-separated */
	enum agent_cli_settings settings;
} agent_cli_cmd;

extern const agent_cli_cmd agent_cli_cmds[];
extern const size_t agent_n_cli_cmds;

/* The command named name, or NULL. */
const agent_cli_cmd *agent_cli_cmd_find(const char *name);
/* Whether c takes the command option opt (an OPT_* value, not a setting). */
int agent_cli_cmd_takes(const agent_cli_cmd *c, int opt);
/* Whether c takes the flag of setting i (agent/settings.h's row). */
int agent_cli_cmd_takes_setting(const agent_cli_cmd *c, size_t i);
/* The option named name (without "--"), or NULL. */
const agent_cli_opt *agent_cli_opt_find(const char *name);

/* p11enroll --help, help: the commands and the options of every command. */
void agent_help_overview(FILE *f);
/* p11enroll help COMMAND, COMMAND --help. */
void agent_help_command(FILE *f, const agent_cli_cmd *c);
/* help --complete [COMMAND]: the commands, or the options COMMAND takes,
 * one a line, each option followed by its argument's name when it has one
 * (FILE, DIR ... for the completion to choose files). */
void agent_help_complete(FILE *f, const agent_cli_cmd *c);

#endif
