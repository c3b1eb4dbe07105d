#!/bin/sh
# /checksrc: no banned functions in the sources.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
plan 1
check "/checksrc/banned-functions" sh "$top_srcdir/tools/checksrc.sh" "$top_srcdir"
finish
