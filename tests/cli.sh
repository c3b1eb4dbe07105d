#!/bin/sh
# /cli: the command line people expect.  `p11enroll help COMMAND` and
# `COMMAND --help` print the command's synopsis, what it does, its own
# options and the settings flags it takes (those of the settings table,
# check-config --keys); an unknown option or command is one line with a
# pointer to the help, exit 2; a flag the command does not take is refused
# the same way before anything is done; -q leaves errors only.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
. "$top_srcdir/tests/agent-lib.sh"
need_tools
setup
trap 'kill_agents; cleanup' EXIT
plan 58
start_ca || exit 1
make_token cli || exit 1
write_conf cli "cert_out = $TMP/cert.pem"

# same NAME FILE: FILE is $TMP/expect (a diff otherwise).
same() {
	diff -u "$TMP/expect" "$2" > "$TMP/diff" && return 0
	echo "# $1 differs:"
	sed 's/^/#   /' "$TMP/diff"
	return 1
}

# --- help ---------------------------------------------------------------------
cat > "$TMP/expect" << 'EOT'
usage: p11enroll [options] status [--json] [--all] [NAME]

Asks the running agent what it tracks: each enrollment's state, certificate
expiry, next step and last error. With --all, reads the configuration and the
agent's state files instead, without an agent, token or PIN.

Options:
      --json             as a JSON document (p11enroll-formats(5))
      --all              every enrollment from the state files, no agent needed

Settings (override the enrollment's keys in the configuration file, see
p11enroll.conf(5); a yes/no setting also has a --no- form):
  --state-dir DIR

Every command also takes -c FILE, --user, --syslog, -v, -q (p11enroll help).
EOT
p11e help status
check "/cli/help-status/exit-0" expect_rc 0
check "/cli/help-status/whole" same "help status" "$TMP/out"
p11e status --help
check "/cli/status--help/same" same "status --help" "$TMP/out"

# help enroll: all but the settings' lines compared whole; those are the
# settings table's flags, every one (compared as sets).
p11e help enroll
check "/cli/help-enroll/exit-0" expect_rc 0
sed '/^Settings/,/^$/{/^  --/d}' "$TMP/out" > "$TMP/fixed"
cat > "$TMP/expect" << 'EOT'
usage: p11enroll [options] enroll [--batch FILE | --request-out FILE] [NAME]

Generates a key pair on the token, asks the CA for its certificate with an
initialization request (ir) and stores the certificate on the token under the
enrollment's label, next to its key. A valid certificate already under the
label is replaced only with --replace. With --batch, enrolls every row of a CSV
file in one process. With --request-out, the request is written to a file for
the CA instead (offline; finish with resume --response-in).

Options:
      --batch FILE       every row of a CSV file, in one process
      --request-out FILE offline: write the CMP message (DER) to FILE for the
                         CA instead of sending it

Settings (override the enrollment's keys in the configuration file, see
p11enroll.conf(5); a yes/no setting also has a --no- form):

Every command also takes -c FILE, --user, --syslog, -v, -q (p11enroll help).
EOT
check "/cli/help-enroll/whole-but-settings" same "help enroll" "$TMP/fixed"
sed -n '/^Settings/,/^$/{/^  --/p}' "$TMP/out" | grep -o -E -- '--[a-z][a-z-]*' | sort > "$TMP/shown"
"$P11ENROLL" check-config --keys | cut -f 2 | grep -v '^-$' | sort > "$TMP/expect"
check "/cli/help-enroll/every-setting" same "help enroll's settings" "$TMP/shown"
# Short: every setting is listed (above), so the listing grows with them;
# it must stay a packed list (three or more per line), not one per line.
n_set=$(wc -l < "$TMP/expect")
n_lines=$(sed -n '/^Settings/,/^$/{/^  --/p}' "$TMP/out" | wc -l)
check "/cli/help-enroll/short" test "$n_lines" -le $((n_set / 3 + 1))
p11e enroll --help
"$P11ENROLL" help enroll > "$TMP/expect"
check "/cli/enroll--help/same" same "enroll --help" "$TMP/out"
p11e help
check "/cli/help/exit-0" expect_rc 0
"$P11ENROLL" --help > "$TMP/expect"
check "/cli/help/is--help" same "help" "$TMP/out"
check "/cli/help/names-every-command" sh -c \
	'for c in $("$1" help --complete); do grep -q "^  $c\\b" "$2" || exit 1; done' sh \
	"$P11ENROLL" "$TMP/out"
check "/cli/help/short" test "$(wc -l < "$TMP/out")" -le 50

# --- refusals: one line, exit 2, nothing done -----------------------------------
# refused TAG EXPECTED-LINE ARGS...
refused() {
	_t=$1 _l=$2
	shift 2
	p11e "$@"
	check "/cli/refused/$_t/exit-2" expect_rc 2
	printf '%s\n' "$_l" > "$TMP/expect"
	check "/cli/refused/$_t/one-line" same "$_t" "$TMP/err"
}
refused unknown-option "p11enroll: error: unknown option '--bogus'; see 'p11enroll help enroll'" \
	enroll --bogus test
refused unknown-option-first \
	"p11enroll: error: unknown option '--bogus'; see 'p11enroll help status'" --bogus status
refused unknown-short "p11enroll: error: unknown option '-x'; see 'p11enroll help list'" \
	list -x test
refused no-argument "p11enroll: error: option '--cert' needs an argument; see 'p11enroll help revoke'" \
	revoke test --cert
refused unknown-command "p11enroll: error: unknown command 'enrol'; see 'p11enroll help'" \
	enrol test
refused help-unknown "p11enroll: error: unknown command 'enrol'; see 'p11enroll help'" help enrol
refused enroll-json "p11enroll: error: --json does not apply to enroll; see 'p11enroll help enroll'" \
	enroll --json test
refused status-delete "p11enroll: error: --delete does not apply to status; see 'p11enroll help status'" \
	status --delete
# a setting's value is not even looked at where the setting does not apply
refused status-subject "p11enroll: error: --subject does not apply to status; see 'p11enroll help status'" \
	status --subject X
refused check-config-state-dir \
	"p11enroll: error: --state-dir does not apply to check-config; see 'p11enroll help check-config'" \
	check-config --state-dir /tmp
refused renew-batch "p11enroll: error: --batch does not apply to renew; see 'p11enroll help renew'" \
	renew --batch x.csv test
check "/cli/refused/nothing-enrolled" test ! -e "$TMP/cert.pem"

# --- -q: errors only ------------------------------------------------------------
p11e -q enroll test
check "/cli/quiet/enroll/exit-0" expect_rc 0
check "/cli/quiet/enroll/silent" test ! -s "$TMP/out" -a ! -s "$TMP/err"
check "/cli/quiet/enroll/did-it" test -s "$TMP/cert.pem"
p11e renew --local -q test
check "/cli/quiet/renew/exit-0" expect_rc 0
check "/cli/quiet/renew/silent" test ! -s "$TMP/out" -a ! -s "$TMP/err"
# the same renewal without -q does say what it did
p11e renew --local test
check "/cli/quiet/renew/loud-without" grep -q '^renewed test$' "$TMP/out"
# through an agent: the renewal's report goes, status still answers
check "/cli/quiet/agent/started" agent_start "$TMP/p11enroll.conf" "$TMP/agent.log"
p11e -q renew test
check "/cli/quiet/agent/renew-exit-0" expect_rc 0
check "/cli/quiet/agent/renew-silent" test ! -s "$TMP/out" -a ! -s "$TMP/err"
p11e renew test
check "/cli/quiet/agent/renew-loud-without" grep -q '^renewed test$' "$TMP/out"
p11e -q status
check "/cli/quiet/agent/status-answers" sh -c '[ "$1" = 0 ] && grep -q "test" "$2"' sh "$RC" \
	"$TMP/out"
agent_stop "$APID"
# --delete-revoked: a flag of a setting that had none
p11e -q revoke --reason superseded --delete-revoked test
check "/cli/quiet/revoke/exit-0" expect_rc 0
check "/cli/quiet/revoke/silent" test ! -s "$TMP/out" -a ! -s "$TMP/err"
p11e check test
check "/cli/flag/delete-revoked/deleted" grep -q -x 'cert=none' "$TMP/out"
# --max-response-size: the CA's ip (certificate and chain) is larger than 1 KiB
rm -f "$TMP/cert.pem"
p11e enroll test --max-response-size 1024
check "/cli/flag/max-response-size/refused" sh -c '[ "$1" = 5 ] && [ ! -e "$2" ]' sh "$RC" \
	"$TMP/cert.pem"
check "/cli/flag/max-response-size/says" grep_err 'larger than the limit of 1024 bytes'

p11e enroll test --max-response-size 1023
check "/cli/flag/max-response-size/checked" grep_err "max-response-size"
p11e -q check-config
check "/cli/quiet/check-config/silent" test "$RC" = 0 -a ! -s "$TMP/out" -a ! -s "$TMP/err"
# an error still shows, alone
p11e -q enroll test --token pkcs11:token=absent-token
check "/cli/quiet/error/exit-10" expect_rc 10
check "/cli/quiet/error/only-errors" sh -c '[ -s "$1" ] && ! grep -v "^p11enroll: error: " "$1"' \
	sh "$TMP/err"

# --- the demo's CA again (README): tools/demo.sh --ca-only on a demo's state
# (made here as the demo makes it: a token enrolled at the CA, whose files
# stay in ca/), and the renewal command it prints works -----------------------
S="$TMP/demo"
mkdir -p "$S"
make_token demo || exit 1
cp "$SOFTHSM2_CONF" "$S/softhsm2.conf"
cp "$TMP/pin" "$S/pin"
cp "$TMP/secret" "$S/secret"
{ printf '[demo]\n'; conf_defaults; cat; } > "$S/p11enroll.conf" << EOC
token = pkcs11:token=demo
pin_source = file:$S/pin
label = demo
subject = /CN=p11enroll demo/O=Example
EOC
"$P11ENROLL" -c "$S/p11enroll.conf" -q enroll demo > "$TMP/out" 2> "$TMP/err"; RC=$?
check "/cli/demo-ca-only/enrolled" expect_rc 0
stop_ca
cp -r "$TMP/ca" "$S/ca"
P11E_DEMO_STATE=$S P11E_DEMO_BUILD=$top_builddir sh "$top_srcdir/tools/demo.sh" --ca-only \
	> "$TMP/demo.out" 2>&1 &
DEMO=$!
i=0
while ! grep -q 'renew the demo token with:' "$TMP/demo.out" && kill -0 "$DEMO" 2> /dev/null &&
	[ $i -lt "$(scaled 300)" ]; do
	sleep 0.1
	i=$((i + 1))
done
cmd=$(sed -n 's/^  SOFTHSM2_CONF=/SOFTHSM2_CONF=/p' "$TMP/demo.out")
check "/cli/demo-ca-only/prints-the-command" test -n "$cmd"
sh -c "$cmd" > "$TMP/out" 2> "$TMP/err"; RC=$?
check "/cli/demo-ca-only/renew-works" sh -c '[ "$1" = 0 ] && grep -q "^renewed demo$" "$2"' sh \
	"$RC" "$TMP/out" || { cat "$TMP/demo.out" "$TMP/err" | sed 's/^/#   /'; }
kill "$DEMO" 2> /dev/null
wait "$DEMO"
finish
