#!/bin/sh
# /pin: PIN sources, and a rejected PIN is tried exactly once.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
setup
plan 22
make_token pins || exit 1
start_ca || exit 1

SPY=
for d in /usr/lib/*/pkcs11 /usr/lib/pkcs11 /usr/lib64/pkcs11; do
	[ -f "$d/pkcs11-spy.so" ] && SPY="$d/pkcs11-spy.so" && break
done

# A wrong PIN: exit 4, the CKR name, one C_Login, nothing generated.
printf 'not-the-pin\n' > "$TMP/wrongpin"
write_conf pins "pin_source = file:$TMP/wrongpin"
sed -i '/^pin_source = file:.*\/pin$/d' "$TMP/p11enroll.conf"
if [ -n "$SPY" ]; then
	sed -i "s|^module = .*|module = $SPY|" "$TMP/p11enroll.conf"
	# OpenSC's spy leaks its own buffers (unloaded at exit, so LeakSanitizer
	# cannot name them): leak detection is off for this one run only.
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
		PKCS11SPY="$SOFTHSM2_MODULE" PKCS11SPY_OUTPUT="$TMP/spy.log" p11e enroll test
	check "/pin/incorrect/tried-once" test "$(grep -c '^[0-9]*: C_Login' "$TMP/spy.log")" -eq 1
	check "/pin/incorrect/no-keygen" sh -c "! grep -q C_GenerateKeyPair '$TMP/spy.log'"
else
	p11e enroll test
	ok "/pin/incorrect/tried-once # SKIP pkcs11-spy.so not found"
	ok "/pin/incorrect/no-keygen # SKIP pkcs11-spy.so not found"
fi
check "/pin/incorrect/exit-4" expect_rc 4
check "/pin/incorrect/ckr-name" grep_err 'CKR_PIN_INCORRECT'
check "/pin/incorrect/not-echoed" sh -c "! grep -q not-the-pin '$TMP/err' '$TMP/out'"
check "/pin/incorrect/token-empty" test "$(count_objects pins)" -eq 0

# Unreadable PIN file: a configuration error found at load (exit 2) with
# the path, no login at all.
write_conf pins
sed -i "s|^pin_source = .*|pin_source = file:$TMP/missing-pin|" "$TMP/p11enroll.conf"
p11e enroll test
check "/pin/missing-file/exit-2" expect_rc 2
check "/pin/missing-file/message" grep_err "missing-pin"

# A PIN on the command line is not an option (getopt reads --pin as an
# abbreviation of --pin-source, which refuses anything but a source).
write_conf pins
p11e enroll test --pin "$USER_PIN"
check "/pin/argv-refused/exit-2" expect_rc 2
check "/pin/argv-refused/not-echoed" no_secret_in "$TMP/err" "$TMP/out"
p11e enroll test --pin-source "$USER_PIN"
check "/pin/argv-source-refused/exit-2" expect_rc 2
check "/pin/argv-source-refused/not-echoed" no_secret_in "$TMP/err" "$TMP/out"

# No PIN source at all.
sed -i '/^pin_source/d' "$TMP/p11enroll.conf"
p11e enroll test
check "/pin/none/exit-4" expect_rc 4
check "/pin/none/message" grep_err 'no PIN source'

# env: and fd: sources enroll.
write_conf pins "pin_source = env:TEST_PIN_VAR"
sed -i '/^pin_source = file:/d' "$TMP/p11enroll.conf"
TEST_PIN_VAR=$USER_PIN p11e enroll test
check "/pin/env/exit-0" expect_rc 0
check "/pin/env/no-secret-in-output" no_secret_in "$TMP/out" "$TMP/err"
p11e enroll test # variable unset now: found at load
check "/pin/env-unset/exit-2" expect_rc 2
check "/pin/env-unset/message" grep_err 'TEST_PIN_VAR'

# While the PIN is in memory no core dump can be written: p11enroll waits
# on a FIFO for its PIN, and its limits say so.
mkfifo "$TMP/pinfifo"
write_conf pins "pin_source = file:$TMP/pinfifo"
sed -i '/^pin_source = file:.*\/pin$/d' "$TMP/p11enroll.conf"
# (--replace: the label holds the certificate of the enrollments above)
"$P11ENROLL" -c "$TMP/p11enroll.conf" enroll test --replace > "$TMP/out" 2> "$TMP/err" &
pid=$!
i=0
while [ $i -lt $((100 * P11E_SCALE)) ] && ! grep -q wait_for_partner "/proc/$pid/wchan" 2> /dev/null; do
	sleep 0.1
	i=$((i + 1))
done
check "/pin/no-core-dump" grep -q -E '^Max core file size +0 +0 ' "/proc/$pid/limits"
# bounded: a p11enroll that died before opening the FIFO leaves no reader
timeout $((10 * P11E_SCALE)) sh -c 'printf "%s\n" "$1" > "$2"' _ "$USER_PIN" "$TMP/pinfifo" ||
	{ echo "# nobody read the FIFO; p11enroll said:"; sed 's/^/#   /' "$TMP/err"; }
wait $pid
RC=$?
check "/pin/fifo/exit-0" expect_rc 0

write_conf pins "pin_source = fd:7"
sed -i '/^pin_source = file:/d' "$TMP/p11enroll.conf"
"$P11ENROLL" -c "$TMP/p11enroll.conf" enroll test --replace 7< "$TMP/pin" > "$TMP/out" 2> "$TMP/err"
RC=$?
check "/pin/fd/exit-0" expect_rc 0
check "/pin/fd/replaced-the-pair" test "$(objects pins cert | grep -c 'label: *enrolled-key$')" -eq 1
finish
