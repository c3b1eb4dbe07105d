/*
 * cmpc_set1_archive (cmp/cmpc_archive.c): the PKIArchiveOptions it encodes
 * compared byte for byte with DER written here octet by octet from RFC
 * 4211 (IMPLICIT TAGS; [0] EncryptedKey explicit, a CHOICE) and RFC 5652:
 * EnvelopedData with one KeyTransRecipientInfo (issuerAndSerialNumber,
 * RSA-OAEP with empty parameters or rsaEncryption with NULL), content
 * id-data under id-aes256-wrap-pad (no parameters) or aes256-CBC (the IV),
 * and EncryptedValue with the same algorithms; incomplete input refused.
 */
#include "config.h"

#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "cmp/cmpc-int.h"
#include "tests/common/der.h"
#include "tests/unit/tap.h"

static const unsigned char oid_kwp[] = {0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65,
					0x03, 0x04, 0x01, 0x30};
static const unsigned char oid_cbc[] = {0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65,
					0x03, 0x04, 0x01, 0x2a};
static const unsigned char oid_oaep[] = {0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
					 0xf7, 0x0d, 0x01, 0x01, 0x07};
static const unsigned char oid_rsa[] = {0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
					0xf7, 0x0d, 0x01, 0x01, 0x01};
static const unsigned char oid_data[] = {0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
					 0xf7, 0x0d, 0x01, 0x07, 0x01};
static const unsigned char empty_seq[] = {0x30, 0x00}, null[] = {0x05, 0x00};
static const unsigned char zero[] = {0x02, 0x01, 0x00};
static const unsigned char serial[] = {0x02, 0x02, 0x12, 0x34};
static const unsigned char cek[] = "the AES key, wrapped to the recipient";
static const unsigned char key[] = "the PrivateKeyInfo, wrapped with the AES key";
static const unsigned char iv[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

static X509 *recipient(void)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();

	if (k == NULL || x == NULL || n == NULL ||
	    !X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8,
					(const unsigned char *)"archive issuer", -1, -1, 0) ||
	    !ASN1_INTEGER_set(X509_get_serialNumber(x), 0x1234) ||
	    !X509_set_issuer_name(x, n) || !X509_set_subject_name(x, n) ||
	    !X509_set_pubkey(x, k) || X509_gmtime_adj(X509_getm_notBefore(x), 0) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), 3600) == NULL ||
	    X509_sign(x, k, EVP_sha256()) <= 0)
		tap_bail("cannot make the recipient certificate");
	X509_NAME_free(n);
	EVP_PKEY_free(k);
	return x;
}

/* AlgorithmIdentifier of the key transport and of the AES wrap */
static tder *kt_alg(tder *out, int oaep)
{
	tder a, b, c;

	if (oaep)
		tder_cat(&c, tder_raw(&a, oid_oaep, sizeof(oid_oaep)),
			 tder_raw(&b, empty_seq, sizeof(empty_seq)));
	else
		tder_cat(&c, tder_raw(&a, oid_rsa, sizeof(oid_rsa)),
			 tder_raw(&b, null, sizeof(null)));
	return tder_tlv(out, 0x30, &c);
}

static tder *symm_alg(tder *out, unsigned char tag, int cbc)
{
	tder a, b, c, t;

	if (cbc)
		tder_cat(&c, tder_raw(&a, oid_cbc, sizeof(oid_cbc)),
			 tder_tlv(&b, 0x04, tder_raw(&t, iv, sizeof(iv))));
	else
		tder_raw(&c, oid_kwp, sizeof(oid_kwp));
	return tder_tlv(out, tag, &c);
}

/* [0] { [0] IMPLICIT EnvelopedData } */
static tder *enveloped(tder *out, X509 *rcpt, int oaep, int cbc)
{
	tder a, b, c, d, ias, ktri, eci, env, t;
	unsigned char *name = NULL;
	int n = i2d_X509_NAME(X509_get_issuer_name(rcpt), &name);

	tder_tlv(&ias, 0x30, tder_cat(&c, tder_raw(&a, name, (size_t)n),
				      tder_raw(&b, serial, sizeof(serial))));
	OPENSSL_free(name);
	tder_cat(&c, tder_raw(&a, zero, sizeof(zero)), &ias);
	tder_cat(&d, &c, kt_alg(&a, oaep));
	tder_cat(&c, &d, tder_tlv(&a, 0x04, tder_raw(&t, cek, sizeof(cek) - 1)));
	tder_tlv(&ktri, 0x30, &c);
	tder_cat(&c, tder_raw(&a, oid_data, sizeof(oid_data)), symm_alg(&b, 0x30, cbc));
	tder_cat(&d, &c, tder_tlv(&a, 0x80, tder_raw(&t, key, sizeof(key) - 1)));
	tder_tlv(&eci, 0x30, &d);
	tder_cat(&c, tder_raw(&a, zero, sizeof(zero)), tder_tlv(&b, 0x31, &ktri));
	tder_cat(&d, &c, &eci);
	tder_tlv(&env, 0xa0, &d);
	return tder_tlv(out, 0xa0, &env);
}

/* [0] { EncryptedValue } */
static tder *encvalue(tder *out, int oaep, int cbc)
{
	tder a, b, c, d, t, ev, alg;

	symm_alg(&c, 0xa1, cbc);
	tder_bits(&t, cek, sizeof(cek) - 1);
	tder_cat(&d, &c, tder_tlv(&a, 0x82, tder_raw(&b, t.b + 2, t.n - 2)));
	kt_alg(&alg, oaep);
	tder_cat(&c, &d, tder_tlv(&a, 0xa3, tder_raw(&b, alg.b + 2, alg.n - 2)));
	tder_cat(&d, &c, tder_bits(&a, key, sizeof(key) - 1));
	tder_tlv(&ev, 0x30, &d);
	return tder_tlv(out, 0xa0, &ev);
}

static void one(cmpc_ctx *ctx, X509 *rcpt, cmpc_archive_format f, int oaep, int cbc)
{
	cmpc_archive a;
	tder want;
	char name[96];

	memset(&a, 0, sizeof(a));
	a.format = f;
	a.recipient = rcpt;
	a.oaep = oaep;
	a.cbc = cbc;
	memcpy(a.iv, iv, sizeof(iv));
	a.enc_cek = cek;
	a.enc_cek_len = sizeof(cek) - 1;
	a.enc_key = key;
	a.enc_key_len = sizeof(key) - 1;
	if (f == CMPC_ARCHIVE_ENVELOPED)
		enveloped(&want, rcpt, oaep, cbc);
	else
		encvalue(&want, oaep, cbc);
	snprintf(name, sizeof(name), "/archive/%s/%s/%s",
		 f == CMPC_ARCHIVE_ENVELOPED ? "enveloped" : "encrypted-value",
		 oaep ? "oaep" : "pkcs1", cbc ? "cbc" : "kwp");
	tap_check(cmpc_set1_archive(ctx, &a) == CMPC_OK && ctx->archive_der != NULL &&
		      (size_t)ctx->archive_len == want.n &&
		      memcmp(ctx->archive_der, want.b, want.n) == 0,
		  name);
}

int main(void)
{
	cmpc_ctx *ctx = cmpc_new();
	X509 *rcpt = recipient();
	cmpc_archive a;
	int f, oaep, cbc;

	if (ctx == NULL)
		tap_bail("cmpc_new failed");
	tap_plan(11);
	for (f = CMPC_ARCHIVE_ENVELOPED; f <= CMPC_ARCHIVE_ENCVALUE; f++)
		for (oaep = 0; oaep < 2; oaep++)
			for (cbc = 0; cbc < 2; cbc++)
				one(ctx, rcpt, (cmpc_archive_format)f, oaep, cbc);
	memset(&a, 0, sizeof(a));
	a.format = CMPC_ARCHIVE_ENVELOPED;
	a.enc_cek = cek;
	a.enc_key = key;
	tap_check(cmpc_set1_archive(ctx, &a) == CMPC_ERR_INTERNAL && ctx->archive_der == NULL,
		  "/archive/refused/no-recipient");
	a.recipient = rcpt;
	a.format = (cmpc_archive_format)7;
	tap_check(cmpc_set1_archive(ctx, &a) == CMPC_ERR_INTERNAL, "/archive/refused/format");
	tap_check(cmpc_set1_archive(ctx, NULL) == CMPC_OK && ctx->archive_der == NULL,
		  "/archive/cleared");
	X509_free(rcpt);
	cmpc_free(ctx);
	return tap_done();
}
