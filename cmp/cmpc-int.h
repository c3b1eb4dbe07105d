/*
 * cmpc layer-private declarations: the context and what the files of the
 * layer share.  Not for use outside cmp/.
 */
#ifndef P11ENROLL_CMPC_INT_H
#define P11ENROLL_CMPC_INT_H

#include <curl/curl.h>
#include <openssl/asn1t.h>
#include <openssl/cmp.h>
#include <stddef.h>
#include <time.h>

#include "cmp/cmpc.h"

/* A message travels whole to the agent (its AGENT_ERROR_MAX): the CA's
 * own text in it is bounded by CMPC_CA_TEXT_MAX, so that the hint after
 * it stays. */
#define CMPC_ERRMSG_LEN 4096
#define CMPC_CA_TEXT_MAX 3072
#define CMPC_CUT_MARK " [cut: the CA's text is longer]"


/* What a response says of its transaction: the transactionID and the
 * senderNonce that the next request's recipNonce must carry. */
typedef struct {
	unsigned char tid[CMPC_ID_MAX], nonce[CMPC_ID_MAX];
	size_t tid_len, nonce_len;
} cmpc_ids;

struct cmpc_ctx {
	OSSL_CMP_CTX *cmp; /* holds reference value, secret, subject, options */
	CURL *curl;	   /* one per context: keeps the connection between messages */
	/* OpenSSL's transfer callback, also called for the layer's own
	 * messages: cmpc_msg_transfer (the fuzz harness puts its own). */
	OSSL_CMP_transfer_cb_t msg_transfer;
	/* The transport it hands the bytes to (cmpc_set_transfer_cb). */
	cmpc_transfer_fn transfer_fn;
	void *transfer_arg;
	struct curl_slist *headers;
	char curl_err[CURL_ERROR_SIZE];

	char *url;
	char *tls_cafile; /* NULL: libcurl's default (system) store */
	char *proxy, *no_proxy; /* NULL: libcurl's environment */
	X509 *tls_cert;	  /* TLS client authentication (cmpc_set1_tls_client) */
	EVP_PKEY *tls_key;
	STACK_OF(X509) *tls_chain;
	long connect_s, msg_s, total_s;
	size_t max_response;

	int have_pbm;
	STACK_OF(X509) *anchors; /* from cmpc_load_trusted, never given to OpenSSL */
	char *anchors_path, *srv_anchors_path; /* the files they came from */
	/* Who may sign responses (RFC 9483 3.5, RFC 9480 2.10): anchors for
	 * their path (NULL: anchors), a pinned certificate, or anyone. */
	STACK_OF(X509) *srv_anchors;
	X509 *srv_cert;
	int any_signer;
	X509_NAME *subject;	  /* requested subject, checked in certConf */
	GENERAL_NAMES *sans;
	STACK_OF(X509_EXTENSION) *req_exts; /* requested besides the SANs */
	int days;			    /* requested validity, 0: none */

	cmpc_log_fn log_fn;
	void *log_arg;
	cmpc_accept_fn accept_fn;
	void *accept_arg;
	char errmsg[CMPC_ERRMSG_LEN];

	/* certreq/signer: signature protection, PBM parameters, header fields. */
	X509 *signer_cert; /* set: requests are signed, no secret in cmp */
	/* cmpc_set1_archive: the PKIArchiveOptions (DER) for the next ir/cr/kur */
	unsigned char *archive_der;
	int archive_len;
	EVP_PKEY *signer_key;
	unsigned char *pbm_secret; /* copy for re-protection; wiped when dropped */
	size_t pbm_secret_len;
	int pbm_owf, pbm_mac, pbm_iter; /* NIDs and iteration count of outgoing PBM */
	/* cmpc_pbm.c: the PBMParameter (DER) of outgoing messages and the key
	 * derived with it, made once per secret and parameters; wiped */
	unsigned char *pbm_param;
	int pbm_param_len;
	unsigned char pbm_key[EVP_MAX_MD_SIZE];
	unsigned int pbm_key_len;
	X509_NAME *expected_sender;    /* responses must name it; NULL: any */
	X509_NAME *sender;		/* PBM mode only: put into the header */
	X509_NAME *recipient;		/* as given to OpenSSL, for messages built here */
	cmpc_pending_fn pending_fn;
	void *pending_arg;
	cmpc_wait_fn wait_fn;
	void *wait_arg;
	char last_tid[2 * CMPC_ID_MAX + 1]; /* hex transactionID of the last message sent */
	int left_open;	/* the last certificate request failed, the transaction goes on */
	int rr_fail_info; /* failInfo bits of the last rr the CA rejected, else 0 */
	/* cmpc_set_stored_answer: the next rr or genm reads this stored
	 * message's answer instead of sending */
	cmpc_pending stored_ans;
	int have_stored_ans;
	/* the last message was saved as stored, and then not stored */
	int store_failed;
	/* the ids of the message the last exchange stored (cmpc_stored_ids) */
	cmpc_ids last_stored;
	int have_last_stored;
	/* the last certificate request's rejection by the CA (verified):
	 * rejected 1 and its failInfo bits (cmpc_rejection()) */
	int rejected, rej_fail_info;
	char *cert_profile;		/* id-it-certProfile in generalInfo, or NULL */
	int unprotected_errors;
	struct {
		X509_NAME *want_subject;  /* expected subject of the new certificate */
		GENERAL_NAMES *want_sans; /* expected SANs (NULL: not checked) */
		int rsp_unprotected;	  /* the last response carried no protection */
	} cr;

	/* State of one exchange (a certificate request, rr, genm or a poll),
	 * reset at its start (cmpc_x_reset). */
	struct {
		/* cmpc_now_ms() by which the exchange must end (0: none):
		 * monotonic and in milliseconds, so a total timeout of N s
		 * is N s, not up to one second less (time(NULL) + N). */
		long long deadline_ms;
		EVP_PKEY *key;	 /* a certificate request's new key, borrowed for it */
		cmpc_rv rv;	 /* first failure the transfer callback saw */
		int total_timeout_hit;
		/* cmpc_classify_failure: the last answer failed the checks
		 * that make it the CA's (protection, signer, transactionID,
		 * nonce), so anyone on the path may have sent it. */
		int unverified;
		char msg[1024];
		int cert_rejected; /* the certConf callback refused the certificate */
		char ossl_note[256]; /* OpenSSL's last warning in this exchange */
		int certconf_sent;
		char cert_msg[1024];
		STACK_OF(X509) *chain; /* verified chain, leaf first, anchor last */
		/* The message in transfer: "sending the ir to URL", for
		 * messages; its body type; its time limit in whole seconds,
		 * and whether that is what was left of the total timeout. */
		char what[256];
		int req_type;
		long limit_s;
		int by_total;
		unsigned char *rbuf;	/* response body */
		size_t rlen, rcap;
		int overflow;  /* cmpc_transfer_write refused: past the size limit */
		int write_oom; /* cmpc_transfer_write refused: out of memory */
		/* TLS of the current transfer, for the failure message */
		int tls_cert_requested; /* the server sent a CertificateRequest */
		char tls_alert[96];	/* fatal alert the server sent, or "" */
		/* transactionID and senderNonce of the last response received */
		cmpc_ids rsp;
		/* The same of the last verified "waiting": OpenSSL sends a
		 * pollReq only after one, so they are taken then.  What
		 * continues the transaction when a later answer is forged. */
		cmpc_ids wait;
		/* cmpc_resume: the CA's final answer, handed to OpenSSL as the
		 * response to the request it makes (and that is not sent) */
		OSSL_CMP_MSG *replay;
		/* cmpc_transfer_stored: the message went out, its answer
		 * comes later; its body type, transactionID and senderNonce */
		int stored, stored_type;
		int fetching; /* cmpc_fetch_answer: the transport reads an answer */
		cmpc_ids stored_ids;
		/* the certificate request under way (CMPC_REQ_* + 1), 0: none */
		int cr_type;
		/* cmpc_transfer_storing was called for the current message */
		int presaved;
		/* The signer of the last response that verified, and why it may
		 * speak for the CA (CMPC_SIGNER_*); a CA certificate must also
		 * be the issuer of the certificate concerned. */
		X509 *signer;
		int signer_kind;
		X509 *issued_by_signer; /* borrowed: rr's certificate, or NULL */
		char signer_msg[1024];	/* why the last candidate signer was refused */
		cmpc_wait wait_now;	/* what the wait callback is told */
		char wait_what[64];
		int stopped; /* the wait callback asked to stop */
		/* cmpc_central: an answer with an EnvelopedData private key is
		 * read (cmpc_own_validate); own_verified: its protection was
		 * verified there, not by OpenSSL */
		int own_enveloped, own_verified;
	} x;
};


/* Frees what one exchange holds and zeroes ctx->x. */
void cmpc_x_reset(cmpc_ctx *ctx);

/* Formats into ctx->errmsg (overwrites). */
void cmpc_seterr(cmpc_ctx *ctx, const char *fmt, ...) CMPC_PRINTF(2, 3);
/* s, cut by snprintf at size - 1 bytes, ends at a whole UTF-8 character
 * followed by mark (of at most size / 2 bytes). */
void cmpc_mark_cut(char *s, size_t size, const char *mark);

/* Sends msg to the log callback, if any; level is a syslog LOG_* value. */
void cmpc_log(cmpc_ctx *ctx, int level, const char *fmt, ...) CMPC_PRINTF(3, 4);

/* OpenSSL's CMP log callback has no argument: the context whose exchange
 * runs on this thread is found here. */
void cmpc_log_enter(cmpc_ctx *ctx);
void cmpc_log_leave(void);
int cmpc_ossl_log_cb(const char *func, const char *file, int line, OSSL_CMP_severity level,
		     const char *msg);

/* cmpc_transfer.c: the OSSL_CMP_transfer_cb_t that sends one message
 * through the transfer function (ctx->transfer_fn). */
OSSL_CMP_MSG *cmpc_msg_transfer(OSSL_CMP_CTX *cmp, const OSSL_CMP_MSG *req);
/* Replaces cmpc_msg_transfer, for OpenSSL's messages and the layer's own
 * (pollReq, abandoning error): the fuzz harness feeds recorded responses
 * without re-protecting each request. */
int cmpc_set_msg_transfer(cmpc_ctx *ctx, OSSL_CMP_transfer_cb_t cb);
/* Before an exchange: what the transport takes from the context (the
 * curl handle's options for HTTP); CMPC_OK or the failure in errmsg. */
cmpc_rv cmpc_transfer_prepare(cmpc_ctx *ctx);
/* The response body received into ctx->x.rbuf as one PKIMessage, with what
 * every response gets before OpenSSL sees it: whether it is protected, its
 * transactionID and senderNonce noted, the expected sender checked.  NULL
 * with the failure recorded (ctx->x.rv, ctx->x.msg).  what: for messages. */
OSSL_CMP_MSG *cmpc_msg_response(cmpc_ctx *ctx, const char *what);
/* Records the first failure of the exchange (ctx->x.rv, ctx->x.msg, as
 * given: no prefix) and returns rv; later ones are consequences. */
cmpc_rv cmpc_xfer_fail(cmpc_ctx *ctx, cmpc_rv rv, const char *fmt, ...) CMPC_PRINTF(3, 4);

/* cmpc_http.c: the default transport.  Configures the curl handle for an
 * exchange, posts one message, frees the handle. */
cmpc_rv cmpc_http_prepare(cmpc_ctx *ctx);
cmpc_rv cmpc_http_transfer(cmpc_ctx *ctx, const unsigned char *req, size_t req_len,
			   long timeout_ms, void *arg);
void cmpc_http_free(cmpc_ctx *ctx);

/* cmpc_tcp.c: CMP over TCP (tcp://host[:port], RFC 2510 5.2 and the
 * drafts' version 10 framing), the transport of tcp:// URLs. */
enum {
	CMPC_TCP_PKIREQ = 0,
	CMPC_TCP_POLLREP = 1,
	CMPC_TCP_POLLREQ = 2,
	CMPC_TCP_FINREP = 3,
	CMPC_TCP_PARTIALMSGREP = 4,
	CMPC_TCP_FINALMSGREP = 5,
	CMPC_TCP_ERRORMSGREP = 6,
	CMPC_TCP_VERSION = 10,
};
typedef struct {
	int version; /* 10, or 0 for RFC 2510's form */
	int flags, type;
	size_t size; /* the whole frame, length field included; 0: not known yet */
	const unsigned char *value;
	size_t value_len;
	unsigned long poll_ref, check_after; /* pollRep, pollReq, partialMsgRep */
} cmpc_tcp_frame;
int cmpc_is_tcp_url(const char *url);
/* One frame at the start of b[0..n): 1 parsed (*f points into b), 0 more
 * bytes needed (f->size: the whole frame, once known), -1 not a frame,
 * -2 longer than max (the octets after the length field); why says it. */
int cmpc_tcp_frame_parse(const unsigned char *b, size_t n, size_t max, cmpc_tcp_frame *f,
			 char *why, size_t whylen);
/* An errorMsgRep's text, printable ASCII only; its length. */
size_t cmpc_tcp_error_text(const cmpc_tcp_frame *f, char *out, size_t outlen);
const char *cmpc_tcp_type_name(int type);
cmpc_rv cmpc_tcp_prepare(cmpc_ctx *ctx);
cmpc_rv cmpc_tcp_transfer(cmpc_ctx *ctx, const unsigned char *req, size_t req_len,
			  long timeout_ms, void *arg);

/* cmpc_asn1.c: templates for what OpenSSL 3.0 keeps private. */
typedef struct {
	ASN1_INTEGER *pvno;
	GENERAL_NAME *sender;
	GENERAL_NAME *recipient;
	ASN1_GENERALIZEDTIME *messageTime;
	X509_ALGOR *protectionAlg;
	ASN1_OCTET_STRING *senderKID;
	ASN1_OCTET_STRING *recipKID;
	ASN1_OCTET_STRING *transactionID;
	ASN1_OCTET_STRING *senderNonce;
	ASN1_OCTET_STRING *recipNonce;
	STACK_OF(ASN1_UTF8STRING) *freeText;
	STACK_OF(ASN1_TYPE) *generalInfo;
} CMPC_HDR;
DECLARE_ASN1_ITEM(CMPC_HDR)

typedef struct {
	CMPC_HDR *header;
	ASN1_TYPE *body; /* a context-tagged CHOICE, kept encoded (V_ASN1_OTHER) */
	ASN1_BIT_STRING *protection;
	STACK_OF(X509) *extraCerts;
} CMPC_PKIMSG;
DECLARE_ASN1_ITEM(CMPC_PKIMSG)

/* A PKIMessage read for its header only: the body and the extraCerts stay
 * encoded (CMPC_PKIMSG decodes the certificates, which costs OpenSSL 3.0's
 * decoders for each public key). */
typedef struct {
	CMPC_HDR *header;
	ASN1_TYPE *body;
	ASN1_BIT_STRING *protection;
	STACK_OF(ASN1_TYPE) *extraCerts;
} CMPC_PKIMSG_HEAD;
DECLARE_ASN1_ITEM(CMPC_PKIMSG_HEAD)

/* PBMParameter (RFC 4211 4.4) as this layer writes it */
typedef struct {
	ASN1_OCTET_STRING *salt;
	X509_ALGOR *owf;
	ASN1_INTEGER *iterationCount;
	X509_ALGOR *mac;
} CMPC_PBMP;
DECLARE_ASN1_ITEM(CMPC_PBMP)

/* ProtectedPart ::= SEQUENCE { header PKIHeader, body PKIBody } */
typedef struct {
	CMPC_HDR *header;
	ASN1_TYPE *body;
} CMPC_PROTPART;
DECLARE_ASN1_ITEM(CMPC_PROTPART)

typedef struct {
	ASN1_INTEGER *certReqId;
} CMPC_POLLREQ;
DECLARE_ASN1_ITEM(CMPC_POLLREQ)
DEFINE_STACK_OF(CMPC_POLLREQ)

typedef struct {
	ASN1_INTEGER *certReqId;
	ASN1_INTEGER *checkAfter;
	STACK_OF(ASN1_UTF8STRING) *reason;
} CMPC_POLLREP;
DECLARE_ASN1_ITEM(CMPC_POLLREP)
DEFINE_STACK_OF(CMPC_POLLREP)

typedef struct {
	OSSL_CMP_PKISI *status;
	ASN1_INTEGER *errorCode;
	STACK_OF(ASN1_UTF8STRING) *errorDetails;
} CMPC_ERRMSG;
DECLARE_ASN1_ITEM(CMPC_ERRMSG)

/* PKIBody choice numbers (RFC 4210 5.1.2); OpenSSL 3.0 keeps its names private. */
enum {
	CMPC_BODY_IR = 0,
	CMPC_BODY_IP = 1,
	CMPC_BODY_CR = 2,
	CMPC_BODY_CP = 3,
	CMPC_BODY_P10CR = 4,
	CMPC_BODY_KUR = 7,
	CMPC_BODY_KUP = 8,
	CMPC_BODY_KRR = 9,
	CMPC_BODY_KRP = 10,
	CMPC_BODY_RR = 11,
	CMPC_BODY_RP = 12,
	CMPC_BODY_CCR = 13,
	CMPC_BODY_CCP = 14,
	CMPC_BODY_PKICONF = 19,
	CMPC_BODY_GENM = 21,
	CMPC_BODY_GENP = 22,
	CMPC_BODY_ERROR = 23,
	CMPC_BODY_CERTCONF = 24,
	CMPC_BODY_POLLREQ = 25,
	CMPC_BODY_POLLREP = 26
};
/* "ir", "pollRep"... by PKIBody choice number. */
const char *cmpc_body_name(int type);

/* CMPC_BODY.type: OpenSSL's CHOICE selector is the index of the
 * alternative in the template, not the tag. */
enum {
	CMPC_SEL_ERROR,
	CMPC_SEL_PKICONF,
	CMPC_SEL_POLLREQ,
	CMPC_SEL_POLLREP,
	CMPC_SEL_CCR,
	CMPC_SEL_CCP,
	CMPC_SEL_CERTCONF,
	CMPC_SEL_KRR,
	CMPC_SEL_KRP,
	CMPC_SEL_IR,
	CMPC_SEL_IP,
	CMPC_SEL_CR,
	CMPC_SEL_CP,
	CMPC_SEL_KUR,
	CMPC_SEL_KUP
};

/* CertRepMessage and its parts (cmpc_asn1.c): the ccp's body. */
typedef struct {
	int type; /* 0 certificate, 1 encryptedCert */
	union {
		X509 *certificate;
		ASN1_TYPE *encrypted;
	} value;
} CMPC_CERTORENC;
DECLARE_ASN1_ITEM(CMPC_CERTORENC)

typedef struct {
	CMPC_CERTORENC *certOrEncCert;
	ASN1_TYPE *privateKey;
	ASN1_TYPE *publicationInfo;
} CMPC_CKP;
DECLARE_ASN1_ITEM(CMPC_CKP)
DEFINE_STACK_OF(CMPC_CKP)

typedef struct {
	ASN1_INTEGER *status;
	STACK_OF(ASN1_UTF8STRING) *statusString;
	ASN1_BIT_STRING *failInfo;
} CMPC_PKISI;
DECLARE_ASN1_ITEM(CMPC_PKISI)

typedef struct {
	ASN1_INTEGER *certReqId;
	CMPC_PKISI *status;
	CMPC_CKP *certifiedKeyPair;
	ASN1_OCTET_STRING *rspInfo;
} CMPC_CERTRESP;
DECLARE_ASN1_ITEM(CMPC_CERTRESP)
DEFINE_STACK_OF(CMPC_CERTRESP)

typedef struct {
	STACK_OF(X509) *caPubs;
	STACK_OF(CMPC_CERTRESP) *response;
} CMPC_CERTREP;
DECLARE_ASN1_ITEM(CMPC_CERTREP)

typedef struct {
	ASN1_OCTET_STRING *certHash;
	ASN1_INTEGER *certReqId;
	OSSL_CMP_PKISI *statusInfo;
} CMPC_CERTSTATUS;
DECLARE_ASN1_ITEM(CMPC_CERTSTATUS)
DEFINE_STACK_OF(CMPC_CERTSTATUS)

/* KeyRecRepContent, the krp's body (RFC 4210 5.3.9). */
typedef struct {
	CMPC_PKISI *status;
	X509 *newSigCert;
	STACK_OF(X509) *caCerts;
	STACK_OF(CMPC_CKP) *keyPairHist;
} CMPC_KRP;
DECLARE_ASN1_ITEM(CMPC_KRP)

typedef struct {
	int type; /* CMPC_SEL_* */
	union {
		CMPC_ERRMSG *error;
		ASN1_NULL *pkiconf;
		STACK_OF(CMPC_POLLREQ) *pollReq;
		STACK_OF(CMPC_POLLREP) *pollRep;
		OSSL_CRMF_MSGS *ccr;
		CMPC_CERTREP *ccp;
		STACK_OF(CMPC_CERTSTATUS) *certConf;
		OSSL_CRMF_MSGS *krr;
		CMPC_KRP *krp;
		OSSL_CRMF_MSGS *ir;
		CMPC_CERTREP *ip;
		OSSL_CRMF_MSGS *cr;
		CMPC_CERTREP *cp;
		OSSL_CRMF_MSGS *kur;
		CMPC_CERTREP *kup;
	} value;
} CMPC_BODY;
DECLARE_ASN1_ITEM(CMPC_BODY)

/* CertReqMsg with its CertTemplate decoded (cmpc_asn1.c): for a template
 * OpenSSL 3.0 cannot make (publicKey without a key, RFC 9483 4.1.6). */
typedef struct {
	ASN1_TIME *notBefore;
	ASN1_TIME *notAfter;
} CMPC_OPTVALIDITY;
DECLARE_ASN1_ITEM(CMPC_OPTVALIDITY)

typedef struct {
	ASN1_INTEGER *version;
	ASN1_INTEGER *serialNumber;
	X509_ALGOR *signingAlg;
	X509_NAME *issuer;
	CMPC_OPTVALIDITY *validity;
	X509_NAME *subject;
	X509_PUBKEY *publicKey;
	ASN1_BIT_STRING *issuerUID;
	ASN1_BIT_STRING *subjectUID;
	STACK_OF(X509_EXTENSION) *extensions;
} CMPC_CERTTEMPLATE;
DECLARE_ASN1_ITEM(CMPC_CERTTEMPLATE)

typedef struct {
	ASN1_INTEGER *certReqId;
	CMPC_CERTTEMPLATE *certTemplate;
	STACK_OF(ASN1_TYPE) *controls;
} CMPC_CERTREQUEST;
DECLARE_ASN1_ITEM(CMPC_CERTREQUEST)

typedef struct {
	CMPC_CERTREQUEST *certReq; /* popo and regInfo: none */
} CMPC_CERTREQMSG;
DECLARE_ASN1_ITEM(CMPC_CERTREQMSG)

/* EncryptedValue (RFC 4211 2.1): the private key in a CertifiedKeyPair
 * (cmpc_privkey.c) and in pkiArchiveOptions (cmpc_archive.c). */
typedef struct {
	X509_ALGOR *intendedAlg, *symmAlg;
	ASN1_BIT_STRING *encSymmKey;
	X509_ALGOR *keyAlg;
	ASN1_OCTET_STRING *valueHint;
	ASN1_BIT_STRING *encValue;
} CMPC_ENCVAL;
DECLARE_ASN1_ITEM(CMPC_ENCVAL)

/* The requested extensions, in one list: the SANs (critical when the
 * subject is empty, RFC 5280 4.2.1.6) and the configured ones.  *ret NULL
 * when there are none (cmpc_certreq.c). */
int cmpc_req_exts(const cmpc_ctx *ctx, int empty_subject, X509_EXTENSIONS **ret);

/* Sends req (a request the layer built: ccr, krr, a central key
 * generation; consumed) and takes an answer of want_type, *p the
 * transaction's ids: never saved for resume, refused over a
 * store-and-forward transport, an error message or another body refused
 * naming exchange ("cross-certification") (cmpc_certrep.c). */
cmpc_rv cmpc_own_send(cmpc_ctx *ctx, OSSL_CMP_MSG *req, const unsigned char *nonce,
		      const char *what, const char *exchange, int want_type, cmpc_pending *p,
		      OSSL_CMP_MSG **rsp);

/* One whole PKIMessage in der (NULL if it is not exactly one). */
CMPC_PKIMSG *cmpc_msg_decode(const unsigned char *der, size_t len);
/* req with the pkiArchiveOptions control of cmpc_set1_archive, its POP and
 * protection made again (cmpc_archive.c); NULL with the failure recorded. */
OSSL_CMP_MSG *cmpc_archive_edit(cmpc_ctx *ctx, const OSSL_CMP_MSG *req);
void cmpc_msg_free(CMPC_PKIMSG *m);
CMPC_PKIMSG_HEAD *cmpc_msg_head_decode(const unsigned char *der, size_t len);
void cmpc_msg_head_free(CMPC_PKIMSG_HEAD *m);
/* The body of m when it is one of CMPC_BODY's alternatives, else NULL. */
CMPC_BODY *cmpc_body_decode(const CMPC_PKIMSG *m);
void cmpc_body_free(CMPC_BODY *b);
/* Encodes b as the body of m; 0 on failure. */
int cmpc_body_set(CMPC_PKIMSG *m, const CMPC_BODY *b);

/* cmpc_pbm.c: re-protects a PBM-protected request (DER, replaced in place)
 * with the context's PBM parameters and sender; a message not protected by
 * PBM is left as it is.  0 on failure. */
int cmpc_pbm_reprotect(cmpc_ctx *ctx, unsigned char **der, int *derlen);
/* Drops (and wipes) the parameters and key the next message makes anew:
 * when the secret or the parameters change, and at the end. */
void cmpc_pbm_forget(cmpc_ctx *ctx);
/* 1 when the header's sender is the directoryName expected, else 0 with
 * the sender it names in actual (OpenSSL 3.0 only logs this mismatch). */
int cmpc_msg_check_sender(const CMPC_HDR *h, const X509_NAME *expected, char *actual,
			  size_t actual_len);

/* cmpc_verify.c: the certConf callback (arg: the cmpc_ctx). */
int cmpc_certconf_cb(OSSL_CMP_CTX *cmp, X509 *cert, int fail_info, const char **txt);
/* CA certificates of the verified chain (issuer first, up to the anchor);
 * caPubs off that chain are left out.  NULL on allocation failure. */
STACK_OF(X509) *cmpc_ca_certs(cmpc_ctx *ctx);
/* Trust anchors as a fresh store (NULL on allocation failure). */
X509_STORE *cmpc_anchor_store(const cmpc_ctx *ctx);
/* name in RFC 2253 form, cut to len - 1 bytes; empty where it prints
 * nothing (or no memory BIO could be had).  Leaves the error queue as it is. */
void cmpc_name_str(const X509_NAME *name, char *buf, size_t len, const char *empty);

/* cmpc_signer.c: who may speak for the CA. */
enum {
	CMPC_SIGNER_NONE = 0,
	CMPC_SIGNER_ANY,      /* allow_any_response_signer */
	CMPC_SIGNER_PINNED,   /* the pinned srv_cert (or the expected sender) */
	CMPC_SIGNER_EKU,      /* id-kp-cmcCA or id-kp-cmcRA */
	CMPC_SIGNER_ANCHOR,   /* a trust anchor itself */
	CMPC_SIGNER_CA,       /* a CA certificate: must issue what it answers for */
};
/* The store responses are validated with: srv anchors (or the anchors),
 * whose verify callback refuses a signer that may not speak for the CA.
 * NULL on allocation failure. */
X509_STORE *cmpc_srv_store(cmpc_ctx *ctx);
/* Sets up the OpenSSL context for validating responses: the store above
 * and the pinned srv_cert.  0 on allocation failure. */
int cmpc_srv_trust_setup(cmpc_ctx *ctx);
/* After a response verified: 1 when its signer may speak for the CA about
 * cert (issued or revoked: a CA-certificate signer must be its issuer;
 * NULL: no certificate concerned).  0 with ctx->x.signer_msg set. */
int cmpc_signer_may_answer_for(cmpc_ctx *ctx, X509 *cert);

/* cmpc_err.c: after OSSL_CMP_exec_* failed, turns what the transfer and
 * certConf callbacks recorded, the PKIStatus and the OpenSSL error queue
 * into a cmpc_rv and ctx->errmsg.  what: "CMP ir", for the message. */
cmpc_rv cmpc_classify_failure(cmpc_ctx *ctx, const char *what);
/* The OpenSSL error queue as "reason (data); reason ...", emptied. */
void cmpc_ossl_errors(char *buf, size_t len);
/* Does OpenSSL's error queue (left as it is) say that memory ran out?  A
 * parser that failed for want of memory must not blame its input. */
int cmpc_ossl_oom(void);

/* cmpc_poll.c: cmpc_resume's part before OpenSSL takes over: pollReq until
 * the CA sends something else than pollRep.  CMPC_OK with that message
 * (an ip/cp/kup, verified, of this transaction) in *ret_final. */
cmpc_rv cmpc_poll_resume(cmpc_ctx *ctx, const cmpc_pending *p, const char *what,
			 OSSL_CMP_MSG **ret_final);
/* The same for a request the layer built itself (body type sent, a ccr),
 * polled until an answer of body type final (a ccp) comes. */
cmpc_rv cmpc_poll_until(cmpc_ctx *ctx, const cmpc_pending *p, int sent, int final,
			const char *what, OSSL_CMP_MSG **ret_final);
/* Keeps the transactionID and senderNonce of a response in ctx->x. */
void cmpc_note_response(cmpc_ctx *ctx, const CMPC_HDR *h);
/* The transactionID and senderNonce of h into ids. */
void cmpc_note_ids(cmpc_ids *ids, const CMPC_HDR *h);
/* The transfer callback's answer to the request OpenSSL makes in
 * cmpc_resume: ctx->x.replay (taken), after pointing OpenSSL's senderNonce
 * at the nonce the replayed message answers. */
OSSL_CMP_MSG *cmpc_replay(cmpc_ctx *ctx, const OSSL_CMP_MSG *req);

/* cmpc_poll.c: a message with body b, built with the layer's templates
 * for what OpenSSL 3.0 cannot build (pollReq, the abandoning error, ccr,
 * its certConf) and protected by OpenSSL as its own requests are (a
 * signature with the signer, else PBM, which the transfer callback redoes
 * with the configured parameters).  recip: the CA's last senderNonce (NULL:
 * none, a first message); tid: the transactionID (NULL: OpenSSL's, random
 * for a first message).  nonce: the senderNonce used.  NULL on failure. */
#define CMPC_MSG_NONCE_LEN 16
OSSL_CMP_MSG *cmpc_msg_build(cmpc_ctx *ctx, const CMPC_BODY *b, const unsigned char *recip,
			     size_t recip_len, const unsigned char *tid, size_t tid_len,
			     unsigned char nonce[CMPC_MSG_NONCE_LEN]);

/* cmpc_poll.c: sends req (taken), a message of transaction p (p->tid)
 * with senderNonce nonce, and returns the CA's answer in *ret: protected
 * and verified (OSSL_CMP_validate_msg; an unprotected error only where
 * allowed), of this transaction, answering nonce.  CMPC_OK, or the failure
 * in errmsg (what: "CMP ccr", for the message). */
cmpc_rv cmpc_msg_exchange(cmpc_ctx *ctx, const cmpc_pending *p, OSSL_CMP_MSG *req,
			  const unsigned char *nonce, size_t nonce_len, const char *what,
			  OSSL_CMP_MSG **ret);

/* cmpc_ccr.c: the ccr for key (cmpc_ccr), protected; the senderNonce it
 * carries in nonce.  NULL on failure, *key_failed 1 when key could not sign
 * the proof of possession, 2 when basicConstraints CA:FALSE is requested. */
#define CMPC_CCR_NONCE_LEN 16
OSSL_CMP_MSG *cmpc_ccr_new(cmpc_ctx *ctx, EVP_PKEY *key, int path_len,
			   unsigned char nonce[CMPC_CCR_NONCE_LEN], int *key_failed);

/* cmpc_ownval.c: the response in ctx->x.rbuf that OpenSSL 3.0 cannot
 * decode, an ip/cp/kup or a krp with an EnvelopedData privateKey: its protection
 * verified (ctx->x.own_verified), and the message without its private
 * keys for the rest of the exchange.  NULL with the failure recorded. */
OSSL_CMP_MSG *cmpc_own_validate(cmpc_ctx *ctx, const char *what);

/* cmpc_central.c: the request of cmpc_central, protected; its senderNonce
 * in nonce.  NULL on failure. */
OSSL_CMP_MSG *cmpc_central_new(cmpc_ctx *ctx, cmpc_req_type type, const cmpc_central_req *rq,
			       unsigned char nonce[CMPC_MSG_NONCE_LEN]);

/* cmpc_certrep.c: for the CertRepMessage exchanges the layer makes
 * itself.  what: "CMP ccr", noun: "cross-certificate", for the messages.
 * Whether cert carries the public key of key (DER of SubjectPublicKeyInfo). */
int cmpc_same_pubkey(X509 *cert, EVP_PKEY *key);
/* "PKIStatus N: text" of si, printable ASCII only (the CA's text). */
void cmpc_status_text(const CMPC_PKISI *si, char *buf, size_t len);
/* The certificate of the one CertResponse (certReqId cert_req_id) of the
 * CertRepMessage in ctx->x.rbuf, body selector sel (CMPC_SEL_CCP ...),
 * issued (accepted or grantedWithMods) and in the clear; its caPubs into
 * *capubs.  NULL with errmsg and *rv set (CMPC_ERR_REJECTED: not issued,
 * CMPC_ERR_WAITING: status waiting, to be polled). */
X509 *cmpc_certrep_get(cmpc_ctx *ctx, int sel, long cert_req_id, const char *what,
		       const char *noun, STACK_OF(X509) **capubs, cmpc_rv *rv);
/* cert under the anchors (untrusted as intermediates), its chain into
 * ctx->x.chain (for cmpc_ca_certs and the signer check). */
cmpc_rv cmpc_certrep_chain(cmpc_ctx *ctx, X509 *cert, STACK_OF(X509) *untrusted,
			   const char *what, const char *noun);
/* certConf for cert (cert_req_id) of transaction p answering the CA's
 * last message (ctx->x.rsp): accepted, or with fail_bit >= 0
 * (OSSL_CMP_PKIFAILUREINFO_*) rejected for that reason; a pkiConf must
 * answer it. */
cmpc_rv cmpc_certrep_confirm(cmpc_ctx *ctx, X509 *cert, long cert_req_id, const cmpc_pending *p,
			     int fail_bit, const char *what, const char *noun);

/* cmpc_privkey.c: CertifiedKeyPair.privateKey as the layer's templates
 * keep it (the value inside its [0], an EncryptedKey) into *ret_k, as
 * cmpc_privkey_get reads it: 1, or 0 with why. */
int cmpc_privkey_from_any(const ASN1_TYPE *ek, cmpc_privkey *ret_k, char *why, size_t whylen);

/* cmpc_krr.c: the krp der (a whole PKIMessage) as cmpc_krr reads it,
 * protection and chain not checked: CMPC_OK with the keyPairHist entry
 * that carries want's public key (*ret_cert, *ret_key), the certificates
 * for its chain (caCerts, extraCerts: *ret_untrusted) and how many other
 * entries there were; CMPC_ERR_REJECTED with the CA's status and text in
 * why; else CMPC_ERR_PROTOCOL (CMPC_ERR_INTERNAL: out of memory) with why.
 * A newSigCert is ignored: none is asked for.
 * cmpc_krp_enveloped: whether der is a krp with an EnvelopedData key. */
cmpc_rv cmpc_krp_read(const unsigned char *der, size_t len, X509 *want, X509 **ret_cert,
		      cmpc_privkey *ret_key, STACK_OF(X509) **ret_untrusted, int *ret_others,
		      char *why, size_t whylen);
int cmpc_krp_enveloped(const unsigned char *der, size_t len);

/* cmpc_certreq.c: for cmpc_transfer_storing: the pending callback learns
 * the transaction as it waits once the request or pollReq with ids is
 * stored. */
void cmpc_certreq_presave(cmpc_ctx *ctx, const cmpc_ids *ids);

/* cmpc_poll.c: for cmpc_rr and cmpc_genm after cmpc_xchg_begin: with a
 * stored answer set (cmpc_set_stored_answer), reads and checks it (the
 * message stored had body type sent) and makes it the answer OpenSSL's
 * request gets, in ctx->x.replay; CMPC_ERR_WAITING when it is not there
 * yet.  CMPC_OK and nothing done without one. */
cmpc_rv cmpc_stored_replay(cmpc_ctx *ctx, int sent, const char *what);

/* cmpc_transfer.c: the answer to a message a store-and-forward transport
 * stored earlier (body type sent), fetched by the transfer function (req
 * NULL) and checked as cmpc_msg_transfer checks an answer; NULL with the
 * failure in ctx->x.  tid: the transaction's, for cmpc_transaction_id. */
OSSL_CMP_MSG *cmpc_fetch_answer(cmpc_ctx *ctx, int sent, const unsigned char *tid,
				 size_t tid_len);
/* Sleeps s seconds before the next pollReq of a request of type body (whole seconds, restarted
 * after signals), telling the wait callback; CMPC_ERR_STOPPED (recorded
 * with what) when it asked to stop, else CMPC_OK. */
cmpc_rv cmpc_sleep(cmpc_ctx *ctx, long s, const char *what, int body);
/* The PKIBody type (CMPC_BODY_*) of a request type, -1 for none. */
int cmpc_req_body(cmpc_req_type type);
/* The wait callback: a wait begins (kind, in ms from now), goes on
 * (cmpc_wait_tick: 1 when the callback asked to stop) or ends. */
void cmpc_wait_begin(cmpc_ctx *ctx, cmpc_wait_kind kind, long long in_ms);
int cmpc_wait_tick(cmpc_ctx *ctx);
void cmpc_wait_end(cmpc_ctx *ctx);

/* cmpc_curl.c, for every libcurl transfer.  progress: libcurl's xferinfo
 * callback (arg: the cmpc_ctx); libcurl calls it often while data moves
 * and about once a second while it waits, where a wait is shown and a
 * stop is asked for; non-zero (the wait callback asked to stop) aborts
 * the transfer.  watch: sets it on h when ctx has a wait callback, and
 * the debug notes when it has a log callback.  tls_error: 1 when cc is a
 * TLS failure. */
int cmpc_curl_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow);
CURLcode cmpc_curl_watch(CURL *h, cmpc_ctx *ctx);
int cmpc_curl_tls_error(CURLcode cc);
/* CLOCK_MONOTONIC in milliseconds: for deadlines, never for messageTime. */
long long cmpc_now_ms(void);

/* cmpc_xchg.c: set up and end an exchange that carries no new key (rr,
 * genm, abandon): checks URL and protection, fresh trust store from the
 * anchors, timeouts, the transport (cmpc_transfer_prepare), deadline.
 * what: "CMP rr", for the message. */
cmpc_rv cmpc_xchg_begin(cmpc_ctx *ctx, const char *what);
void cmpc_xchg_end(cmpc_ctx *ctx);

/* cmpc_mime.c: the mails of the e-mail transport (RFC 2510 5.3). */
#define CMPC_MIME_HDR_MAX 256
#define CMPC_MIME_REFS_MAX 1024
typedef struct {
	const char *from, *to; /* header values, printable ASCII */
	const char *tid;       /* transactionID, lower-case hex */
	int seq;	       /* the message's number in the transaction, from 1 */
	const char *msgid;     /* "<tid.seq.random@host>" */
	time_t date;
	const unsigned char *der;
	size_t der_len;
} cmpc_mime_out;
/* The request mail (CRLF line ends) into *ret (OPENSSL_malloc) and
 * *ret_len: 1, or 0 with why (a header value that is not one printable
 * line, out of memory). */
int cmpc_mime_build(const cmpc_mime_out *m, char **ret, size_t *ret_len, char *why,
		    size_t whylen);
/* What an answer mail says: its headers (cut, printable) and its CMP part. */
typedef struct {
	char subject[CMPC_MIME_HDR_MAX], in_reply_to[CMPC_MIME_HDR_MAX];
	char references[CMPC_MIME_REFS_MAX], tid[CMPC_MIME_HDR_MAX], msgid[CMPC_MIME_HDR_MAX];
	char ctype[64];	    /* the CMP part's content type, lower case */
	unsigned char *der; /* the CMP part decoded (OPENSSL_malloc), or NULL */
	size_t der_len;
} cmpc_mime_in;
/* Parses mail[0..len) (no NUL needed): 1 the first CMP part decoded into
 * m->der (at most max_der bytes); 0 no CMP part; -1 a CMP part that cannot
 * be used (not base64, too large, nested too deep).  why: printable text.
 * The headers are filled in every case; cmpc_mime_in_clear frees der. */
int cmpc_mime_parse(const char *mail, size_t len, size_t max_der, cmpc_mime_in *m, char *why,
		    size_t whylen);
void cmpc_mime_in_clear(cmpc_mime_in *m);
/* Which message of transaction tid (hex) the mail answers, by its
 * In-Reply-To, References or subject: 2 message seq, -1 another message
 * of it; by X-CMP-Transaction-ID alone: 1; 0 not this transaction. */
int cmpc_mime_match(const cmpc_mime_in *m, const char *tid, int seq);
/* application/pkixcmp and the older names of the drafts (any case). */
int cmpc_mime_is_cmp_type(const char *type);

#endif
