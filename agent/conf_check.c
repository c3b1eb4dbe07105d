/*
 * The check of one setting's value, by its type (settings.h): the same for
 * the configuration file and the command line, so that a value refused in
 * one is refused in the other with the same words.  Nothing here reads a
 * PIN or secret: a file source is checked for existence and access only.
 */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/x509v3.h>

#include "agent/agent.h"
#include "agent/sched.h"
#include "cmp/cmpc.h"
#include "pkcs11/tok.h"

void conf_diag_add(conf_diag *d, int is_error, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (is_error)
		d->errors++;
	else
		d->warnings++;
	for (;;) {
		size_t room = d->cap - d->len;

		va_start(ap, fmt);
		n = room > 0 ? vsnprintf(d->text + d->len, room, fmt, ap) : 0;
		va_end(ap);
		if (n < 0)
			return;
		/* the line, its newline and the NUL */
		if (room > 0 && (size_t)n + 2 <= room) {
			d->len += (size_t)n;
			d->text[d->len++] = '\n';
			d->text[d->len] = '\0';
			return;
		}
		if (room == 0) {
			va_start(ap, fmt);
			n = vsnprintf(NULL, 0, fmt, ap);
			va_end(ap);
			if (n < 0)
				return;
		}
		size_t want = d->cap + (size_t)n + 256;
		char *p = realloc(d->text, want);

		if (p == NULL) {
			/* The count stays: the caller fails even when the words are lost. */
			return;
		}
		d->text = p;
		d->cap = want;
		d->text[d->len] = '\0';
	}
}

void conf_diag_clear(conf_diag *d)
{
	free(d->text);
	memset(d, 0, sizeof(*d));
}

/* file:PATH must name something this process may read that is not a
 * directory (opening it could block: a FIFO is checked, never opened);
 * fd:N a number; env:NAME a variable that is set. */
static int check_source(const char *v, int protected_ok, int flags, char *why, size_t whylen)
{
	const char *allowed = protected_ok ? "file:PATH, fd:N, env:NAME or protected"
					   : "file:PATH, fd:N or env:NAME";
	long n;

	if (protected_ok && strcmp(v, "protected") == 0)
		return 0;
	if (strncmp(v, "file:", 5) == 0) {
		struct stat st;

		if (v[5] == '\0')
			return agent_fail(why, whylen, "file: names no file; allowed: %s", allowed);
		if (flags & CONF_CHECK_PIN_OPTIONAL)
			return 0;
		if (stat(v + 5, &st) != 0 ||
		    ((flags & CONF_CHECK_ACCESS) && access(v + 5, R_OK) != 0))
			return agent_fail(why, whylen, "cannot read %s: %s", v + 5, strerror(errno));
		/* A FIFO or a device is a source too (a PIN handed over by
		 * another process): only a directory cannot be one. */
		if (S_ISDIR(st.st_mode))
			return agent_fail(why, whylen, "%s is a directory; allowed: %s", v + 5, allowed);
		return 0;
	}
	if (strncmp(v, "fd:", 3) == 0)
		return conf_parse_long(v + 3, 0, 65535, &n) == 0
			       ? 0
			       : agent_fail(why, whylen, "fd: needs a descriptor number");
	if (strncmp(v, "env:", 4) == 0) {
		if (v[4] == '\0')
			return agent_fail(why, whylen, "env: names no variable");
		return getenv(v + 4) != NULL || (flags & CONF_CHECK_PIN_OPTIONAL)
			       ? 0
			       : agent_fail(why, whylen, "the environment variable %s is not set", v + 4);
	}
	/* Never echoed: a PIN written here by mistake would reach a log. */
	return agent_fail(why, whylen, "not a source; allowed: %s (a secret is never written here)",
		    allowed);
}

/* The first blank-separated word: an absolute path of an executable. */
static int check_command(const char *v, int flags, char *why, size_t whylen)
{
	char prog[1024];
	size_t n = strcspn(v, " \t");

	if (n == 0)
		return agent_fail(why, whylen, "names no program");
	if (n >= sizeof(prog))
		return agent_fail(why, whylen, "the program's path is too long");
	memcpy(prog, v, n);
	prog[n] = '\0';
	if (prog[0] != '/')
		return agent_fail(why, whylen,
			    "'%s' is not an absolute path; hooks run without a shell and "
			    "without a search path: give the full path",
			    prog);
	if ((flags & CONF_CHECK_ACCESS) && access(prog, X_OK) != 0)
		return agent_fail(why, whylen, "cannot run %s: %s", prog, strerror(errno));
	return 0;
}

/* A remote spool directory, [user@]host[:port]/dir/: the password is a
 * setting of its own, never in the URL that messages show. */
static int check_rfile_url(const char *v, char *why, size_t whylen)
{
	const char *host = strstr(v, "://") + 3, *at, *path = host + strcspn(host, "/");

	at = memchr(host, '@', (size_t)(path - host));
	if (at != NULL && memchr(host, ':', (size_t)(at - host)) != NULL)
		/* not echoed: the value holds a password */
		return agent_fail(why, whylen,
			    "the URL carries a password: remove ':password' before '@' and set "
			    "store_password_source");
	if (at != NULL)
		host = at + 1;
	if (*host == '\0' || *host == '/' || *host == ':')
		return agent_fail(why, whylen, "the URL names no host");
	if (*path != '/')
		return agent_fail(why, whylen,
			    "the URL names no directory: write it as scheme://[user@]host[:port]/dir/");
	if (strpbrk(path, "?#") != NULL)
		return agent_fail(why, whylen, "the directory's URL has a query or fragment");
	return 0;
}

static int check_url(const char *v, char *why, size_t whylen)
{
	const char *host, *slash;
	int tcp = 0;

	if (strncmp(v, "file://", 7) == 0)
		return v[7] == '/' ? 0
				   : agent_fail(why, whylen, "a spool directory is written "
							     "file:///absolute/path");
	/* the address alone: the mail servers are settings of their own */
	if (strncasecmp(v, "mailto:", 7) == 0)
		return strchr(v + 7, '@') != NULL && strpbrk(v + 7, "?,; <>\"") == NULL
			       ? 0
			       : agent_fail(why, whylen, "a CA's mail address is written "
							 "mailto:ca@example.org (one address, "
							 "nothing after it)");
	if (strncasecmp(v, "http://", 7) == 0)
		host = v + 7;
	else if (strncasecmp(v, "https://", 8) == 0)
		host = v + 8;
	else if (strncasecmp(v, "tcp://", 6) == 0)
		host = v + 6, tcp = 1;
	else if (cmpc_is_rfile_url(v))
		return check_rfile_url(v, why, whylen);
	else
		return agent_fail(why, whylen, "not an http://, https://, tcp://, file:///, ftp://, "
					 "ftps://, sftp://, scp:// or mailto: URL "
					 "(https://ca.example/.well-known/cmp, tcp://ca.example)");
	if (*host == '\0' || *host == '/')
		return agent_fail(why, whylen, "the URL names no host");
	/* CMP over TCP has no place for a path (cmp/cmpc_tcp.c) */
	if (tcp && (slash = strpbrk(host, "/?#")) != NULL && strcmp(slash, "/") != 0)
		return agent_fail(why, whylen, "a tcp:// URL has no path: tcp://host[:port]");
	return 0;
}

static int check_dn(const char *v, char *why, size_t whylen)
{
	X509_NAME *n = conf_parse_subject(v, why, whylen);

	X509_NAME_free(n);
	return n != NULL ? 0 : -1;
}

static int check_sans(const char *v, char *why, size_t whylen)
{
	GENERAL_NAMES *g = conf_parse_sans(v, why, whylen);

	GENERAL_NAMES_free(g);
	return g != NULL ? 0 : -1;
}

static int check_extension(const char *key, const char *v, char *why, size_t whylen)
{
	X509_EXTENSION *ext = conf_parse_extension(key, v, why, whylen);

	X509_EXTENSION_free(ext);
	return ext != NULL ? 0 : -1;
}

/* What libcurl takes as a proxy; credentials would be a secret in the
 * configuration and on the command line, so they are refused. */
static int check_proxy(const char *v, char *why, size_t whylen)
{
	static const char *const schemes[] = { "http://",  "https://",	"socks4://",
					       "socks4a://", "socks5://", "socks5h://" };
	const char *host = v, *sep = strstr(v, "://");
	size_t i;

	if (sep != NULL) {
		for (i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
			if (strncasecmp(v, schemes[i], strlen(schemes[i])) == 0)
				break;
		if (i == sizeof(schemes) / sizeof(schemes[0]))
			return agent_fail(why, whylen,
				    "'%.80s' has a scheme libcurl has no proxy for; use http://, "
				    "https://, socks4://, socks4a://, socks5:// or socks5h://",
				    v);
		host = sep + 3;
	}
	if (strpbrk(v, " \t\r\n") != NULL)
		return agent_fail(why, whylen, "contains blanks; write [scheme://]host[:port]");
	if (strchr(host, '@') != NULL)
		/* never echoed: the part before '@' may be a password */
		return agent_fail(why, whylen,
			    "carries credentials (user:password@): a secret does not belong in "
			    "the configuration; use a proxy that needs none, or one on this host");
	if (*host == '\0' || *host == '/' || *host == ':')
		return agent_fail(why, whylen, "names no host; write [scheme://]host[:port]");
	return 0;
}

int conf_check_value(const setting *s, const char *v, int flags, int *ret_int, char *why,
		     size_t whylen)
{
	size_t len = strlen(v);
	unsigned char id[TOK_ID_MAX];
	sched_policy pol;
	long n;
	int a, b;

	if (len == 0 && s->type != SET_BOOL)
		return agent_fail(why, whylen, "is empty");
	switch (s->type) {
	case SET_TEXT:
		if (strcmp(s->key, "archive_format") == 0 && strcmp(v, "enveloped") != 0 &&
		    strcmp(v, "encrypted-value") != 0)
			return agent_fail(why, whylen, "'%s' is not one of enveloped, encrypted-value",
					  v);
		return 0;
	case SET_PATH:
		return 0;
	case SET_ABSPATH:
		return v[0] == '/' ? 0
				   : agent_fail(why, whylen, "'%s' is not an absolute path (it must not "
						       "depend on the directory the agent starts in)",
					  v);
	case SET_COMMAND:
		return check_command(v, flags, why, whylen);
	case SET_MODULE:
		if (strchr(v, '/') != NULL && v[0] != '/')
			return agent_fail(why, whylen,
				    "'%s' is a relative path: give the module's absolute path, or "
				    "a p11-kit module name (no '/')",
				    v);
		return 0;
	case SET_TOKEN_URI:
		if (conf_check_token_uri(v) < 0)
			/* The value carries the PIN: never part of the message. */
			return agent_fail(why, whylen,
				    "the URI carries a PIN (pin-value): a PIN does not belong "
				    "here; remove it and set pin_source = file:PATH (or fd:N, "
				    "env:NAME)");
		if (strncasecmp(v, "pkcs11:", 7) != 0)
			return agent_fail(why, whylen, "not a pkcs11: URI (RFC 7512), such as "
						 "pkcs11:token=NAME");
		{
			char reason[200] = "";

			if (tok_uri_check(v, reason, sizeof(reason)) != TOK_OK)
				return agent_fail(why, whylen,
					    "not a valid pkcs11: URI: %s; write an RFC 7512 URI "
					    "such as pkcs11:token=NAME",
					    reason[0] != '\0' ? reason : "out of memory");
		}
		return 0;
	case SET_URL:
		return check_url(v, why, whylen);
	case SET_PIN_SOURCE:
		return check_source(v, 1, flags, why, whylen);
	case SET_SECRET_SOURCE:
		return check_source(v, 0, flags & ~CONF_CHECK_PIN_OPTIONAL, why, whylen);
	case SET_KEY_TYPE:
		return conf_parse_key_type(v, &a, &b) == 0
			       ? 0
			       : agent_fail(why, whylen, "'%s' is not supported; allowed: ec:P-256, "
						   "ec:P-384, rsa:2048, rsa:3072, rsa:4096",
				      v);
	case SET_RR_PROTECTION:
		return strcmp(v, "own-key") == 0 || strcmp(v, "signer") == 0 ||
				       strcmp(v, "pbm") == 0
			       ? 0
			       : agent_fail(why, whylen, "'%s' is not one of own-key, signer, pbm", v);
	case SET_KEY_SOURCE:
		return strcmp(v, "token") == 0 || strcmp(v, "central") == 0
			       ? 0
			       : agent_fail(why, whylen, "'%s' is not one of token, central", v);
	case SET_PBM_OWF:
		return conf_parse_pbm_owf(v, &a) == 0
			       ? 0
			       : agent_fail(why, whylen, "'%s' is not one of sha256, sha384, sha512", v);
	case SET_PBM_MAC:
		return conf_parse_pbm_mac(v, &a) == 0
			       ? 0
			       : agent_fail(why, whylen,
				      "'%s' is not one of hmac-sha256, hmac-sha384, hmac-sha512", v);
	case SET_REASON:
		return conf_parse_reason(v, &a) == 0
			       ? 0
			       : agent_fail(why, whylen,
				      "'%s' is not a CRL reason (unspecified, keyCompromise, "
				      "cACompromise, affiliationChanged, superseded, "
				      "cessationOfOperation, certificateHold, removeFromCRL, "
				      "privilegeWithdrawn, aACompromise, or 0 to 10 but 7)",
				      v);
	case SET_HEX:
		return conf_parse_hex(v, id, sizeof(id), &len) == 0
			       ? 0
			       : agent_fail(why, whylen,
				      "'%.80s' is not a CKA_ID in hex (an even number of hex digits, "
				      "at most %d bytes)",
				      v, TOK_ID_MAX);
	case SET_DN:
		return check_dn(v, why, whylen);
	case SET_SANS:
		return check_sans(v, why, whylen);
	case SET_EXTENSION:
		return check_extension(s->key, v, why, whylen);
	case SET_PROXY:
		return check_proxy(v, why, whylen);
	case SET_DURATION:
		return sched_parse_duration(v, &n) == 0
			       ? 0
			       : agent_fail(why, whylen, "'%s' is not a duration such as 60s, 5m, 4h, 1d",
				      v);
	case SET_RENEW_AT:
		return sched_parse_renew_at(v, &pol) == 0
			       ? 0
			       : agent_fail(why, whylen,
				      "'%s' is neither a percentage of the lifetime (1%% to 99%%, "
				      "66%%) nor a duration before expiry (30d, 12h)",
				      v);
	case SET_GROUP:
		return !(flags & CONF_CHECK_ACCESS) || getgrnam(v) != NULL
			       ? 0
			       : agent_fail(why, whylen, "'%s' is not a group of this system", v);
	case SET_BOOL:
		if ((a = conf_parse_bool(v)) < 0)
			return agent_fail(why, whylen, "'%.60s' is not yes or no (also: true/false, "
						 "on/off, 1/0)",
				    v);
		*ret_int = a;
		return 0;
	case SET_SECONDS:
		if (conf_parse_long(v, 0, CONF_MAX_SECONDS, &n) < 0)
			return agent_fail(why, whylen, "'%.60s' is not a number of seconds from 0 to %ld",
				    v, CONF_MAX_SECONDS);
		*ret_int = (int)n;
		return 0;
	case SET_INT:
		if (conf_parse_long(v, s->min, s->max, &n) < 0)
			return agent_fail(why, whylen, "'%.60s' is not a number from %ld to %ld", v,
				    s->min, s->max);
		*ret_int = (int)n;
		return 0;
	}
	return agent_fail(why, whylen, "has a type this program does not know");
}

/* Levenshtein distance, capped: only near misses matter. */
static size_t distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i, j;
	size_t row[64], prev, tmp;

	if (la >= sizeof(row) / sizeof(row[0]) || lb >= sizeof(row) / sizeof(row[0]))
		return (size_t)-1;
	for (j = 0; j <= lb; j++)
		row[j] = j;
	for (i = 1; i <= la; i++) {
		prev = row[0];
		row[0] = i;
		for (j = 1; j <= lb; j++) {
			size_t best = prev + (a[i - 1] != b[j - 1]);

			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			tmp = row[j];
			row[j] = best;
			prev = tmp;
		}
	}
	return row[lb];
}

const char *conf_near_key(const char *key)
{
	const char *best = NULL;
	size_t i, d, best_d = 3;

	for (i = 0; i < conf_n_settings; i++) {
		d = distance(key, conf_settings[i].key);
		/* "keepold" for keep_old, "timout" for timeout; not "san" for "sender" */
		if (d < best_d && d <= strlen(key) / 3 + 1) {
			best = conf_settings[i].key;
			best_d = d;
		}
	}
	return best;
}
