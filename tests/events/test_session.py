"""Session Parquet round trip, schema validation, and the per-event features for JAX."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pytest

from bayesmm.events import Session, SessionError, check_session, read_session, to_arrays, write_session
from bayesmm.events.builder import EventBuilder
from bayesmm.events.session import SessionMeta


def small_session() -> Session:
    """Hand-made: book 100.0/100.2, trade, mid up to 100.2, own buy fill, its AS, a cv_tick."""
    b = EventBuilder()
    b.book_update(0, 100.0, 100.2, 2.0, 1.0, 0.2, 9.0)
    b.mid_tick(0, 100.1)
    b.trade_print(500_000_000, 100.2, 0.3, 1)
    b.book_update(2_000_000_000, 100.1, 100.3, 1.0, 3.0, float("nan"), float("nan"))
    b.mid_tick(2_000_000_000, 100.2)
    b.own_fill(2_500_000_000, 100.1, 0.5, 1, 42)
    b.cv_tick(3_000_000_000, "binance-spot", 100.5)
    b.cv_tick(4_000_000_000, "binance-spot", 100.4)
    b.adverse_selection(7_500_000_000, 1, 3.5, 42)
    meta = SessionMeta(instrument="TEST", venue="test", tick_size=0.1, fee_bps=1.5, as_horizon_s=5.0,
                       sources=({"path": "x.gz", "sha256": "ab" * 32, "role": "market"},),
                       repairs={"duplicate_lines": 2})
    return Session(b.table(), meta)


def test_parquet_round_trip_exact(tmp_path, perp_session):
    """Every column (NaNs included) and the metadata come back identical."""
    for session in (small_session(), perp_session[0]):
        path = tmp_path / "s.parquet"
        write_session(session, path)
        back = read_session(path)
        assert back.meta == session.meta
        assert back.table.schema.names == session.table.schema.names
        for name in session.table.schema.names:
            a, b = session.column(name), back.column(name)
            assert a.dtype == b.dtype, name
            np.testing.assert_array_equal(a, b, err_msg=name)


def test_validate_rejects_bad_tables():
    """Unknown column, unknown kind, time backwards, crossed book, AS without a fill: each named."""
    s = small_session()
    with pytest.raises(SessionError, match="unknown column"):
        check_session(Session(s.table.append_column("foo", pa.array(np.zeros(len(s)))), s.meta))
    kinds = s.column("kind").astype(object)
    kinds[2] = "weird"
    with pytest.raises(SessionError, match="row 2.*unknown kind 'weird'"):
        check_session(Session(s.table.set_column(1, "kind", pa.array(kinds, pa.string())), s.meta))
    t = s.column("t_ns").copy()
    t[3] = 0
    with pytest.raises(SessionError, match="row 3.*t_ns.*backwards"):
        check_session(Session(s.table.set_column(0, "t_ns", pa.array(t)), s.meta))
    ask = s.column("ask_px").copy()
    ask[0] = 99.0
    with pytest.raises(SessionError, match="row 0.*ask_px.*crossed"):
        check_session(Session(s.table.set_column(s.table.schema.get_field_index("ask_px"), "ask_px", pa.array(ask)),
                         s.meta))
    fid = s.column("fill_id").copy()
    fid[-1] = 7
    with pytest.raises(SessionError, match="adverse_selection for no earlier own_fill"):
        check_session(Session(s.table.set_column(s.table.schema.get_field_index("fill_id"), "fill_id", pa.array(fid)),
                         s.meta))
    with pytest.raises(SessionError, match="tick_size"):
        check_session(Session(s.table, dataclasses.replace(s.meta, tick_size=0.0)))


def test_read_session_errors(tmp_path):
    with pytest.raises(SessionError, match="no such file"):
        read_session(tmp_path / "missing.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(SessionError, match="not a Parquet file"):
        read_session(tmp_path / "junk.parquet")


def test_features_by_hand():
    """Features of the hand-made session, worked out by hand."""
    a = to_arrays(small_session())
    np.testing.assert_allclose(a.t_s, [0, 0, 0.5, 2, 2, 2.5, 3, 4, 7.5])
    np.testing.assert_allclose(a.dt_s, [0, 0, 0.5, 1.5, 0, 0.5, 0.5, 1, 3.5])
    np.testing.assert_allclose(a.mid, [100.1, 100.1, 100.1, 100.2, 100.2, 100.2, 100.2, 100.2, 100.2])
    spread0, spread1 = 0.2 / 100.1 * 1e4, 0.2 / 100.2 * 1e4
    np.testing.assert_allclose(a.spread_bps, [spread0] * 3 + [spread1] * 6)
    ret = (100.2 / 100.1 - 1) * 1e4
    np.testing.assert_allclose(a.ret_bps, [0, 0, 0, 0, ret, 0, 0, 0, 0])
    np.testing.assert_allclose(a.ret_dt_s, [0, 0, 0, 0, 2.0, 0, 0, 0, 0])
    # top-of-book imbalance on every feed (the session's depth imbalance 0.2 is not what filters read):
    # (2 - 1)/(2 + 1) = 1/3, then (1 - 3)/(1 + 3) = -0.5
    np.testing.assert_allclose(a.imbalance, [1 / 3] * 3 + [-0.5] * 6)
    np.testing.assert_allclose(a.cv_ret_bps, [0, 0, 0, 0, 0, 0, 0, (100.4 / 100.5 - 1) * 1e4, 0])
    np.testing.assert_array_equal(a.kind, [1, 0, 2, 1, 0, 3, 5, 5, 4])
    np.testing.assert_array_equal(a.side, [0, 0, 1, 0, 0, 1, 0, 0, 1])
    np.testing.assert_array_equal(a.as_bps, [0, 0, 0, 0, 0, 0, 0, 0, 3.5])
    assert all(np.isfinite(x).all() for x in a)


def test_kind_codes_follow_the_kind_list_and_name_an_unknown_kind():
    from bayesmm.events.features import kind_codes
    from bayesmm.events.kinds import KINDS

    names = [KINDS[i] for i in (3, 0, 0, len(KINDS) - 1, 1)]
    np.testing.assert_array_equal(kind_codes(pa.array(names)), [3, 0, 0, len(KINDS) - 1, 1])
    chunked = pa.chunked_array([names[:2], names[2:]])  # a session's column comes in chunks
    np.testing.assert_array_equal(kind_codes(chunked), [3, 0, 0, len(KINDS) - 1, 1])
    assert kind_codes(pa.array([], pa.string())).shape == (0,)
    with pytest.raises(ValueError, match="'bogus'"):
        kind_codes(pa.array(["mid_tick", "bogus"]))
