#!/bin/sh
# /fuzz/ctlreply: replays the control socket reply fuzz corpus (no crash, no
# sanitizer report).  The files are named one by one, as in replay-cmp.sh.
# TAP, one test point (the plan first): the whole corpus replayed
echo "1..1"
if out=$("$top_builddir/tests/fuzz/fuzz-ctlreply" "$top_srcdir"/tests/fuzz/corpus/ctlreply/*); then
	echo "ok 1 - /fuzz/ctlreply/replay: $out"
else
	echo "not ok 1 - /fuzz/ctlreply/replay: $out"
fi
