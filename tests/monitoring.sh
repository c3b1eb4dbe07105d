#!/bin/sh
# /monitoring: contrib/prometheus's rules pass promtool check rules and
# their unit tests (every alert fires on its series and stays quiet on the
# others), every alert has a summary and a description, and a broken rule
# fails its unit test; contrib/grafana's dashboard loads, validates against
# tests/grafana-dashboard.schema.json, queries only metrics the agent
# writes (agent/metrics.c's families), shows what issue 17 asks for, its
# queries parse as PromQL (promtool), and the checker catches a broken one;
# and the dashboard type-checks against Grafana's own Dashboard types
# (npm @grafana/schema, tsc --strict; tests/grafana-schema), which catch a
# misspelled field, a wrong type and a wrong enum value.  A real agent's
# metrics file passes promtool check metrics, is rewritten while the agent
# is idle (its refresh, on the test clock), and the real node exporter's
# textfile collector serves every family with its TYPE, without errors.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
. "$top_srcdir/tests/agent-lib.sh"
PROMTOOL=$(command -v promtool) || skip "promtool not found (Debian package prometheus)"
need_tools
need_cmd python3
setup
trap 'kill_agents; cleanup' EXIT
RULES="$top_srcdir/contrib/prometheus/p11enroll.rules.yml"
RTEST="$top_srcdir/contrib/prometheus/p11enroll.rules.test.yml"
DASH="$top_srcdir/contrib/grafana/p11enroll.json"
SCHEMA="$top_srcdir/tests/grafana-dashboard.schema.json"
CHECKER="$top_srcdir/tests/dashboard-check.py"

# The families of agent/metrics.c's table (NAME TYPE; a counter's name ends
# in _total), and the sample names the metrics file holds: a summary's
# _sum and _count, every other family's own name.
sed -n 's/^[^"]*{ "\(p11enroll_[a-z_]*\)", "\([a-z]*\)".*/\1 \2/p' \
	"$top_srcdir/agent/metrics.c" > "$TMP/families.txt"
while read -r name type; do
	case $type in
	summary) printf '%s_sum\n%s_count\n' "$name" "$name" ;;
	*) echo "$name" ;;
	esac
done < "$TMP/families.txt" > "$TMP/metrics.txt"
[ "$(grep -c . "$TMP/metrics.txt")" -ge 10 ] || bail_out "no metric families in agent/metrics.c"

alerts=$(sed -n 's/^ *- alert: *\([A-Za-z0-9]*\)$/\1/p' "$RULES")
[ -n "$alerts" ] || bail_out "no alerts in $RULES"
python3 "$CHECKER" "$SCHEMA" "$DASH" "$TMP/metrics.txt" "$RULES" "$TMP/dash.rules.yml" \
	> "$TMP/dash.tap" || bail_out "dashboard-check.py failed"
TYPES_POINTS="pinned raw veneer catches-misspelled-field catches-wrong-type catches-wrong-enum"
NFAM=$(grep -c . "$TMP/families.txt")
plan $((4 + 2 * $(echo "$alerts" | grep -c .) + $(grep -c . "$TMP/dash.tap") + 1 + 2 + 6 + 7 + 5 + NFAM))

# --- the rules -------------------------------------------------------------------
quiet() { "$@" > "$TMP/quiet.out" 2>&1 || { sed 's/^/# /' "$TMP/quiet.out"; return 1; }; }
check "/monitoring/rules/check" quiet "$PROMTOOL" check rules "$RULES"
(cd "$TMP" && cp "$RULES" "$RTEST" . && "$PROMTOOL" test rules p11enroll.rules.test.yml) \
	> "$TMP/unit.out" 2>&1
check "/monitoring/rules/unit-tests" grep -q SUCCESS "$TMP/unit.out"
grep -q SUCCESS "$TMP/unit.out" || sed 's/^/# /' "$TMP/unit.out"
# the share of the lifetime is the one place to configure: a share too
# small to reach (1%) must make the expiry test fail
(cd "$TMP" && mkdir -p bad && cp "$RTEST" bad/ &&
	sed 's/expr: vector(0.2)/expr: vector(0.01)/' "$RULES" > bad/p11enroll.rules.yml &&
	cd bad && ! "$PROMTOOL" test rules p11enroll.rules.test.yml > out 2>&1 &&
	grep -q P11enrollExpiringRenewalFailing out)
check "/monitoring/rules/unit-tests-can-fail" test $? -eq 0
for a in $alerts; do
	# a case where it fires (expected labels) and one where it must not
	check "/monitoring/rules/$a/tested" python3 -c '
import sys, yaml
t = yaml.safe_load(open(sys.argv[1]))
cases = [c for g in t["tests"] for c in g.get("alert_rule_test", []) if c["alertname"] == sys.argv[2]]
sys.exit(not (any(c.get("exp_alerts") for c in cases) and any(not c.get("exp_alerts") for c in cases)))
' "$RTEST" "$a"
	check "/monitoring/rules/$a/says-what-to-do" python3 -c '
import sys, yaml
r = [r for g in yaml.safe_load(open(sys.argv[1]))["groups"] for r in g["rules"]
     if r.get("alert") == sys.argv[2]][0]
a = r.get("annotations", {})
sys.exit(not (len(a.get("summary", "")) > 20 and len(a.get("description", "")) > 100 and
              "`" in a["description"] and r.get("labels", {}).get("severity")))
' "$RULES" "$a"
done
check "/monitoring/rules/metric-names-typed" \
	sh -c "! grep -E -o 'p11enroll_[a-z_]+' '$RULES' | grep -v -x -F -f '$TMP/metrics.txt'"

# --- the dashboard ---------------------------------------------------------------
while read -r line; do
	name=${line#ok - }
	name=${name#not ok - }
	name=${name%%  #*}
	case $line in
	"ok - "*) ok "/monitoring/dashboard/$name" ;;
	*) not_ok "/monitoring/dashboard/$name" && echo "# $line" ;;
	esac
done < "$TMP/dash.tap"
check "/monitoring/dashboard/promql-parses" quiet "$PROMTOOL" check rules "$TMP/dash.rules.yml"
# the checker can fail: a metric the agent does not write, panels that overlap
python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
d["panels"][0]["targets"][0]["expr"] = "p11enroll_no_such_metric"
json.dump(d, open(sys.argv[2], "w"))
d = json.load(open(sys.argv[1]))
d["panels"][1]["gridPos"] = dict(d["panels"][0]["gridPos"])
json.dump(d, open(sys.argv[3], "w"))
' "$DASH" "$TMP/bad1.json" "$TMP/bad2.json"
python3 "$CHECKER" "$SCHEMA" "$TMP/bad1.json" "$TMP/metrics.txt" "$RULES" "$TMP/x.yml" > "$TMP/bad1.tap"
check "/monitoring/dashboard/catches-unknown-metric" \
	grep -q '^not ok - dashboard-metrics-exist .*p11enroll_no_such_metric' "$TMP/bad1.tap"
python3 "$CHECKER" "$SCHEMA" "$TMP/bad2.json" "$TMP/metrics.txt" "$RULES" "$TMP/x.yml" > "$TMP/bad2.tap"
check "/monitoring/dashboard/catches-overlap" grep -q '^not ok - grid-no-overlap' "$TMP/bad2.tap"

# --- the dashboard against Grafana's own types -----------------------------------
# @grafana/schema ships the classic dashboard model that Grafana generates
# from its CUE schema as TypeScript (raw/dashboard/x/types.gen.d.ts, and the
# package's exported Dashboard built on it); tests/grafana-schema pins it and
# TypeScript (package-lock.json), tools/deps.sh installs them there (npm ci).
# dashboard-ts.js writes the dashboard as an object literal typed Dashboard:
# tsc --strict checks every field's name and type.
GS="$top_srcdir/tests/grafana-schema"
GTYPES="$GS/node_modules/@grafana/schema/dist/types"
TSC="$GS/node_modules/.bin/tsc"
if ! command -v node > /dev/null || [ ! -x "$TSC" ] || [ ! -d "$GTYPES" ]; then
	for p in $TYPES_POINTS; do
		ok "/monitoring/dashboard/grafana-types/$p # SKIP node or tests/grafana-schema's" \
			"npm packages not installed (tools/deps.sh)"
	done
else
	# typed DASHBOARD TYPES OUT: OUT.ts, DASHBOARD typed with TYPES' Dashboard
	typed() {
		node "$GS/dashboard-ts.js" "$1" "$2" "$TMP/$3.ts" || bail_out "dashboard-ts.js $1 failed"
	}
	tsc() { "$TSC" --noEmit --strict --pretty false --target es2020 --module commonjs "$@"; }
	check "/monitoring/dashboard/grafana-types/pinned" node -e '
const [lock, dir] = process.argv.slice(1);
for (const p of ["@grafana/schema", "typescript"]) {
	const want = require(lock).packages["node_modules/" + p].version;
	const have = require(`${dir}/node_modules/${p}/package.json`).version;
	if (want !== have) {
		console.log(`# ${p} ${have} installed, package-lock.json pins ${want}: run tools/deps.sh`);
		process.exit(1);
	}
}' "$GS/package-lock.json" "$GS"
	typed "$DASH" "$GTYPES/raw/dashboard/x/types.gen.d.ts" raw
	check "/monitoring/dashboard/grafana-types/raw" quiet tsc "$TMP/raw.ts"
	typed "$DASH" "$GTYPES/index.d.ts" veneer
	check "/monitoring/dashboard/grafana-types/veneer" quiet tsc "$TMP/veneer.ts"
	# it can fail: one copy per mistake, all three in one tsc run
	python3 -c '
import json, sys
def bad(name, change):
    d = json.load(open(sys.argv[1]))
    change(d)
    json.dump(d, open(sys.argv[2] + "/" + name + ".json", "w"))
bad("bad-field", lambda d: d["panels"][0].update(gridPoss=d["panels"][0].pop("gridPos")))
bad("bad-type", lambda d: d.update(schemaVersion=str(d["schemaVersion"])))
bad("bad-enum",
    lambda d: d["panels"][0]["fieldConfig"]["defaults"]["thresholds"].update(mode="absolut"))
' "$DASH" "$TMP"
	for b in bad-field bad-type bad-enum; do
		typed "$TMP/$b.json" "$GTYPES/raw/dashboard/x/types.gen.d.ts" "$b"
	done
	tsc "$TMP/bad-field.ts" "$TMP/bad-type.ts" "$TMP/bad-enum.ts" > "$TMP/bad.tsc" 2>&1
	check "/monitoring/dashboard/grafana-types/catches-misspelled-field" \
		grep -q 'bad-field\.ts([0-9,]*): error TS2353: .*"gridPoss"' "$TMP/bad.tsc"
	check "/monitoring/dashboard/grafana-types/catches-wrong-type" \
		grep -q "bad-type\\.ts([0-9,]*): error TS2322: Type 'string' is not assignable to type 'number'" \
		"$TMP/bad.tsc"
	check "/monitoring/dashboard/grafana-types/catches-wrong-enum" \
		grep -q "bad-enum\\.ts([0-9,]*): error TS2820: Type '\"absolut\"' is not assignable" \
		"$TMP/bad.tsc"
fi

# --- an agent's metrics file ------------------------------------------------------
# One enrollment, renewed through its agent: the file then has a sample in
# every family.  The test clock (60 agent seconds a second) makes the
# agent's once-a-minute refresh come every second; the certificate (365
# days) keeps the agent idle meanwhile.
TF="$TMP/textfile"
M="$TF/p11enroll.prom"
mkdir "$TF"
make_token mon || exit 1
start_ca || exit 1
write_conf mon
sed -i "1i metrics_file = $M" "$TMP/p11enroll.conf"
C="$TMP/p11enroll.conf"
pe "$C" enroll test
check "/monitoring/agent/enrolled" expect_rc 0
agent_start "$C" "$TMP/agent.log" P11ENROLL_TEST_CLOCK_RATE=60 || exit 1
pe "$C" renew test
check "/monitoring/agent/renewed" \
	wait_for 30 grep -q -x 'p11enroll_renewals_total{enrollment="test"} 1' "$M"
# typed_in FILE: every family of agent/metrics.c has its TYPE line and a
# sample (a summary's _sum) in FILE: the enrollment's, or the agent's per step
typed_in() {
	while read -r name type; do
		grep -q -x "# TYPE $name $type" "$1" &&
			grep -q -e "^${name}\(_sum\)\{0,1\}{enrollment=\"test\"" \
				-e "^${name}\(_sum\)\{0,1\}{step=\"renew\"}" "$1" ||
			{ echo "# $name ($type) missing in $1"; return 1; }
	done < "$TMP/families.txt"
}
check "/monitoring/agent/every-family" typed_in "$M"
check "/monitoring/agent/promtool-check-metrics" \
	quiet sh -c '"$1" check metrics < "$2"' - "$PROMTOOL" "$M"

# the refresh: the file is replaced (rename: a new inode) although nothing
# happens; three times, then nothing in it changed and no step started
last_ino=$(stat -c %i "$M")
rewritten() {
	_ino=$(stat -c %i "$M") && [ "$_ino" != "$last_ino" ] && last_ino=$_ino
}
wait_for 10 rewritten
cp "$M" "$TMP/idle.prom"
steps=$(grep -c ' started (token ' "$TMP/agent.log")
n=0
while [ $n -lt 3 ] && wait_for 10 rewritten; do n=$((n + 1)); done
check "/monitoring/agent/refresh/rewritten" test $n -eq 3
check "/monitoring/agent/refresh/idle" \
	test "$(grep -c ' started (token ' "$TMP/agent.log")" -eq "$steps"
check "/monitoring/agent/refresh/unchanged" cmp "$TMP/idle.prom" "$M"

# --- the file through the real node exporter --------------------------------------
# As README "Monitoring" sets it up: the textfile collector reads the
# directory the agent writes to; only that collector, on a free loopback port.
NE_POINTS="answers scrape-error-0 $(cut -d' ' -f1 "$TMP/families.txt" | sed 's|$|/typed|')
none-untyped catches-untyped catches-scrape-error"
NODE_EXPORTER=$(command -v prometheus-node-exporter || command -v node_exporter)
if [ -z "$NODE_EXPORTER" ]; then
	for p in $NE_POINTS; do
		ok "/monitoring/node-exporter/$p # SKIP prometheus-node-exporter not installed (tools/deps.sh)"
	done
	finish
fi
# free_port: a loopback port nothing listens on now
free_port() {
	python3 -c '
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}
# scrape OUT: the node exporter's /metrics in OUT
scrape() {
	python3 -c '
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=10) as r:
    open(sys.argv[2], "wb").write(r.read())
' "http://127.0.0.1:$NE_PORT/metrics" "$1" 2> /dev/null
}
# answering: it serves /metrics, or it has exited
answering() {
	scrape "$TMP/scrape.txt" || ! kill -0 "$NE_PID" 2> /dev/null
}
# another process may take the port between free_port and the bind: try again
for _ in 1 2 3; do
	NE_PORT=$(free_port)
	"$NODE_EXPORTER" --web.listen-address="127.0.0.1:$NE_PORT" --collector.disable-defaults \
		--collector.textfile --collector.textfile.directory="$TF" > "$TMP/ne.log" 2>&1 &
	NE_PID=$!
	HELPERS="$HELPERS $NE_PID"
	wait_for 20 answering
	kill -0 "$NE_PID" 2> /dev/null && break
	grep -q 'address already in use' "$TMP/ne.log" || break
done
check "/monitoring/node-exporter/answers" scrape "$TMP/scrape.txt"
scrape "$TMP/scrape.txt" || sed 's/^/# node exporter: /' "$TMP/ne.log"
check "/monitoring/node-exporter/scrape-error-0" \
	grep -q -x 'node_textfile_scrape_error 0' "$TMP/scrape.txt"
while read -r name type; do
	check "/monitoring/node-exporter/$name/typed" sh -c \
		'grep -q -x "# TYPE $1 $2" "$3" && grep -q "^$1\(_sum\)\{0,1\}{" "$3"' - "$name" "$type" \
		"$TMP/scrape.txt"
done < "$TMP/families.txt"
check "/monitoring/node-exporter/none-untyped" \
	sh -c '! grep -q "^# TYPE p11enroll_.* untyped" "$1"' - "$TMP/scrape.txt"
# the checks can fail: a counter typed the OpenMetrics way (family without
# _total) comes out untyped, and a file the collector cannot parse is a
# scrape error; the collector reads the directory again at each scrape
printf '%s\n' '# TYPE p11e_old_renewals counter' '# HELP p11e_old_renewals old' \
	'p11e_old_renewals_total 1' > "$TF/old.prom"
printf 'p11e_broken{ 1\n' > "$TF/broken.prom"
scrape "$TMP/scrape-bad.txt"
check "/monitoring/node-exporter/catches-untyped" \
	grep -q -x '# TYPE p11e_old_renewals_total untyped' "$TMP/scrape-bad.txt"
check "/monitoring/node-exporter/catches-scrape-error" \
	grep -q -x 'node_textfile_scrape_error 1' "$TMP/scrape-bad.txt"
finish
