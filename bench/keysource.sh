#!/bin/sh
# Prints the median wall-clock time of one complete enrollment by where
# its key comes from: generated on the SoftHSM2 token (as always), made
# by the CA and unwrapped into the token (key_source = central, RFC 9483
# 4.1.6: a session transport key, two C_UnwrapKey), and generated on the
# token then wrapped out for the CA's key archive (archive_key = yes,
# RSA only: an encryption key).  EC P-256 and RSA-2048; one token grows
# across all runs, no label is enrolled twice; the test CA on loopback.
# usage: bench/keysource.sh [BUILD_DIR] [RUNS]   (default build/, 15 runs)
. "$(dirname "$0")/lib.sh" "$@"

tok=bench-keysource
make_token "$tok" || exit 1
stop_ca
start_ca --archive || exit 1

TE_CONF=
time_enrollments "$tok" ec:P-256 "token    "
time_enrollments "$tok" rsa:2048 "token    "
TE_CONF="key_source = central"
time_enrollments "$tok" ec:P-256 "central  "
time_enrollments "$tok" rsa:2048 "central  "
TE_CONF="allow_decrypt = yes
key_usage = keyEncipherment
archive_key = yes
archive_cert = $TMP/ca/archive-cert.pem"
time_enrollments "$tok" rsa:2048 "archive  "
