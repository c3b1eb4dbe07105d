/*
 * The test CA's part of cross-certification that is not OpenSSL's: with
 * --ccr-trusted FILE, a signed ccr from a CA of a foreign PKI (its own
 * root, not this CA's) is verified against FILE's anchors as well as the
 * CA's own root.  Only the ccr: other signed requests still need a
 * certificate of this CA's PKI.
 */
#include "config.h"

#include <openssl/cmp.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "tests/ca/testca.h"

int ca_ccr_validate(OSSL_CMP_CTX *ctx, const OSSL_CMP_MSG *msg, const char *trusted,
		    X509 *root)
{
	X509_STORE *own = OSSL_CMP_CTX_get0_trustedStore(ctx), *ccr = NULL;
	int ok;

	if (trusted == NULL)
		return OSSL_CMP_validate_msg(ctx, msg);
	/* The CA's own store comes back after this one message. */
	if (own == NULL || !X509_STORE_up_ref(own))
		return 0;
	if ((ccr = X509_STORE_new()) == NULL || !X509_STORE_add_cert(ccr, root) ||
	    X509_STORE_load_file(ccr, trusted) != 1 || !OSSL_CMP_CTX_set0_trustedStore(ctx, ccr)) {
		ca_log("ccr: cannot load --ccr-trusted %s", trusted);
		X509_STORE_free(ccr);
		X509_STORE_free(own);
		return 0;
	}
	ok = OSSL_CMP_validate_msg(ctx, msg);
	(void)OSSL_CMP_CTX_set0_trustedStore(ctx, own); /* frees ccr */
	return ok;
}
