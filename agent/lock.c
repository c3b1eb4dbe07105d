/*
 * One process per enrollment at a time: the one-shot commands and the
 * agent's children take STATE_DIR/NAME.lock (flock, released when the
 * process ends, also by kill -9), so that a renewal started by hand never
 * runs beside the agent's.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/agent-cmd.h"

int agent_lock(const conf_enrollment *e)
{
	char path[1024], *dot;
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
		close(fd);
		log_msg(LOG_ERR, "another p11enroll process (the agent?) is working on '%s' right now: "
				 "try again when it is done, or ask the agent (p11enroll status)",
			e->name);
		return -1;
	}
	return 0; /* the descriptor stays open: the lock lasts as long as the process */
}
