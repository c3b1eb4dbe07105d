#!/bin/sh
# /interop: p11enroll against OpenSSL's `openssl cmp` mock server, an
# independent CMP implementation.  The mock answers every certificate
# request with one fixed certificate, so issuance itself can only be shown
# with the project's CA; against the mock this shows that our requests
# (PBM- and signature-protected ir, kur, rr, genm, polling) are accepted and
# that its responses are processed: a certificate for the wrong key is
# refused, rejections and unprotected answers are reported.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
setup
plan 48
make_token inter || exit 1
. "$top_srcdir/tests/mock-lib.sh"

# start_mock, pointing the configuration at it
start_mock_conf() {
	start_mock "$@"
	mock_server_conf
}

# mock_got TYPE: how many TYPE messages (IR, POLLREQ, GENM...) the mock received
mock_got() {
	grep -c "^CMP DEBUG: received $1\$" "$TMP/mock.log"
}

# The certificate the mock hands out: one the project's CA issued for a
# token key (so that its chain verifies under root.pem).
start_ca || exit 1
write_conf inter "cert_out = $TMP/old.pem
timeout = $(scaled 5)
total_timeout = $(scaled 15)"
p11e enroll test
check "/interop/setup/enrolled-at-test-ca" expect_rc 0
sed -i '/^cert_out/d' "$TMP/p11enroll.conf" # old.pem stays the mock's answer
stop_ca
before=$(count_objects inter)

# rr with PBM (asked for): the mock revokes what it issued (its -rsp_cert).
start_mock_conf
p11e revoke test --reason superseded --rr-protection pbm
check "/interop/rr/pbm/exit-0" expect_rc 0
check "/interop/rr/pbm/revoked" grep -q -i 'revoked\|accepted' "$TMP/out"
# rr signed by the certificate's own key (the default), verified by the mock,
# which signs its answer (with a MAC secret it would answer with PBM).
MOCK_PROT=sig start_mock_conf
p11e revoke test --reason superseded
check "/interop/rr/own-key/exit-0" expect_rc 0
check "/interop/rr/own-key/revoked" grep -q -i 'revoked\|accepted' "$TMP/out"

# rr rejected by the mock: exit 6 with the failInfo name.
start_mock_conf -pkistatus 2 -failure 4 -statusstring "mock says no"
p11e revoke test --rr-protection pbm
check "/interop/rr/rejected/exit-6" expect_rc 6
check "/interop/rr/rejected/failinfo" grep_err 'badCertId'
check "/interop/rr/rejected/status-string" grep_err 'mock says no'

# genm caCerts: the mock echoes the request's ITAV (no value): no CA
# certificates, and an empty file is written.
start_mock_conf
rm -f "$TMP/cacerts.pem"
p11e genm test --ca-certs "$TMP/cacerts.pem"
check "/interop/genm/ca-certs/exit-0" expect_rc 0
check "/interop/genm/ca-certs/mock-got-genm" test "$(mock_got GENM)" -eq 1
check "/interop/genm/ca-certs/mock-sent-genp" grep -q -x 'CMP DEBUG: sending GENP' "$TMP/mock.log"
check "/interop/genm/ca-certs/none" grep -q -x 'CA certificates: 0' "$TMP/out"
check "/interop/genm/ca-certs/written" grep -q -x "written to $TMP/cacerts.pem" "$TMP/out"
check "/interop/genm/ca-certs/file-empty" sh -c "test -f '$TMP/cacerts.pem' && test ! -s '$TMP/cacerts.pem'"

# (Each ir below says --replace: the label holds the test CA's certificate.)
# ir with PBM: the mock's certificate carries another key than the new one,
# so the client refuses it in certConf: the request was understood, the
# answer processed, and nothing new stays on the token.
start_mock_conf
p11e enroll test --replace
check "/interop/ir/pbm/exit-8" expect_rc 8
check "/interop/ir/pbm/key-mismatch" grep_err 'public key'
check "/interop/ir/pbm/token-unchanged" test "$(count_objects inter)" -eq "$before"

# ir answered after two polls (pollReq/pollRep with checkAfter 1 s): the
# mock's log shows the ir and both pollReq.
start_mock_conf -poll_count 2 -check_after 1
p11e enroll test --replace
check "/interop/ir/polled/exit-8" expect_rc 8
check "/interop/ir/polled/one-ir" test "$(mock_got IR)" -eq 1
check "/interop/ir/polled/two-pollreq" test "$(mock_got POLLREQ)" -eq 2
check "/interop/ir/polled/token-unchanged" test "$(count_objects inter)" -eq "$before"

# ir rejected (badPOP): exit 6, failInfo and the mock's text.
start_mock_conf -pkistatus 2 -failure 9 -statusstring "mock rejects"
p11e enroll test --replace
check "/interop/ir/rejected/exit-6" expect_rc 6
check "/interop/ir/rejected/failinfo" grep_err 'badPOP'

# Unprotected responses are refused.
start_mock_conf -send_unprotected
p11e enroll test --replace
check "/interop/ir/unprotected/exit-7" expect_rc 7
check "/interop/ir/unprotected/message" grep_err 'protection'

# A complete ir with the mock: a key pair made on the token beforehand and
# a certificate pre-issued for it (the mock's fixed answer), certified with
# --key-id; the certificate lands on the token next to that key.
"$PKCS11_TOOL" --module "$SOFTHSM2_MODULE" --token-label inter --login --pin "$USER_PIN" \
	--keypairgen --key-type EC:prime256v1 --id 4a1f --label pre > /dev/null 2>&1
"$PKCS11_TOOL" --module "$SOFTHSM2_MODULE" --token-label inter --read-object --type pubkey \
	--id 4a1f -o "$TMP/pre-pub.der" > /dev/null 2>&1
"$OPENSSL_BIN" pkey -pubin -inform DER -in "$TMP/pre-pub.der" -out "$TMP/pre-pub.pem"
"$OPENSSL_BIN" x509 -new -force_pubkey "$TMP/pre-pub.pem" -subj "/CN=p11enroll test/O=Example" \
	-CA "$TMP/ca/ca.pem" -CAkey "$TMP/ca/ca.key" -days 1 -out "$TMP/pre.pem" 2> /dev/null
check "/interop/ir/pre-issued/setup" test -s "$TMP/pre.pem"
before_pre=$(count_objects inter)
# (a variable set in front of a shell function stays set in some shells:
# RSP_CERT and MOCK_PROT are set and unset explicitly)
RSP_CERT=$TMP/pre.pem
start_mock_conf
p11e enroll test --key-id 4a1f --label pre
check "/interop/ir/pre-issued/exit-0" expect_rc 0
check "/interop/ir/pre-issued/stored-with-key-id" sh -c \
	"'$PKCS11_TOOL' --module '$SOFTHSM2_MODULE' --token-label inter --list-objects --type cert | grep -A3 'label: *pre' | grep -q 'ID: *4a1f'"
start_mock_conf -poll_count 2 -check_after 1
p11e enroll test --key-id 4a1f --label pre
check "/interop/ir/pre-issued/after-polling/exit-0" expect_rc 0
check "/interop/ir/pre-issued/after-polling/two-pollreq" test "$(mock_got POLLREQ)" -eq 2
check "/interop/ir/pre-issued/after-polling/enrolled" grep -q '^enrolled' "$TMP/out"
# The client gives up waiting and saves the transaction; `p11enroll resume`
# then polls the mock with pollReq messages of its own making (a new
# process: transactionID and the mock's last senderNonce from the state
# file) and finishes with certConf; `resume --abandon` sends the mock an
# error message.  The mock asks to poll again in an hour, past the total
# timeout: the first process saves the transaction and exits 9 whatever
# the machine's speed (not a 1 s total timeout against a 2 s checkAfter,
# where a slow first exchange ran out before the "waiting" came); its next
# pollReq, the resume's, gets the certificate (-poll_count 2: the ir and
# the first process's own pollReq were answered "waiting").
start_mock_conf -poll_count 2 -check_after 3600
p11e enroll test --key-id 4a1f --label pre --total-timeout "$(scaled 30)"
check "/interop/ir/pre-issued/resume/waiting-exit-9" expect_rc 9
check "/interop/ir/pre-issued/resume/saved" test "$(pending_count)" -eq 1
p11e resume test --label pre
check "/interop/ir/pre-issued/resume/exit-0" expect_rc 0
check "/interop/ir/pre-issued/resume/enrolled" grep -q '^enrolled' "$TMP/out"
check "/interop/ir/pre-issued/resume/state-removed" test "$(pending_count)" -eq 0
start_mock_conf -poll_count 2 -check_after 3600
p11e enroll test --key-id 4a1f --label pre --total-timeout "$(scaled 30)"
p11e resume --abandon test --label pre
check "/interop/ir/pre-issued/abandon/exit-0" expect_rc 0
check "/interop/ir/pre-issued/abandon/mock-got-error" grep -q 'mock server received error' "$TMP/mock.log"
check "/interop/ir/pre-issued/abandon/status-rejection" grep -q 'PKIStatus: rejection.*abandoned by the operator' "$TMP/mock.log"
check "/interop/ir/pre-issued/abandon/state-removed" test "$(pending_count)" -eq 0
unset RSP_CERT
# (the second run stores nothing new: the same certificate is already there)
check "/interop/ir/pre-issued/one-cert" test "$(count_objects inter)" -eq $((before_pre + 1))
check "/interop/ir/pre-issued/key-kept" sh -c \
	"'$PKCS11_TOOL' --module '$SOFTHSM2_MODULE' --token-label inter --login --pin '$USER_PIN' --list-objects --type privkey | grep -q 'ID: *4a1f'"
before=$(count_objects inter)

# kur signed by the old token key: the mock verifies the signature against
# root.pem (a bad one would be answered with an error, exit 6/7) and signs
# its answer (RFC 9483: a kup is not MAC-protected); its fixed certificate
# is not for the new key, so the old pair stays.
MOCK_PROT=sig
start_mock_conf
unset MOCK_PROT
p11e renew test
check "/interop/kur/signed/exit-8" expect_rc 8
check "/interop/kur/signed/key-mismatch" grep_err 'public key'
check "/interop/kur/signed/token-unchanged" test "$(count_objects inter)" -eq "$before"

# A kup protected by MAC is refused: the request was signed, and the client
# does not let a shared secret vouch for a key update.
start_mock_conf
p11e renew test
check "/interop/kur/mac-answer-refused/exit-7" expect_rc 7
check "/interop/kur/mac-answer-refused/token-unchanged" test "$(count_objects inter)" -eq "$before"
check "/interop/no-secret-in-output" no_secret_in "$TMP/out" "$TMP/err"
stop_mock
finish
