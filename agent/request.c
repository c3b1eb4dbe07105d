/*
 * p11enroll enroll / cr / p10cr: a new key pair on the token, certified
 * with an ir (PBM; the token signs the POP), a cr protected by a signature,
 * or a PKCS#10 request signed by the new key on the token (p10cr, PBM or a
 * signer); the certificate and its CA chain are stored next to the key.
 * The sequence, and the rule that a key generated here never outlives a
 * failed request, are certreq.c's.  p11enroll resume: the pending request
 * continued (or abandoned) by the command that began it.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "agent/agent-cmd.h"

/* The csr file: PEM or DER PKCS#10, its self-signature verified (the
 * proof that whoever made it holds the key). */
static agent_rc read_csr(const conf_enrollment *e, X509_REQ **ret)
{
	X509_REQ *req;
	FILE *f;

	if ((f = fopen(e->csr, "rb")) == NULL) {
		log_msg(LOG_ERR, "cannot read csr %s: %s", e->csr, strerror(errno));
		return EXIT_USAGE;
	}
	if ((req = PEM_read_X509_REQ(f, NULL, NULL, NULL)) == NULL) {
		ERR_clear_error();
		rewind(f);
		req = d2i_X509_REQ_fp(f, NULL);
	}
	fclose(f);
	if (req == NULL) {
		log_openssl_errors();
		log_msg(LOG_ERR, "csr %s holds no PKCS#10 request in PEM or DER: give the file "
				 "openssl req -new wrote",
			e->csr);
		return EXIT_USAGE;
	}
	if (X509_REQ_get0_pubkey(req) == NULL || X509_REQ_verify(req, X509_REQ_get0_pubkey(req)) != 1) {
		ERR_clear_error();
		log_msg(LOG_ERR, "csr %s: its signature does not verify with its own public key: "
				 "the request was changed after signing, or is not signed by its "
				 "key; make it again",
			e->csr);
		X509_REQ_free(req);
		return EXIT_USAGE;
	}
	*ret = req;
	return EXIT_OK;
}

/* A given CSR is sent as is: what would change it does not apply. */
static void csr_ignores(const conf_enrollment *e)
{
	const char *const keys[] = { "subject",	  "san",      "key_usage", "extended_key_usage",
				     "policies", "basic_constraints", "name_constraints", "key_type",
				     "key_id" };
	const char *const vals[] = { e->subject,  e->san,	e->key_usage, e->extended_key_usage,
				     e->policies, e->basic_constraints, e->name_constraints,
				     e->key_type, e->key_id };
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (vals[i] != NULL)
			log_msg(LOG_WARNING, "%s is ignored: the csr %s is sent as is (put what "
					     "it should ask for into the CSR)",
				keys[i], e->csr);
}

/* After recovery: the TLS client credentials, and a signer or PBM for a cr
 * or p10cr (an ir has its PBM from before the token was opened). */
static agent_rc prepare_new(agent_req *r)
{
	agent_rc rc;

	if ((rc = agent_cmp_tls_client(r->e, r->cmp, r->tok, NULL, NULL)) != EXIT_OK)
		return rc;
	if (r->type == CMPC_REQ_IR)
		return EXIT_OK;
	return agent_cmp_protect(r->e, r->cmp, r->tok, r->type == CMPC_REQ_CR,
				 r->type == CMPC_REQ_CR ? "a cr" : "the p10cr");
}

static agent_rc request(const conf_enrollment *e, cmpc_req_type type, const agent_pending *resume,
		       int abandon, tok_ctx *tok, cmpc_ctx *cmp, unsigned known)
{
	agent_req r = { 0 };
	agent_rc rc;

	r.tok = tok;
	r.cmp = cmp;
	r.known = known;
	r.type = type;
	r.what = type == CMPC_REQ_IR ? "enrollment" : type == CMPC_REQ_CR ? "cr" : "p10cr";
	r.verb = "enrolled";
	r.prepare = prepare_new;
	r.e = e;
	/* As openssl cmp does ("-days option is ignored for 'p10cr'"): a
	 * PKCS#10 request has no validity field, and the CA's profile decides. */
	if (type == CMPC_REQ_P10CR && e->days > 0)
		log_msg(LOG_WARNING, "days is ignored for p10cr: a PKCS#10 request has no validity "
				     "field, so the CA's profile decides; use enroll or cr to "
				     "request a validity");
	if (e->csr != NULL) {
		if (type != CMPC_REQ_P10CR) {
			log_msg(LOG_ERR, "enrollment '%s' has a csr: a CSR is sent by p10cr only; "
					 "run `p11enroll p10cr`, or remove csr to have %s make a "
					 "new key pair",
				e->name != NULL ? e->name : "(command line)",
				type == CMPC_REQ_IR ? "enroll" : "cr");
			return EXIT_USAGE;
		}
		if (e->use_template == 1) {
			log_msg(LOG_ERR, "use_template cannot change a given csr: remove one of them");
			return EXIT_USAGE;
		}
		if ((rc = read_csr(e, &r.csr)) != EXIT_OK)
			return rc;
		csr_ignores(e);
		rc = agent_certreq_run(&r, resume, abandon);
		X509_REQ_free(r.csr);
		return rc;
	}
	if (e->subject == NULL && e->use_template != 1) {
		log_msg(LOG_ERR, "enrollment '%s' lacks the subject (subject): set it in the "
				 "configuration or on the command line",
			e->name != NULL ? e->name : "(command line)");
		return EXIT_USAGE;
	}
	return agent_certreq_run(&r, resume, abandon);
}

agent_rc agent_request_run(const conf_enrollment *e, cmpc_req_type type,
			   const agent_pending *resume, int abandon)
{
	return request(e, type, resume, abandon, NULL, NULL, 0);
}

agent_rc agent_request_shared(const conf_enrollment *e, cmpc_req_type type, tok_ctx *tok,
			      cmpc_ctx *cmp, unsigned known)
{
	return request(e, type, NULL, 0, tok, cmp, known);
}

agent_rc agent_enroll(const conf_enrollment *e)
{
	return agent_request_run(e, CMPC_REQ_IR, NULL, 0);
}

agent_rc agent_cr(const conf_enrollment *e)
{
	return agent_request_run(e, CMPC_REQ_CR, NULL, 0);
}

agent_rc agent_p10cr(const conf_enrollment *e)
{
	return agent_request_run(e, CMPC_REQ_P10CR, NULL, 0);
}

/* Several transactions of e wait, each on its own token: the one of the
 * token e selects now (opened without a login, only to know which). */
static agent_rc pick(const conf_enrollment *e, int n, agent_pending *ap)
{
	tok_ctx *tok = NULL;
	char err[1024], ident[600];
	agent_rc rc;
	int r;

	if ((rc = agent_token_open(e, &tok, 0)) != EXIT_OK)
		return rc;
	r = pending_load(e, tok_opened_info(tok), ap, err, sizeof(err));
	if (r == 0)
		log_msg(LOG_ERR, "enrollment '%s' has %d pending transactions under label '%s', "
				 "none on this token (%s): insert the token of one of them "
				 "(their files in %s/pending name the tokens)",
			e->name, n, e->label,
			agent_token_identity(tok_opened_info(tok)->label,
					     tok_opened_info(tok)->manufacturer,
					     tok_opened_info(tok)->model, tok_opened_info(tok)->serial,
					     tok_serial_unique(tok), ident, sizeof(ident)),
			pending_state_dir(e));
	else if (r < 0)
		log_msg(LOG_ERR, "%s", err);
	tok_free(tok);
	return r > 0 ? EXIT_OK : r == 0 ? EXIT_TOKEN : EXIT_USAGE;
}

agent_rc agent_resume(const conf_enrollment *e, const agent_cmd_opts *o)
{
	conf_enrollment relabeled;
	agent_pending ap;
	char err[1024], path[1024];
	agent_rc rc;
	int n;

	if (pending_name_path(e, "pending", path, sizeof(path)) < 0) {
		log_msg(LOG_ERR, "resume needs the name of an enrollment in the configuration file");
		return EXIT_USAGE;
	}
	if ((n = pending_find(e, 0, &ap, err, sizeof(err))) < 0) {
		log_msg(LOG_ERR, "%s", err);
		return EXIT_USAGE;
	}
	/* None under the configured label: one the command that began it
	 * was given with --label is resumed under that label, as long as it
	 * is the enrollment's only one. */
	if (n == 0 && (n = pending_find(e, 1, &ap, err, sizeof(err))) > 1) {
		log_msg(LOG_ERR, "enrollment '%s' has %d pending transactions, none under label "
				 "'%s': name the one to %s with --label (their files in %s/pending "
				 "begin with the label)",
			e->name, n, e->label != NULL ? e->label : "(none)",
			o->abandon ? "abandon" : "resume", pending_state_dir(e));
		return EXIT_USAGE;
	}
	if (n == 1 && ap.label[0] != '\0' &&
	    (e->label == NULL || strcmp(ap.label, e->label) != 0)) {
		relabeled = *e;
		relabeled.label = ap.label;
		e = &relabeled;
		log_msg(LOG_INFO, "the pending %s of '%s' is under the label '%s'",
			pending_req_name(ap.p.type), e->name, e->label);
	}
	if (n < 0) {
		log_msg(LOG_ERR, "%s", err);
		return EXIT_USAGE;
	}
	if (n == 0) {
		log_msg(LOG_ERR, "enrollment '%s' has no pending transaction under label '%s' (none "
				 "in %s/pending): nothing to %s",
			e->name, e->label != NULL ? e->label : "(none)", pending_state_dir(e),
			o->abandon ? "abandon" : "resume");
		return EXIT_USAGE;
	}
	if (n > 1 && (rc = pick(e, n, &ap)) != EXIT_OK)
		return rc;
	/* An offline request waits for an answer carried in a file, a
	 * "waiting" one on the CA over the network: each resumes its way. */
	if (o->response_in != NULL && ap.p.sent_nonce_len == 0) {
		log_msg(LOG_ERR, "the pending %s of '%s' waits on the CA over the network (it "
				 "answered 'waiting'), not on an answer in a file: run `p11enroll "
				 "resume %s` without --response-in; %s is not read",
			pending_req_name(ap.p.type), e->name, e->name, o->response_in);
		return EXIT_USAGE;
	}
	if (o->response_in == NULL && !o->abandon && ap.p.sent_nonce_len > 0 &&
	    !agent_spool_server(e->server)) {
		log_msg(LOG_ERR, "the pending %s of '%s' was written to a file for the CA "
				 "(offline): give the CA's answer with `p11enroll resume "
				 "--response-in ANSWER --request-out CERTCONF %s`, or give it up with "
				 "`p11enroll resume --abandon %s`",
			pending_req_name(ap.p.type), e->name, e->name, e->name);
		return EXIT_USAGE;
	}
	if (ap.p.type == CMPC_REQ_KUR)
		return agent_renew_run(e, &ap, o->abandon);
	return agent_request_run(e, ap.p.type, &ap, o->abandon);
}
