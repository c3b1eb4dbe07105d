#!/bin/sh
# Regenerates tests/fuzz/corpus/cmp from real exchanges with the test CA
# (openssl cmp as the client, its responses saved with -rspout), framed as
# the fuzz target reads them: 2-byte big-endian length, then the message.
# usage: tools/make-cmp-seeds.sh BUILD_DIR
set -e
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
out="$top/tests/fuzz/corpus/cmp"
tmp=$(mktemp -d)
trap 'kill $pid 2> /dev/null; rm -rf "$tmp"' EXIT
printf 'shared-secret-8c1f2e\n' > "$tmp/secret"
openssl ecparam -genkey -name prime256v1 -noout -out "$tmp/key.pem" 2> /dev/null

frame() { # frame FILE...: the framed concatenation on stdout
	for f in "$@"; do
		n=$(wc -c < "$f")
		printf "\\$(printf '%03o' $((n >> 8)))\\$(printf '%03o' $((n & 255)))"
		cat "$f"
	done
}

# seed NAME CA-ARGS...: one ir exchange, its responses as seed NAME.
seed() {
	name=$1
	shift
	rm -rf "$tmp/ca" "$tmp"/rsp*.der
	"$build/tests/ca/p11enroll-testca" --dir "$tmp/ca" --port 0 --ref 4711 \
		--secret-file "$tmp/secret" --quiet "$@" > "$tmp/port" &
	pid=$!
	while ! grep -q port "$tmp/port"; do sleep 0.1; done
	port=$(sed -n 's/^port //p' "$tmp/port")
	openssl cmp -cmd ir -server "127.0.0.1:$port/.well-known/cmp" -ref 4711 \
		-secret "file:$tmp/secret" -newkey "$tmp/key.pem" -subject /CN=fuzz \
		-trusted "$tmp/ca/root.pem" -certout "$tmp/cert.pem" \
		-rspout "$tmp/rsp1.der,$tmp/rsp2.der,$tmp/rsp3.der" > /dev/null 2>&1 || true
	kill $pid
	wait $pid 2> /dev/null || true
	set -- "$tmp"/rsp*.der
	[ -f "$1" ] && frame "$@" > "$out/$name"
}

mkdir -p "$out"
seed ip-pkiconf
seed ip-implicit --grant-implicit-confirm
seed ip-signed --protection sig
seed rejection --fault reject=badPOP
seed waiting-pollrep --poll 1
seed wrong-tid --fault wrong-tid
seed unprotected-error --fault unprotected-error
ls -l "$out"
