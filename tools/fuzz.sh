#!/bin/sh
# Runs the libFuzzer targets from their seed corpora (tests/fuzz/README).
# usage: tools/fuzz.sh [SECONDS [TARGET...]]
#          each TARGET (default: all) for SECONDS (default 60), one after the
#          other; findings go to build-fuzz/corpus-TARGET, crashes to
#          build-fuzz/crash-*, the last lines of each run to build-fuzz/fuzz-TARGET.log
#        tools/fuzz.sh merge [TARGET...]
#          adds to tests/fuzz/corpus/TARGET the files of build-fuzz/corpus-TARGET
#          that reach new coverage (-merge=1): review and commit the result
# The campaign of an hour per target is `make fuzz-long` (tools/fuzz.sh 3600),
# not part of make check.
set -e
top=$(cd "$(dirname "$0")/.." && pwd)
dir="$top/build-fuzz"
mode=run
if [ "$1" = merge ]; then
	mode=merge
	shift
else
	secs=${1:-60}
	[ $# -eq 0 ] || shift
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
	echo "$name: ${secs}s from $(date -u +%FT%TZ)"
	"$t" -max_total_time="$secs" -max_len=8192 -print_final_stats=1 -artifact_prefix="$dir/crash-$name-" \
		"corpus-$name" "$seeds" > "fuzz-$name.log" 2>&1 || { tail -40 "fuzz-$name.log"; exit 1; }
	grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE)' "fuzz-$name.log" | tail -1
	grep -E '^stat::(number_of_executed_units|average_exec_per_sec)' "fuzz-$name.log"
done
