/*
 * The transport seam.  OpenSSL calls cmpc_msg_transfer (its transfer
 * callback) for every message it sends, and so does the layer for the
 * messages it builds itself (pollReq, the error that abandons).  What is
 * the same for every transport happens here: the deadline, the DER
 * encoding, the layer's PBM parameters, the response buffer with its size
 * limit, and the checks every answer gets before OpenSSL sees it.  Only
 * moving the bytes is left to the transfer function: the libcurl HTTP(S)
 * one (cmpc_http.c), or CMP over TCP (cmpc_tcp.c) for a tcp:// URL,
 * unless the caller set its own.
 */
#include "config.h" /* P11E_COV_FLUSH */

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "cmp/cmpc-int.h"

static cmpc_rv vfail(cmpc_ctx *ctx, cmpc_rv rv, const char *prefix, const char *fmt, va_list ap)
    CMPC_PRINTF(4, 0);

static cmpc_rv vfail(cmpc_ctx *ctx, cmpc_rv rv, const char *prefix, const char *fmt, va_list ap)
{
	size_t n = strlen(prefix);

	/* The first failure of an exchange is the cause; later ones follow from it. */
	if (ctx->x.rv != CMPC_OK)
		return rv;
	if (n >= sizeof(ctx->x.msg))
		n = sizeof(ctx->x.msg) - 1;
	memcpy(ctx->x.msg, prefix, n);
	vsnprintf(ctx->x.msg + n, sizeof(ctx->x.msg) - n, fmt, ap);
	ctx->x.rv = rv;
	cmpc_log(ctx, LOG_DEBUG, "%s", ctx->x.msg);
	return rv;
}

cmpc_rv cmpc_xfer_fail(cmpc_ctx *ctx, cmpc_rv rv, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	rv = vfail(ctx, rv, "", fmt, ap);
	va_end(ap);
	return rv;
}

cmpc_rv cmpc_transfer_fail(cmpc_ctx *ctx, cmpc_rv rv, const char *fmt, ...)
{
	char prefix[sizeof(ctx->x.what) + 2];
	va_list ap;

	if (rv == CMPC_OK)
		rv = CMPC_ERR_TRANSPORT; /* a failure it is, whatever was passed */
	snprintf(prefix, sizeof(prefix), "%s: ", ctx->x.what);
	va_start(ap, fmt);
	rv = vfail(ctx, rv, prefix, fmt, ap);
	va_end(ap);
	return rv;
}

cmpc_rv cmpc_transfer_timeout(cmpc_ctx *ctx, const char *detail)
{
	/* Out of the total time, a "waiting" transaction goes on (cmpc_err.c). */
	if (ctx->x.by_total)
		ctx->x.total_timeout_hit = 1;
	return cmpc_xfer_fail(
	    ctx, CMPC_ERR_TRANSPORT, "%s: no complete response within %ld s (%s); %s", ctx->x.what,
	    ctx->x.limit_s, detail != NULL ? detail : "timed out",
	    ctx->x.by_total ? "the total timeout ran out: try again later or raise it"
			    : "check that the server is reachable, or raise the timeout");
}

cmpc_rv cmpc_transfer_stored(cmpc_ctx *ctx, const char *where)
{
	/* Recorded as this exchange's outcome, so that OpenSSL's complaint
	 * about the missing answer is not taken for the cause. */
	ctx->x.stored = 1;
	if (ctx->x.fetching)
		return cmpc_xfer_fail(ctx, CMPC_ERR_WAITING,
				      "%s: no answer yet in %s; the CA's answer comes later",
				      ctx->x.what, where != NULL ? where : "(unnamed)");
	return cmpc_xfer_fail(ctx, CMPC_ERR_WAITING, "%s: stored in %s; the CA's answer comes later",
			      ctx->x.what, where != NULL ? where : "(unnamed)");
}

void cmpc_transfer_storing(cmpc_ctx *ctx, const unsigned char *req, size_t req_len)
{
	CMPC_PKIMSG_HEAD *m = cmpc_msg_head_decode(req, req_len);
	cmpc_ids ids;

	ids.tid_len = ids.nonce_len = 0;
	if (m != NULL)
		cmpc_note_ids(&ids, m->header);
	cmpc_msg_head_free(m);
	ERR_clear_error();
	cmpc_certreq_presave(ctx, &ids);
}

int cmpc_store_failed(const cmpc_ctx *ctx)
{
	return ctx != NULL && ctx->store_failed;
}

int cmpc_transfer_write(cmpc_ctx *ctx, const void *data, size_t len)
{
	size_t cap;
	unsigned char *p;

	if (len > ctx->max_response - ctx->x.rlen) {
		ctx->x.overflow = 1;
		return 0;
	}
	if (ctx->x.rlen + len > ctx->x.rcap) {
		cap = ctx->x.rcap > 0 ? ctx->x.rcap : 4096;
		while (cap < ctx->x.rlen + len)
			cap = cap > ctx->max_response / 2 ? ctx->max_response : cap * 2;
		if ((p = OPENSSL_realloc(ctx->x.rbuf, cap)) == NULL) {
			ctx->x.write_oom = 1;
			return 0;
		}
		ctx->x.rbuf = p;
		ctx->x.rcap = cap;
	}
	if (len > 0) /* data may be NULL then */
		memcpy(ctx->x.rbuf + ctx->x.rlen, data, len);
	ctx->x.rlen += len;
	return 1;
}

void cmpc_set_wait_cb(cmpc_ctx *ctx, cmpc_wait_fn fn, void *arg)
{
	ctx->wait_fn = fn;
	ctx->wait_arg = arg;
}

void cmpc_wait_begin(cmpc_ctx *ctx, cmpc_wait_kind kind, long long in_ms)
{
	cmpc_wait *w = &ctx->x.wait_now;
	time_t now = time(NULL);

	w->kind = kind;
	w->what = ctx->x.wait_what;
	w->url = ctx->url != NULL ? ctx->url : "";
	w->until = now + (time_t)((in_ms + 999) / 1000);
	w->give_up = 0;
	if (kind == CMPC_WAIT_POLL && ctx->x.deadline_ms != 0)
		w->give_up = now + (time_t)((ctx->x.deadline_ms - cmpc_now_ms() + 999) / 1000);
}

int cmpc_wait_tick(cmpc_ctx *ctx)
{
	/* Once asked, the exchange stops: every later call says so too. */
	if (ctx->wait_fn == NULL || ctx->x.wait_now.kind == CMPC_WAIT_DONE)
		return ctx->x.stopped;
	if (!ctx->x.stopped && ctx->wait_fn(&ctx->x.wait_now, ctx->wait_arg) != 0)
		ctx->x.stopped = 1;
	return ctx->x.stopped;
}

void cmpc_wait_end(cmpc_ctx *ctx)
{
	if (ctx->x.wait_now.kind == CMPC_WAIT_DONE)
		return;
	ctx->x.wait_now.kind = CMPC_WAIT_DONE;
	if (ctx->wait_fn != NULL)
		(void)ctx->wait_fn(&ctx->x.wait_now, ctx->wait_arg);
}

void cmpc_set_transfer_cb(cmpc_ctx *ctx, cmpc_transfer_fn fn, void *arg)
{
	ctx->transfer_fn = fn != NULL ? fn : cmpc_http_transfer;
	ctx->transfer_arg = fn != NULL ? arg : NULL;
}

int cmpc_set_msg_transfer(cmpc_ctx *ctx, OSSL_CMP_transfer_cb_t cb)
{
	ctx->msg_transfer = cb;
	return OSSL_CMP_CTX_set_transfer_cb(ctx->cmp, cb);
}

cmpc_rv cmpc_transfer_prepare(cmpc_ctx *ctx)
{
	/* The built-in transports go by the server URL's scheme; one the
	 * caller set has nothing to set up from the context. */
	if (ctx->transfer_fn == cmpc_tcp_transfer || ctx->transfer_fn == cmpc_http_transfer) {
		if (cmpc_is_tcp_url(ctx->url)) {
			ctx->transfer_fn = cmpc_tcp_transfer;
			return cmpc_tcp_prepare(ctx);
		}
		ctx->transfer_fn = cmpc_http_transfer;
		return cmpc_http_prepare(ctx);
	}
	return CMPC_OK;
}

static void lower(char *s)
{
	for (; *s != '\0'; s++)
		*s = (char)tolower((unsigned char)*s);
}

/* OpenSSL's encoder, as in the token layer and the agent; lower case, as the
 * agent prints it beside the key ids.  At most CMPC_ID_MAX bytes: what
 * last_tid holds. */
static void note_tid(cmpc_ctx *ctx, const OSSL_CMP_MSG *req)
{
	const ASN1_OCTET_STRING *t = OSSL_CMP_HDR_get0_transactionID(OSSL_CMP_MSG_get0_header(req));
	size_t n = t != NULL && t->length > 0 ? (size_t)t->length : 0;

	if (n > CMPC_ID_MAX)
		n = CMPC_ID_MAX;
	if (!OPENSSL_buf2hexstr_ex(ctx->last_tid, sizeof(ctx->last_tid), NULL,
				   n > 0 ? t->data : NULL, n, '\0'))
		ctx->last_tid[0] = '\0';
	lower(ctx->last_tid);
}

/* Whether the undecodable response is an ip/cp/kup or a krp whose
 * privateKey is an EnvelopedData: OpenSSL 3.0's CertifiedKeyPair knows
 * EncryptedValue only. */
static int enveloped_key(cmpc_ctx *ctx)
{
	cmpc_privkey k;
	char why[64];
	int env;

	memset(&k, 0, sizeof(k));
	env = cmpc_privkey_get(ctx->x.rbuf, ctx->x.rlen, -1, &k, why, sizeof(why)) == 1 &&
	      k.kind == CMPC_PRIVKEY_ENVELOPED;
	cmpc_privkey_clear(&k);
	if (!env)
		env = cmpc_krp_enveloped(ctx->x.rbuf, ctx->x.rlen);
	ERR_clear_error();
	return env;
}

OSSL_CMP_MSG *cmpc_msg_response(cmpc_ctx *ctx, const char *what)
{
	const unsigned char *p = ctx->x.rbuf;
	OSSL_CMP_MSG *rsp = NULL;
	CMPC_PKIMSG_HEAD *m;
	char actual[256], expected[256];

	ctx->x.own_verified = 0;
	if (ctx->x.rlen == 0 || ctx->x.rlen > 0x7fffffffUL ||
	    (rsp = d2i_OSSL_CMP_MSG(NULL, &p, (long)ctx->x.rlen)) == NULL ||
	    p != ctx->x.rbuf + ctx->x.rlen) {
		OSSL_CMP_MSG_free(rsp);
		rsp = NULL;
		if (enveloped_key(ctx) && !ctx->x.own_enveloped) {
			cmpc_xfer_fail(ctx, CMPC_ERR_PROTOCOL,
				       "%s: the CA sent a private key in an EnvelopedData, which "
				       "OpenSSL 3.0 cannot decode, with a certificate for a key of "
				       "this token; report it to the CA operator",
				       what);
			return NULL;
		}
		if (enveloped_key(ctx) && (rsp = cmpc_own_validate(ctx, what)) == NULL)
			return NULL;
	}
	if (rsp == NULL) {
		cmpc_xfer_fail(
		    ctx, CMPC_ERR_PROTOCOL,
		    "%s: the response is not a CMP message (%zu bytes that do not decode "
		    "as one PKIMessage); check that the URL points at the CMP endpoint",
		    what, ctx->x.rlen);
		return NULL;
	}
	/* What OpenSSL 3.0 does not show of a response, from one decoding
	 * with the layer's templates (a message OpenSSL decoded that these
	 * do not: unprotected unknown, no IDs, any expected sender missed). */
	ctx->x.rsp.tid_len = ctx->x.rsp.nonce_len = 0;
	if ((m = cmpc_msg_head_decode(ctx->x.rbuf, ctx->x.rlen)) == NULL) {
		ERR_clear_error();
		ctx->cr.rsp_unprotected = 0;
		snprintf(actual, sizeof(actual), "(undecodable)");
	} else {
		ctx->cr.rsp_unprotected = m->protection == NULL || m->header->protectionAlg == NULL;
		cmpc_note_response(ctx, m->header);
	}
	if (ctx->expected_sender != NULL &&
	    (m == NULL ||
	     !cmpc_msg_check_sender(m->header, ctx->expected_sender, actual, sizeof(actual)))) {
		cmpc_msg_head_free(m);
		OSSL_CMP_MSG_free(rsp);
		X509_NAME_oneline(ctx->expected_sender, expected, sizeof(expected));
		cmpc_xfer_fail(ctx, CMPC_ERR_PROTOCOL,
			       "%s: the response names the sender '%s', not the expected '%s'; "
			       "check the expected sender, or report it to the CA operator",
			       what, actual, expected);
		return NULL;
	}
	cmpc_msg_head_free(m);
	cmpc_log(ctx, LOG_DEBUG, "received %zu bytes (%s) from %s", ctx->x.rlen,
		 cmpc_body_name(OSSL_CMP_MSG_get_bodytype(rsp)), ctx->url);
	return rsp;
}

/* How long the next message may take: the message timeout, or what is
 * left of the total one.  0 with the failure recorded when none is left. */
static long long time_left_ms(cmpc_ctx *ctx)
{
	long long limit_ms = (long long)ctx->msg_s * 1000, left_ms;

	ctx->x.by_total = 0;
	if (ctx->x.deadline_ms != 0) {
		left_ms = ctx->x.deadline_ms - cmpc_now_ms();
		if (left_ms <= 0) {
			ctx->x.total_timeout_hit = 1;
			cmpc_xfer_fail(ctx, CMPC_ERR_TRANSPORT,
				       "%s: the total timeout of %ld s ran out; try again later or "
				       "raise it",
				       ctx->x.what, ctx->total_s);
			return 0;
		}
		if (left_ms < limit_ms) {
			limit_ms = left_ms;
			ctx->x.by_total = 1;
		}
	}
	/* for the message: whole seconds, rounded up */
	ctx->x.limit_s = (long)((limit_ms + 999) / 1000);
	return limit_ms;
}

/* After the transfer function returned rv: the failure it left unsaid. */
static void transfer_outcome(cmpc_ctx *ctx, cmpc_rv rv)
{
	if (ctx->x.overflow)
		cmpc_xfer_fail(ctx, CMPC_ERR_TRANSPORT,
			       "%s: the response is larger than the limit of %zu bytes, so the "
			       "transfer was aborted; check that the URL points at the CMP "
			       "endpoint, or raise the response size limit",
			       ctx->x.what, ctx->max_response);
	else if (ctx->x.write_oom)
		cmpc_xfer_fail(ctx, CMPC_ERR_INTERNAL, "%s: out of memory receiving the response",
			       ctx->x.what);
	else if (rv != CMPC_OK)
		cmpc_xfer_fail(ctx, rv, "%s: the transport failed (%s) and gave no reason",
			       ctx->x.what, cmpc_strerror(rv));
}

/* What a stored message's answer must match: its transactionID and
 * senderNonce (3.0 has no getter for the latter: the layer's templates). */
static void note_stored(cmpc_ctx *ctx, const unsigned char *der, int derlen, int type)
{
	CMPC_PKIMSG_HEAD *m = cmpc_msg_head_decode(der, (size_t)derlen);

	ctx->x.stored_type = type;
	ctx->x.stored_ids.tid_len = ctx->x.stored_ids.nonce_len = 0;
	if (m != NULL)
		cmpc_note_ids(&ctx->x.stored_ids, m->header);
	cmpc_msg_head_free(m);
	ERR_clear_error();
}

OSSL_CMP_MSG *cmpc_fetch_answer(cmpc_ctx *ctx, int sent, const unsigned char *tid,
				 size_t tid_len)
{
	long long limit_ms;
	cmpc_rv rv;

	snprintf(ctx->x.what, sizeof(ctx->x.what), "reading the answer to the %s (%s)",
		 cmpc_body_name(sent), ctx->url);
	if (ctx->x.rv != CMPC_OK)
		return NULL;
	if (ctx->transfer_fn == cmpc_http_transfer) {
		cmpc_xfer_fail(ctx, CMPC_ERR_CONFIG,
			       "%s: the %s was stored for the CA (written to a file), so its answer "
			       "does not come over HTTP; give the CA's answer as a file",
			       ctx->x.what, cmpc_body_name(sent));
		return NULL;
	}
	if ((limit_ms = time_left_ms(ctx)) == 0)
		return NULL;
	/* the transport finds the answer by it (cmpc_transaction_id) */
	if (!OPENSSL_buf2hexstr_ex(ctx->last_tid, sizeof(ctx->last_tid), NULL, tid, tid_len, '\0'))
		ctx->last_tid[0] = '\0';
	lower(ctx->last_tid);
	ctx->x.req_type = sent;
	ctx->x.fetching = 1;
	ctx->x.rlen = 0;
	ctx->x.overflow = 0;
	ctx->x.write_oom = 0;
	rv = ctx->transfer_fn(ctx, NULL, 0, (long)limit_ms, ctx->transfer_arg);
	ctx->x.fetching = 0;
	if (ctx->x.stored)
		return NULL;
	transfer_outcome(ctx, rv);
	if (ctx->x.rv != CMPC_OK)
		return NULL;
	return cmpc_msg_response(ctx, ctx->x.what);
}

OSSL_CMP_MSG *cmpc_msg_transfer(OSSL_CMP_CTX *cmp, const OSSL_CMP_MSG *req)
{
	cmpc_ctx *ctx = OSSL_CMP_CTX_get_transfer_cb_arg(cmp);
	unsigned char *der = NULL;
	OSSL_CMP_MSG *rsp = NULL, *edited = NULL;
	long long limit_ms;
	int derlen, type;
	cmpc_rv rv;

	if (ctx == NULL)
		return NULL;
	type = OSSL_CMP_MSG_get_bodytype(req);
	snprintf(ctx->x.what, sizeof(ctx->x.what), "sending the %s to %s", cmpc_body_name(type),
		 ctx->url);
	if (ctx->x.rv != CMPC_OK)
		return NULL;
	if (ctx->x.replay != NULL)
		return cmpc_replay(ctx, req);
	if (type == CMPC_BODY_CERTCONF)
		ctx->x.certconf_sent = 1;
	if (type == CMPC_BODY_POLLREQ && ctx->x.rsp.tid_len > 0 && ctx->x.rsp.nonce_len > 0)
		ctx->x.wait = ctx->x.rsp;
	if ((limit_ms = time_left_ms(ctx)) == 0)
		return NULL;
	note_tid(ctx, req);
	/* key archive: the control goes into the request OpenSSL built */
	if (ctx->archive_der != NULL &&
	    (type == CMPC_BODY_IR || type == CMPC_BODY_CR || type == CMPC_BODY_KUR)) {
		if ((edited = cmpc_archive_edit(ctx, req)) == NULL)
			return NULL;
		req = edited;
	}
	if ((derlen = i2d_OSSL_CMP_MSG(req, &der)) <= 0) {
		cmpc_xfer_fail(ctx, CMPC_ERR_INTERNAL, "%s: cannot DER-encode the request",
			       ctx->x.what);
		goto out;
	}
	/* 3.0 always uses 500 PBM iterations and has no sender setter. */
	if (!cmpc_pbm_reprotect(ctx, &der, &derlen)) {
		cmpc_xfer_fail(
		    ctx, CMPC_ERR_INTERNAL,
		    "%s: cannot apply the PBM parameters to the request (out of memory?)",
		    ctx->x.what);
		goto out;
	}
	ctx->x.req_type = type;
	ctx->x.rlen = 0;
	ctx->x.overflow = 0;
	ctx->x.write_oom = 0;
	snprintf(ctx->x.wait_what, sizeof(ctx->x.wait_what), "the %s", cmpc_body_name(type));
	cmpc_wait_begin(ctx, CMPC_WAIT_ANSWER, limit_ms);
	/* A stop asked for before the message left: it does not leave. */
	if (cmpc_wait_tick(ctx)) {
		cmpc_wait_end(ctx);
		cmpc_xfer_fail(ctx, CMPC_ERR_STOPPED, "%s: stopped before it was sent",
			       ctx->x.what);
		goto out;
	}
	/* a test may kill the client while the CA holds the answer */
	P11E_COV_FLUSH();
	ctx->x.presaved = 0;
	ctx->store_failed = 0;
	rv = ctx->transfer_fn(ctx, der, (size_t)derlen, (long)limit_ms, ctx->transfer_arg);
	ctx->store_failed = ctx->x.presaved && !ctx->x.stored;
	cmpc_wait_end(ctx);
	if (ctx->x.stored) {
		note_stored(ctx, der, derlen, type);
		goto out;
	}
	if (ctx->x.stopped && ctx->x.rv == CMPC_OK)
		cmpc_xfer_fail(ctx, CMPC_ERR_STOPPED, "%s: stopped while waiting for the answer",
			       ctx->x.what);
	transfer_outcome(ctx, rv);
	if (ctx->x.rv == CMPC_OK)
		rsp = cmpc_msg_response(ctx, ctx->x.what);
out:
	OSSL_CMP_MSG_free(edited);
	OPENSSL_free(der);
	return rsp;
}
