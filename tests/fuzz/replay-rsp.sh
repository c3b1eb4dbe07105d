#!/bin/sh
# /fuzz/rsp: replays the after-protection CMP response corpus (no crash,
# no sanitizer report).  The files are named one by one, as in replay-cmp.sh.
# TAP, one test point (the plan first): the whole corpus replayed
echo "1..1"
if out=$("$top_builddir/tests/fuzz/fuzz-rsp" "$top_srcdir"/tests/fuzz/corpus/rsp/*); then
	echo "ok 1 - /fuzz/rsp/replay: $out"
else
	echo "not ok 1 - /fuzz/rsp/replay: $out"
fi
