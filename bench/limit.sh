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
# the ratio; the goal is a ratio of at most 1.2.  The batch's module is
# tests/p11wrap with P11WRAP_TIMES, which says how much of the batch each
# PKCS#11 function took inside SoftHSM2: the rest is p11enroll's own work
# (CMP messages, protection, verification, HTTP) and the CA's.
# usage: bench/limit.sh [BUILD_DIR] [ROWS]   (default build/, 200 rows)
. "$(dirname "$0")/lib.sh" "$1" "${2:-200}"
ROWS=$RUNS
TOKFILL="$top_builddir/tests/tokfill"
WRAP="$top_builddir/tests/p11wrap/p11wrap.so"
for f in "$TOKFILL" "$WRAP"; do
	[ -e "$f" ] || { echo "no $f: run make check (or make tests/tokfill) first"; exit 1; }
done

make_token parts || exit 1
"$TOKFILL" --module "$SOFTHSM2_MODULE" --token parts --pin-file "$TMP/pin" --count 50 --time \
	> "$TMP/parts" 2> "$TMP/parts.err" || { cat "$TMP/parts.err"; exit 1; }
keygen=$(sed -n 's/^keygen_us //p' "$TMP/parts")
certwrite=$(sed -n 's/^certwrite_us //p' "$TMP/parts")

make_token batch || exit 1
write_conf batch
sed -i "s|^module = .*|module = $WRAP|" "$TMP/p11enroll.conf"
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
export P11WRAP_MODULE="$SOFTHSM2_MODULE" P11WRAP_TIMES="$TMP/times"
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

# Where the batch's time went, per enrollment: inside the module (each
# function's share) and outside it (p11enroll and the CA).
echo "the batch per enrollment, by where the time went:"
awk -v rows="$ROWS" -v total="$(((t1 - t0) / 1000))" -v ca="$ca" '
	/ calls=/ { split($2, c, "="); split($3, u, "="); n[$1] += c[2]; us[$1] += u[2]; all += u[2] }
	END {
		for (f in us)
			if (us[f] / rows >= 100)
				printf "  %-24s %6.1f ms  (%.1f calls)\n", f, us[f] / rows / 1000, n[f] / rows
		printf "  %-24s %6.1f ms\n", "in the module, all", all / rows / 1000
		printf "  %-24s %6.1f ms\n", "the CA (as above)", ca / 1000
		printf "  %-24s %6.1f ms  (CMP, HTTP, start and end of the process)\n", "p11enroll itself",
			(total - all) / rows / 1000 - ca / 1000
	}' "$TMP/times" | sort -k2 -t' ' 
