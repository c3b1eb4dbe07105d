/*
 * Fuzz target: what a CMP-over-TCP server sends (cmp/cmpc_tcp.c).  Input:
 * one byte that sets the size limit (its value times 16), then the byte
 * stream, parsed frame after frame as the client reads it, and each prefix
 * of the first frame as it arrives.
 *
 * - cmpc_tcp_frame_parse: a parsed frame lies inside the bytes given,
 *   its value is the frame after its header, its length is within the
 *   limit; "more needed" never names a size already there; a refusal says
 *   why in printable text;
 * - cmpc_tcp_error_text: printable ASCII only, within the buffer.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cmp/cmpc-int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void printable(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			abort();
}

static int one(const unsigned char *b, size_t n, size_t max)
{
	cmpc_tcp_frame f;
	char why[256], text[64];
	size_t hdr;
	int r;

	why[0] = '\0';
	r = cmpc_tcp_frame_parse(b, n, max, &f, why, sizeof(why));
	if (r < 0) {
		if (why[0] == '\0')
			abort();
		printable(why);
		return r;
	}
	if (r == 0) {
		if (f.size != 0 && f.size <= n && n >= 7)
			abort();
		return 0;
	}
	hdr = f.version == CMPC_TCP_VERSION ? 7 : 5;
	if (f.size > n || f.size - 4 > max || f.value != b + hdr || f.value_len != f.size - hdr ||
	    f.type < 0 || f.type > CMPC_TCP_ERRORMSGREP)
		abort();
	if (f.type == CMPC_TCP_ERRORMSGREP) {
		if (cmpc_tcp_error_text(&f, text, sizeof(text)) >= sizeof(text))
			abort();
		printable(text);
	}
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t max, off, i;
	int r;

	if (size < 1)
		return 0;
	max = (size_t)data[0] * 16;
	data++;
	size--;
	for (i = 0; i < size && i < 64; i++)
		if (one(data, i, max) < 0)
			break;
	for (off = 0; off < size;) {
		cmpc_tcp_frame f;
		char why[256];

		if ((r = one(data + off, size - off, max)) != 1)
			break;
		(void)cmpc_tcp_frame_parse(data + off, size - off, max, &f, why, sizeof(why));
		off += f.size;
	}
	return 0;
}
