#!/bin/sh
# /p11sweep: every PKCS#11 call a command makes, failing in turn.  A clean
# run through tests/p11wrap logs the calls; then, for each call in that
# order (the n-th C_Name), a run in which exactly that call answers
# CKR_DEVICE_ERROR (P11WRAP_FAIL=C_Name=CKR_DEVICE_ERROR@n) without
# reaching the token.  Each run is judged as in tests/allocfail.sh
# (tests/sweep-lib.sh): an exit code and a message, and the token as
# before, as after success or, after `check --recover`, one of them.  A
# run that fails must also name the CKR_ code it got when p11enroll made
# the call; when libp11 made it (libp11 hides the code), say that the
# token or libp11 failed.
#
# One kind of point is left out, and counted: a C_OpenSession that libp11
# makes (the call log says who called, P11WRAP_LOG_CALLER).  libp11 0.4.12,
# Debian 12's, waits for a free session forever when C_OpenSession fails
# inside it (pkcs11_get_session; OpenSC/libp11#579, fixed in 0.4.14): such
# a run hangs in libp11 whatever p11enroll does after.  Each run has a hang
# guard (a bound, not a timing threshold), so that any other hang fails the
# sweep instead of stopping the suite.
#
# make check samples every P11E_P11SWEEP_STRIDE-th call (default 8) of
# enroll, renew and revoke; make check-p11sweep (and make coverage) takes
# every call of every flow (P11E_P11SWEEP_ALL=1, some 2000 runs).
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
. "$top_srcdir/tests/sweep-lib.sh"
need_tools
WRAP="$top_builddir/tests/p11wrap/p11wrap.so"
need_file "$WRAP"
# libp11 0.4.12 leaks what it read when a token call fails while it lists
# slots or keys: LeakSanitizer reports it in the sanitizer build, whatever
# p11enroll does (tests/SKIPS).  The plain build runs the sweep.
sanitized &&
	skip "p11enroll is built with sanitizers: libp11 0.4.12 leaks on a failed token call"
setup
: "${P11E_P11SWEEP_ALL:=}"
: "${P11E_P11SWEEP_STRIDE:=8}"
: "${P11E_P11SWEEP_FLOWS:=enroll renew revoke}"
: "${P11E_P11SWEEP_CKR:=CKR_DEVICE_ERROR}"
[ -n "$P11E_P11SWEEP_ALL" ] && P11E_P11SWEEP_STRIDE=1
set -- $P11E_P11SWEEP_FLOWS
# per flow: clean-run, all-clean, sampled (a failure adds a "not ok")
plan $(($# * 3))
start_ca || exit 1
TOK=p11sweep
make_token "$TOK" || exit 1
write_conf "$TOK" "pbm_iterations = 100"
sed -i "s|^module = .*|module = $WRAP|" "$TMP/p11enroll.conf"
export P11WRAP_MODULE="$SOFTHSM2_MODULE"
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}exitcode=86"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}exitcode=86"
export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}exitcode=86"
unset P11WRAP_FAIL P11WRAP_LOG
export P11WRAP_LOG_CALLER=1
LOG="$TMP/calls.log"
# a hang guard only, not a timing threshold
if command -v timeout > /dev/null 2>&1; then GUARD="timeout -s KILL $(scaled 120)"; else GUARD=; fi

# pw FAIL ARGS...: p11enroll through p11wrap, with P11WRAP_FAIL=FAIL (may
# be empty); RC, $TMP/out, $TMP/err, the calls in $LOG.
pw() {
	_fail=$1
	shift
	: > "$LOG"
	P11WRAP_LOG="$LOG" P11WRAP_FAIL="$_fail" \
		$GUARD "$P11ENROLL" -c "$SW_CONF" "$@" > "$TMP/out" 2> "$TMP/err"
	RC=$?
	RUNS=$((RUNS + 1))
}

# points: "C_Name@n" for each call of $LOG, in call order; "libp11" for
# the C_OpenSession calls libp11 makes (left out, see above).
points() {
	awk '/^C_/ { n[$1]++; if ($1 == "C_OpenSession" && / by libp11/) print "libp11"
		else print $1 "@" n[$1] }' "$LOG"
}

RUNS=0
TOTAL=0
sweep() {
	_flow=$1
	shift
	sweep_prepare "$_flow" || { not_ok "/p11sweep/$_flow/setup"; return; }
	tokstate > "$TMP/before"
	pw "" "$@"
	check "/p11sweep/$_flow/clean-run" expect_rc 0 || return
	tokstate > "$TMP/after"
	points > "$TMP/points"
	_bad=0 _tried=0 _missed=0 _i=0 _libp11=0 SW_RECOVERED=0 SW_ABSORBED=0
	while read -r _p; do
		_i=$((_i + 1))
		[ $(((_i - 1) % P11E_P11SWEEP_STRIDE)) -eq 0 ] || continue
		[ "$_p" = libp11 ] && { _libp11=$((_libp11 + 1)); continue; }
		sweep_prepare "$_flow" || { _bad=$((_bad + 1)); continue; }
		pw "${_p%@*}=$P11E_P11SWEEP_CKR@${_p#*@}" "$@"
		# the point not reached: the run took another path (counted)
		if ! grep -q "^${_p%@*} .*injected" "$LOG"; then
			_missed=$((_missed + 1))
			continue
		fi
		_tried=$((_tried + 1))
		sweep_judge "$_flow"
		# A failed call of p11enroll's own is named with its CKR_ code; one
		# libp11 made reaches p11enroll as libp11's failure, without it.
		if grep -q "^${_p%@*} .*injected by libp11" "$LOG"; then
			_want="token|libp11|PKCS#11"
		else
			_want="$P11E_P11SWEEP_CKR"
		fi
		if [ -z "$SW_WHY" ] && [ "$RC" -ne 0 ] && ! grep -q -E "$_want" "$TMP/err"; then
			SW_WHY="exit $RC, and the message does not say /$_want/"
		fi
		if [ -n "$SW_WHY" ]; then
			_bad=$((_bad + 1))
			sweep_report "/p11sweep/$_flow/$_p"
		fi
	done < "$TMP/points"
	TOTAL=$((TOTAL + _tried))
	echo "# $_flow: $(wc -l < "$TMP/points") calls; $_tried failed in turn, $_bad bad," \
		"$SW_RECOVERED needed check --recover, $SW_ABSORBED absorbed (exit 0)," \
		"$_missed not reached, $_libp11 libp11 C_OpenSession left out"
	check "/p11sweep/$_flow/all-clean" test "$_bad" -eq 0
	check "/p11sweep/$_flow/sampled" test "$_tried" -gt 0
}

sweep_init || exit 1
START=$(date +%s)
for flow in $P11E_P11SWEEP_FLOWS; do
	sweep_flow "$flow" || exit 1
	# shellcheck disable=SC2086 # SW_ARGS: words without blanks in them
	sweep "$flow" $SW_ARGS
done
echo "# $RUNS runs, $TOTAL failure points, $(($(date +%s) - START)) s"
finish
