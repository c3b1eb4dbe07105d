/* One logging function for the program: stderr, or syslog for a daemon. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

#include "agent/agent.h"

static const char *prog = "p11enroll";
static int verbosity; /* -1: errors, 0: and notices, 1: and info, 2: and debug */
static int to_syslog;
/* The last error logged (escaped): the step's result record carries it. */
static char last_error[AGENT_ERROR_MAX];
/* The enrollment a command for several works on: its lines carry its name. */
static const char *subject;

void log_init(const char *progname, int v, int use_syslog)
{
	if (progname != NULL)
		prog = progname;
	verbosity = v;
	to_syslog = use_syslog;
	if (to_syslog)
		openlog(prog, LOG_PID, LOG_DAEMON);
}

const char *log_last_error(void)
{
	return last_error;
}

void log_clear_last_error(void)
{
	last_error[0] = '\0';
}

void log_set_subject(const char *name)
{
	subject = name;
	if (name != NULL)
		last_error[0] = '\0';
}

int log_verbosity(void)
{
	return verbosity;
}

static int wanted(int level)
{
	if (level <= LOG_ERR)
		return 1;
	if (level <= LOG_NOTICE)
		return verbosity >= 0;
	if (level == LOG_INFO)
		return verbosity >= 1;
	return verbosity >= 2;
}

void log_msg(int level, const char *fmt, ...)
{
	char line[2 * AGENT_ERROR_MAX], safe[AGENT_ERROR_MAX];
	va_list ap;
	int n;

	if (!wanted(level))
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof(line))
		agent_mark_cut(line, sizeof(line));
	/* Texts from the CA or the token reach this line: no terminal
	 * escapes (C0, C1), no CR/LF that forges a line, no invalid UTF-8.
	 * Whole up to AGENT_ERROR_MAX: the hint at the end says what to do. */
	agent_escape_bounded(line, safe, sizeof(safe));
	if (level <= LOG_ERR)
		snprintf(last_error, sizeof(last_error), "%s", safe);
	if (to_syslog) {
		syslog(level, "%s%s%s", subject != NULL ? subject : "", subject != NULL ? ": " : "",
		       safe);
		return;
	}
	const char *tag = level <= LOG_ERR ? "error: " : level == LOG_WARNING ? "warning: " :
			  level == LOG_DEBUG ? "debug: " : "";
	char out[sizeof(safe) + 256];

	snprintf(out, sizeof(out), "%s: %s%s%s%s\n", prog, tag, subject != NULL ? subject : "",
		 subject != NULL ? ": " : "", safe);
	agent_progress_print(out);
}

int agent_fail(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	return -1;
}

static int print_err(const char *str, size_t len, void *u)
{
	(void)u;
	/* ERR_print_errors_cb lines end in a newline already. */
	while (len > 0 && (str[len - 1] == '\n' || str[len - 1] == '\0'))
		len--;
	log_msg(LOG_DEBUG, "openssl: %.*s", (int)len, str);
	return 1;
}

void log_openssl_errors(void)
{
	if (wanted(LOG_DEBUG))
		ERR_print_errors_cb(print_err, NULL);
	ERR_clear_error();
}
