#!/bin/sh
# /tpmagent: the agent on a TPM token (tpm2-pkcs11 on swtpm behind
# tpm2-abrmd, tests/tpm-lib.sh).  The module's TCTI and key store reach it
# only through the agent's environment: an agent started without them
# cannot load the module, one started with them renews a short-lived
# certificate twice on its own (kur signed by the TPM key).  Then swtpm
# and abrmd restart: the store and the TPM's state persist, so the key and
# certificate are still there and the agent renews again.  Every wait is
# for an event (a count in the CA's log, a state), bounded by a hang guard
# scaled by P11ENROLL_TEST_SCALE; nothing is timed.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
. "$top_srcdir/tests/agent-lib.sh"
. "$top_srcdir/tests/tpm-lib.sh"
need_tools
need_tpm_tools
need_cmd python3
setup
# tpm2-pkcs11 leaks under LeakSanitizer: tests/tpm-lsan.supp says where (as
# in tests/tpm.sh); p11enroll's own leaks are still reported.
LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$top_srcdir/tests/tpm-lsan.supp"
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0"
export LSAN_OPTIONS ASAN_OPTIONS
plan 18
trap 'kill_agents; cleanup' EXIT
trap 'exit 1' HUP PIPE

tpm_start || bail_out "cannot start swtpm, D-Bus and tpm2-abrmd"
tpm_token tpmagent || bail_out "cannot make the TPM token"
# What the module reads, kept for the processes that should have it and
# removed from this shell: nothing reaches the module but what a test gives.
TPMENV="TPM2_PKCS11_TCTI=$TPM2_PKCS11_TCTI TPM2_PKCS11_STORE=$TPM2_PKCS11_STORE"
TPMENV="$TPMENV DBUS_SESSION_BUS_ADDRESS=$DBUS_SESSION_BUS_ADDRESS TSS2_LOG=all+NONE"
TPMENV="$TPMENV TPM2_PKCS11_LOG_LEVEL=0"
unset TPM2_PKCS11_TCTI TPM2_PKCS11_STORE

# tpe CONF ARGS...: p11enroll with the module's environment; RC, $TMP/out, $TMP/err.
tpe() {
	_tpe_conf=$1
	shift
	# shellcheck disable=SC2086
	$GUARD env $TPMENV "$P11ENROLL" -c "$_tpe_conf" "$@" > "$TMP/out" 2> "$TMP/err"
	RC=$?
	return 0
}

# token_field CONF NAME: a key=value line of `p11enroll check`, from the token.
token_field() {
	tpe "$1" check test && sed -n "s/^$2=//p" "$TMP/out"
}

# at_least CONF FIELD N: the status field of enrollment test is >= N.
at_least() {
	_al=$(jget "$1" test "$2") && [ -n "$_al" ] && [ "$_al" -ge "$3" ]
}

# kurs: the key updates the CA accepted so far.
kurs() {
	in_log "$TMP/ca.log" 'kur -> kup accepted'
}
kurs_at_least() {
	[ "$(kurs)" -ge "$1" ]
}

# newest: the serial of the CA's last certificate.
newest() {
	sed -n 's/.*issued serial \([0-9A-F]*\) .*/\1/p' "$TMP/ca.log" | tail -n 1
}
token_has_newest() {
	[ "$(token_field "$TMP/tpm.conf" cert_serial)" = "$(newest)" ]
}

# mkconf FILE STATE_DIR: the TPM token's enrollment, its own state directory.
mkconf() {
	write_conf tpmagent
	sed "s|^state_dir = .*|state_dir = $2|; s|^module = .*|module = $TPM2_PKCS11_MODULE|" \
		"$TMP/p11enroll.conf" > "$1"
}

# A certificate of 30 s: renewed at 66% of it, some every 20 s; long enough
# to outlive the restart below unrenewed.  Under a
# checker every p11enroll call takes seconds: it lives longer there.
LIFE=$((30 + 10 * (P11E_SCALE - 1)))
start_ca --validity-seconds $LIFE || exit 1
mkconf "$TMP/tpm.conf" "$TMP/state"
tpe "$TMP/tpm.conf" enroll test
check "/tpmagent/enroll" expect_rc 0
KEY0=$(token_field "$TMP/tpm.conf" key_id)
check "/tpmagent/enrolled-key-on-token" test -n "$KEY0"

# Without the module's environment the agent's look cannot load it.  The
# module's failed C_Initialize leaks, and it is unloaded before
# LeakSanitizer reports, so no suppression can name it: no leak check there.
mkconf "$TMP/noenv.conf" "$TMP/state-noenv"
agent_start "$TMP/noenv.conf" "$TMP/agent-noenv.log" HOME="$TMP/nohome" \
	ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0" || exit 1
A0=$APID
check "/tpmagent/no-env/backoff" wait_for 30 is "$TMP/noenv.conf" test state backoff
check "/tpmagent/no-env/module-not-loaded" grep -q 'PKCS#11 module could not be loaded' \
	"$TMP/agent-noenv.log"
agent_stop "$A0"

# With it (and only in the agent's environment), two renewals on its own.
# shellcheck disable=SC2086
agent_start "$TMP/tpm.conf" "$TMP/agent.log" $TPMENV || exit 1
A1=$APID
check "/tpmagent/starts-valid" wait_for 30 is "$TMP/tpm.conf" test state valid
check "/tpmagent/renewed-twice" wait_for 150 at_least "$TMP/tpm.conf" renewals 2
check "/tpmagent/kur-twice" test "$(kurs)" -ge 2
check "/tpmagent/kur-signed-with-old-cert" \
	test "$(in_log "$TMP/ca.log" 'kur: oldCertID matches')" -ge 2
agent_stop "$A1"
check "/tpmagent/stopped" test "$ARC" = 0
check "/tpmagent/token-has-newest" token_has_newest
KEY1=$(token_field "$TMP/tpm.conf" key_id)
check "/tpmagent/new-key" test -n "$KEY1" -a "$KEY1" != "$KEY0"
SERIAL1=$(token_field "$TMP/tpm.conf" cert_serial)

# swtpm and tpm2-abrmd restart; the store and the TPM's state persist.
# The bus and the store stay where they were: TPMENV holds.
tpm_restart || bail_out "cannot restart swtpm and tpm2-abrmd"
check "/tpmagent/restart/same-key" test "$(token_field "$TMP/tpm.conf" key_id)" = "$KEY1"
check "/tpmagent/restart/same-certificate" \
	test "$(token_field "$TMP/tpm.conf" cert_serial)" = "$SERIAL1"
# the key still signs: renewal goes on, a kur signed by it
KURS=$(kurs)
# shellcheck disable=SC2086
agent_start "$TMP/tpm.conf" "$TMP/agent2.log" $TPMENV || exit 1
A2=$APID
check "/tpmagent/restart/renewed" wait_for 150 kurs_at_least $((KURS + 1))
check "/tpmagent/restart/valid" wait_for 30 is "$TMP/tpm.conf" test state valid
agent_stop "$A2"
check "/tpmagent/restart/stopped" test "$ARC" = 0
check "/tpmagent/restart/token-has-newest" token_has_newest
check "/tpmagent/restart/new-key" test "$(token_field "$TMP/tpm.conf" key_id)" != "$KEY1"
finish
