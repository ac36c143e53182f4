"""Atomic writes: a file appears under its final name complete or not at all.

Sessions, fits and every output of `calibrate` (config, schema, golden vectors, calibration.json) are written to
a temporary file in the same directory and renamed over the final name (`os.replace` is atomic on
POSIX within one file system), so an interrupted export never leaves a half-written file where a
production bot would read it; the temporary file is removed on any error.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is fsynced and renamed to `path`, on
    error removed (and `path`, if it existed, is left as it was)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # as an ordinary open() would create it, not mkstemp's 0600
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: str | Path, data: bytes | str | Callable[[Path], object]) -> Path:
    """Write bytes, text, or whatever `data(tmp_path)` writes, atomically to `path`."""
    with atomic_path(path) as tmp:
        if callable(data):
            data(tmp)
        else:
            tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    return Path(path)
