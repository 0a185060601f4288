#!/usr/bin/env python3
"""The offline demo: the whole enclave against local stand-ins, reports landing on a local chain.
Run it through scripts/demo.sh, which installs what it needs and builds the binary first.

What runs, on 127.0.0.1 with free ports, under one fresh directory in /var/tmp (removed at the
end unless --keep):
  - five price sources in their exchanges' real formats (exchanges.py: binance, okx, kraken,
    coinbase with their WebSocket streams, kucoin over REST), prices on a random walk with an
    occasional 1-2 % jump; kucoin lies (8 % high) and is left out as an outlier;
  - the EVM dev chain (scripts/devchain) with one OCR1 aggregator contract per feed, which the
    enclave configures itself (chain.configureContracts) and whose transmitters its faucet funds;
  - where installed, a Pushgateway receiving every service's metrics and a Prometheus scraping
    it (with the alert rules of enclave/prometheus/alerts.yml);
  - a webhook receiver for the enclave's own alerts (alert_receiver.py, in this process): each
    firing and resolved notification becomes an `[alert] …` line of the demo's output, and its
    body a line of alerts.jsonl;
  - the enclave, through scripts/run-local.sh, with a configuration built by configuration.py
    and signed with the development key.

It prints what to look at, then one line per report that lands on the chain and one per alert
notification. Ctrl-C (SIGINT),
SIGTERM or SIGHUP stop everything it started, in order, and leave no process behind: each child
runs in its own process group, dies with the demo (PR_SET_PDEATHSIG) if the demo is killed, and
anything re-parented to the demo (it is a child subreaper) is stopped too.
"""

import argparse
import ctypes
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the repository
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
from localnet import free_port, free_range, http_get, prometheus_config, stop  # noqa: E402
import alert_receiver  # noqa: E402
import configuration  # noqa: E402
import onchain  # noqa: E402

# Everything the demo asks is on loopback: never through a proxy from the environment.
urllib.request.install_opener(urllib.request.build_opener(urllib.request.ProxyHandler({})))

REPO = Path(__file__).resolve().parents[2]
DEV_KEY = REPO / "scripts" / "dev-keys" / "INSECURE-DEV-ONLY.configuration.key"
DEVCHAIN_PYTHON = Path(os.environ.get("DEVCHAIN_VENV", REPO / ".local" / "devchain-venv")) / "bin" / "python"
RULES = REPO / "enclave" / "prometheus" / "alerts.yml"
# Every service up within this long after the enclave starts (PostgreSQL's first initdb included).
SERVICES_TIMEOUT = 180
# The promise: reports on the chain within a minute of the services being up.
REPORTS_TIMEOUT = 60

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
_libc = ctypes.CDLL(None, use_errno=True)


class Stop(Exception):
    """A stop signal arrived."""


class Failure(Exception):
    """Something the demo needs did not come up."""


# Re-entrant: a signal handler that says something may run while the main thread is saying.
_say_lock = threading.RLock()


def say(*args):
    """One line (or several) of the demo's output, whole: the alert receiver's thread says too."""
    text = " ".join(str(a) for a in args) + "\n"
    with _say_lock:
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except (OSError, ValueError, RuntimeError):
            # stdout gone (a closed pipe, a lost terminal), or a signal handler's line in the
            # middle of another: cleaning up matters more
            pass


def _child_setup():
    # The child dies with the demo even if the demo is killed outright (SIGKILL): the enclave
    # stops cleanly on SIGTERM, the others just exit.
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _children_of(pid):
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append((int(entry), fields[0]))
    return out


class Demo:
    def __init__(self, binary, keep, prefix="enclave-demo-"):
        self.binary = binary
        self.keep = keep
        # Under /var/tmp, not in the clone: the clone may sit in a 0700 home directory, and the
        # enclave runs PostgreSQL as the postgres account when started as root.
        self.dir = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
        if os.geteuid() == 0:
            os.chmod(self.dir, 0o711)  # searchable, not listable: postgres reaches root/sp
        self.root = self.dir / "root"
        self.procs = []  # (name, Popen, grace seconds), in start order
        self.receiver = None  # the alert receiver (a thread of this process)
        self.state = {"dir": str(self.dir), "root": str(self.root), "bin": str(binary)}
        if _libc.prctl(PR_SET_CHILD_SUBREAPER, 1) != 0:
            say("warning: cannot become a child subreaper; orphans of crashed children may remain")

    # -- processes ------------------------------------------------------------------------------

    def spawn(self, name, args, grace=10, env=None, stdin=subprocess.DEVNULL, stdout=None):
        log = open(self.dir / f"{name}.log", "ab")
        p = subprocess.Popen(args, stdin=stdin, stdout=stdout or log, stderr=log,
                             process_group=0, preexec_fn=_child_setup, env=env, cwd=REPO)
        log.close()
        self.procs.append((name, p, grace))
        return p

    def ready_line(self, name, p, timeout):
        """The JSON line a child prints on stdout when it is ready."""
        deadline = time.monotonic() + timeout
        fd = p.stdout.fileno()
        line = b""
        while b"\n" not in line:
            remaining = deadline - time.monotonic()
            if p.poll() is not None or remaining <= 0:
                raise Failure(f"{name} did not start; see {self.dir / (name + '.log')}")
            readable, _, _ = select.select([fd], [], [], min(remaining, 0.5))
            if readable:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise Failure(f"{name} exited; see {self.dir / (name + '.log')}")
                line += chunk
        return json.loads(line.split(b"\n", 1)[0])

    def alive(self, name):
        for n, p, _ in self.procs:
            if n == name:
                return p.poll() is None
        return False

    def close(self):
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, lambda *_: say("stopping; please wait"))
        for name, p, grace in reversed(self.procs):
            if p.poll() is None and p.stdin:
                p.stdin.close()
            stop(name, p, signal.SIGTERM, grace, say)
        self._stop_adopted()
        if self.receiver:
            self.receiver.stop()  # after the enclave: its last notifications are still taken
        if self.keep:
            say(f"kept {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _stop_adopted(self):
        """Processes re-parented to us (a child's orphans): SIGTERM, then SIGKILL; reaped."""
        deadline = time.monotonic() + 10
        sent_kill = False
        while True:
            adopted = _children_of(os.getpid())
            for pid, state in adopted:
                if state == "Z":
                    try:
                        os.waitpid(pid, os.WNOHANG)
                    except ChildProcessError:
                        pass
            living = [pid for pid, state in adopted if state != "Z"]
            if not living:
                return
            late = time.monotonic() > deadline
            for pid in living:
                try:
                    os.kill(pid, signal.SIGKILL if late else signal.SIGTERM)
                except ProcessLookupError:
                    pass
            if late:
                if sent_kill:
                    return
                sent_kill = True
            time.sleep(0.2)

    # -- the parts --------------------------------------------------------------------------------

    def start_exchanges(self, host="127.0.0.1"):
        """The price stand-ins, listening on `host` (scripts/don/don.py: a Docker network's
        gateway)."""
        p = self.spawn("exchanges", [sys.executable, REPO / "scripts/demo/exchanges.py",
                                     "--host", host, "--exit-on-stdin-eof"],
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        ready = self.ready_line("exchanges", p, 15)
        self.state["control"] = ready["control"]
        self.state["sources"] = ready["sources"]
        return ready

    def start_chain(self, host="127.0.0.1"):
        """The dev chain on `host` with one aggregator contract per feed."""
        if not DEVCHAIN_PYTHON.exists():
            raise Failure(f"the dev chain is not installed ({DEVCHAIN_PYTHON}): run "
                          "scripts/devchain/ensure.sh (scripts/demo.sh does)")
        p = self.spawn("devchain", [DEVCHAIN_PYTHON, REPO / "scripts/devchain/devchain.py",
                                    "--host", host, "--port", "0", "--exit-on-stdin-eof"],
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        ready = self.ready_line("devchain", p, 60)
        contracts = {}
        for feed in configuration.FEEDS:
            contracts[feed["name"]] = onchain.rpc(ready["rpc"], "dev_deployAggregator", [{
                "decimals": feed["decimals"], "description": feed["name"].replace("-", " / "),
                "minAnswer": "1", "maxAnswer": str(10 ** 30)}])
        self.state["rpc"] = ready["rpc"]
        self.state["feeds"] = [{"name": f["name"], "decimals": f["decimals"],
                                "contract": contracts[f["name"]]} for f in configuration.FEEDS]
        return {"rpc": ready["rpc"], "owner": ready["owner"]["privateKey"],
                "faucet": ready["accounts"][0]["privateKey"], "contracts": contracts}

    def start_metrics(self):
        """Pushgateway + Prometheus when installed: (pushgateway URL, Prometheus URL) or Nones."""
        gateway_bin = shutil.which("prometheus-pushgateway")
        prometheus_bin = shutil.which("prometheus")
        if not gateway_bin or not prometheus_bin:
            return None, None
        gateway_port, prometheus_port = free_port(), free_port()
        self.spawn("pushgateway", [gateway_bin, f"--web.listen-address=127.0.0.1:{gateway_port}",
                                   "--persistence.file="])
        config = prometheus_config(self.dir, gateway_port, "5s", RULES)
        self.spawn("prometheus", [prometheus_bin, f"--config.file={config}",
                                  f"--web.listen-address=127.0.0.1:{prometheus_port}",
                                  f"--storage.tsdb.path={self.dir / 'prometheus'}"])
        gateway = f"http://127.0.0.1:{gateway_port}"
        prometheus = f"http://127.0.0.1:{prometheus_port}"
        for name, url in (("pushgateway", gateway), ("prometheus", prometheus)):
            self.wait(30, name, lambda: http_get(url + "/-/ready")[0] == 200,
                      watch=name)
        self.state["pushgateway"], self.state["prometheus"] = gateway, prometheus
        return gateway, prometheus

    def start_alert_receiver(self):
        """The enclave's webhook channel: notifications become `[alert]` lines of our output."""
        log = self.dir / "alerts.jsonl"
        self.receiver = alert_receiver.Receiver(say, log).start()
        self.state["alerts"] = {"receiver": self.receiver.url, "log": str(log),
                                "source": configuration.ALERT_SOURCE,
                                "pegged": configuration.PEGGED}
        return self.receiver.url

    def start_enclave(self, chain, pushgateway, alerts_url):
        ports = {"pg": free_port(), "supervisor": free_port(), "process_metrics": free_port(),
                 "alerts": free_port(),
                 "aggregator": free_port(), "api_base": free_range(configuration.TOTAL_NODES),
                 "p2p_base": free_range(configuration.TOTAL_NODES)}
        while ports["p2p_base"] == ports["api_base"]:
            ports["p2p_base"] = free_range(configuration.TOTAL_NODES) + 10
        solution = configuration.solution(ports, self.state["sources"], chain, pushgateway,
                                          alerts_url)
        config = self.dir / "configuration.json"
        config.write_text(json.dumps({"solution": solution}, indent=2))
        signed = subprocess.run([self.binary, "config", "sign", "--key", DEV_KEY, config],
                                capture_output=True, text=True)
        if signed.returncode != 0:
            raise Failure(f"signing the configuration failed: {signed.stderr.strip()}")
        self.state["ports"] = ports
        # Offline by design: no inherited proxy may catch the stand-ins' loopback traffic.
        dropped = {"CONFIGURATION_PATH", "ENCLAVE_ROOT", "http_proxy", "https_proxy", "all_proxy",
                   "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"}
        env = {k: v for k, v in os.environ.items() if k not in dropped}
        env.update({"CONFIG": str(config), "ROOT": str(self.root), "ENCLAVE_BIN": str(self.binary),
                    "RUST_LOG": env.get("RUST_LOG", "info")})
        # enclave init stops its services in order on SIGTERM; give it time to.
        self.spawn("enclave", [REPO / "scripts/run-local.sh"], grace=60, env=env)
        return ports

    def wait(self, timeout, what, condition, watch="enclave"):
        deadline = time.monotonic() + timeout
        while not condition():
            if not self.alive(watch):
                raise Failure(f"{watch} stopped while waiting for {what}; see "
                              f"{self.dir / (watch + '.log')}")
            if time.monotonic() > deadline:
                raise Failure(f"no {what} within {timeout} s; see {self.dir / (watch + '.log')}")
            time.sleep(0.5)

    def write_state(self):
        path = self.dir / "demo.json"
        path.write_text(json.dumps(self.state, indent=2))
        return path

    # -- running ------------------------------------------------------------------------------

    def run(self):
        started = time.monotonic()
        say(f"demo directory {self.dir} (logs: *.log there)")
        self.start_exchanges()
        chain = self.start_chain()
        say(f"dev chain at {chain['rpc']}; contracts "
            + ", ".join(f"{k} {v}" for k, v in chain["contracts"].items()))
        pushgateway, prometheus = self.start_metrics()
        if not prometheus:
            say("Prometheus and the Pushgateway are not installed (apt-get install prometheus "
                "prometheus-pushgateway): telemetry stays local, on each service's /metrics")
        alerts_url = self.start_alert_receiver()
        ports = self.start_enclave(chain, pushgateway, alerts_url)
        state_file = self.write_state()
        say("starting the enclave (PostgreSQL, price aggregator, 5 nodes) …")
        health = f"http://127.0.0.1:{ports['supervisor']}/healthz"
        self.wait(SERVICES_TIMEOUT, "services up", lambda: http_get(health)[0] == 200)
        up = time.monotonic()
        self.state["servicesUpAfterSeconds"] = round(up - started, 1)
        self.write_state()
        say(f"every service is up ({up - started:.0f} s after start)")
        self.summary(ports, state_file, prometheus)
        self.watch(ports, up)

    def summary(self, ports, state_file, prometheus):
        api = ports["api_base"]
        control = self.state["control"]
        sources = self.state["sources"]
        liar = next((n for n, s in sources.items() if s.get("liar")), None)
        pegged = configuration.PEGGED
        lines = [
            "",
            "What to look at (Ctrl-C stops everything):",
            f"  live view      {self.binary} --root {self.root} status --watch"
            "   (services, feeds with their on-chain answers, nodes; Ctrl-C leaves it)",
            f"  oracle report  curl -s http://127.0.0.1:{api + 2}/v1/feeds/BTC-USD/latest"
            f"   (oracles: nodes 2-5 on ports {api + 2}-{api + 5})",
            f"  oracle health  curl -s http://127.0.0.1:{api + 2}/health",
            f"  aggregator     curl -s 'http://127.0.0.1:{ports['aggregator']}/quotes/batch?pairs=BTC-USD,ETH-USD,USDC-USD'",
            f"  on chain       python3 scripts/demo/onchain.py --state {state_file}",
            "  price sources  " + ", ".join(
                f"{n} {s['rest']}" + (" (lies: 8 % high)" if s.get("liar") else "")
                for n, s in sources.items()),
            f"  fire an alert  curl -s -X POST {control}/sources/{configuration.ALERT_SOURCE}/stop"
            f"   (USDC-USD is left with one source, fewer than the 2 it needs: the enclave's"
            f" sources_unavailable alert fires within about 10 s, below; …/start resolves it)",
            f"  a depeg        curl -s -X POST '{control}/prices/USDC?usd=0.97'"
            f"   ({pegged['feed']} is pegged at {pegged['peg']}: the depeg alert fires;"
            f" ?usd=1 resolves it)",
            f"  move a price   curl -s -X POST '{control}/prices/BTC/jump?percent=3'"
            f"   (GET {control}/sources lists the sources; …/sources/<name>/stop, …/start)",
            f"  alerts         [alert] lines below: the enclave's webhook notifications to"
            f" {self.state['alerts']['receiver']}; every body in {self.state['alerts']['log']}",
        ]
        if prometheus:
            lines.append(f"  Prometheus     {prometheus}/graph?g0.expr="
                         + urllib.parse.quote("enclave_node_latest_report_timestamp_seconds")
                         + f"   (alerts: {prometheus}/alerts; Pushgateway {self.state['pushgateway']})")
        lines.append(f"  logs           {self.dir}/enclave.log (every service, prefixed), "
                     f"{self.root}/var/log/<service>/current")
        if liar:
            lines.append(f"  {liar} quotes BTC and ETH 8 % too high: the aggregator leaves it out "
                         "(\"used\": false, reason outlier); the feeds are unaffected.")
        lines.append("")
        say("\n".join(lines))

    def watch(self, ports, up):
        """One line per report that lands on the chain; a note on the outlier once."""
        last = {}
        outlier_seen = False
        reported_all = False
        feeds = self.state["feeds"]
        while True:
            if not self.alive("enclave"):
                raise Failure(f"the enclave stopped; see {self.dir / 'enclave.log'}")
            for feed in feeds:
                try:
                    round_id, answer, _ = onchain.latest_round(self.state["rpc"], feed["contract"])
                except (OSError, RuntimeError, ValueError):
                    continue
                if round_id == 0 or last.get(feed["name"], (0,))[0] == round_id:
                    continue
                value = onchain.scaled(answer, feed["decimals"]).normalize()
                previous = last.get(feed["name"])
                change = ""
                if previous and previous[1]:
                    change = f"  ({(value - previous[1]) / previous[1] * 100:+.3f} % since round {previous[0]})"
                else:
                    change = f"  (first report, {time.monotonic() - up:.0f} s after the services were up)"
                say(f"[chain] {feed['name']:<9} round {round_id:<4} {value:f}{change}")
                last[feed["name"]] = (round_id, value)
            if not reported_all and len(last) == len(feeds):
                reported_all = True
                self.state["reportsAfterSeconds"] = round(time.monotonic() - up, 1)
                self.write_state()
            if not reported_all and time.monotonic() - up > REPORTS_TIMEOUT and "late" not in self.state:
                self.state["late"] = True
                missing = [f["name"] for f in feeds if f["name"] not in last]
                say(f"warning: no report on the chain for {', '.join(missing)} after "
                    f"{REPORTS_TIMEOUT} s; see {self.dir / 'enclave.log'}")
            if not outlier_seen:
                outlier_seen = self.note_outlier(ports)
            time.sleep(2)

    def note_outlier(self, ports):
        status, body = http_get(f"http://127.0.0.1:{ports['aggregator']}/quotes/batch?pairs=BTC-USD")
        if status != 200:
            return False
        try:
            quote = json.loads(body)["quotes"]["BTC-USD"]
        except (ValueError, KeyError):
            return False
        left_out = [s for s in quote.get("sources", [])
                    if not s.get("used") and str(s.get("reason", "")).startswith("outlier")]
        if not left_out:
            return False
        for s in left_out:
            say(f"[aggregator] BTC-USD {quote.get('price')}: {s['source']} left out "
                f"({s.get('price')}; {s.get('reason')})")
        return True


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--bin", default=str(REPO / "target" / "release" / "enclave"),
                        help="the enclave binary (default target/release/enclave)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the demo directory (logs, the enclave's root) at the end")
    args = parser.parse_args()
    binary = Path(args.bin).resolve()
    if not binary.is_file():
        say(f"{binary} does not exist: build it (cargo build --release) or give --bin")
        return 1

    # The demo's files (a configuration with dev-chain keys, logs) are private.
    return run_until_stopped(lambda: Demo(binary, args.keep), "demo", 0o077)


def run_until_stopped(make, what, umask):
    """Runs `make()`'s `run()` until a stop signal (SIGINT, SIGTERM, SIGHUP) or a failure, then
    `close()`s it (keeping its directory after a failure); the exit code."""

    def stop(signum, _frame):
        raise Stop(signal.Signals(signum).name)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)
    os.umask(umask)
    running = None
    code = 0
    try:
        running = make()
        running.run()
    except Stop as e:
        say(f"\n{e}: stopping everything the {what} started …")
    except (Failure, subprocess.CalledProcessError, OSError, RuntimeError, ValueError) as e:
        say(f"{what} failed: {e}")
        if running:
            running.keep = True  # the logs say why
        code = 1
    finally:
        if running:
            running.close()
    say("stopped" if code == 0 else "stopped after a failure")
    return code


if __name__ == "__main__":
    sys.exit(main())
