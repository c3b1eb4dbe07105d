#!/bin/sh
# /pop: the CA checks the proof of possession: a request whose POP signature
# does not verify is rejected with badPOP; the same client signing honestly
# is accepted.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
[ -x "$TESTCA" ] || skip "test CA not built"
BADPOP="$top_builddir/tests/badpop"
setup
start_ca || exit 1
"$BADPOP" --good "$CA_URL" "$CMP_REF" "$TMP/secret" "$TMP/ca/root.pem" > "$TMP/out" 2>&1
RC=$?
check "/pop/honest/accepted" test "$RC" -eq 0
"$BADPOP" "$CA_URL" "$CMP_REF" "$TMP/secret" "$TMP/ca/root.pem" > "$TMP/out" 2>&1
RC=$?
check "/pop/broken/rejected" test "$RC" -eq 3
check "/pop/broken/badPOP" grep -q badPOP "$TMP/out"
check "/pop/broken/ca-logged" grep -q -i 'pop' "$TMP/ca.log"
finish
