/*
 * cmpc: the protocol layer.  CMP (RFC 4210/9480/9810) client exchanges on
 * OpenSSL's OSSL_CMP_* API, with HTTP(S) transfer (RFC 6712/9811) through
 * libcurl.  Meets the token layer only through EVP_PKEY and X509: the
 * caller hands in a key whose signatures the token makes.
 *
 * Conventions: functions return a cmpc_rv; output parameters are ret_* and
 * untouched on failure; the detail of the last failure is kept in the
 * context for cmpc_errmsg(); this layer prints nothing itself.
 */
#ifndef P11ENROLL_CMPC_H
#define P11ENROLL_CMPC_H

#include <stddef.h>
#include <time.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

typedef enum {
	CMPC_OK = 0,
	CMPC_ERR_CONFIG,     /* bad URL, missing credentials, unreadable file */
	CMPC_ERR_TRANSPORT,  /* connect, timeout, HTTP status, content type, size cap */
	CMPC_ERR_TLS,        /* TLS handshake or server certificate verification */
	CMPC_ERR_PROTOCOL,   /* malformed, unprotected or wrongly protected response,
	                        wrong transactionID, nonce, sender, certReqId */
	CMPC_ERR_REJECTED,   /* the server rejected the request (status in errmsg) */
	CMPC_ERR_WAITING,    /* the server still said "waiting" at the total timeout */
	CMPC_ERR_CERT,       /* the issued certificate failed verification, or the
	                        accept callback refused it; it was rejected in certConf */
	CMPC_ERR_KEY,        /* the key could not sign the request or its POP */
	CMPC_ERR_INTERNAL,
	CMPC_ERR_STOPPED,    /* the wait callback asked to stop (cmpc_set_wait_cb) */
} cmpc_rv;

const char *cmpc_strerror(cmpc_rv rv);

#if defined(__GNUC__)
#define CMPC_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define CMPC_PRINTF(fmt, args)
#endif

/* Once per process, before any thread starts (curl_global_init). */
int cmpc_global_init(void);
void cmpc_global_cleanup(void);

typedef struct cmpc_ctx cmpc_ctx;

cmpc_ctx *cmpc_new(void);
void cmpc_free(cmpc_ctx *ctx);     /* wipes secrets; NULL is a no-op */

/* What failed, why (PKIStatus, failInfo bit names and statusString; curl or
 * TLS verification error; OpenSSL reason), what to do.  "" if none. */
const char *cmpc_errmsg(const cmpc_ctx *ctx);
/* The failInfo bits (0: none given) of the CA's rejection of the last
 * certificate request, verified as the CA's; -1 when it was not rejected. */
int cmpc_rejection(const cmpc_ctx *ctx);
/* A PKIStatus's name ("rejection"), or NULL when it has none. */
const char *cmpc_status_name(int status);
/* The names of the failInfo bits ("badPOP badCertTemplate"), as many whole
 * ones as fit in out; their length. */
size_t cmpc_failinfo_names(int bits, char *out, size_t len);

/* level: syslog LOG_* value.  Receives OpenSSL's CMP log lines and curl's
 * connection notes; never a secret. */
typedef void (*cmpc_log_fn)(int level, const char *msg, void *arg);
void cmpc_set_log_cb(cmpc_ctx *ctx, cmpc_log_fn fn, void *arg);

/* http:// or https:// URL of the CMP server, e.g. .../.well-known/cmp */
cmpc_rv cmpc_set1_server(cmpc_ctx *ctx, const char *url);
/* Seconds; 0 keeps the default (connect 10, message 60, total 300). */
void cmpc_set_timeouts(cmpc_ctx *ctx, int connect_s, int msg_s, int total_s);
/* Largest response accepted, bytes (default 1 MiB). */
void cmpc_set_max_response(cmpc_ctx *ctx, size_t bytes);
/* HTTP(S) proxy for every transfer, as libcurl takes it
 * ([scheme://]host[:port]); NULL: libcurl's environment (http_proxy,
 * https_proxy, all_proxy).  no_proxy: hosts reached directly, a comma
 * list ("*": all); NULL: the environment's no_proxy.  A set value wins
 * over the environment.  Copies both. */
cmpc_rv cmpc_set1_proxy(cmpc_ctx *ctx, const char *proxy, const char *no_proxy);
/* PEM bundle that verifies an HTTPS server; NULL: the system store. */
cmpc_rv cmpc_set1_tls_trust(cmpc_ctx *ctx, const char *cafile);

/*
 * The transport: what carries one message to the CA and its answer back,
 * as OpenSSL's transfer callback (OSSL_CMP_CTX_set_transfer_cb) does for
 * its own client.  Every message of every exchange goes through it:
 * requests, certConf, pollReq, rr, genm, the error that abandons.
 *
 * req is the PKIMessage as DER, protected, exactly the bytes to send.
 * timeout_ms is what this message may take: the message timeout, or what
 * is left of the total timeout when that is less.  The function gives the
 * answer's bytes to cmpc_transfer_write as they arrive and returns CMPC_OK
 * when the answer is complete; on failure it returns what
 * cmpc_transfer_fail or cmpc_transfer_timeout returned.  The layer then
 * does with the answer what it does with an HTTP response body: the size
 * limit, exactly one PKIMessage, the expected sender, protection,
 * transactionID and nonces.
 */
typedef cmpc_rv (*cmpc_transfer_fn)(cmpc_ctx *ctx, const unsigned char *req, size_t req_len,
				    long timeout_ms, void *arg);
/*
 * Store-and-forward transports (a file carried by hand, a spool
 * directory): the answer does not come with the message.  A transfer
 * function that has put req where the CA will find it returns
 * cmpc_transfer_stored(ctx, where): the exchange ends with
 * CMPC_ERR_WAITING after the pending callback learned the transaction
 * (sent_nonce set), as after a CA's "waiting".  cmpc_resume of such a
 * transaction calls the transfer function with req NULL (req_len 0):
 * it gives the stored answer's bytes to cmpc_transfer_write, or fails.
 * The answer gets every check a network answer gets, and must answer the
 * stored message (transactionID, recipNonce).  A certConf that is stored
 * ends the exchange with success: the certificate was accepted and kept
 * (accept callback), and the CA's pkiConf is not awaited.
 */
cmpc_rv cmpc_transfer_stored(cmpc_ctx *ctx, const char *where);
/*
 * For a store-and-forward transport, just before req becomes visible to
 * the CA (renamed into the spool, uploaded, sent): when it is a
 * certificate request or pollReq, the pending callback learns the
 * transaction as it will wait for req's answer, so that a crash between
 * the two leaves it saved (the key kept for the CA's answer).  When the
 * transport then fails instead of storing, cmpc_store_failed says so
 * after the exchange: the saved transaction names a message the CA never
 * got.
 */
void cmpc_transfer_storing(cmpc_ctx *ctx, const unsigned char *req, size_t req_len);
int cmpc_store_failed(const cmpc_ctx *ctx);

/* fn NULL: HTTP(S) POST through libcurl to the server URL (RFC 6712), the
 * default.  arg is passed to fn, not owned.  The server URL is still
 * required: it names the CA in messages. */
void cmpc_set_transfer_cb(cmpc_ctx *ctx, cmpc_transfer_fn fn, void *arg);
/* For a transfer function: appends len bytes to the answer.  0 when that
 * would pass the response size limit (cmpc_set_max_response) or memory ran
 * out: stop and return a failure; the layer words it. */
int cmpc_transfer_write(cmpc_ctx *ctx, const void *data, size_t len);
/* For a transfer function: why this message's transfer failed, "what
 * failed: why; what to do" (the layer puts "sending the ir to URL: "
 * first).  rv: CMPC_ERR_TRANSPORT, CMPC_ERR_TLS or CMPC_ERR_INTERNAL;
 * returned.  Only the first failure of an exchange is kept. */
cmpc_rv cmpc_transfer_fail(cmpc_ctx *ctx, cmpc_rv rv, const char *fmt, ...) CMPC_PRINTF(3, 4);
/* For a transfer function: no complete answer came within timeout_ms;
 * detail in the transport's words (may be NULL).  Returns
 * CMPC_ERR_TRANSPORT; when the total timeout ran out, a transaction the CA
 * answered "waiting" ends in CMPC_ERR_WAITING and is kept for a resume. */
cmpc_rv cmpc_transfer_timeout(cmpc_ctx *ctx, const char *detail);

/*
 * Remote spool directories (cmpc_rfile.c): one file put into or fetched
 * from the directory of a server URL ftp://, ftps:// (implicit TLS),
 * sftp:// or scp:// [user@]host[:port]/dir/, for a store-and-forward
 * transfer function, within the message's time limit and stoppable by the
 * wait callback.  FTPS and ftp:// with ftp_tls verify the server as
 * HTTPS does (cmpc_set1_tls_trust); SFTP and SCP accept only a host key
 * that known_hosts lists for the host.  The strings are borrowed: they
 * must outlive the handle; the caller wipes the secrets.
 */
typedef struct {
	const char *user;	    /* NULL: the URL's (or anonymous FTP) */
	const char *password;	    /* NULL: none */
	const char *ssh_key;	    /* sftp, scp: private key file; NULL: none */
	const char *ssh_passphrase; /* its passphrase; NULL: none */
	int ssh_agent;		    /* sftp, scp: also try the SSH agent */
	const char *known_hosts;    /* sftp, scp: the accepted host keys */
	int ftp_tls;		    /* ftp://: require explicit TLS (AUTH TLS) */
} cmpc_rfile_opts;
typedef struct cmpc_rfile cmpc_rfile;
/* ftp://, ftps://, sftp:// or scp:// (any case). */
int cmpc_is_rfile_url(const char *url);
/* NULL: out of memory.  Keeps its connection between calls. */
cmpc_rfile *cmpc_rfile_new(const cmpc_rfile_opts *o);
void cmpc_rfile_free(cmpc_rfile *r);
/* Writes der as the file name in the server URL's directory: uploaded as
 * tmp_name and renamed to name where the protocol can rename (FTP,
 * SFTP); scp:// writes name directly (tmp_name unused).  0, or -1 after
 * cmpc_transfer_fail. */
int cmpc_rfile_put(cmpc_rfile *r, cmpc_ctx *ctx, const char *name, const char *tmp_name,
		   const unsigned char *der, size_t len);
/* The file name of the server URL's directory into the answer
 * (cmpc_transfer_write): 1; 0 when there is no such file (yet); -1 after
 * cmpc_transfer_fail. */
int cmpc_rfile_get(cmpc_rfile *r, cmpc_ctx *ctx, const char *name);

/*
 * The e-mail transport (RFC 2510 5.3), for a store-and-forward caller's
 * transfer function: a message goes out as a mail by SMTP(S), its answer
 * is looked for in an inbox by IMAP(S) or POP3(S), all through libcurl.
 * TLS is verified as for HTTPS (cmpc_set1_tls_trust, else the system
 * CAs).  The password is borrowed and goes only to libcurl.
 */
typedef struct {
	const char *to;	       /* the CA's address (of the mailto: URL) */
	const char *from;      /* ours: From: and the SMTP envelope */
	const char *smtp_url;  /* smtp://host[:port] or smtps://host[:port] */
	const char *inbox_url; /* imap[s]://host[:port][/MAILBOX] or pop3[s]://host[:port] */
	const char *user;      /* for the inbox, and for SMTP over TLS; NULL: none */
	const char *password;  /* NULL: none */
	int starttls;	       /* smtp://, imap://, pop3://: require STARTTLS */
	size_t max_mail;       /* largest mail read (0: the response limit * 2 + 64 KiB) */
	int max_scan;	       /* most mails read per look (0: 50) */
} cmpc_mail;
/* NULL when m's URLs and addresses are usable, else why (static text). */
const char *cmpc_mail_check(const cmpc_mail *m);
/* Sends the DER message der as message seq of transaction tid (lower-case
 * hex): 0, or -1 after cmpc_transfer_fail. */
int cmpc_mail_send(cmpc_ctx *ctx, const cmpc_mail *m, const char *tid, int seq,
		   const unsigned char *der, size_t len);
/* Looks once in the inbox for the answer to message seq of tid: 1 its
 * PKIMessage given to the layer (cmpc_transfer_write) and that mail
 * deleted; 0 not there, or the inbox could not be read just now (note: ""
 * or what was skipped or why the inbox was not read, for the message that
 * says the answer has not come); -1 after cmpc_transfer_fail.
 * Mails for other transactions, answers to other messages, and mails
 * whose CMP part cannot be read or is not this transaction's PKIMessage
 * are left in the inbox and logged. */
int cmpc_mail_fetch(cmpc_ctx *ctx, const cmpc_mail *m, const char *tid, int seq, char *note,
		    size_t notelen);

/*
 * Waits the caller may show (a progress line) and cut short (Ctrl-C).  The
 * layer calls fn when a message goes out and again about once a second
 * while its answer is awaited (CMPC_WAIT_ANSWER, until: the message's time
 * limit), while it sleeps before the next pollReq (CMPC_WAIT_POLL, until:
 * the next poll, give_up: the end of the total timeout), and once with
 * CMPC_WAIT_DONE when the wait is over.  Times are wall-clock seconds.
 * A non-zero return stops the wait at once (libcurl's progress callback,
 * the polling sleep) and the exchange ends with CMPC_ERR_STOPPED; the
 * return of a CMPC_WAIT_DONE call is ignored.  what: "the ir", url: the
 * server.  Called on the caller's thread, never from a signal handler.
 */
typedef enum { CMPC_WAIT_DONE, CMPC_WAIT_ANSWER, CMPC_WAIT_POLL } cmpc_wait_kind;
typedef struct {
	cmpc_wait_kind kind;
	const char *what;
	const char *url;
	time_t until;
	time_t give_up; /* CMPC_WAIT_POLL; 0 otherwise */
} cmpc_wait;
typedef int (*cmpc_wait_fn)(const cmpc_wait *w, void *arg);
void cmpc_set_wait_cb(cmpc_ctx *ctx, cmpc_wait_fn fn, void *arg);

/*
 * TLS client authentication for https:// servers with cert and key: a key
 * on the token (libp11's EVP_PKEY: the token makes the handshake
 * signature) or a software key.  chain: intermediates sent after cert (may
 * be NULL).  Adds references; NULL cert and key clear it.  The connection
 * cache is dropped, so that no connection made with other credentials is
 * reused: call it before the first exchange.  With an http:// server URL
 * this call (or, for a URL set later, the exchange) fails with
 * CMPC_ERR_CONFIG.  A server that asks for a
 * client certificate and refuses ours (or finds none) ends the exchange
 * with CMPC_ERR_TLS.  The key must stay usable (its token open) until
 * cmpc_free or until it is cleared.
 */
cmpc_rv cmpc_set1_tls_client(cmpc_ctx *ctx, X509 *cert, EVP_PKEY *key, STACK_OF(X509) *chain);

/* PBM (RFC 4210 5.1.3.1) protection: reference value (senderKID) and
 * shared secret; copies both. */
cmpc_rv cmpc_set1_pbm(cmpc_ctx *ctx, const unsigned char *ref, size_t ref_len,
		      const unsigned char *secret, size_t secret_len);

/* PEM file of trust anchors: the issued certificate must chain to one of
 * them, and (unless cmpc_load_srv_trusted is given) signature-protected
 * responses must verify under them. */
cmpc_rv cmpc_load_trusted(cmpc_ctx *ctx, const char *pemfile);

/*
 * Who may speak for the CA (RFC 9483 3.5, RFC 9480 2.10).  A signed
 * response counts only when its signer's certificate verifies under the
 * server trust anchors (default: those of cmpc_load_trusted) AND the
 * signer is a trust anchor itself, the CA certificate that issued the
 * certificate the response is about, a certificate with id-kp-cmcCA or
 * id-kp-cmcRA, or names the expected sender (cmpc_set1_expected_sender).
 * Anything else -- a device certificate of the same PKI -- is refused
 * before any part of the response is used.
 */
/* PEM file of the anchors for response signers (adds to earlier calls). */
cmpc_rv cmpc_load_srv_trusted(cmpc_ctx *ctx, const char *pemfile);
/* Pins the CMP server's certificate: responses must be signed with its key
 * (no path is built for it); NULL unpins. */
cmpc_rv cmpc_set1_srv_cert(cmpc_ctx *ctx, X509 *cert);
/* Accept any signer that verifies under the server anchors (the behaviour
 * of OpenSSL's own client); default off. */
void cmpc_set_any_response_signer(cmpc_ctx *ctx, int on);

cmpc_rv cmpc_set1_subject(cmpc_ctx *ctx, const X509_NAME *subject);
cmpc_rv cmpc_set1_sans(cmpc_ctx *ctx, const GENERAL_NAMES *sans);
/* Extensions requested besides the SANs (keyUsage, extendedKeyUsage,
 * certificatePolicies, basicConstraints ...): copied; they go into the
 * CRMF certTemplate and into a CSR the layer makes for p10cr, with the
 * SANs in the same list.  NULL or empty clears. */
cmpc_rv cmpc_set1_req_extensions(cmpc_ctx *ctx, const STACK_OF(X509_EXTENSION) *exts);
/* Requested validity in days from now (the certTemplate's notBefore and
 * notAfter, OSSL_CMP_OPT_VALIDITY_DAYS); 0: none requested.  A PKCS#10
 * request has no such field: p10cr carries none. */
void cmpc_set_validity_days(cmpc_ctx *ctx, int days);
/* Ask for implicit confirmation; used only when the server grants it. */
void cmpc_set_implicit_confirm(cmpc_ctx *ctx, int on);

/*
 * Called with the verified certificate and the CA certificates (issuer
 * first) before the certificate is confirmed to the CA.  Non-zero refuses
 * it: it is rejected in certConf (failInfo systemFailure) and the exchange
 * ends with CMPC_ERR_CERT, carrying why.  This is where the caller stores
 * the certificate, so that the CA never counts as accepted a certificate
 * that could not be kept.
 */
typedef int (*cmpc_accept_fn)(X509 *cert, STACK_OF(X509) *cacerts, void *arg, char *why,
			      size_t whylen);
void cmpc_set_accept_cb(cmpc_ctx *ctx, cmpc_accept_fn fn, void *arg);

/*
 * Initialization request for key (the POP signature is made with it).
 * Verifies the response protection and the new certificate (chains to a
 * trust anchor, carries key's public key, the requested subject) before
 * confirming; a certificate that fails is rejected in certConf.
 * On success: ret_cert the new certificate, ret_cacerts the CA
 * certificates of its verified chain, issuer first, up to the trust anchor
 * (caPubs that are not on that chain are ignored).
 */
cmpc_rv cmpc_ir(cmpc_ctx *ctx, EVP_PKEY *key, X509 **ret_cert,
		STACK_OF(X509) **ret_cacerts);

/* ---- every other exchange an end entity needs, and its protection --- */

/*
 * Signature protection (RFC 4210 5.1.3.3) of requests and certConf with
 * cert and key: a key on the token (ECDSA, RSA PKCS#1 v1.5) or a software
 * key for protection-only credentials.  chain: intermediates sent in
 * extraCerts (may be NULL).  Setting a signer drops any PBM secret: OpenSSL
 * 3.0 would otherwise protect with PBM.  NULL cert and key: back to PBM.
 */
cmpc_rv cmpc_set1_signer(cmpc_ctx *ctx, X509 *cert, EVP_PKEY *key, STACK_OF(X509) *chain);

/*
 * PBM parameters (RFC 4210 5.1.3.1; defaults SHA-256, HMAC-SHA256, 10000
 * iterations, 16-byte salt).  owf and mac are OpenSSL NIDs (0 keeps the
 * default); iterations 100..100000.  OpenSSL 3.0 has no iteration setting:
 * the layer applies it to outgoing messages itself.
 */
cmpc_rv cmpc_set_pbm_params(cmpc_ctx *ctx, int owf_nid, int mac_nid, int iterations);

/* certProfile (RFC 9480 id-it 21) in the generalInfo of requests; NULL clears. */
cmpc_rv cmpc_set1_cert_profile(cmpc_ctx *ctx, const char *profile);
/* sender and recipient in the PKIHeader (NULL: OpenSSL's defaults).  The
 * sender is set in PBM mode only (written into the header); with signature
 * protection it is the signer certificate's subject (OpenSSL 3.0), and a
 * different name is CMPC_ERR_CONFIG. */
cmpc_rv cmpc_set1_sender(cmpc_ctx *ctx, const X509_NAME *name);
cmpc_rv cmpc_set1_recipient(cmpc_ctx *ctx, const X509_NAME *name);
/* The sender every response must name (RFC 4210 PKIHeader.sender); NULL:
 * any sender whose protection verifies.  A MAC only proves that the sender
 * knows the shared secret, so set this to the CA's name where it is known. */
cmpc_rv cmpc_set1_expected_sender(cmpc_ctx *ctx, const X509_NAME *name);

/* Accept unprotected error messages (printed as unverified); default no. */
void cmpc_set_unprotected_errors(cmpc_ctx *ctx, int on);

typedef enum {
	CMPC_REQ_IR,    /* initialization request */
	CMPC_REQ_CR,    /* certification request, signature-protected */
	CMPC_REQ_KUR,   /* key update: protected by the old key, oldCertID control */
	CMPC_REQ_P10CR, /* PKCS#10 request signed with the new key */
} cmpc_req_type;

/*
 * A certificate request of any kind for newkey (its signatures make the
 * POP, or sign the CSR for P10CR).  oldcert: the certificate being updated
 * (KUR, required; its key must be the signer's).  csr: for P10CR, a
 * request signed by newkey (NULL: the layer makes one from the subject and
 * SANs).  Verification, certConf, the accept callback and the results are
 * as for cmpc_ir; for KUR the new certificate must keep the subject of
 * oldcert unless a subject was set.
 */
cmpc_rv cmpc_certreq(cmpc_ctx *ctx, cmpc_req_type type, EVP_PKEY *newkey, X509 *oldcert,
		     X509_REQ *csr, X509 **ret_cert, STACK_OF(X509) **ret_cacerts);

/*
 * Key archive (RFC 4211 6.4): the next ir/cr/kur carries the private key,
 * wrapped on the token for the CA's key-archive certificate, in a
 * pkiArchiveOptions control (EnvelopedData, or EncryptedValue for a CA
 * that speaks only that).  The request OpenSSL builds is edited on its
 * way out (cmpc_archive.c says why); NULL clears.  Copied.
 */
typedef enum { CMPC_ARCHIVE_ENVELOPED = 1, CMPC_ARCHIVE_ENCVALUE } cmpc_archive_format;
typedef struct {
	cmpc_archive_format format;
	X509 *recipient;              /* the CA's key-archive certificate (RSA) */
	int oaep;                     /* AES key wrapped with RSA-OAEP SHA-1, else PKCS#1 v1.5 */
	const unsigned char *enc_cek; /* the AES-256 key, wrapped to recipient */
	size_t enc_cek_len;
	int cbc;                      /* PrivateKeyInfo under aes256-CBC (iv), else AES-KWP */
	unsigned char iv[16];
	const unsigned char *enc_key; /* the PrivateKeyInfo, wrapped with the AES key */
	size_t enc_key_len;
} cmpc_archive;
cmpc_rv cmpc_set1_archive(cmpc_ctx *ctx, const cmpc_archive *a);

/* ---- Polling across processes (RFC 4210 5.3.22, RFC 9483 4.4) -------- */

#define CMPC_ID_MAX 64

/* What continues a transaction the CA answered "waiting": enough for a
 * later process to poll, finish or abandon it. */
typedef struct {
	cmpc_req_type type;
	unsigned char tid[CMPC_ID_MAX];   /* transactionID */
	size_t tid_len;
	unsigned char nonce[CMPC_ID_MAX]; /* the CA's last senderNonce: our next recipNonce */
	size_t nonce_len;
	int cert_req_id; /* 0; -1 for p10cr */
	long check_after; /* seconds the CA last asked to wait */
	/* A message stored by a store-and-forward transport
	 * (cmpc_transfer_stored) whose answer has not been read: its
	 * senderNonce, which the answer's recipNonce must be (0: none; the
	 * transaction continues with a pollReq).  nonce is then empty when
	 * the CA has not answered yet at all. */
	unsigned char sent_nonce[CMPC_ID_MAX];
	size_t sent_nonce_len;
} cmpc_pending;

/*
 * Called each time the CA has answered "waiting" (the answer verified),
 * before the layer waits: the caller saves p, so that cmpc_resume or
 * cmpc_abandon can continue after the process ended.  A certificate
 * request that ends with CMPC_ERR_WAITING has called it at least once.
 */
typedef void (*cmpc_pending_fn)(const cmpc_pending *p, void *arg);
void cmpc_set_pending_cb(cmpc_ctx *ctx, cmpc_pending_fn fn, void *arg);

/*
 * Continues the transaction p of an earlier cmpc_certreq with the same
 * settings, newkey (and oldcert, csr) as then: pollReq at the CA's
 * checkAfter until the certificate comes or the total timeout ends, then
 * as cmpc_certreq (verification, accept callback, certConf).  The pending
 * callback is called as the CA keeps answering "waiting".
 * CMPC_ERR_REJECTED: the CA ended the transaction (its error message is in
 * errmsg).
 */
cmpc_rv cmpc_resume(cmpc_ctx *ctx, const cmpc_pending *p, EVP_PKEY *newkey, X509 *oldcert,
		    X509_REQ *csr, X509 **ret_cert, STACK_OF(X509) **ret_cacerts);

/*
 * Tells the CA that the client gives up transaction p: an error message
 * (PKIStatus rejection, reason in statusString), protected like the
 * request.  CMPC_OK when the CA acknowledged it (pkiConf, or an error
 * message of its own, which is logged).
 */
cmpc_rv cmpc_abandon(cmpc_ctx *ctx, const cmpc_pending *p, const char *reason);

/* The transactionID (hex) of the last message sent, for logs; "" if none. */
const char *cmpc_transaction_id(const cmpc_ctx *ctx);

/* 1 when the last cmpc_certreq or cmpc_resume failed in a way that leaves
 * its transaction open at the CA, besides CMPC_ERR_WAITING: the answer
 * that said it ended could not be verified (an unprotected error message
 * while polling).  The caller keeps the transaction for a later resume. */
int cmpc_left_open(const cmpc_ctx *ctx);

/*
 * An rr or genm whose message a store-and-forward transport stored
 * (cmpc_transfer_stored) ends with CMPC_ERR_WAITING.  cmpc_stored_ids then
 * gives what its answer must answer (tid and sent_nonce of ret; 1, or 0
 * when the last exchange stored nothing), for the caller to keep.
 * cmpc_set_stored_answer(ctx, p): the next cmpc_rr or cmpc_genm_* sends
 * nothing; it reads the answer to the message p stored (tid, sent_nonce)
 * through the transfer function (req NULL), checks its protection,
 * transactionID and recipNonce, and goes on with it as with the answer to
 * its own request (CMPC_ERR_WAITING again when none is there yet).
 */
int cmpc_stored_ids(const cmpc_ctx *ctx, cmpc_pending *ret);
void cmpc_set_stored_answer(cmpc_ctx *ctx, const cmpc_pending *p);

/* Outcome of a revocation request besides success. */
typedef enum {
	CMPC_RR_ACCEPTED = 0,
	CMPC_RR_GRANTED_WITH_MODS = 1,
	CMPC_RR_REVOCATION_WARNING = 4,      /* PKIStatus values, RFC 4210 */
	CMPC_RR_REVOCATION_NOTIFICATION = 5,
} cmpc_rr_status;

/* Revocation request for cert (issuer and serial), CRL reason code
 * (-1: none given, sent as unspecified (0): RFC 9483 4.2 requires one).
 * ret_status gets the PKIStatus the CA answered. */
cmpc_rv cmpc_rr(cmpc_ctx *ctx, X509 *cert, int reason, cmpc_rr_status *ret_status);
/* After cmpc_rr failed with CMPC_ERR_REJECTED in a verified answer: did
 * the CA say the certificate is already revoked (failInfo certRevoked)? */
int cmpc_rr_already_revoked(const cmpc_ctx *ctx);

/*
 * Cross-certification (ccr, RFC 4210 5.3.11): asks the CA of the context
 * (another CA) to certify key, the requesting CA's key, for the subject
 * set (cmpc_set1_subject) with basicConstraints CA:TRUE (pathLenConstraint
 * path_len unless negative; a configured CA:TRUE with its own path length
 * wins, a configured CA:FALSE is CMPC_ERR_CONFIG), keyUsage keyCertSign and
 * cRLSign (unless the configured one has keyCertSign), and the configured
 * extensions and SANs; its proof of possession is signed by
 * key.  The message is protected as every request (signer or PBM).  The
 * ccp is checked like an ip (protection, status, public key, subject,
 * chain to the anchors) and confirmed (certConf, pkiConf).  CMPC_OK with
 * the cross-certificate in *ret_cert and, unless ret_chain is NULL, the
 * CA certificates of its chain.  No polling and no store-and-forward
 * transport: a "waiting" ccr is not resumed.
 */
cmpc_rv cmpc_ccr(cmpc_ctx *ctx, EVP_PKEY *key, int path_len, X509 **ret_cert,
		 STACK_OF(X509) **ret_chain);

/*
 * Central key generation (RFC 9483 4.1.6, cmpc_central.c): an ir, cr or
 * kur (protected as each is: ir with PBM or a signer, cr with a signer,
 * kur with oldcert's key as signer) asks the CA to make the key pair.  Its
 * template names the key type only (publicKey: the algorithm, an empty
 * subjectPublicKey); transport goes in the protocolEncrKey control (RFC
 * 4211 6.6), the key the CA encrypts the private key to.  The answer is
 * checked as for cmpc_certreq (status, subject, chain, signer); then
 * import is called with the certificate, its CA chain and the private key
 * as sent (cmpc_privkey; the answer's protection verified): it returns 0
 * when key and certificate are stored, else -1 with why, and the
 * certificate is refused in the certConf (CMPC_ERR_CERT).  No polling, no
 * store-and-forward transport.
 */
enum { CMPC_CENTRAL_EC = 1, CMPC_CENTRAL_RSA = 2 };
struct cmpc_privkey_st;
typedef int (*cmpc_central_fn)(X509 *cert, STACK_OF(X509) *cacerts,
			       const struct cmpc_privkey_st *k, void *arg, char *why,
			       size_t whylen);
typedef struct {
	int key_alg;	     /* CMPC_CENTRAL_EC or CMPC_CENTRAL_RSA */
	int key_bits;	     /* EC: 256 or 384 (the curve); RSA: not sent */
	EVP_PKEY *transport; /* public key for protocolEncrKey */
	X509 *oldcert;	     /* kur: the certificate updated */
	cmpc_central_fn import;
	void *arg;
} cmpc_central_req;
cmpc_rv cmpc_central(cmpc_ctx *ctx, cmpc_req_type type, const cmpc_central_req *rq,
		     X509 **ret_cert, STACK_OF(X509) **ret_cacerts);

/* Whether cert verifies under the trust anchors of cmpc_load_trusted (an
 * anchor verifies as itself), with untrusted as intermediates (may be
 * NULL): CMPC_OK, or CMPC_ERR_CERT with the reason in errmsg. */
cmpc_rv cmpc_verify_under_anchors(cmpc_ctx *ctx, X509 *cert, STACK_OF(X509) *untrusted);

/* genm id-it-caCerts (17): the CA certificates the CA publishes ("none" is
 * an empty stack, not NULL); not verified: see cmpc_verify_under_anchors. */
cmpc_rv cmpc_genm_ca_certs(cmpc_ctx *ctx, STACK_OF(X509) **ret_certs);

/*
 * genm id-it-rootCaCert (20) / rootCaKeyUpdate (18): asks whether the root
 * old_root has a successor.  A new root is returned only when newWithOld
 * verifies under old_root (and newWithNew under the new root); NULL in
 * *ret_new_root means no update.  ret_new_with_old (may be NULL) gets the
 * link certificate.
 */
cmpc_rv cmpc_genm_root_update(cmpc_ctx *ctx, X509 *old_root, X509 **ret_new_root,
			      X509 **ret_new_with_old);

/* What a certReqTemplate (id-it 19) asks for; fields the CA left open are
 * 0 / NULL. */
typedef struct {
	X509_NAME *subject;
	int key_alg;                 /* 1 EC, 2 RSA (tok_keyalg values), 0 open */
	int key_bits;                /* EC field bits or RSA modulus bits, 0 open */
	STACK_OF(X509_EXTENSION) *extensions;
} cmpc_template;
void cmpc_template_clear(cmpc_template *t);
cmpc_rv cmpc_genm_cert_template(cmpc_ctx *ctx, cmpc_template *ret_template);

/* genm crlStatusList (22) -> crls (23): current CRLs for the issuers of certs
 * (certs NULL: for the subjects of the trust anchors; RFC 9480 requires at
 * least one CRLStatus).  "None" is an empty stack, not NULL. */
cmpc_rv cmpc_genm_crls(cmpc_ctx *ctx, STACK_OF(X509) *certs, STACK_OF(X509_CRL) **ret_crls);

/*
 * The private key a CA sent with a certificate (central key generation,
 * RFC 9483 4.1.6; key recovery): CertifiedKeyPair.privateKey of the
 * CertResponse for certReqId rid (-1: the first) in the ip, cp or kup der
 * (cmpc_privkey.c; OpenSSL 3.0 reads no such field).  Returns 1 and fills
 * *ret_k (free with cmpc_privkey_clear), 0 when the response carries no
 * private key, -1 when it does not parse, with why.  Nothing is decrypted:
 * the protection of der is not checked here.
 */
typedef enum { CMPC_PRIVKEY_ENCVALUE = 1, CMPC_PRIVKEY_ENVELOPED } cmpc_privkey_kind;
typedef struct cmpc_privkey_st {
	cmpc_privkey_kind kind;
	/* EncryptedValue (RFC 4211 2.1): */
	int symm_nid;	       /* symmAlg, e.g. NID_id_aes256_wrap_pad, NID_aes_256_cbc */
	unsigned char iv[16];  /* symmAlg's OCTET STRING parameter (CBC) */
	size_t iv_len;	       /* 0: none */
	int keyenc_nid;	       /* keyAlg: NID_rsaEncryption (PKCS#1 v1.5), NID_rsaesOaep */
	int oaep_md_nid;       /* its hash (NID_sha1 when not given) */
	unsigned char *enc_symm_key; /* encSymmKey */
	size_t enc_symm_key_len;
	unsigned char *enc_value; /* encValue */
	size_t enc_value_len;
	/* EnvelopedData (RFC 5652 6.1), DER, as a SEQUENCE: */
	unsigned char *enveloped;
	size_t enveloped_len;
} cmpc_privkey;
int cmpc_privkey_get(const unsigned char *der, size_t len, long rid, cmpc_privkey *ret_k,
		     char *why, size_t whylen);
void cmpc_privkey_clear(cmpc_privkey *k);

/*
 * Key recovery (krr/krp, RFC 4210 5.3.8 and 5.3.9): asks the CA for the
 * archived private key of cert (oldCertID control: its issuer and serial;
 * the template: its subject and public key; no POP, the key is what is
 * lost), encrypted to tpub (protocolEncrKey control, RFC 4211 6.6).  The
 * message is protected as the context says (signer or PBM).  The krp is
 * verified (protection, transaction, status), and of its keyPairHist the
 * entry whose certificate carries cert's public key is taken: that
 * certificate must chain to the anchors and its issuer be one the signer
 * may speak for.  *ret_cert and *ret_key (cmpc_privkey_clear) get it, the
 * key as the CA encrypted it (an EnvelopedData too: the krp's protection
 * is then verified by the layer, cmpc_own_validate); *ret_cacerts
 * (sk_X509_pop_free): the CA certificates of that certificate's verified
 * chain, which must have signed an EnvelopedData's SignedData;
 * *ret_others: how many other entries the CA sent (earlier keys, not
 * returned).  A krp is not confirmed (RFC 4210
 * defines certConf for issued certificates only).  CMPC_ERR_REJECTED
 * with the CA's status, failInfo and text when it refused.
 */
cmpc_rv cmpc_krr(cmpc_ctx *ctx, X509 *cert, EVP_PKEY *tpub, X509 **ret_cert,
		 cmpc_privkey *ret_key, STACK_OF(X509) **ret_cacerts, int *ret_others);

/*
 * The EnvelopedData of a cmpc_privkey (RFC 9483 4.1.6, cmpc_keypkg.c) as
 * the token decrypts it: the first key transport recipient's encrypted
 * key and algorithm, the content's AES-CBC IV and ciphertext (its content
 * type must be id-signedData).  1, or 0 with why.
 */
typedef struct {
	int keyenc_nid;	 /* NID_rsaEncryption (PKCS#1 v1.5), NID_rsaesOaep */
	int oaep_md_nid; /* its hash (NID_sha1 when not given) */
	unsigned char *enc_key;
	size_t enc_key_len;
	int content_nid; /* NID_aes_256_cbc ... */
	unsigned char iv[16];
	unsigned char *enc_content;
	size_t enc_content_len;
} cmpc_envparts;
int cmpc_enveloped_parts(const cmpc_privkey *k, cmpc_envparts *ret, char *why, size_t whylen);
void cmpc_envparts_clear(cmpc_envparts *e);
/*
 * The decrypted content sd (a SignedData): verified as signed by the
 * issuer of cert, which must be one of cacerts (the CA certificates of the
 * verified chain), its eContent an AsymmetricKeyPackage (RFC 5958) whose
 * first OneAsymmetricKey becomes *ret_key.  Every buffer that held the
 * key is cleansed (the caller cleanses sd and *ret_key).  1, or 0 with why.
 */
int cmpc_keypkg_open(const unsigned char *sd, size_t len, X509 *cert, STACK_OF(X509) *cacerts,
		     EVP_PKEY **ret_key, char *why, size_t whylen);

#endif
