#!/bin/sh
# /progress: long waits are shown on a terminal, and Ctrl-C undoes what a
# request started.  p11enroll runs on a pseudo-terminal (tests/ptyrun.py),
# which waits for what the terminal shows, writes Ctrl-C (\x03: the line
# discipline sends SIGINT) and holds a token call through tests/p11wrap
# (P11WRAP_HOLD: a slow token) until the test lets it go on.  Nothing here
# waits a fixed time: the CA hangs (--hang-on) or polls for an hour, the
# client's own timeouts are longer than the test's, and every step waits
# for an event.  Without a terminal, and with -q, no progress text appears.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
need_cmd python3
WRAP="$top_builddir/tests/p11wrap/p11wrap.so"
need_file "$WRAP"
setup
plan 69
export P11WRAP_MODULE="$SOFTHSM2_MODULE"
LOG="$TMP/calls.log"
GO="$TMP/go"
# the hang guard of each run on the terminal: a Ctrl-C that is not obeyed
# fails the run with 124 after it
LIMIT=$(scaled 60)

# fresh TOKEN CA_ARGS...: a new token, the CA started with CA_ARGS, the
# configuration through p11wrap; the client would wait for hours.
fresh() {
	TOK=$1
	shift
	make_token "$TOK" || exit 1
	rm -f "$TMP/ca.log" "$GO" "$GO.held"
	rm -rf "$TMP/ca"
	start_ca "$@" || exit 1
	wrapped_conf
}

# wrapped_conf: the configuration for $TOK and the CA as it runs now,
# through p11wrap; the client would wait for hours.
wrapped_conf() {
	write_conf "$TOK" "timeout = 3600
total_timeout = 7200"
	sed -i "s|^module = .*|module = $WRAP|" "$TMP/p11enroll.conf"
	: > "$LOG"
}

# on_pty STEP... -- ARGS...: p11enroll ARGS on a pseudo-terminal, the
# steps as tests/ptyrun.py takes them; RC its exit code, $TMP/pty all the
# terminal showed.
on_pty() {
	_steps=
	while [ "$1" != "--" ]; do
		_steps="$_steps$1
"
		shift
	done
	shift
	printf '%s' "$_steps" > "$TMP/steps"
	_old_ifs=$IFS
	IFS='
'
	# shellcheck disable=SC2086
	env P11WRAP_LOG="$LOG" python3 "$top_srcdir/tests/ptyrun.py" --log "$TMP/pty" \
		--timeout "$LIMIT" $(cat "$TMP/steps") -- "$P11ENROLL" -c "$TMP/p11enroll.conf" "$@" \
		2> "$TMP/ptyrun.err"
	RC=$?
	IFS=$_old_ifs
	return 0
}

# shows TEXT: the terminal showed TEXT (fixed string).
shows() {
	grep -q -F -e "$1" "$TMP/pty" || {
		echo "# the terminal lacks '$1'; it showed:"
		tr '\r\033' '\n~' < "$TMP/pty" | sed 's/^/#   /'
		return 1
	}
}

exit_is() {
	[ "$RC" = "$1" ] || {
		echo "# exit $RC, expected $1"
		sed 's/^/#   /' "$TMP/ptyrun.err"
		tr '\r\033' '\n~' < "$TMP/pty" | sed 's/^/#   /'
		return 1
	}
}

# no_new: no object on the token carries "enrolled-key (new)".
no_new() {
	_nn=$(objects "$TOK") || return 1
	! printf '%s\n' "$_nn" | grep -q -F 'enrolled-key (new)'
}

# --- (b, c) a CA that never answers: the wait is shown, Ctrl-C undoes -------
fresh prog-hang --hang-on ir
on_pty "expect:waiting for the CA at $CA_URL to answer the ir (up to " "send:\\x03" \
	-- enroll test
check "/progress/hang/exit-130" exit_is 130
check "/progress/hang/wait-shown" shows "waiting for the CA at $CA_URL to answer the ir (up to "
check "/progress/hang/interrupt-said" shows "interrupted (SIGINT): undoing what this run started..."
check "/progress/hang/error-says-why" \
	shows "p11enroll: error: interrupted (SIGINT) during the request: the new key pair is removed"
check "/progress/hang/key-made-then-removed" made_and_removed "$LOG"
check "/progress/hang/token-empty" test "$(count_objects "$TOK")" -eq 0
check "/progress/hang/ca-got-ir" grep -q 'hang: ir received' "$TMP/ca.log"

# SIGTERM (a service manager's stop) undoes the same way
fresh prog-term --hang-on ir
on_pty "expect:waiting for the CA at $CA_URL to answer the ir (up to " "signal:TERM" \
	-- enroll test
check "/progress/sigterm/exit-130" exit_is 130
check "/progress/sigterm/error-says-why" \
	shows "p11enroll: error: interrupted (SIGTERM) during the request: the new key pair is removed"
check "/progress/sigterm/token-empty" test "$(count_objects "$TOK")" -eq 0

# --- (a) the CA answers "waiting": the next poll is shown; Ctrl-C abandons ---
fresh prog-poll --poll 3600 --deliver-when "$TMP/deliver"
on_pty "expect:the CA said 'waiting' for the ir: next poll at " "expect:, giving up at " \
	"send:\\x03" -- enroll test
check "/progress/poll/exit-130" exit_is 130
check "/progress/poll/poll-shown" shows "the CA said 'waiting' for the ir: next poll at "
check "/progress/poll/ca-told" grep -q 'error from client' "$TMP/ca.log"
check "/progress/poll/ca-acknowledged" grep -q 'error -> pkiconf' "$TMP/ca.log"
check "/progress/poll/key-made-then-removed" made_and_removed "$LOG"
check "/progress/poll/token-empty" test "$(count_objects "$TOK")" -eq 0
check "/progress/poll/no-pending-left" test "$(pending_count)" -eq 0
p11e enroll test --module "$SOFTHSM2_MODULE" --total-timeout "$(scaled 5)"
check "/progress/poll/next-enroll-not-refused" expect_rc 9
p11e resume --abandon test --module "$SOFTHSM2_MODULE"

# A second Ctrl-C while the CA is told (it never answers the error
# message): the telling stops, and the token still ends as it began.
fresh prog-poll2 --poll 3600 --deliver-when "$TMP/deliver" --hang-on error
on_pty "expect:the CA said 'waiting' for the ir: next poll at " "send:\\x03" \
	"expect:waiting for the CA at $CA_URL to answer the error (up to " "send:\\x03" \
	-- enroll test
check "/progress/poll-twice/exit-130" exit_is 130
check "/progress/poll-twice/ca-got-error" grep -q 'hang: error received' "$TMP/ca.log"
check "/progress/poll-twice/says-not-told" shows "could not tell the CA"
check "/progress/poll-twice/token-empty" test "$(count_objects "$TOK")" -eq 0
check "/progress/poll-twice/no-pending-left" test "$(pending_count)" -eq 0

# resume stopped while polling: the transaction it did not start is kept
fresh prog-resume --poll 3600 --deliver-when "$TMP/deliver"
p11e enroll test --total-timeout "$(scaled 5)"
check "/progress/resume/saved-exit-9" expect_rc 9
on_pty "expect:the CA said 'waiting' for the ir: next poll at " "send:\\x03" -- resume test
check "/progress/resume/exit-130" exit_is 130
check "/progress/resume/says-kept" shows "the pending ir is kept: run \`p11enroll resume test\` to go on"
check "/progress/resume/pending-kept" test "$(pending_count)" -eq 1
: > "$TMP/deliver"
p11e resume test --module "$SOFTHSM2_MODULE"
check "/progress/resume/resumed-later" expect_rc 0
check "/progress/resume/no-new-left" no_new

# --- a slow token: the key generation is shown --------------------------------
fresh prog-keygen
P11WRAP_HOLD=C_GenerateKeyPair:before P11WRAP_HOLD_FILE=$GO \
	on_pty "file:$GO.held" "expect:generating an EC P-256 key on token 'prog-keygen'..." \
	"touch:$GO" -- enroll test
check "/progress/keygen/exit-0" exit_is 0
check "/progress/keygen/shown" shows "generating an EC P-256 key on token 'prog-keygen'..."
check "/progress/keygen/enrolled" test "$(count_objects "$TOK" cert)" -ge 1

# a slow login (a TPM, a network HSM)
fresh prog-login
P11WRAP_HOLD=C_Login:before P11WRAP_HOLD_FILE=$GO \
	on_pty "file:$GO.held" "expect:logging in to token 'prog-login'..." "touch:$GO" \
	-- enroll test
check "/progress/login/exit-0" exit_is 0
check "/progress/login/shown" shows "logging in to token 'prog-login'..."

# Ctrl-C while the token makes the key: the key is made, then removed
fresh prog-keygen-int
P11WRAP_HOLD=C_GenerateKeyPair:before P11WRAP_HOLD_FILE=$GO \
	on_pty "file:$GO.held" "send:\\x03" "expect:interrupted (SIGINT): undoing" \
	"touch:$GO" -- enroll test
check "/progress/keygen-int/exit-130" exit_is 130
check "/progress/keygen-int/says-removed" \
	shows "interrupted (SIGINT) before the request was sent: the new key pair is removed"
check "/progress/keygen-int/key-made-then-removed" made_and_removed "$LOG"
check "/progress/keygen-int/token-empty" test "$(count_objects "$TOK")" -eq 0
check "/progress/keygen-int/ca-not-asked" test "$(ca_issued)" -eq 0

# --- (c) after the CA issued, before the certConf: the certConf refuses it ------
# The first object the certificate brings is a CA certificate of its chain:
# the client is held there, inside the storing, while Ctrl-C comes.
fresh prog-issued --no-implicit-confirm
P11WRAP_HOLD=C_CreateObject:before P11WRAP_HOLD_FILE=$GO \
	on_pty "file:$GO.held" "send:\\x03" "expect:interrupted (SIGINT): undoing" \
	"touch:$GO" -- enroll test
check "/progress/issued/exit-130" exit_is 130
check "/progress/issued/ca-issued" test "$(ca_issued)" -eq 1
check "/progress/issued/ca-told-rejected" grep -q 'certConf: the client rejected the certificate' \
	"$TMP/ca.log"
check "/progress/issued/error-says-why" shows "p11enroll: error: interrupted (SIGINT) after the CA issued the certificate: it was refused in the certConf and the new key pair is removed"
check "/progress/issued/token-empty" test "$(count_objects "$TOK")" -eq 0
check "/progress/issued/no-new" no_new

# --- (c) after the certConf went out: the pair stays for recovery ----------------
# The CA holds the certificate as confirmed: deleting it would lose it.
fresh prog-certconf --no-implicit-confirm --hang-on certConf
on_pty "expect:waiting for the CA at $CA_URL to answer the certConf (up to " "send:\\x03" \
	-- enroll test
check "/progress/certconf/exit-130" exit_is 130
check "/progress/certconf/says-kept" shows "it is kept under 'enrolled-key (new)'"
check "/progress/certconf/error-says-why" \
	shows "interrupted (SIGINT) after the certificate was stored and its certConf sent"
check "/progress/certconf/ca-accepted" grep -q 'certConf accepted' "$TMP/ca.log"
p11e check test --recover --module "$SOFTHSM2_MODULE"
check "/progress/certconf/recovery-adopts" expect_rc 0
check "/progress/certconf/no-new-after" no_new
check "/progress/certconf/cert-in-place" test "$(label_count "$TOK" enrolled-key)" -eq 3

# --- renew: Ctrl-C leaves the old pair as it was ------------------------------------
fresh prog-renew
p11e enroll test --module "$SOFTHSM2_MODULE"
check "/progress/renew/enrolled" expect_rc 0
old_id=$(label_id "$TOK" privkey enrolled-key)
before=$(count_objects "$TOK")
start_ca --hang-on kur || exit 1
wrapped_conf
on_pty "expect:waiting for the CA at $CA_URL to answer the kur (up to " "send:\\x03" \
	-- renew --local test
check "/progress/renew/exit-130" exit_is 130
check "/progress/renew/old-pair-kept" test "$(label_id "$TOK" privkey enrolled-key)" = "$old_id"
check "/progress/renew/old-cert-kept" test "$(label_id "$TOK" cert enrolled-key)" = "$old_id"
check "/progress/renew/nothing-added" test "$(count_objects "$TOK")" = "$before"
check "/progress/renew/no-new" no_new

# --- revoke: Ctrl-C stops the wait; the certificate stays on the token ----------
start_ca --hang-on rr || exit 1
wrapped_conf
on_pty "expect:waiting for the CA at $CA_URL to answer the rr (up to " "send:\\x03" \
	-- revoke test
check "/progress/revoke/exit-130" exit_is 130
check "/progress/revoke/cert-kept" test "$(label_id "$TOK" cert enrolled-key)" = "$old_id"

# --- (d) no terminal: the log is as before --------------------------------------
# SIGTERM from outside (a background job ignores SIGINT); stderr in full.
fresh prog-bg --hang-on ir
env P11WRAP_LOG="$LOG" "$P11ENROLL" -c "$TMP/p11enroll.conf" enroll test < /dev/null \
	> "$TMP/out" 2> "$TMP/err" &
pid=$!
wait_for 60 grep -q 'hang: ir received' "$TMP/ca.log"
kill -TERM "$pid"
wait "$pid"
RC=$?
cat > "$TMP/want" <<EOF
p11enroll: enrollment stopped: CMP initialization request (ir) failed: sending the ir to $CA_URL: stopped while waiting for the answer
p11enroll: error: interrupted (SIGTERM) during the request: the new key pair is removed
p11enroll: the new key pair was removed from the token
EOF
check "/progress/no-terminal/sigterm-exit-130" expect_rc 130
check "/progress/no-terminal/stderr-in-full" diff "$TMP/want" "$TMP/err"
check "/progress/no-terminal/token-empty" test "$(count_objects "$TOK")" -eq 0

# An ignored SIGHUP (nohup) stays ignored: the run goes on and succeeds.
# It comes while the token makes the key (held there until it came).
fresh prog-hup
(
	trap '' HUP
	P11WRAP_HOLD=C_GenerateKeyPair:before P11WRAP_HOLD_FILE=$GO \
		exec env P11WRAP_LOG="$LOG" "$P11ENROLL" -c "$TMP/p11enroll.conf" enroll test \
		< /dev/null > "$TMP/out" 2> "$TMP/err"
) &
pid=$!
wait_for 60 test -e "$GO.held"
kill -HUP "$pid"
: > "$GO"
wait "$pid"
RC=$?
check "/progress/no-terminal/ignored-hup-exit-0" expect_rc 0
check "/progress/no-terminal/ignored-hup-enrolled" grep -q '^enrolled test' "$TMP/out"

fresh prog-noterm --hang-on ir
sed -i "s|^timeout = .*|timeout = $(scaled 2)|" "$TMP/p11enroll.conf"
env P11WRAP_LOG="$LOG" "$P11ENROLL" -c "$TMP/p11enroll.conf" enroll test < /dev/null \
	> "$TMP/out" 2> "$TMP/err"
RC=$?
check "/progress/no-terminal/transport-exit-5" expect_rc 5
check "/progress/no-terminal/no-progress-text" \
	test "$(grep -c -e 'waiting for the CA' -e 'generating' -e "$(printf '\r')" "$TMP/err")" -eq 0

# --- (e) -q on a terminal: errors only, no progress --------------------------------
fresh prog-quiet --hang-on ir
sed -i "s|^timeout = .*|timeout = $(scaled 2)|" "$TMP/p11enroll.conf"
on_pty -- -q enroll test
check "/progress/quiet/transport-exit-5" exit_is 5
check "/progress/quiet/no-progress-text" \
	test "$(grep -c -e 'waiting for the CA' -e "$(printf '\033')" "$TMP/pty")" -eq 0

finish
