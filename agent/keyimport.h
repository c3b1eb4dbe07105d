/*
 * keyimport.c: the private key of a certificate response (central key
 * generation, key recovery) as the token layer unwraps it.  Meets the
 * protocol layer's cmpc_privkey and the token layer's tok_wrapped.
 */
#ifndef P11ENROLL_AGENT_KEYIMPORT_H
#define P11ENROLL_AGENT_KEYIMPORT_H

#include <stddef.h>

#include "cmp/cmpc.h"
#include "pkcs11/tok.h"

/*
 * An EncryptedValue as the token unwraps it: symmAlg AES key wrap with
 * padding (any key size) or AES-CBC with a 16-byte IV; keyAlg
 * rsaEncryption (PKCS#1 v1.5) or RSAES-OAEP with SHA-1 or SHA-256.
 * *ret_w points into k (keep k until it is used).  1, or 0 with why: an
 * EnvelopedData, or algorithms the token layer does not unwrap with.
 */
int agent_wrapped_from_privkey(const cmpc_privkey *k, tok_wrapped *ret_w, char *why,
			       size_t whylen);

#endif
