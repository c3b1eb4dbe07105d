#!/bin/sh
# Installs the Debian 12 packages p11enroll needs when they are missing
# (as root), or says which to install.  Sourced by demo-lib.sh and test.sh.
# The JDK and Bouncy Castle jars are for the tests' second CMP server
# (tests/bc, tests/bcpeer.sh); swtpm, tpm2-abrmd, D-Bus, tpm2-tools and
# tpm2-pkcs11 with tpm2_ptool for the TPM tests (tests/tpm-lib.sh); sshd,
# pyftpdlib (+ pyOpenSSL for FTPS), dovecot and aiosmtpd are the real
# servers the transport tests start (tests/ssh-lib.sh, ftp-lib.sh,
# mail-lib.sh).  promtool (prometheus) and python3-yaml check contrib/'s
# monitoring rules and dashboard (tests/monitoring.sh), which scrapes the
# agent's metrics file through prometheus-node-exporter.
# npm packages: p11e_npm_deps below.
P11E_PACKAGES="build-essential autoconf automake pkgconf libssl-dev libp11-dev
libp11-kit-dev libcurl4-openssl-dev softhsm2 opensc libengine-pkcs11-openssl p11-kit
mandoc openssl socat python3 python3-jsonschema python3-yaml prometheus default-jdk-headless libbcprov-java libbcpkix-java libbcutil-java
prometheus-node-exporter
swtpm swtpm-tools tpm2-tools tpm2-abrmd libtpm2-pkcs11-1 libtpm2-pkcs11-tools
python3-tpm2-pkcs11-tools libtss2-tcti-tabrmd0 dbus
openssh-server openssh-client python3-pyftpdlib python3-openssl dovecot-imapd dovecot-pop3d python3-aiosmtpd"
# The Debian package's build and check (tools/deb-test.sh) only.
# shellcheck disable=SC2034 # used by the scripts that source this file
P11E_DEB_PACKAGES="build-essential dpkg-dev debhelper fakeroot lintian pkgconf libssl-dev
libp11-dev libp11-kit-dev libcurl4-openssl-dev
git"

# p11e_deps [PACKAGES]: P11E_PACKAGES unless a list is given.
p11e_deps() {
	missing=
	for p in ${1:-$P11E_PACKAGES}; do
		dpkg-query -W -f='${Status}\n' "$p" 2> /dev/null | grep -q '^install ok installed$' ||
			missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		echo "missing Debian packages:$missing" >&2
		echo "install them with: sudo apt-get install$missing" >&2
		return 1
	fi
	echo "installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q > /dev/null || return 1
	# shellcheck disable=SC2086
	apt-get install -y -q --no-install-recommends $missing > /dev/null
}

# p11e_npm_deps: the npm packages pinned in tests/grafana-schema's
# package-lock.json (Grafana's own dashboard types and TypeScript, for
# tests/monitoring.sh), installed there with npm ci when missing or older
# than the lock; Node.js and npm from Debian when the machine has no npm
# (not in P11E_PACKAGES: a machine may have them from elsewhere, such as
# NodeSource's nodejs, which carries its own npm).  The tests need them
# (tools/test.sh), a demo does not.
p11e_npm_deps() {
	nd_dir="$P11E_TOP/tests/grafana-schema"
	if ! command -v npm > /dev/null 2>&1; then
		if [ "$(id -u)" -ne 0 ]; then
			echo "npm not found: tests/monitoring.sh skips the dashboard's type check" >&2
			echo "install it with: sudo apt-get install nodejs npm" >&2
			return 0
		fi
		echo "installing: nodejs npm"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -q > /dev/null && apt-get install -y -q --no-install-recommends nodejs npm \
			> /dev/null || return 1
	fi
	[ -n "$(find "$nd_dir/node_modules/.package-lock.json" -newer "$nd_dir/package-lock.json" \
		2> /dev/null)" ] && return 0
	echo "npm ci in $nd_dir"
	(cd "$nd_dir" && npm ci --no-audit --no-fund > /dev/null) || return 1
}

# p11e_build DIR [CONFIGURE_ARGS...]: an out-of-tree build of the checkout.
p11e_build() {
	dir=$1
	shift
	[ -x "$P11E_TOP/configure" ] || (cd "$P11E_TOP" && autoreconf -fi > /dev/null) || return 1
	mkdir -p "$dir" || return 1
	(cd "$dir" && { [ -f Makefile ] || "$P11E_TOP/configure" -q "$@"; } &&
		make -s -j"$(nproc)") || return 1
}
