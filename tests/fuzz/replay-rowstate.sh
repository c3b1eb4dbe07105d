#!/bin/sh
# /fuzz/rowstate: replays the queue's row state file fuzz corpus (no crash,
# no sanitizer report).  The files are named one by one, as in replay-cmp.sh.
# TAP, one test point (the plan first): the whole corpus replayed
echo "1..1"
if out=$("$top_builddir/tests/fuzz/fuzz-rowstate" "$top_srcdir"/tests/fuzz/corpus/rowstate/*); then
	echo "ok 1 - /fuzz/rowstate/replay: $out"
else
	echo "not ok 1 - /fuzz/rowstate/replay: $out"
fi
