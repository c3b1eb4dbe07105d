/* The agent's step and hook processes (agent/child.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "agent/child.h"
#include "agent/daemon.h"

/* A field of the token's identity as the URI can pin it: the record has
 * it escaped, and an escaped byte ("\\xNN") names no token. */
static void field(char *out, size_t len, const char *v)
{
	size_t n = strlen(v);

	if (strchr(v, '\\') != NULL || n >= len)
		n = 0;
	memcpy(out, v, n);
	out[n] = '\0';
}

/* The token URI pinned to the token seen before (its label, manufacturer,
 * model and serial: the serial alone repeats, on every tpm2-pkcs11 token
 * of one TPM), so that another token inserted in its place is never logged
 * in to (NULL: not pinned).  The values are percent-encoded: a token
 * chooses them, and ";1?module-path=/x" pasted raw would name a module. */
static char *pinned_uri(const track *t)
{
	char *pinned = NULL, *out;
	tok_info id;

	if (t->e.token == NULL || (t->token_serial[0] == '\0' && t->token_label[0] == '\0'))
		return NULL;
	memset(&id, 0, sizeof(id));
	field(id.label, sizeof(id.label), t->token_label);
	field(id.manufacturer, sizeof(id.manufacturer), t->token_manufacturer);
	field(id.model, sizeof(id.model), t->token_model);
	field(id.serial, sizeof(id.serial), t->token_serial);
	if (tok_uri_pin_identity(t->e.token, &id, &pinned) != TOK_OK) {
		/* The child then takes any token the URI selects. */
		log_msg(LOG_WARNING,
			"%s: the token URI cannot be pinned to the token it selected (does its "
			"path have an empty attribute, \";;\"?): another token in its place would "
			"be used",
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

/* In the child: the pipes become 1, 2 and the record's descriptor, then
 * the step runs.  The agent's handlers are reset first: a signal before
 * the exec must not run them in the child. */
static void exec_step(const child_cmd *cmd, const char *const *argv, int out, int err, int res)
{
	static const int sigs[] = { SIGTERM, SIGHUP, SIGINT, SIGCHLD, 0 };
	agent_exec x = { .self = cmd->self,
			 .res = res,
			 .pin = -1,
			 .out = out,
			 .err = err,
			 .dfl_signals = sigs };

	agent_exec_self(&x, argv);
}

/* The pass's argv: what every step has, then check [--recover] NAME...;
 * malloc'ed (NULL when out of memory). */
static const char **step_argv(const child_cmd *cmd, const char *uri, track *const *members,
			      size_t n, track_op op)
{
	const char **argv = malloc((n + 16) * sizeof(*argv));
	size_t i = 0, k;

	if (argv == NULL)
		return NULL;
	argv[i++] = cmd->self;
	/* the agent's defaults: the state directory a file without state_dir
	 * means */
	if (agent_user_mode())
		argv[i++] = "--user";
	argv[i++] = "-c";
	argv[i++] = cmd->config;
	if (cmd->state_dir != NULL) {
		argv[i++] = "--state-dir";
		argv[i++] = cmd->state_dir;
	}
	if (uri != NULL) {
		argv[i++] = "--token";
		argv[i++] = uri;
	}
	argv[i++] = op == OP_RECOVER || op == OP_CHECK ? "check"
		    : op == OP_RENEW			 ? "renew"
		    : op == OP_ENROLL			 ? "enroll"
							 : "resume";
	if (op == OP_RECOVER)
		argv[i++] = "--recover";
	/* the step is the agent's: it must not ask the agent again */
	if (op == OP_RENEW)
		argv[i++] = "--local";
	/* The agent enrolls where its look saw a certificate only when it
	 * expired (the guard lets that through anyway) or the CA refused the
	 * kur and bootstrap = yes: the configuration's consent to replace
	 * it.  Where the look saw none, a certificate enrolled by hand since
	 * is refused (exit 2), not replaced. */
	if (op == OP_ENROLL && n == 1 && members[0]->have_cert)
		argv[i++] = "--replace";
	/* "--": a name is never taken for an option */
	argv[i++] = "--";
	for (k = 0; k < n; k++)
		argv[i++] = members[k]->name;
	argv[i] = NULL;
	return argv;
}

child_run *child_launch(const child_cmd *cmd, track *const *members, size_t n, track_op op)
{
	track *t = members[0];
	const char **argv = NULL;
	char *uri = pinned_uri(t);
	int out[2] = { -1, -1 }, err[2] = { -1, -1 }, res[2] = { -1, -1 };
	int look = op == OP_RECOVER || op == OP_CHECK;
	child_run *c = calloc(1, sizeof(*c));
	size_t k;
	pid_t pid;

	if (uri != NULL)
		log_msg(LOG_DEBUG, "%s: the token URI pinned to its token: %s", t->name, uri);
	if (c == NULL || (c->members = malloc(n * sizeof(*c->members))) == NULL ||
	    (argv = step_argv(cmd, uri, members, n, op)) == NULL) {
		log_msg(LOG_ERR, "%s: cannot start a child process: out of memory", t->name);
		goto fail;
	}
	/* Nobody reads a look's stdout: /dev/null, so that a pass over
	 * thousands of enrollments never fills a pipe. */
	if ((look ? (out[1] = open("/dev/null", O_WRONLY | O_CLOEXEC)) < 0
		  : pipe2(out, O_CLOEXEC) < 0) ||
	    pipe2(err, O_CLOEXEC) < 0 || pipe2(res, O_CLOEXEC) < 0 || (pid = fork()) < 0) {
		log_msg(LOG_ERR, "%s: cannot start a child process: %s", t->name, strerror(errno));
		goto fail;
	}
	if (pid == 0)
		exec_step(cmd, argv, out[1], err[1], res[1]);
	free(argv);
	free(uri);
	close(out[1]);
	close(err[1]);
	close(res[1]);
	if (out[0] >= 0)
		(void)fcntl(out[0], F_SETFL, O_NONBLOCK);
	(void)fcntl(err[0], F_SETFL, O_NONBLOCK);
	(void)fcntl(res[0], F_SETFL, O_NONBLOCK);
	c->pid = pid;
	c->op = op;
	(void)clock_gettime(CLOCK_MONOTONIC, &c->started);
	c->pass = look;
	c->out_fd = out[0];
	c->err_fd = err[0];
	c->res_fd = res[0];
	c->n = n;
	for (k = 0; k < n; k++) {
		c->members[k] = members[k];
		members[k]->run = c;
		members[k]->op = op;
	}
	if (look)
		log_msg(LOG_INFO, "%s: %s of %zu enrollment(s) on its token (process %ld)", t->name,
			op == OP_RECOVER ? "recovery look" : "look", n, (long)pid);
	return c;
fail:
	close_pair(out);
	close_pair(err);
	close_pair(res);
	free(argv);
	free(uri);
	if (c != NULL)
		free(c->members);
	free(c);
	return NULL;
}

/* The name the agent puts before a step's lines: a pass over several
 * enrollments prefixes its lines with the one it works on itself. */
static const char *line_tag(const child_run *c)
{
	return c->n == 1 ? c->members[0]->name : NULL;
}

static void log_line(const child_run *c, const char *line)
{
	const char *tag = line_tag(c);
	int level = LOG_INFO;

	/* The child's lines carry "p11enroll: "; the agent's own prefix and
	 * the enrollment's name replace it, and the level travels in the
	 * agent's own prefix. */
	if (strncmp(line, "p11enroll: ", 11) == 0)
		line += 11;
	if (strncmp(line, "error: ", 7) == 0)
		level = LOG_ERR, line += 7;
	else if (strncmp(line, "warning: ", 9) == 0)
		level = LOG_WARNING, line += 9;
	log_msg(level, "%s%s%s", tag != NULL ? tag : "", tag != NULL ? ": " : "", line);
}

/* A step's stderr as it came, for the client waiting on it: the
 * messages the command prints when run by hand. */
static void keep_err(child_run *c, const char *p, size_t n)
{
	size_t k = n;
	char *q;

	if (c->pass)
		return;
	if (c->erralllen + k > CHILD_ERR_KEEP)
		k = CHILD_ERR_KEEP - c->erralllen;
	if (k > 0 && (q = realloc(c->errall, c->erralllen + k)) != NULL) {
		memcpy(q + c->erralllen, p, k);
		c->errall = q;
		c->erralllen += k;
	} else {
		k = 0;
	}
	c->errcut += n - k;
}

/* The child's stderr, forwarded line by line; for people only: no
 * decision reads it. */
void child_drain_err(child_run *c, int final)
{
	char *nl;
	ssize_t n;

	while (c->err_fd >= 0 &&
	       (n = read(c->err_fd, c->errbuf + c->errlen, sizeof(c->errbuf) - 1 - c->errlen)) >= 0) {
		if (n == 0) {
			/* the end: no more polling for it */
			close(c->err_fd);
			c->err_fd = -1;
			break;
		}
		keep_err(c, c->errbuf + c->errlen, (size_t)n);
		c->errlen += (size_t)n;
		c->errbuf[c->errlen] = '\0';
		while ((nl = strchr(c->errbuf, '\n')) != NULL) {
			*nl = '\0';
			log_line(c, c->errbuf);
			c->errlen = strlen(nl + 1);
			memmove(c->errbuf, nl + 1, c->errlen + 1);
		}
		if (c->errlen == sizeof(c->errbuf) - 1) {
			/* longer than any line of the program's: logged in
			 * parts, none ending in a part of a character */
			const unsigned char *b = (const unsigned char *)c->errbuf;
			size_t k = c->errlen, p = c->errlen, need;
			unsigned char lead;
			char keep[4];

			while (p > c->errlen - 3 && (b[p - 1] & 0xc0) == 0x80)
				p--;
			lead = b[p - 1];
			need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
			if (need > c->errlen - (p - 1))
				k = p - 1;
			memcpy(keep, c->errbuf + k, c->errlen - k);
			c->errbuf[k] = '\0';
			log_line(c, c->errbuf);
			memcpy(c->errbuf, keep, c->errlen - k);
			c->errlen -= k;
			c->errbuf[c->errlen] = '\0';
		}
	}
	if (final && c->errlen > 0) {
		c->errbuf[c->errlen] = '\0';
		log_line(c, c->errbuf);
		c->errlen = 0;
	}
}

void child_drain_out(child_run *c)
{
	ssize_t n;

	while (c->out_fd >= 0 && c->outlen < sizeof(c->out) - 1 &&
	       (n = read(c->out_fd, c->out + c->outlen, sizeof(c->out) - 1 - c->outlen)) >= 0) {
		if (n == 0) {
			close(c->out_fd);
			c->out_fd = -1;
			break;
		}
		c->outlen += (size_t)n;
	}
	c->out[c->outlen] = '\0';
}

/* What the result pipe holds now, after c->res (at most AGENT_RESULT_MAX +
 * 1 bytes wait there: no record is longer). */
static void read_res(child_run *c)
{
	char buf[AGENT_RESULT_MAX + 1], *p;
	size_t room;
	ssize_t n;

	for (;;) {
		if (c->res_bad) {
			room = sizeof(buf);
		} else if ((room = AGENT_RESULT_MAX + 1 - c->reslen) == 0) {
			return;
		}
		if (c->res_fd < 0)
			return;
		n = read(c->res_fd, buf, room);
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0) {
			close(c->res_fd);
			c->res_fd = -1;
		}
		if (n <= 0)
			return;
		if (c->res_bad)
			continue; /* dropped: the child must not block on a full pipe */
		if ((p = realloc(c->res, c->reslen + (size_t)n)) == NULL) {
			c->res_bad = 1;
			snprintf(c->res_why, sizeof(c->res_why), "out of memory for its records");
			continue;
		}
		c->res = p;
		memcpy(c->res + c->reslen, buf, (size_t)n);
		c->reslen += (size_t)n;
	}
}

void child_drain_res(child_run *c, void (*done)(track *, const agent_result *, void *),
		     void *arg)
{
	agent_result *res;
	size_t used = 0, off = 0;
	track *t;
	int r;

	read_res(c);
	if (!c->pass || c->res_bad || c->reslen == 0)
		return;
	if ((res = malloc(sizeof(*res))) == NULL)
		return; /* read again at the next call */
	while (!c->res_bad &&
	       (r = agent_result_next(c->res + off, c->reslen - off, &used, res, c->res_why,
				      sizeof(c->res_why))) != 0) {
		if (r < 0) {
			c->res_bad = 1;
		} else if (c->done == c->n) {
			c->res_bad = 1;
			snprintf(c->res_why, sizeof(c->res_why), "a record after the last enrollment's");
		} else if (res->name[0] == '\0' ? c->n != 1
						 : strcmp(res->name, c->members[c->done]->name) != 0) {
			c->res_bad = 1;
			snprintf(c->res_why, sizeof(c->res_why),
				 "a record for '%.100s' where '%.100s' was next", res->name,
				 c->members[c->done]->name);
		} else {
			off += used;
			t = c->members[c->done++];
			/* the enrollment is done: its run is over */
			t->run = NULL;
			t->op = OP_NONE;
			done(t, res, arg);
		}
	}
	if (c->res_bad)
		log_msg(LOG_ERR, "%s: the look's result records are invalid: %s",
			c->done < c->n ? c->members[c->done]->name : c->members[0]->name,
			c->res_why);
	if (off > 0) {
		memmove(c->res, c->res + off, c->reslen - off);
		c->reslen -= off;
	}
	free(res);
}

int child_finish(child_run *c, agent_result *res, char *why, size_t whylen)
{
	int rc;

	child_drain_out(c);
	child_drain_err(c, 1);
	/* The child has ended: what it wrote is all in the pipe. */
	read_res(c);
	if (c->reslen == 0) {
		snprintf(why, whylen, "the step wrote no record");
		agent_result_init(res);
		return -1;
	}
	if ((rc = agent_result_parse(c->res, c->reslen, res, why, whylen)) < 0)
		log_msg(LOG_ERR, "%s: the step's result record is invalid: %s", c->members[0]->name,
			why);
	return rc;
}

void child_free(child_run *c)
{
	size_t k;

	if (c == NULL)
		return;
	if (c->out_fd >= 0)
		close(c->out_fd);
	if (c->err_fd >= 0)
		close(c->err_fd);
	if (c->res_fd >= 0)
		close(c->res_fd);
	for (k = 0; k < c->n; k++)
		if (c->members[k]->run == c) {
			c->members[k]->run = NULL;
			c->members[k]->op = OP_NONE;
		}
	free(c->members);
	free(c->res);
	free(c->errall);
	free(c);
}

/* NAME=value for a hook: the values come from the configuration, the
 * token and the CA, and a hook may print or log them. */
static void env_var(char *out, size_t len, const char *name, const char *value)
{
	char safe[TRACK_ERROR_MAX];

	snprintf(out, len, "%s=%s", name,
		 agent_escape_bounded(value, safe, len - strlen(name) - 1 < sizeof(safe) ?
							   len - strlen(name) - 1 : sizeof(safe)));
}

void child_hook(const track *t, int ok)
{
	const char *cmd = ok ? t->e.hook_success : t->e.hook_failure;
	/* P11ENROLL_ERROR whole: its hint, at the end, says what to do */
	char vars[13][1100], error[sizeof("P11ENROLL_ERROR=") + TRACK_ERROR_MAX], err[512];
	const char *env[14];
	int i = 0, k;
	pid_t pid;

	if (cmd == NULL)
		return;
	snprintf(vars[i++], sizeof(vars[0]), "P11ENROLL_EVENT=%s",
		 !ok ? "failed" : t->hook_enrolled ? "enrolled" : "renewed");
	env_var(vars[i++], sizeof(vars[0]), "P11ENROLL_NAME", t->name);
	env_var(vars[i++], sizeof(vars[0]), "P11ENROLL_TOKEN_URI", t->e.token);
	env_var(vars[i++], sizeof(vars[0]), "P11ENROLL_TOKEN_SERIAL", t->token_serial);
	env_var(vars[i++], sizeof(vars[0]), "P11ENROLL_TOKEN_LABEL", t->token_label);
	env_var(vars[i++], sizeof(vars[0]), "P11ENROLL_CERT_SERIAL",
		t->have_cert ? t->cert_serial : "");
	snprintf(vars[i++], sizeof(vars[0]), "P11ENROLL_NOT_AFTER=%lld",
		 t->have_cert ? t->not_after : 0);
	env_var(vars[i++], sizeof(vars[0]), "P11ENROLL_CERT_FILE", t->e.cert_out);
	env_var(vars[i++], sizeof(vars[0]), "P11ENROLL_CHAIN_FILE", t->e.chain_out);
	snprintf(vars[i++], sizeof(vars[0]), "P11ENROLL_EXIT=%d", t->exit_code);
	snprintf(vars[i++], sizeof(vars[0]), "P11ENROLL_FAILURES=%d", t->failures);
	for (k = 0; k < i; k++)
		env[k] = vars[k];
	env_var(error, sizeof(error), "P11ENROLL_ERROR", ok ? "" : track_error(t));
	env[i++] = error;
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
