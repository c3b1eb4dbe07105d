/*
 * Hook programs the daemon runs after an enrollment changed (to reload a
 * web server, say).  The values it hands over come from the CA (subject,
 * serial), so they travel only in the environment and the command line is
 * split on blanks by us: no shell ever sees either.  A hook that hangs must
 * not stall the daemon, so it gets a process group of its own that is
 * killed as a whole when its time is up.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/daemon.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* A fixed PATH, so that what a hook runs does not depend on how the daemon
 * was started. */
static char default_path[] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";

/* Without close_range(), descriptors are marked one by one up to this. */
#define MAX_FD_LOOP 65536

static int is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* command split at blanks into a NULL-terminated vector pointing into
 * *ret_buf; both are freed by the caller. */
static char **split_command(const char *command, char **ret_buf)
{
	size_t n = 0, i = 0;
	const char *p;
	char *buf, *q, **argv;

	for (p = command; *p != '\0'; p++)
		if (!is_blank(*p) && (p == command || is_blank(p[-1])))
			n++;
	buf = strdup(command);
	argv = calloc(n + 1, sizeof(*argv));
	if (buf == NULL || argv == NULL) {
		free(buf);
		free(argv);
		return NULL;
	}
	for (q = buf; *q != '\0';) {
		while (is_blank(*q))
			*q++ = '\0';
		if (*q == '\0')
			break;
		argv[i++] = q;
		while (*q != '\0' && !is_blank(*q))
			q++;
	}
	argv[i] = NULL;
	*ret_buf = buf;
	return argv;
}

/* env plus the default PATH (unless env has one).  The strings are not
 * copied: execve() only reads them. */
static char **build_env(const char *const *env, char *err, size_t errlen)
{
	size_t n, j = 0;
	int has_path = 0;
	char **envp;

	for (n = 0; env != NULL && env[n] != NULL; n++) {
		const char *eq = strchr(env[n], '=');

		if (eq == NULL || eq == env[n]) {
			snprintf(err, errlen, "hook environment entry %zu is not NAME=value",
				 n + 1);
			return NULL;
		}
		if (strncmp(env[n], "PATH=", 5) == 0)
			has_path = 1;
	}
	envp = calloc(n + 2, sizeof(*envp));
	if (envp == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (j = 0; j < n; j++)
		envp[j] = (char *)env[j];
	if (!has_path)
		envp[j++] = default_path;
	envp[j] = NULL;
	return envp;
}

/* fd moved above 0..2 so that setting up the child's stdin/stdout cannot
 * overwrite it (a daemon may have started with those closed). */
static int above_stdio(int fd)
{
	int nfd;

	if (fd < 0 || fd > 2)
		return fd;
	nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	close(fd);
	return nfd;
}

/* Between fork() and execve(): only async-signal-safe calls, no memory
 * allocation.  Reports the errno of a failure over errfd, which
 * execve() closes on success. */
static void child(char **argv, char **envp, int nullfd, int errfd, int maxfd)
	__attribute__((noreturn));
static void child(char **argv, char **envp, int nullfd, int errfd, int maxfd)
{
	struct sigaction sa;
	sigset_t none;
	int sig, e, fd;

	(void)setpgid(0, 0);
	/* Ignored signals stay ignored across execve(), and a handler of the
	 * daemon must not run in the child: start the hook with defaults. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	for (sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			(void)sigaction(sig, &sa, NULL);
	sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);

	if (dup2(nullfd, STDIN_FILENO) < 0)
		goto fail;
	if (dup2(STDERR_FILENO, STDOUT_FILENO) < 0 &&
	    (dup2(nullfd, STDOUT_FILENO) < 0 || dup2(nullfd, STDERR_FILENO) < 0))
		goto fail;
	/* The daemon's other descriptors (token sessions, sockets) are none
	 * of the hook's business. */
#ifdef SYS_close_range
	if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) != 0)
#endif
		for (fd = 3; fd < maxfd; fd++)
			(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
	execve(argv[0], argv, envp);
fail:
	e = errno;
	while (write(errfd, &e, sizeof(e)) < 0 && errno == EINTR)
		;
	/* (a coverage build writes its counters here, which allocates) */
	P11E_EXIT(127);
}

static long long ms_until(const struct timespec *deadline)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long long)(deadline->tv_sec - now.tv_sec) * 1000 +
	       (deadline->tv_nsec - now.tv_nsec) / 1000000;
}

/* waitpid() for this pid only: other children and a SIGCHLD handler of the
 * caller stay out of it. */
static pid_t reap(pid_t pid, int *status)
{
	pid_t r;

	do
		r = waitpid(pid, status, 0);
	while (r < 0 && errno == EINTR);
	return r;
}

/*
 * Waits at most timeout_s seconds (0 or less: no limit) for pid to end.
 * Returns 0 when it was reaped, 1 when the time ran out (pid still
 * running), -1 with errno on error.  A pidfd wakes us up when the child
 * ends; on kernels without one (before 5.3) we poll every 20 ms.
 */
static int wait_child(pid_t pid, int timeout_s, int *status)
{
	struct timespec deadline;
	long long ms;
	int pidfd = -1, e;
	pid_t r;

	if (timeout_s <= 0)
		return reap(pid, status) == pid ? 0 : -1;
#ifdef SYS_pidfd_open
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
#endif
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_s;
	for (;;) {
		r = waitpid(pid, status, WNOHANG);
		if (r == pid || (r < 0 && errno != EINTR)) {
			e = errno;
			if (pidfd >= 0)
				close(pidfd);
			errno = e;
			return r == pid ? 0 : -1;
		}
		if (r < 0)
			continue;
		ms = ms_until(&deadline);
		if (ms <= 0) {
			if (pidfd >= 0)
				close(pidfd);
			return 1;
		}
		if (pidfd >= 0) {
			struct pollfd p = { .fd = pidfd, .events = POLLIN };

			/* EINTR (the caller's SIGCHLD handler, say): the loop
			 * looks again; other errors: fall back to polling. */
			if (poll(&p, 1, ms > INT_MAX ? INT_MAX : (int)ms) < 0 && errno != EINTR) {
				close(pidfd);
				pidfd = -1;
			}
		} else {
			struct timespec ts = { 0, (ms < 20 ? ms : 20) * 1000000L };

			(void)nanosleep(&ts, NULL);
		}
	}
}

static void exec_error(const char *prog, int e, char *err, size_t errlen)
{
	if (e == ENOENT || e == ENOTDIR)
		snprintf(err, errlen, "hook program %s not found", prog);
	else if (e == EACCES)
		snprintf(err, errlen, "hook program %s is not executable (permission denied)",
			 prog);
	else if (e == ENOEXEC)
		snprintf(err, errlen,
			 "hook program %s is not executable: unknown format (a script needs "
			 "a #! line)",
			 prog);
	else
		snprintf(err, errlen, "cannot run hook program %s: %s", prog, strerror(e));
}

/* Runs argv; the part of hook_run() that owns descriptors and the child. */
static int spawn(char **argv, char **envp, int timeout_s, int *ret_status, char *err,
		 size_t errlen)
{
	const char *prog = argv[0];
	int pipefd[2] = { -1, -1 }, nullfd, child_errno = 0, status = 0, maxfd, w;
	sigset_t all, old;
	ssize_t n;
	pid_t pid;
	long lmax;

	lmax = sysconf(_SC_OPEN_MAX);
	maxfd = lmax < 0 || lmax > MAX_FD_LOOP ? MAX_FD_LOOP : (int)lmax;
	nullfd = above_stdio(open("/dev/null", O_RDWR | O_CLOEXEC));
	if (nullfd < 0) {
		snprintf(err, errlen, "cannot open /dev/null: %s", strerror(errno));
		return -1;
	}
	if (pipe2(pipefd, O_CLOEXEC) < 0 || (pipefd[0] = above_stdio(pipefd[0])) < 0 ||
	    (pipefd[1] = above_stdio(pipefd[1])) < 0) {
		snprintf(err, errlen, "cannot run hook program %s: pipe: %s", prog,
			 strerror(errno));
		close(nullfd);
		if (pipefd[0] >= 0)
			close(pipefd[0]);
		if (pipefd[1] >= 0)
			close(pipefd[1]);
		return -1;
	}
	/* No signal handler may run in the child before it reset them. */
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	pid = fork();
	if (pid == 0)
		child(argv, envp, nullfd, pipefd[1], maxfd);
	child_errno = errno;
	sigprocmask(SIG_SETMASK, &old, NULL);
	close(nullfd);
	close(pipefd[1]);
	if (pid < 0) {
		close(pipefd[0]);
		snprintf(err, errlen, "cannot run hook program %s: fork: %s", prog,
			 strerror(child_errno));
		return -1;
	}
	/* Also here, so that the group exists whatever runs first. */
	(void)setpgid(pid, pid);

	/* End of file: execve() succeeded and closed the pipe. */
	do
		n = read(pipefd[0], &child_errno, sizeof(child_errno));
	while (n < 0 && errno == EINTR);
	close(pipefd[0]);
	if (n == (ssize_t)sizeof(child_errno)) {
		(void)reap(pid, &status);
		exec_error(prog, child_errno, err, errlen);
		return -1;
	}

	w = wait_child(pid, timeout_s, &status);
	if (w == 1) {
		/* The whole group: a hook's own children would outlive it. */
		if (kill(-pid, SIGKILL) < 0)
			(void)kill(pid, SIGKILL);
		if (reap(pid, &status) == pid && ret_status != NULL)
			*ret_status = status;
		snprintf(err, errlen, "hook %s timed out after %d s and was killed", prog,
			 timeout_s);
		return -1;
	}
	if (w < 0) {
		snprintf(err, errlen,
			 "cannot wait for hook %s: %s (is SIGCHLD ignored, or are children "
			 "reaped elsewhere?)",
			 prog, strerror(errno));
		return -1;
	}
	if (ret_status != NULL)
		*ret_status = status;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status))
		snprintf(err, errlen, "hook %s failed with exit status %d", prog,
			 WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(err, errlen, "hook %s was killed by signal %d (%s)", prog,
			 WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		snprintf(err, errlen, "hook %s ended with wait status %#x", prog, status);
	return -1;
}

int hook_run(const char *command, const char *const *env, int timeout_s, int *ret_status,
	     char *err, size_t errlen)
{
	char *buf = NULL, **argv = NULL, **envp = NULL;
	int r = -1;

	if (command == NULL) {
		snprintf(err, errlen, "no hook command");
		return -1;
	}
	argv = split_command(command, &buf);
	if (argv == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (argv[0] == NULL)
		snprintf(err, errlen, "the hook command is empty");
	else if (argv[0][0] != '/')
		snprintf(err, errlen,
			 "hook program %s is not an absolute path; hooks run without a shell "
			 "and without searching PATH",
			 argv[0]);
	else if ((envp = build_env(env, err, errlen)) != NULL)
		r = spawn(argv, envp, timeout_s, ret_status, err, errlen);
	free(envp);
	free(argv);
	free(buf);
	return r;
}
