#!/bin/sh
# /reloadloop: reloads of an agent whose enrollments are on several tokens
# of one SoftHSM2 store, while another process logs in to a token of that
# store again and again (each C_Login rewrites the token's file).  Every
# reload starts a look at each token at once.  SoftHSM2 reads a token file
# caught mid-write as broken and may keep answering CKR_GENERAL_ERROR for
# that token until it is initialized again: the first look after a reload
# then said "a token does not answer" (2 reloads in 5 on a busy machine)
# and recovered only at the next try.  That is rare here, so each reload
# also has one of its looks meet such a module for sure (tests/p11wrap:
# P11WRAP_FIRST_INIT, P11WRAP_ONCE armed before it).  Each look after each
# reload must succeed, and the agent never says a token does not answer.
# Every wait is for a log line, bounded by a hang guard; nothing measures
# time.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
. "$top_srcdir/tests/agent-lib.sh"
need_tools
use_p11wrap
setup
RELOADS=20
N=3
plan $((RELOADS * 4 + 4))
trap 'kill_agents; cleanup' EXIT
trap 'exit 1' HUP PIPE

# done_looks LOG: how many looks the agent saw end, well or not.
done_looks() {
	in_log "$1" ': certificate [0-9A-F]* \(.*\) is not due for renewal|looking at the token failed|the recover step'
}

start_ca --validity-seconds 200000 || exit 1
C="$TMP/reload.conf"
L="$TMP/agent.log"
: > "$TMP/sections"
i=1
while [ $i -le $N ]; do
	make_token "rl$i" || exit 1
	write_conf "rl$i"
	sed -n '/^\[test\]/,$p' "$TMP/p11enroll.conf" | sed "s/^\[test\]/[e$i]/" >> "$TMP/sections"
	i=$((i + 1))
done
make_token writer || exit 1
{
	echo "control_socket = $TMP/control"
	conf_defaults | sed "s|^module = .*|module = $P11WRAP|"
	cat "$TMP/sections"
} > "$C"
ok=1
i=1
while [ $i -le $N ]; do
	pe "$C" enroll "e$i"
	[ "$RC" = 0 ] || { ok=0; sed 's/^/# /' "$TMP/err"; }
	i=$((i + 1))
done
check "/reloadloop/setup-enrolled" test $ok = 1

# the other process: logins on the writer token, until the test ends
(
	while :; do
		"$PKCS11_TOOL" --module "$SOFTHSM2_MODULE" --token-label writer --login \
			--pin "$USER_PIN" -O > /dev/null 2>&1
	done
) &
HELPERS="$HELPERS $!"

# libp11 0.4.12 leaks a slot when C_GetTokenInfo fails (tests/tokfail.sh)
check "/reloadloop/setup-agent" agent_start "$C" "$L" P11WRAP_FIRST_INIT=1 \
	P11WRAP_FAIL=C_GetTokenInfo=CKR_GENERAL_ERROR P11WRAP_ONCE="$TMP/once" \
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
check "/reloadloop/setup-first-looks" wait_for 30 sh -c "[ \$(grep -c -E ': certificate [0-9A-F]* \(.*\) is not due|looking at the token failed|the recover step' '$L') -ge $N ]"

r=1
while [ $r -le $RELOADS ]; do
	before=$(done_looks "$L")
	failed_before=$(in_log "$L" 'looking at the token failed|does not answer|step died')
	: > "$TMP/once"
	pe "$C" reload
	check "/reloadloop/$r/reload-exit-0" expect_rc 0
	# the looks the reload started, all ended
	check "/reloadloop/$r/looks-ended" wait_for 30 sh -c "[ \$(grep -c -E ': certificate [0-9A-F]* \(.*\) is not due|looking at the token failed|the recover step' '$L') -ge $((before + N)) ]"
	check "/reloadloop/$r/every-look-succeeded" \
		test "$(in_log "$L" 'looking at the token failed|does not answer|step died')" = "$failed_before"
	check "/reloadloop/$r/a-look-met-the-fault" test ! -e "$TMP/once"
	r=$((r + 1))
done
check "/reloadloop/never-does-not-answer" test "$(in_log "$L" 'does not answer')" = 0
if [ "$TEST_FAILED" != 0 ]; then
	grep -E 'failed|answer|died|error' "$L" | head -20 | sed 's/^/#   /'
fi
finish
