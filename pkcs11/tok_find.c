/*
 * tok: object search on the function list of the module instance libp11
 * loaded (C_FindObjects*), and what is built on it: finding an end-entity
 * certificate by label or id, relabelling a key pair with its
 * certificates.  Those two make raw calls on a fresh session every time:
 * libp11's cached lists may not know about objects changed since.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/x509.h>

#include "pkcs11/tok-int.h"

#define CATEGORY_AUTHORITY 2UL

static tok_rv find_fail(tok_ctx *ctx, const char *fn, CK_RV rv)
{
	char what[96];

	snprintf(what, sizeof(what), "%s on token '%s'", fn, ctx->label);
	return tok_fail_ckr(ctx, what, rv, NULL);
}

/*
 * Ends a search.  A search left active makes the session's next search
 * fail (CKR_OPERATION_ACTIVE): when the module would not end it, the
 * shared session is replaced rather than kept in that state.
 */
static CK_RV find_end(tok_ctx *ctx, CK_SESSION_HANDLE s)
{
	CK_RV rv = ctx->f->C_FindObjectsFinal(s);

	if (rv != CKR_OK && s == ctx->anchor)
		tok_anchor_renew(ctx);
	return rv;
}

tok_rv tok_find(tok_ctx *ctx, CK_SESSION_HANDLE s, CK_ATTRIBUTE *tmpl, CK_ULONG ntmpl,
		CK_OBJECT_HANDLE *ret_h, CK_ULONG max, CK_ULONG *ret_n)
{
	CK_RV rv;
	CK_ULONG n = 0;

	rv = ctx->f->C_FindObjectsInit(s, tmpl, ntmpl);
	if (rv != CKR_OK)
		return find_fail(ctx, "C_FindObjectsInit", rv);
	rv = ctx->f->C_FindObjects(s, ret_h, max, &n);
	if (rv != CKR_OK) {
		(void)find_end(ctx, s);
		return find_fail(ctx, "C_FindObjects", rv);
	}
	/* this failure is the one to report */
	if ((rv = find_end(ctx, s)) != CKR_OK)
		return find_fail(ctx, "C_FindObjectsFinal", rv);
	*ret_n = n;
	return TOK_OK;
}

tok_rv tok_find_all(tok_ctx *ctx, CK_SESSION_HANDLE s, CK_ATTRIBUTE *tmpl, CK_ULONG ntmpl,
		    CK_OBJECT_HANDLE **ret_h, CK_ULONG *ret_n)
{
	CK_OBJECT_HANDLE *all = NULL, *tmp, chunk[32];
	CK_ULONG n = 0, got;
	CK_RV rv;

	rv = ctx->f->C_FindObjectsInit(s, tmpl, ntmpl);
	if (rv != CKR_OK)
		return find_fail(ctx, "C_FindObjectsInit", rv);
	do {
		rv = ctx->f->C_FindObjects(s, chunk, 32, &got);
		if (rv != CKR_OK) {
			(void)find_end(ctx, s);
			OPENSSL_free(all);
			return find_fail(ctx, "C_FindObjects", rv);
		}
		if (got == 0)
			break;
		tmp = OPENSSL_realloc(all, (n + got) * sizeof(*all));
		if (tmp == NULL) {
			(void)find_end(ctx, s);
			OPENSSL_free(all);
			return tok_fail(ctx, TOK_ERR_NOMEM, "out of memory");
		}
		all = tmp;
		memcpy(all + n, chunk, got * sizeof(*all));
		n += got;
	} while (got == 32);
	if ((rv = find_end(ctx, s)) != CKR_OK) {
		OPENSSL_free(all);
		return find_fail(ctx, "C_FindObjectsFinal", rv);
	}
	*ret_h = all;
	*ret_n = n;
	return TOK_OK;
}

tok_rv tok_find_by_id(tok_ctx *ctx, CK_SESSION_HANDLE s, const tok_id *id, int with_certs,
		      CK_OBJECT_HANDLE **ret_h, CK_ULONG *ret_n, CK_ULONG *ret_npriv)
{
	static const CK_OBJECT_CLASS order[3] = {CKO_PRIVATE_KEY, CKO_PUBLIC_KEY, CKO_CERTIFICATE};
	CK_ATTRIBUTE tmpl = {CKA_ID, (void *)id->id, id->len};
	CK_OBJECT_HANDLE *hs = NULL, *out;
	CK_OBJECT_CLASS *cls;
	CK_ULONG n = 0, k = 0, j;
	tok_rv rv;
	int i;

	/* One search by id alone, then each object's class: a search costs
	 * in proportion to the token (SoftHSM2 reads every object file), a
	 * class only the object. */
	if ((rv = tok_find_all(ctx, s, &tmpl, 1, &hs, &n)) != TOK_OK)
		return rv;
	if (ret_npriv != NULL)
		*ret_npriv = 0;
	if (n == 0) {
		*ret_h = NULL;
		*ret_n = 0;
		return TOK_OK;
	}
	cls = OPENSSL_malloc(n * sizeof(*cls));
	out = OPENSSL_malloc(n * sizeof(*out));
	if (cls == NULL || out == NULL) {
		rv = tok_fail(ctx, TOK_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (j = 0; j < n; j++) {
		CK_ATTRIBUTE a = {CKA_CLASS, &cls[j], sizeof(cls[j])};
		CK_RV ckr = ctx->f->C_GetAttributeValue(s, hs[j], &a, 1);

		if (ckr == CKR_OBJECT_HANDLE_INVALID) {
			cls[j] = ~(CK_OBJECT_CLASS)0; /* deleted since the search */
		} else if (ckr != CKR_OK) {
			/* A token that cannot say what an object is has not shown
			 * that the key is gone: that failure is the answer. */
			char what[96];

			snprintf(what, sizeof(what), "reading an object's class on token '%s'",
				 ctx->label);
			rv = tok_fail_ckr(ctx, what, ckr, NULL);
			goto out;
		}
	}
	for (i = 0; i < (with_certs ? 3 : 2); i++) {
		for (j = 0; j < n; j++)
			if (cls[j] == order[i])
				out[k++] = hs[j];
		if (i == 0 && ret_npriv != NULL)
			*ret_npriv = k;
	}
	if (k == 0) {
		OPENSSL_free(out);
		out = NULL;
	}
	*ret_h = out;
	*ret_n = k;
	out = NULL;
out:
	OPENSSL_free(out);
	OPENSSL_free(cls);
	OPENSSL_free(hs);
	return rv;
}

/* "label 'x'", "id 0a0b", or "label 'x' and id 0a0b", for messages. */
static void describe(char *buf, size_t size, const char *label, const tok_id *id)
{
	char hex[2 * TOK_ID_MAX + 1];

	if (label != NULL && id != NULL)
		snprintf(buf, size, "label '%.64s' and id %s", label,
			 tok_id_hex(id, hex, sizeof(hex)));
	else if (label != NULL)
		snprintf(buf, size, "label '%.64s'", label);
	else
		snprintf(buf, size, "id %s", tok_id_hex(id, hex, sizeof(hex)));
}

tok_rv tok_find_cert(tok_ctx *ctx, const char *label, const tok_id *id, tok_id *ret_id,
		     X509 **ret_cert)
{
	static const CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
	CK_ATTRIBUTE tmpl[3] = {{CKA_CLASS, (void *)&cls, sizeof(cls)}};
	/* per candidate, in one read: category, id, value */
	tok_attr_val a[3] = {{CKA_CERTIFICATE_CATEGORY, NULL, 0}, {CKA_ID, NULL, 0},
			     {CKA_VALUE, NULL, 0}};
	tok_attr_val found[3] = {{0, NULL, 0}, {0, NULL, 0}, {0, NULL, 0}};
	CK_ULONG nt = 1, n = 0, i, ul;
	CK_OBJECT_HANDLE *hs = NULL;
	CK_SESSION_HANDLE s;
	const unsigned char *p;
	char sel[200], ids[300] = "", hex[2 * TOK_ID_MAX + 1], what[320];
	size_t matches = 0;
	tok_id fid;
	X509 *cert = NULL;
	tok_rv rv;
	CK_RV ckr;

	if (ctx == NULL || (label == NULL && id == NULL) || (id != NULL && id->len > TOK_ID_MAX))
		return TOK_ERR_CONFIG;
	tok_clear_err(ctx);
	if (label != NULL) {
		tmpl[nt].type = CKA_LABEL;
		tmpl[nt].pValue = (void *)label;
		tmpl[nt].ulValueLen = strlen(label);
		nt++;
	}
	if (id != NULL) {
		tmpl[nt].type = CKA_ID;
		tmpl[nt].pValue = (void *)id->id;
		tmpl[nt].ulValueLen = id->len;
		nt++;
	}
	describe(sel, sizeof(sel), label, id);
	if ((rv = tok_session_open(ctx, 0, &s)) != TOK_OK)
		return rv;
	if ((rv = tok_find_all(ctx, s, tmpl, nt, &hs, &n)) != TOK_OK)
		goto out;
	for (i = 0; i < n; i++) {
		if ((ckr = tok_attrs_read(ctx, s, hs[i], a, 3)) != CKR_OK) {
			if (ckr == CKR_OBJECT_HANDLE_INVALID)
				continue; /* deleted since the search */
			snprintf(what, sizeof(what), "reading the certificate with %s on token '%s'",
				 sel, ctx->label);
			rv = tok_fail_ckr(ctx, what, ckr, NULL);
			goto out;
		}
		/* CA certificates stored next to the enrollment are not it. */
		if (tok_attr_val_ulong(&a[0], &ul) == 0 && ul == CATEGORY_AUTHORITY) {
			tok_attrs_free(a, 3);
			continue;
		}
		matches++;
		if (a[1].v != NULL && a[1].len <= TOK_ID_MAX &&
		    strlen(ids) + 2 * a[1].len + 3 < sizeof(ids)) {
			memcpy(fid.id, a[1].v, a[1].len);
			fid.len = a[1].len;
			if (ids[0] != '\0')
				strncat(ids, ", ", sizeof(ids) - strlen(ids) - 1);
			strncat(ids, fid.len > 0 ? tok_id_hex(&fid, hex, sizeof(hex)) : "(no id)",
				sizeof(ids) - strlen(ids) - 1);
		}
		tok_attrs_free(found, 3);
		memcpy(found, a, sizeof(found)); /* the values move to found */
		for (ul = 0; ul < 3; ul++)
			a[ul].v = NULL;
	}
	if (matches == 0) {
		rv = tok_fail(ctx, TOK_ERR_NOT_FOUND,
			      "finding a certificate with %s on token '%s' failed: there is none: "
			      "list the token's objects to see which certificates exist",
			      sel, ctx->label);
		goto out;
	}
	if (matches > 1) {
		rv = tok_fail(ctx, TOK_ERR_AMBIGUOUS,
			      "finding a certificate with %s on token '%s' failed: %zu "
			      "certificates match (ids %s): give each enrollment its own label",
			      sel, ctx->label, matches, ids);
		goto out;
	}
	p = found[2].v;
	if (found[2].v != NULL && found[2].len > 0)
		cert = d2i_X509(NULL, &p, (long)found[2].len);
	if (cert == NULL || p != found[2].v + found[2].len) {
		rv = tok_fail(ctx, TOK_ERR_DEVICE,
			      "reading the certificate with %s on token '%s' failed: it is not a "
			      "valid X.509 certificate: delete the object and enroll again",
			      sel, ctx->label);
		goto out;
	}
	if (found[1].v == NULL || found[1].len > TOK_ID_MAX) {
		rv = tok_fail(ctx, TOK_ERR_DEVICE,
			      "reading the CKA_ID of the certificate with %s on token '%s' failed: "
			      "it has none, or one longer than %d bytes: delete the object and "
			      "enroll again",
			      sel, ctx->label, TOK_ID_MAX);
		goto out;
	}
	memset(&fid, 0, sizeof(fid));
	memcpy(fid.id, found[1].v, found[1].len);
	fid.len = found[1].len;
	if (ret_id != NULL)
		*ret_id = fid;
	if (ret_cert != NULL) {
		*ret_cert = cert;
		cert = NULL;
	}
	rv = TOK_OK;
out:
	X509_free(cert);
	tok_attrs_free(a, 3);
	tok_attrs_free(found, 3);
	OPENSSL_free(hs);
	tok_session_close(ctx, s);
	return rv;
}

/* One object whose label is being changed, with its label before. */
struct relabelled {
	CK_OBJECT_HANDLE h;
	unsigned char *old;
	CK_ULONG old_len;
};

tok_rv tok_relabel(tok_ctx *ctx, const tok_id *id, const char *label)
{
	CK_ATTRIBUTE set = {CKA_LABEL, NULL, 0};
	CK_OBJECT_HANDLE *hs = NULL;
	CK_ULONG total = 0, m;
	CK_SESSION_HANDLE s;
	struct relabelled *done = NULL;
	char what[96], hex[2 * TOK_ID_MAX + 1];
	tok_rv rv = TOK_OK;
	CK_RV ckr;

	if (ctx == NULL || id == NULL || label == NULL || id->len == 0 || id->len > TOK_ID_MAX)
		return TOK_ERR_CONFIG;
	tok_clear_err(ctx);
	if (!ctx->logged_in)
		return tok_need_login(ctx, "relabelling a key");
	set.pValue = (void *)label;
	set.ulValueLen = strlen(label);
	if ((rv = tok_session_open(ctx, 1, &s)) != TOK_OK)
		return rv;
	if (tok_made_is(ctx, id) && ctx->made.cert != CK_INVALID_HANDLE) {
		/* the pair this context made and certified: its three objects */
		if ((hs = OPENSSL_malloc(3 * sizeof(*hs))) == NULL) {
			rv = tok_fail(ctx, TOK_ERR_NOMEM, "out of memory");
			goto out;
		}
		hs[0] = ctx->made.priv;
		hs[1] = ctx->made.pub;
		hs[2] = ctx->made.cert;
		total = 3;
	} else if ((rv = tok_find_by_id(ctx, s, id, 1, &hs, &total, NULL)) != TOK_OK) {
		goto out;
	}
	if (total == 0) {
		rv = tok_fail(ctx, TOK_ERR_NOT_FOUND,
			      "relabelling key %s on token '%s' failed: no object has this id: "
			      "list the token's objects to see which keys exist",
			      tok_id_hex(id, hex, sizeof(hex)), ctx->label);
		goto out;
	}
	if ((done = OPENSSL_zalloc(total * sizeof(*done))) == NULL) {
		rv = tok_fail(ctx, TOK_ERR_NOMEM, "out of memory");
		goto out;
	}
	/* Old labels first, so that a failure half-way can put them back. */
	for (m = 0; m < total; m++) {
		done[m].h = hs[m];
		if (tok_attr_get(ctx, s, hs[m], CKA_LABEL, &done[m].old, &done[m].old_len) != CKR_OK)
			done[m].old_len = 0;
	}
	for (m = 0; m < total; m++) {
		ckr = ctx->f->C_SetAttributeValue(s, done[m].h, &set, 1);
		if (ckr != CKR_OK) {
			CK_ULONG r;

			snprintf(what, sizeof(what), "C_SetAttributeValue(CKA_LABEL) on token '%s'",
				 ctx->label);
			rv = tok_fail_ckr(ctx, what, ckr, NULL);
			for (r = 0; r < m; r++) {
				CK_ATTRIBUTE back = {CKA_LABEL, done[r].old, done[r].old_len};

				ctx->f->C_SetAttributeValue(s, done[r].h, &back, 1);
			}
			break;
		}
	}
out:
	if (done != NULL)
		for (m = 0; m < total; m++)
			OPENSSL_free(done[m].old);
	OPENSSL_free(done);
	OPENSSL_free(hs);
	tok_session_close(ctx, s);
	return rv;
}
