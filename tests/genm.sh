#!/bin/sh
# /genm: CA certificates to a file and to the token, the certificate request
# template and its use, a root CA update, CRLs.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
setup
plan 42
start_ca || exit 1
TOK=genm
make_token "$TOK" || exit 1
write_conf "$TOK"

p11e genm test --ca-certs "$TMP/cacerts.pem"
check "/genm/ca-certs/exit-0" expect_rc 0
check "/genm/ca-certs/two" test "$(grep -c 'BEGIN CERTIFICATE' "$TMP/cacerts.pem")" -eq 2
check "/genm/ca-certs/has-root" sh -c "grep -v -e '^-' '$TMP/ca/root.pem' | head -3 | \
	grep -q -F -f - '$TMP/cacerts.pem'"
check "/genm/ca-certs/token-untouched" test "$(count_objects "$TOK")" -eq 0
check "/genm/ca-certs/no-secret" no_secret_in "$TMP/out" "$TMP/err"
p11e genm test --ca-certs "$TMP/cacerts2.pem" --store
check "/genm/ca-certs-store/exit-0" expect_rc 0
check "/genm/ca-certs-store/on-token" test "$(objects "$TOK" cert | grep -c '^Certificate Object')" -eq 2

p11e genm test
check "/genm/nothing-asked/exit-2" expect_rc 2
p11e genm test --template --root-update
check "/genm/two-asked/exit-2" expect_rc 2

# Template: shown, and used by enroll when use_template = yes.
start_ca --template "subject=/CN=from template/O=Example;key=ec:P-384" || exit 1
write_conf "$TOK"
p11e genm test --template
check "/genm/template/exit-0" expect_rc 0
check "/genm/template/subject" grep -q 'subject:.*CN *= *from template\|subject:.*CN=from template' "$TMP/out"
check "/genm/template/key" grep -q 'key: *EC 384' "$TMP/out"
cat > "$TMP/p11enroll.conf" <<EOC
module = $SOFTHSM2_MODULE
server = $CA_URL
reference = $CMP_REF
secret_source = file:$TMP/secret
trusted = $TMP/ca/root.pem
[test]
token = pkcs11:token=$TOK
pin_source = file:$TMP/pin
label = templated
use_template = yes
cert_out = $TMP/templated.pem
EOC
p11e p10cr test
check "/genm/template-used/exit-0" expect_rc 0
check "/genm/template-used/subject" sh -c "'$OPENSSL_BIN' x509 -in '$TMP/templated.pem' -noout -subject | grep -q 'from template'"
check "/genm/template-used/key-size" sh -c "'$OPENSSL_BIN' x509 -in '$TMP/templated.pem' -noout -text | grep -q '384 bit'"
p11e enroll test --label templated-ir --cert-out "$TMP/tir.pem"
check "/genm/template-used/enroll/exit-0" expect_rc 0
check "/genm/template-used/enroll/subject" sh -c "'$OPENSSL_BIN' x509 -in '$TMP/tir.pem' -noout -subject | grep -q 'from template'"
# The configuration wins over the template.
echo "subject = /CN=from config" >> "$TMP/p11enroll.conf"
echo "key_type = ec:P-256" >> "$TMP/p11enroll.conf"
sed -i 's/^label = templated/label = templated2/' "$TMP/p11enroll.conf"
p11e p10cr test
check "/genm/template-config-wins/exit-0" expect_rc 0
check "/genm/template-config-wins/subject" sh -c "'$OPENSSL_BIN' x509 -in '$TMP/templated.pem' -noout -subject | grep -q 'from config'"
check "/genm/template-config-wins/key-size" sh -c "'$OPENSSL_BIN' x509 -in '$TMP/templated.pem' -noout -text | grep -q '256 bit'"

# Root CA update: accepted only when newWithOld verifies under the current root.
start_ca --new-root || exit 1
write_conf "$TOK"
p11e genm test --root-update --out "$TMP/newroot.pem"
check "/genm/root-update/exit-0" expect_rc 0
check "/genm/root-update/new-root" cmp -s "$TMP/newroot.pem" "$TMP/ca/newroot.pem"
start_ca || exit 1
write_conf "$TOK"
p11e genm test --root-update --out "$TMP/none.pem"
check "/genm/root-update/none/exit-0" expect_rc 0
check "/genm/root-update/none/says" grep -q 'no root CA update' "$TMP/out"
check "/genm/root-update/none/no-file" test ! -e "$TMP/none.pem"

# A new root that is over, or no CA, is no successor.
for f in "expired-new-root:newWithNew has expired" \
	"new-root-not-ca:newWithNew is not a CA certificate"; do
	start_ca --new-root --fault "${f%%:*}" || exit 1
	write_conf "$TOK"
	p11e genm test --root-update --out "$TMP/${f%%:*}.pem"
	check "/genm/root-update/${f%%:*}/exit-7" expect_rc 7
	check "/genm/root-update/${f%%:*}/says" grep_err "${f#*:}"
	check "/genm/root-update/${f%%:*}/no-file" test ! -e "$TMP/${f%%:*}.pem"
done

# CA certificates that do not chain to trusted: listed as such, never stored.
start_ca --fault foreign-cacerts || exit 1
write_conf "$TOK"
before=$(objects "$TOK" cert | grep -c '^Certificate Object')
p11e genm test --ca-certs "$TMP/foreign.pem" --store
check "/genm/ca-certs/unverified/exit-8" expect_rc 8
check "/genm/ca-certs/unverified/refused" grep_err "refusing to store the CA certificates"
check "/genm/ca-certs/unverified/names-it" grep -q "NOT verified" "$TMP/out"
check "/genm/ca-certs/unverified/nothing-stored" \
	test "$(objects "$TOK" cert | grep -c '^Certificate Object')" -eq "$before"
p11e genm test --ca-certs "$TMP/foreign.pem"
check "/genm/ca-certs/unverified/file-with-warning/exit-0" expect_rc 0
check "/genm/ca-certs/unverified/file-with-warning/warns" grep_err "Foreign CA.*does not verify"

# CRLs: the one CRL the CA holds (DIR/crl.pem), as it is, and it verifies
# under the issuing CA.
start_ca || exit 1
write_conf "$TOK"
p11e genm test --crls "$TMP/crls.pem"
check "/genm/crls/exit-0" expect_rc 0
check "/genm/crls/says-one" grep -q -x 'CRLs: 1' "$TMP/out"
check "/genm/crls/one" test "$(grep -c 'BEGIN X509 CRL' "$TMP/crls.pem")" -eq 1
check "/genm/crls/the-cas-crl" cmp -s "$TMP/crls.pem" "$TMP/ca/crl.pem"
check "/genm/crls/verifies" sh -c \
	"'$OPENSSL_BIN' crl -in '$TMP/crls.pem' -CAfile '$TMP/ca/ca.pem' -noout 2>&1 | grep -q -x 'verify OK'"
finish
