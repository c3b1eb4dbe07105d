/*
 * The mails of the e-mail transport (RFC 2510 section 5.3): the request
 * mail we send, and the CA's answer, parsed.  Pure functions on buffers,
 * so that the parser can be fuzzed and tested on its own.
 *
 * A request mail is one part, "Content-Type: application/pkixcmp",
 * base64 in lines of 76 characters, CRLF line ends, and names its
 * transaction three ways so that a CA or a gateway that keeps any one of
 * them can be matched: the subject "CMP <tid> <n>", a header
 * X-CMP-Transaction-ID and the Message-ID <tid.n.random@host>, which the
 * answer's In-Reply-To or References carry back.
 *
 * An answer mail is untrusted input from anyone who can send mail to our
 * inbox.  The parser accepts what mail systems make of a mail: CRLF or
 * LF, folded headers, parameters and case in the content type, the older
 * content types of the drafts (application/x-pkixcmp,
 * application/pkixcmp-poll, application/x-pkixcmp-poll), and the CMP part
 * inside a multipart (a gateway's cover text, a signature), nested up to
 * MAX_DEPTH.  It takes the first CMP part only, in base64 only (the
 * transfer encoding RFC 2510 names; DER does not survive 7bit), and
 * decodes at most max_der bytes.  Header values are kept cut to their
 * buffers and made printable (they reach logs); nothing of them is
 * trusted beyond choosing which mail to look at: the PKIMessage decides.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>

#include "cmp/cmpc-int.h"

#define MAX_DEPTH 4
#define B64_LINE 76

static const char *const cmp_types[] = {
	"application/pkixcmp",
	"application/x-pkixcmp",
	"application/pkixcmp-poll",
	"application/x-pkixcmp-poll",
};

int cmpc_mime_is_cmp_type(const char *type)
{
	size_t i;

	for (i = 0; i < sizeof(cmp_types) / sizeof(cmp_types[0]); i++)
		if (strcasecmp(type, cmp_types[i]) == 0)
			return 1;
	return 0;
}

/* ---- building ------------------------------------------------------ */

typedef struct {
	char *b;
	size_t len, cap;
	int oom;
} buf;

static void put(buf *o, const char *s, size_t n)
{
	char *p;
	size_t cap;

	if (o->oom)
		return;
	if (n > o->cap - o->len) {
		cap = o->cap > 0 ? o->cap : 1024;
		while (cap - o->len < n)
			cap *= 2;
		if ((p = OPENSSL_realloc(o->b, cap)) == NULL) {
			o->oom = 1;
			return;
		}
		o->b = p;
		o->cap = cap;
	}
	memcpy(o->b + o->len, s, n);
	o->len += n;
}

static void puts_(buf *o, const char *s)
{
	put(o, s, strlen(s));
}

/* A header value goes on one line: printable ASCII only, so that nothing
 * given can add a header or end the header block. */
static int header_ok(const char *v)
{
	if (v == NULL || *v == '\0' || strlen(v) > 900)
		return 0;
	for (; *v != '\0'; v++)
		if ((unsigned char)*v < 0x20 || (unsigned char)*v > 0x7e)
			return 0;
	return 1;
}

static void header(buf *o, const char *name, const char *value)
{
	puts_(o, name);
	puts_(o, ": ");
	puts_(o, value);
	puts_(o, "\r\n");
}

/* RFC 5322's date in UTC, with English names whatever the locale. */
static void mail_date(time_t t, char *out, size_t len)
{
	static const char *const day[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL) {
		snprintf(out, len, "Thu, 01 Jan 1970 00:00:00 +0000");
		return;
	}
	snprintf(out, len, "%s, %02d %s %04d %02d:%02d:%02d +0000", day[tm.tm_wday % 7],
		 tm.tm_mday, mon[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
		 tm.tm_sec);
}

static void base64(buf *o, const unsigned char *d, size_t n)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char line[B64_LINE + 2];
	size_t i, col = 0;
	unsigned long v;

	for (i = 0; i < n; i += 3) {
		v = (unsigned long)d[i] << 16;
		if (i + 1 < n)
			v |= (unsigned long)d[i + 1] << 8;
		if (i + 2 < n)
			v |= d[i + 2];
		line[col++] = tab[v >> 18 & 63];
		line[col++] = tab[v >> 12 & 63];
		line[col++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
		line[col++] = i + 2 < n ? tab[v & 63] : '=';
		if (col == B64_LINE || i + 3 >= n) {
			line[col++] = '\r';
			line[col++] = '\n';
			put(o, line, col);
			col = 0;
		}
	}
}

int cmpc_mime_build(const cmpc_mime_out *m, char **ret, size_t *ret_len, char *why,
		    size_t whylen)
{
	buf o = { NULL, 0, 0, 0 };
	char subject[1000], date[64];

	if (!header_ok(m->from) || !header_ok(m->to) || !header_ok(m->tid) ||
	    !header_ok(m->msgid)) {
		snprintf(why, whylen,
			 "the sender, recipient, transactionID or Message-ID is empty, too long "
			 "or not printable ASCII");
		return 0;
	}
	snprintf(subject, sizeof(subject), "CMP %s %d", m->tid, m->seq);
	mail_date(m->date, date, sizeof(date));
	header(&o, "From", m->from);
	header(&o, "To", m->to);
	header(&o, "Subject", subject);
	header(&o, "Message-ID", m->msgid);
	header(&o, "X-CMP-Transaction-ID", m->tid);
	header(&o, "Date", date);
	header(&o, "MIME-Version", "1.0");
	header(&o, "Content-Type", "application/pkixcmp");
	header(&o, "Content-Transfer-Encoding", "base64");
	puts_(&o, "\r\n");
	base64(&o, m->der, m->der_len);
	if (o.oom) {
		OPENSSL_free(o.b);
		snprintf(why, whylen, "out of memory");
		return 0;
	}
	*ret = o.b;
	*ret_len = o.len;
	return 1;
}

/* ---- parsing ------------------------------------------------------- */

typedef struct {
	const char *p, *end;
} span;

/* The next line of s (without its CR LF or LF) into *line; 0 at the end. */
static int next_line(span *s, span *line)
{
	const char *nl;

	if (s->p >= s->end)
		return 0;
	line->p = s->p;
	nl = memchr(s->p, '\n', (size_t)(s->end - s->p));
	if (nl == NULL) {
		line->end = s->end;
		s->p = s->end;
	} else {
		line->end = nl;
		s->p = nl + 1;
	}
	if (line->end > line->p && line->end[-1] == '\r')
		line->end--;
	return 1;
}

/* Appends [p, end) to the value v of size vlen, printable, cut to fit;
 * runs of blanks (folding) become one space. */
static void add_value(char *v, size_t vlen, const char *p, const char *end)
{
	size_t o = strlen(v);

	for (; p < end && o + 1 < vlen; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == ' ' || c == '\t') {
			if (o > 0 && v[o - 1] != ' ')
				v[o++] = ' ';
			continue;
		}
		v[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	v[o] = '\0';
}

static void trim(char *v)
{
	size_t n = strlen(v), s = 0;

	while (n > 0 && v[n - 1] == ' ')
		v[--n] = '\0';
	while (v[s] == ' ')
		s++;
	memmove(v, v + s, n - s + 1);
}

/* The headers we look at, of a mail or of a part. */
typedef struct {
	char ctype[CMPC_MIME_HDR_MAX], cte[64];
	cmpc_mime_in *top; /* the mail's own headers: only for the top level */
} part_hdrs;

/* Headers from the start of s up to the empty line; s is left at the
 * body.  Lines without a colon (an mbox "From " line) are skipped. */
static void parse_headers(span *s, part_hdrs *h)
{
	static const struct {
		const char *name;
		size_t off; /* in cmpc_mime_in */
		size_t len;
	} kept[] = {
		{ "subject", offsetof(cmpc_mime_in, subject), CMPC_MIME_HDR_MAX },
		{ "in-reply-to", offsetof(cmpc_mime_in, in_reply_to), CMPC_MIME_HDR_MAX },
		{ "references", offsetof(cmpc_mime_in, references), CMPC_MIME_REFS_MAX },
		{ "x-cmp-transaction-id", offsetof(cmpc_mime_in, tid), CMPC_MIME_HDR_MAX },
		{ "message-id", offsetof(cmpc_mime_in, msgid), CMPC_MIME_HDR_MAX },
	};
	span line;
	char *cur = NULL; /* the value that a folded line continues */
	size_t curlen = 0, i, n;
	const char *colon;

	h->ctype[0] = h->cte[0] = '\0';
	while (next_line(s, &line)) {
		if (line.p == line.end)
			break;
		if (*line.p == ' ' || *line.p == '\t') {
			if (cur != NULL)
				add_value(cur, curlen, line.p, line.end);
			continue;
		}
		cur = NULL;
		colon = memchr(line.p, ':', (size_t)(line.end - line.p));
		if (colon == NULL)
			continue;
		n = (size_t)(colon - line.p);
		while (n > 0 && (line.p[n - 1] == ' ' || line.p[n - 1] == '\t'))
			n--;
		/* A repeated header: the first one counts. */
		if (n == 12 && strncasecmp(line.p, "content-type", n) == 0 && h->ctype[0] == '\0') {
			cur = h->ctype;
			curlen = sizeof(h->ctype);
		} else if (n == 25 && strncasecmp(line.p, "content-transfer-encoding", n) == 0 &&
			   h->cte[0] == '\0') {
			cur = h->cte;
			curlen = sizeof(h->cte);
		} else if (h->top != NULL) {
			for (i = 0; i < sizeof(kept) / sizeof(kept[0]); i++) {
				char *v = (char *)h->top + kept[i].off;

				if (strlen(kept[i].name) == n &&
				    strncasecmp(line.p, kept[i].name, n) == 0 && v[0] == '\0') {
					cur = v;
					curlen = kept[i].len;
					break;
				}
			}
		}
		if (cur != NULL)
			add_value(cur, curlen, colon + 1, line.end);
	}
	if (h->top != NULL) {
		for (i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
			trim((char *)h->top + kept[i].off);
	}
	trim(h->ctype);
	trim(h->cte);
}

/* The media type of a Content-Type value, lower case, into type; the
 * boundary parameter (unquoted) into boundary when there is one. */
static void content_type(const char *v, char *type, size_t tlen, char *boundary, size_t blen)
{
	size_t o = 0;
	const char *p;

	boundary[0] = '\0';
	while (*v == ' ')
		v++;
	for (; *v != '\0' && *v != ';' && *v != ' ' && *v != '(' && o + 1 < tlen; v++)
		type[o++] = (char)(*v >= 'A' && *v <= 'Z' ? *v + 32 : *v);
	type[o] = '\0';
	for (p = v; (p = strchr(p, ';')) != NULL;) {
		p++;
		while (*p == ' ')
			p++;
		if (strncasecmp(p, "boundary", 8) != 0)
			continue;
		p += 8;
		while (*p == ' ')
			p++;
		if (*p != '=')
			continue;
		p++;
		while (*p == ' ')
			p++;
		o = 0;
		if (*p == '"') {
			for (p++; *p != '\0' && *p != '"' && o + 1 < blen; p++)
				boundary[o++] = *p;
		} else {
			for (; *p != '\0' && *p != ';' && *p != ' ' && o + 1 < blen; p++)
				boundary[o++] = *p;
		}
		boundary[o] = '\0';
		return;
	}
}

static int b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Decodes the base64 of body into m->der: 1, or -1 with why. */
static int decode_b64(const span *body, size_t max_der, cmpc_mime_in *m, char *why,
		      size_t whylen)
{
	size_t cap = (size_t)(body->end - body->p) / 4 * 3 + 3, o = 0, q = 0, pad = 0;
	unsigned long acc = 0;
	const char *p;
	unsigned char *d;
	int v;

	if (cap > max_der + 3)
		cap = max_der + 3;
	if ((d = OPENSSL_malloc(cap > 0 ? cap : 1)) == NULL) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	for (p = body->p; p < body->end; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '\r' || c == '\n' || c == ' ' || c == '\t')
			continue;
		if (c == '=') {
			pad++;
			continue;
		}
		if ((v = b64val(c)) < 0 || pad > 0) {
			snprintf(why, whylen, "the CMP part is not valid base64 (%s at offset %zu)",
				 pad > 0 ? "data after the padding" : "a character outside base64",
				 (size_t)(p - body->p));
			goto bad;
		}
		acc = acc << 6 | (unsigned long)v;
		if (++q == 4) {
			if (o + 3 > max_der) {
				snprintf(why, whylen,
					 "the CMP part is larger than the response size limit of "
					 "%zu bytes",
					 max_der);
				goto bad;
			}
			d[o++] = (unsigned char)(acc >> 16);
			d[o++] = (unsigned char)(acc >> 8);
			d[o++] = (unsigned char)acc;
			q = 0;
			acc = 0;
		}
	}
	if (q == 1 || (q == 0 && pad > 0) || (q > 1 && pad != 0 && q + pad != 4)) {
		snprintf(why, whylen,
			 "the CMP part is not valid base64 (it ends in a broken group)");
		goto bad;
	}
	if (q > 1) {
		acc <<= 6 * (4 - q);
		if (o + q - 1 > max_der) {
			snprintf(why, whylen,
				 "the CMP part is larger than the response size limit of %zu bytes",
				 max_der);
			goto bad;
		}
		d[o++] = (unsigned char)(acc >> 16);
		if (q == 3)
			d[o++] = (unsigned char)(acc >> 8);
	}
	if (o == 0) {
		snprintf(why, whylen, "the CMP part is empty");
		goto bad;
	}
	m->der = d;
	m->der_len = o;
	return 1;
bad:
	OPENSSL_clear_free(d, cap > 0 ? cap : 1);
	return -1;
}

/* Is line the delimiter "--boundary" (1) or the close "--boundary--" (2),
 * with any blanks after it? */
static int delimiter(const span *line, const char *b, size_t blen)
{
	const char *p = line->p;
	int r = 1;

	if ((size_t)(line->end - p) < blen + 2 || p[0] != '-' || p[1] != '-' ||
	    memcmp(p + 2, b, blen) != 0)
		return 0;
	p += 2 + blen;
	if (line->end - p >= 2 && p[0] == '-' && p[1] == '-') {
		p += 2;
		r = 2;
	}
	for (; p < line->end; p++)
		if (*p != ' ' && *p != '\t')
			return 0;
	return r;
}

/* The entity in s (headers, then body): 1 the CMP part decoded, 0 none
 * in it, -1 a CMP part that cannot be used (why). */
static int entity(span s, int depth, size_t max_der, cmpc_mime_in *m, cmpc_mime_in *top,
		  char *why, size_t whylen)
{
	part_hdrs h;
	char type[64], boundary[204], cte[64];
	span line, part;
	const char *part_start = NULL;
	size_t blen;
	int r, d;

	h.top = top;
	parse_headers(&s, &h);
	content_type(h.ctype[0] != '\0' ? h.ctype : "text/plain", type, sizeof(type), boundary,
		     sizeof(boundary));
	if (cmpc_mime_is_cmp_type(type)) {
		snprintf(m->ctype, sizeof(m->ctype), "%s", type);
		content_type(h.cte, cte, sizeof(cte), boundary, sizeof(boundary));
		if (strcmp(cte, "base64") != 0) {
			snprintf(why, whylen,
				 "the CMP part (%s) has the transfer encoding '%s', not base64",
				 type, cte[0] != '\0' ? cte : "7bit");
			return -1;
		}
		return decode_b64(&s, max_der, m, why, whylen);
	}
	if (strncmp(type, "multipart/", 10) != 0)
		return 0;
	if (depth >= MAX_DEPTH) {
		snprintf(why, whylen, "multipart nested deeper than %d levels", MAX_DEPTH);
		return -1;
	}
	if ((blen = strlen(boundary)) == 0 || blen > 200) {
		snprintf(why, whylen, "a %s without a usable boundary", type);
		return -1;
	}
	for (;;) {
		span before = s;

		if (!next_line(&s, &line)) {
			if (part_start == NULL)
				break;
			d = 2; /* no close delimiter: the last part ends with the mail */
		} else if ((d = delimiter(&line, boundary, blen)) == 0) {
			continue;
		}
		if (part_start != NULL) {
			/* the CR LF before a delimiter belongs to it */
			part.p = part_start;
			part.end = before.p;
			if (part.end > part.p && part.end[-1] == '\n')
				part.end--;
			if (part.end > part.p && part.end[-1] == '\r')
				part.end--;
			if ((r = entity(part, depth + 1, max_der, m, NULL, why, whylen)) != 0)
				return r;
		}
		if (d == 2)
			break;
		part_start = s.p;
	}
	return 0;
}

int cmpc_mime_parse(const char *mail, size_t len, size_t max_der, cmpc_mime_in *m, char *why,
		    size_t whylen)
{
	span s = { mail, mail + len };
	int r;

	memset(m, 0, sizeof(*m));
	why[0] = '\0';
	r = entity(s, 0, max_der, m, m, why, whylen);
	if (r == 0)
		snprintf(why, whylen, "the mail has no CMP part (application/pkixcmp)");
	return r;
}

void cmpc_mime_in_clear(cmpc_mime_in *m)
{
	if (m->der != NULL)
		OPENSSL_clear_free(m->der, m->der_len);
	m->der = NULL;
	m->der_len = 0;
}

/* The number after "<tid>." (a Message-ID) or "<tid> " (a subject) at p,
 * where the tid is found (any case); -1 none. */
static long number_after(const char *s, const char *tid, char sep)
{
	size_t n = strlen(tid);
	const char *p;
	long v = -1;

	for (p = s; (p = strcasestr(p, tid)) != NULL; p += n) {
		const char *q = p + n;

		/* the whole id, not a longer one that starts or ends alike */
		if ((p > s && ((p[-1] >= '0' && p[-1] <= '9') || (p[-1] >= 'a' && p[-1] <= 'f') ||
			       (p[-1] >= 'A' && p[-1] <= 'F'))) ||
		    *q != sep || q[1] < '0' || q[1] > '9')
			continue;
		for (v = 0, q++; *q >= '0' && *q <= '9' && v < 100000; q++)
			v = v * 10 + (*q - '0');
		/* the last one counts: References lists the thread in order */
		if (sep == ' ')
			return v;
	}
	return v;
}

int cmpc_mime_match(const cmpc_mime_in *m, const char *tid, int seq)
{
	long n;

	if (*tid == '\0')
		return 0;
	/* What names the message answered: In-Reply-To, References, subject. */
	if ((n = number_after(m->in_reply_to, tid, '.')) < 0 &&
	    (n = number_after(m->references, tid, '.')) < 0)
		n = number_after(m->subject, tid, ' ');
	if (n >= 0)
		return n == seq ? 2 : -1;
	if (strcasecmp(m->tid, tid) == 0)
		return 1;
	return 0;
}
