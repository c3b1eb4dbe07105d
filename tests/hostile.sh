#!/bin/sh
# /hostile: the real client (`p11enroll enroll`) against a test CA that
# misbehaves in one way per case (tests/ca --fault).  Each case asserts:
#   - the exit code that p11enroll(1) gives for that kind of failure,
#   - a message on stderr that says what failed,
#   - neither the PIN nor the MAC secret in stdout, stderr or the call log,
#   - no net write left on the token.
#
# A case the CA answers "waiting" until the total timeout (exit 9) keeps
# the new key for `p11enroll resume` (the CA may still deliver); there the
# saved transaction is abandoned with `resume --abandon`, and only then is
# the token asserted empty.
#
# About "zero writes to the token": `enroll` always writes before it talks
# to the CA: C_GenerateKeyPair, then C_SetAttributeValue for CKA_ID and
# CKA_LABEL, and after a failure C_DestroyObject removes the pair again.  So
# C_SetAttributeValue/C_DestroyObject calls are expected and not counted.
# What is asserted instead, through tests/p11wrap (P11WRAP_LOG lists every
# PKCS#11 call): no C_CreateObject at all (nothing, in particular no
# certificate and no CA certificate, was ever stored), the pair made once
# and both its objects destroyed (made_and_removed), and the token ends
# with zero objects.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
WRAP="$top_builddir/tests/p11wrap/p11wrap.so"
need_file "$WRAP"
setup
plan 380
LOG="$TMP/calls.log"
# a hang guard only (a case that never ends), not a timing threshold
if command -v timeout > /dev/null 2>&1; then GUARD="timeout -s KILL $(scaled 300)"; else GUARD=; fi

# run_client LABEL [EXTRA_CONF]: `p11enroll enroll test` on a fresh token
# LABEL through p11wrap; RC, $TMP/out, $TMP/err as p11e, $LOG the calls.
run_client() {
	make_token "$1" || return 1
	write_conf "$1" "$2"
	sed -i "s|^module = .*|module = $WRAP|" "$TMP/p11enroll.conf"
	: > "$LOG"
	env P11WRAP_MODULE="$SOFTHSM2_MODULE" P11WRAP_LOG="$LOG" \
		$GUARD "$P11ENROLL" -c "$TMP/p11enroll.conf" enroll test > "$TMP/out" 2> "$TMP/err"
	RC=$?
	return 0
}

calls() {
	grep -c "^$1 " "$LOG"
}

no_create() {
	n=$(calls C_CreateObject)
	[ "$n" -eq 0 ] || { echo "# C_CreateObject called $n times"; return 1; }
}

token_empty() {
	n=$(count_objects "$1")
	[ "$n" -eq 0 ] || { echo "# $n objects left on the token:"; objects "$1" | sed 's/^/#   /'; return 1; }
}

# no crash: no sanitizer report, no signal
no_crash() {
	[ "$RC" -lt 128 ] && ! grep -q -E 'Sanitizer|runtime error' "$TMP/err" ||
		{ echo "# exit $RC:"; sed 's/^/#   /' "$TMP/err" | head -20; return 1; }
}

ca_alive() {
	kill -0 "$CA_PID" 2> /dev/null
}

# the CA stops cleanly: no sanitizer report, no leak (ASan builds)
ca_clean() {
	stop_ca
	! grep -q -E 'Sanitizer|runtime error' "$TMP/ca.err" ||
		{ sed 's/^/#   /' "$TMP/ca.err" | head -40; return 1; }
}

# cert_serial PEM: the serial in hex (openssl splits a long one over lines)
cert_serial() {
	"$OPENSSL_BIN" x509 -in "$1" -noout -serial | tr -d '\\\n' | sed 's/^serial=//'
}

# issued_by_ca PEM N0: PEM is the one certificate the test CA issued since
# it had issued N0 (its record, issued/SERIAL.pem)
issued_by_ca() {
	_n=$(ca_issued) && [ "$_n" -eq $(($2 + 1)) ] ||
		{ echo "# the CA issued $_n certificates, expected $(($2 + 1))"; return 1; }
	_s=$(cert_serial "$1") &&
		cmp -s "$1" "$TMP/ca/issued/$_s.pem" ||
		{ echo "# $1 (serial $_s) is not the CA's issued/$_s.pem"; return 1; }
}

ca_saw() {
	grep -q -E "$1" "$TMP/ca.log" || { echo "# CA log lacks /$1/:"; sed 's/^/#   /' "$TMP/ca.log" | tail -20; return 1; }
}

# hostile NAME EXIT MESSAGE_REGEX CA_ARGS...: one case (client settings in
# CONF, extra lines for the [test] enrollment).
N=0
hostile() {
	name=$1 want=$2 msg=$3
	shift 3
	N=$((N + 1))
	start_ca "$@" || { not_ok "/hostile/$name/ca-start"; return; }
	run_client "h$N" "timeout = $(scaled "${MSG_TIMEOUT:-3}")
total_timeout = $(scaled "${TOTAL_TIMEOUT:-6}")
${CONF:-}" || { not_ok "/hostile/$name/token"; return; }
	check "/hostile/$name/exit-$want" expect_rc "$want"
	check "/hostile/$name/message" grep_err "$msg"
	check "/hostile/$name/no-crash" no_crash
	check "/hostile/$name/no-secret-in-output" no_secret_in "$TMP/out" "$TMP/err" "$LOG"
	check "/hostile/$name/no-C_CreateObject" no_create
	if [ "$want" = 9 ]; then
		# The CA may still deliver: the new key waits for `p11enroll resume`,
		# and abandoning the transaction empties the token.
		check "/hostile/$name/pending-saved" test "$(pending_count)" -eq 1
		env P11WRAP_MODULE="$SOFTHSM2_MODULE" P11WRAP_LOG="$LOG" $GUARD "$P11ENROLL" \
			-c "$TMP/p11enroll.conf" resume --abandon test > "$TMP/out2" 2> "$TMP/err2"
		check "/hostile/$name/abandon-exit-0" test $? -eq 0
		check "/hostile/$name/abandon-no-C_CreateObject" no_create
	else
		check "/hostile/$name/nothing-pending" test "$(pending_count)" -eq 0
	fi
	check "/hostile/$name/key-made-then-destroyed" made_and_removed "$LOG"
	check "/hostile/$name/token-empty" token_empty "h$N"
	check "/hostile/$name/ca-alive" ca_alive
	check "/hostile/$name/ca-clean-exit" ca_clean
	show
}

# HOSTILE_SHOW=1: each case's stderr as TAP comments (for reading the messages)
show() {
	[ -n "${HOSTILE_SHOW:-}" ] || return 0
	echo "# --- $name: exit $RC"
	sed 's/^/#   /' "$TMP/err" | cat -v
}

# --- positive controls: the harness itself works ------------------------------
# (this enrollment's ip is also the one the replay case sends again)
start_ca || exit 1
run_client good "timeout = $(scaled 3)
total_timeout = $(scaled 6)"
check "/hostile/control/pbm-exit-0" expect_rc 0
# the certificate, and the root and issuing CA certificates beside it
check "/hostile/control/pbm-C_CreateObject" test "$(calls C_CreateObject)" -ge 1
check "/hostile/control/pbm-cert-stored" test "$(objects good cert | grep -c 'label: *enrolled-key')" -eq 1
check "/hostile/control/saved-response" test -s "$TMP/ca/last-response.der"
start_ca --protection sig || exit 1
run_client good-sig "timeout = $(scaled 3)
total_timeout = $(scaled 6)"
check "/hostile/control/sig-exit-0" expect_rc 0
check "/hostile/control/sig-cert-stored" test "$(objects good-sig cert | grep -c 'label: *enrolled-key')" -eq 1
# the replayed response: the one for the first control enrollment
cp "$TMP/ca/last-response.der" "$TMP/saved.der"

# --- protection and header --------------------------------------------------------
hostile unprotected-ip 7 'missing protection' --fault unprotected
hostile unprotected-error 7 'missing protection' --fault unprotected-error
hostile bad-protection 7 'MAC protecting the response did not verify' --fault bad-protection
hostile wrong-tid 7 'transactionid unmatched' --fault wrong-tid
hostile wrong-nonce 7 'recipnonce unmatched' --fault wrong-nonce
# A MAC proves only knowledge of the secret: the client pins the CA's name.
CONF="expected_sender = /O=p11enroll test/CN=p11enroll Test Issuing CA"
hostile wrong-sender 7 "sender '.*Impostor', not the expected" --fault wrong-sender
CONF=
hostile wrong-certreqid 7 'certReqId' --fault wrong-certreqid
cp "$TMP/saved.der" "$TMP/ca/last-response.der"
hostile replay 7 'does not belong to this request' --fault replay
check "/hostile/replay/ca-replayed" ca_saw 'fault replay \('

# --- signature-protected responses (the client trusts root.pem) --------------------
hostile sig-bad-protection 7 'signature protecting the response did not verify' --protection sig --fault bad-protection
hostile sig-wrong-sender 7 'sender name = .*Impostor' --protection sig --fault wrong-sender
hostile sig-unprotected-ip 7 'missing protection' --protection sig --fault unprotected
hostile sig-wrong-tid 7 'transactionid unmatched' --protection sig --fault wrong-tid
hostile sig-sender-format 7 'sender name = .*CN=%n%s%x%n%s%p%%' --protection sig --fault sender-format
check "/hostile/sig-sender-format/no-format-expansion" sh -c "! grep -q -E '0x[0-9a-f]{6,}|\(nil\)' '$TMP/err'"

# --- the certificate ------------------------------------------------------------
hostile wrong-key 8 'public key .*does not match' --fault wrong-key
hostile wrong-subject 8 'subject' --fault wrong-subject
hostile untrusted-issuer 8 'does not verify against the configured trust anchors' --fault untrusted

# --- size and count -----------------------------------------------------------------
hostile huge 5 'larger than|size|cap' --fault huge
# Within the size cap, 5000 junk self-signed extraCerts next to a valid
# chain: the client finds the chain among them and enrolls (exit 0), and
# stores none of the junk: its certificate (the one the CA issued) and the
# two CA certificates, three C_CreateObject.
start_ca --fault many-extracerts=5000 || exit 1
n0=$(ca_issued)
# a hang guard as long as the over-cap case's: the CA makes 5000 junk
# certificates per answer and the client sifts them, slow on a busy
# machine (write_conf's 30 s ran out beside a CPU hog at load 10)
run_client many "max_response_size = 8388608
cert_out = $TMP/many.pem
timeout = $(scaled 60)
total_timeout = $(scaled 120)"
check "/hostile/many-extracerts/ends" no_crash
check "/hostile/many-extracerts/ca-sent-them" ca_saw 'fault many-extracerts=5000'
check "/hostile/many-extracerts/enrolled-exit-0" expect_rc 0
check "/hostile/many-extracerts/cert-stored" test "$(label_count many enrolled-key)" -eq 3
check "/hostile/many-extracerts/the-issued-cert" issued_by_ca "$TMP/many.pem" "$n0"
check "/hostile/many-extracerts/no-junk-stored" test "$(objects many | grep -c 'junk')" -eq 0
check "/hostile/many-extracerts/3-C_CreateObject" test "$(calls C_CreateObject)" -eq 3
check "/hostile/many-extracerts/no-secret-in-output" no_secret_in "$TMP/out" "$TMP/err" "$LOG"
name=many-extracerts show
# the size cap, not a timeout, must end it: time enough for the CA to make
# the junk on a busy machine
MSG_TIMEOUT=60 TOTAL_TIMEOUT=120
hostile many-extracerts-over-cap 5 'larger than|size|cap' --fault many-extracerts=5000
MSG_TIMEOUT= TOTAL_TIMEOUT=

# --- polling ----------------------------------------------------------------------
TOTAL_TIMEOUT=4
hostile check-after-huge 7 'checkAfter.*out of range' --fault check-after-huge
hostile endless-poll 9 'waiting.*total timeout' --fault endless-poll
TOTAL_TIMEOUT=

# --- HTTP -------------------------------------------------------------------------
hostile redirect 5 'redirect' --fault redirect
hostile http500 5 'HTTP.*500' --fault http500
hostile drop 5 'Empty reply|connection' --fault drop
hostile garbage 7 'not a CMP message' --fault garbage
hostile truncated 7 'not a CMP message' --fault truncated
hostile content-type 5 'content type|Content-Type' --fault content-type
hostile slow 5 'no complete response within' --fault slow=$(scaled 20)

# --- rejections -------------------------------------------------------------------
hostile reject-badPOP 6 'badPOP' --fault reject=badPOP
hostile reject-badCertTemplate 6 'badCertTemplate' --fault reject=badCertTemplate
hostile reject-notAuthorized 6 'notAuthorized' --fault reject=notAuthorized
hostile weird-text 6 'badRequest' --fault weird-text
# the CA's text reaches the terminal without raw control characters
check "/hostile/weird-text/no-escape" sh -c "! grep -q \"\$(printf '\\033')\" '$TMP/err'"
check "/hostile/weird-text/no-forged-line" sh -c "! grep -q '^p11enroll: certificate stored' '$TMP/err'"

# A 40-byte serial number (RFC 5280 allows 20; users SHOULD handle longer
# ones gracefully): accepted and stored as issued, serial and all.
start_ca --fault oversized-serial || exit 1
n0=$(ca_issued)
run_client serial "cert_out = $TMP/serial.pem"
check "/hostile/oversized-serial/no-crash" no_crash
check "/hostile/oversized-serial/exit-0" expect_rc 0
check "/hostile/oversized-serial/cert-stored" test "$(label_count serial enrolled-key)" -eq 3
check "/hostile/oversized-serial/the-issued-cert" issued_by_ca "$TMP/serial.pem" "$n0"
check "/hostile/oversized-serial/serial-40-bytes" test "$(cert_serial "$TMP/serial.pem" | wc -c)" -eq 80
name=oversized-serial show

# --- renewal (kur/kup): the token keeps exactly what it had -----------------------
# renew_client [EXTRA_CONF]: `p11enroll renew test` through p11wrap on
# token "renewal"
renew_client() {
	write_conf renewal "timeout = $(scaled 3)
total_timeout = $(scaled 6)
${1:-}"
	sed -i "s|^module = .*|module = $WRAP|" "$TMP/p11enroll.conf"
	: > "$LOG"
	env P11WRAP_MODULE="$SOFTHSM2_MODULE" P11WRAP_LOG="$LOG" \
		$GUARD "$P11ENROLL" -c "$TMP/p11enroll.conf" renew test > "$TMP/out" 2> "$TMP/err"
	RC=$?
}
# snapshot FILE: no FILE when the token cannot be listed
snapshot() {
	_snap=$(objects renewal) || { rm -f "$1"; return 1; }
	printf '%s\n' "$_snap" | sort > "$1"
}
start_ca || exit 1
run_client renewal "timeout = $(scaled 3)
total_timeout = $(scaled 6)"
check "/hostile/renew/setup-enrolled" expect_rc 0
cp "$TMP/ca/last-response.der" "$TMP/saved.der"

# hostile_kup NAME EXIT MESSAGE_REGEX CA_ARGS...
hostile_kup() {
	name=renew-$1 want=$2 msg=$3
	shift 3
	snapshot "$TMP/before"
	start_ca "$@" || { not_ok "/hostile/$name/ca-start"; return; }
	renew_client
	snapshot "$TMP/after"
	check "/hostile/$name/exit-$want" expect_rc "$want"
	check "/hostile/$name/message" grep_err "$msg"
	check "/hostile/$name/no-crash" no_crash
	check "/hostile/$name/no-secret-in-output" no_secret_in "$TMP/out" "$TMP/err" "$LOG"
	check "/hostile/$name/no-C_CreateObject" no_create
	check "/hostile/$name/token-unchanged" cmp -s "$TMP/before" "$TMP/after"
	check "/hostile/$name/ca-clean-exit" ca_clean
	show
}
hostile_kup wrong-tid 7 'transactionid unmatched' --fault wrong-tid
hostile_kup wrong-sender 7 'sender name = .*Impostor' --fault wrong-sender
hostile_kup wrong-certreqid 7 'certReqId' --fault wrong-certreqid
hostile_kup bad-protection 7 'signature protecting the response did not verify' \
	--fault bad-protection
cp "$TMP/saved.der" "$TMP/ca/last-response.der"
# (the replayed ip is PBM-protected: a kur has no secret to check it with)
hostile_kup replayed-ip 7 'does not belong|transactionid|did not verify' --fault replay

# caPubs in a kup (RFC 4210: only in an ip): an injected root and the real
# one.  The renewal goes through on the verified chain; the caPub that is
# not on it is ignored (and said so), neither is stored, and the injected
# root never becomes trusted: one C_CreateObject, the new certificate.
name=renew-capubs-in-kup
start_ca --fault capubs-in-kup || exit 1
n0=$(ca_issued)
renew_client "cert_out = $TMP/kup.pem"
check "/hostile/$name/ca-sent-them" ca_saw 'kur: fault capubs-in-kup'
check "/hostile/$name/no-crash" no_crash
check "/hostile/$name/renewed-exit-0" expect_rc 0
check "/hostile/$name/says-ignored" \
	grep_err 'warning: cmp: ignored 1 caPubs certificate\(s\) that are not on the verified chain'
check "/hostile/$name/the-issued-cert" issued_by_ca "$TMP/kup.pem" "$n0"
no_injected_root() {
	_nir=$(objects renewal) && ! printf '%s\n' "$_nir" | grep -q 'Injected Root'
}
check "/hostile/$name/injected-root-not-stored" no_injected_root
check "/hostile/$name/one-C_CreateObject" test "$(calls C_CreateObject)" -eq 1
check "/hostile/$name/no-secret-in-output" no_secret_in "$TMP/out" "$TMP/err" "$LOG"
check "/hostile/$name/ca-clean-exit" ca_clean
show

finish
