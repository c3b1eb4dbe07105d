/* What the commands share: files written atomically, certificate summaries,
 * the mapping of protocol failures to exit codes. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "agent/agent.h"
#include "cmp/cmpc.h"
#include "pkcs11/tok.h"

agent_rc agent_exit_from_cmpc(int rv)
{
	switch ((cmpc_rv)rv) {
	case CMPC_OK:
		return EXIT_OK;
	case CMPC_ERR_CONFIG:
		return EXIT_USAGE;
	case CMPC_ERR_TRANSPORT:
	case CMPC_ERR_TLS:
		return EXIT_TRANSPORT;
	case CMPC_ERR_PROTOCOL:
		return EXIT_PROTOCOL;
	case CMPC_ERR_REJECTED:
		return EXIT_REJECTED;
	case CMPC_ERR_WAITING:
		return EXIT_WAITING;
	case CMPC_ERR_CERT:
		return EXIT_CERT;
	case CMPC_ERR_KEY:
		return EXIT_TOKEN;
	case CMPC_ERR_STOPPED:
		return EXIT_INTERRUPTED;
	default:
		return EXIT_INTERNAL;
	}
}

void agent_cmp_log(int level, const char *msg, void *arg)
{
	(void)arg;
	log_msg(level > LOG_INFO ? LOG_DEBUG : level < LOG_WARNING ? LOG_INFO : level, "cmp: %s",
		msg);
}

struct pem_out {
	X509 *cert;
	STACK_OF(X509) *certs;
};

static int put_pem(FILE *f, void *arg)
{
	const struct pem_out *p = arg;
	int i;

	if (p->cert != NULL && !PEM_write_X509(f, p->cert))
		return -1;
	for (i = 0; i < sk_X509_num(p->certs); i++)
		if (!PEM_write_X509(f, sk_X509_value(p->certs, i)))
			return -1;
	return 0;
}

int agent_write_pem(const char *path, X509 *cert, STACK_OF(X509) *certs)
{
	struct pem_out p = { cert, certs };
	char err[4400];

	/* Certificates are public: a new file is 0644; a replaced one keeps
	 * the mode its administrator gave it. */
	if (agent_atomic_write(path, AGENT_MODE_KEEP, put_pem, &p, err, sizeof(err)) < 0) {
		log_msg(LOG_ERR, "%s", err);
		log_openssl_errors();
		return -1;
	}
	return 0;
}

X509 *agent_read_cert(const char *path, const char *what, const char *hint)
{
	FILE *f = fopen(path, "r");
	X509 *cert;

	if (f == NULL) {
		log_msg(LOG_ERR, "cannot read %s %s: %s", what, path, strerror(errno));
		return NULL;
	}
	cert = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (cert == NULL) {
		log_msg(LOG_ERR, "%s %s holds no PEM certificate: %s", what, path, hint);
		log_openssl_errors();
	}
	return cert;
}

int agent_ca_label(X509 *ca, char *out, size_t outlen)
{
	X509_NAME *subj = X509_get_subject_name(ca);
	int i = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);

	out[0] = '\0';
	if (i >= 0) {
		ASN1_STRING *d = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, i));
		unsigned char *utf8 = NULL;
		int type = ASN1_STRING_type(d), len;
		char raw[256];

		/* UTF-8 or ASCII already (what CAs use): taken as it is, with
		 * nothing to allocate; other string types converted. */
		if (type == V_ASN1_UTF8STRING || type == V_ASN1_PRINTABLESTRING ||
		    type == V_ASN1_IA5STRING) {
			snprintf(raw, sizeof(raw), "%.*s", ASN1_STRING_length(d),
				 (const char *)ASN1_STRING_get0_data(d));
		} else if ((len = ASN1_STRING_to_UTF8(&utf8, d)) >= 0) {
			snprintf(raw, sizeof(raw), "%.*s", len, (char *)utf8);
			OPENSSL_free(utf8);
		} else if (ASN1_STRING_length(d) > 0) {
			/* a CN that cannot be converted, or no memory: the label
			 * would differ from run to run */
			return -1;
		} else {
			raw[0] = '\0';
		}
		/* The label goes onto the token and into every later listing
		 * (also by other tools): no terminal escapes from the CA. */
		agent_escape(raw, out, outlen);
	}
	if (out[0] == '\0')
		X509_NAME_oneline(subj, out, (int)outlen);
	return 0;
}

const char *agent_name_text(const X509_NAME *name, char *out, size_t outlen)
{
	char raw[2048], oid[80];
	size_t o = 0;
	int i, n;

	raw[0] = '\0';
	for (i = 0; i < X509_NAME_entry_count(name) && o < sizeof(raw) - 1; i++) {
		const X509_NAME_ENTRY *ent = X509_NAME_get_entry(name, i);
		const ASN1_OBJECT *obj = X509_NAME_ENTRY_get_object(ent);
		int nid = OBJ_obj2nid(obj);
		const char *sn = nid != NID_undef ? OBJ_nid2sn(nid) : NULL;
		unsigned char *utf8 = NULL;
		int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(ent));

		if (sn == NULL) {
			OBJ_obj2txt(oid, sizeof(oid), obj, 1);
			sn = oid;
		}
		/* A value that is no string OpenSSL can convert: "?", as the
		 * name must still show its other parts. */
		n = snprintf(raw + o, sizeof(raw) - o, "/%s=%.*s", sn, len >= 0 ? len : 1,
			     len >= 0 ? (const char *)utf8 : "?");
		OPENSSL_free(utf8);
		if (n < 0)
			break;
		o += (size_t)n < sizeof(raw) - o ? (size_t)n : sizeof(raw) - o - 1;
	}
	/* A cut in the middle of a character becomes \xNN, never a broken
	 * sequence. */
	return agent_escape(raw, out, outlen);
}

void agent_print_cert(const char *verb, const conf_enrollment *e, const unsigned char *id,
		      size_t idlen, const char *label, X509 *cert)
{
	/* -q: errors only */
	if (log_verbosity() < 0)
		return;
	char hex[2 * TOK_ID_MAX + 1], subj[2048], iss[2048], date[64] = "", name[256], lab[512];
	char shown_subj[4 * 2048], shown_iss[4 * 2048];
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
	char *serial = bn != NULL ? BN_bn2hex(bn) : NULL;
	BIO *b = BIO_new(BIO_s_mem());

	agent_hex(id, idlen, hex, sizeof(hex));
	agent_name_text(X509_get_subject_name(cert), subj, sizeof(subj));
	agent_name_text(X509_get_issuer_name(cert), iss, sizeof(iss));
	if (b != NULL && ASN1_TIME_print(b, X509_get0_notAfter(cert)))
		BIO_read(b, date, sizeof(date) - 1);
	printf("%s %s\n  subject:    %s\n  issuer:     %s\n  serial:     %s\n"
	       "  not after:  %s\n  key id:     %s\n  label:      %s\n",
	       verb, agent_escape_shown(e->name, name, sizeof(name)),
	       agent_escape_shown(subj, shown_subj, sizeof(shown_subj)),
	       agent_escape_shown(iss, shown_iss, sizeof(shown_iss)), serial != NULL ? serial : "?",
	       date, hex, agent_escape_shown(label, lab, sizeof(lab)));
	BIO_free(b);
	OPENSSL_free(serial);
	BN_free(bn);
}
