#!/bin/sh
# /tokenstr: a token whose label and serial hold the characters that
# structure a PKCS#11 URI (';', '?', '%', '/', '=').  The agent pins the
# token it saw by adding its serial to the token URI: the serial must be
# percent-encoded (RFC 7512), or ";1?module-path=/" turns into a module
# path.  SoftHSM2 makes its own serial; this test rewrites it in the token
# file (same length) to the hostile one.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
need_cmd python3
setup
plan 11
GUARD=
command -v timeout > /dev/null 2>&1 && GUARD="timeout -s KILL $(scaled 120)"
LABEL='odd;?%/=label'
# serial_of LABEL: the serial SoftHSM2 gave the token (its line comes first).
serial_of() {
	"$SOFTHSM2_UTIL" --show-slots | awk -v l="$1" '
		/^ *Serial number:/ { s = $3 }
		/^ *Label:/ { sub(/^ *Label: */, ""); sub(/ *$/, ""); if ($0 == l) print s }'
}
ULABEL='odd%3B%3F%25%2F%3Dlabel'
SERIAL=';1?module-path=/'
make_token "$LABEL" || exit 1
old=$(serial_of "$LABEL")
python3 - "$TMP/tokens" "$old" "$SERIAL" << 'PY' || exit 1
import glob, sys
d, old, new = sys.argv[1], sys.argv[2].encode(), sys.argv[3].encode()
assert len(old) == len(new) == 16
files = [f for f in glob.glob(d + "/*/token.object") if old in open(f, "rb").read()]
assert len(files) == 1, "the serial is not in the token file"
data = open(files[0], "rb").read()
open(files[0], "wb").write(data.replace(old, new))
PY
check "/tokenstr/setup/serial" sh -c "'$SOFTHSM2_UTIL' --show-slots | grep -q -F 'Serial number:    $SERIAL'"
start_ca || exit 1
write_conf "$ULABEL"
sed -i "s|^state_dir = .*|state_dir = $TMP/state|" "$TMP/p11enroll.conf"

p11e enroll test
check "/tokenstr/enroll/exit-0" expect_rc 0
p11e check test
check "/tokenstr/check/exit-0" expect_rc 0
check "/tokenstr/check/serial" grep -q -x -F "token_serial=$SERIAL" "$TMP/out"

# A serial with newlines: `check` prints key=value lines for the agent,
# and the serial must not add a line of its own.  It is not printable
# ASCII (PKCS#11's CK_CHAR), so it is no identity either: an escaped copy
# would be pinned into the URI and match no token, so none is given.
make_token nlserial || exit 1
old=$(serial_of nlserial)
python3 - "$TMP/tokens" "$old" "$(printf '1\ncert=present\nx')" << 'PY' || exit 1
import glob, sys
d, old, new = sys.argv[1], sys.argv[2].encode(), sys.argv[3].encode()
assert len(old) == len(new) == 16
files = [f for f in glob.glob(d + "/*/token.object") if old in open(f, "rb").read()]
assert len(files) == 1, "the serial is not in the token file"
data = open(files[0], "rb").read()
open(files[0], "wb").write(data.replace(old, new))
PY
write_conf nlserial
p11e check test
check "/tokenstr/check-newline/exit-0" expect_rc 0
check "/tokenstr/check-newline/one-cert-line" test "$(grep -c '^cert=' "$TMP/out")" -eq 1
check "/tokenstr/check-newline/no-serial" grep -q -x -F 'token_serial=' "$TMP/out"

# The agent learns the serial, then runs a renewal with the pinned URI.
write_conf "$ULABEL"
sed -i "s|^state_dir = .*|state_dir = $TMP/state|" "$TMP/p11enroll.conf"
"$P11ENROLL" -c "$TMP/p11enroll.conf" -v -v agent > "$TMP/agent.log" 2>&1 &
APID=$!
trap 'kill -TERM $APID 2> /dev/null; cleanup' EXIT
i=0
until "$P11ENROLL" -c "$TMP/p11enroll.conf" status --json 2> /dev/null |
	grep -q -F '"token_serial": ";1?module-path=/"'; do
	i=$((i + 1))
	[ $i -lt $((150 * P11E_SCALE)) ] || break
	sleep 0.2
done
check "/tokenstr/agent/serial-seen" test $i -lt $((150 * P11E_SCALE))
$GUARD "$P11ENROLL" -c "$TMP/p11enroll.conf" renew test > "$TMP/out" 2> "$TMP/err"; RC=$?
check "/tokenstr/agent/renew-exit-0" expect_rc 0
check "/tokenstr/agent/pinned-uri-encoded" grep -q -F \
	"pinned to its token: pkcs11:token=$ULABEL;model=SoftHSM%20v2;manufacturer=SoftHSM%20project;serial=%3B1%3Fmodule-path%3D%2F" \
	"$TMP/agent.log"
check "/tokenstr/agent/pinned-uri-parses" sh -c "! grep -q -e 'cannot open the token' -e 'invalid token configuration' '$TMP/agent.log'"
kill -TERM $APID 2> /dev/null
wait $APID 2> /dev/null
[ "$TEST_FAILED" -eq 0 ] || sed 's/^/# agent: /' "$TMP/agent.log"
finish
