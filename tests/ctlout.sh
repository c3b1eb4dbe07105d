#!/bin/sh
# /ctlout: every request through the agent's control socket gets its whole
# outcome: exit status and the complete message, on stderr (stdout for
# normal output).  A renewal through the agent that fails (the CA
# rejects it, the CA is down, the token is gone) prints exactly what the
# same renewal run by hand (--local) prints, with its exit status; a
# reload of a file the agent refuses prints the lines check-config prints
# for it, a few KiB of them too; status NAME shows only NAME, in the table
# and in --json; an enrollment the agent does not track, and one the file
# does not have, is one line and exit 2.  A reply that is cut short or not
# the agent's is a clear error, never a crash.  Outputs are compared in
# full (diff), with only transaction IDs and times made equal.  Waits are
# for events (a state, a file), bounded by hang guards.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
. "$top_srcdir/tests/agent-lib.sh"
need_tools
need_cmd python3
use_p11wrap
setup
plan 62
trap 'kill_agents; cleanup' EXIT
trap 'exit 1' HUP PIPE

# norm FILE: the run's variable parts made equal (transaction IDs, the
# milliseconds curl reports) and the token URI as the configuration has
# it (the agent's step gets it pinned to the token it saw: serial, model,
# manufacturer).
norm() {
	sed -E "s/transaction [0-9a-f]+/transaction T/g; s/after [0-9]+ ms/after N ms/g
		s/'(pkcs11:token=[^;']*)(;[^']*)?'/'\\1'/g" "$1"
}

# same EXPECTED ACTUAL: the two files are equal after norm; the difference
# as TAP comments otherwise.
same() {
	norm "$1" > "$1.n"
	norm "$2" > "$2.n"
	diff "$1.n" "$2.n" > "$TMP/diff" && return 0
	sed 's/^/#   /' "$TMP/diff"
	return 1
}

# by_agent NAME / by_hand NAME: renew NAME through the agent / by hand;
# stdout, stderr and the exit status in $TMP/agent.{out,err,rc}, or
# $TMP/hand.*.
by_agent() {
	pe "$C" renew "$1"
	cp "$TMP/out" "$TMP/agent.out"
	cp "$TMP/err" "$TMP/agent.err"
	echo "$RC" > "$TMP/agent.rc"
}
by_hand() {
	pe "$C" renew --local "$1"
	cp "$TMP/out" "$TMP/hand.out"
	cp "$TMP/err" "$TMP/hand.err"
	echo "$RC" > "$TMP/hand.rc"
}

# renew_cases T CODE FIRST: through the agent and by hand, the same
# outcome: exit CODE, the same stdout and stderr, whose first line begins
# with FIRST.
renew_cases() {
	check "$1/agent-exit-$2" test "$(cat "$TMP/agent.rc")" = "$2"
	check "$1/hand-exit-$2" test "$(cat "$TMP/hand.rc")" = "$2"
	check "$1/message" sh -c "head -n 1 '$TMP/agent.err' | grep -q -F -- '$3'"
	check "$1/stderr-whole" same "$TMP/hand.err" "$TMP/agent.err"
	check "$1/stdout-same" same "$TMP/hand.out" "$TMP/agent.out"
}

make_token co1 || exit 1
make_token co2 || exit 1
start_ca --validity-seconds 200000 --fault reject=badRequest --fault-when "$TMP/reject" || exit 1
C="$TMP/ctlout.conf"
L="$TMP/agent.log"
write_conf co1 "retry_min = 3600"
sed -n '/^\[test\]/,$p' "$TMP/p11enroll.conf" | sed 's/^\[test\]/[e1]/' > "$C.sections"
write_conf co2 "retry_min = 3600"
sed -n '/^\[test\]/,$p' "$TMP/p11enroll.conf" | sed 's/^\[test\]/[e2]/' >> "$C.sections"
{
	echo "control_socket = $TMP/control"
	conf_defaults
	cat "$C.sections"
} > "$C"
pe "$C" enroll e1
check "/ctlout/setup-enrolled-e1" expect_rc 0
pe "$C" enroll e2
check "/ctlout/setup-enrolled-e2" expect_rc 0
check "/ctlout/setup-agent" agent_start "$C" "$L"
check "/ctlout/setup-valid" wait_for 20 is "$C" e1 state valid

# --- renew through the agent: the CA rejects the kur (exit 6) ------------------
: > "$TMP/reject"
by_agent e1
by_hand e1
rm -f "$TMP/reject"
renew_cases /ctlout/renew/rejected 6 "p11enroll: error: "

# --- the CA is down (exit 5) ---------------------------------------------------------
# (e1 is stopped now: the CA refused its key update)
stop_ca
by_agent e2
by_hand e2
renew_cases /ctlout/renew/ca-down 5 "p11enroll: error: "
check "/ctlout/renew/ca-down/says-connect" grep -q 'cannot connect' "$TMP/agent.err"

# --- a message of KiB passes whole: a server URL of 4000 bytes ---------------
# reload_looked: reload $C, then wait until the look at e2 it starts is over
# (a step meanwhile would find the enrollment busy).
reload_looked() {
	_n0=$(in_log "$L" 'e2: recovery look of')
	pe "$C" reload
	[ "$RC" = 0 ] || { sed 's/^/#   /' "$TMP/err"; return 1; }
	wait_for 30 sh -c "[ \$(grep -c 'e2: recovery look of' '$L') -gt $_n0 ]" &&
		wait_for 30 is "$C" e2 operation null
}
cp "$C" "$C.short"
long=$(printf '%04000d' 0 | tr 0 p)
sed -i "/^\[e2\]/a server = $CA_URL/$long" "$C"
check "/ctlout/renew/long/reloaded" reload_looked
by_agent e2
by_hand e2
# (the step warns of the URL first; it cuts the URL in its own messages,
# but what it prints, some KiB with a line longer than the agent's log
# lines, passes whole)
renew_cases /ctlout/renew/long 5 "p11enroll: warning: "
check "/ctlout/renew/long/kib" test "$(wc -c < "$TMP/agent.err")" -gt 1500
cp "$C.short" "$C"
check "/ctlout/renew/long/restored" reload_looked

# --- status NAME: only NAME, in the table and in --json ----------------------------
pe "$C" status
cp "$TMP/out" "$TMP/all.txt"
pe "$C" status e2
check "/ctlout/status-name/exit-0" expect_rc 0
check "/ctlout/status-name/no-stderr" test ! -s "$TMP/err"
# the header, then e2's lines of the whole table
{
	head -n 1 "$TMP/all.txt"
	awk '/^[^ ]/ { show = ($1 == "e2") } show' "$TMP/all.txt"
} > "$TMP/e2.txt"
check "/ctlout/status-name/only-e2" same "$TMP/e2.txt" "$TMP/out"
check "/ctlout/status-name/no-e1" sh -c "! grep -q '^e1 ' '$TMP/out'"
pe "$C" status --json
cp "$TMP/out" "$TMP/all.json"
pe "$C" status --json e2
check "/ctlout/status-name/json-exit-0" expect_rc 0
check "/ctlout/status-name/json-only-e2" python3 -c '
import json, sys
whole = json.load(open(sys.argv[1]))
one = json.load(open(sys.argv[2]))
assert sorted(whole) == sorted(one), (sorted(whole), sorted(one))
e2 = [e for e in whole["enrollments"] if e["name"] == "e2"]
assert one["enrollments"] == e2, one["enrollments"]' "$TMP/all.json" "$TMP/out"

# --- unknown NAME: one line, exit 2 --------------------------------------------------
pe "$C" status nosuch
check "/ctlout/unknown/not-in-file-exit-2" expect_rc 2
echo "p11enroll: error: $C has no enrollment [nosuch]" > "$TMP/want"
check "/ctlout/unknown/not-in-file-one-line" same "$TMP/want" "$TMP/err"
# in the file, but not (yet) in the agent: the agent's answer
cp "$C" "$C.good"
sed -n '/^\[e2\]/,$p' "$C.good" | sed 's/^\[e2\]/[e3]/' >> "$C"
echo "p11enroll: error: the agent tracks no enrollment 'e3': \`p11enroll status\` lists those it does (reload it after adding one to the file)" > "$TMP/want"
pe "$C" status e3
check "/ctlout/unknown/status-exit-2" expect_rc 2
check "/ctlout/unknown/status-one-line" same "$TMP/want" "$TMP/err"
check "/ctlout/unknown/status-no-stdout" test ! -s "$TMP/out"
pe "$C" status --json e3
check "/ctlout/unknown/status-json-exit-2" expect_rc 2
check "/ctlout/unknown/status-json-one-line" same "$TMP/want" "$TMP/err"
pe "$C" clear e3
check "/ctlout/unknown/clear-exit-2" expect_rc 2
check "/ctlout/unknown/clear-one-line" same "$TMP/want" "$TMP/err"
cp "$C.good" "$C"

# --- reload with a file the agent refuses: check-config's lines -------------------
# A mistake after the first section: the client does not read it, the
# agent does (p11enroll(1): "a mistake elsewhere is the agent's to report").
{
	cat "$C.good"
	printf '[broken]\ntoken = pkcs11:token=co2\nbogus_key = 1\ndays = many\n'
} > "$C"
pe "$C" reload
check "/ctlout/reload/exit-2" expect_rc 2
cp "$TMP/err" "$TMP/reload.err"
pe "$C" check-config
# check-config's problems, then what the agent did (not check-config's count)
{
	grep -v ' error(s) in ' "$TMP/err"
	echo "p11enroll: error: reload failed: the agent keeps its previous configuration; fix the file and reload again"
} > "$TMP/want"
check "/ctlout/reload/names-file-line" grep -q -F "p11enroll: error: $C:" "$TMP/reload.err"
check "/ctlout/reload/check-config-text" same "$TMP/want" "$TMP/reload.err"
check "/ctlout/reload/no-stdout" test ! -s "$TMP/out"
# a few KiB of problems, whole
{
	cat "$C.good"
	printf '[broken]\ntoken = pkcs11:token=co2\n'
	k=0
	while [ $k -lt 80 ]; do
		echo "unknown_setting_number_$k = a value that no setting of this name takes"
		k=$((k + 1))
	done
} > "$C"
pe "$C" reload
check "/ctlout/reload-long/exit-2" expect_rc 2
cp "$TMP/err" "$TMP/reload.err"
pe "$C" check-config
{
	grep -v ' error(s) in ' "$TMP/err"
	echo "p11enroll: error: reload failed: the agent keeps its previous configuration; fix the file and reload again"
} > "$TMP/want"
check "/ctlout/reload-long/kib" test "$(wc -c < "$TMP/reload.err")" -gt 4096
check "/ctlout/reload-long/whole" same "$TMP/want" "$TMP/reload.err"
cp "$C.good" "$C"
n0=$(in_log "$L" 'e2: recovery look of')
pe "$C" reload
check "/ctlout/reload/fixed-exit-0" expect_rc 0
# the look at e2 that the reload starts, over (it logs in: a token being
# deleted meanwhile would get a new token file)
check "/ctlout/reload/fixed-looked" wait_for 30 sh -c "[ \$(grep -c 'e2: recovery look of' '$L') -gt $n0 ]"
check "/ctlout/reload/fixed-look-over" wait_for 30 is "$C" e2 operation null

# --- the token is gone (exit 10) ------------------------------------------------------
# Either the renewal's step runs and fails at the token (its output is
# what the step run by hand prints), or the agent's look at the token after
# the last failure comes first and finds it gone: then the client is told
# which token.  Which one depends on when the look ran: each is exact.
serial=$(token_serial co2)
delete_token co2
by_agent e2
by_hand e2
check "/ctlout/renew/absent/agent-exit-10" test "$(cat "$TMP/agent.rc")" = 10
check "/ctlout/renew/absent/hand-exit-10" test "$(cat "$TMP/hand.rc")" = 10
# (the token as the agent saw it last, or, when it has not seen it since
# its last reload, as the configuration names it)
echo "p11enroll: error: e2: not renewed: the token is not present (token 'co2' (serial $serial)): insert it and ask again" > "$TMP/want"
echo "p11enroll: error: e2: not renewed: the token is not present (token pkcs11:token=co2): insert it and ask again" > "$TMP/want2"
norm "$TMP/hand.err" > "$TMP/hand.n"
norm "$TMP/agent.err" > "$TMP/agent.n"
if cmp -s "$TMP/want" "$TMP/agent.err" || cmp -s "$TMP/want2" "$TMP/agent.err"; then
	ok "/ctlout/renew/absent/agent-says-which # the look came first"
else
	check "/ctlout/renew/absent/agent-says-which" same "$TMP/hand.err" "$TMP/agent.err"
fi
check "/ctlout/renew/absent/agent-no-stdout" test ! -s "$TMP/agent.out"
check "/ctlout/renew/absent/hand-says-which" grep -q "selecting token 'pkcs11:token=co2' failed: no token matches: tokens present: 'co1'" "$TMP/hand.err"

# --- replies that are cut short or not the agent's: clear errors --------------------
# fake_agent BYTES: a one-shot server on the control socket of $F that
# reads the request line and answers BYTES (printf escapes).
F="$TMP/fake.conf"
sed "s|^control_socket = .*|control_socket = $TMP/fake.sock|" "$C" > "$F"
fake_agent() {
	rm -f "$TMP/fake.sock" "$TMP/fake.ready"
	python3 - "$TMP/fake.sock" "$1" "$TMP/fake.ready" << 'EOF' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1])
s.listen(1)
open(sys.argv[3], "w").close()
s.settimeout(60)
c, _ = s.accept()
c.recv(1024)
c.sendall(sys.argv[2].encode().decode("unicode_escape").encode("latin-1"))
c.close()
EOF
	HELPERS="$HELPERS $!"
	wait_for 20 test -e "$TMP/fake.ready"
}
fake_agent 'p11enroll-reply 1\nmsg 100\ncut here'
pe "$F" status
check "/ctlout/reply/cut-exit-5" expect_rc 5
# what came of the message, then why it is not all
{
	echo "p11enroll: error: cut here"
	echo "p11enroll: error: the agent's answer on $TMP/fake.sock is incomplete: cut short within a frame (after 34 bytes); its log says whether it stopped and what it did"
} > "$TMP/want"
check "/ctlout/reply/cut-message" same "$TMP/want" "$TMP/err"
fake_agent 'an old agent says this\nexit 0\n'
pe "$F" status
check "/ctlout/reply/foreign-exit-1" expect_rc 1
echo "p11enroll: error: the agent's answer on $TMP/fake.sock is malformed: not an answer of p11enroll's agent (after 30 bytes); restart the agent, so that it is of this version" > "$TMP/want"
check "/ctlout/reply/foreign-message" same "$TMP/want" "$TMP/err"
fake_agent 'p11enroll-reply 1\nout 3\nabcexit 300\n'
pe "$F" status
check "/ctlout/reply/bad-exit-1" expect_rc 1
check "/ctlout/reply/bad-out-passed" test "$(cat "$TMP/out")" = abc
check "/ctlout/reply/bad-message" grep -q -F "is malformed: an exit line without a status of 0 to 255" "$TMP/err"
fake_agent 'p11enroll-reply 1\nerr 6\nwhole\nmsg 5\nsaid\nexit 4\n'
pe "$F" status
check "/ctlout/reply/framed-exit-4" expect_rc 4
printf 'whole\np11enroll: error: said\n' > "$TMP/want"
check "/ctlout/reply/framed-stderr" same "$TMP/want" "$TMP/err"
finish
