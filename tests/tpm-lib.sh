# Shared by the TPM tests: a software TPM (swtpm) on 127.0.0.1, a private
# D-Bus session bus with tpm2-abrmd in front of the TPM, and tpm2-pkcs11
# tokens in a store under $TMP.  Sourced after tests/lib.sh (and after
# setup: everything lives in $TMP); defines functions and variables only.
#
#   tpm_start            swtpm + bus + abrmd, the environment the module reads
#   tpm_token LABEL      a tpm2-pkcs11 token with USER_PIN and SO_PIN
#   tpm_restart          swtpm and abrmd stopped and started on the same state
#   tpm_stop             everything tpm_start started, stopped by PID
#   tpm_lockout_counter  the TPM's dictionary-attack counter, a number
#   tpm_helpers_on_tpm   lib.sh's token helpers on the TPM's tokens
#
# Every process started here is stopped by tpm_stop, which lib.sh's cleanup
# runs (CLEANUP_HOOKS): a failing test stops them too.  A missing tool
# fails the test (tools/deps.sh installs them all); TPM tests never skip.

# TPM2_PKCS11_MODULE: the tpm2-pkcs11 module (libtpm2-pkcs11-1), from the
# environment or the multiarch directory Debian installs it in.
if [ -z "${TPM2_PKCS11_MODULE:-}" ]; then
	for _m in /usr/lib/*/pkcs11/libtpm2_pkcs11.so /usr/lib/pkcs11/libtpm2_pkcs11.so \
		/usr/local/lib/pkcs11/libtpm2_pkcs11.so; do
		[ -f "$_m" ] && { TPM2_PKCS11_MODULE=$_m; break; }
	done
fi

TPM_PORT=
TPM_SWTPM_PID=
TPM_DBUS_PID=
TPM_ABRMD_PID=
TPM_PRIMARY=
CLEANUP_HOOKS="${CLEANUP_HOOKS:-} tpm_stop"

# need_tpm_tools: fails (never skips) without swtpm, tpm2-abrmd, D-Bus,
# tpm2-tools, tpm2_ptool, the module or the tabrmd TCTI.
need_tpm_tools() {
	need_cmd swtpm
	need_cmd tpm2-abrmd
	need_cmd dbus-daemon
	need_cmd tpm2_getcap
	need_cmd tpm2_shutdown
	need_cmd tpm2_ptool
	need_cmd python3
	[ -n "${TPM2_PKCS11_MODULE:-}" ] && [ -f "$TPM2_PKCS11_MODULE" ] ||
		bail_out "tpm2-pkcs11 module not found (libtpm2-pkcs11-1; tools/deps.sh)"
	for _t in /usr/lib/*/libtss2-tcti-tabrmd.so.0 /usr/lib/libtss2-tcti-tabrmd.so.0 \
		/usr/local/lib/libtss2-tcti-tabrmd.so.0; do
		[ -f "$_t" ] && return 0
	done
	bail_out "the tabrmd TCTI not found (libtss2-tcti-tabrmd0; tools/deps.sh)"
}

# free_port_pair: a port P on 127.0.0.1 with P+1 free too (swtpm's TCTI
# finds the control channel at P+1).  The ports are free when asked;
# start_swtpm tries again when another process took one meanwhile.
free_port_pair() {
	python3 -c '
import socket, sys
for _ in range(200):
    a, b = socket.socket(), socket.socket()
    try:
        a.bind(("127.0.0.1", 0))
        p = a.getsockname()[1]
        b.bind(("127.0.0.1", p + 1))
        print(p)
        sys.exit(0)
    except OSError:
        pass
    finally:
        a.close()
        b.close()
sys.exit("no two free consecutive ports on 127.0.0.1")'
}

# start_swtpm: swtpm on its state in $TMP/tpm/state.  --daemon returns once
# both sockets are bound (exit 1 when a port is taken: another pair is
# tried), so the TPM answers when it returns; its PID is in the PID file.
start_swtpm() {
	mkdir -p "$TMP/tpm/state"
	_ss_try=0
	while [ $_ss_try -lt 10 ]; do
		_ss_try=$((_ss_try + 1))
		TPM_PORT=$(free_port_pair) || return 1
		rm -f "$TMP/tpm/swtpm.pid"
		swtpm socket --tpm2 --flags not-need-init,startup-clear \
			--server "type=tcp,port=$TPM_PORT,bindaddr=127.0.0.1" \
			--ctrl "type=tcp,port=$((TPM_PORT + 1)),bindaddr=127.0.0.1" \
			--tpmstate "dir=$TMP/tpm/state" --pid "file=$TMP/tpm/swtpm.pid" \
			--log "file=$TMP/tpm/swtpm.log" --daemon 2>> "$TMP/tpm/swtpm.err" || continue
		TPM_SWTPM_PID=$(cat "$TMP/tpm/swtpm.pid" 2> /dev/null)
		[ -n "$TPM_SWTPM_PID" ] && return 0
		echo "# swtpm started without writing its PID file" >&2
		return 1
	done
	echo "# swtpm did not start:" >&2
	sed 's/^/#   /' "$TMP/tpm/swtpm.err" >&2
	return 1
}

# tpm_answers: the TPM answers through abrmd.
tpm_answers() {
	tpm2_getcap properties-fixed > /dev/null 2>&1
}

# start_abrmd: tpm2-abrmd on the private bus, in front of swtpm; waits
# until a command goes through it (a hang guard, scaled).
start_abrmd() {
	tpm2-abrmd --session --allow-root --flush-all \
		--tcti="swtpm:host=127.0.0.1,port=$TPM_PORT" >> "$TMP/tpm/abrmd.log" 2>&1 &
	TPM_ABRMD_PID=$!
	_sa_i=0
	while ! tpm_answers; do
		kill -0 "$TPM_ABRMD_PID" 2> /dev/null ||
			{ echo "# tpm2-abrmd exited:" >&2; sed 's/^/#   /' "$TMP/tpm/abrmd.log" >&2;
				TPM_ABRMD_PID=; return 1; }
		[ $_sa_i -lt $((200 * P11E_SCALE)) ] ||
			{ echo "# tpm2-abrmd did not answer" >&2; return 1; }
		sleep 0.05
		_sa_i=$((_sa_i + 1))
	done
}

# tpm_start: swtpm, a private session bus and tpm2-abrmd; exports what
# tpm2-pkcs11, tpm2-tools and tpm2_ptool read.  The store is $TMP/tpm/store.
tpm_start() {
	need_tpm_tools
	mkdir -p "$TMP/tpm/store" || return 1
	TPM2_PKCS11_STORE="$TMP/tpm/store"
	TPM2_PKCS11_TCTI="tabrmd:bus_type=session"
	TPM2TOOLS_TCTI="tabrmd:bus_type=session"
	# quiet: the TSS and the module print only errors
	TSS2_LOG=all+NONE
	TPM2_PKCS11_LOG_LEVEL=0
	export TPM2_PKCS11_STORE TPM2_PKCS11_TCTI TPM2TOOLS_TCTI TSS2_LOG TPM2_PKCS11_LOG_LEVEL
	start_swtpm || return 1
	dbus-daemon --session --address="unix:path=$TMP/tpm/bus" --fork --print-address=1 \
		--print-pid=1 > "$TMP/tpm/dbus.out" 2> "$TMP/tpm/dbus.err" ||
		{ sed 's/^/#   /' "$TMP/tpm/dbus.err" >&2; return 1; }
	DBUS_SESSION_BUS_ADDRESS=$(sed -n 1p "$TMP/tpm/dbus.out")
	TPM_DBUS_PID=$(sed -n 2p "$TMP/tpm/dbus.out")
	export DBUS_SESSION_BUS_ADDRESS
	[ -n "$DBUS_SESSION_BUS_ADDRESS" ] && [ -n "$TPM_DBUS_PID" ] ||
		{ echo "# dbus-daemon printed no address or PID" >&2; return 1; }
	start_abrmd
}

# stop_pid PID: SIGTERM, then SIGKILL when it has not gone in 10 s (scaled).
stop_pid() {
	[ -n "$1" ] || return 0
	kill "$1" 2> /dev/null || return 0
	wait_for 10 gone "$1" || kill -KILL "$1" 2> /dev/null
	wait "$1" 2> /dev/null
	return 0
}

# tpm_stop: abrmd, the bus and swtpm, by PID; a no-op for what is not running.
tpm_stop() {
	stop_pid "$TPM_ABRMD_PID"
	TPM_ABRMD_PID=
	stop_pid "$TPM_DBUS_PID"
	TPM_DBUS_PID=
	stop_pid "$TPM_SWTPM_PID"
	TPM_SWTPM_PID=
}

# tpm_restart: swtpm and abrmd stopped and started again on the same TPM
# state (the bus stays): the store and the keys in it persist.  The TPM is
# shut down first (TPM2_Shutdown): after a shutdown that was not orderly it
# counts one more failed authorisation in the lockout counter.
tpm_restart() {
	tpm2_shutdown > "$TMP/tpm/shutdown.log" 2>&1 ||
		{ sed 's/^/#   /' "$TMP/tpm/shutdown.log" >&2; return 1; }
	stop_pid "$TPM_ABRMD_PID"
	TPM_ABRMD_PID=
	stop_pid "$TPM_SWTPM_PID"
	TPM_SWTPM_PID=
	start_swtpm && start_abrmd
}

# tpm_token LABEL: a token labelled LABEL in the store, with USER_PIN and
# SO_PIN; the store's primary key is made with the first token.
tpm_token() {
	if [ -z "$TPM_PRIMARY" ]; then
		tpm2_ptool init --path "$TPM2_PKCS11_STORE" > "$TMP/tpm/ptool.log" 2>&1 ||
			{ sed 's/^/#   /' "$TMP/tpm/ptool.log" >&2; return 1; }
		TPM_PRIMARY=$(sed -n 's/^id: *\([0-9][0-9]*\)$/\1/p' "$TMP/tpm/ptool.log")
		[ -n "$TPM_PRIMARY" ] || { echo "# tpm2_ptool init printed no id" >&2; return 1; }
	fi
	tpm2_ptool addtoken --pid="$TPM_PRIMARY" --label="$1" --userpin="$USER_PIN" \
		--sopin="$SO_PIN" --path "$TPM2_PKCS11_STORE" > "$TMP/tpm/ptool.log" 2>&1 ||
		{ sed 's/^/#   /' "$TMP/tpm/ptool.log" >&2; return 1; }
}

# tpm_helpers_on_tpm: lib.sh's token helpers (write_conf's module, objects,
# token_slot, label_id, label_count, key_signs_for) name $SOFTHSM2_MODULE:
# they read the TPM's tokens from here on.
tpm_helpers_on_tpm() {
	SOFTHSM2_MODULE=$TPM2_PKCS11_MODULE
}

# tpm_lockout_counter: TPM2_PT_LOCKOUT_COUNTER (failed authorisations the
# dictionary-attack protection counts), in decimal; "unreadable" and a
# non-zero status when tpm2_getcap fails.
tpm_lockout_counter() {
	_lc=$(tpm2_getcap properties-variable 2> /dev/null |
		awk '$1 == "TPM2_PT_LOCKOUT_COUNTER:" { print $2 }')
	case $_lc in
	0x[0-9a-fA-F]*) echo $((_lc)) ;;
	*) echo unreadable; return 1 ;;
	esac
}
