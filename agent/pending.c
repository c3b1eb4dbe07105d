/*
 * A transaction the CA answered "waiting", kept in the state directory as
 * NAME.pending so that `p11enroll resume NAME` can finish or abandon it
 * after this process ended.  One "key value" per line; written to a
 * temporary file, fsync'ed and renamed over the old one, so that a crash
 * leaves either the old or the new state, never a mix.  The file is read
 * back as untrusted input: every field is checked, unknown keys refused.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/agent-cmd.h"

#ifndef LOCALSTATEDIR
#define LOCALSTATEDIR "/var"
#endif
#define DEFAULT_STATE_DIR LOCALSTATEDIR "/lib/p11enroll"
#define MAX_FILE 4096

const char *pending_state_dir(const conf_enrollment *e)
{
	return e->state_dir != NULL ? e->state_dir : DEFAULT_STATE_DIR;
}

static const char *const req_names[] = { "ir", "cr", "kur", "p10cr" };

const char *pending_req_name(int type)
{
	if (type >= 0 && (size_t)type < sizeof(req_names) / sizeof(req_names[0]))
		return req_names[type];
	return "?";
}

/* Enrollment names become file names: no '/', no leading '.', printable. */
static int name_ok(const char *name)
{
	const char *p;

	if (name == NULL || *name == '\0' || *name == '.' || strlen(name) > 200)
		return 0;
	for (p = name; *p != '\0'; p++)
		if (*p == '/' || (unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
			return 0;
	return 1;
}

int pending_path(const conf_enrollment *e, char *out, size_t len)
{
	int n;

	if (!name_ok(e->name))
		return -1;
	n = snprintf(out, len, "%s/%s.pending", pending_state_dir(e), e->name);
	return n > 0 && (size_t)n < len ? 0 : -1;
}

/* Room for the longest hex field: the transaction id and the nonce
 * (CMPC_ID_MAX bytes) or the key id (TOK_ID_MAX bytes). */
#define PENDING_HEX_SIZE (2 * (CMPC_ID_MAX > TOK_ID_MAX ? CMPC_ID_MAX : TOK_ID_MAX) + 1)

static void put_hex(FILE *f, const char *key, const unsigned char *p, size_t n)
{
	char hex[PENDING_HEX_SIZE];

	agent_hex(p, n, hex, sizeof(hex));
	fprintf(f, "%s %s\n", key, hex);
}

struct pending_out {
	const conf_enrollment *e;
	const agent_pending *ap;
};

static int put_pending(FILE *f, void *arg)
{
	const conf_enrollment *e = ((const struct pending_out *)arg)->e;
	const agent_pending *ap = ((const struct pending_out *)arg)->ap;
	char serial[sizeof(ap->token_serial)];

	fprintf(f, "# p11enroll: a CMP transaction the CA answered 'waiting'.\n"
		   "# Finish it with `p11enroll resume %s`, or give it up with\n"
		   "# `p11enroll resume --abandon %s`.  Written by p11enroll; do not edit.\n",
		e->name, e->name);
	fprintf(f, "version 1\nrequest %s\n", pending_req_name(ap->p.type));
	put_hex(f, "transaction_id", ap->p.tid, ap->p.tid_len);
	put_hex(f, "recip_nonce", ap->p.nonce, ap->p.nonce_len);
	fprintf(f, "cert_req_id %d\ncheck_after %ld\n", ap->p.cert_req_id, ap->p.check_after);
	put_hex(f, "key_id", ap->key_id, ap->key_id_len);
	/* The serial is the token's choice: escaped, so that it is one line
	 * (a serial with odd bytes then matches no token on resume, which
	 * says so). */
	fprintf(f, "key_generated %s\ntoken_serial %s\nsaved %lld\n",
		ap->key_generated ? "yes" : "no",
		agent_escape(ap->token_serial, serial, sizeof(ap->token_serial)),
		(long long)ap->saved);
	return 0;
}

int pending_save(const conf_enrollment *e, const agent_pending *ap, char *err, size_t errlen)
{
	const char *dir = pending_state_dir(e);
	struct pending_out o = { e, ap };
	char path[1024];

	if (pending_path(e, path, sizeof(path)) < 0) {
		snprintf(err, errlen, "the enrollment has no name usable as a file name; only a "
				      "named enrollment from the configuration file can be resumed");
		return -1;
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create the state directory %s: %s; create it, or set "
				      "state_dir",
			 dir, strerror(errno));
		return -1;
	}
	return agent_atomic_write(path, 0600, put_pending, &o, err, errlen);
}

static int get_hex(const char *v, unsigned char *out, size_t max, size_t *len)
{
	return conf_parse_hex(v, out, max, len) < 0 || *len == 0 ? -1 : 0;
}

/* One "key value" line into ap; seen collects the keys (bit per key). */
static int parse_line(char *line, agent_pending *ap, unsigned *seen, char *err, size_t errlen)
{
	static const char *const keys[] = { "version",	   "request",	    "transaction_id",
					    "recip_nonce", "cert_req_id",   "check_after",
					    "key_id",	   "key_generated", "token_serial",
					    "saved" };
	char *v = strchr(line, ' ');
	long n;
	size_t i, k;
	int b;

	if (v == NULL) {
		snprintf(err, errlen, "line '%.40s' has no value", line);
		return -1;
	}
	*v++ = '\0';
	for (k = 0; k < sizeof(keys) / sizeof(keys[0]) && strcmp(line, keys[k]) != 0; k++)
		;
	if (k == sizeof(keys) / sizeof(keys[0])) {
		snprintf(err, errlen, "unknown key '%.40s'", line);
		return -1;
	}
	if (*seen & (1u << k)) {
		snprintf(err, errlen, "key '%s' given twice", keys[k]);
		return -1;
	}
	*seen |= 1u << k;
	switch (k) {
	case 0:
		if (strcmp(v, "1") != 0) {
			snprintf(err, errlen, "version '%.20s' is not 1 (written by a newer p11enroll?)",
				 v);
			return -1;
		}
		return 0;
	case 1:
		for (i = 0; i < sizeof(req_names) / sizeof(req_names[0]); i++)
			if (strcmp(v, req_names[i]) == 0) {
				ap->p.type = (cmpc_req_type)i;
				return 0;
			}
		break;
	case 2:
		if (get_hex(v, ap->p.tid, sizeof(ap->p.tid), &ap->p.tid_len) == 0)
			return 0;
		break;
	case 3:
		if (get_hex(v, ap->p.nonce, sizeof(ap->p.nonce), &ap->p.nonce_len) == 0)
			return 0;
		break;
	case 4:
		if (conf_parse_long(v, -1, 0x7fffffff, &n) == 0) {
			ap->p.cert_req_id = (int)n;
			return 0;
		}
		break;
	case 5:
		if (conf_parse_long(v, 0, 0x7fffffff, &n) == 0) {
			ap->p.check_after = n;
			return 0;
		}
		break;
	case 6:
		if (get_hex(v, ap->key_id, sizeof(ap->key_id), &ap->key_id_len) == 0)
			return 0;
		break;
	case 7:
		if ((b = conf_parse_bool(v)) >= 0) {
			ap->key_generated = b;
			return 0;
		}
		break;
	case 8:
		if (strlen(v) < sizeof(ap->token_serial)) {
			for (i = 0; v[i] != '\0' && (unsigned char)v[i] >= 0x20 &&
				    (unsigned char)v[i] < 0x7f;
			     i++)
				;
			if (v[i] == '\0') {
				memcpy(ap->token_serial, v, i + 1);
				return 0;
			}
		}
		break;
	case 9:
		if (conf_parse_long(v, 0, 0x7fffffffffffL, &n) == 0) {
			ap->saved = (time_t)n;
			return 0;
		}
		break;
	}
	snprintf(err, errlen, "bad value for '%s'", keys[k]);
	return -1;
}

int pending_parse(const char *text, size_t len, agent_pending *ap, char *err, size_t errlen)
{
	char *buf, *line, *next;
	unsigned seen = 0;
	int lineno = 0, rc = 0;
	char why[128];

	memset(ap, 0, sizeof(*ap));
	if (len > MAX_FILE || memchr(text, '\0', len) != NULL) {
		snprintf(err, errlen, "too large or not text");
		return -1;
	}
	if ((buf = malloc(len + 1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	memcpy(buf, text, len);
	buf[len] = '\0';
	for (line = buf; line != NULL && rc == 0; line = next) {
		lineno++;
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		if (*line == '#' || *line == '\0')
			continue;
		if (parse_line(line, ap, &seen, why, sizeof(why)) < 0) {
			snprintf(err, errlen, "line %d: %s", lineno, why);
			rc = -1;
		}
	}
	free(buf);
	/* token_serial may be empty on tokens without one; all else is needed. */
	if (rc == 0 && (seen | (1u << 8)) != 0x3ffu) {
		snprintf(err, errlen, "incomplete (written by an interrupted or other program?)");
		rc = -1;
	}
	if (rc == 0 && ap->p.cert_req_id != (ap->p.type == CMPC_REQ_P10CR ? -1 : 0)) {
		snprintf(err, errlen, "cert_req_id %d does not fit a %s", ap->p.cert_req_id,
			 pending_req_name(ap->p.type));
		rc = -1;
	}
	return rc;
}

int pending_load(const conf_enrollment *e, agent_pending *ap, char *err, size_t errlen)
{
	char path[1024], buf[MAX_FILE + 1], why[256];
	size_t n;
	FILE *f;

	memset(ap, 0, sizeof(*ap));
	if (pending_path(e, path, sizeof(path)) < 0)
		return 0;
	if ((f = fopen(path, "r")) == NULL) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	if (pending_parse(buf, n, ap, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "%s: %s; if the transaction is of no use any more, delete "
				      "the file",
			 path, why);
		return -1;
	}
	return 1;
}

int pending_remove(const conf_enrollment *e)
{
	char path[1024];

	if (pending_path(e, path, sizeof(path)) < 0)
		return 0;
	if (unlink(path) < 0 && errno != ENOENT)
		return -1;
	(void)agent_fsync_dir(pending_state_dir(e));
	return 0;
}
