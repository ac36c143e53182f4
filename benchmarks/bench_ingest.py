"""Ingest throughput on the real Binance perp recording, in raw messages per second on one core.

Stages are timed separately (gunzip + line split/sort, JSON decode alone, the full ingest) so the
report says what bounds the rate. Aim (issue 2): 250,000 messages/s.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from bayesmm.events import ingest
from bayesmm.events.lines import IngestReport, read_lines
from benchmarks._timing import best_of

PERP = Path(__file__).resolve().parents[1] / "data" / "binance-usdm-btcusdt-20240808.gz"




def run(path=PERP) -> dict:
    lines = read_lines(path, IngestReport())
    n = len(lines)
    t_read = best_of(lambda: read_lines(path, IngestReport()))
    t_json = best_of(lambda: [orjson.loads(p) for _, _, p in lines])
    t_full = best_of(lambda: ingest(path))
    out = {
        "messages": n,
        "read_lines_msgs_per_s": n / t_read,
        "json_decode_only_msgs_per_s": n / t_json,
        "full_ingest_msgs_per_s": n / t_full,
        "full_ingest_s": t_full,
    }
    for k, v in out.items():
        print(f"  {k:<30} {v:>14,.0f}" if v > 100 else f"  {k:<30} {v:>14.3f}")
    return out


def smoke() -> dict:
    """The same measurements on the 4-second Hyperliquid file."""
    from tests.conftest import HL

    return run(HL)


if __name__ == "__main__":
    run()
