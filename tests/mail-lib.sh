# Sourced after tests/lib.sh (and setup) by the mail tests: real mail
# servers on 127.0.0.1 with their configuration and mailboxes in $TMP/mail.
#   mail_start   the SMTP server (tests/smtpd.py, python3-aiosmtpd: SMTP and
#                SMTPS) delivering into Maildirs, and dovecot (IMAP, IMAPS,
#                POP3, POP3S) reading the same Maildirs; waits until every
#                port answers and exports:
#                  MAIL_SMTP_URL  MAIL_SMTPS_URL   smtp(s)://127.0.0.1:PORT
#                  MAIL_IMAP_URL  MAIL_IMAPS_URL   imap(s)://127.0.0.1:PORT/INBOX
#                  MAIL_POP3_URL  MAIL_POP3S_URL   pop3(s)://127.0.0.1:PORT
#                  MAIL_USER=client  MAIL_PASSFILE  (the client's password)
#                  MAIL_CA_USER=ca   MAIL_CA_PASSFILE
#                  MAIL_CLIENT_ADDR=client@test.invalid  MAIL_CA_ADDR=ca@test.invalid
#                  MAIL_DIR       the Maildir root: $MAIL_DIR/client, $MAIL_DIR/ca
#                                 (the CA reads its requests from $MAIL_DIR/ca:
#                                 p11enroll-testca --mail "$MAIL_DIR/ca")
#                  MAIL_CACERT    the root the TLS certificate of both servers
#                                 (CN and SAN 127.0.0.1) verifies to
#                  MAIL_SMTP_REJECT  while this file exists, the SMTP server
#                                 answers DATA with its first line ("452 4.3.1
#                                 mailbox full", "554 5.6.0 ...") and keeps nothing
#   mail_stop    stops both by PID (also at the test's end: CLEANUP_HOOKS).
#   mail_stop_smtpd, mail_stop_dovecot    stops one of them ("server down")
#   mail_restart_smtpd, mail_restart_dovecot
#                (re)starts one on the ports it had, the mailboxes kept
#   mail_count USER   the mails in USER's Maildir (new and cur).
#   mail_wait USER N  waits (scaled hang guard) until USER has N mails.
#   mail_send FILE RCPT [FROM]  FILE (a whole mail, LF or CRLF lines) by SMTP
#   mail_put USER FILE          FILE straight into USER's Maildir, bytes as
#                               they are (no SMTP: CRLF kept, anything goes)
# The SMTP server takes mail for the local parts that have a Maildir
# (client, ca; any domain), 550 for others; AUTH is offered, not required.
# Its plain port offers no STARTTLS (tests/mail.sh counts on a server that
# lacks it); dovecot's plain IMAP and POP3 ports offer STARTTLS.
# As root, dovecot's login processes run as the package's dovenull user
# and the mail processes as its dovecot user (dovecot refuses root for
# both; its auth process runs as root to read the passwd file): the
# Maildirs belong to dovecot, and mail processes chroot into $MAIL_DIR
# (so that $TMP may stay 0700).  As another user, everything
# runs as that user.
MAIL_PY=/usr/bin/python3
MAIL_SMTPD_PID=
MAIL_DOVECOT_PID=
CLEANUP_HOOKS="$CLEANUP_HOOKS mail_stop"

# need_mail: the servers are installed (tools/deps.sh), else a failure.
need_mail() {
	need_cmd dovecot
	need_cmd curl
	[ -x /usr/lib/dovecot/imap ] ||
		bail_out "dovecot IMAP not found (dovecot-imapd; tools/deps.sh)"
	[ -x /usr/lib/dovecot/pop3 ] ||
		bail_out "dovecot POP3 not found (dovecot-pop3d; tools/deps.sh)"
	"$MAIL_PY" -c 'import aiosmtpd' 2> /dev/null ||
		bail_out "aiosmtpd not found for $MAIL_PY (python3-aiosmtpd; tools/deps.sh)"
}

mail_stop_smtpd() {
	[ -n "$MAIL_SMTPD_PID" ] && kill "$MAIL_SMTPD_PID" 2> /dev/null &&
		wait "$MAIL_SMTPD_PID" 2> /dev/null
	MAIL_SMTPD_PID=
}
mail_stop_dovecot() {
	[ -n "$MAIL_DOVECOT_PID" ] && kill "$MAIL_DOVECOT_PID" 2> /dev/null &&
		wait "$MAIL_DOVECOT_PID" 2> /dev/null
	MAIL_DOVECOT_PID=
}
mail_stop() {
	mail_stop_smtpd
	mail_stop_dovecot
}
mail_restart_smtpd() {
	mail_stop_smtpd
	mail_start_smtpd
}
mail_restart_dovecot() {
	mail_stop_dovecot
	mail_start_dovecot
}

# mail_tls_pki: a root and a server certificate for 127.0.0.1 in $TMP/mail/tls.
mail_tls_pki() {
	mkdir -p "$TMP/mail/tls" && server_pki "$TMP/mail/tls/" "p11enroll Mail Test Root"
}

# mail_free_ports N: N ports on 127.0.0.1 that are free when asked.
mail_free_ports() {
	"$MAIL_PY" -c '
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))' "$1"
}

# mail_ports_open PORT...: every port accepts a connection.
mail_ports_open() {
	"$MAIL_PY" -c '
import socket, sys
for p in sys.argv[1:]:
    socket.create_connection(("127.0.0.1", int(p)), timeout=2).close()' "$@" 2> /dev/null
}

# mail_count USER: the mails in USER's Maildir, new and cur.
mail_count() {
	find "$MAIL_DIR/$1/new" "$MAIL_DIR/$1/cur" -type f | wc -l
}
mail_has() {
	test "$(mail_count "$1")" -eq "$2"
}
# mail_wait USER N: USER's Maildir holds N mails (a hang guard, scaled).
mail_wait() {
	wait_for 30 mail_has "$1" "$2"
}

# mail_send FILE RCPT [FROM]: FILE by SMTP (curl; LF or CRLF lines, CRLF
# on the wire: curl's --crlf alone would make CRLF lines CR CR LF)
mail_send() {
	tr -d '\r' < "$1" | curl -sS --max-time "$(scaled 30)" "$MAIL_SMTP_URL" --crlf \
		--mail-from "${3:-$MAIL_CLIENT_ADDR}" --mail-rcpt "$2" -T -
}

# mail_put USER FILE: FILE into USER's Maildir as a Maildir writer does
# (tmp/, then renamed into new/), owned as the SMTP server's deliveries
_mail_put_n=0
mail_put() {
	_mail_put_n=$((_mail_put_n + 1))
	_mp_name="$(date +%s).M$$Q$_mail_put_n.put"
	cp "$2" "$MAIL_DIR/$1/tmp/$_mp_name" || return 1
	[ "$(id -u)" = 0 ] && id dovecot > /dev/null 2>&1 &&
		chown dovecot:"$(id -gn dovecot)" "$MAIL_DIR/$1/tmp/$_mp_name"
	mv "$MAIL_DIR/$1/tmp/$_mp_name" "$MAIL_DIR/$1/new/$_mp_name"
}

# mail_dovecot_conf IMAP IMAPS POP3 POP3S: $TMP/mail/dovecot.conf
mail_dovecot_conf() {
	_md=$TMP/mail
	if [ "$(id -u)" = 0 ] && id dovecot > /dev/null 2>&1 && id dovenull > /dev/null 2>&1; then
		_internal=dovecot
		_internal_group=$(id -gn dovecot)
		_login=dovenull
		_mailuser="uid=dovecot gid=$(id -gn dovecot) home=/%n"
		_location="maildir:/%n"
		_chroot="mail_chroot = $MAIL_DIR
valid_chroot_dirs = $MAIL_DIR"
		_login_chroot=
		# the passwd file is under $TMP (0700, root's)
		_worker="service auth {
  user = root
}"
	else
		_internal=$(id -un)
		_internal_group=$(id -gn)
		_login=$_internal
		_mailuser="uid=$(id -u) gid=$(id -g) home=$MAIL_DIR/%n"
		_location="maildir:$MAIL_DIR/%n"
		_chroot=
		_login_chroot="  chroot ="
		_worker="service auth-worker {
  user = \$default_internal_user
}"
	fi
	cat > "$_md/dovecot.conf" << EOF
# written by tests/mail-lib.sh
protocols = imap pop3
listen = 127.0.0.1
base_dir = $_md/run
state_dir = $_md/state
log_path = $_md/dovecot.log
info_log_path = $_md/dovecot.log
instance_name = p11enroll-test-$$
default_internal_user = $_internal
default_internal_group = $_internal_group
default_login_user = $_login
first_valid_uid = 1
first_valid_gid = 1
ssl = yes
ssl_cert = <$_md/tls/srv.pem
ssl_key = <$_md/tls/srv.key
disable_plaintext_auth = no
auth_mechanisms = plain login
# a wrong password is answered at once (tests try them on purpose)
auth_failure_delay = 0
passdb {
  driver = passwd-file
  args = scheme=PLAIN $_md/passwd
}
userdb {
  driver = static
  args = $_mailuser
}
mail_location = $_location
$_chroot
pop3_uidl_format = %08Xu%08Xv
$_worker
service imap-login {
$_login_chroot
  inet_listener imap {
    port = $1
  }
  inet_listener imaps {
    port = $2
    ssl = yes
  }
}
service pop3-login {
$_login_chroot
  inet_listener pop3 {
    port = $3
  }
  inet_listener pop3s {
    port = $4
    ssl = yes
  }
}
EOF
}

# mail_start_dovecot: dovecot in the foreground of a child of ours (its PID
# is ours to stop), on ports picked free; another set is tried when a port
# was taken meanwhile (dovecot exits).  A restart takes the ports it had.
MAIL_DOVECOT_PORTS=
mail_start_dovecot() {
	_try=0
	while [ $_try -lt 5 ]; do
		_try=$((_try + 1))
		if [ -n "$MAIL_DOVECOT_PORTS" ]; then
			set -- $MAIL_DOVECOT_PORTS
			_try=5
		else
			set -- $(mail_free_ports 4)
		fi
		mail_dovecot_conf "$@"
		dovecot -F -c "$TMP/mail/dovecot.conf" >> "$TMP/mail/dovecot.out" 2>&1 &
		MAIL_DOVECOT_PID=$!
		_i=0
		while [ $_i -lt $((200 * P11E_SCALE)) ] &&
			kill -0 "$MAIL_DOVECOT_PID" 2> /dev/null; do
			if mail_ports_open "$@" && kill -0 "$MAIL_DOVECOT_PID" 2> /dev/null; then
				MAIL_IMAP_URL="imap://127.0.0.1:$1/INBOX"
				MAIL_IMAPS_URL="imaps://127.0.0.1:$2/INBOX"
				MAIL_POP3_URL="pop3://127.0.0.1:$3"
				MAIL_POP3S_URL="pop3s://127.0.0.1:$4"
				MAIL_DOVECOT_PORTS="$*"
				return 0
			fi
			sleep 0.05
			_i=$((_i + 1))
		done
		kill "$MAIL_DOVECOT_PID" 2> /dev/null
		wait "$MAIL_DOVECOT_PID" 2> /dev/null
		MAIL_DOVECOT_PID=
	done
	echo "# dovecot did not start:"
	sed 's/^/#   /' "$TMP/mail/dovecot.out" "$TMP/mail/dovecot.log" 2> /dev/null
	return 1
}

# mail_start_smtpd: tests/smtpd.py on ports the kernel picks (it prints
# them); a restart takes the ports it had.
MAIL_SMTP_PORTS=
mail_start_smtpd() {
	: > "$TMP/mail/smtpd.out"
	"$MAIL_PY" "$top_srcdir/tests/smtpd.py" "$MAIL_DIR" "$TMP/mail/tls/srv.pem" \
		"$TMP/mail/tls/srv.key" "$TMP/mail/passwd" "$TMP/mail/smtpd.log" $MAIL_SMTP_PORTS \
		> "$TMP/mail/smtpd.out" 2>> "$TMP/mail/smtpd.err" &
	MAIL_SMTPD_PID=$!
	_i=0
	while [ $_i -lt $((200 * P11E_SCALE)) ] && kill -0 "$MAIL_SMTPD_PID" 2> /dev/null; do
		_p=$(sed -n 's/^smtp \([0-9][0-9]*\)$/\1/p' "$TMP/mail/smtpd.out")
		_ps=$(sed -n 's/^smtps \([0-9][0-9]*\)$/\1/p' "$TMP/mail/smtpd.out")
		if [ -n "$_p" ] && [ -n "$_ps" ]; then
			MAIL_SMTP_URL="smtp://127.0.0.1:$_p"
			MAIL_SMTPS_URL="smtps://127.0.0.1:$_ps"
			MAIL_SMTP_PORTS="$_p $_ps"
			return 0
		fi
		sleep 0.05
		_i=$((_i + 1))
	done
	echo "# the SMTP server did not start:"
	sed 's/^/#   /' "$TMP/mail/smtpd.err"
	return 1
}

mail_start() {
	mail_stop
	need_mail
	MAIL_SMTP_PORTS=
	MAIL_DOVECOT_PORTS=
	rm -rf "$TMP/mail"
	mkdir -p "$TMP/mail/run" "$TMP/mail/state"
	MAIL_DIR=$TMP/mail/maildir
	mail_tls_pki > "$TMP/mail/pki.log" 2>&1 || {
		sed 's/^/# /' "$TMP/mail/pki.log"
		return 1
	}
	MAIL_CACERT=$TMP/mail/tls/root.pem
	MAIL_SMTP_REJECT=$TMP/mail/smtpd.reject
	MAIL_USER=client
	MAIL_CA_USER=ca
	MAIL_PASSFILE=$TMP/mail/client.pass
	MAIL_CA_PASSFILE=$TMP/mail/ca.pass
	MAIL_CLIENT_ADDR=client@test.invalid
	MAIL_CA_ADDR=ca@test.invalid
	: > "$TMP/mail/passwd"
	for _u in client ca; do
		"$OPENSSL_BIN" rand -hex 12 > "$TMP/mail/$_u.pass" || return 1
		printf '%s:{PLAIN}%s::::::\n' "$_u" "$(cat "$TMP/mail/$_u.pass")" \
			>> "$TMP/mail/passwd"
		mkdir -p "$MAIL_DIR/$_u/new" "$MAIL_DIR/$_u/cur" "$MAIL_DIR/$_u/tmp"
	done
	if [ "$(id -u)" = 0 ] && id dovecot > /dev/null 2>&1; then
		chown -R dovecot:"$(id -gn dovecot)" "$MAIL_DIR"
	fi
	mail_start_dovecot || return 1
	mail_start_smtpd || return 1
	export MAIL_SMTP_URL MAIL_SMTPS_URL MAIL_IMAP_URL MAIL_IMAPS_URL MAIL_POP3_URL \
		MAIL_POP3S_URL MAIL_USER MAIL_CA_USER MAIL_PASSFILE MAIL_CA_PASSFILE \
		MAIL_CLIENT_ADDR MAIL_CA_ADDR MAIL_DIR MAIL_CACERT MAIL_SMTP_REJECT
}
