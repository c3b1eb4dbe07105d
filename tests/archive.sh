#!/bin/sh
# /archive: key archive at enrollment (RFC 4211 6.4).  An encryption key is
# generated archivable (CKA_EXTRACTABLE TRUE, sensitive), wrapped on the
# token for the test CA's key-archive certificate (C_WrapKey: the key under
# a session AES-256 key, with AES-KWP on SoftHSM2 2.6.1, which lacks
# CKM_AES_CBC_PAD wrapping; that AES key under RSA-OAEP), then made
# non-extractable, and sent in the request's pkiArchiveOptions; the CA
# decrypts it, checks it against the certified public key and keeps it
# (DIR/archive/SERIAL.pem).  The key never appears in clear on this side:
# the p11wrap log shows the two C_WrapKey calls and no private key
# created from a value.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
WRAP="$top_builddir/tests/p11wrap/p11wrap.so"
need_file "$WRAP"
setup
plan 145
export P11WRAP_MODULE="$SOFTHSM2_MODULE"
LOG="$TMP/calls.log"
start_ca --archive || exit 1
ARC=$TMP/ca/archive-cert.pem

# archive_conf TOKEN KEYTYPE FORMAT [EXTRA]: an archiving enrollment
# through p11wrap, logging calls and templates.
archive_conf() {
	case $2 in
	ec*) ku=digitalSignature,keyAgreement ;;
	*) ku=digitalSignature,keyEncipherment ;;
	esac
	_ac_extra=${4:-}
	write_conf "$1" "$(printf '%s\n' "key_type = $2" "allow_decrypt = yes" "key_usage = $ku" \
		"archive_key = yes" ${ARC:+"archive_cert = $ARC"} "archive_format = $3" \
		"cert_out = $TMP/$1.pem" | while IFS= read -r _l; do
		printf '%s\n' "$_ac_extra" | grep -q "^${_l%% = *} =" || printf '%s\n' "$_l"
	done)
$_ac_extra"
	sed -i "s|^module = .*|module = $WRAP|" "$TMP/p11enroll.conf"
}

# enroll_logged ARGS: p11e with the p11wrap call and template log in $LOG.
enroll_logged() {
	: > "$LOG"
	P11WRAP_LOG=$LOG P11WRAP_LOG_TEMPLATE=1 p11e "$@"
}

# archived_of CERT: the CA's kept key for CERT's serial.
archived_of() {
	echo "$TMP/ca/archive/$("$OPENSSL_BIN" x509 -in "$1" -noout -serial | sed 's/^serial=//').pem"
}

# same_pub CERT KEYFILE: the certificate's public key is the key file's.
same_pub() {
	"$OPENSSL_BIN" x509 -in "$1" -noout -pubkey > "$TMP/a.pub" &&
		"$OPENSSL_BIN" pkey -in "$2" -pubout > "$TMP/b.pub" 2> /dev/null &&
		cmp -s "$TMP/a.pub" "$TMP/b.pub"
}

# no_key_in KEYFILE FILE...: none of the key (hex of its DER, the lines
# of its PEM body) in FILE...
no_key_in() {
	_nk=$1
	shift
	"$OPENSSL_BIN" pkey -in "$_nk" -outform DER | od -An -tx1 | tr -d ' \n' > "$TMP/key.hex"
	! grep -q -F -f "$TMP/key.hex" "$@" && ! grep -v -e '-----' "$_nk" | grep -q -F -f - "$@"
}

# decrypts CERT KEYFILE: a document encrypted to CERT (CMS EnvelopedData:
# RSA key transport or ECDH key agreement) is decrypted by KEYFILE.
decrypts() {
	echo "a document for the holder of $1" > "$TMP/doc"
	"$OPENSSL_BIN" cms -encrypt -binary -aes256 -in "$TMP/doc" -out "$TMP/doc.cms" -outform DER \
		"$1" 2> "$TMP/cms.err" || { sed 's/^/# /' "$TMP/cms.err"; return 1; }
	"$OPENSSL_BIN" cms -decrypt -binary -in "$TMP/doc.cms" -inform DER -inkey "$2" \
		-out "$TMP/doc.out" 2> "$TMP/cms.err" || { sed 's/^/# /' "$TMP/cms.err"; return 1; }
	cmp -s "$TMP/doc" "$TMP/doc.out"
}

# archive_ok TOKEN KEYTYPE FORMAT WHAT: enroll with archive; the CA keeps
# the token's key, wrapped on the token, and the token key is no longer
# extractable.
archive_ok() {
	tok=$1 kt=$2 fmt=$3 t=/archive/$4
	make_token "$tok" || { not_ok "$t/token"; return; }
	archive_conf "$tok" "$kt" "$fmt"
	: > "$TMP/ca.log"
	enroll_logged -v enroll test
	check "$t/exit-0" expect_rc 0
	check "$t/says-wrapped" grep_err 'wrapped on the token for archive.*no longer extractable'
	check "$t/no-secret-in-output" no_secret_in "$TMP/out" "$TMP/err"
	arch=$(archived_of "$TMP/$tok.pem")
	check "$t/ca-kept-key" test -s "$arch"
	check "$t/ca-key-is-certified-key" same_pub "$TMP/$tok.pem" "$arch"
	check "$t/archived-key-decrypts" decrypts "$TMP/$tok.pem" "$arch"
	check "$t/no-key-in-output" no_key_in "$arch" "$TMP/out" "$TMP/err" "$LOG"
	check "$t/ca-saw-$fmt" grep -q "archive: $5" "$TMP/ca.log"
	# two wraps (the key, the AES key), each a length query and the data
	check "$t/two-wrapkey" test "$(grep -c '^C_WrapKey rv=CKR_OK' "$LOG")" -eq 4
	check "$t/no-key-from-value" sh -c "! grep -q 'TEMPLATE C_CreateObject class=CKO_PRIVATE_KEY' '$LOG'"
	check "$t/pub-object-only" grep -q 'TEMPLATE C_CreateObject class=CKO_PUBLIC_KEY value=no' "$LOG"
	objects "$tok" privkey > "$TMP/priv.txt"
	check "$t/key-sensitive" grep -q -E 'Access:.*[^-]sensitive' "$TMP/priv.txt"
	check "$t/key-not-extractable-now" sh -c "! grep -q -E 'Access:.*extractable' '$TMP/priv.txt'"
	check "$t/one-key-pair-left" test "$(count_objects "$tok" privkey)" -eq 1
	check "$t/no-session-objects-left" test "$(grep -c '^C_DestroyObject rv=CKR_OK' "$LOG")" -ge 2
}

archive_ok tok-rsa rsa:2048 enveloped rsa/enveloped 'EnvelopedData, RSAES-OAEP, id-aes256-wrap-pad'
archive_ok tok-rsa-ev rsa:2048 encrypted-value rsa/encrypted-value \
	'EncryptedValue, RSAES-OAEP, id-aes256-wrap-pad'
archive_ok tok-ec ec:P-256 enveloped ec/enveloped 'EnvelopedData, RSAES-OAEP, id-aes256-wrap-pad'
# A token that cannot wrap with RSA-OAEP (p11wrap refuses the 4th
# C_WrapKey, the OAEP one, with CKR_MECHANISM_INVALID): the AES key goes
# with PKCS#1 v1.5, and the CA is told so (rsaEncryption).
P11WRAP_FAIL=C_WrapKey=CKR_MECHANISM_INVALID@4
export P11WRAP_FAIL
archive_ok tok-pkcs1 rsa:2048 enveloped rsa/pkcs1-fallback \
	'EnvelopedData, rsaEncryption, id-aes256-wrap-pad'
unset P11WRAP_FAIL

# The whole cycle: archived at enrollment, the key deleted on the token,
# `p11enroll recover` brings it back from the CA (krr/krp, C_UnwrapKey):
# it has the certificate's CKA_ID and decrypts (RSA) or derives (EC) what
# was encrypted to the original certificate before the loss.
# p11tool TOKEN ARGS: pkcs11-tool on the token labelled exactly TOKEN
# (pkcs11-tool 0.23 matches --token-label by prefix: tok-rsa finds
# tok-rsa-ev when its slot comes first).
p11tool() {
	_pt=$(token_slot "$1") || return 1
	shift
	"$PKCS11_TOOL" --module "$SOFTHSM2_MODULE" --slot "$_pt" --login --pin "$USER_PIN" "$@"
}
cycle() {
	tok=$1 t=/archive/cycle/$2
	archive_conf "$tok" "$3" enveloped
	id=$(label_id "$tok" cert enrolled-key)
	"$OPENSSL_BIN" x509 -in "$TMP/$tok.pem" -noout -pubkey > "$TMP/$tok.pub"
	echo "written before the key was lost" > "$TMP/plain"
	case $3 in
	rsa*) "$OPENSSL_BIN" pkeyutl -encrypt -pubin -inkey "$TMP/$tok.pub" -in "$TMP/plain" \
		-pkeyopt rsa_padding_mode:oaep -out "$TMP/cipher" ;;
	*) "$OPENSSL_BIN" genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
		-out "$TMP/peer.key" 2> /dev/null &&
		"$OPENSSL_BIN" pkeyutl -derive -inkey "$TMP/peer.key" -peerkey "$TMP/$tok.pub" \
			-out "$TMP/plain" &&
		"$OPENSSL_BIN" pkey -in "$TMP/peer.key" -pubout -outform DER -out "$TMP/cipher" ;;
	esac
	p11tool "$tok" --delete-object --type privkey --id "$id" > "$TMP/del.out" 2>&1 ||
		{ sed 's/^/# delete: /' "$TMP/del.out"; echo "# id $id"; objects "$tok" | sed 's/^/# /'; }
	check "$t/key-deleted" test "$(count_objects "$tok" privkey)" -eq 0
	p11e recover test
	check "$t/recover-exit-0" expect_rc 0
	check "$t/recovered-id-is-cert-id" test "$(label_id "$tok" privkey enrolled-key)" = "$id"
	check "$t/one-public-key-object" test "$(count_objects "$tok" pubkey)" -eq 1
	case $3 in
	rsa*) p11tool "$tok" --decrypt -m RSA-PKCS-OAEP --hash-algorithm SHA-1 --mgf MGF1-SHA1 \
		--id "$id" -i "$TMP/cipher" -o "$TMP/out.bin" > /dev/null 2>&1 ;;
	*) p11tool "$tok" --derive -m ECDH1-DERIVE --id "$id" -i "$TMP/cipher" \
		-o "$TMP/out.bin" > /dev/null 2>&1 ;;
	esac
	check "$t/recovered-key-decrypts-old-data" cmp -s "$TMP/plain" "$TMP/out.bin"
}
cycle tok-rsa rsa rsa:2048
cycle tok-ec ec ec:P-256

# The POP is still the token key's signature over the request with the
# control: OpenSSL's server verified each one.
check "/archive/ca-verified-pop" grep -q 'POP verified (CRMF signature)' "$TMP/ca.log"

# refused TOKEN NAME EXIT PATTERN [EXTRA]: archive refused before the
# token is changed.
refused() {
	tok=$1 t=/archive/refused/$2
	make_token "$tok" || { not_ok "$t/token"; return; }
	archive_conf "$tok" rsa:2048 enveloped "${5:-}"
	before=$(count_objects "$tok")
	p11e enroll test
	check "$t/exit-$3" expect_rc "$3"
	check "$t/says-why" grep_err "$4"
	check "$t/token-unchanged" test "$(count_objects "$tok")" = "$before"
}

# Signing keys are never archived.
refused tok-s1 sign-only-allow-decrypt-no 2 'signing key.*allow_decrypt is no' \
	"allow_decrypt = no"
refused tok-s2 sign-only-key-usage 2 'signing key.*key_usage has no encryption usage' \
	"key_usage = digitalSignature,nonRepudiation"
refused tok-s3 ec-key-encipherment 2 'keyAgreement \(an EC key\)' \
	"key_type = ec:P-256"
refused tok-s4 archive-cert-not-pem 2 'holds no PEM certificate' "archive_cert = /dev/null"
_arc=$ARC
ARC=
refused tok-s7 no-archive-cert 2 'needs archive_cert'
ARC=$_arc
refused tok-s5 bad-format 2 "archive_format: 'pem' is not one of enveloped, encrypted-value" "archive_format = pem"
refused tok-s6 key-id 2 'only a key pair generated for it' "key_id = 0102"

# A key-archive certificate outside the trust anchors' PKI, or one whose
# key may not encipher keys, gets no key.
"$OPENSSL_BIN" req -x509 -newkey rsa:2048 -nodes -keyout "$TMP/self.key" -out "$TMP/self.pem" \
	-subj "/CN=not the CA's archive" -days 1 > /dev/null 2>&1
refused tok-c1 untrusted-cert 2 'is not trusted' "archive_cert = $TMP/self.pem"
"$OPENSSL_BIN" req -new -newkey rsa:2048 -nodes -keyout "$TMP/ku.key" -out "$TMP/ku.csr" \
	-subj "/CN=signing only" > /dev/null 2>&1
printf 'keyUsage = critical,digitalSignature\n' > "$TMP/ku.ext"
"$OPENSSL_BIN" x509 -req -in "$TMP/ku.csr" -CA "$TMP/ca/ca.pem" -CAkey "$TMP/ca/ca.key" \
	-CAcreateserial -extfile "$TMP/ku.ext" -days 1 -out "$TMP/ku.pem" > /dev/null 2>&1
cat "$TMP/ca/ca.pem" >> "$TMP/ku.pem"
refused tok-c2 wrong-usage 2 'lacks keyEncipherment' "archive_cert = $TMP/ku.pem"
refused tok-c3 ec-cert 2 'not RSA' "archive_cert = $TMP/ca/ca.pem"
check "/archive/refused/wrong-usage/chains" "$OPENSSL_BIN" verify -CAfile "$TMP/ca/root.pem" \
	-untrusted "$TMP/ca/ca.pem" "$TMP/ku.pem"

# failing TOKEN NAME EXIT PATTERN P11WRAP_FAIL CA_ARGS...: the key is made,
# the run fails, and the token ends as it began (the new pair removed).
failing() {
	tok=$1 t=/archive/fails/$2 want=$3 pat=$4 fail=$5
	shift 5
	start_ca "$@" || { not_ok "$t/ca-start"; return; }
	ARC=$TMP/ca/archive-cert.pem
	make_token "$tok" || { not_ok "$t/token"; return; }
	archive_conf "$tok" rsa:2048 enveloped
	before=$(count_objects "$tok")
	kept=$(ls "$TMP/ca/archive" 2> /dev/null | wc -l)
	: > "$LOG"
	P11WRAP_LOG=$LOG P11WRAP_FAIL=$fail p11e enroll test
	check "$t/exit-$want" expect_rc "$want"
	check "$t/says-why" grep_err "$pat"
	check "$t/token-unchanged" test "$(count_objects "$tok")" = "$before"
	check "$t/ca-kept-nothing" test "$(ls "$TMP/ca/archive" 2> /dev/null | wc -l)" -eq "$kept"
	# the pair, and the session AES and archive public keys of the wrap
	check "$t/made-and-removed" made_and_removed "$LOG" 4
}

# A token that cannot wrap with AES (here: p11wrap answers C_WrapKey with
# CKR_MECHANISM_INVALID, as a token without CKM_AES_KEY_WRAP_PAD and
# CKM_AES_CBC_PAD would).
failing tok-f1 token-cannot-wrap 3 'cannot wrap private keys with AES' \
	C_WrapKey=CKR_MECHANISM_INVALID --archive
# The CA's faults: it refuses to archive; the key is encrypted to another
# recipient than the one it decrypts with; it requires archive and the
# request has none; it does not archive at all.
failing tok-f2 ca-refuses 6 'notAuthorized.*does not archive keys' '' \
	--archive --archive-fault refuse
failing tok-f3 other-recipient 6 'badPOP.*does not decrypt' '' \
	--archive --archive-fault other-key
failing tok-f4 ca-without-archive 6 'badRequest.*does not archive keys' '' \
	--archive-key "$TMP/ca/archive-key.pem"

start_ca --archive --archive-require || exit 1
make_token tok-f5 || exit 1
write_conf tok-f5 "allow_decrypt = yes"
before=$(count_objects tok-f5)
p11e enroll test
check "/archive/fails/ca-requires-archive/exit-6" expect_rc 6
check "/archive/fails/ca-requires-archive/says-why" grep_err 'badRequest.*pkiArchiveOptions'
check "/archive/fails/ca-requires-archive/token-unchanged" \
	test "$(count_objects tok-f5)" = "$before"

# The CA answers "waiting" first: OpenSSL polls for the edited ir as for
# any other (same transactionID and nonces), the CA archives on delivery.
start_ca --archive --poll 1 || exit 1
make_token tok-poll || exit 1
archive_conf tok-poll rsa:2048 enveloped
p11e enroll test
check "/archive/poll/exit-0" expect_rc 0
check "/archive/poll/polled" grep -q 'pollReq' "$TMP/ca.log"
check "/archive/poll/key-kept" same_pub "$TMP/tok-poll.pem" "$(archived_of "$TMP/tok-poll.pem")"
start_ca --archive --archive-require || exit 1

# A batch (one token, one CMP context for every row): each row's own key
# is archived, none goes with another row's request.
make_token tok-batch || exit 1
archive_conf tok-batch rsa:2048 enveloped
sed -i '/^cert_out = /d' "$TMP/p11enroll.conf"
printf '%s\n' 'label,subject' 'b1,/CN=batch 1' 'b2,/CN=batch 2' > "$TMP/rows.csv"
kept=$(ls "$TMP/ca/archive" | wc -l)
p11e enroll test --batch "$TMP/rows.csv"
check "/archive/batch/exit-0" expect_rc 0
check "/archive/batch/two-kept" test "$(ls "$TMP/ca/archive" | wc -l)" -eq $((kept + 2))
for l in b1 b2; do
	p11tool tok-batch --read-object --type cert --label "$l" -o "$TMP/$l.der" > /dev/null 2>&1
	"$OPENSSL_BIN" x509 -inform DER -in "$TMP/$l.der" -out "$TMP/$l.pem"
	check "/archive/batch/$l-own-key-kept" same_pub "$TMP/$l.pem" "$(archived_of "$TMP/$l.pem")"
done

# Renewal (kur) of an archived key: the new key is archived too.
ARC=$TMP/ca/archive-cert.pem
make_token tok-renew || exit 1
archive_conf tok-renew rsa:2048 enveloped
p11e enroll test
check "/archive/renew/enrolled" expect_rc 0
cp "$TMP/tok-renew.pem" "$TMP/renew-old.pem"
p11e -v renew test
check "/archive/renew/exit-0" expect_rc 0
check "/archive/renew/new-cert" sh -c "! cmp -s '$TMP/renew-old.pem' '$TMP/tok-renew.pem'"
arch=$(archived_of "$TMP/tok-renew.pem")
check "/archive/renew/new-key-kept" same_pub "$TMP/tok-renew.pem" "$arch"
check "/archive/renew/new-key-decrypts" decrypts "$TMP/tok-renew.pem" "$arch"
check "/archive/renew/old-key-kept" same_pub "$TMP/renew-old.pem" "$(archived_of "$TMP/renew-old.pem")"
check "/archive/renew/one-pair" test "$(count_objects tok-renew privkey)" -eq 1

# A cr signed by the enrolled key (signature protection made again by
# OpenSSL over the edited request): its new key is archived too; p10cr has
# no place for it and is refused before anything is made.
: > "$TMP/ca.log"
p11e -v cr test --signer enrolled-key --label by-cr
check "/archive/cr/exit-0" expect_rc 0
check "/archive/cr/sent-cr" grep -q ' cr -> cp' "$TMP/ca.log"
check "/archive/cr/key-kept" same_pub "$TMP/tok-renew.pem" "$(archived_of "$TMP/tok-renew.pem")"
n=$(count_objects tok-renew)
p11e p10cr test --label by-p10cr
check "/archive/p10cr/exit-2" expect_rc 2
check "/archive/p10cr/says-why" grep_err 'PKCS#10 request has no place'
check "/archive/p10cr/token-unchanged" test "$(count_objects tok-renew)" -eq "$n"
finish
