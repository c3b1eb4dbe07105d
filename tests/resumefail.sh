#!/bin/sh
# /resumefail: protocol errors while a pending request is resumed
# (cmp/cmpc_poll.c), beside the hostile answers of tests/resume.sh.  The
# test CA holds each request (--poll 3600: the first process stops at once,
# exit 9) and delivers only once the test says so (--deliver-when FILE);
# its faults hit the answers to pollReqs (--fault-on pollReq) only once the
# test says so (--fault-when FILE), that is in the resumed process: no case
# depends on how fast anything runs.
#   certreqid        the pollRep names another certReqId: exit 7
#   wrong-body       the certificate comes as cp for an ir, as ip for a kur:
#                    exit 7, nothing stored, a kur's old pair untouched
#   bad-protection   the delivered certificate's protection does not verify:
#                    exit 7, transaction and key kept; the next resume ends
#                    on the CA's own (verified) answer
#   unprotected-error  (unprotected_errors = yes) an unprotected error ends
#                    nothing: exit 7, transaction and key kept, and the
#                    next resume gets the certificate
#   key-unreadable   the token fails to read (through tests/p11wrap) the
#                    pending key (enroll) or the certificate to renew: exit 3,
#                    transaction and key kept, and the next resume gets the
#                    certificate
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
setup
plan 58
DELIVER="$TMP/deliver"
FAULTY="$TMP/faulty"
LABEL=enrolled-key
# a hang guard only, not a timing threshold
if command -v timeout > /dev/null 2>&1; then GUARD="timeout -s KILL $(scaled 120)"; else GUARD=; fi

# kind LABEL CLASS: objects of that class (Certificate, Private Key) with exactly that label.

field() {
	sed -n "s/^$1 //p" "$STATE"
}

issued() {
	grep -c 'issued serial' "$TMP/ca.log"
}

snapshot() {
	objects "$TOK" | sort > "$1"
}

unchanged() {
	cmp -s "$1" "$2" || { echo "# the token changed:"; diff "$1" "$2" | sed 's/^/#   /'; return 1; }
}

pe() {
	"$P11ENROLL" -c "$TMP/p11enroll.conf" "$@" > "$TMP/out" 2> "$TMP/err"
	RC=$?
}

# resume_guarded: p11enroll resume test, under the hang guard.
resume_guarded() {
	$GUARD "$P11ENROLL" -c "$TMP/p11enroll.conf" resume test > "$TMP/out" 2> "$TMP/err"
	RC=$?
}

# pending TOKEN EXTRA CMD CA_ARGS...: a fresh token (enrolled first for
# renew), the CA holding its requests, CMD test left pending (exit 9).
pending() {
	TOK=$1 extra=$2 cmd=$3
	shift 3
	rm -f "$DELIVER" "$FAULTY" "$TMP"/state/pending/*.pending
	make_token "$TOK" || exit 1
	STATE=$(pending_file "$TOK")
	rm -f "$TMP/ca.log"
	if [ "$cmd" = renew ]; then
		start_ca || exit 1
		write_conf "$TOK" "$extra"
		pe enroll test
		[ "$RC" = 0 ] || { echo "# setup enroll failed"; sed 's/^/#   /' "$TMP/err"; exit 1; }
		snapshot "$TMP/enrolled"
	fi
	start_ca --poll 3600 --deliver-when "$DELIVER" --fault-on pollReq --fault-when "$FAULTY" \
		"$@" || exit 1
	write_conf "$TOK" "$extra"
	pe $cmd test
	[ "$RC" = 9 ] || { echo "# setup: $cmd did not wait (exit $RC)"; sed 's/^/#   /' "$TMP/err"; exit 1; }
	key=$(label_id "$TOK" privkey "$LABEL (new)")
	[ -n "$key" ] && [ "$(field key_id)" = "$key" ] || { echo "# setup: no pending key"; exit 1; }
	touch "$FAULTY"
}

# ended NAME: the transaction is over here: no state, no new key, nothing
# stored under the label by this run.
ended() {
	check "$1/state-removed" test ! -e "$STATE"
	check "$1/new-key-removed" test "$(kind "$LABEL (new)" 'Private Key')" -eq 0
	check "$1/no-secret" no_secret_in "$TMP/out" "$TMP/err"
}

# --- the pollRep names another certReqId -----------------------------------------
pending rf-certreqid "" enroll --fault wrong-certreqid
resume_guarded
t=/resumefail/certreqid
check "$t/exit-7" expect_rc 7
check "$t/message" grep_err "the CA's pollRep has no entry for certReqId 0; report it to the CA operator"
check "$t/ca-sent-it" grep -q 'pollReq: fault wrong-certreqid' "$TMP/ca.log"
check "$t/no-cert" test "$(kind "$LABEL" Certificate)" -eq 0
ended "$t"

# --- the certificate comes in the wrong body type ----------------------------------
pending rf-body-ir "" enroll --fault wrong-body
touch "$DELIVER"
resume_guarded
t=/resumefail/wrong-body/ir
check "$t/exit-7" expect_rc 7
check "$t/message" grep_err 'the CA answered the pollReq with cp, neither pollRep nor the certificate'
check "$t/ca-sent-it" grep -q 'pollReq: fault wrong-body (ip sent as cp)' "$TMP/ca.log"
check "$t/no-cert" test "$(kind "$LABEL" Certificate)" -eq 0 -a "$(count_objects "$TOK")" -eq 0
ended "$t"

pending rf-body-kur "" renew --fault wrong-body
touch "$DELIVER"
resume_guarded
t=/resumefail/wrong-body/kur
check "$t/exit-7" expect_rc 7
check "$t/message" grep_err 'the CA answered the pollReq with ip, neither pollRep nor the certificate'
check "$t/ca-sent-it" grep -q 'pollReq: fault wrong-body (kup sent as ip)' "$TMP/ca.log"
snapshot "$TMP/after"
check "$t/old-pair-untouched" unchanged "$TMP/enrolled" "$TMP/after"
ended "$t"

# --- the delivered certificate's protection does not verify -----------------------
# Anyone on the path can send such an answer: it ends nothing, the
# transaction and its key stay, and the next resume gets the certificate.
pending rf-badprot "" enroll --fault bad-protection --fault-count 1
key=$(field key_id)
touch "$DELIVER"
resume_guarded
t=/resumefail/bad-protection
check "$t/exit-7" expect_rc 7
check "$t/message" grep_err "the protection of the CA's answer does not verify"
check "$t/delivered" grep -q 'pollReq: delivering' "$TMP/ca.log"
check "$t/no-cert" test "$(kind "$LABEL" Certificate)" -eq 0 -a "$(kind "$LABEL (new)" Certificate)" -eq 0
check "$t/says-still-pending" grep_err 'still pending at the CA.*p11enroll resume test'
check "$t/state-kept" test -f "$STATE" -a "$(field key_id)" = "$key"
check "$t/key-kept" test "$(label_id "$TOK" privkey "$LABEL (new)")" = "$key"
# This CA has delivered (it waits for the certConf now) and answers the
# next pollReq with a verified rejection: that, not the forgery, ends it.
resume_guarded
check "$t/next-resume-verified-end-exit-6" expect_rc 6
check "$t/next-resume-ca-ended" grep_err 'the CA ended the transaction'
check "$t/next-resume-key-removed" test "$(kind "$LABEL (new)" 'Private Key')" -eq 0
check "$t/next-resume-state-removed" test ! -e "$STATE"

# --- an unprotected error while polling ends nothing -------------------------------
pending rf-unprot "unprotected_errors = yes" enroll --fault unprotected-error --fault-count 1
resume_guarded
t=/resumefail/unprotected-error
check "$t/exit-7" expect_rc 7
check "$t/message" grep_err 'an unprotected error message says the transaction ended \(unverified: it may not come from the CA\).*; polling again later'
check "$t/says-still-pending" grep_err 'still pending at the CA.*p11enroll resume test'
check "$t/state-kept" test -f "$STATE" -a "$(field key_id)" = "$key"
check "$t/key-kept" test "$(label_id "$TOK" privkey "$LABEL (new)")" = "$key"
touch "$DELIVER"
n=$(issued)
resume_guarded
check "$t/next-resume-exit-0" expect_rc 0
check "$t/next-resume-enrolled" grep -q '^enrolled test' "$TMP/out"
check "$t/next-resume-same-key" test "$(label_id "$TOK" cert "$LABEL")" = "$key" -a \
	"$(label_id "$TOK" privkey "$LABEL")" = "$key"
check "$t/next-resume-one-cert" test "$(issued)" -eq $((n + 1))
check "$t/next-resume-state-removed" test ! -e "$STATE"

# --- the token fails to read the pending key ----------------------------------------
# Reading the key's attributes fails (CKR_DEVICE_ERROR from C_GetAttributeValue,
# injected): a token that is busy or out of memory for a moment.  The
# transaction is the CA's to end, not ours: the key and the state stay.
WRAP="$top_builddir/tests/p11wrap/p11wrap.so"
for cmd in enroll renew; do
	t=/resumefail/key-unreadable/$cmd
	pending rf-unread-$cmd "" $cmd
	rm -f "$FAULTY"
	touch "$DELIVER"
	sed -i "s|^module = .*|module = $WRAP|" "$TMP/p11enroll.conf"
	: > "$TMP/calls.log"
	P11WRAP_MODULE="$SOFTHSM2_MODULE" P11WRAP_LOG="$TMP/calls.log" \
		P11WRAP_FAIL=C_GetAttributeValue=CKR_DEVICE_ERROR resume_guarded
	check "$t/exit-3" expect_rc 3
	check "$t/message" grep_err "CKR_DEVICE_ERROR"
	# enroll reads the key first; renew the certificate to renew, and stops there
	[ $cmd = renew ] ||
		check "$t/says-kept" grep_err 'the key pair and the pending request are kept: run `p11enroll resume test` again'
	check "$t/state-kept" test -f "$STATE" -a "$(field key_id)" = "$key"
	check "$t/key-kept" test "$(label_id "$TOK" privkey "$LABEL (new)")" = "$key"
	write_conf "$TOK" ""
	n=$(issued)
	resume_guarded
	check "$t/next-resume-exit-0" expect_rc 0
	check "$t/next-resume-same-key" test "$(label_id "$TOK" cert "$LABEL")" = "$key"
	check "$t/next-resume-one-cert" test "$(issued)" -eq $((n + 1))
done

stop_ca
check "/resumefail/ca-clean" sh -c "! grep -q -E 'Sanitizer|runtime error' '$TMP/ca.err'"
finish
