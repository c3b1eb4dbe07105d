#!/bin/sh
# /agent: `p11enroll agent` tracks the enrollments of a configuration and
# renews each certificate inside its window, unattended: renewals of short
# lived certificates, status (table and JSON), renew through the agent,
# hooks, the retry budget of a CA outage on a fast test clock, a CA that
# answers "waiting", a token removed and inserted again, the PIN latch
# across restarts, an expired certificate with and without bootstrap, a
# refused kur, a token that answers with errors, jitter over 30
# enrollments, reload and the metrics file.  Only what needs real
# processes: each transition alone is a test of agent/fsm.c
# (tests/unit/test-fsm.c), each time computation one of agent/sched.c.
# Waits are polling loops with generous upper bounds (hang guards only).
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
. "$top_srcdir/tests/agent-lib.sh"
need_tools
need_cmd python3
use_p11wrap
setup
plan 220
trap 'kill_agents; cleanup' EXIT
trap 'exit 1' HUP PIPE

# mkconf FILE STATE_DIR TOKEN [EXTRA]: write_conf's configuration in FILE,
# with its own state directory (and so its own control socket).
mkconf() {
	write_conf "$3" "${4:-}"
	sed "s|^state_dir = .*|state_dir = $2|" "$TMP/p11enroll.conf" > "$1"
}

# status_json CONF FILE: the agent's status document in FILE.
status_json() {
	"$P11ENROLL" -c "$1" status --json > "$2" 2> /dev/null
}

# at_least CONF NAME FIELD N
at_least() {
	_al=$(jget "$1" "$2" "$3") && [ -n "$_al" ] && [ "$_al" -ge "$4" ]
}

# show FILE: as TAP comments.
show() {
	sed 's/^/#   /' "$1"
}

# settled CONF: one status round trip.  The agent decides at the start of
# each round of its loop, and answers a client in a round after the one
# that accepted it: once this returns, the agent has made its decisions
# after everything the test did before (a step it launched shows as a
# state other than the one it had).  Instead of a sleep, which proves
# nothing on a machine too busy to let the agent run meanwhile.
settled() {
	"$P11ENROLL" -c "$1" status > /dev/null 2>&1 && "$P11ENROLL" -c "$1" status > /dev/null 2>&1
}

# ms_now: a monotonic-enough clock in milliseconds, for lower bounds only.
ms_now() {
	echo $(($(date +%s%N) / 1000000))
}

# cert_of TOKEN LABEL FILE: the certificate with that label on the token, as PEM.
cert_of() {
	"$PKCS11_TOOL" --module "$SOFTHSM2_MODULE" --token-label "$1" --read-object --type cert \
		--label "$2" -o "$3.der" > /dev/null 2>&1 &&
		"$OPENSSL_BIN" x509 -inform DER -in "$3.der" -out "$3"
}

# serial_of PEM: the serial number in upper case hex without leading zeros.
serial_of() {
	"$OPENSSL_BIN" x509 -in "$1" -noout -serial | sed 's/^serial=//; s/^0*//' | tr a-f A-F
}

# time_of PEM startdate|enddate: as seconds since the epoch.
time_of() {
	date -u -d "$("$OPENSSL_BIN" x509 -in "$1" -noout "-$2" | sed 's/^[^=]*=//')" +%s
}

# id_of TOKEN TYPE LABEL: CKA_ID of the object of that type with exactly that label.
id_of() {
	label_id "$@"
}

# count_label TOKEN LABEL: objects carrying exactly that label.
count_label() {
	label_count "$@"
}

# one_pair TOKEN LABEL: exactly one key pair and one certificate carry that
# label, with one CKA_ID, and there is no other key on the token.
one_pair() {
	_op_id=$(id_of "$1" privkey "$2")
	[ "$(count_label "$1" "$2")" -eq 3 ] && [ -n "$_op_id" ] &&
		[ "$(id_of "$1" pubkey "$2")" = "$_op_id" ] && [ "$(id_of "$1" cert "$2")" = "$_op_id" ] &&
		[ "$(objects "$1" privkey | grep -c '^Private Key Object')" -eq 1 ] &&
		[ "$(objects "$1" pubkey | grep -c '^Public Key Object')" -eq 1 ] ||
		{ echo "# token $1:"; objects "$1" | grep -E 'Object|label|ID:' | sed 's/^/#   /'; return 1; }
}

# issued_serials: the serials the CA issued, in order (from its log).
issued_serials() {
	sed -n 's/.*issued serial \([0-9A-F]*\) .*/\1/p' "$TMP/ca.log"
}

# ---------------------------------------------------------------------------
# 5 (started first, runs in the background during case 1): a CA outage seen
# through a test clock 2880 times faster, so one simulated day passes in 30 s.
# The certificate is valid for 200000 s and renew_at = 3d is due at once.
# ---------------------------------------------------------------------------
make_token ag-budget || exit 1
start_ca --validity-seconds 200000 || exit 1
cat > "$TMP/hook.sh" << EOF
#!/bin/sh
# dumps the hook's environment, one block per run
{ echo "--- run"; env | grep '^P11ENROLL_' | sort; } >> "$TMP/hook-\$P11ENROLL_NAME-\$P11ENROLL_EVENT.env"
EOF
chmod 700 "$TMP/hook.sh"
C5="$TMP/budget.conf"
mkconf "$C5" "$TMP/state-budget" ag-budget "hook_failure = $TMP/hook.sh"
pe "$C5" enroll test
check "/agent/budget/setup-enrolled" expect_rc 0
# nothing listens on port 1: every attempt fails at once
sed -i "s|^server = .*|server = http://127.0.0.1:1/.well-known/cmp|
\$a renew_at = 3d" "$C5"
sed -i "1i metrics_file = $TMP/budget.prom" "$C5"
agent_start "$C5" "$TMP/agent-budget.log" P11ENROLL_TEST_CLOCK_RATE=2880 || exit 1
A5=$APID
# agent_now CONF: the agent's own clock (the test clock), from its status.
agent_now() {
	"$P11ENROLL" -c "$1" status --json 2> /dev/null |
		python3 -c 'import json, sys; print(json.load(sys.stdin)["agent"]["now"])'
}
# day_over CONF T0: the agent's clock is a simulated day past T0.
day_over() {
	_do=$(agent_now "$1") && [ -n "$_do" ] && [ -n "$2" ] && [ "$_do" -ge $(($2 + 86400)) ]
}
T5=$(agent_now "$C5")
# once the agent's clock shows a simulated day (some 30 s of real time on
# an idle machine, longer on a busy one): the status, and the agent stops
(
	wait_for 300 day_over "$C5" "$T5"
	status_json "$C5" "$TMP/budget.json"
	kill -TERM "$A5"
) > /dev/null 2>&1 &
HELPERS="$HELPERS $!"
W5=$!

# ---------------------------------------------------------------------------
# 1: two renewals of a 16 s certificate, on its own, each inside the window
# [notBefore + 66%, notBefore + 71%] of the old certificate's lifetime.  With
# a success hook (4) and a metrics file (13); renew through the agent (3).
# ---------------------------------------------------------------------------
# Under a checker (P11E_SCALE > 1) every p11enroll call takes
# seconds: the certificate lives long enough for the status checks between
# two renewals (106 s under make memcheck).
LIFE=$((16 + 10 * (P11E_SCALE - 1)))
make_token ag-renew || exit 1
: > "$TMP/ca.log"
start_ca --validity-seconds $LIFE || exit 1
C1="$TMP/renew.conf"
mkconf "$C1" "$TMP/state-renew" ag-renew "cert_out = $TMP/renew-cert.pem
hook_success = $TMP/hook.sh"
# the agent's own file: before the first section
sed -i "1i metrics_file = $TMP/metrics.prom" "$C1"
pe "$C1" enroll test
check "/agent/renew/setup-enrolled" expect_rc 0
agent_start "$C1" "$TMP/agent-renew.log" || exit 1
A1=$APID
check "/agent/renew/socket" test -S "$TMP/state-renew/control"
check "/agent/renew/socket-mode-0660" test "$(stat -c %a "$TMP/state-renew/control")" = 660
check "/agent/renew/starts-valid" wait_for 20 is "$C1" test state valid
# hang guard: two renewals take some 70 s
check "/agent/renew/renewed-twice" wait_for 150 at_least "$C1" test renewals 2
"$P11ENROLL" -c "$C1" status > "$TMP/status-renew.txt" 2>&1
echo "# p11enroll status after two renewals:"
show "$TMP/status-renew.txt"
check "/agent/renew/status-table" grep -q -E '^test +valid .* 0 +2$' "$TMP/status-renew.txt"
cp "$TMP/ca.log" "$TMP/ca-renew.log"
check "/agent/renew/kur-twice" test "$(in_log "$TMP/ca-renew.log" 'kur -> kup accepted')" -ge 2
check "/agent/renew/kur-signed-with-old-cert" \
	test "$(in_log "$TMP/ca-renew.log" 'kur: oldCertID matches')" -ge 2

# in_window OLD_PEM NEW_PEM: the agent decided to renew OLD inside its
# renewal window, 66% to 71% of OLD's lifetime after its notBefore (its log
# line for OLD: one per certificate), and NEW was issued (its notBefore) not
# before that window opened; 1 s slack, for certificate times are whole
# seconds (66% of a 70 s life is 46.2 s, which a notBefore can only show as
# 46).  How late in the window NEW came depends on how busy the machine is,
# not on the agent: it is not checked (the hang guard above bounds it).
in_window() {
	_nb=$(time_of "$1" startdate) _na=$(time_of "$1" enddate) _at=$(time_of "$2" startdate)
	_life=$((_na - _nb)) _d=$((_at - _nb))
	_due=$(sed -n "s/.*(notBefore $_nb, notAfter $_na) is not due for renewal before \([0-9]*\)\$/\1/p" \
		"$TMP/agent-renew.log" | tail -n 1)
	[ -n "$_due" ] || { echo "# no renewal decision for $(serial_of "$1") in the agent's log"; return 1; }
	_dd=$((_due - _nb))
	echo "# $(serial_of "$1") of $_life s: renewal decided for notBefore + $_dd s," \
		"issued at + $_d s"
	[ $((100 * (_dd + 1))) -gt $((66 * _life)) ] && [ $((100 * _dd)) -le $((71 * _life + 100)) ] &&
		[ $((100 * (_d + 1))) -gt $((66 * _life)) ]
}
set -- $(issued_serials)
check "/agent/renew/three-certificates" test $# -ge 3
prev=
n=0
for s in "$@"; do
	if [ -n "$prev" ]; then
		n=$((n + 1))
		check "/agent/renew/window-$n" in_window "$TMP/ca/issued/$prev.pem" "$TMP/ca/issued/$s.pem"
	fi
	prev=$s
done
LAST_SERIAL=$prev
# The agent goes on renewing its 16 s certificate (some every 11 s): a
# look at the token that falls into a renewal sees its temporary pair, and
# the CA may have issued a newer certificate than the token holds yet.
# Each try compares with the newest at that moment, until the token is
# between two renewals (three checks failed at load 8 without this).
one_pair_quiet() {
	one_pair "$@" > /dev/null
}
newest() {
	issued_serials | tail -n 1
}
token_has_newest() {
	cert_of ag-renew enrolled-key "$TMP/tok-renew.pem" &&
		test "$(serial_of "$TMP/tok-renew.pem")" = "$(newest)"
}
cert_out_has_newest() {
	test "$(serial_of "$TMP/renew-cert.pem")" = "$(newest)"
}
check "/agent/renew/one-pair" wait_for 30 one_pair_quiet ag-renew enrolled-key
check "/agent/renew/token-has-newest" wait_for 30 token_has_newest
check "/agent/renew/cert-out-newest" wait_for 30 cert_out_has_newest
check "/agent/renew/no-failures" is "$C1" test consecutive_failures 0
# the certificate fields come from the look at the token that follows each
# renewal (a step of its own: on a busy machine it may still run here)
# caught_up: the status shows the newest certificate the CA has issued.  The
# agent goes on renewing the 16 s certificate meanwhile, so each try
# compares with the newest at that moment, not with LAST_SERIAL: on a busy
# machine the look after the last renewal may come after the next one.
caught_up() {
	is "$C1" test certificate_serial "$(issued_serials | tail -n 1)"
}
check "/agent/renew/status-caught-up" wait_for 30 caught_up
# what the last look found is kept for status across a restart
# (both read again until they agree: a renewal may end between the two reads)
state_has_not_after() {
	grep -q -x "not_after $(jget "$C1" test not_after)" "$TMP/state-renew/test.agent"
}
check "/agent/renew/state-keeps-not-after" wait_for 30 state_has_not_after
check "/agent/renew/no-secret" no_secret_in "$TMP/agent-renew.log" "$TMP/status-renew.txt"

# --- 2: status --json: valid JSON, the documented fields and types ------------
status_json "$C1" "$TMP/status-renew.json"
# json_ok FILE AGENT_PID [N]: the document, its fields and their types; N enrollments.
json_ok() {
	python3 - "$@" << 'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
pid, want_n = int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else None
INT, STR, NUL = (int,), (str,), (type(None),)
def isint(v):
    return isinstance(v, int) and not isinstance(v, bool)
bad = []
a = doc["agent"]
if set(a) != {"pid", "now", "clock_rate"}: bad.append("agent keys %s" % sorted(a))
if a.get("pid") != pid: bad.append("pid %r, expected %d" % (a.get("pid"), pid))
if not isint(a.get("now")) or not isint(a.get("clock_rate")): bad.append("agent types")
types = {"name": "str", "state": "str", "operation": "str?", "token_serial": "str",
         "token_label": "str", "token_manufacturer": "str", "token_model": "str",
         "token_serial_unique": "bool?",
         "certificate_serial": "str", "not_before": "int?", "not_after": "int?",
         "next_attempt": "int?", "last_success": "int?", "last_attempt": "int?",
         "consecutive_failures": "int", "renewals": "int", "pending": "bool",
         "last_error": "str", "last_error_time": "int?", "ca_status": "str?",
         "ca_fail_info": "list"}
states = {"starting", "valid", "working", "waiting-ca", "backoff", "waiting-token",
          "pin-rejected", "pin-locked", "stopped"}
es = doc["enrollments"]
if want_n is not None and len(es) != want_n: bad.append("%d enrollments" % len(es))
for e in es:
    if set(e) != set(types): bad.append("keys %s" % sorted(set(e) ^ set(types)))
    for k, t in types.items():
        v = e.get(k)
        ok = (v is None and t.endswith("?")) or \
             (t.startswith("int") and isint(v)) or \
             (t.startswith("str") and isinstance(v, str)) or \
             (t.startswith("bool") and isinstance(v, bool)) or \
             (t == "list" and isinstance(v, list))
        if not ok: bad.append("%s.%s = %r" % (e.get("name"), k, v))
    if e.get("state") not in states: bad.append("state %r" % e.get("state"))
for b in bad[:10]: print("# " + b)
sys.exit(1 if bad else 0)
EOF
}
# valid_json FILE
valid_json() {
	python3 -m json.tool "$1" > /dev/null
}
check "/agent/json/valid" valid_json "$TMP/status-renew.json"
check "/agent/json/fields-and-types" json_ok "$TMP/status-renew.json" "$A1" 1
check "/agent/json/token-serial" is "$C1" test token_serial "$(token_serial ag-renew)"
check "/agent/json/token-label" is "$C1" test token_label ag-renew
check "/agent/json/token-serial-unique" is "$C1" test token_serial_unique true
# The certificate fields of that one snapshot against the certificate it
# names: the agent goes on renewing its 16 s certificates, so the live
# status may name a newer one by now (it did, beside a CPU hog).
fget() {
	python3 -c '
import json, sys
for e in json.load(open(sys.argv[1]))["enrollments"]:
    if e["name"] == sys.argv[2]:
        print(e[sys.argv[3]])' "$@"
}
SNAP=$(fget "$TMP/status-renew.json" test certificate_serial)
# issued (by the CA's log) no earlier than the newest before the snapshot
newer_or_same() {
	issued_serials | sed -n "/^$LAST_SERIAL\$/,\$p" | grep -q -x "$SNAP"
}
check "/agent/json/certificate-serial" newer_or_same
check "/agent/json/not-after" test "$(fget "$TMP/status-renew.json" test not_after)" = \
	"$(time_of "$TMP/ca/issued/$SNAP.pem" enddate)"
check "/agent/json/not-before" test "$(fget "$TMP/status-renew.json" test not_before)" = \
	"$(time_of "$TMP/ca/issued/$SNAP.pem" startdate)"
check "/agent/json/clock-rate-1" grep -q '"clock_rate": 1[,}]' "$TMP/status-renew.json"

# --- 3: renew through the running agent ---------------------------------------
before=$(jget "$C1" test renewals)
started=$(in_log "$TMP/agent-renew.log" 'test: renew started')
pe "$C1" renew test
check "/agent/renew-cmd/exit-0" expect_rc 0
check "/agent/renew-cmd/summary" grep -q '^renewed test' "$TMP/out"
# at least one more: the agent's own schedule (16 s certificates) may renew
# once more meanwhile on a busy machine, so "exactly one" is not the agent's
# to keep (it failed beside a CPU hog)
check "/agent/renew-cmd/count+1" at_least "$C1" test renewals $((before + 1))
check "/agent/renew-cmd/by-the-agent" \
	test "$(in_log "$TMP/agent-renew.log" 'test: renew started')" -ge $((started + 1))
check "/agent/renew-cmd/agent-still-runs" kill -0 "$A1"
check "/agent/renew-cmd/one-pair" wait_for 30 one_pair_quiet ag-renew enrolled-key

# --- 4: the success hook: the documented variables, right values ---------------
HOOK="$TMP/hook-test-renewed.env"
# the hook runs once the agent has looked at the new certificate
check "/agent/hook/ran-per-renewal" wait_for 20 sh -c \
	"[ \$(grep -c '^--- run' '$HOOK') -ge \$((before + 1)) ]"
# the last hook run and the token's certificate, taken together between
# two renewals: the hook ran for the newest certificate, which the token holds
hook_is_newest() {
	sed -n '/^--- run/h; /^--- run/!H; ${x; p}' "$HOOK" > "$TMP/hook-last.env" &&
		token_has_newest &&
		grep -q -x -F "P11ENROLL_CERT_SERIAL=$(serial_of "$TMP/tok-renew.pem")" \
			"$TMP/hook-last.env"
}
check "/agent/hook/cert-serial-newest" wait_for 30 hook_is_newest
echo "# the last success hook's environment:"
show "$TMP/hook-last.env"
# var NAME VALUE: the last hook run had exactly that value
var() {
	grep -q -x -F "P11ENROLL_$1=$2" "$TMP/hook-last.env" ||
		{ echo "# P11ENROLL_$1 is not '$2'"; return 1; }
}
check "/agent/hook/event" var EVENT renewed
check "/agent/hook/name" var NAME test
check "/agent/hook/token-uri" var TOKEN_URI pkcs11:token=ag-renew
check "/agent/hook/token-serial" var TOKEN_SERIAL "$(token_serial ag-renew)"
check "/agent/hook/token-label" var TOKEN_LABEL ag-renew
check "/agent/hook/cert-serial" var CERT_SERIAL "$(serial_of "$TMP/tok-renew.pem")"
check "/agent/hook/not-after" var NOT_AFTER "$(time_of "$TMP/tok-renew.pem" enddate)"
check "/agent/hook/cert-file" var CERT_FILE "$TMP/renew-cert.pem"
check "/agent/hook/chain-file-empty" var CHAIN_FILE ""
check "/agent/hook/exit" var EXIT 0
check "/agent/hook/error-empty" var ERROR ""
check "/agent/hook/failures" var FAILURES 0
check "/agent/hook/nothing-else" test "$(grep -c '^P11ENROLL_' "$TMP/hook-last.env")" -eq 12
check "/agent/hook/no-secret" no_secret_in "$HOOK"

# --- 13: the metrics file after the renewals -----------------------------------
M="$TMP/metrics.prom"
check "/agent/metrics/exists" test -f "$M"
# the agent goes on renewing: status and the file are compared between two
# renewals (a renewal moves not_after, and the file follows it on its next
# write), until they agree
metrics_not_after() {
	grep -q -x -F "p11enroll_certificate_not_after_seconds{enrollment=\"test\"} \
$(jget "$C1" test not_after)" "$M"
}
check "/agent/metrics/not-after" wait_for 30 metrics_not_after
check "/agent/metrics/state" wait_for 30 \
	grep -q -x -F 'p11enroll_state{enrollment="test",state="valid"} 1' "$M"
check "/agent/metrics/eof" test "$(tail -n 1 "$M")" = "# EOF"
# the monitoring rules' inputs (contrib/prometheus): the CA, its last
# answer (the renewal's, the same agent second as the success), the
# renewals and the renew steps' durations
mval() { sed -n "s/^$1{enrollment=\"test\"$2} \([0-9.]*\)$/\1/p" "$M"; }
# sval FAMILY STEP [FILE]: a sample of the agent's steps (no enrollment label)
sval() { sed -n "s/^$1{step=\"$2\"} \([0-9.]*\)$/\1/p" "${3:-$M}"; }
check "/agent/metrics/ca-info" grep -q -x -F \
	"p11enroll_ca_info{enrollment=\"test\",ca=\"$CA_URL\"} 1" "$M"
metrics_contact() {
	local c s
	c=$(mval p11enroll_ca_last_contact_seconds) s=$(mval p11enroll_last_success_seconds)
	[ -n "$c" ] && [ "$c" = "$s" ]
}
check "/agent/metrics/ca-contact" wait_for 30 metrics_contact
metrics_steps() {
	local n sum
	n=$(sval p11enroll_step_duration_seconds_count renew)
	sum=$(sval p11enroll_step_duration_seconds_sum renew)
	[ "${n:-0}" -ge 1 ] && [ "$(mval p11enroll_renewals_total)" -ge 1 ] &&
		awk -v s="$sum" 'BEGIN { exit !(s > 0) }'
}
check "/agent/metrics/step-duration" wait_for 30 metrics_steps
check "/agent/metrics/step-failures" grep -q -x -F \
	'p11enroll_step_failures_total{step="renew"} 0' "$M"
# every kind once, also those that never ran, and none per enrollment
check "/agent/metrics/step-kinds" test "$(grep -c '^p11enroll_step_failures_total{step="[a-z]*"} [0-9]*$' "$M")" -eq 5
check "/agent/metrics/steps-not-per-enrollment" sh -c "! grep -q '^p11enroll_step_[a-z_]*{enrollment=' '$M'"
check "/agent/metrics/readable" test "$(stat -c %a "$M")" = 644

# --- 12 (part): SIGTERM: exit 0, socket removed -------------------------------
agent_stop "$A1"
check "/agent/sigterm/exit-0" test "$ARC" = 0
check "/agent/sigterm/socket-removed" test ! -e "$TMP/state-renew/control"
pe "$C1" status
check "/agent/sigterm/status-says-no-agent" grep_err 'no agent answers'

# --- 5 (end): the attempts of one simulated day of outage -----------------------
check "/agent/budget/agent-stopped" wait_for 300 gone "$A5"
wait "$A5"
ARC=$?
AGENTS=$(echo "$AGENTS" | tr ' ' '\n' | grep -v -x "$A5" | tr '\n' ' ')
wait "$W5" 2> /dev/null
check "/agent/budget/exit-0" test "$ARC" = 0
attempts=$(in_log "$TMP/agent-budget.log" 'test: renew started')
echo "# $attempts attempts in one simulated day of CA outage"
check "/agent/budget/at-most-30" test "$attempts" -le 30
check "/agent/budget/at-least-5" test "$attempts" -ge 5
failures=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["enrollments"][0]["consecutive_failures"])' "$TMP/budget.json")
check "/agent/budget/failures-counted" test "$failures" -ge 5 -a "$failures" -le "$attempts"
# between two attempts, or in one (the snapshot may fall on a running
# attempt on a busy machine): never valid, stopped or waiting for the token
check "/agent/budget/state-backoff" grep -q -E '"state": "(backoff|working)"' "$TMP/budget.json"
check "/agent/budget/clock-rate" grep -q '"clock_rate": 2880' "$TMP/budget.json"
check "/agent/budget/token-untouched" one_pair ag-budget enrolled-key
# the metrics: a transport failure is no answer from the CA, and every
# renew step counted as failed
check "/agent/budget/metrics-no-ca-contact" \
	sh -c "grep -q '^p11enroll_ca_info{enrollment=\"test\"' '$TMP/budget.prom' &&
		! grep -q '^p11enroll_ca_last_contact_seconds{' '$TMP/budget.prom'"
bsteps() {
	sed -n "s/^p11enroll_step_$1{step=\"renew\"} \([0-9]*\)$/\1/p" "$TMP/budget.prom"
}
check "/agent/budget/metrics-step-failures" test "$(bsteps failures_total)" -ge 5 -a \
	"$(bsteps failures_total)" = "$(bsteps duration_seconds_count)"
# --- 4 (failure hook): ran on the failed attempts -----------------------------
FHOOK="$TMP/hook-test-failed.env"
check "/agent/hook-failure/ran" test "$(grep -c '^--- run' "$FHOOK")" -ge 5
sed -n '/^--- run/h; /^--- run/!H; ${x; p}' "$FHOOK" > "$TMP/hook-last.env"
check "/agent/hook-failure/event" var EVENT failed
check "/agent/hook-failure/name" var NAME test
check "/agent/hook-failure/exit-5" var EXIT 5
check "/agent/hook-failure/error" grep -q -E '^P11ENROLL_ERROR=.+' "$TMP/hook-last.env"
check "/agent/hook-failure/failures" grep -q -E '^P11ENROLL_FAILURES=[1-9][0-9]*$' "$TMP/hook-last.env"
check "/agent/hook-failure/token-serial" var TOKEN_SERIAL "$(token_serial ag-budget)"


# ---------------------------------------------------------------------------
# 6: the CA answers "waiting": the agent shows waiting-ca, resumes at the
# CA's checkAfter and completes the renewal; one key pair is left.
# ---------------------------------------------------------------------------
make_token ag-poll || exit 1
# A step of the agent gives up after STEP seconds: following the CA's
# "waiting" is the agent's job.  The CA's delay (3 steps) outlasts that
# and the status checks that follow the renew command; the step is long
# enough for the resume's pollReq, certConf and storing on a busy machine
# (with 1 s, a resume under load ran out in its certConf and left the new
# pair for a later recovery).
STEP=$((3 * P11E_SCALE))
start_ca || exit 1
C6="$TMP/poll.conf"
mkconf "$C6" "$TMP/state-poll" ag-poll
pe "$C6" enroll test
check "/agent/poll/setup-enrolled" expect_rc 0
# the same CA, from now on answering "waiting" first
: > "$TMP/ca.log"
start_ca --poll $((3 * STEP)) || exit 1
sed -i "s|^server = .*|server = $CA_URL|" "$C6"
echo "total_timeout = $STEP" >> "$C6"
agent_start "$C6" "$TMP/agent-poll.log" || exit 1
A6=$APID
check "/agent/poll/starts-valid" wait_for 20 is "$C6" test state valid
old=$(id_of ag-poll privkey enrolled-key)
pe "$C6" renew test
check "/agent/poll/renew-exit-9" expect_rc 9
check "/agent/poll/state-waiting-ca" is "$C6" test state waiting-ca
check "/agent/poll/pending" is "$C6" test pending true
check "/agent/poll/new-key-pending" \
	test "$(objects ag-poll privkey | grep -c -x -E '[[:space:]]*label:[[:space:]]*enrolled-key \(new\)')" -eq 1
check "/agent/poll/resumed" wait_for 40 is "$C6" test renewals 1
check "/agent/poll/resume-started" grep -q 'test: resume started' "$TMP/agent-poll.log"
check "/agent/poll/not-pending" wait_for 10 is "$C6" test pending false
check "/agent/poll/valid-again" wait_for 10 is "$C6" test state valid
check "/agent/poll/kup-by-poll" grep -q 'pollReq -> kup accepted' "$TMP/ca.log"
check "/agent/poll/one-pair" one_pair ag-poll enrolled-key
new=$(id_of ag-poll privkey enrolled-key)
check "/agent/poll/new-key" test -n "$new" -a "$new" != "$old"
check "/agent/poll/no-pending-file" test "$(pending_count "$TMP/state-poll")" -eq 0
check "/agent/poll/one-kur" test "$(in_log "$TMP/ca.log" 'kur: issued serial')" -eq 1
agent_stop "$A6"
check "/agent/poll/sigterm-exit-0" test "$ARC" = 0

# ---------------------------------------------------------------------------
# 7: the token goes away and comes back (SoftHSM2 keeps a token in a
# directory of its own): waiting-token, no login meanwhile, then valid and a
# renewal works.  Module calls are counted through p11wrap.
# ---------------------------------------------------------------------------
# token_dir LABEL: the SoftHSM2 directory holding that token
token_dir() {
	for _td in "$TMP"/tokens/*/; do
		grep -q -a -F "$1" "$_td/token.object" 2> /dev/null && { echo "${_td%/}"; return 0; }
	done
	return 1
}
make_token ag-token || exit 1
start_ca || exit 1
C7="$TMP/token.conf"
mkconf "$C7" "$TMP/state-token" ag-token "token_poll = 1"
sed -i "s|^module = .*|module = $P11WRAP|" "$C7"
pe "$C7" enroll test
check "/agent/token/setup-enrolled" expect_rc 0
W7="$TMP/wrap-token.log"
agent_start "$C7" "$TMP/agent-token.log" P11WRAP_LOG="$W7" || exit 1
A7=$APID
check "/agent/token/starts-valid" wait_for 20 is "$C7" test state valid
TD=$(token_dir ag-token)
check "/agent/token/found-dir" test -n "$TD" -a -d "$TD"
mv "$TD" "$TMP/token-away"
pe "$C7" renew test
check "/agent/token/renew-exit-10" expect_rc 10
check "/agent/token/waiting-token" wait_for 10 is "$C7" test state waiting-token
l0=$(logins "$W7")
i0=$(in_log "$W7" '^C_Initialize ')
t0=$(ms_now)
# six more C_Initialize calls, three looks or more at the token (token_poll
# = 1): events, not a sleep.  The agent's clock has whole seconds, so three
# looks fall in three different seconds: more than 1 s apart (a lower
# bound that a busy machine only makes longer).
looked() {
	[ "$(in_log "$W7" '^C_Initialize ')" -ge $((i0 + 6)) ]
}
wait_for 30 looked
t1=$(ms_now)
l1=$(logins "$W7")
i1=$(in_log "$W7" '^C_Initialize ')
echo "# while absent for $((t1 - t0)) ms: $((i1 - i0)) looks at the token, $((l1 - l0)) logins"
check "/agent/token/no-login-while-absent" test "$l1" -eq "$l0"
check "/agent/token/polls" test "$i1" -ge $((i0 + 6))
# a busy loop makes its looks at once
check "/agent/token/no-busy-loop" test $((t1 - t0)) -ge 1000
check "/agent/token/still-waiting" is "$C7" test state waiting-token
# a renewal asked for meanwhile is answered, not left waiting for the token
pe "$C7" renew test
check "/agent/token/renew-while-absent-exit-10" expect_rc 10
check "/agent/token/renew-while-absent-says" grep_err 'not present'
check "/agent/token/renew-while-absent-no-login" test "$(logins "$W7")" -eq "$l0"
before=$(jget "$C7" test renewals)
mv "$TMP/token-away" "$TD"
check "/agent/token/back-valid" wait_for 20 is "$C7" test state valid
check "/agent/token/says-back" grep -q 'test: token .* is back' "$TMP/agent-token.log"
pe "$C7" renew test
check "/agent/token/renew-after-exit-0" expect_rc 0
check "/agent/token/renewed" is "$C7" test renewals $((before + 1))
check "/agent/token/one-pair" one_pair ag-token enrolled-key
agent_stop "$A7"
check "/agent/token/sigterm-exit-0" test "$ARC" = 0

# a token never seen since the start: the log names the configuration's URI
C7N="$TMP/token-never.conf"
mkconf "$C7N" "$TMP/state-token-never" never-inserted "token_poll = 1"
agent_start "$C7N" "$TMP/agent-never.log" || exit 1
A7N=$APID
check "/agent/token/never-seen-waiting" wait_for 20 is "$C7N" test state waiting-token
check "/agent/token/never-seen-names-uri" grep -q \
	'test: the token pkcs11:token=never-inserted is not present: waiting for it' \
	"$TMP/agent-never.log"
agent_stop "$A7N"

# ---------------------------------------------------------------------------
# 8: a wrong PIN is tried once; the latch survives a restart; a changed PIN
# source lifts it, and so does `p11enroll clear`.
# ---------------------------------------------------------------------------
make_token ag-pin || exit 1
C8="$TMP/pin.conf"
P8="$TMP/pin-ag"
mkconf "$C8" "$TMP/state-pin" ag-pin
sed -i "s|^module = .*|module = $P11WRAP|; s|^pin_source = .*|pin_source = file:$P8|" "$C8"
printf '%s\n' "$USER_PIN" > "$P8"
pe "$C8" enroll test
check "/agent/pin/setup-enrolled" expect_rc 0
WRONG_PIN=$(printf '%s' "$USER_PIN" | tr 0-9 1-90)
printf '%s\n' "$WRONG_PIN" > "$P8"
W8="$TMP/wrap-pin.log"
L8="$TMP/agent-pin.log"
agent_start "$C8" "$L8" P11WRAP_LOG="$W8" || exit 1
A8=$APID
check "/agent/pin/rejected" wait_for 20 is "$C8" test state pin-rejected
check "/agent/pin/one-login" test "$(logins "$W8")" -eq 1
check "/agent/pin/says-latched" grep -q 'not trying it again' "$L8"
check "/agent/pin/no-next-attempt" is "$C8" test next_attempt null
settled "$C8"
check "/agent/pin/still-one-login" test "$(logins "$W8")" -eq 1
agent_stop "$A8"
check "/agent/pin/sigterm-exit-0" test "$ARC" = 0
check "/agent/pin/latch-saved" grep -q '^pin_latch file:' "$TMP/state-pin/test.agent"
agent_start "$C8" "$L8" P11WRAP_LOG="$W8" || exit 1
A8=$APID
check "/agent/pin/restart-rejected" wait_for 20 is "$C8" test state pin-rejected
settled "$C8"
check "/agent/pin/restart-no-login" test "$(logins "$W8")" -eq 1
check "/agent/pin/restart-still-rejected" is "$C8" test state pin-rejected
check "/agent/pin/restart-says" grep -q 'refused before the restart' "$L8"
# a renewal asked for while latched is refused at once, without a login
pe "$C8" renew test
check "/agent/pin/renew-latched-exit-4" expect_rc 4
check "/agent/pin/renew-latched-no-login" test "$(logins "$W8")" -eq 1
# the right PIN: the source's fingerprint (size, time) changes
printf '%s\n' "$USER_PIN" > "$P8"
check "/agent/pin/changed-valid" wait_for 20 is "$C8" test state valid
check "/agent/pin/says-changed" grep -q 'the PIN source changed' "$L8"
check "/agent/pin/changed-one-more-login" test "$(logins "$W8")" -eq 2
pe "$C8" renew test
check "/agent/pin/renew-exit-0" expect_rc 0
check "/agent/pin/renewed" is "$C8" test renewals 1
# latched again by a renewal, then the right PIN written with the same size
# and time: the fingerprint is the latched one, only clear lifts the latch
printf '%s\n' "$WRONG_PIN" > "$P8"
pe "$C8" renew test
check "/agent/pin/renew-wrong-exit-4" expect_rc 4
check "/agent/pin/latched-again" is "$C8" test state pin-rejected
n8=$(logins "$W8")
touch -r "$P8" "$TMP/pin-time"
printf '%s\n' "$USER_PIN" > "$P8"
touch -r "$TMP/pin-time" "$P8"
settled "$C8"
check "/agent/pin/same-fingerprint-no-login" test "$(logins "$W8")" -eq "$n8"
check "/agent/pin/same-fingerprint-latched" is "$C8" test state pin-rejected
pe "$C8" clear test
check "/agent/pin/clear-exit-0" expect_rc 0
check "/agent/pin/clear-says" grep -q '^cleared test' "$TMP/out"
check "/agent/pin/cleared-valid" wait_for 20 is "$C8" test state valid
check "/agent/pin/cleared-one-login" test "$(logins "$W8")" -eq $((n8 + 1))
check "/agent/pin/no-secret" no_secret_in "$L8" "$W8" "$TMP/state-pin/test.agent"
check "/agent/pin/no-wrong-pin" sh -c "! grep -q -F '$WRONG_PIN' '$L8' '$TMP/state-pin/test.agent'"
agent_stop "$A8"
check "/agent/pin/sigterm-exit-0-again" test "$ARC" = 0

# ---------------------------------------------------------------------------
# 9: an expired certificate without bootstrap credentials stops the
# enrollment with a clear error and no retries; with bootstrap = yes an ir
# replaces the pair.
# ---------------------------------------------------------------------------
make_token ag-expired || exit 1
# long enough to be stored before it expires, also under a checker
start_ca --validity-seconds $((2 * P11E_SCALE)) || exit 1
C9="$TMP/expired.conf"
L9="$TMP/agent-expired.log"
mkconf "$C9" "$TMP/state-expired" ag-expired
pe "$C9" enroll test
check "/agent/expired/setup-enrolled" expect_rc 0
pe "$C9" check test
na9=$(sed -n 's/^not_after=//p' "$TMP/out")
old=$(id_of ag-expired privkey enrolled-key)
# expired: the clock is past the certificate's notAfter
expired() {
	[ "$(date +%s)" -gt "$na9" ]
}
wait_for 10 expired
agent_start "$C9" "$L9" || exit 1
A9=$APID
check "/agent/expired/stopped" wait_for 20 is "$C9" test state stopped
jget "$C9" test last_error > "$TMP/last-error"
echo "# last_error: $(cat "$TMP/last-error")"
check "/agent/expired/error-says-expired" grep -q 'expired' "$TMP/last-error"
check "/agent/expired/error-says-bootstrap" grep -q 'bootstrap' "$TMP/last-error"
check "/agent/expired/no-next-attempt" is "$C9" test next_attempt null
lines=$(wc -l < "$L9")
settled "$C9"
check "/agent/expired/no-loop" test "$(wc -l < "$L9")" -eq "$lines"
check "/agent/expired/no-attempt" test "$(in_log "$L9" 'started')" -eq 0
check "/agent/expired/no-failures" is "$C9" test consecutive_failures 0
# a renewal asked for while stopped is refused at once with the reason
pe "$C9" renew test
check "/agent/expired/renew-stopped-exit-2" expect_rc 2
check "/agent/expired/renew-stopped-says" grep_err 'expired'
check "/agent/expired/renew-stopped-no-attempt" test "$(in_log "$L9" 'started')" -eq 0
start_ca || exit 1
: > "$TMP/ca.log"
sed -i "s|^server = .*|server = $CA_URL|" "$C9"
echo "bootstrap = yes" >> "$C9"
pe "$C9" reload
check "/agent/expired/reload-exit-0" expect_rc 0
pe "$C9" clear test
check "/agent/expired/clear-exit-0" expect_rc 0
check "/agent/expired/bootstrap-enrolled" wait_for 30 is "$C9" test renewals 1
check "/agent/expired/bootstrap-valid" wait_for 10 is "$C9" test state valid
check "/agent/expired/by-ir" grep -q 'ir -> ip accepted' "$TMP/ca.log"
check "/agent/expired/enroll-started" grep -q 'test: enroll started' "$L9"
check "/agent/expired/one-pair" one_pair ag-expired enrolled-key
new=$(id_of ag-expired privkey enrolled-key)
check "/agent/expired/new-key" test -n "$new" -a "$new" != "$old"
check "/agent/expired/not-expired" test "$(jget "$C9" test not_after)" -gt "$(date +%s)"
agent_stop "$A9"
check "/agent/expired/sigterm-exit-0" test "$ARC" = 0

# ---------------------------------------------------------------------------
# 10: the CA refuses the kur; bootstrap = yes: an ir replaces the pair.
# ---------------------------------------------------------------------------
make_token ag-refused || exit 1
: > "$TMP/ca.log"
start_ca --fault reject=badRequest --fault-on kur || exit 1
C10="$TMP/refused.conf"
L10="$TMP/agent-refused.log"
mkconf "$C10" "$TMP/state-refused" ag-refused "bootstrap = yes"
pe "$C10" enroll test
check "/agent/refused/setup-enrolled" expect_rc 0
old=$(id_of ag-refused privkey enrolled-key)
agent_start "$C10" "$L10" || exit 1
A10=$APID
check "/agent/refused/starts-valid" wait_for 20 is "$C10" test state valid
# the renewal asked for ends with the ir: its outcome is the answer
pe "$C10" renew test
check "/agent/refused/renew-exit-0" expect_rc 0
check "/agent/refused/renew-says-enrolled" grep -q '^enrolled test' "$TMP/out"
check "/agent/refused/kur-rejected" wait_for 10 grep -q 'kur: rejected badRequest' "$TMP/ca.log"
check "/agent/refused/enrolled" wait_for 30 is "$C10" test renewals 1
check "/agent/refused/valid" wait_for 10 is "$C10" test state valid
check "/agent/refused/says-bootstrap" grep -q 'enrolling anew with the bootstrap' "$L10"
check "/agent/refused/by-ir" test "$(in_log "$TMP/ca.log" 'ir -> ip accepted')" -eq 2
check "/agent/refused/one-pair" one_pair ag-refused enrolled-key
new=$(id_of ag-refused privkey enrolled-key)
check "/agent/refused/new-key" test -n "$new" -a "$new" != "$old"
cert_of ag-refused enrolled-key "$TMP/tok-refused.pem"
check "/agent/refused/newest-cert" test "$(serial_of "$TMP/tok-refused.pem")" = "$(issued_serials | tail -n 1)"
check "/agent/refused/no-failures" is "$C10" test consecutive_failures 0
agent_stop "$A10"
check "/agent/refused/sigterm-exit-0" test "$ARC" = 0

# ---------------------------------------------------------------------------
# 10b: the same refusal, but as an unprotected error (unprotected_errors =
# yes): anyone on the path can send one, so it is shown and backed off
# from -- no stop, no bootstrap ir, the pair stays.
# ---------------------------------------------------------------------------
make_token ag-unverified || exit 1
: > "$TMP/ca.log"
start_ca --fault unprotected-error --fault-on kur || exit 1
C10b="$TMP/unverified.conf"
L10b="$TMP/agent-unverified.log"
mkconf "$C10b" "$TMP/state-unverified" ag-unverified "bootstrap = yes
unprotected_errors = yes
retry_min = 1h"
pe "$C10b" enroll test
check "/agent/unverified-error/setup-enrolled" expect_rc 0
old=$(id_of ag-unverified privkey enrolled-key)
agent_start "$C10b" "$L10b" || exit 1
A10b=$APID
check "/agent/unverified-error/starts-valid" wait_for 20 is "$C10b" test state valid
pe "$C10b" renew test
check "/agent/unverified-error/renew-exit-7" expect_rc 7
check "/agent/unverified-error/kur-answered" grep -q 'kur' "$TMP/ca.log"
check "/agent/unverified-error/backoff" wait_for 20 is "$C10b" test state backoff
check "/agent/unverified-error/failure-counted" at_least "$C10b" test consecutive_failures 1
check "/agent/unverified-error/says-unverified" grep -q 'unverified' "$L10b"
check "/agent/unverified-error/no-bootstrap-ir" test "$(in_log "$TMP/ca.log" 'ir -> ip')" -eq 1
check "/agent/unverified-error/same-key" test "$(id_of ag-unverified privkey enrolled-key)" = "$old"
check "/agent/unverified-error/one-pair" one_pair ag-unverified enrolled-key
agent_stop "$A10b"
check "/agent/unverified-error/sigterm-exit-0" test "$ARC" = 0

# ---------------------------------------------------------------------------
# 14: the token answers with errors (p11wrap fails C_FindObjectsInit): the
# look at the token fails; the agent backs off and neither loops nor takes
# the failure for a missing certificate (no ir, no stop).
# ---------------------------------------------------------------------------
make_token ag-broken || exit 1
C14="$TMP/broken.conf"
L14="$TMP/agent-broken.log"
W14="$TMP/wrap-broken.log"
mkconf "$C14" "$TMP/state-broken" ag-broken "bootstrap = yes
retry_min = 2s"
sed -i "s|^module = .*|module = $P11WRAP|" "$C14"
pe "$C14" enroll test
check "/agent/broken/setup-enrolled" expect_rc 0
agent_start "$C14" "$L14" P11WRAP_LOG="$W14" P11WRAP_FAIL=C_FindObjectsInit=CKR_DEVICE_ERROR ||
	exit 1
A14=$APID
check "/agent/broken/backoff" wait_for 20 is "$C14" test state backoff
i0=$(in_log "$W14" '^C_Initialize ')
t0=$(ms_now)
# the agent's next decision: a second failed look after its backoff
# (retry_min = 2s), an event to wait for rather than a sleep
wait_for 60 at_least "$C14" test consecutive_failures 2
t1=$(ms_now)
i1=$(in_log "$W14" '^C_Initialize ')
echo "# $((i1 - i0)) looks at the failing token in $((t1 - t0)) ms, to the second failure"
check "/agent/broken/no-loop" test $((i1 - i0)) -le 10
check "/agent/broken/failures-counted" at_least "$C14" test consecutive_failures 1
check "/agent/broken/no-enroll-no-renew" test "$(in_log "$L14" 'started')" -eq 0
check "/agent/broken/not-stopped" sh -c "! grep -q 'stopped:' '$L14'"
agent_stop "$A14"
check "/agent/broken/sigterm-exit-0" test "$ARC" = 0
check "/agent/broken/one-pair" one_pair ag-broken enrolled-key

# ---------------------------------------------------------------------------
# 11: jitter spreads 30 enrollments with the same validity over the window
# [notBefore + 66%, notBefore + 71%]; 12: reload adds an enrollment, the
# others keep their times; SIGTERM.
# ---------------------------------------------------------------------------
make_token ag-many || exit 1
# enough for the seeds to show a spread; one token serialises their looks
MANY=30
start_ca || exit 1
C11="$TMP/many.conf"
write_conf ag-many
{
	sed -e "s|^state_dir = .*|state_dir = $TMP/state-many|" -e '/^\[test\]/,$d' "$TMP/p11enroll.conf"
	echo "token = pkcs11:token=ag-many"
	echo "pin_source = file:$TMP/pin"
	echo "metrics_file = $TMP/many.prom"
	i=1
	while [ $i -le $MANY ]; do
		printf '\n[k%d]\nlabel = k%d\nsubject = /CN=k%d/O=Example\n' $i $i $i
		i=$((i + 1))
	done
} > "$C11"
bad=0
i=1
# setup: the program itself even under make memcheck, where $MANY runs of the
# same enroll under valgrind would add nothing but time
while [ $i -le $MANY ]; do
	$GUARD "$P11ENROLL_BIN" -c "$C11" enroll k$i > "$TMP/out" 2> "$TMP/err"
	RC=$?
	[ "$RC" = 0 ] || { bad=$((bad + 1)); sed 's/^/#   /' "$TMP/err"; }
	i=$((i + 1))
done
check "/agent/jitter/setup-enrolled-all" test $bad -eq 0
L11="$TMP/agent-many.log"
agent_start "$C11" "$L11" || exit 1
A11=$APID
# all_valid CONF N: N enrollments, all in state valid
all_valid() {
	"$P11ENROLL" -c "$1" status --json 2> /dev/null | python3 -c '
import json, sys
es = json.load(sys.stdin)["enrollments"]
sys.exit(0 if len(es) == int(sys.argv[1]) and all(e["state"] == "valid" for e in es) else 1)' "$2"
}
check "/agent/jitter/all-valid" wait_for 120 all_valid "$C11" $MANY
status_json "$C11" "$TMP/many.json"
check "/agent/jitter/json-valid" valid_json "$TMP/many.json"
check "/agent/jitter/json-fields" json_ok "$TMP/many.json" "$A11" $MANY
# spread FILE: every next_attempt in its window, and spread over it
spread() {
	python3 - "$1" << 'EOF'
import json, sys
es = json.load(open(sys.argv[1]))["enrollments"]
offs, bad = [], 0
for e in es:
    nb, na, nx = e["not_before"], e["not_after"], e["next_attempt"]
    life, off = na - nb, nx - nb
    if not (100 * off >= 66 * life and 100 * off <= 71 * life):
        bad += 1
        print("# %s: next_attempt at %.3f%% of the lifetime" % (e["name"], 100.0 * off / life))
    offs.append(off)
life = min(e["not_after"] - e["not_before"] for e in es)
width = max(offs) - min(offs)
print("# %d distinct times; spread over %.1f%% of the 5%% window" %
      (len(set(offs)), 100.0 * width / (0.05 * life)))
sys.exit(1 if bad or 10 * len(set(offs)) < 8 * len(es) or width < 0.5 * 0.05 * life else 0)
EOF
}
check "/agent/jitter/in-window-and-spread" spread "$TMP/many.json"
# 12: a new section, reload: listed; the others keep their times
printf '\n[kNEW]\nlabel = kNEW\nsubject = /CN=kNEW/O=Example\n' >> "$C11"
pe "$C11" reload
check "/agent/reload/exit-0" expect_rc 0
# listed CONF NAME: the agent reports that enrollment
listed() {
	jget "$1" "$2" state > /dev/null
}
check "/agent/reload/lists-new" wait_for 30 listed "$C11" kNEW
check "/agent/reload/says" grep -q "configuration reloaded: $((MANY + 1)) enrollment" "$L11"
check "/agent/reload/new-stopped-no-cert" wait_for 30 is "$C11" kNEW state stopped
# times_of FILE: name and next_attempt of k1..kMANY
times_of() {
	python3 -c '
import json, sys
for e in json.load(open(sys.argv[1]))["enrollments"]:
    if e["name"] != "kNEW": print(e["name"], e["next_attempt"])' "$1"
}
# reloaded_same: all of k1..kMANY valid again, with the times they had
reloaded_same() {
	status_json "$C11" "$TMP/many2.json" &&
		python3 -c '
import json, sys
es = [e for e in json.load(open(sys.argv[1]))["enrollments"] if e["name"] != "kNEW"]
sys.exit(0 if len(es) == int(sys.argv[2]) and all(e["state"] == "valid" for e in es) else 1)' "$TMP/many2.json" "$MANY" &&
		times_of "$TMP/many.json" > "$TMP/times1" && times_of "$TMP/many2.json" > "$TMP/times2" &&
		cmp -s "$TMP/times1" "$TMP/times2"
}
check "/agent/reload/same-times" wait_for 120 reloaded_same
check "/agent/reload/json-all" json_ok "$TMP/many2.json" "$A11" $((MANY + 1))
# a name the agent does not track
pe "$C11" renew nosuch
check "/agent/reload/unknown-name-exit-2" expect_rc 2
# the agent's step counters survive a reload that drops an enrollment
# (they are the agent's, not the enrollments'): kNEW and k$MANY go
# (the first look at each enrollment is a recover step)
looks0=$(sval p11enroll_step_duration_seconds_count recover "$TMP/many.prom")
sed -i -e '/^\[kNEW\]/,$d' -e "/^\[k$MANY\]/,/^\$/d" "$C11"
kill -HUP "$A11"
check "/agent/sighup/reloaded" wait_for 30 sh -c "[ \$(grep -c 'configuration reloaded' '$L11') -ge 2 ]"
# dropped_kept: the file without the dropped ones, no count went down
dropped_kept() {
	local n
	n=$(sval p11enroll_step_duration_seconds_count recover "$TMP/many.prom")
	! grep -q -e 'enrollment="kNEW"' -e "enrollment=\"k$MANY\"" "$TMP/many.prom" &&
		grep -q 'enrollment="k1"' "$TMP/many.prom" && [ "${n:-0}" -ge "${looks0:-1}" ]
}
check "/agent/sighup/metrics-dropped" wait_for 30 dropped_kept
check "/agent/sighup/steps-counted" test "${looks0:-0}" -ge "$MANY"
agent_stop "$A11"
check "/agent/sigterm/many-exit-0" test "$ARC" = 0
check "/agent/sigterm/many-socket-removed" test ! -e "$TMP/state-many/control"
check "/agent/logs-clean" sh -c "! grep -l -E 'Sanitizer|runtime error' '$TMP'/agent-*.log"
check "/agent/ca-clean" sh -c "! grep -q -E 'Sanitizer|runtime error' '$TMP/ca.err'"

finish
