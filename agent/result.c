/* The result record of a step (agent/result.h): written by the child,
 * parsed strictly by the agent. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/result.h"

static agent_result self = { .token = -1, .cert = -1, .token_serial_unique = -1 };
static int self_fd = -1;

void agent_result_init(agent_result *r)
{
	memset(r, 0, sizeof(*r));
	r->exit_code = -1;
	r->token = -1;
	r->cert = -1;
	r->token_serial_unique = -1;
}

static const char *const categories[] = {
	"ok",	    "internal", "usage",    "token",   "pin",	 "transport",
	"rejected", "protocol", "cert",	    "waiting", "absent", "busy",
};
#define NCATEGORIES (sizeof(categories) / sizeof(categories[0]))

const char *agent_result_category(int exit_code)
{
	if (exit_code == EXIT_INTERRUPTED)
		return "interrupted";
	return exit_code >= 0 && (size_t)exit_code < NCATEGORIES ? categories[exit_code] : "unknown";
}

/* ---- writing --------------------------------------------------------------- */

typedef struct {
	char *buf;
	size_t len, used;
	int full;
} out_buf;

static void put(out_buf *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->full)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->buf + o->used, o->len - o->used, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->len - o->used)
		o->full = 1;
	else
		o->used += (size_t)n;
}

int agent_result_format(const agent_result *r, char *buf, size_t len)
{
	out_buf o = { buf, len, 0, len == 0 };

	put(&o, "p11enroll-result %d\n", AGENT_RESULT_VERSION);
	if (r->name[0] != '\0')
		put(&o, "name %s\n", r->name);
	put(&o, "exit %d\ncategory %s\n", r->exit_code, agent_result_category(r->exit_code));
	if (r->error[0] != '\0')
		put(&o, "error %s\n", r->error);
	if (r->transaction[0] != '\0')
		put(&o, "transaction %s\n", r->transaction);
	if (r->token >= 0)
		put(&o, "token %s\n", r->token ? "present" : "absent");
	if (r->token_serial[0] != '\0')
		put(&o, "token_serial %s\n", r->token_serial);
	if (r->token_label[0] != '\0')
		put(&o, "token_label %s\n", r->token_label);
	if (r->token_manufacturer[0] != '\0')
		put(&o, "token_manufacturer %s\n", r->token_manufacturer);
	if (r->token_model[0] != '\0')
		put(&o, "token_model %s\n", r->token_model);
	if (r->token_serial_unique >= 0)
		put(&o, "token_serial_unique %s\n", r->token_serial_unique ? "yes" : "no");
	if (r->cert >= 0)
		put(&o, "cert %s\n", r->cert ? "present" : "none");
	if (r->cert > 0)
		put(&o, "cert_serial %s\nnot_before %lld\nnot_after %lld\n", r->cert_serial,
		    r->not_before, r->not_after);
	if (r->pending[0] != '\0')
		put(&o, "pending %s\npending_saved %lld\npending_check_after %ld\n", r->pending,
		    r->pending_saved, r->pending_check_after);
	if (r->unrevoked > 0)
		put(&o, "unrevoked %d\n", r->unrevoked);
	if (r->unrevoked > 0 && r->unrevoked_error[0] != '\0')
		put(&o, "unrevoked_error %s\n", r->unrevoked_error);
	if (r->pin_locked[0] != '\0')
		put(&o, "pin_locked %s\n", r->pin_locked);
	if (r->ca_status[0] != '\0')
		put(&o, "ca_status %s\n", r->ca_status);
	if (r->ca_fail_info[0] != '\0')
		put(&o, "ca_fail_info %s\n", r->ca_fail_info);
	put(&o, "end\n");
	return o.full ? -1 : (int)o.used;
}

/* ---- parsing ---------------------------------------------------------------- */

enum {
	K_NAME,
	K_EXIT,
	K_CATEGORY,
	K_ERROR,
	K_TRANSACTION,
	K_TOKEN,
	K_TOKEN_SERIAL,
	K_CERT,
	K_CERT_SERIAL,
	K_NOT_BEFORE,
	K_NOT_AFTER,
	K_PENDING,
	K_PENDING_SAVED,
	K_PENDING_CHECK_AFTER,
	K_UNREVOKED,
	K_UNREVOKED_ERROR,
	K_PIN_LOCKED,
	K_TOKEN_LABEL,
	K_TOKEN_MANUFACTURER,
	K_TOKEN_MODEL,
	K_TOKEN_SERIAL_UNIQUE,
	K_CA_STATUS,
	K_CA_FAIL_INFO,
	K_N
};

static const char *const keys[K_N] = {
	"name",		"exit",		"category",   "error",	     "transaction", "token",
	"token_serial", "cert",	      "cert_serial", "not_before",  "not_after",
	"pending",	"pending_saved", "pending_check_after", "unrevoked", "unrevoked_error",
	"pin_locked",
	"token_label", "token_manufacturer", "token_model", "token_serial_unique",
	"ca_status", "ca_fail_info",
};

static int number(const char *v, long long lo, long long hi, long long *out)
{
	char *end;
	long long n;

	if (*v == '\0' || (*v != '-' && (*v < '0' || *v > '9')))
		return -1;
	errno = 0;
	n = strtoll(v, &end, 10);
	if (errno != 0 || *end != '\0' || n < lo || n > hi)
		return -1;
	*out = n;
	return 0;
}

/* A text value: fits, and is what agent_escape() leaves unchanged. */
static int text(const char *v, char *out, size_t outlen)
{
	char esc[AGENT_RESULT_MAX];

	if (strlen(v) >= outlen || strlen(v) >= sizeof(esc))
		return -1;
	if (strcmp(agent_escape(v, esc, sizeof(esc)), v) != 0)
		return -1;
	memcpy(out, v, strlen(v) + 1);
	return 0;
}

static int hex(const char *v, const char *digits, char *out, size_t outlen)
{
	size_t n = strlen(v);

	if (n == 0 || n >= outlen || strspn(v, digits) != n)
		return -1;
	memcpy(out, v, n + 1);
	return 0;
}

/* Upper-case hex as BN_bn2hex writes it, with its '-' for a negative
 * serial (RFC 5280 forbids one; CAs have sent one). */
static int serial(const char *v, char *out, size_t outlen)
{
	size_t neg = *v == '-';

	if (strlen(v) >= outlen || hex(v + neg, "0123456789ABCDEF", out + neg, outlen - neg) < 0)
		return -1;
	if (neg)
		out[0] = '-';
	return 0;
}

static int known_request(const char *v)
{
	static const char *const names[] = { "ir", "cr", "kur", "p10cr" };
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(v, names[i]) == 0)
			return 1;
	return 0;
}

#define LETTERS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

static int field(agent_result *r, int k, const char *v)
{
	long long n;

	switch (k) {
	case K_NAME:
		return *v == '\0' ? -1 : text(v, r->name, sizeof(r->name));
	case K_EXIT:
		if (number(v, 0, 255, &n) < 0)
			return -1;
		r->exit_code = (int)n;
		return 0;
	case K_CATEGORY:
		return 0; /* checked against exit at the end */
	case K_ERROR:
		return text(v, r->error, sizeof(r->error));
	case K_TRANSACTION:
		return hex(v, "0123456789abcdefABCDEF", r->transaction, sizeof(r->transaction));
	case K_TOKEN:
	case K_CERT: {
		int yes = strcmp(v, "present") == 0;
		int no = strcmp(v, k == K_TOKEN ? "absent" : "none") == 0;

		if (!yes && !no)
			return -1;
		*(k == K_TOKEN ? &r->token : &r->cert) = yes;
		return 0;
	}
	case K_TOKEN_SERIAL:
		return text(v, r->token_serial, sizeof(r->token_serial));
	case K_CERT_SERIAL:
		return serial(v, r->cert_serial, sizeof(r->cert_serial));
	case K_NOT_BEFORE:
	case K_NOT_AFTER:
	case K_PENDING_SAVED:
		if (number(v, -(1LL << 40), 1LL << 40, &n) < 0)
			return -1;
		*(k == K_NOT_BEFORE ? &r->not_before : k == K_NOT_AFTER ? &r->not_after
									: &r->pending_saved) = n;
		return 0;
	case K_PENDING:
		if (!known_request(v))
			return -1;
		snprintf(r->pending, sizeof(r->pending), "%s", v);
		return 0;
	case K_PENDING_CHECK_AFTER:
		if (number(v, 0, INT_MAX, &n) < 0)
			return -1;
		r->pending_check_after = (long)n;
		return 0;
	case K_UNREVOKED:
		/* an exit code of a failure: never 0 */
		if (number(v, 1, 255, &n) < 0)
			return -1;
		r->unrevoked = (int)n;
		return 0;
	case K_UNREVOKED_ERROR:
		return *v == '\0' ? -1 : text(v, r->unrevoked_error, sizeof(r->unrevoked_error));
	case K_PIN_LOCKED:
		if (strcmp(v, "token") != 0 && strcmp(v, "tpm") != 0)
			return -1;
		snprintf(r->pin_locked, sizeof(r->pin_locked), "%s", v);
		return 0;
	case K_TOKEN_LABEL:
		return text(v, r->token_label, sizeof(r->token_label));
	case K_TOKEN_MANUFACTURER:
		return text(v, r->token_manufacturer, sizeof(r->token_manufacturer));
	case K_TOKEN_MODEL:
		return text(v, r->token_model, sizeof(r->token_model));
	case K_TOKEN_SERIAL_UNIQUE:
		if (strcmp(v, "yes") != 0 && strcmp(v, "no") != 0)
			return -1;
		r->token_serial_unique = strcmp(v, "yes") == 0;
		return 0;
	case K_CA_STATUS:
		/* a PKIStatus name: letters only */
		if (*v == '\0' || strspn(v, LETTERS) != strlen(v))
			return -1;
		return text(v, r->ca_status, sizeof(r->ca_status));
	case K_CA_FAIL_INFO:
		/* failInfo bit names, one space between them */
		if (*v == '\0' || *v == ' ' || v[strlen(v) - 1] == ' ' || strstr(v, "  ") != NULL ||
		    strspn(v, LETTERS " ") != strlen(v))
			return -1;
		return text(v, r->ca_fail_info, sizeof(r->ca_fail_info));
	}
	return -1;
}

int agent_result_parse(const char *buf, size_t len, agent_result *r, char *why, size_t whylen)
{
	char line[AGENT_RESULT_MAX + 1], *v;
	const char *p = buf, *end = buf + len, *nl, *category = NULL;
	char cat[32] = "";
	int seen[K_N] = { 0 }, lineno = 0, k, ended = 0;
	size_t n;

	agent_result_init(r);
	if (len > AGENT_RESULT_MAX)
		return agent_fail(why, whylen, "the record is longer than %d bytes", AGENT_RESULT_MAX);
	if (memchr(buf, '\0', len) != NULL)
		return agent_fail(why, whylen, "the record holds a NUL byte");
	while (p < end) {
		lineno++;
		if (ended)
			return agent_fail(why, whylen, "line %d: text after \"end\"", lineno);
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			return agent_fail(why, whylen, "line %d: no newline at the end", lineno);
		n = (size_t)(nl - p);
		memcpy(line, p, n);
		line[n] = '\0';
		p = nl + 1;
		if (lineno == 1) {
			char want[32];

			snprintf(want, sizeof(want), "p11enroll-result %d", AGENT_RESULT_VERSION);
			if (strcmp(line, want) != 0)
				return agent_fail(why, whylen, "line 1: not a version %d result record",
					    AGENT_RESULT_VERSION);
			continue;
		}
		if (strcmp(line, "end") == 0) {
			ended = 1;
			continue;
		}
		if ((v = strchr(line, ' ')) == NULL || v == line)
			return agent_fail(why, whylen, "line %d: not \"key value\"", lineno);
		*v++ = '\0';
		for (k = 0; k < K_N && strcmp(line, keys[k]) != 0; k++)
			;
		if (k == K_N)
			return agent_fail(why, whylen, "line %d: unknown key \"%.40s\"", lineno, line);
		if (seen[k]++)
			return agent_fail(why, whylen, "line %d: \"%s\" given twice", lineno, keys[k]);
		if (k == K_CATEGORY)
			snprintf(cat, sizeof(cat), "%.31s", v), category = cat;
		if (field(r, k, v) < 0)
			return agent_fail(why, whylen, "line %d: invalid %s", lineno, keys[k]);
	}
	if (lineno == 0)
		return agent_fail(why, whylen, "the record is empty");
	if (!ended)
		return agent_fail(why, whylen, "the record has no \"end\" line");
	if (!seen[K_EXIT] || category == NULL)
		return agent_fail(why, whylen, "the record has no exit code or no category");
	if (strcmp(category, agent_result_category(r->exit_code)) != 0)
		return agent_fail(why, whylen, "category \"%s\" does not match exit %d", category,
			    r->exit_code);
	if (r->cert > 0 && !(seen[K_CERT_SERIAL] && seen[K_NOT_BEFORE] && seen[K_NOT_AFTER]))
		return agent_fail(why, whylen, "a certificate without its serial or validity");
	if (r->cert <= 0 && (seen[K_CERT_SERIAL] || seen[K_NOT_BEFORE] || seen[K_NOT_AFTER]))
		return agent_fail(why, whylen, "certificate facts without a certificate");
	if (seen[K_PENDING] != seen[K_PENDING_SAVED] || seen[K_PENDING] != seen[K_PENDING_CHECK_AFTER])
		return agent_fail(why, whylen, "a pending transaction needs pending, pending_saved and "
					 "pending_check_after");
	if (seen[K_UNREVOKED_ERROR] && !seen[K_UNREVOKED])
		return agent_fail(why, whylen, "unrevoked_error without unrevoked");
	if (seen[K_PIN_LOCKED] && r->exit_code != EXIT_PIN)
		return agent_fail(why, whylen, "pin_locked with exit %d (only with exit 4)",
				  r->exit_code);
	return 0;
}

int agent_result_next(const char *buf, size_t len, size_t *ret_used, agent_result *r, char *why,
		      size_t whylen)
{
	/* Every record begins with its version line: its "end" line follows
	 * a newline, and no value holds one. */
	const char *end = len > 0 ? memmem(buf, len, "\nend\n", 5) : NULL;
	size_t used;

	if (end == NULL) {
		if (len > AGENT_RESULT_MAX)
			return agent_fail(why, whylen, "a record is longer than %d bytes",
					  AGENT_RESULT_MAX);
		return 0;
	}
	used = (size_t)(end - buf) + 5;
	if (agent_result_parse(buf, used, r, why, whylen) < 0)
		return -1;
	*ret_used = used;
	return 1;
}

/* ---- the child's own record ------------------------------------------------- */

agent_result *agent_result_self(void)
{
	return &self;
}

void agent_result_claim(void)
{
	const char *env = getenv(AGENT_RESULT_FD_ENV);
	char *end;
	long fd;

	if (env == NULL)
		return;
	errno = 0;
	fd = strtol(env, &end, 10);
	if (errno == 0 && *end == '\0' && end != env && fd >= 3 && fd <= 1023 &&
	    fcntl((int)fd, F_SETFD, FD_CLOEXEC) == 0)
		self_fd = (int)fd;
	/* Nothing this process starts writes a record of its own. */
	unsetenv(AGENT_RESULT_FD_ENV);
}

/* self with exit_code and the last error, on self_fd: 0, or -1. */
static int write_self(int exit_code)
{
	char buf[AGENT_RESULT_MAX];
	size_t off = 0;
	ssize_t w;
	int n;

	self.exit_code = exit_code;
	if (exit_code != EXIT_PIN)
		self.pin_locked[0] = '\0'; /* the lockout was not what ended it */
	snprintf(self.error, sizeof(self.error), "%s", log_last_error());
	/* The fields' bounds keep a record within the buffer; without one
	 * the agent says that the step left no record. */
	if ((n = agent_result_format(&self, buf, sizeof(buf))) <= 0)
		return -1;
	while (off < (size_t)n && ((w = write(self_fd, buf + off, (size_t)n - off)) > 0 ||
				   (w < 0 && errno == EINTR)))
		if (w > 0)
			off += (size_t)w;
	return off == (size_t)n ? 0 : -1;
}

void agent_result_emit(int exit_code)
{
	if (self_fd < 0)
		return;
	(void)write_self(exit_code);
	agent_result_close();
}

int agent_result_emit_named(const char *name, int exit_code)
{
	int rc;

	if (self_fd < 0)
		return 0;
	if (strlen(name) >= sizeof(self.name))
		return -1;
	memcpy(self.name, name, strlen(name) + 1);
	rc = write_self(exit_code);
	agent_result_init(&self);
	return rc;
}

void agent_result_close(void)
{
	if (self_fd >= 0)
		close(self_fd);
	self_fd = -1;
}
