# Sourced after tests/lib.sh by tests/parity.sh and tests/parity-mock.sh:
# start_proxy runs tests/proxy.py (a recording HTTP proxy: POST forwarded,
# CONNECT tunnelled, each request a line of $TMP/proxy/proxy.log and each
# POST body kept as $TMP/proxy/req-N.der) on a port the kernel picks, and
# sets PROXY_PORT; it is stopped by PID at the end (CLEANUP_HOOKS).  The
# environment's proxy variables are unset: a test sets the ones it means.
unset http_proxy https_proxy HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY
PROXY_PID=
stop_proxy() {
	[ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2> /dev/null && wait "$PROXY_PID" 2> /dev/null
	PROXY_PID=
}
CLEANUP_HOOKS="$CLEANUP_HOOKS stop_proxy"
start_proxy() {
	stop_proxy
	rm -rf "$TMP/proxy"
	mkdir -p "$TMP/proxy"
	: > "$TMP/proxy/proxy.log"
	PROXY_PORT=
	python3 "$top_srcdir/tests/proxy.py" "$TMP/proxy" > "$TMP/proxy.out" 2> "$TMP/proxy.err" &
	PROXY_PID=$!
	i=0
	while [ $i -lt $((100 * P11E_SCALE)) ] && kill -0 "$PROXY_PID" 2> /dev/null; do
		PROXY_PORT=$(sed -n 's/^port \([0-9][0-9]*\)$/\1/p' "$TMP/proxy.out")
		[ -n "$PROXY_PORT" ] && return 0
		sleep 0.1
		i=$((i + 1))
	done
	echo "# the proxy did not start:"
	sed 's/^/#   /' "$TMP/proxy.err"
	return 1
}
# proxy_log: what the proxy saw, one request a line, PORTs as PORT
proxy_log() {
	sed 's/:[0-9][0-9]*/:PORT/' "$TMP/proxy/proxy.log"
}
