/*
 * tokfill: puts many enrollments (key pair + certificate) on a PKCS#11
 * token at once, so that tests and benchmarks can measure p11enroll on a
 * token that already holds thousands of objects.  One process, one
 * session, one login: keys are made by OpenSSL in software and imported
 * with C_CreateObject, which on SoftHSM2 is far cheaper than a keygen on
 * the token or a pkcs11-tool run per object.  The objects look like
 * p11enroll's own (CKA_ID = the RFC 5280 key identifier, label on all
 * three), except that the keys are not CKA_LOCAL.
 *
 * usage: tokfill --module PATH --token LABEL --pin-file FILE --count N
 *                [--prefix P] [--start I] [--ca-cert PEM --ca-key PEM]
 *                [--days D | --seconds S] [--keys-only] [--time]
 *
 * --time: bench/limit.sh's parts of an enrollment, alone: N key pairs
 * generated on the token (C_GenerateKeyPair, EC P-256, p11enroll's
 * template) and N certificates written (C_CreateObject), each timed; the
 * medians are printed ("keygen_us N", "certwrite_us N").
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <p11-kit/pkcs11.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "pkcs11/tok.h"
#include "tests/pinfile.h"

#define P256_SCALAR_LEN 32
#define PIN_MAX 256
#define PREFIX_MAX 200

struct opts {
	const char *module, *token, *pin_file, *prefix, *ca_cert, *ca_key;
	unsigned long count, start, days, seconds;
	int keys_only, time_parts;
};

struct filler {
	CK_FUNCTION_LIST *p;
	CK_SESSION_HANDLE s;
	EVP_PKEY_CTX *keygen;
	X509 *ca;
	EVP_PKEY *ca_key;
	unsigned char *ec_params;
	int ec_params_len;
	const struct opts *o;
};

static void usage(FILE *f)
{
	fprintf(f, "usage: tokfill --module PATH --token LABEL --pin-file FILE --count N\n"
		   "               [--prefix P] [--start I] [--ca-cert PEM --ca-key PEM]\n"
		   "               [--days D | --seconds S] [--keys-only] [--time]\n"
		   "Makes N enrollments P-I .. P-(I+N-1) (default P fill, I 1): an EC P-256 key\n"
		   "pair and, unless --keys-only, a certificate valid from an hour ago until\n"
		   "D days (default 365) or S seconds from now, issued by the CA or self-signed.\n"
		   "--time: instead, N key pairs generated on the token and N certificates\n"
		   "written, each timed; prints the medians (keygen_us, certwrite_us).\n");
}

static int ckr_fail(const char *what, CK_RV rv)
{
	fprintf(stderr, "tokfill: %s: %s (0x%lx)\n", what, tok_ckr_name(rv), (unsigned long)rv);
	return -1;
}

static int ossl_fail(const char *what)
{
	fprintf(stderr, "tokfill: %s\n", what);
	ERR_print_errors_fp(stderr);
	return -1;
}

static int parse_ulong(const char *name, const char *s, unsigned long *ret)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-') {
		fprintf(stderr, "tokfill: --%s wants a non-negative number, not '%s'\n", name, s);
		return -1;
	}
	*ret = v;
	return 0;
}

/* The slot of the one present token labelled exactly label, or -1. */
static int find_slot(CK_FUNCTION_LIST *p, const char *label, CK_SLOT_ID *ret_slot)
{
	CK_SLOT_ID *slots = NULL, slot = 0;
	CK_ULONG n = 0, i;
	CK_TOKEN_INFO ti;
	CK_RV rv;
	size_t len = strlen(label), k;
	int found = 0, ret = -1;

	if (len > sizeof(ti.label)) {
		fprintf(stderr, "tokfill: a token label has at most %zu bytes\n", sizeof(ti.label));
		return -1;
	}
	if ((rv = p->C_GetSlotList(CK_TRUE, NULL, &n)) != CKR_OK)
		return ckr_fail("C_GetSlotList", rv);
	if (n > 0 && (slots = calloc(n, sizeof(*slots))) == NULL)
		return ossl_fail("out of memory");
	if (n > 0 && (rv = p->C_GetSlotList(CK_TRUE, slots, &n)) != CKR_OK) {
		ckr_fail("C_GetSlotList", rv);
		goto out;
	}
	for (i = 0; i < n; i++) {
		if ((rv = p->C_GetTokenInfo(slots[i], &ti)) != CKR_OK) {
			ckr_fail("C_GetTokenInfo", rv);
			goto out;
		}
		/* The label is blank-padded to 32 bytes, never NUL-terminated. */
		if (memcmp(ti.label, label, len) != 0)
			continue;
		for (k = len; k < sizeof(ti.label) && ti.label[k] == ' '; k++)
			;
		if (k < sizeof(ti.label))
			continue;
		if (found++) {
			fprintf(stderr, "tokfill: more than one token is labelled '%s'\n", label);
			goto out;
		}
		slot = slots[i];
	}
	if (!found)
		fprintf(stderr, "tokfill: no token labelled '%s'\n", label);
	else {
		*ret_slot = slot;
		ret = 0;
	}
out:
	free(slots);
	return ret;
}

/* The RFC 5280 key identifier, as pkcs11/tok_pubkey.c tok_key_identifier makes it. */
static int key_identifier(EVP_PKEY *pkey, unsigned char id[SHA_DIGEST_LENGTH])
{
	X509_PUBKEY *xpk = NULL;
	const unsigned char *bits;
	int nbits, ok = 0;

	if (X509_PUBKEY_set(&xpk, pkey) == 1 &&
	    X509_PUBKEY_get0_param(NULL, &bits, &nbits, NULL, xpk) == 1 && nbits > 0) {
		SHA1(bits, (size_t)nbits, id);
		ok = 1;
	}
	X509_PUBKEY_free(xpk);
	return ok ? 0 : ossl_fail("cannot compute the key identifier");
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, ctx, nid, value);
	int ok = ext != NULL && X509_add_ext(x, ext, -1) == 1;

	X509_EXTENSION_free(ext);
	return ok;
}

static X509 *make_cert(const struct filler *f, EVP_PKEY *pkey, const char *label)
{
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();
	BIGNUM *serial = BN_new();
	X509V3_CTX ctx;
	X509 *issuer;
	EVP_PKEY *signer;

	if (x == NULL || name == NULL || serial == NULL)
		goto fail;
	if (X509_set_version(x, X509_VERSION_3) != 1 ||
	    BN_rand(serial, 64, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
	    BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)) == NULL ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)label,
				       -1, -1, 0) != 1 ||
	    X509_set_subject_name(x, name) != 1 || X509_set_pubkey(x, pkey) != 1 ||
	    X509_time_adj_ex(X509_getm_notBefore(x), 0, -3600, NULL) == NULL)
		goto fail;
	if (f->o->seconds > 0) {
		if (X509_time_adj_ex(X509_getm_notAfter(x), 0, (long)f->o->seconds, NULL) == NULL)
			goto fail;
	} else if (X509_time_adj_ex(X509_getm_notAfter(x), (int)f->o->days, 0, NULL) == NULL) {
		goto fail;
	}
	issuer = f->ca != NULL ? f->ca : x;
	signer = f->ca != NULL ? f->ca_key : pkey;
	if (X509_set_issuer_name(x, X509_get_subject_name(issuer)) != 1)
		goto fail;
	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	if (!add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE") ||
	    !add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature") ||
	    !add_ext(x, &ctx, NID_subject_key_identifier, "hash") ||
	    (f->ca != NULL && !add_ext(x, &ctx, NID_authority_key_identifier, "keyid")))
		goto fail;
	if (X509_sign(x, signer, EVP_sha256()) <= 0)
		goto fail;
	X509_NAME_free(name);
	BN_free(serial);
	return x;
fail:
	ossl_fail("cannot make a certificate");
	X509_NAME_free(name);
	BN_free(serial);
	X509_free(x);
	return NULL;
}

static int store_keys(const struct filler *f, EVP_PKEY *pkey, const unsigned char *id,
		      const char *label)
{
	static CK_OBJECT_CLASS priv_cls = CKO_PRIVATE_KEY, pub_cls = CKO_PUBLIC_KEY;
	static CK_KEY_TYPE kt = CKK_EC;
	static CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	unsigned char scalar[P256_SCALAR_LEN], *point = NULL, *point_der = NULL;
	size_t point_len;
	int point_der_len = 0, ret = -1;
	BIGNUM *d = NULL;
	ASN1_OCTET_STRING *os = NULL;
	CK_OBJECT_HANDLE h;
	CK_RV rv;

	if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_PRIV_KEY, &d) != 1 ||
	    BN_bn2binpad(d, scalar, sizeof(scalar)) != (int)sizeof(scalar) ||
	    (point_len = EVP_PKEY_get1_encoded_public_key(pkey, &point)) == 0 ||
	    (os = ASN1_OCTET_STRING_new()) == NULL ||
	    ASN1_OCTET_STRING_set(os, point, (int)point_len) != 1 ||
	    (point_der_len = i2d_ASN1_OCTET_STRING(os, &point_der)) <= 0) {
		ossl_fail("cannot encode a new key");
		goto out;
	}
	{
		CK_ATTRIBUTE priv[] = {
		    {CKA_CLASS, &priv_cls, sizeof(priv_cls)},
		    {CKA_KEY_TYPE, &kt, sizeof(kt)},
		    {CKA_TOKEN, &yes, sizeof(yes)},
		    {CKA_PRIVATE, &yes, sizeof(yes)},
		    {CKA_SENSITIVE, &yes, sizeof(yes)},
		    {CKA_EXTRACTABLE, &no, sizeof(no)},
		    {CKA_SIGN, &yes, sizeof(yes)},
		    /* SoftHSM2's defaults would allow these, p11enroll's keys do not. */
		    {CKA_DECRYPT, &no, sizeof(no)},
		    {CKA_UNWRAP, &no, sizeof(no)},
		    {CKA_DERIVE, &no, sizeof(no)},
		    {CKA_ID, (void *)id, SHA_DIGEST_LENGTH},
		    {CKA_LABEL, (void *)label, strlen(label)},
		    {CKA_EC_PARAMS, f->ec_params, (CK_ULONG)f->ec_params_len},
		    {CKA_VALUE, scalar, sizeof(scalar)},
		};
		CK_ATTRIBUTE pub[] = {
		    {CKA_CLASS, &pub_cls, sizeof(pub_cls)},
		    {CKA_KEY_TYPE, &kt, sizeof(kt)},
		    {CKA_TOKEN, &yes, sizeof(yes)},
		    {CKA_PRIVATE, &no, sizeof(no)},
		    {CKA_VERIFY, &yes, sizeof(yes)},
		    {CKA_ENCRYPT, &no, sizeof(no)},
		    {CKA_WRAP, &no, sizeof(no)},
		    {CKA_ID, (void *)id, SHA_DIGEST_LENGTH},
		    {CKA_LABEL, (void *)label, strlen(label)},
		    {CKA_EC_PARAMS, f->ec_params, (CK_ULONG)f->ec_params_len},
		    {CKA_EC_POINT, point_der, (CK_ULONG)point_der_len},
		};

		if ((rv = f->p->C_CreateObject(f->s, priv, sizeof(priv) / sizeof(priv[0]), &h)) !=
		    CKR_OK) {
			ckr_fail("C_CreateObject (private key)", rv);
			goto out;
		}
		if ((rv = f->p->C_CreateObject(f->s, pub, sizeof(pub) / sizeof(pub[0]), &h)) !=
		    CKR_OK) {
			ckr_fail("C_CreateObject (public key)", rv);
			goto out;
		}
	}
	ret = 0;
out:
	OPENSSL_cleanse(scalar, sizeof(scalar));
	BN_clear_free(d);
	OPENSSL_free(point);
	OPENSSL_free(point_der);
	ASN1_OCTET_STRING_free(os);
	return ret;
}

static int store_cert(const struct filler *f, X509 *x, const unsigned char *id, const char *label)
{
	static CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
	static CK_CERTIFICATE_TYPE ct = CKC_X_509;
	static CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	unsigned char *value = NULL, *subject = NULL, *issuer = NULL, *serial = NULL;
	int value_len, subject_len, issuer_len, serial_len, ret = -1;
	CK_OBJECT_HANDLE h;
	CK_RV rv;

	value_len = i2d_X509(x, &value);
	subject_len = i2d_X509_NAME(X509_get_subject_name(x), &subject);
	issuer_len = i2d_X509_NAME(X509_get_issuer_name(x), &issuer);
	serial_len = i2d_ASN1_INTEGER(X509_get0_serialNumber(x), &serial);
	if (value_len <= 0 || subject_len <= 0 || issuer_len <= 0 || serial_len <= 0) {
		ossl_fail("cannot encode a certificate");
		goto out;
	}
	{
		CK_ATTRIBUTE tmpl[] = {
		    {CKA_CLASS, &cls, sizeof(cls)},
		    {CKA_CERTIFICATE_TYPE, &ct, sizeof(ct)},
		    {CKA_TOKEN, &yes, sizeof(yes)},
		    {CKA_PRIVATE, &no, sizeof(no)},
		    {CKA_ID, (void *)id, SHA_DIGEST_LENGTH},
		    {CKA_LABEL, (void *)label, strlen(label)},
		    {CKA_SUBJECT, subject, (CK_ULONG)subject_len},
		    {CKA_ISSUER, issuer, (CK_ULONG)issuer_len},
		    {CKA_SERIAL_NUMBER, serial, (CK_ULONG)serial_len},
		    {CKA_VALUE, value, (CK_ULONG)value_len},
		};

		rv = f->p->C_CreateObject(f->s, tmpl, sizeof(tmpl) / sizeof(tmpl[0]), &h);
		if (rv != CKR_OK) {
			ckr_fail("C_CreateObject (certificate)", rv);
			goto out;
		}
	}
	ret = 0;
out:
	OPENSSL_free(value);
	OPENSSL_free(subject);
	OPENSSL_free(issuer);
	OPENSSL_free(serial);
	return ret;
}

static int fill_one(const struct filler *f, unsigned long i)
{
	char label[256];
	unsigned char id[SHA_DIGEST_LENGTH];
	EVP_PKEY *pkey = NULL;
	X509 *x = NULL;
	int ret = -1;

	snprintf(label, sizeof(label), "%s-%lu", f->o->prefix, i);
	if (EVP_PKEY_generate(f->keygen, &pkey) != 1) {
		ossl_fail("cannot generate an EC P-256 key");
		goto out;
	}
	if (key_identifier(pkey, id) != 0 || store_keys(f, pkey, id, label) != 0)
		goto out;
	if (!f->o->keys_only &&
	    ((x = make_cert(f, pkey, label)) == NULL || store_cert(f, x, id, label) != 0))
		goto out;
	ret = 0;
out:
	X509_free(x);
	EVP_PKEY_free(pkey);
	return ret;
}

static long elapsed_us(const struct timespec *a, const struct timespec *b)
{
	return (long)((b->tv_sec - a->tv_sec) * 1000000L + (b->tv_nsec - a->tv_nsec) / 1000);
}

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return x < y ? -1 : x > y;
}

static long median(long *v, unsigned long n)
{
	qsort(v, n, sizeof(*v), cmp_long);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* One key pair generated on the token, as p11enroll asks for it. */
static int keygen_one(const struct filler *f, const char *label)
{
	static CK_MECHANISM mech = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
	static CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ATTRIBUTE pub[] = {
	    {CKA_TOKEN, &yes, sizeof(yes)},
	    {CKA_VERIFY, &yes, sizeof(yes)},
	    {CKA_EC_PARAMS, f->ec_params, (CK_ULONG)f->ec_params_len},
	    {CKA_LABEL, (void *)label, strlen(label)},
	};
	CK_ATTRIBUTE priv[] = {
	    {CKA_TOKEN, &yes, sizeof(yes)},	{CKA_PRIVATE, &yes, sizeof(yes)},
	    {CKA_SENSITIVE, &yes, sizeof(yes)}, {CKA_EXTRACTABLE, &no, sizeof(no)},
	    {CKA_SIGN, &yes, sizeof(yes)},	{CKA_DECRYPT, &no, sizeof(no)},
	    {CKA_UNWRAP, &no, sizeof(no)},	{CKA_LABEL, (void *)label, strlen(label)},
	};
	CK_OBJECT_HANDLE hpub, hpriv;
	CK_RV rv = f->p->C_GenerateKeyPair(f->s, &mech, pub, sizeof(pub) / sizeof(pub[0]), priv,
					   sizeof(priv) / sizeof(priv[0]), &hpub, &hpriv);

	return rv == CKR_OK ? 0 : ckr_fail("C_GenerateKeyPair", rv);
}

/* --time: the medians of n keygens and n certificate writes. */
static int time_parts(const struct filler *f, unsigned long n)
{
	unsigned char id[SHA_DIGEST_LENGTH];
	long *kg = calloc(n, sizeof(*kg)), *cw = calloc(n, sizeof(*cw));
	struct timespec a, b;
	EVP_PKEY *pkey = NULL;
	X509 *x = NULL;
	char label[256];
	unsigned long i;
	int ret = -1;

	if (kg == NULL || cw == NULL || EVP_PKEY_generate(f->keygen, &pkey) != 1 ||
	    key_identifier(pkey, id) != 0 || (x = make_cert(f, pkey, "timed")) == NULL)
		goto out;
	for (i = 0; i < n; i++) {
		snprintf(label, sizeof(label), "%s-%lu", f->o->prefix, f->o->start + i);
		clock_gettime(CLOCK_MONOTONIC, &a);
		if (keygen_one(f, label) != 0)
			goto out;
		clock_gettime(CLOCK_MONOTONIC, &b);
		kg[i] = elapsed_us(&a, &b);
		clock_gettime(CLOCK_MONOTONIC, &a);
		if (store_cert(f, x, id, label) != 0)
			goto out;
		clock_gettime(CLOCK_MONOTONIC, &b);
		cw[i] = elapsed_us(&a, &b);
	}
	printf("keygen_us %ld\ncertwrite_us %ld\n", median(kg, n), median(cw, n));
	ret = 0;
out:
	X509_free(x);
	EVP_PKEY_free(pkey);
	free(kg);
	free(cw);
	return ret;
}

static int load_ca(struct filler *f)
{
	FILE *in;

	if ((in = fopen(f->o->ca_cert, "r")) == NULL) {
		fprintf(stderr, "tokfill: cannot open %s: %s\n", f->o->ca_cert, strerror(errno));
		return -1;
	}
	f->ca = PEM_read_X509(in, NULL, NULL, NULL);
	fclose(in);
	if ((in = fopen(f->o->ca_key, "r")) == NULL) {
		fprintf(stderr, "tokfill: cannot open %s: %s\n", f->o->ca_key, strerror(errno));
		return -1;
	}
	f->ca_key = PEM_read_PrivateKey(in, NULL, NULL, NULL);
	fclose(in);
	if (f->ca == NULL || f->ca_key == NULL)
		return ossl_fail("cannot read the CA certificate or key (PEM)");
	if (X509_check_private_key(f->ca, f->ca_key) != 1)
		return ossl_fail("the CA key does not belong to the CA certificate");
	return 0;
}

static int prepare_keygen(struct filler *f)
{
	unsigned char *der = NULL;

	f->keygen = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	if (f->keygen == NULL || EVP_PKEY_keygen_init(f->keygen) != 1 ||
	    EVP_PKEY_CTX_set_group_name(f->keygen, "P-256") != 1)
		return ossl_fail("cannot set up EC P-256 key generation");
	f->ec_params_len = i2d_ASN1_OBJECT(OBJ_nid2obj(NID_X9_62_prime256v1), &der);
	if (f->ec_params_len <= 0)
		return ossl_fail("cannot encode the P-256 curve OID");
	f->ec_params = der;
	return 0;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
	    {"module", required_argument, NULL, 'm'},  {"token", required_argument, NULL, 't'},
	    {"pin-file", required_argument, NULL, 'p'}, {"count", required_argument, NULL, 'n'},
	    {"prefix", required_argument, NULL, 'P'},  {"start", required_argument, NULL, 's'},
	    {"ca-cert", required_argument, NULL, 'c'}, {"ca-key", required_argument, NULL, 'k'},
	    {"days", required_argument, NULL, 'd'},    {"seconds", required_argument, NULL, 'S'},
	    {"keys-only", no_argument, NULL, 'K'},     {"help", no_argument, NULL, 'h'},
	    {"time", no_argument, NULL, 'T'},
	    {NULL, 0, NULL, 0},
	};
	int c, have_count = 0, have_days = 0, have_seconds = 0;

	o->prefix = "fill";
	o->start = 1;
	o->days = 365;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'm': o->module = optarg; break;
		case 't': o->token = optarg; break;
		case 'p': o->pin_file = optarg; break;
		case 'P': o->prefix = optarg; break;
		case 'c': o->ca_cert = optarg; break;
		case 'k': o->ca_key = optarg; break;
		case 'K': o->keys_only = 1; break;
		case 'T': o->time_parts = 1; break;
		case 'n':
			if (parse_ulong("count", optarg, &o->count) != 0)
				return -1;
			have_count = 1;
			break;
		case 's':
			if (parse_ulong("start", optarg, &o->start) != 0)
				return -1;
			break;
		case 'd':
			if (parse_ulong("days", optarg, &o->days) != 0)
				return -1;
			have_days = 1;
			break;
		case 'S':
			if (parse_ulong("seconds", optarg, &o->seconds) != 0)
				return -1;
			have_seconds = 1;
			break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (optind != argc || o->module == NULL || o->token == NULL || o->pin_file == NULL ||
	    !have_count) {
		usage(stderr);
		return -1;
	}
	if ((o->ca_cert == NULL) != (o->ca_key == NULL)) {
		fprintf(stderr, "tokfill: --ca-cert and --ca-key go together\n");
		return -1;
	}
	if (have_days && have_seconds) {
		fprintf(stderr, "tokfill: --days or --seconds, not both\n");
		return -1;
	}
	if (o->days < 1 || o->days > 36500 || (have_seconds && o->seconds < 1) ||
	    o->seconds > 100UL * 365 * 86400) {
		fprintf(stderr, "tokfill: --days 1..36500 or --seconds 1..3153600000\n");
		return -1;
	}
	/* Labels stay unique: P-i must fit the label buffer of fill_one. */
	if (strlen(o->prefix) > PREFIX_MAX) {
		fprintf(stderr, "tokfill: --prefix has at most %d bytes\n", PREFIX_MAX);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = {0};
	struct filler f = {0};
	CK_C_GetFunctionList get_list;
	CK_SLOT_ID slot = 0;
	CK_RV rv;
	char pin[PIN_MAX];
	void *lib = NULL;
	int initialized = 0, in_session = 0, logged_in = 0, ret = 1;
	unsigned long i, done = 0;
	struct timespec t0, t1;

	if (parse_args(argc, argv, &o) != 0)
		return 1;
	f.o = &o;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (prepare_keygen(&f) != 0 || (o.ca_cert != NULL && load_ca(&f) != 0))
		goto out;
	if ((lib = dlopen(o.module, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		fprintf(stderr, "tokfill: cannot load the module %s: %s\n", o.module, dlerror());
		goto out;
	}
	*(void **)&get_list = dlsym(lib, "C_GetFunctionList");
	if (get_list == NULL) {
		fprintf(stderr, "tokfill: %s has no C_GetFunctionList\n", o.module);
		goto out;
	}
	if ((rv = get_list(&f.p)) != CKR_OK) {
		ckr_fail("C_GetFunctionList", rv);
		goto out;
	}
	if ((rv = f.p->C_Initialize(NULL)) != CKR_OK) {
		ckr_fail("C_Initialize", rv);
		goto out;
	}
	initialized = 1;
	if (find_slot(f.p, o.token, &slot) != 0)
		goto out;
	if ((rv = f.p->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL,
				     &f.s)) != CKR_OK) {
		ckr_fail("C_OpenSession", rv);
		goto out;
	}
	in_session = 1;
	if (pinfile_read("tokfill", o.pin_file, pin, sizeof(pin)) != 0)
		goto out;
	rv = f.p->C_Login(f.s, CKU_USER, (CK_UTF8CHAR *)pin, strlen(pin));
	OPENSSL_cleanse(pin, sizeof(pin));
	if (rv != CKR_OK) {
		ckr_fail("C_Login", rv);
		goto out;
	}
	logged_in = 1;
	if (o.time_parts) {
		ret = o.count > 0 && time_parts(&f, o.count) == 0 ? 0 : 1;
		done = ret == 0 ? o.count : 0;
		goto out;
	}
	for (i = 0; i < o.count; i++, done++)
		if (fill_one(&f, o.start + i) != 0) {
			fprintf(stderr, "tokfill: stopped at %s-%lu after %lu complete enrollments\n",
				o.prefix, o.start + i, done);
			goto out;
		}
	ret = 0;
out:
	OPENSSL_cleanse(pin, sizeof(pin));
	if (logged_in)
		f.p->C_Logout(f.s);
	if (in_session)
		f.p->C_CloseSession(f.s);
	if (initialized)
		f.p->C_Finalize(NULL);
	if (lib != NULL)
		dlclose(lib);
	if (ret == 0) {
		clock_gettime(CLOCK_MONOTONIC, &t1);
		fprintf(stderr, "made %lu key pairs and %lu certificates on token '%s' in %.2f s\n",
			done, o.keys_only ? 0 : done, o.token,
			(double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	}
	X509_free(f.ca);
	EVP_PKEY_free(f.ca_key);
	EVP_PKEY_CTX_free(f.keygen);
	OPENSSL_free(f.ec_params);
	return ret;
}
