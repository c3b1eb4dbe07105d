#!/bin/sh
# /fuzz/csv: replays the queue file (CSV) fuzz corpus (no crash, no
# sanitizer report).  The files are named one by one, as in replay-cmp.sh.
# TAP, one test point (the plan first): the whole corpus replayed
echo "1..1"
if out=$("$top_builddir/tests/fuzz/fuzz-csv" "$top_srcdir"/tests/fuzz/corpus/csv/*); then
	echo "ok 1 - /fuzz/csv/replay: $out"
else
	echo "not ok 1 - /fuzz/csv/replay: $out"
fi
