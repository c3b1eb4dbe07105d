#!/bin/sh
# Time per card at `p11enroll station`: CARDS SoftHSM2 tokens (default 10,
# made beforehand in a store of their own) are inserted one after another
# (each moved whole into the station's store) against the test CA, EC
# P-256, from a queue of CARDS rows.  A card's time runs from the moment
# its token appears in the store to the station's "remove the card" line;
# it then leaves (moved out) and the next one comes once the station waits
# again.  Prints the median, minimum and maximum, the medians of the first
# and the last tenth of the cards, the time from a card's leaving to the
# station's "waiting for a card" (a polled module's missing token is looked
# for twice more before it counts as removed), and the median of the time
# the station itself reports for the card (from its seeing the card).
# The station polls the module every POLL ms (default 500, its default).
# usage: bench/station-cards.sh [BUILD_DIR] [CARDS]   (default build/, 10)
. "$(dirname "$0")/lib.sh" "$@"
CARDS=${2:-10}
POLL=${POLL:-500}
case $CARDS in '' | *[!0-9]* | 0) echo "CARDS must be a positive number" >&2; exit 1 ;; esac

mkdir -p "$TMP/tokens" "$TMP/staging" "$TMP/removed"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
	"$TMP/tokens" > "$TMP/softhsm2.conf"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
	"$TMP/staging" > "$TMP/staging.conf"
SOFTHSM2_CONF=$TMP/softhsm2.conf
export SOFTHSM2_CONF
echo "subject" > "$TMP/queue.csv"
i=1
while [ $i -le "$CARDS" ]; do
	SOFTHSM2_CONF="$TMP/staging.conf" "$SOFTHSM2_UTIL" --init-token --free --label "card$i" \
		--so-pin "$SO_PIN" --pin "$USER_PIN" > /dev/null || exit 1
	echo "/CN=Badge $i" >> "$TMP/queue.csv"
	i=$((i + 1))
done
write_conf unused "token = pkcs11:model=SoftHSM%20v2
label = badge
station_poll = $POLL
queue = $TMP/queue.csv"

cat > "$TMP/cards.py" << 'EOF2'
import os, re, statistics, subprocess, sys, time
conf, staging, tokens, removed = sys.argv[2:6]
p = subprocess.Popen([sys.argv[1], "-c", conf, "station", "test"], stdout=subprocess.PIPE,
                     stderr=subprocess.DEVNULL, text=True, bufsize=1)
def until(pat):
    for line in p.stdout:
        if re.search(pat, line):
            return line
    sys.exit("the station ended before saying /%s/" % pat)
until("waiting for a card")
ours, theirs, gone = [], [], []
for d in sorted(os.listdir(staging)):
    t0 = time.monotonic()
    os.rename(os.path.join(staging, d), os.path.join(tokens, d))
    # not SoftHSM2's free slot, which the station says it leaves alone
    # ("card (blank)") whenever the store's slots change
    ok = until(r"^(OK|FAILED|SKIPPED|WAITING) card [^(]")
    until("^remove the card")
    ours.append((time.monotonic() - t0) * 1000)
    if not ok.startswith("OK"):
        sys.exit("card %s: %s" % (d, ok.strip()))
    m = re.search(r"([0-9.]+) s\s*$", ok)
    if m:
        theirs.append(float(m.group(1)) * 1000)
    t1 = time.monotonic()
    os.rename(os.path.join(tokens, d), os.path.join(removed, d))
    until("waiting for a card")
    gone.append((time.monotonic() - t1) * 1000)
p.terminate()
p.wait()
print("cards: %d, station_poll %s ms" % (len(ours), os.environ.get("POLL", "500")))
print("token appears -> 'remove the card': median %.0f ms, min %.0f ms, max %.0f ms"
      % (statistics.median(ours), min(ours), max(ours)))
print("token leaves -> 'waiting for a card': median %.0f ms, min %.0f ms, max %.0f ms"
      % (statistics.median(gone), min(gone), max(gone)))
if len(ours) >= 10:
    k = len(ours) // 10
    print("appears -> 'remove the card', first %d cards: median %.0f ms; last %d: median %.0f ms"
          % (k, statistics.median(ours[:k]), k, statistics.median(ours[-k:])))
if theirs:
    print("the station's own figure (card seen -> done): median %.0f ms" % statistics.median(theirs))
EOF2
POLL=$POLL python3 "$TMP/cards.py" "$P11ENROLL" "$TMP/p11enroll.conf" "$TMP/staging" \
	"$TMP/tokens" "$TMP/removed"
