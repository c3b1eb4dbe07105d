/*
 * CMP over TCP (server = tcp://host[:port], port 829 by default): the
 * "TCP-based management protocol" of RFC 2510 section 5.2 as the later
 * drafts (draft-ietf-pkix-cmp-tcp-00, draft-ietf-pkix-cmp-transport-
 * protocols-05 and on) fixed it.  A transfer function of the transport
 * seam (cmpc_transfer.c): the exchanges do not know it is there.
 *
 * Framing.  We send the drafts' "version 10" frame:
 *     length (4 octets, big endian: the octets after it)
 *     version (1 octet, 10)  flags (1 octet, bit 0 closeConnection)
 *     message type (1 octet)  value
 * because that is what the implementations that still speak this protocol
 * expect: EJBCA's CMP TCP listener reads exactly this header ("version
 * should be 10 (protocol draft nr 5)") and cryptlib writes and requires
 * it; RFC 2510's own form (length, message type, value) could not signal
 * the end of a connection, which is why the version octet was added with a
 * value (10) that no RFC 2510 message type has.  On receipt both are
 * accepted, as Wireshark's dissector tells them apart: 10 after the length
 * is the drafts' header, 0..6 is an RFC 2510 message type, anything else
 * is refused (wrong version).  The message types are the same in both:
 *     0 pkiReq (RFC 2510: pkiMsg)   1 pollRep (pollRef, timeToCheckBack)
 *     2 pollReq (pollRef)           3 finRep (RFC 2510: negPollRep)
 *     4 partialMsgRep               5 finalMsgRep (the PKIMessage)
 *     6 errorMsgRep
 * The answer is a finalMsgRep, or a type-0 frame (cryptlib's server
 * writes type 0 in both directions).  A pollRep is the TCP-level polling:
 * we wait its timeToCheckBack (within the message timeout, stoppable) and
 * send a pollReq with its reference, on a new connection if the server
 * asked to close.  errorMsgRep is shown, made printable: the drafts' value
 * is an error code, a length-prefixed block and text (cryptlib); RFC
 * 2510's is text only.  partialMsgRep (a response in parts) and finRep
 * end the exchange with an error: one request gets one PKIMessage here.
 *
 * Moving the bytes is libcurl's (CURLOPT_CONNECT_ONLY, curl_easy_send,
 * curl_easy_recv); we only poll() its socket to wait within the timeouts
 * and to see a stop asked for (cmpc_set_wait_cb).  One connection per
 * message, closed after its answer: a server that serves one connection
 * at a time is never kept waiting by an idle one.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include <openssl/crypto.h>

#include "cmp/cmpc-int.h"

#define TCP_DEFAULT_PORT "829"
#define TCP_HDR 7 /* length, version, flags, type */
#define TCP_SLICE_MS 1000

int cmpc_is_tcp_url(const char *url)
{
	return url != NULL && OPENSSL_strncasecmp(url, "tcp://", 6) == 0;
}

static unsigned long be32(const unsigned char *p)
{
	return (unsigned long)p[0] << 24 | (unsigned long)p[1] << 16 | (unsigned long)p[2] << 8 |
	       (unsigned long)p[3];
}

static void put32(unsigned char *p, unsigned long v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

const char *cmpc_tcp_type_name(int type)
{
	static const char *const names[] = { "pkiReq",	      "pollRep",     "pollReq",
					     "finRep",	      "partialMsgRep", "finalMsgRep",
					     "errorMsgRep" };

	return type >= 0 && type <= CMPC_TCP_ERRORMSGREP ? names[type] : "unknown";
}

int cmpc_tcp_frame_parse(const unsigned char *b, size_t n, size_t max, cmpc_tcp_frame *f,
			 char *why, size_t whylen)
{
	unsigned long len;
	size_t hdr, min;

	memset(f, 0, sizeof(*f));
	if (n < 5)
		return 0;
	len = be32(b);
	if (b[4] == CMPC_TCP_VERSION) {
		f->version = CMPC_TCP_VERSION;
		hdr = TCP_HDR;
		min = 3;
	} else if (b[4] <= CMPC_TCP_ERRORMSGREP) {
		f->version = 0; /* RFC 2510's form */
		hdr = 5;
		min = 1;
	} else {
		snprintf(why, whylen,
			 "the frame has version %u: neither 10 (the CMP-over-TCP drafts) nor an "
			 "RFC 2510 message type",
			 b[4]);
		return -1;
	}
	if (len < min) {
		snprintf(why, whylen, "the frame's length (%lu) is shorter than its header", len);
		return -1;
	}
	if (len > max) {
		snprintf(why, whylen, "the frame announces %lu bytes, more than the limit of %zu",
			 len, max);
		return -2;
	}
	f->size = 4 + (size_t)len;
	if (n < hdr || n < f->size)
		return 0;
	if (f->version == CMPC_TCP_VERSION) {
		f->flags = b[5];
		f->type = b[6];
	} else {
		f->type = b[4];
	}
	f->value = b + hdr;
	f->value_len = f->size - hdr;
	if (f->type > CMPC_TCP_ERRORMSGREP) {
		snprintf(why, whylen, "the frame has the unknown message type %d", f->type);
		return -1;
	}
	if ((f->type == CMPC_TCP_POLLREP && f->value_len != 8) ||
	    (f->type == CMPC_TCP_POLLREQ && f->value_len != 4) ||
	    (f->type == CMPC_TCP_PARTIALMSGREP && f->value_len < 8)) {
		snprintf(why, whylen, "the %s frame has a value of %zu bytes",
			 cmpc_tcp_type_name(f->type), f->value_len);
		return -1;
	}
	if (f->type == CMPC_TCP_POLLREP || f->type == CMPC_TCP_POLLREQ ||
	    f->type == CMPC_TCP_PARTIALMSGREP) {
		f->poll_ref = be32(f->value);
		if (f->type != CMPC_TCP_POLLREQ)
			f->check_after = be32(f->value + 4);
	}
	return 1;
}

size_t cmpc_tcp_error_text(const cmpc_tcp_frame *f, char *out, size_t outlen)
{
	const unsigned char *p = f->value;
	size_t n = f->value_len, skip, i, o = 0;

	/* The drafts' layout when it fits: code, length of a block, block, text. */
	if (f->version == CMPC_TCP_VERSION && n >= 4 &&
	    (skip = (size_t)p[2] << 8 | p[3]) <= n - 4) {
		p += 4 + skip;
		n -= 4 + skip;
	}
	/* The server's text reaches a terminal and the logs: printable only. */
	for (i = 0; i < n && o + 1 < outlen && o < 200; i++)
		out[o++] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '?';
	if (outlen > 0)
		out[o] = '\0';
	return o;
}

/* Where libcurl connects: tcp://host[:port][/] as http://host:port/, which
 * libcurl with CONNECT_ONLY only connects to.  0 with errmsg set. */
static int tcp_target(cmpc_ctx *ctx, char *buf, size_t len)
{
	CURLU *u = curl_url();
	char *host = NULL, *port = NULL, *path = NULL, *query = NULL;
	int ok = 0;

	if (u == NULL || curl_url_set(u, CURLUPART_URL, ctx->url, CURLU_NON_SUPPORT_SCHEME) != 0 ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != 0) {
		cmpc_seterr(ctx, "cannot parse the server URL %s", ctx->url);
		goto out;
	}
	(void)curl_url_get(u, CURLUPART_PORT, &port, 0);
	(void)curl_url_get(u, CURLUPART_PATH, &path, 0);
	(void)curl_url_get(u, CURLUPART_QUERY, &query, 0);
	if ((path != NULL && strcmp(path, "/") != 0 && *path != '\0') || query != NULL) {
		cmpc_seterr(ctx,
			    "the server URL %s has a path or query, which CMP over TCP has no "
			    "place for: write it as tcp://host[:port]",
			    ctx->url);
		goto out;
	}
	if (snprintf(buf, len, "http://%s:%s/", host, port != NULL ? port : TCP_DEFAULT_PORT) >=
	    (int)len) {
		cmpc_seterr(ctx, "the server URL %s is too long", ctx->url);
		goto out;
	}
	ok = 1;
out:
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_free(query);
	curl_url_cleanup(u);
	return ok;
}

cmpc_rv cmpc_tcp_prepare(cmpc_ctx *ctx)
{
	char target[1024];

	if (!tcp_target(ctx, target, sizeof(target)))
		return CMPC_ERR_CONFIG;
	if (ctx->proxy != NULL)
		cmpc_log(ctx, LOG_WARNING,
			 "the proxy setting is not used for %s: CMP over TCP connects directly",
			 ctx->url);
	return CMPC_OK;
}

/* One exchange's connection and its deadline. */
struct conn {
	cmpc_ctx *ctx;
	CURL *h;
	long long deadline;
	const char *what;
};

static cmpc_rv stopped(struct conn *c)
{
	return cmpc_xfer_fail(c->ctx, CMPC_ERR_STOPPED, "%s: stopped while waiting for the answer",
			      c->what);
}

static cmpc_rv tcp_connect(struct conn *c)
{
	cmpc_ctx *ctx = c->ctx;
	long long left = c->deadline - cmpc_now_ms();
	long cto = ctx->connect_s * 1000;
	char target[1024];
	CURLcode cc;

	if (c->h != NULL)
		curl_easy_cleanup(c->h);
	if (!tcp_target(ctx, target, sizeof(target)))
		return cmpc_xfer_fail(ctx, CMPC_ERR_CONFIG, "%s: %s", c->what, ctx->errmsg);
	if (left <= 0)
		return cmpc_transfer_timeout(ctx, "no time left to connect");
	if (cto <= 0 || cto > left)
		cto = (long)left;
	ctx->curl_err[0] = '\0';
	if ((c->h = curl_easy_init()) == NULL ||
	    curl_easy_setopt(c->h, CURLOPT_URL, target) != CURLE_OK ||
	    curl_easy_setopt(c->h, CURLOPT_CONNECT_ONLY, 1L) != CURLE_OK ||
	    curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(c->h, CURLOPT_ERRORBUFFER, ctx->curl_err) != CURLE_OK ||
	    /* no proxy from the environment: this is not HTTP */
	    curl_easy_setopt(c->h, CURLOPT_PROXY, "") != CURLE_OK ||
	    curl_easy_setopt(c->h, CURLOPT_CONNECTTIMEOUT_MS, cto) != CURLE_OK ||
	    curl_easy_setopt(c->h, CURLOPT_XFERINFOFUNCTION, cmpc_curl_progress) != CURLE_OK ||
	    curl_easy_setopt(c->h, CURLOPT_XFERINFODATA, ctx) != CURLE_OK ||
	    curl_easy_setopt(c->h, CURLOPT_NOPROGRESS, 0L) != CURLE_OK)
		return cmpc_xfer_fail(ctx, CMPC_ERR_INTERNAL, "%s: cannot set up libcurl",
				      c->what);
	cc = curl_easy_perform(c->h);
	if (cc == CURLE_ABORTED_BY_CALLBACK && ctx->x.stopped)
		return stopped(c);
	if (cc == CURLE_OPERATION_TIMEDOUT)
		return cmpc_transfer_timeout(ctx, ctx->curl_err[0] ? ctx->curl_err
								    : "connecting timed out");
	if (cc != CURLE_OK)
		return cmpc_xfer_fail(ctx, CMPC_ERR_TRANSPORT,
				      "%s: cannot connect: %s; check the server URL and that the "
				      "CA is running and listens for CMP over TCP",
				      c->what,
				      ctx->curl_err[0] ? ctx->curl_err : curl_easy_strerror(cc));
	return CMPC_OK;
}

/* Waits until the socket is ready for events, in slices so that a stop
 * is seen.  CMPC_OK when ready. */
static cmpc_rv wait_sock(struct conn *c, short events)
{
	curl_socket_t s = CURL_SOCKET_BAD;
	struct pollfd p;
	long long left;
	int r;

	if (curl_easy_getinfo(c->h, CURLINFO_ACTIVESOCKET, &s) != CURLE_OK ||
	    s == CURL_SOCKET_BAD)
		return cmpc_xfer_fail(c->ctx, CMPC_ERR_TRANSPORT,
				      "%s: the connection was lost", c->what);
	for (;;) {
		if (cmpc_wait_tick(c->ctx))
			return stopped(c);
		if ((left = c->deadline - cmpc_now_ms()) <= 0)
			return cmpc_transfer_timeout(c->ctx, NULL);
		p.fd = s;
		p.events = events;
		p.revents = 0;
		r = poll(&p, 1, (int)(left < TCP_SLICE_MS ? left : TCP_SLICE_MS));
		if (r > 0)
			return CMPC_OK;
		if (r < 0 && errno != EINTR)
			return cmpc_xfer_fail(c->ctx, CMPC_ERR_TRANSPORT, "%s: poll: %s", c->what,
					      strerror(errno));
	}
}

static cmpc_rv send_all(struct conn *c, const unsigned char *b, size_t n)
{
	size_t sent;
	CURLcode cc;
	cmpc_rv rv;

	while (n > 0) {
		sent = 0;
		cc = curl_easy_send(c->h, b, n, &sent);
		if (cc == CURLE_AGAIN) {
			if ((rv = wait_sock(c, POLLOUT)) != CMPC_OK)
				return rv;
			continue;
		}
		if (cc != CURLE_OK)
			return cmpc_xfer_fail(c->ctx, CMPC_ERR_TRANSPORT,
					      "%s: sending failed: %s; check the server and the "
					      "network",
					      c->what, curl_easy_strerror(cc));
		b += sent;
		n -= sent;
	}
	return CMPC_OK;
}

static cmpc_rv send_frame(struct conn *c, int type, const unsigned char *v, size_t n)
{
	unsigned char *b;
	cmpc_rv rv;

	if (n > 0x7fffff00UL || (b = OPENSSL_malloc(TCP_HDR + n)) == NULL)
		return cmpc_xfer_fail(c->ctx, CMPC_ERR_INTERNAL, "%s: out of memory", c->what);
	put32(b, (unsigned long)(n + 3));
	b[4] = CMPC_TCP_VERSION;
	b[5] = 0; /* we close after the answer ourselves */
	b[6] = (unsigned char)type;
	if (n > 0)
		memcpy(b + TCP_HDR, v, n);
	cmpc_log(c->ctx, LOG_DEBUG, "sending a %s frame of %zu bytes to %s",
		 cmpc_tcp_type_name(type), n, c->ctx->url);
	rv = send_all(c, b, TCP_HDR + n);
	OPENSSL_free(b);
	return rv;
}

/* Reads one whole frame into *buf (grown as needed) and parses it. */
static cmpc_rv read_frame(struct conn *c, unsigned char **buf, size_t *cap, cmpc_tcp_frame *f)
{
	cmpc_ctx *ctx = c->ctx;
	size_t have = 0, want = 5, got, max = ctx->max_response + TCP_HDR;
	unsigned char *p;
	char why[256];
	CURLcode cc;
	cmpc_rv rv;
	int r;

	for (;;) {
		if (want > *cap) {
			if ((p = OPENSSL_realloc(*buf, want)) == NULL)
				return cmpc_xfer_fail(ctx, CMPC_ERR_INTERNAL, "%s: out of memory",
						      c->what);
			*buf = p;
			*cap = want;
		}
		got = 0;
		cc = curl_easy_recv(c->h, *buf + have, want - have, &got);
		if (cc == CURLE_AGAIN) {
			if ((rv = wait_sock(c, POLLIN)) != CMPC_OK)
				return rv;
			continue;
		}
		if (cc != CURLE_OK)
			return cmpc_xfer_fail(ctx, CMPC_ERR_TRANSPORT,
					      "%s: receiving failed: %s; check the server and the "
					      "network",
					      c->what, curl_easy_strerror(cc));
		if (got == 0 && have == 0)
			return cmpc_xfer_fail(ctx, CMPC_ERR_TRANSPORT,
					      "%s: the server closed the connection without an "
					      "answer; check the CA's log",
					      c->what);
		if (got == 0)
			return cmpc_xfer_fail(
			    ctx, CMPC_ERR_TRANSPORT,
			    "%s: the server closed the connection in the middle of a frame "
			    "(truncated frame: %zu of %zu bytes); check the CA's log",
			    c->what, have, want);
		have += got;
		r = cmpc_tcp_frame_parse(*buf, have, max, f, why, sizeof(why));
		if (r == 1)
			return CMPC_OK;
		if (r == -2) {
			ctx->x.overflow = 1; /* the layer words it, as for every transport */
			cmpc_log(ctx, LOG_DEBUG, "%s", why);
			return CMPC_ERR_TRANSPORT;
		}
		if (r < 0)
			return cmpc_xfer_fail(ctx, CMPC_ERR_PROTOCOL,
					      "%s: the answer is not CMP over TCP: %s; check that "
					      "the server speaks CMP over TCP on that port",
					      c->what, why);
		want = f->size > 0 ? f->size : 5;
	}
}

/* Waits secs (a pollRep's timeToCheckBack) within the deadline, stoppable. */
static cmpc_rv check_back(struct conn *c, unsigned long secs)
{
	long long end, left;

	if ((long long)secs * 1000 > c->deadline - cmpc_now_ms())
		return cmpc_xfer_fail(
		    c->ctx, CMPC_ERR_TRANSPORT,
		    "%s: the server asks to check back in %lu s, after the timeout of %ld s "
		    "ends; raise the timeout, or try again later",
		    c->what, secs, c->ctx->x.limit_s);
	end = cmpc_now_ms() + (long long)secs * 1000;
	while ((left = end - cmpc_now_ms()) > 0) {
		if (cmpc_wait_tick(c->ctx))
			return stopped(c);
		(void)poll(NULL, 0, (int)(left < TCP_SLICE_MS ? left : TCP_SLICE_MS));
	}
	return cmpc_wait_tick(c->ctx) ? stopped(c) : CMPC_OK;
}

cmpc_rv cmpc_tcp_transfer(cmpc_ctx *ctx, const unsigned char *req, size_t req_len,
			  long timeout_ms, void *arg)
{
	struct conn c = { ctx, NULL, cmpc_now_ms() + timeout_ms, ctx->x.what };
	unsigned char *buf = NULL, ref[4];
	size_t cap = 0;
	cmpc_tcp_frame f;
	char text[256];
	cmpc_rv rv;
	int polls = 0;

	(void)arg;
	if ((rv = tcp_connect(&c)) != CMPC_OK || (rv = send_frame(&c, 0, req, req_len)) != CMPC_OK)
		goto out;
	for (;;) {
		if ((rv = read_frame(&c, &buf, &cap, &f)) != CMPC_OK)
			goto out;
		cmpc_log(ctx, LOG_DEBUG, "received a %s frame (%s) of %zu bytes",
			 cmpc_tcp_type_name(f.type),
			 f.version == CMPC_TCP_VERSION ? "version 10" : "RFC 2510 form",
			 f.value_len);
		switch (f.type) {
		case CMPC_TCP_PKIREQ:
		case CMPC_TCP_FINALMSGREP:
			if (!cmpc_transfer_write(ctx, f.value, f.value_len))
				rv = CMPC_ERR_TRANSPORT; /* the layer words it */
			goto out;
		case CMPC_TCP_POLLREP:
			cmpc_log(ctx, LOG_INFO,
				 "the server asks to check back in %lu s (TCP polling, "
				 "reference %lu)",
				 f.check_after, f.poll_ref);
			if (++polls > 1000) {
				rv = cmpc_xfer_fail(ctx, CMPC_ERR_PROTOCOL,
						    "%s: the server sent pollRep without end",
						    c.what);
				goto out;
			}
			put32(ref, f.poll_ref);
			if ((rv = check_back(&c, f.check_after)) != CMPC_OK)
				goto out;
			/* closeConnection: the pollReq goes on a new one */
			if ((f.version == CMPC_TCP_VERSION && (f.flags & 1)) ||
			    f.version != CMPC_TCP_VERSION)
				if ((rv = tcp_connect(&c)) != CMPC_OK)
					goto out;
			if ((rv = send_frame(&c, CMPC_TCP_POLLREQ, ref, 4)) != CMPC_OK)
				goto out;
			continue;
		case CMPC_TCP_ERRORMSGREP:
			cmpc_tcp_error_text(&f, text, sizeof(text));
			rv = cmpc_xfer_fail(ctx, CMPC_ERR_TRANSPORT,
					    "%s: the server answered with a CMP-over-TCP error "
					    "(errorMsgRep): '%s'; check the CA's log",
					    c.what, text[0] != '\0' ? text : "(no text)");
			goto out;
		case CMPC_TCP_PARTIALMSGREP:
			rv = cmpc_xfer_fail(ctx, CMPC_ERR_PROTOCOL,
					    "%s: the server answered in parts (partialMsgRep), "
					    "which p11enroll does not take: one request gets one "
					    "PKIMessage; ask the CA operator",
					    c.what);
			goto out;
		default:
			rv = cmpc_xfer_fail(ctx, CMPC_ERR_PROTOCOL,
					    "%s: the server answered with a %s frame, not a "
					    "response; check that it is a CMP server",
					    c.what, cmpc_tcp_type_name(f.type));
			goto out;
		}
	}
out:
	OPENSSL_free(buf);
	if (c.h != NULL)
		curl_easy_cleanup(c.h);
	return rv;
}
