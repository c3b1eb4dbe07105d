/*
 * Certificate requests of every kind (ir, cr, kur, p10cr with their
 * responses, certConf/pkiConf and polling).  ir and p10cr go with PBM or a
 * signer; cr and kur only signed, kur by the certificate being updated.
 */
#include "config.h"

#include <string.h>
#include <syslog.h>

#include <openssl/err.h>
#include <openssl/objects.h>

#include "cmp/cmpc-int.h"

static void reset_exchange(cmpc_ctx *ctx)
{
	cmpc_x_reset(ctx);
	X509_NAME_free(ctx->cr.want_subject);
	GENERAL_NAMES_free(ctx->cr.want_sans);
	memset(&ctx->cr, 0, sizeof(ctx->cr));
}

int cmpc_req_exts(const cmpc_ctx *ctx, int empty_subject, X509_EXTENSIONS **ret)
{
	X509_EXTENSIONS *exts = NULL;
	int i;

	*ret = NULL;
	if (ctx->sans != NULL && X509V3_add1_i2d(&exts, NID_subject_alt_name, ctx->sans,
						 empty_subject, X509V3_ADD_REPLACE) != 1)
		goto fail;
	for (i = 0; i < sk_X509_EXTENSION_num(ctx->req_exts); i++)
		if (X509v3_add_ext(&exts, sk_X509_EXTENSION_value(ctx->req_exts, i), -1) == NULL)
			goto fail;
	*ret = exts;
	return 1;
fail:
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	return 0;
}

/* The template's extensions and validity. */
static int set_template(cmpc_ctx *ctx)
{
	X509_EXTENSIONS *exts = NULL;

	if (!OSSL_CMP_CTX_set_option(ctx->cmp, OSSL_CMP_OPT_VALIDITY_DAYS, ctx->days) ||
	    !cmpc_req_exts(ctx, ctx->subject == NULL || X509_NAME_entry_count(ctx->subject) == 0,
			&exts))
		return 0;
	if (!OSSL_CMP_CTX_set0_reqExtensions(ctx->cmp, exts)) {
		sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
		return 0;
	}
	return 1;
}

/* Per exchange: fresh trust store (OpenSSL may add caPubs to it), no
 * untrusted certificates left from an earlier exchange. */
static int setup_exchange(cmpc_ctx *ctx, EVP_PKEY *key)
{
	OSSL_CMP_CTX *c = ctx->cmp;

	if (!OSSL_CMP_CTX_reinit(c) || !cmpc_srv_trust_setup(ctx))
		return 0;
	/* Drops the extraCerts of an earlier exchange.  Not an empty stack:
	 * 3.0 then leaves the list NULL and fails on the first extraCerts. */
	if (!OSSL_CMP_CTX_set1_untrusted(c, ctx->anchors) || !set_template(ctx) ||
	    !OSSL_CMP_CTX_set_option(c, OSSL_CMP_OPT_MSG_TIMEOUT, (int)ctx->msg_s) ||
	    /* Polling waits are bounded in run(), messages by the transfer
	     * callback: OpenSSL's own total timeout would shorten checkAfter. */
	    !OSSL_CMP_CTX_set_option(c, OSSL_CMP_OPT_TOTAL_TIMEOUT, 0))
		return 0;
	if (!EVP_PKEY_up_ref(key))
		return 0;
	if (!OSSL_CMP_CTX_set0_newPkey(c, 1, key)) {
		EVP_PKEY_free(key);
		return 0;
	}
	ctx->x.key = key;
	return 1;
}

/*
 * Only the verified chain: caPubs are trust anchors chosen by the server,
 * and one that is not on the chain to a configured anchor (say, injected
 * into a kup, where RFC 9483 does not allow them) must not reach the token.
 */
STACK_OF(X509) *cmpc_ca_certs(cmpc_ctx *ctx)
{
	STACK_OF(X509) *out, *pubs;
	int i, ok = 1, ignored = 0;

	if ((out = sk_X509_new_null()) == NULL)
		return NULL;
	for (i = 1; ok && i < sk_X509_num(ctx->x.chain); i++)
		ok = X509_add_cert(out, sk_X509_value(ctx->x.chain, i),
				   X509_ADD_FLAG_UP_REF | X509_ADD_FLAG_NO_DUP);
	pubs = OSSL_CMP_CTX_get1_caPubs(ctx->cmp);
	for (i = 0; i < sk_X509_num(pubs); i++)
		if (X509_find_by_issuer_and_serial(
			out, X509_get_issuer_name(sk_X509_value(pubs, i)),
			(ASN1_INTEGER *)X509_get0_serialNumber(sk_X509_value(pubs, i))) == NULL)
			ignored++;
	if (ignored > 0)
		cmpc_log(ctx, LOG_WARNING,
			 "ignored %d caPubs certificate(s) that are not on the verified chain",
			 ignored);
	sk_X509_pop_free(pubs, X509_free);
	if (!ok) {
		sk_X509_pop_free(out, X509_free);
		return NULL;
	}
	return out;
}

static const char *req_what(cmpc_req_type type)
{
	switch (type) {
	case CMPC_REQ_IR:
		return "CMP initialization request (ir)";
	case CMPC_REQ_CR:
		return "CMP certification request (cr)";
	case CMPC_REQ_KUR:
		return "CMP key update request (kur)";
	case CMPC_REQ_P10CR:
		return "CMP PKCS#10 request (p10cr)";
	}
	return "CMP request";
}

/* The SANs a CSR asks for (NULL: none or unreadable). */
static GENERAL_NAMES *csr_sans(X509_REQ *csr)
{
	STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(csr);
	GENERAL_NAMES *sans = NULL;

	if (exts != NULL)
		sans = X509V3_get_d2i(exts, NID_subject_alt_name, NULL, NULL);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	ERR_clear_error();
	return sans;
}

/* A software copy of key's public half.  The CSR must not hold the token
 * key itself: OpenSSL copies and frees the CSR, and freeing a libp11 key's
 * EC data twice crashes. */
static EVP_PKEY *public_copy(EVP_PKEY *key)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	EVP_PKEY *pub = NULL;
	int n = i2d_PUBKEY(key, &der);

	if (n > 0) {
		p = der;
		pub = d2i_PUBKEY(NULL, &p, n);
	}
	OPENSSL_free(der);
	return pub;
}

/* A CSR for newkey from the subject, SANs and extensions, signed by
 * newkey (the token). */
static cmpc_rv make_csr(cmpc_ctx *ctx, EVP_PKEY *newkey, const char *what, X509_REQ **ret)
{
	X509_REQ *req = NULL;
	STACK_OF(X509_EXTENSION) *exts = NULL;
	EVP_PKEY *pub = NULL;
	char why[512];

	if (ctx->subject == NULL || X509_NAME_entry_count(ctx->subject) == 0) {
		cmpc_seterr(ctx,
			    "%s: no subject set, so no CSR can be made: set the subject or "
			    "give a CSR",
			    what);
		return CMPC_ERR_CONFIG;
	}
	if ((req = X509_REQ_new()) == NULL || !X509_REQ_set_version(req, 0) ||
	    !X509_REQ_set_subject_name(req, ctx->subject) || (pub = public_copy(newkey)) == NULL ||
	    !X509_REQ_set_pubkey(req, pub))
		goto oom;
	EVP_PKEY_free(pub);
	pub = NULL;
	/* the subject is not empty here */
	if (!cmpc_req_exts(ctx, 0, &exts) || (exts != NULL && !X509_REQ_add_extensions(req, exts)))
		goto oom;
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	exts = NULL;
	if (X509_REQ_sign(req, newkey, EVP_sha256()) <= 0) {
		cmpc_ossl_errors(why, sizeof(why));
		cmpc_seterr(ctx,
			    "%s: cannot sign the CSR with the new key: %s; check that the key can "
			    "sign (token present and logged in) and is of a supported type",
			    what, why);
		X509_REQ_free(req);
		return CMPC_ERR_KEY;
	}
	*ret = req;
	return CMPC_OK;
oom:
	EVP_PKEY_free(pub);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_free(req);
	ERR_clear_error();
	cmpc_seterr(ctx, "%s: out of memory making the CSR", what);
	return CMPC_ERR_INTERNAL;
}

/* generalInfo id-it-certProfile (RFC 9480 5.1.1.4): SEQUENCE OF UTF8String. */
static int push_profile(cmpc_ctx *ctx)
{
	STACK_OF(ASN1_TYPE) *seq = NULL;
	ASN1_TYPE *elem = NULL, *val = NULL;
	ASN1_UTF8STRING *u = NULL;
	ASN1_STRING *enc = NULL;
	ASN1_OBJECT *oid = NULL;
	OSSL_CMP_ITAV *itav = NULL;
	unsigned char *der = NULL;
	int len, ok = 0;

	if (ctx->cert_profile == NULL)
		return 1;
	if ((seq = sk_ASN1_TYPE_new_null()) == NULL || (elem = ASN1_TYPE_new()) == NULL ||
	    (u = ASN1_UTF8STRING_new()) == NULL || !ASN1_STRING_set(u, ctx->cert_profile, -1))
		goto out;
	ASN1_TYPE_set(elem, V_ASN1_UTF8STRING, u);
	u = NULL;
	if (!sk_ASN1_TYPE_push(seq, elem))
		goto out;
	elem = NULL;
	if ((len = i2d_ASN1_SEQUENCE_ANY(seq, &der)) <= 0 || (enc = ASN1_STRING_new()) == NULL ||
	    !ASN1_STRING_set(enc, der, len) || (val = ASN1_TYPE_new()) == NULL)
		goto out;
	ASN1_TYPE_set(val, V_ASN1_SEQUENCE, enc);
	enc = NULL;
	if ((oid = OBJ_txt2obj("1.3.6.1.5.5.7.4.21", 1)) == NULL ||
	    (itav = OSSL_CMP_ITAV_create(oid, val)) == NULL)
		goto out;
	oid = NULL;
	val = NULL;
	if (!OSSL_CMP_CTX_push0_geninfo_ITAV(ctx->cmp, itav))
		goto out;
	itav = NULL;
	ok = 1;
out:
	OSSL_CMP_ITAV_free(itav);
	ASN1_OBJECT_free(oid);
	ASN1_TYPE_free(val);
	ASN1_STRING_free(enc);
	OPENSSL_free(der);
	ASN1_UTF8STRING_free(u);
	ASN1_TYPE_free(elem);
	sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
	return ok;
}

/* What the request asks for, as the certConf callback checks it. */
static int set_expected(cmpc_ctx *ctx, cmpc_req_type type, X509 *oldcert, X509_REQ *user_csr)
{
	const X509_NAME *subj = NULL;

	if (type == CMPC_REQ_P10CR && user_csr != NULL) {
		subj = X509_REQ_get_subject_name(user_csr);
		ctx->cr.want_sans = csr_sans(user_csr);
	} else {
		if (ctx->subject != NULL && X509_NAME_entry_count(ctx->subject) > 0)
			subj = ctx->subject;
		else if (type == CMPC_REQ_KUR)
			subj = X509_get_subject_name(oldcert);
		if (ctx->sans != NULL && (ctx->cr.want_sans = ASN1_item_dup(
					      ASN1_ITEM_rptr(GENERAL_NAMES), ctx->sans)) == NULL)
			return 0;
	}
	if (subj != NULL && X509_NAME_entry_count(subj) > 0 &&
	    (ctx->cr.want_subject = X509_NAME_dup(subj)) == NULL)
		return 0;
	return 1;
}

/* Checks that need no server; CMPC_OK or the failure (errmsg set). */
static cmpc_rv check_config(cmpc_ctx *ctx, cmpc_req_type type, EVP_PKEY *newkey, X509 *oldcert,
			    X509_REQ *csr, const char *what)
{
	if (ctx->url == NULL) {
		cmpc_seterr(ctx, "%s: no CMP server URL set: configure the server URL", what);
		return CMPC_ERR_CONFIG;
	}
	if (type == CMPC_REQ_CR && ctx->signer_cert == NULL) {
		cmpc_seterr(ctx,
			    "%s: a cr is signed, and no signer is set: set the certificate "
			    "and key that authenticate the request",
			    what);
		return CMPC_ERR_CONFIG;
	}
	if (type == CMPC_REQ_KUR) {
		if (oldcert == NULL) {
			cmpc_seterr(ctx, "%s: no certificate to update given", what);
			return CMPC_ERR_CONFIG;
		}
		if (ctx->signer_cert == NULL || X509_cmp(ctx->signer_cert, oldcert) != 0) {
			cmpc_seterr(ctx,
				    "%s: a kur must be signed with the certificate being updated "
				    "and its key: set that certificate and key as the signer",
				    what);
			return CMPC_ERR_CONFIG;
		}
	}
	if (ctx->signer_cert == NULL && !ctx->have_pbm) {
		cmpc_seterr(ctx,
			    "%s: no reference value and secret set: configure the ones the "
			    "CA gave for this enrollment (or a signer certificate and key)",
			    what);
		return CMPC_ERR_CONFIG;
	}
	if (ctx->signer_cert != NULL && ctx->sender != NULL &&
	    X509_NAME_cmp(ctx->sender, X509_get_subject_name(ctx->signer_cert)) != 0) {
		cmpc_seterr(ctx,
			    "%s: a sender name other than the signer certificate's subject is set; "
			    "with signature protection the sender is that subject (RFC 4210 "
			    "5.1.1): remove the sender setting",
			    what);
		return CMPC_ERR_CONFIG;
	}
	if (type == CMPC_REQ_P10CR && csr != NULL &&
	    (X509_REQ_get0_pubkey(csr) == NULL ||
	     EVP_PKEY_eq(X509_REQ_get0_pubkey(csr), newkey) != 1)) {
		ERR_clear_error();
		cmpc_seterr(ctx,
			    "%s: the CSR is not for the new key: give a CSR signed by it, or "
			    "none to have one made",
			    what);
		return CMPC_ERR_CONFIG;
	}
	if (sk_X509_num(ctx->anchors) <= 0) {
		cmpc_seterr(ctx,
			    "%s: no trust anchors loaded, so the issued certificate could not "
			    "be verified: configure the CA's root certificate as trust anchor",
			    what);
		return CMPC_ERR_CONFIG;
	}
	return CMPC_OK;
}

/* Protection and per-type request fields of this exchange. */
static int setup_request(cmpc_ctx *ctx, cmpc_req_type type, X509 *oldcert, X509_REQ *csr)
{
	OSSL_CMP_CTX *c = ctx->cmp;
	int pbm = ctx->signer_cert == NULL && type != CMPC_REQ_KUR;

	/* Never PBM for kur or with a signer: 3.0 picks PBM when it has a secret. */
	if (!OSSL_CMP_CTX_set1_secretValue(c, pbm ? ctx->pbm_secret : NULL,
					   pbm ? (int)ctx->pbm_secret_len : 0) ||
	    !OSSL_CMP_CTX_set1_oldCert(c, type == CMPC_REQ_KUR ? oldcert : NULL) ||
	    !OSSL_CMP_CTX_set1_p10CSR(c, type == CMPC_REQ_P10CR ? csr : NULL) ||
	    !OSSL_CMP_CTX_reset_geninfo_ITAVs(c) || !push_profile(ctx))
		return 0;
	return 1;
}

int cmpc_req_body(cmpc_req_type type)
{
	switch (type) {
	case CMPC_REQ_IR:
		return CMPC_BODY_IR;
	case CMPC_REQ_CR:
		return CMPC_BODY_CR;
	case CMPC_REQ_KUR:
		return CMPC_BODY_KUR;
	case CMPC_REQ_P10CR:
		return CMPC_BODY_P10CR;
	}
	return -1;
}

/*
 * The request (or, after cmpc_resume's polling, OpenSSL's processing of
 * the CA's final answer), with polling driven here rather than inside
 * OpenSSL: after each verified "waiting" the pending callback learns what
 * continues the transaction, and the wait is bounded by the total timeout.
 * NULL: failed or still waiting (*ret_rv says which).
 */
/* Tells the caller what continues the transaction: the CA's last answer
 * (verified, "waiting": the last response, or when a later one was
 * forged, the one kept when OpenSSL polled) and when to ask again. */
static void note_pending(cmpc_ctx *ctx, cmpc_req_type type, int after, const cmpc_ids *from)
{
	cmpc_pending pend;

	memset(&pend, 0, sizeof(pend));
	pend.type = type;
	memcpy(pend.tid, from->tid, from->tid_len);
	pend.tid_len = from->tid_len;
	memcpy(pend.nonce, from->nonce, from->nonce_len);
	pend.nonce_len = from->nonce_len;
	pend.cert_req_id = type == CMPC_REQ_P10CR ? -1 : 0;
	pend.check_after = after;
	if (ctx->pending_fn != NULL)
		ctx->pending_fn(&pend, ctx->pending_arg);
}

/*
 * A store-and-forward transport stored the last message.  A certConf: the
 * certificate was verified and accepted (kept by the accept callback), and
 * only the CA's pkiConf is not awaited, so the request succeeded.  A
 * request or pollReq: the transaction waits for the CA's answer to it.
 */
/* The transaction of type as it waits for the answer to the stored
 * message with ids (of body ctx->x.req_type). */
static void stored_pending(cmpc_ctx *ctx, cmpc_req_type type, const cmpc_ids *ids, int body,
			   cmpc_pending *pend)
{
	memset(pend, 0, sizeof(*pend));
	pend->type = type;
	memcpy(pend->tid, ids->tid, ids->tid_len);
	pend->tid_len = ids->tid_len;
	memcpy(pend->sent_nonce, ids->nonce, ids->nonce_len);
	pend->sent_nonce_len = ids->nonce_len;
	/* a stored pollReq answers the CA's last "waiting" */
	if (body == CMPC_BODY_POLLREQ) {
		memcpy(pend->nonce, ctx->x.wait.nonce, ctx->x.wait.nonce_len);
		pend->nonce_len = ctx->x.wait.nonce_len;
	}
	pend->cert_req_id = type == CMPC_REQ_P10CR ? -1 : 0;
}

void cmpc_certreq_presave(cmpc_ctx *ctx, const cmpc_ids *ids)
{
	cmpc_pending pend;

	if (ctx->x.cr_type == 0 || ctx->pending_fn == NULL || ids->tid_len == 0 ||
	    ids->nonce_len == 0 ||
	    (ctx->x.req_type != cmpc_req_body((cmpc_req_type)(ctx->x.cr_type - 1)) &&
	     ctx->x.req_type != CMPC_BODY_POLLREQ))
		return;
	stored_pending(ctx, (cmpc_req_type)(ctx->x.cr_type - 1), ids, ctx->x.req_type, &pend);
	ctx->x.presaved = 1;
	ctx->pending_fn(&pend, ctx->pending_arg);
}

static X509 *stored(cmpc_ctx *ctx, cmpc_req_type type, const char *what, cmpc_rv *ret_rv)
{
	X509 *cert = OSSL_CMP_CTX_get0_newCert(ctx->cmp);
	cmpc_pending pend;

	ERR_clear_error();
	if (ctx->x.stored_type == CMPC_BODY_CERTCONF) {
		if (cert != NULL && !ctx->x.cert_rejected && ctx->x.chain != NULL) {
			cmpc_log(ctx, LOG_INFO, "%s", ctx->x.msg);
			return cert;
		}
		/* the rejection in the certConf, stored too */
		*ret_rv = cmpc_classify_failure(ctx, what);
		return NULL;
	}
	stored_pending(ctx, type, &ctx->x.stored_ids, ctx->x.stored_type, &pend);
	if (ctx->pending_fn != NULL)
		ctx->pending_fn(&pend, ctx->pending_arg);
	cmpc_seterr(ctx, "%s", ctx->x.msg);
	*ret_rv = CMPC_ERR_WAITING;
	return NULL;
}

static X509 *run(cmpc_ctx *ctx, cmpc_req_type type, const char *what, cmpc_rv *ret_rv)
{
	int res, after;
	long long left_ms;

	for (;;) {
		after = 0;
		cmpc_log_enter(ctx);
		res = OSSL_CMP_try_certreq(ctx->cmp, cmpc_req_body(type), NULL, &after);
		cmpc_log_leave();
		if (res == 1)
			return OSSL_CMP_CTX_get0_newCert(ctx->cmp);
		if (ctx->x.stored)
			return stored(ctx, type, what, ret_rv);
		/*
		 * OpenSSL answers a "waiting" ip/cp/kup at once with a pollReq
		 * of its own.  When the total timeout runs out before that is
		 * answered (a busy machine), the transaction still goes on
		 * from the CA's verified "waiting": keep it for a resume.
		 */
		if (res == 0 && ctx->x.total_timeout_hit && ctx->x.rsp.tid_len > 0 &&
		    ctx->x.rsp.nonce_len > 0 &&
		    OSSL_CMP_CTX_get_status(ctx->cmp) == OSSL_CMP_PKISTATUS_waiting) {
			note_pending(ctx, type, 0, &ctx->x.rsp);
			*ret_rv = cmpc_classify_failure(ctx, what);
			return NULL;
		}
		if (res != -1 || ctx->x.rsp.tid_len == 0 || ctx->x.rsp.nonce_len == 0) {
			*ret_rv = cmpc_classify_failure(ctx, what);
			/* After the CA's verified "waiting", an answer to the
			 * pollReq that fails the checks (protection, signer,
			 * transactionID, nonce, sender, not a PKIMessage) may
			 * come from anyone on the path: it ends nothing, the
			 * transaction stays, from that "waiting". */
			if (*ret_rv == CMPC_ERR_PROTOCOL && ctx->x.unverified &&
			    ctx->x.wait.tid_len > 0 && ctx->x.wait.nonce_len > 0) {
				note_pending(ctx, type, 0, &ctx->x.wait);
				ctx->left_open = 1;
			}
			return NULL;
		}
		note_pending(ctx, type, after, &ctx->x.rsp);
		left_ms = ctx->x.deadline_ms - cmpc_now_ms();
		if ((long long)after * 1000 >= left_ms) {
			ERR_clear_error();
			cmpc_seterr(ctx,
				    "%s: the CA answered 'waiting' and asks to poll again in %d s, "
				    "after the total timeout of %ld s",
				    what, after, ctx->total_s);
			*ret_rv = CMPC_ERR_WAITING;
			return NULL;
		}
		cmpc_log(ctx, LOG_INFO, "the CA answered 'waiting'; polling again in %d s", after);
		if ((*ret_rv = cmpc_sleep(ctx, after > 0 ? after : 1, what, cmpc_req_body(type))) != CMPC_OK)
			return NULL;
	}
}

static cmpc_rv certreq(cmpc_ctx *ctx, cmpc_req_type type, EVP_PKEY *newkey, X509 *oldcert,
		       X509_REQ *csr, X509 **ret_cert, STACK_OF(X509) **ret_cacerts,
		       const cmpc_pending *resume)
{
	const char *what = req_what(type);
	STACK_OF(X509) *cacerts = NULL;
	X509_REQ *own_csr = NULL;
	X509 *cert = NULL;
	cmpc_rv rv = CMPC_OK;

	if (ctx == NULL)
		return CMPC_ERR_INTERNAL;
	ctx->errmsg[0] = '\0';
	ctx->left_open = 0;
	if (newkey == NULL || ret_cert == NULL || cmpc_req_body(type) < 0) {
		cmpc_seterr(ctx,
			    "%s: no key, no place for the certificate or an unknown request "
			    "type given",
			    what);
		return CMPC_ERR_INTERNAL;
	}
	if (resume != NULL &&
	    (resume->tid_len == 0 || resume->tid_len > CMPC_ID_MAX ||
	     resume->nonce_len > CMPC_ID_MAX || resume->sent_nonce_len > CMPC_ID_MAX ||
	     (resume->nonce_len == 0 && resume->sent_nonce_len == 0))) {
		cmpc_seterr(ctx, "%s: the saved transaction lacks its transactionID or nonce", what);
		return CMPC_ERR_CONFIG;
	}
	if ((rv = check_config(ctx, type, newkey, oldcert, csr, what)) != CMPC_OK)
		return rv;

	reset_exchange(ctx);
	ctx->store_failed = 0;
	ERR_clear_error();
	if (type == CMPC_REQ_P10CR && csr == NULL) {
		if ((rv = make_csr(ctx, newkey, what, &own_csr)) != CMPC_OK)
			goto out;
	}
	if (!set_expected(ctx, type, oldcert, csr) || !setup_exchange(ctx, newkey) ||
	    !setup_request(ctx, type, oldcert, csr != NULL ? csr : own_csr)) {
		cmpc_seterr(ctx, "%s: cannot set up the CMP context (out of memory?)", what);
		rv = CMPC_ERR_INTERNAL;
		goto out;
	}
	if ((rv = cmpc_transfer_prepare(ctx)) != CMPC_OK)
		goto out;
	ctx->x.deadline_ms = cmpc_now_ms() + (long long)ctx->total_s * 1000;
	ctx->x.cr_type = (int)type + 1;

	if (resume != NULL) {
		/* Polls with messages of its own until the CA sends the answer,
		 * which OpenSSL then takes as the answer to its own request. */
		if ((rv = cmpc_poll_resume(ctx, resume, what, &ctx->x.replay)) != CMPC_OK)
			goto out;
	} else {
		cmpc_log(ctx, LOG_INFO, "sending a %s to %s, protected by %s", what, ctx->url,
			 ctx->signer_cert != NULL ? "signature" : "PBM");
	}
	cert = run(ctx, type, what, &rv);
	if (cert == NULL)
		goto out;
	if (ctx->x.chain == NULL) {
		/* Cannot happen: OpenSSL calls the certConf callback before success. */
		cmpc_seterr(ctx, "%s: the certificate was not verified (no certConf callback)",
			    what);
		rv = CMPC_ERR_INTERNAL;
		goto out;
	}
	if (ret_cacerts != NULL && (cacerts = cmpc_ca_certs(ctx)) == NULL) {
		cmpc_seterr(ctx, "%s: out of memory collecting the CA certificates", what);
		rv = CMPC_ERR_INTERNAL;
		goto out;
	}
	if (!X509_up_ref(cert)) {
		sk_X509_pop_free(cacerts, X509_free);
		cmpc_seterr(ctx, "%s: out of memory", what);
		rv = CMPC_ERR_INTERNAL;
		goto out;
	}
	*ret_cert = cert;
	if (ret_cacerts != NULL)
		*ret_cacerts = cacerts;
	cmpc_log(ctx, LOG_INFO, "certificate received and verified, %d CA certificate(s)",
		 cacerts != NULL ? sk_X509_num(cacerts) : 0);
	rv = CMPC_OK;
out:
	/* Drop the references to the token keys: their owner may unload them.
	 * The secret goes back only in PBM mode. */
	(void)OSSL_CMP_CTX_set0_newPkey(ctx->cmp, 1, NULL);
	(void)OSSL_CMP_CTX_set1_oldCert(ctx->cmp, NULL);
	(void)OSSL_CMP_CTX_set1_p10CSR(ctx->cmp, NULL);
	(void)OSSL_CMP_CTX_reset_geninfo_ITAVs(ctx->cmp);
	if (ctx->signer_cert == NULL && ctx->pbm_secret != NULL)
		(void)OSSL_CMP_CTX_set1_secretValue(ctx->cmp, ctx->pbm_secret,
						    (int)ctx->pbm_secret_len);
	X509_REQ_free(own_csr);
	reset_exchange(ctx);
	ERR_clear_error();
	return rv;
}

cmpc_rv cmpc_certreq(cmpc_ctx *ctx, cmpc_req_type type, EVP_PKEY *newkey, X509 *oldcert,
		     X509_REQ *csr, X509 **ret_cert, STACK_OF(X509) **ret_cacerts)
{
	return certreq(ctx, type, newkey, oldcert, csr, ret_cert, ret_cacerts, NULL);
}

cmpc_rv cmpc_resume(cmpc_ctx *ctx, const cmpc_pending *p, EVP_PKEY *newkey, X509 *oldcert,
		    X509_REQ *csr, X509 **ret_cert, STACK_OF(X509) **ret_cacerts)
{
	if (p == NULL)
		return CMPC_ERR_INTERNAL;
	return certreq(ctx, p->type, newkey, oldcert, csr, ret_cert, ret_cacerts, p);
}

cmpc_rv cmpc_ir(cmpc_ctx *ctx, EVP_PKEY *key, X509 **ret_cert, STACK_OF(X509) **ret_cacerts)
{
	return cmpc_certreq(ctx, CMPC_REQ_IR, key, NULL, NULL, ret_cert, ret_cacerts);
}
