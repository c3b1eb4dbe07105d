#!/bin/sh
# /fuzz/state: replays the agent state file (NAME.agent) fuzz corpus (no crash, no
# sanitizer report).  The files are named one by one, as in replay-cmp.sh.
# TAP, one test point (the plan first): the whole corpus replayed
echo "1..1"
if out=$("$top_builddir/tests/fuzz/fuzz-state" "$top_srcdir"/tests/fuzz/corpus/state/*); then
	echo "ok 1 - /fuzz/state/replay: $out"
else
	echo "not ok 1 - /fuzz/state/replay: $out"
fi
