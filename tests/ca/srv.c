/*
 * The CMP side: OpenSSL's generic server (OSSL_CMP_SRV_CTX) with our
 * callbacks, and the fault switches.  OpenSSL validates the protection
 * and the POP before it calls process_cert_request, builds and protects
 * the responses and keeps the transaction state.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/cmperr.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "tests/ca/testca.h"
#include "tests/common/cmp-asn1.h"

/* id-it (1.3.6.1.5.5.7.4) values of RFC 9480 and RFC 9483 */
#define OID_CA_CERTS "1.3.6.1.5.5.7.4.17"
#define OID_ROOT_CA_KEY_UPDATE "1.3.6.1.5.5.7.4.18"
#define OID_CERT_REQ_TEMPLATE "1.3.6.1.5.5.7.4.19"
#define OID_ROOT_CA_CERT "1.3.6.1.5.5.7.4.20"
#define OID_CRL_STATUS_LIST "1.3.6.1.5.5.7.4.22"
#define OID_CRLS "1.3.6.1.5.5.7.4.23"
#define OID_REGCTRL_ALGID "1.3.6.1.5.5.7.5.1.11"
#define OID_REGCTRL_RSAKEYLEN "1.3.6.1.5.5.7.5.1.12"

#define LAST_RESPONSE "last-response.der" /* in --dir: what --fault replay sends */

struct ca_srv {
	const struct ca_opts *opts;
	struct ca_ca *ca;
	OSSL_CMP_SRV_CTX *srv_ctx;
	OSSL_CMP_CTX *ctx; /* borrowed from srv_ctx */
	int ccr;	   /* the request is a ccr, served as a cr (ccr_as_cr) */
	struct ca_ckg *ckg; /* central key generation for this request (ckg.c) */
	ASN1_OBJECT *oid_ca_certs, *oid_root_update, *oid_req_template, *oid_root_cert;
	ASN1_OBJECT *oid_crl_status, *oid_crls;
	X509 *fake_ca, *fake_srv; /* for the untrusted and bad-protection faults */
	EVP_PKEY *fake_ca_key, *fake_srv_key;
	STACK_OF(X509) *junk; /* many-extracerts */
	ASN1_TYPE *req_template; /* --template: the CertReqTemplateContent */
	long faults_used;
	long eligible_seen; /* requests --fault/--fault-on applied to so far (--fault-skip) */
	long hangs_used;    /* requests left unanswered by --hang-on (--hang-count) */
	int poll_fault; /* 1 check-after-huge, 2 endless-poll: this transaction polls forever */

	/* the transaction */
	X509 *issued;            /* waiting for certConf */
	OSSL_CMP_MSG *held;      /* cert request held back while polling */
	int held_ccr;            /* it was a ccr: delivered as a ccp */
	time_t deliver_at;
	int delivering;

	/* the request being handled */
	struct ca_reqinfo ri;
	int req_type;
	int faulty;              /* the faults apply to this request */
	int cert_cb;             /* process_cert_request was called: POP verified */
	int issued_now;
	char outcome[160];
};

/* "/CN=a/O=b" as an X509_NAME; NULL when malformed. */
static X509_NAME *parse_name(const char *text, size_t len)
{
	X509_NAME *n = X509_NAME_new();
	char *copy = OPENSSL_strndup(text, len), *p, *next, *eq;

	if (n == NULL || copy == NULL || copy[0] != '/')
		goto fail;
	for (p = copy + 1; p != NULL && *p != '\0'; p = next) {
		if ((next = strchr(p, '/')) != NULL)
			*next++ = '\0';
		if ((eq = strchr(p, '=')) == NULL || eq == p || eq[1] == '\0')
			goto fail;
		*eq = '\0';
		if (!X509_NAME_add_entry_by_txt(n, p, MBSTRING_UTF8, (unsigned char *)eq + 1, -1,
						-1, 0))
			goto fail;
	}
	if (X509_NAME_entry_count(n) == 0)
		goto fail;
	OPENSSL_free(copy);
	return n;
fail:
	OPENSSL_free(copy);
	X509_NAME_free(n);
	return NULL;
}

/* keySpec control for "ec:CURVE" or "rsa:BITS" (RFC 9480, 2.16). */
static TCMP_ATAV *key_spec(const char *text, size_t len)
{
	TCMP_ATAV *a = OPENSSL_zalloc(sizeof(*a));
	char buf[64];
	X509_ALGOR *alg = NULL;
	ASN1_INTEGER *bits = NULL;
	int nid;
	long v;
	char *end;

	if (a == NULL || len >= sizeof(buf))
		goto fail;
	memcpy(buf, text, len);
	buf[len] = '\0';
	if (strncmp(buf, "ec:", 3) == 0) {
		if ((nid = EC_curve_nist2nid(buf + 3)) == NID_undef &&
		    (nid = OBJ_sn2nid(buf + 3)) == NID_undef)
			goto fail;
		if ((a->type = OBJ_txt2obj(OID_REGCTRL_ALGID, 1)) == NULL ||
		    (alg = X509_ALGOR_new()) == NULL ||
		    !X509_ALGOR_set0(alg, OBJ_nid2obj(NID_X9_62_id_ecPublicKey), V_ASN1_OBJECT,
				     OBJ_nid2obj(nid)) ||
		    ASN1_TYPE_pack_sequence(ASN1_ITEM_rptr(X509_ALGOR), alg, &a->value) == NULL)
			goto fail;
	} else if (strncmp(buf, "rsa:", 4) == 0) {
		v = strtol(buf + 4, &end, 10);
		if (end == buf + 4 || *end != '\0' || v < 512 || v > 16384)
			goto fail;
		if ((a->type = OBJ_txt2obj(OID_REGCTRL_RSAKEYLEN, 1)) == NULL ||
		    (bits = ASN1_INTEGER_new()) == NULL || !ASN1_INTEGER_set(bits, v) ||
		    (a->value = ASN1_TYPE_new()) == NULL)
			goto fail;
		ASN1_TYPE_set(a->value, V_ASN1_INTEGER, bits);
		bits = NULL;
	} else {
		goto fail;
	}
	X509_ALGOR_free(alg);
	return a;
fail:
	X509_ALGOR_free(alg);
	ASN1_INTEGER_free(bits);
	ASN1_item_free((ASN1_VALUE *)a, ASN1_ITEM_rptr(TCMP_ATAV));
	return NULL;
}

/*
 * --template "subject=/CN=..;key=ec:P-384|rsa:3072" as the DER of a
 * CertReqTemplateContent in an ASN1_TYPE; NULL when the text is malformed.
 */
ASN1_TYPE *ca_template_value(const char *spec)
{
	TCMP_CERTREQTEMPLATE *t = OPENSSL_zalloc(sizeof(*t));
	ASN1_TYPE *value = NULL;
	const char *p = spec;
	X509_NAME *subject = NULL;
	X509_EXTENSIONS *exts = NULL;
	OSSL_CRMF_MSG *msg = NULL;

	if (t == NULL || (t->certTemplate = OSSL_CRMF_CERTTEMPLATE_new()) == NULL)
		goto done;
	while (*p != '\0') {
		size_t n = strcspn(p, ";");

		if (n > 8 && strncmp(p, "subject=", 8) == 0 && subject == NULL) {
			if ((subject = parse_name(p + 8, n - 8)) == NULL)
				goto done;
		} else if ((n > 4 && strncmp(p, "san=", 4) == 0) ||
			   (n > 4 && strncmp(p, "ext=", 4) == 0 && memchr(p + 4, ':', n - 4) != NULL)) {
			/* OpenSSL's subjectAltName syntax, bytes as given: a test
			 * of what the client prints from a template; ext=NAME:VALUE
			 * any other extension in OpenSSL's configuration syntax. */
			char *v = OPENSSL_strndup(p + 4, n - 4), *val;
			X509_EXTENSION *x = NULL;

			if (v != NULL && p[0] == 's')
				x = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, v);
			else if (v != NULL && (val = strchr(v, ':')) != NULL) {
				*val++ = '\0';
				x = X509V3_EXT_conf(NULL, NULL, v, val);
			}
			OPENSSL_free(v);
			if (x == NULL ||
			    (exts == NULL && (exts = sk_X509_EXTENSION_new_null()) == NULL) ||
			    !sk_X509_EXTENSION_push(exts, x)) {
				X509_EXTENSION_free(x);
				goto done;
			}
		} else if (n > 4 && strncmp(p, "key=", 4) == 0 && t->keySpec == NULL) {
			TCMP_ATAV *a = key_spec(p + 4, n - 4);

			if (a == NULL || (t->keySpec = sk_TCMP_ATAV_new_null()) == NULL ||
			    !sk_TCMP_ATAV_push(t->keySpec, a)) {
				ASN1_item_free((ASN1_VALUE *)a, ASN1_ITEM_rptr(TCMP_ATAV));
				goto done;
			}
		} else {
			goto done;
		}
		p += n;
		if (*p == ';')
			p++;
	}
	if (subject != NULL &&
	    !OSSL_CRMF_CERTTEMPLATE_fill(t->certTemplate, NULL, subject, NULL, NULL))
		goto done;
	if (exts != NULL) {
		/* OpenSSL 3.0 sets extensions only on a whole CertReqMsg. */
		OSSL_CRMF_CERTTEMPLATE *copy;

		if ((msg = OSSL_CRMF_MSG_new()) == NULL ||
		    !OSSL_CRMF_MSG_set0_extensions(msg, exts))
			goto done;
		exts = NULL;
		if ((copy = ASN1_item_dup(ASN1_ITEM_rptr(OSSL_CRMF_CERTTEMPLATE),
					  OSSL_CRMF_MSG_get0_tmpl(msg))) == NULL)
			goto done;
		OSSL_CRMF_CERTTEMPLATE_free(t->certTemplate);
		t->certTemplate = copy;
		if (subject != NULL &&
		    !OSSL_CRMF_CERTTEMPLATE_fill(t->certTemplate, NULL, subject, NULL, NULL))
			goto done;
	}
	ASN1_TYPE_pack_sequence(ASN1_ITEM_rptr(TCMP_CERTREQTEMPLATE), t, &value);
done:
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	OSSL_CRMF_MSG_free(msg);
	X509_NAME_free(subject);
	ASN1_item_free((ASN1_VALUE *)t, ASN1_ITEM_rptr(TCMP_CERTREQTEMPLATE));
	return value;
}

static const char *const body_names[] = {
	"ir", "ip", "cr", "cp", "p10cr", "popdecc", "popdecr", "kur", "kup", "krr",
	"krp", "rr", "rp", "ccr", "ccp", "ckuann", "cann", "rann", "crlann", "pkiconf",
	"nested", "genm", "genp", "error", "certConf", "pollReq", "pollRep",
};

static const char *body_name(int type)
{
	if (type >= 0 && type < (int)(sizeof(body_names) / sizeof(body_names[0])))
		return body_names[type];
	return "?";
}

/* The PKIBody tag of a body name ("ir", "certConf"...), or -1. */
int ca_body_type(const char *name)
{
	int i;

	for (i = 0; i < (int)(sizeof(body_names) / sizeof(body_names[0])); i++)
		if (strcmp(name, body_names[i]) == 0)
			return i;
	return -1;
}

static const char *const failinfo_names[] = {
	"badAlg", "badMessageCheck", "badRequest", "badTime", "badCertId", "badDataFormat",
	"wrongAuthority", "incorrectData", "missingTimeStamp", "badPOP", "certRevoked",
	"certConfirmed", "wrongIntegrity", "badRecipientNonce", "timeNotAvailable",
	"unacceptedPolicy", "unacceptedExtension", "addInfoNotAvailable", "badSenderNonce",
	"badCertTemplate", "signerNotTrusted", "transactionIdInUse", "unsupportedVersion",
	"notAuthorized", "systemUnavail", "systemFailure", "duplicateCertReq",
};

int ca_failinfo_bit(const char *name)
{
	int i;

	for (i = 0; i <= OSSL_CMP_PKIFAILUREINFO_MAX; i++)
		if (strcmp(name, failinfo_names[i]) == 0)
			return i;
	return -1;
}

static int is_cert_request(int type)
{
	return type == CA_BODY_IR || type == CA_BODY_CR || type == CA_BODY_P10CR ||
	       type == CA_BODY_KUR || type == CA_BODY_CCR;
}

static int fault(const struct ca_srv *s, unsigned int f)
{
	return s->faulty && (s->opts->faults & f) != 0;
}

static OSSL_CMP_PKISI *rejection(struct ca_srv *s, int bit, const char *text)
{
	snprintf(s->outcome, sizeof(s->outcome), "rejected %s", failinfo_names[bit]);
	ca_event("%s: rejected %s: %s", body_name(s->req_type), failinfo_names[bit], text);
	return OSSL_CMP_STATUSINFO_new(OSSL_CMP_PKISTATUS_rejection, 1 << bit, text);
}

/* --reject-text FILE: its bytes as they are (a test gives invalid or long
 * UTF-8 on purpose), without a final newline; 0 when it cannot be read. */
static int reject_text(const char *path, char *text, size_t len)
{
	FILE *f = fopen(path, "rb");
	size_t n;

	if (f == NULL) {
		ca_event("cannot read the --reject-text file %s", path);
		return 0;
	}
	n = fread(text, 1, len - 1, f);
	fclose(f);
	if (n > 0 && text[n - 1] == '\n')
		n--;
	text[n] = '\0';
	return 1;
}

/* A rejection asked for by --fault reject=NAME or unprotected-error, or NULL. */
static OSSL_CMP_PKISI *fault_rejection(struct ca_srv *s)
{
	char text[16 * 1024 + 1];

	if (fault(s, CA_FAULT_REJECT)) {
		snprintf(text, sizeof(text), "test CA fault: reject=%s",
			 failinfo_names[s->opts->reject_bit]);
		if (s->opts->reject_text != NULL && !reject_text(s->opts->reject_text, text,
								 sizeof(text)))
			return NULL;
		return rejection(s, s->opts->reject_bit, text);
	}
	if (fault(s, CA_FAULT_WEIRD_TEXT))
		/* format directives, terminal escapes, a forged second line, invalid UTF-8 */
		return rejection(s, OSSL_CMP_PKIFAILUREINFO_badRequest,
				 "test CA fault: weird-text %n%s%x%p \033[2J\033]0;owned\007"
				 "\033[31mred\033[0m\r\np11enroll: certificate stored \xff\xfe"
				 " \xc2\x9b" "2J c1-csi");
	if (fault(s, CA_FAULT_UNPROTECTED_ERROR)) {
		OSSL_CMP_SRV_CTX_set_send_unprotected_errors(s->srv_ctx, 1);
		return rejection(s, OSSL_CMP_PKIFAILUREINFO_badRequest,
				 "test CA fault: unprotected-error");
	}
	return NULL;
}

/* For the callbacks that answer a fault with an error message only: the
 * rejection's status is logged, then dropped. */
static int fault_refuses(struct ca_srv *s)
{
	OSSL_CMP_PKISI *si = fault_rejection(s);
	int refused = si != NULL;

	OSSL_CMP_PKISI_free(si);
	return refused;
}

static int lazy_fake(const char *cn, int is_ca, X509 **c, EVP_PKEY **k)
{
	if (*c != NULL)
		return 1;
	if ((*k = ca_new_ec_key()) == NULL || (*c = ca_self_signed(cn, *k, is_ca)) == NULL) {
		EVP_PKEY_free(*k);
		*k = NULL;
		return 0;
	}
	return 1;
}

static STACK_OF(X509) *certs_of(X509 *a, X509 *b)
{
	STACK_OF(X509) *sk = sk_X509_new_null();

	if (sk == NULL)
		return NULL;
	if ((a != NULL && !X509_add_cert(sk, a, X509_ADD_FLAG_UP_REF)) ||
	    (b != NULL && !X509_add_cert(sk, b, X509_ADD_FLAG_UP_REF))) {
		sk_X509_pop_free(sk, X509_free);
		return NULL;
	}
	return sk;
}

static void log_cert(const char *what, X509 *cert)
{
	char *hex = ca_serial_hex(X509_get0_serialNumber(cert));
	char *subj = X509_NAME_oneline(X509_get_subject_name(cert), NULL, 0);

	ca_event("%s serial %s subject %s", what, hex != NULL ? hex : "?",
		 subj != NULL ? subj : "?");
	OPENSSL_free(hex);
	OPENSSL_free(subj);
}

/* The key, subject and extensions a request asks for (p10cr or CRMF template). */
static int requested(const OSSL_CRMF_MSG *crm, const X509_REQ *p10cr, EVP_PKEY **key,
		     X509_NAME **subject, STACK_OF(X509_EXTENSION) **exts, time_t validity[2])
{
	validity[0] = validity[1] = 0;
	*key = NULL;
	*subject = NULL;
	*exts = NULL;
	if (p10cr != NULL) {
		EVP_PKEY *k = X509_REQ_get0_pubkey((X509_REQ *)p10cr);

		if (k != NULL && EVP_PKEY_up_ref(k))
			*key = k;
		*subject = X509_NAME_dup(X509_REQ_get_subject_name(p10cr));
		*exts = X509_REQ_get_extensions((X509_REQ *)p10cr);
		return 1;
	}
	return ca_template_fields(OSSL_CRMF_MSG_get0_tmpl(crm), key, subject, exts, &validity[0],
				  &validity[1]);
}

/* kur: oldCertID names a certificate we issued, not revoked, that signed the request. */
static OSSL_CMP_PKISI *check_kur(struct ca_srv *s, const OSSL_CRMF_MSG *crm, X509 **ret_old)
{
	OSSL_CRMF_CERTID *cid = OSSL_CRMF_MSG_get0_regCtrl_oldCertID(crm);
	X509 *old;

	if (cid == NULL)
		return rejection(s, OSSL_CMP_PKIFAILUREINFO_badCertId, "kur without oldCertID");
	old = ca_find_issued(s->ca, OSSL_CRMF_CERTID_get0_issuer(cid),
			     OSSL_CRMF_CERTID_get0_serialNumber(cid));
	if (old == NULL)
		return rejection(s, OSSL_CMP_PKIFAILUREINFO_badCertId,
				 "oldCertID: not a certificate of this CA");
	if (ca_is_revoked(s->ca, X509_get0_serialNumber(old))) {
		X509_free(old);
		return rejection(s, OSSL_CMP_PKIFAILUREINFO_certRevoked,
				 "the certificate to update is revoked");
	}
	if (s->ri.signer == NULL || X509_cmp(s->ri.signer, old) != 0) {
		X509_free(old);
		return rejection(s, OSSL_CMP_PKIFAILUREINFO_notAuthorized,
				 "kur not signed with the certificate to update");
	}
	ca_event("kur: oldCertID matches an issued certificate");
	*ret_old = old;
	return NULL;
}

static OSSL_CMP_PKISI *cb_cert_request(OSSL_CMP_SRV_CTX *srv_ctx, const OSSL_CMP_MSG *req,
				       int certReqId, const OSSL_CRMF_MSG *crm,
				       const X509_REQ *p10cr, X509 **certOut,
				       STACK_OF(X509) **chainOut, STACK_OF(X509) **caPubs)
{
	struct ca_srv *s = OSSL_CMP_SRV_CTX_get0_custom_ctx(srv_ctx);
	int type = OSSL_CMP_MSG_get_bodytype(req);
	EVP_PKEY *key = NULL;
	X509_NAME *subject = NULL;
	STACK_OF(X509_EXTENSION) *exts = NULL;
	X509 *old = NULL, *cert = NULL, *issuer = NULL;
	EVP_PKEY *issuer_key = NULL;
	OSSL_CMP_PKISI *si = NULL;
	EVP_PKEY *archived = NULL;
	const char *why;
	int bit;
	time_t validity[2];

	s->cert_cb = 1;
	s->poll_fault = 0;
	if (!s->delivering)
		ca_event("%s: POP verified (%s)", body_name(type),
			 p10cr != NULL ? "CSR signature" : "CRMF signature");
	if ((si = fault_rejection(s)) != NULL)
		return si;
	if (fault(s, CA_FAULT_CHECK_AFTER_HUGE | CA_FAULT_ENDLESS_POLL)) {
		OSSL_CMP_MSG_free(s->held);
		if ((s->held = OSSL_CMP_MSG_dup(req)) == NULL)
			return NULL;
		s->poll_fault = fault(s, CA_FAULT_CHECK_AFTER_HUGE) ? 1 : 2;
		snprintf(s->outcome, sizeof(s->outcome), "waiting (fault %s)",
			 s->poll_fault == 1 ? "check-after-huge" : "endless-poll");
		ca_event("%s: fault %s: waiting, never delivered", body_name(type),
			 s->poll_fault == 1 ? "check-after-huge" : "endless-poll");
		return OSSL_CMP_STATUSINFO_new(OSSL_CMP_PKISTATUS_waiting, 0, NULL);
	}
	if (s->opts->poll_seconds > 0 && !s->delivering) {
		OSSL_CMP_MSG_free(s->held);
		if ((s->held = OSSL_CMP_MSG_dup(req)) == NULL)
			return NULL;
		s->deliver_at = time(NULL) + s->opts->poll_seconds;
		s->held_ccr = s->ccr;
		snprintf(s->outcome, sizeof(s->outcome), "waiting");
		ca_event("%s: waiting, certificate ready in %d s", body_name(type),
			 s->opts->poll_seconds);
		return OSSL_CMP_STATUSINFO_new(OSSL_CMP_PKISTATUS_waiting, 0, NULL);
	}
	s->delivering = 0;

	if (!requested(crm, p10cr, &key, &subject, &exts, validity)) {
		si = rejection(s, OSSL_CMP_PKIFAILUREINFO_badDataFormat, "unreadable request");
		goto done;
	}
	if (key == NULL) {
		si = rejection(s, OSSL_CMP_PKIFAILUREINFO_badCertTemplate,
			       "no public key in the request");
		goto done;
	}
	if (type == CA_BODY_KUR) {
		if ((si = check_kur(s, crm, &old)) != NULL)
			goto done;
		if (subject == NULL || X509_NAME_entry_count(subject) == 0) {
			X509_NAME_free(subject);
			subject = X509_NAME_dup(X509_get_subject_name(old));
		}
		if (exts == NULL) {
			int i = X509_get_ext_by_NID(old, NID_subject_alt_name, -1);

			if (i >= 0 && (exts = sk_X509_EXTENSION_new_null()) != NULL &&
			    !X509v3_add_ext(&exts, X509_get_ext(old, i), -1)) {
				sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
				exts = NULL;
			}
			if (i >= 0)
				ca_event("kur: no extensions requested, SANs copied from the old "
					 "certificate");
		}
	} else if (s->ri.signer != NULL && ca_is_revoked(s->ca, X509_get0_serialNumber(s->ri.signer))) {
		si = rejection(s, OSSL_CMP_PKIFAILUREINFO_certRevoked,
			       "request signed with a revoked certificate");
		goto done;
	}
	if (subject == NULL || X509_NAME_entry_count(subject) == 0) {
		si = rejection(s, OSSL_CMP_PKIFAILUREINFO_badCertTemplate, "no subject requested");
		goto done;
	}

	if (!ca_archive_take(&s->opts->archive, crm, key, &archived, &bit, &why)) {
		si = rejection(s, bit, why);
		goto done;
	}
	if (fault(s, CA_FAULT_WRONG_KEY)) {
		EVP_PKEY_free(key);
		key = ca_new_ec_key();
		ca_event("%s: fault wrong-key", body_name(type));
	}
	if (fault(s, CA_FAULT_WRONG_SUBJECT)) {
		X509_NAME_free(subject);
		if ((subject = X509_NAME_new()) != NULL)
			X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
						   (const unsigned char *)"wrong subject", -1, -1,
						   0);
		ca_event("%s: fault wrong-subject", body_name(type));
	}
	if (fault(s, CA_FAULT_UNTRUSTED)) {
		if (!lazy_fake("p11enroll Untrusted CA", 1, &s->fake_ca, &s->fake_ca_key))
			goto done;
		issuer = s->fake_ca;
		issuer_key = s->fake_ca_key;
		ca_event("%s: fault untrusted", body_name(type));
	}
	if (fault(s, CA_FAULT_OVERSIZED_SERIAL)) {
		s->ca->oversized_serial = 1;
		ca_event("%s: fault oversized-serial (40 bytes)", body_name(type));
	}
	if (validity[1] != 0)
		ca_event("%s: validity requested until %lld", body_name(type),
			 (long long)validity[1]);
	s->ca->req_not_before = validity[0];
	s->ca->req_not_after = validity[1];
	if (key != NULL && subject != NULL)
		cert = ca_issue(s->ca, subject, key, exts, issuer, issuer_key);
	s->ca->oversized_serial = 0;
	s->ca->req_not_before = s->ca->req_not_after = 0;
	if (cert == NULL)
		goto done;
	if (!ca_record_issued(s->ca, cert) ||
	    (archived != NULL && !ca_archive_put(s->ca, X509_get0_serialNumber(cert), archived)))
		goto done;
	if (archived != NULL) {
		char *hex = ca_serial_hex(X509_get0_serialNumber(cert));

		ca_event("archive: kept the key of serial %s", hex != NULL ? hex : "?");
		OPENSSL_free(hex);
	}
	*chainOut = issuer != NULL ? certs_of(issuer, NULL) : certs_of(s->ca->sub, s->ca->root);
	if (type == CA_BODY_IR)
		*caPubs = certs_of(s->ca->root, NULL);
	if (*chainOut == NULL || (type == CA_BODY_IR && *caPubs == NULL))
		goto done;
	log_cert(type == CA_BODY_KUR ? "kur: issued" : "issued", cert);
	X509_free(s->issued);
	s->issued = cert;
	X509_up_ref(cert);
	*certOut = cert;
	cert = NULL;
	s->issued_now = 1;
	snprintf(s->outcome, sizeof(s->outcome), "accepted");
	si = OSSL_CMP_STATUSINFO_new(OSSL_CMP_PKISTATUS_accepted, 0, NULL);
done:
	(void)certReqId;
	X509_free(cert);
	X509_free(old);
	EVP_PKEY_free(key);
	EVP_PKEY_free(archived);
	X509_NAME_free(subject);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	return si;
}

static OSSL_CMP_PKISI *cb_rr(OSSL_CMP_SRV_CTX *srv_ctx, const OSSL_CMP_MSG *req,
			     const X509_NAME *issuer, const ASN1_INTEGER *serial)
{
	struct ca_srv *s = OSSL_CMP_SRV_CTX_get0_custom_ctx(srv_ctx);
	OSSL_CMP_PKISI *si;
	X509 *cert;
	char *hex;

	if ((si = fault_rejection(s)) != NULL)
		return si;
	if (issuer == NULL || serial == NULL)
		return rejection(s, OSSL_CMP_PKIFAILUREINFO_badCertId,
				 "rr needs issuer and serialNumber");
	if ((cert = ca_find_issued(s->ca, issuer, serial)) == NULL)
		return rejection(s, OSSL_CMP_PKIFAILUREINFO_badCertId,
				 "not a certificate of this CA");
	X509_free(cert);
	if (ca_is_revoked(s->ca, serial))
		return rejection(s, OSSL_CMP_PKIFAILUREINFO_certRevoked, "already revoked");
	if (!ca_revoke(s->ca, serial, s->ri.rr_reason))
		return NULL;
	hex = ca_serial_hex(serial);
	{
		/* how the rr was protected: PBM, or signed (by the revoked
		 * certificate itself, or by another) */
		const char *prot = s->ri.prot == CA_PROT_PBM ? "pbm"
				   : s->ri.prot != CA_PROT_SIG ? "none"
				   : s->ri.signer != NULL &&
					     ASN1_INTEGER_cmp(X509_get0_serialNumber(s->ri.signer),
							      serial) == 0
				       ? "own-key"
				       : "other-signer";

		ca_event("rr: revoked serial %s reason %d protection %s", hex != NULL ? hex : "?",
			 s->ri.rr_reason, prot);
	}
	OPENSSL_free(hex);
	snprintf(s->outcome, sizeof(s->outcome), "revoked");
	(void)req;
	return OSSL_CMP_STATUSINFO_new(s->opts->rr_status, 0, NULL);
}

static OSSL_CMP_ITAV *ca_certs_itav(struct ca_srv *s)
{
	STACK_OF(X509) *certs = certs_of(s->ca->root, s->ca->sub);
	ASN1_TYPE *value = NULL;

	ASN1_OBJECT *type = OBJ_dup(s->oid_ca_certs);
	OSSL_CMP_ITAV *itav = NULL;

	if (certs != NULL && (s->opts->faults & CA_FAULT_FOREIGN_CACERTS)) {
		if (lazy_fake("p11enroll Foreign CA", 1, &s->fake_ca, &s->fake_ca_key) &&
		    X509_add_cert(certs, s->fake_ca, X509_ADD_FLAG_UP_REF))
			ca_event("genm caCerts: fault foreign-cacerts");
	}
	if (certs != NULL && type != NULL &&
	    ASN1_TYPE_pack_sequence(ASN1_ITEM_rptr(TCMP_CACERTS), certs, &value) != NULL)
		itav = OSSL_CMP_ITAV_create(type, value);
	if (itav == NULL) {
		ASN1_OBJECT_free(type);
		ASN1_TYPE_free(value);
	}
	sk_X509_pop_free(certs, X509_free);
	return itav;
}

/* An ITAV of type oid with value (absent when NULL) encoded as it. */
static OSSL_CMP_ITAV *itav_of(const char *oid, const ASN1_ITEM *it, void *value)
{
	ASN1_OBJECT *type = OBJ_txt2obj(oid, 1);
	ASN1_TYPE *v = NULL;
	OSSL_CMP_ITAV *itav = NULL;

	if (type != NULL && (value == NULL || ASN1_TYPE_pack_sequence(it, value, &v) != NULL))
		itav = OSSL_CMP_ITAV_create(type, v);
	if (itav == NULL) {
		ASN1_OBJECT_free(type);
		ASN1_TYPE_free(v);
	}
	return itav;
}

/*
 * rootCaCert -> rootCaKeyUpdate (RFC 9480, 2.14): the update when --new-root
 * and the client's root (absent: it does not say) is ours; else no value.
 */
static OSSL_CMP_ITAV *root_update_itav(struct ca_srv *s, const OSSL_CMP_ITAV *in)
{
	ASN1_TYPE *v = OSSL_CMP_ITAV_get0_value(in);
	X509 *theirs = NULL;
	TCMP_ROOTCAKEYUPDATE upd;
	OSSL_CMP_ITAV *itav;
	int current = 1;

	if (v != NULL) {
		const unsigned char *p;

		if (v->type == V_ASN1_SEQUENCE) {
			p = v->value.sequence->data;
			theirs = d2i_X509(NULL, &p, v->value.sequence->length);
		}
		current = theirs != NULL && X509_cmp(theirs, s->ca->root) == 0;
		X509_free(theirs);
	}
	if (s->ca->newroot == NULL || !current) {
		ca_event("genm rootCaCert: %s, rootCaKeyUpdate without value",
			 s->ca->newroot == NULL ? "no new root" : "not our current root");
		return itav_of(OID_ROOT_CA_KEY_UPDATE, NULL, NULL);
	}
	upd.newWithNew = s->ca->newroot;
	upd.newWithOld = s->ca->new_with_old;
	upd.oldWithNew = s->ca->old_with_new;
	if (s->opts->faults & CA_FAULT_FORGED_ROOT_UPDATE) {
		/* the new root's name and key, certified by an unrelated key */
		X509 *forged;

		if (!lazy_fake("p11enroll Forger", 1, &s->fake_ca, &s->fake_ca_key) ||
		    (forged = ca_link_cert(s->ca->newroot, s->ca->root, s->fake_ca_key)) == NULL)
			return NULL;
		upd.newWithOld = forged;
		itav = itav_of(OID_ROOT_CA_KEY_UPDATE, ASN1_ITEM_rptr(TCMP_ROOTCAKEYUPDATE), &upd);
		X509_free(forged);
		ca_event("genm rootCaCert: fault forged-root-update");
		return itav;
	}
	if (s->opts->faults & (CA_FAULT_EXPIRED_NEW_ROOT | CA_FAULT_NEW_ROOT_NOT_CA)) {
		int expired = (s->opts->faults & CA_FAULT_EXPIRED_NEW_ROOT) != 0;
		X509 *bad = ca_bad_new_root(s->ca, expired), *link = NULL;

		if (bad == NULL || (link = ca_link_cert(bad, s->ca->root, s->ca->root_key)) == NULL) {
			X509_free(bad);
			return NULL;
		}
		upd.newWithNew = bad;
		upd.newWithOld = link;
		itav = itav_of(OID_ROOT_CA_KEY_UPDATE, ASN1_ITEM_rptr(TCMP_ROOTCAKEYUPDATE), &upd);
		X509_free(bad);
		X509_free(link);
		ca_event("genm rootCaCert: fault %s", expired ? "expired-new-root" : "new-root-not-ca");
		return itav;
	}
	ca_event("genm rootCaCert: sent newWithNew, newWithOld, oldWithNew");
	return itav_of(OID_ROOT_CA_KEY_UPDATE, ASN1_ITEM_rptr(TCMP_ROOTCAKEYUPDATE), &upd);
}

static OSSL_CMP_ITAV *template_itav(struct ca_srv *s)
{
	ASN1_OBJECT *type = OBJ_txt2obj(OID_CERT_REQ_TEMPLATE, 1);
	ASN1_TYPE *v = NULL;
	OSSL_CMP_ITAV *itav = NULL;

	if (type != NULL &&
	    (s->req_template == NULL ||
	     ((v = ASN1_TYPE_new()) != NULL &&
	      ASN1_TYPE_set1(v, s->req_template->type, s->req_template->value.ptr))))
		itav = OSSL_CMP_ITAV_create(type, v);
	if (itav == NULL) {
		ASN1_OBJECT_free(type);
		ASN1_TYPE_free(v);
	}
	ca_event("genm certReqTemplate: %s",
		 s->req_template != NULL ? "sent the template" : "no template, value absent");
	return itav;
}

static OSSL_CMP_ITAV *crls_itav(struct ca_srv *s)
{
	STACK_OF(X509_CRL) *crls;
	OSSL_CMP_ITAV *itav = NULL;
	int n;

	if ((crls = sk_X509_CRL_new_null()) != NULL && sk_X509_CRL_push(crls, s->ca->crl) > 0)
		itav = itav_of(OID_CRLS, ASN1_ITEM_rptr(TCMP_CRLS), crls);
	sk_X509_CRL_free(crls); /* the CRL stays the CA's */
	if (s->ca->crl == NULL)
		return NULL;
	n = sk_X509_REVOKED_num(X509_CRL_get_REVOKED(s->ca->crl));
	ca_event("genm crlStatusList: sent the CRL with %d entries", n < 0 ? 0 : n);
	return itav;
}

static int cb_genm(OSSL_CMP_SRV_CTX *srv_ctx, const OSSL_CMP_MSG *req,
		   const STACK_OF(OSSL_CMP_ITAV) *in, STACK_OF(OSSL_CMP_ITAV) **out)
{
	struct ca_srv *s = OSSL_CMP_SRV_CTX_get0_custom_ctx(srv_ctx);
	int i;

	if (fault_refuses(s)) {
		ERR_raise_data(ERR_LIB_CMP, CMP_R_ERROR_PROCESSING_MESSAGE, "test CA fault");
		return 0;
	}
	if ((*out = sk_OSSL_CMP_ITAV_new_null()) == NULL)
		return 0;
	for (i = 0; i < sk_OSSL_CMP_ITAV_num(in); i++) {
		ASN1_OBJECT *type = OSSL_CMP_ITAV_get0_type(sk_OSSL_CMP_ITAV_value(in, i));
		char oid[64];

		OSSL_CMP_ITAV *itav = NULL;

		OBJ_obj2txt(oid, sizeof(oid), type, 1);
		if (OBJ_cmp(type, s->oid_ca_certs) == 0) {
			itav = ca_certs_itav(s);
			ca_event("genm caCerts: sent root and issuing CA");
		} else if (OBJ_cmp(type, s->oid_root_cert) == 0) {
			itav = root_update_itav(s, sk_OSSL_CMP_ITAV_value(in, i));
		} else if (OBJ_cmp(type, s->oid_req_template) == 0) {
			itav = template_itav(s);
		} else if (OBJ_cmp(type, s->oid_crl_status) == 0) {
			itav = crls_itav(s);
		} else {
			ca_event("genm %s: not supported, left out of genp", oid);
			continue;
		}
		if (itav == NULL || !sk_OSSL_CMP_ITAV_push(*out, itav)) {
			OSSL_CMP_ITAV_free(itav);
			sk_OSSL_CMP_ITAV_pop_free(*out, OSSL_CMP_ITAV_free);
			*out = NULL;
			return 0;
		}
	}
	snprintf(s->outcome, sizeof(s->outcome), "%d of %d answered", sk_OSSL_CMP_ITAV_num(*out),
		 sk_OSSL_CMP_ITAV_num(in));
	(void)req;
	return 1;
}

static void cb_error(OSSL_CMP_SRV_CTX *srv_ctx, const OSSL_CMP_MSG *req,
		     const OSSL_CMP_PKISI *statusInfo, const ASN1_INTEGER *errorCode,
		     const OSSL_CMP_PKIFREETEXT *errDetails)
{
	char buf[OSSL_CMP_PKISI_BUFLEN];

	(void)srv_ctx;
	ca_event("error from client: %s",
		 statusInfo != NULL
			 ? OSSL_CMP_snprint_PKIStatusInfo(statusInfo, buf, sizeof(buf))
			 : "(no status)");
	(void)req;
	(void)errorCode;
	(void)errDetails;
}

static int cb_certConf(OSSL_CMP_SRV_CTX *srv_ctx, const OSSL_CMP_MSG *req, int certReqId,
		       const ASN1_OCTET_STRING *certHash, const OSSL_CMP_PKISI *si)
{
	struct ca_srv *s = OSSL_CMP_SRV_CTX_get0_custom_ctx(srv_ctx);
	ASN1_OCTET_STRING *hash;
	char buf[OSSL_CMP_PKISI_BUFLEN];
	int match;

	if (fault_refuses(s)) {
		ERR_raise_data(ERR_LIB_CMP, CMP_R_ERROR_PROCESSING_MESSAGE, "test CA fault");
		return 0;
	}
	if (s->issued == NULL) {
		ca_event("certConf rejected: no certificate waits for confirmation");
		ERR_raise(ERR_LIB_CMP, CMP_R_ERROR_UNEXPECTED_CERTCONF);
		return 0;
	}
	hash = X509_digest_sig(s->issued, NULL, NULL);
	match = hash != NULL && certHash != NULL && ASN1_OCTET_STRING_cmp(hash, certHash) == 0;
	ASN1_OCTET_STRING_free(hash);
	if (!match) {
		ca_event("certConf rejected: certHash does not match the issued certificate");
		ERR_raise(ERR_LIB_CMP, CMP_R_CERTHASH_UNMATCHED);
		return 0;
	}
	if (si != NULL && (OSSL_CMP_snprint_PKIStatusInfo(si, buf, sizeof(buf)) == NULL ||
			   strncmp(buf, "PKIStatus: accepted", 19) != 0)) {
		ca_event("certConf: the client rejected the certificate (%s)", buf);
		snprintf(s->outcome, sizeof(s->outcome), "client rejected the certificate");
	} else {
		log_cert("certConf accepted:", s->issued);
		snprintf(s->outcome, sizeof(s->outcome), "confirmed");
	}
	X509_free(s->issued);
	s->issued = NULL;
	(void)req;
	(void)certReqId;
	return 1;
}

static int cb_pollReq(OSSL_CMP_SRV_CTX *srv_ctx, const OSSL_CMP_MSG *req, int certReqId,
		      OSSL_CMP_MSG **certReq, int64_t *check_after)
{
	struct ca_srv *s = OSSL_CMP_SRV_CTX_get0_custom_ctx(srv_ctx);
	time_t now = time(NULL);

	*certReq = NULL;
	if (fault_refuses(s)) {
		ERR_raise_data(ERR_LIB_CMP, CMP_R_ERROR_PROCESSING_MESSAGE, "test CA fault");
		return 0;
	}
	if (s->poll_fault != 0 && s->held != NULL) {
		/* 2^31 s overflows a signed 32-bit int: the client must clamp or refuse it */
		*check_after = s->poll_fault == 1 ? (int64_t)1 << 31 : 1;
		snprintf(s->outcome, sizeof(s->outcome), "checkAfter %lld (fault %s)",
			 (long long)*check_after,
			 s->poll_fault == 1 ? "check-after-huge" : "endless-poll");
		ca_event("pollReq: fault, checkAfter %lld", (long long)*check_after);
		return 1;
	}
	if (s->held == NULL) {
		ca_event("pollReq without a pending request");
		ERR_raise(ERR_LIB_CMP, CMP_R_UNEXPECTED_PKIBODY);
		return 0;
	}
	/* --deliver-when: the test says when, not the clock */
	if (now < s->deliver_at &&
	    !(s->opts->deliver_when != NULL && access(s->opts->deliver_when, F_OK) == 0)) {
		*check_after = s->deliver_at - now;
		snprintf(s->outcome, sizeof(s->outcome), "checkAfter %lld",
			 (long long)*check_after);
		ca_event("pollReq: not ready, checkAfter %lld", (long long)*check_after);
		return 1;
	}
	ca_event("pollReq: delivering");
	s->ccr = s->held_ccr;
	*certReq = s->held; /* OpenSSL processes and frees it */
	s->held = NULL;
	*check_after = 0;
	s->delivering = 1;
	(void)req;
	(void)certReqId;
	return 1;
}

/* OpenSSL's own CMP log lines go to the event log (never to stdout). */
static int log_cb(const char *func, const char *file, int line, OSSL_CMP_severity level,
		  const char *msg)
{
	(void)func;
	(void)file;
	(void)line;
	if (level <= OSSL_CMP_LOG_WARNING)
		ca_event("openssl: %s", msg);
	return 1;
}

static int make_junk(struct ca_srv *s, int n);

struct ca_srv *ca_srv_new(const struct ca_opts *opts, struct ca_ca *ca)
{
	struct ca_srv *s = OPENSSL_zalloc(sizeof(*s));
	STACK_OF(X509) *untrusted = NULL;
	X509_STORE *store = NULL;

	if (s == NULL)
		return NULL;
	s->opts = opts;
	s->ca = ca;
	s->ri.rr_reason = -1;
	if (opts->template_spec != NULL &&
	    (s->req_template = ca_template_value(opts->template_spec)) == NULL) {
		fprintf(stderr, "p11enroll-testca: bad --template '%s'\n", opts->template_spec);
		goto fail;
	}
	if ((s->oid_ca_certs = OBJ_txt2obj(OID_CA_CERTS, 1)) == NULL ||
	    (s->oid_root_update = OBJ_txt2obj(OID_ROOT_CA_KEY_UPDATE, 1)) == NULL ||
	    (s->oid_req_template = OBJ_txt2obj(OID_CERT_REQ_TEMPLATE, 1)) == NULL ||
	    (s->oid_root_cert = OBJ_txt2obj(OID_ROOT_CA_CERT, 1)) == NULL ||
	    (s->oid_crl_status = OBJ_txt2obj(OID_CRL_STATUS_LIST, 1)) == NULL ||
	    (s->oid_crls = OBJ_txt2obj(OID_CRLS, 1)) == NULL ||
	    (s->srv_ctx = OSSL_CMP_SRV_CTX_new(NULL, NULL)) == NULL ||
	    !OSSL_CMP_SRV_CTX_init(s->srv_ctx, s, cb_cert_request, cb_rr, cb_genm, cb_error,
				   cb_certConf, cb_pollReq) ||
	    !OSSL_CMP_SRV_CTX_set_accept_unprotected(s->srv_ctx, opts->accept_unprotected) ||
	    !OSSL_CMP_SRV_CTX_set_grant_implicit_confirm(s->srv_ctx, opts->implicit_confirm))
		goto fail;
	s->ctx = OSSL_CMP_SRV_CTX_get0_cmp_ctx(s->srv_ctx);
	if ((store = X509_STORE_new()) == NULL || !X509_STORE_add_cert(store, ca->root) ||
	    (opts->ccr_trusted != NULL && !ca_ccr_trust(store, opts->ccr_trusted)) ||
	    (untrusted = certs_of(ca->sub, NULL)) == NULL ||
	    !OSSL_CMP_CTX_set_log_cb(s->ctx, log_cb) ||
	    !OSSL_CMP_CTX_set0_trustedStore(s->ctx, store))
		goto fail;
	store = NULL;
	if (!OSSL_CMP_CTX_set1_untrusted(s->ctx, untrusted) ||
	    !OSSL_CMP_CTX_set1_referenceValue(s->ctx, opts->ref, (int)opts->ref_len) ||
	    /* the sender name of PBM-protected responses */
	    !OSSL_CMP_CTX_set1_subjectName(s->ctx, X509_get_subject_name(ca->sub)) ||
	    !OSSL_CMP_CTX_set_option(s->ctx, OSSL_CMP_OPT_MAC_ALGNID, NID_hmacWithSHA256))
		goto fail;
	sk_X509_pop_free(untrusted, X509_free);
	if ((opts->faults & CA_FAULT_MANY_EXTRACERTS) && !make_junk(s, opts->many_extracerts)) {
		ca_log_openssl_errors("making the junk certificates");
		ca_srv_free(s);
		return NULL;
	}
	return s;
fail:
	ca_log_openssl_errors("setting up the CMP server");
	X509_STORE_free(store);
	sk_X509_pop_free(untrusted, X509_free);
	ca_srv_free(s);
	return NULL;
}

void ca_srv_free(struct ca_srv *s)
{
	if (s == NULL)
		return;
	OSSL_CMP_SRV_CTX_free(s->srv_ctx);
	ca_ckg_free(s->ckg);
	ASN1_OBJECT_free(s->oid_ca_certs);
	ASN1_OBJECT_free(s->oid_root_update);
	ASN1_OBJECT_free(s->oid_req_template);
	ASN1_OBJECT_free(s->oid_root_cert);
	ASN1_OBJECT_free(s->oid_crl_status);
	ASN1_OBJECT_free(s->oid_crls);
	ASN1_TYPE_free(s->req_template);
	sk_X509_pop_free(s->junk, X509_free);
	X509_free(s->fake_ca);
	X509_free(s->fake_srv);
	EVP_PKEY_free(s->fake_ca_key);
	EVP_PKEY_free(s->fake_srv_key);
	X509_free(s->issued);
	OSSL_CMP_MSG_free(s->held);
	ca_reqinfo_clear(&s->ri);
	OPENSSL_free(s);
}

/*
 * Credentials back to normal before each request (faults change them).
 * The secret is there only for a PBM-protected request: it checks the
 * request and protects the answer; anything else is answered signed.
 */
static int reset_ctx(struct ca_srv *s, int parsed)
{
	int pbm = (s->ri.prot == CA_PROT_PBM || !parsed) && s->opts->secret != NULL;
	X509 *cert = s->ca->srv;
	EVP_PKEY *key = s->ca->srv_key;

	if (s->opts->signer == CA_SIGNER_CA) {
		cert = s->ca->sub;
		key = s->ca->sub_key;
	} else if (s->opts->signer == CA_SIGNER_DEVICE) {
		cert = s->ca->device;
		key = s->ca->device_key;
	}
	return OSSL_CMP_CTX_set1_secretValue(s->ctx, pbm ? s->opts->secret : NULL,
					     (int)s->opts->secret_len) &&
	       OSSL_CMP_CTX_set1_cert(s->ctx, cert) && OSSL_CMP_CTX_set1_pkey(s->ctx, key) &&
	       OSSL_CMP_SRV_CTX_set_send_unprotected_errors(s->srv_ctx, 0) &&
	       OSSL_CMP_CTX_set_option(s->ctx, OSSL_CMP_OPT_UNPROTECTED_SEND, 0);
}

static void set_text(struct ca_reply *r, int status, const char *text)
{
	r->status = status;
	r->ctype = "text/plain";
	r->body = (unsigned char *)OPENSSL_strdup(text);
	r->len = r->body != NULL ? strlen(text) : 0;
}

/* HTTP-level faults that replace the CMP answer.  Returns 1 when one applied. */
static int http_fault(struct ca_srv *s, struct ca_reply *r)
{
	const char *name = NULL;

	if (fault(s, CA_FAULT_DROP)) {
		r->drop = 1;
		name = "drop";
	} else if (fault(s, CA_FAULT_HTTP500)) {
		set_text(r, 500, "test CA fault: http500\n");
		name = "http500";
	} else if (fault(s, CA_FAULT_REDIRECT)) {
		set_text(r, 302, "test CA fault: redirect\n");
		r->location = "http://127.0.0.1:1/elsewhere";
		name = "redirect";
	} else if (fault(s, CA_FAULT_GARBAGE) || fault(s, CA_FAULT_HUGE)) {
		int huge = fault(s, CA_FAULT_HUGE);
		size_t n = huge ? 2 * 1024 * 1024 + 4096 : 64;

		if ((r->body = OPENSSL_malloc(n)) == NULL || RAND_bytes(r->body, (int)n) != 1)
			return -1;
		/* 0x05 (NULL) with a long length: never the start of a PKIMessage */
		r->body[0] = 0x05;
		r->body[1] = 0x84;
		r->len = n;
		r->status = 200;
		r->ctype = "application/pkixcmp";
		name = huge ? "huge" : "garbage";
	}
	if (name == NULL)
		return 0;
	r->close = 1;
	ca_log("%s -> fault %s", body_name(s->req_type), name);
	return 1;
}

/*
 * Changes to the finished response: signature instead of PBM (--protection
 * sig), and the faults bad-protection, wrong-tid, wrong-nonce.  Done here,
 * not in the callbacks, because OpenSSL 3.0 restores its own pointer to the
 * secret after the callbacks: replacing the secret there would free it
 * under OpenSSL's feet.  OSSL_CMP_MSG_update_transactionID re-protects.
 */
/* A directoryName O=p11enroll test, CN=cn. */
static X509_NAME *sender_name(const char *cn)
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

/*
 * The protected parts OpenSSL 3.0 has no setter for: sender, certReqId,
 * caPubs of a kup.  Edited in the DER (reqinfo.c); protected again later.
 * Returns 1 when *rsp was edited.
 */
static int edit_protected(struct ca_srv *s, OSSL_CMP_MSG **rsp, int rsp_type)
{
	struct ca_edit e;
	X509_NAME *sender = NULL;
	OSSL_CMP_MSG *edited;
	int certrep = rsp_type == CA_BODY_IP || rsp_type == CA_BODY_CP || rsp_type == CA_BODY_KUP;

	memset(&e, 0, sizeof(e));
	if (fault(s, CA_FAULT_SENDER_FORMAT))
		sender = sender_name("%n%s%x%n%s%p%%");
	else if (fault(s, CA_FAULT_WRONG_SENDER))
		sender = sender_name("p11enroll Impostor");
	e.sender = sender;
	if (fault(s, CA_FAULT_WRONG_CERTREQID) && (certrep || rsp_type == CA_BODY_POLLREP))
		e.certreqid_delta = 5;
	if (fault(s, CA_FAULT_WRONG_BODY) && certrep)
		e.swap_body = 1;
	if (s->ccr && rsp_type == CA_BODY_CP)
		e.retag = CA_BODY_CCP + 1;
	if (fault(s, CA_FAULT_CAPUBS_IN_KUP) && rsp_type == CA_BODY_KUP &&
	    lazy_fake("p11enroll Injected Root", 1, &s->fake_ca, &s->fake_ca_key))
		e.capubs = certs_of(s->fake_ca, s->ca->root);
	if (e.sender == NULL && e.certreqid_delta == 0 && e.capubs == NULL && !e.swap_body &&
	    e.retag == 0)
		return 0;
	if ((edited = ca_msg_edit(*rsp, &e)) != NULL) {
		OSSL_CMP_MSG_free(*rsp);
		*rsp = edited;
		if (e.sender != NULL)
			ca_event("%s: fault %s", body_name(s->req_type),
				 fault(s, CA_FAULT_SENDER_FORMAT) ? "sender-format"
								  : "wrong-sender");
		if (e.certreqid_delta != 0)
			ca_event("%s: fault wrong-certreqid (+%d)", body_name(s->req_type),
				 e.certreqid_delta);
		if (e.capubs != NULL)
			ca_event("%s: fault capubs-in-kup", body_name(s->req_type));
		if (e.retag != 0)
			ca_event("ccr: the cp goes as a ccp");
		if (e.swap_body)
			ca_event("%s: fault wrong-body (%s sent as %s)", body_name(s->req_type),
				 body_name(rsp_type), rsp_type == CA_BODY_IP ? "cp" : "ip");
	} else {
		ca_log_openssl_errors("editing the response");
	}
	X509_NAME_free(sender);
	sk_X509_pop_free(e.capubs, X509_free);
	return edited != NULL ? 1 : -1;
}

/*
 * OpenSSL 3.0's server refuses a ccr (CMP_R_UNEXPECTED_PKIBODY in
 * OSSL_CMP_SRV_process_request).  Its protection is verified here, and the
 * same CertReqMessages go to OpenSSL as an unprotected cr, accepted for
 * this one request: OpenSSL checks the POP and cb_cert_request issues what
 * was asked (basicConstraints and keyUsage as requested); the cp goes back
 * as a ccp (edit_protected), protected again.  A ccr whose protection does
 * not verify goes to OpenSSL as it is and gets its error message.  Returns
 * 0 when the request cannot be rewritten.
 */
static int ccr_as_cr(struct ca_srv *s, OSSL_CMP_MSG **req)
{
	struct ca_edit e;
	OSSL_CMP_MSG *cr;

	/* A new transaction (as in ckg.c): 3.0 would first try the signer it
	 * validated in the last message, which may be freed by now. */
	if (!OSSL_CMP_CTX_reinit(s->ctx) || !OSSL_CMP_validate_msg(s->ctx, *req)) {
		ca_event("ccr: protection does not verify");
		ca_log_openssl_errors("verifying the ccr");
		return 1;
	}
	memset(&e, 0, sizeof(e));
	e.retag = CA_BODY_CR + 1;
	e.unprotect = 1;
	if ((cr = ca_msg_edit(*req, &e)) == NULL) {
		ca_log_openssl_errors("serving the ccr as a cr");
		return 0;
	}
	OSSL_CMP_MSG_free(*req);
	*req = cr;
	s->ccr = 1;
	ca_event("ccr: protection verified, served as a cr");
	return 1;
}

/* Returns 0 when a fault could not be applied: the request then fails (HTTP 500). */
static int rework_response(struct ca_srv *s, OSSL_CMP_MSG **prsp, int rsp_type)
{
	OSSL_CMP_PKIHEADER *hdr;
	/* an unprotected-error answer stays unprotected */
	int pbm_rsp = s->ri.prot == CA_PROT_PBM && s->opts->secret != NULL &&
		      !fault(s, CA_FAULT_UNPROTECTED_ERROR);
	int closed, spoilt = 0, edited;
	unsigned char rnd[32];
	ASN1_OCTET_STRING *tid;

	if ((edited = edit_protected(s, prsp, rsp_type)) < 0)
		return 0;
	hdr = OSSL_CMP_MSG_get0_header(*prsp);
	if (!edited && s->ckg == NULL && !(pbm_rsp && s->opts->protection_sig) &&
	    !fault(s, CA_FAULT_BAD_PROTECTION | CA_FAULT_WRONG_TID | CA_FAULT_WRONG_NONCE |
			  CA_FAULT_UNPROTECTED))
		return 1;
	RAND_bytes(rnd, sizeof(rnd));
	if (pbm_rsp && s->opts->protection_sig) {
		OSSL_CMP_CTX_set1_secretValue(s->ctx, NULL, 0);
		pbm_rsp = 0;
	}
	if (fault(s, CA_FAULT_BAD_PROTECTION)) {
		if (pbm_rsp) {
			OSSL_CMP_CTX_set1_secretValue(s->ctx, rnd, sizeof(rnd));
		} else if (lazy_fake("p11enroll Test CMP Server", 0, &s->fake_srv,
				     &s->fake_srv_key)) {
			/* the real server certificate's name, with a key nobody trusts */
			OSSL_CMP_CTX_set1_cert(s->ctx, s->fake_srv);
			OSSL_CMP_CTX_set1_pkey(s->ctx, s->fake_srv_key);
		}
		ca_event("%s: fault bad-protection", body_name(s->req_type));
		spoilt = 1;
	}
	if (fault(s, CA_FAULT_UNPROTECTED)) {
		OSSL_CMP_CTX_set_option(s->ctx, OSSL_CMP_OPT_UNPROTECTED_SEND, 1);
		ca_event("%s: fault unprotected", body_name(s->req_type));
		spoilt = 1;
	}
	if (fault(s, CA_FAULT_WRONG_NONCE)) {
		ASN1_OCTET_STRING *nonce = OSSL_CMP_HDR_get0_recipNonce(hdr);

		if (nonce != NULL)
			ASN1_OCTET_STRING_set(nonce, rnd + 16, 16);
		ca_event("%s: fault wrong-nonce", body_name(s->req_type));
		spoilt = 1;
	}
	/* the response keeps its transactionID unless the fault says otherwise */
	OSSL_CMP_CTX_set1_transactionID(s->ctx, OSSL_CMP_HDR_get0_transactionID(hdr));
	if (fault(s, CA_FAULT_WRONG_TID)) {
		if ((tid = ASN1_OCTET_STRING_new()) != NULL && ASN1_OCTET_STRING_set(tid, rnd, 16))
			OSSL_CMP_CTX_set1_transactionID(s->ctx, tid);
		ASN1_OCTET_STRING_free(tid);
		ca_event("%s: fault wrong-tid", body_name(s->req_type));
		spoilt = 1;
	}
	if (!OSSL_CMP_MSG_update_transactionID(s->ctx, *prsp))
		ca_log_openssl_errors("re-protecting the response");
	/* as OpenSSL does: these responses end the transaction */
	closed = rsp_type == CA_BODY_RP || rsp_type == CA_BODY_PKICONF ||
		 rsp_type == CA_BODY_GENP || rsp_type == CA_BODY_ERROR ||
		 ((rsp_type == CA_BODY_IP || rsp_type == CA_BODY_CP || rsp_type == CA_BODY_KUP) &&
		  OSSL_CMP_CTX_get_option(s->ctx, OSSL_CMP_OPT_IMPLICIT_CONFIRM) == 1);
	if (closed || spoilt)
		OSSL_CMP_CTX_set1_transactionID(s->ctx, NULL);
	return 1;
}

/*
 * The N junk self-signed certificates of many-extracerts=N, made at start-up
 * so that making them never counts against a client's timeout.
 */
static int make_junk(struct ca_srv *s, int n)
{
	EVP_PKEY *key = ca_new_ec_key();
	int i;

	if (key == NULL || (s->junk = sk_X509_new_reserve(NULL, n)) == NULL)
		goto fail;
	for (i = 0; i < n; i++) {
		char cn[48];
		X509 *c;

		snprintf(cn, sizeof(cn), "p11enroll junk %d", i + 1);
		if ((c = ca_self_signed(cn, key, 1)) == NULL || !sk_X509_push(s->junk, c)) {
			X509_free(c);
			goto fail;
		}
	}
	EVP_PKEY_free(key);
	return 1;
fail:
	EVP_PKEY_free(key);
	return 0;
}

/* many-extracerts=N: the junk after the real extraCerts (not protected anyway). */
static int many_extracerts(struct ca_srv *s, OSSL_CMP_MSG **rsp)
{
	struct ca_edit e;
	OSSL_CMP_MSG *edited;

	memset(&e, 0, sizeof(e));
	e.extra = s->junk;
	if ((edited = ca_msg_edit(*rsp, &e)) == NULL) {
		ca_log_openssl_errors("adding junk extraCerts");
		return 0;
	}
	OSSL_CMP_MSG_free(*rsp);
	*rsp = edited;
	ca_event("%s: fault many-extracerts=%d", body_name(s->req_type), s->opts->many_extracerts);
	return 1;
}

static char *dir_file(const struct ca_srv *s, const char *name)
{
	size_t n = strlen(s->ca->dir) + strlen(name) + 2;
	char *p = OPENSSL_malloc(n);

	if (p != NULL)
		snprintf(p, n, "%s/%s", s->ca->dir, name);
	return p;
}

/* The last certificate response, as sent, for --fault replay (also after a restart). */
static void save_response(struct ca_srv *s, const unsigned char *der, size_t len)
{
	char *path = dir_file(s, LAST_RESPONSE);
	FILE *f = path != NULL ? fopen(path, "wb") : NULL;

	if (f != NULL) {
		if (fwrite(der, 1, len, f) != len)
			ca_event("cannot write %s", path);
		fclose(f);
	}
	OPENSSL_free(path);
}

/* Fills reply with the saved response; 0 when there is none yet. */
static int replay(struct ca_srv *s, struct ca_reply *r)
{
	char *path = dir_file(s, LAST_RESPONSE);
	FILE *f = path != NULL ? fopen(path, "rb") : NULL;
	unsigned char *buf = NULL;
	long n = -1;

	if (f != NULL && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && n < 16 * 1024 * 1024 &&
	    fseek(f, 0, SEEK_SET) == 0 && (buf = OPENSSL_malloc((size_t)n)) != NULL &&
	    fread(buf, 1, (size_t)n, f) == (size_t)n) {
		r->status = 200;
		r->ctype = "application/pkixcmp";
		r->body = buf;
		r->len = (size_t)n;
		buf = NULL;
	} else {
		ca_event("%s: fault replay: no saved response in %s, answering normally",
			 body_name(s->req_type), path != NULL ? path : "?");
		n = 0;
	}
	if (f != NULL)
		fclose(f);
	OPENSSL_free(buf);
	OPENSSL_free(path);
	return n > 0;
}

static void first_error(char *buf, size_t len)
{
	unsigned long e = ERR_peek_error();
	const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;

	if (r != NULL)
		snprintf(buf, len, "%s", r);
	else if (e != 0)
		snprintf(buf, len, "error %lu", e);
	else
		buf[0] = '\0';
}

int ca_srv_handle(void *arg, const char *path, const unsigned char *body, size_t len,
		  struct ca_reply *reply)
{
	struct ca_srv *s = arg;
	const unsigned char *p = body;
	OSSL_CMP_MSG *req = NULL, *rsp = NULL;
	unsigned char *der = NULL;
	int dlen, rsp_type, parsed, ret = -1, hang = 0, krr;
	char err[128];

	ERR_clear_error();
	s->outcome[0] = '\0';
	s->cert_cb = 0;
	s->issued_now = 0;
	ca_reqinfo_clear(&s->ri);
	if (len > 0x7fffffff || (req = d2i_OSSL_CMP_MSG(NULL, &p, (long)len)) == NULL ||
	    p != body + len) {
		ca_log("POST %s: not a CMP message (%zu bytes) -> HTTP 400", path, len);
		set_text(reply, 400, "not a DER-encoded PKIMessage\n");
		ret = 0;
		goto done;
	}
	s->req_type = OSSL_CMP_MSG_get_bodytype(req);
	parsed = ca_reqinfo_get(body, len, &s->ri);
	if (parsed)
		ca_log("%s header: sender %s, recipient %s, profile %s, implicit %s, pbm %s",
		       body_name(s->req_type), s->ri.sender, s->ri.recipient, s->ri.profile,
		       s->ri.implicit ? "yes" : "no", s->ri.pbm);
	/* --hang-on: processed like any other request, only the answer stays here */
	hang = s->opts->hang_on != NULL && strcmp(s->opts->hang_on, body_name(s->req_type)) == 0 &&
	       (s->opts->hang_count <= 0 || s->hangs_used < s->opts->hang_count);
	if (hang)
		s->hangs_used++;
	s->faulty = s->opts->faults != 0 &&
		    (s->opts->fault_on != NULL ? strcmp(s->opts->fault_on, body_name(s->req_type)) == 0
					       : s->opts->fault_all || is_cert_request(s->req_type));
	/* --fault-when: the test says when, not a count of earlier requests */
	if (s->faulty && s->opts->fault_when != NULL && access(s->opts->fault_when, F_OK) != 0)
		s->faulty = 0;
	if (s->faulty && s->eligible_seen++ < s->opts->fault_skip)
		s->faulty = 0;
	s->faulty = s->faulty &&
		    (s->opts->fault_count <= 0 || s->faults_used < s->opts->fault_count);
	if (s->faulty)
		s->faults_used++;
	if (s->ri.prot == CA_PROT_PBM && s->ri.has_kid &&
	    ((size_t)s->ri.kid_len != s->opts->ref_len ||
	     memcmp(s->ri.kid, s->opts->ref, s->opts->ref_len) != 0))
		ca_event("%s: senderKID differs from --ref", body_name(s->req_type));

	if ((ret = http_fault(s, reply)) != 0) {
		ret = ret < 0 ? -1 : 0;
		goto done;
	}
	if (fault(s, CA_FAULT_REPLAY) && replay(s, reply)) {
		ca_log("POST %s %s -> fault replay (%zu bytes of an earlier response)", path,
		       body_name(s->req_type), reply->len);
		ret = 0;
		goto done;
	}
	if (!reset_ctx(s, parsed))
		goto done;
	s->ccr = 0;
	if (s->req_type == CA_BODY_CCR && !ccr_as_cr(s, &req))
		goto done;
	ca_ckg_free(s->ckg);
	s->ckg = NULL;
	if ((s->req_type == CA_BODY_IR || s->req_type == CA_BODY_CR || s->req_type == CA_BODY_KUR) &&
	    ca_ckg_request(s->ctx, s->opts->ckg_fault, &req, &s->ckg) < 0)
		goto done;
	if (s->ccr || s->ckg != NULL)
		OSSL_CMP_SRV_CTX_set_accept_unprotected(s->srv_ctx, 1);
	/* krr.c: OpenSSL's answer to a krr whose protection verifies is made a krp */
	krr = s->req_type == CA_BODY_KRR && OSSL_CMP_CTX_reinit(s->ctx) &&
	      OSSL_CMP_validate_msg(s->ctx, req);
	rsp = OSSL_CMP_SRV_process_request(s->srv_ctx, req);
	if (s->ccr || s->ckg != NULL)
		OSSL_CMP_SRV_CTX_set_accept_unprotected(s->srv_ctx, s->opts->accept_unprotected);
	if (krr && rsp != NULL && !ca_krr_answer(s->ca, s->ctx, body, len, &rsp, s->opts->krr_fault,
						s->opts->krr_enveloped))
		goto done;
	if (rsp == NULL) {
		first_error(err, sizeof(err));
		ca_log("POST %s %s -> no response possible (%s)", path, body_name(s->req_type),
		       err);
		ca_log_openssl_errors("processing the request");
		goto done;
	}
	rsp_type = OSSL_CMP_MSG_get_bodytype(rsp);
	if (is_cert_request(s->req_type) && !s->cert_cb &&
	    rsp_type == OSSL_CMP_MSG_get_bodytype(req) + 1) {
		/* OpenSSL answered without asking us: the POP did not verify */
		first_error(err, sizeof(err));
		ca_event("%s: rejected badPOP: POP verification failed (%s)",
			 body_name(s->req_type), err);
		snprintf(s->outcome, sizeof(s->outcome), "rejected badPOP");
	} else if (rsp_type == CA_BODY_ERROR) {
		first_error(err, sizeof(err));
		ca_event("%s: answered with an error message (%s)", body_name(s->req_type), err);
		snprintf(s->outcome, sizeof(s->outcome), "%s", err);
	}
	if (s->issued_now && OSSL_CMP_CTX_get_option(s->ctx, OSSL_CMP_OPT_IMPLICIT_CONFIRM) == 1) {
		ca_event("%s: implicitConfirm granted", body_name(s->req_type));
		X509_free(s->issued);
		s->issued = NULL;
	}
	/* unprotected-error answering a pollReq plays someone on the path: the
	 * CA's own transaction goes on (OpenSSL closed it with the error). */
	if (fault(s, CA_FAULT_UNPROTECTED_ERROR) && s->req_type == CA_BODY_POLLREQ &&
	    rsp_type == CA_BODY_ERROR)
		OSSL_CMP_CTX_set1_transactionID(s->ctx,
						OSSL_CMP_HDR_get0_transactionID(
						    OSSL_CMP_MSG_get0_header(req)));
	if (s->ckg != NULL && s->issued_now &&
	    (rsp_type == CA_BODY_IP || rsp_type == CA_BODY_CP || rsp_type == CA_BODY_KUP) &&
	    !ca_ckg_response(s->ckg, s->ca, s->issued, s->opts->ckg_fault,
			     s->opts->ckg_enveloped, &rsp))
		goto done;
	if (!rework_response(s, &rsp, rsp_type) ||
	    (fault(s, CA_FAULT_MANY_EXTRACERTS) && !many_extracerts(s, &rsp))) {
		ca_log("POST %s %s -> HTTP 500: the fault could not be applied", path,
		       body_name(s->req_type));
		goto done;
	}

	if ((dlen = i2d_OSSL_CMP_MSG(rsp, &der)) <= 0)
		goto done;
	/* bad-protection: a PBM with another secret, as rework_response made it */
	if (!ca_ckg_finish(s->ckg, s->ctx,
			   fault(s, CA_FAULT_BAD_PROTECTION) ? (const unsigned char *)"not the secret"
							     : s->opts->secret,
			   fault(s, CA_FAULT_BAD_PROTECTION) ? 14 : s->opts->secret_len, &der,
			   &dlen) ||
	    !ca_krr_finish(s->ctx,
			   fault(s, CA_FAULT_BAD_PROTECTION) ? (const unsigned char *)"not the secret"
							     : s->opts->secret,
			   fault(s, CA_FAULT_BAD_PROTECTION) ? 14 : s->opts->secret_len, &der,
			   &dlen)) {
		OPENSSL_free(der);
		goto done;
	}
	if (is_cert_request(s->req_type) && !s->faulty &&
	    (rsp_type == CA_BODY_IP || rsp_type == CA_BODY_CP || rsp_type == CA_BODY_KUP))
		save_response(s, der, (size_t)dlen);
	reply->status = 200;
	reply->ctype = "application/pkixcmp";
	reply->body = der;
	reply->len = (size_t)dlen;
	if (fault(s, CA_FAULT_TRUNCATED)) {
		reply->len = (size_t)dlen / 2;
		ca_event("%s: fault truncated", body_name(s->req_type));
	}
	if (fault(s, CA_FAULT_CONTENT_TYPE)) {
		reply->ctype = "text/html";
		ca_event("%s: fault content-type", body_name(s->req_type));
	}
	if (fault(s, CA_FAULT_SLOW)) {
		reply->delay = s->opts->slow_seconds;
		ca_event("%s: fault slow=%d", body_name(s->req_type), s->opts->slow_seconds);
	}
	ca_log("POST %s %s -> %s%s%s%s", path, body_name(s->req_type),
	       s->ccr && rsp_type == CA_BODY_CP ? "ccp" : body_name(rsp_type),
	       s->outcome[0] != '\0' ? " " : "", s->outcome, hang ? " (held back: --hang-on)" : "");
	ret = 0;
done:
	if (hang) {
		reply->hang = 1;
		ca_event("hang: %s received, not answering", body_name(s->req_type));
	}
	if (s->delivering) /* the held request failed its second POP check */
		s->delivering = 0;
	ERR_clear_error();
	OSSL_CMP_MSG_free(req);
	OSSL_CMP_MSG_free(rsp);
	return ret;
}
