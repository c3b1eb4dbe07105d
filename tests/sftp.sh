#!/bin/sh
# /sftp: server = sftp:// and scp://, a spool directory on an SSH server
# (OpenSSH's sshd, tests/ssh-lib.sh) that the test CA serves (--spool):
# ir, kur, genm and rr end to end with a key and with a key under a
# passphrase, a transaction saved while the CA does not answer and
# finished by resume; the host key checked against known_hosts only (a
# changed or unknown key refused before anything is sent), a key the
# server does not take, a wrong passphrase, the server down.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
. "${top_srcdir:-$(dirname "$0")/..}/tests/ssh-lib.sh"
. "${top_srcdir:-$(dirname "$0")/..}/tests/rspool-lib.sh"
. "${top_srcdir:-$(dirname "$0")/..}/tests/agent-lib.sh"
need_tools
setup
trap 'kill_agents; cleanup' EXIT
ssh_need
plan 101
T=sftp
# libssh2 1.10 leaks while it loads an ECDSA key under a passphrase
# (tests/ssh-lsan.supp); full stacks, so that only its leaks are matched
if sanitized; then
	LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$top_srcdir/tests/ssh-lsan.supp"
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0"
	export LSAN_OPTIONS ASAN_OPTIONS
fi
SECRETS="$SSH_PP wrong-passphrase-93ac"
ssh_keys > "$TMP/ssh-keys.log" 2>&1 || { cat "$TMP/ssh-keys.log"; exit 1; }
ssh_start || exit 1
ssh_known_hosts "$TMP/known_hosts"
SPOOL=$TMP/sspool
mkdir "$SPOOL"
SFTP_URL="sftp://$SSH_USER@127.0.0.1:$SSH_PORT$SPOOL/"
SCP_URL="scp://$SSH_USER@127.0.0.1:$SSH_PORT$SPOOL/"
KEY_CONF="store_ssh_key = $TMP/ssh/id
store_known_hosts = $TMP/known_hosts"
PP_CONF="store_ssh_key = $TMP/ssh/id-pp
store_ssh_passphrase_source = file:$TMP/ssh/pp
store_known_hosts = $TMP/known_hosts"

# --- the exchanges ----------------------------------------------------------------
rspool_cycle sftp "server = $SFTP_URL
$KEY_CONF"
rspool_wait sftp "server = $SFTP_URL
$KEY_CONF"
rspool_cycle scp "server = $SCP_URL
$PP_CONF"
rspool_wait scp "server = $SCP_URL
$PP_CONF"

# --- the agent renews over sftp:// ------------------------------------------------
# A certificate valid for 60 s with renew_at = 1d: due at once.
start_ca --spool "$SPOOL" --validity-seconds "$(scaled 60)" || exit 1
make_token "$T-agent" || exit 1
write_conf "$T-agent" "server = $SFTP_URL
$KEY_CONF
store_wait = $(scaled 30)
cert_out = $TMP/ag.pem
renew_at = 1d
state_dir = $TMP/state-ag"
p11e enroll test
check "/sftp/agent/enrolled" expect_rc 0
cp "$TMP/ag.pem" "$TMP/ag-old.pem"
agent_start "$TMP/p11enroll.conf" "$TMP/agent.log" || exit 1
wait_for 60 sh -c "! cmp -s '$TMP/ag.pem' '$TMP/ag-old.pem'"
check "/sftp/agent/renewed" sh -c "! cmp -s '$TMP/ag.pem' '$TMP/ag-old.pem'"
agent_stop "$APID"
check "/sftp/agent/stopped-0" test "$ARC" -eq 0
check "/sftp/agent/one-key" test "$(privkeys "$T-agent")" -eq 1
check "/sftp/agent/no-secret" no_store_secret "$TMP/agent.log" "$TMP/state-ag"

# --- the host key -------------------------------------------------------------------
fp=$(ssh-keygen -l -f "$TMP/ssh/host.pub" | cut -d ' ' -f 2 | sed 's/[+.]/\\&/g')
ssh_known_hosts "$TMP/changed_hosts" "$TMP/ssh/other-host"
before=$(ls -A "$SPOOL" | wc -l)
logins=$(grep -c 'Accepted publickey' "$TMP/ssh/sshd.log")
rspool_fails changed-key 5 "host key of \[127.0.0.1\]:$SSH_PORT \(ssh-ed25519 $fp\) differs" \
	"server = $SFTP_URL
store_ssh_key = $TMP/ssh/id
store_known_hosts = $TMP/changed_hosts"
check "/sftp/changed-key/says-what-to-do" grep_err "ssh-keyscan -p $SSH_PORT 127.0.0.1"
check "/sftp/changed-key/nothing-stored" test "$(ls -A "$SPOOL" | wc -l)" = "$before"
check "/sftp/changed-key/no-login" \
	test "$(grep -c 'Accepted publickey' "$TMP/ssh/sshd.log")" = "$logins"
printf '[127.0.0.1]:1 %s\n' "$(cut -d ' ' -f 1,2 "$TMP/ssh/host.pub")" > "$TMP/other_hosts"
rspool_fails unknown-key 5 "host key of \[127.0.0.1\]:$SSH_PORT \(ssh-ed25519 $fp\) is not in" \
	"server = $SCP_URL
store_ssh_key = $TMP/ssh/id
store_known_hosts = $TMP/other_hosts"
check "/sftp/unknown-key/nothing-stored" test "$(ls -A "$SPOOL" | wc -l)" = "$before"

# hashed host names (ssh-keyscan -H, HashKnownHosts) match too
cp "$TMP/known_hosts" "$TMP/hashed_hosts"
ssh-keygen -q -H -f "$TMP/hashed_hosts" > /dev/null 2>&1
rm -f "$TMP/hashed_hosts.old"
write_conf "$T-sftp" "server = $SFTP_URL
store_ssh_key = $TMP/ssh/id
store_known_hosts = $TMP/hashed_hosts"
p11e genm test --ca-certs "$TMP/hashed-cacerts.pem"
check "/sftp/hashed-known-hosts/is-hashed" grep -q '^|1|' "$TMP/hashed_hosts"
check "/sftp/hashed-known-hosts/exit-0" expect_rc 0

# --- the SSH agent's key (store_ssh_agent, no key file) ---------------------------
eval "$(ssh-agent -s -a "$TMP/ssh/agent.sock")" > /dev/null
ssh-add "$TMP/ssh/id" > /dev/null 2>&1
write_conf "$T-sftp" "server = $SFTP_URL
store_ssh_agent = yes
store_known_hosts = $TMP/known_hosts"
p11e genm test --ca-certs "$TMP/agent-cacerts.pem"
check "/sftp/ssh-agent/exit-0" expect_rc 0
check "/sftp/ssh-agent/ca-certs" grep -q 'BEGIN CERTIFICATE' "$TMP/agent-cacerts.pem"
ssh-add -D > /dev/null 2>&1
p11e genm test --ca-certs "$TMP/agent-cacerts2.pem"
check "/sftp/ssh-agent/empty-agent-refused" expect_rc 5
kill "$SSH_AGENT_PID" 2> /dev/null
unset SSH_AUTH_SOCK SSH_AGENT_PID

# --- the login ---------------------------------------------------------------------
rspool_fails key-not-taken 5 "refused the login" "server = $SFTP_URL
store_ssh_key = $TMP/ssh/other-host
store_known_hosts = $TMP/known_hosts"
printf 'wrong-passphrase-93ac\n' > "$TMP/wrong-pp"
rspool_fails wrong-passphrase 5 "refused the login" "server = $SFTP_URL
store_ssh_key = $TMP/ssh/id-pp
store_ssh_passphrase_source = file:$TMP/wrong-pp
store_known_hosts = $TMP/known_hosts"

# --- the configuration --------------------------------------------------------------
rspool_fails no-known-hosts 2 "cannot read the SSH host keys $TMP/nowhere" "server = $SFTP_URL
store_ssh_key = $TMP/ssh/id
store_known_hosts = $TMP/nowhere"
# the default: ~/.ssh/known_hosts of the user
mkdir -p "$TMP/home/.ssh"
cp "$TMP/known_hosts" "$TMP/home/.ssh/known_hosts"
write_conf "$T-sftp" "server = $SFTP_URL
store_ssh_key = $TMP/ssh/id"
HOME=$TMP/home p11e genm test --ca-certs "$TMP/home-cacerts.pem"
check "/sftp/default-known-hosts/exit-0" expect_rc 0
rm "$TMP/home/.ssh/known_hosts"
HOME=$TMP/home p11e check-config
check "/sftp/default-known-hosts/missing-exit-2" expect_rc 2
check "/sftp/default-known-hosts/missing-says" grep_err "$TMP/home/.ssh/known_hosts"
write_conf "$T-sftp" "server = sftp://$SSH_USER:pw@127.0.0.1:$SSH_PORT$SPOOL/
$KEY_CONF"
p11e check-config
check "/sftp/password-in-url/exit-2" expect_rc 2
check "/sftp/password-in-url/says" grep_err "carries a password"
check "/sftp/password-in-url/not-shown" sh -c "! grep -q ':pw@' '$TMP/err' '$TMP/out'"

# --- down ---------------------------------------------------------------------------
ssh_stop
rspool_fails down 5 "cannot connect" "server = $SFTP_URL
$KEY_CONF"
check "/sftp/server-log-no-secret" no_store_secret "$TMP/ssh/sshd.log" "$TMP/ca.log"
