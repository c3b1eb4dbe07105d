#!/bin/sh
# /trust: who may speak for the CA.  A response signed by an end-entity
# certificate of the same PKI (a device, used by a rogue responder) is
# refused before anything in it is used: no key deleted, no certificate
# stored, no rejection or poll answer acted on.  The issuing CA's own
# certificate (EKU-less, as EJBCA signs), a cmcRA certificate, a pinned
# srv_cert or expected sender, and allow_any_response_signer are accepted;
# srv_trusted replaces trusted for responses only.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
setup
plan 27
start_ca || exit 1
TOK=trust
make_token "$TOK" || exit 1
write_conf "$TOK" "cert_out = $TMP/cert.pem"
p11e enroll test
check "/trust/setup/enrolled" expect_rc 0
DEVICE_DN="/O=p11enroll test/CN=p11enroll Test Device"

refused() {
	expect_rc 7 && grep_err "may not speak for the CA" && grep_err "p11enroll Test Device"
}

# --- a device certificate signs every answer (a rogue responder) --------
start_ca --protection sig --signer device || exit 1
write_conf "$TOK"
: > "$TMP/ca.log"
p11e enroll test --label rogue-ir
check "/trust/device/ir/refused" refused
check "/trust/device/ir/no-certificate" test "$(label_count "$TOK" rogue-ir)" -eq 0
check "/trust/device/ir/no-certconf" sh -c "! grep -q 'certConf' '$TMP/ca.log'"

before=$(count_objects "$TOK") || exit 1
p11e revoke test --delete --reason keyCompromise
check "/trust/device/rr/refused" refused
check "/trust/device/rr/not-accepted" sh -c "! grep -q -i 'accepted\|revoked' '$TMP/out'"
check "/trust/device/rr/key-kept" test "$(count_objects "$TOK")" -eq "$before"
check "/trust/device/rr/pair-kept" test "$(label_count "$TOK" enrolled-key)" -eq 3

p11e genm test --ca-certs "$TMP/rogue-cacerts.pem"
check "/trust/device/genm/refused" refused
check "/trust/device/genm/nothing-written" test ! -e "$TMP/rogue-cacerts.pem"

# A rejection signed by the device is no rejection.
start_ca --protection sig --signer device --fault reject=badPOP || exit 1
write_conf "$TOK"
p11e enroll test --label rogue-reject
check "/trust/device/error-body/not-a-rejection" refused
check "/trust/device/error-body/no-certificate" test "$(label_count "$TOK" rogue-reject)" -eq 0

# --- accepted signers --------------------------------------------------------
# The issuing CA's own certificate without EKU (EJBCA): ir, rr and genm.
start_ca --protection sig --signer ca || exit 1
write_conf "$TOK"
p11e enroll test --label by-ca
check "/trust/issuing-ca/ir/exit-0" expect_rc 0
p11e genm test --ca-certs "$TMP/ca-cacerts.pem"
check "/trust/issuing-ca/genm/exit-0" expect_rc 0
write_conf "$TOK" "label = by-ca"
p11e revoke test --reason superseded
check "/trust/issuing-ca/rr/exit-0" expect_rc 0

# The CMP server certificate with id-kp-cmcRA (the test CA's default).
start_ca --protection sig || exit 1
write_conf "$TOK"
p11e enroll test --label by-ra
check "/trust/cmc-ra/ir/exit-0" expect_rc 0

# The device, pinned as srv_cert, named as expected sender, or with
# allow_any_response_signer: the operator said so.
start_ca --protection sig --signer device || exit 1
write_conf "$TOK" "srv_cert = $TMP/ca/device.pem"
p11e enroll test --label pinned
check "/trust/srv-cert/pinned/exit-0" expect_rc 0
write_conf "$TOK" "expected_sender = $DEVICE_DN"
p11e enroll test --label named
check "/trust/expected-sender/exit-0" expect_rc 0
write_conf "$TOK" "allow_any_response_signer = yes"
p11e enroll test --label any
check "/trust/any-signer/exit-0" expect_rc 0
check "/trust/any-signer/warns" grep_err "allow_any_response_signer"
# A pinned srv_cert is the only signer: the CA's cmcRA certificate is not.
start_ca --protection sig || exit 1
write_conf "$TOK" "srv_cert = $TMP/ca/device.pem"
p11e enroll test --label pinned-other
check "/trust/srv-cert/other-refused/exit-7" expect_rc 7
check "/trust/srv-cert/other-refused/no-certificate" test "$(label_count "$TOK" pinned-other)" -eq 0

# --- srv_trusted: the anchors for responses, not for the certificate --------
"$OPENSSL_BIN" req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$TMP/other.key" -out "$TMP/other-root.pem" -days 2 -subj "/CN=Other Root" \
	> /dev/null 2>&1 || exit 1
write_conf "$TOK" "srv_trusted = $TMP/other-root.pem"
p11e enroll test --label other-anchor
check "/trust/srv-trusted/replaces-trusted/exit-7" expect_rc 7
check "/trust/srv-trusted/replaces-trusted/no-certificate" \
	test "$(label_count "$TOK" other-anchor)" -eq 0
# trusted no longer vouches for the responder: it may hold only the root
# the issued certificate chains to, and srv_trusted the responder's.
write_conf "$TOK" "srv_trusted = $TMP/ca/root.pem
trusted = $TMP/other-root.pem"
p11e enroll test --label cert-anchor
check "/trust/srv-trusted/trusted-checks-cert/exit-8" expect_rc 8
check "/trust/srv-trusted/trusted-checks-cert/says-anchor" grep_err "trust anchor"
write_conf "$TOK" "srv_trusted = $TMP/ca/root.pem"
p11e enroll test --label both
check "/trust/srv-trusted/ok/exit-0" expect_rc 0

finish
