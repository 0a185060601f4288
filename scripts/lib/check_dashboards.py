#!/usr/bin/env python3
"""Evaluates every dashboard panel query (and the alert rules) against a real Prometheus fed by a
real local enclave. Run it through scripts/check-dashboards.sh, which installs and builds first.

What runs, all on 127.0.0.1 with free ports under one temporary directory:
  - a fake Binance (REST + WebSocket stream) and a failing OKX (scripts/lib/fake_exchange.py);
  - prometheus-pushgateway, and the Debian `prometheus` scraping it every second with
    honor_labels (the production path: every component pushes, nothing is scraped directly)
    and loading enclave/prometheus/alerts.yml;
  - `target/release/enclave init --services s6-rc.d` with a configuration signed by the development
    key: 5 nodes on chain 1337 with fast consensus, pushes to the Pushgateway every 2 s, feeds
    BTC-USD (binance + okx legs), ETH-USD (binance) and SOL-USD (okx only: it never reports, so the
    failure panels and alerts have something to show), and a second push target, a
    VictoriaMetrics that is down; once the first reports are in, node-5 is killed with SIGKILL
    (the supervisor restarts it);
  - the EVM dev chain (scripts/devchain) with one OCR1 aggregator per feed, which node 1
    configures (chain.configureContracts) and whose transmitters its faucet funds, so the chain
    panels show real transmissions, balances, transactions and RPC latency.

Then every panel target's expression, with the dashboard variables substituted ($instance and the
other query variables -> `.*`, $__rate_interval -> 1m, $__interval -> 15s, $__range -> 5m), is
sent to /api/v1/query. An error fails the check; an empty result fails it unless the panel's
description says "may be empty". Every template variable's query must return values. Every
alert rule must evaluate without error, the alerts this scenario provokes on purpose must be
pending or firing, and no other alert may be.
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the repository
sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_exchange import FakeExchange  # noqa: E402
from localnet import (  # noqa: E402
    dev_chain_solution, free_port, free_range, http_get, prometheus_config, stop)

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = REPO / "enclave" / "grafana" / "dashboards"
RULES = REPO / "enclave" / "prometheus" / "alerts.yml"
BIN = REPO / "target" / "release" / "enclave"
DEV_KEY = REPO / "scripts" / "dev-keys" / "INSECURE-DEV-ONLY.configuration.key"
DEV_PUB = REPO / "scripts" / "dev-keys" / "configuration.pub"
INSTANCE = "check-dashboards"
TOTAL_NODES = 5

# Alerts this scenario provokes on purpose (OKX always answers 503; SOL-USD has only OKX), as
# (alertname, label that must match). They must be pending or firing at the end; any other
# pending or firing alert fails the check.
EXPECTED_ALERTS = [
    ("TelemetryPushFailing", {"target": "1:victoriametrics"}),  # the VictoriaMetrics that is down
    ("PriceSourceDown", {"source": "okx"}),
    ("WebSocketFlapping", {"source": "okx"}),
    ("AggregatorCacheHitRatioLow", {"job": "price-aggregator"}),  # OKX misses every time
    ("ConsensusStalled", {"feed": "SOL-USD"}),
    ("FeedNotUpdated", {"feed": "SOL-USD"}),
]

BUILTINS = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__interval_ms": "15000",
    "__range": "5m",
    "__range_s": "300",
    "__range_ms": "300000",
}


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def wait_until(timeout, what, condition, interval=0.5):
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Prometheus:
    def __init__(self, base):
        self.base = base

    def api(self, path, **params):
        url = f"{self.base}{path}?{urllib.parse.urlencode(params, doseq=True)}"
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            try:
                return json.load(e)
            except ValueError:
                return {"status": "error", "errorType": str(e.code), "error": e.reason}

    def query(self, expr):
        return self.api("/api/v1/query", query=expr)

    def has(self, expr):
        r = self.query(expr)
        return r.get("status") == "success" and bool(r["data"]["result"])


class Run:
    """Everything started, stopped in reverse order whatever happens."""

    def __init__(self, keep):
        self.dir = Path(tempfile.mkdtemp(prefix="check-dashboards-"))
        # PostgreSQL drops to the `postgres` account: it must be able to traverse the root.
        os.chmod(self.dir, 0o755)
        self.keep = keep
        self.procs = []  # (name, Popen, stop signal, grace seconds)
        self.exchange = None
        self.chain_process = None

    def spawn(self, name, args, stop_signal=signal.SIGTERM, grace=10, env=None):
        out = open(self.dir / f"{name}.log", "wb")
        p = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             process_group=0, env=env)
        self.procs.append((name, p, stop_signal, grace))
        return p

    def close(self):
        for name, p, sig, grace in reversed(self.procs):
            stop(name, p, sig, grace, log)
        if self.exchange:
            self.exchange.stop()
        if self.chain_process:
            self.chain_process.stdin.close()  # --exit-on-stdin-eof
            try:
                self.chain_process.wait(10)
            except subprocess.TimeoutExpired:
                self.chain_process.kill()
                self.chain_process.wait()
        if self.keep:
            log(f"kept {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def start_chain(run):
    """The EVM dev chain (scripts/devchain, installed by scripts/devchain/ensure.sh) with one OCR1
    aggregator contract per feed: the enclave configures them itself (chain.configureContracts),
    its faucet funds the transmitters, and the chain panels get real transactions."""
    python = REPO / ".local" / "devchain-venv" / "bin" / "python"
    process = subprocess.Popen(
        [python, REPO / "scripts" / "devchain" / "devchain.py", "--port", "0", "--exit-on-stdin-eof"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=open(run.dir / "devchain.log", "w"), text=True)
    run.chain_process = process
    ready = json.loads(process.stdout.readline() or "null")
    if not ready:
        raise RuntimeError(f"the dev chain did not start; see {run.dir}/devchain.log")

    def rpc(method, params):
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
        request = urllib.request.Request(ready["rpc"], body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    contracts = {
        feed: rpc("dev_deployAggregator", [{"decimals": 8, "description": feed.replace("-", " / "),
                                            "minAnswer": "1", "maxAnswer": str(10 ** 18)}])
        for feed in ("BTC-USD", "ETH-USD", "SOL-USD")
    }
    log(f"dev chain at {ready['rpc']}, contracts {contracts}")
    return {"rpc": ready["rpc"], "owner": ready["owner"]["privateKey"],
            "faucet": ready["accounts"][0]["privateKey"], "contracts": contracts}


def configuration(run, exchange, pushgateway, ports, chain):
    s = dev_chain_solution(REPO, INSTANCE, TOTAL_NODES, ports["pg"], chain)
    s.update({
        "ports": {"supervisor": ports["supervisor"], "processMetrics": ports["process_metrics"],
                  "nodeApiBase": ports["api_base"], "nodeP2pBase": ports["p2p_base"]},
        "consensus": {"deltaProgressMs": 3000, "deltaResendMs": 1000, "deltaRoundMs": 1000,
                      "deltaGraceMs": 200, "deltaStageMs": 1000, "rMax": 3},
        "telemetry": {"instance": INSTANCE, "targets": [
            {"url": pushgateway, "intervalMs": 2000, "timeoutMs": 1000,
             "groupingLabels": {"environment": "check"}},
            # A VictoriaMetrics that is down: failed pushes, a backlog, and with a 20 s buffer
            # dropped samples, so the telemetry panels and TelemetryPushFailing have data.
            {"url": f"http://127.0.0.1:{ports['dead_vm']}/api/v1/import/prometheus",
             "intervalMs": 2000, "timeoutMs": 500, "bufferMs": 20000}]},
    })

    def feed(name, address, legs):
        return {"name": name, "decimals": 8, "contractAddress": address, "alphaPPB": 5000000,
                "heartbeatMs": 60000,
                "legs": [{"source": src, "base": b, "quote": q} for src, b, q in legs]}

    c = chain["contracts"]
    s["feeds"] = [
        feed("BTC-USD", c["BTC-USD"], [("binance", "BTC", "USDT"), ("okx", "BTC", "USDT")]),
        feed("ETH-USD", c["ETH-USD"], [("binance", "ETH", "USDT")]),
        feed("SOL-USD", c["SOL-USD"], [("okx", "SOL", "USDT")]),
    ]
    s["priceAggregatorConfig"] = {
        "port": ports["aggregator"],
        "sources": {
            "binance": {"baseUrl": exchange.rest_base, "rps": None, "ttl": 2000, "refetch": True,
                        "maxBatchSize": 100,
                        "stream": {"wsUrl": exchange.ws_url, "reconnectInterval": 1000,
                                   "heartbeatInterval": 5000, "rateLimit": 10}},
            # OKX streams by default: point it at the fake too, where it fails like the REST API.
            "okx": {"baseUrl": exchange.rest_base + "/okx", "rps": None, "ttl": 2000,
                    "refetch": True, "maxRetries": 0, "timeoutMs": 2000,
                    "stream": {"wsUrl": exchange.rest_base.replace("http", "ws") + "/okx/ws",
                               "reconnectInterval": 1000, "maxReconnectAttempts": 0}},
        },
        "refetch": {"enabled": True, "failedPairsRetry": {"enabled": True, "retryDelay": 2000,
                                                          "checkInterval": 5000}},
    }
    root = run.dir / "root"
    (root / "etc/enclave").mkdir(parents=True)
    (root / "sp/configurations").mkdir(parents=True)
    shutil.copy(DEV_PUB, root / "etc/enclave/configuration.pub")
    path = root / "sp/configurations/configuration.json"
    path.write_text(json.dumps({"solution": s}, indent=2))
    subprocess.run([BIN, "config", "sign", "--key", DEV_KEY, path], check=True,
                   stdout=subprocess.DEVNULL)
    return root


def start(run, settle):
    run.exchange = exchange = FakeExchange({"BTCUSDT": 67123.45, "ETHUSDT": 3456.78})
    chain = start_chain(run)
    pg_port, prom_port = free_port(), free_port()
    run.spawn("pushgateway", ["prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{pg_port}",
                              "--persistence.file="])
    config = prometheus_config(run.dir, pg_port, "1s", RULES)
    run.spawn("prometheus", ["prometheus", f"--config.file={config}",
                             f"--web.listen-address=127.0.0.1:{prom_port}",
                             f"--storage.tsdb.path={run.dir / 'tsdb'}"])
    pushgateway = f"http://127.0.0.1:{pg_port}"
    prom = Prometheus(f"http://127.0.0.1:{prom_port}")
    wait_until(30, "the Pushgateway", lambda: http_get(pushgateway + "/-/ready")[0] == 200)
    wait_until(30, "Prometheus", lambda: http_get(prom.base + "/-/ready")[0] == 200)

    ports = {"pg": free_port(), "supervisor": free_port(), "process_metrics": free_port(),
             "aggregator": free_port(), "api_base": free_range(TOTAL_NODES),
             "p2p_base": free_range(TOTAL_NODES), "dead_vm": free_port()}
    root = configuration(run, exchange, pushgateway, ports, chain)
    env = {k: v for k, v in os.environ.items() if k not in ("CONFIGURATION_PATH", "ENCLAVE_ROOT")}
    env["RUST_LOG"] = "info"
    started = time.monotonic()
    init = run.spawn("enclave", [BIN, "--root", root, "init", "--services", REPO / "s6-rc.d"],
                     grace=60, env=env)
    log(f"enclave root {root}, logs {run.dir}/enclave.log, Prometheus {prom.base}")

    def healthy():
        if init.poll() is not None:
            raise RuntimeError(f"enclave init exited {init.returncode}; see {run.dir}/enclave.log")
        return http_get(f"http://127.0.0.1:{ports['supervisor']}/healthz")[0] == 200

    wait_until(180, "every service up (supervisor /healthz)", healthy)
    log(f"all services up after {time.monotonic() - started:.0f}s")
    for feed in ("BTC-USD", "ETH-USD"):
        wait_until(120, f"a finalized {feed} report on node 2", lambda: http_get(
            f"http://127.0.0.1:{ports['api_base'] + 2}/v1/feeds/{feed}/latest")[0] == 200)
    log(f"first reports after {time.monotonic() - started:.0f}s")
    # A crash: the supervisor restarts the node, so the restart panels have data.
    victim = f"node-{TOTAL_NODES}"
    pid = int((root / "run/service" / victim / "pid").read_text())
    os.kill(pid, signal.SIGKILL)
    log(f"killed {victim} (pid {pid}) with SIGKILL")
    wait_until(60, f"{victim} restarted", lambda: prom.has(
        f'enclave_service_restarts_total{{service="{victim}"}} == 1') and healthy())
    wait_until(120, "every oracle's report in Prometheus", lambda: len(prom.query(
        'enclave_node_latest_report_timestamp_seconds{feed="ETH-USD"}')
        .get("data", {}).get("result", [])) == TOTAL_NODES - 1)
    wait_until(120, "a WebSocket reconnect", lambda: prom.has(
        "enclave_aggregator_stream_reconnects_total > 0"))
    remaining = settle - (time.monotonic() - started)
    if remaining > 0:
        log(f"letting the enclave run {remaining:.0f}s more (rate windows, alert rules)")
        time.sleep(remaining)
    healthy()
    return prom, time.monotonic() - started


# ----------------------------------------------------------------------------------------------
# Dashboards


def panels(items):
    for p in items:
        yield p
        yield from panels(p.get("panels", []))


def variables(dashboard):
    values = dict(BUILTINS)
    for v in dashboard.get("templating", {}).get("list", []):
        if v["type"] in ("query", "custom", "textbox"):
            values[v["name"]] = ".*"
        elif v["type"] in ("interval", "constant"):
            current = v.get("current", {}).get("value") or v.get("query", "").split(",")[0]
            values[v["name"]] = current
    return values


def substitute(expr, values):
    def repl(m):
        name = m.group(1) or m.group(2) or m.group(3)
        return values.get(name, m.group(0))

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)", repl, expr)


def allowed_empty(panel):
    return "may be empty" in panel.get("description", "").lower()


def check_variable(prom, v, values):
    query = v.get("query")
    if isinstance(query, dict):
        query = query.get("query", "")
    query = substitute(query, values)
    m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\)\s*", query, re.S)
    if m:
        r = prom.api("/api/v1/series", **{"match[]": m.group(1)})
        if r.get("status") != "success":
            return "ERROR", r.get("error", "")
        found = sorted({s[m.group(2)] for s in r["data"] if m.group(2) in s})
        return ("ok", f"{len(found)} values: {', '.join(found[:6])}") if found else ("EMPTY", "")
    m = re.fullmatch(r"\s*label_values\((\w+)\)\s*", query)
    if m:
        r = prom.api(f"/api/v1/label/{m.group(1)}/values")
        found = r.get("data", [])
        return ("ok", f"{len(found)} values") if found else ("EMPTY", "")
    return "ERROR", f"unsupported variable query {query!r}"


def check_dashboards(prom):
    failures, allowed, nans = [], [], []
    total = 0
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text())
        values = variables(dashboard)
        print(f"\n== {path.name}: {dashboard['title']}")
        for v in dashboard.get("templating", {}).get("list", []):
            if v["type"] != "query":
                continue
            status, detail = check_variable(prom, v, values)
            print(f"  {status:<6} variable ${v['name']}: {detail}")
            if status != "ok":
                failures.append(f"{path.name}: variable ${v['name']}: {status} {detail}")
        for panel in panels(dashboard.get("panels", [])):
            for target in panel.get("targets", []):
                expr = target.get("expr")
                if not expr:
                    continue
                total += 1
                query = substitute(expr, values)
                name = f"{path.name}: {panel['title']} [{target.get('refId', '?')}]"
                r = prom.query(query)
                if r.get("status") != "success":
                    status, detail = "ERROR", f"{r.get('errorType')}: {r.get('error')}"
                elif not r["data"]["result"]:
                    status, detail = ("empty", "allowed: " + panel["description"]) \
                        if allowed_empty(panel) else ("EMPTY", "")
                else:
                    result = r["data"]["result"]
                    samples = [x["value"][1] for x in result] if r["data"]["resultType"] == "vector" \
                        else [result[1]]
                    status, detail = "ok", f"{len(samples)} series, e.g. {samples[0]}"
                    if all(v.lower() == "nan" for v in samples):
                        status, detail = "nan", f"{len(samples)} series, every value NaN"
                        nans.append(name)
                print(f"  {status:<6} {panel['title']} [{target.get('refId', '?')}] {detail}")
                if status in ("ERROR", "EMPTY"):
                    failures.append(f"{name}: {status} {detail}\n      {query}")
                elif status == "empty":
                    allowed.append(name)
    if nans:
        print(f"\nnote: {len(nans)} queries returned only NaN (a ratio of nothing to nothing in "
              "this short run):\n  - " + "\n  - ".join(nans))
    return total, failures, allowed


def check_rules(prom):
    failures = []
    r = prom.api("/api/v1/rules")
    rules = [rule for g in r["data"]["groups"] for rule in g["rules"]]
    if not rules:
        failures.append("no alert rules loaded")
    for rule in rules:
        if rule.get("health") != "ok":
            failures.append(f"rule {rule['name']}: health {rule.get('health')}: {rule.get('lastError')}")
    active = []
    for rule in rules:
        for a in rule.get("alerts", []):
            active.append((a["labels"]["alertname"], a["labels"], a["state"]))
    print(f"\n== alert rules: {len(rules)} loaded, {sum(r.get('health') == 'ok' for r in rules)} healthy")
    for name, labels, state in sorted(active, key=lambda a: a[0]):
        extra = {k: v for k, v in labels.items() if k in ("feed", "source", "service", "job")}
        print(f"  {state:<8} {name} {extra}")
    for name, want in EXPECTED_ALERTS:
        if not any(n == name and all(l.get(k) == v for k, v in want.items()) for n, l, _ in active):
            failures.append(f"alert {name} {want} should be pending or firing in this scenario")
    for name, labels, state in active:
        if not any(n == name and all(labels.get(k) == v for k, v in want.items())
                   for n, want in EXPECTED_ALERTS):
            failures.append(f"unexpected {state} alert {name} {labels}")
    return failures


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--settle", type=float, default=100,
                    help="minimum seconds from the enclave's start to the checks (default 100)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--hold", action="store_true",
                    help="after the checks, keep everything running until Ctrl-C (exploration)")
    ap.add_argument("--prometheus", metavar="URL",
                    help="check the panels against this Prometheus (or VictoriaMetrics) instead of "
                         "starting an enclave; no alert checks")
    args = ap.parse_args()
    started = time.monotonic()
    if args.prometheus:
        total, failures, allowed = check_dashboards(Prometheus(args.prometheus.rstrip("/")))
        return report(total, failures, allowed, "against " + args.prometheus)
    run = Run(args.keep)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    try:
        prom, ran = start(run, args.settle)
        total, failures, allowed = check_dashboards(prom)
        failures += check_rules(prom)
        if args.hold:
            log(f"holding; Prometheus at {prom.base}; Ctrl-C stops")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    except (TimeoutError, RuntimeError, OSError, subprocess.CalledProcessError) as e:
        run.keep = True  # the logs say why
        log(f"FAILED: {e}")
        return 1
    finally:
        run.close()
    return report(total, failures, allowed, f"against a live enclave (enclave ran {ran:.0f}s; "
                  f"whole check {time.monotonic() - started:.0f}s)")


def report(total, failures, allowed, how):
    print(f"\n{total} panel queries checked {how}")
    if allowed:
        print(f"{len(allowed)} allowed empty (panel description says 'may be empty'):")
        for a in allowed:
            print(f"  - {a}")
    if failures:
        print(f"{len(failures)} FAILED:")
        for f in failures:
            print(f"  - {f}")
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
