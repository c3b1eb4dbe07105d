#!/bin/sh
# /testca: the test CA against `openssl cmp`, an independent CMP client:
# ir, cr, p10cr, kur, rr, genm caCerts, polling, implicit confirmation,
# PBM and signature protection, the HTTP front end, every fault switch
# making the client fail, and --hang-on (a request processed, never answered).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"
[ -n "${OPENSSL_BIN:-}" ] && [ -x "$OPENSSL_BIN" ] || bail_out "openssl not found (OPENSSL_BIN)"
[ -x "$TESTCA" ] || bail_out "test CA not built"
setup
plan 292
O=$OPENSSL_BIN

# cmp ARGS...: openssl cmp against the running CA; RC, $TMP/out hold the outcome.
cmp_run() {
	"$O" cmp -config "${CMP_CONFIG:-}" -server "127.0.0.1:$CA_PORT/pkix/" -trusted "$TMP/ca/root.pem" \
		-out_trusted "$TMP/ca/root.pem" -msg_timeout 10 -total_timeout 30 "$@" \
		> "$TMP/out" 2>&1
	RC=$?
	return 0
}

# PBM-protected, as p11enroll does it
cmp_pbm() {
	cmp_run -ref "$CMP_REF" -secret "file:$TMP/secret" "$@"
}

newkey() {
	"$O" genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$TMP/$1" 2> /dev/null
}

pub_of_key() {
	"$O" pkey -in "$1" -pubout -outform DER 2> /dev/null | od -An -tx1 | tr -d ' \n'
}

pub_of_cert() {
	"$O" x509 -in "$1" -noout -pubkey | "$O" pkey -pubin -outform DER 2> /dev/null |
		od -An -tx1 | tr -d ' \n'
}

subject_of() {
	"$O" x509 -in "$1" -noout -subject -nameopt compat
}

serial_of() {
	"$O" x509 -in "$1" -noout -serial | sed 's/^serial=//'
}

rc_is() {
	[ "$RC" = "$1" ] || { echo "# exit code $RC, expected $1:"; sed 's/^/#   /' "$TMP/out"; return 1; }
}

rc_not_0() {
	[ "$RC" != 0 ] || { echo "# openssl cmp succeeded, expected a failure:"; sed 's/^/#   /' "$TMP/out"; return 1; }
}

ca_saw() {
	grep -q -E "$1" "$TMP/ca.log" || { echo "# CA log lacks /$1/:"; sed 's/^/#   /' "$TMP/ca.log"; return 1; }
}

out_has() {
	grep -q -E "$1" "$TMP/out" || { echo "# client output lacks /$1/:"; sed 's/^/#   /' "$TMP/out"; return 1; }
}

# sanitizer_clean: the last CA run left no sanitizer report (ASan builds).
sanitizer_clean() {
	stop_ca
	! grep -q -E 'Sanitizer|runtime error' "$TMP/ca.err" ||
		{ sed 's/^/#   /' "$TMP/ca.err" | head -40; return 1; }
}

verifies() {
	"$O" verify -CAfile "$TMP/ca/root.pem" -untrusted "$TMP/ca/ca.pem" "$1" > /dev/null 2>&1
}

# --- command line ---------------------------------------------------------
"$TESTCA" --help > "$TMP/help" 2>&1
check "/testca/cli/help-exit-0" test $? -eq 0
check "/testca/cli/help-lists-faults" grep -q 'wrong-nonce' "$TMP/help"
"$TESTCA" --no-such-option > /dev/null 2>&1
check "/testca/cli/bad-option-exit-2" test $? -eq 2
"$TESTCA" --port 0 > /dev/null 2>&1
check "/testca/cli/no-dir-exit-2" test $? -eq 2
"$TESTCA" --dir "$TMP/x" --fault no-such-fault > /dev/null 2>&1
check "/testca/cli/bad-fault-exit-2" test $? -eq 2
"$TESTCA" --dir "$TMP/x" --fault reject=notAFailInfo > /dev/null 2>&1
check "/testca/cli/bad-failinfo-exit-2" test $? -eq 2
"$TESTCA" --dir "$TMP/x" --secret-file "$TMP/missing" > /dev/null 2>&1
check "/testca/cli/missing-secret-file-exit-1" test $? -eq 1

# --- CA files ---------------------------------------------------------------
start_ca || exit 1
check "/testca/files/one-port-line" test "$(grep -c '' "$TMP/ca.out")" -eq 1
check "/testca/files/port-file" test "$(cat "$TMP/ca/port")" = "$CA_PORT"
for f in root.pem root.key ca.pem ca.key chain.pem srv.pem srv.key; do
	check "/testca/files/$f" test -s "$TMP/ca/$f"
done
check "/testca/files/keys-0600" test -z "$(find "$TMP/ca" -name '*.key' ! -perm 0600)"
check "/testca/files/sub-ca-verifies" verifies "$TMP/ca/ca.pem"
check "/testca/files/srv-verifies" verifies "$TMP/ca/srv.pem"
check "/testca/files/root-is-ca" sh -c "'$O' x509 -in '$TMP/ca/root.pem' -noout -ext basicConstraints | grep -q 'CA:TRUE'"
check "/testca/files/root-ec-p256" sh -c "'$O' x509 -in '$TMP/ca/root.pem' -noout -text | grep -q 'prime256v1'"
if [ -r /proc/net/tcp ]; then
	# the listening socket (state 0A) is bound to 127.0.0.1 (0100007F), nothing else
	listen=$(awk -v p=":$(printf %04X "$CA_PORT")" '$4 == "0A" && $2 ~ p "$" { print $2 }' /proc/net/tcp)
	check "/testca/files/loopback-only" test "$listen" = "0100007F:$(printf %04X "$CA_PORT")"
fi
ROOT_FP=$("$O" x509 -in "$TMP/ca/root.pem" -noout -fingerprint -sha256)

# --- ir with PBM ------------------------------------------------------------
newkey k1.pem
cmp_pbm -cmd ir -newkey "$TMP/k1.pem" -subject "/CN=ir test/O=Example" -sans "ir.example" \
	-certout "$TMP/c1.pem" -chainout "$TMP/c1-chain.pem" -cacertsout "$TMP/c1-capubs.pem" \
	-extracertsout "$TMP/c1-extra.pem"
check "/testca/ir/exit-0" rc_is 0
check "/testca/ir/key" test "$(pub_of_cert "$TMP/c1.pem")" = "$(pub_of_key "$TMP/k1.pem")"
check "/testca/ir/subject" sh -c "'$O' x509 -in '$TMP/c1.pem' -noout -subject -nameopt compat | grep -q 'CN=ir test/O=Example'"
check "/testca/ir/san" sh -c "'$O' x509 -in '$TMP/c1.pem' -noout -ext subjectAltName | grep -q 'DNS:ir.example'"
check "/testca/ir/key-usage" sh -c "'$O' x509 -in '$TMP/c1.pem' -noout -ext keyUsage | grep -q 'Digital Signature'"
check "/testca/ir/not-ca" sh -c "'$O' x509 -in '$TMP/c1.pem' -noout -ext basicConstraints | grep -q 'CA:FALSE'"
check "/testca/ir/ski-aki" sh -c "'$O' x509 -in '$TMP/c1.pem' -noout -ext subjectKeyIdentifier,authorityKeyIdentifier | grep -c ':' | grep -q -v '^0$'"
check "/testca/ir/serial-16-bytes" test "$(serial_of "$TMP/c1.pem" | tr -d '\n' | wc -c)" -eq 32
check "/testca/ir/verifies-with-chain" sh -c "'$O' verify -CAfile '$TMP/ca/root.pem' \
	-untrusted '$TMP/c1-extra.pem' '$TMP/c1.pem' > /dev/null"
check "/testca/ir/capubs-is-root" cmp -s "$TMP/c1-capubs.pem" "$TMP/ca/root.pem"
check "/testca/ir/validity-365-days" sh -c "'$O' x509 -in '$TMP/c1.pem' -noout -checkend $((364 * 86400)) > /dev/null && ! '$O' x509 -in '$TMP/c1.pem' -noout -checkend $((366 * 86400)) > /dev/null"
check "/testca/ir/recorded" test -s "$TMP/ca/issued/$(serial_of "$TMP/c1.pem").pem"
check "/testca/ir/ca-verified-pop" ca_saw 'ir: POP verified'
check "/testca/ir/certconf" ca_saw 'certConf accepted'

# --- implicit confirmation --------------------------------------------------
newkey k2.pem
: > "$TMP/ca.log"
cmp_pbm -cmd ir -newkey "$TMP/k2.pem" -subject "/CN=implicit" -implicit_confirm -certout "$TMP/c2.pem"
check "/testca/implicit-confirm/exit-0" rc_is 0
check "/testca/implicit-confirm/granted" ca_saw 'implicitConfirm granted'
check "/testca/implicit-confirm/no-certconf" sh -c "! grep -q certConf '$TMP/ca.log'"

# --- cr signed with the issued certificate ----------------------------------
newkey k3.pem
: > "$TMP/ca.log"
cmp_run -cmd cr -cert "$TMP/c1.pem" -key "$TMP/k1.pem" -extracerts "$TMP/ca/ca.pem" \
	-newkey "$TMP/k3.pem" -subject "/CN=cr test" -certout "$TMP/c3.pem" -rspout "$TMP/cp.der"
check "/testca/cr/exit-0" rc_is 0
check "/testca/cr/key" test "$(pub_of_cert "$TMP/c3.pem")" = "$(pub_of_key "$TMP/k3.pem")"
check "/testca/cr/subject" sh -c "'$O' x509 -in '$TMP/c3.pem' -noout -subject | grep -q 'cr test'"
check "/testca/cr/verifies" verifies "$TMP/c3.pem"
check "/testca/cr/response-signed" sh -c "'$O' asn1parse -inform DER -in '$TMP/cp.der' | grep -q 'ecdsa-with-SHA256' && ! '$O' asn1parse -inform DER -in '$TMP/cp.der' | grep -q 'password based MAC'"
check "/testca/cr/ca-log" ca_saw 'POST /pkix/ cr -> cp accepted'

# --- p10cr ------------------------------------------------------------------
newkey k4.pem
"$O" req -new -key "$TMP/k4.pem" -subj "/CN=p10cr test" -addext "subjectAltName=DNS:p10.example" \
	-out "$TMP/csr.pem" 2> /dev/null
cmp_pbm -cmd p10cr -csr "$TMP/csr.pem" -certout "$TMP/c4.pem"
check "/testca/p10cr/exit-0" rc_is 0
check "/testca/p10cr/key" test "$(pub_of_cert "$TMP/c4.pem")" = "$(pub_of_key "$TMP/k4.pem")"
check "/testca/p10cr/subject" sh -c "'$O' x509 -in '$TMP/c4.pem' -noout -subject | grep -q 'p10cr test'"
check "/testca/p10cr/san" sh -c "'$O' x509 -in '$TMP/c4.pem' -noout -ext subjectAltName | grep -q 'DNS:p10.example'"
check "/testca/p10cr/verifies" verifies "$TMP/c4.pem"
check "/testca/p10cr/ca-verified-pop" ca_saw 'p10cr: POP verified'

# --- kur --------------------------------------------------------------------
newkey k5.pem
: > "$TMP/ca.log"
cmp_run -cmd kur -cert "$TMP/c3.pem" -key "$TMP/k3.pem" -extracerts "$TMP/ca/ca.pem" \
	-newkey "$TMP/k5.pem" -certout "$TMP/c5.pem"
check "/testca/kur/exit-0" rc_is 0
check "/testca/kur/new-key" test "$(pub_of_cert "$TMP/c5.pem")" = "$(pub_of_key "$TMP/k5.pem")"
check "/testca/kur/same-subject" test "$(subject_of "$TMP/c5.pem")" = "$(subject_of "$TMP/c3.pem")"
check "/testca/kur/verifies" verifies "$TMP/c5.pem"
check "/testca/kur/old-cert-checked" ca_saw 'kur: oldCertID matches'

# --- rr ---------------------------------------------------------------------
: > "$TMP/ca.log"
cmp_pbm -cmd rr -oldcert "$TMP/c4.pem" -revreason 1
check "/testca/rr/exit-0" rc_is 0
check "/testca/rr/recorded-with-reason" grep -q "^$(serial_of "$TMP/c4.pem") 1 " "$TMP/ca/revoked"
check "/testca/rr/ca-log" ca_saw 'rr: revoked serial .* reason 1'
cmp_pbm -cmd rr -oldcert "$TMP/c4.pem" -revreason 1
check "/testca/rr/again-rejected" rc_not_0
check "/testca/rr/again-certRevoked" out_has 'certRevoked'
# a certificate signed by a revoked one cannot be used for cr
"$O" genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$TMP/k6.pem" 2> /dev/null
cmp_run -cmd rr -cert "$TMP/c3.pem" -key "$TMP/k3.pem" -extracerts "$TMP/ca/ca.pem" -oldcert "$TMP/c3.pem"
check "/testca/rr/signed-exit-0" rc_is 0
cmp_run -cmd cr -cert "$TMP/c3.pem" -key "$TMP/k3.pem" -extracerts "$TMP/ca/ca.pem" \
	-newkey "$TMP/k6.pem" -subject "/CN=revoked signer" -certout "$TMP/c6.pem"
check "/testca/rr/revoked-signer-refused" rc_not_0

# --- genm caCerts (3.0 knows no name for the OID: register it via config) ----
printf 'openssl_conf = init\n[init]\noid_section = oids\n[oids]\nid-it-caCerts = 1.3.6.1.5.5.7.4.17\n' \
	> "$TMP/oid.cnf"
CMP_CONFIG="$TMP/oid.cnf"
cmp_pbm -cmd genm -infotype caCerts -rspout "$TMP/genp.der"
CMP_CONFIG=
check "/testca/genm/exit-0" rc_is 0
"$O" asn1parse -inform DER -in "$TMP/genp.der" > "$TMP/genp.txt" 2>&1
check "/testca/genm/caCerts-itav" grep -q ':id-it-caCerts' "$TMP/genp.txt"
check "/testca/genm/has-root" grep -q ':p11enroll Test Root CA' "$TMP/genp.txt"
check "/testca/genm/has-sub-ca" grep -q ':p11enroll Test Issuing CA' "$TMP/genp.txt"

# --- genm of RFC 9480: rootCaCert, certReqTemplate, crlStatusList ------------------
# 3.0 knows id-it-rootCaKeyUpdate and id-it-certReqTemplate; the others by config.
printf 'openssl_conf = init\n[init]\noid_section = oids\n[oids]\n%s\n%s\n%s\n' \
	'id-it-rootCaCert = 1.3.6.1.5.5.7.4.20' 'id-it-crlStatusList = 1.3.6.1.5.5.7.4.22' \
	'id-it-crls = 1.3.6.1.5.5.7.4.23' > "$TMP/oid9480.cnf"

# genm_ask INFOTYPE: a genm with that ITAV (no value); the genp in $TMP/genp.der.
genm_ask() {
	rm -f "$TMP/genp.der"
	CMP_CONFIG="$TMP/oid9480.cnf"
	OPENSSL_CONF="$TMP/oid9480.cnf" cmp_pbm -cmd genm -infotype "$1" -rspout "$TMP/genp.der"
	CMP_CONFIG=
	OPENSSL_CONF="$TMP/oid9480.cnf" "$O" asn1parse -inform DER -in "$TMP/genp.der" -i \
		> "$TMP/genp.txt" 2>&1
}

# itav_parts OIDNAME: from $TMP/genp.der, the ITAV's value as $TMP/value.der
# and, for rootCaKeyUpdate, its three certificates as $TMP/newWithNew.der,
# $TMP/newWithOld.der and $TMP/oldWithNew.der; nothing when the value is absent.
itav_parts() {
	rm -f "$TMP/value.der" "$TMP/newWithNew.der" "$TMP/newWithOld.der" "$TMP/oldWithNew.der"
	awk -v oid=":$1" '
	{
		off = $0; sub(/:.*/, "", off); off += 0
		d = $0; sub(/^[^:]*:d= */, "", d); d += 0
		hl = $0; sub(/.*hl= */, "", hl); hl += 0
		l = $0; sub(/.* l= */, "", l); l += 0
	}
	state == 0 && index($0, oid) { D = d; state = 1; next }
	state == 1 { if (d != D) exit; print "value", off, hl + l; state = 2; next }
	state == 2 {
		if (d <= D) exit
		if (d == D + 1 && /SEQUENCE/ && !n) { print "newWithNew", off, hl + l; n = 1; next }
		if (d == D + 1 && /cont \[ 0 \]/) { want = "newWithOld"; next }
		if (d == D + 1 && /cont \[ 1 \]/) { want = "oldWithNew"; next }
		if (want != "" && d == D + 2) { print want, off, hl + l; want = "" }
	}' "$TMP/genp.txt" > "$TMP/parts"
	while read -r part off len; do
		dd if="$TMP/genp.der" of="$TMP/$part.der" bs=1 skip="$off" count="$len" 2> /dev/null
	done < "$TMP/parts"
}

fp_der() {
	"$O" x509 -inform DER -in "$1" -noout -fingerprint -sha256 2> /dev/null
}

fp_pem() {
	"$O" x509 -in "$1" -noout -fingerprint -sha256 2> /dev/null
}

# verifies_der CERT.der ANCHOR.pem
verifies_der() {
	"$O" x509 -inform DER -in "$1" -out "$1.pem" 2> /dev/null &&
		"$O" verify -CAfile "$2" "$1.pem" > /dev/null 2>&1
}

# rootCaCert without --new-root: rootCaKeyUpdate without a value
genm_ask rootCaCert
check "/testca/genm/rootCaCert/exit-0" rc_is 0
check "/testca/genm/rootCaCert/no-update-itav" grep -q ':id-it-rootCaKeyUpdate' "$TMP/genp.txt"
itav_parts id-it-rootCaKeyUpdate
check "/testca/genm/rootCaCert/no-update-value-absent" test ! -e "$TMP/value.der"
check "/testca/genm/rootCaCert/no-new-root-file" test ! -e "$TMP/ca/newroot.pem"

start_ca --new-root || exit 1
for f in newroot.pem newroot.key newwithold.pem oldwithnew.pem; do
	check "/testca/new-root/files/$f" test -s "$TMP/ca/$f"
done
check "/testca/new-root/key-0600" test -z "$(find "$TMP/ca" -name 'newroot.key' ! -perm 0600)"
check "/testca/new-root/old-root-kept" test "$(fp_pem "$TMP/ca/root.pem")" = "$ROOT_FP"
check "/testca/new-root/newwithold-verifies-with-old" sh -c "'$O' verify -CAfile '$TMP/ca/root.pem' '$TMP/ca/newwithold.pem' > /dev/null"
check "/testca/new-root/oldwithnew-verifies-with-new" sh -c "'$O' verify -CAfile '$TMP/ca/newroot.pem' '$TMP/ca/oldwithnew.pem' > /dev/null"
genm_ask rootCaCert
check "/testca/genm/rootCaKeyUpdate/exit-0" rc_is 0
itav_parts id-it-rootCaKeyUpdate
check "/testca/genm/rootCaKeyUpdate/value" test -s "$TMP/value.der"
check "/testca/genm/rootCaKeyUpdate/newWithNew-is-new-root" \
	test "$(fp_der "$TMP/newWithNew.der")" = "$(fp_pem "$TMP/ca/newroot.pem")"
check "/testca/genm/rootCaKeyUpdate/newWithOld-verifies-with-old-root" \
	verifies_der "$TMP/newWithOld.der" "$TMP/ca/root.pem"
"$O" x509 -in "$TMP/ca/newroot.pem" -noout -pubkey > "$TMP/newroot.pub"
check "/testca/genm/rootCaKeyUpdate/newWithOld-new-key" sh -c "'$O' x509 -inform DER -in '$TMP/newWithOld.der' -noout -pubkey | cmp -s - '$TMP/newroot.pub'"
check "/testca/genm/rootCaKeyUpdate/oldWithNew-verifies-with-new-root" \
	verifies_der "$TMP/oldWithNew.der" "$TMP/ca/newroot.pem"
check "/testca/genm/rootCaKeyUpdate/ca-log" ca_saw 'genm rootCaCert: sent newWithNew'
check "/testca/genm/rootCaKeyUpdate/sanitizer-clean" sanitizer_clean

start_ca --new-root --fault forged-root-update || exit 1
genm_ask rootCaCert
check "/testca/fault/forged-root-update/exit-0" rc_is 0
itav_parts id-it-rootCaKeyUpdate
check "/testca/fault/forged-root-update/newWithNew-is-new-root" \
	test "$(fp_der "$TMP/newWithNew.der")" = "$(fp_pem "$TMP/ca/newroot.pem")"
check "/testca/fault/forged-root-update/newWithOld-does-not-verify" \
	sh -c "! '$O' x509 -inform DER -in '$TMP/newWithOld.der' -out '$TMP/forged.pem' 2> /dev/null || ! '$O' verify -CAfile '$TMP/ca/root.pem' '$TMP/forged.pem' > /dev/null 2>&1"
check "/testca/fault/forged-root-update/newWithOld-present" test -s "$TMP/newWithOld.der"
check "/testca/fault/forged-root-update/sanitizer-clean" sanitizer_clean

# certReqTemplate
start_ca || exit 1
genm_ask certReqTemplate
check "/testca/genm/certReqTemplate/none-exit-0" rc_is 0
check "/testca/genm/certReqTemplate/none-itav" grep -q ':id-it-certReqTemplate' "$TMP/genp.txt"
itav_parts id-it-certReqTemplate
check "/testca/genm/certReqTemplate/none-value-absent" test ! -e "$TMP/value.der"
start_ca --template "subject=/CN=templated/O=Example;key=ec:P-384" || exit 1
genm_ask certReqTemplate
check "/testca/genm/certReqTemplate/ec-exit-0" rc_is 0
itav_parts id-it-certReqTemplate
"$O" asn1parse -inform DER -in "$TMP/value.der" -i > "$TMP/tmpl.txt" 2>&1
check "/testca/genm/certReqTemplate/ec-subject" sh -c "grep -q 'cont \[ 5 \]' '$TMP/tmpl.txt' && grep -q ':templated' '$TMP/tmpl.txt' && grep -q ':Example' '$TMP/tmpl.txt'"
check "/testca/genm/certReqTemplate/ec-algId-control" grep -q ':1.3.6.1.5.5.7.5.1.11' "$TMP/tmpl.txt"
check "/testca/genm/certReqTemplate/ec-curve" sh -c "grep -q ':id-ecPublicKey' '$TMP/tmpl.txt' && grep -q ':secp384r1' '$TMP/tmpl.txt'"
start_ca --template "subject=/CN=rsa templated;key=rsa:3072" || exit 1
genm_ask certReqTemplate
itav_parts id-it-certReqTemplate
"$O" asn1parse -inform DER -in "$TMP/value.der" -i > "$TMP/tmpl.txt" 2>&1
check "/testca/genm/certReqTemplate/rsa-exit-0" rc_is 0
check "/testca/genm/certReqTemplate/rsaKeyLen-control" grep -q ':1.3.6.1.5.5.7.5.1.12' "$TMP/tmpl.txt"
check "/testca/genm/certReqTemplate/rsaKeyLen-3072" grep -q 'INTEGER *:0C00' "$TMP/tmpl.txt"
check "/testca/genm/certReqTemplate/sanitizer-clean" sanitizer_clean
start_ca || exit 1
"$TESTCA" --dir "$TMP/ca" --template "key=dsa:1024" > /dev/null 2>&1
check "/testca/cli/bad-template-exit-2" test $? -eq 2
"$TESTCA" --dir "$TMP/ca" --template "subject=CN=no-slash" > /dev/null 2>&1
check "/testca/cli/bad-template-subject-exit-2" test $? -eq 2

# crlStatusList: the CRL of the issuing CA, with the two revocations above
check "/testca/crl/file" test -s "$TMP/ca/crl.pem"
check "/testca/crl/verifies" sh -c "'$O' crl -in '$TMP/ca/crl.pem' -CAfile '$TMP/ca/chain.pem' -noout 2>&1 | grep -q 'verify OK'"
check "/testca/crl/issuer-is-issuing-ca" sh -c "'$O' crl -in '$TMP/ca/crl.pem' -noout -issuer | grep -q 'p11enroll Test Issuing CA'"
"$O" crl -in "$TMP/ca/crl.pem" -noout -text > "$TMP/crl.txt"
check "/testca/crl/lists-revoked" grep -q "$(serial_of "$TMP/c4.pem")" "$TMP/crl.txt"
check "/testca/crl/lists-revoked-signer" grep -q "$(serial_of "$TMP/c3.pem")" "$TMP/crl.txt"
check "/testca/crl/reason" grep -q 'Key Compromise' "$TMP/crl.txt"
check "/testca/crl/not-the-valid-one" sh -c "! grep -q '$(serial_of "$TMP/c5.pem")' '$TMP/crl.txt'"
genm_ask crlStatusList
check "/testca/genm/crls/exit-0" rc_is 0
check "/testca/genm/crls/itav" grep -q ':id-it-crls' "$TMP/genp.txt"
itav_parts id-it-crls
# the value is SEQUENCE OF CertificateList: drop the outer header
hl=$("$O" asn1parse -inform DER -in "$TMP/value.der" | sed -n '1s/.*hl= *\([0-9]*\).*/\1/p')
dd if="$TMP/value.der" of="$TMP/crl.der" bs=1 skip="$hl" 2> /dev/null
check "/testca/genm/crls/is-crl-pem" sh -c "'$O' crl -inform DER -in '$TMP/crl.der' -outform PEM | cmp -s - '$TMP/ca/crl.pem'"
# an rr regenerates the CRL
newkey k20.pem
cmp_pbm -cmd ir -newkey "$TMP/k20.pem" -subject "/CN=to revoke" -certout "$TMP/c20.pem"
cmp_pbm -cmd rr -oldcert "$TMP/c20.pem" -revreason 4
check "/testca/crl/rr-exit-0" rc_is 0
check "/testca/crl/regenerated-on-rr" sh -c "'$O' crl -in '$TMP/ca/crl.pem' -noout -text | grep -q '$(serial_of "$TMP/c20.pem")'"
check "/testca/crl/regenerated-reason" sh -c "'$O' crl -in '$TMP/ca/crl.pem' -noout -text | grep -q 'Superseded'"
genm_ask crlStatusList
itav_parts id-it-crls
hl=$("$O" asn1parse -inform DER -in "$TMP/value.der" | sed -n '1s/.*hl= *\([0-9]*\).*/\1/p')
dd if="$TMP/value.der" of="$TMP/crl.der" bs=1 skip="$hl" 2> /dev/null
check "/testca/genm/crls/after-rr" sh -c "'$O' crl -inform DER -in '$TMP/crl.der' -noout -text | grep -q '$(serial_of "$TMP/c20.pem")'"
check "/testca/genm/crls/sanitizer-clean" sanitizer_clean
start_ca || exit 1

# --- protection ---------------------------------------------------------------
newkey k7.pem
cmp_run -cmd ir -ref "$CMP_REF" -secret pass:not-the-secret -newkey "$TMP/k7.pem" -subject /CN=x \
	-certout "$TMP/c7.pem"
check "/testca/protection/wrong-secret-refused" rc_not_0
cmp_run -cmd ir -unprotected_requests -newkey "$TMP/k7.pem" -subject /CN=x -certout "$TMP/c7.pem"
check "/testca/protection/unprotected-refused" rc_not_0
check "/testca/protection/no-secret-in-logs" sh -c "! grep -q -F '$CMP_SECRET' '$TMP/ca.log' '$TMP/ca.err' '$TMP/ca.out'"

# --- HTTP -------------------------------------------------------------------
if command -v curl > /dev/null 2>&1; then
	U="http://127.0.0.1:$CA_PORT/x"
	check "/testca/http/get-405" test "$(curl -s -o /dev/null -w '%{http_code}' "$U")" = 405
	check "/testca/http/chunked-411" test "$(printf 'abc' | curl -s -o /dev/null -w '%{http_code}' \
		-H 'Transfer-Encoding: chunked' --data-binary @- "$U")" = 411
	head -c 1100000 /dev/zero > "$TMP/big"
	check "/testca/http/too-large-413" test "$(curl -s -o /dev/null -w '%{http_code}' \
		-H 'Expect:' --data-binary @"$TMP/big" "$U")" = 413
	check "/testca/http/not-cmp-400" test "$(curl -s -o /dev/null -w '%{http_code}' \
		--data-binary 'hello' "$U")" = 400
	check "/testca/http/ca-alive" kill -0 "$CA_PID"
else
	for t in get-405 chunked-411 too-large-413 not-cmp-400 ca-alive; do
		ok "/testca/http/$t # SKIP curl not found"
	done
fi
# An idle keep-alive connection (one request answered, then silence) does
# not block the next client: the CA gives it up as soon as another waits.
# (A connection that never sent a request is not one: the CA waits for its
# request as for any slow client's.)
if command -v bash > /dev/null 2>&1; then
	: > "$TMP/idle.hdr"
	bash -c "exec 3<>/dev/tcp/127.0.0.1/$CA_PORT
		printf 'POST /pkix/ HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 5\\r\\n\\r\\nhello' >&3
		while IFS= read -r l <&3; do
			printf '%s\\n' \"\$l\" >> '$TMP/idle.hdr'
			[ \"\$l\" = \$'\\r' ] && break
		done
		exec sleep 60" &
	IDLE=$!
	check "/testca/http/idle-is-keep-alive" wait_for 10 grep -q -i '^connection: keep-alive' "$TMP/idle.hdr"
	newkey k8.pem
	cmp_pbm -cmd ir -newkey "$TMP/k8.pem" -subject /CN=after-idle -certout "$TMP/c8.pem"
	check "/testca/http/idle-connection-no-block" rc_is 0
	kill "$IDLE" 2> /dev/null
	wait "$IDLE" 2> /dev/null
fi

# --- POP ----------------------------------------------------------------------
newkey k9.pem
: > "$TMP/ca.log"
cmp_pbm -cmd ir -popo 0 -newkey "$TMP/k9.pem" -subject /CN=raverified -certout "$TMP/rav.pem"
check "/testca/pop/raverified-rejected" rc_not_0
check "/testca/pop/raverified-badPOP" out_has 'badPOP'
check "/testca/pop/raverified-logged" ca_saw 'rejected badPOP'
# A POP signature with one bit flipped, sent as is (the message protection
# is broken too, so the CA must accept that to reach the POP check).
if command -v curl > /dev/null 2>&1; then
	start_ca --accept-unprotected || exit 1
	cmp_pbm -cmd ir -newkey "$TMP/k9.pem" -subject /CN=pop -certout "$TMP/pop.pem" -reqout "$TMP/ir.der"
	# the second BIT STRING is the POP signature (the first is the public key)
	line=$("$O" asn1parse -inform DER -in "$TMP/ir.der" | grep 'BIT STRING' | sed -n 2p)
	off=$(echo "$line" | sed 's/^ *\([0-9]*\):.*hl= *\([0-9]*\).*/\1 \2/')
	pos=$(( ${off% *} + ${off#* } + 10 ))
	b=$(od -An -tu1 -j "$pos" -N1 "$TMP/ir.der" | tr -d ' ')
	printf "\\$(printf %o $(( b ^ 1 )))" |
		dd of="$TMP/ir.der" bs=1 seek="$pos" conv=notrunc 2> /dev/null
	: > "$TMP/ca.log"
	curl -s -H 'Content-Type: application/pkixcmp' --data-binary @"$TMP/ir.der" \
		-o "$TMP/ip.der" "http://127.0.0.1:$CA_PORT/pkix/"
	check "/testca/pop/broken-signature-logged" ca_saw 'rejected badPOP: POP verification failed'
	check "/testca/pop/broken-signature-rejection" sh -c "'$O' asn1parse -inform DER -in '$TMP/ip.der' | grep -q 'INTEGER *:02'"
	check "/testca/pop/nothing-issued" sh -c "! grep -q 'issued serial' '$TMP/ca.log'"
fi

check "/testca/pop/sanitizer-clean" sanitizer_clean

# --- polling ------------------------------------------------------------------
start_ca --poll 2 || exit 1
newkey k10.pem
cmp_pbm -cmd ir -newkey "$TMP/k10.pem" -subject /CN=polled -certout "$TMP/c10.pem"
check "/testca/poll/exit-0" rc_is 0
check "/testca/poll/key" test "$(pub_of_cert "$TMP/c10.pem")" = "$(pub_of_key "$TMP/k10.pem")"
check "/testca/poll/waiting" ca_saw 'waiting, certificate ready in 2 s'
check "/testca/poll/checkafter" ca_saw 'checkAfter [12]'
check "/testca/poll/delivered" ca_saw 'pollReq: delivering'
check "/testca/poll/confirmed" ca_saw 'certConf accepted'

# --- no implicit confirmation -------------------------------------------------
start_ca --no-implicit-confirm || exit 1
cmp_pbm -cmd ir -newkey "$TMP/k10.pem" -subject /CN=no-implicit -implicit_confirm \
	-certout "$TMP/noimpl.pem"
check "/testca/no-implicit-confirm/exit-0" rc_is 0
check "/testca/no-implicit-confirm/certconf" ca_saw 'certConf accepted'

# --- restart keeps the CA; validity options -----------------------------------
start_ca --validity-seconds 120 || exit 1
check "/testca/restart/same-root" test "$("$O" x509 -in "$TMP/ca/root.pem" -noout -fingerprint -sha256)" = "$ROOT_FP"
cmp_pbm -cmd ir -newkey "$TMP/k10.pem" -subject /CN=short -certout "$TMP/c11.pem"
check "/testca/validity-seconds/exit-0" rc_is 0
check "/testca/validity-seconds/short" sh -c "'$O' x509 -in '$TMP/c11.pem' -noout -checkend 60 > /dev/null && ! '$O' x509 -in '$TMP/c11.pem' -noout -checkend 180 > /dev/null"
start_ca --days 10 || exit 1
cmp_pbm -cmd ir -newkey "$TMP/k10.pem" -subject /CN=days -certout "$TMP/c12.pem"
check "/testca/days/10" sh -c "'$O' x509 -in '$TMP/c12.pem' -noout -checkend $((9 * 86400)) > /dev/null && ! '$O' x509 -in '$TMP/c12.pem' -noout -checkend $((11 * 86400)) > /dev/null"

check "/testca/days/sanitizer-clean" sanitizer_clean

# --- signature protection -----------------------------------------------------
start_ca --protection sig || exit 1
newkey k13.pem
cmp_pbm -cmd ir -newkey "$TMP/k13.pem" -subject /CN=sig -certout "$TMP/c13.pem" -rspout "$TMP/ip-sig.der"
check "/testca/sig/ir-exit-0" rc_is 0
check "/testca/sig/response-signed" sh -c "! '$O' asn1parse -inform DER -in '$TMP/ip-sig.der' | grep -q 'password based MAC'"
cmp_run -ref "$CMP_REF" -secret "file:$TMP/secret" -trusted "$TMP/ca/srv.pem" -srvcert "$TMP/ca/srv.pem" \
	-cmd ir -newkey "$TMP/k13.pem" -subject /CN=sig-pinned -certout "$TMP/c14.pem"
check "/testca/sig/srvcert-pinned-exit-0" rc_is 0
check "/testca/sig/cert-verifies" verifies "$TMP/c14.pem"

check "/testca/sig/sanitizer-clean" sanitizer_clean

# --- faults -------------------------------------------------------------------
# fault NAME [CA_ARGS...]: a PBM ir must fail (client options in CLIENT_ARGS).
fault() {
	name=$1
	shift
	start_ca "$@" || { not_ok "/testca/fault/$name/ca-start"; return; }
	cmp_pbm -cmd ir -newkey "$TMP/k13.pem" -subject /CN=fault -certout "$TMP/fault.pem" \
		${CLIENT_ARGS:-}
	check "/testca/fault/$name/client-fails" rc_not_0
	check "/testca/fault/$name/ca-still-serves" kill -0 "$CA_PID"
	check "/testca/fault/$name/sanitizer-clean" sanitizer_clean
}
fault http500 --fault http500
fault drop --fault drop
fault garbage --fault garbage
fault truncated --fault truncated
fault wrong-tid --fault wrong-tid
fault wrong-nonce --fault wrong-nonce
fault unprotected-error --fault unprotected-error
check "/testca/fault/unprotected-error/said-so" out_has 'unprotected|protection'
fault bad-protection --fault bad-protection
fault bad-protection-sig --fault bad-protection --protection sig
CLIENT_ARGS="-msg_timeout 2"
fault slow --fault slow=4
CLIENT_ARGS=
fault reject-badPOP --fault reject=badPOP
check "/testca/fault/reject-badPOP/client-says-badPOP" out_has 'badPOP'
fault reject-badCertTemplate --fault reject=badCertTemplate
check "/testca/fault/reject-badCertTemplate/client-says" out_has 'badCertTemplate'
fault wrong-key --fault wrong-key
fault untrusted --fault untrusted
fault content-type --fault content-type
fault redirect --fault redirect
fault huge --fault huge
fault unprotected --fault unprotected
check "/testca/fault/unprotected/said-so" out_has 'missing protection|protection'
fault wrong-certreqid --fault wrong-certreqid
check "/testca/fault/wrong-certreqid/said-so" out_has 'certReqId'
fault sig-wrong-sender --fault wrong-sender --protection sig
fault sig-sender-format --fault sender-format --protection sig
check "/testca/fault/sig-sender-format/name-printed-as-is" out_has 'CN=%n%s%x'
fault weird-text --fault weird-text
check "/testca/fault/weird-text/badRequest" out_has 'badRequest'
CLIENT_ARGS="-msg_timeout 2 -total_timeout 3"
fault check-after-huge --fault check-after-huge
check "/testca/fault/check-after-huge/ca-said" ca_saw 'checkAfter 2147483648'
fault endless-poll --fault endless-poll
check "/testca/fault/endless-poll/ca-said" ca_saw 'pollReq: fault, checkAfter 1'
CLIENT_ARGS=
# replay: the saved response of the last good certificate request, byte for byte
cp "$TMP/ca/last-response.der" "$TMP/saved.der"
fault replay --fault replay
check "/testca/fault/replay/ca-replayed" ca_saw 'fault replay \('
check "/testca/fault/replay/file-unchanged" cmp -s "$TMP/saved.der" "$TMP/ca/last-response.der"
# PBM: openssl cmp 3.0 checks no sender name without -expect_sender
start_ca --fault wrong-sender || exit 1
cmp_pbm -cmd ir -newkey "$TMP/k13.pem" -subject /CN=fault -certout "$TMP/fault.pem" -rspout "$TMP/ws.der"
check "/testca/fault/wrong-sender/sender-changed" sh -c "'$O' asn1parse -inform DER -in '$TMP/ws.der' | sed -n 1,20p | grep -q 'p11enroll Impostor'"
cmp_pbm -cmd ir -newkey "$TMP/k13.pem" -subject /CN=fault -certout "$TMP/fault.pem" \
	-expect_sender "/O=p11enroll test/CN=p11enroll Test CMP Server"
check "/testca/fault/wrong-sender/expect-sender-fails" rc_not_0
check "/testca/fault/wrong-sender/sanitizer-clean" sanitizer_clean
# many-extracerts: the response carries them, protection intact
start_ca --fault many-extracerts=50 || exit 1
cmp_pbm -cmd ir -newkey "$TMP/k13.pem" -subject /CN=fault -certout "$TMP/fault.pem" \
	-extracertsout "$TMP/many.pem"
check "/testca/fault/many-extracerts/exit-0" rc_is 0
check "/testca/fault/many-extracerts/count" test "$(grep -c 'BEGIN CERTIFICATE' "$TMP/many.pem")" -ge 50
check "/testca/fault/many-extracerts/sanitizer-clean" sanitizer_clean
"$TESTCA" --dir "$TMP/x" --fault many-extracerts > /dev/null 2>&1
check "/testca/cli/many-extracerts-needs-n-exit-2" test $? -eq 2
# oversized-serial: 40 bytes
start_ca --fault oversized-serial || exit 1
cmp_pbm -cmd ir -newkey "$TMP/k13.pem" -subject /CN=fault -certout "$TMP/big-serial.pem"
check "/testca/fault/oversized-serial/exit-0" rc_is 0
check "/testca/fault/oversized-serial/40-bytes" test "$(serial_of "$TMP/big-serial.pem" | tr -d '\\\n' | wc -c)" -eq 80
check "/testca/fault/oversized-serial/sanitizer-clean" sanitizer_clean
# capubs-in-kup: caPubs (an injected root and the real one) in a kup
start_ca --fault capubs-in-kup || exit 1
newkey k21.pem
cmp_run -cmd kur -cert "$TMP/c5.pem" -key "$TMP/k5.pem" -extracerts "$TMP/ca/ca.pem" \
	-newkey "$TMP/k21.pem" -certout "$TMP/c21.pem" -rspout "$TMP/kup.der"
check "/testca/fault/capubs-in-kup/ca-said" ca_saw 'kur: fault capubs-in-kup'
check "/testca/fault/capubs-in-kup/in-response" sh -c "'$O' asn1parse -inform DER -in '$TMP/kup.der' | grep -q 'p11enroll Injected Root'"
check "/testca/fault/capubs-in-kup/protection-valid" rc_is 0
check "/testca/fault/capubs-in-kup/sanitizer-clean" sanitizer_clean

# openssl cmp 3.0 does not compare the subject: check what the CA issued
start_ca --fault wrong-subject || exit 1
cmp_pbm -cmd ir -newkey "$TMP/k13.pem" -subject /CN=fault -certout "$TMP/ws.pem"
check "/testca/fault/wrong-subject/subject-differs" sh -c "'$O' x509 -in '$TMP/ws.pem' -noout -subject | grep -q 'wrong subject'"
# --fault-count: only the first request misbehaves
start_ca --fault http500 --fault-count 1 || exit 1
cmp_pbm -cmd ir -newkey "$TMP/k13.pem" -subject /CN=fault -certout "$TMP/fault.pem"
check "/testca/fault/count/first-fails" rc_not_0
cmp_pbm -cmd ir -newkey "$TMP/k13.pem" -subject /CN=fault -certout "$TMP/fault.pem"
check "/testca/fault/count/second-ok" rc_is 0

# faults hit only certificate requests unless --fault-all
start_ca --fault http500 || exit 1
cmp_pbm -cmd genm
check "/testca/fault/scope/genm-unaffected" rc_is 0
start_ca --fault http500 --fault-all || exit 1
cmp_pbm -cmd genm
check "/testca/fault/scope/fault-all-genm-fails" rc_not_0

# --- hang: a request processed as usual, its answer never sent -------------------
"$TESTCA" --dir "$TMP/x" --hang-on noSuchBody > /dev/null 2>&1
check "/testca/cli/bad-hang-on-exit-2" test $? -eq 2
"$TESTCA" --dir "$TMP/x" --hang-count 1 > /dev/null 2>&1
check "/testca/cli/hang-count-alone-exit-2" test $? -eq 2
check "/testca/cli/help-lists-hang-on" grep -q -e '--hang-on TYPE' "$TMP/help"

# ca_soon ERE: the CA log shows it within 5 s.
ca_soon() {
	i=0
	while [ $i -lt 50 ] && ! grep -q -E "$1" "$TMP/ca.log"; do
		sleep 0.1
		i=$((i + 1))
	done
	ca_saw "$1"
}

# certConf: confirmed on the CA's side, the client times out waiting for pkiconf
start_ca --hang-on certConf --hang-count 1 || exit 1
newkey k30.pem
: > "$TMP/ca.log"
t0=$(date +%s)
cmp_pbm -cmd ir -newkey "$TMP/k30.pem" -subject /CN=hang -certout "$TMP/c30.pem" -msg_timeout 2
t1=$(date +%s)
check "/testca/hang/certconf/client-fails" rc_not_0
check "/testca/hang/certconf/client-timeout" out_has 'timeout'
check "/testca/hang/certconf/waited-for-pkiconf" out_has 'expected response: PKICONF'
check "/testca/hang/certconf/timed-out-in-time" sh -c "[ $((t1 - t0)) -ge 1 ] && [ $((t1 - t0)) -lt 10 ]"
check "/testca/hang/certconf/ir-answered" ca_saw 'POST /pkix/ ir -> ip accepted'
check "/testca/hang/certconf/certconf-recorded" ca_saw 'certConf accepted'
check "/testca/hang/certconf/logged" ca_saw 'hang: certConf received, not answering'
check "/testca/hang/certconf/freed-when-client-closed" \
	ca_soon 'hang: held connection closed after .* the client closed it'
# --hang-count 1: the next certConf is answered
newkey k31.pem
cmp_pbm -cmd ir -newkey "$TMP/k31.pem" -subject /CN=after-hang -certout "$TMP/c31.pem"
check "/testca/hang/count/next-exit-0" rc_is 0
check "/testca/hang/count/next-key" test "$(pub_of_cert "$TMP/c31.pem")" = "$(pub_of_key "$TMP/k31.pem")"
check "/testca/hang/count/one-hang" test "$(grep -c 'hang: .* received' "$TMP/ca.log")" -eq 1
check "/testca/hang/count/sanitizer-clean" sanitizer_clean

# Every certConf (no --hang-count); other clients are served while one is held,
# and a client killed while waiting frees its connection at once.
start_ca --hang-on certConf || exit 1
: > "$TMP/ca.log"
"$O" cmp -server "127.0.0.1:$CA_PORT/pkix/" -trusted "$TMP/ca/root.pem" -ref "$CMP_REF" \
	-secret "file:$TMP/secret" -cmd ir -newkey "$TMP/k30.pem" -subject /CN=held \
	-certout "$TMP/c32.pem" -msg_timeout 60 -total_timeout 60 > "$TMP/held.out" 2>&1 &
HELD=$!
check "/testca/hang/held/logged" ca_soon 'hang: certConf received, not answering'
cmp_pbm -cmd genm
check "/testca/hang/held/genm-served-meanwhile" rc_is 0
check "/testca/hang/held/client-still-waiting" kill -0 "$HELD"
kill -KILL "$HELD" 2> /dev/null
wait "$HELD" 2> /dev/null
check "/testca/hang/held/killed-client-frees-it" \
	ca_soon 'hang: held connection closed after .* the client closed it'
cmp_pbm -cmd ir -newkey "$TMP/k31.pem" -subject /CN=again -certout "$TMP/c33.pem" -msg_timeout 2
check "/testca/hang/all/second-certconf-hangs-too" rc_not_0
check "/testca/hang/all/two-hangs" test "$(grep -c 'hang: certConf received' "$TMP/ca.log")" -eq 2
check "/testca/hang/all/sanitizer-clean" sanitizer_clean

# ir: the certificate is issued and recorded, the ip is never sent
start_ca --hang-on ir || exit 1
: > "$TMP/ca.log"
newkey k34.pem
issued_before=$(find "$TMP/ca/issued" -type f | wc -l)
cmp_pbm -cmd ir -newkey "$TMP/k34.pem" -subject /CN=hang-ir -certout "$TMP/c34.pem" -msg_timeout 2
check "/testca/hang/ir/client-fails" rc_not_0
check "/testca/hang/ir/client-timeout" out_has 'timeout'
check "/testca/hang/ir/no-cert" test ! -e "$TMP/c34.pem"
check "/testca/hang/ir/issued" ca_saw 'issued serial .* subject /CN=hang-ir'
check "/testca/hang/ir/recorded" test "$(find "$TMP/ca/issued" -type f | wc -l)" -eq $((issued_before + 1))
check "/testca/hang/ir/logged" ca_saw 'hang: ir received, not answering'
cmp_pbm -cmd genm
check "/testca/hang/ir/genm-answered" rc_is 0
check "/testca/hang/ir/sanitizer-clean" sanitizer_clean

# --- shutdown -----------------------------------------------------------------
# wait_ca: the CA's exit code; killed (137) if it has not ended after 20 s.
wait_ca() {
	i=0
	while [ $i -lt 200 ]; do
		case $(ps -o stat= -p "$CA_PID" 2> /dev/null) in
		'' | Z*) break ;;
		esac
		sleep 0.1
		i=$((i + 1))
	done
	[ $i -lt 200 ] || kill -KILL "$CA_PID" 2> /dev/null
	wait "$CA_PID"
	rc=$?
	CA_PID=
	return $rc
}
start_ca --max-requests 1 || exit 1
cmp_pbm -cmd ir -newkey "$TMP/k13.pem" -subject /CN=last -implicit_confirm -certout "$TMP/last.pem"
wait_ca
check "/testca/exit/max-requests-exit-0" test $? -eq 0
start_ca || exit 1
kill -TERM "$CA_PID"
wait_ca
check "/testca/exit/sigterm-exit-0" test $? -eq 0
finish
