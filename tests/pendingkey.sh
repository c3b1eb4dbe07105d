#!/bin/sh
# /pendingkey: pending transactions and locks belong to a label on a token
# (STATE_DIR/pending/LABEL@SERIAL.pending and .lock), not to the enrollment
# name.  One enrollment section whose token URI matches both SoftHSM2
# tokens (a badge station's template, each run given its card by --token):
# the CA keeps card A's ir waiting; card B enrolls with the same name and
# label all the same; A's request stays, and comes back (and completes) when
# A is named again.  The same card and label twice at once: exit 11; another
# card or another label at that moment: not blocked.  Two cards waiting
# under one name and label: resume takes the one of the token present.  An
# earlier version's STATE_DIR/NAME.pending is found, moved to its token's
# file once the token is known, and resumed.
#
# The CA holds one waiting request at a time, so the cards that must not
# wait talk to a second test CA on the same directory (same root, its own
# port; --server), and the concurrent runs to a third that holds their ir
# (--hang-on ir).
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
setup
plan 44
A=pk-a
B=pk-b
LABEL=enrolled-key
EXTRA_PIDS=
trap 'for p in $EXTRA_PIDS; do kill "$p" 2> /dev/null && wait "$p" 2> /dev/null; done; cleanup' EXIT

# extra_ca NAME ARGS...: another test CA on $TMP/ca (its log $TMP/NAME.log);
# sets EXTRA_URL and EXTRA_PID.
extra_ca() {
	_n=$1
	shift
	"$TESTCA" --dir "$TMP/ca" --port 0 --ref "$CMP_REF" --secret-file "$TMP/secret" \
		--log "$TMP/$_n.log" --quiet "$@" > "$TMP/$_n.out" 2> "$TMP/$_n.err" &
	EXTRA_PID=$!
	EXTRA_PIDS="$EXTRA_PIDS $EXTRA_PID"
	wait_for 30 grep -q '^port [0-9]' "$TMP/$_n.out" ||
		{ echo "# test CA $_n did not start"; sed 's/^/#   /' "$TMP/$_n.err"; exit 1; }
	EXTRA_URL="http://127.0.0.1:$(sed -n 's/^port \([0-9][0-9]*\)$/\1/p' "$TMP/$_n.out")/.well-known/cmp"
}

# on TOKEN ARGS...: p11enroll ARGS on that token.
on() {
	_t=$1
	shift
	p11e "$@" --token "pkcs11:token=$_t"
}

field_of() {
	sed -n "s/^$2 //p" "$1"
}

DELIVER="$TMP/deliver"
make_token "$A" || exit 1
make_token "$B" || exit 1
start_ca --poll 3600 --deliver-when "$DELIVER" || exit 1
write_conf "$A" "token = pkcs11:model=SoftHSM%20v2"
extra_ca now
NOW_URL=$EXTRA_URL
PA=$(pending_file "$A")
PB=$(pending_file "$B")

# --- card A: the CA answers "waiting" ---------------------------------------------------
on "$A" enroll test
check "/pendingkey/a/waiting-exit-9" expect_rc 9
check "/pendingkey/a/file-of-token-and-label" test -f "$PA"
check "/pendingkey/a/file-names-enrollment" test "$(field_of "$PA" enrollment)" = test -a \
	"$(field_of "$PA" label)" = "$LABEL" -a "$(field_of "$PA" token_label)" = "$A"
check "/pendingkey/a/no-file-by-name" test ! -e "$TMP/state/test.pending"

# --- card B, same enrollment and label: not blocked --------------------------------------
on "$B" enroll test --server "$NOW_URL"
check "/pendingkey/b/enrolled-exit-0" expect_rc 0
check "/pendingkey/b/cert-stored" test -n "$(label_id "$B" cert "$LABEL")" -a \
	"$(label_id "$B" cert "$LABEL")" = "$(label_id "$B" privkey "$LABEL")"
check "/pendingkey/b/nothing-pending" test ! -e "$PB"
check "/pendingkey/a/still-pending" test -f "$PA"
check "/pendingkey/a/new-key-kept" test "$(label_count "$A" "$LABEL \\(new\\)")" -eq 2
on "$A" enroll test --server "$NOW_URL"
check "/pendingkey/a/new-request-refused-exit-2" expect_rc 2
check "/pendingkey/a/new-request-names-resume" grep_err 'pending ir on this token.*p11enroll resume test'

# what the agent and status see: per token
on "$A" check test
check "/pendingkey/check/a-pending" grep -q -x 'pending=ir' "$TMP/out"
on "$B" check test
check "/pendingkey/check/b-not-pending" sh -c "! grep -q '^pending=' '$TMP/out'"

# --- the same card and label at once: busy; another card or label: not ------------------
extra_ca hang --hang-on ir --hang-count 1
HANG_URL=$EXTRA_URL HANG_PID=$EXTRA_PID
"$P11ENROLL" -c "$TMP/p11enroll.conf" enroll test --token "pkcs11:token=$B" --label held \
	--server "$HANG_URL" --timeout "$(scaled 300)" --total-timeout "$(scaled 600)" \
	> "$TMP/first.out" 2> "$TMP/first.err" &
FIRST=$!
EXTRA_PIDS="$EXTRA_PIDS $FIRST"
check "/pendingkey/lock/first-holds" wait_for 60 grep -q 'hang: ir received' "$TMP/hang.log"
on "$B" enroll test --label held --server "$NOW_URL"
check "/pendingkey/lock/same-card-label-exit-11" expect_rc 11
check "/pendingkey/lock/names-holder" grep_err "process $FIRST\\b.*working on 'test' on this token \\(held@"
on "$A" enroll test --label held --server "$NOW_URL"
check "/pendingkey/lock/other-card-exit-0" expect_rc 0
on "$B" enroll test --label other --server "$NOW_URL"
check "/pendingkey/lock/other-label-exit-0" expect_rc 0
kill "$HANG_PID"
wait "$HANG_PID" 2> /dev/null
check "/pendingkey/lock/first-ends" wait_for 120 gone "$FIRST"
wait "$FIRST" 2> /dev/null
check "/pendingkey/lock/first-exit-5" test $? -eq 5

# --- card A again: resumed, completed ---------------------------------------------------
: > "$DELIVER"
on "$A" resume test
check "/pendingkey/a/resume-exit-0" expect_rc 0
check "/pendingkey/a/enrolled" grep -q '^enrolled test' "$TMP/out"
check "/pendingkey/a/cert-with-key" test -n "$(label_id "$A" cert "$LABEL")" -a \
	"$(label_id "$A" cert "$LABEL")" = "$(label_id "$A" privkey "$LABEL")"
check "/pendingkey/a/file-removed" test ! -e "$PA"
check "/pendingkey/a/delivered-by-poll" grep -q 'pollReq: delivering' "$TMP/ca.log"

# --- two cards waiting under one name and label: each resumed on its own token ---------
rm -f "$DELIVER"
on "$A" enroll test --label two
extra_ca hold2 --poll 3600 --deliver-when "$TMP/deliver2"
HOLD2_URL=$EXTRA_URL
on "$B" enroll test --label two --server "$HOLD2_URL"
check "/pendingkey/two/both-waiting" test -f "$(pending_file "$A" two)" -a \
	-f "$(pending_file "$B" two)"
# without --label: none under the configured label, two under another
on "$B" resume test --server "$HOLD2_URL"
check "/pendingkey/two/no-label-exit-2" expect_rc 2
check "/pendingkey/two/no-label-asks-for-it" grep_err 'has 2 pending transactions.*--label'
: > "$TMP/deliver2"
on "$B" resume test --label two --server "$HOLD2_URL"
check "/pendingkey/two/b-resumed-exit-0" expect_rc 0
check "/pendingkey/two/b-done-a-kept" test ! -e "$(pending_file "$B" two)" -a \
	-f "$(pending_file "$A" two)"
on "$A" resume --abandon test --label two
check "/pendingkey/two/a-abandoned-exit-0" expect_rc 0
check "/pendingkey/two/a-file-removed" test ! -e "$(pending_file "$A" two)"
check "/pendingkey/two/a-key-removed" test "$(label_count "$A" "two \\(new\\)")" -eq 0

# --- upgrade: an earlier version's STATE_DIR/NAME.pending --------------------------------
# made as that version wrote it: the file by name, without the fields
# that name the token and the label
OLD="$TMP/state/test.pending"
old_file() {
	mv "$(pending_file "$A" "$1")" "$OLD" &&
		sed -i -E '/^(token_label|token_model|token_manufacturer|enrollment|label) /d' "$OLD"
}
rm -f "$DELIVER"
on "$A" enroll test --label up
old_file up || exit 1
on "$B" check test --label up
check "/pendingkey/upgrade/other-token-not-its" sh -c "! grep -q '^pending=' '$TMP/out'"
check "/pendingkey/upgrade/other-token-leaves-it" test -f "$OLD"
: > "$DELIVER"
on "$A" resume test --label up
check "/pendingkey/upgrade/resume-exit-0" expect_rc 0
check "/pendingkey/upgrade/enrolled" test -n "$(label_id "$A" cert up)" -a \
	"$(label_id "$A" cert up)" = "$(label_id "$A" privkey up)"
check "/pendingkey/upgrade/no-file-left" test ! -e "$OLD" -a "$(pending_count)" -eq 0

rm -f "$DELIVER"
on "$A" enroll test --label up2
old_file up2 || exit 1
on "$A" check test --label up2
check "/pendingkey/upgrade/check-sees-it" grep -q -x 'pending=ir' "$TMP/out"
check "/pendingkey/upgrade/check-moved-it" test ! -e "$OLD" -a \
	"$(field_of "$(pending_file "$A" up2)" enrollment)" = test
on "$A" enroll test --label up2
check "/pendingkey/upgrade/moved-still-refuses-exit-2" expect_rc 2
on "$A" resume --abandon test --label up2
check "/pendingkey/upgrade/abandoned-exit-0" expect_rc 0
check "/pendingkey/upgrade/abandoned-nothing-left" test "$(pending_count)" -eq 0 -a \
	"$(label_count "$A" "up2 \\(new\\)")" -eq 0

check "/pendingkey/no-secret" no_secret_in "$TMP/out" "$TMP/err" "$TMP/first.err"
finish
