#!/bin/sh
# /resume: a request the CA answers "waiting" outlives the process that sent
# it.  The transaction (transactionID, the CA's last nonce, the new key's
# CKA_ID) is saved in the state directory; `p11enroll resume NAME` polls
# and finishes it, `p11enroll resume --abandon NAME` tells the CA and
# deletes the new key.  Covers ir, kur, cr and p10cr, a process killed
# while polling, a CA that forgot the transaction and hostile answers to
# the resumed pollReq.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
setup
plan 145
# a hang guard only, not a timing threshold
if command -v timeout > /dev/null 2>&1; then GUARD="timeout -s KILL $(scaled 120)"; else GUARD=; fi

# kind LABEL CLASS: objects of that class (Certificate, Private Key) with exactly that label.

# id_of TYPE LABEL: CKA_ID of the object of that type with exactly that label.
id_of() {
	label_id "$TOK" "$@"
}

field() {
	sed -n "s/^$1 //p" "$STATE"
}

# issued: certificates the CA issued since fresh, from its own record (not
# its log's wording)
issued() {
	_n=$(ca_issued) || { echo unreadable; return 1; }
	echo $((_n - ISSUED0))
}

# The CA holds a certificate (HOLD) until the test releases it: it answers
# "waiting" and asks to poll again in an hour, past any total timeout, so
# the first process saves the transaction and exits 9 however slow the
# machine is; the resume after `release` gets the certificate at once.
# (Not a 1 s total timeout against a CA that delivers after 3 s: on a
# loaded machine the first process could run out before the CA's "waiting"
# came, or the CA could deliver before the first process gave up.)
DELIVER="$TMP/deliver"
HOLD="--poll 3600 --deliver-when $DELIVER"
hold() {
	rm -f "$DELIVER"
}
release() {
	: > "$DELIVER"
}

# fresh TOKEN EXTRA_CONF CA_ARGS...: a new token, the CA started with
# CA_ARGS, the configuration for both; the CA holds what it holds.
fresh() {
	TOK=$1 extra=$2
	shift 2
	make_token "$TOK" || exit 1
	STATE=$(pending_file "$TOK")
	rm -f "$TMP/ca.log"
	hold
	start_ca "$@" || exit 1
	ISSUED0=$(ca_issued) || exit 1
	write_conf "$TOK" "$extra"
}

# --- ir: exit 9 with the transaction saved, refused re-enroll, resume ----------------
fresh res-ir "" $HOLD
p11e enroll test
check "/resume/ir/waiting-exit-9" expect_rc 9
check "/resume/ir/says-resume" grep_err 'p11enroll resume test'
check "/resume/ir/state-saved" test -f "$STATE"
check "/resume/ir/state-mode-0600" test "$(stat -c %a "$STATE")" = 600
check "/resume/ir/state-dir-0700" test "$(stat -c %a "$TMP/state")" = 700
check "/resume/ir/state-request" test "$(field request)" = ir
check "/resume/ir/state-tid" grep -q -E '^transaction_id [0-9a-f]{32}$' "$STATE"
key=$(id_of privkey 'enrolled-key (new)')
check "/resume/ir/state-key-id" test -n "$key" -a "$(field key_id)" = "$key"
check "/resume/ir/key-kept-as-new" test "$(kind 'enrolled-key (new)' 'Private Key')" -eq 1
check "/resume/ir/no-cert-yet" test "$(kind enrolled-key Certificate)" -eq 0
check "/resume/ir/no-secret-in-state" no_secret_in "$STATE" "$TMP/err"
p11e enroll test
check "/resume/ir/re-enroll-refused-exit-2" expect_rc 2
check "/resume/ir/re-enroll-names-both" grep_err 'resume --abandon test'
check "/resume/ir/re-enroll-no-second-key" test "$(count_objects "$TOK")" -eq 2
release
p11e resume test
check "/resume/ir/resume-exit-0" expect_rc 0
check "/resume/ir/enrolled" grep -q '^enrolled test' "$TMP/out"
check "/resume/ir/state-removed" test ! -e "$STATE"
check "/resume/ir/cert-stored" test "$(kind enrolled-key Certificate)" -eq 1
check "/resume/ir/cert-same-id" test "$(id_of cert enrolled-key)" = "$key"
check "/resume/ir/polled" grep -q 'pollReq -> ip accepted' "$TMP/ca.log"
check "/resume/ir/confirmed" grep -q 'certConf -> pkiconf' "$TMP/ca.log"
check "/resume/ir/one-cert-issued" test "$(issued)" -eq 1
check "/resume/ir/no-secret" no_secret_in "$TMP/out" "$TMP/err"
p11e resume test
check "/resume/ir/nothing-left-exit-2" expect_rc 2
check "/resume/ir/nothing-left-message" grep_err 'no pending transaction'

# --- killed while polling, then resumed --------------------------------------------
# The total timeout outlasts the CA's hour: the process sleeps to poll
# again until it is killed, whenever the test gets to it.
fresh res-kill "" $HOLD
"$P11ENROLL" -c "$TMP/p11enroll.conf" enroll test --total-timeout 7200 > "$TMP/out" 2> "$TMP/err" &
pid=$!
wait_for 30 sh -c "test -f '$STATE' && grep -q 'pollReq -> checkAfter' '$TMP/ca.log'"
kill -9 "$pid" 2> /dev/null
wait "$pid" 2> /dev/null
check "/resume/killed/state-saved" test -f "$STATE"
release
p11e resume test
check "/resume/killed/resume-exit-0" expect_rc 0
check "/resume/killed/cert-stored" test "$(kind enrolled-key Certificate)" -eq 1
check "/resume/killed/cert-matches-key" test "$(id_of cert enrolled-key)" = "$(id_of privkey enrolled-key)"
check "/resume/killed/one-key" test "$(kind enrolled-key 'Private Key')" -eq 1
check "/resume/killed/one-cert-issued" test "$(issued)" -eq 1

# --- abandon: error message to the CA, key deleted -----------------------------------
fresh res-abandon "" $HOLD
p11e enroll test
check "/resume/abandon/waiting-exit-9" expect_rc 9
check "/resume/abandon/key-kept-as-new" test "$(kind 'enrolled-key (new)' 'Private Key')" -eq 1
p11e resume --abandon test
check "/resume/abandon/exit-0" expect_rc 0
check "/resume/abandon/ca-got-error" grep -q 'error from client' "$TMP/ca.log"
check "/resume/abandon/ca-acknowledged" grep -q 'error -> pkiconf' "$TMP/ca.log"
check "/resume/abandon/token-empty" test "$(count_objects "$TOK")" -eq 0
check "/resume/abandon/state-removed" test ! -e "$STATE"
check "/resume/abandon/no-cert-issued" test "$(issued)" -eq 0
p11e enroll test
check "/resume/abandon/new-enroll-allowed" expect_rc 9
p11e resume --abandon test

# the CA is down: abandoned here all the same, exit 5, and the user is told
p11e enroll test
check "/resume/abandon-ca-down/key-kept-as-new" test "$(kind 'enrolled-key (new)' 'Private Key')" -eq 1
stop_ca
p11e resume --abandon test
check "/resume/abandon-ca-down/exit-5" expect_rc 5
check "/resume/abandon-ca-down/says-not-told" grep_err 'could not tell the CA'
check "/resume/abandon-ca-down/token-empty" test "$(count_objects "$TOK")" -eq 0
check "/resume/abandon-ca-down/state-removed" test ! -e "$STATE"

# --- the CA is down during resume: nothing lost, resume later -------------------------
fresh res-down "" $HOLD
p11e enroll test
stop_ca
p11e resume test --connect-timeout 2
check "/resume/ca-down/exit-5" expect_rc 5
check "/resume/ca-down/state-kept" test -f "$STATE"
check "/resume/ca-down/key-kept" test "$(kind 'enrolled-key (new)' 'Private Key')" -eq 1
check "/resume/ca-down/says-resume" grep_err 'p11enroll resume test'

# --- a CA that forgot the transaction (restarted) ends it: exit 6, key deleted --------
start_ca --poll 3 || exit 1
sed -i "s|^server = .*|server = $CA_URL|" "$TMP/p11enroll.conf"
p11e resume test
check "/resume/ca-forgot/exit-6" expect_rc 6
check "/resume/ca-forgot/says-ended" grep_err 'CA ended the transaction'
check "/resume/ca-forgot/token-empty" test "$(count_objects "$TOK")" -eq 0
check "/resume/ca-forgot/state-removed" test ! -e "$STATE"

# --- resume on another token: refused before anything is sent -------------------------
fresh res-tok1 "" $HOLD
p11e enroll test
make_token res-tok2 || exit 1
p11e resume test --token pkcs11:token=res-tok2
check "/resume/other-token/exit-3" expect_rc 3
check "/resume/other-token/message" grep_err 'serial'
check "/resume/other-token/state-kept" test -f "$STATE"
p11e resume --abandon test

# --- kur: old pair untouched while pending; resumed, the label moves ------------------
fresh res-kur ""
p11e enroll test
check "/resume/kur/setup-enrolled" expect_rc 0
old=$(id_of privkey enrolled-key)
start_ca $HOLD || exit 1
sed -i "s|^server = .*|server = $CA_URL|" "$TMP/p11enroll.conf"
p11e renew test
check "/resume/kur/waiting-exit-9" expect_rc 9
check "/resume/kur/state-request" test "$(field request)" = kur
check "/resume/kur/old-pair-intact" test "$(id_of cert enrolled-key)" = "$old"
check "/resume/kur/new-key-pending" test "$(kind 'enrolled-key (new)' 'Private Key')" -eq 1
release
p11e resume test
check "/resume/kur/resume-exit-0" expect_rc 0
check "/resume/kur/renewed" grep -q '^renewed test' "$TMP/out"
new=$(id_of privkey enrolled-key)
check "/resume/kur/new-id" test -n "$new" -a "$new" != "$old"
check "/resume/kur/cert-matches" test "$(id_of cert enrolled-key)" = "$new"
check "/resume/kur/old-gone" test "$(kind 'enrolled-key (new)' 'Private Key')" -eq 0 -a "$(count_objects "$TOK")" -eq 5
check "/resume/kur/kup-by-poll" grep -q 'pollReq -> kup accepted' "$TMP/ca.log"
check "/resume/kur/state-removed" test ! -e "$STATE"

# kur abandoned: the new key goes, the old pair stays as it was
hold
p11e renew test
p11e resume --abandon test
check "/resume/kur-abandon/exit-0" expect_rc 0
check "/resume/kur-abandon/old-pair-intact" test "$(id_of cert enrolled-key)" = "$new" -a "$(count_objects "$TOK")" -eq 5

# --- p10cr (certReqId -1) and cr (signature-protected pollReq) ------------------------
fresh res-p10 "" $HOLD
p11e p10cr test
check "/resume/p10cr/waiting-exit-9" expect_rc 9
check "/resume/p10cr/cert-req-id" test "$(field cert_req_id)" = -1
release
p11e resume test
check "/resume/p10cr/resume-exit-0" expect_rc 0
check "/resume/p10cr/cert-stored" test "$(kind enrolled-key Certificate)" -eq 1

hold
p11e cr test --signer enrolled-key --label by-signer
check "/resume/cr/waiting-exit-9" expect_rc 9
release
p11e resume test --signer enrolled-key --label by-signer
check "/resume/cr/resume-exit-0" expect_rc 0
check "/resume/cr/cert-stored" test "$(kind by-signer Certificate)" -eq 1
check "/resume/cr/signed-pollreq" grep -q 'pollReq -> cp accepted' "$TMP/ca.log"

# --- hostile answers to the resumed pollReq: exit 7, nothing stored -------------------
# The CA spares its first pollReq answer (the first process polls once at
# once) and misbehaves on the resumed one.  An answer that fails the checks
# which make it the CA's (transactionID, nonce, protection, sender) may
# come from anyone on the path: it ends nothing, the transaction and its
# key stay for the next resume (here given up with --abandon).  A verified
# answer that is wrong (checkAfter out of range) ends it.
hostile_poll() {
	name=$1 outcome=$2 msg=$3
	shift 3
	fresh "res-h-$name" "$HCONF" $HOLD --fault-on pollReq --fault-skip 1 "$@"
	p11e enroll test
	# check-after-huge strikes when the CA takes up the held request
	[ "$outcome" = kept ] || release
	p11e resume test
	check "/resume/hostile/$name/exit-7" expect_rc 7
	check "/resume/hostile/$name/message" grep_err "$msg"
	check "/resume/hostile/$name/no-cert" test "$(kind enrolled-key Certificate)" -eq 0
	check "/resume/hostile/$name/no-secret" no_secret_in "$TMP/out" "$TMP/err"
	if [ "$outcome" = kept ]; then
		check "/resume/hostile/$name/says-still-pending" grep_err 'still pending at the CA'
		check "/resume/hostile/$name/state-kept" test -f "$STATE"
		check "/resume/hostile/$name/key-kept" test "$(kind 'enrolled-key (new)' 'Private Key')" -eq 1
		p11e resume test --abandon
		check "/resume/hostile/$name/abandon-exit-0" expect_rc 0
	else
		check "/resume/hostile/$name/state-removed" test ! -e "$STATE"
		check "/resume/hostile/$name/key-removed" test "$(kind 'enrolled-key (new)' 'Private Key')" -eq 0
	fi
}
HCONF=
hostile_poll wrong-tid kept 'another transaction' --fault wrong-tid
hostile_poll wrong-nonce kept 'recipNonce' --fault wrong-nonce
hostile_poll bad-protection kept 'does not verify' --fault bad-protection
hostile_poll unprotected kept 'not protected' --fault unprotected
HCONF="expected_sender = /O=p11enroll test/CN=p11enroll Test CMP Server"
hostile_poll wrong-sender kept 'sender' --fault wrong-sender
HCONF=
hostile_poll check-after-huge ended 'out of range' --fault check-after-huge

# The same within the first process: after the CA's verified "waiting",
# OpenSSL's own pollReq gets a forged answer; the transaction is kept.
inline_poll() {
	name=$1 msg=$2
	shift 2
	fresh "res-i-$name" "$HCONF" --poll 1 --fault-on pollReq "$@"
	p11e enroll test
	check "/resume/inline/$name/exit-7" expect_rc 7
	check "/resume/inline/$name/message" grep_err "$msg"
	check "/resume/inline/$name/says-still-pending" grep_err 'still pending at the CA'
	check "/resume/inline/$name/state-kept" test -f "$STATE"
	check "/resume/inline/$name/key-kept" test "$(kind 'enrolled-key (new)' 'Private Key')" -eq 1
	p11e resume test --abandon
	check "/resume/inline/$name/abandon-exit-0" expect_rc 0
}
inline_poll bad-protection 'protection' --fault bad-protection
HCONF="expected_sender = /O=p11enroll test/CN=p11enroll Test CMP Server"
inline_poll wrong-sender 'sender' --fault wrong-sender
HCONF=

# --- a broken state file is refused with its path, never half-used --------------------
fresh res-broken "" $HOLD
p11e enroll test
sed -i 's/^recip_nonce .*/recip_nonce xyz/' "$STATE"
p11e resume test
check "/resume/broken-state/exit-2" expect_rc 2
check "/resume/broken-state/names-file" grep_err "$(basename "$STATE")"
check "/resume/broken-state/key-kept" test "$(kind 'enrolled-key (new)' 'Private Key')" -eq 1

# --- nowhere to save: the transaction is abandoned at once, as before -----------------
# (through tests/p11wrap: its call log shows the pair made and destroyed)
fresh res-nosave "state_dir = /proc/nonexistent/state" $HOLD
sed -i "s|^module = .*|module = $top_builddir/tests/p11wrap/p11wrap.so|" "$TMP/p11enroll.conf"
: > "$TMP/calls.log"
env P11WRAP_MODULE="$SOFTHSM2_MODULE" P11WRAP_LOG="$TMP/calls.log" \
	"$P11ENROLL" -c "$TMP/p11enroll.conf" enroll test > "$TMP/out" 2> "$TMP/err"
RC=$?
check "/resume/no-state-dir/exit-9" expect_rc 9
check "/resume/no-state-dir/warns" grep_err 'cannot save the pending transaction'
check "/resume/no-state-dir/ca-told" grep -q 'error from client' "$TMP/ca.log"
check "/resume/no-state-dir/key-made-then-destroyed" made_and_removed "$TMP/calls.log"
check "/resume/no-state-dir/token-empty" test "$(count_objects "$TOK")" -eq 0

stop_ca
check "/resume/ca-clean" sh -c "! grep -q -E 'Sanitizer|runtime error' '$TMP/ca.err'"
finish
