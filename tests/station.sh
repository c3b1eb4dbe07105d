#!/bin/sh
# /station: p11enroll station NAME, a badge station.  SoftHSM2 tokens that
# softhsm2-util makes (in a store of their own, then moved in whole) while
# the station runs stand in for cards being inserted, moving a token's
# directory out of the store for their removal, and back for the same card
# re-inserted.  Every wait is for a line of the station's output (a scaled
# hang guard around it), never a sleep.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
WRAP="$top_builddir/tests/p11wrap/p11wrap.so"
need_file "$WRAP"
setup
plan 222
STATION_PID=

stop_station() {
	if [ -n "$STATION_PID" ]; then
		kill "$STATION_PID" 2> /dev/null
		wait "$STATION_PID" 2> /dev/null
		STATION_PID=
	fi
}
trap 'stop_station; cleanup' EXIT

# An empty token store: the station starts with no card inserted.
mkdir -p "$TMP/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
	"$TMP/tokens" > "$TMP/softhsm2.conf"
SOFTHSM2_CONF="$TMP/softhsm2.conf"
export SOFTHSM2_CONF

# insert_card LABEL [PIN]: a new token appears whole, as a card does: made
# in a store of its own and moved into the station's (a rename), so that
# no look of the station or its child meets softhsm2-util half-way
# through writing it.
insert_card() {
	mkdir -p "$TMP/staging"
	printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
		"$TMP/staging" > "$TMP/staging.conf"
	SOFTHSM2_CONF="$TMP/staging.conf" "$SOFTHSM2_UTIL" --init-token --free --label "$1" \
		--so-pin "$SO_PIN" --pin "${2:-$USER_PIN}" > "$TMP/softhsm-init.log" 2>&1 ||
		{ cat "$TMP/softhsm-init.log"; return 1; }
	_d=$(ls "$TMP/staging")
	# its serial read here, where nobody else writes the token
	_s=$(SOFTHSM2_CONF="$TMP/staging.conf" token_serial "$1") || return 1
	mv "$TMP/staging/$_d" "$TMP/tokens/" && echo "$1 $_d $_s" >> "$TMP/dirs"
}

# card_serial LABEL: the serial of the card insert_card made (a token list
# of the station's store can miss a card while the station writes it),
# else of the one token labelled LABEL there.
card_serial() {
	_s=$(awk -v l="$1" '$1 == l { s = $3 } END { print s }' "$TMP/dirs" 2> /dev/null)
	if [ -n "$_s" ]; then
		echo "$_s"
	else
		token_serial "$1"
	fi
}

# remove_card LABEL: the token goes as a whole (its directory moved out of
# the store), as a card pulled out: softhsm2-util --delete-token can fail
# half-way while a look of the station holds the store.
remove_card() {
	_d=$(basename "$(token_dir "$1")")
	mkdir -p "$TMP/removed"
	rm -rf "$TMP/removed/$_d"
	mv "$TMP/tokens/$_d" "$TMP/removed/"
}

# station_conf QUEUE: the [test] enrollment as a station's template: any
# SoftHSM2 token is a card, each gets the label "badge".
station_conf() {
	write_conf unused "token = pkcs11:model=SoftHSM%20v2
label = badge
station_poll = 50
journal = $TMP/journal
queue = $1"
}

# station [SETTING...]: the station in the background (with SETTING flags
# on its command line), output in $TMP/st.out and $TMP/st.err; returns
# once it waits for the first card.
station() {
	: > "$TMP/st.out"
	"$P11ENROLL" -c "$TMP/p11enroll.conf" "$@" station test > "$TMP/st.out" 2> "$TMP/st.err" &
	STATION_PID=$!
	said 'waiting for a card'
}

# said REGEX [COUNT]: the station's output gets COUNT (1) lines matching REGEX.
said() {
	wait_for 30 sh -c "[ \$(grep -c -E -e \"\$1\" '$TMP/st.out') -ge ${2:-1} ]" - "$1" || {
		echo "# no /$1/ (${2:-1}) in the station's output:"
		sed 's/^/#   /' "$TMP/st.out" "$TMP/st.err"
		return 1
	}
}

# same_id TOKEN: the certificate labelled badge has the key's CKA_ID.
same_id() {
	_k=$(label_id "$1" privkey badge) && _c=$(label_id "$1" cert badge) &&
		[ -n "$_k" ] && [ "$_k" = "$_c" ] ||
		{ echo "# key id '$_k', certificate id '$_c' on $1"; return 1; }
}

# token_dir LABEL: the token's directory in the store: the one insert_card
# recorded, else the one whose token.object holds LABEL (make_token's; a
# grep can meet the file while SoftHSM2 rewrites it, and find nothing)
token_dir() {
	_d=$(awk -v l="$1" '$1 == l { d = $2 } END { print d }' "$TMP/dirs" 2> /dev/null)
	if [ -n "$_d" ]; then
		echo "$TMP/tokens/$_d"
	else
		grep -l -F "$1" "$TMP"/tokens/*/token.object 2> /dev/null | head -n 1 | xargs -r dirname
	fi
}

# subject_of TOKEN LABEL: the subject of the certificate labelled LABEL
# (the certificate left in $TMP/c.der).
subject_of() {
	"$PKCS11_TOOL" --module "$SOFTHSM2_MODULE" --slot "$(token_slot "$1")" --read-object \
		--type cert --label "$2" -o "$TMP/c.der" > /dev/null 2>&1 &&
		"$OPENSSL_BIN" x509 -inform DER -in "$TMP/c.der" -noout -subject -nameopt RFC2253
}

# done_rows STATE_FILE: rows whose last mark is done.
done_rows() {
	awk '{ last[$2] = $1 } END { for (k in last) if (last[k] == "done") n++; print n + 0 }' "$1"
}

# --- ten cards from a queue, one after another -------------------------------
start_ca || exit 1
printf 'subject,san\n' > "$TMP/q.csv"
for i in 1 2 3 4 5 6 7 8 9 10; do
	printf '/CN=holder %s/O=Example,email:h%s@example.org\n' "$i" "$i" >> "$TMP/q.csv"
done
station_conf "$TMP/q.csv"
t=/station/ten
station || exit 1
all_ok=0
ids_ok=0
for i in 1 2 3 4 5 6 7 8 9 10; do
	insert_card "card$i" || exit 1
	s=$(card_serial "card$i")
	said "^remove the card $s\$" || break
	grep -q -E "^OK card $s: /CN=holder $i/O=Example: certificate [0-9A-F]+, " "$TMP/st.out" &&
		all_ok=$((all_ok + 1))
	same_id "card$i" && ids_ok=$((ids_ok + 1))
	# the last card stays in
	[ $i -eq 10 ] && break
	remove_card "card$i"
	said 'waiting for a card' $((i + 1)) || break
done
check "$t/ten-ok-lines" test $all_ok -eq 10
check "$t/ten-certificates-with-the-key-id" test $ids_ok -eq 10
check "$t/ten-journal-lines" test "$(grep -c '"outcome": "ok"' "$TMP/journal")" -eq 10
check "$t/journal-names-rows" grep -q "\"source\": \"$TMP/q.csv:11\"" "$TMP/journal"
check "$t/queue-all-done" test "$(done_rows "$TMP/q.csv.state")" -eq 10
check "$t/ca-issued-ten" test "$(ca_issued)" -eq 10
# the time per card, token appearing to "remove the card", as the OK lines say
times=$(sed -n 's/^OK card .*, \([0-9.]*\) s$/\1/p' "$TMP/st.out" | sort -n)
echo "# seconds per card: $(echo $times)"
echo "# median of ten: $(printf '%s\n' "$times" | sed -n '5p;6p' | awk '{ s += $1 } END { printf "%.2f", s / 2 }') s"

# --- the same card left in, then pulled and re-inserted: not enrolled twice ---
t=/station/again
dir=$(token_dir card10)
mv "$dir" "$TMP/pulled"
said 'waiting for a card' 11
mv "$TMP/pulled" "$dir"
s=$(card_serial card10)
check "$t/skipped" said "^SKIPPED card $s: this station enrolled it already\$"
check "$t/remove" said "^remove the card $s\$" 2
check "$t/one-pair" test "$(label_count card10 badge)" -eq 3
check "$t/ca-issued-ten" test "$(ca_issued)" -eq 10
check "$t/journal-skipped" test "$(grep -c '"outcome": "skipped"' "$TMP/journal")" -eq 1
check "$t/queue-untouched" test "$(done_rows "$TMP/q.csv.state")" -eq 10

# --- SIGTERM while waiting for a card: exit 0 with a summary -----------------
t=/station/stop
remove_card card10
said 'waiting for a card' 12
kill -TERM "$STATION_PID"
wait "$STATION_PID"
RC=$?
STATION_PID=
check "$t/exit-0" test "$RC" -eq 0
check "$t/summary" grep -q '^station: 10 enrolled, 0 failed, 1 skipped$' "$TMP/st.out"
# what the station said, when that failed (a CI run once missed it)
grep -q '^station: 10 enrolled, 0 failed, 1 skipped$' "$TMP/st.out" ||
	sed 's/^/#   /' "$TMP/st.out" "$TMP/st.err"

# --- a queue with a bad subject: the row failed, the card untouched ----------
t=/station/bad-subject
printf 'subject\nCN=no slash\n/CN=good/O=Example\n' > "$TMP/bad.csv"
station_conf "$TMP/bad.csv"
: > "$TMP/journal"
station || exit 1
insert_card bad1 || exit 1
s=$(card_serial bad1)
check "$t/row-failed-line" said "^FAILED row $TMP/bad.csv:2: subject: "
check "$t/next-row" said "^OK card $s: /CN=good/O=Example: "
check "$t/says-what-to-do" grep -q "bad.csv:2: subject: .*correct the row" "$TMP/st.err"
check "$t/state-failed" grep -q '^failed ' "$TMP/bad.csv.state"
check "$t/journal-failed" grep -q "\"source\": \"$TMP/bad.csv:2\".*\"outcome\": \"failed\"\|\"outcome\": \"failed\".*\"source\": \"$TMP/bad.csv:2\"" "$TMP/journal"
said "^remove the card $s\$"
remove_card bad1
said 'waiting for a card' 2
# a card for a queue of bad rows only: untouched
printf 'CN=no slash either\n' >> "$TMP/bad.csv"
stop_station
station || exit 1
insert_card bad2 || exit 1
s=$(card_serial bad2)
check "$t/only-bad-rows" said "^FAILED row $TMP/bad.csv:4: subject: "
check "$t/skipped" said "^SKIPPED card $s: no row of the queue is left for it\$"
check "$t/card-untouched" test "$(count_objects bad2)" -eq 0
check "$t/good-row-not-again" test "$(grep -c '^OK ' "$TMP/st.out")" -eq 0
stop_station
remove_card bad2

# --- a CA rejection: the card's line says why, the row is failed ----------------
t=/station/rejected
start_ca --fault reject=badCertTemplate --fault-count 1 || exit 1
printf 'subject\n/CN=r1\n' > "$TMP/rej.csv"
station_conf "$TMP/rej.csv"
station || exit 1
insert_card rej1 || exit 1
s=$(card_serial rej1)
check "$t/failed-line" said "^FAILED card $s: /CN=r1: .*badCertTemplate.* \\(exit 6\\), "
check "$t/no-pair" test "$(label_count rej1 'badge( \(new\))?')" -eq 0
check "$t/state-failed" test "$(awk '{ l = $1 } END { print l }' "$TMP/rej.csv.state")" = failed
check "$t/journal-failed" grep -q '"outcome": "failed".*badCertTemplate' "$TMP/journal"

# --- SIGTERM while the CA holds a card's request: the card finishes first -----
t=/station/sigterm-mid-card
stop_station
remove_card rej1
start_ca --fault slow=$(scaled 3) --fault-count 1 || exit 1
printf 'subject\n/CN=held\n' > "$TMP/held.csv"
station_conf "$TMP/held.csv"
: > "$TMP/journal"
station || exit 1
insert_card held1 || exit 1
said '^card [0-9a-f]*: enrolling /CN=held$'
wait_for 10 grep -q 'POST /.well-known/cmp' "$TMP/ca.log"
check "$t/held-when-stopped" sh -c "! grep -q '^OK' '$TMP/st.out'"
kill -TERM "$STATION_PID"
wait "$STATION_PID"
RC=$?
STATION_PID=
check "$t/exit-0" test "$RC" -eq 0
check "$t/card-finished" grep -q '^OK card [0-9a-f]*: /CN=held: certificate ' "$TMP/st.out"
check "$t/pair-on-card" test "$(label_count held1 badge)" -eq 3
check "$t/summary" grep -q '^station: 1 enrolled, 0 failed, 0 skipped$' "$TMP/st.out"
check "$t/journal" grep -q '"outcome": "ok"' "$TMP/journal"
check "$t/plain-lines" sh -c "! grep -q \"\$(printf '\\033')\" '$TMP/st.out'"
remove_card held1

# --- on a terminal: the outcome in colour, a progress line ---------------------
t=/station/terminal
start_ca || exit 1
# ptyrun.py OUT IN COMMAND...: COMMAND on a pseudo-terminal, what it writes
# copied to OUT, what is appended to IN typed on its terminal.
cat > "$TMP/ptyrun.py" << 'EOP'
import os, pty, select, signal, sys
out = open(sys.argv[1], "wb", buffering=0)
inp = open(sys.argv[2], "rb")
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[3], sys.argv[3:])
signal.signal(signal.SIGTERM, lambda *a: os.kill(pid, signal.SIGTERM))
while True:
    try:
        r, _, _ = select.select([fd], [], [], 0.05)
    except InterruptedError:
        continue
    typed = inp.read()
    if typed:
        os.write(fd, typed)
    if not r:
        continue
    try:
        b = os.read(fd, 4096)
    except OSError:
        break
    if not b:
        break
    out.write(b)
while True:
    try:
        _, st = os.waitpid(pid, 0)
        break
    except InterruptedError:
        continue
sys.exit(os.waitstatus_to_exitcode(st))
EOP
printf 'subject\n/CN=on a terminal\n' > "$TMP/tty.csv"
station_conf "$TMP/tty.csv"
: > "$TMP/st.out"
: > "$TMP/typed"
python3 "$TMP/ptyrun.py" "$TMP/st.out" "$TMP/typed" "$P11ENROLL" -c "$TMP/p11enroll.conf" \
	station test 2> "$TMP/st.err" &
STATION_PID=$!
said 'waiting for a card' || exit 1
insert_card tty1 || exit 1
said 'remove the card'
esc=$(printf '\033')
check "$t/ok-in-green" grep -q "${esc}\\[1;32mOK${esc}\\[0m card [0-9a-f]*: /CN=on a terminal: " "$TMP/st.out"
check "$t/progress" grep -q 'card [0-9a-f]*: enrolling, [0-9]* s' "$TMP/st.out"
kill -TERM "$STATION_PID"
wait "$STATION_PID"
RC=$?
STATION_PID=
check "$t/exit-0" test "$RC" -eq 0
remove_card tty1

# --- a wrong PIN: tried once, reported, the card left alone until removed ------
t=/station/wrong-pin
printf 'subject\n/CN=pin 1\n' > "$TMP/pin.csv"
station_conf "$TMP/pin.csv"
sed -i "s|^module = .*|module = $WRAP|" "$TMP/p11enroll.conf"
P11WRAP_MODULE="$SOFTHSM2_MODULE"
P11WRAP_LOG="$TMP/calls.log"
export P11WRAP_MODULE P11WRAP_LOG
: > "$TMP/calls.log"
station || exit 1
insert_card wrongpin 9999-other || exit 1
s=$(card_serial wrongpin)
check "$t/failed-exit-4" said "^FAILED card $s: /CN=pin 1: .*PIN.* \\(exit 4\\), "
check "$t/remove" said "^remove the card $s\$"
check "$t/one-login" test "$(grep -c '^C_Login ' "$TMP/calls.log")" -eq 1
check "$t/row-failed" grep -q '^failed ' "$TMP/pin.csv.state"
remove_card wrongpin

# --- a locked card: reported and skipped without a login ----------------------
t=/station/locked
stop_station
P11WRAP_TOKEN_FLAGS=0x40000
export P11WRAP_TOKEN_FLAGS
: > "$TMP/calls.log"
: > "$TMP/journal"
station || exit 1
insert_card locked1 || exit 1
s=$(card_serial locked1)
check "$t/skipped" said "^SKIPPED card $s: its user PIN is locked: unblock it with the SO PIN"
check "$t/no-login" test "$(grep -c '^C_Login ' "$TMP/calls.log")" -eq 0
check "$t/journal" grep -q '"outcome": "skipped".*locked' "$TMP/journal"
stop_station
unset P11WRAP_TOKEN_FLAGS P11WRAP_LOG
remove_card locked1

# --- kill -9 of the station between "row taken" and "row done" ----------------
t=/station/kill9
start_ca --fault slow=$(scaled 3) --fault-count 1 || exit 1
printf 'subject\n/CN=k1\n/CN=k2\n' > "$TMP/k.csv"
issued=$(ca_issued)
station_conf "$TMP/k.csv"
: > "$TMP/journal"
station || exit 1
insert_card kill1 || exit 1
s=$(card_serial kill1)
said '^card [0-9a-f]*: enrolling /CN=k1$'
check "$t/taken" wait_for 10 grep -q '^taken ' "$TMP/k.csv.state"
kill -9 "$STATION_PID"
wait "$STATION_PID" 2> /dev/null
STATION_PID=
# The enrollment process, in its own process group, goes on to the end.
child_gone() {
	! pgrep -f -- "-c $TMP/p11enroll.conf .*enroll" > /dev/null
}
check "$t/child-ended" wait_for 30 child_gone
check "$t/card-holds-pair" test "$(label_count kill1 badge)" -eq 3
station || exit 1
check "$t/resumed-ok" said "^OK card $s: /CN=k1: certificate [0-9A-F]+ \\(from before the station stopped\\), "
check "$t/not-enrolled-twice" test "$(ca_issued)" -eq $((issued + 1))
said "^remove the card $s\$"
remove_card kill1
insert_card kill2 || exit 1
check "$t/next-row" said "^OK card $(card_serial kill2): /CN=k2: certificate "
check "$t/all-done" test "$(done_rows "$TMP/k.csv.state")" -eq 2
check "$t/ca-issued-two" test "$(ca_issued)" -eq $((issued + 2))
check "$t/journal-two-ok" test "$(grep -c '"outcome": "ok"' "$TMP/journal")" -eq 2
stop_station
remove_card kill2

# --- prompt mode: the subject and SANs typed on the terminal ------------------
t=/station/prompt
write_conf unused "token = pkcs11:model=SoftHSM%20v2
label = badge
station_poll = 50
journal = $TMP/journal"
sed -i '/^subject = /d' "$TMP/p11enroll.conf"
: > "$TMP/typed"
: > "$TMP/st.out"
python3 "$TMP/ptyrun.py" "$TMP/st.out" "$TMP/typed" "$P11ENROLL" -c "$TMP/p11enroll.conf" \
	station test 2> "$TMP/st.err" &
STATION_PID=$!
said 'waiting for a card' || exit 1
insert_card typed1 || exit 1
s=$(card_serial typed1)
said 'subject \(as /CN=name/O=org\): '
printf 'CN=no slash\n' >> "$TMP/typed"
check "$t/bad-subject-asked-again" said "must start with '/'.*: try again"
check "$t/card-untouched-meanwhile" test "$(count_objects typed1)" -eq 0
said 'subject \(as /CN=name/O=org\): ' 2
printf '/CN=typed/O=Example\n' >> "$TMP/typed"
said 'subjectAltNames'
printf 'email:typed@example.org\n' >> "$TMP/typed"
check "$t/ok" said "OK.* card $s: /CN=typed/O=Example: certificate "
check "$t/subject-on-card" test "$(subject_of typed1 badge)" = 'subject=O=Example,CN=typed'
check "$t/san-on-card" sh -c "'$OPENSSL_BIN' x509 -inform DER -in '$TMP/c.der' -noout \
	-ext subjectAltName | grep -q 'email:typed@example.org'"
kill -TERM "$STATION_PID"
wait "$STATION_PID"
RC=$?
STATION_PID=
check "$t/exit-0" test "$RC" -eq 0
remove_card typed1

# --- a CA that answers waiting: the station moves on, the card resumed later ----
t=/station/waiting
start_ca --poll "$(scaled 3)" || exit 1
printf 'subject\n/CN=w1\n/CN=w2\n' > "$TMP/w.csv"
station_conf "$TMP/w.csv"
sed -i "s/^total_timeout = .*/total_timeout = $(scaled 2)/" "$TMP/p11enroll.conf"
: > "$TMP/journal"
station || exit 1
insert_card wait1 || exit 1
s=$(card_serial wait1)
check "$t/waiting-line" said "^WAITING card $s: /CN=w1: the CA answered waiting and the request is saved"
# the test CA delivers $(scaled 3) s after it got the request, which was
# before the line: the card comes back after that instant (checkAfter)
deliver_at=$(($(date +%s) + $(scaled 3) + 1))
check "$t/request-saved" test -f "$(pending_file wait1 badge)"
check "$t/row-waiting" grep -q '^waiting ' "$TMP/w.csv.state"
said "^remove the card $s\$"
dir=$(token_dir wait1)
mv "$dir" "$TMP/pulled"
said 'waiting for a card' 2
# (the test CA holds one waiting transaction at a time: no other card now)
past_check_after() {
	[ "$(date +%s)" -ge "$deliver_at" ]
}
wait_for 30 past_check_after
mv "$TMP/pulled" "$dir"
check "$t/resumed" said "^card $s: the CA answered waiting for it: asking again\$"
check "$t/resumed-ok" said "^OK card $s: /CN=w1: certificate "
check "$t/pair-on-card" test "$(label_count wait1 badge)" -eq 3
check "$t/pending-gone" test ! -f "$(pending_file wait1 badge)"
check "$t/journal" test "$(grep -c '"outcome": "waiting"' "$TMP/journal")" -eq 1
check "$t/row-done" test "$(done_rows "$TMP/w.csv.state")" -eq 1
stop_station
remove_card wait1

# --- the module crashes while the card is written: the station goes on, and
# the card inserted again is recovered and enrolled with its row -----------
t=/station/module-crash
printf 'subject\n/CN=crash\n' > "$TMP/c.csv"
station_conf "$TMP/c.csv"
sed -i "s|^module = .*|module = $WRAP|" "$TMP/p11enroll.conf"
P11WRAP_LOG="$TMP/calls.log"
P11WRAP_KILL=C_CreateObject:before
export P11WRAP_LOG P11WRAP_KILL
: > "$TMP/calls.log"
station || exit 1
insert_card crash1 || exit 1
s=$(card_serial crash1)
check "$t/failed-line" said "^FAILED card $s: /CN=crash: the enrollment process died \\(signal 9\\)"
check "$t/killed-at-a-write" grep -q '^KILL C_CreateObject before' "$TMP/calls.log"
check "$t/station-goes-on" said "^remove the card $s\$"
dir=$(token_dir crash1)
mv "$dir" "$TMP/pulled"
said 'waiting for a card' 2
stop_station
unset P11WRAP_KILL P11WRAP_LOG
station || exit 1
mv "$TMP/pulled" "$dir"
check "$t/recovered-and-enrolled" said "^OK card $s: /CN=crash: certificate "
check "$t/operator-told" grep -q "^card $s: a request for it is saved: asking the CA for it\$" \
	"$TMP/st.out"
check "$t/one-pair" test "$(label_count crash1 badge)" -eq 3
check "$t/no-leftover" test "$(label_count crash1 'badge \(new\)')" -eq 0
check "$t/row-done" test "$(done_rows "$TMP/c.csv.state")" -eq 1
stop_station
remove_card crash1

# --- a card that holds a valid certificate: refused unless the row says replace -
# (and then, with revoke_replaced, the replaced certificate is revoked)
t=/station/replace
printf 'subject,replace\n/CN=r-no,\n/CN=r-yes,yes\n' > "$TMP/r.csv"
station_conf "$TMP/r.csv"
echo "revoke_replaced = yes" >> "$TMP/p11enroll.conf"
make_token pre1 || exit 1
p11e --token pkcs11:token=pre1 --subject /CN=before enroll test
check "$t/pre-enrolled" expect_rc 0
subject_of pre1 badge > /dev/null
old_serial=$("$OPENSSL_BIN" x509 -inform DER -in "$TMP/c.der" -noout -serial | sed 's/^serial=0*//')
# the card is in when the station starts
station || exit 1
s=$(card_serial pre1)
check "$t/refused" said "^FAILED card $s: /CN=r-no: .*holds a valid certificate.*--replace.* \\(exit 2\\), "
check "$t/old-cert-kept" test "$(subject_of pre1 badge)" = 'subject=CN=before'
said "^remove the card $s\$"
dir=$(token_dir pre1)
mv "$dir" "$TMP/pulled"
said 'waiting for a card' 2
mv "$TMP/pulled" "$dir"
check "$t/replaced" said "^OK card $s: /CN=r-yes: certificate "
check "$t/new-cert" test "$(subject_of pre1 badge)" = 'subject=CN=r-yes'
check "$t/one-pair" test "$(label_count pre1 badge)" -eq 3
check "$t/old-revoked" grep -q -i \
	"rr: revoked serial 0*$old_serial reason 4 protection own-key" "$TMP/ca.log"
check "$t/no-pair-to-revoke" test "$(label_count pre1 'badge \(to revoke\)')" -eq 0
stop_station
remove_card pre1

# --- blank cards (init_token): initialised, the PIN mailed, enrolled --------
# A store of its own: SoftHSM2's one free slot is the blank card, seen once
# when the station starts (after its initialisation SoftHSM2 offers a new
# free slot that looks the same: no new card, never initialised).
t=/station/blank
mkdir -p "$TMP/blanks"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
	"$TMP/blanks" > "$TMP/blanks.conf"
SOFTHSM2_CONF="$TMP/blanks.conf"
export SOFTHSM2_CONF
printf '%s\n' "$SO_PIN" > "$TMP/sopin"
# the mailer keeps what it got: the PIN from its standard input, its
# environment; it fails while $TMP/mailer-fails exists
cat > "$TMP/mailer" <<EOM
#!/bin/sh
cat > "$TMP/mailed.pin"
env > "$TMP/mailer.env"
echo "mailer ran with \$# arguments" > "$TMP/mailer.args"
[ ! -e "$TMP/mailer-fails" ] || exit 3
EOM
chmod +x "$TMP/mailer"
# the second row names its blank card's label
printf 'subject,token_label\n/CN=blank 1/O=Example,\n/CN=blank 2/O=Example,holder-%%s-2\n' \
	> "$TMP/blank.csv"
# blank_conf [EXTRA]: the station initialises blank cards, through p11wrap
blank_conf() {
	station_conf "$TMP/blank.csv"
	sed -i -e "s|^module = .*|module = $WRAP|" -e '/^pin_source = /d' "$TMP/p11enroll.conf"
	printf '%s\n' "init_token = yes" "so_pin_source = file:$TMP/sopin" \
		"pin_mailer = $TMP/mailer" ${1:+"$1"} >> "$TMP/p11enroll.conf"
}
# remove_blank LABEL: the card that the station initialised is pulled out
# (its token.object found by LABEL: looked for again while SoftHSM2
# rewrites it)
remove_blank() {
	wait_for 10 sh -c "grep -l -F '$1' '$TMP'/blanks/*/token.object > '$TMP/blank.dir'" ||
		return 1
	_d=$(head -n 1 "$TMP/blank.dir" | xargs -r dirname)
	[ -n "$_d" ] && rm -rf "$TMP/removed/${_d##*/}" && mkdir -p "$TMP/removed" &&
		mv "$_d" "$TMP/removed/"
}
# polls_after N: the watcher made N more C_GetSlotList calls than now
polls_after() {
	_pa=$(($(grep -c '^C_GetSlotList ' "$TMP/calls.log") + $1))
	wait_for 30 sh -c "[ \$(grep -c '^C_GetSlotList ' '$TMP/calls.log') -ge $_pa ]"
}
blank_conf
P11WRAP_MODULE="$SOFTHSM2_MODULE"
P11WRAP_LOG="$TMP/calls.log"
export P11WRAP_MODULE P11WRAP_LOG
: > "$TMP/calls.log"
: > "$TMP/journal"
issued=$(ca_issued)
station || exit 1
check "$t/initialising" said '^card \(blank\): blank: initialising it$'
check "$t/enrolled" said '^OK card [0-9a-f]+: /CN=blank 1/O=Example: certificate [0-9A-F]+, '
s=$(sed -n 's|^OK card \([0-9a-f]*\): /CN=blank 1/.*|\1|p' "$TMP/st.out")
lbl=$(sed -n 's/^P11ENROLL_TOKEN_LABEL=//p' "$TMP/mailer.env")
check "$t/label-from-template" sh -c "echo '$lbl' | grep -q -x -E 'badge-[0-9a-f]{8}'"
check "$t/card-has-label-and-serial" test "$(token_serial "$lbl")" = "$s"
check "$t/pin-8-digits" grep -q -x -E '[0-9]{8}' "$TMP/mailed.pin"
check "$t/mailer-env" sh -c "grep -q -x 'P11ENROLL_TOKEN_SERIAL=$s' '$TMP/mailer.env' &&
	grep -q -x 'P11ENROLL_SUBJECT=/CN=blank 1/O=Example' '$TMP/mailer.env'"
check "$t/mailer-no-arguments" grep -q 'with 0 arguments' "$TMP/mailer.args"
check "$t/mailer-env-no-pin" sh -c "! grep -q -F -e \"\$(cat '$TMP/mailed.pin')\" -e '$SO_PIN' \
	'$TMP/mailer.env'"
slot=$(token_slot "$lbl")
check "$t/mailed-pin-logs-in-to-key" sh -c "'$PKCS11_TOOL' --module '$SOFTHSM2_MODULE' \
	--slot '$slot' --login --pin \"\$(cat '$TMP/mailed.pin')\" --list-objects \
	--type privkey 2> /dev/null | grep -q -x -E '[[:space:]]*label:[[:space:]]*badge'"
check "$t/cert-on-card" test "$(subject_of "$lbl" badge)" = 'subject=O=Example,CN=blank 1'
check "$t/journal-ok" sh -c "grep -F '\"token_serial\": \"$s\"' '$TMP/journal' |
	grep -q '\"outcome\": \"ok\"'"
check "$t/row-done" test "$(done_rows "$TMP/blank.csv.state")" -eq 1
said "^remove the card $s\$"
remove_blank "$lbl"
said 'waiting for a card' 2
# SoftHSM2's new free slot after many looks: never a card
polls_after 10
check "$t/one-init-token" test "$(grep -c '^C_InitToken ' "$TMP/calls.log")" -eq 1
check "$t/one-init-pin" test "$(grep -c '^C_InitPIN rv=CKR_OK' "$TMP/calls.log")" -eq 1
check "$t/initialising-once" test "$(grep -c 'initialising it' "$TMP/st.out")" -eq 1
check "$t/ca-issued-one" test "$(ca_issued)" -eq $((issued + 1))
stop_station
check "$t/no-pin-anywhere" sh -c "! grep -q -F -e \"\$(cat '$TMP/mailed.pin')\" -e '$SO_PIN' \
	'$TMP/st.out' '$TMP/st.err' '$TMP/journal' '$TMP/blank.csv.state' '$TMP/calls.log'"

# --- a failing PIN mailer: the card initialised, not enrolled, the operator told
t=/station/blank-mailer-fails
: > "$TMP/mailer-fails"
: > "$TMP/calls.log"
issued=$(ca_issued)
station || exit 1
check "$t/failed" said "^FAILED card [0-9a-f]+: the PIN mailer $TMP/mailer failed \\(exit 3\\): \
the card is initialised but empty and nobody has its user PIN: initialise it again"
s=$(sed -n 's|^FAILED card \([0-9a-f]*\): the PIN mailer.*|\1|p' "$TMP/st.out")
check "$t/remove" said "^remove the card $s\$"
check "$t/no-key" test "$(grep -c '^C_GenerateKeyPair ' "$TMP/calls.log")" -eq 0
check "$t/ca-nothing" test "$(ca_issued)" -eq "$issued"
check "$t/row-not-used" test "$(grep -c . "$TMP/blank.csv.state")" -eq 2
check "$t/journal" grep -q "\"outcome\": \"failed\".*PIN mailer" "$TMP/journal"
stop_station
rm -f "$TMP/mailer-fails"
remove_blank "$(sed -n 's/^P11ENROLL_TOKEN_LABEL=//p' "$TMP/mailer.env")"

# --- a wrong SO PIN: CKR_PIN_INCORRECT named, the card left blank ------------
t=/station/blank-wrong-so-pin
P11WRAP_FAIL=C_InitToken=CKR_PIN_INCORRECT
export P11WRAP_FAIL
: > "$TMP/calls.log"
rm -f "$TMP/mailed.pin"
station || exit 1
check "$t/failed" said '^FAILED card \(blank\): initializing the blank card failed: .*CKR_PIN_INCORRECT'
polls_after 10
check "$t/once" test "$(grep -c '^C_InitToken ' "$TMP/calls.log")" -eq 1
check "$t/no-init-pin" test "$(grep -c '^C_InitPIN ' "$TMP/calls.log")" -eq 0
check "$t/nothing-mailed" test ! -e "$TMP/mailed.pin"
stop_station
check "$t/summary" grep -q '^station: 0 enrolled, 1 failed, 0 skipped$' "$TMP/st.out"
unset P11WRAP_FAIL

# --- a blank card without init_token: said, untouched ------------------------
t=/station/blank-no-init
station_conf "$TMP/blank.csv"
sed -i "s|^module = .*|module = $WRAP|" "$TMP/p11enroll.conf"
: > "$TMP/calls.log"
station || exit 1
check "$t/skipped" said '^SKIPPED card \(blank\): blank card: set init_token = yes or initialise it$'
polls_after 5
check "$t/untouched" test "$(grep -c -E '^C_(InitToken|OpenSession) ' "$TMP/calls.log")" -eq 0
stop_station
unset P11WRAP_LOG

# --- init_token without what it needs: refused at the start --------------------
t=/station/blank-config
blank_conf
sed -i '/^so_pin_source = /d' "$TMP/p11enroll.conf"
p11e station test < /dev/null
check "$t/no-so-pin-exit-2" expect_rc 2
check "$t/no-so-pin-says" grep_err 'init_token = yes needs so_pin_source'
blank_conf
sed -i '/^pin_mailer = /d' "$TMP/p11enroll.conf"
p11e station test < /dev/null
check "$t/no-mailer-exit-2" expect_rc 2
check "$t/no-mailer-says" grep_err 'nobody would get it \(standard output is no terminal.*set pin_mailer'

# --- no mailer, a terminal: the generated PIN shown there once ---------------
t=/station/blank-terminal
: > "$TMP/st.out"
: > "$TMP/typed"
: > "$TMP/journal"
python3 "$TMP/ptyrun.py" "$TMP/st.out" "$TMP/typed" "$P11ENROLL" -c "$TMP/p11enroll.conf" \
	station test 2> "$TMP/st.err" &
STATION_PID=$!
check "$t/shown" said 'card [0-9a-f]+: its user PIN is [0-9]{8} \(shown only now\): give it to '
pin=$(sed -n 's/.*its user PIN is \([0-9]*\) .*/\1/p' "$TMP/st.out")
check "$t/enrolled" said 'OK.* card [0-9a-f]+: /CN=blank 2/O=Example: certificate '
check "$t/shown-once" test "$(grep -c -F "$pin" "$TMP/st.out")" -eq 1
lbl=$("$PKCS11_TOOL" --module "$SOFTHSM2_MODULE" -L 2> /dev/null |
	sed -n 's/^ *token label *: *\(holder-[0-9a-f]*-2\)$/\1/p')
check "$t/label-from-row" sh -c "echo '$lbl' | grep -q -x -E 'holder-[0-9a-f]{8}-2'"
slot=$(token_slot "$lbl")
check "$t/pin-logs-in-to-key" sh -c "'$PKCS11_TOOL' --module '$SOFTHSM2_MODULE' --slot '$slot' \
	--login --pin '$pin' --list-objects --type privkey 2> /dev/null |
	grep -q -x -E '[[:space:]]*label:[[:space:]]*badge'"
kill -TERM "$STATION_PID"
wait "$STATION_PID"
STATION_PID=
check "$t/pin-nowhere-else" sh -c "! grep -q -F -e '$pin' -e '$SO_PIN' '$TMP/st.err' \
	'$TMP/journal' '$TMP/blank.csv.state'"
remove_blank "$lbl"
SOFTHSM2_CONF="$TMP/softhsm2.conf"
export SOFTHSM2_CONF

# --- a card pulled out at each step (tests/p11wrap: from the call of that step
# on, the card's enrollment process gets CKR_DEVICE_REMOVED or
# CKR_TOKEN_NOT_PRESENT; P11WRAP_ONCE: that process only), then inserted
# again in the same run: its row is kept for it, and it is recovered (what
# the CA confirmed is put in place, an orphan key removed and the card
# enrolled anew) ------------------------------------------------------------
# pulled STEP CALL=CKR ADOPTED ISSUED: the card pN for row /CN=p STEP;
# ADOPTED 1 when the certificate stored before is put in place; ISSUED
# the certificates the CA issues for it in all.
printf 'subject\n/CN=p keygen\n/CN=p request\n/CN=p response\n/CN=p chain\n/CN=p relabel\n' > "$TMP/p.csv"
pulled() {
	t=/station/pulled/$1
	stop_station
	station_conf "$TMP/p.csv"
	sed -i "s|^module = .*|module = $WRAP|" "$TMP/p11enroll.conf"
	P11WRAP_FAIL=$2
	: > "$TMP/once"
	: > "$TMP/calls.log"
	issued=$(ca_issued)
	station || exit 1
	insert_card "p$1" || exit 1
	s=$(card_serial "p$1")
	check "$t/failed-line" said "^FAILED card $s: /CN=p $1: .* \\(exit 3\\), "
	_rv=${2#*=}
	check "$t/at-that-call" grep -q "^${2%%=*} rv=${_rv%@*} injected" "$TMP/calls.log"
	check "$t/says-removed" grep -q "${_rv%@*}: the token was removed" "$TMP/st.err"
	check "$t/told-pulled" said "^card $s was pulled out while being enrolled: insert it again to finish or undo what was left \\(its row is kept for it\\)\$"
	check "$t/row-kept" test "$(awk '{ l = $1 } END { print l }' "$TMP/p.csv.state")" = taken
	said "^remove the card $s\$"
	remove_card "p$1"
	said 'waiting for a card' 2
	mv "$TMP/removed/$(awk -v l="p$1" '$1 == l { d = $2 } END { print d }' "$TMP/dirs")" "$TMP/tokens/"
	check "$t/recovering" said "^card $s: it was pulled out while being enrolled: recovering it\$"
	if [ "$3" = 1 ]; then
		check "$t/recovered-ok" said "^OK card $s: /CN=p $1: certificate [0-9A-F]+ \\(recovered: stored before it was pulled out\\), "
	else
		check "$t/orphan-removed" said "^card $s: recovered: no certificate reached it before it was pulled out, anything left half-done is removed\$"
		check "$t/enrolled-anew" said "^OK card $s: /CN=p $1: certificate [0-9A-F]+, "
	fi
	check "$t/one-pair" test "$(label_count "p$1" badge)" -eq 3
	check "$t/nothing-new-left" test "$(label_count "p$1" 'badge \(new\)')" -eq 0
	check "$t/key-id" same_id "p$1"
	check "$t/subject" test "$(subject_of "p$1" badge)" = "subject=CN=p $1"
	check "$t/ca-issued" test "$(ca_issued)" -eq $((issued + $4))
	check "$t/same-row-done" test "$(awk '{ l = $1 } END { print l }' "$TMP/p.csv.state")" = done
	stop_station
	remove_card "p$1"
}
P11WRAP_LOG="$TMP/calls.log"
P11WRAP_ONCE="$TMP/once"
P11WRAP_GONE=1
export P11WRAP_LOG P11WRAP_ONCE P11WRAP_GONE P11WRAP_FAIL
# after the key generation: nothing on the card, nothing sent
pulled keygen C_GenerateKeyPair=CKR_DEVICE_REMOVED 0 1
# at the request's signature (proof of possession): an orphan key
pulled request C_Sign=CKR_TOKEN_NOT_PRESENT 0 1
# at the response, storing the chain (its first CA certificate; the certificate
# itself goes last): the CA issued one the card never
# got (the certConf rejects it), the orphan key removed, a second request
pulled response C_CreateObject=CKR_DEVICE_REMOVED@1 0 2
# the same, after the issuing CA's certificate was written (the root's
# fails): the certificate goes last, so none was stored and none is adopted
pulled chain C_CreateObject=CKR_DEVICE_REMOVED@2 0 2
# during the certificate write, after the CA's confirmation (the relabelling
# of "badge (new)"): put in place, no second request
pulled relabel C_SetAttributeValue=CKR_DEVICE_REMOVED@3 1 1
unset P11WRAP_LOG P11WRAP_ONCE P11WRAP_GONE P11WRAP_FAIL

# --- really pulled out (its token directory moved out of the store) while the
# CA holds the request: recovered when it is back ------------------------------
t=/station/pulled/while-the-ca-holds-the-ir
stop_station
start_ca --hang-on ir --hang-count 1 || exit 1
printf 'subject\n/CN=p held\n' > "$TMP/p2.csv"
station_conf "$TMP/p2.csv"
issued=$(ca_issued)
station || exit 1
insert_card pheld || exit 1
s=$(card_serial pheld)
check "$t/hang-reached" wait_for 30 grep -q 'hang: ir received' "$TMP/ca.log"
remove_card pheld
check "$t/failed-line" said "^FAILED card $s: /CN=p held: "
check "$t/told-pulled" said "^card $s was pulled out while being enrolled: insert it again"
check "$t/row-kept" test "$(awk '{ l = $1 } END { print l }' "$TMP/p2.csv.state")" = taken
check "$t/no-remove-line" sh -c "! grep -q '^remove the card $s' '$TMP/st.out'"
said 'waiting for a card' 2
mv "$TMP/removed/$(awk '$1 == "pheld" { d = $2 } END { print d }' "$TMP/dirs")" "$TMP/tokens/"
check "$t/recovering" said "^card $s: it was pulled out while being enrolled: recovering it\$"
check "$t/enrolled" said "^OK card $s: /CN=p held: certificate [0-9A-F]+, "
check "$t/one-pair" test "$(label_count pheld badge)" -eq 3
check "$t/nothing-new-left" test "$(label_count pheld 'badge \(new\)')" -eq 0
check "$t/key-id" same_id pheld
check "$t/orphan-removed" grep -q "^card $s: recovered: no certificate reached it" "$TMP/st.out"
# the held answer's certificate never reached the card (nor was confirmed)
check "$t/ca-issued" test "$(ca_issued)" -eq $((issued + 2))
check "$t/row-done" test "$(done_rows "$TMP/p2.csv.state")" -eq 1
stop_station
remove_card pheld

# while the CA holds the certConf: the certificate is on the card (under
# "badge (new)"), the CA may count it confirmed: put in place, no second one
t=/station/pulled/while-the-ca-holds-the-certconf
start_ca --hang-on certConf --hang-count 1 || exit 1
printf 'subject\n/CN=p conf\n' > "$TMP/p3.csv"
station_conf "$TMP/p3.csv"
issued=$(ca_issued)
station || exit 1
insert_card pconf || exit 1
s=$(card_serial pconf)
check "$t/hang-reached" wait_for 30 grep -q 'hang: certConf received' "$TMP/ca.log"
remove_card pconf
check "$t/told-pulled" said "^card $s was pulled out while being enrolled: insert it again"
check "$t/row-kept" test "$(awk '{ l = $1 } END { print l }' "$TMP/p3.csv.state")" = taken
said 'waiting for a card' 2
mv "$TMP/removed/$(awk '$1 == "pconf" { d = $2 } END { print d }' "$TMP/dirs")" "$TMP/tokens/"
check "$t/recovered-ok" said "^OK card $s: /CN=p conf: certificate [0-9A-F]+ \\(recovered: stored before it was pulled out\\), "
check "$t/one-pair" test "$(label_count pconf badge)" -eq 3
check "$t/nothing-new-left" test "$(label_count pconf 'badge \(new\)')" -eq 0
check "$t/key-id" same_id pconf
check "$t/ca-issued-one" test "$(ca_issued)" -eq $((issued + 1))
check "$t/row-done" test "$(done_rows "$TMP/p3.csv.state")" -eq 1
stop_station
remove_card pconf
start_ca || exit 1

# --- settings given only on the station's command line reach each card --------
t=/station/command-line
printf 'subject\n/CN=cli\n' > "$TMP/cli.csv"
station_conf "$TMP/cli.csv"
station --key-type rsa:2048 --cert-out "$TMP/cli.pem" || exit 1
insert_card cli1 || exit 1
s=$(card_serial cli1)
check "$t/ok" said "^OK card $s: /CN=cli: certificate "
# card_is_rsa2048: the certificate on the card (labelled badge) certifies
# an RSA 2048 key, and is the one --cert-out wrote
card_is_rsa2048() {
	subject_of cli1 badge > /dev/null &&
		"$OPENSSL_BIN" x509 -inform DER -in "$TMP/c.der" -noout -text |
		grep -q 'Public-Key: (2048 bit)' &&
		"$OPENSSL_BIN" x509 -in "$TMP/cli.pem" -outform DER | cmp -s - "$TMP/c.der"
}
check "$t/key-type-and-cert-out" card_is_rsa2048
stop_station
remove_card cli1

# --- configuration mistakes: refused before any card ---------------------------
t=/station/config
write_conf unused "token = pkcs11:model=SoftHSM%20v2
subject =
station_poll = 50"
sed -i '/^subject =/d' "$TMP/p11enroll.conf"
p11e station test < /dev/null
check "$t/no-queue-no-subject-exit-2" expect_rc 2
check "$t/says-what-to-set" grep_err 'no queue and no subject: set queue'
station_conf "$TMP/missing.csv"
p11e station test
check "$t/missing-queue-exit-2" expect_rc 2
check "$t/names-queue" grep_err "missing.csv"

# --- no PIN or secret anywhere ------------------------------------------------
t=/station/secrets
check "$t/none" no_secret_in "$TMP/st.out" "$TMP/st.err" "$TMP/journal" "$TMP/q.csv.state" \
	"$TMP/bad.csv.state"
finish
