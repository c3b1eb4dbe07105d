# The SSH test server for server = sftp:// and scp://: OpenSSH's sshd on
# 127.0.0.1 and a free high port, with its own host key, its own
# authorized_keys (absolute AuthorizedKeysFile, StrictModes no) and the
# internal SFTP server; it logs in the user running the test (root too,
# by key only).  Sourced after tests/lib.sh and setup.
#   ssh_need: the tools, or bail out
#   ssh_keys: host key $TMP/ssh/host (ed25519), a second one
#       $TMP/ssh/other-host (for a "changed" host key), the client key
#       $TMP/ssh/id (no passphrase) and $TMP/ssh/id-pp (passphrase in
#       $TMP/ssh/pp), both authorized
#   ssh_start: starts sshd; sets SSH_PORT, SSH_PID, SSH_USER
#   ssh_known_hosts FILE [HOSTKEY]: FILE lists HOSTKEY (default the
#       server's) for [127.0.0.1]:SSH_PORT
#   ssh_stop: stops it (also run by cleanup)
SSH_PID=
SSH_PORT=
SSH_USER=$(id -un)
SSH_PP=ssh-passphrase-41b7e0

ssh_need() {
	for _t in /usr/sbin/sshd ssh-keygen; do
		command -v "$_t" > /dev/null 2>&1 ||
			bail_out "$_t not found: install openssh-server (tools/deps.sh)"
	done
	command -v scp > /dev/null 2>&1 || bail_out "scp not found: install openssh-client"
	[ -x /usr/bin/python3 ] || bail_out "/usr/bin/python3 not found (tools/deps.sh)"
}

ssh_keys() {
	mkdir -p "$TMP/ssh" &&
		ssh-keygen -q -t ed25519 -N '' -C test-host -f "$TMP/ssh/host" &&
		ssh-keygen -q -t ed25519 -N '' -C other-host -f "$TMP/ssh/other-host" &&
		ssh-keygen -q -t ed25519 -N '' -C test-client -f "$TMP/ssh/id" &&
		printf '%s\n' "$SSH_PP" > "$TMP/ssh/pp" &&
		ssh-keygen -q -t ecdsa -b 256 -N "$SSH_PP" -C test-client-pp -f "$TMP/ssh/id-pp" &&
		cat "$TMP/ssh/id.pub" "$TMP/ssh/id-pp.pub" > "$TMP/ssh/authorized_keys"
}

# A port nobody listens on now; sshd cannot report one it picked itself,
# so a start that loses the port to another process is retried.
ssh_free_port() {
	/usr/bin/python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

ssh_start() {
	ssh_stop
	# sshd run by root wants its privilege separation directory, which
	# Debian's service unit would make
	if [ "$(id -u)" = 0 ] && [ ! -d /run/sshd ]; then
		mkdir -p -m 0755 /run/sshd || return 1
	fi
	for _try in 1 2 3 4 5; do
		SSH_PORT=$(ssh_free_port) || return 1
		cat > "$TMP/ssh/sshd_config" <<EOC
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $TMP/ssh/host
PidFile $TMP/ssh/sshd.pid
AuthorizedKeysFile $TMP/ssh/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
Subsystem sftp internal-sftp
LogLevel VERBOSE
EOC
		: > "$TMP/ssh/sshd.log"
		/usr/sbin/sshd -D -e -f "$TMP/ssh/sshd_config" 2>> "$TMP/ssh/sshd.log" &
		SSH_PID=$!
		_i=0
		while [ $_i -lt $((100 * P11E_SCALE)) ]; do
			grep -q "Server listening on 127.0.0.1 port $SSH_PORT" "$TMP/ssh/sshd.log" &&
				return 0
			kill -0 "$SSH_PID" 2> /dev/null || break
			sleep 0.1
			_i=$((_i + 1))
		done
		ssh_stop
		grep -q "Address already in use" "$TMP/ssh/sshd.log" || break
	done
	echo "# sshd did not start:"
	sed 's/^/# /' "$TMP/ssh/sshd.log"
	return 1
}

ssh_known_hosts() {
	printf '[127.0.0.1]:%s %s\n' "$SSH_PORT" "$(cut -d ' ' -f 1,2 "${2:-$TMP/ssh/host}.pub")" \
		> "$1"
}

ssh_stop() {
	if [ -n "$SSH_PID" ]; then
		kill "$SSH_PID" 2> /dev/null
		wait "$SSH_PID" 2> /dev/null
		SSH_PID=
	fi
}
CLEANUP_HOOKS="$CLEANUP_HOOKS ssh_stop"
