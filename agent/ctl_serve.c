/*
 * The agent's side of the control socket: which clients it serves, how
 * their requests reach the enrollments, and their deadlines.  Never
 * blocking: each connection is read and answered as poll reports it
 * (ctl.c), each phase within the agent's control timeout.
 */
#include "config.h"

#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "agent/agentd.h"

/* Control clients being read or answered at once (a client waiting for a
 * renewal does not count: there is at most one per enrollment); the last
 * CTL_RESERVED places are kept for root and the agent's user, so that the
 * control group cannot lock them out. */
#define CTL_MAX_CLIENTS 32
#define CTL_RESERVED 4

/* Besides the socket's mode and group: root, the agent's user, members of
 * control_group. */
static int peer_allowed(const agentd *d, const struct ucred *cr)
{
	struct group *gr;
	struct passwd *pw;
	gid_t groups[64];
	int n = 64, i;

	if (cr->uid == 0 || cr->uid == geteuid())
		return 1;
	if (d->tracks == NULL || d->n == 0 || d->tracks[0]->e.control_group == NULL ||
	    (gr = getgrnam(d->tracks[0]->e.control_group)) == NULL)
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

static ctl_client *client_of(const agentd *d, int fd)
{
	size_t i;

	for (i = 0; i < d->nclients; i++)
		if (d->clients[i].fd == fd)
			return &d->clients[i];
	return NULL;
}

/* Queues text and the "exit N" line (none when code < 0: status) as the
 * whole answer of the client on fd, and sends what it takes now; a client
 * gone meanwhile is closed by the loop. */
void ctl_serve_reply(agentd *d, int fd, int code, const char *text)
{
	ctl_client *c = client_of(d, fd);
	char line[64];
	int rc = 0;

	if (c == NULL) {
		close(fd);
		return;
	}
	if (text != NULL)
		rc = ctl_client_queue(c, text, strlen(text));
	if (code >= 0) {
		snprintf(line, sizeof(line), "%sexit %d\n",
			 c->outlen > 0 && c->out[c->outlen - 1] != '\n' ? "\n" : "", code);
		if (rc == 0)
			rc = ctl_client_queue(c, line, strlen(line));
	}
	if (rc < 0)
		log_msg(LOG_ERR, "control: out of memory for an answer to uid %ld", (long)c->uid);
	c->deadline = ctl_now_ms() + (long long)d->ctl_timeout * 1000;
	if (ctl_client_answer(c) == CTL_IO_DONE) {
		c->phase = CTL_LINGER;
		c->deadline = 0; /* the loop closes it */
	}
}

void ctl_serve_wait(agentd *d, int fd)
{
	ctl_client *c = client_of(d, fd);

	if (c != NULL)
		c->phase = CTL_WAIT;
}

static track *find(const agentd *d, const char *name)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		if (strcmp(d->tracks[i]->name, name) == 0)
			return d->tracks[i];
	return NULL;
}

static void handle_request(agentd *d, ctl_client *c)
{
	const char *line = c->line, *name = NULL;
	ctl_verb verb = ctl_parse_request(line, &name);
	char msg[600];
	track *t;
	char *json;
	size_t len;

	log_msg(LOG_DEBUG, "control: '%s' from uid %ld", line, (long)c->uid);
	if (verb == CTL_STATUS_JSON || verb == CTL_STATUS_TEXT) {
		json = verb == CTL_STATUS_JSON ? track_status_json(d->tracks, d->n, agentd_now(d), d->rate, &len)
					       : track_status_text(d->tracks, d->n, agentd_now(d), &len);
		if (json == NULL || ctl_client_queue(c, json, len) < 0)
			log_msg(LOG_ERR, "control: out of memory for the status");
		free(json);
		ctl_serve_reply(d, c->fd, -1, NULL);
		return;
	}
	if (verb == CTL_RELOAD) {
		conf_diag diag = { 0 };
		int r = agentd_reload(d, &diag);

		if (r >= 0) {
			ctl_serve_reply(d, c->fd, EXIT_OK,
			      r == 0 ? "" : "a step is running: the agent reloads when it ends\n");
		} else if (c->uid == 0 || c->uid == geteuid()) {
			/* the file's contents only to whom may read it anyway */
			if (diag.text != NULL && ctl_client_queue(c, diag.text, diag.len) < 0)
				log_msg(LOG_ERR, "control: out of memory for an answer");
			ctl_serve_reply(d, c->fd, EXIT_USAGE,
			      "reload failed: the agent keeps its previous configuration; fix the "
			      "file and reload again\n");
		} else {
			ctl_serve_reply(d, c->fd, EXIT_USAGE,
			      "reload failed: the agent keeps its previous configuration; its log "
			      "says why\n");
		}
		conf_diag_clear(&diag);
		return;
	}
	if ((verb == CTL_RENEW || verb == CTL_CLEAR) && (t = find(d, name)) != NULL) {
		fsm_event ev = { 0 };

		ev.kind = verb == CTL_CLEAR ? EV_CLEAR : EV_RENEW;
		ev.fd = c->fd;
		ev.privileged = c->privileged;
		ev.uid = (long)c->uid;
		ev.agent_uid = (long)geteuid();
		ev.wall = (long long)time(NULL);
		ev.rate = d->rate;
		agentd_event(d, t, &ev);
		return;
	}
	snprintf(msg, sizeof(msg), "unknown request or enrollment: %.100s\n", line);
	ctl_serve_reply(d, c->fd, EXIT_USAGE, msg);
}

static size_t active_clients(const agentd *d)
{
	size_t i, k = 0;

	for (i = 0; i < d->nclients; i++)
		if (d->clients[i].phase != CTL_WAIT)
			k++;
	return k;
}

/* A new connection: checked, and refused when the agent serves enough. */
void ctl_serve_accept(agentd *d, int fd)
{
	static const char busy_msg[] = "the agent serves too many control clients: try again "
				       "later\nexit 11\n";
	char junk[CTL_LINE_MAX];
	struct ucred cr;
	socklen_t crlen = sizeof(cr);
	ctl_client *c;
	size_t limit;
	int privileged;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) < 0 || !peer_allowed(d, &cr)) {
		log_msg(LOG_WARNING, "control: refused a client (uid %ld): only root, the agent's "
				     "user and the control_group may use the socket",
			crlen == sizeof(cr) ? (long)cr.uid : -1L);
		close(fd);
		return;
	}
	privileged = cr.uid == 0 || cr.uid == geteuid();
	limit = privileged ? CTL_MAX_CLIENTS : CTL_MAX_CLIENTS - CTL_RESERVED;
	if (active_clients(d) >= limit) {
		log_msg(LOG_WARNING, "control: refused a client (uid %ld): %zu clients are served "
				     "already",
			(long)cr.uid, active_clients(d));
		/* what it sent already is read, so that the close is no reset
		 * that loses the message */
		while (recv(fd, junk, sizeof(junk), MSG_DONTWAIT) > 0)
			;
		(void)send(fd, busy_msg, sizeof(busy_msg) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
		close(fd);
		return;
	}
	if (d->nclients == d->cap_clients) {
		size_t cap = d->cap_clients ? d->cap_clients * 2 : 8;

		if ((c = realloc(d->clients, cap * sizeof(*c))) == NULL) {
			log_msg(LOG_ERR, "control: out of memory for a client");
			close(fd);
			return;
		}
		d->clients = c;
		d->cap_clients = cap;
	}
	c = &d->clients[d->nclients++];
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->uid = cr.uid;
	c->gid = cr.gid;
	c->privileged = privileged;
	c->phase = CTL_READ;
	c->deadline = ctl_now_ms() + (long long)d->ctl_timeout * 1000;
}

static void drop_client(agentd *d, size_t i, const char *why)
{
	ctl_client *c = &d->clients[i];

	if (why != NULL)
		log_msg(LOG_WARNING, "control: dropped a client (uid %ld): %s", (long)c->uid, why);
	ctl_client_close(c);
	d->clients[i] = d->clients[--d->nclients];
}

/* After poll: each client that poll reported on, then the deadlines. */
void ctl_serve(agentd *d, const struct pollfd *pf, size_t np)
{
	long long t = ctl_now_ms();
	char why[96];
	size_t i, k;
	ctl_client *c;
	ctl_io io;

	for (k = 0; k < np; k++) {
		if (pf[k].revents == 0 || (c = client_of(d, pf[k].fd)) == NULL || c->phase == CTL_WAIT)
			continue;
		io = ctl_client_io(c);
		if (io == CTL_IO_REQUEST) {
			handle_request(d, c);
			continue;
		}
		if (io == CTL_IO_TOO_LONG) {
			snprintf(why, sizeof(why), "request line too long (more than %d bytes)",
				 CTL_LINE_MAX - 1);
			log_msg(LOG_WARNING, "control: uid %ld sent a %s", (long)c->uid, why);
			ctl_serve_reply(d, c->fd, EXIT_USAGE, why);
			continue;
		}
		if (io == CTL_IO_DONE) {
			c->phase = CTL_LINGER;
			c->deadline = 0;
		}
	}
	for (i = 0; i < d->nclients;) {
		c = &d->clients[i];
		if (c->phase == CTL_WAIT || c->deadline > t) {
			i++;
			continue;
		}
		if (c->phase == CTL_READ)
			snprintf(why, sizeof(why), "no request line within %d s (%zu bytes of one)",
				 d->ctl_timeout, c->len);
		else if (c->phase == CTL_WRITE)
			snprintf(why, sizeof(why), "did not take its answer within %d s",
				 d->ctl_timeout);
		drop_client(d, i, c->phase == CTL_READ || c->phase == CTL_WRITE ? why : NULL);
	}
}


size_t ctl_serve_pollfds(const agentd *d, struct pollfd *pf, long long *first)
{
	size_t i, np = 0;

	*first = -1;
	for (i = 0; i < d->nclients; i++) {
		if (d->clients[i].phase == CTL_WAIT)
			continue;
		pf[np].fd = d->clients[i].fd;
		pf[np++].events = ctl_client_events(&d->clients[i]);
		if (*first < 0 || d->clients[i].deadline < *first)
			*first = d->clients[i].deadline;
	}
	return np;
}

void ctl_serve_close_all(agentd *d)
{
	size_t i;

	for (i = 0; i < d->nclients; i++)
		ctl_client_close(&d->clients[i]);
	free(d->clients);
	d->clients = NULL;
	d->nclients = d->cap_clients = 0;
}
