/*
 * The agent's side of the control socket: which clients it serves, their
 * deadlines, and each request line handed to the agent.  Never blocking:
 * each connection is read and answered as poll reports it (ctl.c), each
 * phase within the server's timeout.
 */
#include "config.h"

#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/track.h"

/* Control clients being read or answered at once (a client waiting for a
 * renewal does not count: there is at most one per enrollment); the last
 * CTL_RESERVED places are kept for root and the agent's user, so that the
 * control group cannot lock them out. */
#define CTL_MAX_CLIENTS 32
#define CTL_RESERVED 4

/* Besides the socket's mode and group: root, the agent's user, members of
 * control_group. */
static int peer_allowed(const ctl_server *s, const struct ucred *cr)
{
	struct group *gr;
	struct passwd *pw;
	gid_t groups[64];
	int n = 64, i;

	if (cr->uid == 0 || cr->uid == geteuid())
		return 1;
	if (s->group == NULL || (gr = getgrnam(s->group)) == NULL)
		return 0;
	if (cr->gid == gr->gr_gid)
		return 1;
	if ((pw = getpwuid(cr->uid)) == NULL ||
	    getgrouplist(pw->pw_name, pw->pw_gid, groups, &n) < 0)
		return 0;
	for (i = 0; i < n; i++)
		if (groups[i] == gr->gr_gid)
			return 1;
	return 0;
}

static ctl_client *client_of(const ctl_server *s, int fd)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (s->clients[i].fd == fd)
			return &s->clients[i];
	return NULL;
}

/* Sends what the client takes now of its answer, complete in c->out; a
 * client gone meanwhile is closed by the loop. */
static void answer(ctl_server *s, ctl_client *c)
{
	c->deadline = ctl_now_ms() + (long long)s->timeout * 1000;
	if (ctl_client_answer(c) == CTL_IO_DONE) {
		c->phase = CTL_LINGER;
		c->deadline = 0; /* the loop closes it */
	}
}

void ctl_serve_reply_step(ctl_server *s, int fd, int code, const char *out, size_t outlen,
			  const char *err, size_t errlen, const char *msg)
{
	ctl_client *c = client_of(s, fd);
	char line[32];
	int rc = 0;

	if (c == NULL) {
		close(fd);
		return;
	}
	if (outlen > 0)
		rc = ctl_client_frame(c, CTL_FRAME_OUT, out, outlen);
	if (rc == 0 && errlen > 0)
		rc = ctl_client_frame(c, CTL_FRAME_ERR, err, errlen);
	/* the message ends its line: a reader by hand (socat) sees the exit
	 * line as one */
	if (rc == 0 && msg != NULL && msg[0] != '\0' && msg[strlen(msg) - 1] != '\n') {
		char *m = malloc(strlen(msg) + 2);

		if (m == NULL) {
			rc = -1;
		} else {
			memcpy(m, msg, strlen(msg));
			memcpy(m + strlen(msg), "\n", 2);
			rc = ctl_client_frame(c, CTL_FRAME_MSG, m, strlen(m));
			free(m);
		}
	} else if (rc == 0 && msg != NULL && msg[0] != '\0') {
		rc = ctl_client_frame(c, CTL_FRAME_MSG, msg, strlen(msg));
	}
	/* the first line, when there is no frame */
	if (rc == 0 && c->outlen == 0)
		rc = ctl_client_frame(c, CTL_FRAME_MSG, "", 0);
	if (rc == 0)
		rc = ctl_client_queue(c, line, (size_t)ctl_reply_exit(line, sizeof(line), code));
	if (rc < 0) {
		/* what is queued may end anywhere: the client says so */
		log_msg(LOG_ERR, "control: out of memory for an answer to uid %ld", (long)c->uid);
	}
	answer(s, c);
}

void ctl_serve_reply(ctl_server *s, int fd, int code, const char *msg)
{
	ctl_serve_reply_step(s, fd, code, NULL, 0, NULL, 0, msg);
}

void ctl_serve_wait(ctl_server *s, int fd)
{
	ctl_client *c = client_of(s, fd);

	if (c != NULL)
		c->phase = CTL_WAIT;
}

static size_t active_clients(const ctl_server *s)
{
	size_t i, k = 0;

	for (i = 0; i < s->n; i++)
		if (s->clients[i].phase != CTL_WAIT)
			k++;
	return k;
}

/* A new connection: checked, and refused when the agent serves enough. */
void ctl_serve_accept(ctl_server *s, int fd)
{
	static const char busy_msg[] = "p11enroll-reply 1\nmsg 59\nthe agent serves too many "
				       "control clients: try again later\nexit 11\n";
	char junk[CTL_LINE_MAX];
	struct ucred cr;
	socklen_t crlen = sizeof(cr);
	ctl_client *c;
	size_t limit;
	int privileged;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) < 0 || !peer_allowed(s, &cr)) {
		log_msg(LOG_WARNING, "control: refused a client (uid %ld): only root, the agent's "
				     "user and the control_group may use the socket",
			crlen == sizeof(cr) ? (long)cr.uid : -1L);
		close(fd);
		return;
	}
	privileged = cr.uid == 0 || cr.uid == geteuid();
	limit = privileged ? CTL_MAX_CLIENTS : CTL_MAX_CLIENTS - CTL_RESERVED;
	if (active_clients(s) >= limit) {
		log_msg(LOG_WARNING, "control: refused a client (uid %ld): %zu clients are served "
				     "already",
			(long)cr.uid, active_clients(s));
		/* what it sent already is read, so that the close is no reset
		 * that loses the message */
		while (recv(fd, junk, sizeof(junk), MSG_DONTWAIT) > 0)
			;
		(void)send(fd, busy_msg, sizeof(busy_msg) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
		close(fd);
		return;
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;

		if ((c = realloc(s->clients, cap * sizeof(*c))) == NULL) {
			log_msg(LOG_ERR, "control: out of memory for a client");
			close(fd);
			return;
		}
		s->clients = c;
		s->cap = cap;
	}
	c = &s->clients[s->n++];
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->uid = cr.uid;
	c->gid = cr.gid;
	c->privileged = privileged;
	c->phase = CTL_READ;
	c->deadline = ctl_now_ms() + (long long)s->timeout * 1000;
}

static void drop_client(ctl_server *s, size_t i, const char *why)
{
	ctl_client *c = &s->clients[i];

	if (why != NULL)
		log_msg(LOG_WARNING, "control: dropped a client (uid %ld): %s", (long)c->uid, why);
	ctl_client_close(c);
	s->clients[i] = s->clients[--s->n];
}

/* After poll: each client that poll reported on, then the deadlines. */
void ctl_serve(ctl_server *s, const struct pollfd *pf, size_t np, ctl_handler *handler,
	       void *arg)
{
	long long t = ctl_now_ms();
	char why[96];
	size_t i, k;
	ctl_client *c;
	ctl_io io;

	for (k = 0; k < np; k++) {
		if (pf[k].revents == 0 || (c = client_of(s, pf[k].fd)) == NULL || c->phase == CTL_WAIT)
			continue;
		io = ctl_client_io(c);
		if (io == CTL_IO_REQUEST) {
			handler(arg, c);
			continue;
		}
		if (io == CTL_IO_TOO_LONG) {
			snprintf(why, sizeof(why), "request line too long (more than %d bytes)",
				 CTL_LINE_MAX - 1);
			log_msg(LOG_WARNING, "control: uid %ld sent a %s", (long)c->uid, why);
			ctl_serve_reply(s, c->fd, EXIT_USAGE, why);
			continue;
		}
		if (io == CTL_IO_DONE) {
			c->phase = CTL_LINGER;
			c->deadline = 0;
		}
	}
	for (i = 0; i < s->n;) {
		c = &s->clients[i];
		if (c->phase == CTL_WAIT || c->deadline > t) {
			i++;
			continue;
		}
		if (c->phase == CTL_READ)
			snprintf(why, sizeof(why), "no request line within %d s (%zu bytes of one)",
				 s->timeout, c->len);
		else if (c->phase == CTL_WRITE)
			snprintf(why, sizeof(why), "did not take its answer within %d s",
				 s->timeout);
		drop_client(s, i, c->phase == CTL_READ || c->phase == CTL_WRITE ? why : NULL);
	}
}


size_t ctl_serve_pollfds(const ctl_server *s, struct pollfd *pf, long long *first)
{
	size_t i, np = 0;

	*first = -1;
	for (i = 0; i < s->n; i++) {
		if (s->clients[i].phase == CTL_WAIT)
			continue;
		pf[np].fd = s->clients[i].fd;
		pf[np++].events = ctl_client_events(&s->clients[i]);
		if (*first < 0 || s->clients[i].deadline < *first)
			*first = s->clients[i].deadline;
	}
	return np;
}

void ctl_serve_close_all(ctl_server *s)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		ctl_client_close(&s->clients[i]);
	free(s->clients);
	s->clients = NULL;
	s->n = s->cap = 0;
}
