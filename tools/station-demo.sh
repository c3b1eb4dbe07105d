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
. "$P11E_TOP/tools/deps.sh"
B=${1:-$P11E_TOP/build}
if [ ! -x "$B/p11enroll" ] || [ ! -x "$B/tests/ca/p11enroll-testca" ]; then
	p11e_deps || exit 1
	echo "building in $B ..."
	p11e_build "$B" --enable-strict || { echo "build failed" >&2; exit 1; }
	(cd "$B" && make -s tests/ca/p11enroll-testca) || exit 1
fi
S="$P11E_TOP/station-demo"
SOFTHSM2_MODULE=$(sed -n 's/^SOFTHSM2_MODULE = //p' "$B/Makefile")
rm -rf "$S"
mkdir -p "$S/tokens"
chmod 700 "$S"
umask 077
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
	"$S/tokens" > "$S/softhsm2.conf"
export SOFTHSM2_CONF="$S/softhsm2.conf"
mkdir -p "$S/staging" "$S/removed"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
	"$S/staging" > "$S/staging.conf"
# Demo-only credentials, random each run, kept in files (never on argv).
od -An -N8 -tx1 /dev/urandom | tr -d ' \n' > "$S/pin"
od -An -N16 -tx1 /dev/urandom | tr -d ' \n' > "$S/secret"

"$B/tests/ca/p11enroll-testca" --dir "$S/ca" --port 0 --ref 4711 \
	--secret-file "$S/secret" --log "$S/ca.log" --quiet > "$S/ca.out" 2>&1 &
CA_PID=$!
ST_PID=
trap 'kill $CA_PID $ST_PID 2> /dev/null' EXIT
i=0
while ! grep -q '^port ' "$S/ca.out" && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
PORT=$(sed -n 's/^port //p' "$S/ca.out")
[ -n "$PORT" ] || { echo "the test CA did not start:" >&2; cat "$S/ca.out" >&2; exit 1; }

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
ST_PID=
echo
echo "--- the journal ($S/journal) ---"
cat "$S/journal"
echo
echo "--- the queue's row state ($S/badges.csv.state) ---"
cat "$S/badges.csv.state"
