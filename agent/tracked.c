/*
 * p11enroll status --all (list-tracked): what the agent tracks, as
 * certmonger's `getcert list` shows it, from the files alone: the
 * configuration (subject, CA, token) and the agent's state files
 * (STATE_DIR/NAME.agent: state, certificate serial, validity, next
 * attempt, failures, last error), plus a saved transaction
 * (STATE_DIR/pending).  No agent needs to run, no token is opened and no
 * PIN is read.  Where a state file lacks the certificate (never looked at,
 * or stopped before a look), cert_out, the copy the configuration writes,
 * gives it; its subject is shown only when it is the certificate the
 * state names, else the configured subject.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "agent/track.h"

/* One enrollment as the files show it. */
typedef struct {
	track *t;
	int state_file;	   /* its state file exists */
	const char *state; /* as status names the states */
	/* where the serial and validity come from: "state", "cert_out", NULL */
	const char *cert_from;
	char subject[2048];
	const char *subject_from; /* "certificate" or "configuration" (NULL: none) */
	char pending[8];	  /* the request a saved transaction waits for, "" none */
} view;

static long long asn1_unix(const ASN1_TIME *t)
{
	struct tm tm;

	return t != NULL && ASN1_TIME_to_tm(t, &tm) ? (long long)timegm(&tm) : 0;
}

/* The certificate cert_out holds, or NULL (none configured, not there). */
static X509 *cert_out(const conf_enrollment *e)
{
	X509 *cert;
	FILE *f;

	if (e->cert_out == NULL || (f = fopen(e->cert_out, "r")) == NULL)
		return NULL;
	cert = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	return cert;
}

static void hex_serial(X509 *cert, char *out, size_t len)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
	char *hex = bn != NULL ? BN_bn2hex(bn) : NULL;

	snprintf(out, len, "%s", hex != NULL ? hex : "");
	OPENSSL_free(hex);
	BN_free(bn);
}

static void fill(view *v)
{
	track *t = v->t;
	char path[1024], serial[sizeof(t->cert_serial)], err[1024];
	agent_pending ap;
	X509 *cert = cert_out(&t->e);

	v->state_file = pending_name_path(&t->e, "agent", path, sizeof(path)) == 0 &&
			access(path, F_OK) == 0;
	if (cert != NULL)
		hex_serial(cert, serial, sizeof(serial));
	if (t->have_cert) {
		v->cert_from = "state";
	} else if (cert != NULL && serial[0] != '\0') {
		snprintf(t->cert_serial, sizeof(t->cert_serial), "%s", serial);
		t->not_before = asn1_unix(X509_get0_notBefore(cert));
		t->not_after = asn1_unix(X509_get0_notAfter(cert));
		t->have_cert = t->not_after > 0;
		v->cert_from = t->have_cert ? "cert_out" : NULL;
	}
	if (cert != NULL && t->have_cert && strcmp(serial, t->cert_serial) == 0) {
		agent_name_text(X509_get_subject_name(cert), v->subject, sizeof(v->subject));
		v->subject_from = "certificate";
	} else if (t->e.subject != NULL) {
		agent_escape(t->e.subject, v->subject, sizeof(v->subject));
		v->subject_from = "configuration";
	}
	X509_free(cert);
	if (pending_find(&t->e, 0, &ap, err, sizeof(err)) > 0)
		snprintf(v->pending, sizeof(v->pending), "%s", pending_req_name(ap.p.type));
	/* The states the agent would start in from these files, named as
	 * status names them; "unknown": no state file, the agent has not
	 * tracked it yet. */
	if (t->st == T_STOPPED || t->st == T_PIN || t->st == T_LOCKED)
		v->state = track_state_name(t->st);
	else if (!v->state_file)
		v->state = "unknown";
	else if (v->pending[0] != '\0')
		v->state = track_state_name(T_POLLING);
	else if (t->failures > 0)
		v->state = track_state_name(T_BACKOFF);
	else if (t->have_cert)
		v->state = track_state_name(T_VALID);
	else
		v->state = track_state_name(T_START);
}

/* The next attempt, unless a latch or a stop holds it. */
static long long next_of(const view *v)
{
	return v->t->st == T_STOPPED || v->t->st == T_PIN || v->t->st == T_LOCKED ? 0 : v->t->next;
}

/* "a b c" (letters only, as the state file keeps them) as ["a", "b", "c"]. */
static void fail_info(agent_jw *w, const char *names)
{
	char one[64];
	size_t n;

	agent_jw_array(w, "ca_fail_info");
	while (*names != '\0') {
		n = strcspn(names, " ");
		if (n > 0 && n < sizeof(one)) {
			memcpy(one, names, n);
			one[n] = '\0';
			agent_jw_str(w, NULL, one);
		}
		names += n;
		names += strspn(names, " ");
	}
	agent_jw_close(w, ']');
}

static void json_one(agent_jw *w, const view *v)
{
	const track *t = v->t;

	agent_jw_object(w, NULL);
	agent_jw_str(w, "name", t->name);
	agent_jw_str(w, "state", v->state);
	agent_jw_bool(w, "state_file", v->state_file);
	agent_jw_str(w, "subject", v->subject_from != NULL ? v->subject : NULL);
	agent_jw_str(w, "subject_from", v->subject_from);
	agent_jw_str(w, "server", t->e.server);
	agent_jw_str(w, "token", t->e.token);
	agent_jw_str(w, "label", t->e.label);
	agent_jw_str(w, "certificate_serial", t->have_cert ? t->cert_serial : NULL);
	agent_jw_str(w, "certificate_from", t->have_cert ? v->cert_from : NULL);
	agent_jw_time(w, "not_before", t->not_before, t->have_cert && t->not_before > 0);
	agent_jw_time(w, "not_after", t->not_after, t->have_cert);
	agent_jw_time(w, "next_attempt", next_of(v), next_of(v) > 0);
	agent_jw_time(w, "last_success", t->last_success, t->last_success > 0);
	agent_jw_time(w, "last_attempt", t->last_attempt, t->last_attempt > 0);
	agent_jw_int(w, "consecutive_failures", t->failures);
	agent_jw_int(w, "renewals", t->renewals);
	agent_jw_bool(w, "pending", v->pending[0] != '\0');
	agent_jw_str(w, "pending_request", v->pending[0] != '\0' ? v->pending : NULL);
	agent_jw_str(w, "last_error", track_error(t)[0] != '\0' ? track_error(t) : NULL);
	/* As status --json gives them (track_status_json), from the state file. */
	agent_jw_time(w, "last_error_time", t->last_error_at,
		      track_error(t)[0] != '\0' && t->last_error_at > 0);
	agent_jw_str(w, "ca_status",
		     track_error(t)[0] != '\0' && t->ca_status[0] != '\0' ? t->ca_status : NULL);
	fail_info(w, track_error(t)[0] != '\0' ? t->ca_fail_info : "");
	agent_jw_close(w, '}');
}

static void text_time(const char *what, long long t)
{
	char s[40];

	printf("  %-14s%s\n", what, t > 0 ? agent_rfc3339(t, s, sizeof(s)) : "-");
}

static void text_one(const view *v)
{
	const track *t = v->t;
	char a[4 * 256], b[4 * 2048];

	printf("enrollment '%s': %s\n", agent_escape_shown(t->name, a, sizeof(a)), v->state);
	printf("  %-14s%s%s\n", "subject:",
	       v->subject_from != NULL ? agent_escape_shown(v->subject, b, sizeof(b)) : "-",
	       v->subject_from != NULL && strcmp(v->subject_from, "configuration") == 0
		       ? " (configured)"
		       : "");
	printf("  %-14s%s\n", "CA:", agent_escape_shown(t->e.server, b, sizeof(b)));
	printf("  %-14s%s\n", "token:", agent_escape_shown(t->e.token, b, sizeof(b)));
	printf("  %-14s%s\n", "label:", agent_escape_shown(t->e.label, b, sizeof(b)));
	printf("  %-14s%s%s\n", "serial:", t->have_cert ? t->cert_serial : "-",
	       v->cert_from != NULL && strcmp(v->cert_from, "cert_out") == 0 ? " (from cert_out)"
									   : "");
	text_time("not after:", t->have_cert ? t->not_after : 0);
	text_time("next attempt:", next_of(v));
	text_time("last success:", t->last_success);
	if (t->failures > 0)
		printf("  %-14s%d\n", "failures:", t->failures);
	if (v->pending[0] != '\0')
		printf("  %-14s%s (the CA answered \"waiting\")\n", "pending:", v->pending);
	if (track_error(t)[0] != '\0')
		printf("  %-14s%s\n", "last error:",
		       agent_escape_shown(track_error(t), b, sizeof(b)));
}

/* name's enrollment: the command line's settings, then the file's. */
static track *load_one(const conf_file *cf, const conf_enrollment *cli, const char *name)
{
	track *t = calloc(1, sizeof(*t));
	char err[1024];

	if (t == NULL || conf_enrollment_copy(&t->e, cli) < 0) {
		log_msg(LOG_ERR, "out of memory");
		if (t != NULL)
			conf_enrollment_init(&t->e);
		track_free(t);
		return NULL;
	}
	free(t->e.name);
	if ((t->name = t->e.name = strdup(name)) == NULL ||
	    conf_file_get(cf, name, &t->e, err, sizeof(err)) < 0) {
		log_msg(LOG_ERR, "%s", t->name == NULL ? "out of memory" : err);
		track_free(t);
		return NULL;
	}
	t->token_serial_unique = -1;
	(void)track_load(t);
	return t;
}

agent_rc agent_tracked(const char *config, const conf_enrollment *cli, const char *only,
		       int json)
{
	conf_diag d = { 0 };
	conf_file *cf = NULL;
	agent_rc rc = EXIT_OK;
	agent_jw w;
	char err[1024];
	size_t i, shown = 0;

	/* No access checks: whoever may read the file sees what it tracks,
	 * without the PIN and secret files. */
	if (conf_file_load(config, 0, &cf, &d) < 0) {
		const char *p = d.text != NULL ? d.text : "out of memory\n";

		while (*p != '\0') {
			size_t len = strcspn(p, "\n");

			log_msg(LOG_ERR, "%.*s", (int)len, p);
			p += len + (p[len] == '\n');
		}
		conf_diag_clear(&d);
		return EXIT_USAGE;
	}
	conf_diag_clear(&d);
	if (only != NULL && conf_file_pick(cf, only, err, sizeof(err)) == NULL) {
		log_msg(LOG_ERR, "%s", err);
		conf_file_free(cf);
		return EXIT_USAGE;
	}
	if (json) {
		agent_jw_init(&w, stdout);
		agent_jw_object(&w, NULL);
		agent_jw_array(&w, "enrollments");
	}
	for (i = 0; i < conf_file_count(cf); i++) {
		const char *name = conf_file_name(cf, i);
		view v;

		if (only != NULL && strcmp(name, only) != 0)
			continue;
		memset(&v, 0, sizeof(v));
		if ((v.t = load_one(cf, cli, name)) == NULL) {
			rc = EXIT_USAGE;
			continue;
		}
		fill(&v);
		if (json)
			json_one(&w, &v);
		else
			text_one(&v);
		shown++;
		track_free(v.t);
	}
	if (json) {
		agent_jw_close(&w, ']');
		agent_jw_close(&w, '}');
		if (agent_jw_end(&w) < 0) {
			log_msg(LOG_ERR, "cannot write the document: out of memory or stdout failed");
			rc = EXIT_INTERNAL;
		}
	} else if (shown == 0) {
		printf("no enrollments in %s\n", conf_file_path(cf));
	}
	conf_file_free(cf);
	return rc;
}
