#!/bin/sh
# /example: the example configuration that the Debian package installs
# (examples/p11enroll.conf, in /usr/share/doc/p11enroll/examples) stays a
# valid configuration as the settings change: check-config accepts it once
# the PIN and MAC secret files it names exist, and without them names those
# two and nothing else.  The package's tmpfiles.d entry makes the unit's
# state directory, owned by the unit's user, which is the example's
# state_dir.  tools/deb-test.sh checks the installed package itself.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
setup
plan 5
ex="$top_srcdir/examples/p11enroll.conf"
unit="$top_srcdir/systemd/p11enroll.service.in"
tmpfiles="$top_srcdir/debian/p11enroll.tmpfiles"

sed -e "s|file:/etc/p11enroll/web\.pin|file:$TMP/pin|" \
	-e "s|file:/etc/p11enroll/web\.secret|file:$TMP/secret|" "$ex" > "$TMP/ex.conf"
"$P11ENROLL" -c "$TMP/ex.conf" check-config > "$TMP/out" 2> "$TMP/err"
RC=$?
check "the example with its files: check-config exits 0" expect_rc 0
check "... and names its enrollment" grep -qx "$TMP/ex.conf: ok, 1 enrollment(s): web" "$TMP/out"

"$P11ENROLL" -c "$ex" check-config > "$TMP/out" 2> "$TMP/err"
RC=$?
check "as shipped: exit 2 (its PIN and secret files are the administrator's)" expect_rc 2
check "... naming the two files and nothing else" \
	test "$(grep -c 'cannot read /etc/p11enroll/web\.\(pin\|secret\):' "$TMP/err")" -eq 2 -a \
	"$(grep -c 'error' "$TMP/err")" -eq 3

# d /var/lib/p11enroll MODE USER GROUP: the unit's StateDirectory= and
# User=/Group=, and the example's state_dir
state_ok() {
	_line=$(grep -v '^#' "$tmpfiles" | grep '^d ') || return 1
	# shellcheck disable=SC2086 # the line's fields
	set -- $_line
	[ "$2" = /var/lib/p11enroll ] && [ "$4" = p11enroll ] && [ "$5" = p11enroll ] &&
		grep -qx "StateDirectory=${2#/var/lib/}" "$unit" && grep -qx "User=$4" "$unit" &&
		grep -qx "Group=$5" "$unit" && grep -q "^state_dir = $2\$" "$ex"
}
check "tmpfiles.d, the unit and the example agree on the state directory and its owner" state_ok
finish
