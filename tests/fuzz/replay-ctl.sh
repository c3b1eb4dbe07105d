#!/bin/sh
# /fuzz/ctl: replays the control socket request fuzz corpus (no crash, no
# sanitizer report).  The files are named one by one, as in replay-cmp.sh.
"$top_builddir/tests/fuzz/fuzz-ctl" "$top_srcdir"/tests/fuzz/corpus/ctl/*
