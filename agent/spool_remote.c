/*
 * The remote stores of server = ftp://, ftps://, sftp:// or scp://
 * [user@]host[:port]/dir/: the same files as file:///DIR (spool_dir.c),
 * in a directory on a server that the CA (or its relay) reads.  The
 * network is the protocol layer's (cmp/cmpc_rfile.c); here are the
 * settings, the secrets and the temporary upload name.
 *
 * As with file:///, the files are left where they are: the CA's side
 * decides when a request and its answer are gone.
 */
#include "config.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "agent/agent-cmd.h"
#include "agent/spool.h"

/* A poll is one small transfer over the kept connection. */
#define POLL_MS 500

struct remote {
	cmpc_rfile *rf;
	secret *password, *passphrase;
	char known_hosts[1024];
};

static int is_ssh(const char *url)
{
	return strncasecmp(url, "sftp://", 7) == 0 || strncasecmp(url, "scp://", 6) == 0;
}

static const char *kind_of(const char *url)
{
	if (strncasecmp(url, "sftp://", 7) == 0)
		return "SFTP directory";
	if (strncasecmp(url, "scp://", 6) == 0)
		return "SCP directory";
	return strncasecmp(url, "ftps://", 7) == 0 ? "FTPS directory" : "FTP directory";
}

/* The upload's name until it is renamed: hidden, and ending in neither
 * the request's name nor .req.der, so that the CA's spool passes it by. */
static int tmp_name(const spool_msg *m, char *out, size_t len)
{
	int n = snprintf(out, len, ".%s.part", m->req_name);

	return n >= 0 && (size_t)n < len ? 0 : -1;
}

static int put(spool_store *st, cmpc_ctx *ctx, const spool_msg *m, const unsigned char *der,
	       size_t len)
{
	struct remote *r = st->arg;
	char tmp[600];

	if (tmp_name(m, tmp, sizeof(tmp)) < 0) {
		cmpc_transfer_fail(ctx, CMPC_ERR_TRANSPORT, "the file name %s is too long",
				   m->req_name);
		return -1;
	}
	return cmpc_rfile_put(r->rf, ctx, m->req_name, tmp, der, len);
}

static int get(spool_store *st, cmpc_ctx *ctx, const spool_msg *m)
{
	struct remote *r = st->arg;

	return cmpc_rfile_get(r->rf, ctx, m->rsp_name);
}

static void close_remote(spool_store *st)
{
	struct remote *r = st->arg;

	if (r == NULL)
		return;
	cmpc_rfile_free(r->rf);
	secret_free(r->password);
	secret_free(r->passphrase);
	OPENSSL_cleanse(r, sizeof(*r));
	free(r);
	st->arg = NULL;
}

/* scheme://user@host...: a user before the host. */
static int url_has_user(const char *url)
{
	const char *host = strstr(url, "://") + 3;
	size_t n = strcspn(host, "/");
	const char *at = memchr(host, '@', n);

	return at != NULL && at != host;
}

/* known_hosts as configured, else the user's ~/.ssh/known_hosts. */
static int known_hosts_path(const conf_enrollment *e, char *out, size_t len)
{
	const struct passwd *pw;
	const char *home;
	int n;

	if (e->store_known_hosts != NULL) {
		n = snprintf(out, len, "%s", e->store_known_hosts);
	} else {
		if ((home = getenv("HOME")) == NULL || *home == '\0')
			home = (pw = getpwuid(getuid())) != NULL ? pw->pw_dir : NULL;
		if (home == NULL)
			return -1;
		n = snprintf(out, len, "%s/.ssh/known_hosts", home);
	}
	return n >= 0 && (size_t)n < len ? 0 : -1;
}

int spool_remote_check(const conf_enrollment *e, char *why, size_t whylen)
{
	char kh[1024];

	if (e->server == NULL || !cmpc_is_rfile_url(e->server))
		return 0;
	if (strncasecmp(e->server, "ftp://", 6) != 0 && e->store_ftp_tls == 1)
		return agent_fail(why, whylen,
			    "store_ftp_tls is for ftp:// servers (ftps:// is always TLS)");
	if (!is_ssh(e->server)) {
		if (e->store_ssh_key != NULL || e->store_ssh_passphrase_source != NULL ||
		    e->store_ssh_agent == 1 || e->store_known_hosts != NULL)
			return agent_fail(why, whylen,
				    "store_ssh_key, store_ssh_passphrase_source, store_ssh_agent and "
				    "store_known_hosts are for sftp:// and scp:// servers");
		return 0;
	}
	if (e->store_user == NULL && !url_has_user(e->server))
		return agent_fail(why, whylen,
			    "an sftp:// or scp:// server needs a login user: write it in the URL "
			    "(sftp://user@host/dir/) or set store_user");
	if (known_hosts_path(e, kh, sizeof(kh)) < 0)
		return agent_fail(why, whylen,
			    "no home directory for the default ~/.ssh/known_hosts: set "
			    "store_known_hosts");
	if (access(kh, R_OK) != 0)
		return agent_fail(why, whylen,
			    "cannot read the SSH host keys %s (%s): an sftp:// or scp:// server is "
			    "only accepted with a host key listed there; set store_known_hosts, or "
			    "add the server's key (ssh-keyscan, then compare its fingerprint)",
			    kh, strerror(errno));
	if (e->store_ssh_passphrase_source != NULL && e->store_ssh_key == NULL)
		return agent_fail(why, whylen, "store_ssh_passphrase_source without store_ssh_key");
	return 0;
}

int spool_remote_open(const conf_enrollment *e, spool_store *st, char *err, size_t errlen)
{
	cmpc_rfile_opts o;
	struct remote *r;
	int ssh = is_ssh(e->server);

	if (spool_remote_check(e, err, errlen) < 0)
		return -1;
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	st->arg = r;
	if (e->store_password_source != NULL &&
	    secret_read(e->store_password_source, "store_password_source", &r->password, err,
			errlen) < 0)
		goto fail;
	if (e->store_ssh_passphrase_source != NULL &&
	    secret_read(e->store_ssh_passphrase_source, "store_ssh_passphrase_source",
			&r->passphrase, err, errlen) < 0)
		goto fail;
	if (ssh && known_hosts_path(e, r->known_hosts, sizeof(r->known_hosts)) < 0) {
		snprintf(err, errlen, "no home directory for ~/.ssh/known_hosts: set "
				      "store_known_hosts");
		goto fail;
	}
	memset(&o, 0, sizeof(o));
	o.user = e->store_user;
	o.password = r->password != NULL ? r->password->buf : NULL;
	o.ssh_key = e->store_ssh_key;
	o.ssh_passphrase = r->passphrase != NULL ? r->passphrase->buf : NULL;
	o.ssh_agent = e->store_ssh_agent == 1;
	o.known_hosts = ssh ? r->known_hosts : NULL;
	o.ftp_tls = e->store_ftp_tls == 1;
	if ((r->rf = cmpc_rfile_new(&o)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	/* the URL as configured: it carries no password (cmpc_set1_server) */
	if ((size_t)snprintf(st->where, sizeof(st->where), "%s", e->server) >= sizeof(st->where)) {
		snprintf(err, errlen, "the server URL is too long");
		goto fail;
	}
	st->kind = kind_of(e->server);
	st->poll_ms = POLL_MS;
	st->put = put;
	st->get = get;
	st->close = close_remote;
	return 0;
fail:
	close_remote(st);
	return -1;
}
