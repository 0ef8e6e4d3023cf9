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


# -- a toy SavedModel with babyweight's serving signatures (serving and pipeline tests) ---------
INSTANCE = {"is_male": "True", "mother_age": 26.0, "plurality": "Single(1)", "gestation_weeks": 39}


def toy_weight(instance: dict, scale: float = 1.0) -> float:
    """What the toy model answers for ``instance`` (float64; the model computes in float32)."""
    male = 1.0 if instance["is_male"] == "True" else 0.0
    single = 1.0 if instance["plurality"] == "Single(1)" else 0.0
    return scale * (
        0.2 * instance["gestation_weeks"]
        - 0.01 * instance["mother_age"]
        + 0.3 * male
        + single
        - 1.0
    )


def export_toy_model(base_dir, version: int = 1, scale: float = 1.0, column: bool = False):
    """Write ``base_dir/<version>/`` with signatures ``serving_default`` and ``keyed``.

    A real SavedModel (a ``tf.Module`` with ``tf.function`` signatures), not trained: its
    weight is :func:`toy_weight` times ``scale``, so tests tell versions apart by their answers.
    ``column=True`` gives ``weight`` the shape ``[None, 1]`` (the course's Keras model: a
    one-element list per instance) instead of ``[None]`` (a scalar per instance).
    """
    from pathlib import Path

    import tensorflow as tf

    S, F = tf.string, tf.float32
    features = [tf.TensorSpec([None], S, name="is_male"), tf.TensorSpec([None], F, name="mother_age"),
                tf.TensorSpec([None], S, name="plurality"), tf.TensorSpec([None], F, name="gestation_weeks")]  # fmt: skip

    class Toy(tf.Module):
        def __init__(self):
            super().__init__()
            self.scale = tf.Variable(scale, dtype=F, trainable=False)

        def weight(self, is_male, mother_age, plurality, gestation_weeks):
            male = tf.cast(tf.equal(is_male, "True"), F)
            single = tf.cast(tf.equal(plurality, "Single(1)"), F)
            w = self.scale * (0.2 * gestation_weeks - 0.01 * mother_age + 0.3 * male + single - 1.0)
            return tf.expand_dims(w, -1) if column else w

        @tf.function(input_signature=features)
        def serve(self, is_male, mother_age, plurality, gestation_weeks):
            return {"weight": self.weight(is_male, mother_age, plurality, gestation_weeks)}

        @tf.function(input_signature=[tf.TensorSpec([None], S, name="key"), *features])
        def keyed(self, key, is_male, mother_age, plurality, gestation_weeks):
            w = self.weight(is_male, mother_age, plurality, gestation_weeks)
            return {"weight": w, "key": tf.identity(key)}

    toy = Toy()
    path = Path(base_dir) / str(version)
    tf.saved_model.save(
        toy, str(path), signatures={"serving_default": toy.serve, "keyed": toy.keyed}
    )
    return path
