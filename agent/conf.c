/*
 * The configuration file is in openssl.cnf syntax and read with OpenSSL's
 * NCONF: one section per enrollment; keys in the unnamed default section
 * apply to every enrollment (NCONF falls back to it).
 */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/conf.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/objects.h>

#include "agent/agent.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif
#define DEFAULT_CONF SYSCONFDIR "/p11enroll/p11enroll.conf"

enum kind { K_STR, K_BOOL, K_INT, K_LONG, K_ITER };

struct key {
	const char *name;
	enum kind kind;
	size_t off;
};

#define STR(n, f) { n, K_STR, offsetof(conf_enrollment, f) }
#define BOOL(n, f) { n, K_BOOL, offsetof(conf_enrollment, f) }
#define INT(n, f) { n, K_INT, offsetof(conf_enrollment, f) }

static const struct key keys[] = {
	STR("module", module),
	STR("token", token),
	STR("pin_source", pin_source),
	STR("key_type", key_type),
	STR("key_id", key_id),
	STR("label", label),
	STR("subject", subject),
	STR("san", san),
	STR("server", server),
	STR("reference", reference),
	STR("secret_source", secret_source),
	STR("trusted", trusted),
	STR("tls_trusted", tls_trusted),
	STR("tls_client", tls_client),
	STR("cert_out", cert_out),
	STR("chain_out", chain_out),
	BOOL("implicit_confirm", implicit_confirm),
	BOOL("allow_decrypt", allow_decrypt),
	INT("connect_timeout", connect_timeout),
	INT("timeout", timeout),
	INT("total_timeout", total_timeout),
	{ "max_response_size", K_LONG, offsetof(conf_enrollment, max_response) },
	BOOL("keep_old", keep_old),
	STR("signer", signer),
	STR("protection_cert", protection_cert),
	STR("protection_key", protection_key),
	STR("cert_profile", cert_profile),
	STR("sender", sender),
	STR("recipient", recipient),
	STR("expected_sender", expected_sender),
	STR("srv_trusted", srv_trusted),
	STR("srv_cert", srv_cert),
	BOOL("allow_any_response_signer", any_response_signer),
	STR("rr_protection", rr_protection),
	STR("pbm_owf", pbm_owf),
	STR("pbm_mac", pbm_mac),
	{ "pbm_iterations", K_ITER, offsetof(conf_enrollment, pbm_iterations) },
	BOOL("unprotected_errors", unprotected_errors),
	STR("reason", reason),
	BOOL("delete_revoked", delete_revoked),
	BOOL("use_template", use_template),
	STR("state_dir", state_dir),
	STR("renew_at", renew_at),
	STR("retry_min", retry_min),
	STR("retry_max", retry_max),
	BOOL("bootstrap", bootstrap),
	STR("hook_success", hook_success),
	STR("hook_failure", hook_failure),
	INT("hook_timeout", hook_timeout),
	STR("control_socket", control_socket),
	STR("control_group", control_group),
	STR("metrics_file", metrics_file),
	INT("token_poll", token_poll),
};

void conf_enrollment_init(conf_enrollment *e)
{
	memset(e, 0, sizeof(*e));
	e->implicit_confirm = CONF_FIELD_UNSET;
	e->allow_decrypt = CONF_FIELD_UNSET;
	e->connect_timeout = CONF_FIELD_UNSET;
	e->timeout = CONF_FIELD_UNSET;
	e->total_timeout = CONF_FIELD_UNSET;
	e->max_response = CONF_FIELD_UNSET;
	e->keep_old = CONF_FIELD_UNSET;
	e->pbm_iterations = CONF_FIELD_UNSET;
	e->unprotected_errors = CONF_FIELD_UNSET;
	e->any_response_signer = CONF_FIELD_UNSET;
	e->delete_revoked = CONF_FIELD_UNSET;
	e->use_template = CONF_FIELD_UNSET;
	e->bootstrap = CONF_FIELD_UNSET;
	e->hook_timeout = CONF_FIELD_UNSET;
	e->token_poll = CONF_FIELD_UNSET;
}

void conf_enrollment_clear(conf_enrollment *e)
{
	size_t i;

	free(e->name);
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (keys[i].kind == K_STR)
			free(*(char **)((char *)e + keys[i].off));
	conf_enrollment_init(e);
}

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

static const struct key *find_key(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
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

/*
 * The line of "key = ..." in [section] of path (0 when not found): NCONF
 * keeps no line numbers, and a setting refused after parsing is easier to
 * find with one.  Keys before the first header are in [default].
 */
static long key_line(const char *path, const char *section, const char *key)
{
	char line[1024], cur[256] = "default";
	FILE *f = fopen(path, "r");
	long n = 0, found = 0;

	if (f == NULL)
		return 0;
	while (found == 0 && fgets(line, sizeof(line), f) != NULL) {
		char *p = line + strspn(line, " \t"), *end;
		size_t klen = strlen(key);

		n++;
		if (*p == '[' && (end = strchr(p, ']')) != NULL) {
			p++;
			p += strspn(p, " \t");
			while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
				end--;
			snprintf(cur, sizeof(cur), "%.*s", (int)(end - p), p);
		} else if (strcmp(cur, section) == 0 && strncmp(p, key, klen) == 0 &&
			   p[klen + strspn(p + klen, " \t")] == '=') {
			found = n;
		}
	}
	fclose(f);
	return found;
}

/* Sets one field unless the command line set it already. */
static int set_field(conf_enrollment *e, const struct key *k, const char *value,
		     const char *path, const char *section, char *err, size_t errlen)
{
	void *field = (char *)e + k->off;
	long v;

	switch (k->kind) {
	case K_STR:
		if (*(char **)field != NULL)
			return 0;
		if (k->off == offsetof(conf_enrollment, token) && conf_check_token_uri(value) < 0) {
			long line = key_line(path, section, k->name);
			char where[64] = "";

			if (line > 0)
				snprintf(where, sizeof(where), ", line %ld", line);
			/* The value is the PIN's carrier: never part of the message. */
			snprintf(err, errlen,
				 "%s%s: [%s] token: the URI carries a PIN (pin-value): a PIN "
				 "does not belong in the configuration file; remove it and set "
				 "pin_source = file:PATH (or fd:N, env:NAME)",
				 path, where, section);
			return -1;
		}
		if ((*(char **)field = strdup(value)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		return 0;
	case K_BOOL:
		if (*(int *)field != CONF_FIELD_UNSET)
			return 0;
		if ((*(int *)field = conf_parse_bool(value)) < 0)
			break;
		return 0;
	case K_INT:
		if (*(int *)field != CONF_FIELD_UNSET)
			return 0;
		if (conf_parse_long(value, 0, CONF_MAX_SECONDS, &v) < 0)
			break;
		*(int *)field = (int)v;
		return 0;
	case K_ITER:
		if (*(int *)field != CONF_FIELD_UNSET)
			return 0;
		if (conf_parse_long(value, 100, 100000, &v) < 0)
			break;
		*(int *)field = (int)v;
		return 0;
	case K_LONG:
		if (*(long *)field != CONF_FIELD_UNSET)
			return 0;
		if (conf_parse_long(value, 1024, 1L << 30, &v) < 0)
			break;
		*(long *)field = v;
		return 0;
	}
	snprintf(err, errlen, "%s: [%s] %s = '%.60s' is not a valid %s", path, section, k->name,
		 value,
		 k->kind == K_BOOL ? "yes/no value" :
		 k->kind == K_INT  ? "number of seconds (0 to 2592000)" :
		 k->kind == K_ITER ? "iteration count (100 to 100000)" :
				     "size in bytes (1024 to 1073741824)");
	return -1;
}

/* Typos in key names are errors: a misspelt "trusted" must not silently
 * leave the certificate unverified. */
static int apply_section(CONF *conf, const char *section, conf_enrollment *e, const char *path,
			 char *err, size_t errlen)
{
	STACK_OF(CONF_VALUE) *vals = NCONF_get_section(conf, section);
	int i;

	for (i = 0; i < sk_CONF_VALUE_num(vals); i++) {
		CONF_VALUE *v = sk_CONF_VALUE_value(vals, i);
		const struct key *k = find_key(v->name);

		if (k == NULL) {
			snprintf(err, errlen,
				 "%s: [%s] has an unknown key '%s'; see p11enroll.conf(5)", path,
				 section, v->name);
			return -1;
		}
		if (set_field(e, k, v->value, path, section, err, errlen) < 0)
			return -1;
	}
	return 0;
}

static int is_default(const char *section)
{
	return strcmp(section, "default") == 0;
}

/* The enrollment to use when none is named: the only one there is. */
static int pick_section(CONF *conf, const char *path, const char **ret, char *err,
			size_t errlen)
{
	STACK_OF(OPENSSL_CSTRING) *names = NCONF_get_section_names(conf);
	const char *found = NULL;
	char list[512] = "";
	int i, n = 0;

	for (i = 0; i < sk_OPENSSL_CSTRING_num(names); i++) {
		const char *s = sk_OPENSSL_CSTRING_value(names, i);

		if (is_default(s))
			continue;
		found = s;
		n++;
		if (strlen(list) + strlen(s) + 3 < sizeof(list)) {
			if (list[0] != '\0')
				strncat(list, ", ", sizeof(list) - strlen(list) - 1);
			strncat(list, s, sizeof(list) - strlen(list) - 1);
		}
	}
	sk_OPENSSL_CSTRING_free(names);
	if (n == 1) {
		*ret = found;
		return 0;
	}
	if (n == 0)
		snprintf(err, errlen, "%s defines no enrollment section", path);
	else
		snprintf(err, errlen, "%s defines several enrollments (%s): name one", path, list);
	return -1;
}

int conf_list_names(const char *path, char ***ret_names, size_t *ret_n, char *err, size_t errlen)
{
	STACK_OF(OPENSSL_CSTRING) *names = NULL;
	CONF *conf = NULL;
	char **out = NULL;
	size_t n = 0;
	long eline = -1;
	int i, rc = -1;

	if (path == NULL && (path = getenv("P11ENROLL_CONF")) == NULL)
		path = DEFAULT_CONF;
	if ((conf = NCONF_new(NULL)) == NULL || NCONF_load(conf, path, &eline) <= 0) {
		snprintf(err, errlen, "cannot load the configuration file %s (line %ld)", path,
			 eline);
		ERR_clear_error();
		goto out;
	}
	names = NCONF_get_section_names(conf);
	if ((out = calloc((size_t)sk_OPENSSL_CSTRING_num(names) + 1, sizeof(*out))) == NULL)
		goto oom;
	for (i = 0; i < sk_OPENSSL_CSTRING_num(names); i++) {
		const char *s = sk_OPENSSL_CSTRING_value(names, i);

		if (is_default(s))
			continue;
		if ((out[n] = strdup(s)) == NULL)
			goto oom;
		n++;
	}
	*ret_names = out;
	*ret_n = n;
	out = NULL;
	rc = 0;
	goto out;
oom:
	snprintf(err, errlen, "out of memory");
out:
	if (out != NULL) {
		for (i = 0; out[i] != NULL; i++)
			free(out[i]);
		free(out);
	}
	sk_OPENSSL_CSTRING_free(names);
	NCONF_free(conf);
	return rc;
}

const char *conf_default_path(void)
{
	return DEFAULT_CONF;
}

int conf_load(const char *path, const char *name, conf_enrollment *e, char *err, size_t errlen)
{
	int path_explicit = 1;

	CONF *conf = NULL;
	const char *section = name;
	long eline = -1;
	int rc = -1;

	if (path == NULL)
		path = getenv("P11ENROLL_CONF");
	if (path == NULL) {
		path = DEFAULT_CONF;
		path_explicit = 0;
	}

	if ((conf = NCONF_new(NULL)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	/* A missing default file is fine: the command line says everything. */
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		if (errno == ENOENT && !path_explicit && name == NULL)
			rc = 0;
		else
			snprintf(err, errlen, "cannot read the configuration file %s: %s", path,
				 strerror(errno));
		goto out;
	}
	fclose(f);
	if (NCONF_load(conf, path, &eline) <= 0) {
		unsigned long e2 = ERR_peek_last_error();
		const char *why = ERR_reason_error_string(e2);

		snprintf(err, errlen, "%s, line %ld: %s; see p11enroll.conf(5)", path, eline,
			 why != NULL ? why : "syntax error");
		ERR_clear_error();
		goto out;
	}
	if (section == NULL && pick_section(conf, path, &section, err, errlen) < 0)
		goto out;
	if (is_default(section) || NCONF_get_section(conf, section) == NULL) {
		snprintf(err, errlen, "%s has no enrollment [%s]", path, section);
		goto out;
	}
	if ((e->name = strdup(section)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (apply_section(conf, section, e, path, err, errlen) < 0)
		goto out;
	/* Defaults from the unnamed section, for keys the enrollment left out. */
	if (NCONF_get_section(conf, "default") != NULL &&
	    apply_section(conf, "default", e, path, err, errlen) < 0)
		goto out;
	rc = 0;
out:
	NCONF_free(conf);
	return rc;
}
