/*
 * Fuzz target: the pending transaction file (STATE_DIR/pending/LABEL@TOKEN.pending) that
 * `p11enroll resume` reads back as untrusted input.  The input is the
 * file's text.  What pending_parse accepts must be within its bounds, and
 * written out again in the same "key value" format it must parse to the
 * same transaction: a value the parser takes but cannot have come from
 * pending_save shows up as a crash here.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent-cmd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t put_hex(char *out, size_t len, const char *key, const unsigned char *p, size_t n)
{
	size_t used = (size_t)snprintf(out, len, "%s ", key), i;

	for (i = 0; i < n && used < len; i++)
		used += (size_t)snprintf(out + used, len - used, "%02x", p[i]);
	if (used < len)
		used += (size_t)snprintf(out + used, len - used, "\n");
	return used;
}

/* The text pending_save writes for ap (without its comment lines). */
static size_t format(const agent_pending *ap, char *out, size_t len)
{
	size_t n;

	n = (size_t)snprintf(out, len, "version 1\nrequest %s\n", pending_req_name(ap->p.type));
	n += put_hex(out + n, len - n, "transaction_id", ap->p.tid, ap->p.tid_len);
	n += put_hex(out + n, len - n, "recip_nonce", ap->p.nonce, ap->p.nonce_len);
	n += (size_t)snprintf(out + n, len - n, "cert_req_id %d\ncheck_after %ld\n",
			      ap->p.cert_req_id, ap->p.check_after);
	n += put_hex(out + n, len - n, "key_id", ap->key_id, ap->key_id_len);
	n += (size_t)snprintf(out + n, len - n, "key_generated %s\ntoken_serial %s\nsaved %lld\n",
			      ap->key_generated ? "yes" : "no", ap->token_serial,
			      (long long)ap->saved);
	n += (size_t)snprintf(out + n, len - n,
			      "token_label %s\ntoken_model %s\ntoken_manufacturer %s\n"
			      "enrollment %s\nlabel %s\n",
			      ap->token_label, ap->token_model, ap->token_manufacturer, ap->name,
			      ap->label);
	return n;
}

static int same(const agent_pending *a, const agent_pending *b)
{
	return a->p.type == b->p.type && a->p.tid_len == b->p.tid_len &&
	       memcmp(a->p.tid, b->p.tid, a->p.tid_len) == 0 && a->p.nonce_len == b->p.nonce_len &&
	       memcmp(a->p.nonce, b->p.nonce, a->p.nonce_len) == 0 &&
	       a->p.cert_req_id == b->p.cert_req_id && a->p.check_after == b->p.check_after &&
	       a->key_id_len == b->key_id_len && memcmp(a->key_id, b->key_id, a->key_id_len) == 0 &&
	       a->key_generated == b->key_generated &&
	       strcmp(a->token_serial, b->token_serial) == 0 && a->saved == b->saved &&
	       strcmp(a->token_label, b->token_label) == 0 &&
	       strcmp(a->token_model, b->token_model) == 0 &&
	       strcmp(a->token_manufacturer, b->token_manufacturer) == 0 &&
	       strcmp(a->name, b->name) == 0 && strcmp(a->label, b->label) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static agent_pending ap, again;
	static char text[4096];
	char err[256];
	size_t n, i;

	err[0] = '\0';
	if (pending_parse((const char *)data, size, &ap, err, sizeof(err)) < 0) {
		/* Refused: always with a message. */
		if (err[0] == '\0')
			abort();
		return 0;
	}
	/* Accepted: every field within what resume relies on. */
	if ((int)ap.p.type < CMPC_REQ_IR || (int)ap.p.type > CMPC_REQ_P10CR || ap.p.tid_len == 0 ||
	    ap.p.tid_len > sizeof(ap.p.tid) || ap.p.nonce_len == 0 ||
	    ap.p.nonce_len > sizeof(ap.p.nonce) || ap.key_id_len == 0 ||
	    ap.key_id_len > sizeof(ap.key_id) ||
	    ap.p.cert_req_id != (ap.p.type == CMPC_REQ_P10CR ? -1 : 0) || ap.p.check_after < 0 ||
	    (ap.key_generated != 0 && ap.key_generated != 1) || ap.saved < 0 ||
	    memchr(ap.token_serial, '\0', sizeof(ap.token_serial)) == NULL)
		abort();
	for (i = 0; ap.token_serial[i] != '\0'; i++)
		if ((unsigned char)ap.token_serial[i] < 0x20 ||
		    (unsigned char)ap.token_serial[i] > 0x7e)
			abort();
	/* And it survives being written and read again. */
	n = format(&ap, text, sizeof(text));
	if (n >= sizeof(text) || pending_parse(text, n, &again, err, sizeof(err)) < 0 ||
	    !same(&ap, &again))
		abort();
	return 0;
}
