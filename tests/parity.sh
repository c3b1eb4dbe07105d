#!/bin/sh
# /parity: what `openssl cmp` lets an enrollment ask for, against the test
# CA (which honours it as a CA whose profile allows it does): the requested
# validity (days), the requested extensions (key_usage, extended_key_usage,
# policies, basic_constraints) in ir, cr, kur and p10cr, an explicit proxy
# and no_proxy, and an external CSR for p10cr.  tests/parity-mock.sh shows
# what the requests carry to OpenSSL's own mock server.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
. "$top_srcdir/tests/proxy-lib.sh"
need_tools
need_cmd socat
setup
plan 89
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

# ---- values checked at load: the key and the bad item named, exit 2 ------
# bad KEY VALUE: the configuration error, without FILE:LINE, in $TMP/got
bad() {
	write_conf "$TOK" "$1 = $2"
	n=$(count_objects "$TOK")
	p11e enroll test --replace
	sed 's|^p11enroll: error: [^ ]*p11enroll.conf:[0-9]*: |ERR |' "$TMP/err" > "$TMP/got"
}
bad key_usage "digitalSignature, bogus"
check "/parity/config/key-usage/exit-2" expect_rc 2
check "/parity/config/key-usage/message" same "$TMP/got" "ERR [test] key_usage: 'bogus' is not a key usage; allowed: digitalSignature, nonRepudiation, keyEncipherment, dataEncipherment, keyAgreement, keyCertSign, cRLSign, encipherOnly, decipherOnly (and critical)"
check "/parity/config/key-usage/nothing-generated" test "$(count_objects "$TOK")" -eq "$n"
bad extended_key_usage "clientAuth,notAPurpose"
check "/parity/config/eku/exit-2" expect_rc 2
check "/parity/config/eku/message" same "$TMP/got" "ERR [test] extended_key_usage: 'notAPurpose' is not an extended key usage: give a name such as clientAuth, serverAuth, emailProtection, codeSigning, timeStamping, OCSPSigning, or a dotted OID (1.3.6.1.5.5.7.3.2)"
bad policies "1.2.3.4,@polsect"
check "/parity/config/policies/exit-2" expect_rc 2
check "/parity/config/policies/message" same "$TMP/got" "ERR [test] policies: '@polsect' is not a policy OID: give dotted OIDs such as 1.3.6.1.4.1.99999.1.2 (or anyPolicy), separated by commas"
bad basic_constraints "CA:FALSE,pathlen:1"
check "/parity/config/basic-constraints/exit-2" expect_rc 2
check "/parity/config/basic-constraints/message" same "$TMP/got" "ERR [test] basic_constraints: 'pathlen:1' is not allowed here; write CA:FALSE, CA:TRUE or CA:TRUE,pathlen:N (N from 0 to 255)"
bad key_usage "digitalSignature,,keyEncipherment"
check "/parity/config/empty-item/message" same "$TMP/got" "ERR [test] key_usage: has an empty item (two commas)"
bad days 0
check "/parity/config/days-zero/exit-2" expect_rc 2
check "/parity/config/days-zero/message" same "$TMP/got" "ERR [test] days: '0' is not a number from 1 to 36500"
bad basic_constraints "CA:TRUE,pathlen:256"
check "/parity/config/pathlen-range/message" same "$TMP/got" "ERR [test] basic_constraints: 'pathlen:256' is not allowed here; write CA:FALSE, CA:TRUE or CA:TRUE,pathlen:N (N from 0 to 255)"
bad proxy "ftp://proxy.example:21"
check "/parity/config/proxy-scheme/exit-2" expect_rc 2
check "/parity/config/proxy-scheme/message" same "$TMP/got" "ERR [test] proxy: 'ftp://proxy.example:21' has a scheme libcurl has no proxy for; use http://, https://, socks4://, socks4a://, socks5:// or socks5h://"
# critical on request, and anyPolicy
write_conf "$TOK" "cert_out = $TMP/crit.pem
extended_key_usage = critical,clientAuth
policies = anyPolicy
replace = yes"
p11e enroll test
check "/parity/ir/eku-critical/exit-0" expect_rc 0
"$OPENSSL_BIN" x509 -in "$TMP/crit.pem" -noout -ext extendedKeyUsage,certificatePolicies > "$TMP/got" 2>&1
check "/parity/ir/eku-critical/extensions" same "$TMP/got" 'X509v3 Extended Key Usage: critical
    TLS Web Client Authentication
X509v3 Certificate Policies: 
    Policy: X509v3 Any Policy'
# the same check on the command line
write_conf "$TOK"
p11e enroll test --replace --key-usage keyAgreement,signing
check "/parity/flag/key-usage/exit-2" expect_rc 2
check "/parity/flag/key-usage/message" same "$TMP/err" "p11enroll: error: --key-usage: 'signing' is not a key usage; allowed: digitalSignature, nonRepudiation, keyEncipherment, dataEncipherment, keyAgreement, keyCertSign, cRLSign, encipherOnly, decipherOnly (and critical)"

# ---- proxy and no_proxy ---------------------------------------------------
start_proxy || exit 1
PROXY=http://127.0.0.1:$PROXY_PORT
write_conf "$TOK" "proxy = $PROXY
replace = yes"
p11e enroll test
check "/parity/proxy/http/exit-0" expect_rc 0
proxy_log > "$TMP/got"
check "/parity/proxy/http/used" same "$TMP/got" "POST http://127.0.0.1:PORT/.well-known/cmp
POST http://127.0.0.1:PORT/.well-known/cmp"
check "/parity/proxy/http/no-secret" no_secret_in "$TMP"/proxy/req-*.der "$TMP/proxy/proxy.log"
: > "$TMP/proxy/proxy.log"
write_conf "$TOK" "proxy = $PROXY
no_proxy = 127.0.0.1
replace = yes"
p11e enroll test
check "/parity/no-proxy/exit-0" expect_rc 0
check "/parity/no-proxy/bypassed" test ! -s "$TMP/proxy/proxy.log"
# libcurl's environment when nothing is configured
write_conf "$TOK" "replace = yes"
http_proxy=$PROXY p11e enroll test
check "/parity/proxy/env/exit-0" expect_rc 0
check "/parity/proxy/env/used" test "$(grep -c '^POST ' "$TMP/proxy/proxy.log")" -eq 2
# the configured proxy wins over the environment's (a dead one there)
: > "$TMP/proxy/proxy.log"
write_conf "$TOK" "proxy = $PROXY
replace = yes"
http_proxy=http://127.0.0.1:1 p11e enroll test
check "/parity/proxy/setting-wins/exit-0" expect_rc 0
check "/parity/proxy/setting-wins/used" test "$(grep -c '^POST ' "$TMP/proxy/proxy.log")" -eq 2
# and no_proxy over the environment's proxy
: > "$TMP/proxy/proxy.log"
write_conf "$TOK" "no_proxy = 127.0.0.1
replace = yes"
http_proxy=$PROXY p11e enroll test
check "/parity/no-proxy/over-env/exit-0" expect_rc 0
check "/parity/no-proxy/over-env/bypassed" test ! -s "$TMP/proxy/proxy.log"
# a proxy that does not answer: a transport failure naming it
write_conf "$TOK" "proxy = http://127.0.0.1:1
replace = yes"
p11e enroll test
check "/parity/proxy/dead/exit-5" expect_rc 5
check "/parity/proxy/dead/names-it" grep_err "and the proxy http://127.0.0.1:1 \\(setting proxy\\)"
# credentials in the value are refused, and never echoed
write_conf "$TOK" "proxy = http://user:hunter2@127.0.0.1:3128"
p11e enroll test
check "/parity/proxy/credentials/exit-2" expect_rc 2
check "/parity/proxy/credentials/message" grep_err "proxy: carries credentials"
check "/parity/proxy/credentials/not-echoed" sh -c "! grep -q hunter2 '$TMP/err'"

# https through the proxy: a CONNECT tunnel; the proxy sees no CMP message
openssl_req() {
	"$OPENSSL_BIN" req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$TMP/tls.key" -out "$TMP/tls.pem" -days 2 -subj "/CN=127.0.0.1" \
		-addext subjectAltName=IP:127.0.0.1 -addext extendedKeyUsage=serverAuth
}
openssl_req > "$TMP/pki.log" 2>&1 || { cat "$TMP/pki.log"; exit 1; }
socat -d -d "OPENSSL-LISTEN:0,bind=127.0.0.1,reuseaddr,fork,cert=$TMP/tls.pem,key=$TMP/tls.key,verify=0" \
	"TCP:127.0.0.1:$CA_PORT" 2> "$TMP/socat.err" &
SOCAT_PID=$!
stop_socat() { kill "$SOCAT_PID" 2> /dev/null && wait "$SOCAT_PID" 2> /dev/null; }
CLEANUP_HOOKS="$CLEANUP_HOOKS stop_socat"
wait_for 10 grep -q 'listening on AF=2 127.0.0.1:' "$TMP/socat.err"
TLS_PORT=$(sed -n 's/.* listening on AF=2 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$TMP/socat.err" | head -n 1)
: > "$TMP/proxy/proxy.log"
rm -f "$TMP"/proxy/req-*.der
write_conf "$TOK" "server = https://127.0.0.1:$TLS_PORT/.well-known/cmp
tls_trusted = $TMP/tls.pem
proxy = $PROXY
replace = yes"
p11e enroll test
check "/parity/proxy/https/exit-0" expect_rc 0
proxy_log | sort -u > "$TMP/got"
check "/parity/proxy/https/connect-only" same "$TMP/got" "CONNECT 127.0.0.1:PORT"
check "/parity/proxy/https/no-message-seen" sh -c "! ls '$TMP'/proxy/req-*.der 2> /dev/null"

# ---- an external CSR for p10cr ----------------------------------------------
"$OPENSSL_BIN" req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$TMP/ext.key" -out "$TMP/ext.csr" -subj "/CN=external/O=Example" \
	-addext "keyUsage=critical,digitalSignature" -addext "subjectAltName=DNS:ext.example" \
	2> /dev/null
"$OPENSSL_BIN" req -in "$TMP/ext.csr" -outform DER -out "$TMP/ext.der"
write_conf "$TOK" "days = 10"
n=$(count_objects "$TOK")
: > "$TMP/ca.log"
p11e p10cr test --csr "$TMP/ext.csr"
check "/parity/csr/off-token/no-cert-out/exit-2" expect_rc 2
check "/parity/csr/off-token/no-cert-out/message" grep_err "the csr $TMP/ext.csr is for a key that is not on token 'par': the certificate cannot be stored next to its key; set cert_out \\(--cert-out FILE\\)"
check "/parity/csr/off-token/no-cert-out/nothing-sent" sh -c "! grep -q 'p10cr' '$TMP/ca.log'"
p11e p10cr test --csr "$TMP/ext.csr" --cert-out "$TMP/ext.pem"
check "/parity/csr/off-token/exit-0" expect_rc 0
"$OPENSSL_BIN" pkey -in "$TMP/ext.key" -pubout -out "$TMP/ext.pub"
"$OPENSSL_BIN" x509 -in "$TMP/ext.pem" -noout -pubkey > "$TMP/got.pub"
check "/parity/csr/off-token/cert-for-its-key" cmp -s "$TMP/got.pub" "$TMP/ext.pub"
"$OPENSSL_BIN" x509 -in "$TMP/ext.pem" -noout -subject -ext keyUsage,subjectAltName > "$TMP/got" 2>&1
check "/parity/csr/off-token/as-requested" same "$TMP/got" 'subject=CN = external, O = Example
X509v3 Key Usage: critical
    Digital Signature
X509v3 Subject Alternative Name: 
    DNS:ext.example'
check "/parity/csr/off-token/token-unchanged" test "$(count_objects "$TOK")" -eq "$n"
check "/parity/csr/off-token/summary" grep -q "^  written to: $TMP/ext.pem\$" "$TMP/out"
check "/parity/csr/days-warning" grep_err "days is ignored for p10cr"
check "/parity/csr/subject-ignored-warning" grep_err "subject is ignored: the csr $TMP/ext.csr is sent as is"
p11e p10cr test --csr "$TMP/ext.der" --cert-out "$TMP/ext2.pem"
check "/parity/csr/der/exit-0" expect_rc 0
"$OPENSSL_BIN" x509 -in "$TMP/ext2.pem" -noout -pubkey > "$TMP/got.pub"
check "/parity/csr/der/cert-for-its-key" cmp -s "$TMP/got.pub" "$TMP/ext.pub"
# a CSR changed after signing: its signature does not verify
"$OPENSSL_BIN" req -in "$TMP/ext.csr" -outform DER | sed 's/external/externbl/' > "$TMP/bad.der"
p11e p10cr test --csr "$TMP/bad.der" --cert-out "$TMP/bad.pem"
check "/parity/csr/bad-signature/exit-2" expect_rc 2
check "/parity/csr/bad-signature/message" grep_err "csr $TMP/bad.der: its signature does not verify with its own public key"
printf 'not a request\n' > "$TMP/junk.csr"
p11e p10cr test --csr "$TMP/junk.csr" --cert-out "$TMP/bad.pem"
check "/parity/csr/junk/exit-2" expect_rc 2
check "/parity/csr/junk/message" grep_err "csr $TMP/junk.csr holds no PKCS#10 request in PEM or DER"
check "/parity/csr/nothing-issued-for-bad" test ! -e "$TMP/bad.pem"
p11e p10cr test --csr "$TMP/nosuch.csr" --cert-out "$TMP/bad.pem"
check "/parity/csr/missing/exit-2" expect_rc 2
check "/parity/csr/missing/message" grep_err "cannot read csr $TMP/nosuch.csr: No such file or directory"
p11e p10cr test --csr "$TMP/ext.csr" --cert-out "$TMP/bad.pem" --use-template
check "/parity/csr/with-template/exit-2" expect_rc 2
check "/parity/csr/with-template/message" grep_err "use_template cannot change a given csr"
# the only copy cannot be written: refused in certConf, exit 8
: > "$TMP/ca.log"
p11e p10cr test --csr "$TMP/ext.csr" --cert-out "$TMP/nodir/ext.pem"
check "/parity/csr/cert-out-fails/exit-8" expect_rc 8
check "/parity/csr/cert-out-fails/message" grep_err "writing it to $TMP/nodir/ext.pem failed"
check "/parity/csr/cert-out-fails/ca-told" grep -q 'certConf.*reject\|rejected' "$TMP/ca.log"
p11e enroll test --csr "$TMP/ext.csr"
check "/parity/csr/not-for-enroll/exit-2" expect_rc 2
check "/parity/csr/not-for-enroll/message" grep_err "a CSR is sent by p10cr only"

# a CSR for a key pair on the token: the certificate goes next to it
"$OPENSSL_BIN" genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -outform DER \
	-out "$TMP/on.key.der" 2> /dev/null
"$OPENSSL_BIN" pkey -inform DER -in "$TMP/on.key.der" -pubout -outform DER -out "$TMP/on.pub.der"
"$PKCS11_TOOL" --module "$SOFTHSM2_MODULE" --token-label "$TOK" --login --pin "$USER_PIN" \
	--write-object "$TMP/on.key.der" --type privkey --id 7a7a --label imported > /dev/null 2>&1
"$PKCS11_TOOL" --module "$SOFTHSM2_MODULE" --token-label "$TOK" --login --pin "$USER_PIN" \
	--write-object "$TMP/on.pub.der" --type pubkey --id 7a7a --label imported > /dev/null 2>&1
"$OPENSSL_BIN" req -new -key "$TMP/on.key.der" -keyform DER -subj "/CN=on token/O=Example" \
	-out "$TMP/on.csr"
nkeys=$(count_objects "$TOK" privkey)
p11e p10cr test --csr "$TMP/on.csr" --label imported-cert
check "/parity/csr/on-token/exit-0" expect_rc 0
check "/parity/csr/on-token/stored-with-its-id" test "$(label_id "$TOK" cert imported-cert)" = 7a7a
check "/parity/csr/on-token/no-key-generated" test "$(count_objects "$TOK" privkey)" -eq "$nkeys"
# a pair whose public key cannot be read (a SoftHSM2 EC private key alone
# has no point) is passed over, not an error
"$PKCS11_TOOL" --module "$SOFTHSM2_MODULE" --token-label "$TOK" --login --pin "$USER_PIN" \
	--write-object "$TMP/on.key.der" --type privkey --id 7b7b --label imported2 > /dev/null 2>&1
p11e p10cr test --csr "$TMP/on.csr" --label imported-cert2
check "/parity/csr/on-token/unreadable-passed-over/exit-0" expect_rc 0
check "/parity/csr/on-token/unreadable-passed-over/its-id" test "$(label_id "$TOK" cert imported-cert2)" = 7a7a
# the same key pair twice, under two ids: which one is meant is not guessed
"$PKCS11_TOOL" --module "$SOFTHSM2_MODULE" --token-label "$TOK" --login --pin "$USER_PIN" \
	--write-object "$TMP/on.pub.der" --type pubkey --id 7b7b --label imported2 > /dev/null 2>&1
p11e p10cr test --csr "$TMP/on.csr" --label imported-cert3
check "/parity/csr/on-token/twice/exit-3" expect_rc 3
check "/parity/csr/on-token/twice/message" grep_err "2 key pairs carry it"

finish
