#!/bin/sh
# /parity-mock: what the requests carry to OpenSSL's `openssl cmp` mock
# server, an independent CMP implementation, for the settings that match
# openssl cmp's options (days, key_usage, extended_key_usage, policies,
# basic_constraints, proxy, no_proxy, csr).  The mock answers with one
# fixed certificate, so the request itself is looked at: each goes
# through the recording proxy (tests/proxy.py), which keeps its bytes,
# and `openssl asn1parse` reads them.  The requested extensions are
# compared with those `openssl req -addext` encodes from the same values.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
. "$top_srcdir/tests/proxy-lib.sh"
need_tools
setup
plan 23
make_token pm || exit 1
. "$top_srcdir/tests/mock-lib.sh"

# reqexts FILE: each requested extension in a DER message or CSR, as
# "NAME critical|- HEXVALUE", in the order they come
reqexts() {
	"$OPENSSL_BIN" asn1parse -inform "${2:-DER}" -in "$1" | awk '
		/prim: OBJECT *:X509v3 / { sub(/.*:X509v3 /, ""); name = $0; crit = "-"; next }
		name != "" && /prim: BOOLEAN/ { crit = "critical"; next }
		name != "" && /prim: OCTET STRING *\[HEX DUMP\]:/ {
			sub(/.*\[HEX DUMP\]:/, ""); print name, crit, $0; name = "" }'
}
# utctimes FILE: the UTCTime values of a DER message (the certTemplate's
# notBefore and notAfter; the header's messageTime is a GeneralizedTime)
utctimes() {
	"$OPENSSL_BIN" asn1parse -inform DER -in "$1" | sed -n 's/.*prim: UTCTIME *://p'
}
seconds() {
	date -u -d "$(printf '%s' "$1" | sed 's/^\(..\)\(..\)\(..\)\(..\)\(..\)\(..\)Z$/20\1-\2-\3 \4:\5:\6/')" +%s
}
# first_req: the first message the proxy kept since mock_conf
first_req() {
	ls -v "$TMP"/proxy/req-*.der 2> /dev/null | head -n 1
}
same() {
	diff -u "$2" "$1" | sed 's/^/# /'
	cmp -s "$2" "$1"
}

# The mock's fixed answer, and a certificate on the token for the kur.
start_ca || exit 1
write_conf pm "cert_out = $TMP/old.pem"
p11e enroll test
check "/parity-mock/setup/enrolled-at-test-ca" expect_rc 0
stop_ca
start_proxy || exit 1

# What `openssl req -addext` encodes for the same values: the reference.
"$OPENSSL_BIN" req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$TMP/r.key" \
	-subj /CN=r -out "$TMP/ref.csr" \
	-addext "keyUsage=critical,digitalSignature,keyEncipherment" \
	-addext "extendedKeyUsage=clientAuth,serverAuth,emailProtection,codeSigning,1.3.6.1.4.1.99999.7" \
	-addext "basicConstraints=critical,CA:FALSE" \
	-addext "certificatePolicies=1.3.6.1.4.1.99999.1.2,2.23.140.1.2.1" 2> /dev/null
reqexts "$TMP/ref.csr" PEM > "$TMP/ref.exts"
check "/parity-mock/setup/reference" test "$(wc -l < "$TMP/ref.exts")" -eq 4

EXTS="key_usage = digitalSignature,keyEncipherment
extended_key_usage = clientAuth,serverAuth,emailProtection,codeSigning,1.3.6.1.4.1.99999.7
basic_constraints = CA:FALSE
policies = 1.3.6.1.4.1.99999.1.2,2.23.140.1.2.1"
# mock_conf EXTRA_LINES: the configuration, through the proxy to the mock
mock_conf() {
	write_conf pm "proxy = http://127.0.0.1:$PROXY_PORT
replace = yes
$1"
	mock_server_conf
	rm -f "$TMP"/proxy/req-*.der
	: > "$TMP/proxy/proxy.log"
}

# ---- ir: validity and extensions in the certTemplate -----------------------
start_mock
mock_conf "days = 45
$EXTS"
p11e enroll test
# the mock's certificate is for another key: refused in certConf (exit 8)
check "/parity-mock/ir/answered" expect_rc 8
check "/parity-mock/ir/through-proxy" grep -q "^POST http://127.0.0.1:$MOCK_PORT/pkix/\$" "$TMP/proxy/proxy.log"
check "/parity-mock/ir/mock-got-ir" grep -q '^CMP DEBUG: received IR$' "$TMP/mock.log"
reqexts "$(first_req)" > "$TMP/got"
check "/parity-mock/ir/extensions" same "$TMP/got" "$TMP/ref.exts"
utctimes "$(first_req)" > "$TMP/times"
check "/parity-mock/ir/validity-45-days" test \
	$(($(seconds "$(sed -n 2p "$TMP/times")") - $(seconds "$(sed -n 1p "$TMP/times")"))) -eq $((45 * 86400))
check "/parity-mock/ir/no-secret" no_secret_in "$TMP"/proxy/req-*.der

# ---- kur (signed; the mock signs its answer) --------------------------------
MOCK_PROT=sig
start_mock
unset MOCK_PROT
mock_conf "days = 20
$EXTS"
p11e renew test
check "/parity-mock/kur/answered" expect_rc 8
check "/parity-mock/kur/mock-got-kur" grep -q '^CMP DEBUG: received KUR$' "$TMP/mock.log"
# (the body first; the old certificate's own extensions follow in extraCerts)
reqexts "$(first_req)" | head -n "$(wc -l < "$TMP/ref.exts")" > "$TMP/got"
check "/parity-mock/kur/extensions" same "$TMP/got" "$TMP/ref.exts"
utctimes "$(first_req)" > "$TMP/times"
check "/parity-mock/kur/validity-20-days" test \
	$(($(seconds "$(sed -n 2p "$TMP/times")") - $(seconds "$(sed -n 1p "$TMP/times")"))) -eq $((20 * 86400))

# ---- p10cr: the extensions in the CSR, no validity anywhere ---------------
start_mock
mock_conf "days = 45
$EXTS"
p11e p10cr test
check "/parity-mock/p10cr/answered" expect_rc 8
check "/parity-mock/p10cr/mock-got-p10cr" grep -q '^CMP DEBUG: received P10CR$' "$TMP/mock.log"
reqexts "$(first_req)" > "$TMP/got"
check "/parity-mock/p10cr/extensions" same "$TMP/got" "$TMP/ref.exts"
check "/parity-mock/p10cr/no-validity" test ! -s "$(utctimes "$(first_req)" > "$TMP/times"; echo "$TMP/times")"
check "/parity-mock/p10cr/days-warning" grep_err "days is ignored for p10cr"

# ---- p10cr with a given CSR: its bytes, unchanged --------------------------
"$OPENSSL_BIN" req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$TMP/ext.key" -out "$TMP/ext.der" -outform DER -subj "/CN=external" 2> /dev/null
start_mock
mock_conf "cert_out = $TMP/ext.pem"
p11e p10cr test --csr "$TMP/ext.der"
check "/parity-mock/csr/answered" expect_rc 8
check "/parity-mock/csr/mock-got-p10cr" grep -q '^CMP DEBUG: received P10CR$' "$TMP/mock.log"
check "/parity-mock/csr/sent-as-is" python3 -c '
import sys
sys.exit(0 if open(sys.argv[2], "rb").read() in open(sys.argv[1], "rb").read() else 1)' \
	"$(first_req)" "$TMP/ext.der"
check "/parity-mock/csr/no-file-for-refused" test ! -e "$TMP/ext.pem"

# ---- no_proxy: straight to the mock -----------------------------------------
start_mock
mock_conf "no_proxy = 127.0.0.1"
p11e enroll test
check "/parity-mock/no-proxy/answered" expect_rc 8
check "/parity-mock/no-proxy/bypassed" test ! -s "$TMP/proxy/proxy.log"
stop_mock
finish
