/*
 * Fuzz target: the agent's state file (STATE_DIR/NAME.agent), which
 * track_load reads back at every start.  The input is the file's text.
 * Whatever it holds, what track_load makes of it must be within the
 * bounds the agent relies on, the status document and table built from it
 * must be well-formed (JSON strings escaped, no control characters in the
 * table an operator's terminal shows), and writing it with track_save and
 * reading it again must give the same state.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/track.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[256], path[300];

/* TMPDIR=/dev/shm (tools/fuzz.sh): every input is a file saved, renamed
 * and read, and a disk's metadata journal made the target wait. */
static void setup_once(void)
{
	const char *tmp = getenv("TMPDIR");

	if (dir[0] != '\0')
		return;
	if (tmp == NULL || *tmp == '\0' || strlen(tmp) > 200)
		tmp = "/tmp";
	snprintf(dir, sizeof(dir), "%s/fuzz-state.XXXXXX", tmp);
	if (mkdtemp(dir) == NULL)
		abort();
	snprintf(path, sizeof(path), "%s/fuzz.agent", dir);
}

static void tearoff(void) __attribute__((destructor));
static void tearoff(void)
{
	if (dir[0] != '\0') {
		unlink(path);
		rmdir(dir);
	}
}

static void init(track *t)
{
	free(t->last_error); /* the static tracks start with none */
	track_set_pin_latch(t, NULL);
	memset(t, 0, sizeof(*t));
	t->name = (char *)"fuzz";
	t->e.name = (char *)"fuzz";
	t->e.state_dir = dir;
	t->waiter_fd = -1;
}

static int terminated(const char *s, size_t n)
{
	return memchr(s, '\0', n) != NULL;
}

/* The text as track_save writes it: escaped, cut to the field before a
 * whole character and marked (agent_escape_bounded). */
static void one_line(char *s, size_t size)
{
	char tmp[TRACK_ERROR_MAX];

	agent_escape_bounded(s, tmp, sizeof(tmp) < size ? sizeof(tmp) : size);
	memcpy(s, tmp, strlen(tmp) + 1);
}

static void check_outputs(track *t)
{
	track *const tracks[1] = { t };
	char *doc;
	size_t len, i;
	int instr = 0;

	if ((doc = track_status_json(tracks, 1, 1767225600LL, 1, &len)) == NULL)
		abort();
	/* No raw control character inside a JSON string. */
	for (i = 0; i < len; i++) {
		if (instr && doc[i] == '\\')
			i++; /* the escaped character */
		else if (doc[i] == '"')
			instr = !instr;
		else if (instr && (unsigned char)doc[i] < 0x20)
			abort();
	}
	if (instr || strlen(doc) != len)
		abort();
	free(doc);
	if ((doc = track_status_text(tracks, 1, 1767225600LL, &len)) == NULL)
		abort();
	for (i = 0; i < len; i++)
		if (((unsigned char)doc[i] < 0x20 && doc[i] != '\n') || doc[i] == 0x7f)
			abort();
	free(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static track t, again;
	char err[TRACK_ERROR_MAX], pin[TRACK_PIN_LATCH_MAX];
	FILE *f;

	setup_once();
	if ((f = fopen(path, "wb")) == NULL || fwrite(data, 1, size, f) != size || fclose(f) != 0)
		abort();
	init(&t);
	if (track_load(&t) != 0)
		return 0;
	/* Bounds the scheduler and the status document rely on. */
	if (t.failures < 0 || t.failures > 1000000 || t.renewals < 0 ||
	    strlen(track_error(&t)) >= TRACK_ERROR_MAX ||
	    strlen(track_pin_latch(&t)) >= TRACK_PIN_LATCH_MAX ||
	    !terminated(t.cert_serial, sizeof(t.cert_serial)) ||
	    strspn(t.cert_serial, "0123456789ABCDEF") != strlen(t.cert_serial) ||
	    (t.st != T_START && t.st != T_STOPPED && t.st != T_PIN) ||
	    (t.have_cert && (t.cert_serial[0] == '\0' || t.not_after <= 0)))
		abort();
	check_outputs(&t);
	/* Saved and read again: the same state (text fields as saved). */
	if (track_save(&t) != 0)
		abort();
	init(&again);
	if (track_load(&again) != 0)
		abort();
	snprintf(err, sizeof(err), "%s", track_error(&t));
	snprintf(pin, sizeof(pin), "%s", track_pin_latch(&t));
	one_line(err, sizeof(err));
	one_line(pin, sizeof(pin));
	if (again.seed != t.seed || again.next != t.next || again.last_success != t.last_success ||
	    again.last_attempt != t.last_attempt || again.failures != t.failures ||
	    again.renewals != t.renewals || again.st != t.st || strcmp(track_error(&again), err) != 0 ||
	    strcmp(track_pin_latch(&again), pin) != 0 || again.have_cert != t.have_cert ||
	    again.last_error_at != t.last_error_at || strcmp(again.ca_status, t.ca_status) != 0 ||
	    strcmp(again.ca_fail_info, t.ca_fail_info) != 0 ||
	    (t.have_cert && (strcmp(again.cert_serial, t.cert_serial) != 0 ||
			     again.not_before != t.not_before || again.not_after != t.not_after)))
		abort();
	return 0;
}
