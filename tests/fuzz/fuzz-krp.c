/*
 * Fuzz target: a key recovery response (krp, RFC 4210 5.3.9) as it comes
 * off the wire, before its protection is checked: cmpc_krp_read
 * (cmp/cmpc_krr.c).  Input: a 2-byte big-endian length, the DER of the
 * certificate whose key was asked for, then the PKIMessage.  Oracles: a
 * key found comes with a certificate carrying the public key asked for,
 * the chain's certificates and a key of one kind with what it needs; a
 * refusal or failure says why and returns nothing; clearing leaves
 * nothing.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "cmp/cmpc-int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const unsigned char *p = data + 2;
	STACK_OF(X509) *untrusted = NULL;
	X509 *want, *cert = NULL;
	cmpc_privkey k;
	char why[512];
	size_t n;
	int others = -1;
	cmpc_rv rv;

	if (size < 2 || (n = (size_t)data[0] << 8 | data[1]) > size - 2)
		return 0;
	if ((want = d2i_X509(NULL, &p, (long)n)) == NULL)
		return 0;
	why[0] = '\0';
	rv = cmpc_krp_read(data + 2 + n, size - 2 - n, want, &cert, &k, &untrusted, &others, why,
			   sizeof(why));
	if (rv == CMPC_OK) {
		if (cert == NULL || untrusted == NULL || others < 0 ||
		    EVP_PKEY_eq(X509_get0_pubkey(cert), X509_get0_pubkey(want)) != 1)
			abort();
		if (k.kind == CMPC_PRIVKEY_ENCVALUE) {
			if (k.enc_value == NULL || k.enc_value_len == 0 || k.enc_symm_key == NULL ||
			    k.enc_symm_key_len == 0)
				abort();
		} else if (k.kind != CMPC_PRIVKEY_ENVELOPED || k.enveloped == NULL) {
			abort();
		}
	} else if (why[0] == '\0' || cert != NULL || untrusted != NULL || k.kind != 0) {
		abort();
	}
	cmpc_privkey_clear(&k);
	X509_free(cert);
	sk_X509_pop_free(untrusted, X509_free);
	X509_free(want);
	return 0;
}
