#!/bin/sh
# /tpm: enrollments on a TPM token (tpm2-pkcs11 on swtpm, tests/tpm-lib.sh)
# with the default configuration: ir for each key type the TPM generates,
# and a refusal, before anything is generated, of one it does not (from the
# module's C_GetMechanismInfo); the module's refusal of the strict template
# and the second try, counted (tests/p11wrap); the private key as asked
# (sign only, sensitive, never extractable), RSA included; kur signed by
# the TPM key;
# revoke; genm; list; the certificate and chain written to the token.
# Then the same decisions on SoftHSM2 through tests/p11wrap, which answers
# chosen calls itself: a template refused once or twice, another CKR, a
# failing or empty C_GetMechanismInfo.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
. "$top_srcdir/tests/tpm-lib.sh"
need_tools
need_tpm_tools
WRAP="$top_builddir/tests/p11wrap/p11wrap.so"
need_file "$WRAP"
setup
# tpm2-pkcs11 leaks under LeakSanitizer: tests/tpm-lsan.supp says where;
# p11enroll's own leaks are still reported.  The slow unwinder follows a
# stack through libcrypto (no frame pointers) into the module.
LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$top_srcdir/tests/tpm-lsan.supp"
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0"
export LSAN_OPTIONS ASAN_OPTIONS
plan $((3 + 6 + 5 + 5 + 2 + 5 + 10 + 10 + 7 + 4 + 4 + 4 + 5 + 3 + 1 + 3 + 3))

SOFT_MODULE=$SOFTHSM2_MODULE
check "/tpm/setup/started" tpm_start
check "/tpm/setup/token" tpm_token tpm1
start_ca || exit 1
# lib.sh's token helpers (objects, label_id, key_signs_for) on the TPM
tpm_helpers_on_tpm
check "/tpm/setup/lockout-counter-0" test "$(tpm_lockout_counter)" -eq 0

# conf LABEL [EXTRA]: the default configuration on token tpm1, through
# p11wrap (P11WRAP_MODULE is the tpm2-pkcs11 module).
P11WRAP_MODULE=$TPM2_PKCS11_MODULE
export P11WRAP_MODULE
conf() {
	write_conf tpm1 "module = $WRAP
label = $1
cert_out = $TMP/$1.pem
${2:-}"
}

# run NAME ARGS...: p11enroll ARGS with the call log in $TMP/NAME.calls.
run() {
	_run=$1
	shift
	: > "$TMP/$_run.calls"
	P11WRAP_LOG="$TMP/$_run.calls" "$P11ENROLL" -c "$TMP/p11enroll.conf" "$@" \
		> "$TMP/out" 2> "$TMP/err"
	RC=$?
}

# calls NAME PATTERN: lines of NAME's call log matching PATTERN.
calls() {
	grep -c -E "$2" "$TMP/$1.calls"
}

# max_size MECH: the largest key size pkcs11-tool -M says the TPM generates
# with MECH (RSA-PKCS-KEY-PAIR-GEN, ECDSA-KEY-PAIR-GEN), 0 when none.
max_size() {
	"$PKCS11_TOOL" --module "$TPM2_PKCS11_MODULE" -M 2> /dev/null |
		awk -v m="$1" '$1 == m "," { sub(/.*keySize=\{[0-9]*,/, ""); sub(/\}.*/, ""); print; f = 1 }
			END { if (!f) print 0 }'
}

# privkey_attrs LABEL: pkcs11-tool's lines for the private key labelled LABEL.
privkey_attrs() {
	objects tpm1 privkey > "$TMP/privkeys" || return 1
	awk -v l="$1" '/Object;/ { mine = 0 } /^ *label:/ { sub(/^ *label: */, ""); mine = ($0 == l) }
		mine' "$TMP/privkeys"
}

# key_as_asked LABEL USAGE: the private key's usage is USAGE (pkcs11-tool's
# words: "sign", or "decrypt, sign, unwrap" with allow_decrypt) and it is
# sensitive, always sensitive, never extractable and was made on the token.
key_as_asked() {
	privkey_attrs "$1" > "$TMP/attrs" || return 1
	grep -q -x -E " *Usage: *$2" "$TMP/attrs" &&
		grep -q -x -E ' *Access: *sensitive, always sensitive, never extractable, local' \
			"$TMP/attrs" || { sed 's/^/#   /' "$TMP/attrs"; return 1; }
}

# on_token LABEL: the pair and its certificate carry LABEL, the CA
# certificates are on the token too, and the certificate on the token is
# the one cert_out wrote.
on_token() {
	[ "$(label_count tpm1 "$1")" -eq 3 ] || { echo "# not 3 objects labelled $1"; return 1; }
	[ "$(objects tpm1 cert | grep -c '^Certificate Object')" -ge 3 ] ||
		{ echo "# no CA certificates on the token"; return 1; }
	_id=$(label_id tpm1 cert "$1") || return 1
	"$PKCS11_TOOL" --module "$TPM2_PKCS11_MODULE" --token-label tpm1 --read-object \
		--type cert --id "$_id" -o "$TMP/oncard.der" > /dev/null 2>&1 &&
		"$OPENSSL_BIN" x509 -inform DER -in "$TMP/oncard.der" -out "$TMP/oncard.pem" &&
		cmp -s "$TMP/oncard.pem" "$TMP/$1.pem"
}

# keygens NAME: the C_GenerateKeyPair results of NAME's call log, on one line.
keygens() {
	sed -n 's/^C_GenerateKeyPair rv=//p' "$TMP/$1.calls" | tr '\n' ' '
}

# ir_made LABEL KEYGENS USAGE: the ir succeeded, the C_GenerateKeyPair
# results were KEYGENS, the key is as asked, all is on the token.
ir_made() {
	t="/tpm/ir/$1"
	check "$t/exit-0" expect_rc 0
	check "$t/keygens" test "$(keygens "$1")" = "$2"
	check "$t/key-as-asked" key_as_asked "$1" "$3"
	check "$t/on-token" on_token "$1"
	check "$t/no-secret" no_secret_in "$TMP/out" "$TMP/err"
}

# ir_refused LABEL BITS: refused before any C_GenerateKeyPair, naming what
# the token generates; nothing on the token, nothing issued.
ir_refused() {
	t="/tpm/ir/$1"
	check "$t/exit-2" expect_rc 2
	check "$t/says-what-it-supports" grep_err \
		"cannot generate RSA $2 keys: it supports EC [0-9]+-$EC_MAX bits and RSA [0-9]+-$RSA_MAX bits: set key_type"
	check "$t/no-keygen" test "$(calls "$1" '^C_GenerateKeyPair ')" -eq 0
	check "$t/nothing-on-token" test "$(label_count tpm1 "$1")" -eq 0
	check "$t/nothing-issued" test "$(ca_issued)" = "$issued"
}

RSA_MAX=$(max_size RSA-PKCS-KEY-PAIR-GEN)
EC_MAX=$(max_size ECDSA-KEY-PAIR-GEN)
echo "# the TPM generates RSA up to $RSA_MAX bits, EC up to $EC_MAX bits"

# EC, the default configuration: the strict template is refused
# (CKR_GENERAL_ERROR), the second try makes a sign-only key.
conf ecP256
run ecP256 enroll test
ir_made ecP256 "CKR_GENERAL_ERROR CKR_OK " sign
check "/tpm/ir/ecP256/notice" grep_err "refused the key template \(CKR_GENERAL_ERROR\)"
conf ecP384 "key_type = ec:P-384"
run ecP384 enroll test
ir_made ecP384 "CKR_GENERAL_ERROR CKR_OK " sign

# RSA, the default configuration: made the same way, sign only; the
# token signs PKCS#1 v1.5 from the data (CKM_SHA256_RSA_PKCS: tpm2-pkcs11
# makes CKM_RSA_PKCS signatures by RSA decryption, which the key may not do).
conf rsa2048 "key_type = rsa:2048"
run rsa2048 enroll test
ir_made rsa2048 "CKR_GENERAL_ERROR CKR_OK " sign
run rsa2048-kur renew test
check "/tpm/kur/rsa2048/exit-0" expect_rc 0
check "/tpm/kur/rsa2048/key-as-asked" key_as_asked rsa2048 sign

# RSA with allow_decrypt = yes: the strict template (decrypt too) is
# taken at once.
conf rsa2048d "key_type = rsa:2048
allow_decrypt = yes"
run rsa2048d enroll test
ir_made rsa2048d "CKR_OK " "decrypt, sign, unwrap"

# 3072 and 4096: enrolled where the TPM's mechanism information says it
# generates them, else refused before anything is generated.
for bits in 3072 4096; do
	conf "rsa$bits" "key_type = rsa:$bits"
	issued=$(ca_issued)
	run "rsa$bits" enroll test
	if [ "$bits" -le "$RSA_MAX" ]; then
		ir_made "rsa$bits" "CKR_GENERAL_ERROR CKR_OK " sign
	else
		ir_refused "rsa$bits" "$bits"
	fi
done

# kur: the renewal is signed by the TPM key (the CA checks the protection
# with the old certificate), the new pair replaces the old one.
conf ecP256
old=$(label_id tpm1 privkey ecP256)
cp "$TMP/ecP256.pem" "$TMP/old.pem"
run renew renew test
check "/tpm/kur/exit-0" expect_rc 0
check "/tpm/kur/signed-by-tpm" test "$(calls renew '^C_Sign rv=CKR_OK')" -ge 1
check "/tpm/kur/ca-answered" grep -q 'kur -> kup' "$TMP/ca.log"
new=$(label_id tpm1 privkey ecP256)
check "/tpm/kur/new-key" test -n "$new" -a "$new" != "$old"
check "/tpm/kur/new-cert" sh -c "! cmp -s '$TMP/old.pem' '$TMP/ecP256.pem'"
check "/tpm/kur/key-as-asked" key_as_asked ecP256 sign
check "/tpm/kur/on-token" on_token ecP256
check "/tpm/kur/old-gone" test "$(objects tpm1 | grep -c -E "^ *ID: *$old\$")" -eq 0
check "/tpm/kur/cert-pubkey" sh -c "'$OPENSSL_BIN' x509 -in '$TMP/ecP256.pem' -noout -pubkey \
	> '$TMP/pub.pem'"
# the certificate's key is the TPM key: the TPM signs, the certificate verifies
_ok=1
key_signs_for tpm1 "$new" "$TMP/pub.pem" || _ok=0
check "/tpm/kur/certificate-key-is-tpm-key" test $_ok -eq 1

# list: the enrollments, their keys and certificates, from the TPM token.
run list list test
check "/tpm/list/exit-0" expect_rc 0
check "/tpm/list/certificate" grep -q '^certificate "ecP256"' "$TMP/out"
run listall list
check "/tpm/list-all/exit-0" expect_rc 0
for l in ecP384 rsa2048 rsa2048d; do
	check "/tpm/list-all/$l" grep -q "^certificate \"$l\"" "$TMP/out"
done
check "/tpm/list-all/no-refused" sh -c "! grep -q 'rsa4096' '$TMP/out'"

# genm: the CA certificates, asked with the enrollment's credentials.
run genm genm test --ca-certs "$TMP/cacerts.pem"
check "/tpm/genm/exit-0" expect_rc 0
check "/tpm/genm/two" test "$(grep -c 'BEGIN CERTIFICATE' "$TMP/cacerts.pem")" -eq 2
check "/tpm/genm/no-keygen" test "$(calls genm '^C_GenerateKeyPair ')" -eq 0
check "/tpm/genm/no-secret" no_secret_in "$TMP/out" "$TMP/err"

# revoke: signed by the TPM key of the certificate revoked.
serial=$("$OPENSSL_BIN" x509 -in "$TMP/ecP256.pem" -noout -serial | sed 's/^serial=//')
run revoke revoke test --reason keyCompromise
check "/tpm/revoke/exit-0" expect_rc 0
check "/tpm/revoke/own-key" grep -q "rr: revoked serial .* protection own-key" "$TMP/ca.log"
check "/tpm/revoke/ca-recorded" grep -q -i "rr: revoked serial 0*$serial reason 1" "$TMP/ca.log"
check "/tpm/revoke/signed-by-tpm" test "$(calls revoke '^C_Sign rv=CKR_OK')" -ge 1

# No PIN was refused along the way: the TPM counted no failed authorisation.
check "/tpm/lockout-counter-still-0" test "$(tpm_lockout_counter)" -eq 0
check "/tpm/no-secret-in-logs" no_secret_in "$TMP/ca.log"
check "/tpm/stopped" tpm_stop
check "/tpm/stopped/swtpm-gone" test -z "$TPM_SWTPM_PID"

# The same decisions on a module that is not a TPM: SoftHSM2 through
# p11wrap, which answers chosen calls itself.
SOFTHSM2_MODULE=$SOFT_MODULE
P11WRAP_MODULE=$SOFT_MODULE
make_token soft || exit 1

# soft NAME FAIL: an ir of label NAME on the SoftHSM2 token with
# P11WRAP_FAIL=FAIL.
soft() {
	write_conf soft "module = $WRAP
label = $1"
	P11WRAP_FAIL=$2 run "$1" enroll test
}

# The template refused once (any of the four answers): made on the second
# try, the private key as strict as ever.
soft retry C_GenerateKeyPair=CKR_TEMPLATE_INCONSISTENT@1
t=/tpm/softhsm/retry
check "$t/exit-0" expect_rc 0
check "$t/keygens" test "$(keygens retry)" = "CKR_TEMPLATE_INCONSISTENT injected CKR_OK "
check "$t/notice" grep_err "refused the key template \(CKR_TEMPLATE_INCONSISTENT\)"
check "$t/read-back-once" test "$(sed -n '/^C_GenerateKeyPair rv=CKR_OK/,$p' "$TMP/retry.calls" |
	grep -c '^C_GetAttributeValue ')" -ge 1
check "$t/key-as-asked" sh -c "'$PKCS11_TOOL' --module '$SOFT_MODULE' --token-label soft --login \
	--pin '$USER_PIN' --list-objects --type privkey 2> /dev/null |
	grep -A8 'label: *retry\$' | grep -q -x -E ' *Usage: *sign'"

# Refused twice: the message names both answers; nothing is left.
soft twice C_GenerateKeyPair=CKR_ATTRIBUTE_VALUE_INVALID
t=/tpm/softhsm/refused-twice
check "$t/exit-3" expect_rc 3
check "$t/two-keygens" test "$(calls twice '^C_GenerateKeyPair ')" -eq 2
check "$t/says-both" grep_err \
	"on token 'soft' \(CKR_ATTRIBUTE_VALUE_INVALID, then without the public key's usage\) failed: CKR_ATTRIBUTE_VALUE_INVALID"

# Another answer is no template refusal: no second try.
soft memory C_GenerateKeyPair=CKR_DEVICE_MEMORY
check "/tpm/softhsm/device-memory/one-keygen" test "$(calls memory '^C_GenerateKeyPair ')" -eq 1

# A module that fails C_GetMechanismInfo is not refused: the key is made.
soft mechfail C_GetMechanismInfo=CKR_DEVICE_ERROR
t=/tpm/softhsm/mechinfo-fails
check "$t/exit-0" expect_rc 0
check "$t/asked" test "$(calls mechfail '^C_GetMechanismInfo rv=CKR_DEVICE_ERROR')" -ge 1
check "$t/one-keygen" test "$(keygens mechfail)" = "CKR_OK "

# A module without either mechanism: refused, nothing generated.
soft nomech C_GetMechanismInfo=CKR_MECHANISM_INVALID
t=/tpm/softhsm/no-mechanism
check "$t/exit-2" expect_rc 2
check "$t/says-neither" grep_err "cannot generate EC 256 keys: it generates neither EC nor RSA"
check "$t/no-keygen" test "$(calls nomech '^C_GenerateKeyPair ')" -eq 0
finish
