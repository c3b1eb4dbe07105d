/*
 * One card's enrollment at the badge station (station.h): this program's
 * `enroll NAME --token URI` (check --recover, resume) in a child process,
 * its PIN on a pipe, its result record read on another.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/station.h"

/* On a terminal, while a card is enrolled: the seconds so far. */
static void progress(const station *s, const char *card, double secs)
{
	static const char spin[] = "|/-\\";
	char esc[256];

	if (!s->tty || log_verbosity() < 0)
		return;
	printf("\r\033[K%c card %s: enrolling, %.0f s", spin[(int)(secs * 4) % 4],
	       agent_escape(card, esc, sizeof(esc)), secs);
	fflush(stdout);
}

static void exec_child(const station *s, const char *const *argv, int res, int pin)
{
	static const int sigs[] = { SIGTERM, SIGINT, 0 };
	/* A Ctrl-C on the terminal reaches the whole foreground group: in a
	 * group of its own, the card in progress is finished, the station
	 * stops after it.  The child's stdout is no operator line: stderr. */
	agent_exec x = { .self = s->self,
			 .res = res,
			 .pin = pin,
			 .out = STDERR_FILENO,
			 .err = -1,
			 .own_group = 1,
			 .dfl_signals = sigs };

	agent_exec_self(&x, argv);
}

int station_run_child(const station *s, const tok_watch_event *ev, const card_job *job,
		      agent_result *r)
{
	const char *uri = ev->uri;
	double t0 = station_now();
	const char *argv[40 + 2 * AGENT_CLI_SETTINGS_MAX];
	char flags[AGENT_CLI_SETTINGS_MAX][64];
	char buf[AGENT_RESULT_MAX + 1], why[256];
	int res[2] = { -1, -1 }, pin[2] = { -1, -1 }, status, i = 0, k;
	size_t len = 0;
	ssize_t n;
	pid_t pid;

	agent_result_init(r);
	argv[i++] = s->self;
	if (agent_user_mode())
		argv[i++] = "--user";
	if (s->config != NULL) {
		argv[i++] = "-c";
		argv[i++] = s->config;
	}
	/* The operator's command-line settings, as the station itself took
	 * them; those below (the card's token, the row's values, the PIN's
	 * pipe) come later and win. */
	for (k = 0; k < s->o->nset; k++) {
		snprintf(flags[k], sizeof(flags[k]), "--%s", s->o->set_flag[k]);
		argv[i++] = flags[k];
		if (s->o->set_arg[k] != NULL)
			argv[i++] = s->o->set_arg[k];
	}
	argv[i++] = "--journal";
	argv[i++] = "/dev/null";
	argv[i++] = "--token";
	argv[i++] = uri;
	argv[i++] = "--label";
	argv[i++] = job->label;
	argv[i++] = "--subject";
	argv[i++] = job->subject;
	if (job->san != NULL && !job->look) {
		argv[i++] = "--san";
		argv[i++] = job->san;
	}
	if (job->key_type != NULL && !job->look) {
		argv[i++] = "--key-type";
		argv[i++] = job->key_type;
	}
	if (job->profile != NULL && !job->look) {
		argv[i++] = "--cert-profile";
		argv[i++] = job->profile;
	}
	if (job->replace && !job->look && !job->resume)
		argv[i++] = "--replace";
	if (s->pin != NULL) {
		argv[i++] = "--pin-source";
		argv[i++] = AGENT_PIN_SOURCE;
	}
	if (log_verbosity() > 0)
		argv[i++] = "-v";
	else if (log_verbosity() < 0)
		argv[i++] = "-q";
	argv[i++] = job->look ? "check" : job->resume ? "resume" : "enroll";
	if (job->look)
		argv[i++] = "--recover";
	argv[i++] = "--";
	if (s->e->name != NULL)
		argv[i++] = s->e->name;
	argv[i] = NULL;

	if (pipe2(res, O_CLOEXEC) < 0 || (s->pin != NULL && pipe2(pin, O_CLOEXEC) < 0)) {
		snprintf(r->error, sizeof(r->error), "cannot make a pipe: %s", strerror(errno));
		goto fail;
	}
	/* The PIN and its newline fit in the pipe: written before the child
	 * runs, the write end closed, the child reads to the end. */
	if (s->pin != NULL && (write(pin[1], s->pin->buf, s->pin->len) != (ssize_t)s->pin->len ||
			       write(pin[1], "\n", 1) != 1)) {
		snprintf(r->error, sizeof(r->error), "cannot pass the PIN: %s", strerror(errno));
		goto fail;
	}
	if (pin[1] >= 0) {
		close(pin[1]);
		pin[1] = -1;
	}
	fflush(NULL);
	if ((pid = fork()) < 0) {
		snprintf(r->error, sizeof(r->error), "cannot start the enrollment: %s",
			 strerror(errno));
		goto fail;
	}
	if (pid == 0)
		exec_child(s, argv, res[1], pin[0]);
	close(res[1]);
	res[1] = -1;
	if (pin[0] >= 0) {
		close(pin[0]);
		pin[0] = -1;
	}
	/* Read to the end: the card in progress is finished even after a
	 * stop request (EINTR). */
	for (;;) {
		struct pollfd pfd = { res[0], POLLIN, 0 };

		if (s->tty) {
			progress(s, station_card_name(ev), station_now() - t0);
			if (poll(&pfd, 1, 250) <= 0)
				continue;
		}
		n = read(res[0], buf + len, len < sizeof(buf) ? sizeof(buf) - len : 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (len < sizeof(buf))
			len += (size_t)n;
	}
	close(res[0]);
	res[0] = -1;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (len > 0 && agent_result_parse(buf, len, r, why, sizeof(why)) == 0)
		return r->exit_code;
	agent_result_init(r);
	if (WIFSIGNALED(status))
		snprintf(r->error, sizeof(r->error),
			 "the enrollment process died (signal %d), the card may hold a "
			 "half-made key: insert it again",
			 WTERMSIG(status));
	else
		snprintf(r->error, sizeof(r->error),
			 "the enrollment process gave no result (exit %d)%s%s",
			 WIFEXITED(status) ? WEXITSTATUS(status) : -1, len > 0 ? ": " : "",
			 len > 0 ? why : "");
	return -1;
fail:
	for (i = 0; i < 2; i++) {
		if (res[i] >= 0)
			close(res[i]);
		if (pin[i] >= 0)
			close(pin[i]);
	}
	return -1;
}
