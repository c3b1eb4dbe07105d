#!/bin/sh
# /man: the man pages lint clean, and every --help option is documented.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
[ -n "$MANDOC" ] || bail_out "mandoc not found: install it (tools/deps.sh)"
[ -x "$P11ENROLL" ] || bail_out "p11enroll not built"
opts=$("$P11ENROLL" --help | grep -o -E -- '--[a-z][a-z-]*' | sort -u)
# the plan, from the two fixed lists: the pages, and the options --help names
set -- "$top_srcdir"/man/*.[1-8]
plan $(($# + $(printf '%s\n' "$opts" | grep -c .)))
for m in "$top_srcdir"/man/*.[1-8]; do
	check "/man/lint/$(basename "$m")" "$MANDOC" -Tlint -Wwarning "$m"
done
page=$(mktemp)
"$MANDOC" -Tascii "$top_srcdir/man/p11enroll.1" | sed 's/.\x08//g' > "$page"
for opt in $opts; do
	check "/man/documents/$opt" grep -q -e "$opt" "$page"
done
rm -f "$page"
finish
