#!/bin/sh
# /man: the man pages lint clean, and every --help option is documented.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
[ -n "$MANDOC" ] || skip "mandoc not found"
[ -x "$P11ENROLL" ] || skip "p11enroll not built"
for m in "$top_srcdir"/man/*.[1-8]; do
	check "/man/lint/$(basename "$m")" "$MANDOC" -Tlint -Wwarning "$m"
done
page=$(mktemp)
"$MANDOC" -Tascii "$top_srcdir/man/p11enroll.1" | sed 's/.\x08//g' > "$page"
for opt in $("$P11ENROLL" --help | grep -o -E -- '--[a-z][a-z-]*' | sort -u); do
	check "/man/documents/$opt" grep -q -e "$opt" "$page"
done
rm -f "$page"
finish
