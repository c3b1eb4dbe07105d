# Shared by the benchmarks: the build to measure (BUILD_DIR, default
# build/), the test helpers (token, test CA), and a median.
# usage in a benchmark: . "$(dirname "$0")/lib.sh" "$@"
top_srcdir=$(cd "$(dirname "$0")/.." && pwd)
top_builddir=$(cd "${1:-$top_srcdir/build}" && pwd)
RUNS=${2:-15}
SOFTHSM2_MODULE=$(sed -n 's/^SOFTHSM2_MODULE = //p' "$top_builddir/Makefile")
SOFTHSM2_UTIL=$(command -v softhsm2-util)
PKCS11_TOOL=$(command -v pkcs11-tool)
OPENSSL_BIN=$(command -v openssl)
. "$top_srcdir/tests/lib.sh"
need_tools
setup
start_ca || exit 1

median() {
	sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# time_enrollments TOKEN KEY_TYPE [PREFIX]: RUNS enrollments of fresh labels
# on TOKEN (an HSM grows; no label is enrolled twice), then one line with
# the median, min and max wall-clock time.  TE_CONF: more settings lines
# (another server, say).
time_enrollments() {
	: > "$TMP/times"
	te_i=0
	while [ $te_i -lt "$RUNS" ]; do
		write_conf "$1" "key_type = $2
label = $(echo "${3:-}$2" | tr -c 'a-zA-Z0-9\n' '-')$te_i
${TE_CONF:-}"
		te_t0=$(date +%s%N)
		p11e -q enroll test
		te_t1=$(date +%s%N)
		[ "$RC" -eq 0 ] || { cat "$TMP/err"; exit 1; }
		echo $(((te_t1 - te_t0) / 1000)) >> "$TMP/times"
		te_i=$((te_i + 1))
	done
	printf '%s%-9s runs %d  median %6.1f ms  min %6.1f ms  max %6.1f ms\n' "${3:-}" "$2" "$RUNS" \
		"$(median < "$TMP/times" | awk '{print $1 / 1000}')" \
		"$(sort -n "$TMP/times" | head -n 1 | awk '{print $1 / 1000}')" \
		"$(sort -n "$TMP/times" | tail -n 1 | awk '{print $1 / 1000}')"
}
