/*
 * p11enroll agent: tracks every enrollment of the configuration file and
 * renews each certificate before it expires, unattended.  The agent itself
 * never loads a PKCS#11 module nor speaks CMP: each step is a child
 * process running this program's one-shot commands (check, renew, enroll,
 * resume), which take the enrollment's lock and do their own crash
 * recovery.  So a crashing module takes one step down, not the agent;
 * enrollments on different tokens proceed in parallel, while a token
 * sees one child at a time.  The state machine is agent/STATE-MACHINE.md.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/daemon.h"
#include "agent/track.h"

#define MAX_CLIENTS 16

static volatile sig_atomic_t got_term, got_hup;
static int sigpipe_fds[2] = { -1, -1 };

static struct {
	const char *config;
	const char *state_dir; /* --state-dir from the command line, or NULL */
	char self[4096];       /* this program, for the children */
	long rate;	       /* P11ENROLL_TEST_CLOCK_RATE: agent seconds per second */
	time_t t0;
	track **tracks;
	size_t n;
	int lfd;
	char sock[1024];
	char metrics[1024];
	int clients[MAX_CLIENTS];
} A;

/* ---- clock: real time, or faster for tests of day-long schedules -------- */

static long long now(void)
{
	time_t t = time(NULL);

	return A.rate > 1 ? (long long)A.t0 + (long long)(t - A.t0) * A.rate : (long long)t;
}

/* Agent seconds as real milliseconds to wait. */
static int wait_ms(long long agent_s)
{
	long long ms = agent_s * 1000 / (A.rate > 1 ? A.rate : 1);

	return ms < 0 ? 0 : ms > 60000 ? 60000 : (int)ms;
}

static void on_signal(int sig)
{
	int saved = errno;
	char c = (char)sig;

	if (sig == SIGTERM || sig == SIGINT)
		got_term = 1;
	else if (sig == SIGHUP)
		got_hup = 1;
	if (write(sigpipe_fds[1], &c, 1) < 0) {
		/* the pipe is full: the loop wakes up anyway */
	}
	errno = saved;
}

/* ---- the enrollments ------------------------------------------------------ */

static void track_free(track *t)
{
	if (t == NULL)
		return;
	free(t->name);
	conf_enrollment_clear(&t->e);
	free(t);
}

static int policy_of(track *t)
{
	long v;

	sched_policy_default(&t->pol);
	if (t->e.renew_at != NULL && sched_parse_renew_at(t->e.renew_at, &t->pol) < 0) {
		log_msg(LOG_ERR, "%s: renew_at '%.40s' is neither a percentage (66%%) nor a duration "
				 "(30d, 12h)",
			t->name, t->e.renew_at);
		return -1;
	}
	if (t->e.retry_min != NULL) {
		if (sched_parse_duration(t->e.retry_min, &v) < 0)
			goto bad;
		t->pol.backoff_min = v;
	}
	if (t->e.retry_max != NULL) {
		if (sched_parse_duration(t->e.retry_max, &v) < 0)
			goto bad;
		t->pol.backoff_max = v;
	}
	return 0;
bad:
	log_msg(LOG_ERR, "%s: retry_min/retry_max must be durations such as 60s, 5m, 4h", t->name);
	return -1;
}

static track *track_new(const char *name)
{
	track *t = calloc(1, sizeof(*t));
	char err[1024];

	if (t == NULL || (t->name = strdup(name)) == NULL) {
		free(t);
		return NULL;
	}
	conf_enrollment_init(&t->e);
	if (A.state_dir != NULL && (t->e.state_dir = strdup(A.state_dir)) == NULL)
		goto fail;
	if (conf_load(A.config, name, &t->e, err, sizeof(err)) < 0) {
		log_msg(LOG_ERR, "%s", err);
		goto fail;
	}
	if (policy_of(t) < 0)
		goto fail;
	t->out_fd = t->err_fd = t->waiter_fd = -1;
	t->need_recover = 1;
	t->st = T_START;
	(void)track_load(t);
	if (t->st == T_STOPPED)
		log_msg(LOG_NOTICE, "%s: stopped before the restart (%s); `p11enroll clear %s` lets the "
				    "agent try again",
			name, t->last_error, name);
	else if (t->st == T_PIN)
		log_msg(LOG_NOTICE, "%s: the PIN was refused before the restart: not trying it again "
				    "until the PIN source changes or `p11enroll clear %s`",
			name, name);
	if (t->seed == 0 && getrandom(&t->seed, sizeof(t->seed), 0) != (ssize_t)sizeof(t->seed))
		t->seed = (uint32_t)time(NULL) ^ (uint32_t)getpid();
	return t;
fail:
	track_free(t);
	return NULL;
}

static int load_all(track ***ret, size_t *ret_n)
{
	char **names = NULL, err[1024];
	size_t n = 0, i, k = 0;
	track **ts;
	int rc = 0;

	if (conf_list_names(A.config, &names, &n, err, sizeof(err)) < 0) {
		log_msg(LOG_ERR, "%s", err);
		return -1;
	}
	if ((ts = calloc(n + 1, sizeof(*ts))) == NULL)
		rc = -1;
	for (i = 0; i < n; i++) {
		if (rc == 0 && (ts[k] = track_new(names[i])) != NULL)
			k++;
		else
			rc = -1;
		free(names[i]);
	}
	free(names);
	if (rc < 0) {
		for (i = 0; i < k; i++)
			track_free(ts[i]);
		free(ts);
		return -1;
	}
	*ret = ts;
	*ret_n = k;
	return 0;
}

/* The token's identity for serialising children: module and URI. */
static int same_token(const track *a, const track *b)
{
	return strcmp(a->e.token != NULL ? a->e.token : "", b->e.token != NULL ? b->e.token : "") ==
		       0 &&
	       strcmp(a->e.module != NULL ? a->e.module : "", b->e.module != NULL ? b->e.module : "") ==
		       0;
}

static int token_busy(const track *t)
{
	size_t i;

	for (i = 0; i < A.n; i++)
		if (A.tracks[i] != t && A.tracks[i]->pid > 0 && same_token(A.tracks[i], t))
			return 1;
	return 0;
}

/* Saves t's state (every enrollment's when t is NULL) and the metrics: one
 * enrollment's step leaves the others' files alone, so that 100 enrollments
 * do not cost 100 fsyncs per step. */
static void publish(const track *t)
{
	size_t i;

	for (i = 0; i < A.n; i++)
		if (t == NULL || A.tracks[i] == t)
			(void)track_save(A.tracks[i]);
	if (A.metrics[0] != '\0')
		track_write_metrics(A.tracks, A.n, A.metrics);
}

/* ---- children ------------------------------------------------------------- */

/* The token URI pinned to the serial seen before, so that another token
 * inserted in its place is never logged in to. */
static char *pinned_uri(const track *t)
{
	const char *u = t->e.token, *q;
	size_t n;
	char *out;

	if (u == NULL || t->token_serial[0] == '\0' || strstr(u, "serial=") != NULL)
		return NULL;
	q = strchr(u, '?');
	n = strlen(u) + strlen(t->token_serial) + 16;
	if ((out = malloc(n)) == NULL)
		return NULL;
	if (q != NULL)
		snprintf(out, n, "%.*s;serial=%s%s", (int)(q - u), u, t->token_serial, q);
	else
		snprintf(out, n, "%s%sserial=%s", u, u[strlen(u) - 1] == ':' ? "" : ";",
			 t->token_serial);
	return out;
}

static int launch(track *t, track_op op)
{
	const char *argv[16];
	char *uri = pinned_uri(t);
	int out[2] = { -1, -1 }, err[2] = { -1, -1 }, i = 0;
	pid_t pid;

	argv[i++] = A.self;
	argv[i++] = "--local";
	argv[i++] = "-c";
	argv[i++] = A.config;
	if (A.state_dir != NULL) {
		argv[i++] = "--state-dir";
		argv[i++] = A.state_dir;
	}
	if (uri != NULL) {
		argv[i++] = "--token";
		argv[i++] = uri;
	}
	argv[i++] = op == OP_RECOVER || op == OP_CHECK ? "check"
		    : op == OP_RENEW			 ? "renew"
		    : op == OP_ENROLL			 ? "enroll"
							 : "resume";
	argv[i++] = t->name;
	if (op == OP_RECOVER)
		argv[i++] = "--recover";
	argv[i] = NULL;
	if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 || (pid = fork()) < 0) {
		log_msg(LOG_ERR, "%s: cannot start a child process: %s", t->name, strerror(errno));
		for (i = 0; i < 2; i++) {
			if (out[i] >= 0)
				close(out[i]);
			if (err[i] >= 0)
				close(err[i]);
		}
		free(uri);
		return -1;
	}
	if (pid == 0) {
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGCHLD, SIG_DFL);
		if (dup2(out[1], 1) < 0 || dup2(err[1], 2) < 0)
			_exit(EXIT_INTERNAL);
		execv(A.self, (char *const *)argv);
		_exit(EXIT_INTERNAL);
	}
	free(uri);
	close(out[1]);
	close(err[1]);
	(void)fcntl(out[0], F_SETFL, O_NONBLOCK);
	(void)fcntl(err[0], F_SETFL, O_NONBLOCK);
	t->pid = pid;
	t->op = op;
	t->out_fd = out[0];
	t->err_fd = err[0];
	t->outlen = t->errlen = 0;
	if (op != OP_CHECK && op != OP_RECOVER) {
		t->last_attempt = now();
		log_msg(LOG_NOTICE, "%s: %s started (token %s)", t->name, track_op_name(op),
			t->token_serial[0] != '\0' ? t->token_serial : "?");
	}
	return 0;
}

/* Child stderr, forwarded line by line with the enrollment's name. */
static void drain_err(track *t, int final)
{
	const char *why;
	char *nl;
	ssize_t n;

	while ((n = read(t->err_fd, t->errbuf + t->errlen, sizeof(t->errbuf) - 1 - t->errlen)) > 0) {
		t->errlen += (size_t)n;
		t->errbuf[t->errlen] = '\0';
		while ((nl = strchr(t->errbuf, '\n')) != NULL) {
			const char *line = t->errbuf;

			*nl = '\0';
			/* The child's lines carry "p11enroll: "; the agent's own
			 * prefix and the enrollment's name replace it. */
			if (strncmp(line, "p11enroll: ", 11) == 0)
				line += 11;
			/* The level travels in the agent's own prefix. */
			if (strncmp(line, "error: ", 7) == 0)
				log_msg(LOG_ERR, "%s: %s", t->name, line + 7);
			else if (strncmp(line, "warning: ", 9) == 0)
				log_msg(LOG_WARNING, "%s: %s", t->name, line + 9);
			else
				log_msg(strstr(line, "error:") != NULL ? LOG_ERR : LOG_INFO, "%s: %s",
					t->name, line);
			if ((why = strstr(t->errbuf, "error:")) != NULL) /* "error:" may end the line */
				snprintf(t->last_error, sizeof(t->last_error), "%s",
					 why + 6 + strspn(why + 6, " "));
			memmove(t->errbuf, nl + 1, t->errlen - (size_t)(nl + 1 - t->errbuf) + 1);
			t->errlen -= (size_t)(nl + 1 - t->errbuf) + 0;
			t->errlen = strlen(t->errbuf);
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

static void drain_out(track *t)
{
	ssize_t n;

	while (t->outlen < sizeof(t->out) - 1 &&
	       (n = read(t->out_fd, t->out + t->outlen, sizeof(t->out) - 1 - t->outlen)) > 0)
		t->outlen += (size_t)n;
	t->out[t->outlen] = '\0';
}

static const char *value(const char *out, const char *key, char *buf, size_t len)
{
	size_t k = strlen(key);
	const char *p = out;

	while (p != NULL && *p != '\0') {
		if (strncmp(p, key, k) == 0 && p[k] == '=') {
			size_t n = strcspn(p + k + 1, "\n");

			snprintf(buf, len, "%.*s", (int)n, p + k + 1);
			return buf;
		}
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	return NULL;
}

/* A number the child printed; dflt when absent or not a number. */
static long long num(const char *out, const char *key, long long dflt)
{
	char v[64], *end;
	long long n;

	if (value(out, key, v, sizeof(v)) == NULL)
		return dflt;
	errno = 0;
	n = strtoll(v, &end, 10);
	return errno != 0 || end == v || *end != '\0' ? dflt : n;
}

static void run_hook(track *t, int ok)
{
	const char *cmd = ok ? t->e.hook_success : t->e.hook_failure;
	char vars[12][600], err[512];
	const char *env[13];
	int i = 0, k;
	pid_t pid;

	if (cmd == NULL)
		return;
	snprintf(vars[i++], sizeof(vars[0]), "P11ENROLL_EVENT=%s", ok ? "renewed" : "failed");
	snprintf(vars[i++], sizeof(vars[0]), "P11ENROLL_NAME=%s", t->name);
	snprintf(vars[i++], sizeof(vars[0]), "P11ENROLL_TOKEN_URI=%s",
		 t->e.token != NULL ? t->e.token : "");
	snprintf(vars[i++], sizeof(vars[0]), "P11ENROLL_TOKEN_SERIAL=%s", t->token_serial);
	snprintf(vars[i++], sizeof(vars[0]), "P11ENROLL_CERT_SERIAL=%s",
		 t->have_cert ? t->cert_serial : "");
	snprintf(vars[i++], sizeof(vars[0]), "P11ENROLL_NOT_AFTER=%lld",
		 t->have_cert ? t->not_after : 0);
	snprintf(vars[i++], sizeof(vars[0]), "P11ENROLL_CERT_FILE=%s",
		 t->e.cert_out != NULL ? t->e.cert_out : "");
	snprintf(vars[i++], sizeof(vars[0]), "P11ENROLL_CHAIN_FILE=%s",
		 t->e.chain_out != NULL ? t->e.chain_out : "");
	snprintf(vars[i++], sizeof(vars[0]), "P11ENROLL_EXIT=%d", t->exit_code);
	snprintf(vars[i++], sizeof(vars[0]), "P11ENROLL_ERROR=%s", ok ? "" : t->last_error);
	snprintf(vars[i++], sizeof(vars[0]), "P11ENROLL_FAILURES=%d", t->failures);
	for (k = 0; k < i; k++)
		env[k] = vars[k];
	env[i] = NULL;
	/* A process of its own waits for the hook, so that a slow hook never
	 * holds the agent's loop; reap() collects it like any child. */
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
	_exit(0);
}

/* All of buf to a control client, through short writes and signals (the
 * SIGCHLD of a child interrupts a blocking write); -1 when it went away. */
static int write_all(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static void answer_waiter_code(track *t, int code, const char *text)
{
	char line[64];

	if (t->waiter_fd < 0)
		return;
	if (text != NULL && *text != '\0')
		(void)write_all(t->waiter_fd, text, strlen(text));
	snprintf(line, sizeof(line), "\nexit %d\n", code);
	(void)write_all(t->waiter_fd, line, strlen(line));
	close(t->waiter_fd);
	t->waiter_fd = -1;
}

static void answer_waiter(track *t, const char *text)
{
	answer_waiter_code(t, t->exit_code, text);
}

/* A renewal asked for that will not run now: answered at once, rather than
 * left waiting (or making the loop start steps without pause). */
static void refuse_waiter(track *t, int code, const char *why)
{
	char msg[400];

	if (t->waiter_fd < 0)
		return;
	snprintf(msg, sizeof(msg), "%s: not renewed: %s", t->name, why);
	answer_waiter_code(t, code, msg);
}

static void stop(track *t, const char *why)
{
	t->st = T_STOPPED;
	snprintf(t->last_error, sizeof(t->last_error), "%s", why);
	log_msg(LOG_ERR, "%s: stopped: %s", t->name, why);
}

static void backoff(track *t)
{
	long long n = now();

	t->failures++;
	t->next = (long long)sched_retry_time(&t->pol, (time_t)n, (time_t)t->not_after,
					       t->failures);
	t->st = T_BACKOFF;
	/* One line per event: the enrollment, the token and what failed (the
	 * step's error names its transaction when it had one). */
	log_msg(LOG_NOTICE, "%s: attempt %d failed (token %s): %.200s; next in %lld s", t->name,
		t->failures, t->token_serial[0] != '\0' ? t->token_serial : "?",
		t->last_error[0] != '\0' ? t->last_error : "see above", t->next - n);
}

/* What the token showed (check, check --recover). */
static void took_look(track *t, int rc)
{
	long long due;
	char v[256];
	long long n = now();

	/* A look that failed says nothing about the certificate: what was known
	 * stays, and the look is tried again after a pause (never at once: that
	 * was a loop of child processes; never "no certificate": that was an ir
	 * or a stop after a transient token error). */
	if (rc != EXIT_OK && rc != EXIT_ABSENT && rc != EXIT_PIN) {
		backoff(t);
		return;
	}
	if (rc == EXIT_ABSENT || value(t->out, "token", v, sizeof(v)) == NULL ||
	    strcmp(v, "absent") == 0) {
		if (rc == EXIT_ABSENT || rc == EXIT_OK) {
			if (t->st != T_NO_TOKEN)
				log_msg(LOG_NOTICE, "%s: the token%s%s is not present: waiting for it",
					t->name, t->token_serial[0] ? " " : "", t->token_serial);
			t->st = T_NO_TOKEN;
			t->need_recover = 1;
			t->next = n + (t->e.token_poll > 0 ? t->e.token_poll : 10);
			return;
		}
		if (rc == EXIT_PIN)
			return; /* handled by the caller */
		backoff(t);
		return;
	}
	if (value(t->out, "token_serial", v, sizeof(v)) != NULL) {
		if (t->st == T_NO_TOKEN)
			log_msg(LOG_NOTICE, "%s: token %s is back", t->name, v);
		snprintf(t->token_serial, sizeof(t->token_serial), "%.16s", v);
	}
	t->have_cert = value(t->out, "cert", v, sizeof(v)) != NULL && strcmp(v, "present") == 0;
	if (t->have_cert) {
		if (value(t->out, "cert_serial", v, sizeof(v)) != NULL)
			snprintf(t->cert_serial, sizeof(t->cert_serial), "%.79s", v);
		t->not_before = num(t->out, "not_before", 0);
		t->not_after = num(t->out, "not_after", 0);
	}
	t->pending = value(t->out, "pending", v, sizeof(v)) != NULL;
	if (t->pending) {
		long long saved = num(t->out, "pending_saved", n);
		long ca = (long)num(t->out, "pending_check_after", 0);

		t->st = T_POLLING;
		t->next = (long long)sched_poll_time(&t->pol, (time_t)saved, ca);
		if (t->next < n)
			t->next = n;
		return;
	}
	if (t->st == T_STOPPED)
		return;
	if (!t->have_cert) {
		t->st = T_VALID;
		t->next = n; /* decide() enrolls or stops */
		return;
	}
	due = (long long)sched_renew_time(&t->pol, (time_t)t->not_before, (time_t)t->not_after,
					  t->seed);
	/* A certificate not yet due needs no retry: the failures are over
	 * (say, recovery adopted the certificate of a step killed after it
	 * was stored; renewing it again would be a second certificate). */
	if (due > n && t->failures > 0) {
		log_msg(LOG_NOTICE, "%s: the certificate on the token is not due for renewal: the "
				    "earlier failures are over",
			t->name);
		t->failures = 0;
		t->last_error[0] = '\0';
	}
	if (t->failures > 0 && t->next > n) {
		t->st = T_BACKOFF;
		return;
	}
	t->st = T_VALID;
	t->next = due;
}

static void finished(track *t, int status)
{
	const char *tid;
	int rc = WIFEXITED(status) ? WEXITSTATUS(status) : EXIT_INTERNAL;
	track_op op = t->op;
	char fp[512];
	long long n = now();

	drain_out(t);
	drain_err(t, 1);
	close(t->out_fd);
	close(t->err_fd);
	t->out_fd = t->err_fd = -1;
	t->pid = 0;
	t->op = OP_NONE;
	t->exit_code = rc;
	if (!WIFEXITED(status))
		snprintf(t->last_error, sizeof(t->last_error), "the %s step died (signal %d)",
			 track_op_name(op), WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	if (rc == EXIT_PIN) {
		track_pin_fingerprint(&t->e, fp, sizeof(fp));
		snprintf(t->pin_latch, sizeof(t->pin_latch), "%s", fp);
		t->st = T_PIN;
		log_msg(LOG_ERR, "%s: the PIN was refused or is unusable; not trying it again until "
				 "the PIN source changes or `p11enroll clear %s`",
			t->name, t->name);
		run_hook(t, 0);
		answer_waiter(t, t->out);
		return;
	}
	if (op == OP_RECOVER || op == OP_CHECK) {
		if (op == OP_RECOVER && rc == EXIT_OK)
			t->need_recover = 0;
		if (rc != EXIT_OK && rc != EXIT_ABSENT)
			log_msg(LOG_WARNING, "%s: looking at the token failed (exit %d)", t->name, rc);
		took_look(t, rc);
		if (op == OP_CHECK && rc != EXIT_OK && rc != EXIT_ABSENT)
			t->need_refresh = 1; /* the look after a success, once more */
		if (t->hook_due && rc == EXIT_OK) {
			t->hook_due = 0;
			run_hook(t, 1);
		}
		/* a requested renewal waits for no token and no failed look */
		if (t->st == T_NO_TOKEN)
			refuse_waiter(t, EXIT_ABSENT, "the token is not present");
		else if (rc != EXIT_OK)
			refuse_waiter(t, rc, "looking at the token failed");
		return;
	}
	switch (rc) {
	case EXIT_OK:
		t->failures = 0;
		t->last_success = n;
		t->renewals++;
		t->last_error[0] = '\0';
		t->pending = 0;
		t->need_refresh = 1;
		t->hook_due = 1;
		t->next = n;
		tid = strstr(t->out, "transaction: ");
		log_msg(LOG_NOTICE, "%s: %s done (token %s, transaction %.*s)", t->name,
			track_op_name(op), t->token_serial,
			tid != NULL ? (int)strcspn(tid + 13, "\n") : 1, tid != NULL ? tid + 13 : "?");
		break;
	case EXIT_WAITING:
		t->st = T_POLLING;
		t->pending = 1;
		t->need_refresh = 1;
		t->next = n;
		break;
	case EXIT_ABSENT:
		t->st = T_NO_TOKEN;
		t->need_recover = 1;
		t->next = n + (t->e.token_poll > 0 ? t->e.token_poll : 10);
		break;
	case EXIT_BUSY:
		/* Someone works on it by hand (renew --local): not a failure. */
		log_msg(LOG_NOTICE, "%s: another process holds the enrollment: trying again in 5 s",
			t->name);
		t->st = T_VALID;
		t->next = n + 5;
		break;
	case EXIT_REJECTED:
		if (op == OP_RENEW && t->e.bootstrap == 1) {
			log_msg(LOG_NOTICE, "%s: the CA refused the kur: enrolling anew with the "
					    "bootstrap credentials (ir)",
				t->name);
			t->bootstrap_next = OP_ENROLL;
			t->next = n;
			return; /* a requested renewal gets the ir's outcome */
		}
		stop(t, op == OP_RENEW ? "the CA refused the renewal and no bootstrap credentials "
					 "are configured; enroll by hand"
				       : "the CA refused the request");
		run_hook(t, 0);
		break;
	case EXIT_USAGE:
		if (op == OP_RESUME) {
			/* The transaction ended meanwhile (abandoned by hand, or
			 * over after a failure): look at the token again. */
			t->pending = 0;
			t->need_refresh = 1;
			t->next = n;
			break;
		}
		stop(t, "configuration error (see the log); fix it, then `p11enroll clear NAME`");
		run_hook(t, 0);
		break;
	default:
		backoff(t);
		run_hook(t, 0);
		break;
	}
	answer_waiter(t, t->out);
}

/* The next step of an idle enrollment whose time has come, or OP_NONE. */
static track_op decide(track *t)
{
	char fp[512];
	long long n = now();

	if (t->st == T_STOPPED) {
		refuse_waiter(t, EXIT_USAGE, t->last_error);
		return OP_NONE;
	}
	if (t->st == T_PIN) {
		track_pin_fingerprint(&t->e, fp, sizeof(fp));
		if (strcmp(fp, t->pin_latch) == 0) {
			refuse_waiter(t, EXIT_PIN, "the PIN was refused; change the PIN source or "
						   "run p11enroll clear");
			return OP_NONE;
		}
		log_msg(LOG_NOTICE, "%s: the PIN source changed: trying again", t->name);
		t->pin_latch[0] = '\0';
		t->need_recover = 1;
		t->next = n;
	}
	/* An absent token is looked for every token_poll seconds, a failed look
	 * repeated after its backoff: not in every round of the loop. */
	if ((t->st == T_NO_TOKEN || t->st == T_BACKOFF) && t->next > n && t->waiter_fd < 0)
		return OP_NONE;
	if (t->need_recover)
		return OP_RECOVER;
	if (t->need_refresh) {
		t->need_refresh = 0;
		return OP_CHECK;
	}
	if (t->next > n && t->waiter_fd < 0)
		return OP_NONE;
	if (t->st == T_NO_TOKEN)
		return OP_RECOVER;
	if (t->pending)
		return OP_RESUME;
	if (t->bootstrap_next != OP_NONE) {
		t->bootstrap_next = OP_NONE;
		return OP_ENROLL;
	}
	if (!t->have_cert || (t->not_after > 0 && t->not_after <= n)) {
		if (t->e.bootstrap == 1)
			return OP_ENROLL;
		stop(t, t->have_cert ? "the certificate expired and no bootstrap credentials are "
				       "configured; enroll by hand"
				     : "no certificate on the token and no bootstrap credentials "
				       "configured; run p11enroll enroll first");
		run_hook(t, 0);
		publish(t);
		refuse_waiter(t, EXIT_USAGE, t->last_error);
		return OP_NONE;
	}
	return OP_RENEW;
}

/* ---- control socket --------------------------------------------------------- */

static track *find(const char *name)
{
	size_t i;

	for (i = 0; i < A.n; i++)
		if (strcmp(A.tracks[i]->name, name) == 0)
			return A.tracks[i];
	return NULL;
}

static void reply(int fd, int code, const char *text)
{
	char line[64];

	snprintf(line, sizeof(line), "exit %d\n", code);
	if (text == NULL || write_all(fd, text, strlen(text)) == 0)
		(void)write_all(fd, line, strlen(line));
	close(fd);
}

static int reload(void);

/* Besides the socket's mode and group: root, the agent's user, members of
 * control_group. */
static int peer_allowed(const struct ucred *cr)
{
	struct group *gr;
	struct passwd *pw;
	gid_t groups[64];
	int n = 64, i;

	if (cr->uid == 0 || cr->uid == geteuid())
		return 1;
	if (A.tracks == NULL || A.n == 0 || A.tracks[0]->e.control_group == NULL ||
	    (gr = getgrnam(A.tracks[0]->e.control_group)) == NULL)
		return 0;
	if (cr->gid == gr->gr_gid)
		return 1;
	if ((pw = getpwuid(cr->uid)) == NULL ||
	    getgrouplist(pw->pw_name, pw->pw_gid, groups, &n) < 0)
		return 0;
	for (i = 0; i < n; i++)
		if (groups[i] == gr->gr_gid)
			return 1;
	return 0;
}

static void handle_client(int fd)
{
	char line[512], msg[600];
	const char *name = NULL;
	ctl_verb verb;
	struct ucred cr;
	socklen_t crlen = sizeof(cr);
	struct timeval tv = { 5, 0 };
	ssize_t n;
	track *t;
	char *json;
	size_t len;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) < 0 || !peer_allowed(&cr)) {
		log_msg(LOG_WARNING, "control: refused a client (uid %ld): only root, the agent's "
				     "user and the control_group may use the socket",
			crlen == sizeof(cr) ? (long)cr.uid : -1L);
		close(fd);
		return;
	}
	/* A client that sends nothing, or reads nothing, must not stop the agent. */
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	while ((n = read(fd, line, sizeof(line) - 1)) < 0 && errno == EINTR)
		;
	if (n <= 0) {
		close(fd);
		return;
	}
	verb = ctl_parse_request(line, (size_t)n, &name);
	log_msg(LOG_DEBUG, "control: '%s' from uid %ld", line, (long)cr.uid);
	if (verb == CTL_STATUS_JSON || verb == CTL_STATUS_TEXT) {
		json = verb == CTL_STATUS_JSON ? track_status_json(A.tracks, A.n, now(), A.rate, &len)
					       : track_status_text(A.tracks, A.n, now(), &len);
		if (json != NULL)
			(void)write_all(fd, json, len);
		free(json);
		close(fd);
		return;
	}
	if (verb == CTL_RELOAD) {
		reply(fd, reload() == 0 ? EXIT_OK : EXIT_USAGE, "");
		return;
	}
	if ((verb == CTL_RENEW || verb == CTL_CLEAR) && (t = find(name)) != NULL) {
		if (verb == CTL_CLEAR) {
			t->pin_latch[0] = '\0';
			if (t->st == T_STOPPED || t->st == T_PIN)
				t->st = T_START;
			t->failures = 0;
			t->need_recover = 1;
			t->next = now();
			publish(t);
			snprintf(msg, sizeof(msg), "cleared %s\n", t->name);
			reply(fd, EXIT_OK, msg);
			return;
		}
		if (t->waiter_fd >= 0) {
			reply(fd, EXIT_USAGE, "a renewal of this enrollment was already requested\n");
			return;
		}
		/* Answered when the renewal ends (finished()). */
		t->waiter_fd = fd;
		if (t->st != T_POLLING)
			t->next = now();
		return;
	}
	snprintf(msg, sizeof(msg), "unknown request or enrollment: %.100s\n", line);
	reply(fd, EXIT_USAGE, msg);
}

/* ---- the loop ---------------------------------------------------------------- */

static void reap(void)
{
	int status;
	pid_t pid;
	size_t i;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		for (i = 0; i < A.n; i++)
			if (A.tracks[i]->pid == pid) {
				finished(A.tracks[i], status);
				publish(A.tracks[i]);
			}
}

static int busy(void)
{
	size_t i;

	for (i = 0; i < A.n; i++)
		if (A.tracks[i]->pid > 0)
			return 1;
	return 0;
}

static int reload(void)
{
	track **ts = NULL;
	size_t n = 0, i;

	if (busy()) {
		log_msg(LOG_NOTICE, "reload waits: a step is running");
		got_hup = 1;
		return 0;
	}
	(void)notify_send("RELOADING=1");
	if (load_all(&ts, &n) < 0) {
		log_msg(LOG_ERR, "reload failed: keeping the previous configuration");
		(void)notify_send("READY=1");
		return -1;
	}
	for (i = 0; i < A.n; i++) {
		track *old = A.tracks[i];
		size_t k;

		/* a client waiting for a renewal keeps waiting, or is told */
		for (k = 0; k < n && old->waiter_fd >= 0; k++)
			if (strcmp(ts[k]->name, old->name) == 0) {
				ts[k]->waiter_fd = old->waiter_fd;
				old->waiter_fd = -1;
			}
		refuse_waiter(old, EXIT_USAGE, "the enrollment is no longer in the configuration");
		track_free(old);
	}
	free(A.tracks);
	A.tracks = ts;
	A.n = n;
	log_msg(LOG_NOTICE, "configuration reloaded: %zu enrollment(s)", n);
	(void)notify_send("READY=1");
	return 0;
}

static void loop(void)
{
	struct pollfd pf[2 + MAX_CLIENTS + 64];
	track *owner[64];
	long long n, wait;
	size_t i, np;
	char c;
	int fd;

	for (;;) {
		if (got_hup && !busy()) {
			got_hup = 0;
			(void)reload();
		}
		if (got_term && !busy())
			return;
		n = now();
		wait = 60;
		for (i = 0; i < A.n && !got_term; i++) {
			track *t = A.tracks[i];
			track_op op;

			if (t->pid > 0 || token_busy(t))
				continue;
			if ((op = decide(t)) != OP_NONE) {
				if (launch(t, op) < 0) {
					backoff(t);
					publish(t);
				} else {
					t->st = t->st == T_NO_TOKEN || t->st == T_POLLING ? t->st : T_BUSY;
				}
				continue;
			}
			if (t->st != T_STOPPED && t->st != T_PIN && t->next - n < wait)
				wait = t->next - n;
		}
		np = 0;
		pf[np].fd = sigpipe_fds[0];
		pf[np++].events = POLLIN;
		pf[np].fd = A.lfd;
		pf[np++].events = POLLIN;
		for (i = 0; i < A.n && np + 2 < sizeof(pf) / sizeof(pf[0]); i++) {
			if (A.tracks[i]->pid <= 0 || np - 2 >= 64)
				continue;
			owner[(np - 2) / 2] = A.tracks[i];
			pf[np].fd = A.tracks[i]->out_fd;
			pf[np++].events = POLLIN;
			pf[np].fd = A.tracks[i]->err_fd;
			pf[np++].events = POLLIN;
		}
		if (poll(pf, np, busy() ? 1000 : wait_ms(wait < 1 ? 1 : wait)) < 0 && errno != EINTR)
			return;
		if (pf[0].revents & POLLIN)
			while (read(sigpipe_fds[0], &c, 1) > 0)
				;
		for (i = 2; i + 1 < np; i += 2) {
			if (pf[i].revents)
				drain_out(owner[(i - 2) / 2]);
			if (pf[i + 1].revents)
				drain_err(owner[(i - 2) / 2], 0);
		}
		reap();
		if (A.lfd >= 0 && (pf[1].revents & POLLIN))
			while ((fd = accept4(A.lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0)
				handle_client(fd);
	}
}

int agent_daemon(const char *config, const conf_enrollment *cli)
{
	struct sigaction sa;
	char err[512];
	const char *rate = getenv("P11ENROLL_TEST_CLOCK_RATE");
	ssize_t len;
	size_t i;

	memset(&A, 0, sizeof(A));
	A.lfd = -1;
	A.config = config != NULL ? config : getenv("P11ENROLL_CONF");
	if (A.config == NULL)
		A.config = conf_default_path();
	A.state_dir = cli->state_dir;
	A.t0 = time(NULL);
	A.rate = rate != NULL ? strtol(rate, NULL, 10) : 1;
	if (A.rate < 1 || A.rate > 1000000)
		A.rate = 1;
	if ((len = readlink("/proc/self/exe", A.self, sizeof(A.self) - 1)) <= 0) {
		log_msg(LOG_ERR, "cannot find this program (/proc/self/exe)");
		return EXIT_INTERNAL;
	}
	A.self[len] = '\0';
	if (pipe2(sigpipe_fds, O_CLOEXEC | O_NONBLOCK) < 0)
		return EXIT_INTERNAL;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGCHLD, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (load_all(&A.tracks, &A.n) < 0)
		return EXIT_USAGE;
	if (A.n == 0) {
		log_msg(LOG_ERR, "%s defines no enrollment: nothing to track", A.config);
		return EXIT_USAGE;
	}
	/* The socket and metrics file are the agent's: the first enrollment
	 * names them (the default section gives every enrollment the same). */
	snprintf(A.sock, sizeof(A.sock), "%s", ctl_default_path(&A.tracks[0]->e));
	if (A.tracks[0]->e.metrics_file != NULL)
		snprintf(A.metrics, sizeof(A.metrics), "%s", A.tracks[0]->e.metrics_file);
	if (mkdir(pending_state_dir(&A.tracks[0]->e), 0700) < 0 && errno != EEXIST)
		log_msg(LOG_WARNING, "cannot create the state directory %s: %s",
			pending_state_dir(&A.tracks[0]->e), strerror(errno));
	if ((A.lfd = ctl_listen(A.sock, A.tracks[0]->e.control_group, err, sizeof(err))) < 0) {
		log_msg(LOG_ERR, "%s", err);
		return EXIT_USAGE;
	}
	log_msg(LOG_NOTICE, "tracking %zu enrollment(s); control socket %s%s", A.n, A.sock,
		A.rate > 1 ? " (test clock)" : "");
	(void)notify_send("READY=1");
	loop();
	(void)notify_send("STOPPING=1");
	publish(NULL);
	close(A.lfd);
	unlink(A.sock);
	for (i = 0; i < A.n; i++) {
		if (A.tracks[i]->waiter_fd >= 0)
			reply(A.tracks[i]->waiter_fd, EXIT_INTERNAL, "the agent stopped\n");
		track_free(A.tracks[i]);
	}
	free(A.tracks);
	log_msg(LOG_NOTICE, "stopped");
	return EXIT_OK;
}
