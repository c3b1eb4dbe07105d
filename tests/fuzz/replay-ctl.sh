#!/bin/sh
# /fuzz/ctl: replays the control socket request fuzz corpus (no crash, no
# sanitizer report).  The files are named one by one, as in replay-cmp.sh.
# TAP, one test point (the plan first): the whole corpus replayed
echo "1..1"
if out=$("$top_builddir/tests/fuzz/fuzz-ctl" "$top_srcdir"/tests/fuzz/corpus/ctl/*); then
	echo "ok 1 - /fuzz/ctl/replay: $out"
else
	echo "not ok 1 - /fuzz/ctl/replay: $out"
fi
