/*
 * Secrets (PINs, MAC secrets) come from a file, an inherited file
 * descriptor or an environment variable: never from argv, where every
 * user of the machine can read them.  Buffers are wiped when freed.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "agent/agent.h"

#define SECRET_MAX 4096

void secret_free(secret *s)
{
	if (s == NULL)
		return;
	if (s->buf != NULL) {
		OPENSSL_cleanse(s->buf, SECRET_MAX + 1);
		free(s->buf);
	}
	free(s);
}

/* Reads at most SECRET_MAX bytes; more is an error rather than a silent cut. */
static int read_fd(int fd, secret *s, const char *what, const char *from, char *err,
		   size_t errlen)
{
	size_t n = 0;

	for (;;) {
		ssize_t r = read(fd, s->buf + n, SECRET_MAX + 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, errlen, "cannot read the %s from %s: %s", what, from,
				 strerror(errno));
			return -1;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > SECRET_MAX) {
			snprintf(err, errlen, "the %s from %s is longer than %d bytes", what, from,
				 SECRET_MAX);
			return -1;
		}
	}
	s->len = n;
	return 0;
}

static int parse_fd(const char *s, int *ret)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 0 || v > INT_MAX)
		return -1;
	*ret = (int)v;
	return 0;
}

static int from_source(const char *src, const char *what, secret *s, char *err, size_t errlen)
{
	if (strncmp(src, "file:", 5) == 0) {
		const char *path = src + 5;
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		struct stat st;
		int rc;

		if (fd < 0) {
			snprintf(err, errlen, "cannot open the %s file %s: %s", what, path,
				 strerror(errno));
			return -1;
		}
		if (fstat(fd, &st) == 0 && (st.st_mode & (S_IROTH | S_IWOTH)) != 0)
			log_msg(LOG_WARNING,
				"the %s file %s is readable by other users; chmod o-rw it", what,
				path);
		rc = read_fd(fd, s, what, path, err, errlen);
		close(fd);
		return rc;
	}
	if (strncmp(src, "fd:", 3) == 0) {
		int fd, rc;

		if (parse_fd(src + 3, &fd) < 0) {
			snprintf(err, errlen, "the %s source '%s' has no valid descriptor number",
				 what, src);
			return -1;
		}
		rc = read_fd(fd, s, what, src, err, errlen);
		close(fd);
		return rc;
	}
	if (strncmp(src, "env:", 4) == 0) {
		const char *v = getenv(src + 4);
		size_t n;

		if (src[4] == '\0' || v == NULL) {
			snprintf(err, errlen, "the environment variable '%s' for the %s is not set",
				 src + 4, what);
			return -1;
		}
		n = strlen(v);
		if (n > SECRET_MAX) {
			snprintf(err, errlen, "the %s in $%s is longer than %d bytes", what,
				 src + 4, SECRET_MAX);
			return -1;
		}
		memcpy(s->buf, v, n);
		s->len = n;
		return 0;
	}
	/* The source is not echoed: it may be the secret itself, given by mistake. */
	snprintf(err, errlen,
		 "the %s source is not file:PATH, fd:N or env:NAME (a %s is never given "
		 "directly)",
		 what, what);
	return -1;
}

int secret_read(const char *src, const char *what, secret **ret, char *err, size_t errlen)
{
	secret *s = calloc(1, sizeof(*s));

	if (s == NULL || (s->buf = calloc(1, SECRET_MAX + 1)) == NULL) {
		free(s);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (from_source(src, what, s, err, errlen) < 0) {
		secret_free(s);
		return -1;
	}
	/* Only the first line counts, so that "echo PIN > file" works. */
	char *nl = memchr(s->buf, '\n', s->len);
	if (nl != NULL)
		s->len = (size_t)(nl - s->buf);
	if (s->len > 0 && s->buf[s->len - 1] == '\r')
		s->len--;
	OPENSSL_cleanse(s->buf + s->len, SECRET_MAX + 1 - s->len);
	if (s->len == 0) {
		snprintf(err, errlen, "the %s from %s is empty", what, src);
		secret_free(s);
		return -1;
	}
	*ret = s;
	return 0;
}
