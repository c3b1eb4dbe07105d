#!/bin/sh
# /config: configuration and command-line errors are clear, exit 2 and
# touch no token; the command line overrides the file.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
setup
plan 100
make_token conf || exit 1
start_ca || exit 1

# bad NAME MESSAGE_REGEX [p11enroll args]: exit 2 with the message.
bad() {
	name=$1 msg=$2
	shift 2
	p11e "$@"
	check "/config/$name/exit-2" expect_rc 2
	check "/config/$name/message" grep_err "$msg"
}

write_conf conf "tiemout = 5"
bad unknown-key "p11enroll.conf:[0-9]*: \\[test\\] tiemout: unknown key \\(did you mean 'timeout'\\?\\)" enroll test

printf '[test\nlabel = x\n' > "$TMP/syntax.conf"
"$P11ENROLL" -c "$TMP/syntax.conf" enroll > "$TMP/out" 2> "$TMP/err"; RC=$?
check "/config/syntax/exit-2" expect_rc 2
check "/config/syntax/line" grep_err 'syntax.conf:1: '

"$P11ENROLL" -c "$TMP/nonexistent.conf" enroll > "$TMP/out" 2> "$TMP/err"; RC=$?
check "/config/missing-file/exit-2" expect_rc 2
check "/config/missing-file/message" grep_err 'nonexistent.conf.*No such file'

write_conf conf
bad no-section "no enrollment \[other\]" enroll other
printf '\n[second]\nlabel = y\n' >> "$TMP/p11enroll.conf"
bad several-sections "several enrollments \((test, second|second, test)\)" enroll
sed -i 's/^\[second\]/implicit_confirm = maybe\n[second]/' "$TMP/p11enroll.conf"
bad bad-bool "\\[test\\] implicit_confirm: 'maybe' is not yes or no" enroll test

write_conf conf "key_type = dsa:1024"
bad key-type "key_type: 'dsa:1024' is not supported; allowed: ec:P-256" enroll test
write_conf conf "subject = CN=no-slash"
bad subject "must start with '/'" enroll test
write_conf conf "san = bogus:thing"
bad san "subject alternative names" enroll test
# dirName needs a configuration section: OpenSSL 3.0 crashed without one
write_conf conf "san = URI:http://x, dirName:sect"
bad san-dirname "dirName and email:copy are not supported" enroll test
write_conf conf
sed -i '/^trusted/d' "$TMP/p11enroll.conf"
bad missing-trusted "\\[test\\] lacks trusted, which every enrollment needs" enroll test
write_conf conf
bad bad-option "unknown option '--no-such-option'; see 'p11enroll help enroll'" enroll test --no-such-option
check "/config/bad-option/one-line" test "$(wc -l < "$TMP/err")" -eq 1
bad unknown-command "unknown command 'enrol'" enrol test
bad extra-argument "unexpected argument" enroll test extra
bad bad-timeout "not a number of seconds" enroll test --timeout soon
write_conf conf "secret_source = pass:$CMP_SECRET"
sed -i '/^secret_source = file:/d' "$TMP/p11enroll.conf"
bad secret-pass-refused "secret_source: not a source; allowed: file:PATH, fd:N or env:NAME" enroll test
check "/config/secret-pass-refused/not-echoed" no_secret_in "$TMP/err" "$TMP/out"
check "/config/errors-touch-no-token" test "$(count_objects conf)" -eq 0

# key_id: not hex is a usage error; a key that is not there is a token
# error; neither generates nor removes anything (the tests/p11wrap call
# log: no C_GenerateKeyPair, no C_DestroyObject).
write_conf conf "key_id = 4a1"
bad key-id-odd "key_id: '4a1' is not a CKA_ID in hex" enroll test
write_conf conf "key_id = 7777"
sed -i "s|^module = .*|module = $top_builddir/tests/p11wrap/p11wrap.so|" "$TMP/p11enroll.conf"
: > "$TMP/calls.log"
env P11WRAP_MODULE="$SOFTHSM2_MODULE" P11WRAP_LOG="$TMP/calls.log" \
	"$P11ENROLL" -c "$TMP/p11enroll.conf" enroll test > "$TMP/out" 2> "$TMP/err"
RC=$?
check "/config/key-id-absent/exit-3" expect_rc 3
check "/config/key-id-absent/message" grep_err 'key_id'
check "/config/key-id-absent/token-looked-at" grep -q '^C_FindObjectsInit rv=CKR_OK$' "$TMP/calls.log"
check "/config/key-id-absent/no-C_GenerateKeyPair" sh -c "! grep -q '^C_GenerateKeyPair ' '$TMP/calls.log'"
check "/config/key-id-absent/no-C_DestroyObject" sh -c "! grep -q '^C_DestroyObject ' '$TMP/calls.log'"
check "/config/key-id-absent/token-empty" test "$(count_objects conf)" -eq 0

# No token matches the URI: exit 3 and the message names it.
write_conf conf
p11e enroll test --token "pkcs11:token=absent-token"
check "/config/absent-token/exit-10" expect_rc 10
check "/config/absent-token/message" grep_err 'absent-token'

# Token selection by the other RFC 7512 attributes, and by p11-kit module name.
slots() {
	"$SOFTHSM2_UTIL" --show-slots | awk -v want="$1" '
		/^Slot / { slot = $2 } /Serial number:/ { serial = $3 }
		/Label:/ { if ($2 == want) { print slot, serial; exit } }'
}
set -- $(slots conf)
SLOT=$1 SERIAL=$2
write_conf conf
for uri in "pkcs11:serial=$SERIAL" "pkcs11:slot-id=$SLOT" \
	"pkcs11:manufacturer=SoftHSM%20project;model=SoftHSM%20v2;token=conf"; do
	p11e list test --token "$uri"
	check "/config/select/$uri/exit-0" expect_rc 0
	check "/config/select/$uri/listed" grep -q 'objects\?$' "$TMP/out"
done
p11e list test --token "pkcs11:token=conf;serial=0000000000000000"
check "/config/select/label-and-wrong-serial/exit-10" expect_rc 10
p11e list test --token "not-a-uri"
check "/config/select/bad-uri/exit-2" expect_rc 2
check "/config/select/bad-uri/message" grep_err 'URI'
if grep -q -s 'softhsm2' /usr/share/p11-kit/modules/softhsm2.module; then
	p11e list test --module softhsm2
	check "/config/select/p11-kit-module-name/exit-0" expect_rc 0
else
	ok "/config/select/p11-kit-module-name # SKIP no p11-kit module softhsm2"
fi

# A PIN in the token URI is refused when the configuration is read, with
# the file and line, without echoing it, before any token is opened.
PV=pin-value
write_conf conf
sed -i "s|^token = .*|token = pkcs11:token=conf;$PV=leak-0042-pin|" "$TMP/p11enroll.conf"
bad pin-value/file "p11enroll.conf:1[0-9]: \\[test\\] token: .*$PV.*pin_source" enroll test
check "/config/pin-value/file/not-echoed" sh -c "! grep -q leak-0042 '$TMP/err'"
write_conf conf
sed -i "s|^token = .*|token = pkcs11:token=conf?PIN-Value=leak-0042-pin|" "$TMP/p11enroll.conf"
bad pin-value/query "\\[test\\] token: .*$PV" list test
check "/config/pin-value/query/not-echoed" sh -c "! grep -q leak-0042 '$TMP/err'"
write_conf conf
bad pin-value/cli "(--token): .*$PV.*pin.source" list test --token "pkcs11:token=conf;$PV=leak-0042-pin"
check "/config/pin-value/cli/not-echoed" sh -c "! grep -q leak-0042 '$TMP/err'"

# The command line overrides the file.
write_conf conf
sed -i "s|^label = .*|label = from-file|" "$TMP/p11enroll.conf"
p11e enroll test --label from-cli --subject "/CN=from cli"
check "/config/override/exit-0" expect_rc 0
check "/config/override/label" sh -c "'$PKCS11_TOOL' --module '$SOFTHSM2_MODULE' --token-label conf --list-objects --type cert | grep -q 'label: *from-cli'"
check "/config/override/subject" grep -q 'CN *= *from cli\|CN=from cli' "$TMP/out"

# The whole file is checked when it is loaded, by every command and the
# agent, and check-config runs the same checks alone: each mistake the
# issue names is told with file:line, section and key, all of them at once,
# and nothing touches the token.  (Each was once accepted at start and
# failed later or never.)
write_conf conf
p11e check-config
check "/config/check-config/ok/exit-0" expect_rc 0
check "/config/check-config/ok/says" grep -q -x "$TMP/p11enroll.conf: ok, 1 enrollment(s): test" "$TMP/out"
write_conf conf "hook_success = notify-send renewed
key_type = ec:P-521
pin_source = file:$TMP/no-such-pin
timeout = 5
timeout = 6"
printf '[other]\nlabel = o\n' >> "$TMP/p11enroll.conf"
n0=$(count_objects conf)
p11e check-config
check "/config/check-config/bad/exit-2" expect_rc 2
check "/config/check-config/bad/relative-hook" grep_err "p11enroll.conf:1[0-9]: \\[test\\] hook_success: 'notify-send' is not an absolute path"
check "/config/check-config/bad/key-type" grep_err "p11enroll.conf:1[0-9]: \\[test\\] key_type: 'ec:P-521' is not supported"
check "/config/check-config/bad/pin-file" grep_err "p11enroll.conf:1[0-9]: \\[test\\] pin_source: cannot read $TMP/no-such-pin: No such file"
check "/config/check-config/bad/duplicate" grep_err "p11enroll.conf:1[0-9]: \\[test\\] timeout: set again \\(first on line 1[0-9]\\)"
check "/config/check-config/bad/count" grep_err "4 error\\(s\\) in $TMP/p11enroll.conf"
check "/config/check-config/bad/no-token-touched" test "$(count_objects conf)" -eq "$n0"
# a PIN source that is a directory is refused; a FIFO (a PIN handed over
# by another process) is checked without being opened, which would block
write_conf conf "pin_source = file:$TMP"
p11e check-config
check "/config/check-config/pin-directory/exit-2" expect_rc 2
check "/config/check-config/pin-directory/says" grep_err "pin_source: $TMP is a directory"
mkfifo "$TMP/pin-fifo"
write_conf conf "pin_source = file:$TMP/pin-fifo"
p11e check-config
check "/config/check-config/pin-fifo/exit-0" expect_rc 0
# the same file as before, for a command: exit 2, every error
write_conf conf "hook_success = notify-send renewed
key_type = ec:P-521
pin_source = file:$TMP/no-such-pin
timeout = 5
timeout = 6"
printf '[other]\nlabel = o\n' >> "$TMP/p11enroll.conf"
# (check, which reads the PIN file with --recover: list goes on without a
# PIN it cannot read, tests/listjson.sh)
p11e check test
check "/config/load/bad/exit-2" expect_rc 2
check "/config/load/bad/all-errors" test "$(grep -c 'p11enroll.conf:1[0-9]: \[test\]' "$TMP/err")" -eq 4
# an enrollment the command does not use is still checked: [other] lacks
# the token (it once backed off forever in the agent)
write_conf conf
printf '[other]\nlabel = o\n' >> "$TMP/p11enroll.conf"
p11e list test
check "/config/load/other-enrollment/exit-2" expect_rc 2
check "/config/load/other-enrollment/lacks-token" grep_err "\\[other\\] lacks token, which every enrollment needs"
"$P11ENROLL" -c "$TMP/p11enroll.conf" agent > "$TMP/out" 2> "$TMP/err"; RC=$?
check "/config/load/agent-refuses/exit-2" expect_rc 2
check "/config/load/agent-refuses/says" grep_err "\\[other\\] lacks token"
# the command line completes the enrollment it names
write_conf conf
sed -i '/^trusted = /d' "$TMP/p11enroll.conf"
p11e list test --trusted "$TMP/ca/root.pem"
check "/config/load/command-line-completes/exit-0" expect_rc 0
p11e check-config test
check "/config/check-config/no-name/exit-2" expect_rc 2

# A client of the agent (status, reload, clear) reads only what decides the
# control socket: the unnamed section and the first enrollment's (by name,
# as the agent orders them).  No agent runs here: exit 5, naming the socket.
write_conf conf
printf '[zz]\nretry_min = soon\ntiemout = 5\n' >> "$TMP/p11enroll.conf"
p11e -v -v status
check "/config/client/other-broken/exit-5" expect_rc 5
check "/config/client/other-broken/socket" grep_err "no agent answers on $TMP/state/control:"
check "/config/client/other-broken/head-only" grep_err "read \[default\] and \[test\] of 2 enrollment"
printf '[aa]\nstate_dir = %s\n' "$TMP/state-aa" >> "$TMP/p11enroll.conf"
p11e reload
check "/config/client/first-section-decides" grep_err "no agent answers on $TMP/state-aa/control:"
p11e clear nosuch
check "/config/client/clear-unknown/exit-2" expect_rc 2
check "/config/client/clear-unknown/message" grep_err "p11enroll.conf has no enrollment \[nosuch\]"
# a socket that cannot be found is an error, with its line
write_conf conf "state_dir = state"
bad client-relative-state "p11enroll.conf:[0-9]+: \[test\] state_dir: 'state' is not an absolute path" status
# what the head alone cannot answer for (an .include) is read whole, with
# every check
write_conf conf
printf '[zz]\nretry_min = soon\n' > "$TMP/included.conf"
printf '.include %s\n' "$TMP/included.conf" >> "$TMP/p11enroll.conf"
p11e -v -v status
check "/config/client/include/exit-2" expect_rc 2
check "/config/client/include/whole" grep_err "\[zz\] retry_min: 'soon' is not a duration"

# --help and --version.
"$P11ENROLL" --help > "$TMP/out"; RC=$?
check "/config/help" expect_rc 0
"$P11ENROLL" --version > "$TMP/out"; RC=$?
check "/config/version" grep -q '^p11enroll [0-9]' "$TMP/out"
"$P11ENROLL" > "$TMP/out" 2> "$TMP/err"; RC=$?
check "/config/no-command/exit-2" expect_rc 2
finish
