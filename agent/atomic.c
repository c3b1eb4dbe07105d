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
 * so that a collector reading "*.prom" or "*.pem" never picks it up.
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

int agent_atomic_write(const char *path, int mode, agent_write_fn fn, void *arg, char *err,
		       size_t errlen)
{
	const char *slash = strrchr(path, '/'), *base = slash != NULL ? slash + 1 : path;
	char dir[4096], tmp[4200];
	struct stat st;
	FILE *f = NULL;
	int fd, len, saved;

	if (*base == '\0') {
		snprintf(err, errlen, "cannot write %s: it names a directory: give a file name",
			 path);
		return -1;
	}
	if (slash == NULL)
		len = snprintf(dir, sizeof(dir), ".");
	else
		len = snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path),
			       path);
	if (len < 0 || (size_t)len >= sizeof(dir) ||
	    (len = snprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", dir, base)) < 0 ||
	    (size_t)len >= sizeof(tmp)) {
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
	if (fn(f, arg) < 0 || fflush(f) != 0 || ferror(f) || fsync(fd) != 0) {
		saved = errno;
		fclose(f);
		goto fail;
	}
	if (fclose(f) != 0) {
		saved = errno;
		goto fail;
	}
	if (rename(tmp, path) != 0) {
		saved = errno;
		unlink(tmp);
		snprintf(err, errlen, "cannot replace %s: %s: check that it is not a directory",
			 path, strerror(saved));
		return -1;
	}
	(void)agent_fsync_dir(dir);
	return 0;
fail:
	unlink(tmp);
	snprintf(err, errlen, "cannot write %s: %s: check the free space of %s", path,
		 strerror(saved), dir);
	return -1;
}
