#!/bin/sh
# /fuzz/conf: replays the configuration fuzz corpus (no crash, no sanitizer report).
"$top_builddir/tests/fuzz/fuzz-conf" "$top_srcdir/tests/fuzz/corpus/conf"
