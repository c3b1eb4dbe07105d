/*
 * Fixtures of the cmpc unit tests (test-cmpc, test-cmpc-genm,
 * test-cmpc-setters, test-certconf, test-cmpc-transfer): keys, names and
 * certificates made or read for a test, a cmpc context set up as the agent
 * sets one up, and a peer on OpenSSL's generic CMP server.
 * A fixture that cannot be made aborts the test: that is no finding about
 * the code under test, and no check may pass on a half-made fixture.
 */
#ifndef P11ENROLL_CMPC_FIXTURE_H
#define P11ENROLL_CMPC_FIXTURE_H

#include <stddef.h>

#include <openssl/cmp.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cmp/cmpc.h"

/* The PBM reference and secret of the test's peers, set by cfx_pbm_from_env
 * from the .sh wrapper's T_REF and T_SECRET. */
extern const char *cfx_ref, *cfx_secret;
/* A secret no peer knows, for the wrong-secret cases. */
extern const char cfx_wrong_secret[];

/* Reads T_REF and T_SECRET; without them: Bail out! (tap_env). */
void cfx_pbm_from_env(void);

/* A context with cfx_ref and secret for PBM, anchors (a PEM file) as its
 * trust anchors unless NULL, its log into tap_collect, bounded timeouts. */
cmpc_ctx *cfx_ctx_new(const char *server, const char *secret, const char *anchors);

int cfx_contains(const char *hay, const char *needle);
/* The error message is there, holds neither secret, and holds must (unless NULL). */
int cfx_msg_ok(cmpc_ctx *ctx, const char *must);

/* Counts its calls in cfx_accepted and accepts: a cmpc accept callback that
 * shows whether cmpc asked at all. */
extern int cfx_accepted;
int cfx_count_accept(X509 *cert, STACK_OF(X509) *cacerts, void *arg, char *why, size_t len);

EVP_PKEY *cfx_ec_key(void); /* a new P-256 key */
X509_NAME *cfx_cn_name(const char *cn);
GENERAL_NAMES *cfx_dns_sans(const char *dns); /* one dNSName */
/* A self-signed certificate of key, subject CN=cn, valid for a day. */
X509 *cfx_self_signed(EVP_PKEY *key, const char *cn);
/* A certificate of key for subj, valid for a day, with serial: issued by
 * ca with ca_key for digitalSignature, or with ca NULL a self-signed CA
 * (basicConstraints CA:TRUE, keyCertSign and cRLSign) signed by ca_key. */
X509 *cfx_issue(const X509_NAME *subj, EVP_PKEY *key, X509 *ca, EVP_PKEY *ca_key, long serial);

/* The first certificate or private key of a PEM file; NULL if there is none. */
X509 *cfx_read_cert(const char *file);
EVP_PKEY *cfx_read_key(const char *file);
/* A file's text (at most 1 MiB), to free(); NULL if unreadable. */
char *cfx_read_file(const char *file);

/*
 * A CMP peer on OpenSSL's generic server: PBM with ref and secret
 * (HMAC-SHA256), subject as its name, its log silenced (the refusals a
 * test provokes are expected), the callbacks as OSSL_CMP_SRV_CTX_init
 * takes them (NULL: that kind of request is refused).  NULL if it cannot
 * be made, so that a forked server can exit as it must.
 */
OSSL_CMP_SRV_CTX *cfx_srv_new(const char *ref, const char *secret, const X509_NAME *subject,
			      OSSL_CMP_SRV_cert_request_cb_t cert_request, OSSL_CMP_SRV_rr_cb_t rr,
			      OSSL_CMP_SRV_genm_cb_t genm, OSSL_CMP_SRV_certConf_cb_t cert_conf);
/* The server's DER answer to the DER request req (OPENSSL_free it), its
 * length in *ret_len; NULL if req does not decode or there is no answer.
 * Clears OpenSSL's error queue. */
unsigned char *cfx_srv_answer(OSSL_CMP_SRV_CTX *srv, const unsigned char *req, size_t len,
			      int *ret_len);

#endif
