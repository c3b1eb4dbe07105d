/*
 * unwrap: drives tok_unwrap.c as a CA's answer would (tests/unwrap.sh).
 * Makes a transport key on the token, then in software what a CA sends
 * for a centrally generated key: a new key pair, its PKCS#8
 * PrivateKeyInfo encrypted under a random AES-256 key (AES-CBC with
 * padding, or AES key wrap with padding), that AES key encrypted to the
 * transport key (RSA-OAEP SHA-1 or SHA-256, or PKCS#1 v1.5).  The token
 * imports it with tok_unwrap_private; the imported key, found again by
 * its CKA_ID through the token layer, then signs something that the
 * software public key verifies.
 *
 * usage: unwrap --module PATH --token LABEL --pin-file FILE --alg ec|rsa
 *               [--enc cbc|kwp] [--kt oaep|oaep256|pkcs1] [--label L]
 *               [--fault recipient|garbage|mismatch] [--software] [--via-ip]
 *
 * --software: the path for what no token unwraps (allow_software_import):
 * tok_transport_decrypt (AES-CBC) into memory, then tok_import_private.
 * --via-ip: the whole client path: the encrypted key goes into an ip
 * (CertifiedKeyPair.privateKey, an EncryptedValue written octet by octet),
 * which cmpc_privkey_get reads and agent_wrapped_from_privkey maps.
 *
 * Faults: the AES key encrypted to another RSA key than the transport
 * key; random bytes in place of the encrypted PrivateKeyInfo (--software:
 * 64 zero bytes encrypted in its place); the public
 * key of another key pair given as the certificate's.  Prints "imported
 * ID" (hex) or "failed RV: MESSAGE" (exit 3).  Exit 1: the test itself
 * failed; 2: usage.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "agent/keyimport.h"
#include "pkcs11/tok.h"
#include "tests/common/der.h"
#include "tests/pinfile.h"

#define PIN_MAX 256

struct opts {
	const char *module, *token, *pin_file, *alg, *enc, *kt, *label, *fault;
	int software, via_ip;
};

static int fail(const char *what)
{
	fprintf(stderr, "unwrap: %s failed\n", what);
	ERR_print_errors_fp(stderr);
	return 1;
}

/* The PKCS#8 PrivateKeyInfo of key (zeros: 64 zero bytes instead),
 * encrypted with cek (AES-256). */
static int encrypt_key(EVP_PKEY *key, const unsigned char cek[32], tok_wrapped *w, int zeros,
		       unsigned char **ret_enc)
{
	PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(key);
	unsigned char *der = NULL, *enc = NULL;
	int len = p8 != NULL ? i2d_PKCS8_PRIV_KEY_INFO(p8, &der) : -1, n1 = 0, n2 = 0, ok = 0;

	if (zeros && len > 0) {
		OPENSSL_clear_free(der, (size_t)len);
		len = 64;
		der = OPENSSL_zalloc((size_t)len);
	}
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int kwp = w->enc == TOK_ENC_AES_KWP;

	if (len <= 0 || der == NULL || c == NULL ||
	    (enc = OPENSSL_malloc((size_t)len + 32)) == NULL)
		goto out;
	if (!kwp && RAND_bytes(w->iv, sizeof(w->iv)) != 1)
		goto out;
	if (kwp)
		EVP_CIPHER_CTX_set_flags(c, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
	if (EVP_EncryptInit_ex(c, kwp ? EVP_aes_256_wrap_pad() : EVP_aes_256_cbc(), NULL, cek,
			       kwp ? NULL : w->iv) != 1 ||
	    EVP_EncryptUpdate(c, enc, &n1, der, len) != 1 ||
	    EVP_EncryptFinal_ex(c, enc + n1, &n2) != 1)
		goto out;
	w->enc_key_len = (size_t)(n1 + n2);
	*ret_enc = enc;
	enc = NULL;
	ok = 1;
out:
	if (der != NULL)
		OPENSSL_clear_free(der, (size_t)len);
	OPENSSL_free(enc);
	EVP_CIPHER_CTX_free(c);
	PKCS8_PRIV_KEY_INFO_free(p8);
	return ok;
}

/* cek encrypted to to (the transport key, or another for the fault). */
static int encrypt_cek(EVP_PKEY *to, const unsigned char cek[32], tok_wrapped *w,
		       unsigned char **ret_enc)
{
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, to, NULL);
	size_t len = 0;
	unsigned char *enc = NULL;
	int ok = 0;

	if (c == NULL || EVP_PKEY_encrypt_init(c) != 1)
		goto out;
	if (w->kt == TOK_KT_RSA_PKCS1) {
		if (EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PADDING) != 1)
			goto out;
	} else if (EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_OAEP_PADDING) != 1 ||
		   (w->kt == TOK_KT_RSA_OAEP_SHA256 &&
		    (EVP_PKEY_CTX_set_rsa_oaep_md(c, EVP_sha256()) != 1 ||
		     EVP_PKEY_CTX_set_rsa_mgf1_md(c, EVP_sha256()) != 1))) {
		goto out;
	}
	if (EVP_PKEY_encrypt(c, NULL, &len, cek, 32) != 1 ||
	    (enc = OPENSSL_malloc(len)) == NULL || EVP_PKEY_encrypt(c, enc, &len, cek, 32) != 1)
		goto out;
	w->enc_cek_len = len;
	*ret_enc = enc;
	enc = NULL;
	ok = 1;
out:
	OPENSSL_free(enc);
	EVP_PKEY_CTX_free(c);
	return ok;
}

/* The imported key, found by its CKA_ID, signs; pub verifies. */
static int signs(tok_ctx *ctx, const tok_id *id, EVP_PKEY *pub)
{
	static const unsigned char msg[] = "central key generation";
	EVP_PKEY *priv = NULL;
	EVP_MD_CTX *mc = EVP_MD_CTX_new();
	unsigned char sig[1024];
	size_t siglen = sizeof(sig);
	int ok = 0;

	if (tok_key_get1_private(ctx, id, &priv) != TOK_OK) {
		fprintf(stderr, "unwrap: finding the imported key: %s\n", tok_errmsg(ctx));
		goto out;
	}
	ok = mc != NULL && EVP_DigestSignInit(mc, NULL, EVP_sha256(), NULL, priv) == 1 &&
	     EVP_DigestSign(mc, sig, &siglen, msg, sizeof(msg)) == 1 &&
	     EVP_DigestVerifyInit(mc, NULL, EVP_sha256(), NULL, pub) == 1 &&
	     EVP_DigestVerify(mc, sig, siglen, msg, sizeof(msg)) == 1;
out:
	EVP_MD_CTX_free(mc);
	EVP_PKEY_free(priv);
	return ok;
}

/* The OID TLV of nid into out. */
static tder *oid(tder *out, int nid)
{
	unsigned char *p = out->b;
	ASN1_OBJECT *o = OBJ_nid2obj(nid);
	int n = o != NULL ? i2d_ASN1_OBJECT(o, &p) : -1;

	out->n = n > 0 ? (size_t)n : 0;
	return out;
}

/*
 * --via-ip: w as an EncryptedValue in an ip (symmAlg aes256-wrap-pad or
 * aes-256-cbc with its IV; keyAlg rsaEncryption or RSAES-OAEP, SHA-256
 * named in its parameters), read back by the protocol layer and mapped by
 * the agent's: *ret_k keeps what *w then points into.
 */
static int through_ip(tok_wrapped *w, cmpc_privkey *ret_k)
{
	tder a, b, c, t, symm, key, kalg, val, ev, msg, cert;
	char why[256];
	size_t h;

	if (w->enc == TOK_ENC_AES_KWP)
		tder_tlv(&symm, 0xa1, oid(&c, NID_id_aes256_wrap_pad));
	else
		tder_tlv(&symm, 0xa1, tder_cat(&c, oid(&a, NID_aes_256_cbc),
					       tder_tlv(&b, 0x04, tder_raw(&t, w->iv, 16))));
	tder_bits(&t, w->enc_cek, w->enc_cek_len);
	/* [2] IMPLICIT BIT STRING: the BIT STRING's contents, retagged */
	h = t.n - (w->enc_cek_len + 1);
	tder_tlv(&key, 0x82, tder_raw(&a, t.b + h, t.n - h));
	if (w->kt == TOK_KT_RSA_PKCS1) {
		tder_cat(&c, oid(&a, NID_rsaEncryption), tder_raw(&b, "\x05\x00", 2));
	} else {
		/* RSAES-OAEP-params { hashFunc [0] sha256 }, or {} for the
		 * default, SHA-1 */
		tder_tlv(&t, 0x30, oid(&a, NID_sha256));
		if (w->kt == TOK_KT_RSA_OAEP_SHA1)
			tder_tlv(&b, 0x30, NULL);
		else
			tder_tlv(&b, 0x30, tder_tlv(&a, 0xa0, &t));
		tder_cat(&c, oid(&a, NID_rsaesOaep), &b);
	}
	tder_tlv(&kalg, 0xa3, &c);
	tder_bits(&val, w->enc_key, w->enc_key_len);
	tder_cat(&t, &symm, &key);
	tder_cat(&t, &t, &kalg);
	tder_cat(&t, &t, &val);
	tder_tlv(&ev, 0x30, &t);
	/* the certificate is not looked at: an empty SEQUENCE */
	tder_raw(&cert, "\x30\x00", 2);
	tder_certrep(&msg, 0xa1, 0, &cert, &ev);
	if (msg.n > TDER_MAX || w->enc_cek_len > 1024 || w->enc_key_len > 4096) {
		fprintf(stderr, "unwrap: the ip does not fit the test's buffer\n");
		return 0;
	}
	if (cmpc_privkey_get(msg.b, msg.n, 0, ret_k, why, sizeof(why)) != 1 ||
	    !agent_wrapped_from_privkey(ret_k, w, why, sizeof(why))) {
		fprintf(stderr, "unwrap: reading the ip: %s\n", why);
		return 0;
	}
	return 1;
}

/* The software path: decrypted in memory, then C_CreateObject. */
static tok_rv import_software(tok_ctx *ctx, tok_transport *t, const tok_wrapped *w,
			      EVP_PKEY *pub, const char *label, tok_id *ret_id)
{
	unsigned char *plain = NULL;
	const unsigned char *p;
	size_t len = 0;
	EVP_PKEY *key = NULL;
	tok_rv rv = tok_transport_decrypt(ctx, t, w, &plain, &len);

	if (rv != TOK_OK)
		return rv;
	p = plain;
	key = d2i_AutoPrivateKey(NULL, &p, (long)len);
	OPENSSL_clear_free(plain, len);
	if (key == NULL)
		return TOK_ERR_MISMATCH; /* no message in ctx: run() says it */
	rv = tok_import_private(ctx, key, pub, label, 0, ret_id);
	EVP_PKEY_free(key);
	return rv;
}

static EVP_PKEY *new_key(const char *alg)
{
	if (strcmp(alg, "ec") == 0)
		return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
}

static int run(const struct opts *o, const char *pin)
{
	tok_ctx *ctx = NULL;
	tok_transport *t = NULL;
	EVP_PKEY *tpub = NULL, *key = NULL, *other = NULL, *to;
	unsigned char cek[32], *enc_cek = NULL, *enc_key = NULL;
	tok_wrapped w;
	cmpc_privkey pk;
	tok_id id;
	char hex[2 * TOK_ID_MAX + 1];
	size_t i;
	tok_rv rv;
	int ret = 1, garbage;

	memset(&w, 0, sizeof(w));
	memset(&pk, 0, sizeof(pk));
	w.enc = strcmp(o->enc, "kwp") == 0 ? TOK_ENC_AES_KWP : TOK_ENC_AES_CBC_PAD;
	w.kt = strcmp(o->kt, "pkcs1") == 0	   ? TOK_KT_RSA_PKCS1
	       : strcmp(o->kt, "oaep256") == 0 ? TOK_KT_RSA_OAEP_SHA256
					       : TOK_KT_RSA_OAEP_SHA1;
	rv = tok_open(o->module, o->token, &ctx);
	if (rv == TOK_OK)
		rv = tok_login(ctx, pin);
	if (rv == TOK_OK)
		rv = tok_transport_new(ctx, &t, &tpub);
	if (rv != TOK_OK) {
		printf("failed %s: %s\n", tok_strerror(rv), ctx != NULL ? tok_errmsg(ctx) : "");
		ret = 3;
		goto out;
	}
	if ((key = new_key(o->alg)) == NULL || RAND_bytes(cek, sizeof(cek)) != 1) {
		fail("making the key");
		goto out;
	}
	to = tpub;
	if (strcmp(o->fault, "recipient") == 0 && (to = other = new_key("rsa")) == NULL) {
		fail("making the other recipient");
		goto out;
	}
	/* garbage for the software path: a decryption that succeeds (CBC
	 * padding of random bytes would be right one time in 256) */
	garbage = strcmp(o->fault, "garbage") == 0;
	if (!encrypt_cek(to, cek, &w, &enc_cek) ||
	    !encrypt_key(key, cek, &w, garbage && o->software, &enc_key)) {
		fail("encrypting");
		goto out;
	}
	OPENSSL_cleanse(cek, sizeof(cek));
	if (garbage && !o->software && RAND_bytes(enc_key, (int)w.enc_key_len) != 1) {
		fail("garbling");
		goto out;
	}
	if (strcmp(o->fault, "mismatch") == 0 && (other = new_key(o->alg)) == NULL) {
		fail("making the other key");
		goto out;
	}
	w.enc_cek = enc_cek;
	w.enc_key = enc_key;
	if (o->via_ip && !through_ip(&w, &pk)) {
		fail("the way through an ip");
		goto out;
	}
	if (o->software)
		rv = import_software(ctx, t, &w, other != NULL && to == tpub ? other : key,
				     o->label, &id);
	else
		rv = tok_unwrap_private(ctx, t, &w, other != NULL && to == tpub ? other : key,
					o->label, 0, &id);
	tok_transport_free(t);
	t = NULL;
	if (rv != TOK_OK) {
		printf("failed %s: %s\n", tok_strerror(rv),
		       tok_errmsg(ctx)[0] != '\0' ? tok_errmsg(ctx)
						 : "the decrypted content is no private key");
		ret = 3;
		goto out;
	}
	if (!signs(ctx, &id, key)) {
		fail("signing with the imported key");
		goto out;
	}
	for (i = 0; i < id.len; i++)
		snprintf(hex + 2 * i, 3, "%02x", id.id[i]);
	hex[2 * id.len] = '\0';
	printf("imported %s\n", hex);
	ret = 0;
out:
	tok_transport_free(t);
	tok_free(ctx);
	EVP_PKEY_free(tpub);
	EVP_PKEY_free(key);
	EVP_PKEY_free(other);
	OPENSSL_free(enc_cek);
	OPENSSL_free(enc_key);
	cmpc_privkey_clear(&pk);
	return ret;
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
	    {"module", required_argument, NULL, 'm'}, {"token", required_argument, NULL, 't'},
	    {"pin-file", required_argument, NULL, 'p'}, {"alg", required_argument, NULL, 'a'},
	    {"enc", required_argument, NULL, 'e'},	{"kt", required_argument, NULL, 'k'},
	    {"label", required_argument, NULL, 'l'},	{"fault", required_argument, NULL, 'f'},
	    {"software", no_argument, NULL, 's'},	{"via-ip", no_argument, NULL, 'i'},
	    {NULL, 0, NULL, 0},
	};
	struct opts o = {NULL, NULL, NULL, "ec", "cbc", "oaep", "central", "", 0, 0};
	char pin[PIN_MAX];
	int c, ret;

	while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (c) {
		case 'm': o.module = optarg; break;
		case 't': o.token = optarg; break;
		case 'p': o.pin_file = optarg; break;
		case 'a': o.alg = optarg; break;
		case 'e': o.enc = optarg; break;
		case 'k': o.kt = optarg; break;
		case 'l': o.label = optarg; break;
		case 'f': o.fault = optarg; break;
		case 's': o.software = 1; break;
		case 'i': o.via_ip = 1; break;
		default: return 2;
		}
	}
	if (o.module == NULL || o.token == NULL || o.pin_file == NULL ||
	    (strcmp(o.alg, "ec") != 0 && strcmp(o.alg, "rsa") != 0)) {
		fprintf(stderr, "usage: unwrap --module PATH --token URI --pin-file FILE "
				"--alg ec|rsa [--enc cbc|kwp] [--kt oaep|oaep256|pkcs1] "
				"[--label L] [--fault recipient|garbage|mismatch] [--software] "
				"[--via-ip]\n");
		return 2;
	}
	if (pinfile_read("unwrap", o.pin_file, pin, sizeof(pin)) != 0)
		return 2;
	ret = run(&o, pin);
	OPENSSL_cleanse(pin, sizeof(pin));
	return ret;
}
