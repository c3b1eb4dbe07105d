#!/bin/sh
# /fuzz/cmp: replays the CMP response fuzz corpus (no crash, no sanitizer
# report) and checks how each named seed ends (FUZZ_CMP_VERBOSE): a seed
# that no longer reaches what it was recorded for (a transactionID or
# nonce mismatch where a certificate should be issued, say) fails here.
# The seeds come from tools/make-cmp-seeds.sh; a named seed needs a line
# below, files that fuzzing added (named by their hash) need none.
# The files are named one by one: given a directory, a libFuzzer build
# (--enable-fuzzing) would fuzz on and add its findings to the source tree.
echo "1..1"
fuzz="$top_builddir/tests/fuzz/fuzz-cmp"
corpus="$top_srcdir/tests/fuzz/corpus/cmp"
fail=0
checked=" "

# expect NAME PREFIX [TEXT]: the outcome line of seed NAME starts with
# PREFIX ("EXCHANGE: RESULT; sent REQUESTS;") and holds TEXT.
expect() {
	name=$1 prefix=$2 text=${3-}
	checked="$checked$name "
	if ! out=$(FUZZ_CMP_VERBOSE=1 "$fuzz" "$corpus/$name" 2>&1); then
		printf '# FAIL %s: fuzz-cmp failed:\n%s\n' "$name" "$out"
		fail=1
		return
	fi
	line=$(printf '%s\n' "$out" | sed -n 's/^fuzz-cmp: //p')
	case "$line" in
	"$prefix"*"$text"*) echo "# ok $name: $prefix${text:+ ... $text}" ;;
	*)
		printf '# FAIL %s: expected "%s ... %s", got:\n%s\n' "$name" "$prefix" "$text" "$out"
		fail=1
		;;
	esac
}

# Certificates issued and confirmed (certConf, or implicitConfirm granted).
expect ip-pkiconf 'ir: OK; sent ir certConf;'
expect ip-implicit 'ir: OK; sent ir;'
expect ip-implicit-refused 'ir: OK; sent ir certConf;'
expect ip-signed 'ir: OK; sent ir certConf;'
expect ip-signed-implicit 'ir: OK; sent ir;'
expect ip-expected-sender 'ir: OK; sent ir certConf;'
expect ip-sans 'ir: OK; sent ir certConf;'
expect ip-many-extracerts 'ir: OK; sent ir certConf;'
expect oversized-serial 'ir: OK; sent ir certConf;'
# Polling: OpenSSL's pollReq in the ir, then the layer's in a resume.
expect waiting-pollrep 'ir: OK; sent ir pollReq pollReq certConf;'
expect waiting-implicit 'ir: OK; sent ir pollReq pollReq;'
expect waiting-long 'ir: WAITING; sent ir pollReq;' 'asks to poll again in 30 s'
expect waiting-check-after-huge 'ir: PROTOCOL; sent ir pollReq;' 'checkAfter out of range'
expect waiting-rejected 'ir: REJECTED; sent ir pollReq pollReq;' 'PKIStatus: rejection'
expect resume 'resume: OK; sent pollReq certConf;'
expect resume-pollrep 'resume: OK; sent pollReq pollReq certConf;'
expect resume-waiting 'resume: WAITING; sent pollReq;' "still answers 'waiting'"
expect resume-rejected 'resume: REJECTED; sent pollReq;' 'the CA ended the transaction'
expect resume-unprotected-error 'resume: PROTOCOL; sent pollReq;' \
	'unprotected error message says the transaction ended'
expect resume-wrong-tid 'resume: PROTOCOL; sent pollReq;' 'transactionID differs'
expect resume-wrong-nonce 'resume: PROTOCOL; sent pollReq;' 'recipNonce differs'
expect resume-bad-protection 'resume: PROTOCOL; sent pollReq;' \
	"the protection of the CA's answer does not verify: wrong pbm value"
expect resume-unprotected 'resume: PROTOCOL; sent pollReq;' "the CA's answer is not protected"
expect resume-wrong-sender 'resume: PROTOCOL; sent pollReq;' 'CN=p11enroll Impostor'
expect abandon 'abandon: OK; sent error;'
# Status handling: rejections and error messages.
expect rejection 'ir: REJECTED; sent ir;' 'PKIFailureInfo: badPOP'
expect rejection-weird-text 'ir: REJECTED; sent ir;' 'test CA fault: weird-text'
expect certconf-error 'ir: REJECTED; sent ir certConf;' 'PKIFailureInfo: badRequest'
expect unprotected-error 'ir: PROTOCOL; sent ir;' \
	'unprotected error message says the request was rejected'
expect unprotected-error-refused 'ir: PROTOCOL; sent ir;' 'missing protection'
# Checks of the response: protection, signer, sender, transaction.
expect unprotected-ip 'ir: PROTOCOL; sent ir;' 'missing protection'
expect bad-protection 'ir: PROTOCOL; sent ir;' 'wrong pbm value'
expect ip-signed-by-ca 'ir: PROTOCOL; sent ir;' 'missing key usage digitalsignature'
expect ip-signed-rogue 'ir: PROTOCOL; sent ir;' 'may not speak for the CA'
expect ip-wrong-sender 'ir: PROTOCOL; sent ir;' 'CN=p11enroll Impostor'
expect empty-response 'ir: PROTOCOL; sent ir;' 'not a CMP message (0 bytes'
expect wrong-tid 'ir: PROTOCOL; sent ir;' 'transactionid unmatched'
expect wrong-nonce 'ir: PROTOCOL; sent ir;' 'recipnonce unmatched'
expect wrong-certreqid 'ir: PROTOCOL; sent ir;' 'certresponse not found'
# Checks of the new certificate (certConf rejects it).
expect wrong-key 'ir: CERT; sent ir certConf;' 'public key in new certificate does not match'
expect wrong-subject 'ir: CERT; sent ir certConf;' "'CN=wrong subject' is not the requested"
expect untrusted 'ir: CERT; sent ir certConf;' 'does not verify against the configured trust'
expect ip-sans-dropped 'ir: CERT; sent ir certConf;' \
	"subjectAltName '(none)' is not the requested 'DNS:fuzz.example'"
expect ip-refused 'ir: CERT; sent ir certConf;' 'refused by the fuzz harness'

for f in "$corpus"/*; do
	name=${f##*/}
	case "$checked" in *" $name "*) continue ;; esac
	case "$name" in
	*[!0-9a-f]*) ;;
	*) [ ${#name} -eq 40 ] && continue ;;
	esac
	echo "# FAIL $name: a named seed without an expected outcome in $0"
	fail=1
done

out=$("$fuzz" "$corpus"/*) || fail=1
echo "# $out"
# TAP, one test point: the named seeds' outcomes and the whole corpus
if [ $fail -eq 0 ]; then
	echo "ok 1 - /fuzz/cmp/replay: $out"
else
	echo "not ok 1 - /fuzz/cmp/replay"
fi
