/*
 * Fixtures of the cmpc unit tests (test-cmpc, test-cmpc-genm,
 * test-cmpc-setters, test-certconf): keys, names and certificates made or
 * read for a test, and a cmpc context set up as the agent sets one up.
 * A fixture that cannot be made aborts the test: that is no finding about
 * the code under test, and no check may pass on a half-made fixture.
 */
#ifndef P11ENROLL_CMPC_FIXTURE_H
#define P11ENROLL_CMPC_FIXTURE_H

#include <stddef.h>

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

/* The first certificate or private key of a PEM file; NULL if there is none. */
X509 *cfx_read_cert(const char *file);
EVP_PKEY *cfx_read_key(const char *file);
/* A file's text (at most 1 MiB), to free(); NULL if unreadable. */
char *cfx_read_file(const char *file);

#endif
