#!/bin/sh
# /ctl: the agent's control socket under hostile or careless clients.
# Idle clients (silent, or half a line) do not hold up another client's
# request and are dropped at their deadline; an overlong request line and
# clients beyond the limit are refused with a message; a control_group
# member cannot clear a PIN latch (root can, and anyone may once the PIN
# source changed); a forced renewal that skips the backoff is rate-limited.
# Every wait is for an event (a log line, a file, a state), bounded by a
# hang guard scaled by P11ENROLL_TEST_SCALE; no assertion measures time.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
. "$top_srcdir/tests/agent-lib.sh"
need_tools
need_cmd python3
use_p11wrap
setup
plan 87
SCALE=$P11E_SCALE
case $SCALE in '' | *[!0-9]* | 0) SCALE=1 ;; esac

# CTL_KEEP=DIR keeps a copy of the test's files (logs) for a post-mortem
trap 'kill_agents; [ -z "$CTL_KEEP" ] || cp -r "$TMP" "$CTL_KEEP"; cleanup' EXIT
trap 'exit 1' HUP PIPE

# as_nobody ARGS...: p11enroll as uid nobody, group nogroup only (a
# control_group member that is neither root nor the agent's user).
as_nobody() {
	$GUARD setpriv --reuid=nobody --regid=nogroup --clear-groups \
		"$P11ENROLL" -c "$CN" "$@" > "$TMP/out" 2> "$TMP/err"
	RC=$?
	return 0
}

# state_is STATE: the enrollment's state, as status --json has it.
state_is() {
	is "$C" test state "$1"
}

# idle N READY EVENTS [PROGRAM...]: N clients connect and send nothing
# (even ones) or half a request line (odd ones), then wait; one line per
# event in EVENTS: "data I ..." when the agent answers client I, "dropped I"
# when it closes it.  PROGRAM runs the python code (default python3).
idle() {
	_id_n=$1 _id_ready=$2 _id_events=$3
	shift 3
	[ $# -gt 0 ] || set -- python3
	"$@" - "$SOCK" "$_id_n" "$_id_ready" "$_id_events" "$((120 * SCALE))" << 'EOF' &
import select, socket, sys, time
path, n, ready, events, limit = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5])
socks = {}
for i in range(n):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    if i % 2:
        try:
            s.sendall(b"stat")
        except OSError:
            pass  # refused and closed already
    socks[i] = s
open(ready, "w").close()
end = time.monotonic() + limit
with open(events, "a") as ev:
    while socks and time.monotonic() < end:
        r, _, _ = select.select(list(socks.values()), [], [], 0.5)
        for i in [k for k, s in socks.items() if s in r]:
            data = socks[i].recv(4096)
            if data:
                ev.write("data %d %r\n" % (i, data))
            else:
                ev.write("dropped %d\n" % i)
                socks[i].close()
                del socks[i]
            ev.flush()
EOF
	HELPERS="$HELPERS $!"
	IDLE_PID=$!
}

# send_raw TEXT FILE: one client sends TEXT, then reads the whole answer into FILE.
send_raw() {
	$GUARD python3 - "$SOCK" "$1" "$2" << 'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
try:
    s.sendall(sys.argv[2].encode())
except OSError:
    pass
out = b""
while True:
    d = s.recv(4096)
    if not d:
        break
    out += d
open(sys.argv[3], "wb").write(out)
EOF
}

# lines_are REGEX FILE N: FILE has exactly N lines matching REGEX.
lines_are() {
	test "$(in_log "$2" "$1")" -eq "$3"
}

# show_log: the agent's log, as TAP comments.
show_log() {
	tail -n 30 "$L" | sed 's/^/#   /'
	return 1
}

make_token ctl || exit 1
start_ca --validity-seconds 200000 || exit 1
C="$TMP/ctl.conf"
CN="$TMP/ctl-nobody.conf"
P="$TMP/pin-ctl"
W="$TMP/wrap.log"
L="$TMP/agent.log"
# The socket where a client of another uid reaches it: $TMP lets everyone
# through (its files are 0600), the socket's group is control_group.
chmod 0711 "$TMP"
mkdir -m 0711 "$TMP/ctl"
SOCK="$TMP/ctl/control"
write_conf ctl
sed "1i control_socket = $SOCK\\
control_group = nogroup
s|^state_dir = .*|state_dir = $TMP/state|; s|^module = .*|module = $P11WRAP|
s|^pin_source = .*|pin_source = file:$P|" "$TMP/p11enroll.conf" > "$C"
cp "$C" "$CN"
chmod 0644 "$CN"
printf '%s\n' "$USER_PIN" > "$P"
pe "$C" enroll test
check "/ctl/setup-enrolled" expect_rc 0
# the deadline, scaled with the hang guards: long enough for any request
CTL_T=$((5 * SCALE))
check "/ctl/setup-agent-answers" agent_start "$C" "$L" P11WRAP_LOG="$W" \
	P11ENROLL_TEST_CTL_TIMEOUT=$CTL_T
check "/ctl/setup-valid" wait_for 20 state_is valid

# ---------------------------------------------------------------------------
# (a) five idle clients: a status request asked meanwhile is answered while
# they are still connected; they are dropped at their deadline, unanswered.
# ---------------------------------------------------------------------------
idle 5 "$TMP/idle.ready" "$TMP/idle.events"
check "/ctl/idle/connected" wait_for 20 test -e "$TMP/idle.ready"
pe "$C" status
check "/ctl/idle/status-exit-0" expect_rc 0
check "/ctl/idle/status-table" grep -q -E '^test +valid' "$TMP/out"
# the events so far: none of the idle clients was closed or answered
cp "$TMP/idle.events" "$TMP/idle.at-status" 2> /dev/null || : > "$TMP/idle.at-status"
check "/ctl/idle/status-while-connected" test "$(in_log "$TMP/idle.at-status" .)" -eq 0
check "/ctl/idle/all-dropped" wait_for 60 lines_are '^dropped' "$TMP/idle.events" 5
check "/ctl/idle/none-answered" test "$(in_log "$TMP/idle.events" '^data')" -eq 0
check "/ctl/idle/logged-deadline" test "$(in_log "$L" 'control: dropped a client .*no request')" -eq 5
sed 's/^/#   /' "$TMP/idle.events"

# an overlong request line is refused with a message, not cut and run
send_raw "$(printf '%02000d' 0)" "$TMP/long.out"
check "/ctl/long/refused-exit-2" grep -q '^exit 2$' "$TMP/long.out"
check "/ctl/long/says-too-long" grep -q 'too long' "$TMP/long.out"

# more clients than the agent serves at once: the excess is refused with a
# message, the rest dropped at the deadline
idle 40 "$TMP/many.ready" "$TMP/many.events"
check "/ctl/many/connected" wait_for 20 test -e "$TMP/many.ready"
check "/ctl/many/all-closed" wait_for 60 lines_are '^dropped' "$TMP/many.events" 40
check "/ctl/many/excess-refused" test "$(in_log "$TMP/many.events" "^data .*too many")" -ge 1
check "/ctl/many/excess-exit-11" test "$(in_log "$TMP/many.events" "^data .*exit 11")" -ge 1
check "/ctl/many/answers-after" pe "$C" status
sed 's/^/#   /' "$TMP/many.events" | grep data | head -2

# the same from a control_group member: it gets fewer places, and root still
# gets an answer while the member's clients hold theirs
if [ "$(id -u)" = 0 ] && command -v setpriv > /dev/null 2>&1 && [ -x /usr/bin/python3 ]; then
	mkdir -m 0700 "$TMP/nobody"
	chown nobody "$TMP/nobody"
	NE="$TMP/nobody/many.events"
	idle 40 "$TMP/nobody/ready" "$NE" setpriv --reuid=nobody --regid=nogroup --clear-groups \
		/usr/bin/python3
	check "/ctl/group-many/connected" wait_for 20 test -e "$TMP/nobody/ready"
	# 32 places less the 4 kept for root and the agent's user: 12 refused
	check "/ctl/group-many/refused-12" wait_for 20 lines_are '^data .*too many' "$NE" 12
	check "/ctl/group-many/refusals-closed" wait_for 20 lines_are '^dropped' "$NE" 12
	pe "$C" status
	check "/ctl/group-many/root-status-exit-0" expect_rc 0
	# nothing but the refusals happened before the answer
	check "/ctl/group-many/status-while-connected" lines_are . "$NE" 24
	check "/ctl/group-many/all-closed" wait_for 60 lines_are '^dropped' "$NE" 40
else
	for t in connected refused-12 refusals-closed root-status-exit-0 status-while-connected \
		all-closed; do
		ok "/ctl/group-many/$t # SKIP needs root, setpriv and /usr/bin/python3"
	done
fi

# ---------------------------------------------------------------------------
# (b) the PIN latch: a wrong PIN latches; a control_group member's clear is
# refused without a login; root's clear is allowed (one login); a changed PIN
# source lets a group member clear it.
# ---------------------------------------------------------------------------
WRONG_PIN=$(printf '%s' "$USER_PIN" | tr 0-9 1-90)
printf '%s\n' "$WRONG_PIN" > "$P"
pe "$C" clear test
check "/ctl/pin/root-clear-exit-0" expect_rc 0
check "/ctl/pin/latched" wait_for 30 state_is pin-rejected
n0=$(logins "$W")
# the right PIN, written with the latched size and time: same fingerprint
touch -r "$P" "$TMP/pin-time"
printf '%s\n' "$USER_PIN" > "$P"
touch -r "$TMP/pin-time" "$P"
if [ "$(id -u)" = 0 ] && command -v setpriv > /dev/null 2>&1; then
	as_nobody clear test
	echo "# nobody's clear: exit $RC: $(cat "$TMP/out" "$TMP/err")"
	check "/ctl/pin/group-clear-refused-exit-2" expect_rc 2
	check "/ctl/pin/group-clear-says-who" grep_err 'root or the agent'
	check "/ctl/pin/group-clear-still-latched" state_is pin-rejected
	check "/ctl/pin/group-clear-logged" wait_for 10 test "$(in_log "$L" 'refused to clear the PIN latch')" -ge 1
	check "/ctl/pin/group-clear-no-login" test "$(logins "$W")" -eq "$n0"
else
	for t in refused-exit-2 says-who still-latched logged no-login; do
		ok "/ctl/pin/group-clear-$t # SKIP needs root and setpriv"
	done
fi
pe "$C" clear test
check "/ctl/pin/root-clear-again-exit-0" expect_rc 0
check "/ctl/pin/root-clear-valid" wait_for 30 state_is valid
check "/ctl/pin/root-clear-one-login" test "$(logins "$W")" -eq $((n0 + 1))
# latched again by a renewal with a wrong PIN; then a new PIN file
printf '%s\n' "$WRONG_PIN" > "$P"
pe "$C" renew test
check "/ctl/pin/renew-wrong-exit-4" expect_rc 4
check "/ctl/pin/latched-again" state_is pin-rejected
printf '%s\n' "$USER_PIN" > "$P.new"
mv "$P.new" "$P"
if [ "$(id -u)" = 0 ] && command -v setpriv > /dev/null 2>&1; then
	as_nobody clear test
	echo "# nobody's clear after a PIN change: exit $RC: $(cat "$TMP/out" "$TMP/err")"
	check "/ctl/pin/changed-group-clear-exit-0" expect_rc 0
	check "/ctl/pin/changed-group-clear-says" grep -q '^cleared test' "$TMP/out"
else
	ok "/ctl/pin/changed-group-clear-exit-0 # SKIP needs root and setpriv"
	ok "/ctl/pin/changed-group-clear-says # SKIP needs root and setpriv"
fi
check "/ctl/pin/changed-valid" wait_for 30 state_is valid
check "/ctl/pin/no-secret" no_secret_in "$L" "$W" "$TMP/state/test.agent"
check "/ctl/pin/no-wrong-pin" sh -c "! grep -q -F '$WRONG_PIN' '$L' '$TMP/state/test.agent'"

# ---------------------------------------------------------------------------
# (c) a renewal forced during the backoff: the first runs, the second within
# retry_min is refused with the time the next one is allowed; root may.
# ---------------------------------------------------------------------------
# nothing listens on port 1: root's renewal fails, retried after an hour
sed -i "s|^server = .*|server = http://127.0.0.1:1/.well-known/cmp|
\$a retry_min = 1h" "$C"
pe "$C" reload
check "/ctl/rate/reload-exit-0" expect_rc 0
check "/ctl/rate/valid" wait_for 30 state_is valid
pe "$C" renew test
check "/ctl/rate/root-renew-fails-exit-5" expect_rc 5
check "/ctl/rate/backoff" eval 'state_is backoff || show_log'
if [ "$(id -u)" = 0 ] && command -v setpriv > /dev/null 2>&1; then
	n1=$(in_log "$L" 'test: renew started')
	as_nobody renew test
	echo "# nobody's first forced renew: exit $RC"
	check "/ctl/rate/first-runs-exit-5" expect_rc 5
	check "/ctl/rate/first-started" test "$(in_log "$L" 'test: renew started')" -eq $((n1 + 1))
	check "/ctl/rate/still-backoff" wait_for 10 state_is backoff
	as_nobody renew test
	echo "# nobody's second forced renew: exit $RC: $(cat "$TMP/out" "$TMP/err")"
	check "/ctl/rate/second-refused-exit-11" expect_rc 11
	check "/ctl/rate/second-says-when" grep_err 'allowed in [0-9]+ s'
	check "/ctl/rate/second-not-started" test "$(in_log "$L" 'test: renew started')" -eq $((n1 + 1))
	pe "$C" renew test
	check "/ctl/rate/root-may-exit-5" expect_rc 5
	check "/ctl/rate/root-started" test "$(in_log "$L" 'test: renew started')" -eq $((n1 + 2))
else
	for t in first-runs-exit-5 first-started still-backoff second-refused-exit-11 \
		second-says-when second-not-started root-may-exit-5 root-started; do
		ok "/ctl/rate/$t # SKIP needs root and setpriv"
	done
fi

# ---------------------------------------------------------------------------
# (d) requests the agent cannot serve: an unknown request or enrollment is
# refused with what was asked; a reload of a file that no longer loads
# keeps the enrollments the agent had and says why (the file's text only
# to root and the agent's user: a group member is sent to the log).
# ---------------------------------------------------------------------------
send_raw "frobnicate test
" "$TMP/unknown.out"
check "/ctl/unknown/exit-2" grep -q '^exit 2$' "$TMP/unknown.out"
check "/ctl/unknown/says" grep -q '^unknown request: frobnicate test$' "$TMP/unknown.out"
send_raw "renew nosuch
" "$TMP/nosuch.out"
check "/ctl/unknown-enrollment/exit-2" grep -q '^exit 2$' "$TMP/nosuch.out"
check "/ctl/unknown-enrollment/says" grep -q "^the agent tracks no enrollment 'nosuch'" "$TMP/nosuch.out"
cp "$C" "$TMP/ctl.good"
# two mistakes: both are told, each with its line
sed -i 's/^retry_min = 1h$/retry_min = soon\nretry_mni = 2h/' "$C"
# the client reads $CN, which still loads; the agent reads $C
pe "$CN" reload
check "/ctl/reload-broken/exit-2" expect_rc 2
check "/ctl/reload-broken/says-why" sh -c "cat '$TMP/out' '$TMP/err' | grep -q -E ':[0-9]+: \[test\] retry_min: .soon. is not a duration'"
check "/ctl/reload-broken/says-all" sh -c "cat '$TMP/out' '$TMP/err' | grep -q -E ':[0-9]+: \[test\] retry_mni: unknown key \(did you mean .retry_min.\?\)'"
check "/ctl/reload-broken/keeps" sh -c "cat '$TMP/out' '$TMP/err' | grep -q 'reload failed: the agent keeps its previous configuration'"
check "/ctl/reload-broken/logged" test "$(in_log "$L" 'reload failed: .*retry_min: .soon. is not a duration')" -eq 1
pe "$CN" status
check "/ctl/reload-broken/still-tracks" grep -q -E '^test +' "$TMP/out"
# the client itself reads the broken file: it needs only the socket from it,
# and the agent says what is wrong (a client no longer checks every section)
pe "$C" reload
check "/ctl/reload-broken/own-file-exit-2" expect_rc 2
check "/ctl/reload-broken/own-file-agent-says" sh -c "grep -q -E ':[0-9]+: \[test\] retry_mni: unknown key' '$TMP/err' && grep -q 'reload failed: the agent keeps' '$TMP/err'"
pe "$C" status
check "/ctl/reload-broken/own-file-status" grep -q -E '^test +' "$TMP/out"
if [ "$(id -u)" = 0 ] && command -v setpriv > /dev/null 2>&1; then
	as_nobody reload
	check "/ctl/reload-broken/group-exit-2" expect_rc 2
	check "/ctl/reload-broken/group-sent-to-log" sh -c "cat '$TMP/out' '$TMP/err' | grep -q 'its log says why' && ! cat '$TMP/out' '$TMP/err' | grep -q retry_min"
else
	for t in group-exit-2 group-sent-to-log; do
		ok "/ctl/reload-broken/$t # SKIP needs root and setpriv"
	done
fi
cp "$TMP/ctl.good" "$C"
pe "$C" reload
check "/ctl/reload-fixed/exit-0" expect_rc 0

# ---------------------------------------------------------------------------
# (e) a reload asked while a step runs (the CA holds its answer to the kur)
# waits for the step: the answer says so, and the agent reloads once the
# step has ended.
# ---------------------------------------------------------------------------
start_ca --validity-seconds 200000 --hang-on kur --hang-count 1 || exit 1
sed -i "s|^server = .*|server = $CA_URL|" "$C"
pe "$C" reload
check "/ctl/reload-busy/setup-reload" expect_rc 0
n0=$(in_log "$L" 'configuration reloaded')
nh0=$(in_log "$TMP/ca.log" 'hang: kur received')
"$P11ENROLL" -c "$C" renew test > "$TMP/renew-bg.out" 2>&1 &
RPID=$!
HELPERS="$HELPERS $RPID"
check "/ctl/reload-busy/kur-held" wait_for 60 sh -c "test \$(grep -c 'hang: kur received' '$TMP/ca.log') -eq $((nh0 + 1))"
pe "$C" reload
check "/ctl/reload-busy/exit-0" expect_rc 0
check "/ctl/reload-busy/says-it-waits" grep -q 'a step is running: the agent reloads when it ends' "$TMP/out"
check "/ctl/reload-busy/logged" test "$(in_log "$L" 'reload waits: a step is running')" -eq 1
check "/ctl/reload-busy/not-yet" test "$(in_log "$L" 'configuration reloaded')" -eq "$n0"
# the CA goes: the held kur fails, the step ends, the reload follows
stop_ca
check "/ctl/reload-busy/after-step" wait_for 60 sh -c "test \$(grep -c 'configuration reloaded' '$L') -eq $((n0 + 1))"
wait "$RPID"
check "/ctl/reload-busy/renew-exit-5" test $? = 5
# the step's own message, as it prints it run by hand
check "/ctl/reload-busy/renew-says-why" grep -q '^p11enroll: error: key update failed .*' "$TMP/renew-bg.out"

# ---------------------------------------------------------------------------
# (f) a renewal by hand (--local) holds the enrollment while the CA holds its
# kur: the agent's own step finds it busy, which is no failure: the state
# stays, the client is told, the agent tries again later.
# ---------------------------------------------------------------------------
start_ca --validity-seconds 200000 --hang-on kur --hang-count 1 || exit 1
sed -i "s|^server = .*|server = $CA_URL|" "$C"
pe "$C" reload
check "/ctl/busy/setup-reload" expect_rc 0
check "/ctl/busy/setup-valid" wait_for 30 state_is valid
# ca.log goes on from (e), which has a held kur already: count the new one
nh=$(in_log "$TMP/ca.log" 'hang: kur received')
"$P11ENROLL" -c "$C" renew test --local > "$TMP/local.out" 2>&1 &
LPID=$!
HELPERS="$HELPERS $LPID"
LOCKFILE=$(pending_file ctl)
LOCKFILE=${LOCKFILE%.pending}.lock
check "/ctl/busy/local-holds" wait_for 60 sh -c "test \"\$(cat '$LOCKFILE' 2> /dev/null)\" = $LPID &&
	test \$(grep -c 'hang: kur received' '$TMP/ca.log') -eq $((nh + 1))"
nb=$(in_log "$L" 'test: another process holds the enrollment')
pe "$C" renew test
echo "# the agent's renew beside the hand-run one: exit $RC: $(cat "$TMP/out" "$TMP/err" | head -3)"
check "/ctl/busy/exit-11" expect_rc 11
check "/ctl/busy/says-who" grep_err "^p11enroll: error: another p11enroll process \\(process $LPID\\b.*is working on 'test'"
check "/ctl/busy/logged" test "$(in_log "$L" 'test: another process holds the enrollment: trying again')" -eq $((nb + 1))
check "/ctl/busy/still-valid" state_is valid
stop_ca
wait "$LPID"
check "/ctl/busy/local-exit-5" test $? = 5

kill -TERM "$APID"
check "/ctl/agent-stops" wait_for 30 gone "$APID"
wait "$APID"
check "/ctl/agent-exit-0" test $? = 0
AGENTS=
finish
