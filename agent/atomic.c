/*
 * The one way p11enroll writes a file: a fresh temporary file in the
 * target's directory, written, fsync'ed, renamed over the target, and the
 * directory fsync'ed.  A reader sees the old file or the new one, never
 * half; a crash leaves the old one.
 *
 * mkstemp() creates the temporary file with O_CREAT|O_EXCL under a name
 * nobody can predict, so a symlink or file planted beside the target is
 * never opened, let alone written through (a fixed "FILE.tmp" was).
 * rename() replaces the target's directory entry: a symlink at the target
 * is replaced, not followed, and a hard link to the old file keeps the old
 * content.  The temporary name starts with '.' and ends in random letters,
 * so that a collector reading "*.prom" or "*.pem" never picks it up.  A
 * batch (agent_atomic_batch_*) syncs its files' filesystem once instead of
 * each file: the same order of events, data before the rename.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/agent.h"

int agent_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r;

	if (fd < 0)
		return -1;
	r = fsync(fd);
	close(fd);
	return r;
}

/* path's temporary file, written and closed (fsync'ed when sync): 0 with
 * its name in tmp and its directory in dir, or -1 with err (removed). */
static int write_tmp(const char *path, int mode, agent_write_fn fn, void *arg, int sync,
		     char *dir, size_t dirlen, char *tmp, size_t tmplen, char *err, size_t errlen)
{
	const char *slash = strrchr(path, '/'), *base = slash != NULL ? slash + 1 : path;
	struct stat st;
	FILE *f = NULL;
	int fd, len, saved;

	if (*base == '\0') {
		snprintf(err, errlen, "cannot write %s: it names a directory: give a file name",
			 path);
		return -1;
	}
	if (slash == NULL)
		len = snprintf(dir, dirlen, ".");
	else
		len = snprintf(dir, dirlen, "%.*s", slash == path ? 1 : (int)(slash - path), path);
	if (len < 0 || (size_t)len >= dirlen ||
	    (len = snprintf(tmp, tmplen, "%s/.%s.XXXXXX", dir, base)) < 0 ||
	    (size_t)len >= tmplen) {
		snprintf(err, errlen, "cannot write %s: the name is too long: give a shorter path",
			 path);
		return -1;
	}
	/* The mode of the file being replaced wins: an administrator who
	 * made it group-readable meant the new one too. */
	if (mode == AGENT_MODE_KEEP)
		mode = lstat(path, &st) == 0 && S_ISREG(st.st_mode) ? (int)(st.st_mode & 07777) :
								      0644;
	if ((fd = mkstemp(tmp)) < 0) {
		snprintf(err, errlen,
			 "cannot write %s: cannot create a file in %s: %s: check that the "
			 "directory exists and is writable",
			 path, dir, strerror(errno));
		return -1;
	}
	if (fchmod(fd, (mode_t)mode) < 0 || (f = fdopen(fd, "w")) == NULL) {
		saved = errno;
		close(fd);
		goto fail;
	}
	errno = EIO; /* what a failed writer or ferror() alone means */
	if (fn(f, arg) < 0 || fflush(f) != 0 || ferror(f) || (sync && fsync(fd) != 0)) {
		saved = errno;
		fclose(f);
		goto fail;
	}
	if (fclose(f) != 0) {
		saved = errno;
		goto fail;
	}
	return 0;
fail:
	unlink(tmp);
	snprintf(err, errlen, "cannot write %s: %s: check the free space of %s", path,
		 strerror(saved), dir);
	return -1;
}

static int replace(const char *tmp, const char *path, char *err, size_t errlen)
{
	int saved;

	if (rename(tmp, path) == 0)
		return 0;
	saved = errno;
	unlink(tmp);
	snprintf(err, errlen, "cannot replace %s: %s: check that it is not a directory", path,
		 strerror(saved));
	return -1;
}

int agent_atomic_write(const char *path, int mode, agent_write_fn fn, void *arg, char *err,
		       size_t errlen)
{
	char dir[4096], tmp[4200];

	if (write_tmp(path, mode, fn, arg, 1, dir, sizeof(dir), tmp, sizeof(tmp), err, errlen) < 0 ||
	    replace(tmp, path, err, errlen) < 0)
		return -1;
	(void)agent_fsync_dir(dir);
	return 0;
}

/* ---- many files, one sync ----------------------------------------------------- */

typedef struct {
	char *path, *tmp, *dir;
} batch_file;

struct agent_atomic_batch {
	batch_file *f;
	size_t n, cap;
};

agent_atomic_batch *agent_atomic_batch_new(void)
{
	return calloc(1, sizeof(agent_atomic_batch));
}

int agent_atomic_batch_add(agent_atomic_batch *b, const char *path, int mode, agent_write_fn fn,
			   void *arg, char *err, size_t errlen)
{
	char dir[4096], tmp[4200];
	batch_file *nf, *f;

	if (b->n == b->cap) {
		size_t cap = b->cap > 0 ? 2 * b->cap : 64;

		if ((nf = realloc(b->f, cap * sizeof(*nf))) == NULL) {
			snprintf(err, errlen, "cannot write %s: out of memory", path);
			return -1;
		}
		b->f = nf;
		b->cap = cap;
	}
	if (write_tmp(path, mode, fn, arg, 0, dir, sizeof(dir), tmp, sizeof(tmp), err, errlen) < 0)
		return -1;
	f = &b->f[b->n];
	memset(f, 0, sizeof(*f));
	if ((f->path = strdup(path)) == NULL || (f->tmp = strdup(tmp)) == NULL ||
	    (f->dir = strdup(dir)) == NULL) {
		unlink(tmp);
		free(f->path);
		free(f->tmp);
		snprintf(err, errlen, "cannot write %s: out of memory", path);
		return -1;
	}
	b->n++;
	return 0;
}

int agent_atomic_batch_commit(agent_atomic_batch *b, char *err, size_t errlen)
{
	char why[4400];
	size_t i;
	int failed = 0, fd;

	if (b == NULL)
		return 0;
	/* The data of every temporary file is on the disk before any rename
	 * makes it the file: one syncfs per directory in a row (their
	 * filesystem), not one fsync per file. */
	for (i = 0; i < b->n; i++) {
		if (i > 0 && strcmp(b->f[i].dir, b->f[i - 1].dir) == 0)
			continue;
		if ((fd = open(b->f[i].dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
			(void)syncfs(fd);
			close(fd);
		}
	}
	for (i = 0; i < b->n; i++)
		if (replace(b->f[i].tmp, b->f[i].path, why, sizeof(why)) < 0 && failed++ == 0)
			snprintf(err, errlen, "%s", why);
	for (i = 0; i < b->n; i++)
		if (i == 0 || strcmp(b->f[i].dir, b->f[i - 1].dir) != 0)
			(void)agent_fsync_dir(b->f[i].dir);
	/* after the loop above: it compares with the entry before */
	for (i = 0; i < b->n; i++) {
		free(b->f[i].path);
		free(b->f[i].tmp);
		free(b->f[i].dir);
	}
	free(b->f);
	free(b);
	return failed;
}
