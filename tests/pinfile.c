/* The test programs' PIN files (pinfile.h). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "tests/pinfile.h"

int pinfile_read(const char *prog, const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	int ok;

	if (f == NULL) {
		fprintf(stderr, "%s: cannot open the PIN file %s: %s\n", prog, path,
			strerror(errno));
		return -1;
	}
	ok = fgets(buf, (int)len, f) != NULL;
	fclose(f);
	if (!ok) {
		fprintf(stderr, "%s: the PIN file %s is empty\n", prog, path);
		return -1;
	}
	buf[strcspn(buf, "\r\n")] = '\0';
	return 0;
}
