#!/bin/sh
# The rules of CONTRIBUTING.md that a script can check, over the source tree
# DIR (default .): prints each offence as FILE:LINE: RULE: ..., exits 1 if
# there is any, 2 if DIR is not a p11enroll tree.  tests/checksrc.sh plants
# each kind of offence in a copy and proves that it is found.
#   banned call   a banned function followed by "(", anywhere in a line of a
#                 .c or .h file (comments too: name it there without the
#                 parenthesis); snprintf or an identifier that merely
#                 contains a banned name (my_strcpy_like, fgets) is no call.
#   config.h first
#                 every .c file (libraries, programs, tests) has
#                 #include "config.h" as its first #include: configure's
#                 AC_USE_SYSTEM_EXTENSIONS puts _GNU_SOURCE and friends
#                 there, and a system header read before it declares
#                 another API than the rest of the program sees.
#   unit and sysusers
#                 systemd/sysusers.d/p11enroll.conf makes the user of the
#                 unit's User= and the group of its Group=, with the home
#                 /var/lib/ and its StateDirectory= (HOME is the state
#                 directory: tpm2-pkcs11 keeps its key store there).
#   user unit     systemd/p11enroll-user.service.in runs
#                 `p11enroll --user agent` (without --user a user's agent
#                 reads /etc/p11enroll and writes /var/lib/p11enroll), and
#                 has neither User= (a user manager runs its units as its
#                 user) nor StateDirectory= (systemd 252 puts a user unit's
#                 below $XDG_CONFIG_HOME, not where --user keeps state).
# tools/checksrc.sh --banned lists the banned functions, one a line.
BANNED="sprintf vsprintf strcpy strcat strtok atoi atol gets"
if [ "$1" = --banned ]; then
	# shellcheck disable=SC2086
	printf '%s\n' $BANNED
	exit 0
fi
cd "${1:-.}" || exit 2
for d in agent pkcs11 cmp tests systemd/p11enroll.service.in; do
	[ -e "$d" ] || { echo "checksrc: $PWD/$d: not found" >&2; exit 2; }
done
files=$(find agent pkcs11 cmp tests -type f \( -name '*.c' -o -name '*.h' \) | LC_ALL=C sort)

banned_calls() {
	for f in $BANNED; do
		# A call: the name not preceded by a character of an identifier, then
		# "(".  Each name alone, so that another call on the same line (an
		# snprintf beside a sprintf) hides nothing.  /dev/null: grep names
		# the file even when there is one.
		# shellcheck disable=SC2086
		grep -n -E "(^|[^[:alnum:]_])${f}[[:space:]]*\\(" $files /dev/null |
			sed -e "s/^\\([^:]*:[0-9]*\\):[[:space:]]*/\\1: banned call: $f() (CONTRIBUTING.md, Code style): /"
	done
}

# The line of the first #include, or line 1 of a file without one.
config_h_first() {
	# shellcheck disable=SC2086,SC2046
	awk '
	function nothing() {
		if (file != "" && !seen)
			printf "%s:1: config.h first: no #include \"config.h\" (CONTRIBUTING.md, Code style)\n", file
	}
	FNR == 1 { nothing(); file = FILENAME; seen = 0 }
	seen { next }
	/^[ \t]*#[ \t]*include/ {
		seen = 1
		if ($0 !~ /^[ \t]*#[ \t]*include[ \t]*"config\.h"/) {
			line = $0
			sub(/^[ \t]*/, "", line)
			printf "%s:%d: config.h first: the first #include must be \"config.h\" (CONTRIBUTING.md, Code style): %s\n", FILENAME, FNR, line
		}
	}
	END { nothing() }' $(printf '%s\n' $files | grep '\.c$')
}

# What the unit says against what the sysusers.d file makes.  Only u and
# g lines make groups: a u line its user's group when its ID names none.
unit_sysusers() {
	unit=systemd/p11enroll.service.in
	sysusers=systemd/sysusers.d/p11enroll.conf
	if [ ! -f "$sysusers" ]; then
		echo "$sysusers:1: unit and sysusers: missing (it makes the user of $unit)"
		return
	fi
	awk -v unit="$unit" -v sysusers="$sysusers" '
	function value(s) {
		sub(/^[^=]*=[ \t]*/, "", s)
		sub(/[ \t].*$/, "", s)
		return s
	}
	FILENAME == sysusers {
		if ($0 ~ /^[ \t]*(#|$)/)
			next
		gsub(/"[^"]*"/, "-")
		if ($1 == "u") {
			uline[$2] = FNR
			home[$2] = NF >= 5 && $5 != "-" ? $5 : "/"
			if ($3 !~ /:/)
				gline[$2] = FNR
		} else if ($1 == "g") {
			gline[$2] = FNR
		}
		next
	}
	/^[ \t]*[#;]/ { next }
	/^User=/ { user = value($0); userat = FNR }
	/^Group=/ { group = value($0); groupat = FNR }
	/^StateDirectory=/ { state = value($0); stateat = FNR }
	END {
		r = "unit and sysusers"
		if (user == "")
			printf "%s:1: %s: no User=\n", unit, r
		else if (!(user in uline))
			printf "%s:%d: %s: User=%s, but %s makes no such user (u %s ...)\n", unit, userat, r, user, sysusers, user
		else if (state != "" && home[user] != "/var/lib/" state)
			printf "%s:%d: %s: the home of %s is %s, not /var/lib/%s (%s:%d: StateDirectory=%s)\n", sysusers, uline[user], r, user, home[user], state, unit, stateat, state
		if (group != "" && !(group in gline))
			printf "%s:%d: %s: Group=%s, but %s makes no such group (g %s, or u %s without a group in its ID)\n", unit, groupat, r, group, sysusers, group, group
	}' "$sysusers" "$unit"
}

# The per-user agent's unit.
user_unit() {
	uunit=systemd/p11enroll-user.service.in
	if [ ! -f "$uunit" ]; then
		echo "$uunit:1: user unit: missing"
		return
	fi
	awk -v f="$uunit" '
	/^[ \t]*[#;]/ { next }
	/^ExecStart=/ {
		execat = FNR
		if ($0 ~ /\/p11enroll --user agent([ \t]|$)/)
			good = 1
	}
	/^(User|StateDirectory)=/ {
		k = $0
		sub(/=.*/, "", k)
		printf "%s:%d: user unit: %s= in a user unit (see tools/checksrc.sh)\n", f, FNR, k
	}
	END {
		if (!good)
			printf "%s:%d: user unit: ExecStart= does not run p11enroll --user agent\n", f, execat ? execat : 1
	}' "$uunit"
}

offences=$({ banned_calls; config_h_first; unit_sysusers; user_unit; } | LC_ALL=C sort -t: -k1,1 -k2,2n)
if [ -n "$offences" ]; then
	printf '%s\n' "$offences"
	exit 1
fi
exit 0
