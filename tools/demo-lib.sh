#!/bin/sh
# What the demos (demo.sh, station-demo.sh) both set up: the build, a
# fresh state directory with its SoftHSM2 token store and demo-only
# credentials, the test CA on a loopback port.  Sourced with P11E_TOP set
# (the checkout).
. "$P11E_TOP/tools/deps.sh"

# demo_build DIR: the missing Debian packages, then the checkout built in
# DIR (exits when either fails).
demo_build() {
	p11e_deps || exit 1
	echo "building in $1 ..."
	p11e_build "$1" --enable-strict || { echo "build failed" >&2; exit 1; }
}

# demo_softhsm_conf TOKENDIR FILE: a SoftHSM2 configuration with its
# tokens in TOKENDIR.
demo_softhsm_conf() {
	printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
		"$1" > "$2"
}

# demo_state DIR BUILD_DIR: DIR made afresh (mode 700, umask 077 from
# here on) with an empty token store, SOFTHSM2_CONF, and the files pin
# and secret; SOFTHSM2_MODULE as BUILD_DIR was configured with.
demo_state() {
	# shellcheck disable=SC2034 # the demos' configurations use it
	SOFTHSM2_MODULE=$(sed -n 's/^SOFTHSM2_MODULE = //p' "$2/Makefile")
	rm -rf "$1"
	mkdir -p "$1/tokens"
	chmod 700 "$1"
	umask 077
	demo_softhsm_conf "$1/tokens" "$1/softhsm2.conf"
	export SOFTHSM2_CONF="$1/softhsm2.conf"
	# Demo-only credentials, random each run, kept in files (never on argv).
	od -An -N8 -tx1 /dev/urandom | tr -d ' \n' > "$1/pin"
	od -An -N16 -tx1 /dev/urandom | tr -d ' \n' > "$1/secret"
}

# demo_ca BUILD_DIR DIR: the test CA (reference 4711, DIR's secret, its
# files in DIR/ca, DIR/ca.log, DIR/ca.out) on a loopback port: sets
# CA_PID and PORT (exits when it does not start).  At exit, the CA and
# the processes in DEMO_PIDS are killed.
demo_ca() {
	"$1/tests/ca/p11enroll-testca" --dir "$2/ca" --port 0 --ref 4711 \
		--secret-file "$2/secret" --log "$2/ca.log" --quiet > "$2/ca.out" 2>&1 &
	CA_PID=$!
	DEMO_PIDS=
	trap 'kill $CA_PID $DEMO_PIDS 2> /dev/null' EXIT
	i=0
	while ! grep -q '^port ' "$2/ca.out" && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	PORT=$(sed -n 's/^port //p' "$2/ca.out")
	[ -n "$PORT" ] || { echo "the test CA did not start:" >&2; cat "$2/ca.out" >&2; exit 1; }
}
