#!/bin/sh
# The badge station demo (README, "Badge station"): the test CA on a
# loopback port, a queue of ten badge holders, `p11enroll station badge`
# running, and ten SoftHSM2 tokens inserted one after another (made with
# softhsm2-util in a store of their own and moved in whole while the
# station runs) and removed (moved out) when the station says "remove the
# card".  Ends with the journal and the queue's
# row state.  Usage: tools/station-demo.sh [BUILD_DIR]
set -u
P11E_TOP=$(cd "$(dirname "$0")/.." && pwd)
. "$P11E_TOP/tools/demo-lib.sh"
B=${1:-$P11E_TOP/build}
if [ ! -x "$B/p11enroll" ] || [ ! -x "$B/tests/ca/p11enroll-testca" ]; then
	demo_build "$B"
fi
S="$P11E_TOP/station-demo"
demo_state "$S" "$B"
# the cards are made here and moved into the token store whole
mkdir -p "$S/staging" "$S/removed"
demo_softhsm_conf "$S/staging" "$S/staging.conf"
demo_ca "$B" "$S"

cat > "$S/p11enroll.conf" << EOC
[badge]
module = $SOFTHSM2_MODULE
token = pkcs11:model=SoftHSM%20v2
pin_source = file:$S/pin
key_type = ec:P-256
label = badge
server = http://127.0.0.1:$PORT/.well-known/cmp
reference = 4711
secret_source = file:$S/secret
trusted = $S/ca/root.pem
state_dir = $S/state
queue = $S/badges.csv
journal = $S/journal
station_poll = 100
EOC
printf 'subject,san\n' > "$S/badges.csv"
for n in 01 02 03 04 05 06 07 08 09 10; do
	printf '/CN=Badge Holder %s/O=Example,email:holder%s@example.org\n' "$n" "$n" \
		>> "$S/badges.csv"
done

echo "\$ p11enroll -c $S/p11enroll.conf station badge"
"$B/p11enroll" -c "$S/p11enroll.conf" station badge > "$S/station.out" 2> "$S/station.err" &
ST_PID=$!
DEMO_PIDS=$ST_PID
# lines N REGEX: waits until the station has said REGEX N times.
lines() {
	i=0
	while [ "$(grep -c -E -e "$2" "$S/station.out")" -lt "$1" ]; do
		kill -0 $ST_PID 2> /dev/null || { cat "$S/station.err" >&2; exit 1; }
		[ $i -lt 600 ] || { echo "the station did not say '$2'" >&2; exit 1; }
		sleep 0.1
		i=$((i + 1))
	done
}
lines 1 'waiting for a card'
for n in 01 02 03 04 05 06 07 08 09 10; do
	# "insert" a card: a new token, made in a store of its own and moved
	# in whole (a rename), that the station sees at its next look
	SOFTHSM2_CONF="$S/staging.conf" softhsm2-util --init-token --free --label "card-$n" \
		--so-pin "$(cat "$S/pin")-so" --pin "$(cat "$S/pin")" > /dev/null || exit 1
	d=$(ls "$S/staging")
	mv "$S/staging/$d" "$S/tokens/"
	lines "${n#0}" '^remove the card'
	tail -n 3 "$S/station.out" | grep -v '^waiting'
	# "remove" it, as the station asks: its directory moved out whole
	mv "$S/tokens/$d" "$S/removed/"
	lines "$((${n#0} + 1))" 'waiting for a card'
done
kill -TERM $ST_PID
wait $ST_PID
echo "station exit status $?: $(tail -n 1 "$S/station.out")"
DEMO_PIDS=
echo
echo "--- the journal ($S/journal) ---"
cat "$S/journal"
echo
echo "--- the queue's row state ($S/badges.csv.state) ---"
cat "$S/badges.csv.state"
