#!/bin/sh
# /parity: what `openssl cmp` lets an enrollment ask for, against the test
# CA (which honours it as a CA whose profile allows it does): the requested
# validity (days), the requested extensions (key_usage, extended_key_usage,
# policies, basic_constraints) in ir, cr, kur and p10cr, an explicit proxy
# and no_proxy, and an external CSR for p10cr.  tests/parity-mock.sh shows
# what the requests carry to OpenSSL's own mock server.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
setup
plan 0
start_ca || exit 1
TOK=par
make_token "$TOK" || exit 1

# exts FILE: the requested extensions of an issued certificate, as
# openssl x509 prints them (critical flags included)
exts() {
	"$OPENSSL_BIN" x509 -in "$1" -noout \
		-ext keyUsage,extendedKeyUsage,basicConstraints,certificatePolicies 2>&1
}
# lifetime FILE: notAfter - notBefore, in seconds
lifetime() {
	nb=$("$OPENSSL_BIN" x509 -in "$1" -noout -startdate | sed 's/^notBefore=//')
	na=$("$OPENSSL_BIN" x509 -in "$1" -noout -enddate | sed 's/^notAfter=//')
	echo $(($(date -u -d "$na" +%s) - $(date -u -d "$nb" +%s)))
}
# same FILE TEXT: FILE holds exactly TEXT (diff shown on failure)
same() {
	printf '%s\n' "$2" > "$TMP/expected"
	diff -u "$TMP/expected" "$1" | sed 's/^/# /'
	cmp -s "$TMP/expected" "$1"
}

EXTS="key_usage = digitalSignature,keyEncipherment
extended_key_usage = clientAuth,serverAuth,emailProtection,codeSigning,1.3.6.1.4.1.99999.7
policies = 1.3.6.1.4.1.99999.1.2,2.23.140.1.2.1
basic_constraints = CA:FALSE"
EXPECTED_EXTS='X509v3 Key Usage: critical
    Digital Signature, Key Encipherment
X509v3 Extended Key Usage: 
    TLS Web Client Authentication, TLS Web Server Authentication, E-mail Protection, Code Signing, 1.3.6.1.4.1.99999.7
X509v3 Basic Constraints: critical
    CA:FALSE
X509v3 Certificate Policies: 
    Policy: 1.3.6.1.4.1.99999.1.2
    Policy: 2.23.140.1.2.1'

# ---- ir: days and every extension --------------------------------------
write_conf "$TOK" "cert_out = $TMP/ir.pem
days = 45
$EXTS"
p11e enroll test
check "/parity/ir/exit-0" expect_rc 0
check "/parity/ir/days" test "$(lifetime "$TMP/ir.pem")" -eq $((45 * 86400))
exts "$TMP/ir.pem" > "$TMP/got"
check "/parity/ir/extensions" same "$TMP/got" "$EXPECTED_EXTS"
# the SANs go into the same extension list
write_conf "$TOK" "cert_out = $TMP/ir-san.pem
san = DNS:a.example,email:x@example.org
key_usage = digitalSignature
replace = yes"
p11e enroll test
check "/parity/ir/with-san/exit-0" expect_rc 0
"$OPENSSL_BIN" x509 -in "$TMP/ir-san.pem" -noout -ext subjectAltName,keyUsage > "$TMP/got" 2>&1
check "/parity/ir/with-san/both" same "$TMP/got" 'X509v3 Subject Alternative Name: 
    DNS:a.example, email:x@example.org
X509v3 Key Usage: critical
    Digital Signature'
# without days the CA's own validity applies (the test CA: 365 days)
check "/parity/ir/no-days/ca-default" test "$(lifetime "$TMP/ir-san.pem")" -ne $((45 * 86400))
# a CA certificate asked for: CA:TRUE with pathlen, critical
write_conf "$TOK" "cert_out = $TMP/ir-ca.pem
basic_constraints = CA:TRUE,pathlen:0
key_usage = keyCertSign,cRLSign,critical
label = sub-ca"
p11e enroll test
check "/parity/ir/ca-true/exit-0" expect_rc 0
exts "$TMP/ir-ca.pem" > "$TMP/got"
check "/parity/ir/ca-true/extensions" same "$TMP/got" 'X509v3 Key Usage: critical
    Certificate Sign, CRL Sign
X509v3 Basic Constraints: critical
    CA:TRUE, pathlen:0'

# ---- cr, kur, p10cr --------------------------------------------------------
write_conf "$TOK" "cert_out = $TMP/cr.pem
days = 20
$EXTS"
p11e cr test --signer enrolled-key --label by-cr
check "/parity/cr/exit-0" expect_rc 0
check "/parity/cr/days" test "$(lifetime "$TMP/cr.pem")" -eq $((20 * 86400))
exts "$TMP/cr.pem" > "$TMP/got"
check "/parity/cr/extensions" same "$TMP/got" "$EXPECTED_EXTS"

write_conf "$TOK" "cert_out = $TMP/kur.pem
days = 30
$EXTS"
p11e renew test
check "/parity/kur/exit-0" expect_rc 0
check "/parity/kur/days" test "$(lifetime "$TMP/kur.pem")" -eq $((30 * 86400))
exts "$TMP/kur.pem" > "$TMP/got"
check "/parity/kur/extensions" same "$TMP/got" "$EXPECTED_EXTS"

# p10cr: the extensions go into the CSR's extensionRequest; days cannot
# (PKCS#10 has no validity): a warning, as openssl cmp gives, and the CA's
# default validity
write_conf "$TOK" "cert_out = $TMP/p10.pem
days = 30
$EXTS"
p11e p10cr test --label by-p10
check "/parity/p10cr/exit-0" expect_rc 0
check "/parity/p10cr/days-ignored-warning" grep_err "days is ignored for p10cr"
check "/parity/p10cr/ca-default-validity" test "$(lifetime "$TMP/p10.pem")" -ne $((30 * 86400))
exts "$TMP/p10.pem" > "$TMP/got"
check "/parity/p10cr/extensions" same "$TMP/got" "$EXPECTED_EXTS"

finish
