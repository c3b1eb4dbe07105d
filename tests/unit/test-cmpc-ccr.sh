#!/bin/sh
# cmpc_ccr (cross-certification) against the project's test CA, and
# against test CAs with faults in the ccp; keys in software and on a
# SoftHSM2 token.  Starts the test CAs on free loopback ports in a
# temporary directory and stops them afterwards.
set -u

NAME=test-cmpc-ccr REF=ccr-ref SECRET=ccr-S3cret-Value
. "$(cd "${top_srcdir:-$(dirname "$0")/../..}" && pwd)/tests/unit/ca-runner.sh"
# ca: serves ccr; the others answer it with a certificate for another
# key, for another subject, from a CA the client does not trust.
start_ca ca
T_CA_URL=http://127.0.0.1:$PORT/.well-known/cmp
start_ca wrongkey --fault wrong-key
T_WRONGKEY_URL=http://127.0.0.1:$PORT/.well-known/cmp
start_ca wrongsubj --fault wrong-subject
T_WRONGSUBJ_URL=http://127.0.0.1:$PORT/.well-known/cmp
start_ca untrusted --fault untrusted
T_UNTRUSTED_URL=http://127.0.0.1:$PORT/.well-known/cmp
# and ccp answers that are not the CA's word for this request
for f in reject=badCertTemplate wrong-certreqid unprotected bad-protection wrong-nonce wrong-tid weird-text \
	garbage; do
	n=${f%%=*}
	start_ca "$n" --fault "$f"
	eval "T_URL_$(echo "$n" | tr a-z- A-Z_)=http://127.0.0.1:$PORT/.well-known/cmp"
	export "T_URL_$(echo "$n" | tr a-z- A-Z_)"
done

# the token of the requesting CA's keys
if [ -z "${SOFTHSM2_MODULE:-}" ] || [ -z "${SOFTHSM2_UTIL:-}" ]; then
	echo "Bail out! SOFTHSM2_MODULE or SOFTHSM2_UTIL not set (softhsm2; tools/deps.sh)"
	exit 1
fi
mkdir "$T/tokens" "$T/tpm2-store"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
	"$T/tokens" >"$T/softhsm2.conf"
SOFTHSM2_CONF=$T/softhsm2.conf TPM2_PKCS11_STORE=$T/tpm2-store T_PIN=ccr-pin-1234
export SOFTHSM2_CONF TPM2_PKCS11_STORE T_PIN SOFTHSM2_MODULE
if ! "$SOFTHSM2_UTIL" --init-token --free --label ccr --so-pin ccr-so-pin-1234 \
	--pin "$T_PIN" >/dev/null; then
	echo "Bail out! softhsm2-util --init-token failed"
	exit 1
fi

T_DIR=$T T_REF=$REF T_SECRET=$SECRET T_CA_DIR=$T/ca T_CA_LOG=$T/ca.log
export T_DIR T_REF T_SECRET T_CA_URL T_CA_DIR T_CA_LOG T_WRONGKEY_URL T_WRONGSUBJ_URL
T_WRONGKEY_LOG=$T/wrongkey.log
export T_UNTRUSTED_URL T_WRONGKEY_LOG

run_prog ca wrongkey wrongsubj untrusted reject wrong-certreqid
