#!/bin/sh
# How close one enrollment in a long-running process comes to the sum of
# its unavoidable parts, measured alone in the same run:
#   keygen     C_GenerateKeyPair (EC P-256) on the token, in one process
#              (tests/tokfill --time: no process start, no login per key);
#   CA         the test CA's own time for the ir and the certConf (its log
#              says how long it took over each request, read back for the
#              batch below);
#   certwrite  one certificate written with C_CreateObject (tokfill --time).
# Then ROWS enrollments in one process (p11enroll enroll --batch, one
# login, one session, one connection), on a token of their own that grows
# from empty to 3 * ROWS objects plus the CA certificates.  Prints the
# median of each part, their sum, the time per enrollment of the batch and
# the ratio; the goal is a ratio of at most 1.2.
# usage: bench/limit.sh [BUILD_DIR] [ROWS]   (default build/, 200 rows)
. "$(dirname "$0")/lib.sh" "$1" "${2:-200}"
ROWS=$RUNS
TOKFILL="$top_builddir/tests/tokfill"
[ -x "$TOKFILL" ] || { echo "no $TOKFILL: run make check (or make tests/tokfill) first"; exit 1; }

make_token parts || exit 1
"$TOKFILL" --module "$SOFTHSM2_MODULE" --token parts --pin-file "$TMP/pin" --count 50 --time \
	> "$TMP/parts" 2> "$TMP/parts.err" || { cat "$TMP/parts.err"; exit 1; }
keygen=$(sed -n 's/^keygen_us //p' "$TMP/parts")
certwrite=$(sed -n 's/^certwrite_us //p' "$TMP/parts")

make_token batch || exit 1
write_conf batch
{
	echo "label,subject"
	i=1
	while [ $i -le "$ROWS" ]; do
		echo "row-$i,/CN=row $i/O=limit bench"
		i=$((i + 1))
	done
} > "$TMP/rows.csv"
: > "$TMP/ca.log"
t0=$(date +%s%N)
p11e -q enroll test --batch "$TMP/rows.csv"
t1=$(date +%s%N)
[ "$RC" -eq 0 ] || { tail -n 5 "$TMP/err"; exit 1; }
per_row=$(((t1 - t0) / 1000 / ROWS))

# The CA's time per enrollment: its two exchanges (ir, certConf), as the
# median of each request's own time, twice.
sed -n 's/.*request handled in \([0-9]*\) us$/\1/p' "$TMP/ca.log" > "$TMP/ca-times"
requests=$(wc -l < "$TMP/ca-times")
[ "$requests" -eq $((2 * ROWS)) ] ||
	{ echo "the CA logged $requests requests, expected $((2 * ROWS))"; exit 1; }
ca=$(($(median < "$TMP/ca-times" | cut -d. -f1) * 2))
connections=$(grep -c 'connection [0-9]* opened' "$TMP/ca.log")

sum=$((keygen + ca + certwrite))
ms() { echo "$1" | awk '{ printf "%.1f ms", $1 / 1000 }'; }
echo "parts, each alone (medians):"
echo "  keygen on the token        $(ms "$keygen")   (50 runs)"
echo "  CA: ir + certConf          $(ms "$ca")   (2 x the median of $requests requests)"
echo "  certificate write          $(ms "$certwrite")   (50 runs)"
echo "  sum                        $(ms "$sum")"
echo "batch of $ROWS in one process: $(ms "$per_row") per enrollment" \
	"($(((t1 - t0) / 1000000)) ms in all, $connections connection(s) to the CA)"
echo "ratio batch / sum: $(echo "$per_row $sum" | awk '{ printf "%.2f", $1 / $2 }')   (goal: at most 1.20)"
