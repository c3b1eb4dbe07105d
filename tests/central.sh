#!/bin/sh
# /central: key_source = central (RFC 9483 4.1.6).  The test CA makes the
# key pair (EC P-256, RSA 2048) for an ir whose template names only the key
# type (no POP, the token's transport key in protocolEncrKey) and sends the
# private key in an EncryptedValue to that key; the key is unwrapped on
# SoftHSM2 (tests/p11wrap: C_UnwrapKey, no C_CreateObject of a private key,
# no private key template with a CKA_VALUE), sits beside its certificate
# (same CKA_ID and label), signs what the certificate's key verifies, and
# no byte of it is in the output or the state files.  renew gets a new
# central key by kur (also through the running agent), the old pair goes
# once the new one is stored; a run killed between key and certificate is
# cleaned up by the next.  AES-CBC (SoftHSM2 cannot unwrap it) and RFC
# 9483's EnvelopedData are refused without allow_software_import and with
# it pass through memory, which the output says; an EnvelopedData answer
# whose protection does not verify is refused.  Each fault of the CA (a
# certificate for another key, a key for another recipient, garbage, a key
# that is not the certificate's, no key, an unprotected ip) is refused with
# the reason and leaves the token as it was; the CA learns it in the
# certConf.  p10cr, key_id and an unknown key_source are refused.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
. "$top_srcdir/tests/agent-lib.sh"
need_tools
WRAP="$top_builddir/tests/p11wrap/p11wrap.so"
need_file "$WRAP"
setup
plan 114
trap 'kill_agents; cleanup' EXIT
trap 'exit 1' HUP PIPE
P11WRAP_MODULE="$SOFTHSM2_MODULE"
P11WRAP_LOG_TEMPLATE=1
export P11WRAP_MODULE P11WRAP_LOG_TEMPLATE
TOK=central
make_token "$TOK" || exit 1
start_ca || exit 1

# conf [EXTRA_LINES]: the enrollment through p11wrap, key_source = central.
conf() {
	write_conf "$TOK" "key_source = central
${1:-}"
	sed -i "s|^module = .*|module = $WRAP|" "$TMP/p11enroll.conf"
}

# run ARGS...: p11enroll with the p11wrap call log in $TMP/wrap.log.
run() {
	: > "$TMP/wrap.log"
	P11WRAP_LOG="$TMP/wrap.log" p11e "$@"
}

calls() {
	grep -c -x -F "$1" "$TMP/wrap.log"
}

# nothing_in_clear: no private key object made from a template, none
# with a value (certificates carry theirs).
nothing_in_clear() {
	test "$(grep -c -e '^TEMPLATE C_CreateObject class=CKO_PRIVATE_KEY' \
		-e '^TEMPLATE .*class=CKO_PRIVATE_KEY.* value=yes' "$TMP/wrap.log")" = 0
}

# priv_hex PEM: the private part of an EC (the scalar) or RSA (the
# private exponent) key, in hex, as openssl prints it.
priv_hex() {
	"$OPENSSL_BIN" pkey -in "$1" -noout -text 2> /dev/null | awk '
		/^(priv|privateExponent):/ { on = 1; next } on && /^[a-zA-Z]/ { exit }
		on { gsub(/[ :]/, ""); printf "%s", $0 }'
}

# no_key_bytes PEM FILES...: not the private part in hex, nor any 16 of
# its bytes raw, in FILES (hex dumps searched).
no_key_bytes() {
	_hex=$(priv_hex "$1" | cut -c 5-36)
	shift
	[ ${#_hex} -eq 32 ] || { echo "# cannot read the archived key"; return 1; }
	for _f in "$@"; do
		grep -q -i -F "$_hex" "$_f" && { echo "# key in hex in $_f"; return 1; }
		od -An -v -tx1 "$_f" | tr -d ' \n' | grep -q -i -F "$_hex" &&
			{ echo "# key bytes in $_f"; return 1; }
	done
	return 0
}

# signs TOKEN ID CERT ALG: the token's key ID signs what CERT's key verifies.
signs() {
	echo "signed by the token key $2" > "$TMP/data"
	"$OPENSSL_BIN" x509 -in "$3" -noout -pubkey > "$TMP/pub.pem"
	if [ "$4" = rsa ]; then
		"$PKCS11_TOOL" --module "$SOFTHSM2_MODULE" --slot "$(token_slot "$1")" --login \
			--pin "$USER_PIN" --sign -m SHA256-RSA-PKCS --id "$2" -i "$TMP/data" \
			-o "$TMP/sig" > /dev/null 2>&1 || return 1
		"$OPENSSL_BIN" dgst -sha256 -verify "$TMP/pub.pem" -signature "$TMP/sig" \
			"$TMP/data" > /dev/null 2>&1
	else
		key_signs_for "$1" "$2" "$TMP/pub.pem"
	fi
}

archived() {
	_serial=$("$OPENSSL_BIN" x509 -in "$1" -noout -serial | sed 's/^serial=//')
	echo "$TMP/ca/archive/$_serial.pem"
}

# --- EC and RSA ---------------------------------------------------------
for alg in ec rsa; do
	label=central-$alg
	kt=ec:P-256
	[ $alg = rsa ] && kt=rsa:2048
	conf "label = $label
key_type = $kt"
	before=$(count_objects "$TOK")
	run enroll test --cert-out "$TMP/$alg.pem"
	check "/central/$alg/exit-0" expect_rc 0
	check "/central/$alg/two-unwraps" test "$(calls 'C_UnwrapKey rv=CKR_OK')" = 2
	check "/central/$alg/nothing-in-clear" nothing_in_clear
	id=$(label_id "$TOK" privkey "$label")
	check "/central/$alg/pair-and-cert" test -n "$id" -a \
		"$(label_id "$TOK" pubkey "$label")" = "$id" -a \
		"$(label_id "$TOK" cert "$label")" = "$id"
	# the pair, its certificate, the chain (2) on the first run only
	added=3
	[ $alg = ec ] && added=5
	check "/central/$alg/transport-gone" test "$(count_objects "$TOK")" -eq $((before + added))
	check "/central/$alg/signs" signs "$TOK" "$id" "$TMP/$alg.pem" $alg
	check "/central/$alg/key-type" sh -c "'$OPENSSL_BIN' x509 -in '$TMP/$alg.pem' -noout \
		-text | grep -q '$([ $alg = rsa ] && echo 'rsaEncryption' || echo 'id-ecPublicKey')'"
	check "/central/$alg/ca-made-it" grep -q "central key generation: .* key made" "$TMP/ca.log"
	# RFC 9483 4.1.6: the key type only, no POP, the transport key
	check "/central/$alg/request" sh -c "grep -q 'ir: central key generation: template \
publicKey with the algorithm and an empty key, POP none' '$TMP/ca.log' && \
		grep -q 'protocolEncrKey RSA 2048 bits' '$TMP/ca.log'"
	key=$(archived "$TMP/$alg.pem")
	check "/central/$alg/archived" test -s "$key"
	check "/central/$alg/no-key-bytes" no_key_bytes "$key" "$TMP/out" "$TMP/err" \
		$(find "$TMP/state" -type f 2> /dev/null)
	check "/central/$alg/no-secret" no_secret_in "$TMP/out" "$TMP/err"
done

# --- renew: a new central key -------------------------------------------
conf "label = central-ec"
old_id=$(label_id "$TOK" privkey central-ec)
before=$(count_objects "$TOK")
run renew test --cert-out "$TMP/renewed.pem"
check "/central/renew/exit-0" expect_rc 0
check "/central/renew/kur" grep -q 'kur -> kup accepted' "$TMP/ca.log"
check "/central/renew/two-unwraps" test "$(calls 'C_UnwrapKey rv=CKR_OK')" = 2
check "/central/renew/nothing-in-clear" nothing_in_clear
new_id=$(label_id "$TOK" privkey central-ec)
check "/central/renew/new-key" test -n "$new_id" -a "$new_id" != "$old_id"
check "/central/renew/new-public-key" test \
	"$("$OPENSSL_BIN" x509 -in "$TMP/renewed.pem" -noout -pubkey)" != \
	"$("$OPENSSL_BIN" x509 -in "$TMP/ec.pem" -noout -pubkey)"
check "/central/renew/old-pair-gone" test "$(count_objects "$TOK")" -eq "$before" -a \
	"$(label_count "$TOK" central-ec)" -eq 3
check "/central/renew/signs" signs "$TOK" "$new_id" "$TMP/renewed.pem" ec
check "/central/renew/no-key-bytes" no_key_bytes "$(archived "$TMP/renewed.pem")" \
	"$TMP/out" "$TMP/err" $(find "$TMP/state" -type f 2> /dev/null)

# --- the CA decides the RSA size: key_type rsa:3072 gets 2048, said ----
conf "label = central-rsa3072
key_type = rsa:3072"
run enroll test
check "/central/rsa3072/exit-0" expect_rc 0
check "/central/rsa3072/says" grep -q 'the CA made an RSA 2048 key, key_type asked for RSA 3072' \
	"$TMP/err"

# --- a run killed between the key and its certificate ------------------
# The key is on the token under "LABEL (new)" with no certificate: the
# next run's recovery removes it, and the enrollment is made again.
conf "label = central-crash"
before=$(count_objects "$TOK")
P11WRAP_KILL=C_UnwrapKey:after:2 run enroll test
unset P11WRAP_KILL
check "/central/crash/killed" expect_rc 137
# new_objects LABEL: the objects under "LABEL (new)" (label_count reads
# its argument as a regular expression)
new_objects() {
	objects "$TOK" | grep -c -F "label:      $1 (new)"
}
check "/central/crash/orphan-left" test "$(new_objects central-crash)" -ge 1
run enroll test
check "/central/crash/next-run-exit-0" expect_rc 0
check "/central/crash/no-orphan" test "$(new_objects central-crash)" -eq 0 -a \
	"$(label_count "$TOK" central-crash)" -eq 3
check "/central/crash/one-pair" test "$(count_objects "$TOK")" -eq $((before + 3))

# --- cr: signed with a certificate and key on the token ----------------
# (after a central kur: the test CA once freed the kur that OpenSSL 3.0
# keeps its validated signer from, and crashed on the next signed request)
conf "label = central-cr"
run cr test --signer central-rsa
check "/central/cr/exit-0" expect_rc 0
check "/central/cr/cp" grep -q 'cr: central key generation: .* key made' "$TMP/ca.log"
check "/central/cr/two-unwraps" test "$(calls 'C_UnwrapKey rv=CKR_OK')" = 2
check "/central/cr/pair-and-cert" test -n "$(label_id "$TOK" privkey central-cr)" -a \
	"$(label_id "$TOK" cert central-cr)" = "$(label_id "$TOK" privkey central-cr)"

# --- configurations central key generation cannot serve -----------------
conf "label = central-x"
run p10cr test
check "/central/p10cr/exit-2" expect_rc 2
check "/central/p10cr/says" grep -q 'PKCS#10 request carries its public key' "$TMP/err"
conf "label = central-x
key_id = 0102"
run enroll test
check "/central/key-id/exit-2" expect_rc 2
check "/central/key-id/says" grep -q 'remove one of them' "$TMP/err"
conf "label = central-x
archive_key = yes"
run enroll test
check "/central/archive/exit-2" expect_rc 2
check "/central/archive/says" grep -q 'the CA made the key, so it is the CA.s to keep' "$TMP/err"
conf "label = central-x
key_source = somewhere"
run enroll test
check "/central/bad-source/exit-2" expect_rc 2
check "/central/bad-source/says" grep -q "not one of token, central" "$TMP/err"

# --- refusals: the token stays as it was ---------------------------------
# refused NAME RC MESSAGE: the last run failed with RC and MESSAGE, the
# token holds what it held before, the CA heard of it in the certConf.
refused() {
	check "/central/$1/exit-$2" expect_rc "$2"
	check "/central/$1/says" grep -q -e "$3" "$TMP/err"
	check "/central/$1/token-unchanged" test "$(count_objects "$TOK")" -eq "$before"
}

# An EncryptedValue under AES-CBC: SoftHSM2 2.6 cannot unwrap with
# CKM_AES_CBC_PAD, so without allow_software_import the token refuses it
# (and the text names the setting); with it the token decrypts it.
stop_ca
start_ca --ckg-cbc || exit 1
conf "label = central-cbc"
before=$(count_objects "$TOK")
run enroll test
refused cbc 3 'allow_software_import = yes decrypts in host memory'
conf "label = central-cbc
allow_software_import = yes"
run enroll test --cert-out "$TMP/cbc.pem"
check "/central/cbc-software/exit-0" expect_rc 0
check "/central/cbc-software/decrypted-on-token" test "$(calls 'C_Decrypt rv=CKR_OK')" = 1
check "/central/cbc-software/created" test \
	"$(grep -c '^TEMPLATE C_CreateObject class=CKO_PRIVATE_KEY' "$TMP/wrap.log")" = 1
check "/central/cbc-software/says" grep -q "passed through this process's memory" "$TMP/err"
check "/central/cbc-software/signs" signs "$TOK" "$(label_id "$TOK" privkey central-cbc)" \
	"$TMP/cbc.pem" ec

before=$(count_objects "$TOK")
stop_ca
start_ca --ckg-enveloped || exit 1
conf "label = central-env"
# RFC 9483's EnvelopedData: refused without allow_software_import (the
# CA hears it in the certConf); with it, the content-encryption key is
# unwrapped on the token, which decrypts (C_Decrypt), the SignedData is
# verified, and the key is created from memory, which the output says.
run enroll test
refused enveloped 2 'set allow_software_import = yes'
check "/central/enveloped/ca-sent-it" grep -q 'sent in an EnvelopedData' "$TMP/ca.log"
check "/central/enveloped/certconf" grep -q 'client rejected the certificate' "$TMP/ca.log"
conf "label = central-env
allow_software_import = yes"
run enroll test --cert-out "$TMP/env.pem"
check "/central/software/exit-0" expect_rc 0
check "/central/software/decrypted-on-token" test "$(calls 'C_Decrypt rv=CKR_OK')" = 1
check "/central/software/created" test \
	"$(grep -c '^TEMPLATE C_CreateObject class=CKO_PRIVATE_KEY' "$TMP/wrap.log")" = 1
check "/central/software/says" grep -q "passed through this process's memory" "$TMP/err"
id=$(label_id "$TOK" privkey central-env)
check "/central/software/pair-and-cert" test -n "$id" -a \
	"$(label_id "$TOK" cert central-env)" = "$id"
check "/central/software/signs" signs "$TOK" "$id" "$TMP/env.pem" ec
check "/central/software/no-key-bytes" no_key_bytes "$(archived "$TMP/env.pem")" \
	"$TMP/out" "$TMP/err" $(find "$TMP/state" -type f 2> /dev/null)
# renew: the kup is signed by the CA's CMP certificate (verified by the
# layer, as OpenSSL cannot decode it)
old_id=$id
run renew test --cert-out "$TMP/env-renewed.pem"
check "/central/software-renew/exit-0" expect_rc 0
id=$(label_id "$TOK" privkey central-env)
check "/central/software-renew/new-key" test -n "$id" -a "$id" != "$old_id"
check "/central/software-renew/signs" signs "$TOK" "$id" "$TMP/env-renewed.pem" ec
# a wrongly protected answer (PBM, then signed) is refused before its key
# is looked at
for p in "" "--protection sig"; do
	stop_ca
	start_ca --ckg-enveloped --fault bad-protection $p || exit 1
	conf "label = central-env2
allow_software_import = yes"
	before=$(count_objects "$TOK")
	run enroll test
	refused "env-bad-protection${p:+-sig}" 7 'does not verify'
done
for f in other-pubkey:8:'does not match\|not the key' other-recipient:3:'decrypting' \
	garbage:7:'holds no private key'; do
	name=${f%%:*}
	rest=${f#*:}
	stop_ca
	start_ca --ckg-enveloped --ckg-fault "$name" || exit 1
	conf "label = central-env2
allow_software_import = yes"
	before=$(count_objects "$TOK")
	run enroll test
	refused "env-$name" "${rest%%:*}" "${rest#*:}"
done
before=$(count_objects "$TOK")

for f in other-pubkey:8:'does not match\|not the key' other-recipient:3:C_UnwrapKey \
	garbage:3:C_UnwrapKey key-mismatch:8:'does not match\|not the key' \
	no-key:7:'sent no private key'; do
	name=${f%%:*}
	rest=${f#*:}
	stop_ca
	start_ca --ckg-fault "$name" || exit 1
	conf "label = central-fault"
	run enroll test
	refused "$name" "${rest%%:*}" "${rest#*:}"
done

# --- the agent renews a central enrollment: a new central key ----------
# `p11enroll renew` with an agent running is done by the agent.
stop_ca
start_ca || exit 1
conf "label = central-agent"
run enroll test
check "/central/agent/enrolled" expect_rc 0
agent_id=$(label_id "$TOK" privkey central-agent)
kurs=$(grep -c 'kur: central key generation: .* key made' "$TMP/ca.log")
agent_start "$TMP/p11enroll.conf" "$TMP/agent.log" || exit 1
pe "$TMP/p11enroll.conf" renew test
check "/central/agent/renew-exit-0" expect_rc 0
check "/central/agent/by-the-agent" grep -q 'test: renew started' "$TMP/agent.log"
new_id=$(label_id "$TOK" privkey central-agent)
check "/central/agent/new-key" test -n "$new_id" -a "$new_id" != "$agent_id" -a \
	"$(label_count "$TOK" central-agent)" -eq 3 -a "$(new_objects central-agent)" -eq 0
check "/central/agent/by-kur" test \
	"$(grep -c 'kur: central key generation: .* key made' "$TMP/ca.log")" -gt "$kurs"
agent_stop "$APID"
check "/central/agent/stopped" test "$ARC" = 0

stop_ca
start_ca --fault unprotected || exit 1
conf "label = central-fault"
before=$(count_objects "$TOK")
run enroll test
refused unprotected 7 'unprotected\|not protected\|protection'
finish
