/*
 * Fuzz target: an answer mail of the e-mail transport (cmp/cmpc_mime.c),
 * as anyone who can send mail to the inbox may write it.  Input: one byte
 * that sets the CMP part's size limit (its value times 8), then the mail.
 *
 * - cmpc_mime_parse: 1 only with a decoded part within the limit, 0 or -1
 *   with none; a refusal says why in printable text; the header values
 *   are printable and end inside their buffers;
 * - cmpc_mime_match: one of -1, 0, 1, 2, and 2 or -1 only when a
 *   message number is named;
 * - a decoded part mailed again (cmpc_mime_build) reads back the same.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cmp/cmpc-int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void printable(const char *s, size_t len)
{
	if (memchr(s, '\0', len) == NULL)
		abort();
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char tid[] = "0a1b2c3d";
	cmpc_mime_in in, back;
	cmpc_mime_out o;
	char why[256], *mail = NULL;
	size_t max, len = 0;
	int r, m;

	if (size < 1)
		return 0;
	max = (size_t)data[0] * 8;
	why[0] = '\0';
	r = cmpc_mime_parse((const char *)data + 1, size - 1, max, &in, why, sizeof(why));
	if (r < -1 || r > 1 || (r == 1) != (in.der != NULL) ||
	    (r == 1 && (in.der_len == 0 || in.der_len > max)))
		abort();
	if (r != 1 && why[0] == '\0')
		abort();
	printable(why, sizeof(why));
	printable(in.subject, sizeof(in.subject));
	printable(in.in_reply_to, sizeof(in.in_reply_to));
	printable(in.references, sizeof(in.references));
	printable(in.tid, sizeof(in.tid));
	printable(in.msgid, sizeof(in.msgid));
	printable(in.ctype, sizeof(in.ctype));
	m = cmpc_mime_match(&in, tid, 1);
	if (m < -1 || m > 2)
		abort();
	if (r == 1) {
		memset(&o, 0, sizeof(o));
		o.from = "a@b";
		o.to = "c@d";
		o.tid = tid;
		o.seq = 1;
		o.msgid = "<0a1b2c3d.1.00@b>";
		o.der = in.der;
		o.der_len = in.der_len;
		if (!cmpc_mime_build(&o, &mail, &len, why, sizeof(why)))
			abort();
		if (cmpc_mime_parse(mail, len, max, &back, why, sizeof(why)) != 1 ||
		    back.der_len != in.der_len || memcmp(back.der, in.der, in.der_len) != 0 ||
		    cmpc_mime_match(&back, tid, 1) != 2)
			abort();
		cmpc_mime_in_clear(&back);
		OPENSSL_free(mail);
	}
	cmpc_mime_in_clear(&in);
	return 0;
}
