/*
 * The one-shot commands' long waits and their interruption.
 *
 * A wait (the CA's answer, the next poll, a key generation or login on a
 * slow token) is shown on a terminal as one line, rewritten in place,
 * once it has lasted a second: a fast run prints nothing more than
 * before.  The line is drawn by a thread, because the waits that matter
 * most block the main thread in a PKCS#11 call or in libcurl; it is only
 * started when stderr is a terminal and neither -q nor --syslog is given,
 * so logs and pipes see exactly what they saw before.
 *
 * SIGINT, SIGTERM and SIGHUP only set a flag (async-signal-safe).  The CMP
 * layer asks agent_cmp_wait about once a second (libcurl's progress
 * callback, the polling sleep in slices) whether to stop; the request
 * sequence looks at the flag between its steps and undoes what it started
 * (certreq.c).  The exchanges of that undo (a certConf that rejects, the
 * error message that abandons) still go out; a second signal stops them
 * too, and what is then left on the token is what a killed run leaves,
 * which recovery finishes (STATE-MACHINE.md, "Interrupted runs").
 */
#include "config.h"

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent-cmd.h"

static volatile sig_atomic_t first_signal, signals, undo_from;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static pthread_t drawer;
static int drawing;	  /* the thread runs */
static int stopping;	  /* it is asked to end */
static char text[4096];	  /* the wait (escaped), "" for none */
static long long since;	  /* when it began, ms */
static int shown;	  /* the line is on the terminal */
static int slow;	  /* a line was shown since the last wait began fresh */
static int told;	  /* the interruption was said */

static void on_signal(int sig)
{
	if (first_signal == 0)
		first_signal = sig;
	signals++;
}

static long long now_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		return 0;
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Under mu.  A failed write leaves nothing to repair. */
static void put(const char *s)
{
	ssize_t n = write(STDERR_FILENO, s, strlen(s));

	(void)n;
}

static void erase(void)
{
	if (shown)
		put("\r\033[K");
	shown = 0;
}

/* Under mu: said at once, before the run's own lines about it, as the undo
 * may take a while (the CA is told). */
static void announce(void)
{
	if (first_signal == 0 || told)
		return;
	erase();
	put("interrupted (");
	put(agent_signal_name(first_signal));
	put("): undoing what this run started...\n");
	told = 1;
}

static void *draw(void *arg)
{
	struct timespec until;

	(void)arg;
	pthread_mutex_lock(&mu);
	while (!stopping) {
		announce();
		if (text[0] != '\0' && !shown && (slow || now_ms() - since >= 1000)) {
			put("\r\033[K");
			put(text);
			shown = slow = 1;
		}
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += 200 * 1000 * 1000;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		(void)pthread_cond_timedwait(&cv, &mu, &until);
	}
	erase();
	pthread_mutex_unlock(&mu);
	return NULL;
}

void agent_progress_start(int show)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
	struct sigaction sa, was;
	sigset_t all, old;
	size_t i;

	/* no SA_RESTART: a blocked read or poll ends at the signal */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		/* An ignored signal stays ignored (nohup, a shell's background
		 * job): whoever started us did not want it to stop us. */
		if (sigaction(sigs[i], NULL, &was) == 0 && was.sa_handler == SIG_IGN)
			continue;
		(void)sigaction(sigs[i], &sa, NULL);
	}
	if (!show || !isatty(STDERR_FILENO))
		return;
	/* The signals go to the main thread, whose waits they cut short. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	drawing = pthread_create(&drawer, NULL, draw, NULL) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

void agent_progress_stop(void)
{
	if (!drawing)
		return;
	pthread_mutex_lock(&mu);
	stopping = 1;
	pthread_cond_signal(&cv);
	pthread_mutex_unlock(&mu);
	pthread_join(drawer, NULL);
	drawing = 0;
}

const char *agent_signal_name(int sig)
{
	return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : sig == SIGHUP ? "SIGHUP"
										     : "a signal";
}

int agent_interrupted(void)
{
	return first_signal;
}

void agent_undo_begin(void)
{
	undo_from = signals;
}

int agent_stop_wanted(void)
{
	return signals > undo_from;
}

void agent_wait_show(const char *fmt, ...)
{
	char line[1024], safe[sizeof(text)];
	va_list ap;

	if (!drawing)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	agent_escape(line, safe, sizeof(safe));
	pthread_mutex_lock(&mu);
	if (strcmp(safe, text) != 0) {
		if (text[0] == '\0')
			since = now_ms();
		snprintf(text, sizeof(text), "%s", safe);
		erase();
		pthread_cond_signal(&cv);
	}
	pthread_mutex_unlock(&mu);
}

void agent_wait_done(void)
{
	if (!drawing)
		return;
	pthread_mutex_lock(&mu);
	text[0] = '\0';
	slow = 0;
	erase();
	pthread_mutex_unlock(&mu);
}

void agent_progress_print(const char *line)
{
	if (!drawing) {
		fputs(line, stderr);
		return;
	}
	pthread_mutex_lock(&mu);
	announce();
	erase();
	fputs(line, stderr);
	pthread_mutex_unlock(&mu);
}

/* Local time of day: the terminal's reader compares it with a clock. */
static const char *hhmmss(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (localtime_r(&t, &tm) == NULL || strftime(buf, len, "%H:%M:%S", &tm) == 0)
		snprintf(buf, len, "?");
	return buf;
}

int agent_cmp_wait(const cmpc_wait *w, void *arg)
{
	char a[16], b[16];

	(void)arg;
	if (!drawing) /* libcurl asks often: nothing to format then */
		return agent_stop_wanted();
	if (w->kind == CMPC_WAIT_DONE)
		agent_wait_done();
	else if (w->kind == CMPC_WAIT_ANSWER)
		agent_wait_show("waiting for the CA at %s to answer %s (up to %s)...", w->url,
				w->what, hhmmss(w->until, a, sizeof(a)));
	else if (w->give_up != 0)
		agent_wait_show("the CA said 'waiting' for %s: next poll at %s, giving up at %s",
				w->what, hhmmss(w->until, a, sizeof(a)),
				hhmmss(w->give_up, b, sizeof(b)));
	else
		agent_wait_show("the CA said 'waiting' for %s: next poll at %s", w->what,
				hhmmss(w->until, a, sizeof(a)));
	return agent_stop_wanted();
}
