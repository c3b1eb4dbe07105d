#!/bin/sh
# /fuzz/result: replays the step result record fuzz corpus (no crash, no
# sanitizer report).  The files are named one by one: given a directory, a
# libFuzzer build (--enable-fuzzing) would fuzz on and add its findings to
# the source tree.
# TAP, one test point (the plan first): the whole corpus replayed
echo "1..1"
if out=$("$top_builddir/tests/fuzz/fuzz-result" "$top_srcdir"/tests/fuzz/corpus/result/*); then
	echo "ok 1 - /fuzz/result/replay: $out"
else
	echo "not ok 1 - /fuzz/result/replay: $out"
fi
