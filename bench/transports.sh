#!/bin/sh
# Prints the median wall-clock time of one complete EC P-256 enrollment
# (keygen on a SoftHSM2 token, ir/ip/certConf/pkiConf with the test CA on
# loopback, storing certificate and chain) over each transport: HTTP, TCP,
# the spool directory (file:///), FTP and SFTP (pyftpdlib and sshd serving
# that directory: tests/ftp-lib.sh, tests/ssh-lib.sh) and e-mail (mailto:,
# SMTP and IMAP through tests/mail-lib.sh's servers to the test CA's mail
# mode).  One token grows across all runs: no label is enrolled twice.
# usage: bench/transports.sh [BUILD_DIR] [RUNS]   (default build/, 15 runs)
. "$(dirname "$0")/lib.sh" "$@"

tok=bench-transports
make_token "$tok" || exit 1

TE_CONF=
time_enrollments "$tok" ec:P-256 "http     "

start_ca --tcp || exit 1
TE_CONF="server = tcp://127.0.0.1:$CA_PORT"
time_enrollments "$tok" ec:P-256 "tcp      "

mkdir -p "$TMP/spool"
start_ca --spool "$TMP/spool" || exit 1
TE_CONF="server = file://$TMP/spool"
time_enrollments "$tok" ec:P-256 "file     "

. "$top_srcdir/tests/ftp-lib.sh"
ftp_need
mkdir -p "$TMP/ftproot/spool"
start_ca --spool "$TMP/ftproot/spool" || exit 1
ftp_start "$TMP/ftproot" || exit 1
TE_CONF="server = ftp://$FTP_USER@127.0.0.1:$FTP_PORT/spool/
store_password_source = file:$TMP/ftp-pass"
time_enrollments "$tok" ec:P-256 "ftp      "
ftp_stop

. "$top_srcdir/tests/ssh-lib.sh"
ssh_need
ssh_keys > /dev/null 2>&1 || exit 1
ssh_start || exit 1
ssh_known_hosts "$TMP/known_hosts"
TE_CONF="server = sftp://$SSH_USER@127.0.0.1:$SSH_PORT$TMP/ftproot/spool/
store_ssh_key = $TMP/ssh/id
store_known_hosts = $TMP/known_hosts"
time_enrollments "$tok" ec:P-256 "sftp     "
ssh_stop
stop_ca

. "$top_srcdir/tests/mail-lib.sh"
mail_start || exit 1
start_ca --mail "$MAIL_DIR/ca" --mail-smtp "$MAIL_SMTP_URL" --mail-from "$MAIL_CA_ADDR" || exit 1
TE_CONF="server = mailto:$MAIL_CA_ADDR
mail_from = $MAIL_CLIENT_ADDR
smtp_server = $MAIL_SMTP_URL
mail_inbox = $MAIL_IMAP_URL
mail_user = $MAIL_USER
mail_password_source = file:$MAIL_PASSFILE"
time_enrollments "$tok" ec:P-256 "mail     "
stop_ca
mail_stop
