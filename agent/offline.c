/*
 * Offline requests for HSM rooms without a path to the CA (RFC 2510 5.1:
 * a file holds exactly one DER PKIMessage and nothing else).  `enroll
 * --request-out FILE` (cr, p10cr, renew) makes the key and the protected
 * request on the token as always, but the request goes to FILE, written
 * atomically, and the transaction is saved like a CA's "waiting" (exit 9).
 * `resume --response-in ANSWER --request-out CONF` reads the CA's answer
 * from ANSWER, checks it as any answer (protection, trust, transactionID,
 * nonces), stores the certificate and writes the certConf to CONF.  The
 * protocol layer does the rest through its store-and-forward seam
 * (cmpc_transfer_stored): this file only moves the bytes.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/agent-cmd.h"

/* One command per process: its options, and whether a message went out. */
static struct {
	const char *request_out;
	const char *response_in;
	int written;
} off;

struct der {
	const unsigned char *p;
	size_t len;
};

static int put_der(FILE *f, void *arg)
{
	const struct der *d = arg;

	return fwrite(d->p, 1, d->len, f) == d->len ? 0 : -1;
}

int agent_write_der(const char *path, const unsigned char *p, size_t len, char *err, size_t errlen)
{
	struct der d = { p, len };

	return agent_atomic_write(path, AGENT_MODE_KEEP, put_der, &d, err, errlen);
}

cmpc_rv agent_read_answer(cmpc_ctx *ctx, int fd, const char *path, const char *hint)
{
	unsigned char buf[4096];
	struct stat st;
	ssize_t n;

	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return cmpc_transfer_fail(ctx, CMPC_ERR_TRANSPORT, "%s is not a regular file%s",
					  path, hint);
	}
	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;

			close(fd);
			return cmpc_transfer_fail(ctx, CMPC_ERR_TRANSPORT, "cannot read %s: %s",
						  path, strerror(e));
		}
		if (!cmpc_transfer_write(ctx, buf, (size_t)n)) {
			close(fd);
			return CMPC_ERR_TRANSPORT; /* the layer words it */
		}
	}
	close(fd);
	return CMPC_OK;
}

static cmpc_rv read_answer(cmpc_ctx *ctx)
{
	int fd;

	if ((fd = open(off.response_in, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0)
		return cmpc_transfer_fail(ctx, CMPC_ERR_TRANSPORT,
					  "cannot read %s: %s; give the file the CA wrote",
					  off.response_in, strerror(errno));
	return agent_read_answer(ctx, fd, off.response_in, "; give the file the CA wrote");
}

static cmpc_rv transfer(cmpc_ctx *ctx, const unsigned char *req, size_t req_len, long timeout_ms,
			void *arg)
{
	char err[1024];

	(void)timeout_ms;
	(void)arg;
	if (req == NULL) {
		if (off.response_in == NULL)
			return cmpc_transfer_fail(ctx, CMPC_ERR_TRANSPORT,
						  "the request was written to a file for the CA: "
						  "give its answer with --response-in FILE");
		return read_answer(ctx);
	}
	/* One message a file, and one file a run: a second message would
	 * need an answer this run cannot have. */
	if (off.request_out == NULL || off.written)
		return cmpc_transfer_fail(ctx, CMPC_ERR_TRANSPORT,
					  "%s; carry the messages one at a time",
					  off.request_out == NULL
					      ? "no --request-out FILE to write the message to"
					      : "a second message in one run");
	/* Saved first: killed once the file is there, the key still waits. */
	cmpc_transfer_storing(ctx, req, req_len);
	if (agent_write_der(off.request_out, req, req_len, err, sizeof(err)) < 0)
		return cmpc_transfer_fail(ctx, CMPC_ERR_TRANSPORT, "%s", err);
	off.written = 1;
	return cmpc_transfer_stored(ctx, off.request_out);
}

agent_rc agent_offline_begin(const char *cmd, const agent_cmd_opts *o)
{
	memset(&off, 0, sizeof(off));
	if (o->request_out == NULL && o->response_in == NULL)
		return EXIT_OK;
	if (o->batch != NULL || o->abandon) {
		log_msg(LOG_ERR, "--%s cannot be combined with --%s",
			o->request_out != NULL ? "request-out" : "response-in",
			o->batch != NULL ? "batch" : "abandon");
		return EXIT_USAGE;
	}
	if (strcmp(cmd, "resume") == 0 && (o->response_in == NULL || o->request_out == NULL)) {
		log_msg(LOG_ERR, "resume of an offline request takes both --response-in FILE (the "
				 "CA's answer) and --request-out FILE (where the certConf for the CA "
				 "goes)");
		return EXIT_USAGE;
	}
	/* rr and genm: a message out, or an answer in (stored.c), per run */
	if ((strcmp(cmd, "revoke") == 0 || strcmp(cmd, "genm") == 0) && o->request_out != NULL &&
	    o->response_in != NULL) {
		log_msg(LOG_ERR, "%s takes --request-out FILE (write the %s for the CA) or "
				 "--response-in FILE (read the CA's answer to it), not both",
			cmd, strcmp(cmd, "revoke") == 0 ? "rr" : "genm");
		return EXIT_USAGE;
	}
	if (o->response_in != NULL && o->request_out != NULL &&
	    strcmp(o->response_in, o->request_out) == 0) {
		log_msg(LOG_ERR, "--response-in and --request-out name the same file: give the "
				 "certConf a file of its own");
		return EXIT_USAGE;
	}
	off.request_out = o->request_out;
	off.response_in = o->response_in;
	return EXIT_OK;
}

int agent_offline(void)
{
	return off.request_out != NULL || off.response_in != NULL;
}

const char *agent_offline_request_out(void)
{
	return off.request_out;
}

void agent_offline_apply(cmpc_ctx *cmp)
{
	if (agent_offline())
		cmpc_set_transfer_cb(cmp, transfer, NULL);
}

void agent_offline_end(agent_rc rc)
{
	if (off.response_in == NULL || off.request_out == NULL || rc != EXIT_OK)
		return;
	if (off.written)
		log_msg(LOG_NOTICE, "the certConf for the CA is in %s: carry it to the CA, which "
				    "then counts the certificate as accepted (its pkiConf answer is "
				    "not needed here)",
			off.request_out);
	else
		log_msg(LOG_NOTICE, "the CA granted implicit confirmation: nothing to carry back "
				    "(%s was not written)",
			off.request_out);
}
