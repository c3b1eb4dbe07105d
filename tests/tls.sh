#!/bin/sh
# /tls: CMP over HTTPS with TLS client authentication by a key on the token
# (tls_client): socat terminates TLS in front of the test CA and requires a
# client certificate issued by the test CA.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
need_cmd socat
need_cmd python3
setup
plan 36
SOCAT_PIDS=
stop_socat() {
	for p in $SOCAT_PIDS; do
		kill "$p" 2> /dev/null
		wait "$p" 2> /dev/null
	done
	SOCAT_PIDS=
}
trap 'stop_socat; cleanup' EXIT
start_ca || exit 1
TOK=tls

# The TLS server's own PKI: a root and a certificate for IP:127.0.0.1
# (libcurl checks the host name; the CA's srv.pem is a CMP signer, not a
# TLS server certificate).
tls_pki() {
	server_pki "$TMP/tls-" "p11enroll TLS Test Root"
}
tls_pki > "$TMP/pki.log" 2>&1 || { cat "$TMP/pki.log"; exit 1; }
# Client certificates are issued by the test CA's issuing CA under its root.
cat "$TMP/ca/ca.pem" "$TMP/ca/root.pem" > "$TMP/client-cas.pem"

# start_tls CLIENT_CAFILE [CERT KEY]: socat in front of the CA, requiring a
# client certificate that verifies under CLIENT_CAFILE ("-": none asked
# for), with the server certificate CERT (default tls-srv.pem); sets
# TLS_URL.  socat binds port 0 and reports the port it got (-d -d:
# "listening on AF=2 127.0.0.1:PORT"): no port picked free here and bound
# later, which another process on a busy machine could take meanwhile.
start_tls() {
	if [ "$1" = - ]; then
		tls_verify=verify=0
	else
		tls_verify="cafile=$1,verify=1"
	fi
	tls_cert=${2:-$TMP/tls-srv.pem}
	tls_key=${3:-$TMP/tls-srv.key}
	touch "$TMP/socat.err"
	seen=$(wc -l < "$TMP/socat.err")
	socat -d -d "OPENSSL-LISTEN:0,bind=127.0.0.1,reuseaddr,fork,cert=$tls_cert,key=$tls_key,$tls_verify" \
		"TCP:127.0.0.1:$CA_PORT" 2>> "$TMP/socat.err" &
	pid=$!
	SOCAT_PIDS="$SOCAT_PIDS $pid"
	i=0
	while [ $i -lt $((100 * P11E_SCALE)) ] && kill -0 "$pid" 2> /dev/null; do
		port=$(tail -n +$((seen + 1)) "$TMP/socat.err" |
			sed -n 's/.* listening on AF=2 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' | head -n 1)
		if [ -n "$port" ]; then
			TLS_URL="https://127.0.0.1:$port/.well-known/cmp"
			return 0
		fi
		sleep 0.1
		i=$((i + 1))
	done
	echo "# socat did not start:"
	sed 's/^/#   /' "$TMP/socat.err"
	return 1
}

# conf SERVER LABEL [EXTRA_LINES]
conf() {
	cat > "$TMP/p11enroll.conf" <<EOC
module = $SOFTHSM2_MODULE
server = $1
reference = $CMP_REF
secret_source = file:$TMP/secret
trusted = $TMP/ca/root.pem
tls_trusted = $TMP/tls-root.pem
timeout = $(scaled 10)
total_timeout = $(scaled 30)

[test]
token = pkcs11:token=$TOK
pin_source = file:$TMP/pin
label = $2
subject = /CN=p11enroll TLS test/O=Example
${3:-}
EOC
}

# Every output of every run, for the secret check at the end.
run() {
	p11e "$@"
	cat "$TMP/out" "$TMP/err" >> "$TMP/all-output"
}
: > "$TMP/all-output"

make_token "$TOK" || exit 1
start_tls "$TMP/client-cas.pem" || exit 1
TRUSTING_URL=$TLS_URL

# 1. The TLS identity, enrolled over plain HTTP.
conf "$CA_URL" tls-id
run enroll test
check "/tls/setup/enroll-http/exit-0" expect_rc 0

# 2. Over HTTPS, authenticated by the token key: a second enrollment, and a
# renewal by the certificate being renewed (self).
conf "$TRUSTING_URL" second "tls_client = tls-id"
: > "$TMP/ca.log"
run -v enroll test
check "/tls/client-cert/enroll/exit-0" expect_rc 0
check "/tls/client-cert/enroll/summary" grep -q '^enrolled test' "$TMP/out"
check "/tls/client-cert/enroll/ca-saw-ir" grep -q -w 'ir' "$TMP/ca.log"
check "/tls/client-cert/enroll/says-tls-client" grep_err "TLS client authentication with the certificate 'tls-id'"
conf "$TRUSTING_URL" second
: > "$TMP/ca.log"
run renew test --tls-client tls-id
check "/tls/client-cert/option/exit-0" expect_rc 0
check "/tls/client-cert/option/ca-saw-kur" grep -q -w 'kur' "$TMP/ca.log"
conf "$TRUSTING_URL" tls-id "tls_client = self"
: > "$TMP/ca.log"
run renew test
check "/tls/client-cert/renew-self/exit-0" expect_rc 0
check "/tls/client-cert/renew-self/ca-saw-kur" grep -q -w 'kur' "$TMP/ca.log"

# 3. No client certificate: the server ends the handshake.
before=$(count_objects "$TOK")
conf "$TRUSTING_URL" third
: > "$TMP/ca.log"
run enroll test
check "/tls/no-client-cert/exit-5" expect_rc 5
check "/tls/no-client-cert/message" grep_err 'TLS handshake failed: the server requires a TLS client certificate and none is configured.*tls_client'
check "/tls/no-client-cert/ca-saw-nothing" test ! -s "$TMP/ca.log"
check "/tls/no-client-cert/no-key-left" test "$(count_objects "$TOK")" -eq "$before"

# 4. tls_trusted without the server's root: verification fails at the client.
conf "$TRUSTING_URL" third "tls_client = tls-id
tls_trusted = $TMP/ca/root.pem"
run enroll test
check "/tls/untrusted-server/exit-5" expect_rc 5
check "/tls/untrusted-server/message" grep_err 'TLS server verification failed: (unable to get local issuer certificate|self-signed certificate).*tls_trusted'
check "/tls/untrusted-server/no-key-left" test "$(count_objects "$TOK")" -eq "$before"

# 5. A tls_client label that is not on the token: exit 3 before any key exists.
conf "$TRUSTING_URL" third "tls_client = no-such-label"
run enroll test
check "/tls/unknown-label/exit-3" expect_rc 3
check "/tls/unknown-label/message" grep_err "none labelled 'no-such-label'"
check "/tls/unknown-label/no-key-left" test "$(count_objects "$TOK")" -eq "$before"

# 6. A server that does not trust the issuer of our certificate refuses it.
start_tls "$TMP/tls-root.pem" || exit 1
conf "$TLS_URL" third "tls_client = tls-id"
: > "$TMP/ca.log"
run enroll test
check "/tls/refused-client-cert/exit-5" expect_rc 5
check "/tls/refused-client-cert/message" grep_err 'did not accept our TLS client certificate.*trusts the CA'
check "/tls/refused-client-cert/ca-saw-nothing" test ! -s "$TMP/ca.log"
check "/tls/refused-client-cert/no-key-left" test "$(count_objects "$TOK")" -eq "$before"

# 7. tls_client with an http:// URL is a configuration error.
conf "$CA_URL" third "tls_client = tls-id"
run enroll test
check "/tls/http-url/exit-2" expect_rc 2
check "/tls/http-url/message" grep_err 'not https://'
check "/tls/http-url/no-key-left" test "$(count_objects "$TOK")" -eq "$before"

# 8. tls_client = self outside renew is a configuration error.
conf "$TRUSTING_URL" third "tls_client = self"
run enroll test
check "/tls/self-outside-renew/exit-2" expect_rc 2
check "/tls/self-outside-renew/no-key-left" test "$(count_objects "$TOK")" -eq "$before"

# 9. genm and revoke over HTTPS with the token key.
conf "$TRUSTING_URL" second "tls_client = tls-id"
run genm test --ca-certs "$TMP/cacerts.pem"
check "/tls/genm/exit-0" expect_rc 0
run revoke test
check "/tls/revoke/exit-0" expect_rc 0

# 10. tls_trusted is the only TLS trust: a server whose root only the system
# store holds is refused.  The system store (/etc/ssl/certs, libcurl's CA
# path on Debian) is replaced for these runs in a private mount namespace.
sys_pki() {
	"$OPENSSL_BIN" req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$TMP/sys-root.key" -out "$TMP/sys-root.pem" -days 2 \
		-subj "/CN=p11enroll System-wide Test Root" \
		-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign &&
		"$OPENSSL_BIN" req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
			-keyout "$TMP/sys-srv.key" -out "$TMP/sys-srv.csr" -subj "/CN=127.0.0.1" &&
		"$OPENSSL_BIN" x509 -req -in "$TMP/sys-srv.csr" -CA "$TMP/sys-root.pem" \
			-CAkey "$TMP/sys-root.key" -CAcreateserial -days 2 -extfile "$TMP/tls-srv.ext" \
			-out "$TMP/sys-srv.pem" &&
		mkdir -p "$TMP/syscerts" && cp "$TMP/sys-root.pem" "$TMP/syscerts/" &&
		cp "$TMP/sys-root.pem" "$TMP/syscerts/ca-certificates.crt" &&
		"$OPENSSL_BIN" rehash "$TMP/syscerts"
}
# in_system_store ARGS...: p11e, with $TMP/syscerts as /etc/ssl/certs
in_system_store() {
	unshare -m sh -c 'mount --bind "$0" /etc/ssl/certs && exec "$@"' "$TMP/syscerts" \
		"$P11ENROLL" -c "$TMP/p11enroll.conf" "$@" > "$TMP/out" 2> "$TMP/err"
	RC=$?
	cat "$TMP/out" "$TMP/err" >> "$TMP/all-output"
}
if [ "$(id -u)" -eq 0 ] && unshare -m true 2> /dev/null && sys_pki > "$TMP/sys.log" 2>&1 &&
	start_tls - "$TMP/sys-srv.pem" "$TMP/sys-srv.key"; then
	conf "$TLS_URL" sys-a
	sed -i '/^tls_trusted/d' "$TMP/p11enroll.conf"
	in_system_store enroll test
	check "/tls/system-store/used-without-tls-trusted/exit-0" expect_rc 0
	conf "$TLS_URL" sys-b
	before=$(count_objects "$TOK")
	in_system_store enroll test
	check "/tls/tls-trusted-only/system-root-refused/exit-5" expect_rc 5
	check "/tls/tls-trusted-only/system-root-refused/message" grep_err 'TLS server verification failed'
	check "/tls/tls-trusted-only/no-key-left" test "$(count_objects "$TOK")" -eq "$before"
else
	for t in used-without-tls-trusted system-root-refused/exit-5 \
		system-root-refused/message no-key-left; do
		ok "/tls/system-store/$t # SKIP needs root and mount namespaces (unshare -m)"
	done
fi

check "/tls/no-secret" no_secret_in "$TMP/all-output"
check "/tls/no-pin-in-socat-log" no_secret_in "$TMP/socat.err"
stop_socat
finish
