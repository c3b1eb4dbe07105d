#!/bin/sh
# /fuzz/krp: replays the key recovery response (krp) fuzz corpus
# (no crash, no sanitizer report, no oracle failure).  The files are named
# one by one: given a directory, a libFuzzer build (--enable-fuzzing) would
# fuzz on and add its findings to the source tree.
# TAP, one test point (the plan first): the whole corpus replayed
echo "1..1"
if out=$("$top_builddir/tests/fuzz/fuzz-krp" "$top_srcdir"/tests/fuzz/corpus/krp/*); then
	echo "ok 1 - /fuzz/krp/replay: $out"
else
	echo "not ok 1 - /fuzz/krp/replay: $out"
fi
