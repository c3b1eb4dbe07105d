#!/bin/sh
# /record: what the agent keeps and shows of each enrollment's last outcome.
# A CA rejection with a text of more than 1 KiB in multi-byte characters
# reaches status, --json, the state file, the failure hook's
# P11ENROLL_ERROR and the log whole, with its time and the CA's failInfo;
# the success hook of the agent's first certificate says "enrolled"; a
# refused renewal says which bootstrap setting is missing; the error
# persists across a restart with its time and is gone once a look finds
# the certificate in place (also after a restart); a PIN failure counts
# and the hook names the token; a look refused for its configuration (no
# token line) stops instead of retrying.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
. "$top_srcdir/tests/agent-lib.sh"
need_tools
need_cmd python3
use_p11wrap
setup
plan 58
trap 'kill_agents; cleanup' EXIT
trap 'exit 1' HUP PIPE

settled() {
	"$P11ENROLL" -c "$1" status > /dev/null 2>&1 && "$P11ENROLL" -c "$1" status > /dev/null 2>&1
}

show() {
	sed 's/^/#   /' "$1"
}

# same FILE1 FILE2: equal, or the difference as TAP comments.
same() {
	diff "$1" "$2" > "$TMP/diff" 2>&1 && return 0
	show "$TMP/diff"
	return 1
}

# The hooks write their environment, one block per run, to
# hook-NAME-EVENT.env.
cat > "$TMP/hook.sh" << EOF
#!/bin/sh
{ echo "--- run"; env | grep '^P11ENROLL_' | sort; } >> "$TMP/hook-\$P11ENROLL_NAME-\$P11ENROLL_EVENT.env"
EOF
chmod 700 "$TMP/hook.sh"

# hook_var NAME EVENT VAR: VAR of the last run of that hook.
hook_var() {
	sed -n '/^--- run/h; /^--- run/!H; ${x; p}' "$TMP/hook-$1-$2.env" |
		sed -n "s/^P11ENROLL_$3=//p"
}

# The CA's text: 1.1 KiB of two-, three- and four-byte characters (one
# of them straddles any byte where a cut could fall, the old 255 among
# them), then a hint at its very end.
python3 -c '
import sys
s = "test CA: " + "\u00e9\u20ac\U0001F600" * 120 + " " + "y" * 300 + " END-OF-CA-TEXT"
open(sys.argv[1], "wb").write(s.encode())' "$TMP/ca-text"
check "/record/setup/ca-text-over-1KiB" test "$(wc -c < "$TMP/ca-text")" -gt 1400

# The rejection only while $TMP/reject exists.
: > "$TMP/reject"
start_ca --fault reject=badPOP --reject-text "$TMP/ca-text" --fault-when "$TMP/reject" || exit 1

# ---------------------------------------------------------------------------
# 1: the agent's first enrollment (bootstrap = yes, no certificate), rejected
# with the long text, then enrolled.
# ---------------------------------------------------------------------------
make_token rec1 || exit 1
C1="$TMP/rec1.conf"
L1="$TMP/agent1.log"
write_conf rec1 "bootstrap = yes
hook_success = $TMP/hook.sh
hook_failure = $TMP/hook.sh"
sed "s|^state_dir = .*|state_dir = $TMP/state1|" "$TMP/p11enroll.conf" > "$C1"
agent_start "$C1" "$L1" || exit 1
A1=$APID
check "/record/long/stopped" wait_for 30 is "$C1" test state stopped
jget "$C1" test last_error > "$TMP/err1"
jget "$C1" test last_error_time > "$TMP/time1"
# the whole error: what the step said, the CA's whole text and the hint
python3 - "$TMP/err1" "$TMP/ca-text" << 'EOF' > "$TMP/want1"
import sys
ca = open(sys.argv[2], encoding="utf-8").read()
print("the CA refused the request: enrollment failed (transaction %s): the CA rejected the "
      "request: CMP initialization request (ir): the CA rejected the request: PKIStatus: "
      "rejection; PKIFailureInfo: badPOP; StatusString: \"%s\"; the CA could not verify the "
      "proof of possession made with the token key"
      % (open(sys.argv[1]).read().split("(transaction ")[1][:32], ca))
EOF
check "/record/long/json-whole" same "$TMP/want1" "$TMP/err1"
check "/record/long/over-1KiB" test "$(wc -c < "$TMP/err1")" -gt 1024
check "/record/long/json-time" test "$(cat "$TMP/time1")" -gt 0
check "/record/long/json-ca-status" is "$C1" test ca_status rejection
"$P11ENROLL" -c "$C1" status --json > "$TMP/status1.json"
check "/record/long/json-fail-info" python3 -c '
import json, sys
e = json.load(open(sys.argv[1]))["enrollments"][0]
sys.exit(0 if e["ca_fail_info"] == ["badPOP"] else 1)' "$TMP/status1.json"
# the status text: the whole error, its time, the CA's status
"$P11ENROLL" -c "$C1" status > "$TMP/status1.txt"
{
	printf '  last error (%s UTC): ' "$(date -u -d "@$(cat "$TMP/time1")" '+%Y-%m-%d %H:%M:%S')"
	cat "$TMP/want1"
	echo "  CA status: rejection, failInfo badPOP"
} > "$TMP/want1.txt"
sed -n '/^  last error/,$p' "$TMP/status1.txt" > "$TMP/got1.txt"
check "/record/long/text-whole" same "$TMP/want1.txt" "$TMP/got1.txt"
# the state file
sed -n 's/^last_error //p' "$TMP/state1/test.agent" > "$TMP/state1.err"
check "/record/long/state-whole" same "$TMP/want1" "$TMP/state1.err"
check "/record/long/state-time" grep -q -x "last_error_time $(cat "$TMP/time1")" "$TMP/state1/test.agent"
check "/record/long/state-fail-info" grep -q -x 'ca_fail_info badPOP' "$TMP/state1/test.agent"
# the failure hook and the log
check "/record/long/hook-ran" wait_for 20 test -s "$TMP/hook-test-failed.env"
hook_var test failed ERROR > "$TMP/hook1.err"
check "/record/long/hook-whole" same "$TMP/want1" "$TMP/hook1.err"
sed 's/^/p11enroll: error: test: stopped: /' "$TMP/want1" > "$TMP/want1.log"
grep -F -x -f "$TMP/want1.log" "$L1" > "$TMP/got1.log"
check "/record/long/log-whole" same "$TMP/want1.log" "$TMP/got1.log"
# the step's own error line, forwarded from its stderr, whole
sed 's/^the CA refused the request: /p11enroll: error: test: /' "$TMP/want1" > "$TMP/want1.step"
grep -F -x -f "$TMP/want1.step" "$L1" | head -n 1 > "$TMP/got1.step"
check "/record/long/step-line-whole" same "$TMP/want1.step" "$TMP/got1.step"
check "/record/long/no-escapes" sh -c "! grep -q 'xC3\|xF0' '$TMP/err1' '$L1'"

# The rejection over: clear, the ir, the success hook says "enrolled", and
# the error is gone.
rm "$TMP/reject"
pe "$C1" clear test
check "/record/enrolled/clear-exit-0" expect_rc 0
check "/record/enrolled/valid" wait_for 30 is "$C1" test renewals 1
check "/record/enrolled/hook-event" wait_for 20 test -s "$TMP/hook-test-enrolled.env"
check "/record/enrolled/no-renewed-hook" test ! -e "$TMP/hook-test-renewed.env"
check "/record/enrolled/hook-error-empty" test -z "$(hook_var test enrolled ERROR)"
check "/record/enrolled/error-gone" is "$C1" test last_error ""
check "/record/enrolled/time-gone" is "$C1" test last_error_time null
check "/record/enrolled/ca-status-gone" is "$C1" test ca_status null
agent_stop "$A1"

# ---------------------------------------------------------------------------
# 2: a refused renewal (reference and secret_source set, bootstrap = yes
# missing) stops with that said; the error and its time survive a restart;
# clear: a look finds the certificate in place, and the error is gone,
# also after the next restart.
# ---------------------------------------------------------------------------
sed -i '/^bootstrap = yes$/d' "$C1"
: > "$TMP/reject"
agent_start "$C1" "$L1" || exit 1
A1=$APID
check "/record/kur/valid-first" wait_for 20 is "$C1" test state valid
pe "$C1" renew test
check "/record/kur/renew-exit-6" expect_rc 6
check "/record/kur/stopped" wait_for 20 is "$C1" test state stopped
jget "$C1" test last_error > "$TMP/err2"
python3 - "$TMP/err2" "$TMP/ca-text" << 'EOF' > "$TMP/want2"
import sys
ca = open(sys.argv[2], encoding="utf-8").read()
print("the CA refused the renewal (key update failed (transaction %s): the CA rejected the "
      "request: CMP key update request (kur): the CA rejected the request: PKIStatus: "
      "rejection; PKIFailureInfo: badPOP; StatusString: \"%s\"; the CA could not verify the "
      "proof of possession made with the token key), and the agent enrolls anew only with "
      "bootstrap credentials: `bootstrap = yes` is not set (reference and secret_source are); "
      "set it in the configuration, `p11enroll reload` and `p11enroll clear test`, or enroll "
      "by hand" % (open(sys.argv[1]).read().split("(transaction ")[1][:32], ca))
EOF
check "/record/kur/says-bootstrap-missing" same "$TMP/want2" "$TMP/err2"
jget "$C1" test last_error_time > "$TMP/time2"
agent_stop "$A1"
agent_start "$C1" "$L1" || exit 1
A1=$APID
check "/record/kur/restart-stopped" wait_for 20 is "$C1" test state stopped
check "/record/kur/restart-same-time" is "$C1" test last_error_time "$(cat "$TMP/time2")"
check "/record/kur/restart-fail-info" is "$C1" test ca_status rejection
rm "$TMP/reject"
pe "$C1" clear test
check "/record/kur/cleared-valid" wait_for 20 is "$C1" test state valid
check "/record/kur/cleared-no-error" is "$C1" test last_error ""
check "/record/kur/cleared-no-time" is "$C1" test last_error_time null
check "/record/kur/state-file-no-error" grep -q -x 'last_error ' "$TMP/state1/test.agent"
agent_stop "$A1"
agent_start "$C1" "$L1" || exit 1
A1=$APID
check "/record/kur/restart-valid" wait_for 20 is "$C1" test state valid
check "/record/kur/restart-no-error" is "$C1" test last_error ""
"$P11ENROLL" -c "$C1" status > "$TMP/status2.txt"
check "/record/kur/text-no-error" sh -c "! grep -q 'last error' '$TMP/status2.txt'"
agent_stop "$A1"

# ---------------------------------------------------------------------------
# 3: a wrong PIN: one login, counted as a failure; the hook gets the count
# and the token's serial.
# ---------------------------------------------------------------------------
make_token rec3 || exit 1
C3="$TMP/rec3.conf"
L3="$TMP/agent3.log"
W3="$TMP/wrap3.log"
P3="$TMP/pin3"
write_conf rec3 "hook_failure = $TMP/hook.sh"
sed -e "s|^state_dir = .*|state_dir = $TMP/state3|" -e "s|^module = .*|module = $P11WRAP|" \
	-e "s|^pin_source = .*|pin_source = file:$P3|" "$TMP/p11enroll.conf" > "$C3"
printf '%s\n' "$USER_PIN" > "$P3"
pe "$C3" enroll test
check "/record/pin/setup-enrolled" expect_rc 0
printf '%s\n' "$USER_PIN" | tr 0-9 1-90 > "$P3"
: > "$W3"
agent_start "$C3" "$L3" P11WRAP_LOG="$W3" || exit 1
A3=$APID
check "/record/pin/rejected" wait_for 20 is "$C3" test state pin-rejected
check "/record/pin/one-login" test "$(logins "$W3")" -eq 1
check "/record/pin/counted" is "$C3" test consecutive_failures 1
check "/record/pin/token-serial" is "$C3" test token_serial "$(token_serial rec3)"
check "/record/pin/hook-ran" wait_for 20 test -s "$TMP/hook-test-failed.env"
{
	echo "EXIT=4"
	echo "FAILURES=1"
	echo "TOKEN_LABEL=rec3"
	echo "TOKEN_SERIAL=$(token_serial rec3)"
} > "$TMP/want3"
sed -n '/^--- run/h; /^--- run/!H; ${x; p}' "$TMP/hook-test-failed.env" |
	sed -n 's/^P11ENROLL_\(EXIT\|FAILURES\|TOKEN_SERIAL\|TOKEN_LABEL\)=/\1=/p' > "$TMP/got3"
check "/record/pin/hook-env" same "$TMP/want3" "$TMP/got3"
settled "$C3"
check "/record/pin/still-one-login" test "$(logins "$W3")" -eq 1
agent_stop "$A3"

# ---------------------------------------------------------------------------
# 4: a look that exits 2 before it reads the token (its record has no
# token line): here the configuration file was broken after the agent
# read it.  A configuration error the operator must fix: the enrollment
# stops, as a step's exit 2 does (agent(8)), instead of retrying it after
# a backoff, and the failure hook runs.
# ---------------------------------------------------------------------------
C4="$TMP/rec4.conf"
L4="$TMP/agent4.log"
write_conf rec4 "hook_failure = $TMP/hook.sh
token_poll = 1"
sed -e "s|^state_dir = .*|state_dir = $TMP/state4|" "$TMP/p11enroll.conf" > "$C4"
sed -i 's/^\[test\]$/[t4]/' "$C4"
agent_start "$C4" "$L4" || exit 1
A4=$APID
check "/record/look-exit-2/waiting-token" wait_for 20 is "$C4" t4 state waiting-token
echo "no_such_setting = 1" >> "$C4"
check "/record/look-exit-2/stopped" wait_for 20 is "$C4" t4 state stopped
jget "$C4" t4 last_error > "$TMP/err4"
check "/record/look-exit-2/says-config" grep -q "no_such_setting" "$TMP/err4"
check "/record/look-exit-2/logged" grep -q -F -x "p11enroll: error: t4: stopped: $(cat "$TMP/err4")" "$L4"
check "/record/look-exit-2/no-next" is "$C4" t4 next_attempt null
check "/record/look-exit-2/hook" wait_for 20 test "$(hook_var t4 failed EXIT)" = 2
looks=$(in_log "$L4" 'look of')
settled "$C4"
settled "$C4"
check "/record/look-exit-2/no-retry" test "$(in_log "$L4" 'look of')" -eq "$looks"
agent_stop "$A4"
# ---------------------------------------------------------------------------
# 5: a CA text of 10 KiB: the error is cut, before a whole character and
# marked, and the hint after the CA's text stays.
# ---------------------------------------------------------------------------
python3 -c '
import sys
s = "test CA: " + "\u00e9\u20ac\U0001F600" * 1200 + " END-OF-CA-TEXT"
open(sys.argv[1], "wb").write(s.encode())' "$TMP/ca-text"
make_token rec5 || exit 1
write_conf rec5
sed -i "s|^state_dir = .*|state_dir = $TMP/state5|" "$TMP/p11enroll.conf"
: > "$TMP/reject"
p11e enroll test
check "/record/cut/exit-6" expect_rc 6
grep '^p11enroll: error: enrollment failed' "$TMP/err" | tail -n 1 > "$TMP/err5"
check "/record/cut/bounded" test "$(wc -c < "$TMP/err5")" -le $((4095 + 19))
printf '%s\n' "[cut: the CA's text is longer]\"; the CA could not verify the proof of possession made with the token key" > "$TMP/tail5"
check "/record/cut/marked" grep -q -F -f "$TMP/tail5" "$TMP/err5"
check "/record/cut/no-split-character" sh -c "! grep -q 'x[0-9A-F][0-9A-F]' '$TMP/err5'"
rm "$TMP/reject"
check "/record/no-secret" no_secret_in "$L1" "$L3" "$L4" "$TMP"/hook-*.env "$TMP"/state*/*.agent
finish
