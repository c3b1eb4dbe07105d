#!/bin/sh
# /fuzz/privkey: replays the certificate-response private key fuzz corpus
# (no crash, no sanitizer report, no oracle failure).  The files are named
# one by one: given a directory, a libFuzzer build (--enable-fuzzing) would
# fuzz on and add its findings to the source tree.
# TAP, one test point (the plan first): the whole corpus replayed
echo "1..1"
if out=$("$top_builddir/tests/fuzz/fuzz-privkey" "$top_srcdir"/tests/fuzz/corpus/privkey/*); then
	echo "ok 1 - /fuzz/privkey/replay: $out"
else
	echo "not ok 1 - /fuzz/privkey/replay: $out"
fi
