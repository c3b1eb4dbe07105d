#!/bin/sh
# /tokfill: tests/tokfill, the filler of large tokens for the benchmarks,
# makes what p11enroll would: per enrollment a private key, a public key and
# a certificate with one label and, as CKA_ID, the RFC 5280 key identifier
# of the key; p11enroll finds them by label and certifies a pair by that id.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
TOKFILL="$top_builddir/tests/tokfill"
need_file "$TOKFILL"
LABELS="P-1 P-2 P-3"
setup
plan $((12 + 5 * $(echo $LABELS | wc -w)))
start_ca || exit 1
make_token fill || exit 1
write_conf fill

# fill ARGS...: runs tokfill on the token; RC, $TMP/out and $TMP/err hold the outcome.
fill() {
	"$TOKFILL" --module "$SOFTHSM2_MODULE" --token fill --pin-file "$TMP/pin" "$@" \
		> "$TMP/out" 2> "$TMP/err"
	RC=$?
}

# key_identifier CERT_DER: SHA-1 of the subjectPublicKey BIT STRING contents,
# for a P-256 key the 65 bytes of the uncompressed point that end the SPKI.
key_identifier() {
	"$OPENSSL_BIN" x509 -inform DER -in "$1" -noout -pubkey |
		"$OPENSSL_BIN" pkey -pubin -outform DER | tail -c 65 |
		"$OPENSSL_BIN" dgst -sha1 -r | cut -d' ' -f1
}

# read_cert LABEL FILE: the token certificate labelled LABEL, as DER.
read_cert() {
	"$PKCS11_TOOL" --module "$SOFTHSM2_MODULE" --token-label fill --read-object --type cert \
		--label "$1" -o "$2" > /dev/null 2>&1
}

fill --count 3 --prefix P --ca-cert "$TMP/ca/ca.pem" --ca-key "$TMP/ca/ca.key"
check "/tokfill/ca/exit-0" expect_rc 0
check "/tokfill/ca/says-what-it-made" \
	grep_err "^made 3 key pairs and 3 certificates on token 'fill' in [0-9.]+ s$"
check "/tokfill/ca/nine-objects" test "$(count_objects fill)" -eq 9

for l in $LABELS; do
	check "/tokfill/$l/three-objects" test "$(label_count fill "$l")" -eq 3
	id=$(label_id fill privkey "$l")
	check "/tokfill/$l/one-id" test -n "$id" -a "$(label_id fill pubkey "$l")" = "$id" \
		-a "$(label_id fill cert "$l")" = "$id"
	read_cert "$l" "$TMP/$l.der" && "$OPENSSL_BIN" x509 -inform DER -in "$TMP/$l.der" \
		-out "$TMP/$l.pem" && "$OPENSSL_BIN" x509 -in "$TMP/$l.pem" -noout -subject \
		-nameopt RFC2253 > "$TMP/subject"
	check "/tokfill/$l/subject-and-issuer" \
		sh -c 'grep -q -x "subject=CN=$1" "$2" &&
			"$3" verify -CAfile "$4/root.pem" -untrusted "$4/ca.pem" "$5" > /dev/null' \
		- "$l" "$TMP/subject" "$OPENSSL_BIN" "$TMP/ca" "$TMP/$l.pem"
	check "/tokfill/$l/id-is-key-identifier" test "$(key_identifier "$TMP/$l.der")" = "$id"
	# p11enroll finds the certificate by label and reports the same CKA_ID.
	p11e check test --label "$l"
	check "/tokfill/$l/p11enroll-finds-it" \
		sh -c 'grep -q -x cert=present "$1" && grep -q -x "key_id=$2" "$1"' - "$TMP/out" "$id"
done

# A pair without a certificate; p11enroll certifies it by its CKA_ID, and
# the imported private key signs for the public key in the new certificate.
fill --count 1 --prefix K --start 7 --keys-only
check "/tokfill/keys-only/exit-0" \
	grep_err "^made 1 key pairs and 0 certificates on token 'fill' in [0-9.]+ s$"
id=$(label_id fill privkey K-7)
check "/tokfill/keys-only/pair-only" test "$(label_count fill K-7)" -eq 2 -a -n "$id"
p11e enroll test --label K-7 --key-id "$id" --cert-out "$TMP/k7.pem"
certified() {
	expect_rc 0 || return 1
	"$OPENSSL_BIN" x509 -in "$TMP/k7.pem" -noout -pubkey > "$TMP/k7.pub" &&
		key_signs_for fill "$id" "$TMP/k7.pub"
}
check "/tokfill/keys-only/p11enroll-certifies-it" certified

# Self-signed, for --seconds from now (an hour back, for clocks that differ).
fill --count 1 --prefix S --seconds 7200
read_cert S-1 "$TMP/s.der" && "$OPENSSL_BIN" x509 -inform DER -in "$TMP/s.der" -out "$TMP/s.pem"
check "/tokfill/self-signed/verifies" sh -c '"$1" verify -CAfile "$2" "$2" > /dev/null' - \
	"$OPENSSL_BIN" "$TMP/s.pem"
check "/tokfill/self-signed/seconds" sh -c '"$1" x509 -in "$2" -noout -checkend 3600 > /dev/null &&
	! "$1" x509 -in "$2" -noout -checkend 86400 > /dev/null' - "$OPENSSL_BIN" "$TMP/s.pem"

# Failures: exit 1, the CKR_ code by name and in hex, never the PIN.
printf 'not-%s\n' "$USER_PIN" > "$TMP/badpin"
"$TOKFILL" --module "$SOFTHSM2_MODULE" --token fill --pin-file "$TMP/badpin" --count 1 \
	> "$TMP/out" 2> "$TMP/err"
RC=$?
check "/tokfill/wrong-pin/fails" expect_rc 1
check "/tokfill/wrong-pin/names-ckr" grep_err "C_Login: CKR_PIN_INCORRECT \(0xa0\)"
check "/tokfill/wrong-pin/no-pin-shown" no_secret_in "$TMP/out" "$TMP/err"
"$TOKFILL" --module "$SOFTHSM2_MODULE" --token nosuch --pin-file "$TMP/pin" --count 1 \
	> "$TMP/out" 2> "$TMP/err"
RC=$?
check "/tokfill/no-token/fails" sh -c 'test "$1" -eq 1 && grep -q "no token labelled .nosuch." "$2"' \
	- "$RC" "$TMP/err"
finish
