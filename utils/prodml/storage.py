"""Object storage through fsspec: a local folder by default, ``gs://bucket`` when configured.

Notebooks write ``storage.path("babyweight", "export")`` and get a local path or a ``gs://`` URL;
:func:`filesystem` returns the fsspec filesystem that reads and writes it (gcsfs for ``gs://``,
which authenticates with Application Default Credentials).
"""

from __future__ import annotations

import fsspec

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
