#!/bin/sh
# /fuzz/rsp: replays the after-protection CMP response corpus (no crash,
# no sanitizer report).  The files are named one by one, as in replay-cmp.sh.
"$top_builddir/tests/fuzz/fuzz-rsp" "$top_srcdir"/tests/fuzz/corpus/rsp/*
