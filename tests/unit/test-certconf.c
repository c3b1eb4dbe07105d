/*
 * The certConf callback of cmp/cmpc_verify.c on its own.  In an exchange
 * OpenSSL 3.0 compares the certificate's public key with the key it was
 * given before it calls the callback, and passes a mismatch in fail_info,
 * so the callback's own comparison is never reached there; it guards
 * against an OpenSSL that does not (another version, no key given to it).
 * Here the callback is called directly, as OpenSSL would call it, on a
 * context that holds the request's key.  Needs no peer; prints TAP.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "cmp/cmpc-int.h"
#include "tests/unit/cmpc-fixture.h"
#include "tests/unit/tap.h"

/* What the callback says about cert, with key as the request's key. */
static int call(cmpc_ctx *ctx, EVP_PKEY *key, X509 *cert, int fail_info, const char **txt)
{
	ctx->x.key = key; /* borrowed, as during cmpc_certreq */
	ctx->x.cert_rejected = 0;
	ctx->x.cert_msg[0] = '\0';
	*txt = NULL;
	cfx_accepted = 0;
	return cmpc_certconf_cb(ctx->cmp, cert, fail_info, txt);
}

int main(void)
{
	EVP_PKEY *requested = cfx_ec_key(), *other = cfx_ec_key();
	X509 *theirs = cfx_self_signed(other, "issued for another key");
	X509 *mine = cfx_self_signed(requested, "issued for the requested key");
	const char *txt;
	cmpc_ctx *ctx;
	int rv, key_bit = 1 << OSSL_CMP_PKIFAILUREINFO_incorrectData;

	tap_plan(9);

	if (cmpc_global_init() != 0 || (ctx = cmpc_new()) == NULL) {
		printf("Bail out! no cmpc context\n");
		return 1;
	}
	cmpc_set_log_cb(ctx, tap_collect, NULL);
	cmpc_set_accept_cb(ctx, cfx_count_accept, NULL);

	/* The certificate carries another public key than the request. */
	rv = call(ctx, requested, theirs, 0, &txt);
	tap_ok(rv == key_bit, "/certconf/key/other-key-refused", "returned 0x%x, want 0x%x", rv,
	       key_bit);
	tap_ok(txt != NULL && strcmp(txt, "public key in the certificate is not the requested one") ==
				  0,
	       "/certconf/key/other-key-certconf-text", "text for the certConf: %s",
	       txt != NULL ? txt : "(none)");
	tap_ok(ctx->x.cert_rejected &&
		       strstr(ctx->x.cert_msg, "does not carry the public key of the request") != NULL,
	       "/certconf/key/other-key-message", "rejected %d: %s", ctx->x.cert_rejected,
	       ctx->x.cert_msg);
	tap_ok(cfx_accepted == 0, "/certconf/key/other-key-not-stored",
	       "accept callback called %d times", cfx_accepted);

	/* No request key known: nothing can match. */
	rv = call(ctx, NULL, mine, 0, &txt);
	tap_ok(rv == key_bit && cfx_accepted == 0, "/certconf/key/no-request-key-refused",
	       "returned 0x%x, accept callback %d", rv, cfx_accepted);

	/* The right key passes the key check and goes on: without trust
	 * anchors the chain fails next, never storing the certificate. */
	rv = call(ctx, requested, mine, 0, &txt);
	tap_ok(rv == 1 << OSSL_CMP_PKIFAILUREINFO_signerNotTrusted && cfx_accepted == 0,
	       "/certconf/key/right-key-goes-on", "returned 0x%x (%s), accept callback %d", rv,
	       ctx->x.cert_msg, cfx_accepted);

	/* With the certificate as anchor (and any response signer allowed)
	 * it is accepted and handed to the accept callback. */
	if (ctx->anchors == NULL && (ctx->anchors = sk_X509_new_null()) == NULL)
		abort();
	if (!X509_add_cert(ctx->anchors, mine, X509_ADD_FLAG_UP_REF))
		abort();
	cmpc_set_any_response_signer(ctx, 1);
	rv = call(ctx, requested, mine, 0, &txt);
	tap_ok(rv == 0 && cfx_accepted == 1, "/certconf/key/right-key-accepted",
	       "returned 0x%x (%s), accept callback %d", rv, ctx->x.cert_msg, cfx_accepted);
	/* ... and another key is still refused, anchors or not */
	rv = call(ctx, other, mine, 0, &txt);
	tap_ok(rv == key_bit && cfx_accepted == 0, "/certconf/key/anchored-other-key-refused",
	       "returned 0x%x, accept callback %d", rv, cfx_accepted);

	/* OpenSSL's own verdict comes first and stands. */
	txt = "public key in new certificate does not match our enrollment key";
	ctx->x.key = requested;
	cfx_accepted = 0;
	rv = cmpc_certconf_cb(ctx->cmp, theirs, key_bit, &txt);
	tap_ok(rv == key_bit && cfx_accepted == 0 &&
		   strstr(ctx->x.cert_msg, "OpenSSL's checks") != NULL,
	       "/certconf/openssl-verdict-stands", "returned 0x%x: %s", rv, ctx->x.cert_msg);

	ctx->x.key = NULL;
	cmpc_free(ctx);
	X509_free(theirs);
	X509_free(mine);
	EVP_PKEY_free(requested);
	EVP_PKEY_free(other);
	cmpc_global_cleanup();
	return tap_done();
}
