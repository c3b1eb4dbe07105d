#!/bin/sh
# The whole test suite: installs missing packages (as root), then builds and
# runs `make check` twice, plain and under ASan+UBSan, and `make distcheck`
# (with a smoke subset of the tests).
set -u
P11E_TOP=$(cd "$(dirname "$0")/.." && pwd)
. "$P11E_TOP/tools/deps.sh"
# The Debian package's test (below) on CI, or with P11E_DEB=1: it installs
# and purges the package, so not on a developer's machine by default.
deb=
[ -n "${P11E_CI:-}" ] || [ -n "${P11E_DEB:-}" ] && deb=yes
p11e_deps "$P11E_PACKAGES${deb:+ $P11E_DEB_PACKAGES}" || exit 1
p11e_npm_deps || exit 1
status=0
pass=0 fail=0 skip=0
SKIPS="$P11E_TOP/tests/SKIPS"
[ "$(id -u)" = 0 ] && root=yes || root=no

# skip_allowed KIND TEST POINT: tests/SKIPS lists TEST's skip POINT with a
# condition met here (KIND: plain or sanitizers).
skip_allowed() {
	grep -v '^[[:space:]]*\(#\|$\)' "$SKIPS" | while read -r s_test s_point s_cond s_reason; do
		[ "$s_test" = "$2" ] || continue
		# shellcheck disable=SC2254 # s_point is a pattern
		case $3 in $s_point) ;; *) continue ;; esac
		case $s_cond in
		sanitizers) [ "$1" = sanitizers ] ;;
		not-root) [ "$root" = no ] ;;
		local) [ -z "${P11E_CI:-}" ] ;;
		any) true ;;
		*) false ;;
		esac && { echo "$s_reason"; exit 0; }
	done | grep -q .
}

# check_skips DIR KIND: every skip that tap-driver.sh reported in DIR's test
# logs ("SKIP: TEST N - NAME # SKIP why" for a test point, "SKIP: TEST - why"
# for a whole test) must be listed in tests/SKIPS; returns 1 if one is not.
check_skips() {
	cs_bad=0
	cs_list=$(cat "$1"/tests/*.log "$1"/tests/*/*.log 2> /dev/null |
		sed -n 's/^SKIP: \([^ ]*\) - .*$/\1 - &/p; s/^SKIP: \([^ ]*\) [0-9][0-9]* \(- \)\{0,1\}\([^ ]*\).*$/\1 \3 &/p')
	[ -n "$cs_list" ] || return 0
	while read -r cs_test cs_point cs_line; do
		if skip_allowed "$2" "$cs_test" "$cs_point"; then
			echo "listed skip ($2 build): $cs_line"
		else
			echo "UNLISTED SKIP ($2 build, in $1): $cs_line"
			echo "  every skip fails the suite unless tests/SKIPS lists it: a line"
			echo "  '$cs_test ${cs_point} CONDITION REASON' (CONDITION: sanitizers, not-root, local or any)"
			cs_bad=1
		fi
	done <<EOF_SKIPS
$cs_list
EOF_SKIPS
	return $cs_bad
}

# run_check DIR KIND CONFIGURE_ARGS...: make check in DIR; adds to the
# counts (tap-driver.sh: one per TAP test point); fails on an unlisted skip.
run_check() {
	dir=$1 kind=$2
	shift 2
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
	check_skips "$dir" "$kind" || { status=1; fail=$((fail + 1)); }
}

run_check "$P11E_TOP/build" plain
# sanitizers make every step slower: the tests' client timeouts and hang
# guards scale with it (never a threshold)
P11ENROLL_TEST_SCALE=3
export P11ENROLL_TEST_SCALE
run_check "$P11E_TOP/build-asan" sanitizers --enable-sanitizers
unset P11ENROLL_TEST_SCALE
# The tarball builds and passes a smoke subset: the suite itself ran twice
# above (CI time is bounded).
SMOKE_TESTS="tests/unit/test-tok tests/unit/test-agent tests/enroll.sh tests/trust.sh \
tests/man.sh tests/checksrc.sh tests/fuzz/replay-cmp.sh tests/fuzz/replay-rsp.sh \
tests/fuzz/replay-mime.sh tests/bcpeer.sh"
echo "=== make distcheck (smoke: $SMOKE_TESTS)"
(cd "$P11E_TOP/build" &&
	make -s distcheck DISTCHECK_CONFIGURE_FLAGS=--enable-strict TESTS="$SMOKE_TESTS" \
		> distcheck.log 2>&1) ||
	{ tail -50 "$P11E_TOP/build/distcheck.log"; status=1; fail=$((fail + 1)); }
[ $status -eq 0 ] && pass=$((pass + 1))
# The Debian package built, lintian-checked, installed, upgraded, removed and
# purged (tools/deb-test.sh, as root).  Its exit 77 (not root, p11enroll or
# /etc/p11enroll already there) is a failure too: CI must run it.  Build
# log, apt logs and packages in build/deb.
if [ -n "$deb" ]; then
	echo "=== Debian package (tools/deb-test.sh; log build/deb-test.log, files build/deb)"
	mkdir -p "$P11E_TOP/build"
	P11E_DEB_DIR="$P11E_TOP/build/deb" sh "$P11E_TOP/tools/deb-test.sh" \
		> "$P11E_TOP/build/deb-test.log" 2>&1
	deb_rc=$?
	p=$(grep -c '^ok ' "$P11E_TOP/build/deb-test.log")
	f=$(grep -c '^not ok ' "$P11E_TOP/build/deb-test.log")
	pass=$((pass + p))
	if [ $deb_rc -ne 0 ]; then
		grep -v '^ok ' "$P11E_TOP/build/deb-test.log" | tail -n 60
		echo "tools/deb-test.sh failed (exit $deb_rc; 77: it could not run here)"
		status=1 fail=$((fail + (f > 0 ? f : 1)))
	fi
fi
echo "$pass passed, $fail failed, $skip skipped"
exit $status
