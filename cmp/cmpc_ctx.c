/*
 * cmpc context: configuration setters, error text, logging bridge.
 *
 * The reference value, the secret, the subject and the options live in
 * the OSSL_CMP_CTX, which wipes the secret when it is replaced or freed;
 * this layer keeps no copy of the secret of its own.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "cmp/cmpc-int.h"

#define DEFAULT_CONNECT_S 10
#define DEFAULT_MSG_S 60
#define DEFAULT_TOTAL_S 300
#define DEFAULT_MAX_RESPONSE (1024 * 1024)
#define DEFAULT_PBM_ITER 10000

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
	case CMPC_ERR_STOPPED:
		return "stopped before the CMP exchange ended";
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

void cmpc_mark_cut(char *s, size_t size, const char *mark)
{
	size_t m = strlen(mark), n;

	if (size < 2 * m + 1)
		return;
	n = strlen(s) < size - m - 1 ? strlen(s) : size - m - 1;
	/* the character the cut would split goes whole */
	while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	memcpy(s + n, mark, m + 1);
}

void cmpc_seterr(cmpc_ctx *ctx, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(ctx->errmsg, sizeof(ctx->errmsg), fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof(ctx->errmsg))
		cmpc_mark_cut(ctx->errmsg, sizeof(ctx->errmsg), " [cut]");
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
	/* Some checks (the expected sender) only log: keep the last warning
	 * for the failure message, in case the error queue stays empty. */
	if (prio <= LOG_WARNING)
		snprintf(log_target->x.ossl_note, sizeof(log_target->x.ossl_note), "%s", msg);
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
	ctx->pbm_owf = NID_sha256;
	ctx->pbm_mac = NID_hmacWithSHA256;
	ctx->pbm_iter = DEFAULT_PBM_ITER;
	ctx->transfer_fn = cmpc_http_transfer;
	if ((ctx->anchors = sk_X509_new_null()) == NULL ||
	    (ctx->cmp = c = OSSL_CMP_CTX_new(NULL, NULL)) == NULL ||
	    (ctx->curl = curl_easy_init()) == NULL)
		goto err;
	/* 3.0 defaults to HMAC-SHA1; there is no option for the PBM iteration
	 * count (fixed at 500): cmpc_pbm_reprotect applies ours. */
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
	    !cmpc_set_msg_transfer(ctx, cmpc_msg_transfer) ||
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
	OPENSSL_free(ctx->archive_der);
	OPENSSL_free(ctx->tls_cafile);
	OPENSSL_free(ctx->proxy);
	OPENSSL_free(ctx->no_proxy);
	/* After the curl handle: its SSL_CTXs held references to these. */
	X509_free(ctx->tls_cert);
	EVP_PKEY_free(ctx->tls_key);
	sk_X509_pop_free(ctx->tls_chain, X509_free);
	sk_X509_pop_free(ctx->anchors, X509_free);
	sk_X509_pop_free(ctx->srv_anchors, X509_free);
	OPENSSL_free(ctx->anchors_path);
	OPENSSL_free(ctx->srv_anchors_path);
	X509_free(ctx->srv_cert);
	X509_NAME_free(ctx->subject);
	X509_NAME_free(ctx->expected_sender);
	GENERAL_NAMES_free(ctx->sans);
	sk_X509_EXTENSION_pop_free(ctx->req_exts, X509_EXTENSION_free);
	X509_free(ctx->signer_cert);
	EVP_PKEY_free(ctx->signer_key);
	OPENSSL_clear_free(ctx->pbm_secret, ctx->pbm_secret_len);
	cmpc_pbm_forget(ctx);
	X509_NAME_free(ctx->sender);
	X509_NAME_free(ctx->recipient);
	OPENSSL_free(ctx->cert_profile);
	X509_NAME_free(ctx->cr.want_subject);
	GENERAL_NAMES_free(ctx->cr.want_sans);
	cmpc_x_reset(ctx);
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

cmpc_rv cmpc_set1_expected_sender(cmpc_ctx *ctx, const X509_NAME *name)
{
	X509_NAME *copy = NULL;

	if ((name != NULL && (copy = X509_NAME_dup(name)) == NULL) ||
	    !OSSL_CMP_CTX_set1_expected_sender(ctx->cmp, name)) {
		X509_NAME_free(copy);
		cmpc_seterr(ctx, "cannot set the expected sender (out of memory)");
		return CMPC_ERR_INTERNAL;
	}
	X509_NAME_free(ctx->expected_sender);
	ctx->expected_sender = copy;
	return CMPC_OK;
}

void cmpc_set_accept_cb(cmpc_ctx *ctx, cmpc_accept_fn fn, void *arg)
{
	ctx->accept_fn = fn;
	ctx->accept_arg = arg;
}

/* .../.well-known/cmp or .../.well-known/cmp/p/<profile> (RFC 9811 3.3),
 * with or without a trailing slash. */
static int rfc9811_path(const char *path)
{
	static const char wk[] = "/.well-known/cmp";
	const char *p = strstr(path, wk), *q;

	if (p == NULL)
		return 0;
	p += sizeof(wk) - 1;
	if (*p == '\0' || strcmp(p, "/") == 0)
		return 1;
	if (strncmp(p, "/p/", 3) != 0 || p[3] == '\0' || p[3] == '/')
		return 0;
	q = strchr(p + 3, '/');
	return q == NULL || q[1] == '\0';
}

cmpc_rv cmpc_set1_server(cmpc_ctx *ctx, const char *url)
{
	CURLU *u = NULL;
	CURLUcode uc;
	char *scheme = NULL, *user = NULL, *host = NULL, *copy = NULL, *upath = NULL;
	char *pass = NULL;
	cmpc_rv rv = CMPC_ERR_CONFIG;

	ctx->errmsg[0] = '\0';
	if (url == NULL || *url == '\0') {
		cmpc_seterr(ctx, "no CMP server URL given: set it, e.g. "
				 "https://ca.example/.well-known/cmp");
		return CMPC_ERR_CONFIG;
	}
	/* mailto:ADDR: the CA's mail address, which the caller's
	 * store-and-forward transfer function serves (cmpc_mail_send); it
	 * names the CA.  No URL for libcurl's parser. */
	if (OPENSSL_strncasecmp(url, "mailto:", 7) == 0) {
		if ((copy = OPENSSL_strdup(url)) == NULL) {
			cmpc_seterr(ctx, "out of memory");
			return CMPC_ERR_INTERNAL;
		}
		OPENSSL_free(ctx->url);
		ctx->url = copy;
		return CMPC_OK;
	}
	if ((u = curl_url()) == NULL) {
		cmpc_seterr(ctx, "out of memory parsing the server URL");
		return CMPC_ERR_INTERNAL;
	}
	if ((uc = curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME)) != CURLUE_OK) {
		cmpc_seterr(ctx,
			    "invalid CMP server URL '%s': %s; write it as "
			    "http(s)://host[:port]/path",
			    url, curl_url_strerror(uc));
		goto out;
	}
	(void)curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
	/* A remote spool (cmpc_rfile.c) logs in as the URL's user; its
	 * password never stands in the URL. */
	if (cmpc_is_rfile_url(url) &&
	    curl_url_get(u, CURLUPART_PASSWORD, &pass, 0) == CURLUE_OK && pass != NULL) {
		curl_free(pass);
		cmpc_seterr(ctx, "the server URL carries a password, which would be shown and "
				 "logged: remove ':password' before '@' and give it with "
				 "store_password_source");
		goto out;
	}
	if (!cmpc_is_rfile_url(url) &&
	    curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK && user != NULL) {
		/* Not echoed: the part before '@' may hold a password. */
		cmpc_seterr(ctx, "the CMP server URL carries a user name or password, which is "
				 "not supported: remove the part before '@' (the CA "
				 "authenticates the request by the reference value and secret)");
		goto out;
	}
	/* file:///DIR: a spool directory, which the caller's store-and-forward
	 * transfer function serves (cmpc_transfer_stored); it names the CA. */
	if (scheme != NULL && strcmp(scheme, "file") == 0) {
		if (strncmp(url, "file:///", 8) != 0) {
			cmpc_seterr(ctx, "CMP server URL '%s': write a spool directory as "
					 "file:///absolute/path",
				    url);
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
		goto out;
	}
	if (scheme == NULL || (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0 &&
			       strcmp(scheme, "tcp") != 0 && !cmpc_is_rfile_url(url))) {
		cmpc_seterr(ctx,
			    "CMP server URL '%s' is not http://, https://, tcp://, file:///, "
			    "ftp://, ftps://, sftp:// or scp://",
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
	if (strcmp(scheme, "tcp") != 0 && !cmpc_is_rfile_url(url) &&
	    (curl_url_get(u, CURLUPART_PATH, &upath, 0) != CURLUE_OK || !rfc9811_path(upath)))
		cmpc_log(ctx, LOG_WARNING,
			 "the path of the CMP server URL '%s' is neither /.well-known/cmp nor "
			 "/.well-known/cmp/p/<profile> (RFC 9811); using it as given",
			 url);
	OPENSSL_free(ctx->url);
	ctx->url = copy;
	rv = CMPC_OK;
out:
	curl_free(upath);
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

cmpc_rv cmpc_set1_tls_trust(cmpc_ctx *ctx, const char *cafile)
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

cmpc_rv cmpc_set1_proxy(cmpc_ctx *ctx, const char *proxy, const char *no_proxy)
{
	char *p = NULL, *n = NULL;

	ctx->errmsg[0] = '\0';
	if ((proxy != NULL && (p = OPENSSL_strdup(proxy)) == NULL) ||
	    (no_proxy != NULL && (n = OPENSSL_strdup(no_proxy)) == NULL)) {
		OPENSSL_free(p);
		cmpc_seterr(ctx, "out of memory");
		return CMPC_ERR_INTERNAL;
	}
	OPENSSL_free(ctx->proxy);
	OPENSSL_free(ctx->no_proxy);
	ctx->proxy = p;
	ctx->no_proxy = n;
	return CMPC_OK;
}

cmpc_rv cmpc_set1_tls_client(cmpc_ctx *ctx, X509 *cert, EVP_PKEY *key, STACK_OF(X509) *chain)
{
	STACK_OF(X509) *chain_copy = NULL;
	CURL *fresh = NULL;

	ctx->errmsg[0] = '\0';
	if ((cert == NULL) != (key == NULL)) {
		cmpc_seterr(ctx, "TLS client authentication needs both a certificate and its key: "
				 "give both, or neither to turn it off");
		return CMPC_ERR_CONFIG;
	}
	if (cert != NULL && (X509_get0_pubkey(cert) == NULL ||
			     EVP_PKEY_eq(X509_get0_pubkey(cert), key) != 1)) {
		ERR_clear_error();
		cmpc_seterr(ctx, "the TLS client key does not belong to the TLS client "
				 "certificate: give the key of that certificate");
		return CMPC_ERR_CONFIG;
	}
	if (cert != NULL && ctx->url != NULL && strncasecmp(ctx->url, "https:", 6) != 0) {
		cmpc_seterr(ctx,
			    "a TLS client certificate is configured, but the server URL %s is "
			    "not https://: TLS client authentication needs an https:// URL",
			    ctx->url);
		return CMPC_ERR_CONFIG;
	}
	if (cert != NULL && chain != NULL && (chain_copy = X509_chain_up_ref(chain)) == NULL)
		goto oom;
	/* libcurl does not know what the SSL_CTX callback installs and would
	 * reuse a connection (or TLS session) made with other credentials: a
	 * new handle starts with an empty connection and session cache. */
	if ((fresh = curl_easy_init()) == NULL)
		goto oom;
	if (cert != NULL) {
		(void)X509_up_ref(cert); /* atomic increments: they do not fail */
		(void)EVP_PKEY_up_ref(key);
	}
	curl_easy_cleanup(ctx->curl);
	ctx->curl = fresh;
	X509_free(ctx->tls_cert);
	EVP_PKEY_free(ctx->tls_key);
	sk_X509_pop_free(ctx->tls_chain, X509_free);
	ctx->tls_cert = cert;
	ctx->tls_key = key;
	ctx->tls_chain = chain_copy;
	return CMPC_OK;
oom:
	if (fresh != NULL)
		curl_easy_cleanup(fresh);
	sk_X509_pop_free(chain_copy, X509_free);
	ERR_clear_error();
	cmpc_seterr(ctx, "out of memory storing the TLS client certificate");
	return CMPC_ERR_INTERNAL;
}

cmpc_rv cmpc_set1_pbm(cmpc_ctx *ctx, const unsigned char *ref, size_t ref_len,
		      const unsigned char *secret, size_t secret_len)
{
	unsigned char *copy = NULL;

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
	if ((copy = OPENSSL_malloc(secret_len)) == NULL)
		goto oom;
	memcpy(copy, secret, secret_len);
	/* With a signer set, 3.0 must not see a secret: it would use PBM. */
	if (!OSSL_CMP_CTX_set1_referenceValue(ctx->cmp, ref, (int)ref_len) ||
	    !OSSL_CMP_CTX_set1_secretValue(ctx->cmp, ctx->signer_cert == NULL ? secret : NULL,
					   ctx->signer_cert == NULL ? (int)secret_len : 0))
		goto oom;
	/* the same secret again (a batch's next row) keeps its derived key */
	if (ctx->pbm_secret == NULL || ctx->pbm_secret_len != secret_len ||
	    CRYPTO_memcmp(ctx->pbm_secret, secret, secret_len) != 0)
		cmpc_pbm_forget(ctx);
	OPENSSL_clear_free(ctx->pbm_secret, ctx->pbm_secret_len);
	ctx->pbm_secret = copy;
	ctx->pbm_secret_len = secret_len;
	ctx->have_pbm = 1;
	return CMPC_OK;
oom:
	OPENSSL_clear_free(copy, secret_len);
	ERR_clear_error();
	cmpc_seterr(ctx, "out of memory storing the reference value and secret");
	return CMPC_ERR_INTERNAL;
}

/*
 * The certificates of pemfile become *dst (on failure *dst stays); what
 * names the file in messages ("trust anchor file").  A file loaded already
 * is not read again: a batch sets each row's enrollment up on one context,
 * and each row appended the anchors once more.
 */
static cmpc_rv load_certs(cmpc_ctx *ctx, const char *pemfile, const char *what,
			  STACK_OF(X509) **dst, char **dst_path)
{
	STACK_OF(X509) *certs = NULL;
	BIO *in = NULL;
	FILE *f;
	X509 *x;
	cmpc_rv rv = CMPC_ERR_CONFIG;
	char why[512];
	int n = 0;

	if (*dst != NULL && *dst_path != NULL && strcmp(*dst_path, pemfile) == 0)
		return CMPC_OK;
	ERR_clear_error();
	if ((f = fopen(pemfile, "r")) == NULL) {
		cmpc_seterr(ctx, "cannot open the %s %s: %s; check the path", what, pemfile,
			    strerror(errno));
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
		/* an empty queue: not even the error could be recorded */
		if (ERR_peek_last_error() == 0 || cmpc_ossl_oom())
			goto oom;
		cmpc_ossl_errors(why, sizeof(why));
		cmpc_seterr(ctx, "cannot read certificate %d of the %s %s: %s; it must hold PEM "
				 "certificates",
			    n + 1, what, pemfile, why);
		goto out;
	}
	ERR_clear_error();
	if (n == 0) {
		cmpc_seterr(ctx,
			    "no certificate in the %s %s: it must hold the CA certificates in "
			    "PEM",
			    what, pemfile);
		goto out;
	}
	OPENSSL_free(*dst_path);
	if ((*dst_path = OPENSSL_strdup(pemfile)) == NULL)
		goto oom;
	sk_X509_pop_free(*dst, X509_free);
	*dst = certs;
	certs = NULL;
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

cmpc_rv cmpc_load_trusted(cmpc_ctx *ctx, const char *pemfile)
{
	ctx->errmsg[0] = '\0';
	if (pemfile == NULL) {
		cmpc_seterr(ctx, "no trust anchor file given: set the PEM file of the CA "
				 "certificates the issued certificate must chain to");
		return CMPC_ERR_CONFIG;
	}
	return load_certs(ctx, pemfile, "trust anchor file", &ctx->anchors, &ctx->anchors_path);
}

cmpc_rv cmpc_load_srv_trusted(cmpc_ctx *ctx, const char *pemfile)
{
	ctx->errmsg[0] = '\0';
	if (pemfile == NULL) {
		cmpc_seterr(ctx, "no file of trust anchors for the CMP server given");
		return CMPC_ERR_CONFIG;
	}
	return load_certs(ctx, pemfile, "server trust anchor file (srv_trusted)", &ctx->srv_anchors,
			  &ctx->srv_anchors_path);
}

cmpc_rv cmpc_set1_srv_cert(cmpc_ctx *ctx, X509 *cert)
{
	ctx->errmsg[0] = '\0';
	if (cert != NULL && !X509_up_ref(cert)) {
		cmpc_seterr(ctx, "out of memory storing the server certificate");
		return CMPC_ERR_INTERNAL;
	}
	X509_free(ctx->srv_cert);
	ctx->srv_cert = cert;
	return CMPC_OK;
}

void cmpc_set_any_response_signer(cmpc_ctx *ctx, int on)
{
	ctx->any_signer = on != 0;
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

cmpc_rv cmpc_set1_req_extensions(cmpc_ctx *ctx, const STACK_OF(X509_EXTENSION) *exts)
{
	STACK_OF(X509_EXTENSION) *copy = NULL;

	ctx->errmsg[0] = '\0';
	if (sk_X509_EXTENSION_num(exts) > 0 &&
	    (copy = sk_X509_EXTENSION_deep_copy(exts, X509_EXTENSION_dup, X509_EXTENSION_free)) ==
		NULL) {
		ERR_clear_error();
		cmpc_seterr(ctx, "out of memory storing the requested extensions");
		return CMPC_ERR_INTERNAL;
	}
	sk_X509_EXTENSION_pop_free(ctx->req_exts, X509_EXTENSION_free);
	ctx->req_exts = copy;
	return CMPC_OK;
}

void cmpc_set_validity_days(cmpc_ctx *ctx, int days)
{
	ctx->days = days > 0 ? days : 0;
}

void cmpc_set_implicit_confirm(cmpc_ctx *ctx, int on)
{
	(void)OSSL_CMP_CTX_set_option(ctx->cmp, OSSL_CMP_OPT_IMPLICIT_CONFIRM, on != 0);
}

/* ---- certreq/signer ---------------------------------------------------- */

cmpc_rv cmpc_set1_signer(cmpc_ctx *ctx, X509 *cert, EVP_PKEY *key, STACK_OF(X509) *chain)
{
	const unsigned char *sec = NULL;
	int seclen = 0;

	ctx->errmsg[0] = '\0';
	if ((cert == NULL) != (key == NULL)) {
		cmpc_seterr(ctx, "the signer needs both a certificate and its key: give both, or "
				 "neither to go back to PBM protection");
		return CMPC_ERR_CONFIG;
	}
	if (cert != NULL) {
		if (X509_get0_pubkey(cert) == NULL ||
		    EVP_PKEY_eq(X509_get0_pubkey(cert), key) != 1) {
			ERR_clear_error();
			cmpc_seterr(ctx,
				    "the signer key does not belong to the signer certificate: "
				    "give the key of that certificate");
			return CMPC_ERR_CONFIG;
		}
	} else if (ctx->pbm_secret != NULL) {
		sec = ctx->pbm_secret;
		seclen = (int)ctx->pbm_secret_len;
	}
	/* OpenSSL 3.0 prefers PBM whenever it holds a secret: drop it there. */
	if (!OSSL_CMP_CTX_set1_secretValue(ctx->cmp, sec, seclen) ||
	    !OSSL_CMP_CTX_set1_cert(ctx->cmp, cert) || !OSSL_CMP_CTX_set1_pkey(ctx->cmp, key) ||
	    !OSSL_CMP_CTX_set1_extraCertsOut(ctx->cmp, cert != NULL ? chain : NULL))
		goto oom;
	if (cert != NULL && (!X509_up_ref(cert) || !EVP_PKEY_up_ref(key)))
		goto oom;
	X509_free(ctx->signer_cert);
	EVP_PKEY_free(ctx->signer_key);
	ctx->signer_cert = cert;
	ctx->signer_key = key;
	return CMPC_OK;
oom:
	ERR_clear_error();
	cmpc_seterr(ctx, "out of memory storing the signer");
	return CMPC_ERR_INTERNAL;
}

cmpc_rv cmpc_set_pbm_params(cmpc_ctx *ctx, int owf_nid, int mac_nid, int iterations)
{
	int hash_nid = NID_undef;

	ctx->errmsg[0] = '\0';
	if (owf_nid == 0)
		owf_nid = NID_sha256;
	if (mac_nid == 0)
		mac_nid = NID_hmacWithSHA256;
	if (iterations == 0)
		iterations = DEFAULT_PBM_ITER;
	if (EVP_get_digestbynid(owf_nid) == NULL) {
		cmpc_seterr(ctx,
			    "the PBM one-way function %s is not a digest OpenSSL knows: use "
			    "e.g. SHA256",
			    OBJ_nid2sn(owf_nid) != NULL ? OBJ_nid2sn(owf_nid) : "(unknown)");
		return CMPC_ERR_CONFIG;
	}
	if (!EVP_PBE_find(EVP_PBE_TYPE_PRF, mac_nid, NULL, &hash_nid, NULL) ||
	    EVP_get_digestbynid(hash_nid) == NULL) {
		cmpc_seterr(ctx,
			    "the PBM MAC %s is not an HMAC OpenSSL knows: use e.g. "
			    "hmacWithSHA256",
			    OBJ_nid2sn(mac_nid) != NULL ? OBJ_nid2sn(mac_nid) : "(unknown)");
		return CMPC_ERR_CONFIG;
	}
	if (iterations < 100 || iterations > 100000) {
		cmpc_seterr(ctx,
			    "the PBM iteration count %d is outside 100..100000 (RFC 4210 "
			    "allows any, OpenSSL verifies at most 100000): choose one in range",
			    iterations);
		return CMPC_ERR_CONFIG;
	}
	if (!OSSL_CMP_CTX_set_option(ctx->cmp, OSSL_CMP_OPT_OWF_ALGNID, owf_nid) ||
	    !OSSL_CMP_CTX_set_option(ctx->cmp, OSSL_CMP_OPT_MAC_ALGNID, mac_nid)) {
		ERR_clear_error();
		cmpc_seterr(ctx, "OpenSSL refused the PBM algorithms");
		return CMPC_ERR_CONFIG;
	}
	if (ctx->pbm_owf != owf_nid || ctx->pbm_mac != mac_nid || ctx->pbm_iter != iterations)
		cmpc_pbm_forget(ctx);
	ctx->pbm_owf = owf_nid;
	ctx->pbm_mac = mac_nid;
	ctx->pbm_iter = iterations;
	return CMPC_OK;
}

cmpc_rv cmpc_set1_cert_profile(cmpc_ctx *ctx, const char *profile)
{
	char *copy = NULL;

	ctx->errmsg[0] = '\0';
	if (profile != NULL) {
		if (*profile == '\0') {
			cmpc_seterr(ctx, "the certificate profile name is empty: give the name "
					 "the CA uses, or none");
			return CMPC_ERR_CONFIG;
		}
		if ((copy = OPENSSL_strdup(profile)) == NULL) {
			cmpc_seterr(ctx, "out of memory");
			return CMPC_ERR_INTERNAL;
		}
	}
	OPENSSL_free(ctx->cert_profile);
	ctx->cert_profile = copy;
	return CMPC_OK;
}

cmpc_rv cmpc_set1_sender(cmpc_ctx *ctx, const X509_NAME *name)
{
	X509_NAME *copy = NULL;

	ctx->errmsg[0] = '\0';
	if (name != NULL && (copy = X509_NAME_dup(name)) == NULL) {
		ERR_clear_error();
		cmpc_seterr(ctx, "out of memory storing the sender name");
		return CMPC_ERR_INTERNAL;
	}
	X509_NAME_free(ctx->sender);
	ctx->sender = copy;
	return CMPC_OK;
}

cmpc_rv cmpc_set1_recipient(cmpc_ctx *ctx, const X509_NAME *name)
{
	X509_NAME *copy = NULL;

	ctx->errmsg[0] = '\0';
	if ((name != NULL && (copy = X509_NAME_dup(name)) == NULL) ||
	    !OSSL_CMP_CTX_set1_recipient(ctx->cmp, name)) {
		X509_NAME_free(copy);
		ERR_clear_error();
		cmpc_seterr(ctx, "out of memory storing the recipient name");
		return CMPC_ERR_INTERNAL;
	}
	X509_NAME_free(ctx->recipient);
	ctx->recipient = copy;
	return CMPC_OK;
}

const char *cmpc_transaction_id(const cmpc_ctx *ctx)
{
	return ctx != NULL ? ctx->last_tid : "";
}

int cmpc_left_open(const cmpc_ctx *ctx)
{
	return ctx != NULL && ctx->left_open;
}

void cmpc_set_pending_cb(cmpc_ctx *ctx, cmpc_pending_fn fn, void *arg)
{
	ctx->pending_fn = fn;
	ctx->pending_arg = arg;
}

void cmpc_x_reset(cmpc_ctx *ctx)
{
	sk_X509_pop_free(ctx->x.chain, X509_free);
	OPENSSL_free(ctx->x.rbuf);
	OSSL_CMP_MSG_free(ctx->x.replay);
	X509_free(ctx->x.signer);
	memset(&ctx->x, 0, sizeof(ctx->x));
	ctx->x.rv = CMPC_OK;
}

void cmpc_set_unprotected_errors(cmpc_ctx *ctx, int on)
{
	ctx->unprotected_errors = on != 0;
	(void)OSSL_CMP_CTX_set_option(ctx->cmp, OSSL_CMP_OPT_UNPROTECTED_ERRORS, on != 0);
}
