#!/bin/sh
# /agentpass: the agent looks at the enrollments of a token in one pass: at
# start-up one child (`check --recover NAME...`), one module load, one
# login, one result record per enrollment; a pass killed half-way leaves
# the enrollments it finished with their records, and the others are
# looked at again after their backoff.  The pass's rules are tests of
# agent/fsm.c (test-fsm.c /fsm/pass/), its records of agent/result.c.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
. "$top_srcdir/tests/agent-lib.sh"
need_tools
need_cmd python3
use_p11wrap
setup
N=6
plan 16
trap 'kill_agents; cleanup' EXIT
trap 'exit 1' HUP PIPE

# states CONF: "STATE FAILURES" of every enrollment, one line each
states() {
	"$P11ENROLL" -c "$1" status --json 2> /dev/null | python3 -c '
import json, sys
for e in json.load(sys.stdin)["enrollments"]:
    print(e["state"], e["consecutive_failures"], e["next_attempt"] is not None)'
}

# all_valid CONF: every enrollment valid, without failures, with a next time
all_valid() {
	_av=$(states "$1") || return 1
	[ "$(printf '%s\n' "$_av" | grep -c -x 'valid 0 True')" -eq "$N" ]
}

make_token ag-pass || exit 1
start_ca --validity-seconds 200000 || exit 1
C="$TMP/pass.conf"
{
	conf_defaults
	echo "retry_min = 1s"
	echo
	i=1
	while [ $i -le $N ]; do
		printf '%s\n' "[e$i]" "token = pkcs11:token=ag-pass" "pin_source = file:$TMP/pin" \
			"label = key-$i" "subject = /CN=pass $i/O=Example" ""
		i=$((i + 1))
	done
} > "$C"
sed -i "s|^module = .*|module = $P11WRAP|" "$C"
enrolled=0
i=1
while [ $i -le $N ]; do
	pe "$C" enroll "e$i"
	[ "$RC" = 0 ] && enrolled=$((enrolled + 1))
	i=$((i + 1))
done
check "/agentpass/setup-enrolled" test "$enrolled" -eq "$N"

# --- start-up: one pass --------------------------------------------------------
W="$TMP/wrap.log"
L="$TMP/agent.log"
agent_start "$C" "$L" P11WRAP_LOG="$W" || exit 1
A=$APID
check "/agentpass/start/all-valid" wait_for 30 all_valid "$C"
check "/agentpass/start/first-look-logged" \
	test "$(in_log "$L" "every enrollment has had its first look: $N in ")" -eq 1
check "/agentpass/start/one-child" \
	test "$(in_log "$L" ": recovery look of [0-9]+ enrollment")" -eq 1
check "/agentpass/start/one-child-for-all" \
	test "$(in_log "$L" "e1: recovery look of $N enrollment\(s\) on its token")" -eq 1
# (libp11 initializes a second time and gets CKR_CRYPTOKI_ALREADY_INITIALIZED)
check "/agentpass/start/one-initialize" test "$(in_log "$W" '^C_Initialize rv=CKR_OK')" -eq 1
check "/agentpass/start/one-login" test "$(logins "$W")" -eq 1
# the pass's lines carry the enrollment they are about
check "/agentpass/start/no-recovery-needed" test "$(in_log "$L" 'error')" -eq 0
agent_stop "$A"
check "/agentpass/start/sigterm-exit-0" test "$ARC" = 0

# --- a pass killed half-way -----------------------------------------------------
# Each enrollment gets the mark of a run killed after its key generation: a
# pair labelled "key-I (new)" without a certificate, which recovery deletes
# (two C_DestroyObject each).  The pass is killed at the first deletion of
# the enrollment after the first half: those have their records; the retry
# looks at fewer enrollments and stays below the count (p11wrap counts per
# process).
SLOT=$(token_slot ag-pass) || exit 1
BASE=$(count_objects ag-pass)
i=1
while [ $i -le $N ]; do
	"$PKCS11_TOOL" --module "$SOFTHSM2_MODULE" --slot "$SLOT" --login --pin "$USER_PIN" \
		--keypairgen --key-type EC:prime256v1 --id "ff0$i" --label "key-$i (new)" \
		> /dev/null 2>&1 || echo "# pkcs11-tool could not make the mark of e$i"
	i=$((i + 1))
done
K=$((2 * (N / 2) + 1))
W2="$TMP/wrap-kill.log"
L2="$TMP/agent-kill.log"
agent_start "$C" "$L2" P11WRAP_LOG="$W2" P11WRAP_KILL="C_DestroyObject:before:$K" || exit 1
A=$APID
killed() {
	[ "$(in_log "$W2" '^KILL C_DestroyObject')" -ge 1 ]
}
check "/agentpass/kill/killed" wait_for 30 killed
check "/agentpass/kill/all-valid-again" wait_for 60 all_valid "$C"
U=$(in_log "$L2" 'attempt 1 failed .*the recover step died \(signal 9\)')
echo "# $U of $N enrollments without a record after the kill"
sed 's/^/#   /' "$L2" | grep -E 'failed|died|recovery look|first look' | head -20
check "/agentpass/kill/some-kept-their-records" test "$U" -ge 1 -a "$U" -lt "$N"
check "/agentpass/kill/unfinished-retried" \
	test "$(in_log "$L2" "recovery look of $U enrollment\(s\) on its token")" -eq 1
check "/agentpass/kill/two-logins" test "$(logins "$W2")" -eq 2
check "/agentpass/kill/marks-gone" test "$(count_objects ag-pass)" -eq "$BASE"
agent_stop "$A"
check "/agentpass/kill/sigterm-exit-0" test "$ARC" = 0
