/*
 * The agent's control socket: a UNIX stream socket, mode 0660, owned by the
 * configured group, and each peer checked with SO_PEERCRED (root, the
 * agent's own user, or the group).  One request line per connection:
 * "status [NAME]", "status-text [NAME]", "renew NAME", "reload", "clear
 * NAME"; the reply is framed (ctl_reply.c) and ends with an "exit N" line
 * (N an EXIT_* code).  The agent serves its clients without blocking (ctl_client_*):
 * a client that sends nothing, half a line, or never reads its answer only
 * holds its own connection, until the agent's deadline.
 */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "agent/track.h"

const char *ctl_default_path(const conf_enrollment *e)
{
	static char path[1024];

	if (e->control_socket != NULL)
		return e->control_socket;
	/* --user: in the runtime directory, which the session removes */
	if (agent_user_socket() != NULL)
		return agent_user_socket();
	snprintf(path, sizeof(path), "%s/control", pending_state_dir(e));
	return path;
}

static int set_path(struct sockaddr_un *sa, const char *path)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path))
		return -1;
	memcpy(sa->sun_path, path, strlen(path) + 1);
	return 0;
}

int ctl_listen(const char *path, const char *group, char *err, size_t errlen)
{
	struct sockaddr_un sa;
	struct group *gr = NULL;
	int fd;

	if (set_path(&sa, path) < 0) {
		snprintf(err, errlen, "control socket path %s is too long", path);
		return -1;
	}
	if (group != NULL && (gr = getgrnam(group)) == NULL) {
		snprintf(err, errlen, "control_group '%s' is not a group of this system", group);
		return -1;
	}
	/* A socket left by a killed agent is in the way; anything else is not
	 * ours to remove. */
	{
		struct stat st;

		if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
			unlink(path);
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    chmod(path, 0660) < 0 || (gr != NULL && chown(path, (uid_t)-1, gr->gr_gid) < 0) ||
	    listen(fd, 16) < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* ---- the agent's side of a connection ------------------------------------- */

long long ctl_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

short ctl_client_events(const ctl_client *c)
{
	switch (c->phase) {
	case CTL_READ:
	case CTL_LINGER:
		return POLLIN;
	case CTL_WRITE:
		return (short)(POLLOUT | (c->in_eof ? 0 : POLLIN));
	case CTL_WAIT:
		break;
	}
	return 0;
}

/* What arrives after the request is read and dropped: 0 while the client is
 * there, -1 once it has closed (or failed). */
static int discard_input(ctl_client *c)
{
	char junk[4096];
	ssize_t n;
	int k = 0;

	/* bounded: a client that writes as fast as this reads must not keep
	 * the agent here; poll brings it back */
	while ((n = recv(c->fd, junk, sizeof(junk), MSG_DONTWAIT)) > 0)
		if (++k == 16)
			return 0;
	if (n == 0) {
		c->in_eof = 1;
		return -1;
	}
	return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
}

static ctl_io read_line(ctl_client *c)
{
	ssize_t n;
	char *nl;

	for (;;) {
		if (c->len >= CTL_LINE_MAX)
			return CTL_IO_TOO_LONG;
		n = recv(c->fd, c->line + c->len, CTL_LINE_MAX - c->len, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return CTL_IO_MORE;
		if (n < 0)
			return CTL_IO_DONE;
		if (n == 0) {
			/* A client that shut down its side after a line without
			 * newline ("printf status | socat") still asked. */
			c->in_eof = 1;
			if (c->len == 0)
				return CTL_IO_DONE;
			c->line[c->len] = '\0';
			c->line[strcspn(c->line, "\r")] = '\0';
			return CTL_IO_REQUEST;
		}
		c->len += (size_t)n;
		c->line[c->len] = '\0';
		if ((nl = memchr(c->line, '\n', c->len)) != NULL) {
			*nl = '\0';
			c->line[strcspn(c->line, "\r")] = '\0';
			return CTL_IO_REQUEST;
		}
	}
}

static ctl_io flush(ctl_client *c)
{
	ssize_t n;

	while (c->outoff < c->outlen) {
		n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff,
			 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return CTL_IO_MORE;
		if (n <= 0)
			return CTL_IO_DONE;
		c->outoff += (size_t)n;
	}
	(void)shutdown(c->fd, SHUT_WR);
	c->phase = CTL_LINGER;
	return c->in_eof || discard_input(c) < 0 ? CTL_IO_DONE : CTL_IO_MORE;
}

ctl_io ctl_client_io(ctl_client *c)
{
	switch (c->phase) {
	case CTL_READ:
		return read_line(c);
	case CTL_WRITE:
		/* a client that shut down its side may still read: only a
		 * failure ends it here */
		if (!c->in_eof && discard_input(c) < 0 && !c->in_eof)
			return CTL_IO_DONE;
		return flush(c);
	case CTL_LINGER:
		return discard_input(c) < 0 ? CTL_IO_DONE : CTL_IO_MORE;
	case CTL_WAIT:
		break;
	}
	return CTL_IO_MORE;
}

int ctl_client_queue(ctl_client *c, const char *s, size_t n)
{
	char *p;

	if (n == 0)
		return 0;
	if ((p = realloc(c->out, c->outlen + n)) == NULL)
		return -1;
	memcpy(p + c->outlen, s, n);
	c->out = p;
	c->outlen += n;
	return 0;
}

/* The answer's first line, before its first frame or exit line. */
static int begin(ctl_client *c)
{
	char head[32];

	if (c->outlen > 0)
		return 0;
	return ctl_client_queue(c, head, (size_t)ctl_reply_head(head, sizeof(head)));
}

int ctl_client_frame(ctl_client *c, ctl_frame kind, const char *p, size_t n)
{
	char head[48];

	if (begin(c) < 0 ||
	    ctl_client_queue(c, head, (size_t)ctl_reply_frame_head(head, sizeof(head), kind, n)) < 0)
		return -1;
	return n == 0 ? 0 : ctl_client_queue(c, p, n);
}

int ctl_client_frame0(ctl_client *c, ctl_frame kind, char *p, size_t n)
{
	char head[80];
	size_t h;
	int rc;
	char *q;

	if (c->out != NULL) {
		rc = ctl_client_frame(c, kind, p, n);
		free(p);
		return rc;
	}
	/* a document of megabytes is not copied: its room grows by the
	 * two lines before it */
	h = (size_t)ctl_reply_head(head, sizeof(head));
	h += (size_t)ctl_reply_frame_head(head + h, sizeof(head) - h, kind, n);
	if ((q = realloc(p, n + h)) == NULL) {
		free(p);
		return -1;
	}
	memmove(q + h, q, n);
	memcpy(q, head, h);
	c->out = q;
	c->outlen = n + h;
	return 0;
}

ctl_io ctl_client_answer(ctl_client *c)
{
	c->phase = CTL_WRITE;
	return flush(c);
}

void ctl_client_close(ctl_client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->out);
	c->out = NULL;
	c->outlen = c->outoff = 0;
}

ctl_verb ctl_parse_request(const char *line, const char **ret_name)
{
	*ret_name = NULL;
	if (strcmp(line, "status") == 0)
		return CTL_STATUS_JSON;
	if (strcmp(line, "status-text") == 0)
		return CTL_STATUS_TEXT;
	if (strncmp(line, "status ", 7) == 0) {
		*ret_name = line + 7;
		return CTL_STATUS_JSON;
	}
	if (strncmp(line, "status-text ", 12) == 0) {
		*ret_name = line + 12;
		return CTL_STATUS_TEXT;
	}
	if (strcmp(line, "reload") == 0)
		return CTL_RELOAD;
	if (strncmp(line, "renew ", 6) == 0 || strncmp(line, "clear ", 6) == 0) {
		*ret_name = line + 6;
		return line[0] == 'r' ? CTL_RENEW : CTL_CLEAR;
	}
	return CTL_UNKNOWN;
}

/* ---- the client side ------------------------------------------------------- */

/* -q: errors only; a renewal's report goes, what status was asked for
 * stays (ctl_request sets it per request). */
static int quiet_report;

static void sink(void *arg, ctl_frame kind, const char *p, size_t n)
{
	(void)arg;
	if (kind == CTL_FRAME_OUT && quiet_report)
		return;
	fwrite(p, 1, n, kind == CTL_FRAME_OUT ? stdout : stderr);
}

/* The agent's own words: on stdout after a success, else each line an
 * error message, as the command would print it itself. */
static void print_msg(const char *msg, int code)
{
	const char *p = msg;
	size_t n;

	if (code == EXIT_OK) {
		if (quiet_report)
			return;
		fputs(msg, stdout);
		if (msg[0] != '\0' && msg[strlen(msg) - 1] != '\n')
			putchar('\n');
		return;
	}
	fflush(stdout);
	while (*p != '\0') {
		n = strcspn(p, "\n");
		log_msg(LOG_ERR, "%.*s", (int)n, p);
		p += n + (p[n] == '\n');
	}
}

int ctl_request(const char *path, const char *line, agent_rc *ret_rc)
{
	struct sockaddr_un sa;
	char req[1024], buf[65536];
	size_t got = 0;
	ssize_t n;
	ctl_reply r;
	int fd, rc;

	if (set_path(&sa, path) < 0 ||
	    (fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	/* One send of the whole line: the agent answers what its first read
	 * got and closes, so a newline sent after it met a closed socket (EPIPE,
	 * and SIGPIPE killed this process with the status unprinted). */
	snprintf(req, sizeof(req), "%s\n", line);
	if (send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req)) {
		close(fd);
		return -1;
	}
	/* out and err go on as they come: a status document of megabytes is
	 * never held here */
	ctl_reply_init(&r);
	quiet_report = log_verbosity() < 0 && strncmp(line, "status", 6) != 0;
	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
		if (ctl_reply_feed(&r, buf, (size_t)n, sink, NULL) < 0)
			break;
	}
	close(fd);
	fflush(stdout);
	if (got == 0) {
		ctl_reply_clear(&r);
		return -1;
	}
	if (r.state == CTL_REPLY_BAD || ctl_reply_end(&r) < 0) {
		/* A cut answer is a connection that failed (the agent stopped
		 * meanwhile); a malformed one, a client and an agent that do
		 * not agree. */
		rc = r.state == CTL_REPLY_BAD && strncmp(r.why, "cut short", 9) != 0 ? EXIT_INTERNAL
										      : EXIT_TRANSPORT;
		if (r.msg != NULL)
			print_msg(r.msg, EXIT_INTERNAL);
		log_msg(LOG_ERR, "the agent's answer on %s is %s: %s (after %zu bytes); %s", path,
			rc == EXIT_TRANSPORT ? "incomplete" : "malformed", r.why, got,
			rc == EXIT_TRANSPORT ? "its log says whether it stopped and what it did"
					     : "restart the agent, so that it is of this version");
		ctl_reply_clear(&r);
		*ret_rc = (agent_rc)rc;
		return 0;
	}
	if (r.msg != NULL)
		print_msg(r.msg, r.code);
	ctl_reply_clear(&r);
	*ret_rc = (agent_rc)r.code;
	return 0;
}

int agent_ctl(const char *cmd, const conf_enrollment *e, const agent_cmd_opts *o,
	      agent_rc *ret_rc)
{
	const char *path = ctl_default_path(e);
	char line[600];

	if (strcmp(cmd, "status") == 0)
		snprintf(line, sizeof(line), "%s%s%s", o->json ? "status" : "status-text",
			 o->named && e->name != NULL ? " " : "",
			 o->named && e->name != NULL ? e->name : "");
	else if (strcmp(cmd, "reload") == 0)
		snprintf(line, sizeof(line), "reload");
	else
		snprintf(line, sizeof(line), "%s %s", cmd, e->name != NULL ? e->name : "");
	if (ctl_request(path, line, ret_rc) == 0)
		return 0;
	if (strcmp(cmd, "renew") != 0)
		log_msg(LOG_ERR, "no agent answers on %s: start it (%s), or set control_socket", path,
			agent_user_mode() ? "p11enroll --user agent, or systemctl --user start "
					    "p11enroll-user"
					  : "p11enroll agent, or systemctl start p11enroll");
	return -1;
}
