#!/bin/sh
# /recoverfail: the recovery's own token calls fail (agent/recover.c).  A
# renew is killed (P11WRAP_KILL) where it leaves work for recovery: its
# certificate stored under "LABEL (new)" (to adopt: relabel, then delete
# the old pair), or a new key without a certificate (to delete).  Then the
# recovery runs with one of its calls failing: listing the objects,
# relabelling (at once or half-way), deleting.  Each time: exit 3, a
# message naming the recovery step and the CKR_, no new key and no request
# (the call log, the CA log), nothing lost (pkcs11-tool: what the killed
# run left, or a state recovery still understands); and a later run
# without the failure finishes: the killed run's certificate in place, or
# the left-over key gone, with no second certificate requested.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
WRAP="$top_builddir/tests/p11wrap/p11wrap.so"
need_file "$WRAP"
setup
plan 50
export P11WRAP_MODULE="$SOFTHSM2_MODULE"
LABEL=enrolled-key
LOG="$TMP/calls.log"
# a hang guard only (a run that never ends), not a timing threshold
if command -v timeout > /dev/null 2>&1; then GUARD="timeout -s KILL $(scaled 120)"; else GUARD=; fi

# run ARGS... [-- VAR=VALUE...]: p11enroll ARGS through p11wrap; RC, out, err, $LOG.
run() {
	_args=
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		_args="$_args $1"
		shift
	done
	[ $# -gt 0 ] && shift
	write_conf "$TOK"
	sed -i "s|^module = .*|module = $WRAP|" "$TMP/p11enroll.conf"
	: > "$LOG"
	env P11WRAP_LOG="$LOG" "$@" $GUARD "$P11ENROLL" -c "$TMP/p11enroll.conf" $_args \
		> "$TMP/out" 2> "$TMP/err"
	RC=$?
}

calls() {
	grep -c -E "$1" "$LOG"
}

expect_calls() {
	_n=$(calls "$1")
	[ "$_n" -eq "$2" ] || { echo "# /$1/ in the call log $_n times, expected $2"; return 1; }
}

snapshot() {
	objects "$TOK" | sort > "$1"
}

unchanged() {
	cmp -s "$1" "$2" || { echo "# the token changed:"; diff "$1" "$2" | sed 's/^/#   /'; return 1; }
}

issued() {
	grep -c 'issued serial' "$TMP/ca.log"
}

kur_sent() {
	grep -c ' kur -> ' "$TMP/ca.log"
}

# count_label_class CLASS LABEL: objects of pkcs11-tool's CLASS ("Private
# Key", "Certificate"...) with exactly LABEL.
count_label_class() {
	objects "$TOK" | awk -v l="$2" -v c="$1" '/Object;/ { cls = $0 }
		/^ *label:/ { sub(/^ *label: */, ""); if ($0 == l && index(cls, c) == 1) n++ }
		END { print n + 0 }'
}

serial_of_label() {
	objects "$TOK" cert | awk -v l="$1" '/Object;/ { mine = 0 }
		/^ *label:/ { sub(/^ *label: */, ""); mine = ($0 == l) }
		mine && /^ *serial:/ { print $2; exit }'
}

# in_place SERIAL: one pair and one certificate carry the label, nothing
# temporary is left, the certificate is SERIAL and the key signs for it.
in_place() {
	objects "$TOK" > "$TMP/objs"
	if grep -q -E "label: +$LABEL \((new|old|replaced)\)" "$TMP/objs"; then
		echo "# temporary objects left:"
		grep -E 'Object|label' "$TMP/objs" | sed 's/^/#   /'
		return 1
	fi
	[ "$(label_count "$TOK" "$LABEL")" -eq 3 ] || { echo "# $(label_count "$TOK" "$LABEL") objects labelled $LABEL"; return 1; }
	[ "$(serial_of_label "$LABEL")" = "$1" ] || { echo "# serial $(serial_of_label "$LABEL"), expected $1"; return 1; }
	_kid=$(label_id "$TOK" privkey "$LABEL")
	[ "$(label_id "$TOK" cert "$LABEL")" = "$_kid" ] || { echo "# key and certificate ids differ"; return 1; }
	"$PKCS11_TOOL" --module "$SOFTHSM2_MODULE" --token-label "$TOK" --read-object \
		--type cert --id "$_kid" -o "$TMP/cert.der" > /dev/null 2>&1 &&
		"$OPENSSL_BIN" x509 -inform DER -in "$TMP/cert.der" -noout -pubkey > "$TMP/pub.pem" &&
		key_signs_for "$TOK" "$_kid" "$TMP/pub.pem" || { echo "# the key does not sign for the certificate"; return 1; }
}

# killed_renew TOKEN KILL_SPEC: a fresh token with an enrolled pair and a
# renew killed at KILL_SPEC; $old, $TMP/killed (the objects it left),
# $killed_serial (the certificate the CA issued the killed run, if any).
killed_renew() {
	TOK=$1
	make_token "$TOK" || exit 1
	run enroll test
	[ "$RC" = 0 ] || { echo "# setup enroll failed"; sed 's/^/#   /' "$TMP/err"; exit 1; }
	old=$(label_id "$TOK" privkey "$LABEL")
	old_serial=$(serial_of_label "$LABEL")
	n0=$(issued)
	run renew test -- P11WRAP_KILL="$2"
	[ "$RC" = 137 ] || { echo "# the renew was not killed: $RC"; sed 's/^/#   /' "$TMP/err"; exit 1; }
	killed_serial=
	[ "$(issued)" -gt "$n0" ] &&
		killed_serial=$(sed -n 's/.*issued serial \([0-9A-F]*\) .*/\1/p' "$TMP/ca.log" | tail -n 1)
	snapshot "$TMP/killed"
}

start_ca || exit 1

# --- the certificate was stored: recovery adopts it ---------------------------
killed_renew stored-list C_CreateObject:after
check "/recoverfail/setup/killed-after-store" test -n "$killed_serial" -a \
	"$(count_label_class Certificate "$LABEL (new)")" -eq 1

# listing the objects fails (the first search after the login is the
# recovery's): nothing else is looked at
run check test --recover -- P11WRAP_FAIL=C_FindObjects=CKR_DEVICE_ERROR@1
t=/recoverfail/list
check "$t/exit-3" expect_rc 3
check "$t/message" grep_err "recovery: cannot list the token's objects: .*C_FindObjects on token 'stored-list' failed: CKR_DEVICE_ERROR"
check "$t/logged-in-first" expect_calls '^C_Login rv=CKR_OK$' 1
check "$t/stopped-there" expect_calls '^C_FindObjects(Init)? ' 2
check "$t/changed-nothing" expect_calls '^C_(SetAttributeValue|DestroyObject|CreateObject|GenerateKeyPair) ' 0
snapshot "$TMP/after"
check "$t/token-as-killed" unchanged "$TMP/killed" "$TMP/after"
n1=$(issued)
run check test --recover
check "$t/retry-exit-0" expect_rc 0
check "$t/retry-adopted" in_place "$killed_serial"
check "$t/retry-no-request" test "$(issued)" -eq "$n1"

# relabelling fails at its first call: nothing moved
killed_renew stored-relabel C_CreateObject:after
run check test --recover -- P11WRAP_FAIL=C_SetAttributeValue=CKR_DEVICE_ERROR@1
t=/recoverfail/relabel
check "$t/exit-3" expect_rc 3
check "$t/message" grep_err "recovery: relabelling failed: .*CKR_DEVICE_ERROR"
check "$t/tried" expect_calls '^C_SetAttributeValue rv=CKR_DEVICE_ERROR injected$' 1
check "$t/stopped-there" expect_calls '^C_(SetAttributeValue rv=CKR_OK|DestroyObject)' 0
snapshot "$TMP/after"
check "$t/token-as-killed" unchanged "$TMP/killed" "$TMP/after"
n1=$(issued)
run check test --recover
check "$t/retry-exit-0" expect_rc 0
check "$t/retry-adopted" in_place "$killed_serial"
check "$t/retry-no-request" test "$(issued)" -eq "$n1"

# in a renew, relabelling fails half-way (the old pair moved, the new not):
# no key, no request; the next renew puts the killed run's certificate in place
killed_renew stored-half C_CreateObject:after
k0=$(kur_sent)
run renew test -- P11WRAP_FAIL=C_SetAttributeValue=CKR_DEVICE_ERROR@4
t=/recoverfail/relabel-half
check "$t/exit-3" expect_rc 3
check "$t/message" grep_err "recovery: relabelling failed: .*CKR_DEVICE_ERROR"
check "$t/old-moved" expect_calls '^C_SetAttributeValue rv=CKR_OK$' 3
check "$t/no-new-key" expect_calls '^C_GenerateKeyPair ' 0
check "$t/no-kur" test "$(kur_sent)" -eq "$k0"
check "$t/old-pair-kept" test "$(label_id "$TOK" privkey "$LABEL (replaced)")" = "$old" -a \
	"$(count_label_class Certificate "$LABEL (replaced)")" -eq 1
check "$t/new-pair-kept" test "$(label_count "$TOK" "$LABEL \\(new\\)")" -eq 3
n1=$(issued)
run renew test
check "$t/next-renew-exit-0" expect_rc 0
check "$t/next-renew-says-in-place" grep_err "the interrupted run's certificate is in place: no new request is sent"
check "$t/next-renew-adopted" in_place "$killed_serial"
check "$t/next-renew-no-request" test "$(issued)" -eq "$n1"

# deleting the replaced pair fails: the new pair is in place, the old one
# waits under "(replaced)" for the next run
killed_renew stored-delete C_CreateObject:after
run check test --recover -- P11WRAP_FAIL=C_DestroyObject=CKR_DEVICE_ERROR
t=/recoverfail/delete-replaced
check "$t/exit-3" expect_rc 3
check "$t/message" grep_err "recovery: deleting a left-over key pair failed: .*C_DestroyObject on token 'stored-delete' failed: CKR_DEVICE_ERROR"
check "$t/relabelled-first" expect_calls '^C_SetAttributeValue rv=CKR_OK$' 6
check "$t/new-in-place" test "$(serial_of_label "$LABEL")" = "$killed_serial"
check "$t/old-pair-kept" test "$(label_id "$TOK" privkey "$LABEL (replaced)")" = "$old" -a \
	"$(label_count "$TOK" "$LABEL \\(replaced\\)")" -eq 3
n1=$(issued)
run check test --recover
check "$t/retry-exit-0" expect_rc 0
check "$t/retry-deleted" grep_err 'recovery: deleted the key pair'
check "$t/retry-consistent" in_place "$killed_serial"
check "$t/retry-no-request" test "$(issued)" -eq "$n1"

# --- a new key without a certificate: recovery deletes it -------------------------
killed_renew keygen-delete C_GenerateKeyPair:after
k0=$(kur_sent)
run renew test -- P11WRAP_FAIL=C_DestroyObject=CKR_DEVICE_ERROR
t=/recoverfail/delete-new-key
check "$t/exit-3" expect_rc 3
check "$t/message" grep_err "recovery: deleting a left-over key pair failed: .*CKR_DEVICE_ERROR"
check "$t/tried" expect_calls '^C_DestroyObject rv=CKR_DEVICE_ERROR injected$' 1
check "$t/no-new-key" expect_calls '^C_GenerateKeyPair ' 0
check "$t/no-kur" test "$(kur_sent)" -eq "$k0"
snapshot "$TMP/after"
check "$t/token-as-killed" unchanged "$TMP/killed" "$TMP/after"
check "$t/old-pair-kept" test "$(label_id "$TOK" cert "$LABEL")" = "$old" -a \
	"$(serial_of_label "$LABEL")" = "$old_serial"
n1=$(issued)
run renew test
check "$t/next-renew-exit-0" expect_rc 0
check "$t/next-renew-deleted-it" grep_err 'recovery: deleted the key pair'
check "$t/next-renew-renewed" test "$(issued)" -eq $((n1 + 1)) -a \
	"$(label_id "$TOK" privkey "$LABEL")" != "$old"
check "$t/next-renew-in-place" in_place "$(serial_of_label "$LABEL")"

check "/recoverfail/no-secret" no_secret_in "$TMP/out" "$TMP/err" "$LOG"
finish
