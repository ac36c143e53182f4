"""Shared test fixtures: paths to the real recordings and a writer for small hand-made ones."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import jax
import pytest

from bayesmm.compilation_cache import ENV_DIR, enable

# Reference numbers are checked to 1e-10 in float64; float32 tests ask for their dtype explicitly.
jax.config.update("jax_enable_x64", True)

ROOT = Path(__file__).resolve().parents[1]

# JAX's persistent compilation cache (bayesmm/compilation_cache.py), exported so that the notebooks'
# kernels and the CLI's subprocesses share it; `make test` points it at .jax-cache in the checkout
enable(os.environ.get(ENV_DIR) or ROOT / ".jax-cache", export=True)

DATA = ROOT / "data"
PERP = DATA / "binance-usdm-btcusdt-20240808.gz"
SPOT = DATA / "binance-spot-btcusdt-20240808.gz"
HL = DATA / "hyperliquid-btc-20250126.gz"


def raw_messages(path: Path) -> list[tuple[int, dict]]:
    """The recording parsed with the standard library only (an independent reference)."""
    out = []
    with gzip.open(path, "rt") as f:
        for line in f:
            ts, payload = line.split(" ", 1)
            out.append((int(ts), json.loads(payload)))
    return out


@pytest.fixture
def write_recording(tmp_path):
    """Write `<ts_ns> <json>` lines (dicts are JSON-encoded, strings written as they are)."""

    def _write(lines, name="rec.txt"):
        path = tmp_path / name
        with open(path, "w") as f:
            for item in lines:
                if isinstance(item, str):
                    f.write(item + "\n")
                else:
                    ts, msg = item
                    f.write(f"{ts} {json.dumps(msg)}\n")
        return path

    return _write


@pytest.fixture(scope="session")
def perp_session():
    """The real Binance perp recording, ingested once for the whole run."""
    from bayesmm.events import ingest

    return ingest(PERP)


@pytest.fixture(autouse=True)
def _release_compiled_code():
    """After each test, drop JAX's compiled executables once they hold a quarter of the kernel's
    memory-mapping limit. A test worker compiles hundreds of programs (fits, closed loops, replays of
    many configs); their machine code accumulated until LLVM could not map more ("Cannot allocate
    memory", then a segfault: once in the slow tests' 5th NUTS fit, once writing the closed loop's
    program to the compilation cache after a worker's hundredth test). Counting the mappings reads
    /proc/self/maps: milliseconds."""
    yield
    from bayesmm.models.fit import release_compiled_code  # (not at start-up: it imports NumPyro and ArviZ)

    release_compiled_code(share=0.25)
