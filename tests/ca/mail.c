/*
 * --mail MAILDIR: the CA as the far end of p11enroll's mailto: transport
 * (RFC 2510 section 5.3).  Request mails are read from the CA's own
 * mailbox on the filesystem (MAILDIR/new, as the SMTP server of
 * tests/mail-lib.sh delivers them), each is answered as an HTTP POST of its
 * PKIMessage would be, the answer goes back to the request's From by SMTP
 * (libcurl), and the request is moved to MAILDIR/cur.
 *
 * The request: Subject "CMP <tid> <n>", X-CMP-Transaction-ID, Message-ID,
 * Content-Type application/pkixcmp (or x-pkixcmp, pkixcmp-poll,
 * x-pkixcmp-poll; alone or a part of a multipart), base64 (LF or CRLF).
 * The answer: Subject "Re: " + the request's, In-Reply-To and References
 * the request's Message-ID, X-CMP-Transaction-ID, the same MIME form.
 * --mail-ctype, --mail-multipart and --mail-fault bend the answer for the
 * client's fault tests.  Runs in a child of the CA, which ends with the CA
 * (PR_SET_PDEATHSIG) or on SIGTERM.
 */
#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <poll.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "tests/ca/testca.h"

#define MAIL_MAX (1024 * 1024) /* a request mail larger than this is refused */
#define FIELD_MAX 512	       /* header values kept (longer ones are cut) */
#define TID_MAX 128	       /* hex digits of a transactionID */

/* What is read of one mail or MIME part. */
struct hdrs {
	char from[FIELD_MAX], subject[FIELD_MAX], msgid[FIELD_MAX], tid[FIELD_MAX];
	char ctype[FIELD_MAX], cte[FIELD_MAX];
};

struct buf {
	char *p;
	size_t len, cap;
	int failed;
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
	char *p;
	size_t cap;

	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap) {
		cap = (b->len + n + 1) * 2;
		if ((p = OPENSSL_realloc(b->p, cap)) == NULL) {
			b->failed = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void buf_printf(struct buf *b, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || n >= (int)sizeof(line))
		b->failed = 1;
	else
		buf_add(b, line, (size_t)n);
}

static int read_file(const char *path, struct buf *b)
{
	char chunk[8192];
	size_t n;
	FILE *f = fopen(path, "rb");

	if (f == NULL)
		return 0;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0 && b->len + n <= MAIL_MAX)
		buf_add(b, chunk, n);
	if (n > 0)
		b->failed = 1; /* too large */
	if (ferror(f))
		b->failed = 1;
	fclose(f);
	if (b->p == NULL)
		buf_add(b, "", 0); /* empty: nothing in it, but read */
	return !b->failed;
}

/* The next line of [*pos, end): its length without CR/LF; *pos past it. */
static const char *next_line(const char **pos, const char *end, size_t *ret_len)
{
	const char *s = *pos, *nl;

	if (s >= end)
		return NULL;
	nl = memchr(s, '\n', (size_t)(end - s));
	*pos = nl != NULL ? nl + 1 : end;
	*ret_len = (size_t)((nl != NULL ? nl : end) - s);
	if (*ret_len > 0 && s[*ret_len - 1] == '\r')
		(*ret_len)--;
	return s;
}

static void keep(char *dst, const char *s, size_t n)
{
	size_t i, j = 0;

	/* leading blanks gone, controls and bytes beyond ASCII replaced: the value
	 * is echoed in the answer and the log */
	while (n > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		n--;
	}
	for (i = 0; i < n && j + 1 < FIELD_MAX; i++)
		dst[j++] = (unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f ? ' ' : s[i];
	while (j > 0 && dst[j - 1] == ' ')
		j--;
	dst[j] = '\0';
}

static int is_name(const char *line, size_t len, const char *name)
{
	size_t n = strlen(name);

	return len > n && line[n] == ':' && strncasecmp(line, name, n) == 0;
}

/* Reads a header block (with folded lines) from *pos; *pos is then the body. */
static void parse_headers(const char **pos, const char *end, struct hdrs *h)
{
	static const struct {
		const char *name;
		size_t off;
	} fields[] = {
	    {"From", offsetof(struct hdrs, from)},
	    {"Subject", offsetof(struct hdrs, subject)},
	    {"Message-ID", offsetof(struct hdrs, msgid)},
	    {"X-CMP-Transaction-ID", offsetof(struct hdrs, tid)},
	    {"Content-Type", offsetof(struct hdrs, ctype)},
	    {"Content-Transfer-Encoding", offsetof(struct hdrs, cte)},
	};
	char field[FIELD_MAX * 2];
	size_t len, flen = 0, i;
	const char *line;

	memset(h, 0, sizeof(*h));
	field[0] = '\0';
	for (;;) {
		line = next_line(pos, end, &len);
		/* a continuation line belongs to the field before it */
		if (line != NULL && len > 0 && (line[0] == ' ' || line[0] == '\t')) {
			if (flen + len < sizeof(field)) {
				memcpy(field + flen, line, len);
				flen += len;
			}
			continue;
		}
		for (i = 0; flen > 0 && i < sizeof(fields) / sizeof(fields[0]); i++) {
			size_t n = strlen(fields[i].name) + 1;

			if (is_name(field, flen, fields[i].name))
				keep((char *)h + fields[i].off, field + n, flen - n);
		}
		flen = 0;
		if (line == NULL || len == 0)
			return;
		if (len < sizeof(field)) {
			memcpy(field, line, len);
			flen = len;
		}
	}
}

/* The media type of a Content-Type value, lower case, in ret (NUL-ended). */
static void media_type(const char *ctype, char *ret, size_t size)
{
	size_t i;

	for (i = 0; ctype[i] != '\0' && ctype[i] != ';' && !isspace((unsigned char)ctype[i]) &&
		    i + 1 < size;
	     i++)
		ret[i] = (char)tolower((unsigned char)ctype[i]);
	ret[i] = '\0';
}

static int is_cmp_type(const char *ctype)
{
	static const char *const types[] = { "application/pkixcmp", "application/x-pkixcmp",
					     "application/pkixcmp-poll",
					     "application/x-pkixcmp-poll" };
	char t[64];
	size_t i;

	media_type(ctype, t, sizeof(t));
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strcmp(t, types[i]) == 0)
			return 1;
	return 0;
}

/* The boundary parameter of a multipart Content-Type, or 0. */
static int boundary_of(const char *ctype, char *ret, size_t size)
{
	const char *p = ctype;
	size_t n = 0;

	while ((p = strchr(p, ';')) != NULL) {
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncasecmp(p, "boundary=", 9) != 0)
			continue;
		p += 9;
		if (*p == '"') {
			for (p++; *p != '\0' && *p != '"' && n + 1 < size; p++)
				ret[n++] = *p;
		} else {
			for (; *p != '\0' && *p != ';' && !isspace((unsigned char)*p) &&
			       n + 1 < size;
			     p++)
				ret[n++] = *p;
		}
		ret[n] = '\0';
		return n > 0;
	}
	return 0;
}

/* base64 of [s, end), white space (CR, LF) skipped; stops at '='. */
static unsigned char *unbase64(const char *s, const char *end, size_t *ret_len)
{
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	unsigned char *out = OPENSSL_malloc((size_t)(end - s) / 4 * 3 + 3);
	unsigned long acc = 0;
	size_t n = 0;
	int bits = 0;
	const char *c;

	if (out == NULL)
		return NULL;
	for (; s < end && *s != '='; s++) {
		if (isspace((unsigned char)*s))
			continue;
		if (*s == '\0' || (c = strchr(alphabet, *s)) == NULL) {
			OPENSSL_free(out);
			return NULL;
		}
		acc = (acc << 6) | (unsigned long)(c - alphabet);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (unsigned char)(acc >> bits);
			acc &= (1UL << bits) - 1;
		}
	}
	if (n == 0) {
		OPENSSL_free(out);
		return NULL;
	}
	*ret_len = n;
	return out;
}

static unsigned char *part_der(const struct hdrs *h, const char *body, const char *end,
			       size_t *ret_len)
{
	unsigned char *der;
	char cte[32];

	media_type(h->cte, cte, sizeof(cte));
	if (strcmp(cte, "base64") != 0) {
		ca_log("mail: the CMP part is not base64 (%s)", h->cte[0] ? h->cte : "7bit");
		return NULL;
	}
	if ((der = unbase64(body, end, ret_len)) == NULL)
		ca_log("mail: the CMP part is no base64 or empty");
	return der;
}

/* The PKIMessage of a mail: the body, or the first CMP part of a multipart. */
static unsigned char *mail_der(const char *pos, const char *end, struct hdrs *top,
			       size_t *ret_len)
{
	char type[64], boundary[128];
	struct hdrs ph;
	size_t blen, len;
	const char *line, *part = NULL;

	parse_headers(&pos, end, top);
	if (is_cmp_type(top->ctype))
		return part_der(top, pos, end, ret_len);
	media_type(top->ctype, type, sizeof(type));
	if (strncmp(type, "multipart/", 10) != 0 || !boundary_of(top->ctype, boundary,
								 sizeof(boundary))) {
		ca_log("mail: no CMP message in the mail (Content-Type %s)",
		       top->ctype[0] ? top->ctype : "none");
		return NULL;
	}
	blen = strlen(boundary);
	/* each part runs from after a "--boundary" line to the next one (or to
	 * the end of the mail, when the closing one is missing) */
	for (;;) {
		line = next_line(&pos, end, &len);
		if (line != NULL && (len < blen + 2 || line[0] != '-' || line[1] != '-' ||
				     memcmp(line + 2, boundary, blen) != 0))
			continue;
		if (part != NULL) {
			const char *pend = line != NULL ? line : end, *ppos = part;

			parse_headers(&ppos, pend, &ph);
			if (is_cmp_type(ph.ctype))
				return part_der(&ph, ppos, pend, ret_len);
		}
		if (line == NULL ||
		    (len >= blen + 4 && line[blen + 2] == '-' && line[blen + 3] == '-'))
			break;
		part = pos;
	}
	ca_log("mail: no application/pkixcmp part in the multipart mail");
	return NULL;
}

/* The address in a From value: between <> if there are some, else all of it. */
static int address_of(const char *from, char *ret, size_t size)
{
	const char *lt = strrchr(from, '<'), *gt;
	size_t n, i;

	if (lt != NULL && (gt = strchr(lt, '>')) != NULL) {
		from = lt + 1;
		n = (size_t)(gt - from);
	} else {
		n = strlen(from);
	}
	if (n == 0 || n >= size)
		return 0;
	for (i = 0; i < n; i++)
		if (isspace((unsigned char)from[i]) || from[i] == '<' || from[i] == '>')
			return 0;
	memcpy(ret, from, n);
	ret[n] = '\0';
	return strchr(ret, '@') != NULL;
}

static void base64_lines(struct buf *b, const unsigned char *der, size_t len)
{
	unsigned char line[80];
	size_t off, n;

	/* 57 bytes make 76 characters */
	for (off = 0; off < len; off += n) {
		n = len - off < 57 ? len - off : 57;
		EVP_EncodeBlock(line, der + off, (int)n);
		buf_printf(b, "%s\r\n", (const char *)line);
	}
}

static void random_hex(char *ret, size_t bytes)
{
	unsigned char r[TID_MAX / 2];
	size_t i;

	if (bytes > sizeof(r))
		bytes = sizeof(r);
	if (RAND_bytes(r, (int)bytes) != 1)
		memset(r, 0x5a, bytes);
	for (i = 0; i < bytes; i++)
		snprintf(ret + 2 * i, 3, "%02x", r[i]);
}

struct reply_mail {
	const struct ca_mail_opts *m;
	const char *to, *tid, *seq, *subject, *in_reply_to;
	const unsigned char *der;
	size_t len;
};

static void build(struct buf *b, const struct reply_mail *a)
{
	char date[64], rnd[17], boundary[48], tid[TID_MAX + 1];
	const char *ctype = a->m->ctype != NULL ? a->m->ctype : "application/pkixcmp";
	time_t now = time(NULL);
	struct tm tm;
	int fault = a->m->fault;

	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", gmtime_r(&now, &tm));
	random_hex(rnd, 8);
	snprintf(tid, sizeof(tid), "%s", a->tid);
	if (fault == CA_MAIL_FAULT_WRONG_TID) {
		/* another transaction's id of the same length */
		size_t n = strlen(tid), i;
		char other[TID_MAX + 1];

		random_hex(other, sizeof(other) / 2);
		for (i = 0; i < n; i++)
			tid[i] = other[i] != tid[i] ? other[i] : (tid[i] == '0' ? '1' : '0');
	}
	buf_printf(b, "From: %s\r\nTo: %s\r\nDate: %s\r\n", a->m->from, a->to, date);
	if (fault == CA_MAIL_FAULT_NO_SUBJECT_TID)
		buf_printf(b, "Subject: Re: your CMP request\r\n");
	else if (fault == CA_MAIL_FAULT_WRONG_TID)
		buf_printf(b, "Subject: Re: CMP %s %s\r\n", tid, a->seq);
	else
		buf_printf(b, "Subject: Re: %s\r\n", a->subject);
	buf_printf(b, "Message-ID: <%s.%s.%s@ca.test.invalid>\r\n", tid, a->seq, rnd);
	if (a->in_reply_to[0] != '\0')
		buf_printf(b, "In-Reply-To: %s\r\nReferences: %s\r\n", a->in_reply_to,
			   a->in_reply_to);
	if (fault != CA_MAIL_FAULT_NO_SUBJECT_TID)
		buf_printf(b, "X-CMP-Transaction-ID: %s\r\n", tid);
	buf_printf(b, "MIME-Version: 1.0\r\n");
	if (a->m->multipart) {
		random_hex(boundary, 12);
		buf_printf(b, "Content-Type: multipart/mixed; boundary=\"=_testca_%s\"\r\n\r\n",
			   boundary);
		buf_printf(b, "This is a MIME message.\r\n--=_testca_%s\r\n", boundary);
		buf_printf(b, "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
			      "The answer of the test CA is attached.\r\n");
		buf_printf(b, "--=_testca_%s\r\n", boundary);
	}
	buf_printf(b, "Content-Type: %s\r\nContent-Transfer-Encoding: base64\r\n\r\n", ctype);
	if (fault == CA_MAIL_FAULT_GARBAGE) {
		static const char junk[] = "this is no DER PKIMessage, just text in base64\n";

		base64_lines(b, (const unsigned char *)junk, sizeof(junk) - 1);
	} else {
		base64_lines(b, a->der, a->len);
	}
	if (a->m->multipart)
		buf_printf(b, "--=_testca_%s--\r\n", boundary);
}

struct upload {
	const char *p;
	size_t left;
};

static size_t read_cb(char *out, size_t size, size_t nmemb, void *arg)
{
	struct upload *u = arg;
	size_t n = size * nmemb < u->left ? size * nmemb : u->left;

	memcpy(out, u->p, n);
	u->p += n;
	u->left -= n;
	return n;
}

static int send_mail(const struct ca_mail_opts *m, const char *to, const struct buf *b)
{
	char errbuf[CURL_ERROR_SIZE], from[FIELD_MAX], rcpt[FIELD_MAX + 2];
	struct curl_slist *rcpts = NULL;
	struct upload u = { b->p, b->len };
	CURL *c = curl_easy_init();
	CURLcode rc = CURLE_OUT_OF_MEMORY;

	errbuf[0] = '\0';
	snprintf(from, sizeof(from), "<%s>", m->from);
	snprintf(rcpt, sizeof(rcpt), "<%s>", to);
	if (c != NULL && (rcpts = curl_slist_append(NULL, rcpt)) != NULL) {
		curl_easy_setopt(c, CURLOPT_URL, m->smtp);
		curl_easy_setopt(c, CURLOPT_MAIL_FROM, from);
		curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpts);
		curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(c, CURLOPT_READFUNCTION, read_cb);
		curl_easy_setopt(c, CURLOPT_READDATA, &u);
		curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
		curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
		curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
		if (m->cacert != NULL)
			curl_easy_setopt(c, CURLOPT_CAINFO, m->cacert);
		rc = curl_easy_perform(c);
	}
	if (rc != CURLE_OK)
		ca_log("mail: cannot send the answer to %s by %s: %s", to, m->smtp,
		       errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc));
	curl_slist_free_all(rcpts);
	curl_easy_cleanup(c);
	return rc == CURLE_OK;
}

/* "CMP <tid> <n>" in a subject: tid and n, else 0. */
static int subject_tid(const char *subject, char *tid, char *seq)
{
	const char *p = strstr(subject, "CMP ");
	size_t t = 0, s = 0;

	if (p == NULL)
		return 0;
	for (p += 4; isxdigit((unsigned char)*p) && t < TID_MAX; p++)
		tid[t++] = (char)tolower((unsigned char)*p);
	if (*p++ != ' ')
		return 0;
	for (; isdigit((unsigned char)*p) && s < 9; p++)
		seq[s++] = *p;
	tid[t] = '\0';
	seq[s] = '\0';
	return t > 0 && s > 0;
}

/* The request's transactionID in hex, when the mail names none. */
static int der_tid(const unsigned char *der, size_t len, char *tid)
{
	const unsigned char *p = der;
	OSSL_CMP_MSG *msg = d2i_OSSL_CMP_MSG(NULL, &p, (long)len);
	const ASN1_OCTET_STRING *os;
	int i, ok = 0;

	if (msg != NULL &&
	    (os = OSSL_CMP_HDR_get0_transactionID(OSSL_CMP_MSG_get0_header(msg))) != NULL &&
	    os->length > 0 && os->length * 2 <= TID_MAX) {
		for (i = 0; i < os->length; i++)
			snprintf(tid + 2 * i, 3, "%02x", os->data[i]);
		ok = 1;
	}
	OSSL_CMP_MSG_free(msg);
	return ok;
}

/* Answers one request mail, or logs why not. */
static void answer(const struct ca_mail_opts *m, const char *path, const char *name,
		   ca_handler_fn fn, void *arg)
{
	char to[FIELD_MAX], tid[TID_MAX + 1], seq[16], subject[FIELD_MAX + 32];
	struct buf in = { 0 }, out = { 0 };
	struct ca_reply reply;
	struct hdrs h;
	unsigned char *der = NULL;
	size_t len = 0;
	struct reply_mail a;
	int sends;

	memset(&reply, 0, sizeof(reply));
	if (!read_file(path, &in)) {
		ca_log("mail: %s: unreadable, or larger than %d bytes", name, MAIL_MAX);
		goto out;
	}
	if ((der = mail_der(in.p, in.p + in.len, &h, &len)) == NULL) {
		ca_log("mail: %s: no PKIMessage in it", name);
		goto out;
	}
	if (!address_of(h.from, to, sizeof(to))) {
		ca_log("mail: %s: no address to answer in From '%s'", name, h.from);
		goto out;
	}
	if (!subject_tid(h.subject, tid, seq)) {
		snprintf(seq, sizeof(seq), "1");
		if (h.tid[0] != '\0' && strlen(h.tid) <= TID_MAX)
			snprintf(tid, sizeof(tid), "%s", h.tid);
		else if (!der_tid(der, len, tid))
			snprintf(tid, sizeof(tid), "0");
	}
	if (h.subject[0] != '\0')
		snprintf(subject, sizeof(subject), "%s", h.subject);
	else
		snprintf(subject, sizeof(subject), "CMP %s %s", tid, seq);
	if (fn(arg, "/.well-known/cmp", der, len, &reply) != 0 || reply.status != 200 ||
	    reply.body == NULL) {
		/* nothing a client could take: no answer, as a CA that drops it */
		ca_log("mail: %s: no CMP answer (status %d)", name, reply.status);
		goto out;
	}
	a.m = m;
	a.to = to;
	a.tid = tid;
	a.seq = seq;
	a.subject = subject;
	a.in_reply_to = h.msgid;
	a.der = reply.body;
	a.len = reply.len;
	build(&out, &a);
	if (out.failed) {
		ca_log("mail: %s: out of memory", name);
		goto out;
	}
	for (sends = m->fault == CA_MAIL_FAULT_DUP ? 2 : 1; sends > 0; sends--)
		if (send_mail(m, to, &out))
			ca_event("mail: answered %s (CMP %s %s) to %s (%zu bytes)", name, tid,
				 seq, to, reply.len);
out:
	OPENSSL_free(reply.body);
	OPENSSL_free(der);
	OPENSSL_free(in.p);
	OPENSSL_free(out.p);
}

/* new/NAME to cur/NAME:2,S (seen): done with, answered or not. */
static void done_with(const char *maildir, const char *name, const char *path)
{
	char cur[4096];

	if (snprintf(cur, sizeof(cur), "%s/cur/%s%s", maildir, name,
		     strchr(name, ':') != NULL ? "" : ":2,S") >= (int)sizeof(cur) ||
	    rename(path, cur) != 0) {
		ca_log("mail: cannot move %s to %s/cur: %s", name, maildir, strerror(errno));
		(void)unlink(path); /* never answered twice */
	}
}

/* Until a mail may have come: an inotify event on new/ (a delivery renames
 * into it), else 50 ms.  A rescan now and then covers a missed event. */
static void wait_for_mail(int ifd)
{
	struct timespec ts = { 0, 50 * 1000000L };
	struct pollfd pfd = { ifd, POLLIN, 0 };
	char ev[4096];

	if (ifd < 0) {
		nanosleep(&ts, NULL);
		return;
	}
	if (poll(&pfd, 1, 200) > 0)
		while (read(ifd, ev, sizeof(ev)) > 0)
			;
}

int ca_mail_serve(const struct ca_mail_opts *m, ca_handler_fn fn, void *arg)
{
	char dir[4096], path[4096];
	struct dirent *de;
	DIR *d;
	int ifd;

	if (snprintf(dir, sizeof(dir), "%s/new", m->maildir) >= (int)sizeof(dir))
		return 1;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		ca_log("mail: libcurl did not start");
		return 1;
	}
	if ((ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) >= 0 &&
	    inotify_add_watch(ifd, dir, IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
		close(ifd);
		ifd = -1;
	}
	while (!ca_stopping()) {
		if ((d = opendir(dir)) == NULL) {
			ca_log("mail: cannot read %s: %s", dir, strerror(errno));
			if (ifd >= 0)
				close(ifd);
			curl_global_cleanup();
			return 1;
		}
		while ((de = readdir(d)) != NULL && !ca_stopping()) {
			if (de->d_name[0] == '.' ||
			    snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >=
				(int)sizeof(path))
				continue;
			answer(m, path, de->d_name, fn, arg);
			done_with(m->maildir, de->d_name, path);
		}
		closedir(d);
		wait_for_mail(ifd);
	}
	if (ifd >= 0)
		close(ifd);
	curl_global_cleanup();
	return 0;
}
