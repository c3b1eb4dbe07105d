/*
 * The local store of server = file:///DIR: each message is one DER
 * PKIMessage (RFC 2510 5.1) written to DIR atomically under its request
 * name; the answer is the file under the response name, which the CA (or
 * a relay that moves the files by FTP, SCP or a USB stick) must create by
 * rename so that it is never read half written.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent-cmd.h"
#include "agent/spool.h"

/* Without inotify (or beyond its events: a directory on NFS) the answer
 * is looked for this often. */
#define POLL_MS 100

static int watch_fd = -1;

static int path_of(spool_store *st, cmpc_ctx *ctx, const char *name, char *out, size_t len)
{
	int n = snprintf(out, len, "%s/%s", st->where, name);

	if (n < 0 || (size_t)n >= len) {
		cmpc_transfer_fail(ctx, CMPC_ERR_TRANSPORT, "the file name %s/%s is too long",
				   st->where, name);
		return -1;
	}
	return 0;
}

static int put(spool_store *st, cmpc_ctx *ctx, const spool_msg *m, const unsigned char *der,
	       size_t len)
{
	char path[2048], err[1024];

	if (path_of(st, ctx, m->req_name, path, sizeof(path)) < 0)
		return -1;
	if (agent_write_der(path, der, len, err, sizeof(err)) < 0) {
		cmpc_transfer_fail(ctx, CMPC_ERR_TRANSPORT, "%s", err);
		return -1;
	}
	return 0;
}

static int get(spool_store *st, cmpc_ctx *ctx, const spool_msg *m)
{
	char path[2048];
	int fd;

	if (path_of(st, ctx, m->rsp_name, path, sizeof(path)) < 0)
		return -1;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
		if (errno == ENOENT)
			return 0;
		cmpc_transfer_fail(ctx, CMPC_ERR_TRANSPORT, "cannot read %s: %s", path,
				   strerror(errno));
		return -1;
	}
	return agent_read_answer(ctx, fd, path, "") == CMPC_OK ? 1 : -1;
}

/* Sleeps until something is created or moved into the directory, so that
 * an answer is read when it arrives rather than at the next poll. */
static void wait_dir(spool_store *st, const spool_msg *m, long ms)
{
	char buf[4096];
	struct pollfd pfd;

	(void)m;
	if (watch_fd < 0) {
		watch_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
		if (watch_fd >= 0 &&
		    inotify_add_watch(watch_fd, st->where, IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
			close(watch_fd);
			watch_fd = -1;
		}
	}
	if (watch_fd < 0) {
		struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

		nanosleep(&ts, NULL);
		return;
	}
	pfd.fd = watch_fd;
	pfd.events = POLLIN;
	if (poll(&pfd, 1, (int)ms) > 0)
		while (read(watch_fd, buf, sizeof(buf)) > 0)
			;
}

static void close_dir(spool_store *st)
{
	(void)st;
	if (watch_fd >= 0)
		close(watch_fd);
	watch_fd = -1;
}

int spool_dir_open(const conf_enrollment *e, spool_store *st, char *err, size_t errlen)
{
	/* file:///DIR, checked by the configuration and cmpc_set1_server */
	if ((size_t)snprintf(st->where, sizeof(st->where), "%s", e->server + 7) >=
	    sizeof(st->where)) {
		snprintf(err, errlen, "the spool directory's name is too long");
		return -1;
	}
	st->kind = "spool directory";
	st->poll_ms = POLL_MS;
	st->put = put;
	st->get = get;
	st->wait = wait_dir;
	st->close = close_dir;
	return 0;
}
