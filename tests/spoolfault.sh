#!/bin/sh
# /spoolfault: wrong answers over the store-and-forward transports change
# nothing.  A request waits in the spool directory (server = file:///DIR,
# the CA away); the answer file the CA would write is replaced by one of
# another transaction, one with broken protection, garbage, a truncated
# DER message: each is refused with a message that says so, no certificate
# is stored, the token keeps what it had and the transaction stays for the
# real answer, which then finishes it.  The same answer again, a late
# answer after `resume --abandon`, and an answer to a request never sent
# find no transaction waiting.  The same for an rr written with
# --request-out and read with --response-in.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
need_cmd curl
setup
plan 92

SPOOL="$TMP/spool"
mkdir "$SPOOL"
carry() {
	curl -s -f -o "$2" -H 'Content-Type: application/pkixcmp' --data-binary "@$1" "$CA_URL"
}
same_file() {
	cmp -s "$1" "$2" || { echo "# $1 changed"; return 1; }
}
# bad_protection IN OUT: IN with the last byte of its protection (the
# PKIMessage's [0] BIT STRING, the signature or MAC) changed.
bad_protection() {
	python3 -c 'import sys
d = bytearray(open(sys.argv[1], "rb").read())
def tlv(i):
    n = d[i + 1]
    if n < 0x80:
        return i + 2, n
    k = n & 0x7f
    return i + 2 + k, int.from_bytes(d[i + 2:i + 2 + k], "big")
start, length = tlv(0)
i = start
while i < start + length:
    c, n = tlv(i)
    if d[i] == 0xa0:
        d[c + n - 1] ^= 0x01
        break
    i = c + n
else:
    sys.exit(1)
open(sys.argv[2], "wb").write(bytes(d))' "$1" "$2"
}
# truncate IN OUT: IN without its last 7 bytes
truncate_der() {
	head -c $(($(wc -c < "$1") - 7)) "$1" > "$2"
}
# unchanged: no certificate, the token as before, the transaction saved as before
unchanged() {
	[ "$(kind enrolled-key Certificate)" = 0 ] || { echo "# a certificate was stored"; return 1; }
	[ "$(count_objects "$TOK")" = "$OBJS" ] ||
		{ echo "# objects: $(count_objects "$TOK") not $OBJS"; return 1; }
	same_file "$STATE" "$TMP/state.before"
}

TOK=fault-spool
make_token "$TOK" || exit 1
start_ca || exit 1
write_conf "$TOK" "server = file://$SPOOL
store_wait = 1"
STATE=$(pending_file "$TOK")
p11e enroll test
check "/spoolfault/setup/exit-9" expect_rc 9
tid=$(ls "$SPOOL" | sed -n 's/^\([0-9a-f]*\)\.1\.req\.der$/\1/p')
check "/spoolfault/setup/request-in-spool" test -n "$tid"
RSP="$SPOOL/$tid.1.rsp.der"
cp "$STATE" "$TMP/state.before"
OBJS=$(count_objects "$TOK")
# the CA's real answer, carried by hand; and one of another transaction
carry "$SPOOL/$tid.1.req.der" "$TMP/real.der" || echo "# curl failed"
write_conf other "server = $CA_URL
state_dir = $TMP/state-other"
make_token other || exit 1
p11e enroll --request-out "$TMP/other-ir.der" test
carry "$TMP/other-ir.der" "$TMP/other-ip.der" || echo "# curl failed"
write_conf "$TOK" "server = file://$SPOOL
store_wait = 1"

# --- each wrong answer in the answer file's place ------------------------------------
cp "$TMP/other-ip.der" "$RSP"
p11e resume test
check "/spoolfault/wrong-tid/exit-7" expect_rc 7
check "/spoolfault/wrong-tid/says" grep_err "another transaction"
check "/spoolfault/wrong-tid/says-kept" grep_err "the transaction saved"
check "/spoolfault/wrong-tid/unchanged" unchanged
bad_protection "$TMP/real.der" "$RSP" || echo "# no protection found"
p11e resume test
check "/spoolfault/bad-protection/exit-7" expect_rc 7
check "/spoolfault/bad-protection/says" grep_err "protection of the CA's answer does not verify"
check "/spoolfault/bad-protection/unchanged" unchanged
head -c 300 /dev/urandom > "$RSP"
p11e resume test
check "/spoolfault/garbage/exit-7" expect_rc 7
check "/spoolfault/garbage/says" grep_err "not a CMP message"
check "/spoolfault/garbage/unchanged" unchanged
truncate_der "$TMP/real.der" "$RSP"
p11e resume test
check "/spoolfault/truncated/exit-7" expect_rc 7
check "/spoolfault/truncated/says" grep_err "not a CMP message"
check "/spoolfault/truncated/unchanged" unchanged
: > "$RSP"
p11e resume test
check "/spoolfault/empty/exit-7" expect_rc 7
check "/spoolfault/empty/unchanged" unchanged
rm -f "$RSP"
mkdir "$RSP"
p11e resume test
check "/spoolfault/not-a-file/exit-5" expect_rc 5
check "/spoolfault/not-a-file/says" grep_err "not a regular file"
check "/spoolfault/not-a-file/unchanged" unchanged
rmdir "$RSP"
check "/spoolfault/ca-issued-only-real" test "$(ca_issued)" = 2

# --- the real answer finishes it; the same answer again finds nothing -----------------
cp "$TMP/real.der" "$RSP"
p11e resume test
check "/spoolfault/real/exit-0" expect_rc 0
check "/spoolfault/real/cert-stored" test "$(kind enrolled-key Certificate)" = 1
check "/spoolfault/real/pending-gone" test ! -e "$STATE"
OBJS=$(count_objects "$TOK")
p11e resume test
check "/spoolfault/duplicate/exit-2" expect_rc 2
check "/spoolfault/duplicate/says" grep_err "no pending transaction"
check "/spoolfault/duplicate/token-same" test "$(count_objects "$TOK")" = "$OBJS"
check "/spoolfault/duplicate/one-cert" test "$(kind enrolled-key Certificate)" = 1

# --- a late answer after resume --abandon ---------------------------------------------
p11e enroll --replace test
check "/spoolfault/late/exit-9" expect_rc 9
tid2=$(ls -t "$SPOOL" | sed -n 's/^\([0-9a-f]*\)\.1\.req\.der$/\1/p' | grep -v -x "$tid" |
	head -n 1)
check "/spoolfault/late/second-request" test -n "$tid2"
carry "$SPOOL/$tid2.1.req.der" "$TMP/real2.der" || echo "# curl failed"
p11e resume --abandon test
check "/spoolfault/late/abandon-0" expect_rc 0
check "/spoolfault/late/new-key-gone" test "$(kind 'enrolled-key (new)' 'Private Key')" = 0
check "/spoolfault/late/token-as-before" test "$(count_objects "$TOK")" = "$OBJS"
cp "$TMP/real2.der" "$SPOOL/$tid2.1.rsp.der"
p11e resume test
check "/spoolfault/late/answer-refused" expect_rc 2
check "/spoolfault/late/says" grep_err "no pending transaction"
check "/spoolfault/late/token-same" test "$(count_objects "$TOK")" = "$OBJS"
check "/spoolfault/late/old-cert-kept" test "$(kind enrolled-key Certificate)" = 1
check "/spoolfault/late/no-certconf" test ! -e "$SPOOL/$tid2.2.req.der"

# --- an answer for a request never sent ----------------------------------------------
TOK=fault-never
make_token "$TOK" || exit 1
write_conf "$TOK" "server = file://$SPOOL
store_wait = 1"
p11e resume test
check "/spoolfault/never-sent/exit-2" expect_rc 2
check "/spoolfault/never-sent/says" grep_err "no pending transaction"
check "/spoolfault/never-sent/token-empty" test "$(count_objects "$TOK")" = 0
p11e genm --ca-certs "$TMP/never.pem" --response-in "$TMP/real.der" test
check "/spoolfault/never-sent/genm-exit-2" expect_rc 2
check "/spoolfault/never-sent/genm-nothing-written" test ! -e "$TMP/never.pem"

# --- rr offline: an answer never asked for, a late one, the wrong ones ------------------
TOK=fault-rr
make_token "$TOK" || exit 1
write_conf "$TOK" "server = $CA_URL"
p11e enroll test
check "/spoolfault/rr/enrolled" expect_rc 0
OBJS=$(count_objects "$TOK")
p11e revoke --response-in "$TMP/real.der" test
check "/spoolfault/rr/never-sent-2" expect_rc 2
check "/spoolfault/rr/never-sent-says" grep_err "no rr of 'test' waits"
# rr A reaches the CA, but is given up here first: its answer comes late
p11e revoke --request-out "$TMP/rr-a.der" test
check "/spoolfault/rr/a-exit-9" expect_rc 9
carry "$TMP/rr-a.der" "$TMP/rp-a.der" || echo "# curl failed"
p11e revoke --abandon test
check "/spoolfault/rr/abandon-0" expect_rc 0
p11e revoke --response-in "$TMP/rp-a.der" test
check "/spoolfault/rr/late-2" expect_rc 2
check "/spoolfault/rr/late-says" grep_err "no rr of 'test' waits"
check "/spoolfault/rr/late-not-printed" sh -c "! grep -q '^revoked' '$TMP/out'"
# rr B: its answer (certRevoked, as A revoked it) and the wrong ones
p11e revoke --request-out "$TMP/rr.der" test
check "/spoolfault/rr/b-exit-9" expect_rc 9
cp "$TMP/state/test.rr" "$TMP/rr.before"
carry "$TMP/rr.der" "$TMP/rp.der" || echo "# curl failed"
rr_kept() {
	same_file "$TMP/state/test.rr" "$TMP/rr.before" &&
		[ "$(count_objects "$TOK")" = "$OBJS" ]
}
p11e revoke --response-in "$TMP/rp-a.der" test
check "/spoolfault/rr/wrong-tid-7" expect_rc 7
check "/spoolfault/rr/wrong-tid-says" grep_err "another transaction"
check "/spoolfault/rr/wrong-tid-kept" rr_kept
bad_protection "$TMP/rp.der" "$TMP/rp-bad.der" || echo "# no protection found"
p11e revoke --response-in "$TMP/rp-bad.der" test
check "/spoolfault/rr/bad-protection-7" expect_rc 7
check "/spoolfault/rr/bad-protection-says" grep_err "does not verify"
check "/spoolfault/rr/bad-protection-kept" rr_kept
head -c 200 /dev/urandom > "$TMP/rp-garbage.der"
p11e revoke --response-in "$TMP/rp-garbage.der" test
check "/spoolfault/rr/garbage-7" expect_rc 7
check "/spoolfault/rr/garbage-kept" rr_kept
truncate_der "$TMP/rp.der" "$TMP/rp-trunc.der"
p11e revoke --response-in "$TMP/rp-trunc.der" test
check "/spoolfault/rr/truncated-7" expect_rc 7
check "/spoolfault/rr/truncated-says-kept" grep_err "stored rr of 'test' is kept"
check "/spoolfault/rr/truncated-kept" rr_kept
# the CA's own answer ends it: a rejection (already revoked by A)
p11e revoke --response-in "$TMP/rp.der" test
check "/spoolfault/rr/real-6" expect_rc 6
check "/spoolfault/rr/real-says" grep_err "certRevoked"
check "/spoolfault/rr/real-record-gone" test ! -e "$TMP/state/test.rr"
p11e revoke --response-in "$TMP/rp.der" test
check "/spoolfault/rr/duplicate-2" expect_rc 2
check "/spoolfault/rr/duplicate-says" grep_err "no rr of 'test' waits"
check "/spoolfault/rr/token-same" test "$(count_objects "$TOK")" = "$OBJS"

# --- a record that is not one: refused, named, left for --abandon ------------------------
printf 'version 1\nexchange rr\ntransaction_id zz\n' > "$TMP/state/test.rr"
p11e revoke --response-in "$TMP/rp.der" test
check "/spoolfault/rr/broken-record-2" expect_rc 2
check "/spoolfault/rr/broken-record-says" grep_err "test.rr is not a record of a stored rr"
head -c 3000 /dev/urandom > "$TMP/state/test.rr"
p11e revoke --request-out "$TMP/rr4.der" test
check "/spoolfault/rr/garbage-record-2" expect_rc 2
check "/spoolfault/rr/garbage-record-nothing-written" test ! -e "$TMP/rr4.der"
p11e revoke --abandon test
check "/spoolfault/rr/broken-record-abandon-0" expect_rc 0
check "/spoolfault/rr/broken-record-gone" test ! -e "$TMP/state/test.rr"

# --- kill -9 once the request is in the spool: the transaction is already saved ---------
# (the CA is away; store_wait long: the client waits for the answer when killed)
TOK=fault-kill
make_token "$TOK" || exit 1
SPOOL2="$TMP/spool2"
mkdir "$SPOOL2"
write_conf "$TOK" "server = file://$SPOOL2
store_wait = $(scaled 120)
timeout = $(scaled 120)
total_timeout = $(scaled 120)"
STATE=$(pending_file "$TOK")
"$P11ENROLL" -c "$TMP/p11enroll.conf" enroll test > "$TMP/kill.out" 2> "$TMP/kill.err" &
KPID=$!
wait_for 60 sh -c "ls '$SPOOL2' | grep -q '\.1\.req\.der$'"
kill -9 "$KPID" 2> /dev/null
wait "$KPID"
KRC=$?
check "/spoolfault/kill/killed-while-waiting" test "$KRC" -eq 137
check "/spoolfault/kill/pending-saved" grep -q '^store_seq 1$' "$STATE"
check "/spoolfault/kill/pending-sent-nonce" grep -q -E '^sent_nonce [0-9a-f]+$' "$STATE"
p11e check --recover test
check "/spoolfault/kill/recover-keeps-key" test "$(kind 'enrolled-key (new)' 'Private Key')" = 1
check "/spoolfault/kill/recover-keeps-pending" test -f "$STATE"
start_ca --spool "$SPOOL2" || exit 1
p11e resume --store-wait "$(scaled 30)" test
check "/spoolfault/kill/resume-0" expect_rc 0
check "/spoolfault/kill/cert-stored" test "$(kind enrolled-key Certificate)" = 1
check "/spoolfault/kill/one-key" test "$(kind enrolled-key 'Private Key')" = 1
check "/spoolfault/kill/pending-gone" test ! -e "$STATE"
start_ca || exit 1

# --- the request cannot be written: the transaction saved before it goes again ------------
TOK=fault-unwritable
make_token "$TOK" || exit 1
write_conf "$TOK" "server = $CA_URL"
STATE=$(pending_file "$TOK")
p11e enroll --request-out "$TMP/no-such-dir/ir.der" test
check "/spoolfault/unwritable/exit-5" expect_rc 5
check "/spoolfault/unwritable/says" grep_err "cannot create a file in $TMP/no-such-dir"
check "/spoolfault/unwritable/no-pending" test ! -e "$STATE"
check "/spoolfault/unwritable/token-empty" test "$(count_objects "$TOK")" = 0

# --- no PIN or secret in the files left behind or in any output --------------------------
check "/spoolfault/no-secret/spool" no_secret_in "$SPOOL"/*
check "/spoolfault/no-secret/state" \
	sh -c "! grep -r -q -F -e '$USER_PIN' -e '$CMP_SECRET' '$TMP/state'"
check "/spoolfault/no-secret/files" no_secret_in "$TMP"/*.der "$TMP/out" "$TMP/err" \
	"$TMP/kill.out" "$TMP/kill.err" "$SPOOL2"/*
# anywhere in the test's directory but the PIN and secret files themselves
# and the token store
check "/spoolfault/no-secret/anywhere" sh -c "! grep -r -l -F -e '$USER_PIN' -e '$CMP_SECRET' \
	--exclude=pin --exclude=secret --exclude-dir=tokens '$TMP'"
finish
