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
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/child.h"
#include "agent/daemon.h"
#include "agent/fsm.h"

/* Seconds a client has to send its request line, and again to take its
 * answer; P11ENROLL_TEST_CTL_TIMEOUT sets another (tests on slow machines). */
#define CTL_TIMEOUT_S 5

static volatile sig_atomic_t got_term, got_hup;
static int sigpipe_fds[2] = { -1, -1 };

static struct {
	const char *config;
	const char *state_dir; /* --state-dir from the command line, or NULL */
	char self[4096];       /* this program, for the children */
	child_cmd cmd;
	long rate; /* P11ENROLL_TEST_CLOCK_RATE: agent seconds per second */
	time_t t0;
	track **tracks;
	size_t n;
	int lfd;
	char sock[1024];
	char metrics[1024];
	ctl_server srv;
	long long wake;	    /* agent time by which the loop looks again */
	int reload_waiting; /* a reload waits for the running steps to end */
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

/* ---- events and actions ---------------------------------------------------- */

static void event(track *t, fsm_event *ev);

static void carry_out(track *t, const fsm_actions *acts)
{
	const fsm_action *a;
	fsm_event ev;
	size_t i;

	for (i = 0; i < acts->n; i++) {
		a = &acts->a[i];
		switch (a->kind) {
		case ACT_START:
			memset(&ev, 0, sizeof(ev));
			ev.kind = child_launch(&A.cmd, t, a->op) < 0 ? EV_LAUNCH_FAILED : EV_STARTED;
			ev.op = a->op;
			event(t, &ev);
			break;
		case ACT_WAKE:
			if (a->at < A.wake)
				A.wake = a->at;
			break;
		case ACT_HOOK: child_hook(t, a->ok); break;
		case ACT_PUBLISH: publish(t); break;
		case ACT_ANSWER: ctl_serve_reply(&A.srv, a->fd, a->code, a->text); break;
		case ACT_ANSWER_OUTPUT: ctl_serve_reply(&A.srv, a->fd, a->code, t->out); break;
		case ACT_WAIT: ctl_serve_wait(&A.srv, a->fd); break;
		case ACT_LOG: log_msg(a->level, "%s", a->text); break;
		}
	}
}

static void event(track *t, fsm_event *ev)
{
	fsm_actions *acts = malloc(sizeof(*acts));
	char fp[512] = "";

	if (acts == NULL) {
		log_msg(LOG_ERR, "%s: out of memory for the state machine", t->name);
		return;
	}
	ev->now = now();
	/* A stat of the PIN file: only where the machine compares it. */
	if (ev->kind != EV_TICK || t->st == T_PIN)
		track_pin_fingerprint(&t->e, fp, sizeof(fp));
	ev->pin_fp = fp;
	fsm_step(t, ev, acts);
	carry_out(t, acts);
	free(acts);
}

/* ---- the loop ---------------------------------------------------------------- */

static void reap(void)
{
	agent_result res;
	fsm_event ev;
	char why[256];
	int status;
	pid_t pid;
	size_t i;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		for (i = 0; i < A.n; i++) {
			track *t = A.tracks[i];

			if (t->pid != pid)
				continue;
			memset(&ev, 0, sizeof(ev));
			ev.kind = EV_STEP_DONE;
			ev.op = t->op;
			ev.exited = WIFEXITED(status);
			ev.exit_code = ev.exited ? WEXITSTATUS(status) : EXIT_INTERNAL;
			ev.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
			ev.res = child_finish(t, &res, why, sizeof(why)) == 0 ? &res : NULL;
			ev.res_why = why;
			event(t, &ev);
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
 * end; on failure (-1) keeps the enrollments it had, every reason in diag.
 */
static int reload(conf_diag *diag)
{
	track **ts = NULL;
	size_t n = 0, i, k;
	char msg[600];

	if (busy()) {
		log_msg(LOG_NOTICE, "reload waits: a step is running");
		A.reload_waiting = 1;
		return 1;
	}
	A.reload_waiting = 0;
	(void)notify_send("RELOADING=1");
	if (track_load_all(A.config, A.state_dir, &ts, &n, diag) < 0) {
		log_diag(LOG_ERR, "reload failed: ", diag);
		log_msg(LOG_ERR, "reload failed: keeping the previous configuration");
		(void)notify_send("READY=1");
		return -1;
	}
	for (i = 0; i < A.n; i++) {
		track *old = A.tracks[i];

		/* a client waiting for a renewal keeps waiting, or is told */
		for (k = 0; k < n && old->waiter_fd >= 0; k++)
			if (strcmp(ts[k]->name, old->name) == 0) {
				ts[k]->waiter_fd = old->waiter_fd;
				old->waiter_fd = -1;
			}
		if (old->waiter_fd >= 0) {
			snprintf(msg, sizeof(msg),
				 "%s: not renewed: the enrollment is no longer in the configuration",
				 old->name);
			ctl_serve_reply(&A.srv, old->waiter_fd, EXIT_USAGE, msg);
		}
		track_free(old);
	}
	free(A.tracks);
	A.tracks = ts;
	A.n = n;
	A.srv.group = A.tracks != NULL && A.n > 0 ? A.tracks[0]->e.control_group : NULL;
	log_msg(LOG_NOTICE, "configuration reloaded: %zu enrollment(s)", n);
	(void)notify_send("READY=1");
	return 0;
}

/* The poll set: the signal pipe, the socket, each step's stdout and stderr
 * (owner[k] is the step of pf[2 + 2k] and pf[3 + 2k]), then the clients.
 * Returns the number of entries; *nsteps the number of steps. */
static size_t poll_set(struct pollfd *pf, track **owner, size_t *nsteps, long long *first)
{
	size_t i, np = 0, k = 0;

	pf[np].fd = sigpipe_fds[0];
	pf[np++].events = POLLIN;
	pf[np].fd = A.lfd;
	pf[np++].events = POLLIN;
	for (i = 0; i < A.n; i++) {
		if (A.tracks[i]->pid <= 0)
			continue;
		owner[k++] = A.tracks[i];
		pf[np].fd = A.tracks[i]->out_fd;
		pf[np++].events = POLLIN;
		pf[np].fd = A.tracks[i]->err_fd;
		pf[np++].events = POLLIN;
	}
	*nsteps = k;
	return np + ctl_serve_pollfds(&A.srv, pf + np, first);
}

static track *find(const char *name)
{
	size_t i;

	for (i = 0; i < A.n; i++)
		if (strcmp(A.tracks[i]->name, name) == 0)
			return A.tracks[i];
	return NULL;
}

/* A request line of a control client (ctl_serve). */
static void handle_request(void *arg, ctl_client *c)
{
	const char *line = c->line, *name = NULL;
	ctl_verb verb = ctl_parse_request(line, &name);
	char msg[600];
	track *t;
	char *json;
	size_t len;

	(void)arg;
	log_msg(LOG_DEBUG, "control: '%s' from uid %ld", line, (long)c->uid);
	if (verb == CTL_STATUS_JSON || verb == CTL_STATUS_TEXT) {
		json = verb == CTL_STATUS_JSON ? track_status_json(A.tracks, A.n, now(), A.rate, &len)
					       : track_status_text(A.tracks, A.n, now(), &len);
		if (json == NULL || ctl_client_queue(c, json, len) < 0)
			log_msg(LOG_ERR, "control: out of memory for the status");
		free(json);
		ctl_serve_reply(&A.srv, c->fd, -1, NULL);
		return;
	}
	if (verb == CTL_RELOAD) {
		conf_diag diag = { 0 };
		int r = reload(&diag);

		if (r >= 0) {
			ctl_serve_reply(&A.srv, c->fd, EXIT_OK,
			      r == 0 ? "" : "a step is running: the agent reloads when it ends\n");
		} else if (c->uid == 0 || c->uid == geteuid()) {
			/* the file's contents only to whom may read it anyway */
			if (diag.text != NULL && ctl_client_queue(c, diag.text, diag.len) < 0)
				log_msg(LOG_ERR, "control: out of memory for an answer");
			ctl_serve_reply(&A.srv, c->fd, EXIT_USAGE,
			      "reload failed: the agent keeps its previous configuration; fix the "
			      "file and reload again\n");
		} else {
			ctl_serve_reply(&A.srv, c->fd, EXIT_USAGE,
			      "reload failed: the agent keeps its previous configuration; its log "
			      "says why\n");
		}
		conf_diag_clear(&diag);
		return;
	}
	if ((verb == CTL_RENEW || verb == CTL_CLEAR) && (t = find(name)) != NULL) {
		fsm_event ev = { 0 };

		ev.kind = verb == CTL_CLEAR ? EV_CLEAR : EV_RENEW;
		ev.fd = c->fd;
		ev.privileged = c->privileged;
		ev.uid = (long)c->uid;
		ev.agent_uid = (long)geteuid();
		ev.wall = (long long)time(NULL);
		ev.rate = A.rate;
		event(t, &ev);
		return;
	}
	snprintf(msg, sizeof(msg), "unknown request or enrollment: %.100s\n", line);
	ctl_serve_reply(&A.srv, c->fd, EXIT_USAGE, msg);
}

static void loop(void)
{
	struct pollfd *pf = NULL, *np_pf;
	track **owner = NULL, **np_owner;
	size_t cap = 0, need, nsteps, i, np;
	long long n, ms, first;
	int fd, timeout;
	fsm_event ev;
	char c;

	for (;;) {
		if ((got_hup || A.reload_waiting) && !busy()) {
			conf_diag d = { 0 };

			got_hup = 0;
			(void)reload(&d);
			conf_diag_clear(&d);
		}
		if (got_term && !busy())
			break;
		n = now();
		A.wake = n + 60;
		for (i = 0; i < A.n && !got_term; i++) {
			track *t = A.tracks[i];

			if (t->pid > 0 || token_busy(t))
				continue;
			memset(&ev, 0, sizeof(ev));
			ev.kind = EV_TICK;
			event(t, &ev);
		}
		need = 2 + 2 * A.n + A.srv.n;
		if (need > cap) {
			if ((np_pf = realloc(pf, need * sizeof(*pf))) == NULL ||
			    (pf = np_pf, (np_owner = realloc(owner, need * sizeof(*owner))) == NULL)) {
				log_msg(LOG_ERR, "out of memory");
				break;
			}
			owner = np_owner;
			cap = need;
		}
		np = poll_set(pf, owner, &nsteps, &first);
		timeout = busy() ? 1000 : wait_ms(A.wake - n < 1 ? 1 : A.wake - n);
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
		for (i = 0; i < nsteps; i++) {
			if (pf[2 + 2 * i].revents)
				child_drain_out(owner[i]);
			if (pf[3 + 2 * i].revents)
				child_drain_err(owner[i], 0);
		}
		reap();
		ctl_serve(&A.srv, pf + 2 + 2 * nsteps, np - 2 - 2 * nsteps, handle_request, NULL);
		if (A.lfd >= 0 && (pf[1].revents & POLLIN))
			while ((fd = accept4(A.lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0)
				ctl_serve_accept(&A.srv, fd);
	}
	free(pf);
	free(owner);
}

agent_rc agent_daemon(const char *config, const conf_enrollment *cli)
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
	A.srv.timeout = ctl_timeout != NULL ? (int)strtol(ctl_timeout, NULL, 10) : CTL_TIMEOUT_S;
	if (A.srv.timeout < 1 || A.srv.timeout > 3600)
		A.srv.timeout = CTL_TIMEOUT_S;
	if ((len = readlink("/proc/self/exe", A.self, sizeof(A.self) - 1)) <= 0) {
		log_msg(LOG_ERR, "cannot find this program (/proc/self/exe)");
		return EXIT_INTERNAL;
	}
	A.self[len] = '\0';
	A.cmd.self = A.self;
	A.cmd.config = A.config;
	A.cmd.state_dir = A.state_dir;
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

		if (track_load_all(A.config, A.state_dir, &A.tracks, &A.n, &d) < 0) {
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
	A.srv.group = A.tracks[0]->e.control_group;
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
		if (A.tracks[i]->waiter_fd >= 0)
			ctl_serve_reply(&A.srv, A.tracks[i]->waiter_fd, EXIT_INTERNAL, "the agent stopped\n");
	ctl_serve_close_all(&A.srv);
	for (i = 0; i < A.n; i++)
		track_free(A.tracks[i]);
	free(A.tracks);
	log_msg(LOG_NOTICE, "stopped");
	return EXIT_OK;
}
