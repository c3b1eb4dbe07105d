#!/bin/sh
# /revoke: rr for the certificate on the token or in a file, with a reason
# the CA records; a second revocation is refused with certRevoked; --delete
# and delete_revoked remove the certificate and its key from the token.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
setup
plan 46
start_ca || exit 1
TOK=revoke
make_token "$TOK" || exit 1
write_conf "$TOK"

count_label() {
	label_count "$TOK" "$1"
}

serial_of() {
	"$OPENSSL_BIN" x509 -in "$1" -noout -serial | sed 's/^serial=//'
}

p11e enroll test --cert-out "$TMP/one.pem"
check "/revoke/setup/enrolled" expect_rc 0
: > "$TMP/ca.log"
p11e revoke test --reason keyCompromise
check "/revoke/exit-0" expect_rc 0
check "/revoke/summary" grep -q '^revoked test' "$TMP/out"
check "/revoke/reason-printed" grep -q 'reason: *keyCompromise' "$TMP/out"
# RFC 9483 4.2: signed by the revoked certificate's key, although a PBM
# secret is configured.
check "/revoke/default-own-key" grep -q "rr: revoked serial .* protection own-key" "$TMP/ca.log"
check "/revoke/ca-recorded-reason" grep -q -i "rr: revoked serial 0*$(serial_of "$TMP/one.pem") reason 1" \
	"$TMP/ca.log"
check "/revoke/objects-kept" test "$(count_label enrolled-key)" -eq 3
check "/revoke/no-secret" no_secret_in "$TMP/out" "$TMP/err"

p11e revoke test --reason keyCompromise
check "/revoke/twice/exit-6" expect_rc 6
check "/revoke/twice/cert-revoked" grep_err 'certRevoked'

# --delete: the revoked certificate and its key pair leave the token.
p11e enroll test --label second
check "/revoke/delete/enrolled" expect_rc 0
before=$(count_objects "$TOK")
p11e revoke test --label second --reason superseded --delete
check "/revoke/delete/exit-0" expect_rc 0
check "/revoke/delete/gone" test "$(count_label second)" -eq 0
check "/revoke/delete/only-the-pair" test "$(count_objects "$TOK")" -eq $((before - 3))
check "/revoke/delete/says-deleted" grep -q 'deleted:' "$TMP/out"

# delete_revoked = yes in the configuration does the same.
write_conf "$TOK" "delete_revoked = yes"
p11e enroll test --label third
p11e revoke test --label third
check "/revoke/delete-revoked/exit-0" expect_rc 0
check "/revoke/delete-revoked/gone" test "$(count_label third)" -eq 0

# --cert FILE of a certificate whose key is not under the label: its key
# cannot sign, and PBM is used only when asked for.
write_conf "$TOK"
p11e enroll test --label fourth --cert-out "$TMP/four.pem"
: > "$TMP/ca.log"
p11e revoke test --cert "$TMP/four.pem" --reason 4
check "/revoke/cert-file/no-pbm-by-default/exit-2" expect_rc 2
check "/revoke/cert-file/no-pbm-by-default/says-how" grep_err "rr_protection = pbm"
check "/revoke/cert-file/no-pbm-by-default/no-request" sh -c "! grep -q 'rr' '$TMP/ca.log'"
p11e revoke test --rr-protection nonsense --reason 4
check "/revoke/rr-protection/bad-value/exit-2" expect_rc 2
check "/revoke/rr-protection/bad-value/lists" grep_err "own-key, signer, pbm"
p11e revoke test --cert "$TMP/four.pem" --reason 4 --rr-protection pbm
check "/revoke/cert-file/exit-0" expect_rc 0
check "/revoke/cert-file/pbm-as-asked" grep -q "rr: revoked serial .* protection pbm" "$TMP/ca.log"
check "/revoke/cert-file/ca-recorded" grep -q -i "rr: revoked serial 0*$(serial_of "$TMP/four.pem") reason 4" \
	"$TMP/ca.log"
check "/revoke/cert-file/token-untouched" test "$(count_label fourth)" -eq 3

# Neither signer nor PBM configured: the certificate's own key signs the rr.
p11e enroll test --label fifth
sed -i -e '/^reference/d' -e '/^secret_source/d' "$TMP/p11enroll.conf"
: > "$TMP/ca.log"
p11e -v revoke test --label fifth --reason affiliationChanged
check "/revoke/own-key/exit-0" expect_rc 0
check "/revoke/own-key/ca-recorded" grep -q 'rr: revoked serial .* reason 3 protection own-key' "$TMP/ca.log"
write_conf "$TOK"

# Bad input never reaches the CA.
: > "$TMP/ca.log"
p11e revoke test --reason lost
check "/revoke/bad-reason/exit-2" expect_rc 2
check "/revoke/bad-reason/lists-names" grep_err 'keyCompromise'
p11e revoke test --cert "$TMP/nonexistent.pem"
check "/revoke/bad-file/exit-2" expect_rc 2
p11e revoke test --label nosuch
check "/revoke/not-on-token/exit-3" expect_rc 3
check "/revoke/not-on-token/message" grep_err "nosuch"
check "/revoke/bad-input/no-request" sh -c "! grep -q 'rr' '$TMP/ca.log'"

# The other PKIStatus values that end a revocation (RFC 4210 5.2.3, 5.3.10):
# the status printed as the CA gave it; a warning or notification is
# logged as well.
for st in "1:granted with modifications" "4:revocationWarning" "5:revocationNotification"; do
	n=${st%%:*}
	start_ca --rr-status "$n" || exit 1
	make_token "rr$n" || exit 1
	write_conf "rr$n"
	p11e enroll test
	check "/revoke/status-$n/enrolled" expect_rc 0
	p11e revoke test --reason superseded
	check "/revoke/status-$n/exit-0" expect_rc 0
	check "/revoke/status-$n/printed" grep -q "^  status: *${st#*:}" "$TMP/out"
	if [ "$n" = 1 ]; then
		check "/revoke/status-$n/not-logged" sh -c "! grep -q 'the CA answered' '$TMP/err'"
	else
		check "/revoke/status-$n/logged" grep_err "the CA answered ${st#*:}"
	fi
done
finish
