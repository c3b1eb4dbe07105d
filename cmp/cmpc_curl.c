/*
 * What every libcurl transfer of the layer shares (HTTP, TCP, the remote
 * spools, mail): the progress callback that shows waits and stops on
 * request, the debug notes, and which failures are TLS's.
 */
#include "config.h"

#include <syslog.h>

#include "cmp/cmpc-int.h"

int cmpc_curl_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return cmpc_wait_tick(arg);
}

/* Connection notes only (CURLINFO_TEXT): the commands (PASS, AUTH) and
 * the data are never passed on. */
static int on_debug(CURL *h, curl_infotype type, char *data, size_t size, void *arg)
{
	(void)h;
	if (type != CURLINFO_TEXT)
		return 0;
	while (size > 0 && (data[size - 1] == '\n' || data[size - 1] == '\r'))
		size--;
	if (size > 512)
		size = 512;
	cmpc_log(arg, LOG_DEBUG, "curl: %.*s", (int)size, data);
	return 0;
}

CURLcode cmpc_curl_watch(CURL *h, cmpc_ctx *ctx)
{
	CURLcode cc = CURLE_OK;

	if (ctx->wait_fn != NULL &&
	    ((cc = curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, cmpc_curl_progress)) != CURLE_OK ||
	     (cc = curl_easy_setopt(h, CURLOPT_XFERINFODATA, ctx)) != CURLE_OK ||
	     (cc = curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L)) != CURLE_OK))
		return cc;
	if (ctx->log_fn != NULL &&
	    ((cc = curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, on_debug)) != CURLE_OK ||
	     (cc = curl_easy_setopt(h, CURLOPT_DEBUGDATA, ctx)) != CURLE_OK ||
	     (cc = curl_easy_setopt(h, CURLOPT_VERBOSE, 1L)) != CURLE_OK))
		return cc;
	return cc;
}

int cmpc_curl_tls_error(CURLcode cc)
{
	switch (cc) {
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_SHUTDOWN_FAILED:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_USE_SSL_FAILED:
		return 1;
	default:
		return 0;
	}
}
