#!/bin/sh
# /batch: p11enroll enroll NAME --batch FILE.csv enrolls every row on one
# token in one process: one login, one session and one connection to the
# CA for all rows (counted in the tests/p11wrap call log and the test CA's
# log), each row its own label, subject and SANs; a row the CA rejects
# leaves nothing behind and does not stop the others; a file with any
# error is refused whole before the token is touched.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
WRAP="$top_builddir/tests/p11wrap/p11wrap.so"
need_file "$WRAP"
setup
plan 55
export P11WRAP_MODULE="$SOFTHSM2_MODULE"
LOG="$TMP/calls.log"

# conf TOKEN: the [test] enrollment on TOKEN through p11wrap.
conf() {
	write_conf "$1"
	sed -i "s|^module = .*|module = $WRAP|" "$TMP/p11enroll.conf"
}

# batch FILE [COMMAND]: p11enroll COMMAND (enroll) test --batch FILE; RC,
# $TMP/out, $TMP/err, the calls in $LOG.
batch() {
	: > "$LOG"
	P11WRAP_LOG="$LOG" "$P11ENROLL" -c "$TMP/p11enroll.conf" "${2:-enroll}" test --batch "$1" \
		> "$TMP/out" 2> "$TMP/err"
	RC=$?
}

calls() {
	grep -c "^$1 " "$LOG"
}

# subject_of TOKEN LABEL: the subject of the certificate labelled LABEL.
subject_of() {
	"$PKCS11_TOOL" --module "$SOFTHSM2_MODULE" --slot "$(token_slot "$1")" --read-object \
		--type cert --label "$2" -o "$TMP/c.der" > /dev/null 2>&1 &&
		"$OPENSSL_BIN" x509 -inform DER -in "$TMP/c.der" -noout -subject -nameopt RFC2253
}

# --- six rows: quoting, CRLF line ends, an empty line, the SAN column -------
start_ca || exit 1
make_token rows || exit 1
conf rows
printf '%s\n' 'label,subject,san' 'r1,/CN=row 1,DNS:r1.example' \
	'r2,"/CN=row 2/O=Comma, Inc.","DNS:r2.example,DNS:www.r2.example"' \
	'r3,/CN=row 3,' '' 'r4,/CN=row 4,IP:10.0.0.4' > "$TMP/rows.csv"
printf 'r5,/CN=row 5,DNS:r5.example\r\nr6,"/CN=row ""6""",DNS:r6.example\r\n' >> "$TMP/rows.csv"
batch "$TMP/rows.csv"
t=/batch/rows
check "$t/exit-0" expect_rc 0
check "$t/summary" grep -q 'rows.csv: 6 rows: 6 enrolled, 0 failed, 0 skipped (done before)$' "$TMP/out"
check "$t/one-login" test "$(calls C_Login)" -eq 1
check "$t/one-session" test "$(calls C_OpenSession)" -eq 1
check "$t/six-keys" test "$(calls C_GenerateKeyPair)" -eq 6
check "$t/one-connection" test "$(grep -c 'connection [0-9]* opened' "$TMP/ca.log")" -eq 1
check "$t/twelve-exchanges" test "$(grep -c 'POST /.well-known/cmp' "$TMP/ca.log")" -eq 12
for l in r1 r2 r3 r4 r5 r6; do
	check "$t/$l-pair-and-cert" test "$(label_count rows "$l")" -eq 3
done
check "$t/quoted-comma" test "$(subject_of rows r2)" = 'subject=O=Comma\, Inc.,CN=row 2'
check "$t/quoted-quote" test "$(subject_of rows r6)" = 'subject=CN=row \"6\"'
check "$t/nothing-new-left" test "$(label_count rows '.* \(new\)')" -eq 0

# --- rows the CA rejects: the others go on -----------------------------------
start_ca --fault reject=badCertTemplate --fault-skip 1 --fault-count 2 || exit 1
make_token some || exit 1
conf some
printf '%s\n' 'subject,label' '/CN=b 1,b1' '/CN=b 2,b2' '/CN=b 3,b3' '/CN=b 4,b4' > "$TMP/some.csv"
batch "$TMP/some.csv"
t=/batch/rejected
check "$t/exit-6" expect_rc 6
check "$t/summary" grep -q 'some.csv: 4 rows: 2 enrolled, 2 failed, 0 skipped (done before)$' "$TMP/out"
check "$t/names-row" grep_err "some.csv:3: row 'b2' not enrolled \(exit 6\)"
check "$t/names-other-row" grep_err "some.csv:4: row 'b3' not enrolled \(exit 6\)"
check "$t/says-why" grep_err 'badCertTemplate'
check "$t/b1-enrolled" test "$(label_count some b1)" -eq 3
check "$t/b2-nothing" test "$(label_count some 'b2( \(new\))?')" -eq 0
check "$t/b3-nothing" test "$(label_count some 'b3( \(new\))?')" -eq 0
check "$t/b4-enrolled" test "$(label_count some b4)" -eq 3
check "$t/one-login" test "$(calls C_Login)" -eq 1

# --- a hundred rows, five of them rejected and one for another token --------
# (issue 11): every other row enrolled in the one process, each failure
# named with its row, the rerun of the file requests the failed rows only
start_ca --fault reject=badCertTemplate --fault-on ir --fault-skip 40 --fault-count 5 || exit 1
make_token hundred || exit 1
conf hundred
ca0=$(wc -l < "$TMP/ca.log")
{
	echo 'label,subject,token_serial'
	i=1
	while [ $i -le 100 ]; do
		case $i in 77) echo "h$i,/CN=h $i,0000nottheserial" ;; *) echo "h$i,/CN=h $i," ;; esac
		i=$((i + 1))
	done
} > "$TMP/hundred.csv"
batch "$TMP/hundred.csv"
t=/batch/hundred
check "$t/exit-nonzero" test "$RC" -ne 0
check "$t/summary" \
	grep -q 'hundred.csv: 100 rows: 94 enrolled, 6 failed, 0 skipped (done before)$' "$TMP/out"
check "$t/rejected-named" test "$(grep -c "hundred.csv:4[2-6]: row 'h4[1-5]' not enrolled (exit 6)" \
	"$TMP/err")" -eq 5
check "$t/other-token-named" grep_err "hundred.csv:78: row 'h77' refused: the row is for the token"
check "$t/enrolled-pairs" test "$(label_count hundred 'h[0-9]+')" -eq $((94 * 3))
check "$t/failed-nothing-left" test "$(label_count hundred 'h(4[1-5]|77)( \(new\))?')" -eq 0
check "$t/one-login" test "$(calls C_Login)" -eq 1
check "$t/one-connection" test \
	"$(tail -n +$((ca0 + 1)) "$TMP/ca.log" | grep -c 'connection [0-9]* opened')" -eq 1
start_ca || exit 1
conf hundred
batch "$TMP/hundred.csv"
check "$t/rerun-summary" \
	grep -q 'hundred.csv: 100 rows: 5 enrolled, 1 failed, 94 skipped (done before)$' "$TMP/out"
check "$t/rerun-pairs" test "$(label_count hundred 'h[0-9]+')" -eq $((99 * 3))

# --- files refused whole, before the token is touched ------------------------
start_ca || exit 1
make_token none || exit 1
conf none
# refused NAME CONTENT ERE: the file is refused (exit 2), ERE in stderr,
# and the module was never loaded.
refused() {
	printf '%b' "$2" > "$TMP/$1.csv"
	batch "$TMP/$1.csv"
	check "/batch/refused/$1/exit-2" expect_rc 2
	check "/batch/refused/$1/message" grep_err "$3"
}
refused unknown-column 'label,subject,colour\nx,/CN=x,red\n' \
	"unknown-column.csv:1: column 'colour' is not known"
refused duplicate-label 'label,subject\nx,/CN=1\ny,/CN=2\nx,/CN=3\n' \
	"duplicate-label.csv:4: label 'x' is the label of the row on line 2 too"
refused no-label 'subject\n/CN=x\n' 'no label column'
refused fields 'label,subject\nx,/CN=x,extra\n' 'fields.csv:2: 3 fields where the header has 2'
refused bad-subject 'label,subject\nx,CN=no-slash\n' 'bad-subject.csv:2: subject: '
refused open-quote 'label,subject\nx,"/CN=x\n' 'open-quote.csv:2: a quoted field never closes'
refused replace 'label,subject,replace\nx,/CN=x,maybe\n' 'replace.csv:2: replace: give yes or no'
refused token-serial 'label,token_serial\nx,has space\n' 'token-serial.csv:2: token_serial: not a token'
check "/batch/refused/token-untouched" test "$(calls C_Initialize)" -eq 0

batch "$TMP/rows.csv" renew
check "/batch/renew-refused/exit-2" expect_rc 2
check "/batch/renew-refused/message" grep_err "^p11enroll: error: --batch does not apply to renew; see 'p11enroll help renew'$"
finish
