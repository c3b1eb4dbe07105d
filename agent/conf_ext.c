/*
 * The extensions a request asks for besides the SANs (key_usage,
 * extended_key_usage, policies, basic_constraints, name_constraints;
 * openssl cmp's -reqexts
 * and -policy_oids): each value is checked item by item, so that a bad
 * one is named, then built with OpenSSL's X509V3 configuration functions
 * from a value made of checked items only (no '@section', no file
 * references: there is no configuration database behind them).
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/conf.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include "agent/agent.h"

#define EXT_VALUE_MAX 2048

static const char *const key_usages[] = {
	"digitalSignature", "nonRepudiation", "contentCommitment", "keyEncipherment",
	"dataEncipherment", "keyAgreement",   "keyCertSign",	   "cRLSign",
	"encipherOnly",	    "decipherOnly",
};

/* The next comma-separated item of *p, blanks trimmed, into item; -1
 * when it does not fit (never cut: a cut OID is another OID). */
static int next_item(const char **p, char *item, size_t size)
{
	const char *s = *p, *e;
	size_t n;

	while (*s == ' ' || *s == '\t')
		s++;
	n = strcspn(s, ",");
	*p = s[n] == ',' ? s + n + 1 : s + n;
	e = s + n;
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	n = (size_t)(e - s);
	if (n >= size)
		return -1;
	memcpy(item, s, n);
	item[n] = '\0';
	return 0;
}

/* Appends ",item" (or "item" first) to out; -1 when it does not fit. */
static int append(char *out, size_t size, const char *item)
{
	size_t len = strlen(out);
	int n = snprintf(out + len, size - len, "%s%s", len > 0 ? "," : "", item);

	return n < 0 || (size_t)n >= size - len ? -1 : 0;
}

/* A dotted OID: digits and single dots, two arcs at least. */
static int is_dotted_oid(const char *s)
{
	int dots = 0;

	if (*s < '0' || *s > '2')
		return 0;
	for (; *s != '\0'; s++) {
		if (*s == '.') {
			if (s[1] < '0' || s[1] > '9')
				return 0;
			dots++;
		} else if (*s < '0' || *s > '9') {
			return 0;
		}
	}
	return dots > 0;
}

static int check_key_usage(const char *item, char *out, size_t size, char *why, size_t whylen)
{
	size_t i;

	for (i = 0; i < sizeof(key_usages) / sizeof(key_usages[0]); i++)
		if (strcasecmp(item, key_usages[i]) == 0)
			/* RFC 5280's newer name; OpenSSL knows the bit by the old one */
			return append(out, size,
				      strcmp(key_usages[i], "contentCommitment") == 0
					      ? "nonRepudiation"
					      : key_usages[i]) == 0
				       ? 0
				       : agent_fail(why, whylen, "is too long");
	return agent_fail(why, whylen,
			  "'%.80s' is not a key usage; allowed: digitalSignature, "
			  "nonRepudiation, keyEncipherment, dataEncipherment, keyAgreement, "
			  "keyCertSign, cRLSign, encipherOnly, decipherOnly (and critical)",
			  item);
}

/* A purpose OpenSSL knows by name (clientAuth, serverAuth ...) or a dotted OID. */
static int check_eku(const char *item, char *out, size_t size, char *why, size_t whylen)
{
	ASN1_OBJECT *o = NULL;
	char oid[128];

	if (!is_dotted_oid(item) && OBJ_sn2nid(item) == NID_undef && OBJ_ln2nid(item) == NID_undef)
		return agent_fail(why, whylen,
				  "'%.80s' is not an extended key usage: give a name such as "
				  "clientAuth, serverAuth, emailProtection, codeSigning, "
				  "timeStamping, OCSPSigning, or a dotted OID (1.3.6.1.5.5.7.3.2)",
				  item);
	if ((o = OBJ_txt2obj(item, 0)) == NULL || OBJ_obj2txt(oid, sizeof(oid), o, 1) <= 0) {
		ASN1_OBJECT_free(o);
		ERR_clear_error();
		return agent_fail(why, whylen, "'%.80s' is not a valid object identifier", item);
	}
	ASN1_OBJECT_free(o);
	return append(out, size, oid) == 0 ? 0 : agent_fail(why, whylen, "is too long");
}

/* Policy OIDs, dotted (or anyPolicy, 2.5.29.32.0). */
static int check_policy(const char *item, char *out, size_t size, char *why, size_t whylen)
{
	ASN1_OBJECT *o;

	if (strcmp(item, "anyPolicy") == 0)
		item = "2.5.29.32.0";
	if (!is_dotted_oid(item) || (o = OBJ_txt2obj(item, 1)) == NULL) {
		ERR_clear_error();
		return agent_fail(why, whylen,
				  "'%.80s' is not a policy OID: give dotted OIDs such as "
				  "1.3.6.1.4.1.99999.1.2 (or anyPolicy), separated by commas",
				  item);
	}
	ASN1_OBJECT_free(o);
	return append(out, size, item) == 0 ? 0 : agent_fail(why, whylen, "is too long");
}

/* CA:FALSE, or CA:TRUE with an optional pathlen:N. */
static int check_basic_constraints(const char *v, char *out, size_t size, char *why,
				   size_t whylen)
{
	char item[128];
	const char *p = v;
	int ca = -1, pathlen = -1;
	long n;

	while (*p != '\0') {
		if (next_item(&p, item, sizeof(item)) < 0)
			return agent_fail(why, whylen, "has an item that is too long");
		if (strcasecmp(item, "critical") == 0)
			continue;
		if (ca < 0 && strcasecmp(item, "CA:TRUE") == 0) {
			ca = 1;
		} else if (ca < 0 && strcasecmp(item, "CA:FALSE") == 0) {
			ca = 0;
		} else if (ca == 1 && pathlen < 0 && strncasecmp(item, "pathlen:", 8) == 0 &&
			   conf_parse_long(item + 8, 0, 255, &n) == 0) {
			pathlen = (int)n;
		} else {
			return agent_fail(why, whylen,
					  "'%.80s' is not allowed here; write CA:FALSE, CA:TRUE or "
					  "CA:TRUE,pathlen:N (N from 0 to 255)",
					  item);
		}
	}
	if (ca < 0)
		return agent_fail(why, whylen, "says neither CA:TRUE nor CA:FALSE");
	snprintf(item, sizeof(item), "pathlen:%d", pathlen);
	if (append(out, size, ca ? "CA:TRUE" : "CA:FALSE") < 0 ||
	    (pathlen >= 0 && append(out, size, item) < 0))
		return agent_fail(why, whylen, "is too long");
	return 0;
}

/* A DNS name, or a domain with a leading dot: letters, digits, '-', '.'. */
static int is_host(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '.'))
			return 0;
	return 1;
}

/* permitted;TYPE:VALUE or excluded;TYPE:VALUE (OpenSSL's syntax, RFC 5280
 * 4.2.1.10): DNS:host or .domain, email:addr, @host or .domain, URI:host
 * or .domain, IP:address/mask (IPv4 or IPv6).  No dirName: it would name a
 * section of a configuration database there is none of. */
static int check_name_constraint(const char *item, char *out, size_t size, char *why,
				 size_t whylen)
{
	const char *v = strchr(item, ';'), *t;
	ASN1_OCTET_STRING *ip;
	char canon[256];
	int ok;

	if (v == NULL || (strncasecmp(item, "permitted;", 10) != 0 &&
			  strncasecmp(item, "excluded;", 9) != 0))
		return agent_fail(why, whylen,
				  "'%.80s' is not a name constraint; write permitted;TYPE:VALUE or "
				  "excluded;TYPE:VALUE with TYPE DNS, email, URI or IP (as "
				  "permitted;DNS:.example.com,excluded;IP:10.0.0.0/255.0.0.0)",
				  item);
	v++;
	if (strncasecmp(v, "DNS:", 4) == 0 || strncasecmp(v, "URI:", 4) == 0) {
		ok = is_host(v + 4);
	} else if (strncasecmp(v, "email:", 6) == 0) {
		t = strchr(v + 6, '@');
		ok = t != NULL ? t[1] != '\0' && strchr(t + 1, '@') == NULL && is_host(t + 1)
			       : is_host(v + 6);
		ok = ok && strchr(v + 6, ' ') == NULL;
	} else if (strncasecmp(v, "IP:", 3) == 0) {
		ok = strchr(v + 3, '/') != NULL && (ip = a2i_IPADDRESS_NC(v + 3)) != NULL;
		if (ok)
			ASN1_OCTET_STRING_free(ip);
		ERR_clear_error();
		if (!ok)
			return agent_fail(why, whylen,
					  "'%.80s': an IP constraint is an address and a mask, as "
					  "IP:192.168.0.0/255.255.0.0 or IP:2001:db8::/ffff:ffff::",
					  item);
	} else {
		return agent_fail(why, whylen,
				  "'%.80s': the name type must be DNS, email, URI or IP", item);
	}
	if (!ok)
		return agent_fail(why, whylen,
				  "'%.80s': not a host name or domain (letters, digits, '-', '.'; "
				  ".example.com for the names under it)",
				  item);
	/* OpenSSL reads the prefixes and types case-sensitively: its spelling */
	t = strchr(v, ':');
	snprintf(canon, sizeof(canon), "%s;%s:%s",
		 strncasecmp(item, "permitted;", 10) == 0 ? "permitted" : "excluded",
		 strncasecmp(v, "DNS:", 4) == 0	  ? "DNS"
		 : strncasecmp(v, "URI:", 4) == 0 ? "URI"
		 : strncasecmp(v, "IP:", 3) == 0  ? "IP"
						  : "email",
		 t + 1);
	return append(out, size, canon) == 0 ? 0 : agent_fail(why, whylen, "is too long");
}

/* Which extension a key asks for, and whether it is critical when the
 * value does not say: keyUsage, basicConstraints and nameConstraints are
 * (RFC 5280 4.2.1.3, 4.2.1.9, 4.2.1.10), extendedKeyUsage and
 * certificatePolicies are not. */
static int ext_nid(const char *key, int *ret_crit)
{
	if (strcmp(key, "key_usage") == 0) {
		*ret_crit = 1;
		return NID_key_usage;
	}
	if (strcmp(key, "basic_constraints") == 0) {
		*ret_crit = 1;
		return NID_basic_constraints;
	}
	/* RFC 5280 4.2.1.10: conforming CAs MUST mark it critical. */
	if (strcmp(key, "name_constraints") == 0) {
		*ret_crit = 1;
		return NID_name_constraints;
	}
	*ret_crit = 0;
	if (strcmp(key, "extended_key_usage") == 0)
		return NID_ext_key_usage;
	if (strcmp(key, "policies") == 0)
		return NID_certificate_policies;
	return NID_undef;
}

X509_EXTENSION *conf_parse_extension(const char *key, const char *v, char *why, size_t whylen)
{
	char out[EXT_VALUE_MAX] = "", items[EXT_VALUE_MAX] = "", item[256];
	const char *p = v;
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	CONF *conf;
	int crit, nid = ext_nid(key, &crit), r = 0;

	if (nid == NID_undef) {
		agent_fail(why, whylen, "is not an extension setting");
		return NULL;
	}
	if (strlen(v) >= sizeof(item) * 4) {
		agent_fail(why, whylen, "is too long");
		return NULL;
	}
	if (nid == NID_basic_constraints) {
		r = check_basic_constraints(v, items, sizeof(items), why, whylen);
	} else {
		while (r == 0 && *p != '\0') {
			if (next_item(&p, item, sizeof(item)) < 0)
				r = agent_fail(why, whylen, "has an item that is too long");
			else if (item[0] == '\0')
				r = agent_fail(why, whylen, "has an empty item (two commas)");
			else if (strcasecmp(item, "critical") == 0)
				crit = 1;
			else if (nid == NID_key_usage)
				r = check_key_usage(item, items, sizeof(items), why, whylen);
			else if (nid == NID_ext_key_usage)
				r = check_eku(item, items, sizeof(items), why, whylen);
			else if (nid == NID_name_constraints)
				r = check_name_constraint(item, items, sizeof(items), why, whylen);
			else
				r = check_policy(item, items, sizeof(items), why, whylen);
		}
		if (r == 0 && items[0] == '\0')
			r = agent_fail(why, whylen, "names nothing");
	}
	if (r < 0)
		return NULL;
	snprintf(out, sizeof(out), "%s%s", crit ? "critical," : "", items);
	X509V3_set_ctx(&ctx, NULL, NULL, NULL, NULL, 0);
	/* certificatePolicies wants a configuration database even when no
	 * section is named: an empty one (the items were checked above). */
	if ((conf = NCONF_new(NULL)) == NULL) {
		agent_fail(why, whylen, "out of memory");
		return NULL;
	}
	X509V3_set_nconf(&ctx, conf);
	ext = X509V3_EXT_nconf_nid(conf, &ctx, nid, out);
	NCONF_free(conf);
	if (ext == NULL) {
		ERR_clear_error();
		agent_fail(why, whylen, "'%.200s' cannot be made into the %s extension", v,
			   OBJ_nid2ln(nid));
	}
	return ext;
}

int conf_request_extensions(const conf_enrollment *e, STACK_OF(X509_EXTENSION) **ret, char *why,
			    size_t whylen)
{
	const struct {
		const char *key, *value;
	} v[] = {
		{ "key_usage", e->key_usage },
		{ "extended_key_usage", e->extended_key_usage },
		{ "basic_constraints", e->basic_constraints },
		{ "name_constraints", e->name_constraints },
		{ "policies", e->policies },
	};
	STACK_OF(X509_EXTENSION) *exts = NULL;
	X509_EXTENSION *ext;
	char w[512];
	size_t i;

	*ret = NULL;
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		if (v[i].value == NULL)
			continue;
		if ((ext = conf_parse_extension(v[i].key, v[i].value, w, sizeof(w))) == NULL) {
			agent_fail(why, whylen, "%s: %s", v[i].key, w);
			goto fail;
		}
		if ((exts == NULL && (exts = sk_X509_EXTENSION_new_null()) == NULL) ||
		    !sk_X509_EXTENSION_push(exts, ext)) {
			X509_EXTENSION_free(ext);
			agent_fail(why, whylen, "out of memory building the requested extensions");
			goto fail;
		}
	}
	*ret = exts;
	return 0;
fail:
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	return -1;
}
