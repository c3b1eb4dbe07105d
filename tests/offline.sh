#!/bin/sh
# /offline: requests for an HSM room without a path to the CA.  `enroll
# --request-out FILE` (renew, cr, p10cr too) writes the protected request,
# one DER PKIMessage, and saves the transaction (exit 9) with the new key
# on the token; the file is carried to the CA (here: posted to the test CA
# with curl, as an operator's relay would) and `resume --response-in
# ANSWER --request-out CERTCONF` checks the CA's answer, stores the
# certificate and writes the certConf to carry back.  Every wrong answer
# (garbage, truncated, another transaction's, a duplicate, one for a
# request never sent) changes nothing.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
need_cmd curl
setup
plan 77

# carry IN OUT: the CA's answer to the DER message IN, into OUT.
carry() {
	curl -s -f -o "$2" -H 'Content-Type: application/pkixcmp' --data-binary "@$1" "$CA_URL"
}
# one_pkimessage FILE: exactly one DER PKIMessage and nothing else.
one_pkimessage() {
	"$OPENSSL_BIN" asn1parse -inform DER -in "$1" > "$TMP/asn1" 2>&1 || return 1
	# the outer SEQUENCE spans the whole file
	_len=$(wc -c < "$1")
	head -n 1 "$TMP/asn1" | grep -q -E "^ *0:d=0  hl=[0-9]+ l= *[0-9]+ cons: SEQUENCE" || return 1
	_hl=$(head -n 1 "$TMP/asn1" | sed 's/.*hl= *\([0-9]*\) l= *\([0-9]*\).*/\1 \2/')
	[ $((${_hl% *} + ${_hl#* })) -eq "$_len" ]
}
same_file() {
	cmp -s "$1" "$2" || { echo "# $1 changed"; return 1; }
}

TOK=off-ir
make_token "$TOK" || exit 1
start_ca || exit 1
write_conf "$TOK" "cert_out = $TMP/cert.pem"
STATE=$(pending_file "$TOK")

# --- enroll --request-out: the request in a file, exit 9, the key kept -------------
p11e enroll --request-out "$TMP/ir.der" test
check "/offline/ir/exit-9" expect_rc 9
check "/offline/ir/says-what-next" grep_err "resume --response-in ANSWER --request-out CERTCONF test"
check "/offline/ir/names-file" grep_err "$TMP/ir.der"
check "/offline/ir/one-pkimessage" one_pkimessage "$TMP/ir.der"
check "/offline/ir/no-temp-left" test "$(ls "$TMP" | grep -c 'ir.der.')" = 0
check "/offline/ir/pending-saved" test -f "$STATE"
check "/offline/ir/pending-sent-nonce" grep -q -E '^sent_nonce [0-9a-f]{32}$' "$STATE"
check "/offline/ir/new-key-kept" test "$(kind 'enrolled-key (new)' 'Private Key')" = 1
check "/offline/ir/no-cert-yet" test "$(kind 'enrolled-key' 'Certificate')" = 0
check "/offline/ir/ca-saw-nothing" test "$(ca_issued)" = 0
check "/offline/ir/no-secret-in-request" no_secret_in "$TMP/ir.der" "$STATE"
cp "$STATE" "$TMP/state.before"

# resume without the answer: refused, nothing changes
p11e resume test
check "/offline/ir/resume-needs-answer" expect_rc 2
check "/offline/ir/resume-needs-answer-says" grep_err "response-in ANSWER"
p11e resume --response-in "$TMP/ir.der" test
check "/offline/ir/resume-needs-request-out" expect_rc 2

# --- the faults: nothing changes ---------------------------------------------------------
carry "$TMP/ir.der" "$TMP/ip.der" || echo "# curl failed"
head -c 100 /dev/urandom > "$TMP/garbage.der"
p11e resume --response-in "$TMP/garbage.der" --request-out "$TMP/conf.der" test
check "/offline/fault/garbage-refused" expect_rc 7
check "/offline/fault/garbage-says" grep_err "not a CMP message"
check "/offline/fault/garbage-pending-kept" same_file "$STATE" "$TMP/state.before"
size=$(wc -c < "$TMP/ip.der")
head -c $((size - 7)) "$TMP/ip.der" > "$TMP/trunc.der"
p11e resume --response-in "$TMP/trunc.der" --request-out "$TMP/conf.der" test
check "/offline/fault/truncated-refused" expect_rc 7
check "/offline/fault/truncated-pending-kept" same_file "$STATE" "$TMP/state.before"
check "/offline/fault/truncated-key-kept" test "$(kind 'enrolled-key (new)' 'Private Key')" = 1
p11e resume --response-in "$TMP/missing.der" --request-out "$TMP/conf.der" test
check "/offline/fault/missing-file-refused" expect_rc 5
check "/offline/fault/missing-file-says" grep_err "cannot read $TMP/missing.der"
# the CA's answer to the request itself is no answer to this one
p11e resume --response-in "$TMP/ir.der" --request-out "$TMP/conf.der" test
check "/offline/fault/own-request-refused" expect_rc 7
check "/offline/fault/nothing-written" test ! -e "$TMP/conf.der"
check "/offline/fault/no-cert-stored" test "$(kind 'enrolled-key' 'Certificate')" = 0

# --- the real answer: certificate stored, certConf written ---------------------------
p11e resume --response-in "$TMP/ip.der" --request-out "$TMP/conf.der" test
check "/offline/ir/resume-ok" expect_rc 0
check "/offline/ir/certconf-says" grep_err "certConf for the CA is in $TMP/conf.der"
check "/offline/ir/certconf-one-pkimessage" one_pkimessage "$TMP/conf.der"
check "/offline/ir/cert-stored" test "$(kind 'enrolled-key' 'Certificate')" = 1
check "/offline/ir/key-renamed" test "$(kind 'enrolled-key' 'Private Key')" = 1
check "/offline/ir/pending-gone" test ! -e "$STATE"
check "/offline/ir/cert-out" test -s "$TMP/cert.pem"
carry "$TMP/conf.der" "$TMP/pkiconf.der" || echo "# curl failed"
check "/offline/ir/ca-confirms" sh -c "'$OPENSSL_BIN' asn1parse -inform DER -in '$TMP/pkiconf.der' | grep -q 'cont \[ 19 \]'"
check "/offline/ir/no-secret-in-certconf" no_secret_in "$TMP/conf.der"
# the same answer again: no transaction waits for it
p11e resume --response-in "$TMP/ip.der" --request-out "$TMP/conf2.der" test
check "/offline/fault/duplicate-refused" expect_rc 2
check "/offline/fault/duplicate-says" grep_err "no pending transaction"
check "/offline/fault/duplicate-cert-unchanged" test "$(kind 'enrolled-key' 'Certificate')" = 1

# --- renew --request-out: kur, the old pair kept until the answer ------------------------
p11e renew --request-out "$TMP/kur.der" test
check "/offline/kur/exit-9" expect_rc 9
check "/offline/kur/one-pkimessage" one_pkimessage "$TMP/kur.der"
check "/offline/kur/old-cert-kept" test "$(kind 'enrolled-key' 'Certificate')" = 1
# the ir's answer, whose protection this kur's context cannot check: refused
p11e resume --response-in "$TMP/ip.der" --request-out "$TMP/conf.der" test
check "/offline/fault/foreign-refused" expect_rc 7
check "/offline/fault/foreign-says-kept" grep_err "kept, still waiting for the CA's answer"
check "/offline/fault/foreign-pending-kept" test -f "$STATE"
carry "$TMP/kur.der" "$TMP/kup.der" || echo "# curl failed"
p11e resume --response-in "$TMP/kup.der" --request-out "$TMP/conf.der" test
check "/offline/kur/resume-ok" expect_rc 0
check "/offline/kur/one-cert" test "$(kind 'enrolled-key' 'Certificate')" = 1
check "/offline/kur/pending-gone" test ! -e "$STATE"

# --- abandon: the key goes, nothing is sent ------------------------------------------------
p11e enroll --replace --request-out "$TMP/ir2.der" test
check "/offline/abandon/exit-9" expect_rc 9
carry "$TMP/ir2.der" "$TMP/ip2.der" || echo "# curl failed"
p11e resume --abandon test
check "/offline/abandon/ok" expect_rc 0
check "/offline/abandon/says-nothing-sent" grep_err "nothing is sent"
check "/offline/abandon/key-gone" test "$(kind 'enrolled-key (new)' 'Private Key')" = 0
check "/offline/abandon/pending-gone" test ! -e "$STATE"

# --- an answer of another transaction (the abandoned one's) ---------------------------------
p11e enroll --replace --request-out "$TMP/ir3.der" test
check "/offline/other/exit-9" expect_rc 9
cp "$STATE" "$TMP/state.before"
p11e resume --response-in "$TMP/ip2.der" --request-out "$TMP/conf3.der" test
check "/offline/fault/other-transaction-refused" expect_rc 7
check "/offline/fault/other-transaction-says" grep_err "another transaction"
check "/offline/fault/other-transaction-pending-kept" same_file "$STATE" "$TMP/state.before"
check "/offline/fault/other-transaction-key-kept" test "$(kind 'enrolled-key (new)' 'Private Key')" = 1
check "/offline/fault/other-transaction-nothing-written" test ! -e "$TMP/conf3.der"
carry "$TMP/ir3.der" "$TMP/ip3.der" || echo "# curl failed"
p11e resume --response-in "$TMP/ip3.der" --request-out "$TMP/conf3.der" test
check "/offline/other/then-right-answer-ok" expect_rc 0
check "/offline/other/one-cert" test "$(kind 'enrolled-key' 'Certificate')" = 1
check "/offline/other/no-new-key-left" test "$(kind 'enrolled-key (new)' 'Private Key')" = 0

# --- p10cr --request-out --------------------------------------------------------------------
p11e p10cr --replace --request-out "$TMP/p10cr.der" test
check "/offline/p10cr/exit-9" expect_rc 9
check "/offline/p10cr/one-pkimessage" one_pkimessage "$TMP/p10cr.der"
carry "$TMP/p10cr.der" "$TMP/cp.der" || echo "# curl failed"
p11e resume --response-in "$TMP/cp.der" --request-out "$TMP/conf4.der" test
check "/offline/p10cr/resume-ok" expect_rc 0
check "/offline/p10cr/certconf-written" one_pkimessage "$TMP/conf4.der"
check "/offline/p10cr/no-new-key-left" test "$(kind 'enrolled-key (new)' 'Private Key')" = 0

# --- implicit confirmation granted: no certConf to carry back ---------------------------------
p11e enroll --replace --implicit-confirm --request-out "$TMP/ir6.der" test
check "/offline/implicit/exit-9" expect_rc 9
carry "$TMP/ir6.der" "$TMP/ip6.der" || echo "# curl failed"
p11e resume --implicit-confirm --response-in "$TMP/ip6.der" --request-out "$TMP/conf6.der" test
check "/offline/implicit/resume-ok" expect_rc 0
check "/offline/implicit/says-nothing-to-carry" grep_err "implicit confirmation: nothing to carry"
check "/offline/implicit/nothing-written" test ! -e "$TMP/conf6.der"

# --- the CA rejects: the transaction ends, the new key goes, nothing is written ------------
start_ca --fault reject=badPOP || exit 1
p11e enroll --replace --request-out "$TMP/ir5.der" test
check "/offline/reject/exit-9" expect_rc 9
carry "$TMP/ir5.der" "$TMP/rej.der" || echo "# curl failed"
p11e resume --response-in "$TMP/rej.der" --request-out "$TMP/conf5.der" test
check "/offline/reject/exit-6" expect_rc 6
check "/offline/reject/says-badPOP" grep_err "badPOP"
check "/offline/reject/new-key-removed" test "$(kind 'enrolled-key (new)' 'Private Key')" = 0
check "/offline/reject/pending-gone" test ! -e "$STATE"
check "/offline/reject/old-cert-kept" test "$(kind 'enrolled-key' 'Certificate')" = 1
check "/offline/reject/nothing-written" test ! -e "$TMP/conf5.der"
start_ca || exit 1

# --- an answer for a request never sent ------------------------------------------------------
p11e resume --response-in "$TMP/ip.der" --request-out "$TMP/conf3.der" test
check "/offline/fault/never-sent-refused" expect_rc 2
finish
