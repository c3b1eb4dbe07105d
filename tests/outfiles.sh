#!/bin/sh
# /outfiles: every file p11enroll writes (cert_out, chain_out, genm
# --ca-certs, --crls, --root-update --out) is replaced atomically: written
# to a fresh temporary file in the target's directory, renamed over the
# target.  A symlink planted at a name an attacker can predict (the old
# "FILE.tmp") is never followed; a reader holding the old file (a hard
# link) keeps the old content; the target's mode is kept; no temporary
# file is left behind.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
setup
plan 30
TOK=outfiles
make_token "$TOK" || exit 1
start_ca || exit 1
mkdir "$TMP/o"
OUT="$TMP/o"

# plant FILE: FILE.tmp -> a victim; FILE exists with old content (mode
# 0640), hard-linked as FILE.old.
plant() {
	printf 'victim %s\n' "${1##*/}" > "$TMP/victim-${1##*/}"
	ln -s "$TMP/victim-${1##*/}" "$1.tmp"
	printf 'old content\n' > "$1"
	chmod 0640 "$1"
	ln "$1" "$1.old"
}

# replaced NAME FILE PATTERN: the symlink's victim is untouched, FILE is a
# regular file holding PATTERN with its mode kept, the hard link holds the
# old content, and the directory holds nothing else.
replaced() {
	check "/outfiles/$1/victim-untouched" grep -q -x "victim ${2##*/}" "$TMP/victim-${2##*/}"
	check "/outfiles/$1/regular-file" sh -c "[ -f '$2' ] && [ ! -L '$2' ]"
	check "/outfiles/$1/content" grep -q -e "$3" "$2"
	check "/outfiles/$1/mode-kept" test "$(stat -c %a "$2")" = 640
	check "/outfiles/$1/old-link-untouched" grep -q -x 'old content' "$2.old"
	left=$(ls -A "$OUT" | grep -v -x -e "${2##*/}" -e "${2##*/}.tmp" -e "${2##*/}.old" |
		grep -F "${2##*/}")
	check "/outfiles/$1/no-temp-left" test -z "$left"
}

write_conf "$TOK" "cert_out = $OUT/cert.pem
chain_out = $OUT/chain.pem"
plant "$OUT/cert.pem"
plant "$OUT/chain.pem"
p11e enroll test
check "/outfiles/enroll/exit-0" expect_rc 0
replaced cert-out "$OUT/cert.pem" 'BEGIN CERTIFICATE'
replaced chain-out "$OUT/chain.pem" 'BEGIN CERTIFICATE'

plant "$OUT/cacerts.pem"
p11e genm test --ca-certs "$OUT/cacerts.pem"
check "/outfiles/genm-ca-certs/exit-0" expect_rc 0
replaced genm-ca-certs "$OUT/cacerts.pem" 'BEGIN CERTIFICATE'

plant "$OUT/crls.pem"
p11e genm test --crls "$OUT/crls.pem"
check "/outfiles/genm-crls/exit-0" expect_rc 0
replaced genm-crls "$OUT/crls.pem" 'BEGIN X509 CRL'

# A write that fails says what failed and what to do, and leaves no file.
p11e genm test --crls "$OUT/missing-dir/crls.pem"
check "/outfiles/no-dir/exit-1" expect_rc 1
check "/outfiles/no-dir/message" grep_err "cannot write .*missing-dir/crls.pem: .*No such file"
check "/outfiles/no-dir/nothing" test ! -e "$OUT/missing-dir"
finish
