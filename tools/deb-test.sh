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
# enabled, the purge leaves the administrator's configuration alone.  Then
# all of it again as on a machine booted with systemd (none runs here): a
# stand-in systemctl in a private mount namespace records what the
# maintainer scripts ask (start, try-restart on an upgrade from an older
# version, stop), see part 7.
#
# Prints TAP; exits 1 when a check failed, 77 when it cannot run here (not
# root, p11enroll already installed: it refuses to purge a real install;
# /etc/p11enroll exists).  Whatever happens, it purges the package it
# installed and removes /etc/p11enroll on exit.
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
	(cd "$work" && apt-get -o DPkg::Lock::Timeout=600 -y -q "$@") > "$work/apt-$a_log.log" 2>&1 ||
		{ tail -n 5 "$work/apt-$a_log.log"; return 1; }
}

# The systemd that the maintainer scripts talk to in part 7 (none runs here).
# sd_setup: $work/sd/systemctl, which records each call in $work/sd/calls,
# answers is-active from $work/sd/active (start and restart add a unit, stop
# removes it), lists one user's manager (user@1000) and passes what edits
# unit files only (preset, enable, is-enabled ...) to the real systemctl
# with SYSTEMD_OFFLINE=1 (no daemon to ask); and an allowing policy-rc.d.
sd_setup() {
	rm -rf "$work/sd" && mkdir "$work/sd" && touch "$work/sd/active" || return 1
	printf '#!/bin/sh\nexit 0\n' > "$work/sd/policy-rc.d"
	cat > "$work/sd/systemctl" << 'EOF_SYSTEMCTL'
#!/bin/sh
# tools/deb-test.sh's recording systemctl: no systemd runs here.
sd=$(dirname "$0")
echo "$*" >> "$sd/calls"
act=
units=
for a; do
	case $a in
	-* | *@) ;;
	*) if [ -z "$act" ]; then act=$a; else units="$units $a"; fi ;;
	esac
done
case $act in
start | restart)
	for u in $units; do grep -qx "$u" "$sd/active" || echo "$u" >> "$sd/active"; done ;;
stop)
	for u in $units; do grep -vx "$u" "$sd/active" > "$sd/active.new"
		mv "$sd/active.new" "$sd/active"; done ;;
try-restart | reload | reload-or-restart | try-reload-or-restart | daemon-reload | \
	daemon-reexec | reset-failed) ;;
is-active)
	for u in $units; do grep -qx "$u" "$sd/active" || exit 3; done ;;
list-units)
	case $units in *user@*) echo "user@1000.service loaded active running User Manager" ;; esac ;;
*)
	SYSTEMD_OFFLINE=1
	export SYSTEMD_OFFLINE
	for r in /usr/bin/systemctl /bin/systemctl; do [ -x "$r" ] && exec "$r" "$@"; done
	echo "no systemctl" >&2
	exit 1 ;;
esac
exit 0
EOF_SYSTEMCTL
	chmod +x "$work/sd/systemctl" "$work/sd/policy-rc.d"
}
# sd_run LOG ARGS...: apt_run as on a machine booted with systemd, in a
# private mount namespace (nothing outside it sees the mounts, which end
# with it): /run/systemd/system exists (so debhelper's lines and
# deb-systemd-invoke call systemctl), an existing /usr/sbin/policy-rc.d
# allows every action (a container's says 101: start nothing), $work/sd is
# first on PATH (apt-get gives dpkg its own: DPkg::Path).  The calls go to
# $work/LOG.calls, the output to $work/apt-LOG.log.
sd_run() {
	sr_log=$1
	shift
	rm -f "$work/sd/calls"
	: > "$work/sd/calls"
	# /run/systemd of the namespace: a tmpfs over the real one, or over /run
	# where there is none (nothing in /run is needed once the dependencies
	# are installed, in part 2)
	sr_run=/run/systemd
	[ -d "$sr_run" ] || sr_run=/run
	(cd "$work" && PATH=$work/sd:$PATH unshare --mount --propagation private sh -c '
		mount -t tmpfs sd-test "$1" && mkdir -p /run/systemd/system || exit 1
		if [ -e /usr/sbin/policy-rc.d ]; then
			mount --bind "$2/policy-rc.d" /usr/sbin/policy-rc.d || exit 1
		fi
		shift 2
		exec apt-get -o DPkg::Lock::Timeout=600 -o DPkg::Path="$PATH" -y -q "$@"' \
		sh "$sr_run" "$work/sd" "$@") \
		> "$work/apt-$sr_log.log" 2>&1
	sr_rc=$?
	mv "$work/sd/calls" "$work/$sr_log.calls"
	# unshare fails without CAP_SYS_ADMIN (an unprivileged container) and
	# where / is no mount point (a chroot: bind-mount it onto itself first)
	[ "$sr_rc" -eq 0 ] || tail -n 5 "$work/apt-$sr_log.log"
	return "$sr_rc"
}
# sd_asked LOG PATTERN: sd_run LOG asked the stand-in PATTERN (grep), and
# shows what it asked (for a failed check's output).
sd_asked() {
	cat "$work/$1.calls"
	grep -q -- "$2" "$work/$1.calls"
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
rm -rf "${work:?}/src" "${work:?}/etc" "$work/newer" "$work"/p11enroll*_* "$work"/*.calls \
	"$work"/apt-*.log
mkdir "$work/src" || exit 1
version=$(dpkg-parsechangelog -l "$P11E_TOP/debian/changelog" -S Version) || exit 1
conf=/etc/p11enroll/p11enroll.conf
example=/usr/share/doc/p11enroll/examples/p11enroll.conf
unit=/lib/systemd/system/p11enroll.service
wants=/etc/systemd/system/multi-user.target.wants/p11enroll.service
state=/var/lib/p11enroll
# Without an administrator's configuration: the test makes and removes its
# own, and leaves one it did not make alone.
if [ -e /etc/p11enroll ]; then
	echo "1..0 # SKIP /etc/p11enroll exists (not the package's): move it away first"
	exit 77
fi
# Whatever fails or interrupts the test, the machine is left as it found it
# (CI and the suite run on it next): the package purged, /etc/p11enroll
# (the test's) gone.  The mounts of part 7 end with their namespace.
cleanup() {
	if dpkg-query -W -f='${Status}\n' p11enroll 2> /dev/null |
		grep -q 'installed\|config-files\|half'; then
		apt_run cleanup purge p11enroll ||
			echo "# apt-get purge p11enroll failed: $work/apt-cleanup.log"
	fi
	rm -rf /etc/p11enroll
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

# 1. Build from the checkout's files (tracked, and new ones not ignored), not
# from a developer's build directories.
(cd "$P11E_TOP" && git ls-files -z --cached --others --exclude-standard) |
	(cd "$P11E_TOP" && tar -cf - --null -T -) | tar -xf - -C "$work/src" || exit 1
# Both cores: 21-27 s instead of 29-32 s here (2 shared cores; -j1 is debhelper's default).
case ${DEB_BUILD_OPTIONS:-} in
*parallel=*) ;;
*) DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:+$DEB_BUILD_OPTIONS }parallel=$(nproc)" ;;
esac
export DEB_BUILD_OPTIONS
b_start=$(date +%s)
if (cd "$work/src" && dpkg-buildpackage -us -uc -b) > "$work/build.log" 2>&1; then
	ok "dpkg-buildpackage -us -uc -b ($(($(date +%s) - b_start)) s)"
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

# 7. What the maintainer scripts ask of systemd.  No systemd runs here, so
# the scripts above saw no /run/systemd/system and asked nothing; sd_run
# installs as on a machine booted with systemd, and a stand-in systemctl
# records what they ask.  With no configuration: no start, a stop on remove.
# With one: enable and start on the first install; an upgrade from an older
# version (the same package under a higher version) asks a try-restart only
# (a stopped agent stays stopped, a running one gets the new program); stop
# on remove.
sd_setup || not_ok "a stand-in systemctl in $work/sd"
sd_none() {
	sd_asked sd-install daemon-reload && ! sd_asked sd-install "start\|restart\|try-restart" &&
		test ! -L "$wants"
}
sd_remove_stops() {
	sd_asked sd-remove "\(^\| \)stop p11enroll\.service" &&
		sd_asked sd-remove "--user --machine 1000@ stop p11enroll-user.service"
}
sd_started() {
	sd_asked sd-config " start p11enroll\.service" && test -L "$wants" &&
		grep -qx p11enroll.service "$work/sd/active"
}
sd_upgraded() {
	sd_asked sd-upgrade "try-restart p11enroll.service" &&
		! sd_asked sd-upgrade "\(^\| \)\(start\|restart\|stop\) p11enroll" && test -L "$wants" &&
		[ "$(dpkg-query -W -f='${Version}' p11enroll)" = "$newer" ] &&
		grep -qx p11enroll.service "$work/sd/active"
}
sd_stopped() {
	sd_asked sd-remove2 "\(^\| \)stop p11enroll\.service" &&
		! grep -q p11enroll "$work/sd/active"
}
check "systemd: apt-get install, no configuration" sd_run sd-install install "$pkg"
check "systemd, no configuration: not started, not enabled" sd_none
check "systemd: apt-get remove" sd_run sd-remove remove p11enroll
check "systemd: remove stops the system agent and each user's" sd_remove_stops
check "systemd: apt-get purge" sd_run sd-purge purge p11enroll
mkdir -p /etc/p11enroll && cp "$work/example.conf" "$conf"
check "systemd: apt-get install with $conf" sd_run sd-config install "$pkg"
check "systemd, a configuration: enabled and started" sd_started
# The newer package: this one's files and scripts under a higher version
# (its scripts see an upgrade from $version, as from a previous release).
newer=$version+1
newer_deb=$work/p11enroll_${newer}_test.deb
check "a package p11enroll $newer (dpkg-deb)" sh -c 'rm -rf "$1" &&
	dpkg-deb -R "$2" "$1" && sed -i "s/^Version: .*/Version: $3/" "$1/DEBIAN/control" &&
	dpkg-deb -b "$1" "$4" > /dev/null' sh "$work/newer" "$deb" "$newer" "$newer_deb"
check "systemd: apt-get install (upgrade $version -> $newer)" \
	sd_run sd-upgrade install "$newer_deb"
check "systemd, upgrade: try-restart only, still enabled and running" sd_upgraded
check "systemd: apt-get remove" sd_run sd-remove2 remove p11enroll
check "systemd, a configuration: remove stops the agent" sd_stopped
check "systemd: apt-get purge" sd_run sd-purge2 purge p11enroll
check "systemd: purge removes the unit link and the state" \
	sh -c '! [ -L "$1" ] && ! [ -e "$2" ]' sh "$wants" "$state"
rm -rf /etc/p11enroll
finish
