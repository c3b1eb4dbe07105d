#!/bin/sh
# /unwrap: a private key that a CA generated centrally (or recovered)
# reaches the token by C_UnwrapKey only (pkcs11/tok_unwrap.c, driven by
# tests/unwrap).  On SoftHSM2: the AES key under the token's RSA transport
# key (OAEP SHA-1, PKCS#1 v1.5), the PKCS#8 key under AES key wrap with
# padding, for EC and RSA keys.  The tests/p11wrap log shows two
# C_UnwrapKey calls, no C_CreateObject of a private key and no template
# with a CKA_VALUE but a certificate's; the key is sensitive, not
# extractable, signs only, and carries the CKA_ID that was printed; the
# transport key and the AES key are destroyed.  What SoftHSM2 2.6 cannot
# unwrap (AES-CBC-PAD, OAEP with SHA-256), a key encrypted to another
# recipient, garbage, and a key that does not belong to its certificate
# each fail with the reason and leave the token as it was.  The same
# through an ip's CertifiedKeyPair.privateKey (--via-ip).  The software
# path (tok_transport_decrypt, tok_import_private) for EC and RSA, and its
# failures, likewise.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
UNWRAP="$top_builddir/tests/unwrap"
WRAP="$top_builddir/tests/p11wrap/p11wrap.so"
need_file "$UNWRAP"
need_file "$WRAP"
setup
plan 64
make_token u || exit 1

# run NAME ARGS...: tests/unwrap through p11wrap; the call log in
# $TMP/NAME.log, output in $TMP/NAME.out, RC.
run() {
	_n=$1
	shift
	: > "$TMP/$_n.log"
	P11WRAP_MODULE="$SOFTHSM2_MODULE" P11WRAP_LOG="$TMP/$_n.log" P11WRAP_LOG_TEMPLATE=1 \
		"$UNWRAP" --module "$WRAP" --token pkcs11:token=u --pin-file "$TMP/pin" \
		--label "$_n" "$@" > "$TMP/$_n.out" 2> "$TMP/err"
	RC=$?
}

# calls NAME LINE: how many lines of NAME's log are exactly LINE.
calls() {
	grep -c -x -F "$2" "$TMP/$1.log"
}

# one_object NAME TYPE: the token's TYPE object labelled NAME, as
# pkcs11-tool lists it.
one_object() {
	objects u "$2" | awk -v l="$1" '/Object;/ { if (mine) exit; buf = "" }
		{ buf = buf $0 "\n" } /^ *label:/ { sub(/^ *label: */, ""); mine = ($0 == l) }
		END { if (mine) printf "%s", buf }'
}

# protected NAME: the private key labelled NAME is sensitive (pkcs11-tool
# shows no "extractable") and only signs.
protected() {
	_pr=$(one_object "$1" privkey)
	printf '%s\n' "$_pr" | grep -q "Access: *sensitive$" &&
		printf '%s\n' "$_pr" | grep -q "Usage: *sign$"
}

for alg in ec rsa; do
	for kt in oaep pkcs1; do
		n=$alg-$kt
		run "$n" --alg "$alg" --kt "$kt" --enc kwp
		check "/unwrap/$n/exit-0" expect_rc 0
		check "/unwrap/$n/two-unwraps" test "$(calls "$n" 'C_UnwrapKey rv=CKR_OK')" = 2
		# the only C_CreateObject is the public key; no template holds a value
		check "/unwrap/$n/nothing-in-clear" test "$(grep -c -e 'value=yes' \
			-e '^TEMPLATE C_CreateObject class=CKO_PRIVATE_KEY' "$TMP/$n.log")" = 0
		id=$(sed -n 's/^imported //p' "$TMP/$n.out")
		check "/unwrap/$n/pair-with-id" test "$(label_id u privkey "$n")" = "$id" -a \
			"$(label_id u pubkey "$n")" = "$id" -a -n "$id"
		check "/unwrap/$n/protected" protected "$n"
		# the AES key and both halves of the transport key
		gone=$(calls "$n" 'C_DestroyObject rv=CKR_OK')
		check "/unwrap/$n/transport-gone" test "$gone" = 3
	done
done

# The whole client path: the encrypted key inside an ip, read by the
# protocol layer (cmpc_privkey_get), mapped by the agent's
# (agent_wrapped_from_privkey), unwrapped by the token layer.
for n in ec-oaep rsa-pkcs1; do
	run "ip-$n" --alg "${n%-*}" --kt "${n#*-}" --enc kwp --via-ip
	check "/unwrap/ip-$n/exit-0" expect_rc 0
	check "/unwrap/ip-$n/two-unwraps" test "$(calls "ip-$n" 'C_UnwrapKey rv=CKR_OK')" = 2
	id=$(sed -n 's/^imported //p' "$TMP/ip-$n.out")
	check "/unwrap/ip-$n/pair-with-id" test "$(label_id u privkey "ip-$n")" = "$id" -a \
		"$(label_id u pubkey "ip-$n")" = "$id" -a -n "$id"
done

# The software path (allow_software_import): the AES key is unwrapped on
# the token and decrypts there (C_Decrypt); the key is created from memory.
for alg in ec rsa; do
	n=software-$alg
	run "$n" --alg "$alg" --kt oaep --enc cbc --software
	check "/unwrap/$n/exit-0" expect_rc 0
	check "/unwrap/$n/decrypted-on-token" test "$(calls "$n" 'C_Decrypt rv=CKR_OK')" = 1
	created=$(grep -c '^TEMPLATE C_CreateObject class=CKO_PRIVATE_KEY' "$TMP/$n.log")
	check "/unwrap/$n/created" test "$created" = 1
	id=$(sed -n 's/^imported //p' "$TMP/$n.out")
	check "/unwrap/$n/pair-with-id" test "$(label_id u privkey "$n")" = "$id" -a \
		"$(label_id u pubkey "$n")" = "$id" -a -n "$id"
	check "/unwrap/$n/protected" protected "$n"
done

before=$(count_objects u)
# fail NAME MESSAGE ARGS...: refused (exit 3) with MESSAGE in its
# output, the token as it was.
fail() {
	_n=$1 _m=$2
	shift 2
	run "$_n" "$@"
	check "/unwrap/$_n/exit-3" expect_rc 3
	check "/unwrap/$_n/says-why" grep -q -F -e "$_m" "$TMP/$_n.out"
	check "/unwrap/$_n/token-unchanged" test "$(count_objects u)" = "$before"
}
Q="'"
fail cbc "C_UnwrapKey (CKM_AES_CBC_PAD, the private key) on token ${Q}u$Q failed: \
CKR_MECHANISM_INVALID: the token does not unwrap with this mechanism" \
	--alg ec --enc cbc
fail oaep256 'failed: CKR_ARGUMENTS_BAD: the token does not unwrap with this RSA mechanism' \
	--alg ec --enc kwp --kt oaep256
fail recipient "C_UnwrapKey (the content-encryption key, with the transport key) on token \
${Q}u$Q failed: CKR_GENERAL_ERROR: the key was encrypted to another recipient" \
	--alg rsa --enc kwp --fault recipient
fail garbage "C_UnwrapKey (CKM_AES_KEY_WRAP_PAD, the private key) on token ${Q}u$Q failed: \
CKR_GENERAL_ERROR: the encrypted key is damaged" \
	--alg ec --enc kwp --fault garbage
MISMATCH='the key the CA sent does not belong to the public key of its certificate: the key was
removed again'
MISMATCH=$(printf '%s' "$MISMATCH" | tr '\n' ' ')
fail mismatch "$MISMATCH" --alg ec --enc kwp --fault mismatch
# OAEP with SHA-256 named in the ip's keyAlg reaches the token as such
fail ip-oaep256 'failed: CKR_ARGUMENTS_BAD: the token does not unwrap with this RSA mechanism' \
	--alg rsa --enc kwp --kt oaep256 --via-ip
fail software-garbage 'the decrypted content is no private key' \
	--alg ec --enc cbc --software --fault garbage
fail software-mismatch "$MISMATCH" --alg rsa --enc cbc --software --fault mismatch
finish
