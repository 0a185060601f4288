#!/usr/bin/env python3
"""Static checks of the operator files (stdlib only, no server; scripts/test.sh runs it):

- dashboards (enclave/grafana/dashboards/*.json): valid JSON, schemaVersion >= 36, unique uid,
  a `datasource` variable of type datasource (query prometheus) and an `instance` variable, no
  `${DS_…}` placeholder or `__inputs`, every panel and target on `${datasource}`, every metric
  selector filtered by `instance=~"$instance"`, a unit on every graph, a grid without overlaps;
- every metric name the dashboards and alert rules use exists in src/ (except the Pushgateway's,
  Prometheus' ALERTS, recording rules and the few announced metrics listed below);
- every alert rule has a severity label and summary/description annotations, and
  alerts_test.yml tests it both firing and not firing;
- the provisioning files name the right paths.
"""

import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = REPO / "enclave" / "grafana" / "dashboards"
PROVISIONING = REPO / "enclave" / "grafana" / "provisioning"
RULES = REPO / "enclave" / "prometheus" / "alerts.yml"
RULE_TESTS = REPO / "enclave" / "prometheus" / "alerts_test.yml"

EXTERNAL = {
    "push_time_seconds", "push_failure_time_seconds",  # the Pushgateway's, per group
    "ALERTS",  # Prometheus' own
}
# Metrics that do not exist yet; panels and rules using them say so. Empty: every metric the
# dashboards and rules use is defined in src/ (an announced name that exists is reported below).
ANNOUNCED = set()

METRIC = re.compile(r"\b(enclave_[a-z0-9_]+|push_time_seconds|push_failure_time_seconds|ALERTS)\b")

errors = []


def error(where, message):
    errors.append(f"{where}: {message}")


def source_metrics():
    names = set()
    for path in (REPO / "src").rglob("*.rs"):
        names.update(re.findall(r'"(enclave_[a-z0-9_]+)"', path.read_text()))
    return names


def known(name, defined):
    if name in EXTERNAL or name in ANNOUNCED or name in defined:
        return True
    return any(name.endswith(s) and name[: -len(s)] in defined for s in ("_bucket", "_sum", "_count"))


def panels(items):
    for p in items:
        yield p
        yield from panels(p.get("panels", []))


def check_dashboard(path, defined, uids):
    where = path.name
    try:
        d = json.loads(path.read_text())
    except ValueError as e:
        return error(where, f"not JSON: {e}")
    text = path.read_text()
    if "${DS_" in text or "__inputs" in d:
        error(where, "uses ${DS_…} import placeholders: use the datasource variable")
    if d.get("schemaVersion", 0) < 36:
        error(where, f"schemaVersion {d.get('schemaVersion')} < 36")
    if not d.get("uid") or d["uid"] in uids:
        error(where, f"missing or duplicate uid {d.get('uid')!r}")
    uids.add(d.get("uid"))
    variables = {v["name"]: v for v in d.get("templating", {}).get("list", [])}
    ds = variables.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        error(where, "needs a variable `datasource` of type datasource with query prometheus")
    if "instance" not in variables:
        error(where, "needs an `instance` variable")
    for name, v in variables.items():
        if v["type"] == "query" and v.get("datasource", {}).get("uid") != "${datasource}":
            error(where, f"variable {name} must use ${{datasource}}")
    ids, cells = set(), {}
    for p in panels(d.get("panels", [])):
        title = f"{where}: panel {p.get('title')!r}"
        if p.get("id") in ids:
            error(title, f"duplicate id {p.get('id')}")
        ids.add(p.get("id"))
        g = p.get("gridPos", {})
        if g.get("x", 0) + g.get("w", 0) > 24 or g.get("w", 0) <= 0 or g.get("h", 0) <= 0:
            error(title, f"bad gridPos {g}")
        for x in range(g.get("x", 0), g.get("x", 0) + g.get("w", 0)):
            for y in range(g.get("y", 0), g.get("y", 0) + g.get("h", 0)):
                if (x, y) in cells:
                    error(title, f"overlaps panel {cells[(x, y)]!r}")
                    break
                cells[(x, y)] = p.get("title")
            else:
                continue
            break
        if p["type"] in ("row", "text"):
            continue
        if not p.get("title") or not p.get("description"):
            error(title, "needs a title and a description")
        if p.get("datasource", {}).get("uid") != "${datasource}":
            error(title, "panel datasource must be ${datasource}")
        if p["type"] in ("timeseries", "stat", "gauge", "bargauge") and \
                not p.get("fieldConfig", {}).get("defaults", {}).get("unit"):
            error(title, "needs a unit")
        if not p.get("targets"):
            error(title, "has no query")
        for t in p.get("targets", []):
            expr = t.get("expr", "")
            if t.get("datasource", {}).get("uid") != "${datasource}":
                error(title, f"target {t.get('refId')} datasource must be ${{datasource}}")
            for m in METRIC.finditer(expr):
                name = m.group(1)
                if not known(name, defined):
                    error(title, f"unknown metric {name}")
                rest = expr[m.end():]
                if not rest.startswith("{"):
                    error(title, f"{name} without a label filter")
                    continue
                matchers = rest[1:rest.index("}")]
                if 'instance=~"$instance' not in matchers:
                    error(title, f'{name} not filtered by instance=~"$instance"')


def check_rules(defined):
    text = RULES.read_text()
    tests = RULE_TESTS.read_text()
    blocks = re.split(r"\n\s*- (?=alert:|record:)", text)
    names = []
    for block in blocks[1:]:
        kind, name = re.match(r"(alert|record): (\S+)", block).groups()
        for m in METRIC.finditer(block.split("annotations:")[0]):
            if not known(m.group(1), defined):
                error(f"alerts.yml: {name}", f"unknown metric {m.group(1)}")
        if kind == "record":
            continue
        names.append(name)
        if not re.search(r"\n\s+severity: (critical|warning|info)\b", block):
            error(f"alerts.yml: {name}", "needs a severity label (critical, warning or info)")
        for annotation in ("summary", "description"):
            if not re.search(rf"\n\s+{annotation}:", block):
                error(f"alerts.yml: {name}", f"needs a {annotation} annotation")
    # Test cases: "alertname: X" followed by "exp_alerts: []" (not firing) or a list (firing).
    cases = re.findall(r"alertname: (\S+)\n\s+exp_alerts:( \[\])?", tests)
    for name in names:
        kinds = {bool(empty) for n, empty in cases if n == name}
        if False not in kinds:
            error(f"alerts_test.yml: {name}", "no test case where it fires")
        if True not in kinds:
            error(f"alerts_test.yml: {name}", "no test case where it does not fire")
    for n, _ in cases:
        if n not in names:
            error("alerts_test.yml", f"tests an unknown alert {n}")
    return names


def check_provisioning():
    ds = (PROVISIONING / "datasources" / "prometheus.yaml").read_text()
    for needle in ("apiVersion: 1", "type: prometheus"):
        if needle not in ds:
            error("provisioning/datasources/prometheus.yaml", f"missing {needle!r}")
    dash = (PROVISIONING / "dashboards" / "enclave.yaml").read_text()
    for needle in ("apiVersion: 1", "type: file", "path:"):
        if needle not in dash:
            error("provisioning/dashboards/enclave.yaml", f"missing {needle!r}")


def main():
    defined = source_metrics()
    for name in sorted(ANNOUNCED & defined):
        error("lint_observability.py", f"{name} is listed as announced but is defined in src/: remove it from ANNOUNCED")
    uids = set()
    files = sorted(DASHBOARDS.glob("*.json"))
    if not files:
        error(str(DASHBOARDS), "no dashboards")
    for path in files:
        check_dashboard(path, defined, uids)
    alerts = check_rules(defined)
    check_provisioning()
    if errors:
        print(f"{len(errors)} problems:", file=sys.stderr)
        for e in errors:
            print(f"  {e}", file=sys.stderr)
        return 1
    print(f"dashboards and alert rules: {len(files)} dashboards, {len(alerts)} alerts, all consistent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
