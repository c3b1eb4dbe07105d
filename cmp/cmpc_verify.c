/*
 * Verification of the newly issued certificate, before it is confirmed.
 *
 * The chain is checked against a store built from the configured anchors
 * only, not against the OSSL_CMP_CTX's trusted store: for a PBM-protected
 * ip, OpenSSL 3.0 adds the caPubs to that store (RFC 4210 5.3.2), which
 * would let the server choose the anchor the certificate is checked with.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

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

void cmpc_name_str(const X509_NAME *name, char *buf, size_t len, const char *empty)
{
	BIO *b = BIO_new(BIO_s_mem());
	int n;

	buf[0] = '\0';
	if (b != NULL && X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253) >= 0 &&
	    (n = BIO_read(b, buf, (int)len - 1)) > 0)
		buf[n] = '\0';
	BIO_free(b);
	if (buf[0] == '\0')
		snprintf(buf, len, "%s", empty);
}

static int has_name(const GENERAL_NAMES *names, GENERAL_NAME *gn)
{
	int i;

	for (i = 0; i < sk_GENERAL_NAME_num(names); i++)
		if (GENERAL_NAME_cmp(sk_GENERAL_NAME_value(names, i), gn) == 0)
			return 1;
	return 0;
}

/* The certificate's subjectAltName holds exactly the requested names (in
 * any order): a CA that adds, drops or changes one issued something else. */
static int same_sans(X509 *cert, const GENERAL_NAMES *want)
{
	GENERAL_NAMES *got = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	int i, same = got != NULL;

	for (i = 0; same && i < sk_GENERAL_NAME_num(want); i++)
		same = has_name(got, sk_GENERAL_NAME_value(want, i));
	for (i = 0; same && i < sk_GENERAL_NAME_num(got); i++)
		same = has_name(want, sk_GENERAL_NAME_value(got, i));
	if (got == NULL && sk_GENERAL_NAME_num(want) == 0)
		same = 1;
	GENERAL_NAMES_free(got);
	ERR_clear_error();
	return same;
}

static void sans_str(const GENERAL_NAMES *names, char *buf, size_t len)
{
	BIO *b = BIO_new(BIO_s_mem());
	int i, n;

	buf[0] = '\0';
	if (b == NULL)
		return;
	for (i = 0; i < sk_GENERAL_NAME_num(names); i++) {
		if (i > 0)
			BIO_puts(b, ", ");
		GENERAL_NAME_print(b, sk_GENERAL_NAME_value(names, i));
	}
	if ((n = BIO_read(b, buf, (int)len - 1)) > 0)
		buf[n] = '\0';
	BIO_free(b);
	if (buf[0] == '\0')
		snprintf(buf, len, "(none)");
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
	GENERAL_NAMES *cert_sans;
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
	if (ctx->cr.want_subject != NULL &&
	    X509_NAME_cmp(X509_get_subject_name(cert), ctx->cr.want_subject) != 0) {
		cmpc_name_str(X509_get_subject_name(cert), a, sizeof(a), "(empty)");
		cmpc_name_str(ctx->cr.want_subject, b, sizeof(b), "(empty)");
		return reject(ctx, OSSL_CMP_PKIFAILUREINFO_badCertTemplate, txt,
			      "subject in the certificate is not the requested one",
			      "the certificate's subject '%s' is not the requested '%s'; check the "
			      "subject against the CA's policy or ask the CA operator",
			      a, b);
	}
	if (ctx->cr.want_sans != NULL && !same_sans(cert, ctx->cr.want_sans)) {
		sans_str(cert_sans = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL), a,
			 sizeof(a));
		sans_str(ctx->cr.want_sans, b, sizeof(b));
		GENERAL_NAMES_free(cert_sans);
		ERR_clear_error();
		return reject(ctx, OSSL_CMP_PKIFAILUREINFO_badCertTemplate, txt,
			      "subjectAltName in the certificate is not the requested one",
			      "the certificate's subjectAltName '%s' is not the requested '%s'; "
			      "check the names against the CA's policy or ask the CA operator",
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
		cmpc_name_str(X509_get_issuer_name(cert), a, sizeof(a), "(empty)");
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
	if (!cmpc_signer_may_answer_for(ctx, cert)) {
		rv = reject(ctx, OSSL_CMP_PKIFAILUREINFO_wrongAuthority, txt,
			    "response signer may not speak for the issuing CA",
			    "%s; pin the CA's CMP certificate (srv_cert) or name it "
			    "(expected_sender)",
			    ctx->x.signer_msg);
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

cmpc_rv cmpc_verify_under_anchors(cmpc_ctx *ctx, X509 *cert, STACK_OF(X509) *untrusted)
{
	X509_STORE *store = NULL;
	X509_STORE_CTX *sctx = NULL;
	char name[256];
	cmpc_rv rv = CMPC_OK;

	ctx->errmsg[0] = '\0';
	if ((store = cmpc_anchor_store(ctx)) == NULL || (sctx = X509_STORE_CTX_new()) == NULL ||
	    !X509_STORE_CTX_init(sctx, store, cert, untrusted)) {
		cmpc_seterr(ctx, "out of memory verifying a certificate");
		rv = CMPC_ERR_INTERNAL;
	} else if (X509_verify_cert(sctx) != 1) {
		cmpc_name_str(X509_get_subject_name(cert), name, sizeof(name), "(empty)");
		cmpc_seterr(ctx, "'%s' does not verify under the trust anchors: %s (at chain depth %d)",
			    name, X509_verify_cert_error_string(X509_STORE_CTX_get_error(sctx)),
			    X509_STORE_CTX_get_error_depth(sctx));
		rv = CMPC_ERR_CERT;
	}
	ERR_clear_error();
	X509_STORE_CTX_free(sctx);
	X509_STORE_free(store);
	return rv;
}
