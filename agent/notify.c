/*
 * systemd's readiness protocol (sd_notify(3)) in a few lines rather than a
 * dependency on libsystemd: one datagram of "KEY=value" lines to the
 * AF_UNIX socket in $NOTIFY_SOCKET.  Without the variable (not started by
 * systemd, or Type=simple) there is nobody to tell, which is no error.
 */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent/daemon.h"

int notify_send(const char *state)
{
	const char *name = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa;
	socklen_t salen;
	size_t len, statelen;
	ssize_t n;
	int fd, e;

	if (name == NULL || *name == '\0')
		return 0;
	if (state == NULL || (*name != '/' && *name != '@')) {
		errno = EINVAL;
		return -1;
	}
	len = strlen(name);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (len > sizeof(sa.sun_path) - (*name == '/')) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sa.sun_path, name, len);
	/* An abstract name starts with NUL and its length is exactly the
	 * address length: no terminating NUL. */
	if (*name == '@')
		sa.sun_path[0] = '\0';
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);

	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	statelen = strlen(state);
	n = sendto(fd, state, statelen, MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
	e = errno;
	close(fd);
	if (n < 0) {
		errno = e;
		return -1;
	}
	if ((size_t)n != statelen) {
		errno = EMSGSIZE;
		return -1;
	}
	return 0;
}
