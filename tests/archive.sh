#!/bin/sh
# /archive: key archive at enrollment (RFC 4211 6.4).  An encryption key is
# generated archivable, wrapped on the token for the test CA's key-archive
# certificate (C_WrapKey: AES-KWP under a session AES key, that key under
# RSA-OAEP), made non-extractable, and sent in the ir's pkiArchiveOptions;
# the CA decrypts it, checks it against the certified public key and keeps
# it (DIR/archive/SERIAL.pem).
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
need_tools
setup
plan 1
start_ca --archive || exit 1
ARC=$TMP/ca/archive-cert.pem

# archive_conf TOKEN KEYTYPE FORMAT [EXTRA]
archive_conf() {
	case $2 in
	ec*) ku=digitalSignature,keyAgreement ;;
	*) ku=digitalSignature,keyEncipherment ;;
	esac
	write_conf "$1" "key_type = $2
allow_decrypt = yes
key_usage = $ku
archive_key = yes
archive_cert = $ARC
archive_format = $3
cert_out = $TMP/$1.pem${4:+
$4}"
}

make_token tok-rsa
archive_conf tok-rsa rsa:2048 enveloped
p11e -v enroll test
check "/archive/rsa/enveloped/exit-0" expect_rc 0
cat $TMP/err
cat $TMP/ca.log
