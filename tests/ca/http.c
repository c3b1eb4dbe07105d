/*
 * A minimal HTTP/1.1 server on 127.0.0.1: one connection at a time,
 * keep-alive, POST with Content-Length only.  An idle keep-alive
 * connection is closed as soon as another client is waiting, or after
 * CA_IDLE_MS, so that one client can never block the next one.  A
 * connection whose request is not to be answered (--hang-on) is set
 * aside: held open, watched with poll() between the other connections,
 * and closed once the client closes it or after CA_HOLD_MS.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "tests/ca/testca.h"

#define CA_HDR_MAX (16 * 1024)
#define CA_BODY_MAX (1024 * 1024)
#define CA_IDLE_MS 10000
#define CA_IO_MS 10000
#define CA_HOLD_MS 120000
#define CA_HELD_MAX 16

struct conn {
	int fd, lfd;
	char *buf;
	size_t len, cap;
	long served; /* requests answered on it: only then is it idle keep-alive */
};

/* A connection held without an answer (--hang-on). */
struct held {
	int fd;
	struct timespec since;
};

int ca_http_listen(int port, int *ret_port)
{
	struct sockaddr_in sa;
	socklen_t slen = sizeof(sa);
	int fd, one = 1;

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* never any other interface */
	sa.sin_port = htons((unsigned short)port);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 16) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &slen) != 0 ||
	    fcntl(fd, F_SETFL, O_NONBLOCK) != 0) {
		fprintf(stderr, "p11enroll-testca: cannot listen on 127.0.0.1:%d: %s\n", port,
			strerror(errno));
		close(fd);
		return -1;
	}
	*ret_port = ntohs(sa.sin_port);
	return fd;
}

/* Sleeps up to seconds; returns early when asked to stop. */
static void pause_for(int seconds)
{
	struct timespec until, now;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += seconds;
	while (!ca_stopping()) {
		long ms;

		clock_gettime(CLOCK_MONOTONIC, &now);
		ms = (long)(until.tv_sec - now.tv_sec) * 1000 +
		     (until.tv_nsec - now.tv_nsec) / 1000000;
		if (ms <= 0)
			break;
		poll(NULL, 0, ms > 200 ? 200 : (int)ms);
	}
}

/*
 * Reads more bytes.  Returns >0 on data, 0 on EOF, timeout, stop or (when
 * idle) a waiting client; -1 on error.
 */
static int fill(struct conn *c, int idle)
{
	int waited = 0;

	if (c->len == c->cap) {
		size_t ncap = c->cap == 0 ? 8192 : c->cap * 2;
		char *nb;

		if (ncap > CA_HDR_MAX + CA_BODY_MAX + 8192)
			ncap = CA_HDR_MAX + CA_BODY_MAX + 8192;
		if (ncap <= c->cap || (nb = OPENSSL_realloc(c->buf, ncap)) == NULL)
			return -1;
		c->buf = nb;
		c->cap = ncap;
	}
	while (!ca_stopping()) {
		struct pollfd p[2] = {{c->fd, POLLIN, 0}, {c->lfd, POLLIN, 0}};
		int n = poll(p, idle ? 2 : 1, 200);
		ssize_t r;

		if (n < 0 && errno != EINTR)
			return -1;
		if (n <= 0) {
			waited += 200;
			if (waited >= (idle ? CA_IDLE_MS : CA_IO_MS))
				return 0;
			continue;
		}
		if (idle && (p[1].revents & POLLIN) && !(p[0].revents & POLLIN))
			return 0; /* someone else is waiting: give up the idle connection */
		if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r <= 0)
			return r == 0 ? 0 : -1;
		c->len += (size_t)r;
		return 1;
	}
	return 0;
}

static int send_all(int fd, const unsigned char *p, size_t n)
{
	while (n > 0) {
		struct pollfd pf = {fd, POLLOUT, 0};
		ssize_t w;

		if (poll(&pf, 1, CA_IO_MS) <= 0)
			return 0;
		w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (w <= 0)
			return 0;
		p += w;
		n -= (size_t)w;
	}
	return 1;
}

static const char *reason_phrase(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 302:
		return "Found";
	case 400:
		return "Bad Request";
	case 405:
		return "Method Not Allowed";
	case 411:
		return "Length Required";
	case 413:
		return "Payload Too Large";
	case 431:
		return "Request Header Fields Too Large";
	default:
		return "Internal Server Error";
	}
}

/* One write for header and body: no delayed-ACK stall on the client side. */
static int send_reply(int fd, const struct ca_reply *r, int close_after)
{
	char head[512];
	unsigned char *all;
	int n;
	int ok;

	n = snprintf(
	    head, sizeof(head),
	    "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s%s"
	    "Cache-Control: no-cache\r\nConnection: %s\r\n\r\n",
	    r->status, reason_phrase(r->status), r->ctype != NULL ? r->ctype : "text/plain", r->len,
	    r->location != NULL ? "Location: " : "", r->location != NULL ? r->location : "",
	    r->location != NULL ? "\r\n" : "", close_after ? "close" : "keep-alive");
	if (n < 0 || (size_t)n >= sizeof(head))
		return 0;
	if ((all = OPENSSL_malloc((size_t)n + r->len + 1)) == NULL)
		return 0;
	memcpy(all, head, (size_t)n);
	if (r->len > 0)
		memcpy(all + n, r->body, r->len);
	ok = send_all(fd, all, (size_t)n + r->len);
	OPENSSL_free(all);
	return ok;
}

/*
 * An error ends the connection, often before the request body was read
 * (413 for 1.1 MB): closing a socket with unread data makes the kernel
 * answer with RST, which can destroy the reply before the client reads it
 * (curl then saw no status at all, 1 run in some hundreds on a busy
 * machine).  So the write side is shut and what the client still sends is
 * read and dropped until it closes: a lingering close, as HTTP servers do.
 * The bounds are hang guards for a client that never stops.
 */
static void send_error(int fd, int status, const char *text)
{
	struct ca_reply r = {
	    status, "text/plain", NULL, (unsigned char *)text, strlen(text), 0, 1, 0, 0};
	struct pollfd p = {fd, POLLIN, 0};
	char sink[16384];
	size_t dropped = 0;
	ssize_t n;

	if (!send_reply(fd, &r, 1))
		return;
	shutdown(fd, SHUT_WR);
	while (dropped < ((size_t)64 << 20) && poll(&p, 1, 30000) > 0) {
		n = read(fd, sink, sizeof(sink));
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break;
		dropped += (size_t)n;
	}
}

/* The value of header name (case-insensitive) within head, copied into out. */
static int header(const char *head, const char *name, char *out, size_t outlen)
{
	size_t nl = strlen(name);
	const char *p = strstr(head, "\r\n");

	while (p != NULL && p[2] != '\r') {
		const char *line = p + 2, *end = strstr(line, "\r\n");

		if (end == NULL)
			break;
		if ((size_t)(end - line) > nl && strncasecmp(line, name, nl) == 0 &&
		    line[nl] == ':') {
			const char *v = line + nl + 1;
			size_t vl;

			while (*v == ' ' || *v == '\t')
				v++;
			vl = (size_t)(end - v);
			while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
				vl--;
			if (vl >= outlen)
				vl = outlen - 1;
			memcpy(out, v, vl);
			out[vl] = '\0';
			return 1;
		}
		p = end;
	}
	return 0;
}

/*
 * Serves requests on one connection; *handled counts CMP requests.
 * Returns 1 when the connection is to be held open without an answer.
 */
static int serve_conn(struct conn *c, long max_requests, long *handled, ca_handler_fn fn, void *arg)
{
	for (;;) {
		char *eoh, method[16], path[512], version[16], val[128];
		size_t hlen, clen;
		char *end;
		int close_after, r, fmt;
		struct ca_reply reply;
		struct timespec t0, t1;
		char *line_end;

		while ((eoh = c->len > 0 ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL) == NULL) {
			if (c->len > CA_HDR_MAX) {
				ca_log("HTTP 431: request header too large");
				send_error(c->fd, 431, "request header too large\n");
				return 0;
			}
			/* A new connection waits for its first request even when
			 * another client is waiting: its client, slowed by a
			 * busy machine, has not sent it yet. */
			if ((r = fill(c, c->len == 0 && c->served > 0)) <= 0)
				return 0;
		}
		hlen = (size_t)(eoh - c->buf) + 4;
		eoh[2] = '\0'; /* the header block as a string; the CRLF before stays */
		line_end = strstr(c->buf, "\r\n");
		*line_end = '\0';
		fmt = sscanf(c->buf, "%15s %511s %15s", method, path, version);
		*line_end = '\r';
		if (fmt != 3 || strncmp(version, "HTTP/1.", 7) != 0) {
			ca_log("HTTP 400: malformed request line");
			send_error(c->fd, 400, "malformed request line\n");
			return 0;
		}
		close_after = strcmp(version, "HTTP/1.0") == 0;
		if (header(c->buf, "Connection", val, sizeof(val)))
			close_after = strcasecmp(val, "close") == 0 ||
				      (close_after && strcasecmp(val, "keep-alive") != 0);
		if (strcmp(method, "POST") != 0) {
			ca_log("%s %s: HTTP 405", method, path);
			send_error(c->fd, 405, "only POST\n");
			return 0;
		}
		if (header(c->buf, "Transfer-Encoding", val, sizeof(val))) {
			ca_log("POST %s: HTTP 411 (Transfer-Encoding %s refused)", path, val);
			send_error(c->fd, 411, "chunked bodies are not accepted\n");
			return 0;
		}
		if (!header(c->buf, "Content-Length", val, sizeof(val))) {
			ca_log("POST %s: HTTP 411 (no Content-Length)", path);
			send_error(c->fd, 411, "Content-Length required\n");
			return 0;
		}
		errno = 0;
		clen = strtoul(val, &end, 10);
		if (errno != 0 || end == val || *end != '\0' || val[0] == '-') {
			ca_log("POST %s: HTTP 400 (bad Content-Length)", path);
			send_error(c->fd, 400, "bad Content-Length\n");
			return 0;
		}
		if (clen > CA_BODY_MAX) {
			ca_log("POST %s: HTTP 413 (%zu bytes)", path, clen);
			send_error(c->fd, 413, "request body larger than 1 MiB\n");
			return 0;
		}
		while (c->len < hlen + clen)
			if ((r = fill(c, 0)) <= 0)
				return 0;

		memset(&reply, 0, sizeof(reply));
		clock_gettime(CLOCK_MONOTONIC, &t0);
		r = fn(arg, path, (unsigned char *)c->buf + hlen, clen, &reply);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		/* bench/limit.sh sums these: the CA's own share of an enrollment */
		ca_event("request handled in %ld us",
			 (long)((t1.tv_sec - t0.tv_sec) * 1000000L + (t1.tv_nsec - t0.tv_nsec) / 1000));
		(*handled)++;
		if (reply.hang) {
			OPENSSL_free(reply.body);
			return 1;
		}
		if (r != 0) {
			OPENSSL_free(reply.body);
			memset(&reply, 0, sizeof(reply));
			reply.status = 500;
			reply.ctype = "text/plain";
			reply.body = (unsigned char *)OPENSSL_strdup("internal error\n");
			reply.len = reply.body != NULL ? strlen((char *)reply.body) : 0;
		}
		if (reply.delay > 0)
			pause_for(reply.delay);
		if (max_requests > 0 && *handled >= max_requests)
			close_after = 1;
		if (reply.drop || ca_stopping()) {
			OPENSSL_free(reply.body);
			return 0;
		}
		close_after = close_after || reply.close;
		r = send_reply(c->fd, &reply, close_after);
		OPENSSL_free(reply.body);
		if (!r || close_after)
			return 0;
		c->served++;
		memmove(c->buf, c->buf + hlen + clen, c->len - hlen - clen);
		c->len -= hlen + clen;
	}
}

static long ms_since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long)(now.tv_sec - t->tv_sec) * 1000 + (now.tv_nsec - t->tv_nsec) / 1000000;
}

static void release(struct held *h, const char *why)
{
	long ms = ms_since(&h->since);

	ca_event("hang: held connection closed after %ld.%ld s: %s", ms / 1000, ms % 1000 / 100,
		 why);
	shutdown(h->fd, SHUT_RDWR);
	close(h->fd);
	h->fd = -1;
}

/*
 * The held connections after a poll() that watched them (revents in p):
 * the ones the client closed, or held for CA_HOLD_MS, are closed; bytes
 * the client sends meanwhile are read and dropped.  Returns the new count.
 */
static size_t check_held(struct held *held, size_t n, const struct pollfd *p)
{
	size_t i, kept = 0;

	for (i = 0; i < n; i++) {
		if (p != NULL && (p[i].revents & (POLLIN | POLLHUP | POLLERR))) {
			char junk[4096];
			ssize_t r;

			while ((r = recv(held[i].fd, junk, sizeof(junk), 0)) > 0)
				;
			if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
				release(&held[i], "the client closed it");
		}
		if (held[i].fd >= 0 && ms_since(&held[i].since) >= CA_HOLD_MS)
			release(&held[i], "the client did not close it in time");
		if (held[i].fd >= 0)
			held[kept++] = held[i];
	}
	return kept;
}

int ca_http_serve(int lfd, long max_requests, ca_handler_fn fn, void *arg)
{
	struct held held[CA_HELD_MAX];
	size_t nheld = 0, i;
	long handled = 0, opened = 0;
	struct conn c;
	int rc = 0;

	memset(&c, 0, sizeof(c));
	c.lfd = lfd;
	while (!ca_stopping() && (max_requests <= 0 || handled < max_requests)) {
		struct pollfd p[1 + CA_HELD_MAX];
		int n, one = 1;

		p[0].fd = lfd;
		p[0].events = POLLIN;
		p[0].revents = 0;
		for (i = 0; i < nheld; i++) {
			p[1 + i].fd = held[i].fd;
			p[1 + i].events = POLLIN;
			p[1 + i].revents = 0;
		}
		n = poll(p, 1 + nheld, 500);
		if (n < 0 && errno != EINTR) {
			perror("p11enroll-testca: poll");
			rc = -1;
			break;
		}
		nheld = check_held(held, nheld, n > 0 ? p + 1 : NULL);
		if (n <= 0 || !(p[0].revents & POLLIN))
			continue;
		if ((c.fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) < 0)
			continue;
		setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		/* tests count these: a client that keeps its connection opens one */
		ca_event("connection %ld opened", ++opened);
		c.len = 0;
		c.served = 0;
		if (serve_conn(&c, max_requests, &handled, fn, arg)) {
			if (nheld == CA_HELD_MAX) {
				release(&held[0], "too many held connections");
				memmove(held, held + 1, (nheld - 1) * sizeof(held[0]));
				nheld--;
			}
			held[nheld].fd = c.fd;
			clock_gettime(CLOCK_MONOTONIC, &held[nheld].since);
			nheld++;
			continue;
		}
		shutdown(c.fd, SHUT_RDWR);
		close(c.fd);
	}
	for (i = 0; i < nheld; i++)
		release(&held[i], "the CA stops");
	OPENSSL_free(c.buf);
	return rc;
}
