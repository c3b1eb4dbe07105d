/*
 * An HTTP server on 127.0.0.1 inside the fuzz target, on a thread of its
 * own: the client under test talks to it through libcurl, so that the
 * whole transport path (request encoding, libcurl, the write callback,
 * status and content type checks, the size cap) runs as in production.
 * One request per connection; the answer is whatever the handler returns,
 * sent as it is, then the connection is closed.
 */
#ifndef P11ENROLL_FUZZ_LOOPBACK_H
#define P11ENROLL_FUZZ_LOOPBACK_H

#include <stddef.h>

/* body: the request's body (len bytes).  Returns the raw bytes to send
 * (status line, headers and body; malloc'ed, *ret_len bytes), or NULL to
 * close the connection without an answer. */
typedef unsigned char *(*lb_handler)(const unsigned char *body, size_t len, size_t *ret_len,
				     void *arg);

/* Starts the server once per process; returns its port (aborts on failure). */
int lb_start(lb_handler fn, void *arg);

/*
 * The answers of the current input: a copy owned here and locked, since a
 * client that timed out on a busy machine has returned, and libFuzzer has
 * freed the input, while the server thread may still be about to answer
 * (a heap-use-after-free in a harness, not in the client, found by
 * fuzz-http).  lb_feed copies size bytes at data (NULL, 0: none left).
 * lb_take hands the server thread the next answer, a malloc'ed copy of
 * *len bytes (one more allocated, for a NUL), or NULL when none is left:
 * framed = 0 all that is left, framed = 1 the next chunk prefixed by its
 * length in 2 big-endian bytes (cut to what is left).
 */
void lb_feed(const unsigned char *data, size_t size);
unsigned char *lb_take(int framed, size_t *len);

/* "HTTP/1.1 200 OK" with Content-Type application/pkixcmp around body. */
unsigned char *lb_pkixcmp(const unsigned char *body, size_t len, size_t *ret_len);

#endif
