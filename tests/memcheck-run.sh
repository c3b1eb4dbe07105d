#!/bin/sh
# make memcheck: runs p11enroll ($P11ENROLL_BIN) under valgrind's memcheck,
# in place of the program itself (tests/lib.sh: P11ENROLL_WRAPPER).  Every
# error and every definite or indirect leak makes the run exit 99, which a
# test sees as a wrong exit code; each run also leaves its report in
# $P11E_VALGRIND_LOGDIR for the summary that make memcheck checks.
: "${P11E_VALGRIND_LOGDIR:=${TMPDIR:-/tmp}}"
exec valgrind -q --tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect \
	--errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
	--track-origins=yes --num-callers=30 \
	--suppressions="${top_srcdir:-.}/tests/valgrind.supp" \
	--log-file="$P11E_VALGRIND_LOGDIR/vg.%p.log" \
	"$P11ENROLL_BIN" "$@"
