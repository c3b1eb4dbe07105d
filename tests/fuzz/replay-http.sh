#!/bin/sh
# /fuzz/http: replays the HTTP response fuzz corpus (no crash, no
# sanitizer report).  The files are named one by one, as in replay-cmp.sh.
# TAP, one test point (the plan first): the whole corpus replayed
echo "1..1"
if out=$("$top_builddir/tests/fuzz/fuzz-http" "$top_srcdir"/tests/fuzz/corpus/http/*); then
	echo "ok 1 - /fuzz/http/replay: $out"
else
	echo "not ok 1 - /fuzz/http/replay: $out"
fi
