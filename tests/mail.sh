#!/bin/sh
# /mail: server = mailto:ADDR (RFC 2510 5.3) through real mail servers
# (tests/mail-lib.sh: aiosmtpd for SMTP and SMTPS, dovecot for IMAP(S) and
# POP3(S)) to the test CA's mail mode (--mail): ir, kur, rr and genm with
# the certificate on the token over each inbox kind, and the agent
# renewing; answers in the older content types, in a multipart, named by
# In-Reply-To only, under another transactionID with In-Reply-To right,
# twice, broken; no answer in store_wait (exit 9) and resume.  A mail
# gateway of the tests (tests/mailrelay.py in front of the CA's --spool
# mode) adds what the CA's switches do not: mails wholly of another
# transaction, a CMP part that is not base64, another transaction's
# PKIMessage under our headers, a CMP part or a mail over its size limit.
# Then the SMTP server down, a wrong mail password, TLS that does not
# verify, STARTTLS not offered; the configuration check; no PIN, secret or
# mail password in any output, log or mail left behind.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
. "$top_srcdir/tests/mail-lib.sh"
. "$top_srcdir/tests/agent-lib.sh"
need_tools
setup
trap 'kill_agents; cleanup' EXIT
plan 109

mail_start || bail_out "the mail servers did not start"
SPOOL=$TMP/spool
mkdir "$SPOOL"
MAIL_PASS=$(cat "$MAIL_PASSFILE")
STORE_WAIT=$(scaled 20)

RELAY_PID=
relay_stop() {
	if [ -n "$RELAY_PID" ]; then
		kill "$RELAY_PID" 2> /dev/null
		wait "$RELAY_PID" 2> /dev/null
	fi
	RELAY_PID=
}
CLEANUP_HOOKS="$CLEANUP_HOOKS relay_stop"
# relay [MODE...]: the CA's mail gateway (again), with the faults MODE asks for
relay() {
	relay_stop
	: > "$TMP/relay.out"
	"$MAIL_PY" "$top_srcdir/tests/mailrelay.py" "$MAIL_DIR/ca" "$SPOOL" "${MAIL_SMTP_URL##*:}" \
		"$MAIL_CA_ADDR" "$MAIL_CLIENT_ADDR" "$TMP/relay.log" "$@" > "$TMP/relay.out" 2>&1 &
	RELAY_PID=$!
	wait_for 10 grep -q '^ready$' "$TMP/relay.out"
}
# mail_conf TOKEN SMTP-URL INBOX-URL [EXTRA-LINES]
mail_conf() {
	write_conf "$1" "server = mailto:$MAIL_CA_ADDR
mail_from = $MAIL_CLIENT_ADDR
smtp_server = $2
mail_inbox = $3
mail_user = $MAIL_USER
mail_password_source = file:${PASSFILE:-$MAIL_PASSFILE}
tls_trusted = ${TLS_TRUSTED:-$MAIL_CACERT}
store_wait = $STORE_WAIT
cert_out = $TMP/cert.pem
${4:-}"
}
# certs_on TOKEN [LABEL]: the certificates labelled LABEL (enrolled-key;
# the CA certificates stored beside them not counted); keys_on: the
# private keys
certs_on() {
	_c=$(objects "$1" cert) || { echo unreadable; return 1; }
	printf '%s\n' "$_c" | grep -c -x "[[:space:]]*label:[[:space:]]*${2:-enrolled-key}"
}
keys_on() {
	_c=$(objects "$1" privkey) || { echo unreadable; return 1; }
	if [ -n "${2:-}" ]; then
		printf '%s\n' "$_c" | grep -c -x "[[:space:]]*label:[[:space:]]*$2"
	else
		printf '%s\n' "$_c" | grep -c '^Private Key Object'
	fi
}
# no_secrets FILE|DIR...: no PIN, MAC secret or mail password in any of them
no_secrets() {
	! grep -r -q -F -e "$USER_PIN" -e "$CMP_SECRET" -e "$MAIL_PASS" "$@"
}
# ca_mail [ARGS...]: the test CA answering the mails of its Maildir
ca_mail() {
	start_ca --mail "$MAIL_DIR/ca" --mail-smtp "$MAIL_SMTP_URL" --mail-from "$MAIL_CA_ADDR" \
		"$@" || bail_out "the test CA did not start"
}
# req_mail TID N: the CA's copy of request mail N of transaction TID
req_mail() {
	grep -l -x "Subject: CMP $1 $2" "$MAIL_DIR"/ca/new/* "$MAIL_DIR"/ca/cur/* 2> /dev/null |
		head -n 1
}
# req_tid: the transactionID of the newest request mail the CA got
req_tid() {
	ls -t "$MAIL_DIR"/ca/new/* "$MAIL_DIR"/ca/cur/* 2> /dev/null | head -n 1 |
		xargs sed -n 's/^Subject: CMP \([0-9a-f]*\) [0-9]*$/\1/p'
}
# body FILE: a mail's body (after the first empty line)
body() {
	tr -d '\r' < "$1" | sed '1,/^$/d'
}
head_of() {
	tr -d '\r' < "$1" | sed '/^$/q'
}
spool_tid() {
	ls -t "$SPOOL" | sed -n 's/^\([0-9a-f]*\)\.1\.req\.der$/\1/p' | head -n 1
}

# --- ir over SMTP and IMAP; the request mail as RFC 2510 5.3 has it -------------
ca_mail
TOK=mail
make_token "$TOK" || exit 1
mail_conf "$TOK" "$MAIL_SMTP_URL" "$MAIL_IMAP_URL"
p11e enroll test
check "/mail/ir/imap/exit-0" expect_rc 0
check "/mail/ir/imap/cert-on-token" test "$(certs_on "$TOK")" = 1
check "/mail/ir/imap/one-key" test "$(keys_on "$TOK")" = 1
check "/mail/ir/imap/cert-verifies" eval '"$OPENSSL_BIN" verify -CAfile "$TMP/ca/root.pem" \
	-untrusted "$TMP/ca/ca.pem" "$TMP/cert.pem" > /dev/null'
check "/mail/ir/imap/ca-saw-ir" grep -q 'ir -> ip accepted' "$TMP/ca.log"
check "/mail/ir/imap/ca-saw-certconf" grep -q 'certConf -> pkiconf' "$TMP/ca.log"
tid=$(req_tid)
req=$(req_mail "$tid" 1)
check "/mail/request/mailed" test -n "$req"
check "/mail/request/from" eval 'head_of "$req" | grep -q -x "From: $MAIL_CLIENT_ADDR"'
check "/mail/request/to" eval 'head_of "$req" | grep -q -x "To: $MAIL_CA_ADDR"'
check "/mail/request/tid-header" eval 'head_of "$req" | grep -q -x "X-CMP-Transaction-ID: $tid"'
check "/mail/request/message-id" eval 'head_of "$req" |
	grep -q -x "Message-ID: <$tid\.1\.[0-9a-f]\{16\}@test\.invalid>"'
check "/mail/request/content-type" eval 'head_of "$req" |
	grep -q -x "Content-Type: application/pkixcmp"'
check "/mail/request/base64" eval 'head_of "$req" |
	grep -q -x "Content-Transfer-Encoding: base64"'
check "/mail/request/mime-version" eval 'head_of "$req" | grep -q -x "MIME-Version: 1.0"'
check "/mail/request/date" eval 'head_of "$req" | grep -q "^Date: [A-Z][a-z][a-z], [0-9][0-9] "'
check "/mail/request/lines-of-76" eval '! body "$req" | grep -q ".\{77\}"'
check "/mail/request/is-the-pkimessage" eval 'body "$req" | "$OPENSSL_BIN" base64 -d |
	"$OPENSSL_BIN" asn1parse -inform DER | grep -q -i "HEX DUMP\]:$tid\$"'
check "/mail/request/certconf-is-2" test -n "$(req_mail "$tid" 2)"
check "/mail/ir/imap/answers-consumed" test "$(mail_count client)" = 0
check "/mail/ir/imap/no-secret" no_secrets "$TMP/out" "$TMP/err" "$MAIL_DIR"

# --- kur over SMTPS and POP3S (the login over TLS on both) ------------------------
cp "$TMP/cert.pem" "$TMP/old.pem"
mail_conf "$TOK" "$MAIL_SMTPS_URL" "$MAIL_POP3S_URL"
p11e renew test
check "/mail/kur/pop3s/exit-0" expect_rc 0
check "/mail/kur/pop3s/ca-saw-kur" grep -q 'kur -> kup accepted' "$TMP/ca.log"
check "/mail/kur/pop3s/new-cert" sh -c "! cmp -s '$TMP/cert.pem' '$TMP/old.pem'"
check "/mail/kur/pop3s/one-key" test "$(keys_on "$TOK")" = 1
check "/mail/kur/pop3s/answers-consumed" test "$(mail_count client)" = 0
check "/mail/kur/smtps/auth" grep -q '^auth PLAIN ok$' "$TMP/mail/smtpd.log"

# --- genm over IMAPS: application/x-pkixcmp, named by In-Reply-To alone -----------
ca_mail --mail-ctype application/x-pkixcmp --mail-fault no-subject-tid
mail_conf "$TOK" "$MAIL_SMTP_URL" "$MAIL_IMAPS_URL"
p11e genm test --ca-certs "$TMP/cacerts.pem"
check "/mail/genm/x-pkixcmp/exit-0" expect_rc 0
check "/mail/genm/x-pkixcmp/two-certs" test "$(grep -c 'BEGIN CERTIFICATE' "$TMP/cacerts.pem")" = 2
check "/mail/genm/x-pkixcmp/consumed" test "$(mail_count client)" = 0
# genm again, the inbox over imap:// with STARTTLS required (dovecot offers it),
# the CA's answer by SMTPS
ca_mail --mail-smtp "$MAIL_SMTPS_URL" --mail-cacert "$MAIL_CACERT"
mail_conf "$TOK" "$MAIL_SMTPS_URL" "$MAIL_IMAP_URL" "mail_starttls = yes"
p11e genm test --ca-certs "$TMP/cacerts.pem"
check "/mail/genm/imap-starttls/exit-0" expect_rc 0
check "/mail/genm/imap-starttls/consumed" test "$(mail_count client)" = 0

# --- rr over POP3: application/x-pkixcmp-poll in a multipart/mixed -------------------
ca_mail --mail-ctype application/x-pkixcmp-poll --mail-multipart
mail_conf "$TOK" "$MAIL_SMTP_URL" "$MAIL_POP3_URL"
p11e revoke test --reason superseded
check "/mail/rr/multipart/exit-0" expect_rc 0
check "/mail/rr/multipart/ca-revoked" test -s "$TMP/ca/revoked"
check "/mail/rr/multipart/consumed" test "$(mail_count client)" = 0

# --- no answer within store_wait: saved (exit 9), resume reads it later ---------
start_ca || exit 1
TOK2=mail-late
make_token "$TOK2" || exit 1
STORE_WAIT=1 mail_conf "$TOK2" "$MAIL_SMTP_URL" "$MAIL_IMAP_URL"
STATE=$(pending_file "$TOK2")
p11e enroll test
check "/mail/late/exit-9" expect_rc 9
check "/mail/late/says-where" grep_err "stored in a mail to the CA \\(its answer awaited in $MAIL_IMAP_URL\\)"
check "/mail/late/says-resume" grep_err "the ir went in a mail to the CA, its answer awaited in $MAIL_IMAP_URL, the transaction saved"
check "/mail/late/pending-saved" test -f "$STATE"
check "/mail/late/key-kept" test "$(keys_on "$TOK2")" = 1
check "/mail/late/no-cert" test "$(certs_on "$TOK2")" = 0
ca_mail
p11e resume --store-wait "$(scaled 20)" test
check "/mail/late/resume-exit-0" expect_rc 0
check "/mail/late/cert-stored" test "$(certs_on "$TOK2")" = 1
check "/mail/late/pending-gone" test ! -e "$STATE"
check "/mail/late/consumed" test "$(mail_count client)" = 0

# --- the CA's faults ------------------------------------------------------------------
# Every answer twice: the first copy is used, the second stays and is
# reported while the next answer is awaited; a resume finds nothing to do.
ca_mail --mail-fault dup
TOK3=mail-stray
make_token "$TOK3" || exit 1
mail_conf "$TOK3" "$MAIL_SMTP_URL" "$MAIL_IMAP_URL" "label = dup"
p11e enroll test
check "/mail/dup/exit-0" expect_rc 0
check "/mail/dup/one-cert" test "$(certs_on "$TOK3" dup)" = 1
check "/mail/dup/reported" grep_err "left alone: it answers another message"
wait_for 10 test "$(mail_count client)" = 2
check "/mail/dup/copies-left" test "$(mail_count client)" = 2
cp "$TMP/cert.pem" "$TMP/dup.pem"
p11e resume test
check "/mail/dup/resume-nothing-pending" expect_rc 2
check "/mail/dup/cert-unchanged" cmp -s "$TMP/cert.pem" "$TMP/dup.pem"
check "/mail/dup/still-one-cert" test "$(certs_on "$TOK3" dup)" = 1
# Subject and X-CMP-Transaction-ID of another transaction, In-Reply-To
# naming our request: the headers only choose which mails are read, the
# PKIMessage (ours, protected) decides, and it is used.
ca_mail --mail-fault wrong-tid
before=$(mail_count client)
mail_conf "$TOK3" "$MAIL_SMTP_URL" "$MAIL_IMAP_URL" "label = wrong-tid"
p11e enroll test
check "/mail/wrong-tid-headers/exit-0" expect_rc 0
check "/mail/wrong-tid-headers/consumed" test "$(mail_count client)" = "$before"
# base64 of no DER: reported, left in the inbox; the wait goes on to exit 9
ca_mail --mail-fault garbage
mail_conf "$TOK3" "$MAIL_SMTP_URL" "$MAIL_POP3S_URL" "label = garbage"
STORE_WAIT=$(scaled 3)
p11e enroll test
STORE_WAIT=$(scaled 20)
check "/mail/garbage/exit-9" expect_rc 9
check "/mail/garbage/reported" grep_err "skipped.*its CMP part is not one DER PKIMessage"
check "/mail/garbage/left" test "$(mail_count client)" = $((before + 1))
check "/mail/garbage/key-kept" test "$(keys_on "$TOK3" 'garbage (new)')" = 1

# --- stray mails of the tests' gateway --------------------------------------------
# A CMP part that is not base64, and no real answer: reported, exit 9.
start_ca --spool "$SPOOL" || exit 1
relay garbage only-faults
TOK4=mail-broken
make_token "$TOK4" || exit 1
STORE_WAIT=$(scaled 2) mail_conf "$TOK4" "$MAIL_SMTP_URL" "$MAIL_POP3_URL"
before=$(mail_count client)
p11e enroll test
check "/mail/broken/exit-9" expect_rc 9
check "/mail/broken/says-skipped" grep_err "1 mail in $MAIL_POP3_URL skipped.*not valid base64"
check "/mail/broken/left" test "$(mail_count client)" = $((before + 1))
check "/mail/broken/key-kept" test "$(keys_on "$TOK4")" = 1
# Before each real answer, one wholly of another transaction (not ours:
# left, not reported), one carrying the answer of another transaction
# (the one above) under our headers, one whose CMP part passes the
# response size limit and one larger than a mail may be (each left and
# reported).
RELAY_OTHER=$SPOOL/$(spool_tid).1.rsp.der relay wrongtid othertid bigpart huge
TOK5=mail-stray2
make_token "$TOK5" || exit 1
mail_conf "$TOK5" "$MAIL_SMTP_URL" "$MAIL_IMAP_URL" "max_response_size = 8192"
before=$(mail_count client)
p11e enroll test
check "/mail/stray/exit-0" expect_rc 0
check "/mail/stray/one-cert" test "$(certs_on "$TOK5")" = 1
check "/mail/stray/othertid-reported" \
	grep_err "left alone: its PKIMessage has another transactionID"
check "/mail/stray/bigpart-reported" \
	grep_err "left alone: the CMP part is larger than the response size limit of 8192 bytes"
check "/mail/stray/huge-reported" grep_err "left alone: it is larger than 81920 bytes"
check "/mail/stray/others-left" eval 'test "$(mail_count client)" = $((before + 8)) ||
	{ echo "# $(mail_count client) mails left, $before before"; false; }'
relay_stop

# --- the inbox's server down while the answer is awaited: the wait goes on ------
# The request went out; an inbox that cannot be read now may be read
# later: exit 9 with the transaction saved, and resume reads the answer.
ca_mail
TOK8=mail-down
make_token "$TOK8" || exit 1
STORE_WAIT=$(scaled 2) mail_conf "$TOK8" "$MAIL_SMTP_URL" "$MAIL_IMAPS_URL"
mail_stop_dovecot
p11e enroll test
check "/mail/inbox-down/exit-9" expect_rc 9
check "/mail/inbox-down/says" grep_err "$MAIL_IMAPS_URL could not be read just now"
check "/mail/inbox-down/key-kept" test "$(keys_on "$TOK8")" = 1
mail_restart_dovecot || bail_out "dovecot did not start again"
p11e resume --store-wait "$(scaled 20)" test
check "/mail/inbox-down/resume-exit-0" expect_rc 0
check "/mail/inbox-down/cert-stored" test "$(certs_on "$TOK8")" = 1

# --- the agent renews over mailto: -------------------------------------------------
# A certificate valid for 60 s with renew_at = 1d: due at once.
ca_mail --validity-seconds "$(scaled 60)"
TOK6=mail-agent
make_token "$TOK6" || exit 1
mail_conf "$TOK6" "$MAIL_SMTPS_URL" "$MAIL_IMAPS_URL" "renew_at = 1d
state_dir = $TMP/state-ag"
before=$(mail_count client)
p11e enroll test
check "/mail/agent/enrolled" expect_rc 0
cp "$TMP/cert.pem" "$TMP/ag-old.pem"
: > "$TMP/ca.log"
agent_start "$TMP/p11enroll.conf" "$TMP/agent.log" || exit 1
wait_for 60 grep -q 'kur -> kup accepted' "$TMP/ca.log"
check "/mail/agent/renewed-kur" grep -q 'kur -> kup accepted' "$TMP/ca.log"
wait_for 30 sh -c "! cmp -s '$TMP/cert.pem' '$TMP/ag-old.pem'"
check "/mail/agent/new-cert-out" sh -c "! cmp -s '$TMP/cert.pem' '$TMP/ag-old.pem'"
agent_stop "$APID"
check "/mail/agent/stopped-0" test "$ARC" -eq 0
check "/mail/agent/one-key" test "$(keys_on "$TOK6")" = 1
check "/mail/agent/consumed" test "$(mail_count client)" = "$before"
check "/mail/agent/no-secret" no_secrets "$TMP/agent.log"

# --- failures: nothing stored, nothing left on the token -----------------------
TOK7=mail-fail
make_token "$TOK7" || exit 1
set -- $(mail_free_ports 1)
mail_conf "$TOK7" "smtp://127.0.0.1:$1" "$MAIL_IMAP_URL"
p11e enroll test
check "/mail/fault/smtp-down/exit-5" expect_rc 5
check "/mail/fault/smtp-down/says" \
	grep_err "sending the mail to $MAIL_CA_ADDR by smtp://127.0.0.1:$1: cannot connect"
check "/mail/fault/smtp-down/token-empty" test "$(count_objects "$TOK7")" -eq 0
check "/mail/fault/smtp-down/nothing-pending" test ! -e "$(pending_file "$TOK7")"

printf 'wrong-mail-password-%s\n' "$$" > "$TMP/badpass"
PASSFILE=$TMP/badpass mail_conf "$TOK7" "$MAIL_SMTP_URL" "$MAIL_IMAP_URL"
p11e enroll test
check "/mail/fault/imap-password/exit-5" expect_rc 5
check "/mail/fault/imap-password/says" grep_err "the server refused the login.*mail_password_source"
check "/mail/fault/imap-password/not-shown" \
	sh -c "! grep -q -F 'wrong-mail-password' '$TMP/out' '$TMP/err'"
check "/mail/fault/imap-password/token-empty" test "$(count_objects "$TOK7")" -eq 0
PASSFILE=$TMP/badpass mail_conf "$TOK7" "$MAIL_SMTPS_URL" "$MAIL_IMAP_URL"
before=$(mail_count ca)
p11e enroll test
check "/mail/fault/smtps-password/exit-5" expect_rc 5
check "/mail/fault/smtps-password/nothing-mailed" test "$(mail_count ca)" = "$before"
check "/mail/fault/smtps-password/not-shown" \
	sh -c "! grep -q -F 'wrong-mail-password' '$TMP/out' '$TMP/err'"

TLS_TRUSTED=$TMP/ca/root.pem mail_conf "$TOK7" "$MAIL_SMTPS_URL" "$MAIL_IMAP_URL"
p11e enroll test
check "/mail/fault/smtps-untrusted/exit-5" expect_rc 5
check "/mail/fault/smtps-untrusted/says" grep_err "TLS server verification failed.*tls_trusted"
TLS_TRUSTED=$TMP/ca/root.pem mail_conf "$TOK7" "$MAIL_SMTP_URL" "$MAIL_IMAPS_URL"
p11e enroll test
check "/mail/fault/imaps-untrusted/exit-5" expect_rc 5
check "/mail/fault/imaps-untrusted/says" \
	grep_err "looking for the answer in $MAIL_IMAPS_URL: TLS server verification failed"
mail_conf "$TOK7" "$MAIL_SMTP_URL" "$MAIL_IMAP_URL" "mail_starttls = yes"
p11e enroll test
check "/mail/fault/no-starttls/exit-5" expect_rc 5
check "/mail/fault/no-starttls/says" grep_err "does not offer STARTTLS"
check "/mail/fault/token-empty" test "$(count_objects "$TOK7")" -eq 0

# --- the configuration: what a mailto: server needs ---------------------------------
write_conf "$TOK7" "server = mailto:$MAIL_CA_ADDR
mail_from = $MAIL_CLIENT_ADDR"
p11e check-config
check "/mail/config/missing-exit-2" expect_rc 2
check "/mail/config/missing-named" grep_err "missing: smtp_server, mail_inbox"
mail_conf "$TOK7" "$MAIL_SMTP_URL" "imap://client:$MAIL_PASS@127.0.0.1/INBOX"
p11e check-config
check "/mail/config/userinfo-exit-2" expect_rc 2
check "/mail/config/userinfo-says" grep_err "take no user or password in the URL"
check "/mail/config/userinfo-not-echoed" sh -c "! grep -q -F '$MAIL_PASS' '$TMP/out' '$TMP/err'"
write_conf "$TOK7" "server = mailto:$MAIL_CA_ADDR
mail_from = $MAIL_CLIENT_ADDR
smtp_server = $MAIL_SMTP_URL
mail_inbox = $MAIL_IMAP_URL
mail_user = $MAIL_USER"
p11e check-config
check "/mail/config/user-without-password" grep_err "mail_user is set without mail_password_source"

# --- the CA answers "waiting": pollReq and pollRep go as mails 2, 3... ---------------
ca_mail --poll 1
TOK8=mail-poll
make_token "$TOK8" || exit 1
mail_conf "$TOK8" "$MAIL_SMTP_URL" "$MAIL_IMAP_URL"
: > "$TMP/ca.log"
p11e enroll test
check "/mail/poll/exit-0" expect_rc 0
check "/mail/poll/polled" grep -q "pollReq" "$TMP/ca.log"
check "/mail/poll/cert-stored" test "$(certs_on "$TOK8")" = 1
stop_ca

# --- nothing secret left anywhere ---------------------------------------------------
check "/mail/no-secret/maildirs" no_secrets "$MAIL_DIR"
check "/mail/no-secret/logs" no_secrets "$TMP/relay.log" "$TMP/ca.log" "$TMP/ca.err" \
	"$TMP/mail/smtpd.log"
check "/mail/no-secret/spool" no_secrets "$SPOOL"

finish
