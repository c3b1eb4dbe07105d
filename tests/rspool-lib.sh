# What tests/ftp.sh and tests/sftp.sh run over each remote spool (server =
# ftp://, ftps://, sftp://, scp://): the test CA serves the directory the
# file server serves ($SPOOL, its --spool mode).  Sourced after tests/lib.sh;
# T is the tests' name prefix ("ftp"), SECRETS the words that must appear
# nowhere (passwords, passphrases).

privkeys() {
	_p=$(objects "$1" privkey) || { echo unreadable; return 1; }
	printf '%s\n' "$_p" | grep -c '^Private Key Object'
}

certs_on() {
	_c=$(objects "$1" cert) || { echo unreadable; return 1; }
	printf '%s\n' "$_c" | grep -c '^Certificate Object'
}

# no_store_secret FILE...: none of SECRETS, the PIN or the MAC secret.
no_store_secret() {
	for _s in $SECRETS "$USER_PIN" "$CMP_SECRET"; do
		grep -r -q -F -e "$_s" "$@" 2> /dev/null && { echo "# '$_s' found in $*"; return 1; }
	done
	return 0
}

# rspool_cycle NAME CONF_LINES: ir, kur, genm and rr on a fresh token
# through the store, the CA answering at once.
rspool_cycle() {
	_tok=$T-$1
	make_token "$_tok" || return 1
	start_ca --spool "$SPOOL" || return 1
	write_conf "$_tok" "$2
cert_out = $TMP/$1-cert.pem
store_wait = $(scaled 30)"
	ls "$SPOOL" > "$TMP/spool.before"
	p11e enroll test
	check "/$T/$1/ir/exit-0" expect_rc 0
	check "/$T/$1/ir/cert-on-token" test "$(certs_on "$_tok")" -ge 1
	check "/$T/$1/ir/one-key" test "$(privkeys "$_tok")" -eq 1
	check "/$T/$1/ir/cert-verifies" "$OPENSSL_BIN" verify -CAfile "$TMP/ca/root.pem" \
		-untrusted "$TMP/ca/ca.pem" "$TMP/$1-cert.pem"
	check "/$T/$1/ir/ca-saw-it" grep -q 'spool: answered' "$TMP/ca.out" "$TMP/ca.log"
	# this transaction's: the request that was not there before
	_tid=$(ls "$SPOOL" | grep -v -x -F -f "$TMP/spool.before" |
		sed -n 's/^\([0-9a-f]*\)\.1\.req\.der$/\1/p')
	check "/$T/$1/ir/files" test -s "$SPOOL/$_tid.2.req.der" -a -s "$SPOOL/$_tid.2.rsp.der"
	check "/$T/$1/ir/no-temp-left" test -z "$(ls -A "$SPOOL" | grep '^\.')"
	cp "$TMP/$1-cert.pem" "$TMP/$1-old.pem"
	p11e renew test
	check "/$T/$1/kur/exit-0" expect_rc 0
	check "/$T/$1/kur/new-cert" sh -c "! cmp -s '$TMP/$1-cert.pem' '$TMP/$1-old.pem'"
	check "/$T/$1/kur/one-key" test "$(privkeys "$_tok")" -eq 1
	p11e genm test --ca-certs "$TMP/$1-cacerts.pem"
	check "/$T/$1/genm/exit-0" expect_rc 0
	check "/$T/$1/genm/ca-certs" grep -q 'BEGIN CERTIFICATE' "$TMP/$1-cacerts.pem"
	p11e revoke test --reason superseded
	check "/$T/$1/rr/exit-0" expect_rc 0
	check "/$T/$1/rr/ca-revoked" test -s "$TMP/ca/revoked"
	check "/$T/$1/no-secret" no_store_secret "$TMP/out" "$TMP/err" "$SPOOL" "$TMP/state"
}

# rspool_wait NAME CONF_LINES: the CA does not serve the directory: the
# request is stored, the transaction saved (exit 9); `resume` finishes it
# once the CA has answered.
rspool_wait() {
	_tok=$T-$1-wait
	make_token "$_tok" || return 1
	start_ca || return 1
	write_conf "$_tok" "$2
store_wait = 1"
	ls "$SPOOL" > "$TMP/spool.before"
	p11e enroll test
	check "/$T/$1/wait/exit-9" expect_rc 9
	check "/$T/$1/wait/says-where" grep_err "directory"
	check "/$T/$1/wait/pending" test -f "$(pending_file "$_tok")"
	check "/$T/$1/wait/key-kept" test "$(privkeys "$_tok")" -eq 1
	_tid=$(ls "$SPOOL" | grep -v -x -F -f "$TMP/spool.before" |
		sed -n 's/^\([0-9a-f]*\)\.1\.req\.der$/\1/p')
	check "/$T/$1/wait/request-stored" test -s "$SPOOL/$_tid.1.req.der"
	check "/$T/$1/wait/no-temp-left" test -z "$(ls -A "$SPOOL" | grep '^\.')"
	start_ca --spool "$SPOOL" || return 1
	check "/$T/$1/wait/ca-answered" wait_for 30 test -f "$SPOOL/$_tid.1.rsp.der"
	p11e resume --store-wait "$(scaled 30)" test
	check "/$T/$1/wait/resume-exit-0" expect_rc 0
	check "/$T/$1/wait/cert-on-token" test "$(certs_on "$_tok")" -ge 1
	check "/$T/$1/wait/pending-gone" test ! -e "$(pending_file "$_tok")"
}

# rspool_fails NAME RC PATTERN CONF_LINES: enroll on a fresh token fails
# with RC and PATTERN on stderr, leaves no key and shows no secret.
rspool_fails() {
	_tok=$T-$1
	make_token "$_tok" || return 1
	write_conf "$_tok" "$4
store_wait = $(scaled 30)"
	p11e enroll test
	check "/$T/$1/exit-$2" expect_rc "$2"
	check "/$T/$1/says" grep_err "$3"
	check "/$T/$1/no-key-left" test "$(privkeys "$_tok")" -eq 0
	check "/$T/$1/nothing-pending" test ! -e "$(pending_file "$_tok")"
	check "/$T/$1/no-secret" no_store_secret "$TMP/out" "$TMP/err"
}
