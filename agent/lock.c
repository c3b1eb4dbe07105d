/*
 * One process per label on a token at a time: the one-shot commands and
 * the agent's children take STATE_DIR/pending/LABEL@TOKEN.lock (flock,
 * released when the process ends, also by kill -9), so that a renewal
 * started by hand never runs beside the agent's.  By token and label, as
 * the pending transactions are (pending.c): two cards enrolled with one
 * enrollment section do not wait for each other.  The lock is taken when
 * the token is opened (agent_token_open), the first moment it is known.
 * The holder writes its process ID into the file, so that a second
 * process can say which one is busy.
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

/* The lock this process holds, for agent_unlock(), and its file. */
static int held = -1;
static char held_path[1024];
static int wanted;

void agent_lock_on_open(int on)
{
	wanted = on;
}

int agent_lock_wanted(void)
{
	return wanted;
}

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

int agent_lock(const conf_enrollment *e, const tok_info *ti)
{
	static char none[] = "";
	conf_enrollment le = *e;
	char path[1024], dir[1024], key[512];
	long pid;
	int fd;

	/* Without a label (revoke by serial): the token's, for all labels. */
	if (le.label == NULL)
		le.label = none;
	if (pending_path(&le, ti, "lock", path, sizeof(path)) < 0 ||
	    pending_key(le.label, ti, key, sizeof(key)) < 0)
		return 0;
	if (held >= 0 && strcmp(path, held_path) == 0)
		return 0; /* taken by this process already (resume opens twice) */
	agent_unlock();
	snprintf(dir, sizeof(dir), "%s/pending", pending_state_dir(e));
	if ((mkdir(pending_state_dir(e), 0700) < 0 && errno != EEXIST) ||
	    (mkdir(dir, 0700) < 0 && errno != EEXIST)) {
		log_msg(LOG_INFO, "no state directory %s (%s): running without the enrollment lock",
			dir, strerror(errno));
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
					 "started by hand) is working on '%s' on this token (%s) "
					 "right now: try again when it is done, or ask the agent "
					 "(p11enroll status)",
				pid, e->name != NULL ? e->name : "(command line)", key);
		else
			log_msg(LOG_ERR, "another p11enroll process (the agent?) is working on '%s' "
					 "on this token (%s) right now: try again when it is done, "
					 "or ask the agent (p11enroll status)",
				e->name != NULL ? e->name : "(command line)", key);
		return -1;
	}
	write_holder(fd);
	snprintf(held_path, sizeof(held_path), "%s", path);
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
	held_path[0] = '\0';
}
