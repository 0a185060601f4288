#!/usr/bin/env python3
"""Writes the Grafana dashboards in enclave/grafana/dashboards/ (stdlib only).

The JSON files are generated so that every panel follows the same rules (the `datasource`
variable, `instance` filter, units, legends, a 24-column grid without overlaps). Edit the panels
here, run this script, commit both. `--check` exits 1 when the committed JSON differs from what
this script writes (scripts/test.sh runs it).

A panel whose description contains "may be empty" may legitimately return no data (a metric
that exists only with the chain, or only after a failure); scripts/check-dashboards.sh accepts
an empty result only for those.
"""

import json
import re
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "enclave" / "grafana" / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}
SCHEMA_VERSION = 39
RI = "$__rate_interval"

# Label filters. Every query filters on the instance; the per-dashboard variables narrow further.
I = 'instance=~"$instance"'


def m(label, op, value):
    """One label matcher, e.g. m("state", "!~", "up|finished")."""
    return f'{label}{op}"{value}"'


def sel(*parts):
    return "{" + ", ".join(parts) + "}"


F = sel(I)

# ----------------------------------------------------------------------------------------------
# Panel builders


def auto_legend(expr):
    """`{{a}} {{b}}` from the first `by (a, b)` of the expression (le left out)."""
    found = re.search(r"\bby \(([^)]*)\)", expr)
    labels = [x.strip() for x in found.group(1).split(",") if x.strip() not in ("", "le")] \
        if found else []
    return " ".join("{{%s}}" % x for x in labels) or "__auto"


def target(expr, legend="", ref=None, instant=False, table=False):
    t = {"datasource": DS, "editorMode": "code", "expr": expr,
         "legendFormat": legend or auto_legend(expr),
         "range": not instant, "instant": instant}
    if table:
        t["format"] = "table"
    if ref:
        t["refId"] = ref
    return t


def thresholds(*steps):
    """steps: color, then (value, color) pairs."""
    out = [{"color": steps[0], "value": None}]
    out += [{"color": c, "value": v} for v, c in steps[1:]]
    return {"mode": "absolute", "steps": out}


def value_map(mapping):
    return [{"type": "value", "options": {
        str(k): {"text": text, "color": color, "index": i}
        for i, (k, (text, color)) in enumerate(mapping.items())}}]


def _panel(kind, title, targets, description, w, h, unit=None, **extra):
    if isinstance(targets, (str, dict)):
        targets = [targets]
    targets = [target(t) if isinstance(t, str) else t for t in targets]
    for i, t in enumerate(targets):
        t.setdefault("refId", chr(ord("A") + i))
    p = {"type": kind, "title": title, "description": description, "datasource": DS,
         "targets": targets, "w": w, "h": h,
         "fieldConfig": {"defaults": {}, "overrides": []}}
    if unit:
        p["fieldConfig"]["defaults"]["unit"] = unit
    p.update(extra)
    return p


def timeseries(title, targets, unit, description, w=12, h=8, stack=False, bars=False,
               minimum=0, maximum=None, threshold_line=None, legend_table=False):
    p = _panel("timeseries", title, targets, description, w, h, unit)
    custom = {"drawStyle": "bars" if bars else "line", "lineWidth": 1,
              "fillOpacity": 60 if bars else (25 if stack else 8), "showPoints": "never",
              "spanNulls": False, "axisSoftMin": minimum,
              "stacking": {"mode": "normal" if stack else "none", "group": "A"}}
    defaults = p["fieldConfig"]["defaults"]
    defaults["custom"] = custom
    defaults["color"] = {"mode": "palette-classic"}
    if maximum is not None:
        defaults["max"] = maximum
    if threshold_line is not None:
        defaults["thresholds"] = thresholds("transparent", (threshold_line, "red"))
        custom["thresholdsStyle"] = {"mode": "dashed"}
    p["options"] = {
        "legend": {"displayMode": "table" if legend_table else "list", "placement": "bottom",
                   "showLegend": True,
                   **({"calcs": ["lastNotNull", "max"]} if legend_table else {})},
        "tooltip": {"mode": "multi", "sort": "desc"}}
    return p


def stat(title, targets, unit, description, w=4, h=4, steps=None, mappings=None,
         background=True, graph=False, decimals=None):
    p = _panel("stat", title, targets, description, w, h, unit)
    defaults = p["fieldConfig"]["defaults"]
    defaults["thresholds"] = steps or thresholds("green")
    defaults["color"] = {"mode": "thresholds"}
    if mappings:
        defaults["mappings"] = mappings
    if decimals is not None:
        defaults["decimals"] = decimals
    p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                    "colorMode": "background" if background else "value",
                    "graphMode": "area" if graph else "none", "textMode": "auto",
                    "justifyMode": "auto", "orientation": "auto"}
    return p


def state_timeline(title, targets, description, mappings=None, steps=None, unit=None, w=24, h=7):
    p = _panel("state-timeline", title, targets, description, w, h, unit)
    defaults = p["fieldConfig"]["defaults"]
    defaults["color"] = {"mode": "thresholds"}
    defaults["thresholds"] = steps or thresholds("green")
    if mappings:
        defaults["mappings"] = mappings
    p["options"] = {"showValue": "never", "mergeValues": True, "alignValue": "left",
                    "rowHeight": 0.85, "legend": {"showLegend": False},
                    "tooltip": {"mode": "single", "sort": "none"}}
    return p


def table(title, columns, description, w=12, h=8, sort=None):
    """columns: (header, expr, unit or None). Instant queries merged into one row per `key`."""
    targets, overrides, rename, exclude = [], [], {}, {"Time": True}
    for i, (header, expr, unit) in enumerate(columns):
        ref = chr(ord("A") + i)
        targets.append(target(expr, ref=ref, instant=True, table=True))
        value = f"Value #{ref}"
        if header is None:
            exclude[value] = True
            continue
        rename[value] = header
        if unit:
            overrides.append({"matcher": {"id": "byName", "options": header},
                              "properties": [{"id": "unit", "value": unit}]})
    if len(columns) == 1 and columns[0][0]:
        # A single query's value column is called "Value".
        rename = {"Value": columns[0][0]}
        overrides = [{"matcher": {"id": "byName", "options": columns[0][0]},
                      "properties": [{"id": "unit", "value": columns[0][2]}]}] if columns[0][2] else []
    elif len(columns) == 1:
        exclude["Value"] = True
    p = _panel("table", title, targets, description, w, h)
    p["fieldConfig"]["overrides"] = overrides
    p["fieldConfig"]["defaults"]["custom"] = {"align": "auto", "cellOptions": {"type": "auto"}}
    transformations = []
    if len(columns) > 1:
        transformations.append({"id": "merge", "options": {}})
    transformations.append({"id": "organize", "options": {
        "excludeByName": exclude, "renameByName": rename, "indexByName": {}}})
    p["transformations"] = transformations
    p["options"] = {"showHeader": True, "cellHeight": "sm",
                    "footer": {"show": False, "reducer": ["sum"], "fields": ""}}
    if sort:
        p["options"]["sortBy"] = [{"displayName": sort[0], "desc": sort[1]}]
    return p


def text(title, content, w=12, h=4):
    return {"type": "text", "title": title, "description": "", "w": w, "h": h,
            "options": {"mode": "markdown", "content": content}}


def row(title):
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


UP_DOWN = value_map({0: ("down", "red"), 1: ("up", "green")})


# ----------------------------------------------------------------------------------------------
# Dashboards


def instance_variable():
    q = "label_values(enclave_telemetry_pushes_total, instance)"
    return {"type": "query", "name": "instance", "label": "Instance", "datasource": DS,
            "query": q, "definition": q, "refresh": 2, "sort": 1, "includeAll": False,
            "multi": False, "hide": 0, "regex": "", "current": {}, "options": [],
            "description": "The enclave (telemetry.instance, else chainlinkNodeName)."}


def query_variable(name, label, query, description):
    return {"type": "query", "name": name, "label": label, "datasource": DS, "query": query,
            "definition": query, "refresh": 2, "sort": 1, "includeAll": True, "multi": True,
            "allValue": ".*", "hide": 0, "regex": "", "description": description,
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]}, "options": []}


def dashboard(uid, title, description, rows, extra_variables=()):
    panels, y, x, row_h, next_id = [], 0, 0, 0, 1
    for item in rows:
        if item["type"] == "row":
            if x:
                y, x, row_h = y + row_h, 0, 0
            item["gridPos"] = {"h": 1, "w": 24, "x": 0, "y": y}
            y += 1
        else:
            w, h = item.pop("w"), item.pop("h")
            if x + w > 24:
                y, x, row_h = y + row_h, 0, 0
            item["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
            x += w
            row_h = max(row_h, h)
        item["id"] = next_id
        next_id += 1
        panels.append(item)
    variables = [{"type": "datasource", "name": "datasource", "label": "Data source",
                  "query": "prometheus", "refresh": 1, "regex": "", "hide": 0,
                  "includeAll": False, "multi": False, "current": {}, "options": []},
                 instance_variable(), *extra_variables]
    return {
        "id": None, "uid": uid, "title": title, "description": description,
        "tags": ["enclave"], "timezone": "", "editable": True, "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION, "version": 1, "refresh": "30s",
        "time": {"from": "now-3h", "to": "now"}, "timepicker": {},
        "fiscalYearStartMonth": 0, "liveNow": False, "weekStart": "",
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts", "type": "dashboard"}]},
        "links": [{"type": "dashboards", "tags": ["enclave"], "asDropdown": True,
                   "title": "Enclave dashboards", "includeVars": True, "keepTime": True,
                   "icon": "external link", "targetBlank": False, "tooltip": "", "url": ""}],
        "templating": {"list": variables},
        "panels": panels,
    }


def success_ratio(by, filters, window=RI):
    """Share of upstream requests answered ok (not_found, a pair the source does not list, left
    out); 0 rather than missing for a source without a single success."""
    ok = f'sum by ({by}) (rate(enclave_aggregator_source_requests_total{sel(*filters, m("outcome", "=", "ok"))}[{window}]))'
    all_ = f'sum by ({by}) (rate(enclave_aggregator_source_requests_total{sel(*filters, m("outcome", "!=", "not_found"))}[{window}]))'
    return f"({ok} or {all_} * 0) / {all_}"


def hit_ratio(by, filters, window=RI):
    hits = f"sum{by} (rate(enclave_aggregator_cache_hits_total{sel(*filters)}[{window}]))"
    misses = f"sum{by} (rate(enclave_aggregator_cache_misses_total{sel(*filters)}[{window}]))"
    hits_or_zero = f"({hits} or {misses} * 0)"
    return f"{hits_or_zero} / ({hits_or_zero} + {misses})"


def overview():
    push_age = thresholds("green", (45, "orange"), (60, "red"))
    return dashboard("enclave-overview", "Enclave / Overview",
                     "Container health, services, resources and alerts of one enclave.", [
        row("Health"),
        stat("Services not up",
             f'sum(enclave_supervisor_service_state{sel(I, m("state", "!~", "up|finished"))})', "none",
             "Services the supervisor reports in another state than up (longruns) or finished "
             "(oneshots). 0 when healthy.", steps=thresholds("green", (1, "red"))),
        stat("Restarts in range", f"round(sum(increase(enclave_service_restarts_total{F}[$__range])))",
             "none", "Service restarts within the dashboard's time range (all services).",
             steps=thresholds("green", (1, "orange"), (3, "red"))),
        stat("Oldest feed report",
             f"time() - min(max by (feed) (enclave_node_latest_report_timestamp_seconds{F}))", "s",
             "Age of the newest report of the feed whose report is oldest. Alert FeedNotUpdated "
             "fires past the feed's heartbeat threshold (default 25 h).",
             steps=thresholds("green", (3600, "orange"), (90000, "red"))),
        stat("Oldest push", f"time() - min(push_time_seconds{F})", "s",
             "Seconds since the component that pushed least recently last pushed to the "
             "Pushgateway. May be empty when the metrics go to VictoriaMetrics (no "
             "push_time_seconds there).", steps=push_age),
        stat("Configuration key", f"max(enclave_supervisor_insecure_mode{F})", "none",
             "Whether the configuration was verified with the image's key, or with a development "
             "key given on the command line (--insecure-public-key-file).",
             mappings=value_map({0: ("image key", "green"), 1: ("INSECURE", "red")})),
        stat("Boot to all up", f'max(enclave_supervisor_boot_phase_seconds{sel(I, m("phase", "=", "all_up"))})',
             "s", "Seconds from enclave init's start until every service was up.",
             steps=thresholds("green", (60, "orange"), (120, "red"))),
        table("Configuration", [
            (None, f"max by (digest, scheme) (enclave_configuration_info{F})", None)],
            "The verified configuration: its digest (`enclave config verify` prints the same) and "
            "signature scheme.", w=8, h=5),
        stat("Attestation", f"max(enclave_attestation_available{F})", "none",
             "Whether a TDX quote binds this boot's identity (identity.quote beside "
             "identity.json). None: no TDX quote interface (a laptop, CI, or a platform that "
             "keeps it from workloads; the order certificate is the proof there) or it failed "
             "(the log says why).",
             mappings=value_map({0: ("none", "orange"), 1: ("TDX quote", "green")})),
        table("Identity", [
            (None, "max by (node, role, peer_id, onchain_signing_address, transmitter_address, "
                   f"version, git_revision, image_digest, identity_sha512) (enclave_identity_info{F})", None)],
            "The identity this boot stated (`enclave status --identity`): every node's peer id, "
            "report-signing and transmitter addresses, the software, and the SHA-512 a TDX quote "
            "binds. Check it with `enclave verify-identity` (docs/operator/verifying.md).",
            w=24, h=7, sort=("node", False)),
        table("Alerts", [
            (None, 'max by (alertname, severity, alertstate, job, service, source, feed) '
                       '(ALERTS{instance=~"$instance|"})', None)],
            "Firing and pending alerts of enclave/prometheus/alerts.yml for this instance. May be "
            "empty: no alert active, or the rules are not loaded in this data source.",
            w=16, h=5, sort=("severity", False)),
        table("DON members", [
            ("Admitted", f"max by (member) (enclave_don_member_admitted{F})", "none"),
            ("Unreachable", f"max by (member) (enclave_don_member_unreachable{F})", "none"),
            ("Verified ago", f"time() - max by (member) (enclave_don_member_last_verified_timestamp_seconds{F} > 0)", "s"),
            ("Refusals in range", f"round(sum by (member) (increase(enclave_don_member_refusals_total{F}[$__range])))", "none"),
            ("Key changes", f"max by (member) (enclave_don_member_key_changes_total{F})", "none")],
            "A DON across enclaves: every other member as this enclave's supervisor sees it — "
            "admitted (1) or not, its identity unreachable, how long ago it last verified, checks "
            "that refused it (enclave_don_member_refusals_total has the reason) and new node keys "
            "since boot. Alerts DonMemberNotAdmitted, DonMemberKeysChanged, DonMemberClaimedTwice. "
            "May be empty: no `don` section (one enclave runs every node).",
            w=24, h=6, sort=("member", False)),
        row("Services"),
        table("Services", [
            (None, f"max by (service, state) (enclave_supervisor_service_state{F} == 1)", None),
            ("Restarts", f"max by (service) (enclave_service_restarts_total{F})", "none"),
            ("CPU", f"max by (service) (enclave_service_cpu_usage_cores{F})", "percentunit"),
            ("Memory", f"max by (service) (enclave_service_resident_memory_bytes{F})", "bytes")],
            "Every service's state as the supervisor sees it, restarts since boot, CPU (100% = "
            "one core) and memory of its process tree (PSS: shared pages count once). Oneshots "
            "that finished have no CPU or memory.", w=12, h=10, sort=("service", False)),
        timeseries("Restarts", f"sum by (service) (increase(enclave_service_restarts_total{F}[{RI}]))",
                   "none", "Restarts per service over time. More than maxRestarts within "
                   "restartWindowMs stops the enclave.", h=10, bars=True),
        row("Resources"),
        timeseries("CPU by service", f"sum by (service) (enclave_service_cpu_usage_cores{F})",
                   "percentunit", "CPU of each service's process tree, stacked; 100% = one core.",
                   stack=True),
        timeseries("Memory by service",
                   f"sum by (service) (enclave_service_resident_memory_bytes{F})", "bytes",
                   "Memory of each service's process tree, stacked: the proportional set size "
                   "(PSS), so shared pages such as PostgreSQL's shared buffers count once and the "
                   "stack adds up to the memory in use.", stack=True),
        row("Prices and feeds"),
        timeseries("Price source success ratio", success_ratio("source", [I]), "percentunit",
                   "Share of each source's upstream requests that succeeded (not_found left out). "
                   "Gaps: no REST request in the interval (its stream delivered).", maximum=1),
        timeseries("Feed report age",
                   f"time() - max by (feed) (enclave_node_latest_report_timestamp_seconds{F})", "s",
                   "Seconds since each feed's newest finalized report. It grows until the price "
                   "moves by alphaPPB or the heartbeat is due.", threshold_line=90000),
    ])


def aggregator():
    S_ = [I, 'source=~"$source"']
    S = sel(*S_)
    by_source = "by (source)"
    return dashboard(
        "enclave-aggregator", "Enclave / Price aggregator",
        "The price aggregator: API, cache, sources, pairs and WebSocket streams.", [
            row("API"),
            stat("Requests/s", f"sum(rate(enclave_aggregator_http_requests_total{F}[{RI}]))", "reqps",
                 "API requests per second, all routes (the oracles' /quotes/batch mostly).",
                 background=False, graph=True),
            stat("p95 latency", "histogram_quantile(0.95, sum by (le) (rate("
                 f"enclave_aggregator_http_request_duration_seconds_bucket{F}[{RI}])))", "s",
                 "95th percentile of API request latency.",
                 steps=thresholds("green", (0.5, "orange"), (2, "red")), background=False, graph=True),
            stat("5xx ratio", f'(sum(rate(enclave_aggregator_http_requests_total{sel(I, m("status", "=~", "5.."))}[{RI}])) '
                 f"or vector(0)) / sum(rate(enclave_aggregator_http_requests_total{F}[{RI}]))",
                 "percentunit", "Share of API requests answered with a server error.",
                 steps=thresholds("green", (0.01, "orange"), (0.05, "red"))),
            stat("In flight", f"sum(enclave_aggregator_http_requests_in_flight{F})", "none",
                 "API requests being served now.", background=False),
            stat("Tracked pairs", f"sum(enclave_aggregator_tracked_pairs{F})", "none",
                 "(source, pair) entries the aggregator tracks (maxTrackedPairs caps them).",
                 background=False),
            stat("Cache hit ratio", hit_ratio("", [I], "$__range"), "percentunit",
                 "Quotes answered from the cache over the time range. Alert "
                 "AggregatorCacheHitRatioLow below 70%.",
                 steps=thresholds("red", (0.5, "orange"), (0.7, "green"))),
            timeseries("Requests by route and status",
                       f"sum by (route, status) (rate(enclave_aggregator_http_requests_total{F}[{RI}]))",
                       "reqps", "API requests per second by route template and status."),
            timeseries("API latency", [
                target("histogram_quantile(0.5, sum by (le, route) (rate("
                       f"enclave_aggregator_http_request_duration_seconds_bucket{F}[{RI}])))", "p50 {{route}}"),
                target("histogram_quantile(0.95, sum by (le, route) (rate("
                       f"enclave_aggregator_http_request_duration_seconds_bucket{F}[{RI}])))", "p95 {{route}}"),
                target("histogram_quantile(0.99, sum by (le, route) (rate("
                       f"enclave_aggregator_http_request_duration_seconds_bucket{F}[{RI}])))", "p99 {{route}}")],
                "s", "API latency percentiles by route."),
            row("Cache"),
            timeseries("Cache hit ratio by source", target(hit_ratio(f" {by_source}", S_), "{{source}}"),
                       "percentunit", "Share of quotes that were fresh in the cache, by source. "
                       "A source that fails never becomes fresh.", w=8, maximum=1),
            timeseries("Cache hits and misses", [
                target(f"sum by (source) (rate(enclave_aggregator_cache_hits_total{S}[{RI}]))", "hits {{source}}"),
                target(f"sum by (source) (rate(enclave_aggregator_cache_misses_total{S}[{RI}]))", "misses {{source}}")],
                "ops", "Quotes per second answered from the cache or not fresh there.", w=8),
            timeseries("Stale quotes", target(f"sum by (source) (enclave_aggregator_stale_quotes{S})", "{{source}}"),
                       "none", "Tracked pairs whose cached quote is past its TTL.", w=8),
            row("Sources"),
            state_timeline("Source availability",
                           target(success_ratio("source", S_), "{{source}}"),
                           "Share of each source's upstream requests that succeeded: green ≥ 95%, "
                           "orange ≥ 50%, red below. Empty cells: no REST request in the interval "
                           "(the stream delivered). Alert PriceSourceDown when ≥ 90% fail for 5 "
                           "minutes without stream data.", unit="percentunit",
                           steps=thresholds("red", (0.5, "orange"), (0.95, "green")), h=6),
            timeseries("Upstream requests by outcome",
                       target(f"sum by (source, outcome) (rate(enclave_aggregator_source_requests_total{S}[{RI}]))",
                              "{{source}} {{outcome}}"),
                       "reqps", "Upstream fetches per second by source and outcome (ok or the error "
                       "kind).", w=8),
            timeseries("Errors by source",
                       target(f'sum by (source, outcome) (rate(enclave_aggregator_source_requests_total{sel(I, m("source", "=~", "$source"), m("outcome", "!=", "ok"))}[{RI}]))',
                              "{{source}} {{outcome}}"),
                       "reqps", "Failed upstream fetches per second: not_found, rate_limited, "
                       "refused (key, geo-block), upstream_error, malformed, timeout, unreachable. "
                       "Empty while every source answers.", w=8),
            timeseries("Upstream latency p95",
                       target("histogram_quantile(0.95, sum by (le, source) (rate("
                              f"enclave_aggregator_source_request_duration_seconds_bucket{S}[{RI}])))", "{{source}}"),
                       "s", "95th percentile of upstream request latency by source.", w=8),
            timeseries("Refetches",
                       target(f"sum by (source, outcome) (rate(enclave_aggregator_refetches_total{S}[{RI}]))",
                              "{{source}} {{outcome}}"),
                       "ops", "Pre-expiry and retry refetches per second by outcome (sources with "
                       "refetch: true)."),
            timeseries("Refetch round duration p95",
                       target("histogram_quantile(0.95, sum by (le, source) (rate("
                              f"enclave_aggregator_refetch_duration_seconds_bucket{S}[{RI}])))", "{{source}}"),
                       "s", "95th percentile of the duration of one refetch round."),
            row("Pairs"),
            timeseries("Tracked pairs by source",
                       target(f"sum by (source) (enclave_aggregator_tracked_pairs{S})", "{{source}}"),
                       "none", "Pairs tracked per source (dropped after pairCleanup.inactiveTimeoutMs "
                       "without a request).", w=8),
            timeseries("Oldest quote by source",
                       target(f"max by (source) (enclave_aggregator_quote_age_seconds{S})", "{{source}}"),
                       "s", "Age of the oldest cached quote of each source.", w=8),
            table("Quote age by pair", [
                ("Age", f"max by (source, pair) (enclave_aggregator_quote_age_seconds{S})", "s")],
                "Age of every tracked quote, oldest first.", w=8, sort=("Age", True)),
            row("WebSocket streams"),
            state_timeline("Stream connected",
                           target(f"max by (source) (enclave_aggregator_stream_connected{S})", "{{source}}"),
                           "Whether each source's WebSocket is connected. Only sources that stream "
                           "appear.", mappings=value_map({0: ("disconnected", "red"), 1: ("connected", "green")}),
                           w=12, h=6),
            timeseries("Stream reconnects",
                       target(f"sum by (source) (increase(enclave_aggregator_stream_reconnects_total{S}[{RI}]))",
                              "{{source}}"),
                       "none", "Reconnection attempts per interval. Alert WebSocketFlapping above 3 in "
                       "10 minutes.", h=6, bars=True),
            timeseries("Stream messages/s",
                       target(f"sum by (source) (rate(enclave_aggregator_stream_messages_total{S}[{RI}]))",
                              "{{source}}"),
                       "ops", "Messages received per second on each stream.", w=8),
            timeseries("Stream subscriptions",
                       target(f"sum by (source) (enclave_aggregator_stream_subscriptions{S})", "{{source}}"),
                       "none", "Topics subscribed on each stream.", w=8),
            stat("Streams given up",
                 target(f"max by (source) (enclave_aggregator_stream_gave_up{S})", "{{source}}"), "none",
                 "1 once a stream stopped reconnecting after maxReconnectAttempts (REST carries on "
                 "until the aggregator restarts).", w=8, h=8,
                 mappings=value_map({0: ("streaming", "green"), 1: ("gave up", "red")})),
        ], [query_variable("source", "Source",
                           'label_values(enclave_aggregator_tracked_pairs{instance=~"$instance"}, source)',
                           "Price sources (configured and enabled).")])


def processes():
    P = sel(I, 'service=~"$service"')
    return dashboard(
        "enclave-processes", "Enclave / Processes",
        "Per-service CPU, memory, processes and restarts, from the process-metrics exporter; "
        "the exporter itself; telemetry pushes.", [
            row("Resources"),
            timeseries("CPU by service", target(f"max by (service) (enclave_service_cpu_usage_cores{P})", "{{service}}"),
                       "percentunit", "CPU of each service's process tree over the last sample "
                       "interval; 100% = one core. Alert ServiceHighCpu above 90% for 5 minutes.",
                       legend_table=True),
            timeseries("Resident memory by service",
                       target(f"max by (service) (enclave_service_resident_memory_bytes{P})", "{{service}}"),
                       "bytes", "Memory of each service's process tree (PostgreSQL with its "
                       "backends) as proportional set size: pages shared between processes "
                       "count once.", legend_table=True),
            timeseries("Processes by service",
                       target(f"max by (service) (enclave_service_processes{P})", "{{service}}"),
                       "none", "Processes in each service's tree (PostgreSQL: postmaster, "
                       "backends, workers).", w=8),
            timeseries("Threads by service", target(f"max by (service) (enclave_service_threads{P})", "{{service}}"),
                       "none", "Threads in each service's tree.", w=8),
            timeseries("Open file descriptors",
                       target(f"max by (service) (enclave_service_open_fds{P})", "{{service}}"),
                       "none", "Open file descriptors in each service's tree (sockets included).", w=8),
            row("Status and restarts"),
            state_timeline("Service status", target(f"max by (service) (enclave_service_up{P})", "{{service}}"),
                           "1 (up) when a longrun is up or a oneshot finished.", mappings=UP_DOWN,
                           h=8),
            timeseries("Restart timeline",
                       target(f"sum by (service) (increase(enclave_service_restarts_total{P}[{RI}]))", "{{service}}"),
                       "none", "Restarts per interval.", w=8, bars=True),
            table("Since boot", [
                ("Restarts", f"max by (service) (enclave_service_restarts_total{P})", "none"),
                ("Last exit code", f"max by (service) (enclave_service_last_exit_code{P})", "none")],
                "Restarts since boot and the exit code of each service's last process that "
                "ended (oneshots: 0 when they succeeded).", w=8, sort=("Restarts", True)),
            table("Last restart and signal", [
                ("Last restart", f"max by (service) (enclave_service_last_restart_timestamp_seconds{P}) * 1000",
                 "dateTimeAsIso"),
                ("Killed by signal", f"max by (service) (enclave_service_last_exit_signal{P})", "none")],
                "When each service last restarted, and the signal that ended its last process. "
                "May be empty: only services that restarted, or were killed by a signal, since "
                "boot appear.", w=8),
            row("Process-metrics exporter"),
            timeseries("Sample duration",
                       target(f"max(enclave_process_metrics_sample_duration_seconds{F})", "sample"),
                       "s", "How long the exporter's last sample of every service took (its own "
                       "cost).", w=8),
            timeseries("Samples and failures", [
                target(f"sum(rate(enclave_process_metrics_samples_total{F}[{RI}]))", "samples"),
                target(f"sum(rate(enclave_process_metrics_sample_failures_total{F}[{RI}]))", "failures")],
                "ops", "Samples taken and failed per second. After 12 failures in a row the "
                "exporter exits and is restarted.", w=8),
            timeseries("Exporter CPU", [
                target(f'max(enclave_service_cpu_usage_cores{sel(I, m("service", "=", "process-metrics"))})', "CPU")],
                "percentunit", "The exporter's own CPU (100% = one core).", w=8),
            row("Telemetry"),
            timeseries("Pushes by component",
                       target(f"sum by (job, result) (rate(enclave_telemetry_pushes_total{F}[{RI}]))",
                              "{{job}} {{result}}"),
                       "ops", "Pushes per second by component and result (each after up to 3 "
                       "tries). Alert TelemetryPushFailing on failures.", w=8),
            timeseries("Push age by component", target(f"time() - max by (job) (push_time_seconds{F})", "{{job}}"),
                       "s", "Seconds since each component's last successful push to the "
                       "Pushgateway. May be empty when the metrics go to VictoriaMetrics.", w=8,
                       threshold_line=60),
            timeseries("VictoriaMetrics backlog", [
                target(f"sum by (job, target) (enclave_telemetry_backlog_samples{F})", "{{job}} {{target}} waiting"),
                target(f"sum by (job, target) (increase(enclave_telemetry_dropped_samples_total{F}[{RI}]))",
                       "{{job}} {{target}} dropped")],
                "none", "Samples buffered while a VictoriaMetrics target is unreachable, and "
                "samples dropped because the buffer was full. May be empty: only with "
                "VictoriaMetrics targets.", w=8),
        ], [query_variable("service", "Service",
                           'label_values(enclave_service_up{instance=~"$instance"}, service)',
                           "Supervised services.")])


def nodes():
    N = sel(I, 'job=~"$node"')
    node_services = sel(I, 'service=~"node-[0-9]+"', 'service=~"$node"')
    return dashboard(
        "enclave-nodes", "Enclave / Oracle nodes",
        "The consensus nodes (node-1 the bootstrap, the others oracles): status, resources, "
        "rounds, participation, P2P and the database.", [
            row("Status"),
            state_timeline("Node process status",
                           target(f"max by (service) (enclave_service_up{node_services})", "{{service}}"),
                           "Whether each node's process is up (supervisor state).",
                           mappings=UP_DOWN, w=12, h=8),
            timeseries("Peers connected", [
                target(f"max by (job) (enclave_node_peers_connected{N})", "{{job}} connected"),
                target(f"max by (job) (enclave_node_peers_expected{N})", "{{job}} expected")],
                "none", "Other oracles each node is connected to, and how many are configured. "
                "An oracle needs 2f of them to be ready. Alert OraclePeersMissing.", h=8),
            row("Resources"),
            timeseries("CPU per node", target(f"max by (service) (enclave_service_cpu_usage_cores{node_services})",
                                              "{{service}}"),
                       "percentunit", "CPU of each node process; 100% = one core."),
            timeseries("Memory per node",
                       target(f"max by (service) (enclave_service_resident_memory_bytes{node_services})",
                              "{{service}}"),
                       "bytes", "Memory (PSS) of each node process."),
            row("Rounds"),
            timeseries("Rounds started", target(f"sum by (job) (rate(enclave_node_rounds_started_total{N}[{RI}]))", "{{job}}"),
                       "ops", "Rounds per second each oracle was asked to observe (all feeds).", w=8),
            timeseries("Reports finalized",
                       target(f"sum by (job) (rate(enclave_node_reports_finalized_total{N}[{RI}])) * 60", "{{job}}"),
                       "opm", "Finalized reports per minute stored by each oracle.", w=8),
            timeseries("Observation failures",
                       target(f"sum by (job, reason) (rate(enclave_node_observations_failed_total{N}[{RI}]))",
                              "{{job}} {{reason}}"),
                       "ops", "Rounds per second without an observation from this oracle, by reason "
                       "(aggregator_unreachable, aggregator_error, price_unavailable, "
                       "malformed_answer, out_of_range). Empty while every feed has a price.", w=8),
            timeseries("Observation latency p95",
                       target("histogram_quantile(0.95, sum by (le, job) (rate("
                              f"enclave_node_observation_latency_seconds_bucket{N}[{RI}])))", "{{job}}"),
                       "s", "95th percentile of the batch requests each oracle makes to the "
                       "aggregator.", w=8),
            timeseries("Round duration p95",
                       target("histogram_quantile(0.95, sum by (le, job) (rate("
                              f"enclave_node_round_duration_seconds_bucket{N}[15m])))", "{{job}}"),
                       "s", "95th percentile, over 15 minutes, of OBSERVE-REQ to finalized report "
                       "(rounds that produced a report).", w=8),
            timeseries("Leader changes",
                       target(f"sum by (job) (increase(enclave_node_leader_changes_total{N}[{RI}]))", "{{job}}"),
                       "none", "Epoch changes per interval (each brings a new leader), all feeds. "
                       "Steady changes beyond rMax rounds mean a leader that makes no progress.",
                       w=8, bars=True),
            row("Oracle participation"),
            timeseries("Health score by oracle",
                       target(f"avg by (oracle) (enclave_node_oracle_health_score{N})", "node-{{oracle}}"),
                       "percentunit", "Per oracle, as seen by the selected nodes: moving average of "
                       "'observed and within 1% of the median'.", w=8, maximum=1),
            timeseries("Distance from the median",
                       target(f"max by (oracle) (enclave_node_oracle_deviation_ppb{N}) / 1e9", "node-{{oracle}}"),
                       "percentunit", "How far each oracle's latest included observation was from the "
                       "report's median.", w=8),
            timeseries("Participation",
                       target(f"sum by (oracle) (rate(enclave_node_oracle_observations_included_total{N}[{RI}])) "
                              f"/ scalar(sum(rate(enclave_node_report_requests_total{N}[{RI}])))",
                              "node-{{oracle}}"),
                       "percentunit", "Share of report requests that included each oracle's "
                       "observation.", w=8),
            timeseries("Messages rejected",
                       target(f"sum by (job, oracle, kind) (rate(enclave_node_messages_rejected_total{N}[{RI}]))",
                              "{{job}} from node-{{oracle}}: {{kind}}"),
                       "ops", "Protocol messages that failed a check, by receiving node, sender and "
                       "kind. May be empty: only when an oracle misbehaves or runs another "
                       "configuration.", w=12),
            timeseries("Signing refused",
                       target(f"sum by (job, reason) (increase(enclave_node_signing_refused_total{N}[{RI}]))",
                              "{{job}} {{reason}}"),
                       "none", "Reports an oracle refused to sign: conflict (asked to sign a second "
                       "report for an epoch and round, i.e. equivocation), store_error, "
                       "signing_failed. May be empty: only after such an event.", w=12, bars=True),
            row("P2P"),
            timeseries("P2P traffic", [
                target(f"sum by (job) (rate(enclave_node_p2p_bytes_sent_total{N}[{RI}]))", "{{job}} sent"),
                target(f"sum by (job) (rate(enclave_node_p2p_bytes_received_total{N}[{RI}]))", "{{job}} received")],
                "Bps", "Bytes per second inside TLS, by node."),
            timeseries("Messages dropped", [
                target(f"sum by (job) (rate(enclave_node_p2p_frames_dropped_total{N}[{RI}]))", "{{job}} outgoing"),
                target(f"sum by (job) (rate(enclave_node_p2p_inbound_dropped_total{N}[{RI}]))", "{{job}} inbound")],
                "ops", "Outgoing messages dropped (peer not connected, queue full) and received "
                "messages not delivered."),
            timeseries("Connections", [
                target(f"sum by (job) (increase(enclave_node_p2p_dials_total{N}[{RI}]))", "{{job}} dials"),
                target(f"sum by (job) (increase(enclave_node_p2p_connects_total{N}[{RI}]))", "{{job}} connects"),
                target(f"sum by (job) (increase(enclave_node_p2p_disconnects_total{N}[{RI}]))", "{{job}} disconnects")],
                "none", "Outgoing dial attempts, connections established and ended, per interval. "
                "Many dials with few connects: a peer is down or unreachable."),
            timeseries("Handshake and protocol errors", [
                target(f"sum by (job) (increase(enclave_node_p2p_handshake_refusals_total{N}[{RI}]))", "{{job}} refused"),
                target(f"sum by (job) (increase(enclave_node_p2p_handshake_failures_total{N}[{RI}]))", "{{job}} failed"),
                target(f"sum by (job) (increase(enclave_node_p2p_protocol_errors_total{N}[{RI}]))", "{{job}} protocol errors"),
                target(f"sum by (job) (increase(enclave_node_p2p_oversize_frames_total{N}[{RI}]))", "{{job}} oversize"),
                target(f"sum by (job) (increase(enclave_node_p2p_invalid_announcements_total{N}[{RI}]))",
                       "{{job}} invalid announcements")],
                "none", "Refused TLS handshakes (a key outside the configured set), other "
                "handshake failures, framing errors, oversize messages and invalid announcements "
                "per interval."),
            row("Database"),
            stat("PostgreSQL", f"max(enclave_postgres_up{F})", "none",
                 "Whether the exporter reaches the embedded PostgreSQL.", mappings=UP_DOWN, h=8),
            stat("Connections used",
                 f"sum(enclave_postgres_connections{F}) / max(enclave_postgres_max_connections{F})",
                 "percentunit", "Connections in use out of max_connections. Alert "
                 "PostgresConnectionsNearLimit above 80%.",
                 steps=thresholds("green", (0.6, "orange"), (0.8, "red")), h=8),
            timeseries("Connections by database",
                       target(f"max by (database) (enclave_postgres_connections{F})", "{{database}}"),
                       "none", "Connections per database (node i uses <pgDatabase>_<i>).", w=8),
            timeseries("Database size",
                       target(f"max by (database) (enclave_postgres_database_size_bytes{F})", "{{database}}"),
                       "bytes", "Size of each database.", w=8),
            timeseries("Transactions", [
                target(f"sum by (database) (rate(enclave_postgres_transactions_committed_total{F}[{RI}]))",
                       "{{database}} commits"),
                target(f"sum by (database) (rate(enclave_postgres_transactions_rolled_back_total{F}[{RI}]))",
                       "{{database}} rollbacks")],
                "ops", "Transactions committed and rolled back per second.", w=8),
            timeseries("Node store errors",
                       target(f"sum by (job, operation) (increase(enclave_node_store_errors_total{N}[{RI}]))",
                              "{{job}} {{operation}}"),
                       "none", "Database operations of the nodes that failed. May be empty: only "
                       "after a failure. Alert NodeDatabaseErrors.", w=8, bars=True),
            timeseries("Deadlocks and checksum failures", [
                target(f"sum by (database) (increase(enclave_postgres_deadlocks_total{F}[{RI}]))",
                       "{{database}} deadlocks"),
                target(f"sum by (database) (increase(enclave_postgres_checksum_failures_total{F}[{RI}]))",
                       "{{database}} checksum failures")],
                "none", "Per interval. A checksum failure is storage corruption (alert "
                "PostgresChecksumFailures).", w=8, bars=True),
        ], [query_variable("node", "Node",
                           'label_values(enclave_node_peers_expected{instance=~"$instance"}, job)',
                           "Consensus nodes (node-1 is the bootstrap).")])


def feeds():
    D = sel(I, 'feed=~"$feed"')
    finalized = f"sum by (feed) (rate(enclave_node_rounds_finalized_total{D}[{RI}]))"
    skipped = f"sum by (feed) (rate(enclave_node_rounds_skipped_total{D}[{RI}]))"
    started = f"sum by (feed) (rate(enclave_node_rounds_started_total{D}[{RI}]))"
    return dashboard(
        "enclave-feeds", "Enclave / Data feeds",
        "The price feeds: latest answers, update frequency, consensus and (with the chain) "
        "transmission.", [
            row("Feeds"),
            table("Feeds", [
                (None, f"max by (feed) (enclave_node_rounds_started_total{D})", None),
                ("Answer", f"max by (feed) (enclave_node_latest_answer{D})", "none"),
                ("Report age", f"time() - max by (feed) (enclave_node_latest_report_timestamp_seconds{D})", "s"),
                ("Reports in range", f"round(max by (feed) (increase(enclave_node_rounds_finalized_total{D}[$__range])))", "none"),
                ("Epoch", f"max by (feed) (enclave_node_epoch{D})", "none")],
                "Every feed the oracles run: latest finalized answer, its age, reports in the "
                "time range and current epoch. A feed without an answer has not reported since "
                "its nodes started.", w=24, h=7, sort=("feed", False)),
            timeseries("Latest answer", target(f"max by (feed) (enclave_node_latest_answer{D})", "{{feed}}"),
                       "none", "Latest finalized answer of each feed (price × 10^decimals / "
                       "10^decimals).", minimum=None),
            timeseries("Time since last report",
                       target(f"time() - max by (feed) (enclave_node_latest_report_timestamp_seconds{D})", "{{feed}}"),
                       "s", "Seconds since each feed's newest finalized report. The dashed line is "
                       "the default heartbeat threshold of alert FeedNotUpdated (25 h).",
                       threshold_line=90000),
            row("Update frequency"),
            timeseries("Reports in the last hour",
                       target(f"max by (feed) (increase(enclave_node_rounds_finalized_total{D}[1h]))", "{{feed}}"),
                       "none", "Price updates: finalized reports of each feed over the preceding "
                       "hour (deviation reports plus heartbeats)."),
            timeseries("Report decisions",
                       target(f"sum by (reason) (increase(enclave_node_report_decisions_total{F}[{RI}]))", "{{reason}}"),
                       "none", "Rounds the oracles signed a report for, by why: initial (first under "
                       "this configuration), deviation (moved by alphaPPB), heartbeat, "
                       "state_unavailable. All feeds.", bars=True),
            row("Consensus"),
            timeseries("Consensus success ratio",
                       target(f"clamp_max((({finalized} or {started} * 0) + ({skipped} or {started} * 0)) / {started}, 1)",
                              "{{feed}}"),
                       "percentunit", "Share of rounds that reached a decision (a finalized report, or "
                       "agreement that none is due). Rounds lost to timeouts, missing observations "
                       "or epoch changes lower it.", maximum=1),
            timeseries("Round outcomes", [
                target(f"avg(sum by (job) (rate(enclave_node_rounds_started_total{D}[{RI}])))", "started"),
                target(f"avg(sum by (job) (rate(enclave_node_rounds_finalized_total{D}[{RI}])))", "finalized"),
                target(f"avg(sum by (job) (rate(enclave_node_rounds_skipped_total{D}[{RI}])))", "skipped")],
                "ops", "Rounds per second per oracle (average over oracles), selected feeds."),
            timeseries("Round duration",
                       [target("histogram_quantile(0.5, sum by (le) (rate("
                               f"enclave_node_round_duration_seconds_bucket{F}[15m])))", "p50"),
                        target("histogram_quantile(0.95, sum by (le) (rate("
                               f"enclave_node_round_duration_seconds_bucket{F}[15m])))", "p95")],
                       "s", "OBSERVE-REQ to finalized report over 15 minutes, all feeds and "
                       "oracles. Latency of a price update before transmission."),
            timeseries("Epoch changes",
                       target(f"max by (feed) (increase(enclave_node_leader_changes_total{D}[{RI}]))", "{{feed}}"),
                       "none", "Epoch (leader) changes per interval by feed. Every rMax rounds is "
                       "normal; more means leaders that make no progress.", bars=True),
            row("Chain"),
            timeseries("Contract answer age",
                       target(f"max by (feed) (enclave_chain_contract_answer_age_seconds{D})", "{{feed}}"),
                       "s", "Age of each feed contract's latest answer when the oracles last read "
                       "it: what consumers of the contract see. Empty while chain.enabled is false.", threshold_line=90000),
            timeseries("Transmissions",
                       target(f"sum by (outcome) (increase(enclave_node_transmissions_total{F}[{RI}]))", "{{outcome}}"),
                       "none", "Finalized reports handled by the oracles' transmitters: landed, "
                       "stale (another oracle was first), reverted, error, or why none was sent "
                       "(already_on_chain, not_scheduled, out_of_bounds, …). All feeds. Empty while chain.enabled is "
                       "false.", bars=True),
            timeseries("Transmitter balances",
                       target(f"max by (node) (enclave_chain_transmitter_balance_wei{F}) / 1e18", "node {{node}}"),
                       "none", "Balance of each oracle's transmitter in the chain's native token, read "
                       "by node 1. The dashed line is the default faucetMinWei (alert "
                       "TransmitterBalanceLow). Empty while chain.enabled is false.",
                       threshold_line=0.00002),
            timeseries("Contract LINK",
                       [target(f"max by (feed) (enclave_chain_contract_link_available_juels{D}) / 1e18", "{{feed}} available"),
                        target(f"max by (feed) (enclave_chain_contract_link_balance_juels{D}) / 1e18", "{{feed}} balance")],
                       "none", "LINK of each feed's contract, read by node 1: its balance, and what is "
                       "available after everything it owes the oracles (linkAvailableForPayment; "
                       "below 0 it cannot pay them all: alert ContractCannotPayOracles). May be "
                       "empty: only contracts with LINK billing have it (not the Vyper test model).",
                       minimum=None),
            timeseries("Owed to the oracles",
                       target(f"max by (feed, node) (enclave_chain_oracle_owed_payment_juels{D}) / 1e18",
                              "{{feed}} node {{node}}"),
                       "none", "LINK each feed's contract owes each oracle (observation rewards and "
                       "gas reimbursements, owedPayment), until its payee withdraws it. May be "
                       "empty: only contracts with LINK billing have it."),
            timeseries("Transactions",
                       [target(f"sum by (outcome) (increase(enclave_chain_transactions_total{F}[{RI}]))", "{{outcome}}"),
                        target(f"sum(increase(enclave_node_transmit_gas_used_total{F}[{RI}])) / 1e6", "gas used (millions)")],
                       "none", "Transactions of the enclave (transmits, top-ups, contract "
                       "configurations) by outcome: sent, landed, reverted, replaced (fee bump), "
                       "dropped; and the gas the transmits used. Empty while chain.enabled is false.", bars=True),
            timeseries("RPC latency",
                       target("histogram_quantile(0.95, sum by (le, method) (rate("
                              f"enclave_chain_rpc_duration_seconds_bucket{F}[{RI}])))", "{{method}} p95"),
                       "s", "95th percentile of JSON-RPC request latency by method. Empty while "
                       "chain.enabled is false."),
            timeseries("RPC errors",
                       target(f"sum by (method, outcome) (rate(enclave_chain_rpc_requests_total{sel(I, m('outcome', '!=', 'ok'))}[{RI}]))",
                              "{{method}}: {{outcome}}"),
                       "reqps", "JSON-RPC requests that failed, by method and error kind (timeout, "
                       "http, rpc, …). May be empty: nothing failed, or no chain."),
        ], [query_variable("feed", "Feed",
                           'label_values(enclave_node_rounds_started_total{instance=~"$instance"}, feed)',
                           "Price feeds of the configuration.")])


DASHBOARDS = {
    "overview.json": overview,
    "price-aggregator.json": aggregator,
    "processes.json": processes,
    "oracle-nodes.json": nodes,
    "data-feeds.json": feeds,
}


def render(build):
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main():
    check = "--check" in sys.argv[1:]
    OUT.mkdir(parents=True, exist_ok=True)
    stale = []
    for name, build in DASHBOARDS.items():
        path = OUT / name
        text_ = render(build)
        if check:
            if not path.exists() or path.read_text() != text_:
                stale.append(name)
        else:
            path.write_text(text_)
            print(f"wrote {path}")
    if stale:
        print(f"out of date (run scripts/build-dashboards.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
