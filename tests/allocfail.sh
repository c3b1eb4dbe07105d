#!/bin/sh
# /allocfail: enroll, renew and revoke with the n-th allocation failing,
# for n = 1, 2, ... until a run ends without reaching n.  Each failing run
# must end in an error exit (no signal, no sanitizer report) with a message
# on stderr, and leave the token as it was or as a successful run leaves it,
# at once or after `p11enroll check --recover`.
#
# What is counted (tests/allocfail/allocfail.c): p11enroll's own
# allocations and OpenSSL's allocations made for p11enroll's calls, never
# those of libcurl, libp11, p11-kit or SoftHSM2.  Two scopes are swept:
#   own  p11enroll's malloc/calloc/realloc/strdup and OPENSSL_*alloc/strdup
#        calls: 20 to 30 per command;
#   all  plus what OpenSSL allocates inside the calls: some 28000 per
#        enroll, 47000 per renew, 8000 per revoke.
# make check (about a minute) samples: every odd n of scope own, and the
# first 3 and 3 spread over the rest of scope all.  make check-allocfail
# (P11E_ALLOCFAIL_ALL=1) takes every n of scope own and every
# P11E_ALLOCFAIL_STRIDE-th n of scope all (default 37, some 2200 runs;
# 1 for every n: some 80000 runs, a day).
# A third scope, call (tests/allocfail/allocfail.c), fails the first
# allocation of each call p11enroll makes into OpenSSL: some 500 points per
# command, each the error branch after one call.  make coverage sweeps it
# over every flow (P11E_ALLOCFAIL_SCOPES=call P11E_ALLOCFAIL_ALL=1
# P11E_ALLOCFAIL_FLOWS="enroll renew revoke p10cr genm root template crls
# rich cr resume abandon").
# The flows and the verdict on each run: tests/sweep-lib.sh.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
. "$top_srcdir/tests/sweep-lib.sh"
need_tools
AF="$top_builddir/tests/allocfail/p11enroll-allocfail"
[ -x "$AF" ] || bail_out "tests/allocfail/p11enroll-allocfail not built"
setup
start_ca || exit 1
TOK=allocfail
make_token "$TOK" || exit 1
# 100 PBM iterations (the lowest allowed) keep each run short; the code
# path is the same as with 10000.
write_conf "$TOK" "pbm_iterations = 100"
: "${P11E_ALLOCFAIL_ALL:=}"
: "${P11E_ALLOCFAIL_STRIDE:=37}"
# which scopes and flows to run (all of them unless narrowed, for debugging)
: "${P11E_ALLOCFAIL_SCOPES:=own all}"
: "${P11E_ALLOCFAIL_FLOWS:=enroll renew revoke}"
# the plan, from the fixed lists of scopes and flows: per sweep all-clean
# and sweep-ended, and counts-openssl for scope all once scope own has run
# (a failing point or setup adds a "not ok" beyond the plan)
_plan=0 _own_ran=no
for scope in $P11E_ALLOCFAIL_SCOPES; do
	for flow in $P11E_ALLOCFAIL_FLOWS; do
		_plan=$((_plan + 2))
		[ "$scope" = all ] && [ $_own_ran = yes ] && _plan=$((_plan + 1))
	done
	[ "$scope" = own ] && _own_ran=yes
done
plan $_plan
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}exitcode=86"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}exitcode=86"
export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}exitcode=86"
unset P11E_FAIL_ALLOC P11E_ALLOC_SCOPE P11E_ALLOC_REPORT

# af SCOPE N ARGS...: p11enroll-allocfail, the N-th allocation failing
# (N = 0: none), with the configuration $SW_CONF; RC, $TMP/err, and
# $TMP/report (count, hit, stack).
af() {
	_af_scope=$1 _af_n=$2
	shift 2
	rm -f "$TMP/report"
	P11E_ALLOC_SCOPE=$_af_scope P11E_FAIL_ALLOC=$_af_n P11E_ALLOC_REPORT="$TMP/report" \
		"$AF" -c "$SW_CONF" "$@" > "$TMP/out" 2> "$TMP/err"
	RC=$?
	RUNS=$((RUNS + 1))
}
report() {
	sed -n "s/^$1 //p" "$TMP/report" 2> /dev/null
}

RUNS=0
TOTAL_POINTS=0
# sweep FLOW SCOPE ARGS...: the failure points of one command.
sweep() {
	_flow=$1 _scope=$2
	shift 2
	sweep_prepare "$_flow" || { not_ok "/allocfail/$_flow/$_scope/setup"; return; }
	tokstate > "$TMP/before"
	af "$_scope" 0 "$@"
	if [ "$RC" -ne 0 ] || [ "$(report crypto_hooks)" != 1 ]; then
		not_ok "/allocfail/$_flow/$_scope/clean-run"
		sed 's/^/#   /' "$TMP/err" "$TMP/report"
		return
	fi
	tokstate > "$TMP/after"
	_count=$(report count)
	# the stack walk recognises OpenSSL's allocations for p11enroll: scope
	# all counts more than scope own (say, if backtrace() broke, it would not)
	eval "_own=\${OWN_COUNT_$_flow:-}"
	[ "$_scope" = own ] && eval "OWN_COUNT_$_flow=$_count"
	[ "$_scope" = all ] && [ -n "$_own" ] &&
		check "/allocfail/$_flow/all/counts-openssl" test "$_count" -gt $((_own * 10))
	# the points: every n, or in make check for scope all a sample
	if [ -n "${P11E_ALLOCFAIL_POINTS:-}" ]; then
		# replaying recorded points: P11E_ALLOCFAIL_POINTS="n1 n2 ..."
		_points="$P11E_ALLOCFAIL_POINTS $((_count + 1000))"
	elif [ "$_scope" = own ] && [ -n "$P11E_ALLOCFAIL_ALL" ]; then
		_points=$(seq 1 $((_count + 1)))
	elif [ "$_scope" = own ]; then
		_points=$(seq 1 2 $((_count + 2)))
	elif [ "$_scope" = call ] && [ -n "$P11E_ALLOCFAIL_ALL" ]; then
		_points=$(seq 1 $((_count + 1)))
	elif [ -n "$P11E_ALLOCFAIL_ALL" ]; then
		_points=$(seq 1 "$P11E_ALLOCFAIL_STRIDE" $((_count + P11E_ALLOCFAIL_STRIDE)))
	else
		_points="1 2 3 $(seq 4 $((_count / 3 + 1)) "$_count") $((_count + 1000))"
	fi
	_bad=0 _tried=0 _last= SW_RECOVERED=0 SW_ABSORBED=0
	for n in $_points; do
		sweep_prepare "$_flow" || { _bad=$((_bad + 1)); continue; }
		af "$_scope" "$n" "$@"
		if [ "$(report hit)" = 0 ]; then
			_last=$n
			break
		fi
		_tried=$((_tried + 1))
		if [ -z "$(report hit)" ]; then
			SW_WHY="no allocation report (exit $RC)"
		else
			sweep_judge "$_flow"
		fi
		if [ -n "$SW_WHY" ]; then
			_bad=$((_bad + 1))
			sweep_report "/allocfail/$_flow/$_scope/n=$n"
			sed 's/^/#   /' "$TMP/report" | head -40
		fi
	done
	TOTAL_POINTS=$((TOTAL_POINTS + _tried))
	echo "# $_flow/$_scope: $_count allocations counted; $_tried failure points run," \
		"$_bad bad, $SW_RECOVERED needed check --recover, $SW_ABSORBED absorbed (exit 0);" \
		"stopped at n=${_last:-?} (not reached)"
	check "/allocfail/$_flow/$_scope/all-clean" test "$_bad" -eq 0
	check "/allocfail/$_flow/$_scope/sweep-ended" test -n "$_last"
}

sweep_init || exit 1

START=$(date +%s)
for scope in $P11E_ALLOCFAIL_SCOPES; do
	for flow in $P11E_ALLOCFAIL_FLOWS; do
		sweep_flow "$flow" || exit 1
		# shellcheck disable=SC2086 # SW_ARGS: words without blanks in them
		sweep "$flow" "$scope" $SW_ARGS
	done
done
echo "# $RUNS runs, $TOTAL_POINTS failure points, $(($(date +%s) - START)) s"
finish
