#!/usr/bin/python3
"""render-sample.py [OUT.png]: draws the panels of p11enroll.json, in its
grid, from made-up sample data (a week of 3 machines, 6 enrollments, one
CA outage, one PIN-latched token) with matplotlib (Debian's
python3-matplotlib), for README's "Monitoring".  No Grafana runs here:
the picture shows what each panel plots, not Grafana's own look.
Deterministic: the same PNG every run."""
import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "p11enroll.png")
with open(os.path.join(HERE, "p11enroll.json"), encoding="utf-8") as f:
    dash = json.load(f)
plt.rcParams.update({"font.size": 8, "svg.hashsalt": "p11enroll"})

DAY = 86400
hours = [h for h in range(7 * 24)]
names = ["h1 web", "h1 vpn", "h2 web", "h2 mail", "h3 web", "h3 ldap"]
# days of certificate left now; h3 web's renewals fail since the outage
left = [21.5, 40.2, 33.0, 12.8, 4.6, 52.1]
states = {"valid": 4, "backoff": 1, "pin-rejected": 1}


def outage(h):
    return 96 <= h < 104  # the CA unreachable for 8 hours on day 4


def expiry(ax):
    order = sorted(range(len(names)), key=lambda i: left[i])
    colours = ["#d44a3a" if left[i] < 7 else "#ff9830" if left[i] < 30 else "#73bf69"
               for i in order]
    ax.barh([names[i] for i in order], [left[i] for i in order], color=colours)
    ax.invert_yaxis()
    ax.set_xlabel("days")
    for y, i in enumerate(order):
        ax.text(left[i] + 0.5, y, f"{left[i]:.1f} d", va="center")


def pie(ax):
    ax.pie(list(states.values()), labels=[f"{k} ({v})" for k, v in states.items()],
           colors=["#73bf69", "#ff9830", "#d44a3a"], wedgeprops={"width": 0.45},
           startangle=90, counterclock=False)


def since_ca(ax):
    ax.axis("off")
    ax.text(0.5, 0.62, "2 min", ha="center", va="center", fontsize=26, color="#73bf69")
    ax.text(0.5, 0.25, "https://ca.example/.well-known/cmp", ha="center", fontsize=8)


def renewals(ax):
    ren = [1 if h in (14, 39, 61, 130, 151) else 0 for h in hours]
    fail = [(3 if outage(h) else 0) + (1 if h in (20, 21) else 0) for h in hours]
    ax.bar(hours, ren, width=1.0, color="#73bf69", label="renewed")
    ax.bar(hours, fail, width=1.0, bottom=ren, color="#d44a3a", label="failed steps")
    ax.legend(loc="upper left")
    ax.set_ylabel("per hour")


def durations(ax):
    for step, base, colour in (("renew", 1.8, "#5794f2"), ("check", 0.35, "#b877d9"),
                               ("resume", 0.9, "#fade2a")):
        ys = [base * (1 + 0.15 * math.sin(h / 5.0 + base)) * (4 if outage(h) else 1)
              for h in hours]
        ax.plot(hours, ys, label=step, color=colour)
    ax.set_ylabel("seconds")
    ax.legend(loc="upper left")


def failures(ax):
    ax.plot(hours, [min(h - 95, 9) if 96 <= h < 104 else 0 for h in hours],
            label="h3 web", color="#d44a3a")
    ax.plot(hours, [2 if 20 <= h < 22 else 0 for h in hours], label="h1 vpn", color="#ff9830")
    ax.legend(loc="upper left")


draw = {1: expiry, 2: pie, 3: since_ca, 4: renewals, 5: durations, 6: failures}
rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in dash["panels"])
fig = plt.figure(figsize=(14, rows * 0.42), dpi=100)
fig.patch.set_facecolor("white")
for p in dash["panels"]:
    g = p["gridPos"]
    # the grid: 24 columns, rows of Grafana's 30 px; a margin inside each cell
    left_pad = 0.06 if p["type"] == "bargauge" else 0.035
    top = 0.95  # room for the title above the grid
    ax = fig.add_axes([g["x"] / 24 + left_pad, top * (1 - (g["y"] + g["h"]) / rows) + 0.045,
                       g["w"] / 24 - left_pad - 0.015, top * g["h"] / rows - 0.09])
    ax.set_title(p["title"], loc="left", fontweight="bold")
    draw[p["id"]](ax)
    if p["type"] == "timeseries":
        ax.set_xticks(range(0, 7 * 24 + 1, 24))
        ax.set_xticklabels([f"day {d}" for d in range(8)])
        ax.grid(alpha=0.3)
fig.suptitle("p11enroll (sample data)", x=0.02, ha="left", fontsize=11)
fig.savefig(OUT, metadata={"Software": None})
