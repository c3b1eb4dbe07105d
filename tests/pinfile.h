/* The test programs' PIN files (pinfile.c): tokfill and tokwatch. */
#ifndef P11ENROLL_TESTS_PINFILE_H
#define P11ENROLL_TESTS_PINFILE_H

#include <stddef.h>

/* The first line of the file path, without its line end, into buf: 0, or
 * -1 with the reason on stderr after "prog: ". */
int pinfile_read(const char *prog, const char *path, char *buf, size_t len);

#endif
