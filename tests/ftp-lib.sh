# The FTP test server for server = ftp:// and ftps://: pyftpdlib (Debian's
# python3-pyftpdlib, with python3-openssl for FTPS) serving one directory
# to one user on 127.0.0.1, on a port it binds itself (tests/ftpd.py
# prints it).  Sourced after tests/lib.sh and setup.
#   ftp_start DIR [explicit|implicit]: starts it (FTPS with the server
#       certificate of ftp_pki); sets FTP_PORT, FTP_PID
#   ftp_stop: stops it (also run by cleanup)
#   ftp_pki: a TLS root ($TMP/ftp-root.pem) and a server certificate for
#       127.0.0.1 under it
# The user and password are FTP_USER and the first line of $TMP/ftp-pass.
FTPD_PY=${top_srcdir:-.}/tests/ftpd.py
FTP_USER=spooler
FTP_PASS=ftp-pass-6d21c9
FTP_PID=
FTP_PORT=

# Debian's python modules live with /usr/bin/python3, not with a python3
# that comes first in PATH.
ftp_need() {
	[ -x /usr/bin/python3 ] || bail_out "/usr/bin/python3 not found (tools/deps.sh)"
	/usr/bin/python3 -c 'import pyftpdlib' 2> /dev/null ||
		bail_out "pyftpdlib not found: install python3-pyftpdlib (tools/deps.sh)"
	/usr/bin/python3 -c 'import OpenSSL' 2> /dev/null ||
		bail_out "pyOpenSSL not found: install python3-openssl (tools/deps.sh)"
	printf '%s\n' "$FTP_PASS" > "$TMP/ftp-pass"
}

ftp_pki() {
	server_pki "$TMP/ftp-" "p11enroll FTPS Test Root" > "$TMP/ftp-pki.log" 2>&1 ||
		{ cat "$TMP/ftp-pki.log"; return 1; }
}

ftp_start() {
	ftp_stop
	_ftp_tls=
	case ${2:-} in
	explicit) _ftp_tls="--tls $TMP/ftp-srv.pem $TMP/ftp-srv.key" ;;
	implicit) _ftp_tls="--tls $TMP/ftp-srv.pem $TMP/ftp-srv.key --implicit" ;;
	esac
	: > "$TMP/ftpd.out"
	# shellcheck disable=SC2086 # _ftp_tls is words
	/usr/bin/python3 "$FTPD_PY" --dir "$1" --user "$FTP_USER" \
		--password-file "$TMP/ftp-pass" $_ftp_tls > "$TMP/ftpd.out" 2>> "$TMP/ftpd.log" &
	FTP_PID=$!
	FTP_PORT=
	_i=0
	while [ $_i -lt $((100 * P11E_SCALE)) ]; do
		FTP_PORT=$(sed -n 's/^port \([0-9][0-9]*\)$/\1/p' "$TMP/ftpd.out")
		[ -n "$FTP_PORT" ] && return 0
		kill -0 "$FTP_PID" 2> /dev/null || break
		sleep 0.1
		_i=$((_i + 1))
	done
	echo "# the FTP server did not start:"
	sed 's/^/# /' "$TMP/ftpd.log"
	return 1
}

ftp_stop() {
	if [ -n "$FTP_PID" ]; then
		kill "$FTP_PID" 2> /dev/null
		wait "$FTP_PID" 2> /dev/null
		FTP_PID=
	fi
}
CLEANUP_HOOKS="$CLEANUP_HOOKS ftp_stop"
