/*
 * secret_pin_generate: PINs for tokens a station initializes.  Drawn from
 * OpenSSL's private DRBG (RAND_priv_bytes: PINs are long-term secrets, and
 * its output is kept apart from the public DRBG's nonces and salts).  Each
 * character takes one random byte, used only when it falls below the
 * largest multiple of the alphabet size (256 - 256 % n): a plain b % n
 * would give the first 256 % n characters one chance in 256 more (4% more
 * often for digits).
 */
#include "config.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "agent/agent.h"

int secret_pin_generate(char *buf, size_t bufsize, size_t len, const char *alphabet)
{
	unsigned char r[64];
	size_t n, limit, o = 0, i = sizeof(r);

	if (alphabet == NULL)
		alphabet = "0123456789";
	n = strlen(alphabet);
	if (buf == NULL || bufsize <= len || n == 0 || n > 256)
		return -1;
	limit = 256 - 256 % n;
	while (o < len) {
		if (i == sizeof(r)) {
			if (RAND_priv_bytes(r, sizeof(r)) != 1) {
				OPENSSL_cleanse(r, sizeof(r));
				OPENSSL_cleanse(buf, bufsize);
				return -1;
			}
			i = 0;
		}
		if (r[i] < limit)
			buf[o++] = alphabet[r[i] % n];
		i++;
	}
	buf[o] = '\0';
	OPENSSL_cleanse(r, sizeof(r));
	return 0;
}
