#!/bin/sh
# Prints the median wall-clock time of one complete enrollment (keygen on a
# SoftHSM2 token, ir/ip/certConf/pkiConf with the test CA on loopback,
# storing certificate and chain) for EC P-256 and RSA-2048, each run a
# fresh label on one token.
# usage: bench/enroll-time.sh [BUILD_DIR] [RUNS]   (default build/, 15 runs)
. "$(dirname "$0")/lib.sh" "$@"

for kt in ec:P-256 rsa:2048; do
	tok=bench-$(echo "$kt" | tr -c 'a-z0-9\n' '-')
	make_token "$tok" || exit 1
	time_enrollments "$tok" "$kt"
done
