#!/usr/bin/env python3
"""A DON across enclaves on this machine: one bootstrap enclave and four oracle enclaves, each its
own container (scripts/don/compose.yml) with its own PostgreSQL, keys and volumes, on a private
Docker network, admitting each other by their (simulated) attestation, reporting to the dev
chain from local price sources. Run it through scripts/don.sh, which builds the image first.

What it does, in order:
  - creates the private network enclave-don-<id>; the stand-ins listen on its gateway only:
    five price sources in their exchanges' formats (scripts/demo/exchanges.py) and the EVM dev
    chain (scripts/devchain) with one OCR1 aggregator contract per feed;
  - takes the binary out of the image, and with it: one operator key per member (`enclave
    operator-key`), the allowed measurements of the simulated TD running that binary (`enclave
    attestation simulated-measurements`), and the configuration — the same for every member,
    with the `don` section naming each member's node, operator key, P2P address and identity URL
    — signed with the development key;
  - a development CA (openssl) for the simulated evidence provider;
  - `docker-compose up`; then one line per report that lands on the chain, and one per member
    whose admission by the bootstrap member changes.

State for scripts and tests: <dir>/don.json (network, project, containers, chain, contracts).
Ctrl-C (SIGINT), SIGTERM or SIGHUP stop the containers and remove them with their volumes and
the network (--keep: keep the directory with the logs), and stop the stand-ins.
"""

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the repository
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "demo"))
sys.path.insert(0, str(HERE.parent / "lib"))
import configuration  # noqa: E402
import onchain  # noqa: E402
from demo import DEV_KEY, REPO, Demo, Failure, run_until_stopped, say  # noqa: E402

urllib.request.install_opener(urllib.request.build_opener(urllib.request.ProxyHandler({})))

COMPOSE = HERE / "compose.yml"
MEMBERS = ["boot", "oracle-2", "oracle-3", "oracle-4", "oracle-5"]
SUPERVISOR_PORT = 3002
P2P_BASE = 9900
# Every member is admitted, and reports land, within this long of `up` (five PostgreSQL initdbs
# on a small machine included).
REPORTS_TIMEOUT = 300


def run(*args, check=True, capture=True):
    """A command's stdout (stripped); raises Failure with its stderr when it fails."""
    p = subprocess.run([str(a) for a in args], capture_output=capture, text=True)
    if check and p.returncode != 0:
        raise Failure(f"{' '.join(str(a) for a in args[:3])} … failed: "
                      f"{(p.stderr or '').strip()[-2000:]}")
    return (p.stdout or "").strip()


def http_text(url, timeout=3):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.read().decode()
    except OSError:
        return None


def member_admitted(metrics_text):
    """{member: 0/1} from `enclave_don_member_admitted` in a supervisor's /metrics."""
    out = {}
    for line in (metrics_text or "").splitlines():
        if line.startswith("enclave_don_member_admitted{"):
            labels, _, value = line.rpartition(" ")
            name = labels.split('member="', 1)[1].split('"', 1)[0]
            out[name] = float(value)
    return out


class Don(Demo):
    def __init__(self, image, keep, recheck_ms, heartbeat_ms, single=False):
        super().__init__(Path("/nonexistent"), keep, prefix="enclave-don-")
        self.image = image
        # For comparison (scripts/bench-don.sh): every node in one enclave, same network,
        # stand-ins and timings.
        self.single = single
        self.recheck_ms = recheck_ms
        self.heartbeat_ms = heartbeat_ms
        # Docker names: lowercase letters, digits, '-' and '_'.
        self.id = self.dir.name.rsplit("-", 1)[-1].lower()
        self.project = f"enclave-don-{self.id}"
        self.network = f"enclave-don-{self.id}"
        self.compose_env = None
        self.state.update({"image": image, "project": self.project, "network": self.network,
                           "compose": str(COMPOSE), "members": {}})

    # -- the parts --------------------------------------------------------------------------------

    def create_network(self):
        run("docker", "network", "create", "--driver", "bridge", self.network)
        self.state["networkCreated"] = True
        gateway = run("docker", "network", "inspect", "-f",
                      "{{(index .IPAM.Config 0).Gateway}}", self.network)
        if not gateway:
            raise Failure(f"network {self.network} has no gateway address")
        self.state["gateway"] = gateway
        return gateway

    def extract_binary(self):
        """The image's own binary: what the members run, and what signs and keys here."""
        container = run("docker", "create", self.image)
        try:
            run("docker", "cp", f"{container}:/usr/local/bin/enclave", self.dir / "enclave")
        finally:
            run("docker", "rm", container, check=False)
        self.binary = self.dir / "enclave"
        self.state["bin"] = str(self.binary)

    def dev_ca(self):
        ca = self.dir / "dev-ca"
        ca.mkdir()
        run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", ca / "ca.key",
            "-out", ca / "ca.pem", "-days", "30", "-subj", "/CN=enclave DON development CA",
            "-addext", "basicConstraints=critical,CA:TRUE")
        # Read by the enclave's supervisor (root in the container) from a read-only mount.
        for f in ca.iterdir():
            os.chmod(f, 0o644)
        os.chmod(ca, 0o755)

    def operator_keys(self):
        keys = {}
        for name in MEMBERS:
            d = self.dir / name
            d.mkdir()
            os.chmod(d, 0o755)
            keys[name] = run(self.binary, "operator-key", "--out", d / "operator.key")
        return keys

    def configuration(self, chain, keys):
        measurements = json.loads(run(self.binary, "attestation", "simulated-measurements",
                                      "--binary", self.binary))
        ports = {"pg": 5432, "supervisor": SUPERVISOR_PORT, "process_metrics": 3003,
                 "alerts": 3004, "aggregator": 3000, "api_base": 6600, "p2p_base": P2P_BASE}
        s = configuration.solution(ports, self.state["sources"], chain)
        s["chainlinkNodeName"] = "enclave-don"
        s["telemetry"]["instance"] = "enclave-don"
        # Every member reaches the others' identities and P2P listeners on the network.
        s["ports"]["listenHost"] = "0.0.0.0"
        s["node"]["listenHost"] = "0.0.0.0"
        s["attestation"] = {
            "provider": "simulated",
            "simulated": {"caKeyFile": "/sp/dev-ca/ca.key",
                          "caCertificateFile": "/sp/dev-ca/ca.pem"},
            "allowedMeasurements": measurements,
        }
        if self.single:
            s["attestation"] = {"provider": "none"}
        members = []
        for i, name in enumerate(MEMBERS, start=1):
            members.append({"name": name, "nodes": [i], "operatorKey": keys[name],
                            "p2pAddresses": [f"{name}:{P2P_BASE + i}"],
                            "identityUrl": f"http://{name}:{SUPERVISOR_PORT}/v1/identity"})
        if not self.single:
            s["don"] = {"members": members, "recheckMs": self.recheck_ms}
        for feed in s["feeds"]:
            feed["heartbeatMs"] = self.heartbeat_ms
        path = self.dir / "configuration.json"
        path.write_text(json.dumps({"solution": s}, indent=2))
        run(self.binary, "config", "sign", "--key", DEV_KEY, path)
        os.chmod(path, 0o644)
        self.state["configuration"] = str(path)

    def compose(self, *args, check=True):
        env = dict(os.environ, DON_IMAGE=self.image, DON_DIR=str(self.dir),
                   DON_NETWORK=self.network)
        p = subprocess.run(["docker-compose", "-p", self.project, "-f", str(COMPOSE), *args],
                           env=env, capture_output=True, text=True)
        if check and p.returncode != 0:
            raise Failure(f"docker-compose {' '.join(args)} failed: {p.stderr.strip()[-2000:]}")
        return p.stdout

    def containers(self):
        out = {}
        for name in MEMBERS:
            cid = self.compose("ps", "-q", name).strip()
            if cid:
                ip = run("docker", "inspect", "-f",
                         "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", cid,
                         check=False).split()
                out[name] = {"container": cid, "ip": ip[0] if ip else None}
        return out

    # -- running ------------------------------------------------------------------------------

    def run(self):
        started = time.monotonic()
        os.chmod(self.dir, 0o755)  # docker mounts files from here
        say(f"DON directory {self.dir} (logs: *.log there; `docker-compose -p {self.project} "
            f"-f {COMPOSE} logs <member>` for an enclave's)")
        if subprocess.run(["docker", "image", "inspect", self.image],
                          capture_output=True).returncode != 0:
            raise Failure(f"image {self.image} does not exist: scripts/build-image.sh builds "
                          "enclave:latest (scripts/don.sh does)")
        gateway = self.create_network()
        self.extract_binary()
        self.start_exchanges(gateway)
        chain = self.start_chain(gateway)
        say(f"network {self.network} (gateway {gateway}); dev chain at {chain['rpc']}")
        self.dev_ca()
        keys = self.operator_keys()
        self.configuration(chain, keys)
        if self.single:
            cid = run("docker", "run", "-d", "--name", f"{self.project}-single", "--network",
                      self.network, "-v", f"{self.dir}/configuration.json:"
                      "/sp/configurations/configuration.json:ro", self.image)
            ip = run("docker", "inspect", "-f",
                     "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", cid)
            self.state["members"] = {"single": {"container": cid, "ip": ip}}
            started_what = "one enclave with every node (--single)"
        else:
            self.compose("up", "-d")
            self.state["members"] = self.containers()
            started_what = f"{len(MEMBERS)} enclaves: {', '.join(MEMBERS)}"
        state_file = self.write_state()
        say(f"started {started_what}; state in {state_file}")
        say("ready")
        self.watch(started)

    def write_state(self):
        path = self.dir / "don.json"
        path.write_text(json.dumps(self.state, indent=2))
        os.chmod(path, 0o644)
        return path

    def watch(self, started):
        last = {}
        admitted = {}
        reported_all = False
        feeds = self.state["feeds"]
        while True:
            boot_ip = self.state["members"].get("boot", {}).get("ip")
            if boot_ip:
                now = member_admitted(http_text(f"http://{boot_ip}:{SUPERVISOR_PORT}/metrics"))
                for member, value in sorted(now.items()):
                    if admitted.get(member) != value:
                        say(f"[don] boot {'admits' if value == 1 else 'does not admit'} {member}")
                admitted.update(now)
            for feed in feeds:
                try:
                    round_id, answer, _ = onchain.latest_round(self.state["rpc"], feed["contract"])
                except (OSError, RuntimeError, ValueError):
                    continue
                if round_id == 0 or last.get(feed["name"]) == round_id:
                    continue
                value = onchain.scaled(answer, feed["decimals"]).normalize()
                say(f"[chain] {feed['name']:<9} round {round_id:<4} {value:f}")
                last[feed["name"]] = round_id
            if not reported_all and len(last) == len(feeds):
                reported_all = True
                self.state["reportsAfterSeconds"] = round(time.monotonic() - started, 1)
                self.write_state()
                say(f"every feed reported on the chain, {time.monotonic() - started:.0f} s "
                    "after start")
            if not reported_all and time.monotonic() - started > REPORTS_TIMEOUT \
                    and "late" not in self.state:
                self.state["late"] = True
                say(f"warning: not every feed reported within {REPORTS_TIMEOUT} s; see "
                    f"`docker-compose -p {self.project} -f {COMPOSE} logs`")
            time.sleep(2)

    def close(self):
        if self.state.get("networkCreated"):
            self.save_logs()
            self.compose("down", "--volumes", "--timeout", "30", check=False)
            # Containers a test added to the network (docker run --network) go too.
            for cid in run("docker", "ps", "-aq", "--filter", f"network={self.network}",
                           check=False).split():
                run("docker", "rm", "-f", "-v", cid, check=False)
            run("docker", "network", "rm", self.network, check=False)
        super().close()

    def save_logs(self):
        try:
            (self.dir / "enclaves.log").write_text(self.compose("logs", "--no-color", check=False))
        except OSError:
            pass


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--image", default="enclave:latest", help="the enclave image")
    parser.add_argument("--keep", action="store_true",
                        help="keep the DON directory (logs, configuration) at the end")
    parser.add_argument("--recheck-ms", type=int, default=10_000,
                        help="don.recheckMs: how often members verify each other again")
    parser.add_argument("--heartbeat-ms", type=int, default=60_000,
                        help="every feed's heartbeatMs: a report at least this often")
    parser.add_argument("--single", action="store_true",
                        help="for comparison: every node in one enclave instead (no `don`)")
    args = parser.parse_args()

    # Readable by the containers, which mount the configuration, keys and CA from here.
    return run_until_stopped(
        lambda: Don(args.image, args.keep, args.recheck_ms, args.heartbeat_ms, args.single),
        "DON", 0o022)


if __name__ == "__main__":
    sys.exit(main())
