/*
 * Fuzz target: the HTTP side of a CMP exchange (cmp/cmpc_http.c): what
 * libcurl and the layer's write callback make of a server's answer: status
 * line and code (redirects, errors), Content-Type, Content-Length, chunked
 * bodies, the response size cap, a connection closed early, and the
 * decoding of the body as a PKIMessage.  The server is the loopback one of
 * fuzz-rsp (loopback.c); it sends the input's bytes as they are, as the
 * answer to the first request (a genm), and closes the connection.
 *
 * Input: byte 0 picks the response size cap (low bits) and the exchange,
 * then the raw answer.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmp/cmpc.h"
#include "tests/fuzz/loopback.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char url[64];

/* All that is left of the input, once: later requests find the connection
 * closed. */
static unsigned char *answer(const unsigned char *body, size_t len, size_t *ret_len, void *arg)
{
	(void)body;
	(void)len;
	(void)arg;
	return lb_take(0, ret_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned char ref[] = "4711", secret[] = "shared-secret-8c1f2e";
	static const size_t caps[] = { 0, 64, 1024, 4096 };
	STACK_OF(X509) *cas = NULL;
	cmpc_template t;
	cmpc_ctx *ctx;

	if (size < 1)
		return 0;
	if (url[0] == '\0') {
		if (cmpc_global_init() != 0)
			abort();
		snprintf(url, sizeof(url), "http://127.0.0.1:%d/.well-known/cmp",
			 lb_start(answer, NULL));
	}
	memset(&t, 0, sizeof(t));
	lb_feed(data + 1, size - 1);
	if ((ctx = cmpc_new()) == NULL)
		return 0;
	if (cmpc_set1_server(ctx, url) == CMPC_OK &&
	    cmpc_set1_pbm(ctx, ref, sizeof(ref) - 1, secret, sizeof(secret) - 1) == CMPC_OK &&
	    cmpc_set_pbm_params(ctx, 0, 0, 100) == CMPC_OK) {
		cmpc_set_timeouts(ctx, 1, 2, 5);
		if (caps[data[0] & 3] != 0)
			cmpc_set_max_response(ctx, caps[data[0] & 3]);
		cmpc_set_unprotected_errors(ctx, (data[0] & 4) != 0);
		if (data[0] & 8)
			(void)cmpc_genm_cert_template(ctx, &t);
		else
			(void)cmpc_genm_ca_certs(ctx, &cas);
		if (getenv("FUZZ_HTTP_VERBOSE") != NULL)
			fprintf(stderr, "%s\n", cmpc_errmsg(ctx));
		else
			(void)cmpc_errmsg(ctx);
	}
	sk_X509_pop_free(cas, X509_free);
	cmpc_template_clear(&t);
	cmpc_free(ctx);
	lb_feed(NULL, 0);
	return 0;
}
