#!/bin/sh
# Compares one enrollment by p11enroll with what a user scripts today from
# independent tools: pkcs11-tool generates the key on the token, `openssl
# cmp` with the pkcs11 engine sends the ir (POP signed on the token), and
# pkcs11-tool writes the certificate back.  Same token type, same test CA,
# same key type (EC P-256); prints the median of each and their ratio.
# usage: bench/vs-openssl-cmp.sh [BUILD_DIR] [RUNS]   (default build/, 15 runs)
. "$(dirname "$0")/lib.sh" "$@"
now_us() { echo $(($(date +%s%N) / 1000)); }

make_token ours || exit 1
write_conf ours
: > "$TMP/ours"
i=0
while [ $i -lt "$RUNS" ]; do
	t0=$(now_us)
	p11e -q enroll test
	t1=$(now_us)
	[ "$RC" -eq 0 ] || { cat "$TMP/err"; exit 1; }
	echo $((t1 - t0)) >> "$TMP/ours"
	i=$((i + 1))
done

make_token theirs || exit 1
: > "$TMP/theirs"
i=0
while [ $i -lt "$RUNS" ]; do
	id=$(printf '%02x' $((i + 1)))
	t0=$(now_us)
	"$PKCS11_TOOL" --module "$SOFTHSM2_MODULE" --token-label theirs --login --pin "$USER_PIN" \
		--keypairgen --key-type EC:prime256v1 --id "$id" --label k$i > /dev/null 2>&1 &&
	PKCS11_MODULE_PATH=$SOFTHSM2_MODULE "$OPENSSL_BIN" cmp -engine pkcs11 -cmd ir \
		-server "127.0.0.1:$CA_PORT/.well-known/cmp" -ref "$CMP_REF" \
		-secret "file:$TMP/secret" -keyform engine -newkeypass "pass:$USER_PIN" \
		-newkey "pkcs11:token=theirs;id=%$id;type=private" -subject "/CN=theirs" \
		-trusted "$TMP/ca/root.pem" -certout "$TMP/c.pem" > /dev/null 2>&1 &&
	"$OPENSSL_BIN" x509 -in "$TMP/c.pem" -outform DER -out "$TMP/c.der" &&
	"$PKCS11_TOOL" --module "$SOFTHSM2_MODULE" --token-label theirs --login --pin "$USER_PIN" \
		--write-object "$TMP/c.der" --type cert --id "$id" --label k$i > /dev/null 2>&1 ||
		{ echo "baseline run $i failed"; exit 1; }
	t1=$(now_us)
	echo $((t1 - t0)) >> "$TMP/theirs"
	i=$((i + 1))
done
ours=$(median < "$TMP/ours")
theirs=$(median < "$TMP/theirs")
awk -v o="$ours" -v t="$theirs" -v n="$RUNS" 'BEGIN {
	printf "EC P-256 enrollment, %d runs each (median wall time)\n", n
	printf "  p11enroll enroll                          %7.1f ms\n", o / 1000
	printf "  pkcs11-tool + openssl cmp + pkcs11-tool   %7.1f ms\n", t / 1000
	printf "  ratio (script / p11enroll)                %7.2f\n", t / o }'
