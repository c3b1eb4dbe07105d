/*
 * p11enroll check NAME: what the agent needs to know about an enrollment,
 * as "key=value" lines on stdout: the token's identity, the certificate's
 * serial number, validity and CKA_ID, a pending transaction.  With
 * --recover it logs in first and finishes or undoes what an interrupted
 * run left on the token (agent_recover).  Without, no login happens:
 * certificates are public objects, so a token can be watched without its
 * PIN.  With several names (all on one token), the token is opened once
 * and each enrollment gets its lines, after "name=NAME", and its result
 * record.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/x509.h>

#include "agent/agent-cmd.h"
#include "agent/result.h"

/*
 * The lines of one look: "key=value" on stdout as they come, or with
 * --json kept as typed JSON values, one slot per key, and written as one
 * object per enrollment (kv_end) in a document for all (kv_finish): every
 * key in every object, null where the look did not get that far.
 */
enum {
	K_NAME, K_EXIT, K_TOKEN, K_TOKEN_SERIAL, K_TOKEN_LABEL, K_TOKEN_MANUFACTURER, K_TOKEN_MODEL,
	K_TOKEN_SERIAL_UNIQUE, K_CERT, K_CERT_SERIAL, K_NOT_BEFORE, K_NOT_AFTER, K_KEY_ID,
	K_PENDING, K_PENDING_SAVED, K_PENDING_CHECK_AFTER, K_ERROR, K_N
};
static const char *const key_names[K_N] = {
	"name", "exit", "token", "token_serial", "token_label", "token_manufacturer", "token_model",
	"token_serial_unique", "cert", "cert_serial", "not_before", "not_after", "key_id",
	"pending", "pending_saved", "pending_check_after", "error",
};

static struct {
	int json, objects, oom;
	char *v[K_N]; /* JSON text of each value; NULL: null */
} kv;

static void kv_set(int k, char *json)
{
	free(kv.v[k]);
	kv.v[k] = json;
	if (json == NULL)
		kv.oom = 1;
}

static void kv_str(int k, const char *v)
{
	if (!kv.json)
		printf("%s=%s\n", key_names[k], v);
	else
		kv_set(k, agent_json_string(v));
}

static void kv_int(int k, long long v)
{
	char *s;

	if (!kv.json) {
		printf("%s=%lld\n", key_names[k], v);
		return;
	}
	kv_set(k, asprintf(&s, "%lld", v) < 0 ? NULL : s);
}

/* yes/no as key=value, true/false in JSON */
static void kv_bool(int k, int v)
{
	if (!kv.json)
		printf("%s=%s\n", key_names[k], v ? "yes" : "no");
	else
		kv_set(k, strdup(v ? "true" : "false"));
}

static void kv_begin(const char *name, int print_name)
{
	if (!kv.json) {
		if (print_name)
			printf("name=%s\n", name);
		return;
	}
	if (name != NULL)
		kv_str(K_NAME, name);
}

/* The enrollment's object, with its exit code and the error it logged. */
static void kv_end(agent_rc rc)
{
	size_t k;

	if (!kv.json)
		return;
	kv_int(K_EXIT, rc);
	if (rc != EXIT_OK && log_last_error()[0] != '\0')
		kv_str(K_ERROR, log_last_error());
	printf("%s{", kv.objects++ == 0 ? "{\"enrollments\": [\n  " : ",\n  ");
	for (k = 0; k < K_N; k++) {
		printf("%s\"%s\": %s", k > 0 ? ", " : "", key_names[k],
		       kv.v[k] != NULL ? kv.v[k] : "null");
		free(kv.v[k]);
		kv.v[k] = NULL;
	}
	printf("}");
}

/* The document's end: -1 when a value was lost to memory. */
static int kv_finish(void)
{
	if (!kv.json)
		return 0;
	printf("%s]}\n", kv.objects > 0 ? "\n" : "{\"enrollments\": [");
	return kv.oom || fflush(stdout) != 0 ? -1 : 0;
}

static long long unix_time(const ASN1_TIME *t)
{
	struct tm tm;

	if (t == NULL || !ASN1_TIME_to_tm(t, &tm))
		return 0;
	return (long long)timegm(&tm);
}

static void print_serial(X509 *cert, agent_result *res)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
	char *hex = bn != NULL ? BN_bn2hex(bn) : NULL;

	kv_str(K_CERT_SERIAL, hex != NULL ? hex : "?");
	snprintf(res->cert_serial, sizeof(res->cert_serial), "%s", hex != NULL ? hex : "0");
	OPENSSL_free(hex);
	BN_free(bn);
}

static void token_lines(tok_ctx *tok, const tok_info *info)
{
	agent_result *res = agent_result_self();

	/* The token's identity: its serial, and its label, manufacturer and
	 * model, which tell apart tokens whose serials repeat.  The values
	 * are the token's choice and must not add a line (a forged
	 * "cert=present"). */
	agent_token_record(tok, info);
	kv_str(K_TOKEN, "present");
	kv_str(K_TOKEN_SERIAL, res->token_serial);
	kv_str(K_TOKEN_LABEL, res->token_label);
	kv_str(K_TOKEN_MANUFACTURER, res->token_manufacturer);
	kv_str(K_TOKEN_MODEL, res->token_model);
	kv_bool(K_TOKEN_SERIAL_UNIQUE, res->token_serial_unique);
}

/* The certificate's lines (cert NULL: none), then the pending
 * transaction's. */
static agent_rc cert_lines(const conf_enrollment *e, const tok_info *info, X509 *cert,
			   const tok_id *id)
{
	char hex[2 * TOK_ID_MAX + 1], err[512];
	agent_result *res = agent_result_self();
	agent_pending ap;
	int r;

	if (cert == NULL) {
		kv_str(K_CERT, "none");
		res->cert = 0;
	} else {
		agent_hex(id->id, id->len, hex, sizeof(hex));
		kv_str(K_CERT, "present");
		print_serial(cert, res);
		res->cert = 1;
		res->not_before = unix_time(X509_get0_notBefore(cert));
		res->not_after = unix_time(X509_get0_notAfter(cert));
		kv_int(K_NOT_BEFORE, res->not_before);
		kv_int(K_NOT_AFTER, res->not_after);
		kv_str(K_KEY_ID, hex);
	}
	if ((r = pending_load(e, info, &ap, err, sizeof(err))) > 0) {
		kv_str(K_PENDING, pending_req_name(ap.p.type));
		kv_int(K_PENDING_SAVED, (long long)ap.saved);
		kv_int(K_PENDING_CHECK_AFTER, ap.p.check_after);
		snprintf(res->pending, sizeof(res->pending), "%s", pending_req_name(ap.p.type));
		res->pending_saved = (long long)ap.saved;
		res->pending_check_after = ap.p.check_after;
	} else if (r < 0)
		log_msg(LOG_WARNING, "%s", err);
	return EXIT_OK;
}

/* The look at an enrollment on an open token (with its information). */
static agent_rc look(const conf_enrollment *e, tok_ctx *tok, const tok_info *info, int recover)
{
	X509 *cert = NULL;
	tok_id id;
	tok_rv trv;
	agent_rc rc;

	if (e->label == NULL) {
		log_msg(LOG_ERR, "no label: check finds the enrollment's certificate by its label");
		return EXIT_USAGE;
	}
	token_lines(tok, info);
	if (recover && (rc = agent_recover(e, tok)) != EXIT_OK)
		return rc;
	/* A revocation that failed before is retried; its failure is logged
	 * (and retried again), but the look is what check answers. */
	if (recover && e->revoke_replaced == 1 &&
	    (rc = agent_revoke_replaced(e, tok, NULL, 0)) != EXIT_OK) {
		log_msg(LOG_WARNING, "the look goes on: the certificate under '%s' is in use",
			e->label);
		agent_revoke_replaced_unrevoked(rc); /* the agent retries it */
	}
	trv = tok_find_cert(tok, e->label, NULL, &id, &cert);
	if (trv != TOK_OK && trv != TOK_ERR_NOT_FOUND)
		return agent_token_fail(tok, trv, "cannot read the enrollment's certificate");
	rc = cert_lines(e, info, cert, &id);
	X509_free(cert);
	return rc;
}

/* Whether the listing holds a pair waiting under "LABEL (to revoke)". */
static int to_revoke(const agent_listing *l, const char *label)
{
	char *s = agent_label_with(label, AGENT_MARK_TO_REVOKE);
	int r = s == NULL || agent_listing_has(l, s);

	free(s);
	return r;
}

/*
 * A pass over many enrollments reads the token once (agent_listing); the
 * listing is taken after the login, and another process changes an
 * enrollment only under its lock, which commands by hand take, and the
 * agent's own steps never run beside its pass.
 */
/* The look of an enrollment from the listing, or the whole look when its
 * answer is not there (marks to recover, several certificates). */
static agent_rc look_listed(const conf_enrollment *e, tok_ctx *tok, const tok_info *info,
			    int recover, const agent_listing *l)
{
	const tok_object *cert = NULL;
	size_t i;

	if (e->label == NULL || (recover && agent_listing_leftovers(l, e->label)) ||
	    (recover && e->revoke_replaced == 1 && to_revoke(l, e->label)))
		return look(e, tok, info, recover);
	for (i = agent_listing_first(l, e->label);
	     i < l->n && strcmp(l->by_label[i]->label, e->label) == 0; i++) {
		const tok_object *o = l->by_label[i];

		/* the end-entity certificate, as tok_find_cert takes it */
		if (o->cls != TOK_CKO_CERTIFICATE || o->cert_category == 2)
			continue;
		if (cert != NULL || o->cert == NULL)
			return look(e, tok, info, recover); /* it says what is wrong */
		cert = o;
	}
	token_lines(tok, info);
	return cert_lines(e, info, cert != NULL ? cert->cert : NULL,
			  cert != NULL ? &cert->id : NULL);
}

static agent_rc check_one(const conf_enrollment *e, int recover)
{
	agent_result *res = agent_result_self();
	tok_ctx *tok = NULL;
	tok_info info;
	tok_rv trv;
	agent_rc rc;

	/* The agent runs its looks as passes (agent_check_names) and takes
	 * a one-name pass's record by its name. */
	if (e->name != NULL)
		snprintf(res->name, sizeof(res->name), "%s", e->name);
	if (e->label == NULL) {
		log_msg(LOG_ERR, "no label: check finds the enrollment's certificate by its label");
		return EXIT_USAGE;
	}
	if ((rc = agent_token_open(e, &tok, recover)) != EXIT_OK) {
		if (rc == EXIT_ABSENT) {
			kv_str(K_TOKEN, "absent");
			res->token = 0;
		}
		return rc;
	}
	if ((trv = tok_get_info(tok, &info)) != TOK_OK)
		rc = agent_token_fail(tok, trv, "cannot read the token information");
	else
		rc = look(e, tok, &info, recover);
	tok_free(tok);
	return rc;
}

agent_rc agent_check(const conf_enrollment *e, int recover, int json)
{
	agent_rc rc;

	kv.json = json;
	kv_begin(e->name, 0);
	rc = check_one(e, recover);
	kv_end(rc);
	if (kv_finish() < 0) {
		log_msg(LOG_ERR, "cannot write the check's JSON document: out of memory or "
				 "stdout failed");
		return rc != EXIT_OK ? rc : EXIT_INTERNAL;
	}
	return rc;
}

/* The token's identity the record from holds, into to. */
static void copy_identity(agent_result *to, const agent_result *from)
{
	to->token = from->token;
	memcpy(to->token_serial, from->token_serial, sizeof(to->token_serial));
	memcpy(to->token_label, from->token_label, sizeof(to->token_label));
	memcpy(to->token_manufacturer, from->token_manufacturer, sizeof(to->token_manufacturer));
	memcpy(to->token_model, from->token_model, sizeof(to->token_model));
	to->token_serial_unique = from->token_serial_unique;
}

/* name's enrollment: the command line's settings, then the file's. */
static agent_rc enrollment(const conf_file *cf, const conf_enrollment *cli, const char *name,
			   conf_enrollment *e)
{
	conf_diag d = { 0 };
	char err[1024];
	agent_rc rc = EXIT_OK;

	if (conf_enrollment_copy(e, cli) < 0) {
		log_msg(LOG_ERR, "out of memory");
		conf_enrollment_init(e);
		return EXIT_INTERNAL;
	}
	free(e->name);
	e->name = NULL;
	if (conf_file_get(cf, name, e, err, sizeof(err)) < 0) {
		log_msg(LOG_ERR, "%s", err);
		rc = EXIT_USAGE;
	} else if (conf_check_required(e, conf_file_path(cf), &d) < 0) {
		log_msg(LOG_ERR, "%s", d.text != NULL ? d.text : "out of memory");
		rc = EXIT_USAGE;
	}
	conf_diag_clear(&d);
	return rc;
}

static int same(const char *a, const char *b)
{
	return strcmp(a != NULL ? a : "", b != NULL ? b : "") == 0;
}

/*
 * One pass over enrollments that share a token: the module is loaded, the
 * token opened and (recover) logged in to once, with the first name's
 * settings; each name then gets its look (and recovery, under its own
 * lock, held only meanwhile) and its record, in order.  A name whose
 * enrollment names another module, token or PIN source gets exit 2: it
 * needs a pass of its own.
 */
static agent_rc pass(const conf_file *cf, const conf_enrollment *cli, char *const *names,
		     size_t n, int recover)
{
	conf_enrollment first, e;
	agent_result *res = agent_result_self();
	agent_listing list = { 0 };
	tok_ctx *tok = NULL;
	tok_info info;
	tok_rv trv;
	agent_rc open_rc, rc, worst = EXIT_OK;
	char locked[sizeof(res->pin_locked)];
	static agent_result seen; /* large: not on the stack */
	size_t i;

	log_set_subject(names[0]);
	if ((open_rc = enrollment(cf, cli, names[0], &first)) == EXIT_OK &&
	    (open_rc = agent_token_open(&first, &tok, recover)) == EXIT_OK &&
	    (trv = tok_get_info(tok, &info)) != TOK_OK)
		open_rc = agent_token_fail(tok, trv, "cannot read the token information");
	if (open_rc == EXIT_OK && n > 1 && (trv = agent_listing_take(tok, &list)) != TOK_OK)
		open_rc = agent_token_fail(tok, trv, "cannot list the token's objects");
	log_set_subject(NULL);
	snprintf(locked, sizeof(locked), "%s", res->pin_locked);
	/* the token's identity, read before a login that failed: every name's */
	memcpy(&seen, res, sizeof(seen));
	for (i = 0; i < n; i++) {
		kv_begin(names[i], 1);
		if (open_rc != EXIT_OK) {
			/* Every name gets what the first one got, and the same
			 * error (log_last_error() still holds it). */
			if (open_rc == EXIT_ABSENT) {
				kv_str(K_TOKEN, "absent");
				res->token = 0;
			}
			memcpy(res->pin_locked, locked, sizeof(locked));
			if (seen.token == 1 && open_rc != EXIT_ABSENT)
				copy_identity(res, &seen);
			rc = open_rc;
		} else {
			log_set_subject(names[i]);
			if ((rc = enrollment(cf, cli, names[i], &e)) != EXIT_OK) {
				/* logged */
			} else if (!same(e.module, first.module) || !same(e.token, first.token) ||
				   (recover && !same(e.pin_source, first.pin_source))) {
				log_msg(LOG_ERR, "not on the token of '%s' with the same PIN source: "
						 "look at it with a check of its own",
					names[0]);
				rc = EXIT_USAGE;
			} else if (recover && agent_lock(&e, &info) < 0) {
				rc = EXIT_BUSY;
			} else {
				rc = n > 1 ? look_listed(&e, tok, &info, recover, &list)
					   : look(&e, tok, &info, recover);
				agent_unlock();
			}
			conf_enrollment_clear(&e);
		}
		kv_end(rc);
		if (agent_result_emit_named(names[i], (int)rc) < 0)
			log_msg(LOG_ERR, "cannot write the result record");
		if (worst == EXIT_OK)
			worst = rc;
		log_set_subject(NULL);
	}
	agent_result_close();
	agent_listing_free(&list);
	tok_free(tok);
	conf_enrollment_clear(&first);
	return worst;
}

agent_rc agent_check_names(const char *config, const conf_enrollment *cli, char *const *names,
			   size_t n, int recover, int json)
{
	conf_diag d = { 0 };
	conf_file *cf = NULL;
	agent_rc rc;
	size_t i;

	if (conf_file_load(config, CONF_CHECK_ACCESS, &cf, &d) < 0) {
		const char *p = d.text != NULL ? d.text : "out of memory\n";

		while (*p != '\0') {
			size_t len = strcspn(p, "\n");

			log_msg(LOG_ERR, "%.*s", (int)len, p);
			p += len + (p[len] == '\n');
		}
		kv.json = json;
		for (i = 0; i < n; i++) {
			kv_begin(names[i], 0);
			kv_end(EXIT_USAGE);
			(void)agent_result_emit_named(names[i], EXIT_USAGE);
		}
		(void)kv_finish();
		agent_result_close();
		conf_diag_clear(&d);
		return EXIT_USAGE;
	}
	conf_diag_clear(&d);
	kv.json = json;
	rc = pass(cf, cli, names, n, recover);
	conf_file_free(cf);
	if (kv_finish() < 0) {
		log_msg(LOG_ERR, "cannot write the check's JSON document: out of memory or "
				 "stdout failed");
		return rc != EXIT_OK ? rc : EXIT_INTERNAL;
	}
	return rc;
}
