#!/bin/sh
# /enroll: a key pair generated on a SoftHSM2 token, enrolled with ir at the
# test CA, the certificate and CA chain stored back on the token.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
setup
plan 64
start_ca || exit 1

# id_of TOKEN TYPE: CKA_ID of the object of that type labelled enrolled-key.
id_of() {
	objects "$1" "$2" | awk '/Object;/ { mine = 0 } /label: *enrolled-key$/ { mine = 1 }
		mine && /^ *ID:/ { print $2; exit }'
}

ski_of() {
	"$OPENSSL_BIN" x509 -in "$1" -noout -ext subjectKeyIdentifier |
		sed -n 's/^ *\([0-9A-F:]*\)$/\1/p' | tr -d ':' | tr 'A-F' 'a-f'
}

# enroll_and_check TOKEN KEYTYPE
enroll_and_check() {
	tok=$1 kt=$2
	make_token "$tok" || { not_ok "/enroll/$kt/token"; return; }
	write_conf "$tok" "key_type = $kt
san = DNS:$tok.example, email:$tok@example.org
cert_out = $TMP/$tok.pem
chain_out = $TMP/$tok-chain.pem"
	p11e -v enroll test
	check "/enroll/$kt/exit-0" expect_rc 0
	check "/enroll/$kt/summary" grep -q "^enrolled test" "$TMP/out"
	check "/enroll/$kt/no-secret-in-output" no_secret_in "$TMP/out" "$TMP/err"

	priv=$(id_of "$tok" privkey)
	cert=$(id_of "$tok" cert)
	check "/enroll/$kt/cert-has-key-id" test -n "$priv" -a "$priv" = "$cert"
	check "/enroll/$kt/key-id-is-ski" test "$priv" = "$(ski_of "$TMP/$tok.pem")"
	objects "$tok" privkey > "$TMP/priv.txt"
	check "/enroll/$kt/key-sensitive" grep -q -E 'Access:.*[^-]sensitive' "$TMP/priv.txt"
	check "/enroll/$kt/key-never-extractable" grep -q 'never extractable' "$TMP/priv.txt"
	check "/enroll/$kt/key-generated-on-token" grep -q -E 'Access:.*local' "$TMP/priv.txt"
	check "/enroll/$kt/key-no-decrypt" sh -c "! grep -q -E 'Usage:.*decrypt' '$TMP/priv.txt'"
	check "/enroll/$kt/key-label" grep -q 'label: *enrolled-key' "$TMP/priv.txt"

	# The certificate read back from the token carries the token key: the
	# token signs, and the certificate's public key verifies the signature.
	"$PKCS11_TOOL" --module "$SOFTHSM2_MODULE" --token-label "$tok" --read-object \
		--type cert --id "$cert" -o "$TMP/cert.der" > /dev/null 2>&1
	"$OPENSSL_BIN" x509 -inform DER -in "$TMP/cert.der" -noout -pubkey > "$TMP/certpub.pem"
	echo "data signed on the token" > "$TMP/data"
	"$OPENSSL_BIN" dgst -sha256 -binary -out "$TMP/hash" "$TMP/data"
	case $kt in
	ec*) mech=ECDSA in=$TMP/hash ;;
	*) mech=SHA256-RSA-PKCS in=$TMP/data ;;
	esac
	"$PKCS11_TOOL" --module "$SOFTHSM2_MODULE" --token-label "$tok" --login --pin "$USER_PIN" \
		--sign -m "$mech" --id "$priv" --signature-format openssl -i "$in" \
		-o "$TMP/sig" > /dev/null 2>&1
	check "/enroll/$kt/stored-cert-matches-token-key" "$OPENSSL_BIN" pkeyutl -verify -pubin \
		-inkey "$TMP/certpub.pem" -in "$TMP/hash" -sigfile "$TMP/sig" -pkeyopt digest:sha256
	check "/enroll/$kt/cert-subject" sh -c "'$OPENSSL_BIN' x509 -inform DER -in '$TMP/cert.der' -noout -subject | grep -q 'CN *= *p11enroll test'"
	check "/enroll/$kt/cert-san" sh -c "'$OPENSSL_BIN' x509 -inform DER -in '$TMP/cert.der' -noout -ext subjectAltName | grep -q 'DNS:$tok.example'"
	check "/enroll/$kt/chain-verifies" "$OPENSSL_BIN" verify -CAfile "$TMP/ca/root.pem" \
		-untrusted "$TMP/$tok-chain.pem" "$TMP/$tok.pem"
	ncerts=$(objects "$tok" cert | grep -c '^Certificate Object')
	check "/enroll/$kt/ca-certs-stored" test "$ncerts" -ge 2
}

enroll_and_check tok-ec ec:P-256
enroll_and_check tok-rsa rsa:2048
enroll_and_check tok-p384 ec:P-384

# The CA verified the token's POP signature for each request.
check "/enroll/ca-verified-pop" test "$(grep -c -i 'pop.*verified\|verified.*pop' "$TMP/ca.log")" -ge 3

# implicitConfirm: requested and granted, the exchange ends with the ip;
# requested but not granted, certConf follows as usual.
make_token tok-ic || exit 1
write_conf tok-ic "implicit_confirm = yes"
: > "$TMP/ca.log"
p11e enroll test
check "/enroll/implicit-confirm/granted/exit-0" expect_rc 0
check "/enroll/implicit-confirm/granted/ca-granted" grep -q 'implicitConfirm granted' "$TMP/ca.log"
check "/enroll/implicit-confirm/granted/no-certconf" sh -c "! grep -q 'certConf' '$TMP/ca.log'"
start_ca --no-implicit-confirm || exit 1
write_conf tok-ic "implicit_confirm = yes"
: > "$TMP/ca.log"
# the first certificate is valid: replacing it is asked for (tests/replace.sh)
p11e enroll test --replace
check "/enroll/implicit-confirm/refused/exit-0" expect_rc 0
check "/enroll/implicit-confirm/refused/certconf-sent" grep -q 'certConf accepted' "$TMP/ca.log"
# a second enroll replaces the pair the first one made (as renew does)
check "/enroll/implicit-confirm/refused/old-pair-replaced" test "$(objects tok-ic cert | grep -c 'label: *enrolled-key$')" -eq 1
check "/enroll/implicit-confirm/refused/one-key" test "$(objects tok-ic privkey | grep -c 'label: *enrolled-key$')" -eq 1
check "/enroll/implicit-confirm/refused/says-deleted" grep -q 'old pair:.*deleted' "$TMP/out"
p11e enroll test --keep-old --replace
check "/enroll/keep-old/exit-0" expect_rc 0
check "/enroll/keep-old/old-kept" test "$(objects tok-ic privkey | grep -c 'label: *enrolled-key (old)$')" -eq 1
check "/enroll/keep-old/one-current" test "$(objects tok-ic privkey | grep -c 'label: *enrolled-key$')" -eq 1

# Delayed issuance: the CA answers "waiting", the client polls at the
# CA's checkAfter and gets the certificate.
make_token tok-poll || exit 1
start_ca --poll 1 || exit 1
write_conf tok-poll
: > "$TMP/ca.log"
p11e enroll test
check "/enroll/polled/exit-0" expect_rc 0
check "/enroll/polled/ca-waited" grep -q 'waiting, certificate ready in' "$TMP/ca.log"
check "/enroll/polled/ca-delivered" grep -q 'pollReq: delivering' "$TMP/ca.log"
check "/enroll/polled/stored" test "$(objects tok-poll cert | grep -c 'label: *enrolled-key')" -eq 1

# list shows the key and certificate with their protection.
p11e list test
check "/list/exit-0" expect_rc 0
check "/list/shows-cert" grep -q 'CN *= *p11enroll test\|CN=p11enroll test' "$TMP/out"
check "/list/shows-never-extractable" grep -q 'never extractable' "$TMP/out"
finish
