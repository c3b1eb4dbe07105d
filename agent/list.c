/* p11enroll list: the keys and certificates on a token. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "agent/agent-cmd.h"
#include "pkcs11/tok.h"

/* PKCS#11 values, so that this file needs no PKCS#11 header. */
#define P_CKK_RSA 0UL
#define P_CKK_EC 3UL

static const char *key_type_name(unsigned long type)
{
	return type == P_CKK_EC ? "EC" : type == P_CKK_RSA ? "RSA" : "other";
}

static const char *class_name(unsigned long cls)
{
	switch (cls) {
	case TOK_CKO_CERTIFICATE:
		return "certificate";
	case TOK_CKO_PUBLIC_KEY:
		return "public key";
	case TOK_CKO_PRIVATE_KEY:
		return "private key";
	default:
		return "object";
	}
}

static void flag(char *buf, size_t len, int v, const char *name)
{
	if (v != 1)
		return;
	if (buf[0] != '\0')
		strncat(buf, ", ", len - strlen(buf) - 1);
	strncat(buf, name, len - strlen(buf) - 1);
}

static void print_key(const tok_object *o)
{
	char flags[160] = "";

	printf("  type:    %s", key_type_name(o->key_type));
	if (o->key_bits > 0)
		printf(" %d bits", o->key_bits);
	printf("\n");
	if (o->cls != TOK_CKO_PRIVATE_KEY)
		return;
	flag(flags, sizeof(flags), o->sensitive, "sensitive");
	flag(flags, sizeof(flags), o->always_sensitive, "always sensitive");
	flag(flags, sizeof(flags), o->extractable, "EXTRACTABLE");
	flag(flags, sizeof(flags), o->never_extractable, "never extractable");
	flag(flags, sizeof(flags), o->local, "generated on the token");
	printf("  access:  %s\n", flags[0] ? flags : "-");
}

static void print_cert(const tok_object *o)
{
	char name[2048], shown[4 * 2048], date[64] = "";
	BIO *b = BIO_new(BIO_s_mem());

	if (o->cert == NULL)
		return;
	agent_name_text(X509_get_subject_name(o->cert), name, sizeof(name));
	printf("  subject: %s\n", agent_escape_shown(name, shown, sizeof(shown)));
	agent_name_text(X509_get_issuer_name(o->cert), name, sizeof(name));
	printf("  issuer:  %s\n", agent_escape_shown(name, shown, sizeof(shown)));
	if (b != NULL && ASN1_TIME_print(b, X509_get0_notAfter(o->cert)))
		BIO_read(b, date, sizeof(date) - 1);
	printf("  expires: %s\n", date);
	if (o->cert_category == 2)
		printf("  category: authority\n");
	BIO_free(b);
}

/* An enrollment's objects: searched by its labels, never the whole token. */
static tok_rv enrollment_objects(const conf_enrollment *e, tok_ctx *tok, tok_object **ret,
				 size_t *ret_n)
{
	static const char *const marks[] = {"", AGENT_MARK_NEW, AGENT_MARK_OLD, AGENT_MARK_REPLACED,
						    AGENT_MARK_REVOKED};
	char *labels[5] = {NULL, NULL, NULL, NULL, NULL};
	tok_rv rv = TOK_ERR_NOMEM;
	size_t i;

	for (i = 0; i < 5; i++)
		if ((labels[i] = agent_label_with(e->label, marks[i])) == NULL)
			goto out;
	rv = tok_objects_for(tok, (const char *const *)labels, 5,
			     TOK_FOR_IDS | TOK_FOR_DETAILS | TOK_FOR_CA_CERTS, ret, ret_n);
out:
	for (i = 0; i < 5; i++)
		free(labels[i]);
	return rv;
}

static int class_rank(unsigned long cls)
{
	return cls == TOK_CKO_CERTIFICATE ? 0
	       : cls == TOK_CKO_PUBLIC_KEY ? 1
	       : cls == TOK_CKO_PRIVATE_KEY ? 2
					    : 3;
}

/* By label; under one label certificates, public keys, private keys, then
 * by id: the same token lists the same way every time, whatever order the
 * module finds its objects in. */
static int by_label(const void *pa, const void *pb)
{
	const tok_object *a = pa, *b = pb;
	int c = strcmp(a->label, b->label);

	if (c == 0)
		c = class_rank(a->cls) - class_rank(b->cls);
	if (c == 0 && a->id.len != b->id.len)
		c = a->id.len < b->id.len ? -1 : 1;
	if (c == 0 && a->id.len > 0)
		c = memcmp(a->id.id, b->id.id, a->id.len);
	return c;
}

static void print_text(tok_ctx *tok, const tok_object *objs, size_t n)
{
	char hex[2 * TOK_ID_MAX + 1], safe[1024], shown[4 * 1024];
	const tok_info *info = tok_opened_info(tok);
	size_t i;

	/* Which token this is: where serials repeat (every tpm2-pkcs11 token
	 * of one TPM has 0000000000000000), the label, model and manufacturer
	 * tell it apart, and the URI must name them. */
	agent_token_identity(info->label, info->manufacturer, info->model, info->serial,
			     tok_serial_unique(tok), safe, sizeof(safe));
	printf("token %s\n", agent_escape_shown(safe, shown, sizeof(shown)));
	if (!tok_logged_in(tok))
		printf("(not logged in: private keys are not shown without a PIN)\n");
	for (i = 0; i < n; i++) {
		agent_hex(objs[i].id.id, objs[i].id.len, hex, sizeof(hex));
		/* Labels come from the token, a CA certificate's from the CA's CN. */
		printf("%s \"%s\"\n  id:      %s\n", class_name(objs[i].cls),
		       agent_escape_shown(objs[i].label, safe, sizeof(safe)), hex[0] ? hex : "-");
		if (objs[i].cls == TOK_CKO_CERTIFICATE)
			print_cert(&objs[i]);
		else
			print_key(&objs[i]);
	}
	printf("%zu object%s\n", n, n == 1 ? "" : "s");
}

agent_rc agent_list(const conf_enrollment *e, int named, int json)
{
	tok_ctx *tok = NULL;
	tok_object *objs = NULL;
	size_t n = 0;
	tok_rv rv;
	agent_rc rc;

	/* Private keys are invisible before a login: logged in when there is
	 * a PIN; without one, the public objects, and no PIN try spent. */
	if ((rc = agent_token_open(e, &tok, AGENT_LOGIN_IF_PIN)) != EXIT_OK)
		return rc;
	if ((rv = named && e->label != NULL ? enrollment_objects(e, tok, &objs, &n)
					     : tok_objects(tok, &objs, &n)) != TOK_OK) {
		rc = agent_token_fail(tok, rv, "cannot list the token's objects");
		tok_free(tok);
		return rc;
	}
	if (n > 1)
		qsort(objs, n, sizeof(*objs), by_label);
	if (json && agent_list_json(tok, objs, n) < 0) {
		log_msg(LOG_ERR, "cannot write the listing: out of memory");
		rc = EXIT_INTERNAL;
	} else if (!json) {
		print_text(tok, objs, n);
	}
	tok_objects_free(objs, n);
	tok_free(tok);
	return rc;
}
