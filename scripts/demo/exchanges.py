#!/usr/bin/env python3
"""Local stand-ins for five price sources, each in its exchange's real format (stdlib only), for
the offline demo (scripts/demo.sh). The enclave's own source adapters read them, unchanged: the
formats are those of src/aggregator/sources/*.rs and src/aggregator/streams/*.rs.

| source   | REST (one port per source)                                   | WebSocket (same port)          |
|----------|--------------------------------------------------------------|--------------------------------|
| binance  | GET /api/v3/ticker/price[?symbol=BTCUSDT | ?symbols=[...]]    | /ws   SUBSCRIBE btcusdt@miniTicker |
| okx      | GET /api/v5/market/ticker?instId=BTC-USDT, /tickers?instType=SPOT | /ws/v5/public  tickers     |
| kraken   | GET /0/public/Ticker?pair=XBTUSD,ETHUSD (answers XXBTZUSD …) | /v2   ticker (snapshot, update) |
| coinbase | GET /v2/prices/BTC-USD/spot                                  | /     ticker, heartbeats (Advanced Trade) |
| kucoin   | GET /api/v1/market/orderbook/level1?symbol=BTC-USDT          | – (KuCoin streams need a token; the adapter uses REST) |

Prices: every asset (BTC, ETH, USDC, in USD; USDT counts as USD) takes a random walk every
second, and every 20-40 s BTC or ETH jumps by 1-2 % so that the oracles report on deviation.
USDC keeps close to its level: 1.0 (a healthy peg), or the last price set through the control
endpoint (USDC at 0.97 stays a depeg until ?usd=1 restores the peg).
Each source adds its own small spread. The `--liar` source (default kucoin) quotes BTC and ETH
8 % too high: the aggregator leaves it out as an outlier.

Control (HTTP on its own port, printed at start; JSON answers):
  GET  /sources                       each source: up or stopped, its REST and WebSocket URLs
  POST /sources/<name>/stop           the source goes away: its port refuses connections and
                                      every open connection (REST keep-alive, WebSocket) is cut
  POST /sources/<name>/start          it comes back on the same port
  GET  /prices                        the current mid prices
  POST /prices/<ASSET>?usd=<price>    sets an asset's mid price (e.g. USDC 0.97: a depeg, held
                                      until ?usd=1)
  POST /prices/<ASSET>/jump?percent=<p>  moves it by p % at once

Usage: exchanges.py [--liar NAME|none] [--seed N] [--exit-on-stdin-eof]
Prints one JSON line {"control", "sources": {name: {"rest", "ws"}}} when ready, then serves
until SIGTERM/SIGINT.
"""

import argparse
import base64
import hashlib
import json
import random
import signal
import socket
import sys
import threading
import time
from datetime import datetime, timezone
from http.server import ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

sys.dont_write_bytecode = True  # no __pycache__ in the repository
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
import ws_frames  # noqa: E402
from fake_exchange import binance_subscription  # noqa: E402
from json_http import JsonHandler  # noqa: E402

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
INITIAL = {"BTC": 67123.45, "ETH": 3456.78, "USDC": 1.0}
# Per-second volatility of the random walk; USDC is pulled back towards its level (1, a healthy
# peg, until a price is set).
SIGMA = {"BTC": 0.0005, "ETH": 0.0006, "USDC": 0.00002}
DECIMALS = {"BTC": 2, "ETH": 2, "USDC": 5}
LIE = 1.08


def now_ms():
    return int(time.time() * 1000)


def iso_now():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Market:
    """Mid prices in USD, moving on their own; sources read them with their own spread."""

    def __init__(self, seed, jumps=True):
        self.lock = threading.Lock()
        self.mid = dict(INITIAL)
        self.usdc_level = INITIAL["USDC"]
        self.random = random.Random(seed)
        self.jumps = jumps
        self.stopping = threading.Event()
        threading.Thread(target=self._walk, daemon=True).start()

    def _walk(self):
        next_jump = time.monotonic() + self.random.uniform(20, 40)
        while not self.stopping.wait(1):
            with self.lock:
                for asset, sigma in SIGMA.items():
                    price = self.mid[asset] * (1 + self.random.gauss(0, sigma))
                    if asset == "USDC":
                        price += (self.usdc_level - price) * 0.05
                    self.mid[asset] = price
                if self.jumps and time.monotonic() >= next_jump:
                    asset = self.random.choice(["BTC", "ETH"])
                    move = self.random.choice([-1, 1]) * self.random.uniform(0.01, 0.02)
                    self.mid[asset] *= 1 + move
                    next_jump = time.monotonic() + self.random.uniform(20, 40)
                    print(f"jump: {asset} {move * 100:+.2f} %", file=sys.stderr, flush=True)

    def set(self, asset, usd):
        with self.lock:
            self.mid[asset] = usd
            if asset == "USDC":
                self.usdc_level = usd

    def jump(self, asset, percent):
        with self.lock:
            self.mid[asset] *= 1 + percent / 100

    def snapshot(self):
        with self.lock:
            return dict(self.mid)

    def price(self, asset, spread, factor=1.0):
        """The asset's price as one source quotes it (text, as exchanges send prices)."""
        with self.lock:
            mid = self.mid.get(asset)
            noise = self.random.uniform(-spread, spread)
        if mid is None:
            return None
        return f"{mid * factor * (1 + noise):.{DECIMALS[asset]}f}"


# ------------------------------------------------------------------------------------------
# WebSocket framing (RFC 6455), server side: unmasked frames out, masked frames in.


class WebSocket:
    def __init__(self, sock, rfile):
        self.sock = sock
        self.rfile = rfile
        self.lock = threading.Lock()
        self.closed = threading.Event()

    def send(self, payload, opcode=0x1):
        if isinstance(payload, (dict, list)):
            payload = json.dumps(payload)
        if isinstance(payload, str):
            payload = payload.encode()
        with self.lock:
            self.sock.sendall(ws_frames.encode(opcode, payload))

    def _read(self, n):
        data = self.rfile.read(n)
        if data is None or len(data) < n:
            raise ConnectionError("closed")
        return data

    def receive(self):
        """The next text message (None when the peer closes); answers pings on the way."""
        while True:
            opcode, payload = ws_frames.read_frame(self._read)
            if opcode == 0x8:
                try:
                    self.send(payload[:2], opcode=0x8)
                except OSError:
                    pass
                return None
            if opcode == 0x9:
                self.send(payload, opcode=0xA)
            elif opcode in (0x1, 0x2):
                return payload.decode(errors="replace")

    def close(self):
        self.closed.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


# ------------------------------------------------------------------------------------------
# The exchanges. Each knows its symbols, its REST routes and its stream protocol.


class Exchange:
    name = ""
    ws_path = None
    spread = 0.0003

    def __init__(self, market, liar):
        self.market = market
        self.factor = LIE if liar else 1.0

    def quote(self, asset):
        factor = self.factor if asset in ("BTC", "ETH") else 1.0
        return self.market.price(asset, self.spread, factor)

    # REST: (status, body) for a GET, or None for an unknown path.
    def rest(self, path, query):
        return None

    # Stream: called with each text message; returns nothing. `self.topics` per connection.
    def on_message(self, conn, text):
        pass

    def tick(self, conn):
        """Messages pushed every second on one connection."""

    def on_connect(self, conn):
        pass


class Binance(Exchange):
    name = "binance"
    ws_path = "/ws"
    symbols = {"BTCUSDT": "BTC", "ETHUSDT": "ETH", "USDCUSDT": "USDC"}

    def _ticker(self, symbol):
        price = self.quote(self.symbols[symbol])
        return {"symbol": symbol, "price": f"{float(price):.8f}"}

    def rest(self, path, query):
        if path != "/api/v3/ticker/price":
            return 404, {"code": -1, "msg": "Not found"}
        invalid = (400, {"code": -1121, "msg": "Invalid symbol."})
        if "symbol" in query:
            symbol = query["symbol"][0]
            return (200, self._ticker(symbol)) if symbol in self.symbols else invalid
        if "symbols" in query:
            try:
                wanted = json.loads(query["symbols"][0])
            except ValueError:
                return 400, {"code": -1100, "msg": "Illegal characters found in parameter 'symbols'."}
            if any(s not in self.symbols for s in wanted):
                return invalid
            return 200, [self._ticker(s) for s in wanted]
        return 200, [self._ticker(s) for s in self.symbols]

    def on_message(self, conn, text):
        conn.ws.send(binance_subscription(conn.topics, json.loads(text)))

    def tick(self, conn):
        for topic in sorted(conn.topics):
            symbol = topic.split("@")[0].upper()
            if symbol not in self.symbols or not topic.endswith("@miniTicker"):
                continue
            price = self.quote(self.symbols[symbol])
            conn.ws.send({"e": "24hrMiniTicker", "E": now_ms(), "s": symbol, "c": price,
                          "o": price, "h": price, "l": price, "v": "1520.33", "q": "102034871.2"})


class Okx(Exchange):
    name = "okx"
    ws_path = "/ws/v5/public"
    symbols = {"BTC-USDT": "BTC", "ETH-USDT": "ETH", "USDC-USDT": "USDC"}

    def _ticker(self, inst):
        last = self.quote(self.symbols[inst])
        return {"instType": "SPOT", "instId": inst, "last": last, "lastSz": "0.0131",
                "askPx": last, "askSz": "1.2", "bidPx": last, "bidSz": "0.8", "open24h": last,
                "high24h": last, "low24h": last, "volCcy24h": "511984068.58",
                "vol24h": "6094.07", "ts": str(now_ms()), "sodUtc0": last, "sodUtc8": last}

    def rest(self, path, query):
        if path == "/api/v5/market/ticker":
            inst = query.get("instId", [""])[0]
            if inst not in self.symbols:
                return 200, {"code": "51001", "data": [],
                             "msg": "Instrument ID, Instrument ID code, or Spread ID doesn't exist."}
            return 200, {"code": "0", "msg": "", "data": [self._ticker(inst)]}
        if path == "/api/v5/market/tickers":
            return 200, {"code": "0", "msg": "", "data": [self._ticker(i) for i in self.symbols]}
        return 404, {"code": "404", "msg": "Not Found", "data": []}

    def on_message(self, conn, text):
        if text == "ping":
            conn.ws.send("pong")
            return
        message = json.loads(text)
        op = message.get("op")
        for arg in message.get("args", []):
            inst = arg.get("instId")
            if op == "subscribe" and (arg.get("channel") != "tickers" or inst not in self.symbols):
                conn.ws.send({"event": "error", "code": "60018", "connId": conn.id,
                              "msg": f"Wrong URL or channel:{arg.get('channel')},instId:{inst} "
                                     "doesn't exist. Please use the correct URL, channel and "
                                     "parameters referring to API document."})
                continue
            if op == "subscribe":
                conn.topics.add(inst)
            elif op == "unsubscribe":
                conn.topics.discard(inst)
            conn.ws.send({"event": op, "arg": arg, "connId": conn.id})

    def tick(self, conn):
        for inst in sorted(conn.topics):
            conn.ws.send({"arg": {"channel": "tickers", "instId": inst},
                          "data": [self._ticker(inst)]})


class Kraken(Exchange):
    name = "kraken"
    ws_path = "/v2"
    # REST name → (result key as Kraken answers it, WS v2 symbol, asset)
    pairs = {"XBTUSD": ("XXBTZUSD", "BTC/USD", "BTC"), "ETHUSD": ("XETHZUSD", "ETH/USD", "ETH"),
             "USDCUSD": ("USDCUSD", "USDC/USD", "USDC")}

    def _rest_ticker(self, asset):
        last = self.quote(asset)
        return {"a": [last, "1", "1.000"], "b": [last, "2", "2.000"], "c": [last, "0.00112355"],
                "v": ["702.24523395", "3307.38151293"], "p": [last, last], "t": [33153, 135029],
                "l": [last, last], "h": [last, last], "o": last}

    def rest(self, path, query):
        if path != "/0/public/Ticker":
            return 404, {"error": ["EGeneral:Unknown method"]}
        if "pair" in query:
            names = query["pair"][0].split(",")
        else:
            names = list(self.pairs)
        known = {}
        for name in names:
            entry = self.pairs.get(name.upper()) or next(
                (v for v in self.pairs.values() if v[0] == name.upper()), None)
            if entry is None:
                return 200, {"error": ["EQuery:Unknown asset pair"]}
            known[entry[0]] = self._rest_ticker(entry[2])
        return 200, {"error": [], "result": known}

    def on_connect(self, conn):
        conn.ws.send({"channel": "status", "type": "update", "data": [
            {"version": "2.0.10", "system": "online", "api_version": "v2",
             "connection_id": random.getrandbits(63)}]})

    def _ws_ticker(self, symbol):
        asset = next(v[2] for v in self.pairs.values() if v[1] == symbol)
        last = float(self.quote(asset))
        return {"symbol": symbol, "bid": last, "bid_qty": 0.58905885, "ask": last,
                "ask_qty": 0.69697106, "last": last, "volume": 4696.17832496, "vwap": last,
                "low": last, "high": last, "change": 0.0, "change_pct": 0.0,
                "timestamp": iso_now()}

    def on_message(self, conn, text):
        message = json.loads(text)
        method = message.get("method")
        stamp = {"time_in": iso_now(), "time_out": iso_now()}
        if method == "ping":
            conn.ws.send({"method": "pong", "req_id": message.get("req_id"), **stamp})
            return
        params = message.get("params", {})
        for symbol in params.get("symbol", []):
            if params.get("channel") != "ticker" or all(v[1] != symbol for v in self.pairs.values()):
                conn.ws.send({"error": f"Currency pair not supported {symbol}", "method": method,
                              "req_id": message.get("req_id"), "success": False,
                              "symbol": symbol, **stamp})
                continue
            result = {"channel": "ticker", "event_trigger": "trades", "snapshot": True,
                      "symbol": symbol}
            conn.ws.send({"method": method, "req_id": message.get("req_id"), "result": result,
                          "success": True, **stamp})
            if method == "subscribe":
                conn.topics.add(symbol)
                conn.ws.send({"channel": "ticker", "type": "snapshot",
                              "data": [self._ws_ticker(symbol)]})
            elif method == "unsubscribe":
                conn.topics.discard(symbol)

    def tick(self, conn):
        if not conn.topics:
            return
        conn.ws.send({"channel": "heartbeat"})
        for symbol in sorted(conn.topics):
            conn.ws.send({"channel": "ticker", "type": "update", "data": [self._ws_ticker(symbol)]})


class Coinbase(Exchange):
    name = "coinbase"
    ws_path = "/"
    products = {"BTC-USD": "BTC", "ETH-USD": "ETH", "USDC-USD": "USDC"}

    def rest(self, path, query):
        parts = path.strip("/").split("/")
        if len(parts) == 4 and parts[0] == "v2" and parts[1] == "prices" and parts[3] == "spot":
            product = parts[2].upper()
            if product not in self.products:
                return 404, {"errors": [{"id": "not_found", "message": "Invalid currency"}]}
            base, currency = product.split("-")
            return 200, {"data": {"amount": self.quote(self.products[product]), "base": base,
                                  "currency": currency}}
        return 404, {"errors": [{"id": "not_found", "message": "Not found"}]}

    def _envelope(self, conn, channel, events):
        conn.sequence += 1
        return {"channel": channel, "client_id": "", "timestamp": iso_now(),
                "sequence_num": conn.sequence, "events": events}

    def _ticker(self, product):
        price = self.quote(self.products[product])
        return {"type": "ticker", "product_id": product, "price": price,
                "volume_24_h": "15328.12345678", "low_24_h": price, "high_24_h": price,
                "low_52_w": price, "high_52_w": price, "price_percent_chg_24_h": "0.00",
                "best_bid": price, "best_bid_quantity": "1.5", "best_ask": price,
                "best_ask_quantity": "0.5"}

    def on_message(self, conn, text):
        message = json.loads(text)
        kind, channel = message.get("type"), message.get("channel")
        products = message.get("product_ids", [])
        bad = [p for p in products if p not in self.products]
        if bad:
            # A subscribe naming an invalid product is refused as a whole.
            conn.ws.send({"type": "error", "message": "Failed to subscribe",
                          "reason": f"{bad[0]} is not a valid product"})
            return
        if channel == "heartbeats":
            conn.heartbeats = kind == "subscribe"
        elif channel == "ticker":
            if kind == "subscribe":
                conn.topics.update(products)
            elif kind == "unsubscribe":
                conn.topics.difference_update(products)
        subscriptions = {"ticker": sorted(conn.topics)}
        if conn.heartbeats:
            subscriptions["heartbeats"] = ["heartbeats"]
        conn.ws.send(self._envelope(conn, "subscriptions", [{"subscriptions": subscriptions}]))
        if kind == "subscribe" and channel == "ticker" and products:
            conn.ws.send(self._envelope(conn, "ticker", [
                {"type": "snapshot", "tickers": [self._ticker(p) for p in products]}]))

    def tick(self, conn):
        if conn.heartbeats:
            conn.beats += 1
            conn.ws.send(self._envelope(conn, "heartbeats", [
                {"current_time": iso_now(), "heartbeat_counter": conn.beats}]))
        if conn.topics:
            conn.ws.send(self._envelope(conn, "ticker", [
                {"type": "update", "tickers": [self._ticker(p) for p in sorted(conn.topics)]}]))


class Kucoin(Exchange):
    name = "kucoin"
    symbols = {"BTC-USDT": "BTC", "ETH-USDT": "ETH", "USDC-USDT": "USDC"}

    def rest(self, path, query):
        if path != "/api/v1/market/orderbook/level1":
            return 404, {"code": "404000", "msg": "Not Found"}
        symbol = query.get("symbol", [""])[0]
        if symbol not in self.symbols:
            return 200, {"code": "200000", "data": None}
        price = self.quote(self.symbols[symbol])
        return 200, {"code": "200000", "data": {
            "time": now_ms(), "sequence": str(now_ms() * 1000), "price": price, "size": "0.17",
            "bestBid": price, "bestBidSize": "3.803", "bestAsk": price, "bestAskSize": "1.788"}}


EXCHANGES = [Binance, Okx, Kraken, Coinbase, Kucoin]


# ------------------------------------------------------------------------------------------
# Serving: one HTTP server per source (REST and the WebSocket upgrade on the same port), which
# can be stopped and started again on the same port.


class Connection:
    def __init__(self, ws):
        self.ws = ws
        self.id = f"{random.getrandbits(32):08x}"
        self.topics = set()
        self.sequence = 0
        self.heartbeats = False
        self.beats = 0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass  # clients that hang up are not our concern


def make_handler(source):
    exchange = source.exchange

    class Handler(JsonHandler):
        def setup(self):
            super().setup()
            source.track(self.connection)

        def finish(self):
            source.untrack(self.connection)
            try:
                super().finish()
            except OSError:
                pass

        def do_GET(self):  # noqa: N802 - http.server's naming
            url = urlparse(self.path)
            if self.headers.get("Upgrade", "").lower() == "websocket":
                if exchange.ws_path is None or url.path != exchange.ws_path:
                    return self._json(404, {"message": "no stream here"})
                return self._websocket()
            answer = exchange.rest(url.path, parse_qs(url.query))
            if answer is None:
                return self._json(404, {"message": "not found"})
            self._json(*answer)

        def _websocket(self):
            key = self.headers.get("Sec-WebSocket-Key", "")
            accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
            self.send_response(101, "Switching Protocols")
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("Sec-WebSocket-Accept", accept)
            self.end_headers()
            self.wfile.flush()
            self.close_connection = True
            conn = Connection(WebSocket(self.connection, self.rfile))
            threading.Thread(target=self._push, args=(conn,), daemon=True).start()
            try:
                exchange.on_connect(conn)
                while True:
                    text = conn.ws.receive()
                    if text is None:
                        break
                    try:
                        exchange.on_message(conn, text)
                    except (ValueError, AttributeError, TypeError):
                        conn.ws.send({"error": "unreadable request"})
            except (OSError, ConnectionError):
                pass
            finally:
                conn.ws.close()

        def _push(self, conn):
            while not conn.ws.closed.wait(1):
                try:
                    exchange.tick(conn)
                except OSError:
                    conn.ws.close()

    return Handler


class Source:
    """One exchange on its own port: stop() closes the port and every connection on it."""

    def __init__(self, exchange, host="127.0.0.1"):
        self.exchange = exchange
        self.host = host
        self.lock = threading.Lock()
        self.sockets = set()
        self.server = None
        self.port = 0
        self.start()

    @property
    def up(self):
        return self.server is not None

    def urls(self):
        rest = f"http://{self.host}:{self.port}"
        ws = f"ws://{self.host}:{self.port}{self.exchange.ws_path}" if self.exchange.ws_path else None
        return {"rest": rest, "ws": ws, "up": self.up, "liar": self.exchange.factor != 1.0}

    def track(self, sock):
        with self.lock:
            self.sockets.add(sock)

    def untrack(self, sock):
        with self.lock:
            self.sockets.discard(sock)

    def start(self):
        with self.lock:
            if self.server is not None:
                return False
            server = _Server((self.host, self.port), make_handler(self))
            self.port = server.server_address[1]
            self.server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                         daemon=True).start()
        return True

    def stop(self):
        with self.lock:
            server, self.server = self.server, None
            open_sockets, self.sockets = list(self.sockets), set()
        if server is None:
            return False
        server.shutdown()
        server.server_close()
        for sock in open_sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        return True


def control_handler(sources, market):
    class Handler(JsonHandler):
        pretty = True

        def do_GET(self):  # noqa: N802
            path = urlparse(self.path).path.rstrip("/")
            if path == "/sources":
                return self._json(200, {n: s.urls() for n, s in sources.items()})
            if path == "/prices":
                return self._json(200, market.snapshot())
            self._json(404, {"error": f"unknown path {path[:100]!r}"})

        def do_POST(self):  # noqa: N802
            url = urlparse(self.path)
            parts = [unquote(p) for p in url.path.strip("/").split("/")]
            query = parse_qs(url.query)
            if len(parts) == 3 and parts[0] == "sources" and parts[2] in ("stop", "start"):
                source = sources.get(parts[1])
                if source is None:
                    return self._json(404, {"error": "unknown source", "sources": list(sources)})
                changed = source.stop() if parts[2] == "stop" else source.start()
                print(f"control: {parts[1]} {parts[2]}", file=sys.stderr, flush=True)
                return self._json(200, {"source": parts[1], "up": source.up, "changed": changed})
            if len(parts) in (2, 3) and parts[0] == "prices":
                asset = parts[1].upper()
                if asset not in INITIAL:
                    return self._json(404, {"error": "unknown asset", "assets": list(INITIAL)})
                try:
                    if len(parts) == 2:
                        value = float(query["usd"][0])
                        if not value > 0:
                            raise ValueError
                        market.set(asset, value)
                    elif parts[2] == "jump":
                        market.jump(asset, float(query["percent"][0]))
                    else:
                        raise KeyError
                except (KeyError, ValueError, IndexError):
                    return self._json(400, {"error": "give ?usd=<positive price> or "
                                                     "/jump?percent=<number>"})
                return self._json(200, {asset: market.snapshot()[asset]})
            self._json(404, {"error": f"unknown path {url.path[:100]!r}"})

        do_PUT = do_POST  # noqa: N815

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--liar", default="kucoin",
                        help="the source that quotes BTC and ETH 8%% too high (none: no liar)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the price walk")
    parser.add_argument("--no-jumps", action="store_true", help="no sudden 1-2%% moves")
    parser.add_argument("--control-port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1",
                        help="the address the exchanges listen on and name in their URLs (the "
                             "control port stays on 127.0.0.1)")
    parser.add_argument("--exit-on-stdin-eof", action="store_true",
                        help="exit when stdin closes (the parent died)")
    args = parser.parse_args()
    names = [e.name for e in EXCHANGES]
    if args.liar != "none" and args.liar not in names:
        parser.error(f"--liar: one of {', '.join(names)} or none")

    market = Market(args.seed, jumps=not args.no_jumps)
    sources = {e.name: Source(e(market, liar=e.name == args.liar), args.host) for e in EXCHANGES}
    control = _Server(("127.0.0.1", args.control_port), control_handler(sources, market))
    threading.Thread(target=control.serve_forever, kwargs={"poll_interval": 0.2},
                     daemon=True).start()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if args.exit_on_stdin_eof:
        def watch_stdin():
            sys.stdin.buffer.read()
            stop.set()
        threading.Thread(target=watch_stdin, daemon=True).start()

    print(json.dumps({"control": f"http://127.0.0.1:{control.server_address[1]}",
                      "sources": {n: s.urls() for n, s in sources.items()}}), flush=True)
    while not stop.wait(0.5):
        pass
    market.stopping.set()
    for source in sources.values():
        source.stop()
    control.shutdown()
    control.server_close()


if __name__ == "__main__":
    main()
