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

/* Control clients being read or answered at once (a client waiting for a
 * renewal does not count: there is at most one per enrollment); the last
 * CTL_RESERVED places are kept for root and the agent's user, so that the
 * control group cannot lock them out. */
#define CTL_MAX_CLIENTS 32
#define CTL_RESERVED 4
/* Seconds a client has to send its request line, and again to take its
 * answer; P11ENROLL_TEST_CTL_TIMEOUT sets another (tests on slow machines). */
#define CTL_TIMEOUT_S 5

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
	ctl_client *clients; /* every open control connection */
	size_t nclients, cap_clients;
	int ctl_timeout; /* CTL_TIMEOUT_S, in seconds */
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

#ifdef P11E_COVERAGE /* LCOV_EXCL_START: the measurement, not measured */
/* A coverage build writes its counters before it waits, at most once a
 * second: a test may end the agent by SIGKILL (tests/crash.sh). */
static void cov_checkpoint(void)
{
	static time_t last;
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) == 0 && ts.tv_sec != last) {
		last = ts.tv_sec;
		P11E_COV_FLUSH();
	}
}
#endif /* LCOV_EXCL_STOP */

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

static int policy_of(track *t, char *err, size_t errlen)
{
	long v;

	sched_policy_default(&t->pol);
	if (t->e.renew_at != NULL && sched_parse_renew_at(t->e.renew_at, &t->pol) < 0) {
		snprintf(err, errlen,
			 "%s: renew_at '%.40s' is neither a percentage (66%%) nor a duration "
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
	snprintf(err, errlen, "%s: retry_min/retry_max must be durations such as 60s, 5m, 4h",
		 t->name);
	return -1;
}

/* One enrollment of the file; on failure, why in err. */
static track *track_new(const conf_file *cf, const char *name, char *err, size_t errlen)
{
	track *t = calloc(1, sizeof(*t));

	snprintf(err, errlen, "out of memory");
	if (t == NULL || (t->name = strdup(name)) == NULL) {
		free(t);
		return NULL;
	}
	conf_enrollment_init(&t->e);
	if (A.state_dir != NULL && (t->e.state_dir = strdup(A.state_dir)) == NULL)
		goto fail;
	if (conf_file_get(cf, name, &t->e, err, errlen) < 0 || policy_of(t, err, errlen) < 0)
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

/* Every enrollment of the file, checked whole (conf_file_load), or none
 * and every reason in d. */
static int load_all(track ***ret, size_t *ret_n, conf_diag *d)
{
	conf_file *cf = NULL;
	size_t n, i, k = 0;
	char err[1024];
	track **ts;

	if (conf_file_load(A.config, CONF_CHECK_ACCESS, &cf, d) < 0 || conf_file_check_required(cf, NULL, d) < 0) {
		conf_file_free(cf);
		return -1;
	}
	n = conf_file_count(cf);
	if ((ts = calloc(n + 1, sizeof(*ts))) == NULL) {
		conf_diag_add(d, 1, "out of memory");
		conf_file_free(cf);
		return -1;
	}
	for (i = 0; i < n; i++) {
		if ((ts[k] = track_new(cf, conf_file_name(cf, i), err, sizeof(err))) == NULL) {
			conf_diag_add(d, 1, "%s", err);
			break;
		}
		k++;
	}
	conf_file_free(cf);
	if (k < n) {
		for (i = 0; i < k; i++)
			track_free(ts[i]);
		free(ts);
		return -1;
	}
	*ret = ts;
	*ret_n = k;
	return 0;
}

/* Each line of d at level. */
static void log_diag(int level, const char *prefix, const conf_diag *d)
{
	const char *p = d->text != NULL ? d->text : "out of memory\n";

	while (*p != '\0') {
		size_t n = strcspn(p, "\n");

		log_msg(level, "%s%.*s", prefix, (int)n, p);
		p += n + (p[n] == '\n');
	}
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
	/* launch() frees with free(). */
	out = strdup(pinned);
	OPENSSL_free(pinned);
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
			P11E_EXIT(EXIT_INTERNAL);
		execv(A.self, (char *const *)argv);
		P11E_EXIT(EXIT_INTERNAL);
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

/* NAME=value for a hook: the values come from the configuration, the
 * token and the CA, and a hook may print or log them. */
static void env_var(char *out, size_t len, const char *name, const char *value)
{
	char safe[1024];

	snprintf(out, len, "%s=%s", name,
		 agent_escape(value, safe, len - strlen(name) - 1 < sizeof(safe) ?
						   len - strlen(name) - 1 : sizeof(safe)));
}

static void run_hook(track *t, int ok)
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
	P11E_EXIT(0);
}

/* ---- control clients: never blocking, each with a deadline --------------- */

static ctl_client *client_of(int fd)
{
	size_t i;

	for (i = 0; i < A.nclients; i++)
		if (A.clients[i].fd == fd)
			return &A.clients[i];
	return NULL;
}

/* Queues text and the "exit N" line (none when code < 0: status) as the
 * whole answer of the client on fd, and sends what it takes now; a client
 * gone meanwhile is closed by the loop. */
static void reply(int fd, int code, const char *text)
{
	ctl_client *c = client_of(fd);
	char line[64];
	int rc = 0;

	if (c == NULL) {
		close(fd);
		return;
	}
	if (text != NULL)
		rc = ctl_client_queue(c, text, strlen(text));
	if (code >= 0) {
		snprintf(line, sizeof(line), "%sexit %d\n",
			 c->outlen > 0 && c->out[c->outlen - 1] != '\n' ? "\n" : "", code);
		if (rc == 0)
			rc = ctl_client_queue(c, line, strlen(line));
	}
	if (rc < 0)
		log_msg(LOG_ERR, "control: out of memory for an answer to uid %ld", (long)c->uid);
	c->deadline = ctl_now_ms() + (long long)A.ctl_timeout * 1000;
	if (ctl_client_answer(c) == CTL_IO_DONE) {
		c->phase = CTL_LINGER;
		c->deadline = 0; /* the loop closes it */
	}
}

static void answer_waiter_code(track *t, int code, const char *text)
{
	if (t->waiter_fd < 0)
		return;
	reply(t->waiter_fd, code, text);
	t->waiter_fd = -1;
}

static void answer_waiter(track *t, const char *text)
{
	answer_waiter_code(t, t->exit_code, text);
}

/* The outcome of a step for the client waiting on it: the step's output,
 * or what failed (the step's error line), which went only to the log. */
static void answer_outcome(track *t, track_op op)
{
	char msg[1400];

	if (t->waiter_fd < 0)
		return;
	if (t->exit_code == EXIT_OK) {
		answer_waiter(t, t->out);
		return;
	}
	snprintf(msg, sizeof(msg), "%s: %s failed: %s", t->name, track_op_name(op),
		 t->last_error[0] != '\0' ? t->last_error : "the agent's log says why");
	answer_waiter(t, msg);
}

/* A renewal asked for that will not run now: answered at once, rather than
 * left waiting (or making the loop start steps without pause). */
static void refuse_waiter(track *t, int code, const char *why)
{
	char msg[1400];

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
			snprintf(t->cert_serial, sizeof(t->cert_serial), "%.128s", v);
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
		log_msg(LOG_NOTICE, "%s: the certificate on the token is not due for renewal (due at "
				    "%lld): the earlier failures are over; no retry at %lld",
			t->name, due, t->next);
		t->failures = 0;
		t->last_error[0] = '\0';
	}
	if (t->failures > 0 && t->next > n) {
		t->st = T_BACKOFF;
		return;
	}
	t->st = T_VALID;
	t->next = due;
	/* The decision, once per change: tests check the agent's schedule
	 * here, not how soon a loaded machine carried it out. */
	if (due != t->due_logged) {
		t->due_logged = due;
		log_msg(LOG_INFO,
			"%s: certificate %s (notBefore %lld, notAfter %lld) is not due for "
			"renewal before %lld",
			t->name, t->cert_serial, t->not_before, t->not_after, due);
	}
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
		answer_outcome(t, op);
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
		if (op == OP_RENEW) {
			stop(t, "the CA refused the renewal and no bootstrap credentials are "
				"configured; enroll by hand");
		} else {
			char why[sizeof(t->last_error)];

			/* The step's error line (set by drain_err) holds the
			 * CA's reason: the operator needs it. */
			snprintf(why, sizeof(why), "the CA refused the request%s%.900s",
				 t->last_error[0] != '\0' ? ": " : "", t->last_error);
			stop(t, why);
		}
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
	answer_outcome(t, op);
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

static int reload(conf_diag *d);

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

/* A step before its time that a client other than root and the agent's user
 * asks for: at most one per enrollment per retry_min, so that the control
 * group cannot make the agent hammer the CA or the token faster than its
 * own quickest retry.  0 when allowed (and counted); else why in msg. */
static int forced_allowed(track *t, const ctl_client *c, const char *what, char *msg,
			  size_t len)
{
	long long n = now(), gap = t->pol.backoff_min > 0 ? t->pol.backoff_min : 1, at;
	time_t wall;
	struct tm tm;
	char when[32] = "?";

	if (c->privileged)
		return 0;
	if (t->forced_at == 0 || n - t->forced_at >= gap) {
		t->forced_at = n;
		return 0;
	}
	at = t->forced_at + gap;
	wall = (time_t)(time(NULL) + (at - n) / (A.rate > 1 ? A.rate : 1));
	if (gmtime_r(&wall, &tm) != NULL)
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
	snprintf(msg, len,
		 "%s: not %s: a client forced a step %lld s ago, and one is allowed per %lld s "
		 "(retry_min) while the enrollment is in %s: the next is allowed in %lld s "
		 "(%s UTC)",
		 t->name, what, n - t->forced_at, gap, track_state_name(t->st), at - n, when);
	if (t->st == T_BACKOFF && t->next > n)
		snprintf(msg + strlen(msg), len - strlen(msg), "; the agent retries by itself in %lld s",
			 t->next - n);
	snprintf(msg + strlen(msg), len - strlen(msg), "\n");
	log_msg(LOG_NOTICE, "control: %s: uid %ld forced a step too soon (%s): the next is "
			    "allowed in %lld s",
		t->name, (long)c->uid, what, at - n);
	return -1;
}

/* clear NAME.  A PIN latch keeps a PIN the token rejected from being tried
 * again: lifting it costs a login attempt, so only root and the agent's
 * user may, unless the PIN source changed since (then the agent would lift
 * it by itself). */
static void request_clear(ctl_client *c, track *t)
{
	char fp[512], msg[700];
	int skips = t->st == T_STOPPED || (t->st == T_BACKOFF && t->next > now());

	if (t->st == T_PIN && !c->privileged) {
		track_pin_fingerprint(&t->e, fp, sizeof(fp));
		if (strcmp(fp, t->pin_latch) == 0) {
			log_msg(LOG_WARNING, "control: refused to clear the PIN latch of %s for uid %ld",
				t->name, (long)c->uid);
			snprintf(msg, sizeof(msg),
				 "%s: not cleared: the token rejected the PIN and the PIN source has "
				 "not changed since; only root or the agent's user (uid %ld) may clear "
				 "the PIN latch, or change the PIN source (a new PIN file) and the "
				 "agent tries it\n",
				 t->name, (long)geteuid());
			reply(c->fd, EXIT_USAGE, msg);
			return;
		}
	}
	if (skips && forced_allowed(t, c, "cleared", msg, sizeof(msg)) < 0) {
		reply(c->fd, EXIT_BUSY, msg);
		return;
	}
	if (t->st == T_PIN)
		log_msg(LOG_NOTICE, "%s: PIN latch cleared by uid %ld", t->name, (long)c->uid);
	t->pin_latch[0] = '\0';
	if (t->st == T_STOPPED || t->st == T_PIN)
		t->st = T_START;
	t->failures = 0;
	t->need_recover = 1;
	t->next = now();
	publish(t);
	snprintf(msg, sizeof(msg), "cleared %s\n", t->name);
	reply(c->fd, EXIT_OK, msg);
}

/* renew NAME: answered when the step ends (finished()), or at once when it
 * will not run. */
static void request_renew(ctl_client *c, track *t)
{
	char msg[700];

	if (t->waiter_fd >= 0) {
		reply(c->fd, EXIT_USAGE, "a renewal of this enrollment was already requested\n");
		return;
	}
	if (t->st == T_BACKOFF && t->next > now() &&
	    forced_allowed(t, c, "renewed", msg, sizeof(msg)) < 0) {
		reply(c->fd, EXIT_BUSY, msg);
		return;
	}
	t->waiter_fd = c->fd;
	c->phase = CTL_WAIT;
	if (t->st != T_POLLING)
		t->next = now();
}

static void handle_request(ctl_client *c)
{
	const char *line = c->line, *name = NULL;
	ctl_verb verb = ctl_parse_request(line, &name);
	char msg[600];
	track *t;
	char *json;
	size_t len;

	log_msg(LOG_DEBUG, "control: '%s' from uid %ld", line, (long)c->uid);
	if (verb == CTL_STATUS_JSON || verb == CTL_STATUS_TEXT) {
		json = verb == CTL_STATUS_JSON ? track_status_json(A.tracks, A.n, now(), A.rate, &len)
					       : track_status_text(A.tracks, A.n, now(), &len);
		if (json == NULL || ctl_client_queue(c, json, len) < 0)
			log_msg(LOG_ERR, "control: out of memory for the status");
		free(json);
		reply(c->fd, -1, NULL);
		return;
	}
	if (verb == CTL_RELOAD) {
		conf_diag d = { 0 };
		int r = reload(&d);

		if (r >= 0) {
			reply(c->fd, EXIT_OK,
			      r == 0 ? "" : "a step is running: the agent reloads when it ends\n");
		} else if (c->uid == 0 || c->uid == geteuid()) {
			/* the file's contents only to whom may read it anyway */
			if (d.text != NULL && ctl_client_queue(c, d.text, d.len) < 0)
				log_msg(LOG_ERR, "control: out of memory for an answer");
			reply(c->fd, EXIT_USAGE,
			      "reload failed: the agent keeps its previous configuration; fix the "
			      "file and reload again\n");
		} else {
			reply(c->fd, EXIT_USAGE,
			      "reload failed: the agent keeps its previous configuration; its log "
			      "says why\n");
		}
		conf_diag_clear(&d);
		return;
	}
	if ((verb == CTL_RENEW || verb == CTL_CLEAR) && (t = find(name)) != NULL) {
		if (verb == CTL_CLEAR)
			request_clear(c, t);
		else
			request_renew(c, t);
		return;
	}
	snprintf(msg, sizeof(msg), "unknown request or enrollment: %.100s\n", line);
	reply(c->fd, EXIT_USAGE, msg);
}

static size_t active_clients(void)
{
	size_t i, k = 0;

	for (i = 0; i < A.nclients; i++)
		if (A.clients[i].phase != CTL_WAIT)
			k++;
	return k;
}

/* A new connection: checked, and refused when the agent serves enough. */
static void accept_client(int fd)
{
	static const char busy_msg[] = "the agent serves too many control clients: try again "
				       "later\nexit 11\n";
	char junk[CTL_LINE_MAX];
	struct ucred cr;
	socklen_t crlen = sizeof(cr);
	ctl_client *c;
	size_t limit;
	int privileged;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) < 0 || !peer_allowed(&cr)) {
		log_msg(LOG_WARNING, "control: refused a client (uid %ld): only root, the agent's "
				     "user and the control_group may use the socket",
			crlen == sizeof(cr) ? (long)cr.uid : -1L);
		close(fd);
		return;
	}
	privileged = cr.uid == 0 || cr.uid == geteuid();
	limit = privileged ? CTL_MAX_CLIENTS : CTL_MAX_CLIENTS - CTL_RESERVED;
	if (active_clients() >= limit) {
		log_msg(LOG_WARNING, "control: refused a client (uid %ld): %zu clients are served "
				     "already",
			(long)cr.uid, active_clients());
		/* what it sent already is read, so that the close is no reset
		 * that loses the message */
		while (recv(fd, junk, sizeof(junk), MSG_DONTWAIT) > 0)
			;
		(void)send(fd, busy_msg, sizeof(busy_msg) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
		close(fd);
		return;
	}
	if (A.nclients == A.cap_clients) {
		size_t cap = A.cap_clients ? A.cap_clients * 2 : 8;

		if ((c = realloc(A.clients, cap * sizeof(*c))) == NULL) {
			log_msg(LOG_ERR, "control: out of memory for a client");
			close(fd);
			return;
		}
		A.clients = c;
		A.cap_clients = cap;
	}
	c = &A.clients[A.nclients++];
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->uid = cr.uid;
	c->gid = cr.gid;
	c->privileged = privileged;
	c->phase = CTL_READ;
	c->deadline = ctl_now_ms() + (long long)A.ctl_timeout * 1000;
}

static void drop_client(size_t i, const char *why)
{
	ctl_client *c = &A.clients[i];

	if (why != NULL)
		log_msg(LOG_WARNING, "control: dropped a client (uid %ld): %s", (long)c->uid, why);
	ctl_client_close(c);
	A.clients[i] = A.clients[--A.nclients];
}

/* After poll: each client that poll reported on, then the deadlines. */
static void serve_clients(const struct pollfd *pf, size_t np)
{
	long long t = ctl_now_ms();
	char why[96];
	size_t i, k;
	ctl_client *c;
	ctl_io io;

	for (k = 0; k < np; k++) {
		if (pf[k].revents == 0 || (c = client_of(pf[k].fd)) == NULL || c->phase == CTL_WAIT)
			continue;
		io = ctl_client_io(c);
		if (io == CTL_IO_REQUEST) {
			handle_request(c);
			continue;
		}
		if (io == CTL_IO_TOO_LONG) {
			snprintf(why, sizeof(why), "request line too long (more than %d bytes)",
				 CTL_LINE_MAX - 1);
			log_msg(LOG_WARNING, "control: uid %ld sent a %s", (long)c->uid, why);
			reply(c->fd, EXIT_USAGE, why);
			continue;
		}
		if (io == CTL_IO_DONE) {
			c->phase = CTL_LINGER;
			c->deadline = 0;
		}
	}
	for (i = 0; i < A.nclients;) {
		c = &A.clients[i];
		if (c->phase == CTL_WAIT || c->deadline > t) {
			i++;
			continue;
		}
		if (c->phase == CTL_READ)
			snprintf(why, sizeof(why), "no request line within %d s (%zu bytes of one)",
				 A.ctl_timeout, c->len);
		else if (c->phase == CTL_WRITE)
			snprintf(why, sizeof(why), "did not take its answer within %d s",
				 A.ctl_timeout);
		drop_client(i, c->phase == CTL_READ || c->phase == CTL_WRITE ? why : NULL);
	}
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

/*
 * Reads the file again: 0, or 1 when that waits for the running steps to
 * end; on failure (-1) keeps the enrollments it had, every reason in d.
 */
static int reload(conf_diag *d)
{
	track **ts = NULL;
	size_t n = 0, i;

	if (busy()) {
		log_msg(LOG_NOTICE, "reload waits: a step is running");
		got_hup = 1;
		return 1;
	}
	(void)notify_send("RELOADING=1");
	if (load_all(&ts, &n, d) < 0) {
		log_diag(LOG_ERR, "reload failed: ", d);
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
	struct pollfd *pf = NULL, *np_pf;
	size_t cap = 0, need, ntracks, i, np;
	track *owner[32];
	long long n, wait, ms, first;
	int fd, timeout;
	char c;

	for (;;) {
		if (got_hup && !busy()) {
			conf_diag d = { 0 };

			got_hup = 0;
			(void)reload(&d);
			conf_diag_clear(&d);
		}
		if (got_term && !busy())
			break;
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
		need = 2 + 2 * 32 + A.nclients;
		if (need > cap) {
			if ((np_pf = realloc(pf, need * sizeof(*pf))) == NULL) {
				log_msg(LOG_ERR, "out of memory");
				break;
			}
			pf = np_pf;
			cap = need;
		}
		np = 0;
		pf[np].fd = sigpipe_fds[0];
		pf[np++].events = POLLIN;
		pf[np].fd = A.lfd;
		pf[np++].events = POLLIN;
		for (i = 0, ntracks = 0; i < A.n && ntracks < 32; i++) {
			if (A.tracks[i]->pid <= 0)
				continue;
			owner[ntracks++] = A.tracks[i];
			pf[np].fd = A.tracks[i]->out_fd;
			pf[np++].events = POLLIN;
			pf[np].fd = A.tracks[i]->err_fd;
			pf[np++].events = POLLIN;
		}
		/* the clients, and the first of their deadlines */
		first = -1;
		for (i = 0; i < A.nclients; i++) {
			if (A.clients[i].phase == CTL_WAIT)
				continue;
			pf[np].fd = A.clients[i].fd;
			pf[np++].events = ctl_client_events(&A.clients[i]);
			if (first < 0 || A.clients[i].deadline < first)
				first = A.clients[i].deadline;
		}
		timeout = busy() ? 1000 : wait_ms(wait < 1 ? 1 : wait);
		if (first >= 0) {
			ms = first - ctl_now_ms();
			ms = ms < 0 ? 0 : ms + 1;
			if (ms < timeout)
				timeout = (int)ms;
		}
#ifdef P11E_COVERAGE
		cov_checkpoint(); /* LCOV_EXCL_LINE */
#endif
		if (poll(pf, np, timeout) < 0 && errno != EINTR)
			break;
		if (pf[0].revents & POLLIN)
			while (read(sigpipe_fds[0], &c, 1) > 0)
				;
		for (i = 0; i < ntracks; i++) {
			if (pf[2 + 2 * i].revents)
				drain_out(owner[i]);
			if (pf[3 + 2 * i].revents)
				drain_err(owner[i], 0);
		}
		reap();
		serve_clients(pf + 2 + 2 * ntracks, np - 2 - 2 * ntracks);
		if (A.lfd >= 0 && (pf[1].revents & POLLIN))
			while ((fd = accept4(A.lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0)
				accept_client(fd);
	}
	free(pf);
}

int agent_daemon(const char *config, const conf_enrollment *cli)
{
	struct sigaction sa;
	char err[512];
	const char *rate = getenv("P11ENROLL_TEST_CLOCK_RATE");
	const char *ctl_timeout = getenv("P11ENROLL_TEST_CTL_TIMEOUT");
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
	A.ctl_timeout = ctl_timeout != NULL ? (int)strtol(ctl_timeout, NULL, 10) : CTL_TIMEOUT_S;
	if (A.ctl_timeout < 1 || A.ctl_timeout > 3600)
		A.ctl_timeout = CTL_TIMEOUT_S;
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
	{
		conf_diag d = { 0 };

		if (load_all(&A.tracks, &A.n, &d) < 0) {
			log_diag(LOG_ERR, "", &d);
			conf_diag_clear(&d);
			return EXIT_USAGE;
		}
		conf_diag_clear(&d);
	}
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
	/* the answers go out as far as the clients take them now */
	for (i = 0; i < A.n; i++)
		answer_waiter_code(A.tracks[i], EXIT_INTERNAL, "the agent stopped\n");
	for (i = 0; i < A.nclients; i++)
		ctl_client_close(&A.clients[i]);
	free(A.clients);
	for (i = 0; i < A.n; i++)
		track_free(A.tracks[i]);
	free(A.tracks);
	log_msg(LOG_NOTICE, "stopped");
	return EXIT_OK;
}
