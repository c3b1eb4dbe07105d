/*
 * cmpc layer-private declarations: the context and what the files of the
 * layer share.  Not for use outside cmp/.
 */
#ifndef P11ENROLL_CMPC_INT_H
#define P11ENROLL_CMPC_INT_H

#include <curl/curl.h>
#include <openssl/cmp.h>
#include <stddef.h>
#include <time.h>

#include "cmp/cmpc.h"

#define CMPC_ERRMSG_LEN 2048

#if defined(__GNUC__)
#define CMPC_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define CMPC_PRINTF(fmt, args)
#endif

struct cmpc_ctx {
	OSSL_CMP_CTX *cmp; /* holds reference value, secret, subject, options */
	CURL *curl;	   /* one per context: keeps the connection between messages */
	struct curl_slist *headers;
	char curl_err[CURL_ERROR_SIZE];

	char *url;
	char *tls_cafile; /* NULL: libcurl's default (system) store */
	X509 *tls_cert;	  /* TLS client authentication (cmpc_set1_tls_client) */
	EVP_PKEY *tls_key;
	STACK_OF(X509) *tls_chain;
	long connect_s, msg_s, total_s;
	size_t max_response;

	int have_pbm;
	STACK_OF(X509) *anchors; /* from cmpc_load_trusted, never given to OpenSSL */
	X509_NAME *subject;	  /* requested subject, checked in certConf */
	GENERAL_NAMES *sans;

	cmpc_log_fn log_fn;
	void *log_arg;
	cmpc_accept_fn accept_fn;
	void *accept_arg;
	char errmsg[CMPC_ERRMSG_LEN];

	/* certreq/signer: signature protection, PBM parameters, header fields. */
	X509 *signer_cert; /* set: requests are signed, no secret in cmp */
	EVP_PKEY *signer_key;
	unsigned char *pbm_secret; /* copy for re-protection; wiped when dropped */
	size_t pbm_secret_len;
	int pbm_owf, pbm_mac, pbm_iter; /* NIDs and iteration count of outgoing PBM */
	X509_NAME *expected_sender;    /* responses must name it; NULL: any */
	X509_NAME *sender;		/* PBM mode only: put into the header */
	char *cert_profile;		/* id-it-certProfile in generalInfo, or NULL */
	int unprotected_errors;
	struct {
		X509_NAME *want_subject;  /* expected subject of the new certificate */
		GENERAL_NAMES *want_sans; /* expected SANs (NULL: not checked) */
		int rsp_unprotected;	  /* the last response carried no protection */
	} cr;

	/* State of one exchange (cmpc_ir), reset at its start. */
	struct {
		time_t deadline; /* 0: none */
		EVP_PKEY *key;	 /* borrowed for the duration of cmpc_ir */
		cmpc_rv rv;	 /* first failure the transfer callback saw */
		int total_timeout_hit;
		char msg[1024];
		int cert_rejected; /* the certConf callback refused the certificate */
		char ossl_note[256]; /* OpenSSL's last warning in this exchange */
		int certconf_sent;
		char cert_msg[1024];
		STACK_OF(X509) *chain; /* verified chain, leaf first, anchor last */
		unsigned char *rbuf;	/* response body */
		size_t rlen, rcap;
		int overflow;
		/* TLS of the current transfer, for the failure message */
		int tls_cert_requested; /* the server sent a CertificateRequest */
		char tls_alert[96];	/* fatal alert the server sent, or "" */
	} x;
};

/* Formats into ctx->errmsg (overwrites). */
void cmpc_seterr(cmpc_ctx *ctx, const char *fmt, ...) CMPC_PRINTF(2, 3);

/* Sends msg to the log callback, if any; level is a syslog LOG_* value. */
void cmpc_log(cmpc_ctx *ctx, int level, const char *fmt, ...) CMPC_PRINTF(3, 4);

/* OpenSSL's CMP log callback has no argument: the context whose exchange
 * runs on this thread is found here. */
void cmpc_log_enter(cmpc_ctx *ctx);
void cmpc_log_leave(void);
int cmpc_ossl_log_cb(const char *func, const char *file, int line, OSSL_CMP_severity level,
		     const char *msg);

/* cmpc_http.c: configures the curl handle for an exchange, and the
 * OSSL_CMP_transfer_cb_t that posts one message. */
cmpc_rv cmpc_http_prepare(cmpc_ctx *ctx);
OSSL_CMP_MSG *cmpc_http_transfer(OSSL_CMP_CTX *cmp, const OSSL_CMP_MSG *req);
void cmpc_http_free(cmpc_ctx *ctx);

/* cmpc_pbm.c: re-protects a PBM-protected request (DER, replaced in place)
 * with the context's PBM parameters and sender; a message not protected by
 * PBM is left as it is.  0 on failure. */
int cmpc_pbm_reprotect(cmpc_ctx *ctx, unsigned char **der, int *derlen);
/* 1: the PKIMessage carries protection, 0: it does not, -1: undecodable. */
int cmpc_pbm_msg_protected(const unsigned char *der, size_t len);
/* 1 when the message's sender is the directoryName expected, else 0 with
 * the sender it names in actual (OpenSSL 3.0 only logs this mismatch). */
int cmpc_msg_check_sender(const unsigned char *der, size_t len, const X509_NAME *expected,
			  char *actual, size_t actual_len);

/* cmpc_verify.c: the certConf callback (arg: the cmpc_ctx). */
int cmpc_certconf_cb(OSSL_CMP_CTX *cmp, X509 *cert, int fail_info, const char **txt);
/* CA certificates of the verified chain (issuer first, up to the anchor);
 * caPubs off that chain are left out.  NULL on allocation failure. */
STACK_OF(X509) *cmpc_ca_certs(cmpc_ctx *ctx);
/* Trust anchors as a fresh store (NULL on allocation failure). */
X509_STORE *cmpc_anchor_store(const cmpc_ctx *ctx);

/* cmpc_err.c: after OSSL_CMP_exec_* failed, turns what the transfer and
 * certConf callbacks recorded, the PKIStatus and the OpenSSL error queue
 * into a cmpc_rv and ctx->errmsg.  what: "CMP ir", for the message. */
cmpc_rv cmpc_classify_failure(cmpc_ctx *ctx, const char *what);
/* The OpenSSL error queue as "reason (data); reason ...", emptied. */
void cmpc_ossl_errors(char *buf, size_t len);

/* ---- rr/genm (cmpc_rr.c, cmpc_genm.c) ---- */
/* cmpc_genm.c: set up and end an exchange that carries no new key (rr,
 * genm): checks URL and protection, fresh trust store from the anchors,
 * timeouts, curl handle, deadline.  what: "CMP rr", for the message. */
cmpc_rv cmpc_xchg_begin(cmpc_ctx *ctx, const char *what);
void cmpc_xchg_end(cmpc_ctx *ctx);

#endif
