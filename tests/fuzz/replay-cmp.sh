#!/bin/sh
# /fuzz/cmp: replays the CMP response fuzz corpus (no crash, no sanitizer report).
"$top_builddir/tests/fuzz/fuzz-cmp" "$top_srcdir/tests/fuzz/corpus/cmp"
