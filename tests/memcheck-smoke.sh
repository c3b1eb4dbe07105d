#!/bin/sh
# /memcheck-smoke: one enroll with p11enroll under valgrind (make memcheck
# runs the whole flows): no memcheck error, no definite or indirect leak.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
need_cmd valgrind
# valgrind and AddressSanitizer do not run one program together
sanitized && skip "p11enroll is built with sanitizers"
setup
plan 4
start_ca || exit 1
make_token smoke || exit 1
write_conf smoke
mkdir -p "$TMP/vg"
P11ENROLL_BIN="$top_builddir/p11enroll" P11E_VALGRIND_LOGDIR="$TMP/vg" \
	"$top_srcdir/tests/memcheck-run.sh" -c "$TMP/p11enroll.conf" enroll test \
	> "$TMP/out" 2> "$TMP/err"
RC=$?
check "/memcheck-smoke/enroll/exit-0" expect_rc 0
check "/memcheck-smoke/enroll/one-report" test "$(ls "$TMP/vg" | wc -l)" -eq 1
if grep -q '^==[0-9]*==' "$TMP"/vg/vg.*.log; then
	not_ok "/memcheck-smoke/enroll/no-valgrind-report"
	sed 's/^/#   /' "$TMP"/vg/vg.*.log | head -60
else
	ok "/memcheck-smoke/enroll/no-valgrind-report"
fi
check "/memcheck-smoke/enroll/stored" test "$(label_count smoke enrolled-key)" -eq 3
finish
