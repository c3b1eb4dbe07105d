/*
 * Revocation request (rr/rp) for a certificate, with a CRL reason.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include <openssl/bn.h>
#include <openssl/err.h>

#include "cmp/cmpc-int.h"

static const char *rr_hint(int fail_info)
{
	if (fail_info < 0)
		return "ask the CA operator why";
	if (fail_info & OSSL_CMP_CTX_FAILINFO_certRevoked)
		return "the certificate is already revoked: nothing more to do";
	if (fail_info & (OSSL_CMP_CTX_FAILINFO_badCertId | OSSL_CMP_CTX_FAILINFO_wrongAuthority))
		return "the CA does not know this certificate: check that this CA issued it";
	if (fail_info &
	    (OSSL_CMP_CTX_FAILINFO_badMessageCheck | OSSL_CMP_CTX_FAILINFO_wrongIntegrity |
	     OSSL_CMP_CTX_FAILINFO_notAuthorized | OSSL_CMP_CTX_FAILINFO_signerNotTrusted))
		return "check that the credentials used (reference value and secret, or the "
		       "signer certificate) may revoke this certificate";
	if (fail_info & (OSSL_CMP_CTX_FAILINFO_systemUnavail | OSSL_CMP_CTX_FAILINFO_systemFailure))
		return "the CA has a problem: try again later";
	return "ask the CA operator why";
}

static int valid_reason(int reason)
{
	/* CRLReason (RFC 5280 5.3.1); 7 is unused. */
	return reason == -1 || (reason >= 0 && reason <= 10 && reason != 7);
}

cmpc_rv cmpc_rr(cmpc_ctx *ctx, X509 *cert, int reason, cmpc_rr_status *ret_status)
{
	char what[200], st[OSSL_CMP_PKISI_BUFLEN];
	BIGNUM *bn = NULL;
	char *hex = NULL;
	cmpc_rv rv;
	int status;

	if (ctx == NULL)
		return CMPC_ERR_INTERNAL;
	ctx->errmsg[0] = '\0';
	ctx->rr_fail_info = 0;
	if (cert == NULL) {
		cmpc_seterr(ctx, "CMP revocation request (rr): no certificate given");
		return CMPC_ERR_INTERNAL;
	}
	if ((bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL)) != NULL)
		hex = BN_bn2hex(bn);
	BN_free(bn);
	snprintf(what, sizeof(what), "CMP revocation request (rr) for serial %s",
		 hex != NULL ? hex : "?");
	OPENSSL_free(hex);
	if (!valid_reason(reason)) {
		cmpc_seterr(ctx,
			    "%s: %d is not a CRL reason code: use 0..10 except 7 (RFC 5280 "
			    "5.3.1), or none",
			    what, reason);
		return CMPC_ERR_CONFIG;
	}
	/* RFC 9483 4.2: crlEntryDetails is REQUIRED and holds exactly one
	 * reasonCode, "0 = unspecified" when the reason is not known or shall
	 * not be published; 3.0 would leave crlEntryDetails out for -1. */
	if (reason == -1)
		reason = CRL_REASON_UNSPECIFIED;
	if ((rv = cmpc_xchg_begin(ctx, what)) != CMPC_OK)
		goto out;
	/* A CA certificate may answer only for what it issued. */
	ctx->x.issued_by_signer = cert;
	if (!OSSL_CMP_CTX_set1_oldCert(ctx->cmp, cert) ||
	    !OSSL_CMP_CTX_set_option(ctx->cmp, OSSL_CMP_OPT_REVOCATION_REASON, reason)) {
		cmpc_seterr(ctx, "%s: cannot set up the CMP context (out of memory?)", what);
		rv = CMPC_ERR_INTERNAL;
		goto out;
	}
	if ((rv = cmpc_stored_replay(ctx, CMPC_BODY_RR, what)) != CMPC_OK)
		goto out;
	cmpc_log(ctx, LOG_INFO, "sending an rr (reason %d) to %s", reason, ctx->url);
	cmpc_log_enter(ctx);
	if (OSSL_CMP_exec_RR_ses(ctx->cmp) != 1) {
		cmpc_log_leave();
		status = OSSL_CMP_CTX_get_status(ctx->cmp);
		if (ctx->x.rv == CMPC_OK && status == OSSL_CMP_PKISTATUS_rejection &&
		    !ctx->cr.rsp_unprotected) {
			if (OSSL_CMP_CTX_snprint_PKIStatus(ctx->cmp, st, sizeof(st)) == NULL)
				snprintf(st, sizeof(st), "no status detail");
			cmpc_seterr(ctx, "%s: the CA rejected the revocation: %s; %s", what, st,
				    rr_hint(OSSL_CMP_CTX_get_failInfoCode(ctx->cmp)));
			ctx->rr_fail_info = OSSL_CMP_CTX_get_failInfoCode(ctx->cmp);
			if (ctx->rr_fail_info < 0)
				ctx->rr_fail_info = 0;
			rv = CMPC_ERR_REJECTED;
		} else {
			rv = cmpc_classify_failure(ctx, what);
		}
		goto out;
	}
	cmpc_log_leave();
	status = OSSL_CMP_CTX_get_status(ctx->cmp);
	switch (status) {
	case OSSL_CMP_PKISTATUS_accepted:
	case OSSL_CMP_PKISTATUS_grantedWithMods:
	case OSSL_CMP_PKISTATUS_revocationWarning:
	case OSSL_CMP_PKISTATUS_revocationNotification:
		break;
	default:
		/* Cannot happen: 3.0 fails the exchange on any other status. */
		cmpc_seterr(ctx, "%s: the CA answered PKIStatus %d, which is no success", what,
			    status);
		rv = CMPC_ERR_PROTOCOL;
		goto out;
	}
	cmpc_log(ctx, LOG_INFO, "%s: revoked (PKIStatus %d)", what, status);
	if (ret_status != NULL)
		*ret_status = (cmpc_rr_status)status;
	rv = CMPC_OK;
out:
	/* A later cr or kur must not take its defaults from this certificate. */
	(void)OSSL_CMP_CTX_set1_oldCert(ctx->cmp, NULL);
	(void)OSSL_CMP_CTX_set_option(ctx->cmp, OSSL_CMP_OPT_REVOCATION_REASON, -1);
	ctx->x.issued_by_signer = NULL;
	cmpc_xchg_end(ctx);
	return rv;
}

int cmpc_rr_already_revoked(const cmpc_ctx *ctx)
{
	return ctx != NULL && (ctx->rr_fail_info & OSSL_CMP_CTX_FAILINFO_certRevoked) != 0;
}
