#!/bin/sh
# /man: the man pages lint clean, every --help option is documented in
# p11enroll(1) (those of p11enroll help COMMAND too), and p11enroll.conf(5) documents exactly the settings table
# (p11enroll check-config --keys): no key without its entry, no entry
# without its key.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
[ -n "$MANDOC" ] || bail_out "mandoc not found: install it (tools/deps.sh)"
[ -x "$P11ENROLL" ] || bail_out "p11enroll not built"
# the options of the overview and of every command's help
opts=$({ "$P11ENROLL" --help && for c in $("$P11ENROLL" help --complete); do
	"$P11ENROLL" help "$c"; done; } | grep -o -E -- '--[a-z][a-z-]*' | sort -u)
keys=$("$P11ENROLL" check-config --keys | cut -f 1)
# the keys the page's tagged lists name: ".It Cm a , Cm b"
documented=$(grep '^\.It Cm ' "$top_srcdir/man/p11enroll.conf.5" |
	grep -o -E 'Cm [a-z_]+' | sed 's/^Cm //' | sort -u)
[ -n "$keys" ] && [ -n "$documented" ] || bail_out "no settings table or no documented keys"
# the plan, from the fixed lists: the pages, the options --help names, the
# table's keys and the page's keys
set -- "$top_srcdir"/man/*.[1-8]
plan $(($# + $(printf '%s\n' "$opts" | grep -c .) + $(printf '%s\n' "$keys" | grep -c .) +
	$(printf '%s\n' "$documented" | grep -c .)))
for m in "$top_srcdir"/man/*.[1-8]; do
	check "/man/lint/$(basename "$m")" "$MANDOC" -Tlint -Wwarning "$m"
done
page=$(mktemp)
"$MANDOC" -Tascii "$top_srcdir/man/p11enroll.1" | sed 's/.\x08//g' > "$page"
for opt in $opts; do
	check "/man/documents/$opt" grep -q -e "$opt" "$page"
done
rm -f "$page"
for k in $keys; do
	check "/man/conf/documents/$k" sh -c "printf '%s\n' '$documented' | grep -q -x -e '$k'"
done
for k in $documented; do
	check "/man/conf/in-the-table/$k" sh -c "printf '%s\n' '$keys' | grep -q -x -e '$k'"
done
finish
