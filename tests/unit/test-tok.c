/*
 * Unit test of the token layer against SoftHSM2: makes its own tokens in a
 * temporary directory, prints TAP, exits 1 on a failure and 77 when
 * SoftHSM2 is not available.
 */
#include "config.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <p11-kit/pkcs11.h>

#include "pkcs11/tok.h"
/* tok_fail_ckr and the context it writes its message into */
#include "pkcs11/tok-int.h"
#include "tests/unit/tap.h"

#define SO_PIN "12345678"
#define PIN "1234"

/*
 * OpenSC's pkcs11-spy (used to count C_Login calls) leaks a little on
 * C_Finalize; LeakSanitizer reads this when the test runs sanitized.
 */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:pkcs11-spy.so\n";
}

static char dir[64], spy_log[128];
static const char *module, *util;

/* p11-kit's own configuration of the softhsm2 module (Debian's softhsm2) */
#define P11KIT_SOFTHSM2 "/usr/share/p11-kit/modules/softhsm2.module"

static int run(const char *const argv[])
{
	pid_t pid = fork();
	int st;

	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open("/dev/null", 0);

		if (fd >= 0) {
			dup2(fd, 1);
			close(fd);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	if (waitpid(pid, &st, 0) < 0)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void init_token(const char *label)
{
	const char *argv[] = {util,	  "--init-token", "--free", "--label", label,
			      "--so-pin", SO_PIN,	  "--pin",  PIN,       NULL};

	if (run(argv) != 0)
		tap_bail("softhsm2-util --init-token failed");
}

static void cleanup(void)
{
	const char *argv[] = {"/bin/rm", "-rf", dir, NULL};

	if (dir[0] != '\0')
		run(argv);
}

static void setup(void)
{
	char path[128], tokens[128];
	FILE *f;

	snprintf(dir, sizeof(dir), "/tmp/test-tok.XXXXXX");
	if (mkdtemp(dir) == NULL)
		tap_bail("mkdtemp failed");
	snprintf(tokens, sizeof(tokens), "%s/tokens", dir);
	snprintf(path, sizeof(path), "%s/softhsm2.conf", dir);
	snprintf(spy_log, sizeof(spy_log), "%s/spy.log", dir);
	if (mkdir(tokens, 0700) != 0 || (f = fopen(path, "w")) == NULL)
		tap_bail("cannot write softhsm2.conf");
	fprintf(f, "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n",
		tokens);
	fclose(f);
	setenv("SOFTHSM2_CONF", path, 1);
	/*
	 * p11-kit's proxy loads every registered module, tpm2-pkcs11 too
	 * (libtpm2-pkcs11-1): its store goes here, not under $HOME.
	 */
	snprintf(path, sizeof(path), "%s/tpm2-store", dir);
	if (mkdir(path, 0700) != 0)
		tap_bail("cannot make %s", path);
	setenv("TPM2_PKCS11_STORE", path, 1);
	atexit(cleanup);
	init_token("tok-a");
	init_token("dup");
	init_token("dup");
}

/* ---- raw access, to check what the layer wrote ---- */

typedef struct {
	void *dl;
	CK_FUNCTION_LIST *f;
	CK_SESSION_HANDLE s;
} raw;

static int raw_open(raw *r, const char *label)
{
	CK_C_GetFunctionList getfl;
	CK_SLOT_ID slots[16];
	CK_ULONG n = 16, i;
	CK_TOKEN_INFO ti;

	memset(r, 0, sizeof(*r));
	r->dl = dlopen(module, RTLD_NOW | RTLD_NOLOAD);
	if (r->dl == NULL)
		return 0;
	*(void **)&getfl = dlsym(r->dl, "C_GetFunctionList");
	if (getfl == NULL || getfl(&r->f) != CKR_OK ||
	    r->f->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK)
		goto fail;
	for (i = 0; i < n; i++) {
		if (r->f->C_GetTokenInfo(slots[i], &ti) == CKR_OK &&
		    strncmp((char *)ti.label, label, strlen(label)) == 0 &&
		    ti.label[strlen(label)] == ' ')
			break;
	}
	if (i == n ||
	    r->f->C_OpenSession(slots[i], CKF_SERIAL_SESSION, NULL, NULL, &r->s) != CKR_OK)
		goto fail;
	return 1;
fail:
	dlclose(r->dl);
	return 0;
}

static void raw_close(raw *r)
{
	r->f->C_CloseSession(r->s);
	dlclose(r->dl);
}

/* The private key with this CKA_ID: its boolean attribute, -1 if unreadable. */
static int raw_priv_bool(raw *r, const tok_id *id, CK_ATTRIBUTE_TYPE type)
{
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE tmpl[2] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_ID, (void *)id->id, id->len}};
	CK_OBJECT_HANDLE h;
	CK_ULONG n = 0;
	CK_BBOOL v;
	CK_ATTRIBUTE a = {type, &v, sizeof(v)};

	if (r->f->C_FindObjectsInit(r->s, tmpl, 2) != CKR_OK)
		return -1;
	r->f->C_FindObjects(r->s, &h, 1, &n);
	r->f->C_FindObjectsFinal(r->s);
	if (n != 1 || r->f->C_GetAttributeValue(r->s, h, &a, 1) != CKR_OK)
		return -1;
	return v ? 1 : 0;
}

/* ---- helpers ---- */

static int count_spy(const char *fn)
{
	char line[256], want[64];
	FILE *f = fopen(spy_log, "r");
	int n = 0;

	if (f == NULL)
		return -1;
	snprintf(want, sizeof(want), ": %s\n", fn);
	while (fgets(line, sizeof(line), f) != NULL) {
		char *p = strstr(line, want);

		if (p != NULL && p > line && strcmp(p, want) == 0)
			n++;
	}
	fclose(f);
	return n;
}

static int key_id_of(EVP_PKEY *pkey, tok_id *id)
{
	X509_PUBKEY *xpk = NULL;
	const unsigned char *bits;
	int n, r = 0;

	if (X509_PUBKEY_set(&xpk, pkey) == 1 &&
	    X509_PUBKEY_get0_param(NULL, &bits, &n, NULL, xpk) == 1) {
		SHA1(bits, (size_t)n, id->id);
		id->len = SHA_DIGEST_LENGTH;
		r = 1;
	}
	X509_PUBKEY_free(xpk);
	return r;
}

/* Signs with the token key; verifies with a software copy of its public key. */
static int sign_verify(EVP_PKEY *tokkey)
{
	static const unsigned char msg[] = "p11enroll test message";
	unsigned char sig[1024], *der = NULL;
	const unsigned char *p;
	size_t siglen = sizeof(sig);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY *pub = NULL;
	int len, r = 0;

	if (md == NULL || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, tokkey) != 1 ||
	    EVP_DigestSign(md, sig, &siglen, msg, sizeof(msg)) != 1)
		goto out;
	len = i2d_PUBKEY(tokkey, &der);
	p = der;
	if (len <= 0 || (pub = d2i_PUBKEY(NULL, &p, len)) == NULL)
		goto out;
	EVP_MD_CTX_free(md);
	md = EVP_MD_CTX_new();
	r = md != NULL && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub) == 1 &&
	    EVP_DigestVerify(md, sig, siglen, msg, sizeof(msg)) == 1;
out:
	ERR_clear_error();
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pub);
	OPENSSL_free(der);
	return r;
}

static EVP_PKEY *soft_key(void)
{
	return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

/* A certificate for subject_key, signed by issuer_key (self-issued when equal). */
static X509 *make_cert(EVP_PKEY *subject_key, EVP_PKEY *issuer_key, const char *cn, int ca)
{
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();
	X509V3_CTX v3;
	X509_EXTENSION *ext;

	if (x == NULL || name == NULL)
		return NULL;
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 4242);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_subject_name(x, name);
	X509_set_issuer_name(x, name);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, subject_key);
	if (ca) {
		X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
		ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_key_identifier, "hash");
		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
	}
	X509_sign(x, issuer_key, EVP_sha256());
	X509_NAME_free(name);
	return x;
}

static size_t count_objs(tok_ctx *tok, unsigned long cls, const tok_id *id, int category)
{
	tok_object *objs = NULL;
	size_t n = 0, i, c = 0;

	if (tok_objects(tok, &objs, &n) != TOK_OK)
		return (size_t)-1;
	for (i = 0; i < n; i++) {
		if (cls != ~0UL && objs[i].cls != cls)
			continue;
		if (id != NULL &&
		    (objs[i].id.len != id->len || memcmp(objs[i].id.id, id->id, id->len) != 0))
			continue;
		if (category >= 0 && objs[i].cert_category != category)
			continue;
		c++;
	}
	tok_objects_free(objs, n);
	return c;
}

/* ---- tests ---- */

static void test_names(void)
{
	tap_ok(strcmp(tok_ckr_name(0xa0), "CKR_PIN_INCORRECT") == 0 &&
		   strcmp(tok_ckr_name(0x32), "CKR_DEVICE_REMOVED") == 0 &&
		   strcmp(tok_ckr_name(0x200), "CKR_FUNCTION_REJECTED") == 0 &&
		   strcmp(tok_ckr_name(0x80000001UL), "CKR_VENDOR_DEFINED+0x1") == 0 &&
		   strncmp(tok_ckr_name(0x7777), "unknown CKR", 11) == 0 &&
		   strcmp(tok_strerror(TOK_ERR_MISMATCH), "") != 0,
	       "/tok/ckr-names", "a CKR_ name is wrong");
}

/* Every result has its own words; an unknown one says so. */
static void test_strerror(void)
{
	static const tok_rv all[] = {
		TOK_OK,		       TOK_ERR_CONFIG,	      TOK_ERR_MODULE,  TOK_ERR_ABSENT,
		TOK_ERR_AMBIGUOUS,     TOK_ERR_PIN_INCORRECT, TOK_ERR_PIN_LOCKED,
		TOK_ERR_NOT_LOGGED_IN, TOK_ERR_NOT_FOUND,     TOK_ERR_MISMATCH, TOK_ERR_DEVICE,
		TOK_ERR_NOMEM,
	};
	size_t i, j, n = sizeof(all) / sizeof(all[0]);
	int good = 1;

	for (i = 0; i < n; i++) {
		if (strcmp(tok_strerror(all[i]), "unknown token error") == 0)
			good = 0;
		for (j = 0; j < i; j++)
			if (strcmp(tok_strerror(all[i]), tok_strerror(all[j])) == 0)
				good = 0;
	}
	tap_ok(good && strcmp(tok_strerror((tok_rv)99), "unknown token error") == 0,
	       "/tok/strerror/distinct", "a result has no text of its own");
}

/* A CKR's class decides the exit code: removal is absence, a PIN problem
 * is the PIN's, anything else the device's. */
static void test_ckr_classes(void)
{
	tap_ok(tok_rv_from_ckr(CKR_OK) == TOK_OK &&
		   tok_rv_from_ckr(CKR_HOST_MEMORY) == TOK_ERR_NOMEM &&
		   tok_rv_from_ckr(CKR_DEVICE_REMOVED) == TOK_ERR_ABSENT &&
		   tok_rv_from_ckr(CKR_SESSION_CLOSED) == TOK_ERR_ABSENT &&
		   tok_rv_from_ckr(CKR_SLOT_ID_INVALID) == TOK_ERR_ABSENT &&
		   tok_rv_from_ckr(CKR_PIN_LEN_RANGE) == TOK_ERR_PIN_INCORRECT &&
		   tok_rv_from_ckr(CKR_PIN_EXPIRED) == TOK_ERR_PIN_LOCKED &&
		   tok_rv_from_ckr(CKR_USER_NOT_LOGGED_IN) == TOK_ERR_NOT_LOGGED_IN &&
		   tok_rv_from_ckr(CKR_CRYPTOKI_NOT_INITIALIZED) == TOK_ERR_MODULE &&
		   tok_rv_from_ckr(CKR_GENERAL_ERROR) == TOK_ERR_DEVICE,
	       "/tok/ckr/classes", "a CKR_ code maps to the wrong result");
}

/* "<what> failed: CKR_X: <what to do>", the advice by the CKR unless given. */
static void test_ckr_advice(void)
{
	static const struct {
		CK_RV ckr;
		const char *advice;
	} cases[] = {
		{CKR_DEVICE_REMOVED, "insert it and start again"},
		{CKR_USER_NOT_LOGGED_IN, "log in to the token first"},
		{CKR_HOST_MEMORY, "the module ran out of memory"},
		{CKR_CRYPTOKI_NOT_INITIALIZED, "finalized by another user"},
		{CKR_TOKEN_WRITE_PROTECTED, "the token is write-protected"},
		{CKR_DEVICE_MEMORY, "the token is full"},
		{CKR_CURVE_NOT_SUPPORTED, "choose another key type"},
		{CKR_TEMPLATE_INCONSISTENT, "refused the object's attributes"},
		{CKR_GENERAL_ERROR, "see the module's documentation"},
	};
	static tok_ctx ctx;
	char want[256];
	size_t i;
	int good = 1;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		tok_rv rv = tok_fail_ckr(&ctx, "doing it", cases[i].ckr, NULL);

		snprintf(want, sizeof(want), "doing it failed: %s: ", tok_ckr_name(cases[i].ckr));
		if (rv != tok_rv_from_ckr(cases[i].ckr) || strncmp(ctx.errmsg, want, strlen(want)) != 0 ||
		    strstr(ctx.errmsg, cases[i].advice) == NULL) {
			printf("# CKR 0x%lx: '%s'\n", (unsigned long)cases[i].ckr, ctx.errmsg);
			good = 0;
		}
	}
	(void)tok_fail_ckr(&ctx, "doing it", CKR_DEVICE_ERROR, "do this");
	tap_ok(good && strcmp(ctx.errmsg, "doing it failed: CKR_DEVICE_ERROR: do this") == 0 &&
		   tok_fail(NULL, TOK_ERR_DEVICE, "no context") == TOK_ERR_DEVICE &&
		   strcmp(tok_errmsg(NULL), "") == 0,
	       "/tok/ckr/advice", "message: %s", ctx.errmsg);
}

/* The serial a token chose, pinned into a URI: percent-encoded. */
static void test_uri_pin_serial(void)
{
	static const struct {
		const char *uri, *serial, *want, *name;
	} cases[] = {
		{ "pkcs11:token=a", "1234abcd", "pkcs11:token=a;serial=1234abcd",
		  "/tok/uri-pin-serial/plain" },
		{ "pkcs11:", "42", "pkcs11:serial=42", "/tok/uri-pin-serial/empty-path" },
		{ "pkcs11:token=a?module-name=softhsm2", ";1?module-path=/",
		  "pkcs11:token=a;serial=%3B1%3Fmodule-path%3D%2F?module-name=softhsm2",
		  "/tok/uri-pin-serial/hostile-before-query" },
		{ "pkcs11:token=odd%3Bx", "a%b/c\nd", "pkcs11:token=odd%3Bx;serial=a%25b%2Fc%0Ad",
		  "/tok/uri-pin-serial/percent-slash-newline" },
		{ "pkcs11:model=m;;", "0001", "pkcs11:model=m;serial=0001",
		  "/tok/uri-pin-serial/trailing-semicolons" },
		{ "pkcs11:model=a:", "0001", "pkcs11:model=a:;serial=0001",
		  "/tok/uri-pin-serial/value-ends-in-colon" },
		{ " PKCS11: token=a ; ", "0001", "PKCS11:token=a;serial=0001",
		  "/tok/uri-pin-serial/whitespace-and-case" },
	};
	char *out = NULL;
	size_t i;
	tok_rv rv;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		out = NULL;
		rv = tok_uri_pin_serial(cases[i].uri, cases[i].serial, &out);
		tap_ok(rv == TOK_OK && out != NULL && strcmp(out, cases[i].want) == 0,
		       cases[i].name, "%s", out != NULL ? out : "(none)");
		OPENSSL_free(out);
	}
	out = (char *)"untouched";
	rv = tok_uri_pin_serial("pkcs11:token=a;serial=77", "42", &out);
	tap_ok(rv == TOK_OK && out == NULL, "/tok/uri-pin-serial/has-serial",
	       "rv %d, a serial added to a URI that has one", rv);
	out = NULL;
	tap_ok(tok_uri_pin_serial("pkcs11:token=a", "12345678901234567", &out) == TOK_ERR_CONFIG &&
		   out == NULL && tok_uri_pin_serial("nope", "1", &out) == TOK_ERR_CONFIG,
	       "/tok/uri-pin-serial/refused", "a bad serial or URI was accepted");
	/* p11-kit reads what follows ";;" as query: no serial added after it
	 * would be selected. */
	out = NULL;
	tap_ok(tok_uri_pin_serial("pkcs11:model=m;;token=x", "0001", &out) == TOK_ERR_CONFIG &&
		   out == NULL,
	       "/tok/uri-pin-serial/empty-attribute-refused", "a serial was added after \";;\"");
}

static void test_select(void)
{
	tok_ctx *tok = NULL;
	tok_info info;
	tok_rv rv;

	rv = tok_open(module, "pkcs11:token=tok-a", &tok);
	tap_ok(rv == TOK_OK && tok_get_info(tok, &info) == TOK_OK &&
		   strcmp(info.label, "tok-a") == 0 && strcmp(tok_errmsg(tok), "") == 0,
	       "/tok/open/by-uri", "%s", tok_errmsg(tok));
	tap_ok(rv == TOK_OK && strcmp(info.model, "SoftHSM v2") == 0 && info.serial[0] != '\0',
	       "/tok/open/info", "model '%s', serial '%s'", info.model, info.serial);
	tok_free(tok);
	tok = NULL;

	rv = tok_open(module, "pkcs11:token=nope;pin-value=s3cr3t", &tok);
	tap_ok(rv == TOK_ERR_ABSENT && tok != NULL &&
		   strstr(tok_errmsg(tok), "token=nope") != NULL &&
		   strstr(tok_errmsg(tok), "'tok-a'") != NULL &&
		   strstr(tok_errmsg(tok), "s3cr3t") == NULL,
	       "/tok/open/absent", "%s", tok_errmsg(tok));
	tok_free(tok);
	tok = NULL;

	rv = tok_open(module, "pkcs11:token=dup", &tok);
	tap_ok(rv == TOK_ERR_AMBIGUOUS, "/tok/open/ambiguous", "%s", tok_errmsg(tok));
	tok_free(tok);
	tok = NULL;

	/* "pkcs11:" alone: three initialized tokens here. */
	rv = tok_open(module, "pkcs11:", &tok);
	tap_ok(rv == TOK_ERR_AMBIGUOUS, "/tok/open/empty-uri-ambiguous", "%s", tok_errmsg(tok));
	tok_free(tok);
	tok = NULL;

	rv = tok_open(module, "https://example.com/", &tok);
	tap_ok(rv == TOK_ERR_CONFIG, "/tok/open/bad-uri", "%s", tok_errmsg(tok));
	tok_free(tok);
	tok = NULL;

	rv = tok_open("/nonexistent/module.so", "pkcs11:token=tok-a", &tok);
	tap_ok(rv == TOK_ERR_MODULE, "/tok/open/bad-module", "%s", tok_errmsg(tok));
	tok_free(tok);
	tok_free(NULL);
}

static void test_wrong_pin(void)
{
	const char *spy = "/usr/lib/x86_64-linux-gnu/pkcs11/pkcs11-spy.so";
	tok_ctx *tok = NULL;
	tok_rv rv1 = TOK_ERR_CONFIG, rv2 = TOK_ERR_CONFIG, rv3 = TOK_ERR_CONFIG;
	int logins, finals;
	char msg1[800] = "";

	/* the same three test points whether they run or are skipped */
	if (access(spy, R_OK) != 0) {
		tap_skip("/tok/login/wrong-pin", "OpenSC's pkcs11-spy.so not installed");
		tap_skip("/tok/login/tried-once", "OpenSC's pkcs11-spy.so not installed");
		tap_skip("/tok/close/one-finalize", "OpenSC's pkcs11-spy.so not installed");
		return;
	}
	setenv("PKCS11SPY", module, 1);
	setenv("PKCS11SPY_OUTPUT", spy_log, 1);
	/*
	 * Kept mapped to the end: the spy loses track of static allocations
	 * when it is unloaded, which LeakSanitizer would report.
	 */
	if (dlopen(spy, RTLD_NOW) == NULL) {
		tap_skip("/tok/login/wrong-pin", "pkcs11-spy.so cannot be loaded");
		tap_skip("/tok/login/tried-once", "pkcs11-spy.so cannot be loaded");
		tap_skip("/tok/close/one-finalize", "pkcs11-spy.so cannot be loaded");
		return;
	}
	if (tok_open(spy, "pkcs11:token=tok-a", &tok) == TOK_OK) {
		rv1 = tok_login(tok, "0000");
		snprintf(msg1, sizeof(msg1), "%s", tok_errmsg(tok));
		rv2 = tok_login(tok, "0000");
		rv3 = tok_login(tok, PIN); /* a rejected PIN ends logins in this context */
	}
	tap_ok(rv1 == TOK_ERR_PIN_INCORRECT && strstr(msg1, "CKR_PIN_INCORRECT") != NULL &&
		   strstr(msg1, "0000") == NULL,
	       "/tok/login/wrong-pin", "%s", msg1);
	tok_free(tok);
	logins = count_spy("C_Login");
	finals = count_spy("C_Finalize");
	tap_ok(rv2 == TOK_ERR_PIN_INCORRECT && rv3 == TOK_ERR_PIN_INCORRECT && logins == 1,
	       "/tok/login/tried-once", "C_Login was called more than once");
	tap_ok(finals == 1, "/tok/close/one-finalize", "C_Finalize count is not 1");
	unsetenv("PKCS11SPY");
	unsetenv("PKCS11SPY_OUTPUT");
}

static void check_key(tok_ctx *tok, const tok_keyspec *spec, const char *name, tok_id *ret_id)
{
	char tname[64], detail[600];
	tok_id id, want;
	EVP_PKEY *pkey = NULL;
	raw r;
	int good;

	memset(&id, 0, sizeof(id));
	snprintf(tname, sizeof(tname), "/tok/keygen/%s", name);
	if (tok_keygen(tok, spec, name, &id) != TOK_OK) {
		tap_ok(0, tname, "%s", tok_errmsg(tok));
		return;
	}
	good = tok_key_get1_private(tok, &id, &pkey) == TOK_OK;
	snprintf(detail, sizeof(detail), "get1_private: %s", tok_errmsg(tok));
	tap_ok(good && EVP_PKEY_get_bits(pkey) == spec->bits, tname, "%s", detail);
	if (!good)
		return;
	snprintf(tname, sizeof(tname), "/tok/keygen/%s/id-is-sha1-of-key", name);
	tap_ok(key_id_of(pkey, &want) && want.len == id.len && memcmp(want.id, id.id, id.len) == 0,
	       tname, "CKA_ID is not the SHA-1 of the public key");
	snprintf(tname, sizeof(tname), "/tok/keygen/%s/sign-verify", name);
	tap_ok(sign_verify(pkey), tname, "the token key's signature does not verify");
	snprintf(tname, sizeof(tname), "/tok/keygen/%s/attributes", name);
	if (raw_open(&r, "tok-a")) {
		tap_ok(raw_priv_bool(&r, &id, CKA_SENSITIVE) == 1 &&
			   raw_priv_bool(&r, &id, CKA_EXTRACTABLE) == 0 &&
			   raw_priv_bool(&r, &id, CKA_NEVER_EXTRACTABLE) == 1 &&
			   raw_priv_bool(&r, &id, CKA_DECRYPT) == 0 &&
			   raw_priv_bool(&r, &id, CKA_UNWRAP) == 0 &&
			   raw_priv_bool(&r, &id, CKA_SIGN) == 1 &&
			   raw_priv_bool(&r, &id, CKA_PRIVATE) == 1 &&
			   (spec->alg != TOK_KEY_EC || raw_priv_bool(&r, &id, CKA_DERIVE) == 0),
		       tname, "a private key attribute is not as generated");
		raw_close(&r);
	} else {
		tap_ok(0, tname, "cannot reach the module");
	}
	EVP_PKEY_free(pkey);
	*ret_id = id;
}

static void test_token(void)
{
	static const tok_keyspec ec256 = {TOK_KEY_EC, 256, 0}, ec384 = {TOK_KEY_EC, 384, 0},
				 rsa2048 = {TOK_KEY_RSA, 2048, 0}, bad = {TOK_KEY_EC, 521, 0};
	tok_ctx *tok = NULL;
	tok_id id256, id384, idrsa, scratch;
	EVP_PKEY *pkey = NULL, *soft = NULL;
	X509 *good = NULL, *wrong = NULL, *ca = NULL;
	size_t before;
	tok_rv rv;

	memset(&id256, 0, sizeof(id256));
	memset(&id384, 0, sizeof(id384));
	memset(&idrsa, 0, sizeof(idrsa));
	if (tok_open(module, "pkcs11:token=tok-a", &tok) != TOK_OK)
		tap_bail("%s", tok_errmsg(tok));
	tap_ok(tok_keygen(tok, &ec256, "x", &scratch) == TOK_ERR_NOT_LOGGED_IN,
	       "/tok/keygen/needs-login", "%s", tok_errmsg(tok));
	tap_ok(tok_login(tok, PIN) == TOK_OK && tok_login(tok, PIN) == TOK_OK, "/tok/login/ok",
	       "%s", tok_errmsg(tok));
	tap_ok(tok_keygen(tok, &bad, "x", &scratch) == TOK_ERR_CONFIG, "/tok/keygen/bad-spec", "%s",
	       tok_errmsg(tok));

	check_key(tok, &ec256, "ec-p256", &id256);
	check_key(tok, &ec384, "ec-p384", &id384);
	check_key(tok, &rsa2048, "rsa-2048", &idrsa);

	/* Certificates for the P-256 key. */
	soft = soft_key();
	if (soft == NULL || tok_key_get1_private(tok, &id256, &pkey) != TOK_OK)
		tap_bail("no key for the certificate tests");
	good = make_cert(pkey, soft, "token key", 0);
	wrong = make_cert(soft, soft, "other key", 0);
	ca = make_cert(soft, soft, "test CA", 1);
	before = count_objs(tok, ~0UL, NULL, -1);
	rv = tok_cert_store(tok, wrong, &id256, "wrong");
	tap_ok(rv == TOK_ERR_MISMATCH && count_objs(tok, ~0UL, NULL, -1) == before,
	       "/tok/cert-store/mismatch-writes-nothing", "%s", tok_errmsg(tok));
	rv = tok_cert_store(tok, good, &id256, "mine");
	tap_ok(rv == TOK_OK && count_objs(tok, CKO_CERTIFICATE, &id256, -1) == 1,
	       "/tok/cert-store/with-key-id", "%s", tok_errmsg(tok));
	{
		int c1 = -1, c2 = -1;

		rv = tok_cacert_store(tok, ca, "ca", &c1);
		tap_ok(rv == TOK_OK && tok_cacert_store(tok, ca, "ca", &c2) == TOK_OK &&
			   count_objs(tok, CKO_CERTIFICATE, NULL, 2) == 1,
		       "/tok/cacert-store/once", "%s", tok_errmsg(tok));
		tap_ok(c1 == 1 && c2 == 0, "/tok/cacert-store/says-created",
		       "created %d then %d, want 1 then 0", c1, c2);
	}
	tap_ok(tok_cacert_destroy(tok, ca) == TOK_OK &&
		   count_objs(tok, CKO_CERTIFICATE, NULL, 2) == 0 &&
		   tok_cacert_store(tok, ca, "ca", NULL) == TOK_OK &&
		   count_objs(tok, CKO_CERTIFICATE, NULL, 2) == 1,
	       "/tok/cacert-destroy/undoes-store", "%s", tok_errmsg(tok));
	{
		tok_object *objs = NULL;
		size_t n = 0, i, priv = 0, pub = 0, cert = 0, attrs_ok = 1;

		rv = tok_objects(tok, &objs, &n);
		for (i = 0; rv == TOK_OK && i < n; i++) {
			if (objs[i].cls == CKO_PRIVATE_KEY) {
				priv++;
				attrs_ok &= objs[i].sensitive == 1 && objs[i].extractable == 0 &&
					    objs[i].never_extractable == 1 &&
					    objs[i].always_sensitive == 1 && objs[i].local == 1 &&
					    objs[i].key_bits > 0 && objs[i].label[0] != '\0';
			} else if (objs[i].cls == CKO_PUBLIC_KEY) {
				pub++;
			} else if (objs[i].cls == CKO_CERTIFICATE) {
				cert++;
				attrs_ok &= objs[i].cert != NULL;
			}
		}
		tap_ok(rv == TOK_OK && n == 8 && priv == 3 && pub == 3 && cert == 2 && attrs_ok,
		       "/tok/objects/lists-everything", "%s", tok_errmsg(tok));
		tok_objects_free(objs, n);
	}
	EVP_PKEY_free(pkey);
	pkey = NULL;

	rv = tok_key_destroy(tok, &id256, 1);
	tap_ok(rv == TOK_OK && count_objs(tok, ~0UL, &id256, -1) == 0 &&
		   count_objs(tok, ~0UL, NULL, -1) == 5,
	       "/tok/key-destroy/leaves-nothing", "%s", tok_errmsg(tok));
	tap_ok(tok_key_destroy(tok, &id256, 1) == TOK_ERR_NOT_FOUND &&
		   tok_key_get1_private(tok, &id256, &pkey) == TOK_ERR_NOT_FOUND && pkey == NULL,
	       "/tok/key-destroy/gone", "%s", tok_errmsg(tok));
	/* libp11 still finds the other keys after the raw changes. */
	tap_ok(tok_key_get1_private(tok, &idrsa, &pkey) == TOK_OK && sign_verify(pkey),
	       "/tok/key/after-destroy", "%s", tok_errmsg(tok));
	EVP_PKEY_free(pkey);
	pkey = NULL;

	X509_free(good);
	X509_free(wrong);
	X509_free(ca);
	EVP_PKEY_free(soft);
	tok_free(tok);
}

/* Labels of every object with CKA_ID id equal label (and there is at least one). */
static int all_labelled(tok_ctx *tok, const tok_id *id, const char *label, size_t want)
{
	tok_object *objs = NULL;
	size_t n = 0, i, c = 0, good = 1;

	if (tok_objects(tok, &objs, &n) != TOK_OK)
		return 0;
	for (i = 0; i < n; i++) {
		if (objs[i].id.len != id->len || memcmp(objs[i].id.id, id->id, id->len) != 0)
			continue;
		c++;
		good &= strcmp(objs[i].label, label) == 0;
	}
	tok_objects_free(objs, n);
	return good && c == want;
}

/* Argument guards: each public call refuses what it cannot work with
 * (TOK_ERR_CONFIG) instead of dereferencing it; and a CA certificate
 * without a subject key identifier is stored under the RFC 5280 key
 * identifier of its key. */
static void test_guards(void)
{
	static const tok_keyspec ec256 = {TOK_KEY_EC, 256, 0};
	tok_ctx *tok = NULL;
	tok_id id, big, empty, kid;
	tok_info info;
	tok_object *objs = NULL;
	size_t n = 0;
	EVP_PKEY *soft = soft_key(), *pk = NULL;
	X509 *cert, *noski;
	int refused = 1, created = -1;

	if (soft == NULL || tok_open(module, "pkcs11:token=tok-a", &tok) != TOK_OK)
		tap_bail("%s", tok_errmsg(tok));
	cert = make_cert(soft, soft, "guarded", 0);
	noski = make_cert(soft, soft, "CA without SKI", 1);
	if (cert == NULL || noski == NULL)
		tap_bail("no certificates for the guard tests");
	/* make_cert's CA certificates carry an SKI: this one must not */
	X509_EXTENSION_free(
		X509_delete_ext(noski, X509_get_ext_by_NID(noski, NID_subject_key_identifier, -1)));
	X509_sign(noski, soft, EVP_sha256());
	memset(&id, 0, sizeof(id));
	id.len = 4;
	memset(&empty, 0, sizeof(empty));
	memset(&big, 0, sizeof(big));
	big.len = TOK_ID_MAX + 1;
	refused &= tok_open(module, "pkcs11:", NULL) == TOK_ERR_CONFIG;
	refused &= tok_get_info(NULL, &info) == TOK_ERR_CONFIG;
	refused &= tok_get_info(tok, NULL) == TOK_ERR_CONFIG;
	refused &= tok_login(NULL, PIN) == TOK_ERR_CONFIG;
	refused &= tok_keygen(NULL, &ec256, "x", &id) == TOK_ERR_CONFIG;
	refused &= tok_keygen(tok, NULL, "x", &id) == TOK_ERR_CONFIG;
	refused &= tok_keygen(tok, &ec256, "x", NULL) == TOK_ERR_CONFIG;
	refused &= tok_key_get1_private(NULL, &id, &pk) == TOK_ERR_CONFIG;
	refused &= tok_key_get1_private(tok, NULL, &pk) == TOK_ERR_CONFIG;
	refused &= tok_key_get1_private(tok, &id, NULL) == TOK_ERR_CONFIG;
	refused &= tok_key_get1_private(tok, &big, &pk) == TOK_ERR_CONFIG;
	refused &= tok_key_destroy(NULL, &id, 1) == TOK_ERR_CONFIG;
	refused &= tok_key_destroy(tok, NULL, 1) == TOK_ERR_CONFIG;
	refused &= tok_key_destroy(tok, &big, 1) == TOK_ERR_CONFIG;
	refused &= tok_cert_store(NULL, cert, &id, "x") == TOK_ERR_CONFIG;
	refused &= tok_cert_store(tok, NULL, &id, "x") == TOK_ERR_CONFIG;
	refused &= tok_cert_store(tok, cert, NULL, "x") == TOK_ERR_CONFIG;
	refused &= tok_cert_store(tok, cert, &empty, "x") == TOK_ERR_CONFIG;
	refused &= tok_cert_store(tok, cert, &big, "x") == TOK_ERR_CONFIG;
	refused &= tok_cacert_store(NULL, cert, "x", NULL) == TOK_ERR_CONFIG;
	refused &= tok_cacert_store(tok, NULL, "x", NULL) == TOK_ERR_CONFIG;
	refused &= tok_cacert_destroy(NULL, cert) == TOK_ERR_CONFIG;
	refused &= tok_cacert_destroy(tok, NULL) == TOK_ERR_CONFIG;
	refused &= tok_find_cert(NULL, "x", NULL, &kid, NULL) == TOK_ERR_CONFIG;
	refused &= tok_find_cert(tok, NULL, NULL, &kid, NULL) == TOK_ERR_CONFIG;
	refused &= tok_find_cert(tok, NULL, &big, &kid, NULL) == TOK_ERR_CONFIG;
	refused &= tok_relabel(NULL, &id, "x") == TOK_ERR_CONFIG;
	refused &= tok_relabel(tok, NULL, "x") == TOK_ERR_CONFIG;
	refused &= tok_relabel(tok, &id, NULL) == TOK_ERR_CONFIG;
	refused &= tok_relabel(tok, &empty, "x") == TOK_ERR_CONFIG;
	refused &= tok_relabel(tok, &big, "x") == TOK_ERR_CONFIG;
	refused &= tok_objects(NULL, &objs, &n) == TOK_ERR_CONFIG;
	refused &= tok_objects(tok, NULL, &n) == TOK_ERR_CONFIG;
	refused &= tok_objects(tok, &objs, NULL) == TOK_ERR_CONFIG;
	tap_ok(refused && pk == NULL, "/tok/guards/refused",
	       "a call took a NULL or oversized argument");

	/* without an SKI: CKA_ID is the SHA-1 key identifier of the key */
	memset(&kid, 0, sizeof(kid));
	tap_ok(tok_login(tok, PIN) == TOK_OK &&
		   tok_cacert_store(tok, noski, NULL, &created) == TOK_OK && created == 1 &&
		   tok_key_identifier(soft, &kid) &&
		   count_objs(tok, CKO_CERTIFICATE, &kid, 2) == 1 &&
		   tok_cacert_destroy(tok, noski) == TOK_OK &&
		   count_objs(tok, CKO_CERTIFICATE, &kid, 2) == 0,
	       "/tok/cacert-store/no-ski-key-identifier", "%s", tok_errmsg(tok));
	X509_free(cert);
	X509_free(noski);
	EVP_PKEY_free(soft);
	tok_free(tok);
}

static void test_find_relabel(void)
{
	static const tok_keyspec ec256 = {TOK_KEY_EC, 256, 0};
	tok_ctx *tok = NULL, *nologin = NULL;
	tok_id id1, id2, got, bogus;
	EVP_PKEY *k1 = NULL, *k2 = NULL, *soft = NULL;
	X509 *c1 = NULL, *c2 = NULL, *ca = NULL, *found = NULL;
	char hex1[2 * TOK_ID_MAX + 1], hex2[2 * TOK_ID_MAX + 1];
	size_t i;
	tok_rv rv;

	if (tok_open(module, "pkcs11:token=tok-a", &tok) != TOK_OK || tok_login(tok, PIN) != TOK_OK)
		tap_bail("%s", tok_errmsg(tok));
	soft = soft_key();
	if (soft == NULL || tok_keygen(tok, &ec256, "enr", &id1) != TOK_OK ||
	    tok_key_get1_private(tok, &id1, &k1) != TOK_OK)
		tap_bail("%s", tok_errmsg(tok));
	c1 = make_cert(k1, soft, "enr one", 0);
	ca = make_cert(soft, soft, "enr CA", 1);
	if (tok_cert_store(tok, c1, &id1, "enr") != TOK_OK)
		tap_bail("%s", tok_errmsg(tok));
	/* A CA certificate with the same label is never the enrollment's. */
	if (tok_cacert_store(tok, ca, "enr", NULL) != TOK_OK)
		tap_bail("%s", tok_errmsg(tok));

	memset(&got, 0, sizeof(got));
	rv = tok_find_cert(tok, "enr", NULL, &got, &found);
	tap_ok(rv == TOK_OK && got.len == id1.len && memcmp(got.id, id1.id, id1.len) == 0 &&
		   found != NULL && X509_cmp(found, c1) == 0,
	       "/tok/find-cert/by-label", "%s", tok_errmsg(tok));
	X509_free(found);
	found = NULL;
	rv = tok_find_cert(tok, NULL, &id1, NULL, &found);
	tap_ok(rv == TOK_OK && found != NULL && X509_cmp(found, c1) == 0, "/tok/find-cert/by-id",
	       "%s", tok_errmsg(tok));
	X509_free(found);
	found = NULL;
	rv = tok_find_cert(tok, "enr", &id1, NULL, NULL);
	tap_ok(rv == TOK_OK, "/tok/find-cert/by-label-and-id", "%s", tok_errmsg(tok));
	memset(&bogus, 0, sizeof(bogus));
	bogus.len = 4;
	memcpy(bogus.id, "\x01\x02\x03\x04", 4);
	memset(&got, 0x5a, sizeof(got));
	rv = tok_find_cert(tok, "nope", NULL, &got, &found);
	tap_ok(rv == TOK_ERR_NOT_FOUND && found == NULL &&
		   got.len == (size_t)0x5a5a5a5a5a5a5a5aULL &&
		   strstr(tok_errmsg(tok), "'nope'") != NULL,
	       "/tok/find-cert/not-found-untouched", "%s", tok_errmsg(tok));
	tap_ok(tok_find_cert(tok, "enr", &bogus, NULL, NULL) == TOK_ERR_NOT_FOUND,
	       "/tok/find-cert/label-and-wrong-id", "%s", tok_errmsg(tok));
	tap_ok(tok_find_cert(tok, NULL, NULL, NULL, NULL) == TOK_ERR_CONFIG,
	       "/tok/find-cert/no-selector", "%s", tok_errmsg(tok));

	/* A second pair under the same label (a renewal half-way). */
	if (tok_keygen(tok, &ec256, "enr", &id2) != TOK_OK ||
	    tok_key_get1_private(tok, &id2, &k2) != TOK_OK)
		tap_bail("%s", tok_errmsg(tok));
	c2 = make_cert(k2, soft, "enr two", 0);
	if (tok_cert_store(tok, c2, &id2, "enr") != TOK_OK)
		tap_bail("%s", tok_errmsg(tok));
	for (i = 0; i < id1.len; i++)
		snprintf(hex1 + 2 * i, 3, "%02x", id1.id[i]);
	for (i = 0; i < id2.len; i++)
		snprintf(hex2 + 2 * i, 3, "%02x", id2.id[i]);
	rv = tok_find_cert(tok, "enr", NULL, &got, &found);
	tap_ok(rv == TOK_ERR_AMBIGUOUS && found == NULL && strstr(tok_errmsg(tok), hex1) != NULL &&
		   strstr(tok_errmsg(tok), hex2) != NULL,
	       "/tok/find-cert/ambiguous-lists-ids", "%s", tok_errmsg(tok));

	rv = tok_relabel(tok, &id2, "enr (old)");
	tap_ok(rv == TOK_OK && all_labelled(tok, &id2, "enr (old)", 3) &&
		   all_labelled(tok, &id1, "enr", 3),
	       "/tok/relabel/every-object", "%s", tok_errmsg(tok));
	rv = tok_find_cert(tok, "enr", NULL, &got, NULL);
	tap_ok(rv == TOK_OK && got.len == id1.len && memcmp(got.id, id1.id, id1.len) == 0,
	       "/tok/find-cert/after-relabel", "%s", tok_errmsg(tok));
	rv = tok_find_cert(tok, "enr (old)", NULL, &got, NULL);
	tap_ok(rv == TOK_OK && got.len == id2.len && memcmp(got.id, id2.id, id2.len) == 0,
	       "/tok/find-cert/new-label", "%s", tok_errmsg(tok));
	/* The key keeps working after a raw change of its label. */
	EVP_PKEY_free(k2);
	k2 = NULL;
	tap_ok(tok_key_get1_private(tok, &id2, &k2) == TOK_OK && sign_verify(k2),
	       "/tok/relabel/key-still-signs", "%s", tok_errmsg(tok));
	tap_ok(tok_relabel(tok, &bogus, "x") == TOK_ERR_NOT_FOUND, "/tok/relabel/not-found", "%s",
	       tok_errmsg(tok));
	if (tok_open(module, "pkcs11:token=tok-a", &nologin) == TOK_OK)
		tap_ok(tok_relabel(nologin, &id1, "x") == TOK_ERR_NOT_LOGGED_IN &&
			   all_labelled(tok, &id1, "enr", 3),
		       "/tok/relabel/needs-login", "%s", tok_errmsg(nologin));
	else
		tap_ok(0, "/tok/relabel/needs-login", "%s", tok_errmsg(nologin));
	tok_free(nologin);

	tok_key_destroy(tok, &id1, 1);
	tok_key_destroy(tok, &id2, 1);
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
	EVP_PKEY_free(soft);
	X509_free(c1);
	X509_free(c2);
	X509_free(ca);
	tok_free(tok);
}

static void test_p11kit(void)
{
	tok_ctx *tok = NULL;
	tok_info info;
	tok_rv rv;

	/*
	 * Uses the system's p11-kit configuration as it is (Debian's softhsm2
	 * package registers "softhsm2"); SOFTHSM2_CONF still points at our
	 * tokens.
	 */
	/*
	 * Skipped only when p11-kit has no module named softhsm2, which is
	 * decided here from p11-kit's configuration, not from tok_open: a
	 * TOK_ERR_CONFIG or TOK_ERR_MODULE with the module configured is a
	 * regression, and fails.
	 */
	int configured = access(P11KIT_SOFTHSM2, R_OK) == 0;

	rv = tok_open("softhsm2", "pkcs11:token=tok-a", &tok);
	if (!configured) {
		tap_skip("/tok/open/p11-kit-name", "no p11-kit module named softhsm2");
	} else {
		tap_ok(rv == TOK_OK && tok_get_info(tok, &info) == TOK_OK &&
			   strcmp(info.label, "tok-a") == 0,
		       "/tok/open/p11-kit-name", "%s", tok_errmsg(tok));
	}
	tok_free(tok);
	tok = NULL;
	rv = tok_open(NULL, "pkcs11:token=tok-a?module-name=softhsm2", &tok);
	if (!configured)
		tap_skip("/tok/open/uri-module-name", "no p11-kit module named softhsm2");
	else
		tap_ok(rv == TOK_OK && tok_login(tok, PIN) == TOK_OK, "/tok/open/uri-module-name",
		       "%s", tok_errmsg(tok));
	tok_free(tok);
	tok = NULL;

	/* No module: the configured modules, as p11-kit's proxy shows them. */
	rv = tok_open(NULL, "pkcs11:token=tok-a", &tok);
	if (!configured) {
		tap_skip("/tok/open/p11-kit-modules", "no p11-kit module named softhsm2");
		tap_skip("/tok/open/p11-kit-modules/absent", "no p11-kit module named softhsm2");
		tap_skip("/tok/open/p11-kit-modules/ambiguous", "no p11-kit module named softhsm2");
	} else {
		tok_info info2;

		tap_ok(rv == TOK_OK && tok_get_info(tok, &info2) == TOK_OK &&
			   strcmp(info2.label, "tok-a") == 0 && tok_login(tok, PIN) == TOK_OK,
		       "/tok/open/p11-kit-modules", "%s", tok_errmsg(tok));
		tok_free(tok);
		tok = NULL;
		rv = tok_open(NULL, "pkcs11:token=nope", &tok);
		tap_ok(rv == TOK_ERR_ABSENT && strstr(tok_errmsg(tok), "'tok-a'") != NULL,
		       "/tok/open/p11-kit-modules/absent", "%s", tok_errmsg(tok));
		tok_free(tok);
		tok = NULL;
		rv = tok_open(NULL, "pkcs11:token=dup", &tok);
		tap_ok(rv == TOK_ERR_AMBIGUOUS, "/tok/open/p11-kit-modules/ambiguous", "%s",
		       tok_errmsg(tok));
	}
	tok_free(tok);
}

/* the number of checks main runs */
#define PLAN 68

int main(void)
{
	module = getenv("SOFTHSM2_MODULE");
	util = getenv("SOFTHSM2_UTIL");
	if (module == NULL || module[0] == '\0' || util == NULL || util[0] == '\0') {
		tap_bail("SOFTHSM2_MODULE or SOFTHSM2_UTIL not set (softhsm2; tools/deps.sh)");
	}
	/* the number of checks, fixed: a check left out fails the run */
	tap_plan(PLAN);
	setup();
	test_names();
	test_strerror();
	test_ckr_classes();
	test_ckr_advice();
	test_uri_pin_serial();
	test_select();
	test_wrong_pin();
	test_token();
	test_find_relabel();
	test_guards();
	test_p11kit();
	return tap_done();
}
