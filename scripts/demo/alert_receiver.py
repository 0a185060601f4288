#!/usr/bin/env python3
"""A local receiver for the enclave's generic JSON webhook alerts (stdlib only), for the offline
demo: each notification becomes one readable line, and its body one JSON line in a log file.

  [alert] FIRING critical sources_unavailable USDC-USD: USDC-USD has no price: …
  [alert] RESOLVED sources_unavailable USDC-USD after 21 s: USDC-USD has no price: …

scripts/demo/demo.py runs it inside the demo (its lines go into the demo's output, the bodies
into alerts.jsonl in the demo directory). On its own:

  alert_receiver.py [--port N] [--log FILE]

prints one JSON line {"url": "http://127.0.0.1:<port>/alerts"} when ready, then one line per
notification, until SIGTERM/SIGINT. The body is the enclave's webhook format, version 1 (docs/operator/
metrics-and-alerts.md, "Channels and what they receive"). Anything else is answered 400 and noted in one line.
"""

import argparse
import json
import signal
import sys
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PATH = "/alerts"
# A notification is a few hundred bytes; the enclave caps the summary. More is not an alert.
MAX_BODY = 64 * 1024
MAX_FIELD = 500


def printable(value, limit=MAX_FIELD):
    """A field of the body as it may be shown on a terminal: no control characters (a body
    must not move the cursor or change colours), at most `limit` characters."""
    text = value if isinstance(value, str) else json.dumps(value)
    text = "".join(c if c.isprintable() else " " for c in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _parse_time(text):
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


def describe(body):
    """The one line shown for a notification (version 1 of the enclave's webhook body)."""
    status = str(body.get("status", ""))
    alert = printable(body.get("alert", "?"), 60)
    subject = printable(body.get("subject", "?"), 100)
    summary = printable(body.get("summary", ""))
    if status == "firing":
        word = "STILL FIRING" if body.get("reminder") else "FIRING"
        severity = printable(body.get("severity", ""), 20)
        return f"[alert] {word} {severity} {alert} {subject}: {summary}"
    if status == "resolved":
        start, end = _parse_time(body.get("startsAt")), _parse_time(body.get("endsAt"))
        after = ""
        if start and end and end >= start:
            after = f" after {int((end - start).total_seconds())} s"
        return f"[alert] RESOLVED {alert} {subject}{after}: {summary}"
    return f"[alert] {printable(status, 20).upper() or '?'} {alert} {subject}: {summary}"


class Receiver:
    """An HTTP server on 127.0.0.1 taking POST /alerts; `on_line` gets each line to show and
    `log` (a path, optional) gets each accepted body as one JSON line."""

    def __init__(self, on_line, log=None, port=0):
        self.on_line = on_line
        self.log = log
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{PATH}"
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.2}, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        if self.thread.is_alive():
            self.server.shutdown()
        self.server.server_close()

    def accept(self, body):
        with self.lock:
            if self.log:
                with open(self.log, "a") as f:
                    f.write(json.dumps(body, separators=(",", ":")) + "\n")
            self.on_line(describe(body))

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _answer(self, code, text=""):
                data = text.encode()
                self.send_response(code)
                self.send_header("Content-Length", str(len(data)))
                if data:
                    self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):  # noqa: N802 - http.server's naming
                if self.path.split("?")[0] != PATH:
                    return self._answer(404, f"POST {PATH}\n")
                try:
                    length = int(self.headers.get("Content-Length", ""))
                except ValueError:
                    return self._answer(411, "Content-Length required\n")
                if not 0 < length <= MAX_BODY:
                    self.close_connection = True
                    return self._answer(413, f"at most {MAX_BODY} bytes\n")
                try:
                    body = json.loads(self.rfile.read(length))
                    if not isinstance(body, dict) or body.get("version") != 1:
                        raise ValueError("not a version 1 notification")
                except ValueError as e:
                    receiver.on_line(f"[alert] unreadable notification refused: {printable(str(e), 200)}")
                    return self._answer(400, "expected the enclave's JSON webhook body, version 1\n")
                receiver.accept(body)
                self._answer(204)

        return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--log", help="append each notification's body to this file (JSON lines)")
    args = parser.parse_args()

    def show(line):
        print(line, flush=True)

    receiver = Receiver(show, args.log, args.port).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(json.dumps({"url": receiver.url}), flush=True)
    while not stop.wait(0.5):
        pass
    receiver.stop()


if __name__ == "__main__":
    sys.exit(main())
