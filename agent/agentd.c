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
#include <limits.h>
#include <malloc.h>
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

/* The enrollments of one token (the same module and token settings): at
 * most one child runs on it, a look at several of them at once. */
typedef struct token_group {
	child_run *run; /* or NULL */
	track **tracks; /* into A.members, in the file's order */
	size_t n;
} token_group;

/* Real milliseconds between two writes of the metrics file: a pass over
 * thousands of enrollments ends a step thousands of times. */
#define METRICS_GAP_MS 1000
/* Real milliseconds after which the file is written again although nothing
 * changed: its age (node_exporter's node_textfile_mtime_seconds) tells a
 * watcher that the agent lives, and an agent in good health may have
 * nothing to do for weeks (contrib/prometheus: P11enrollMetricsStale). */
#define METRICS_REFRESH_MS 60000
/* The longest the loop sleeps (real seconds) when nothing is due sooner:
 * poll counts on the monotonic clock, the schedule on the wall clock,
 * which may jump. */
#define WAIT_MAX_S 3600

static struct {
	const char *config;
	const char *state_dir; /* --state-dir from the command line, or NULL */
	char self[4096];       /* this program, for the children */
	child_cmd cmd;
	long rate; /* P11ENROLL_TEST_CLOCK_RATE: agent seconds per second */
	time_t t0;
	track **tracks;
	size_t n;
	/* the index: the groups, their members, the running children */
	token_group *groups;
	size_t ngroups;
	track **members;
	child_run **runs;
	size_t nruns;
	track **pass; /* room for the members of one pass */
	size_t nlooked;	   /* enrollments looked at since start or reload */
	long long t0_ms;   /* ctl_now_ms() at start or reload */
	int metrics_dirty; /* the metrics file is behind */
	int saves_due;	   /* some enrollment's state file is behind */
	long long metrics_ms; /* ctl_now_ms() of its last write */
	/* the steps run since the agent started, per track_op: counters of
	 * the agent, so a reload that drops an enrollment takes none away */
	metrics_step steps[OP_RESUME + 1];
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

	return ms < 0 ? 0 : ms > WAIT_MAX_S * 1000LL ? WAIT_MAX_S * 1000 : (int)ms;
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

static int by_token(const void *pa, const void *pb)
{
	const track *a = *(track *const *)pa, *b = *(track *const *)pb;
	int c = strcmp(a->e.module != NULL ? a->e.module : "", b->e.module != NULL ? b->e.module : "");

	if (c == 0)
		c = strcmp(a->e.token != NULL ? a->e.token : "", b->e.token != NULL ? b->e.token : "");
	/* the file's order within a token: track_load_all allocates in it,
	 * but the addresses need not rise; the order of A.tracks does */
	return c != 0 ? c : a->looked < b->looked ? -1 : a->looked > b->looked;
}

/* The groups of A.tracks, built at start and reload (no child runs then):
 * 0, or -1 when out of memory. */
static int build_index(void)
{
	size_t i;
	token_group *g = NULL;

	free(A.groups);
	free(A.members);
	free(A.runs);
	free(A.pass);
	A.groups = calloc(A.n, sizeof(*A.groups));
	A.members = malloc(A.n * sizeof(*A.members));
	A.runs = calloc(A.n, sizeof(*A.runs));
	A.pass = malloc((A.n < CHILD_PASS_MAX ? A.n : CHILD_PASS_MAX) * sizeof(*A.pass));
	A.ngroups = A.nruns = 0;
	if (A.groups == NULL || A.members == NULL || A.runs == NULL || A.pass == NULL)
		return -1;
	/* looked holds the position while sorting: no track has had a look yet */
	for (i = 0; i < A.n; i++) {
		A.members[i] = A.tracks[i];
		A.tracks[i]->looked = (int)i;
	}
	qsort(A.members, A.n, sizeof(*A.members), by_token);
	for (i = 0; i < A.n; i++) {
		track *t = A.members[i];

		if (g == NULL || !same_token(g->tracks[0], t)) {
			g = &A.groups[A.ngroups++];
			g->tracks = &A.members[i];
		}
		g->n++;
		t->grp = g;
		t->tick_at = 0;
		t->looked = 0;
	}
	A.nlooked = 0;
	A.t0_ms = ctl_now_ms();
	return 0;
}

/* The parsed configuration file is freed once the enrollments are built
 * from it: several times their size for thousands of enrollments, in the
 * middle of the heap, where malloc keeps it unless asked to give it back. */
static void trim(void)
{
	(void)malloc_trim(0);
}

/* t's state (every enrollment's when t is NULL) is saved at the end of
 * this round of the loop (save_all()), the metrics within METRICS_GAP_MS:
 * one enrollment's step leaves the others' files alone, and the steps of a
 * round (a pass's records) share one sync. */
static void publish(track *t)
{
	size_t i;

	if (t != NULL)
		t->save_due = 1;
	for (i = 0; t == NULL && i < A.n; i++)
		A.tracks[i]->save_due = 1;
	A.saves_due = 1;
	A.metrics_dirty = A.metrics[0] != '\0';
}

/* The state files publish() asked for, in one batch. */
static void save_all(void)
{
	track **due;
	size_t i, k = 0;

	if (!A.saves_due)
		return;
	A.saves_due = 0;
	if ((due = malloc(A.n * sizeof(*due))) == NULL) {
		for (i = 0; i < A.n; i++)
			if (A.tracks[i]->save_due)
				(void)track_save(A.tracks[i]);
	} else {
		for (i = 0; i < A.n; i++)
			if (A.tracks[i]->save_due)
				due[k++] = A.tracks[i];
		(void)track_save_all(due, k);
		free(due);
	}
	for (i = 0; i < A.n; i++)
		A.tracks[i]->save_due = 0;
}

/* The metrics file when it is behind and its time has come (force: now), or
 * when the refresh interval has passed: METRICS_REFRESH_MS, shorter on the
 * test clock like the agent's other intervals, so that a test sees the
 * refresh without waiting a minute, but never below METRICS_GAP_MS.  The
 * real milliseconds until the next write, or -1: no metrics file. */
static long long write_metrics(int force)
{
	long long ms = ctl_now_ms();
	long long refresh = METRICS_REFRESH_MS / (A.rate > 1 ? A.rate : 1);

	if (refresh < METRICS_GAP_MS)
		refresh = METRICS_GAP_MS;
	if (A.metrics[0] == '\0')
		return -1;
	if (!A.metrics_dirty && ms - A.metrics_ms < refresh)
		return A.metrics_ms + refresh - ms;
	if (!force && ms - A.metrics_ms < METRICS_GAP_MS)
		return A.metrics_ms + METRICS_GAP_MS - ms;
	track_write_metrics(A.tracks, A.n, A.steps + 1, OP_RESUME, A.metrics);
	A.metrics_dirty = 0;
	A.metrics_ms = ms;
	return refresh;
}

/* ---- events and actions ---------------------------------------------------- */

static void event(track *t, fsm_event *ev);

/* Starts op for members[0..n) (one group's), and tells each. */
static void start(track **members, size_t n, track_op op)
{
	child_run *c = child_launch(&A.cmd, members, n, op);
	fsm_event ev;
	size_t i;

	if (c != NULL) {
		members[0]->grp->run = c;
		A.runs[A.nruns++] = c;
	}
	for (i = 0; i < n; i++) {
		memset(&ev, 0, sizeof(ev));
		ev.kind = c != NULL ? EV_STARTED : EV_LAUNCH_FAILED;
		ev.op = op;
		event(members[i], &ev);
	}
}

/* The client waiting for t's step gets the step's output, as a run by
 * hand prints it, and the exit status. */
static void answer_step(const track *t, const fsm_action *a)
{
	const child_run *c = t->run;
	const char *text;
	char *msg = NULL;
	size_t len;

	if (c == NULL) {
		ctl_serve_reply(&A.srv, a->fd, a->code, a->text);
		return;
	}
	text = a->ok || c->erralllen == 0 ? a->text : "";
	/* what did not fit is in the log, and the client is told so */
	if (c->errcut > 0 && (msg = malloc(len = strlen(text) + 160)) != NULL)
		snprintf(msg, len, "%s: %zu more bytes of the step's messages are in the agent's "
				   "log\n%s",
			 t->name, c->errcut, text);
	ctl_serve_reply_step(&A.srv, a->fd, a->code, c->out, c->outlen, c->errall, c->erralllen,
			     msg != NULL ? msg : text);
	free(msg);
}

static void carry_out(track *t, const fsm_actions *acts)
{
	const fsm_action *a;
	size_t i;

	for (i = 0; i < acts->n; i++) {
		a = &acts->a[i];
		switch (a->kind) {
		case ACT_START: start(&t, 1, a->op); break;
		case ACT_WAKE: t->tick_at = a->at; break;
		case ACT_HOOK: child_hook(t, a->ok); break;
		case ACT_PUBLISH: publish(t); break;
		case ACT_ANSWER: ctl_serve_reply(&A.srv, a->fd, a->code, a->text); break;
		case ACT_ANSWER_OUTPUT: answer_step(t, a); break;
		case ACT_WAIT: ctl_serve_wait(&A.srv, a->fd); break;
		case ACT_LOG: log_msg(a->level, "%s", a->text); break;
		}
	}
}

/* The first look at every enrollment is over: the observable end of the
 * start-up (bench/agent-scale.sh waits for it). */
static void looked_at(track *t)
{
	if (t->looked)
		return;
	t->looked = 1;
	if (++A.nlooked == A.n)
		log_msg(LOG_NOTICE, "every enrollment has had its first look: %zu in %.1f s", A.n,
			(double)(ctl_now_ms() - A.t0_ms) / 1000.0);
}

/*
 * Feeds ev to t's state machine and carries out what it asks for, except
 * a start when take is given: *take receives its op (else OP_NONE), and
 * the caller starts it (a look in the token's pass) or leaves it to a
 * later tick.
 */
static void spread_lock(const track *t, const char *lock, fsm_event_kind kind);

/* A step of ev->op ended with rc (the machine's verdict, t->exit_code). */
static void counted(const fsm_event *ev, int rc)
{
	metrics_step *s = &A.steps[ev->op];

	s->count++;
	s->seconds += ev->seconds > 0 ? ev->seconds : 0;
	s->failed += rc != EXIT_OK;
}

static void step(track *t, fsm_event *ev, track_op *take)
{
	fsm_actions *acts = malloc(sizeof(*acts));
	char fp[512] = "", was_locked[sizeof(t->pin_locked)];
	int was = t->st == T_LOCKED;
	size_t i;

	memcpy(was_locked, t->pin_locked, sizeof(was_locked));
	if (take != NULL)
		*take = OP_NONE;
	if (acts == NULL) {
		log_msg(LOG_ERR, "%s: out of memory for the state machine", t->name);
		return;
	}
	ev->now = now();
	/* A stat of the PIN file: only where the machine compares it. */
	if (ev->kind != EV_TICK || t->st == T_PIN)
		track_pin_fingerprint(&t->e, fp, sizeof(fp));
	ev->pin_fp = fp;
	/* Until the machine says when (ACT_WAKE), a tick that starts nothing
	 * needs none again (stopped); any other event needs one. */
	t->tick_at = ev->kind == EV_TICK ? LLONG_MAX : 0;
	fsm_step(t, ev, acts);
	if (ev->kind == EV_STEP_DONE && ev->op > OP_NONE && ev->op <= OP_RESUME)
		counted(ev, t->exit_code);
	if (ev->kind == EV_STEP_DONE && (ev->op == OP_RECOVER || ev->op == OP_CHECK))
		looked_at(t);
	for (i = 0; take != NULL && i < acts->n; i++)
		if (acts->a[i].kind == ACT_START) {
			*take = acts->a[i].op;
			memmove(&acts->a[i], &acts->a[i + 1], (acts->n - i - 1) * sizeof(acts->a[0]));
			acts->n--;
			t->tick_at = 0; /* the same start, at the next tick */
			break;
		}
	carry_out(t, acts);
	free(acts);
	if (ev->kind == EV_STEP_DONE && t->st == T_LOCKED && !was)
		spread_lock(t, t->pin_locked, EV_LOCKED);
	else if (ev->kind == EV_CLEAR && was && t->st != T_LOCKED)
		spread_lock(t, was_locked, EV_UNLOCKED);
}

static void event(track *t, fsm_event *ev)
{
	step(t, ev, NULL);
}

/* A lockout that t's step found (EV_LOCKED), or that clear NAME lifted
 * from t (EV_UNLOCKED), is the same for every enrollment it covers. */
static void spread_lock(const track *t, const char *lock, fsm_event_kind kind)
{
	fsm_event ev;
	size_t i;

	for (i = 0; i < A.n; i++) {
		if (!fsm_lock_covers(t, lock, A.tracks[i]))
			continue;
		memset(&ev, 0, sizeof(ev));
		ev.kind = kind;
		ev.lock = lock;
		ev.lock_by = t->name;
		event(A.tracks[i], &ev);
	}
}

/* ---- the loop ---------------------------------------------------------------- */

/* How long c has run, in seconds (0 when the clock fails). */
static double ran(const child_run *c)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
		return 0;
	return (double)(ts.tv_sec - c->started.tv_sec) +
	       (double)(ts.tv_nsec - c->started.tv_nsec) / 1e9;
}

/* A record of a pass: its enrollment's step is done. */
static void pass_record(track *t, const agent_result *res, void *arg)
{
	const child_run *c = arg;
	fsm_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.kind = EV_STEP_DONE;
	ev.op = c->op;
	ev.exited = 1;
	ev.exit_code = res->exit_code;
	ev.seconds = ran(c);
	ev.res = res;
	event(t, &ev);
}

/* The child c ended with status: each of its enrollments without a record
 * gets the process's end (a missing record, or the signal). */
static void ended(child_run *c, int status)
{
	agent_result res;
	fsm_event ev;
	char why[256];
	size_t k, before;

	memset(&ev, 0, sizeof(ev));
	ev.kind = EV_STEP_DONE;
	ev.op = c->op;
	ev.exited = WIFEXITED(status);
	ev.exit_code = ev.exited ? WEXITSTATUS(status) : EXIT_INTERNAL;
	ev.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
	ev.seconds = ran(c);
	if (!c->pass) {
		ev.res = child_finish(c, &res, why, sizeof(why)) == 0 ? &res : NULL;
		ev.res_why = why;
		event(c->members[0], &ev); /* its run (stdout) is still there */
		return;
	}
	child_drain_err(c, 1);
	do {
		before = c->done;
		child_drain_res(c, pass_record, c);
	} while (c->done != before);
	if (c->res_bad)
		snprintf(why, sizeof(why), "%s", c->res_why);
	else
		snprintf(why, sizeof(why), "the look at %zu enrollments ended after %zu records",
			 c->n, c->done);
	ev.res_why = why;
	for (k = c->done; k < c->n; k++) {
		c->members[k]->run = NULL;
		c->members[k]->op = OP_NONE;
		event(c->members[k], &ev);
	}
}

static void reap(void)
{
	child_run *c;
	int status;
	pid_t pid;
	size_t i;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		for (i = 0; i < A.nruns; i++) {
			if ((c = A.runs[i])->pid != pid)
				continue;
			/* a hook's process is none of these */
			A.runs[i] = A.runs[--A.nruns];
			c->members[0]->grp->run = NULL;
			ended(c, status);
			child_free(c);
			break;
		}
}

static int busy(void)
{
	return A.nruns > 0;
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
	save_all(); /* before the enrollments it is due for are gone */
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
	if (build_index() < 0)
		log_msg(LOG_ERR, "reload: out of memory for the index");
	trim();
	A.srv.group = A.tracks != NULL && A.n > 0 ? A.tracks[0]->e.control_group : NULL;
	log_msg(LOG_NOTICE, "configuration reloaded: %zu enrollment(s)", n);
	(void)notify_send("READY=1");
	return 0;
}

/* The poll set: the signal pipe, the socket, each running child's stdout,
 * stderr and records (A.runs[k] is that of pf[2 + 3k] to pf[4 + 3k]; a
 * descriptor at its end is -1, which poll skips), then the clients.
 * Returns the number of entries. */
static size_t poll_set(struct pollfd *pf, long long *first)
{
	size_t k, np = 0;

	pf[np].fd = sigpipe_fds[0];
	pf[np++].events = POLLIN;
	pf[np].fd = A.lfd;
	pf[np++].events = POLLIN;
	for (k = 0; k < A.nruns; k++) {
		child_run *c = A.runs[k];

		/* a full stdout buffer is read no more (its client gets that much) */
		pf[np].fd = c->outlen < sizeof(c->out) - 1 ? c->out_fd : -1;
		pf[np++].events = POLLIN;
		pf[np].fd = c->err_fd;
		pf[np++].events = POLLIN;
		pf[np].fd = c->res_fd;
		pf[np++].events = POLLIN;
	}
	return np + ctl_serve_pollfds(&A.srv, pf + np, first);
}

/*
 * The next steps on a token without a running child, in the file's order:
 * each enrollment whose tick is due is ticked; the first start decides.
 * A step of its own (renew, enroll, resume) runs alone; a look gathers the
 * looks that join it (fsm_joins_pass, up to CHILD_PASS_MAX enrollments and
 * CHILD_PASS_MAX_BYTES of names) into one pass.  A start left out is
 * asked for again at the token's next round.  Returns the earliest tick
 * time of the token's enrollments when nothing started, else LLONG_MAX.
 */
static long long schedule(token_group *g, long long n)
{
	track *lead = NULL;
	track_op lead_op = OP_NONE, op;
	size_t i, np = 0, bytes = 0;
	long long wake = LLONG_MAX;
	int again = 0; /* a start left out, or one that failed */
	fsm_event ev;

	for (i = 0; i < g->n && g->run == NULL && !got_term; i++) {
		track *t = g->tracks[i];

		if (t->tick_at > n) {
			if (t->tick_at < wake)
				wake = t->tick_at;
			continue;
		}
		memset(&ev, 0, sizeof(ev));
		ev.kind = EV_TICK;
		step(t, &ev, &op);
		if (op == OP_NONE) {
			if (t->tick_at < wake)
				wake = t->tick_at;
			continue;
		}
		if (lead == NULL && op != OP_RECOVER && op != OP_CHECK) {
			start(&t, 1, op);
			again = 1; /* a launch that failed leaves the token free */
			continue;
		}
		if (lead == NULL) {
			lead = t;
			lead_op = op;
		} else if (np == CHILD_PASS_MAX || bytes + strlen(t->name) + 1 > CHILD_PASS_MAX_BYTES ||
			   !fsm_joins_pass(lead, lead_op, t, op)) {
			again = 1;
			continue;
		}
		A.pass[np++] = t;
		bytes += strlen(t->name) + 1;
	}
	if (np > 0)
		start(A.pass, np, lead_op);
	if (g->run != NULL)
		return LLONG_MAX;
	return again ? n : wake;
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
	if ((verb == CTL_STATUS_JSON || verb == CTL_STATUS_TEXT) && name != NULL &&
	    (t = find(name)) == NULL) {
		snprintf(msg, sizeof(msg),
			 "the agent tracks no enrollment '%.100s': `p11enroll status` lists "
			 "those it does (reload it after adding one to the file)\n",
			 name);
		ctl_serve_reply(&A.srv, c->fd, EXIT_USAGE, msg);
		return;
	}
	if (verb == CTL_STATUS_JSON || verb == CTL_STATUS_TEXT) {
		track *const *ts = name != NULL ? &t : A.tracks;
		size_t nt = name != NULL ? 1 : A.n;

		json = verb == CTL_STATUS_JSON ? track_status_json(ts, nt, now(), A.rate, &len)
					       : track_status_text(ts, nt, now(), &len);
		if (json == NULL || ctl_client_frame0(c, CTL_FRAME_OUT, json, len) < 0) {
			log_msg(LOG_ERR, "control: out of memory for the status");
			ctl_serve_reply(&A.srv, c->fd, EXIT_INTERNAL,
					"the agent is out of memory for the status: its log says more");
			return;
		}
		ctl_serve_reply(&A.srv, c->fd, EXIT_OK, NULL);
		return;
	}
	if (verb == CTL_RELOAD) {
		conf_diag diag = { 0 };
		int r = reload(&diag);

		if (r >= 0) {
			ctl_serve_reply(&A.srv, c->fd, EXIT_OK,
			      r == 0 ? "" : "a step is running: the agent reloads when it ends\n");
		} else if (c->uid == 0 || c->uid == geteuid()) {
			/* the file's contents only to whom may read it anyway:
			 * each problem as check-config says it, then what the
			 * agent did */
			static const char kept[] = "reload failed: the agent keeps its previous "
						   "configuration; fix the file and reload again\n";

			if (diag.text != NULL &&
			    ctl_client_frame(c, CTL_FRAME_MSG, diag.text, diag.len) < 0)
				log_msg(LOG_ERR, "control: out of memory for an answer");
			ctl_serve_reply(&A.srv, c->fd, EXIT_USAGE, kept);
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
	if (verb == CTL_RENEW || verb == CTL_CLEAR)
		snprintf(msg, sizeof(msg),
			 "the agent tracks no enrollment '%.100s': `p11enroll status` lists "
			 "those it does (reload it after adding one to the file)\n",
			 name);
	else
		snprintf(msg, sizeof(msg), "unknown request: %.100s\n", line);
	ctl_serve_reply(&A.srv, c->fd, EXIT_USAGE, msg);
}

static void loop(void)
{
	struct pollfd *pf = NULL, *np_pf;
	size_t cap = 0, need, i, np, nruns;
	long long n, ms, first, w;
	int fd, timeout;
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
		/* Only the tokens without a child: a busy token's enrollments
		 * wait for its child's end, which wakes the loop (SIGCHLD). */
		n = now();
		A.wake = LLONG_MAX;
		for (i = 0; i < A.ngroups; i++)
			if (A.groups[i].run == NULL && (w = schedule(&A.groups[i], n)) < A.wake)
				A.wake = w;
		need = 2 + 3 * A.nruns + A.srv.n;
		if (need > cap) {
			if ((np_pf = realloc(pf, need * sizeof(*pf))) == NULL) {
				log_msg(LOG_ERR, "out of memory");
				break;
			}
			pf = np_pf;
			cap = need;
		}
		np = poll_set(pf, &first);
		nruns = A.nruns;
		timeout = A.wake == LLONG_MAX ? -1 : wait_ms(A.wake - n < 1 ? 1 : A.wake - n);
		save_all();
		ms = write_metrics(0);
		if (first >= 0) {
			first -= ctl_now_ms();
			first = first < 0 ? 0 : first + 1;
			if (ms < 0 || first < ms)
				ms = first;
		}
		if (ms >= 0 && (timeout < 0 || ms < timeout))
			timeout = (int)ms;
#ifdef P11E_COVERAGE
		cov_checkpoint(); /* LCOV_EXCL_LINE */
#endif
		if (poll(pf, np, timeout) < 0 && errno != EINTR)
			break;
		if (pf[0].revents & POLLIN)
			while (read(sigpipe_fds[0], &c, 1) > 0)
				;
		/* A.runs is as poll_set left it until reap() */
		for (i = 0; i < nruns; i++) {
			child_run *r = A.runs[i];

			if (pf[2 + 3 * i].revents)
				child_drain_out(r);
			if (pf[3 + 3 * i].revents)
				child_drain_err(r, 0);
			if (pf[4 + 3 * i].revents)
				child_drain_res(r, pass_record, r);
		}
		reap();
		ctl_serve(&A.srv, pf + 2 + 3 * nruns, np - 2 - 3 * nruns, handle_request, NULL);
		if (A.lfd >= 0 && (pf[1].revents & POLLIN))
			while ((fd = accept4(A.lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0)
				ctl_serve_accept(&A.srv, fd);
	}
	free(pf);
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
	/* every kind, also those not run yet: a counter at 0 */
	for (i = 0; i < sizeof(A.steps) / sizeof(A.steps[0]); i++)
		A.steps[i].name = track_op_name((track_op)i);
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
	if (build_index() < 0) {
		log_msg(LOG_ERR, "out of memory");
		return EXIT_INTERNAL;
	}
	trim();
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
	save_all();
	(void)write_metrics(1);
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
	free(A.groups);
	free(A.members);
	free(A.runs);
	free(A.pass);
	log_msg(LOG_NOTICE, "stopped");
	return EXIT_OK;
}
