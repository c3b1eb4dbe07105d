#!/bin/sh
# /statusjson: `p11enroll status --json` of a real agent matches its
# documented schema (man/schema/status.schema.json, p11enroll-formats(5))
# in every state a test reaches cheaply: valid, waiting-token,
# pin-rejected, backoff with an error, stopped by a CA rejection with its
# failInfo; and the status text shows the CA's status after a rejection.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
. "$top_srcdir/tests/agent-lib.sh"
need_tools
need_cmd python3
setup
plan 20
trap 'kill_agents; cleanup' EXIT
trap 'exit 1' HUP PIPE

show() {
	sed 's/^/#   /' "$1"
}

# The rejection only while $TMP/reject exists.
start_ca --fault reject=badCertTemplate --fault-when "$TMP/reject" || exit 1
for t in sj-ok sj-down sj-rej sj-pin; do
	make_token $t || exit 1
done
C="$TMP/sj.conf"
L="$TMP/agent.log"
printf '%s\n' "$USER_PIN" | tr 0-9 1-90 > "$TMP/wrong-pin"
{
	conf_defaults
	for n in ok down rej pin; do
		printf '[%s]\ntoken = pkcs11:token=sj-%s\npin_source = file:%s\n' "$n" "$n" "$TMP/pin"
		printf 'label = key-%s\nsubject = /CN=%s/O=Example\n\n' "$n" "$n"
	done
	printf '[gone]\ntoken = pkcs11:token=sj-gone\npin_source = file:%s\n' "$TMP/pin"
	printf 'label = key-gone\nsubject = /CN=gone/O=Example\n'
} > "$C"
for n in ok down rej pin; do
	pe "$C" enroll $n
	[ "$RC" = 0 ] || { echo "# enroll $n: exit $RC"; show "$TMP/err"; }
done
check "/statusjson/setup-enrolled" expect_rc 0
# then: the PIN file of [pin] is wrong, the CA of [down] does not answer
sed -i -e "/^\[pin\]$/,/^$/s|^pin_source = .*|pin_source = file:$TMP/wrong-pin|" \
	-e "/^\[down\]$/a server = http://127.0.0.1:1/.well-known/cmp" "$C"

agent_start "$C" "$L" || exit 1
A=$APID
check "/statusjson/start/ok-valid" wait_for 30 is "$C" ok state valid
check "/statusjson/start/pin-rejected" wait_for 30 is "$C" pin state pin-rejected
check "/statusjson/start/gone-waiting-token" wait_for 30 is "$C" gone state waiting-token
check "/statusjson/start/rej-valid" wait_for 30 is "$C" rej state valid
"$P11ENROLL" -c "$C" status --json > "$TMP/s1.json"
check "/statusjson/start/valid-schema" json_valid status "$TMP/s1.json"
check "/statusjson/start/pin-counted" is "$C" pin consecutive_failures 1
check "/statusjson/start/pin-error-time" test "$(jget "$C" pin last_error_time)" != null

# backoff with an error: the CA of [down] refuses connections
pe "$C" renew down
check "/statusjson/backoff/renew-exit-5" expect_rc 5
check "/statusjson/backoff/state" wait_for 20 is "$C" down state backoff
"$P11ENROLL" -c "$C" status --json > "$TMP/s2.json"
check "/statusjson/backoff/schema" json_valid status "$TMP/s2.json"
check "/statusjson/backoff/no-ca-status" is "$C" down ca_status null

# stopped by the CA's rejection: its status and failInfo
: > "$TMP/reject"
pe "$C" renew rej
check "/statusjson/stopped/renew-exit-6" expect_rc 6
check "/statusjson/stopped/state" wait_for 20 is "$C" rej state stopped
rm "$TMP/reject"
"$P11ENROLL" -c "$C" status --json > "$TMP/s3.json"
check "/statusjson/stopped/schema" json_valid status "$TMP/s3.json"
python3 -c '
import json, sys
for e in json.load(open(sys.argv[1]))["enrollments"]:
    if e["name"] == "rej":
        print(e["ca_status"], json.dumps(e["ca_fail_info"]))' "$TMP/s3.json" > "$TMP/got-ca"
echo 'rejection ["badCertTemplate"]' > "$TMP/want-ca"
check "/statusjson/stopped/json-fail-info" diff "$TMP/want-ca" "$TMP/got-ca"
"$P11ENROLL" -c "$C" status > "$TMP/s3.txt"
sed -n '/^rej /,/^[a-z]/p' "$TMP/s3.txt" | grep '^  CA status' > "$TMP/got-ca.txt"
echo '  CA status: rejection, failInfo badCertTemplate' > "$TMP/want-ca.txt"
check "/statusjson/stopped/text-fail-info" diff "$TMP/want-ca.txt" "$TMP/got-ca.txt"
# the other states are all there, in one document
python3 -c '
import json, sys
print(" ".join(e["name"] + ":" + e["state"] for e in json.load(open(sys.argv[1]))["enrollments"]))
' "$TMP/s3.json" > "$TMP/got-states"
echo "down:backoff gone:waiting-token ok:valid pin:pin-rejected rej:stopped" > "$TMP/want-states"
check "/statusjson/states" diff "$TMP/want-states" "$TMP/got-states"

# the schema refuses what it does not describe: an unknown state, a
# failInfo that is no RFC 4210 name
sed 's/"state": "stopped"/"state": "bogus"/' "$TMP/s3.json" > "$TMP/bad1.json"
check "/statusjson/schema-refuses-state" sh -c "! python3 '$top_srcdir/tests/jsonvalid.py' \
	'$top_srcdir/man/schema/status.schema.json' '$TMP/bad1.json' 2> /dev/null"
sed 's/"badCertTemplate"/"badThing"/' "$TMP/s3.json" > "$TMP/bad2.json"
check "/statusjson/schema-refuses-failinfo" sh -c "! python3 '$top_srcdir/tests/jsonvalid.py' \
	'$top_srcdir/man/schema/status.schema.json' '$TMP/bad2.json' 2> /dev/null"
agent_stop "$A"
finish
