#!/bin/sh
# The whole test suite: installs missing packages (as root), then builds and
# runs `make check` twice, plain and under ASan+UBSan, and `make distcheck`
# (with a smoke subset of the tests).
set -u
P11E_TOP=$(cd "$(dirname "$0")/.." && pwd)
. "$P11E_TOP/tools/deps.sh"
p11e_deps || exit 1
status=0
pass=0 fail=0 skip=0

# run_check DIR CONFIGURE_ARGS...: make check in DIR; adds to the counts.
run_check() {
	dir=$1
	shift
	echo "=== make check in $dir ($*)"
	p11e_build "$dir" --enable-strict "$@" || { echo "build failed in $dir"; status=1; return; }
	(cd "$dir" && make -s -j"$(nproc)" check) || status=1
	for t in "$dir"/tests/*.log "$dir"/tests/*/*.log; do
		[ -f "$t" ] && grep -q '^not ok' "$t" && { echo "--- $t"; cat "$t"; }
	done
	if [ -f "$dir/test-suite.log" ]; then
		p=$(awk '/^# PASS:/ {n += $3} END {print n + 0}' "$dir/test-suite.log")
		f=$(awk '/^# (FAIL|ERROR|XPASS):/ {n += $3} END {print n + 0}' "$dir/test-suite.log")
		s=$(awk '/^# SKIP:/ {n += $3} END {print n + 0}' "$dir/test-suite.log")
		pass=$((pass + ${p:-0})) fail=$((fail + ${f:-0})) skip=$((skip + ${s:-0}))
		[ "${f:-0}" -eq 0 ] || cat "$dir/test-suite.log"
	else
		fail=$((fail + 1))
	fi
}

run_check "$P11E_TOP/build"
# sanitizers make every step slower: the tests' client timeouts and hang
# guards scale with it (never a threshold)
P11ENROLL_TEST_SCALE=3
export P11ENROLL_TEST_SCALE
run_check "$P11E_TOP/build-asan" --enable-sanitizers
unset P11ENROLL_TEST_SCALE
# The tarball builds and passes a smoke subset: the suite itself ran twice
# above (CI time is bounded).
SMOKE_TESTS="tests/unit/test-tok tests/unit/test-agent tests/enroll.sh tests/trust.sh \
tests/man.sh tests/checksrc.sh tests/fuzz/replay-cmp.sh tests/fuzz/replay-rsp.sh tests/bcpeer.sh"
echo "=== make distcheck (smoke: $SMOKE_TESTS)"
(cd "$P11E_TOP/build" &&
	make -s distcheck DISTCHECK_CONFIGURE_FLAGS=--enable-strict TESTS="$SMOKE_TESTS" \
		> distcheck.log 2>&1) ||
	{ tail -50 "$P11E_TOP/build/distcheck.log"; status=1; fail=$((fail + 1)); }
[ $status -eq 0 ] && pass=$((pass + 1))
echo "$pass passed, $fail failed, $skip skipped"
exit $status
