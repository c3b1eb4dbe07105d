/*
 * Verification of the newly issued certificate, before it is confirmed.
 *
 * The chain is checked against a store built from the configured anchors
 * only, not against the OSSL_CMP_CTX's trusted store: for a PBM-protected
 * ip, OpenSSL 3.0 adds the caPubs to that store (RFC 4210 5.3.2), which
 * would let the server choose the anchor the certificate is checked with.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include <openssl/err.h>

#include "cmp/cmpc-int.h"

X509_STORE *cmpc_anchor_store(const cmpc_ctx *ctx)
{
	X509_STORE *st;
	int i;

	if ((st = X509_STORE_new()) == NULL)
		return NULL;
	for (i = 0; i < sk_X509_num(ctx->anchors); i++) {
		if (!X509_STORE_add_cert(st, sk_X509_value(ctx->anchors, i))) {
			X509_STORE_free(st);
			return NULL;
		}
	}
	return st;
}

static void name_str(const X509_NAME *name, char *buf, size_t len)
{
	BIO *b = BIO_new(BIO_s_mem());
	int n;

	buf[0] = '\0';
	if (b == NULL)
		return;
	if (X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253) >= 0 &&
	    (n = BIO_read(b, buf, (int)len - 1)) > 0)
		buf[n] = '\0';
	BIO_free(b);
	if (buf[0] == '\0')
		snprintf(buf, len, "(empty)");
}

static int reject(cmpc_ctx *ctx, int bit, const char **txt, const char *short_txt, const char *fmt,
		  ...) CMPC_PRINTF(5, 6);

static int reject(cmpc_ctx *ctx, int bit, const char **txt, const char *short_txt, const char *fmt,
		  ...)
{
	va_list ap;

	ctx->x.cert_rejected = 1;
	va_start(ap, fmt);
	vsnprintf(ctx->x.cert_msg, sizeof(ctx->x.cert_msg), fmt, ap);
	va_end(ap);
	*txt = short_txt; /* static: OpenSSL puts it in the certConf */
	return 1 << bit;
}

/* Untrusted certificates that may help build the chain: extraCerts
 * (OpenSSL keeps them in the context's untrusted list and extraCertsIn)
 * and caPubs. */
static STACK_OF(X509) *candidates(OSSL_CMP_CTX *cmp)
{
	STACK_OF(X509) *all, *in = NULL, *pubs = NULL;
	int ok = 0;

	if ((all = sk_X509_new_null()) == NULL)
		return NULL;
	in = OSSL_CMP_CTX_get1_extraCertsIn(cmp);
	pubs = OSSL_CMP_CTX_get1_caPubs(cmp);
	if (X509_add_certs(all, OSSL_CMP_CTX_get0_untrusted(cmp),
			   X509_ADD_FLAG_UP_REF | X509_ADD_FLAG_NO_DUP) &&
	    X509_add_certs(all, in, X509_ADD_FLAG_UP_REF | X509_ADD_FLAG_NO_DUP) &&
	    X509_add_certs(all, pubs, X509_ADD_FLAG_UP_REF | X509_ADD_FLAG_NO_DUP))
		ok = 1;
	sk_X509_pop_free(in, X509_free);
	sk_X509_pop_free(pubs, X509_free);
	if (!ok) {
		sk_X509_pop_free(all, X509_free);
		return NULL;
	}
	return all;
}

/* The caller's last word (storing the certificate) before it is confirmed. */
static int accept_cert(cmpc_ctx *ctx, X509 *cert, const char **txt)
{
	STACK_OF(X509) *cas = cmpc_ca_certs(ctx);
	char why[512] = "";
	int rv = 0;

	if (cas == NULL)
		rv = reject(ctx, OSSL_CMP_PKIFAILUREINFO_systemFailure, txt,
			    "client could not keep the certificate",
			    "out of memory collecting the CA certificates");
	else if (ctx->accept_fn(cert, cas, ctx->accept_arg, why, sizeof(why)) != 0)
		rv = reject(ctx, OSSL_CMP_PKIFAILUREINFO_systemFailure, txt,
			    "client could not keep the certificate",
			    "the certificate verified but could not be kept: %s",
			    why[0] != '\0' ? why : "no reason given");
	sk_X509_pop_free(cas, X509_free);
	return rv;
}

int cmpc_certconf_cb(OSSL_CMP_CTX *cmp, X509 *cert, int fail_info, const char **txt)
{
	cmpc_ctx *ctx = OSSL_CMP_CTX_get_certConf_cb_arg(cmp);
	X509_STORE *store = NULL;
	X509_STORE_CTX *sctx = NULL;
	STACK_OF(X509) *untrusted = NULL;
	EVP_PKEY *pub;
	char a[256], b[256];
	int err, depth, rv = 0;

	if (ctx == NULL)
		return fail_info != 0 ? fail_info : 1 << OSSL_CMP_PKIFAILUREINFO_systemFailure;
	sk_X509_pop_free(ctx->x.chain, X509_free);
	ctx->x.chain = NULL;

	/* OpenSSL's own verdict (a key mismatch) stands: what we return wins. */
	if (fail_info != 0) {
		ctx->x.cert_rejected = 1;
		snprintf(ctx->x.cert_msg, sizeof(ctx->x.cert_msg),
			 "the certificate failed OpenSSL's checks: %s; the CA did not issue what "
			 "was requested: report it to the CA operator",
			 *txt != NULL ? *txt : "(no reason given)");
		return fail_info;
	}
	if ((pub = X509_get0_pubkey(cert)) == NULL || ctx->x.key == NULL ||
	    EVP_PKEY_eq(pub, ctx->x.key) != 1)
		return reject(ctx, OSSL_CMP_PKIFAILUREINFO_incorrectData, txt,
			      "public key in the certificate is not the requested one",
			      "the certificate does not carry the public key of the request; the "
			      "CA did not issue what was requested: report it to the CA operator");
	if (ctx->subject != NULL && X509_NAME_entry_count(ctx->subject) > 0 &&
	    X509_NAME_cmp(X509_get_subject_name(cert), ctx->subject) != 0) {
		name_str(X509_get_subject_name(cert), a, sizeof(a));
		name_str(ctx->subject, b, sizeof(b));
		return reject(ctx, OSSL_CMP_PKIFAILUREINFO_badCertTemplate, txt,
			      "subject in the certificate is not the requested one",
			      "the certificate's subject '%s' is not the requested '%s'; check the "
			      "subject against the CA's policy or ask the CA operator",
			      a, b);
	}

	if ((store = cmpc_anchor_store(ctx)) == NULL || (untrusted = candidates(cmp)) == NULL ||
	    (sctx = X509_STORE_CTX_new()) == NULL ||
	    !X509_STORE_CTX_init(sctx, store, cert, untrusted)) {
		rv = reject(ctx, OSSL_CMP_PKIFAILUREINFO_systemFailure, txt,
			    "client could not verify the certificate",
			    "out of memory verifying the certificate");
		goto out;
	}
	if (X509_verify_cert(sctx) != 1) {
		err = X509_STORE_CTX_get_error(sctx);
		depth = X509_STORE_CTX_get_error_depth(sctx);
		name_str(X509_get_issuer_name(cert), a, sizeof(a));
		rv = reject(ctx, OSSL_CMP_PKIFAILUREINFO_signerNotTrusted, txt,
			    "certificate does not chain to a trust anchor of the client",
			    "the certificate (issuer '%s') does not verify against the configured "
			    "trust anchors: %s (at chain depth %d); check that the trust anchor "
			    "file holds the root of this CA",
			    a, X509_verify_cert_error_string(err), depth);
		goto out;
	}
	if ((ctx->x.chain = X509_STORE_CTX_get1_chain(sctx)) == NULL) {
		rv = reject(ctx, OSSL_CMP_PKIFAILUREINFO_systemFailure, txt,
			    "client could not verify the certificate",
			    "out of memory verifying the certificate");
		goto out;
	}
	cmpc_log(ctx, LOG_DEBUG, "the new certificate verifies: chain of %d",
		 sk_X509_num(ctx->x.chain));
	if (ctx->accept_fn != NULL)
		rv = accept_cert(ctx, cert, txt);
out:
	ERR_clear_error(); /* verification details are in cert_msg */
	X509_STORE_CTX_free(sctx);
	sk_X509_pop_free(untrusted, X509_free);
	X509_STORE_free(store);
	return rv;
}
