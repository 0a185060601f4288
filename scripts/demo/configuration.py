"""The demo's enclave configuration: one function, `solution`, builds it from what the demo
started (price stand-ins, dev chain, receivers, free ports). To show another part of the enclave
in the demo (say, an alerts section), add it here; demo.py signs whatever this returns.

Built on configuration.example.json, so every field the demo does not set keeps the example's
value, and the demo follows the example when the schema grows.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
from localnet import dev_chain_solution  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
INSTANCE = "enclave-demo"
TOTAL_NODES = 5

# The feeds the demo reports, with the stand-ins' symbols (scripts/demo/exchanges.py). kucoin
# is the liar (BTC and ETH 8 % high): the aggregator leaves it out, the feeds go on.
FEEDS = [
    {"name": "BTC-USD", "decimals": 8, "alphaPPB": 5_000_000, "heartbeatMs": 60_000,
     "legs": [("binance", "BTC", "USDT"), ("okx", "BTC", "USDT"), ("kraken", "BTC", "USD"),
              ("coinbase", "BTC", "USD"), ("kucoin", "BTC", "USDT")]},
    {"name": "ETH-USD", "decimals": 8, "alphaPPB": 5_000_000, "heartbeatMs": 60_000,
     "legs": [("binance", "ETH", "USDT"), ("okx", "ETH", "USDT"), ("kraken", "ETH", "USD"),
              ("coinbase", "ETH", "USD"), ("kucoin", "ETH", "USDT")]},
    # A stablecoin: pegged at 1, it moves little, so it reports on its heartbeat. Watched for a
    # depeg (ALERTS below). Two sources, the aggregator's minimum (minSources below): stopping
    # either leaves USDC-USD without a price, which is how the demo fires an alert.
    {"name": "USDC-USD", "decimals": 8, "alphaPPB": 1_000_000, "heartbeatMs": 60_000,
     "legs": [("kraken", "USDC", "USD"), ("coinbase", "USDC", "USD")]},
]
# The source whose stop the demo suggests: USDC-USD loses its price, BTC and ETH keep theirs.
ALERT_SOURCE = "kraken"
# The pegged feed and how far from its peg is a depeg (1 %: USDC at 0.97 is one).
PEGGED = {"feed": "USDC-USD", "peg": "1.0", "maxDeviationPpb": 10_000_000}
# The enclave's own alerts, quick enough to watch: the state is read every 2 s and a condition
# that holds for 5 s fires (a stopped source is seen stale after its 3 s ttl). Enough
# notifications an hour for stopping and starting a source a few times. A transmitter is low
# below half of faucetMinWei (the default threshold is faucetMinWei itself, where the faucet
# tops it up within a check interval, about as long as forMs): low means the faucet falls behind.
ALERTS = {"intervalMs": 2000, "forMs": 5000, "maxNotificationsPerHour": 60,
          "balanceThresholdWei": "50000000000000000"}


def source_config(urls):
    """One stand-in as a source: its REST base, its stream when it has one, quick failure (a
    stopped stand-in shows at once) and a stream that never gives up redialling."""
    config = {"baseUrl": urls["rest"], "rps": None, "ttl": 3000, "refetch": True,
              "timeoutMs": 2000, "maxRetries": 1}
    if urls.get("ws"):
        config["stream"] = {"wsUrl": urls["ws"], "reconnectInterval": 1000,
                            "maxReconnectAttempts": 0, "heartbeatInterval": 5000}
    return config


def solution(ports, sources, chain, pushgateway=None, alerts_url=None):
    """The `solution` object (unsigned).

    ports: pg, supervisor, process_metrics, alerts, aggregator, api_base, p2p_base
    sources: {name: {"rest", "ws"}} from exchanges.py
    chain: {"rpc", "owner", "faucet", "contracts": {feed: address}}
    pushgateway: the Pushgateway's URL, or None for no push target
    alerts_url: the webhook receiver's URL (alert_receiver.py), or None for no alerts
    """
    s = dev_chain_solution(REPO, INSTANCE, TOTAL_NODES, ports["pg"], chain)
    s.update({
        "ports": {"supervisor": ports["supervisor"], "processMetrics": ports["process_metrics"],
                  "alerts": ports["alerts"],
                  "nodeApiBase": ports["api_base"], "nodeP2pBase": ports["p2p_base"]},
        # A round every 2 s: reports follow a price move within seconds.
        "consensus": {"deltaProgressMs": 6000, "deltaResendMs": 2000, "deltaRoundMs": 2000,
                      "deltaGraceMs": 500, "deltaStageMs": 3000, "rMax": 6,
                      "transmissionSchedule": [1, 2, 2, 2]},
        "feeds": [
            {"name": f["name"], "decimals": f["decimals"],
             "contractAddress": chain["contracts"][f["name"]], "alphaPPB": f["alphaPPB"],
             "heartbeatMs": f["heartbeatMs"],
             "legs": [{"source": src, "base": b, "quote": q} for src, b, q in f["legs"]]}
            for f in FEEDS
        ],
        "telemetry": {"instance": INSTANCE, "targets": [
            {"url": pushgateway, "intervalMs": 5000, "timeoutMs": 2000,
             "groupingLabels": {"environment": "demo"}}] if pushgateway else []},
        # A generic JSON webhook to the demo's own receiver, which prints each notification.
        "alerts": dict(ALERTS, channels=[{"type": "webhook", "url": alerts_url}],
                       pegged=[PEGGED]) if alerts_url else {},
        "priceAggregatorConfig": {
            "port": ports["aggregator"],
            "logger": {"level": "info", "isPrettyEnabled": False},
            # The liar is 8 % off; honest sources are within a few hundredths of a percent.
            "aggregation": {"minSources": 2, "maxDeviationPpb": 50_000_000},
            "refetch": {"enabled": True, "failedPairsRetry": {
                "enabled": True, "retryDelay": 2000, "checkInterval": 5000}},
            "sources": {name: source_config(urls) for name, urls in sources.items()},
        },
    })
    return s
