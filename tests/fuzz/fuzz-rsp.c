/*
 * Fuzz target: the CMP client after the protection check.  fuzz-cmp feeds
 * responses as they are, and nearly every mutation breaks their MAC, so
 * that little beyond the protection check is reached.  Here the harness
 * plays the CA: each response it sends is a message from the input whose
 * header it completes as a CA would (transactionID and recipNonce of the
 * request just received) and whose protection it computes again (PBM with
 * the shared secret, or a signature with the CA's protection key), so that
 * the mutated body, extraCerts and header fields reach the checks that
 * come after protection: ip/cp/kup with certificates and caPubs,
 * pollRep, rp, genp with its ITAVs, error, pkiConf.
 *
 * The client is the layer as the agent uses it (cmp/cmpc.h) with its real
 * transport: libcurl talks HTTP to a server on 127.0.0.1 inside this
 * process (loopback.c).  Nothing in the layer is switched off.
 *
 * Input: byte 0 the exchange (ir, p10cr, cr, kur, rr, the four genm, resume,
 * abandon; ccr as CCR_BYTE) and client options (O_*), byte 1 flags (F_*: which rewrites to
 * skip, more client options), then the responses, each a 2-byte big-endian length and that many bytes.  A
 * response that does not decode as a PKIMessage is sent as it is.
 *
 * Keys and certificates come from tests/fuzz/data (FUZZ_DATA): the test
 * CA (ca/: its root and protection key) and the client's keys and
 * certificate, as tools/make-rsp-seeds.sh made them with the seeds.
 *
 * Recording (tools/make-rsp-seeds.sh): with FUZZ_RSP_RECORD=URL the server
 * passes each request on to the CA at URL and answers with the CA's
 * response; FUZZ_RSP_OUT=FILE receives the input bytes and the framed
 * responses, a seed.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/cmp.h>
#include <openssl/crmf.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "cmp/cmpc.h"
#include "tests/common/cmp-asn1.h"
#include "tests/fuzz/loopback.h"
#include "tests/fuzz/nosleep.h"

#ifndef FUZZ_DATA
#define FUZZ_DATA "tests/fuzz/data"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- the parts of a PKIMessage the harness rewrites ------------------- */
/* The tests' own templates (tests/common/cmp-asn1.h), not the layer's: the
 * harness plays the CA, and a client bug in cmp/cmpc_asn1.c must not be
 * mirrored by it. */

static TCMP_PKIMESSAGE *msg_decode(const unsigned char *der, size_t len)
{
	const unsigned char *p = der;
	TCMP_PKIMESSAGE *m;

	if (len == 0 || len > 0x7fffffff)
		return NULL;
	m = (TCMP_PKIMESSAGE *)ASN1_item_d2i(NULL, &p, (long)len, ASN1_ITEM_rptr(TCMP_PKIMESSAGE));
	if (m != NULL && p != der + len) {
		ASN1_item_free((ASN1_VALUE *)m, ASN1_ITEM_rptr(TCMP_PKIMESSAGE));
		m = NULL;
	}
	return m;
}

static void msg_free(TCMP_PKIMESSAGE *m)
{
	ASN1_item_free((ASN1_VALUE *)m, ASN1_ITEM_rptr(TCMP_PKIMESSAGE));
}

static const unsigned char secret[] = "shared-secret-8c1f2e", ref[] = "4711";

enum {
	OP_IR,
	OP_P10CR,
	OP_CR,
	OP_KUR,
	OP_RR,
	OP_CA_CERTS,
	OP_ROOT_UPDATE,
	OP_TEMPLATE,
	OP_CRLS,
	OP_RESUME,
	OP_ABANDON,
	OP_COUNT,
	OP_CCR /* exchange byte CCR_BYTE only (below) */
};
/* The ccr's exchange byte (its low 5 bits): outside the range that
 * selects by % OP_COUNT before, so that every older seed keeps its
 * exchange; no seed of those uses it. */
#define CCR_BYTE 30

/* Flags (byte 1): 0 is a CA that answers correctly. */
#define F_KEEP_TID 0x01	       /* leave the response's transactionID */
#define F_KEEP_NONCE 0x02      /* leave its recipNonce */
#define F_KEEP_PROTECTION 0x04 /* leave its protection as it is */
#define F_IMPLICIT 0x08	       /* the client asks for implicitConfirm */
#define F_UNPROT_ERRORS 0x10   /* the client accepts unprotected errors */
#define F_REFUSE 0x20	       /* the accept callback refuses the certificate */
#define F_EXPECT_SENDER 0x40   /* the client expects the CA's name as sender */
#define F_RESUME_EARLY 0x80    /* recording: resume without waiting for the CA */
/* Byte 0 besides the exchange (the low 5 bits, modulo OP_COUNT). */
#define O_SANS 0x80	/* the request asks for a subjectAltName */
#define O_HEADER 0x40	/* certProfile, sender and recipient set */
#define O_SMALL_CAP 0x20 /* responses up to 2 KiB */

/* The input's byte 1 (the responses are lb_feed's, loopback.h). */
static int flags;

static EVP_PKEY *key, *key2, *srv_key;
static X509 *ee, *root, *srv_cert;
static char url[64], anchors[1024];
static const char *record_url, *record_out;

static void *load(const char *name, int cert)
{
	char path[1024];
	FILE *f;
	void *v;

	snprintf(path, sizeof(path), "%s/%s", getenv("FUZZ_DATA") != NULL ? getenv("FUZZ_DATA")
									  : FUZZ_DATA,
		 name);
	if ((f = fopen(path, "r")) == NULL) {
		perror(path);
		abort();
	}
	v = cert ? (void *)PEM_read_X509(f, NULL, NULL, NULL)
		 : (void *)PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (v == NULL) {
		fprintf(stderr, "%s: unreadable\n", path);
		abort();
	}
	return v;
}

/* ---- the CA's side ---------------------------------------------------- */

static int set_os(ASN1_OCTET_STRING **dst, const ASN1_OCTET_STRING *src)
{
	ASN1_OCTET_STRING *c;

	if (src == NULL)
		return 1;
	if ((c = ASN1_OCTET_STRING_dup(src)) == NULL)
		return 0;
	ASN1_OCTET_STRING_free(*dst);
	*dst = c;
	return 1;
}

static int set_bits(ASN1_BIT_STRING **bs, const unsigned char *p, size_t n)
{
	if (*bs == NULL && (*bs = ASN1_BIT_STRING_new()) == NULL)
		return 0;
	if (n > 0x7fffffff || !ASN1_BIT_STRING_set(*bs, (unsigned char *)p, (int)n))
		return 0;
	(*bs)->flags &= ~(ASN1_STRING_FLAG_BITS_LEFT | 0x07);
	(*bs)->flags |= ASN1_STRING_FLAG_BITS_LEFT;
	return 1;
}

/* New PBM parameters (the fewest iterations OpenSSL allows) and the MAC. */
static int protect_pbm(TCMP_PKIMESSAGE *m)
{
	OSSL_CRMF_PBMPARAMETER *pbmp = NULL;
	unsigned char *pder = NULL, *ppder = NULL, *mac = NULL;
	ASN1_STRING *param = NULL;
	TCMP_PROTECTEDPART pp;
	size_t maclen = 0;
	int plen, pplen, ok = 0;

	if ((pbmp = OSSL_CRMF_pbmp_new(NULL, 16, NID_sha256, 100, NID_hmacWithSHA256)) == NULL ||
	    (plen = i2d_OSSL_CRMF_PBMPARAMETER(pbmp, &pder)) <= 0 ||
	    (param = ASN1_STRING_new()) == NULL || !ASN1_STRING_set(param, pder, plen) ||
	    !X509_ALGOR_set0(m->header->protectionAlg, OBJ_nid2obj(NID_id_PasswordBasedMAC),
			     V_ASN1_SEQUENCE, param))
		goto out;
	param = NULL;
	pp.header = m->header;
	pp.body = m->body;
	if ((pplen = ASN1_item_i2d((ASN1_VALUE *)&pp, &ppder,
				   ASN1_ITEM_rptr(TCMP_PROTECTEDPART))) <= 0 ||
	    !OSSL_CRMF_pbm_new(NULL, NULL, pbmp, ppder, (size_t)pplen, secret, sizeof(secret) - 1,
			       &mac, &maclen) ||
	    !set_bits(&m->protection, mac, maclen))
		goto out;
	ok = 1;
out:
	OPENSSL_free(mac);
	OPENSSL_free(ppder);
	OPENSSL_free(pder);
	ASN1_STRING_free(param);
	OSSL_CRMF_PBMPARAMETER_free(pbmp);
	return ok;
}

/* A signature with the CA's protection key (SHA-256). */
static int protect_sig(TCMP_PKIMESSAGE *m)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char *ppder = NULL, *sig = NULL;
	TCMP_PROTECTEDPART pp;
	size_t siglen = 0;
	int pplen, nid, ok = 0;

	nid = EVP_PKEY_get_base_id(srv_key) == EVP_PKEY_EC ? NID_ecdsa_with_SHA256
							    : NID_sha256WithRSAEncryption;
	if (md == NULL ||
	    !X509_ALGOR_set0(m->header->protectionAlg, OBJ_nid2obj(nid),
			     nid == NID_ecdsa_with_SHA256 ? V_ASN1_UNDEF : V_ASN1_NULL, NULL))
		goto out;
	pp.header = m->header;
	pp.body = m->body;
	if ((pplen = ASN1_item_i2d((ASN1_VALUE *)&pp, &ppder,
				   ASN1_ITEM_rptr(TCMP_PROTECTEDPART))) <= 0 ||
	    EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, srv_key) != 1 ||
	    EVP_DigestSign(md, NULL, &siglen, ppder, (size_t)pplen) != 1 ||
	    (sig = OPENSSL_malloc(siglen)) == NULL ||
	    EVP_DigestSign(md, sig, &siglen, ppder, (size_t)pplen) != 1 ||
	    !set_bits(&m->protection, sig, siglen))
		goto out;
	ok = 1;
out:
	OPENSSL_free(sig);
	OPENSSL_free(ppder);
	EVP_MD_CTX_free(md);
	return ok;
}

/* The response rsp as a CA answering req would send it. */
static unsigned char *complete(const unsigned char *req, size_t reqlen, const unsigned char *rsp,
			       size_t rsplen, size_t *ret_len)
{
	TCMP_PKIMESSAGE *q = msg_decode(req, reqlen), *m = msg_decode(rsp, rsplen);
	unsigned char *der = NULL, *out = NULL;
	int len, nid;

	if (m == NULL || q == NULL) {
		/* Sent as it is. */
		ERR_clear_error();
		out = lb_pkixcmp(rsp, rsplen, ret_len);
		goto done;
	}
	if (!(flags & F_KEEP_TID) && !set_os(&m->header->transactionID, q->header->transactionID))
		goto done;
	if (!(flags & F_KEEP_NONCE) && !set_os(&m->header->recipNonce, q->header->senderNonce))
		goto done;
	if (!(flags & F_KEEP_PROTECTION) && m->header->protectionAlg != NULL) {
		nid = OBJ_obj2nid(m->header->protectionAlg->algorithm);
		if (!(nid == NID_id_PasswordBasedMAC ? protect_pbm(m) : protect_sig(m)))
			goto done;
	}
	if ((len = ASN1_item_i2d((ASN1_VALUE *)m, &der, ASN1_ITEM_rptr(TCMP_PKIMESSAGE))) <= 0)
		goto done;
	out = lb_pkixcmp(der, (size_t)len, ret_len);
done:
	ERR_clear_error();
	OPENSSL_free(der);
	msg_free(q);
	msg_free(m);
	return out;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	BUF_MEM *b = arg;
	size_t n = size * nmemb, old = b->length;

	if (BUF_MEM_grow(b, old + n) == 0)
		return 0;
	memcpy(b->data + old, data, n);
	return n;
}

/* Recording: the CA at record_url answers; its answer goes into the seed. */
static unsigned char *forward(const unsigned char *body, size_t len, size_t *ret_len)
{
	CURL *h = curl_easy_init();
	struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/pkixcmp");
	BUF_MEM *b = BUF_MEM_new();
	unsigned char *out = NULL, n[2];
	FILE *f;

	curl_easy_setopt(h, CURLOPT_URL, record_url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
	if (curl_easy_perform(h) == CURLE_OK && b->length > 0 && b->length < 65536 &&
	    (f = fopen(record_out, "ab")) != NULL) {
		n[0] = (unsigned char)(b->length >> 8);
		n[1] = (unsigned char)b->length;
		fwrite(n, 1, 2, f);
		fwrite(b->data, 1, b->length, f);
		fclose(f);
		out = lb_pkixcmp((unsigned char *)b->data, b->length, ret_len);
	}
	BUF_MEM_free(b);
	curl_slist_free_all(hdr);
	curl_easy_cleanup(h);
	return out;
}

static unsigned char *answer(const unsigned char *body, size_t len, size_t *ret_len, void *arg)
{
	unsigned char *chunk, *out;
	size_t n;

	(void)arg;
	if (record_url != NULL)
		return forward(body, len, ret_len);
	chunk = lb_take(1, &n);
	if (chunk == NULL)
		return NULL;
	out = complete(body, len, chunk, n, ret_len);
	free(chunk);
	return out;
}

/* ---- the client's side ------------------------------------------------ */

static void setup_once(void)
{
	const char *d;

	if (key != NULL)
		return;
	if (cmpc_global_init() != 0)
		abort();
	key = load("key.pem", 0);
	key2 = load("key2.pem", 0);
	srv_key = load("ca/srv.key", 0);
	ee = load("ee.pem", 1);
	root = load("ca/root.pem", 1);
	srv_cert = load("ca/srv.pem", 1);
	d = getenv("FUZZ_DATA") != NULL ? getenv("FUZZ_DATA") : FUZZ_DATA;
	if (strlen(d) > sizeof(anchors) - sizeof("/ca/root.pem"))
		abort();
	snprintf(anchors, sizeof(anchors), "%s/ca/root.pem", d);
	record_url = getenv("FUZZ_RSP_RECORD");
	fuzz_recording = record_url != NULL;
	record_out = getenv("FUZZ_RSP_OUT");
	if (record_url != NULL && record_out == NULL)
		abort();
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/.well-known/cmp", lb_start(answer, NULL));
}

static int accept_cert(X509 *cert, STACK_OF(X509) *cas, void *arg, char *why, size_t whylen)
{
	(void)cert;
	(void)cas;
	(void)arg;
	if (!(flags & F_REFUSE))
		return 0;
	snprintf(why, whylen, "refused by the fuzz harness");
	return 1;
}

static void saw_pending(const cmpc_pending *p, void *arg)
{
	cmpc_pending *keep = arg;

	*keep = *p;
}

/*
 * What the layer promises about a certificate it returns, whatever the
 * CA sent: it carries the key, the requested subject, and chains to the
 * trust anchor through the CA certificates returned with it.  A mutated
 * response that gets a certificate past the layer without this is a
 * finding: abort.
 */
static void check_issued(X509 *cert, STACK_OF(X509) *cas, EVP_PKEY *want_key)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *vc = X509_STORE_CTX_new();
	X509_NAME *cn = X509_NAME_new();

	if (cert == NULL || store == NULL || vc == NULL || cn == NULL)
		abort();
	X509_NAME_add_entry_by_txt(cn, "CN", MBSTRING_ASC, (const unsigned char *)"fuzz", -1, -1, 0);
	if (EVP_PKEY_eq(X509_get0_pubkey(cert), want_key) != 1 ||
	    X509_NAME_cmp(X509_get_subject_name(cert), cn) != 0 || !X509_STORE_add_cert(store, root) ||
	    !X509_STORE_CTX_init(vc, store, cert, cas) || X509_verify_cert(vc) != 1)
		abort();
	X509_NAME_free(cn);
	X509_STORE_CTX_free(vc);
	X509_STORE_free(store);
}

/* A new root is returned only with a link certificate that its old root signed. */
static void check_root_update(X509 *nr, X509 *nwo)
{
	if (nr == NULL)
		return;
	if (nwo == NULL || X509_verify(nwo, X509_get0_pubkey(root)) != 1 ||
	    EVP_PKEY_eq(X509_get0_pubkey(nwo), X509_get0_pubkey(nr)) != 1 ||
	    X509_verify(nr, X509_get0_pubkey(nr)) != 1)
		abort();
}

static void run(cmpc_ctx *ctx, int op)
{
	cmpc_pending p, seen;
	cmpc_template t;
	cmpc_rr_status st;
	X509 *cert = NULL, *nr = NULL, *nwo = NULL;
	STACK_OF(X509) *cas = NULL;
	STACK_OF(X509_CRL) *crls = NULL;
	cmpc_rv rv = CMPC_OK;

	memset(&p, 0, sizeof(p));
	memset(&seen, 0, sizeof(seen));
	memset(&t, 0, sizeof(t));
	p.type = CMPC_REQ_IR;
	memset(p.tid, 0x11, 16);
	p.tid_len = 16;
	memset(p.nonce, 0x22, 16);
	p.nonce_len = 16;
	cmpc_set_pending_cb(ctx, saw_pending, &seen);
	switch (op) {
	case OP_IR:
		rv = cmpc_ir(ctx, key, &cert, &cas);
		break;
	case OP_P10CR:
		rv = cmpc_certreq(ctx, CMPC_REQ_P10CR, key, NULL, NULL, &cert, &cas);
		break;
	case OP_CR:
	case OP_KUR:
		if (cmpc_set1_signer(ctx, ee, key, NULL) == CMPC_OK)
			rv = cmpc_certreq(ctx, op == OP_CR ? CMPC_REQ_CR : CMPC_REQ_KUR, key2,
					   op == OP_KUR ? ee : NULL, NULL, &cert, &cas);
		break;
	case OP_RR:
		rv = cmpc_rr(ctx, ee, 1, &st);
		break;
	case OP_CA_CERTS:
		rv = cmpc_genm_ca_certs(ctx, &cas);
		break;
	case OP_ROOT_UPDATE:
		rv = cmpc_genm_root_update(ctx, root, &nr, &nwo);
		break;
	case OP_TEMPLATE:
		rv = cmpc_genm_cert_template(ctx, &t);
		break;
	case OP_CRLS:
		rv = cmpc_genm_crls(ctx, NULL, &crls);
		break;
	case OP_RESUME:
		if (record_url != NULL) {
			/* A transaction the CA knows: an ir it answers "waiting"
			 * (--poll), given up at once; only what follows is kept. */
			cmpc_set_timeouts(ctx, 1, 5, 1);
			rv = cmpc_ir(ctx, key, &cert, &cas);
			if (rv != CMPC_ERR_WAITING || seen.tid_len == 0)
				abort();
			p = seen;
			cmpc_set_timeouts(ctx, 1, 5, 10);
			(void)truncate(record_out, 2);
			if (!(flags & F_RESUME_EARLY))
				sleep((unsigned)p.check_after + 1);
		}
		rv = cmpc_resume(ctx, &p, key, NULL, NULL, &cert, &cas);
		break;
	case OP_ABANDON:
		rv = cmpc_abandon(ctx, &p, "given up by the fuzz harness");
		break;
	case OP_CCR:
		rv = cmpc_ccr(ctx, key, 1, &cert, &cas);
		break;
	}
	if (rv == CMPC_OK && (op <= OP_KUR || op == OP_RESUME || op == OP_CCR))
		check_issued(cert, cas, op == OP_CR || op == OP_KUR ? key2 : key);
	if (rv == CMPC_OK && op == OP_ROOT_UPDATE)
		check_root_update(nr, nwo);
	/* FUZZ_RSP_VERBOSE: how each input ended, to check the seeds. */
	if (getenv("FUZZ_RSP_VERBOSE") != NULL)
		fprintf(stderr, "exchange %d: %s: %s\n", op, cmpc_strerror(rv), cmpc_errmsg(ctx));
	else
		(void)cmpc_errmsg(ctx);
	(void)cmpc_transaction_id(ctx);
	X509_free(cert);
	X509_free(nr);
	X509_free(nwo);
	sk_X509_pop_free(cas, X509_free);
	sk_X509_CRL_pop_free(crls, X509_CRL_free);
	cmpc_template_clear(&t);
}

static int options(cmpc_ctx *ctx, int o)
{
	GENERAL_NAMES *sans = NULL;
	GENERAL_NAME *dns = NULL;
	ASN1_IA5STRING *v = NULL;
	X509_NAME *me = NULL;
	int ok = 0;

	if (o & O_SMALL_CAP)
		cmpc_set_max_response(ctx, 2048);
	if (o & O_SANS) {
		if ((sans = GENERAL_NAMES_new()) == NULL || (dns = GENERAL_NAME_new()) == NULL ||
		    (v = ASN1_IA5STRING_new()) == NULL || !ASN1_STRING_set(v, "fuzz.example", -1))
			goto out;
		GENERAL_NAME_set0_value(dns, GEN_DNS, v);
		v = NULL;
		if (!sk_GENERAL_NAME_push(sans, dns))
			goto out;
		dns = NULL;
		if (cmpc_set1_sans(ctx, sans) != CMPC_OK)
			goto out;
	}
	if (o & O_HEADER) {
		if ((me = X509_NAME_new()) == NULL ||
		    !X509_NAME_add_entry_by_txt(me, "CN", MBSTRING_ASC,
						(const unsigned char *)"fuzz client", -1, -1, 0) ||
		    cmpc_set1_cert_profile(ctx, "fuzz-profile") != CMPC_OK ||
		    cmpc_set1_sender(ctx, me) != CMPC_OK ||
		    cmpc_set1_recipient(ctx, X509_get_subject_name(srv_cert)) != CMPC_OK)
			goto out;
	}
	ok = 1;
out:
	X509_NAME_free(me);
	ASN1_IA5STRING_free(v);
	GENERAL_NAME_free(dns);
	GENERAL_NAMES_free(sans);
	return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	X509_NAME *subj;
	cmpc_ctx *ctx;
	FILE *f;

	if (size < 2)
		return 0;
	fuzz_client_thread = 1;
	setup_once();
	if (record_url != NULL && (f = fopen(record_out, "wb")) != NULL) {
		fwrite(data, 1, 2, f);
		fclose(f);
	}
	flags = data[1];
	lb_feed(data + 2, size - 2);
	if ((subj = X509_NAME_new()) == NULL || (ctx = cmpc_new()) == NULL) {
		X509_NAME_free(subj);
		return 0;
	}
	X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_ASC, (const unsigned char *)"fuzz", -1, -1,
				   0);
	if (cmpc_set1_server(ctx, url) == CMPC_OK &&
	    cmpc_set1_pbm(ctx, ref, sizeof(ref) - 1, secret, sizeof(secret) - 1) == CMPC_OK &&
	    cmpc_set_pbm_params(ctx, 0, 0, 100) == CMPC_OK &&
	    cmpc_load_trusted(ctx, anchors) == CMPC_OK && cmpc_set1_subject(ctx, subj) == CMPC_OK &&
	    (!(flags & F_EXPECT_SENDER) ||
	     cmpc_set1_expected_sender(ctx, X509_get_subject_name(srv_cert)) == CMPC_OK)) {
		cmpc_set_timeouts(ctx, 1, 5, 10);
		cmpc_set_implicit_confirm(ctx, (flags & F_IMPLICIT) != 0);
		cmpc_set_unprotected_errors(ctx, (flags & F_UNPROT_ERRORS) != 0);
		cmpc_set_accept_cb(ctx, accept_cert, NULL);
		if (options(ctx, data[0]))
			run(ctx, (data[0] & 0x1f) == CCR_BYTE ? OP_CCR : (data[0] & 0x1f) % OP_COUNT);
	}
	X509_NAME_free(subj);
	cmpc_free(ctx);
	lb_feed(NULL, 0);
	return 0;
}
