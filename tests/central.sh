#!/bin/sh
# /central: key_source = central (RFC 9483 4.1.6).
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
setup
plan 1
start_ca -v || exit 1
make_token t1 || exit 1
write_conf t1 "key_source = central"
p11e enroll test
echo "RC=$RC"; cat "$TMP/out" "$TMP/err"; tail -20 "$TMP/ca.log"
"$PKCS11_TOOL" --module "$SOFTHSM2_MODULE" --token-label t1 --login --pin "$USER_PIN" -O 2>/dev/null | grep -E "Object|label|ID|Usage|Access"
p11e renew test
echo "RC=$RC"; cat "$TMP/out" "$TMP/err"; tail -8 "$TMP/ca.log"
"$PKCS11_TOOL" --module "$SOFTHSM2_MODULE" --token-label t1 --login --pin "$USER_PIN" -O 2>/dev/null | grep -E "Object|label|ID"
check x true
