/*
 * What the agent keeps of an enrollment across restarts (STATE_DIR/NAME.agent,
 * "key value" lines written atomically), and how it shows the enrollments:
 * the status document of `p11enroll status --json` and the metrics file.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/daemon.h"
#include "agent/track.h"

static const char *const state_names[T_NSTATES] = {
	"starting", "valid", "working", "waiting-ca", "backoff", "waiting-token", "pin-rejected",
	"pin-locked", "stopped",
};

const char *track_state_name(track_state st)
{
	return st < T_NSTATES ? state_names[st] : "?";
}

const char *track_op_name(track_op op)
{
	static const char *const names[] = { "none", "recover", "check", "renew", "enroll", "resume" };

	return (size_t)op < sizeof(names) / sizeof(names[0]) ? names[op] : "?";
}

static int state_path(const track *t, char *out, size_t len)
{
	return pending_name_path(&t->e, "agent", out, len);
}

/* Values are written on one line, and may come from the token or the CA:
 * escaped in place (cut to the buffer before a whole character, and
 * marked), so no field is forged. */
static void one_line(char *s, size_t size)
{
	char tmp[TRACK_ERROR_MAX];

	agent_escape_bounded(s, tmp, sizeof(tmp) < size ? sizeof(tmp) : size);
	memcpy(s, tmp, strlen(tmp) + 1);
}

struct state_out {
	const track *t;
	const char *err, *pin;
};

static int put_state(FILE *f, void *arg)
{
	const struct state_out *o = arg;
	const track *t = o->t;

	fprintf(f, "# p11enroll agent state of '%s'; written by the agent\n", t->name);
	fprintf(f, "version 1\nseed %lu\nnext %lld\nlast_success %lld\nlast_attempt %lld\n",
		(unsigned long)t->seed, t->next, t->last_success, t->last_attempt);
	fprintf(f, "failures %d\nrenewals %ld\nstopped %d\nlast_error %s\npin_latch %s\n",
		t->failures, t->renewals, t->st == T_STOPPED, o->err, o->pin);
	fprintf(f, "revoke_failures %d\nca_contact %lld\n", t->revoke_failures, t->ca_contact);
	if (t->last_error != NULL && t->last_error_at > 0)
		fprintf(f, "last_error_time %lld\n", t->last_error_at);
	if (t->ca_status[0] != '\0')
		fprintf(f, "ca_status %s\nca_fail_info %s\n", t->ca_status, t->ca_fail_info);
	if (t->st == T_LOCKED)
		fprintf(f, "pin_locked %s\n", t->pin_locked);
	/* What the token showed last: shown by status until the next look
	 * (a stopped or PIN-latched enrollment has none); never decides. */
	if (t->have_cert)
		fprintf(f, "cert_serial %s\nnot_before %lld\nnot_after %lld\n", t->cert_serial,
			t->not_before, t->not_after);
	return 0;
}

const char *track_token_name(const track *t, char *buf, size_t len)
{
	/* a token never seen: the configuration's URI (never with a PIN:
	 * conf_check), so that the operator knows which one to insert */
	if (t->token_label[0] == '\0' && t->token_serial[0] == '\0')
		snprintf(buf, len, "%s", t->e.token != NULL ? t->e.token : "(none seen yet)");
	else if (t->token_label[0] == '\0')
		snprintf(buf, len, "%s", t->token_serial);
	else
		snprintf(buf, len, "'%s' (serial %s)", t->token_label,
			 t->token_serial[0] != '\0' ? t->token_serial : "(none)");
	return buf;
}

int track_same_token(const track *a, const track *b)
{
	return strcmp(a->token_serial, b->token_serial) == 0 &&
	       strcmp(a->token_label, b->token_label) == 0 &&
	       strcmp(a->token_manufacturer, b->token_manufacturer) == 0 &&
	       strcmp(a->token_model, b->token_model) == 0;
}

const char *track_error(const track *t)
{
	return t->last_error != NULL ? t->last_error : "";
}

void track_set_error(track *t, const char *fmt, ...)
{
	static const char oom[] = "out of memory";
	va_list ap;
	char *s = NULL;
	int n;

	/* formatted before the old one goes: it may be an argument */
	if (fmt != NULL) {
		va_start(ap, fmt);
		n = vasprintf(&s, fmt, ap);
		va_end(ap);
		if (n < 0)
			s = strdup(oom);
		else if ((size_t)n >= TRACK_ERROR_MAX)
			agent_mark_cut(s, TRACK_ERROR_MAX);
		if (s != NULL && *s == '\0') {
			free(s);
			s = NULL;
		}
	}
	free(t->last_error);
	t->last_error = s;
	if (s == NULL) {
		t->last_error_at = 0;
		t->ca_status[0] = t->ca_fail_info[0] = '\0';
		return;
	}
	t->error_seq++;
}

const char *track_pin_latch(const track *t)
{
	return t->pin_latch != NULL ? t->pin_latch : "";
}

/* A latch lost to a failed allocation would let a rejected PIN be tried
 * again: this one stays, and matches no fingerprint. */
static char oom_latch[] = "out of memory";

void track_set_pin_latch(track *t, const char *fp)
{
	if (t->pin_latch != oom_latch)
		free(t->pin_latch);
	t->pin_latch = NULL;
	if (fp == NULL || *fp == '\0')
		return;
	if ((t->pin_latch = strndup(fp, TRACK_PIN_LATCH_MAX - 1)) == NULL)
		t->pin_latch = oom_latch;
}

/* t's state, as a write of its own (b NULL) or into the batch b. */
static int save(const track *t, agent_atomic_batch *b)
{
	char path[1024], msg[4400], err[TRACK_ERROR_MAX], pin[TRACK_PIN_LATCH_MAX];
	struct state_out o = { t, err, pin };
	int r;

	if (state_path(t, path, sizeof(path)) < 0)
		return -1;
	snprintf(err, sizeof(err), "%s", track_error(t));
	snprintf(pin, sizeof(pin), "%s", track_pin_latch(t));
	one_line(err, sizeof(err));
	one_line(pin, sizeof(pin));
	r = b != NULL ? agent_atomic_batch_add(b, path, 0600, put_state, &o, msg, sizeof(msg))
		      : agent_atomic_write(path, 0600, put_state, &o, msg, sizeof(msg));
	if (r < 0) {
		log_msg(LOG_ERR, "%s: cannot save the agent state: %s", t->name, msg);
		return -1;
	}
	return 0;
}

int track_save(const track *t)
{
	return save(t, NULL);
}

int track_save_all(track *const *ts, size_t n)
{
	agent_atomic_batch *b = agent_atomic_batch_new();
	char msg[4400];
	size_t i;
	int failed = 0, lost;

	if (b == NULL) {
		for (i = 0; i < n; i++)
			failed += track_save(ts[i]) < 0;
		return failed;
	}
	for (i = 0; i < n; i++)
		failed += save(ts[i], b) < 0;
	if ((lost = agent_atomic_batch_commit(b, msg, sizeof(msg))) > 0)
		log_msg(LOG_ERR, "cannot save the agent state of %d enrollment(s): %s", lost, msg);
	return failed + lost;
}

/* A name or names from the state file: letters and single spaces only, or
 * nothing. */
static void one_field(char *out, size_t len, const char *v)
{
	size_t n = strlen(v);

	if (n >= len || strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ ") != n)
		n = 0;
	memcpy(out, v, n);
	out[n] = '\0';
}

int track_load(track *t)
{
	char path[1024], line[TRACK_ERROR_MAX + 64], *v;
	long long n;
	FILE *f;

	if (state_path(t, path, sizeof(path)) < 0 || (f = fopen(path, "r")) == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '#' || (v = strchr(line, ' ')) == NULL)
			continue;
		*v++ = '\0';
		n = strtoll(v, NULL, 10);
		if (strcmp(line, "seed") == 0)
			t->seed = (uint32_t)strtoul(v, NULL, 10);
		else if (strcmp(line, "next") == 0)
			t->next = n;
		else if (strcmp(line, "last_success") == 0)
			t->last_success = n;
		else if (strcmp(line, "last_attempt") == 0)
			t->last_attempt = n;
		else if (strcmp(line, "failures") == 0)
			t->failures = n < 0 || n > 1000000 ? 0 : (int)n;
		else if (strcmp(line, "renewals") == 0)
			t->renewals = n < 0 ? 0 : (long)n;
		else if (strcmp(line, "ca_contact") == 0)
			t->ca_contact = n > 0 ? n : 0;
		else if (strcmp(line, "revoke_failures") == 0)
			t->revoke_failures = n < 0 || n > 1000000 ? 0 : (int)n;
		else if (strcmp(line, "stopped") == 0 && n == 1)
			t->st = T_STOPPED;
		else if (strcmp(line, "last_error") == 0)
			track_set_error(t, "%s", v);
		else if (strcmp(line, "last_error_time") == 0)
			t->last_error_at = n > 0 ? n : 0;
		else if (strcmp(line, "ca_status") == 0 && strlen(v) < sizeof(t->ca_status))
			one_field(t->ca_status, sizeof(t->ca_status), v);
		else if (strcmp(line, "ca_fail_info") == 0 && strlen(v) < sizeof(t->ca_fail_info))
			one_field(t->ca_fail_info, sizeof(t->ca_fail_info), v);
		else if (strcmp(line, "pin_latch") == 0)
			track_set_pin_latch(t, v);
		else if (strcmp(line, "pin_locked") == 0 &&
			 (strcmp(v, "token") == 0 || strcmp(v, "tpm") == 0))
			snprintf(t->pin_locked, sizeof(t->pin_locked), "%s", v);
		else if (strcmp(line, "cert_serial") == 0 && strspn(v, "0123456789ABCDEF") ==
								  strlen(v))
			snprintf(t->cert_serial, sizeof(t->cert_serial), "%.128s", v);
		else if (strcmp(line, "not_before") == 0)
			t->not_before = n;
		else if (strcmp(line, "not_after") == 0)
			t->not_after = n;
	}
	t->have_cert = t->cert_serial[0] != '\0' && t->not_after > 0;
	fclose(f);
	/* a time or CA status without the error they belong to says nothing */
	if (t->last_error == NULL) {
		t->last_error_at = 0;
		t->ca_status[0] = t->ca_fail_info[0] = '\0';
	}
	/* A latched PIN stays latched across a restart: trying it again at
	 * start would spend one more of the token's PIN attempts. */
	if (t->st != T_STOPPED && t->pin_latch != NULL)
		t->st = T_PIN;
	/* A locked PIN stays latched across a restart: the lockout does not
	 * end with the agent, and only clear NAME says that it is over. */
	if (t->st != T_STOPPED && t->pin_locked[0] != '\0')
		t->st = T_LOCKED;
	return 0;
}

void track_pin_fingerprint(const conf_enrollment *e, char *out, size_t len)
{
	const char *src = e->pin_source != NULL ? e->pin_source : "(none)";
	struct stat st;

	if (strncmp(src, "file:", 5) == 0 && stat(src + 5, &st) == 0)
		snprintf(out, len, "%s ino=%lu size=%lld mtime=%lld.%09ld", src,
			 (unsigned long)st.st_ino, (long long)st.st_size, (long long)st.st_mtim.tv_sec,
			 st.st_mtim.tv_nsec);
	else
		snprintf(out, len, "%s", src);
	one_line(out, len);
}

/* ---- status document ---------------------------------------------------- */

typedef struct {
	char *p;
	size_t len, cap;
	int oom;
} buf;

static void put(buf *b, const char *s, size_t n)
{
	char *np;

	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = (b->cap + n + 1) * 2;

		if ((np = realloc(b->p, cap)) == NULL) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

/* Room for a document of n enrollments at once: growing by doubling
 * copies a buffer of megabytes several times over and leaves each smaller
 * one behind in the heap, free but resident.  Room reserved and never
 * written costs no memory. */
static void reserve(buf *b, size_t n, size_t per)
{
	if ((b->p = malloc(n * per + 4096)) == NULL)
		b->oom = 1;
	else
		b->cap = n * per + 4096;
}

static void putf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(buf *b, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		put(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* A JSON string (agent_json_string). */
static void put_str(buf *b, const char *raw)
{
	char *s = agent_json_string(raw);

	if (s == NULL) {
		b->oom = 1;
		return;
	}
	put(b, s, strlen(s));
	free(s);
}

static void put_time(buf *b, const char *key, long long t)
{
	putf(b, ", \"%s\": ", key);
	if (t > 0)
		putf(b, "%lld", t);
	else
		put(b, "null", 4);
}

/* "a b c" as "\"a\", \"b\", \"c\"" (the names are letters only). */
static void put_names(buf *b, const char *names)
{
	const char *p = names;
	size_t n;

	while (*p != '\0') {
		n = strcspn(p, " ");
		if (n > 0) {
			put(b, p == names ? "\"" : ", \"", p == names ? 1 : 3);
			put(b, p, n);
			put(b, "\"", 1);
		}
		p += n;
		p += strspn(p, " ");
	}
}

char *track_status_json(track *const *tracks, size_t n, long long now, long rate, size_t *len)
{
	buf b = { 0 };
	size_t i;

	reserve(&b, n, 1024);
	putf(&b, "{\"agent\": {\"pid\": %ld, \"now\": %lld, \"clock_rate\": %ld}, \"enrollments\": [",
	     (long)getpid(), now, rate);
	for (i = 0; i < n; i++) {
		const track *t = tracks[i];

		put(&b, i > 0 ? ",\n  {" : "\n  {", i > 0 ? 5 : 4);
		put(&b, "\"name\": ", 8);
		put_str(&b, t->name);
		put(&b, ", \"state\": ", 11);
		put_str(&b, track_state_name(t->st));
		put(&b, ", \"operation\": ", 15);
		if (t->op != OP_NONE)
			put_str(&b, track_op_name(t->op));
		else
			put(&b, "null", 4);
		put(&b, ", \"token_serial\": ", 18);
		put_str(&b, t->token_serial);
		put(&b, ", \"token_label\": ", 17);
		put_str(&b, t->token_label);
		put(&b, ", \"token_manufacturer\": ", 24);
		put_str(&b, t->token_manufacturer);
		put(&b, ", \"token_model\": ", 17);
		put_str(&b, t->token_model);
		putf(&b, ", \"token_serial_unique\": %s",
		     t->token_serial_unique < 0 ? "null" : t->token_serial_unique ? "true" : "false");
		put(&b, ", \"certificate_serial\": ", 24);
		put_str(&b, t->have_cert ? t->cert_serial : "");
		put_time(&b, "not_before", t->have_cert ? t->not_before : 0);
		put_time(&b, "not_after", t->have_cert ? t->not_after : 0);
		put_time(&b, "next_attempt",
			 t->st == T_STOPPED || t->st == T_PIN || t->st == T_LOCKED ? 0 : t->next);
		put_time(&b, "last_success", t->last_success);
		put_time(&b, "last_attempt", t->last_attempt);
		putf(&b, ", \"consecutive_failures\": %d, \"renewals\": %ld, \"pending\": %s",
		     t->failures, t->renewals, t->pending ? "true" : "false");
		put(&b, ", \"last_error\": ", 16);
		put_str(&b, track_error(t));
		put_time(&b, "last_error_time", t->last_error != NULL ? t->last_error_at : 0);
		put(&b, ", \"ca_status\": ", 15);
		if (t->ca_status[0] != '\0')
			put_str(&b, t->ca_status);
		else
			put(&b, "null", 4);
		put(&b, ", \"ca_fail_info\": [", 19);
		put_names(&b, t->ca_fail_info);
		put(&b, "]}", 2);
	}
	put(&b, "\n]}\n", 4);
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	*len = b.len;
	return b.p;
}

static void metrics_get(size_t i, metrics_enrollment *m, void *arg)
{
	const track *t = ((track *const *)arg)[i];

	m->name = t->name;
	m->not_before = t->have_cert ? t->not_before : 0;
	m->not_after = t->have_cert ? t->not_after : 0;
	m->last_success = t->last_success;
	m->next_attempt = t->next;
	m->consecutive_failures = t->failures;
	m->state = track_state_name(t->st);
	m->ca = t->e.server;
	m->ca_contact = t->ca_contact;
	m->renewals = t->renewals;
}

void track_write_metrics(track *const *tracks, size_t n, const metrics_step *steps,
			 size_t nsteps, const char *path)
{
	char err[512];

	if (path != NULL &&
	    metrics_write(path, metrics_get, (void *)tracks, n, steps, nsteps, err, sizeof(err)) < 0)
		log_msg(LOG_WARNING, "cannot write the metrics file: %s", err);
}

static void put_when(buf *b, long long t, long long now)
{
	char s[32];
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0 || gmtime_r(&tt, &tm) == NULL) {
		putf(b, "%-20s", "-");
		return;
	}
	strftime(s, sizeof(s), "%Y-%m-%d %H:%M:%S", &tm);
	putf(b, "%-20s", s);
	(void)now;
}

char *track_status_text(track *const *tracks, size_t n, long long now, size_t *len)
{
	char safe[600], err[TRACK_ERROR_MAX];
	buf b = { 0 };
	size_t i;

	reserve(&b, n, 512);
	putf(&b, "%-16s %-14s %-20s %-20s %-20s %4s %8s\n", "ENROLLMENT", "STATE", "NOT AFTER (UTC)",
	     "NEXT (UTC)", "LAST SUCCESS (UTC)", "FAIL", "RENEWALS");
	for (i = 0; i < n; i++) {
		const track *t = tracks[i];

		/* agent_escape() truncates, never cutting a character: putf()
		 * would cut at 511 bytes. */
		putf(&b, "%-16s %-14s ", agent_escape(t->name, safe, 200),
		     track_state_name(t->st));
		put_when(&b, t->have_cert ? t->not_after : 0, now);
		put(&b, " ", 1);
		put_when(&b,
			 t->st == T_STOPPED || t->st == T_PIN || t->st == T_LOCKED ? 0 : t->next,
			 now);
		put(&b, " ", 1);
		put_when(&b, t->last_success, now);
		putf(&b, " %4d %8ld\n", t->failures, t->renewals);
		if (t->token_label[0] != '\0' || t->token_serial[0] != '\0')
			putf(&b, "  token: %s\n",
			     agent_token_identity(t->token_label, t->token_manufacturer,
						  t->token_model, t->token_serial,
						  t->token_serial_unique != 0, safe, sizeof(safe)));
		if (track_error(t)[0] != '\0') {
			/* whole: putf() would cut it, and the hint is at its end */
			put(&b, "  last error", 12);
			if (t->last_error_at > 0) {
				put(&b, " (", 2);
				put_when(&b, t->last_error_at, now);
				put(&b, "UTC)", 4);
			}
			put(&b, ": ", 2);
			agent_escape_bounded(track_error(t), err, sizeof(err));
			put(&b, err, strlen(err));
			put(&b, "\n", 1);
		}
		if (track_error(t)[0] != '\0' && t->ca_status[0] != '\0')
			putf(&b, "  CA status: %s%s%s\n", t->ca_status,
			     t->ca_fail_info[0] != '\0' ? ", failInfo " : "", t->ca_fail_info);
	}
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	*len = b.len;
	return b.p;
}
