/*
 * Remote spool directories: one file put into, or fetched from, the
 * directory of a server URL ftp://, ftps://, sftp:// or scp://, for the
 * agent's store-and-forward transport (agent/spool_remote.c).  All of the
 * network is libcurl's: FTP, TLS and SSH included.
 *
 * A request is uploaded under a temporary name that the CA's spool does
 * not take (it ends in neither .req.der nor the configured name) and
 * renamed after the upload (CURLOPT_POSTQUOTE: RNFR/RNTO for FTP, rename
 * for SFTP), so that the CA never reads half a request.  SCP has no
 * rename: the file is written under its name, and a CA that scans the
 * directory may see it growing.
 *
 * The server is verified before anything is sent: FTPS (and ftp:// with
 * explicit AUTH TLS) as HTTPS is, against tls_trusted or the system
 * store; SFTP and SCP by a host key that the known_hosts file lists for
 * the host, nothing else (an unknown or changed key is refused, with its
 * fingerprint and what to do).  Passwords go to libcurl as options, never
 * in a URL, so no message shows them.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "cmp/cmpc-int.h"

struct cmpc_rfile {
	CURL *h; /* kept: the connection serves the next poll */
	cmpc_rfile_opts o;
	char hostkey_msg[2048]; /* why the host key was refused, or "" */
	const char *known_hosts;
	char host[256];
	long port;
};

/* The upload's bytes. */
struct src {
	const unsigned char *p;
	size_t len, off;
};

enum { P_FTP, P_FTPS, P_SFTP, P_SCP, P_NONE };

static int proto_of(const char *url)
{
	static const char *const pfx[] = { "ftp://", "ftps://", "sftp://", "scp://" };
	int i;

	for (i = 0; url != NULL && i < P_NONE; i++)
		if (OPENSSL_strncasecmp(url, pfx[i], strlen(pfx[i])) == 0)
			return i;
	return P_NONE;
}

int cmpc_is_rfile_url(const char *url)
{
	return proto_of(url) != P_NONE;
}

cmpc_rfile *cmpc_rfile_new(const cmpc_rfile_opts *o)
{
	cmpc_rfile *r = OPENSSL_zalloc(sizeof(*r));

	if (r == NULL)
		return NULL;
	if ((r->h = curl_easy_init()) == NULL) {
		OPENSSL_free(r);
		return NULL;
	}
	r->o = *o;
	return r;
}

void cmpc_rfile_free(cmpc_rfile *r)
{
	if (r == NULL)
		return;
	curl_easy_cleanup(r->h);
	OPENSSL_free(r);
}

static size_t on_read(char *buf, size_t size, size_t nmemb, void *arg)
{
	struct src *s = arg;
	size_t n = size * nmemb;

	if (n > s->len - s->off)
		n = s->len - s->off;
	memcpy(buf, s->p + s->off, n);
	s->off += n;
	return n;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	size_t len = size * nmemb;

	return cmpc_transfer_write(arg, data, len) ? len : 0;
}

/* "ssh-ed25519 SHA256:..." of a host key blob, as ssh-keygen -l shows it. */
static void key_text(const struct curl_khkey *k, char *out, size_t outlen)
{
	unsigned char md[EVP_MAX_MD_SIZE], b64[(EVP_MAX_MD_SIZE / 3 + 1) * 4 + 1];
	const unsigned char *p = (const unsigned char *)k->key;
	unsigned int mdlen = 0;
	size_t tlen = 0;
	int n;

	if (k->len < 4 || k->key == NULL ||
	    !EVP_Digest(p, k->len, md, &mdlen, EVP_sha256(), NULL)) {
		snprintf(out, outlen, "(a key that cannot be shown)");
		return;
	}
	/* The blob starts with the key type's name (RFC 4253 6.6). */
	tlen = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
	if (tlen > k->len - 4 || tlen > 64)
		tlen = 0;
	n = EVP_EncodeBlock(b64, md, (int)mdlen);
	while (n > 0 && b64[n - 1] == '=')
		n--;
	snprintf(out, outlen, "%.*s SHA256:%.*s", (int)tlen, tlen > 0 ? (const char *)p + 4 : "",
		 n, (const char *)b64);
}

static const char *host_name(const cmpc_rfile *r, char *buf, size_t len)
{
	if (r->port == 22)
		snprintf(buf, len, "%s", r->host);
	else
		snprintf(buf, len, "[%s]:%ld", r->host, r->port);
	return buf;
}

/* Only a key that known_hosts lists for this host is accepted. */
static int on_host_key(CURL *h, const struct curl_khkey *known, const struct curl_khkey *found,
		       enum curl_khmatch match, void *arg)
{
	cmpc_rfile *r = arg;
	char key[160], hn[300];

	(void)h;
	(void)known;
	if (match == CURLKHMATCH_OK)
		return CURLKHSTAT_FINE;
	key_text(found, key, sizeof(key));
	host_name(r, hn, sizeof(hn));
	if (match == CURLKHMATCH_MISMATCH)
		snprintf(r->hostkey_msg, sizeof(r->hostkey_msg),
			 "the SSH host key of %s (%s) differs from the one in %s: the key "
			 "was changed, or someone is in between; nothing was sent.  If the "
			 "server's administrator confirms the new fingerprint, replace the "
			 "line (ssh-keygen -R '%s' -f FILE; ssh-keyscan -p %ld %s >> FILE)",
			 hn, key, r->known_hosts, hn, r->port, r->host);
	else
		snprintf(r->hostkey_msg, sizeof(r->hostkey_msg),
			 "the SSH host key of %s (%s) is not in %s; nothing was sent.  Add "
			 "it (ssh-keyscan -p %ld %s >> FILE) once its fingerprint "
			 "(ssh-keygen -lf FILE) matches the one the server's administrator "
			 "gives you",
			 hn, key, r->known_hosts, r->port, r->host);
	return CURLKHSTAT_REJECT;
}

/* The server URL's directory with name (URL-escaped) after it; its path
 * as the SSH server sees it into path (when not NULL).  0 when it does
 * not fit or the URL cannot be parsed. */
static int file_url(cmpc_rfile *r, cmpc_ctx *ctx, CURL *h, const char *name, char *out,
		    size_t outlen, char *path, size_t pathlen)
{
	char *esc = curl_easy_escape(h, name, 0), *host = NULL, *port = NULL, *p = NULL;
	size_t n = strlen(ctx->url);
	const char *dp;
	CURLU *u;
	int ok = 0;

	if (esc == NULL)
		return 0;
	if ((u = curl_url()) != NULL && curl_url_set(u, CURLUPART_URL, ctx->url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PATH, &p, CURLU_URLDECODE) == CURLUE_OK) {
		(void)curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
		snprintf(r->host, sizeof(r->host), "%s", host);
		r->port = port != NULL ? strtol(port, NULL, 10) : 22;
		/* sftp://host/~/dir/ is relative to the login directory */
		dp = strncmp(p, "/~/", 3) == 0 ? p + 3 : p;
		ok = snprintf(out, outlen, "%s%s%s", ctx->url,
			      n > 0 && ctx->url[n - 1] == '/' ? "" : "/", esc) < (int)outlen;
		if (ok && path != NULL)
			ok = snprintf(path, pathlen, "%s%s%s", dp,
				      *dp != '\0' && dp[strlen(dp) - 1] != '/' ? "/" : "", name) <
			     (int)pathlen;
	}
	curl_free(esc);
	curl_free(host);
	curl_free(port);
	curl_free(p);
	curl_url_cleanup(u);
	return ok;
}

#define SETOPT(opt, val)                                                                           \
	do {                                                                                       \
		if (curl_easy_setopt(h, opt, val) != CURLE_OK)                                     \
			goto err;                                                                  \
	} while (0)

/* The handle's options for one transfer of url. */
static int setup(cmpc_rfile *r, cmpc_ctx *ctx, const char *url)
{
	CURL *h = r->h;
	int proto = proto_of(ctx->url);
	long long limit_ms = (long long)ctx->x.limit_s * 1000, left;
	long auth = 0;

	if (ctx->x.deadline_ms != 0 && (left = ctx->x.deadline_ms - cmpc_now_ms()) < limit_ms)
		limit_ms = left > 1 ? left : 1;
	if (limit_ms <= 0)
		limit_ms = (long long)ctx->msg_s * 1000;
	/* Keeps the live connection, drops the options of the last transfer. */
	curl_easy_reset(h);
	r->hostkey_msg[0] = '\0';
	ctx->curl_err[0] = '\0';
	SETOPT(CURLOPT_URL, url);
	SETOPT(CURLOPT_NOSIGNAL, 1L);
	SETOPT(CURLOPT_ERRORBUFFER, ctx->curl_err);
#if LIBCURL_VERSION_NUM >= 0x075500
	SETOPT(CURLOPT_PROTOCOLS_STR, "ftp,ftps,sftp,scp");
#else
	SETOPT(CURLOPT_PROTOCOLS,
	       (long)(CURLPROTO_FTP | CURLPROTO_FTPS | CURLPROTO_SFTP | CURLPROTO_SCP));
#endif
	/* Directly: the proxy settings are for HTTP. */
	SETOPT(CURLOPT_PROXY, "");
	SETOPT(CURLOPT_CONNECTTIMEOUT, ctx->connect_s);
	SETOPT(CURLOPT_TIMEOUT_MS, (long)limit_ms);
	if (r->o.user != NULL)
		SETOPT(CURLOPT_USERNAME, r->o.user);
	if (r->o.password != NULL)
		SETOPT(CURLOPT_PASSWORD, r->o.password);
	if (proto == P_FTPS || (proto == P_FTP && r->o.ftp_tls)) {
		SETOPT(CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
		SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
		SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
		if (ctx->tls_cafile != NULL) {
			/* exactly this file, as for HTTPS (cmpc_http.c) */
			SETOPT(CURLOPT_CAINFO, ctx->tls_cafile);
			SETOPT(CURLOPT_CAPATH, (char *)NULL);
		}
	}
	if (proto == P_SFTP || proto == P_SCP) {
		/* without a known_hosts file libcurl takes any host key */
		if (r->o.known_hosts == NULL) {
			cmpc_transfer_fail(ctx, CMPC_ERR_CONFIG,
					   "no SSH known_hosts file is set: the server's host key "
					   "cannot be checked");
			return -1;
		}
		r->known_hosts = r->o.known_hosts;
		SETOPT(CURLOPT_SSH_KNOWNHOSTS, r->o.known_hosts);
		SETOPT(CURLOPT_SSH_KEYFUNCTION, on_host_key);
		SETOPT(CURLOPT_SSH_KEYDATA, r);
		if (r->o.ssh_key != NULL) {
			auth |= CURLSSH_AUTH_PUBLICKEY;
			SETOPT(CURLOPT_SSH_PRIVATE_KEYFILE, r->o.ssh_key);
			if (r->o.ssh_passphrase != NULL)
				SETOPT(CURLOPT_KEYPASSWD, r->o.ssh_passphrase);
		}
		if (r->o.password != NULL)
			auth |= CURLSSH_AUTH_PASSWORD | CURLSSH_AUTH_KEYBOARD;
		if (r->o.ssh_agent || auth == 0)
			auth |= CURLSSH_AUTH_AGENT;
		SETOPT(CURLOPT_SSH_AUTH_TYPES, auth);
	}
	if (cmpc_curl_watch(h, ctx) != CURLE_OK)
		goto err;
	return 0;
err:
	cmpc_transfer_fail(ctx, CMPC_ERR_INTERNAL, "cannot set up libcurl (out of memory?)");
	return -1;
}

/* A failed transfer of file, in words; -1. */
static int fail(cmpc_rfile *r, cmpc_ctx *ctx, CURLcode cc, const char *file)
{
	const char *detail = ctx->curl_err[0] != '\0' ? ctx->curl_err : curl_easy_strerror(cc);
	int proto = proto_of(ctx->url);
	long vr = 0;

	if (cc == CURLE_ABORTED_BY_CALLBACK && ctx->x.stopped) {
		cmpc_xfer_fail(ctx, CMPC_ERR_STOPPED, "%s: stopped while waiting for the answer",
			       ctx->x.what);
		return -1;
	}
	if (r->hostkey_msg[0] != '\0') {
		cmpc_transfer_fail(ctx, CMPC_ERR_TRANSPORT, "%s", r->hostkey_msg);
		return -1;
	}
	if (ctx->x.overflow || cc == CURLE_FILESIZE_EXCEEDED) {
		cmpc_transfer_fail(ctx, CMPC_ERR_TRANSPORT,
				   "the answer %s is larger than the limit of %zu bytes "
				   "(max_response_size)",
				   file, ctx->max_response);
		return -1;
	}
	if (ctx->x.write_oom || cc == CURLE_OUT_OF_MEMORY) {
		cmpc_transfer_fail(ctx, CMPC_ERR_INTERNAL, "out of memory reading %s", file);
		return -1;
	}
	if (cc == CURLE_OPERATION_TIMEDOUT) {
		cmpc_transfer_timeout(ctx, detail);
		return -1;
	}
	if (cc != CURLE_USE_SSL_FAILED && cmpc_curl_tls_error(cc) &&
	    (proto == P_FTP || proto == P_FTPS)) {
		if (curl_easy_getinfo(r->h, CURLINFO_SSL_VERIFYRESULT, &vr) == CURLE_OK &&
		    vr != X509_V_OK)
			cmpc_transfer_fail(ctx, CMPC_ERR_TLS,
					   "TLS server verification failed: %s (%s); check the "
					   "TLS trust anchors (tls_trusted) and that the URL "
					   "names the server's host",
					   X509_verify_cert_error_string(vr), detail);
		else
			cmpc_transfer_fail(ctx, CMPC_ERR_TLS,
					   "TLS handshake failed: %s; check that the server "
					   "speaks %s on that port and the TLS trust anchors "
					   "(tls_trusted)",
					   detail,
					   proto == P_FTPS ? "implicit FTPS (ftps://)"
							   : "FTP with AUTH TLS");
		return -1;
	}
	switch (cc) {
	case CURLE_USE_SSL_FAILED:
		cmpc_transfer_fail(ctx, CMPC_ERR_TLS,
				   "the FTP server does not offer TLS (AUTH TLS refused: %s); "
				   "ask for FTPS, or turn store_ftp_tls off to send in the clear",
				   detail);
		break;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
		cmpc_transfer_fail(ctx, CMPC_ERR_TRANSPORT,
				   "cannot connect: %s; check the server URL and that the "
				   "server is running",
				   detail);
		break;
	case CURLE_LOGIN_DENIED:
	case CURLE_AUTH_ERROR:
		cmpc_transfer_fail(ctx, CMPC_ERR_TRANSPORT,
				   "the server refused the login: %s; check the user, %s",
				   detail,
				   proto == P_SFTP || proto == P_SCP
				       ? "store_ssh_key (and its passphrase, "
					 "store_ssh_passphrase_source) or store_password_source, "
					 "and that the server has the public key"
				       : "store_password_source");
		break;
	case CURLE_QUOTE_ERROR:
		cmpc_transfer_fail(ctx, CMPC_ERR_TRANSPORT,
				   "the upload could not be renamed to %s: %s; check that the "
				   "user may rename files in the directory and that no file "
				   "of that name is there",
				   file, detail);
		break;
	case CURLE_REMOTE_ACCESS_DENIED:
	case CURLE_UPLOAD_FAILED:
		cmpc_transfer_fail(ctx, CMPC_ERR_TRANSPORT,
				   "the server refused %s: %s; check that the directory exists "
				   "and the user may write and read in it",
				   file, detail);
		break;
	default:
		cmpc_transfer_fail(ctx, CMPC_ERR_TRANSPORT,
				   "transfer of %s failed: %s; check the server URL and the "
				   "network",
				   file, detail);
	}
	return -1;
}

/* SFTP's "rename" with both names in quotes; a '"' or '\\' is escaped. */
static int quoted(char *out, size_t len, const char *cmd, const char *a, const char *b)
{
	const char *s[2] = { a, b }, *p;
	size_t o = 0;
	int i, n;

	if ((n = snprintf(out, len, "%s", cmd)) < 0 || (size_t)n >= len)
		return 0;
	o = (size_t)n;
	for (i = 0; i < 2 && s[i] != NULL; i++) {
		if (o + 2 >= len)
			return 0;
		out[o++] = ' ';
		out[o++] = '"';
		for (p = s[i]; *p != '\0'; p++) {
			if (o + 3 >= len)
				return 0;
			if (*p == '"' || *p == '\\')
				out[o++] = '\\';
			out[o++] = *p;
		}
		out[o++] = '"';
	}
	out[o] = '\0';
	return 1;
}

int cmpc_rfile_put(cmpc_rfile *r, cmpc_ctx *ctx, const char *name, const char *tmp_name,
		   const unsigned char *der, size_t len)
{
	int proto = proto_of(ctx->url), ok = 0;
	char url[2048], from[1100], to[1100], q1[2300], q2[1200];
	struct curl_slist *post = NULL, *n;
	struct src s = { der, len, 0 };
	CURL *h = r->h;
	CURLcode cc;

	if (proto == P_SCP)
		tmp_name = name;
	/* the upload goes to url; the SSH server's paths for its rename */
	if (!file_url(r, ctx, h, name, url, sizeof(url), to, sizeof(to)) ||
	    !file_url(r, ctx, h, tmp_name, url, sizeof(url), from, sizeof(from))) {
		cmpc_transfer_fail(ctx, CMPC_ERR_CONFIG,
				   "the file name %s makes no URL in %s (too long?)", name,
				   ctx->url);
		return -1;
	}
	if (setup(r, ctx, url) < 0)
		return -1;
	if (proto == P_FTP || proto == P_FTPS) {
		/* relative: the commands run in the directory of the upload;
		 * FTP takes the name up to the line's end, as it is */
		ok = snprintf(q1, sizeof(q1), "RNFR %s", tmp_name) < (int)sizeof(q1) &&
		     snprintf(q2, sizeof(q2), "RNTO %s", name) < (int)sizeof(q2);
	} else if (proto == P_SFTP) {
		ok = quoted(q1, sizeof(q1), "rename", from, to);
	}
	if (proto != P_SCP && !ok) {
		cmpc_transfer_fail(ctx, CMPC_ERR_CONFIG, "the file name %s is too long", name);
		return -1;
	}
	if (ok && ((post = curl_slist_append(NULL, q1)) == NULL ||
		   (proto != P_SFTP && (n = curl_slist_append(post, q2)) == NULL))) {
		curl_slist_free_all(post);
		cmpc_transfer_fail(ctx, CMPC_ERR_INTERNAL, "out of memory");
		return -1;
	}
	if (curl_easy_setopt(h, CURLOPT_UPLOAD, 1L) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_READDATA, &s) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len) != CURLE_OK ||
	    (post != NULL && curl_easy_setopt(h, CURLOPT_POSTQUOTE, post) != CURLE_OK)) {
		curl_slist_free_all(post);
		cmpc_transfer_fail(ctx, CMPC_ERR_INTERNAL, "cannot set up libcurl");
		return -1;
	}
	cmpc_log(ctx, LOG_DEBUG, "uploading %zu bytes to %s%s%s", len, url,
		 post != NULL ? ", renamed to " : "", post != NULL ? name : "");
	cc = curl_easy_perform(h);
	(void)curl_easy_setopt(h, CURLOPT_POSTQUOTE, NULL);
	curl_slist_free_all(post);
	if (cc != CURLE_OK)
		return fail(r, ctx, cc, url);
	return 0;
}

/* SCP says "no such file" only in the server's words. */
static int scp_missing(cmpc_ctx *ctx, CURLcode cc)
{
	return cc == CURLE_SSH && strstr(ctx->curl_err, "No such file") != NULL;
}

int cmpc_rfile_get(cmpc_rfile *r, cmpc_ctx *ctx, const char *name)
{
	CURL *h = r->h;
	char url[2048];
	CURLcode cc;

	if (!file_url(r, ctx, h, name, url, sizeof(url), NULL, 0)) {
		cmpc_transfer_fail(ctx, CMPC_ERR_CONFIG,
				   "the file name %s makes no URL in %s (too long?)", name,
				   ctx->url);
		return -1;
	}
	if (setup(r, ctx, url) < 0)
		return -1;
	ctx->x.rlen = 0;
	ctx->x.overflow = ctx->x.write_oom = 0;
	if (curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_WRITEDATA, ctx) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)ctx->max_response) !=
		CURLE_OK) {
		cmpc_transfer_fail(ctx, CMPC_ERR_INTERNAL, "cannot set up libcurl");
		return -1;
	}
	cc = curl_easy_perform(h);
	if (cc == CURLE_REMOTE_FILE_NOT_FOUND || scp_missing(ctx, cc)) {
		ctx->x.rlen = 0;
		return 0;
	}
	if (cc != CURLE_OK)
		return fail(r, ctx, cc, url);
	cmpc_log(ctx, LOG_DEBUG, "read %zu bytes from %s", ctx->x.rlen, url);
	return 1;
}
