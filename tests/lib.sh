# Shared by the integration tests: a temporary SoftHSM2 token, the test CA
# on a random loopback port, p11enroll runs and TAP output.
# Sourced by tests/*.sh; expects top_builddir/top_srcdir from make check.

: "${top_builddir:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${top_srcdir:=$top_builddir}"
# P11ENROLL is what the tests run; P11ENROLL_WRAPPER (make memcheck: tests/
# memcheck-run.sh) replaces it with a command that runs the real program,
# P11ENROLL_BIN, under a checker.  Every test goes through $P11ENROLL.
P11ENROLL_BIN="$top_builddir/p11enroll"
export P11ENROLL_BIN

# sanitized: p11enroll is built with sanitizers (--enable-sanitizers).
sanitized() {
	ldd "$P11ENROLL_BIN" 2> /dev/null | grep -q libasan
}

P11ENROLL=${P11ENROLL_WRAPPER:-$P11ENROLL_BIN}
TESTCA="$top_builddir/tests/ca/p11enroll-testca"
USER_PIN=5701-user-pin
SO_PIN=5701-so-pin
CMP_REF=4711
CMP_SECRET=shared-secret-8c1f2e
TEST_NUM=0
TEST_FAILED=0
CA_PID=

# One scale for every timeout a test gives the client, every hang guard and
# polling bound: larger under sanitizers (tools/test.sh: 3) and valgrind
# (make memcheck: 10), so that no test depends on an idle machine or a fast
# checker.  Never a threshold.
P11E_SCALE=${P11ENROLL_TEST_SCALE:-1}
case $P11E_SCALE in '' | *[!0-9]* | 0) P11E_SCALE=1 ;; esac

# scaled SECONDS: SECONDS times the scale.
scaled() {
	echo $(($1 * P11E_SCALE))
}

# wait_for MAX_SECONDS COMMAND...: polls COMMAND until it succeeds, for
# at most MAX_SECONDS (scaled): a hang guard, never a measure of speed.
wait_for() {
	_wf_max=$(($1 * 5 * P11E_SCALE))
	shift
	_wf_i=0
	while [ $_wf_i -lt $_wf_max ]; do
		"$@" 2> /dev/null && return 0
		sleep 0.2
		_wf_i=$((_wf_i + 1))
	done
	"$@"
}

# gone PID: the process has exited (a zombie counts as gone).
gone() {
	[ ! -e "/proc/$1" ] || grep -q '^[0-9]* ([^)]*) Z' "/proc/$1/stat" 2> /dev/null
}

# skip REASON: the whole script is skipped, before its plan.  tap-driver.sh
# reports it as SKIP; tools/test.sh fails on any skip not listed in
# tests/SKIPS.  Only for what tests/SKIPS lists: a missing tool or a
# missing build product is bail_out.
skip() {
	echo "1..0 # SKIP $*"
	exit 0
}

# bail_out REASON: the script cannot run its checks here: a failure.
bail_out() {
	echo "Bail out! $*"
	exit 1
}

# need_cmd COMMAND: fails (never skips) without COMMAND: tools/deps.sh
# installs every tool the tests use.
need_cmd() {
	command -v "$1" > /dev/null 2>&1 || bail_out "$1 not found: install it (tools/deps.sh lists the packages)"
}

# The tools every integration test needs: without them it fails, never skips.
need_tools() {
	[ -n "$SOFTHSM2_MODULE" ] && [ -f "$SOFTHSM2_MODULE" ] || bail_out "SoftHSM2 module not found (softhsm2; tools/deps.sh)"
	[ -n "$SOFTHSM2_UTIL" ] || bail_out "softhsm2-util not found (softhsm2; tools/deps.sh)"
	[ -n "$PKCS11_TOOL" ] || bail_out "pkcs11-tool not found (opensc; tools/deps.sh)"
	[ -n "$OPENSSL_BIN" ] || bail_out "openssl not found (tools/deps.sh)"
	[ -x "$P11ENROLL_BIN" ] || bail_out "p11enroll not built"
	[ -x "$TESTCA" ] || bail_out "test CA not built"
}

# need_file FILE: a build product the script needs (make check builds it).
need_file() {
	[ -f "$1" ] || bail_out "$1 not built"
}

# CLEANUP_HOOKS: functions cleanup runs first, for the processes a
# helper library starts (tests/tpm-lib.sh: tpm_stop).
CLEANUP_HOOKS=
cleanup() {
	for _hook in $CLEANUP_HOOKS; do "$_hook"; done
	stop_ca
	# P11E_KEEP=DIR: a copy of each test's directory is left in DIR
	[ -n "${P11E_KEEP:-}" ] && [ -n "$TMP" ] && mkdir -p "$P11E_KEEP" && cp -a "$TMP" "$P11E_KEEP/"
	[ -n "$TMP" ] && rm -rf "$TMP"
}

setup() {
	TMP=$(mktemp -d "${TMPDIR:-/tmp}/p11enroll-test.XXXXXX")
	trap cleanup EXIT
	trap 'exit 1' INT TERM
	umask 077
	# p11-kit's proxy loads every registered module: a tpm2-pkcs11 it
	# loads keeps its store here, not under $HOME (tests/tpm-lib.sh
	# gives the TPM tests their own)
	mkdir "$TMP/tpm2-store"
	TPM2_PKCS11_STORE="$TMP/tpm2-store"
	export TPM2_PKCS11_STORE
	printf '%s\n' "$USER_PIN" > "$TMP/pin"
	printf '%s\n' "$CMP_SECRET" > "$TMP/secret"
}

ok() {
	TEST_NUM=$((TEST_NUM + 1))
	echo "ok $TEST_NUM - $*"
}

not_ok() {
	TEST_NUM=$((TEST_NUM + 1))
	TEST_FAILED=$((TEST_FAILED + 1))
	echo "not ok $TEST_NUM - $*"
}

# check NAME COMMAND...: one TAP line for the command's success.
check() {
	_check_name=$1
	shift
	if "$@"; then ok "$_check_name"; else not_ok "$_check_name"; fi
}

# plan N: the script's number of checks, declared before the first one
# ("1..N"), never counted from what ran: tap-driver.sh fails a script that
# dies early or leaves a section out.
TEST_PLAN=
plan() {
	TEST_PLAN=$1
	echo "1..$TEST_PLAN"
}

finish() {
	if [ -z "$TEST_PLAN" ]; then
		echo "# no plan: call plan N before the first check"
		exit 1
	fi
	if [ "$TEST_NUM" -ne "$TEST_PLAN" ]; then
		echo "# planned $TEST_PLAN checks, ran $TEST_NUM"
		exit 1
	fi
	[ "$TEST_FAILED" -eq 0 ] || exit 1
	exit 0
}

# make_token LABEL: a fresh token in this test's own SoftHSM2 store.
make_token() {
	if [ -z "$SOFTHSM2_CONF" ] || [ "${SOFTHSM2_CONF#"$TMP"}" = "$SOFTHSM2_CONF" ]; then
		mkdir -p "$TMP/tokens"
		printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
			"$TMP/tokens" > "$TMP/softhsm2.conf"
		SOFTHSM2_CONF="$TMP/softhsm2.conf"
		export SOFTHSM2_CONF
	fi
	"$SOFTHSM2_UTIL" --init-token --free --label "$1" --so-pin "$SO_PIN" --pin "$USER_PIN" \
		> "$TMP/softhsm-init.log" 2>&1 || { cat "$TMP/softhsm-init.log"; return 1; }
}

delete_token() {
	"$SOFTHSM2_UTIL" --delete-token --token "$1" > /dev/null 2>&1
}

# start_ca [ARGS...]: the test CA in $TMP/ca on a free port; sets CA_PORT, CA_URL.
start_ca() {
	stop_ca
	: > "$TMP/ca.out"
	"$TESTCA" --dir "$TMP/ca" --port 0 --ref "$CMP_REF" --secret-file "$TMP/secret" \
		--log "$TMP/ca.log" --quiet "$@" > "$TMP/ca.out" 2> "$TMP/ca.err" &
	CA_PID=$!
	i=0
	while [ $i -lt $((100 * P11E_SCALE)) ]; do
		CA_PORT=$(sed -n 's/^port \([0-9][0-9]*\)$/\1/p' "$TMP/ca.out")
		[ -n "$CA_PORT" ] && break
		kill -0 "$CA_PID" 2> /dev/null || { cat "$TMP/ca.err"; return 1; }
		sleep 0.1
		i=$((i + 1))
	done
	[ -n "$CA_PORT" ] || { echo "# test CA did not start"; return 1; }
	CA_URL="http://127.0.0.1:$CA_PORT/.well-known/cmp"
}

stop_ca() {
	if [ -n "$CA_PID" ]; then
		kill "$CA_PID" 2> /dev/null
		wait "$CA_PID" 2> /dev/null
		CA_PID=
	fi
}

# ca_issued: how many certificates the test CA in $TMP/ca has issued, from
# its own record (issued/SERIAL.pem, written before it answers), not from
# its log's wording; "unreadable" and a non-zero status without the record.
ca_issued() {
	[ -d "$TMP/ca/issued" ] ||
		{ echo "# no record of issued certificates in $TMP/ca/issued" >&2; echo unreadable; return 1; }
	ls "$TMP/ca/issued" | grep -c '\.pem$'
	return 0
}

# conf_defaults: the unnamed section write_conf starts with (the module, the
# test CA and its credentials, scaled timeouts, the state directory).
conf_defaults() {
	cat <<EOC
module = $SOFTHSM2_MODULE
server = $CA_URL
reference = $CMP_REF
secret_source = file:$TMP/secret
trusted = $TMP/ca/root.pem
timeout = $(scaled 10)
total_timeout = $(scaled 30)
state_dir = $TMP/state

EOC
}

# write_conf TOKEN_LABEL [EXTRA_LINES]: one enrollment [test] for the token.
# The client's timeouts are hang guards here: scaled like every other bound.
# A key EXTRA_LINES sets replaces the section's own line for it: a key
# twice in one section is an error (p11enroll check-config).
write_conf() {
	{
		conf_defaults
		printf '%s\n' "[test]" "token = pkcs11:token=$1" "pin_source = file:$TMP/pin" \
			"label = enrolled-key" "subject = /CN=p11enroll test/O=Example" |
			while IFS= read -r _line; do
				_key=${_line%% = *}
				case $_line in
				"["*) ;;
				*) printf '%s\n' "${2:-}" | grep -q "^$_key = " && continue ;;
				esac
				printf '%s\n' "$_line"
			done
		printf '%s\n' "${2:-}"
	} > "$TMP/p11enroll.conf"
}

# p11e ARGS...: runs p11enroll; RC, $TMP/out and $TMP/err hold the outcome.
p11e() {
	"$P11ENROLL" -c "$TMP/p11enroll.conf" "$@" > "$TMP/out" 2> "$TMP/err"
	RC=$?
	return 0
}

# token_slot LABEL: the slot ID of the one token labelled exactly LABEL.
token_slot() {
	"$PKCS11_TOOL" --module "$SOFTHSM2_MODULE" --list-token-slots 2> /dev/null | awk -v l="$1" '
		/^Slot [0-9]+ \(0x[0-9a-fA-F]+\)/ { s = $3; gsub(/[()]/, "", s) }
		/^ *token label *:/ { sub(/^ *token label *: */, ""); if ($0 == l) { print s; n++ } }
		END { exit n == 1 ? 0 : 1 }' ||
		{ echo "# no single token labelled '$1' (pkcs11-tool --list-token-slots)" >&2; return 1; }
}

# token_serial LABEL: the serial of the one token labelled exactly LABEL.
token_serial() {
	"$PKCS11_TOOL" --module "$SOFTHSM2_MODULE" --list-token-slots 2> /dev/null | awk -v l="$1" '
		/^Slot [0-9]+/ { mine = 0 }
		/^ *token label *:/ { sub(/^ *token label *: */, ""); mine = ($0 == l) }
		mine && /^ *serial num *:/ { sub(/^ *serial num *: */, ""); print; n++ }
		END { exit n == 1 ? 0 : 1 }' ||
		{ echo "# no single token labelled '$1' with a serial" >&2; echo no-such-token; return 1; }
}

# pending_file TOKEN [LABEL [STATE_DIR]]: where a transaction of LABEL
# (enrolled-key) on TOKEN is saved: STATE_DIR/pending/LABEL@SERIAL.pending
# (the labels the tests use need no percent-encoding).
pending_file() {
	echo "${3:-$TMP/state}/pending/${2:-enrolled-key}@$(token_serial "$1").pending"
}

# pending_count [STATE_DIR]: how many transactions are saved there, for any
# token and label (an earlier version's NAME.pending counted too).
pending_count() {
	ls "${1:-$TMP/state}"/pending/*.pending "${1:-$TMP/state}"/*.pending 2> /dev/null | wc -l
}

# server_pki PREFIX NAME: a TLS root (PREFIXroot.pem, .key, subject "NAME")
# and under it a server certificate for IP:127.0.0.1 and localhost
# (PREFIXsrv.pem, PREFIXsrv.key), for the test servers that speak TLS.
server_pki() {
	"$OPENSSL_BIN" req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "${1}root.key" -out "${1}root.pem" -days 2 -subj "/CN=$2" \
		-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign &&
		"$OPENSSL_BIN" req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
			-keyout "${1}srv.key" -out "${1}srv.csr" -subj "/CN=127.0.0.1" &&
		printf '%s\n' 'subjectAltName = IP:127.0.0.1, DNS:localhost' \
			'extendedKeyUsage = serverAuth' 'keyUsage = critical, digitalSignature' \
			> "${1}srv.ext" &&
		"$OPENSSL_BIN" x509 -req -in "${1}srv.csr" -CA "${1}root.pem" \
			-CAkey "${1}root.key" -CAcreateserial -days 2 -extfile "${1}srv.ext" \
			-out "${1}srv.pem"
}

# kind LABEL CLASS: how many objects of CLASS ("Private Key", "Certificate"
# ...) the token $TOK holds under exactly LABEL; "unreadable" and non-zero
# when the token cannot be read.
kind() {
	_k=$(objects "$TOK") || { echo unreadable; return 1; }
	printf '%s\n' "$_k" | awk -v l="$1" -v c="$2" '/Object;/ { cls = $0 }
		/^ *label:/ { sub(/^ *label: */, ""); if ($0 == l && index(cls, c) == 1) n++ }
		END { print n + 0 }'
}

# objects LABEL [TYPE]: pkcs11-tool's object list of the token (logged in).
# When pkcs11-tool fails (no such token, the PIN refused) it says so on
# stderr, as a TAP comment, and returns non-zero: a list that could not be
# read is not an empty token.  A caller that pipes the list on must check
# the status first (as count_objects does): a pipe loses it.
# The token is named by its slot: pkcs11-tool's --token-label takes the
# first token whose label begins with the name ("c1" would read "c11").
objects() {
	_obj_slot=$(token_slot "$1") || return 1
	_obj_out=$("$PKCS11_TOOL" --module "$SOFTHSM2_MODULE" --slot "$_obj_slot" --login \
		--pin "$USER_PIN" --list-objects ${2:+--type "$2"} 2> "$TMP/objects.err")
	_obj_rc=$?
	if [ "$_obj_rc" -ne 0 ]; then
		echo "# pkcs11-tool could not list the objects of token '$1' (exit $_obj_rc):" >&2
		sed 's/^/#   /' "$TMP/objects.err" >&2
		return 1
	fi
	[ -z "$_obj_out" ] || printf '%s\n' "$_obj_out"
}

# count_objects LABEL [TYPE]: keys and certificates on the token; when the
# token cannot be listed, "unreadable" (not a number: `test ... -eq 0` fails)
# and a non-zero status.
count_objects() {
	_co_list=$(objects "$@") || { echo unreadable; return 1; }
	printf '%s\n' "$_co_list" | grep -c -E '^(Private Key|Public Key|Certificate) Object'
	return 0
}

# label_id TOKEN TYPE LABEL: CKA_ID of the first object of TYPE (privkey,
# pubkey, cert) that carries exactly LABEL.
label_id() {
	_li_list=$(objects "$1" "$2") || return 1
	printf '%s\n' "$_li_list" | awk -v l="$3" '/Object;/ { mine = 0 }
		/^ *label:/ { sub(/^ *label: */, ""); mine = ($0 == l) }
		mine && /^ *ID:/ { print $2; exit }'
}

# label_count TOKEN LABEL: objects carrying exactly LABEL ("unreadable" as
# count_objects).
label_count() {
	_lc_list=$(objects "$1") || { echo unreadable; return 1; }
	printf '%s\n' "$_lc_list" | grep -c -x -E "[[:space:]]*label:[[:space:]]*$2"
	return 0
}

# made_and_removed LOG [N]: the tests/p11wrap call log LOG shows that a key
# pair was made (one C_GenerateKeyPair, answered CKR_OK) and that N (2)
# objects were destroyed after it (C_DestroyObject answered CKR_OK): a
# token found empty afterwards was cleaned up, not left untouched.
made_and_removed() {
	_mr=$(awk '/^C_GenerateKeyPair / { g++; if ($0 == "C_GenerateKeyPair rv=CKR_OK") ok++ }
		ok && $0 == "C_DestroyObject rv=CKR_OK" { d++ }
		END { print g + 0, ok + 0, d + 0 }' "$1")
	[ "$_mr" = "1 1 ${2:-2}" ] || {
		echo "# C_GenerateKeyPair calls, of them CKR_OK, then C_DestroyObject CKR_OK: $_mr" \
			"(expected 1 1 ${2:-2})"
		return 1
	}
}

# key_signs_for TOKEN ID PUB_PEM: the token's key ID makes an ECDSA
# signature that the public key in PUB_PEM verifies.
key_signs_for() {
	echo "signed by the token key $2" > "$TMP/data"
	"$OPENSSL_BIN" dgst -sha256 -binary -out "$TMP/hash" "$TMP/data"
	local slot
	slot=$(token_slot "$1") || return 1
	"$PKCS11_TOOL" --module "$SOFTHSM2_MODULE" --slot "$slot" --login \
		--pin "$USER_PIN" --sign -m ECDSA --id "$2" --signature-format openssl \
		-i "$TMP/hash" -o "$TMP/sig" > /dev/null 2>&1 || return 1
	"$OPENSSL_BIN" pkeyutl -verify -pubin -inkey "$3" -in "$TMP/hash" \
		-sigfile "$TMP/sig" -pkeyopt digest:sha256 > /dev/null 2>&1
}

# no_secret_in FILE...: neither the PIN nor the MAC secret appears.
no_secret_in() {
	! grep -q -F -e "$USER_PIN" -e "$CMP_SECRET" "$@"
}

expect_rc() {
	[ "$RC" = "$1" ] || { echo "# exit code $RC, expected $1; stderr:"; sed 's/^/#   /' "$TMP/err"; return 1; }
}

grep_err() {
	grep -q -E "$1" "$TMP/err" || { echo "# stderr lacks /$1/:"; sed 's/^/#   /' "$TMP/err"; return 1; }
}

# json_valid NAME FILE: FILE is valid against man/schema/NAME.schema.json,
# the documented schema of a --json output (p11enroll-formats(5)); each
# violation is printed as a TAP comment.
json_valid() {
	python3 "$top_srcdir/tests/jsonvalid.py" "$top_srcdir/man/schema/$1.schema.json" "$2" \
		2> "$TMP/jsonvalid.err" && return 0
	sed 's/^/# /' "$TMP/jsonvalid.err"
	return 1
}

# call_sweep NAME CMD...: CMD (a p11enroll run whose module is
# tests/p11wrap, with P11WRAP_MODULE exported) once clean, then once per
# PKCS#11 call it made with that call answering CKR_DEVICE_ERROR
# (P11WRAP_FAIL=C_Name=CKR_DEVICE_ERROR@K).  A run passes when it ends by
# an exit code (no signal, no sanitizer report) and either fails naming
# CKR_DEVICE_ERROR on stderr (libp11, which loads the module: "Device
# error") or succeeds with the clean run's output or with a warning.
# Sets SWEPT (the calls tried) and SWEEP_BAD (the runs that did not pass,
# each said as a TAP comment).  SWEEP_NOLEAK: the functions whose failure
# runs without leak detection (a library's own leak on that path, named
# where it is set).
call_sweep() {
	_cs_name=$1
	shift
	P11WRAP_LOG="$TMP/$_cs_name.sweep.log" "$@" > "$TMP/$_cs_name.clean" 2> /dev/null
	SWEPT=0
	SWEEP_BAD=0
	awk '{ n[$1]++; print $1 "@" n[$1] }' "$TMP/$_cs_name.sweep.log" > "$TMP/$_cs_name.points"
	while IFS= read -r _cs_p; do
		SWEPT=$((SWEPT + 1))
		_cs_asan=${ASAN_OPTIONS:-}
		case " ${SWEEP_NOLEAK:-} " in
		*" ${_cs_p%@*} "*) _cs_asan="${_cs_asan:+$_cs_asan:}detect_leaks=0" ;;
		esac
		ASAN_OPTIONS=$_cs_asan P11WRAP_FAIL="${_cs_p%@*}=CKR_DEVICE_ERROR@${_cs_p#*@}" "$@" \
			> "$TMP/$_cs_name.out" 2> "$TMP/$_cs_name.err"
		_cs_rc=$?
		if [ "$_cs_rc" -ge 128 ] || grep -q Sanitizer "$TMP/$_cs_name.err"; then
			:
		elif [ "$_cs_rc" -ne 0 ] &&
			grep -q -E 'CKR_DEVICE_ERROR|Device error' "$TMP/$_cs_name.err"; then
			continue
		elif [ "$_cs_rc" -eq 0 ] && { cmp -s "$TMP/$_cs_name.out" "$TMP/$_cs_name.clean" ||
			grep -q 'warning: ' "$TMP/$_cs_name.err"; }; then
			continue
		fi
		SWEEP_BAD=$((SWEEP_BAD + 1))
		echo "# $_cs_name: $_cs_p failing: exit $_cs_rc; stderr:"
		sed 's/^/#   /' "$TMP/$_cs_name.err" | head -5
	done < "$TMP/$_cs_name.points"
	return 0
}
