#!/bin/sh
# /spool: server = file:///DIR, a spool directory the CA serves (here the
# test CA's --spool mode).  Each message is one DER PKIMessage in
# DIR/<tid>.<n>.req.der, its answer DIR/<tid>.<n>.rsp.der; with the CA
# answering, an enrollment finishes in one run; with none, it waits
# store_wait, saves the transaction (exit 9), and `resume` reads the answer
# when it has come.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
setup
plan 24

SPOOL="$TMP/spool"
mkdir "$SPOOL"
count() {
	ls "$SPOOL" | grep -c -e "$1"
}

# --- the CA answers: one run, ir/ip and certConf/pkiConf as files ----------------
TOK=spool-sync
make_token "$TOK" || exit 1
start_ca --spool "$SPOOL" || exit 1
write_conf "$TOK" "server = file://$SPOOL
store_wait = $(scaled 30)"
p11e enroll test
check "/spool/sync/exit-0" expect_rc 0
check "/spool/sync/cert-stored" test "$(kind enrolled-key Certificate)" = 1
tid=$(ls "$SPOOL" | sed -n 's/^\([0-9a-f]*\)\.1\.req\.der$/\1/p')
check "/spool/sync/request-named-by-tid" test -n "$tid"
check "/spool/sync/answer-1" test -s "$SPOOL/$tid.1.rsp.der"
check "/spool/sync/certconf-2" test -s "$SPOOL/$tid.2.req.der"
check "/spool/sync/pkiconf-2" test -s "$SPOOL/$tid.2.rsp.der"
check "/spool/sync/one-pkimessage" "$OPENSSL_BIN" asn1parse -inform DER -in "$SPOOL/$tid.1.req.der" -noout
check "/spool/sync/no-temp-left" test "$(count '^\.')" = 0
check "/spool/sync/nothing-pending" test "$(pending_count)" = 0
check "/spool/sync/no-secret" no_secret_in "$SPOOL"/*

# --- nobody answers: exit 9 after store_wait, resume when the answer came ---------
stop_ca
rm -f "$SPOOL"/*
TOK=spool-late
make_token "$TOK" || exit 1
start_ca || exit 1
write_conf "$TOK" "server = file://$SPOOL
store_wait = 1"
STATE=$(pending_file "$TOK")
p11e enroll test
check "/spool/late/exit-9" expect_rc 9
check "/spool/late/pending-saved" test -f "$STATE"
check "/spool/late/store-seq" grep -q '^store_seq 1$' "$STATE"
check "/spool/late/key-kept" test "$(kind 'enrolled-key (new)' 'Private Key')" = 1
# resume before the answer: still waiting, nothing changes
cp "$STATE" "$TMP/state.before"
p11e resume test
check "/spool/late/resume-early-exit-9" expect_rc 9
check "/spool/late/resume-early-says" grep_err "no answer yet"
check "/spool/late/resume-early-key-kept" test "$(kind 'enrolled-key (new)' 'Private Key')" = 1
# now the CA serves the directory
start_ca --spool "$SPOOL" || exit 1
tid=$(ls "$SPOOL" | sed -n 's/^\([0-9a-f]*\)\.1\.req\.der$/\1/p')
check "/spool/late/ca-answered" wait_for 30 test -f "$SPOOL/$tid.1.rsp.der"
p11e resume --store-wait "$(scaled 30)" test
check "/spool/late/resume-exit-0" expect_rc 0
check "/spool/late/cert-stored" test "$(kind enrolled-key Certificate)" = 1
check "/spool/late/pending-gone" test ! -e "$STATE"
check "/spool/late/certconf-2" test -s "$SPOOL/$tid.2.req.der"
# the same answer again: nothing waits for it
p11e resume test
check "/spool/late/again-refused" expect_rc 2
# a template that is no file name is refused, nothing made
write_conf "$TOK" "server = file://$SPOOL
store_request_name = ../%t.req
replace = yes"
p11e enroll test
check "/spool/template/slash-refused" grep_err "store_request_name"
finish
