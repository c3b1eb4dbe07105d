#!/bin/sh
# cmpc rr and genm: against the project's test CA (rr, caCerts, and what
# else it answers), and against a fixture CMP server that test-cmpc-genm
# forks itself (crafted genp values).  Starts the test CA on a free
# loopback port in a temporary directory and stops it afterwards.
set -u

: "${top_builddir:=.}"
PROG="$(cd "$top_builddir" && pwd)/tests/unit/test-cmpc-genm"
TESTCA="$(cd "$top_builddir" && pwd)/tests/ca/p11enroll-testca"
if [ ! -x "$TESTCA" ]; then
	echo "Bail out! test CA not built (make tests/ca/p11enroll-testca)"
	exit 1
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/test-cmpc-genm.XXXXXX") || exit 99
CA_PIDS=
cleanup() {
	for p in $CA_PIDS; do kill "$p" 2>/dev/null; done
	for p in $CA_PIDS; do wait "$p" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 99' INT TERM HUP

REF=genm-ref
SECRET=genm-S3cret-Value
umask 077
printf '%s\n' "$SECRET" >"$T/secret"
# start_ca NAME ARGS...: a test CA in $T/NAME; sets PORT and adds to CA_PIDS.
start_ca() {
	name=$1
	shift
	"$TESTCA" --dir "$T/$name" --port 0 --ref "$REF" --secret-file "$T/secret" \
		--log "$T/$name.log" --quiet "$@" >"$T/$name.out" 2>"$T/$name.err" &
	pid=$!
	CA_PIDS="$CA_PIDS $pid"
	i=0
	PORT=
	while [ $i -lt $((100 * ${P11ENROLL_TEST_SCALE:-1})) ]; do
		PORT=$(sed -n 's/^port \([0-9][0-9]*\)$/\1/p' "$T/$name.out")
		[ -n "$PORT" ] && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
		i=$((i + 1))
	done
	echo "Bail out! the test CA ($name) did not start"
	sed 's/^/# /' "$T/$name.err"
	exit 99
}
# ca: a second root with link certificates, a template; ca2: the same,
# but its root key update is forged.
start_ca ca --new-root --template "subject=/CN=tmpl/O=Example;key=ec:P-384"
T_CA_URL=http://127.0.0.1:$PORT/.well-known/cmp
start_ca ca2 --new-root --fault forged-root-update
T_CA2_URL=http://127.0.0.1:$PORT/.well-known/cmp

no_proxy=127.0.0.1,localhost NO_PROXY=127.0.0.1,localhost
export no_proxy NO_PROXY
T_DIR=$T T_REF=$REF T_SECRET=$SECRET
T_CA_DIR=$T/ca T_CA_LOG=$T/ca.log T_CA2_DIR=$T/ca2
export T_DIR T_REF T_SECRET T_CA_URL T_CA_DIR T_CA_LOG T_CA2_URL T_CA2_DIR

"$PROG"
rc=$?
if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
	for f in ca ca2; do
		echo "# --- test CA log ($f)"
		sed 's/^/# /' "$T/$f.log" | tail -n 30
	done
fi
exit "$rc"
