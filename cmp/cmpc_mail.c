/*
 * The e-mail transport (RFC 2510 section 5.3) through libcurl: a message
 * goes out by SMTP(S) as the mail cmpc_mime.c builds, and its answer is
 * looked for in an inbox by IMAP(S) or POP3(S).  No mail protocol code of
 * our own: libcurl speaks them, we only choose the commands.
 *
 * Which mail is the answer.  IMAP searches the mailbox on the server
 * (UID SEARCH UNDELETED for the transactionID in X-CMP-Transaction-ID,
 * the subject, In-Reply-To or References); POP3 has no search, so the
 * newest mails are read, up to max_scan.  A mail is taken when
 *   1. its In-Reply-To, References or subject names this message of this
 *      transaction, or (none of them naming a message) its
 *      X-CMP-Transaction-ID names the transaction (cmpc_mime_match),
 *   2. it has a CMP part in base64 within the size limits, and
 *   3. that part is one PKIMessage whose transactionID is ours.
 * Then its PKIMessage goes to the layer, which checks protection, sender
 * and nonces as for any transport, and the mail is deleted (IMAP: UID
 * STORE +FLAGS \Deleted and UID EXPUNGE of that mail alone; POP3: DELE of
 * that mail alone): it is used once, as an answer file of the spool is.
 * Every other mail stays where it is and is reported in the log: a mail
 * for another transaction is someone else's; an answer to an earlier
 * message (a duplicate, a late one) or a mail whose CMP part is broken or
 * names another transaction is evidence for the operator, and deleting
 * it would let anyone who can send us mail erase what the CA sent.  The
 * transaction goes on waiting for a usable answer: a broken mail ends
 * nothing, so a stray or forged mail cannot end an enrollment either.
 * What was skipped goes into the note of the "not there yet" message.
 *
 * An inbox that cannot be read just now (its server down or restarting,
 * a timeout, a connection lost) is "not there yet" too, with the reason
 * in the note: the request went out, and its answer can still be read
 * later, so the wait goes on and the transaction is saved at its end.  A
 * refused login, TLS that does not verify and a server that is no mail
 * server end the exchange (exit 5): waiting does not mend them.
 *
 * Nothing else of a mail is trusted: the headers only choose which mails
 * are parsed, and they reach the log made printable and cut.  Sizes are
 * bounded: a mail at max_mail, its CMP part at the response size limit,
 * the mails read per look at max_scan, a search answer at SEARCH_MAX.
 *
 * Credentials: the password goes to libcurl only (CURLOPT_PASSWORD),
 * never into a URL or a message; on SMTP only over TLS (smtps://, or
 * STARTTLS required), so that it never crosses a network in clear
 * because a server offered AUTH.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "cmp/cmpc-int.h"

#define DEFAULT_SCAN 50
#define SEARCH_MAX 65536

typedef struct {
	unsigned char *b;
	size_t len, cap, max;
	int over;
} sink;

static size_t on_data(char *data, size_t size, size_t nmemb, void *arg)
{
	sink *s = arg;
	size_t n = size * nmemb, cap;
	unsigned char *p;

	if (n > s->max - s->len) {
		s->over = 1;
		return 0;
	}
	if (s->len + n > s->cap) {
		cap = s->cap > 0 ? s->cap : 8192;
		while (cap < s->len + n)
			cap *= 2;
		if (cap > s->max)
			cap = s->max;
		if ((p = OPENSSL_realloc(s->b, cap)) == NULL)
			return 0;
		s->b = p;
		s->cap = cap;
	}
	memcpy(s->b + s->len, data, n);
	s->len += n;
	return n;
}

static void sink_free(sink *s)
{
	OPENSSL_clear_free(s->b, s->cap);
	memset(s, 0, sizeof(*s));
}

typedef struct {
	const unsigned char *p;
	size_t left;
} source;

static size_t on_read(char *out, size_t size, size_t nmemb, void *arg)
{
	source *s = arg;
	size_t n = size * nmemb;

	if (n > s->left)
		n = s->left;
	memcpy(out, s->p, n);
	s->p += n;
	s->left -= n;
	return n;
}

static int has_scheme(const char *url, const char *const *schemes)
{
	for (; *schemes != NULL; schemes++)
		if (strncasecmp(url, *schemes, strlen(*schemes)) == 0)
			return 1;
	return 0;
}

static const char *const smtp_schemes[] = { "smtp://", "smtps://", NULL };
static const char *const imap_schemes[] = { "imap://", "imaps://", NULL };
static const char *const pop3_schemes[] = { "pop3://", "pop3s://", NULL };

static int is_tls_url(const char *url)
{
	return strncasecmp(url, "smtps:", 6) == 0 || strncasecmp(url, "imaps:", 6) == 0 ||
	       strncasecmp(url, "pop3s:", 6) == 0;
}

/* A URL with a user or password in it would show them wherever the URL
 * is shown. */
static int has_userinfo(const char *url)
{
	const char *p = strstr(url, "://"), *end;

	if (p == NULL)
		return 0;
	p += 3;
	end = p + strcspn(p, "/?#");
	return memchr(p, '@', (size_t)(end - p)) != NULL;
}

static int plain_url(const char *u)
{
	for (; *u != '\0'; u++)
		if ((unsigned char)*u <= 0x20 || (unsigned char)*u >= 0x7f)
			return 0;
	return 1;
}

static int addr_ok(const char *a)
{
	if (a == NULL || *a == '\0' || strchr(a, '@') == NULL || strlen(a) > 254)
		return 0;
	for (; *a != '\0'; a++)
		if ((unsigned char)*a <= 0x20 || (unsigned char)*a >= 0x7f || *a == '<' ||
		    *a == '>' || *a == ',' || *a == ';' || *a == '"')
			return 0;
	return 1;
}

const char *cmpc_mail_check(const cmpc_mail *m)
{
	if (!addr_ok(m->to))
		return "the CA's mail address (mailto:) is not one plain address like "
		       "ca@example.org";
	if (!addr_ok(m->from))
		return "mail_from is not one plain address like p11enroll@host.example.org";
	if (m->smtp_url == NULL || !has_scheme(m->smtp_url, smtp_schemes))
		return "smtp_server is not an smtp:// or smtps:// URL (smtps://mail.example.org)";
	if (m->inbox_url == NULL ||
	    (!has_scheme(m->inbox_url, imap_schemes) && !has_scheme(m->inbox_url, pop3_schemes)))
		return "mail_inbox is not an imap://, imaps://, pop3:// or pop3s:// URL "
		       "(imaps://mail.example.org/INBOX)";
	if (!plain_url(m->smtp_url) || !plain_url(m->inbox_url))
		return "smtp_server and mail_inbox must be printable ASCII without blanks (a "
		       "mailbox name with them is written percent-encoded)";
	if (has_userinfo(m->smtp_url) || has_userinfo(m->inbox_url))
		return "smtp_server and mail_inbox take no user or password in the URL: set "
		       "mail_user and mail_password_source";
	return NULL;
}

#define SETOPT(opt, val)                                                                           \
	do {                                                                                       \
		if (curl_easy_setopt(h, opt, val) != CURLE_OK)                                     \
			goto err;                                                                  \
	} while (0)

/* A handle for url with what every mail transfer has: TLS verified as for
 * HTTPS, the timeouts, the stop, the log; the login when login is set. */
static CURL *open_handle(cmpc_ctx *ctx, const cmpc_mail *m, const char *url, const char *protos,
			 int login)
{
	CURL *h = curl_easy_init();

	if (h == NULL)
		return NULL;
	ctx->curl_err[0] = '\0';
	SETOPT(CURLOPT_URL, url);
	SETOPT(CURLOPT_NOSIGNAL, 1L);
	SETOPT(CURLOPT_ERRORBUFFER, ctx->curl_err);
#if LIBCURL_VERSION_NUM >= 0x075500
	SETOPT(CURLOPT_PROTOCOLS_STR, protos);
#else
	SETOPT(CURLOPT_PROTOCOLS, (long)(strncmp(protos, "smtp", 4) == 0
						 ? CURLPROTO_SMTP | CURLPROTO_SMTPS
					     : strncmp(protos, "imap", 4) == 0
						 ? CURLPROTO_IMAP | CURLPROTO_IMAPS
						 : CURLPROTO_POP3 | CURLPROTO_POP3S));
#endif
	SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
	SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
	if (ctx->tls_cafile != NULL) {
		/* exactly this file, not the system CAs besides */
		SETOPT(CURLOPT_CAINFO, ctx->tls_cafile);
		SETOPT(CURLOPT_CAPATH, (char *)NULL);
	}
	if (m->starttls && !is_tls_url(url))
		SETOPT(CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
	SETOPT(CURLOPT_CONNECTTIMEOUT, ctx->connect_s);
	SETOPT(CURLOPT_TIMEOUT, ctx->msg_s);
	if (login && m->user != NULL) {
		SETOPT(CURLOPT_USERNAME, m->user);
		SETOPT(CURLOPT_PASSWORD, m->password != NULL ? m->password : "");
	}
	if (cmpc_curl_watch(h, ctx) != CURLE_OK)
		goto err;
	return h;
err:
	curl_easy_cleanup(h);
	return NULL;
}

/* The failure of a transfer on h: -1 after cmpc_transfer_fail.  what:
 * "sending the mail by smtp://...", server: the setting to check. */
static int fail(cmpc_ctx *ctx, CURL *h, CURLcode cc, const char *what, const char *setting)
{
	const char *detail = ctx->curl_err[0] != '\0' ? ctx->curl_err : curl_easy_strerror(cc);
	long vr = 0;

	if (cc == CURLE_ABORTED_BY_CALLBACK && ctx->x.stopped) {
		cmpc_xfer_fail(ctx, CMPC_ERR_STOPPED, "%s: %s: stopped", ctx->x.what, what);
		return -1;
	}
	if (cc == CURLE_USE_SSL_FAILED) {
		cmpc_transfer_fail(ctx, CMPC_ERR_TLS,
				   "%s: the server does not offer STARTTLS (%s); use its TLS port "
				   "(smtps://, imaps://, pop3s://) or turn mail_starttls off",
				   what, detail);
		return -1;
	}
	if (cmpc_curl_tls_error(cc)) {
		if (curl_easy_getinfo(h, CURLINFO_SSL_VERIFYRESULT, &vr) == CURLE_OK &&
		    vr != X509_V_OK)
			cmpc_transfer_fail(ctx, CMPC_ERR_TLS,
					   "%s: TLS server verification failed: %s (%s); check "
					   "the TLS trust anchors (tls_trusted) and that %s names "
					   "the server's host",
					   what, X509_verify_cert_error_string(vr), detail,
					   setting);
		else
			cmpc_transfer_fail(ctx, CMPC_ERR_TLS,
					   "%s: TLS handshake failed: %s; check that the server "
					   "speaks TLS on that port and the TLS trust anchors "
					   "(tls_trusted)",
					   what, detail);
		return -1;
	}
	switch (cc) {
	case CURLE_LOGIN_DENIED:
		cmpc_transfer_fail(ctx, CMPC_ERR_TRANSPORT,
				   "%s: the server refused the login (%s); check mail_user and "
				   "the password of mail_password_source",
				   what, detail);
		break;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
		cmpc_transfer_fail(ctx, CMPC_ERR_TRANSPORT,
				   "%s: cannot connect: %s; check %s and that the mail server "
				   "runs",
				   what, detail, setting);
		break;
	case CURLE_OPERATION_TIMEDOUT:
		cmpc_transfer_fail(ctx, CMPC_ERR_TRANSPORT,
				   "%s: no answer from the mail server within %ld s (%s); check "
				   "%s and the network",
				   what, ctx->msg_s, detail, setting);
		break;
	case CURLE_OUT_OF_MEMORY:
		cmpc_transfer_fail(ctx, CMPC_ERR_INTERNAL, "%s: out of memory", what);
		break;
	default:
		cmpc_transfer_fail(ctx, CMPC_ERR_TRANSPORT,
				   "%s: %s; check %s and the mail server's log", what, detail,
				   setting);
	}
	return -1;
}

/* The address of "Name <a@b>" or "a@b", as <a@b>. */
static void envelope(const char *a, char *out, size_t len)
{
	const char *lt = strrchr(a, '<'), *gt;

	if (lt != NULL && (gt = strchr(lt, '>')) != NULL)
		snprintf(out, len, "%.*s", (int)(gt - lt + 1), lt);
	else
		snprintf(out, len, "<%s>", a);
}

int cmpc_mail_send(cmpc_ctx *ctx, const cmpc_mail *m, const char *tid, int seq,
		   const unsigned char *der, size_t len)
{
	const char *bad = cmpc_mail_check(m), *host;
	unsigned char rnd[8];
	char msgid[300], rhex[17], from[300], to[300], why[256], what[512];
	char *mail = NULL;
	size_t mail_len = 0;
	struct curl_slist *rcpt = NULL;
	cmpc_mime_out o;
	source src;
	CURL *h = NULL;
	CURLcode cc;
	size_t i;
	int ret = -1, tls;

	if (bad != NULL) {
		cmpc_transfer_fail(ctx, CMPC_ERR_CONFIG, "%s", bad);
		return -1;
	}
	snprintf(what, sizeof(what), "sending the mail to %s by %s", m->to, m->smtp_url);
	if (RAND_bytes(rnd, sizeof(rnd)) != 1 ||
	    !OPENSSL_buf2hexstr_ex(rhex, sizeof(rhex), NULL, rnd, sizeof(rnd), '\0')) {
		cmpc_transfer_fail(ctx, CMPC_ERR_INTERNAL, "%s: no random bytes for its Message-ID",
				   what);
		return -1;
	}
	for (i = 0; rhex[i] != '\0'; i++)
		rhex[i] = (char)(rhex[i] >= 'A' && rhex[i] <= 'F' ? rhex[i] + 32 : rhex[i]);
	/* the domain of our own address: the Message-ID tells nothing else */
	host = strrchr(m->from, '@') + 1;
	snprintf(msgid, sizeof(msgid), "<%s.%d.%s@%.*s>", tid, seq, rhex,
		 (int)strcspn(host, ">"), host);
	memset(&o, 0, sizeof(o));
	o.from = m->from;
	o.to = m->to;
	o.tid = tid;
	o.seq = seq;
	o.msgid = msgid;
	o.date = time(NULL);
	o.der = der;
	o.der_len = len;
	if (!cmpc_mime_build(&o, &mail, &mail_len, why, sizeof(why))) {
		cmpc_transfer_fail(ctx, CMPC_ERR_INTERNAL, "%s: cannot build it: %s", what, why);
		return -1;
	}
	envelope(m->from, from, sizeof(from));
	envelope(m->to, to, sizeof(to));
	tls = is_tls_url(m->smtp_url) || m->starttls;
	if ((rcpt = curl_slist_append(NULL, to)) == NULL ||
	    (h = open_handle(ctx, m, m->smtp_url, "smtp,smtps", tls)) == NULL ||
	    curl_easy_setopt(h, CURLOPT_MAIL_FROM, from) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_MAIL_RCPT, rcpt) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_READDATA, &src) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)mail_len) != CURLE_OK) {
		cmpc_transfer_fail(ctx, CMPC_ERR_INTERNAL, "%s: cannot set up libcurl", what);
		goto out;
	}
	src.p = (const unsigned char *)mail;
	src.left = mail_len;
	cmpc_log(ctx, LOG_DEBUG, "mailing message %d of transaction %s (%zu bytes) to %s by %s",
		 seq, tid, len, m->to, m->smtp_url);
	if ((cc = curl_easy_perform(h)) != CURLE_OK) {
		fail(ctx, h, cc, what, "smtp_server");
		goto out;
	}
	ret = 0;
out:
	curl_easy_cleanup(h);
	curl_slist_free_all(rcpt);
	OPENSSL_free(mail);
	return ret;
}

/* ---- the inbox ------------------------------------------------------- */

typedef struct {
	cmpc_ctx *ctx;
	const cmpc_mail *m;
	const char *tid;
	int seq;
	CURL *h;
	char base[1024]; /* imap://host/MAILBOX or pop3://host, no '/' at the end */
	int pop3;
	char what[512];
	char *note;
	size_t notelen;
	int skipped;
	char down[CURL_ERROR_SIZE + 64]; /* why the inbox could not be read just now */
} look;

/* The inbox could not be read this time (the server down or restarting,
 * the network): the answer may still come, so the wait goes on. */
#define LOOK_LATER (-3)

/* A skipped mail: logged, and counted in the note. */
static void skip(look *l, const char *which, const char *why)
{
	cmpc_log(l->ctx, LOG_WARNING, "mail %s in %s left alone: %s", which, l->m->inbox_url, why);
	l->skipped++;
	snprintf(l->note, l->notelen, "%d mail%s in %s skipped, the last (%s): %s", l->skipped,
		 l->skipped == 1 ? "" : "s", l->m->inbox_url, which, why);
}

static int perform(look *l, const char *url, const char *custom, int nobody, sink *s)
{
	CURLcode cc;

	if (curl_easy_setopt(l->h, CURLOPT_URL, url) != CURLE_OK ||
	    curl_easy_setopt(l->h, CURLOPT_CUSTOMREQUEST, custom) != CURLE_OK ||
	    curl_easy_setopt(l->h, CURLOPT_NOBODY, (long)nobody) != CURLE_OK ||
	    curl_easy_setopt(l->h, CURLOPT_WRITEFUNCTION, on_data) != CURLE_OK ||
	    curl_easy_setopt(l->h, CURLOPT_WRITEDATA, s) != CURLE_OK) {
		cmpc_transfer_fail(l->ctx, CMPC_ERR_INTERNAL, "%s: cannot set up libcurl", l->what);
		return -1;
	}
	l->ctx->curl_err[0] = '\0';
	if ((cc = curl_easy_perform(l->h)) == CURLE_OK)
		return 0;
	if (s->over)
		return 1; /* the caller says what was too large */
	switch (cc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
		snprintf(l->down, sizeof(l->down), "%s",
			 l->ctx->curl_err[0] != '\0' ? l->ctx->curl_err : curl_easy_strerror(cc));
		cmpc_log(l->ctx, LOG_WARNING, "%s: %s; looking again later", l->what, l->down);
		return LOOK_LATER;
	default:
		return fail(l->ctx, l->h, cc, l->what, "mail_inbox");
	}
}

/* Whether the PKIMessage der is one of our transaction: 1, or 0 with why. */
static int our_message(const look *l, const unsigned char *der, size_t len, char *why,
		       size_t whylen)
{
	CMPC_PKIMSG_HEAD *msg = cmpc_msg_head_decode(der, len);
	const ASN1_OCTET_STRING *t;
	char hex[2 * CMPC_ID_MAX + 1];
	int ok = 0;

	if (msg == NULL) {
		snprintf(why, whylen, "its CMP part is not one DER PKIMessage");
		goto out;
	}
	t = msg->header->transactionID;
	if (t == NULL || t->length <= 0 || t->length > CMPC_ID_MAX ||
	    !OPENSSL_buf2hexstr_ex(hex, sizeof(hex), NULL, t->data, (size_t)t->length, '\0') ||
	    strcasecmp(hex, l->tid) != 0) {
		snprintf(why, whylen, "its PKIMessage has another transactionID");
		goto out;
	}
	ok = 1;
out:
	cmpc_msg_head_free(msg);
	ERR_clear_error();
	return ok;
}

/* One mail read: 1 it is the answer (given to the layer), 0 not. */
static int consider(look *l, const char *which, const sink *s)
{
	cmpc_mime_in in;
	char why[256];
	int r, match;

	r = cmpc_mime_parse((const char *)s->b, s->len, l->ctx->max_response, &in, why,
			    sizeof(why));
	match = cmpc_mime_match(&in, l->tid, l->seq);
	if (match == 0) {
		/* another transaction's: not ours to report or touch */
		cmpc_mime_in_clear(&in);
		return 0;
	}
	if (match < 0) {
		skip(l, which, "it answers another message of the transaction (a duplicate or a "
			       "late answer)");
		r = 0;
	} else if (r <= 0) {
		skip(l, which, why);
		r = 0;
	} else if (!our_message(l, in.der, in.der_len, why, sizeof(why))) {
		skip(l, which, why);
		r = 0;
	} else if (!cmpc_transfer_write(l->ctx, in.der, in.der_len)) {
		r = -1; /* the layer words it */
	} else {
		cmpc_log(l->ctx, LOG_INFO, "the answer to message %d of transaction %s is mail %s "
					    "in %s (%s)",
			 l->seq, l->tid, which, l->m->inbox_url, in.ctype);
		r = 1;
	}
	cmpc_mime_in_clear(&in);
	return r;
}

static size_t max_mail(const look *l)
{
	size_t max = l->m->max_mail;

	if (max == 0 && l->ctx->max_response > (SIZE_MAX - 65536) / 2)
		max = SIZE_MAX;
	else if (max == 0)
		max = l->ctx->max_response * 2 + 65536;
	return max;
}

/* Reads mail url (which: its name for messages): 1 the answer, 0 not, -1 failed. */
static int read_mail(look *l, const char *url, const char *which)
{
	sink s = { NULL, 0, 0, max_mail(l), 0 };
	char why[128];
	int r;

	if ((r = perform(l, url, NULL, 0, &s)) < 0)
		goto out;
	if (r > 0) {
		snprintf(why, sizeof(why), "it is larger than %zu bytes", s.max);
		skip(l, which, why);
		r = 0;
		goto out;
	}
	r = consider(l, which, &s);
out:
	sink_free(&s);
	return r;
}

static int imap_look(look *l)
{
	sink s = { NULL, 0, 0, SEARCH_MAX, 0 };
	char cmd[512], url[1100], which[32];
	unsigned long uids[256];
	int n = 0, i, r = 0, max = l->m->max_scan > 0 ? l->m->max_scan : DEFAULT_SCAN;
	const char *p;
	char *e;

	if (max > (int)(sizeof(uids) / sizeof(uids[0])))
		max = (int)(sizeof(uids) / sizeof(uids[0]));
	/* the server filters: only mails that name the transaction somewhere */
	snprintf(cmd, sizeof(cmd),
		 "UID SEARCH UNDELETED OR OR OR HEADER X-CMP-Transaction-ID %s SUBJECT %s "
		 "HEADER In-Reply-To %s HEADER References %s",
		 l->tid, l->tid, l->tid, l->tid);
	if ((r = perform(l, l->base, cmd, 0, &s)) != 0) {
		if (r > 0)
			cmpc_transfer_fail(l->ctx, CMPC_ERR_TRANSPORT,
					   "%s: the server's search answer is larger than %d bytes",
					   l->what, SEARCH_MAX);
		if (r != LOOK_LATER)
			r = -1;
		goto out;
	}
	/* "* SEARCH 4 7 9" lines: the numbers, oldest first */
	for (p = (const char *)s.b; p != NULL && p < (const char *)s.b + s.len;) {
		const char *end = memchr(p, '\n', s.len - (size_t)(p - (const char *)s.b));
		size_t ll = end != NULL ? (size_t)(end - p)
					: s.len - (size_t)(p - (const char *)s.b);
		char line[4096];

		if (ll >= sizeof(line))
			ll = sizeof(line) - 1;
		memcpy(line, p, ll);
		line[ll] = '\0';
		if (strncasecmp(line, "* SEARCH", 8) == 0) {
			for (e = line + 8; *e != '\0' && n < max;) {
				unsigned long v;

				while (*e == ' ')
					e++;
				if (*e < '0' || *e > '9')
					break;
				v = strtoul(e, &e, 10);
				uids[n++] = v;
			}
		}
		p = end != NULL ? end + 1 : NULL;
	}
	for (i = 0, r = 0; i < n && r == 0; i++) {
		snprintf(which, sizeof(which), "UID %lu", uids[i]);
		snprintf(url, sizeof(url), "%s/;UID=%lu", l->base, uids[i]);
		if ((r = read_mail(l, url, which)) != 1)
			continue;
		/* the answer, used once: that mail and no other is deleted */
		snprintf(cmd, sizeof(cmd), "UID STORE %lu +FLAGS.SILENT (\\Deleted)", uids[i]);
		sink_free(&s);
		s.max = SEARCH_MAX;
		if (perform(l, l->base, cmd, 0, &s) != 0) {
			cmpc_log(l->ctx, LOG_WARNING,
				 "cannot delete mail %s in %s after reading it: %s", which,
				 l->m->inbox_url, l->ctx->x.msg[0] != '\0' ? l->ctx->x.msg : l->down);
			l->ctx->x.rv = CMPC_OK; /* the answer is read: that counts */
			l->ctx->x.msg[0] = '\0';
			break;
		}
		snprintf(cmd, sizeof(cmd), "UID EXPUNGE %lu", uids[i]);
		sink_free(&s);
		s.max = SEARCH_MAX;
		if (perform(l, l->base, cmd, 0, &s) != 0) {
			/* without UIDPLUS: flagged \Deleted, the server or the
			 * next client's EXPUNGE removes it */
			cmpc_log(l->ctx, LOG_INFO, "mail %s in %s flagged deleted (no UID EXPUNGE)",
				 which, l->m->inbox_url);
			l->ctx->x.rv = CMPC_OK;
			l->ctx->x.msg[0] = '\0';
		}
	}
out:
	sink_free(&s);
	return r;
}

static int pop3_look(look *l)
{
	sink s = { NULL, 0, 0, SEARCH_MAX, 0 };
	char url[1100], which[32];
	unsigned long nums[256];
	int n = 0, i, r, max = l->m->max_scan > 0 ? l->m->max_scan : DEFAULT_SCAN;
	const char *p, *end;
	char *e;

	if (max > (int)(sizeof(nums) / sizeof(nums[0])))
		max = (int)(sizeof(nums) / sizeof(nums[0]));
	snprintf(url, sizeof(url), "%s/", l->base);
	if ((r = perform(l, url, NULL, 0, &s)) != 0) {
		if (r > 0)
			cmpc_transfer_fail(l->ctx, CMPC_ERR_TRANSPORT,
					   "%s: the server's LIST answer is larger than %d bytes",
					   l->what, SEARCH_MAX);
		if (r != LOOK_LATER)
			r = -1;
		goto out;
	}
	/* "N SIZE" lines; POP3 cannot search: the newest max_scan are read */
	for (p = (const char *)s.b; p < (const char *)s.b + s.len; p = end + 1) {
		unsigned long v;

		end = memchr(p, '\n', s.len - (size_t)(p - (const char *)s.b));
		if (end == NULL)
			break;
		if (*p < '0' || *p > '9')
			continue;
		v = strtoul(p, &e, 10);
		(void)e;
		if (n == (int)(sizeof(nums) / sizeof(nums[0]))) {
			memmove(nums, nums + 1, sizeof(nums) - sizeof(nums[0]));
			n--;
		}
		nums[n++] = v;
	}
	for (i = n - 1, r = 0; i >= 0 && i >= n - max && r == 0; i--) {
		snprintf(which, sizeof(which), "number %lu", nums[i]);
		snprintf(url, sizeof(url), "%s/%lu", l->base, nums[i]);
		if ((r = read_mail(l, url, which)) != 1)
			continue;
		/* DELE of that mail alone; it takes effect at QUIT, when the
		 * handle is closed */
		sink_free(&s);
		s.max = SEARCH_MAX;
		if (perform(l, url, "DELE", 1, &s) != 0) {
			cmpc_log(l->ctx, LOG_WARNING,
				 "cannot delete mail %s in %s after reading it: %s", which,
				 l->m->inbox_url, l->ctx->x.msg[0] != '\0' ? l->ctx->x.msg : l->down);
			l->ctx->x.rv = CMPC_OK;
			l->ctx->x.msg[0] = '\0';
		}
	}
out:
	sink_free(&s);
	return r;
}

/* The inbox URL without a '/' at the end; an IMAP URL without a mailbox
 * gets INBOX. */
static int base_url(look *l)
{
	const char *u = l->m->inbox_url, *path;
	size_t n = strlen(u);

	while (n > 0 && u[n - 1] == '/')
		n--;
	path = strstr(u, "://");
	path = path != NULL ? strchr(path + 3, '/') : NULL;
	if (!l->pop3 && (path == NULL || (size_t)(path - u) >= n))
		return snprintf(l->base, sizeof(l->base), "%.*s/INBOX", (int)n, u) <
		       (int)sizeof(l->base);
	if (l->pop3 && path != NULL && (size_t)(path - u) < n)
		return 0; /* a POP3 URL names no mailbox */
	return snprintf(l->base, sizeof(l->base), "%.*s", (int)n, u) < (int)sizeof(l->base);
}

int cmpc_mail_fetch(cmpc_ctx *ctx, const cmpc_mail *m, const char *tid, int seq, char *note,
		    size_t notelen)
{
	const char *bad = cmpc_mail_check(m);
	look l;
	int r;

	if (notelen > 0)
		note[0] = '\0';
	if (bad != NULL) {
		cmpc_transfer_fail(ctx, CMPC_ERR_CONFIG, "%s", bad);
		return -1;
	}
	memset(&l, 0, sizeof(l));
	l.ctx = ctx;
	l.m = m;
	l.tid = tid;
	l.seq = seq;
	l.note = note;
	l.notelen = notelen;
	l.pop3 = has_scheme(m->inbox_url, pop3_schemes);
	snprintf(l.what, sizeof(l.what), "looking for the answer in %s", m->inbox_url);
	if (!base_url(&l)) {
		cmpc_transfer_fail(ctx, CMPC_ERR_CONFIG,
				   "mail_inbox %s: a pop3:// URL names no mailbox "
				   "(pop3s://host[:port]), and the URL must fit in %zu bytes",
				   m->inbox_url, sizeof(l.base));
		return -1;
	}
	if ((l.h = open_handle(ctx, m, l.base, l.pop3 ? "pop3,pop3s" : "imap,imaps", 1)) ==
	    NULL) {
		cmpc_transfer_fail(ctx, CMPC_ERR_INTERNAL, "%s: cannot set up libcurl", l.what);
		return -1;
	}
	r = l.pop3 ? pop3_look(&l) : imap_look(&l);
	/* closing the connection logs out (POP3: QUIT makes the DELE happen) */
	curl_easy_cleanup(l.h);
	if (r == LOOK_LATER) {
		snprintf(note, notelen, "%s could not be read just now (%s)", m->inbox_url, l.down);
		return 0;
	}
	return r;
}
