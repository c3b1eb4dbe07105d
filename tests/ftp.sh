#!/bin/sh
# /ftp: server = ftp:// and ftps://, a spool directory on an FTP server
# (pyftpdlib, tests/ftp-lib.sh) that the test CA serves (--spool): ir, kur,
# genm and rr end to end, a transaction saved while the CA does not answer
# and finished by resume, and the failures: server down, wrong password,
# no TLS where it is required, a server certificate that does not verify.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
. "${top_srcdir:-$(dirname "$0")/..}/tests/ftp-lib.sh"
. "${top_srcdir:-$(dirname "$0")/..}/tests/rspool-lib.sh"
need_tools
setup
ftp_need
plan 99
T=ftp
SECRETS=$FTP_PASS
ftp_pki || exit 1
mkdir -p "$TMP/ftproot/spool"
SPOOL=$TMP/ftproot/spool

# --- plain FTP ------------------------------------------------------------
ftp_start "$TMP/ftproot" || exit 1
FTP_CONF="server = ftp://$FTP_USER@127.0.0.1:$FTP_PORT/spool/
store_password_source = file:$TMP/ftp-pass"
rspool_cycle plain "$FTP_CONF"
rspool_wait plain "$FTP_CONF"
# the user from store_user, the password from the environment
write_conf "$T-plain" "server = ftp://127.0.0.1:$FTP_PORT/spool/
store_user = $FTP_USER
store_password_source = env:P11E_FTP_TEST_PASS"
P11E_FTP_TEST_PASS=$FTP_PASS p11e genm test --ca-certs "$TMP/env-cacerts.pem"
check "/ftp/store-user-env-password/exit-0" expect_rc 0
check "/ftp/store-user-env-password/no-secret" no_store_secret "$TMP/out" "$TMP/err"

# an answer larger than max_response_size is refused while it is read
make_token "$T-big" || exit 1
start_ca || exit 1
write_conf "$T-big" "$FTP_CONF
store_wait = 1"
ls "$SPOOL" > "$TMP/spool.before"
p11e enroll test
check "/ftp/too-large/stored-exit-9" expect_rc 9
tid=$(ls "$SPOOL" | grep -v -x -F -f "$TMP/spool.before" |
	sed -n 's/^\([0-9a-f]*\)\.1\.req\.der$/\1/p')
head -c 4096 /dev/zero > "$SPOOL/$tid.1.rsp.der"
p11e resume --max-response-size 1024 test
check "/ftp/too-large/exit-5" expect_rc 5
check "/ftp/too-large/says" grep_err "larger than the limit of 1024 bytes"

# curl's notes in the debug log: the login, never the password
start_ca --spool "$SPOOL" || exit 1
write_conf "$T-plain" "$FTP_CONF"
p11e -v -v genm test --ca-certs "$TMP/debug-cacerts.pem"
check "/ftp/debug/exit-0" expect_rc 0
check "/ftp/debug/curl-notes" grep -q "curl: " "$TMP/err"
check "/ftp/debug/no-secret" no_store_secret "$TMP/out" "$TMP/err"
printf 'not-the-password\n' > "$TMP/wrong-pass"
rspool_fails wrong-password 5 "refused the login" \
	"server = ftp://$FTP_USER@127.0.0.1:$FTP_PORT/spool/
store_password_source = file:$TMP/wrong-pass"
# TLS required, and this server has none
rspool_fails no-tls 5 "does not offer TLS" "$FTP_CONF
store_ftp_tls = yes
tls_trusted = $TMP/ftp-root.pem"
down_port=$FTP_PORT
ftp_stop
rspool_fails down 5 "cannot connect" "server = ftp://$FTP_USER@127.0.0.1:$down_port/spool/
store_password_source = file:$TMP/ftp-pass"

# a server that accepts and never greets: the timeouts end the wait
/usr/bin/python3 -c 'import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(4)
print("port %d" % s.getsockname()[1], flush=True)
c = [s.accept()[0] for _ in range(4)]
time.sleep(600)' > "$TMP/silent.out" 2> /dev/null &
SILENT_PID=$!
stop_silent() {
	[ -n "$SILENT_PID" ] && kill "$SILENT_PID" 2> /dev/null && wait "$SILENT_PID" 2> /dev/null
	SILENT_PID=
}
CLEANUP_HOOKS="$CLEANUP_HOOKS stop_silent"
wait_for 10 grep -q '^port ' "$TMP/silent.out"
silent_port=$(sed -n 's/^port //p' "$TMP/silent.out")
rspool_fails silent 5 "no complete response within" \
	"server = ftp://$FTP_USER@127.0.0.1:$silent_port/spool/
store_password_source = file:$TMP/ftp-pass
connect_timeout = $(scaled 2)
timeout = $(scaled 2)"
stop_silent

# --- FTP with AUTH TLS (explicit), verified against tls_trusted -----------------
ftp_start "$TMP/ftproot" explicit || exit 1
rspool_cycle auth-tls "server = ftp://$FTP_USER@127.0.0.1:$FTP_PORT/spool/
store_password_source = file:$TMP/ftp-pass
store_ftp_tls = yes
tls_trusted = $TMP/ftp-root.pem"

# --- FTPS (implicit TLS) --------------------------------------------------------
ftp_start "$TMP/ftproot" implicit || exit 1
FTPS_CONF="server = ftps://$FTP_USER@127.0.0.1:$FTP_PORT/spool/
store_password_source = file:$TMP/ftp-pass
tls_trusted = $TMP/ftp-root.pem"
rspool_cycle ftps "$FTPS_CONF"
rspool_wait ftps "$FTPS_CONF"
# the CMP root is no TLS anchor of this server: refused before the login
rspool_fails ftps-untrusted 5 "TLS server verification failed" \
	"server = ftps://$FTP_USER@127.0.0.1:$FTP_PORT/spool/
store_password_source = file:$TMP/ftp-pass
tls_trusted = $TMP/ca/root.pem"
check "/ftp/server-log-no-secret" no_store_secret "$TMP/ftpd.log" "$TMP/ca.log"
