/*
 * CMP over HTTP(S) (RFC 6712) through libcurl: the default transfer
 * function of the transport seam (cmpc_transfer.c).  One easy handle per
 * context, so that certConf and pollReq reuse the connection of the ir.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "cmp/cmpc-int.h"

#define PKIXCMP "application/pkixcmp"

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	size_t len = size * nmemb;

	/* 0 aborts the transfer with CURLE_WRITE_ERROR */
	return cmpc_transfer_write(arg, data, len) ? len : 0;
}

/* The context whose transfer runs on this thread: OpenSSL's info callback
 * has no argument. */
static __thread cmpc_ctx *tls_target;

/* OpenSSL 3.0 names the TLS 1.3 alerts "unknown". */
static const char *alert_name(int desc)
{
	switch (desc) {
	case 42:
		return "bad certificate";
	case 43:
		return "unsupported certificate";
	case 44:
		return "certificate revoked";
	case 45:
		return "certificate expired";
	case 46:
		return "certificate unknown";
	case 48:
		return "unknown CA";
	case 49:
		return "access denied";
	case 51:
		return "decrypt error";
	case 116:
		return "certificate required";
	}
	return SSL_alert_desc_string_long(desc);
}

/* Fatal alerts from the server: with TLS 1.3 a refused client certificate
 * is only reported by an alert after the client's Finished, when libcurl
 * reads the response, so libcurl calls it a receive error. */
static void on_tls_info(const SSL *ssl, int where, int ret)
{
	cmpc_ctx *ctx = tls_target;

	(void)ssl;
	if (ctx == NULL || (where & SSL_CB_READ_ALERT) != SSL_CB_READ_ALERT ||
	    (ret >> 8) != SSL3_AL_FATAL || ctx->x.tls_alert[0] != '\0')
		return;
	snprintf(ctx->x.tls_alert, sizeof(ctx->x.tls_alert), "alert %s",
		 alert_name(ret & 0xff));
}

/* Called by OpenSSL only when the server sent a CertificateRequest. */
static int on_cert_request(SSL *ssl, void *arg)
{
	cmpc_ctx *ctx = arg;

	(void)ssl;
	ctx->x.tls_cert_requested = 1;
	cmpc_log(ctx, LOG_DEBUG, "the server asks for a TLS client certificate; %s",
		 ctx->tls_cert != NULL ? "sending ours" : "none is configured");
	return 1;
}

/*
 * libcurl's SSL_CTX, before the connection: the client certificate and
 * key go in here.  The key may be a token key from libp11: the handshake
 * signature is then made on the token through the same module instance,
 * with no engine involved.  The SSL_CTX takes its own references.
 */
static CURLcode on_ssl_ctx(CURL *h, void *sslctx, void *arg)
{
	cmpc_ctx *ctx = arg;
	SSL_CTX *sc = sslctx;
	char why[512];
	int i;

	(void)h;
	SSL_CTX_set_info_callback(sc, on_tls_info);
	SSL_CTX_set_cert_cb(sc, on_cert_request, ctx);
	if (ctx->tls_cert == NULL)
		return CURLE_OK;
	ERR_clear_error();
	if (SSL_CTX_use_certificate(sc, ctx->tls_cert) != 1 ||
	    SSL_CTX_use_PrivateKey(sc, ctx->tls_key) != 1)
		goto err;
	for (i = 0; i < sk_X509_num(ctx->tls_chain); i++)
		if (SSL_CTX_add1_chain_cert(sc, sk_X509_value(ctx->tls_chain, i)) != 1)
			goto err;
	if (SSL_CTX_check_private_key(sc) != 1)
		goto err;
	return CURLE_OK;
err:
	cmpc_ossl_errors(why, sizeof(why));
	cmpc_xfer_fail(ctx, CMPC_ERR_TLS,
		       "connecting to %s: cannot use the TLS client certificate and key: %s; "
		       "check that the key on the token belongs to the certificate and is usable "
		       "for signing",
		       ctx->url, why);
	return CURLE_SSL_CERTPROBLEM;
}

static struct curl_slist *make_headers(void)
{
	/* "Expect:" stops curl from waiting for a 100-continue. */
	static const char *const hdr[] = {("Content-Type: " PKIXCMP), "Cache-Control: no-cache",
					  "Expect:"};
	struct curl_slist *l = NULL, *n;
	size_t i;

	for (i = 0; i < sizeof(hdr) / sizeof(hdr[0]); i++) {
		if ((n = curl_slist_append(l, hdr[i])) == NULL) {
			curl_slist_free_all(l);
			return NULL;
		}
		l = n;
	}
	return l;
}

#define SETOPT(opt, val)                                                                           \
	do {                                                                                       \
		if ((cc = curl_easy_setopt(h, opt, val)) != CURLE_OK)                              \
			goto err;                                                                  \
	} while (0)

cmpc_rv cmpc_http_prepare(cmpc_ctx *ctx)
{
	CURL *h = ctx->curl;
	CURLcode cc = CURLE_OK;
	int https = ctx->url != NULL && strncasecmp(ctx->url, "https:", 6) == 0;

	if (ctx->tls_cert != NULL && !https) {
		cmpc_seterr(ctx,
			    "a TLS client certificate is configured, but the server URL %s is "
			    "not https://: TLS client authentication needs an https:// URL",
			    ctx->url != NULL ? ctx->url : "(none)");
		return CMPC_ERR_CONFIG;
	}
	/* Keeps live connections, drops the options of an earlier exchange. */
	curl_easy_reset(h);
	if (ctx->headers == NULL && (ctx->headers = make_headers()) == NULL) {
		cmpc_seterr(ctx, "out of memory setting up libcurl");
		return CMPC_ERR_INTERNAL;
	}
	SETOPT(CURLOPT_URL, ctx->url);
	SETOPT(CURLOPT_NOSIGNAL, 1L);
	SETOPT(CURLOPT_ERRORBUFFER, ctx->curl_err);
	SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
	SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
	SETOPT(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
	SETOPT(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
	SETOPT(CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
	SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
	if (ctx->tls_cafile != NULL) {
		/* Exactly this file: Debian's libcurl also has a CA path
		 * (/etc/ssl/certs) that would add every system CA. */
		SETOPT(CURLOPT_CAINFO, ctx->tls_cafile);
		SETOPT(CURLOPT_CAPATH, (char *)NULL);
	}
	if (https) {
		/* Only libcurl built with OpenSSL has the SSL_CTX callback.  It
		 * carries the client certificate; without one it only sharpens
		 * the failure messages, and its absence is fine. */
		cc = curl_easy_setopt(h, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
		if (cc == CURLE_OK)
			cc = curl_easy_setopt(h, CURLOPT_SSL_CTX_DATA, ctx);
		if (cc != CURLE_OK && ctx->tls_cert != NULL) {
			cmpc_seterr(ctx,
				    "TLS client authentication needs libcurl built with OpenSSL "
				    "(%s): install libcurl4-openssl or turn it off",
				    curl_easy_strerror(cc));
			return CMPC_ERR_CONFIG;
		}
	}
	/* Unset, libcurl reads http_proxy, https_proxy, all_proxy and
	 * no_proxy itself; a configured value wins over them.  A proxy sees
	 * the CMP messages only (and for https:// only a CONNECT): the PBM
	 * secret and the PIN never leave this process. */
	if (ctx->proxy != NULL)
		SETOPT(CURLOPT_PROXY, ctx->proxy);
	if (ctx->no_proxy != NULL)
		SETOPT(CURLOPT_NOPROXY, ctx->no_proxy);
	SETOPT(CURLOPT_CONNECTTIMEOUT, ctx->connect_s);
	SETOPT(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)ctx->max_response);
	SETOPT(CURLOPT_HTTPHEADER, ctx->headers);
	SETOPT(CURLOPT_USERAGENT, "p11enroll");
	SETOPT(CURLOPT_POST, 1L);
	SETOPT(CURLOPT_WRITEFUNCTION, on_body);
	SETOPT(CURLOPT_WRITEDATA, ctx);
	if ((cc = cmpc_curl_watch(h, ctx)) != CURLE_OK)
		goto err;
	return CMPC_OK;
err:
	cmpc_seterr(ctx, "cannot set up libcurl for %s: %s", ctx->url, curl_easy_strerror(cc));
	return CMPC_ERR_INTERNAL;
}

/* After a TLS 1.3 handshake the server's verdict on the client certificate
 * arrives with the first read: an alert, or a closed connection. */
static int is_conn_lost(CURLcode cc)
{
	return cc == CURLE_RECV_ERROR || cc == CURLE_SEND_ERROR || cc == CURLE_GOT_NOTHING;
}

/* "application/pkixcmp", any case, optionally followed by parameters. */
static int is_pkixcmp(const char *ct)
{
	size_t n = strlen(PKIXCMP);

	if (ct == NULL)
		return 0;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	if (strncasecmp(ct, PKIXCMP, n) != 0)
		return 0;
	ct += n;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	return *ct == '\0' || *ct == ';';
}

static cmpc_rv fail_curl(cmpc_ctx *ctx, CURLcode cc, const char *what)
{
	const char *detail = ctx->curl_err[0] != '\0' ? ctx->curl_err : curl_easy_strerror(cc);
	long vr = 0;

	/* Too large, by its Content-Length or by the bytes that came: the
	 * layer words it, as for every transport. */
	if (ctx->x.overflow || cc == CURLE_FILESIZE_EXCEEDED) {
		ctx->x.overflow = 1;
		return CMPC_ERR_TRANSPORT;
	}
	if (cmpc_curl_tls_error(cc) ||
	    ((ctx->x.tls_cert_requested || ctx->x.tls_alert[0] != '\0') && is_conn_lost(cc))) {
		if (cmpc_curl_tls_error(cc) &&
		    curl_easy_getinfo(ctx->curl, CURLINFO_SSL_VERIFYRESULT, &vr) == CURLE_OK &&
		    vr != X509_V_OK)
			return cmpc_xfer_fail(
			    ctx, CMPC_ERR_TLS,
			    "%s: TLS server verification failed: %s (%s); check the TLS "
			    "trust anchors (tls_trusted) and that the URL names the server's "
			    "host",
			    what, X509_verify_cert_error_string(vr), detail);
		else if (ctx->x.tls_cert_requested && ctx->tls_cert == NULL)
			return cmpc_xfer_fail(
			    ctx, CMPC_ERR_TLS,
			    "%s: TLS handshake failed: the server requires a TLS client "
			    "certificate and none is configured (%s%s%s); set tls_client to "
			    "the label of a certificate on the token that the server trusts",
			    what, ctx->x.tls_alert, ctx->x.tls_alert[0] ? "; " : "", detail);
		else if (ctx->x.tls_cert_requested)
			return cmpc_xfer_fail(
			    ctx, CMPC_ERR_TLS,
			    "%s: TLS handshake failed: the server did not accept our TLS "
			    "client certificate (%s%s%s); check tls_client (the certificate "
			    "and its key on the token, its validity and key usage) and that "
			    "the server trusts the CA that issued it",
			    what, ctx->x.tls_alert, ctx->x.tls_alert[0] ? "; " : "", detail);
		else if (ctx->x.tls_alert[0] != '\0')
			return cmpc_xfer_fail(
			    ctx, CMPC_ERR_TLS,
			    "%s: TLS handshake failed: the server sent the %s (%s); "
			    "check that the server speaks HTTPS on that port, the TLS trust "
			    "anchors (tls_trusted) and, if the server wants one, the TLS "
			    "client certificate (tls_client)",
			    what, ctx->x.tls_alert, detail);
		else
			return cmpc_xfer_fail(
			    ctx, CMPC_ERR_TLS,
			    "%s: TLS handshake failed: %s; check that the server speaks "
			    "HTTPS on that port and the TLS trust anchors (tls_trusted)",
			    what, detail);
	}
	switch (cc) {
	case CURLE_OPERATION_TIMEDOUT:
		return cmpc_transfer_timeout(ctx, detail);
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
		if (ctx->proxy != NULL)
			return cmpc_xfer_fail(ctx, CMPC_ERR_TRANSPORT,
					      "%s: cannot connect: %s; check the server URL, that "
					      "the CA is running, and the proxy %s (setting proxy%s)",
					      what, detail, ctx->proxy,
					      ctx->no_proxy != NULL ? ", and no_proxy" : "");
		return cmpc_xfer_fail(
		    ctx, CMPC_ERR_TRANSPORT,
		    "%s: cannot connect: %s; check the server URL, that the CA is running "
		    "and any proxy settings (http_proxy, https_proxy, no_proxy)",
		    what, detail);
	case CURLE_OUT_OF_MEMORY:
		return cmpc_xfer_fail(ctx, CMPC_ERR_INTERNAL, "%s: out of memory (%s)", what,
				      detail);
	default:
		return cmpc_xfer_fail(
		    ctx, CMPC_ERR_TRANSPORT,
		    "%s: HTTP transfer failed: %s; check the server URL and the network", what,
		    detail);
	}
}

cmpc_rv cmpc_http_transfer(cmpc_ctx *ctx, const unsigned char *req, size_t req_len, long timeout_ms,
			   void *arg)
{
	const char *what = ctx->x.what;
	char *ct = NULL, *loc = NULL;
	long code = 0;
	CURLcode cc;

	(void)arg;
	ctx->x.tls_cert_requested = 0;
	ctx->x.tls_alert[0] = '\0';
	ctx->curl_err[0] = '\0';
	if (curl_easy_setopt(ctx->curl, CURLOPT_POSTFIELDS, (const void *)req) != CURLE_OK ||
	    curl_easy_setopt(ctx->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req_len) !=
		CURLE_OK ||
	    curl_easy_setopt(ctx->curl, CURLOPT_TIMEOUT_MS, timeout_ms) != CURLE_OK) {
		(void)curl_easy_setopt(ctx->curl, CURLOPT_POSTFIELDS, NULL);
		return cmpc_xfer_fail(ctx, CMPC_ERR_INTERNAL, "%s: cannot set up libcurl", what);
	}
	cmpc_log(ctx, LOG_DEBUG, "posting %zu bytes (%s) to %s", req_len,
		 cmpc_body_name(ctx->x.req_type), ctx->url);
	tls_target = ctx;
	cc = curl_easy_perform(ctx->curl);
	tls_target = NULL;
	/* req is the caller's: the handle must not keep pointing at it */
	(void)curl_easy_setopt(ctx->curl, CURLOPT_POSTFIELDS, NULL);
	(void)curl_easy_getinfo(ctx->curl, CURLINFO_RESPONSE_CODE, &code);
	(void)curl_easy_getinfo(ctx->curl, CURLINFO_CONTENT_TYPE, &ct);
	if (code >= 300 && code < 400) {
		(void)curl_easy_getinfo(ctx->curl, CURLINFO_REDIRECT_URL, &loc);
		return cmpc_xfer_fail(
		    ctx, CMPC_ERR_TRANSPORT,
		    "%s: the server redirected (HTTP %ld) to %s, and redirects are "
		    "not followed; if that location is right, configure it as the "
		    "server URL",
		    what, code, loc != NULL ? loc : "(no Location given)");
	}
	if (code != 0 && code != 200)
		return cmpc_xfer_fail(ctx, CMPC_ERR_TRANSPORT,
				      "%s: the server answered HTTP %ld instead of 200; check the "
				      "server URL (its path) and the CA's log",
				      what, code);
	if (cc == CURLE_ABORTED_BY_CALLBACK && ctx->x.stopped)
		return cmpc_xfer_fail(ctx, CMPC_ERR_STOPPED, "%s: stopped while waiting for the "
							     "answer",
				      what);
	if (cc != CURLE_OK)
		return fail_curl(ctx, cc, what);
	if (!is_pkixcmp(ct))
		return cmpc_xfer_fail(ctx, CMPC_ERR_TRANSPORT,
				      "%s: the response has content type '%s', not " PKIXCMP
				      "; check that the URL points at the CMP endpoint",
				      what, ct != NULL ? ct : "(none)");
	return CMPC_OK;
}

void cmpc_http_free(cmpc_ctx *ctx)
{
	if (ctx->curl != NULL)
		curl_easy_cleanup(ctx->curl);
	ctx->curl = NULL;
	curl_slist_free_all(ctx->headers);
	ctx->headers = NULL;
}
