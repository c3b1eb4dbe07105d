/* The agent's step and hook processes (agent/child.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "agent/child.h"
#include "agent/daemon.h"

/* Where the child finds its record's descriptor. */
#define RESULT_FD 3

/* The token URI pinned to the serial seen before, so that another token
 * inserted in its place is never logged in to (NULL: not pinned).  The
 * serial is percent-encoded: a token chooses it, and ";1?module-path=/x"
 * pasted raw would name a module. */
static char *pinned_uri(const track *t)
{
	char *pinned = NULL, *out;

	if (t->e.token == NULL || t->token_serial[0] == '\0')
		return NULL;
	if (tok_uri_pin_serial(t->e.token, t->token_serial, &pinned) != TOK_OK) {
		/* The child then takes any token the URI selects. */
		log_msg(LOG_WARNING,
			"%s: the token URI cannot be pinned to the token's serial (does its path "
			"have an empty attribute, \";;\"?): another token in its place would be used",
			t->name);
		return NULL;
	}
	if (pinned == NULL)
		return NULL;
	/* child_launch() frees with free(). */
	out = strdup(pinned);
	OPENSSL_free(pinned);
	return out;
}

static void close_pair(int p[2])
{
	if (p[0] >= 0)
		close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
}

/* In the child: the pipes become 1, 2 and RESULT_FD, then the step runs. */
static void exec_step(const child_cmd *cmd, const char *const *argv, int out, int err, int res)
{
	char env[64];

	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	/* 1 and 2 first: out or err may be RESULT_FD; a dup2 of res onto
	 * itself would keep its close-on-exec flag. */
	if (dup2(out, 1) < 0 || dup2(err, 2) < 0)
		P11E_EXIT(EXIT_INTERNAL);
	if (res == RESULT_FD) {
		if (fcntl(res, F_SETFD, 0) < 0)
			P11E_EXIT(EXIT_INTERNAL);
	} else if (dup2(res, RESULT_FD) < 0) {
		P11E_EXIT(EXIT_INTERNAL);
	}
	snprintf(env, sizeof(env), "%s=%d", AGENT_RESULT_FD_ENV, RESULT_FD);
	if (putenv(env) != 0)
		P11E_EXIT(EXIT_INTERNAL);
	execv(cmd->self, (char *const *)argv);
	P11E_EXIT(EXIT_INTERNAL);
}

int child_launch(const child_cmd *cmd, track *t, track_op op)
{
	const char *argv[16];
	char *uri = pinned_uri(t);
	int out[2] = { -1, -1 }, err[2] = { -1, -1 }, res[2] = { -1, -1 }, i = 0;
	pid_t pid;

	argv[i++] = cmd->self;
	argv[i++] = "--local";
	argv[i++] = "-c";
	argv[i++] = cmd->config;
	if (cmd->state_dir != NULL) {
		argv[i++] = "--state-dir";
		argv[i++] = cmd->state_dir;
	}
	if (uri != NULL) {
		argv[i++] = "--token";
		argv[i++] = uri;
		log_msg(LOG_DEBUG, "%s: the token URI pinned to its serial: %s", t->name, uri);
	}
	argv[i++] = op == OP_RECOVER || op == OP_CHECK ? "check"
		    : op == OP_RENEW			 ? "renew"
		    : op == OP_ENROLL			 ? "enroll"
							 : "resume";
	argv[i++] = t->name;
	if (op == OP_RECOVER)
		argv[i++] = "--recover";
	argv[i] = NULL;
	if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 || pipe2(res, O_CLOEXEC) < 0 ||
	    (pid = fork()) < 0) {
		log_msg(LOG_ERR, "%s: cannot start a child process: %s", t->name, strerror(errno));
		close_pair(out);
		close_pair(err);
		close_pair(res);
		free(uri);
		return -1;
	}
	if (pid == 0)
		exec_step(cmd, argv, out[1], err[1], res[1]);
	free(uri);
	close(out[1]);
	close(err[1]);
	close(res[1]);
	(void)fcntl(out[0], F_SETFL, O_NONBLOCK);
	(void)fcntl(err[0], F_SETFL, O_NONBLOCK);
	(void)fcntl(res[0], F_SETFL, O_NONBLOCK);
	t->pid = pid;
	t->op = op;
	t->out_fd = out[0];
	t->err_fd = err[0];
	t->res_fd = res[0];
	t->outlen = t->errlen = 0;
	return 0;
}

/* The child's stderr, forwarded line by line with the enrollment's name;
 * for people only: no decision reads it. */
void child_drain_err(track *t, int final)
{
	char *nl;
	ssize_t n;

	while ((n = read(t->err_fd, t->errbuf + t->errlen, sizeof(t->errbuf) - 1 - t->errlen)) > 0) {
		t->errlen += (size_t)n;
		t->errbuf[t->errlen] = '\0';
		while ((nl = strchr(t->errbuf, '\n')) != NULL) {
			const char *line = t->errbuf;

			*nl = '\0';
			/* The child's lines carry "p11enroll: "; the agent's own
			 * prefix and the enrollment's name replace it, and the
			 * level travels in the agent's own prefix. */
			if (strncmp(line, "p11enroll: ", 11) == 0)
				line += 11;
			if (strncmp(line, "error: ", 7) == 0)
				log_msg(LOG_ERR, "%s: %s", t->name, line + 7);
			else if (strncmp(line, "warning: ", 9) == 0)
				log_msg(LOG_WARNING, "%s: %s", t->name, line + 9);
			else
				log_msg(LOG_INFO, "%s: %s", t->name, line);
			t->errlen = strlen(nl + 1);
			memmove(t->errbuf, nl + 1, t->errlen + 1);
		}
		if (t->errlen == sizeof(t->errbuf) - 1) {
			log_msg(LOG_INFO, "%s: %s", t->name, t->errbuf);
			t->errlen = 0;
		}
	}
	if (final && t->errlen > 0) {
		t->errbuf[t->errlen] = '\0';
		log_msg(LOG_INFO, "%s: %s", t->name, t->errbuf);
		t->errlen = 0;
	}
}

void child_drain_out(track *t)
{
	ssize_t n;

	while (t->outlen < sizeof(t->out) - 1 &&
	       (n = read(t->out_fd, t->out + t->outlen, sizeof(t->out) - 1 - t->outlen)) > 0)
		t->outlen += (size_t)n;
	t->out[t->outlen] = '\0';
}

int child_finish(track *t, agent_result *res, char *why, size_t whylen)
{
	char buf[AGENT_RESULT_MAX + 1];
	size_t len = 0;
	ssize_t n;
	int rc;

	child_drain_out(t);
	child_drain_err(t, 1);
	/* The child has ended: what it wrote is all in the pipe. */
	while (len < sizeof(buf) && ((n = read(t->res_fd, buf + len, sizeof(buf) - len)) > 0 ||
				     (n < 0 && errno == EINTR)))
		if (n > 0)
			len += (size_t)n;
	close(t->out_fd);
	close(t->err_fd);
	close(t->res_fd);
	t->out_fd = t->err_fd = t->res_fd = -1;
	t->pid = 0;
	t->op = OP_NONE;
	if (len == 0) {
		snprintf(why, whylen, "the step wrote no record");
		agent_result_init(res);
		return -1;
	}
	if ((rc = agent_result_parse(buf, len, res, why, whylen)) < 0)
		log_msg(LOG_ERR, "%s: the step's result record is invalid: %s", t->name, why);
	return rc;
}

/* NAME=value for a hook: the values come from the configuration, the
 * token and the CA, and a hook may print or log them. */
static void env_var(char *out, size_t len, const char *name, const char *value)
{
	char safe[1024];

	snprintf(out, len, "%s=%s", name,
		 agent_escape(value, safe, len - strlen(name) - 1 < sizeof(safe) ?
						   len - strlen(name) - 1 : sizeof(safe)));
}

void child_hook(const track *t, int ok)
{
	const char *cmd = ok ? t->e.hook_success : t->e.hook_failure;
	char vars[12][1100], err[512];
	const char *env[13];
	int i = 0, k;
	pid_t pid;

	if (cmd == NULL)
		return;
	snprintf(vars[i++], sizeof(vars[0]), "P11ENROLL_EVENT=%s", ok ? "renewed" : "failed");
	env_var(vars[i++], sizeof(vars[0]), "P11ENROLL_NAME", t->name);
	env_var(vars[i++], sizeof(vars[0]), "P11ENROLL_TOKEN_URI", t->e.token);
	env_var(vars[i++], sizeof(vars[0]), "P11ENROLL_TOKEN_SERIAL", t->token_serial);
	env_var(vars[i++], sizeof(vars[0]), "P11ENROLL_CERT_SERIAL",
		t->have_cert ? t->cert_serial : "");
	snprintf(vars[i++], sizeof(vars[0]), "P11ENROLL_NOT_AFTER=%lld",
		 t->have_cert ? t->not_after : 0);
	env_var(vars[i++], sizeof(vars[0]), "P11ENROLL_CERT_FILE", t->e.cert_out);
	env_var(vars[i++], sizeof(vars[0]), "P11ENROLL_CHAIN_FILE", t->e.chain_out);
	snprintf(vars[i++], sizeof(vars[0]), "P11ENROLL_EXIT=%d", t->exit_code);
	env_var(vars[i++], sizeof(vars[0]), "P11ENROLL_ERROR", ok ? "" : t->last_error);
	snprintf(vars[i++], sizeof(vars[0]), "P11ENROLL_FAILURES=%d", t->failures);
	for (k = 0; k < i; k++)
		env[k] = vars[k];
	env[i] = NULL;
	/* A process of its own waits for the hook, so that a slow hook never
	 * holds the agent's loop; the loop reaps it like any child. */
	if ((pid = fork()) < 0) {
		log_msg(LOG_WARNING, "%s: cannot start the %s hook: %s", t->name,
			ok ? "success" : "failure", strerror(errno));
		return;
	}
	if (pid > 0)
		return;
	signal(SIGCHLD, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	if (hook_run(cmd, env, t->e.hook_timeout > 0 ? t->e.hook_timeout : 30, NULL, err,
		     sizeof(err)) < 0)
		log_msg(LOG_WARNING, "%s: the %s hook failed: %s", t->name, ok ? "success" : "failure",
			err);
	else
		log_msg(LOG_INFO, "%s: the %s hook ran", t->name, ok ? "success" : "failure");
	P11E_EXIT(0);
}
