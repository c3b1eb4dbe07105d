/* Unit tests of the requested-extension settings (agent/conf_ext.c): each
 * value, row by row, with the extension it makes (its DER and criticality)
 * or the words that name the bad item. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <openssl/x509v3.h>

#include "agent/agent.h"
#include "tests/unit/tap.h"

/* The extension's value as hex, critical or not: "c:HEX" / "-:HEX". */
static const char *describe(X509_EXTENSION *ext, char *buf, size_t size)
{
	const ASN1_OCTET_STRING *v = X509_EXTENSION_get_data(ext);
	size_t i, n = 2;

	snprintf(buf, size, "%s:", X509_EXTENSION_get_critical(ext) ? "c" : "-");
	for (i = 0; i < (size_t)ASN1_STRING_length(v) && n + 3 < size; i++, n += 2)
		snprintf(buf + n, size - n, "%02X", ASN1_STRING_get0_data(v)[i]);
	return buf;
}

static const struct {
	const char *key, *value;
	const char *want; /* "c:HEX"/"-:HEX", or "!" and the start of the error */
} rows[] = {
	/* keyUsage: named bits, any case, always critical */
	{ "key_usage", "digitalSignature,keyEncipherment", "c:030205A0" },
	{ "key_usage", " DIGITALSIGNATURE , keyencipherment ", "c:030205A0" },
	{ "key_usage", "contentCommitment", "c:03020640" },
	{ "key_usage", "keyCertSign,cRLSign,critical", "c:03020106" },
	{ "key_usage", "decipherOnly", "c:0303070080" },
	{ "key_usage", "critical", "!names nothing" },
	{ "key_usage", "signing", "!'signing' is not a key usage" },
	{ "key_usage", "digitalSignature,", "c:03020780" },
	{ "key_usage", ",digitalSignature", "!has an empty item" },
	/* extendedKeyUsage: names and dotted OIDs, critical when asked */
	{ "extended_key_usage", "clientAuth", "-:300A06082B06010505070302" },
	{ "extended_key_usage", "TLS Web Client Authentication", "-:300A06082B06010505070302" },
	{ "extended_key_usage", "1.3.6.1.5.5.7.3.2,critical", "c:300A06082B06010505070302" },
	{ "extended_key_usage", "1..3", "!'1..3' is not an extended key usage" },
	{ "extended_key_usage", "3.1", "!'3.1' is not an extended key usage" },
	{ "extended_key_usage", "1.2.", "!'1.2.' is not an extended key usage" },
	{ "extended_key_usage", "noSuchPurpose", "!'noSuchPurpose' is not an extended" },
	/* certificatePolicies: dotted OIDs only, no sections, no qualifiers */
	{ "policies", "1.2.3", "-:3006300406022A03" },
	{ "policies", "anyPolicy", "-:300830060604551D2000" },
	{ "policies", "1.2.3,critical", "c:3006300406022A03" },
	{ "policies", "@sect", "!'@sect' is not a policy OID" },
	{ "policies", "clientAuth", "!'clientAuth' is not a policy OID" },
	{ "policies", "1.2.3:CPS", "!'1.2.3:CPS' is not a policy OID" },
	/* basicConstraints */
	{ "basic_constraints", "CA:FALSE", "c:3000" },
	{ "basic_constraints", "ca:true", "c:30030101FF" },
	{ "basic_constraints", "CA:TRUE,pathlen:0", "c:30060101FF020100" },
	{ "basic_constraints", "critical,CA:TRUE,pathlen:255", "c:30070101FF020200FF" },
	{ "basic_constraints", "CA:TRUE,pathlen:256", "!'pathlen:256' is not allowed" },
	{ "basic_constraints", "pathlen:1", "!'pathlen:1' is not allowed" },
	{ "basic_constraints", "CA:FALSE,CA:TRUE", "!'CA:TRUE' is not allowed" },
	{ "basic_constraints", "critical", "!says neither CA:TRUE nor CA:FALSE" },
	{ "basic_constraints", "CA:FALSE,pathlen:-1", "!'pathlen:-1' is not allowed" },
	/* not an extension key */
	{ "san", "DNS:x", "!is not an extension setting" },
};

static void test_rows(void)
{
	char why[512], got[512], name[128];
	X509_EXTENSION *ext;
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		snprintf(name, sizeof(name), "/conf-ext/%s/%zu", rows[i].key, i);
		why[0] = '\0';
		ext = conf_parse_extension(rows[i].key, rows[i].value, why, sizeof(why));
		if (rows[i].want[0] == '!')
			tap_ok(ext == NULL && strncmp(why, rows[i].want + 1,
						      strlen(rows[i].want + 1)) == 0,
			       name, "'%s': %s", rows[i].value,
			       ext != NULL ? describe(ext, got, sizeof(got)) : why);
		else
			tap_ok(ext != NULL &&
				       strcmp(describe(ext, got, sizeof(got)), rows[i].want) == 0,
			       name, "'%s': %s (want %s)", rows[i].value, ext != NULL ? got : why,
			       rows[i].want);
		X509_EXTENSION_free(ext);
	}
}

/* A cut OID would be another OID: an item too long for the buffer is an
 * error, and so is a value too long altogether. */
static void test_long(void)
{
	char v[2100], why[512];
	X509_EXTENSION *ext;

	memset(v, 0, sizeof(v));
	memcpy(v, "1.2.", 4);
	memset(v + 4, '3', 300);
	ext = conf_parse_extension("policies", v, why, sizeof(why));
	tap_ok(ext == NULL && strcmp(why, "has an item that is too long") == 0,
	       "/conf-ext/long-item", "%s", why);
	X509_EXTENSION_free(ext);
	memset(v, 0, sizeof(v));
	memset(v, 'x', sizeof(v) - 1);
	ext = conf_parse_extension("key_usage", v, why, sizeof(why));
	tap_ok(ext == NULL && strcmp(why, "is too long") == 0, "/conf-ext/long-value", "%s", why);
	X509_EXTENSION_free(ext);
}

/* Every configured extension of an enrollment, in a fixed order; the bad
 * one named by its key. */
static void test_enrollment(void)
{
	STACK_OF(X509_EXTENSION) *exts = NULL;
	conf_enrollment e;
	char why[512], ku[] = "digitalSignature", eku[] = "clientAuth", bc[] = "CA:FALSE",
			    pol[] = "1.2.3", bad[] = "clientAuth,bogus";
	int ok;

	conf_enrollment_init(&e);
	tap_check(conf_request_extensions(&e, &exts, why, sizeof(why)) == 0 && exts == NULL,
		  "/conf-ext/enrollment/none");
	e.policies = pol;
	e.key_usage = ku;
	e.basic_constraints = bc;
	e.extended_key_usage = eku;
	ok = conf_request_extensions(&e, &exts, why, sizeof(why)) == 0 &&
	     sk_X509_EXTENSION_num(exts) == 4 &&
	     OBJ_obj2nid(X509_EXTENSION_get_object(sk_X509_EXTENSION_value(exts, 0))) ==
		     NID_key_usage &&
	     OBJ_obj2nid(X509_EXTENSION_get_object(sk_X509_EXTENSION_value(exts, 1))) ==
		     NID_ext_key_usage &&
	     OBJ_obj2nid(X509_EXTENSION_get_object(sk_X509_EXTENSION_value(exts, 2))) ==
		     NID_basic_constraints &&
	     OBJ_obj2nid(X509_EXTENSION_get_object(sk_X509_EXTENSION_value(exts, 3))) ==
		     NID_certificate_policies;
	tap_check(ok, "/conf-ext/enrollment/all-in-order");
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	exts = NULL;
	e.extended_key_usage = bad;
	tap_ok(conf_request_extensions(&e, &exts, why, sizeof(why)) < 0 && exts == NULL &&
		       strncmp(why, "extended_key_usage: 'bogus' ", 28) == 0,
	       "/conf-ext/enrollment/bad-named", "%s", why);
	/* the fields point at this function's arrays: not conf_enrollment_clear */
}

int main(void)
{
	log_init("test-conf-ext", -1, 0);
	tap_plan((int)(sizeof(rows) / sizeof(rows[0])) + 2 + 3);
	test_rows();
	test_long();
	test_enrollment();
	return tap_done();
}
