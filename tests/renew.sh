#!/bin/sh
# /renew: kur signed with the old key replaces the key pair on the token
# (new CKA_ID, label moved, old objects gone or kept relabelled); a failing
# kur leaves the token exactly as it was and the old key usable.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
setup
plan 53
start_ca || exit 1
TOK=renew

# id_of TYPE LABEL: CKA_ID of the object of that type with exactly that label.
id_of() {
	label_id "$TOK" "$@"
}

# count_label LABEL: objects carrying exactly that label.
count_label() {
	label_count "$TOK" "$1"
}

# signs ID CERT_PEM: the token key ID signs, and CERT_PEM's key verifies it.
signs() {
	"$OPENSSL_BIN" x509 -in "$2" -noout -pubkey > "$TMP/pub.pem" &&
		key_signs_for "$TOK" "$1" "$TMP/pub.pem"
}

# snapshot FILE: the token's object list, sorted; no FILE when the token
# cannot be listed (so that comparing two snapshots fails)
snapshot() {
	_snap=$(objects "$TOK") || { rm -f "$1"; return 1; }
	printf '%s\n' "$_snap" | sort > "$1"
}

conf() {
	write_conf "$TOK" "cert_out = $TMP/cert.pem
$1"
}

make_token "$TOK" || exit 1
conf
p11e enroll test
check "/renew/setup/enrolled" expect_rc 0
cp "$TMP/cert.pem" "$TMP/old.pem"
old=$(id_of privkey enrolled-key)
check "/renew/setup/old-id" test -n "$old"

# renew_fault NAME EXIT CA_ARGS...: the kur fails, the token is unchanged.
renew_fault() {
	name=$1 want=$2
	shift 2
	snapshot "$TMP/before"
	start_ca "$@" || { not_ok "/renew/fault/$name/ca-start"; return; }
	conf "timeout = $(scaled 3)
total_timeout = $(scaled 5)"
	p11e renew test
	check "/renew/fault/$name/exit-$want" expect_rc "$want"
	snapshot "$TMP/after"
	check "/renew/fault/$name/token-unchanged" cmp -s "$TMP/before" "$TMP/after"
	check "/renew/fault/$name/no-new-label" test "$(count_label 'enrolled-key \(new\)')" -eq 0
	check "/renew/fault/$name/old-key-signs" signs "$old" "$TMP/old.pem"
	check "/renew/fault/$name/says-unchanged" grep_err 'old key and certificate are unchanged'
	check "/renew/fault/$name/no-secret" no_secret_in "$TMP/out" "$TMP/err"
}
renew_fault reject 6 --fault reject=badCertTemplate
renew_fault wrong-key 8 --fault wrong-key
renew_fault http500 5 --fault http500

# A successful renewal.
start_ca || exit 1
conf
: > "$TMP/ca.log"
p11e -v renew test
check "/renew/exit-0" expect_rc 0
check "/renew/summary" grep -q '^renewed test' "$TMP/out"
check "/renew/says-old-deleted" grep -q 'old pair:.*deleted' "$TMP/out"
check "/renew/kur-signed-with-old-cert" grep -q 'kur: oldCertID matches an issued certificate' \
	"$TMP/ca.log"
new=$(id_of privkey enrolled-key)
check "/renew/new-key-id" test -n "$new" -a "$new" != "$old"
check "/renew/cert-has-new-id" test "$(id_of cert enrolled-key)" = "$new"
check "/renew/pubkey-has-new-id" test "$(id_of pubkey enrolled-key)" = "$new"
check "/renew/label-moved" test "$(count_label enrolled-key)" -eq 3
check "/renew/old-objects-gone" sh -c "! '$PKCS11_TOOL' --module '$SOFTHSM2_MODULE' \
	--token-label '$TOK' --login --pin '$USER_PIN' --list-objects 2>/dev/null | grep -q 'ID: *$old\$'"
check "/renew/no-temporary-label" test "$(count_label 'enrolled-key \(new\)')" -eq 0
check "/renew/new-key-signs" signs "$new" "$TMP/cert.pem"
check "/renew/same-subject" test "$("$OPENSSL_BIN" x509 -in "$TMP/cert.pem" -noout -subject)" = \
	"$("$OPENSSL_BIN" x509 -in "$TMP/old.pem" -noout -subject)"
check "/renew/no-secret" no_secret_in "$TMP/out" "$TMP/err"

# keep_old: the old pair stays, relabelled.
old=$new
cp "$TMP/cert.pem" "$TMP/old.pem"
conf "keep_old = yes"
p11e renew test
check "/renew/keep-old/exit-0" expect_rc 0
new=$(id_of privkey enrolled-key)
check "/renew/keep-old/new-id" test -n "$new" -a "$new" != "$old"
check "/renew/keep-old/old-relabelled" test "$(id_of privkey 'enrolled-key (old)')" = "$old" -a \
	"$(id_of cert 'enrolled-key (old)')" = "$old" -a "$(id_of pubkey 'enrolled-key (old)')" = "$old"
check "/renew/keep-old/old-key-signs" signs "$old" "$TMP/old.pem"
check "/renew/keep-old/says-kept" grep -q 'old pair:.*kept' "$TMP/out"

# --keep-old on the command line.
conf
p11e renew test --keep-old
check "/renew/keep-old-option/exit-0" expect_rc 0
check "/renew/keep-old-option/two-old-pairs" test "$(count_label 'enrolled-key \(old\)')" -eq 6

# Names survive a renewal: enrolled with SANs, renewed by a configuration
# that names none, the new certificate carries the old ones.
make_token renew-san || exit 1
TOK=renew-san
conf "san = DNS:kept.example, email:kept@example.org"
p11e enroll test
check "/renew/sans/enrolled" expect_rc 0
conf
: > "$TMP/ca.log"
p11e renew test
check "/renew/sans/exit-0" expect_rc 0
# the request itself carried them: the CA did not have to fill them in
check "/renew/sans/requested" sh -c "! grep -q 'SANs copied from the old' '$TMP/ca.log'"
check "/renew/sans/kept" sh -c "'$OPENSSL_BIN' x509 -in '$TMP/cert.pem' -noout -ext subjectAltName | grep -q 'DNS:kept.example, email:kept@example.org'"
TOK=renew

# An RSA key on the token signs the kur (PKCS#1 v1.5 through libp11).
make_token renew-rsa || exit 1
TOK=renew-rsa
conf "key_type = rsa:2048"
p11e enroll test
check "/renew/rsa/enrolled" expect_rc 0
conf
: > "$TMP/ca.log"
p11e renew test
check "/renew/rsa/exit-0" expect_rc 0
check "/renew/rsa/kur-signed" grep -q 'kur: oldCertID matches' "$TMP/ca.log"
check "/renew/rsa/new-key-rsa" sh -c "'$OPENSSL_BIN' x509 -in '$TMP/cert.pem' -noout -text | grep -q 'rsaEncryption'"
TOK=renew

# Nothing to renew: a clear error, nothing generated (the tests/p11wrap call
# log shows no C_GenerateKeyPair: an empty token alone would not tell).
make_token renew-empty || exit 1
write_conf renew-empty
sed -i "s|^module = .*|module = $top_builddir/tests/p11wrap/p11wrap.so|" "$TMP/p11enroll.conf"
: > "$TMP/calls.log"
env P11WRAP_MODULE="$SOFTHSM2_MODULE" P11WRAP_LOG="$TMP/calls.log" \
	"$P11ENROLL" -c "$TMP/p11enroll.conf" renew test > "$TMP/out" 2> "$TMP/err"
RC=$?
check "/renew/nothing/exit-3" expect_rc 3
check "/renew/nothing/message" grep_err 'enroll first'
check "/renew/nothing/token-looked-at" grep -q '^C_FindObjectsInit rv=CKR_OK$' "$TMP/calls.log"
check "/renew/nothing/no-C_GenerateKeyPair" sh -c "! grep -q '^C_GenerateKeyPair ' '$TMP/calls.log'"
check "/renew/nothing/token-empty" test "$(count_objects renew-empty)" -eq 0
finish
