#!/bin/sh
# Regenerates tests/fuzz/data (the test CA's root and protection key, the
# client's keys and certificate) and the seeds of tests/fuzz/corpus/rsp:
# fuzz-rsp recording real exchanges with the test CA (FUZZ_RSP_RECORD), one
# seed per exchange kind and CA behaviour.  A seed is the exchange byte, the
# flags byte and the CA's responses, framed as fuzz-rsp reads them.
# The certificates expire (issued for 10 years, the roots likewise); after
# that the seeds still replay, but end in verification failures: run this
# again.
# Seeds are written by name: files that fuzzing added are left alone.
# usage: tools/make-rsp-seeds.sh BUILD_DIR [--new]   (a build without --enable-fuzzing)
#        ONLY="NAME..." tools/make-rsp-seeds.sh BUILD_DIR: only these seeds
set -e
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
out="$top/tests/fuzz/corpus/rsp"
data="$top/tests/fuzz/data"
tmp=$(mktemp -d)
pid=
trap '[ -z "$pid" ] || kill $pid 2> /dev/null; rm -rf "$tmp"' EXIT
printf 'shared-secret-8c1f2e\n' > "$tmp/secret"

start_ca() { # start_ca CA-ARGS...: the test CA on $port, state in $tmp/ca
	rm -f "$tmp/port"
	"$build/tests/ca/p11enroll-testca" --dir "$tmp/ca" --port 0 --ref 4711 \
		--secret-file "$tmp/secret" --quiet --new-root --days 3650 \
		--template 'subject=/CN=fuzz/O=p11enroll;key=ec:P-256' "$@" > "$tmp/port" &
	pid=$!
	while ! grep -q port "$tmp/port" 2> /dev/null; do sleep 0.1; done
	port=$(sed -n 's/^port //p' "$tmp/port")
}

stop_ca() {
	kill $pid
	wait $pid 2> /dev/null || true
	pid=
}

# seed NAME OP FLAGS CA-ARGS...: OP and FLAGS as in fuzz-rsp.c.
seed() {
	name=$1 op=$2 flags=$3
	shift 3
	case " ${ONLY:-$name} " in *" $name "*) ;; *) return 0 ;; esac
	start_ca "$@"
	printf "\\$(printf '%03o' "$op")\\$(printf '%03o' "$flags")" > "$tmp/in"
	FUZZ_DATA="$data" FUZZ_RSP_RECORD="http://127.0.0.1:$port/.well-known/cmp" \
		FUZZ_RSP_OUT="$out/$name" "$build/tests/fuzz/fuzz-rsp" "$tmp/in" > /dev/null
	stop_ca
}

mkdir -p "$out" "$data"
# The test CA (tests/fuzz/data/ca: its keys too, test-only) and the client's
# keys and certificate are made once: seeds added later must come from the
# same CA.  --new makes new ones, and then the old seeds are dropped (and
# the seeds of corpus/cmp, recorded from the same CA, must be made again:
# tools/make-cmp-seeds.sh).
if [ "$2" = --new ] || [ ! -f "$data/ca/root.key" ]; then
	rm -rf "$data/ca" "$out"/*
	for k in key key2; do
		openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$data/$k.pem"
	done
	start_ca
	openssl cmp -cmd ir -server "127.0.0.1:$port/.well-known/cmp" -ref 4711 \
		-secret "file:$tmp/secret" -newkey "$data/key.pem" -subject /CN=fuzz \
		-trusted "$tmp/ca/root.pem" -certout "$data/ee.pem" > /dev/null 2>&1
	stop_ca
	# The CA's state as it is now: it knows the client's certificate.
	rm -f "$tmp/ca/port" "$tmp/ca/last-response.der"
	cp -R "$tmp/ca" "$data/ca"
else
	cp -R "$data/ca" "$tmp/ca"
fi

# exchanges: 0 ir, 1 p10cr, 2 cr, 3 kur, 4 rr, 5 caCerts, 6 rootCaCert,
# 7 certReqTemplate, 8 crlStatusList, 9 resume, 10 abandon
# +128 subjectAltName, +64 certProfile/sender/recipient, +32 2 KiB response cap
# flags: 8 implicitConfirm, 16 unprotected errors, 32 refuse, 64 expect sender,
# 128 resume without waiting (recording)
seed ir-certconf 0 0 --no-implicit-confirm
seed ir-implicit 0 8
seed ir-signed 0 0 --protection sig
seed ir-refused 0 32 --no-implicit-confirm
seed ir-rejection 0 0 --fault reject=badPOP
seed ir-unprotected-error 0 16 --fault unprotected-error
seed ir-weird-text 0 0 --fault weird-text
seed ir-wrong-key 0 0 --fault wrong-key
seed ir-wrong-subject 0 0 --fault wrong-subject
seed ir-untrusted 0 0 --fault untrusted
seed ir-wrong-certreqid 0 0 --fault wrong-certreqid
seed ir-oversized-serial 0 0 --fault oversized-serial
seed ir-many-extracerts 0 0 --fault many-extracerts=5
seed ir-sender-format 0 64 --fault sender-format
seed ir-expected-sender 0 64 --protection sig
seed ir-check-after-huge 0 0 --poll 1 --fault check-after-huge
seed ir-poll 0 0 --poll 1
seed p10cr 1 0
seed cr 2 0
seed kur 3 0
seed kur-capubs 3 0 --fault capubs-in-kup
seed genm-ca-certs 5 0
seed genm-root-update 6 0
seed genm-root-forged 6 0 --fault forged-root-update --fault-all
seed genm-template 7 0
seed genm-crls 8 0
seed resume 9 0 --poll 1
seed abandon 10 0
seed ir-unprotected 0 0 --fault unprotected
seed ir-unprotected-allowed 0 16 --fault unprotected
seed p10cr-poll 1 0 --poll 1
seed cr-many-extracerts 2 0 --fault many-extracerts=3
seed kur-wrong-key 3 0 --fault wrong-key
seed genm-rejected 5 0 --fault reject=badRequest --fault-all
seed genm-template-rsa 7 0 --template 'subject=/CN=rsa;key=rsa:3072'
seed resume-rejected 9 0 --poll 1 --fault reject=badPOP --fault-on pollReq --fault-skip 1
seed resume-pollrep 9 128 --poll 2
seed ir-sans 128 0
seed ccr 30 0
seed ccr-signed 30 0 --protection sig
seed ccr-refused 30 0 --fault wrong-key
seed ccr-rejection 30 0 --fault reject=badCertTemplate
seed ccr-wrong-certreqid 30 0 --fault wrong-certreqid
seed ccr-poll 30 0 --poll 1
seed ccr-check-after-huge 30 0 --poll 1 --fault check-after-huge
seed ir-header 64 0
seed ir-small-cap 32 0 --fault many-extracerts=5
# Last: these revoke the client's certificate.
seed rr-rejected 4 0 --fault reject=badCertId --fault-all
seed rr 4 0
seed rr-again 4 0
seed genm-crls-revoked 8 0
ls -l "$out"
