#!/bin/sh
# /fuzz/pending: replays the pending transaction file fuzz corpus (no crash,
# no sanitizer report).  The files are named one by one: given a directory,
# a libFuzzer build (--enable-fuzzing) would fuzz on and add its findings
# to the source tree.
# TAP, one test point (the plan first): the whole corpus replayed
echo "1..1"
if out=$("$top_builddir/tests/fuzz/fuzz-pending" "$top_srcdir"/tests/fuzz/corpus/pending/*); then
	echo "ok 1 - /fuzz/pending/replay: $out"
else
	echo "not ok 1 - /fuzz/pending/replay: $out"
fi
