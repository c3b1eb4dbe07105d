/*
 * Turning a failed OSSL_CMP_exec_* into a cmpc_rv and a message that says
 * what failed, why, and what to do.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <openssl/cmperr.h>
#include <openssl/err.h>

#include "cmp/cmpc-int.h"

#define MAX_CODES 16

/* Drains the error queue into buf; codes (if not NULL) gets the CMP
 * reasons seen.  Returns the number of CMP reasons stored. */
static int drain_errors(char *buf, size_t len, int *codes, int max_codes)
{
	const char *data, *reason;
	unsigned long e, last = 0;
	size_t off = 0;
	int flags, n, ncodes = 0;
	char tmp[256];

	buf[0] = '\0';
	while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
		if (codes != NULL && ERR_GET_LIB(e) == ERR_LIB_CMP && ncodes < max_codes)
			codes[ncodes++] = ERR_GET_REASON(e);
		if (e == last && (flags & ERR_TXT_STRING) == 0)
			continue;
		last = e;
		if ((reason = ERR_reason_error_string(e)) == NULL) {
			ERR_error_string_n(e, tmp, sizeof(tmp));
			reason = tmp;
		}
		if (off >= len - 1)
			continue;
		n = snprintf(buf + off, len - off, "%s%s%s%s%s", off > 0 ? "; " : "", reason,
			     (flags & ERR_TXT_STRING) && data != NULL && *data != '\0' ? " (" : "",
			     (flags & ERR_TXT_STRING) && data != NULL ? data : "",
			     (flags & ERR_TXT_STRING) && data != NULL && *data != '\0' ? ")" : "");
		if (n > 0)
			off += (size_t)n < len - off ? (size_t)n : len - off - 1;
	}
	if (buf[0] == '\0')
		snprintf(buf, len, "no detail from OpenSSL");
	return ncodes;
}

int cmpc_ossl_oom(void)
{
	return ERR_GET_REASON(ERR_peek_error()) == ERR_R_MALLOC_FAILURE ||
	       ERR_GET_REASON(ERR_peek_last_error()) == ERR_R_MALLOC_FAILURE;
}

void cmpc_ossl_errors(char *buf, size_t len)
{
	(void)drain_errors(buf, len, NULL, 0);
}

static int has_code(const int *codes, int n, int code)
{
	int i;

	for (i = 0; i < n; i++)
		if (codes[i] == code)
			return 1;
	return 0;
}

static const char *protocol_hint(const int *codes, int n)
{
	if (has_code(codes, n, CMP_R_WRONG_PBM_VALUE) || has_code(codes, n, CMP_R_MISSING_SECRET) ||
	    has_code(codes, n, CMP_R_MISSING_PBM_SECRET))
		return "the MAC protecting the response did not verify: check the reference value "
		       "and secret";
	if (has_code(codes, n, CMP_R_ERROR_VALIDATING_SIGNATURE) ||
	    has_code(codes, n, CMP_R_NO_SUITABLE_SENDER_CERT) ||
	    has_code(codes, n, CMP_R_SRVCERT_DOES_NOT_VALIDATE_MSG) ||
	    has_code(codes, n, CMP_R_MISSING_TRUST_ANCHOR) ||
	    has_code(codes, n, CMP_R_MISSING_TRUST_STORE))
		return "the signature protecting the response did not verify: check that the trust "
		       "anchors hold the root of the CMP server's certificate";
	if (has_code(codes, n, CMP_R_MISSING_PROTECTION) ||
	    has_code(codes, n, CMP_R_ERROR_VALIDATING_PROTECTION))
		return "the response protection did not verify: check the reference value and "
		       "secret, and the trust anchors";
	if (has_code(codes, n, CMP_R_TRANSACTIONID_UNMATCHED) ||
	    has_code(codes, n, CMP_R_RECIPNONCE_UNMATCHED) ||
	    has_code(codes, n, CMP_R_BAD_REQUEST_ID) ||
	    has_code(codes, n, CMP_R_CERTRESPONSE_NOT_FOUND))
		return "the response does not belong to this request: check that nothing between "
		       "client and CA (a caching proxy) mixes up messages, and report it to the CA "
		       "operator";
	if (has_code(codes, n, CMP_R_TOTAL_TIMEOUT))
		return "the total timeout ran out: try again later or raise it";
	if (has_code(codes, n, CMP_R_UNEXPECTED_PVNO) ||
	    has_code(codes, n, CMP_R_UNEXPECTED_PKIBODY))
		return "the server answered with a message this client does not expect: check that "
		       "the URL points at a CMP server that supports this request";
	return "check the server URL, and the CA's log";
}

/* The answer did not pass the checks that make it the CA's. */
static int unverified(const int *codes, int n)
{
	static const int reasons[] = {
		CMP_R_WRONG_PBM_VALUE,		 CMP_R_MISSING_SECRET,
		CMP_R_MISSING_PBM_SECRET,	 CMP_R_ERROR_VALIDATING_SIGNATURE,
		CMP_R_NO_SUITABLE_SENDER_CERT,	 CMP_R_SRVCERT_DOES_NOT_VALIDATE_MSG,
		CMP_R_MISSING_TRUST_ANCHOR,	 CMP_R_MISSING_TRUST_STORE,
		CMP_R_MISSING_PROTECTION,	 CMP_R_ERROR_VALIDATING_PROTECTION,
		CMP_R_TRANSACTIONID_UNMATCHED,	 CMP_R_RECIPNONCE_UNMATCHED,
	};
	size_t i;

	for (i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		if (has_code(codes, n, reasons[i]))
			return 1;
	return 0;
}

static const char *rejection_hint(int fail_info)
{
	if (fail_info < 0)
		return "ask the CA operator why";
	if (fail_info &
	    (OSSL_CMP_CTX_FAILINFO_badMessageCheck | OSSL_CMP_CTX_FAILINFO_wrongIntegrity |
	     OSSL_CMP_CTX_FAILINFO_notAuthorized))
		return "check the reference value and secret, and that they are still valid";
	if (fail_info & OSSL_CMP_CTX_FAILINFO_badPOP)
		return "the CA could not verify the proof of possession made with the token key";
	if (fail_info & (OSSL_CMP_CTX_FAILINFO_badCertTemplate | OSSL_CMP_CTX_FAILINFO_badRequest |
			 OSSL_CMP_CTX_FAILINFO_unacceptedExtension | OSSL_CMP_CTX_FAILINFO_badAlg))
		return "check the subject, SANs and key type against the CA's policy";
	if (fail_info & (OSSL_CMP_CTX_FAILINFO_systemUnavail | OSSL_CMP_CTX_FAILINFO_systemFailure))
		return "the CA has a problem: try again later";
	return "ask the CA operator why";
}

static const char *const status_names[] = {
	"accepted", "grantedWithMods", "rejection", "waiting", "revocationWarning",
	"revocationNotification", "keyUpdateWarning",
};

/* RFC 4210 PKIFailureInfo, bit by bit. */
static const char *const failinfo_names[] = {
	"badAlg", "badMessageCheck", "badRequest", "badTime", "badCertId", "badDataFormat",
	"wrongAuthority", "incorrectData", "missingTimeStamp", "badPOP", "certRevoked",
	"certConfirmed", "wrongIntegrity", "badRecipientNonce", "timeNotAvailable",
	"unacceptedPolicy", "unacceptedExtension", "addInfoNotAvailable", "badSenderNonce",
	"badCertTemplate", "signerNotTrusted", "transactionIdInUse", "unsupportedVersion",
	"notAuthorized", "systemUnavail", "systemFailure", "duplicateCertReq",
};

const char *cmpc_status_name(int status)
{
	return status >= 0 && (size_t)status < sizeof(status_names) / sizeof(status_names[0])
		       ? status_names[status]
		       : NULL;
}

size_t cmpc_failinfo_names(int bits, char *out, size_t len)
{
	size_t i, o = 0;
	int n;

	if (len == 0)
		return 0;
	out[0] = '\0';
	for (i = 0; i < sizeof(failinfo_names) / sizeof(failinfo_names[0]) && bits > 0; i++) {
		if ((bits & (1 << i)) == 0)
			continue;
		n = snprintf(out + o, len - o, "%s%s", o > 0 ? " " : "", failinfo_names[i]);
		if (n < 0 || (size_t)n >= len - o) {
			out[o] = '\0';
			break;
		}
		o += (size_t)n;
	}
	return o;
}

int cmpc_rejection(const cmpc_ctx *ctx)
{
	return ctx != NULL && ctx->rejected ? ctx->rej_fail_info : -1;
}

/* The CA's PKIStatusInfo as OpenSSL words it ("PKIStatus: rejection;
 * PKIFailureInfo: badPOP; StatusString: \"...\""), but into a buffer of its
 * own: OSSL_CMP_CTX_snprint_PKIStatus() drops the whole detail when a
 * text outgrows its 1 KiB.  The CA's texts are cut at CMPC_CA_TEXT_MAX
 * bytes, never within a character, and say so. */
static void status_text(const cmpc_ctx *ctx, char *buf, size_t len)
{
	const char *name = cmpc_status_name(OSSL_CMP_CTX_get_status(ctx->cmp));
	OSSL_CMP_PKIFREETEXT *texts = OSSL_CMP_CTX_get0_statusString(ctx->cmp);
	int fi = OSSL_CMP_CTX_get_failInfoCode(ctx->cmp), i, n, nt;
	char names[600];
	size_t o;

	snprintf(buf, len, "PKIStatus: %s", name != NULL ? name : "(invalid)");
	if (fi > 0 && cmpc_failinfo_names(fi, names, sizeof(names)) > 0)
		snprintf(buf + strlen(buf), len - strlen(buf), "; PKIFailureInfo: %s", names);
	nt = texts != NULL ? sk_ASN1_UTF8STRING_num(texts) : 0;
	for (i = 0; i < nt; i++) {
		const ASN1_UTF8STRING *t = sk_ASN1_UTF8STRING_value(texts, i);

		o = strlen(buf);
		n = snprintf(buf + o, len - o, "%s\"%.*s\"",
			     i == 0 ? (nt > 1 ? "; StatusStrings: " : "; StatusString: ") : ", ",
			     ASN1_STRING_length(t), (const char *)ASN1_STRING_get0_data(t));
		if (n >= 0 && (size_t)n >= len - o) {
			/* the text's closing quote after the mark */
			buf[len - 2] = '\0';
			cmpc_mark_cut(buf, len - 1, CMPC_CUT_MARK);
			memcpy(buf + strlen(buf), "\"", 2);
			break;
		}
	}
}

cmpc_rv cmpc_classify_failure(cmpc_ctx *ctx, const char *what)
{
	char errs[1024], st[CMPC_CA_TEXT_MAX];
	int codes[MAX_CODES], ncodes, status;

	status = OSSL_CMP_CTX_get_status(ctx->cmp);
	ctx->rejected = 0;
	ncodes = drain_errors(errs, sizeof(errs), codes, MAX_CODES);
	if (ncodes == 0 && ctx->x.ossl_note[0] != '\0')
		snprintf(errs, sizeof(errs), "%s", ctx->x.ossl_note);
	/* What the transport refused (an HTTP error, a body that is no
	 * PKIMessage, another sender) never got as far as verification. */
	ctx->x.unverified = ctx->x.rv != CMPC_OK || ctx->x.signer_msg[0] != '\0' ||
			    unverified(codes, ncodes) ||
			    (status == OSSL_CMP_PKISTATUS_rejection && ctx->cr.rsp_unprotected);

	/* Checked first: OpenSSL reports a refused certificate as a rejection. */
	if (ctx->x.cert_rejected) {
		cmpc_seterr(ctx, "%s: the issued certificate was refused: %s; %s", what,
			    ctx->x.cert_msg,
			    ctx->x.certconf_sent
				? "it was rejected in the certConf"
				: "no certConf was sent (the CA granted implicit confirmation), "
				  "so the CA may consider it issued: ask it to revoke the "
				  "certificate");
		return CMPC_ERR_CERT;
	}
	if (ctx->x.rv != CMPC_OK) {
		if (ctx->x.total_timeout_hit && status == OSSL_CMP_PKISTATUS_waiting) {
			cmpc_seterr(ctx,
				    "%s: the CA still answered 'waiting' when the total "
				    "timeout of %ld s ran out; run the enrollment again later, or "
				    "raise the total timeout",
				    what, ctx->total_s);
			return CMPC_ERR_WAITING;
		}
		cmpc_seterr(ctx, "%s failed: %s", what, ctx->x.msg);
		return ctx->x.rv;
	}
	if (has_code(codes, ncodes, CMP_R_CHECKAFTER_OUT_OF_RANGE)) {
		cmpc_seterr(ctx,
			    "%s: the CA answered 'waiting' with a checkAfter out of range "
			    "(negative or more than 2^31-1 s); report it to the CA operator",
			    what);
		return CMPC_ERR_PROTOCOL;
	}
	if (ctx->x.signer_msg[0] != '\0') {
		cmpc_seterr(ctx,
			    "%s: the CA's answer was not accepted: %s; pin the CA's CMP "
			    "certificate (srv_cert) or its name (expected_sender), give its "
			    "root as srv_trusted, or ask the CA operator for a certificate "
			    "with id-kp-cmcCA or id-kp-cmcRA",
			    what, ctx->x.signer_msg);
		return CMPC_ERR_PROTOCOL;
	}
	switch (status) {
	case OSSL_CMP_PKISTATUS_rejection:
		status_text(ctx, st, sizeof(st));
		if (ctx->cr.rsp_unprotected) {
			/* Anyone on the path can send one: shown, not acted on. */
			cmpc_seterr(ctx,
				    "%s: an unprotected error message says the request was "
				    "rejected (unverified: it may not come from the CA): %s; "
				    "trying again later; if it persists, ask the CA operator",
				    what, st);
			return CMPC_ERR_PROTOCOL;
		}
		ctx->rejected = 1;
		ctx->rej_fail_info = OSSL_CMP_CTX_get_failInfoCode(ctx->cmp);
		if (ctx->rej_fail_info < 0)
			ctx->rej_fail_info = 0;
		cmpc_seterr(ctx, "%s: the CA rejected the request: %s; %s", what, st,
			    rejection_hint(OSSL_CMP_CTX_get_failInfoCode(ctx->cmp)));
		return CMPC_ERR_REJECTED;
	case OSSL_CMP_PKISTATUS_request:
		/* Failed before anything was sent: building or signing the request. */
		cmpc_seterr(ctx,
			    "%s: cannot create the request: %s; check that the key can sign "
			    "(token present and logged in) and is of a supported type",
			    what, errs);
		return CMPC_ERR_KEY;
	case OSSL_CMP_PKISTATUS_waiting:
		if (ctx->x.unverified) {
			cmpc_seterr(ctx,
				    "%s: the CA answered 'waiting', and the answer to the next "
				    "pollReq did not verify (%s): it may not come from the CA; %s",
				    what, errs, protocol_hint(codes, ncodes));
			return CMPC_ERR_PROTOCOL;
		}
		cmpc_seterr(ctx,
			    "%s: the CA still answered 'waiting' when the total timeout of %ld "
			    "s ran out (%s); run the enrollment again later, or raise the total "
			    "timeout",
			    what, ctx->total_s, errs);
		return CMPC_ERR_WAITING;
	default:
		break;
	}
	/* The answer came, and our certConf could not be made: with a signer,
	 * its key (on the token) did not sign; nothing was sent. */
	if (has_code(codes, ncodes, CMP_R_ERROR_CREATING_CERTCONF) ||
	    has_code(codes, ncodes, CMP_R_ERROR_PROTECTING_MESSAGE)) {
		if (ctx->signer_cert != NULL) {
			cmpc_seterr(ctx,
				    "%s: the signer key did not sign our message (%s): %s; nothing "
				    "was sent; check that the key's token is present and logged in",
				    what,
				    has_code(codes, ncodes, CMP_R_ERROR_CREATING_CERTCONF)
					? "the certConf" : "a request",
				    errs);
			return CMPC_ERR_KEY;
		}
		cmpc_seterr(ctx, "%s: our message could not be protected: %s", what, errs);
		return CMPC_ERR_INTERNAL;
	}
	cmpc_seterr(ctx, "%s: the exchange with %s failed: %s; %s", what, ctx->url, errs,
		    protocol_hint(codes, ncodes));
	return CMPC_ERR_PROTOCOL;
}
