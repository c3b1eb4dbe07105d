#!/bin/sh
# Prints the median wall-clock time of one complete enrollment (keygen on a
# SoftHSM2 token, ir/ip/certConf/pkiConf with the test CA on loopback,
# storing certificate and chain) for EC P-256 and RSA-2048.
# usage: bench/enroll-time.sh [BUILD_DIR] [RUNS]   (default build/, 15 runs)
. "$(dirname "$0")/lib.sh" "$@"

for kt in ec:P-256 rsa:2048; do
	tok=bench-$(echo "$kt" | tr -c 'a-z0-9\n' '-')
	make_token "$tok" || exit 1
	write_conf "$tok" "key_type = $kt"
	: > "$TMP/times"
	i=0
	while [ $i -lt "$RUNS" ]; do
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
	printf '%-9s runs %d  median %6.1f ms  min %6.1f ms  max %6.1f ms\n' "$kt" "$RUNS" \
		"$(echo "$med" | awk '{print $1 / 1000}')" "$(echo "$min" | awk '{print $1 / 1000}')" \
		"$(echo "$max" | awk '{print $1 / 1000}')"
done
