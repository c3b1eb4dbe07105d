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

#include <openssl/asn1t.h>
#include <openssl/cmperr.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "tests/ca/testca.h"

#define OID_CA_CERTS "1.3.6.1.5.5.7.4.17" /* id-it-caCerts, RFC 9483 */

struct ca_srv {
	const struct ca_opts *opts;
	struct ca_ca *ca;
	OSSL_CMP_SRV_CTX *srv_ctx;
	OSSL_CMP_CTX *ctx; /* borrowed from srv_ctx */
	ASN1_OBJECT *oid_ca_certs;
	X509 *fake_ca, *fake_srv; /* for the untrusted and bad-protection faults */
	EVP_PKEY *fake_ca_key, *fake_srv_key;
	long faults_used;

	/* the transaction */
	X509 *issued;            /* waiting for certConf */
	OSSL_CMP_MSG *held;      /* cert request held back while polling */
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

/* SEQUENCE OF Certificate, the value of id-it-caCerts. */
typedef STACK_OF(X509) CA_CERTSEQ;
/* clang-format off */
ASN1_ITEM_TEMPLATE(CA_CERTSEQ) = ASN1_EX_TEMPLATE_TYPE(ASN1_TFLG_SEQUENCE_OF, 0, CaCerts, X509)
static_ASN1_ITEM_TEMPLATE_END(CA_CERTSEQ)
/* clang-format on */

/* clang-format off */
static const char *const body_names[] = {
	"ir", "ip", "cr", "cp", "p10cr", "popdecc", "popdecr", "kur", "kup", "krr",
	"krp", "rr", "rp", "ccr", "ccp", "ckuann", "cann", "rann", "crlann", "pkiconf",
	"nested", "genm", "genp", "error", "certConf", "pollReq", "pollRep",
};
/* clang-format on */

static const char *body_name(int type)
{
	if (type >= 0 && type < (int)(sizeof(body_names) / sizeof(body_names[0])))
		return body_names[type];
	return "?";
}

/* clang-format off */
static const char *const failinfo_names[] = {
	"badAlg", "badMessageCheck", "badRequest", "badTime", "badCertId", "badDataFormat",
	"wrongAuthority", "incorrectData", "missingTimeStamp", "badPOP", "certRevoked",
	"certConfirmed", "wrongIntegrity", "badRecipientNonce", "timeNotAvailable",
	"unacceptedPolicy", "unacceptedExtension", "addInfoNotAvailable", "badSenderNonce",
	"badCertTemplate", "signerNotTrusted", "transactionIdInUse", "unsupportedVersion",
	"notAuthorized", "systemUnavail", "systemFailure", "duplicateCertReq",
};
/* clang-format on */

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
	return type == CA_BODY_IR || type == CA_BODY_CR ||
	       type == CA_BODY_P10CR || type == CA_BODY_KUR;
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

/* A rejection asked for by --fault reject=NAME or unprotected-error, or NULL. */
static OSSL_CMP_PKISI *fault_rejection(struct ca_srv *s)
{
	char text[96];

	if (fault(s, CA_FAULT_REJECT)) {
		snprintf(text, sizeof(text), "test CA fault: reject=%s",
			 failinfo_names[s->opts->reject_bit]);
		return rejection(s, s->opts->reject_bit, text);
	}
	if (fault(s, CA_FAULT_UNPROTECTED_ERROR)) {
		OSSL_CMP_SRV_CTX_set_send_unprotected_errors(s->srv_ctx, 1);
		return rejection(s, OSSL_CMP_PKIFAILUREINFO_badRequest,
				 "test CA fault: unprotected-error");
	}
	return NULL;
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
		     X509_NAME **subject, STACK_OF(X509_EXTENSION) **exts)
{
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
	return ca_template_fields(OSSL_CRMF_MSG_get0_tmpl(crm), key, subject, exts);
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

	s->cert_cb = 1;
	if (!s->delivering)
		ca_event("%s: POP verified (%s)", body_name(type),
			 p10cr != NULL ? "CSR signature" : "CRMF signature");
	if ((si = fault_rejection(s)) != NULL)
		return si;
	if (s->opts->poll_seconds > 0 && !s->delivering) {
		OSSL_CMP_MSG_free(s->held);
		if ((s->held = OSSL_CMP_MSG_dup(req)) == NULL)
			return NULL;
		s->deliver_at = time(NULL) + s->opts->poll_seconds;
		snprintf(s->outcome, sizeof(s->outcome), "waiting");
		ca_event("%s: waiting, certificate ready in %d s", body_name(type),
			 s->opts->poll_seconds);
		return OSSL_CMP_STATUSINFO_new(OSSL_CMP_PKISTATUS_waiting, 0, NULL);
	}
	s->delivering = 0;

	if (!requested(crm, p10cr, &key, &subject, &exts)) {
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
	if (key == NULL || subject == NULL ||
	    (cert = ca_issue(s->ca, subject, key, exts, issuer, issuer_key)) == NULL)
		goto done;
	if (!ca_record_issued(s->ca, cert))
		goto done;
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
	ca_event("rr: revoked serial %s reason %d", hex != NULL ? hex : "?", s->ri.rr_reason);
	OPENSSL_free(hex);
	snprintf(s->outcome, sizeof(s->outcome), "revoked");
	(void)req;
	return OSSL_CMP_STATUSINFO_new(OSSL_CMP_PKISTATUS_accepted, 0, NULL);
}

static OSSL_CMP_ITAV *ca_certs_itav(struct ca_srv *s)
{
	STACK_OF(X509) *certs = certs_of(s->ca->root, s->ca->sub);
	ASN1_TYPE *value = NULL;
	ASN1_OBJECT *type = OBJ_dup(s->oid_ca_certs);
	OSSL_CMP_ITAV *itav = NULL;

	if (certs != NULL && type != NULL &&
	    ASN1_TYPE_pack_sequence(ASN1_ITEM_rptr(CA_CERTSEQ), certs, &value) != NULL)
		itav = OSSL_CMP_ITAV_create(type, value);
	if (itav == NULL) {
		ASN1_OBJECT_free(type);
		ASN1_TYPE_free(value);
	}
	sk_X509_pop_free(certs, X509_free);
	return itav;
}

static int cb_genm(OSSL_CMP_SRV_CTX *srv_ctx, const OSSL_CMP_MSG *req,
		   const STACK_OF(OSSL_CMP_ITAV) *in, STACK_OF(OSSL_CMP_ITAV) **out)
{
	struct ca_srv *s = OSSL_CMP_SRV_CTX_get0_custom_ctx(srv_ctx);
	int i;

	if (fault_rejection(s) != NULL) {
		ERR_raise_data(ERR_LIB_CMP, CMP_R_ERROR_PROCESSING_MESSAGE, "test CA fault");
		return 0;
	}
	if ((*out = sk_OSSL_CMP_ITAV_new_null()) == NULL)
		return 0;
	for (i = 0; i < sk_OSSL_CMP_ITAV_num(in); i++) {
		ASN1_OBJECT *type = OSSL_CMP_ITAV_get0_type(sk_OSSL_CMP_ITAV_value(in, i));
		char oid[64];

		OBJ_obj2txt(oid, sizeof(oid), type, 1);
		if (OBJ_cmp(type, s->oid_ca_certs) == 0) {
			OSSL_CMP_ITAV *itav = ca_certs_itav(s);

			if (itav == NULL || !sk_OSSL_CMP_ITAV_push(*out, itav)) {
				OSSL_CMP_ITAV_free(itav);
				sk_OSSL_CMP_ITAV_pop_free(*out, OSSL_CMP_ITAV_free);
				*out = NULL;
				return 0;
			}
			ca_event("genm caCerts: sent root and issuing CA");
		} else {
			ca_event("genm %s: not supported, left out of genp", oid);
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

	if (fault_rejection(s) != NULL) {
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
	if (fault_rejection(s) != NULL) {
		ERR_raise_data(ERR_LIB_CMP, CMP_R_ERROR_PROCESSING_MESSAGE, "test CA fault");
		return 0;
	}
	if (s->held == NULL) {
		ca_event("pollReq without a pending request");
		ERR_raise(ERR_LIB_CMP, CMP_R_UNEXPECTED_PKIBODY);
		return 0;
	}
	if (now < s->deliver_at) {
		*check_after = s->deliver_at - now;
		snprintf(s->outcome, sizeof(s->outcome), "checkAfter %lld",
			 (long long)*check_after);
		ca_event("pollReq: not ready, checkAfter %lld", (long long)*check_after);
		return 1;
	}
	ca_event("pollReq: delivering");
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
	if ((s->oid_ca_certs = OBJ_txt2obj(OID_CA_CERTS, 1)) == NULL ||
	    (s->srv_ctx = OSSL_CMP_SRV_CTX_new(NULL, NULL)) == NULL ||
	    !OSSL_CMP_SRV_CTX_init(s->srv_ctx, s, cb_cert_request, cb_rr, cb_genm, cb_error,
				   cb_certConf, cb_pollReq) ||
	    !OSSL_CMP_SRV_CTX_set_accept_unprotected(s->srv_ctx, opts->accept_unprotected) ||
	    !OSSL_CMP_SRV_CTX_set_grant_implicit_confirm(s->srv_ctx, opts->implicit_confirm))
		goto fail;
	s->ctx = OSSL_CMP_SRV_CTX_get0_cmp_ctx(s->srv_ctx);
	if ((store = X509_STORE_new()) == NULL || !X509_STORE_add_cert(store, ca->root) ||
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
	ASN1_OBJECT_free(s->oid_ca_certs);
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

	return OSSL_CMP_CTX_set1_secretValue(s->ctx, pbm ? s->opts->secret : NULL,
					     (int)s->opts->secret_len) &&
	       OSSL_CMP_CTX_set1_cert(s->ctx, s->ca->srv) &&
	       OSSL_CMP_CTX_set1_pkey(s->ctx, s->ca->srv_key) &&
	       OSSL_CMP_SRV_CTX_set_send_unprotected_errors(s->srv_ctx, 0);
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
static void rework_response(struct ca_srv *s, OSSL_CMP_MSG *rsp, int rsp_type)
{
	OSSL_CMP_PKIHEADER *hdr = OSSL_CMP_MSG_get0_header(rsp);
	/* an unprotected-error answer stays unprotected */
	int pbm_rsp = s->ri.prot == CA_PROT_PBM && s->opts->secret != NULL &&
		      !fault(s, CA_FAULT_UNPROTECTED_ERROR);
	int closed, spoilt = 0;
	unsigned char rnd[32];
	ASN1_OCTET_STRING *tid;

	if (!(pbm_rsp && s->opts->protection_sig) &&
	    !fault(s, CA_FAULT_BAD_PROTECTION | CA_FAULT_WRONG_TID | CA_FAULT_WRONG_NONCE))
		return;
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
	if (!OSSL_CMP_MSG_update_transactionID(s->ctx, rsp))
		ca_log_openssl_errors("re-protecting the response");
	/* as OpenSSL does: these responses end the transaction */
	closed = rsp_type == CA_BODY_RP || rsp_type == CA_BODY_PKICONF ||
		 rsp_type == CA_BODY_GENP || rsp_type == CA_BODY_ERROR ||
		 ((rsp_type == CA_BODY_IP || rsp_type == CA_BODY_CP || rsp_type == CA_BODY_KUP) &&
		  OSSL_CMP_CTX_get_option(s->ctx, OSSL_CMP_OPT_IMPLICIT_CONFIRM) == 1);
	if (closed || spoilt)
		OSSL_CMP_CTX_set1_transactionID(s->ctx, NULL);
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
	int dlen, rsp_type, parsed, ret = -1;
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
	s->faulty = s->opts->faults != 0 && (s->opts->fault_all || is_cert_request(s->req_type)) &&
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
	if (!reset_ctx(s, parsed))
		goto done;
	rsp = OSSL_CMP_SRV_process_request(s->srv_ctx, req);
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
	rework_response(s, rsp, rsp_type);

	if ((dlen = i2d_OSSL_CMP_MSG(rsp, &der)) <= 0)
		goto done;
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
	ca_log("POST %s %s -> %s%s%s", path, body_name(s->req_type), body_name(rsp_type),
	       s->outcome[0] != '\0' ? " " : "", s->outcome);
	ret = 0;
done:
	if (s->delivering) /* the held request failed its second POP check */
		s->delivering = 0;
	ERR_clear_error();
	OSSL_CMP_MSG_free(req);
	OSSL_CMP_MSG_free(rsp);
	return ret;
}
