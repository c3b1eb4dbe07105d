#!/bin/sh
# /tracked: status --all (and its alias list-tracked) shows every
# enrollment from the configuration and the agent's state files, with no
# agent running and no token opened: state, subject, CA, token, the
# certificate's serial and notAfter, the next attempt, the last error;
# --json against man/schema/tracked.schema.json.  Where there is no state
# file, the certificate comes from cert_out, not from the token.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
. "$top_srcdir/tests/agent-lib.sh"
need_tools
need_cmd python3
setup
trap 'kill_agents; cleanup' EXIT
plan 31
start_ca || exit 1

TOK=tr
make_token "$TOK" || exit 1
# A: the agent's file, one enrollment; B: the same and one never run
write_conf "$TOK" "cert_out = $TMP/test.pem"
A="$TMP/p11enroll.conf"
B="$TMP/b.conf"
{
	cat "$A"
	printf '\n[b]\ntoken = pkcs11:token=%s\npin_source = file:%s\nlabel = b-key\nsubject = /CN=b\n' \
		"$TOK" "$TMP/pin"
} > "$B"

# jq FILE EXPR: the Python expression EXPR over the JSON document d in FILE
# (a string as it is, anything else as JSON).
jq() {
	python3 - "$1" "$2" <<'EOP'
import json, sys
d = json.load(open(sys.argv[1], encoding="utf-8"))
v = eval(sys.argv[2], {"d": d})
print(v if isinstance(v, str) else json.dumps(v))
EOP
}
same() {
	[ "$2" = "$3" ] || { echo "# $1: got '$2', expected '$3'"; return 1; }
}

# --- enrolled by hand, never tracked: the certificate from cert_out ---------
pe "$A" enroll test
check "/tracked/setup/enroll" expect_rc 0
SERIAL=$("$OPENSSL_BIN" x509 -in "$TMP/test.pem" -noout -serial | sed 's/^serial=//')
pe "$B" status --all --json
check "/tracked/untracked/exit-0" expect_rc 0
check "/tracked/untracked/schema" json_valid tracked "$TMP/out"
T='[e for e in d["enrollments"] if e["name"] == "test"][0]'
check "/tracked/untracked/from-cert-out" same untracked \
	"$(jq "$TMP/out" "[$T[\"state\"], $T[\"state_file\"], $T[\"certificate_serial\"], $T[\"certificate_from\"], $T[\"subject_from\"]]")" \
	"[\"unknown\", false, \"$SERIAL\", \"cert_out\", \"certificate\"]"

# --- tracked by an agent, then stopped ----------------------------------------
agent_start "$A" "$TMP/agent.log" || exit 1
check "/tracked/agent/valid" wait_for 20 is "$A" test state valid
"$P11ENROLL" -c "$A" status --json > "$TMP/live.json" 2> /dev/null
agent_stop "$APID"
check "/tracked/agent/stopped" test "$ARC" -eq 0
# no agent answers now: status alone fails, status --all does not
pe "$A" status
check "/tracked/no-agent/status-exit-5" expect_rc 5

pe "$B" status --all --json
check "/tracked/json/exit-0" expect_rc 0
check "/tracked/json/schema" json_valid tracked "$TMP/out"
cp "$TMP/out" "$TMP/all.json"
L='[e for e in d["enrollments"] if e["name"] == "test"][0]'
check "/tracked/json/state" same state "$(jq "$TMP/all.json" "$T[\"state\"], $T[\"state_file\"]")" \
	'["valid", true]'
check "/tracked/json/serial-as-token" same serial \
	"$(jq "$TMP/all.json" "$T[\"certificate_serial\"], $T[\"certificate_from\"]")" \
	"[\"$(jq "$TMP/live.json" "$L[\"certificate_serial\"]")\", \"state\"]"
check "/tracked/json/serial-as-openssl" same serial \
	"$(jq "$TMP/all.json" "$T[\"certificate_serial\"]")" "$SERIAL"
# what both show, with the same keys and values (times as integers) as the
# live agent's status --json
K='("not_before", "not_after", "next_attempt", "last_success", "last_attempt", "consecutive_failures", "renewals", "last_error_time", "ca_status", "ca_fail_info")'
check "/tracked/json/as-status" same as-status "$(jq "$TMP/all.json" "[$T[k] for k in $K]")" \
	"$(jq "$TMP/live.json" "[$L[k] for k in $K]")"
NA=$("$OPENSSL_BIN" x509 -in "$TMP/test.pem" -noout -enddate | sed 's/^notAfter=//')
check "/tracked/json/not-after-as-openssl" same not_after \
	"$(jq "$TMP/all.json" "$T[\"not_after\"]")" \
	"$(python3 -c 'import calendar, sys, time
print(calendar.timegm(time.strptime(sys.argv[1], "%b %d %H:%M:%S %Y GMT")))' "$NA")"
check "/tracked/json/times-integers" same integers \
	"$(jq "$TMP/all.json" "[type($T[k]).__name__ for k in ('not_before', 'not_after', 'next_attempt')]")" \
	'["int", "int", "int"]'
check "/tracked/json/config-fields" same config \
	"$(jq "$TMP/all.json" "[$T[\"server\"], $T[\"token\"], $T[\"label\"], $T[\"subject\"]]")" \
	"[\"$CA_URL\", \"pkcs11:token=$TOK\", \"enrolled-key\", \"/CN=p11enroll test/O=Example\"]"
B_='[e for e in d["enrollments"] if e["name"] == "b"][0]'
check "/tracked/json/never-run" same b \
	"$(jq "$TMP/all.json" "[$B_[\"state\"], $B_[\"certificate_serial\"], $B_[\"subject\"], $B_[\"subject_from\"], $B_[\"next_attempt\"]]")" \
	'["unknown", null, "/CN=b", "configuration", null]'

# --- the text, in full, for the enrollment never run ----------------------------
pe "$B" status --all b
check "/tracked/text/exit-0" expect_rc 0
cat > "$TMP/expected" <<EOT
enrollment 'b': unknown
  subject:      /CN=b (configured)
  CA:           $CA_URL
  token:        pkcs11:token=$TOK
  label:        b-key
  serial:       -
  not after:    -
  next attempt: -
  last success: -
EOT
check "/tracked/text/never-run" diff "$TMP/expected" "$TMP/out"
pe "$B" list-tracked b
check "/tracked/list-tracked/same" diff "$TMP/expected" "$TMP/out"

# --- a stopped enrollment with its error; a latched PIN ----------------------------
printf '# p11enroll agent state\nversion 1\nnext 1900000000\nfailures 3\nstopped 1\nlast_error %s\n' \
	'the CA rejected the request: badPOP \x1B[31m' > "$TMP/state/b.agent"
cat > "$TMP/expected" <<EOT
enrollment 'b': stopped
  subject:      /CN=b (configured)
  CA:           $CA_URL
  token:        pkcs11:token=$TOK
  label:        b-key
  serial:       -
  not after:    -
  next attempt: -
  last success: -
  failures:     3
  last error:   the CA rejected the request: badPOP \x1B[31m
EOT
pe "$B" status --all b
check "/tracked/stopped/exit-0" expect_rc 0
check "/tracked/stopped/text" diff "$TMP/expected" "$TMP/out"
pe "$B" status --all b --json
check "/tracked/stopped/json" same stopped \
	"$(jq "$TMP/out" '[d["enrollments"][0][k] for k in ("state", "consecutive_failures", "last_error", "next_attempt")]')" \
	'["stopped", 3, "the CA rejected the request: badPOP \\x1B[31m", null]'
# the CA's rejection as the agent keeps it (track.c's lines), as status --json names it
printf 'version 1\nnext 1900000000\nfailures 1\nlast_error %s\nlast_error_time 1800000000\n%s\n' \
	'the CA rejected the request' 'ca_status rejection' > "$TMP/state/b.agent"
printf 'ca_fail_info badPOP badCertTemplate\n' >> "$TMP/state/b.agent"
pe "$B" status --all b --json
check "/tracked/rejected/schema" json_valid tracked "$TMP/out"
check "/tracked/rejected/json" same rejected \
	"$(jq "$TMP/out" '[d["enrollments"][0][k] for k in ("state", "last_error_time", "ca_status", "ca_fail_info", "next_attempt")]')" \
	'["backoff", 1800000000, "rejection", ["badPOP", "badCertTemplate"], 1900000000]'
printf 'version 1\nnext 1900000000\npin_latch file:/x ino=1\n' > "$TMP/state/b.agent"
pe "$B" status --all b --json
check "/tracked/pin-latched/json" same latched \
	"$(jq "$TMP/out" '[d["enrollments"][0][k] for k in ("state", "next_attempt")]')" \
	'["pin-rejected", null]'
printf 'version 1\nnext 1900000000\nfailures 2\n' > "$TMP/state/b.agent"
pe "$B" status --all b --json
check "/tracked/backoff/json" same backoff \
	"$(jq "$TMP/out" '[d["enrollments"][0][k] for k in ("state", "next_attempt")]')" \
	'["backoff", 1900000000]'

# --- a name that is not in the file ----------------------------------------------
pe "$B" status --all no-such
check "/tracked/unknown-name/exit-2" expect_rc 2
check "/tracked/unknown-name/message" grep_err "no-such"

# a configuration that does not load: exit 2, each error said
printf 'no_such_key = 1\n' >> "$B"
pe "$B" status --all
check "/tracked/bad-config/exit-2" expect_rc 2
check "/tracked/bad-config/message" grep_err "no_such_key"

finish
