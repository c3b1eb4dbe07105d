#!/bin/sh
# /fuzz/http: replays the HTTP response fuzz corpus (no crash, no
# sanitizer report).  The files are named one by one, as in replay-cmp.sh.
"$top_builddir/tests/fuzz/fuzz-http" "$top_srcdir"/tests/fuzz/corpus/http/*
