"""Loopback helpers the local runs share (scripts/demo/demo.py, scripts/lib/check_dashboards.py):
free ports for the services they start, a GET that reports failure as a value, and stopping
what they started."""

import json
import os
import random
import signal
import socket
import subprocess
import urllib.error
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_range(count):
    """A base such that base+1..base+count are free, below the ephemeral range (32768+), so the
    kernel does not hand one of them to an outgoing connection meanwhile."""
    for _ in range(200):
        base = 20000 + random.randrange(0, 12000, 10)
        held = []
        try:
            for i in range(1, count + 1):
                s = socket.socket()
                held.append(s)
                s.bind(("127.0.0.1", base + i))
            return base
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise RuntimeError(f"no free range of {count} ports between 20000 and 32000")


def http_get(url, timeout=5):
    """(status, body); (None, "") when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except (urllib.error.URLError, OSError):
        return None, ""


def dev_chain_solution(repo, instance, total_nodes, pg_port, chain):
    """configuration.example.json's `solution` without its signature, for `total_nodes` nodes
    (all primary) on the dev chain: chain id 1337, a private chain, so brisk timings are allowed.
    Node 1 configures the contracts itself and its faucet (a dev-chain account) funds the
    oracles' transmitters: nothing to do by hand.

    chain: {"rpc", "owner", "faucet"} of the running dev chain
    """
    s = json.loads((repo / "configuration.example.json").read_text())["solution"]
    s.pop("signature", None)
    nodes = " ".join(str(i) for i in range(1, total_nodes + 1))
    s.update({
        "totalNodes": total_nodes,
        "nodesList": nodes,
        "primaryNodes": nodes,
        "pgPort": pg_port,
        "chainlinkNodeName": instance,
        "chainlinkChainId": 1337,
        "chainlinkRpcHttpUrl": chain["rpc"],
        "chain": {"enabled": True, "contractPollIntervalMs": 1000, "receiptTimeoutMs": 30000,
                  "rebroadcastAfterMs": 5000, "setConfigFunction": "superprotocol",
                  "adminPrivateKey": chain["owner"], "configureContracts": True},
        "faucetPrivateKey": chain["faucet"],
        "faucetMinWei": "100000000000000000",
        "faucetTopupWei": "300000000000000000",
        "balanceTopupCheckIntervalMs": 5000,
    })
    return s


def prometheus_config(directory, gateway_port, interval, rules):
    """Writes `prometheus.yml` in `directory` for a Prometheus that scrapes the Pushgateway on
    `gateway_port` and evaluates `rules` every `interval` (such as "5s"); returns its path."""
    path = directory / "prometheus.yml"
    path.write_text(json.dumps({
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(rules)],
        "scrape_configs": [{"job_name": "pushgateway", "honor_labels": True,
                            "static_configs": [{"targets": [f"127.0.0.1:{gateway_port}"]}]}],
    }))
    return path


def stop(name, process, sig, grace, say):
    """Sends `sig` to `process` if it still runs and waits `grace` seconds; past that, SIGKILL to
    its process group (every process it started), told with `say`."""
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        say(f"{name} did not stop within {grace} s: SIGKILL to its process group")
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()
