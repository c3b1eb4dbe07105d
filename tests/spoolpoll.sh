#!/bin/sh
# /spoolpoll: over a spool directory (file:///), the exchanges the other
# spool tests leave out: a CA that answers "waiting" (pollReq and pollRep
# go as messages 2, 3... of the transaction, in the run and after a
# resume), cr signed by the certificate on the token, and p10cr.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
setup
plan 21

SPOOL=$TMP/spool
mkdir "$SPOOL"
TOK=spoolpoll
make_token "$TOK" || exit 1
STATE=$(pending_file "$TOK")
# msgs N: how many request files of message number N the spool holds
msgs() {
	ls "$SPOOL" | grep -c "^[0-9a-f]*\.$1\.req\.der$"
}

# --- the CA answers "waiting", delivers 1 s later: polled within the run -------
start_ca --spool "$SPOOL" --poll 1 || exit 1
write_conf "$TOK" "server = file://$SPOOL
store_wait = $(scaled 30)"
: > "$TMP/ca.log"
p11e enroll test
check "/spoolpoll/in-run/exit-0" expect_rc 0
check "/spoolpoll/in-run/cert-stored" test "$(kind enrolled-key Certificate)" = 1
check "/spoolpoll/in-run/polled" grep -q "pollReq" "$TMP/ca.log"
# ir, then at least one pollReq, then the certConf: three numbers or more
check "/spoolpoll/in-run/numbered" test "$(msgs 3)" -ge 1
check "/spoolpoll/in-run/nothing-pending" test ! -e "$STATE"

# --- waiting longer than the run: saved, resumed, polled as the next message ----
start_ca --spool "$SPOOL" --poll 3600 --deliver-when "$TMP/deliver" || exit 1
rm -f "$SPOOL"/*
write_conf "$TOK" "server = file://$SPOOL
store_wait = $(scaled 30)
total_timeout = $(scaled 5)"
p11e enroll --replace test
check "/spoolpoll/saved/exit-9" expect_rc 9
check "/spoolpoll/saved/pending" test -f "$STATE"
check "/spoolpoll/saved/key-kept" test "$(kind 'enrolled-key (new)' 'Private Key')" = 1
check "/spoolpoll/saved/one-request" test "$(msgs 1)" = 1
touch "$TMP/deliver"
p11e resume test
check "/spoolpoll/resumed/exit-0" expect_rc 0
check "/spoolpoll/resumed/polled-as-next" test "$(msgs 2)" = 1
check "/spoolpoll/resumed/one-key" test "$(kind enrolled-key 'Private Key')" = 1
check "/spoolpoll/resumed/one-cert" test "$(kind enrolled-key Certificate)" = 1
check "/spoolpoll/resumed/no-new-key-left" test "$(kind 'enrolled-key (new)' 'Private Key')" = 0
check "/spoolpoll/resumed/nothing-pending" test ! -e "$STATE"

# --- cr signed by the certificate on the token, and p10cr -----------------------
start_ca --spool "$SPOOL" || exit 1
write_conf "$TOK" "server = file://$SPOOL
store_wait = $(scaled 30)"
: > "$TMP/ca.log"
p11e cr test --signer enrolled-key --label by-cr
check "/spoolpoll/cr/exit-0" expect_rc 0
check "/spoolpoll/cr/sent-cr" grep -q ' cr -> cp' "$TMP/ca.log"
check "/spoolpoll/cr/stored" test "$(label_count "$TOK" by-cr)" -eq 3
p11e p10cr test --label by-p10cr
check "/spoolpoll/p10cr/exit-0" expect_rc 0
check "/spoolpoll/p10cr/sent-p10cr" grep -q ' p10cr -> cp' "$TMP/ca.log"
check "/spoolpoll/p10cr/stored" test "$(label_count "$TOK" by-p10cr)" -eq 3
