#!/bin/sh
# tools/coverage.sh BUILDDIR SRCDIR: the report of `make coverage` from the
# gcov counters the test runs left in BUILDDIR (configure --enable-coverage).
# Writes BUILDDIR/coverage/: all.info (every source), DIR.info and the
# figures per directory (summary.txt, also printed) and html/index.html.
# LCOV, GENHTML: the tools (default lcov, genhtml); GCOV: the gcov to use.
set -u
# physical paths: gcov names the sources that way (no "build/..")
build=$(cd "${1:?usage: coverage.sh BUILDDIR SRCDIR}" && pwd -P) || exit 1
src=$(cd "${2:?usage: coverage.sh BUILDDIR SRCDIR}" && pwd -P) || exit 1
LCOV=${LCOV:-lcov}
GENHTML=${GENHTML:-genhtml}
out="$build/coverage"
# branches as well as lines; the lines that write the counters
# (P11E_COV_FLUSH, config.h) are not counted
rc="--rc lcov_branch_coverage=1 --rc lcov_excl_line=LCOV_EXCL_LINE|P11E_COV_FLUSH"
gcov=
[ -n "${GCOV:-}" ] && gcov="--gcov-tool $GCOV"
DIRS="agent cmp pkcs11"

mkdir -p "$out" || exit 1

# run_lcov ARGS...: lcov, without the "Subroutine ... redefined" warnings that
# Debian 12's lcov 1.16 prints for every file
run_lcov() {
	"$LCOV" "$@" 2> "$out/lcov.err"
	_st=$?
	grep -v '^Subroutine .* redefined at ' "$out/lcov.err" >&2
	return $_st
}

# Every compiled file counts, also one that no test ran (it has no .gcda
# and would be missing from the counters): its lines at zero.
# shellcheck disable=SC2086
run_lcov --quiet $rc $gcov --capture --initial --directory "$build" --base-directory "$build" \
	--output-file "$out/base.info" || exit 1
# shellcheck disable=SC2086
run_lcov --quiet $rc $gcov --capture --directory "$build" --base-directory "$build" \
	--output-file "$out/run.info" || exit 1
# shellcheck disable=SC2086
run_lcov --quiet $rc --add-tracefile "$out/base.info" --add-tracefile "$out/run.info" \
	--output-file "$out/all.info" || exit 1

# pct HIT OF: a percentage with one decimal ("-" without anything to count)
pct() {
	awk -v h="$1" -v n="$2" 'BEGIN { if (n > 0) printf "%.1f%%", 100 * h / n; else printf "-" }'
}

# figures INFO: "LH LF BRH BRF" summed over the records of an lcov file
figures() {
	awk -F: '/^LH:/ {lh += $2} /^LF:/ {lf += $2} /^BRH:/ {bh += $2} /^BRF:/ {bf += $2}
		END {print lh + 0, lf + 0, bh + 0, bf + 0}' "$1"
}

{
	printf '%-8s %-24s %s\n' dir lines branches
	tot_lh=0 tot_lf=0 tot_bh=0 tot_bf=0
	for d in $DIRS; do
		# shellcheck disable=SC2086
		run_lcov --quiet $rc --extract "$out/all.info" "$src/$d/*" \
			--output-file "$out/$d.info" > /dev/null 2>&1 || : > "$out/$d.info"
		set -- $(figures "$out/$d.info")
		printf '%-8s %-6s %-17s %-6s %s\n' "$d/" "$(pct "$1" "$2")" "($1 of $2)" \
			"$(pct "$3" "$4")" "($3 of $4)"
		tot_lh=$((tot_lh + $1)) tot_lf=$((tot_lf + $2))
		tot_bh=$((tot_bh + $3)) tot_bf=$((tot_bf + $4))
	done
	printf '%-8s %-6s %-17s %-6s %s\n' all "$(pct $tot_lh $tot_lf)" "($tot_lh of $tot_lf)" \
		"$(pct $tot_bh $tot_bf)" "($tot_bh of $tot_bf)"
} > "$out/summary.txt"

# the HTML report: the three directories only (not the tests, the test CA)
set --
for d in $DIRS; do
	[ -s "$out/$d.info" ] && set -- "$@" "$out/$d.info"
done
[ $# -gt 0 ] || { echo "coverage: no counters for $DIRS under $src (did the tests run?)"; exit 1; }
# shellcheck disable=SC2086
$GENHTML --quiet $rc --branch-coverage --legend --prefix "$src" --title "p11enroll make coverage" \
	--output-directory "$out/html" "$@" || exit 1

echo "coverage of agent/, cmp/, pkcs11/ (lines, branches):"
cat "$out/summary.txt"
echo "HTML report: $out/html/index.html"
