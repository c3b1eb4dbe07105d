#!/bin/sh
# /tpm-ident: two tpm2-pkcs11 tokens on one software TPM.  Both report the
# serial 0000000000000000 (every token of one TPM does): list says so and
# names each by its label, model and manufacturer; each enrolls on its own;
# a URI that matches both is refused naming both; the agent renews each
# enrollment on its own token.  The TPM (swtpm, a private D-Bus bus and
# tpm2-abrmd) comes from tests/tpm-lib.sh and is stopped by PID, also when
# the test fails.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
. "$top_srcdir/tests/agent-lib.sh"
. "$top_srcdir/tests/tpm-lib.sh"
need_tools
need_tpm_tools
setup
# tpm2-pkcs11 leaks under LeakSanitizer: tests/tpm-lsan.supp (as tests/tpm.sh).
LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$top_srcdir/tests/tpm-lsan.supp"
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0"
export LSAN_OPTIONS ASAN_OPTIONS
plan 21
CA_B_PID=
trap 'kill_agents; [ -n "$CA_B_PID" ] && kill "$CA_B_PID" 2> /dev/null; cleanup' EXIT
trap 'exit 1' HUP PIPE

ZERO=0000000000000000
NOTUNIQUE="serial $ZERO (not unique: identified by label, model and manufacturer)"

# at_least CONF NAME FIELD N
at_least() {
	_al=$(jget "$1" "$2" "$3") && [ -n "$_al" ] && [ "$_al" -ge "$4" ]
}

# serial_of PEM: the certificate's serial, in hex as p11enroll writes it.
serial_of() {
	"$OPENSSL_BIN" x509 -in "$1" -noout -serial 2> /dev/null | sed 's/^serial=//'
}

# field FILE KEY: the value of KEY=... in check's output.
field() {
	sed -n "s/^$2=//p" "$1"
}

tpm_start || exit 1
tpm_token tpm-a || exit 1
tpm_token tpm-b || exit 1
LIFE=$((30 + 10 * (P11E_SCALE - 1)))
start_ca --validity-seconds $LIFE || exit 1
# b talks to a CA of its own (same root), whose certificates live half as
# long again: the first renewals of a and b do not overlap.  The tokens of
# one TPM share tpm2-pkcs11's store (one SQLite file): two steps writing at
# once fail with "database is locked" (CKR_GENERAL_ERROR), and one test CA
# mixes up two transactions at once.
"$TESTCA" --dir "$TMP/ca" --port 0 --ref "$CMP_REF" --secret-file "$TMP/secret" \
	--log "$TMP/ca-b.log" --quiet --validity-seconds $((LIFE * 3 / 2)) \
	> "$TMP/ca-b.out" 2> "$TMP/ca-b.err" &
CA_B_PID=$!
wait_for 30 grep -q '^port [0-9]' "$TMP/ca-b.out" || { echo "# test CA b did not start"; exit 1; }
B_URL="http://127.0.0.1:$(sed -n 's/^port \([0-9][0-9]*\)$/\1/p' "$TMP/ca-b.out")/.well-known/cmp"
C="$TMP/tpm.conf"
{
	conf_defaults | sed "s|^module = .*|module = $TPM2_PKCS11_MODULE|"
	for t in a b; do
		printf '%s\n' "[$t]" "token = pkcs11:token=tpm-$t" "pin_source = file:$TMP/pin" \
			"label = enrolled-key" "subject = /CN=tpm $t/O=Example" \
			"cert_out = $TMP/cert-$t.pem"
		[ $t = b ] && printf '%s\n' "server = $B_URL"
		echo
	done
} > "$C"

# --- list: each token's identity, its serial not unique ----------------------------------
pe "$C" list a
check "/tpm-ident/list/a-exit-0" expect_rc 0
sed 's/^/#   /' "$TMP/out"
# swtpm: manufacturer IBM, model "SW   TPM"
check "/tpm-ident/list/a-identity" grep -q -x -F \
	"token label 'tpm-a', manufacturer 'IBM', model 'SW   TPM', $NOTUNIQUE" "$TMP/out"
pe "$C" list b
check "/tpm-ident/list/b-identity" grep -q -x -F \
	"token label 'tpm-b', manufacturer 'IBM', model 'SW   TPM', $NOTUNIQUE" "$TMP/out"

# --- enroll on each ------------------------------------------------------------------
pe "$C" enroll a
check "/tpm-ident/enroll/a" expect_rc 0
pe "$C" enroll b
check "/tpm-ident/enroll/b" expect_rc 0
pe "$C" check a
check "/tpm-ident/check/a-label" test "$(field "$TMP/out" token_label)" = tpm-a
check "/tpm-ident/check/a-not-unique" test "$(field "$TMP/out" token_serial_unique)" = no
A0=$(field "$TMP/out" cert_serial)
pe "$C" check b
check "/tpm-ident/check/b-label" test "$(field "$TMP/out" token_label)" = tpm-b
B0=$(field "$TMP/out" cert_serial)
check "/tpm-ident/check/two-certificates" test -n "$A0" -a -n "$B0" -a "$A0" != "$B0"

# --- a URI that matches both tokens ------------------------------------------------------
pe "$C" list a --token "pkcs11:serial=$ZERO"
check "/tpm-ident/ambiguous/refused" test "$RC" -ne 0
check "/tpm-ident/ambiguous/names-both" test "$(grep -o -E \
	"slot [0-9]+ \\(label 'tpm-[ab]', manufacturer '[^']+', model '[^']+', serial '$ZERO'\\)" \
	"$TMP/err" | sort -u | wc -l)" -eq 2
check "/tpm-ident/ambiguous/what-to-do" grep_err "add token=, serial=, model= or manufacturer="

# --- the agent renews each on its own token ----------------------------------------------
agent_start "$C" "$TMP/agent.log" || exit 1
check "/tpm-ident/agent/a-renewed" wait_for 120 at_least "$C" a renewals 1
check "/tpm-ident/agent/b-renewed" wait_for 120 at_least "$C" b renewals 1
check "/tpm-ident/agent/a-label" is "$C" a token_label tpm-a
check "/tpm-ident/agent/b-not-unique" is "$C" b token_serial_unique false
check "/tpm-ident/agent/a-done-on-tpm-a" \
	grep -q "a: renew done (token 'tpm-a' (serial $ZERO)" "$TMP/agent.log"
check "/tpm-ident/agent/b-done-on-tpm-b" \
	grep -q "b: renew done (token 'tpm-b' (serial $ZERO)" "$TMP/agent.log"
kill_agents
# What each token holds now is its own enrollment's newest certificate:
# the one the agent wrote to that enrollment's cert_out.
pe "$C" check a
check "/tpm-ident/after/a-holds-a-newest" test "$(field "$TMP/out" cert_serial)" = \
	"$(serial_of "$TMP/cert-a.pem")" -a "$(field "$TMP/out" cert_serial)" != "$A0"
check "/tpm-ident/after/a-subject" test "$("$OPENSSL_BIN" x509 -in "$TMP/cert-a.pem" -noout \
	-subject -nameopt RFC2253 2> /dev/null)" = "subject=O=Example,CN=tpm a"
pe "$C" check b
check "/tpm-ident/after/b-holds-b-newest" test "$(field "$TMP/out" cert_serial)" = \
	"$(serial_of "$TMP/cert-b.pem")" -a "$(field "$TMP/out" cert_serial)" != "$B0"

finish
