#!/bin/sh
# Writes the seeds of tests/fuzz/corpus/{http,state,ctl}: HTTP answers of a
# CMP server (good, and the ways servers and proxies go wrong), agent state
# files (NAME.agent) as track_save writes them and as they may be found,
# and control socket request lines.  The http seeds take a genp from the
# rsp seeds (tools/make-rsp-seeds.sh) as the body of a good answer.
# usage: tools/make-fuzz-seeds.sh
set -e
top=$(cd "$(dirname "$0")/.." && pwd)
c="$top/tests/fuzz/corpus"
mkdir -p "$c/http" "$c/state" "$c/ctl"
# Written by name: files that fuzzing added are left alone.

# ---- http: byte 0 (size cap: 0 default, 1 64 B, 2 1 KiB, 3 4 KiB; +4 unprotected
# errors; +8 genm certReqTemplate instead of caCerts), then the answer.
genp=$(mktemp)
trap 'rm -f "$genp"' EXIT
# The first response of the caCerts seed: 2 bytes exchange and flags, 2 bytes length.
tail -c +5 "$c/../corpus/rsp/genm-ca-certs" > "$genp.all"
n=$(od -An -tu1 -j2 -N2 "$c/rsp/genm-ca-certs" | awk '{print $1 * 256 + $2}')
head -c "$n" "$genp.all" > "$genp"
rm -f "$genp.all"
h() { # h NAME BYTE0 HEADERS [BODY-FILE]
	{
		printf "\\$(printf '%03o' "$2")"
		printf '%b' "$3"
		[ -z "$4" ] || cat "$4"
	} > "$c/http/$1"
}
crlf='\r\n'
h ok 0 "HTTP/1.1 200 OK${crlf}Content-Type: application/pkixcmp${crlf}Content-Length: $n${crlf}${crlf}" "$genp"
h ok-params 0 "HTTP/1.1 200 OK${crlf}content-type:  APPLICATION/PKIXCMP ; charset=binary${crlf}Content-Length: $n${crlf}${crlf}" "$genp"
h ok-http10-close 0 "HTTP/1.0 200 OK${crlf}Content-Type: application/pkixcmp${crlf}${crlf}" "$genp"
h ok-chunked 0 "HTTP/1.1 200 OK${crlf}Content-Type: application/pkixcmp${crlf}Transfer-Encoding: chunked${crlf}${crlf}10${crlf}" "$genp"
h over-cap 1 "HTTP/1.1 200 OK${crlf}Content-Type: application/pkixcmp${crlf}Content-Length: $n${crlf}${crlf}" "$genp"
h over-cap-chunked 2 "HTTP/1.1 200 OK${crlf}Content-Type: application/pkixcmp${crlf}Transfer-Encoding: chunked${crlf}${crlf}800${crlf}" "$genp"
h truncated 0 "HTTP/1.1 200 OK${crlf}Content-Type: application/pkixcmp${crlf}Content-Length: 9999${crlf}${crlf}" "$genp"
h html 0 "HTTP/1.1 200 OK${crlf}Content-Type: text/html${crlf}Content-Length: 13${crlf}${crlf}<html></html>"
h no-type 0 "HTTP/1.1 200 OK${crlf}Content-Length: $n${crlf}${crlf}" "$genp"
h type-prefix 0 "HTTP/1.1 200 OK${crlf}Content-Type: application/pkixcmpx${crlf}Content-Length: $n${crlf}${crlf}" "$genp"
h redirect 0 "HTTP/1.1 301 Moved Permanently${crlf}Location: http://127.0.0.1:9/cmp${crlf}Content-Length: 0${crlf}${crlf}"
h redirect-noloc 0 "HTTP/1.1 302 Found${crlf}Content-Length: 0${crlf}${crlf}"
h error500 0 "HTTP/1.1 500 Internal Server Error${crlf}Content-Type: text/plain${crlf}Content-Length: 5${crlf}${crlf}oops\n"
h continue 0 "HTTP/1.1 100 Continue${crlf}${crlf}HTTP/1.1 200 OK${crlf}Content-Type: application/pkixcmp${crlf}Content-Length: $n${crlf}${crlf}" "$genp"
h garbage-body 4 "HTTP/1.1 200 OK${crlf}Content-Type: application/pkixcmp${crlf}Content-Length: 4${crlf}${crlf}0\\0200\\0"
h empty-body 8 "HTTP/1.1 200 OK${crlf}Content-Type: application/pkixcmp${crlf}Content-Length: 0${crlf}${crlf}"
h not-http 0 "SSH-2.0-OpenSSH_9.2${crlf}"
h nothing 0 ""

# ---- state: NAME.agent
s() { printf '%b' "$2" > "$c/state/$1"; }
good="# p11enroll agent state of 'fuzz'; written by the agent\nversion 1\nseed 2882400001\nnext 1767225600\nlast_success 1764633600\nlast_attempt 1764633600\nfailures 0\nrenewals 3\nstopped 0\nlast_error \npin_latch \ncert_serial 4F1A09C3D2\nnot_before 1764633600\nnot_after 1796169600\n"
s valid "$good"
s stopped "version 1\nseed 7\nnext 0\nfailures 12\nrenewals 0\nstopped 1\nlast_error the CA refused the request: badPOP\npin_latch \n"
s pin-latched "version 1\nseed 1\nnext 1767225600\nfailures 1\nstopped 0\nlast_error the token rejected the PIN\npin_latch file:/etc/p11enroll/pin ino=1234 size=7 mtime=1764633600.000000000\n"
s control-chars "version 1\nlast_error CA said \\033]0;owned\\007\\033[31mred\\033[0m\\r\\tdone\\177\npin_latch env:\\001PIN\ncert_serial 01\nnot_after 1\n"
s extremes "seed 99999999999999999999\nnext -9223372036854775808\nlast_success 9223372036854775807\nlast_attempt 99999999999999999999\nfailures 1000001\nrenewals -5\ncert_serial 00FF\nnot_before -1\nnot_after 9223372036854775807\n"
s bad-serial "cert_serial 4f1a-xyz\nnot_after 1796169600\n"
s no-values "seed\nnext\n \nfailures \n#comment\nstopped 1 2\n"
s empty ""
awk 'BEGIN { printf "last_error "; for (i = 0; i < 1500; i++) printf "x"; printf "\npin_latch "; for (i = 0; i < 700; i++) printf "p"; printf "\nfailures 2\n" }' > "$c/state/long-lines"

# ---- ctl: byte 0 the chunk size the client writes in (low 7 bits, plus one)
# and whether it then shuts down its side (+128); then what it sends.
l() { printf '%b' "$2" > "$c/ctl/$1"; }
l status "\\177status\n"
l status-text "\\003status-text\r\n"
l reload "\\200reload\n"
l renew "\\177renew web-server\n"
l clear "\\000clear web-server\n"
l renew-empty "\\177renew \n"
l unknown "\\177restart everything\n"
l nul "\\177status\\0trailing\n"
l partial "\\177statu"
l no-newline-eof "\\207status"
l crlf-junk "\\011renew a\rjunk\nmore\n"
awk 'BEGIN { printf "\177renew "; for (i = 0; i < 520; i++) printf "n"; printf "\n" }' > "$c/ctl/too-long"
awk 'BEGIN { printf "\377renew "; for (i = 0; i < 504; i++) printf "n"; printf "\n" }' > "$c/ctl/longest"
