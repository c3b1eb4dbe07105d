#!/bin/sh
# /replace: a new key pair under a label that holds a valid certificate is
# refused (exit 2, the certificate named, nothing on the token touched)
# unless --replace / replace = yes; an expired one is replaced as before;
# cr, p10cr and batch rows are guarded too.  revoke_replaced revokes the
# replaced certificate (own key, superseded) once the new one is stored;
# a refused rr leaves "LABEL (to revoke)", retried by the next run and by
# revoke --replaced; "already revoked" counts as done.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
WRAP="$top_builddir/tests/p11wrap/p11wrap.so"
need_file "$WRAP"
setup
plan 74
TOK=replace
make_token "$TOK" || exit 1

count_label() {
	label_count "$TOK" "$1"
}

serial_of() {
	"$OPENSSL_BIN" x509 -in "$1" -noout -serial | sed 's/^serial=//'
}

# revoked_in_log SERIAL_FILE REASON: the test CA revoked that certificate
# for that reason, asked with its own key.
revoked_in_log() {
	grep -q -i "rr: revoked serial 0*$(serial_of "$1") reason $2 protection own-key" \
		"$TMP/ca.log"
}

expired() {
	! "$OPENSSL_BIN" x509 -in "$1" -noout -checkend 0 > /dev/null 2>&1
}

# --- an expired certificate is replaced without --replace ---------------
start_ca --validity-seconds "$(scaled 2)" || exit 1
write_conf "$TOK"
p11e enroll test --label short --cert-out "$TMP/short.pem"
check "/replace/expired/setup" expect_rc 0
wait_for 30 expired "$TMP/short.pem"
check "/replace/expired/has-expired" expired "$TMP/short.pem"
start_ca || exit 1
write_conf "$TOK"
p11e enroll test --label short --cert-out "$TMP/short2.pem"
check "/replace/expired/exit-0" expect_rc 0
check "/replace/expired/replaced" test "$(serial_of "$TMP/short2.pem")" != \
	"$(serial_of "$TMP/short.pem")"
check "/replace/expired/one-pair" test "$(count_label short)" -eq 3

# --- refusal ------------------------------------------------------------
p11e enroll test --cert-out "$TMP/one.pem"
check "/replace/setup/enrolled" expect_rc 0
id1=$(label_id "$TOK" privkey enrolled-key)
before=$(count_objects "$TOK")
issued=$(ca_issued)
sed -i "s|^module = .*|module = $WRAP|" "$TMP/p11enroll.conf"
: > "$TMP/wrap.log"
export P11WRAP_MODULE="$SOFTHSM2_MODULE" P11WRAP_LOG="$TMP/wrap.log"
p11e enroll test
unset P11WRAP_MODULE P11WRAP_LOG
check "/replace/refused/exit-2" expect_rc 2
check "/replace/refused/names-subject" grep_err 'subject /CN=p11enroll test/O=Example'
check "/replace/refused/names-serial" grep_err "serial 0*$(serial_of "$TMP/one.pem")"
check "/replace/refused/names-not-after" grep_err 'not after [A-Z][a-z][a-z] .*GMT'
check "/replace/refused/says-what-to-do" grep_err 'give --replace \(replace = yes\).*another label'
check "/replace/refused/no-keygen" sh -c "! grep -q '^C_GenerateKeyPair' '$TMP/wrap.log'"
check "/replace/refused/no-write" sh -c \
	"! grep -q -E '^C_(CreateObject|DestroyObject|SetAttributeValue) ' '$TMP/wrap.log'"
check "/replace/refused/wrap-logged" grep -q '^C_FindObjectsInit' "$TMP/wrap.log"
check "/replace/refused/objects-unchanged" test "$(count_objects "$TOK")" -eq "$before"
check "/replace/refused/same-key" test "$(label_id "$TOK" privkey enrolled-key)" = "$id1"
check "/replace/refused/nothing-issued" test "$(ca_issued)" -eq "$issued"
write_conf "$TOK"

# --replace replaces it (and deletes the old pair, as before).
p11e enroll test --replace --cert-out "$TMP/two.pem"
check "/replace/option/exit-0" expect_rc 0
check "/replace/option/new-key" test "$(label_id "$TOK" privkey enrolled-key)" != "$id1"
check "/replace/option/one-pair" test "$(count_label enrolled-key)" -eq 3
check "/replace/option/old-gone" test "$(count_objects "$TOK")" -eq "$before"
check "/replace/option/not-revoked" sh -c "! grep -q 'rr:' '$TMP/ca.log'"

# replace = yes in the configuration.
write_conf "$TOK" "replace = yes"
p11e enroll test --cert-out "$TMP/three.pem"
check "/replace/config/exit-0" expect_rc 0
check "/replace/config/new-cert" test "$(serial_of "$TMP/three.pem")" != \
	"$(serial_of "$TMP/two.pem")"
# --no-replace on the command line wins over the file.
p11e enroll test --no-replace
check "/replace/no-replace/exit-2" expect_rc 2
write_conf "$TOK"

# cr and p10cr generate a key too: refused the same way.
n=$(count_objects "$TOK")
p11e cr test --signer enrolled-key
check "/replace/cr/exit-2" expect_rc 2
check "/replace/cr/names-serial" grep_err "serial 0*$(serial_of "$TMP/three.pem")"
p11e p10cr test
check "/replace/p10cr/exit-2" expect_rc 2
check "/replace/p10cr/message" grep_err 'holds a valid certificate'
check "/replace/cr-p10cr/objects-unchanged" test "$(count_objects "$TOK")" -eq "$n"
p11e p10cr test --replace --cert-out "$TMP/four.pem"
check "/replace/p10cr/replace-exit-0" expect_rc 0
# renew is for replacing: never refused.
p11e renew test --cert-out "$TMP/five.pem"
check "/replace/renew/not-refused" expect_rc 0

# --- batch: the row whose label is taken is refused, the others enroll --
p11e enroll test --label row-a --cert-out "$TMP/row-a.pem"
check "/replace/batch/setup" expect_rc 0
ida=$(label_id "$TOK" privkey row-a)
printf 'label,subject\nrow-a,/CN=a\nrow-b,/CN=b\nrow-c,/CN=c\n' > "$TMP/rows.csv"
p11e enroll test --batch "$TMP/rows.csv"
check "/replace/batch/exit-2" expect_rc 2
check "/replace/batch/row-named" grep_err "rows.csv:2: row 'row-a' not enrolled \(exit 2\)"
check "/replace/batch/cert-named" grep_err "serial 0*$(serial_of "$TMP/row-a.pem")"
check "/replace/batch/summary" grep -q '3 rows: 2 enrolled, 1 failed, 0 skipped' "$TMP/out"
check "/replace/batch/others-enrolled" test "$(count_label row-b)" -eq 3 -a \
	"$(count_label row-c)" -eq 3
check "/replace/batch/taken-untouched" test "$(label_id "$TOK" privkey row-a)" = "$ida"
printf 'label,subject\nrow-a,/CN=a\n' > "$TMP/row-a.csv"
p11e enroll test --batch "$TMP/row-a.csv" --replace
check "/replace/batch/replace-exit-0" expect_rc 0
check "/replace/batch/replaced" test "$(label_id "$TOK" privkey row-a)" != "$ida"
# the rerun of the first file: only the refused row is left, and the file's
# replace column (not the command line) lets it replace the pair
idb=$(label_id "$TOK" privkey row-b)
ida=$(label_id "$TOK" privkey row-a)
p11e enroll test --batch "$TMP/rows.csv"
check "/replace/batch/rerun-still-refused" expect_rc 2
check "/replace/batch/rerun-summary" grep -q '3 rows: 0 enrolled, 1 failed, 2 skipped' "$TMP/out"
printf 'label,subject,replace\nrow-a,/CN=a,yes\nrow-b,/CN=b,no\n' > "$TMP/cols.csv"
p11e enroll test --batch "$TMP/cols.csv"
check "/replace/batch/column-exit-2" expect_rc 2
check "/replace/batch/column-replaced" test "$(label_id "$TOK" privkey row-a)" != "$ida"
check "/replace/batch/column-no-refused" test "$(label_id "$TOK" privkey row-b)" = "$idb"
check "/replace/batch/column-summary" grep -q '2 rows: 1 enrolled, 1 failed, 0 skipped' "$TMP/out"

# --- revoke_replaced ----------------------------------------------------
old=$TMP/five.pem
: > "$TMP/ca.log"
p11e enroll test --replace --revoke-replaced --cert-out "$TMP/six.pem"
check "/replace/revoke/exit-0" expect_rc 0
check "/replace/revoke/old-revoked-superseded" revoked_in_log "$old" 4
check "/replace/revoke/says-revoked" grep -q 'revoked: *replaced certificate, serial' "$TMP/out"
check "/replace/revoke/old-deleted" test "$(count_label 'enrolled-key \(to revoke\)')" -eq 0
check "/replace/revoke/one-pair" test "$(count_label enrolled-key)" -eq 3
check "/replace/revoke/new-not-revoked" sh -c \
	"! grep -q -i 'revoked serial 0*$(serial_of "$TMP/six.pem")' '$TMP/ca.log'"

# The CA refuses the rr: the new certificate is in place, the old pair
# waits under "(to revoke)", and the next run retries and succeeds.
start_ca --fault reject=notAuthorized --fault-on rr --fault-when "$TMP/refuse-rr" || exit 1
write_conf "$TOK" "revoke_replaced = yes"
touch "$TMP/refuse-rr"
p11e enroll test --replace --cert-out "$TMP/seven.pem"
check "/replace/rr-refused/exit-6" expect_rc 6
check "/replace/rr-refused/failinfo" grep_err 'notAuthorized'
check "/replace/rr-refused/says-retried" grep_err 'retried by the next run'
check "/replace/rr-refused/new-in-place" grep_err 'new certificate is in place'
check "/replace/rr-refused/waits" test "$(count_label 'enrolled-key \(to revoke\)')" -eq 3
check "/replace/rr-refused/new-current" test "$(count_label enrolled-key)" -eq 3
rm -f "$TMP/refuse-rr"
issued=$(ca_issued)
: > "$TMP/ca.log"
p11e enroll test
check "/replace/rr-retry/exit-0" expect_rc 0
check "/replace/rr-retry/revoked" revoked_in_log "$TMP/six.pem" 4
check "/replace/rr-retry/deleted" test "$(count_label 'enrolled-key \(to revoke\)')" -eq 0
check "/replace/rr-retry/no-second-cert" test "$(ca_issued)" -eq "$issued"

# revoke --replaced does it on demand.
touch "$TMP/refuse-rr"
p11e enroll test --replace --cert-out "$TMP/eight.pem"
check "/replace/revoke-replaced/setup-exit-6" expect_rc 6
rm -f "$TMP/refuse-rr"
: > "$TMP/ca.log"
p11e revoke test --replaced
check "/replace/revoke-replaced/exit-0" expect_rc 0
check "/replace/revoke-replaced/revoked" revoked_in_log "$TMP/seven.pem" 4
check "/replace/revoke-replaced/deleted" test "$(count_label 'enrolled-key \(to revoke\)')" -eq 0
p11e revoke test --replaced
check "/replace/revoke-replaced/nothing-left" grep -q '^nothing to revoke' "$TMP/out"

# Already revoked (say, the answer to an earlier rr was lost): done too.
touch "$TMP/refuse-rr"
p11e enroll test --replace --cert-out "$TMP/nine.pem"
check "/replace/already/setup-exit-6" expect_rc 6
rm -f "$TMP/refuse-rr"
p11e revoke test --label other --cert "$TMP/eight.pem" --rr-protection pbm
check "/replace/already/revoked-aside" expect_rc 0
p11e revoke test --replaced
check "/replace/already/exit-0" expect_rc 0
check "/replace/already/says-so" grep_err 'already revoked'
check "/replace/already/deleted" test "$(count_label 'enrolled-key \(to revoke\)')" -eq 0
check "/replace/no-secret" no_secret_in "$TMP/out" "$TMP/err"
finish
