#!/bin/sh
# /callcount: the token work of one enrollment does not grow with the rest
# of the token.  One enroll, one renew, one `check --recover` and one
# `list NAME` run on an empty token and on a token that also holds 1,002
# unrelated objects (334 key pairs with certificates under other labels,
# tests/tokfill); the tests/p11wrap call log of each is counted: searches
# (C_FindObjectsInit), C_FindObjects, C_GetAttributeValue and sessions
# (C_OpenSession).  Both counts are printed; they must be equal: the
# allowance is 0 calls.  (The time is not compared: SoftHSM2 reads every
# object file in each search, so a search costs in proportion to the token
# whatever its template.)  A token layer that enumerates the token
# (libp11's key list, a listing in recovery) makes thousands of calls more.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
WRAP="$top_builddir/tests/p11wrap/p11wrap.so"
TOKFILL="$top_builddir/tests/tokfill"
need_file "$WRAP"
need_file "$TOKFILL"
setup
OPS="enroll renew check list"
CALLS="C_FindObjectsInit C_FindObjects C_GetAttributeValue C_OpenSession"
plan $((2 + 4 * 2 + 4 * 4 + 6))
export P11WRAP_MODULE="$SOFTHSM2_MODULE"
start_ca || exit 1
make_token empty || exit 1
make_token full || exit 1
"$TOKFILL" --module "$SOFTHSM2_MODULE" --token full --pin-file "$TMP/pin" --count 334 \
	--prefix other > "$TMP/fill.out" 2> "$TMP/fill.err"
check "/callcount/filled" test $? -eq 0
before=$(count_objects full)
check "/callcount/full-holds-1002" test "$before" = 1002

# run TOKEN OP: p11enroll OP on TOKEN through p11wrap; the call log in
# $TMP/TOKEN-OP.log.
run() {
	write_conf "$1"
	sed -i "s|^module = .*|module = $WRAP|" "$TMP/p11enroll.conf"
	case $2 in
	check) set -- "$1" "$2" check test --recover ;;
	list) set -- "$1" "$2" list test ;;
	*) set -- "$1" "$2" "$2" test ;;
	esac
	: > "$TMP/$1-$2.log"
	_tok=$1 _op=$2
	shift 2
	P11WRAP_LOG="$TMP/$_tok-$_op.log" P11WRAP_TIMES="$TMP/$_tok-$_op.times" \
		"$P11ENROLL" -c "$TMP/p11enroll.conf" "$@" > "$TMP/out" 2> "$TMP/err"
	RC=$?
}

for tok in empty full; do
	for op in $OPS; do
		run $tok $op
		check "/callcount/$tok/$op/exit-0" expect_rc 0
	done
done

# count TOKEN OP CALL: how many CALL lines the log has.
count() {
	grep -c "^$3 " "$TMP/$1-$2.log"
}

for op in $OPS; do
	for c in $CALLS; do
		e=$(count empty $op $c)
		f=$(count full $op $c)
		echo "# $op: $c $e calls on the empty token, $f with 1,002 other objects"
		check "/callcount/$op/$c/same" test "$e" -eq "$f"
	done
done

# P11WRAP_TIMES (bench/limit.sh's split of a batch's time) counts the
# calls the log has: each function's calls= equals its log lines.
times_agree() {
	for c in $CALLS C_GenerateKeyPair C_CreateObject; do
		[ "$(sed -n "s/^$c calls=\([0-9]*\) us=[0-9]*$/\1/p" "$TMP/full-enroll.times")" = \
			"$(count full enroll $c)" ] || return 1
	done
}
check "/callcount/p11wrap-times-agree-with-log" times_agree

# The other objects are untouched: the enrollment added its pair and
# certificate and its CA certificates, nothing else changed.
after=$(objects full | grep -c -E '^ *label: *other-')
check "/callcount/others-untouched" test "$after" -eq 1002

# list NAME shows the enrollment (its pair, its certificate, the CA
# certificates), list without a name the whole token.
check "/callcount/list-name/shows-enrollment" grep -q '^certificate "enrolled-key"' \
	"$TMP/out"
check "/callcount/list-name/no-other" sh -c "! grep -q 'other-' '$TMP/out'"
p11e list
check "/callcount/list-all/exit-0" expect_rc 0
check "/callcount/list-all/shows-others" test "$(grep -c '^[a-z ]* \"other-' "$TMP/out")" -eq 1002
finish
