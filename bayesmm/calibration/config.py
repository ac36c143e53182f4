"""The production configuration file: `config.toml`, one table per component of `online.params.Config`
([venue], [drift], [evidence], [volatility], [toxicity], [regime], [quoter], [orders]), a
`schema_version`, and a free-form [provenance] table that says where every value came from.

Reading checks the file twice: against the JSON Schema (`calibration.schema`: unknown keys, types,
ranges, every error at once) and then through `online.params.config_from_dict` (the same ranges
plus the rules that tie fields together, e.g. p_resume < p_reduce, a valid generator). Floats are
written with Python's shortest round-trip repr (tomli-w), so a config read back is bit-identical
to the one written: what the golden vectors need.
"""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path

import numpy as np

from bayesmm.calibration.schema import SCHEMA_VERSION, schema_errors
from bayesmm.events.atomic import write_atomic
from bayesmm.online.params import Config, config_from_dict, config_to_dict, default_config


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file and every bad key."""


def read_document(path: str | Path) -> dict:
    """The parsed file (.toml or .json) as a dict; errors name the file (and line, for TOML)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such configuration file")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            doc = tomllib.loads(text)
        elif path.suffix == ".json":
            doc = json.loads(text)
        else:
            raise ConfigError(f"{path}: configuration files are .toml or .json, got {path.suffix!r}")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: malformed {path.suffix[1:].upper()}: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: the top level must be a table of groups, got {type(doc).__name__}")
    return doc


def config_from_document(doc: dict, source: str = "config", dtype=np.float64) -> Config:
    """A validated Config from a parsed document; every schema violation is reported together."""
    doc = {"schema_version": SCHEMA_VERSION, **doc}
    errors = schema_errors(doc)
    if errors:
        raise ConfigError(f"{source}: invalid configuration:\n  " + "\n  ".join(errors))
    groups = {k: v for k, v in doc.items() if k not in ("schema_version", "provenance")}
    try:
        return config_from_dict(groups, dtype=dtype)
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def load_config(path: str | Path | None, dtype=np.float64) -> Config:
    """The Config in a .toml/.json file (missing fields keep the spec's defaults); the spec's
    defaults when path is None."""
    if path is None:
        return default_config(dtype)
    return config_from_document(read_document(path), str(path), dtype)


def load_provenance(path: str | Path) -> dict:
    """The [provenance] table of a configuration file ({} if none)."""
    return read_document(path).get("provenance", {})


def _toml_safe(x):
    """Provenance values as TOML can hold them: None and non-finite floats become strings saying so."""
    if isinstance(x, dict):
        return {str(k): _toml_safe(v) for k, v in x.items() if v is not None}
    if isinstance(x, list | tuple):
        return [_toml_safe(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return "undefined (" + repr(x) + ")"
    return x


def config_document(cfg: Config, provenance: dict | None = None) -> dict:
    """What `write_config` writes: schema_version, the groups, and provenance."""
    doc = {"schema_version": SCHEMA_VERSION, **config_to_dict(cfg)}
    if provenance:
        doc["provenance"] = _toml_safe(provenance)
    return doc


def write_config(cfg: Config, path: str | Path, provenance: dict | None = None) -> Path:
    """Write `cfg` (validated first) to a .toml (or .json) file, atomically."""
    import tomli_w

    config_from_document(config_to_dict(cfg), "the configuration to write")
    doc = config_document(cfg, provenance)
    path = Path(path)
    text = json.dumps(doc, indent=2) if path.suffix == ".json" else tomli_w.dumps(doc)
    return write_atomic(path, text)
