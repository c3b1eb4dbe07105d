#!/bin/sh
# /spoolops: every exchange over the store-and-forward transports.  Over
# server = file:///DIR with the test CA serving DIR (--spool): ir, kur, rr
# and genm end to end, the certificate on the token; an rr and a genm whose
# answer comes late are saved (STATE_DIR/NAME.rr, NAME.genm; exit 9) and
# the same command reads the answer once the CA is there.  Offline: revoke
# and genm --request-out FILE, the file carried to the CA, --response-in
# ANSWER.  The agent renews through the spool, and a renewal whose answer
# is outstanding survives a restart of the agent (the CA serves the spool
# only after the restart).  No PIN or secret is left in any file.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
. "$top_srcdir/tests/agent-lib.sh"
need_tools
need_cmd curl
setup
trap 'kill_agents; cleanup' EXIT
plan 81

SPOOL="$TMP/spool"
mkdir "$SPOOL"
# certs: the certificates on the token
certs() {
	_c=$(objects "$TOK" cert) || { echo unreadable; return 1; }
	printf '%s\n' "$_c" | grep -c '^Certificate Object'
}
serial_of() {
	"$OPENSSL_BIN" x509 -in "$1" -noout -serial | sed 's/^serial=//'
}
# revoked_at_ca PEM: the test CA recorded the certificate's revocation
revoked_at_ca() {
	grep -q -i "rr: revoked serial 0*$(serial_of "$1") " "$TMP/ca.log"
}
# carry IN OUT: the CA's answer to the DER message IN, into OUT (a relay).
carry() {
	curl -s -f -o "$2" -H 'Content-Type: application/pkixcmp' --data-binary "@$1" "$CA_URL"
}
spool_conf() {
	write_conf "$TOK" "server = file://$SPOOL
store_wait = $1
cert_out = $TMP/cert.pem
$2"
}

# --- ir, kur, genm, rr through the spool, the CA answering --------------------------
TOK=ops-sync
make_token "$TOK" || exit 1
start_ca --spool "$SPOOL" || exit 1
spool_conf "$(scaled 30)"
p11e enroll test
check "/spoolops/ir/exit-0" expect_rc 0
check "/spoolops/ir/cert-on-token" test "$(kind enrolled-key Certificate)" = 1
check "/spoolops/ir/key-on-token" test "$(kind enrolled-key 'Private Key')" = 1
cp "$TMP/cert.pem" "$TMP/ir.pem"
p11e renew test
check "/spoolops/kur/exit-0" expect_rc 0
check "/spoolops/kur/ca-kur" grep -q 'kur -> kup accepted' "$TMP/ca.log"
check "/spoolops/kur/one-cert" test "$(kind enrolled-key Certificate)" = 1
check "/spoolops/kur/one-key" test "$(kind enrolled-key 'Private Key')" = 1
check "/spoolops/kur/new-cert" sh -c "! cmp -s '$TMP/cert.pem' '$TMP/ir.pem'"
p11e genm test --ca-certs "$TMP/cacerts.pem" --store
check "/spoolops/genm/exit-0" expect_rc 0
check "/spoolops/genm/two-certs" test "$(grep -c 'BEGIN CERTIFICATE' "$TMP/cacerts.pem")" -eq 2
check "/spoolops/genm/stored-on-token" test "$(certs)" -eq 3
p11e revoke test
check "/spoolops/rr/exit-0" expect_rc 0
check "/spoolops/rr/says-revoked" grep -q '^revoked test' "$TMP/out"
check "/spoolops/rr/ca-revoked" revoked_at_ca "$TMP/cert.pem"
p11e revoke test
check "/spoolops/rr/again-cert-revoked" expect_rc 6
check "/spoolops/rr/again-says" grep_err 'certRevoked'
check "/spoolops/sync/nothing-saved" test "$(ls "$TMP/state" | grep -c -E '\.(rr|genm)$')" = 0
check "/spoolops/sync/one-pkimessage-a-file" sh -c "for f in '$SPOOL'/*.der; do
	[ ! -s \"\$f\" ] || '$OPENSSL_BIN' asn1parse -inform DER -in \"\$f\" -noout || exit 1; done"

# --- rr and genm whose answer comes late: saved, read by the same command ----------
stop_ca
: > "$TMP/ca.log"
TOK=ops-late
make_token "$TOK" || exit 1
start_ca --spool "$SPOOL" || exit 1
spool_conf "$(scaled 30)"
p11e enroll test
check "/spoolops/late/enrolled" expect_rc 0
start_ca || exit 1
spool_conf 1
p11e revoke test
check "/spoolops/late/rr-exit-9" expect_rc 9
check "/spoolops/late/rr-says-how" grep_err 'p11enroll revoke test` reads the CA'
check "/spoolops/late/rr-saved" grep -q '^store_seq 1$' "$TMP/state/test.rr"
p11e revoke test
check "/spoolops/late/rr-still-9" expect_rc 9
check "/spoolops/late/rr-still-no-answer" grep_err 'no answer yet'
p11e revoke --request-out "$TMP/other-rr.der" test
check "/spoolops/late/rr-second-refused" expect_rc 2
check "/spoolops/late/rr-second-says" grep_err 'is stored for the CA and waits'
check "/spoolops/late/rr-second-not-written" test ! -e "$TMP/other-rr.der"
p11e genm test --ca-certs "$TMP/late-ca.pem"
check "/spoolops/late/genm-exit-9" expect_rc 9
check "/spoolops/late/genm-saved" test -f "$TMP/state/test.genm"
p11e genm test --crls "$TMP/late.crl"
check "/spoolops/late/genm-other-ask-refused" expect_rc 2
check "/spoolops/late/genm-other-ask-says" grep_err 'asks ca-certs, not crls'
check "/spoolops/late/no-revocation-yet" sh -c "! grep -q 'rr: revoked' '$TMP/ca.log'"
start_ca --spool "$SPOOL" || exit 1
spool_conf "$(scaled 30)"
p11e revoke test
check "/spoolops/late/rr-exit-0" expect_rc 0
check "/spoolops/late/rr-ca-revoked" revoked_at_ca "$TMP/cert.pem"
check "/spoolops/late/rr-one-rr-at-ca" test "$(grep -c 'rr: revoked' "$TMP/ca.log")" = 1
check "/spoolops/late/rr-record-gone" test ! -e "$TMP/state/test.rr"
p11e genm test --ca-certs "$TMP/late-ca.pem"
check "/spoolops/late/genm-exit-0" expect_rc 0
check "/spoolops/late/genm-certs" test "$(grep -c 'BEGIN CERTIFICATE' "$TMP/late-ca.pem")" -eq 2
check "/spoolops/late/genm-record-gone" test ! -e "$TMP/state/test.genm"

# --- offline: revoke and genm --request-out, then --response-in ----------------------
: > "$TMP/ca.log"
TOK=ops-off
make_token "$TOK" || exit 1
write_conf "$TOK" "cert_out = $TMP/off.pem"
p11e enroll test
check "/spoolops/offline/enrolled" expect_rc 0
p11e revoke --request-out "$TMP/rr.der" test
check "/spoolops/offline/rr-exit-9" expect_rc 9
check "/spoolops/offline/rr-says-how" grep_err 'revoke --response-in ANSWER test'
check "/spoolops/offline/rr-one-pkimessage" \
	"$OPENSSL_BIN" asn1parse -inform DER -in "$TMP/rr.der" -noout
check "/spoolops/offline/rr-not-at-ca" sh -c "! grep -q 'rr: revoked' '$TMP/ca.log'"
p11e revoke test
check "/spoolops/offline/rr-no-second" expect_rc 2
check "/spoolops/offline/rr-no-second-says" grep_err 'revoke --response-in ANSWER test'
p11e revoke --request-out "$TMP/rr.der" --response-in "$TMP/rp.der" test
check "/spoolops/offline/rr-not-both" expect_rc 2
carry "$TMP/rr.der" "$TMP/rp.der" || echo "# curl failed"
p11e revoke --response-in "$TMP/rp.der" test
check "/spoolops/offline/rr-exit-0" expect_rc 0
check "/spoolops/offline/rr-ca-revoked" revoked_at_ca "$TMP/off.pem"
check "/spoolops/offline/rr-record-gone" test ! -e "$TMP/state/test.rr"
check "/spoolops/offline/rr-cert-kept" test "$(kind enrolled-key Certificate)" = 1
p11e genm --ca-certs "$TMP/off-ca.pem" --request-out "$TMP/genm.der" test
check "/spoolops/offline/genm-exit-9" expect_rc 9
check "/spoolops/offline/genm-nothing-written" test ! -e "$TMP/off-ca.pem"
carry "$TMP/genm.der" "$TMP/genp.der" || echo "# curl failed"
p11e genm --ca-certs "$TMP/off-ca.pem" --store --response-in "$TMP/genp.der" test
check "/spoolops/offline/genm-exit-0" expect_rc 0
check "/spoolops/offline/genm-certs" test "$(grep -c 'BEGIN CERTIFICATE' "$TMP/off-ca.pem")" -eq 2
check "/spoolops/offline/genm-on-token" test "$(certs)" -eq 3
# --abandon forgets a stored rr; nothing is sent
p11e revoke --request-out "$TMP/rr2.der" test
check "/spoolops/offline/rr2-exit-9" expect_rc 9
p11e revoke --abandon test
check "/spoolops/offline/abandon-exit-0" expect_rc 0
check "/spoolops/offline/abandon-record-gone" test ! -e "$TMP/state/test.rr"
p11e revoke --abandon test
check "/spoolops/offline/abandon-twice-2" expect_rc 2

# --- the agent: renews through the spool; an answer outstanding over a restart -------
stop_ca
TOK=ops-agent
make_token "$TOK" || exit 1
rm -f "$SPOOL"/*
start_ca --spool "$SPOOL" --validity-seconds "$(scaled 60)" || exit 1
write_conf "$TOK" "server = file://$SPOOL
store_wait = $(scaled 30)
cert_out = $TMP/ag.pem
renew_at = 1d
state_dir = $TMP/state-ag"
p11e enroll test
check "/spoolops/agent/enrolled" expect_rc 0
cp "$TMP/ag.pem" "$TMP/ag-0.pem"
: > "$TMP/ca.log"
agent_start "$TMP/p11enroll.conf" "$TMP/agent.log" || exit 1
check "/spoolops/agent/renewed-kur" wait_for 60 grep -q 'kur -> kup accepted' "$TMP/ca.log"
check "/spoolops/agent/new-cert-out" wait_for 30 sh -c "! cmp -s '$TMP/ag.pem' '$TMP/ag-0.pem'"
agent_stop "$APID"
check "/spoolops/agent/stopped-0" test "$ARC" -eq 0
check "/spoolops/agent/one-key" test "$(kind enrolled-key 'Private Key')" = 1
# the CA away: the next renewal's kur waits in the spool
stop_ca
cp "$TMP/ag.pem" "$TMP/ag-1.pem"
sed -i "s|^store_wait = .*|store_wait = 1|" "$TMP/p11enroll.conf"
agent_start "$TMP/p11enroll.conf" "$TMP/agent2.log" || exit 1
check "/spoolops/agent/pending" wait_for 60 is "$TMP/p11enroll.conf" test pending true
check "/spoolops/agent/kur-in-spool" test "$(ls "$SPOOL" | grep -c '\.req\.der$')" -ge 1
agent_stop "$APID"
check "/spoolops/agent/pending-kept-over-stop" test "$(pending_count "$TMP/state-ag")" -eq 1
check "/spoolops/agent/new-key-kept" test "$(kind 'enrolled-key (new)' 'Private Key')" = 1
# restarted, and only then the CA serves the spool
sed -i "s|^store_wait = .*|store_wait = $(scaled 30)|" "$TMP/p11enroll.conf"
agent_start "$TMP/p11enroll.conf" "$TMP/agent3.log" || exit 1
start_ca --spool "$SPOOL" --validity-seconds "$(scaled 60)" || exit 1
check "/spoolops/agent/restart-finished" wait_for 60 sh -c "! cmp -s '$TMP/ag.pem' '$TMP/ag-1.pem'"
check "/spoolops/agent/restart-kur" grep -q 'kur -> kup accepted' "$TMP/ca.log"
check "/spoolops/agent/restart-not-pending" wait_for 20 is "$TMP/p11enroll.conf" test pending false
agent_stop "$APID"
check "/spoolops/agent/restart-stopped-0" test "$ARC" -eq 0
check "/spoolops/agent/restart-no-pending-file" test "$(pending_count "$TMP/state-ag")" -eq 0
check "/spoolops/agent/restart-one-key" test "$(kind enrolled-key 'Private Key')" = 1
check "/spoolops/agent/restart-one-cert" test "$(kind enrolled-key Certificate)" = 1
check "/spoolops/agent/restart-no-new-key" test "$(kind 'enrolled-key (new)' 'Private Key')" = 0

# --- no PIN, MAC secret or password in any file left behind ---------------------------
check "/spoolops/no-secret/spool" no_secret_in "$SPOOL"/*
check "/spoolops/no-secret/state" sh -c "! grep -r -q -F -e '$USER_PIN' -e '$CMP_SECRET' \
	'$TMP/state' '$TMP/state-ag'"
check "/spoolops/no-secret/outputs" no_secret_in "$TMP"/*.der "$TMP/out" "$TMP/err" \
	"$TMP"/agent*.log
# anywhere in the test's directory but the PIN and secret files themselves
# and the token store
check "/spoolops/no-secret/anywhere" sh -c "! grep -r -l -F -e '$USER_PIN' -e '$CMP_SECRET' \
	--exclude=pin --exclude=secret --exclude-dir=tokens '$TMP'"
finish
