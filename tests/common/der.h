/*
 * DER written octet by octet, for tests that must not share a template
 * with the code under test (tests/unit/test-privkey, tests/unwrap): a
 * buffer, TLVs, and a certificate response carrying a private key.
 */
#ifndef P11ENROLL_TESTS_DER_H
#define P11ENROLL_TESTS_DER_H

#include <stddef.h>

#define TDER_MAX 8192

typedef struct {
	unsigned char b[TDER_MAX];
	size_t n;
} tder;

/* out = tag, length, c (NULL: empty).  Each returns out. */
tder *tder_tlv(tder *out, unsigned char tag, const tder *c);
/* out = n bytes of p */
tder *tder_raw(tder *out, const void *p, size_t n);
/* out = a then b */
tder *tder_cat(tder *out, const tder *a, const tder *b);
/* out = BIT STRING of p, no unused bits */
tder *tder_bits(tder *out, const unsigned char *p, size_t n);
/* out = a PKIMessage (no protection) whose body (tag bodytag: 0xa1 ip,
 * 0xa3 cp, 0xa8 kup) holds one CertResponse: certReqId rid, status
 * accepted, certificate cert, privateKey [0] EXPLICIT pk (NULL: none). */
tder *tder_certrep(tder *out, unsigned char bodytag, int rid, const tder *cert, const tder *pk);

#endif
