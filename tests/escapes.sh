#!/bin/sh
# /escapes: text from outside (a CA's names and texts, token labels) never
# reaches a terminal, a log, JSON or a hook's environment with a terminal
# escape: no ESC (0x1b), no C1 control (UTF-8 C2 80..C2 9F), no invalid
# UTF-8 in stdout, stderr, the agent's log, status (text and --json) and
# the hook environment.  The CA here has names with ESC and C1 controls
# (made with openssl), offers a template whose subjectAltName holds an
# escape, and rejects with a text full of them (--fault weird-text).
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
need_cmd python3
setup
plan 20
GUARD=
command -v timeout > /dev/null 2>&1 && GUARD="timeout -s KILL $(scaled 120)"
E=$(printf '\033')
C1=$(printf '\302\233')
TOK=escapes
make_token "$TOK" || exit 1

# clean FILE...: no ESC, no C1 control, valid UTF-8.
clean() {
	python3 - "$@" << 'PY'
import sys
bad = 0
for name in sys.argv[1:]:
    data = open(name, "rb").read()
    why = []
    if b"\x1b" in data:
        why.append("ESC")
    if any(data[i] == 0xC2 and 0x80 <= data[i + 1] <= 0x9F for i in range(len(data) - 1)):
        why.append("C1 control")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        why.append("invalid UTF-8 (%s)" % e)
    if why:
        bad = 1
        print("# %s: %s" % (name, ", ".join(why)))
        for line in data.decode("utf-8", "backslashreplace").splitlines():
            print("#   " + line)
sys.exit(bad)
PY
}

# A root and an issuing CA whose names carry ESC sequences and a C1 CSI.
mkdir "$TMP/ca"
cat > "$TMP/ext.cnf" << 'EOC'
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOC
"$OPENSSL_BIN" req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -utf8 \
	-subj "/CN=Root ${E}]0;owned${E}\\ ${E}[2J ${C1}31m/O=Evil" -days 30 \
	-keyout "$TMP/ca/root.key" -out "$TMP/ca/root.pem" > "$TMP/openssl.log" 2>&1 &&
"$OPENSSL_BIN" req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -utf8 \
	-subj "/CN=Issuing ${E}[31mred${E}[0m ${C1}2J/O=Evil" \
	-keyout "$TMP/ca/ca.key" -out "$TMP/ca.csr" >> "$TMP/openssl.log" 2>&1 &&
"$OPENSSL_BIN" x509 -req -in "$TMP/ca.csr" -CA "$TMP/ca/root.pem" -CAkey "$TMP/ca/root.key" \
	-CAcreateserial -days 30 -extfile "$TMP/ext.cnf" -extensions ca \
	-out "$TMP/ca/ca.pem" >> "$TMP/openssl.log" 2>&1 ||
	{ sed 's/^/# /' "$TMP/openssl.log"; exit 1; }
start_ca --template "subject=/CN=from template;san=DNS:x${E}[2J${C1}1m.example" || exit 1
write_conf "$TOK"

p11e -v enroll test
check "/escapes/enroll/exit-0" expect_rc 0
check "/escapes/enroll/clean" clean "$TMP/out" "$TMP/err"

p11e -v genm test --ca-certs "$TMP/cacerts.pem" --store
check "/escapes/genm-ca-certs/exit-0" expect_rc 0
check "/escapes/genm-ca-certs/clean" clean "$TMP/out" "$TMP/err"

p11e -v list test
check "/escapes/list/exit-0" expect_rc 0
check "/escapes/list/clean" clean "$TMP/out" "$TMP/err"
check "/escapes/list/label-shown" grep -q 'Issuing .*red' "$TMP/out"

p11e -v genm test --template
check "/escapes/genm-template/exit-0" expect_rc 0
check "/escapes/genm-template/clean" clean "$TMP/out" "$TMP/err"
check "/escapes/genm-template/san-shown" grep -q 'DNS:x.*example' "$TMP/out"

# The agent: an enrollment the CA rejects with a hostile text.
start_ca --fault weird-text || exit 1
make_token esc-agent || exit 1
cat > "$TMP/hook.sh" << EOC
#!/bin/sh
env | grep '^P11ENROLL_' > "$TMP/hook.env"
EOC
chmod 700 "$TMP/hook.sh"
write_conf esc-agent "hook_failure = $TMP/hook.sh
retry_min = 1h
bootstrap = yes"
sed -i "s|^state_dir = .*|state_dir = $TMP/state-agent|" "$TMP/p11enroll.conf"
env "$P11ENROLL" -c "$TMP/p11enroll.conf" -v agent > "$TMP/agent.log" 2>&1 &
APID=$!
trap 'kill -TERM $APID 2> /dev/null; cleanup' EXIT
i=0
while [ $i -lt $((150 * P11E_SCALE)) ] && ! [ -s "$TMP/hook.env" ]; do sleep 0.2; i=$((i + 1)); done
check "/escapes/agent/hook-ran" test -s "$TMP/hook.env"
check "/escapes/agent/hook-env-clean" clean "$TMP/hook.env"
check "/escapes/agent/hook-error-shown" grep -q '^P11ENROLL_ERROR=.*weird-text' "$TMP/hook.env"
$GUARD "$P11ENROLL" -c "$TMP/p11enroll.conf" status > "$TMP/out" 2> "$TMP/err"; RC=$?
check "/escapes/status/exit-0" expect_rc 0
check "/escapes/status/clean" clean "$TMP/out" "$TMP/err"
check "/escapes/status/error-shown" grep -q 'last error ([0-9: -]* UTC): .*weird-text' "$TMP/out"
$GUARD "$P11ENROLL" -c "$TMP/p11enroll.conf" status --json > "$TMP/out" 2> "$TMP/err"; RC=$?
check "/escapes/status-json/exit-0" expect_rc 0
check "/escapes/status-json/clean" clean "$TMP/out" "$TMP/err"
check "/escapes/status-json/parses" python3 -c '
import json, sys
d = json.load(open(sys.argv[1], encoding="utf-8"))
e = d["enrollments"][0]["last_error"]
sys.exit(0 if "weird-text" in e and "\x1b" not in e and
         not any(0x80 <= ord(c) <= 0x9f for c in e) else 1)' "$TMP/out"
kill -TERM $APID 2> /dev/null
wait $APID 2> /dev/null
check "/escapes/agent/log-clean" clean "$TMP/agent.log"
finish
