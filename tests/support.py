"""Test support: stub HTTP servers on loopback, and Google API clients pointed at a local URL."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class JSONHandler(BaseHTTPRequestHandler):
    """A quiet request handler that answers JSON (an object, or bytes already encoded)."""

    def send_json(self, status: int, payload) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def read_json(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return raw, (json.loads(raw) if raw else None)

    def log_message(self, *args):
        pass


class LoopbackServer:
    """Serve a handler class on 127.0.0.1 at a free port, in a background thread."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def google_api(name: str, version: str, url: str):
    """The Google API client (static discovery document) for a local endpoint, no credentials."""
    from google.auth.credentials import AnonymousCredentials
    from googleapiclient import discovery

    return discovery.build(
        name,
        version,
        client_options={"api_endpoint": url},
        credentials=AnonymousCredentials(),
        cache_discovery=False,
    )
