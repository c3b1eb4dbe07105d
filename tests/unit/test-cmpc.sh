#!/bin/sh
# cmpc against independent peers: OpenSSL's CMP mock server (openssl cmp
# -port), and a Python HTTP server that answers wrongly on purpose.
# Makes a small PKI in a temporary directory, starts the peers on free
# loopback ports, runs the C test program, stops what it started.
set -u

: "${OPENSSL_BIN:=}"
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=.}"
PY=$(command -v python3 || true)
PROG="$(cd "$top_builddir" && pwd)/tests/unit/test-cmpc"
TESTCA="$(cd "$top_builddir" && pwd)/tests/ca/p11enroll-testca"
HELPER="$(cd "$top_srcdir" && pwd)/tests/unit/cmpc-helper.py"
if [ -z "$OPENSSL_BIN" ] || [ ! -x "$OPENSSL_BIN" ]; then
	echo "Bail out! openssl binary not found (OPENSSL_BIN) (tools/deps.sh)"
	exit 1
fi
if [ -z "$PY" ]; then
	echo "Bail out! python3 not found (tools/deps.sh)"
	exit 1
fi
if ! "$OPENSSL_BIN" cmp -help 2>&1 | grep -q -- -rsp_cert; then
	echo "Bail out! openssl has no CMP mock server (tools/deps.sh)"
	exit 1
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/test-cmpc.XXXXXX") || exit 99
PIDS=
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null; done
	for p in $PIDS; do wait "$p" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 99' INT TERM HUP

O=$OPENSSL_BIN
die() { echo "Bail out! $*"; exit 99; }
cd "$T" || exit 99

cat >x.cnf <<'EOF'
[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[ee]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:client.example
[cmpsrv]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = cmcRA
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[srv]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:localhost,IP:127.0.0.1
EOF
key() { "$O" genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
# root NAME
root() {
	key "$1.key" && "$O" req -x509 -new -key "$1.key" -subj "/CN=Test $1" -days 2 \
		-config x.cnf -extensions ca -out "$1.pem" 2>/dev/null
}
# issue OUT SUBJECT ISSUER EXT PUBKEY
issue() {
	"$O" x509 -new -force_pubkey "$5" -subj "$2" -CA "$3.pem" -CAkey "$3.key" -days 2 \
		-extfile x.cnf -extensions "$4" -out "$1" 2>/dev/null
}
{
	root ca1 && root ca2 &&
	key sub1.key && "$O" pkey -in sub1.key -pubout -out sub1.pub &&
	issue sub1.pem "/CN=Test sub1" ca1 ca sub1.pub &&
	key client.key && "$O" pkey -in client.key -pubout -out client.pub &&
	issue c1.pem "/CN=client" ca1 ee client.pub &&
	issue c1sub.pem "/CN=client" sub1 ee client.pub &&
	issue c2.pem "/CN=client" ca2 ee client.pub &&
	key srv1.key && "$O" pkey -in srv1.key -pubout -out srv1.pub &&
	issue srv1.pem "/CN=localhost" ca1 srv srv1.pub &&
	issue cmpsrv1.pem "/CN=CMP RA" ca1 cmpsrv srv1.pub &&
	key signer.key && "$O" pkey -in signer.key -pubout -out signer.pub &&
	issue signer.pem "/CN=signer" ca1 ee signer.pub
} || die "cannot make the test PKI"

REF=test-ref
SECRET=s3cr3t-Value-XYZ
# Every server binds port 0 and reports the port it got (openssl cmp:
# "ACCEPT [::]:PORT PID=...", the helper: "port N"): no port is picked free
# here and bound later, which another process on a busy machine could take
# meanwhile.
# serve VAR CMD...: CMD in the background, its output in srv-VAR.log; VAR
# is set to the port it reports.
serve() {
	_sv=$1
	shift
	"$@" >"srv-$_sv.log" 2>&1 &
	_sp=$!
	PIDS="$PIDS $_sp"
	_sn=0
	while :; do
		_port=$(sed -n -e 's/^ACCEPT .*:\([0-9][0-9]*\) PID=.*/\1/p' \
			-e 's/^port \([0-9][0-9]*\)$/\1/p' "srv-$_sv.log" | head -n 1)
		[ -n "$_port" ] && break
		kill -0 "$_sp" 2>/dev/null || die "test server $_sv exited: $(cat "srv-$_sv.log")"
		_sn=$((_sn + 1))
		[ "$_sn" -gt $((150 * ${P11ENROLL_TEST_SCALE:-1})) ] && die "test server $_sv did not start"
		sleep 0.1
	done
	eval "$_sv=\$_port"
}
# The mock server listens on all interfaces (no bind address in 3.0).
mock() {
	_mv=$1
	shift
	serve "$_mv" "$O" cmp -port 0 -srv_ref "$REF" -srv_secret "pass:$SECRET" "$@"
}
mock P_OK -rsp_cert c1sub.pem -rsp_extracerts sub1.pem -rsp_capubs ca1.pem
mock P_ROGUE -rsp_cert c2.pem -rsp_capubs ca2.pem
mock P_REJ -rsp_cert c1.pem -pkistatus 2 -failure 9 -statusstring "POP did not verify (test)"
mock P_POLL -rsp_cert c1.pem -rsp_capubs ca1.pem -poll_count 1 -check_after 1
mock P_WAIT -rsp_cert c1.pem -poll_count 1000 -check_after 60
mock P_IMPL -rsp_cert c1.pem -rsp_capubs ca1.pem -grant_implicitconf
# Signature-protected responses: with a secret, 3.0 would protect them with
# PBM, so this one has none and takes the client's PBM-protected requests
# unverified.
serve P_SIGNED "$O" cmp -port 0 -srv_cert cmpsrv1.pem -srv_key srv1.key -accept_unprotected \
	-rsp_cert c1.pem
# The same, signed by an end-entity certificate of the PKI without
# id-kp-cmcRA (a TLS server's): it may not speak for the CA.
serve P_SIGNED_EE "$O" cmp -port 0 -srv_cert srv1.pem -srv_key srv1.key -accept_unprotected \
	-rsp_cert c1.pem
# Signature-protected requests (cr, kur) verified against ca1, answers signed.
serve P_SIGREQ "$O" cmp -port 0 -srv_cert cmpsrv1.pem -srv_key srv1.key -srv_trusted ca1.pem \
	-rsp_cert c1.pem -rsp_capubs ca1.pem
serve P_WRONG "$PY" "$HELPER" wrong 0 "$T/captured.der"
serve P_TLS "$PY" "$HELPER" tls 0 srv1.pem srv1.key "http://127.0.0.1:$P_OK/"
# bound, never listened on: connections are refused
serve P_DEAD "$PY" "$HELPER" dead
"$PY" "$HELPER" wait "$P_OK" "$P_ROGUE" "$P_REJ" "$P_POLL" "$P_WAIT" "$P_IMPL" "$P_SIGNED" \
	"$P_WRONG" "$P_TLS" "$P_SIGREQ" "$P_SIGNED_EE" || die "test servers did not start"

# The project's test CA (tests/ca), when built: one normal instance and,
# on the same state directory (so that a kur finds the certificates the
# first issued), instances with faults.  T_CA stays unset without it.
# testca NAME ARGS...: starts one, sets CAPORT
testca() {
	name=$1
	shift
	"$TESTCA" --dir "$T/ca" --port 0 --ref "$REF" --secret-file "$T/ca-secret" \
		--log "$T/ca-$name.log" -q "$@" >"$T/ca-$name.out" 2>&1 &
	PIDS="$PIDS $!"
	n=0
	while ! grep -q '^port ' "$T/ca-$name.out" 2>/dev/null; do
		n=$((n + 1))
		[ "$n" -gt $((100 * ${P11ENROLL_TEST_SCALE:-1})) ] && die "test CA $name did not start"
		sleep 0.1
	done
	CAPORT=$(sed -n 's/^port //p' "$T/ca-$name.out" | head -n 1)
}
if [ -x "$TESTCA" ]; then
	printf '%s' "$SECRET" >ca-secret
	testca main
	T_CA=http://127.0.0.1:$CAPORT
	testca wrongsubj --fault wrong-subject
	T_CA_WS=http://127.0.0.1:$CAPORT
	testca unprot --fault unprotected-error
	T_CA_UE=http://127.0.0.1:$CAPORT
	export T_CA T_CA_WS T_CA_UE
fi

# Loopback only: keep any proxy of the environment out of the way.
no_proxy=127.0.0.1,localhost NO_PROXY=127.0.0.1,localhost
export no_proxy NO_PROXY
T_DIR=$T T_REF=$REF T_SECRET=$SECRET
T_OK=http://127.0.0.1:$P_OK/ T_ROGUE=http://127.0.0.1:$P_ROGUE/
T_REJ=http://127.0.0.1:$P_REJ/ T_POLL=http://127.0.0.1:$P_POLL/
T_WAIT=http://127.0.0.1:$P_WAIT/ T_IMPL=http://127.0.0.1:$P_IMPL/
T_SIGNED=http://127.0.0.1:$P_SIGNED/ T_WRONG=http://127.0.0.1:$P_WRONG
T_TLS=https://localhost:$P_TLS/ T_DEAD=http://127.0.0.1:$P_DEAD/
T_SIGREQ=http://127.0.0.1:$P_SIGREQ/
T_SIGNED_EE=http://127.0.0.1:$P_SIGNED_EE/
export T_SIGREQ T_SIGNED_EE
export T_DIR T_REF T_SECRET T_OK T_ROGUE T_REJ T_POLL T_WAIT T_IMPL T_SIGNED T_WRONG T_TLS T_DEAD

"$PROG"
rc=$?
if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
	for f in srv-*.log ca-*.log ca-*.out; do
		[ -f "$f" ] || continue
		echo "# --- $f"
		sed 's/^/# /' "$f" | tail -n 20
	done
fi
exit "$rc"
