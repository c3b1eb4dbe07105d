#!/bin/sh
# /status-json: the status document of `p11enroll status --json`
# (track_status_json, agent/track.c) stays valid JSON whatever the names,
# token serials and last errors hold: control characters, quotes,
# backslashes, invalid and valid UTF-8, C1 controls.  tests/unit/status-json
# prints the document for raw bytes given in hex; Python parses it strictly
# and compares each string with its own escaping of the raw bytes (the rule
# of agent/escape.c: printable UTF-8 kept, every other byte as \xNN), so
# the escaped text round-trips through JSON exactly.  Python judges; the
# TAP lines are tests/lib.sh's.
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
. "$top_srcdir/tests/lib.sh"
PROG="$top_builddir/tests/unit/status-json"
need_cmd python3
[ -x "$PROG" ] || bail_out "$PROG not built"
setup
HELPER="$TMP/status_json.py"
cat > "$HELPER" << 'PY'
"""The cases and the verdicts of test-status-json.sh:
  cases              the case names, one a line
  run PROG DIR       runs PROG on every case; its stdout, stderr and exit
                     status go to DIR/out, DIR/err, DIR/rc
  check DIR CHECK    exit 0 if CHECK holds for DIR's run, else 1 and why"""
import json, os, subprocess, sys


def lead_len(b):
    if b < 0x80:
        return 1
    if 0xC2 <= b <= 0xDF:
        return 2
    if 0xE0 <= b <= 0xEF:
        return 3
    if 0xF0 <= b <= 0xF4:
        return 4
    return 0


def escape(raw):
    """agent/escape.c, written again: a valid UTF-8 sequence that is no
    control character (C0, DEL, C1) stays; every other byte is \\xNN."""
    out, i = [], 0
    while i < len(raw):
        n = lead_len(raw[i])
        ch = None
        if n:
            try:
                ch = raw[i:i + n].decode("utf-8")
            except UnicodeDecodeError:
                ch = None
        if ch is not None and len(ch) == 1 and not (ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F):
            out.append(ch)
            i += n
        else:
            out.append("\\x%02X" % raw[i])
            i += 1
    return "".join(out)


# name, token serial (at most 16 bytes), last error
CASES = [
    ("quotes-backslashes",
     b'web "quoted" \\back\\slash\\', b'"\\"\\', b'said "no" \\ and \\"again\\"'),
    ("controls",
     b"tab\there", b"ab\x1b[2J\xc2\x9b\n",
     b"bell\x07 esc\x1b]0;owned\x07 cr\r lf\n forged 1\n del\x7f nul-less \x01\x1f end"),
    ("invalid-utf8",
     b"bad\xff\xfe", b"\xc0\xaf\xed\xa0\x80\xe2\x82",
     b"lone \x80 cont, overlong \xc0\xaf \xe0\x80\xaf, surrogate \xed\xa0\x80, "
     b"above \xf4\x90\x80\x80, cut \xe2\x82"),
    ("valid-utf8-and-c1",
     "caf\u00e9 \u20ac \U0001F600".encode(), "\u00e9\u00e9".encode(),
     "ok: \u00fc\u00df \u4e2d\u6587 \U0001F510; c1: ".encode() + b"\xc2\x85\xc2\x9b\xc2\x9f" +
     " \u00a0nbsp".encode()),
    ("json-lookalikes",
     b"\\u0000 \\n", b"\\x1B", b'{"last_error": "forged"}, \\u0022 \\\\x41 /*/ </script>'),
    ("empty", b"x", b"", b""),
    # every byte escaped, up to the size of the fields: the buffers grow 4-fold
    ("longest", b"\x1b" * 3000, b"\xff" * 16, b'"\\\x01\xc2\x9b' * 204 + b"\xfe" * 3),
]
FIELDS = ("name", "token_serial", "last_error")


def run(prog, d):
    argv = [prog]
    for _, name, serial, err in CASES:
        argv += [name.hex(), serial.hex(), err.hex()]
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for f, data in (("out", r.stdout), ("err", r.stderr), ("rc", b"%d" % r.returncode)):
        with open(os.path.join(d, f), "wb") as fh:
            fh.write(data)


def read(d, f):
    with open(os.path.join(d, f), "rb") as fh:
        return fh.read()


def document(raw):
    """The parsed document, or None and why."""
    try:
        # strict: no raw control character in a string
        return json.loads(raw.decode("utf-8")), ""
    except ValueError as e:  # UnicodeDecodeError too
        lines = raw.decode("utf-8", "backslashreplace").splitlines()
        return None, "\n".join([str(e)] + ["  " + line for line in lines])


def check(d, what):
    """(holds, why) for one check of the run in d."""
    raw = read(d, "out")
    if what == "exit-0":
        rc = read(d, "rc").decode()
        return rc == "0", "exit %s: %s" % (rc, read(d, "err").decode("utf-8", "replace"))
    if what == "no-terminal-controls":
        return (b"\x1b" not in raw and
                not any(raw[i] == 0xC2 and 0x80 <= raw[i + 1] <= 0x9F
                        for i in range(len(raw) - 1))), repr(raw[:200])
    if what == "utf-8":
        try:
            raw.decode("utf-8")
            return True, ""
        except UnicodeDecodeError as e:
            return False, str(e)
    doc, why = document(raw)
    got = doc.get("enrollments", []) if doc is not None else []
    if what == "parses":
        return doc is not None, why
    if what == "all-enrollments":
        return len(got) == len(CASES), "%d of %d" % (len(got), len(CASES))
    case, field = what.split("/")
    i = [c[0] for c in CASES].index(case)
    e = got[i] if i < len(got) and isinstance(got[i], dict) else {}
    if field not in FIELDS:
        raise ValueError("no field " + field)
    want = escape(CASES[i][1 + FIELDS.index(field)])
    return e.get(field) == want, "got %r, want %r" % (e.get(field), want)


if sys.argv[1] == "cases":
    print("\n".join(c[0] for c in CASES))
elif sys.argv[1] == "run":
    run(sys.argv[2], sys.argv[3])
elif sys.argv[1] == "check":
    holds, why = check(sys.argv[2], sys.argv[3])
    if not holds:
        print(why)
    sys.exit(0 if holds else 1)
else:
    sys.exit("unknown command " + sys.argv[1])
PY

# verdict NAME CHECK: one TAP line for the helper's verdict on CHECK; when
# it fails (or the helper does), the reason as diagnostics.
verdict() {
	if python3 "$HELPER" check "$TMP" "$2" > "$TMP/why" 2>&1; then
		ok "$1"
	else
		not_ok "$1"
		sed 's/^/#   /' "$TMP/why"
	fi
}

CASES=$(python3 "$HELPER" cases) || bail_out "the case list of $HELPER does not load"
# shellcheck disable=SC2086 # split on purpose: one word a case
set -- $CASES
[ $# -gt 0 ] || bail_out "no cases"
# the plan, from the fixed list of cases: 5 checks, then 3 per case
plan $((5 + 3 * $#))
# a run that fails leaves no output: every check below then fails, with why
python3 "$HELPER" run "$PROG" "$TMP" || echo "# running $PROG failed"
for c in exit-0 no-terminal-controls utf-8 parses all-enrollments; do
	verdict "/status-json/$c" "$c"
done
for case in $CASES; do
	for field in name token_serial last_error; do
		verdict "/status-json/$case/$field-round-trips" "$case/$field"
	done
done
finish
