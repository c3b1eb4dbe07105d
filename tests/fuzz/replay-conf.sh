#!/bin/sh
# /fuzz/conf: replays the configuration fuzz corpus (no crash, no sanitizer
# report).  The files are named one by one: given a directory, a libFuzzer
# build (--enable-fuzzing) would fuzz on and add its findings to the source
# tree.
"$top_builddir/tests/fuzz/fuzz-conf" "$top_srcdir"/tests/fuzz/corpus/conf/*
