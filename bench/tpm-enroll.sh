#!/bin/sh
# Prints the median wall-clock time of one complete enrollment on a TPM
# token (tpm2-pkcs11 on swtpm behind tpm2-abrmd, tests/tpm-lib.sh): keygen
# on the TPM, ir/ip/certConf/pkiConf with the test CA on loopback, storing
# certificate and chain on the token; each run a fresh label on one token.
# EC P-256 and RSA-2048, both with the default configuration (the module
# refuses the strict template, the second try makes the sign-only pair:
# both in the figure; RSA signs CKM_SHA256_RSA_PKCS, p11enroll.conf(5)).
# usage: bench/tpm-enroll.sh [BUILD_DIR] [RUNS]   (default build/, 10 runs)
. "$(dirname "$0")/lib.sh" "${1:-}" "${2:-10}"
. "$top_srcdir/tests/tpm-lib.sh"
tpm_start || exit 1
tpm_token bench || exit 1
tpm_helpers_on_tpm

for kt in ec:P-256 rsa:2048; do
	time_enrollments bench "$kt" "TPM "
done
