/*
 * The one escaping of text from outside (a token's labels and serial, a
 * CA's names and texts, the configuration file) before it reaches a
 * terminal, a log, a key=value line, JSON or a hook's environment.
 *
 * A terminal acts on ESC sequences and on their 8-bit forms, the C1
 * controls U+0080..U+009F (CSI is U+009B), which in UTF-8 are the bytes
 * C2 80..C2 9F; CR and LF forge lines in a log or fields in a key=value
 * file; invalid UTF-8 breaks JSON and the terminal's decoder.  All of
 * these become \xNN, byte by byte, so that nothing is lost from the
 * message and nothing acts; valid printable UTF-8 (names in any script)
 * is kept as it is, but for the bidi overrides and isolates (U+202A..202E,
 * U+2066..2069), escaped too: they reorder what a terminal or an editor
 * shows after them ("Trojan Source"), and a label could show another name
 * than it has.
 *
 * Text for people (agent_escape_shown) depends on the terminal: a UTF-8
 * locale shows names as they are; any other (C, POSIX, a Latin-1 locale)
 * would show UTF-8 as mojibake, so there every byte above 0x7F is escaped
 * too.  Data (JSON, state files, key=value lines, token labels, hook
 * environments) is always UTF-8 and never depends on the reader's locale.
 */
#include "config.h"

#include <langinfo.h>
#include <locale.h>
#include <stdio.h>
#include <string.h>

#include "agent/agent.h"

/* Whether text for people keeps UTF-8 (agent_escape_locale()). */
static int shown_utf8;

/* Length of the valid UTF-8 sequence at p (1..4), 0 if there is none or
 * it encodes a control character (C0, DEL, C1) or a bidi override; with
 * ascii, 0 for every byte above 0x7F. */
static size_t printable_len(const unsigned char *p, int ascii)
{
	unsigned char c = p[0];

	if (c < 0x20 || c == 0x7f)
		return 0;
	if (c < 0x80)
		return 1;
	if (ascii)
		return 0;
	if (c >= 0xc2 && c <= 0xdf)
		/* C2 80..C2 9F are the C1 controls */
		return (p[1] & 0xc0) == 0x80 && !(c == 0xc2 && p[1] < 0xa0) ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		/* no overlong forms (E0 80..9F), no surrogates (ED A0..BF) */
		if ((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 || (c == 0xe0 && p[1] < 0xa0) ||
		    (c == 0xed && p[1] > 0x9f))
			return 0;
		/* U+202A..202E (E2 80 AA..AE), U+2066..2069 (E2 81 A6..A9) */
		if (c == 0xe2 && ((p[1] == 0x80 && p[2] >= 0xaa && p[2] <= 0xae) ||
				  (p[1] == 0x81 && p[2] >= 0xa6 && p[2] <= 0xa9)))
			return 0;
		return 3;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		/* no overlong forms (F0 80..8F), nothing above U+10FFFF */
		if ((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80 ||
		    (c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] > 0x8f))
			return 0;
		return 4;
	}
	return 0;
}

/* agent_escape_mode(); the bytes of s it consumed. */
static size_t escape(const char *s, char *out, size_t outlen, int utf8)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p = (const unsigned char *)(s != NULL ? s : ""), *p0 = p;
	size_t o = 0, n;

	if (outlen == 0)
		return 0;
	/* The continuation bytes checked above stop at the NUL: a sequence
	 * cut by the end of the string is invalid, never read past. */
	while (*p != '\0') {
		if ((n = printable_len(p, !utf8)) > 0) {
			if (o + n >= outlen)
				break;
			memcpy(out + o, p, n);
			o += n;
			p += n;
			continue;
		}
		if (o + 4 >= outlen)
			break;
		out[o++] = '\\';
		out[o++] = 'x';
		out[o++] = hex[*p >> 4];
		out[o++] = hex[*p & 0x0f];
		p++;
	}
	out[o] = '\0';
	return (size_t)(p - p0);
}

const char *agent_escape_mode(const char *s, char *out, size_t outlen, int utf8)
{
	(void)escape(s, out, outlen, utf8);
	return out;
}

const char *agent_escape(const char *s, char *out, size_t outlen)
{
	return agent_escape_mode(s, out, outlen, 1);
}

const char *agent_escape_bounded(const char *s, char *out, size_t outlen)
{
	const char *raw = s != NULL ? s : "";

	if (outlen < sizeof(AGENT_CUT_MARK) + 4) {
		agent_escape(raw, out, outlen);
		return out;
	}
	if (raw[escape(raw, out, outlen, 1)] == '\0')
		return out;
	/* escape() never cuts a character or an escape: the mark goes after
	 * the whole ones that leave room for it */
	(void)escape(raw, out, outlen - (sizeof(AGENT_CUT_MARK) - 1), 1);
	memcpy(out + strlen(out), AGENT_CUT_MARK, sizeof(AGENT_CUT_MARK));
	return out;
}

void agent_mark_cut(char *s, size_t size)
{
	size_t n;

	if (size < sizeof(AGENT_CUT_MARK) + 4)
		return;
	n = size - sizeof(AGENT_CUT_MARK);
	if (strlen(s) < n)
		n = strlen(s);
	/* back over continuation bytes to the start of the character that
	 * would be cut, which goes too */
	while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	memcpy(s + n, AGENT_CUT_MARK, sizeof(AGENT_CUT_MARK));
}

const char *agent_escape_shown(const char *s, char *out, size_t outlen)
{
	return agent_escape_mode(s, out, outlen, shown_utf8);
}

int agent_escape_locale(void)
{
	const char *was = setlocale(LC_CTYPE, NULL);
	char saved[64];

	/* Only the codeset is wanted: the program's own LC_CTYPE stays "C",
	 * so that no library's character handling changes with it. */
	snprintf(saved, sizeof(saved), "%s", was != NULL ? was : "C");
	shown_utf8 = setlocale(LC_CTYPE, "") != NULL && strcmp(nl_langinfo(CODESET), "UTF-8") == 0;
	setlocale(LC_CTYPE, saved);
	return shown_utf8;
}

/* For people, every field escaped: token.c's callers and the agent's status
 * (track.c, which the status tests link without the token layer). */
const char *agent_token_identity(const char *label, const char *manufacturer, const char *model,
				 const char *serial, int unique, char *out, size_t outlen)
{
	char l[4 * 33], ma[4 * 33], mo[4 * 17], se[4 * 17];

	snprintf(out, outlen, "label '%s', manufacturer '%s', model '%s', serial %s%s",
		 agent_escape(label, l, sizeof(l)), agent_escape(manufacturer, ma, sizeof(ma)),
		 agent_escape(model, mo, sizeof(mo)),
		 serial[0] != '\0' ? agent_escape(serial, se, sizeof(se)) : "(none)",
		 unique ? "" : " (not unique: identified by label, model and manufacturer)");
	return out;
}
