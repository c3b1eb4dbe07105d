/*
 * The stores behind a store-and-forward server (spool.c): the local
 * directory of file:///DIR (spool_dir.c), and the remote ones.  The core
 * numbers the messages, waits and saves; a store only moves one message
 * in or one answer out.
 */
#ifndef P11E_AGENT_SPOOL_H
#define P11E_AGENT_SPOOL_H

#include <stddef.h>

#include "agent/agent.h"
#include "cmp/cmpc.h"

/* One message of a transaction. */
typedef struct {
	const char *tid;      /* the transactionID in lowercase hex */
	int seq;	      /* the message's number in the transaction, from 1 */
	const char *req_name; /* the request's file name (store_request_name) */
	const char *rsp_name; /* its answer's (store_response_name) */
} spool_msg;

typedef struct spool_store spool_store;
struct spool_store {
	const char *kind; /* for messages: "spool directory", "FTP directory"... */
	char where[1024]; /* for messages: where the files go, no password */
	long poll_ms;	  /* longest pause between two looks (the first come sooner) */
	int by_mail;	  /* the messages go as mails, not as named files */
	/* Publishes the request: 0, or -1 after cmpc_transfer_fail. */
	int (*put)(spool_store *st, cmpc_ctx *ctx, const spool_msg *m, const unsigned char *der,
		   size_t len);
	/* 1: the answer is given to the layer (cmpc_transfer_write); 0: it is
	 * not there yet; -1 after cmpc_transfer_fail. */
	int (*get)(spool_store *st, cmpc_ctx *ctx, const spool_msg *m);
	/* Waits up to ms for the answer to m to appear, or less (an
	 * interrupt); NULL: the core sleeps ms. */
	void (*wait)(spool_store *st, const spool_msg *m, long ms);
	void (*close)(spool_store *st); /* may be NULL */
	void *arg;
};

/* A store's open function: fills st for e's server URL; 0, or -1 with err
 * (a configuration error). */
typedef int spool_open_fn(const conf_enrollment *e, spool_store *st, char *err,
			  size_t errlen);

spool_open_fn spool_dir_open;
spool_open_fn spool_remote_open; /* ftp://, ftps://, sftp://, scp:// */
spool_open_fn spool_mail_open;

/* spool_mail.c: whether e's mailto: server has the mail settings it needs;
 * 0, or -1 with err saying which are missing or wrong. */
int agent_spool_mail_conf(const conf_enrollment *e, char *err, size_t errlen);

#endif
