/*
 * p11enroll check NAME: what the agent needs to know about an enrollment,
 * as "key=value" lines on stdout: the token's serial, the certificate's
 * serial number, validity and CKA_ID, a pending transaction.  With
 * --recover it logs in first and finishes or undoes what an interrupted
 * run left on the token (agent_recover).  Without, no login happens:
 * certificates are public objects, so a token can be watched without its
 * PIN.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/x509.h>

#include "agent/agent-cmd.h"
#include "agent/result.h"

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

	printf("cert_serial=%s\n", hex != NULL ? hex : "?");
	snprintf(res->cert_serial, sizeof(res->cert_serial), "%s", hex != NULL ? hex : "0");
	OPENSSL_free(hex);
	BN_free(bn);
}

agent_rc agent_check(const conf_enrollment *e, int recover)
{
	char hex[2 * TOK_ID_MAX + 1], err[512], safe[4 * sizeof(((tok_info *)0)->serial)];
	agent_pending ap;
	tok_ctx *tok = NULL;
	tok_info info;
	X509 *cert = NULL;
	tok_id id;
	tok_rv trv;
	agent_rc rc;
	int r;
	agent_result *res = agent_result_self();

	if (e->label == NULL) {
		log_msg(LOG_ERR, "no label: check finds the enrollment's certificate by its label");
		return EXIT_USAGE;
	}
	if ((rc = agent_token_open(e, &tok, recover)) != EXIT_OK) {
		if (rc == EXIT_ABSENT) {
			printf("token=absent\n");
			res->token = 0;
		}
		goto out;
	}
	if ((trv = tok_get_info(tok, &info)) != TOK_OK) {
		rc = agent_token_fail(tok, trv, "cannot read the token information");
		goto out;
	}
	/* The agent parses these lines: the token's serial is the token's
	 * choice and must not add a line (a forged "cert=present"). */
	printf("token=present\ntoken_serial=%s\n", agent_escape(info.serial, safe, sizeof(safe)));
	res->token = 1;
	snprintf(res->token_serial, sizeof(res->token_serial), "%s", safe);
	if (recover && (rc = agent_recover(e, tok)) != EXIT_OK)
		goto out;
	trv = tok_find_cert(tok, e->label, NULL, &id, &cert);
	if (trv == TOK_ERR_NOT_FOUND) {
		printf("cert=none\n");
		res->cert = 0;
	} else if (trv != TOK_OK) {
		rc = agent_token_fail(tok, trv, "cannot read the enrollment's certificate");
		goto out;
	} else {
		agent_hex(id.id, id.len, hex, sizeof(hex));
		printf("cert=present\n");
		print_serial(cert, res);
		res->cert = 1;
		res->not_before = unix_time(X509_get0_notBefore(cert));
		res->not_after = unix_time(X509_get0_notAfter(cert));
		printf("not_before=%lld\nnot_after=%lld\nkey_id=%s\n", res->not_before,
		       res->not_after, hex);
	}
	if ((r = pending_load(e, &ap, err, sizeof(err))) > 0) {
		printf("pending=%s\npending_saved=%lld\npending_check_after=%ld\n",
		       pending_req_name(ap.p.type), (long long)ap.saved, ap.p.check_after);
		snprintf(res->pending, sizeof(res->pending), "%s", pending_req_name(ap.p.type));
		res->pending_saved = (long long)ap.saved;
		res->pending_check_after = ap.p.check_after;
	} else if (r < 0)
		log_msg(LOG_WARNING, "%s", err);
	rc = EXIT_OK;
out:
	X509_free(cert);
	tok_free(tok);
	return rc;
}
