"""Golden test vectors: event streams with the beliefs and quotes this reference implementation
computes for them under a configuration, so that a production bot can prove it computes the same.

Streams (each a short, named sequence of events chosen to exercise one rule):
- `burst`: eight own buy fills, six of them inside 2 s (the burst term and the emergency-cancel
  signal), each followed 5 s later by its adverse-selection event;
- `gap`: a falling tape, then an hour with no message, then more: the belief restarts at the
  first event after the gap (`segment_start`);
- `reduce_only`: a falling mid and bearish fills while long, then a recovery (reduce-only
  entered above p_reduce and left below p_resume: the hysteresis);
- `quotes`: own_quote events - our ask near the mid, our bid deep, one bid withdrawn (NaN) - and
  the ask fills they bring in a falling market (the survival term of `online.belief`);
- `hyperliquid_own_fills`: the bundled Hyperliquid BTC recording with a userFills message of our
  own fills, through the real ingest path (venue grid, five significant figures);
- `session`: the first 2,000 events of the calibration session itself.

Each row is one event: its inputs (the `events.EventArrays` fields the filter and quoter read,
plus our position), the belief after it (every `online.belief.Beliefs` field, p_regime split per
regime) and the quote at that moment (every `online.quoter.Quote` field; ladders as lists). The
file records the configuration's hash: vectors belong to one config.

`check` re-runs the streams and compares every output exactly (bit-identical floats) or reports
the first mismatch: stream, event, field, both values.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bayesmm.events.atomic import write_atomic
from bayesmm.events.features import EventArrays, to_arrays
from bayesmm.events.kinds import KIND_ID
from bayesmm.online.belief import Event
from bayesmm.online.params import REGIMES, Config, config_to_dict
from bayesmm.online.quoter import Market, Quote, quote, quoter_init
from bayesmm.online.replay import as_events, run

_INPUTS = EventArrays._fields
_META_KEY = b"bayesmm.golden"


def config_hash(cfg: Config) -> str:
    """sha256 of the configuration's values (canonical JSON): which config a golden file belongs to."""
    return hashlib.sha256(json.dumps(config_to_dict(cfg), sort_keys=True).encode()).hexdigest()


def _arrays(rows: list[dict]) -> EventArrays:
    """EventArrays from hand-written rows (the helper form of the online tests): times accumulate
    from dt_s, the mid from ret_bps, missing fields are 0; valid = 1."""
    n = len(rows)
    col = {f: np.zeros(n) for f in _INPUTS}
    t, mid = 0.0, 100.0
    for i, r in enumerate(rows):
        t += r.get("dt_s", 0.0)
        mid *= 1 + r.get("ret_bps", 0.0) / 1e4
        col["t_s"][i], col["mid"][i], col["valid"][i] = t, mid, 1.0
        col["kind"][i] = KIND_ID[r["kind"]]
        col["spread_bps"][i] = r.get("spread_bps", 2.0)
        for f in ("dt_s", "side", "size", "as_bps", "ret_bps", "ret_dt_s", "imbalance", "cv_ret_bps", "price",
                  "segment_start", "depth_bps"):
            col[f][i] = r.get(f, 0.0)
    col["kind"] = col["kind"].astype(np.int32)
    return EventArrays(**col)


def _burst() -> tuple[EventArrays, np.ndarray]:
    rows = [{"kind": "book_update", "dt_s": 0.5, "imbalance": 0.1}]
    for i in range(8):
        rows.append({"kind": "own_fill", "side": 1, "size": 1.0, "dt_s": 0.3 if 1 <= i <= 5 else 1.5})
    for _ in range(8):
        rows.append({"kind": "adverse_selection", "side": 1, "as_bps": 15.0, "spread_bps": 7.0, "dt_s": 0.3})
    rows.append({"kind": "mid_tick", "ret_bps": -3.0, "ret_dt_s": 4.0, "dt_s": 1.0})
    return _arrays(rows), np.linspace(0.0, 8.0, len(rows))


def _gap() -> tuple[EventArrays, np.ndarray]:
    rows = []
    for i in range(6):
        rows += [{"kind": "trade_print", "side": -1, "dt_s": 0.2}, {"kind": "mid_tick", "ret_bps": -1.0 - i * 0.1,
                                                                      "ret_dt_s": 1.0, "dt_s": 0.8}]
    rows += [{"kind": "own_fill", "side": 1, "dt_s": 0.5},
             {"kind": "book_update", "dt_s": 3600.0, "imbalance": -0.2, "segment_start": 1.0}]
    rows += [{"kind": "mid_tick", "ret_bps": 0.0, "ret_dt_s": 0.0, "dt_s": 0.5},  # the first tick after a gap
             {"kind": "mid_tick", "ret_bps": 2.0, "ret_dt_s": 0.3, "dt_s": 0.3},
             {"kind": "cv_tick", "cv_ret_bps": 1.5, "dt_s": 0.1}]
    return _arrays(rows), np.full(len(rows), -2.0)


def _reduce_only() -> tuple[EventArrays, np.ndarray]:
    rows = []
    for _ in range(10):
        rows += [{"kind": "mid_tick", "ret_bps": -4.0, "ret_dt_s": 1.0, "dt_s": 0.5},
                 {"kind": "own_fill", "side": 1, "dt_s": 0.5}]
    for _ in range(12):
        rows += [{"kind": "mid_tick", "ret_bps": 3.0, "ret_dt_s": 1.0, "dt_s": 0.5},
                 {"kind": "own_fill", "side": -1, "dt_s": 0.5}]
    position = np.concatenate([np.linspace(2.0, 4.87, 20), np.linspace(4.87, 3.0, 24)])
    return _arrays(rows), position


def _quotes() -> tuple[EventArrays, np.ndarray]:
    rows = [{"kind": "mid_tick", "ret_bps": -1.0, "ret_dt_s": 1.0, "dt_s": 1.0}]
    for i in range(8):  # a lopsided quote (near ask, deep bid), ask fills, one side withdrawn (NaN) and back
        rows += [{"kind": "own_quote", "side": 1, "depth_bps": np.nan if i == 5 else 9.0 + i, "dt_s": 0.2},
                 {"kind": "own_quote", "side": -1, "depth_bps": 1.0 + 0.25 * i, "dt_s": 0.0},
                 {"kind": "own_fill", "side": -1, "dt_s": 1.5},
                 {"kind": "mid_tick", "ret_bps": -2.0, "ret_dt_s": 1.7, "dt_s": 0.0}]
    return _arrays(rows), np.linspace(3.0, -5.0, len(rows))


def _hyperliquid(tmp: Path) -> tuple[EventArrays, np.ndarray]:
    """The bundled Hyperliquid recording with our own fills in a userFills message."""
    import gzip

    from bayesmm.events import ingest

    rec = Path(__file__).resolve().parents[2] / "data" / "hyperliquid-btc-20250126.gz"
    with gzip.open(rec, "rt") as f:
        t0 = int(f.readline().split(" ", 1)[0])
    t0_ms = t0 // 1_000_000
    fills = [{"coin": "BTC", "px": f"{105050.0 - i:.1f}", "sz": "0.01", "side": "B", "time": t0_ms + 400 * (i + 1),
              "oid": 1000 + i, "tid": 5000 + i, "hash": f"0x{i:064x}", "crossed": False, "fee": "0.0",
              "startPosition": f"{0.01 * i:.2f}", "dir": "Open Long", "closedPnl": "0.0"} for i in range(6)]
    path = tmp / "golden_userfills.json"
    path.write_text(json.dumps(fills))
    session, _ = ingest(rec, fills=path, as_horizon_s=1.0)
    a = to_arrays(session)
    return a, np.cumsum(np.where(a.kind == KIND_ID["own_fill"], 0.01, 0.0))


def streams(session=None, tmp_dir: str | Path | None = None) -> dict[str, tuple[EventArrays, np.ndarray]]:
    """{name: (EventArrays, position per event)} of the golden streams (module docstring)."""
    import tempfile

    out = {"burst": _burst(), "gap": _gap(), "reduce_only": _reduce_only(), "quotes": _quotes()}
    with tempfile.TemporaryDirectory(dir=tmp_dir) as tmp:
        out["hyperliquid_own_fills"] = _hyperliquid(Path(tmp))
    if session is not None:
        a = to_arrays(session)
        out["session"] = (a, np.zeros(len(a.t_s)))
    return {k: _from_first_mid(a, pos, 2000) for k, (a, pos) in out.items()}


def _from_first_mid(a: EventArrays, position: np.ndarray, max_events: int) -> tuple[EventArrays, np.ndarray]:
    """The stream from its first event with a known mid (nothing can be quoted before), at most
    `max_events` long."""
    first = int(np.argmax(a.valid > 0))
    keep = slice(first, first + max_events)
    return EventArrays(*(x[keep] for x in a)), np.asarray(position)[keep]


@jax.jit
def _outputs(events: Event, mid, spread, imbalance, position, cfg: Config):
    beliefs = run(events, cfg)

    def step(state, x):
        b, m, s, imb, q = x
        half = m * s / 2e4
        qt, state = quote(b, Market(m, m - half, m + half, s, imb), q, state, cfg)
        return state, qt

    _, quotes = jax.lax.scan(step, quoter_init(mid.dtype), (beliefs, mid, spread, imbalance, position))
    return beliefs, quotes


def compute(arrays: EventArrays, position: np.ndarray, cfg: Config) -> dict[str, np.ndarray]:
    """Every output column for one stream (float64): beliefs then quotes."""
    jax.config.update("jax_enable_x64", True)
    cfg = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float64), cfg)
    mid = jnp.asarray(arrays.mid, jnp.float64)
    beliefs, quotes = _outputs(as_events(arrays, np.float64), mid, jnp.asarray(arrays.spread_bps, jnp.float64),
                               jnp.asarray(arrays.imbalance, jnp.float64), jnp.asarray(position, jnp.float64), cfg)
    cols = {}
    for name, v in beliefs._asdict().items():
        v = np.asarray(v)
        if name == "p_regime":
            for i, r in enumerate(REGIMES):
                cols[f"belief.p_{r}"] = v[:, i]
        else:
            cols[f"belief.{name}"] = v.astype(np.float64)
    for name in Quote._fields:
        cols[f"quote.{name}"] = np.asarray(getattr(quotes, name), np.float64)
    return cols


def build(cfg: Config, session=None) -> pa.Table:
    """The golden table: one row per event of every stream, inputs and outputs."""
    tables = []
    for name, (arrays, position) in streams(session).items():
        cols = {"stream": np.full(len(arrays.t_s), name, dtype=object), "event": np.arange(len(arrays.t_s))}
        cols.update({f"input.{f}": np.asarray(getattr(arrays, f)) for f in _INPUTS})
        cols["input.position_qty"] = np.asarray(position, np.float64)
        cols.update(compute(arrays, position, cfg))
        tables.append(pa.table({k: (list(v) if v.ndim > 1 else v) for k, v in cols.items()}))
    table = pa.concat_tables(tables)
    meta = {"config_sha256": config_hash(cfg), "streams": sorted({t.column("stream")[0].as_py() for t in tables}),
            "doc": "one row per event: input.* (events.EventArrays fields, our position), belief.* "
                   "(online.belief.Beliefs after the event), quote.* (online.quoter.Quote at that moment)"}
    return table.replace_schema_metadata({_META_KEY: json.dumps(meta).encode()})


def write(table: pa.Table, path: str | Path) -> Path:
    """Write the golden table to Parquet, atomically."""
    return write_atomic(path, lambda tmp: pq.write_table(table, str(tmp), compression="zstd"))


def read(path: str | Path) -> tuple[pa.Table, dict]:
    """The golden table and its metadata."""
    table = pq.read_table(str(path))
    return table, json.loads(table.schema.metadata[_META_KEY])


def _stream_inputs(table: pa.Table, name: str) -> tuple[EventArrays, np.ndarray, pa.Table]:
    rows = table.filter(pa.compute.equal(table.column("stream"), name))
    arrays = EventArrays(*(rows.column(f"input.{f}").to_numpy() for f in _INPUTS))
    arrays = arrays._replace(kind=arrays.kind.astype(np.int32))
    return arrays, rows.column("input.position_qty").to_numpy(), rows


def check(cfg: Config, path: str | Path) -> dict:
    """Re-run every stream of a golden file under `cfg` and compare bit for bit.

    Returns {"ok": bool, "streams": n, "values": n compared, "config_matches": whether the file
    was made for this config, "mismatch": None or {stream, event, field, expected, got}}."""
    import pyarrow.compute  # noqa: F401  (table.filter)

    table, meta = read(path)
    missing = [f for f in _INPUTS if f"input.{f}" not in table.column_names]
    if missing:
        raise ValueError(f"the golden file has no input column(s) {missing}: it was written by an older version "
                         "of the event schema; export it again (bayesmm calibrate) with this version")
    result = {"ok": True, "streams": 0, "values": 0, "config_matches": meta.get("config_sha256") == config_hash(cfg),
              "mismatch": None}
    names = list(dict.fromkeys(table.column("stream").to_pylist()))
    for name in names:
        arrays, position, rows = _stream_inputs(table, name)
        got = compute(arrays, position, cfg)
        result["streams"] += 1
        for field, values in got.items():
            want = rows.column(field).to_numpy(zero_copy_only=False)
            want = np.stack(want) if want.dtype == object else want
            result["values"] += int(np.size(want))
            same = (want == values) | (np.isnan(want) & np.isnan(values))
            if not np.all(same):
                bad = np.argwhere(~same)[0]
                event = int(rows.column("event")[int(bad[0])].as_py())
                result.update(ok=False, mismatch={"stream": name, "event": event, "field": field,
                                                  "expected": float(want[tuple(bad)]),
                                                  "got": float(values[tuple(bad)])})
                return result
    return result
