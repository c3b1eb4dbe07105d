/*
 * Fuzz target: an answer on the agent's control socket as the client reads
 * it (ctl_reply_feed, agent/ctl_reply.c).  The answer comes from a process
 * that may have stopped half-way or, on a bad day, from another program:
 * whatever the bytes, the parser stays within its bounds, and what it
 * makes of them does not depend on how the reads cut them.  Checked: the
 * input fed whole and fed in chunks give the same out and err bytes, the
 * same message, state, exit status and reason; a complete answer has a
 * status of 0 to 255 and a message within CTL_REPLY_MSG_MAX; the answer
 * written again from what was parsed parses to the same.
 *
 * Input: byte 0 the chunk size (plus one); then the answer's bytes.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/track.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What the sink got: out and err, each in its own buffer. */
typedef struct {
	char *b[2];
	size_t n[2];
} got;

static void sink(void *arg, ctl_frame kind, const char *p, size_t n)
{
	got *g = arg;
	int k = kind == CTL_FRAME_ERR;
	char *q;

	if (kind != CTL_FRAME_OUT && kind != CTL_FRAME_ERR)
		abort(); /* msg is the parser's to keep */
	if ((q = realloc(g->b[k], g->n[k] + n + 1)) == NULL)
		abort();
	memcpy(q + g->n[k], p, n);
	g->b[k] = q;
	g->n[k] += n;
}

static void got_free(got *g)
{
	free(g->b[0]);
	free(g->b[1]);
}

static void parse(const uint8_t *d, size_t n, size_t chunk, ctl_reply *r, got *g)
{
	size_t off, k;

	memset(g, 0, sizeof(*g));
	ctl_reply_init(r);
	for (off = 0; off < n; off += k) {
		k = n - off < chunk ? n - off : chunk;
		if (ctl_reply_feed(r, (const char *)d + off, k, sink, g) < 0)
			break;
	}
	(void)ctl_reply_end(r);
}

static int same_bytes(const char *a, size_t na, const char *b, size_t nb)
{
	return na == nb && (na == 0 || memcmp(a, b, na) == 0);
}

static int same(const ctl_reply *a, const got *ga, const ctl_reply *b, const got *gb)
{
	return a->state == b->state && a->code == b->code && strcmp(a->why, b->why) == 0 &&
	       same_bytes(a->msg, a->msglen, b->msg, b->msglen) &&
	       same_bytes(ga->b[0], ga->n[0], gb->b[0], gb->n[0]) &&
	       same_bytes(ga->b[1], ga->n[1], gb->b[1], gb->n[1]);
}

/* The answer again, from what was parsed: header, out, err, msg, exit. */
static uint8_t *rewrite(const ctl_reply *r, const got *g, size_t *ret_n)
{
	const char *body[3] = { g->b[0], g->b[1], r->msg };
	size_t len[3] = { g->n[0], g->n[1], r->msglen }, n = 0, cap = 128;
	uint8_t *out;
	int k;

	for (k = 0; k < 3; k++)
		cap += len[k] + 48;
	if ((out = malloc(cap)) == NULL)
		abort();
	n += (size_t)ctl_reply_head((char *)out + n, cap - n);
	for (k = 0; k < 3; k++) {
		n += (size_t)ctl_reply_frame_head((char *)out + n, cap - n, (ctl_frame)k, len[k]);
		if (len[k] > 0)
			memcpy(out + n, body[k], len[k]);
		n += len[k];
	}
	n += (size_t)ctl_reply_exit((char *)out + n, cap - n, r->code);
	*ret_n = n;
	return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ctl_reply whole, cut, again;
	got gw, gc, ga;
	uint8_t *w;
	size_t chunk, wn;

	if (size < 1 || size > 65536)
		return 0;
	chunk = (size_t)data[0] + 1;
	data++;
	size--;
	parse(data, size, size > 0 ? size : 1, &whole, &gw);
	parse(data, size, chunk, &cut, &gc);
	if (!same(&whole, &gw, &cut, &gc))
		abort();
	if (whole.state == CTL_REPLY_DONE) {
		if (whole.code < 0 || whole.code > 255 || whole.msglen > CTL_REPLY_MSG_MAX ||
		    (whole.msg != NULL && whole.msg[whole.msglen] != '\0'))
			abort();
		w = rewrite(&whole, &gw, &wn);
		parse(w, wn, chunk, &again, &ga);
		if (again.state != CTL_REPLY_DONE || !same(&whole, &gw, &again, &ga))
			abort();
		free(w);
		ctl_reply_clear(&again);
		got_free(&ga);
	} else if (whole.state != CTL_REPLY_BAD || whole.why[0] == '\0' || whole.code != -1) {
		abort();
	}
	ctl_reply_clear(&whole);
	ctl_reply_clear(&cut);
	got_free(&gw);
	got_free(&gc);
	return 0;
}
