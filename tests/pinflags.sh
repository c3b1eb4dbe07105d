#!/bin/sh
# /pinflags: the token's PIN-state flags are obeyed before any login, and a
# token call that fails (through tests/p11wrap) ends in a clear message, the
# right exit code and no key left behind.  Each case gets its own token.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
WRAP="$top_builddir/tests/p11wrap/p11wrap.so"
[ -f "$WRAP" ] || skip "tests/p11wrap/p11wrap.so not built"
setup
start_ca || exit 1

# wrapped NAME [VAR=VALUE...]: enrolls on a fresh token NAME through p11wrap
# with the given P11WRAP_* settings; RC, $TMP/out, $TMP/err as p11e, and
# $LOG lists the PKCS#11 calls.
wrapped() {
	name=$1
	shift
	make_token "$name" || return 1
	write_conf "$name"
	sed -i "s|^module = .*|module = $WRAP|" "$TMP/p11enroll.conf"
	LOG="$TMP/$name.p11log"
	: > "$LOG"
	env P11WRAP_MODULE="$SOFTHSM2_MODULE" P11WRAP_LOG="$LOG" "$@" \
		"$P11ENROLL" -c "$TMP/p11enroll.conf" enroll test > "$TMP/out" 2> "$TMP/err"
	RC=$?
	return 0
}

# calls FN: how many times FN was called in the last wrapped run.
calls() {
	grep -c "^$1 " "$LOG"
}

# expect_calls FN N
expect_calls() {
	n=$(calls "$1")
	[ "$n" -eq "$2" ] || { echo "# $1 called $n times, expected $2"; return 1; }
}

# The common ending of a case: nothing on the token, no secret printed.
nothing_left() {
	check "/pinflags/$1/token-empty" test "$(count_objects "$1")" -eq 0
	check "/pinflags/$1/no-secret-in-output" no_secret_in "$TMP/out" "$TMP/err" "$LOG"
}

# Flags that forbid a login: refused before C_Login, nothing generated.
wrapped locked P11WRAP_TOKEN_FLAGS=0x40000
check "/pinflags/locked/exit-4" expect_rc 4
check "/pinflags/locked/message" grep_err 'locked'
check "/pinflags/locked/what-to-do" grep_err 'unblock|SO PIN|init-pin'
check "/pinflags/locked/no-login" expect_calls C_Login 0
check "/pinflags/locked/no-keygen" expect_calls C_GenerateKeyPair 0
nothing_left locked

wrapped final-try P11WRAP_TOKEN_FLAGS=0x20000
check "/pinflags/final-try/exit-4" expect_rc 4
check "/pinflags/final-try/message" grep_err 'would lock|final'
check "/pinflags/final-try/no-login" expect_calls C_Login 0
check "/pinflags/final-try/no-keygen" expect_calls C_GenerateKeyPair 0
nothing_left final-try

wrapped to-be-changed P11WRAP_TOKEN_FLAGS=0x80000
check "/pinflags/to-be-changed/exit-4" expect_rc 4
check "/pinflags/to-be-changed/message" grep_err 'must be changed|change'
check "/pinflags/to-be-changed/no-login" expect_calls C_Login 0
check "/pinflags/to-be-changed/no-keygen" expect_calls C_GenerateKeyPair 0
nothing_left to-be-changed

# Count low: a warning, then one login, and the enrollment goes through.
wrapped count-low P11WRAP_TOKEN_FLAGS=0x10000
check "/pinflags/count-low/exit-0" expect_rc 0
check "/pinflags/count-low/warning" grep_err 'wrong user PIN|PIN count|count low'
check "/pinflags/count-low/one-login" expect_calls C_Login 1
check "/pinflags/count-low/one-keygen" expect_calls C_GenerateKeyPair 1
check "/pinflags/count-low/stored" \
	test "$(objects count-low cert | grep -c 'label: *enrolled-key')" -eq 1
check "/pinflags/count-low/no-secret-in-output" no_secret_in "$TMP/out" "$TMP/err" "$LOG"

# The token locks the PIN at login: tried once, never again.
wrapped login-locked P11WRAP_FAIL=C_Login=CKR_PIN_LOCKED
check "/pinflags/login-locked/exit-4" expect_rc 4
check "/pinflags/login-locked/ckr-name" grep_err 'CKR_PIN_LOCKED'
check "/pinflags/login-locked/one-login" expect_calls C_Login 1
check "/pinflags/login-locked/no-keygen" expect_calls C_GenerateKeyPair 0
nothing_left login-locked

# Key generation fails on the token.
wrapped keygen-memory P11WRAP_FAIL=C_GenerateKeyPair=CKR_DEVICE_MEMORY
check "/pinflags/keygen-memory/exit-3" expect_rc 3
check "/pinflags/keygen-memory/ckr-name" grep_err 'CKR_DEVICE_MEMORY'
check "/pinflags/keygen-memory/one-keygen" expect_calls C_GenerateKeyPair 1
nothing_left keygen-memory

# The POP signature fails: the key made for this request goes.
wrapped sign-removed P11WRAP_FAIL=C_Sign=CKR_DEVICE_REMOVED
check "/pinflags/sign-removed/exit-3" expect_rc 3
check "/pinflags/sign-removed/message" grep_err 'could not sign'
check "/pinflags/sign-removed/sign-tried" test "$(calls C_Sign)" -ge 1
check "/pinflags/sign-removed/no-cert-stored" expect_calls C_CreateObject 0
nothing_left sign-removed

# The CA issued the certificate, the token cannot store it: it is rejected
# in the certConf (never confirmed to the CA) and the key pair goes.
: > "$TMP/ca.log"
wrapped store-error P11WRAP_FAIL=C_CreateObject=CKR_DEVICE_ERROR
check "/pinflags/store-error/exit-3" expect_rc 3
check "/pinflags/store-error/message" grep_err 'could not be kept: storing it on the token failed'
check "/pinflags/store-error/rejected-in-certconf" grep -q 'certConf: the client rejected' "$TMP/ca.log"
check "/pinflags/store-error/not-confirmed" sh -c "! grep -q 'certConf accepted' '$TMP/ca.log'"
check "/pinflags/store-error/ckr-name" grep_err 'CKR_DEVICE_ERROR'
check "/pinflags/store-error/keys-destroyed" test "$(calls C_DestroyObject)" -ge 2
nothing_left store-error
finish
