"""Local stand-ins for the price sources the dashboard check uses (stdlib only).

- Binance-format REST: `GET /api/v3/ticker/price?symbol=BTCUSDT` → `{"symbol":"BTCUSDT","price":"…"}`,
  `?symbols=["BTCUSDT","ETHUSDT"]` → a list (ocr-and-sources.md B.1). Unknown symbols → 400
  `{"code":-1121,"msg":"Invalid symbol."}` as Binance answers.
- Binance-format WebSocket (`ws://…/ws`): `{"method":"SUBSCRIBE","params":["btcusdt@miniTicker"],"id":1}`
  → `{"result":null,"id":1}`, then a `24hrMiniTicker` event per subscribed symbol every second. The
  first connection is dropped after `drop_after` seconds, so a reconnect really happens.
- Anything under `/okx/` answers 503: a source that is down, so failure panels have data.

Prices take a slow random walk (±0.3 % every 5 s) so that some rounds report on deviation and
others are skipped.
"""

import base64
import hashlib
import json
import random
import socket
import threading
import time
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import ws_frames
from json_http import JsonHandler

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Prices:
    def __init__(self, initial):
        self._lock = threading.Lock()
        self._prices = dict(initial)
        self._stop = threading.Event()
        threading.Thread(target=self._walk, daemon=True).start()

    def _walk(self):
        while not self._stop.wait(5):
            with self._lock:
                for symbol, price in self._prices.items():
                    self._prices[symbol] = price * (1 + random.uniform(-0.003, 0.003))

    def get(self, symbol):
        with self._lock:
            price = self._prices.get(symbol)
        return None if price is None else f"{price:.2f}"

    def symbols(self):
        with self._lock:
            return list(self._prices)

    def stop(self):
        self._stop.set()


def binance_subscription(topics, message):
    """Applies a Binance stream's SUBSCRIBE or UNSUBSCRIBE `message` to the set `topics`;
    returns Binance's reply."""
    params = message.get("params", [])
    if message.get("method") == "SUBSCRIBE":
        topics.update(params)
    elif message.get("method") == "UNSUBSCRIBE":
        topics.difference_update(params)
    return {"result": None, "id": message.get("id")}


def _rest_handler(prices):
    class Handler(JsonHandler):
        def do_GET(self):
            url = urlparse(self.path)
            if url.path.startswith("/okx/"):
                return self._json(503, {"code": "50001", "msg": "Service temporarily unavailable"})
            if url.path != "/api/v3/ticker/price":
                return self._json(404, {"code": -1, "msg": "not found"})
            query = parse_qs(url.query)
            invalid = (400, {"code": -1121, "msg": "Invalid symbol."})
            if "symbol" in query:
                price = prices.get(query["symbol"][0])
                if price is None:
                    return self._json(*invalid)
                return self._json(200, {"symbol": query["symbol"][0], "price": price})
            wanted = json.loads(query["symbols"][0]) if "symbols" in query else prices.symbols()
            out = []
            for symbol in wanted:
                price = prices.get(symbol)
                if price is None:
                    return self._json(*invalid)
                out.append({"symbol": symbol, "price": price})
            return self._json(200, out)

    return Handler


class _WsConnection:
    def __init__(self, sock, prices, drop_after):
        self.sock = sock
        self.prices = prices
        self.drop_after = drop_after
        self.topics = set()
        self.lock = threading.Lock()
        self.closed = threading.Event()

    def send(self, opcode, payload):
        with self.lock:
            self.sock.sendall(ws_frames.encode(opcode, payload))

    def _read_exact(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    def _read_frame(self):
        return ws_frames.read_frame(self._read_exact)

    def reader(self):
        try:
            while not self.closed.is_set():
                opcode, payload = self._read_frame()
                if opcode == 0x8:  # close
                    self.send(0x8, payload[:2])
                    break
                if opcode == 0x9:  # ping
                    self.send(0xA, payload)
                elif opcode == 0x1:
                    reply = binance_subscription(self.topics, json.loads(payload))
                    self.send(0x1, json.dumps(reply).encode())
        except (OSError, ConnectionError, ValueError):
            pass
        finally:
            self.close()

    def writer(self):
        started = time.monotonic()
        while not self.closed.wait(1):
            if self.drop_after is not None and time.monotonic() - started > self.drop_after:
                self.close()  # an abrupt drop, as a network failure
                return
            for topic in list(self.topics):
                symbol = topic.split("@")[0].upper()
                price = self.prices.get(symbol)
                if price is None:
                    continue
                event = {"e": "24hrMiniTicker", "E": int(time.time() * 1000), "s": symbol,
                         "c": price, "o": price, "h": price, "l": price, "v": "1", "q": price}
                try:
                    self.send(0x1, json.dumps(event).encode())
                except OSError:
                    self.close()
                    return

    def close(self):
        if not self.closed.is_set():
            self.closed.set()
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()


class WsServer:
    def __init__(self, prices, drop_first_after=30):
        self.prices = prices
        self.drop_first_after = drop_first_after
        self.connections = 0
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock):
        try:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = sock.recv(4096)
                if not chunk:
                    return sock.close()
                request += chunk
            headers = {}
            for line in request.split(b"\r\n")[1:]:
                if b":" in line:
                    k, v = line.split(b":", 1)
                    headers[k.strip().lower().decode()] = v.strip().decode()
            key = headers.get("sec-websocket-key", "")
            accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
            sock.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + "\r\n\r\n").encode())
        except OSError:
            return sock.close()
        self.connections += 1
        drop = self.drop_first_after if self.connections == 1 else None
        connection = _WsConnection(sock, self.prices, drop)
        threading.Thread(target=connection.writer, daemon=True).start()
        connection.reader()

    def stop(self):
        self.listener.close()


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # clients that hang up (timeouts, shutdown) are not our concern


class FakeExchange:
    """REST on `self.rest_base`, WebSocket on `self.ws_url`."""

    def __init__(self, initial_prices, drop_first_ws_after=30):
        self.prices = Prices(initial_prices)
        self.http = _QuietServer(("127.0.0.1", 0), _rest_handler(self.prices))
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.rest_base = f"http://127.0.0.1:{self.http.server_address[1]}"
        self.ws = WsServer(self.prices, drop_first_ws_after)
        self.ws_url = f"ws://127.0.0.1:{self.ws.port}/ws"

    def stop(self):
        self.prices.stop()
        self.ws.stop()
        self.http.shutdown()
        self.http.server_close()
