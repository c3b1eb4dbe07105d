#!/bin/sh
# /ccr: p11enroll ccr, cross-certification.  A CA's key pair on the token
# (here: enrolled at one test CA, EC and RSA) is certified by another test
# CA; the cross-certificate verifies with `openssl verify` against the
# other CA, carries the key and CA:TRUE, goes to --out and (--store) onto
# the token as an authority certificate beside the CA's own, which stays.
# A ccp for another key leaves the token as it was.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
setup
plan 39
start_ca || exit 1
TOK=ccr
make_token "$TOK" || exit 1
write_conf "$TOK"

# The requesting CA's keys and own certificates, from "our" CA.
p11e enroll test --cert-out "$TMP/own-ec.pem"
check "/ccr/setup/ec-enrolled" expect_rc 0
p11e enroll test --label rsa-key --key-type rsa:2048 --cert-out "$TMP/own-rsa.pem"
check "/ccr/setup/rsa-enrolled" expect_rc 0
RSA_ID=$(label_id "$TOK" privkey rsa-key)
stop_ca
mv "$TMP/ca" "$TMP/ours"
# The other CA: a new root in $TMP/ca, the configuration's trusted.
start_ca || exit 1
write_conf "$TOK"
BEFORE=$(count_objects "$TOK")

pubkey() { "$OPENSSL_BIN" x509 -in "$1" -noout -pubkey; }
verified() {
	"$OPENSSL_BIN" verify -CAfile "$TMP/ca/root.pem" -untrusted "$TMP/ca/ca.pem" "$1" \
		> /dev/null 2>&1
}

p11e ccr test
check "/ccr/nowhere/exit-2" expect_rc 2
check "/ccr/nowhere/says" grep -q -e '--out FILE (or cert_out), --store' "$TMP/err"

p11e ccr test --out "$TMP/cross-ec.pem" --store
check "/ccr/ec/exit-0" expect_rc 0
check "/ccr/ec/verifies" verified "$TMP/cross-ec.pem"
check "/ccr/ec/same-key" test "$(pubkey "$TMP/cross-ec.pem")" = "$(pubkey "$TMP/own-ec.pem")"
check "/ccr/ec/ca-true" sh -c "'$OPENSSL_BIN' x509 -in '$TMP/cross-ec.pem' -noout -text | \
	grep -q 'CA:TRUE'"
check "/ccr/ec/key-cert-sign" sh -c "'$OPENSSL_BIN' x509 -in '$TMP/cross-ec.pem' -noout -text | \
	grep -q 'Certificate Sign, CRL Sign'"
check "/ccr/ec/subject-of-own" test \
	"$("$OPENSSL_BIN" x509 -in "$TMP/cross-ec.pem" -noout -subject)" = \
	"$("$OPENSSL_BIN" x509 -in "$TMP/own-ec.pem" -noout -subject)"
check "/ccr/ec/stored" test "$(count_objects "$TOK")" -eq $((BEFORE + 1))
check "/ccr/ec/own-cert-stays" test "$(kind enrolled-key Certificate)" -eq 1
check "/ccr/ec/says-stored" grep -q 'as an authority certificate' "$TMP/out"
# CKA_ID: the key pair's (tok_cacert_store_id)
XLABEL=$(sed -n 's/.*as an authority certificate (label "\(.*\)")$/\1/p' "$TMP/out")
check "/ccr/ec/cka-id-of-key" test -n "$XLABEL" -a \
	"$(label_id "$TOK" cert "$XLABEL")" = "$(label_id "$TOK" privkey enrolled-key)"
check "/ccr/ec/no-secret" no_secret_in "$TMP/out" "$TMP/err"
check "/ccr/ec/ca-log" grep -q 'ccr -> ccp accepted' "$TMP/ca.log"

# The RSA key named by key_id (the label names another pair).
p11e ccr test --key-id "$RSA_ID" --subject "/CN=RSA CA/O=Example" --out "$TMP/cross-rsa.pem"
check "/ccr/rsa-key-id/exit-0" expect_rc 0
check "/ccr/rsa-key-id/verifies" verified "$TMP/cross-rsa.pem"
check "/ccr/rsa-key-id/same-key" test "$(pubkey "$TMP/cross-rsa.pem")" = \
	"$(pubkey "$TMP/own-rsa.pem")"
check "/ccr/rsa-key-id/subject" sh -c "'$OPENSSL_BIN' x509 -in '$TMP/cross-rsa.pem' -noout \
	-subject | grep -q 'RSA CA'"
check "/ccr/rsa-key-id/not-stored" test "$(count_objects "$TOK")" -eq $((BEFORE + 1))

# A key pair made by another tool, CKA_ID 4a1f (not its key identifier),
# without a certificate: the subject comes from the command line, and the
# stored cross-certificate carries that CKA_ID.
"$PKCS11_TOOL" --module "$SOFTHSM2_MODULE" --slot "$(token_slot "$TOK")" --login \
	--pin "$USER_PIN" --keypairgen --key-type EC:prime256v1 --id 4a1f --label hsm-ca-key \
	> /dev/null 2>&1
check "/ccr/foreign-id/setup" test "$(label_id "$TOK" privkey hsm-ca-key)" = 4a1f
N=$(count_objects "$TOK")
p11e ccr test --key-id 4a1f --subject "/CN=HSM CA/O=Example" --store
check "/ccr/foreign-id/exit-0" expect_rc 0
XLABEL=$(sed -n 's/.*as an authority certificate (label "\(.*\)")$/\1/p' "$TMP/out")
check "/ccr/foreign-id/cka-id" test -n "$XLABEL" -a "$(label_id "$TOK" cert "$XLABEL")" = 4a1f
check "/ccr/foreign-id/stored" test "$(count_objects "$TOK")" -eq $((N + 1))
sed -i '/^subject = /d' "$TMP/p11enroll.conf"
p11e ccr test --key-id 4a1f --store
check "/ccr/foreign-id/no-subject/exit-2" expect_rc 2
check "/ccr/foreign-id/no-subject/says" grep -q 'set subject' "$TMP/err"
# without subject, the label's key is certified under its own certificate's name
p11e ccr test --out "$TMP/cross-own.pem"
check "/ccr/own-subject/exit-0" expect_rc 0
check "/ccr/own-subject/same" test \
	"$("$OPENSSL_BIN" x509 -in "$TMP/cross-own.pem" -noout -subject)" = \
	"$("$OPENSSL_BIN" x509 -in "$TMP/own-ec.pem" -noout -subject)"
write_conf "$TOK"

# A path length from basic_constraints; CA:FALSE makes no cross-certificate.
p11e ccr test --basic-constraints CA:TRUE,pathlen:3 --out "$TMP/cross-pl.pem"
check "/ccr/pathlen/exit-0" expect_rc 0
check "/ccr/pathlen/three" sh -c "'$OPENSSL_BIN' x509 -in '$TMP/cross-pl.pem' -noout -text | \
	grep -q 'CA:TRUE, pathlen:3'"
p11e ccr test --basic-constraints CA:FALSE --out "$TMP/cross-false.pem"
check "/ccr/ca-false/exit-2" expect_rc 2
check "/ccr/ca-false/says" grep -q 'CA:FALSE: a cross-certificate is a CA certificate' "$TMP/err"
check "/ccr/ca-false/no-file" test ! -e "$TMP/cross-false.pem"

# A ccp for another public key: refused (exit 8), nothing written or stored.
start_ca --fault wrong-key || exit 1
write_conf "$TOK"
N=$(count_objects "$TOK")
p11e ccr test --out "$TMP/wrong.pem" --store
check "/ccr/wrong-key/exit-8" expect_rc 8
check "/ccr/wrong-key/says" grep -q 'another public key' "$TMP/err"
check "/ccr/wrong-key/no-file" test ! -e "$TMP/wrong.pem"
check "/ccr/wrong-key/token-unchanged" test "$(count_objects "$TOK")" -eq "$N"
check "/ccr/wrong-key/certconf-rejects" grep -q 'client rejected the certificate' "$TMP/ca.log"
finish
