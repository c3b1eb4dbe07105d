/*
 * The mails of the e-mail transport (cmp/cmpc_mime.c) on their own, and
 * what cmpc_mail_check lets through (cmp/cmpc_mail.c): the
 * request mail as built (headers, base64 lines of 76, CRLF) read back by
 * the parser; what mail systems make of an answer (LF line ends, folded
 * headers, the older content types, parameters and case, multipart,
 * nested, unclosed); what is refused (no CMP part, not base64, broken
 * base64, too large, too deep, no boundary, header injection when
 * building); which message of which transaction a mail answers.  Prints TAP.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cmp/cmpc-int.h"
#include "tests/unit/tap.h"

#define TID "0a1b2c3d4e5f60718293a4b5c6d7e8f9"

static cmpc_mime_in in;
static char why[256];

static int parse(const char *mail, size_t max)
{
	cmpc_mime_in_clear(&in);
	return cmpc_mime_parse(mail, strlen(mail), max, &in, why, sizeof(why));
}

/* "30 03 02 01 07" in base64 */
#define DER_B64 "MAMCAQc="
static const unsigned char der5[] = { 0x30, 0x03, 0x02, 0x01, 0x07 };

static int is_der5(void)
{
	return in.der != NULL && in.der_len == sizeof(der5) && memcmp(in.der, der5, 5) == 0;
}

/* Every line ends in CR LF and has at most max characters before it. */
static int lines_ok(const char *m, size_t len, size_t max)
{
	size_t i, col = 0;

	for (i = 0; i < len; i++) {
		if (m[i] == '\n') {
			if (i == 0 || m[i - 1] != '\r' || col - 1 > max)
				return 0;
			col = 0;
		} else {
			col++;
		}
	}
	return col == 0;
}

static void to_lf(char *m)
{
	char *o = m, *p;

	for (p = m; *p != '\0'; p++)
		if (!(p[0] == '\r' && p[1] == '\n'))
			*o++ = *p;
	*o = '\0';
}

int main(void)
{
	unsigned char der[700];
	cmpc_mime_out o;
	char *mail = NULL, *copy, buf[4096];
	size_t len = 0, i;
	int r, all;

	tap_plan(39);
	for (i = 0; i < sizeof(der); i++)
		der[i] = (unsigned char)(i * 7 + 3);
	memset(&o, 0, sizeof(o));
	o.from = "dev@host.example";
	o.to = "ca@example.org";
	o.tid = TID;
	o.seq = 3;
	o.msgid = "<" TID ".3.0011223344556677@host.example>";
	o.date = 1796342400;
	o.der = der;
	o.der_len = sizeof(der);
	r = cmpc_mime_build(&o, &mail, &len, why, sizeof(why));
	tap_ok(r == 1 && mail != NULL, "/cmpc/mime/build", "%s", why);
	if (mail == NULL)
		tap_bail("no mail built");
	copy = OPENSSL_strndup(mail, len);
	tap_ok(strstr(copy, "\r\nSubject: CMP " TID " 3\r\n") != NULL &&
		   strstr(copy, "\r\nX-CMP-Transaction-ID: " TID "\r\n") != NULL &&
		   strstr(copy, "\r\nContent-Type: application/pkixcmp\r\n") != NULL &&
		   strstr(copy, "\r\nContent-Transfer-Encoding: base64\r\n") != NULL &&
		   strstr(copy, "\r\nMIME-Version: 1.0\r\n") != NULL &&
		   strncmp(copy, "From: dev@host.example\r\nTo: ca@example.org\r\n", 44) == 0,
	       "/cmpc/mime/build-headers", "%.400s", copy);
	tap_check(strstr(copy, "\r\nDate: Fri, 04 Dec 2026 00:00:00 +0000\r\n") != NULL,
		  "/cmpc/mime/build-date");
	tap_ok(lines_ok(mail, len, 998) && strstr(copy, "\r\n\r\n") != NULL &&
		   lines_ok(strstr(copy, "\r\n\r\n") + 4, strlen(strstr(copy, "\r\n\r\n") + 4),
			    76) &&
		   strlen(strstr(copy, "\r\n\r\n") + 4) == (sizeof(der) + 2) / 3 * 4 + 2 * 13,
	       "/cmpc/mime/build-base64-lines", "lines %d body %zu", lines_ok(mail, len, 76),
	       strlen(strstr(copy, "\r\n\r\n") + 4));
	r = cmpc_mime_parse(mail, len, 4096, &in, why, sizeof(why));
	tap_ok(r == 1 && in.der_len == sizeof(der) && memcmp(in.der, der, sizeof(der)) == 0 &&
		   strcmp(in.tid, TID) == 0 && strcmp(in.ctype, "application/pkixcmp") == 0 &&
		   strcmp(in.msgid, o.msgid) == 0,
	       "/cmpc/mime/round-trip", "r=%d %s", r, why);
	to_lf(copy);
	r = parse(copy, 4096);
	tap_ok(r == 1 && in.der_len == sizeof(der) && memcmp(in.der, der, sizeof(der)) == 0,
	       "/cmpc/mime/lf-line-ends", "r=%d %s", r, why);
	/* every prefix: no crash, and never more than was there */
	all = 1;
	for (i = 0; i <= len; i++) {
		cmpc_mime_in_clear(&in);
		r = cmpc_mime_parse(mail, i, 4096, &in, why, sizeof(why));
		if (r == 1 && in.der_len > sizeof(der))
			all = 0;
	}
	tap_check(all, "/cmpc/mime/every-prefix");
	OPENSSL_free(copy);
	OPENSSL_free(mail);
	mail = NULL;

	o.to = "ca@example.org\r\nBcc: x@evil.example";
	tap_check(cmpc_mime_build(&o, &mail, &len, why, sizeof(why)) == 0 && mail == NULL,
		  "/cmpc/mime/build-refuses-injection");
	o.to = "ca@example.org";

	r = parse("Subject: Re:\r\n\tCMP " TID "\r\n  2\r\n"
		  "Content-Type:\r\n application/pkixcmp\r\n"
		  "Content-Transfer-Encoding: BASE64\r\n\r\n" DER_B64 "\r\n",
		  100);
	tap_ok(r == 1 && is_der5() && strcmp(in.subject, "Re: CMP " TID " 2") == 0 &&
		   cmpc_mime_match(&in, TID, 2) == 2,
	       "/cmpc/mime/folded-headers", "r=%d %s subject '%s'", r, why, in.subject);
	r = parse("Content-Type: Application/X-PKIXCMP; name=\"rsp.der\"\n"
		  "Content-Transfer-Encoding: base64\n\n" DER_B64 "\n",
		  100);
	tap_ok(r == 1 && is_der5() && strcmp(in.ctype, "application/x-pkixcmp") == 0,
	       "/cmpc/mime/x-pkixcmp-params", "r=%d %s", r, why);
	r = parse("Content-Type: application/pkixcmp-poll\n"
		  "Content-Transfer-Encoding: base64\n\n" DER_B64,
		  100);
	tap_ok(r == 1 && is_der5(), "/cmpc/mime/pkixcmp-poll", "r=%d %s", r, why);
	r = parse("Content-Type: application/x-pkixcmp-poll\n"
		  "Content-Transfer-Encoding: base64\n\nMAMC\nAQc\n",
		  100);
	tap_ok(r == 1 && is_der5(), "/cmpc/mime/x-pkixcmp-poll-unpadded", "r=%d %s", r, why);
	r = parse("Subject: Re: CMP " TID " 1\r\nMIME-Version: 1.0\r\n"
		  "Content-Type: multipart/mixed; boundary=\"=_b 1\"\r\n\r\n"
		  "preamble\r\n--=_b 1\r\nContent-Type: text/plain\r\n\r\nThe CA's answer.\r\n"
		  "--=_b 1\r\nContent-Type: application/pkixcmp\r\n"
		  "Content-Transfer-Encoding: base64\r\n\r\n" DER_B64
		  "\r\n--=_b 1--\r\nepilogue\r\n",
		  100);
	tap_ok(r == 1 && is_der5(), "/cmpc/mime/multipart", "r=%d %s", r, why);
	r = parse("Content-Type: multipart/mixed; boundary=outer\n\n--outer\n"
		  "Content-Type: multipart/alternative; boundary=inner\n\n--inner\n"
		  "Content-Type: text/plain\n\nhi\n--inner\nContent-Type: application/pkixcmp\n"
		  "Content-Transfer-Encoding: base64\n\n" DER_B64 "\n--inner--\n--outer--\n",
		  100);
	tap_ok(r == 1 && is_der5(), "/cmpc/mime/multipart-nested", "r=%d %s", r, why);
	r = parse("Content-Type: multipart/mixed; boundary=b\n\n--b\n"
		  "Content-Type: application/pkixcmp\nContent-Transfer-Encoding: base64\n\n"
		  DER_B64 "\n",
		  100);
	tap_ok(r == 1 && is_der5(), "/cmpc/mime/multipart-unclosed", "r=%d %s", r, why);
	r = parse("Content-Type: multipart/mixed; boundary=b\n\n--b\n"
		  "Content-Type: text/plain\n\napplication/pkixcmp\n--b--\n",
		  100);
	tap_ok(r == 0 && strstr(why, "no CMP part") != NULL, "/cmpc/mime/multipart-no-cmp",
	       "r=%d %s", r, why);
	r = parse("Subject: hello\n\nJust text.\n", 100);
	tap_ok(r == 0 && in.der == NULL && strcmp(in.subject, "hello") == 0,
	       "/cmpc/mime/no-cmp-part", "r=%d %s", r, why);
	r = parse("Content-Type: application/pkixcmp\n\n0\x03\x02\x01\x07", 100);
	tap_ok(r == -1 && strstr(why, "not base64") != NULL, "/cmpc/mime/not-base64-encoding",
	       "r=%d %s", r, why);
	r = parse("Content-Type: application/pkixcmp\nContent-Transfer-Encoding: base64\n\n"
		  "MAM*AQc=\n",
		  100);
	tap_ok(r == -1 && strstr(why, "outside base64") != NULL, "/cmpc/mime/base64-bad-char",
	       "r=%d %s", r, why);
	r = parse("Content-Type: application/pkixcmp\nContent-Transfer-Encoding: base64\n\n"
		  "MAMCAQc=MAMC\n",
		  100);
	tap_ok(r == -1 && strstr(why, "after the padding") != NULL,
	       "/cmpc/mime/base64-data-after-padding", "r=%d %s", r, why);
	r = parse("Content-Type: application/pkixcmp\nContent-Transfer-Encoding: base64\n\n"
		  "MAMCA\n",
		  100);
	tap_ok(r == -1 && strstr(why, "broken group") != NULL, "/cmpc/mime/base64-broken-group",
	       "r=%d %s", r, why);
	r = parse("Content-Type: application/pkixcmp\nContent-Transfer-Encoding: base64\n\n\n",
		  100);
	tap_ok(r == -1 && strstr(why, "empty") != NULL, "/cmpc/mime/empty-part", "r=%d %s", r,
	       why);
	r = parse("Content-Type: application/pkixcmp\nContent-Transfer-Encoding: base64\n\n"
		  DER_B64 "\n",
		  4);
	tap_ok(r == -1 && strstr(why, "larger than the response size limit of 4") != NULL &&
		   in.der == NULL,
	       "/cmpc/mime/too-large", "r=%d %s", r, why);
	r = parse("Content-Type: application/pkixcmp\nContent-Transfer-Encoding: base64\n\n"
		  DER_B64 "\n",
		  5);
	tap_ok(r == 1 && is_der5(), "/cmpc/mime/exactly-the-limit", "r=%d %s", r, why);
	snprintf(buf, sizeof(buf), "Content-Type: multipart/mixed; boundary=a\n\n--a\n"
				   "Content-Type: multipart/mixed; boundary=b\n\n--b\n"
				   "Content-Type: multipart/mixed; boundary=c\n\n--c\n"
				   "Content-Type: multipart/mixed; boundary=d\n\n--d\n"
				   "Content-Type: multipart/mixed; boundary=e\n\n--e\n");
	r = parse(buf, 100);
	tap_ok(r == -1 && strstr(why, "nested deeper") != NULL, "/cmpc/mime/too-deep", "r=%d %s",
	       r, why);
	r = parse("Content-Type: multipart/mixed\n\n--a\n", 100);
	tap_ok(r == -1 && strstr(why, "boundary") != NULL, "/cmpc/mime/no-boundary", "r=%d %s", r,
	       why);
	r = parse("Subject: \x1b[31mred\x7f\n\n", 100);
	tap_ok(strcmp(in.subject, "?[31mred?") == 0, "/cmpc/mime/header-printable", "'%s'",
	       in.subject);

	/* which message a mail answers */
	parse("In-Reply-To: <" TID ".2.ab@h>\nSubject: Re: CMP " TID " 1\n\n", 100);
	tap_check(cmpc_mime_match(&in, TID, 2) == 2 && cmpc_mime_match(&in, TID, 3) == -1,
		  "/cmpc/mime/match-in-reply-to-first");
	parse("References: <" TID ".1.aa@h> <" TID ".2.bb@h>\n\n", 100);
	tap_check(cmpc_mime_match(&in, TID, 2) == 2 && cmpc_mime_match(&in, TID, 1) == -1,
		  "/cmpc/mime/match-references-last");
	parse("Subject: RE: [ext] CMP 0A1B2C3D4E5F60718293A4B5C6D7E8F9 4\n\n", 100);
	tap_check(cmpc_mime_match(&in, TID, 4) == 2, "/cmpc/mime/match-subject-any-case");
	parse("X-CMP-Transaction-ID: " TID "\nSubject: your certificate\n\n", 100);
	tap_check(cmpc_mime_match(&in, TID, 1) == 1 && cmpc_mime_match(&in, "ff" TID, 1) == 0,
		  "/cmpc/mime/match-header-only");
	parse("Subject: Re: CMP ff" TID " 1\nIn-Reply-To: <" TID "ff.1.x@h>\n\n", 100);
	tap_check(cmpc_mime_match(&in, TID, 1) == 0, "/cmpc/mime/match-not-a-longer-id");
	tap_check(cmpc_mime_is_cmp_type("application/pkixcmp") &&
		      cmpc_mime_is_cmp_type("APPLICATION/X-PKIXCMP-POLL") &&
		      !cmpc_mime_is_cmp_type("application/pkixcmp2") &&
		      !cmpc_mime_is_cmp_type("text/plain"),
		  "/cmpc/mime/cmp-types");

	/* what cmpc_mail_check lets through */
	{
		cmpc_mail m = { "ca@example.org", "dev@host.example", "smtps://mail.example",
				"imaps://mail.example/INBOX", NULL, NULL, 0, 0, 0 };
		const char *why_not;

		tap_check(cmpc_mail_check(&m) == NULL, "/cmpc/mail/check-ok");
		m.inbox_url = "pop3://mail.example:1110";
		tap_check(cmpc_mail_check(&m) == NULL, "/cmpc/mail/check-pop3");
		m.inbox_url = "https://mail.example/";
		why_not = cmpc_mail_check(&m);
		tap_ok(why_not != NULL && strstr(why_not, "mail_inbox") != NULL,
		       "/cmpc/mail/check-inbox-scheme", "%s", why_not ? why_not : "(accepted)");
		m.inbox_url = "imaps://dev:secret@mail.example/INBOX";
		why_not = cmpc_mail_check(&m);
		tap_ok(why_not != NULL && strstr(why_not, "no user or password") != NULL &&
			   strstr(why_not, "secret") == NULL,
		       "/cmpc/mail/check-userinfo", "%s", why_not ? why_not : "(accepted)");
		m.inbox_url = "imaps://mail.example/INBOX";
		m.to = "ca@example.org, evil@example.org";
		tap_check(cmpc_mail_check(&m) != NULL, "/cmpc/mail/check-one-address");
		m.to = "ca@example.org";
		m.smtp_url = "smtp://mail.example\r\nRCPT TO:<x@y>";
		tap_check(cmpc_mail_check(&m) != NULL, "/cmpc/mail/check-url-control");
	}
	cmpc_mime_in_clear(&in);
	return tap_done();
}
