#!/bin/sh
# Prints the median wall-clock time of one complete enrollment on a TPM
# token (tpm2-pkcs11 on swtpm behind tpm2-abrmd, tests/tpm-lib.sh): keygen
# on the TPM, ir/ip/certConf/pkiConf with the test CA on loopback, storing
# certificate and chain on the token; each run a fresh label on one token.
# EC P-256 and RSA-2048 with the default configuration (the module refuses
# the strict template, the second try makes the pair: both in the figure).
# usage: bench/tpm-enroll.sh [BUILD_DIR] [RUNS]   (default build/, 10 runs)
. "$(dirname "$0")/lib.sh" "${1:-}" "${2:-10}"
. "$top_srcdir/tests/tpm-lib.sh"
tpm_start || exit 1
tpm_token bench || exit 1
tpm_helpers_on_tpm

for kt in ec:P-256 rsa:2048; do
	: > "$TMP/times"
	i=0
	while [ $i -lt "$RUNS" ]; do
		write_conf bench "key_type = $kt
label = $(echo "$kt" | tr -d ':-')-$i"
		t0=$(date +%s%N)
		p11e -q enroll test
		t1=$(date +%s%N)
		[ "$RC" -eq 0 ] || { cat "$TMP/err"; exit 1; }
		echo $(((t1 - t0) / 1000)) >> "$TMP/times"
		i=$((i + 1))
	done
	med=$(median < "$TMP/times")
	min=$(sort -n "$TMP/times" | head -n 1)
	max=$(sort -n "$TMP/times" | tail -n 1)
	printf 'TPM %-9s runs %d  median %6.1f ms  min %6.1f ms  max %6.1f ms\n' "$kt" "$RUNS" \
		"$(echo "$med" | awk '{print $1 / 1000}')" "$(echo "$min" | awk '{print $1 / 1000}')" \
		"$(echo "$max" | awk '{print $1 / 1000}')"
done
