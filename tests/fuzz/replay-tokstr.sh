#!/bin/sh
# /fuzz/tokstr: replays the token-string fuzz corpus (no crash, no
# sanitizer report, no oracle failure).  The files are named one by one: given a
# directory, a libFuzzer build (--enable-fuzzing) would fuzz on and add its
# findings to the source tree.
"$top_builddir/tests/fuzz/fuzz-tokstr" "$top_srcdir"/tests/fuzz/corpus/tokstr/*
