#!/bin/sh
# /listjson: list --json and check --json, validated against their schemas
# (man/schema/list.schema.json, check.schema.json) and their values
# checked against the token (openssl x509 on the certificate pkcs11-tool
# reads); list without a PIN (none configured, or a source that cannot be
# read) shows the public objects and never calls C_Login (tests/p11wrap's
# call log), leaving the token's PIN flags as they were.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
need_cmd python3
WRAP="$top_builddir/tests/p11wrap/p11wrap.so"
need_file "$WRAP"
setup
plan 52
start_ca || exit 1

TOK=lj
make_token "$TOK" || exit 1
write_conf "$TOK"
p11e enroll test
check "/listjson/setup/enroll" expect_rc 0

# jq FILE EXPR: the value of the Python expression EXPR over the JSON
# document d in FILE: a string as it is, anything else as JSON.
jq() {
	python3 - "$1" "$2" <<'EOP'
import json, sys
d = json.load(open(sys.argv[1], encoding="utf-8"))
v = eval(sys.argv[2], {"d": d})
print(v if isinstance(v, str) else json.dumps(v, ensure_ascii=False))
EOP
}

# same WHAT GOT EXPECTED
same() {
	[ "$2" = "$3" ] || { echo "# $1: got '$2', expected '$3'"; return 1; }
}

# The certificate as the token holds it, read without p11enroll.
"$PKCS11_TOOL" --module "$SOFTHSM2_MODULE" --slot "$(token_slot "$TOK")" --read-object \
	--type cert --label enrolled-key -o "$TMP/cert.der" > /dev/null 2>&1
"$OPENSSL_BIN" x509 -inform DER -in "$TMP/cert.der" -out "$TMP/cert.pem"
SERIAL=$("$OPENSSL_BIN" x509 -in "$TMP/cert.pem" -noout -serial | sed 's/^serial=//')
# notBefore/notAfter as Unix time (openssl's own text, converted)
epoch() {
	python3 -c 'import calendar, sys, time
print(calendar.timegm(time.strptime(sys.argv[1], "%b %d %H:%M:%S %Y GMT")))' "$1"
}
NB=$("$OPENSSL_BIN" x509 -in "$TMP/cert.pem" -noout -startdate | sed 's/^notBefore=//')
NA=$("$OPENSSL_BIN" x509 -in "$TMP/cert.pem" -noout -enddate | sed 's/^notAfter=//')
ISSUER=$("$OPENSSL_BIN" x509 -in "$TMP/cert.pem" -noout -issuer -nameopt compat | sed 's/^issuer=//')
KEYID=$(label_id "$TOK" cert enrolled-key)
TSERIAL=$(token_serial "$TOK")

# --- list --json, logged in ------------------------------------------------
p11e list test --json
check "/listjson/list/exit-0" expect_rc 0
check "/listjson/list/schema" json_valid list "$TMP/out"
cp "$TMP/out" "$TMP/list.json"
C='[o for o in d["objects"] if o["class"] == "certificate" and o["label"] == "enrolled-key"][0]'
P='[o for o in d["objects"] if o["class"] == "private-key"][0]'
check "/listjson/list/token-label" same label "$(jq "$TMP/list.json" 'd["token"]["label"]')" "$TOK"
check "/listjson/list/token-serial" same serial "$(jq "$TMP/list.json" 'd["token"]["serial"]')" \
	"$TSERIAL"
check "/listjson/list/logged-in" same logged_in "$(jq "$TMP/list.json" 'd["logged_in"]')" true
check "/listjson/list/cert-serial" same serial "$(jq "$TMP/list.json" "$C[\"serial\"]")" "$SERIAL"
# integers (a string would print quoted here), as check --json gives them
check "/listjson/list/cert-validity" same validity \
	"$(jq "$TMP/list.json" "[$C[\"not_before\"], $C[\"not_after\"]]")" \
	"[$(epoch "$NB"), $(epoch "$NA")]"
check "/listjson/list/cert-subject" same subject "$(jq "$TMP/list.json" "$C[\"subject\"]")" \
	"/CN=p11enroll test/O=Example"
check "/listjson/list/cert-issuer" same issuer "$(jq "$TMP/list.json" "$C[\"issuer\"]")" "$ISSUER"
check "/listjson/list/cert-id" same id "$(jq "$TMP/list.json" "$C[\"id\"]")" "$KEYID"
check "/listjson/list/cert-key" same key "$(jq "$TMP/list.json" "[$C[\"key_type\"], $C[\"key_bits\"]]")" \
	'["EC", 256]'
check "/listjson/list/private-key" same access \
	"$(jq "$TMP/list.json" "[$P[\"sensitive\"], $P[\"extractable\"], $P[\"local\"], $P[\"id\"]]")" \
	"[true, false, true, \"$KEYID\"]"
check "/listjson/list/ca-certs" same authorities \
	"$(jq "$TMP/list.json" 'sum(1 for o in d["objects"] if o["authority"])')" 2

# --- check --json ------------------------------------------------------------
p11e check test --json
check "/listjson/check/exit-0" expect_rc 0
check "/listjson/check/schema" json_valid check "$TMP/out"
cp "$TMP/out" "$TMP/check.json"
E='d["enrollments"][0]'
check "/listjson/check/values" same check \
	"$(jq "$TMP/check.json" "[$E[\"name\"], $E[\"exit\"], $E[\"token\"], $E[\"cert\"], $E[\"error\"]]")" \
	'["test", 0, "present", "present", null]'
check "/listjson/check/cert-serial" same serial "$(jq "$TMP/check.json" "$E[\"cert_serial\"]")" \
	"$SERIAL"
check "/listjson/check/not-after" same not_after "$(jq "$TMP/check.json" "$E[\"not_after\"]")" \
	"$(epoch "$NA")"
check "/listjson/check/not-before" same not_before "$(jq "$TMP/check.json" "$E[\"not_before\"]")" \
	"$(epoch "$NB")"
check "/listjson/check/token" same token \
	"$(jq "$TMP/check.json" "[$E[\"token_label\"], $E[\"token_serial\"], $E[\"token_serial_unique\"]]")" \
	"[\"$TOK\", \"$TSERIAL\", true]"
check "/listjson/check/key-id" same key_id "$(jq "$TMP/check.json" "$E[\"key_id\"]")" "$KEYID"
# the same fields as the key=value lines, typed
p11e check test
check "/listjson/check/kv-same" same kv "$(sed -n 's/^cert_serial=//p; s/^not_after=//p' "$TMP/out" |
	tr '\n' ' ')" "$SERIAL $(epoch "$NA") "

# two names, one without a certificate
printf '\n[other]\ntoken = pkcs11:token=%s\npin_source = file:%s\nlabel = no-such-key\nsubject = /CN=o\n' \
	"$TOK" "$TMP/pin" >> "$TMP/p11enroll.conf"
p11e check test other --json
check "/listjson/check-two/exit-0" expect_rc 0
check "/listjson/check-two/schema" json_valid check "$TMP/out"
check "/listjson/check-two/values" same two \
	"$(jq "$TMP/out" '[[e["name"], e["cert"], e["cert_serial"]] for e in d["enrollments"]]')" \
	"[[\"test\", \"present\", \"$SERIAL\"], [\"other\", \"none\", null]]"

# an absent token: exit 10, token "absent", the error in the document
p11e check test --json --token "pkcs11:token=no-such-token"
check "/listjson/check-absent/exit-10" expect_rc 10
check "/listjson/check-absent/schema" json_valid check "$TMP/out"
check "/listjson/check-absent/values" same absent \
	"$(jq "$TMP/out" "[$E[\"exit\"], $E[\"token\"], $E[\"cert\"], 'no-such-token' in $E[\"error\"]]")" \
	'[10, "absent", null, true]'
# a configuration that does not load: every name gets exit 2 in the document
cp "$TMP/p11enroll.conf" "$TMP/good.conf"
printf 'no_such_key = 1\n' >> "$TMP/p11enroll.conf"
p11e check test other --json
check "/listjson/check-bad-config/exit-2" expect_rc 2
check "/listjson/check-bad-config/schema" json_valid check "$TMP/out"
check "/listjson/check-bad-config/values" same bad \
	"$(jq "$TMP/out" '[[e["name"], e["exit"], e["token"]] for e in d["enrollments"]]')" \
	'[["test", 2, null], ["other", 2, null]]'
cp "$TMP/good.conf" "$TMP/p11enroll.conf"
p11e list test --json --token "pkcs11:token=no-such-token"
check "/listjson/list-absent/exit-10" expect_rc 10
check "/listjson/list-absent/no-document" test ! -s "$TMP/out"

# --- list without a PIN: no C_Login, the flags as they were ----------------
# flags: the token's flags line as pkcs11-tool shows it.
flags() {
	"$PKCS11_TOOL" --module "$SOFTHSM2_MODULE" --list-token-slots 2> /dev/null | awk -v l="$TOK" '
		/^Slot/ { mine = 0 } /^ *token label *:/ { sub(/^ *token label *: */, ""); mine = ($0 == l) }
		mine && /^ *token flags *:/ { print }'
}
BEFORE=$(flags)
# nopin CASE PIN_SOURCE_LINE [P11WRAP_VAR=VALUE...]: list through p11wrap
# with the PIN source PIN_SOURCE_LINE ("" none); $LOG the calls.
nopin() {
	_case=$1
	write_conf "$TOK" "module = $WRAP${2:+
$2}"
	[ -n "$2" ] || sed -i '/^pin_source = /d' "$TMP/p11enroll.conf"
	shift 2
	LOG="$TMP/$_case.p11log"
	: > "$LOG"
	env P11WRAP_MODULE="$SOFTHSM2_MODULE" P11WRAP_LOG="$LOG" "$@" \
		"$P11ENROLL" -c "$TMP/p11enroll.conf" list test > "$TMP/out" 2> "$TMP/err"
	RC=$?
}
logins() {
	n=$(grep -c '^C_Login ' "$LOG")
	[ "$n" -eq 0 ] || { echo "# C_Login called $n times"; return 1; }
}
# cert_lines FILE LABEL: list's lines of a CA certificate
cert_lines() {
	printf 'certificate "%s"\n  id:      %s\n  subject: %s\n  issuer:  %s\n  expires: %s\n' \
		"$2" "$(label_id "$TOK" cert "$2")" \
		"$("$OPENSSL_BIN" x509 -in "$1" -noout -subject -nameopt compat | sed 's/^subject=//')" \
		"$("$OPENSSL_BIN" x509 -in "$1" -noout -issuer -nameopt compat | sed 's/^issuer=//')" \
		"$("$OPENSSL_BIN" x509 -in "$1" -noout -enddate | sed 's/^notAfter=//')"
	echo "  category: authority"
}
{
	cat <<EOT
token label '$TOK', manufacturer 'SoftHSM project', model 'SoftHSM v2', serial $TSERIAL
(not logged in: private keys are not shown without a PIN)
certificate "enrolled-key"
  id:      $KEYID
  subject: /CN=p11enroll test/O=Example
  issuer:  $ISSUER
  expires: $NA
public key "enrolled-key"
  id:      $KEYID
  type:    EC 256 bits
EOT
	cert_lines "$TMP/ca/ca.pem" "p11enroll Test Issuing CA"
	cert_lines "$TMP/ca/root.pem" "p11enroll Test Root CA"
	echo "4 objects"
} > "$TMP/expected"

nopin none ""
check "/listjson/no-pin/exit-0" expect_rc 0
check "/listjson/no-pin/no-login" logins
check "/listjson/no-pin/output" diff "$TMP/expected" "$TMP/out"
check "/listjson/no-pin/flags-unchanged" same flags "$(flags)" "$BEFORE"

# a PIN file that is not there: a warning naming it, the public objects
nopin missing-file "pin_source = file:$TMP/no-such-pin"
check "/listjson/missing-pin-file/exit-0" expect_rc 0
check "/listjson/missing-pin-file/no-login" logins
check "/listjson/missing-pin-file/warns" grep_err "warning: .*no-such-pin.*not logged in"
check "/listjson/missing-pin-file/output" diff "$TMP/expected" "$TMP/out"

# an environment variable that is not set; the token says its PIN is on
# its final try: nothing is tried
nopin unset-env "pin_source = env:P11E_NO_SUCH_PIN" P11WRAP_TOKEN_FLAGS=0x20000
check "/listjson/unset-env/exit-0" expect_rc 0
check "/listjson/unset-env/no-login" logins
check "/listjson/unset-env/flags-unchanged" same flags "$(flags)" "$BEFORE"

# --json without a PIN: logged_in false, no private key
write_conf "$TOK" "module = $WRAP"
sed -i '/^pin_source = /d' "$TMP/p11enroll.conf"
LOG="$TMP/json.p11log"
: > "$LOG"
P11WRAP_MODULE="$SOFTHSM2_MODULE" P11WRAP_LOG="$LOG" p11e list test --json
check "/listjson/no-pin-json/exit-0" expect_rc 0
check "/listjson/no-pin-json/schema" json_valid list "$TMP/out"
check "/listjson/no-pin-json/no-login" logins
check "/listjson/no-pin-json/values" same nopin \
	"$(jq "$TMP/out" '[d["logged_in"], sorted(set(o["class"] for o in d["objects"]))]')" \
	'[false, ["certificate", "public-key"]]'

# every PKCS#11 call of list without a PIN failing in turn: an error that
# names it, or the listing as without the failure; never a login
write_conf "$TOK" "module = $WRAP"
sed -i '/^pin_source = /d' "$TMP/p11enroll.conf"
P11WRAP_MODULE=$SOFTHSM2_MODULE
export P11WRAP_MODULE
# libp11 0.4.12 leaks the slot it was setting up when C_GetSlotInfo or
# C_GetTokenInfo fails in PKCS11_enumerate_slots (tests/tokfail.sh)
SWEEP_NOLEAK="C_GetSlotInfo C_GetTokenInfo" \
	call_sweep list "$P11ENROLL" -c "$TMP/p11enroll.conf" list test
check "/listjson/no-pin-sweep/calls" test "$SWEPT" -gt 0
check "/listjson/no-pin-sweep/all-clean" test "$SWEEP_BAD" -eq 0
check "/listjson/no-pin-sweep/no-login" test "$(grep -c '^C_Login@' "$TMP/list.points")" -eq 0

finish
