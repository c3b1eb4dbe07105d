/*
 * Binary ids as text: key ids in messages, status and the pending file,
 * the bytes of the pending file's transaction id and nonce.  A file of its
 * own, apart from escape.c: it needs libcrypto, and escaping does not (a
 * program may link libagent.a for escape.c without libcrypto).
 */
#include "config.h"

#include <ctype.h>

#include <openssl/crypto.h>

#include "agent/agent.h"

/* OpenSSL's encoder, as in the token and cmp layers (tok_id_hex, the
 * transaction id).  It writes upper case; key ids in messages and pending
 * files are lower case, and the pending-file parser's fuzz corpus and the
 * tests compare them byte for byte.  Only the whole bytes that fit are
 * encoded: OpenSSL refuses a short buffer and leaves an error on its queue. */
static void hex(const unsigned char *p, size_t n, char *out, size_t outlen, int lower)
{
	char *c;

	if (outlen == 0)
		return;
	if (n > (outlen - 1) / 2)
		n = (outlen - 1) / 2;
	if (!OPENSSL_buf2hexstr_ex(out, outlen, NULL, p, n, '\0'))
		out[0] = '\0';
	for (c = out; lower && *c != '\0'; c++)
		*c = (char)tolower((unsigned char)*c);
}

void agent_hex(const unsigned char *p, size_t n, char *out, size_t outlen)
{
	hex(p, n, out, outlen, 1);
}

void agent_hex_upper(const unsigned char *p, size_t n, char *out, size_t outlen)
{
	hex(p, n, out, outlen, 0);
}
