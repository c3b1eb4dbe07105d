/*
 * A JSON document written as it goes (the --json outputs of list, check,
 * tokens and status --all): commas, nesting and null handled here, every
 * string through agent_json_string(), times as RFC 3339 UTC.  Nothing is
 * kept but the nesting, so a listing of thousands of objects costs no
 * memory.  Out of memory leaves the document unfinished and says so in
 * agent_jw_end().
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/agent.h"

void agent_jw_init(agent_jw *w, FILE *f)
{
	memset(w, 0, sizeof(*w));
	w->f = f;
	w->first[0] = 1;
}

/* The comma before a member and its key (NULL inside an array). */
static void member(agent_jw *w, const char *key)
{
	/* the elements of an array one a line, for people reading it too */
	if (key == NULL && w->depth > 0)
		fputs(w->first[w->depth] ? "\n  " : ",\n  ", w->f);
	else if (!w->first[w->depth])
		fputs(", ", w->f);
	w->first[w->depth] = 0;
	if (key != NULL)
		fprintf(w->f, "\"%s\": ", key);
}

static void open_(agent_jw *w, const char *key, const char *brace)
{
	member(w, key);
	fputs(brace, w->f);
	if (w->depth + 1 < AGENT_JW_DEPTH)
		w->depth++;
	else
		w->bad = 1;
	w->first[w->depth] = 1;
}

void agent_jw_object(agent_jw *w, const char *key)
{
	open_(w, key, "{");
}

void agent_jw_array(agent_jw *w, const char *key)
{
	open_(w, key, "[");
}

void agent_jw_close(agent_jw *w, char brace)
{
	if (brace == ']' && !w->first[w->depth])
		fputc('\n', w->f);
	if (w->depth > 0)
		w->depth--;
	fputc(brace, w->f);
}

void agent_jw_str(agent_jw *w, const char *key, const char *raw)
{
	char *s;

	if (raw == NULL) {
		agent_jw_null(w, key);
		return;
	}
	if ((s = agent_json_string(raw)) == NULL) {
		w->bad = 1;
		return;
	}
	member(w, key);
	fputs(s, w->f);
	free(s);
}

void agent_jw_int(agent_jw *w, const char *key, long long v)
{
	member(w, key);
	fprintf(w->f, "%lld", v);
}

void agent_jw_bool(agent_jw *w, const char *key, int v)
{
	member(w, key);
	fputs(v < 0 ? "null" : v ? "true" : "false", w->f);
}

void agent_jw_null(agent_jw *w, const char *key)
{
	member(w, key);
	fputs("null", w->f);
}

const char *agent_rfc3339(long long t, char *out, size_t outlen)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (outlen == 0)
		return out;
	if (gmtime_r(&tt, &tm) == NULL || strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		out[0] = '\0';
	return out;
}

void agent_jw_time(agent_jw *w, const char *key, long long t, int known)
{
	if (!known) {
		agent_jw_null(w, key);
		return;
	}
	agent_jw_int(w, key, t);
}

int agent_jw_end(agent_jw *w)
{
	fputc('\n', w->f);
	if (fflush(w->f) != 0 || ferror(w->f))
		return -1;
	return w->bad ? -1 : 0;
}
