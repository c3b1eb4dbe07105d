#!/bin/sh
# The agent at fleet size: one SoftHSM2 token with N enrollments (key pairs
# and certificates from the test CA, made by tests/tokfill), one `p11enroll
# agent` for all of them.  Prints, next to the goals of issue 10:
#   - seconds from the agent's start until every enrollment is scheduled
#     (its log line "every enrollment has had its first look", and status
#     --json showing every enrollment valid with a next time),
#   - the agent's RSS then (VmRSS, VmHWM of /proc/PID/status),
#   - its CPU time (utime + stime) and wakeups (voluntary + involuntary
#     context switches) over IDLE seconds after that,
#   - the latency of `p11enroll status --json` (median, max; client process,
#     timed around it) while the start-up pass runs, and of the agent's own
#     answer to "status" on its socket (timed inside one python3 process,
#     from connect to the answer's end): the difference is the client's
#     start and its reading of the file's head (the socket's sections).
# usage: bench/agent-scale.sh [BUILD_DIR] [COUNTS...]   (default build/, 1000 10000)
# Environment: TMPDIR (where the token, state and logs go; /dev/shm for a
# token in memory), IDLE (default 60), SAMPLES (status requests, default 20),
# BOUND (seconds to wait for the scheduling, default 1800: a hang guard).
. "$(dirname "$0")/lib.sh" "${1:-}"
[ $# -gt 0 ] && shift
COUNTS=${*:-1000 10000}
IDLE=${IDLE:-60}
SAMPLES=${SAMPLES:-20}
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
	sleep "$IDLE"
	c1=$(cpu $APID)
	w1=$(wakeups $APID)
	rss1=$(proc $APID VmRSS)
	t=$(date +%s%N)
	kill -TERM $APID
	wait $APID
	stop_ms=$(ms_since "$t")
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
	printf '  status --json during the pass  median %.1f ms, max %.1f ms (%d of %d requests during the pass)   goal: <= 100 ms\n' \
		"$(echo "$med" | awk '{print $1 / 1000000}')" "$(echo "$max" | awk '{print $1 / 1000000}')" \
		"$during" "$SAMPLES"
	printf '  the agent'"'"'s answer to status   median %.1f ms, max %.1f ms (socket, in one process)\n' \
		"$(echo "$rmed" | awk '{print $1 / 1000}')" "$(echo "$rmax" | awk '{print $1 / 1000}')"
	printf '  stop (SIGTERM, state saved)   %8.1f s\n' "$(echo "$stop_ms" | awk '{print $1 / 1000}')"
	grep -E 'error|warning' "$L" | head -5 | sed 's/^/  log: /'
	delete_token "$tok"
	rm -rf "$TMP/state$N" "$TMP/tokens/"*
done
