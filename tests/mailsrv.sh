#!/bin/sh
# /mailsrv: the mail servers the mail tests start (tests/mail-lib.sh: the
# SMTP server tests/smtpd.py and dovecot for IMAP and POP3) carry a mail
# each way with curl, over plain and TLS ports; and the test CA's mail
# mode (--mail) answers a CMP request mail through them.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
. "$top_srcdir/tests/mail-lib.sh"
need_tools
setup
plan 19

mail_start || bail_out "the mail servers did not start"
# curl reads the client's login from a netrc file: no password in argv
printf 'machine 127.0.0.1 login %s password %s\n' "$MAIL_USER" "$(cat "$MAIL_PASSFILE")" \
	> "$TMP/netrc"
printf 'machine 127.0.0.1 login %s password wrong-password\n' "$MAIL_USER" > "$TMP/netrc.bad"
mcurl() {
	curl -sS --max-time "$(scaled 30)" --cacert "$MAIL_CACERT" "$@" 2>> "$TMP/curl.err"
}
# mail_text SUBJECT: a small mail from the client to itself
mail_text() {
	printf 'From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@test.invalid>\r\n\r\nbody of %s\r\n' \
		"$MAIL_CLIENT_ADDR" "$MAIL_CLIENT_ADDR" "$1" "$1" "$1"
}
not() {
	! "$@"
}
send() { # URL RCPT FILE [CURL-ARGS...]
	_url=$1 _rcpt=$2 _file=$3
	shift 3
	mcurl "$_url" --mail-from "$MAIL_CLIENT_ADDR" --mail-rcpt "$_rcpt" -T "$_file" "$@"
}

# --- SMTP in: plain without AUTH, TLS with AUTH, unknown mailbox refused -------
mail_text plain-one > "$TMP/m1"
mail_text tls-two > "$TMP/m2"
check "/mailsrv/smtp/sent" send "$MAIL_SMTP_URL" "$MAIL_CLIENT_ADDR" "$TMP/m1"
check "/mailsrv/smtps/sent-with-auth" send "$MAIL_SMTPS_URL" "$MAIL_CLIENT_ADDR" "$TMP/m2" \
	--netrc-file "$TMP/netrc"
check "/mailsrv/smtps/auth-logged" grep -q '^auth PLAIN ok$' "$TMP/mail/smtpd.log"
check "/mailsrv/smtps/bad-password-refused" not send "$MAIL_SMTPS_URL" "$MAIL_CLIENT_ADDR" \
	"$TMP/m2" --netrc-file "$TMP/netrc.bad"
check "/mailsrv/smtp/unknown-mailbox-refused" not send "$MAIL_SMTP_URL" nobody@test.invalid \
	"$TMP/m1"
check "/mailsrv/smtps/unverified-refused" not curl -sS --max-time "$(scaled 30)" \
	"$MAIL_SMTPS_URL" --mail-from "$MAIL_CLIENT_ADDR" --mail-rcpt "$MAIL_CLIENT_ADDR" \
	-T "$TMP/m1" 2>> "$TMP/curl.err"
check "/mailsrv/maildir/two-delivered" test "$(mail_count client)" = 2
check "/mailsrv/maildir/no-temp-left" test -z "$(ls "$MAIL_DIR/client/tmp")"

# --- out by IMAP and POP3, plain and TLS ----------------------------------------
check "/mailsrv/imap/search-two" eval 'mcurl --netrc-file "$TMP/netrc" "$MAIL_IMAP_URL" \
	-X "SEARCH ALL" | tr -d "\r" | grep -qx "\* SEARCH 1 2"'
# uid_of SUBJECT: the IMAP UID of the client's mail with SUBJECT
uid_of() {
	mcurl --netrc-file "$TMP/netrc" "$MAIL_IMAP_URL" -X "UID SEARCH SUBJECT $1" |
		tr -d '\r' | sed -n 's/^\* SEARCH \([0-9][0-9]*\)$/\1/p'
}
check "/mailsrv/imap/fetch" eval 'mcurl --netrc-file "$TMP/netrc" \
	"$MAIL_IMAP_URL/;UID=$(uid_of plain-one)" | grep -q "^Subject: plain-one"'
check "/mailsrv/imaps/fetch" eval 'mcurl --netrc-file "$TMP/netrc" \
	"$MAIL_IMAPS_URL/;UID=$(uid_of tls-two)" | grep -q "^Subject: tls-two"'
check "/mailsrv/imap/bad-password-refused" not mcurl --netrc-file "$TMP/netrc.bad" \
	"$MAIL_IMAP_URL/;UID=1"
check "/mailsrv/pop3/list-two" eval 'test "$(mcurl --netrc-file "$TMP/netrc" "$MAIL_POP3_URL" |
	wc -l)" = 2'
check "/mailsrv/pop3s/retr" eval '{ mcurl --netrc-file "$TMP/netrc" "$MAIL_POP3S_URL/1" &&
	mcurl --netrc-file "$TMP/netrc" "$MAIL_POP3S_URL/2"; } | grep -c "^body of " | grep -qx 2'
check "/mailsrv/pop3s/unverified-refused" not curl -sS --max-time "$(scaled 30)" \
	--netrc-file "$TMP/netrc" "$MAIL_POP3S_URL/1" 2>> "$TMP/curl.err"
# --- deleted: one by POP3S DELE, the other by IMAP STORE \Deleted + EXPUNGE ----
check "/mailsrv/pop3s/dele" mcurl --netrc-file "$TMP/netrc" "$MAIL_POP3S_URL/1" -X DELE -I
check "/mailsrv/maildir/one-left" test "$(mail_count client)" = 1
check "/mailsrv/imaps/delete" eval 'mcurl --netrc-file "$TMP/netrc" "$MAIL_IMAPS_URL" \
	-X "STORE 1 +FLAGS (\\Deleted)" > /dev/null &&
	mcurl --netrc-file "$TMP/netrc" "$MAIL_IMAPS_URL" -X EXPUNGE > /dev/null'
check "/mailsrv/maildir/none-left" test "$(mail_count client)" = 0

finish
