/*
 * Subject names and subject alternative names as users write them in the
 * configuration and on the command line.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "agent/agent.h"

/* "/CN=Badge 1/O=Example" as in openssl -subj; "\/" escapes a slash. */
X509_NAME *conf_parse_subject(const char *s, char *err, size_t errlen)
{
	X509_NAME *name = X509_NAME_new();
	char *buf = strdup(s), *p, *out;

	if (name == NULL || buf == NULL)
		goto oom;
	if (*s != '/') {
		snprintf(err, errlen, "subject '%.200s' must start with '/', as in /CN=name/O=org",
			 s);
		goto fail;
	}
	p = buf + 1;
	while (*p != '\0') {
		char *type = p, *value, *eq;

		/* Unescape in place up to the next unescaped '/'. */
		for (out = p; *p != '\0' && *p != '/'; p++) {
			if (*p == '\\' && p[1] != '\0')
				p++;
			*out++ = *p;
		}
		if (*p == '/')
			p++;
		*out = '\0';
		eq = strchr(type, '=');
		if (eq == NULL || eq == type || eq[1] == '\0') {
			snprintf(err, errlen, "subject component '%.100s' is not TYPE=value", type);
			goto fail;
		}
		*eq = '\0';
		value = eq + 1;
		if (!X509_NAME_add_entry_by_txt(name, type, MBSTRING_UTF8,
						(const unsigned char *)value, -1, -1, 0)) {
			snprintf(err, errlen, "subject attribute type '%.60s' is unknown", type);
			ERR_clear_error();
			goto fail;
		}
	}
	if (X509_NAME_entry_count(name) == 0) {
		snprintf(err, errlen, "subject '%s' is empty", s);
		goto fail;
	}
	free(buf);
	return name;
oom:
	snprintf(err, errlen, "out of memory");
fail:
	free(buf);
	X509_NAME_free(name);
	return NULL;
}

/*
 * subjectAltName in OpenSSL's syntax: "DNS:a.example, email:x@example, IP:10.0.0.1".
 * The context has no configuration database and no subject: OpenSSL 3.0
 * dereferences a NULL context for the names that refer to a section
 * (dirName:SECTION) or to the subject (email:copy), so those must fail
 * through the context's empty fields, as an error, not as a crash.
 */
GENERAL_NAMES *conf_parse_sans(const char *s, char *err, size_t errlen)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	GENERAL_NAMES *gens;

	X509V3_set_ctx(&ctx, NULL, NULL, NULL, NULL, 0);
	ext = X509V3_EXT_nconf_nid(NULL, &ctx, NID_subject_alt_name, s);
	gens = ext != NULL ? X509V3_EXT_d2i(ext) : NULL;
	X509_EXTENSION_free(ext);
	if (gens == NULL) {
		snprintf(err, errlen,
			 "subject alternative names '%.200s' are not in OpenSSL's syntax "
			 "(DNS:name, email:addr, IP:addr, URI:uri, RID:oid, separated by "
			 "commas; dirName and email:copy are not supported)",
			 s);
		ERR_clear_error();
	}
	return gens;
}
