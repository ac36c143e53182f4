"""config.toml: the schema generated from the code's ranges, a bit-identical round trip, tampered files
rejected with the key named, atomic writes that never leave a partial file, and golden vectors that
re-run bit for bit (and report the first mismatch when an output was edited)."""

from __future__ import annotations

import json
import tomllib

import jax
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tomli_w

from bayesmm.calibration import golden
from bayesmm.calibration.config import ConfigError, load_config, load_provenance, write_config
from bayesmm.calibration.schema import SCHEMA_VERSION, config_schema, schema_errors
from bayesmm.cli import main
from bayesmm.events.atomic import write_atomic
from bayesmm.online.params import GROUPS, RANGES, default_config, replace


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A non-default config with its golden vectors, written the way calibrate writes them."""
    d = tmp_path_factory.mktemp("export")
    cfg = replace(default_config(), evidence=dict(lambda_trade=0.0123456789, lambda_imbalance=0.3,
                                                  theta_decay_per_s=0.05), drift=dict(return_weight=0.4))
    write_config(cfg, d / "config.toml", {"route": "tune", "shrink": 0.5, "note": None, "score": float("nan")})
    golden.write(golden.build(cfg), d / "golden.parquet")
    return cfg, d


def test_schema_covers_every_field_and_accepts_the_defaults():
    schema = config_schema()
    for group, cls in GROUPS.items():
        assert set(schema["properties"][group]["properties"]) == set(cls._fields) == set(RANGES[group])
    from bayesmm.online.params import config_to_dict

    assert schema_errors({"schema_version": SCHEMA_VERSION, **config_to_dict(default_config())}) == []


def test_round_trip_is_bit_identical(exported):
    cfg, d = exported
    back = load_config(d / "config.toml")
    for a, b in zip(jax.tree_util.tree_leaves(cfg), jax.tree_util.tree_leaves(back), strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    prov = load_provenance(d / "config.toml")
    assert prov["route"] == "tune" and "note" not in prov and prov["score"].startswith("undefined")


@pytest.mark.parametrize(("edit", "named"), [
    (lambda doc: doc["evidence"].__setitem__("lambda_tradex", 0.1), "evidence.lambda_tradex: unknown key"),
    (lambda doc: doc["evidence"].__setitem__("lambda_fill", "0.35"), "evidence.lambda_fill: '0.35' is not of type"),
    (lambda doc: doc["quoter"].__setitem__("use_drift", 1), "quoter.use_drift: 1 is not of type 'boolean'"),
    (lambda doc: doc["volatility"].__setitem__("prior_strength_obs", 0.5),
     "volatility.prior_strength_obs: 0.5 is less than"),
    (lambda doc: doc["quoter"].__setitem__("p_reduce", 1.2), "quoter.p_reduce: 1.2 is greater than or equal"),
    (lambda doc: doc["regime"].__setitem__("p_buy_fill", [0.5, 0.5, 0.5]),
     "regime.p_buy_fill: [0.5, 0.5, 0.5] is too short"),
    (lambda doc: doc.__setitem__("extra", {}), "extra: unknown key"),
])
def test_tampered_config_is_rejected_naming_the_key(exported, tmp_path, capsys, edit, named):
    """Each tampering exits non-zero from check-config with the key (and for a range, the bound) named."""
    _, d = exported
    doc = tomllib.loads((d / "config.toml").read_text())
    edit(doc)
    bad = tmp_path / "config.toml"
    bad.write_text(tomli_w.dumps(doc))
    assert main(["check-config", str(bad)]) == 1
    out = capsys.readouterr().out
    assert named in out


def test_rules_between_fields_and_malformed_files(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("[quoter]\np_reduce = 0.8\np_resume = 0.9\n")
    with pytest.raises(ConfigError, match=r"quoter.p_resume \(0.9\) must be < quoter.p_reduce"):
        load_config(p)
    p.write_text("[evidence\nlambda_fill = ")
    with pytest.raises(ConfigError, match=r"c.toml: malformed TOML"):
        load_config(p)


def test_check_config_reruns_golden_vectors(exported, capsys):
    _, d = exported
    assert main(["check-config", str(d / "config.toml")]) == 0
    assert "bit-identical" in capsys.readouterr().out


def test_edited_golden_output_is_reported(exported, tmp_path, capsys):
    """Change one p_down in the file: check-config names the stream, event, field and both values."""
    cfg, d = exported
    table = pq.read_table(d / "golden.parquet")
    col = table.column("belief.p_down").to_numpy().copy()
    i = int(np.flatnonzero(table.column("stream").to_numpy(zero_copy_only=False) == "gap")[3])
    want = col[i]
    col[i] = np.nextafter(want, 1.0)  # one ulp
    table = table.set_column(table.schema.get_field_index("belief.p_down"), "belief.p_down", pa.array(col))
    (tmp_path / "config.toml").write_text((d / "config.toml").read_text())
    pq.write_table(table, tmp_path / "golden.parquet")
    assert main(["check-config", str(tmp_path / "config.toml")]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH in stream 'gap', event 3, field belief.p_down" in out and repr(float(col[i])) in out


def test_golden_streams_exercise_their_rules(exported):
    """burst: the detector fires on the 4th fill inside 2 s; gap: an hour without a message;
    reduce_only: entered while long and bearish, left as p_down falls back below p_resume;
    hyperliquid_own_fills: our userFills through the real ingest, quotes on the 5-significant-figure grid."""
    table, meta = golden.read(exported[1] / "golden.parquet")
    assert meta["config_sha256"] == golden.config_hash(exported[0])
    rows = {s: table.filter(pa.compute.equal(table.column("stream"), s)) for s in meta["streams"]}
    assert set(rows) == {"burst", "gap", "reduce_only", "quotes", "hyperliquid_own_fills"}
    assert rows["burst"].column("belief.burst").to_numpy().max() == 1.0
    assert rows["gap"].column("input.dt_s").to_numpy().max() == 3600.0
    mode = rows["reduce_only"].column("quote.mode").to_numpy()
    assert mode.max() == 1.0 and mode[-1] == 0.0 and np.argmax(mode) < len(mode) - 1
    hl = rows["hyperliquid_own_fills"]
    assert (hl.column("input.kind").to_numpy() == 3).sum() == 6  # six own fills
    px = np.stack(hl.column("quote.bid_px").to_numpy(zero_copy_only=False))
    assert np.allclose(px, np.round(px))  # BTC near $105,000: 5 significant figures = whole dollars


def test_interrupted_write_leaves_no_partial_file(tmp_path):
    """A writer that dies half-way: the final name keeps its old content and no temporary file remains."""
    target = tmp_path / "config.toml"
    target.write_text("old")

    def dies(tmp):
        tmp.write_text("half of a new fi")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, dies)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"]
    write_atomic(tmp_path / "new.json", json.dumps({"a": 1}))
    assert json.loads((tmp_path / "new.json").read_text()) == {"a": 1}
