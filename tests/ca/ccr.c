/*
 * The test CA's part of cross-certification that is not OpenSSL's: with
 * --ccr-trusted FILE, a CA of a foreign PKI (its own root, not this CA's)
 * may protect its ccr with its own CA certificate and key: FILE's
 * certificates become trust anchors for the protection of requests, so
 * for the ccr and the rest of its transaction (pollReq, certConf).  A
 * test CA only: a real one would trust them for that CA's ccr alone.
 */
#include "config.h"

#include <openssl/x509.h>

#include "tests/ca/testca.h"

int ca_ccr_trust(X509_STORE *store, const char *file)
{
	if (X509_STORE_load_file(store, file) == 1)
		return 1;
	ca_log("ccr: cannot load --ccr-trusted %s", file);
	ca_log_openssl_errors("loading --ccr-trusted");
	return 0;
}
