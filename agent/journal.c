/*
 * The journal (agent/journal.h).  A line is written with one write() on a
 * descriptor opened O_APPEND, so that two processes appending to one
 * journal never interleave inside a line, and fsync'ed before the run goes
 * on: a line that a crash cuts off is the last one, and a reader skips
 * a last line without its newline.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>

#include "agent/journal.h"
#include "agent/result.h"

static agent_journal_entry last;
static int have_last;
static char source[320];

const char *agent_journal_outcome(int exit_code)
{
	return exit_code == EXIT_OK ? "ok" : exit_code == EXIT_WAITING ? "waiting" : "failed";
}

/* RFC 3339, UTC: 2026-12-03T12:00:00Z */
static void rfc3339(long long t, char *out, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL || strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, len, "?");
}

char *agent_journal_format(const agent_journal_entry *j)
{
	const char *keys[] = {"time",	     "outcome",	    "request", "source", "token_serial",
			      "label",	     "subject",	    "cert_serial", "not_after",
			      "transaction", "error"};
	char when[40], until[40];
	const char *vals[sizeof(keys) / sizeof(keys[0])];
	char *line = NULL, *q;
	size_t i, len = 0, n = sizeof(keys) / sizeof(keys[0]);
	char *quoted[sizeof(keys) / sizeof(keys[0])] = {NULL};

	rfc3339(j->time, when, sizeof(when));
	if (j->not_after > 0)
		rfc3339(j->not_after, until, sizeof(until));
	vals[0] = when;
	vals[1] = j->outcome != NULL ? j->outcome : "failed";
	vals[2] = j->request;
	vals[3] = j->source;
	vals[4] = j->token_serial;
	vals[5] = j->label;
	vals[6] = j->subject;
	vals[7] = j->cert_serial;
	vals[8] = j->not_after > 0 ? until : "";
	vals[9] = j->transaction;
	vals[10] = j->error;
	for (i = 0; i < n; i++) {
		/* an empty field is null: nothing known, not an empty name */
		if (vals[i][0] == '\0')
			continue;
		if ((quoted[i] = agent_json_string(vals[i])) == NULL)
			goto out;
		len += strlen(keys[i]) + strlen(quoted[i]) + 6;
	}
	for (i = 0; i < n; i++)
		len += strlen(keys[i]) + 10;
	if ((line = malloc(len + 4)) == NULL)
		goto out;
	q = line;
	*q++ = '{';
	for (i = 0; i < n; i++) {
		int w = snprintf(q, len + 4 - (size_t)(q - line), "%s\"%s\": %s", i > 0 ? ", " : "",
				 keys[i], quoted[i] != NULL ? quoted[i] : "null");

		q += w;
	}
	*q++ = '}';
	*q++ = '\n';
	*q = '\0';
out:
	for (i = 0; i < n; i++)
		free(quoted[i]);
	return line;
}

int agent_journal_append(const char *path, const agent_journal_entry *j, char *err,
			 size_t errlen)
{
	char *line = agent_journal_format(j);
	size_t len;
	struct stat st;
	ssize_t w;
	int fd, saved;

	if (line == NULL) {
		snprintf(err, errlen, "cannot write the journal %s: out of memory", path);
		return -1;
	}
	len = strlen(line);
	if ((fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640)) < 0) {
		snprintf(err, errlen, "cannot open the journal %s: %s: check the journal setting "
				      "and the directory's permissions",
			 path, strerror(errno));
		free(line);
		return -1;
	}
	do
		w = write(fd, line, len);
	while (w < 0 && errno == EINTR);
	saved = errno;
	/* Only a file keeps what fsync syncs: a station's child journals to
	 * /dev/null, which refuses fsync (EINVAL). */
	if (w != (ssize_t)len || (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && fsync(fd) != 0)) {
		if (w == (ssize_t)len)
			saved = errno;
		snprintf(err, errlen, "cannot append to the journal %s: %s", path,
			 w >= 0 && w != (ssize_t)len ? "short write (disk full?)" : strerror(saved));
		close(fd);
		free(line);
		return -1;
	}
	free(line);
	if (close(fd) != 0) {
		snprintf(err, errlen, "cannot append to the journal %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

void agent_journal_begin(const char *src)
{
	have_last = 0;
	snprintf(source, sizeof(source), "%s", src != NULL ? src : "");
	log_clear_last_error();
}

const agent_journal_entry *agent_journal_last(void)
{
	return have_last ? &last : NULL;
}

void agent_journal_request(const conf_enrollment *e, const char *request, agent_rc rc,
			   tok_ctx *tok, cmpc_ctx *cmp, X509 *cert)
{
	agent_journal_entry *j = &last;
	char err[1200];
	X509 *found = NULL;
	tok_info info;
	tok_id id;

	memset(j, 0, sizeof(*j));
	have_last = 1;
	j->time = (long long)time(NULL);
	snprintf(j->request, sizeof(j->request), "%s", request != NULL ? request : "");
	snprintf(j->source, sizeof(j->source), "%s", source);
	snprintf(j->label, sizeof(j->label), "%s", e->label != NULL ? e->label : "");
	snprintf(j->subject, sizeof(j->subject), "%s", e->subject != NULL ? e->subject : "");
	if (cmp != NULL)
		snprintf(j->transaction, sizeof(j->transaction), "%s", cmpc_transaction_id(cmp));
	j->outcome = agent_journal_outcome(rc);
	if (rc != EXIT_OK)
		snprintf(j->error, sizeof(j->error), "%s", log_last_error());
	/* A run that recovery finished requested nothing: the certificate
	 * is the one now under the label (only looked up for the journal). */
	if (cert == NULL && rc == EXIT_OK && tok != NULL && e->journal != NULL && e->label != NULL &&
	    tok_find_cert(tok, e->label, NULL, &id, &found) == TOK_OK)
		cert = found;
	if (cert != NULL && rc == EXIT_OK) {
		BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
		char *hex = bn != NULL ? BN_bn2hex(bn) : NULL;
		agent_result *res = agent_result_self();
		struct tm tm;

		X509_NAME_oneline(X509_get_subject_name(cert), j->subject, sizeof(j->subject));
		snprintf(j->cert_serial, sizeof(j->cert_serial), "%s", hex != NULL ? hex : "");
		if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm))
			j->not_after = (long long)timegm(&tm);
		/* The certificate the request left in place, for the result
		 * record (a station's line names it). */
		res->cert = 1;
		snprintf(res->cert_serial, sizeof(res->cert_serial), "%.128s", j->cert_serial);
		res->not_after = j->not_after;
		if (ASN1_TIME_to_tm(X509_get0_notBefore(cert), &tm))
			res->not_before = (long long)timegm(&tm);
		OPENSSL_free(hex);
		BN_free(bn);
	}
	X509_free(found);
	/* The token's serial costs a call to the token: only for the journal. */
	if (e->journal == NULL)
		return;
	if (tok != NULL && tok_get_info(tok, &info) == TOK_OK)
		snprintf(j->token_serial, sizeof(j->token_serial), "%s", info.serial);
	if (agent_journal_append(e->journal, j, err, sizeof(err)) < 0)
		log_msg(LOG_WARNING, "%s", err);
}
