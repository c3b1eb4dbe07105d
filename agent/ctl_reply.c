/*
 * The agent's answers on the control socket, framed so that a client
 * gets them whole and can tell a complete answer from a cut one:
 *
 *     p11enroll-reply 1\n
 *     out N\n  N bytes      for the client's stdout, as they are
 *     err N\n  N bytes      for its stderr, as they are (a step's messages)
 *     msg N\n  N bytes      the agent's own words: stdout after exit 0,
 *                           an error message (line by line) otherwise
 *     exit N\n              the exit status; nothing follows
 *
 * Frames come in any number and order.  Lengths, not terminators, so that
 * no text (a CA's rejection, a file's contents) can end an answer early.
 * The client (ctl_reply_feed) takes the bytes as they come, in pieces of
 * any size: out and err go on at once (a status document of megabytes is
 * never held), msg is kept, bounded.  Whatever does not follow this is an
 * error with its reason, never a guess.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/track.h"

#define MAGIC "p11enroll-reply 1"

int ctl_reply_head(char *buf, size_t len)
{
	return snprintf(buf, len, "%s\n", MAGIC);
}

int ctl_reply_frame_head(char *buf, size_t len, ctl_frame kind, size_t n)
{
	static const char *const names[] = { "out", "err", "msg" };

	return snprintf(buf, len, "%s %zu\n", names[kind], n);
}

int ctl_reply_exit(char *buf, size_t len, int code)
{
	return snprintf(buf, len, "exit %d\n", code);
}

void ctl_reply_init(ctl_reply *r)
{
	memset(r, 0, sizeof(*r));
	r->code = -1;
}

void ctl_reply_clear(ctl_reply *r)
{
	free(r->msg);
	r->msg = NULL;
	r->msglen = 0;
}

static int bad(ctl_reply *r, const char *why)
{
	r->state = CTL_REPLY_BAD;
	r->code = -1;
	snprintf(r->why, sizeof(r->why), "%s", why);
	return -1;
}

/* A decimal number of at most 18 digits, the whole of s. */
static int number(const char *s, unsigned long long *ret)
{
	unsigned long long v = 0;
	size_t i;

	if (s[0] == '\0' || strlen(s) > 18)
		return -1;
	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned long long)(s[i] - '0');
	}
	*ret = v;
	return 0;
}

/* One complete line of the framing (r->line, without its newline). */
static int head_line(ctl_reply *r)
{
	static const char *const names[] = { "out ", "err ", "msg " };
	unsigned long long v;
	size_t k;

	if (r->state == CTL_REPLY_START) {
		if (strcmp(r->line, MAGIC) != 0)
			return bad(r, strncmp(r->line, "p11enroll-reply ", 16) == 0
					      ? "an answer of another version of the protocol"
					      : "not an answer of p11enroll's agent");
		r->state = CTL_REPLY_HEAD;
		return 0;
	}
	if (strncmp(r->line, "exit ", 5) == 0) {
		if (number(r->line + 5, &v) < 0 || v > 255)
			return bad(r, "an exit line without a status of 0 to 255");
		r->code = (int)v;
		r->state = CTL_REPLY_DONE;
		return 0;
	}
	for (k = 0; k < sizeof(names) / sizeof(names[0]); k++)
		if (strncmp(r->line, names[k], 4) == 0)
			break;
	if (k == sizeof(names) / sizeof(names[0]))
		return bad(r, "a line that is no frame");
	if (number(r->line + 4, &v) < 0)
		return bad(r, "a frame without a length");
	if (k == CTL_FRAME_MSG && v > CTL_REPLY_MSG_MAX - r->msglen)
		return bad(r, "a message longer than a client keeps");
	r->kind = (ctl_frame)k;
	r->left = v;
	r->state = v > 0 ? CTL_REPLY_BODY : CTL_REPLY_HEAD;
	return 0;
}

static int body(ctl_reply *r, const char *p, size_t n, ctl_reply_sink *sink, void *arg)
{
	char *m;

	if (r->kind != CTL_FRAME_MSG) {
		sink(arg, r->kind, p, n);
		return 0;
	}
	if ((m = realloc(r->msg, r->msglen + n + 1)) == NULL)
		return bad(r, "out of memory for its message");
	memcpy(m + r->msglen, p, n);
	r->msglen += n;
	m[r->msglen] = '\0';
	r->msg = m;
	return 0;
}

int ctl_reply_feed(ctl_reply *r, const char *p, size_t n, ctl_reply_sink *sink, void *arg)
{
	size_t k;

	while (n > 0) {
		switch (r->state) {
		case CTL_REPLY_BAD: return -1;
		case CTL_REPLY_DONE: return bad(r, "bytes after its exit line");
		case CTL_REPLY_BODY:
			k = n < r->left ? n : (size_t)r->left;
			if (body(r, p, k, sink, arg) < 0)
				return -1;
			r->left -= k;
			p += k;
			n -= k;
			if (r->left == 0)
				r->state = CTL_REPLY_HEAD;
			break;
		case CTL_REPLY_START:
		case CTL_REPLY_HEAD:
			if (*p == '\n') {
				r->line[r->linelen] = '\0';
				r->linelen = 0;
				p++;
				n--;
				if (head_line(r) < 0)
					return -1;
				break;
			}
			if (*p == '\0' || r->linelen == sizeof(r->line) - 1)
				return bad(r, r->state == CTL_REPLY_START
						      ? "not an answer of p11enroll's agent"
						      : "a framing line that is too long or holds a NUL");
			r->line[r->linelen++] = *p++;
			n--;
			break;
		}
	}
	return r->state == CTL_REPLY_BAD ? -1 : 0;
}

int ctl_reply_end(ctl_reply *r)
{
	if (r->state == CTL_REPLY_DONE)
		return 0;
	if (r->state != CTL_REPLY_BAD)
		bad(r, r->state == CTL_REPLY_BODY ? "cut short within a frame"
						  : "cut short before its exit line");
	return -1;
}
