# Shared by the tests that run `p11enroll agent` (tests/agent.sh,
# tests/ctl.sh, tests/canary.sh): agents in the background that never
# outlive the test, p11enroll runs under a hang guard, status --json fields.
# Sourced after tests/lib.sh; defines functions and variables only.

# use_p11wrap: tests/p11wrap/p11wrap.so in P11WRAP (skips the test without
# it), forwarding to SoftHSM2; none of its variables, nor the test clock's,
# come from the caller's environment.
use_p11wrap() {
	P11WRAP="$top_builddir/tests/p11wrap/p11wrap.so"
	need_file "$P11WRAP"
	# every module = p11wrap.so forwards to SoftHSM2
	P11WRAP_MODULE=$SOFTHSM2_MODULE
	export P11WRAP_MODULE
	unset P11ENROLL_TEST_CLOCK_RATE P11WRAP_LOG P11WRAP_FAIL P11WRAP_KILL
}

# The agents (pids in AGENTS) and helper processes (HELPERS) of a test
# never outlive it: kill_agents, from its EXIT trap, kills the helpers and
# sends the agents SIGTERM, then SIGKILL.
AGENTS=
HELPERS=
kill_agents() {
	for p in $HELPERS; do kill "$p" 2> /dev/null; done
	for p in $AGENTS; do kill -TERM "$p" 2> /dev/null; done
	for p in $AGENTS; do
		wait_for 10 gone "$p" || kill -KILL "$p" 2> /dev/null
		wait "$p" 2> /dev/null
	done
	AGENTS=
}

# a hang guard only, never a timing threshold
if command -v timeout > /dev/null 2>&1; then GUARD="timeout -s KILL $((120 * P11E_SCALE))"; else GUARD=; fi

# pe CONF ARGS...: p11enroll with that configuration; RC, $TMP/out, $TMP/err.
pe() {
	_pe_conf=$1
	shift
	$GUARD "$P11ENROLL" -c "$_pe_conf" "$@" > "$TMP/out" 2> "$TMP/err"
	RC=$?
	return 0
}

# agent_start CONF LOG [VAR=VALUE...]: an agent in the background with those
# variables in its environment; APID is its pid.  Returns once it answers.
agent_start() {
	_as_conf=$1 _as_log=$2
	shift 2
	env "$@" "$P11ENROLL" -c "$_as_conf" -v agent >> "$_as_log" 2>&1 &
	APID=$!
	AGENTS="$AGENTS $APID"
	wait_for 20 "$P11ENROLL" -c "$_as_conf" status > /dev/null 2>&1 ||
		{ echo "# the agent did not answer:"; sed 's/^/#   /' "$_as_log"; return 1; }
}

# agent_stop PID: SIGTERM and its exit code in ARC (137 when it had to be killed).
agent_stop() {
	kill -TERM "$1" 2> /dev/null
	if wait_for 30 gone "$1"; then
		wait "$1"
		ARC=$?
	else
		kill -KILL "$1" 2> /dev/null
		wait "$1" 2> /dev/null
		ARC=137
	fi
	AGENTS=$(echo "$AGENTS" | tr ' ' '\n' | grep -v -x "$1" | tr '\n' ' ')
}

# jget CONF NAME FIELD: one field of one enrollment from status --json
# (null, true, false as in JSON); fails when there is no such enrollment.
jget() {
	"$P11ENROLL" -c "$1" status --json 2> /dev/null | python3 -c '
import json, sys
for e in json.load(sys.stdin)["enrollments"]:
    if e["name"] == sys.argv[1]:
        v = e[sys.argv[2]]
        print("null" if v is None else ("true" if v else "false") if isinstance(v, bool) else v)
        sys.exit(0)
sys.exit(1)' "$2" "$3"
}

# is CONF NAME FIELD VALUE
is() {
	[ "$(jget "$1" "$2" "$3")" = "$4" ]
}

# in_log FILE EXTENDED_REGEX: lines of FILE matching it (0 when none).
in_log() {
	grep -c -E "$2" "$1" 2> /dev/null || true
}

# logins FILE: C_Login calls p11wrap logged in FILE.
logins() {
	in_log "$1" '^C_Login '
}
