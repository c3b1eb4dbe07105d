/*
 * cmpc context: configuration setters, error text, logging bridge.
 *
 * The reference value, the secret, the subject and the options live in
 * the OSSL_CMP_CTX, which wipes the secret when it is replaced or freed;
 * this layer keeps no copy of the secret of its own.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "cmp/cmpc-int.h"

#define DEFAULT_CONNECT_S 10
#define DEFAULT_MSG_S 60
#define DEFAULT_TOTAL_S 300
#define DEFAULT_MAX_RESPONSE (1024 * 1024)

const char *cmpc_strerror(cmpc_rv rv)
{
	switch (rv) {
	case CMPC_OK:
		return "success";
	case CMPC_ERR_CONFIG:
		return "CMP configuration error";
	case CMPC_ERR_TRANSPORT:
		return "CMP transport error";
	case CMPC_ERR_TLS:
		return "TLS error talking to the CMP server";
	case CMPC_ERR_PROTOCOL:
		return "CMP protocol error";
	case CMPC_ERR_REJECTED:
		return "the CA rejected the request";
	case CMPC_ERR_WAITING:
		return "the CA has not answered the request yet";
	case CMPC_ERR_CERT:
		return "the issued certificate failed verification";
	case CMPC_ERR_KEY:
		return "the key could not sign the CMP request";
	case CMPC_ERR_INTERNAL:
		return "internal error in the CMP layer";
	}
	return "unknown CMP layer error";
}

int cmpc_global_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

void cmpc_global_cleanup(void)
{
	curl_global_cleanup();
}

void cmpc_seterr(cmpc_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ctx->errmsg, sizeof(ctx->errmsg), fmt, ap);
	va_end(ap);
}

void cmpc_log(cmpc_ctx *ctx, int level, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	if (ctx == NULL || ctx->log_fn == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	ctx->log_fn(level, buf, ctx->log_arg);
}

/* OpenSSL's log callback takes no argument: the exchange running on this
 * thread says where its lines go. */
static __thread cmpc_ctx *log_target;

void cmpc_log_enter(cmpc_ctx *ctx)
{
	log_target = ctx;
}

void cmpc_log_leave(void)
{
	log_target = NULL;
}

int cmpc_ossl_log_cb(const char *func, const char *file, int line, OSSL_CMP_severity level,
		     const char *msg)
{
	int prio;

	if (log_target == NULL || msg == NULL)
		return 1;
	/* OSSL_CMP_LOG_* mirror syslog's values; TRACE has no syslog peer. */
	prio = level < LOG_EMERG ? LOG_ERR : level > LOG_DEBUG ? LOG_DEBUG : level;
	cmpc_log(log_target, prio, "CMP: %s", msg);
	return 1;
}

cmpc_ctx *cmpc_new(void)
{
	cmpc_ctx *ctx;
	OSSL_CMP_CTX *c;

	if ((ctx = OPENSSL_zalloc(sizeof(*ctx))) == NULL)
		return NULL;
	ctx->connect_s = DEFAULT_CONNECT_S;
	ctx->msg_s = DEFAULT_MSG_S;
	ctx->total_s = DEFAULT_TOTAL_S;
	ctx->max_response = DEFAULT_MAX_RESPONSE;
	if ((ctx->anchors = sk_X509_new_null()) == NULL ||
	    (ctx->cmp = c = OSSL_CMP_CTX_new(NULL, NULL)) == NULL ||
	    (ctx->curl = curl_easy_init()) == NULL)
		goto err;
	/* 3.0 defaults to HMAC-SHA1; there is no option for the PBM iteration
	 * count (fixed at 500) nor the salt length (16 random bytes). */
	if (!OSSL_CMP_CTX_set_log_cb(c, cmpc_ossl_log_cb) ||
	    !OSSL_CMP_CTX_set_log_verbosity(c, OSSL_CMP_LOG_DEBUG) ||
	    !OSSL_CMP_CTX_set_option(c, OSSL_CMP_OPT_MAC_ALGNID, NID_hmacWithSHA256) ||
	    !OSSL_CMP_CTX_set_option(c, OSSL_CMP_OPT_OWF_ALGNID, NID_sha256) ||
	    !OSSL_CMP_CTX_set_option(c, OSSL_CMP_OPT_DIGEST_ALGNID, NID_sha256) ||
	    !OSSL_CMP_CTX_set_option(c, OSSL_CMP_OPT_UNPROTECTED_SEND, 0) ||
	    !OSSL_CMP_CTX_set_option(c, OSSL_CMP_OPT_UNPROTECTED_ERRORS, 0) ||
	    !OSSL_CMP_CTX_set_option(c, OSSL_CMP_OPT_PERMIT_TA_IN_EXTRACERTS_FOR_IR, 0) ||
	    !OSSL_CMP_CTX_set_option(c, OSSL_CMP_OPT_SUBJECTALTNAME_NODEFAULT, 1) ||
	    !OSSL_CMP_CTX_set_option(c, OSSL_CMP_OPT_POPO_METHOD, OSSL_CRMF_POPO_SIGNATURE) ||
	    !OSSL_CMP_CTX_set_transfer_cb(c, cmpc_http_transfer) ||
	    !OSSL_CMP_CTX_set_transfer_cb_arg(c, ctx) ||
	    !OSSL_CMP_CTX_set_certConf_cb(c, cmpc_certconf_cb) ||
	    !OSSL_CMP_CTX_set_certConf_cb_arg(c, ctx))
		goto err;
	return ctx;
err:
	cmpc_free(ctx);
	ERR_clear_error();
	return NULL;
}

void cmpc_free(cmpc_ctx *ctx)
{
	if (ctx == NULL)
		return;
	OSSL_CMP_CTX_free(ctx->cmp); /* cleanses the secret */
	cmpc_http_free(ctx);
	OPENSSL_free(ctx->url);
	OPENSSL_free(ctx->tls_cafile);
	sk_X509_pop_free(ctx->anchors, X509_free);
	X509_NAME_free(ctx->subject);
	GENERAL_NAMES_free(ctx->sans);
	sk_X509_pop_free(ctx->x.chain, X509_free);
	OPENSSL_free(ctx->x.rbuf);
	OPENSSL_clear_free(ctx, sizeof(*ctx));
}

const char *cmpc_errmsg(const cmpc_ctx *ctx)
{
	return ctx != NULL ? ctx->errmsg : "";
}

void cmpc_set_log_cb(cmpc_ctx *ctx, cmpc_log_fn fn, void *arg)
{
	ctx->log_fn = fn;
	ctx->log_arg = arg;
}

void cmpc_set_accept_cb(cmpc_ctx *ctx, cmpc_accept_fn fn, void *arg)
{
	ctx->accept_fn = fn;
	ctx->accept_arg = arg;
}

cmpc_rv cmpc_set_server(cmpc_ctx *ctx, const char *url)
{
	CURLU *u = NULL;
	CURLUcode uc;
	char *scheme = NULL, *user = NULL, *host = NULL, *copy = NULL;
	cmpc_rv rv = CMPC_ERR_CONFIG;

	ctx->errmsg[0] = '\0';
	if (url == NULL || *url == '\0') {
		cmpc_seterr(ctx, "no CMP server URL given: set it, e.g. "
				 "https://ca.example/.well-known/cmp");
		return CMPC_ERR_CONFIG;
	}
	if ((u = curl_url()) == NULL) {
		cmpc_seterr(ctx, "out of memory parsing the server URL");
		return CMPC_ERR_INTERNAL;
	}
	if ((uc = curl_url_set(u, CURLUPART_URL, url, 0)) != CURLUE_OK) {
		cmpc_seterr(ctx,
			    "invalid CMP server URL '%s': %s; write it as "
			    "http(s)://host[:port]/path",
			    url, curl_url_strerror(uc));
		goto out;
	}
	if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK && user != NULL) {
		/* Not echoed: the part before '@' may hold a password. */
		cmpc_seterr(ctx, "the CMP server URL carries a user name or password, which is "
				 "not supported: remove the part before '@' (the CA "
				 "authenticates the request by the reference value and secret)");
		goto out;
	}
	if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
		cmpc_seterr(ctx,
			    "CMP server URL '%s' is not http:// or https://: CMP is "
			    "carried over HTTP here",
			    url);
		goto out;
	}
	if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || *host == '\0') {
		cmpc_seterr(ctx, "CMP server URL '%s' has no host", url);
		goto out;
	}
	if ((copy = OPENSSL_strdup(url)) == NULL) {
		cmpc_seterr(ctx, "out of memory");
		rv = CMPC_ERR_INTERNAL;
		goto out;
	}
	OPENSSL_free(ctx->url);
	ctx->url = copy;
	rv = CMPC_OK;
out:
	curl_free(scheme);
	curl_free(user);
	curl_free(host);
	curl_url_cleanup(u);
	return rv;
}

void cmpc_set_timeouts(cmpc_ctx *ctx, int connect_s, int msg_s, int total_s)
{
	ctx->connect_s = connect_s > 0 ? connect_s : DEFAULT_CONNECT_S;
	ctx->msg_s = msg_s > 0 ? msg_s : DEFAULT_MSG_S;
	ctx->total_s = total_s > 0 ? total_s : DEFAULT_TOTAL_S;
}

void cmpc_set_max_response(cmpc_ctx *ctx, size_t bytes)
{
	ctx->max_response = bytes > 0 ? bytes : DEFAULT_MAX_RESPONSE;
}

cmpc_rv cmpc_set_tls_trust(cmpc_ctx *ctx, const char *cafile)
{
	char *copy = NULL;
	FILE *f;

	ctx->errmsg[0] = '\0';
	if (cafile != NULL) {
		/* Fail now rather than as a TLS error at the first connection. */
		if ((f = fopen(cafile, "r")) == NULL) {
			cmpc_seterr(ctx, "cannot read the TLS trust file %s: %s; check the path",
				    cafile, strerror(errno));
			return CMPC_ERR_CONFIG;
		}
		fclose(f);
		if ((copy = OPENSSL_strdup(cafile)) == NULL) {
			cmpc_seterr(ctx, "out of memory");
			return CMPC_ERR_INTERNAL;
		}
	}
	OPENSSL_free(ctx->tls_cafile);
	ctx->tls_cafile = copy;
	return CMPC_OK;
}

cmpc_rv cmpc_set1_pbm(cmpc_ctx *ctx, const unsigned char *ref, size_t ref_len,
		      const unsigned char *secret, size_t secret_len)
{
	ctx->errmsg[0] = '\0';
	if (ref == NULL || ref_len == 0 || ref_len > 1024) {
		cmpc_seterr(ctx,
			    "the PBM reference value is %s: set the reference value the CA "
			    "gave for this enrollment",
			    ref == NULL || ref_len == 0 ? "empty" : "longer than 1024 bytes");
		return CMPC_ERR_CONFIG;
	}
	if (secret == NULL || secret_len == 0 || secret_len > 1024) {
		cmpc_seterr(ctx,
			    "the PBM secret is %s: set the secret the CA gave for this "
			    "enrollment",
			    secret == NULL || secret_len == 0 ? "empty" : "longer than 1024 bytes");
		return CMPC_ERR_CONFIG;
	}
	if (!OSSL_CMP_CTX_set1_referenceValue(ctx->cmp, ref, (int)ref_len) ||
	    !OSSL_CMP_CTX_set1_secretValue(ctx->cmp, secret, (int)secret_len)) {
		ERR_clear_error();
		cmpc_seterr(ctx, "out of memory storing the reference value and secret");
		return CMPC_ERR_INTERNAL;
	}
	ctx->have_pbm = 1;
	return CMPC_OK;
}

cmpc_rv cmpc_load_trusted(cmpc_ctx *ctx, const char *pemfile)
{
	STACK_OF(X509) *certs = NULL;
	BIO *in = NULL;
	FILE *f;
	X509 *x;
	cmpc_rv rv = CMPC_ERR_CONFIG;
	char why[512];
	int n = 0;

	ctx->errmsg[0] = '\0';
	if (pemfile == NULL) {
		cmpc_seterr(ctx, "no trust anchor file given: set the PEM file of the CA "
				 "certificates the issued certificate must chain to");
		return CMPC_ERR_CONFIG;
	}
	ERR_clear_error();
	if ((f = fopen(pemfile, "r")) == NULL) {
		cmpc_seterr(ctx, "cannot open the trust anchor file %s: %s; check the path",
			    pemfile, strerror(errno));
		goto out;
	}
	if ((in = BIO_new_fp(f, BIO_CLOSE)) == NULL) {
		fclose(f);
		goto oom;
	}
	if ((certs = sk_X509_new_null()) == NULL)
		goto oom;
	while ((x = PEM_read_bio_X509(in, NULL, NULL, NULL)) != NULL) {
		if (!sk_X509_push(certs, x)) {
			X509_free(x);
			goto oom;
		}
		n++;
	}
	/* The loop ends at end of file (PEM_R_NO_START_LINE) or on bad PEM. */
	if (ERR_GET_REASON(ERR_peek_last_error()) != PEM_R_NO_START_LINE) {
		cmpc_ossl_errors(why, sizeof(why));
		cmpc_seterr(ctx,
			    "cannot read certificate %d of the trust anchor file %s: %s; it "
			    "must hold PEM certificates",
			    n + 1, pemfile, why);
		goto out;
	}
	ERR_clear_error();
	if (n == 0) {
		cmpc_seterr(ctx,
			    "no certificate in the trust anchor file %s: it must hold the CA "
			    "certificates in PEM",
			    pemfile);
		goto out;
	}
	while ((x = sk_X509_shift(certs)) != NULL) {
		if (!sk_X509_push(ctx->anchors, x)) {
			X509_free(x);
			goto oom;
		}
	}
	rv = CMPC_OK;
	goto out;
oom:
	cmpc_seterr(ctx, "out of memory reading %s", pemfile);
	rv = CMPC_ERR_INTERNAL;
out:
	ERR_clear_error();
	sk_X509_pop_free(certs, X509_free);
	BIO_free(in);
	return rv;
}

cmpc_rv cmpc_set1_subject(cmpc_ctx *ctx, const X509_NAME *subject)
{
	X509_NAME *copy = NULL;

	ctx->errmsg[0] = '\0';
	if (subject != NULL && (copy = X509_NAME_dup(subject)) == NULL)
		goto oom;
	if (!OSSL_CMP_CTX_set1_subjectName(ctx->cmp, subject))
		goto oom;
	X509_NAME_free(ctx->subject);
	ctx->subject = copy;
	return CMPC_OK;
oom:
	X509_NAME_free(copy);
	ERR_clear_error();
	cmpc_seterr(ctx, "out of memory storing the subject");
	return CMPC_ERR_INTERNAL;
}

cmpc_rv cmpc_set1_sans(cmpc_ctx *ctx, const GENERAL_NAMES *sans)
{
	GENERAL_NAMES *copy = NULL;

	ctx->errmsg[0] = '\0';
	if (sans != NULL && sk_GENERAL_NAME_num(sans) > 0 &&
	    (copy = ASN1_item_dup(ASN1_ITEM_rptr(GENERAL_NAMES), sans)) == NULL) {
		ERR_clear_error();
		cmpc_seterr(ctx, "out of memory storing the subject alternative names");
		return CMPC_ERR_INTERNAL;
	}
	GENERAL_NAMES_free(ctx->sans);
	ctx->sans = copy;
	return CMPC_OK;
}

void cmpc_set_implicit_confirm(cmpc_ctx *ctx, int on)
{
	(void)OSSL_CMP_CTX_set_option(ctx->cmp, OSSL_CMP_OPT_IMPLICIT_CONFIRM, on != 0);
}
