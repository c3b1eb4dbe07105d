/*
 * cmpc rr and genm against real peers: the project's test CA (started by
 * test-cmpc-genm.sh, URL and directory in T_CA_*), and a fixture CMP
 * server forked from this program on OpenSSL's generic server
 * (OSSL_CMP_SRV_CTX), which answers genm with crafted values: a valid and
 * a forged root key update, templates, CRLs, absent and missing values.
 * Prints TAP; exits 1 if a test failed, 77 if run without the script.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/cmp.h>
#include <openssl/crmf.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cmp/cmpc.h"
#include "tests/common/cmp-asn1.h"
#include "tests/unit/cmpc-fixture.h"
#include "tests/unit/tap.h"

/* ---- the certificates and CRLs the fixture serves ------------------------ */

/* A CA certificate for subject/pub, issued under issuer_cn with sign_key. */
static X509 *ca_cert(const char *subject_cn, EVP_PKEY *pub, const char *issuer_cn,
		     EVP_PKEY *sign_key, long serial)
{
	X509 *x = X509_new();
	X509_NAME *s = cfx_cn_name(subject_cn), *i = cfx_cn_name(issuer_cn);
	X509_EXTENSION *bc;
	X509V3_CTX v3;

	if (x == NULL || !X509_set_version(x, X509_VERSION_3) ||
	    !ASN1_INTEGER_set(X509_get_serialNumber(x), serial) || !X509_set_subject_name(x, s) ||
	    !X509_set_issuer_name(x, i) || X509_gmtime_adj(X509_getm_notBefore(x), -60) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), 86400) == NULL || !X509_set_pubkey(x, pub))
		abort();
	X509V3_set_ctx(&v3, NULL, x, NULL, NULL, 0);
	if ((bc = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "critical,CA:TRUE")) ==
		NULL ||
	    !X509_add_ext(x, bc, -1) || X509_sign(x, sign_key, EVP_sha256()) <= 0)
		abort();
	X509_EXTENSION_free(bc);
	X509_NAME_free(s);
	X509_NAME_free(i);
	return x;
}

static X509_CRL *make_crl(const char *issuer_cn, EVP_PKEY *key, long revoked_serial)
{
	X509_CRL *crl = X509_CRL_new();
	X509_NAME *n = cfx_cn_name(issuer_cn);
	X509_REVOKED *r = X509_REVOKED_new();
	ASN1_TIME *t = ASN1_TIME_adj(NULL, time(NULL), 0, -60);
	ASN1_TIME *nu = ASN1_TIME_adj(NULL, time(NULL), 1, 0);
	ASN1_INTEGER *sn = ASN1_INTEGER_new();

	if (crl == NULL || r == NULL || t == NULL || nu == NULL || sn == NULL ||
	    !X509_CRL_set_version(crl, X509_CRL_VERSION_2) || !X509_CRL_set_issuer_name(crl, n) ||
	    !X509_CRL_set1_lastUpdate(crl, t) || !X509_CRL_set1_nextUpdate(crl, nu) ||
	    !ASN1_INTEGER_set(sn, revoked_serial) || !X509_REVOKED_set_serialNumber(r, sn) ||
	    !X509_REVOKED_set_revocationDate(r, t) || !X509_CRL_add0_revoked(crl, r) ||
	    X509_CRL_sign(crl, key, EVP_sha256()) <= 0)
		abort();
	X509_NAME_free(n);
	ASN1_TIME_free(t);
	ASN1_TIME_free(nu);
	ASN1_INTEGER_free(sn);
	return crl;
}

/* ---- the fixture server ----------------------------------------------------- */

/* What the fixture answers with; made before the fork. */
static struct {
	EVP_PKEY *r1_key, *r2_key, *x_key, *y_key;
	X509 *r1, *r2, *r2_by_r1, *r1_by_r2, *r2_by_x, *y_by_r1, *r2_by_r1_self;
	X509_CRL *crl_a, *crl_b;
	STACK_OF(X509_CRL) *crls;
	char path[128];
	const char *dump_file; /* the fixture writes what it received here */
} fx;

static ASN1_TYPE *pack(const ASN1_ITEM *it, void *v)
{
	ASN1_TYPE *t = NULL;

	if (ASN1_TYPE_pack_sequence(it, v, &t) == NULL)
		abort();
	return t;
}

static OSSL_CMP_ITAV *itav(const char *oid, ASN1_TYPE *value)
{
	OSSL_CMP_ITAV *i = OSSL_CMP_ITAV_create(OBJ_txt2obj(oid, 1), value);

	if (i == NULL)
		abort();
	return i;
}

static ASN1_TYPE *rku(X509 *nwn, X509 *nwo, X509 *own)
{
	TCMP_ROOTCAKEYUPDATE r = {nwn, nwo, own};

	return pack(ASN1_ITEM_rptr(TCMP_ROOTCAKEYUPDATE), &r);
}

static TCMP_ATAV *atav(const char *oid, ASN1_TYPE *value)
{
	TCMP_ATAV *a = (TCMP_ATAV *)ASN1_item_new(ASN1_ITEM_rptr(TCMP_ATAV));

	ASN1_OBJECT_free(a->type);
	ASN1_TYPE_free(a->value);
	a->type = OBJ_txt2obj(oid, 1);
	a->value = value;
	return a;
}

static ASN1_TYPE *alg_value(int nid, int curve_nid)
{
	X509_ALGOR *alg = X509_ALGOR_new();
	ASN1_TYPE *t;

	if (alg == NULL)
		abort();
	if (curve_nid != 0)
		X509_ALGOR_set0(alg, OBJ_nid2obj(nid), V_ASN1_OBJECT, OBJ_nid2obj(curve_nid));
	else
		X509_ALGOR_set0(alg, OBJ_nid2obj(nid), V_ASN1_NULL, NULL);
	t = pack(ASN1_ITEM_rptr(X509_ALGOR), alg);
	X509_ALGOR_free(alg);
	return t;
}

static ASN1_TYPE *template_value(int rsa)
{
	TCMP_CERTREQTEMPLATE *crt =
		(TCMP_CERTREQTEMPLATE *)ASN1_item_new(ASN1_ITEM_rptr(TCMP_CERTREQTEMPLATE));
	OSSL_CRMF_MSG *m = OSSL_CRMF_MSG_new();
	X509_NAME *subj = X509_NAME_new();
	X509_EXTENSIONS *exts = NULL;
	ASN1_BIT_STRING *ku = ASN1_BIT_STRING_new();
	ASN1_INTEGER *bits;
	ASN1_TYPE *v, *kl;

	if (crt == NULL || m == NULL || subj == NULL || ku == NULL ||
	    !X509_NAME_add_entry_by_txt(subj, "O", MBSTRING_ASC, (const unsigned char *)"Example",
					-1, -1, 0) ||
	    !X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_ASC, (const unsigned char *)"template",
					-1, -1, 0) ||
	    !ASN1_BIT_STRING_set_bit(ku, 0, 1) ||
	    X509V3_add1_i2d(&exts, NID_key_usage, ku, 1, X509V3_ADD_DEFAULT) != 1 ||
	    !OSSL_CRMF_CERTTEMPLATE_fill(OSSL_CRMF_MSG_get0_tmpl(m), NULL, subj, NULL, NULL) ||
	    !OSSL_CRMF_MSG_set0_extensions(m, exts))
		abort();
	/* 3.0 sets template extensions only through a CertReqMsg. */
	OSSL_CRMF_CERTTEMPLATE_free(crt->certTemplate);
	crt->certTemplate = (OSSL_CRMF_CERTTEMPLATE *)ASN1_item_dup(
	    ASN1_ITEM_rptr(OSSL_CRMF_CERTTEMPLATE), OSSL_CRMF_MSG_get0_tmpl(m));
	if (crt->certTemplate == NULL || (crt->keySpec = sk_TCMP_ATAV_new_null()) == NULL)
		abort();
	if (rsa) {
		if ((bits = ASN1_INTEGER_new()) == NULL || !ASN1_INTEGER_set(bits, 3072) ||
		    (kl = ASN1_TYPE_new()) == NULL)
			abort();
		ASN1_TYPE_set(kl, V_ASN1_INTEGER, bits);
		sk_TCMP_ATAV_push(crt->keySpec,
			       atav("1.3.6.1.5.5.7.5.1.11", alg_value(NID_rsaEncryption, 0)));
		sk_TCMP_ATAV_push(crt->keySpec, atav("1.3.6.1.5.5.7.5.1.12", kl));
	} else {
		sk_TCMP_ATAV_push(crt->keySpec,
			       atav("1.3.6.1.5.5.7.5.1.11",
				    alg_value(NID_X9_62_id_ecPublicKey, NID_secp384r1)));
	}
	v = pack(ASN1_ITEM_rptr(TCMP_CERTREQTEMPLATE), crt);
	ASN1_item_free((ASN1_VALUE *)crt, ASN1_ITEM_rptr(TCMP_CERTREQTEMPLATE));
	OSSL_CRMF_MSG_free(m);
	X509_NAME_free(subj);
	ASN1_BIT_STRING_free(ku);
	return v;
}

static void crlstatus_free(TCMP_CRLSTATUS *s)
{
	ASN1_item_free((ASN1_VALUE *)s, ASN1_ITEM_rptr(TCMP_CRLSTATUS));
}

/* The issuer names of a crlStatusList as "name;name;" into fx.dump_file. */
static void dump_crl_status_list(const ASN1_TYPE *v)
{
	STACK_OF(TCMP_CRLSTATUS) *l = NULL;
	TCMP_CRLSTATUS *s;
	GENERAL_NAME *gn;
	char line[256];
	FILE *f = fopen(fx.dump_file, "w");
	int i;

	if (f == NULL)
		return;
	if (v == NULL)
		fprintf(f, "absent");
	else if ((l = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(TCMP_CRLSTATUSLIST), v)) == NULL)
		fprintf(f, "undecodable");
	for (i = 0; i < sk_TCMP_CRLSTATUS_num(l); i++) {
		s = sk_TCMP_CRLSTATUS_value(l, i);
		gn =
		    s->source->type == 1 ? sk_GENERAL_NAME_value(s->source->value.issuer, 0) : NULL;
		if (gn != NULL && gn->type == GEN_DIRNAME &&
		    sk_GENERAL_NAME_num(s->source->value.issuer) == 1)
			X509_NAME_oneline(gn->d.directoryName, line, sizeof(line));
		else
			snprintf(line, sizeof(line), "other");
		fprintf(f, "%s%s;", line, s->thisUpdate != NULL ? "+thisUpdate" : "");
	}
	sk_TCMP_CRLSTATUS_pop_free(l, crlstatus_free);
	fclose(f);
}

static int push(STACK_OF(OSSL_CMP_ITAV) *out, const char *oid, ASN1_TYPE *value)
{
	return sk_OSSL_CMP_ITAV_push(out, itav(oid, value)) > 0;
}

#define IT_CA_CERTS "1.3.6.1.5.5.7.4.17"
#define IT_RKU "1.3.6.1.5.5.7.4.18"
#define IT_TEMPLATE "1.3.6.1.5.5.7.4.19"
#define IT_ROOT_CERT "1.3.6.1.5.5.7.4.20"
#define IT_CRL_STATUS "1.3.6.1.5.5.7.4.22"
#define IT_CRLS "1.3.6.1.5.5.7.4.23"

/* Answers by the URL path; a genm with more or less than one ITAV fails. */
static int fx_genm(OSSL_CMP_SRV_CTX *srv_ctx, const OSSL_CMP_MSG *req,
		   const STACK_OF(OSSL_CMP_ITAV) *in, STACK_OF(OSSL_CMP_ITAV) **out)
{
	const char *p = fx.path;
	OSSL_CMP_ITAV *first;
	char oid[64];
	STACK_OF(X509) *certs;

	(void)srv_ctx;
	(void)req;
	if (sk_OSSL_CMP_ITAV_num(in) != 1)
		return 0;
	first = sk_OSSL_CMP_ITAV_value(in, 0);
	OBJ_obj2txt(oid, sizeof(oid), OSSL_CMP_ITAV_get0_type(first), 1);
	if ((*out = sk_OSSL_CMP_ITAV_new_null()) == NULL)
		return 0;
	/* Every answer carries an ITAV the client does not know, to be ignored. */
	if (!push(*out, "1.3.6.1.4.1.99999.1", NULL))
		return 0;
	if (strcmp(p, "/missing") == 0)
		return 1;
	if (strcmp(oid, IT_ROOT_CERT) == 0) {
		X509 *old = NULL;
		ASN1_TYPE *v = OSSL_CMP_ITAV_get0_value(first);

		/* The request must carry the old root. */
		if (v == NULL ||
		    (old = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(X509), v)) == NULL ||
		    X509_cmp(old, fx.r1) != 0) {
			X509_free(old);
			return 0;
		}
		X509_free(old);
		if (strcmp(p, "/root-valid") == 0)
			return push(*out, IT_RKU, rku(fx.r2, fx.r2_by_r1, fx.r1_by_r2));
		if (strcmp(p, "/root-forged") == 0)
			return push(*out, IT_RKU, rku(fx.r2, fx.r2_by_x, NULL));
		if (strcmp(p, "/root-mismatch") == 0)
			return push(*out, IT_RKU, rku(fx.r2, fx.y_by_r1, NULL));
		if (strcmp(p, "/root-notself") == 0)
			return push(*out, IT_RKU, rku(fx.r2_by_r1_self, fx.r2_by_r1, NULL));
		if (strcmp(p, "/root-nolink") == 0)
			return push(*out, IT_RKU, rku(fx.r2, NULL, NULL));
		if (strcmp(p, "/root-garbage") == 0) /* a SEQUENCE OF CertificateList */
			return push(*out, IT_RKU, pack(ASN1_ITEM_rptr(TCMP_CRLS), fx.crls));
		return push(*out, IT_RKU, NULL); /* /root-absent */
	}
	if (strcmp(oid, IT_TEMPLATE) == 0) {
		if (OSSL_CMP_ITAV_get0_value(first) != NULL)
			return 0;
		if (strcmp(p, "/template-ec") == 0)
			return push(*out, IT_TEMPLATE, template_value(0));
		if (strcmp(p, "/template-rsa") == 0)
			return push(*out, IT_TEMPLATE, template_value(1));
		if (strcmp(p, "/template-bad") == 0) {
			ASN1_TYPE *t = ASN1_TYPE_new();

			ASN1_TYPE_set(t, V_ASN1_NULL, NULL);
			return push(*out, IT_TEMPLATE, t);
		}
		return push(*out, IT_TEMPLATE, NULL);
	}
	if (strcmp(oid, IT_CRL_STATUS) == 0) {
		dump_crl_status_list(OSSL_CMP_ITAV_get0_value(first));
		if (strcmp(p, "/crls") != 0)
			return push(*out, IT_CRLS, NULL);
		return push(*out, IT_CRLS, pack(ASN1_ITEM_rptr(TCMP_CRLS), fx.crls));
	}
	if (strcmp(oid, IT_CA_CERTS) == 0) {
		if (OSSL_CMP_ITAV_get0_value(first) != NULL)
			return 0;
		if (strcmp(p, "/cacerts") != 0)
			return push(*out, IT_CA_CERTS, NULL);
		if ((certs = sk_X509_new_null()) == NULL || !sk_X509_push(certs, fx.r1) ||
		    !sk_X509_push(certs, fx.r2))
			abort();
		push(*out, IT_CA_CERTS, pack(ASN1_ITEM_rptr(TCMP_CACERTS), certs));
		sk_X509_free(certs);
		return 1;
	}
	return 1;
}

/* One HTTP request per connection: path into fx.path, body into *ret_body. */
static int read_request(int fd, unsigned char **ret_body, size_t *ret_len)
{
	static char buf[1 << 16];
	size_t n = 0, hlen, clen;
	ssize_t r;
	char *end, *cl, *sp;

	for (;;) {
		if (n >= sizeof(buf) - 1)
			return -1;
		if ((r = read(fd, buf + n, sizeof(buf) - 1 - n)) <= 0)
			return -1;
		n += (size_t)r;
		buf[n] = '\0';
		if ((end = strstr(buf, "\r\n\r\n")) != NULL)
			break;
	}
	hlen = (size_t)(end - buf) + 4;
	if ((cl = strstr(buf, "Content-Length:")) == NULL &&
	    (cl = strstr(buf, "content-length:")) == NULL)
		return -1;
	clen = strtoul(cl + 15, NULL, 10);
	if (clen == 0 || hlen + clen > sizeof(buf) - 1)
		return -1;
	while (n < hlen + clen) {
		if ((r = read(fd, buf + n, hlen + clen - n)) <= 0)
			return -1;
		n += (size_t)r;
	}
	if (strncmp(buf, "POST ", 5) != 0 || (sp = strchr(buf + 5, ' ')) == NULL ||
	    (size_t)(sp - buf - 5) >= sizeof(fx.path))
		return -1;
	memcpy(fx.path, buf + 5, (size_t)(sp - buf - 5));
	fx.path[sp - buf - 5] = '\0';
	*ret_body = (unsigned char *)buf + hlen;
	*ret_len = clen;
	return 0;
}

static void fx_serve(int lfd)
{
	/* Its refusals (wrong secret) are expected: its log stays quiet. */
	OSSL_CMP_SRV_CTX *srv = cfx_srv_new(cfx_ref, cfx_secret, X509_get_subject_name(fx.r1),
					    NULL, NULL, fx_genm, NULL);
	unsigned char *body, *der;
	char hdr[160];
	size_t len;
	int fd, dlen = 0, hl;
	struct timeval tv = {5, 0};

	if (srv == NULL)
		_exit(3);
	for (;;) {
		if ((fd = accept(lfd, NULL, NULL)) < 0) {
			if (errno == EINTR)
				continue;
			_exit(4);
		}
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		der = NULL;
		if (read_request(fd, &body, &len) == 0)
			der = cfx_srv_answer(srv, body, len, &dlen);
		if (der != NULL) {
			hl = snprintf(hdr, sizeof(hdr),
				      "HTTP/1.1 200 OK\r\nContent-Type: application/pkixcmp\r\n"
				      "Content-Length: %d\r\nConnection: close\r\n\r\n",
				      dlen);
			if (write(fd, hdr, (size_t)hl) != hl ||
			    write(fd, der, (size_t)dlen) != dlen)
				_exit(5);
		} else {
			hl = snprintf(hdr, sizeof(hdr),
				      "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
				      "Connection: close\r\n\r\n");
			if (write(fd, hdr, (size_t)hl) != hl)
				_exit(5);
		}
		OPENSSL_free(der);
		close(fd);
	}
}

static pid_t fx_start(int *ret_port)
{
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	pid_t pid;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(lfd, 8) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen) != 0)
		abort();
	*ret_port = ntohs(a.sin_port);
	fflush(stdout);
	if ((pid = fork()) < 0)
		abort();
	if (pid == 0) {
		/* Never outlive the test. */
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
		alarm(300);
		fx_serve(lfd);
	}
	close(lfd);
	return pid;
}

static void fx_make(void)
{
	fx.r1_key = cfx_ec_key();
	fx.r2_key = cfx_ec_key();
	fx.x_key = cfx_ec_key();
	fx.y_key = cfx_ec_key();
	fx.r1 = ca_cert("Fixture Root", fx.r1_key, "Fixture Root", fx.r1_key, 1);
	fx.r2 = ca_cert("Fixture Root", fx.r2_key, "Fixture Root", fx.r2_key, 2);
	fx.r2_by_r1 = ca_cert("Fixture Root", fx.r2_key, "Fixture Root", fx.r1_key, 3);
	fx.r1_by_r2 = ca_cert("Fixture Root", fx.r1_key, "Fixture Root", fx.r2_key, 4);
	fx.r2_by_x = ca_cert("Fixture Root", fx.r2_key, "Fixture Root", fx.x_key, 5);
	fx.y_by_r1 = ca_cert("Fixture Root", fx.y_key, "Fixture Root", fx.r1_key, 6);
	fx.r2_by_r1_self = fx.r2_by_r1; /* newWithNew not signed by its own key */
	fx.crl_a = make_crl("Fixture Root", fx.r1_key, 17);
	fx.crl_b = make_crl("Fixture Issuing CA", fx.x_key, 18);
	if ((fx.crls = sk_X509_CRL_new_null()) == NULL || !sk_X509_CRL_push(fx.crls, fx.crl_a) ||
	    !sk_X509_CRL_push(fx.crls, fx.crl_b))
		abort();
}

/* ---- tests against the fixture ------------------------------------------------ */

static char *fx_url(int port, const char *path)
{
	static char buf[4][256];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "http://127.0.0.1:%d%s", port, path);
	return buf[i];
}

static void root_update(int port, const char *path, const char *name, cmpc_rv want, X509 *want_root,
			const char *must)
{
	cmpc_ctx *ctx = cfx_ctx_new(fx_url(port, path), cfx_secret, NULL);
	X509 *sentinel = (X509 *)&tap_ntest, *nr = sentinel, *nwo = sentinel;
	cmpc_rv rv = cmpc_genm_root_update(ctx, fx.r1, &nr, &nwo);
	int good = rv == want;

	if (want == CMPC_OK && want_root != NULL)
		good = good && nr != sentinel && nr != NULL && X509_cmp(nr, want_root) == 0 &&
		       nwo != NULL && nwo != sentinel && X509_cmp(nwo, fx.r2_by_r1) == 0;
	else if (want == CMPC_OK)
		good = good && nr == NULL && nwo == NULL;
	else
		good = good && nr == sentinel && nwo == sentinel && cfx_msg_ok(ctx, must);
	tap_ok(good, name, "rv %d (%s); message: %s", rv, cmpc_strerror(rv), cmpc_errmsg(ctx));
	if (nr != sentinel)
		X509_free(nr);
	if (nwo != sentinel)
		X509_free(nwo);
	cmpc_free(ctx);
}

static void fixture_tests(const char *dir, const char *anchor)
{
	cmpc_ctx *ctx;
	cmpc_template t;
	STACK_OF(X509) *certs = NULL, *in;
	STACK_OF(X509_CRL) *crls = NULL;
	char dump_file[512], *d;
	const X509_EXTENSION *e;
	int port, status;
	pid_t pid;
	cmpc_rv rv;

	snprintf(dump_file, sizeof(dump_file), "%s/fixture-crl-request.txt", dir);
	fx.dump_file = dump_file;
	fx_make();
	pid = fx_start(&port);

	root_update(port, "/root-valid", "/genm/root-update/valid", CMPC_OK, fx.r2, NULL);
	root_update(port, "/root-forged", "/genm/root-update/forged-newWithOld", CMPC_ERR_PROTOCOL,
		    NULL, "newWithOld does not verify with the old root");
	root_update(port, "/root-mismatch", "/genm/root-update/key-mismatch", CMPC_ERR_PROTOCOL,
		    NULL, "public key of newWithNew");
	root_update(port, "/root-notself", "/genm/root-update/newWithNew-not-self-signed",
		    CMPC_ERR_PROTOCOL, NULL, "not self-signed");
	root_update(port, "/root-nolink", "/genm/root-update/no-newWithOld", CMPC_ERR_PROTOCOL,
		    NULL, "no newWithOld");
	root_update(port, "/root-garbage", "/genm/root-update/malformed", CMPC_ERR_PROTOCOL, NULL,
		    "RootCaKeyUpdateContent");
	root_update(port, "/root-absent", "/genm/root-update/absent", CMPC_OK, NULL, NULL);
	root_update(port, "/missing", "/genm/root-update/itav-missing", CMPC_OK, NULL, NULL);
	tap_ok(cfx_contains(tap_log, "ignoring an ITAV of type 1.3.6.1.4.1.99999.1"),
	       "/genm/unknown-itav-logged", "no debug line for the unknown ITAV");

	/* Several exchanges on one context: the genm ITAVs must not pile up. */
	ctx = cfx_ctx_new(fx_url(port, "/template-ec"), cfx_secret, NULL);
	memset(&t, 0, sizeof(t));
	rv = cmpc_genm_cert_template(ctx, &t);
	e = t.extensions != NULL ? sk_X509_EXTENSION_value(t.extensions, 0) : NULL;
	tap_ok(rv == CMPC_OK && t.key_alg == 1 && t.key_bits == 384 && t.subject != NULL &&
	       X509_NAME_entry_count(t.subject) == 2 && sk_X509_EXTENSION_num(t.extensions) == 1 &&
	       e != NULL &&
	       OBJ_obj2nid(X509_EXTENSION_get_object((X509_EXTENSION *)e)) == NID_key_usage,
	   "/genm/template/ec-p384", "rv %d alg %d bits %d; %s", rv, t.key_alg, t.key_bits,
	   cmpc_errmsg(ctx));
	cmpc_template_clear(&t);
	tap_ok(t.subject == NULL && t.extensions == NULL && t.key_alg == 0, "/genm/template/clear",
	   "not cleared");
	cmpc_template_clear(NULL);
	rv = cmpc_genm_cert_template(ctx, &t);
	tap_ok(rv == CMPC_OK && t.key_alg == 1, "/genm/template/same-context-again", "rv %d: %s", rv,
	   cmpc_errmsg(ctx));
	cmpc_template_clear(&t);
	cmpc_free(ctx);

	ctx = cfx_ctx_new(fx_url(port, "/template-rsa"), cfx_secret, NULL);
	rv = cmpc_genm_cert_template(ctx, &t);
	tap_ok(rv == CMPC_OK && t.key_alg == 2 && t.key_bits == 3072, "/genm/template/rsa-3072",
	   "rv %d alg %d bits %d; %s", rv, t.key_alg, t.key_bits, cmpc_errmsg(ctx));
	cmpc_template_clear(&t);
	cmpc_free(ctx);

	ctx = cfx_ctx_new(fx_url(port, "/template-absent"), cfx_secret, NULL);
	t.key_alg = 99;
	rv = cmpc_genm_cert_template(ctx, &t);
	tap_ok(rv == CMPC_OK && t.key_alg == 0 && t.subject == NULL && t.extensions == NULL,
	   "/genm/template/absent-all-open", "rv %d: %s", rv, cmpc_errmsg(ctx));
	cmpc_free(ctx);

	ctx = cfx_ctx_new(fx_url(port, "/template-bad"), cfx_secret, NULL);
	t.key_alg = 99;
	rv = cmpc_genm_cert_template(ctx, &t);
	tap_ok(rv == CMPC_ERR_PROTOCOL && t.key_alg == 99 &&
		   cfx_msg_ok(ctx, "CertReqTemplateContent"),
	       "/genm/template/malformed", "rv %d: %s", rv, cmpc_errmsg(ctx));
	cmpc_free(ctx);

	/* CRLs: the request names each distinct issuer once. */
	ctx = cfx_ctx_new(fx_url(port, "/crls"), cfx_secret, NULL);
	if ((in = sk_X509_new_null()) == NULL || !sk_X509_push(in, fx.r2_by_x) ||
	    !sk_X509_push(in, fx.y_by_r1) || !sk_X509_push(in, fx.r1))
		abort();
	rv = cmpc_genm_crls(ctx, in, &crls);
	d = cfx_read_file(dump_file);
	tap_ok(rv == CMPC_OK && sk_X509_CRL_num(crls) == 2 &&
	       X509_CRL_cmp(sk_X509_CRL_value(crls, 0), fx.crl_a) == 0 &&
	       X509_CRL_cmp(sk_X509_CRL_value(crls, 1), fx.crl_b) == 0,
	   "/genm/crls/returned", "rv %d, %d CRLs: %s", rv,
	   crls != NULL ? sk_X509_CRL_num(crls) : -1, cmpc_errmsg(ctx));
	tap_ok(d != NULL && strcmp(d, "/CN=Fixture Root;") == 0, "/genm/crls/request-issuer-sources",
	   "the fixture saw: %s", d != NULL ? d : "(nothing)");
	free(d);
	sk_X509_CRL_pop_free(crls, X509_CRL_free);
	crls = NULL;
	sk_X509_free(in);
	cmpc_free(ctx);

	ctx = cfx_ctx_new(fx_url(port, "/crls-absent"), cfx_secret, NULL);
	rv = cmpc_genm_crls(ctx, NULL, &crls);
	tap_ok(rv == CMPC_ERR_CONFIG && crls == NULL && cfx_msg_ok(ctx, "trust anchors"),
	       "/genm/crls/no-certs-no-anchors", "rv %d: %s", rv, cmpc_errmsg(ctx));
	cmpc_free(ctx);

	ctx = cfx_ctx_new(fx_url(port, "/crls-absent"), cfx_secret, anchor);
	rv = cmpc_genm_crls(ctx, NULL, &crls);
	d = cfx_read_file(dump_file);
	tap_ok(rv == CMPC_OK && crls != NULL && sk_X509_CRL_num(crls) == 0 && d != NULL &&
		   cfx_contains(d, "CN=") && !cfx_contains(d, "other"),
	       "/genm/crls/anchors-as-sources-absent-is-none", "rv %d, saw %s: %s", rv,
	       d != NULL ? d : "-", cmpc_errmsg(ctx));
	free(d);
	sk_X509_CRL_pop_free(crls, X509_CRL_free);
	crls = NULL;
	cmpc_free(ctx);

	ctx = cfx_ctx_new(fx_url(port, "/cacerts"), cfx_secret, NULL);
	rv = cmpc_genm_ca_certs(ctx, &certs);
	tap_ok(rv == CMPC_OK && sk_X509_num(certs) == 2 &&
	       X509_cmp(sk_X509_value(certs, 0), fx.r1) == 0,
	   "/genm/cacerts/fixture", "rv %d: %s", rv, cmpc_errmsg(ctx));
	sk_X509_pop_free(certs, X509_free);
	certs = NULL;
	cmpc_free(ctx);

	ctx = cfx_ctx_new(fx_url(port, "/cacerts-absent"), cfx_secret, NULL);
	rv = cmpc_genm_ca_certs(ctx, &certs);
	tap_ok(rv == CMPC_OK && certs != NULL && sk_X509_num(certs) == 0, "/genm/cacerts/absent-none",
	   "rv %d: %s", rv, cmpc_errmsg(ctx));
	sk_X509_pop_free(certs, X509_free);
	certs = NULL;
	/* Same context, other path: nothing of the first genm is sent again. */
	rv = cmpc_set1_server(ctx, fx_url(port, "/missing"));
	rv = rv == CMPC_OK ? cmpc_genm_ca_certs(ctx, &certs) : rv;
	tap_ok(rv == CMPC_OK && certs != NULL && sk_X509_num(certs) == 0,
	   "/genm/cacerts/itav-missing-none", "rv %d: %s", rv, cmpc_errmsg(ctx));
	sk_X509_pop_free(certs, X509_free);
	certs = NULL;
	cmpc_free(ctx);

	/* A genm that failed in transfer leaves nothing behind for the next one
	 * (the fixture refuses a genm with more than one ITAV). */
	ctx = cfx_ctx_new("http://127.0.0.1:1/", cfx_secret, NULL);
	certs = NULL;
	rv = cmpc_genm_ca_certs(ctx, &certs);
	tap_ok(rv == CMPC_ERR_TRANSPORT && certs == NULL && cfx_msg_ok(ctx, "connect"),
	       "/genm/transport-failure", "rv %d: %s", rv, cmpc_errmsg(ctx));
	rv = cmpc_set1_server(ctx, fx_url(port, "/cacerts-absent"));
	rv = rv == CMPC_OK ? cmpc_genm_ca_certs(ctx, &certs) : rv;
	tap_ok(rv == CMPC_OK && certs != NULL && sk_X509_num(certs) == 0,
	   "/genm/after-transport-failure", "rv %d: %s", rv, cmpc_errmsg(ctx));
	sk_X509_pop_free(certs, X509_free);
	certs = NULL;
	cmpc_free(ctx);

	/* A wrong secret: the fixture refuses, the client says so. */
	ctx = cfx_ctx_new(fx_url(port, "/cacerts"), cfx_wrong_secret, NULL);
	certs = (STACK_OF(X509) *)&tap_nfail;
	rv = cmpc_genm_ca_certs(ctx, &certs);
	tap_ok(rv != CMPC_OK && certs == (STACK_OF(X509) *)&tap_nfail && cfx_msg_ok(ctx, "genm") &&
		   !cfx_contains(cmpc_errmsg(ctx), cfx_wrong_secret),
	       "/genm/wrong-secret", "rv %d: %s", rv, cmpc_errmsg(ctx));
	cmpc_free(ctx);

	ctx = cmpc_new();
	(void)cmpc_set1_server(ctx, fx_url(port, "/cacerts"));
	rv = cmpc_genm_ca_certs(ctx, &certs);
	tap_ok(rv == CMPC_ERR_CONFIG && cfx_msg_ok(ctx, "protection"), "/genm/no-protection",
	       "rv %d: %s", rv, cmpc_errmsg(ctx));
	cmpc_free(ctx);

	kill(pid, SIGTERM);
	waitpid(pid, &status, 0);
}

/* ---- tests against the test CA -------------------------------------------------- */

static int ca_log_has(const char *log, const char *a, const char *b)
{
	char *s = cfx_read_file(log), *line, *nl;
	int found = 0;

	for (line = s; !found && line != NULL && *line != '\0'; line = nl != NULL ? nl + 1 : NULL) {
		nl = strchr(line, '\n');
		if (nl != NULL)
			*nl = '\0';
		found = cfx_contains(line, a) && (b == NULL || cfx_contains(line, b));
	}
	free(s);
	return found;
}

static X509 *issue(cmpc_ctx *ctx, EVP_PKEY *key)
{
	X509 *cert = NULL;
	STACK_OF(X509) *cas = NULL;

	if (cmpc_ir(ctx, key, &cert, &cas) != CMPC_OK) {
		fprintf(stderr, "ir failed: %s\n", cmpc_errmsg(ctx));
		return NULL;
	}
	sk_X509_pop_free(cas, X509_free);
	return cert;
}

/* rr and genm protected by a signer (a certificate of this CA), not PBM. */
static void signer_tests(cmpc_ctx *pbm, const char *url, const char *root_pem, X509 *sub,
			 const char *calog)
{
	EVP_PKEY *ka = cfx_ec_key(), *kb = cfx_ec_key();
	X509 *a = issue(pbm, ka), *b = issue(pbm, kb);
	STACK_OF(X509) *chain = sk_X509_new_null(), *certs = NULL;
	cmpc_ctx *ctx = cmpc_new();
	cmpc_rr_status st = (cmpc_rr_status)-1;
	char want[128], *hex;
	BIGNUM *bn;
	cmpc_rv rv;

	if (a == NULL || b == NULL || chain == NULL || ctx == NULL || !sk_X509_push(chain, sub))
		abort();
	cmpc_set_log_cb(ctx, tap_collect, NULL);
	cmpc_set_timeouts(ctx, 5, 20, 60);
	if (cmpc_set1_server(ctx, url) != CMPC_OK || cmpc_load_trusted(ctx, root_pem) != CMPC_OK ||
	    cmpc_set1_signer(ctx, a, ka, chain) != CMPC_OK)
		abort();
	bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(b), NULL);
	hex = BN_bn2hex(bn);
	snprintf(want, sizeof(want), "rr: revoked serial %s reason", hex);
	OPENSSL_free(hex);
	BN_free(bn);
	rv = cmpc_rr(ctx, b, 0, &st);
	tap_ok(rv == CMPC_OK && st == CMPC_RR_ACCEPTED && ca_log_has(calog, want, "reason 0"),
	   "/ca/signer/rr-accepted", "rv %d st %d: %s", rv, (int)st, cmpc_errmsg(ctx));
	rv = cmpc_genm_ca_certs(ctx, &certs);
	tap_ok(rv == CMPC_OK && sk_X509_num(certs) == 2, "/ca/signer/genm-cacerts", "rv %d: %s", rv,
	   cmpc_errmsg(ctx));
	sk_X509_pop_free(certs, X509_free);
	sk_X509_free(chain);
	X509_free(a);
	X509_free(b);
	EVP_PKEY_free(ka);
	EVP_PKEY_free(kb);
	cmpc_free(ctx);
}

static void ca_tests(const char *url, const char *cadir, const char *calog)
{
	char root_pem[512], ca_pem[512], want[128];
	cmpc_ctx *ctx;
	EVP_PKEY *key = cfx_ec_key();
	X509 *cert = NULL, *root, *sub, *nr = NULL, *nwo = NULL;
	STACK_OF(X509) *cacerts = NULL, *certs = NULL;
	STACK_OF(X509_CRL) *crls = NULL;
	X509_NAME *subj = cfx_cn_name("genm test");
	cmpc_rr_status st = (cmpc_rr_status)-1;
	cmpc_template t;
	BIGNUM *bn;
	char *hex;
	cmpc_rv rv;

	snprintf(root_pem, sizeof(root_pem), "%s/root.pem", cadir);
	snprintf(ca_pem, sizeof(ca_pem), "%s/ca.pem", cadir);
	root = cfx_read_cert(root_pem);
	sub = cfx_read_cert(ca_pem);
	ctx = cfx_ctx_new(url, cfx_secret, root_pem);
	if (root == NULL || sub == NULL || cmpc_set1_subject(ctx, subj) != CMPC_OK)
		abort();
	rv = cmpc_ir(ctx, key, &cert, &cacerts);
	tap_ok(rv == CMPC_OK && cert != NULL, "/ca/ir-for-rr", "rv %d: %s", rv, cmpc_errmsg(ctx));
	if (cert != NULL) {
		bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
		hex = BN_bn2hex(bn);
		snprintf(want, sizeof(want), "rr: revoked serial %s reason", hex);
		OPENSSL_free(hex);
		BN_free(bn);

		rv = cmpc_rr(ctx, cert, 1, &st);
		tap_ok(rv == CMPC_OK && st == CMPC_RR_ACCEPTED, "/ca/rr/accepted", "rv %d st %d: %s",
		   rv, (int)st, cmpc_errmsg(ctx));
		tap_ok(ca_log_has(calog, want, "reason 1"), "/ca/rr/ca-log-revoked-reason",
		   "CA log lacks '%s ... reason 1'", want);
		st = (cmpc_rr_status)-7;
		rv = cmpc_rr(ctx, cert, 4, &st);
		tap_ok(rv == CMPC_ERR_REJECTED && st == (cmpc_rr_status)-7 &&
			   cfx_msg_ok(ctx, "certRevoked") && cfx_msg_ok(ctx, "already revoked"),
		       "/ca/rr/again-rejected-certRevoked", "rv %d: %s", rv, cmpc_errmsg(ctx));
		rv = cmpc_rr(ctx, cert, 7, &st);
		tap_ok(rv == CMPC_ERR_CONFIG && cfx_msg_ok(ctx, "reason"), "/ca/rr/bad-reason",
		       "rv %d: %s", rv, cmpc_errmsg(ctx));
	}
	/* rr of a certificate the CA never issued */
	rv = cmpc_rr(ctx, fx.r1, -1, &st);
	tap_ok(rv == CMPC_ERR_REJECTED && cfx_msg_ok(ctx, "badCertId"), "/ca/rr/unknown-cert",
	       "rv %d: %s", rv, cmpc_errmsg(ctx));

	rv = cmpc_genm_ca_certs(ctx, &certs);
	tap_ok(rv == CMPC_OK && sk_X509_num(certs) == 2 &&
	       X509_cmp(sk_X509_value(certs, 0), root) == 0 &&
	       X509_cmp(sk_X509_value(certs, 1), sub) == 0,
	   "/ca/genm/cacerts-root-and-issuing", "rv %d, %d certs: %s", rv,
	   certs != NULL ? sk_X509_num(certs) : -1, cmpc_errmsg(ctx));
	sk_X509_pop_free(certs, X509_free);

	/* Root key update: the CA's second root, tied to the current one. */
	{
		char p1[512], p2[512];
		X509 *want_root, *want_link;

		snprintf(p1, sizeof(p1), "%s/newroot.pem", cadir);
		snprintf(p2, sizeof(p2), "%s/newwithold.pem", cadir);
		want_root = cfx_read_cert(p1);
		want_link = cfx_read_cert(p2);
		rv = cmpc_genm_root_update(ctx, root, &nr, &nwo);
		tap_ok(rv == CMPC_OK && want_root != NULL && nr != NULL &&
		       X509_cmp(nr, want_root) == 0 && nwo != NULL && want_link != NULL &&
		       X509_cmp(nwo, want_link) == 0,
		   "/ca/genm/root-update/accepted", "rv %d, new root %s: %s", rv,
		   nr != NULL ? "given" : "none", cmpc_errmsg(ctx));
		X509_free(nr);
		X509_free(nwo);
		nr = nwo = NULL;
		/* Asking with a root that is not the CA's current one: no update. */
		rv = cmpc_genm_root_update(ctx, fx.r1, &nr, &nwo);
		tap_ok(rv == CMPC_OK && nr == NULL && nwo == NULL, "/ca/genm/root-update/not-current",
		   "rv %d: %s", rv, cmpc_errmsg(ctx));
		X509_free(want_root);
		X509_free(want_link);
	}

	memset(&t, 0, sizeof(t));
	rv = cmpc_genm_cert_template(ctx, &t);
	{
		X509_NAME *want_subj = X509_NAME_new();

		if (want_subj == NULL ||
		    !X509_NAME_add_entry_by_txt(want_subj, "CN", MBSTRING_ASC,
						(const unsigned char *)"tmpl", -1, -1, 0) ||
		    !X509_NAME_add_entry_by_txt(want_subj, "O", MBSTRING_ASC,
						(const unsigned char *)"Example", -1, -1, 0))
			abort();
		tap_ok(rv == CMPC_OK && t.key_alg == 1 && t.key_bits == 384 && t.subject != NULL &&
		       X509_NAME_cmp(t.subject, want_subj) == 0,
		   "/ca/genm/template-ec-p384", "rv %d alg %d bits %d subject %s: %s", rv,
		   t.key_alg, t.key_bits, t.subject != NULL ? "set" : "none", cmpc_errmsg(ctx));
		X509_NAME_free(want_subj);
	}
	cmpc_template_clear(&t);

	/* CRLs for the issuer of the revoked certificate: it is listed. */
	if ((certs = sk_X509_new_null()) == NULL || (cert != NULL && !sk_X509_push(certs, cert)))
		abort();
	rv = cmpc_genm_crls(ctx, certs, &crls);
	{
		X509_REVOKED *rev = NULL;

		tap_ok(rv == CMPC_OK && sk_X509_CRL_num(crls) == 1 && cert != NULL &&
		       X509_CRL_get0_by_serial(sk_X509_CRL_value(crls, 0), &rev,
					       X509_get0_serialNumber(cert)) == 1 &&
		       X509_CRL_verify(sk_X509_CRL_value(crls, 0), X509_get0_pubkey(sub)) == 1,
		   "/ca/genm/crls-list-revoked", "rv %d, %d CRLs: %s", rv,
		   crls != NULL ? sk_X509_CRL_num(crls) : -1, cmpc_errmsg(ctx));
	}
	sk_X509_CRL_pop_free(crls, X509_CRL_free);
	sk_X509_free(certs);

	signer_tests(ctx, url, root_pem, sub, calog);

	sk_X509_pop_free(cacerts, X509_free);
	X509_free(cert);
	X509_free(root);
	X509_free(sub);
	X509_NAME_free(subj);
	EVP_PKEY_free(key);
	cmpc_free(ctx);
}

/* The second CA forges its root key update: refused, nothing returned. */
static void ca2_tests(const char *url, const char *cadir)
{
	char root_pem[512];
	X509 *root, *sentinel = (X509 *)&tap_ntest, *nr = sentinel, *nwo = sentinel;
	cmpc_ctx *ctx;
	cmpc_rv rv;

	snprintf(root_pem, sizeof(root_pem), "%s/root.pem", cadir);
	if ((root = cfx_read_cert(root_pem)) == NULL)
		abort();
	ctx = cfx_ctx_new(url, cfx_secret, root_pem);
	rv = cmpc_genm_root_update(ctx, root, &nr, &nwo);
	tap_ok(rv == CMPC_ERR_PROTOCOL && nr == sentinel && nwo == sentinel &&
		   cfx_msg_ok(ctx, "newWithOld does not verify with the old root"),
	       "/ca2/genm/root-update/forged-refused", "rv %d: %s", rv, cmpc_errmsg(ctx));
	X509_free(root);
	cmpc_free(ctx);
}

int main(void)
{
	const char *dir = tap_env("T_DIR");
	const char *cadir;
	char anchor[512];

	tap_plan(41);
	cfx_pbm_from_env();
	if (cmpc_global_init() != 0)
		return 99;
	cadir = tap_env("T_CA_DIR");
	snprintf(anchor, sizeof(anchor), "%s/root.pem", cadir);
	fixture_tests(dir, anchor);
	ca_tests(tap_env("T_CA_URL"), cadir, tap_env("T_CA_LOG"));
	ca2_tests(tap_env("T_CA2_URL"), tap_env("T_CA2_DIR"));
	tap_ok(!cfx_contains(tap_log, cfx_secret), "/log/no-secret", "the log holds the secret");
	cmpc_global_cleanup();
	return tap_done();
}
