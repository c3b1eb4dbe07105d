#!/bin/sh
# /tokens: p11enroll tokens lists every token with the RFC 7512 URI
# p11tool --list-token-urls prints for it (percent-encoded: a UTF-8 label,
# a label of URI delimiters), --json against man/schema/tokens.schema.json,
# and each URI selects its token again (list --token URI).  /utf8: names
# print as UTF-8 in a UTF-8 locale and escaped in the C locale; control
# characters and bidi overrides are escaped in both; JSON is UTF-8 in both.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
need_cmd python3
need_cmd p11tool
setup
plan 26

U8=$(printf 'Zo\303\253 \303\251')        # "Zoë é"
U8_ESC='Zo\xC3\xAB \xC3\xA9'
DELIM='a b;c/d%e?f&g=h'
HOSTILE=$(printf 'x\033[31my\342\200\256z')  # ESC and U+202E (RIGHT-TO-LEFT OVERRIDE)
HOSTILE_ESC='x\x1B[31my\xE2\x80\xAEz'
for l in "$U8" "$DELIM" "$HOSTILE"; do
	make_token "$l" || exit 1
done
start_ca || exit 1
{
	conf_defaults
	printf '[test]\ntoken = pkcs11:token=%s\nlabel = enrolled-key\n' "$U8"
} > "$TMP/p11enroll.conf"

# the URIs as p11tool prints them, in slot order
"$(command -v p11tool)" --list-token-urls --provider "$SOFTHSM2_MODULE" > "$TMP/p11tool" 2> /dev/null
# uri LABEL: p11tool's URI of the token labelled LABEL (by its serial)
uri() {
	grep -F ";serial=$(token_serial "$1");" "$TMP/p11tool"
}

# expected LABEL_SHOWN...: tokens' text output for the three tokens, in
# p11tool's order, with each label as shown
expected() {
	while IFS= read -r u; do
		case $u in
		*"serial=$(token_serial "$U8");"*) l=$1 ;;
		*"serial=$(token_serial "$DELIM");"*) l=$DELIM ;;
		*) l=$2 ;;
		esac
		printf "%s\n  label '%s', manufacturer 'SoftHSM project', model 'SoftHSM v2'\n  module %s\n" \
			"$u" "$l" "$SOFTHSM2_MODULE"
	done < "$TMP/p11tool"
	echo "3 tokens"
}

check "/tokens/p11tool-sees-three" test "$(wc -l < "$TMP/p11tool")" -eq 3

# --- text, in a UTF-8 and in the C locale ----------------------------------
LC_ALL=C.UTF-8 p11e tokens
check "/tokens/utf8-locale/exit-0" expect_rc 0
expected "$U8" "$HOSTILE_ESC" > "$TMP/expected"
check "/tokens/utf8-locale/output" diff "$TMP/expected" "$TMP/out"
check "/tokens/uris-as-p11tool" diff "$TMP/p11tool" "$(grep '^pkcs11:' "$TMP/out" > "$TMP/uris"; echo "$TMP/uris")"
LC_ALL=C p11e tokens
check "/tokens/c-locale/exit-0" expect_rc 0
expected "$U8_ESC" "$HOSTILE_ESC" > "$TMP/expected"
check "/tokens/c-locale/output" diff "$TMP/expected" "$TMP/out"
check "/tokens/no-control-bytes" sh -c "! LC_ALL=C grep -q -P '[\\x00-\\x09\\x0b-\\x1f\\x7f]|\\xe2\\x80\\xae' '$TMP/out'"

# --- JSON: UTF-8 whatever the locale ----------------------------------------
for loc in C C.UTF-8; do
	LC_ALL=$loc p11e tokens --json
	check "/tokens/json-$loc/exit-0" expect_rc 0
	check "/tokens/json-$loc/schema" json_valid tokens "$TMP/out"
	cp "$TMP/out" "$TMP/tokens-$loc.json"
done
check "/tokens/json/same-in-both-locales" cmp "$TMP/tokens-C.json" "$TMP/tokens-C.UTF-8.json"
python3 - "$TMP/tokens-C.json" "$TMP/p11tool" "$U8" "$DELIM" "$HOSTILE" > "$TMP/json-check" <<'EOP'
import json, sys
d = json.load(open(sys.argv[1], encoding="utf-8"))
uris = open(sys.argv[2]).read().split()
print("uris", [t["uri"] for t in d["tokens"]] == uris)
# a label JSON keeps whole but for the bytes agent_escape escapes (ESC, U+202E)
hostile = sys.argv[5].replace("\033", "\\x1B").replace("\u202e", "\\xE2\\x80\\xAE")
print("labels", sorted(t["label"] for t in d["tokens"]) == sorted([sys.argv[3], sys.argv[4], hostile]))
print("flags", all(t["login_required"] and not t["user_pin_locked"] for t in d["tokens"]))
EOP
check "/tokens/json/values" diff "$TMP/json-check" - <<'EOT'
uris True
labels True
flags True
EOT

# --- each URI selects its token again ---------------------------------------
# roundtrip LABEL SHOWN: list --token URI (p11tool's) shows that token
roundtrip() {
	LC_ALL=C.UTF-8 p11e list test --token "$(uri "$1")"
	expect_rc 0 || return 1
	printf "token label '%s', manufacturer 'SoftHSM project', model 'SoftHSM v2', serial %s\n" \
		"$2" "$(token_serial "$1")" > "$TMP/expected"
	head -1 "$TMP/out" | diff "$TMP/expected" -
}
check "/tokens/roundtrip/utf8-label" roundtrip "$U8" "$U8"
check "/tokens/roundtrip/delimiters" roundtrip "$DELIM" "$DELIM"
check "/tokens/roundtrip/hostile" roundtrip "$HOSTILE" "$HOSTILE_ESC"
# each URI that tokens prints (not only p11tool's) too
i=0
while IFS= read -r u; do
	i=$((i + 1))
	p11e list test --token "$u"
	check "/tokens/roundtrip/own-uri-$i" expect_rc 0
done < "$TMP/uris"

# list in both locales: the label line
LC_ALL=C p11e list test --token "$(uri "$U8")"
check "/utf8/list-c-locale" sh -c "head -1 '$TMP/out' | grep -q -F \"token label '$U8_ESC'\""

# --- without a module: every module p11-kit knows ---------------------------
# (Debian registers SoftHSM2 with p11-kit; SOFTHSM2_CONF is this test's store)
sed -i '/^module = /d' "$TMP/p11enroll.conf"
LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$top_srcdir/tests/p11kit-lsan.supp" \
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0" p11e tokens
check "/tokens/p11-kit/exit-0" expect_rc 0
check "/tokens/p11-kit/all-three" test "$(grep -c -x -F -f "$TMP/p11tool" "$TMP/out")" -eq 3

# --- every PKCS#11 call of tokens failing in turn (tests/p11wrap) ------------
WRAP="$top_builddir/tests/p11wrap/p11wrap.so"
need_file "$WRAP"
P11WRAP_MODULE=$SOFTHSM2_MODULE
export P11WRAP_MODULE
call_sweep tokens "$P11ENROLL" -c "$TMP/p11enroll.conf" tokens --module "$WRAP"
check "/tokens/sweep/calls" test "$SWEPT" -gt 0
check "/tokens/sweep/all-clean" test "$SWEEP_BAD" -eq 0

# --- a module that is not there: exit 3, what to do --------------------------
p11e tokens --module "$TMP/no-such-module.so"
check "/tokens/no-module/exit-3" expect_rc 3
check "/tokens/no-module/message" grep_err "cannot list the tokens: .*no-such-module.so.*check that the module"

finish
