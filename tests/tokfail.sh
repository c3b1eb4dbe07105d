#!/bin/sh
# /tokfail: token calls that fail in the middle of enroll and renew
# (through tests/p11wrap), each with its exit code, the CKR_ name in the
# message, the token's state seen through pkcs11-tool (SoftHSM2 directly)
# and, where nothing is left behind, the call log showing that the step
# that made something did run:
#   keygen     setting CKA_ID of a new pair fails (pkcs11/tok_keygen.c): the
#              half-made pair is destroyed; when that fails too, the message
#              says what is left and the next run removes it
#   store      storing the new certificate in a renew fails (agent/certreq.c)
#   certconf-sign  the old key does not sign a renew's certConf
#   revoke-delete  revoke --delete: deleting or marking the pair fails
#   cacert     storing a CA certificate fails: in an enrollment the run fails
#              and takes back what it stored; after a renew only a warning
#   cleanup    removing the new pair after a failure fails (agent/certreq.c):
#              said, left for the next run (or by hand)
#   readback   the certificate just stored does not read back, reads back
#              damaged or as another certificate (pkcs11/tok_cert.c)
#   once       p11wrap's P11WRAP_ONCE (one process fires) and P11WRAP_GONE
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
WRAP="$top_builddir/tests/p11wrap/p11wrap.so"
need_file "$WRAP"
setup
plan 166
export P11WRAP_MODULE="$SOFTHSM2_MODULE"
LABEL=enrolled-key
LOG="$TMP/calls.log"

# conf TOKEN [EXTRA]: the [test] enrollment through p11wrap at the CA now running.
conf() {
	write_conf "$1" "${2:-}"
	sed -i "s|^module = .*|module = $WRAP|" "$TMP/p11enroll.conf"
}

# run COMMAND [VAR=VALUE...]: p11enroll COMMAND test on $TOK through p11wrap
# with the given P11WRAP_* settings; RC, $TMP/out, $TMP/err as p11e, the
# calls in $LOG.
run() {
	_cmd=$1
	shift
	conf "$TOK" "${EXTRA:-}"
	: > "$LOG"
	env P11WRAP_LOG="$LOG" "$@" "$P11ENROLL" -c "$TMP/p11enroll.conf" $_cmd test \
		> "$TMP/out" 2> "$TMP/err"
	RC=$?
}

# calls LINE_REGEX: how many lines of the call log match.
calls() {
	grep -c -E "$1" "$LOG"
}

# expect_calls LINE_REGEX N
expect_calls() {
	_n=$(calls "$1")
	[ "$_n" -eq "$2" ] || {
		echo "# /$1/ in the call log $_n times, expected $2:"
		sed 's/^/#   /' "$LOG" | grep -v -E 'C_(GetAttributeValue|FindObjects|GetSlot|GetToken|GetMech)' | head -40
		return 1
	}
}

# after_first FIRST_REGEX LINE_REGEX: lines matching LINE_REGEX after the
# first line matching FIRST_REGEX.
after_first() {
	awk -v a="$1" -v b="$2" 'seen && $0 ~ b { n++ } !seen && $0 ~ a { seen = 1 } END { print n + 0 }' "$LOG"
}

# expect_after FIRST_REGEX LINE_REGEX N
expect_after() {
	_n=$(after_first "$1" "$2")
	[ "$_n" -eq "$3" ] || { echo "# /$2/ after /$1/: $_n times, expected $3"; return 1; }
}

# next_is AFTER_REGEX LINE_REGEX: the call right after the last line
# matching AFTER_REGEX matches LINE_REGEX.
next_is() {
	_l=$(awk -v a="$1" '$0 ~ a { nxt = 1; next } nxt { l = $0; nxt = 0 } END { print l }' "$LOG")
	echo "$_l" | grep -q -E "$2" || { echo "# after /$1/ came '$_l', not /$2/"; return 1; }
}

snapshot() {
	objects "$TOK" | sort > "$1"
}

unchanged() {
	cmp -s "$1" "$2" || { echo "# the token changed:"; diff "$1" "$2" | sed 's/^/#   /'; return 1; }
}

empty() {
	_n=$(count_objects "$TOK")
	[ "$_n" -eq 0 ] || { echo "# $_n objects on the token:"; objects "$TOK" | grep -E 'Object|label' | sed 's/^/#   /'; return 1; }
}

# signs ID CERT_PEM: the token key ID signs, and CERT_PEM's key verifies it.
signs() {
	"$OPENSSL_BIN" x509 -in "$2" -noout -pubkey > "$TMP/pub.pem" &&
		key_signs_for "$TOK" "$1" "$TMP/pub.pem"
}

# fresh TOKEN: a new empty token.
fresh() {
	TOK=$1
	make_token "$TOK" || exit 1
}

# enrolled TOKEN: a new token with an enrolled pair; $old its CKA_ID,
# $TMP/old.pem its certificate, $TMP/enrolled the token's objects.
enrolled() {
	fresh "$1"
	EXTRA="cert_out = $TMP/old.pem"
	run enroll
	EXTRA=
	[ "$RC" = 0 ] || { echo "# setup enrollment failed:"; sed 's/^/#   /' "$TMP/err"; exit 1; }
	old=$(label_id "$TOK" privkey "$LABEL")
	snapshot "$TMP/enrolled"
}

start_ca || exit 1

# --- listing: the module's slot listing fails (pkcs11/tok_ctx.c) --------------
# libp11 gives up on the whole list when one token fails to answer (SoftHSM2
# answers CKR_GENERAL_ERROR for a token another process is writing), so
# the listing is tried 4 times, a little apart, and when all 4 fail, 4 times
# more after a new C_Initialize (SoftHSM2 may keep failing a token it read
# mid-write until then: tests/reloadloop.sh).  Once, or only in the first
# initialization: the command goes on.  Each time: the
# message names the call and its CKR_ (the calls made again one by one),
# or says that every slot answered when asked again.
# libp11 0.4.12 leaks the slot it was setting up when C_GetTokenInfo fails
# (PKCS11_enumerate_slots frees only the slots before it): leak detection
# is off for these runs only; the C_GetSlotList cases have no such leak.
fresh listing
NOLEAK="ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
run enroll "$NOLEAK" P11WRAP_FAIL=C_GetTokenInfo=CKR_DEVICE_ERROR
t=/tokfail/listing/token-info
check "$t/exit-3" expect_rc 3
check "$t/message" grep_err "listing the slots of the PKCS#11 module failed 4 times, and 4 more times after the module was initialized again: C_GetTokenInfo\(slot [0-9]*\): CKR_DEVICE_ERROR: a token does not answer"
check "$t/token-empty" empty
# C_GetTokenInfo: the 1st call of each listing fails (1 to 4), the calls
# made again one by one (5, 6: two slots) answer; the same after the new
# C_Initialize (P11WRAP_FAIL counts from it again)
run enroll "$NOLEAK" P11WRAP_FAIL=C_GetTokenInfo=CKR_GENERAL_ERROR@1,C_GetTokenInfo=CKR_GENERAL_ERROR@2,C_GetTokenInfo=CKR_GENERAL_ERROR@3,C_GetTokenInfo=CKR_GENERAL_ERROR@4
t=/tokfail/listing/token-info-each-listing
check "$t/exit-3" expect_rc 3
check "$t/listed-8-times" expect_calls '^C_GetTokenInfo rv=CKR_GENERAL_ERROR injected$' 8
check "$t/initialized-twice" expect_calls '^C_Initialize rv=CKR_OK$' 2
check "$t/message" grep_err "listing the slots of the PKCS#11 module failed 4 times, and 4 more times after the module was initialized again, and every slot answered when asked again: try again"
check "$t/token-empty" empty
run enroll "$NOLEAK" P11WRAP_FAIL=C_GetTokenInfo=CKR_GENERAL_ERROR@1
t=/tokfail/listing/token-info-once
check "$t/exit-0" expect_rc 0
check "$t/failed-once" expect_calls '^C_GetTokenInfo rv=CKR_GENERAL_ERROR injected$' 1
check "$t/enrolled" test "$(label_count "$TOK" "$LABEL")" -eq 3
fresh listing3
# A token that fails every call until the module is initialized again (as
# SoftHSM2 after reading its file mid-write): the command goes on.
run enroll "$NOLEAK" P11WRAP_FIRST_INIT=1 P11WRAP_FAIL=C_GetTokenInfo=CKR_GENERAL_ERROR
t=/tokfail/listing/token-info-until-initialized
check "$t/exit-0" expect_rc 0
check "$t/failed-5-times" expect_calls '^C_GetTokenInfo rv=CKR_GENERAL_ERROR injected$' 5
check "$t/initialized-twice" expect_calls '^C_Initialize rv=CKR_OK$' 2
check "$t/no-message" sh -c "! grep -q 'does not answer' '$TMP/err'"
check "$t/enrolled" test "$(label_count "$TOK" "$LABEL")" -eq 3
fresh listing2
run enroll P11WRAP_FAIL=C_GetSlotList=CKR_FUNCTION_FAILED
t=/tokfail/listing/slot-list
check "$t/exit-3" expect_rc 3
check "$t/message" grep_err "listing the slots of the PKCS#11 module failed 4 times, and 4 more times after the module was initialized again: C_GetSlotList: CKR_FUNCTION_FAILED"
# A slot that appears between count and list (CKR_BUFFER_TOO_SMALL): the
# even calls are each listing's list, the 10th the list of the calls made
# again, which counts and lists again (11, 12) and finds all answering.
run enroll P11WRAP_FAIL=C_GetSlotList=CKR_BUFFER_TOO_SMALL@2,C_GetSlotList=CKR_BUFFER_TOO_SMALL@4,C_GetSlotList=CKR_BUFFER_TOO_SMALL@6,C_GetSlotList=CKR_BUFFER_TOO_SMALL@8,C_GetSlotList=CKR_BUFFER_TOO_SMALL@10
t=/tokfail/listing/slot-appeared
check "$t/exit-3" expect_rc 3
check "$t/asked-again" next_is 'C_GetSlotList rv=CKR_BUFFER_TOO_SMALL injected' '^C_GetSlotList rv=CKR_OK$'
check "$t/message" grep_err "listing the slots of the PKCS#11 module failed 4 times, and 4 more times after the module was initialized again, and every slot answered when asked again: try again"
run enroll P11WRAP_FAIL=C_GetSlotList=CKR_BUFFER_TOO_SMALL@2
t=/tokfail/listing/slot-appeared-once
check "$t/exit-0" expect_rc 0
check "$t/enrolled" test "$(label_count "$TOK" "$LABEL")" -eq 3
: > "$TMP/ca.log"

# --- genm --ca-certs --store: all or none (agent/genm.c) ----------------------
# The second CA certificate cannot be stored: the first, stored by this
# run, is removed again.
# genm_store TOKEN FAIL: genm --ca-certs --store on a new token, with
# P11WRAP_FAIL=FAIL.
genm_store() {
	fresh "$1"
	conf "$TOK" ""
	: > "$LOG"
	env P11WRAP_LOG="$LOG" P11WRAP_FAIL="$2" "$P11ENROLL" -c "$TMP/p11enroll.conf" \
		genm test --ca-certs "$TMP/cacerts.pem" --store > "$TMP/out" 2> "$TMP/err"
	RC=$?
}
genm_store cacerts C_CreateObject=CKR_DEVICE_ERROR@2
t=/tokfail/genm-store/second-fails
check "$t/exit-3" expect_rc 3
check "$t/message" grep_err "storing a CA certificate on the token failed: .*CKR_DEVICE_ERROR"
check "$t/first-stored" expect_calls '^C_CreateObject rv=CKR_OK$' 1
check "$t/first-removed" expect_after 'C_CreateObject rv=CKR_DEVICE_ERROR injected' '^C_DestroyObject rv=CKR_OK$' 1
check "$t/token-empty" empty
# A module before PKCS#11 v2.30 does not know CKA_CERTIFICATE_CATEGORY:
# the CA certificate is stored again without it.
genm_store cacerts2 C_CreateObject=CKR_ATTRIBUTE_TYPE_INVALID@1
t=/tokfail/genm-store/no-category
check "$t/exit-0" expect_rc 0
check "$t/stored-again" next_is 'C_CreateObject rv=CKR_ATTRIBUTE_TYPE_INVALID injected' '^C_CreateObject rv=CKR_OK$'
check "$t/both-stored" test "$(objects "$TOK" cert | grep -c '^Certificate Object')" -eq 2
: > "$TMP/ca.log"

# --- keygen: CKA_ID of the private key (1st call), of the public key (2nd) ----
for n in 1 2; do
	fresh "keyid$n"
	run enroll P11WRAP_FAIL=C_SetAttributeValue=CKR_DEVICE_ERROR@$n
	t="/tokfail/keygen/enroll-cka-id-$n"
	check "$t/exit-3" expect_rc 3
	check "$t/message" grep_err "generating the new key pair on the token failed: .*setting CKA_ID of a new key on token 'keyid$n' failed: CKR_DEVICE_ERROR"
	check "$t/generated" expect_calls '^C_GenerateKeyPair rv=CKR_OK$' 1
	check "$t/set-id-failed" expect_calls '^C_SetAttributeValue rv=CKR_DEVICE_ERROR injected$' 1
	check "$t/both-destroyed" expect_after ' injected$' '^C_DestroyObject rv=CKR_OK$' 2
	check "$t/no-request" test "$(grep -c ' ir -> ' "$TMP/ca.log")" -eq 0
	check "$t/token-empty" empty
	: > "$TMP/ca.log"
done

# in a renew: the old pair stays as it was and signs
enrolled keyid-kur
run renew P11WRAP_FAIL=C_SetAttributeValue=CKR_DEVICE_ERROR@1
t=/tokfail/keygen/renew
check "$t/exit-3" expect_rc 3
check "$t/message" grep_err "generating the new key pair on the token failed: .*setting CKA_ID of a new key on token 'keyid-kur' failed: CKR_DEVICE_ERROR"
check "$t/generated" expect_calls '^C_GenerateKeyPair rv=CKR_OK$' 1
check "$t/both-destroyed" expect_after ' injected$' '^C_DestroyObject rv=CKR_OK$' 2
snapshot "$TMP/after"
check "$t/token-unchanged" unchanged "$TMP/enrolled" "$TMP/after"
check "$t/old-key-signs" signs "$old" "$TMP/old.pem"

# the half-made pair cannot be destroyed either: said, and the next run removes it
fresh keyid-stays
run enroll P11WRAP_FAIL=C_SetAttributeValue=CKR_DEVICE_ERROR@1,C_DestroyObject=CKR_DEVICE_ERROR
t=/tokfail/keygen/destroy-fails
check "$t/exit-3" expect_rc 3
check "$t/message" grep_err "CKR_DEVICE_ERROR.*; removing the half-made key pair failed too \\(C_DestroyObject: CKR_DEVICE_ERROR\\): the pair is left on the token, labelled '$LABEL \\(new\\)'"
check "$t/destroy-tried" expect_after 'C_SetAttributeValue.* injected$' '^C_DestroyObject rv=CKR_DEVICE_ERROR injected$' 2
check "$t/pair-left" test "$(label_count "$TOK" "$LABEL \\(new\\)")" -eq 2
run "check --recover"
check "$t/next-run-exit-0" expect_rc 0
check "$t/next-run-removes-it" grep_err 'recovery: deleted the key pair'
check "$t/token-empty-after" empty

# --- store: the new certificate cannot be stored in a renew ---------------------
enrolled store-kur
: > "$TMP/ca.log"
run renew P11WRAP_FAIL=C_CreateObject=CKR_DEVICE_MEMORY
t=/tokfail/store/renew
check "$t/exit-3" expect_rc 3
check "$t/message" grep_err 'storing it on the token failed: .*C_CreateObject \(certificate\) on token .store-kur. failed: CKR_DEVICE_MEMORY'
check "$t/says-unchanged" grep_err 'new key pair was removed from the token; the old key and certificate are unchanged'
check "$t/generated" expect_calls '^C_GenerateKeyPair rv=CKR_OK$' 1
check "$t/store-failed" expect_calls '^C_CreateObject rv=CKR_DEVICE_MEMORY injected$' 1
check "$t/new-pair-destroyed" expect_after 'C_CreateObject.* injected$' '^C_DestroyObject rv=CKR_OK$' 2
check "$t/ca-told" grep -q 'certConf: the client rejected the certificate' "$TMP/ca.log"
snapshot "$TMP/after"
check "$t/token-unchanged" unchanged "$TMP/enrolled" "$TMP/after"
check "$t/old-key-signs" signs "$old" "$TMP/old.pem"

# --- certconf-sign: the old key does not sign the certConf of a renew ----------
# The certificate came and is stored; the certConf, protected by the old key
# (the third C_Sign: kur protection, POP, certConf), is never made: nothing
# confirms the certificate to the CA, so the new pair goes and the old one
# stays.  A token error (exit 3) saying which message, not a protocol error.
enrolled certconf-sign
: > "$TMP/ca.log"
run renew P11WRAP_FAIL=C_Sign=CKR_DEVICE_ERROR@3
t=/tokfail/certconf-sign
check "$t/exit-3" expect_rc 3
check "$t/message" grep_err 'the signer key did not sign our message \(the certConf\): .*nothing was sent; check that the key.s token is present'
check "$t/sign-failed" expect_calls '^C_Sign rv=CKR_DEVICE_ERROR injected$' 1
check "$t/no-certconf-sent" sh -c "! grep -q 'certConf' '$TMP/ca.log'"
snapshot "$TMP/after"
check "$t/token-unchanged" unchanged "$TMP/enrolled" "$TMP/after"
check "$t/old-key-signs" signs "$old" "$TMP/old.pem"

# --- revoke-delete: revoke --delete whose deletion fails ----------------------
# The pair is marked "LABEL (revoked)" before it is deleted.  A deletion that
# stops after the first object leaves only marked objects, which recovery
# deletes; a marking that fails puts the labels back and deletes nothing,
# and revoke --delete again finishes (the CA: already revoked).
enrolled revoke-destroy
run "revoke --reason superseded --delete" P11WRAP_FAIL=C_DestroyObject=CKR_DEVICE_ERROR@2
t=/tokfail/revoke-delete/destroy-fails
check "$t/exit-3" expect_rc 3
check "$t/message" grep_err "deleting it and its key from the token failed: .*CKR_DEVICE_ERROR"
check "$t/says-left" grep_err "what is left is labelled '$LABEL \\(revoked\\)': \`p11enroll check test --label '$LABEL' --recover\`"
check "$t/one-deleted" expect_calls '^C_DestroyObject rv=CKR_OK$' 1
check "$t/nothing-under-label" test "$(label_count "$TOK" "$LABEL")" -eq 0
run "check --recover"
check "$t/recover-exit-0" expect_rc 0
check "$t/recover-deleted-pair" test "$(label_count "$TOK" "$LABEL( \\(revoked\\))?")" -eq 0

enrolled revoke-mark
run "revoke --reason superseded --delete" P11WRAP_FAIL=C_SetAttributeValue=CKR_DEVICE_ERROR@2
t=/tokfail/revoke-delete/mark-fails
check "$t/exit-3" expect_rc 3
check "$t/message" grep_err "marking it and its key for deletion failed, so nothing was deleted"
check "$t/says-again" grep_err 'run `p11enroll revoke test --delete` again'
check "$t/nothing-destroyed" expect_calls '^C_DestroyObject ' 0
snapshot "$TMP/after"
check "$t/token-unchanged" unchanged "$TMP/enrolled" "$TMP/after"
run "revoke --reason superseded --delete"
check "$t/again-exit-0" expect_rc 0
check "$t/again-already-revoked" grep_err 'the CA says serial [0-9A-F]+ is already revoked: deleting it'
check "$t/again-deleted-pair" test "$(label_count "$TOK" "$LABEL( \\(revoked\\))?")" -eq 0

# --- cacert: a CA certificate cannot be stored ----------------------------------
# an enrollment stores the issuing CA's certificate, then the root's, then
# its own (last: see store_cb): the root fails, the run fails and removes
# all it stored
fresh cacert-ir
: > "$TMP/ca.log"
run enroll P11WRAP_FAIL=C_CreateObject=CKR_DEVICE_MEMORY@2
t=/tokfail/cacert/enroll
check "$t/exit-3" expect_rc 3
check "$t/message" grep_err "storing CA certificate '[^']*' on the token failed: .*CKR_DEVICE_MEMORY"
check "$t/one-stored-first" expect_calls '^C_CreateObject rv=CKR_OK$' 1
check "$t/pair-and-cacert-destroyed" expect_after 'C_CreateObject.* injected$' '^C_DestroyObject rv=CKR_OK$' 3
check "$t/ca-told" grep -q 'certConf: the client rejected the certificate' "$TMP/ca.log"
check "$t/token-empty" empty

# and the CA certificate it stored cannot be removed: said, the pair still goes
fresh cacert-stays
run enroll P11WRAP_FAIL=C_CreateObject=CKR_DEVICE_MEMORY@2,C_DestroyObject=CKR_DEVICE_ERROR@3
t=/tokfail/cacert/enroll-cleanup-fails
check "$t/exit-3" expect_rc 3
check "$t/message" grep_err 'could not remove a CA certificate stored by the failed run: .*CKR_DEVICE_ERROR'
check "$t/pair-removed" grep_err 'the new key pair was removed from the token'
check "$t/only-the-ca-cert-left" test "$(count_objects "$TOK")" -eq 1 -a \
	"$(objects "$TOK" cert | grep -c 'label: *p11enroll Test Issuing CA')" -eq 1

# after a renew the CA certificates are stored last: a failure is a warning
enrolled cacert-kur
"$PKCS11_TOOL" --module "$SOFTHSM2_MODULE" --token-label "$TOK" --login --pin "$USER_PIN" \
	--delete-object --type cert --label 'p11enroll Test Root CA' > /dev/null 2>&1
run renew P11WRAP_FAIL=C_CreateObject=CKR_DEVICE_MEMORY@2
t=/tokfail/cacert/renew
check "$t/exit-0" expect_rc 0
check "$t/warning" grep_err "storing CA certificate 'p11enroll Test Root CA' on the token failed: .*CKR_DEVICE_MEMORY"
check "$t/tried" expect_calls '^C_CreateObject rv=CKR_DEVICE_MEMORY injected$' 1
new=$(label_id "$TOK" privkey "$LABEL")
check "$t/renewed" test -n "$new" -a "$new" != "$old" -a "$(label_id "$TOK" cert "$LABEL")" = "$new"
check "$t/no-root" test "$(objects "$TOK" cert | grep -c 'label: *p11enroll Test Root CA')" -eq 0

# --- cleanup: the new pair cannot be removed after a failure --------------------
enrolled cleanup-kur
start_ca --fault reject=badCertTemplate || exit 1
run renew P11WRAP_FAIL=C_DestroyObject=CKR_DEVICE_ERROR
t=/tokfail/cleanup/renew
check "$t/exit-6" expect_rc 6
check "$t/rejected" grep_err 'badCertTemplate'
check "$t/message" grep_err 'could not remove the new key pair after the failure: .*C_DestroyObject on token .cleanup-kur. failed: CKR_DEVICE_ERROR'
check "$t/says-next-run" grep_err "left on the token labelled '$LABEL \\(new\\)': the next p11enroll run for 'test' \\(or \`p11enroll check test --label '$LABEL' --recover\`\\) removes it"
check "$t/generated" expect_calls '^C_GenerateKeyPair rv=CKR_OK$' 1
check "$t/destroy-tried" expect_calls '^C_DestroyObject rv=CKR_DEVICE_ERROR injected$' 1
check "$t/new-pair-left" test "$(label_count "$TOK" "$LABEL \\(new\\)")" -eq 2
check "$t/old-pair-kept" test "$(label_id "$TOK" cert "$LABEL")" = "$old" -a \
	"$(label_count "$TOK" "$LABEL")" -eq 3
run "check --recover"
check "$t/next-run-exit-0" expect_rc 0
snapshot "$TMP/after"
check "$t/next-run-removes-it" unchanged "$TMP/enrolled" "$TMP/after"

fresh cleanup-ir
run enroll P11WRAP_FAIL=C_DestroyObject=CKR_DEVICE_ERROR
t=/tokfail/cleanup/enroll
check "$t/exit-6" expect_rc 6
check "$t/message" grep_err 'could not remove the new key pair after the failure: .*CKR_DEVICE_ERROR'
check "$t/says-next-run" grep_err "left on the token labelled '$LABEL \\(new\\)': the next p11enroll run"
check "$t/new-pair-left" test "$(label_count "$TOK" "$LABEL \\(new\\)")" -eq 2
start_ca || exit 1
run enroll
check "$t/next-run-exit-0" expect_rc 0
check "$t/next-run-removed-it" grep_err 'recovery: deleted the key pair'
check "$t/next-run-one-pair" test "$(label_count "$TOK" "$LABEL \\(new\\)")" -eq 0 -a \
	"$(label_count "$TOK" "$LABEL")" -eq 3

# the certificate was stored, then the CA refused the certConf: recovery
# would adopt the pair, so it is left for the user, and said so
enrolled cleanup-stored
start_ca --fault reject=badRequest --fault-on certConf || exit 1
run renew P11WRAP_FAIL=C_DestroyObject=CKR_DEVICE_ERROR
t=/tokfail/cleanup/renew-stored
check "$t/exit-6" expect_rc 6
check "$t/stored" expect_calls '^C_CreateObject rv=CKR_OK$' 1
check "$t/message" grep_err "the new key pair and its certificate, which the CA did not confirm, are left on the token labelled '$LABEL \\(new\\)': delete them by hand"
check "$t/left" test "$(label_count "$TOK" "$LABEL \\(new\\)")" -eq 3
check "$t/old-pair-kept" test "$(label_id "$TOK" cert "$LABEL")" = "$old"

# --- readback: the certificate just stored does not read back right ------------
start_ca || exit 1
"$OPENSSL_BIN" x509 -in "$TMP/ca/ca.pem" -outform DER -out "$TMP/other.der"
head -c 200 "$TMP/other.der" > "$TMP/damaged.der"

# readback NAME CMD EXIT MESSAGE [VAR=VALUE...]: on a fresh token (enroll)
# or an enrolled one (renew); the object is created, then removed again,
# and the token ends as it began.
readback() {
	rb_name=$1 rb_cmd=$2 rb_want=$3 rb_msg=$4
	shift 4
	t=/tokfail/readback/$rb_name
	if [ "$rb_cmd" = renew ]; then enrolled "rb-$rb_name"; else fresh "rb-$rb_name"; fi
	: > "$TMP/ca.log"
	run "$rb_cmd" "$@"
	check "$t/exit-$rb_want" expect_rc "$rb_want"
	check "$t/message" grep_err "$rb_msg"
	# an enrollment stores the two CA certificates before its own (and
	# removes them with the pair); a renew stores them only after success
	rb_cas=0
	[ "$rb_cmd" = enroll ] && rb_cas=2
	check "$t/stored" expect_calls '^C_CreateObject rv=CKR_OK$' $((rb_cas + 1))
	check "$t/object-removed-at-once" next_is '^(REPLACED C_GetAttributeValue|C_GetAttributeValue .*injected$)' \
		'^C_DestroyObject rv=CKR_OK$'
	check "$t/object-and-pair-removed" expect_after '^C_CreateObject ' '^C_DestroyObject rv=CKR_OK$' \
		$((rb_cas + 3))
	check "$t/ca-told" grep -q 'certConf: the client rejected the certificate' "$TMP/ca.log"
	if [ "$rb_cmd" = renew ]; then
		snapshot "$TMP/after"
		check "$t/token-unchanged" unchanged "$TMP/enrolled" "$TMP/after"
	else
		check "$t/token-empty" empty
	fi
}
readback fails enroll 3 "reading back a stored certificate on token 'rb-fails' failed: CKR_DEVICE_ERROR.*; the object was removed again" \
	P11WRAP_CREATED_FAIL=CKR_DEVICE_ERROR
check "$t/read-injected" expect_calls '^C_GetAttributeValue rv=CKR_DEVICE_ERROR injected$' 1
readback other-cert renew 3 "reading back the certificate stored for key [0-9a-f]* on token 'rb-other-cert' failed: the token returned another certificate, not one for this key: check the token; the object was removed again" \
	P11WRAP_CREATED_VALUE="$TMP/other.der"
check "$t/value-replaced" expect_calls '^REPLACED C_GetAttributeValue CKA_VALUE$' 2
check "$t/old-key-signs" signs "$old" "$TMP/old.pem"
readback damaged enroll 3 "reading back a stored certificate on token 'rb-damaged' failed: the token returned a damaged certificate: check the token; the object was removed again" \
	P11WRAP_CREATED_VALUE="$TMP/damaged.der"
# removing the object fails too: said; the pair's removal takes it along
fresh rb-stays
run enroll P11WRAP_CREATED_FAIL=CKR_DEVICE_ERROR P11WRAP_FAIL=C_DestroyObject=CKR_DEVICE_ERROR@1
t=/tokfail/readback/destroy-fails
check "$t/exit-3" expect_rc 3
check "$t/message" grep_err "CKR_DEVICE_ERROR.*; removing the object failed too \\(C_DestroyObject: CKR_DEVICE_ERROR\\): it is left on the token, labelled '$LABEL \\(new\\)'"
check "$t/pair-removed" grep_err 'the new key pair was removed from the token'
check "$t/token-empty" empty

# --- once: tests/p11wrap's P11WRAP_ONCE fires in one process only; with
# P11WRAP_GONE the token stays gone for that process after the failure ---------
fresh once1
: > "$TMP/once"
ONCE="P11WRAP_ONCE=$TMP/once"
run enroll "$ONCE" P11WRAP_GONE=1 P11WRAP_FAIL=C_GenerateKeyPair=CKR_DEVICE_REMOVED
t=/tokfail/once/fires
check "$t/exit-3" expect_rc 3
check "$t/message" grep_err "generating the new key pair on the token failed: .*CKR_DEVICE_REMOVED"
check "$t/file-taken" test ! -e "$TMP/once"
check "$t/gone-after" test "$(after_first '^C_GenerateKeyPair' ' rv=CKR_DEVICE_REMOVED injected$')" -ge 1
check "$t/nothing-spared" test "$(after_first '^C_GenerateKeyPair' '^C_(Find|Destroy|Get[AT]|Sign).* rv=CKR_OK')" -eq 0
check "$t/token-empty" empty
run enroll "$ONCE" P11WRAP_GONE=1 P11WRAP_FAIL=C_GenerateKeyPair=CKR_DEVICE_REMOVED
t=/tokfail/once/not-again
check "$t/exit-0" expect_rc 0
check "$t/nothing-injected" expect_calls ' injected$' 0
check "$t/pair" test "$(label_count "$TOK" "$LABEL")" -eq 3
fresh once2
: > "$TMP/once"
run enroll "$ONCE" P11WRAP_KILL=C_GenerateKeyPair:before
t=/tokfail/once/kill
check "$t/killed" expect_rc 137
check "$t/file-taken" test ! -e "$TMP/once"
run enroll "$ONCE" P11WRAP_KILL=C_GenerateKeyPair:before
check "$t/not-again" expect_rc 0

check "/tokfail/no-secret" no_secret_in "$TMP/out" "$TMP/err" "$LOG"
finish
