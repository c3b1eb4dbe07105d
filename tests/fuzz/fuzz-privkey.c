/*
 * Fuzz target: a certificate response's private key, as a CA (or anyone
 * on the path, before the protection is checked) sends it: the whole
 * PKIMessage into cmpc_privkey_get (cmp/cmpc_privkey.c), first
 * CertResponse.  Oracles: a key found is of one of the two kinds, with
 * what that kind needs (EncryptedValue: encValue and encSymmKey not
 * empty, an IV of at most a block; EnvelopedData: a SEQUENCE); a failure
 * says why; cmpc_privkey_clear leaves nothing.  An EnvelopedData goes on
 * into cmpc_enveloped_parts (cmp/cmpc_keypkg.c), whose parts must be
 * there when it succeeds, and the SignedData reader cmpc_keypkg_open gets
 * the same bytes (no certificates: it must refuse them).
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cmp/cmpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cmpc_privkey k;
	char why[256];
	int r;

	memset(&k, 0, sizeof(k));
	r = cmpc_privkey_get(data, size, -1, &k, why, sizeof(why));
	if (r == 1) {
		if (k.kind == CMPC_PRIVKEY_ENCVALUE) {
			if (k.enc_value == NULL || k.enc_value_len == 0 || k.enc_symm_key == NULL ||
			    k.enc_symm_key_len == 0 || k.iv_len > sizeof(k.iv))
				abort();
		} else if (k.kind == CMPC_PRIVKEY_ENVELOPED) {
			cmpc_envparts e;

			if (k.enveloped == NULL || k.enveloped_len < 2 || k.enveloped[0] != 0x30)
				abort();
			if (cmpc_enveloped_parts(&k, &e, why, sizeof(why)) == 1) {
				if (e.enc_key == NULL || e.enc_key_len == 0 || e.enc_content == NULL ||
				    e.enc_content_len == 0)
					abort();
			} else if (why[0] == '\0' || e.enc_key != NULL || e.enc_content != NULL) {
				abort();
			}
			cmpc_envparts_clear(&e);
		} else {
			abort();
		}
	} else if (r == -1) {
		if (why[0] == '\0' || k.kind != 0)
			abort();
	} else if (r != 0 || k.kind != 0) {
		abort();
	}
	cmpc_privkey_clear(&k);
	{
		EVP_PKEY *key = NULL;

		if (cmpc_keypkg_open(data, size, NULL, NULL, &key, why, sizeof(why)) != 0 ||
		    key != NULL)
			abort();
	}
	if (k.kind != 0 || k.enc_value != NULL || k.enveloped != NULL || k.enc_symm_key != NULL)
		abort();
	return 0;
}
