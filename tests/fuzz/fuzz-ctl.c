/*
 * Fuzz target: a request on the agent's control socket, as the agent reads
 * it: ctl_client_io frames the line from a non-blocking socket (here one end
 * of a socketpair, written in chunks), ctl_parse_request says what it asks
 * for.  Both are checked against a model: the framing (newline, CR, NUL,
 * end of input, CTL_LINE_MAX) computed from the whole input, the decision
 * as handle_request made it inline before it was factored out.
 *
 * Input: byte 0 the chunk size (low 7 bits, plus one) and whether the
 * client shuts down its side at the end (bit 7); then the bytes it sends.
 */
#include "config.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/track.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* handle_request's decision as it was written inline. */
static ctl_verb model_verb(const char *line, const char **name)
{
	if (strcmp(line, "status") == 0 || strcmp(line, "status-text") == 0)
		return line[6] == '\0' ? CTL_STATUS_JSON : CTL_STATUS_TEXT;
	/* status of one enrollment (since issue 13) */
	if (strncmp(line, "status ", 7) == 0 || strncmp(line, "status-text ", 12) == 0) {
		*name = line + (line[6] == ' ' ? 7 : 12);
		return line[6] == ' ' ? CTL_STATUS_JSON : CTL_STATUS_TEXT;
	}
	if (strcmp(line, "reload") == 0)
		return CTL_RELOAD;
	if (strncmp(line, "renew ", 6) == 0 || strncmp(line, "clear ", 6) == 0) {
		*name = line + 6;
		return line[0] == 'c' ? CTL_CLEAR : CTL_RENEW;
	}
	return CTL_UNKNOWN;
}

/* What read_line makes of the whole input d (n bytes). */
static ctl_io model_io(const uint8_t *d, size_t n, int eof, char *line)
{
	const uint8_t *nl = memchr(d, '\n', n < CTL_LINE_MAX ? n : CTL_LINE_MAX);
	size_t len;

	if (nl != NULL)
		len = (size_t)(nl - d);
	else if (n >= CTL_LINE_MAX)
		return CTL_IO_TOO_LONG;
	else if (!eof)
		return CTL_IO_MORE;
	else if (n == 0)
		return CTL_IO_DONE;
	else
		len = n;
	memcpy(line, d, len);
	line[len] = '\0';
	line[strcspn(line, "\r")] = '\0';
	return CTL_IO_REQUEST;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char want[CTL_LINE_MAX + 1];
	const char *name = NULL, *want_name = NULL;
	ctl_client c;
	ctl_io io = CTL_IO_MORE, expect;
	size_t chunk, off = 0, n;
	int sv[2], eof;
	ctl_verb v;

	if (size < 1 || size > 4096 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return 0;
	chunk = (size_t)(data[0] & 0x7f) + 1;
	eof = (data[0] & 0x80) != 0;
	data++;
	size--;
	expect = model_io(data, size, eof, want);
	memset(&c, 0, sizeof(c));
	c.fd = sv[0];
	c.phase = CTL_READ;
	(void)fcntl(sv[0], F_SETFL, O_NONBLOCK);
	while (off < size && io == CTL_IO_MORE) {
		n = size - off < chunk ? size - off : chunk;
		if (write(sv[1], data + off, n) != (ssize_t)n)
			abort();
		off += n;
		io = ctl_client_io(&c);
	}
	if (io == CTL_IO_MORE && eof) {
		shutdown(sv[1], SHUT_WR);
		io = ctl_client_io(&c);
	}
	if (io != expect || (io == CTL_IO_REQUEST && strcmp(c.line, want) != 0))
		abort();
	if (io == CTL_IO_REQUEST) {
		v = ctl_parse_request(c.line, &name);
		if (v != model_verb(c.line, &want_name))
			abort();
		if (name != want_name ||
		    (name != NULL && (name < c.line || name > c.line + strlen(c.line))))
			abort();
	}
	c.fd = -1;
	ctl_client_close(&c);
	close(sv[0]);
	close(sv[1]);
	return 0;
}
