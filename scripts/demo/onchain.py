#!/usr/bin/env python3
"""Reads the feeds' latest answers from their OCR1 aggregator contracts (stdlib only; no cast).

  onchain.py --state /var/tmp/enclave-demo-…/demo.json    the demo's feeds (scripts/demo.sh prints this)
  onchain.py --rpc http://127.0.0.1:8545 BTC-USD=0xabc…[:8] …   any contract (decimals after ':', default 8)

Per feed: the round id, the answer scaled by the feed's decimals, and how long ago it was
written (`latestRoundData()`, selector feaf968c; zeros before the first report).
"""

import argparse
import json
import sys
import time
import urllib.request
from decimal import Decimal

LATEST_ROUND_DATA = "0xfeaf968c"


def rpc(url, method, params):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = json.loads(response.read())
    if "error" in answer:
        raise RuntimeError(f"{method}: {answer['error'].get('message')}")
    return answer["result"]


def latest_round(url, address):
    """(round id, raw answer, updated at unix s) of an aggregator contract."""
    data = rpc(url, "eth_call", [{"to": address, "data": LATEST_ROUND_DATA}, "latest"])
    words = [int(data[2 + 64 * i: 2 + 64 * (i + 1)], 16) for i in range(5)]
    answer = words[1] - (1 << 256) if words[1] >= 1 << 255 else words[1]
    return words[0], answer, words[3]


def scaled(answer, decimals):
    return Decimal(answer).scaleb(-decimals)


def main():
    urllib.request.install_opener(urllib.request.build_opener(urllib.request.ProxyHandler({})))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--state", help="the demo's demo.json")
    parser.add_argument("--rpc", help="the chain's JSON-RPC URL")
    parser.add_argument("feeds", nargs="*", metavar="NAME=ADDRESS[:DECIMALS]")
    args = parser.parse_args()
    if args.state:
        with open(args.state) as f:
            state = json.load(f)
        url = state["rpc"]
        feeds = [(f["name"], f["contract"], f["decimals"]) for f in state["feeds"]]
    elif args.rpc and args.feeds:
        url = args.rpc
        feeds = []
        for item in args.feeds:
            name, _, rest = item.partition("=")
            address, _, decimals = rest.partition(":")
            if not name or not address.startswith("0x"):
                parser.error(f"{item!r}: expected NAME=0xADDRESS[:DECIMALS]")
            feeds.append((name, address, int(decimals or 8)))
    else:
        parser.error("give --state FILE, or --rpc URL and NAME=ADDRESS…")
    for name, address, decimals in feeds:
        try:
            round_id, answer, updated = latest_round(url, address)
        except (OSError, RuntimeError, ValueError) as e:
            print(f"{name:<10} {address}  unreadable: {e}")
            continue
        if round_id == 0:
            print(f"{name:<10} {address}  no report yet")
            continue
        age = max(0, int(time.time()) - updated)
        print(f"{name:<10} {address}  round {round_id:<5} answer {scaled(answer, decimals).normalize():f}"
              f"  ({age} s ago)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
