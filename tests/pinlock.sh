#!/bin/sh
# /pinlock: a login the module answers with CKR_PIN_LOCKED (tests/p11wrap
# on SoftHSM2, the logic without a TPM; tests/tpmpin.sh has the real TPM):
# the command says the PIN is locked and how the agent tries again; the
# agent latches the enrollment and every enrollment of the same module and
# token (state pin-locked, across a restart), tries no login for any of
# them, not even when the PIN file changes, until `p11enroll clear NAME`
# lifts the latch of all of them at once.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
. "$top_srcdir/tests/agent-lib.sh"
need_tools
need_cmd python3
use_p11wrap
setup
plan 32
trap 'kill_agents; cleanup' EXIT
trap 'exit 1' HUP PIPE
start_ca || exit 1

# settled CONF: two status round trips: the agent has made its decisions
# after everything the test did before (as in tests/agent.sh).
settled() {
	"$P11ENROLL" -c "$1" status > /dev/null 2>&1 && "$P11ENROLL" -c "$1" status > /dev/null 2>&1
}

make_token lk || exit 1
make_token lk2 || exit 1

# Three enrollments: test and second on token lk through p11wrap, other on
# token lk2 through p11wrap too (the same module, another token).
C="$TMP/lock.conf"
write_conf lk
sed -e "s|^state_dir = .*|state_dir = $TMP/state-lock|" -e "s|^module = .*|module = $P11WRAP|" \
	"$TMP/p11enroll.conf" > "$C"
cat >> "$C" << EOF

[second]
token = pkcs11:token=lk
pin_source = file:$TMP/pin
label = second-key
subject = /CN=second/O=Example

[other]
token = pkcs11:token=lk2
pin_source = file:$TMP/pin
label = other-key
subject = /CN=other/O=Example
EOF
for n in test second other; do
	pe "$C" enroll "$n"
	[ "$RC" = 0 ] || { echo "# enroll $n: exit $RC"; show "$TMP/err"; }
done
check "/pinlock/setup-enrolled" expect_rc 0

# The command alone: exit 4, one login, and what to do.
W="$TMP/wrap.log"
: > "$W"
P11WRAP_LOG="$W" P11WRAP_FAIL=C_Login=CKR_PIN_LOCKED pe "$C" renew --local test
check "/pinlock/cli/exit-4" expect_rc 4
check "/pinlock/cli/one-login" test "$(logins "$W")" -eq 1
check "/pinlock/cli/says-locked" grep_err 'CKR_PIN_LOCKED: the PIN is locked'
check "/pinlock/cli/says-clear" grep_err 'p11enroll clear test'
check "/pinlock/cli/not-tpm" sh -c "! grep -q 'dictionary-attack' '$TMP/err'"

# The agent: every login fails while $TMP/once exists, in the one process
# that meets it first (P11WRAP_ONCE); none before.
L="$TMP/agent.log"
: > "$W"
agent_start "$C" "$L" P11WRAP_LOG="$W" P11WRAP_FAIL=C_Login=CKR_PIN_LOCKED \
	P11WRAP_ONCE="$TMP/once" || exit 1
A=$APID
for n in test second other; do
	wait_for 20 is "$C" "$n" state valid || echo "# $n is $(jget "$C" "$n" state)"
done
check "/pinlock/agent/valid" is "$C" second state valid
l0=$(logins "$W")
: > "$TMP/once"
pe "$C" renew test
check "/pinlock/agent/renew-exit-4" expect_rc 4
check "/pinlock/agent/renew-says-clear" grep -q 'p11enroll clear test' "$TMP/out" "$TMP/err"
check "/pinlock/agent/one-login" test "$(logins "$W")" -eq $((l0 + 1))
check "/pinlock/agent/locked" is "$C" test state pin-locked
check "/pinlock/agent/same-token-locked" is "$C" second state pin-locked
check "/pinlock/agent/other-token-not" is "$C" other state valid
check "/pinlock/agent/says-whose" grep -q 'second: the PIN is locked (the token.s PIN lockout, met by test)' "$L"
check "/pinlock/agent/no-next-attempt" is "$C" second next_attempt null
# nothing tries a login now: a renewal asked for, a PIN file rewritten
l1=$(logins "$W")
pe "$C" renew second
check "/pinlock/agent/covered-renew-exit-4" expect_rc 4
check "/pinlock/agent/covered-renew-says" grep -q 'met by\|a step of test met' "$TMP/out" "$TMP/err"
printf '%s\n' "$USER_PIN" > "$TMP/pin.new" && mv "$TMP/pin.new" "$TMP/pin"
settled "$C"
settled "$C"
check "/pinlock/agent/pin-change-no-login" test "$(logins "$W")" -eq "$l1"
check "/pinlock/agent/pin-change-still-locked" is "$C" test state pin-locked
agent_stop "$A"
check "/pinlock/agent/saved" grep -q '^pin_locked token$' "$TMP/state-lock/second.agent"

# A restart: still latched, no login.
agent_start "$C" "$L" P11WRAP_LOG="$W" || exit 1
A=$APID
settled "$C"
check "/pinlock/restart/locked" is "$C" test state pin-locked
check "/pinlock/restart/covered-locked" is "$C" second state pin-locked
check "/pinlock/restart/says" grep -q 'the PIN was locked before the restart' "$L"
# other's own first look logs in to lk2, once
wait_for 20 is "$C" other state valid
settled "$C"
check "/pinlock/restart/no-login" test "$(logins "$W")" -eq $((l1 + 1))
l1=$(logins "$W")

# clear one of them (the agent's own user): both try again, one login for
# the pass over both.
pe "$C" clear second
check "/pinlock/clear/exit-0" expect_rc 0
check "/pinlock/clear/valid" wait_for 20 is "$C" test state valid
check "/pinlock/clear/covered-valid" wait_for 20 is "$C" second state valid
check "/pinlock/clear/says" grep -q 'test: PIN lockout latch cleared with second.s' "$L"
check "/pinlock/clear/logins" test "$(logins "$W")" -ge $((l1 + 1))
pe "$C" renew test
check "/pinlock/clear/renew-exit-0" expect_rc 0
agent_stop "$A"
check "/pinlock/clear/sigterm-exit-0" test "$ARC" = 0
check "/pinlock/clear/state-file" sh -c "! grep -q '^pin_locked' '$TMP/state-lock/test.agent'"
