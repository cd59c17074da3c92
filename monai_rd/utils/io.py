"""Small shared helpers: atomic file writes and content hashes."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from typing import Any

__all__ = ["atomic_path", "atomic_write_text", "atomic_write_json", "sha256_file", "sha256_json"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[str]:
    """Yield a temporary path in ``path``'s folder; on success it is renamed onto ``path``, on error removed.

    Whatever is written to the yielded path appears at ``path`` all at once, so a reader never sees a
    half-written file, even if the process is killed mid-write. The file gets the usual permissions
    (``0o666`` less the umask), not the ``0o600`` of a temporary file.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=suffix)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it: put it back at once
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> str:
    """Write ``text`` to ``path`` through :func:`atomic_path` (temporary file, fsync, rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    return os.fspath(path)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> str:
    """:func:`atomic_write_text` of ``obj`` as indented JSON."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def sha256_json(obj: Any) -> str:
    """Hex SHA-256 of ``obj``'s canonical JSON (sorted keys)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()
