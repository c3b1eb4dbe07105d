#!/bin/sh
# The Debian package, end to end, on this machine (as root: it installs and
# purges the package): builds it from a copy of the checkout with
# dpkg-buildpackage -us -uc -b, runs lintian (no error, no warning), installs
# it with apt-get install ./p11enroll_*.deb, checks the program, the example
# configuration, the user, the state directory and that the agent is not
# enabled, removes it (state kept), purges it (state gone) and checks that
# nothing of it is left but the user p11enroll, which Debian keeps (README,
# "Install from the package").  Then once more with a configuration in
# /etc/p11enroll: the first install enables the agent, an upgrade keeps it
# enabled, the purge leaves the administrator's configuration alone.
#
# Prints TAP; exits 1 when a check failed, 77 when it cannot run here (not
# root, p11enroll already installed: it refuses to purge a real install).
# The build, the logs and the packages stay in $P11E_DEB_DIR (default: a
# new directory under /tmp, printed at the end).
# The checks are functions and sh -c scripts given as arguments to check,
# which shellcheck sees neither as called nor as meant to expand later.
# shellcheck disable=SC2016,SC2317
set -u
P11E_TOP=$(cd "$(dirname "$0")/.." && pwd)
. "$P11E_TOP/tools/deps.sh"

if [ "$(id -u)" -ne 0 ]; then
	echo "1..0 # SKIP not root: installing and purging the package needs root"
	exit 77
fi
if dpkg-query -W -f='${Status}\n' p11enroll 2> /dev/null | grep -q 'installed\|config-files'; then
	echo "1..0 # SKIP p11enroll is installed here: not purging it (apt-get purge p11enroll first)"
	exit 77
fi
p11e_deps "$P11E_DEB_PACKAGES" || exit 1
export DEBIAN_FRONTEND=noninteractive
# apt_run LOG ARGS...: apt-get, which waits for another apt-get or dpkg to end
# (a shared CI machine); its output in $work/apt-LOG.log.
apt_run() {
	a_log=$1
	shift
	(cd "$work" && apt-get -o DPkg::Lock::Timeout=600 -y -q "$@") > "$work/apt-$a_log.log" 2>&1
}

n=0
failed=0
ok() {
	n=$((n + 1))
	echo "ok $n - $1"
}
not_ok() {
	n=$((n + 1))
	failed=$((failed + 1))
	echo "not ok $n - $1"
}
# check NAME COMMAND...: one test point, the command's output shown on failure
check() {
	c_name=$1
	shift
	if c_out=$("$@" 2>&1); then
		ok "$c_name"
	else
		not_ok "$c_name"
		printf '%s\n' "$c_out" | sed 's/^/# /'
	fi
}
finish() {
	echo "1..$n"
	echo "# build, logs and packages: $work"
	[ "$failed" -eq 0 ] || echo "# $failed of $n failed"
	[ "$failed" -eq 0 ]
	exit $?
}

work=${P11E_DEB_DIR:-$(mktemp -d /tmp/p11enroll-deb.XXXXXX)}
mkdir -p "$work" || exit 1
rm -rf "$work/src" "$work"/p11enroll*_*
mkdir "$work/src" || exit 1
version=$(dpkg-parsechangelog -l "$P11E_TOP/debian/changelog" -S Version) || exit 1
conf=/etc/p11enroll/p11enroll.conf
example=/usr/share/doc/p11enroll/examples/p11enroll.conf
unit=/lib/systemd/system/p11enroll.service
wants=/etc/systemd/system/multi-user.target.wants/p11enroll.service
state=/var/lib/p11enroll
# Without an administrator's configuration: the test makes and removes its
# own, and leaves one it did not make alone.
if [ -e "$conf" ]; then
	echo "1..0 # SKIP $conf exists (not the package's): move it away first"
	exit 77
fi

# 1. Build from the checkout's files (tracked, and new ones not ignored), not
# from a developer's build directories.
(cd "$P11E_TOP" && git ls-files -z --cached --others --exclude-standard) |
	(cd "$P11E_TOP" && tar -cf - --null -T -) | tar -xf - -C "$work/src" || exit 1
if (cd "$work/src" && dpkg-buildpackage -us -uc -b) > "$work/build.log" 2>&1; then
	ok "dpkg-buildpackage -us -uc -b"
else
	not_ok "dpkg-buildpackage -us -uc -b (see $work/build.log)"
	tail -n 20 "$work/build.log" | sed 's/^/# /'
	finish
fi
deb=$(ls "$work"/p11enroll_"$version"_*.deb)
changes=$(ls "$work"/p11enroll_"$version"_*.changes)
# lintian warns that it runs as root; it reads the packages only.
check "lintian: no error, no warning" lintian --fail-on error,warning --pedantic -I "$changes"

# 2. Install as an operator does.
pkg=./$(basename "$deb")
check "apt-get install $pkg" apt_run install install "$pkg"
files=$(dpkg-query -L p11enroll | while read -r f; do [ -d "$f" ] || echo "$f"; done)

# 3. The program and the example.
check "p11enroll --version says $version" \
	sh -c '[ "$(p11enroll --version)" = "p11enroll $1" ]' sh "$version"
# Verbatim, the example's only errors are the PIN and MAC secret files it
# names and that an administrator makes; with them (in a scratch directory),
# it is a valid configuration.
example_errors() {
	ee_out=$(p11enroll -c "$example" check-config 2>&1)
	ee_rc=$?
	printf '%s\n' "$ee_out"
	[ "$ee_rc" -eq 2 ] &&
		[ "$(printf '%s\n' "$ee_out" |
			grep -c 'cannot read /etc/p11enroll/web\.\(pin\|secret\)')" -eq 2 ] &&
		[ "$(printf '%s\n' "$ee_out" | grep -c 'error')" -eq 3 ]
}
check "check-config on the example: only its PIN and secret files missing" example_errors
mkdir "$work/etc" && printf '1234\n' > "$work/etc/web.pin" &&
	printf 'secret\n' > "$work/etc/web.secret" &&
	sed "s|/etc/p11enroll/|$work/etc/|g" "$example" > "$work/example.conf"
check "check-config on the example with its files: ok" \
	sh -c 'p11enroll -c "$1" check-config | grep -qx "$1: ok, 1 enrollment(s): web"' \
	sh "$work/example.conf"

# 4. The user, the directories, the agent not enabled.
user_ok() {
	pw=$(getent passwd p11enroll) || { echo "no user p11enroll"; return 1; }
	echo "$pw"
	uid=$(echo "$pw" | cut -d: -f3)
	[ "$uid" -lt 1000 ] && [ "$(echo "$pw" | cut -d: -f6)" = "$state" ] &&
		[ "$(echo "$pw" | cut -d: -f7)" = /usr/sbin/nologin ] &&
		getent group p11enroll > /dev/null && [ "$(id -gn p11enroll)" = p11enroll ]
}
check "user p11enroll: system UID, home $state, nologin, group p11enroll" user_ok
check "$state: p11enroll:p11enroll 0755" \
	sh -c '[ "$(stat -c "%U:%G %a" "$1")" = "p11enroll:p11enroll 755" ]' sh "$state"
check "unit's User=/Group=/StateDirectory= agree" \
	sh -c 'grep -qx User=p11enroll "$1" && grep -qx Group=p11enroll "$1" &&
		grep -qx StateDirectory=p11enroll "$1"' sh "$unit"
check "units, man pages, completion, sysusers.d, tmpfiles.d installed" \
	sh -c 'for f; do [ -f "$f" ] || { echo "missing $f"; exit 1; }; done' sh "$unit" \
	/usr/lib/systemd/user/p11enroll-user.service /usr/lib/sysusers.d/p11enroll.conf \
	/usr/lib/tmpfiles.d/p11enroll.conf /usr/share/bash-completion/completions/p11enroll \
	/usr/share/zsh/vendor-completions/_p11enroll \
	/usr/share/man/man1/p11enroll.1.gz /usr/share/man/man5/p11enroll.conf.5.gz \
	/usr/share/man/man8/p11enroll-agent.8.gz "$example"
check "no configuration: the agent is not enabled" test ! -L "$wants"
check "upgrade: try-restart only (a stopped agent stays stopped)" \
	sh -c 'grep -q "deb-systemd-invoke try-restart .p11enroll.service" "$1" &&
		! grep -q "deb-systemd-invoke \(start\|restart\) .p11enroll.service" "$1"' \
	sh /var/lib/dpkg/info/p11enroll.postinst

# 5. Remove keeps the state, purge removes it; nothing else is left.
touch "$state/demo.agent"
check "apt-get remove" apt_run remove remove p11enroll
check "remove keeps the state ($state)" test -f "$state/demo.agent"
check "apt-get purge" apt_run purge purge p11enroll
left() {
	l_bad=0
	for f in $files "$state" "$wants" \
		/var/lib/systemd/deb-systemd-helper-enabled/p11enroll.service.dsh-also; do
		if [ -e "$f" ] || [ -L "$f" ]; then
			echo "left: $f"
			l_bad=1
		fi
	done
	if dpkg-query -W -f='${Status}\n' p11enroll 2> /dev/null |
		grep -qv '^unknown ok not-installed$'; then
		echo "dpkg still knows p11enroll: $(dpkg-query -W -f='${Status}' p11enroll)"
		l_bad=1
	fi
	return "$l_bad"
}
check "purge: no file, no state, no unit link, no dpkg record left" left
check "purge keeps the user p11enroll (Debian keeps system users)" getent passwd p11enroll

# 6. With a configuration: the first install enables the agent; an upgrade
# (the same package again) keeps it enabled; purge leaves the configuration.
mkdir -p /etc/p11enroll && cp "$work/example.conf" "$conf"
check "apt-get install with $conf" apt_run config install "$pkg"
check "a configuration: the first install enables the agent" test -L "$wants"
check "apt-get install --reinstall (upgrade path)" apt_run upgrade install --reinstall "$pkg"
check "upgrade keeps the agent enabled" test -L "$wants"
check "apt-get purge" apt_run purge2 purge p11enroll
check "purge removes the unit link and the state" \
	sh -c '! [ -L "$1" ] && ! [ -e "$2" ]' sh "$wants" "$state"
check "purge leaves the administrator's $conf" test -f "$conf"
rm -rf /etc/p11enroll
finish
