/*
 * The CMP-over-TCP frame parser (cmp/cmpc_tcp.c) on its own: both framings
 * (the drafts' version 10, RFC 2510's), every message type's value, frames
 * that come in pieces, and what is refused (a wrong version, an unknown
 * type, a length shorter than the header or over the limit, a pollRep of
 * the wrong size); the errorMsgRep text made printable.  Prints TAP.
 */
#include "config.h"

#include <string.h>

#include "cmp/cmpc-int.h"
#include "tests/unit/tap.h"

static cmpc_tcp_frame f;
static char why[256];

static int parse(const unsigned char *b, size_t n, size_t max)
{
	why[0] = '\0';
	return cmpc_tcp_frame_parse(b, n, max, &f, why, sizeof(why));
}

int main(void)
{
	static const unsigned char v10[] = { 0, 0, 0, 6, 10, 1, 5, 0x30, 1, 0 };
	static const unsigned char old[] = { 0, 0, 0, 4, 5, 0x30, 1, 0 };
	static const unsigned char pollrep[] = { 0, 0, 0, 11, 10, 0, 1, 0, 0, 0, 7, 0, 0, 0, 30 };
	static const unsigned char pollrep_old[] = { 0, 0, 0, 9, 1, 0, 0, 1, 0, 0, 0, 0, 5 };
	static const unsigned char short_poll[] = { 0, 0, 0, 7, 10, 0, 1, 0, 0, 0, 7 };
	static const unsigned char wrongver[] = { 0, 0, 0, 6, 9, 0, 5, 0x30, 1, 0 };
	static const unsigned char badtype[] = { 0, 0, 0, 3, 10, 0, 7 };
	static const unsigned char tooshort[] = { 0, 0, 0, 2, 10, 0, 5 };
	static const unsigned char empty_old[] = { 0, 0, 0, 0, 5 };
	static const unsigned char huge[] = { 0x7f, 0xff, 0xff, 0xf0, 10, 0, 5 };
	static const unsigned char http[] = "HTTP/1.1 200 OK\r\n";
	static const unsigned char errmsg[] = { 0, 0, 0, 14, 10, 1, 6, 3, 0, 0, 2,
						0xff, 0xfe, 'b', 'a', 'd', '\n', 0x1b };
	static const unsigned char errmsg_old[] = { 0, 0, 0, 5, 6, 'o', 'o', 'p', 's' };
	char text[64];
	size_t i;
	int all;

	tap_plan(24);
	tap_ok(parse(v10, sizeof(v10), 100) == 1 && f.version == 10 && f.flags == 1 &&
		   f.type == CMPC_TCP_FINALMSGREP && f.value_len == 3 && f.value == v10 + 7 &&
		   f.size == sizeof(v10),
	       "/cmpc/tcp/v10-final", "r=%s", why);
	tap_ok(parse(old, sizeof(old), 100) == 1 && f.version == 0 && f.type == 5 &&
		   f.value_len == 3 && f.value == old + 5,
	       "/cmpc/tcp/rfc2510-final", "%s", why);
	tap_ok(parse(pollrep, sizeof(pollrep), 100) == 1 && f.type == CMPC_TCP_POLLREP &&
		   f.poll_ref == 7 && f.check_after == 30,
	       "/cmpc/tcp/v10-pollrep", "%s", why);
	tap_ok(parse(pollrep_old, sizeof(pollrep_old), 100) == 1 && f.poll_ref == 256 &&
		   f.check_after == 5,
	       "/cmpc/tcp/rfc2510-pollrep", "%s", why);
	/* every prefix of a whole frame asks for more, never fails */
	all = 1;
	for (i = 0; i < sizeof(v10); i++)
		if (parse(v10, i, 100) != 0 || (i >= 5 && f.size != sizeof(v10)))
			all = 0;
	tap_check(all, "/cmpc/tcp/prefix-needs-more");
	all = 1;
	for (i = 0; i < sizeof(old); i++)
		if (parse(old, i, 100) != 0)
			all = 0;
	tap_check(all, "/cmpc/tcp/rfc2510-prefix-needs-more");
	tap_check(parse(v10, 4, 100) == 0 && f.size == 0, "/cmpc/tcp/size-unknown-before-5");
	/* bytes after the frame (the next one) are not its */
	{
		unsigned char two[sizeof(v10) * 2];

		memcpy(two, v10, sizeof(v10));
		memcpy(two + sizeof(v10), v10, sizeof(v10));
		tap_check(parse(two, sizeof(two), 100) == 1 && f.size == sizeof(v10) &&
			      f.value_len == 3,
			  "/cmpc/tcp/one-frame-of-two");
	}
	tap_ok(parse(wrongver, sizeof(wrongver), 100) == -1 && strstr(why, "version 9") != NULL,
	       "/cmpc/tcp/wrong-version", "%s", why);
	tap_ok(parse(http, sizeof(http) - 1, 100) == -1 && strstr(why, "version 47") != NULL,
	       "/cmpc/tcp/http-garbage", "%s", why);
	tap_ok(parse(badtype, sizeof(badtype), 100) == -1 && strstr(why, "type 7") != NULL,
	       "/cmpc/tcp/unknown-type", "%s", why);
	tap_ok(parse(tooshort, sizeof(tooshort), 100) == -1 && strstr(why, "shorter") != NULL,
	       "/cmpc/tcp/length-below-header", "%s", why);
	tap_ok(parse(empty_old, sizeof(empty_old), 100) == -1, "/cmpc/tcp/rfc2510-empty", "%s",
	       why);
	tap_ok(parse(huge, sizeof(huge), 1000) == -2 && strstr(why, "limit of 1000") != NULL,
	       "/cmpc/tcp/over-limit", "%s", why);
	tap_ok(parse(v10, sizeof(v10), 5) == -2, "/cmpc/tcp/limit-is-the-length", "%s", why);
	tap_ok(parse(v10, sizeof(v10), 6) == 1, "/cmpc/tcp/limit-inclusive", "%s", why);
	tap_ok(parse(short_poll, sizeof(short_poll), 100) == -1 &&
		   strstr(why, "pollRep frame has a value of 4 bytes") != NULL,
	       "/cmpc/tcp/pollrep-short", "%s", why);
	tap_ok(parse(errmsg, sizeof(errmsg), 100) == 1 && f.type == CMPC_TCP_ERRORMSGREP,
	       "/cmpc/tcp/errormsg-parsed", "%s", why);
	cmpc_tcp_error_text(&f, text, sizeof(text));
	tap_ok(strcmp(text, "bad??") == 0, "/cmpc/tcp/errormsg-v10-text", "text '%s'", text);
	tap_ok(parse(errmsg_old, sizeof(errmsg_old), 100) == 1, "/cmpc/tcp/errormsg-rfc2510",
	       "%s", why);
	cmpc_tcp_error_text(&f, text, sizeof(text));
	tap_ok(strcmp(text, "oops") == 0, "/cmpc/tcp/errormsg-rfc2510-text", "text '%s'", text);
	cmpc_tcp_error_text(&f, text, 3);
	tap_ok(strcmp(text, "oo") == 0, "/cmpc/tcp/errormsg-cut", "text '%s'", text);
	tap_check(strcmp(cmpc_tcp_type_name(CMPC_TCP_FINREP), "finRep") == 0 &&
		      strcmp(cmpc_tcp_type_name(99), "unknown") == 0,
		  "/cmpc/tcp/type-names");
	tap_check(cmpc_is_tcp_url("TCP://ca.example") && !cmpc_is_tcp_url("http://x") &&
		      !cmpc_is_tcp_url(NULL),
		  "/cmpc/tcp/scheme");
	return tap_done();
}
