#!/bin/sh
# /crash: kill -9 at every step of an enrollment (ir) and a key update (kur),
# then restart.  The requirement: the token ends holding one matching key
# and certificate for the enrollment, holds at most one extra key until
# recovery completes and none after it, and no second certificate is
# requested when the first was confirmed.
#
# The kill points, in the order a run passes them:
#   keygen        C_GenerateKeyPair:after (the pair exists, CKA_ID not yet set)
#   keyid         C_SetAttributeValue:after:1 (CKA_ID set on the private key only)
#   request       the CA got the ir/kur (--hang-on): kill -9 from outside
#   response      C_CreateObject:before (the response was verified, nothing stored)
#   chain         ir on an empty token: C_CreateObject:after:1 (a CA certificate
#                 stored, the certificate not yet: it goes last)
#   stored        the certificate's C_CreateObject:after (stored under "LABEL
#                 (new)", no certConf sent yet; ir on an empty token: after
#                 the CA certificates, IR_CREATES counted in a normal run)
#   certconf      the CA accepted the certConf (--hang-on certConf): kill -9
#   relabel-old   first C_SetAttributeValue after the certificate: one object
#                 of the old pair is "LABEL (replaced)" (replace, kur)
#   relabel-gap   the old pair is all "(replaced)", the new one all "(new)": no pair
#                 carries the label (replace, kur); ir: first new object moved
#   relabel-new   the first object of the new pair carries the label
#   relabelled    C_DestroyObject:before:1 (all labels moved, the whole old
#                 pair is "LABEL (replaced)"; revoke: "(to revoke)", and its
#                 certificate revoked)
#   rr            revoke: the CA got the rr for the old certificate (--hang-on
#                 rr, it revoked it but never answers): kill -9 from outside
#   delete-old    C_DestroyObject:after:1 (the old pair partly deleted)
# The C_SetAttributeValue counts are taken from a call log of a normal run.
#
# Flows: ir on an empty token, ir on a token that has a pair (enroll
# replaces it: replace = yes), the same with revoke_replaced = yes (the old
# pair waits as "(to revoke)" until the rr, then goes), kur after an
# enrollment.  Each point is recovered both
# ways: `p11enroll check test --recover`, and the normal next run (enroll,
# renew).  Asserted after the kill: the process died (137), at most one
# private key more than before.  After recovery: no "(new)"/"(old)"/"(replaced)" object,
# exactly one private key, public key and end-entity certificate with the
# label (or none, for an ir on an empty token undone by check; no "(to
# revoke)" either: check --recover and the next run revoke it), the same
# CKA_ID on all three, the key signs what the certificate's key verifies;
# which pair: the one the killed run was issued when its certificate was
# on the token (and the CA issued no further certificate, neither for check
# nor for the next run), else the old one (check) or a new one (next run).
# Last, the agent (bootstrap enrollment): its enroll child dies at "stored"
# while the agent lives on; the agent itself is killed while the child
# waits, the child dies alone at "stored", the agent is started again; it
# ends "valid" with that certificate.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
WRAP="$top_builddir/tests/p11wrap/p11wrap.so"
need_file "$WRAP"
setup
plan 630
LOG="$TMP/calls.log"
LABEL=enrolled-key
# a hang guard only (a run that never ends), not a timing threshold
if command -v timeout > /dev/null 2>&1; then GUARD="timeout -s KILL $(scaled 60)"; else GUARD=; fi
export P11WRAP_MODULE="$SOFTHSM2_MODULE"

# conf TOKEN [EXTRA]: the [test] enrollment through p11wrap.  replace =
# yes: each flow means to replace the pair it finds (tests/replace.sh has
# the refusal).
conf() {
	write_conf "$1" "cert_out = $TMP/cert.pem
replace = yes
$2"
	sed -i "s|^module = .*|module = $WRAP|" "$TMP/p11enroll.conf"
}

# ca [CA_ARGS...]: (re)starts the test CA, on a new port: conf follows it.
ca() {
	start_ca "$@" && conf "$TOK" "${EXTRA:-}"
}

# run ARGS...: p11enroll through p11wrap; RC, $TMP/out, $TMP/err.
run() {
	env P11WRAP_LOG="$LOG" $GUARD "$P11ENROLL" -c "$TMP/p11enroll.conf" "$@" \
		> "$TMP/out" 2> "$TMP/err"
	RC=$?
}

# issued: the certificates the test CA has issued, from its record (the
# "no second certificate" checks count there, not in its log's wording)
issued() {
	ca_issued
}

last_serial() {
	sed -n 's/.*issued serial \([0-9A-F]*\) .*/\1/p' "$TMP/ca.log" | tail -n 1
}

# The token, seen through SoftHSM directly (no wrapper in between).
# count_class TYPE [LABEL]: objects of the type (with exactly that label).
count_class() {
	_cc=$(objects "$TOK" "$1") || { echo unreadable; return 1; }
	printf '%s\n' "$_cc" | awk -v l="${2-}" -v bylabel="${2+1}" '
		/Object;/ { n += bylabel != 1 }
		/^ *label:/ { sub(/^ *label: */, ""); n += bylabel == 1 && $0 == l }
		END { print n + 0 }'
}

# id_of TYPE LABEL: CKA_ID of the first object of that type with that label.
id_of() {
	label_id "$TOK" "$@"
}

serial_of_label() {
	objects "$TOK" cert | awk -v l="$1" '/Object;/ { mine = 0 }
		/^ *label:/ { sub(/^ *label: */, ""); mine = ($0 == l) }
		mine && /^ *serial:/ { print $2; exit }'
}

# signs ID: the token key ID signs; the certificate with that CKA_ID (read
# from the token) verifies the signature.
signs() {
	"$PKCS11_TOOL" --module "$SOFTHSM2_MODULE" --token-label "$TOK" --read-object \
		--type cert --id "$1" -o "$TMP/cert.der" > /dev/null 2>&1 || return 1
	"$OPENSSL_BIN" x509 -inform DER -in "$TMP/cert.der" -noout -pubkey > "$TMP/pub.pem" &&
		key_signs_for "$TOK" "$1" "$TMP/pub.pem"
}

say() {
	echo "# $*"
	return 1
}

# consistent: one labelled pair with its certificate, nothing temporary.
consistent() {
	objects "$TOK" > "$TMP/objs"
	if grep -q -E "label: +$LABEL \((new|old|replaced|to revoke)\)" "$TMP/objs"; then
		say "temporary objects left:"
		sed 's/^/#   /' "$TMP/objs"
		return 1
	fi
	n=$(count_class privkey) && [ "$n" -eq 1 ] || say "$n private keys on the token" || return 1
	n=$(count_class pubkey) && [ "$n" -eq 1 ] || say "$n public keys on the token" || return 1
	n=$(count_class cert "$LABEL") && [ "$n" -eq 1 ] ||
		say "$n certificates labelled $LABEL" || return 1
	n=$(count_class privkey "$LABEL") && [ "$n" -eq 1 ] ||
		say "$n private keys labelled $LABEL" || return 1
	kid=$(id_of privkey "$LABEL")
	[ "$(id_of cert "$LABEL")" = "$kid" ] && [ "$(id_of pubkey "$LABEL")" = "$kid" ] ||
		say "key $kid, certificate $(id_of cert "$LABEL"), public key $(id_of pubkey "$LABEL")" ||
		return 1
	signs "$kid" || say "the key $kid does not sign for the certificate"
}

# token_empty: an ir on an empty token, undone: no key, no certificate.
token_empty() {
	_te=$(objects "$TOK") || return 1
	n=$(printf '%s\n' "$_te" | grep -c -E '^(Private Key|Public Key) Object|label: +'"$LABEL")
	[ "$n" -eq 0 ] || { say "left on the token:"; objects "$TOK" | sed 's/^/#   /'; return 1; }
}

expect_killed() {
	[ "$RC" = 137 ] || { say "exit $RC, not killed (137):"; sed 's/^/#   /' "$TMP/err" | tail -5; return 1; }
}

# wait_log REGEX COUNT: until the CA log has more than COUNT matching lines.
wait_log() {
	i=0
	while [ "$(grep -c -E "$1" "$TMP/ca.log")" -le "$2" ]; do
		i=$((i + 1))
		[ $i -lt 200 ] || return 1
		sleep 0.05
	done
}

# --- the relabel and delete steps, from the call log of normal runs ---------------
TOK=probe
make_token "$TOK" || exit 1
ca || exit 1
# set_counts: C_SetAttributeValue calls before and after the last C_CreateObject
set_counts() {
	total=$(grep -c '^C_SetAttributeValue ' "$LOG")
	after=$(awk '/^C_CreateObject / { n = 0 } /^C_SetAttributeValue / { n++ } END { print n + 0 }' "$LOG")
	echo "$((total - after)) $after"
}
: > "$LOG"
run enroll test
check "/crash/probe/ir-empty" expect_rc 0
set -- $(set_counts)
IR_BEFORE=$1 IR_AFTER=$2
# the CA certificates, then the certificate: its C_CreateObject is the last
IR_CREATES=$(grep -c '^C_CreateObject ' "$LOG")
: > "$LOG"
run enroll test
check "/crash/probe/ir-replace" expect_rc 0
set -- $(set_counts)
RP_BEFORE=$1 RP_AFTER=$2
: > "$LOG"
run renew test
check "/crash/probe/kur" expect_rc 0
set -- $(set_counts)
KUR_BEFORE=$1 KUR_AFTER=$2
: > "$LOG"
run enroll test --revoke-replaced
check "/crash/probe/revoke" expect_rc 0
set -- $(set_counts)
RV_BEFORE=$1 RV_AFTER=$2
echo "# C_SetAttributeValue before/after the certificate: ir $IR_BEFORE/$IR_AFTER," \
	"replace $RP_BEFORE/$RP_AFTER, kur $KUR_BEFORE/$KUR_AFTER"
# ir on an empty token: the new pair's three objects; with an old pair its
# three objects go to "(replaced)" first.
check "/crash/probe/ir-relabels-new-pair" test "$IR_AFTER" -eq 3
check "/crash/probe/replace-relabels-both" test "$RP_AFTER" -eq 6
check "/crash/probe/kur-relabels-both" test "$KUR_AFTER" -eq 6
check "/crash/probe/revoke-relabels-both" test "$RV_AFTER" -eq 6
check "/crash/probe/kur-deletes-old" test "$(grep -c '^C_DestroyObject ' "$LOG")" -eq 3

# kill_spec FLOW POINT: the P11WRAP_KILL setting, or "" for a kill from outside
# (the CA holds its answer), or "-" when the point does not exist in the flow.
kill_spec() {
	case $1 in
	ir) b=$IR_BEFORE ;;
	replace) b=$RP_BEFORE ;;
	kur) b=$KUR_BEFORE ;;
	revoke) b=$RV_BEFORE ;;
	esac
	case $2 in
	keygen) echo C_GenerateKeyPair:after ;;
	keyid) echo C_SetAttributeValue:after:1 ;;
	request | certconf) echo "" ;;
	rr) [ "$1" = revoke ] && echo "" || echo - ;;
	response) echo C_CreateObject:before ;;
	chain) [ "$1" = ir ] && [ "$IR_CREATES" -gt 1 ] && echo C_CreateObject:after:1 || echo - ;;
	stored) [ "$1" = ir ] && echo "C_CreateObject:after:$IR_CREATES" ||
		echo C_CreateObject:after:1 ;;
	relabel-old) [ "$1" = ir ] && echo - || echo "C_SetAttributeValue:after:$((b + 1))" ;;
	relabel-gap) [ "$1" = ir ] && echo "C_SetAttributeValue:after:$((b + 1))" ||
		echo "C_SetAttributeValue:after:$((b + 3))" ;;
	relabel-new) [ "$1" = ir ] && echo "C_SetAttributeValue:after:$((b + 2))" ||
		echo "C_SetAttributeValue:after:$((b + 4))" ;;
	relabelled) [ "$1" = ir ] && echo - || echo C_DestroyObject:before:1 ;;
	delete-old) [ "$1" = ir ] && echo - || echo C_DestroyObject:after:1 ;;
	esac
}

# nozero HEX: without leading zeros.  revoked SERIAL REASON: the test CA
# revoked it for that reason (its record DIR/revoked: "SERIAL REASON TIME").
nozero() {
	echo "$1" | sed 's/^0*//'
}
revoked() {
	grep -q -i "^0*$(nozero "$1") $2 " "$TMP/ca/revoked" 2> /dev/null ||
		say "serial $1 not revoked with reason $2"
}

# stored_before POINT: was the killed run's certificate on the token?
stored_before() {
	case $1 in
	keygen | keyid | request | response | chain) return 1 ;;
	esac
	return 0
}

# crash FLOW POINT WAY: one case.  WAY is check (check --recover) or next
# (the same command again).
N=0
crash() {
	flow=$1 point=$2 way=$3
	name="/crash/$flow/$point/$way"
	spec=$(kill_spec "$flow" "$point")
	[ "$spec" = - ] && return
	N=$((N + 1))
	TOK="c$N"
	make_token "$TOK" || { not_ok "$name/token"; return; }
	ca || { not_ok "$name/ca-start"; return; }
	cmd=enroll
	[ "$flow" = kur ] && cmd=renew
	old_id='' old_serial=''
	if [ "$flow" != ir ]; then
		run enroll test
		[ "$RC" = 0 ] || { not_ok "$name/setup-enroll"; sed 's/^/#   /' "$TMP/err"; return; }
		old_id=$(id_of privkey "$LABEL")
		old_serial=$(serial_of_label "$LABEL")
	fi
	keys0=$(count_class privkey)
	conf0=$(grep -c 'certConf accepted' "$TMP/ca.log")

	# the run that is killed
	n0=$(issued)
	: > "$LOG"
	if [ -n "$spec" ]; then
		env P11WRAP_KILL="$spec" P11WRAP_LOG="$LOG" $GUARD "$P11ENROLL" \
			-c "$TMP/p11enroll.conf" $cmd test > "$TMP/out" 2> "$TMP/err"
		RC=$?
	else
		if [ "$point" = request ] || [ "$point" = rr ]; then
			hang=ir
			[ "$flow" = kur ] && hang=kur
			[ "$point" = rr ] && hang=rr
			seen="hang: $hang received"
		else
			hang=certConf
			seen="hang: certConf received"
		fi
		ca --hang-on $hang || { not_ok "$name/ca-start-hang"; return; }
		c0=$(grep -c -E "$seen" "$TMP/ca.log")
		env P11WRAP_LOG="$LOG" "$P11ENROLL" -c "$TMP/p11enroll.conf" $cmd test \
			> "$TMP/out" 2> "$TMP/err" &
		pid=$!
		if wait_log "$seen" "$c0"; then
			kill -9 "$pid" 2> /dev/null
		else
			say "the CA log never showed '$seen'"
			kill -9 "$pid" 2> /dev/null
		fi
		wait "$pid" 2> /dev/null
		RC=$?
		ca || { not_ok "$name/ca-restart"; return; }
	fi
	check "$name/killed" expect_killed
	if [ "$point" = certconf ]; then
		check "$name/ca-confirmed" test "$(grep -c 'certConf accepted' "$TMP/ca.log")" -gt "$conf0"
	fi
	# the serial the killed run was issued (if it got that far)
	killed_serial=
	[ "$(issued)" -gt "$n0" ] && killed_serial=$(last_serial)
	keys1=$(count_class privkey)
	check "$name/until-recovery-at-most-one-extra-key" test "$keys1" -le $((keys0 + 1))

	# recovery
	n1=$(issued)
	if [ "$way" = check ]; then
		run check test --recover
	else
		run $cmd test
	fi
	check "$name/recovery-exit-0" expect_rc 0
	n2=$(issued)
	if [ "$flow" = ir ] && [ "$way" = check ] && ! stored_before "$point"; then
		# nothing was certified: the pair the killed run made is destroyed
		# by the recovery, and the token is empty again
		check "$name/key-made-then-destroyed" made_and_removed "$LOG"
		check "$name/token-empty" token_empty
		check "$name/nothing-requested" test "$n2" -eq "$n1"
		return
	fi
	check "$name/consistent" consistent
	serial=$(serial_of_label "$LABEL")
	if stored_before "$point"; then
		# the killed run's certificate is adopted, none is requested again
		check "$name/no-second-certificate" test "$n2" -eq "$n1"
		check "$name/killed-runs-certificate" test -n "$killed_serial" -a "$serial" = "$killed_serial"
	elif [ "$way" = check ]; then
		# the new key is gone; the old pair is unchanged and in use
		check "$name/nothing-requested" test "$n2" -eq "$n1"
		check "$name/old-pair-kept" test "$(id_of privkey "$LABEL")" = "$old_id" -a \
			"$serial" = "$old_serial"
	else
		# the next run requests once and replaces the old pair
		check "$name/one-new-certificate" test "$n2" -eq $((n1 + 1))
		check "$name/new-pair" test "$serial" = "$(last_serial)" -a \
			"$(id_of privkey "$LABEL")" != "$old_id"
	fi
	if [ "$flow" = revoke ]; then
		# the old certificate is revoked (superseded) once a new one is in
		# place, and only then: never while it is the one in use
		if stored_before "$point" || [ "$way" = next ]; then
			check "$name/old-revoked" revoked "$old_serial" 4
		else
			check "$name/old-not-revoked" sh -c "! grep -q -i '^0*$(nozero "$old_serial") ' \
				'$TMP/ca/revoked' 2> /dev/null"
		fi
	fi
	if [ "$way" = check ] && [ "$flow" = kur ]; then
		# and a renewal after the recovery works
		n3=$(issued)
		run renew test
		check "$name/renew-after-recovery" expect_rc 0
		check "$name/renew-after-recovery-consistent" consistent
		check "$name/renew-after-recovery-one-request" test "$(issued)" -eq $((n3 + 1))
	fi
}

for flow in ir replace revoke kur; do
	EXTRA=
	[ "$flow" = revoke ] && EXTRA="revoke_replaced = yes"
	for point in keygen keyid request response chain stored certconf relabel-old relabel-gap \
		relabel-new relabelled rr delete-old; do
		for way in check next; do
			crash "$flow" "$point" "$way"
		done
	done
done
EXTRA=

# --- the confirmation lost, without a kill ----------------------------------------------
# The CA holds its answer to the certConf and the client's message timeout
# ends the run (exit 5): the certificate was stored and the CA holds it as
# confirmed, so the pair stays under "(new)" and the next run adopts it
# without a second request.
for flow in ir kur; do
	name="/crash/$flow/confirmation-lost"
	TOK="lost-$flow"
	make_token "$TOK" || { not_ok "$name/token"; continue; }
	EXTRA="timeout = $(scaled 2)"
	ca || { not_ok "$name/ca-start"; continue; }
	cmd=enroll
	if [ "$flow" = kur ]; then
		cmd=renew
		run enroll test
		[ "$RC" = 0 ] || { not_ok "$name/setup-enroll"; continue; }
	fi
	ca --hang-on certConf --hang-count 1 || { not_ok "$name/ca-hang"; continue; }
	n0=$(issued)
	run $cmd test
	check "$name/exit-5" expect_rc 5
	check "$name/says-kept" grep_err 'kept under'
	check "$name/ca-confirmed" grep -q 'certConf accepted' "$TMP/ca.log"
	check "$name/pair-kept" test "$(count_class cert "$LABEL (new)")" -eq 1
	killed_serial=$(last_serial)
	run $cmd test
	check "$name/next-run-exit-0" expect_rc 0
	check "$name/no-second-certificate" test "$(issued)" -eq $((n0 + 1))
	check "$name/adopted" test "$(serial_of_label "$LABEL")" = "$killed_serial"
	check "$name/consistent" consistent
	EXTRA=
done

# --- the agent ------------------------------------------------------------------------
# bootstrap = yes: the agent enrolls the empty token itself.  p11wrap kills
# its enroll child with the certificate stored ("stored"); P11WRAP_KILL
# stays in the agent's environment, so every later child that stores a
# certificate dies the same way.
AGENT_PID=
stop_agent() {
	if [ -n "$AGENT_PID" ]; then
		kill -9 "$AGENT_PID" 2> /dev/null
		wait "$AGENT_PID" 2> /dev/null
		AGENT_PID=
	fi
}
trap 'stop_agent; cleanup' EXIT

# agent [ENV=...]: starts `p11enroll agent` in the background.
agent() {
	env P11WRAP_LOG="$LOG" "$@" "$P11ENROLL" -v -c "$TMP/p11enroll.conf" agent \
		> /dev/null 2>> "$TMP/agent.err" &
	AGENT_PID=$!
}

child_killed() {
	grep -q '^KILL C_CreateObject after' "$LOG"
}

# valid SERIAL: the agent shows the enrollment valid with that certificate.
valid() {
	"$P11ENROLL" -c "$TMP/p11enroll.conf" status --json > "$TMP/status" 2> /dev/null &&
		grep -q '"state": "valid"' "$TMP/status" &&
		grep -q "\"certificate_serial\": \"$1\"" "$TMP/status"
}

check_valid() {
	if wait_for 10 valid "$killed_serial"; then
		ok "$1"
	else
		not_ok "$1"
		echo "# expected serial $killed_serial; status, agent log (-v: its steps' lines):"
		sed 's/^/#   /' "$TMP/status" "$TMP/agent.err"
		echo "# the token calls that change objects, and the CA's certificates:"
		grep -E '^(KILL|C_Login|C_GenerateKeyPair|C_CreateObject|C_SetAttributeValue|C_DestroyObject) ' "$LOG" |
			uniq -c | sed 's/^/#   /' | head -n 200
		grep 'issued serial' "$TMP/ca.log" | sed 's/^/#   /'
	fi
}

# agent_case NAME: a fresh token and state for the agent.
agent_case() {
	name=/crash/agent/$1
	N=$((N + 1))
	TOK="a$N"
	rm -rf "$TMP/state"
	: > "$TMP/agent.err"
	: > "$LOG"
	make_token "$TOK" && ca
}
EXTRA="bootstrap = yes
retry_min = 1s"

# The enroll child dies at "stored"; the agent lives on and, a second
# later, tries again: the retry finishes the killed run and requests nothing.
agent_case child-killed || exit 1
n0=$(issued)
agent P11WRAP_KILL=C_CreateObject:after:$IR_CREATES
wait_for 10 child_killed
check "$name/child-killed-at-stored" child_killed
killed_serial=$(last_serial)
check "$name/until-recovery-at-most-one-key" test "$(count_class privkey)" -le 1
check_valid "$name/valid"
check "$name/consistent" consistent
check "$name/no-second-certificate" test "$(issued)" -eq $((n0 + 1))
check "$name/no-second-C_CreateObject" test "$(grep -c '^C_CreateObject ' "$LOG")" -eq "$IR_CREATES"
# and a restart after it changes nothing
stop_agent
agent
check_valid "$name/valid-after-restart"
check "$name/restart-requests-nothing" test "$(issued)" -eq $((n0 + 1))
stop_agent

# The agent itself is killed while its enroll child waits for the CA's
# answer (held back 1 s); the child goes on alone and dies at "stored".  The
# restarted agent recovers first and shows that certificate.
agent_case agent-killed || exit 1
ca --fault slow=1 --fault-count 1 || exit 1
n0=$(issued)
agent P11WRAP_KILL=C_CreateObject:after:$IR_CREATES
c0=$(grep -c 'fault slow' "$TMP/ca.log")
check "$name/ca-holds-the-answer" wait_log 'fault slow' "$c0"
stop_agent
wait_for 10 child_killed
check "$name/child-killed-at-stored" child_killed
killed_serial=$(last_serial)
check "$name/until-recovery-at-most-one-key" test "$(count_class privkey)" -le 1
agent
check_valid "$name/valid-after-restart"
check "$name/consistent" consistent
check "$name/no-second-certificate" test "$(issued)" -eq $((n0 + 1))
stop_agent

# The enroll child dies at "stored" and the agent is killed while the retry
# of that step is due in an hour (retry_min = 1h: it cannot come before the
# kill, however slow the machine).  The restarted agent restores that
# backoff from its state, adopts the killed step's certificate in its
# recovery, and must then say so: the certificate is not due, the failures
# are over, the retry is not made (fsm.c took_look()).  It runs on the
# test clock (P11ENROLL_TEST_CLOCK_RATE) so that the hour passes in seconds;
# the test waits until the agent's own clock is past the retry time, and
# the agent then shows the certificate valid with no failure and no step
# before its renewal time, and the CA has issued no second certificate.
EXTRA="bootstrap = yes
retry_min = 1h"
agent_case restart-in-backoff || exit 1
n0=$(issued)
agent P11WRAP_KILL=C_CreateObject:after:$IR_CREATES
wait_for 30 child_killed
check "$name/child-killed-at-stored" child_killed
killed_serial=$(last_serial)
# status_field NAME: a number or a string of the agent's status --json
status_field() {
	sed -n "s/.*\"$1\": \"*\([^\",}]*\).*/\1/p" "$TMP/status" | head -n 1
}
# in_backoff: the agent reports the failed step and its retry time
in_backoff() {
	"$P11ENROLL" -c "$TMP/p11enroll.conf" status --json > "$TMP/status" 2> /dev/null &&
		[ "$(status_field state)" = backoff ] && [ "$(status_field consecutive_failures)" = 1 ]
}
check "$name/agent-in-backoff" wait_for 30 in_backoff
retry_at=$(status_field next_attempt)
stop_agent
# what the restart reads: the failure and its retry time
check "$name/state-keeps-backoff" grep -q -x -e "failures 1" "$TMP/state/test.agent"
check "$name/state-keeps-retry-time" grep -q -x -e "next $retry_at" "$TMP/state/test.agent"
check "$name/retry-in-an-hour" test "$retry_at" -gt "$(($(date +%s) + 1800))"
agent P11ENROLL_TEST_CLOCK_RATE=720
# the agent's account of its decision after the recovery
decided() {
	grep -q -E "test: the certificate on the token is not due for renewal \(due at [0-9]+\): the earlier failures are over; no retry at $retry_at\$" \
		"$TMP/agent.err"
}
if wait_for 30 decided; then
	ok "$name/says-no-retry"
else
	not_ok "$name/says-no-retry"
	sed 's/^/#   /' "$TMP/agent.err"
fi
# then, by the agent's clock, the retry time passes
past_retry() {
	"$P11ENROLL" -c "$TMP/p11enroll.conf" status --json > "$TMP/status" 2> /dev/null &&
		[ "$(status_field now)" -gt "$retry_at" ]
}
check "$name/retry-time-passed" wait_for 30 past_retry
# the agent's account now: valid with the killed run's certificate, no
# failure, and its next step at the certificate's renewal time, not now
settled() {
	[ "$(status_field state)" = valid ] &&
		[ "$(status_field certificate_serial)" = "$killed_serial" ] &&
		[ "$(status_field consecutive_failures)" = 0 ] &&
		[ "$(status_field next_attempt)" -gt "$(status_field now)" ] ||
		{ say "agent status:"; sed 's/^/#   /' "$TMP/status"; return 1; }
}
check "$name/valid-no-failure-next-is-renewal" settled
check "$name/consistent" consistent
check "$name/no-second-certificate" test "$(issued)" -eq $((n0 + 1))
stop_agent
finish
