# Shared by the unit test scripts that run a C test program against test
# CAs (test-cmpc-genm.sh, test-cmpc-ccr.sh): sourced after NAME, REF and
# SECRET are set.  Makes the temporary directory $T (removed at exit, with
# the CAs stopped), the MAC secret file, and start_ca/run_prog.
: "${top_builddir:=.}"
PROG="$(cd "$top_builddir" && pwd)/tests/unit/$NAME"
TESTCA="$(cd "$top_builddir" && pwd)/tests/ca/p11enroll-testca"
if [ ! -x "$TESTCA" ]; then
	echo "Bail out! test CA not built (make tests/ca/p11enroll-testca)"
	exit 1
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/$NAME.XXXXXX") || exit 99
CA_PIDS=
cleanup() {
	for p in $CA_PIDS; do kill "$p" 2>/dev/null; done
	for p in $CA_PIDS; do wait "$p" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 99' INT TERM HUP

umask 077
printf '%s\n' "$SECRET" >"$T/secret"
no_proxy=127.0.0.1,localhost NO_PROXY=127.0.0.1,localhost
export no_proxy NO_PROXY

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
		PORT=$(sed -n 's/^port \([0-9][0-9]*\)$/\1/p' "$T/$name.out" 2>/dev/null)
		[ -n "$PORT" ] && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
		i=$((i + 1))
	done
	echo "Bail out! the test CA ($name) did not start"
	sed 's/^/# /' "$T/$name.err"
	exit 99
}

# run_prog CA...: runs the test program; on failure the tails of the
# named CAs' logs follow as comments.  Exits with its status.
run_prog() {
	"$PROG"
	rc=$?
	if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
		for f in "$@"; do
			echo "# --- test CA log ($f)"
			sed 's/^/# /' "$T/$f.log" | tail -n 30
		done
	fi
	exit "$rc"
}
