"""The JSON Schema of `config.toml`, generated from the one table of ranges and descriptions in
`online.params` (so the schema cannot drift from the code), and validation against it with
`jsonschema` (Draft 2020-12) that reports the key, the value and the allowed range.
"""

from __future__ import annotations

import math

from bayesmm.online.params import GROUPS, NUM_REGIMES, RANGES, VECTOR_LENGTH, Range, field_docs

SCHEMA_VERSION = 2  # 2: counts are integers; prior_*_fills, prior_strength_obs, markov_decay_weight, use_ou_drift_shift
SCHEMA_ID = "https://bayesmm.invalid/config.schema.json"


def _number(r: Range) -> dict:
    out: dict = {"type": "number"}
    if r.lo != -math.inf:
        out["minimum" if r.lo_closed else "exclusiveMinimum"] = r.lo
    if r.hi != math.inf:
        out["maximum" if r.hi_closed else "exclusiveMaximum"] = r.hi
    return out


def _field_schema(r: Range, doc: str) -> dict:
    if r.kind == "flag":
        s = {"type": "boolean"}
    elif r.kind in VECTOR_LENGTH:
        n = VECTOR_LENGTH[r.kind]
        s = {"type": "array", "items": _number(r), "minItems": n, "maxItems": n}
    elif r.kind == "matrix":
        row = {"type": "array", "items": {"type": "number"}, "minItems": NUM_REGIMES, "maxItems": NUM_REGIMES}
        s = {"type": "array", "items": row, "minItems": NUM_REGIMES, "maxItems": NUM_REGIMES}
    elif r.kind == "integer":
        s = _number(r) | {"type": "integer"}
    else:
        s = _number(r)
    s["description"] = doc
    return s


def config_schema() -> dict:
    """The JSON Schema of a configuration file (TOML parsed to a dict, or the JSON form)."""
    props: dict = {"schema_version": {"const": SCHEMA_VERSION, "description": "version of this file's layout"}}
    for group, cls in GROUPS.items():
        docs = field_docs(group)
        first_line = (cls.__doc__ or "").strip().splitlines()[0]
        props[group] = {
            "type": "object", "description": first_line, "additionalProperties": False,
            "properties": {name: _field_schema(RANGES[group][name], docs.get(name, "")) for name in cls._fields},
        }
    props["provenance"] = {
        "type": "object",
        "description": "where the values came from: git commit, input sessions and their sha256, date, method, "
                       "fit diagnostics, validation scores, per-parameter route and interval; not read by the bot",
    }
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
            "title": "bayesmm configuration", "type": "object", "additionalProperties": False,
            "required": ["schema_version"], "properties": props}


def schema_errors(doc: dict) -> list[str]:
    """Every violation of the schema in `doc`, as 'key: message (allowed ...)' lines (empty if valid)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(config_schema())
    out = []
    for err in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
        key = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        if err.validator == "additionalProperties":
            extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
            allowed = sorted(err.schema.get("properties", {}))
            prefix = "" if key == "(top level)" else key + "."
            out.append(f"{', '.join(prefix + e for e in extra)}: unknown key (allowed here: {allowed})")
            continue
        bounds = {k: err.schema[k] for k in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum", "type",
                                             "minItems", "maxItems", "const") if k in err.schema}
        out.append(f"{key}: {err.message}" + (f" (allowed: {bounds})" if bounds else ""))
    return out
