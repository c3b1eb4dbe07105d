#!/bin/sh
# /lock: one process per label on a token (agent/lock.c).  A renew holds the
# lock of its label and token while the CA keeps its kur unanswered
# (--hang-on kur); the CA log line "hang: kur received" shows it holds it
# (the lock is taken as soon as the token is found, before the login; the
# kur is sent after the new key exists).  Meanwhile a second renew and a
# `check --recover` exit 11 (busy), name the holder's process and only read
# which token it is (their p11wrap call logs show no login, no object
# touched); `list`, which changes nothing, still runs.  When the CA goes away
# the first renew fails (exit 5) and removes its new pair; the lock is free
# again and a renew succeeds.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
WRAP="$top_builddir/tests/p11wrap/p11wrap.so"
need_file "$WRAP"
setup
plan 22
export P11WRAP_MODULE="$SOFTHSM2_MODULE"
TOK=lock
LABEL=enrolled-key

# conf: the [test] enrollment through p11wrap, at the CA now running.  The
# timeouts are hang guards only: the first renew must outlast every step
# taken while it holds the lock, however slow the machine.
conf() {
	write_conf "$TOK" "timeout = $(scaled 300)
total_timeout = $(scaled 600)"
	sed -i "s|^module = .*|module = $WRAP|" "$TMP/p11enroll.conf"
}

# wrapped LOG ARGS...: p11enroll through p11wrap, calls logged to LOG.
wrapped() {
	_log=$1
	shift
	: > "$_log"
	env P11WRAP_LOG="$_log" "$P11ENROLL" -c "$TMP/p11enroll.conf" "$@" \
		> "$TMP/out" 2> "$TMP/err"
	RC=$?
}

snapshot() {
	objects "$TOK" | sort > "$1"
}

# no_calls LOG: the run only found the token (the lock is by token): no
# login, no object read or changed.
no_calls() {
	if grep -E '^C_(Login|Find|GetAttributeValue|Generate|Create|Destroy|Set|Sign|Copy)' \
		"$1" > "$TMP/bad-calls"; then
		sed 's/^/# call: /' "$TMP/bad-calls"
		return 1
	fi
	grep -q '^C_GetTokenInfo' "$1" || { echo "# no C_GetTokenInfo in $1"; return 1; }
}

make_token "$TOK" || exit 1
start_ca || exit 1
conf
wrapped "$TMP/setup.p11log" enroll test
check "/lock/setup/enrolled" expect_rc 0
snapshot "$TMP/enrolled"
old=$(label_id "$TOK" privkey "$LABEL")

# --- the first renew holds the lock --------------------------------------------
start_ca --hang-on kur --hang-count 1 || exit 1
conf
: > "$TMP/first.p11log"
env P11WRAP_LOG="$TMP/first.p11log" "$P11ENROLL" -c "$TMP/p11enroll.conf" renew test \
	> "$TMP/first.out" 2> "$TMP/first.err" &
FIRST=$!
trap 'kill -9 $FIRST 2> /dev/null; cleanup' EXIT
check "/lock/first/kur-sent" wait_for 60 grep -q 'hang: kur received' "$TMP/ca.log"
check "/lock/first/generated-new-key" grep -q '^C_GenerateKeyPair rv=CKR_OK' "$TMP/first.p11log"
LOCKFILE=$(pending_file "$TOK")
LOCKFILE=${LOCKFILE%.pending}.lock
check "/lock/first/lock-file-names-it" test "$(cat "$LOCKFILE")" = "$FIRST"
snapshot "$TMP/holding"

# --- a second renew: busy, names the holder, touches nothing --------------------
wrapped "$TMP/second.p11log" renew test
check "/lock/second-renew/exit-11" expect_rc 11
check "/lock/second-renew/message" grep_err "another p11enroll process \\(process $FIRST\\b.*is working on 'test' on this token \\($LABEL@.*\\) right now"
check "/lock/second-renew/no-token-call" no_calls "$TMP/second.p11log"
snapshot "$TMP/after-second"
check "/lock/second-renew/token-unchanged" cmp -s "$TMP/holding" "$TMP/after-second"
check "/lock/second-renew/nothing-sent" test "$(grep -c ' kur -> ' "$TMP/ca.log")" -eq 1

# check --recover changes the token too: busy as well
wrapped "$TMP/recover.p11log" check test --recover
check "/lock/check-recover/exit-11" expect_rc 11
check "/lock/check-recover/message" grep_err "process $FIRST\\b.*is working on 'test'"
check "/lock/check-recover/no-token-call" no_calls "$TMP/recover.p11log"
check "/lock/check-recover/new-key-not-removed" test \
	"$(label_count "$TOK" "$LABEL \\(new\\)")" -eq 2

# list only reads: it runs beside the holder
wrapped "$TMP/list.p11log" list test
check "/lock/list/exit-0" expect_rc 0
check "/lock/list/ran" grep -q '^C_FindObjects' "$TMP/list.p11log"

# --- the holder ends: its new pair goes, the lock is free -----------------------
stop_ca
i=0
while ! gone "$FIRST" && [ $i -lt $((300 * P11E_SCALE)) ]; do
	sleep 0.2
	i=$((i + 1))
done
gone "$FIRST" || { echo "# the first renew did not end: killed"; kill -9 "$FIRST"; }
wait "$FIRST" 2> /dev/null
RC=$?
cp "$TMP/first.err" "$TMP/err"
check "/lock/first/exit-5" expect_rc 5
check "/lock/first/removed-new-pair" grep_err 'new key pair was removed'
check "/lock/first/destroyed" test "$(grep -c '^C_DestroyObject rv=CKR_OK' "$TMP/first.p11log")" -eq 2
snapshot "$TMP/after-first"
check "/lock/first/token-as-enrolled" cmp -s "$TMP/enrolled" "$TMP/after-first"

start_ca || exit 1
conf
wrapped "$TMP/third.p11log" renew test
check "/lock/free-again/exit-0" expect_rc 0
check "/lock/free-again/renewed" test -n "$(label_id "$TOK" privkey "$LABEL")" -a \
	"$(label_id "$TOK" privkey "$LABEL")" != "$old"
check "/lock/no-secret" no_secret_in "$TMP/out" "$TMP/err" "$TMP/first.out" "$TMP/first.err"
finish
