/*
 * cmpc_ccr, cross-certification, against the project's test CA (which
 * serves a ccr with OpenSSL's POP check and answers a ccp): the message
 * as built (body type, protection that OpenSSL's own check accepts), the
 * cross-certificate for an EC and an RSA key (CA:TRUE with the path
 * length, keyCertSign and cRLSign, the key and subject asked for, under
 * the other CA's root), and the answers that must be refused: another
 * key, another subject, an untrusted issuer, a wrong MAC secret.  A CA
 * that answers 'waiting' is polled, one whose checkAfter is out of range
 * refused.  The
 * requesting CA's key on a SoftHSM2 token too (EC and RSA): its POP is
 * signed there.  test-cmpc-ccr.sh starts the CAs and makes the token;
 * prints TAP.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/cmp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cmp/cmpc-int.h"
#include "pkcs11/tok.h"
#include "tests/unit/cmpc-fixture.h"
#include "tests/unit/tap.h"

static char anchors[4096];

static EVP_PKEY *rsa_key(void)
{
	EVP_PKEY *k = EVP_RSA_gen(2048);

	if (k == NULL)
		abort();
	return k;
}

static cmpc_ctx *ccr_ctx(const char *url, const char *secret, const char *cn)
{
	cmpc_ctx *ctx = cfx_ctx_new(url, secret, anchors);
	X509_NAME *n = cfx_cn_name(cn);

	if (cmpc_set1_subject(ctx, n) != CMPC_OK)
		abort();
	X509_NAME_free(n);
	return ctx;
}

/* The requested CA extensions in cert: CA:TRUE, pathlen, keyCertSign|cRLSign. */
static int ca_exts_ok(X509 *cert, long pathlen)
{
	BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(cert, NID_basic_constraints, NULL, NULL);
	int ok = bc != NULL && bc->ca && bc->pathlen != NULL &&
		 ASN1_INTEGER_get(bc->pathlen) == pathlen &&
		 (X509_get_key_usage(cert) & (KU_KEY_CERT_SIGN | KU_CRL_SIGN)) ==
		     (KU_KEY_CERT_SIGN | KU_CRL_SIGN) &&
		 (X509_get_key_usage(cert) & KU_DIGITAL_SIGNATURE) == 0;

	BASIC_CONSTRAINTS_free(bc);
	return ok;
}

/* The ccr as built: body ccr (13), and a PBM protection that OpenSSL's own
 * validation accepts with the secret (and refuses with another). */
static void built(const char *url)
{
	cmpc_ctx *ctx = ccr_ctx(url, cfx_secret, "Built CA");
	EVP_PKEY *key = cfx_ec_key();
	unsigned char nonce[CMPC_CCR_NONCE_LEN];
	OSSL_CMP_CTX *peer = OSSL_CMP_CTX_new(NULL, NULL);
	OSSL_CMP_MSG *msg;
	int key_failed = 0, ok_right, ok_wrong;

	msg = cmpc_ccr_new(ctx, key, 0, nonce, &key_failed);
	tap_ok(msg != NULL && OSSL_CMP_MSG_get_bodytype(msg) == 13, "/ccr/built/body-ccr",
	       "body type %d", msg != NULL ? OSSL_CMP_MSG_get_bodytype(msg) : -1);
	if (peer == NULL || msg == NULL)
		tap_bail("no message or peer context");
	OSSL_CMP_CTX_set_log_verbosity(peer, OSSL_CMP_LOG_EMERG);
	OSSL_CMP_CTX_set1_secretValue(peer, (const unsigned char *)cfx_secret, (int)strlen(cfx_secret));
	ok_right = OSSL_CMP_validate_msg(peer, msg);
	OSSL_CMP_CTX_set1_secretValue(peer, (const unsigned char *)cfx_wrong_secret,
				      (int)strlen(cfx_wrong_secret));
	ok_wrong = OSSL_CMP_validate_msg(peer, msg);
	ERR_clear_error();
	tap_ok(ok_right == 1 && ok_wrong == 0, "/ccr/built/pbm-protection",
	       "validates with the secret %d, with another %d", ok_right, ok_wrong);
	OSSL_CMP_MSG_free(msg);
	OSSL_CMP_CTX_free(peer);
	EVP_PKEY_free(key);
	cmpc_free(ctx);
}

/* signer: the requesting CA's certificate for key (NULL: PBM), chain its CAs. */
static void issued_by(const char *url, EVP_PKEY *key, const char *kind, int pathlen, X509 *signer,
		      STACK_OF(X509) *signer_chain)
{
	cmpc_ctx *ctx = ccr_ctx(url, cfx_secret, "Requesting CA");
	X509_NAME *want = cfx_cn_name("Requesting CA");
	STACK_OF(X509) *chain = NULL;
	X509 *cert = NULL;
	char name[64];
	cmpc_rv rv;

	if (signer != NULL && cmpc_set1_signer(ctx, signer, key, signer_chain) != CMPC_OK)
		tap_bail("cannot set the signer: %s", cmpc_errmsg(ctx));
	rv = cmpc_ccr(ctx, key, pathlen, &cert, &chain);
	snprintf(name, sizeof(name), "/ccr/%s/issued", kind);
	tap_ok(rv == CMPC_OK && cert != NULL, name, "rv %d: %s", rv, cmpc_errmsg(ctx));
	if (cert == NULL)
		tap_bail("no cross-certificate");
	snprintf(name, sizeof(name), "/ccr/%s/ca-extensions", kind);
	tap_ok(ca_exts_ok(cert, pathlen), name, "basicConstraints/keyUsage not as requested");
	snprintf(name, sizeof(name), "/ccr/%s/key-and-subject", kind);
	tap_ok(EVP_PKEY_eq(X509_get0_pubkey(cert), key) == 1 &&
		   X509_NAME_cmp(X509_get_subject_name(cert), want) == 0,
	       name, "another key or subject");
	snprintf(name, sizeof(name), "/ccr/%s/chain", kind);
	tap_ok(sk_X509_num(chain) == 2 &&
		   X509_check_issued(sk_X509_value(chain, 0), cert) == X509_V_OK,
	       name, "chain of %d CA certificates", sk_X509_num(chain));
	sk_X509_pop_free(chain, X509_free);
	X509_free(cert);
	X509_NAME_free(want);
	cmpc_free(ctx);
}

static void issued(const char *url, EVP_PKEY *key, const char *kind, int pathlen)
{
	issued_by(url, key, kind, pathlen, NULL, NULL);
}

/*
 * Signature protection by the requesting CA's existing certificate and
 * token key: the certificate comes from an ir to the same test CA (whose
 * root the test CA trusts for signed requests); the ccr as built verifies
 * with that certificate (OpenSSL's check), and the CA answers it.
 */
static void signed_ccr(const char *url, EVP_PKEY *key)
{
	cmpc_ctx *ctx = ccr_ctx(url, cfx_secret, "Requesting CA");
	OSSL_CMP_CTX *peer = OSSL_CMP_CTX_new(NULL, NULL);
	STACK_OF(X509) *cacerts = NULL;
	X509 *signer = NULL;
	OSSL_CMP_MSG *msg;
	unsigned char nonce[CMPC_CCR_NONCE_LEN];
	int key_failed = 0, ok;
	cmpc_rv rv;

	if (peer == NULL || (rv = cmpc_ir(ctx, key, &signer, &cacerts)) != CMPC_OK)
		tap_bail("no signer certificate from the test CA: %s", cmpc_errmsg(ctx));
	cmpc_free(ctx);
	ctx = ccr_ctx(url, cfx_secret, "Requesting CA");
	if (cmpc_set1_signer(ctx, signer, key, cacerts) != CMPC_OK)
		tap_bail("cannot set the signer: %s", cmpc_errmsg(ctx));
	msg = cmpc_ccr_new(ctx, key, 0, nonce, &key_failed);
	OSSL_CMP_CTX_set_log_verbosity(peer, OSSL_CMP_LOG_EMERG);
	ok = msg != NULL && OSSL_CMP_CTX_set1_srvCert(peer, signer) &&
	     OSSL_CMP_validate_msg(peer, msg) == 1;
	ERR_clear_error();
	tap_ok(ok, "/ccr/signed/built-verifies", "the signature of the ccr does not verify");
	OSSL_CMP_MSG_free(msg);
	OSSL_CMP_CTX_free(peer);
	cmpc_free(ctx);
	issued_by(url, key, "signed", 0, signer, cacerts);
	X509_free(signer);
	sk_X509_pop_free(cacerts, X509_free);
}

static void refused(const char *url, const char *secret, cmpc_rv want, const char *must,
		    const char *name)
{
	cmpc_ctx *ctx = ccr_ctx(url, secret, "Requesting CA");
	EVP_PKEY *key = cfx_ec_key();
	X509 *cert = NULL;
	cmpc_rv rv = cmpc_ccr(ctx, key, 0, &cert, NULL);

	tap_ok(rv == want && cert == NULL && cfx_msg_ok(ctx, must), name, "rv %d (want %d): %s",
	       rv, want, cmpc_errmsg(ctx));
	X509_free(cert);
	EVP_PKEY_free(key);
	cmpc_free(ctx);
}

/* A key pair generated on the token (pkcs11:token=ccr), as an EVP_PKEY
 * whose signatures the token makes. */
static EVP_PKEY *token_key(tok_ctx *tok, tok_keyalg alg, int bits, const char *label)
{
	tok_keyspec spec = { alg, bits, 0 };
	tok_id id;
	EVP_PKEY *key = NULL;

	if (tok_keygen(tok, &spec, label, &id) != TOK_OK ||
	    tok_key_get1_private(tok, &id, &key) != TOK_OK)
		tap_bail("no key on the token: %s", tok_errmsg(tok));
	return key;
}

int main(void)
{
	const char *url = tap_env("T_CA_URL");
	EVP_PKEY *ec = cfx_ec_key(), *rsa = rsa_key();
	tok_ctx *tok = NULL;
	char *log;

	cfx_pbm_from_env();
	snprintf(anchors, sizeof(anchors), "%s/root.pem", tap_env("T_CA_DIR"));
	if (cmpc_global_init() != 0)
		tap_bail("cmpc_global_init failed");
	tap_plan(43);

	built(url);
	issued(url, ec, "ec", 1);
	issued(url, rsa, "rsa", 0);
	refused(tap_env("T_WRONGKEY_URL"), cfx_secret, CMPC_ERR_CERT, "another public key",
		"/ccr/refused/wrong-key");
	log = cfx_read_file(tap_env("T_WRONGKEY_LOG"));
	tap_ok(log != NULL && cfx_contains(log, "certConf: the client rejected the certificate "
						"(PKIStatus: rejection; PKIFailureInfo: "
						"incorrectData)"),
	       "/ccr/refused/wrong-key-certconf", "the test CA's log:\n%s",
	       log != NULL ? log : "(unreadable)");
	free(log);
	refused(tap_env("T_WRONGSUBJ_URL"), cfx_secret, CMPC_ERR_CERT, "names subject",
		"/ccr/refused/wrong-subject");
	refused(tap_env("T_UNTRUSTED_URL"), cfx_secret, CMPC_ERR_CERT, "does not verify",
		"/ccr/refused/untrusted");
	refused(url, cfx_wrong_secret, CMPC_ERR_PROTOCOL, NULL, "/ccr/refused/wrong-secret");
	refused(tap_env("T_URL_REJECT"), cfx_secret, CMPC_ERR_REJECTED,
		"did not issue the cross-certificate: PKIStatus 2", "/ccr/refused/reject");
	refused(tap_env("T_URL_WRONG_CERTREQID"), cfx_secret, CMPC_ERR_PROTOCOL,
		"another certReqId", "/ccr/refused/wrong-certreqid");
	refused(tap_env("T_URL_UNPROTECTED"), cfx_secret, CMPC_ERR_PROTOCOL, "not protected",
		"/ccr/refused/unprotected");
	refused(tap_env("T_URL_BAD_PROTECTION"), cfx_secret, CMPC_ERR_PROTOCOL, "does not verify",
		"/ccr/refused/bad-protection");
	refused(tap_env("T_URL_WRONG_NONCE"), cfx_secret, CMPC_ERR_PROTOCOL, "recipNonce",
		"/ccr/refused/wrong-nonce");
	refused(tap_env("T_URL_WRONG_TID"), cfx_secret, CMPC_ERR_PROTOCOL, "transactionID",
		"/ccr/refused/wrong-tid");
	refused(tap_env("T_URL_WEIRD_TEXT"), cfx_secret, CMPC_ERR_REJECTED, "PKIStatus 2",
		"/ccr/refused/weird-text");
	refused(tap_env("T_URL_GARBAGE"), cfx_secret, CMPC_ERR_PROTOCOL, NULL,
		"/ccr/refused/garbage");
	/* RFC 4210 5.3.22: a 'waiting' ccp, then pollReq/pollRep until the
	 * ccp with the certificate; a checkAfter beyond 2^31-1 s is refused. */
	snprintf(anchors, sizeof(anchors), "%s/root.pem", tap_env("T_POLL_DIR"));
	issued(tap_env("T_URL_POLL"), ec, "poll", 0);
	snprintf(anchors, sizeof(anchors), "%s/root.pem", tap_env("T_CA_DIR"));
	log = cfx_read_file(tap_env("T_POLL_LOG"));
	tap_ok(log != NULL && cfx_contains(log, "ccr -> ccp waiting") &&
		   cfx_contains(log, "pollReq: delivering") &&
		   cfx_contains(log, "certConf -> pkiconf"),
	       "/ccr/poll/polled", "the test CA's log:\n%s", log != NULL ? log : "(unreadable)");
	free(log);
	refused(tap_env("T_URL_CHECK_AFTER_HUGE"), cfx_secret, CMPC_ERR_PROTOCOL,
		"checkAfter is out of range", "/ccr/refused/check-after-huge");
	log = cfx_read_file(tap_env("T_CA_LOG"));
	tap_ok(log != NULL && cfx_contains(log, "ccr: protection verified, served as a cr") &&
		   cfx_contains(log, "POP verified (CRMF signature)") &&
		   cfx_contains(log, "ccr: the cp goes as a ccp") &&
		   cfx_contains(log, "ccr -> ccp accepted") &&
		   cfx_contains(log, "certConf -> pkiconf") &&
		   cfx_contains(log, "ccr: protection does not verify"),
	       "/ccr/ca-log", "the test CA's log:\n%s", log != NULL ? log : "(unreadable)");
	free(log);

	EVP_PKEY_free(ec);
	EVP_PKEY_free(rsa);

	if (tok_open(tap_env("SOFTHSM2_MODULE"), "pkcs11:token=ccr", &tok) != TOK_OK ||
	    tok_login(tok, tap_env("T_PIN")) != TOK_OK)
		tap_bail("cannot open the token: %s", tok != NULL ? tok_errmsg(tok) : "no memory");
	ec = token_key(tok, TOK_KEY_EC, 256, "ccr-ec");
	rsa = token_key(tok, TOK_KEY_RSA, 2048, "ccr-rsa");
	issued(url, ec, "token-ec", 2);
	issued(url, rsa, "token-rsa", 0);
	signed_ccr(url, ec);
	/* the EVP_PKEYs hold the token's module: they go before it */
	EVP_PKEY_free(ec);
	EVP_PKEY_free(rsa);
	tok_free(tok);
	cmpc_global_cleanup();
	return tap_done();
}
