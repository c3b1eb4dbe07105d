#!/bin/sh
# /mailsrv: the mail servers the mail tests start (tests/mail-lib.sh: the
# SMTP server tests/smtpd.py and dovecot for IMAP and POP3) carry a mail
# each way with curl, over plain and TLS ports; and the test CA's mail
# mode (--mail) answers a CMP request mail through them.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
. "$top_srcdir/tests/mail-lib.sh"
need_tools
setup
plan 51

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
	printf 'From: %s\r\nTo: %s\r\nSubject: %s\r\n' "$MAIL_CLIENT_ADDR" "$MAIL_CLIENT_ADDR" "$1"
	printf 'Message-ID: <%s@test.invalid>\r\n\r\nbody of %s\r\n' "$1" "$1"
}
not() {
	! "$@"
}
quiet() {
	"$@" > /dev/null 2>&1
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
echo "452 4.3.1 mailbox full (test)" > "$MAIL_SMTP_REJECT"
# (curl 7.88 says "Weird server reply" for a refused DATA: the log has the reply)
check "/mailsrv/smtp/refused-while-reject-file" eval 'not send "$MAIL_SMTP_URL" \
	"$MAIL_CLIENT_ADDR" "$TMP/m1" && grep -q "^refused: 452 " "$TMP/mail/smtpd.log"'
rm -f "$MAIL_SMTP_REJECT"
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

# --- a server down and back on its ports, the mailboxes kept --------------------
mail_stop_smtpd
check "/mailsrv/down/smtp-refused" not send "$MAIL_SMTP_URL" "$MAIL_CLIENT_ADDR" "$TMP/m1"
mail_restart_smtpd || bail_out "the SMTP server did not start again"
check "/mailsrv/down/smtp-back" send "$MAIL_SMTP_URL" "$MAIL_CLIENT_ADDR" "$TMP/m1"
mail_stop_dovecot
check "/mailsrv/down/imap-refused" not mcurl --netrc-file "$TMP/netrc" "$MAIL_IMAP_URL" \
	-X "SEARCH ALL"
mail_restart_dovecot || bail_out "dovecot did not start again"
check "/mailsrv/down/imap-back" eval 'mcurl --netrc-file "$TMP/netrc" "$MAIL_IMAP_URL" \
	-X "SEARCH ALL" | tr -d "\r" | grep -qx "\* SEARCH 1"'
rm -f "$MAIL_DIR/client/new/"* "$MAIL_DIR/client/cur/"*

# --- the test CA's mail mode: a request mail in, the answer mail out ------------
# The request: p11enroll's own ir (enroll --request-out, the offline flow),
# mailed as RFC 2510 5.3 says by curl; the CA reads it from its Maildir and
# answers by SMTP into the client's; p11enroll takes the answer it carries.
TOK=mail-ca
make_token "$TOK" || exit 1
ca_mail() { # [CA-ARGS...]: the CA answering mail
	start_ca --mail "$MAIL_DIR/ca" --mail-smtp "$MAIL_SMTP_URL" --mail-from "$MAIL_CA_ADDR" \
		"$@" || bail_out "the test CA did not start"
}
ca_mail
write_conf "$TOK" "cert_out = $TMP/cert.pem"
p11e enroll --request-out "$TMP/ir.der" test
check "/mailsrv/ca/request-written" expect_rc 9
TID=$(sed -n 's/^transaction_id \([0-9a-f][0-9a-f]*\)$/\1/p' "$(pending_file "$TOK")")
[ -n "$TID" ] || bail_out "no transaction_id in the pending file"
# request_mail N [CTYPE [multipart]]: the request as a mail in $TMP/req.N
request_mail() {
	{
		printf 'From: p11enroll <%s>\nTo: %s\nSubject: CMP %s %s\n' "$MAIL_CLIENT_ADDR" \
			"$MAIL_CA_ADDR" "$TID" "$1"
		printf 'Message-ID: <%s.%s.%s@test.invalid>\nX-CMP-Transaction-ID: %s\n' \
			"$TID" "$1" "$$" "$TID"
		printf 'MIME-Version: 1.0\n'
		if [ "${3:-}" = multipart ]; then
			printf 'Content-Type: multipart/mixed; boundary=b0undary\n\n--b0undary\n'
			printf 'Content-Type: text/plain\n\nsee the attachment\n--b0undary\n'
		fi
		printf 'Content-Type: %s\nContent-Transfer-Encoding: base64\n\n' \
			"${2:-application/pkixcmp}"
		base64 -w 76 "$TMP/ir.der"
		[ "${3:-}" = multipart ] && printf -- '--b0undary--\n'
	} > "$TMP/req.$1"
}
send_request() { # N
	mail_send "$TMP/req.$1" "$MAIL_CA_ADDR" 2>> "$TMP/curl.err"
}
# answers: the answer mails in the client's Maildir (new/ or, once dovecot
# has seen them, cur/), oldest first: the names sort in delivery order
answers() {
	for _d in new cur; do
		ls "$MAIL_DIR/client/$_d" | sed "s|^|$_d/|"
	done | sort -t / -k 2 | sed "s|^|$MAIL_DIR/client/|"
}
# cmp_der MAIL OUT: the base64 of MAIL's (first) CMP part, decoded
cmp_der() {
	tr -d '\r' < "$1" | awk '
		/^Content-Type: application\/(x-)?pkixcmp/ { inpart = 1; next }
		inpart == 1 && /^$/ { inpart = 2; next }
		inpart == 2 && /^--/ { exit }
		inpart == 2 { print }' | base64 -d > "$2"
}
header() { # MAIL NAME: the header's value
	tr -d '\r' < "$1" | sed -n "/^\$/q; s/^$2: //p"
}
is_der() {
	"$OPENSSL_BIN" asn1parse -inform DER -in "$1" > /dev/null 2>&1
}
clear_client() {
	rm -f "$MAIL_DIR/client/new/"* "$MAIL_DIR/client/cur/"*
}
request_mail 1
check "/mailsrv/ca/request-sent" send_request 1
check "/mailsrv/ca/answer-arrived" mail_wait client 1
A=$(answers | head -n 1)
check "/mailsrv/ca/request-moved-to-cur" eval 'test -z "$(ls "$MAIL_DIR/ca/new")" &&
	test "$(ls "$MAIL_DIR/ca/cur" | wc -l)" = 1'
check "/mailsrv/ca/answer-headers" eval '
	test "$(header "$A" Subject)" = "Re: CMP $TID 1" &&
	test "$(header "$A" In-Reply-To)" = "<$TID.1.$$@test.invalid>" &&
	test "$(header "$A" References)" = "<$TID.1.$$@test.invalid>" &&
	test "$(header "$A" X-CMP-Transaction-ID)" = "$TID" &&
	test "$(header "$A" From)" = "$MAIL_CA_ADDR" &&
	test "$(header "$A" To)" = "$MAIL_CLIENT_ADDR" &&
	test "$(header "$A" Content-Type)" = application/pkixcmp &&
	test "$(header "$A" Content-Transfer-Encoding)" = base64'
check "/mailsrv/ca/base64-76" eval 'test "$(sed -n "/^\r*\$/,\$p" "$A" | tr -d "\r" |
	awk "length > 76" | wc -l)" = 0'
# the client's way: fetched by IMAP, the part decoded, p11enroll takes it
mcurl --netrc-file "$TMP/netrc" "$MAIL_IMAP_URL/;UID=$(uid_of "Re:")" > "$TMP/answer.eml"
cmp_der "$TMP/answer.eml" "$TMP/ip.der"
check "/mailsrv/ca/answer-is-pkimessage" is_der "$TMP/ip.der"
p11e resume --response-in "$TMP/ip.der" --request-out "$TMP/certconf.der" test
check "/mailsrv/ca/p11enroll-takes-answer" expect_rc 0
check "/mailsrv/ca/cert-verifies" quiet "$OPENSSL_BIN" verify -CAfile "$TMP/ca/root.pem" \
	-untrusted "$TMP/ca/ca.pem" "$TMP/cert.pem"

# --- the CA's answer bent for the client's tests; requests in other forms -------
# round N [CA-ARGS...]: the CA restarted with CA-ARGS, request N sent (by SMTP,
# unless already in the CA's Maildir), until the CA has moved it to cur/
# (after its answers went out: the SMTP server has put them in place)
handled() {
	test -z "$(ls "$MAIL_DIR/ca/new")" && test -n "$(ls "$MAIL_DIR/ca/cur")"
}
round() {
	_n=$1
	shift
	clear_client
	rm -f "$MAIL_DIR/ca/cur/"*
	ca_mail "$@"
	[ -f "$TMP/req.$_n" ] && { send_request "$_n" || echo "# request $_n not sent"; }
	wait_for 30 handled || echo "# the CA did not take request $_n"
	A=$(answers | head -n 1)
	cmp_der "$A" "$TMP/rsp.$_n.der" 2> /dev/null
}
# the answer as x-pkixcmp in a multipart, by SMTPS; the request a multipart
# with application/x-pkixcmp-poll
request_mail 2 application/x-pkixcmp-poll multipart
round 2 --mail-ctype application/x-pkixcmp --mail-multipart --mail-smtp "$MAIL_SMTPS_URL" \
	--mail-cacert "$MAIL_CACERT"
check "/mailsrv/ca/multipart/one-answer" mail_has client 1
check "/mailsrv/ca/multipart/form" eval '
	header "$A" Content-Type | grep -q "^multipart/mixed; boundary=" &&
	test "$(tr -d "\r" < "$A" | grep "^Content-Type: " | sed -n "2p;3p" | tr "\n" " ")" = \
		"Content-Type: text/plain; charset=us-ascii Content-Type: application/x-pkixcmp "'
check "/mailsrv/ca/multipart/pkimessage" is_der "$TMP/rsp.2.der"
# dup: the same answer twice
request_mail 3
round 3 --mail-fault dup
check "/mailsrv/ca/dup/two-answers" mail_has client 2
check "/mailsrv/ca/dup/same" eval 'cmp_der "$(answers | tail -n 1)" "$TMP/rsp.3b.der" &&
	is_der "$TMP/rsp.3.der" && cmp -s "$TMP/rsp.3.der" "$TMP/rsp.3b.der"'
# wrong-tid: another transaction's id in subject and header, In-Reply-To right
request_mail 4
round 4 --mail-fault wrong-tid
OTHER=$(header "$A" X-CMP-Transaction-ID)
check "/mailsrv/ca/wrong-tid/other-id" eval 'test -n "$OTHER" && test "$OTHER" != "$TID" &&
	test "${#OTHER}" = "${#TID}" && test "$(header "$A" Subject)" = "Re: CMP $OTHER 4" &&
	test "$(header "$A" In-Reply-To)" = "<$TID.4.$$@test.invalid>"'
check "/mailsrv/ca/wrong-tid/pkimessage" is_der "$TMP/rsp.4.der"
# garbage: base64 of no DER
request_mail 5
round 5 --mail-fault garbage
check "/mailsrv/ca/garbage/base64-not-der" eval 'test -s "$TMP/rsp.5.der" &&
	! is_der "$TMP/rsp.5.der"'
# no-subject-tid: the id nowhere but in In-Reply-To
request_mail 6
round 6 --mail-fault no-subject-tid
check "/mailsrv/ca/no-subject-tid/form" eval '
	test -z "$(header "$A" X-CMP-Transaction-ID)" &&
	! header "$A" Subject | grep -q "$TID" &&
	test "$(header "$A" In-Reply-To)" = "<$TID.6.$$@test.invalid>"'
check "/mailsrv/ca/no-subject-tid/pkimessage" is_der "$TMP/rsp.6.der"
# a request with CRLF line ends, put into the CA's Maildir directly (the
# SMTP server stores LF); no X-CMP-Transaction-ID: the subject names it
request_mail 7
stop_ca
grep -v '^X-CMP-Transaction-ID' "$TMP/req.7" | sed 's/$/\r/' > "$TMP/req.7.crlf"
rm -f "$TMP/req.7"
mail_put ca "$TMP/req.7.crlf"
round 7
check "/mailsrv/ca/crlf/answered" eval 'is_der "$TMP/rsp.7.der" &&
	test "$(header "$A" X-CMP-Transaction-ID)" = "$TID"'
# a mail without a CMP message: taken out of new/, no answer
printf 'From: %s\nTo: %s\nSubject: hello\n\njust text\n' "$MAIL_CLIENT_ADDR" \
	"$MAIL_CA_ADDR" > "$TMP/req.8"
round 8
check "/mailsrv/ca/no-cmp/no-answer" mail_has client 0
check "/mailsrv/ca/no-cmp/logged" grep -q "no PKIMessage in it" "$TMP/ca.log"
# hostile request mails, straight into the CA's Maildir: each taken out of
# new/ without an answer, and the CA answers a good request after them
hostile() { # NAME: $TMP/h.NAME into the CA's Maildir
	mail_put ca "$TMP/h.$1"
}
: > "$TMP/h.empty"
C=$MAIL_CLIENT_ADDR
printf 'From: %s\nSubject: CMP %s 1\nContent-Type: application/pkixcmp' "$C" "$TID" \
	> "$TMP/h.no-body"
printf 'From: %s\nContent-Type: multipart/mixed; boundary=""\n\n--\n--\n' "$C" \
	> "$TMP/h.empty-boundary"
printf 'From: %s\nContent-Type: multipart/mixed; boundary=x\n\n--x\n%s\n%s\n\nMII*%%$\n' "$C" \
	'Content-Type: application/pkixcmp' 'Content-Transfer-Encoding: base64' \
	> "$TMP/h.unclosed-bad-base64"
{
	printf 'From: %s\nContent-Type: application/pkixcmp\n' "$C"
	printf 'Content-Transfer-Encoding: base64\n\n'
	head -c 2100000 /dev/zero | tr '\0' 'A'
} > "$TMP/h.huge"
{
	printf 'Subject: CMP\n'
	i=0
	while [ $i -lt 2000 ]; do
		printf ' %s\n' "$TID$TID$TID$TID"
		i=$((i + 1))
	done
	printf 'Content-Type: application/pkixcmp\nContent-Transfer-Encoding: base64\n\n'
	base64 -w 76 "$TMP/ir.der"
} > "$TMP/h.folded-subject-no-from"
{
	printf 'From: %s\nContent-Type: application/pkixcmp\n' "$C"
	printf 'Content-Transfer-Encoding: base64\n\n'
	head -c 300 /dev/urandom | base64
} > "$TMP/h.not-der"
{
	printf 'From: \001\000\377 <>\nContent-Type: application/pkixcmp\n'
	printf 'Content-Transfer-Encoding: base64\n\n'
	base64 -w 76 "$TMP/ir.der"
} > "$TMP/h.bad-from"
clear_client
rm -f "$MAIL_DIR/ca/cur/"*
ca_mail
for h in empty no-body empty-boundary unclosed-bad-base64 huge folded-subject-no-from not-der \
	bad-from; do
	hostile "$h"
done
check "/mailsrv/ca/hostile/all-taken" wait_for 30 handled
check "/mailsrv/ca/hostile/no-answer" mail_has client 0
request_mail 9
check "/mailsrv/ca/hostile/then-good-answered" eval 'send_request 9 &&
	mail_wait client 1'
# usage: the mail mode needs its server and address, a known fault
stop_ca
"$TESTCA" --dir "$TMP/ca" --mail "$MAIL_DIR/ca" --mail-from "$MAIL_CA_ADDR" > /dev/null 2>&1
check "/mailsrv/ca/usage/needs-smtp" test $? = 2
"$TESTCA" --dir "$TMP/ca" --mail "$MAIL_DIR/ca" --mail-smtp "$MAIL_SMTP_URL" \
	--mail-from "$MAIL_CA_ADDR" --mail-fault bogus > /dev/null 2>&1
check "/mailsrv/ca/usage/unknown-fault" test $? = 2

finish
