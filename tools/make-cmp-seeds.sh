#!/bin/sh
# Regenerates the seeds of tests/fuzz/corpus/cmp: fuzz-cmp recording real
# exchanges with the test CA (FUZZ_CMP_RECORD), one seed per exchange and
# CA behaviour.  A seed is the options byte and the CA's responses, framed
# as fuzz-cmp reads them (2-byte big-endian length, then the message).
# fuzz-cmp is deterministic (fixed client key and trust anchor from
# tests/fuzz/data, transactionID and nonces from a restarted generator),
# so the responses recorded here pass its checks when replayed.  The CA
# is the one of tests/fuzz/data/ca (tools/make-rsp-seeds.sh makes it),
# started afresh from that state for each seed; its certificates, and those
# it issues here, are valid until 2036: after that, run this again.
# tests/fuzz/replay-cmp.sh checks how each named seed ends: a new seed
# needs a line there.
# Seeds are written by name: files that fuzzing added, and empty-response
# (written by hand: options 0 and an empty message), are left alone.
# usage: tools/make-cmp-seeds.sh BUILD_DIR   (a build without --enable-fuzzing)
#        ONLY="NAME..." tools/make-cmp-seeds.sh BUILD_DIR: only these seeds
#        CA_LOG=FILE: the test CA's log (--log) of each seed appended to FILE
set -e
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
out="$top/tests/fuzz/corpus/cmp"
data="$top/tests/fuzz/data"
tmp=$(mktemp -d)
pid=
trap '[ -z "$pid" ] || kill $pid 2> /dev/null; rm -rf "$tmp"' EXIT
printf 'shared-secret-8c1f2e\n' > "$tmp/secret"
[ -f "$data/ca/root.pem" ] || {
	echo "$0: no test CA in $data/ca: run tools/make-rsp-seeds.sh first" >&2
	exit 1
}

start_ca() { # start_ca CA-ARGS...: the test CA on $port, state in $tmp/ca
	rm -rf "$tmp/ca" "$tmp/port"
	cp -R "$data/ca" "$tmp/ca"
	"$build/tests/ca/p11enroll-testca" --dir "$tmp/ca" --port 0 --ref 4711 \
		--secret-file "$tmp/secret" --quiet --days 3650 ${CA_LOG:+--log "$CA_LOG"} "$@" > "$tmp/port" &
	pid=$!
	while ! grep -q port "$tmp/port" 2> /dev/null; do sleep 0.1; done
	port=$(sed -n 's/^port //p' "$tmp/port")
}

stop_ca() {
	kill $pid
	wait $pid 2> /dev/null || true
	pid=
}

# seed NAME OPTIONS CA-ARGS...: OPTIONS as in fuzz-cmp.c.
seed() {
	name=$1 opts=$2
	shift 2
	case " ${ONLY:-$name} " in *" $name "*) ;; *) return 0 ;; esac
	start_ca "$@"
	printf "\\$(printf '%03o' "$opts")" > "$tmp/in"
	if ! FUZZ_DATA="$data" FUZZ_CMP_RECORD="http://127.0.0.1:$port/.well-known/cmp" \
		FUZZ_CMP_OUT="$out/$name" FUZZ_CMP_VERBOSE=1 \
		"$build/tests/fuzz/fuzz-cmp" "$tmp/in" > "$tmp/log" 2>&1; then
		cat "$tmp/log" >&2
		echo "$0: recording $name failed" >&2
		exit 1
	fi
	sed -n "s/^fuzz-cmp: /$name: /p" "$tmp/log"
	stop_ca
}

# derive NAME FROM OPTIONS: seed FROM with other options, for a client that
# asks for more than the recorded answers give.
derive() {
	case " ${ONLY:-$1} " in *" $1 "*) ;; *) return 0 ;; esac
	{ printf "\\$(printf '%03o' "$3")"; tail -c +2 "$out/$2"; } > "$out/$1"
	echo "$1: $2 with options $3"
}

mkdir -p "$out"
# options: exchange 0 ir, 1 resume, 2 abandon (recorded after an ir that the
# CA answered "waiting", given up after 2 s: the first message of the seed is
# the CA's last answer then, from which the transaction is continued; the CA
# needs --poll 2 or more); +4 implicitConfirm, +8 unprotected errors
# accepted, +16 the CA's CMP server name expected as sender, +32 the accept
# callback refuses, +64 a subjectAltName requested, +128 resume at once
# (recording; else after checkAfter)
seed ip-pkiconf 0 --no-implicit-confirm
seed ip-implicit 4
seed ip-implicit-refused 4 --no-implicit-confirm
seed ip-signed 0 --protection sig
seed ip-signed-implicit 4 --protection sig
seed ip-signed-by-ca 0 --protection sig --signer ca
seed ip-signed-rogue 0 --protection sig --signer device
seed ip-expected-sender 16 --protection sig
seed ip-wrong-sender 16 --protection sig --fault wrong-sender
seed ip-refused 32 --no-implicit-confirm
seed ip-sans 64 --no-implicit-confirm
derive ip-sans-dropped ip-pkiconf 64
seed ip-many-extracerts 0 --fault many-extracerts=5
seed rejection 0 --fault reject=badPOP
seed rejection-weird-text 0 --fault weird-text
seed certconf-error 0 --no-implicit-confirm --fault reject=badRequest --fault-on certConf
seed unprotected-error 8 --fault unprotected-error
seed unprotected-error-refused 0 --fault unprotected-error
seed unprotected-ip 8 --fault unprotected
seed bad-protection 0 --fault bad-protection
seed wrong-tid 0 --fault wrong-tid
seed wrong-nonce 0 --fault wrong-nonce
seed wrong-key 0 --fault wrong-key
seed wrong-subject 0 --fault wrong-subject
seed untrusted 0 --fault untrusted
seed wrong-certreqid 0 --fault wrong-certreqid
seed oversized-serial 0 --fault oversized-serial
seed waiting-pollrep 0 --poll 1
seed waiting-implicit 4 --poll 2
seed waiting-check-after-huge 0 --poll 1 --fault check-after-huge
seed waiting-long 0 --poll 30
seed waiting-rejected 0 --poll 1 --fault reject=badPOP --fault-on pollReq --fault-skip 1
seed resume 1 --poll 2
seed resume-pollrep 129 --poll 2
seed resume-rejected 1 --poll 2 --fault reject=badPOP --fault-on pollReq --fault-skip 1
seed resume-unprotected-error 9 --poll 2 --fault unprotected-error --fault-on pollReq --fault-skip 1
seed resume-wrong-tid 1 --poll 2 --fault wrong-tid --fault-on pollReq --fault-skip 1
seed resume-wrong-nonce 1 --poll 2 --fault wrong-nonce --fault-on pollReq --fault-skip 1
seed resume-waiting 129 --poll 30
seed resume-bad-protection 1 --poll 2 --fault bad-protection --fault-on pollReq --fault-skip 1
seed resume-unprotected 9 --poll 2 --fault unprotected --fault-on pollReq --fault-skip 1
seed resume-wrong-sender 17 --poll 2 --protection sig --fault wrong-sender --fault-on pollReq --fault-skip 1
seed abandon 2 --poll 2
ls -l "$out"
