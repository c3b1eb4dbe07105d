#!/bin/sh
# /batchrerun: enroll --batch uses each row once (FILE.state next to the
# file): a rerun skips the rows done and requests only the others (a row
# the CA rejected, a row added); a run killed between "taken" and "done"
# (the test CA holds its answer: --hang-on) leaves no row enrolled twice
# and none skipped on the rerun, whether the CA had answered or not; a
# second run on the same file is refused (exit 11) while one runs; torn
# and corrupt state lines are ignored with a warning; the journal has one
# valid JSON line per row outcome and no PIN or secret.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
need_cmd python3
setup
plan 48
J="$TMP/journal.jsonl"

# conf: [test] on token q, [test2] on token q2, both journalling to $J.
conf() {
	write_conf q "journal = $J"
	printf '%s\n' "[test2]" "token = pkcs11:token=q2" "pin_source = file:$TMP/pin" \
		"label = other" "subject = /CN=other" "journal = $J" >> "$TMP/p11enroll.conf"
}

# batch FILE [NAME]: p11enroll enroll NAME (test) --batch FILE; RC, $TMP/out, $TMP/err.
batch() {
	"$P11ENROLL" -c "$TMP/p11enroll.conf" enroll "${2:-test}" --batch "$1" \
		> "$TMP/out" 2> "$TMP/err"
	RC=$?
}

summary() {
	grep -q -F "$1" "$TMP/out" ||
		{ echo "# stdout lacks '$1':"; sed 's/^/#   /' "$TMP/out"; return 1; }
}

# certs_of LABEL: certificates on token q labelled exactly LABEL.
certs_of() {
	_co=$(objects q cert) || { echo unreadable; return 1; }
	printf '%s\n' "$_co" | grep -c -x -E "[[:space:]]*label:[[:space:]]*$1"
}

make_token q || exit 1
make_token q2 || exit 1

# --- a row the CA rejects, then the rerun: only it is requested ---------------
start_ca --fault reject=badCertTemplate --fault-skip 1 --fault-count 1 || exit 1
conf
printf '%s\n' 'label,subject' 'q1,/CN=q 1' 'q2,/CN=q 2' 'q3,/CN=q 3' > "$TMP/q.csv"
batch "$TMP/q.csv"
t=/batchrerun/first
check "$t/exit-6" expect_rc 6
check "$t/summary" summary 'q.csv: 3 rows: 2 enrolled, 1 failed, 0 skipped (done before)'
check "$t/state-file" test -s "$TMP/q.csv.state"
n0=$(ca_issued)
start_ca || exit 1
conf
batch "$TMP/q.csv"
t=/batchrerun/rerun
check "$t/exit-0" expect_rc 0
check "$t/summary" summary 'q.csv: 3 rows: 1 enrolled, 0 failed, 2 skipped (done before)'
check "$t/one-request" test "$(ca_issued)" -eq $((n0 + 1))
check "$t/q2-enrolled" test "$(label_count q q2)" -eq 3
for l in q1 q2 q3; do
	check "$t/$l-one-cert" test "$(certs_of $l)" -eq 1
done
batch "$TMP/q.csv"
check "/batchrerun/all-done/summary" summary '3 rows: 0 enrolled, 0 failed, 3 skipped (done before)'
check "/batchrerun/all-done/nothing-requested" test "$(ca_issued)" -eq $((n0 + 1))
# another row added at the top, the others reordered: only the new one
printf '%s\n' 'subject,label' '/CN=q 0,q0' '/CN=q 3,q3' '/CN=q 1,q1' '/CN=q 2,q2' > "$TMP/q.csv"
batch "$TMP/q.csv"
t=/batchrerun/edited
check "$t/summary" summary '4 rows: 1 enrolled, 0 failed, 3 skipped (done before)'
check "$t/one-request" test "$(ca_issued)" -eq $((n0 + 2))

# --- torn and corrupt state lines: ignored with a warning --------------------
sed -i '2s/done /done x/' "$TMP/q.csv.state"
printf 'done 0123' >> "$TMP/q.csv.state"
batch "$TMP/q.csv"
t=/batchrerun/corrupt-state
check "$t/warns-corrupt" \
	grep_err 'q.csv.state:2: not a row state line, or its checksum does not match: line ignored'
check "$t/warns-torn" grep_err 'a torn last line'
# the row whose line was spoilt is taken up again, but its label holds the
# certificate it got: the replace guard refuses it (nothing is destroyed,
# the message names the certificate); the others are skipped
check "$t/summary" summary '4 rows: 0 enrolled, 1 failed, 3 skipped (done before)'
check "$t/guard-says" grep_err 'give --replace'
check "$t/compacted" sh -c "! grep -q -e '^done x' -e '^done 0123\$' '$TMP/q.csv.state'"

# --- the wrong token: refused -------------------------------------------------
printf '%s\n' 'label,subject,token_serial' 'w1,/CN=w 1,0000nottheserial' > "$TMP/w.csv"
batch "$TMP/w.csv"
t=/batchrerun/token-serial
check "$t/exit-3" expect_rc 3
check "$t/message" \
	grep_err "w.csv:2: row 'w1' refused: the row is for the token with serial '0000nottheserial'"
check "$t/nothing-made" test "$(label_count q 'w1( \(new\))?')" -eq 0

# --- killed while the CA holds the ir: k1 is requested again ------------------
start_ca --hang-on ir --hang-count 1 || exit 1
conf
printf '%s\n' 'label,subject' 'k1,/CN=k 1' 'k2,/CN=k 2' 'k3,/CN=k 3' > "$TMP/k.csv"
"$P11ENROLL" -c "$TMP/p11enroll.conf" enroll test --batch "$TMP/k.csv" > "$TMP/bg.out" 2>&1 &
BG=$!
t=/batchrerun/kill-ir
check "$t/hang-reached" wait_for 30 grep -q 'hang: ir received' "$TMP/ca.log"
check "$t/k1-taken" grep -q '^taken ' "$TMP/k.csv.state"
# the same file while it runs (another enrollment: not its lock): refused
batch "$TMP/k.csv" test2
check "/batchrerun/concurrent/exit-11" expect_rc 11
check "/batchrerun/concurrent/message" grep_err 'another p11enroll run works on this queue file'
kill -9 $BG
wait $BG 2> /dev/null
check "$t/killed" gone $BG
start_ca || exit 1
conf
batch "$TMP/k.csv"
check "$t/exit-0" expect_rc 0
check "$t/again" grep_err "row 'k1' has no certificate from that run: requesting it again"
check "$t/summary" summary '3 rows: 3 enrolled, 0 failed, 0 skipped (done before)'
for l in k1 k2 k3; do
	check "$t/$l-one-pair" test "$(label_count q $l)" -eq 3
done
check "$t/nothing-new-left" test "$(label_count q 'k1 \(new\)')" -eq 0

# --- killed while the CA holds the pkiConf: m1's certificate is adopted -------
start_ca --hang-on certConf --hang-count 1 || exit 1
conf
printf '%s\n' 'label,subject' 'm1,/CN=m 1' 'm2,/CN=m 2' > "$TMP/m.csv"
n1=$(ca_issued)
"$P11ENROLL" -c "$TMP/p11enroll.conf" enroll test --batch "$TMP/m.csv" > "$TMP/bg.out" 2>&1 &
BG=$!
t=/batchrerun/kill-certconf
check "$t/hang-reached" wait_for 30 grep -q 'hang: certConf received' "$TMP/ca.log"
kill -9 $BG
wait $BG 2> /dev/null
start_ca || exit 1
conf
batch "$TMP/m.csv"
check "$t/exit-0" expect_rc 0
check "$t/finished" summary "row 'm1' ($TMP/m.csv:2): enrolled by the interrupted run"
check "$t/summary" summary '2 rows: 2 enrolled, 0 failed, 0 skipped (done before)'
check "$t/no-second-request" test "$(ca_issued)" -eq $((n1 + 2))
check "$t/m1-one-pair" test "$(label_count q m1)" -eq 3
batch "$TMP/m.csv"
check "$t/rerun-skips" summary '2 rows: 0 enrolled, 0 failed, 2 skipped (done before)'

# --- the journal --------------------------------------------------------------
t=/batchrerun/journal
# a plain enroll writes its line too
p11e enroll test2
check "$t/enroll/exit-0" expect_rc 0
# the fields in their order, the first six: a plain enroll has no source
first='^{"time": "[^"]*", "outcome": "ok", "request": "ir", "source": null, '
first="$first"'"token_serial": "[0-9a-f]*", "label": "other", "subject": "/CN=other"'
check "$t/enroll/line" sh -c "tail -n 1 '$J' | grep -q '$first'"
cat > "$TMP/jcheck.py" << 'EOF2'
import json, re, sys
keys = {"time", "outcome", "request", "source", "token_serial", "label", "subject",
        "cert_serial", "not_after", "transaction", "error"}
rfc3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
n = {"ok": 0, "failed": 0, "refused": 0, "waiting": 0}
for line in open(sys.argv[1]):
    j = json.loads(line)
    assert set(j) == keys, j
    assert rfc3339.match(j["time"]), j
    n[j["outcome"]] += 1
    if j["outcome"] == "ok":
        assert re.match(r"^[0-9A-F]+$", j["cert_serial"]) and rfc3339.match(j["not_after"]), j
        assert j["label"] and j["token_serial"], j
    else:
        assert j["error"], j
print(n["ok"], n["failed"], n["refused"])
EOF2
check "$t/valid" python3 "$TMP/jcheck.py" "$J"
# ok: q1 q3, q2, q0, k1 k2 k3, m1 (finished), m2 (the killed runs wrote
# nothing), the plain enroll; failed: q2 rejected, the spoilt row refused by
# the replace guard; refused: w1
check "$t/counts" test "$(python3 "$TMP/jcheck.py" "$J")" = "10 2 1"
check "$t/rejected-says-why" grep -q '"outcome": "failed".*badCertTemplate' "$J"
check "$t/transaction" grep -q '"transaction": "[0-9a-f]\{32\}' "$J"
check "$t/no-secret" no_secret_in "$J" "$TMP"/*.state "$TMP/out" "$TMP/err"
finish
