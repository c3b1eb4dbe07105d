/* Unit tests of what the daemon does outside itself: hook programs, the
 * metrics file and systemd notifications (agent/daemon.h). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/daemon.h"
#include "tests/unit/tap.h"

static char tmpdir[] = "/tmp/p11enroll-daemon.XXXXXX";

/* tmpdir/name; a few at a time stay valid. */
static const char *tmp(const char *name)
{
	static char paths[4][512];
	static int next;
	char *p = paths[next++ % 4];

	snprintf(p, sizeof(paths[0]), "%s/%s", tmpdir, name);
	return p;
}

static void write_file(const char *path, const char *content, mode_t mode)
{
	FILE *f = fopen(path, "w");

	if (f == NULL || fputs(content, f) < 0 || fclose(f) != 0 || chmod(path, mode) != 0) {
		perror(path);
		exit(99);
	}
}

/* The whole file (NUL bytes included) into buf; its length, or -1. */
static long read_all(const char *path, char *buf, size_t size)
{
	FILE *f = fopen(path, "r");
	size_t n;

	if (f == NULL)
		return -1;
	n = fread(buf, 1, size - 1, f);
	fclose(f);
	buf[n] = '\0';
	return (long)n;
}

static int exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

/* ---- hook_run ---- */

static void test_hook_env(void)
{
	char out[8192], err[256] = "", subject[512];
	const char *env[] = { "P11ENROLL_NAME=web", subject, "MULTI=a\nb", "EMPTY=", NULL };
	const char *want[] = { env[0], env[1], env[2], env[3],
			       "PATH=/usr/sbin:/usr/bin:/sbin:/bin" };
	int found[5] = { 0 }, extra = 0, all = 1, st = -1, r;
	char cmd[600];
	long n, i, k;

	/* env -0: values with newlines stay one entry. */
	write_file(tmp("dump-env"), "#!/bin/sh\nexec env -0 > \"$1\"\n", 0755);
	snprintf(subject, sizeof(subject), "P11ENROLL_SUBJECT=$(touch %s); `touch %s` \"; touch %s",
		 tmp("pwned1"), tmp("pwned2"), tmp("pwned3"));
	snprintf(cmd, sizeof(cmd), "%s %s", tmp("dump-env"), tmp("env.out"));
	setenv("P11ENROLL_LEAK", "from the caller", 1);
	r = hook_run(cmd, env, 10, &st, err, sizeof(err));
	unsetenv("P11ENROLL_LEAK");
	tap_ok(r == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "/daemon/hook/runs",
	       "r=%d st=%#x: %s", r, st, err);

	n = read_all(tmp("env.out"), out, sizeof(out));
	for (i = 0; i < n; i += (long)strlen(out + i) + 1) {
		const char *v = out + i;

		/* dash exports PWD of its own accord. */
		if (strncmp(v, "PWD=", 4) == 0)
			continue;
		for (k = 0; k < 5; k++)
			if (strcmp(v, want[k]) == 0)
				break;
		if (k < 5)
			found[k]++;
		else {
			extra++;
			fprintf(stderr, "# unexpected in the hook's environment: %s\n", v);
		}
	}
	for (k = 0; k < 5; k++)
		all = all && found[k] == 1;
	tap_ok(n > 0 && all && extra == 0, "/daemon/hook/env-exact",
	       "%ld bytes, %d unexpected, name %d subject %d multi %d empty %d path %d", n, extra,
	       found[0], found[1], found[2], found[3], found[4]);
	tap_ok(!exists(tmp("pwned1")) && !exists(tmp("pwned2")) && !exists(tmp("pwned3")),
	       "/daemon/hook/env-not-executed", "a value from the environment was executed");
}

static void test_hook_argv(void)
{
	char cmd[600], out[1024], err[256] = "", want[600];
	const char *env[] = { NULL };
	int r;

	write_file(tmp("dump-args"),
		   "#!/bin/sh\nout=$1\nshift\nprintf '[%s]\\n' \"$@\" > \"$out\"\n", 0755);
	snprintf(cmd, sizeof(cmd), "  %s\t%s a;b  $(touch %s) 'q r' ", tmp("dump-args"),
		 tmp("args.out"), tmp("pwned4"));
	r = hook_run(cmd, env, 10, NULL, err, sizeof(err));
	snprintf(want, sizeof(want), "[a;b]\n[$(touch]\n[%s)]\n['q]\n[r']\n", tmp("pwned4"));
	tap_ok(r == 0 && read_all(tmp("args.out"), out, sizeof(out)) > 0 &&
		   strcmp(out, want) == 0 && !exists(tmp("pwned4")),
	       "/daemon/hook/argv-split-at-blanks-only", "r=%d err=%s out=%s", r, err, out);
}

static void test_hook_refused(void)
{
	char err[256] = "";
	const char *env[] = { NULL }, *bad_env[] = { "NOEQUALS", NULL };
	int st = -12345, r;

	r = hook_run("bin/true", env, 10, &st, err, sizeof(err));
	tap_ok(r == -1 && strstr(err, "bin/true is not an absolute path") != NULL && st == -12345,
	       "/daemon/hook/relative-path", "r=%d err=%s", r, err);
	r = hook_run("   ", env, 10, NULL, err, sizeof(err));
	tap_ok(r == -1 && strstr(err, "empty") != NULL, "/daemon/hook/empty", "r=%d err=%s", r,
	       err);
	r = hook_run("/nonexistent/p11enroll-hook --x", env, 10, &st, err, sizeof(err));
	tap_ok(r == -1 && strstr(err, "/nonexistent/p11enroll-hook not found") != NULL &&
		       st == -12345,
	       "/daemon/hook/not-found", "r=%d err=%s", r, err);
	write_file(tmp("not-exec"), "#!/bin/sh\nexit 0\n", 0644);
	r = hook_run(tmp("not-exec"), env, 10, NULL, err, sizeof(err));
	tap_ok(r == -1 && strstr(err, "is not executable") != NULL, "/daemon/hook/not-executable",
	       "r=%d err=%s", r, err);
	r = hook_run("/bin/true", bad_env, 10, NULL, err, sizeof(err));
	tap_ok(r == -1 && strstr(err, "entry 1 is not NAME=value") != NULL,
	       "/daemon/hook/bad-env-entry", "r=%d err=%s", r, err);
	/* executable, but neither a program nor a script with a #! line */
	write_file(tmp("no-shebang"), "exit 0\n", 0755);
	r = hook_run(tmp("no-shebang"), env, 10, &st, err, sizeof(err));
	tap_ok(r == -1 && strstr(err, "unknown format (a script needs a #! line)") != NULL &&
		       st == -12345,
	       "/daemon/hook/no-shebang", "r=%d err=%s", r, err);
	/* a directory: execve says EACCES, also to root */
	r = hook_run(tmpdir, env, 10, NULL, err, sizeof(err));
	tap_ok(r == -1 && strstr(err, "is not executable (permission denied)") != NULL,
	       "/daemon/hook/directory", "r=%d err=%s", r, err);
	/* any other errno: named as it is (a symbolic link to itself: ELOOP) */
	if (symlink(tmp("loop"), tmp("loop")) != 0)
		exit(99);
	r = hook_run(tmp("loop"), env, 10, NULL, err, sizeof(err));
	tap_ok(r == -1 && strstr(err, "cannot run hook program") != NULL &&
		       strstr(err, strerror(ELOOP)) != NULL,
	       "/daemon/hook/other-errno", "r=%d err=%s", r, err);
}

static void test_hook_status(void)
{
	char err[256] = "";
	const char *env[] = { NULL };
	int st = 0, r, p[2], saved;

	write_file(tmp("exit3"), "#!/bin/sh\nexit 3\n", 0755);
	r = hook_run(tmp("exit3"), env, 10, &st, err, sizeof(err));
	tap_ok(r == -1 && strstr(err, "exit status 3") != NULL && WIFEXITED(st) &&
		       WEXITSTATUS(st) == 3,
	       "/daemon/hook/exit-status", "r=%d st=%#x err=%s", r, st, err);
	write_file(tmp("killself"), "#!/bin/sh\nkill -TERM $$\nsleep 5\n", 0755);
	r = hook_run(tmp("killself"), env, 10, &st, err, sizeof(err));
	tap_ok(r == -1 && strstr(err, "killed by signal 15") != NULL && WIFSIGNALED(st),
	       "/daemon/hook/killed-by-signal", "r=%d st=%#x err=%s", r, st, err);
	/* read from /dev/null sees end of file at once, although our own
	 * stdin has a line to read. */
	write_file(tmp("stdin"), "#!/bin/sh\nif read x; then exit 1; fi\nexit 0\n", 0755);
	saved = dup(STDIN_FILENO);
	if (saved < 0 || pipe(p) != 0 || write(p[1], "line\n", 5) != 5 || close(p[1]) != 0 ||
	    dup2(p[0], STDIN_FILENO) < 0 || close(p[0]) != 0)
		exit(99);
	r = hook_run(tmp("stdin"), env, 10, NULL, err, sizeof(err));
	dup2(saved, STDIN_FILENO);
	close(saved);
	tap_ok(r == 0, "/daemon/hook/stdin-dev-null", "r=%d err=%s", r, err);
}

/* stdout and stderr of the hook both land on our stderr. */
static void test_hook_output(void)
{
	char err[256] = "", out[256] = "";
	const char *env[] = { NULL };
	int saved = dup(STDERR_FILENO), fd, r;

	write_file(tmp("talk"), "#!/bin/sh\necho to-stdout\necho to-stderr >&2\n", 0755);
	fd = open(tmp("stderr.out"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (saved < 0 || fd < 0 || dup2(fd, STDERR_FILENO) < 0)
		exit(99);
	close(fd);
	r = hook_run(tmp("talk"), env, 10, NULL, err, sizeof(err));
	dup2(saved, STDERR_FILENO);
	close(saved);
	tap_ok(r == 0 && read_all(tmp("stderr.out"), out, sizeof(out)) > 0 &&
		       strcmp(out, "to-stdout\nto-stderr\n") == 0,
	       "/daemon/hook/output-to-stderr", "r=%d err=%s out=%s", r, err, out);
}

/* Descriptors of the daemon (sessions, sockets) stay out of hooks, even
 * without close-on-exec. */
static void test_hook_fds(void)
{
	char err[256] = "";
	const char *env[] = { NULL };
	int fd = open("/dev/null", O_RDONLY), r = -1;

	if (fd >= 0 && dup2(fd, 40) == 40) {
		write_file(tmp("fds"), "#!/bin/sh\n[ -e /proc/$$/fd/40 ] && exit 1\nexit 0\n",
			   0755);
		r = hook_run(tmp("fds"), env, 10, NULL, err, sizeof(err));
		close(40);
	}
	if (fd >= 0)
		close(fd);
	tap_ok(r == 0, "/daemon/hook/no-inherited-fds", "r=%d err=%s", r, err);
}

/* Dead: gone, or a zombie (its new parent may be slow to reap it). */
static int pid_dead(long pid)
{
	char path[64], buf[512], *p;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if (read_all(path, buf, sizeof(buf)) <= 0)
		return 1;
	p = strrchr(buf, ')');
	return p != NULL && (p[2] == 'Z' || p[2] == 'X');
}

static void test_hook_timeout(void)
{
	char err[256] = "", cmd[600], buf[64] = "";
	const char *env[] = { NULL };
	struct timespec t0, t1;
	long pid = 0;
	int st = 0, r, i, dead = 0;

	/* If the timeout does not work, the test dies here instead of hanging. */
	alarm(20);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = hook_run("/bin/sleep 30", env, 1, &st, err, sizeof(err));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	tap_ok(r == -1 && strstr(err, "timed out after 1 s") != NULL && WIFSIGNALED(st) &&
		       WTERMSIG(st) == SIGKILL && t1.tv_sec - t0.tv_sec < 15,
	       "/daemon/hook/timeout", "r=%d st=%#x %lds err=%s", r, st,
	       (long)(t1.tv_sec - t0.tv_sec), err);

	/* The whole process group goes, not only the hook itself. */
	write_file(tmp("bg"), "#!/bin/sh\nsleep 30 &\necho $! > \"$1\"\nwait\n", 0755);
	snprintf(cmd, sizeof(cmd), "%s %s", tmp("bg"), tmp("bg.pid"));
	r = hook_run(cmd, env, 1, NULL, err, sizeof(err));
	if (read_all(tmp("bg.pid"), buf, sizeof(buf)) > 0)
		pid = strtol(buf, NULL, 10);
	for (i = 0; i < 500 && pid > 0 && !(dead = pid_dead(pid)); i++) {
		struct timespec ts = { 0, 10 * 1000000L };

		nanosleep(&ts, NULL);
	}
	tap_ok(r == -1 && strstr(err, "timed out") != NULL && pid > 0 && dead,
	       "/daemon/hook/timeout-kills-group", "r=%d pid=%ld dead=%d err=%s", r, pid, dead,
	       err);
	alarm(0);
}

static volatile sig_atomic_t n_sigchld;

static void on_sigchld(int sig)
{
	(void)sig;
	n_sigchld++;
}

/* A SIGCHLD handler without SA_RESTART interrupts the waits. */
static void test_hook_sigchld(void)
{
	struct sigaction sa, old;
	char err[256] = "";
	const char *env[] = { NULL };
	int st = 0, r1, r2;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigchld;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGCHLD, &sa, &old);
	r1 = hook_run("/bin/true", env, 10, NULL, err, sizeof(err));
	r2 = hook_run(tmp("exit3"), env, 0, &st, err, sizeof(err));
	sigaction(SIGCHLD, &old, NULL);
	tap_ok(r1 == 0 && r2 == -1 && WIFEXITED(st) && WEXITSTATUS(st) == 3 && n_sigchld > 0,
	       "/daemon/hook/sigchld-handler", "r1=%d r2=%d st=%#x sigchld=%d err=%s", r1, r2, st,
	       (int)n_sigchld, err);
}

static void test_hook_no_zombie(void)
{
	int st, r = waitpid(-1, &st, WNOHANG), e = errno;

	tap_ok(r == -1 && e == ECHILD, "/daemon/hook/no-zombie", "waitpid: %d, %s", r, strerror(e));
}

/* ---- metrics_write ---- */

static const char expected_two[] =
	"# TYPE p11enroll_certificate_not_before_seconds gauge\n"
	"# UNIT p11enroll_certificate_not_before_seconds seconds\n"
	"# HELP p11enroll_certificate_not_before_seconds When the enrolled certificate became "
	"valid, in seconds since the epoch.\n"
	"p11enroll_certificate_not_before_seconds{enrollment=\"web\"} 1764547100\n"
	"# TYPE p11enroll_certificate_not_after_seconds gauge\n"
	"# UNIT p11enroll_certificate_not_after_seconds seconds\n"
	"# HELP p11enroll_certificate_not_after_seconds When the enrolled certificate expires, "
	"in seconds since the epoch.\n"
	"p11enroll_certificate_not_after_seconds{enrollment=\"web\"} 1767225600\n"
	"# TYPE p11enroll_last_success_seconds gauge\n"
	"# UNIT p11enroll_last_success_seconds seconds\n"
	"# HELP p11enroll_last_success_seconds When the enrollment last succeeded, in seconds "
	"since the epoch.\n"
	"p11enroll_last_success_seconds{enrollment=\"web\"} 1764547200\n"
	"# TYPE p11enroll_consecutive_failures gauge\n"
	"# HELP p11enroll_consecutive_failures Attempts that failed since the last success.\n"
	"p11enroll_consecutive_failures{enrollment=\"web\"} 0\n"
	"p11enroll_consecutive_failures{enrollment=\"vpn\"} 3\n"
	"# TYPE p11enroll_next_attempt_seconds gauge\n"
	"# UNIT p11enroll_next_attempt_seconds seconds\n"
	"# HELP p11enroll_next_attempt_seconds When the next attempt is due, in seconds since "
	"the epoch.\n"
	"p11enroll_next_attempt_seconds{enrollment=\"web\"} 1766000000\n"
	"p11enroll_next_attempt_seconds{enrollment=\"vpn\"} 1764550000\n"
	"# TYPE p11enroll_state gauge\n"
	"# HELP p11enroll_state The state the enrollment is in (the sample with value 1).\n"
	"p11enroll_state{enrollment=\"web\",state=\"valid\"} 1\n"
	"p11enroll_state{enrollment=\"vpn\",state=\"retrying\"} 1\n"
	"# TYPE p11enroll_ca_info gauge\n"
	"# HELP p11enroll_ca_info The CA the enrollment uses: its URL is the label ca (the value "
	"is 1).\n"
	"p11enroll_ca_info{enrollment=\"web\",ca=\"https://ca.example/.well-known/cmp\"} 1\n"
	"p11enroll_ca_info{enrollment=\"vpn\",ca=\"https://ca2.example:8443/cmp\"} 1\n"
	"# TYPE p11enroll_ca_last_contact_seconds gauge\n"
	"# UNIT p11enroll_ca_last_contact_seconds seconds\n"
	"# HELP p11enroll_ca_last_contact_seconds When the CA last answered a step (issued, refused "
	"or said waiting), in seconds since the epoch.\n"
	"p11enroll_ca_last_contact_seconds{enrollment=\"web\"} 1764547200\n"
	"# TYPE p11enroll_renewals_total counter\n"
	"# HELP p11enroll_renewals_total Certificates the agent has replaced on the token.\n"
	"p11enroll_renewals_total{enrollment=\"web\"} 2\n"
	"p11enroll_renewals_total{enrollment=\"vpn\"} 0\n"
	"# TYPE p11enroll_step_duration_seconds summary\n"
	"# UNIT p11enroll_step_duration_seconds seconds\n"
	"# HELP p11enroll_step_duration_seconds How long the agent's steps ran since it started, "
	"per kind of step.\n"
	"p11enroll_step_duration_seconds_sum{step=\"check\"} 0.500\n"
	"p11enroll_step_duration_seconds_count{step=\"check\"} 4\n"
	"p11enroll_step_duration_seconds_sum{step=\"renew\"} 1.250\n"
	"p11enroll_step_duration_seconds_count{step=\"renew\"} 2\n"
	"# TYPE p11enroll_step_failures_total counter\n"
	"# HELP p11enroll_step_failures_total The agent's steps that failed since it started, per "
	"kind of step.\n"
	"p11enroll_step_failures_total{step=\"check\"} 0\n"
	"p11enroll_step_failures_total{step=\"renew\"} 1\n"
	"# EOF\n";

/* metrics_write's view of an array of enrollments */
static void from_array(size_t i, metrics_enrollment *m, void *arg)
{
	*m = ((const metrics_enrollment *)arg)[i];
}

/* the agent's steps: once in the file, not per enrollment */
static const metrics_step steps[] = { { "check", 0.5, 4, 0 }, { "renew", 1.25, 2, 1 } };

static void test_metrics_text(void)
{
	const metrics_enrollment e[] = {
		{ "web", 1767225600, 1764547200, 1766000000, 0, "valid",
		  "https://ca.example/.well-known/cmp", 1764547200, 2, 1764547100 },
		/* the URL's password never reaches the world-readable file */
		{ "vpn", 0, 0, 1764550000, 3, "retrying", "https://user:secret@ca2.example:8443/cmp",
		  0, 0, 0 },
	};
	char err[256] = "", out[8192] = "";
	int r;

	r = metrics_write(tmp("two.prom"), from_array, (void *)e, 2, steps, 2, err, sizeof(err));
	tap_ok(r == 0 && read_all(tmp("two.prom"), out, sizeof(out)) > 0 &&
		       strcmp(out, expected_two) == 0,
	       "/daemon/metrics/two-enrollments", "r=%d err=%s got:\n%s", r, err, out);
}

static void test_metrics_escape(void)
{
	const metrics_enrollment e[] = { { "a\"b\\c\nd", 0, 0, 0, 1, "x\"y" } };
	char err[256] = "", out[4096] = "";
	int r;

	r = metrics_write(tmp("esc.prom"), from_array, (void *)e, 1, NULL, 0, err, sizeof(err));
	tap_ok(r == 0 && read_all(tmp("esc.prom"), out, sizeof(out)) > 0 &&
		   strstr(out, "\np11enroll_consecutive_failures{enrollment=\"a\\\"b\\\\c\\nd\"} "
			       "1\n") != NULL &&
		   strstr(out, "\np11enroll_state{enrollment=\"a\\\"b\\\\c\\nd\",state=\"x\\\"y\"} "
			       "1\n") != NULL &&
		   strstr(out, "not_after_seconds{") == NULL,
	       "/daemon/metrics/escape-label", "r=%d err=%s got:\n%s", r, err, out);
}

static void test_metrics_replace(void)
{
	const metrics_enrollment e[] = { { "web", 1, 2, 3, 4, "valid" } };
	char err[256] = "", out[4096] = "", cwd[512];
	struct stat st;
	struct dirent *d;
	DIR *dir;
	int r, others = 0;

	if (mkdir(tmp("m"), 0755) != 0)
		exit(99);
	write_file(tmp("m/node.prom"), "old content\n", 0600);
	r = metrics_write(tmp("m/node.prom"), from_array, (void *)e, 1, NULL, 0, err, sizeof(err));
	dir = opendir(tmp("m"));
	while (dir != NULL && (d = readdir(dir)) != NULL)
		if (strcmp(d->d_name, ".") != 0 && strcmp(d->d_name, "..") != 0 &&
		    strcmp(d->d_name, "node.prom") != 0)
			others++;
	if (dir != NULL)
		closedir(dir);
	tap_ok(r == 0 && stat(tmp("m/node.prom"), &st) == 0 && (st.st_mode & 07777) == 0644 &&
		       read_all(tmp("m/node.prom"), out, sizeof(out)) > 0 &&
		       strncmp(out, "# TYPE ", 7) == 0 && strstr(out, "old content") == NULL &&
		       others == 0,
	       "/daemon/metrics/atomic-replace", "r=%d err=%s mode=%o others=%d", r, err,
	       (unsigned)st.st_mode & 07777, others);

	/* A bare file name is in the current directory. */
	r = -1;
	if (getcwd(cwd, sizeof(cwd)) != NULL && chdir(tmp("m")) == 0) {
		r = metrics_write("rel.prom", from_array, (void *)e, 1, NULL, 0, err, sizeof(err));
		if (chdir(cwd) != 0)
			exit(99);
	}
	tap_ok(r == 0 && exists(tmp("m/rel.prom")), "/daemon/metrics/relative-name", "r=%d err=%s",
	       r, err);
}

static void test_metrics_errors(void)
{
	const metrics_enrollment e[] = { { "web", 1, 2, 3, 4, "valid" } };
	char err[512] = "", want[600];
	int r;

	r = metrics_write(tmp("missing/node.prom"), from_array, (void *)e, 1, NULL, 0,
			  err, sizeof(err));
	snprintf(want, sizeof(want), "cannot create a file in %s: No such file or directory",
		 tmp("missing"));
	tap_ok(r == -1 && strstr(err, want) != NULL, "/daemon/metrics/missing-directory",
	       "r=%d err=%s", r, err);
	/* Permission bits do not stop root; a file where the directory
	 * should be does. */
	write_file(tmp("plain"), "", 0644);
	r = metrics_write(tmp("plain/node.prom"), from_array, (void *)e, 1, NULL, 0,
			  err, sizeof(err));
	tap_ok(r == -1 && strstr(err, "cannot create a file in") != NULL &&
		       strstr(err, "Not a directory") != NULL,
	       "/daemon/metrics/not-a-directory", "r=%d err=%s", r, err);
	if (geteuid() != 0) {
		if (mkdir(tmp("ro"), 0555) != 0)
			exit(99);
		r = metrics_write(tmp("ro/node.prom"), from_array, (void *)e, 1, NULL, 0,
				  err, sizeof(err));
		tap_ok(r == -1 && strstr(err, "Permission denied") != NULL,
		       "/daemon/metrics/unwritable-directory", "r=%d err=%s", r, err);
		chmod(tmp("ro"), 0755);
	}
}

/* ---- agent_atomic_write ---- */

static int put_text(FILE *f, void *arg)
{
	return fputs(arg, f) < 0 ? -1 : 0;
}

static int put_fail(FILE *f, void *arg)
{
	(void)arg;
	fputs("half", f);
	return -1;
}

/* Entries of dir other than ".", ".." and keep (NULL: none kept). */
static int others_in(const char *dir, const char *keep1, const char *keep2)
{
	struct dirent *d;
	DIR *dh = opendir(dir);
	int n = 0;

	while (dh != NULL && (d = readdir(dh)) != NULL)
		if (strcmp(d->d_name, ".") != 0 && strcmp(d->d_name, "..") != 0 &&
		    (keep1 == NULL || strcmp(d->d_name, keep1) != 0) &&
		    (keep2 == NULL || strcmp(d->d_name, keep2) != 0))
			n++;
	if (dh != NULL)
		closedir(dh);
	return n;
}

static void test_atomic(void)
{
	char err[512] = "", out[256] = "";
	struct stat st, old;
	int r;

	if (mkdir(tmp("a"), 0755) != 0)
		exit(99);
	/* A symlink at the old predictable name and at the target: neither is
	 * followed; the target's entry is replaced. */
	write_file(tmp("victim"), "victim\n", 0644);
	if (symlink(tmp("victim"), tmp("a/out.pem.tmp")) != 0 ||
	    symlink(tmp("victim"), tmp("a/out.pem")) != 0)
		exit(99);
	r = agent_atomic_write(tmp("a/out.pem"), 0600, put_text, (char *)"new\n", err, sizeof(err));
	tap_ok(r == 0 && read_all(tmp("victim"), out, sizeof(out)) > 0 &&
		       strcmp(out, "victim\n") == 0 && lstat(tmp("a/out.pem"), &st) == 0 &&
		       S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0600 &&
		       read_all(tmp("a/out.pem"), out, sizeof(out)) > 0 && strcmp(out, "new\n") == 0 &&
		       others_in(tmp("a"), "out.pem", "out.pem.tmp") == 0,
	       "/atomic/symlinks-not-followed", "r=%d err=%s", r, err);

	/* A new inode: a reader holding the old file keeps the old content. */
	write_file(tmp("a/keep.pem"), "old\n", 0640);
	if (stat(tmp("a/keep.pem"), &old) != 0 || link(tmp("a/keep.pem"), tmp("a/keep.old")) != 0)
		exit(99);
	r = agent_atomic_write(tmp("a/keep.pem"), AGENT_MODE_KEEP, put_text, (char *)"new\n", err,
			       sizeof(err));
	tap_ok(r == 0 && stat(tmp("a/keep.pem"), &st) == 0 && st.st_ino != old.st_ino &&
		       (st.st_mode & 07777) == 0640 &&
		       read_all(tmp("a/keep.old"), out, sizeof(out)) > 0 && strcmp(out, "old\n") == 0,
	       "/atomic/replaced-mode-kept", "r=%d err=%s mode=%o", r, err,
	       (unsigned)st.st_mode & 07777);
	r = agent_atomic_write(tmp("a/fresh.pem"), AGENT_MODE_KEEP, put_text, (char *)"x", err,
			       sizeof(err));
	tap_ok(r == 0 && stat(tmp("a/fresh.pem"), &st) == 0 && (st.st_mode & 07777) == 0644,
	       "/atomic/new-file-0644", "r=%d err=%s mode=%o", r, err,
	       (unsigned)st.st_mode & 07777);

	/* A writer that fails: the target is untouched, no temporary left. */
	if (mkdir(tmp("b"), 0755) != 0)
		exit(99);
	write_file(tmp("b/t"), "old\n", 0644);
	r = agent_atomic_write(tmp("b/t"), 0644, put_fail, NULL, err, sizeof(err));
	tap_ok(r == -1 && strstr(err, "cannot write") != NULL &&
		       read_all(tmp("b/t"), out, sizeof(out)) > 0 && strcmp(out, "old\n") == 0 &&
		       others_in(tmp("b"), "t", NULL) == 0,
	       "/atomic/writer-fails", "r=%d err=%s others=%d", r, err, others_in(tmp("b"), "t", NULL));
	/* rename() fails over a directory: the temporary file goes too. */
	if (mkdir(tmp("b/d"), 0755) != 0)
		exit(99);
	r = agent_atomic_write(tmp("b/d"), 0644, put_text, (char *)"x", err, sizeof(err));
	tap_ok(r == -1 && strstr(err, "cannot replace") != NULL &&
		       others_in(tmp("b"), "t", "d") == 0,
	       "/atomic/rename-fails", "r=%d err=%s", r, err);
}

/* Many files, one sync: each as agent_atomic_write leaves it; a writer that
 * fails leaves its target alone, a rename that fails the others. */
static void test_atomic_batch(void)
{
	agent_atomic_batch *b = agent_atomic_batch_new();
	char err[512] = "", out[256] = "";
	struct stat st;
	int r1, r2, r3, r4, failed;

	if (b == NULL || mkdir(tmp("c"), 0755) != 0 || mkdir(tmp("c/d"), 0755) != 0)
		exit(99);
	write_file(tmp("c/one"), "old\n", 0644);
	r1 = agent_atomic_batch_add(b, tmp("c/one"), 0600, put_text, (char *)"one\n", err,
				    sizeof(err));
	r2 = agent_atomic_batch_add(b, tmp("c/two"), 0600, put_text, (char *)"two\n", err,
				    sizeof(err));
	/* not yet: the old content until the commit */
	tap_ok(r1 == 0 && r2 == 0 && read_all(tmp("c/one"), out, sizeof(out)) > 0 &&
		       strcmp(out, "old\n") == 0 && stat(tmp("c/two"), &st) != 0,
	       "/atomic/batch/nothing-before-commit", "r=%d,%d err=%s", r1, r2, err);
	r3 = agent_atomic_batch_add(b, tmp("c/three"), 0600, put_fail, NULL, err, sizeof(err));
	r4 = agent_atomic_batch_add(b, tmp("c/d"), 0600, put_text, (char *)"x", err, sizeof(err));
	failed = agent_atomic_batch_commit(b, err, sizeof(err));
	tap_ok(r3 == -1 && r4 == 0 && failed == 1 && strstr(err, "cannot replace") != NULL &&
		       read_all(tmp("c/one"), out, sizeof(out)) > 0 && strcmp(out, "one\n") == 0 &&
		       read_all(tmp("c/two"), out, sizeof(out)) > 0 && strcmp(out, "two\n") == 0 &&
		       stat(tmp("c/two"), &st) == 0 && (st.st_mode & 07777) == 0600 &&
		       stat(tmp("c/three"), &st) != 0 && others_in(tmp("c"), "one", "two") == 1,
	       "/atomic/batch/committed", "r=%d,%d failed %d others %d", r3, r4, failed,
	       others_in(tmp("c"), "one", "two"));
}

/* ---- notify_send ---- */

/* A datagram socket bound to name ("@..." abstract); -1 if not possible. */
static int bind_dgram(const char *name)
{
	struct sockaddr_un sa;
	struct timeval tv = { 5, 0 };
	size_t len = strlen(name);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, name, len);
	if (name[0] == '@')
		sa.sun_path[0] = '\0';
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
	    bind(fd, (struct sockaddr *)&sa,
		 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) != 0) {
		perror(name);
		exit(99);
	}
	return fd;
}

static void test_notify(void)
{
	char buf[256], abstract[64];
	ssize_t n;
	int fd, r;

	unsetenv("NOTIFY_SOCKET");
	tap_ok(notify_send("READY=1") == 0, "/daemon/notify/unset", "not 0");

	fd = bind_dgram(tmp("notify.sock"));
	setenv("NOTIFY_SOCKET", tmp("notify.sock"), 1);
	r = notify_send("READY=1\nSTATUS=2 enrollments");
	n = recv(fd, buf, sizeof(buf) - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	tap_ok(r == 0 && strcmp(buf, "READY=1\nSTATUS=2 enrollments") == 0, "/daemon/notify/path",
	       "r=%d got %zd: %s", r, n, buf);
	close(fd);

	snprintf(abstract, sizeof(abstract), "@p11enroll-test-%ld", (long)getpid());
	fd = bind_dgram(abstract);
	setenv("NOTIFY_SOCKET", abstract, 1);
	r = notify_send("STOPPING=1");
	n = recv(fd, buf, sizeof(buf) - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	tap_ok(r == 0 && strcmp(buf, "STOPPING=1") == 0, "/daemon/notify/abstract",
	       "r=%d got %zd: %s", r, n, buf);
	close(fd);

	setenv("NOTIFY_SOCKET", tmp("no-such.sock"), 1);
	tap_ok(notify_send("READY=1") == -1, "/daemon/notify/no-listener", "not -1");
	setenv("NOTIFY_SOCKET", "relative.sock", 1);
	r = notify_send("READY=1");
	tap_ok(r == -1 && errno == EINVAL, "/daemon/notify/relative-name", "r=%d", r);
	unsetenv("NOTIFY_SOCKET");
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

int main(void)
{
	tap_plan(39);
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 99;
	}
	test_hook_env();
	test_hook_argv();
	test_hook_refused();
	test_hook_status();
	test_hook_output();
	test_hook_fds();
	test_hook_timeout();
	test_hook_sigchld();
	test_hook_no_zombie();
	test_metrics_text();
	test_metrics_escape();
	test_metrics_replace();
	test_metrics_errors();
	test_atomic();
	test_atomic_batch();
	test_notify();
	nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return tap_done();
}
