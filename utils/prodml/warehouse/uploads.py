"""Load-job uploads: the two protocols google-cloud-bigquery sends a file with.

* ``POST /upload/bigquery/v2/projects/{p}/jobs?uploadType=multipart``: one ``multipart/related``
  body, the job resource (JSON) and then the file's bytes (files under 5 MB).
* ``?uploadType=resumable``: a POST with the job resource answers a ``Location`` to ``PUT``
  the bytes to, in chunks with ``Content-Range: bytes a-b/total`` (``*`` while the total is
  unknown); each chunk but the last is answered ``308`` with the ``Range`` received so far, the
  last with the finished job.
"""

from __future__ import annotations

import json
import re
import threading
import uuid

from prodml.warehouse.errors import Invalid, NotFound

__all__ = ["split_multipart", "Resumable"]

_RANGE = re.compile(r"bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)")


def split_multipart(content_type: str, body: bytes) -> tuple[dict, bytes]:
    """The job resource and the file of a ``multipart/related`` upload."""
    match = re.search(r'boundary="?([^";]+)"?', content_type or "")
    if not match:
        raise Invalid("a multipart upload needs Content-Type: multipart/related; boundary=...")
    delimiter = b"--" + match.group(1).encode()
    parts = [p for p in body.split(delimiter)[1:] if not p.startswith(b"--")]
    if len(parts) != 2:
        raise Invalid(
            f"a multipart upload has two parts (the job, then the data), got {len(parts)}"
        )
    payloads = []
    for part in parts:
        head, sep, payload = part.partition(b"\r\n\r\n")
        if not sep:
            raise Invalid("a multipart upload part has no blank line after its headers")
        payloads.append(payload[:-2] if payload.endswith(b"\r\n") else payload)
    try:
        metadata = json.loads(payloads[0])
    except ValueError as err:
        raise Invalid(f"the job resource of a multipart upload is not JSON: {err}") from None
    return metadata, payloads[1]


class Resumable:
    """The resumable uploads in progress: upload id -> (project, job resource, bytes so far)."""

    def __init__(self):
        self._uploads: dict[str, tuple[str, dict, bytearray]] = {}
        self._lock = threading.Lock()

    def start(self, project: str, metadata: dict) -> str:
        upload_id = uuid.uuid4().hex
        with self._lock:
            self._uploads[upload_id] = (project, metadata, bytearray())
        return upload_id

    def put(self, upload_id: str, content_range: str | None, chunk: bytes):
        """Add a chunk; ``(project, job resource, file bytes)`` once the last one is in, or the
        number of bytes received so far."""
        with self._lock:
            if upload_id not in self._uploads:
                raise NotFound(f"Not found: upload {upload_id} (unknown or finished)")
            project, metadata, data = self._uploads[upload_id]
        match = _RANGE.fullmatch(
            (content_range or f"bytes 0-{len(chunk) - 1}/{len(chunk)}").strip()
        )
        if not match:
            raise Invalid(f"Content-Range {content_range!r} is not 'bytes a-b/total'")
        first, total = match.group(1), match.group(3)
        if first is not None and int(first) != len(data):
            raise Invalid(f"chunk starts at byte {first} but {len(data)} bytes were received")
        data.extend(chunk)
        if total != "*" and len(data) >= int(total):
            with self._lock:
                self._uploads.pop(upload_id, None)
            return project, metadata, bytes(data)
        return len(data)
