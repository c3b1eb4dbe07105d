#!/bin/sh
# /tcp: CMP over TCP (server = tcp://host:port; RFC 2510 5.2, the drafts'
# version 10 framing) against the test CA's TCP listener (--tcp): ir, kur,
# rr and genm with the certificate on the token, RFC 2510's form, the
# TCP-level polling, every broken frame, a server that is down, a stop
# while waiting, a "waiting" transaction resumed later, the agent renewing;
# no certificate and no key left behind by a failure.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
. "$top_srcdir/tests/agent-lib.sh"
need_tools
setup
trap 'kill_agents; cleanup' EXIT
plan 71

# tcp_ca [ARGS...]: the test CA speaking CMP over TCP; CA_URL is tcp://.
tcp_ca() {
	start_ca --tcp "$@" || return 1
	CA_URL="tcp://127.0.0.1:$CA_PORT"
}

certs_on() {
	_c=$(objects "$1" cert) || { echo unreadable; return 1; }
	printf '%s\n' "$_c" | grep -c '^Certificate Object'
}

tcp_ca || exit 1
TOK=tcp
make_token "$TOK" || exit 1
write_conf "$TOK" "cert_out = $TMP/cert.pem"

# --- the exchanges ------------------------------------------------------
p11e enroll test
check "/tcp/ir/exit-0" expect_rc 0
check "/tcp/ir/cert-on-token" test "$(certs_on "$TOK")" -ge 1
check "/tcp/ir/key-on-token" \
	test "$(objects "$TOK" privkey | grep -c '^Private Key Object')" -eq 1
check "/tcp/ir/ca-saw-ir" grep -q 'ir -> ip accepted' "$TMP/ca.log"
check "/tcp/ir/ca-saw-certconf" grep -q 'certConf -> pkiconf' "$TMP/ca.log"
check "/tcp/ir/cert-verifies" "$OPENSSL_BIN" verify -CAfile "$TMP/ca/root.pem" \
	-untrusted "$TMP/ca/ca.pem" "$TMP/cert.pem"
check "/tcp/ir/no-secret" no_secret_in "$TMP/out" "$TMP/err" "$TMP/ca.log"
cp "$TMP/cert.pem" "$TMP/old.pem"

p11e renew test
check "/tcp/kur/exit-0" expect_rc 0
check "/tcp/kur/ca-saw-kur" grep -q 'kur -> kup accepted' "$TMP/ca.log"
check "/tcp/kur/new-cert" sh -c "! cmp -s '$TMP/cert.pem' '$TMP/old.pem'"
check "/tcp/kur/one-key" test "$(objects "$TOK" privkey | grep -c '^Private Key Object')" -eq 1

p11e genm test --ca-certs "$TMP/cacerts.pem"
check "/tcp/genm/exit-0" expect_rc 0
check "/tcp/genm/two-certs" test "$(grep -c 'BEGIN CERTIFICATE' "$TMP/cacerts.pem")" -eq 2

p11e revoke test --reason superseded
check "/tcp/rr/exit-0" expect_rc 0
check "/tcp/rr/ca-revoked" test -s "$TMP/ca/revoked"

# --- what other implementations send --------------------------------------
# RFC 2510's own form (length, type, value), and TCP-level polling: a
# pollRep, then the pollReq with its reference on the same connection, or
# on a new one when the pollRep closes it.
TOK2=tcp2
make_token "$TOK2" || exit 1
for v in "rfc2510:--tcp-fault rfc2510" "poll:--tcp-poll 1" \
	"poll-close:--tcp-poll 1 --tcp-poll-close" "poll-rfc2510:--tcp-poll 1 --tcp-fault rfc2510"; do
	name=${v%%:*}
	# shellcheck disable=SC2086 # the CA's arguments, split on purpose
	tcp_ca ${v#*:} || exit 1
	write_conf "$TOK2" "label = $name"
	p11e enroll test
	check "/tcp/$name/exit-0" expect_rc 0
	check "/tcp/$name/cert-on-token" test "$(label_count "$TOK2" "$name")" -eq 3
done
check "/tcp/poll/ca-saw-pollreq" grep -q 'pollReq 1: delivering' "$TMP/ca.log"

# --- broken frames and servers: a clear error, nothing left ---------------
TOK3=tcpf
make_token "$TOK3" || exit 1
# tcp_fault NAME EXIT PATTERN CA_ARGS...
tcp_fault() {
	name=$1 want=$2 pat=$3
	shift 3
	tcp_ca "$@" || { not_ok "/tcp/fault/$name/ca-start"; return; }
	write_conf "$TOK3" "timeout = $(scaled 5)
total_timeout = $(scaled 10)"
	p11e enroll test
	check "/tcp/fault/$name/exit-$want" expect_rc "$want"
	check "/tcp/fault/$name/says-why" grep_err "$pat"
	check "/tcp/fault/$name/token-empty" test "$(count_objects "$TOK3")" -eq 0
}
tcp_fault truncated 5 'truncated frame: [0-9]+ of [0-9]+ bytes' --tcp-fault truncated-frame
tcp_fault garbage 7 'not CMP over TCP: the frame has version 47' --tcp-fault garbage-frame
tcp_fault wrong-version 7 'the frame has version 9' --tcp-fault wrong-version
tcp_fault oversize 5 'larger than the limit of [0-9]+ bytes' --tcp-fault oversize-length
tcp_fault error-msg 5 "errorMsgRep\\): 'the test CA refuses this request" --tcp-fault error-msg
tcp_fault wrong-tid 7 '[Tt]ransaction' --fault wrong-tid
tcp_fault check-back-late 5 'check back in 3600 s, after the timeout' --tcp-poll 3600
# no answer at all: the message timeout ends the wait
tcp_fault no-answer 5 'no complete response within [0-9]+ s' --hang-on ir
# server down: nothing listens on the port any more
stop_ca
p11e enroll test
check "/tcp/fault/down/exit-5" expect_rc 5
check "/tcp/fault/down/says-why" grep_err 'cannot connect: .*CMP over TCP'
check "/tcp/fault/down/token-empty" test "$(count_objects "$TOK3")" -eq 0

# --- a stop while waiting: in the TCP-level polling and in recv ---------
# SIGTERM goes through the same handler as Ctrl-C (SIGINT), which a shell's
# background job ignores (tests/progress.sh sends a real Ctrl-C on a pty).
for v in "poll-wait:--tcp-poll 60:pollRep 1" "recv-wait:--fault slow=60:POST / ir"; do
	name=${v%%:*}
	rest=${v#*:}
	# shellcheck disable=SC2086
	tcp_ca ${rest%%:*} || exit 1
	: > "$TMP/ca.log"
	write_conf "$TOK3" "timeout = $(scaled 120)
total_timeout = $(scaled 120)"
	"$P11ENROLL" -c "$TMP/p11enroll.conf" enroll test > "$TMP/out" 2> "$TMP/err" &
	pid=$!
	wait_for 20 grep -q -e "${rest#*:}" "$TMP/ca.log"
	kill -TERM "$pid"
	wait "$pid"
	RC=$?
	check "/tcp/stop/$name/exit-130" expect_rc 130
	check "/tcp/stop/$name/token-empty" test "$(count_objects "$TOK3")" -eq 0
done

# --- CMP-level "waiting", saved, and resumed by a later process ---------
TOK5=tcpres
make_token "$TOK5" || exit 1
rm -f "$TMP/deliver"
tcp_ca --poll 3600 --deliver-when "$TMP/deliver" || exit 1
write_conf "$TOK5" "label = res"
p11e enroll test
check "/tcp/resume/waiting-exit-9" expect_rc 9
check "/tcp/resume/state-saved" test -f "$(pending_file "$TOK5" res)"
: > "$TMP/deliver"
p11e resume test
check "/tcp/resume/exit-0" expect_rc 0
check "/tcp/resume/polled" grep -q 'pollReq -> ip accepted' "$TMP/ca.log"
check "/tcp/resume/cert-stored" test "$(label_count "$TOK5" res)" -eq 3
check "/tcp/resume/state-removed" test ! -e "$(pending_file "$TOK5" res)"

# --- the agent renews over tcp:// -----------------------------------------
# A certificate valid for 60 s with renew_at = 1d: due at once (plus a
# jitter of at most 5% of the lifetime).
tcp_ca --validity-seconds "$(scaled 60)" || exit 1
TOK4=tcpag
make_token "$TOK4" || exit 1
write_conf "$TOK4" "cert_out = $TMP/ag.pem
renew_at = 1d
state_dir = $TMP/state-ag"
p11e enroll test
check "/tcp/agent/enrolled" expect_rc 0
cp "$TMP/ag.pem" "$TMP/ag-old.pem"
: > "$TMP/ca.log"
agent_start "$TMP/p11enroll.conf" "$TMP/agent.log" || exit 1
wait_for 60 grep -q 'kur -> kup accepted' "$TMP/ca.log"
check "/tcp/agent/renewed-kur" grep -q 'kur -> kup accepted' "$TMP/ca.log"
wait_for 30 sh -c "! cmp -s '$TMP/ag.pem' '$TMP/ag-old.pem'"
check "/tcp/agent/new-cert-out" sh -c "! cmp -s '$TMP/ag.pem' '$TMP/ag-old.pem'"
agent_stop "$APID"
check "/tcp/agent/stopped-0" test "$ARC" -eq 0
check "/tcp/agent/one-key" test "$(objects "$TOK4" privkey | grep -c '^Private Key Object')" -eq 1

# Ctrl-C on a terminal in the TCP-level polling wait
tcp_ca --tcp-poll 60 || exit 1
write_conf "$TOK3" "timeout = $(scaled 120)
total_timeout = $(scaled 120)"
python3 "$top_srcdir/tests/ptyrun.py" --log "$TMP/pty" --timeout "$(scaled 60)" \
	"expect:check back in 60 s" "send:\\x03" -- \
	"$P11ENROLL" -c "$TMP/p11enroll.conf" -v enroll test 2> "$TMP/ptyrun.err"
RC=$?
check "/tcp/stop/ctrl-c/exit-130" expect_rc 130
check "/tcp/stop/ctrl-c/says" grep -q -F 'interrupted (SIGINT)' "$TMP/pty"
check "/tcp/stop/ctrl-c/token-empty" test "$(count_objects "$TOK3")" -eq 0

# --- configuration ------------------------------------------------------
tcp_ca || exit 1
write_conf "$TOK3" "server = tcp://127.0.0.1:$CA_PORT/some/path
label = cfg"
p11e enroll test
check "/tcp/config/path-refused-exit-2" expect_rc 2
check "/tcp/config/path-refused-says" grep_err 'tcp://host\[:port\]'
finish
