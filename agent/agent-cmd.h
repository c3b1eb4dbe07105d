/*
 * agent internals shared by the commands that talk CMP beyond the first
 * slice (renew, cr, p10cr, revoke, genm): setting up a cmpc context from an
 * enrollment and choosing its protection.  Each function logs a failure
 * once and returns its EXIT_* code.
 */
#ifndef P11ENROLL_AGENT_CMD_H
#define P11ENROLL_AGENT_CMD_H

#include "agent/agent.h"
#include "cmp/cmpc.h"
#include "pkcs11/tok.h"

/* Everything but the protection: server, trust, timeouts, names, profile,
 * PBM parameters, subject and SANs when configured.  need_subject: the
 * request needs one (a template may still provide it). */
int agent_cmp_setup(const conf_enrollment *e, cmpc_ctx *cmp);

/* PBM with reference and secret_source; what names the command for messages. */
int agent_cmp_use_pbm(const conf_enrollment *e, cmpc_ctx *cmp, const char *what);

/* 1 when a signer (token label or protection files) is configured. */
int agent_has_signer(const conf_enrollment *e);

/*
 * The configured signature credentials: the certificate labelled signer on
 * the token and its key (tok must be logged in), or protection_cert and
 * protection_key from files.  The key file must not be readable by group
 * or others, and must hold the certificate's key.
 */
int agent_signer_load(const conf_enrollment *e, tok_ctx *tok, X509 **ret_cert, EVP_PKEY **ret_key);

/* Signature protection when a signer is configured, else PBM (or, with
 * signer_required, an error naming what to configure). */
int agent_cmp_protect(const conf_enrollment *e, cmpc_ctx *cmp, tok_ctx *tok, int signer_required,
		      const char *what);

/*
 * TLS client authentication when tls_client is configured: the certificate
 * with that label on the token and its key (tok must be logged in), or, for
 * "self", self_cert and self_key (the certificate being renewed; NULL where
 * there is none).  Call before the first exchange of cmp, and free cmp
 * before tok: its connections hold the token key.
 */
int agent_cmp_tls_client(const conf_enrollment *e, cmpc_ctx *cmp, tok_ctx *tok, X509 *self_cert,
			 EVP_PKEY *self_key);

/* The CA's certReqTemplate, asked with a context of its own protected like
 * the request (TLS client authentication too, self_cert/self_key as for
 * agent_cmp_tls_client); the fields it leaves open are 0/NULL. */
int agent_template_fetch(const conf_enrollment *e, tok_ctx *tok, X509 *self_cert,
			 EVP_PKEY *self_key, cmpc_template *ret_t);

/*
 * Fills what the template asks for into the request where the command line
 * and configuration left it open: key type and size into spec, subject and
 * subjectAltName into cmp.  Other template extensions cannot be requested
 * through the cmpc layer and are reported as ignored.
 */
int agent_template_apply(const conf_enrollment *e, const cmpc_template *t, tok_keyspec *spec,
			 cmpc_ctx *cmp);

/* Prints a template (genm --template). */
void agent_template_print(const cmpc_template *t);

#endif
