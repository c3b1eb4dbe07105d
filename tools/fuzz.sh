#!/bin/sh
# Runs the libFuzzer targets from their seed corpora (tests/fuzz/README).
# usage: tools/fuzz.sh [--cpu] [SECONDS [TARGET...]]
#          each TARGET (default: all) for SECONDS (default 60), one after the
#          other; findings go to build-fuzz/corpus-TARGET, crashes to
#          build-fuzz/crash-*, the last lines of each run to build-fuzz/fuzz-TARGET.log
#          --cpu: SECONDS of the fuzzer's CPU time rather than of the clock, so
#          that a campaign shares a busy machine (run it under nice) and
#          still gets its hour; the run is stopped by SIGINT.
#        tools/fuzz.sh merge [TARGET...]
#          adds to tests/fuzz/corpus/TARGET the files of build-fuzz/corpus-TARGET
#          that reach new coverage (-merge=1): review and commit the result
# The campaign of an hour per target is `make fuzz-long` (tools/fuzz.sh 3600),
# not part of make check.  FUZZ_DIR=DIR builds and fuzzes in DIR instead of
# build-fuzz (a second campaign beside a running one).
set -e
top=$(cd "$(dirname "$0")/.." && pwd)
dir=${FUZZ_DIR:-$top/build-fuzz}
mode=run
clock=wall
if [ "$1" = --cpu ]; then
	clock=cpu
	shift
fi
if [ "$1" = merge ]; then
	mode=merge
	shift
else
	secs=${1:-60}
	[ $# -eq 0 ] || shift
fi
# cpu_seconds PID: user+system seconds the process has used so far.
cpu_seconds() {
	# Fields after the ")" that ends the command name: utime is the 12th,
	# stime the 13th.
	sed 's/.*) //' "/proc/$1/stat" 2> /dev/null |
		awk -v hz="$(getconf CLK_TCK)" '{ printf "%d", ($12 + $13) / hz }'
}
# cpu_watch PID [SECONDS]: follows PID's CPU time into $cpu_used until it
# exits, and sends it SIGINT once it has used SECONDS.
cpu_watch() {
	cpu_used=0
	while kill -0 "$1" 2> /dev/null; do
		c=$(cpu_seconds "$1")
		[ -z "$c" ] || cpu_used=$c
		# What a run cut short (a reboot) had used, to be made up.
		echo "$cpu_used" > "fuzz-$name.cpu"
		if [ -n "$2" ] && [ "$cpu_used" -ge "$2" ]; then
			kill -INT "$1"
			return
		fi
		sleep 5
	done
}
# fuzz-state saves and reads a file per input: in memory, not on a disk
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
	TMPDIR=/dev/shm
	export TMPDIR
fi
[ -x "$top/configure" ] || (cd "$top" && autoreconf -fi)
mkdir -p "$dir"
cd "$dir"
[ -f Makefile ] || "$top/configure" -q CC=clang --enable-fuzzing --enable-sanitizers
make -s -j"$(nproc)" check TESTS= > /dev/null
targets=$*
[ -n "$targets" ] || targets=$(for t in tests/fuzz/fuzz-*; do [ -x "$t" ] && echo "${t##*/fuzz-}"; done)
for name in $targets; do
	t=tests/fuzz/fuzz-$name
	seeds="$top/tests/fuzz/corpus/$name"
	mkdir -p "corpus-$name"
	if [ $mode = merge ]; then
		# Keeps every committed file (named seeds, regression inputs) and
		# adds those findings that reach something the corpus does not.
		"$t" -merge=1 -max_len=8192 "$seeds" "corpus-$name" > "merge-$name.log" 2>&1 ||
			{ tail -20 "merge-$name.log"; exit 1; }
		grep '^MERGE-OUTER: [0-9]* new files' "merge-$name.log" || true
		echo "$name: $(ls "$seeds" | wc -l) files, $(du -sk "$seeds" | cut -f1) KiB"
		continue
	fi
	echo "$name: ${secs}s ($clock) from $(date -u +%FT%TZ)"
	limit=$secs
	[ $clock = wall ] || limit=0
	rc=0
	# Under autogroup scheduling (kernel.sched_autogroup_enabled = 1, as here)
	# nice acts only within a session: a campaign started in a session of
	# its own (setsid, another terminal, a helper) still took an equal
	# share from the test suite beside it, 7 fuzzers 7 shares.  A niced run
	# puts the fuzzer in a session of its own and gives that its nice value.
	niceness=$(ps -o ni= -p $$ | tr -d ' ')
	if [ "${niceness:-0}" -gt 0 ] && command -v setsid > /dev/null 2>&1; then
		setsid "$t" -max_total_time="$limit" -max_len=8192 -print_final_stats=1 \
			-artifact_prefix="$dir/crash-$name-" "corpus-$name" "$seeds" > "fuzz-$name.log" 2>&1 &
		pid=$!
		sleep 1
		{ [ -w "/proc/$pid/autogroup" ] && echo "$niceness" > "/proc/$pid/autogroup"; } 2> /dev/null || true
	else
		"$t" -max_total_time="$limit" -max_len=8192 -print_final_stats=1 \
			-artifact_prefix="$dir/crash-$name-" "corpus-$name" "$seeds" > "fuzz-$name.log" 2>&1 &
		pid=$!
	fi
	if [ $clock = wall ]; then cpu_watch $pid; else cpu_watch $pid "$secs"; fi
	wait $pid || rc=$?
	# SIGINT from cpu_watch ends libFuzzer with its final statistics.
	if [ $rc -ne 0 ] && ! grep -q 'libFuzzer: run interrupted' "fuzz-$name.log"; then
		tail -40 "fuzz-$name.log"
		exit 1
	fi
	echo "$name: ${cpu_used}s CPU until $(date -u +%FT%TZ)"
	grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE)' "fuzz-$name.log" | tail -1
	grep -E '^stat::(number_of_executed_units|average_exec_per_sec)' "fuzz-$name.log"
done
