#!/bin/sh
# /cr: cr signed with a certificate and key on the token, or with software
# protection credentials; p10cr with a PKCS#10 request signed on the token.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
setup
plan 33
start_ca || exit 1
TOK=cr
make_token "$TOK" || exit 1
write_conf "$TOK"

count_label() {
	label_count "$TOK" "$1"
}

p11e enroll test
check "/cr/setup/enrolled" expect_rc 0

# cr signed by the enrolled certificate on the token.
: > "$TMP/ca.log"
p11e -v cr test --signer enrolled-key --label by-token
check "/cr/token-signer/exit-0" expect_rc 0
check "/cr/token-signer/summary" grep -q '^enrolled test' "$TMP/out"
check "/cr/token-signer/stored" test "$(count_label by-token)" -eq 3
check "/cr/token-signer/sent-cr" grep -q ' cr -> cp' "$TMP/ca.log"
check "/cr/token-signer/pop" grep -q 'cr: POP verified' "$TMP/ca.log"
check "/cr/token-signer/no-secret" no_secret_in "$TMP/out" "$TMP/err"

# Without a signer, cr refuses before generating anything.
n=$(count_objects "$TOK")
p11e cr test --label unsigned
check "/cr/no-signer/exit-2" expect_rc 2
check "/cr/no-signer/message" grep_err 'must be signed'
check "/cr/no-signer/nothing-generated" test "$(count_objects "$TOK")" -eq "$n"

# Unknown signer label: a token error naming it, no key left behind.
p11e cr test --signer nosuch --label unsigned
check "/cr/unknown-signer/exit-3" expect_rc 3
check "/cr/unknown-signer/message" grep_err "nosuch"
check "/cr/unknown-signer/nothing-generated" test "$(count_objects "$TOK")" -eq "$n"

# Software protection credentials issued by the test CA's issuing CA.
"$OPENSSL_BIN" req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$TMP/ra.key" -subj "/CN=test RA" -out "$TMP/ra.csr" > /dev/null 2>&1
"$OPENSSL_BIN" x509 -req -in "$TMP/ra.csr" -CA "$TMP/ca/ca.pem" -CAkey "$TMP/ca/ca.key" \
	-CAcreateserial -days 2 -out "$TMP/ra.pem" > /dev/null 2>&1
chmod 600 "$TMP/ra.key"
: > "$TMP/ca.log"
p11e cr test --protection-cert "$TMP/ra.pem" --protection-key "$TMP/ra.key" --label by-file
check "/cr/file-signer/exit-0" expect_rc 0
check "/cr/file-signer/stored" test "$(count_label by-file)" -eq 3
check "/cr/file-signer/sent-cr" grep -q ' cr -> cp' "$TMP/ca.log"

chmod 644 "$TMP/ra.key"
n=$(count_objects "$TOK")
p11e cr test --protection-cert "$TMP/ra.pem" --protection-key "$TMP/ra.key" --label loose
check "/cr/file-signer/readable-key/exit-2" expect_rc 2
check "/cr/file-signer/readable-key/message" grep_err 'chmod 600'
check "/cr/file-signer/readable-key/nothing-generated" test "$(count_objects "$TOK")" -eq "$n"
chmod 600 "$TMP/ra.key"
p11e cr test --protection-cert "$TMP/ra.pem" --label half
check "/cr/file-signer/key-missing/exit-2" expect_rc 2
check "/cr/file-signer/key-missing/message" grep_err 'protection_key'

# p10cr: the CSR is signed on the token; PBM protection.
: > "$TMP/ca.log"
p11e p10cr test --label p10
check "/p10cr/exit-0" expect_rc 0
check "/p10cr/stored" test "$(count_label p10)" -eq 3
check "/p10cr/sent-p10cr" grep -q ' p10cr -> cp' "$TMP/ca.log"
check "/p10cr/csr-verified" grep -q 'p10cr: POP verified' "$TMP/ca.log"
check "/p10cr/no-secret" no_secret_in "$TMP/out" "$TMP/err"

# p10cr with a token signer instead of PBM.
p11e p10cr test --label p10-signed --signer enrolled-key
check "/p10cr/signer/exit-0" expect_rc 0
check "/p10cr/signer/stored" test "$(count_label p10-signed)" -eq 3

# The confirmation exchange fails (HTTP 500 to the certConf) for a cr given
# --label: the pair and its certificate stay under "by-badge (new)", and
# the advice names the command that puts them in place with that label
# (recovery looks only under the label it is given: the configuration's
# would leave them where they are).
start_ca --fault http500 --fault-on certConf || exit 1
write_conf "$TOK"
p11e cr test --signer enrolled-key --label by-badge
check "/cr/certconf-fails/exit-5" expect_rc 5
check "/cr/certconf-fails/kept-as-new" test "$(count_label 'by-badge \(new\)')" -eq 3
check "/cr/certconf-fails/advice-names-label" grep_err "\\(or \`p11enroll check test --label 'by-badge' --recover\`\\) puts it in place"
p11e check test --label by-badge --recover
check "/cr/certconf-fails/advice-works" expect_rc 0
check "/cr/certconf-fails/in-place" test "$(count_label by-badge)" -eq 3 -a "$(count_label 'by-badge \(new\)')" -eq 0
finish
