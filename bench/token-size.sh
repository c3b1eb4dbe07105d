#!/bin/sh
# How p11enroll's time depends on what else is on the token: the median
# time of one enrollment (p11enroll enroll), one renewal (p11enroll renew)
# and one check (p11enroll check NAME --recover) on SoftHSM2 tokens that
# already hold 0, 100, 1,000 and 5,000 unrelated objects (made by
# tests/tokfill: CA-issued enrollments of three objects, topped up with
# key pairs of two to the exact count).  Each size has a SoftHSM2 store of
# its own, so that no size pays for another's objects.  Each run enrolls
# a new label B-I on every size in turn (sizes interleaved, so that a
# drifting machine treats them alike), renews that label and checks it;
# the tokens grow by 3 objects a run, as real ones do.  Prints, per size,
# the three medians and their ratios to the empty token, and beside them
# the median time of a process that only loads the module and logs in
# (tests/tokfill --count 0): SoftHSM2 reads every object file in
# C_Initialize, so that much of the growth is the module's, not p11enroll's.
# Goal of issue 10: at 5,000 objects at most 1.2x the time on the empty token.
# usage: bench/token-size.sh [BUILD_DIR] [RUNS]   (default build/, 9 runs)
# SIZES="0 100 1000 5000" (objects) overrides the sizes; the first is the
# reference.  The stores are in $TMPDIR (default /tmp): filling is much
# faster on tmpfs (TMPDIR=/dev/shm), see tests/README.
. "$(dirname "$0")/lib.sh" "$@"
RUNS=${2:-9}
SIZES=${SIZES:-0 100 1000 5000}
case $RUNS in '' | *[!0-9]* | 0) echo "RUNS must be a positive number" >&2; exit 1 ;; esac
TOKFILL="$top_builddir/tests/tokfill"
[ -x "$TOKFILL" ] || { echo "$TOKFILL not built: make tests/tokfill (or make check)" >&2; exit 1; }
now_us() { echo $(($(date +%s%N) / 1000)); }

# use_store SIZE: SoftHSM2 reads the store that SOFTHSM2_CONF names.
use_store() {
	SOFTHSM2_CONF="$TMP/store-$1/softhsm2.conf"
	export SOFTHSM2_CONF
}

# fill SIZE: store-SIZE with token "bench" holding exactly SIZE objects.
fill() {
	mkdir -p "$TMP/store-$1/tokens"
	printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
		"$TMP/store-$1/tokens" > "$TMP/store-$1/softhsm2.conf"
	use_store "$1"
	make_token bench || return 1
	# SIZE = 3 * full + 2 * pairs, with pairs 0, 1 or 2.
	case $(($1 % 3)) in
	0) full=$(($1 / 3)) pairs=0 ;;
	1) full=$(($1 / 3 - 1)) pairs=2 ;;
	2) full=$(($1 / 3)) pairs=1 ;;
	esac
	for step in "$full" "$pairs --keys-only --start $((full + 1))"; do
		set -- $step
		[ "$1" -gt 0 ] || continue
		"$TOKFILL" --module "$SOFTHSM2_MODULE" --token bench --pin-file "$TMP/pin" \
			--prefix fill --ca-cert "$TMP/ca/ca.pem" --ca-key "$TMP/ca/ca.key" \
			--count "$@" 2>> "$TMP/fill.log" || { cat "$TMP/fill.log"; return 1; }
	done
}

# timed KIND SIZE ARGS...: p11enroll ARGS on store-SIZE; appends the time
# (us) to $TMP/KIND-SIZE.
timed() {
	_kind=$1 _size=$2
	shift 2
	use_store "$_size"
	_t0=$(now_us)
	p11e -q "$@"
	_t1=$(now_us)
	[ "$RC" -eq 0 ] || { echo "p11enroll $* on the token with $_size objects failed:"; cat "$TMP/err"; return 1; }
	echo $((_t1 - _t0)) >> "$TMP/$_kind-$_size"
}

write_conf bench
for s in $SIZES; do
	t0=$(now_us)
	fill "$s" || exit 1
	t1=$(now_us)
	n=$("$PKCS11_TOOL" --module "$SOFTHSM2_MODULE" --token-label bench --login --pin "$USER_PIN" \
		--list-objects 2> /dev/null | grep -c -E '^(Private Key|Public Key|Certificate) Object')
	[ "$n" -eq "$s" ] || { echo "the token of size $s holds $n objects"; exit 1; }
	echo "filled the token of $s objects in $(((t1 - t0) / 1000)) ms"
done

i=1
while [ $i -le "$RUNS" ]; do
	for s in $SIZES; do
		timed enroll "$s" enroll test --label "B-$i" --subject "/CN=B-$i" || exit 1
		timed renew "$s" renew test --label "B-$i" || exit 1
		timed check "$s" check test --label "B-$i" --recover || exit 1
		grep -q -x 'cert=present' "$TMP/out" || { echo "check found no certificate B-$i"; exit 1; }
		# What the module alone costs a process: load, C_Initialize, login.
		_t0=$(now_us)
		"$TOKFILL" --module "$SOFTHSM2_MODULE" --token bench --pin-file "$TMP/pin" --count 0 \
			2> /dev/null || { echo "tokfill --count 0 failed on the token of size $s"; exit 1; }
		echo $(($(now_us) - _t0)) >> "$TMP/module-$s"
	done
	i=$((i + 1))
done

echo "EC P-256, $RUNS runs per size; median wall time of one command; (ratio to $(echo $SIZES | cut -d' ' -f1) objects)"
printf '%8s  %-20s %-20s %-20s %-20s\n' objects enroll renew "check --recover" "module start"
ref=
for s in $SIZES; do
	e=$(median < "$TMP/enroll-$s")
	r=$(median < "$TMP/renew-$s")
	c=$(median < "$TMP/check-$s")
	m=$(median < "$TMP/module-$s")
	[ -n "$ref" ] || ref="$e $r $c $m"
	echo "$s $e $r $c $m $ref"
done | awk '{
	printf "%8d  %8.1f ms (%5.2fx) %8.1f ms (%5.2fx) %8.1f ms (%5.2fx) %8.1f ms (%5.2fx)\n",
		$1, $2 / 1000, $2 / $6, $3 / 1000, $3 / $7, $4 / 1000, $4 / $8, $5 / 1000, $5 / $9
	last = $1; worst = $2 / $6
	if ($3 / $7 > worst) worst = $3 / $7
	if ($4 / $8 > worst) worst = $4 / $8 }
END {
	printf "goal (issue 10): at most 1.2x at 5,000 objects; at %d objects the worst is %.2fx", last, worst
	print last < 5000 ? " (no 5,000 in SIZES: not judged)" : worst <= 1.2 ? ": met" : ": not met" }'
echo "module start: tests/tokfill --count 0 (load the module, C_Initialize, log in, C_Finalize), the"
echo "least any process that logs in to that token pays; SoftHSM2 reads every object file of its"
echo "store in C_Initialize"
