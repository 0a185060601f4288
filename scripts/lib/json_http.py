"""The base of the local stand-ins' HTTP handlers (scripts/lib/fake_exchange.py,
scripts/demo/exchanges.py): HTTP/1.1 with keep-alive, as the enclave's clients speak it, no access
log on the output, and JSON replies."""

import json
from http.server import BaseHTTPRequestHandler


class JsonHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Indented, newline-terminated JSON for replies a person reads (curl); compact otherwise,
    # as the exchanges answer.
    pretty = False

    def log_message(self, *args):
        pass

    def _json(self, code, body):
        if self.pretty:
            data = json.dumps(body, indent=1).encode() + b"\n"
        else:
            data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
