/*
 * cmpc_privkey_get (cmp/cmpc_privkey.c): the private key of a CertResponse
 * read from responses built here octet by octet (no template of the code
 * under test): EncryptedValue with AES key wrap and RSA-OAEP SHA-256, with
 * AES-CBC (its IV) and PKCS#1 v1.5, EnvelopedData ([0] IMPLICIT), no key,
 * ip/cp/kup, another certReqId, and broken ones.  OpenSSL 3.0's own decoder
 * reads the EncryptedValue message and fails on the EnvelopedData one (why
 * this layer reads the field itself).  agent_wrapped_from_privkey
 * (agent/keyimport.c) maps what the token unwraps and refuses the rest.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/cmp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "agent/keyimport.h"
#include "cmp/cmpc.h"
#include "tests/common/der.h"
#include "tests/unit/tap.h"

static const unsigned char oid_kwp[] = {0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65,
					0x03, 0x04, 0x01, 0x30}; /* aes256-wrap-pad */
static const unsigned char oid_cbc[] = {0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65,
					0x03, 0x04, 0x01, 0x2a}; /* aes-256-cbc */
static const unsigned char oid_oaep[] = {0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
					 0xf7, 0x0d, 0x01, 0x01, 0x07};
static const unsigned char oid_rsa[] = {0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
					0xf7, 0x0d, 0x01, 0x01, 0x01};
static const unsigned char oid_sha256[] = {0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65,
					   0x03, 0x04, 0x02, 0x01};
static const unsigned char null[] = {0x05, 0x00};
static const unsigned char ek_bytes[] = "encrypted symmetric key";
static const unsigned char ev_bytes[] = "encrypted private key";
static const unsigned char iv[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

static tder cert;

/* EncryptedValue: cbc (AES-CBC with IV, PKCS#1 v1.5) or KWP with OAEP
 * SHA-256; without_key: no encSymmKey. */
static tder *encval(tder *out, int cbc, int without_key)
{
	tder a, b, c, symm, key, kalg, val, t;

	if (cbc)
		tder_cat(&c, tder_raw(&a, oid_cbc, sizeof(oid_cbc)),
			 tder_tlv(&b, 0x04, tder_raw(&t, iv, sizeof(iv))));
	else
		tder_raw(&c, oid_kwp, sizeof(oid_kwp));
	tder_tlv(&symm, 0xa1, &c); /* [1] IMPLICIT AlgorithmIdentifier */
	tder_bits(&t, ek_bytes, sizeof(ek_bytes) - 1);
	tder_tlv(&key, 0x82, tder_raw(&a, t.b + 2, t.n - 2)); /* [2] IMPLICIT BIT STRING */
	if (cbc) {
		tder_cat(&c, tder_raw(&a, oid_rsa, sizeof(oid_rsa)),
			 tder_raw(&b, null, sizeof(null)));
	} else {
		/* RSAES-OAEP-params { hashFunc [0] sha256 } */
		tder_tlv(&t, 0x30, tder_raw(&a, oid_sha256, sizeof(oid_sha256)));
		tder_tlv(&b, 0x30, tder_tlv(&a, 0xa0, &t));
		tder_cat(&c, tder_raw(&a, oid_oaep, sizeof(oid_oaep)), &b);
	}
	tder_tlv(&kalg, 0xa3, &c); /* [3] IMPLICIT AlgorithmIdentifier */
	tder_bits(&val, ev_bytes, sizeof(ev_bytes) - 1);
	tder_cat(&t, &symm, without_key ? tder_raw(&a, "", 0) : &key);
	tder_cat(&t, &t, &kalg);
	tder_cat(&t, &t, &val);
	return tder_tlv(out, 0x30, &t);
}

/* The EnvelopedData's fields (dummy values: they are kept encoded). */
static tder *env_fields(tder *out)
{
	static const unsigned char f[] = {0x02, 0x01, 0x00, 0x31, 0x00, 0x30, 0x0b, 0x06, 0x09,
					  0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01};

	return tder_raw(out, f, sizeof(f));
}

/* A PKIMessage whose body (tag bodytag) holds one CertResponse with
 * certReqId rid and privateKey pk (NULL: none). */
static tder *message(tder *out, unsigned char bodytag, int rid, const tder *pk)
{
	return tder_certrep(out, bodytag, rid, &cert, pk);
}

static int make_cert(void)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *x = X509_new();
	unsigned char *p = cert.b;
	int n = 0;

	if (k != NULL && x != NULL && X509_set_version(x, 2) && X509_set_pubkey(x, k) &&
	    ASN1_INTEGER_set(X509_get_serialNumber(x), 1) &&
	    X509_gmtime_adj(X509_getm_notBefore(x), 0) &&
	    X509_gmtime_adj(X509_getm_notAfter(x), 60) &&
	    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
				       (const unsigned char *)"t", -1, -1, 0) &&
	    X509_set_issuer_name(x, X509_get_subject_name(x)) && X509_sign(x, k, EVP_sha256()) &&
	    i2d_X509(x, NULL) < TDER_MAX / 2)
		n = i2d_X509(x, &p);
	cert.n = n > 0 ? (size_t)n : 0;
	X509_free(x);
	EVP_PKEY_free(k);
	return n > 0;
}

/* With T_PRIVKEY_SEEDS=DIR: m into DIR/name, a seed of
 * tests/fuzz/corpus/privkey. */
static void seed(const tder *m, const char *name)
{
	const char *dir = getenv("T_PRIVKEY_SEEDS");
	char path[512];
	FILE *f;

	if (dir == NULL || dir[0] == '\0')
		return;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((f = fopen(path, "wb")) != NULL) {
		fwrite(m->b, 1, m->n, f);
		fclose(f);
	}
}

/* Whether OpenSSL 3.0's own PKIMessage decoder reads m. */
static int openssl_reads(const tder *m)
{
	const unsigned char *p = m->b;
	OSSL_CMP_MSG *msg = d2i_OSSL_CMP_MSG(NULL, &p, (long)m->n);
	int ok = msg != NULL;

	OSSL_CMP_MSG_free(msg);
	ERR_clear_error();
	return ok;
}

int main(void)
{
	tder m, pk, a, env;
	cmpc_privkey k;
	tok_wrapped w;
	char why[256];
	int r;

	tap_plan(33);
	if (!make_cert())
		tap_bail("making a certificate failed");

	memset(&k, 0, sizeof(k));
	message(&m, 0xa1, 0, encval(&pk, 0, 0));
	seed(&m, "ip-encval-kwp-oaep256");
	r = cmpc_privkey_get(m.b, m.n, 0, &k, why, sizeof(why));
	tap_ok(r == 1, "/privkey/encval-kwp/found", "%d: %s", r, why);
	tap_check(k.kind == CMPC_PRIVKEY_ENCVALUE && k.symm_nid == NID_id_aes256_wrap_pad &&
		      k.iv_len == 0,
		  "/privkey/encval-kwp/symm-alg");
	tap_check(k.keyenc_nid == NID_rsaesOaep && k.oaep_md_nid == NID_sha256,
		  "/privkey/encval-kwp/oaep-sha256");
	tap_check(k.enc_symm_key_len == sizeof(ek_bytes) - 1 &&
		      memcmp(k.enc_symm_key, ek_bytes, k.enc_symm_key_len) == 0,
		  "/privkey/encval-kwp/enc-symm-key");
	tap_check(k.enc_value_len == sizeof(ev_bytes) - 1 &&
		      memcmp(k.enc_value, ev_bytes, k.enc_value_len) == 0,
		  "/privkey/encval-kwp/enc-value");
	tap_check(openssl_reads(&m), "/privkey/encval-kwp/openssl-3.0-reads-it");
	r = agent_wrapped_from_privkey(&k, &w, why, sizeof(why));
	tap_ok(r == 1 && w.enc == TOK_ENC_AES_KWP && w.kt == TOK_KT_RSA_OAEP_SHA256 &&
		   w.enc_cek == k.enc_symm_key && w.enc_key_len == k.enc_value_len,
	       "/privkey/encval-kwp/for-the-token", "%d: %s", r, why);
	k.oaep_md_nid = NID_sha1;
	r = agent_wrapped_from_privkey(&k, &w, why, sizeof(why));
	tap_check(r == 1 && w.kt == TOK_KT_RSA_OAEP_SHA1, "/privkey/oaep-sha1-for-the-token");
	k.oaep_md_nid = NID_sha384;
	r = agent_wrapped_from_privkey(&k, &w, why, sizeof(why));
	tap_ok(r == 0 && strstr(why, "keyAlg") != NULL, "/privkey/oaep-sha384-refused", "%d: %s",
	       r, why);
	k.oaep_md_nid = NID_sha1;
	k.symm_nid = NID_des_ede3_cbc;
	r = agent_wrapped_from_privkey(&k, &w, why, sizeof(why));
	tap_ok(r == 0 && strstr(why, "DES-EDE3-CBC") != NULL, "/privkey/3des-refused", "%d: %s",
	       r, why);
	cmpc_privkey_clear(&k);
	tap_check(k.enc_value == NULL && k.kind == 0, "/privkey/clear");

	message(&m, 0xa3, 0, encval(&pk, 1, 0));
	seed(&m, "cp-encval-cbc-pkcs1");
	r = cmpc_privkey_get(m.b, m.n, -1, &k, why, sizeof(why));
	tap_ok(r == 1, "/privkey/encval-cbc-cp/found", "%d: %s", r, why);
	tap_check(k.symm_nid == NID_aes_256_cbc && k.iv_len == 16 && memcmp(k.iv, iv, 16) == 0,
		  "/privkey/encval-cbc-cp/iv");
	tap_check(k.keyenc_nid == NID_rsaEncryption && k.oaep_md_nid == NID_sha1,
		  "/privkey/encval-cbc-cp/pkcs1");
	r = agent_wrapped_from_privkey(&k, &w, why, sizeof(why));
	tap_ok(r == 1 && w.enc == TOK_ENC_AES_CBC_PAD && w.kt == TOK_KT_RSA_PKCS1 &&
		   memcmp(w.iv, iv, 16) == 0,
	       "/privkey/encval-cbc-cp/for-the-token", "%d: %s", r, why);
	k.iv_len = 8;
	r = agent_wrapped_from_privkey(&k, &w, why, sizeof(why));
	tap_ok(r == 0 && strstr(why, "IV is 8 bytes") != NULL, "/privkey/short-iv-refused",
	       "%d: %s", r, why);
	cmpc_privkey_clear(&k);

	message(&m, 0xa8, 0, encval(&pk, 0, 0));
	r = cmpc_privkey_get(m.b, m.n, 0, &k, why, sizeof(why));
	tap_ok(r == 1 && k.kind == CMPC_PRIVKEY_ENCVALUE, "/privkey/kup/found", "%d: %s", r, why);
	cmpc_privkey_clear(&k);

	/* [0] IMPLICIT EnvelopedData: given back as the SEQUENCE */
	message(&m, 0xa1, 0, tder_tlv(&pk, 0xa0, env_fields(&a)));
	seed(&m, "ip-enveloped");
	r = cmpc_privkey_get(m.b, m.n, 0, &k, why, sizeof(why));
	tap_ok(r == 1, "/privkey/enveloped/found", "%d: %s", r, why);
	tder_tlv(&env, 0x30, env_fields(&a));
	tap_check(k.kind == CMPC_PRIVKEY_ENVELOPED && k.enveloped_len == env.n &&
		      memcmp(k.enveloped, env.b, env.n) == 0,
		  "/privkey/enveloped/as-sequence");
	tap_check(!openssl_reads(&m), "/privkey/enveloped/openssl-3.0-fails-on-it");
	r = agent_wrapped_from_privkey(&k, &w, why, sizeof(why));
	tap_ok(r == 0 && strstr(why, "EnvelopedData") != NULL,
	       "/privkey/enveloped/not-for-the-token", "%d: %s", r, why);
	cmpc_privkey_clear(&k);

	message(&m, 0xa1, 0, NULL);
	seed(&m, "ip-no-key");
	r = cmpc_privkey_get(m.b, m.n, 0, &k, why, sizeof(why));
	tap_ok(r == 0 && k.kind == 0, "/privkey/none", "%d: %s", r, why);

	message(&m, 0xa1, 5, encval(&pk, 0, 0));
	seed(&m, "ip-rid-5");
	r = cmpc_privkey_get(m.b, m.n, 0, &k, why, sizeof(why));
	tap_ok(r == -1 && strstr(why, "no CertResponse for certReqId 0") != NULL,
	       "/privkey/other-rid", "%d: %s", r, why);
	r = cmpc_privkey_get(m.b, m.n, 5, &k, why, sizeof(why));
	tap_ok(r == 1, "/privkey/rid-5", "%d: %s", r, why);
	cmpc_privkey_clear(&k);

	message(&m, 0xa1, 0, encval(&pk, 0, 1));
	seed(&m, "ip-no-enc-symm-key");
	r = cmpc_privkey_get(m.b, m.n, 0, &k, why, sizeof(why));
	tap_ok(r == -1 && strstr(why, "lacks") != NULL && k.enc_value == NULL,
	       "/privkey/no-enc-symm-key", "%d: %s", r, why);

	/* an ir body [0]: no certificate response */
	message(&m, 0xa0, 0, encval(&pk, 0, 0));
	r = cmpc_privkey_get(m.b, m.n, 0, &k, why, sizeof(why));
	tap_ok(r == -1 && strstr(why, "no ip, cp or kup") != NULL, "/privkey/wrong-body", "%d: %s",
	       r, why);

	message(&m, 0xa1, 0, encval(&pk, 0, 0));
	r = cmpc_privkey_get(m.b, m.n - 1, 0, &k, why, sizeof(why));
	tap_ok(r == -1 && strstr(why, "no PKIMessage") != NULL, "/privkey/truncated", "%d: %s", r,
	       why);
	r = cmpc_privkey_get(m.b, 0, 0, &k, why, sizeof(why));
	tap_ok(r == -1, "/privkey/empty", "%d: %s", r, why);

	/* a privateKey that is neither alternative: an INTEGER */
	message(&m, 0xa1, 0, tder_raw(&pk, "\x02\x01\x07", 3));
	r = cmpc_privkey_get(m.b, m.n, 0, &k, why, sizeof(why));
	tap_ok(r == -1, "/privkey/neither-choice", "%d: %s", r, why);

	/* an IV longer than a block */
	{
		tder c, t, b2, symm, kalg, val;
		unsigned char iv32[32] = {0};

		tder_cat(&c, tder_raw(&a, oid_cbc, sizeof(oid_cbc)),
		    tder_tlv(&b2, 0x04, tder_raw(&t, iv32, sizeof(iv32))));
		tder_tlv(&symm, 0xa1, &c);
		tder_tlv(&kalg, 0xa3, tder_cat(&c, tder_raw(&a, oid_rsa, sizeof(oid_rsa)),
				     tder_raw(&b2, null, sizeof(null))));
		tder_bits(&t, ek_bytes, sizeof(ek_bytes) - 1);
		tder_tlv(&b2, 0x82, tder_raw(&a, t.b + 2, t.n - 2));
		tder_cat(&t, &symm, &b2);
		tder_cat(&t, &t, &kalg);
		tder_cat(&t, &t, tder_bits(&val, ev_bytes, sizeof(ev_bytes) - 1));
		message(&m, 0xa1, 0, tder_tlv(&pk, 0x30, &t));
		r = cmpc_privkey_get(m.b, m.n, 0, &k, why, sizeof(why));
		tap_ok(r == -1 && strstr(why, "IV is 32 bytes") != NULL, "/privkey/long-iv",
		       "%d: %s", r, why);
	}

	/* an encValue BIT STRING with unused bits */
	{
		tder t;

		encval(&pk, 0, 0);
		/* the last TLV of the EncryptedValue is encValue: 03 len 00 ... */
		t = pk;
		t.b[t.n - (sizeof(ev_bytes) - 1) - 1] = 0x03;
		message(&m, 0xa1, 0, &t);
		r = cmpc_privkey_get(m.b, m.n, 0, &k, why, sizeof(why));
		tap_ok(r == -1 && k.enc_symm_key == NULL, "/privkey/enc-value-bits-left",
		       "%d: %s", r, why);
	}

	/* every byte of a good message cut off: never a crash, never found */
	message(&m, 0xa1, 0, encval(&pk, 0, 0));
	{
		size_t cut;
		int bad = 0;

		for (cut = 0; cut < m.n; cut++) {
			r = cmpc_privkey_get(m.b, cut, 0, &k, why, sizeof(why));
			if (r != -1)
				bad++;
			cmpc_privkey_clear(&k);
		}
		tap_ok(bad == 0, "/privkey/every-truncation", "%d found", bad);
	}
	/* each byte flipped: any answer, no crash (ASan) */
	{
		size_t i;
		int found = 0;

		for (i = 0; i < m.n; i++) {
			tder t = m;

			t.b[i] ^= 0xff;
			if (cmpc_privkey_get(t.b, t.n, 0, &k, why, sizeof(why)) == 1)
				found++;
			cmpc_privkey_clear(&k);
		}
		tap_ok(found < (int)m.n, "/privkey/flipped-bytes", "%d of %zu found", found, m.n);
	}
	return tap_done();
}
