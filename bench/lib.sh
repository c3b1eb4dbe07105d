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
