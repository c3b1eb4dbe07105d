#!/bin/sh
# /status-json: the status document of `p11enroll status --json`
# (track_status_json, agent/track.c) stays valid JSON whatever the names,
# token serials and last errors hold: control characters, quotes,
# backslashes, invalid and valid UTF-8, C1 controls.  tests/unit/status-json
# prints the document for raw bytes given in hex; Python parses it strictly
# and compares each string with its own escaping of the raw bytes (the rule
# of agent/escape.c: printable UTF-8 kept, every other byte as \xNN), so
# the escaped text round-trips through JSON exactly.
: "${top_builddir:=.}"
PROG="$top_builddir/tests/unit/status-json"
command -v python3 > /dev/null 2>&1 || { echo "Bail out! python3 not found (tools/deps.sh)"; exit 1; }
[ -x "$PROG" ] || { echo "Bail out! $PROG not built"; exit 1; }
exec python3 - "$PROG" << 'PY'
import json, subprocess, sys

prog = sys.argv[1]
ntest = nfail = 0


def ok(cond, name, why=""):
    global ntest, nfail
    ntest += 1
    if cond:
        print("ok %d - %s" % (ntest, name))
    else:
        nfail += 1
        print("not ok %d - %s # %s" % (ntest, name, why))


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
cases = [
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
# the plan, from the fixed list of cases: 5 checks, then 3 per case
plan = 5 + 3 * len(cases)
print("1..%d" % plan)
sys.stdout.flush()
argv = [prog]
for _, name, serial, err in cases:
    argv += [name.hex(), serial.hex(), err.hex()]
run = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
ok(run.returncode == 0, "/status-json/exit-0", run.stderr.decode("utf-8", "replace"))
raw = run.stdout
ok(b"\x1b" not in raw and not any(raw[i] == 0xC2 and 0x80 <= raw[i + 1] <= 0x9F
                                   for i in range(len(raw) - 1)),
   "/status-json/no-terminal-controls", repr(raw[:200]))
try:
    text = raw.decode("utf-8")
    utf8 = True
except UnicodeDecodeError as e:
    text, utf8 = "", False
    print("# %s" % e)
ok(utf8, "/status-json/utf-8")
try:
    doc = json.loads(text)  # strict: no raw control character in a string
    parsed = True
except ValueError as e:
    doc, parsed = {}, False
    print("# %s" % e)
    for line in raw.decode("utf-8", "backslashreplace").splitlines():
        print("#   " + line)
ok(parsed, "/status-json/parses")
got = doc.get("enrollments", []) if parsed else []
ok(len(got) == len(cases), "/status-json/all-enrollments", "%d of %d" % (len(got), len(cases)))
for i, (case, name, serial, err) in enumerate(cases):
    e = got[i] if i < len(got) and isinstance(got[i], dict) else {}
    for field, value in (("name", name), ("token_serial", serial), ("last_error", err)):
        want = escape(value)
        ok(e.get(field) == want, "/status-json/%s/%s-round-trips" % (case, field),
           "got %r, want %r" % (e.get(field), want))
if ntest != plan:
    print("# planned %d checks, ran %d" % (plan, ntest))
sys.exit(1 if nfail or ntest != plan else 0)
PY
