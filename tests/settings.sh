#!/bin/sh
# /settings: each setting that has a command-line twin takes effect from the
# configuration file and from the command line alike, and the command line
# wins over the file.  Seen where it acts: in the request the test CA
# received (its "<body> header:" log line: sender, recipient, certProfile,
# implicitConfirm, the PBM parameters), in the certificate issued, on the
# token and in the files written, or in the outcome (trust anchors, the
# expected sender).  Values that cannot work are refused before anything is
# sent (by the agent at its start), saying why.  The net for the settings
# table (agent/settings.h): a twin that loses its flag, its key, its
# precedence or its check fails here.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
setup
plan 95
start_ca || exit 1

N=0
# attempt CONF_LINES ARGS...: enroll (or $CMD) on a new token with
# CONF_LINES added to [test] and ARGS before the command; RC, $TMP/out,
# $TMP/err, $TMP/hdr (the header line of the request the CA received), $TOK,
# $TMP/cert.pem.  Without a label or subject in CONF_LINES, [test] has
# write_conf's (never a key twice: a duplicate is no way to set a value).
attempt() {
	N=$((N + 1))
	TOK="set$N"
	make_token "$TOK" || exit 1
	_lines=$1
	shift
	case $_lines in *"label = "*) ;; *) _lines="$_lines
label = enrolled-key" ;; esac
	case $_lines in *"subject = "*) ;; *) _lines="$_lines
subject = /CN=p11enroll test/O=Example" ;; esac
	{ conf_defaults; cat; } > "$TMP/p11enroll.conf" << EOC
[test]
token = pkcs11:token=$TOK
pin_source = file:$TMP/pin
cert_out = $TMP/cert.pem
$_lines
EOC
	rm -f "$TMP/cert.pem"
	: > "$TMP/ca.log"
	p11e "$@" "${CMD:-enroll}" test
	grep ' [a-z0-9]* header: ' "$TMP/ca.log" | tail -n 1 > "$TMP/hdr"
}

# ran: the enrollment succeeded (else why, as TAP comments).
ran() {
	[ "$RC" = 0 ] && return 0
	echo "# exit $RC:"
	sed 's/^/#   /' "$TMP/err" | head -n 5
	return 1
}

# hdr_has TEXT: the request's header line holds TEXT (fixed string).
hdr_has() {
	ran || return 1
	grep -q -F -e "$1" "$TMP/hdr" && return 0
	echo "# '$1' not in the header line: $(cat "$TMP/hdr")"
	return 1
}

# row NAME KEY FILE_VALUE FLAG CLI_VALUE CHECK: from the file, from the
# command line, and both (the command line wins); CHECK VALUE tells
# whether VALUE took effect.
row() {
	_n=$1 _k=$2 _fv=$3 _fl=$4 _cv=$5 _c=$6
	attempt "$_k = $_fv"
	check "/settings/$_n/file" "$_c" "$_fv"
	attempt "" "$_fl" "$_cv"
	check "/settings/$_n/command-line" "$_c" "$_cv"
	attempt "$_k = $_fv" "$_fl" "$_cv"
	check "/settings/$_n/command-line-wins" "$_c" "$_cv"
}

# --- the request's header ------------------------------------------------------
c_profile() { hdr_has "profile $1, "; }
c_sender() { hdr_has "sender $1, "; }
c_recipient() { hdr_has "recipient $1, "; }
c_owf() { hdr_has "pbm $(echo "$1" | tr a-z A-Z),"; }
c_mac() { hdr_has ",hmacWith$(echo "${1#hmac-}" | tr a-z A-Z),"; }
c_iter() { hdr_has ",$1"; }
row cert-profile cert_profile profile-from-file --cert-profile profile-from-cli c_profile
row sender sender "/CN=sender from file" --sender "/CN=sender from cli" c_sender
row recipient recipient "/CN=recipient from file" --recipient "/CN=recipient from cli" c_recipient
row pbm-owf pbm_owf sha384 --pbm-owf sha512 c_owf
row pbm-mac pbm_mac hmac-sha384 --pbm-mac hmac-sha512 c_mac
row pbm-iterations pbm_iterations 200 --pbm-iterations 300 c_iter
# without any of them: the defaults (no profile, no recipient name, PBM
# with SHA-256, HMAC-SHA256 and 10000 iterations)
attempt ""
check "/settings/defaults/exit-0" ran
check "/settings/defaults/no-profile" hdr_has "profile -, "
check "/settings/defaults/pbm" hdr_has "pbm SHA256,hmacWithSHA256,10000"
check "/settings/defaults/no-implicit" hdr_has "implicit no, "

# implicit_confirm: a yes/no key with two flags
attempt "implicit_confirm = yes"
check "/settings/implicit-confirm/file" hdr_has "implicit yes, "
attempt "" --implicit-confirm
check "/settings/implicit-confirm/command-line" hdr_has "implicit yes, "
attempt "implicit_confirm = yes" --no-implicit-confirm
check "/settings/implicit-confirm/command-line-wins-no" hdr_has "implicit no, "
attempt "implicit_confirm = no" --implicit-confirm
check "/settings/implicit-confirm/command-line-wins-yes" hdr_has "implicit yes, "

# --- the certificate issued, the token, the files ------------------------------
# cert_has TEXT: the issued certificate's text (openssl x509 -text) holds TEXT.
cert_has() {
	ran || return 1
	"$OPENSSL_BIN" x509 -in "$TMP/cert.pem" -noout -text -nameopt oneline > "$TMP/cert.txt" 2>&1
	grep -q -F -e "$1" "$TMP/cert.txt" && return 0
	echo "# '$1' not in the certificate:"
	grep -E 'Subject:|Public-Key|DNS:' "$TMP/cert.txt" | sed 's/^/#   /'
	return 1
}
c_keytype() {
	case $1 in
	ec:P-384) cert_has "Public-Key: (384 bit)" ;;
	rsa:2048) cert_has "Public-Key: (2048 bit)" ;;
	*) echo "# no check for $1"; return 1 ;;
	esac
}
c_keytype_256() { cert_has "Public-Key: (256 bit)"; }
c_san() { cert_has "DNS:${1#DNS:}"; }
c_subject() { cert_has "CN = ${1#/CN=}"; }
row key-type key_type ec:P-384 --key-type rsa:2048 c_keytype
attempt "key_type = rsa:2048" --key-type ec:P-384
check "/settings/key-type/command-line-wins-ec" c_keytype ec:P-384
row san san DNS:from-file.example --san DNS:from-cli.example c_san
row subject subject "/CN=subject from file" --subject "/CN=subject from cli" c_subject

# c_label LABEL: the new pair and certificate carry LABEL, nothing else
# carries the configuration's enrolled-key
c_label() {
	ran || return 1
	_n=$(label_count "$TOK" "$1") || return 1
	[ "$_n" -eq 3 ] || { echo "# $_n objects labelled '$1', not 3"; return 1; }
	_n=$(label_count "$TOK" enrolled-key) || return 1
	[ "$_n" -eq 0 ] || { echo "# $_n objects labelled enrolled-key"; return 1; }
}
row label label label-from-file --label label-from-cli c_label

# c_certfile PATH, c_chainfile PATH: PATH holds the certificate, the 2 CA
# certificates
c_certfile() {
	ran || return 1
	"$OPENSSL_BIN" x509 -in "$1" -noout -subject 2> /dev/null | grep -q 'p11enroll test' ||
		{ echo "# $1 does not hold the certificate"; return 1; }
}
c_chainfile() {
	ran || return 1
	grep -c 'BEGIN CERTIFICATE' "$1" 2> /dev/null | grep -q -x 2 ||
		{ echo "# $1 does not hold the 2 CA certificates"; return 1; }
}
attempt "chain_out = $TMP/file-chain.pem"
check "/settings/chain-out/file" c_chainfile "$TMP/file-chain.pem"
attempt "" --chain-out "$TMP/cli-chain.pem"
check "/settings/chain-out/command-line" c_chainfile "$TMP/cli-chain.pem"
rm -f "$TMP/file-chain.pem" "$TMP/cli-chain.pem"
attempt "chain_out = $TMP/file-chain.pem" --chain-out "$TMP/cli-chain.pem"
check "/settings/chain-out/command-line-wins" c_chainfile "$TMP/cli-chain.pem"
check "/settings/chain-out/file-not-written" test ! -e "$TMP/file-chain.pem"
# cert_out: attempt() sets cert_out in [test]; a second key there would be
# a duplicate, so the command line is checked against it
attempt "" --cert-out "$TMP/cli-cert.pem"
check "/settings/cert-out/command-line-wins" c_certfile "$TMP/cli-cert.pem"
check "/settings/cert-out/file-not-written" test ! -e "$TMP/cert.pem"

# --- the outcome: trust anchors and the CA's expected name -----------------------
"$OPENSSL_BIN" req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$TMP/stranger.key" -out "$TMP/stranger.pem" -subj "/CN=stranger root" -days 2 \
	> /dev/null 2>&1 || bail_out "openssl req failed"
# untrusted RC: the enrollment failed because the issued certificate does
# not verify under the anchors given
untrusted() {
	[ "$RC" = 8 ] || { echo "# exit $RC, not 8:"; sed 's/^/#   /' "$TMP/err" | head -n 5; return 1; }
}
attempt "trusted = $TMP/stranger.pem"
check "/settings/trusted/file" untrusted
attempt "" --trusted "$TMP/stranger.pem"
check "/settings/trusted/command-line" untrusted
attempt "trusted = $TMP/stranger.pem" --trusted "$TMP/ca/root.pem"
check "/settings/trusted/command-line-wins" ran
# a wrong expected sender: the response is refused (exit 7)
CA_NAME="/O=p11enroll test/CN=p11enroll Test CMP Server"
wrong_sender() {
	[ "$RC" = 7 ] && grep -q 'not the expected' "$TMP/err" && return 0
	echo "# exit $RC, not 7 naming the sender:"
	sed 's/^/#   /' "$TMP/err" | head -n 5
	return 1
}
attempt "expected_sender = /CN=someone else"
check "/settings/expected-sender/file" wrong_sender
attempt "" --expected-sender "/CN=someone else"
check "/settings/expected-sender/command-line" wrong_sender
attempt "expected_sender = /CN=someone else" --expected-sender "$CA_NAME"
check "/settings/expected-sender/command-line-wins" ran
attempt "expected_sender = $CA_NAME"
check "/settings/expected-sender/right-name" ran

# --- values refused before anything is sent ----------------------------------------
# refused NAME REGEX: exit 2, stderr matches REGEX, the CA saw no request
refused() {
	check "/settings/refused/$1/exit-2" expect_rc 2
	check "/settings/refused/$1/says-why" grep_err "$2"
	check "/settings/refused/$1/nothing-sent" test ! -s "$TMP/hdr"
}
"$OPENSSL_BIN" req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$TMP/prot.key" -out "$TMP/prot.pem" -subj "/CN=protection" -days 2 \
	> /dev/null 2>&1 || bail_out "openssl req failed"
echo "not a key" > "$TMP/junk.key"
chmod 600 "$TMP/junk.key"
chmod 644 "$TMP/prot.key"
attempt "sender = not a name"
refused sender "sender: "
attempt "" --recipient "CN"
refused recipient "recipient: "
attempt "pbm_owf = md5"
refused pbm-owf "\\[test\\] pbm_owf: 'md5' is not one of sha256, sha384, sha512"
attempt "" --pbm-mac hmac-sha1
refused pbm-mac "pbm-mac: 'hmac-sha1' is not one of hmac-sha256, hmac-sha384, hmac-sha512"
attempt "" --pbm-iterations 50
refused pbm-iterations "pbm-iterations: '50' is not a number from 100 to 100000"
# signature protection from files: a cr
CMD=cr
attempt "protection_cert = $TMP/prot.pem
protection_key = $TMP/prot.key"
refused key-readable "protection_key $TMP/prot.key is accessible by group or others: restrict it with chmod 600"
attempt "protection_cert = $TMP/prot.pem
protection_key = $TMP/junk.key"
refused key-not-pem "protection_key $TMP/junk.key holds no unencrypted PEM private key"
attempt "protection_cert = $TMP/prot.pem"
refused key-missing "needs both protection_cert and protection_key; protection_key is missing"
CMD=

# --- renew: what it refuses, and the CA's template --------------------------------
CMD=renew
attempt "" --key-type ec:P-521
refused renew-key-type "key-type: 'ec:P-521' is not supported; allowed: ec:P-256, ec:P-384, rsa:2048, rsa:3072, rsa:4096"
attempt ""
check "/settings/renew/nothing-enrolled/exit-3" expect_rc 3
check "/settings/renew/nothing-enrolled/says-why" grep_err "renew needs a certificate labelled 'enrolled-key' on the token: run p11enroll enroll first"
CMD=
# use_template = yes: the renewal takes the key type of the CA's template
# (the first certificate was enrolled without it: P-256)
start_ca --template "subject=/CN=from template/O=Example;key=ec:P-384" || exit 1
attempt ""
check "/settings/renew/template/enrolled-p256" c_keytype_256
echo "use_template = yes" >> "$TMP/p11enroll.conf"
p11e renew test --local
check "/settings/renew/template/renewed-p384" c_keytype ec:P-384
start_ca || exit 1

# --- the agent: refused at start, saying why (control socket, schedule) ------------
# (a hang guard: an agent that started by mistake is killed, and fails)
long_path="$TMP/$(printf '%0120d' 0)/control"
for c in "path-too-long:control_socket = $long_path:control socket path $long_path is too long" \
	"no-such-group:control_group = p11enroll-no-such-group:\\[default\\] control_group: 'p11enroll-no-such-group' is not a group of this system" \
	"no-directory:control_socket = $TMP/no/such/dir/control:cannot listen on $TMP/no/such/dir/control: No such file or directory" \
	"renew-at:renew_at = soon:\\[test\\] renew_at: 'soon' is neither a percentage of the lifetime" \
	"retry-max:retry_max = 5x:\\[test\\] retry_max: '5x' is not a duration such as 60s, 5m, 4h, 1d"; do
	name=${c%%:*} rest=${c#*:}
	# the agent's own keys stand before the first section
	write_conf "agentless"
	case $rest in
	control_*) sed -i "1i ${rest%%:*}" "$TMP/p11enroll.conf" ;;
	*) printf '%s\n' "${rest%%:*}" >> "$TMP/p11enroll.conf" ;;
	esac
	sed -i "1i metrics_file = $TMP/metrics.prom" "$TMP/p11enroll.conf"
	case $rest in control_group*) sed -i "1i control_socket = $TMP/agent.sock" "$TMP/p11enroll.conf" ;; esac
	timeout -s KILL "$(scaled 60)" "$P11ENROLL" -c "$TMP/p11enroll.conf" agent > "$TMP/out" 2> "$TMP/err"
	RC=$?
	check "/settings/agent-refused/$name/exit-2" expect_rc 2
	check "/settings/agent-refused/$name/says-why" grep_err "${rest#*:}"
done
# the agent takes the whole file: a name is refused
write_conf "agentless"
sed -i "1i control_socket = $TMP/agent.sock" "$TMP/p11enroll.conf"
timeout -s KILL "$(scaled 60)" "$P11ENROLL" -c "$TMP/p11enroll.conf" agent test > "$TMP/out" 2> "$TMP/err"
RC=$?
check "/settings/agent-refused/named/exit-2" expect_rc 2
check "/settings/agent-refused/named/says-why" grep_err "the agent reads every enrollment of the file: give no name"
finish
