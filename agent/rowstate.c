/*
 * The row state file (agent/rowstate.h).  One line per mark:
 *
 *	done 3f1c...(64 hex) 1764763200 7A3F01 5e0c9d12
 *
 * state, row id, time, serial ("-" none), and the first four bytes of the
 * SHA-256 of what precedes the last space, in hex.  A compacted file
 * starts with "p11enroll-rowstate 1".  The last mark of a row wins.
 *
 * The lock: flock on the state file.  Compaction renames a new file over
 * it, which the lock does not follow, so the run locks the new file before
 * it lets the old one go, and a run that locked a file checks that it is
 * still the one at the path (else it was renamed away, and it tries
 * again).  A run that finds the new file locked by another (which opened
 * it between the rename and our lock) gives way to it.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "agent/agent.h"
#include "agent/rowstate.h"

#define HEADER "p11enroll-rowstate 1"
/* the longest line: state, 64 hex, time, 128 hex, check, spaces */
#define LINE_MAX_LEN 256
/* warnings about ignored lines: the first few, then a count */
#define WARN_MAX 10

struct agent_rowstate {
	agent_row_mark *tab; /* open addressing by the id's first bytes */
	size_t cap, n;
	size_t ignored;
	char *path;
	int fd;
};

static const char *const state_names[] = {"new", "taken", "done", "failed", "waiting"};

const char *agent_row_state_name(agent_row_state st)
{
	return (unsigned)st < sizeof(state_names) / sizeof(state_names[0]) ? state_names[st] : "?";
}

static void sha256(const void *p, size_t len, unsigned char md[32])
{
	unsigned int mdlen = 32;

	if (!EVP_Digest(p, len, md, &mdlen, EVP_sha256(), NULL))
		memset(md, 0, 32); /* never a valid check: the line is ignored */
}

void agent_rowstate_row_id(const agent_csv_row *r, unsigned char id[AGENT_ROW_ID_LEN])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned int len = AGENT_ROW_ID_LEN;
	int i, ok = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL);

	ok = ok && EVP_DigestUpdate(md, "p11enroll-row 1", 16);
	for (i = 0; ok && i < AGENT_CSV_NCOLS; i++) {
		const char *name = agent_csv_column(i);

		/* name NUL value NUL: no value can pass for another column's */
		if (r->v[i] != NULL)
			ok = EVP_DigestUpdate(md, name, strlen(name) + 1) &&
			     EVP_DigestUpdate(md, r->v[i], strlen(r->v[i]) + 1);
	}
	if (!ok || !EVP_DigestFinal_ex(md, id, &len))
		abort(); /* SHA-256 of bytes in memory does not fail */
	EVP_MD_CTX_free(md);
}

agent_rowstate *agent_rowstate_new(void)
{
	agent_rowstate *rs = calloc(1, sizeof(*rs));

	if (rs != NULL)
		rs->fd = -1;
	return rs;
}

void agent_rowstate_close(agent_rowstate *rs)
{
	if (rs == NULL)
		return;
	if (rs->fd >= 0)
		close(rs->fd); /* the lock goes with it */
	free(rs->tab);
	free(rs->path);
	free(rs);
}

static size_t slot_of(const agent_rowstate *rs, const unsigned char *id)
{
	size_t h = 0, i;

	for (i = 0; i < sizeof(h); i++)
		h = h << 8 | id[i];
	return h & (rs->cap - 1);
}

static agent_row_mark *find(const agent_rowstate *rs, const unsigned char *id, int *ret_new)
{
	size_t i;

	for (i = slot_of(rs, id);; i = (i + 1) & (rs->cap - 1)) {
		agent_row_mark *m = &rs->tab[i];

		if (m->st == AGENT_ROW_NEW) {
			*ret_new = 1;
			return m;
		}
		if (memcmp(m->id, id, AGENT_ROW_ID_LEN) == 0) {
			*ret_new = 0;
			return m;
		}
	}
}

static int put(agent_rowstate *rs, const agent_row_mark *m)
{
	agent_row_mark *slot;
	int fresh;

	if (2 * (rs->n + 1) > rs->cap) {
		agent_row_mark *old = rs->tab;
		size_t oldcap = rs->cap, i;

		rs->cap = oldcap ? 2 * oldcap : 64;
		if ((rs->tab = calloc(rs->cap, sizeof(*rs->tab))) == NULL) {
			rs->tab = old;
			rs->cap = oldcap;
			return -1;
		}
		for (i = 0; i < oldcap; i++)
			if (old[i].st != AGENT_ROW_NEW)
				*find(rs, old[i].id, &fresh) = old[i];
		free(old);
	}
	slot = find(rs, m->id, &fresh);
	*slot = *m;
	rs->n += fresh;
	return 0;
}

const agent_row_mark *agent_rowstate_get(const agent_rowstate *rs,
					 const unsigned char id[AGENT_ROW_ID_LEN])
{
	agent_row_mark *m;
	int fresh;

	if (rs->cap == 0)
		return NULL;
	m = find(rs, id, &fresh);
	return fresh ? NULL : m;
}

size_t agent_rowstate_ignored(const agent_rowstate *rs)
{
	return rs->ignored;
}

static void check_hex(const char *s, size_t n, char *out)
{
	unsigned char md[32];

	sha256(s, n, md);
	agent_hex(md, 4, out, 9);
}

int agent_rowstate_format(const agent_row_mark *m, char *out, size_t len)
{
	char id[2 * AGENT_ROW_ID_LEN + 1], check[9];
	int n;

	if (m->st < AGENT_ROW_TAKEN || m->st > AGENT_ROW_WAITING)
		return -1;
	agent_hex(m->id, AGENT_ROW_ID_LEN, id, sizeof(id));
	n = snprintf(out, len, "%s %s %lld %s", agent_row_state_name(m->st), id, m->time,
		     m->serial[0] != '\0' ? m->serial : "-");
	if (n < 0 || (size_t)n + 11 > len)
		return -1;
	check_hex(out, (size_t)n, check);
	snprintf(out + n, len - (size_t)n, " %s\n", check);
	return 0;
}

static int unhex(const char *s, unsigned char *out, size_t n)
{
	size_t i;

	for (i = 0; i < 2 * n; i++) {
		int c = s[i], v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;

		if (v < 0)
			return -1;
		out[i / 2] = (unsigned char)(i % 2 ? out[i / 2] | v : v << 4);
	}
	return 0;
}

/* One line (without its '\n', NUL-terminated): 0 with m, or -1. */
static int parse_line(char *line, agent_row_mark *m)
{
	char *f[5], *s = line, check[9];
	size_t i, k;
	int st = -1;

	for (k = 0; k < 5; k++) {
		f[k] = s;
		s = strchr(s, ' ');
		if ((s == NULL) != (k == 4))
			return -1;
		if (s != NULL)
			*s++ = '\0';
	}
	/* the check covers the first four fields as written */
	for (k = 0; k < 3; k++)
		f[k][strlen(f[k])] = ' ';
	check_hex(line, strlen(line), check);
	if (strcmp(check, f[4]) != 0)
		return -1;
	for (k = 0; k < 3; k++)
		*strchr(f[k], ' ') = '\0';
	memset(m, 0, sizeof(*m));
	for (i = AGENT_ROW_TAKEN; i <= AGENT_ROW_WAITING; i++)
		if (strcmp(f[0], state_names[i]) == 0)
			st = (int)i;
	if (st < 0 || strlen(f[1]) != 2 * AGENT_ROW_ID_LEN || unhex(f[1], m->id, AGENT_ROW_ID_LEN) < 0)
		return -1;
	m->st = (agent_row_state)st;
	if (strspn(f[2], "0123456789") != strlen(f[2]) || strlen(f[2]) == 0 || strlen(f[2]) > 18)
		return -1;
	m->time = strtoll(f[2], NULL, 10);
	if (strcmp(f[3], "-") != 0) {
		if (strspn(f[3], "0123456789ABCDEF") != strlen(f[3]) || strlen(f[3]) >= sizeof(m->serial))
			return -1;
		memcpy(m->serial, f[3], strlen(f[3]) + 1);
	}
	return 0;
}

static void ignored(agent_rowstate *rs, long line, const char *why)
{
	if (rs->ignored++ < WARN_MAX)
		log_msg(LOG_WARNING, "%s:%ld: %s: line ignored; the row keeps its state before it",
			rs->path != NULL ? rs->path : "state", line, why);
}

size_t agent_rowstate_read(agent_rowstate *rs, const char *text, size_t len)
{
	const char *p = text, *end = text + len, *nl;
	size_t before = rs->ignored;
	long line = 0;

	for (; p < end; p = nl + 1) {
		char buf[LINE_MAX_LEN + 1];
		agent_row_mark m;

		line++;
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL) {
			ignored(rs, line, "a torn last line (a run was cut off while writing it)");
			break;
		}
		if ((size_t)(nl - p) > LINE_MAX_LEN || memchr(p, '\0', (size_t)(nl - p)) != NULL) {
			ignored(rs, line, "not a row state line");
			continue;
		}
		memcpy(buf, p, (size_t)(nl - p));
		buf[nl - p] = '\0';
		if (line == 1 && strcmp(buf, HEADER) == 0)
			continue;
		if (parse_line(buf, &m) < 0) {
			ignored(rs, line, "not a row state line, or its checksum does not match");
			continue;
		}
		if (put(rs, &m) < 0) {
			ignored(rs, line, "out of memory");
			continue;
		}
	}
	if (rs->ignored > WARN_MAX && rs->ignored - before > 0)
		log_msg(LOG_WARNING, "%s: %zu lines ignored in all", rs->path != NULL ? rs->path : "state",
			rs->ignored);
	return rs->ignored - before;
}

static int write_all(FILE *f, void *arg)
{
	agent_rowstate *rs = arg;
	char line[LINE_MAX_LEN + 16];
	size_t i;

	fprintf(f, "%s\n", HEADER);
	for (i = 0; i < rs->cap; i++) {
		if (rs->tab[i].st == AGENT_ROW_NEW)
			continue;
		if (agent_rowstate_format(&rs->tab[i], line, sizeof(line)) < 0)
			return -1;
		fputs(line, f);
	}
	return ferror(f) ? -1 : 0;
}

/* path opened and locked (not blocking): the descriptor, -1 (err), or -2
 * when another process holds the lock. */
static int open_locked(const char *path, char *err, size_t errlen)
{
	struct stat a, b;
	int tries, fd;

	for (tries = 0; tries < 10; tries++) {
		if ((fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY,
			       0600)) < 0) {
			snprintf(err, errlen, "cannot open the row state file %s: %s: the directory of "
					      "the queue file must be writable",
				 path, strerror(errno));
			return -1;
		}
		if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
			int busy = errno == EWOULDBLOCK;

			snprintf(err, errlen,
				 busy ? "another p11enroll run works on this queue file (its row "
					"state %s is locked): wait for it to end"
				      : "cannot lock the row state file %s: %s",
				 path, strerror(errno));
			close(fd);
			return busy ? -2 : -1;
		}
		/* renamed away by a run's compaction since we opened it? */
		if (fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev &&
		    a.st_ino == b.st_ino) {
			if (!S_ISREG(a.st_mode)) {
				snprintf(err, errlen, "the row state file %s is not a regular file",
					 path);
				close(fd);
				return -1;
			}
			return fd;
		}
		close(fd);
	}
	snprintf(err, errlen, "the row state file %s keeps changing: another run?", path);
	return -2;
}

static char *read_fd(int fd, size_t *ret_len)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap), *nb;
	ssize_t r;

	while (buf != NULL) {
		if (len == cap) {
			if ((nb = realloc(buf, cap * 2)) == NULL)
				break;
			buf = nb;
			cap *= 2;
		}
		if ((r = pread(fd, buf + len, cap - len, (off_t)len)) < 0 && errno == EINTR)
			continue;
		if (r < 0)
			break;
		if (r == 0) {
			*ret_len = len;
			return buf;
		}
		len += (size_t)r;
	}
	free(buf);
	return NULL;
}

int agent_rowstate_open(const char *csv_path, agent_rowstate **ret, char *err, size_t errlen)
{
	agent_rowstate *rs = agent_rowstate_new();
	size_t plen = strlen(csv_path) + sizeof(".state"), len;
	char *text;
	int fd;

	*ret = NULL;
	if (rs == NULL || (rs->path = malloc(plen)) == NULL) {
		snprintf(err, errlen, "out of memory");
		agent_rowstate_close(rs);
		return -1;
	}
	snprintf(rs->path, plen, "%s.state", csv_path);
	if ((rs->fd = open_locked(rs->path, err, errlen)) < 0) {
		int rc = rs->fd;

		agent_rowstate_close(rs);
		return rc;
	}
	if ((text = read_fd(rs->fd, &len)) == NULL) {
		snprintf(err, errlen, "cannot read the row state file %s: %s", rs->path,
			 strerror(errno));
		agent_rowstate_close(rs);
		return -1;
	}
	(void)agent_rowstate_read(rs, text, len);
	free(text);
	/* Compacted: one line per row, the ignored lines gone. */
	if (agent_atomic_write(rs->path, 0600, write_all, rs, err, errlen) < 0) {
		agent_rowstate_close(rs);
		return -1;
	}
	if ((fd = open_locked(rs->path, err, errlen)) < 0) {
		agent_rowstate_close(rs);
		return fd;
	}
	close(rs->fd);
	rs->fd = fd;
	*ret = rs;
	return 0;
}

int agent_rowstate_mark(agent_rowstate *rs, const unsigned char id[AGENT_ROW_ID_LEN],
			agent_row_state st, const char *serial, char *err, size_t errlen)
{
	char line[LINE_MAX_LEN + 16];
	agent_row_mark m;
	size_t len;
	ssize_t w;

	memset(&m, 0, sizeof(m));
	memcpy(m.id, id, AGENT_ROW_ID_LEN);
	m.st = st;
	m.time = (long long)time(NULL);
	if (serial != NULL && strlen(serial) < sizeof(m.serial) &&
	    strspn(serial, "0123456789ABCDEF") == strlen(serial))
		memcpy(m.serial, serial, strlen(serial) + 1);
	if (agent_rowstate_format(&m, line, sizeof(line)) < 0 || put(rs, &m) < 0) {
		snprintf(err, errlen, "cannot record the row as %s: out of memory",
			 agent_row_state_name(st));
		return -1;
	}
	len = strlen(line);
	do
		w = write(rs->fd, line, len);
	while (w < 0 && errno == EINTR);
	if (w != (ssize_t)len || fsync(rs->fd) != 0) {
		snprintf(err, errlen, "cannot record the row as %s in %s: %s", agent_row_state_name(st),
			 rs->path, w >= 0 && w != (ssize_t)len ? "short write (disk full?)"
							       : strerror(errno));
		return -1;
	}
	return 0;
}
