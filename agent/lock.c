/*
 * One process per enrollment at a time: the one-shot commands and the
 * agent's children take STATE_DIR/NAME.lock (flock, released when the
 * process ends, also by kill -9), so that a renewal started by hand never
 * runs beside the agent's.  The holder writes its process ID into the
 * file, so that a second process can say which one is busy.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/agent-cmd.h"

/* The lock this process holds, for agent_unlock(). */
static int held = -1;

/* The process ID the holder wrote, or 0: none yet (it has just taken the
 * lock), unreadable, or a process that is gone (an earlier holder's). */
static long holder(int fd)
{
	char buf[32], *end;
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	long pid;

	if (n <= 0)
		return 0;
	buf[n] = '\0';
	errno = 0;
	pid = strtol(buf, &end, 10);
	if (errno != 0 || end == buf || *end != '\n' || pid <= 0 || (pid_t)pid != pid)
		return 0;
	if (kill((pid_t)pid, 0) < 0 && errno != EPERM)
		return 0;
	return pid;
}

static void write_holder(int fd)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());

	/* Only for the message of a second process, which takes a missing or
	 * partly written ID (no newline) as none: a failure costs nothing. */
	if (n <= 0 || ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)n, 0) != n)
		log_msg(LOG_DEBUG, "cannot write the process ID into the enrollment lock: %s",
			strerror(errno));
}

int agent_lock(const conf_enrollment *e)
{
	char path[1024], *dot;
	long pid;
	int fd;

	if (pending_path(e, path, sizeof(path)) < 0 || (dot = strrchr(path, '.')) == NULL)
		return 0; /* no named enrollment: nothing another process could share */
	snprintf(dot, sizeof(path) - (size_t)(dot - path), ".lock");
	if (mkdir(pending_state_dir(e), 0700) < 0 && errno != EEXIST) {
		log_msg(LOG_INFO, "no state directory %s (%s): running without the enrollment lock",
			pending_state_dir(e), strerror(errno));
		return 0;
	}
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
		log_msg(LOG_INFO, "cannot open %s (%s): running without the enrollment lock", path,
			strerror(errno));
		return 0;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		pid = holder(fd);
		close(fd);
		if (pid > 0)
			log_msg(LOG_ERR, "another p11enroll process (process %ld: the agent's, or one "
					 "started by hand) is working on '%s' right now: try again "
					 "when it is done, or ask the agent (p11enroll status)",
				pid, e->name);
		else
			log_msg(LOG_ERR, "another p11enroll process (the agent?) is working on '%s' "
					 "right now: try again when it is done, or ask the agent "
					 "(p11enroll status)",
				e->name);
		return -1;
	}
	write_holder(fd);
	/* The descriptor stays open: the lock lasts as long as the process, or
	 * until agent_unlock(). */
	held = fd;
	return 0;
}

void agent_unlock(void)
{
	if (held >= 0)
		close(held);
	held = -1;
}
