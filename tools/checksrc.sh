#!/bin/sh
# The rules of CONTRIBUTING.md that a script can check, over the source tree
# DIR (default .): prints each offence as FILE:LINE: RULE: ..., exits 1 if
# there is any, 2 if DIR is not a p11enroll tree.  tests/checksrc.sh plants
# each kind of offence in a copy and proves that it is found.
#   banned call   a banned function followed by "(", anywhere in a line of a
#                 .c or .h file (comments too: name it there without the
#                 parenthesis); snprintf or an identifier that merely
#                 contains a banned name (my_strcpy_like, fgets) is no call.
# tools/checksrc.sh --banned lists the banned functions, one a line.
BANNED="sprintf vsprintf strcpy strcat strtok atoi atol gets"
if [ "$1" = --banned ]; then
	printf '%s\n' $BANNED
	exit 0
fi
cd "${1:-.}" || exit 2
for d in agent pkcs11 cmp tests; do
	[ -d "$d" ] || { echo "checksrc: $PWD/$d: no such directory" >&2; exit 2; }
done
files=$(find agent pkcs11 cmp tests -type f \( -name '*.c' -o -name '*.h' \) | LC_ALL=C sort)

banned_calls() {
	for f in $BANNED; do
		# A call: the name not preceded by a character of an identifier, then
		# "(".  Each name alone, so that another call on the same line (an
		# snprintf beside a sprintf) hides nothing.  /dev/null: grep names
		# the file even when there is one.
		# shellcheck disable=SC2086
		grep -n -E "(^|[^[:alnum:]_])$f[[:space:]]*\\(" $files /dev/null |
			sed -e "s/^\\([^:]*:[0-9]*\\):[[:space:]]*/\\1: banned call: $f() (CONTRIBUTING.md, Code style): /"
	done
}

offences=$(banned_calls | LC_ALL=C sort -t: -k1,1 -k2,2n)
if [ -n "$offences" ]; then
	printf '%s\n' "$offences"
	exit 1
fi
exit 0
