#!/bin/sh
# The demo: a SoftHSM2 token, the test CA on a loopback port, and one real
# enrollment: the key pair is generated on the token, the POP is signed by
# the token, the certificate goes back onto the token.
#
# tools/demo.sh --ca-only: the demo's CA again, on the demo's state (its
# keys and certificates are kept in demo-state/ca), in the foreground until
# Ctrl-C, so that `p11enroll renew demo` works on the demo token; it
# prints the command.  P11E_DEMO_STATE and P11E_DEMO_BUILD (the tests)
# replace demo-state/ and build/.
set -u
P11E_TOP=$(cd "$(dirname "$0")/.." && pwd)
. "$P11E_TOP/tools/demo-lib.sh"
B=${P11E_DEMO_BUILD:-"$P11E_TOP/build"}
S=${P11E_DEMO_STATE:-"$P11E_TOP/demo-state"}

# the command that renews on the demo token, as the user types it
renew_cmd() {
	echo "SOFTHSM2_CONF=$S/softhsm2.conf $B/p11enroll -c $S/p11enroll.conf renew demo"
}

if [ "${1:-}" = --ca-only ]; then
	[ -f "$S/p11enroll.conf" ] && [ -d "$S/ca" ] ||
		{ echo "no demo state in $S: run tools/demo.sh first" >&2; exit 2; }
	[ -x "$B/tests/ca/p11enroll-testca" ] ||
		{ echo "no test CA in $B: run tools/demo.sh first" >&2; exit 2; }
	umask 077
	demo_ca "$B" "$S"
	# Ctrl-C ends the script through its EXIT trap, which stops the CA
	trap 'exit 130' INT TERM
	# a new port each start: the configuration follows it
	sed "s|^server = .*|server = http://127.0.0.1:$PORT/.well-known/cmp|" \
		"$S/p11enroll.conf" > "$S/p11enroll.conf.new" &&
		mv "$S/p11enroll.conf.new" "$S/p11enroll.conf" || exit 1
	echo "test CA listening on 127.0.0.1:$PORT (Ctrl-C stops it); renew the demo token with:"
	echo "  $(renew_cmd)"
	wait "$CA_PID"
	exit 0
fi
demo_build "$B"
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
echo "The CA stops now. To renew on the demo token later, start it again with"
echo "  tools/demo.sh --ca-only"
echo "and, while it runs, in another shell:"
echo "  $(renew_cmd)"
