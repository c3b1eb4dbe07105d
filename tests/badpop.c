/*
 * A CMP client whose proof-of-possession signature is wrong: the key
 * signs a different digest from the one the request asks for.  The CA
 * must reject the request (badPOP).  With --good it signs honestly, which
 * shows that the rejection comes from the POP and nothing else.
 *
 * usage: badpop [--good] URL REFERENCE SECRET-FILE TRUSTED-PEM
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <openssl/ec.h>
#include <openssl/evp.h>

#include "cmp/cmpc.h"

static int (*orig_sign)(int type, const unsigned char *dgst, int dlen, unsigned char *sig,
			unsigned int *siglen, const BIGNUM *kinv, const BIGNUM *r, EC_KEY *eckey);

static EC_KEY_METHOD *meth;

static int lying_sign(int type, const unsigned char *dgst, int dlen, unsigned char *sig,
		      unsigned int *siglen, const BIGNUM *kinv, const BIGNUM *r, EC_KEY *eckey)
{
	unsigned char other[EVP_MAX_MD_SIZE];

	if (dlen <= 0 || dlen > (int)sizeof(other))
		return 0;
	memcpy(other, dgst, (size_t)dlen);
	other[0] ^= 0x01;
	return orig_sign(type, other, dlen, sig, siglen, kinv, r, eckey);
}

static EVP_PKEY *make_key(int lie)
{
	EC_KEY *ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
	EVP_PKEY *pkey = EVP_PKEY_new();

	if (ec == NULL || pkey == NULL || !EC_KEY_generate_key(ec))
		goto fail;
	if (lie) {
		int (*sign_setup)(EC_KEY *, BN_CTX *, BIGNUM **, BIGNUM **);
		ECDSA_SIG *(*sign_sig)(const unsigned char *, int, const BIGNUM *, const BIGNUM *,
				       EC_KEY *);

		/* A key with its own method is "foreign": OpenSSL signs through it. */
		meth = EC_KEY_METHOD_new(EC_KEY_OpenSSL());
		if (meth == NULL)
			goto fail;
		EC_KEY_METHOD_get_sign(EC_KEY_OpenSSL(), &orig_sign, &sign_setup, &sign_sig);
		EC_KEY_METHOD_set_sign(meth, lying_sign, sign_setup, sign_sig);
		if (!EC_KEY_set_method(ec, meth))
			goto fail;
	}
	if (!EVP_PKEY_assign_EC_KEY(pkey, ec))
		goto fail;
	return pkey;
fail:
	EC_KEY_free(ec);
	EVP_PKEY_free(pkey);
	return NULL;
}

int main(int argc, char **argv)
{
	int good = argc > 1 && strcmp(argv[1], "--good") == 0;
	unsigned char secret[256];
	size_t slen;
	FILE *f;
	cmpc_ctx *ctx;
	EVP_PKEY *key;
	X509 *cert = NULL;
	STACK_OF(X509) *cas = NULL;
	X509_NAME *subj = X509_NAME_new();
	cmpc_rv rv;

	argv += good;
	argc -= good;
	if (argc != 5) {
		fprintf(stderr, "usage: badpop [--good] URL REFERENCE SECRET-FILE TRUSTED-PEM\n");
		return 2;
	}
	if ((f = fopen(argv[3], "r")) == NULL)
		return 2;
	slen = fread(secret, 1, sizeof(secret), f);
	fclose(f);
	while (slen > 0 && secret[slen - 1] == '\n')
		slen--;
	if (cmpc_global_init() < 0 || (ctx = cmpc_new()) == NULL || (key = make_key(!good)) == NULL)
		return 2;
	X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_ASC, (const unsigned char *)"badpop", -1,
				   -1, 0);
	if (cmpc_set1_server(ctx, argv[1]) != CMPC_OK ||
	    cmpc_set1_pbm(ctx, (unsigned char *)argv[2], strlen(argv[2]), secret, slen) !=
		    CMPC_OK ||
	    cmpc_load_trusted(ctx, argv[4]) != CMPC_OK || cmpc_set1_subject(ctx, subj) != CMPC_OK) {
		fprintf(stderr, "setup: %s\n", cmpc_errmsg(ctx));
		return 2;
	}
	rv = cmpc_ir(ctx, key, &cert, &cas);
	printf("%s\n%s\n", cmpc_strerror(rv), cmpc_errmsg(ctx));
	X509_free(cert);
	sk_X509_pop_free(cas, X509_free);
	X509_NAME_free(subj);
	EVP_PKEY_free(key);
	if (meth != NULL) /* not reference-counted: after the key; free(NULL) crashes */
		EC_KEY_METHOD_free(meth);
	cmpc_free(ctx);
	cmpc_global_cleanup();
	return rv == CMPC_OK ? 0 : rv == CMPC_ERR_REJECTED ? 3 : 1;
}
