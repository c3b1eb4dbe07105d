#!/bin/sh
# /ident: a token is its label, manufacturer, model and serial, not its
# serial alone.  Every tpm2-pkcs11 token on one TPM reports the serial
# 0000000000000000; here tests/p11wrap makes two SoftHSM2 tokens report one
# serial (P11WRAP_SERIAL).  With different labels: list and check say the
# serial is not unique, each enrolls on its own, the agent renews each
# enrollment on its own token (not as one token's pass), and a transaction
# the CA keeps waiting on one token is kept apart from the other's.  A URI
# that matches both names both; two tokens with the same label too cannot be
# told apart, and the error says to give one another label.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
. "$top_srcdir/tests/agent-lib.sh"
need_tools
need_cmd python3
use_p11wrap
setup
plan 52
EXTRA_PIDS=
stop_extra() {
	for p in $EXTRA_PIDS; do kill "$p" 2> /dev/null && wait "$p" 2> /dev/null; done
}
trap 'stop_extra; kill_agents; cleanup' EXIT
trap 'exit 1' HUP PIPE

ZERO=0000000000000000
P11WRAP_SERIAL=$ZERO
export P11WRAP_SERIAL
WHY="(not unique: identified by label, model and manufacturer)"
NOTUNIQUE="serial $ZERO $WHY"
SOFT="manufacturer 'SoftHSM project', model 'SoftHSM v2'"

# at_least CONF NAME FIELD N
at_least() {
	_al=$(jget "$1" "$2" "$3") && [ -n "$_al" ] && [ "$_al" -ge "$4" ]
}

# extra_ca NAME ARGS...: another test CA on $TMP/ca (same root; its log
# $TMP/NAME.log); sets EXTRA_URL.
extra_ca() {
	_n=$1
	shift
	"$TESTCA" --dir "$TMP/ca" --port 0 --ref "$CMP_REF" --secret-file "$TMP/secret" \
		--log "$TMP/$_n.log" --quiet "$@" > "$TMP/$_n.out" 2> "$TMP/$_n.err" &
	EXTRA_PIDS="$EXTRA_PIDS $!"
	wait_for 30 grep -q '^port [0-9]' "$TMP/$_n.out" ||
		{ echo "# test CA $_n did not start"; sed 's/^/#   /' "$TMP/$_n.err"; exit 1; }
	_port=$(sed -n 's/^port \([0-9][0-9]*\)$/\1/p' "$TMP/$_n.out")
	EXTRA_URL="http://127.0.0.1:$_port/.well-known/cmp"
}

# show FILE: as TAP comments.
show() {
	sed 's/^/#   /' "$1"
}

# conf FILE [p]: enrollments a (token id-a) and b (token id-b), each with
# a subject of its own, through p11wrap; with p, also p, whose URI matches
# both (each run is given its token by --token).
conf() {
	{
		conf_defaults | sed "s|^module = .*|module = $P11WRAP|"
		for t in a b; do
			printf '%s\n' "[$t]" "token = pkcs11:token=id-$t" "pin_source = file:$TMP/pin" \
				"label = enrolled-key" "subject = /CN=ident $t/O=Example" \
				"cert_out = $TMP/cert-$t.pem"
			[ $t = b ] && printf '%s\n' "server = $B_URL"
			echo
		done
		if [ "${2:-}" = p ]; then
			printf '%s\n' "[p]" "token = pkcs11:model=SoftHSM%20v2" \
				"pin_source = file:$TMP/pin" "label = waiting-key" \
				"subject = /CN=ident p/O=Example"
		fi
	} > "$1"
}

# subject_on TOKEN: the subject of the certificate labelled enrolled-key.
subject_on() {
	_so_slot=$(token_slot "$1") || return 1
	"$PKCS11_TOOL" --module "$SOFTHSM2_MODULE" --slot "$_so_slot" --read-object \
		--type cert --label enrolled-key 2> /dev/null |
		"$OPENSSL_BIN" x509 -inform DER -noout -subject -nameopt RFC2253 2> /dev/null |
		sed 's/^subject=//'
}

# serial_on TOKEN: the serial (hex, as the agent writes it) of that certificate.
serial_on() {
	_so_slot=$(token_slot "$1") || return 1
	"$PKCS11_TOOL" --module "$SOFTHSM2_MODULE" --slot "$_so_slot" --read-object \
		--type cert --label enrolled-key 2> /dev/null |
		"$OPENSSL_BIN" x509 -inform DER -noout -serial 2> /dev/null | sed 's/^serial=//'
}

make_token id-a || exit 1
make_token id-b || exit 1
LIFE=$((30 + 10 * (P11E_SCALE - 1)))
start_ca --validity-seconds $LIFE || exit 1
# b talks to a CA of its own (same root): enrolled together, a and b are
# renewed at the same time, and one test CA mixes up two transactions at once.
extra_ca ca-b --validity-seconds $LIFE
B_URL=$EXTRA_URL
C="$TMP/ident.conf"
conf "$C" p

# --- list and check: the identity, and the serial not unique ---------------------------
pe "$C" list a
check "/ident/list/exit-0" expect_rc 0
check "/ident/list/identity" grep -q -x -F \
	"token label 'id-a', manufacturer 'SoftHSM project', model 'SoftHSM v2', $NOTUNIQUE" \
	"$TMP/out"
show "$TMP/out"
# A serial that is not zeros but repeated on the present tokens: not unique either.
P11WRAP_SERIAL=4242 pe "$C" list b
check "/ident/list/repeated-serial" grep -q -x -F \
	"token label 'id-b', $SOFT, serial 4242 $WHY" \
	"$TMP/out"
# Without the wrapper's serial each SoftHSM2 token has its own.
P11WRAP_SERIAL= pe "$C" list b
check "/ident/list/unique-serial" grep -q -x -F \
	"token label 'id-b', $SOFT, serial $(token_serial id-b)" \
	"$TMP/out"

# --- enroll each, check each ----------------------------------------------------------
pe "$C" enroll a
check "/ident/enroll/a" expect_rc 0
pe "$C" enroll b
check "/ident/enroll/b" expect_rc 0
check "/ident/enroll/a-on-id-a" test "$(subject_on id-a)" = "O=Example,CN=ident a"
check "/ident/enroll/b-on-id-b" test "$(subject_on id-b)" = "O=Example,CN=ident b"
pe "$C" check a
check "/ident/check/exit-0" expect_rc 0
check "/ident/check/identity" grep -q -x -F -e "token_label=id-a" "$TMP/out"
check "/ident/check/serial" grep -q -x -F -e "token_serial=$ZERO" "$TMP/out"
check "/ident/check/model" grep -q -x -F -e "token_model=SoftHSM v2" "$TMP/out"
check "/ident/check/manufacturer" grep -q -x -F -e "token_manufacturer=SoftHSM project" "$TMP/out"
check "/ident/check/not-unique" grep -q -x -F -e "token_serial_unique=no" "$TMP/out"
check "/ident/check/cert-of-a" grep -q -x -F -e "cert_serial=$(serial_on id-a)" "$TMP/out"

# --- a URI that matches both: both named ---------------------------------------------
pe "$C" list a --token "pkcs11:serial=$ZERO"
check "/ident/ambiguous/refused" test "$RC" -ne 0
check "/ident/ambiguous/names-a" grep_err \
	"slot [0-9]+ \\(label 'id-a', $SOFT, serial '$ZERO'\\)"
check "/ident/ambiguous/names-b" grep_err "slot [0-9]+ \\(label 'id-b', "
check "/ident/ambiguous/what-to-do" \
	grep_err "add token=, serial=, model= or manufacturer= to the URI"

# --- the agent: each renewed on its own token -------------------------------------------
# Without p, whose URI matches both tokens.
CP="$C"
C="$TMP/agent.conf"
conf "$C"
agent_start "$C" "$TMP/agent.log" || exit 1
check "/ident/agent/a-renewed" wait_for 120 at_least "$C" a renewals 1
check "/ident/agent/b-renewed" wait_for 120 at_least "$C" b renewals 1
check "/ident/agent/a-label" is "$C" a token_label id-a
check "/ident/agent/b-label" is "$C" b token_label id-b
check "/ident/agent/a-serial" is "$C" a token_serial "$ZERO"
check "/ident/agent/a-not-unique" is "$C" a token_serial_unique false
check "/ident/agent/a-model" is "$C" a token_model "SoftHSM v2"
"$P11ENROLL" -c "$C" status > "$TMP/status.txt" 2>&1
show "$TMP/status.txt"
check "/ident/agent/status-table" grep -q -x -F \
	"  token: label 'id-b', manufacturer 'SoftHSM project', model 'SoftHSM v2', $NOTUNIQUE" \
	"$TMP/status.txt"
check "/ident/agent/a-done-on-id-a" grep -q "a: renew done (token 'id-a' (serial $ZERO)" \
	"$TMP/agent.log"
check "/ident/agent/b-done-on-id-b" grep -q "b: renew done (token 'id-b' (serial $ZERO)" \
	"$TMP/agent.log"
check "/ident/agent/a-cert-on-id-a" test "$(subject_on id-a)" = "O=Example,CN=ident a"
check "/ident/agent/b-cert-on-id-b" test "$(subject_on id-b)" = "O=Example,CN=ident b"
# the status names the certificate each token holds (once both renewed,
# a newer one may come any time: compared on one snapshot each)
match_a() { [ "$(jget "$C" a certificate_serial)" = "$(serial_on id-a)" ]; }
check "/ident/agent/a-status-is-id-a-cert" wait_for 30 match_a
check "/ident/agent/no-foreign-pass" test "$(in_log "$TMP/agent.log" "not on the token of")" -eq 0
kill_agents
C="$CP"

# --- a transaction kept waiting on id-a, another request on id-b ----------------------
# The CA keeps id-a's ir waiting; id-b enrolls the same name and label at
# a second CA on the same directory (the first holds one waiting request).
DELIVER="$TMP/deliver"
extra_ca wait --poll 3600 --deliver-when "$DELIVER"
WAIT_URL=$EXTRA_URL
pe "$C" enroll p --token pkcs11:token=id-a --server "$WAIT_URL"
check "/ident/pending/a-waits-exit-9" expect_rc 9
PA=$(ls "$TMP/state/pending/"*.pending 2> /dev/null)
check "/ident/pending/a-file-by-label-model-manufacturer" test "$PA" = \
	"$TMP/state/pending/waiting-key@~SoftHSM%20project~SoftHSM%20v2~id-a.pending"
pe "$C" enroll p --token pkcs11:token=id-b
check "/ident/pending/b-not-blocked" expect_rc 0
check "/ident/pending/two-tokens-one-waiting" test "$(pending_count)" -eq 1 -a -f "$PA"
pe "$C" resume p --token pkcs11:token=id-b
check "/ident/pending/b-has-none" test "$RC" -ne 0 -a "$RC" -ne 9
check "/ident/pending/a-still-waiting" test -f "$PA"
touch "$DELIVER"
pe "$C" resume p --token pkcs11:token=id-a --server "$WAIT_URL"
check "/ident/pending/a-resumed" expect_rc 0
check "/ident/pending/a-done" test "$(pending_count)" -eq 0
check "/ident/pending/a-cert-stored" test -n "$(label_id id-a cert waiting-key)"

# --- a token swapped for another with the same serial: absent, not used ------------------
# c's URI (model=) selects whichever SoftHSM2 token is there.  The agent
# sees c on id-a; id-a is taken out and id-b put in: the same serial,
# model and manufacturer, but another label, so c waits for its token
# instead of logging in to id-b.
# token_dir LABEL: the SoftHSM2 directory of the token labelled LABEL.
token_dir() {
	dirname "$(grep -l -F "$1" "$TMP"/tokens/*/token.object | head -n 1)"
}
DA=$(token_dir id-a)
DB=$(token_dir id-b)
mv "$DB" "$TMP/aside-b"
C3="$TMP/swap.conf"
{
	conf_defaults |
		sed "s|^module = .*|module = $P11WRAP|; s|^state_dir = .*|state_dir = $TMP/state-c|"
	printf '%s\n' "token_poll = 2" "[c]" "token = pkcs11:model=SoftHSM%20v2" \
		"pin_source = file:$TMP/pin" "label = swap-key" "subject = /CN=ident c/O=Example"
} > "$C3"
pe "$C3" enroll c
check "/ident/swap/enrolled" expect_rc 0
agent_start "$C3" "$TMP/agent-c.log" || exit 1
check "/ident/swap/seen-on-id-a" wait_for 30 is "$C3" c token_label id-a
mv "$DA" "$TMP/aside-a"
mv "$TMP/aside-b" "$DB"
pe "$C3" renew c
check "/ident/swap/renew-absent-exit-10" expect_rc 10
check "/ident/swap/waiting-token" wait_for 30 is "$C3" c state waiting-token
check "/ident/swap/id-b-untouched" test "$(label_count id-b swap-key)" -eq 0
mv "$TMP/aside-a" "$DA"
check "/ident/swap/back" wait_for 60 is "$C3" c state valid
check "/ident/swap/says-back" grep -q "c: token 'id-a' (serial $ZERO) is back" "$TMP/agent-c.log"
kill_agents

# --- two tokens with the same label and serial: no URI tells them apart ------------------
make_token id-a || exit 1
pe "$C" check a
check "/ident/twins/refused" test "$RC" -ne 0 -a "$RC" -ne 10
twins() {
	grep -o -E "slot [0-9]+ \\(label 'id-a', $SOFT, serial '$ZERO'\\)" "$TMP/err" | sort -u | wc -l
}
check "/ident/twins/names-both" test "$(twins)" -eq 2
check "/ident/twins/what-to-do" grep_err "give one of them another label"

finish
