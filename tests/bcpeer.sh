#!/bin/sh
# /bcpeer: p11enroll against a second, independent CMP server, written on
# Bouncy Castle's CMP classes (tests/bc/BcCmpServer.java).  The test CA and
# the `openssl cmp` mock share OpenSSL's CMP code with p11enroll; a bug on
# both sides of it would pass there.  Here a real CA of other code issues
# certificates: ir (PBM), cr (signed), p10cr, kur (signed by the old key),
# certConf, rr, genm caCerts, polling and resume, answered with PBM or signed
# by the CA, its cmcRA signer or (refused) a device certificate.  Outcomes
# are counted from the peer's own records ($BC/log, $BC/index), not from
# p11enroll's output; exit codes and the token are checked as well.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools

# No silent skip: without a JDK or the Bouncy Castle jars the test fails
# and says what to install (make check compiles the peer, tests/Makefile.am).
BC_CLASSES="$top_builddir/tests/bc/classes"
# (make check exports both from configure; these serve a run by hand)
: "${JAVA:=$(command -v java)}"
: "${BC_CLASSPATH:=/usr/share/java/bcprov.jar:/usr/share/java/bcpkix.jar:/usr/share/java/bcutil.jar}"
if [ ! -f "$top_builddir/tests/bc/classes.stamp" ] || [ -z "${JAVA:-}" ] || [ ! -x "$JAVA" ]; then
	why="the Bouncy Castle CMP peer is not built"
	[ -f "$top_builddir/tests/bc/missing" ] && why="$why: $(tr '\n' ' ' < "$top_builddir/tests/bc/missing")"
	[ -n "${JAVA:-}" ] || why="$why (no java: install default-jdk-headless and run configure again)"
	echo "not ok 1 - /bcpeer/peer-built # $why"
	echo "# install: apt-get install default-jdk-headless libbcprov-java libbcpkix-java libbcutil-java"
	echo "1..1"
	exit 1
fi

setup
plan 127
TOK=bcpeer
BC="$TMP/bc"
PEER_PID=
LOG="$BC/log"
INDEX="$BC/index"

stop_peer() {
	if [ -n "$PEER_PID" ]; then
		kill "$PEER_PID" 2> /dev/null
		wait "$PEER_PID" 2> /dev/null
		PEER_PID=
	fi
}
trap 'stop_peer; cleanup' EXIT

# peer_up: the port file is there (the peer is listening), or the peer died.
peer_up() {
	[ -s "$TMP/bc.port" ] || gone "$PEER_PID"
}

# start_peer [ARGS...]: the BC peer with state in $BC (its CA is created on
# the first start and loaded afterwards), on a port of its own choosing,
# which it writes atomically once it listens.  certConf is held while
# $TMP/gate is missing (it exists except while a test looks at the token).
start_peer() {
	stop_peer
	rm -f "$TMP/bc.port"
	"$JAVA" -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xmx256m -cp "$BC_CLASSES:$BC_CLASSPATH" \
		BcCmpServer --dir "$BC" --port-file "$TMP/bc.port" --ref "$CMP_REF" \
		--secret-file "$TMP/secret" --hold-certconf "$TMP/gate" "$@" \
		> "$TMP/bc.out" 2> "$TMP/bc.err" &
	PEER_PID=$!
	wait_for 60 peer_up
	if [ ! -s "$TMP/bc.port" ]; then
		echo "# the BC peer did not start:"
		sed 's/^/#   /' "$TMP/bc.err"
		return 1
	fi
	CA_URL="http://127.0.0.1:$(cat "$TMP/bc.port")/.well-known/cmp"
}

# conf [EXTRA_LINES]: the enrollment of $TOK at the peer, trusting its CA.
conf() {
	write_conf "$TOK" "$1"
	sed -i "s|^trusted = .*|trusted = $BC/ca.pem|" "$TMP/p11enroll.conf"
}

serial_of() {
	"$OPENSSL_BIN" x509 -in "$1" -noout -serial | sed 's/^serial=//'
}

# logged REGEX: the peer logged a line matching REGEX (extended).
logged() {
	grep -q -E "$1" "$LOG" || { echo "# the peer's log lacks /$1/:"; sed 's/^/#   /' "$LOG"; return 1; }
}

count_logged() {
	grep -c -E "$1" "$LOG"
}

# on_token LABEL PEM: the certificate labelled LABEL on the token is PEM,
# and the private key with its CKA_ID signs for its public key.
on_token() {
	id=$(label_id "$TOK" cert "$1")
	[ -n "$id" ] && [ "$(label_id "$TOK" privkey "$1")" = "$id" ] || return 1
	"$PKCS11_TOOL" --module "$SOFTHSM2_MODULE" --token-label "$TOK" --read-object --type cert \
		--id "$id" -o "$TMP/tok-cert.der" > /dev/null 2>&1 || return 1
	"$OPENSSL_BIN" x509 -in "$2" -outform DER -out "$TMP/want.der" || return 1
	cmp -s "$TMP/tok-cert.der" "$TMP/want.der" || return 1
	"$OPENSSL_BIN" x509 -in "$2" -noout -pubkey > "$TMP/pub.pem" &&
		key_signs_for "$TOK" "$id" "$TMP/pub.pem"
}

# same_cert A B: two PEM certificates are the same DER.
same_cert() {
	"$OPENSSL_BIN" x509 -in "$1" -outform DER -out "$TMP/a.der" &&
		"$OPENSSL_BIN" x509 -in "$2" -outform DER -out "$TMP/b.der" && cmp -s "$TMP/a.der" "$TMP/b.der"
}

make_token "$TOK" || exit 1
touch "$TMP/gate"
start_peer || exit 1
check "/bcpeer/peer/ca-created" test -s "$BC/ca.pem" -a -s "$BC/ra.pem" -a -s "$BC/ee.pem"
check "/bcpeer/peer/ra-is-cmc-ra" sh -c \
	"'$OPENSSL_BIN' x509 -in '$BC/ra.pem' -noout -ext extendedKeyUsage | grep -q 'CMC Registration Authority\|1.3.6.1.5.5.7.3.28'"
"$OPENSSL_BIN" dgst -sha256 "$BC/ca.pem" | sed 's/.*= //' > "$TMP/ca.sha"

# --- ir with PBM: answered with PBM, certConf with the right certHash ------
conf "cert_out = $TMP/ir.pem
chain_out = $TMP/ir-chain.pem"
p11e enroll test
check "/bcpeer/ir/pbm/exit-0" expect_rc 0
S=$(serial_of "$TMP/ir.pem")
check "/bcpeer/ir/pbm/peer-issued" logged "^ir prot=pbm:$CMP_REF .*certReqId=0 pop=ok -> ip accepted serial=$S \[pbm\]$"
check "/bcpeer/ir/pbm/index-issued" grep -q -x "issued $S ir CN=p11enroll test,O=Example" "$INDEX"
check "/bcpeer/ir/pbm/certconf-hash-ok" logged "^certConf prot=pbm:$CMP_REF .*certHash=ok -> pkiConf serial=$S confirmed \[pbm\]$"
check "/bcpeer/ir/pbm/index-confirmed" grep -q -x "confirmed $S" "$INDEX"
check "/bcpeer/ir/pbm/same-as-peer-issued" same_cert "$TMP/ir.pem" "$BC/issued/$S.pem"
check "/bcpeer/ir/pbm/chains-to-peer-ca" sh -c "'$OPENSSL_BIN' verify -CAfile '$BC/ca.pem' '$TMP/ir.pem' > /dev/null"
check "/bcpeer/ir/pbm/chain-out-is-peer-ca" same_cert "$TMP/ir-chain.pem" "$BC/ca.pem"
check "/bcpeer/ir/pbm/cert-on-token-matches-key" on_token enrolled-key "$TMP/ir.pem"
check "/bcpeer/ir/pbm/ca-cert-stored" test "$(label_count "$TOK" 'BC Test CA')" -eq 1
check "/bcpeer/ir/pbm/no-new-label-left" test "$(label_count "$TOK" 'enrolled-key \(new\)')" -eq 0

# implicitConfirm asked for but not granted (the peer never grants it):
# RFC 4210 5.1.1.1, the client confirms with certConf all the same.
conf "implicit_confirm = yes
cert_out = $TMP/ic.pem"
p11e enroll test --label ic
check "/bcpeer/ir/implicit-confirm-refused/exit-0" expect_rc 0
S=$(serial_of "$TMP/ic.pem")
check "/bcpeer/ir/implicit-confirm-refused/asked" logged "^ir prot=pbm:$CMP_REF .*pop=ok implicitConfirm=not-granted -> ip accepted serial=$S "
check "/bcpeer/ir/implicit-confirm-refused/certconf-sent" logged "^certConf prot=pbm:$CMP_REF .*certHash=ok -> pkiConf serial=$S confirmed "

# --- cr signed by the enrolled certificate on the token (--signer) ---------
conf "cert_out = $TMP/cr.pem"
p11e cr test --signer enrolled-key --label cr-key
check "/bcpeer/cr/token-signer/exit-0" expect_rc 0
S=$(serial_of "$TMP/cr.pem")
check "/bcpeer/cr/token-signer/peer-verified-signature" \
	logged "^cr prot=sig:CN=p11enroll test,O=Example certReqId=0 pop=ok -> cp accepted serial=$S \[sig:ra\]$"
check "/bcpeer/cr/token-signer/confirmed" grep -q -x "confirmed $S" "$INDEX"
check "/bcpeer/cr/token-signer/cert-on-token-matches-key" on_token cr-key "$TMP/cr.pem"

# --- cr signed with software protection credentials (the peer's device) --
conf "cert_out = $TMP/cr-soft.pem"
p11e cr test --protection-cert "$BC/ee.pem" --protection-key "$BC/ee.key" --label cr-soft
check "/bcpeer/cr/protection-cert/exit-0" expect_rc 0
S=$(serial_of "$TMP/cr-soft.pem")
check "/bcpeer/cr/protection-cert/peer-verified-signature" \
	logged "^cr prot=sig:O=p11enroll BC peer,CN=BC Device .*-> cp accepted serial=$S \[sig:ra\]$"
check "/bcpeer/cr/protection-cert/confirmed" grep -q -x "confirmed $S" "$INDEX"

# --- p10cr with PBM: the CSR signed on the token, its SAN in the certificate
conf "cert_out = $TMP/p10.pem"
p11e p10cr test --label p10 --san DNS:p10.example
check "/bcpeer/p10cr/exit-0" expect_rc 0
S=$(serial_of "$TMP/p10.pem")
check "/bcpeer/p10cr/peer-verified-csr" logged "^p10cr prot=pbm:$CMP_REF .*csr-signature=ok -> cp accepted serial=$S \[pbm\]$"
check "/bcpeer/p10cr/certconf-minus-one" logged "^certConf prot=pbm:$CMP_REF .*certReqId=-1 certHash=ok -> pkiConf serial=$S confirmed "
check "/bcpeer/p10cr/san" sh -c "'$OPENSSL_BIN' x509 -in '$TMP/p10.pem' -noout -ext subjectAltName | grep -q 'DNS:p10.example'"
check "/bcpeer/p10cr/cert-on-token-matches-key" on_token p10 "$TMP/p10.pem"

# --- genm caCerts: what p11enroll writes is the peer's CA certificate ------
conf
p11e genm test --ca-certs "$TMP/cacerts.pem"
check "/bcpeer/genm/ca-certs/exit-0" expect_rc 0
check "/bcpeer/genm/ca-certs/peer-answered" logged "^genm prot=pbm:$CMP_REF .*-> genp caCerts=1 \[pbm\]$"
check "/bcpeer/genm/ca-certs/file-is-peer-ca" same_cert "$TMP/cacerts.pem" "$BC/ca.pem"
check "/bcpeer/genm/ca-certs/one-cert" test "$(grep -c 'BEGIN CERTIFICATE' "$TMP/cacerts.pem")" -eq 1
check "/bcpeer/genm/ca-certs/listed" grep -q 'BC Test CA' "$TMP/out"

# --- kur signed by the old key; the peer holds its pkiConf while the token
# is looked at: the new pair and certificate are stored under "(new)", the
# old pair is still in place until the confirmation is answered.
OLD_S=$(serial_of "$TMP/ir.pem")
old_id=$(label_id "$TOK" privkey enrolled-key)
conf "cert_out = $TMP/kur.pem"
rm -f "$TMP/gate"
"$P11ENROLL" -c "$TMP/p11enroll.conf" renew test --timeout "$(scaled 60)" > "$TMP/out" 2> "$TMP/err" &
kur_pid=$!
check "/bcpeer/kur/certconf-held" wait_for 30 grep -q '^certConf .* held until' "$LOG"
new_id=$(label_id "$TOK" privkey 'enrolled-key (new)')
check "/bcpeer/kur/before-pkiconf/old-key-kept" test -n "$old_id" -a "$(label_id "$TOK" privkey enrolled-key)" = "$old_id"
check "/bcpeer/kur/before-pkiconf/old-cert-kept" test "$(label_id "$TOK" cert enrolled-key)" = "$old_id"
check "/bcpeer/kur/before-pkiconf/new-key-on-token" test -n "$new_id" -a "$new_id" != "$old_id"
check "/bcpeer/kur/before-pkiconf/new-cert-stored" test "$(label_id "$TOK" cert 'enrolled-key (new)')" = "$new_id"
touch "$TMP/gate"
wait "$kur_pid"
RC=$?
check "/bcpeer/kur/exit-0" expect_rc 0
S=$(serial_of "$TMP/kur.pem")
check "/bcpeer/kur/signed-by-old-cert" logged \
	"^kur prot=sig:CN=p11enroll test,O=Example certReqId=0 oldCert=$OLD_S pop=ok -> kup accepted serial=$S \[sig:ra\]$"
check "/bcpeer/kur/certconf-hash-ok" logged "^certConf prot=sig:CN=p11enroll test,O=Example held certReqId=0 certHash=ok -> pkiConf serial=$S confirmed \[sig:ra\]$"
check "/bcpeer/kur/index-kur" grep -q -x "issued $S kur CN=p11enroll test,O=Example" "$INDEX"
check "/bcpeer/kur/new-cert-on-token-matches-new-key" on_token enrolled-key "$TMP/kur.pem"
check "/bcpeer/kur/label-moved" test "$(label_id "$TOK" privkey enrolled-key)" = "$new_id"
check "/bcpeer/kur/no-new-label-left" test "$(label_count "$TOK" 'enrolled-key \(new\)')" -eq 0
check "/bcpeer/kur/old-key-gone" sh -c "! '$PKCS11_TOOL' --module '$SOFTHSM2_MODULE' --token-label '$TOK' --login --pin '$USER_PIN' --list-objects 2> /dev/null | grep -q 'ID: *$old_id\$'"

# --- rr signed by the certificate's own key --------------------------------
conf
p11e revoke test --reason keyCompromise
check "/bcpeer/rr/exit-0" expect_rc 0
check "/bcpeer/rr/peer-revoked" logged "^rr prot=sig:CN=p11enroll test,O=Example serial=$S reason=1 -> rp accepted \[sig:ra\]$"
check "/bcpeer/rr/index-revoked" grep -q -x "revoked $S 1" "$INDEX"
check "/bcpeer/rr/printed" grep -q 'status: *accepted' "$TMP/out"

# Revoked twice: the peer rejects with certRevoked (exit 6, failInfo named).
p11e revoke test --reason keyCompromise
check "/bcpeer/rr/twice/exit-6" expect_rc 6
check "/bcpeer/rr/twice/failinfo" grep_err 'certRevoked'
check "/bcpeer/rr/twice/peer-rejected" logged "^rr prot=sig:.* serial=$S reason=1 -> rp rejection certRevoked "
check "/bcpeer/rr/twice/revoked-once" test "$(grep -c -x "revoked $S 1" "$INDEX")" -eq 1

# A kur signed by the revoked certificate: refused, the token unchanged.
objects "$TOK" | sort > "$TMP/before"
p11e renew test
check "/bcpeer/kur/revoked/exit-6" expect_rc 6
check "/bcpeer/kur/revoked/failinfo" grep_err 'certRevoked'
check "/bcpeer/kur/revoked/peer-refused" logged "^kur prot=sig:CN=p11enroll test,O=Example -> error certRevoked "
objects "$TOK" | sort > "$TMP/after"
check "/bcpeer/kur/revoked/token-unchanged" cmp -s "$TMP/before" "$TMP/after"

# An rr protected by MAC: RFC 9483 4.2 wants it signed by the certificate
# to revoke, the peer says wrongIntegrity (exit 6); nothing is revoked.
CR_S=$(serial_of "$TMP/cr.pem")
conf
p11e revoke test --label cr-key --rr-protection pbm --reason superseded
check "/bcpeer/rr/pbm/exit-6" expect_rc 6
check "/bcpeer/rr/pbm/failinfo" grep_err 'wrongIntegrity'
check "/bcpeer/rr/pbm/peer-rejected" logged "^rr prot=pbm:$CMP_REF .*serial=$CR_S reason=4 -> rp rejection wrongIntegrity "
check "/bcpeer/rr/pbm/not-revoked" sh -c "! grep -q '^revoked $CR_S ' '$INDEX'"

# No --reason: RFC 9483 4.2 still wants exactly one reasonCode in the rr,
# 0 (unspecified) when the reason is not known or not to be published.
p11e revoke test --label cr-key
check "/bcpeer/rr/no-reason/exit-0" expect_rc 0
check "/bcpeer/rr/no-reason/sent-unspecified" logged "^rr prot=sig:.*serial=$CR_S reason=0 -> rp accepted "
check "/bcpeer/rr/no-reason/index-revoked" grep -q -x "revoked $CR_S 0" "$INDEX"
check "/bcpeer/rr/no-reason/printed" grep -q 'reason: *unspecified' "$TMP/out"

# A wrong shared secret: the MAC fails at the peer, which answers with a
# signed error (badMessageCheck); no key stays on the token.
printf 'not-the-secret\n' > "$TMP/wrong-secret"
conf
p11e enroll test --label wrong-secret --secret-source "file:$TMP/wrong-secret"
check "/bcpeer/ir/wrong-secret/exit-6" expect_rc 6
check "/bcpeer/ir/wrong-secret/failinfo" grep_err 'badMessageCheck'
check "/bcpeer/ir/wrong-secret/peer-refused" logged "^ir prot=pbm:bad-mac .*-> error badMessageCheck .*\[sig:ra\]$"
check "/bcpeer/ir/wrong-secret/no-key-left" test "$(label_count "$TOK" 'wrong-secret( \(new\))?')" -eq 0

# --- responses signed by the CA certificate itself (RSA), after a restart:
# the peer loads its CA and index again.
start_peer --sign-all --signer ca || exit 1
check "/bcpeer/restart/ca-kept" test "$("$OPENSSL_BIN" dgst -sha256 "$BC/ca.pem" | sed 's/.*= //')" = "$(cat "$TMP/ca.sha")"
conf "cert_out = $TMP/ca-signed.pem"
p11e enroll test --label ca-signed
check "/bcpeer/ir/ca-signed-reply/exit-0" expect_rc 0
S=$(serial_of "$TMP/ca-signed.pem")
check "/bcpeer/ir/ca-signed-reply/peer-signed" logged "^ir prot=pbm:$CMP_REF .*-> ip accepted serial=$S \[sig:ca\]$"
check "/bcpeer/ir/ca-signed-reply/confirmed" logged "^certConf prot=pbm:$CMP_REF .*certHash=ok -> pkiConf serial=$S confirmed \[sig:ca\]$"
check "/bcpeer/ir/ca-signed-reply/cert-on-token-matches-key" on_token ca-signed "$TMP/ca-signed.pem"
p11e genm test --ca-certs "$TMP/cacerts2.pem"
check "/bcpeer/genm/ca-signed-reply/exit-0" expect_rc 0
check "/bcpeer/genm/ca-signed-reply/file-is-peer-ca" same_cert "$TMP/cacerts2.pem" "$BC/ca.pem"
# the index survived the restart: a second revocation is still refused
conf
p11e revoke test --reason keyCompromise
check "/bcpeer/restart/index-kept/exit-6" expect_rc 6
check "/bcpeer/restart/index-kept/failinfo" grep_err 'certRevoked'

# --- delayed issuance: "waiting", two pollRep (checkAfter 1 s), then the ip
start_peer --poll 2 --check-after 1 || exit 1
: > "$LOG"
conf "cert_out = $TMP/polled.pem"
p11e enroll test --label polled
check "/bcpeer/poll/ir/exit-0" expect_rc 0
S=$(serial_of "$TMP/polled.pem")
check "/bcpeer/poll/ir/waiting" test "$(count_logged "^ir prot=pbm:$CMP_REF .*-> ip waiting \[pbm\]$")" -eq 1
check "/bcpeer/poll/ir/two-pollrep" test "$(count_logged "^pollReq prot=pbm:$CMP_REF .*-> pollRep checkAfter=1 \[pbm\]$")" -eq 2
check "/bcpeer/poll/ir/three-pollreq" test "$(count_logged '^pollReq ')" -eq 3
check "/bcpeer/poll/ir/delivered-on-pollreq" logged "^pollReq prot=pbm:$CMP_REF .*-> ip accepted serial=$S \[pbm\]$"
check "/bcpeer/poll/ir/confirmed" grep -q -x "confirmed $S" "$INDEX"
check "/bcpeer/poll/ir/cert-on-token-matches-key" on_token polled "$TMP/polled.pem"
check "/bcpeer/poll/ir/nothing-pending" test "$(pending_count)" -eq 0
# a kur polled the same way (signed pollReq and certConf)
: > "$LOG"
conf "cert_out = $TMP/polled-kur.pem"
p11e renew test --label polled
check "/bcpeer/poll/kur/exit-0" expect_rc 0
S=$(serial_of "$TMP/polled-kur.pem")
check "/bcpeer/poll/kur/waiting" test "$(count_logged '^kur prot=sig:.*-> kup waiting \[sig:ra\]$')" -eq 1
check "/bcpeer/poll/kur/two-pollrep" test "$(count_logged '^pollReq prot=sig:.*-> pollRep checkAfter=1 ')" -eq 2
check "/bcpeer/poll/kur/delivered" logged "^pollReq prot=sig:.*-> kup accepted serial=$S "
check "/bcpeer/poll/kur/confirmed" grep -q -x "confirmed $S" "$INDEX"
check "/bcpeer/poll/kur/cert-on-token-matches-key" on_token polled "$TMP/polled-kur.pem"

# --- a transaction saved and finished by another process: the peer asks
# to poll again in an hour, past the total timeout, so the client saves it
# (exit 9) at once; `resume` polls with a pollReq of p11enroll's own making
# (cmp/cmpc_poll.c) and gets the certificate; `resume --abandon` tells the
# peer with an error message.
start_peer --poll 1 --check-after 3600 || exit 1
: > "$LOG"
conf "cert_out = $TMP/resumed.pem"
p11e enroll test --label resumed
check "/bcpeer/resume/waiting-exit-9" expect_rc 9
check "/bcpeer/resume/saved" test "$(pending_count)" -eq 1
check "/bcpeer/resume/peer-said-later" logged "^pollReq prot=pbm:$CMP_REF .*-> pollRep checkAfter=3600 \[pbm\]$"
p11e resume test --label resumed
check "/bcpeer/resume/exit-0" expect_rc 0
S=$(serial_of "$TMP/resumed.pem")
check "/bcpeer/resume/delivered" logged "^pollReq prot=pbm:$CMP_REF .*-> ip accepted serial=$S \[pbm\]$"
check "/bcpeer/resume/confirmed" grep -q -x "confirmed $S" "$INDEX"
check "/bcpeer/resume/cert-on-token-matches-key" on_token resumed "$TMP/resumed.pem"
check "/bcpeer/resume/state-removed" test "$(pending_count)" -eq 0
# the same for a p10cr, whose certReqId is -1 in pollReq and certConf
conf "cert_out = $TMP/p10-resumed.pem"
p11e p10cr test --label p10-resumed
check "/bcpeer/resume/p10cr/waiting-exit-9" expect_rc 9
p11e resume test --label p10-resumed
check "/bcpeer/resume/p10cr/exit-0" expect_rc 0
S=$(serial_of "$TMP/p10-resumed.pem")
check "/bcpeer/resume/p10cr/delivered" logged "^pollReq prot=pbm:$CMP_REF .*certReqId=-1 -> cp accepted serial=$S \[pbm\]$"
check "/bcpeer/resume/p10cr/confirmed" grep -q -x "confirmed $S" "$INDEX"
check "/bcpeer/resume/p10cr/cert-on-token-matches-key" on_token p10-resumed "$TMP/p10-resumed.pem"
p11e enroll test --label abandoned
check "/bcpeer/abandon/waiting-exit-9" expect_rc 9
p11e resume --abandon test --label abandoned
check "/bcpeer/abandon/exit-0" expect_rc 0
check "/bcpeer/abandon/peer-got-error" logged "^error prot=pbm:$CMP_REF .*status=2 -> pkiConf \[pbm\]$"
check "/bcpeer/abandon/no-key-left" test "$(label_count "$TOK" 'abandoned( \(new\))?')" -eq 0
check "/bcpeer/abandon/state-removed" test "$(pending_count)" -eq 0

# --- the peer rejects every request with a failInfo: exit 6, named ---------
start_peer --reject badCertTemplate || exit 1
issued_before=$(grep -c '^issued ' "$INDEX")
conf
p11e enroll test --label rejected
check "/bcpeer/reject/exit-6" expect_rc 6
check "/bcpeer/reject/failinfo" grep_err 'badCertTemplate'
check "/bcpeer/reject/status-string" grep_err 'rejected by the BC peer'
check "/bcpeer/reject/peer-rejected" logged "^ir prot=pbm:$CMP_REF .*-> ip rejection badCertTemplate "
check "/bcpeer/reject/nothing-issued" test "$(grep -c '^issued ' "$INDEX")" -eq "$issued_before"
check "/bcpeer/reject/no-key-left" test "$(label_count "$TOK" 'rejected( \(new\))?')" -eq 0

# --- responses signed by a device certificate (no cmcCA/cmcRA EKU) --------
# p11enroll refuses them before using anything in them (exit 7): no
# certificate stored, no certConf sent, the genp not written.
start_peer --sign-all --signer ee || exit 1
: > "$LOG"
conf
p11e enroll test --label ee-signed
check "/bcpeer/ee-signer/ir/exit-7" expect_rc 7
check "/bcpeer/ee-signer/ir/refused" grep_err 'may not speak for the CA'
check "/bcpeer/ee-signer/ir/names-signer" grep_err 'BC Device'
check "/bcpeer/ee-signer/ir/peer-sent-ip" logged '^ir prot=pbm:.*-> ip accepted serial=[0-9A-F]* \[sig:ee\]$'
check "/bcpeer/ee-signer/ir/no-certconf" test "$(count_logged '^certConf ')" -eq 0
check "/bcpeer/ee-signer/ir/no-key-left" test "$(label_count "$TOK" 'ee-signed( \(new\))?')" -eq 0
p11e genm test --ca-certs "$TMP/ee-cacerts.pem"
check "/bcpeer/ee-signer/genm/exit-7" expect_rc 7
check "/bcpeer/ee-signer/genm/refused" grep_err 'may not speak for the CA'
check "/bcpeer/ee-signer/genm/nothing-written" test ! -e "$TMP/ee-cacerts.pem"
check "/bcpeer/no-secret-in-output" no_secret_in "$TMP/out" "$TMP/err"
stop_peer
finish
