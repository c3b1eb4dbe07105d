/*
 * p11enroll-testca: a small CMP CA for the tests and the demo.  OpenSSL's
 * generic CMP server (OSSL_CMP_SRV_*) does the protocol; this program
 * keeps the CA files, issues real certificates, speaks HTTP/1.1 on the
 * loopback interface and can misbehave on purpose (--fault).
 */
#ifndef P11ENROLL_TESTCA_H
#define P11ENROLL_TESTCA_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/cmp.h>
#include <openssl/crmf.h>
#include <openssl/x509.h>

#include "tests/common/cmp-asn1.h"

/* Exit codes. */
enum { CA_EXIT_OK = 0, CA_EXIT_ERROR = 1, CA_EXIT_USAGE = 2 };

/* PKIBody CHOICE tags (RFC 4210, 5.1.2): OpenSSL 3.0 keeps its names private. */
enum {
	CA_BODY_IR = 0,
	CA_BODY_IP = 1,
	CA_BODY_CR = 2,
	CA_BODY_CP = 3,
	CA_BODY_P10CR = 4,
	CA_BODY_KUR = 7,
	CA_BODY_KUP = 8,
	CA_BODY_KRR = 9,
	CA_BODY_KRP = 10,
	CA_BODY_RR = 11,
	CA_BODY_RP = 12,
	CA_BODY_CCR = 13,
	CA_BODY_CCP = 14,
	CA_BODY_PKICONF = 19,
	CA_BODY_GENM = 21,
	CA_BODY_GENP = 22,
	CA_BODY_ERROR = 23,
	CA_BODY_CERTCONF = 24,
	CA_BODY_POLLREQ = 25,
	CA_BODY_POLLREP = 26,
};

/* Fault switches (--fault NAME[=ARG]); a bit each. */
enum {
	CA_FAULT_HTTP500 = 1 << 0,
	CA_FAULT_DROP = 1 << 1,
	CA_FAULT_GARBAGE = 1 << 2,
	CA_FAULT_TRUNCATED = 1 << 3,
	CA_FAULT_WRONG_TID = 1 << 4,
	CA_FAULT_WRONG_NONCE = 1 << 5,
	CA_FAULT_UNPROTECTED_ERROR = 1 << 6,
	CA_FAULT_BAD_PROTECTION = 1 << 7,
	CA_FAULT_SLOW = 1 << 8,
	CA_FAULT_REJECT = 1 << 9,
	CA_FAULT_WRONG_KEY = 1 << 10,
	CA_FAULT_WRONG_SUBJECT = 1 << 11,
	CA_FAULT_UNTRUSTED = 1 << 12,
	CA_FAULT_CONTENT_TYPE = 1 << 13,
	CA_FAULT_REDIRECT = 1 << 14,
	CA_FAULT_HUGE = 1 << 15,
	CA_FAULT_REPLAY = 1 << 16,
	CA_FAULT_WRONG_SENDER = 1 << 17,
	CA_FAULT_WRONG_CERTREQID = 1 << 18,
	CA_FAULT_CAPUBS_IN_KUP = 1 << 19,
	CA_FAULT_MANY_EXTRACERTS = 1 << 20,
	CA_FAULT_CHECK_AFTER_HUGE = 1 << 21,
	CA_FAULT_ENDLESS_POLL = 1 << 22,
	CA_FAULT_SENDER_FORMAT = 1 << 23,
	CA_FAULT_OVERSIZED_SERIAL = 1 << 24,
	CA_FAULT_WEIRD_TEXT = 1 << 25,
	CA_FAULT_FORGED_ROOT_UPDATE = 1 << 26,
	CA_FAULT_UNPROTECTED = 1 << 27,
	CA_FAULT_EXPIRED_NEW_ROOT = 1 << 28,
	CA_FAULT_NEW_ROOT_NOT_CA = 1 << 29,
	CA_FAULT_FOREIGN_CACERTS = 1 << 30,
};
/* Beyond what an enum constant (an int) holds. */
#define CA_FAULT_WRONG_BODY 0x80000000u

/* ckg.c: central key generation and its faults (--ckg-fault) */
enum {
	CA_CKG_FAULT_NONE,
	CA_CKG_FAULT_OTHER_PUBKEY,    /* the certificate is for another public key */
	CA_CKG_FAULT_OTHER_RECIPIENT, /* the key is encrypted to another key */
	CA_CKG_FAULT_GARBAGE,	      /* random bytes where the encrypted key goes */
	CA_CKG_FAULT_KEY_MISMATCH,    /* another private key than the certificate's */
	CA_CKG_FAULT_NO_KEY,	      /* a certificate and no private key */
};
struct ca_ckg;
struct ca_ca;
/* A request (ir, cr, kur) without a public key: its protection verified
 * with ctx, a key made, the request rewritten for OpenSSL (the key in the
 * template, a POP by it, unprotected).  1 with *ret, 0 not such a request
 * (or one OpenSSL answers as it is), -1 failure. */
int ca_ckg_request(OSSL_CMP_CTX *ctx, int fault, OSSL_CMP_MSG **req, struct ca_ckg **ret);
/* The answer to it gets the private key (env > 0: in an EnvelopedData,
 * else an EncryptedValue, under AES-CBC when env < 0); the key goes to the archive under issued's serial.
 * 0 on failure.  The caller protects *rsp again. */
int ca_ckg_response(struct ca_ckg *k, struct ca_ca *ca, X509 *issued, int fault, int env,
		    OSSL_CMP_MSG **rsp);
/* The encoded answer (*der, *len, replaced) with what OpenSSL 3.0 cannot
 * hold (an EnvelopedData privateKey) put in and protected again: PBM with
 * secret, else a signature with ctx's key.  1 also when nothing is to do. */
int ca_ckg_finish(struct ca_ckg *k, OSSL_CMP_CTX *ctx, const unsigned char *secret,
		  size_t secret_len, unsigned char **der, int *len);
void ca_ckg_free(struct ca_ckg *k);
/* For krr.c too: key in an EnvelopedData to rcp (KTRI; AES-256-CBC of a
 * SignedData by the issuing CA of an AsymmetricKeyPackage; garbage: the
 * package random bytes) as the DER of the EncryptedKey's [0] alternative
 * in *ret (OPENSSL_free); its length, <= 0 on failure.  ca_ckg_protect:
 * m's protection made again over its header and body (PBM with secret,
 * else a signature with ctx's key); 0 on failure. */
int ca_ckg_enveloped(struct ca_ca *ca, EVP_PKEY *key, EVP_PKEY *rcp, int garbage,
		     unsigned char **ret);
/* For krr.c too: key as an EncryptedValue: AES-256 key wrap with padding
 * (cbc: AES-256-CBC) of its PKCS#8, the AES key RSA-OAEP-SHA1 to rcp
 * (garbage: the wrapped key random bytes); DER in *ret (OPENSSL_free),
 * its length, <= 0 on failure. */
int ca_ckg_encrypted_value(EVP_PKEY *key, EVP_PKEY *rcp, int garbage, int cbc,
			   unsigned char **ret);
int ca_ckg_protect(TCMP_PKIMESSAGE *m, OSSL_CMP_CTX *ctx, const unsigned char *secret,
		   size_t secret_len);

/* tcp.c: CMP over TCP (--tcp) and its faults (--tcp-fault) */
enum {
	CA_TCP_FAULT_NONE,
	CA_TCP_FAULT_TRUNCATED,
	CA_TCP_FAULT_GARBAGE,
	CA_TCP_FAULT_VERSION,
	CA_TCP_FAULT_OVERSIZE,
	CA_TCP_FAULT_ERROR_MSG,
	CA_TCP_FAULT_RFC2510,
};
struct ca_tcp_opts {
	int fault;	/* CA_TCP_FAULT_* */
	int poll_s;	/* --tcp-poll N: pollRep first, check back in N s */
	int poll_close; /* --tcp-poll-close: with closeConnection set */
};
/* archive.c: key archive (--archive-key, --archive-cert, --archive-require,
 * --archive-fault) */
enum { CA_ARCHIVE_FAULT_NONE, CA_ARCHIVE_FAULT_REFUSE, CA_ARCHIVE_FAULT_OTHER_KEY };
struct ca_archive_opts {
	const char *key_file, *cert_file;
	int on, require, fault;
	EVP_PKEY *key; /* loaded or made by ca_archive_setup */
	X509 *cert;
};
/* mail.c: CMP by e-mail (--mail) and its faults (--mail-fault) */
enum {
	CA_MAIL_FAULT_NONE,
	CA_MAIL_FAULT_DUP,
	CA_MAIL_FAULT_WRONG_TID,
	CA_MAIL_FAULT_GARBAGE,
	CA_MAIL_FAULT_NO_SUBJECT_TID,
};
struct ca_mail_opts {
	const char *maildir; /* --mail MAILDIR: the CA's mailbox (requests in new/) */
	const char *smtp;    /* --mail-smtp URL: where answers are sent */
	const char *from;    /* --mail-from ADDR: the CA's address */
	const char *cacert;  /* --mail-cacert FILE: verifies an smtps:// server */
	const char *ctype;   /* --mail-ctype TYPE: the answer's Content-Type */
	int multipart;	     /* --mail-multipart: the answer in a multipart/mixed */
	int fault;	     /* CA_MAIL_FAULT_* */
};
/* krr.c: key recovery (krr/krp) and its faults (--krr-fault) */
enum {
	CA_KRR_FAULT_NONE,
	CA_KRR_FAULT_WRONG_KEY,	       /* a key that does not match its certificate */
	CA_KRR_FAULT_OTHER_RECIPIENT, /* the AES key encrypted to another RSA key */
	CA_KRR_FAULT_GARBAGE,	       /* random bytes as the encrypted key */
	CA_KRR_FAULT_UNPROTECTED,      /* the krp without protection */
	CA_KRR_FAULT_REJECT,	       /* rejection, failInfo notAuthorized */
	CA_KRR_FAULT_NO_KEY,	       /* accepted, the certificate without its key */
	CA_KRR_FAULT_HISTORY,	       /* an earlier key pair first in keyPairHist */
};
enum { CA_SIGNER_SRV, CA_SIGNER_CA, CA_SIGNER_DEVICE };

/* Everything the command line decides. */
struct ca_opts {
	const char *dir;
	const char *spool; /* --spool DIR: also answer request files there */
	int port;
	unsigned char *ref; /* reference value (senderKID) */
	size_t ref_len;
	unsigned char *secret; /* PBM secret; wiped on exit */
	size_t secret_len;
	int protection_sig; /* --protection sig */
	int signer;	    /* --signer: CA_SIGNER_* signs signature-protected answers */
	int accept_unprotected;
	int implicit_confirm; /* grant implicitConfirm when asked */
	long days;
	long validity_seconds; /* overrides days when > 0 */
	int poll_seconds;      /* --poll N; 0 = deliver at once */
	long max_requests;     /* 0 = unlimited */
	int quiet, verbose;
	const char *log_file;
	unsigned int faults;
	int fault_all;	  /* apply faults to every response, not only cert requests */
	long fault_count; /* apply faults this many times; 0 = always */
	const char *fault_on; /* apply faults only to requests of this body type */
	long fault_skip;      /* leave the first N eligible requests alone */
	int reject_bit;	  /* failInfo bit of reject=NAME */
	const char *reject_text;   /* --reject-text FILE: its statusString */
	int slow_seconds;
	int many_extracerts;	   /* --fault many-extracerts=N */
	int ckg_fault;		   /* --ckg-fault NAME: CA_CKG_FAULT_* */
	int ckg_enveloped;	   /* --ckg-enveloped: the key in an EnvelopedData;
				      -1 --ckg-cbc: an EncryptedValue under AES-CBC */
	int new_root;		   /* --new-root */
	int rr_status;		   /* --rr-status N: an rr's PKIStatus (0) */
	const char *template_spec; /* --template SPEC */
	const char *hang_on;	   /* --hang-on TYPE: process, never answer */
	long hang_count;	   /* --hang-count N: only the first N; 0 = all */
	const char *deliver_when;  /* --deliver-when FILE: a held request goes once it exists */
	const char *fault_when;	   /* --fault-when FILE: faults only while it exists */
	const char *ccr_trusted;   /* --ccr-trusted FILE: anchors of a foreign CA */
	int tcp;		   /* --tcp: CMP over TCP instead of HTTP */
	struct ca_tcp_opts tcp_opts;
	struct ca_mail_opts mail; /* --mail...: also answer request mails */
	struct ca_archive_opts archive;
	int krr_fault;		  /* --krr-fault NAME: CA_KRR_FAULT_* */
	int krr_enveloped;	  /* --krr-enveloped: the key in an EnvelopedData */
};

/* The CA: root, issuing sub-CA, CMP server certificate, state directory. */
struct ca_ca {
	char *dir;
	X509 *root, *sub, *srv;
	EVP_PKEY *root_key, *sub_key, *srv_key;
	X509 *device; /* an end entity of the same PKI, no EKU: a rogue signer */
	EVP_PKEY *device_key;
	long days, validity_seconds;
	int want_new_root; /* --new-root: a second root and its link certificates */
	X509 *newroot, *new_with_old, *old_with_new;
	EVP_PKEY *newroot_key;
	X509_CRL *crl;	      /* of the issuing CA; DIR/crl.pem */
	int oversized_serial; /* the next certificate gets a 40-byte serial */
	/* the validity the next request asks for (CRMF certTemplate), 0: none */
	time_t req_not_before, req_not_after;
};

/* What the HTTP layer sends back for one request. */
struct ca_reply {
	int status;	      /* HTTP status code */
	const char *ctype;    /* Content-Type */
	const char *location; /* Location header, or NULL */
	unsigned char *body;  /* OPENSSL_malloc'ed */
	size_t len;
	int drop;  /* close the connection without an answer */
	int close; /* close after answering */
	int delay; /* seconds to wait before answering */
	int hang;  /* --hang-on: no answer; hold the connection until the client closes it */
};

struct ca_srv;

/* Handles one HTTP request body; fills *reply.  Returns 0 on success. */
typedef int (*ca_handler_fn)(void *arg, const char *path, const unsigned char *body, size_t len,
			     struct ca_reply *reply);

/* main.c: logging.  ca_log: one line per request (stderr unless --quiet,
 * and the --log file); ca_event: details (the --log file, stderr with -v). */
void ca_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void ca_event(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void ca_log_openssl_errors(const char *what);
int ca_stopping(void);

/* http.c */
int ca_http_listen(int port, int *ret_port);
int ca_http_serve(int lfd, long max_requests, ca_handler_fn fn, void *arg);
/* spool.c: answers DIR's NAME.req.der files into NAME.rsp.der until stopped. */
int ca_spool_serve(const char *dir, ca_handler_fn fn, void *arg);

/* mail.c: answers the request mails in MAILDIR/new by SMTP until stopped. */
int ca_mail_serve(const struct ca_mail_opts *m, ca_handler_fn fn, void *arg);

/* tcp.c */
int ca_tcp_serve(int lfd, long max_requests, const struct ca_tcp_opts *t, ca_handler_fn fn,
		 void *arg);

/* issue.c */
int ca_ca_load_or_create(struct ca_ca *ca, const char *dir);
void ca_ca_cleanup(struct ca_ca *ca);
X509 *ca_issue(struct ca_ca *ca, const X509_NAME *subject, EVP_PKEY *pubkey,
	       const STACK_OF(X509_EXTENSION) *exts, X509 *issuer, EVP_PKEY *issuer_key);
int ca_record_issued(struct ca_ca *ca, X509 *cert);
X509 *ca_find_issued(struct ca_ca *ca, const X509_NAME *issuer, const ASN1_INTEGER *serial);
int ca_is_revoked(struct ca_ca *ca, const ASN1_INTEGER *serial);
/* Key recovery store: DIR/archive/SERIAL.pem (SERIAL as ca_serial_hex),
 * the private key of the certificate with that serial, PKCS#8 PEM in the
 * clear.  Written by key archive and central key generation, read by krr. */
int ca_archive_put(struct ca_ca *ca, const ASN1_INTEGER *serial, EVP_PKEY *key);
EVP_PKEY *ca_archive_get(struct ca_ca *ca, const ASN1_INTEGER *serial);
int ca_revoke(struct ca_ca *ca, const ASN1_INTEGER *serial, int reason);
/* archive.c: the archive key pair (loaded or made); the archived key of
 * crm decrypted and checked against pub: 1 (*ret_key NULL when the request
 * has none and none is required), 0 with the failInfo bit and why. */
int ca_archive_setup(struct ca_ca *ca, struct ca_archive_opts *o);
void ca_archive_cleanup(struct ca_archive_opts *o);
int ca_archive_take(const struct ca_archive_opts *o, const OSSL_CRMF_MSG *crm, EVP_PKEY *pub,
		    EVP_PKEY **ret_key, int *ret_bit, const char **ret_why);
char *ca_serial_hex(const ASN1_INTEGER *serial);
/* CertTemplate (RFC 4211, 5) with publicKey readable: 3.0 keeps it private
 * (issue.c; ckg.c reads the key type of a template without a key). */
typedef struct {
	ASN1_TIME *notBefore;
	ASN1_TIME *notAfter;
} CA_OPTVALIDITY;
typedef struct {
	ASN1_INTEGER *version;
	ASN1_INTEGER *serialNumber;
	X509_ALGOR *signingAlg;
	X509_NAME *issuer;
	CA_OPTVALIDITY *validity;
	X509_NAME *subject;
	X509_PUBKEY *publicKey;
	ASN1_BIT_STRING *issuerUID;
	ASN1_BIT_STRING *subjectUID;
	STACK_OF(X509_EXTENSION) *extensions;
} CA_CERTTEMPLATE;
DECLARE_ASN1_ITEM(CA_CERTTEMPLATE)
int ca_template_fields(const OSSL_CRMF_CERTTEMPLATE *tmpl, EVP_PKEY **ret_key,
		       X509_NAME **ret_subject, STACK_OF(X509_EXTENSION) **ret_exts,
		       time_t *ret_not_before, time_t *ret_not_after);
EVP_PKEY *ca_new_ec_key(void);
X509 *ca_link_cert(X509 *subject_cert, X509 *issuer, EVP_PKEY *issuer_key);
int ca_crl_update(struct ca_ca *ca);
X509 *ca_self_signed(const char *cn, EVP_PKEY *key, int is_ca);
/* The new root's name and key, self-signed, but expired (valid until
 * yesterday) or an end entity (CA:FALSE): for the root-update faults. */
X509 *ca_bad_new_root(struct ca_ca *ca, int expired);

/* reqinfo.c: what 3.0 does not expose of a request */
enum { CA_PROT_NONE, CA_PROT_PBM, CA_PROT_SIG };
struct ca_reqinfo {
	int prot;	       /* CA_PROT_* */
	X509 *signer;	       /* first extraCert of a signed request */
	unsigned char kid[64]; /* senderKID */
	int kid_len, has_kid;
	int rr_reason; /* CRLReason of an rr, -1 if none */
	/* the header as the client set it, for the log ("-": absent) */
	char sender[256], recipient[256]; /* directoryName, /CN=... */
	char profile[128];		  /* certProfile (generalInfo) */
	int implicit;			  /* implicitConfirm asked (generalInfo) */
	char pbm[96];			  /* PBM owf,mac,iterations */
};
int ca_reqinfo_get(const unsigned char *der, size_t len, struct ca_reqinfo *ri);
void ca_reqinfo_clear(struct ca_reqinfo *ri);

/* Edits of a finished response below the OpenSSL API (3.0 has no setters). */
struct ca_edit {
	const X509_NAME *sender; /* new header sender (directoryName), or NULL */
	int certreqid_delta;	 /* added to every certReqId of a CertRepMessage or pollRep */
	int swap_body;		 /* a CertRepMessage goes as cp (an ip), ip (a cp or kup) */
	STACK_OF(X509) *capubs;	 /* caPubs to put into a CertRepMessage */
	STACK_OF(X509) *extra;	 /* appended to extraCerts */
	/* ccr served as a cr: the body goes with tag retag - 1 (content as it
	 * is; 0: unchanged), and unprotect drops protectionAlg and protection */
	int retag, unprotect;
	/* central key generation: the first CertResponse's privateKey (the
	 * EncryptedKey, as its DER decodes) */
	ASN1_TYPE *privkey;
};
OSSL_CMP_MSG *ca_msg_edit(const OSSL_CMP_MSG *msg, const struct ca_edit *e);
/* The body edits of ca_msg_edit on a PKIBody kept encoded (TCMP_PKIMESSAGE):
 * for what OpenSSL 3.0 cannot decode (an EnvelopedData privateKey). */
int ca_body_edit(ASN1_TYPE *body, const struct ca_edit *e);

/* ccr.c: --ccr-trusted FILE's certificates into the CA's trusted store,
 * for signed ccrs of a foreign PKI.  0 on failure (logged). */
int ca_ccr_trust(X509_STORE *store, const char *file);
/* krr.c: the names of --krr-fault (index: CA_KRR_FAULT_*, "" first, NULL
 * last).  ca_krr_answer: *rsp, OpenSSL's error answer to the krr req
 * (DER) whose protection verified, becomes the krp, protected with ctx;
 * 0 when it cannot be built. */
const char *const *ca_krr_fault_names(void);
int ca_krr_answer(struct ca_ca *ca, OSSL_CMP_CTX *ctx, const unsigned char *req, size_t len,
		  OSSL_CMP_MSG **rsp, int fault, int env);
/* With env, the answer's key goes in an EnvelopedData, which OpenSSL 3.0
 * cannot hold: ca_krr_finish puts it into the encoded answer (*der, *len,
 * replaced) and protects it again (as ca_ckg_finish); 1 also when nothing
 * is to do. */
int ca_krr_finish(OSSL_CMP_CTX *ctx, const unsigned char *secret, size_t secret_len,
		  unsigned char **der, int *len);

/* srv.c */
struct ca_srv *ca_srv_new(const struct ca_opts *opts, struct ca_ca *ca);
void ca_srv_free(struct ca_srv *srv);
int ca_srv_handle(void *arg, const char *path, const unsigned char *body, size_t len,
		  struct ca_reply *reply);
int ca_failinfo_bit(const char *name);
int ca_body_type(const char *name);
ASN1_TYPE *ca_template_value(const char *spec);

#endif
