/*
 * General messages (genm/genp) of RFC 9480 on OpenSSL 3.0's generic ITAV
 * API: caCerts, rootCaKeyUpdate, certReqTemplate and crls.  3.0 has no
 * helpers for these, so the values are encoded and decoded here with
 * ASN.1 templates (tagging as in RFC 9480's EXPLICIT TAGS module).
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include <openssl/asn1t.h>
#include <openssl/crmf.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "cmp/cmpc-int.h"

#define OID_IT_CA_CERTS "1.3.6.1.5.5.7.4.17"
#define OID_IT_ROOT_CA_KEY_UPDATE "1.3.6.1.5.5.7.4.18"
#define OID_IT_CERT_REQ_TEMPLATE "1.3.6.1.5.5.7.4.19"
#define OID_IT_ROOT_CA_CERT "1.3.6.1.5.5.7.4.20"
#define OID_IT_CRL_STATUS_LIST "1.3.6.1.5.5.7.4.22"
#define OID_IT_CRLS "1.3.6.1.5.5.7.4.23"
#define OID_REGCTRL_ALGID "1.3.6.1.5.5.7.5.1.11"
#define OID_REGCTRL_RSAKEYLEN "1.3.6.1.5.5.7.5.1.12"

/* SEQUENCE SIZE (1..MAX) OF Certificate: caCerts */
typedef STACK_OF(X509) CMPC_CERTSEQ;
ASN1_ITEM_TEMPLATE(CMPC_CERTSEQ) =
	ASN1_EX_TEMPLATE_TYPE(ASN1_TFLG_SEQUENCE_OF, 0, certs, X509)
static_ASN1_ITEM_TEMPLATE_END(CMPC_CERTSEQ)

/* SEQUENCE SIZE (1..MAX) OF CertificateList: crls */
typedef STACK_OF(X509_CRL) CMPC_CRLSEQ;
ASN1_ITEM_TEMPLATE(CMPC_CRLSEQ) =
	ASN1_EX_TEMPLATE_TYPE(ASN1_TFLG_SEQUENCE_OF, 0, crls, X509_CRL)
static_ASN1_ITEM_TEMPLATE_END(CMPC_CRLSEQ)

/* RootCaKeyUpdateContent (RFC 9480 2.14) */
typedef struct {
	X509 *newWithNew;
	X509 *newWithOld;
	X509 *oldWithNew;
} CMPC_ROOTCAKEYUPDATE;
ASN1_SEQUENCE(CMPC_ROOTCAKEYUPDATE) = {
	ASN1_SIMPLE(CMPC_ROOTCAKEYUPDATE, newWithNew, X509),
	ASN1_EXP_OPT(CMPC_ROOTCAKEYUPDATE, newWithOld, X509, 0),
	ASN1_EXP_OPT(CMPC_ROOTCAKEYUPDATE, oldWithNew, X509, 1),
} static_ASN1_SEQUENCE_END(CMPC_ROOTCAKEYUPDATE)

/* AttributeTypeAndValue of Controls (RFC 4211), the keySpec of a template */
typedef struct {
	ASN1_OBJECT *type;
	ASN1_TYPE *value;
} CMPC_ATAV;
DEFINE_STACK_OF(CMPC_ATAV)
ASN1_SEQUENCE(CMPC_ATAV) = {
	ASN1_SIMPLE(CMPC_ATAV, type, ASN1_OBJECT),
	ASN1_SIMPLE(CMPC_ATAV, value, ASN1_ANY),
} static_ASN1_SEQUENCE_END(CMPC_ATAV)

/* CertReqTemplateContent (RFC 9480 2.13) */
typedef struct {
	OSSL_CRMF_CERTTEMPLATE *certTemplate;
	STACK_OF(CMPC_ATAV) *keySpec;
} CMPC_CERTREQTEMPLATE;
ASN1_SEQUENCE(CMPC_CERTREQTEMPLATE) = {
	ASN1_SIMPLE(CMPC_CERTREQTEMPLATE, certTemplate, OSSL_CRMF_CERTTEMPLATE),
	ASN1_SEQUENCE_OF_OPT(CMPC_CERTREQTEMPLATE, keySpec, CMPC_ATAV),
} static_ASN1_SEQUENCE_END(CMPC_CERTREQTEMPLATE)

/* CRLSource, CRLStatus and their list (RFC 9480 2.17) */
typedef struct {
	int type; /* 0 dpn, 1 issuer */
	union {
		DIST_POINT_NAME *dpn;
		GENERAL_NAMES *issuer;
	} value;
} CMPC_CRLSOURCE;
ASN1_CHOICE(CMPC_CRLSOURCE) = {
	ASN1_EXP(CMPC_CRLSOURCE, value.dpn, DIST_POINT_NAME, 0),
	ASN1_EXP_SEQUENCE_OF(CMPC_CRLSOURCE, value.issuer, GENERAL_NAME, 1),
} static_ASN1_CHOICE_END(CMPC_CRLSOURCE)

typedef struct {
	CMPC_CRLSOURCE *source;
	ASN1_TIME *thisUpdate;
} CMPC_CRLSTATUS;
DEFINE_STACK_OF(CMPC_CRLSTATUS)
ASN1_SEQUENCE(CMPC_CRLSTATUS) = {
	ASN1_SIMPLE(CMPC_CRLSTATUS, source, CMPC_CRLSOURCE),
	ASN1_OPT(CMPC_CRLSTATUS, thisUpdate, ASN1_TIME),
} static_ASN1_SEQUENCE_END(CMPC_CRLSTATUS)

typedef STACK_OF(CMPC_CRLSTATUS) CMPC_CRLSTATUSLIST;
ASN1_ITEM_TEMPLATE(CMPC_CRLSTATUSLIST) =
	ASN1_EX_TEMPLATE_TYPE(ASN1_TFLG_SEQUENCE_OF, 0, crlStatusList, CMPC_CRLSTATUS)
static_ASN1_ITEM_TEMPLATE_END(CMPC_CRLSTATUSLIST)

/* ---- genm --------------------------------------------------------------- */

static ASN1_OBJECT *oid(const char *txt)
{
	return OBJ_txt2obj(txt, 1);
}

/*
 * Sends one ITAV (type req_oid, value req_value, which is taken) and
 * returns the genp's ITAVs in *ret_itavs, with *ret_value pointing at the
 * value of the first of type rsp_oid (NULL if absent) and *ret_found saying
 * whether there was one.  Other ITAVs are logged and ignored.
 */
static cmpc_rv genm(cmpc_ctx *ctx, const char *what, const char *req_oid, ASN1_TYPE *req_value,
		    const char *rsp_oid, STACK_OF(OSSL_CMP_ITAV) **ret_itavs,
		    ASN1_TYPE **ret_value, int *ret_found)
{
	STACK_OF(OSSL_CMP_ITAV) *itavs;
	ASN1_OBJECT *type = NULL, *want = NULL;
	OSSL_CMP_ITAV *itav = NULL;
	char name[80];
	cmpc_rv rv;
	int i;

	*ret_found = 0;
	*ret_value = NULL;
	if ((rv = cmpc_xchg_begin(ctx, what)) != CMPC_OK) {
		ASN1_TYPE_free(req_value);
		return rv;
	}
	if ((type = oid(req_oid)) == NULL || (want = oid(rsp_oid)) == NULL ||
	    (itav = OSSL_CMP_ITAV_create(type, req_value)) == NULL) {
		ASN1_OBJECT_free(type);
		ASN1_TYPE_free(req_value);
		goto oom;
	}
	if (!OSSL_CMP_CTX_push0_genm_ITAV(ctx->cmp, itav)) {
		OSSL_CMP_ITAV_free(itav);
		goto oom;
	}
	if ((rv = cmpc_stored_replay(ctx, CMPC_BODY_GENM, what)) != CMPC_OK)
		goto out;
	cmpc_log(ctx, LOG_INFO, "sending a genm (%s) to %s", req_oid, ctx->url);
	cmpc_log_enter(ctx);
	itavs = OSSL_CMP_exec_GENM_ses(ctx->cmp);
	cmpc_log_leave();
	if (itavs == NULL) {
		rv = cmpc_classify_failure(ctx, what);
		goto out;
	}
	for (i = 0; i < sk_OSSL_CMP_ITAV_num(itavs); i++) {
		itav = sk_OSSL_CMP_ITAV_value(itavs, i);
		if (!*ret_found && OBJ_cmp(OSSL_CMP_ITAV_get0_type(itav), want) == 0) {
			*ret_found = 1;
			*ret_value = OSSL_CMP_ITAV_get0_value(itav);
			continue;
		}
		OBJ_obj2txt(name, sizeof(name), OSSL_CMP_ITAV_get0_type(itav), 1);
		cmpc_log(ctx, LOG_DEBUG, "genp: ignoring an ITAV of type %s", name);
	}
	if (!*ret_found)
		cmpc_log(ctx, LOG_NOTICE,
			 "%s: the genp carries no ITAV of type %s; taken as 'none' (an absent "
			 "value in RFC 9480)",
			 what, rsp_oid);
	*ret_itavs = itavs;
	rv = CMPC_OK;
	goto out;
oom:
	cmpc_seterr(ctx, "%s: cannot build the genm (out of memory?)", what);
	rv = CMPC_ERR_INTERNAL;
out:
	ASN1_OBJECT_free(want);
	return rv;
}

static cmpc_rv malformed(cmpc_ctx *ctx, const char *what, const char *expected)
{
	char errs[512];

	cmpc_ossl_errors(errs, sizeof(errs));
	cmpc_seterr(ctx,
		    "%s: the CA's answer does not decode as %s (%s); the CA does not follow "
		    "RFC 9480 here: report it to the CA operator",
		    what, expected, errs);
	return CMPC_ERR_PROTOCOL;
}

cmpc_rv cmpc_genm_ca_certs(cmpc_ctx *ctx, STACK_OF(X509) **ret_certs)
{
	const char *what = "CMP genm caCerts";
	STACK_OF(OSSL_CMP_ITAV) *itavs = NULL;
	STACK_OF(X509) *certs = NULL;
	ASN1_TYPE *value;
	cmpc_rv rv;
	int found;

	if (ctx == NULL)
		return CMPC_ERR_INTERNAL;
	ctx->errmsg[0] = '\0';
	if (ret_certs == NULL) {
		cmpc_seterr(ctx, "%s: no place for the certificates given", what);
		return CMPC_ERR_INTERNAL;
	}
	rv = genm(ctx, what, OID_IT_CA_CERTS, NULL, OID_IT_CA_CERTS, &itavs, &value, &found);
	if (rv != CMPC_OK)
		goto out;
	if (value != NULL) {
		certs = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(CMPC_CERTSEQ), value);
		if (certs == NULL) {
			rv = malformed(ctx, what, "a SEQUENCE OF Certificate");
			goto out;
		}
	} else if ((certs = sk_X509_new_null()) == NULL) {
		cmpc_seterr(ctx, "%s: out of memory", what);
		rv = CMPC_ERR_INTERNAL;
		goto out;
	}
	cmpc_log(ctx, LOG_INFO, "%s: %d certificate(s) received", what, sk_X509_num(certs));
	*ret_certs = certs;
	rv = CMPC_OK;
out:
	sk_OSSL_CMP_ITAV_pop_free(itavs, OSSL_CMP_ITAV_free);
	cmpc_xchg_end(ctx);
	return rv;
}

/* Why upd cannot replace old_root, or NULL if it can. */
static const char *root_update_flaw(X509 *old_root, const CMPC_ROOTCAKEYUPDATE *upd)
{
	EVP_PKEY *oldkey = X509_get0_pubkey(old_root);
	EVP_PKEY *newkey = X509_get0_pubkey(upd->newWithNew);

	if (upd->newWithOld == NULL)
		return "it has no newWithOld certificate, so the new root cannot be tied to the "
		       "old one";
	if (oldkey == NULL || X509_verify(upd->newWithOld, oldkey) != 1)
		return "the signature of newWithOld does not verify with the old root's key";
	if (newkey == NULL || EVP_PKEY_eq(X509_get0_pubkey(upd->newWithOld), newkey) != 1)
		return "newWithOld does not carry the public key of newWithNew";
	if (X509_verify(upd->newWithNew, newkey) != 1)
		return "newWithNew is not self-signed with its own key";
	/* A root that cannot issue, or that is over, is no successor. */
	if ((X509_get_extension_flags(upd->newWithNew) & EXFLAG_CA) == 0)
		return "newWithNew is not a CA certificate (no basicConstraints CA:TRUE)";
	if (X509_cmp_current_time(X509_get0_notAfter(upd->newWithNew)) <= 0)
		return "newWithNew has expired (or its notAfter is unreadable)";
	if (ASN1_TIME_compare(X509_get0_notBefore(upd->newWithNew),
			      X509_get0_notAfter(upd->newWithNew)) > 0)
		return "newWithNew's validity ends before it begins";
	return NULL;
}

cmpc_rv cmpc_genm_root_update(cmpc_ctx *ctx, X509 *old_root, X509 **ret_new_root,
			      X509 **ret_new_with_old)
{
	const char *what = "CMP genm rootCaKeyUpdate";
	STACK_OF(OSSL_CMP_ITAV) *itavs = NULL;
	CMPC_ROOTCAKEYUPDATE *upd = NULL;
	ASN1_TYPE *req = NULL, *value;
	const char *flaw;
	cmpc_rv rv;
	int found;

	if (ctx == NULL)
		return CMPC_ERR_INTERNAL;
	ctx->errmsg[0] = '\0';
	if (old_root == NULL || ret_new_root == NULL) {
		cmpc_seterr(ctx, "%s: no old root certificate or no place for the new one given",
			    what);
		return CMPC_ERR_INTERNAL;
	}
	if (ASN1_TYPE_pack_sequence(ASN1_ITEM_rptr(X509), old_root, &req) == NULL) {
		ERR_clear_error();
		cmpc_seterr(ctx, "%s: cannot encode the old root certificate", what);
		return CMPC_ERR_INTERNAL;
	}
	rv = genm(ctx, what, OID_IT_ROOT_CA_CERT, req, OID_IT_ROOT_CA_KEY_UPDATE, &itavs, &value,
		  &found);
	if (rv != CMPC_OK)
		goto out;
	if (value == NULL) {
		cmpc_log(ctx, LOG_INFO, "%s: no root CA key update", what);
		*ret_new_root = NULL;
		if (ret_new_with_old != NULL)
			*ret_new_with_old = NULL;
		goto out;
	}
	upd = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(CMPC_ROOTCAKEYUPDATE), value);
	if (upd == NULL) {
		rv = malformed(ctx, what, "a RootCaKeyUpdateContent");
		goto out;
	}
	if ((flaw = root_update_flaw(old_root, upd)) != NULL) {
		ERR_clear_error();
		cmpc_seterr(ctx,
			    "%s: the new root certificate the CA offered was refused: %s; keep "
			    "the old root and report it to the CA operator (the answer may have "
			    "been forged)",
			    what, flaw);
		rv = CMPC_ERR_PROTOCOL;
		goto out;
	}
	if (!X509_up_ref(upd->newWithNew) ||
	    (ret_new_with_old != NULL && !X509_up_ref(upd->newWithOld))) {
		cmpc_seterr(ctx, "%s: out of memory", what);
		rv = CMPC_ERR_INTERNAL;
		goto out;
	}
	cmpc_log(ctx, LOG_INFO, "%s: new root certificate received and verified", what);
	*ret_new_root = upd->newWithNew;
	if (ret_new_with_old != NULL)
		*ret_new_with_old = upd->newWithOld;
out:
	ASN1_item_free((ASN1_VALUE *)upd, ASN1_ITEM_rptr(CMPC_ROOTCAKEYUPDATE));
	sk_OSSL_CMP_ITAV_pop_free(itavs, OSSL_CMP_ITAV_free);
	cmpc_xchg_end(ctx);
	return rv;
}

void cmpc_template_clear(cmpc_template *t)
{
	if (t == NULL)
		return;
	X509_NAME_free(t->subject);
	sk_X509_EXTENSION_pop_free(t->extensions, X509_EXTENSION_free);
	memset(t, 0, sizeof(*t));
}

static int curve_bits(int nid)
{
	switch (nid) {
	case NID_X9_62_prime256v1:
		return 256;
	case NID_secp384r1:
		return 384;
	case NID_secp521r1:
		return 521;
	}
	return -1;
}

/* Fills key_alg and key_bits from the keySpec; why on a value it cannot use. */
static int read_key_spec(const STACK_OF(CMPC_ATAV) *spec, cmpc_template *t, char *why,
			 size_t whylen)
{
	ASN1_OBJECT *algid = oid(OID_REGCTRL_ALGID), *keylen = oid(OID_REGCTRL_RSAKEYLEN);
	const ASN1_OBJECT *aoid;
	const void *param;
	X509_ALGOR *alg;
	CMPC_ATAV *a;
	int64_t bits;
	int i, ptype, ok = algid != NULL && keylen != NULL;

	if (!ok)
		snprintf(why, whylen, "out of memory");
	for (i = 0; ok && i < sk_CMPC_ATAV_num(spec); i++) {
		a = sk_CMPC_ATAV_value(spec, i);
		if (OBJ_cmp(a->type, algid) == 0) {
			alg = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(X509_ALGOR), a->value);
			if (alg == NULL) {
				snprintf(why, whylen,
					 "the algId control is no AlgorithmIdentifier");
				ok = 0;
				break;
			}
			X509_ALGOR_get0(&aoid, &ptype, &param, alg);
			if (OBJ_obj2nid(aoid) == NID_X9_62_id_ecPublicKey) {
				t->key_alg = 1;
				if (ptype == V_ASN1_OBJECT &&
				    (t->key_bits = curve_bits(OBJ_obj2nid(param))) < 0) {
					snprintf(why, whylen,
						 "the algId control names an EC "
						 "curve other than P-256, P-384, P-521");
					ok = 0;
				} else if (ptype != V_ASN1_OBJECT) {
					t->key_bits = 0;
				}
			} else if (OBJ_obj2nid(aoid) == NID_rsaEncryption) {
				t->key_alg = 2;
			} else {
				snprintf(why, whylen,
					 "the algId control names a key type other "
					 "than EC and RSA");
				ok = 0;
			}
			X509_ALGOR_free(alg);
		} else if (OBJ_cmp(a->type, keylen) == 0) {
			if (a->value == NULL || a->value->type != V_ASN1_INTEGER ||
			    ASN1_INTEGER_get_int64(&bits, a->value->value.integer) != 1 ||
			    bits < 512 || bits > 16384) {
				snprintf(why, whylen,
					 "the rsaKeyLen control is no INTEGER in "
					 "512..16384");
				ok = 0;
				break;
			}
			t->key_alg = 2;
			t->key_bits = (int)bits;
		}
	}
	ASN1_OBJECT_free(algid);
	ASN1_OBJECT_free(keylen);
	return ok;
}

cmpc_rv cmpc_genm_cert_template(cmpc_ctx *ctx, cmpc_template *ret_template)
{
	const char *what = "CMP genm certReqTemplate";
	STACK_OF(OSSL_CMP_ITAV) *itavs = NULL;
	CMPC_CERTREQTEMPLATE *crt = NULL;
	const STACK_OF(X509_EXTENSION) *exts;
	const X509_NAME *subject;
	cmpc_template t;
	ASN1_TYPE *value;
	char why[160];
	cmpc_rv rv;
	int found;

	if (ctx == NULL)
		return CMPC_ERR_INTERNAL;
	ctx->errmsg[0] = '\0';
	if (ret_template == NULL) {
		cmpc_seterr(ctx, "%s: no place for the template given", what);
		return CMPC_ERR_INTERNAL;
	}
	memset(&t, 0, sizeof(t));
	rv = genm(ctx, what, OID_IT_CERT_REQ_TEMPLATE, NULL, OID_IT_CERT_REQ_TEMPLATE, &itavs,
		  &value, &found);
	if (rv != CMPC_OK)
		goto out;
	if (value == NULL) {
		cmpc_log(ctx, LOG_INFO, "%s: the CA has no template: everything is open", what);
		*ret_template = t;
		goto out;
	}
	crt = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(CMPC_CERTREQTEMPLATE), value);
	if (crt == NULL) {
		rv = malformed(ctx, what, "a CertReqTemplateContent");
		goto out;
	}
	subject = OSSL_CRMF_CERTTEMPLATE_get0_subject(crt->certTemplate);
	exts = OSSL_CRMF_CERTTEMPLATE_get0_extensions(crt->certTemplate);
	if ((subject != NULL && X509_NAME_entry_count(subject) > 0 &&
	     (t.subject = X509_NAME_dup(subject)) == NULL) ||
	    (sk_X509_EXTENSION_num(exts) > 0 &&
	     (t.extensions = sk_X509_EXTENSION_deep_copy(exts, X509_EXTENSION_dup,
							 X509_EXTENSION_free)) == NULL)) {
		cmpc_seterr(ctx, "%s: out of memory", what);
		rv = CMPC_ERR_INTERNAL;
		goto out;
	}
	if (!read_key_spec(crt->keySpec, &t, why, sizeof(why))) {
		cmpc_seterr(ctx,
			    "%s: the template's keySpec cannot be used: %s; ask the CA operator "
			    "which key to generate",
			    what, why);
		rv = CMPC_ERR_PROTOCOL;
		goto out;
	}
	cmpc_log(ctx, LOG_INFO, "%s: subject %s, key %s %d bits, %d extension(s)", what,
		 t.subject != NULL ? "set" : "open",
		 t.key_alg == 1	  ? "EC"
		 : t.key_alg == 2 ? "RSA"
				  : "open",
		 t.key_bits, sk_X509_EXTENSION_num(t.extensions));
	*ret_template = t;
	memset(&t, 0, sizeof(t));
out:
	cmpc_template_clear(&t);
	ASN1_item_free((ASN1_VALUE *)crt, ASN1_ITEM_rptr(CMPC_CERTREQTEMPLATE));
	sk_OSSL_CMP_ITAV_pop_free(itavs, OSSL_CMP_ITAV_free);
	cmpc_xchg_end(ctx);
	return rv;
}

static void crlstatus_free(CMPC_CRLSTATUS *s)
{
	ASN1_item_free((ASN1_VALUE *)s, ASN1_ITEM_rptr(CMPC_CRLSTATUS));
}

/* A CRLStatus naming issuer as source [1], no thisUpdate. */
static CMPC_CRLSTATUS *crlstatus_for(const X509_NAME *issuer)
{
	CMPC_CRLSTATUS *s;
	GENERAL_NAME *gn = NULL;
	X509_NAME *dn = NULL;

	if ((s = (CMPC_CRLSTATUS *)ASN1_item_new(ASN1_ITEM_rptr(CMPC_CRLSTATUS))) == NULL)
		return NULL;
	if ((s->source->value.issuer = GENERAL_NAMES_new()) == NULL)
		goto err;
	s->source->type = 1;
	if ((gn = GENERAL_NAME_new()) == NULL || (dn = X509_NAME_dup(issuer)) == NULL)
		goto err;
	GENERAL_NAME_set0_value(gn, GEN_DIRNAME, dn);
	dn = NULL;
	if (!sk_GENERAL_NAME_push(s->source->value.issuer, gn))
		goto err;
	return s;
err:
	X509_NAME_free(dn);
	GENERAL_NAME_free(gn);
	crlstatus_free(s);
	return NULL;
}

static int has_issuer(const STACK_OF(X509) *sk, int n, const X509_NAME *name)
{
	int i;

	for (i = 0; i < n; i++)
		if (X509_NAME_cmp(X509_get_issuer_name(sk_X509_value(sk, i)), name) == 0)
			return 1;
	return 0;
}

/* The crlStatusList value: one issuer source per distinct issuer. */
static ASN1_TYPE *crl_status_list(STACK_OF(X509) *certs, int use_subject)
{
	STACK_OF(CMPC_CRLSTATUS) *list;
	CMPC_CRLSTATUS *s;
	ASN1_TYPE *value = NULL;
	X509 *x;
	int i;

	if ((list = sk_CMPC_CRLSTATUS_new_null()) == NULL)
		return NULL;
	for (i = 0; i < sk_X509_num(certs); i++) {
		x = sk_X509_value(certs, i);
		if (!use_subject && has_issuer(certs, i, X509_get_issuer_name(x)))
			continue;
		s = crlstatus_for(use_subject ? X509_get_subject_name(x) : X509_get_issuer_name(x));
		if (s == NULL || !sk_CMPC_CRLSTATUS_push(list, s)) {
			crlstatus_free(s);
			goto out;
		}
	}
	(void)ASN1_TYPE_pack_sequence(ASN1_ITEM_rptr(CMPC_CRLSTATUSLIST), list, &value);
out:
	sk_CMPC_CRLSTATUS_pop_free(list, crlstatus_free);
	return value;
}

cmpc_rv cmpc_genm_crls(cmpc_ctx *ctx, STACK_OF(X509) *certs, STACK_OF(X509_CRL) **ret_crls)
{
	const char *what = "CMP genm crlStatusList";
	STACK_OF(OSSL_CMP_ITAV) *itavs = NULL;
	STACK_OF(X509_CRL) *crls = NULL;
	ASN1_TYPE *req, *value;
	cmpc_rv rv;
	int found, by_anchor = sk_X509_num(certs) <= 0;

	if (ctx == NULL)
		return CMPC_ERR_INTERNAL;
	ctx->errmsg[0] = '\0';
	if (ret_crls == NULL) {
		cmpc_seterr(ctx, "%s: no place for the CRLs given", what);
		return CMPC_ERR_INTERNAL;
	}
	/* RFC 9480 wants at least one CRLStatus: without certificates, ask for
	 * the CRLs the trust anchors issue. */
	if (by_anchor && sk_X509_num(ctx->anchors) <= 0) {
		cmpc_seterr(ctx,
			    "%s: no certificates and no trust anchors given, so no CRL source "
			    "can be named (RFC 9480 needs at least one): give the certificates "
			    "whose issuers' CRLs are wanted, or load the trust anchors",
			    what);
		return CMPC_ERR_CONFIG;
	}
	if ((req = crl_status_list(by_anchor ? ctx->anchors : certs, by_anchor)) == NULL) {
		ERR_clear_error();
		cmpc_seterr(ctx, "%s: cannot encode the crlStatusList (out of memory?)", what);
		return CMPC_ERR_INTERNAL;
	}
	rv = genm(ctx, what, OID_IT_CRL_STATUS_LIST, req, OID_IT_CRLS, &itavs, &value, &found);
	if (rv != CMPC_OK)
		goto out;
	if (value != NULL) {
		crls = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(CMPC_CRLSEQ), value);
		if (crls == NULL) {
			rv = malformed(ctx, what, "a SEQUENCE OF CertificateList");
			goto out;
		}
	} else if ((crls = sk_X509_CRL_new_null()) == NULL) {
		cmpc_seterr(ctx, "%s: out of memory", what);
		rv = CMPC_ERR_INTERNAL;
		goto out;
	}
	cmpc_log(ctx, LOG_INFO, "%s: %d CRL(s) received", what, sk_X509_CRL_num(crls));
	*ret_crls = crls;
out:
	sk_OSSL_CMP_ITAV_pop_free(itavs, OSSL_CMP_ITAV_free);
	cmpc_xchg_end(ctx);
	return rv;
}
