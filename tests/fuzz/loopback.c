/*
 * The loopback HTTP server of the fuzz targets (loopback.h).  Requests are
 * read up to the end of their Content-Length; nothing else of HTTP is
 * needed, the client being libcurl with the layer's settings.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/fuzz/loopback.h"

#define REQ_MAX (1024 * 1024)

static struct {
	pthread_mutex_t lock;
	unsigned char *buf;
	size_t off, len;
} feed = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0};

void lb_feed(const unsigned char *data, size_t size)
{
	pthread_mutex_lock(&feed.lock);
	free(feed.buf);
	feed.buf = NULL;
	feed.off = feed.len = 0;
	if (size > 0 && (feed.buf = malloc(size)) != NULL) {
		memcpy(feed.buf, data, size);
		feed.len = size;
	}
	pthread_mutex_unlock(&feed.lock);
}

unsigned char *lb_take(int framed, size_t *len)
{
	unsigned char *out = NULL;
	size_t n;

	pthread_mutex_lock(&feed.lock);
	if (framed && feed.len - feed.off >= 2) {
		n = ((size_t)feed.buf[feed.off] << 8) | feed.buf[feed.off + 1];
		feed.off += 2;
	} else if (!framed && feed.len > feed.off) {
		n = feed.len - feed.off;
	} else {
		goto out;
	}
	if (n > feed.len - feed.off)
		n = feed.len - feed.off;
	if ((out = malloc(n + 1)) != NULL) {
		memcpy(out, feed.buf + feed.off, n);
		*len = n;
	}
	feed.off += n;
out:
	pthread_mutex_unlock(&feed.lock);
	return out;
}

static int lfd = -1, port;
static lb_handler handler;
static void *handler_arg;

static int write_all(int fd, const unsigned char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		if ((w = send(fd, p, n, MSG_NOSIGNAL)) < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* The value of Content-Length in the header block hdr (NUL-terminated). */
static size_t content_length(const char *hdr)
{
	const char *p = hdr;

	while ((p = strstr(p, "\r\n")) != NULL) {
		p += 2;
		if (strncasecmp(p, "Content-Length:", 15) == 0)
			return (size_t)strtoul(p + 15, NULL, 10);
	}
	return 0;
}

/* One connection at a time: one buffer, not an allocation per request
 * (that is what an exchange would otherwise spend most of its time on
 * under ASan). */
static unsigned char buf[REQ_MAX + 1];

static void serve(int fd)
{
	unsigned char *rsp;
	size_t have = 0, need = 0, hdrlen = 0, rsplen = 0;
	ssize_t n;
	char *end;

	for (;;) {
		if ((n = recv(fd, buf + have, REQ_MAX - have, 0)) < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		have += (size_t)n;
		buf[have] = '\0';
		if (hdrlen == 0 && (end = strstr((char *)buf, "\r\n\r\n")) != NULL) {
			hdrlen = (size_t)(end - (char *)buf) + 4;
			need = content_length((char *)buf);
			if (need > REQ_MAX - hdrlen)
				return;
		}
		if (hdrlen != 0 && have >= hdrlen + need)
			break;
		if (have == REQ_MAX)
			return;
	}
	if ((rsp = handler(buf + hdrlen, need, &rsplen, handler_arg)) != NULL) {
		(void)write_all(fd, rsp, rsplen);
		free(rsp);
	}
}

static void *run(void *arg)
{
	int fd;

	(void)arg;
	for (;;) {
		if ((fd = accept(lfd, NULL, NULL)) < 0)
			continue;
		serve(fd);
		/* Everything sent reaches the client before the close. */
		shutdown(fd, SHUT_WR);
		close(fd);
	}
	return NULL;
}

int lb_start(lb_handler fn, void *arg)
{
	struct sockaddr_in sa;
	socklen_t salen = sizeof(sa);
	pthread_t th;

	if (lfd >= 0)
		return port;
	handler = fn;
	handler_arg = arg;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 8) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &salen) < 0 ||
	    pthread_create(&th, NULL, run, NULL) != 0) {
		perror("loopback server");
		abort();
	}
	pthread_detach(th);
	port = ntohs(sa.sin_port);
	return port;
}

unsigned char *lb_pkixcmp(const unsigned char *body, size_t len, size_t *ret_len)
{
	char hdr[160];
	int n = snprintf(hdr, sizeof(hdr),
			 "HTTP/1.1 200 OK\r\nContent-Type: application/pkixcmp\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
			 len);
	unsigned char *out = malloc((size_t)n + len + 1);

	if (out == NULL)
		return NULL;
	memcpy(out, hdr, (size_t)n);
	if (len > 0)
		memcpy(out + n, body, len);
	*ret_len = (size_t)n + len;
	return out;
}
