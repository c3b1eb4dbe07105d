#!/bin/sh
# /ccr-new: p11enroll ccr --new-key (a CA key pair generated on the token
# for the cross-certificate), name constraints, a CA that answers
# 'waiting' (polling), and a requesting CA of a foreign PKI that protects
# its ccr with its own CA certificate and key on the token (the test CA
# trusts it with --ccr-trusted).  Each cross-certificate verifies with
# `openssl verify` against the other CA; every failure leaves the token as
# it was (object counts) and says why.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
setup
plan 94
start_ca || exit 1
TOK=ccrnew
make_token "$TOK" || exit 1
NC='permitted;DNS:.example.com,permitted;email:example.com,excluded;IP:10.0.0.0/255.0.0.0'
write_conf "$TOK" "name_constraints = $NC"

verified() {
	"$OPENSSL_BIN" verify -CAfile "$TMP/ca/root.pem" -untrusted "$TMP/ca/ca.pem" "$1" \
		> /dev/null 2>&1
}
text() { "$OPENSSL_BIN" x509 -in "$1" -noout -text; }
has_text() { text "$1" | grep -q -F -e "$2"; }
# the name constraints as asked, critical
constrained() {
	text "$1" > "$TMP/text" &&
		grep -q 'X509v3 Name Constraints: critical' "$TMP/text" &&
		sed -n '/Name Constraints/,/X509v3 [A-Z][a-z]* [A-Z]/p' "$TMP/text" > "$TMP/nc" &&
		grep -q 'Permitted:' "$TMP/nc" && grep -q 'DNS:.example.com' "$TMP/nc" &&
		grep -q 'email:example.com' "$TMP/nc" && grep -q 'Excluded:' "$TMP/nc" &&
		grep -q 'IP:10.0.0.0/255.0.0.0' "$TMP/nc"
}
# the public key of the token's key with CKA_ID $1, PEM
token_pub() {
	"$PKCS11_TOOL" --module "$SOFTHSM2_MODULE" --slot "$(token_slot "$TOK")" --login \
		--pin "$USER_PIN" --read-object --type pubkey --id "$1" -o "$TMP/pub.der" \
		> /dev/null 2>&1 &&
		"$OPENSSL_BIN" pkey -pubin -inform DER -in "$TMP/pub.der"
}
pubkey() { "$OPENSSL_BIN" x509 -in "$1" -noout -pubkey; }
# unchanged N: the token holds N objects and nothing under a "(new)" label
unchanged() {
	test "$(count_objects "$TOK")" -eq "$1" && ! objects "$TOK" | grep -q '(new)'
}

# --- a new EC key (key_type's default), name constraints, pathlen
N=$(count_objects "$TOK")
p11e ccr test --new-key --label ca-ec --subject "/CN=EC CA/O=Example" \
	--basic-constraints CA:TRUE,pathlen:1 --out "$TMP/cross-ec.pem"
check "/ccr-new/ec/exit-0" expect_rc 0
check "/ccr-new/ec/verifies" verified "$TMP/cross-ec.pem"
check "/ccr-new/ec/ca-pathlen" has_text "$TMP/cross-ec.pem" 'CA:TRUE, pathlen:1'
check "/ccr-new/ec/key-usage" has_text "$TMP/cross-ec.pem" 'Certificate Sign, CRL Sign'
check "/ccr-new/ec/name-constraints" constrained "$TMP/cross-ec.pem"
check "/ccr-new/ec/ec-key" has_text "$TMP/cross-ec.pem" 'id-ecPublicKey'
check "/ccr-new/ec/pair-and-cert" test "$(count_objects "$TOK")" -eq $((N + 3))
ID=$(label_id "$TOK" privkey ca-ec)
check "/ccr-new/ec/cka-id" test -n "$ID" -a "$(label_id "$TOK" cert ca-ec)" = "$ID"
check "/ccr-new/ec/same-key" test "$(token_pub "$ID")" = "$(pubkey "$TMP/cross-ec.pem")"
pubkey "$TMP/cross-ec.pem" > "$TMP/cross-ec.pub"
check "/ccr-new/ec/signs" key_signs_for "$TOK" "$ID" "$TMP/cross-ec.pub"
check "/ccr-new/ec/no-new-label" test "$(label_count "$TOK" 'ca-ec (new)')" -eq 0
check "/ccr-new/ec/says" grep -q 'beside the new key pair' "$TMP/out"
check "/ccr-new/ec/no-secret" no_secret_in "$TMP/out" "$TMP/err"
check "/ccr-new/ec/ca-log" grep -q 'ccr -> ccp accepted' "$TMP/ca.log"

# --- a new RSA key, stored only (no --out)
N=$(count_objects "$TOK")
p11e ccr test --new-key --label ca-rsa --key-type rsa:2048 --subject "/CN=RSA CA/O=Example"
check "/ccr-new/rsa/exit-0" expect_rc 0
check "/ccr-new/rsa/pair-and-cert" test "$(count_objects "$TOK")" -eq $((N + 3))
ID=$(label_id "$TOK" privkey ca-rsa)
check "/ccr-new/rsa/cka-id" test -n "$ID" -a "$(label_id "$TOK" cert ca-rsa)" = "$ID"
"$PKCS11_TOOL" --module "$SOFTHSM2_MODULE" --slot "$(token_slot "$TOK")" --login \
	--pin "$USER_PIN" --read-object --type cert --id "$ID" -o "$TMP/cross-rsa.der" \
	> /dev/null 2>&1
"$OPENSSL_BIN" x509 -inform DER -in "$TMP/cross-rsa.der" -out "$TMP/cross-rsa.pem" 2> /dev/null
check "/ccr-new/rsa/verifies" verified "$TMP/cross-rsa.pem"
check "/ccr-new/rsa/rsa-2048" has_text "$TMP/cross-rsa.pem" 'Public-Key: (2048 bit)'
check "/ccr-new/rsa/ca-true" has_text "$TMP/cross-rsa.pem" 'CA:TRUE'
check "/ccr-new/rsa/key-usage" has_text "$TMP/cross-rsa.pem" 'Certificate Sign, CRL Sign'
check "/ccr-new/rsa/name-constraints" constrained "$TMP/cross-rsa.pem"
check "/ccr-new/rsa/same-key" test "$(token_pub "$ID")" = "$(pubkey "$TMP/cross-rsa.pem")"
check "/ccr-new/rsa/subject" has_text "$TMP/cross-rsa.pem" 'CN = RSA CA'

# --- an existing RSA key (key_id, no certificate), name constraints too
"$PKCS11_TOOL" --module "$SOFTHSM2_MODULE" --slot "$(token_slot "$TOK")" --login \
	--pin "$USER_PIN" --keypairgen --key-type rsa:2048 --id 5a2b --label hsm-rsa \
	> /dev/null 2>&1
N=$(count_objects "$TOK")
p11e ccr test --key-id 5a2b --subject "/CN=HSM RSA CA/O=Example" --out "$TMP/cross-x.pem" --store
check "/ccr-new/existing-rsa/exit-0" expect_rc 0
check "/ccr-new/existing-rsa/verifies" verified "$TMP/cross-x.pem"
check "/ccr-new/existing-rsa/name-constraints" constrained "$TMP/cross-x.pem"
check "/ccr-new/existing-rsa/same-key" test "$(token_pub 5a2b)" = "$(pubkey "$TMP/cross-x.pem")"
check "/ccr-new/existing-rsa/stored" test "$(count_objects "$TOK")" -eq $((N + 1))

# --- refused before the token is touched
N=$(count_objects "$TOK")
p11e ccr test --new-key --label ca-ec --subject "/CN=EC CA/O=Example"
check "/ccr-new/label-taken/exit-2" expect_rc 2
check "/ccr-new/label-taken/says" grep -q "needs a label of its own" "$TMP/err"
check "/ccr-new/label-taken/unchanged" unchanged "$N"
p11e ccr test --new-key --label ca-k --key-id 5a2b
check "/ccr-new/with-key-id/exit-2" expect_rc 2
check "/ccr-new/with-key-id/says" grep -q 'give one of them' "$TMP/err"
sed '/^subject = /d' "$TMP/p11enroll.conf" > "$TMP/nosubj.conf"
"$P11ENROLL" -c "$TMP/nosubj.conf" ccr test --new-key --label ca-s > "$TMP/out" 2> "$TMP/err"
RC=$?
check "/ccr-new/no-subject/exit-2" expect_rc 2
check "/ccr-new/no-subject/says" grep -q 'set subject' "$TMP/err"
p11e ccr test --new-key --label ca-n --name-constraints 'permitted;FTP:x.example'
check "/ccr-new/bad-nc/exit-2" expect_rc 2
check "/ccr-new/bad-nc/says" grep -q 'name type must be DNS, email, URI or IP' "$TMP/err"
p11e ccr test --new-key --label ca-n --name-constraints 'excluded;IP:10.0.0.0'
check "/ccr-new/bad-nc-ip/exit-2" expect_rc 2
check "/ccr-new/bad-nc-ip/says" grep -q 'an address and a mask' "$TMP/err"
check "/ccr-new/refused/unchanged" unchanged "$N"

# --- the token fails: no key pair (keygen), no room for the certificate
WRAP="$top_builddir/tests/p11wrap/p11wrap.so"
write_conf "$TOK" "name_constraints = $NC
module = $WRAP"
P11WRAP_MODULE=$SOFTHSM2_MODULE P11WRAP_FAIL=C_GenerateKeyPair=CKR_DEVICE_MEMORY \
	"$P11ENROLL" -c "$TMP/p11enroll.conf" ccr test --new-key --label ca-f > "$TMP/out" 2> "$TMP/err"
RC=$?
check "/ccr-new/keygen-fails/exit-3" expect_rc 3
check "/ccr-new/keygen-fails/says" grep -q 'generating the new CA key pair on the token failed' \
	"$TMP/err"
check "/ccr-new/keygen-fails/unchanged" unchanged "$N"
P11WRAP_MODULE=$SOFTHSM2_MODULE P11WRAP_FAIL=C_CreateObject=CKR_DEVICE_MEMORY \
	"$P11ENROLL" -c "$TMP/p11enroll.conf" ccr test --new-key --label ca-f --out "$TMP/full.pem" \
	> "$TMP/out" 2> "$TMP/err"
RC=$?
check "/ccr-new/token-full/exit-3" expect_rc 3
check "/ccr-new/token-full/says" grep -q 'storing the cross-certificate on the token failed' \
	"$TMP/err"
check "/ccr-new/token-full/removed" grep -q 'new key pair was removed' "$TMP/err"
check "/ccr-new/token-full/unchanged" unchanged "$N"
write_conf "$TOK" "name_constraints = $NC"

# --- a run killed before it was done left "LABEL (new)": recovered first
"$PKCS11_TOOL" --module "$SOFTHSM2_MODULE" --slot "$(token_slot "$TOK")" --login \
	--pin "$USER_PIN" --keypairgen --key-type EC:prime256v1 --id 7e7e --label 'ca-k (new)' \
	> /dev/null 2>&1
N=$(count_objects "$TOK")
p11e ccr test --new-key --label ca-k
check "/ccr-new/leftover/exit-0" expect_rc 0
check "/ccr-new/leftover/deleted" grep -q 'recovery: deleted the key pair with id 7e7e' "$TMP/err"
check "/ccr-new/leftover/counts" test "$(count_objects "$TOK")" -eq $((N - 2 + 3))
check "/ccr-new/leftover/no-new-label" test "$(label_count "$TOK" 'ca-k (new)')" -eq 0

# --- the CA's answer is refused: wrong key, rejection, untrusted, PBM
for f in wrong-key:8:'another public key' reject=badCertTemplate:6:'did not issue' \
	untrusted:8:'does not verify against'; do
	fault=${f%%:*}
	rest=${f#*:}
	want=${rest%%:*}
	why=${rest#*:}
	start_ca --fault "$fault" || exit 1
	write_conf "$TOK" "name_constraints = $NC"
	N=$(count_objects "$TOK")
	p11e ccr test --new-key --label ca-f --out "$TMP/f.pem"
	n=${fault%%=*}
	check "/ccr-new/$n/exit-$want" expect_rc "$want"
	check "/ccr-new/$n/says" grep -q "$why" "$TMP/err"
	check "/ccr-new/$n/unchanged" unchanged "$N"
	check "/ccr-new/$n/no-file" test ! -e "$TMP/f.pem"
done
start_ca || exit 1
printf '%s\n' 'not-the-secret-value' > "$TMP/wrong-secret"
write_conf "$TOK" "name_constraints = $NC
secret_source = file:$TMP/wrong-secret"
N=$(count_objects "$TOK")
p11e ccr test --new-key --label ca-f
check "/ccr-new/pbm-wrong-secret/refused" test "$RC" -ne 0
check "/ccr-new/pbm-wrong-secret/says" grep -q 'cross-certification failed' "$TMP/err"
check "/ccr-new/pbm-wrong-secret/unchanged" unchanged "$N"
check "/ccr-new/pbm-wrong-secret/no-secret" no_secret_in "$TMP/out" "$TMP/err"

# --- a CA that answers 'waiting': polled until the ccp comes
start_ca --poll 1 || exit 1
write_conf "$TOK" "name_constraints = $NC"
N=$(count_objects "$TOK")
p11e ccr test --new-key --label ca-p --out "$TMP/cross-p.pem"
check "/ccr-new/poll/exit-0" expect_rc 0
check "/ccr-new/poll/polled" grep -q 'pollReq: delivering' "$TMP/ca.log"
check "/ccr-new/poll/verifies" verified "$TMP/cross-p.pem"
check "/ccr-new/poll/stored" test "$(count_objects "$TOK")" -eq $((N + 3))
# ... and one that asks to come back after the total timeout: no resume
start_ca --poll 3600 || exit 1
write_conf "$TOK" "name_constraints = $NC"
N=$(count_objects "$TOK")
p11e ccr test --new-key --label ca-w --out "$TMP/cross-w.pem"
check "/ccr-new/poll-timeout/exit-9" expect_rc 9
check "/ccr-new/poll-timeout/says" grep -q 'is not resumed' "$TMP/err"
check "/ccr-new/poll-timeout/unchanged" unchanged "$N"
# ... and a store-and-forward transport: refused, the token as it was
mkdir -p "$TMP/spool"
write_conf "$TOK" "server = file://$TMP/spool"
p11e ccr test --new-key --label ca-w --out "$TMP/cross-w.pem"
check "/ccr-new/spool/exit-2" expect_rc 2
check "/ccr-new/spool/says" grep -q 'store-and-forward transport is not supported' "$TMP/err"
check "/ccr-new/spool/unchanged" unchanged "$N"
write_conf "$TOK" "name_constraints = $NC"
p11e ccr test --new-key --label ca-w --request-out "$TMP/ccr.der"
check "/ccr-new/offline/exit-2" expect_rc 2
check "/ccr-new/offline/no-file" test ! -e "$TMP/ccr.der"
check "/ccr-new/offline/unchanged" unchanged "$N"

# --- CA X of a foreign PKI: its own root, its key on the token, asks for
# a cross-certificate with a ccr signed by that key and certificate.
"$OPENSSL_BIN" req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$TMP/cax.key" -out "$TMP/cax.pem" -days 30 -subj "/CN=CA X Root/O=Foreign" \
	-addext 'basicConstraints=critical,CA:TRUE' \
	-addext 'keyUsage=critical,digitalSignature,keyCertSign,cRLSign' 2> /dev/null
"$OPENSSL_BIN" pkcs8 -topk8 -nocrypt -in "$TMP/cax.key" -out "$TMP/cax.p8" 2> /dev/null
"$SOFTHSM2_UTIL" --import "$TMP/cax.p8" --token "$TOK" --label cax --id 0c0c --pin "$USER_PIN" \
	> /dev/null 2>&1
rm -f "$TMP/cax.key" "$TMP/cax.p8"
"$OPENSSL_BIN" x509 -in "$TMP/cax.pem" -outform DER -out "$TMP/cax.der"
"$PKCS11_TOOL" --module "$SOFTHSM2_MODULE" --slot "$(token_slot "$TOK")" --login \
	--pin "$USER_PIN" --write-object "$TMP/cax.der" --type cert --id 0c0c --label cax \
	> /dev/null 2>&1
check "/ccr-new/foreign/setup" test "$(label_id "$TOK" privkey cax)" = 0c0c
start_ca || exit 1
write_conf "$TOK" "label = cax
signer = cax
name_constraints = $NC"
sed -i '/^subject = /d' "$TMP/p11enroll.conf"
N=$(count_objects "$TOK")
p11e ccr test --out "$TMP/cross-x1.pem" --store
check "/ccr-new/foreign-untrusted/exit-6" expect_rc 6
check "/ccr-new/foreign-untrusted/ca-refused" grep -q 'ccr: protection does not verify' \
	"$TMP/ca.log"
check "/ccr-new/foreign-untrusted/unchanged" unchanged "$N"
start_ca --ccr-trusted "$TMP/cax.pem" || exit 1
write_conf "$TOK" "label = cax
signer = cax
name_constraints = $NC"
sed -i '/^subject = /d' "$TMP/p11enroll.conf"
p11e ccr test --out "$TMP/cross-x.pem" --store
check "/ccr-new/foreign/exit-0" expect_rc 0
# signed by CA X (its name as the sender, no PBM)
check "/ccr-new/foreign/signed" grep -q 'ccr header: sender /CN=CA X Root/O=Foreign,.* pbm -$' \
	"$TMP/ca.log"
check "/ccr-new/foreign/ca-verified" grep -q 'ccr: protection verified' "$TMP/ca.log"
check "/ccr-new/foreign/verifies" verified "$TMP/cross-x.pem"
check "/ccr-new/foreign/same-key" test "$(pubkey "$TMP/cax.pem")" = "$(pubkey "$TMP/cross-x.pem")"
check "/ccr-new/foreign/subject" has_text "$TMP/cross-x.pem" 'Subject: CN = CA X Root, O = Foreign'
check "/ccr-new/foreign/name-constraints" constrained "$TMP/cross-x.pem"
check "/ccr-new/foreign/stored" test "$(count_objects "$TOK")" -eq $((N + 1))
check "/ccr-new/foreign/own-root-stays" test "$(kind cax Certificate)" -eq 1
finish
