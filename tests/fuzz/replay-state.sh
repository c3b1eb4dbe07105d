#!/bin/sh
# /fuzz/state: replays the agent state file (NAME.agent) fuzz corpus (no crash, no
# sanitizer report).  The files are named one by one, as in replay-cmp.sh.
"$top_builddir/tests/fuzz/fuzz-state" "$top_srcdir"/tests/fuzz/corpus/state/*
