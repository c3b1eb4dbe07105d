#!/bin/sh
# /pop: the CA checks the proof of possession: a request whose POP signature
# does not verify is rejected with badPOP; the same client signing honestly
# is accepted.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
[ -x "$TESTCA" ] || bail_out "test CA not built"
BADPOP="$top_builddir/tests/badpop"
setup
plan 8
start_ca || exit 1
"$BADPOP" --good "$CA_URL" "$CMP_REF" "$TMP/secret" "$TMP/ca/root.pem" > "$TMP/out" 2>&1
RC=$?
check "/pop/honest/accepted" test "$RC" -eq 0
check "/pop/honest/ca-verified-pop" grep -q 'ir: POP verified (CRMF signature)' "$TMP/ca.log"
check "/pop/honest/one-cert-issued" test "$(ca_issued)" -eq 1
"$BADPOP" "$CA_URL" "$CMP_REF" "$TMP/secret" "$TMP/ca/root.pem" > "$TMP/out" 2>&1
RC=$?
check "/pop/broken/rejected" test "$RC" -eq 3
check "/pop/broken/badPOP" grep -q 'PKIStatus: rejection; PKIFailureInfo: badPOP;' "$TMP/out"
# the CA's own verdict on the broken request (the honest one logged "POP
# verified", which a grep for "pop" found as well)
check "/pop/broken/ca-rejected-pop" grep -q 'ir: rejected badPOP: POP verification failed' "$TMP/ca.log"
check "/pop/broken/ca-answered-rejection" grep -q 'ir -> ip rejected badPOP' "$TMP/ca.log"
check "/pop/broken/nothing-issued" test "$(ca_issued)" -eq 1
finish
