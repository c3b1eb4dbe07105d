#!/usr/bin/python3
"""dashboard-check.py SCHEMA DASHBOARD METRICS RULES OUT

Loads the Grafana dashboard DASHBOARD, validates it against SCHEMA (tests/
grafana-dashboard.schema.json) and checks what a schema cannot: unique
panel ids and refIds, panels inside the 24 columns without overlapping,
every datasource the dashboard's ${datasource} variable, every $variable
defined, every p11enroll_ metric that the dashboard and the alerting rules
RULES use written by the agent (METRICS: the metrics file's sample names,
one a line), and the four views the issue asks for.  Writes each query,
with its variables replaced, as a recording rule into OUT, for promtool
check rules to parse.  Prints one "ok"/"not ok" line per check (TAP
points without numbers: tests/monitoring.sh numbers them); exits 0."""
import json
import re
import sys

import jsonschema

schema_path, dash_path, metrics_path, rules_path, out_path = sys.argv[1:6]
results = []


def check(name, ok, why=""):
    results.append((name, bool(ok), why))


try:
    with open(dash_path, encoding="utf-8") as f:
        dash = json.load(f)
    check("loads", True)
except (OSError, ValueError) as e:
    check("loads", False, str(e))
    dash = {}
with open(schema_path, encoding="utf-8") as f:
    schema = json.load(f)
errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(dash), key=str)
check("schema", not errors, "; ".join(
    "/".join(map(str, e.absolute_path)) + ": " + e.message for e in errors[:5]))

panels = dash.get("panels", []) if isinstance(dash.get("panels"), list) else []
ids = [p.get("id") for p in panels]
check("panel-ids-unique", len(ids) == len(set(ids)), f"ids {ids}")

cells, overlap, outside = {}, [], []
for p in panels:
    g = p.get("gridPos", {})
    x, y, w, h = (g.get(k, 0) for k in "xywh")
    if x + w > 24:
        outside.append(p.get("id"))
    for i in range(x, x + w):
        for j in range(y, y + h):
            if (i, j) in cells:
                overlap.append((cells[(i, j)], p.get("id")))
            cells[(i, j)] = p.get("id")
check("grid-inside", not outside, f"panels wider than 24 columns: {outside}")
check("grid-no-overlap", not overlap, f"overlapping panels: {sorted(set(overlap))[:3]}")

variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
ds_vars = [n for n, v in variables.items()
           if v.get("type") == "datasource" and v.get("query") == "prometheus"]
check("datasource-variable", ds_vars == ["datasource"], f"datasource variables {ds_vars}")
bad_ds, refs_bad, exprs = [], [], []
for p in panels:
    sources = [p.get("datasource")] + [t.get("datasource") for t in p.get("targets", [])]
    bad_ds += [p.get("id") for s in sources
               if s is not None and s != {"type": "prometheus", "uid": "${datasource}"}]
    refs = [t.get("refId") for t in p.get("targets", [])]
    if len(refs) != len(set(refs)):
        refs_bad.append(p.get("id"))
    exprs += [(p.get("id"), p.get("title"), t.get("expr", "")) for t in p.get("targets", [])]
for v in variables.values():
    q = v.get("query")
    if v.get("type") == "query":
        exprs.append((0, "variable " + v["name"], q.get("query") if isinstance(q, dict) else q))
check("datasource-references", not bad_ds, f"panels with another datasource: {bad_ds}")
check("refids-unique", not refs_bad, f"panels with a refId twice: {refs_bad}")

builtin = {"__rate_interval", "__interval", "__range", "__interval_ms", "__range_s"}
undefined = sorted({m for _, _, e in exprs for m in re.findall(r"\$\{?(\w+)", e or "")
                    if m not in builtin and m not in variables})
check("variables-defined", not undefined, f"undefined variables: {undefined}")

with open(metrics_path, encoding="utf-8") as f:
    written = {line.strip() for line in f if line.strip()}
used = {m for _, _, e in exprs for m in re.findall(r"\bp11enroll_\w+", e or "")}
check("dashboard-metrics-exist", used and used <= written,
      f"not in the metrics file: {sorted(used - written)}")
with open(rules_path, encoding="utf-8") as f:
    rules_text = f.read()
rules_used = set(re.findall(r"\bp11enroll_\w+", rules_text))
check("rules-metrics-exist", rules_used and rules_used <= written,
      f"not in the metrics file: {sorted(rules_used - written)}")

# the views issue 17 asks for: time to expiry per enrollment, renewals and
# failures over time, states, step durations
need = {
    "expiry": "p11enroll_certificate_not_after_seconds",
    "renewals": "p11enroll_renewals_total",
    "failures": "p11enroll_step_failures_total",
    "states": "p11enroll_state",
    "step-durations": "p11enroll_step_duration_seconds_sum",
}
for name, metric in need.items():
    check("shows-" + name, metric in used, f"no panel queries {metric}")

subst = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1d"}
with open(out_path, "w", encoding="utf-8") as f:
    f.write("groups:\n  - name: dashboard\n    rules:\n")
    for n, (pid, title, e) in enumerate(exprs):
        if pid == 0:
            continue  # label_values(): Grafana's, not PromQL
        for k, v in subst.items():
            e = (e or "").replace(k, v)
        e = re.sub(r"\$\{?(\w+)\}?", ".*", e)
        f.write(f"      - record: dashboard:panel{pid}:{n}\n        expr: {json.dumps(e)}\n")

for name, ok, why in results:
    print(("ok - " if ok else "not ok - ") + name + ("" if ok or not why else f"  # {why}"))
