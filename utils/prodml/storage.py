"""Object storage through fsspec: a local folder by default, ``gs://bucket`` when configured.

Notebooks write ``storage.path("babyweight", "export")`` and get a local path or a ``gs://`` URL;
:func:`filesystem` returns the fsspec filesystem that reads and writes it (gcsfs for ``gs://``,
which authenticates with Application Default Credentials).

:class:`LatencyFileSystem` (protocol ``latency://``) is a local folder that answers with the
latency of a remote object store, a fixed delay per open and per block read, so that lessons on
parallel reads and input pipelines measure on a laptop what they would on Cloud Storage.
"""

from __future__ import annotations

import shutil
import threading
import time

import fsspec
import fsspec.spec
from fsspec.implementations.local import LocalFileSystem
from fsspec.utils import stringify_path

from prodml import config


def root() -> str:
    """The storage root: a local folder path or a ``gs://bucket[/prefix]`` URL."""
    return config.settings().storage


def path(*parts: str) -> str:
    """A location under the storage root, as a string fsspec, TensorFlow and Beam all accept."""
    base = root()
    bad = [p for p in parts if not p or p.startswith("/") or ".." in p.split("/")]
    if bad:
        raise ValueError(f"storage path parts must be relative and non-empty, got {bad}")
    return "/".join([base, *parts])


def filesystem(url: str | None = None) -> fsspec.AbstractFileSystem:
    """The fsspec filesystem for ``url`` (default: the storage root)."""
    url = url or root()
    protocol = url.split("://", 1)[0] if "://" in url else "file"
    if protocol == "gs":
        try:
            import gcsfs  # noqa: F401
        except ImportError as err:  # pragma: no cover - depends on the optional extra
            raise ImportError("gs:// storage needs gcsfs: pip install 'prodml[gcp]'") from err
    return fsspec.filesystem(protocol)


def makedirs(url: str) -> str:
    """Create a folder (a no-op prefix on GCS) and return it."""
    filesystem(url).makedirs(url, exist_ok=True)
    return url


# --- A local folder that answers like a remote object store -----------------------------------
#
# Object stores (GCS, S3) answer every request after a round trip: tens of milliseconds before
# the first byte of a file, and again for each ranged read. That latency, not bandwidth or CPU,
# is what makes a naive input pipeline slow, and a local folder has none of it. Nothing in
# fsspec adds latency (its local and memory filesystems answer at once), so this small
# filesystem is written here: the local filesystem plus a fixed delay per open and per block
# read. Reads go through fsspec's own buffering (``AbstractBufferedFile``), so each block of
# ``block_size`` bytes fetched is one delayed request, as a ranged GET is on GCS.

LATENCY_PROTOCOL = "latency"


class LatencyFile(fsspec.spec.AbstractBufferedFile):
    """A file opened for reading through :class:`LatencyFileSystem`: every block fetched from
    the local file first waits ``read_latency`` seconds."""

    def __init__(self, fs: LatencyFileSystem, path: str, **kwargs):
        self._local = open(path, "rb")  # noqa: SIM115 - closed in close()
        super().__init__(fs, path, mode="rb", **kwargs)

    def _fetch_range(self, start: int, end: int) -> bytes:
        self.fs._delay("reads", self.fs.read_latency)
        self._local.seek(start)
        data = self._local.read(end - start)
        self.fs._count("bytes_read", len(data))
        return data

    def close(self) -> None:
        super().close()
        self._local.close()


class LatencyFileSystem(LocalFileSystem):
    """The local filesystem with the latency of a remote object store, for teaching and tests.

    Paths are local paths, with or without the ``latency://`` prefix
    (``latency:///tmp/data/part-0.csv``). Opening a file waits ``open_latency`` seconds (the
    metadata request); reading fetches ``block_size`` bytes at a time and waits
    ``read_latency`` seconds per block (a ranged GET); ``cat``, ``get`` and ``cp`` read the same
    way. Writes (``open(..., "wb")``, ``put``), listings and ``info`` are local and immediate. The waits are ``time.sleep``: they release the GIL, so parallel readers
    overlap them as parallel requests to a real store do.

    ``fs.stats()`` counts the opens, block reads and bytes read since ``fs.reset_stats()``
    (thread-safe). Get one with ``fsspec.filesystem("latency", open_latency=0.05,
    read_latency=0.01, block_size=2**16)`` (the protocol is registered when ``prodml.storage``
    is imported) or construct it directly.
    """

    protocol = (LATENCY_PROTOCOL,)

    def __init__(
        self,
        open_latency: float = 0.05,
        read_latency: float = 0.01,
        block_size: int = 2**20,
        **kwargs,
    ):
        for name, value in (("open_latency", open_latency), ("read_latency", read_latency)):
            if not isinstance(value, int | float) or not 0 <= value < 60:
                raise ValueError(f"{name} must be a number of seconds in [0, 60), got {value!r}")
        if not isinstance(block_size, int) or block_size <= 0:
            raise ValueError(f"block_size must be a positive number of bytes, got {block_size!r}")
        super().__init__(**kwargs)
        self.open_latency = float(open_latency)
        self.read_latency = float(read_latency)
        self.block_size = self.blocksize = block_size  # blocksize: what fsspec's get() reads
        self._lock = threading.Lock()
        self.reset_stats()

    @classmethod
    def _strip_protocol(cls, path):
        path = stringify_path(path)
        if isinstance(path, str) and path.startswith(f"{LATENCY_PROTOCOL}://"):
            path = path[len(LATENCY_PROTOCOL) + 3 :]
        return super()._strip_protocol(path)

    def unstrip_protocol(self, name: str) -> str:
        return f"{LATENCY_PROTOCOL}://{self._strip_protocol(name)}"

    def reset_stats(self) -> None:
        """Set the counts of :meth:`stats` to zero."""
        with self._lock:
            self._stats = {"opens": 0, "reads": 0, "bytes_read": 0}

    def stats(self) -> dict[str, int]:
        """Opens, block reads and bytes read since the last :meth:`reset_stats`."""
        with self._lock:
            return dict(self._stats)

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._stats[key] += n

    def _delay(self, key: str, seconds: float) -> None:
        self._count(key)
        if seconds:
            time.sleep(seconds)

    def _open(self, path, mode="rb", block_size=None, **kwargs):
        path = self._strip_protocol(path)
        self._delay("opens", self.open_latency)
        if "r" not in mode or "+" in mode:  # writing is local and immediate
            return super()._open(path, mode=mode, block_size=block_size, **kwargs)
        kwargs.pop("autocommit", None)
        kwargs.setdefault("cache_type", "blockcache")  # one fetch, one delay per block
        return LatencyFile(self, path, block_size=block_size or self.block_size, **kwargs)

    def cp_file(self, path1, path2, **kwargs):
        """Copy within the store: a delayed read of ``path1``, an immediate write of ``path2``."""
        with self.open(path1, "rb") as source, self.open(path2, "wb") as target:
            shutil.copyfileobj(source, target, self.block_size)

    def get_file(self, rpath, lpath, callback=None, **kwargs):
        """Download to a local path: delayed like any read (the local filesystem copies)."""
        return fsspec.AbstractFileSystem.get_file(self, rpath, lpath, callback=callback, **kwargs)

    def put_file(self, lpath, rpath, callback=None, **kwargs):
        """Upload from a local path: immediate, as every write here."""
        return LocalFileSystem.cp_file(self, lpath, rpath, **kwargs)


fsspec.register_implementation(LATENCY_PROTOCOL, LatencyFileSystem, clobber=True)
