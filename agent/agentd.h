/*
 * The agent's parts (p11enroll agent): the loop and the configuration
 * (agentd.c), the transitions (fsm.c), the step and hook processes
 * (child.c) and the control clients (ctl_serve.c, ctl.c).  Private to
 * them.
 */
#ifndef P11ENROLL_AGENTD_H
#define P11ENROLL_AGENTD_H

#include <poll.h>
#include <time.h>

#include "agent/fsm.h"
#include "agent/track.h"

typedef struct agentd {
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
	int ctl_timeout;    /* seconds for a request line, and for taking an answer */
	long long wake;	    /* agent time by which the loop looks again */
	int reload_waiting; /* a reload waits for the running steps to end */
} agentd;

/* agentd.c */
long long agentd_now(const agentd *d);
/* Feeds ev to t's state machine (the time and the PIN fingerprint are
 * filled in here) and carries out the actions. */
void agentd_event(agentd *d, track *t, fsm_event *ev);
/* 0, or 1 when the reload waits for the running steps; -1 (every reason
 * in diag) keeps the enrollments as they are. */
int agentd_reload(agentd *d, conf_diag *diag);

/* child.c: the step of op for t, its output read as it comes. */
int child_launch(const agentd *d, track *t, track_op op);
void child_drain_out(track *t);
void child_drain_err(track *t, int final);
/* After the child ended: the rest of its output, and its result record
 * (0), or -1 with why there is none. */
int child_finish(track *t, agent_result *res, char *why, size_t whylen);
/* The success (ok) or failure hook, in a process of its own. */
void child_hook(const track *t, int ok);

/* ctl_serve.c: the agent's side of the control socket. */
void ctl_serve_accept(agentd *d, int fd);
/* The clients to poll in pf (at most d->nclients); *first: the earliest
 * of their deadlines (ctl_now_ms()), or -1. */
size_t ctl_serve_pollfds(const agentd *d, struct pollfd *pf, long long *first);
/* After poll: the clients of pf[0..np), then the deadlines. */
void ctl_serve(agentd *d, const struct pollfd *pf, size_t np);
/* text, then "exit code" (none when code < 0), as the whole answer of the
 * client on fd. */
void ctl_serve_reply(agentd *d, int fd, int code, const char *text);
/* The client on fd waits for a step's outcome (not polled meanwhile). */
void ctl_serve_wait(agentd *d, int fd);
void ctl_serve_close_all(agentd *d);

#endif
