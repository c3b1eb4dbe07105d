/*
 * Store-and-forward servers: the spool directory of file:///DIR and the
 * remote stores (spool.h).  Each message goes out under a name made of
 * the transactionID and the message's number in the transaction
 * (store_request_name, default %t.%n.req.der); its answer comes back
 * under the matching name (store_response_name, %t.%n.rsp.der).  When no
 * answer came within store_wait, the transaction is saved as after a
 * CA's "waiting" (exit 9), and `p11enroll resume` or the agent read the
 * answer later: the message's number goes into the pending file
 * (store_seq).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "agent/agent-cmd.h"
#include "agent/spool.h"

#define DEFAULT_WAIT_S 30
/* The first look for an answer comes this soon after the message went
 * out, the next ones twice as late each, up to the store's poll_ms: a CA
 * that answers at once is not kept waiting for a poll interval that is
 * there to spare the server. */
#define FIRST_MS 100

/* The URL schemes served here, and their stores. */
static const struct {
	const char *prefix;
	spool_open_fn *open;
} stores[] = {
    {"file://", spool_dir_open},
    {"ftp://", spool_remote_open},
    {"ftps://", spool_remote_open},
    {"sftp://", spool_remote_open},
    {"scp://", spool_remote_open},
    {"mailto:", spool_mail_open},
};

/* One spool per process (a command, or one of the agent's children). */
static struct {
	int on;
	spool_store st;
	const char *req_tmpl, *rsp_tmpl;
	int wait_s;
	char tid[2 * CMPC_ID_MAX + 1]; /* the transaction seq counts in */
	int seq;		       /* number of its last stored message */
} sp;

/* tmpl with %t and %n filled in; -1 when it is not one plain file name
 * or does not fit. */
static int make_name(const char *tmpl, const char *tid, int seq, char *out, size_t len)
{
	size_t o = 0;
	int n;

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
	return o == 0 || out[0] == '.' ? -1 : 0;
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
 * The answer to m into the layer, waiting up to wait_ms for it to appear:
 * CMPC_OK, the failure, or cmpc_transfer_stored (not there yet).
 */
static cmpc_rv answer(cmpc_ctx *ctx, const spool_msg *m, long long wait_ms)
{
	long long end = now_ms() + wait_ms, left;
	char where[sizeof(sp.st.where) + 256];
	long next = FIRST_MS, step;
	int r;

	while ((r = sp.st.get(&sp.st, ctx, m)) == 0) {
		if (agent_interrupted() != 0)
			return cmpc_transfer_fail(ctx, CMPC_ERR_TRANSPORT,
						  "interrupted while waiting for %s in %s",
						  m->rsp_name, sp.st.where);
		if ((left = end - now_ms()) <= 0) {
			snprintf(where, sizeof(where), "%s (%s %s)",
				 sp.st.by_mail ? "a mail to the CA" : m->req_name, sp.st.kind,
				 sp.st.where);
			return cmpc_transfer_stored(ctx, where);
		}
		step = next < sp.st.poll_ms ? next : sp.st.poll_ms;
		if (left < step)
			step = (long)left;
		if (next < sp.st.poll_ms)
			next *= 2;
		if (sp.st.wait != NULL)
			sp.st.wait(&sp.st, m, step);
		else
			sleep_ms(step);
	}
	return r > 0 ? CMPC_OK : CMPC_ERR_TRANSPORT;
}

static cmpc_rv name_fail(cmpc_ctx *ctx, const char *key, const char *tmpl)
{
	return cmpc_transfer_fail(ctx, CMPC_ERR_TRANSPORT,
				  "%s '%s' does not make a file name (only %%t, %%n and %%%% "
				  "are replaced; no '/', not hidden)",
				  key, tmpl);
}

static cmpc_rv transfer(cmpc_ctx *ctx, const unsigned char *req, size_t req_len, long timeout_ms,
			void *arg)
{
	const char *tid = cmpc_transaction_id(ctx);
	char req_name[512], rsp_name[512];
	long long wait_ms = (long long)sp.wait_s * 1000;
	spool_msg m = { tid, 0, req_name, rsp_name };

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
		m.seq = sp.seq + 1;
	} else if (strcmp(tid, sp.tid) != 0 || sp.seq <= 0) {
		return cmpc_transfer_fail(ctx, CMPC_ERR_TRANSPORT,
					  "the saved transaction does not say which message "
					  "of transaction %s was stored in %s; give it up "
					  "with `p11enroll resume --abandon`",
					  tid, sp.st.where);
	} else {
		m.seq = sp.seq;
	}
	if (make_name(sp.req_tmpl, tid, m.seq, req_name, sizeof(req_name)) < 0)
		return name_fail(ctx, "store_request_name", sp.req_tmpl);
	if (make_name(sp.rsp_tmpl, tid, m.seq, rsp_name, sizeof(rsp_name)) < 0)
		return name_fail(ctx, "store_response_name", sp.rsp_tmpl);
	if (req != NULL) {
		/* The transaction is saved, with this message's number, before
		 * the CA can see the message: a process killed between the two
		 * leaves the key waiting for the answer, not deleted by
		 * recovery while the CA may answer. */
		int before = sp.seq;

		sp.seq = m.seq;
		cmpc_transfer_storing(ctx, req, req_len);
		if (sp.st.put(&sp.st, ctx, &m, req, req_len) < 0) {
			sp.seq = before;
			return CMPC_ERR_TRANSPORT;
		}
	}
	return answer(ctx, &m, wait_ms);
}

int agent_spool_server(const char *url)
{
	size_t i;

	for (i = 0; url != NULL && i < sizeof(stores) / sizeof(stores[0]); i++)
		if (strncmp(url, stores[i].prefix, strlen(stores[i].prefix)) == 0)
			return 1;
	return 0;
}

agent_rc agent_spool_apply(const conf_enrollment *e, cmpc_ctx *cmp)
{
	char err[1024];
	size_t i;

	agent_spool_close();
	for (i = 0; i < sizeof(stores) / sizeof(stores[0]); i++)
		if (strncmp(e->server, stores[i].prefix, strlen(stores[i].prefix)) == 0)
			break;
	if (i == sizeof(stores) / sizeof(stores[0]))
		return EXIT_OK;
	memset(&sp.st, 0, sizeof(sp.st));
	if (stores[i].open(e, &sp.st, err, sizeof(err)) < 0) {
		log_msg(LOG_ERR, "server %s: %s", e->server, err);
		return EXIT_USAGE;
	}
	sp.req_tmpl = e->store_request_name != NULL ? e->store_request_name : "%t.%n.req.der";
	sp.rsp_tmpl = e->store_response_name != NULL ? e->store_response_name : "%t.%n.rsp.der";
	sp.wait_s = e->store_wait > 0 ? e->store_wait : DEFAULT_WAIT_S;
	sp.on = 1;
	cmpc_set_transfer_cb(cmp, transfer, NULL);
	return EXIT_OK;
}

void agent_spool_close(void)
{
	if (sp.on && sp.st.close != NULL)
		sp.st.close(&sp.st);
	sp.on = 0;
}

int agent_spool_by_mail(void)
{
	return sp.st.by_mail;
}

const char *agent_spool_kind(void)
{
	return sp.st.kind != NULL ? sp.st.kind : "spool directory";
}

const char *agent_spool_where(void)
{
	return sp.st.where;
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
