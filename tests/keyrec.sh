#!/bin/sh
# /keyrec: p11enroll recover, key recovery (krr/krp).  The CA holds the
# private key of a certificate (a software key, EC and RSA, certified with
# the test CA's issuing key and put into its recovery store
# archive/SERIAL.pem); the token holds the certificate (or --cert names
# it) and no private key.  recover brings the key onto the token by
# C_UnwrapKey through a transport key (tests/p11wrap: no C_CreateObject of
# a private key, no template with a CKA_VALUE but the certificate's), with
# the certificate's CKA_ID and label, and the key decrypts (RSA) or
# derives (EC) what was encrypted to the certificate.  Every broken krp
# (tests/ca --krr-fault) and a CA without the key leave the token as it
# was and say why; no key material in any output.  A key in an
# EnvelopedData (tests/ca --krr-enveloped) is refused without
# allow_software_import and created on the token from memory with it.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
WRAP="$top_builddir/tests/p11wrap/p11wrap.so"
need_file "$WRAP"
setup
plan 150
start_ca || exit 1
TOK=krr
make_token "$TOK" || exit 1
write_conf "$TOK"
export P11WRAP_MODULE="$SOFTHSM2_MODULE"
sed -i "s|^module = .*|module = $WRAP|" "$TMP/p11enroll.conf"
SLOT=$(token_slot "$TOK")

p11tool() {
	"$PKCS11_TOOL" --module "$SOFTHSM2_MODULE" --slot "$SLOT" --login --pin "$USER_PIN" "$@"
}

# archived NAME ALG: a software key $TMP/NAME.key (ALG ec or rsa) with its
# certificate $TMP/NAME.pem issued by the test CA's issuing key, recorded
# as issued and the key put into the CA's recovery store.
archived() {
	case $2 in
	ec) set -- "$1" -algorithm EC -pkeyopt ec_paramgen_curve:P-256 ;;
	rsa) set -- "$1" -algorithm RSA -pkeyopt rsa_keygen_bits:2048 ;;
	esac
	_n=$1
	shift
	"$OPENSSL_BIN" genpkey "$@" -out "$TMP/$_n.key" 2> /dev/null &&
		"$OPENSSL_BIN" req -new -key "$TMP/$_n.key" -subj "/CN=$_n/O=Example" \
			-out "$TMP/$_n.csr" &&
		printf '%s\n' 'keyUsage = critical, keyEncipherment, keyAgreement' \
			> "$TMP/$_n.ext" &&
		"$OPENSSL_BIN" x509 -req -in "$TMP/$_n.csr" -CA "$TMP/ca/ca.pem" \
			-CAkey "$TMP/ca/ca.key" -set_serial "0x$(od -An -N8 -tx1 /dev/urandom |
			tr -d ' \n' | sed 's/^./7/')" -days 2 -extfile "$TMP/$_n.ext" \
			-out "$TMP/$_n.pem" 2> /dev/null || return 1
	_s=$("$OPENSSL_BIN" x509 -in "$TMP/$_n.pem" -noout -serial | sed 's/^serial=//')
	mkdir -p "$TMP/ca/archive" "$TMP/ca/issued"
	cp "$TMP/$_n.pem" "$TMP/ca/issued/$_s.pem"
	cp "$TMP/$_n.key" "$TMP/ca/archive/$_s.pem"
}

# on_token NAME ID LABEL: the certificate of NAME on the token, no key.
on_token() {
	"$OPENSSL_BIN" x509 -in "$TMP/$1.pem" -outform DER -out "$TMP/$1.der" &&
		p11tool --write-object "$TMP/$1.der" --type cert --id "$2" --label "$3" \
			> /dev/null 2>&1
}

# recover LOG ARGS...: p11enroll recover through p11wrap, the call log in
# $TMP/LOG.log.
recover() {
	_l=$1
	shift
	: > "$TMP/$_l.log"
	P11WRAP_LOG="$TMP/$_l.log" P11WRAP_LOG_TEMPLATE=1 p11e recover test "$@"
}

# seed NAME CERT: with T_KRP_SEEDS=DIR, the CA's last krp and the PEM
# certificate CERT whose key was asked for into DIR/NAME, as fuzz-krp
# reads them (a 2-byte length, the certificate's DER, the krp).
seed() {
	[ -n "${T_KRP_SEEDS:-}" ] && [ -f "$TMP/ca/last-krp.der" ] || return 0
	"$OPENSSL_BIN" x509 -in "$2" -outform DER -out "$TMP/seed.der"
	_len=$(wc -c < "$TMP/seed.der")
	{
		printf "\\$(printf %o $((_len / 256)))\\$(printf %o $((_len % 256)))"
		cat "$TMP/seed.der" "$TMP/ca/last-krp.der"
	} > "$T_KRP_SEEDS/$1"
	rm -f "$TMP/ca/last-krp.der"
}

# unwrapped LOG: two C_UnwrapKey (the AES key, the private key), no
# private key made from a value, no template with a value but a
# certificate's.
unwrapped() {
	[ "$(grep -c -x 'C_UnwrapKey rv=CKR_OK' "$TMP/$1.log")" = 2 ] &&
		! grep -q '^TEMPLATE C_CreateObject class=CKO_PRIVATE_KEY' "$TMP/$1.log" &&
		! grep 'value=yes' "$TMP/$1.log" | grep -q -v '^TEMPLATE C_CreateObject class=CKO_CERTIFICATE '
}

# no_key_bytes NAME FILE...: none of NAME's private key (PEM body lines,
# hex of the DER) in FILE...
no_key_bytes() {
	_nk=$1
	shift
	"$OPENSSL_BIN" pkey -in "$TMP/$_nk.key" -outform DER | od -An -tx1 | tr -d ' \n' \
		> "$TMP/$_nk.hex"
	! grep -q -F -f "$TMP/$_nk.hex" "$@" &&
		! grep -v -e '-----' "$TMP/$_nk.key" | grep -q -F -f - "$@"
}

# sensitive ID: the token's private key ID is sensitive and not
# extractable (pkcs11-tool's Access line names "extractable" otherwise).
sensitive() {
	p11tool --list-objects --type privkey --id "$1" 2> /dev/null | grep 'Access:' \
		> "$TMP/access" &&
		grep -q 'sensitive' "$TMP/access" && ! grep -q -E '(:|,) *extractable' "$TMP/access"
}

# rsa_decrypts ID NAME: the token's key ID decrypts (RSA-OAEP) what was
# encrypted to NAME's certificate.
rsa_decrypts() {
	echo "for the recovered key $1" > "$TMP/plain"
	"$OPENSSL_BIN" pkeyutl -encrypt -certin -inkey "$TMP/$2.pem" -in "$TMP/plain" \
		-pkeyopt rsa_padding_mode:oaep -out "$TMP/cipher" &&
		p11tool --decrypt -m RSA-PKCS-OAEP --hash-algorithm SHA-1 --mgf MGF1-SHA1 \
			--id "$1" -i "$TMP/cipher" -o "$TMP/decrypted" > /dev/null 2>&1 &&
		cmp -s "$TMP/plain" "$TMP/decrypted"
}

# ec_derives ID NAME: the token's key ID derives (ECDH) the secret that a
# peer key derives with NAME's certificate.
ec_derives() {
	"$OPENSSL_BIN" genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
		-out "$TMP/peer.key" 2> /dev/null &&
		"$OPENSSL_BIN" x509 -in "$TMP/$2.pem" -noout -pubkey > "$TMP/$2.pub" &&
		"$OPENSSL_BIN" pkeyutl -derive -inkey "$TMP/peer.key" -peerkey "$TMP/$2.pub" \
			-out "$TMP/secret1" &&
		"$OPENSSL_BIN" pkey -in "$TMP/peer.key" -pubout -outform DER -out "$TMP/peer.der" &&
		p11tool --derive -m ECDH1-DERIVE --id "$1" -i "$TMP/peer.der" \
			-o "$TMP/secret2" > /dev/null 2>&1 &&
		cmp -s "$TMP/secret1" "$TMP/secret2"
}

# The certificate on the token under the label (CKA_ID 52ec, not its key
# identifier), EC and RSA.
for alg in ec rsa; do
	n=k-$alg
	[ $alg = ec ] && id=52ec || id=525a
	archived "$n" "$alg"
	check "/keyrec/$alg/setup" on_token "$n" "$id" enrolled-key
	BEFORE=$(count_objects "$TOK")
	recover "$n"
	check "/keyrec/$alg/exit-0" expect_rc 0
	seed "$alg" "$TMP/$n.pem"
	check "/keyrec/$alg/unwrapped" unwrapped "$n"
	check "/keyrec/$alg/key-beside-cert" test "$(label_id "$TOK" privkey enrolled-key)" = "$id" \
		-a "$(label_id "$TOK" pubkey enrolled-key)" = "$id"
	check "/keyrec/$alg/two-more" test "$(count_objects "$TOK")" -eq $((BEFORE + 2))
	if [ $alg = ec ]; then
		check "/keyrec/$alg/derives" ec_derives "$id" "$n"
	else
		check "/keyrec/$alg/decrypts" rsa_decrypts "$id" "$n"
	fi
	check "/keyrec/$alg/says" grep -q 'unwrapped on the token' "$TMP/out"
	check "/keyrec/$alg/no-key-bytes" no_key_bytes "$n" "$TMP/out" "$TMP/err" \
		"$TMP/$n.log" "$TMP/ca.log"
	check "/keyrec/$alg/no-secret" no_secret_in "$TMP/out" "$TMP/err"
	check "/keyrec/$alg/ca-log" grep -q 'krr: serial .*: key recovered$' "$TMP/ca.log"
	# the request named the certificate and the token's transport key
	check "/keyrec/$alg/asked-for" grep -q "krr: oldCertID serial $(
		"$OPENSSL_BIN" x509 -in "$TMP/$n.pem" -noout -serial | sed 's/^serial=//'
	), protocolEncrKey RSA 2048 bits" "$TMP/ca.log"
	# A key on the token is not asked for again.
	N=$(grep -c 'krr: serial' "$TMP/ca.log")
	recover "$n-again"
	check "/keyrec/$alg/again/exit-0" expect_rc 0
	check "/keyrec/$alg/again/nothing" grep -q 'on the token already' "$TMP/out"
	check "/keyrec/$alg/again/no-krr" test "$(grep -c 'krr: serial' "$TMP/ca.log")" -eq "$N"
	# the next round uses the label afresh
	p11tool --delete-object --type privkey --id "$id" > /dev/null 2>&1
	p11tool --delete-object --type pubkey --id "$id" > /dev/null 2>&1
	p11tool --delete-object --type cert --id "$id" > /dev/null 2>&1
done

# Only the private key was lost: the public key object stays, and no
# second one with the same CKA_ID is made.
archived k-pub ec
on_token k-pub 50b1 with-pub
"$OPENSSL_BIN" x509 -in "$TMP/k-pub.pem" -noout -pubkey |
	"$OPENSSL_BIN" pkey -pubin -outform DER -out "$TMP/k-pub.spki"
p11tool --write-object "$TMP/k-pub.spki" --type pubkey --id 50b1 --label with-pub > /dev/null 2>&1
check "/keyrec/pub-left/setup" test "$(label_count "$TOK" with-pub)" = 2
recover k-pub --label with-pub
check "/keyrec/pub-left/exit-0" expect_rc 0
check "/keyrec/pub-left/one-public-key" test "$(label_count "$TOK" with-pub)" = 3 -a \
	"$(label_id "$TOK" privkey with-pub)" = 50b1
check "/keyrec/pub-left/derives" ec_derives 50b1 k-pub

# --cert FILE: the certificate is not on the token; it goes under the
# label beside the key, with the key's identifier as CKA_ID.
archived k-file ec
BEFORE=$(count_objects "$TOK")
recover k-file --cert "$TMP/k-file.pem" --label from-file
check "/keyrec/cert-file/exit-0" expect_rc 0
check "/keyrec/cert-file/unwrapped" unwrapped k-file
check "/keyrec/cert-file/three-more" test "$(count_objects "$TOK")" -eq $((BEFORE + 3))
FID=$(label_id "$TOK" cert from-file)
check "/keyrec/cert-file/one-id" test -n "$FID" -a "$(label_id "$TOK" privkey from-file)" = "$FID"
check "/keyrec/cert-file/no-new-mark" test "$(label_count "$TOK" 'from-file \(new\)')" = 0
check "/keyrec/cert-file/derives" ec_derives "$FID" k-file
# another certificate under the label: refused, nothing asked
archived k-other ec
recover k-other --cert "$TMP/k-other.pem" --label from-file
check "/keyrec/label-taken/exit-2" expect_rc 2
check "/keyrec/label-taken/says" grep -q 'holds another certificate' "$TMP/err"
# no certificate at all
recover none --label nothing-here
check "/keyrec/no-cert/exit-2" expect_rc 2
check "/keyrec/no-cert/says" grep -q -e 'give the certificate whose key is wanted with --cert' \
	"$TMP/err"

# The faults: each leaves the token as it was and says why.
archived k-fault rsa
on_token k-fault 5fa1 faulty
# fault NAME RC TEXT: recover under the CA with --krr-fault NAME.
fault() {
	start_ca --krr-fault "$1" || return 1
	write_conf "$TOK" "label = faulty"
	sed -i "s|^module = .*|module = $WRAP|" "$TMP/p11enroll.conf"
	_b=$(count_objects "$TOK")
	recover "f-$1"
	sed 's/^/# /' "$TMP/err"
	seed "$1" "$TMP/k-fault.pem"
	check "/keyrec/fault/$1/exit-$2" expect_rc "$2"
	check "/keyrec/fault/$1/says" grep -q -e "$3" "$TMP/err"
	check "/keyrec/fault/$1/token-unchanged" test "$(count_objects "$TOK")" -eq "$_b"
	check "/keyrec/fault/$1/no-key-bytes" no_key_bytes k-fault "$TMP/out" "$TMP/err"
}
fault wrong-key 3 'does not belong to the public key of its certificate'
fault other-recipient 3 'encrypted to another recipient or is damaged'
fault garbage 3 'the encrypted key is damaged'
fault unprotected 7 "the CA's answer is not protected"
fault reject 6 'PKIStatus 2: key recovery refused by the test CA (fault reject) (rejection, failInfo notAuthorized)'
fault no-key 7 'carries the certificate but no private key'
# Protected by a signer (another certificate of the end entity) instead
# of the MAC secret: the lost key signs nothing.
start_ca || exit 1
write_conf "$TOK"
sed -i "s|^module = .*|module = $WRAP|" "$TMP/p11enroll.conf"
p11e enroll test --label signer-key
check "/keyrec/signer/setup" expect_rc 0
archived k-sig rsa
on_token k-sig 5161 sig-target
recover k-sig --label sig-target --signer signer-key
check "/keyrec/signer/exit-0" expect_rc 0
check "/keyrec/signer/unwrapped" unwrapped k-sig
check "/keyrec/signer/signed" grep -q 'krr header: .*pbm -$' "$TMP/ca.log"
check "/keyrec/signer/decrypts" rsa_decrypts 5161 k-sig

# Killed while the key and the certificate from --cert go onto the token
# (under "LABEL (new)"): before the certificate, check --recover deletes
# the key again; after it, it adopts the pair under the label.
archived k-kill ec
B=$(count_objects "$TOK")
export P11WRAP_KILL=C_CreateObject:before:2
recover kill-before --cert "$TMP/k-kill.pem" --label killed
unset P11WRAP_KILL
check "/keyrec/kill/before/killed" test "$RC" -ge 128
p11e check test --recover --label killed
check "/keyrec/kill/before/recovered" test "$(count_objects "$TOK")" -eq "$B"
export P11WRAP_KILL=C_CreateObject:after:2
recover kill-after --cert "$TMP/k-kill.pem" --label killed
unset P11WRAP_KILL
check "/keyrec/kill/after/killed" test "$RC" -ge 128
check "/keyrec/kill/after/left-new" test "$(label_count "$TOK" 'killed \(new\)')" -eq 3
p11e check test --recover --label killed
check "/keyrec/kill/after/adopted" test "$(label_count "$TOK" killed)" -eq 3 -a \
	"$(label_id "$TOK" privkey killed)" = "$(label_id "$TOK" cert killed)"

# A certificate that does not chain to the trust anchors: refused, the
# token as it was.
"$OPENSSL_BIN" req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$TMP/other.key" -out "$TMP/other.pem" -days 2 -subj "/CN=Other Root" 2> /dev/null
archived k-untrusted ec
on_token k-untrusted 5a11 untrusted
B=$(count_objects "$TOK")
recover untrusted --label untrusted --trusted "$TMP/other.pem"
check "/keyrec/untrusted/exit-8" expect_rc 8
check "/keyrec/untrusted/says" grep -q \
	'certificate of the recovered key (issuer .*) does not verify against the configured trust' \
	"$TMP/err"
check "/keyrec/untrusted/token-unchanged" test "$(count_objects "$TOK")" -eq "$B"

# An earlier key pair first in the key pair history: the certificate's
# own key is found and imported, the other one reported.
start_ca --krr-fault history || exit 1
write_conf "$TOK" "label = hist"
sed -i "s|^module = .*|module = $WRAP|" "$TMP/p11enroll.conf"
archived k-hist rsa
on_token k-hist 4157 hist
recover k-hist
check "/keyrec/history/exit-0" expect_rc 0
check "/keyrec/history/reported" grep -q 'the CA sent 1 more key pair(s) of the key history' \
	"$TMP/err"
check "/keyrec/history/right-key" rsa_decrypts 4157 k-hist

# A wrong MAC secret: the CA refuses the krr's protection; the token as
# it was.
printf 'not-the-secret\n' > "$TMP/wrong-secret"
B=$(count_objects "$TOK")
recover wrong-secret --label untrusted --secret-source "file:$TMP/wrong-secret"
check "/keyrec/wrong-secret/exit-7" expect_rc 7
check "/keyrec/wrong-secret/says" grep -q 'check the reference value and secret' "$TMP/err"
check "/keyrec/wrong-secret/ca-refused" grep -q 'krr -> error' "$TMP/ca.log"
check "/keyrec/wrong-secret/token-unchanged" test "$(count_objects "$TOK")" -eq "$B"

# The key in an EnvelopedData (RFC 9480; tests/ca --krr-enveloped), whose
# content (a SignedData around the key) no token unwraps: refused without
# allow_software_import, the token as it was; with it the content is
# decrypted on the token (C_Decrypt) into p11enroll's memory, the
# SignedData verified as the issuer's, and the key created on the token
# (C_CreateObject) sensitive and not extractable, which the output says.
start_ca --krr-enveloped || exit 1
for alg in ec rsa; do
	n=env-$alg
	[ $alg = ec ] && id=e5ec || id=e55a
	archived "$n" "$alg"
	check "/keyrec/enveloped/$alg/setup" on_token "$n" "$id" "$n"
	write_conf "$TOK" "label = $n"
	sed -i "s|^module = .*|module = $WRAP|" "$TMP/p11enroll.conf"
	B=$(count_objects "$TOK")
	recover "$n-refused"
	check "/keyrec/enveloped/$alg/refused/exit-2" expect_rc 2
	check "/keyrec/enveloped/$alg/refused/says" grep -q \
		'in an EnvelopedData (RFC 9483), whose content .* set allow_software_import = yes' \
		"$TMP/err"
	check "/keyrec/enveloped/$alg/refused/token-unchanged" test "$(count_objects "$TOK")" -eq "$B"
	check "/keyrec/enveloped/$alg/refused/no-key-bytes" no_key_bytes "$n" "$TMP/out" "$TMP/err"
	write_conf "$TOK" "label = $n
allow_software_import = yes"
	sed -i "s|^module = .*|module = $WRAP|" "$TMP/p11enroll.conf"
	recover "$n"
	check "/keyrec/enveloped/$alg/exit-0" expect_rc 0
	seed "enveloped-$alg" "$TMP/$n.pem"
	check "/keyrec/enveloped/$alg/ca-sent-it" grep -q 'krr: private key sent in an EnvelopedData' \
		"$TMP/ca.log"
	check "/keyrec/enveloped/$alg/decrypted-on-token" grep -q -x 'C_Decrypt rv=CKR_OK' \
		"$TMP/$n.log"
	check "/keyrec/enveloped/$alg/created" grep -q '^TEMPLATE C_CreateObject class=CKO_PRIVATE_KEY' \
		"$TMP/$n.log"
	check "/keyrec/enveloped/$alg/sensitive" sensitive "$id"
	check "/keyrec/enveloped/$alg/key-beside-cert" test \
		"$(label_id "$TOK" privkey "$n")" = "$id" -a "$(label_id "$TOK" pubkey "$n")" = "$id"
	check "/keyrec/enveloped/$alg/two-more" test "$(count_objects "$TOK")" -eq $((B + 2))
	if [ $alg = ec ]; then
		check "/keyrec/enveloped/$alg/derives" ec_derives "$id" "$n"
	else
		check "/keyrec/enveloped/$alg/decrypts" rsa_decrypts "$id" "$n"
	fi
	check "/keyrec/enveloped/$alg/says" grep -q "decrypted on the token into this process's memory" \
		"$TMP/out"
	check "/keyrec/enveloped/$alg/warns" grep -q "passed through this process's memory" "$TMP/err"
	check "/keyrec/enveloped/$alg/no-key-bytes" no_key_bytes "$n" "$TMP/out" "$TMP/err" \
		"$TMP/$n.log" "$TMP/ca.log"
done
# --cert FILE (the pair goes under "LABEL (new)" first), the krp signed by
# the CA's CMP certificate (its signature verified by p11enroll).
start_ca --krr-enveloped --protection sig || exit 1
write_conf "$TOK" "label = env-file
allow_software_import = yes"
sed -i "s|^module = .*|module = $WRAP|" "$TMP/p11enroll.conf"
archived env-file ec
B=$(count_objects "$TOK")
recover env-file --cert "$TMP/env-file.pem"
check "/keyrec/enveloped/cert-file/exit-0" expect_rc 0
check "/keyrec/enveloped/cert-file/signed" grep -q 'krr: private key sent in an EnvelopedData' \
	"$TMP/ca.log"
# the krp as sent (the test CA's last-krp.der): a signature, no PBM
"$OPENSSL_BIN" asn1parse -inform DER -in "$TMP/ca/last-krp.der" > "$TMP/krp.txt" 2>&1
check "/keyrec/enveloped/cert-file/krp-signed" grep -q -i 'ecdsa-with\|WithRSAEncryption' \
	"$TMP/krp.txt"
check "/keyrec/enveloped/cert-file/krp-no-pbm" test \
	"$(grep -c -i 'password based mac\|1.2.840.113533.7.66.13' "$TMP/krp.txt")" = 0
check "/keyrec/enveloped/cert-file/three-more" test "$(count_objects "$TOK")" -eq $((B + 3))
FID=$(label_id "$TOK" cert env-file)
check "/keyrec/enveloped/cert-file/one-id" test -n "$FID" -a \
	"$(label_id "$TOK" privkey env-file)" = "$FID"
check "/keyrec/enveloped/cert-file/no-new-mark" test "$(label_count "$TOK" 'env-file \(new\)')" = 0
check "/keyrec/enveloped/cert-file/derives" ec_derives "$FID" env-file
check "/keyrec/enveloped/cert-file/no-key-bytes" no_key_bytes env-file "$TMP/out" "$TMP/err" \
	"$TMP/env-file.log" "$TMP/ca.log"

# The faults with the key in an EnvelopedData: each leaves the token as it
# was and says why.
archived env-fault rsa
on_token env-fault 5fe1 env-faulty
# env_fault NAME RC TEXT [CA OPTIONS]: recover under the CA with
# --krr-enveloped and --krr-fault NAME (or the options).
env_fault() {
	_f=$1 _rc=$2 _t=$3
	shift 3
	start_ca --krr-enveloped ${1+"$@"} || return 1
	write_conf "$TOK" "label = env-faulty
allow_software_import = yes"
	sed -i "s|^module = .*|module = $WRAP|" "$TMP/p11enroll.conf"
	_b=$(count_objects "$TOK")
	recover "ef-$_f"
	sed 's/^/# /' "$TMP/err"
	seed "enveloped-$_f" "$TMP/env-fault.pem"
	check "/keyrec/enveloped/fault/$_f/exit-$_rc" expect_rc "$_rc"
	check "/keyrec/enveloped/fault/$_f/says" grep -q -e "$_t" "$TMP/err"
	check "/keyrec/enveloped/fault/$_f/token-unchanged" test "$(count_objects "$TOK")" -eq "$_b"
	check "/keyrec/enveloped/fault/$_f/no-key-bytes" no_key_bytes env-fault "$TMP/out" "$TMP/err"
}
env_fault garbage 7 'holds no private key' --krr-fault garbage
env_fault other-recipient 3 'decrypting the EnvelopedData failed' --krr-fault other-recipient
env_fault wrong-key 8 'does not match\|not the key\|does not belong' --krr-fault wrong-key
env_fault bad-protection 7 'does not verify' --fault bad-protection --fault-on krr
env_fault bad-protection-sig 7 'does not verify' --fault bad-protection --fault-on krr \
	--protection sig

# No archived key: the CA says so.
start_ca || exit 1
write_conf "$TOK" "label = faulty"
sed -i "s|^module = .*|module = $WRAP|" "$TMP/p11enroll.conf"
rm -f "$TMP/ca/archive/"*.pem
B=$(count_objects "$TOK")
recover none-archived
seed not-archived "$TMP/k-fault.pem"
check "/keyrec/not-archived/exit-6" expect_rc 6
check "/keyrec/not-archived/says" grep -q 'no archived key for this certificate (rejection, failInfo badCertId)' "$TMP/err"
check "/keyrec/not-archived/token-unchanged" test "$(count_objects "$TOK")" -eq "$B"
finish
