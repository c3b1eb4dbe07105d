/*
 * fsync for fuzz-state: every input is saved and loaded again, and the
 * state file's fsync (crash safety, agent/track.c) made the target wait
 * for the disk 80% of the time instead of running inputs.  Durability
 * means nothing to a fuzzer; the bytes written and renamed are the same.
 */
#include "config.h"

#include <unistd.h>

int fsync(int fd)
{
	(void)fd;
	return 0;
}

int fdatasync(int fd)
{
	(void)fd;
	return 0;
}
