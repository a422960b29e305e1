"""Atomic writes: a file or a folder appears whole or not at all, even if the process dies half-way."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str | Path, blob: bytes) -> Path:
    """Write ``blob`` to ``path`` through a temp file, fsync and rename (readers see the old or the new file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; return the path."""
    return write_atomic(path, text.encode("utf-8"))


def save_arrays_atomic(path: str | Path, array: np.ndarray | None = None, **arrays: np.ndarray) -> Path:
    """Save one array as ``.npy`` (``array``) or several as ``.npz`` (keywords) to ``path`` atomically."""
    buf = io.BytesIO()
    if array is not None:
        np.save(buf, array)
    else:
        np.savez(buf, **arrays)
    return write_atomic(path, buf.getvalue())


@contextmanager
def atomic_folder(final: str | Path, keep_existing: bool = False) -> Iterator[Path]:
    """Yield an empty temp folder beside ``final``; on success rename it to ``final``, on error remove it.

    ``keep_existing``: if another process created ``final`` first, keep theirs (for caches of the same
    content); otherwise an existing ``final`` raises FileExistsError before anything is written.
    """
    final = Path(final)
    if final.exists() and not keep_existing:
        raise FileExistsError(f"{final} exists")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        yield tmp
        try:
            tmp.rename(final)
        except OSError:
            if not (keep_existing and final.exists()):
                raise
        else:
            _fsync_dir(final.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
