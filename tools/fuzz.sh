#!/bin/sh
# Runs each libFuzzer target for SECONDS (default 60) from its seed corpus.
# usage: tools/fuzz.sh [SECONDS]
set -e
top=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-60}
dir="$top/build-fuzz"
[ -x "$top/configure" ] || (cd "$top" && autoreconf -fi)
mkdir -p "$dir"
cd "$dir"
[ -f Makefile ] || "$top/configure" -q CC=clang --enable-fuzzing --enable-sanitizers
make -s -j"$(nproc)" check TESTS=
for t in tests/fuzz/fuzz-*; do
	name=${t##*/fuzz-}
	mkdir -p "corpus-$name"
	"$t" -max_total_time="$secs" -max_len=8192 "corpus-$name" "$top/tests/fuzz/corpus/$name"
done
