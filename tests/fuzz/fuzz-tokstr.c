/*
 * Fuzz target: the strings a token hands over in CK_TOKEN_INFO, which the
 * token's firmware (or a hostile module) chooses.  Input: 16 bytes of
 * serialNumber, 32 of label, then the configured token URI (up to a NUL
 * or the end).
 *
 * - tok_info_from_ck: the serial the agent takes as the token's identity
 *   is either "" or exactly the field's printable ASCII, never a cut or
 *   altered one;
 * - agent_escape of the label: nothing a terminal acts on (C0, DEL, C1),
 *   valid UTF-8, and printable UTF-8 kept as it is;
 * - tok_uri_pin_serial: the pinned URI parses, names exactly the token's
 *   serial, and otherwise selects what the user's URI selects.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <p11-kit/uri.h>

#include "agent/agent.h"
#include "pkcs11/tok-int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Length of the code point at p if it is valid UTF-8 and printable, else 0.
 * Decodes the value, unlike agent_escape's byte-range checks. */
static size_t clean_len(const unsigned char *p)
{
	unsigned long cp;
	size_t n, i;

	if (p[0] < 0x80)
		return p[0] >= 0x20 && p[0] != 0x7f ? 1 : 0;
	if ((p[0] & 0xe0) == 0xc0)
		n = 2, cp = p[0] & 0x1f;
	else if ((p[0] & 0xf0) == 0xe0)
		n = 3, cp = p[0] & 0x0f;
	else if ((p[0] & 0xf8) == 0xf0)
		n = 4, cp = p[0] & 0x07;
	else
		return 0;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f))
		return 0;
	return n;
}

static int clean(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n;

	while (*p != '\0') {
		if ((n = clean_len(p)) == 0)
			return 0;
		p += n;
	}
	return 1;
}

static void check_serial(const CK_TOKEN_INFO *ti, const tok_info *info)
{
	size_t n = sizeof(ti->serialNumber), i;
	int printable = 1;

	while (n > 0 && (ti->serialNumber[n - 1] == ' ' || ti->serialNumber[n - 1] == '\0'))
		n--;
	for (i = 0; i < n; i++)
		if (ti->serialNumber[i] < 0x20 || ti->serialNumber[i] > 0x7e)
			printable = 0;
	if (printable ? strlen(info->serial) != n || memcmp(info->serial, ti->serialNumber, n) != 0
		      : info->serial[0] != '\0')
		abort();
}

static void check_label(const char *label)
{
	char out[4 * 33];

	agent_escape(label, out, sizeof(out));
	if (!clean(out))
		abort();
	if (clean(label) && strcmp(out, label) != 0)
		abort();
}

/* An empty attribute in the path (RFC 7512 has none), other than at its
 * end: p11-kit reads what follows it as query attributes, so no serial
 * added after it would select the token. */
static int empty_attr(const char *uri)
{
	char text[1025];
	size_t end = 0, i, scheme;

	/* p11-kit's parser skips these anywhere (P11_URL_WHITESPACE). */
	for (i = 0; uri[i] != '\0' && end < sizeof(text) - 1; i++)
		if (strchr(" \n\r\v", uri[i]) == NULL)
			text[end++] = uri[i];
	text[end] = '\0';
	scheme = strcspn(text, ":") + 1;
	end = strcspn(text, "?");
	while (end > scheme && text[end - 1] == ';')
		end--;
	if (end > scheme && text[scheme] == ';')
		return 1;
	for (i = scheme + 1; i < end; i++)
		if (text[i] == ';' && text[i - 1] == ';')
			return 1;
	return 0;
}

/* The pinned URI (tok_uri_pin_identity with only a serial known) must be
 * the user's plus the serial, nothing else; or, where that cannot be,
 * refused. */
static void check_pin(const char *uri, const char *serial)
{
	P11KitUri *user = p11_kit_uri_new(), *pinned = p11_kit_uri_new();
	CK_TOKEN_INFO *ti;
	char *out = NULL, *a = NULL, *b = NULL, padded[16];
	tok_info id;
	tok_rv rv;
	size_t i;
	int set;

	if (user == NULL || pinned == NULL)
		abort();
	memset(&id, 0, sizeof(id));
	snprintf(id.serial, sizeof(id.serial), "%s", serial);
	rv = tok_uri_pin_identity(uri, &id, &out);
	if (p11_kit_uri_parse(uri, P11_KIT_URI_FOR_ANY, user) != P11_KIT_URI_OK) {
		if (rv == TOK_OK)
			abort();
		goto done;
	}
	ti = p11_kit_uri_get_token_info(user);
	/* Set when any byte is neither blank nor NUL ("serial=%00" names no
	 * token: p11-kit never matches it, and pinning replaces it). */
	for (set = 0, i = 0; i < sizeof(ti->serialNumber); i++)
		if (ti->serialNumber[i] != ' ' && ti->serialNumber[i] != '\0')
			set = 1;
	if (rv != TOK_OK) {
		if (set || !empty_attr(uri))
			abort();
		goto done;
	}
	if (set != (out == NULL))
		abort();
	if (out == NULL)
		goto done;
	if (p11_kit_uri_parse(out, P11_KIT_URI_FOR_ANY, pinned) != P11_KIT_URI_OK)
		abort();
	memset(padded, ' ', sizeof(padded));
	memcpy(padded, serial, strlen(serial));
	ti = p11_kit_uri_get_token_info(pinned);
	if (memcmp(ti->serialNumber, padded, sizeof(padded)) != 0)
		abort();
	/* As the user's had it: unset, or set to blanks ("serial="). */
	memcpy(ti->serialNumber, p11_kit_uri_get_token_info(user)->serialNumber,
	       sizeof(ti->serialNumber));
	if (p11_kit_uri_format(user, P11_KIT_URI_FOR_ANY, &a) != P11_KIT_URI_OK ||
	    p11_kit_uri_format(pinned, P11_KIT_URI_FOR_ANY, &b) != P11_KIT_URI_OK || strcmp(a, b) != 0)
		abort();
done:
	free(a);
	free(b);
	OPENSSL_free(out);
	p11_kit_uri_free(user);
	p11_kit_uri_free(pinned);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	CK_TOKEN_INFO ti;
	tok_info info;
	char uri[1025];
	size_t n, head = sizeof(ti.serialNumber) + sizeof(ti.label);

	memset(&ti, ' ', sizeof(ti));
	memcpy(ti.serialNumber, data, size < 16 ? size : 16);
	if (size > 16)
		memcpy(ti.label, data + 16, size < head ? size - 16 : 32);
	ti.flags = 0;
	tok_info_from_ck(&ti, &info);
	check_serial(&ti, &info);
	check_label(info.label);
	if (size <= head || info.serial[0] == '\0')
		return 0;
	n = size - head < sizeof(uri) - 1 ? size - head : sizeof(uri) - 1;
	memcpy(uri, data + head, n);
	uri[n] = '\0';
	check_pin(uri, info.serial);
	return 0;
}
