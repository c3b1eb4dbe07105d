/* Fixtures of the cmpc unit tests: tests/unit/cmpc-fixture.h. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "tests/unit/cmpc-fixture.h"
#include "tests/unit/tap.h"

#define FILE_MAX (1 << 20)

const char *cfx_ref, *cfx_secret;
const char cfx_wrong_secret[] = "wr0ng-Secret-ABC";
int cfx_accepted;

void cfx_pbm_from_env(void)
{
	cfx_ref = tap_env("T_REF");
	cfx_secret = tap_env("T_SECRET");
}

cmpc_ctx *cfx_ctx_new(const char *server, const char *secret, const char *anchors)
{
	cmpc_ctx *ctx = cmpc_new();
	int fail = 0;

	if (ctx == NULL || cfx_ref == NULL)
		abort();
	cmpc_set_log_cb(ctx, tap_collect, NULL);
	cmpc_set_timeouts(ctx, 5, 20, 60);
	fail |= cmpc_set1_server(ctx, server) != CMPC_OK;
	fail |= cmpc_set1_pbm(ctx, (const unsigned char *)cfx_ref, strlen(cfx_ref),
			      (const unsigned char *)secret, strlen(secret)) != CMPC_OK;
	if (anchors != NULL)
		fail |= cmpc_load_trusted(ctx, anchors) != CMPC_OK;
	if (fail) {
		fprintf(stderr, "setting up the context failed: %s\n", cmpc_errmsg(ctx));
		abort();
	}
	return ctx;
}

int cfx_contains(const char *hay, const char *needle)
{
	return strstr(hay, needle) != NULL;
}

int cfx_msg_ok(cmpc_ctx *ctx, const char *must)
{
	const char *m = cmpc_errmsg(ctx);

	if (getenv("T_VERBOSE") != NULL)
		fprintf(stderr, "errmsg: %s\n", m);
	return m[0] != '\0' && (cfx_secret == NULL || !cfx_contains(m, cfx_secret)) &&
	       !cfx_contains(m, cfx_wrong_secret) && (must == NULL || cfx_contains(m, must));
}

int cfx_count_accept(X509 *cert, STACK_OF(X509) *cacerts, void *arg, char *why, size_t len)
{
	(void)cert;
	(void)cacerts;
	(void)arg;
	(void)why;
	(void)len;
	cfx_accepted++;
	return 0;
}

EVP_PKEY *cfx_ec_key(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");

	if (k == NULL)
		abort();
	return k;
}

X509_NAME *cfx_cn_name(const char *cn)
{
	X509_NAME *n = X509_NAME_new();

	if (n == NULL || !X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
						     (const unsigned char *)cn, -1, -1, 0))
		abort();
	return n;
}

GENERAL_NAMES *cfx_dns_sans(const char *dns)
{
	GENERAL_NAMES *sans = GENERAL_NAMES_new();
	GENERAL_NAME *gn = GENERAL_NAME_new();
	ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();

	if (sans == NULL || gn == NULL || ia5 == NULL || !ASN1_STRING_set(ia5, dns, -1))
		abort();
	GENERAL_NAME_set0_value(gn, GEN_DNS, ia5);
	if (!sk_GENERAL_NAME_push(sans, gn))
		abort();
	return sans;
}

X509 *cfx_self_signed(EVP_PKEY *key, const char *cn)
{
	X509 *x = X509_new();
	X509_NAME *n = cfx_cn_name(cn);

	/* valid a minute back: a clock step between issue and use must not matter */
	if (x == NULL || !X509_set_version(x, X509_VERSION_3) ||
	    !ASN1_INTEGER_set(X509_get_serialNumber(x), 1) ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -60) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), 86400) == NULL || !X509_set_subject_name(x, n) ||
	    !X509_set_issuer_name(x, n) || !X509_set_pubkey(x, key) ||
	    X509_sign(x, key, EVP_sha256()) == 0)
		abort();
	X509_NAME_free(n);
	return x;
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *e;

	X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
	if ((e = X509V3_EXT_conf_nid(NULL, &v3, nid, value)) == NULL || !X509_add_ext(x, e, -1))
		abort();
	X509_EXTENSION_free(e);
}

X509 *cfx_issue(const X509_NAME *subj, EVP_PKEY *key, X509 *ca, EVP_PKEY *ca_key, long serial)
{
	X509 *x = X509_new();

	if (x == NULL || !X509_set_version(x, X509_VERSION_3) ||
	    !ASN1_INTEGER_set(X509_get_serialNumber(x), serial) ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -60) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), 86400) == NULL ||
	    !X509_set_subject_name(x, subj) ||
	    !X509_set_issuer_name(x, ca != NULL ? X509_get_subject_name(ca) : subj) ||
	    !X509_set_pubkey(x, key))
		abort();
	if (ca == NULL) {
		add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE");
		add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
	} else {
		add_ext(x, ca, NID_key_usage, "critical,digitalSignature");
	}
	if (X509_sign(x, ca_key, EVP_sha256()) == 0)
		abort();
	return x;
}

X509 *cfx_read_cert(const char *file)
{
	FILE *f = fopen(file, "r");
	X509 *x;

	if (f == NULL)
		return NULL;
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	return x;
}

EVP_PKEY *cfx_read_key(const char *file)
{
	FILE *f = fopen(file, "r");
	EVP_PKEY *k;

	if (f == NULL)
		return NULL;
	k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	return k;
}

char *cfx_read_file(const char *file)
{
	FILE *f = fopen(file, "r");
	char *buf;
	size_t n;

	if (f == NULL)
		return NULL;
	if ((buf = malloc(FILE_MAX)) == NULL) {
		fclose(f);
		return NULL;
	}
	n = fread(buf, 1, FILE_MAX - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static int quiet(const char *func, const char *file, int line, OSSL_CMP_severity level,
		 const char *msg)
{
	(void)func;
	(void)file;
	(void)line;
	(void)level;
	(void)msg;
	return 1;
}

OSSL_CMP_SRV_CTX *cfx_srv_new(const char *ref, const char *secret, const X509_NAME *subject,
			      OSSL_CMP_SRV_cert_request_cb_t cert_request, OSSL_CMP_SRV_rr_cb_t rr,
			      OSSL_CMP_SRV_genm_cb_t genm, OSSL_CMP_SRV_certConf_cb_t cert_conf)
{
	OSSL_CMP_SRV_CTX *s = OSSL_CMP_SRV_CTX_new(NULL, NULL);
	OSSL_CMP_CTX *c;

	if (s == NULL ||
	    !OSSL_CMP_SRV_CTX_init(s, NULL, cert_request, rr, genm, NULL, cert_conf, NULL) ||
	    (c = OSSL_CMP_SRV_CTX_get0_cmp_ctx(s)) == NULL ||
	    !OSSL_CMP_CTX_set1_referenceValue(c, (const unsigned char *)ref, (int)strlen(ref)) ||
	    !OSSL_CMP_CTX_set1_secretValue(c, (const unsigned char *)secret, (int)strlen(secret)) ||
	    !OSSL_CMP_CTX_set1_subjectName(c, subject) ||
	    !OSSL_CMP_CTX_set_option(c, OSSL_CMP_OPT_MAC_ALGNID, NID_hmacWithSHA256) ||
	    !OSSL_CMP_CTX_set_log_cb(c, quiet)) {
		OSSL_CMP_SRV_CTX_free(s);
		return NULL;
	}
	return s;
}

unsigned char *cfx_srv_answer(OSSL_CMP_SRV_CTX *srv, const unsigned char *req, size_t len,
			      int *ret_len)
{
	const unsigned char *p = req;
	OSSL_CMP_MSG *m = NULL, *rsp = NULL;
	unsigned char *der = NULL;
	int n = 0;

	if (len <= 0x7fffffffUL && (m = d2i_OSSL_CMP_MSG(NULL, &p, (long)len)) != NULL &&
	    (rsp = OSSL_CMP_SRV_process_request(srv, m)) != NULL)
		n = i2d_OSSL_CMP_MSG(rsp, &der);
	OSSL_CMP_MSG_free(m);
	OSSL_CMP_MSG_free(rsp);
	ERR_clear_error();
	if (n <= 0) {
		OPENSSL_free(der);
		return NULL;
	}
	*ret_len = n;
	return der;
}
