#!/bin/sh
# /agentrr: revoke_replaced under the agent, with a CA that refuses the rr
# for the certificate a renewal replaced.  The renewal is a success (valid,
# renewals + 1, the success hook; no ir although bootstrap = yes), status
# warns that the replaced certificate is not revoked yet, and the agent
# retries the revocation (check --recover) with the retry backoff until
# the CA takes it: then the "(to revoke)" pair is gone and so is the
# warning, without a second renewal.  The transitions alone are tests of
# agent/fsm.c (tests/unit/test-fsm.c, /fsm/.../unrevoked-*).
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
. "$top_srcdir/tests/agent-lib.sh"
need_tools
need_cmd python3
setup
plan 26
trap 'kill_agents; cleanup' EXIT
trap 'exit 1' HUP PIPE
TOK=agentrr
make_token "$TOK" || exit 1
C=$TMP/p11enroll.conf
ALOG=$TMP/agent.log
TOREVOKE='enrolled-key \(to revoke\)'

serial_of() {
	"$OPENSSL_BIN" x509 -in "$1" -noout -serial | sed 's/^serial=//'
}

# revoked_in_log SERIAL_FILE REASON: the test CA revoked that certificate
# for that reason, asked with its own key.
revoked_in_log() {
	grep -q -i "rr: revoked serial 0*$(serial_of "$1") reason $2 protection own-key" \
		"$TMP/ca.log"
}

# logged REGEX: the agent's log has a line matching it.
logged() {
	[ "$(in_log "$ALOG" "$1")" -gt 0 ]
}

start_ca --fault reject=notAuthorized --fault-on rr --fault-when "$TMP/refuse-rr" || exit 1
cat > "$TMP/hook.sh" << EOF
#!/bin/sh
echo "\$P11ENROLL_EVENT \$P11ENROLL_CERT_SERIAL" >> "$TMP/hook.log"
EOF
chmod 700 "$TMP/hook.sh"
# retry_min = 1s: the retries of the revocation come within seconds
write_conf "$TOK" "revoke_replaced = yes
bootstrap = yes
retry_min = 1s
hook_success = $TMP/hook.sh
hook_failure = $TMP/hook.sh"
p11e enroll test --cert-out "$TMP/one.pem"
check "/agentrr/setup/enrolled" expect_rc 0
issued=$(ca_issued)

touch "$TMP/refuse-rr"
agent_start "$C" "$ALOG" || exit 1
check "/agentrr/setup/valid" wait_for 30 is "$C" test state valid

# --- the renewal: the rr for the replaced certificate is refused --------------
pe "$C" renew test
# the exit code of the rr, as the command gives it, and what is left to do
check "/agentrr/renew/exit-6" expect_rc 6
check "/agentrr/renew/says-renewed" grep -q \
	'test: renew done; the replaced certificate .* is not revoked yet: .*notAuthorized' "$TMP/err"
check "/agentrr/renew/by-the-agent" logged 'test: renew done'
# valid once the look after it is done (a look shows as working)
check "/agentrr/renew/valid" wait_for 30 is "$C" test state valid
check "/agentrr/renew/renewals-1" is "$C" test renewals 1
check "/agentrr/renew/no-failure" is "$C" test consecutive_failures 0
warned() {
	jget "$C" test last_error |
		grep -q "replaced certificate .* is not revoked yet: .*notAuthorized.*; retried in"
}
check "/agentrr/renew/warning" warned
check "/agentrr/renew/success-hook" wait_for 30 grep -q '^renewed ' "$TMP/hook.log"
check "/agentrr/renew/one-certificate" test "$(ca_issued)" -eq $((issued + 1))
check "/agentrr/renew/no-ir" sh -c "! grep -q 'test: enroll started' '$ALOG'"
check "/agentrr/renew/pair-waits" test "$(label_count "$TOK" "$TOREVOKE")" -eq 3

# --- retried with backoff while the CA refuses --------------------------------
# attempts 2 and 3 are the agent's retries (after 1 s, then 2 s)
check "/agentrr/retry/repeated" wait_for 60 logged 'is not revoked yet: .*\(attempt 3\)'
# the renewal's rr, then each retry's: the steps' own words
check "/agentrr/retry/by-the-steps" \
	test "$(in_log "$ALOG" 'is not revoked; its key pair stays')" -ge 3
check "/agentrr/retry/still-valid" wait_for 30 is "$C" test state valid
check "/agentrr/retry/still-warns" warned

# a renewal asked for meanwhile waits for the revocation: a renew would
# send the rr first, and request nothing while the CA refuses it
pe "$C" renew test
check "/agentrr/retry/renew-refused-for-now" expect_rc 11
check "/agentrr/retry/renew-says-why" grep -q 'test: not renewed: .*is not revoked yet' "$TMP/err"
check "/agentrr/retry/no-request" test "$(ca_issued)" -eq $((issued + 1))

# --- the fault is lifted: the next retry revokes it ----------------------------
: > "$TMP/ca.log"
rm -f "$TMP/refuse-rr"
check "/agentrr/revoked/warning-gone" wait_for 120 is "$C" test last_error ""
check "/agentrr/revoked/at-the-ca" revoked_in_log "$TMP/one.pem" 4
check "/agentrr/revoked/pair-deleted" test "$(label_count "$TOK" "$TOREVOKE")" -eq 0
check "/agentrr/revoked/logged" logged 'test: no replaced certificate waits'
check "/agentrr/revoked/no-second-renewal" test "$(ca_issued)" -eq $((issued + 1))
check "/agentrr/revoked/renewals-1" is "$C" test renewals 1
agent_stop "$APID"
finish
