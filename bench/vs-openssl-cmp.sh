#!/bin/sh
# Compares enrollments by p11enroll with what a user scripts today from
# independent tools: pkcs11-tool generates the key on the token, `openssl
# cmp` with the pkcs11 engine sends the ir (POP signed on the token), and
# pkcs11-tool writes the certificate back.  Same token type, same test CA,
# same key type (EC P-256).  Every enrollment gets a label of its own, so
# each side's token grows as a real one does (3 objects per enrollment);
# the two sides take turns (p11enroll, script, p11enroll, ...) so that a
# machine whose speed drifts treats both alike.  Prints the median time of
# each side and the median of the per-enrollment ratios (script /
# p11enroll: how many times faster p11enroll is) over the first and over
# the last 10% of the runs (enrollments 1-20 and 181-200 by default).
# Goal of issue 10: at least 4x on the fresh token, 8x at 200 enrollments.
# Between them, after every tenth of the runs, `p11enroll enroll --batch`
# makes the same tenth's enrollments on a third token in one process (how
# many keys are enrolled at once); its time per enrollment is set against
# the script's median for the same enrollments.
# usage: bench/vs-openssl-cmp.sh [BUILD_DIR] [RUNS]   (default build/, 200 runs)
# The token store is in $TMPDIR (default /tmp): TMPDIR=/dev/shm takes the
# file system's writeback out of the figures (tests/README, tests/tokfill).
. "$(dirname "$0")/lib.sh" "$@"
RUNS=${2:-200}
case $RUNS in '' | *[!0-9]* | 0) echo "RUNS must be a positive number" >&2; exit 1 ;; esac
now_us() { echo $(($(date +%s%N) / 1000)); }

make_token ours || exit 1
make_token theirs || exit 1
make_token batch || exit 1
write_conf batch
mv "$TMP/p11enroll.conf" "$TMP/batch.conf"
write_conf ours

# ours I: one enrollment by p11enroll under the label L-I.
ours() {
	p11e -q enroll test --label "L-$1" --subject "/CN=L-$1"
	[ "$RC" -eq 0 ] || { echo "p11enroll run $1 failed:"; cat "$TMP/err"; return 1; }
}

# theirs I: the same with pkcs11-tool and openssl cmp, CKA_ID I (2 bytes).
theirs() {
	_id=$(printf '%04x' "$1")
	"$PKCS11_TOOL" --module "$SOFTHSM2_MODULE" --token-label theirs --login --pin "$USER_PIN" \
		--keypairgen --key-type EC:prime256v1 --id "$_id" --label "L-$1" > /dev/null 2>&1 &&
	PKCS11_MODULE_PATH=$SOFTHSM2_MODULE "$OPENSSL_BIN" cmp -engine pkcs11 -cmd ir \
		-server "127.0.0.1:$CA_PORT/.well-known/cmp" -ref "$CMP_REF" \
		-secret "file:$TMP/secret" -keyform engine -newkeypass "pass:$USER_PIN" \
		-newkey "pkcs11:token=theirs;id=%${_id%??}%${_id#??};type=private" \
		-subject "/CN=L-$1" -trusted "$TMP/ca/root.pem" -certout "$TMP/c.pem" > /dev/null 2>&1 &&
	"$OPENSSL_BIN" x509 -in "$TMP/c.pem" -outform DER -out "$TMP/c.der" &&
	"$PKCS11_TOOL" --module "$SOFTHSM2_MODULE" --token-label theirs --login --pin "$USER_PIN" \
		--write-object "$TMP/c.der" --type cert --id "$_id" --label "L-$1" > /dev/null 2>&1 ||
		{ echo "baseline run $1 failed"; return 1; }
}

# batch FIRST LAST: enrollments FIRST..LAST by one p11enroll enroll --batch
# on a token of its own (the way to enroll many keys at once); its time
# per enrollment goes to $TMP/batch-times as "FIRST LAST us".
batch() {
	{
		echo "label,subject"
		_j=$1
		while [ "$_j" -le "$2" ]; do
			echo "L-$_j,/CN=L-$_j"
			_j=$((_j + 1))
		done
	} > "$TMP/rows.csv"
	_t0=$(now_us)
	"$P11ENROLL" -c "$TMP/batch.conf" -q enroll test --batch "$TMP/rows.csv" \
		> "$TMP/out" 2> "$TMP/err" || { echo "batch $1-$2 failed:"; tail -n 5 "$TMP/err"; return 1; }
	echo "$1 $2 $((($(now_us) - _t0) / ($2 - $1 + 1)))" >> "$TMP/batch-times"
}

# A tenth of the runs at each end (at least one).
k=$((RUNS / 10))
[ $k -ge 1 ] || k=1

# Each line of $TMP/times: I, p11enroll's time, the script's time (us).
# After every k enrollments of each, the batch makes the same k on its
# token: all three take turns.
: > "$TMP/times"
: > "$TMP/batch-times"
i=1
while [ $i -le "$RUNS" ]; do
	t0=$(now_us)
	ours $i || exit 1
	t1=$(now_us)
	theirs $i || exit 1
	t2=$(now_us)
	echo "$i $((t1 - t0)) $((t2 - t1))" >> "$TMP/times"
	if [ $((i % k)) -eq 0 ] || [ $i -eq "$RUNS" ]; then
		batch $((i - (i - 1) % k)) $i || exit 1
	fi
	i=$((i + 1))
done
# summary FIRST LAST: medians of both sides and of the ratios for enrollments FIRST..LAST.
summary() {
	awk -v a="$1" -v b="$2" '$1 >= a && $1 <= b' "$TMP/times" > "$TMP/part"
	o=$(cut -d' ' -f2 "$TMP/part" | median)
	t=$(cut -d' ' -f3 "$TMP/part" | median)
	r=$(awk '{ printf "%.4f\n", $3 / $2 }' "$TMP/part" | median)
	awk -v a="$1" -v b="$2" -v o="$o" -v t="$t" -v r="$r" 'BEGIN {
		printf "  enrollments %3d-%-3d  p11enroll %7.1f ms  script %7.1f ms  ratio %5.2f\n",
			a, b, o / 1000, t / 1000, r }'
	echo "$r" > "$TMP/ratio"
	# the batch that made the same enrollments, against the script's median
	awk -v a="$1" -v b="$2" -v t="$t" '$1 == a && $2 == b {
		printf "  enrollments %3d-%-3d  p11enroll --batch of %d in one process %7.1f ms per " \
			"enrollment  ratio %5.2f\n", a, b, b - a + 1, $3 / 1000, t / $3 }' \
		"$TMP/batch-times"
}
echo "EC P-256 enrollments, $RUNS per side, each under a new label on one growing token per side"
echo "(median wall time; ratio = median of script / p11enroll per enrollment; the first and last"
echo " tenth of the $RUNS runs: $k each)"
summary 1 $k
first=$(cat "$TMP/ratio")
summary $((RUNS - k + 1)) "$RUNS"
last=$(cat "$TMP/ratio")
awk -v f="$first" -v l="$last" -v n="$RUNS" 'BEGIN {
	printf "goal (issue 10): >= 4x on the fresh token: %s; >= 8x at %d enrollments: %s\n",
		(f >= 4 ? "met" : "not met"), n, (l >= 8 ? "met" : "not met") }'
