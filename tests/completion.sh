#!/bin/sh
# /completion: the bash completion (completion/p11enroll.bash), run by a
# plain bash (compgen and complete, no bash-completion package): its
# candidates are every command, every flag of the settings table
# (check-config --keys) where a command takes settings, only the options a
# command takes, files for a FILE argument and the configuration's
# enrollment names for NAME.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
[ -x "$P11ENROLL_BIN" ] || bail_out "p11enroll not built"
need_cmd bash
setup
plan 10
SCRIPT="$top_srcdir/completion/p11enroll.bash"
printf '[alpha]\ntoken = pkcs11:token=a\n[beta]\ntoken = pkcs11:token=b\n' > "$TMP/p11enroll.conf"
: > "$TMP/cert-file.pem"

# complete WORD...: the candidates bash offers for the last WORD, sorted,
# one a line, into $TMP/got.
complete_words() {
	bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _p11enroll &&
		printf "%s\n" "${COMPREPLY[@]}"' sh "$SCRIPT" "$P11ENROLL_BIN" "$@" |
		sed '/^$/d' | sort > "$TMP/got"
}
# same WHAT: $TMP/got is $TMP/expect (sorted), else the difference.
same() {
	sort "$TMP/expect" | diff -u - "$TMP/got" > "$TMP/diff" && return 0
	echo "# $1: expected (-) and offered (+) differ:"
	sed 's/^/#   /' "$TMP/diff"
	return 1
}
# includes WHAT: every line of $TMP/expect is in $TMP/got.
includes() {
	sort -u "$TMP/expect" | comm -23 - "$TMP/got" > "$TMP/missing"
	[ ! -s "$TMP/missing" ] && return 0
	echo "# $1: not offered:"
	sed 's/^/#   /' "$TMP/missing"
	return 1
}

# the commands: those the overview lists, independently of --complete
complete_words ""
"$P11ENROLL_BIN" --help | sed -n '/^Commands:/,/^$/s/^  \([a-z][a-z0-9-]*\).*/\1/p' > "$TMP/expect"
check "/completion/commands" same "commands"
complete_words -c "$TMP/p11enroll.conf" ""
check "/completion/commands-after-config" same "commands after -c FILE"

# every flag of the settings table, and each yes/no setting's --no- form
complete_words enroll --
"$P11ENROLL_BIN" check-config --keys | cut -f 2 | grep -v '^-$' > "$TMP/expect"
check "/completion/enroll/every-setting-flag" includes "enroll's settings"
"$P11ENROLL_BIN" check-config --keys | awk -F '\t' '$2 != "-" && ($6 == "no" || $6 == "yes")' |
	cut -f 2 | sed 's/^--/--no-/' > "$TMP/expect"
check "/completion/enroll/no-forms" includes "enroll's --no- forms"
printf '%s\n' --batch --config --user --syslog --verbose --quiet --help --version > "$TMP/expect"
check "/completion/enroll/own-and-general" includes "enroll's own options"
complete_words enroll --su
echo --subject > "$TMP/expect"
check "/completion/enroll/--su" same "enroll --su"

# status takes --json, --all and --state-dir alone of the others
complete_words status --
printf '%s\n' --json --all --state-dir --config --user --syslog --verbose --quiet --help --version \
	> "$TMP/expect"
check "/completion/status/only-its-own" same "status --"
complete_words status --su
: > "$TMP/expect"
check "/completion/status/no-subject" same "status --su"

# NAME from the file given by -c, FILE as files
complete_words -c "$TMP/p11enroll.conf" enroll ""
printf '%s\n' alpha beta > "$TMP/expect"
check "/completion/names" same "enrollment names"
complete_words enroll --cert-out "$TMP/cert-f"
echo "$TMP/cert-file.pem" > "$TMP/expect"
check "/completion/file-argument" same "--cert-out FILE"
finish
