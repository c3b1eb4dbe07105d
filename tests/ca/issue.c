/*
 * The CA files (root, issuing sub-CA, CMP server certificate), certificate
 * issuance, the issued/ and revoked records, and reading the public key
 * out of a CRMF CertTemplate (OpenSSL 3.0 has no getter for it).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/asn1t.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "tests/ca/testca.h"

#define CA_YEARS_DAYS 3650L

/*
 * CertTemplate (RFC 4211, 5): decoded with our own template because 3.0
 * keeps publicKey private.  The tagging mirrors OpenSSL's crmf_asn.c.
 */
ASN1_SEQUENCE(CA_OPTVALIDITY) = {
	ASN1_EXP_OPT(CA_OPTVALIDITY, notBefore, ASN1_TIME, 0),
	ASN1_EXP_OPT(CA_OPTVALIDITY, notAfter, ASN1_TIME, 1),
} static_ASN1_SEQUENCE_END(CA_OPTVALIDITY)

ASN1_SEQUENCE(CA_CERTTEMPLATE) = {
	ASN1_IMP_OPT(CA_CERTTEMPLATE, version, ASN1_INTEGER, 0),
	ASN1_IMP_OPT(CA_CERTTEMPLATE, serialNumber, ASN1_INTEGER, 1),
	ASN1_IMP_OPT(CA_CERTTEMPLATE, signingAlg, X509_ALGOR, 2),
	ASN1_EXP_OPT(CA_CERTTEMPLATE, issuer, X509_NAME, 3),
	ASN1_IMP_OPT(CA_CERTTEMPLATE, validity, CA_OPTVALIDITY, 4),
	ASN1_EXP_OPT(CA_CERTTEMPLATE, subject, X509_NAME, 5),
	ASN1_IMP_OPT(CA_CERTTEMPLATE, publicKey, X509_PUBKEY, 6),
	ASN1_IMP_OPT(CA_CERTTEMPLATE, issuerUID, ASN1_BIT_STRING, 7),
	ASN1_IMP_OPT(CA_CERTTEMPLATE, subjectUID, ASN1_BIT_STRING, 8),
	ASN1_IMP_SEQUENCE_OF_OPT(CA_CERTTEMPLATE, extensions, X509_EXTENSION, 9),
} ASN1_SEQUENCE_END(CA_CERTTEMPLATE)

/* An ASN1_TIME as time_t; 0 when absent or unreadable. */
static time_t time_of(const ASN1_TIME *t)
{
	struct tm tm;

	if (t == NULL || !ASN1_TIME_to_tm(t, &tm))
		return 0;
	return timegm(&tm);
}

int ca_template_fields(const OSSL_CRMF_CERTTEMPLATE *tmpl, EVP_PKEY **ret_key,
		       X509_NAME **ret_subject, STACK_OF(X509_EXTENSION) **ret_exts,
		       time_t *ret_not_before, time_t *ret_not_after)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	int len, ok = 0;
	CA_CERTTEMPLATE *t = NULL;
	EVP_PKEY *key = NULL;
	X509_NAME *subject = NULL;
	STACK_OF(X509_EXTENSION) *exts = NULL;

	if ((len = i2d_OSSL_CRMF_CERTTEMPLATE(tmpl, &der)) <= 0)
		return 0;
	p = der;
	t = (CA_CERTTEMPLATE *)ASN1_item_d2i(NULL, &p, len, ASN1_ITEM_rptr(CA_CERTTEMPLATE));
	if (t == NULL || p != der + len)
		goto done;
	if (t->publicKey != NULL && (key = X509_PUBKEY_get(t->publicKey)) == NULL)
		goto done;
	if (t->subject != NULL && (subject = X509_NAME_dup(t->subject)) == NULL)
		goto done;
	if (t->extensions != NULL &&
	    (exts = sk_X509_EXTENSION_deep_copy(t->extensions, X509_EXTENSION_dup,
						X509_EXTENSION_free)) == NULL)
		goto done;
	*ret_key = key;
	*ret_subject = subject;
	*ret_exts = exts;
	*ret_not_before = t->validity != NULL ? time_of(t->validity->notBefore) : 0;
	*ret_not_after = t->validity != NULL ? time_of(t->validity->notAfter) : 0;
	key = NULL;
	subject = NULL;
	exts = NULL;
	ok = 1;
done:
	EVP_PKEY_free(key);
	X509_NAME_free(subject);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	ASN1_item_free((ASN1_VALUE *)t, ASN1_ITEM_rptr(CA_CERTTEMPLATE));
	OPENSSL_free(der);
	return ok;
}

EVP_PKEY *ca_new_ec_key(void)
{
	return EVP_EC_gen("P-256");
}

static X509_NAME *make_name(const char *cn)
{
	X509_NAME *n = X509_NAME_new();

	if (n == NULL ||
	    !X509_NAME_add_entry_by_txt(n, "O", MBSTRING_UTF8, (const unsigned char *)"p11enroll test",
					-1, -1, 0) ||
	    !X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
					0)) {
		X509_NAME_free(n);
		return NULL;
	}
	return n;
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx(&v3, issuer, cert, NULL, NULL, 0);
	if ((ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value)) == NULL)
		return 0;
	ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok;
}

/* 16 random bytes; 40 for the oversized-serial fault (RFC 5280 allows 20). */
static int random_serial(X509 *cert, int oversized)
{
	unsigned char buf[40];
	int n = oversized ? 40 : 16;
	BIGNUM *bn;
	int ok;

	if (RAND_bytes(buf, n) != 1)
		return 0;
	buf[0] = (unsigned char)((buf[0] & 0x7f) | 0x40); /* positive, always n bytes */
	if ((bn = BN_bin2bn(buf, n, NULL)) == NULL)
		return 0;
	ok = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != NULL;
	BN_free(bn);
	return ok;
}

/*
 * A certificate for pubkey, signed by issuer_key (self-signed when issuer
 * is NULL).  kind: 0 end entity, 1 CA, 2 CMP server (cmcRA).
 */
static X509 *make_cert(const X509_NAME *subject, EVP_PKEY *pubkey, X509 *issuer,
		       EVP_PKEY *issuer_key, int kind, long seconds,
		       const STACK_OF(X509_EXTENSION) *exts, int oversized, const time_t *validity)
{
	X509 *cert = X509_new();
	X509 *signer;
	int i, have_ku = 0, have_bc = 0;

	if (cert == NULL || !X509_set_version(cert, X509_VERSION_3) ||
	    !random_serial(cert, oversized) || !X509_set_subject_name(cert, subject) ||
	    !X509_set_issuer_name(cert, issuer != NULL ? X509_get_subject_name(issuer) : subject) ||
	    !X509_set_pubkey(cert, pubkey))
		goto fail;
	/* A requested validity is honoured as a CA whose profile allows it
	 * does (EJBCA's "allow validity override"): notBefore from the
	 * request or now, notAfter from the request. */
	if (validity != NULL && validity[1] != 0) {
		if (ASN1_TIME_set(X509_getm_notBefore(cert),
				  validity[0] != 0 ? validity[0] : time(NULL)) == NULL ||
		    ASN1_TIME_set(X509_getm_notAfter(cert), validity[1]) == NULL)
			goto fail;
	} else if (X509_gmtime_adj(X509_getm_notBefore(cert), 0) == NULL ||
		   X509_gmtime_adj(X509_getm_notAfter(cert), seconds) == NULL) {
		goto fail;
	}
	for (i = 0; i < sk_X509_EXTENSION_num(exts); i++) {
		X509_EXTENSION *ext = sk_X509_EXTENSION_value(exts, i);

		switch (OBJ_obj2nid(X509_EXTENSION_get_object(ext))) {
		case NID_subject_key_identifier:
		case NID_authority_key_identifier:
			continue; /* the CA decides these */
		case NID_key_usage:
		case NID_basic_constraints:
			/* an end entity's requested ones, as a profile that
			 * allows them does; otherwise the CA's */
			if (kind != 0)
				continue;
			if (OBJ_obj2nid(X509_EXTENSION_get_object(ext)) == NID_key_usage)
				have_ku = 1;
			else
				have_bc = 1;
			if (!X509_add_ext(cert, ext, -1))
				goto fail;
			break;
		default:
			if (!X509_add_ext(cert, ext, -1))
				goto fail;
		}
	}
	signer = issuer != NULL ? issuer : cert;
	if (!add_ext(cert, signer, NID_subject_key_identifier, "hash") ||
	    !add_ext(cert, signer, NID_authority_key_identifier, "keyid:always"))
		goto fail;
	if (kind == 1) {
		if (!add_ext(cert, signer, NID_basic_constraints,
			     issuer != NULL ? "critical,CA:TRUE,pathlen:0" : "critical,CA:TRUE") ||
		    /* an issuing CA may sign CMP messages too (EJBCA's default CA
		     * profile): OpenSSL wants digitalSignature for that */
		    !add_ext(cert, signer, NID_key_usage,
			     issuer != NULL ? "critical,digitalSignature,keyCertSign,cRLSign"
					    : "critical,keyCertSign,cRLSign"))
			goto fail;
	} else {
		if ((!have_bc && !add_ext(cert, signer, NID_basic_constraints, "critical,CA:FALSE")) ||
		    (!have_ku && !add_ext(cert, signer, NID_key_usage, "critical,digitalSignature")))
			goto fail;
		if (kind == 2 && !add_ext(cert, signer, NID_ext_key_usage, "cmcRA"))
			goto fail;
	}
	if (X509_sign(cert, issuer_key, EVP_sha256()) <= 0)
		goto fail;
	return cert;
fail:
	X509_free(cert);
	return NULL;
}

X509 *ca_self_signed(const char *cn, EVP_PKEY *key, int is_ca)
{
	X509_NAME *name = make_name(cn);
	X509 *cert = NULL;

	if (name != NULL)
		cert =
		    make_cert(name, key, NULL, key, is_ca ? 1 : 2, CA_YEARS_DAYS * 86400L, NULL, 0,
			      NULL);
	X509_NAME_free(name);
	return cert;
}

/*
 * A root key update link certificate (RFC 4210, 4.4.1): the subject and key
 * of subject_cert, certified by issuer (name) with issuer_key.
 */
X509 *ca_link_cert(X509 *subject_cert, X509 *issuer, EVP_PKEY *issuer_key)
{
	return make_cert(X509_get_subject_name(subject_cert), X509_get0_pubkey(subject_cert),
			 issuer, issuer_key, 1, CA_YEARS_DAYS * 86400L, NULL, 0, NULL);
}

X509 *ca_issue(struct ca_ca *ca, const X509_NAME *subject, EVP_PKEY *pubkey,
	       const STACK_OF(X509_EXTENSION) *exts, X509 *issuer, EVP_PKEY *issuer_key)
{
	long secs = ca->validity_seconds > 0 ? ca->validity_seconds : ca->days * 86400L;
	time_t validity[2] = { ca->req_not_before, ca->req_not_after };

	return make_cert(subject, pubkey, issuer != NULL ? issuer : ca->sub,
			 issuer_key != NULL ? issuer_key : ca->sub_key, 0, secs, exts,
			 ca->oversized_serial, validity);
}

static char *path_of(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = OPENSSL_malloc(n);

	if (p != NULL)
		snprintf(p, n, "%s/%s", dir, name);
	return p;
}

/* Writes with the given mode via a temporary file, so a reader never sees half a file. */
static int write_pem(const char *dir, const char *name, X509 *c1, X509 *c2, EVP_PKEY *key)
{
	char *path = path_of(dir, name), *tmp = NULL;
	size_t n;
	int fd = -1, ok = 0;
	FILE *f = NULL;

	if (path == NULL)
		return 0;
	n = strlen(path) + 5;
	if ((tmp = OPENSSL_malloc(n)) == NULL)
		goto done;
	snprintf(tmp, n, "%s.tmp", path);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, key != NULL ? 0600 : 0644)) < 0 ||
	    (f = fdopen(fd, "w")) == NULL)
		goto done;
	fd = -1;
	if (key != NULL && !PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL))
		goto done;
	if (c1 != NULL && !PEM_write_X509(f, c1))
		goto done;
	if (c2 != NULL && !PEM_write_X509(f, c2))
		goto done;
	if (fclose(f) != 0) {
		f = NULL;
		goto done;
	}
	f = NULL;
	ok = rename(tmp, path) == 0;
done:
	if (!ok) {
		fprintf(stderr, "p11enroll-testca: cannot write %s: %s\n", path, strerror(errno));
		if (tmp != NULL)
			unlink(tmp);
	}
	if (f != NULL)
		fclose(f);
	if (fd >= 0)
		close(fd);
	OPENSSL_free(tmp);
	OPENSSL_free(path);
	return ok;
}

static X509 *read_cert(const char *dir, const char *name)
{
	char *path = path_of(dir, name);
	FILE *f = path != NULL ? fopen(path, "r") : NULL;
	X509 *c = NULL;

	if (f != NULL) {
		c = PEM_read_X509(f, NULL, NULL, NULL);
		fclose(f);
	}
	OPENSSL_free(path);
	return c;
}

static EVP_PKEY *read_key(const char *dir, const char *name)
{
	char *path = path_of(dir, name);
	FILE *f = path != NULL ? fopen(path, "r") : NULL;
	EVP_PKEY *k = NULL;

	if (f != NULL) {
		k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
	}
	OPENSSL_free(path);
	return k;
}

static int exists(const char *dir, const char *name)
{
	char *path = path_of(dir, name);
	struct stat st;
	int r = path != NULL && stat(path, &st) == 0;

	OPENSSL_free(path);
	return r;
}

static int load_pair(const char *dir, const char *cname, const char *kname, X509 **c, EVP_PKEY **k)
{
	*c = read_cert(dir, cname);
	*k = read_key(dir, kname);
	if (*c == NULL || *k == NULL || !X509_check_private_key(*c, *k)) {
		fprintf(stderr, "p11enroll-testca: cannot load %s/%s and %s/%s\n", dir, cname, dir,
			kname);
		return 0;
	}
	return 1;
}

static int new_pair(const char *cn, X509 *issuer, EVP_PKEY *issuer_key, int kind,
		    X509 **c, EVP_PKEY **k)
{
	X509_NAME *name = make_name(cn);

	*k = ca_new_ec_key();
	*c = NULL;
	if (name != NULL && *k != NULL)
		*c = make_cert(name, *k, issuer, issuer_key != NULL ? issuer_key : *k, kind,
			       CA_YEARS_DAYS * 86400L, NULL, 0, NULL);
	X509_NAME_free(name);
	return *c != NULL;
}

/*
 * --new-root: the next root (kept across restarts) and the link
 * certificates newWithOld and oldWithNew, made afresh on each start.
 */
X509 *ca_bad_new_root(struct ca_ca *ca, int expired)
{
	X509 *cert = make_cert(X509_get_subject_name(ca->newroot), ca->newroot_key, NULL,
			       ca->newroot_key, expired ? 1 : 0, CA_YEARS_DAYS * 86400L, NULL, 0,
			       NULL);

	if (cert != NULL && expired &&
	    (X509_gmtime_adj(X509_getm_notBefore(cert), -2 * 86400L) == NULL ||
	     X509_gmtime_adj(X509_getm_notAfter(cert), -86400L) == NULL ||
	     X509_sign(cert, ca->newroot_key, EVP_sha256()) <= 0)) {
		X509_free(cert);
		return NULL;
	}
	return cert;
}

static int new_root(struct ca_ca *ca, const char *dir)
{
	if (exists(dir, "newroot.pem")) {
		if (!load_pair(dir, "newroot.pem", "newroot.key", &ca->newroot, &ca->newroot_key))
			return 0;
	} else {
		if (!new_pair("p11enroll Test Root CA 2", NULL, NULL, 1, &ca->newroot,
			      &ca->newroot_key) ||
		    !write_pem(dir, "newroot.key", NULL, NULL, ca->newroot_key) ||
		    !write_pem(dir, "newroot.pem", ca->newroot, NULL, NULL))
			return 0;
		ca_event("created the new root CA in %s", dir);
	}
	if ((ca->new_with_old = ca_link_cert(ca->newroot, ca->root, ca->root_key)) == NULL ||
	    (ca->old_with_new = ca_link_cert(ca->root, ca->newroot, ca->newroot_key)) == NULL ||
	    !write_pem(dir, "newwithold.pem", ca->new_with_old, NULL, NULL) ||
	    !write_pem(dir, "oldwithnew.pem", ca->old_with_new, NULL, NULL))
		return 0;
	return 1;
}

int ca_ca_load_or_create(struct ca_ca *ca, const char *dir)
{
	char *issued;

	if ((ca->dir = OPENSSL_strdup(dir)) == NULL)
		return 0;
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		fprintf(stderr, "p11enroll-testca: cannot create %s: %s\n", dir, strerror(errno));
		return 0;
	}
	if ((issued = path_of(dir, "issued")) == NULL)
		return 0;
	if (mkdir(issued, 0700) != 0 && errno != EEXIST) {
		fprintf(stderr, "p11enroll-testca: cannot create %s: %s\n", issued,
			strerror(errno));
		OPENSSL_free(issued);
		return 0;
	}
	OPENSSL_free(issued);

	if (exists(dir, "root.pem")) {
		if (!load_pair(dir, "root.pem", "root.key", &ca->root, &ca->root_key) ||
		    !load_pair(dir, "ca.pem", "ca.key", &ca->sub, &ca->sub_key))
			return 0;
	} else {
		if (!new_pair("p11enroll Test Root CA", NULL, NULL, 1, &ca->root,
			      &ca->root_key) ||
		    !new_pair("p11enroll Test Issuing CA", ca->root, ca->root_key, 1, &ca->sub,
			      &ca->sub_key))
			goto fail_new;
		if (!write_pem(dir, "root.key", NULL, NULL, ca->root_key) ||
		    !write_pem(dir, "ca.key", NULL, NULL, ca->sub_key) ||
		    !write_pem(dir, "ca.pem", ca->sub, NULL, NULL) ||
		    !write_pem(dir, "chain.pem", ca->sub, ca->root, NULL) ||
		    !write_pem(dir, "root.pem", ca->root, NULL, NULL))
			return 0;
		ca_event("created root CA and issuing CA in %s", dir);
	}
	if (exists(dir, "srv.pem")) {
		if (!load_pair(dir, "srv.pem", "srv.key", &ca->srv, &ca->srv_key))
			return 0;
	} else {
		if (!new_pair("p11enroll Test CMP Server", ca->sub, ca->sub_key, 2, &ca->srv,
			      &ca->srv_key))
			goto fail_new;
		if (!write_pem(dir, "srv.key", NULL, NULL, ca->srv_key) ||
		    !write_pem(dir, "srv.pem", ca->srv, NULL, NULL))
			return 0;
	}
	if (exists(dir, "device.pem")) {
		if (!load_pair(dir, "device.pem", "device.key", &ca->device, &ca->device_key))
			return 0;
	} else {
		if (!new_pair("p11enroll Test Device", ca->sub, ca->sub_key, 0, &ca->device,
			      &ca->device_key))
			goto fail_new;
		if (!write_pem(dir, "device.key", NULL, NULL, ca->device_key) ||
		    !write_pem(dir, "device.pem", ca->device, NULL, NULL))
			return 0;
	}
	if (ca->want_new_root && !new_root(ca, dir))
		goto fail_new;
	if (!ca_crl_update(ca))
		goto fail_new;
	return 1;
fail_new:
	ca_log_openssl_errors("creating the CA certificates");
	return 0;
}

void ca_ca_cleanup(struct ca_ca *ca)
{
	X509_free(ca->root);
	X509_free(ca->sub);
	X509_free(ca->srv);
	EVP_PKEY_free(ca->root_key);
	EVP_PKEY_free(ca->sub_key);
	EVP_PKEY_free(ca->srv_key);
	X509_free(ca->device);
	EVP_PKEY_free(ca->device_key);
	X509_free(ca->newroot);
	X509_free(ca->new_with_old);
	X509_free(ca->old_with_new);
	EVP_PKEY_free(ca->newroot_key);
	X509_CRL_free(ca->crl);
	OPENSSL_free(ca->dir);
	memset(ca, 0, sizeof(*ca));
}

/* Upper-case hex without sign; NULL for negative or absent serials. */
char *ca_serial_hex(const ASN1_INTEGER *serial)
{
	BIGNUM *bn;
	char *hex = NULL;

	if (serial == NULL || (bn = ASN1_INTEGER_to_BN(serial, NULL)) == NULL)
		return NULL;
	if (!BN_is_negative(bn))
		hex = BN_bn2hex(bn);
	BN_free(bn);
	return hex;
}

static char *issued_name(const ASN1_INTEGER *serial)
{
	char *hex = ca_serial_hex(serial), *name = NULL;
	size_t n;

	if (hex == NULL)
		return NULL;
	n = strlen(hex) + 12;
	if ((name = OPENSSL_malloc(n)) != NULL)
		snprintf(name, n, "issued/%s.pem", hex);
	OPENSSL_free(hex);
	return name;
}

int ca_record_issued(struct ca_ca *ca, X509 *cert)
{
	char *name = issued_name(X509_get0_serialNumber(cert));
	int ok = name != NULL && write_pem(ca->dir, name, cert, NULL, NULL);

	OPENSSL_free(name);
	return ok;
}

X509 *ca_find_issued(struct ca_ca *ca, const X509_NAME *issuer, const ASN1_INTEGER *serial)
{
	char *name;
	X509 *c;

	if (issuer != NULL && X509_NAME_cmp(issuer, X509_get_subject_name(ca->sub)) != 0)
		return NULL;
	if ((name = issued_name(serial)) == NULL)
		return NULL;
	c = read_cert(ca->dir, name);
	OPENSSL_free(name);
	return c;
}

/* DIR/archive/SERIAL.pem: the private keys of issued certificates that the
 * CA holds for key recovery (archived by the client, or generated
 * centrally).  In the clear: this is a test CA, and the tests read them. */
static char *archive_name(const ASN1_INTEGER *serial)
{
	char *hex = ca_serial_hex(serial), *name = NULL;
	size_t n;

	if (hex == NULL)
		return NULL;
	n = strlen(hex) + 13;
	if ((name = OPENSSL_malloc(n)) != NULL)
		snprintf(name, n, "archive/%s.pem", hex);
	OPENSSL_free(hex);
	return name;
}

int ca_archive_put(struct ca_ca *ca, const ASN1_INTEGER *serial, EVP_PKEY *key)
{
	char *dir = path_of(ca->dir, "archive"), *name = archive_name(serial);
	int ok = dir != NULL && name != NULL && (mkdir(dir, 0700) == 0 || errno == EEXIST) &&
		 write_pem(ca->dir, name, NULL, NULL, key);

	OPENSSL_free(dir);
	OPENSSL_free(name);
	return ok;
}

EVP_PKEY *ca_archive_get(struct ca_ca *ca, const ASN1_INTEGER *serial)
{
	char *name = archive_name(serial);
	EVP_PKEY *key = name != NULL ? read_key(ca->dir, name) : NULL;

	OPENSSL_free(name);
	return key;
}

int ca_is_revoked(struct ca_ca *ca, const ASN1_INTEGER *serial)
{
	char *hex = ca_serial_hex(serial), *path = path_of(ca->dir, "revoked");
	char line[256];
	size_t n;
	int found = 0;
	FILE *f;

	if (hex != NULL && path != NULL && (f = fopen(path, "r")) != NULL) {
		n = strlen(hex);
		while (!found && fgets(line, sizeof(line), f) != NULL)
			found = strncmp(line, hex, n) == 0 && line[n] == ' ';
		fclose(f);
	}
	OPENSSL_free(hex);
	OPENSSL_free(path);
	return found;
}

int ca_revoke(struct ca_ca *ca, const ASN1_INTEGER *serial, int reason)
{
	char *hex = ca_serial_hex(serial), *path = path_of(ca->dir, "revoked");
	FILE *f = NULL;
	int ok = 0;

	if (hex != NULL && path != NULL && (f = fopen(path, "a")) != NULL) {
		ok = fprintf(f, "%s %d %lld\n", hex, reason, (long long)time(NULL)) > 0;
		ok = (fclose(f) == 0) && ok;
	}
	OPENSSL_free(hex);
	OPENSSL_free(path);
	return ok && ca_crl_update(ca);
}

/* One line of DIR/revoked ("SERIALHEX REASON TIME") as a CRL entry. */
static X509_REVOKED *revoked_entry(const char *line)
{
	char hex[128];
	int reason;
	long long when;
	BIGNUM *bn = NULL;
	ASN1_INTEGER *serial = NULL;
	ASN1_TIME *t = NULL;
	ASN1_ENUMERATED *e = NULL;
	X509_REVOKED *r = NULL;

	if (sscanf(line, "%127s %d %lld", hex, &reason, &when) != 3 || !BN_hex2bn(&bn, hex) ||
	    (serial = BN_to_ASN1_INTEGER(bn, NULL)) == NULL ||
	    (t = ASN1_TIME_set(NULL, (time_t)when)) == NULL || (r = X509_REVOKED_new()) == NULL ||
	    !X509_REVOKED_set_serialNumber(r, serial) || !X509_REVOKED_set_revocationDate(r, t))
		goto fail;
	/* unspecified (0) and none (-1) go without a reason code (RFC 5280, 5.3.1) */
	if (reason > 0 && ((e = ASN1_ENUMERATED_new()) == NULL || !ASN1_ENUMERATED_set(e, reason) ||
			   !X509_REVOKED_add1_ext_i2d(r, NID_crl_reason, e, 0, 0)))
		goto fail;
	goto done;
fail:
	X509_REVOKED_free(r);
	r = NULL;
done:
	ASN1_ENUMERATED_free(e);
	ASN1_TIME_free(t);
	ASN1_INTEGER_free(serial);
	BN_free(bn);
	return r;
}

/* The issuing CA's CRL from DIR/revoked, into ca->crl and DIR/crl.pem. */
int ca_crl_update(struct ca_ca *ca)
{
	char *path = path_of(ca->dir, "revoked"), *crlpath = NULL, *tmp = NULL;
	char line[256];
	X509_CRL *crl = X509_CRL_new();
	ASN1_TIME *t = NULL;
	X509V3_CTX v3;
	X509_EXTENSION *ext = NULL;
	FILE *f = NULL;
	int ok = 0;
	size_t n;

	if (path == NULL || crl == NULL || !X509_CRL_set_version(crl, X509_CRL_VERSION_2) ||
	    !X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca->sub)) ||
	    (t = X509_gmtime_adj(NULL, 0)) == NULL || !X509_CRL_set1_lastUpdate(crl, t) ||
	    X509_gmtime_adj(t, 7 * 86400L) == NULL || !X509_CRL_set1_nextUpdate(crl, t))
		goto done;
	if ((f = fopen(path, "r")) != NULL) {
		while (fgets(line, sizeof(line), f) != NULL) {
			X509_REVOKED *r = revoked_entry(line);

			if (r == NULL || !X509_CRL_add0_revoked(crl, r)) {
				X509_REVOKED_free(r);
				goto done;
			}
		}
		fclose(f);
		f = NULL;
	}
	X509V3_set_ctx(&v3, ca->sub, NULL, NULL, crl, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_authority_key_identifier, "keyid:always");
	if (ext == NULL || !X509_CRL_add_ext(crl, ext, -1) || !X509_CRL_sort(crl) ||
	    X509_CRL_sign(crl, ca->sub_key, EVP_sha256()) <= 0)
		goto done;
	if ((crlpath = path_of(ca->dir, "crl.pem")) == NULL)
		goto done;
	n = strlen(crlpath) + 5;
	if ((tmp = OPENSSL_malloc(n)) == NULL)
		goto done;
	snprintf(tmp, n, "%s.tmp", crlpath);
	if ((f = fopen(tmp, "w")) == NULL || !PEM_write_X509_CRL(f, crl))
		goto done;
	ok = fclose(f) == 0;
	f = NULL;
	ok = ok && rename(tmp, crlpath) == 0;
	if (ok) {
		X509_CRL_free(ca->crl);
		ca->crl = crl;
		crl = NULL;
	}
done:
	if (!ok)
		fprintf(stderr, "p11enroll-testca: cannot make the CRL %s/crl.pem\n", ca->dir);
	if (f != NULL)
		fclose(f);
	X509_EXTENSION_free(ext);
	ASN1_TIME_free(t);
	X509_CRL_free(crl);
	OPENSSL_free(tmp);
	OPENSSL_free(crlpath);
	OPENSSL_free(path);
	return ok;
}
