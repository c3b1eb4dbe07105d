#!/bin/sh
# Time per row of `p11enroll enroll --batch`: one process enrolls ROWS rows
# (default 100, EC P-256, each its own label) on a fresh SoftHSM2 token
# against the test CA.  Each row's end is the moment its summary line
# ("enrolled ...") reaches the pipe; a row's time is the gap to the row
# before.  Prints the first row (it also loads the module, logs in and
# connects), the median, minimum and maximum of the others, and the whole
# run.
# usage: bench/batch-rows.sh [BUILD_DIR] [ROWS]   (default build/, 100 rows)
. "$(dirname "$0")/lib.sh" "$@"
ROWS=${2:-100}
case $ROWS in '' | *[!0-9]* | 0 | 1) echo "ROWS must be a number > 1" >&2; exit 1 ;; esac

make_token rows || exit 1
write_conf rows
{
	echo "label,subject"
	i=1
	while [ $i -le "$ROWS" ]; do
		echo "row-$i,/CN=row $i"
		i=$((i + 1))
	done
} > "$TMP/rows.csv"

# The timer: starts p11enroll, stamps each line of its stdout that begins
# a row's summary (no leading blank, not the batch's own last line).
cat > "$TMP/timer.py" << 'EOF2'
import statistics, subprocess, sys, time
t0 = time.monotonic()
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
ends = []
for line in p.stdout:
    if line[:1] not in (" ", "\t", "\n") and not line.startswith("batch "):
        ends.append(time.monotonic())
rc = p.wait()
total = time.monotonic() - t0
gaps = [(b - a) * 1000 for a, b in zip(ends, ends[1:])]
print("rows enrolled: %d (exit %d)" % (len(ends), rc))
if ends:
    print("first row:     %.1f ms (module load, login, connection and the row)" % ((ends[0] - t0) * 1000))
if gaps:
    print("other rows:    median %.1f ms, min %.1f ms, max %.1f ms (%d rows)"
          % (statistics.median(gaps), min(gaps), max(gaps), len(gaps)))
print("whole run:     %.2f s, %.1f rows/s" % (total, len(ends) / total if total else 0))
sys.exit(0 if rc == 0 else 1)
EOF2
# stdout to a pipe is block-buffered: stdbuf makes p11enroll's lines leave
# as they are printed
python3 "$TMP/timer.py" stdbuf -oL "$P11ENROLL" -c "$TMP/p11enroll.conf" enroll test --batch "$TMP/rows.csv"
