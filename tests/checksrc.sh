#!/bin/sh
# /checksrc: the tree keeps the rules tools/checksrc.sh checks, and the
# check finds each kind of offence: planted one at a time in a copy of the
# tree, each must make it exit 1 naming the file, line and rule; what only
# looks like an offence (snprintf, my_strcpy_like) must not, and a tree of
# good files passes.  The banned functions are CONTRIBUTING.md's list;
# the config.h rule is planted in each directory of a fixed list.  The
# unit's User=, Group= and StateDirectory= agree with the sysusers.d file,
# and each disagreement planted in the copy is found; so is each mistake
# planted in the user unit.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
CHECKSRC="$top_srcdir/tools/checksrc.sh"
setup

BANNED=$(sed -n '/^- Banned:/,/checksrc/p' "$top_srcdir/CONTRIBUTING.md" | tr '\n' ' ' |
	sed 's/(.*//' | grep -o '`[a-z_]*`' | tr -d '`')
[ -n "$BANNED" ] || bail_out "no '- Banned:' list in CONTRIBUTING.md"
CONFIG_H_DIRS="agent pkcs11 cmp tests/ca tests/unit tests/fuzz"
set -- $BANNED $CONFIG_H_DIRS
plan $((19 + $#))

# The copy: the files the check reads.
COPY="$TMP/copy"
mkdir "$COPY"
UNIT=systemd/p11enroll.service.in
SYSUSERS=systemd/sysusers.d/p11enroll.conf
UUNIT=systemd/p11enroll-user.service.in
(cd "$top_srcdir" && { find agent pkcs11 cmp tests -type f \( -name '*.c' -o -name '*.h' \) &&
	echo "$UNIT" && echo "$SYSUSERS" && echo "$UUNIT"; } | tar -cf - -T -) |
	(cd "$COPY" && tar -xf -) ||
	bail_out "cannot copy the tree to $COPY"
# The tree of good files, filled below with what must pass.
CLEAN="$TMP/clean"
mkdir -p "$CLEAN/agent" "$CLEAN/pkcs11" "$CLEAN/cmp" "$CLEAN/tests" "$CLEAN/systemd/sysusers.d"
cp "$top_srcdir/$UNIT" "$CLEAN/$UNIT" && cp "$top_srcdir/$SYSUSERS" "$CLEAN/$SYSUSERS" &&
	cp "$top_srcdir/$UUNIT" "$CLEAN/$UUNIT" || bail_out "cannot copy to $CLEAN"

# run_check TREE: tools/checksrc.sh on TREE, its output in $TMP/out, RC.
run_check() {
	sh "$CHECKSRC" "$1" > "$TMP/out" 2>&1
	RC=$?
}

# fires PREFIX: checksrc on the copy exits 1 with a line starting PREFIX
# (FILE:LINE: RULE).
fires() {
	run_check "$COPY"
	[ "$RC" = 1 ] && awk -v p="$1" 'index($0, p) == 1 { f = 1 } END { exit !f }' "$TMP/out" && return 0
	echo "# exit $RC (1 expected), no line '$1...':"
	sed 's/^/#   /' "$TMP/out"
	return 1
}

# silent PREFIX: checksrc on the copy exits 0 or 1 with no line starting
# PREFIX (FILE: or DIR/).
silent() {
	run_check "$COPY"
	[ "$RC" -le 1 ] && ! awk -v p="$1" 'index($0, p) == 1 { f = 1 } END { exit !f }' "$TMP/out" &&
		return 0
	echo "# exit $RC, or a line starting '$1':"
	sed 's/^/#   /' "$TMP/out"
	return 1
}

# plant FILE LINE...: FILE in the copy with "config.h" first and a function
# whose body is the LINEs (the first of them on line 5).
plant() {
	_pf=$COPY/$1
	shift
	{
		printf '#include "config.h"\n/* planted by tests/checksrc.sh */\nvoid plant(void)\n{\n'
		printf '\t%s\n' "$@"
		printf '}\n'
	} > "$_pf"
}

# passes TREE: checksrc on TREE exits 0; what it found is shown.
passes() {
	run_check "$1"
	[ "$RC" = 0 ] && [ ! -s "$TMP/out" ] && return 0
	echo "# exit $RC (0 expected):"
	sed 's/^/#   /' "$TMP/out"
	return 1
}
check "/checksrc/tree" passes "$top_srcdir"

# The script bans what CONTRIBUTING.md bans, no more, no less.
banned_lists() {
	[ "$(printf '%s\n' $BANNED | LC_ALL=C sort)" = "$(sh "$CHECKSRC" --banned | LC_ALL=C sort)" ] && return 0
	echo "# CONTRIBUTING.md bans:" $BANNED
	echo "# tools/checksrc.sh bans:" "$(sh "$CHECKSRC" --banned | tr '\n' ' ')"
	return 1
}
check "/checksrc/banned/list-is-contributing" banned_lists

for f in $BANNED; do
	plant cmp/plant.c "n = $f(a, b);"
	check "/checksrc/banned/$f" fires "cmp/plant.c:5: banned call: $f()"
done
rm -f "$COPY/cmp/plant.c"

# A line with an snprintf hides no banned call beside it (the check used
# to drop every line that had one).
plant agent/plant.c 'n = snprintf(a, sizeof(a), "%d", 1); sprintf(b, "%d", 2);' \
	'vsnprintf(a, sizeof(a), fmt, ap); strcpy (c, a);'
beside_snprintf() {
	fires "agent/plant.c:5: banned call: sprintf()" && fires "agent/plant.c:6: banned call: strcpy()"
}
check "/checksrc/banned/beside-snprintf" beside_snprintf
rm -f "$COPY/agent/plant.c"

# Neither snprintf nor names that contain a banned one are calls of it.
plant pkcs11/plant.c 'n = snprintf(a, sizeof(a), "%d", 1);' 'vsnprintf(a, sizeof(a), fmt, ap);' \
	'my_strcpy_like(a, b); strcat_safe(a, b); fgets(a, sizeof(a), fp);' \
	'x = tok_atoi(s) + atol_checked(s); (void)strtok_r(a, ":", &save);' \
	'p = "sprintf"; /* atoi, not called */'
check "/checksrc/banned/not-a-call" silent pkcs11/plant.c:
mv "$COPY/pkcs11/plant.c" "$CLEAN/pkcs11/" || bail_out "cannot move to $CLEAN"

# config.h first, in the libraries, the programs and the tests.
for d in $CONFIG_H_DIRS; do
	printf '/* planted by tests/checksrc.sh */\n#include <stdio.h>\n#include "config.h"\n' \
		> "$COPY/$d/plant.c"
	check "/checksrc/config-h/$d" fires "$d/plant.c:2: config.h first"
	rm -f "$COPY/$d/plant.c"
done
# Commented out, it is no #include.
printf '/* #include "config.h" */\n#include "tok.h"\n' > "$COPY/pkcs11/plant.c"
check "/checksrc/config-h/commented-out" fires "pkcs11/plant.c:2: config.h first"
rm -f "$COPY/pkcs11/plant.c"
# A .c file without any #include has none first.
printf 'int plant;\n' > "$COPY/agent/plant.c"
check "/checksrc/config-h/no-include" fires "agent/plant.c:1: config.h first"
rm -f "$COPY/agent/plant.c"
# After comments and with spaces it counts; a header is not asked for it.
printf '/*\n * #include <stdio.h>\n */\n#  include "config.h" /* _GNU_SOURCE */\n#include <stdio.h>\n' \
	> "$COPY/cmp/plant.c"
printf '#include <stdio.h>\n' > "$COPY/cmp/plant.h"
config_h_good() {
	silent cmp/plant.c: && silent cmp/plant.h:
}
check "/checksrc/config-h/not-an-offence" config_h_good
mv "$COPY/cmp/plant.c" "$COPY/cmp/plant.h" "$CLEAN/cmp/" || bail_out "cannot move to $CLEAN"

# restore: the copy's unit and sysusers.d file as in the tree.
restore() {
	cp "$top_srcdir/$UNIT" "$COPY/$UNIT" && cp "$top_srcdir/$SYSUSERS" "$COPY/$SYSUSERS" &&
		cp "$top_srcdir/$UUNIT" "$COPY/$UUNIT" || bail_out "cannot restore $COPY/systemd"
}
# edit FILE SED-SCRIPT: FILE of the copy edited, or a bail out if that
# changed nothing (the plant would prove nothing).
edit() {
	sed -e "$2" "$COPY/$1" > "$TMP/edit" && ! cmp -s "$TMP/edit" "$COPY/$1" &&
		cat "$TMP/edit" > "$COPY/$1" || bail_out "$1: '$2' changes nothing"
}
# The unit and the sysusers.d file agree in the tree (whatever else fails).
restore
check "/checksrc/unit-sysusers/tree" silent systemd/

line_of() {
	grep -n -m1 "$2" "$top_srcdir/$1" | cut -d: -f1
}
UNIT_USER=$(line_of "$UNIT" '^User=')
UNIT_GROUP=$(line_of "$UNIT" '^Group=')
SYSUSERS_U=$(line_of "$SYSUSERS" '^u[[:space:]]')
[ -n "$UNIT_USER" ] && [ -n "$UNIT_GROUP" ] && [ -n "$SYSUSERS_U" ] ||
	bail_out "no User= or Group= in $UNIT, or no u line in $SYSUSERS"

edit "$UNIT" 's/^User=.*/User=p11enroll-other/'
check "/checksrc/unit-sysusers/user" fires "$UNIT:$UNIT_USER: unit and sysusers: User=p11enroll-other"
restore
edit "$UNIT" 's/^Group=.*/Group=p11enroll-other/'
check "/checksrc/unit-sysusers/group" fires "$UNIT:$UNIT_GROUP: unit and sysusers: Group=p11enroll-other"
restore
edit "$SYSUSERS" 's|/var/lib/p11enroll|/home/p11enroll|'
check "/checksrc/unit-sysusers/home" fires "$SYSUSERS:$SYSUSERS_U: unit and sysusers: the home"
restore
# A u line whose ID names another group makes no group of the user's name.
edit "$SYSUSERS" 's/^\(u[[:space:]]*[^[:space:]]*[[:space:]]*\)-/\1-:p11enroll-other/'
check "/checksrc/unit-sysusers/user-without-group" fires "$UNIT:$UNIT_GROUP: unit and sysusers: Group="
restore
rm "$COPY/$SYSUSERS"
check "/checksrc/unit-sysusers/missing" fires "$SYSUSERS:1: unit and sysusers: missing"
restore
# A group of its own (g), the user's group named in the ID: they agree.
edit "$UNIT" 's/^Group=.*/Group=p11enroll-grp/'
printf 'g p11enroll-grp -\n' >> "$COPY/$SYSUSERS"
edit "$SYSUSERS" 's/^\(u[[:space:]]*[^[:space:]]*[[:space:]]*\)-/\1-:p11enroll-grp/'
check "/checksrc/unit-sysusers/g-line-agrees" silent systemd/
restore

# The user unit: the agent without --user, and keys a user unit must not
# have.
UUNIT_EXEC=$(line_of "$UUNIT" '^ExecStart=')
[ -n "$UUNIT_EXEC" ] || bail_out "no ExecStart= in $UUNIT"
edit "$UUNIT" 's/ --user agent/ agent/'
check "/checksrc/user-unit/no-user-option" fires "$UUNIT:$UUNIT_EXEC: user unit: ExecStart="
restore
edit "$UUNIT" 's/^\(ExecStart=.*\)$/\1\nStateDirectory=p11enroll/'
check "/checksrc/user-unit/state-directory" \
	fires "$UUNIT:$((UUNIT_EXEC + 1)): user unit: StateDirectory="
restore
edit "$UUNIT" 's/^\(ExecStart=.*\)$/\1\nUser=p11enroll/'
check "/checksrc/user-unit/user" fires "$UUNIT:$((UUNIT_EXEC + 1)): user unit: User="
restore
rm "$COPY/$UUNIT"
check "/checksrc/user-unit/missing" fires "$UUNIT:1: user unit: missing"
restore

# A tree of good files passes: the check can say yes.  Good files: the
# program's main.c and the look-alikes above.
cp "$COPY/agent/main.c" "$CLEAN/agent/" || bail_out "cannot copy to $CLEAN"
(cd "$CLEAN" && find . -type f | LC_ALL=C sort | sed 's/^/# clean tree: /')
check "/checksrc/clean-tree-passes" passes "$CLEAN"
finish
