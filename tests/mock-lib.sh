# OpenSSL's `openssl cmp` mock server, an independent CMP implementation,
# for tests/interop.sh and tests/parity-mock.sh (sourced after lib.sh).
MOCK_PID=

stop_mock() {
	[ -n "$MOCK_PID" ] && kill "$MOCK_PID" 2> /dev/null && wait "$MOCK_PID" 2> /dev/null
	MOCK_PID=
}
CLEANUP_HOOKS="$CLEANUP_HOOKS stop_mock"

# start_mock ARGS...: the mock server (it listens on every interface: a
# test-only process, stopped at the end) with the fixed answer
# ${RSP_CERT:-$TMP/old.pem}, protecting its responses with PBM
# (MOCK_PROT=sig: by signature with the test CA's CMP server certificate).
# At -verbosity 7 its log names each message it receives and sends
# ("CMP DEBUG: received POLLREQ"): mock_got counts them.  It binds port 0
# and reports the port the kernel gave it ("ACCEPT [::]:PORT PID=...") in
# MOCK_PORT: no port picked free here and bound later by it, which another
# process on a busy machine could take meanwhile.
start_mock() {
	stop_mock
	MOCK_PORT=
	if [ "${MOCK_PROT:-pbm}" = sig ]; then
		set -- -srv_cert "$TMP/ca/srv.pem" -srv_key "$TMP/ca/srv.key" \
			-srv_untrusted "$TMP/ca/ca.pem" "$@"
	else
		set -- -srv_ref "$CMP_REF" -srv_secret "file:$TMP/secret" "$@"
	fi
	# emptied here, not by the child's redirection: the loop below must
	# not read the previous mock's port
	: > "$TMP/mock.log"
	"$OPENSSL_BIN" cmp -port 0 \
		-rsp_cert "${RSP_CERT:-$TMP/old.pem}" -rsp_extracerts "$TMP/ca/ca.pem" \
		-rsp_capubs "$TMP/ca/root.pem" -srv_trusted "$TMP/ca/root.pem" -verbosity 7 "$@" \
		>> "$TMP/mock.log" 2>&1 &
	MOCK_PID=$!
	i=0
	while [ -z "$MOCK_PORT" ] && [ $i -lt $((100 * P11E_SCALE)) ]; do
		MOCK_PORT=$(sed -n 's/^ACCEPT .*:\([0-9][0-9]*\) PID=.*/\1/p' "$TMP/mock.log" 2> /dev/null)
		[ -n "$MOCK_PORT" ] && break
		kill -0 "$MOCK_PID" 2> /dev/null || break
		sleep 0.1
		i=$((i + 1))
	done
	[ -n "$MOCK_PORT" ] || { echo "# the mock server did not start:"; sed 's/^/#   /' "$TMP/mock.log"; }
}

# mock_server_conf: $TMP/p11enroll.conf's server is the mock's (the 3.0 mock
# serves only the path /pkix/; p11enroll warns and goes on)
mock_server_conf() {
	sed -i "s|^server = .*|server = http://127.0.0.1:$MOCK_PORT/pkix/|" "$TMP/p11enroll.conf"
}
