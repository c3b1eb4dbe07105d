/* nanosleep and sleep for the fuzz harnesses (nosleep.h says why). */
#include "config.h"

#include <errno.h>
#include <time.h>
#include <unistd.h>

#include "tests/fuzz/nosleep.h"

__thread int fuzz_client_thread;
int fuzz_recording;

int nanosleep(const struct timespec *req, struct timespec *rem)
{
	int r;

	if (fuzz_client_thread && !fuzz_recording)
		return 0;
	if ((r = clock_nanosleep(CLOCK_MONOTONIC, 0, req, rem)) != 0) {
		errno = r;
		return -1;
	}
	return 0;
}

unsigned int sleep(unsigned int s)
{
	struct timespec ts = { (time_t)s, 0 };

	return (unsigned int)nanosleep(&ts, NULL);
}
