#!/bin/sh
# /faults: every way the CA can fail ends in a clean non-zero exit, a clear
# message, nothing stored and no key left behind on the token.  The key
# pair is made before the CA is asked: the client runs through tests/p11wrap,
# whose call log shows the pair made and both its objects destroyed after
# the failure (so "token empty" is a cleanup, not a key never made).  The
# messages are the client's own words for each failure.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
WRAP="$top_builddir/tests/p11wrap/p11wrap.so"
need_file "$WRAP"
setup
plan 107
make_token faults || exit 1
LOG="$TMP/calls.log"

# enroll_wrapped: `p11enroll enroll test` through p11wrap; RC, $TMP/out,
# $TMP/err as p11e, $LOG the PKCS#11 calls.
enroll_wrapped() {
	sed -i "s|^module = .*|module = $WRAP|" "$TMP/p11enroll.conf"
	: > "$LOG"
	env P11WRAP_MODULE="$SOFTHSM2_MODULE" P11WRAP_LOG="$LOG" \
		"$P11ENROLL" -c "$TMP/p11enroll.conf" enroll test > "$TMP/out" 2> "$TMP/err"
	RC=$?
}

# nothing_left NAME: the pair was made, removed again, and the client says so.
nothing_left() {
	check "/faults/$1/key-made-then-destroyed" made_and_removed "$LOG"
	check "/faults/$1/says-removed" grep_err '^p11enroll: the new key pair was removed from the token$'
	check "/faults/$1/token-empty" test "$(count_objects faults)" -eq 0
}

# fault NAME EXIT_CODE MESSAGE_REGEX [CA_ARGS...]
fault() {
	name=$1 want=$2 msg=$3
	shift 3
	start_ca "$@" || { not_ok "/faults/$name/ca-start"; return; }
	write_conf faults "timeout = $(scaled 3)
total_timeout = $(scaled 5)"
	enroll_wrapped
	check "/faults/$name/exit-$want" expect_rc "$want"
	check "/faults/$name/message" grep_err "$msg"
	nothing_left "$name"
	check "/faults/$name/no-secret-in-output" no_secret_in "$TMP/out" "$TMP/err"
}

fault http500 5 'sending the ir to [^ ]*: the server answered HTTP 500 instead of 200' --fault http500
fault drop 5 'sending the ir to [^ ]*: HTTP transfer failed: Empty reply from server' --fault drop
fault garbage 7 'the response is not a CMP message \([0-9]+ bytes that do not decode as one PKIMessage\)' --fault garbage
fault truncated 7 'the response is not a CMP message \([0-9]+ bytes that do not decode as one PKIMessage\)' --fault truncated
fault content-type 5 "the response has content type 'text/html', not application/pkixcmp" --fault content-type
fault redirect 5 'the server redirected \(HTTP 302\) to http://127\.0\.0\.1:1/elsewhere, and redirects are not followed' --fault redirect
fault huge 5 'the response is larger than the limit of 1048576 bytes, so the transfer was aborted' --fault huge
fault wrong-tid 7 'transactionid unmatched; the response does not belong to this request' --fault wrong-tid
fault wrong-nonce 7 'recipnonce unmatched; the response does not belong to this request' --fault wrong-nonce
fault unprotected-error 7 'missing protection; the response protection did not verify' --fault unprotected-error
fault bad-protection 7 'the MAC protecting the response did not verify: check the reference value and secret' --fault bad-protection
fault slow 5 "no complete response within $(scaled 3) s \\(.*\\); check that the server is reachable, or raise the timeout" \
	--fault slow=$(scaled 20)
fault reject-badPOP 6 'PKIFailureInfo: badPOP; .*; the CA could not verify the proof of possession made with the token key' --fault reject=badPOP
fault reject-badCertTemplate 6 "PKIFailureInfo: badCertTemplate; .*; check the subject, SANs and key type against the CA's policy" --fault reject=badCertTemplate
fault wrong-key 8 'the issued certificate was refused: .*public key.*; the CA did not issue what was requested' --fault wrong-key
fault untrusted 8 "the certificate \(issuer 'CN=p11enroll Untrusted CA,O=p11enroll test'\) does not verify against the configured trust anchors" --fault untrusted
fault wrong-subject 8 "the certificate's subject 'CN=wrong subject' is not the requested 'O=Example,CN=p11enroll test'" --fault wrong-subject

# Nobody listening at all.
stop_ca
write_conf faults
sed -i "s|^server = .*|server = http://127.0.0.1:1/.well-known/cmp|" "$TMP/p11enroll.conf"
enroll_wrapped
check "/faults/no-server/exit-5" expect_rc 5
check "/faults/no-server/message" grep_err \
	'sending the ir to http://127\.0\.0\.1:1/\.well-known/cmp: cannot connect: .*; check the server URL, that the CA is running'
nothing_left no-server
finish
