/*
 * --spool DIR: the CA as a spool directory's far end (p11enroll's server =
 * file:///DIR).  Every NAME.req.der in DIR without a NAME.rsp.der is
 * answered as an HTTP POST of its bytes would be, and the answer is
 * written to a temporary file and renamed to NAME.rsp.der, so that the
 * client never reads half of it.  A request that is shorter than its
 * DER header says is taken for one still being written (scp:// cannot
 * rename: the file grows under its final name) and read again on the
 * next scan, for up to INCOMPLETE_S seconds after its last change.  Runs
 * in a child of the CA, which ends with the CA (PR_SET_PDEATHSIG) or on
 * SIGTERM.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/asn1.h>
#include <openssl/crypto.h>

#include "tests/ca/testca.h"

#define REQ_EXT ".req.der"
#define RSP_EXT ".rsp.der"
#define INCOMPLETE_S 5

static int read_all(const char *path, unsigned char **ret, size_t *ret_len)
{
	unsigned char *buf = NULL, *p;
	size_t len = 0, cap = 0, n;
	FILE *f = fopen(path, "rb");

	if (f == NULL)
		return 0;
	for (;;) {
		if (len == cap) {
			cap = cap > 0 ? cap * 2 : 4096;
			if (cap > 16 * 1024 * 1024 || (p = OPENSSL_realloc(buf, cap)) == NULL)
				break;
			buf = p;
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0) {
			int ok = !ferror(f);

			fclose(f);
			if (!ok) {
				OPENSSL_free(buf);
				return 0;
			}
			*ret = buf;
			*ret_len = len;
			return 1;
		}
	}
	fclose(f);
	OPENSSL_free(buf);
	return 0;
}

static int write_atomic(const char *path, const unsigned char *p, size_t len)
{
	char tmp[4096];
	FILE *f;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp) ||
	    (f = fopen(tmp, "wb")) == NULL)
		return 0;
	if (fwrite(p, 1, len, f) != len || fflush(f) != 0 || fsync(fileno(f)) != 0) {
		fclose(f);
		unlink(tmp);
		return 0;
	}
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		unlink(tmp);
		return 0;
	}
	return 1;
}

/* 1 when body is shorter than the DER object it begins says, and the file
 * at path changed lately: the writer is not done with it. */
static int still_written(const char *path, const unsigned char *body, size_t len)
{
	const unsigned char *p = body;
	long olen;
	int tag, cls;
	struct stat st;

	if (len > 0 && (ASN1_get_object(&p, &olen, &tag, &cls, (long)len) & 0x80) == 0 &&
	    (size_t)(p - body) + (size_t)olen <= len)
		return 0;
	return stat(path, &st) == 0 && time(NULL) - st.st_mtime < INCOMPLETE_S;
}

static void answer(const char *dir, const char *name, ca_handler_fn fn, void *arg)
{
	char req[4096], rsp[4096];
	size_t stem = strlen(name) - strlen(REQ_EXT), len;
	struct ca_reply reply;
	unsigned char *body;

	if (snprintf(req, sizeof(req), "%s/%s", dir, name) >= (int)sizeof(req) ||
	    snprintf(rsp, sizeof(rsp), "%s/%.*s%s", dir, (int)stem, name, RSP_EXT) >=
		(int)sizeof(rsp) ||
	    access(rsp, F_OK) == 0 || !read_all(req, &body, &len))
		return;
	if (still_written(req, body, len)) {
		OPENSSL_free(body);
		return;
	}
	memset(&reply, 0, sizeof(reply));
	if (fn(arg, "/.well-known/cmp", body, len, &reply) != 0 || reply.status != 200 ||
	    reply.body == NULL) {
		/* nothing a client could take: an empty answer says so */
		ca_log("spool: %s: no CMP answer (status %d)", name, reply.status);
		(void)write_atomic(rsp, (const unsigned char *)"", 0);
	} else if (!write_atomic(rsp, reply.body, reply.len)) {
		ca_log("spool: cannot write %s: %s", rsp, strerror(errno));
	} else {
		ca_event("spool: answered %s (%zu bytes)", name, reply.len);
	}
	OPENSSL_free(reply.body);
	OPENSSL_free(body);
}

int ca_spool_serve(const char *dir, ca_handler_fn fn, void *arg)
{
	struct timespec ts = { 0, 50 * 1000000L };
	struct dirent *de;
	DIR *d;
	size_t n;

	while (!ca_stopping()) {
		if ((d = opendir(dir)) == NULL) {
			ca_log("spool: cannot read %s: %s", dir, strerror(errno));
			return 1;
		}
		while ((de = readdir(d)) != NULL && !ca_stopping()) {
			n = strlen(de->d_name);
			if (de->d_name[0] != '.' && n > strlen(REQ_EXT) &&
			    strcmp(de->d_name + n - strlen(REQ_EXT), REQ_EXT) == 0)
				answer(dir, de->d_name, fn, arg);
		}
		closedir(d);
		nanosleep(&ts, NULL);
	}
	return 0;
}
