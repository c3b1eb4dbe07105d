#!/bin/sh
# /tokwatch: the token layer's watcher (tok_watch_*) and blank-token
# initialization (tok_init_token), driven by tests/tokwatch on SoftHSM2
# tokens that appear in and leave the store while the watcher runs, as
# cards come and go at a badge station.  Every wait is for a line of the
# watcher's output (a scaled hang guard around it), never a sleep.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
TW="$top_builddir/tests/tokwatch"
WRAP="$top_builddir/tests/p11wrap/p11wrap.so"
need_file "$TW"
need_file "$WRAP"
setup
plan 58
# Tokens come and go whole, as cards do: made by softhsm2-util in a store
# of their own and moved into the watched one, then moved out again.
# softhsm2-util writing or deleting a token in the store while a watcher's
# C_Initialize reads it can show the watcher a half-made token or fail
# half-way (under ASan, once, an appearance and a removal were not seen).
mkdir -p "$TMP/tokens" "$TMP/staging" "$TMP/gone"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
	"$TMP/tokens" > "$TMP/softhsm2.conf"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
	"$TMP/staging" > "$TMP/staging.conf"
SOFTHSM2_CONF="$TMP/softhsm2.conf"
export SOFTHSM2_CONF
make_token() {
	SOFTHSM2_CONF="$TMP/staging.conf" "$SOFTHSM2_UTIL" --init-token --free --label "$1" \
		--so-pin "$SO_PIN" --pin "$USER_PIN" > "$TMP/softhsm-init.log" 2>&1 ||
		{ cat "$TMP/softhsm-init.log"; return 1; }
	_d=$(ls "$TMP/staging")
	_s=$(sed -n 's/^directories.tokendir = //p' "$SOFTHSM2_CONF")
	mv "$TMP/staging/$_d" "$_s/" && echo "$1 $_s/$_d" >> "$TMP/dirs"
}
delete_token() {
	_d=$(awk -v l="$1" '$1 == l { d = $2 } END { print d }' "$TMP/dirs")
	[ -n "$_d" ] && mv "$_d" "$TMP/gone/"
}
NEW_PIN=5702-new-user-pin
printf '%s\n' "$SO_PIN" > "$TMP/sopin"
printf '%s\n' "$NEW_PIN" > "$TMP/newpin"
# The watcher's own guard: it exits 3 ("timeout") if the test never gets
# the events it waits for.
GUARD_MS=$(($(scaled 60) * 1000))
WATCH_PIDS=

stop_watchers() {
	for _p in $WATCH_PIDS; do
		kill "$_p" 2> /dev/null
		wait "$_p" 2> /dev/null
	done
	WATCH_PIDS=
}
trap 'stop_watchers; cleanup' EXIT

# watch NAME ARGS...: a watcher in the background, its output in
# $TMP/NAME.out; returns once it has made its first poll ("ready").
watch() {
	_w=$1
	shift
	"$TW" watch --module "$SOFTHSM2_MODULE" --interval 50 --timeout "$GUARD_MS" "$@" \
		> "$TMP/$_w.out" 2> "$TMP/$_w.err" &
	WATCH_PIDS="$WATCH_PIDS $!"
	wait_for 20 grep -q '^ready ' "$TMP/$_w.out" ||
		{ echo "# watcher $_w did not start:"; sed 's/^/#   /' "$TMP/$_w.err"; return 1; }
}

# saw NAME REGEX: the watcher's output gets a line matching REGEX.
saw() {
	wait_for 20 grep -q -E "$2" "$TMP/$1.out" ||
		{ echo "# no /$2/ in the output of watcher $1:"; sed 's/^/#   /' "$TMP/$1.out" \
			"$TMP/$1.err"; return 1; }
}

# never NAME REGEX: no line matches (so far).
never() {
	! grep -q -E "$2" "$TMP/$1.out" ||
		{ echo "# /$2/ in the output of watcher $1:"; grep -E "$2" "$TMP/$1.out" |
			sed 's/^/#   /'; return 1; }
}

# login_ok LABEL PIN: pkcs11-tool logs in to the token with PIN.
login_ok() {
	"$PKCS11_TOOL" --module "$SOFTHSM2_MODULE" --slot "$(token_slot "$1")" --login \
		--pin "$2" --list-objects > /dev/null 2>&1
}
make_token t1 || exit 1

# ---- appearance and removal, any token --------------------------------
watch any
check "/tokwatch/any/ready-polls" grep -q '^ready events=0$' "$TMP/any.out"
check "/tokwatch/any/present-at-start" saw any '^appeared .* label=t1 .*initialized=1$'
make_token t2 || exit 1
check "/tokwatch/any/appeared" saw any '^appeared .* label=t2 '
delete_token t2
check "/tokwatch/any/removed" saw any '^removed .* label=t2 '
# Many polls have seen SoftHSM2's uninitialized slot by now.
check "/tokwatch/any/no-blank-without-flag" never any 'initialized=0'
check "/tokwatch/any/uri-exact" grep -q -E \
	'^appeared uri=pkcs11:model=SoftHSM%20v2;manufacturer=SoftHSM%20project;'\
'serial=[0-9a-f]+;token=t1 ' \
	"$TMP/any.out"
check "/tokwatch/any/t1-not-removed" never any '^removed .* label=t1 '

# ---- a token another process uses is not removed -------------------------
# SoftHSM2 leaves a token out of a new C_Initialize's slot list while
# another process writes it: a watcher that believed one look saw t1
# removed and back about once in a hundred of these logins.
n=0 failed=0
while [ $n -lt 600 ]; do
	"$PKCS11_TOOL" --module "$SOFTHSM2_MODULE" --token-label t1 --login --pin "$USER_PIN" \
		--list-objects > /dev/null 2>&1 || failed=$((failed + 1))
	n=$((n + 1))
done
echo "# $n logins to t1 beside the watcher, $failed failed"
check "/tokwatch/busy/logins" test $failed -lt $n
check "/tokwatch/busy/t1-not-removed" never any '^removed .* label=t1 '

# ---- a pattern: two tokens made, one matches ----------------------------
watch pat --pattern 'pkcs11:token=match'
make_token other || exit 1
make_token match || exit 1
check "/tokwatch/pattern/match-appeared" saw pat '^appeared .* label=match '
# "other" was made first: a poll that saw "match" saw it too.
check "/tokwatch/pattern/other-not-reported" never pat 'label=other '
check "/tokwatch/pattern/t1-not-reported" never pat 'label=t1 '
delete_token other
delete_token match

# ---- blank tokens only with TOK_WATCH_BLANK -----------------------------
watch blank --blank --pattern 'pkcs11:model=SoftHSM%20v2'
check "/tokwatch/blank/reported" saw blank '^appeared .* label= serial= .*initialized=0$'
BLANK_URI=$(sed -n 's/^appeared uri=\([^ ]*\) label= serial= .*initialized=0$/\1/p' \
	"$TMP/blank.out" | head -n 1)
check "/tokwatch/blank/uri-selects-blank" test "$BLANK_URI" = \
	'pkcs11:model=SoftHSM%20v2;manufacturer=SoftHSM%20project;serial=;token='

# ---- TOK_WATCH_NO_PRESENT -------------------------------------------------
watch nopresent --no-present
make_token t3 || exit 1
check "/tokwatch/no-present/new-reported" saw nopresent '^appeared .* label=t3 '
check "/tokwatch/no-present/first-event-is-new" \
	sh -c "sed -n 2p '$TMP/nopresent.out' | grep -q ' label=t3 '"
check "/tokwatch/no-present/present-not-reported" never nopresent 'label=t1 '
stop_watchers

# ---- polling touches no token: only slot list and token info ------------
export P11WRAP_MODULE="$SOFTHSM2_MODULE"
: > "$TMP/wrap.log"
P11WRAP_LOG="$TMP/wrap.log" "$TW" watch --module "$WRAP" --interval 50 --timeout "$GUARD_MS" \
	> "$TMP/wrapped.out" 2> "$TMP/wrapped.err" &
WATCH_PIDS=$!
wait_for 20 grep -q '^ready ' "$TMP/wrapped.out"
make_token t4 || exit 1
check "/tokwatch/no-touch/appeared" saw wrapped '^appeared .* label=t4 '
delete_token t4
check "/tokwatch/no-touch/removed" saw wrapped '^removed .* label=t4 '
stop_watchers
check "/tokwatch/no-touch/only-listing-calls" sh -c "! grep -v -E \
	'^C_(Initialize|Finalize|GetInfo|GetSlotList|GetTokenInfo|WaitForSlotEvent) ' '$TMP/wrap.log'"
check "/tokwatch/no-touch/no-session" \
	test "$(grep -c -E '^C_(OpenSession|Login) ' "$TMP/wrap.log")" -eq 0
# Each poll re-initializes the module (SoftHSM2 shows new tokens no other way).
check "/tokwatch/no-touch/reinitializes" test "$(grep -c '^C_Initialize ' "$TMP/wrap.log")" -ge 3
unset P11WRAP_MODULE

# ---- a module with slot events: asked, not re-initialized ----------------
# p11wrap plays a module that delivers events (P11WRAP_SLOT_EVENTS).
: > "$TMP/events.log"
P11WRAP_MODULE="$SOFTHSM2_MODULE" P11WRAP_SLOT_EVENTS=1 P11WRAP_LOG="$TMP/events.log" \
	"$TW" watch --module "$WRAP" --interval 50 --timeout "$GUARD_MS" > "$TMP/events.out" \
	2> "$TMP/events.err" &
WATCH_PIDS=$!
check "/tokwatch/events/uses-events" saw events '^ready events=1$'
make_token t6 || exit 1
check "/tokwatch/events/appeared" saw events '^appeared .* label=t6 '
delete_token t6
check "/tokwatch/events/removed" saw events '^removed .* label=t6 '
stop_watchers
check "/tokwatch/events/initialized-once" test "$(grep -c '^C_Initialize ' "$TMP/events.log")" -eq 1
check "/tokwatch/events/no-finalize-per-poll" \
	test "$(grep -c '^C_Finalize ' "$TMP/events.log")" -le 1
check "/tokwatch/events/asked" test "$(grep -c '^C_WaitForSlotEvent ' "$TMP/events.log")" -ge 3
# TOK_WATCH_POLL: polls even so.
P11WRAP_MODULE="$SOFTHSM2_MODULE" P11WRAP_SLOT_EVENTS=1 "$TW" watch --module "$WRAP" --poll \
	--count 1 --timeout "$GUARD_MS" > "$TMP/forced.out" 2> "$TMP/forced.err"
check "/tokwatch/events/poll-forced" grep -q '^ready events=0$' "$TMP/forced.out"

# ---- someone else holds the module: refused -----------------------------
"$TW" watch --module "$SOFTHSM2_MODULE" --open-first 'pkcs11:token=t1' > "$TMP/held.out" \
	2> "$TMP/held.err"
RC=$?
check "/tokwatch/held/refused" test "$RC" -eq 3
check "/tokwatch/held/names-ckr" grep -q 'CKR_CRYPTOKI_ALREADY_INITIALIZED.*free or suspend it' \
	"$TMP/held.err"

# ---- suspended around tok_open: the event URI opens the token ------------
watch each --no-present --open-each "$TMP/pin"
make_token t5 || exit 1
check "/tokwatch/open-each/opened" saw each '^opened uri=[^ ]*token=t5 label=t5 login=ok$'
delete_token t5
check "/tokwatch/open-each/resumed" saw each '^removed .* label=t5 '
stop_watchers

# ... and not suspended: tok_open refuses (libp11 alone would share it).
watch held --no-present --open-each "$TMP/pin" --unsuspended
make_token t7 || exit 1
check "/tokwatch/open-unsuspended/refused" saw held \
	'^opened uri=[^ ]*token=t7 failed=.*a token watcher in this process holds it initialized'
delete_token t7
check "/tokwatch/open-unsuspended/watcher-goes-on" saw held '^removed .* label=t7 '
stop_watchers

# ---- a station's blank card: seen, initialized while suspended, seen again
# as an initialized token.  (SoftHSM2 then offers a new blank slot, which
# looks like the old one: blanks without a serial are told apart by nothing,
# so it is not reported again.)
watch station --blank --init-each 1 --so-pin-file "$TMP/sopin" --pin-file "$TMP/newpin"
check "/tokwatch/station/blank-initialized" \
	saw station '^init uri=[^ ]*token= label=badge-1 result=ok$'
check "/tokwatch/station/initialized-appears" \
	saw station '^appeared .* label=badge-1 .*initialized=1$'
stop_watchers
check "/tokwatch/station/new-pin-logs-in" login_ok badge-1 "$NEW_PIN"

# ---- malformed pattern ----------------------------------------------------
"$TW" watch --module "$SOFTHSM2_MODULE" --pattern 'pkcs11:colour=red' > "$TMP/bad.out" \
	2> "$TMP/bad.err"
RC=$?
check "/tokwatch/bad-pattern/refused" test "$RC" -eq 3
check "/tokwatch/bad-pattern/says-why" grep -q "parsing token pattern 'pkcs11:colour=red' failed" \
	"$TMP/bad.err"

# ---- the module fails: the watcher says which call, how ----------------
# watch_fails NAME FAIL: a watcher through p11wrap with P11WRAP_FAIL=FAIL.
watch_fails() {
	P11WRAP_MODULE="$SOFTHSM2_MODULE" P11WRAP_FAIL=$2 "$TW" watch --module "$WRAP" \
		--timeout "$GUARD_MS" > "$TMP/$1.out" 2> "$TMP/$1.err"
	RC=$?
}
watch_fails slotfail C_GetSlotList=CKR_DEVICE_ERROR
check "/tokwatch/fails/slot-list" sh -c "[ $RC -eq 3 ] && grep -q \
	\"watching PKCS#11 module '.*' failed: C_GetSlotList: CKR_DEVICE_ERROR\" '$TMP/slotfail.err'"
watch_fails initfail C_Initialize=CKR_DEVICE_ERROR
check "/tokwatch/fails/initialize" sh -c "[ $RC -eq 3 ] && grep -q \
	'C_Initialize of PKCS#11 module .* failed: CKR_DEVICE_ERROR' '$TMP/initfail.err'"

# ---- initializing the blank token -----------------------------------------
# init LABEL URI [MODULE]: tests/tokwatch init; RC, $TMP/init.out/.err.
init() {
	"$TW" init --module "${3:-$SOFTHSM2_MODULE}" --uri "$2" --label "$1" \
		--so-pin-file "$TMP/sopin" --pin-file "$TMP/newpin" > "$TMP/init.out" \
		2> "$TMP/init.err"
	RC=$?
	cat "$TMP/init.out" "$TMP/init.err" >> "$TMP/init-all.log"
}
init fresh "$BLANK_URI"
check "/tokwatch/init/exit-0" expect_rc 0
check "/tokwatch/init/initialized" grep -q '^initialized label=fresh serial=[0-9a-f]' \
	"$TMP/init.out"
check "/tokwatch/init/login-with-new-pin" grep -q '^login ok$' "$TMP/init.out"
# The new PIN works for pkcs11-tool too, the old one does not.
check "/tokwatch/init/pkcs11-tool-login" login_ok fresh "$NEW_PIN"
login_refused() {
	! login_ok "$@"
}
check "/tokwatch/init/other-pin-refused" login_refused fresh "$USER_PIN"
# A label longer than 32 bytes is cut before the UTF-8 character that would
# not fit: "x" and 20 two-byte characters keep "x" and 15 of them (31 bytes).
LONG="xääääääääääääääääääää"
init "$LONG" 'pkcs11:token='
check "/tokwatch/init/long-label-exit-0" expect_rc 0
check "/tokwatch/init/long-label-cut-utf8" \
	grep -q '^initialized label=xäääääääääääääää serial=' \
	"$TMP/init.out"

# A label that is not printable UTF-8 is refused before the token is touched.
init "$(printf 'bad\001label')" 'pkcs11:token='
check "/tokwatch/init/control-char-label-refused" sh -c "[ $RC -eq 3 ] && grep -q \
	'label is empty, not UTF-8 or has control characters' '$TMP/init.err'"
init "$(printf 'latin1-\351t\351')" 'pkcs11:token='
check "/tokwatch/init/non-utf8-label-refused" sh -c "[ $RC -eq 3 ] && grep -q \
	'label is empty, not UTF-8' '$TMP/init.err'"

# An initialized token is never initialized again (that would erase it).
init again 'pkcs11:token=t1'
check "/tokwatch/init/initialized-refused" sh -c "[ $RC -eq 3 ] && grep -q \
	'initialized already, and initializing it again would erase it' '$TMP/init.err'"
check "/tokwatch/init/initialized-intact" login_ok t1 "$USER_PIN"

# A token whose SO PIN is set already and is not this one (a card with a
# transport SO PIN): C_InitToken answers CKR_PIN_INCORRECT.
export P11WRAP_MODULE="$SOFTHSM2_MODULE"
P11WRAP_FAIL=C_InitToken=CKR_PIN_INCORRECT init wrong 'pkcs11:token=' "$WRAP"
check "/tokwatch/init/wrong-so-pin" sh -c "[ $RC -eq 3 ] && grep -q \
	'C_InitToken (slot [0-9]*, label .wrong.) failed: CKR_PIN_INCORRECT: .*SO PIN' '$TMP/init.err'"
# C_InitPIN refused: the token is initialized, the message says how to
# set the user PIN.
P11WRAP_FAIL=C_InitPIN=CKR_PIN_LEN_RANGE init nopin 'pkcs11:token=' "$WRAP"
check "/tokwatch/init/initpin-fails" sh -c "[ $RC -eq 3 ] && grep -q \
	'C_InitPIN: CKR_PIN_LEN_RANGE: .*no user PIN: set it with pkcs11-tool --init-pin' '$TMP/init.err'"
unset P11WRAP_MODULE

# ---- no PIN in any output ---------------------------------------------------
check "/tokwatch/no-pin-in-output" sh -c "! grep -q -F -e '$SO_PIN' -e '$USER_PIN' -e '$NEW_PIN' \
	'$TMP'/*.out '$TMP'/*.err '$TMP/init-all.log' '$TMP/wrap.log'"

# ---- cost of one poll: 1 token, then 20 -------------------------------------
mkdir -p "$TMP/bench/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
	"$TMP/bench/tokens" > "$TMP/bench/softhsm2.conf"
SOFTHSM2_CONF="$TMP/bench/softhsm2.conf"
# bench N: 50 polls over the N tokens (plus the blank slot); the median is
# printed, never compared (bench/ holds no threshold either).
bench() {
	"$TW" bench --module "$SOFTHSM2_MODULE" --polls 50 > "$TMP/bench.out" 2> "$TMP/bench.err" ||
		{ sed 's/^/#   /' "$TMP/bench.err"; return 1; }
	echo "# one poll, $1 token(s): $(cat "$TMP/bench.out")"
	grep -q " tokens=$1\$" "$TMP/bench.out"
}
make_token b1 || exit 1
check "/tokwatch/bench/1-token" bench 1
i=2
while [ $i -le 20 ]; do
	make_token "b$i" || exit 1
	i=$((i + 1))
done
check "/tokwatch/bench/20-tokens" bench 20
finish
