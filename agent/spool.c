/*
 * server = file:///DIR: a spool directory that the CA (or a relay that
 * moves the files by FTP, SCP or a USB stick) serves.  Each message is
 * written to DIR atomically as exactly one DER PKIMessage (RFC 2510 5.1)
 * under a name made of the transactionID and the message's number in the
 * transaction (store_request_name, default %t.%n.req.der); its answer is
 * read from the matching name (store_response_name, %t.%n.rsp.der), which
 * the CA must create by rename.  When no answer came within store_wait,
 * the transaction is saved as after a CA's "waiting" (exit 9), and
 * `p11enroll resume` or the agent read the answer later: the message's
 * number goes into the pending file (store_seq).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent-cmd.h"

#define DEFAULT_WAIT_S 30
#define POLL_MS 100

/* One spool per process (a command, or one of the agent's children). */
static struct {
	int on;
	char dir[1024];
	const char *req_tmpl, *rsp_tmpl;
	int wait_s;
	char tid[2 * CMPC_ID_MAX + 1]; /* the transaction seq counts in */
	int seq;		       /* number of its last stored message */
} sp;

/* tmpl with %t and %n filled in, as DIR/NAME; -1 when it is not one
 * plain file name or does not fit. */
static int make_name(const char *tmpl, const char *tid, int seq, char *out, size_t len)
{
	size_t o;
	int n;

	n = snprintf(out, len, "%s/", sp.dir);
	if (n < 0 || (size_t)n >= len)
		return -1;
	o = (size_t)n;
	for (; *tmpl != '\0'; tmpl++) {
		if (*tmpl == '/')
			return -1;
		if (*tmpl != '%') {
			n = snprintf(out + o, len - o, "%c", *tmpl);
		} else if (tmpl[1] == 't') {
			n = snprintf(out + o, len - o, "%s", tid);
			tmpl++;
		} else if (tmpl[1] == 'n') {
			n = snprintf(out + o, len - o, "%d", seq);
			tmpl++;
		} else if (tmpl[1] == '%') {
			n = snprintf(out + o, len - o, "%%");
			tmpl++;
		} else {
			return -1;
		}
		if (n < 0 || (size_t)n >= len - o)
			return -1;
		o += (size_t)n;
	}
	/* a name of its own: never the directory itself, never hidden */
	return out[strlen(sp.dir) + 1] == '\0' || out[strlen(sp.dir) + 1] == '.' ? -1 : 0;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR && agent_interrupted() == 0)
		;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * The answer at path into the layer, waiting up to wait_ms for it to
 * appear: CMPC_OK, the failure, or cmpc_transfer_stored (not there yet).
 */
static cmpc_rv answer(cmpc_ctx *ctx, const char *path, long long wait_ms)
{
	long long end = now_ms() + wait_ms;
	int fd;

	while ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
		if (errno != ENOENT)
			return cmpc_transfer_fail(ctx, CMPC_ERR_TRANSPORT, "cannot read %s: %s",
						  path, strerror(errno));
		if (agent_interrupted() != 0)
			return cmpc_transfer_fail(ctx, CMPC_ERR_TRANSPORT,
						  "interrupted while waiting for %s", path);
		if (now_ms() >= end)
			return cmpc_transfer_stored(ctx, path);
		sleep_ms(POLL_MS);
	}
	return agent_read_answer(ctx, fd, path, "");
}

static cmpc_rv transfer(cmpc_ctx *ctx, const unsigned char *req, size_t req_len, long timeout_ms,
			void *arg)
{
	const char *tid = cmpc_transaction_id(ctx);
	char path[2048], err[1024];
	long long wait_ms = (long long)sp.wait_s * 1000;

	(void)arg;
	if (timeout_ms < wait_ms)
		wait_ms = timeout_ms;
	if (*tid == '\0')
		return cmpc_transfer_fail(ctx, CMPC_ERR_INTERNAL,
					  "the message has no transactionID");
	if (req != NULL) {
		/* A new transaction numbers its messages from 1. */
		if (strcmp(tid, sp.tid) != 0) {
			snprintf(sp.tid, sizeof(sp.tid), "%s", tid);
			sp.seq = 0;
		}
		if (make_name(sp.req_tmpl, tid, sp.seq + 1, path, sizeof(path)) < 0)
			return cmpc_transfer_fail(ctx, CMPC_ERR_TRANSPORT,
						  "store_request_name '%s' does not make a file "
						  "name in %s (only %%t, %%n and %%%% are "
						  "replaced; no '/')",
						  sp.req_tmpl, sp.dir);
		if (agent_write_der(path, req, req_len, err, sizeof(err)) < 0)
			return cmpc_transfer_fail(ctx, CMPC_ERR_TRANSPORT, "%s", err);
		sp.seq++;
	} else if (strcmp(tid, sp.tid) != 0 || sp.seq <= 0) {
		return cmpc_transfer_fail(ctx, CMPC_ERR_TRANSPORT,
					  "the saved transaction does not say which message "
					  "of transaction %s was stored in %s; give it up "
					  "with `p11enroll resume --abandon`",
					  tid, sp.dir);
	}
	if (make_name(sp.rsp_tmpl, tid, sp.seq, path, sizeof(path)) < 0)
		return cmpc_transfer_fail(ctx, CMPC_ERR_TRANSPORT,
					  "store_response_name '%s' does not make a file name in %s "
					  "(only %%t, %%n and %%%% are replaced; no '/')",
					  sp.rsp_tmpl, sp.dir);
	return answer(ctx, path, wait_ms);
}

int agent_spool_server(const char *url)
{
	return url != NULL && strncmp(url, "file://", 7) == 0;
}

void agent_spool_apply(const conf_enrollment *e, cmpc_ctx *cmp)
{
	if (!agent_spool_server(e->server)) {
		sp.on = 0;
		return;
	}
	/* file:///DIR, checked by the configuration and cmpc_set1_server */
	snprintf(sp.dir, sizeof(sp.dir), "%s", e->server + 7);
	sp.req_tmpl = e->store_request_name != NULL ? e->store_request_name : "%t.%n.req.der";
	sp.rsp_tmpl = e->store_response_name != NULL ? e->store_response_name : "%t.%n.rsp.der";
	sp.wait_s = e->store_wait > 0 ? e->store_wait : DEFAULT_WAIT_S;
	sp.on = 1;
	cmpc_set_transfer_cb(cmp, transfer, NULL);
}

int agent_spool_seq(void)
{
	return sp.on ? sp.seq : 0;
}

void agent_spool_resume(const agent_pending *ap)
{
	agent_hex(ap->p.tid, ap->p.tid_len, sp.tid, sizeof(sp.tid));
	sp.seq = ap->store_seq;
}
