/*
 * This program's command in a child process, as the agent runs its steps
 * (child.c) and the badge station each card's enrollment (station_child.c):
 * the result record's pipe on AGENT_RESULT_FD, named in the environment,
 * a PIN's pipe on AGENT_PIN_FD, then execv (agent/result.h).
 */
#include "config.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/result.h"

/* A copy of fd above the descriptors the child is given (close-on-exec: only
 * the one moved into place is inherited); -1 stays -1. */
static int lift(int fd)
{
	if (fd < 0)
		return -1;
	if ((fd = fcntl(fd, F_DUPFD_CLOEXEC, 10)) < 0)
		P11E_EXIT(EXIT_INTERNAL);
	return fd;
}

/* dup2 gives the copy at to without close-on-exec; from is always above
 * 10, never to itself (a dup2 onto itself would keep the flag). */
static void place(int from, int to)
{
	if (from >= 0 && dup2(from, to) < 0)
		P11E_EXIT(EXIT_INTERNAL);
}

void agent_exec_self(const agent_exec *x, const char *const *argv)
{
	char env[64];
	int res, pin, out, err;
	const int *sig;

	for (sig = x->dfl_signals; *sig != 0; sig++)
		signal(*sig, SIG_DFL);
	if (x->own_group)
		(void)setpgid(0, 0);
	/* All above 10 first: any of them may sit on 1, 2, AGENT_RESULT_FD
	 * or AGENT_PIN_FD, where another one goes. */
	res = lift(x->res);
	pin = lift(x->pin);
	out = lift(x->out);
	err = lift(x->err);
	place(out, STDOUT_FILENO);
	place(err, STDERR_FILENO);
	place(res, AGENT_RESULT_FD);
	place(pin, AGENT_PIN_FD);
	snprintf(env, sizeof(env), "%s=%d", AGENT_RESULT_FD_ENV, AGENT_RESULT_FD);
	if (putenv(env) != 0)
		P11E_EXIT(EXIT_INTERNAL);
	execv(x->self, (char *const *)argv);
	P11E_EXIT(EXIT_INTERNAL);
}
