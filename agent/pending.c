/*
 * A transaction the CA answered "waiting", kept in the state directory as
 * pending/LABEL@TOKEN.pending so that `p11enroll resume NAME` can finish or
 * abandon it after this process ended.  Keyed by the token and the label,
 * not by the enrollment name: one enrollment section (a station's, with a
 * token URI that matches many cards) serves many tokens, and a card the CA
 * keeps waiting must not block the next one.  The name is readable on
 * purpose, so that an operator sees which card is waiting (ls): the label,
 * then the token, each percent-encoded outside [A-Za-z0-9._-].  '@' (always
 * encoded inside a field) separates them, so that no two keys share a name.
 * TOKEN is the serial; a token without a usable one (empty, or all zeros,
 * as some cards have) is named by "~MANUFACTURER~MODEL~LABEL" of its
 * information instead, which is what its URI can select it by.  A label
 * too long for a file name is cut and followed by '#' and a hash of it.
 * One "key value" per line; written to a temporary file, fsync'ed and
 * renamed over the old one, so that a crash leaves either the old or the
 * new state, never a mix.  The file is read
 * back as untrusted input: every field is checked, unknown keys refused.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "agent/agent-cmd.h"

#ifndef LOCALSTATEDIR
#define LOCALSTATEDIR "/var"
#endif
#define DEFAULT_STATE_DIR LOCALSTATEDIR "/lib/p11enroll"
#define MAX_FILE 4096

const char *pending_state_dir(const conf_enrollment *e)
{
	if (e->state_dir != NULL)
		return e->state_dir;
	return agent_user_state_dir() != NULL ? agent_user_state_dir() : DEFAULT_STATE_DIR;
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

int pending_name_path(const conf_enrollment *e, const char *ext, char *out, size_t len)
{
	int n;

	if (!name_ok(e->name))
		return -1;
	n = snprintf(out, len, "%s/%s.%s", pending_state_dir(e), e->name, ext);
	return n > 0 && (size_t)n < len ? 0 : -1;
}

/* s percent-encoded onto out (used of len), a leading '.' too (no hidden
 * file, no "..").  -1 when it does not fit. */
static int encode(const char *s, char *out, size_t len, size_t *used)
{
	static const char hexd[] = "0123456789ABCDEF";
	const unsigned char *p;
	int keep;

	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		keep = ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
			(*p >= '0' && *p <= '9') || *p == '_' || *p == '-' ||
			(*p == '.' && *used > 0));
		if (*used + (keep ? 1 : 3) >= len)
			return -1;
		if (keep) {
			out[(*used)++] = (char)*p;
		} else {
			out[(*used)++] = '%';
			out[(*used)++] = hexd[*p >> 4];
			out[(*used)++] = hexd[*p & 15];
		}
	}
	out[*used] = '\0';
	return 0;
}

/* A serial that names one token: not empty, not all zeros. */
static int serial_usable(const char *serial)
{
	return serial[strspn(serial, "0")] != '\0';
}

/* The longest encoded label kept whole, and the longest name: below
 * NAME_MAX (255) with ".pending" and the temporary file's suffix. */
#define LABEL_MAX_ENCODED 96
#define KEY_MAX 200

/* buf (an encoded text) cut to at most keep characters, not inside a %XX,
 * and '#' with 16 hex digits of SHA-256 of whole added; -1 on failure. */
static int cut_hash(char *buf, size_t size, size_t keep, const char *whole)
{
	unsigned char md[32];
	size_t cut = strlen(buf) < keep ? strlen(buf) : keep;

	if (cut > 0 && buf[cut - 1] == '%')
		cut--;
	else if (cut > 1 && buf[cut - 2] == '%')
		cut -= 2;
	if (cut + 18 > size || !EVP_Digest(whole, strlen(whole), md, NULL, EVP_sha256(), NULL))
		return -1;
	buf[cut] = '#';
	agent_hex(md, 8, buf + cut + 1, size - cut - 1);
	return 0;
}

/* LABEL@TOKEN of label on the token with the (escaped) fields serial,
 * manufacturer, model, token label. */
static int make_key(const char *label, const char *const tf[4], char *out, size_t len)
{
	char lab[3 * 256 + 1], whole[3 * 4 * 4 * 33 + 8];
	size_t used = 0;
	int i;

	if (label == NULL || len == 0)
		return -1;
	if (encode(label, lab, sizeof(lab), &used) < 0 || used > LABEL_MAX_ENCODED) {
		lab[used] = '\0';
		if (cut_hash(lab, sizeof(lab), LABEL_MAX_ENCODED - 17, label) < 0)
			return -1;
	}
	if ((size_t)snprintf(out, len, "%s@", lab) >= len)
		return -1;
	used = 0;
	whole[0] = '\0';
	if (serial_usable(tf[0])) {
		if (encode(tf[0], whole, sizeof(whole), &used) < 0)
			return -1;
	} else {
		for (i = 1; i < 4; i++) {
			whole[used++] = '~';
			whole[used] = '\0';
			if (encode(tf[i], whole, sizeof(whole), &used) < 0)
				return -1;
		}
	}
	/* Only a token without a serial and with odd information comes here:
	 * the start stays readable, the hash tells tokens apart. */
	if (strlen(out) + used > KEY_MAX &&
	    cut_hash(whole, sizeof(whole), KEY_MAX - strlen(out) - 17, whole) < 0)
		return -1;
	if (strlen(out) + strlen(whole) >= len)
		return -1;
	memcpy(out + strlen(out), whole, strlen(whole) + 1);
	return 0;
}

int pending_key(const char *label, const tok_info *ti, char *out, size_t len)
{
	char f[4][4 * 33];
	const char *tf[4];

	/* Escaped as the fields of a saved file are (agent_escape() leaves its
	 * own output as it is), so that a token has one key. */
	tf[0] = agent_escape(ti->serial, f[0], sizeof(f[0]));
	tf[1] = agent_escape(ti->manufacturer, f[1], sizeof(f[1]));
	tf[2] = agent_escape(ti->model, f[2], sizeof(f[2]));
	tf[3] = agent_escape(ti->label, f[3], sizeof(f[3]));
	return make_key(label, tf, out, len);
}

static int key_path(const conf_enrollment *e, const char *key, const char *ext, char *out,
		    size_t len)
{
	int n = snprintf(out, len, "%s/pending/%s.%s", pending_state_dir(e), key, ext);

	return n > 0 && (size_t)n < len ? 0 : -1;
}

int pending_path(const conf_enrollment *e, const tok_info *ti, const char *ext, char *out,
		 size_t len)
{
	char key[512];

	if (pending_key(e->label, ti, key, sizeof(key)) < 0)
		return -1;
	return key_path(e, key, ext, out, len);
}

/* The file of ap (saved for e's label). */
static int ap_path(const conf_enrollment *e, const agent_pending *ap, char *out, size_t len)
{
	char serial[4 * sizeof(ap->token_serial)], key[512];
	const char *tf[4] = { serial, ap->token_manufacturer, ap->token_model, ap->token_label };

	/* The serial is kept as the token gave it, the rest escaped. */
	agent_escape(ap->token_serial, serial, sizeof(serial));
	if (make_key(e->label, tf, key, sizeof(key)) < 0)
		return -1;
	return key_path(e, key, "pending", out, len);
}

void pending_set_owner(agent_pending *ap, const conf_enrollment *e, const tok_info *ti)
{
	snprintf(ap->token_serial, sizeof(ap->token_serial), "%s", ti->serial);
	agent_escape(ti->label, ap->token_label, sizeof(ap->token_label));
	agent_escape(ti->model, ap->token_model, sizeof(ap->token_model));
	agent_escape(ti->manufacturer, ap->token_manufacturer, sizeof(ap->token_manufacturer));
	snprintf(ap->name, sizeof(ap->name), "%s", name_ok(e->name) ? e->name : "");
	agent_escape(e->label != NULL ? e->label : "", ap->label, sizeof(ap->label));
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
	/* An offline request (--request-out) has no answer of the CA yet:
	 * what its answer must answer instead. */
	if (ap->p.nonce_len > 0)
		put_hex(f, "recip_nonce", ap->p.nonce, ap->p.nonce_len);
	if (ap->p.sent_nonce_len > 0)
		put_hex(f, "sent_nonce", ap->p.sent_nonce, ap->p.sent_nonce_len);
	if (ap->store_seq > 0)
		fprintf(f, "store_seq %d\n", ap->store_seq);
	fprintf(f, "cert_req_id %d\ncheck_after %ld\n", ap->p.cert_req_id, ap->p.check_after);
	put_hex(f, "key_id", ap->key_id, ap->key_id_len);
	/* The serial is the token's choice: escaped, so that it is one line
	 * (a serial with odd bytes then matches no token on resume, which
	 * says so). */
	fprintf(f, "key_generated %s\ntoken_serial %s\nsaved %lld\n",
		ap->key_generated ? "yes" : "no",
		agent_escape(ap->token_serial, serial, sizeof(ap->token_serial)),
		(long long)ap->saved);
	/* Who it is for, as status and resume show it; already escaped. */
	fprintf(f, "token_label %s\ntoken_model %s\ntoken_manufacturer %s\nenrollment %s\n"
		   "label %s\n",
		ap->token_label, ap->token_model, ap->token_manufacturer, ap->name, ap->label);
	return 0;
}

int pending_save(const conf_enrollment *e, const agent_pending *ap, char *err, size_t errlen)
{
	const char *dir = pending_state_dir(e);
	struct pending_out o = { e, ap };
	char path[1024], sub[1024];

	if (!name_ok(e->name) || ap_path(e, ap, path, sizeof(path)) < 0) {
		snprintf(err, errlen,
			 "the enrollment has no name usable as a file name, or no label; only a "
			 "named enrollment from the configuration file can be resumed");
		return -1;
	}
	snprintf(sub, sizeof(sub), "%s/pending", dir);
	if ((mkdir(dir, 0700) < 0 && errno != EEXIST) || (mkdir(sub, 0700) < 0 && errno != EEXIST)) {
		snprintf(err, errlen, "cannot create the state directory %s: %s; create it, or set "
				      "state_dir",
			 sub, strerror(errno));
		return -1;
	}
	return agent_atomic_write(path, 0600, put_pending, &o, err, errlen);
}

static int get_hex(const char *v, unsigned char *out, size_t max, size_t *len)
{
	return conf_parse_hex(v, out, max, len) < 0 || *len == 0 ? -1 : 0;
}

/* Escaped text (agent_escape()): no control character, fits. */
static int get_text(const char *v, char *out, size_t size)
{
	const unsigned char *p;

	if (strlen(v) >= size)
		return -1;
	for (p = (const unsigned char *)v; *p != '\0'; p++)
		if (*p < 0x20 || *p == 0x7f)
			return -1;
	memcpy(out, v, strlen(v) + 1);
	return 0;
}

/* One "key value" line into ap; seen collects the keys (bit per key). */
static int parse_line(char *line, agent_pending *ap, unsigned *seen, char *err, size_t errlen)
{
	static const char *const keys[] = { "version",	   "request",	    "transaction_id",
					    "recip_nonce", "cert_req_id",   "check_after",
					    "key_id",	   "key_generated", "token_serial",
					    "saved",	   "token_label",   "token_model",
					    "token_manufacturer", "enrollment", "label",
					    "sent_nonce", "store_seq" };
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
	case 10:
		if (get_text(v, ap->token_label, sizeof(ap->token_label)) == 0)
			return 0;
		break;
	case 11:
		if (get_text(v, ap->token_model, sizeof(ap->token_model)) == 0)
			return 0;
		break;
	case 12:
		if (get_text(v, ap->token_manufacturer, sizeof(ap->token_manufacturer)) == 0)
			return 0;
		break;
	case 13:
		if ((*v == '\0' || name_ok(v)) && get_text(v, ap->name, sizeof(ap->name)) == 0)
			return 0;
		break;
	case 14:
		if (get_text(v, ap->label, sizeof(ap->label)) == 0)
			return 0;
		break;
	case 15:
		if (get_hex(v, ap->p.sent_nonce, sizeof(ap->p.sent_nonce), &ap->p.sent_nonce_len) ==
		    0)
			return 0;
		break;
	case 16:
		if (conf_parse_long(v, 1, 0x7fffffff, &n) == 0) {
			ap->store_seq = (int)n;
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
	/* token_serial may be empty on tokens without one, and a file of an
	 * earlier version lacks the fields from token_label on; all else is
	 * needed. */
	if (rc == 0 && (seen & (1u << 15)))
		seen |= 1u << 3; /* a stored message's answer awaited: no CA nonce yet */
	if (rc == 0 && ((seen | (1u << 8)) & 0x3ffu) != 0x3ffu) {
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

/* 1 read into ap, 0 no such file, -1 unreadable (err). */
static int read_file(const char *path, agent_pending *ap, char *err, size_t errlen)
{
	char buf[MAX_FILE + 1], why[256];
	size_t n;
	FILE *f;

	memset(ap, 0, sizeof(*ap));
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

/* An earlier version's STATE_DIR/NAME.pending: 1 read (ap->legacy set). */
static int read_legacy(const conf_enrollment *e, agent_pending *ap, char *err, size_t errlen)
{
	char path[1024];
	int r;

	if (pending_name_path(e, "pending", path, sizeof(path)) < 0)
		return 0;
	if ((r = read_file(path, ap, err, errlen)) == 1)
		ap->legacy = 1;
	return r;
}

/* Moves an old NAME.pending to its place under the token it was saved for
 * (ap's owner fields set by the caller): written anew, then the old file
 * goes.  A crash between the two leaves both, and the new one is used. */
static int migrate(const conf_enrollment *e, agent_pending *ap, char *err, size_t errlen)
{
	char path[1024];

	if (pending_save(e, ap, err, errlen) < 0 ||
	    pending_name_path(e, "pending", path, sizeof(path)) < 0)
		return -1;
	if (unlink(path) < 0 && errno != ENOENT) {
		snprintf(err, errlen, "cannot remove %s: %s", path, strerror(errno));
		return -1;
	}
	(void)agent_fsync_dir(pending_state_dir(e));
	ap->legacy = 0;
	log_msg(LOG_INFO, "the pending transaction of '%s' moved from %s to the token's own file",
		e->name, path);
	return 0;
}

int pending_load(const conf_enrollment *e, const tok_info *ti, agent_pending *ap, char *err,
		 size_t errlen)
{
	char path[1024];
	agent_pending old;
	int r;

	memset(ap, 0, sizeof(*ap));
	if (pending_path(e, ti, "pending", path, sizeof(path)) < 0)
		return 0;
	if ((r = read_file(path, ap, err, errlen)) != 0)
		return r;
	/* None under the token: an earlier version's file is this token's when
	 * it names its serial (all that version kept). */
	if ((r = read_legacy(e, &old, err, errlen)) <= 0)
		return r;
	if (strcmp(old.token_serial, ti->serial) != 0)
		return 0;
	pending_set_owner(&old, e, ti);
	if (migrate(e, &old, err, errlen) < 0)
		log_msg(LOG_WARNING, "cannot move the pending transaction of '%s' to its new "
				     "file: %s; it stays where it is",
			e->name, err);
	*ap = old;
	return 1;
}

int pending_find(const conf_enrollment *e, int any_label, agent_pending *ap, char *err,
		 size_t errlen)
{
	char dir[1024], path[1400], label[sizeof(ap->label)], bad[1024] = "", why[1024];
	agent_pending one;
	struct dirent *de;
	size_t len;
	DIR *d;
	int r, n = 0;

	memset(ap, 0, sizeof(*ap));
	if (!name_ok(e->name) || (e->label == NULL && !any_label))
		return 0;
	agent_escape(e->label != NULL ? e->label : "", label, sizeof(label));
	snprintf(dir, sizeof(dir), "%s/pending", pending_state_dir(e));
	if ((d = opendir(dir)) == NULL && errno != ENOENT) {
		snprintf(err, errlen, "cannot read the directory %s: %s", dir, strerror(errno));
		return -1;
	}
	while (d != NULL && (de = readdir(d)) != NULL) {
		len = strlen(de->d_name);
		if (de->d_name[0] == '.' || len < 9 || strcmp(de->d_name + len - 8, ".pending") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		/* Whose an unreadable file is cannot be told: it fails the
		 * search only when nothing else is found. */
		if ((r = read_file(path, &one, why, sizeof(why))) < 0) {
			if (bad[0] == '\0')
				snprintf(bad, sizeof(bad), "%s", why);
			continue;
		}
		if (r == 0 || strcmp(one.name, e->name) != 0 ||
		    (!any_label && strcmp(one.label, label) != 0))
			continue;
		if (n++ == 0)
			*ap = one;
	}
	if (d != NULL)
		closedir(d);
	if ((r = read_legacy(e, &one, err, errlen)) < 0)
		return -1;
	if (r > 0 && n++ == 0)
		*ap = one;
	if (n == 0 && bad[0] != '\0') {
		snprintf(err, errlen, "%s", bad);
		return -1;
	}
	if (bad[0] != '\0')
		log_msg(LOG_WARNING, "%s", bad);
	return n;
}

int pending_remove(const conf_enrollment *e, const agent_pending *ap)
{
	char path[1024];

	if (ap->legacy ? pending_name_path(e, "pending", path, sizeof(path)) < 0
		       : ap_path(e, ap, path, sizeof(path)) < 0)
		return 0;
	if (unlink(path) < 0 && errno != ENOENT)
		return -1;
	if (!ap->legacy)
		snprintf(path, sizeof(path), "%s/pending", pending_state_dir(e));
	(void)agent_fsync_dir(ap->legacy ? pending_state_dir(e) : path);
	return 0;
}

int pending_legacy_move(const conf_enrollment *e, agent_pending *ap, const tok_info *ti,
			char *err, size_t errlen)
{
	if (!ap->legacy)
		return 0;
	pending_set_owner(ap, e, ti);
	return migrate(e, ap, err, errlen);
}
