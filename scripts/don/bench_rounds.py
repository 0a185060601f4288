#!/usr/bin/env python3
"""Round latency of a DON across five enclave containers against the same five nodes in one
enclave container, on this machine: the same image, network, stand-ins and timings (don.py with
and without --single). Each runs until every feed reported, then for --seconds more; then every
oracle's `enclave_node_round_duration_seconds` (OBSERVE-REQ to the finalized report) is read.

  scripts/don/bench_rounds.py --image enclave:latest [--seconds 120]
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
urllib.request.install_opener(urllib.request.build_opener(urllib.request.ProxyHandler({})))


def metrics(ip, port):
    with urllib.request.urlopen(f"http://{ip}:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def histogram(text, name):
    """(sum, count, {le: cumulative count}) of an unlabelled histogram."""
    total, count, buckets = 0.0, 0, {}
    for line in text.splitlines():
        if line.startswith(f"{name}_sum "):
            total = float(line.split()[1])
        elif line.startswith(f"{name}_count "):
            count = int(float(line.split()[1]))
        elif line.startswith(f"{name}_bucket{{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[le] = int(float(line.rsplit(" ", 1)[1]))
    return total, count, buckets


def quantile(buckets, q):
    """The upper bound of the bucket holding quantile q (Prometheus' resolution)."""
    finite = sorted((float(le), n) for le, n in buckets.items() if le != "+Inf")
    total = buckets.get("+Inf", 0)
    for le, n in finite:
        if total and n >= q * total:
            return le
    return float("inf")


def measure(image, single, seconds):
    args = [sys.executable, str(HERE / "don.py"), "--image", image, "--heartbeat-ms", "10000"]
    if single:
        args.append("--single")
    p = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, process_group=0)
    state = None
    try:
        for line in p.stdout:
            sys.stderr.write(f"  {line}")
            if "; state in " in line:
                state = json.loads(Path(line.rsplit("; state in ", 1)[1].strip()).read_text())
            if line.startswith("every feed reported") or line.startswith("don failed"):
                break
        if state is None:
            raise RuntimeError("don.py did not start")
        time.sleep(seconds)
        total, count, buckets = 0.0, 0, {}
        for node in range(2, 6):
            ip = state["members"]["single" if single else f"oracle-{node}"]["ip"]
            s, c, b = histogram(metrics(ip, 6600 + node), "enclave_node_round_duration_seconds")
            total += s
            count += c
            for le, n in b.items():
                buckets[le] = buckets.get(le, 0) + n
        return total, count, buckets
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(timeout=180)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--image", default="enclave:latest")
    parser.add_argument("--seconds", type=int, default=120)
    args = parser.parse_args()
    results = {}
    for label, single in (("one enclave, 5 nodes", True), ("5 enclaves (DON across TEEs)", False)):
        sys.stderr.write(f"{label}:\n")
        results[label] = measure(args.image, single, args.seconds)
    print(f"round duration, OBSERVE-REQ to finalized report, every oracle, {args.seconds} s after "
          "every feed reported")
    for label, (total, count, buckets) in results.items():
        mean = total / count * 1000 if count else float("nan")
        print(f"  {label:30} {count:5} rounds: mean {mean:7.1f} ms, p50 <= "
              f"{quantile(buckets, 0.5) * 1000:.0f} ms, p90 <= {quantile(buckets, 0.9) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
