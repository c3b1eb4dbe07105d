#!/bin/sh
# /faults: every way the CA can fail ends in a clean non-zero exit, a clear
# message, nothing stored and no key left behind on the token.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
setup
make_token faults || exit 1

# fault NAME EXIT_CODE MESSAGE_REGEX [CA_ARGS...]
fault() {
	name=$1 want=$2 msg=$3
	shift 3
	start_ca "$@" || { not_ok "/faults/$name/ca-start"; return; }
	write_conf faults "timeout = 3
total_timeout = 5"
	p11e enroll test
	check "/faults/$name/exit-$want" expect_rc "$want"
	check "/faults/$name/message" grep_err "$msg"
	check "/faults/$name/token-empty" test "$(count_objects faults)" -eq 0
	check "/faults/$name/no-secret-in-output" no_secret_in "$TMP/out" "$TMP/err"
}

fault http500 5 'HTTP.*500' --fault http500
fault drop 5 'transport|connection|server' --fault drop
fault garbage 7 'not a CMP message|malformed|decod' --fault garbage
fault truncated 7 'not a CMP message|malformed|decod' --fault truncated
fault content-type 5 'content type|Content-Type' --fault content-type
fault redirect 5 'redirect' --fault redirect
fault huge 5 'larger than|size|cap' --fault huge
fault wrong-tid 7 'transaction' --fault wrong-tid
fault wrong-nonce 7 'nonce' --fault wrong-nonce
fault unprotected-error 7 'protect' --fault unprotected-error
fault bad-protection 7 'protect' --fault bad-protection
fault slow 5 'time|timed out' --fault slow=20
fault reject-badPOP 6 'rejection.*badPOP|badPOP' --fault reject=badPOP
fault reject-badCertTemplate 6 'badCertTemplate' --fault reject=badCertTemplate
fault wrong-key 8 'key|public' --fault wrong-key
fault untrusted 8 'verif|trust|chain' --fault untrusted
fault wrong-subject 8 'subject' --fault wrong-subject

# Nobody listening at all.
stop_ca
write_conf faults
sed -i "s|^server = .*|server = http://127.0.0.1:1/.well-known/cmp|" "$TMP/p11enroll.conf"
p11e enroll test
check "/faults/no-server/exit-5" expect_rc 5
check "/faults/no-server/message" grep_err 'connect|refused'
check "/faults/no-server/token-empty" test "$(count_objects faults)" -eq 0
finish
