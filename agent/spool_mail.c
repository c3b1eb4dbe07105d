/*
 * The mail store of server = mailto:ADDR (RFC 2510 5.3): each message is
 * mailed to ADDR through smtp_server, and its answer is looked for in
 * mail_inbox (cmp/cmpc_mail.c moves the mails, cmp/cmpc_mime.c makes and
 * reads them).  The core (spool.c) numbers the messages, waits up to
 * store_wait and saves the transaction when no answer came.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "agent/agent-cmd.h"
#include "agent/spool.h"

/* A look into the inbox is a login and a search on the mail server: at
 * most every store_wait / 10, within these bounds (the first looks after
 * a message went out come sooner: spool.c). */
#define POLL_MIN_MS 200
#define POLL_MAX_MS 2000
#define DEFAULT_WAIT_S 30

static struct {
	cmpc_mail m;
	char to[512], from[512], smtp[1024], inbox[1024], user[256];
	char inbox_shown[512];
	secret *password;
} ms;

static void note(spool_store *st, const char *text)
{
	/* where the exit-9 message looks: what was skipped goes with it */
	if (*text != '\0')
		snprintf(st->where, sizeof(st->where), "%s; %.500s", ms.inbox_shown, text);
	else
		snprintf(st->where, sizeof(st->where), "%s", ms.inbox_shown);
}

static int put(spool_store *st, cmpc_ctx *ctx, const spool_msg *m, const unsigned char *der,
	       size_t len)
{
	(void)st;
	return cmpc_mail_send(ctx, &ms.m, m->tid, m->seq, der, len);
}

static int get(spool_store *st, cmpc_ctx *ctx, const spool_msg *m)
{
	char text[768];
	int r;

	r = cmpc_mail_fetch(ctx, &ms.m, m->tid, m->seq, text, sizeof(text));
	note(st, r == 0 ? text : "");
	return r;
}

static void close_mail(spool_store *st)
{
	(void)st;
	secret_free(ms.password);
	ms.password = NULL;
	ms.m.password = NULL;
}

int agent_spool_mail_conf(const conf_enrollment *e, char *err, size_t errlen)
{
	const char *miss[3], *bad;
	cmpc_mail m;
	int n = 0;

	if (e->mail_from == NULL)
		miss[n++] = "mail_from";
	if (e->smtp_server == NULL)
		miss[n++] = "smtp_server";
	if (e->mail_inbox == NULL)
		miss[n++] = "mail_inbox";
	if (n > 0) {
		snprintf(err, errlen,
			 "server %s needs mail_from (our address), smtp_server "
			 "(smtp[s]://host[:port]) and mail_inbox (imap[s]://host[:port]/MAILBOX or "
			 "pop3[s]://host[:port]); missing: %s%s%s%s%s",
			 e->server, miss[0], n > 1 ? ", " : "", n > 1 ? miss[1] : "",
			 n > 2 ? ", " : "", n > 2 ? miss[2] : "");
		return -1;
	}
	if ((e->mail_user == NULL) != (e->mail_password_source == NULL)) {
		snprintf(err, errlen, "%s is set without %s: the mail servers' login needs both",
			 e->mail_user != NULL ? "mail_user" : "mail_password_source",
			 e->mail_user != NULL ? "mail_password_source" : "mail_user");
		return -1;
	}
	memset(&m, 0, sizeof(m));
	m.to = e->server + 7;
	m.from = e->mail_from;
	m.smtp_url = e->smtp_server;
	m.inbox_url = e->mail_inbox;
	if ((bad = cmpc_mail_check(&m)) != NULL) {
		snprintf(err, errlen, "server %s: %s", e->server, bad);
		return -1;
	}
	return 0;
}

int spool_mail_open(const conf_enrollment *e, spool_store *st, char *err, size_t errlen)
{
	long poll;
	int wait_s = e->store_wait > 0 ? e->store_wait : DEFAULT_WAIT_S;

	close_mail(st);
	if (agent_spool_mail_conf(e, err, errlen) < 0)
		return -1;
	if (snprintf(ms.to, sizeof(ms.to), "%s", e->server + 7) >= (int)sizeof(ms.to) ||
	    snprintf(ms.from, sizeof(ms.from), "%s", e->mail_from) >= (int)sizeof(ms.from) ||
	    snprintf(ms.smtp, sizeof(ms.smtp), "%s", e->smtp_server) >= (int)sizeof(ms.smtp) ||
	    snprintf(ms.inbox, sizeof(ms.inbox), "%s", e->mail_inbox) >= (int)sizeof(ms.inbox) ||
	    snprintf(ms.user, sizeof(ms.user), "%s", e->mail_user != NULL ? e->mail_user : "") >=
		(int)sizeof(ms.user)) {
		snprintf(err, errlen, "an address, mail server URL or mail_user is too long");
		return -1;
	}
	memset(&ms.m, 0, sizeof(ms.m));
	ms.m.to = ms.to;
	ms.m.from = ms.from;
	ms.m.smtp_url = ms.smtp;
	ms.m.inbox_url = ms.inbox;
	ms.m.starttls = e->mail_starttls == 1;
	if (e->mail_user != NULL) {
		ms.m.user = ms.user;
		/* read now, for the whole command: a prompt or an fd works once */
		if (secret_read(e->mail_password_source, "mail password", &ms.password, err,
				errlen) < 0)
			return -1;
		ms.m.password = ms.password->buf;
	}
	snprintf(ms.inbox_shown, sizeof(ms.inbox_shown), "%.500s", ms.inbox);
	poll = (long)wait_s * 100;
	st->kind = "its answer awaited in";
	st->by_mail = 1;
	snprintf(st->where, sizeof(st->where), "%s", ms.inbox);
	st->poll_ms = poll < POLL_MIN_MS ? POLL_MIN_MS : poll > POLL_MAX_MS ? POLL_MAX_MS : poll;
	st->put = put;
	st->get = get;
	st->close = close_mail;
	return 0;
}
