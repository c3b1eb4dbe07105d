#!/bin/sh
# /conflicts: configurations that contradict themselves (agent/protect.c).
#   key-mismatch     protection_key is not the key of protection_cert: a cr
#                    stops with exit 2 before a key is generated or anything
#                    is sent (the call log shows the token was opened)
#   signer-and-files a token signer and protection files both set: exit 2
#   files-half       protection_cert without protection_key: exit 2
#   renew            renew signs with the old pair: the files are not used,
#                    said so, and their mismatch does not matter
#   template         a template's subjectAltName is used when san is not
#                    configured, left out (and said so) when it is; its
#                    other extensions are counted as not requested
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
WRAP="$top_builddir/tests/p11wrap/p11wrap.so"
need_file "$WRAP"
setup
plan 34
export P11WRAP_MODULE="$SOFTHSM2_MODULE"
LOG="$TMP/calls.log"
TOK=conflicts
make_token "$TOK" || exit 1
start_ca || exit 1

# conf [EXTRA]: the [test] enrollment through p11wrap.
conf() {
	write_conf "$TOK" "cert_out = $TMP/cert.pem
${1:-}"
	sed -i "s|^module = .*|module = $WRAP|" "$TMP/p11enroll.conf"
}

run() {
	: > "$LOG"
	env P11WRAP_LOG="$LOG" "$P11ENROLL" -c "$TMP/p11enroll.conf" "$@" > "$TMP/out" 2> "$TMP/err"
	RC=$?
}

calls() {
	grep -c -E "$1" "$LOG"
}

snapshot() {
	objects "$TOK" | sort > "$1"
}

unchanged() {
	cmp -s "$1" "$2" || { echo "# the token changed:"; diff "$1" "$2" | sed 's/^/#   /'; return 1; }
}

cr_sent() {
	grep -c ' cr -> ' "$TMP/ca.log"
}

# A signer certificate and its key as files, and a key that is not its.
"$OPENSSL_BIN" req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-subj "/CN=conflicts signer" -days 2 -keyout "$TMP/sig.key" -out "$TMP/sig.pem" \
	> "$TMP/openssl.log" 2>&1 &&
	"$OPENSSL_BIN" genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
		-out "$TMP/other.key" >> "$TMP/openssl.log" 2>&1 ||
	{ sed 's/^/# /' "$TMP/openssl.log"; exit 1; }
chmod 600 "$TMP/sig.key" "$TMP/other.key"

# a pair on the token for the signer cases
conf
run enroll test --label signer-key
check "/conflicts/setup/signer-enrolled" expect_rc 0
snapshot "$TMP/start"

# --- protection_key is not the key of protection_cert ------------------------------
t=/conflicts/key-mismatch
conf "protection_cert = $TMP/sig.pem
protection_key = $TMP/other.key"
n=$(cr_sent)
run cr test
check "$t/exit-2" expect_rc 2
check "$t/message" grep_err "protection_key $TMP/other.key is not the key of protection_cert $TMP/sig.pem: give the matching pair"
check "$t/token-opened" test "$(calls '^C_Login rv=CKR_OK$')" -eq 1
check "$t/no-key-generated" test "$(calls '^C_GenerateKeyPair ')" -eq 0
check "$t/nothing-sent" test "$(cr_sent)" -eq "$n"
snapshot "$TMP/after"
check "$t/token-unchanged" unchanged "$TMP/start" "$TMP/after"
# the matching pair passes this check: the cr goes out (whatever the CA says)
conf "protection_cert = $TMP/sig.pem
protection_key = $TMP/sig.key"
run cr test
check "$t/matching-pair-sent" test "$(cr_sent)" -eq $((n + 1))
check "$t/matching-pair-no-complaint" sh -c "! grep -q 'is not the key of' '$TMP/err'"

# --- a token signer and protection files ------------------------------------------
t=/conflicts/signer-and-files
snapshot "$TMP/start"
conf "signer = signer-key
protection_cert = $TMP/sig.pem
protection_key = $TMP/sig.key"
n=$(cr_sent)
run cr test
check "$t/exit-2" expect_rc 2
check "$t/message" grep_err 'both signer and protection_cert/protection_key are set: choose the token signer or the files'
check "$t/token-opened" test "$(calls '^C_Login rv=CKR_OK$')" -eq 1
check "$t/no-key-generated" test "$(calls '^C_GenerateKeyPair ')" -eq 0
check "$t/nothing-sent" test "$(cr_sent)" -eq "$n"
snapshot "$TMP/after"
check "$t/token-unchanged" unchanged "$TMP/start" "$TMP/after"
# the key file alone conflicts as well
conf "signer = signer-key
protection_key = $TMP/sig.key"
run cr test
check "$t/key-file-only-exit-2" expect_rc 2
check "$t/key-file-only-message" grep_err 'both signer and protection_cert/protection_key are set'

# --- one of the two files ----------------------------------------------------------
t=/conflicts/files-half
conf "protection_cert = $TMP/sig.pem"
n=$(cr_sent)
run cr test
check "$t/exit-2" expect_rc 2
check "$t/message" grep_err 'signature protection with files needs both protection_cert and protection_key; protection_key is missing'
check "$t/no-key-generated" test "$(calls '^C_GenerateKeyPair ')" -eq 0
check "$t/nothing-sent" test "$(cr_sent)" -eq "$n"

# --- renew signs with the old pair: the files play no part ---------------------------
t=/conflicts/renew
conf "label = signer-key
protection_cert = $TMP/sig.pem
protection_key = $TMP/other.key"
run renew test
check "$t/exit-0" expect_rc 0
check "$t/says-signer-unused" grep_err 'renew signs with the old key and certificate; the configured signer is not used'
check "$t/signed-with-old" grep -q 'kur: oldCertID matches an issued certificate' "$TMP/ca.log"

# --- a template's subjectAltName and other extensions --------------------------------
t=/conflicts/template
start_ca --template "subject=/CN=from template;san=DNS:tmpl.example;ext=keyUsage:critical,digitalSignature" ||
	exit 1
conf "use_template = yes
label = templated"
run -v enroll test
check "$t/no-san/exit-0" expect_rc 0
check "$t/no-san/san-from-template" grep_err 'template: subjectAltName from the CA'
check "$t/no-san/one-other-extension" grep_err 'template: 1 extension other than subjectAltName not requested'
check "$t/no-san/cert-has-template-san" sh -c "'$OPENSSL_BIN' x509 -in '$TMP/cert.pem' -noout -ext subjectAltName | grep -q -x ' *DNS:tmpl.example'"
conf "use_template = yes
label = templated-san
san = DNS:conf.example"
run -v enroll test
check "$t/san/exit-0" expect_rc 0
check "$t/san/says-config-wins" grep_err 'template: its subjectAltName is not requested: san is configured'
check "$t/san/one-other-extension" grep_err 'template: 1 extension other than subjectAltName not requested'
check "$t/san/not-from-template" sh -c "! grep -q 'template: subjectAltName from the CA' '$TMP/err'"
check "$t/san/cert-has-configured-san" sh -c "'$OPENSSL_BIN' x509 -in '$TMP/cert.pem' -noout -ext subjectAltName | grep -q -x ' *DNS:conf.example'"

check "/conflicts/no-secret" no_secret_in "$TMP/out" "$TMP/err"
finish
