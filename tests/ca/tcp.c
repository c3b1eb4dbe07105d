/*
 * CMP over TCP for the test CA (--tcp): the version 10 framing of the
 * CMP-over-TCP drafts (see cmp/cmpc_tcp.c), one connection at a time,
 * frames read until the client closes.  A pkiReq goes to the same handler
 * as an HTTP POST; its answer goes back as a finalMsgRep, or broken on
 * purpose (--tcp-fault): a truncated or garbage frame, a wrong version, an
 * oversized length, an errorMsgRep, RFC 2510's form, or TCP-level polling
 * (pollRep, then the answer to the pollReq that names its reference).
 * A request --hang-on holds is never answered: its connection stays open
 * until the client closes it (or for two minutes).
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "tests/ca/testca.h"

#define TCP_IO_MS 10000
#define TCP_MAX (1024 * 1024)
#define TCP_HOLD_MS 120000

static void put32(unsigned char *p, unsigned long v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static int send_all(int fd, const unsigned char *b, size_t n)
{
	struct pollfd p;
	ssize_t w;

	while (n > 0) {
		w = send(fd, b, n, MSG_NOSIGNAL);
		if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
			p.fd = fd;
			p.events = POLLOUT;
			if (poll(&p, 1, TCP_IO_MS) <= 0)
				return 0;
			continue;
		}
		if (w <= 0)
			return 0;
		b += w;
		n -= (size_t)w;
	}
	return 1;
}

/* A frame: version (10, or -1 for RFC 2510's form), flags, type, value. */
static int send_frame(int fd, int version, int flags, int type, const unsigned char *v,
		      size_t n)
{
	unsigned char h[7];
	size_t hl;

	if (version < 0) {
		put32(h, (unsigned long)(n + 1));
		h[4] = (unsigned char)type;
		hl = 5;
	} else {
		put32(h, (unsigned long)(n + 3));
		h[4] = (unsigned char)version;
		h[5] = (unsigned char)flags;
		h[6] = (unsigned char)type;
		hl = 7;
	}
	return send_all(fd, h, hl) && (n == 0 || send_all(fd, v, n));
}

static int recv_n(int fd, unsigned char *b, size_t n, int ms)
{
	struct pollfd p;
	ssize_t r;

	while (n > 0) {
		p.fd = fd;
		p.events = POLLIN;
		p.revents = 0;
		if (poll(&p, 1, ms) <= 0 || ca_stopping())
			return 0;
		r = recv(fd, b, n, 0);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (r <= 0)
			return 0;
		b += r;
		n -= (size_t)r;
	}
	return 1;
}

static void pause_s(int s)
{
	struct timespec ts = { 1, 0 };

	while (s-- > 0 && !ca_stopping())
		nanosleep(&ts, NULL);
}

/* The answer to a pkiReq (or to the pollReq that fetches it). */
static int answer(int fd, const struct ca_tcp_opts *t, const struct ca_reply *r)
{
	static const char garbage[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
	static const char err[] = "the test CA refuses this request (--tcp-fault error-msg)";
	unsigned char h[12];

	if (r->status != 200) {
		/* what HTTP says with a status: an errorMsgRep with the text */
		unsigned char v[4 + 200];
		size_t n = r->len < 200 ? r->len : 200;

		put32(v, 0x03000000UL); /* code 0x0300, no block */
		if (n > 0)
			memcpy(v + 4, r->body, n);
		return send_frame(fd, 10, 1, 6, v, 4 + n);
	}
	switch (t->fault) {
	case CA_TCP_FAULT_TRUNCATED:
		put32(h, (unsigned long)(r->len + 3));
		h[4] = 10, h[5] = 0, h[6] = 5;
		ca_event("tcp fault: truncated frame");
		return send_all(fd, h, 7) && send_all(fd, r->body, r->len / 2) && 0;
	case CA_TCP_FAULT_GARBAGE:
		ca_event("tcp fault: garbage frame");
		return send_all(fd, (const unsigned char *)garbage, sizeof(garbage) - 1) && 0;
	case CA_TCP_FAULT_VERSION:
		ca_event("tcp fault: wrong version");
		return send_frame(fd, 9, 0, 5, r->body, r->len) && 0;
	case CA_TCP_FAULT_OVERSIZE:
		put32(h, 0x7ffffff0UL);
		h[4] = 10, h[5] = 0, h[6] = 5;
		ca_event("tcp fault: oversized length");
		return send_all(fd, h, 7) && send_all(fd, r->body, r->len) && 0;
	case CA_TCP_FAULT_ERROR_MSG: {
		unsigned char v[4 + sizeof(err)];

		put32(v, 0x03000000UL);
		memcpy(v + 4, err, sizeof(err) - 1);
		ca_event("tcp fault: errorMsgRep");
		return send_frame(fd, 10, 1, 6, v, 4 + sizeof(err) - 1) && 0;
	}
	case CA_TCP_FAULT_RFC2510:
		return send_frame(fd, -1, 0, 5, r->body, r->len);
	default:
		return send_frame(fd, 10, 0, 5, r->body, r->len);
	}
}

/* The answer a pollRep stands for, until a pollReq with its reference
 * fetches it (on this connection or, after closeConnection, the next). */
static struct ca_reply held;
static unsigned long ref;

/* One connection; returns when the client closes it or on an error. */
static void serve_conn(int fd, const struct ca_tcp_opts *t, long max_requests, long *handled,
		       ca_handler_fn fn, void *arg)
{
	unsigned char hdr[7], *v = NULL, pr[8];
	struct ca_reply reply;
	unsigned long len;
	int version, type;
	size_t hl, vl;

	while (!ca_stopping() && (max_requests <= 0 || *handled < max_requests)) {
		/* a client told to check back waits that long first */
		if (!recv_n(fd, hdr, 5, TCP_IO_MS + (held.body != NULL ? t->poll_s * 1000 : 0)))
			break;
		len = (unsigned long)hdr[0] << 24 | (unsigned long)hdr[1] << 16 |
		      (unsigned long)hdr[2] << 8 | hdr[3];
		version = hdr[4] == 10 ? 10 : -1;
		hl = version == 10 ? 7 : 5;
		if (version == 10 && !recv_n(fd, hdr + 5, 2, TCP_IO_MS))
			break;
		type = version == 10 ? hdr[6] : hdr[4];
		if (len < hl - 4 || len > TCP_MAX || (version < 0 && hdr[4] > 6)) {
			ca_log("tcp: bad frame (version %u, length %lu)", hdr[4], len);
			break;
		}
		vl = len - (hl - 4);
		OPENSSL_free(v);
		if ((v = OPENSSL_malloc(vl + 1)) == NULL || !recv_n(fd, v, vl, TCP_IO_MS))
			break;
		if (type == 2) { /* pollReq */
			if (vl != 4 || held.body == NULL ||
			    ((unsigned long)v[0] << 24 | (unsigned long)v[1] << 16 |
			     (unsigned long)v[2] << 8 | v[3]) != ref) {
				ca_log("tcp: pollReq for an unknown reference");
				send_frame(fd, 10, 1, 3, NULL, 0); /* finRep */
				break;
			}
			ca_log("tcp: pollReq %lu: delivering the held answer", ref);
			if (!answer(fd, t, &held))
				break;
			OPENSSL_free(held.body);
			memset(&held, 0, sizeof(held));
			continue;
		}
		if (type != 0) {
			ca_log("tcp: unexpected frame type %d", type);
			break;
		}
		memset(&reply, 0, sizeof(reply));
		if (fn(arg, "/", v, vl, &reply) != 0) {
			OPENSSL_free(reply.body);
			memset(&reply, 0, sizeof(reply));
			reply.status = 500;
			reply.body = (unsigned char *)OPENSSL_strdup("internal error");
			reply.len = reply.body != NULL ? strlen((char *)reply.body) : 0;
		}
		(*handled)++;
		if (reply.hang) {
			/* --hang-on: no answer; held until the client gives up */
			OPENSSL_free(reply.body);
			while (recv_n(fd, hdr, 1, TCP_HOLD_MS))
				;
			ca_event("hang: held connection closed");
			break;
		}
		if (reply.drop || ca_stopping()) {
			OPENSSL_free(reply.body);
			break;
		}
		if (reply.delay > 0)
			pause_s(reply.delay);
		if (t->poll_s > 0 && reply.status == 200) {
			OPENSSL_free(held.body);
			held = reply;
			ref++;
			put32(pr, ref);
			put32(pr + 4, (unsigned long)t->poll_s);
			ca_log("tcp: pollRep %lu, check back in %d s", ref, t->poll_s);
			if (!send_frame(fd, t->fault == CA_TCP_FAULT_RFC2510 ? -1 : 10,
					t->poll_close, 1, pr, 8))
				break;
			if (t->poll_close)
				break; /* the client comes back on a new connection */
			continue;
		}
		if (!answer(fd, t, &reply)) {
			OPENSSL_free(reply.body);
			break;
		}
		OPENSSL_free(reply.body);
	}
	OPENSSL_free(v);
}

int ca_tcp_serve(int lfd, long max_requests, const struct ca_tcp_opts *t, ca_handler_fn fn,
		 void *arg)
{
	long handled = 0, opened = 0;
	struct pollfd p;
	int fd, n;

	while (!ca_stopping() && (max_requests <= 0 || handled < max_requests)) {
		p.fd = lfd;
		p.events = POLLIN;
		p.revents = 0;
		n = poll(&p, 1, 500);
		if (n < 0 && errno != EINTR) {
			perror("p11enroll-testca: poll");
			return -1;
		}
		if (n <= 0)
			continue;
		if ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) < 0)
			continue;
		ca_event("connection %ld opened", ++opened);
		serve_conn(fd, t, max_requests, &handled, fn, arg);
		shutdown(fd, SHUT_RDWR);
		close(fd);
	}
	OPENSSL_free(held.body);
	memset(&held, 0, sizeof(held));
	return 0;
}
