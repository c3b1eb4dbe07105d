#!/bin/sh
# The agent at fleet size: one SoftHSM2 token with N enrollments (key pairs
# and certificates from the test CA, made by tests/tokfill), one `p11enroll
# agent` for all of them.  Prints, next to the goals of issue 10:
#   - seconds from the agent's start until every enrollment is scheduled
#     (its log line "every enrollment has had its first look", and status
#     --json showing every enrollment valid with a next time),
#   - the agent's RSS then (VmRSS, VmHWM of /proc/PID/status),
#   - its CPU time (utime + stime) and wakeups (voluntary + involuntary
#     context switches) over IDLE seconds after that, and how often it
#     rewrote the metrics file then and the file's size,
#   - the latency of `p11enroll status --json` (median, max; client process,
#     timed around it) while the start-up pass runs, and of the agent's own
#     answer to "status" on its socket (timed inside one python3 process,
#     from connect to the answer's end): the difference is the client's
#     start and its reading of the file's head (the socket's sections).
# usage: bench/agent-scale.sh [BUILD_DIR] [COUNTS...]   (default build/, 1000 10000)
# With prometheus-node-exporter installed, also its scrapes of the metrics
# file (SCRAPES, default 20): time, its CPU, the series.
# Environment: TMPDIR (where the token, state and logs go; /dev/shm for a
# token in memory), IDLE (default 60), SAMPLES (status requests, default 20),
# BOUND (seconds to wait for the scheduling, default 1800: a hang guard).
. "$(dirname "$0")/lib.sh" "${1:-}"
[ $# -gt 0 ] && shift
COUNTS=${*:-1000 10000}
IDLE=${IDLE:-60}
SAMPLES=${SAMPLES:-20}
SCRAPES=${SCRAPES:-20}
BOUND=${BOUND:-1800}
TOKFILL="$top_builddir/tests/tokfill"
need_file "$TOKFILL"
need_cmd python3
HZ=$(getconf CLK_TCK)

ms_since() {
	echo $((($(date +%s%N) - $1) / 1000000))
}

# proc PID FIELD: a line's number of /proc/PID/status ("VmRSS" -> kB)
proc() {
	awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}

# cpu PID: utime + stime in clock ticks
cpu() {
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# wakeups PID: voluntary + involuntary context switches
wakeups() {
	echo $(($(proc "$1" voluntary_ctxt_switches) + $(proc "$1" nonvoluntary_ctxt_switches)))
}

# raw SOCKET: milliseconds from connect until the agent's whole answer to
# "status" (the request p11enroll status --json sends)
raw() {
	python3 -c '
import socket, sys, time
t = time.monotonic()
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(b"status\n")
while s.recv(65536):
    pass
print(int((time.monotonic() - t) * 1e6))' "$1"
}

# scheduled CONF N: how many enrollments status shows valid with a next time
scheduled() {
	"$P11ENROLL" -c "$1" status --json 2> /dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)["enrollments"]
print(sum(1 for e in d if e["state"] == "valid" and e["next_attempt"] is not None))' ||
		echo 0
}

# scrape_figures FILE: the node exporter's textfile collector serving FILE,
# scraped SCRAPES times as Prometheus does every 15 s (README
# "Monitoring"): the median time of a scrape, the node exporter's CPU per
# scrape, and the p11enroll series it serves.  Nothing without it.
scrape_figures() {
	ne=$(command -v prometheus-node-exporter || command -v node_exporter) || return 0
	mkdir -p "$TMP/textfile$N"
	cp "$1" "$TMP/textfile$N/p11enroll.prom"
	port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	"$ne" --web.listen-address="127.0.0.1:$port" --collector.disable-defaults --collector.textfile \
		--collector.textfile.directory="$TMP/textfile$N" > "$TMP/ne$N.log" 2>&1 &
	nepid=$!
	python3 - "$port" "$nepid" "$SCRAPES" << 'EOF2'
import os, statistics, sys, time, urllib.request
port, pid, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
url = "http://127.0.0.1:%s/metrics" % port
def cpu():
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])
for _ in range(200):
    try:
        urllib.request.urlopen(url, timeout=60).read()
        break
    except OSError:
        time.sleep(0.1)
ts, c0, body = [], cpu(), b""
for _ in range(n):
    t = time.monotonic()
    body = urllib.request.urlopen(url, timeout=60).read()
    ts.append(time.monotonic() - t)
c1 = cpu()
lines = body.decode().split("\n")
series = sum(1 for l in lines if l.startswith("p11enroll_"))
err = [l for l in lines if l.startswith("node_textfile_scrape_error")]
print("  node exporter scrape          median %.0f ms of %d, its CPU %.0f ms per scrape; %d p11enroll series (%s)"
      % (statistics.median(ts) * 1000, n, (c1 - c0) * 1000.0 / os.sysconf("SC_CLK_TCK") / n, series,
         err[0] if err else "no node_textfile_scrape_error"))
EOF2
	kill "$nepid"
	wait "$nepid" 2> /dev/null
}

for N in $COUNTS; do
	tok=scale$N
	make_token "$tok" || exit 1
	t=$(date +%s%N)
	"$TOKFILL" --module "$SOFTHSM2_MODULE" --token "$tok" --pin-file "$TMP/pin" --count "$N" \
		--prefix e --ca-cert "$TMP/ca/ca.pem" --ca-key "$TMP/ca/ca.key" --days 365 \
		> "$TMP/tokfill.out" 2>&1 || { cat "$TMP/tokfill.out"; exit 1; }
	fill_ms=$(ms_since "$t")
	C="$TMP/scale$N.conf"
	{
		conf_defaults | sed "s|^state_dir = .*|state_dir = $TMP/state$N|"
		echo "metrics_file = $TMP/metrics$N.prom"
		echo
		i=1
		while [ $i -le "$N" ]; do
			printf '[e-%d]\ntoken = pkcs11:token=%s\npin_source = file:%s\nlabel = e-%d\nsubject = /CN=e-%d\n\n' \
				$i "$tok" "$TMP/pin" $i $i
			i=$((i + 1))
		done
	} > "$C"
	L="$TMP/agent$N.log"
	t0=$(date +%s%N)
	"$P11ENROLL" -c "$C" agent > "$L" 2>&1 &
	APID=$!
	# status while the start-up pass runs: the first once the socket is there
	: > "$TMP/lat$N"
	: > "$TMP/raw$N"
	k=0
	while [ ! -S "$TMP/state$N/control" ] && kill -0 $APID 2> /dev/null && [ $k -lt 600 ]; do
		sleep 0.05
		k=$((k + 1))
	done
	k=0
	during=0
	sched_ms=
	while [ $k -lt "$SAMPLES" ]; do
		looking=$(grep -c "every enrollment has had its first look" "$L")
		[ "$looking" -eq 0 ] || [ -n "$sched_ms" ] || sched_ms=$(ms_since "$t0")
		t=$(date +%s%N)
		"$P11ENROLL" -c "$C" status --json > "$TMP/status.json" 2> /dev/null
		echo "$(($(date +%s%N) - t))" >> "$TMP/lat$N"
		raw "$TMP/state$N/control" >> "$TMP/raw$N"
		[ "$looking" -eq 0 ] && during=$((during + 1))
		k=$((k + 1))
		sleep 0.2
	done
	# the agent's own line, then status
	k=0
	while ! grep -q "every enrollment has had its first look" "$L" && kill -0 $APID 2> /dev/null &&
		[ $k -lt $((BOUND * 5)) ]; do
		sleep 0.2
		k=$((k + 1))
	done
	[ -n "$sched_ms" ] || sched_ms=$(ms_since "$t0")
	said=$(sed -n 's/.*every enrollment has had its first look: [0-9]* in \([0-9.]*\) s.*/\1/p' "$L")
	valid=$(scheduled "$C")
	rss=$(proc $APID VmRSS)
	hwm=$(proc $APID VmHWM)
	c0=$(cpu $APID)
	w0=$(wakeups $APID)
	# the metrics file is rewritten at least once a minute (its age feeds
	# the stale alert): count the rewrites by inode, once a second
	M="$TMP/metrics$N.prom"
	ino=$(stat -c %i "$M" 2> /dev/null)
	rewrites=0
	k=0
	while [ $k -lt "$IDLE" ]; do
		sleep 1
		i=$(stat -c %i "$M" 2> /dev/null)
		[ "$i" = "$ino" ] || rewrites=$((rewrites + 1))
		ino=$i
		k=$((k + 1))
	done
	msize=$(stat -c %s "$M" 2> /dev/null || echo 0)
	c1=$(cpu $APID)
	w1=$(wakeups $APID)
	rss1=$(proc $APID VmRSS)
	t=$(date +%s%N)
	kill -TERM $APID
	wait $APID
	stop_ms=$(ms_since "$t")
	scrape_figures "$M" > "$TMP/scrape$N"
	med=$(median < "$TMP/lat$N")
	max=$(sort -n "$TMP/lat$N" | tail -n 1)
	rmed=$(median < "$TMP/raw$N")
	rmax=$(sort -n "$TMP/raw$N" | tail -n 1)
	echo "== $N enrollments on one SoftHSM2 token (${TMPDIR:-/tmp}; load $(cut -d' ' -f1-3 /proc/loadavg))"
	printf '  token filled (tokfill)        %8.1f s\n' "$(echo "$fill_ms" | awk '{print $1 / 1000}')"
	printf '  scheduled after start         %8.1f s   (agent says %s s; %s of %s valid)   goal (10,000): <= 60 s\n' \
		"$(echo "$sched_ms" | awk '{print $1 / 1000}')" "${said:-?}" "$valid" "$N"
	printf '  RSS when scheduled            %8.1f MB  (VmHWM %.1f MB; after idle %.1f MB)   goal: <= 32 MB\n' \
		"$(echo "$rss" | awk '{print $1 / 1024}')" "$(echo "$hwm" | awk '{print $1 / 1024}')" \
		"$(echo "$rss1" | awk '{print $1 / 1024}')"
	printf '  idle %3d s: CPU                %8.3f s\n' "$IDLE" "$(echo "$((c1 - c0)) $HZ" | awk '{print $1 / $2}')"
	printf '  idle %3d s: wakeups           %8d     (context switches)   goal: 0 when nothing is due\n' \
		"$IDLE" $((w1 - w0))
	printf '  idle %3d s: metrics rewrites  %8d     (file %.1f kB; CPU per rewrite at most the idle CPU / rewrites)\n' \
		"$IDLE" "$rewrites" "$(echo "$msize" | awk '{print $1 / 1024}')"
	printf '  status --json during the pass  median %.1f ms, max %.1f ms (%d of %d requests during the pass)   goal: <= 100 ms\n' \
		"$(echo "$med" | awk '{print $1 / 1000000}')" "$(echo "$max" | awk '{print $1 / 1000000}')" \
		"$during" "$SAMPLES"
	printf '  the agent'"'"'s answer to status   median %.1f ms, max %.1f ms (socket, in one process)\n' \
		"$(echo "$rmed" | awk '{print $1 / 1000}')" "$(echo "$rmax" | awk '{print $1 / 1000}')"
	printf '  stop (SIGTERM, state saved)   %8.1f s\n' "$(echo "$stop_ms" | awk '{print $1 / 1000}')"
	cat "$TMP/scrape$N"
	grep -E 'error|warning' "$L" | head -5 | sed 's/^/  log: /'
	delete_token "$tok"
	rm -rf "$TMP/state$N" "$TMP/tokens/"*
done
