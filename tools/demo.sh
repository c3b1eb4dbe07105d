#!/bin/sh
# The demo: a SoftHSM2 token, the test CA on a loopback port, and one real
# enrollment: the key pair is generated on the token, the POP is signed by
# the token, the certificate goes back onto the token.
set -u
P11E_TOP=$(cd "$(dirname "$0")/.." && pwd)
. "$P11E_TOP/tools/demo-lib.sh"
B="$P11E_TOP/build"
demo_build "$B"

S="$P11E_TOP/demo-state"
demo_state "$S" "$B"
echo "creating SoftHSM2 token 'demo' in $S/tokens"
softhsm2-util --init-token --free --label demo --so-pin "$(cat "$S/pin")-so" \
	--pin "$(cat "$S/pin")" > /dev/null || exit 1

demo_ca "$B" "$S"
echo "test CA listening on 127.0.0.1:$PORT"

cat > "$S/p11enroll.conf" <<EOC
[demo]
module = $SOFTHSM2_MODULE
token = pkcs11:token=demo
pin_source = file:$S/pin
key_type = ec:P-256
label = demo
subject = /CN=p11enroll demo/O=Example
san = DNS:demo.example, email:demo@example.org
server = http://127.0.0.1:$PORT/.well-known/cmp
reference = 4711
secret_source = file:$S/secret
trusted = $S/ca/root.pem
cert_out = $S/demo.pem
chain_out = $S/demo-chain.pem
state_dir = $S/state
EOC

echo
echo "\$ p11enroll -c $S/p11enroll.conf -v enroll demo"
"$B/p11enroll" -c "$S/p11enroll.conf" -v enroll demo || exit 1
echo
echo "--- the issued certificate ---"
openssl x509 -in "$S/demo.pem" -noout -subject -issuer -serial -dates -ext subjectAltName,keyUsage
openssl verify -CAfile "$S/ca/root.pem" -untrusted "$S/demo-chain.pem" "$S/demo.pem"
echo
echo "--- the token's objects ---"
echo "\$ p11enroll -c $S/p11enroll.conf list demo"
"$B/p11enroll" -c "$S/p11enroll.conf" list demo || exit 1
echo
echo "What the CA saw:"
sed 's/^/  /' "$S/ca.log"
echo
echo "demo done; state (token, CA, configuration) is in $S"
