/*
 * Continuing a transaction that an earlier process started (RFC 4210
 * 5.3.22 polling, 5.3.21 error).  OpenSSL 3.0 can poll only within the
 * OSSL_CMP_CTX that sent the request, and has no public way to make a
 * pollReq or an error message.  So the header and body are built here with
 * the layer's templates, OpenSSL protects the message
 * (OSSL_CMP_MSG_update_transactionID re-protects), and the answer is
 * verified with OSSL_CMP_validate_msg plus the transactionID and nonce
 * checks OpenSSL would make.  The final ip/cp/kup then goes to OpenSSL as
 * the answer to the request it makes itself (never sent: see cmpc_replay),
 * so that certificate checks and certConf are OpenSSL's as always.
 */
#include "config.h" /* P11E_COV_FLUSH */

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/rand.h>

#include "cmp/cmpc-int.h"

#define NONCE_LEN CMPC_MSG_NONCE_LEN

cmpc_rv cmpc_sleep(cmpc_ctx *ctx, long s, const char *what, int body)
{
	long long end = cmpc_now_ms() + (long long)s * 1000, left;
	struct timespec ts;

	/* a test may kill the client while it waits to poll */
	P11E_COV_FLUSH();
	snprintf(ctx->x.wait_what, sizeof(ctx->x.wait_what), "the %s", cmpc_body_name(body));
	cmpc_wait_begin(ctx, CMPC_WAIT_POLL, (long long)s * 1000);
	/* In slices, so that a stop asked for (a signal's flag) is seen
	 * within a quarter of a second: a signal alone ends only the slice. */
	while ((left = end - cmpc_now_ms()) > 0 && !cmpc_wait_tick(ctx)) {
		if (left > 250)
			left = 250;
		ts.tv_sec = 0;
		ts.tv_nsec = (long)left * 1000000L;
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !cmpc_wait_tick(ctx))
			;
	}
	cmpc_wait_end(ctx);
	if (!ctx->x.stopped)
		return CMPC_OK;
	cmpc_seterr(ctx, "%s: stopped while waiting to poll the CA", what);
	return CMPC_ERR_STOPPED;
}

long long cmpc_now_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		return 0;
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int copy_os(const ASN1_OCTET_STRING *os, unsigned char *out, size_t *outlen)
{
	*outlen = 0;
	if (os == NULL || os->length <= 0 || os->length > CMPC_ID_MAX)
		return 0;
	memcpy(out, os->data, (size_t)os->length);
	*outlen = (size_t)os->length;
	return 1;
}

void cmpc_note_ids(cmpc_ids *ids, const CMPC_HDR *h)
{
	ids->tid_len = ids->nonce_len = 0;
	(void)copy_os(h->transactionID, ids->tid, &ids->tid_len);
	(void)copy_os(h->senderNonce, ids->nonce, &ids->nonce_len);
}

void cmpc_note_response(cmpc_ctx *ctx, const CMPC_HDR *h)
{
	cmpc_note_ids(&ctx->x.rsp, h);
}

OSSL_CMP_MSG *cmpc_replay(cmpc_ctx *ctx, const OSSL_CMP_MSG *req)
{
	OSSL_CMP_MSG *r = ctx->x.replay;
	const ASN1_OCTET_STRING *rn = OSSL_CMP_HDR_get0_recipNonce(OSSL_CMP_MSG_get0_header(r));

	(void)req;
	ctx->x.replay = NULL;
	/* OpenSSL checks the answer's recipNonce against the senderNonce of
	 * its own (unsent) request: point it at the pollReq's nonce. */
	if (rn == NULL || !OSSL_CMP_CTX_set1_senderNonce(ctx->cmp, rn)) {
		OSSL_CMP_MSG_free(r);
		ctx->x.rv = CMPC_ERR_INTERNAL;
		snprintf(ctx->x.msg, sizeof(ctx->x.msg),
			 "cannot hand the CA's answer to OpenSSL (out of memory?)");
		return NULL;
	}
	return r;
}

static int set_dirname(GENERAL_NAME *gn, const X509_NAME *name)
{
	X509_NAME *copy = name != NULL ? X509_NAME_dup(name) : X509_NAME_new();

	if (copy == NULL)
		return 0;
	GENERAL_NAME_set0_value(gn, GEN_DIRNAME, copy);
	return 1;
}

/* The recipient OpenSSL 3.0 would name: configured, else the issuer of
 * the signer certificate, else the NULL-DN. */
static const X509_NAME *recipient(const cmpc_ctx *ctx)
{
	if (ctx->recipient != NULL)
		return ctx->recipient;
	if (ctx->signer_cert != NULL)
		return X509_get_issuer_name(ctx->signer_cert);
	return NULL;
}

OSSL_CMP_MSG *cmpc_msg_build(cmpc_ctx *ctx, const CMPC_BODY *b, const unsigned char *recip,
			     size_t recip_len, const unsigned char *tid, size_t tid_len,
			     unsigned char nonce[CMPC_MSG_NONCE_LEN])
{
	CMPC_PKIMSG *m = NULL;
	CMPC_HDR *h;
	ASN1_OCTET_STRING *t = NULL;
	OSSL_CMP_MSG *msg = NULL;
	unsigned char *der = NULL;
	const unsigned char *q;
	const X509_NAME *sender;
	int len;

	if ((m = (CMPC_PKIMSG *)ASN1_item_new(ASN1_ITEM_rptr(CMPC_PKIMSG))) == NULL)
		goto out;
	h = m->header;
	sender = ctx->signer_cert != NULL ? X509_get_subject_name(ctx->signer_cert) : ctx->sender;
	if (!ASN1_INTEGER_set(h->pvno, 2) || !set_dirname(h->sender, sender) ||
	    !set_dirname(h->recipient, recipient(ctx)) ||
	    (h->messageTime = ASN1_GENERALIZEDTIME_set(NULL, time(NULL))) == NULL ||
	    RAND_bytes(nonce, CMPC_MSG_NONCE_LEN) != 1 ||
	    (h->senderNonce = ASN1_OCTET_STRING_new()) == NULL ||
	    !ASN1_OCTET_STRING_set(h->senderNonce, nonce, CMPC_MSG_NONCE_LEN) ||
	    (recip != NULL &&
	     ((h->recipNonce = ASN1_OCTET_STRING_new()) == NULL ||
	      !ASN1_OCTET_STRING_set(h->recipNonce, recip, (int)recip_len))) ||
	    (h->protectionAlg = X509_ALGOR_new()) == NULL ||
	    !X509_ALGOR_set0(h->protectionAlg, OBJ_nid2obj(NID_id_PasswordBasedMAC), V_ASN1_UNDEF,
			     NULL) ||
	    !cmpc_body_set(m, b))
		goto out;
	/* OpenSSL sets the transactionID from its context and, because a
	 * protectionAlg is present, protects the message. */
	if ((len = ASN1_item_i2d((ASN1_VALUE *)m, &der, ASN1_ITEM_rptr(CMPC_PKIMSG))) <= 0 ||
	    (tid != NULL &&
	     ((t = ASN1_OCTET_STRING_new()) == NULL || !ASN1_OCTET_STRING_set(t, tid, (int)tid_len) ||
	      !OSSL_CMP_CTX_set1_transactionID(ctx->cmp, t))))
		goto out;
	q = der;
	if ((msg = d2i_OSSL_CMP_MSG(NULL, &q, len)) != NULL &&
	    !OSSL_CMP_MSG_update_transactionID(ctx->cmp, msg)) {
		OSSL_CMP_MSG_free(msg);
		msg = NULL;
	}
out:
	ASN1_OCTET_STRING_free(t);
	OPENSSL_free(der);
	cmpc_msg_free(m);
	return msg;
}

/* A message of transaction p with body b, answering p's last senderNonce. */
static OSSL_CMP_MSG *build(cmpc_ctx *ctx, const cmpc_pending *p, const CMPC_BODY *b,
			   unsigned char nonce[NONCE_LEN])
{
	return cmpc_msg_build(ctx, b, p->nonce, p->nonce_len, p->tid, p->tid_len, nonce);
}

/* OpenSSL's transactionID: p's, for the answer it is handed (cmpc_replay). */
static int set_tid(cmpc_ctx *ctx, const cmpc_pending *p)
{
	ASN1_OCTET_STRING *tid = ASN1_OCTET_STRING_new();
	int ok = tid != NULL && ASN1_OCTET_STRING_set(tid, p->tid, (int)p->tid_len) &&
		 OSSL_CMP_CTX_set1_transactionID(ctx->cmp, tid);

	ASN1_OCTET_STRING_free(tid);
	return ok;
}

static int same(const ASN1_OCTET_STRING *os, const unsigned char *v, size_t len)
{
	return os != NULL && (size_t)os->length == len && memcmp(os->data, v, len) == 0;
}

/* As OpenSSL does before it validates a response: the extraCerts become
 * untrusted candidates for the signer's chain (3.0 has no getter for them). */
static int add_extra_certs(cmpc_ctx *ctx)
{
	CMPC_PKIMSG *m = cmpc_msg_decode(ctx->x.rbuf, ctx->x.rlen);
	STACK_OF(X509) *u = OSSL_CMP_CTX_get0_untrusted(ctx->cmp);
	int ok;

	if (m == NULL)
		return 0;
	if (sk_X509_num(m->extraCerts) <= 0)
		ok = 1;
	else if (u == NULL)
		ok = OSSL_CMP_CTX_set1_untrusted(ctx->cmp, m->extraCerts);
	else
		ok = X509_add_certs(u, m->extraCerts,
				    X509_ADD_FLAG_UP_REF | X509_ADD_FLAG_NO_DUP | X509_ADD_FLAG_NO_SS);
	cmpc_msg_free(m);
	return ok;
}

/* The transaction p goes on from a message a store-and-forward transport
 * stored (its senderNonce nonce): the pending callback learns it. */
static cmpc_rv stored(cmpc_ctx *ctx, const cmpc_pending *p, const unsigned char *nonce,
		      size_t nonce_len)
{
	cmpc_pending cur = *p;

	memcpy(cur.sent_nonce, nonce, nonce_len);
	cur.sent_nonce_len = nonce_len;
	if (ctx->pending_fn != NULL)
		ctx->pending_fn(&cur, ctx->pending_arg);
	cmpc_seterr(ctx, "%s", ctx->x.msg);
	return CMPC_ERR_WAITING;
}

/* Sends req (taken) and verifies that the answer is protected (or an
 * unprotected error, where allowed) and belongs to p and to req.  req
 * NULL: the answer to the message p stored earlier (p->sent_nonce, of
 * body type sent; -1: p's request or pollReq), from the store-and-forward
 * transport. */
static cmpc_rv exchange_sent(cmpc_ctx *ctx, const cmpc_pending *p, OSSL_CMP_MSG *req, int sent,
			     const unsigned char *nonce, size_t nonce_len, const char *what,
			     OSSL_CMP_MSG **ret)
{
	OSSL_CMP_MSG *rsp;
	OSSL_CMP_PKIHEADER *hdr;
	char errs[512];
	int type;

	if (sent < 0)
		sent = p->nonce_len == 0 ? cmpc_req_body(p->type) : CMPC_BODY_POLLREQ;
	if (req != NULL) {
		rsp = ctx->msg_transfer(ctx->cmp, req);
		OSSL_CMP_MSG_free(req);
	} else {
		rsp = cmpc_fetch_answer(ctx, sent, p->tid, p->tid_len);
	}
	if (rsp == NULL && ctx->x.stored)
		return stored(ctx, p, nonce, nonce_len);
	if (rsp == NULL) {
		/* No answer, or one refused before verification (not a
		 * PKIMessage, another sender): the transaction stays. */
		ctx->left_open = 1;
		cmpc_seterr(ctx, "%s failed: %s", what, ctx->x.msg);
		return ctx->x.rv != CMPC_OK ? ctx->x.rv : CMPC_ERR_INTERNAL;
	}
	type = OSSL_CMP_MSG_get_bodytype(rsp);
	if (ctx->cr.rsp_unprotected) {
		if (type != CMPC_BODY_ERROR || !ctx->unprotected_errors) {
			cmpc_seterr(ctx,
				    "%s: the CA's answer is not protected; accept unprotected "
				    "error messages only if the CA is known to send them",
				    what);
			goto protocol;
		}
	} else if (!ctx->x.own_verified &&
		   (!add_extra_certs(ctx) || !OSSL_CMP_validate_msg(ctx->cmp, rsp))) {
		cmpc_ossl_errors(errs, sizeof(errs));
		if (ctx->x.signer_msg[0] != '\0')
			cmpc_seterr(ctx,
				    "%s: the CA's answer was not accepted: %s; pin the CA's CMP "
				    "certificate (srv_cert) or its name (expected_sender)",
				    what, ctx->x.signer_msg);
		else
			cmpc_seterr(ctx,
				    "%s: the protection of the CA's answer does not verify: %s; "
				    "check the reference value and secret, or the trust anchors",
				    what, errs);
		goto protocol;
	}
	hdr = OSSL_CMP_MSG_get0_header(rsp);
	if (!same(OSSL_CMP_HDR_get0_transactionID(hdr), p->tid, p->tid_len)) {
		cmpc_seterr(ctx,
			    "%s: the CA's answer belongs to another transaction (transactionID "
			    "differs); report it to the CA operator",
			    what);
		goto protocol;
	}
	if (!same(OSSL_CMP_HDR_get0_recipNonce(hdr), nonce, nonce_len)) {
		cmpc_seterr(ctx,
			    "%s: the CA's answer does not answer this message (recipNonce "
			    "differs): a replayed or misrouted message; report it to the CA "
			    "operator",
			    what);
		goto protocol;
	}
	*ret = rsp;
	return CMPC_OK;
protocol:
	/* Not an answer from the CA to this message: anyone on the path can
	 * send one, so the transaction (and the key waiting for it) stays,
	 * to be polled again or given up by the operator. */
	ctx->left_open = 1;
	OSSL_CMP_MSG_free(rsp);
	return CMPC_ERR_PROTOCOL;
}

static cmpc_rv exchange(cmpc_ctx *ctx, const cmpc_pending *p, OSSL_CMP_MSG *req,
			const unsigned char *nonce, size_t nonce_len, const char *what,
			OSSL_CMP_MSG **ret)
{
	return exchange_sent(ctx, p, req, -1, nonce, nonce_len, what, ret);
}

cmpc_rv cmpc_msg_exchange(cmpc_ctx *ctx, const cmpc_pending *p, OSSL_CMP_MSG *req,
			  const unsigned char *nonce, size_t nonce_len, const char *what,
			  OSSL_CMP_MSG **ret)
{
	return exchange(ctx, p, req, nonce, nonce_len, what, ret);
}

cmpc_rv cmpc_stored_replay(cmpc_ctx *ctx, int sent, const char *what)
{
	cmpc_pending p = ctx->stored_ans;
	OSSL_CMP_MSG *rsp = NULL;
	cmpc_rv rv;

	if (!ctx->have_stored_ans)
		return CMPC_OK;
	/* One answer, once: a later exchange of this context sends again. */
	ctx->have_stored_ans = 0;
	rv = exchange_sent(ctx, &p, NULL, sent, p.sent_nonce, p.sent_nonce_len, what, &rsp);
	if (rv == CMPC_ERR_WAITING) {
		/* not there yet: the stored message is still the one waited for */
		ctx->x.stored_ids.tid_len = p.tid_len;
		memcpy(ctx->x.stored_ids.tid, p.tid, p.tid_len);
		ctx->x.stored_ids.nonce_len = p.sent_nonce_len;
		memcpy(ctx->x.stored_ids.nonce, p.sent_nonce, p.sent_nonce_len);
		return rv;
	}
	if (rv != CMPC_OK)
		return rv;
	/* OpenSSL then takes it for the answer to its own (unsent) request:
	 * the body, the status and what it checks of every answer. */
	if (!set_tid(ctx, &p)) {
		OSSL_CMP_MSG_free(rsp);
		cmpc_seterr(ctx, "%s: cannot hand the CA's answer to OpenSSL (out of memory?)",
			    what);
		return CMPC_ERR_INTERNAL;
	}
	ctx->x.replay = rsp;
	return CMPC_OK;
}

/* The body of rsp, decoded with the layer's templates (its raw DER is
 * still in ctx->x.rbuf). */
static CMPC_BODY *body_of(cmpc_ctx *ctx)
{
	CMPC_PKIMSG *m = cmpc_msg_decode(ctx->x.rbuf, ctx->x.rlen);
	CMPC_BODY *b = cmpc_body_decode(m);

	cmpc_msg_free(m);
	return b;
}

static void freetext(const STACK_OF(ASN1_UTF8STRING) *t, char *buf, size_t len)
{
	size_t off = 0;
	int i, n;

	buf[0] = '\0';
	for (i = 0; i < sk_ASN1_UTF8STRING_num(t) && off + 1 < len; i++) {
		const ASN1_UTF8STRING *s = sk_ASN1_UTF8STRING_value(t, i);

		n = snprintf(buf + off, len - off, "%s%.*s", i > 0 ? "; " : "", s->length,
			     (const char *)s->data);
		if (n < 0)
			break;
		off += (size_t)n < len - off ? (size_t)n : len - off - 1;
	}
}

/* "status text" of an error message the CA sent. */
static void error_text(cmpc_ctx *ctx, char *buf, size_t len)
{
	CMPC_BODY *b = body_of(ctx);
	char st[OSSL_CMP_PKISI_BUFLEN], details[256];
	int n;

	if (b == NULL || b->type != CMPC_SEL_ERROR) {
		snprintf(buf, len, "(undecodable error message)");
	} else {
		if (OSSL_CMP_snprint_PKIStatusInfo(b->value.error->status, st, sizeof(st)) == NULL)
			snprintf(st, sizeof(st), "no status detail");
		freetext(b->value.error->errorDetails, details, sizeof(details));
		n = snprintf(buf, len, "%s", st);
		if (details[0] != '\0' && n > 0 && (size_t)n < len)
			snprintf(buf + n, len - (size_t)n, " (%s)", details);
	}
	cmpc_body_free(b);
	ERR_clear_error();
}

static int final_type(cmpc_req_type type)
{
	switch (type) {
	case CMPC_REQ_IR:
		return CMPC_BODY_IP;
	case CMPC_REQ_KUR:
		return CMPC_BODY_KUP;
	default:
		return CMPC_BODY_CP;
	}
}

/* checkAfter of the pollRep for rid; -1 with errmsg set if there is none
 * or it is out of range. */
static long poll_rep(cmpc_ctx *ctx, int rid, const char *what)
{
	CMPC_BODY *b = body_of(ctx);
	const CMPC_POLLREP *r = NULL;
	char reason[256];
	int64_t id, after = -1;
	int i;

	for (i = 0; b != NULL && b->type == CMPC_SEL_POLLREP &&
		    i < sk_CMPC_POLLREP_num(b->value.pollRep);
	     i++) {
		const CMPC_POLLREP *e = sk_CMPC_POLLREP_value(b->value.pollRep, i);

		if (ASN1_INTEGER_get_int64(&id, e->certReqId) == 1 && id == rid)
			r = e;
	}
	if (r == NULL) {
		cmpc_seterr(ctx, "%s: the CA's pollRep has no entry for certReqId %d; report it to "
				 "the CA operator",
			    what, rid);
	} else if (ASN1_INTEGER_get_int64(&after, r->checkAfter) != 1 || after < 0 ||
		   after > 0x7fffffff) {
		cmpc_seterr(ctx, "%s: the CA's checkAfter is out of range (negative or more than "
				 "2^31-1 s); report it to the CA operator",
			    what);
		after = -1;
	} else if (r->reason != NULL) {
		freetext(r->reason, reason, sizeof(reason));
		cmpc_log(ctx, LOG_INFO, "the CA says: %s", reason);
	}
	cmpc_body_free(b);
	ERR_clear_error();
	return (long)after;
}

cmpc_rv cmpc_poll_resume(cmpc_ctx *ctx, const cmpc_pending *p, const char *what,
			 OSSL_CMP_MSG **ret_final)
{
	return cmpc_poll_until(ctx, p, cmpc_req_body(p->type), final_type(p->type), what,
			       ret_final);
}

cmpc_rv cmpc_poll_until(cmpc_ctx *ctx, const cmpc_pending *p, int sent, int final,
			const char *what, OSSL_CMP_MSG **ret_final)
{
	cmpc_pending cur = *p;
	unsigned char nonce[NONCE_LEN];
	OSSL_CMP_MSG *req, *rsp = NULL;
	CMPC_POLLREQ pr;
	ASN1_INTEGER *rid;
	CMPC_BODY b;
	cmpc_rv rv;
	char txt[1024];
	long after;
	long long left_ms;
	int type, fetched;

	b.value.pollReq = NULL;
	if ((rid = ASN1_INTEGER_new()) == NULL || !ASN1_INTEGER_set(rid, cur.cert_req_id))
		goto oom;
	pr.certReqId = rid;
	b.type = CMPC_SEL_POLLREQ;
	if ((b.value.pollReq = sk_CMPC_POLLREQ_new_null()) == NULL ||
	    !sk_CMPC_POLLREQ_push(b.value.pollReq, &pr))
		goto oom;
	/* The answer to a stored message is read, not asked for; OpenSSL is
	 * told the transaction, which build() does for a pollReq. */
	if (cur.sent_nonce_len > 0 && !set_tid(ctx, &cur))
		goto oom;
	for (;;) {
		fetched = cur.sent_nonce_len > 0;
		if (fetched) {
			rv = exchange(ctx, &cur, NULL, cur.sent_nonce, cur.sent_nonce_len, what, &rsp);
			cur.sent_nonce_len = 0;
		} else {
			if ((req = build(ctx, &cur, &b, nonce)) == NULL)
				goto oom;
			cmpc_log(ctx, LOG_INFO, "sending a pollReq to %s", ctx->url);
			rv = exchange(ctx, &cur, req, nonce, NONCE_LEN, what, &rsp);
		}
		if (rv != CMPC_OK)
			goto out;
		type = OSSL_CMP_MSG_get_bodytype(rsp);
		if (type == final) {
			*ret_final = rsp;
			rsp = NULL;
			rv = CMPC_OK;
			goto out;
		}
		if (type == CMPC_BODY_ERROR) {
			error_text(ctx, txt, sizeof(txt));
			if (ctx->cr.rsp_unprotected) {
				/* Anyone on the path can send one: the
				 * transaction stays, to be polled again. */
				cmpc_seterr(ctx,
					    "%s: an unprotected error message says the "
					    "transaction ended (unverified: it may not come "
					    "from the CA): %s; polling again later",
					    what, txt);
				ctx->left_open = 1;
				rv = CMPC_ERR_PROTOCOL;
				goto out;
			}
			cmpc_seterr(ctx, "%s: the CA ended the transaction: %s", what, txt);
			rv = CMPC_ERR_REJECTED;
			goto out;
		}
		if (type != CMPC_BODY_POLLREP) {
			cmpc_seterr(ctx, "%s: the CA answered the pollReq with %s, neither pollRep "
					 "nor the certificate; report it to the CA operator",
				    what, cmpc_body_name(type));
			rv = CMPC_ERR_PROTOCOL;
			goto out;
		}
		if ((after = poll_rep(ctx, cur.cert_req_id, what)) < 0) {
			rv = CMPC_ERR_PROTOCOL;
			goto out;
		}
		OSSL_CMP_MSG_free(rsp);
		rsp = NULL;
		memcpy(cur.nonce, ctx->x.rsp.nonce, ctx->x.rsp.nonce_len);
		cur.nonce_len = ctx->x.rsp.nonce_len;
		cur.check_after = after;
		if (ctx->pending_fn != NULL)
			ctx->pending_fn(&cur, ctx->pending_arg);
		/* A stored answer was read long after it was written: the
		 * next pollReq is stored at once, for the CA to answer. */
		if (fetched)
			continue;
		left_ms = ctx->x.deadline_ms - cmpc_now_ms();
		if ((long long)after * 1000 >= left_ms) {
			cmpc_seterr(ctx,
				    "%s: the CA still answers 'waiting' and asks to poll again in "
				    "%ld s, after the total timeout of %ld s",
				    what, after, ctx->total_s);
			rv = CMPC_ERR_WAITING;
			goto out;
		}
		cmpc_log(ctx, LOG_INFO, "the CA answered 'waiting'; polling again in %ld s", after);
		if ((rv = cmpc_sleep(ctx, after > 0 ? after : 1, what, sent)) != CMPC_OK)
			goto out;
	}
oom:
	cmpc_ossl_errors(txt, sizeof(txt));
	cmpc_seterr(ctx, "%s: cannot build the pollReq: %s", what, txt);
	rv = CMPC_ERR_INTERNAL;
out:
	OSSL_CMP_MSG_free(rsp);
	sk_CMPC_POLLREQ_free(b.value.pollReq);
	ASN1_INTEGER_free(rid);
	ERR_clear_error();
	return rv;
}

cmpc_rv cmpc_abandon(cmpc_ctx *ctx, const cmpc_pending *p, const char *reason)
{
	const char *what = "CMP error message (abandoning the transaction)";
	unsigned char nonce[NONCE_LEN];
	OSSL_CMP_MSG *req, *rsp = NULL;
	CMPC_ERRMSG em;
	CMPC_BODY b;
	cmpc_rv rv;
	char txt[1024];
	int type;

	if (ctx == NULL || p == NULL)
		return CMPC_ERR_INTERNAL;
	ctx->errmsg[0] = '\0';
	if ((rv = cmpc_xchg_begin(ctx, what)) != CMPC_OK)
		return rv;
	memset(&em, 0, sizeof(em));
	b.type = CMPC_SEL_ERROR;
	b.value.error = &em;
	if ((em.status = OSSL_CMP_STATUSINFO_new(OSSL_CMP_PKISTATUS_rejection, 0,
						  reason != NULL ? reason : "abandoned")) == NULL ||
	    (req = build(ctx, p, &b, nonce)) == NULL) {
		cmpc_ossl_errors(txt, sizeof(txt));
		cmpc_seterr(ctx, "%s: cannot build the message: %s", what, txt);
		rv = CMPC_ERR_INTERNAL;
		goto out;
	}
	cmpc_log(ctx, LOG_INFO, "sending an error message to %s to abandon the transaction",
		 ctx->url);
	if ((rv = exchange(ctx, p, req, nonce, NONCE_LEN, what, &rsp)) != CMPC_OK)
		goto out;
	type = OSSL_CMP_MSG_get_bodytype(rsp);
	if (type == CMPC_BODY_PKICONF) {
		cmpc_log(ctx, LOG_INFO, "the CA confirmed the end of the transaction");
	} else if (type == CMPC_BODY_ERROR) {
		error_text(ctx, txt, sizeof(txt));
		cmpc_log(ctx, LOG_NOTICE, "the CA answered with an error: %s", txt);
	} else {
		cmpc_seterr(ctx, "%s: the CA answered with %s instead of pkiConf", what,
			    cmpc_body_name(type));
		rv = CMPC_ERR_PROTOCOL;
	}
out:
	OSSL_CMP_MSG_free(rsp);
	OSSL_CMP_PKISI_free(em.status);
	cmpc_xchg_end(ctx);
	return rv;
}
