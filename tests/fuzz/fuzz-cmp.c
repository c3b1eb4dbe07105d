/*
 * Fuzz target: CMP responses as the client meets them.  The input is an
 * options byte and a series of messages, each a 2-byte big-endian length
 * and that many bytes; the transfer callback hands them to the layer in
 * turn, in place of the HTTP transport, so that a certificate request runs
 * through decoding, the response checks (protection, transactionID,
 * nonces, sender), status handling, polling, the verification of the new
 * certificate and the failure classification of the protocol layer.
 *
 * The run is deterministic, so that responses recorded from a real CA
 * answer it: the client key and the trust anchor come from tests/fuzz/data
 * (the test CA of fuzz-rsp, test-only keys), and OpenSSL's randomness is a
 * counter-based generator (a RAND_METHOD, which OpenSSL 3.0 still uses for
 * RAND_bytes_ex and RAND_priv_bytes_ex) restarted at the beginning of each
 * input and after each response.  The transactionID and every senderNonce
 * (and PBM salts, ECDSA nonces) are therefore the same in every run: a
 * recorded response carries the right transactionID and recipNonce, and
 * its MAC or signature verifies.  Mutations break them; that is expected
 * (fuzz-rsp covers what follows the protection check).
 *
 * Options (byte 0): the exchange (bits 0-1: ir; resume, whose first message
 * is the CA's last "waiting" answer from which the pending transaction is
 * taken; abandon, likewise) and client settings (F_*).  What a request
 * holds does not change the numbers drawn after it (the generator restarts
 * after each response), so a seed may ask for more than the recorded
 * answers give (a subjectAltName the CA left out).
 *
 * Recording (tools/make-cmp-seeds.sh): FUZZ_CMP_RECORD=URL sends the
 * requests to the CA at URL with the layer's own transport, and
 * FUZZ_CMP_OUT=FILE receives the options byte and the framed responses:
 * a seed.  FUZZ_CMP_VERBOSE=1 prints how each input ended (one line on
 * stderr: the result, the requests sent, the layer's message).
 */
#include "config.h"

/* RAND_METHOD is deprecated in OpenSSL 3.0, and still honoured. */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/buffer.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cmp/cmpc-int.h"
#include "tests/fuzz/nosleep.h"

#ifndef FUZZ_DATA
#define FUZZ_DATA "tests/fuzz/data"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Options, byte 0 of the input. */
#define OP_MASK 0x03
enum { OP_IR, OP_RESUME, OP_ABANDON, OP_IR2 };
#define F_IMPLICIT 0x04	     /* the client asks for implicitConfirm */
#define F_UNPROT_ERRORS 0x08 /* the client accepts unprotected errors */
#define F_EXPECT_SENDER 0x10 /* the client expects the CA's CMP server name */
#define F_REFUSE 0x20	     /* the accept callback refuses the certificate */
#define F_SANS 0x40	     /* the request asks for a subjectAltName */
#define F_RESUME_EARLY 0x80  /* recording: resume at once, not after checkAfter */

static const unsigned char ref[] = "4711", secret[] = "shared-secret-8c1f2e";

/* ---- deterministic randomness ----------------------------------------- */

static uint64_t rng_state;

/* Restarts the generator; n tells the restart points apart. */
static void rng_reset(uint64_t n)
{
	rng_state = 0x5eed0fc3a7e5f00dULL ^ (n * 0x9e3779b97f4a7c15ULL);
}

static uint64_t rng_next(void) /* splitmix64 */
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static int rng_bytes(unsigned char *buf, int num)
{
	uint64_t v;
	int i;

	while (num > 0) {
		v = rng_next();
		for (i = 0; i < 8 && num > 0; i++, num--)
			*buf++ = (unsigned char)(v >> (8 * i));
	}
	return 1;
}

static int rng_seed(const void *buf, int num)
{
	(void)buf;
	(void)num;
	return 1;
}

static int rng_add(const void *buf, int num, double entropy)
{
	(void)buf;
	(void)num;
	(void)entropy;
	return 1;
}

static int rng_status(void)
{
	return 1;
}

static RAND_METHOD rng_method = { rng_seed, rng_bytes, NULL, rng_add, rng_bytes, rng_status };

/* ---- the input -------------------------------------------------------- */

static struct {
	const unsigned char *p; /* messages still to hand out */
	size_t left;
	int flags;
	unsigned msgno; /* responses handed out so far (the generator restarts) */
	char sent[160]; /* the requests, for FUZZ_CMP_VERBOSE */
} feed;

static EVP_PKEY *key;
static X509 *root, *srv_cert;
static const char *record_url, *record_out;
static BUF_MEM *rec; /* recording: the seed so far */

/* The next message of the input; 0 when there is none. */
static int next_msg(const unsigned char **msg, size_t *len)
{
	size_t n;

	if (feed.left < 2)
		return 0;
	n = ((size_t)feed.p[0] << 8) | feed.p[1];
	feed.p += 2;
	feed.left -= 2;
	if (n > feed.left)
		n = feed.left;
	*msg = feed.p;
	*len = n;
	feed.p += n;
	feed.left -= n;
	return 1;
}

static void rec_append(const unsigned char *p, size_t n)
{
	size_t old = rec->length;

	if (n > 0xffff || BUF_MEM_grow(rec, old + 2 + n) == 0)
		abort();
	rec->data[old] = (char)(n >> 8);
	rec->data[old + 1] = (char)n;
	memcpy(rec->data + old + 2, p, n);
}

static void note_sent(int type)
{
	size_t off = strlen(feed.sent);

	snprintf(feed.sent + off, sizeof(feed.sent) - off, "%s%s", off > 0 ? " " : "",
		 cmpc_body_name(type));
}

/*
 * The transfer callback.  Replaying, it does what cmpc_msg_transfer does
 * around the transport and takes the response from the input (without
 * re-protecting the request); recording, it is cmpc_msg_transfer with the
 * HTTP transport, and the response is kept.
 */
static OSSL_CMP_MSG *feed_transfer(OSSL_CMP_CTX *cmp, const OSSL_CMP_MSG *req)
{
	cmpc_ctx *ctx = OSSL_CMP_CTX_get_transfer_cb_arg(cmp);
	const unsigned char *msg;
	unsigned char *buf;
	OSSL_CMP_MSG *rsp = NULL;
	char what[256];
	size_t len;
	int type = OSSL_CMP_MSG_get_bodytype(req), sends;

	sends = ctx->x.rv == CMPC_OK && ctx->x.replay == NULL;
	if (sends)
		note_sent(type);
	if (record_url != NULL) {
		ctx->x.rlen = 0;
		rsp = cmpc_msg_transfer(cmp, req);
		if (sends && ctx->x.rlen > 0)
			rec_append(ctx->x.rbuf, ctx->x.rlen);
		goto out;
	}
	if (ctx->x.rv != CMPC_OK)
		goto out;
	if (ctx->x.replay != NULL) {
		rsp = cmpc_replay(ctx, req);
		goto out;
	}
	if (type == CMPC_BODY_CERTCONF)
		ctx->x.certconf_sent = 1;
	snprintf(what, sizeof(what), "sending the %s to %s", cmpc_body_name(type), ctx->url);
	if (!next_msg(&msg, &len)) {
		ctx->x.rv = CMPC_ERR_TRANSPORT;
		snprintf(ctx->x.msg, sizeof(ctx->x.msg), "%s: no answer (end of the input)", what);
		goto out;
	}
	if (len > ctx->x.rcap) {
		if ((buf = OPENSSL_realloc(ctx->x.rbuf, len)) == NULL)
			goto out;
		ctx->x.rbuf = buf;
		ctx->x.rcap = len;
	}
	if (len > 0) /* rbuf is NULL before the first response */
		memcpy(ctx->x.rbuf, msg, len);
	ctx->x.rlen = len;
	rsp = cmpc_msg_response(ctx, what);
out:
	/* Whatever the transport consumed (the PBM salt of cmpc_pbm_reprotect
	 * when recording), what follows draws the same numbers either way: the
	 * restart comes after every call, sent or not, in both modes. */
	rng_reset(++feed.msgno);
	return rsp;
}

/* ---- the client's side ------------------------------------------------ */

static void *load(const char *name, int cert)
{
	const char *d = getenv("FUZZ_DATA") != NULL ? getenv("FUZZ_DATA") : FUZZ_DATA;
	char path[1024];
	FILE *f;
	void *v;

	snprintf(path, sizeof(path), "%s/%s", d, name);
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

static void setup_once(void)
{
	unsigned char a[16], b[16];

	if (key != NULL)
		return;
	if (cmpc_global_init() != 0)
		abort();
	key = load("key.pem", 0);
	root = load("ca/root.pem", 1);
	srv_cert = load("ca/srv.pem", 1);
	record_url = getenv("FUZZ_CMP_RECORD");
	fuzz_recording = record_url != NULL;
	record_out = getenv("FUZZ_CMP_OUT");
	if (record_url != NULL && (record_out == NULL || (rec = BUF_MEM_new()) == NULL))
		abort();
	/* After the keys are read: from here on OpenSSL's randomness is ours.
	 * An OpenSSL that ignored the method would make every seed end at
	 * the transactionID check: say so at once. */
	if (!RAND_set_rand_method(&rng_method))
		abort();
	rng_reset(0);
	if (RAND_bytes_ex(NULL, a, 8, 0) != 1 ||
	    RAND_priv_bytes_ex(NULL, a + 8, sizeof(a) - 8, 0) != 1)
		abort();
	rng_reset(0);
	rng_bytes(b, sizeof(b));
	if (memcmp(a, b, sizeof(a)) != 0) {
		fprintf(stderr, "fuzz-cmp: OpenSSL does not draw from the harness's RAND_METHOD: "
				"recorded responses cannot match\n");
		abort();
	}
}

static int accept_cert(X509 *cert, STACK_OF(X509) *cas, void *arg, char *why, size_t whylen)
{
	(void)cert;
	(void)cas;
	(void)arg;
	if (!(feed.flags & F_REFUSE))
		return 0;
	snprintf(why, whylen, "refused by the fuzz harness");
	return 1;
}

static int set_sans(cmpc_ctx *ctx)
{
	GENERAL_NAMES *sans = GENERAL_NAMES_new();
	GENERAL_NAME *dns = GENERAL_NAME_new();
	ASN1_IA5STRING *v = ASN1_IA5STRING_new();
	int ok = 0;

	if (sans != NULL && dns != NULL && v != NULL && ASN1_STRING_set(v, "fuzz.example", -1)) {
		GENERAL_NAME_set0_value(dns, GEN_DNS, v);
		v = NULL;
		if (sk_GENERAL_NAME_push(sans, dns) > 0) {
			dns = NULL;
			ok = cmpc_set1_sans(ctx, sans) == CMPC_OK;
		}
	}
	ASN1_IA5STRING_free(v);
	GENERAL_NAME_free(dns);
	GENERAL_NAMES_free(sans);
	return ok;
}

static void saw_pending(const cmpc_pending *p, void *arg)
{
	*(cmpc_pending *)arg = *p;
}

/* The transaction the CA answered "waiting" in msg, as the agent would
 * have saved it: its transactionID and the CA's senderNonce. */
static int pending_of(const unsigned char *msg, size_t len, cmpc_pending *p)
{
	CMPC_PKIMSG *m = cmpc_msg_decode(msg, len);
	const ASN1_OCTET_STRING *t, *n;
	int ok = 0;

	memset(p, 0, sizeof(*p));
	p->type = CMPC_REQ_IR;
	if (m != NULL && (t = m->header->transactionID) != NULL &&
	    (n = m->header->senderNonce) != NULL && t->length > 0 && t->length <= CMPC_ID_MAX &&
	    n->length > 0 && n->length <= CMPC_ID_MAX) {
		memcpy(p->tid, t->data, (size_t)t->length);
		p->tid_len = (size_t)t->length;
		memcpy(p->nonce, n->data, (size_t)n->length);
		p->nonce_len = (size_t)n->length;
		ok = 1;
	}
	cmpc_msg_free(m);
	ERR_clear_error();
	return ok;
}

/*
 * What the layer promises about a certificate it returns, whatever the
 * CA sent: it carries the requested key and subject and chains to the
 * trust anchor through the CA certificates returned with it.
 */
static void check_issued(X509 *cert, STACK_OF(X509) *cas)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *vc = X509_STORE_CTX_new();
	X509_NAME *cn = X509_NAME_new();

	if (cert == NULL || store == NULL || vc == NULL || cn == NULL)
		abort();
	X509_NAME_add_entry_by_txt(cn, "CN", MBSTRING_ASC, (const unsigned char *)"fuzz", -1, -1, 0);
	if (EVP_PKEY_eq(X509_get0_pubkey(cert), key) != 1 ||
	    X509_NAME_cmp(X509_get_subject_name(cert), cn) != 0 || !X509_STORE_add_cert(store, root) ||
	    !X509_STORE_CTX_init(vc, store, cert, cas) || X509_verify_cert(vc) != 1)
		abort();
	X509_NAME_free(cn);
	X509_STORE_CTX_free(vc);
	X509_STORE_free(store);
}

static const char *rv_name(cmpc_rv rv)
{
	switch (rv) {
	case CMPC_OK:
		return "OK";
	case CMPC_ERR_CONFIG:
		return "CONFIG";
	case CMPC_ERR_TRANSPORT:
		return "TRANSPORT";
	case CMPC_ERR_TLS:
		return "TLS";
	case CMPC_ERR_PROTOCOL:
		return "PROTOCOL";
	case CMPC_ERR_REJECTED:
		return "REJECTED";
	case CMPC_ERR_WAITING:
		return "WAITING";
	case CMPC_ERR_CERT:
		return "CERT";
	case CMPC_ERR_KEY:
		return "KEY";
	case CMPC_ERR_INTERNAL:
		return "INTERNAL";
	case CMPC_ERR_STOPPED:
		return "STOPPED";
	}
	return "?";
}

static void run(cmpc_ctx *ctx, int op)
{
	static const char *ops[] = { "ir", "resume", "abandon", "ir" };
	cmpc_pending p, seen;
	const unsigned char *msg;
	X509 *cert = NULL;
	STACK_OF(X509) *cas = NULL;
	cmpc_rv rv;
	size_t len, keep;

	memset(&seen, 0, sizeof(seen));
	cmpc_set_pending_cb(ctx, saw_pending, &seen);
	if (op == OP_IR || op == OP_IR2) {
		rv = cmpc_ir(ctx, key, &cert, &cas);
		goto done;
	}
	if (record_url != NULL) {
		/* A transaction the CA knows: an ir it answers "waiting"
		 * (--poll 2 or more), given up after the pollReq that OpenSSL
		 * sends at once: the CA's checkAfter is at least the 2 s left
		 * (a total of 1 s would race the clock: past the next second
		 * no pollReq is sent).  Only the CA's last answer is kept: the
		 * transaction continues from it. */
		cmpc_set_timeouts(ctx, 1, 5, 2);
		if (cmpc_ir(ctx, key, &cert, &cas) != CMPC_ERR_WAITING || seen.tid_len == 0 ||
		    strcmp(feed.sent, "ir pollReq") != 0 || rec->length < 3) {
			fprintf(stderr, "fuzz-cmp: recording: the ir did not end in 'waiting' "
					"after its pollReq (sent %s): %s\n",
				feed.sent, cmpc_errmsg(ctx));
			abort();
		}
		for (keep = 1; keep + 2 < rec->length;) {
			len = ((size_t)(unsigned char)rec->data[keep] << 8) |
			      (unsigned char)rec->data[keep + 1];
			if (keep + 2 + len >= rec->length)
				break;
			keep += 2 + len;
		}
		memmove(rec->data + 1, rec->data + keep, rec->length - keep);
		rec->length -= keep - 1;
		feed.p = (unsigned char *)rec->data + 1;
		feed.left = rec->length - 1;
		cmpc_set_timeouts(ctx, 1, 5, 10);
		if (!(feed.flags & F_RESUME_EARLY))
			sleep((unsigned)seen.check_after + 1);
	}
	feed.sent[0] = '\0';
	if (!next_msg(&msg, &len) || !pending_of(msg, len, &p)) {
		if (getenv("FUZZ_CMP_VERBOSE") != NULL)
			fprintf(stderr, "fuzz-cmp: %s: no transaction to continue\n", ops[op]);
		return;
	}
	if (record_url != NULL &&
	    (p.tid_len != seen.tid_len || memcmp(p.tid, seen.tid, p.tid_len) != 0 ||
	     p.nonce_len != seen.nonce_len || memcmp(p.nonce, seen.nonce, p.nonce_len) != 0))
		abort();
	/* The later process: randomness from a fresh start again. */
	feed.msgno = 100;
	rng_reset(feed.msgno);
	if (op == OP_RESUME)
		rv = cmpc_resume(ctx, &p, key, NULL, NULL, &cert, &cas);
	else
		rv = cmpc_abandon(ctx, &p, "given up by the fuzz harness");
done:
	if (rv == CMPC_OK && op != OP_ABANDON)
		check_issued(cert, cas);
	/* FUZZ_CMP_VERBOSE: how each input ended, to check the seeds. */
	if (getenv("FUZZ_CMP_VERBOSE") != NULL)
		fprintf(stderr, "fuzz-cmp: %s: %s; sent %s; %s\n", ops[op], rv_name(rv),
			feed.sent[0] != '\0' ? feed.sent : "nothing", cmpc_errmsg(ctx));
	else
		(void)cmpc_errmsg(ctx);
	X509_free(cert);
	sk_X509_pop_free(cas, X509_free);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	X509_NAME *subj;
	cmpc_ctx *ctx;
	FILE *f;

	if (size < 1)
		return 0;
	fuzz_client_thread = 1;
	setup_once();
	rng_reset(0);
	memset(&feed, 0, sizeof(feed));
	feed.p = data + 1;
	feed.left = size - 1;
	feed.flags = data[0];
	if (rec != NULL) {
		rec->length = 0;
		if (BUF_MEM_grow(rec, 1) == 0)
			abort();
		rec->data[0] = (char)data[0];
	}
	if ((subj = X509_NAME_new()) == NULL || (ctx = cmpc_new()) == NULL) {
		X509_NAME_free(subj);
		return 0;
	}
	X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_ASC, (const unsigned char *)"fuzz", -1, -1,
				   0);
	if (cmpc_set1_server(ctx, record_url != NULL ? record_url
						      : "http://127.0.0.1:9/.well-known/cmp") ==
		CMPC_OK &&
	    cmpc_set1_pbm(ctx, ref, sizeof(ref) - 1, secret, sizeof(secret) - 1) == CMPC_OK &&
	    cmpc_set1_subject(ctx, subj) == CMPC_OK && X509_up_ref(root) &&
	    sk_X509_push(ctx->anchors, root) > 0 &&
	    (!(feed.flags & F_EXPECT_SENDER) ||
	     cmpc_set1_expected_sender(ctx, X509_get_subject_name(srv_cert)) == CMPC_OK) &&
	    (!(feed.flags & F_SANS) || set_sans(ctx)) &&
	    cmpc_set_msg_transfer(ctx, feed_transfer)) {
		cmpc_set_timeouts(ctx, 1, 5, 10);
		cmpc_set_implicit_confirm(ctx, (feed.flags & F_IMPLICIT) != 0);
		cmpc_set_unprotected_errors(ctx, (feed.flags & F_UNPROT_ERRORS) != 0);
		cmpc_set_accept_cb(ctx, accept_cert, NULL);
		run(ctx, feed.flags & OP_MASK);
	}
	X509_NAME_free(subj);
	cmpc_free(ctx);
	if (rec != NULL && (f = fopen(record_out, "wb")) != NULL) {
		fwrite(rec->data, 1, rec->length, f);
		fclose(f);
	}
	return 0;
}
